//! Live progress of `weir run`: a bar on a terminal, periodic log lines otherwise, nothing with `--quiet`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_runtime::engine::PreparedRun;

/// What the progress loop reads each tick (all read-only).
pub struct ProgressSources {
    /// Records written so far (including a resumed run's earlier part).
    pub records_written: Box<dyn Fn() -> u64 + Send + Sync>,
    /// Records the run must write in total.
    pub records_total: u64,
    /// Per-model live figures.
    pub models: Box<dyn Fn() -> Vec<ModelLine> + Send + Sync>,
}

/// One model's live figures.
pub struct ModelLine {
    /// `provider/model`.
    pub label: String,
    /// Request leases in flight.
    pub in_flight: u32,
    /// Current adaptive limit (chat domain, or the largest).
    pub limit: u32,
    /// Static cap.
    pub cap: u32,
    /// Rate-limited attempts so far.
    pub rate_limited: u64,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// No output.
    Quiet,
    /// An updating bar (stderr is a terminal).
    Bar,
    /// A log line every few seconds.
    Lines,
}

impl ProgressMode {
    /// Bar on a terminal, lines otherwise, nothing when quiet.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            Self::Quiet
        } else if std::io::stderr().is_terminal() {
            Self::Bar
        } else {
            Self::Lines
        }
    }
}

/// Model figures from a prepared run's controller and executor.
pub fn model_lines(run: &PreparedRun) -> Box<dyn Fn() -> Vec<ModelLine> + Send + Sync> {
    let pressure = run.controller().pressure();
    let executor = Arc::clone(run.executor());
    Box::new(move || {
        let counts = executor.attempt_counts();
        pressure
            .global_snapshots()
            .into_iter()
            .map(|g| ModelLine {
                label: g.provider_model.to_string(),
                in_flight: g.aggregate_in_flight,
                limit: g.domains.values().copied().max().unwrap_or(g.static_cap),
                cap: g.static_cap,
                rate_limited: counts.get(&g.provider_model).map_or(0, |c| c.rate_limited),
            })
            .collect()
    })
}

/// Runs until `done` resolves, refreshing every 100 ms (bar) or 5 s (lines).
pub async fn show(
    mode: ProgressMode,
    sources: ProgressSources,
    done: tokio::sync::oneshot::Receiver<()>,
) {
    if mode == ProgressMode::Quiet {
        let _ = done.await;
        return;
    }
    let started = Instant::now();
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let bar = multi.add(ProgressBar::new(sources.records_total));
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40.cyan/blue} {pos}/{len} records  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut model_bars: Vec<ProgressBar> = Vec::new();
    let tick = if mode == ProgressMode::Bar {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(5)
    };
    let mut done = done;
    loop {
        let written = (sources.records_written)();
        let models = (sources.models)();
        match mode {
            ProgressMode::Bar => {
                bar.set_position(written);
                while model_bars.len() < models.len() {
                    let b = multi.add(ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template("  {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    model_bars.push(b);
                }
                for (b, m) in model_bars.iter().zip(&models) {
                    b.set_message(format!(
                        "{:<28} in flight {:>4} / limit {:>4} (cap {:>4})  429s {}",
                        m.label, m.in_flight, m.limit, m.cap, m.rate_limited
                    ));
                }
            }
            ProgressMode::Lines => {
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                let per_model: Vec<String> = models
                    .iter()
                    .map(|m| {
                        format!(
                            "{} {}/{} 429s={}",
                            m.label, m.in_flight, m.limit, m.rate_limited
                        )
                    })
                    .collect();
                eprintln!(
                    "[weir] {written}/{} records ({:.0}/s) {}",
                    sources.records_total,
                    written as f64 / secs,
                    per_model.join("  ")
                );
            }
            ProgressMode::Quiet => {}
        }
        tokio::select! {
            _ = &mut done => break,
            _ = tokio::time::sleep(tick) => {}
        }
    }
    if mode == ProgressMode::Bar {
        bar.set_position((sources.records_written)());
        bar.finish();
        for b in model_bars {
            b.finish();
        }
    }
}
