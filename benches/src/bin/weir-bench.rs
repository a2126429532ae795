//! `weir-bench`: the scenario harness (`run`, `compare`, `list`); `cargo xtask bench` drives it.

use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use weir_benches::harness::compare::compare;
use weir_benches::harness::driver::{all_pass, run, RunOptions};
use weir_benches::harness::gates::{Gate, Status};
use weir_benches::harness::scenarios::{
    build, select, SizeOptions, OPT_IN_SCENARIO_IDS, SCENARIO_IDS,
};

/// The scenario harness: runs scenarios into artifacts with PASS/FAIL gates, compares two runs.
#[derive(Parser)]
#[command(
    name = "weir-bench",
    after_help = "Exit status: 0 when every enforced gate passes, 1 when one fails, 2 on bad usage."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs scenarios; writes artifacts and gate verdicts.
    Run(RunArgs),
    /// Compares a baseline and a candidate artifact directory.
    Compare(CompareArgs),
    /// Lists the scenarios.
    List,
}

#[derive(Args)]
struct RunArgs {
    /// Scenario id, `all`, or a comma-separated list.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Records per scenario (default: the scenario's own size).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    records: Option<u64>,
    /// Measured iterations (default 5, smoke 2; the goodput matrix: 3, smoke 1).
    #[arg(long, value_parser = at_least_one)]
    iterations: Option<usize>,
    /// Untimed warm-up iterations (default 1, smoke 0).
    #[arg(long)]
    warmups: Option<usize>,
    /// Seed of the scenarios' randomness.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Artifact directory (default target/weir-bench, or target/weir-bench-smoke).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Small sizes and the CI smoke gates.
    #[arg(long)]
    smoke: bool,
    /// single, baseline or candidate (recorded in the artifact).
    #[arg(long, default_value = "single")]
    role: String,
    /// Commit of this run (default: `git rev-parse HEAD`).
    #[arg(long)]
    sha: Option<String>,
    /// Commit of the baseline in an A/B run.
    #[arg(long)]
    baseline_sha: Option<String>,
    /// Events kept per timeline: a number or `all` (smoke caps it at 200).
    #[arg(long, default_value = "500", value_parser = timeline_limit)]
    timeline_limit: TimelineLimit,
    /// Free text about the machine, recorded in the artifact.
    #[arg(long)]
    machine_note: Option<String>,
}

#[derive(Args)]
struct CompareArgs {
    /// Baseline artifact directory.
    #[arg(long)]
    baseline: PathBuf,
    /// Candidate artifact directory.
    #[arg(long)]
    candidate: PathBuf,
    /// Where the comparison goes.
    #[arg(long)]
    out: PathBuf,
    /// Label of the baseline.
    #[arg(long, default_value = "baseline")]
    baseline_sha: String,
    /// Label of the candidate.
    #[arg(long, default_value = "candidate")]
    candidate_sha: String,
}

/// `--timeline-limit`: `None` keeps every event.
#[derive(Debug, Clone, Copy)]
struct TimelineLimit(Option<usize>);

fn timeline_limit(v: &str) -> Result<TimelineLimit, String> {
    if v == "all" {
        return Ok(TimelineLimit(None));
    }
    v.parse()
        .map(|n| TimelineLimit(Some(n)))
        .map_err(|e| format!("{e} (a number or `all`)"))
}

fn at_least_one(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn git_head() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A usage error in clap's format (exit status 2).
fn usage(msg: &str) -> ExitCode {
    let _ = Cli::command()
        .error(clap::error::ErrorKind::ValueValidation, msg)
        .print();
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let all_args: Vec<String> = std::env::args().collect();
    match Cli::parse().command {
        Command::Run(args) => cmd_run(args, &all_args),
        Command::Compare(args) => cmd_compare(args),
        Command::List => {
            let o = SizeOptions {
                smoke: false,
                records: None,
                seed: 42,
            };
            // Opt-in scenarios run only when named (`--scenario ID`), never as part of `all`.
            let ids = SCENARIO_IDS.iter().map(|id| (*id, "")).chain(
                OPT_IN_SCENARIO_IDS
                    .iter()
                    .map(|id| (*id, " (opt-in: needs redis-server)")),
            );
            for (id, note) in ids {
                match build(id, &o) {
                    Ok(s) => println!(
                        "{id:<30} v{} {:<6} {}{note}",
                        s.version, s.suite, s.description
                    ),
                    Err(e) => println!("{id:<30} (cannot build: {e})"),
                }
            }
            ExitCode::SUCCESS
        }
    }
}

fn cmd_run(args: RunArgs, all_args: &[String]) -> ExitCode {
    let smoke = args.smoke;
    let scenarios = match select(&args.scenario) {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let timeline_limit = args.timeline_limit.0;
    let opts = RunOptions {
        scenarios,
        size: SizeOptions {
            smoke,
            records: args.records,
            seed: args.seed,
        },
        iterations: args.iterations.unwrap_or(if smoke { 2 } else { 5 }),
        goodput_iterations: args.iterations.unwrap_or(if smoke { 1 } else { 3 }),
        warmups: args.warmups.unwrap_or(if smoke { 0 } else { 1 }),
        out: args.out.unwrap_or_else(|| {
            PathBuf::from(if smoke {
                "target/weir-bench-smoke"
            } else {
                "target/weir-bench"
            })
        }),
        role: args.role,
        sha: args.sha.or_else(git_head),
        baseline_sha: args.baseline_sha,
        timeline_limit: if smoke {
            timeline_limit.map(|n| n.min(200))
        } else {
            timeline_limit
        },
        machine_note: args.machine_note,
        command_line: all_args.to_vec(),
    };
    let started = std::time::Instant::now();
    exit_status(run(&opts), |gates| {
        let failed = gates.iter().filter(|g| g.status == Status::Fail).count();
        println!(
            "weir-bench: {} gate(s), {failed} failed, {:.1} s; artifacts in {}",
            gates.len(),
            started.elapsed().as_secs_f64(),
            opts.out.display()
        );
    })
}

fn cmd_compare(args: CompareArgs) -> ExitCode {
    let out = args.out;
    let labels = (args.baseline_sha.as_str(), args.candidate_sha.as_str());
    exit_status(
        compare(&args.baseline, &args.candidate, &out, labels),
        |gates| {
            for g in gates {
                println!("{g}");
            }
            println!(
                "weir-bench: comparison in {}",
                out.join("comparison.md").display()
            );
        },
    )
}

/// Reports a finished command's gates; 0 when every enforced gate passed, 1 otherwise or on error.
fn exit_status(result: Result<Vec<Gate>, String>, report: impl FnOnce(&[Gate])) -> ExitCode {
    match result {
        Ok(gates) => {
            report(&gates);
            if all_pass(&gates) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("weir-bench: {e}");
            ExitCode::from(1)
        }
    }
}
