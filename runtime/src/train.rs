//! `trainyard train`: load → features → fit → evaluate → write, each phase timed, the run
//! directory written atomically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artifact::{self, ModelCard, PartitionCard};
use crate::data::Column;
use crate::dataset;
use crate::device::{self, Workload};
use crate::error::{Error, Result};
use crate::features::Pipeline;
use crate::logistic;
use crate::memory;
use crate::metrics::SplitMetrics;
use crate::mlp::{self, checkpoint};
use crate::model::{FitReport, Model};
use crate::partition::{self, GroupKey, PartitionReport};
use crate::rundir::{self, Staging, names};
use crate::spec::{CheckedSpec, ModelSpec};

/// Options of a training run beyond the spec.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Run directory; overrides the spec's `output`.
    pub output: Option<PathBuf>,
    /// Replace an existing non-empty run directory.
    pub overwrite: bool,
    /// Draw progress bars on stderr (an interactive terminal).
    pub progress: bool,
}

/// Seconds spent in each phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseSeconds {
    /// Reading, filtering, joining and splitting.
    pub load: f64,
    /// Fitting the feature pipeline and building both design matrices.
    pub features: f64,
    /// The solver.
    pub fit: f64,
    /// Scoring and metrics on train and test.
    pub evaluate: f64,
    /// Writing the run directory (up to the manifest).
    pub write: f64,
    /// Everything.
    pub total: f64,
}

/// `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsFile {
    /// Metrics on the train rows.
    pub train: SplitMetrics,
    /// Metrics on the test rows.
    pub test: SplitMetrics,
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
    /// Per-group models against the generic model alone (`partition` in the spec); `train` and
    /// `test` above are the composition's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionReport>,
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
    /// SHA-256 of the content.
    pub sha256: String,
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
}

/// What a finished run reports back.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Train rows.
    pub train_rows: usize,
    /// Test metrics.
    pub test: SplitMetrics,
    /// Fit details.
    pub fit: FitReport,
    /// Wall seconds.
    pub seconds: f64,
}

