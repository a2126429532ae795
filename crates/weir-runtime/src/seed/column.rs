//! `SeedColumn`: the full-column generator that fills one seed column of a row group.

use super::{SeedDataset, SeedSampling};
use crate::generators::{BatchContext, ColumnGenerator, GenerationError};
use crate::workflow::Strategy;
use async_trait::async_trait;
use std::sync::Arc;

/// Fills one seed column: record `i` (global row index) takes column `column` of seed row
/// `sampling.seed_row(rows, seed, i)`. A root column (it reads no other column); one per seed
/// column, all sharing the dataset's index.
#[derive(Debug, Clone)]
pub struct SeedColumn {
    dataset: Arc<SeedDataset>,
    column: usize,
    sampling: SeedSampling,
    seed: u64,
    buffer_size: u64,
}

impl SeedColumn {
    /// Every column of `dataset` as generators, in the file's order, for a workflow seeded
    /// `seed` whose row groups hold `buffer_size` rows (the global row index is
    /// `row_group × buffer_size + row_index`).
    pub fn all(
        dataset: &Arc<SeedDataset>,
        sampling: SeedSampling,
        seed: u64,
        buffer_size: u64,
    ) -> Vec<(String, Self)> {
        dataset
            .columns()
            .iter()
            .enumerate()
            .map(|(column, name)| {
                let g = Self {
                    dataset: dataset.clone(),
                    column,
                    sampling,
                    seed,
                    buffer_size,
                };
                (name.clone(), g)
            })
            .collect()
    }

    /// The seed row of global record `record`.
    pub fn seed_row(&self, record: u64) -> u64 {
        self.sampling
            .seed_row(self.dataset.rows(), self.seed, record)
    }
}

#[async_trait]
impl ColumnGenerator for SeedColumn {
    fn strategy(&self) -> Strategy {
        Strategy::FullColumn
    }

    fn required_columns(&self) -> Vec<String> {
        Vec::new()
    }

    async fn generate_full_column(
        &self,
        ctx: &mut BatchContext<'_>,
    ) -> Result<(), GenerationError> {
        let offset = ctx.row_group.saturating_mul(self.buffer_size);
        let rows: Vec<u64> = ctx
            .rows
            .iter()
            .map(|r| self.seed_row(offset.saturating_add(r.row_index)))
            .collect();
        let dataset = self.dataset.clone();
        let column = self.column;
        // File reads block: keep them off the runtime's worker threads.
        let values = tokio::task::spawn_blocking(move || dataset.read_column(&rows, column))
            .await
            .map_err(|e| GenerationError::validation(format!("seed read stopped: {e}")))?
            .map_err(|e| GenerationError::validation(format!("seed dataset: {e}")))?;
        let name = ctx.column.to_string();
        for (row, value) in ctx.rows.iter_mut().zip(values) {
            row.record.insert(name.clone(), value);
        }
        Ok(())
    }
}
