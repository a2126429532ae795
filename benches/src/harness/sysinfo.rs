//! Machine and process facts for artifacts: CPU count, model name, load, process CPU time, peak RSS.
//!
//! Linux `/proc` only; every reader returns `None` elsewhere instead of failing the run.

use serde::Serialize;

/// Where a run happened.
#[derive(Debug, Clone, Serialize)]
pub struct MachineInfo {
    /// `std::thread::available_parallelism`.
    pub cpus: usize,
    /// First `model name` of `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started.
    pub load_average: Option<[f64; 3]>,
    /// Total memory in MiB.
    pub memory_mib: Option<u64>,
    /// `std::env::consts::OS` / `ARCH`.
    pub os: String,
    /// `rustc` that built the harness, when known at build time.
    pub rustc: Option<String>,
    /// Free-text note (`--machine-note`).
    pub note: Option<String>,
}

impl MachineInfo {
    /// Reads the current machine.
    pub fn current(note: Option<String>) -> Self {
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_owned())
            }),
            load_average: load_average(),
            memory_mib: std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
                    .map(|kb| kb / 1024)
            }),
            os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            rustc: option_env!("RUSTC_VERSION").map(str::to_owned),
            note,
        }
    }
}

/// `/proc/loadavg` (1, 5, 15 min).
pub fn load_average() -> Option<[f64; 3]> {
    let t = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = t.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// User + system CPU seconds of this process so far (`/proc/self/stat`, 100 Hz ticks).
pub fn process_cpu_seconds() -> Option<f64> {
    let t = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the `(comm)`, which may contain spaces: utime and stime are fields 14 and 15.
    let rest = &t[t.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident set size of this process in MiB (`VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let t = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = t
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
