//! The MLP training loop: validation carve-out, seeded shuffles, AdamW steps, early stopping,
//! checkpoints after every epoch (and every N steps), and a clean stop on SIGTERM.

use std::time::Instant;

use candle_core::{Device, Tensor};

use super::adamw::{self, AdamW};
use super::checkpoint::{self, Checkpoint, LoopState};
use super::net::{self, Architecture, Net};
use super::{EpochRecord, MlpModel, MlpReport, candle_error};
use crate::error::{Error, Result};
use crate::features::Matrix;
use crate::metrics::{self, Scores};
use crate::progress::Update;
use crate::random::{self, Stream};
use crate::spec::MlpSpec;

/// Train rows in the pipeline's embedded encoding.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// Numeric block, row-major.
    pub numeric: &'a Matrix,
    /// Categorical slot indices, row-major `rows × cardinalities.len()`.
    pub codes: &'a [u32],
    /// Slots per categorical column.
    pub cardinalities: &'a [usize],
    /// 0/1 labels, or class indices when `classes` > 2.
    pub labels: &'a [f32],
    /// Classes: 2 for binary labels.
    pub classes: usize,
    /// Sample weights.
    pub weights: Option<&'a [f32]>,
}

/// Everything the loop needs beyond the data and hyperparameters.
#[derive(Debug)]
pub struct FitOptions {
    /// The job's seed.
    pub seed: u64,
    /// SHA-256 of the resolved spec, recorded in checkpoints.
    pub spec_sha256: String,
    /// Where checkpoints go.
    pub checkpoint: checkpoint::Place,
    /// A checkpoint to resume from (already checked to be this spec's).
    pub resume: Option<Checkpoint>,
    /// Where each step's progress goes.
    pub progress: crate::progress::Reporter,
    /// Set when the process is asked to stop: the loop saves a checkpoint and returns
    /// [`Error::Preempted`].
    pub cancel: crate::signal::Cancellation,
    /// The device the tensors live on.
    pub device: Device,
}

/// The default batch size: 1024, or fewer on small data so an epoch has at least 32 steps,
/// never fewer than 32 rows.
pub fn default_batch_size(train_rows: usize) -> usize {
    (train_rows / 32).clamp(32, 1024)
}

/// A split of the train rows held in device tensors for batching, and on the host for scoring.
struct Part {
    rows: usize,
    numeric_host: Vec<f32>,
    codes_host: Vec<u32>,
    labels: Vec<f32>,
    weights: Vec<f32>,
}

impl Part {
    fn gather(data: &TrainData<'_>, weights: &[f32], idx: &[usize]) -> Part {
        let (d, c) = (data.numeric.cols, data.cardinalities.len());
        let mut numeric_host = Vec::with_capacity(idx.len() * d);
        let mut codes_host = Vec::with_capacity(idx.len() * c);
        for &i in idx {
            numeric_host.extend_from_slice(data.numeric.row(i));
            codes_host.extend_from_slice(&data.codes[i * c..(i + 1) * c]);
        }
        Part {
            rows: idx.len(),
            numeric_host,
            codes_host,
            labels: idx.iter().map(|&i| data.labels[i]).collect(),
            weights: idx.iter().map(|&i| weights[i]).collect(),
        }
    }
}

