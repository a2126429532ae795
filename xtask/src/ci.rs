//! `cargo xtask ci`: the ordered CI pipeline, stopping at the first failing step.

use std::process::ExitCode;

use crate::{gates, workspace};

/// One pipeline step.
enum Step {
    /// A cargo invocation (arguments after `cargo`).
    Cargo(&'static [&'static str]),
    /// The architecture gates, run in-process.
    LintGates,
}

/// The pipeline, in order. Cheap checks first so failures surface fast.
const STEPS: &[Step] = &[
    Step::Cargo(&["fmt", "--all", "--", "--check"]),
    Step::Cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]),
    Step::LintGates,
    Step::Cargo(&["test", "--workspace"]),
    // Every benchmark scenario at tiny size (< 60 s); fails on any enforced FAIL gate.
    Step::Cargo(&["xtask", "bench", "--smoke"]),
];

/// Run every step in order; the first failure ends the run with a message naming it.
pub fn run() -> ExitCode {
    let root = match workspace::root() {
        Ok(root) => root,
        Err(err) => {
            eprintln!("ci: {err}");
            return ExitCode::FAILURE;
        }
    };
    for step in STEPS {
        match step {
            Step::Cargo(args) => {
                let shown = format!("cargo {}", args.join(" "));
                eprintln!("ci: ==> {shown}");
                let status = workspace::cargo().args(*args).current_dir(&root).status();
                match status {
                    Ok(status) if status.success() => {}
                    Ok(status) => {
                        eprintln!("ci: FAILED at step `{shown}` ({status})");
                        return ExitCode::FAILURE;
                    }
                    Err(err) => {
                        eprintln!("ci: FAILED at step `{shown}`: cannot run cargo: {err}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            Step::LintGates => {
                eprintln!("ci: ==> lint-gates");
                if !gates::report(&gates::run_all(&root)) {
                    eprintln!("ci: FAILED at step `lint-gates`");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    eprintln!("ci: all steps passed");
    ExitCode::SUCCESS
}
