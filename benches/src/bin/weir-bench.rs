//! `weir-bench`: the scenario harness (`run`, `compare`, `list`); `cargo xtask bench` drives it.

use std::path::PathBuf;
use std::process::ExitCode;
use weir_benches::harness::compare::compare;
use weir_benches::harness::driver::{all_pass, run, RunOptions};
use weir_benches::harness::scenarios::{build, select, SizeOptions, SCENARIO_IDS};

const USAGE: &str = "\
usage:
  weir-bench run [--scenario NAME|all|A,B] [--records N] [--iterations K] [--warmups W]
                 [--seed S] [--out DIR] [--smoke] [--role single|baseline|candidate]
                 [--sha SHA] [--baseline-sha SHA] [--timeline-limit N|all] [--machine-note TEXT]
  weir-bench compare --baseline DIR --candidate DIR --out DIR [--baseline-sha SHA] [--candidate-sha SHA]
  weir-bench list

Exit status: 0 when every enforced gate passes, 1 when one fails, 2 on bad usage.";

fn git_head() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("weir-bench: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("run") => cmd_run(&args),
        Some("compare") => cmd_compare(&args[2..]),
        Some("list") => {
            let o = SizeOptions {
                smoke: false,
                records: None,
                seed: 42,
            };
            for id in SCENARIO_IDS {
                match build(id, &o) {
                    Ok(s) => println!("{id:<30} v{} {:<6} {}", s.version, s.suite, s.description),
                    Err(e) => println!("{id:<30} (cannot build: {e})"),
                }
            }
            ExitCode::SUCCESS
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => usage("expected a command"),
    }
}

fn cmd_run(all_args: &[String]) -> ExitCode {
    let args = &all_args[2..];
    let mut scenario = "all".to_owned();
    let mut records = None;
    let mut iterations = None;
    let mut warmups = None;
    let mut seed = 42u64;
    let mut out = None;
    let mut smoke = false;
    let mut role = "single".to_owned();
    let mut sha = None;
    let mut baseline_sha = None;
    let mut timeline_limit = Some(500usize);
    let mut machine_note = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let r: Result<(), String> = (|| {
            match a.as_str() {
                "--scenario" => scenario = val("--scenario")?,
                "--records" => {
                    records = Some(
                        val("--records")?
                            .parse::<u64>()
                            .map_err(|e| format!("--records: {e}"))?,
                    )
                }
                "--iterations" => {
                    iterations = Some(
                        val("--iterations")?
                            .parse::<usize>()
                            .map_err(|e| format!("--iterations: {e}"))?,
                    )
                }
                "--warmups" => {
                    warmups = Some(
                        val("--warmups")?
                            .parse::<usize>()
                            .map_err(|e| format!("--warmups: {e}"))?,
                    )
                }
                "--seed" => seed = val("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
                "--out" => out = Some(PathBuf::from(val("--out")?)),
                "--smoke" => smoke = true,
                "--role" => role = val("--role")?,
                "--sha" => sha = Some(val("--sha")?),
                "--baseline-sha" => baseline_sha = Some(val("--baseline-sha")?),
                "--timeline-limit" => {
                    let v = val("--timeline-limit")?;
                    timeline_limit = if v == "all" {
                        None
                    } else {
                        Some(v.parse().map_err(|e| format!("--timeline-limit: {e}"))?)
                    };
                }
                "--machine-note" => machine_note = Some(val("--machine-note")?),
                other => return Err(format!("unknown argument {other:?}")),
            }
            Ok(())
        })();
        if let Err(e) = r {
            return usage(&e);
        }
    }
    if records == Some(0) {
        return usage("--records must be at least 1");
    }
    let scenarios = match select(&scenario) {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let iterations = iterations.unwrap_or(if smoke { 2 } else { 5 });
    if iterations == 0 {
        return usage("--iterations must be at least 1");
    }
    let opts = RunOptions {
        scenarios,
        size: SizeOptions {
            smoke,
            records,
            seed,
        },
        iterations,
        warmups: warmups.unwrap_or(if smoke { 0 } else { 1 }),
        out: out.unwrap_or_else(|| {
            PathBuf::from(if smoke {
                "target/weir-bench-smoke"
            } else {
                "target/weir-bench"
            })
        }),
        role,
        sha: sha.or_else(git_head),
        baseline_sha,
        timeline_limit: if smoke {
            timeline_limit.map(|n| n.min(200))
        } else {
            timeline_limit
        },
        machine_note,
        command_line: all_args.to_vec(),
    };
    let started = std::time::Instant::now();
    match run(&opts) {
        Ok(gates) => {
            let failed = gates
                .iter()
                .filter(|g| g.status == weir_benches::harness::gates::Status::Fail)
                .count();
            println!(
                "weir-bench: {} gate(s), {failed} failed, {:.1} s; artifacts in {}",
                gates.len(),
                started.elapsed().as_secs_f64(),
                opts.out.display()
            );
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

fn cmd_compare(args: &[String]) -> ExitCode {
    let (mut b, mut c, mut out, mut bs, mut cs) = (None, None, None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().cloned();
        match (a.as_str(), v) {
            ("--baseline", Some(v)) => b = Some(PathBuf::from(v)),
            ("--candidate", Some(v)) => c = Some(PathBuf::from(v)),
            ("--out", Some(v)) => out = Some(PathBuf::from(v)),
            ("--baseline-sha", Some(v)) => bs = Some(v),
            ("--candidate-sha", Some(v)) => cs = Some(v),
            (other, _) => return usage(&format!("bad or incomplete argument {other:?}")),
        }
    }
    let (Some(b), Some(c), Some(out)) = (b, c, out) else {
        return usage("compare needs --baseline, --candidate and --out");
    };
    let bs = bs.unwrap_or_else(|| "baseline".into());
    let cs = cs.unwrap_or_else(|| "candidate".into());
    match compare(&b, &c, &out, (&bs, &cs)) {
        Ok(gates) => {
            for g in &gates {
                println!("{g}");
            }
            println!(
                "weir-bench: comparison in {}",
                out.join("comparison.md").display()
            );
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
