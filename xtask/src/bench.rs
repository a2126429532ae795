//! `cargo xtask bench`: forwards `micro` to the weir-micro runner; scenarios are not built yet.

use std::process::ExitCode;

use crate::workspace;

/// Dispatch `cargo xtask bench <kind> [args...]`.
pub fn run(args: &[String]) -> ExitCode {
    match args.split_first() {
        Some((kind, rest)) if kind == "micro" => micro(rest),
        _ => {
            eprintln!("not yet implemented: the scenario harness (issue 8)");
            ExitCode::from(2)
        }
    }
}

/// Run `cargo run --release -p weir-benches --bin weir-micro -- <args>` and pass its exit code on.
fn micro(args: &[String]) -> ExitCode {
    let root = match workspace::root() {
        Ok(root) => root,
        Err(err) => {
            eprintln!("bench micro: {err}");
            return ExitCode::FAILURE;
        }
    };
    let status = workspace::cargo()
        .args([
            "run",
            "--release",
            "-p",
            "weir-benches",
            "--bin",
            "weir-micro",
            "--",
        ])
        .args(args)
        .current_dir(root)
        .status();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            // Keep the runner's own exit code when it has one (it is machine-read).
            let code = status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1);
            ExitCode::from(code.max(1))
        }
        Err(err) => {
            eprintln!("bench micro: cannot run cargo: {err}");
            ExitCode::FAILURE
        }
    }
}
