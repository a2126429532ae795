//! The worker's side of the claim protocol, as one tokio task: claims row groups for the
//! run's [`RowGroupFeed`](weir_runtime::scheduler::RowGroupFeed) (one at a time, when the
//! feed has room: at most one claim waits beyond the row groups being generated), renews the leases of the row groups it holds, tells the coordinator about
//! each part written, and lives through coordinator outages.
//!
//! **Coordinator lost mid-run**: the worker stops claiming (it cannot), keeps generating the
//! row groups it holds (their parts are written to disk as usual), queues their completions,
//! and retries with backoff (200 ms doubling to 5 s), saying so on stderr and counting the
//! outage in `workers/NAME.json`. When Redis answers again it flushes the queue, renews its
//! claims (taking back any the rebuilt job left unowned) and claims again. With a shared
//! `--out`, a worker that sees every part on disk knows the job is done even while Redis is away.

use super::parts::PartStore;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use weir_coordinator::{Claim, Coordinator, CoordinatorError};

/// First retry delay after the coordinator failed; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest retry delay while the coordinator is away.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait between two claims while every remaining row group is leased by others.
const MAX_WAIT_POLL: Duration = Duration::from_millis(500);

/// What the driver did in one session.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DriverReport {
    /// Row groups claimed from another worker's expired or released lease.
    pub(crate) taken_over: u64,
    /// Times the coordinator became unreachable.
    pub(crate) outages: u64,
    /// Seconds without the coordinator.
    pub(crate) outage_seconds: f64,
    /// The job is done (Redis said so, or every part is on disk).
    pub(crate) job_done: bool,
}

/// Live figures the progress display reads.
#[derive(Debug, Default)]
pub(crate) struct JobProgress {
    /// Row groups of the job done (as last heard from Redis or seen on disk).
    pub(crate) row_groups_done: AtomicU64,
}

/// The driver's inputs.
pub(crate) struct Driver {
    pub(crate) coordinator: Arc<Coordinator>,
    pub(crate) store: Arc<PartStore>,
    pub(crate) feed: Option<mpsc::Sender<u64>>,
    pub(crate) written: mpsc::UnboundedReceiver<u64>,
    pub(crate) engine_done: oneshot::Receiver<()>,
    pub(crate) progress: Arc<JobProgress>,
    pub(crate) quiet: bool,
}

/// The coordinator link: up, or down since when and when to try again.
struct Link {
    down_since: Option<Instant>,
    retry_at: Instant,
    backoff: Duration,
}

impl Link {
    fn usable(&self, now: Instant) -> bool {
        self.down_since.is_none() || now >= self.retry_at
    }
}

