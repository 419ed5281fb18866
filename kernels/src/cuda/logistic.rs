//! The fused logistic objective on a GPU: the design is uploaded once, then each pass is three
//! launches (`logistic.cu`) and two small copies back. With categorical columns the row
//! residuals come back too, and their scatter into the slots runs on the host in row order
//! ([`crate::logistic::scatter_slots`]): deterministic without atomics, and 8 bytes a row.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};

use super::{CHUNK_ROWS, CudaError, ROW_THREADS, TILE, XTR_LANES, guarded, launch_size, module, sum_parts};
use crate::logistic::{self, LossGrad, Problem};

/// A [`Problem`] resident on one GPU.
pub struct Objective {
    host_codes: Vec<u32>,
    slots: Vec<usize>,
    host_residual: Vec<f64>,
    stream: Arc<CudaStream>,
    rows_fn: CudaFunction,
    xtr_fn: CudaFunction,
    sum_fn: CudaFunction,
    rows: usize,
    cols: usize,
    x: CudaSlice<f32>,
    // One element when there are no categorical columns, as `w`.
    codes: CudaSlice<u32>,
    bases: CudaSlice<i64>,
    ncat: i32,
    width: usize,
    y: CudaSlice<f32>,
    // One element when the rows are unweighted: kernels need a valid pointer either way.
    w: CudaSlice<f32>,
    has_w: i32,
    beta: CudaSlice<f64>,
    residual: CudaSlice<f64>,
    row_parts: CudaSlice<f64>,
    grad_parts: CudaSlice<f64>,
    sums: CudaSlice<f64>,
    grad: CudaSlice<f64>,
}

impl std::fmt::Debug for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("cuda::logistic::Objective")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

impl Objective {
    /// Uploads `p` to device `ordinal`. Fails with a reason when there is no usable device,
    /// NVRTC is missing, or the matrix does not fit in the GPU's free memory.
    pub fn new(ordinal: usize, p: &Problem<'_>) -> Result<Objective, CudaError> {
        p.check();
        let (ctx, module) = module(ordinal, "logistic")?;
        guarded("uploading the design matrix", || {
            let (free, _) = ctx.mem_get_info()?;
            let row_blocks = p.design.rows.div_ceil(ROW_THREADS).max(1);
            let chunks = p.design.rows.div_ceil(CHUNK_ROWS).max(1);
            let width = p.width();
            let need = p.design.x.len() * 4
                + p.design.codes.len() * 4
                + p.design.rows * (4 + 8 + if p.weights.is_some() { 4 } else { 0 })
                + (row_blocks * 2 + chunks * p.design.cols + p.design.cols + width + 2) * 8;
            if need > free {
                return Err(CudaError(format!(
                    "the training data needs {:.2} GiB on CUDA device {ordinal}, which has {:.2} GiB free",
                    need as f64 / f64::from(1u32 << 30),
                    free as f64 / f64::from(1u32 << 30)
                )));
            }
            let stream = ctx.default_stream();
            let bases: Vec<i64> = p.design.bases().into_iter().map(|b| b as i64).collect();
            let ncat = i32::try_from(p.design.slots.len())
                .map_err(|_| CudaError("too many categorical columns".into()))?;
            let obj = Objective {
                host_codes: p.design.codes.to_vec(),
                slots: p.design.slots.to_vec(),
                host_residual: vec![0.0; if p.design.slots.is_empty() { 0 } else { p.design.rows }],
                codes: if p.design.codes.is_empty() {
                    stream.alloc_zeros(1)?
                } else {
                    stream.clone_htod(p.design.codes)?
                },
                bases: if bases.is_empty() { stream.alloc_zeros(1)? } else { stream.clone_htod(&bases)? },
                ncat,
                width,
                rows_fn: module.load_function("logistic_rows")?,
                xtr_fn: module.load_function("logistic_xt_r")?,
                sum_fn: module.load_function("sum_parts")?,
                rows: p.design.rows,
                cols: p.design.cols,
                x: stream.clone_htod(p.design.x)?,
                y: stream.clone_htod(p.y)?,
                w: match p.weights {
                    Some(w) => stream.clone_htod(w)?,
                    None => stream.alloc_zeros(1)?,
                },
                has_w: i32::from(p.weights.is_some()),
                beta: stream.alloc_zeros(width.max(1))?,
                residual: stream.alloc_zeros(p.design.rows.max(1))?,
                row_parts: stream.alloc_zeros(row_blocks * 2)?,
                grad_parts: stream.alloc_zeros((chunks * p.design.cols).max(1))?,
                sums: stream.alloc_zeros(2)?,
                grad: stream.alloc_zeros(p.design.cols.max(1))?,
                stream,
            };
            Ok(obj)
        })
    }

