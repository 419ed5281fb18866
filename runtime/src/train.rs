//! `trainyard train`: load → features → fit → evaluate → write, each phase timed, the run
//! directory written atomically.

use std::path::PathBuf;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::artifact::{self, ModelCard, PartitionCard};
use crate::baseline::{self, Comparison};
use crate::dataset;
use crate::device;
use crate::error::{Error, Result};
use crate::features::Pipeline;
use crate::gate::{self, Promotion};
use crate::memory;
use crate::metrics::{self, Evaluation, Scores};
use crate::mlp::checkpoint;
use crate::model::{self, FitContext, FitReport, Fitted, Model, TrainSet};
use crate::onnx;
use crate::partition::{self, GroupKey};
use crate::report::{self, Curves, SideCurves};
use crate::rundir::{self, Staging, names};
use crate::runfiles::{
    self, InputFile, Manifest, MetricsFile, PhaseSeconds, RunSummary, to_json, write_predictions,
};
use crate::spec::CheckedSpec;
use crate::store::{self, Remote};

/// Options of a training run beyond the spec.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Run directory; overrides the spec's `output`.
    pub output: Option<PathBuf>,
    /// Replace an existing non-empty run directory.
    pub overwrite: bool,
    /// Where long phases report their progress (the binary draws a bar or logs JSON lines).
    pub progress: crate::progress::Reporter,
    /// Asks a fit that checkpoints to stop (the binary connects it to SIGTERM).
    pub cancel: crate::signal::Cancellation,
}

/// What a finished run reports back.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Train rows.
    pub train_rows: usize,
    /// Test metrics.
    pub test: Evaluation,
    /// Fit details.
    pub fit: FitReport,
    /// Wall seconds.
    pub seconds: f64,
    /// The comparison with the baseline, when the spec has one.
    pub baseline: Option<Comparison>,
    /// The gate's verdict, when the spec has a gate.
    pub promotion: Option<Promotion>,
}

