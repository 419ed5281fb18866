//! The run directory's files other than the model: `manifest.json`, `metrics.json` and
//! `predictions.parquet` (their formats, written by `train`), and [`RunFiles`], through which
//! `inspect` and `predict` read a run with every file checked against the manifest's digests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::Column;
use crate::error::{Error, Result};
use crate::label::Labels;
use crate::metrics::{Evaluation, Scores, argmax};
use crate::model::FitReport;
use crate::partition::PartitionReport;
use crate::rundir::names;
use crate::store::{self, Remote, Scratch};

/// Seconds spent in each phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseSeconds {
    /// Reading, filtering, joining and splitting.
    pub load: f64,
    /// Fitting the feature pipeline and building both design matrices.
    pub features: f64,
    /// The solver.
    pub fit: f64,
    /// Partitioned runs: cross-validation choosing the group models' strength and which groups
    /// keep their model (not counted in `fit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_selection: Option<f64>,
    /// Scoring and metrics on train and test.
    pub evaluate: f64,
    /// Writing the run directory (up to the manifest), the report aside.
    pub write: f64,
    /// Computing `curves.json` and drawing `report.html` (absent in runs written before the
    /// report existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<f64>,
    /// Everything.
    pub total: f64,
}

/// `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsFile {
    /// Metrics on the train rows (binary or multiclass fields, see [`Evaluation`]).
    pub train: Evaluation,
    /// Metrics on the test rows.
    pub test: Evaluation,
    /// How the fit went.
    pub fit: FitReport,
    /// Seconds per phase.
    pub phases: PhaseSeconds,
    /// Rows read per second of the load phase.
    pub load_rows_per_second: f64,
    /// Training rows processed per second of the fit phase (logistic: rows × objective passes;
    /// MLP: rows × epochs).
    pub fit_rows_per_second: f64,
    /// Design-matrix columns (MLP: the numeric block; embeddings come on top).
    pub design_width: usize,
    /// Requests and bytes to and from object stores up to the write phase (inputs, checkpoints),
    /// for a run that used one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store: Option<crate::store::TrafficCounts>,
    /// Per-group models against the generic model alone (`partition` in the spec); `train` and
    /// `test` above are the composition's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionReport>,
    /// The baseline run scored on the same test rows (`baseline` in the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::baseline::Comparison>,
}

/// One input file in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputFile {
    /// Spec field that listed it.
    pub role: String,
    /// Path as resolved.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows.
    pub rows: u64,
    /// SHA-256 of the content, for a local file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// For an object in a store, its ETag: the store's fingerprint of the content (hashing it
    /// here would mean downloading the columns and row groups the read skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The object's version id, when the bucket is versioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The object's last-modified time, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl InputFile {
    /// The content fingerprint, shortened for humans: `sha256 <16 hex>` or `etag <etag>`.
    pub fn short_fingerprint(&self) -> String {
        match (&self.sha256, &self.etag) {
            (Some(h), _) => format!("sha256 {}", h.chars().take(16).collect::<String>()),
            (None, Some(e)) => format!("etag {}", e.trim_matches('"')),
            (None, None) => "no fingerprint".into(),
        }
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// `<name>-<UTC start time>-<first 8 hex of the spec hash>`.
    pub run_id: String,
    /// `succeeded`.
    pub status: String,
    /// `completed`.
    pub exit_reason: String,
    /// The job's name.
    pub name: String,
    /// The resolved spec (defaults filled in), `params` passed through untouched.
    pub spec: serde_json::Value,
    /// SHA-256 of the resolved spec's compact JSON.
    pub spec_sha256: String,
    /// trainyard version.
    pub trainyard_version: String,
    /// Git commit trainyard was built from, or `unknown`.
    pub git_commit: String,
    /// Device the model was fitted on.
    pub device: String,
    /// Worker threads.
    pub threads: usize,
    /// The seed.
    pub seed: u64,
    /// Every input file with its content hash.
    pub inputs: Vec<InputFile>,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// End, RFC 3339 UTC.
    pub finished_at: String,
    /// Wall seconds.
    pub seconds: f64,
    /// SHA-256 of every other file of the run, by name; readers verify what they load.
    #[serde(default)]
    pub artifacts: std::collections::BTreeMap<String, String>,
    /// Rows and headline test metrics, so that a registry listing reads manifests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<RunSummary>,
    /// The gate's verdict against the baseline, when the spec has a gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<crate::gate::Promotion>,
}

/// `manifest.json` `summary`: what `trainyard runs list` shows of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Train rows.
    pub train_rows: usize,
    /// Test rows.
    pub test_rows: usize,
    /// Headline test metrics by name (`roc_auc`, `log_loss`, ...); undefined ones left out.
    pub test: BTreeMap<String, f64>,
}

impl RunSummary {
    /// The summary of a run with these train rows and test metrics.
    pub fn new(train_rows: usize, test: &Evaluation) -> RunSummary {
        RunSummary {
            train_rows,
            test_rows: test.rows(),
            test: test.headline().into_iter().filter(|(_, v)| v.is_finite()).collect(),
        }
    }
}