    fn pass(&mut self, beta: &[f64], intercept: f64, grad: &mut [f64]) -> Result<(f64, f64), CudaError> {
        assert_eq!(beta.len(), self.width);
        assert_eq!(grad.len(), self.width);
        let rows = i64::try_from(self.rows).map_err(|_| CudaError("too many rows".into()))?;
        let cols = i32::try_from(self.cols).map_err(|_| CudaError("too many columns".into()))?;
        let row_blocks = self.rows.div_ceil(ROW_THREADS).max(1);
        let chunks = self.rows.div_ceil(CHUNK_ROWS).max(1);
        let s = &self.stream;
        if self.width > 0 {
            s.memcpy_htod(beta, &mut self.beta)?;
        }
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
            .arg(&self.has_w)
            .arg(&self.beta)
            .arg(&intercept);
        b.arg(&rows).arg(&cols).arg(&mut self.residual).arg(&mut self.row_parts);
        // SAFETY: the arguments match `logistic_rows`'s parameters in number, type and order,
        // and every buffer is at least as long as the grid reads or writes.
        unsafe { b.launch(cfg) }?;

        sum_parts(s, &self.sum_fn, &self.row_parts, row_blocks, 2, &mut self.sums)?;

        if self.cols > 0 {
            let cfg = LaunchConfig {
                grid_dim: (
                    launch_size(chunks, "row chunks")?,
                    launch_size(self.cols.div_ceil(TILE), "column tiles")?,
                    1,
                ),
                block_dim: ((TILE * XTR_LANES) as u32, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut b = s.launch_builder(&self.xtr_fn);
            b.arg(&self.x).arg(&self.residual).arg(&rows).arg(&cols).arg(&mut self.grad_parts);
            // SAFETY: as above, for `logistic_xt_r`; grad_parts holds chunks × cols.
            unsafe { b.launch(cfg) }?;

            sum_parts(s, &self.sum_fn, &self.grad_parts, chunks, self.cols, &mut self.grad)?;
            s.memcpy_dtoh(&self.grad, &mut grad[..self.cols])?;
        }
        if !self.slots.is_empty() && self.rows > 0 {
            s.memcpy_dtoh(&self.residual, &mut self.host_residual[..])?;
        }
        let mut sums = [0f64; 2];
        s.memcpy_dtoh(&self.sums, &mut sums[..])?;
        s.synchronize()?;
        if !self.slots.is_empty() {
            grad[self.cols..].iter_mut().for_each(|g| *g = 0.0);
            let design = logistic::Design {
                x: &[],
                rows: self.rows,
                cols: self.cols,
                codes: &self.host_codes,
                slots: &self.slots,
            };
            let residual = &self.host_residual;
            logistic::scatter_slots(&design, grad, &|i| residual[i]);
        }
        Ok((sums[0], sums[1]))
    }
}

impl LossGrad for Objective {
    fn loss_grad(&mut self, beta: &[f64], intercept: f64, grad: &mut [f64]) -> Result<(f64, f64), CudaError> {
        guarded("running the logistic objective on the GPU", || self.pass(beta, intercept, grad))
    }
}
