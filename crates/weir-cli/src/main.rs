//! The `weir` binary: argument parsing, command dispatch and exit codes (0, 2, 3, 130).

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use weir_cli::error::{CliError, EXIT_OK};
use weir_cli::examples::{self, EXAMPLES};
use weir_cli::output::{default_out_dir, EventsMode};
use weir_cli::report::ReportData;
use weir_cli::run::{run_workflow, RunOptions};
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
        /// Workflow JSON file (or the name of a built-in example).
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
        /// Which events to write to events.jsonl.
        #[arg(long, value_enum, default_value_t = EventsMode::Full)]
        events: EventsMode,
    },
    /// Check a workflow file and report every problem with its JSON path.
    Validate {
        /// Workflow JSON file (or the name of a built-in example).
        workflow: PathBuf,
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
        Ok(()) => ExitCode::from(EXIT_OK as u8),
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

fn dispatch(command: Command) -> Result<(), CliError> {
    match command {
        Command::Validate { workflow } => {
            let (spec, notices) = load(&workflow)?;
            println!(
                "{}: valid — workflow {:?}: {} records, {} columns, {} models, {} providers",
                workflow.display(),
                spec.name,
                spec.records,
                spec.columns.len(),
                spec.models.len(),
                spec.providers.len()
            );
            for n in notices {
                println!("note: {n}");
            }
            Ok(())
        }
        Command::Run {
            workflow,
            out,
            records,
            seed,
            quiet,
            events,
        } => {
            let (spec, notices) = load(&workflow)?;
            let spec = spec.with_overrides(records, seed);
            // Overrides are re-checked (e.g. --records 0).
            spec.validate()
                .map_err(|errors| CliError::invalid_input(format!("invalid override: {errors}")))?;
            if let Some(n) = notices.first() {
                return Err(CliError::invalid_input(n.to_string()));
            }
            let out_dir = out.unwrap_or_else(|| default_out_dir(&spec.name));
            let outcome = run_workflow(
                spec,
                RunOptions {
                    out_dir,
                    quiet,
                    events,
                },
            )?;
            if !quiet {
                eprintln!(
                    "wrote {} of {} records to {}",
                    outcome.summary.records_written,
                    outcome.summary.records_requested,
                    outcome.out_dir.display()
                );
            }
            if outcome.stopped_early {
                return Err(CliError::run_failed("the run stopped early"));
            }
            Ok(())
        }
        Command::Report { dir } => {
            let data = ReportData::load(&dir)?;
            data.write_html(&dir)?;
            println!("{}", dir.join(weir_cli::report::REPORT_HTML_FILE).display());
            Ok(())
        }
        Command::Examples { name: None } => {
            let width = EXAMPLES.iter().map(|e| e.name.len()).max().unwrap_or(0);
            for e in EXAMPLES {
                println!("{:width$}  {}", e.name, e.description());
            }
            Ok(())
        }
        Command::Examples { name: Some(name) } => match examples::find(&name) {
            Some(e) => {
                print!("{}", e.text);
                Ok(())
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