/// Pretty JSON with a trailing newline, as every JSON file of a run is written.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// SHA-256 (hex) of every file in the staged run directory `dir`, by file name: what the
/// manifest records so that a reader can tell a corrupt or changed artifact from a good one.
pub fn digests(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name != names::MANIFEST && path.is_file() {
            out.insert(name, sha256_file(&path)?);
        }
    }
    Ok(out)
}

/// SHA-256 (hex) of a file's content, streamed.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A run directory whose manifest has been read once: the manifest and the artifact digests it
/// records, through which every other file of the run is read and verified.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// The directory, or for a run in an object store its URL (as a path, for messages).
    dir: PathBuf,
    /// The run's prefix in an object store, and a scratch directory for local copies.
    remote: Option<(Remote, std::sync::Arc<Scratch>)>,
    manifest: serde_json::Value,
    digests: BTreeMap<String, String>,
}

impl RunFiles {
    /// Opens the run directory `run`: it must be a directory with a `manifest.json` that lists
    /// artifact digests (exit 2 otherwise, naming what is wrong).
    pub fn open(run: &Path) -> Result<Self> {
        let local = run.to_str().map(|s| Path::new(store::local_path(s)));
        let run = local.unwrap_or(run);
        if let Some(remote) = Remote::parse_path(run)? {
            let manifest = store::run::committed_manifest(&remote)?;
            let shown = PathBuf::from(remote.url());
            let digests = Self::digests_of(&manifest, &shown.join(names::MANIFEST))?;
            let scratch = std::sync::Arc::new(Scratch::new("run")?);
            return Ok(RunFiles { dir: shown, remote: Some((remote, scratch)), manifest, digests });
        }
        match std::fs::metadata(run) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Usage(format!("run directory {} not found", run.display())));
            }
            Err(e) => return Err(Error::io(run, e)),
            Ok(m) if !m.is_dir() => {
                return Err(Error::Usage(format!(
                    "{} is a file, not a run directory (pass the directory `train` wrote)",
                    run.display()
                )));
            }
            Ok(_) => {}
        }
        let path = run.join(names::MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Usage(format!(
                "{} is not a trainyard run directory (no {})",
                run.display(),
                names::MANIFEST
            )),
            _ => Error::io(&path, e),
        })?;
        let manifest: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::data(format!("{}: not a trainyard manifest: {e}", path.display())))?;
        let digests = Self::digests_of(&manifest, &path)?;
        Ok(RunFiles { dir: run.to_path_buf(), remote: None, manifest, digests })
    }

    /// The artifact digests the manifest at `path` records.
    fn digests_of(manifest: &serde_json::Value, path: &Path) -> Result<BTreeMap<String, String>> {
        manifest
            .get("artifacts")
            .and_then(|a| serde_json::from_value::<BTreeMap<String, String>>(a.clone()).ok())
            .ok_or_else(|| {
                Error::data(format!(
                    "{}: no artifact digests (\"artifacts\"); the run was written by an older trainyard \
                     or the manifest was edited, retrain it",
                    path.display()
                ))
            })
    }

    /// The manifest as read by [`RunFiles::open`].
    pub fn manifest(&self) -> &serde_json::Value {
        &self.manifest
    }

    /// Whether the manifest records a file `name` (files added to runs later are absent from
    /// older ones).
    pub fn records(&self, name: &str) -> bool {
        self.digests.contains_key(name)
    }

    /// Path of `name` in the run.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The bytes of `name`, checked against the manifest's digest: a missing, corrupt or changed
    /// file is exit 2 naming it.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.path(name);
        let missing =
            || Error::Usage(format!("{} is missing; the run directory is incomplete", path.display()));
        let bytes = match &self.remote {
            Some((remote, _)) => remote.child(name).get()?.ok_or_else(missing)?.to_vec(),
            None => std::fs::read(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => missing(),
                _ => Error::io(&path, e),
            })?,
        };
        let expected = self.digests.get(name).ok_or_else(|| {
            Error::data(format!("{}: the manifest records no digest for this file", path.display()))
        })?;
        let actual = hex(&Sha256::digest(&bytes));
        if &actual != expected {
            return Err(Error::data(format!(
                "{}: sha256 {} does not match the manifest's {}; the file is corrupt or was changed",
                path.display(),
                &actual[..16],
                expected.chars().take(16).collect::<String>()
            )));
        }
        Ok(bytes)
    }

    /// A local file with the verified content of `name`: the file itself in a local run, a
    /// copy in a scratch directory (removed with the last clone of this) for a remote one.
    pub fn local_copy(&self, name: &str) -> Result<PathBuf> {
        let bytes = self.read(name)?;
        match &self.remote {
            None => Ok(self.path(name)),
            Some((_, scratch)) => {
                let path = scratch.path().join(name);
                std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
                Ok(path)
            }
        }
    }

    /// JSON file `name`, verified as [`RunFiles::read`] does, then parsed.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let bytes = self.read(name)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::data(format!("{}: {e}", self.path(name).display())))
    }
}

