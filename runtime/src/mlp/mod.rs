//! The MLP: numeric features plus categorical embeddings through Linear+ReLU+dropout layers to
//! one logit, trained with AdamW on candle tensors, with early stopping and checkpoints that
//! survive preemption.
//!
//! Everything random (initial weights, validation rows, shuffles, dropout) is a pure function of
//! the seed and a counter, so the same spec and data give the same weights, and a run stopped
//! by SIGTERM and resumed ends with the weights an uninterrupted run would have.

mod adamw;
pub mod checkpoint;
mod fit;
mod fused;
mod net;
mod tensors;

use std::collections::HashMap;

use candle_core::Device;
use serde::{Deserialize, Serialize};

pub use fit::{FitOptions, TrainData, default_batch_size, fit};
pub use net::{Architecture, Net, embedding_rule};

use crate::error::{Error, Result};
use crate::features::Matrix;
use crate::metrics::Scores;

/// A fitted MLP.
#[derive(Debug, Clone)]
pub struct MlpModel {
    /// The network.
    pub net: Net,
}

impl MlpModel {
    /// Probabilities for rows given as the pipeline's embedded encoding (numeric block and
    /// categorical slot indices): the sigmoid of the logit, or with K outputs the softmax of
    /// the K logits (in f64). Each row's score depends on that row alone.
    pub fn predict(&self, numeric: &Matrix, codes: &[u32]) -> Result<Scores> {
        let logits = self.net.logits(&numeric.data, codes, numeric.rows).map_err(candle_error)?;
        let k = self.net.arch.outputs;
        if k == 1 {
            return Ok(Scores::Binary(
                logits.into_iter().map(|z| trainyard_kernels::logistic::sigmoid(f64::from(z))).collect(),
            ));
        }
        let mut p: Vec<f64> = logits.into_iter().map(f64::from).collect();
        for row in p.chunks_exact_mut(k) {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            row.iter_mut().for_each(|v| *v /= sum);
        }
        Ok(Scores::Multiclass { classes: k, p })
    }

    /// Tensor names, in `model.safetensors`.
    pub fn tensor_names(&self) -> Vec<String> {
        self.net.vars.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The bytes of `model.safetensors`: f32 tensors named as [`Architecture::parameters`].
    pub fn weights_bytes(&self) -> Result<Vec<u8>> {
        tensors::encode(&self.net.tensors(), None)
            .map_err(|e| Error::Internal(format!("serializing weights: {e}")))
    }

    /// A model from `model.safetensors` bytes; `what` names the file in errors.
    pub fn from_bytes(arch: &Architecture, bytes: &[u8], what: &str) -> Result<MlpModel> {
        let (tensors, _): (HashMap<_, _>, _) =
            tensors::decode(bytes, &Device::Cpu).map_err(|e| Error::data(format!("{what}: {e}")))?;
        let net = Net::from_tensors(arch, &tensors).map_err(|e| Error::data(format!("{what}: {e}")))?;
        Ok(MlpModel { net })
    }
}

/// One finished epoch, in `metrics.json`'s history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: u32,
    /// Weighted mean log loss over the epoch's batches (with dropout on).
    pub train_loss: f64,
    /// Weighted log loss (cross-entropy) on the validation rows, when early stopping is on.
    pub validation_loss: Option<f64>,
    /// ROC AUC on the validation rows (one-vs-rest macro for multiclass), when early stopping is
    /// on.
    pub validation_auc: Option<f64>,
    /// Learning rate of the epoch's last step.
    pub learning_rate: f64,
    /// Optimizer steps taken by the end of the epoch.
    pub steps: u64,
}

/// How an MLP fit went; recorded in `metrics.json` as `fit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpReport {
    /// Epochs trained.
    pub epochs: u32,
    /// The epoch whose weights were kept (the best validation loss), or the last one.
    pub best_epoch: u32,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Rows per step.
    pub batch_size: usize,
    /// Rows trained on (train split minus validation rows).
    pub train_rows: usize,
    /// Rows held out for early stopping.
    pub validation_rows: usize,
    /// Trainable parameters.
    pub parameters: usize,
    /// Final objective: the kept epoch's validation loss, or the last epoch's train loss.
    pub final_objective: f64,
    /// True when early stopping ended training (validation loss stopped improving) before
    /// `epochs`.
    pub converged: bool,
    /// Epoch (0-based) and step this run resumed from, when it resumed from a checkpoint.
    pub resumed_from: Option<(u32, u64)>,
    /// Training rows processed per second of fit time.
    pub samples_per_second: f64,
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
}

/// candle errors are not the user's input: exit 1.
pub(crate) fn candle_error(e: candle_core::Error) -> Error {
    Error::Internal(format!("tensor operation failed: {e}"))
}

/// The `model:` lines of `inspect` for an MLP: its shape, the fit, and the per-epoch history
/// with the kept epoch marked.
pub fn describe(m: &MlpModel, h: &crate::spec::MlpSpec, f: &MlpReport, s: &mut String) {
    use std::fmt::Write as _;
    let a = &m.net.arch;
    let _ = writeln!(
        s,
        "\nmodel: mlp {} -> {:?} -> {} ({} numeric + embeddings {:?}), {} parameters, dropout {}",
        a.input_width(),
        a.hidden,
        a.outputs,
        a.numeric,
        a.embedding_dims,
        a.parameter_count(),
        a.dropout
    );
    let _ = writeln!(
        s,
        "  fit: {} epochs ({} steps of {} rows), kept epoch {}, early stopped {}, lr {} {}, \
         weight decay {}{}",
        f.epochs,
        f.steps,
        f.batch_size,
        f.best_epoch,
        f.converged,
        h.learning_rate,
        format!("{:?}", h.schedule).to_lowercase(),
        h.weight_decay,
        f.resumed_from.map(|(e, st)| format!(", resumed at epoch {} step {st}", e + 1)).unwrap_or_default()
    );
    let _ = writeln!(s, "  epoch  train loss  val loss  val AUC");
    for e in &f.history {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.5}"));
        let _ = writeln!(
            s,
            "  {:>5}  {:>10.5}  {:>8}  {:>7}{}",
            e.epoch,
            e.train_loss,
            opt(e.validation_loss),
            opt(e.validation_auc),
            if e.epoch == f.best_epoch { "  *" } else { "" }
        );
    }
}
