//! The model layer: one fitted [`Model`] whatever its kind, fitted, scored, saved, loaded and
//! summarized through the same calls. Each kind's behaviour lives in its own module
//! ([`crate::logistic`] for binary and multinomial logistic regression, [`crate::mlp`] for the
//! network); this module only routes to it, so `train`, `predict` and `inspect` never match on
//! the model (they read its fit report's fields where they print them).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::device::{self, Device, Workload};
use crate::error::Result;
use crate::features::{Design, Pipeline};
use crate::logistic::{self, LogisticModel, SoftmaxModel};
use crate::metrics::Scores;
use crate::mlp::{self, Architecture, MlpModel, MlpReport, checkpoint::Checkpoint};
use crate::partition::{self, GroupKey};
use crate::spec::{ModelSpec, PartitionSpec};

/// A fitted model.
#[derive(Debug, Clone)]
pub enum Model {
    /// Binary logistic regression over the design, coefficients in one-hot order.
    Logistic(LogisticModel),
    /// Multinomial (softmax) logistic regression, K coefficient vectors.
    Multinomial(SoftmaxModel),
    /// The MLP over the numeric block and categorical embeddings (one or K outputs).
    Mlp(MlpModel),
}

/// How the fit went, as `metrics.json` records it (the fields of the model kind's report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FitReport {
    /// L-BFGS iterations, passes, convergence (binary and multinomial logistic).
    Logistic(logistic::FitReport),
    /// Epochs, steps, early stopping, history.
    Mlp(MlpReport),
}

impl FitReport {
    /// Whether the fit met its stopping criterion (logistic: converged; MLP: early stopping).
    pub fn converged(&self) -> bool {
        match self {
            FitReport::Logistic(f) => f.converged,
            FitReport::Mlp(f) => f.converged,
        }
    }

    /// Passes over the training rows (logistic: objective evaluations; MLP: epochs), for the
    /// fit's rows-per-second.
    pub fn passes(&self) -> f64 {
        match self {
            FitReport::Logistic(f) => f64::from(f.objective_passes),
            FitReport::Mlp(f) => f64::from(f.epochs),
        }
    }
}

/// The training rows as a model sees them.
#[derive(Debug, Clone, Copy)]
pub struct TrainSet<'a> {
    /// The design (numeric block and categorical codes).
    pub x: &'a Design,
    /// 0/1 labels, or class indices.
    pub labels: &'a [f32],
    /// Classes: 2 for binary labels.
    pub classes: usize,
    /// Sample weights.
    pub weights: Option<&'a [f32]>,
    /// Each row's group (`partition.by`) when the spec has a partition.
    pub groups: Option<&'a [Option<GroupKey>]>,
}

/// A fit's result: the model, how the fit went, and the per-group models of a partitioned run
/// with the seconds they took.
#[derive(Debug)]
pub struct Fitted {
    /// The generic model.
    pub model: Model,
    /// How its fit went.
    pub report: FitReport,
    /// Per-group models next to the generic one (`partition` in the spec).
    pub groups: Option<(partition::Fitted, f64)>,
}

/// What a fit needs beyond the rows and hyperparameters; the caller (`main`, through `train`)
/// owns the terminal and the signals.
#[derive(Debug)]
pub struct FitContext {
    /// The device the spec's `device` resolved to for this model.
    pub device: Device,
    /// The job's seed.
    pub seed: u64,
    /// SHA-256 of the resolved spec, recorded in checkpoints.
    pub spec_sha256: String,
    /// Where checkpoints go (models that checkpoint).
    pub checkpoint: mlp::checkpoint::Place,
    /// A checkpoint of this spec to resume from.
    pub resume: Option<Checkpoint>,
    /// Where long fits report their progress.
    pub progress: crate::progress::Reporter,
    /// Set when the process was asked to stop (SIGTERM): models that checkpoint save one and
    /// stop; see [`crate::signal::Cancellation`].
    pub cancel: crate::signal::Cancellation,
}

/// What a model of `spec` needs from a GPU (binary and multinomial logistic regression run our
/// NVRTC kernels; the MLP, candle's CUDA backend).
pub fn workload(spec: &ModelSpec) -> Workload {
    match spec {
        ModelSpec::Logistic(_) => Workload::Logistic,
        ModelSpec::Mlp(_) => Workload::Mlp,
    }
}

/// Whether a fit of `spec` can resume from a checkpoint.
pub fn checkpoints(spec: &ModelSpec) -> bool {
    matches!(spec, ModelSpec::Mlp(_))
}