/// Trains the job described by `checked` and writes its run directory.
pub fn train(checked: &CheckedSpec, opts: &TrainOptions) -> Result<TrainSummary> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mut checked = checked.clone();
    if let Some(out) = &opts.output {
        checked.spec.output = Some(out.to_string_lossy().into_owned());
    }
    let output = PathBuf::from(store::local_path(&checked.spec.output_dir()));
    let inputs: Vec<PathBuf> = checked.input_entries().map(|entry| checked.resolve(entry)).collect();
    if opts.overwrite {
        crate::registry::production::refuse_overwrite(&output.to_string_lossy())?;
    }
    let (local_inputs, remote_inputs): (Vec<PathBuf>, Vec<PathBuf>) =
        inputs.into_iter().partition(|p| !p.to_str().is_some_and(store::is_url));
    // A run bound for an object store is staged in a local scratch directory, then uploaded.
    let out = match Remote::parse_path(&output)? {
        Some(remote) => {
            let urls: Vec<String> = remote_inputs.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            store::run::check_target(&remote, opts.overwrite, &urls)?;
            let scratch = store::Scratch::new("output")?;
            let name = remote.name().unwrap_or_default();
            Output { target: scratch.path().join(&name), remote: Some((remote, scratch)) }
        }
        None => {
            Output { target: rundir::check_output(&output, opts.overwrite, &local_inputs)?, remote: None }
        }
    };
    let target = out.target.clone();
    let spec = &checked.spec;
    let mut phases = PhaseSeconds::default();
    let resolved = spec.resolved_json();
    let spec_sha256 = runfiles::hex(&Sha256::digest(resolved.to_string().as_bytes()));
    let checkpoints = checkpoint::Place::for_run(&target, out.remote.as_ref().map(|(r, _)| r));
    let resume =
        if model::checkpoints(&spec.model) { find_checkpoint(&checkpoints, &spec_sha256)? } else { None };

    let device = device::resolve_request(checked.device, &spec.device, model::workload(&spec.model))?;

    // The baseline is opened before any data is read: a missing or unreadable one fails now.
    let baseline = baseline::resolve(&checked)?;

    let t = Instant::now();
    let mut data = dataset::load_with(&checked, &baseline::extra_columns(baseline.as_ref()), &opts.progress)?;
    phases.load = t.elapsed().as_secs_f64();
    let classes = data.labels.classes();
    baseline::check_against(&checked, baseline.as_ref(), &data.labels)?;
    // The key is copied into predictions.parquet beside columns of fixed names: a clash would
    // only show when the run is written, after the fit.
    if let Some(key) = dataset::row_key(&checked)
        && runfiles::prediction_columns(&data.labels).iter().any(|c| c == key)
    {
        let field = if spec.data.join_key.is_some() { "data.join_key" } else { "holdout.random.key" };
        return Err(Error::spec(
            field,
            format!(
                "column {key:?} has the name of a column predictions.parquet writes ({}); rename it",
                runfiles::prediction_columns(&data.labels).join(", ")
            ),
        ));
    }
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
    // What would stop the export is known now, before the fit rather than after it.
    onnx::check_spec(spec, &pipeline, group_keys.iter().flat_map(|(train, _)| train.iter().flatten()))?;
    // Before the design matrices and the network exist: a run that cannot fit fails now, with
    // what is too large, instead of being killed for memory later.
    let estimate = memory::estimate(&spec.model, &pipeline, data.train.len(), data.test.len(), classes);
    memory::check(&estimate, &memory::budget(), memory::resident_bytes())?;
    // The baseline reads the test rows as they were loaded, before the design consumes them.
    let baseline_scores = match &baseline {
        Some(baseline::Resolved::Run(b)) => Some(baseline::score(b, &data.test.frame)?),
        _ => None,
    };
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
    let train_set = TrainSet {
        x: &x_train,
        labels: &data.train.labels,
        classes,
        weights: data.train.weights.as_deref(),
        groups: group_keys.as_ref().map(|(train, _)| train.as_slice()),
    };
    let ctx = FitContext {
        device,
        seed: spec.seed,
        spec_sha256: spec_sha256.clone(),
        checkpoint: checkpoints.clone(),
        resume,
        progress: opts.progress.clone(),
        cancel: opts.cancel.clone(),
    };
    let Fitted { model, report: fit, groups } =
        Model::fit(&spec.model, spec.partition.as_ref(), &train_set, ctx)?;
    log_fit(&fit, t.elapsed().as_secs_f64());
    phases.group_selection = groups.as_ref().map(|(g, _)| g.selection_seconds());
    phases.fit = t.elapsed().as_secs_f64() - phases.group_selection.unwrap_or(0.0);

    let t = Instant::now();
    let (mut s_train, mut s_test) = (model.score(&x_train)?, model.score(&x_test)?);
    let mut partition_report = None;
    let mut group_rows = Vec::new();
    let mut generic_test = None;
    if let (Some((fitted, seconds)), Some((train_keys, test_keys)), Some(p)) =
        (&groups, &group_keys, &spec.partition)
        && let (Scores::Binary(p_train), Scores::Binary(p_test)) = (&s_train, &s_test)
    {
        let train =
            partition::Side { x: &x_train, y: &data.train.labels, keys: train_keys, generic: p_train };
        let test = partition::Side { x: &x_test, y: &data.test.labels, keys: test_keys, generic: p_test };
        // The generic model's test scores, for the report's comparison with the composition.
        generic_test = Some(p_test.clone());
        let eval = partition::evaluate(fitted, p, *seconds, train, test);
        partition_report = Some(eval.report);
        group_rows = eval.rows;
        (s_train, s_test) = (Scores::Binary(eval.train), Scores::Binary(eval.test));
    }
    let design_width = model.design_width(&x_train);
    drop((x_train, x_test));
    let class_values = data.labels.values();
    // The ranked rows are kept for the report's curves: one sort per split serves both.
    let (train_metrics, train_ranked) =
        Evaluation::compute_ranked(&data.train.labels, &s_train, &class_values);
    let (test_metrics, test_ranked) = Evaluation::compute_ranked(&data.test.labels, &s_test, &class_values);
    // The last line of defence of "no run ends with a non-finite number": inputs are checked
    // finite and both fits refuse a non-finite objective, so this names a bug, not the data.
    if let Some(side) = [("train", &s_train), ("test", &s_test)]
        .iter()
        .find_map(|(side, p)| p.values().iter().any(|v| !v.is_finite()).then_some(*side))
    {
        return Err(model.non_finite(side));
    }
    let comparison = match (&baseline, &baseline_scores) {
        (Some(baseline::Resolved::Run(b)), Some(scores)) => {
            let resamples = spec.baseline.as_ref().map_or(crate::metrics::paired::RESAMPLES, |b| b.resamples);
            let mut c = Comparison::compute(
                &data.test.labels,
                scores,
                &s_test,
                &class_values,
                resamples,
                spec.seed,
                &opts.progress,
            );
            c.run_id = b.run_id.clone();
            c.path = b.path.display().to_string();
            c.production = b.production.clone();
            tracing::info!(
                phase = "evaluate",
                baseline = %c.run_id,
                rows = c.rows,
                delta_roc_auc = c.deltas.get("roc_auc").copied(),
                delta_log_loss = c.deltas.get("log_loss").copied(),
                p_value_roc_auc = c.p_value("roc_auc"),
                "against the baseline {}: ROC AUC {:+.4}, log loss {:+.4}",
                c.run_id,
                c.deltas.get("roc_auc").copied().unwrap_or(f64::NAN),
                c.deltas.get("log_loss").copied().unwrap_or(f64::NAN)
            );
            Some(c)
        }
        _ => None,
    };
    let promotion = match (&spec.gate, &comparison, &baseline) {
        (Some(g), Some(c), _) => Some(gate::decide(g, c)),
        (Some(_), None, Some(baseline::Resolved::Missing { name, root })) => {
            Some(gate::first_run(name, root))
        }
        _ => None,
    };
    if let Some(p) = &promotion {
        tracing::info!(phase = "evaluate", eligible = p.eligible, reasons = ?p.reasons, "promotion gate: {}", if p.eligible { "eligible" } else { "not eligible" });
    }
    phases.evaluate = t.elapsed().as_secs_f64();
    tracing::info!(
        phase = "evaluate",
        seconds = phases.evaluate,
        test_auc = test_metrics.roc_auc(),
        test_log_loss = test_metrics.log_loss(),
        "test ROC AUC {:.4}, log loss {:.4}",
        test_metrics.roc_auc(),
        test_metrics.log_loss()
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
    staging.write(names::WEIGHTS, &model.weights_bytes()?)?;
    let key_column = key.as_deref().and_then(|k| data.test.frame.column(k).map(|c| (k, c)));
    write_predictions(
        &staging.path(names::PREDICTIONS),
        key_column,
        Some(&data.test.labels),
        &s_test,
        &data.labels,
    )?;
    let inputs = fingerprinting.join().map_err(|e| {
        Error::Internal(format!("fingerprinting the inputs: {}", crate::data::panic_message(&*e)))
    })??;
    phases.write = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let curves = {
        let side = |ranked: Option<metrics::Ranked>| ranked.map(|r| SideCurves::from_ranked(&r));
        let (groups, groups_with_test_rows) = report::curves::group_points(&group_rows);
        Curves {
            format_version: report::curves::FORMAT_VERSION,
            test: side(test_ranked),
            train: side(train_ranked),
            generic_test: generic_test.map(|p| SideCurves::compute(&data.test.labels, &p)),
            groups,
            groups_with_test_rows,
        }
    };
    staging.write(names::CURVES, &to_json(&curves)?)?;
    phases.total = started.elapsed().as_secs_f64();
    let mut metrics = MetricsFile {
        train: train_metrics,
        test: test_metrics.clone(),
        fit: fit.clone(),
        load_rows_per_second: data.report.features_read.rows_in_files as f64 / phases.load.max(1e-9),
        fit_rows_per_second: (train_rows as f64 * fit.passes()) / phases.fit.max(1e-9),
        design_width,
        phases,
        object_store: Some(store::TRAFFIC.counts()).filter(|c| *c != store::TrafficCounts::default()),
        partition: partition_report,
        baseline: comparison.clone(),
    };
    let mut manifest = Manifest {
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
        finished_at: String::new(),
        seconds: 0.0,
        artifacts: Default::default(),
        summary: Some(RunSummary::new(train_rows, &test_metrics)),
        promotion: promotion.clone(),
    };
    if spec.export.contains(&onnx::Format::Onnx) {
        // The card as `model.json` reads back, so that the graph is built from exactly what
        // `predict` and `trainyard export` read.
        let card = serde_json::from_slice(&to_json(&card)?)
            .map_err(|e| Error::Internal(format!("reading back {}: {e}", names::MODEL_JSON)))?;
        let run = artifact::Run {
            card,
            model: model.clone(),
            groups: groups.as_ref().map(|(g, _)| g.models.clone()),
        };
        let provenance =
            onnx::Provenance { run_id: manifest.run_id.clone(), spec_sha256: manifest.spec_sha256.clone() };
        let bytes = onnx::to_bytes(&run, &provenance, &Default::default())?;
        staging.write(names::ONNX, &bytes)?;
        tracing::info!(
            phase = "write",
            bytes = bytes.len(),
            "wrote {} ({} KiB)",
            names::ONNX,
            bytes.len() / 1024
        );
    }
    // The report is drawn from what the run's files will hold (its own seconds aside).
    let view = report::RunView::of_training(
        &output,
        manifest.clone(),
        metrics.clone(),
        curves,
        &model,
        &card.pipeline,
        class_values,
    );
    let html = report::draw_for_training(view);
    if let Some(html) = &html {
        staging.write(names::REPORT, html.as_bytes())?;
    }
    metrics.phases.report = Some(t.elapsed().as_secs_f64());
    metrics.phases.total = started.elapsed().as_secs_f64();
    if let Some(html) = &html {
        tracing::info!(
            phase = "report",
            seconds = metrics.phases.report,
            bytes = html.len(),
            "wrote {} ({} KiB)",
            names::REPORT,
            html.len() / 1024
        );
    }
    staging.write(names::METRICS, &to_json(&metrics)?)?;
    let finished_at = chrono::Utc::now();
    manifest.finished_at = finished_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    manifest.seconds = started.elapsed().as_secs_f64();
    manifest.artifacts = runfiles::digests(&staging.path(""))?;
    staging.write(names::MANIFEST, &to_json(&manifest)?)?;
    let mut run_dir = staging.commit()?;
    if let Some((remote, _scratch)) = &out.remote {
        store::run::commit(&run_dir, remote, opts.overwrite, &opts.progress)?;
        run_dir = PathBuf::from(remote.url());
    }
    checkpoints.remove()?;
    Ok(TrainSummary {
        run_dir,
        train_rows,
        test: test_metrics,
        fit,
        seconds: started.elapsed().as_secs_f64(),
        baseline: comparison,
        promotion,
    })
}

