//! The multinomial objective on a GPU: the design is uploaded once, then each pass is six
//! launches (`softmax.cu`: rows, X^T R and the residual sums, each followed by the fixed-order
//! sum of its parts; five without dense columns) and small copies back. With categorical columns the rows × K residuals come back and
//! are scattered into the slots on the host in row order, as for the binary objective.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};

use super::{
    CHUNK_ROWS, CudaError, ROW_THREADS, TILE, XTR_LANES, guarded, int, launch_size, module, sum_parts,
};
use crate::logistic;
use crate::softmax::{self, Problem, SoftmaxLossGrad};

/// A multiclass [`Problem`] resident on one GPU.
pub struct Objective {
    host_codes: Vec<u32>,
    slots: Vec<usize>,
    host_residual: Vec<f64>,
    stream: Arc<CudaStream>,
    rows_fn: CudaFunction,
    xtr_fn: CudaFunction,
    res_fn: CudaFunction,
    sum_fn: CudaFunction,
    rows: usize,
    cols: usize,
    classes: usize,
    width: usize,
    x: CudaSlice<f32>,
    codes: CudaSlice<u32>,
    bases: CudaSlice<i64>,
    ncat: i32,
    y: CudaSlice<f32>,
    w: CudaSlice<f32>,
    has_w: i32,
    coef: CudaSlice<f64>,
    intercept: CudaSlice<f64>,
    residual: CudaSlice<f64>,
    loss_parts: CudaSlice<f64>,
    grad_parts: CudaSlice<f64>,
    res_parts: CudaSlice<f64>,
    loss: CudaSlice<f64>,
    grad: CudaSlice<f64>,
    grad_b: CudaSlice<f64>,
}

impl std::fmt::Debug for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("cuda::softmax::Objective")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("classes", &self.classes)
            .finish()
    }
}

impl Objective {
    /// Uploads `p` to device `ordinal`. Fails with a reason when there is no usable device,
    /// NVRTC is missing, or the data does not fit in the GPU's free memory.
    pub fn new(ordinal: usize, p: &Problem<'_>) -> Result<Objective, CudaError> {
        p.check();
        let d = p.design;
        let (rows, cols, k, width) = (d.rows, d.cols, p.classes, d.width());
        let (ctx, module) = module(ordinal, "softmax")?;
        guarded("uploading the design matrix", || {
            let (free, _) = ctx.mem_get_info()?;
            let row_blocks = rows.div_ceil(ROW_THREADS).max(1);
            let chunks = rows.div_ceil(CHUNK_ROWS).max(1);
            let need = d.x.len() * 4
                + d.codes.len() * 4
                + rows * (4 + if p.weights.is_some() { 4 } else { 0 })
                + rows * k * 8
                + (row_blocks + chunks * k * (cols + 1) + k * (width + cols + 2)) * 8;
            if need > free {
                return Err(CudaError(format!(
                    "the training data needs {:.2} GiB on CUDA device {ordinal}, which has {:.2} GiB free",
                    need as f64 / f64::from(1u32 << 30),
                    free as f64 / f64::from(1u32 << 30)
                )));
            }
            let stream = ctx.default_stream();
            let bases: Vec<i64> = d.bases().into_iter().map(|b| b as i64).collect();
            Ok(Objective {
                host_codes: d.codes.to_vec(),
                slots: d.slots.to_vec(),
                host_residual: vec![0.0; if d.slots.is_empty() { 0 } else { rows * k }],
                rows_fn: module.load_function("softmax_rows")?,
                xtr_fn: module.load_function("softmax_xt_r")?,
                res_fn: module.load_function("residual_sums")?,
                sum_fn: module.load_function("sum_parts")?,
                rows,
                cols,
                classes: k,
                width,
                x: if d.x.is_empty() { stream.alloc_zeros(1)? } else { stream.clone_htod(d.x)? },
                codes: if d.codes.is_empty() {
                    stream.alloc_zeros(1)?
                } else {
                    stream.clone_htod(d.codes)?
                },
                bases: if bases.is_empty() { stream.alloc_zeros(1)? } else { stream.clone_htod(&bases)? },
                ncat: int(d.slots.len(), "categorical columns")?,
                y: stream.clone_htod(p.y)?,
                w: match p.weights {
                    Some(w) => stream.clone_htod(w)?,
                    None => stream.alloc_zeros(1)?,
                },
                has_w: i32::from(p.weights.is_some()),
                coef: stream.alloc_zeros((k * width).max(1))?,
                intercept: stream.alloc_zeros(k)?,
                residual: stream.alloc_zeros((rows * k).max(1))?,
                loss_parts: stream.alloc_zeros(row_blocks)?,
                grad_parts: stream.alloc_zeros((chunks * k * cols).max(1))?,
                res_parts: stream.alloc_zeros(chunks * k)?,
                loss: stream.alloc_zeros(1)?,
                grad: stream.alloc_zeros((k * cols).max(1))?,
                grad_b: stream.alloc_zeros(k)?,
                stream,
            })
        })
    }
}