/// Refuses (exit 2) an output `out` (a local path or an object URL) inside the run `run`: it
/// would replace or sit beside the run's verified artifacts. `what` names the output.
pub fn refuse_output_in_run(run: &Path, out: &Path, what: &str) -> Result<()> {
    let inside = match (Remote::parse_path(out)?, Remote::parse_path(run)?) {
        (Some(out), Some(run)) => run.contains(&out),
        (Some(_), None) | (None, Some(_)) => false,
        (None, None) => {
            let out = PathBuf::from(store::local_path(&out.to_string_lossy()));
            let parent = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            matches!((Path::new(store::local_path(&run.to_string_lossy())).canonicalize(), parent.canonicalize()),
                (Ok(run), Ok(parent)) if parent.starts_with(&run))
        }
    };
    if inside {
        return Err(Error::Usage(format!(
            "--out {} is inside the run directory {}; write {what} elsewhere",
            out.display(),
            run.display()
        )));
    }
    Ok(())
}

/// Refuses (exit 2), before any run is read, an `--out` for a file derived from `runs` that
/// cannot take it: a directory, a local path whose folder does not exist, or a place inside one
/// of the runs. `what` names the output ("the report").
pub fn check_output(out: &Path, runs: &[&Path], what: &str) -> Result<()> {
    if Remote::parse_path(out)?.is_none() {
        let local = PathBuf::from(store::local_path(&out.to_string_lossy()));
        if local.is_dir() || local.file_name().is_none() {
            return Err(Error::Usage(format!(
                "--out {} is a directory; name the file for {what}",
                out.display()
            )));
        }
        let parent = local.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(Error::Usage(format!(
                "--out {}: {} is not a directory",
                out.display(),
                parent.display()
            )));
        }
    }
    runs.iter().try_for_each(|run| refuse_output_in_run(run, out, what))
}

/// Writes `bytes` to `out` (checked by [`check_output`]): a local file appears whole or not
/// at all, an object in one PUT.
pub fn write_output(out: &Path, bytes: Vec<u8>) -> Result<()> {
    match Remote::parse_path(out)? {
        Some(remote) => remote.put(bytes::Bytes::from(bytes)),
        None => {
            let local = PathBuf::from(store::local_path(&out.to_string_lossy()));
            let name = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let parent = local.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            crate::registry::Root::Local(parent.to_path_buf()).replace(&name, &bytes)
        }
    }
}

/// Writes scores (and labels, at training time) to Parquet: the key column when there is one,
/// then for binary labels `label` (0/1) and `score` (probability of the positive class); for
/// multiclass labels `label` (the class value), `predicted` (the most probable class) and one
/// `probability_<class>` column per class, in class order.
pub fn write_predictions(
    path: &Path,
    key: Option<(&str, &Column)>,
    labels: Option<&[f32]>,
    scores: &Scores,
    classes: &Labels,
) -> Result<()> {
    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;
    let mut columns: Vec<(String, ArrayRef)> = Vec::new();
    if let Some((name, column)) = key {
        columns.push((name.to_string(), column.to_arrow()));
    }
    match scores {
        Scores::Binary(p) => {
            if let Some(y) = labels {
                columns.push((
                    "label".into(),
                    Arc::new(Int64Array::from_iter_values(y.iter().map(|&v| v as i64))),
                ));
            }
            columns.push(("score".into(), Arc::new(Float64Array::from(p.clone()))));
        }
        Scores::Multiclass { classes: k, p } => {
            let values = classes.values();
            let strings = values.iter().all(serde_json::Value::is_string);
            let column = |idx: &mut dyn Iterator<Item = usize>| -> ArrayRef {
                if strings {
                    Arc::new(StringArray::from_iter_values(
                        idx.map(|c| values[c].as_str().unwrap_or_default()),
                    ))
                } else {
                    Arc::new(Int64Array::from_iter_values(
                        idx.map(|c| values[c].as_i64().unwrap_or_default()),
                    ))
                }
            };
            if let Some(y) = labels {
                columns.push(("label".into(), column(&mut y.iter().map(|&v| v as usize))));
            }
            columns.push(("predicted".into(), column(&mut argmax(p, *k).into_iter())));
            for (c, value) in values.iter().enumerate() {
                columns.push((
                    probability_column(value),
                    Arc::new(Float64Array::from_iter_values(p.chunks_exact(*k).map(|row| row[c]))),
                ));
            }
        }
    }
    let batch = arrow::record_batch::RecordBatch::try_from_iter(columns)
        .map_err(|e| Error::Internal(e.to_string()))?;
    crate::data::write_parquet(path, batch, 1 << 20)
}

/// The columns [`write_predictions`] writes after the key, with labels (at training time).
pub fn prediction_columns(classes: &Labels) -> Vec<String> {
    match classes {
        Labels::Binary(_) => vec!["label".into(), "score".into()],
        Labels::Multiclass(m) => ["label".to_string(), "predicted".to_string()]
            .into_iter()
            .chain(m.classes.iter().map(probability_column))
            .collect(),
    }
}

/// `probability_<class>`: the class value as written in the label column (strings unquoted).
pub fn probability_column(class: &serde_json::Value) -> String {
    match class {
        serde_json::Value::String(s) => format!("probability_{s}"),
        other => format!("probability_{other}"),
    }
}
