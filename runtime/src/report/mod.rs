//! The run report: `report.html`, one self-contained page (inline SVG and CSS, nothing fetched)
//! of the charts and tables a risk team judges a model by.
//!
//! | piece | module |
//! | --- | --- |
//! | what the report draws that `metrics.json` lacks (`curves.json`), computed at training time | [`curves`] |
//! | the charts, drawn by plotters into SVG | [`charts`] |
//! | the sections of a page for one run, or two compared | `page` |
//! | the page layout | `report.html.jinja` (a minijinja template) |
//!
//! `train` writes `curves.json` and `report.html` into every run directory ([`RunView::of_training`],
//! [`draw_for_training`]); `trainyard report RUN [--compare RUN_B]` draws it again from the run
//! directory alone ([`RunView::open`], [`write`]).

pub mod charts;
pub mod curves;
mod page;

use std::path::{Path, PathBuf};

pub use curves::{CalibrationBin, Curves, GroupPoint, Histogram, OperatingPoint, SideCurves};

use crate::artifact;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::rundir::names;
use crate::runfiles::{self, Manifest, MetricsFile, RunFiles};

/// How many of the largest coefficients the report shows.
pub const COEFFICIENTS: usize = 20;

/// One run as the report sees it.
#[derive(Debug, Clone)]
pub struct RunView {
    /// Where the run is, as given.
    pub dir: String,
    /// `manifest.json` (at training time: as it will be written, less the artifact digests).
    pub manifest: Manifest,
    /// `metrics.json`.
    pub metrics: MetricsFile,
    /// `curves.json`; `None` for a run written before it existed.
    pub curves: Option<Curves>,
    /// The class values, in label order.
    pub classes: Vec<serde_json::Value>,
    /// The largest coefficients on the standardized design (logistic models): label, value.
    pub coefficients: Vec<(String, f64)>,
}

impl RunView {
    /// The view of a run being trained, from what `train` holds in memory.
    pub fn of_training(
        dir: &Path,
        manifest: Manifest,
        metrics: MetricsFile,
        curves: Curves,
        model: &Model,
        pipeline: &crate::features::Pipeline,
        classes: Vec<serde_json::Value>,
    ) -> RunView {
        let coefficients = model.largest_coefficients(pipeline, &classes, COEFFICIENTS);
        RunView {
            dir: dir.display().to_string(),
            manifest,
            metrics,
            curves: Some(curves),
            classes,
            coefficients,
        }
    }

    /// The view of the run directory (or object-store run) `run`, every file verified against
    /// its manifest.
    pub fn open(run: &Path) -> Result<RunView> {
        let files = RunFiles::open(run)?;
        let manifest: Manifest = serde_json::from_value(files.manifest().clone())
            .map_err(|e| Error::data(format!("{}: {e}", files.path(names::MANIFEST).display())))?;
        let metrics: MetricsFile = files.read_json(names::METRICS)?;
        // Runs written before curves.json existed still get every section that needs none.
        let curves = if files.records(names::CURVES) { Some(files.read_json(names::CURVES)?) } else { None };
        // The model is read for its coefficients; an MLP's weights (perhaps a download) are not.
        let (classes, coefficients) = match &metrics.fit {
            crate::model::FitReport::Logistic(_) => {
                let loaded = artifact::load_from(&files)?;
                let classes = loaded.card.labels.values();
                let top = loaded.model.largest_coefficients(&loaded.card.pipeline, &classes, COEFFICIENTS);
                (classes, top)
            }
            crate::model::FitReport::Mlp(_) => (class_values(&files)?, Vec::new()),
        };
        Ok(RunView { dir: run.display().to_string(), manifest, metrics, curves, classes, coefficients })
    }

    /// The model as a phrase: `logistic`, `multinomial logistic (10 classes)`, `mlp`,
    /// `partitioned logistic (by merchant)`.
    pub fn model_kind(&self) -> String {
        let model = self.manifest.spec.get("model").and_then(|m| m.as_object()).and_then(|m| m.keys().next());
        let kind = model.map_or("model", String::as_str);
        let k = self.classes.len();
        match (&self.metrics.partition, kind) {
            (Some(p), _) => format!("partitioned {kind} (by {})", p.by),
            (None, "logistic") if k > 2 => format!("multinomial logistic ({k} classes)"),
            (None, _) if k > 2 => format!("{kind} ({k} classes)"),
            (None, _) => kind.to_string(),
        }
    }

    /// The inputs' fingerprint, as `trainyard runs list` shows it.
    pub fn data_fingerprint(&self) -> String {
        crate::registry::data_fingerprint(&self.manifest.inputs)
    }
}

/// The class values of the run's `model.json`, without reading its weights.
fn class_values(files: &RunFiles) -> Result<Vec<serde_json::Value>> {
    let card: serde_json::Value = files.read_json(names::MODEL_JSON)?;
    let labels: crate::label::Labels =
        serde_json::from_value(card.get("labels").cloned().unwrap_or_default())
            .map_err(|e| Error::data(format!("{}: labels: {e}", files.path(names::MODEL_JSON).display())))?;
    Ok(labels.values())
}

/// The page for one run, or for two compared (`runs[1]` against `runs[0]`).
pub fn render(runs: &[RunView]) -> Result<String> {
    page::render(runs)
}

/// The page of a run being trained, or `None` when it cannot be drawn. A chart that cannot be
/// drawn is a bug of ours, not a reason to throw the fitted model away: the failure (or panic)
/// is logged, the run is written without the page, and `trainyard report` can draw it later.
pub fn draw_for_training(view: RunView) -> Option<String> {
    let drawn = std::panic::catch_unwind(|| render(&[view])).unwrap_or_else(|panic| {
        Err(Error::Internal(format!("drawing the report panicked: {}", crate::data::panic_message(&*panic))))
    });
    drawn.map_err(|e| tracing::warn!(phase = "report", error = %e, "no {}: {e}", names::REPORT)).ok()
}

/// `trainyard report`: draws the report of `run` (compared with `compare` when given) into
/// `out` (a local path or an object URL), or into the current directory as
/// `<run id>.report.html` (`<run id>-vs-<run id>.report.html` when comparing); returns where it
/// was written. The page appears whole or not at all.
pub fn write(run: &Path, compare: Option<&Path>, out: Option<&Path>) -> Result<PathBuf> {
    let runs: Vec<&Path> = std::iter::once(run).chain(compare).collect();
    if let Some(out) = out {
        runfiles::check_output(out, &runs, "the report")?;
    }
    let mut views = vec![RunView::open(run)?];
    if let Some(other) = compare {
        views.push(RunView::open(other)?);
    }
    let out = match out {
        Some(out) => out.to_path_buf(),
        None => {
            let ids: Vec<String> = views
                .iter()
                .map(|v| {
                    v.manifest.run_id.replace(|c: char| !(c.is_alphanumeric() || "-_.".contains(c)), "_")
                })
                .collect();
            let out = PathBuf::from(format!("{}.report.html", ids.join("-vs-")));
            runfiles::check_output(&out, &runs, "the report")?;
            out
        }
    };
    runfiles::write_output(&out, render(&views)?.into_bytes())?;
    Ok(out)
}
