//! The network: its architecture (recorded in `model.json`), its parameters as candle `Var`s
//! named as a candle `VarMap` would name them, and the forward pass.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::spec::MlpSpec;

pub use super::fused::Mask;
use crate::random::{self, Stream};

/// Rows per forward pass when scoring. Fixed, so a row's score never depends on how many rows
/// are scored with it.
pub const SCORE_ROWS: usize = 4096;

/// The shape of the network, everything needed to rebuild it from its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// Width of the numeric block (standardized features and missing indicators).
    pub numeric: usize,
    /// Slots of each categorical column (levels plus "other"), in pipeline order.
    pub cardinalities: Vec<usize>,
    /// Embedding width of each categorical column.
    pub embedding_dims: Vec<usize>,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden layer while training.
    pub dropout: f64,
    /// Output units: 1 (a logit) for binary labels, K (one logit per class, softmax) for K
    /// classes. Absent in `model.json` when 1, as before multiclass existed.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub outputs: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Architecture {
    /// Checks a shape read from a `model.json`: one embedding width per categorical column, and
    /// every size and parameter count representable, so that the arithmetic below cannot
    /// overflow.
    pub fn check(&self) -> Result<(), String> {
        if self.embedding_dims.len() != self.cardinalities.len() {
            return Err(format!(
                "the architecture has {} embedding widths for {} categorical columns",
                self.embedding_dims.len(),
                self.cardinalities.len()
            ));
        }
        if self.outputs == 0 || self.outputs > crate::label::MAX_CLASSES {
            return Err(format!("the architecture has {} outputs", self.outputs));
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) || !(0.0..1.0).contains(&self.dropout) {
            return Err("the architecture needs non-empty hidden layers and a dropout in [0, 1)".into());
        }
        // Bytes of f32 weights must be addressable, so that no size below can overflow.
        if self.sizes().parameters.saturating_mul(4) > isize::MAX as u128 {
            return Err("the architecture's sizes overflow".into());
        }
        Ok(())
    }

    /// The shape `spec` gives a network over `numeric` standardized columns and categorical
    /// columns of `cardinalities` slots, for `classes` classes (2: binary, one logit).
    pub fn new(spec: &MlpSpec, numeric: usize, cardinalities: Vec<usize>, classes: usize) -> Architecture {
        Architecture {
            numeric,
            embedding_dims: cardinalities
                .iter()
                .map(|&k| spec.embedding_dim.unwrap_or_else(|| embedding_rule(k)))
                .collect(),
            cardinalities,
            hidden: spec.hidden.clone(),
            dropout: spec.dropout,
            outputs: if classes > 2 { classes } else { 1 },
        }
    }

    /// Counts of the network, in u128 and saturating, so that they can be computed (and
    /// reported) for any shape, even one no machine could hold.
    pub fn sizes(&self) -> Sizes {
        let mut embeddings: u128 = 0;
        let mut input = self.numeric as u128;
        for (&k, &d) in self.cardinalities.iter().zip(&self.embedding_dims) {
            embeddings = embeddings.saturating_add((k as u128).saturating_mul(d as u128));
            input = input.saturating_add(d as u128);
        }
        let (mut parameters, mut units, mut fan_in) = (embeddings, input, input);
        for &h in self.hidden.iter().chain([&self.outputs]) {
            let h = h as u128;
            parameters = parameters.saturating_add(h.saturating_mul(fan_in).saturating_add(h));
            units = units.saturating_add(h);
            fan_in = h;
        }
        Sizes { embeddings, input, parameters, units }
    }

    /// Width of the first layer's input: numeric block plus all embeddings.
    pub fn input_width(&self) -> usize {
        self.numeric + self.embedding_dims.iter().sum::<usize>()
    }

    /// Parameter names and shapes, in a fixed order (the order of the optimizer state too).
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        let mut p = Vec::new();
        for (j, (&k, &d)) in self.cardinalities.iter().zip(&self.embedding_dims).enumerate() {
            p.push((format!("embedding.{j}.weight"), vec![k, d]));
        }
        let mut fan_in = self.input_width();
        for (l, &h) in self.hidden.iter().enumerate() {
            p.push((format!("hidden.{l}.weight"), vec![h, fan_in]));
            p.push((format!("hidden.{l}.bias"), vec![h]));
            fan_in = h;
        }
        p.push(("output.weight".into(), vec![self.outputs, fan_in]));
        p.push(("output.bias".into(), vec![self.outputs]));
        p
    }

    /// Trainable parameter count.
    pub fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }
}

