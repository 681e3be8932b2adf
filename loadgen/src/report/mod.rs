//! Reports: `report.json` (the record), `summary.md` (tables), `report.html`
//! (one self-contained page with SVG charts). The JSON is the source: `report`
//! renders the other two again from it. Schema: `docs/report-schema.md`.

pub(crate) mod charts;
mod html;
mod markdown;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::compare::Comparison;
use crate::machine::Machine;
use crate::metrics::{Histograms, Summary};
use crate::observe::Trial;
use crate::scenario::Scenario;
use crate::sweep::SweepResult;

/// The schema identifier written into every report.
pub const SCHEMA: &str = "gossip-loadgen.report.v1";

/// One run (or sweep), everything needed to read and re-render it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: String,
    /// Unique id: scenario name, UTC time, seed.
    pub run_id: String,
    /// Seconds since the Unix epoch when the run started.
    pub created_unix_s: u64,
    /// The command line that made it.
    pub command: Vec<String>,
    /// The commit it ran at.
    pub commit: String,
    /// Where it ran.
    pub machine: Machine,
    /// `sim` or `udp`.
    pub world: String,
    /// The UDP datapath used, if any.
    pub datapath: Option<String>,
    /// Base seed.
    pub seed: u64,
    /// Trials asked for.
    pub trials_requested: usize,
    /// Trials finished (fewer if interrupted).
    pub trials_done: usize,
    /// Whether Ctrl-C or an error cut it short.
    pub interrupted: bool,
    /// The error that cut it short (a world that broke mid-run: an agent
    /// gone, a server dead), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption: Option<String>,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// The scenario as run, every parameter resolved.
    pub scenario: Scenario,
    /// Summary figures.
    pub summary: Summary,
    /// Whole histograms.
    pub histograms: Histograms,
    /// Every finished trial.
    pub trials: Vec<Trial>,
    /// Sweep points, pareto front and recommendation, for sweeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepResult>,
    /// Every world's report, for a comparison (`compare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Comparison>,
    /// How busy the host was while it ran (absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<crate::noise::HostNoise>,
}

impl Report {
    /// Writes `report.json`, `summary.md` and `report.html` into `dir`.
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self)?;
        write_atomic(&dir.join("report.json"), json.as_bytes())?;
        write_atomic(&dir.join("summary.md"), markdown::render(self).as_bytes())?;
        let html = dir.join("report.html");
        write_atomic(&html, html::render(self)?.as_bytes())?;
        Ok(html)
    }

    /// Reads a `report.json` (or the directory holding one).
    ///
    /// # Errors
    /// I/O or parse errors, with the path.
    pub fn read(path: &Path) -> Result<Report> {
        let file = if path.is_dir() {
            path.join("report.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let r: Report =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        anyhow::ensure!(
            r.schema == SCHEMA,
            "{}: schema {:?}, expected {SCHEMA:?}",
            file.display(),
            r.schema
        );
        Ok(r)
    }

    /// The summary as Markdown (also printed at the end of a run).
    pub fn markdown(&self) -> String {
        markdown::render(self)
    }
}

/// Writes via a temporary file and a rename, so an interrupted write never
/// leaves a truncated report where a good one was.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
