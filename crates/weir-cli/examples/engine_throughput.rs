//! The engine alone on a workflow spec: `Engine` with no event sinks and a record sink that only
//! counts, to compare with `weir run --events none` on the same spec (the CLI's own overhead).
//!
//! `cargo run --release -p weir-cli --example engine_throughput -- SPEC.json [RECORDS]`

use std::sync::Arc;
use std::time::Instant;
use weir_cli::spec::WorkflowSpec;
use weir_runtime::engine::Engine;
use weir_runtime::generators::Record;
use weir_runtime::scheduler::RecordSink;

/// Counts records without keeping them.
struct CountingSink(u64);

impl RecordSink for CountingSink {
    fn write_row_group(&mut self, _rg: u64, records: &[(u64, Record)]) -> std::io::Result<()> {
        self.0 += records.len() as u64;
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: engine_throughput SPEC.json [RECORDS]")?;
    let records: Option<u64> = args.next().map(|a| a.parse()).transpose()?;
    let (spec, _) = WorkflowSpec::load(std::path::Path::new(&path))?;
    let spec = spec.with_overrides(records, None);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let built = runtime.block_on(async { spec.build() })?;
    let engine = Engine::new(Arc::new(built.workflow.clone()), built.engine_providers())
        .with_config(spec.engine_config()?);
    let prepared = engine.prepare()?;
    let mut sink = CountingSink(0);
    let started = Instant::now();
    let result = runtime.block_on(prepared.run(&mut sink))?;
    let secs = started.elapsed().as_secs_f64();
    let tasks = result.report.tasks_completed;
    println!(
        "records={} tasks={tasks} wall={secs:.3}s tasks_per_s={:.0} records_written={}",
        spec.records,
        tasks as f64 / secs,
        sink.0
    );
    Ok(())
}