impl Model {
    /// Fits the model `spec` describes on `train`, and with `partition` (the checker allows it
    /// only for a logistic model, and the labels were checked binary) one model per group next
    /// to it.
    pub fn fit(
        spec: &ModelSpec,
        partition: Option<&PartitionSpec>,
        train: &TrainSet<'_>,
        ctx: FitContext,
    ) -> Result<Fitted> {
        let (progress, ctx_seed) = (ctx.progress.clone(), ctx.seed);
        let (model, report) = Self::fit_generic(spec, train, ctx)?;
        let groups = match (partition, train.groups, &model, spec) {
            (Some(p), Some(keys), Model::Logistic(generic), ModelSpec::Logistic(hyper)) => {
                let started = std::time::Instant::now();
                let fitted = partition::fit(
                    train.x,
                    train.labels,
                    train.weights,
                    keys,
                    p,
                    hyper,
                    generic,
                    ctx_seed,
                    &progress,
                );
                let seconds = started.elapsed().as_secs_f64() - fitted.selection_seconds();
                tracing::info!(
                    phase = "fit",
                    seconds,
                    selection_seconds = fitted.selection_seconds(),
                    l2 = fitted.strength.l2,
                    groups = fitted.models.keys.len(),
                    "{} group models on {:?} keep their own model (strength {}, {:.2} s choosing)",
                    fitted.models.keys.len(),
                    p.by,
                    fitted.strength.l2,
                    fitted.selection_seconds()
                );
                Some((fitted, seconds))
            }
            (None, ..) => None,
            _ => {
                return Err(crate::Error::Internal(
                    "partition reached a fit other than binary logistic regression".into(),
                ));
            }
        };
        Ok(Fitted { model, report, groups })
    }

    fn fit_generic(spec: &ModelSpec, train: &TrainSet<'_>, ctx: FitContext) -> Result<(Model, FitReport)> {
        match spec {
            ModelSpec::Logistic(hyper) if train.classes > 2 => {
                let (m, fit) = logistic::fit_multinomial(
                    ctx.device,
                    train.x,
                    train.labels,
                    train.weights,
                    train.classes,
                    hyper,
                    &ctx.progress,
                )?;
                Ok((Model::Multinomial(m), FitReport::Logistic(fit)))
            }
            ModelSpec::Logistic(hyper) => {
                let (m, fit) =
                    logistic::fit_on(ctx.device, train.x, train.labels, train.weights, hyper, &ctx.progress)?;
                Ok((Model::Logistic(m), FitReport::Logistic(fit)))
            }
            ModelSpec::Mlp(hyper) => {
                let data = mlp::TrainData {
                    numeric: &train.x.numeric,
                    codes: &train.x.codes,
                    cardinalities: &train.x.slots,
                    labels: train.labels,
                    classes: train.classes,
                    weights: train.weights,
                };
                let opts = mlp::FitOptions {
                    seed: ctx.seed,
                    spec_sha256: ctx.spec_sha256,
                    checkpoint: ctx.checkpoint,
                    resume: ctx.resume,
                    progress: ctx.progress,
                    cancel: ctx.cancel,
                    device: device::candle(ctx.device)?,
                };
                let (m, fit) = mlp::fit(&data, hyper, opts)?;
                Ok((Model::Mlp(m), FitReport::Mlp(fit)))
            }
        }
    }

