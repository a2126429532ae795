//! Local-work throughput: root sampler → 2 cell columns, zero-latency local generators.
//!
//! `cargo run --release -p weir-runtime --example throughput -- [RECORDS] [BUFFER]`

use std::sync::Arc;
use std::time::Instant;
use weir_runtime::generators::{Category, Expression, UniformInt};
use weir_runtime::model_facade::NoModelFacade;
use weir_runtime::scheduler::{AsyncTaskScheduler, RecordSink};
use weir_runtime::workflow::{ColumnSpec, Workflow};

/// Counts records without keeping them.
struct CountingSink(u64);

impl RecordSink for CountingSink {
    fn write_row_group(
        &mut self,
        _row_group: u64,
        records: &[(u64, weir_runtime::generators::Record)],
    ) -> std::io::Result<()> {
        self.0 += records.len() as u64;
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let records: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let buffer: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000);
    let workflow = Arc::new(
        Workflow::new("throughput", records, 1)
            .with_buffer_size(buffer)
            .with_max_concurrent_row_groups(4)
            .with_column(ColumnSpec::new(
                "topic",
                Arc::new(Category::new(["a", "b", "c"])?),
            ))
            .with_column(
                ColumnSpec::new("n", Arc::new(UniformInt::new(0, 1_000)?)).depends_on(["topic"]),
            )
            .with_column(ColumnSpec::new(
                "title",
                Arc::new(Expression::new("{{ topic }}-{{ n }}")?),
            )),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut sink = CountingSink(0);
    let started = Instant::now();
    let outcome = runtime
        .block_on(AsyncTaskScheduler::new(workflow, Arc::new(NoModelFacade)).run(&mut sink))?;
    let secs = started.elapsed().as_secs_f64();
    let tasks = outcome.report.tasks_completed;
    println!(
        "records={} tasks={} wall={:.3}s tasks_per_s={:.0} records_written={}",
        records,
        tasks,
        secs,
        tasks as f64 / secs,
        sink.0
    );
    Ok(())
}
