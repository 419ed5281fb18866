//! The hidden layer's bias + ReLU + dropout as one candle custom op on CPU, backed by the fused
//! kernels in `trainyard-kernels`. candle runs these as separate element-wise operations, one
//! scalar call per element on one thread each; fused and parallel they stop dominating a step.
//! Other devices use candle's own operations (see [`bias_relu_dropout`]).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use trainyard_kernels::mlp as kernel;

/// A dropout mask on the host: `[rows, width]` row-major values, 0 or 1/(1-p). Kept on the host
/// because the CPU kernel reads it there; other devices get a tensor made from it.
pub type Mask = std::sync::Arc<Vec<f32>>;

/// `max(z + bias, 0) · mask` for `z: [rows, width]`, `bias: [width]`, and a dropout mask of
/// 0 or 1/(1-p) per unit (while training).
pub fn bias_relu_dropout(z: &Tensor, bias: &Tensor, mask: Option<&Mask>) -> candle_core::Result<Tensor> {
    if !z.device().is_cpu() {
        let h = z.broadcast_add(bias)?.relu()?;
        return match mask {
            Some(m) => h * Tensor::from_slice(m, z.shape(), z.device())?,
            None => Ok(h),
        };
    }
    z.contiguous()?.apply_op2(&bias.contiguous()?, BiasReluDropout { mask: mask.cloned() })
}

struct BiasReluDropout {
    mask: Option<Mask>,
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("bias_relu_dropout: {what} must be a contiguous f32 tensor"),
    }
}

impl CustomOp2 for BiasReluDropout {
    fn name(&self) -> &'static str {
        "bias-relu-dropout"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (z, bias) = (contiguous(s1, l1, "z")?, contiguous(s2, l2, "bias")?);
        if l1.dims().len() != 2 || l1.dims()[1] != bias.len() {
            candle_core::bail!("bias_relu_dropout: z {:?} does not match bias {:?}", l1.dims(), l2.dims());
        }
        let mut out = vec![0f32; z.len()];
        kernel::bias_relu_dropout(z, bias, self.mask.as_deref().map(Vec::as_slice), &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _z: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_z = res
            .contiguous()?
            .apply_op2_no_bwd(&grad_res.contiguous()?, &BiasReluDropoutGrad { mask: self.mask.clone() })?;
        let grad_bias = grad_z.sum(0)?;
        Ok((Some(grad_z), Some(grad_bias)))
    }
}

struct BiasReluDropoutGrad {
    mask: Option<Mask>,
}

impl CustomOp2 for BiasReluDropoutGrad {
    fn name(&self) -> &'static str {
        "bias-relu-dropout-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (res, grad) = (contiguous(s1, l1, "res")?, contiguous(s2, l2, "grad")?);
        let mut out = vec![0f32; res.len()];
        kernel::bias_relu_dropout_grad(res, grad, self.mask.as_deref().map(Vec::as_slice), &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    // Pre-activations avoid exactly 0, where the two differ by choice of subgradient: candle's
    // ReLU passes the gradient at 0, the fused op (like PyTorch) does not.
    #[test]
    fn fused_op_and_its_gradients_equal_candles_own_operations() {
        let dev = Device::Cpu;
        let z = Var::from_tensor(
            &Tensor::from_vec(
                (0..24).map(|i| (i as f32 - 11.0) / 4.0 + 0.05).collect::<Vec<_>>(),
                (6, 4),
                &dev,
            )
            .unwrap(),
        )
        .unwrap();
        let b = Var::from_tensor(&Tensor::new(&[0.3f32, -0.2, 0.0, 1.0], &dev).unwrap()).unwrap();
        let mask_values: Vec<f32> = (0..24).map(|i| if i % 3 == 0 { 0.0 } else { 1.5 }).collect();
        let mask = Tensor::from_slice(&mask_values, (6, 4), &dev).unwrap();
        let weights = Tensor::from_vec((0..24).map(|i| i as f32).collect::<Vec<_>>(), (6, 4), &dev).unwrap();
        let fused =
            bias_relu_dropout(z.as_tensor(), b.as_tensor(), Some(&std::sync::Arc::new(mask_values))).unwrap();
        let plain = (z.as_tensor().broadcast_add(b.as_tensor()).unwrap().relu().unwrap() * &mask).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&fused), flat(&plain));
        let gf = (fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (plain * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&z, &b] {
            assert_eq!(flat(gf.get(v.as_tensor()).unwrap()), flat(gp.get(v.as_tensor()).unwrap()));
        }
    }
}
