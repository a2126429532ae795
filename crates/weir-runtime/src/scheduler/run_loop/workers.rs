//! Workers: inline and spawned task execution, their inputs, and how they come back.

use super::*;

impl RunLoop {
    pub(super) async fn run_inline(&self, r: &Running) -> Result<WorkerOutput, GenerationError> {
        let col = &self.columns[r.column];
        let rg = r.task.row_group;
        let buffer =
            self.pipeline.buffers.get(&rg).ok_or_else(|| {
                GenerationError::validation(format!("row group {rg} is not live"))
            })?;
        match r.task.row_index {
            Some(row) => {
                let record = buffer.rows.get(row as usize).ok_or_else(|| {
                    GenerationError::validation(format!("row {row} out of range"))
                })?;
                let ctx = CellContext::new(
                    &col.name,
                    record,
                    rg,
                    row,
                    buffer.offset + row,
                    self.workflow.seed,
                    &self.models,
                );
                col.generator
                    .generate_cell(&ctx)
                    .await
                    .map(WorkerOutput::Cell)
            }
            None => {
                let mut rows = self.batch_rows(rg, &col.name);
                let mut ctx = BatchContext {
                    column: &col.name,
                    row_group: rg,
                    seed: crate::generators::batch_seed(self.workflow.seed, &col.name, rg),
                    rows: &mut rows,
                    models: &self.models,
                };
                col.generator.generate_full_column(&mut ctx).await?;
                Ok(WorkerOutput::Batch(rows))
            }
        }
    }

    /// The live rows of a row group, copied for a full-column task.
    pub(super) fn batch_rows(&self, rg: u64, column: &str) -> Vec<BatchRow> {
        let Some(buffer) = self.pipeline.buffers.get(&rg) else {
            return Vec::new();
        };
        buffer
            .rows
            .iter()
            .enumerate()
            .filter(|(i, _)| self.tracker.is_dropped(rg, *i as u64) == Some(false))
            .map(|(i, record)| BatchRow {
                row_index: i as u64,
                seed: crate::generators::cell_seed(
                    self.workflow.seed,
                    column,
                    buffer.offset + i as u64,
                ),
                record: record.clone(),
                drop_reason: None,
            })
            .collect()
    }

    /// The spawned worker: owns copies of its inputs and runs under the task's correlation.
    pub(super) fn worker_future(
        &self,
        r: &Running,
    ) -> Result<
        impl std::future::Future<Output = Result<WorkerOutput, GenerationError>> + Send + 'static,
        SchedulerError,
    > {
        let col = &self.columns[r.column];
        let rg = r.task.row_group;
        let buffer = self
            .pipeline
            .buffers
            .get(&rg)
            .ok_or_else(|| internal(format!("row group {rg} is not live")))?;
        let generator = col.generator.clone();
        let column = col.name.clone();
        let models = self.models.clone();
        let seed = self.workflow.seed;
        let correlation = Arc::new(self.events.correlation(col, &r.task, Some(r.execution)));
        let offset = buffer.offset;
        let input = match r.task.row_index {
            Some(row) => {
                let record =
                    buffer.rows.get(row as usize).cloned().ok_or_else(|| {
                        internal(format!("row {row} of row group {rg} out of range"))
                    })?;
                WorkerInput::Cell { row, record }
            }
            None => WorkerInput::Batch(self.batch_rows(rg, &col.name)),
        };
        Ok(RuntimeCorrelationProvider::scope(correlation, async move {
            match input {
                WorkerInput::Cell { row, record } => {
                    let ctx =
                        CellContext::new(&column, &record, rg, row, offset + row, seed, &models);
                    generator.generate_cell(&ctx).await.map(WorkerOutput::Cell)
                }
                WorkerInput::Batch(mut rows) => {
                    let mut ctx = BatchContext {
                        column: &column,
                        row_group: rg,
                        seed: crate::generators::batch_seed(seed, &column, rg),
                        rows: &mut rows,
                        models: &models,
                    };
                    generator.generate_full_column(&mut ctx).await?;
                    Ok(WorkerOutput::Batch(rows))
                }
            }
        }))
    }

    pub(super) fn on_joined(
        &mut self,
        joined: Result<(WorkerId, Result<WorkerOutput, GenerationError>), JoinError>,
    ) -> Result<(), SchedulerError> {
        let (id, ending) = match joined {
            Ok((id, Ok(out))) => (id, Ending::Output(out)),
            Ok((id, Err(e))) => (id, Ending::Failed(e)),
            Err(e) if e.is_panic() => (e.id(), Ending::Panicked),
            Err(e) => (e.id(), Ending::Aborted),
        };
        let running = self
            .running
            .remove(&id)
            .ok_or_else(|| internal("a worker finished that the loop does not know".into()))?;
        self.finish(running, ending)
    }
}

pub(super) enum WorkerInput {
    Cell { row: u64, record: Record },
    Batch(Vec<BatchRow>),
}

/// Runs `fut`, turning a panic while polling it into `Err(())` (inline work must not take the
/// dispatch loop down with it; spawned workers get the same from their `JoinSet`).
pub(super) async fn catch_panics<F: std::future::Future>(fut: F) -> Result<F::Output, ()> {
    let mut fut = Box::pin(fut);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    })
    .await
}
