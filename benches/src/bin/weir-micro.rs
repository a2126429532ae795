//! `weir-micro`: runs weir's micro benchmarks and writes their JSON rows (`--filter`, `--json`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut filter = String::new();
    let mut json_out: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--filter" => filter = args.next().unwrap_or_default(),
            "--json" => json_out = args.next(),
            "-h" | "--help" => {
                println!("usage: weir-micro [--filter task-admission|request-admission] [--json OUT.json]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("weir-micro: unknown argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
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