/// The fit phase's log line.
fn log_fit(fit: &FitReport, seconds: f64) {
    match fit {
        FitReport::Logistic(fit) => {
            tracing::info!(
                phase = "fit",
                seconds,
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
        }
        FitReport::Mlp(fit) => tracing::info!(
            phase = "fit",
            seconds,
            epochs = fit.epochs,
            best_epoch = fit.best_epoch,
            steps = fit.steps,
            samples_per_second = fit.samples_per_second,
            "trained {} epochs ({} steps), kept epoch {}",
            fit.epochs,
            fit.steps,
            fit.best_epoch
        ),
    }
}

/// The checkpoint a killed or preempted run of this spec left, if any. A checkpoint of another
/// spec is refused: resuming it would mix two jobs' weights.
fn find_checkpoint(place: &checkpoint::Place, spec_sha256: &str) -> Result<Option<checkpoint::Checkpoint>> {
    let Some(ckpt) = place.load(&candle_core::Device::Cpu)? else {
        return Ok(None);
    };
    if ckpt.state.spec_sha256 != spec_sha256 {
        return Err(Error::Usage(format!(
            "{} holds a checkpoint of a different spec (resolved spec sha256 {}, this one is {}); \
             run the original spec to resume it, or remove the folder to start over",
            place,
            ckpt.state.spec_sha256.chars().take(12).collect::<String>(),
            &spec_sha256[..12]
        )));
    }
    Ok(Some(ckpt))
}

/// Where the run goes: the local directory it is written to, and for a run bound for an object
/// store, the prefix it is uploaded to and the local scratch directory it is staged in.
struct Output {
    target: PathBuf,
    remote: Option<(Remote, store::Scratch)>,
}

/// Fingerprints every input file for the manifest: local files by the SHA-256 of their content,
/// objects by the ETag, version and last-modified time their listing returned.
fn fingerprint(files: &[dataset::FileInfo]) -> Result<Vec<InputFile>> {
    files
        .iter()
        .map(|f| {
            let (sha256, etag, version, last_modified) = match &f.object {
                Some(o) => (
                    None,
                    o.e_tag.clone(),
                    o.version.clone(),
                    Some(o.last_modified.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                ),
                None => (Some(runfiles::sha256_file(&f.path)?), None, None, None),
            };
            Ok(InputFile {
                role: f.role.clone(),
                path: f.path.clone(),
                bytes: f.bytes,
                rows: f.rows,
                sha256,
                etag,
                version,
                last_modified,
            })
        })
        .collect()
}