impl Driver {
    /// Runs until the engine is done (then flushes completions and releases unfinished claims).
    pub(crate) async fn run(mut self) -> DriverReport {
        let renew_every = self.coordinator.config().renew_every();
        let mut report = DriverReport::default();
        // Dropping the sender ends the run's feed: the run finishes what it holds and ends.
        let mut feed = self.feed.take();
        let mut held: BTreeSet<u64> = BTreeSet::new();
        let mut to_complete: Vec<u64> = Vec::new();
        let mut next_renew = Instant::now() + renew_every;
        let mut next_claim = Instant::now();
        let mut link = Link {
            down_since: None,
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
        };
        self.progress
            .row_groups_done
            .store(self.store.done_row_groups().len() as u64, Ordering::Relaxed);
        let total = self.store.row_groups();
        loop {
            let now = Instant::now();
            // Work that needs the coordinator, in order of importance: completions (so a
            // finished row group is never handed out again), renewals, then claims.
            if link.usable(now) && !to_complete.is_empty() {
                match self.complete_all(&mut to_complete).await {
                    Ok(()) => self.link_up(&mut link, &mut report),
                    Err(e) => self.link_down(&mut link, &mut report, &e),
                }
            }
            let now = Instant::now();
            if now >= next_renew && held.is_empty() {
                // Nothing to renew: no call (an empty renewal would say nothing about Redis).
                next_renew = now + renew_every;
            }
            if link.usable(now) && now >= next_renew {
                let holding: Vec<u64> = held.iter().copied().collect();
                match self.coordinator.renew(&holding).await {
                    Ok(lost) => {
                        self.link_up(&mut link, &mut report);
                        next_renew = Instant::now() + renew_every;
                        for rg in lost {
                            self.say(format!(
                                "lost the claim on row group {rg} (taken over, or done \
                                 elsewhere); still generating it: its part will be identical"
                            ));
                        }
                    }
                    Err(e) => self.link_down(&mut link, &mut report, &e),
                }
            }
            let on_disk = self.store.done_row_groups().len() as u64;
            if !report.job_done && on_disk >= total {
                // Every part is on disk (shared --out): done, whatever Redis says or can say.
                report.job_done = true;
            }
            self.progress
                .row_groups_done
                .fetch_max(on_disk, Ordering::Relaxed);
            if report.job_done {
                feed = None;
            }
            let now = Instant::now();
            let claim_now = feed.is_some() && link.usable(now) && now >= next_claim;
            // When a claim is due, the reserve below is what wakes the loop (the run has room
            // for a group); a claim due later (after a wait) or a retry is a timer.
            let wake = [
                Some(next_renew),
                link.down_since.map(|_| link.retry_at),
                (feed.is_some() && !claim_now && link.down_since.is_none()).then_some(next_claim),
            ]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min()
            .unwrap_or_else(|| now + renew_every);
            let reserve = async {
                match (&feed, claim_now) {
                    (Some(tx), true) => tx.clone().reserve_owned().await.ok(),
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = &mut self.engine_done => break,
                rg = self.written.recv() => match rg {
                    Some(rg) => {
                        held.remove(&rg);
                        to_complete.push(rg);
                    }
                    None => break,
                },
                permit = reserve => {
                    let Some(permit) = permit else {
                        // The run dropped its feed (it stopped): nothing more to claim.
                        feed = None;
                        continue;
                    };
                    match self.coordinator.claim().await {
                        Ok(Claim::RowGroup { row_group, taken_over_from }) => {
                            self.link_up(&mut link, &mut report);
                            if let Some(from) = taken_over_from {
                                report.taken_over += 1;
                                self.say(format!(
                                    "took over row group {row_group} from worker {from:?} \
                                     (its lease ran out or was released)"
                                ));
                            }
                            if self.store.has_part(row_group) {
                                // Already durable (its writer died before telling Redis, or
                                // Redis was rebuilt): only the coordinator needs to hear it.
                                to_complete.push(row_group);
                            } else {
                                held.insert(row_group);
                                permit.send(row_group);
                            }
                        }
                        Ok(Claim::Wait { earliest_expiry, .. }) => {
                            self.link_up(&mut link, &mut report);
                            let wait = earliest_expiry
                                .clamp(Duration::from_millis(50), MAX_WAIT_POLL);
                            next_claim = Instant::now() + wait;
                        }
                        Ok(Claim::JobDone) => {
                            self.link_up(&mut link, &mut report);
                            self.progress.row_groups_done.store(total, Ordering::Relaxed);
                            report.job_done = true;
                            feed = None;
                        }
                        Err(e) => self.link_down(&mut link, &mut report, &e),
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        // The run is over: hand in what was written, give back what was not.
        while let Ok(rg) = self.written.try_recv() {
            held.remove(&rg);
            to_complete.push(rg);
        }
        if self.complete_all(&mut to_complete).await.is_err() {
            // The parts are on disk; a rebuilt job or the next claimer learns them from there.
        }
        let unfinished: Vec<u64> = held.into_iter().collect();
        if !unfinished.is_empty() {
            let _ = self.coordinator.release(&unfinished).await;
        }
        if let Some(since) = link.down_since {
            report.outage_seconds += since.elapsed().as_secs_f64();
        }
        report
    }

    async fn complete_all(&self, queue: &mut Vec<u64>) -> Result<(), CoordinatorError> {
        while let Some(&rg) = queue.first() {
            let done = self.coordinator.complete(rg).await?;
            self.progress
                .row_groups_done
                .fetch_max(done, Ordering::Relaxed);
            queue.remove(0);
        }
        Ok(())
    }

    fn link_down(&self, link: &mut Link, report: &mut DriverReport, e: &CoordinatorError) {
        let now = Instant::now();
        if link.down_since.is_none() {
            link.down_since = Some(now);
            link.backoff = FIRST_BACKOFF;
            report.outages += 1;
            self.say(format!(
                "{e}; not claiming new row groups, still generating the ones held, retrying \
                 with backoff"
            ));
        } else {
            link.backoff = (link.backoff * 2).min(MAX_BACKOFF);
        }
        link.retry_at = now + link.backoff;
    }

    fn link_up(&self, link: &mut Link, report: &mut DriverReport) {
        if let Some(since) = link.down_since.take() {
            let secs = since.elapsed().as_secs_f64();
            report.outage_seconds += secs;
            self.say(format!(
                "coordinator {} is back after {secs:.1} s; claiming again",
                self.coordinator.url()
            ));
        }
        link.backoff = FIRST_BACKOFF;
    }

    fn say(&self, message: String) {
        if !self.quiet {
            eprintln!("worker {}: {message}", self.coordinator.worker());
        }
    }
}