/// Counts of a network's shape (see [`Architecture::sizes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Values in all embedding tables.
    pub embeddings: u128,
    /// Width of the first layer's input.
    pub input: u128,
    /// Trainable parameters, embeddings included.
    pub parameters: u128,
    /// Units of every layer, input and output included (activations per row).
    pub units: u128,
}

/// The embedding width for a column with `k` slots when the spec leaves it to the rule.
pub fn embedding_rule(k: usize) -> usize {
    ((1.6 * (k as f64).powf(0.56)).ceil() as usize).clamp(1, 16)
}

/// A network with its parameters on one device.
#[derive(Debug, Clone)]
pub struct Net {
    /// Its shape.
    pub arch: Architecture,
    /// Parameters in [`Architecture::parameters`] order.
    pub vars: Vec<(String, Var)>,
}

impl Net {
    /// Fresh parameters drawn from `seed`: He-uniform hidden weights (bound √(6/fan_in), suited
    /// to ReLU), the output layer as PyTorch's default (bound 1/√fan_in), N(0, 1) embeddings,
    /// zero hidden biases, and the output bias at the log-odds of the base rate (binary, so
    /// training starts from the base rate instead of 0.5: fraud data is heavily imbalanced) or
    /// at the log of each class's share. `shares` is `[base rate]` or the K class shares.
    pub fn init(arch: &Architecture, seed: u64, shares: &[f64], device: &Device) -> candle_core::Result<Net> {
        let p = shares.first().copied().unwrap_or(0.5).clamp(1e-6, 1.0 - 1e-6);
        let vars = arch
            .parameters()
            .into_iter()
            .enumerate()
            .map(|(n, (name, shape))| {
                let count: usize = shape.iter().product();
                let b = random::base(seed, Stream::Init(n as u64));
                let values: Vec<f32> = if name.starts_with("embedding.") {
                    (0..count).map(|i| random::normal(b, i as u64) as f32).collect()
                } else if name == "output.bias" && count == 1 {
                    vec![(p / (1.0 - p)).ln() as f32]
                } else if name == "output.bias" {
                    (0..count)
                        .map(|c| shares.get(c).map_or(0.0, |s| s.clamp(1e-6, 1.0).ln()) as f32)
                        .collect()
                } else if name.ends_with(".bias") {
                    vec![0.0; count]
                } else {
                    let fan_in = shape[1] as f64;
                    let bound =
                        if name == "output.weight" { 1.0 / fan_in.sqrt() } else { (6.0 / fan_in).sqrt() };
                    (0..count).map(|i| ((2.0 * random::unit(b, i as u64) - 1.0) * bound) as f32).collect()
                };
                Ok((name, Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Net { arch: arch.clone(), vars })
    }

    /// A network from named tensors (a checkpoint or `model.safetensors`); every parameter must
    /// be there with its shape.
    pub fn from_tensors(arch: &Architecture, tensors: &HashMap<String, Tensor>) -> Result<Net, String> {
        let vars = arch
            .parameters()
            .into_iter()
            .map(|(name, shape)| {
                let t = tensors.get(&name).ok_or_else(|| format!("tensor {name} is missing"))?;
                if t.dims() != shape.as_slice() || t.dtype() != DType::F32 {
                    return Err(format!(
                        "tensor {name} is {:?} {:?}, expected F32 {shape:?}",
                        t.dtype(),
                        t.dims()
                    ));
                }
                Ok((name, Var::from_tensor(t).map_err(|e| e.to_string())?))
            })
            .collect::<Result<_, String>>()?;
        Ok(Net { arch: arch.clone(), vars })
    }

    /// The parameter tensors by name (shared storage, not copies).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect()
    }

    /// Logits for a batch (`[b]` with one output, `[b, outputs]` otherwise): `numeric` is
    /// `[b, numeric]` f32, `categorical[j]` is `[b]` u32 slot indices of column j. `masks`, while training, holds one dropout mask per hidden layer
    /// (0 or 1/(1-p) per unit).
    pub fn forward(
        &self,
        numeric: &Tensor,
        categorical: &[Tensor],
        masks: Option<&[Mask]>,
    ) -> candle_core::Result<Tensor> {
        let ncat = self.arch.cardinalities.len();
        let mut parts = Vec::with_capacity(1 + ncat);
        if self.arch.numeric > 0 {
            parts.push(numeric.clone());
        }
        for (j, ids) in categorical.iter().enumerate() {
            parts.push(self.vars[j].1.as_tensor().index_select(ids, 0)?);
        }
        let mut h = if parts.len() == 1 { parts.remove(0) } else { Tensor::cat(&parts, 1)? };
        for l in 0..self.arch.hidden.len() {
            let (w, b) = (&self.vars[ncat + 2 * l].1, &self.vars[ncat + 2 * l + 1].1);
            h = super::fused::bias_relu_dropout(
                &h.matmul(&w.as_tensor().t()?)?,
                b.as_tensor(),
                masks.map(|m| &m[l]),
            )?;
        }
        let n = self.vars.len();
        let (w, b) = (&self.vars[n - 2].1, &self.vars[n - 1].1);
        let z = h.matmul(&w.as_tensor().t()?)?.broadcast_add(b.as_tensor())?;
        if self.arch.outputs == 1 { z.squeeze(1) } else { Ok(z) }
    }

    /// Logits of every row (`rows × outputs`, row after row), scored in fixed blocks of
    /// [`SCORE_ROWS`] with dropout off.
    pub fn logits(&self, numeric: &[f32], codes: &[u32], rows: usize) -> candle_core::Result<Vec<f32>> {
        let device = self.vars[0].1.device().clone();
        let (d, c) = (self.arch.numeric, self.arch.cardinalities.len());
        let mut out = Vec::with_capacity(rows);
        for start in (0..rows).step_by(SCORE_ROWS) {
            let n = SCORE_ROWS.min(rows - start);
            let num = Tensor::from_slice(&numeric[start * d..(start + n) * d], (n, d), &device)?;
            let cat = (0..c)
                .map(|j| {
                    let ids: Vec<u32> = (start..start + n).map(|i| codes[i * c + j]).collect();
                    Tensor::from_vec(ids, n, &device)
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            out.extend(self.forward(&num, &cat, None)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

/// Dropout masks for one optimizer step: for each hidden layer, `[rows, width]` values that
/// are 0 with probability `p` and 1/(1-p) otherwise, drawn from (seed, step, layer).
pub fn dropout_masks(arch: &Architecture, seed: u64, step: u64, rows: usize) -> Option<Vec<Mask>> {
    use rayon::prelude::*;
    if arch.dropout <= 0.0 {
        return None;
    }
    // 16 bits of each draw decide one unit: four units per 64-bit draw, 1/65536 resolution.
    let threshold = (arch.dropout * 65536.0).round() as u64;
    let keep = (1.0 / (1.0 - arch.dropout)) as f32;
    arch.hidden
        .iter()
        .enumerate()
        .map(|(l, &width)| {
            let b = random::base(seed, Stream::Dropout { step, layer: l as u64 });
            let mut mask = vec![0f32; rows * width];
            mask.par_chunks_mut(1 << 14).enumerate().for_each(|(c, chunk)| {
                let first = (c << 14) as u64 / 4;
                for (k, quad) in chunk.chunks_mut(4).enumerate() {
                    let r = random::bits(b, first + k as u64);
                    for (q, m) in quad.iter_mut().enumerate() {
                        *m = if (r >> (16 * q)) & 0xffff >= threshold { keep } else { 0.0 };
                    }
                }
            });
            Arc::new(mask)
        })
        .collect::<Vec<_>>()
        .into()
}

/// Weighted mean cross-entropy of logits `z: [b, K]` against class indices `y: [b]` (u32):
/// −Σ wᵢ·log softmax(zᵢ)_{yᵢ} / Σ wᵢ, through a stable log-softmax.
pub fn weighted_cross_entropy(
    z: &Tensor,
    y: &Tensor,
    w: &Tensor,
    weight_sum: f64,
) -> candle_core::Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(z, candle_core::D::Minus1)?;
    let picked = log_p.gather(&y.unsqueeze(1)?, 1)?.squeeze(1)?;
    (picked * w)?.sum_all()?.affine(-1.0 / weight_sum, 0.0)
}

/// Weighted mean of the numerically stable log loss of logits `z` against 0/1 labels `y`:
/// Σ wᵢ·(max(zᵢ, 0) − yᵢzᵢ + log(1 + e^{−|zᵢ|})) / Σ wᵢ.
pub fn weighted_log_loss(z: &Tensor, y: &Tensor, w: &Tensor, weight_sum: f64) -> candle_core::Result<Tensor> {
    let softplus_tail = z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    let loss = ((z.relu()? - (z * y)?)? + softplus_tail)?;
    (loss * w)?.sum_all()?.affine(1.0 / weight_sum, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch() -> Architecture {
        Architecture {
            numeric: 3,
            cardinalities: vec![4],
            embedding_dims: vec![2],
            hidden: vec![8, 4],
            dropout: 0.25,
            outputs: 1,
        }
    }

    #[test]
    fn parameters_are_named_and_shaped_like_linear_layers() {
        let a = arch();
        let names: Vec<String> = a.parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "embedding.0.weight",
                "hidden.0.weight",
                "hidden.0.bias",
                "hidden.1.weight",
                "hidden.1.bias",
                "output.weight",
                "output.bias"
            ]
        );
        assert_eq!(a.parameters()[1].1, [8, 5]);
        assert_eq!(a.parameter_count(), 8 + 8 * 5 + 8 + 4 * 8 + 4 + 4 + 1);
        assert_eq!(embedding_rule(2), 3);
        assert_eq!(embedding_rule(10_000), 16);
    }

    #[test]
    fn scores_do_not_depend_on_block_composition() {
        let a = arch();
        let net = Net::init(&a, 3, &[0.2], &Device::Cpu).unwrap();
        let rows = SCORE_ROWS + 37;
        let numeric: Vec<f32> = (0..rows * 3).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
        let codes: Vec<u32> = (0..rows).map(|i| (i % 4) as u32).collect();
        let all = net.logits(&numeric, &codes, rows).unwrap();
        // The tail rows scored alone equal the same rows scored in the full block set.
        let tail = net.logits(&numeric[SCORE_ROWS * 3..], &codes[SCORE_ROWS..], 37).unwrap();
        assert_eq!(&all[SCORE_ROWS..], tail.as_slice());
        let one = net.logits(&numeric[5 * 3..6 * 3], &codes[5..6], 1).unwrap();
        assert_eq!(all[5].to_bits(), one[0].to_bits());
    }

    #[test]
    fn dropout_masks_drop_about_p_and_rescale_the_rest() {
        let a = arch();
        let masks = dropout_masks(&a, 1, 0, 5000).unwrap();
        let m = &masks[0];
        let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / m.len() as f64;
        assert!((dropped - 0.25).abs() < 0.01, "{dropped}");
        assert!(m.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        assert_eq!(m.len(), 5000 * 8);
        assert_eq!(masks, dropout_masks(&a, 1, 0, 5000).unwrap());
    }

    #[test]
    fn log_loss_is_stable_for_extreme_logits() {
        let z = Tensor::new(&[-800f32, 0.0, 800.0, 3.0], &Device::Cpu).unwrap();
        let y = Tensor::new(&[0f32, 1.0, 1.0, 0.0], &Device::Cpu).unwrap();
        let w = Tensor::new(&[1f32, 1.0, 1.0, 2.0], &Device::Cpu).unwrap();
        let l: f32 = weighted_log_loss(&z, &y, &w, 5.0).unwrap().to_scalar().unwrap();
        let expected = (0.0 + 2f64.ln() + 0.0 + 2.0 * (3.0 + (-3f64).exp().ln_1p())) / 5.0;
        assert!((f64::from(l) - expected).abs() < 1e-6, "{l} vs {expected}");
    }
}
