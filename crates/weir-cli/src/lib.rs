//! The `weir` command line: workflow specs, runs on simulated or OpenAI-compatible providers, outputs and reports.
//!
//! The binary is a thin shell over this library: [`spec`] parses and validates the workflow JSON
//! (every error names its JSON path) and builds the runtime's objects, [`run`] is the `weir run`
//! boundary, [`output`] writes the output directory, [`report`] collects time series from the
//! event streams and renders `report.html`, [`preview`] runs a few records in memory
//! (`weir preview`), and [`examples`] embeds the shipped workflows.
//!
//! ```
//! use weir_cli::spec::WorkflowSpec;
//!
//! let text = r#"{
//!   "name": "demo", "records": 10,
//!   "providers": [{"name": "sim", "kind": "simulated", "models": [
//!     {"model_id": "m1", "capacity": 8, "latency_ms": {"dist": "fixed", "value": 20}}]}],
//!   "models": [{"alias": "writer", "provider": "sim", "model_id": "m1", "max_parallel_requests": 4}],
//!   "columns": [
//!     {"name": "topic", "kind": "sampler", "sampler": {"type": "category", "values": ["a", "b"]}},
//!     {"name": "draft", "kind": "llm_text", "model": "writr", "prompt": "Write about {{ topic }}"}
//!   ]
//! }"#;
//! let errors = WorkflowSpec::parse_and_validate(text).unwrap_err();
//! assert_eq!(errors.to_string(), r#"columns[1].model: unknown model alias "writr" (declared aliases: writer)"#);
//!
//! let fixed = text.replace("writr", "writer");
//! let (spec, notices) = WorkflowSpec::parse_and_validate(&fixed)?;
//! assert!(notices.is_empty());
//! assert_eq!(spec.effective_buffer_size(), 10); // min(records, 1000)
//!
//! // Building needs a tokio runtime: the simulated provider's clock starts there.
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
//! let built = rt.block_on(async { spec.build() })?;
//! assert_eq!(built.workflow.columns.len(), 2);
//! assert!(built.providers.contains_key("sim"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod examples;
pub mod failures;
pub mod lower_bound;
pub mod outdir;
pub mod output;
pub mod preview;
pub mod progress;
pub mod progress_model;
pub mod report;
pub mod run;
pub mod shared_limits;
pub mod shared_rows;
pub mod spec;
pub mod summary;