/// Fits the MLP described by `spec` on `data`.
pub fn fit(data: &TrainData<'_>, spec: &MlpSpec, opts: FitOptions) -> Result<(MlpModel, MlpReport)> {
    let started = Instant::now();
    let rows = data.labels.len();
    let arch = Architecture::new(spec, data.numeric.cols, data.cardinalities.to_vec(), data.classes);
    let balanced = spec.class_weight == Some(crate::spec::ClassWeight::Balanced);
    let mut weights = crate::logistic::effective_weights(data.labels, data.weights, balanced, data.classes)
        .unwrap_or_else(|| vec![1.0; rows]);
    // The loss is a weighted mean, so scaling every weight changes nothing but the range of the
    // float32 products: weights of 1e30 would overflow a batch's sum. Far from 1, bring the
    // mean weight to 1.
    let mean_weight = weights.iter().map(|&w| f64::from(w)).sum::<f64>() / rows.max(1) as f64;
    if mean_weight > 0.0 && !(1e-6..=1e6).contains(&mean_weight) {
        weights.iter_mut().for_each(|w| *w = (f64::from(*w) / mean_weight) as f32);
    }

    // Validation rows: a seeded share of the train rows, decided per row position.
    let (mut train_idx, mut val_idx) = (Vec::with_capacity(rows), Vec::new());
    let vbase = random::base(opts.seed, Stream::Validation);
    for i in 0..rows {
        match &spec.early_stopping {
            Some(e) if random::unit(vbase, i as u64) < e.validation_fraction => val_idx.push(i),
            _ => train_idx.push(i),
        }
    }
    if spec.early_stopping.is_some() && (val_idx.is_empty() || train_idx.is_empty()) {
        return Err(Error::data(format!(
            "model.mlp.early_stopping: {rows} train rows leave {} for training and {} for validation; \
             both need rows (use more data or set early_stopping to null)",
            train_idx.len(),
            val_idx.len()
        )));
    }
    if train_idx.is_empty() {
        return Err(Error::data("the train split has no rows"));
    }
    let mut train = Part::gather(data, &weights, &train_idx);
    let mut val = Part::gather(data, &weights, &val_idx);
    drop((train_idx, val_idx));

    let dev = &opts.device;
    let (d, c) = (arch.numeric, arch.cardinalities.len());
    // The tensor takes the host rows over: the train matrix is not held twice.
    let x = Tensor::from_vec(std::mem::take(&mut train.numeric_host), (train.rows, d), dev)
        .map_err(candle_error)?;
    let cats: Vec<Tensor> = (0..c)
        .map(|j| {
            let col: Vec<u32> = (0..train.rows).map(|i| train.codes_host[i * c + j]).collect();
            Tensor::from_vec(col, train.rows, dev)
        })
        .collect::<candle_core::Result<_>>()
        .map_err(candle_error)?;
    // Binary losses take the 0/1 labels as f32; the cross-entropy gathers by class index.
    let y = if arch.outputs == 1 {
        Tensor::from_slice(&train.labels, train.rows, dev)
    } else {
        Tensor::from_vec(train.labels.iter().map(|&v| v as u32).collect::<Vec<u32>>(), train.rows, dev)
    }
    .map_err(candle_error)?;
    let w = Tensor::from_slice(&train.weights, train.rows, dev).map_err(candle_error)?;

    let batch_size = spec.batch_size.unwrap_or_else(|| default_batch_size(train.rows)).min(train.rows);
    let steps_per_epoch = train.rows.div_ceil(batch_size);
    let total_steps = u64::from(spec.epochs) * steps_per_epoch as u64;
    let warmup = (spec.warmup_epochs * steps_per_epoch as f64).round() as u64;
    let weight_total: f64 = train.weights.iter().map(|&v| f64::from(v)).sum();
    // The base rate (binary) or each class's share of the weight: where the output bias starts.
    let mut shares = vec![0f64; arch.outputs];
    for (&l, &v) in train.labels.iter().zip(&train.weights) {
        if arch.outputs == 1 {
            shares[0] += f64::from(l * v);
        } else {
            shares[l as usize] += f64::from(v);
        }
    }
    shares.iter_mut().for_each(|s| *s /= weight_total.max(f64::MIN_POSITIVE));

    let mut network = Net::init(&arch, opts.seed, &shares, dev).map_err(candle_error)?;
    let mut optimizer = AdamW::new(&network.vars, spec.weight_decay).map_err(candle_error)?;
    let mut best: Vec<(String, Tensor)> = Vec::new();
    let mut state = LoopState {
        spec_sha256: opts.spec_sha256.clone(),
        train_rows: train.rows,
        validation_rows: val.rows,
        epoch: 0,
        batch: 0,
        step: 0,
        epoch_loss: 0.0,
        epoch_weight: 0.0,
        best: None,
        bad_epochs: 0,
        history: Vec::new(),
    };
    let mut resumed_from = None;
    if let Some(ckpt) = opts.resume {
        let mismatch = |what: String| {
            Error::data(format!(
                "checkpoint {} was written for {what}; the data changed since. Remove the folder to start over",
                opts.checkpoint
            ))
        };
        if (ckpt.state.train_rows, ckpt.state.validation_rows) != (train.rows, val.rows) {
            return Err(mismatch(format!(
                "{} train and {} validation rows, now {} and {}",
                ckpt.state.train_rows, ckpt.state.validation_rows, train.rows, val.rows
            )));
        }
        network =
            Net::from_tensors(&arch, &ckpt.params).map_err(|e| mismatch(format!("another network: {e}")))?;
        // A checkpoint's tensors are the user's file: a shape that does not fit the network is
        // a wrong input (exit 2), not a failed tensor operation later (exit 1).
        let check_shape = |n: &str, t: &Tensor, var: &candle_core::Var| {
            if t.dims() == var.dims() {
                Ok(())
            } else {
                Err(mismatch(format!("a network whose {n} is {:?}, not {:?}", t.dims(), var.dims())))
            }
        };
        let moments = |set: &std::collections::HashMap<String, Tensor>| -> Result<Vec<candle_core::Var>> {
            network
                .vars
                .iter()
                .map(|(n, var)| {
                    let t = set.get(n).ok_or_else(|| mismatch(format!("a network without {n}")))?;
                    check_shape(n, t, var)?;
                    candle_core::Var::from_tensor(t).map_err(candle_error)
                })
                .collect()
        };
        optimizer.m = moments(&ckpt.m)?;
        optimizer.v = moments(&ckpt.v)?;
        optimizer.step = ckpt.state.step;
        best = Vec::new();
        for (n, var) in &network.vars {
            if let Some(t) = ckpt.best.get(n) {
                check_shape(n, t, var)?;
                best.push((n.clone(), t.clone()));
            }
        }
        resumed_from = Some((ckpt.state.epoch, ckpt.state.step));
        tracing::info!(
            epoch = ckpt.state.epoch + 1,
            step = ckpt.state.step,
            checkpoint = %opts.checkpoint,
            "resuming from the checkpoint at epoch {} step {}",
            ckpt.state.epoch + 1,
            ckpt.state.step
        );
        state = ckpt.state;
    }
    let _checkpointing = opts.cancel.checkpointing();

    let save = |state: &LoopState, network: &Net, optimizer: &AdamW, best: &[(String, Tensor)]| {
        let named = |vars: &[candle_core::Var]| -> Vec<(String, Tensor)> {
            network.vars.iter().zip(vars).map(|((n, _), v)| (n.clone(), v.as_tensor().clone())).collect()
        };
        opts.checkpoint.save(state, &network.tensors(), &named(&optimizer.m), &named(&optimizer.v), best)
    };
    let patience = spec.early_stopping.as_ref().map(|e| e.patience);
    let val_matrix = Matrix { data: std::mem::take(&mut val.numeric_host), rows: val.rows, cols: d };
    let mut lr = 0.0;
    let mut rows_this_run = 0usize;
    while state.epoch < spec.epochs && patience.is_none_or(|p| state.bad_epochs < p) {
        let epoch = state.epoch;
        let perm =
            random::permutation(train.rows, random::base(opts.seed, Stream::Shuffle(u64::from(epoch))));
        let perm_t = Tensor::from_slice(&perm, train.rows, dev).map_err(candle_error)?;
        let label = format!("epoch {}/{}", epoch + 1, spec.epochs);
        while state.batch < steps_per_epoch {
            let start = state.batch * batch_size;
            let len = batch_size.min(train.rows - start);
            let batch_weight: f64 =
                perm[start..start + len].iter().map(|&i| f64::from(train.weights[i as usize])).sum();
            lr = adamw::learning_rate(spec.learning_rate, spec.schedule, state.step, warmup, total_steps);
            let loss = step(
                &network,
                &mut optimizer,
                &perm_t.narrow(0, start, len).map_err(candle_error)?,
                (&x, &cats, &y, &w),
                batch_weight,
                net::dropout_masks(&arch, opts.seed, state.step, len),
                spec.grad_clip_norm,
                lr,
            )
            .map_err(candle_error)?;
            if !loss.is_finite() {
                return Err(Error::data(format!(
                    "model.mlp: the training loss became {loss} at epoch {} step {}; no run was \
                     written (the inputs are finite and in range, so the optimizer diverged: lower \
                     model.mlp.learning_rate or set model.mlp.grad_clip_norm)",
                    epoch + 1,
                    state.step + 1
                )));
            }
            state.step += 1;
            state.batch += 1;
            rows_this_run += len;
            state.epoch_loss += loss * batch_weight;
            state.epoch_weight += batch_weight;
            opts.progress.report(&Update {
                phase: "fit",
                label: label.clone(),
                done: state.batch,
                total: steps_per_epoch,
                loss: Some(state.epoch_loss / state.epoch_weight),
            });
            let at_epoch_end = state.batch == steps_per_epoch;
            if !at_epoch_end && spec.checkpoint_every_steps.is_some_and(|n| state.step.is_multiple_of(n)) {
                save(&state, &network, &optimizer, &best)?;
            }
            if !at_epoch_end && opts.cancel.is_requested() {
                save(&state, &network, &optimizer, &best)?;
                return Err(preempted(&state, &opts.checkpoint));
            }
        }

        let train_loss = state.epoch_loss / state.epoch_weight.max(f64::MIN_POSITIVE);
        let (validation_loss, validation_auc) = if patience.is_some() {
            let scores = MlpModel { net: network.clone() }.predict(&val_matrix, &val.codes_host)?;
            let (loss, auc) = validation_loss_auc(&val.labels, &scores, &val.weights);
            let improved = state.best.is_none_or(|(_, b)| loss < b);
            if improved {
                state.best = Some((epoch + 1, loss));
                state.bad_epochs = 0;
                best = network
                    .tensors()
                    .into_iter()
                    .map(|(n, t)| t.copy().map(|t| (n, t)))
                    .collect::<candle_core::Result<_>>()
                    .map_err(candle_error)?;
            } else {
                state.bad_epochs += 1;
            }
            (Some(loss), Some(auc))
        } else {
            (None, None)
        };
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss,
            validation_loss,
            validation_auc,
            learning_rate: lr,
            steps: state.step,
        };
        tracing::info!(
            phase = "fit",
            epoch = epoch + 1,
            epochs = spec.epochs,
            train_loss,
            validation_loss,
            validation_auc,
            learning_rate = lr,
            "epoch {}/{}: train loss {train_loss:.5}{}",
            epoch + 1,
            spec.epochs,
            match (validation_loss, validation_auc) {
                (Some(l), Some(a)) => format!(", validation loss {l:.5}, validation AUC {a:.4}"),
                _ => String::new(),
            }
        );
        state.history.push(record);
        state.epoch += 1;
        state.batch = 0;
        state.epoch_loss = 0.0;
        state.epoch_weight = 0.0;
        save(&state, &network, &optimizer, &best)?;
        let finished = state.epoch >= spec.epochs || patience.is_some_and(|p| state.bad_epochs >= p);
        if opts.cancel.is_requested() && !finished {
            return Err(preempted(&state, &opts.checkpoint));
        }
    }

    let best_epoch = match state.best {
        Some((e, _)) if !best.is_empty() => {
            for ((_, var), (_, t)) in network.vars.iter().zip(&best) {
                var.set(t).map_err(candle_error)?;
            }
            e
        }
        _ => state.epoch,
    };
    let seconds = started.elapsed().as_secs_f64();
    let report = MlpReport {
        epochs: state.epoch,
        best_epoch,
        steps: state.step,
        batch_size,
        train_rows: train.rows,
        validation_rows: val.rows,
        parameters: arch.parameter_count(),
        final_objective: state
            .best
            .map(|(_, l)| l)
            .or_else(|| state.history.last().map(|h| h.train_loss))
            .unwrap_or(f64::NAN),
        converged: patience.is_some_and(|p| state.bad_epochs >= p),
        resumed_from,
        samples_per_second: rows_this_run as f64 / seconds.max(1e-9),
        history: state.history,
    };
    Ok((MlpModel { net: network }, report))
}

