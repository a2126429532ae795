//! `weir-micro`: runs weir's micro benchmarks and writes their JSON rows (`--filter`, `--json`).

use clap::Parser;
use std::process::ExitCode;

/// Runs weir's micro benchmarks; prints a line per row and optionally writes them as JSON.
#[derive(Parser)]
#[command(name = "weir-micro")]
struct Cli {
    /// Only areas whose name contains this (`task-admission`, `request-admission`; empty: all).
    #[arg(long, default_value = "")]
    filter: String,
    /// Write the rows as a JSON array to this file.
    #[arg(long = "json", value_name = "OUT.json")]
    json_out: Option<String>,
}

fn main() -> ExitCode {
    let Cli { filter, json_out } = Cli::parse();
    let rows = weir_benches::run_filtered(&filter);
    if rows.is_empty() {
        eprintln!("weir-micro: no benchmark matches filter {filter:?}");
        return ExitCode::from(2);
    }
    for r in &rows {
        let ratio = r
            .ratio
            .map(|x| format!("{x:.2}x"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<48} {:<32} {:>10.1} ns/op  ratio {ratio}",
            r.benchmark,
            r.params.to_string(),
            r.ns_per_op_median
        );
    }
    let text = match serde_json::to_string_pretty(&rows) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("weir-micro: cannot encode results: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = json_out {
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("weir-micro: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
        println!("wrote {path}");
    }
    ExitCode::SUCCESS
}
