//! Row-group pipeline: admission of row groups, readiness → queue, in-order checkpoints.

use super::*;
use crate::scheduler::feed::RowGroupFeed;

/// The row-group pipeline's state: admission, live buffers and the in-order write backlog.
pub(super) struct Pipeline {
    /// How many row groups may be in flight.
    pub(super) row_groups: RowGroupAdmission,
    /// The next row group to admit.
    pub(super) next_row_group: u64,
    /// Row groups of the workflow.
    pub(super) total_row_groups: u64,
    /// The next row group to write (groups are written strictly in order).
    pub(super) next_to_write: u64,
    /// Live row groups' rows.
    pub(super) buffers: BTreeMap<u64, RowGroupBuffer>,
    /// Completed groups waiting for an earlier one to be written.
    pub(super) ready_to_write: BTreeMap<u64, Vec<(u64, Record)>>,
    /// Dropped-row counts of completed groups not yet written (for their checkpoint event).
    pub(super) dropped_in_unwritten: BTreeMap<u64, u64>,
    /// A row-group admission block was reported and nothing was admitted since.
    pub(super) block_reported: bool,
    /// Feed mode: the row groups come from here (see `scheduler::feed`).
    pub(crate) feed: Option<RowGroupFeed>,
}

impl Pipeline {
    /// A pipeline starting at `first_row_group` (non-zero when resuming).
    pub(super) fn new(workflow: &Workflow, config: &SchedulerConfig, first_row_group: u64) -> Self {
        Self {
            row_groups: RowGroupAdmission::new(
                config.max_concurrent_row_groups,
                config.row_group_mode,
            ),
            next_row_group: first_row_group,
            total_row_groups: workflow.row_group_count(),
            next_to_write: first_row_group,
            buffers: BTreeMap::new(),
            ready_to_write: BTreeMap::new(),
            dropped_in_unwritten: BTreeMap::new(),
            block_reported: false,
            feed: None,
        }
    }
}

impl Pipeline {
    /// Feed mode: a free row-group slot is waiting for the feed's next group.
    pub(super) fn wants_feed(&self) -> bool {
        self.feed
            .as_ref()
            .is_some_and(|f| !f.exhausted() && f.next.is_none())
            && self.row_groups.in_flight() < self.row_groups.hard_cap()
    }

    /// Every row group this run will generate is written (feed mode: the feed has ended and
    /// nothing it handed over is still live; otherwise: the last group is written).
    pub(super) fn all_written(&self) -> bool {
        match &self.feed {
            Some(f) => f.exhausted() && self.buffers.is_empty() && self.ready_to_write.is_empty(),
            None => self.next_to_write >= self.total_row_groups,
        }
    }
}

impl RunLoop {
    /// Feed mode's admission: each group the feed hands over, while a slot is free.
    fn admit_fed_row_groups(&mut self) -> Result<bool, SchedulerError> {
        let mut admitted = false;
        loop {
            // Take a group only with a slot for it: with a feed of capacity 1, a feeder that
            // claims one group per free place holds at most one group beyond those running.
            if self.pipeline.row_groups.in_flight() >= self.pipeline.row_groups.hard_cap() {
                return Ok(admitted);
            }
            let Some(feed) = self.pipeline.feed.as_mut() else {
                return Ok(admitted);
            };
            let Some(rg) = feed.poll_now() else {
                return Ok(admitted);
            };
            if rg >= self.pipeline.total_row_groups || self.pipeline.buffers.contains_key(&rg) {
                // Not a row group of this workflow, or one already live: nothing to generate.
                continue;
            }
            let pressure = !self.queue.is_empty();
            match self.pipeline.row_groups.try_admit(pressure) {
                Ok(_) => {
                    let rows = self.workflow.row_group_size(rg);
                    self.tracker
                        .admit_row_group(rg, rows)
                        .map_err(|e| internal(format!("admit row group {rg}: {e}")))?;
                    self.pipeline
                        .buffers
                        .insert(rg, RowGroupBuffer::new(self.workflow.row_offset(rg), rows));
                    admitted = true;
                    self.emit_row_group_admitted(rg, rows);
                }
                Err(_) => {
                    // Keep it for the next free slot.
                    if let Some(feed) = self.pipeline.feed.as_mut() {
                        feed.next = Some(rg);
                    }
                    return Ok(admitted);
                }
            }
        }
    }