/// Trains the job described by `checked` and writes its run directory.
pub fn train(checked: &CheckedSpec, opts: &TrainOptions) -> Result<TrainSummary> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mut checked = checked.clone();
    if let Some(out) = &opts.output {
        checked.spec.output = Some(out.to_string_lossy().into_owned());
    }
    let target = PathBuf::from(checked.spec.output_dir());
    let inputs: Vec<PathBuf> = (checked.spec.data.features.iter().chain(&checked.spec.data.labels))
        .chain(match &checked.holdout {
            crate::spec::CheckedHoldout::Files(entries) => entries.as_slice(),
            _ => &[],
        })
        .map(|entry| checked.resolve(entry))
        .collect();
    let target = rundir::check_output(&target, opts.overwrite, &inputs)?;
    let workload = match &checked.spec.model {
        ModelSpec::Logistic(_) => Workload::Logistic,
        ModelSpec::Mlp(_) => Workload::Mlp,
    };
    let device = device::resolve(&checked.spec.device, workload)?;
    let spec = &checked.spec;
    let mut phases = PhaseSeconds::default();
    let resolved = spec.resolved_json();
    let spec_sha256 = artifact::hex(&Sha256::digest(resolved.to_string().as_bytes()));
    let checkpoint_dir = checkpoint::dir_for(&target);
    let mut resume = match &spec.model {
        ModelSpec::Mlp(_) => find_checkpoint(&checkpoint_dir, &spec_sha256)?,
        ModelSpec::Logistic(_) => None,
    };

    let t = Instant::now();
    let mut data = dataset::load(&checked)?;
    phases.load = t.elapsed().as_secs_f64();
    // The inputs' SHA-256 for the manifest, on a thread of its own while the features and the
    // fit run: the files were just read, so this reads the page cache, and it overlaps the
    // phases that leave a core idle instead of adding a pass over the inputs at the end.
    let fingerprinting = {
        let files = data.report.files.clone();
        std::thread::spawn(move || fingerprint(&files))
    };
    tracing::info!(
        phase = "load",
        seconds = phases.load,
        train_rows = data.train.len(),
        test_rows = data.test.len(),
        "loaded {} train and {} test rows",
        data.train.len(),
        data.test.len()
    );

    // Group keys leave the frames before the feature transforms consume them.
    let group_keys = match &spec.partition {
        Some(p) => {
            let side = |rows: &dataset::Rows| -> Result<Vec<Option<GroupKey>>> {
                let column = rows
                    .frame
                    .column(&p.by)
                    .ok_or_else(|| Error::Internal(format!("partition column {} not read", p.by)))?;
                partition::keys(column, &p.by)
            };
            Some((side(&data.train)?, side(&data.test)?))
        }
        None => None,
    };

    let t = Instant::now();
    let pipeline = Pipeline::fit_spec(&data.train.frame, &spec.features)?;
    // Before the design matrices and the network exist: a run that cannot fit fails now, with
    // what is too large, instead of being killed for memory later.
    let estimate = memory::estimate(&spec.model, &pipeline, data.train.len(), data.test.len());
    memory::check(&estimate, &memory::budget(), memory::resident_bytes())?;
    // The frames' dense rows become the numeric blocks (in place when the layout allows).
    let (x_train, x_test) =
        (pipeline.design_owned(&mut data.train.frame)?, pipeline.design_owned(&mut data.test.frame)?);
    // Only the test rows' key is read after this point.
    data.train.frame = Default::default();
    phases.features = t.elapsed().as_secs_f64();
    tracing::info!(
        phase = "features",
        seconds = phases.features,
        width = x_train.width(),
        numeric = x_train.numeric.cols,
        categorical = x_train.slots.len(),
        "design has {} columns ({} numeric, {} categorical slots)",
        x_train.width(),
        x_train.numeric.cols,
        x_train.width() - x_train.numeric.cols
    );

    let t = Instant::now();
    let train_rows = data.train.len();
    let (model, fit, passes) = match &spec.model {
        ModelSpec::Logistic(hyper) => {
            let (model, fit) =
                logistic::fit_on(device, &x_train, &data.train.labels, data.train.weights.as_deref(), hyper)?;
            tracing::info!(
                phase = "fit",
                seconds = t.elapsed().as_secs_f64(),
                iterations = fit.iterations,
                passes = fit.objective_passes,
                converged = fit.converged,
                "fitted in {} iterations ({} passes), converged: {}",
                fit.iterations,
                fit.objective_passes,
                fit.converged
            );
            if !fit.converged {
                tracing::warn!(stop = ?fit.stop, "the solver stopped before converging; see fit in metrics.json");
            }
            let passes = f64::from(fit.objective_passes);
            (Model::Logistic(model), FitReport::Logistic(fit), passes)
        }
        ModelSpec::Mlp(hyper) => {
            let train_data = mlp::TrainData {
                numeric: &x_train.numeric,
                codes: &x_train.codes,
                cardinalities: &x_train.slots,
                labels: &data.train.labels,
                weights: data.train.weights.as_deref(),
            };
            let opts = mlp::FitOptions {
                seed: spec.seed,
                spec_sha256: spec_sha256.clone(),
                checkpoint_dir: checkpoint_dir.clone(),
                resume: resume.take(),
                progress: opts.progress,
                device: device::candle(device)?,
            };
            let (model, fit) = mlp::fit(&train_data, hyper, opts)?;
            tracing::info!(
                phase = "fit",
                seconds = t.elapsed().as_secs_f64(),
                epochs = fit.epochs,
                best_epoch = fit.best_epoch,
                steps = fit.steps,
                samples_per_second = fit.samples_per_second,
                "trained {} epochs ({} steps), kept epoch {}",
                fit.epochs,
                fit.steps,
                fit.best_epoch
            );
            let passes = f64::from(fit.epochs);
            (Model::Mlp(model), FitReport::Mlp(fit), passes)
        }
    };

    // Per-group models, next to the generic one.
    let groups = match (&spec.partition, &model, &group_keys) {
        (Some(p), Model::Logistic(generic), Some((train_keys, _))) => {
            let ModelSpec::Logistic(hyper) = &spec.model else {
                return Err(Error::Internal("partition without a logistic model".into()));
            };
            let started = Instant::now();
            let fitted = partition::fit(
                &x_train,
                &data.train.labels,
                data.train.weights.as_deref(),
                train_keys,
                p,
                hyper,
                generic,
            );
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(
                phase = "fit",
                seconds,
                groups = fitted.models.keys.len(),
                "fitted {} group models on {:?}",
                fitted.models.keys.len(),
                p.by
            );
            Some((fitted, seconds))
        }
        _ => None,
    };
    phases.fit = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let (p_train, p_test) = match &model {
        Model::Logistic(m) => (m.predict_proba(&x_train), m.predict_proba(&x_test)),
        Model::Mlp(m) => (
            m.predict_proba(&x_train.numeric, &x_train.codes)?,
            m.predict_proba(&x_test.numeric, &x_test.codes)?,
        ),
    };
    let mut partition_report = None;
    let mut group_rows = Vec::new();
    let (p_train, p_test) = match (&groups, &group_keys, &spec.partition) {
        (Some((fitted, seconds)), Some((train_keys, test_keys)), Some(p)) => {
            let train =
                partition::Side { x: &x_train, y: &data.train.labels, keys: train_keys, generic: &p_train };
            let test =
                partition::Side { x: &x_test, y: &data.test.labels, keys: test_keys, generic: &p_test };
            let eval = partition::evaluate(fitted, p, *seconds, train, test);
            partition_report = Some(eval.report);
            group_rows = eval.rows;
            (eval.train, eval.test)
        }
        _ => (p_train, p_test),
    };
    let design_width = match &model {
        Model::Logistic(_) => x_train.width(),
        Model::Mlp(_) => x_train.numeric.cols,
    };
    drop((x_train, x_test));
    let train_metrics = SplitMetrics::compute(&data.train.labels, &p_train);
    let test_metrics = SplitMetrics::compute(&data.test.labels, &p_test);
    // The last line of defence of "no run ends with a non-finite number": inputs are checked
    // finite and both fits refuse a non-finite objective, so this names a bug, not the data.
    if let Some(side) = [("train", &p_train), ("test", &p_test)]
        .iter()
        .find_map(|(side, p)| p.iter().any(|v| !v.is_finite()).then_some(*side))
    {
        return Err(match &model {
            // Every step's loss was finite, but the last update left NaN or infinite weights.
            Model::Mlp(_) => Error::data(format!(
                "model.mlp: the trained network gives non-finite scores on {side} rows; no run was \
                 written (the optimizer diverged: lower model.mlp.learning_rate or set \
                 model.mlp.grad_clip_norm)"
            )),
            Model::Logistic(_) => Error::Internal(format!(
                "the fitted model gives non-finite scores on {side} rows; no run was written"
            )),
        });
    }
    phases.evaluate = t.elapsed().as_secs_f64();
    tracing::info!(
        phase = "evaluate",
        seconds = phases.evaluate,
        test_auc = test_metrics.roc_auc,
        "test ROC AUC {:.4}",
        test_metrics.roc_auc
    );

    let t = Instant::now();
    let staging = Staging::new(&target)?;
    let key = dataset::row_key(&checked).map(str::to_string);
    let mut card = ModelCard::new(spec.model.clone(), &model, pipeline, data.labels.clone(), key.clone());
    if let (Some(p), Some((fitted, _))) = (&spec.partition, &groups) {
        card.partition =
            Some(PartitionCard { by: p.by.clone(), spec: p.clone(), groups: fitted.models.keys.len() });
        staging.write(partition::GROUPS_WEIGHTS, &fitted.models.to_bytes()?)?;
        partition::write_table(&staging.path(partition::GROUPS_TABLE), &group_rows)?;
    }
    staging.write(names::MODEL_JSON, &to_json(&card)?)?;
    staging.write(names::WEIGHTS, &artifact::weights_bytes(&model)?)?;
    let key_column = key.as_deref().and_then(|k| data.test.frame.column(k).map(|c| (k, c)));
    write_predictions(&staging.path(names::PREDICTIONS), key_column, Some(&data.test.labels), &p_test)?;
    let inputs = fingerprinting.join().map_err(|e| {
        Error::Internal(format!("fingerprinting the inputs: {}", crate::data::panic_message(&*e)))
    })??;
    phases.write = t.elapsed().as_secs_f64();
    phases.total = started.elapsed().as_secs_f64();

    let metrics = MetricsFile {
        train: train_metrics,
        test: test_metrics.clone(),
        fit: fit.clone(),
        load_rows_per_second: data.report.features_read.rows_in_files as f64 / phases.load.max(1e-9),
        fit_rows_per_second: (train_rows as f64 * passes) / phases.fit.max(1e-9),
        design_width,
        phases,
        partition: partition_report,
    };
    staging.write(names::METRICS, &to_json(&metrics)?)?;
    let finished_at = chrono::Utc::now();
    let manifest = Manifest {
        run_id: format!("{}-{}-{}", spec.name, started_at.format("%Y%m%dT%H%M%SZ"), &spec_sha256[..8]),
        status: "succeeded".into(),
        exit_reason: "completed".into(),
        name: spec.name.clone(),
        spec: resolved,
        spec_sha256,
        trainyard_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: env!("TRAINYARD_GIT_COMMIT").into(),
        device: device.to_string(),
        threads: rayon::current_num_threads(),
        seed: spec.seed,
        inputs,
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        finished_at: finished_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        seconds: started.elapsed().as_secs_f64(),
        artifacts: artifact::digests(&staging.path(""))?,
    };
    staging.write(names::MANIFEST, &to_json(&manifest)?)?;
    let run_dir = staging.commit()?;
    checkpoint::remove(&checkpoint_dir)?;
    Ok(TrainSummary {
        run_dir,
        train_rows,
        test: test_metrics,
        fit,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The checkpoint a killed or preempted run of this spec left, if any. A checkpoint of another
/// spec is refused: resuming it would mix two jobs' weights.
fn find_checkpoint(dir: &Path, spec_sha256: &str) -> Result<Option<checkpoint::Checkpoint>> {
    let Some(ckpt) = checkpoint::load(dir, &candle_core::Device::Cpu)? else {
        return Ok(None);
    };
    if ckpt.state.spec_sha256 != spec_sha256 {
        return Err(Error::Usage(format!(
            "{} holds a checkpoint of a different spec (resolved spec sha256 {}, this one is {}); \
             run the original spec to resume it, or remove the folder to start over",
            dir.display(),
            ckpt.state.spec_sha256.chars().take(12).collect::<String>(),
            &spec_sha256[..12]
        )));
    }
    Ok(Some(ckpt))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Hashes every input file (in parallel) for the manifest.
fn fingerprint(files: &[dataset::FileInfo]) -> Result<Vec<InputFile>> {
    files
        .iter()
        .map(|f| {
            Ok(InputFile {
                role: f.role.clone(),
                path: f.path.clone(),
                bytes: f.bytes,
                rows: f.rows,
                sha256: artifact::sha256_file(&f.path)?,
            })
        })
        .collect()
}

/// Writes scores (and labels, at training time) to Parquet: the key column when there is one,
/// then `label` (0/1), then `score` (probability of the positive class).
pub fn write_predictions(
    path: &Path,
    key: Option<(&str, &Column)>,
    labels: Option<&[f32]>,
    scores: &[f64],
) -> Result<()> {
    use arrow::array::{ArrayRef, Float64Array, Int64Array};
    use std::sync::Arc;
    let mut columns: Vec<(&str, ArrayRef)> = Vec::new();
    if let Some((name, column)) = key {
        columns.push((name, column.to_arrow()));
    }
    if let Some(y) = labels {
        columns.push(("label", Arc::new(Int64Array::from_iter_values(y.iter().map(|&v| v as i64)))));
    }
    columns.push(("score", Arc::new(Float64Array::from(scores.to_vec()))));
    let batch = arrow::record_batch::RecordBatch::try_from_iter(columns)
        .map_err(|e| Error::Internal(e.to_string()))?;
    crate::data::write_parquet(path, batch, 1 << 20)
}