impl Objective {
    fn pass(
        &mut self,
        coef: &[f64],
        intercept: &[f64],
        grad: &mut [f64],
        grad_b: &mut [f64],
    ) -> Result<f64, CudaError> {
        let (k, cols, width) = (self.classes, self.cols, self.width);
        assert_eq!((coef.len(), grad.len()), (k * width, k * width));
        assert_eq!((intercept.len(), grad_b.len()), (k, k));
        let rows: i64 = int(self.rows, "rows")?;
        let (cols_i, k_i, width_i): (i32, i32, i64) =
            (int(cols, "columns")?, int(k, "classes")?, int(width, "coefficients")?);
        let row_blocks = self.rows.div_ceil(ROW_THREADS).max(1);
        let chunks = self.rows.div_ceil(CHUNK_ROWS).max(1);
        let s = self.stream.clone();
        if width > 0 {
            s.memcpy_htod(coef, &mut self.coef)?;
        }
        s.memcpy_htod(intercept, &mut self.intercept)?;
        let cfg = LaunchConfig {
            grid_dim: (launch_size(row_blocks, "row blocks")?, 1, 1),
            block_dim: (ROW_THREADS as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = s.launch_builder(&self.rows_fn);
        b.arg(&self.x)
            .arg(&self.codes)
            .arg(&self.bases)
            .arg(&self.ncat)
            .arg(&self.y)
            .arg(&self.w)
            .arg(&self.has_w);
        b.arg(&self.coef).arg(&self.intercept).arg(&k_i).arg(&width_i).arg(&rows).arg(&cols_i);
        b.arg(&mut self.residual).arg(&mut self.loss_parts);
        // SAFETY: the arguments match `softmax_rows`'s parameters in number, type and order, and
        // every buffer is at least as long as the grid reads or writes.
        unsafe { b.launch(cfg) }?;
        sum_parts(&s, &self.sum_fn, &self.loss_parts, row_blocks, 1, &mut self.loss)?;

        if cols > 0 {
            let cfg = LaunchConfig {
                grid_dim: (
                    launch_size(chunks, "row chunks")?,
                    launch_size(cols.div_ceil(TILE), "column tiles")?,
                    launch_size(k, "classes")?,
                ),
                block_dim: ((TILE * XTR_LANES) as u32, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut b = s.launch_builder(&self.xtr_fn);
            b.arg(&self.x).arg(&self.residual).arg(&rows).arg(&cols_i).arg(&k_i).arg(&mut self.grad_parts);
            // SAFETY: as above, for `softmax_xt_r`; grad_parts holds chunks × K × cols.
            unsafe { b.launch(cfg) }?;
            sum_parts(&s, &self.sum_fn, &self.grad_parts, chunks, k * cols, &mut self.grad)?;
        }
        let cfg = LaunchConfig {
            grid_dim: (launch_size(chunks, "row chunks")?, launch_size(k.div_ceil(TILE), "class tiles")?, 1),
            block_dim: ((TILE * XTR_LANES) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = s.launch_builder(&self.res_fn);
        b.arg(&self.residual).arg(&rows).arg(&k_i).arg(&mut self.res_parts);
        // SAFETY: as above, for `residual_sums`; res_parts holds chunks × K.
        unsafe { b.launch(cfg) }?;
        sum_parts(&s, &self.sum_fn, &self.res_parts, chunks, k, &mut self.grad_b)?;

        let mut dense = vec![0f64; k * cols];
        if cols > 0 {
            s.memcpy_dtoh(&self.grad, &mut dense[..])?;
        }
        s.memcpy_dtoh(&self.grad_b, grad_b)?;
        if !self.slots.is_empty() && self.rows > 0 {
            s.memcpy_dtoh(&self.residual, &mut self.host_residual[..])?;
        }
        let mut loss = [0f64; 1];
        s.memcpy_dtoh(&self.loss, &mut loss[..])?;
        s.synchronize()?;
        grad.iter_mut().for_each(|g| *g = 0.0);
        for c in 0..k {
            grad[c * width..c * width + cols].copy_from_slice(&dense[c * cols..(c + 1) * cols]);
        }
        if !self.slots.is_empty() {
            let design = logistic::Design {
                x: &[],
                rows: self.rows,
                cols,
                codes: &self.host_codes,
                slots: &self.slots,
            };
            softmax::scatter_class_slots(&design, k, &self.host_residual, grad);
        }
        Ok(loss[0])
    }
}

impl SoftmaxLossGrad for Objective {
    fn loss_grad(
        &mut self,
        coef: &[f64],
        intercept: &[f64],
        grad: &mut [f64],
        grad_b: &mut [f64],
    ) -> Result<f64, CudaError> {
        guarded("running the multinomial objective on the GPU", || self.pass(coef, intercept, grad, grad_b))
    }
}