    pub(super) fn admit_row_groups(&mut self) -> Result<bool, SchedulerError> {
        if self.pipeline.feed.is_some() {
            return self.admit_fed_row_groups();
        }
        let mut admitted = false;
        while self.pipeline.next_row_group < self.pipeline.total_row_groups {
            // Completed groups wait for earlier ones before they are written; cap that backlog
            // so memory stays bounded even when the oldest group is slow.
            if self.pipeline.ready_to_write.len() >= self.write_backlog_limit() {
                if !self.pipeline.block_reported {
                    self.pipeline.block_reported = true;
                    self.observed.observe_row_group_blocked("write_backlog");
                    let backlog = self.pipeline.ready_to_write.len();
                    self.events
                        .run(SchedulerEventKind::RowGroupAdmissionBlocked, |e| {
                            e.reason_or_result = Some("write_backlog".into());
                            e.payload = P::RowGroupAdmissionBlocked(RowGroupAdmissionBlocked {
                                completed_unwritten: Some(backlog as u64),
                                ..Default::default()
                            });
                        });
                }
                break;
            }
            let pressure = !self.queue.is_empty();
            match self.pipeline.row_groups.try_admit(pressure) {
                Ok(target_changed) => {
                    let rg = self.pipeline.next_row_group;
                    let rows = self.workflow.row_group_size(rg);
                    self.tracker
                        .admit_row_group(rg, rows)
                        .map_err(|e| internal(format!("admit row group {rg}: {e}")))?;
                    self.pipeline
                        .buffers
                        .insert(rg, RowGroupBuffer::new(self.workflow.row_offset(rg), rows));
                    self.pipeline.next_row_group += 1;
                    self.pipeline.block_reported = false;
                    admitted = true;
                    if let Some(target) = target_changed {
                        self.observed.observe_row_group_target(target);
                        self.events
                            .run(SchedulerEventKind::RowGroupAdmissionTargetChanged, |e| {
                                e.payload = P::RowGroupAdmissionTargetChanged(
                                    RowGroupAdmissionTargetChanged {
                                        target: u64::from(target),
                                    },
                                );
                            });
                    }
                    self.emit_row_group_admitted(rg, rows);
                }
                Err(block) => {
                    if !self.pipeline.block_reported {
                        self.pipeline.block_reported = true;
                        self.observed.observe_row_group_blocked(block.as_str());
                        self.report_row_group_block(block);
                    }
                    break;
                }
            }
        }
        Ok(admitted)
    }

    /// Completed-but-unwritten row groups allowed before admission pauses.
    /// `row_group_admitted` for `rg` of `rows` rows, with the row groups now in flight.
    fn emit_row_group_admitted(&self, rg: u64, rows: u64) {
        let in_flight = self.pipeline.row_groups.in_flight();
        self.events.run(SchedulerEventKind::RowGroupAdmitted, |e| {
            e.payload = P::RowGroupAdmitted(RowGroupAdmitted {
                row_group: rg,
                rows,
                in_flight: u64::from(in_flight),
            });
        });
    }

    pub(super) fn write_backlog_limit(&self) -> usize {
        2 * self.pipeline.row_groups.hard_cap().max(1) as usize
    }

    pub(super) fn report_row_group_block(&self, block: RowGroupBlock) {
        let (in_flight, target) = (
            self.pipeline.row_groups.in_flight(),
            self.pipeline.row_groups.target(),
        );
        self.events
            .run(SchedulerEventKind::RowGroupAdmissionBlocked, |e| {
                e.reason_or_result = Some(block.as_str().into());
                e.payload = P::RowGroupAdmissionBlocked(RowGroupAdmissionBlocked {
                    in_flight: Some(u64::from(in_flight)),
                    target: Some(u64::from(target)),
                    completed_unwritten: None,
                });
            });
    }

