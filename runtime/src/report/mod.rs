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
//! [`render`]); `trainyard report RUN [--compare RUN_B]` draws it again from the run directory
//! alone ([`RunView::open`], [`write`]).

pub mod charts;
pub mod curves;
mod page;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use curves::{CalibrationBin, Curves, GroupPoint, Histogram, OperatingPoint, SideCurves};

use crate::artifact;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::rundir::names;
use crate::runfiles::{Manifest, MetricsFile, RunFiles};

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
        let loaded = artifact::load_from(&files)?;
        let classes = loaded.card.labels.values();
        let coefficients = loaded.model.largest_coefficients(&loaded.card.pipeline, &classes, COEFFICIENTS);
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

    /// One fingerprint of every input: the first 16 hex digits of the SHA-256 of each input's
    /// role, path, rows and content fingerprint, in manifest order.
    pub fn data_fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for f in &self.manifest.inputs {
            let content = f.sha256.as_deref().or(f.etag.as_deref()).unwrap_or("");
            h.update(format!("{}\t{}\t{}\t{content}\n", f.role, f.path.display(), f.rows).as_bytes());
        }
        crate::runfiles::hex(&h.finalize())[..16].to_string()
    }
}

/// The page for one run, or for two compared (`runs[1]` against `runs[0]`).
pub fn render(runs: &[RunView]) -> Result<String> {
    page::render(runs)
}

/// `trainyard report`: draws the report of `run` (compared with `compare` when given) into
/// `out`, or beside the current directory as `<run name>.report.html`
/// (`<run>-vs-<other>.report.html` when comparing); returns the path written.
pub fn write(run: &Path, compare: Option<&Path>, out: Option<&Path>) -> Result<PathBuf> {
    let mut views = vec![RunView::open(run)?];
    if let Some(other) = compare {
        views.push(RunView::open(other)?);
    }
    let html = render(&views)?;
    let out = match out {
        Some(out) => out.to_path_buf(),
        None => {
            let name = |v: &RunView| {
                let n =
                    v.manifest.name.replace(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'), "_");
                if n.is_empty() { "run".to_string() } else { n }
            };
            let stem = match views.get(1) {
                Some(b) => format!("{}-vs-{}", name(&views[0]), name(b)),
                None => name(&views[0]),
            };
            PathBuf::from(format!("{stem}.report.html"))
        }
    };
    if out.is_dir() {
        return Err(Error::Usage(format!("--out {} is a directory; give a file name", out.display())));
    }
    // Written beside the target and renamed, so a reader never sees half a page.
    let tmp = out.with_extension(format!("html.tmp-{}", std::process::id()));
    std::fs::write(&tmp, html).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(&out, e)
    })?;
    Ok(out)
}
