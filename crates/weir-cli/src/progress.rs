//! Live progress of `weir run`: a bar on a terminal, periodic log lines otherwise, nothing with `--quiet`.

use crate::progress_model::{
    format_eta, format_rate, group_thousands, ProgressModel, ProgressSample,
};
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
    /// Records already written when this session started (a resumed run's earlier part).
    pub records_at_start: u64,
    /// Cells completed so far in this session.
    pub cells_done: Box<dyn Fn() -> u64 + Send + Sync>,
    /// Cells this session must complete (its records × the workflow's columns).
    pub cells_total: u64,
    /// Per-model live figures.
    pub models: Box<dyn Fn() -> Vec<ModelLine> + Send + Sync>,
}

/// One model endpoint's live figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLine {
    /// `provider/model`.
    pub label: String,
    /// The aliases that route to this endpoint.
    pub aliases: Vec<String>,
    /// Request leases in flight.
    pub in_flight: u32,
    /// Calls waiting for a request lease.
    pub waiters: u32,
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
                aliases: g.aliases.clone(),
                in_flight: g.aggregate_in_flight,
                waiters: g.aggregate_waiters,
                limit: g.domains.values().copied().max().unwrap_or(g.static_cap),
                cap: g.static_cap,
                rate_limited: counts.get(&g.provider_model).map_or(0, |c| c.rate_limited),
            })
            .collect()
    })
}

/// The one line that names what the run is waiting on now.
///
/// The endpoint with the most calls waiting for a lease (then the most in flight) among those
/// at their limit or with waiters; otherwise the model calls in flight, or local work.
pub fn waiting_on(models: &[ModelLine]) -> String {
    let busiest = models
        .iter()
        .filter(|m| m.waiters > 0 || (m.in_flight > 0 && m.in_flight >= m.limit))
        .max_by_key(|m| (m.waiters, m.in_flight));
    match busiest {
        Some(m) => {
            let who = if m.aliases.is_empty() {
                m.label.clone()
            } else {
                format!("{} ({})", m.aliases.join(", "), m.label)
            };
            let mut line = format!(
                "waiting on: {who} at limit {} of {}, {} 429s",
                m.limit,
                m.cap,
                group_thousands(m.rate_limited)
            );
            if m.waiters > 0 {
                line.push_str(&format!(
                    ", {} queued",
                    group_thousands(u64::from(m.waiters))
                ));
            }
            line
        }
        None if models.iter().any(|m| m.in_flight > 0) => {
            "waiting on: model calls in flight (no endpoint at its limit)".to_owned()
        }
        None => "waiting on: local work".to_owned(),
    }
}

/// The status text after the bar: written records, smoothed rate and ETA.
pub fn status_text(model: &ProgressModel, written: u64) -> String {
    format!(
        "written {}  {}  {}",
        group_thousands(written),
        format_rate(model.records_per_second()),
        format_eta(model.eta())
    )
}

/// One non-terminal log line.
pub fn log_line(model: &ProgressModel, written: u64, total: u64, models: &[ModelLine]) -> String {
    format!(
        "[weir] {}/{} records ({}) | {}",
        group_thousands(model.records_done()),
        group_thousands(total),
        status_text(model, written),
        waiting_on(models)
    )
}

/// Runs until `done` resolves, refreshing every 100 ms (bar) or 5 s (lines). On return the bar
/// shows what was written (not the total: a stopped run did not write it).
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
    let mut model = ProgressModel::new(
        sources.cells_total,
        sources.records_total,
        sources.records_at_start,
    );
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let bar = multi.add(ProgressBar::new(sources.records_total));
    bar.set_style(
        ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} records  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let waiting = multi.add(ProgressBar::new_spinner());
    waiting.set_style(
        ProgressStyle::with_template("  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
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
        model.observe(ProgressSample {
            at_seconds: started.elapsed().as_secs_f64(),
            cells_done: (sources.cells_done)(),
            records_written: written,
        });
        let models = (sources.models)();
        match mode {
            ProgressMode::Bar => {
                bar.set_position(model.records_done());
                bar.set_message(status_text(&model, written));
                waiting.set_message(waiting_on(&models));
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
                eprintln!(
                    "{}",
                    log_line(&model, written, sources.records_total, &models)
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
        // `finish()` would jump to the total, and bars left behind keep stale figures above
        // the final line: clear them all, then print one line with what was written.
        let written = (sources.records_written)();
        for b in model_bars {
            b.finish_and_clear();
        }
        waiting.finish_and_clear();
        bar.finish_and_clear();
        let _ = multi.clear();
        eprintln!(
            "{}/{} records written",
            group_thousands(written),
            group_thousands(sources.records_total)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(label: &str, in_flight: u32, waiters: u32, limit: u32) -> ModelLine {
        ModelLine {
            label: format!("sim/{label}"),
            aliases: vec![label.to_owned()],
            in_flight,
            waiters,
            limit,
            cap: 32,
            rate_limited: 12,
        }
    }

    #[test]
    fn waiting_on_names_the_saturated_endpoint_with_the_most_waiters() {
        let models = [line("writer", 4, 0, 16), line("judge8", 8, 30, 8)];
        assert_eq!(
            waiting_on(&models),
            "waiting on: judge8 (sim/judge8) at limit 8 of 32, 12 429s, 30 queued"
        );
        assert_eq!(
            waiting_on(&[line("w", 3, 0, 16)]),
            "waiting on: model calls in flight (no endpoint at its limit)"
        );
        assert_eq!(waiting_on(&[line("w", 0, 0, 16)]), "waiting on: local work");
    }

    #[test]
    fn terminal_and_log_lines_show_cells_as_records_with_whole_rates() {
        let mut m = ProgressModel::new(20_000, 5_000, 0);
        for (t, cells) in [(1.0, 1_000), (2.0, 2_000), (3.0, 3_000)] {
            m.observe(ProgressSample {
                at_seconds: t,
                cells_done: cells,
                records_written: 0,
            });
        }
        // Terminal mode: the bar's position and message.
        assert_eq!(m.records_done(), 750);
        assert_eq!(status_text(&m, 0), "written 0  250/s  eta 17s");
        // Log mode: one line with the same figures and what the run waits on.
        let log = log_line(&m, 0, 5_000, &[line("writer", 16, 40, 16)]);
        assert_eq!(
            log,
            "[weir] 750/5,000 records (written 0  250/s  eta 17s) | waiting on: writer (sim/writer) at limit 16 of 32, 12 429s, 40 queued"
        );
    }
}
