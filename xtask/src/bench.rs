//! `cargo xtask bench`: forwards `micro` to the weir-micro runner; everything else drives the
//! `weir-bench` scenario harness (built in release), either on the current checkout or A/B on
//! two refs, each built in its own git worktree and run interleaved A B A B.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::workspace;

const USAGE: &str = "\
usage:
  cargo xtask bench micro [--filter NAME] [--json OUT.json]
  cargo xtask bench [--scenario NAME|all] [--records N] [--iterations K] [--warmups W]
                    [--seed S] [--out DIR] [--smoke] [--timeline-limit N|all] [--machine-note TEXT]
                    [--baseline REF --candidate REF]
  cargo xtask bench list

With --baseline and --candidate each ref is built (release) in its own git worktree and the two
binaries run interleaved A B A B; the report (OUT/comparison.md) names the winner of each metric.";

/// Dispatch `cargo xtask bench <args...>`.
pub fn run(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        Some("micro") => forward("weir-micro", &args[1..]),
        Some("list") => forward("weir-bench", &["list".to_owned()]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => scenarios(args),
    }
}

/// `cargo run --release -p weir-benches --bin <bin> -- <args>`, passing the exit code on.
fn forward(bin: &str, args: &[String]) -> ExitCode {
    let root = match workspace::root() {
        Ok(root) => root,
        Err(err) => {
            eprintln!("bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    let status = workspace::cargo()
        .args(["run", "--release", "-p", "weir-benches", "--bin", bin, "--"])
        .args(args)
        .current_dir(root)
        .status();
    exit_of(bin, status)
}

/// `cargo build --release -p weir-cli` (the `weir` binary the coordinated scenario runs).
fn build_weir_cli() -> Result<(), ExitCode> {
    let root = workspace::root().map_err(|err| {
        eprintln!("bench: {err}");
        ExitCode::FAILURE
    })?;
    let status = workspace::cargo()
        .args(["build", "--release", "-p", "weir-cli", "--bin", "weir"])
        .current_dir(root)
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        other => Err(exit_of("cargo build -p weir-cli", other)),
    }
}

fn exit_of(what: &str, status: std::io::Result<std::process::ExitStatus>) -> ExitCode {
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
            eprintln!("bench: cannot run {what}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Parsed scenario-harness arguments: the two refs, the output dir, and everything else
/// (passed to `weir-bench run` verbatim).
struct Parsed {
    baseline: Option<String>,
    candidate: Option<String>,
    out: Option<String>,
    iterations: usize,
    warmups: usize,
    rest: Vec<String>,
}

fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut p = Parsed {
        baseline: None,
        candidate: None,
        out: None,
        iterations: 5,
        warmups: 1,
        rest: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--baseline" => p.baseline = Some(value()?),
            "--candidate" => p.candidate = Some(value()?),
            "--out" => p.out = Some(value()?),
            "--iterations" => {
                p.iterations = value()?.parse().map_err(|e| format!("--iterations: {e}"))?
            }
            "--warmups" => p.warmups = value()?.parse().map_err(|e| format!("--warmups: {e}"))?,
            "--smoke" => p.rest.push(a.clone()),
            "--scenario" | "--records" | "--seed" | "--timeline-limit" | "--machine-note" => {
                let v = value()?;
                p.rest.push(a.clone());
                p.rest.push(v);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if p.baseline.is_some() != p.candidate.is_some() {
        return Err("--baseline and --candidate go together".into());
    }
    Ok(p)
}

fn scenarios(args: &[String]) -> ExitCode {
    let parsed = match parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (Some(baseline), Some(candidate)) = (parsed.baseline.clone(), parsed.candidate.clone())
    else {
        // One checkout: the binary runs warm-ups and iterations itself.
        let mut run_args = vec!["run".to_owned()];
        run_args.extend(parsed.rest.iter().cloned());
        if args.iter().any(|a| a == "--iterations") {
            run_args.extend(["--iterations".into(), parsed.iterations.to_string()]);
        }
        if args.iter().any(|a| a == "--warmups") {
            run_args.extend(["--warmups".into(), parsed.warmups.to_string()]);
        }
        if let Some(out) = &parsed.out {
            run_args.extend(["--out".into(), out.clone()]);
        }
        // The coordinated scenario spawns the release `weir` binary beside weir-bench.
        if run_args.iter().any(|a| a.contains("coordinated")) {
            if let Err(code) = build_weir_cli() {
                return code;
            }
        }
        return forward("weir-bench", &run_args);
    };
    match ab(&parsed, &baseline, &candidate) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// One side of an A/B run: its commit, worktree and built binary.
struct Side {
    label: &'static str,
    sha: String,
    worktree: PathBuf,
    binary: PathBuf,
}

/// Adds a detached worktree for `sha` and builds weir-bench there with its own target dir.
fn prepare(root: &Path, work: &Path, label: &'static str, reference: &str) -> Result<Side, String> {
    let sha = git(
        root,
        &["rev-parse", "--verify", &format!("{reference}^{{commit}}")],
    )
    .map_err(|e| format!("{label} ref {reference:?}: {e}"))?;
    let short = &sha[..12.min(sha.len())];
    let worktree = work.join(format!("wt-{label}-{short}"));
    if !worktree.join("Cargo.toml").exists() {
        let wt = worktree.to_string_lossy().into_owned();
        git(root, &["worktree", "add", "--detach", &wt, &sha])?;
    }
    if !worktree.join("benches/src/bin/weir-bench.rs").exists() {
        return Err(format!(
            "{label} ref {reference:?} ({short}) has no scenario harness (benches/src/bin/weir-bench.rs); \
             `cargo xtask bench --baseline/--candidate` needs refs that contain weir-bench (issue 8). \
             For older refs compare `cargo xtask bench micro --json` outputs instead."
        ));
    }
    let target = work.join(format!("target-{short}"));
    eprintln!(
        "bench: building weir-bench for {label} {short} in {}",
        worktree.display()
    );
    let status = workspace::cargo()
        .args([
            "build",
            "--release",
            "-p",
            "weir-benches",
            "--bin",
            "weir-bench",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&worktree)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building weir-bench for {label} {short} failed ({status})"
        ));
    }
    Ok(Side {
        label,
        sha,
        worktree,
        binary: target.join("release").join("weir-bench"),
    })
}

fn run_side(side: &Side, rest: &[String], out: &Path, baseline_sha: &str) -> Result<bool, String> {
    let status = Command::new(&side.binary)
        .arg("run")
        .args(rest)
        .args(["--iterations", "1", "--warmups", "0", "--role", side.label])
        .args(["--sha", &side.sha, "--baseline-sha", baseline_sha])
        .arg("--out")
        .arg(out)
        .current_dir(&side.worktree)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", side.binary.display()))?;
    // Exit 1 is a failed gate (recorded in the artifacts); anything else is a crash.
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!("{} run failed ({status})", side.label)),
    }
}

fn ab(p: &Parsed, baseline: &str, candidate: &str) -> Result<ExitCode, String> {
    let root = workspace::root()?;
    let out = PathBuf::from(
        p.out
            .clone()
            .unwrap_or_else(|| "target/weir-bench-ab".into()),
    );
    let out = if out.is_absolute() {
        out
    } else {
        root.join(out)
    };
    let work = root.join("target").join("weir-bench-worktrees");
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let a = prepare(&root, &work, "baseline", baseline)?;
    let b = prepare(&root, &work, "candidate", candidate)?;
    let raw = out.join("raw");
    let _ = std::fs::remove_dir_all(&raw);
    for w in 0..p.warmups {
        eprintln!("bench: warm-up round {}/{}", w + 1, p.warmups);
        for side in [&a, &b] {
            run_side(side, &p.rest, &work.join("warmup").join(side.label), &a.sha)?;
        }
    }
    let mut candidate_ok = true;
    for i in 0..p.iterations.max(1) {
        eprintln!(
            "bench: measured round {}/{} (A then B)",
            i + 1,
            p.iterations.max(1)
        );
        for side in [&a, &b] {
            let dir = raw.join(side.label).join(format!("iter-{i:02}"));
            let ok = run_side(side, &p.rest, &dir, &a.sha)?;
            if side.label == "candidate" {
                candidate_ok &= ok;
            }
        }
    }
    let status = Command::new(&b.binary)
        .arg("compare")
        .arg("--baseline")
        .arg(raw.join("baseline"))
        .arg("--candidate")
        .arg(raw.join("candidate"))
        .arg("--out")
        .arg(&out)
        .args(["--baseline-sha", &a.sha, "--candidate-sha", &b.sha])
        .status();
    for side in [&a, &b] {
        let wt = side.worktree.to_string_lossy().into_owned();
        if let Err(e) = git(&root, &["worktree", "remove", "--force", &wt]) {
            eprintln!("bench: could not remove worktree {wt}: {e}");
        }
    }
    let code = exit_of("weir-bench compare", status);
    if !candidate_ok {
        eprintln!("bench: the candidate failed a gate in at least one round (see its artifacts)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(code)
}