    /// `model.json`'s `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Model::Logistic(_) | Model::Multinomial(_) => "logistic",
            Model::Mlp(_) => "mlp",
        }
    }

    /// Probabilities for every row of `x`, each row scored on its own.
    pub fn score(&self, x: &Design) -> Result<Scores> {
        match self {
            Model::Logistic(m) => Ok(Scores::Binary(m.predict_proba(x))),
            Model::Multinomial(m) => Ok(Scores::Multiclass { classes: m.classes, p: m.predict_proba(x) }),
            Model::Mlp(m) => m.predict(&x.numeric, &x.codes),
        }
    }

    /// The error for non-finite scores on `side`'s rows after a fit that reported none: the
    /// MLP's optimizer can leave NaN weights after finite losses; for logistic models it is a bug.
    pub fn non_finite(&self, side: &str) -> crate::Error {
        match self {
            Model::Mlp(_) => crate::Error::data(format!(
                "model.mlp: the trained network gives non-finite scores on {side} rows; no run was \
                 written (the optimizer diverged: lower model.mlp.learning_rate or set \
                 model.mlp.grad_clip_norm)"
            )),
            _ => crate::Error::Internal(format!(
                "the fitted model gives non-finite scores on {side} rows; no run was written"
            )),
        }
    }

    /// Columns of the design the model's first layer sees (MLP: the numeric block; embeddings
    /// come on top).
    pub fn design_width(&self, x: &Design) -> usize {
        match self {
            Model::Logistic(_) | Model::Multinomial(_) => x.width(),
            Model::Mlp(_) => x.numeric.cols,
        }
    }

    /// The MLP's shape, recorded in `model.json`.
    pub fn architecture(&self) -> Option<Architecture> {
        match self {
            Model::Mlp(m) => Some(m.net.arch.clone()),
            _ => None,
        }
    }

    /// Tensor names in `model.safetensors`.
    pub fn tensor_names(&self) -> Vec<String> {
        match self {
            Model::Logistic(_) | Model::Multinomial(_) => {
                logistic::TENSORS.iter().map(|s| s.to_string()).collect()
            }
            Model::Mlp(m) => m.tensor_names(),
        }
    }

    /// The bytes of `model.safetensors`. Deterministic: the same weights give the same bytes.
    pub fn weights_bytes(&self) -> Result<Vec<u8>> {
        match self {
            Model::Logistic(m) => m.to_bytes(),
            Model::Multinomial(m) => m.to_bytes(),
            Model::Mlp(m) => m.weights_bytes(),
        }
    }

    /// The model of a `model.json` (its hyperparameters, architecture and pipeline) from the
    /// bytes of its `model.safetensors`; `what` names the file in errors.
    pub fn from_bytes(
        spec: &ModelSpec,
        architecture: Option<&Architecture>,
        pipeline: &Pipeline,
        classes: usize,
        bytes: &[u8],
        what: &str,
    ) -> Result<Model> {
        match (spec, architecture) {
            (ModelSpec::Mlp(_), Some(arch)) => Ok(Model::Mlp(MlpModel::from_bytes(arch, bytes, what)?)),
            (ModelSpec::Logistic(_), None) if classes > 2 => {
                Ok(Model::Multinomial(SoftmaxModel::from_bytes(bytes, classes, pipeline.width(), what)?))
            }
            (ModelSpec::Logistic(_), None) => {
                Ok(Model::Logistic(LogisticModel::from_bytes(bytes, pipeline.width(), what)?))
            }
            _ => Err(crate::Error::data(format!("{what}: the model card's kind and architecture disagree"))),
        }
    }

    /// The `n` largest coefficients on the standardized design, labelled with their design
    /// column (and class, for a multinomial model); none for the MLP, whose weights have no
    /// such reading.
    pub fn largest_coefficients(
        &self,
        pipeline: &Pipeline,
        classes: &[serde_json::Value],
        n: usize,
    ) -> Vec<(String, f64)> {
        let rows: Vec<&[f64]> = match self {
            Model::Logistic(m) => vec![&m.coef],
            Model::Multinomial(m) => m.coef.chunks_exact(pipeline.width().max(1)).collect(),
            Model::Mlp(_) => return Vec::new(),
        };
        logistic::largest(&rows, n)
            .into_iter()
            .map(|(c, j, v)| {
                let name = pipeline.names.get(j).cloned().unwrap_or_else(|| format!("column {j}"));
                match classes.get(c).filter(|_| rows.len() > 1) {
                    Some(class) => (format!("{name} (class {})", crate::label::class_name(class)), v),
                    None => (name, v),
                }
            })
            .collect()
    }

    /// The `model:` section of `inspect`; `classes` names the classes (in `labels` order).
    pub fn describe(
        &self,
        spec: &ModelSpec,
        fit: &FitReport,
        pipeline: &Pipeline,
        classes: &[serde_json::Value],
        s: &mut String,
    ) {
        match (self, spec, fit) {
            (Model::Logistic(m), ModelSpec::Logistic(h), FitReport::Logistic(f)) => {
                logistic::describe(h, f, &[&m.coef], &[], pipeline, s)
            }
            (Model::Multinomial(m), ModelSpec::Logistic(h), FitReport::Logistic(f)) => {
                let width = pipeline.width();
                let rows: Vec<&[f64]> = m.coef.chunks_exact(width).collect();
                logistic::describe(h, f, &rows, classes, pipeline, s)
            }
            (Model::Mlp(m), ModelSpec::Mlp(h), FitReport::Mlp(f)) => mlp::describe(m, h, f, s),
            // A run's files disagree only when they were edited: say so rather than guess.
            _ => {
                let _ =
                    writeln!(s, "\nmodel: {} (metrics.json's fit report is of another kind)", self.kind());
            }
        }
    }
}
