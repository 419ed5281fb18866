//! AdamW with its state in the open, the learning-rate schedule, and gradient-norm clipping.
//!
//! The update is candle-nn's `AdamW` step. It is re-stated here because candle-nn keeps the
//! moments private, and a checkpoint that survives preemption must save and restore them. On
//! CPU it runs as one fused pass (`trainyard_kernels::mlp::adamw_step`); elsewhere as tensor
//! operations.

use candle_core::{Tensor, Var};

use trainyard_kernels::mlp as kernel;

use crate::spec::LrSchedule;

/// AdamW's first and second moments and step count.
#[derive(Debug)]
pub struct AdamW {
    /// First moments, one per parameter in the network's order.
    pub m: Vec<Var>,
    /// Second moments.
    pub v: Vec<Var>,
    /// Steps taken.
    pub step: u64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl AdamW {
    /// Zero moments shaped like `params`.
    pub fn new(params: &[(String, Var)], weight_decay: f64) -> candle_core::Result<Self> {
        let zeros = |p: &Var| Var::zeros(p.shape(), p.dtype(), p.device());
        Ok(AdamW {
            m: params.iter().map(|(_, p)| zeros(p)).collect::<candle_core::Result<_>>()?,
            v: params.iter().map(|(_, p)| zeros(p)).collect::<candle_core::Result<_>>()?,
            step: 0,
            weight_decay,
        })
    }

    /// One update of every parameter with its gradient at learning rate `lr`.
    pub fn step(&mut self, params: &[(String, Var)], grads: &[Tensor], lr: f64) -> candle_core::Result<()> {
        self.step += 1;
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        let c = kernel::AdamW {
            lr,
            weight_decay: self.weight_decay,
            beta1: BETA1,
            beta2: BETA2,
            eps: EPS,
            scale_m: 1.0 / (1.0 - BETA1.powi(t)),
            scale_v: 1.0 / (1.0 - BETA2.powi(t)),
        };
        for (((_, theta), g), (m, v)) in params.iter().zip(grads).zip(self.m.iter().zip(&self.v)) {
            if theta.device().is_cpu() {
                // One fused pass instead of fifteen tensor operations.
                let host = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
                let (mut tv, mut mv, mut vv, gv) =
                    (host(theta.as_tensor())?, host(m.as_tensor())?, host(v.as_tensor())?, host(g)?);
                kernel::adamw_step(&mut tv, &gv, &mut mv, &mut vv, &c);
                let shape = theta.shape().clone();
                let dev = theta.device().clone();
                m.set(&Tensor::from_vec(mv, shape.clone(), &dev)?)?;
                v.set(&Tensor::from_vec(vv, shape.clone(), &dev)?)?;
                theta.set(&Tensor::from_vec(tv, shape, &dev)?)?;
                continue;
            }
            let next_m = ((m.as_tensor() * BETA1)? + (g * (1.0 - BETA1))?)?;
            let next_v = ((v.as_tensor() * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let m_hat = (&next_m * c.scale_m)?;
            let v_hat = (&next_v * c.scale_v)?;
            let decayed = (theta.as_tensor() * (1.0 - lr * self.weight_decay))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + EPS)?)?;
            let next_theta = (decayed - (adjusted * lr)?)?;
            m.set(&next_m)?;
            v.set(&next_v)?;
            theta.set(&next_theta)?;
        }
        Ok(())
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm` (as PyTorch's
/// `clip_grad_norm_`); returns the norm before clipping.
pub fn clip(grads: &mut [Tensor], max_norm: Option<f64>) -> candle_core::Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter() {
        sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
    }
    let norm = sq.sqrt();
    if let Some(max) = max_norm
        && norm > max
    {
        let scale = max / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}

/// The learning rate at optimizer step `step` (0-based) of `total` steps: linear warm-up over
/// the first `warmup` steps, then constant or half a cosine down to 0 at `total`.
pub fn learning_rate(peak: f64, schedule: LrSchedule, step: u64, warmup: u64, total: u64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    match schedule {
        LrSchedule::Constant => peak,
        LrSchedule::Cosine => {
            let span = total.saturating_sub(warmup).max(1) as f64;
            let progress = ((step - warmup) as f64 / span).min(1.0);
            0.5 * peak * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn one_step_matches_the_adamw_formula() {
        let p = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0], &Device::Cpu).unwrap()).unwrap();
        let params = vec![("p".to_string(), p.clone())];
        let mut opt = AdamW::new(&params, 0.1).unwrap();
        let g = Tensor::new(&[0.5f32, -0.25], &Device::Cpu).unwrap();
        opt.step(&params, &[g], 0.01).unwrap();
        // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + eps) = ±lr, after decay by lr·wd.
        let got: Vec<f32> = p.as_tensor().to_vec1().unwrap();
        assert!((got[0] - (1.0 * (1.0 - 0.001) - 0.01)).abs() < 1e-6, "{got:?}");
        assert!((got[1] - (-2.0 * (1.0 - 0.001) + 0.01)).abs() < 1e-6, "{got:?}");
        assert_eq!(opt.step, 1);
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let mut g = vec![Tensor::new(&[3.0f32, 4.0], &Device::Cpu).unwrap()];
        assert_eq!(clip(&mut g, Some(1.0)).unwrap(), 5.0);
        let v: Vec<f32> = g[0].to_vec1().unwrap();
        assert!((v[0] - 0.6).abs() < 1e-5 && (v[1] - 0.8).abs() < 1e-5, "{v:?}");
        let mut small = vec![Tensor::new(&[0.3f32, 0.4], &Device::Cpu).unwrap()];
        clip(&mut small, Some(1.0)).unwrap();
        assert_eq!(small[0].to_vec1::<f32>().unwrap(), [0.3, 0.4]);
    }

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let lr = |s| learning_rate(1.0, LrSchedule::Cosine, s, 10, 110);
        assert!((lr(0) - 0.1).abs() < 1e-12);
        assert!((lr(9) - 1.0).abs() < 1e-12);
        assert!((lr(10) - 1.0).abs() < 1e-12);
        assert!((lr(60) - 0.5).abs() < 1e-12);
        assert!(lr(110) < 1e-12);
        assert_eq!(learning_rate(0.5, LrSchedule::Constant, 1000, 0, 10), 0.5);
    }
}