    pub(super) fn enqueue_frontier(&mut self) -> bool {
        if self.tracker.pending_len() == 0 {
            return false;
        }
        let frontier = self.tracker.ready_frontier();
        let mut items = Vec::with_capacity(frontier.len());
        for ready in frontier {
            let Some(&ci) = self.column_index.get(&ready.task.column) else {
                continue;
            };
            let col = &self.columns[ci];
            self.events.task(
                SchedulerEventKind::DependencyReady,
                col,
                &ready.task,
                &ready.id,
                TaskEventFields::default(),
            );
            items.push(SchedulableTask::new(
                ready.id,
                ready.task,
                col.group.clone(),
                col.request.clone(),
            ));
        }
        let accepted = self.queue.enqueue(items);
        self.tracker.mark_enqueued(accepted.iter());
        if self.events.wants(SchedulerEventKind::ReadyEnqueued) {
            for id in &accepted {
                if let Some(item) = self.queue.get(id) {
                    if let Some(&ci) = self.column_index.get(&item.payload.column) {
                        self.events.task(
                            SchedulerEventKind::ReadyEnqueued,
                            &self.columns[ci],
                            &item.payload,
                            id,
                            TaskEventFields::default(),
                        );
                    }
                }
            }
        }
        self.report.max_queued_tasks = self.report.max_queued_tasks.max(self.queue.len() as u64);
        !accepted.is_empty()
    }

    /// Takes complete row groups and writes them in row-group order.
    pub(super) fn checkpoint(&mut self, sink: &mut dyn RecordSink) -> Result<bool, SchedulerError> {
        let live: Vec<u64> = self.pipeline.buffers.keys().copied().collect();
        let mut took = false;
        for rg in live {
            if !self.tracker.row_group_complete(rg) {
                continue;
            }
            let Some(done) = self
                .tracker
                .take_completed_row_group(rg)
                .map_err(|e| internal(format!("take row group: {e}")))?
            else {
                continue;
            };
            let Some(buffer) = self.pipeline.buffers.remove(&rg) else {
                continue;
            };
            // Dropped rows were counted when they were dropped (see `count_drops`).
            let dropped_rows = done.dropped.len() as u64;
            self.pipeline.dropped_in_unwritten.insert(rg, dropped_rows);
            let records: Vec<(u64, Record)> = buffer
                .rows
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !done.dropped.contains_key(&(*i as u64)))
                .map(|(i, record)| (buffer.offset + i as u64, record))
                .collect();
            self.pipeline.ready_to_write.insert(rg, records);
            // Its slot frees now, not when it is written: a slow older group must not idle
            // the endpoints (the write backlog above bounds the memory this allows).
            self.pipeline.row_groups.release();
            took = true;
        }
        let mut wrote = took;
        loop {
            // In feed mode a group is written as soon as it completes (the groups before it
            // belong to other processes); otherwise strictly in row-group order.
            let rg = if self.pipeline.feed.is_some() {
                match self.pipeline.ready_to_write.keys().next() {
                    Some(&rg) => rg,
                    None => break,
                }
            } else {
                self.pipeline.next_to_write
            };
            let Some(records) = self.pipeline.ready_to_write.remove(&rg) else {
                break;
            };
            sink.write_row_group(rg, &records)
                .map_err(|e| SchedulerError::RecordSink {
                    message: e.to_string(),
                })?;
            self.report.records_written += records.len() as u64;
            self.report.row_groups_written += 1;
            if self.pipeline.feed.is_none() {
                self.pipeline.next_to_write += 1;
            }
            wrote = true;
            let n = records.len() as u64;
            let total = self.report.records_written;
            let dropped = self.pipeline.dropped_in_unwritten.remove(&rg).unwrap_or(0);
            self.events
                .run(SchedulerEventKind::RowGroupCheckpointed, |e| {
                    e.payload = P::RowGroupCheckpointed(RowGroupCheckpointed {
                        row_group: rg,
                        surviving_rows: n,
                        dropped_rows: dropped,
                        records_written: total,
                    });
                });
        }
        Ok(wrote)
    }
}
