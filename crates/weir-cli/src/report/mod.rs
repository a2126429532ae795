//! The run report: `ReportData` (saved as `report-data.json`), the event collector that feeds
//! its time series, and the self-contained `report.html` renderer (inline SVG + CSS, no JS).

mod html;
mod layer_timeline;
mod plan_table;
mod series;
mod svg;
mod timeline;

pub use html::render_html;
pub use layer_timeline::LayerTimeline;
pub use plan_table::{plan_rows, PlanRow};
pub use series::{Aggregate, BucketedSeries};
pub use svg::escape;
pub use timeline::{
    CollectedCounts, CollectorDetail, LatencyPercentiles, ModelSeries, TimeSeries,
    TimelineCollector, DEFAULT_MAX_POINTS,
};

use crate::error::CliError;
use crate::summary::Summary;
use serde::{Deserialize, Serialize};
use std::path::Path;
use weir_capacity::AsyncCapacityPlan;

/// File name of the saved report data.
pub const REPORT_DATA_FILE: &str = "report-data.json";
/// File name of the rendered report.
pub const REPORT_HTML_FILE: &str = "report.html";

/// Everything the report shows; `weir report DIR` re-renders `report.html` from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportData {
    /// Workflow name.
    pub workflow: String,
    /// Workflow description, if any.
    #[serde(default)]
    pub description: Option<String>,
    /// How the run ended: `completed`, `stopped_early`, `failed`, `interrupted`.
    pub status: String,
    /// Headline numbers.
    pub summary: Summary,
    /// The capacity plan (`None` when it could not be built).
    pub capacity_plan: Option<AsyncCapacityPlan>,
    /// Time series from the event streams.
    pub series: TimeSeries,
}

impl ReportData {
    /// Reads `DIR/report-data.json`.
    pub fn load(dir: &Path) -> Result<Self, CliError> {
        let path = dir.join(REPORT_DATA_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::invalid_input(format!("cannot read {}: {e}", path.display())))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            CliError::invalid_input(format!("{}: {}: {}", path.display(), e.path(), e.inner()))
        })
    }

    /// Writes `report-data.json` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), CliError> {
        let data_path = dir.join(REPORT_DATA_FILE);
        let json = serde_json::to_string(self)
            .map_err(|e| CliError::run_failed(format!("cannot serialize report data: {e}")))?;
        std::fs::write(&data_path, json)
            .map_err(|e| CliError::io("cannot write", &data_path, &e))?;
        self.write_html(dir)
    }

    /// Writes only `report.html` into `dir`.
    pub fn write_html(&self, dir: &Path) -> Result<(), CliError> {
        let html_path = dir.join(REPORT_HTML_FILE);
        std::fs::write(&html_path, render_html(self))
            .map_err(|e| CliError::io("cannot write", &html_path, &e))
    }
}
