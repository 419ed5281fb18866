//! Fused element-wise steps of an MLP hidden layer, over row-major `[rows, width]` f32 slices:
//! bias add, ReLU and dropout scaling in one pass forward, and the matching gradient in one
//! pass backward. Done one operation at a time, each would read and write the whole
//! activation matrix again.
//!
//! Element-wise: each output depends on its own inputs only, so splitting rows across threads
//! cannot change any result.

use rayon::prelude::*;

/// Rows per parallel work unit; enough work per task to amortize scheduling.
const BLOCK_ROWS: usize = 64;

/// `out[i, j] = max(z[i, j] + bias[j], 0) · mask[i, j]` (mask 1 when absent).
pub fn bias_relu_dropout(z: &[f32], bias: &[f32], mask: Option<&[f32]>, out: &mut [f32]) {
    let width = bias.len();
    assert!(width > 0 && z.len() == out.len() && z.len().is_multiple_of(width));
    if let Some(m) = mask {
        assert_eq!(m.len(), z.len());
    }
    let block = BLOCK_ROWS * width;
    out.par_chunks_mut(block).enumerate().for_each(|(b, out)| {
        let start = b * block;
        let z = &z[start..start + out.len()];
        for (r, (o, zr)) in out.chunks_exact_mut(width).zip(z.chunks_exact(width)).enumerate() {
            for ((o, &v), &bj) in o.iter_mut().zip(zr).zip(bias) {
                *o = (v + bj).max(0.0);
            }
            if let Some(m) = mask {
                let m = &m[start + r * width..start + (r + 1) * width];
                for (o, &mj) in o.iter_mut().zip(m) {
                    *o *= mj;
                }
            }
        }
    });
}

/// The gradient of [`bias_relu_dropout`] with respect to `z`, from its output `res` and the
/// gradient `grad` of the output: `grad · mask` where the output is positive, else 0. (Where the
/// output is 0, either the ReLU was off or the unit was dropped; both pass no gradient.)
pub fn bias_relu_dropout_grad(res: &[f32], grad: &[f32], mask: Option<&[f32]>, out: &mut [f32]) {
    assert!(res.len() == grad.len() && res.len() == out.len());
    let block = 1 << 14;
    out.par_chunks_mut(block).enumerate().for_each(|(b, out)| {
        let start = b * block;
        let (res, grad) = (&res[start..start + out.len()], &grad[start..start + out.len()]);
        match mask {
            Some(m) => {
                let m = &m[start..start + out.len()];
                for (((o, &r), &g), &mj) in out.iter_mut().zip(res).zip(grad).zip(m) {
                    *o = if r > 0.0 { g * mj } else { 0.0 };
                }
            }
            None => {
                for ((o, &r), &g) in out.iter_mut().zip(res).zip(grad) {
                    *o = if r > 0.0 { g } else { 0.0 };
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_gradient_match_the_unfused_definition() {
        let (rows, width) = (130, 3);
        let z: Vec<f32> = (0..rows * width).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        let bias = [0.5f32, -1.0, 0.0];
        let mask: Vec<f32> = (0..rows * width).map(|i| if i % 4 == 0 { 0.0 } else { 1.25 }).collect();
        let mut out = vec![0.0; z.len()];
        bias_relu_dropout(&z, &bias, Some(&mask), &mut out);
        for i in 0..z.len() {
            assert_eq!(out[i], (z[i] + bias[i % width]).max(0.0) * mask[i]);
        }
        let grad: Vec<f32> = (0..z.len()).map(|i| i as f32 * 0.01).collect();
        let mut gz = vec![0.0; z.len()];
        bias_relu_dropout_grad(&out, &grad, Some(&mask), &mut gz);
        for i in 0..z.len() {
            let expected = if z[i] + bias[i % width] > 0.0 { grad[i] * mask[i] } else { 0.0 };
            assert_eq!(gz[i], expected);
        }
        bias_relu_dropout(&z, &bias, None, &mut out);
        assert_eq!(out[1], (z[1] - 1.0).max(0.0));
    }
}

/// AdamW's constants for one step.
#[derive(Debug, Clone, Copy)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Bias corrections 1/(1 − β₁ᵗ) and 1/(1 − β₂ᵗ).
    pub scale_m: f64,
    /// See `scale_m`.
    pub scale_v: f64,
}

/// One AdamW update of `theta` in place, with its moments `m` and `v`, in one pass (the same
/// f32 arithmetic as candle-nn's `AdamW::step`, which takes fifteen passes):
/// m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; θ ← θ(1 − lr·wd) − lr·(m·sₘ)/(√(v·sᵥ) + ε).
pub fn adamw_step(theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], c: &AdamW) {
    assert!(theta.len() == grad.len() && m.len() == grad.len() && v.len() == grad.len());
    let (b1, b1c, b2, b2c) = (c.beta1 as f32, (1.0 - c.beta1) as f32, c.beta2 as f32, (1.0 - c.beta2) as f32);
    let (sm, sv, eps, lr) = (c.scale_m as f32, c.scale_v as f32, c.eps as f32, c.lr as f32);
    let decay = (1.0 - c.lr * c.weight_decay) as f32;
    let block = 1 << 13;
    theta
        .par_chunks_mut(block)
        .zip(m.par_chunks_mut(block))
        .zip(v.par_chunks_mut(block))
        .zip(grad.par_chunks(block))
        .for_each(|(((t, m), v), g)| {
            for (((t, m), v), &g) in t.iter_mut().zip(m).zip(v).zip(g) {
                *m = *m * b1 + g * b1c;
                *v = *v * b2 + (g * g) * b2c;
                let adjusted = (*m * sm) / ((*v * sv).sqrt() + eps);
                *t = *t * decay - adjusted * lr;
            }
        });
}

#[cfg(test)]
mod adamw_tests {
    use super::*;

    #[test]
    fn first_step_moves_each_weight_by_the_learning_rate() {
        let mut theta = vec![1.0f32, -2.0, 0.5];
        let grad = [0.5f32, -0.25, 0.0];
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        let c = AdamW {
            lr: 0.01,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            scale_m: 1.0 / (1.0 - 0.9),
            scale_v: 1.0 / (1.0 - 0.999),
        };
        adamw_step(&mut theta, &grad, &mut m, &mut v, &c);
        assert!((theta[0] - (1.0 * 0.999 - 0.01)).abs() < 1e-6, "{theta:?}");
        assert!((theta[1] - (-2.0 * 0.999 + 0.01)).abs() < 1e-6, "{theta:?}");
        assert!((theta[2] - 0.5 * 0.999).abs() < 1e-7, "{theta:?}");
        assert!((m[0] - 0.05).abs() < 1e-7 && (v[0] - 0.00025).abs() < 1e-9);
    }
}
