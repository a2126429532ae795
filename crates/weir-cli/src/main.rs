//! The `weir` binary: argument parsing, command dispatch and exit codes (0, 2, 3, 4, 130, 143).

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use weir_cli::error::{CliError, EXIT_OK};
use weir_cli::examples::{self, EXAMPLES};
use weir_cli::failures;
use weir_cli::output::{default_out_dir, DatasetFormat, EventsMode};
use weir_cli::preview::{self, DEFAULT_PREVIEW_RECORDS};
use weir_cli::report::ReportData;
use weir_cli::run::{run_workflow, RunOptions};
use weir_cli::shared_limits::{FallbackChoice, SharedLimitsOptions};
use weir_cli::shared_rows::{self, SharedOptions};
use weir_cli::spec::{SpecNotice, WorkflowSpec};

/// weir: generate datasets with LLM-backed columns, keeping every model endpoint busy up to its
/// rate limit and never past it.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a workflow and write dataset, events, summary, capacity plan and report.
    Run {
        /// Workflow file: JSON, or YAML for `.yaml`/`.yml` (or the name of a built-in example).
        workflow: PathBuf,
        /// Output directory [default: ./weir-out/<name>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the number of records.
        #[arg(long)]
        records: Option<u64>,
        /// Override the seed.
        #[arg(long)]
        seed: Option<u64>,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
        /// Which events to write to events.jsonl: `notable` (row groups, failures, retries,
        /// rate limits, limit changes), `full` (every event of both streams), `requests`, `none`.
        #[arg(long, value_enum, default_value_t = EventsMode::Notable)]
        events: EventsMode,
        /// Discard the output directory's earlier outputs and start over (instead of resuming,
        /// or refusing a directory that holds another run's outputs).
        #[arg(long)]
        fresh: bool,
        /// Dataset format: `jsonl` (dataset.jsonl, default) or `csv` (dataset.csv, a header row
        /// of the declared columns; nested values as JSON text).
        #[arg(long, value_enum, default_value_t = DatasetFormat::Jsonl)]
        format: DatasetFormat,
        /// Shared row groups: run ONE job together with every other `weir run` of the same
        /// spec on this Redis (redis://HOST:PORT[/DB]); row groups are claimed from it.
        #[arg(long, value_name = "URL")]
        coordinator: Option<String>,
        /// This worker's name in a shared job [default: HOSTNAME-PID] (needs --coordinator).
        #[arg(long, value_name = "NAME", requires = "coordinator")]
        worker: Option<String>,
        /// Seconds a row-group claim lives without renewal before another worker takes it
        /// over (needs --coordinator).
        #[arg(
            long,
            value_name = "SECONDS",
            requires = "coordinator",
            default_value_t = 30.0
        )]
        lease: f64,
        /// Share request limits (concurrency cap, cooldowns, request/token budgets) with other
        /// weir processes through Redis: `redis://HOST:PORT[/DB]` [default with --coordinator:
        /// its URL]. Unreachable at start: exit 3.
        #[arg(long, value_name = "URL")]
        shared_limits: Option<String>,
        /// With --coordinator: keep request limits local to this process (each worker has its
        /// own endpoint or API key) instead of sharing them on the coordinator's Redis.
        #[arg(long, requires = "coordinator", conflicts_with = "shared_limits")]
        local_limits: bool,
        /// While the shared-limits store is unreachable mid-run: `local[:PERCENT]` admits up to
        /// PERCENT of each endpoint's last known shared cap in this process; `pause` admits
        /// nothing new until it returns. Leases already held are kept either way.
        #[arg(long, value_name = "local[:PERCENT]|pause", default_value = "local:25")]
        shared_fallback: FallbackChoice,
    },
    /// Run a few records in memory and print them (pretty JSON on stdout) with one line per
    /// model on stderr; writes no files.
    Preview {
        /// Workflow file: JSON, or YAML for `.yaml`/`.yml` (or the name of a built-in example).
        workflow: PathBuf,
        /// Records to run.
        #[arg(short = 'n', long = "records", default_value_t = DEFAULT_PREVIEW_RECORDS)]
        records: u64,
        /// Override the seed.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Check a workflow file (JSON or YAML) and report every problem with its JSON path.
    Validate {
        /// Workflow file: JSON, or YAML for `.yaml`/`.yml` (or the name of a built-in example).
        workflow: PathBuf,
    },
    /// Print the JSON Schema of a workflow file (generated from weir's spec types).
    Schema {
        /// Print the reference page (Markdown, as in docs/spec.md) instead of the JSON Schema.
        #[arg(long)]
        markdown: bool,
    },
    /// Re-render DIR/report.html from DIR/report-data.json.
    Report {
        /// A run's output directory.
        dir: PathBuf,
    },
    /// List the built-in example workflows, or print one.
    Examples {
        /// Example to print.
        name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap: help/version exit 0; usage errors are invalid input (2).
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// Reads a workflow from a file, or from a built-in example when no such file exists.
fn load(workflow: &Path) -> Result<(WorkflowSpec, Vec<SpecNotice>), CliError> {
    let label = workflow.display().to_string();
    let result = if !workflow.exists() {
        match examples::find(&label) {
            Some(ex) => WorkflowSpec::parse_and_validate(ex.text),
            None => {
                return Err(CliError::invalid_input(format!(
                "{label}: no such file (and no built-in example of that name; see `weir examples`)"
            )))
            }
        }
    } else {
        WorkflowSpec::load(workflow)
    };
    result.map_err(|errors| {
        let n = errors.0.len();
        let head = if n == 1 {
            format!("{label} is invalid:")
        } else {
            format!("{label} is invalid ({n} problems):")
        };
        CliError::invalid_input(format!(
            "{head}\n  {}",
            errors.to_string().replace('\n', "\n  ")
        ))
    })
}

/// Prints `text` and a newline on stdout; a closed pipe (`weir schema | head`) is not an error.
fn write_stdout(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::run_failed(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// Runs one command; `Ok` carries the exit status of a command that did its job (a run may
/// still end with 3, 4, 130 or 143 after writing its outputs).
fn dispatch(command: Command) -> Result<i32, CliError> {
    match command {
        Command::Validate { workflow } => {
            let (spec, notices) = load(&workflow)?;
            println!(
                "{}: valid — workflow {:?}: {} records, {} column(s), {} model(s), {} provider(s)",
                workflow.display(),
                spec.name,
                spec.records,
                spec.columns.len(),
                spec.models.len(),
                spec.providers.len()
            );
            if let (Some(seed), Ok(Some(ds))) = (&spec.seed_dataset, spec.seed()) {
                println!(
                    "seed dataset {}: {} rows, columns {} ({} sampling)",
                    seed.path,
                    ds.rows(),
                    ds.columns().join(", "),
                    seed.sampling
                );
            }
            for n in notices {
                println!("note: {n}");
            }
            Ok(EXIT_OK)
        }
        Command::Run {
            workflow,
            out,
            records,
            seed,
            quiet,
            events,
            fresh,
            format,
            coordinator,
            worker,
            lease,
            shared_limits,
            local_limits,
            shared_fallback,
        } => {
            let (spec, notices) = load(&workflow)?;
            let spec = spec.with_overrides(records, seed);
            // Overrides are re-checked (e.g. --records 0) by the same validation `weir validate` runs.
            let notices = if records.is_some() || seed.is_some() {
                spec.validate().map_err(|errors| {
                    CliError::invalid_input(format!("invalid override: {errors}"))
                })?
            } else {
                notices
            };
            if let Some(n) = notices.first() {
                return Err(CliError::invalid_input(n.to_string()));
            }
            let out_dir = out.unwrap_or_else(|| default_out_dir(&spec.name));
            // Workers of one shared job call the same endpoints: their limits are shared on
            // the coordinator's Redis unless --local-limits says otherwise.
            let shared_limits = match (&shared_limits, &coordinator, local_limits) {
                (Some(url), _, _) => Some((url.clone(), "--shared-limits")),
                (None, Some(url), false) => Some((url.clone(), "--coordinator")),
                _ => None,
            }
            .map(|(url, flag)| SharedLimitsOptions {
                url,
                flag,
                fallback: shared_fallback,
            });
            let opts = RunOptions {
                out_dir,
                quiet,
                events,
                fresh,
                format,
                shared_limits,
            };
            let outcome = match coordinator {
                None => run_workflow(spec, opts)?,
                Some(coordinator) => {
                    let lease = std::time::Duration::try_from_secs_f64(lease).map_err(|_| {
                        CliError::invalid_input("--lease must be a positive number of seconds")
                    })?;
                    let shared = SharedOptions {
                        coordinator,
                        worker: worker.unwrap_or_else(shared_rows::default_worker_name),
                        lease,
                    };
                    shared_rows::run_shared(spec, opts, shared)?
                }
            };
            // The failure report goes to stderr even with --quiet: a dropped row is never silent.
            let report = failures::render_text(&outcome.summary.failures);
            if !report.is_empty() {
                eprint!("{report}");
            }
            match outcome.message() {
                Some(m) if outcome.exit_code() == 0 => eprintln!("{m}"),
                Some(m) => eprintln!("error: {m}"),
                None if !quiet => eprintln!(
                    "wrote {} of {} records to {}",
                    outcome.summary.records_written,
                    outcome.summary.records_requested,
                    outcome.out_dir.display()
                ),
                None => {}
            }
            Ok(outcome.exit_code())
        }
        Command::Preview {
            workflow,
            records,
            seed,
        } => {
            let (spec, notices) = load(&workflow)?;
            if let Some(n) = notices.first() {
                return Err(CliError::invalid_input(n.to_string()));
            }
            let spec = spec.with_overrides(None, seed);
            let outcome = preview::preview_workflow(spec, records)?;
            write_stdout(&outcome.records_json()?)?;
            for m in &outcome.models {
                eprintln!("{}", m.line());
            }
            let report = failures::render_text(&outcome.failures);
            if !report.is_empty() {
                eprint!("{report}");
            }
            if let Some(m) = preview::message(&outcome) {
                eprintln!("error: {m}");
            }
            Ok(outcome.exit_code())
        }
        Command::Schema { markdown: true } => {
            write_stdout(WorkflowSpec::reference_markdown().trim_end())?;
            Ok(EXIT_OK)
        }
        Command::Schema { markdown: false } => {
            let text = serde_json::to_string_pretty(&WorkflowSpec::json_schema())
                .map_err(|e| CliError::run_failed(format!("cannot print the schema: {e}")))?;
            write_stdout(&text)?;
            Ok(EXIT_OK)
        }
        Command::Report { dir } => {
            let data = ReportData::load(&dir)?;
            data.write_html(&dir)?;
            println!("{}", dir.join(weir_cli::report::REPORT_HTML_FILE).display());
            Ok(EXIT_OK)
        }
        Command::Examples { name: None } => {
            let width = EXAMPLES.iter().map(|e| e.name.len()).max().unwrap_or(0);
            for e in EXAMPLES {
                println!("{:width$}  {}", e.name, e.description());
            }
            Ok(EXIT_OK)
        }
        Command::Examples { name: Some(name) } => match examples::find(&name) {
            Some(e) => {
                print!("{}", e.text);
                Ok(EXIT_OK)
            }
            None => Err(CliError::invalid_input(format!(
                "no example named {name:?} (available: {})",
                EXAMPLES
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}
