//! weir's project task runner: argument dispatch for `cargo xtask <command>`.
//!
//! Hand-written argument parsing on purpose: three commands do not justify
//! compiling clap for every `cargo xtask` invocation.

mod bench;
mod ci;
mod docs_alone;
mod gates;
mod workspace;

use std::process::ExitCode;

/// Usage text printed for `help` and for unknown commands.
const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  lint-gates            check the architecture gates (dependency edges, legacy names,
                        cross-crate re-exports, module docs, unwrap in library code,
                        request admission ledger/waiters naming no limit algorithm)
  ci                    fmt --check, clippy -D warnings, lint-gates, test, bench smoke
                        (stops at the first failure)
  bench micro [args..]  run the weir-micro benchmark binary (release) with the given args
  bench [--scenario NAME|all] [--records N] [--iterations K] [--warmups W] [--seed S]
        [--out DIR] [--smoke] [--baseline REF --candidate REF]
                        the scenario harness (weir-bench, release): artifacts + PASS/FAIL gates;
                        with two refs, builds each in its own worktree and runs them A B A B
  bench list            list the harness scenarios
  docs-alone            build and run each library crate's opening doc example from a fresh
                        crate that depends only on what its docs say
  help                  print this message";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    match command.as_str() {
        "lint-gates" => lint_gates(),
        "ci" => ci::run(),
        "docs-alone" => match workspace::root() {
            Ok(root) => docs_alone::run(&root),
            Err(err) => {
                eprintln!("docs-alone: {err}");
                ExitCode::FAILURE
            }
        },
        "bench" => bench::run(rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `cargo xtask lint-gates`: run every gate and report all violations at once.
fn lint_gates() -> ExitCode {
    let root = match workspace::root() {
        Ok(root) => root,
        Err(err) => {
            eprintln!("lint-gates: {err}");
            return ExitCode::FAILURE;
        }
    };
    if gates::report(&gates::run_all(&root)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