/// One optimizer step on the batch of rows `idx`; returns the batch's weighted mean loss.
#[allow(clippy::too_many_arguments)]
fn step(
    network: &Net,
    optimizer: &mut AdamW,
    idx: &Tensor,
    (x, cats, y, w): (&Tensor, &[Tensor], &Tensor, &Tensor),
    batch_weight: f64,
    masks: Option<Vec<net::Mask>>,
    clip: Option<f64>,
    lr: f64,
) -> candle_core::Result<f64> {
    let xb = x.index_select(idx, 0)?;
    let cb = cats.iter().map(|c| c.index_select(idx, 0)).collect::<candle_core::Result<Vec<_>>>()?;
    let (yb, wb) = (y.index_select(idx, 0)?, w.index_select(idx, 0)?);
    let z = network.forward(&xb, &cb, masks.as_deref())?;
    let loss = if network.arch.outputs == 1 {
        net::weighted_log_loss(&z, &yb, &wb, batch_weight.max(f64::MIN_POSITIVE))?
    } else {
        net::weighted_cross_entropy(&z, &yb, &wb, batch_weight.max(f64::MIN_POSITIVE))?
    };
    let store = loss.backward()?;
    let mut grads = network
        .vars
        .iter()
        .map(|(_, v)| match store.get(v.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => v.as_tensor().zeros_like(),
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    adamw::clip(&mut grads, clip)?;
    optimizer.step(&network.vars, &grads, lr)?;
    Ok(f64::from(loss.to_scalar::<f32>()?))
}

/// The validation rows' weighted log loss (cross-entropy) and ROC AUC (one-vs-rest macro for
/// multiclass): what early stopping watches and the history records.
fn validation_loss_auc(y: &[f32], scores: &Scores, w: &[f32]) -> (f64, f64) {
    match scores {
        Scores::Binary(p) => (weighted_log_loss(y, p, w), metrics::roc_auc(y, p)),
        Scores::Multiclass { classes, p } => {
            let (mut sum, mut total) = (0.0, 0.0);
            for (i, (&yi, &wi)) in y.iter().zip(w).enumerate() {
                sum -= f64::from(wi) * p[i * classes + yi as usize].max(1e-15).ln();
                total += f64::from(wi);
            }
            let auc = metrics::MulticlassMetrics::compute(y, p, *classes, &[]).roc_auc_ovr_macro;
            (sum / total.max(f64::MIN_POSITIVE), auc)
        }
    }
}

fn weighted_log_loss(y: &[f32], p: &[f64], w: &[f32]) -> f64 {
    let (mut sum, mut total) = (0.0, 0.0);
    for ((&yi, &pi), &wi) in y.iter().zip(p).zip(w) {
        let pi = pi.clamp(1e-15, 1.0 - 1e-15);
        let l = if yi == 1.0 { -pi.ln() } else { -(1.0 - pi).ln() };
        sum += f64::from(wi) * l;
        total += f64::from(wi);
    }
    sum / total.max(f64::MIN_POSITIVE)
}

fn preempted(state: &LoopState, place: &checkpoint::Place) -> Error {
    Error::Preempted(format!(
        "stopped by SIGTERM at epoch {} step {}; checkpoint saved to {place}; run the same command to resume",
        state.epoch + 1,
        state.step,
    ))
}
