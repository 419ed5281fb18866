//! The fused logistic objective: one pass over the design computes scores, the stable log-loss
//! and the gradient together.
//!
//! The design is a dense row-major f32 block (standardized numerics, missing indicators) plus,
//! per categorical column, one slot code per row. The coefficient vector has the one-hot
//! layout: the dense block's columns, then each categorical column's slots in order, so
//! `xᵢ·β` is the dense dot product plus one coefficient lookup per categorical column. A row's
//! score has exactly the bits the dense one-hot dot product gave it (the lookups go to the
//! lanes and the tail the one-hot column would have gone to), so models fitted before codes
//! existed score the same.
//!
//! The categorical gradient is a scatter-add of the row residuals into the slots. To keep it
//! bitwise identical for any thread count without one slot-sized buffer per row block, the
//! parallel row pass stores each row's residual, and a second pass adds them into each column's
//! slots in row order, one categorical column per task. The residuals cost 8 bytes a row; the
//! scatter reads 12 bytes a row per column and touches only that column's slots, which stay in
//! cache.

use rayon::prelude::*;

use crate::cuda::CudaError;
use crate::lanes::{self, LANES};

/// Rows per block. Fixed (not derived from the thread count) because the block partition decides
/// the order of floating-point sums, and results must not depend on the machine.
pub const BLOCK_ROWS: usize = 2048;

/// A binary classification problem: a design (a dense block and categorical codes) with labels.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// The rows.
    pub design: Design<'a>,
    /// Labels, 0.0 or 1.0.
    pub y: &'a [f32],
    /// Per-row weights, or `None` for all ones.
    pub weights: Option<&'a [f32]>,
}

impl<'a> Problem<'a> {
    /// A problem with a dense block only.
    pub fn dense(x: &'a [f32], rows: usize, cols: usize, y: &'a [f32], weights: Option<&'a [f32]>) -> Self {
        Problem { design: Design { x, rows, cols, codes: &[], slots: &[] }, y, weights }
    }

    /// Coefficients: the dense columns plus every categorical slot.
    pub fn width(&self) -> usize {
        self.design.width()
    }

    /// Panics when the slices disagree with `rows` and `cols`: a caller bug, not an input error.
    pub(crate) fn check(&self) {
        self.design.check();
        assert_eq!(self.y.len(), self.design.rows, "one label per row");
        if let Some(w) = self.weights {
            assert_eq!(w.len(), self.design.rows, "one weight per row");
        }
    }
}

/// The rows of a design, without labels: what scoring needs.
#[derive(Debug, Clone, Copy)]
pub struct Design<'a> {
    /// `rows * cols` values, row after row.
    pub x: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns of the dense block.
    pub cols: usize,
    /// `rows * slots.len()` slot codes, row after row: row i's slot in categorical column j is
    /// `codes[i * slots.len() + j]`, below `slots[j]`.
    pub codes: &'a [u32],
    /// Slots (coefficients) of each categorical column.
    pub slots: &'a [usize],
}

impl Design<'_> {
    /// Coefficients: the dense columns plus every categorical slot.
    pub fn width(&self) -> usize {
        self.cols + self.slots.iter().sum::<usize>()
    }

    /// Index of each categorical column's first coefficient.
    pub(crate) fn bases(&self) -> Vec<usize> {
        let mut next = self.cols;
        self.slots
            .iter()
            .map(|s| {
                let b = next;
                next += s;
                b
            })
            .collect()
    }

    pub(crate) fn check(&self) {
        assert_eq!(self.x.len(), self.rows * self.cols, "x has rows * cols values");
        assert_eq!(self.codes.len(), self.rows * self.slots.len(), "one code per row and categorical column");
    }
}

/// log(1 + e^z) without overflow or loss of precision for large |z|; the same bits as the
/// fused kernels compute.
#[inline]
pub fn softplus(z: f64) -> f64 {
    lanes::softplus_sigmoid(&[z; LANES]).0[0]
}

/// 1 / (1 + e^-z), computed from the side where the exponential cannot overflow; the same bits
/// as [`predict_proba`] computes.
#[inline]
pub fn sigmoid(z: f64) -> f64 {
    lanes::sigmoid(&[z; LANES])[0]
}

/// The two per-row loops of the kernel. [`Portable`] is plain Rust; [`Avx2`] spells the same
/// lane operations with intrinsics because the compiler's own vectorization of them uses half
/// the register width. Both compute the same bits.
pub(crate) trait RowOps {
    /// Eight f64 accumulators of x · beta over whole chunks of eight columns (lane k takes
    /// columns k, k+8, ...); `x.len()` is a multiple of 8.
    fn lanes(x: &[f32], beta: &[f64]) -> [f64; 8];
    /// `g += r · x`, widening x to f64.
    fn axpy(g: &mut [f64], r: f64, x: &[f32]);
}

pub(crate) struct Portable;

impl RowOps for Portable {
    #[inline(always)]
    fn lanes(x: &[f32], beta: &[f64]) -> [f64; 8] {
        let mut acc = [0f64; 8];
        for (xs, bs) in x.chunks_exact(8).zip(beta.chunks_exact(8)) {
            for k in 0..8 {
                acc[k] += f64::from(xs[k]) * bs[k];
            }
        }
        acc
    }

    #[inline(always)]
    fn axpy(g: &mut [f64], r: f64, x: &[f32]) {
        for (gj, xj) in g.iter_mut().zip(x) {
            *gj += r * f64::from(*xj);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx2;

#[cfg(target_arch = "x86_64")]
impl RowOps for Avx2 {
    #[inline(always)]
    fn lanes(x: &[f32], beta: &[f64]) -> [f64; 8] {
        use std::arch::x86_64::*;
        let full = x.len().min(beta.len()) / 8 * 8;
        let mut acc = [0f64; 8];
        // SAFETY: only called from functions compiled with AVX2 enabled, on a CPU that has it;
        // every load reads 4 or 8 values at an offset below `full <= len`, and the stores write
        // the 8 values of `acc`.
        unsafe {
            let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
            let mut j = 0;
            while j < full {
                let xs = _mm256_loadu_ps(x.as_ptr().add(j));
                let x_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(xs));
                let x_hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(xs));
                lo = _mm256_add_pd(lo, _mm256_mul_pd(x_lo, _mm256_loadu_pd(beta.as_ptr().add(j))));
                hi = _mm256_add_pd(hi, _mm256_mul_pd(x_hi, _mm256_loadu_pd(beta.as_ptr().add(j + 4))));
                j += 8;
            }
            _mm256_storeu_pd(acc.as_mut_ptr(), lo);
            _mm256_storeu_pd(acc.as_mut_ptr().add(4), hi);
        }
        acc
    }

    #[inline(always)]
    fn axpy(g: &mut [f64], r: f64, x: &[f32]) {
        use std::arch::x86_64::*;
        let n = g.len().min(x.len());
        let full = n / 4 * 4;
        // SAFETY: as in `lanes`; each access is at an offset below `full <= len`.
        unsafe {
            let rv = _mm256_set1_pd(r);
            let mut j = 0;
            while j < full {
                let xs = _mm256_cvtps_pd(_mm_loadu_ps(x.as_ptr().add(j)));
                let gp = g.as_mut_ptr().add(j);
                _mm256_storeu_pd(gp, _mm256_add_pd(_mm256_loadu_pd(gp), _mm256_mul_pd(rv, xs)));
                j += 4;
            }
        }
        for k in full..n {
            g[k] += r * f64::from(x[k]);
        }
    }
}

/// What every row's score needs besides the row: where each categorical column's coefficients
/// start, and where the one-hot row's whole chunks of eight columns end.
pub(crate) struct Layout {
    bases: Vec<usize>,
    full: usize,
}

impl Layout {
    pub(crate) fn new(d: &Design<'_>) -> Layout {
        Layout { bases: d.bases(), full: d.width() / 8 * 8 }
    }
}

/// Row `i`'s score xᵢ·β + b with the bits of the dense dot product over its one-hot row: f64
/// accumulation in eight lanes (lane k takes columns k, k+8, ...), then
/// `((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7))`, then the columns past the last whole
/// chunk in order, then the intercept. A one-hot column adds its coefficient (1·β) to its lane
/// or the tail; the zero columns would add ±0, which changes nothing.
#[inline(always)]
pub(crate) fn score<O: RowOps>(
    d: &Design<'_>,
    layout: &Layout,
    i: usize,
    beta: &[f64],
    intercept: f64,
) -> f64 {
    let cols = d.cols;
    let x = &d.x[i * cols..(i + 1) * cols];
    let m = cols.min(layout.full);
    let m8 = m / 8 * 8;
    let mut acc = O::lanes(&x[..m8], &beta[..m8]);
    for j in m8..m {
        acc[j % 8] += f64::from(x[j]) * beta[j];
    }
    let mut tail = 0.0;
    for j in m..cols {
        tail += f64::from(x[j]) * beta[j];
    }
    let ncat = layout.bases.len();
    for (&base, &code) in layout.bases.iter().zip(&d.codes[i * ncat..(i + 1) * ncat]) {
        let k = base + code as usize;
        if k < layout.full {
            acc[k % 8] += beta[k];
        } else {
            tail += beta[k];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail + intercept
}

/// Scores of up to [`LANES`] consecutive rows starting at `first`; lanes past the last row hold
/// 0 and are ignored by callers.
#[inline(always)]
fn scores<O: RowOps>(
    d: &Design<'_>,
    layout: &Layout,
    first: usize,
    n: usize,
    beta: &[f64],
    intercept: f64,
) -> [f64; LANES] {
    let mut z = [0f64; LANES];
    for (l, zl) in z.iter_mut().enumerate().take(n) {
        *zl = score::<O>(d, layout, first + l, beta, intercept);
    }
    z
}

/// One block of rows: its loss and intercept gradient, the dense block's gradient added into
/// `g`, and each row's residual written to `residual` when it is not empty (categorical
/// columns need them). Rows go [`LANES`] at a time so the transcendental functions run as
/// vector code.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_body<O: RowOps>(
    p: &Problem<'_>,
    layout: &Layout,
    start: usize,
    end: usize,
    beta: &[f64],
    intercept: f64,
    g: &mut [f64],
    residual: &mut [f64],
) -> (f64, f64) {
    let (cols, design) = (p.design.cols, p.design);
    let (mut loss, mut g0) = (0f64, 0f64);
    let mut i = start;
    while i < end {
        let n = LANES.min(end - i);
        let z = scores::<O>(&design, layout, i, n, beta, intercept);
        let (softplus, sigmoid) = lanes::softplus_sigmoid(&z);
        for l in 0..n {
            let row = i + l;
            let y = f64::from(p.y[row]);
            let s = p.weights.map_or(1.0, |w| f64::from(w[row]));
            loss += s * (softplus[l] - y * z[l]);
            let r = s * (sigmoid[l] - y);
            g0 += r;
            O::axpy(g, r, &p.design.x[row * cols..(row + 1) * cols]);
            if !residual.is_empty() {
                residual[row - start] = r;
            }
        }
        i += n;
    }
    (loss, g0)
}

/// [`block_body`] compiled for AVX2. Without FMA on purpose: the results stay bitwise equal to
/// the baseline build's, so a model does not change with the machine it was trained on.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn block_avx2(
    p: &Problem<'_>,
    layout: &Layout,
    start: usize,
    end: usize,
    beta: &[f64],
    intercept: f64,
    g: &mut [f64],
    residual: &mut [f64],
) -> (f64, f64) {
    block_body::<Avx2>(p, layout, start, end, beta, intercept, g, residual)
}

/// [`block_body`] with the best instruction set this CPU has, chosen at run time so the binary
/// stays portable.
#[allow(clippy::too_many_arguments)]
fn block(
    p: &Problem<'_>,
    layout: &Layout,
    start: usize,
    end: usize,
    beta: &[f64],
    intercept: f64,
    g: &mut [f64],
    residual: &mut [f64],
) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { block_avx2(p, layout, start, end, beta, intercept, g, residual) };
    }
    block_body::<Portable>(p, layout, start, end, beta, intercept, g, residual)
}

/// `grad[cols..]`, one slice per categorical column.
fn slot_slices<'g>(grad: &'g mut [f64], cols: usize, slots: &[usize]) -> Vec<&'g mut [f64]> {
    let mut rest = &mut grad[cols..];
    let mut out = Vec::with_capacity(slots.len());
    for &s in slots {
        let (head, tail) = rest.split_at_mut(s);
        out.push(head);
        rest = tail;
    }
    out
}

/// Adds `value(i)` of every row into its slot of each categorical column, in row order: one
/// task per column, so the sums do not depend on the thread count.
pub fn scatter_slots(d: &Design<'_>, out: &mut [f64], value: &(dyn Fn(usize) -> f64 + Sync)) {
    let ncat = d.slots.len();
    slot_slices(out, d.cols, d.slots).into_par_iter().enumerate().for_each(|(j, g)| {
        for i in 0..d.rows {
            g[d.codes[i * ncat + j] as usize] += value(i);
        }
    });
}

/// The weighted log loss Σ sᵢ·[log(1 + e^{zᵢ}) − yᵢ·zᵢ] with zᵢ = xᵢ·beta + intercept, and its
/// gradient: written to `grad` (length [`Problem::width`]) for beta, returned for the intercept.
///
/// Returns `(loss, d loss / d intercept)`. Regularization is the caller's.
pub fn loss_grad(p: &Problem<'_>, beta: &[f64], intercept: f64, grad: &mut [f64]) -> (f64, f64) {
    loss_grad_with(p, beta, intercept, grad, &mut Vec::new())
}

/// [`loss_grad`] with the row residuals kept in `residual` (reused between passes).
pub fn loss_grad_with(
    p: &Problem<'_>,
    beta: &[f64],
    intercept: f64,
    grad: &mut [f64],
    residual: &mut Vec<f64>,
) -> (f64, f64) {
    p.check();
    let design = p.design;
    assert_eq!(beta.len(), design.width());
    assert_eq!(grad.len(), design.width());
    let layout = Layout::new(&design);
    let cols = p.design.cols;
    let coded = !p.design.slots.is_empty();
    residual.resize(if coded { p.design.rows } else { 0 }, 0.0);
    let run = |b: usize, res: &mut [f64]| {
        let start = b * BLOCK_ROWS;
        let end = (start + BLOCK_ROWS).min(p.design.rows);
        let mut g = vec![0f64; cols];
        let (loss, g0) = block(p, &layout, start, end, beta, intercept, &mut g, res);
        (loss, g0, g)
    };
    if p.design.rows <= BLOCK_ROWS {
        // One block: straight into `grad`, with no task to schedule and no partials to allocate.
        // Per-group fits and their cross-validation folds are tens of thousands of these, a few
        // microseconds each. The sums are the same as the general path's (0 + x is x).
        grad.iter_mut().for_each(|g| *g = 0.0);
        let (loss, g0) = block(p, &layout, 0, p.design.rows, beta, intercept, &mut grad[..cols], residual);
        if coded {
            let residual = &residual[..];
            scatter_slots(&design, grad, &|i| residual[i]);
        }
        return (loss, g0);
    }
    let partials: Vec<(f64, f64, Vec<f64>)> = if coded {
        residual.par_chunks_mut(BLOCK_ROWS).enumerate().map(|(b, res)| run(b, res)).collect()
    } else {
        (0..p.design.rows.div_ceil(BLOCK_ROWS)).into_par_iter().map(|b| run(b, &mut [])).collect()
    };
    grad.iter_mut().for_each(|g| *g = 0.0);
    let (mut loss, mut g0) = (0.0, 0.0);
    // Block order, not completion order: the sum is the same on 1 or 64 threads.
    for (l, b0, g) in partials {
        loss += l;
        g0 += b0;
        for (a, b) in grad[..cols].iter_mut().zip(g) {
            *a += b;
        }
    }
    if coded {
        let residual = &residual[..];
        scatter_slots(&design, grad, &|i| residual[i]);
    }
    (loss, g0)
}

/// The diagonal of Σᵢ sᵢ·x̃ᵢx̃ᵢᵀ over the one-hot rows x̃ᵢ: Σᵢ sᵢ·x_ij² for each dense column,
/// the weight of each categorical slot's rows, and Σᵢ sᵢ for the intercept (returned). Times
/// p(1−p) it is the diagonal of the log loss's Hessian where every row has probability p.
pub fn second_moments(p: &Problem<'_>, out: &mut [f64]) -> f64 {
    p.check();
    let design = p.design;
    assert_eq!(out.len(), design.width());
    let cols = p.design.cols;
    let weight = |i: usize| p.weights.map_or(1.0, |w| f64::from(w[i]));
    let partials: Vec<(f64, Vec<f64>)> = (0..p.design.rows.div_ceil(BLOCK_ROWS))
        .into_par_iter()
        .map(|b| {
            let mut m = vec![0f64; cols];
            let mut total = 0.0;
            for i in b * BLOCK_ROWS..((b + 1) * BLOCK_ROWS).min(p.design.rows) {
                let s = weight(i);
                total += s;
                for (mj, &x) in m.iter_mut().zip(&p.design.x[i * cols..(i + 1) * cols]) {
                    *mj += s * f64::from(x) * f64::from(x);
                }
            }
            (total, m)
        })
        .collect();
    out.iter_mut().for_each(|v| *v = 0.0);
    let mut total = 0.0;
    for (t, m) in partials {
        total += t;
        for (a, b) in out[..cols].iter_mut().zip(m) {
            *a += b;
        }
    }
    scatter_slots(&design, out, &weight);
    total
}

/// The objective as the solver sees it, whichever device holds the data: the CPU ([`Cpu`]) or
/// a GPU ([`crate::cuda::logistic::Objective`]). Same contract as [`loss_grad`]; only a device
/// can fail.
pub trait LossGrad {
    /// `(loss, d loss / d intercept)`, with the gradient for beta written to `grad`.
    fn loss_grad(&mut self, beta: &[f64], intercept: f64, grad: &mut [f64]) -> Result<(f64, f64), CudaError>;
}

/// [`loss_grad`] on this machine's cores.
#[derive(Debug, Clone)]
pub struct Cpu<'a> {
    problem: Problem<'a>,
    residual: Vec<f64>,
}

impl<'a> Cpu<'a> {
    /// The objective of `problem`.
    pub fn new(problem: Problem<'a>) -> Self {
        Cpu { problem, residual: Vec::new() }
    }
}

impl LossGrad for Cpu<'_> {
    fn loss_grad(&mut self, beta: &[f64], intercept: f64, grad: &mut [f64]) -> Result<(f64, f64), CudaError> {
        Ok(loss_grad_with(&self.problem, beta, intercept, grad, &mut self.residual))
    }
}

/// Row `i` of the design as a dense one-hot row: the textbook form the references use.
pub fn one_hot_row(d: &Design<'_>, i: usize) -> Vec<f64> {
    let mut row: Vec<f64> = d.x[i * d.cols..(i + 1) * d.cols].iter().map(|&v| f64::from(v)).collect();
    let ncat = d.slots.len();
    for (j, &s) in d.slots.iter().enumerate() {
        let start = row.len();
        row.resize(start + s, 0.0);
        row[start + d.codes[i * ncat + j] as usize] = 1.0;
    }
    row
}

/// The textbook computation of [`loss_grad`]: one dense one-hot row at a time, no blocks, no
/// lanes. Slow; the reference that tests compare the fast path with.
pub fn loss_grad_reference(p: &Problem<'_>, beta: &[f64], intercept: f64, grad: &mut [f64]) -> (f64, f64) {
    p.check();
    let d = p.design;
    grad.iter_mut().for_each(|g| *g = 0.0);
    let (mut loss, mut g0) = (0.0, 0.0);
    for i in 0..p.design.rows {
        let row = one_hot_row(&d, i);
        let z: f64 = row.iter().zip(beta).map(|(x, b)| x * b).sum::<f64>() + intercept;
        let y = f64::from(p.y[i]);
        let s = p.weights.map_or(1.0, |w| f64::from(w[i]));
        let prob = 1.0 / (1.0 + (-z).exp());
        loss += s * (if z > 30.0 { z - y * z + (-z).exp() } else { (1.0 + z.exp()).ln() - y * z });
        g0 += s * (prob - y);
        for (g, x) in grad.iter_mut().zip(&row) {
            *g += s * (prob - y) * x;
        }
    }
    (loss, g0)
}

#[inline(always)]
fn proba_body<O: RowOps>(
    out: &mut [f64],
    d: &Design<'_>,
    layout: &Layout,
    first: usize,
    beta: &[f64],
    b: f64,
) {
    let mut i = 0;
    while i < out.len() {
        let n = LANES.min(out.len() - i);
        let p = lanes::sigmoid(&scores::<O>(d, layout, first + i, n, beta, b));
        out[i..i + n].copy_from_slice(&p[..n]);
        i += n;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn proba_avx2(out: &mut [f64], d: &Design<'_>, layout: &Layout, first: usize, beta: &[f64], b: f64) {
    proba_body::<Avx2>(out, d, layout, first, beta, b)
}

/// Probabilities σ(xᵢ·beta + intercept) for every row of `d`, written to `out`. Each row's
/// result depends only on that row, so scoring the same row anywhere gives the same bits.
pub fn predict_proba(d: &Design<'_>, beta: &[f64], intercept: f64, out: &mut [f64]) {
    d.check();
    assert_eq!(beta.len(), d.width());
    assert_eq!(out.len(), d.rows);
    let layout = Layout::new(d);
    out.par_chunks_mut(BLOCK_ROWS).enumerate().for_each(|(b, o)| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { proba_avx2(o, d, &layout, b * BLOCK_ROWS, beta, intercept) };
        }
        proba_body::<Portable>(o, d, &layout, b * BLOCK_ROWS, beta, intercept)
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A seeded problem with rows not a multiple of the block size or the lane width: a dense
    /// block, codes for categorical columns of `slots` slots, labels, weights, coefficients.
    struct Data {
        x: Vec<f32>,
        codes: Vec<u32>,
        slots: Vec<usize>,
        y: Vec<f32>,
        w: Vec<f32>,
        beta: Vec<f64>,
        rows: usize,
        cols: usize,
    }

    impl Data {
        fn new(rows: usize, cols: usize, slots: &[usize], seed: u64) -> Data {
            let mut s = seed;
            let mut next = move || {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            };
            let x: Vec<f32> = (0..rows * cols).map(|_| (3.0 * next()) as f32).collect();
            // Skewed slot frequencies, as real categoricals have: low slots are common.
            let codes: Vec<u32> = (0..rows * slots.len())
                .map(|k| {
                    let n = slots[k % slots.len()] as f64;
                    ((next() * 0.5 + 0.5).powi(3) * n).min(n - 1.0) as u32
                })
                .collect();
            let y: Vec<f32> = (0..rows).map(|_| if next() > 0.3 { 1.0 } else { 0.0 }).collect();
            let w: Vec<f32> = (0..rows).map(|_| (1.0 + next()) as f32).collect();
            let width = cols + slots.iter().sum::<usize>();
            let beta: Vec<f64> = (0..width).map(|_| next()).collect();
            Data { x, codes, slots: slots.to_vec(), y, w, beta, rows, cols }
        }

        fn problem(&self, weighted: bool) -> Problem<'_> {
            Problem {
                design: Design {
                    x: &self.x,
                    rows: self.rows,
                    cols: self.cols,
                    codes: &self.codes,
                    slots: &self.slots,
                },
                y: &self.y,
                weights: weighted.then_some(&self.w[..]),
            }
        }

        /// The same rows with the categorical columns expanded to dense one-hot columns.
        fn one_hot(&self) -> Vec<f32> {
            let d = self.problem(false).design;
            (0..self.rows).flat_map(|i| one_hot_row(&d, i)).map(|v| v as f32).collect()
        }
    }

    const SHAPES: [(usize, usize, &[usize]); 7] = [
        (1, 1, &[]),
        (7, 3, &[]),
        (5000, 13, &[]),
        (BLOCK_ROWS * 2 + 1, 16, &[]),
        (5000, 13, &[2]),
        (3001, 5, &[3, 300, 1]),
        (BLOCK_ROWS * 2 + 3, 0, &[40, 7]),
    ];

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn fast_path_agrees_with_the_reference() {
        for (rows, cols, slots) in SHAPES {
            let data = Data::new(rows, cols, slots, rows as u64);
            let width = data.beta.len();
            for weighted in [false, true] {
                let p = data.problem(weighted);
                let (mut g1, mut g2) = (vec![0.0; width], vec![0.0; width]);
                let (l1, b1) = loss_grad(&p, &data.beta, 0.3, &mut g1);
                let (l2, b2) = loss_grad_reference(&p, &data.beta, 0.3, &mut g2);
                assert!(close(l1, l2, 1e-10) && close(b1, b2, 1e-10), "{rows}x{cols}: {l1} {l2} {b1} {b2}");
                for (a, b) in g1.iter().zip(&g2) {
                    assert!(close(*a, *b, 1e-10), "{rows}x{cols}{slots:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn codes_score_with_the_bits_of_the_dense_one_hot_rows() {
        // Dense blocks shorter and longer than the one-hot row's whole chunks of eight, and
        // categorical slots landing in lanes and in the tail.
        for (rows, cols, slots) in [
            (300, 5, &[3, 300, 1][..]),
            (300, 13, &[2]),
            (200, 9, &[4, 3]),
            (100, 0, &[40, 7]),
            (64, 16, &[8]),
        ] {
            let data = Data::new(rows, cols, slots, 17 + cols as u64);
            let width = data.beta.len();
            let one_hot = data.one_hot();
            let dense = Design { x: &one_hot, rows, cols: width, codes: &[], slots: &[] };
            let (mut coded, mut plain) = (vec![0.0; rows], vec![0.0; rows]);
            predict_proba(&data.problem(false).design, &data.beta, -0.7, &mut coded);
            predict_proba(&dense, &data.beta, -0.7, &mut plain);
            assert_eq!(coded, plain, "{cols} dense, slots {slots:?}");
            // And the loss the fit minimizes is the same function of the same scores.
            let p = data.problem(true);
            let q = Problem::dense(&one_hot, rows, width, &data.y, Some(&data.w));
            let (mut g1, mut g2) = (vec![0.0; width], vec![0.0; width]);
            let (l1, b1) = loss_grad(&p, &data.beta, -0.7, &mut g1);
            let (l2, b2) = loss_grad(&q, &data.beta, -0.7, &mut g2);
            assert_eq!((l1.to_bits(), b1.to_bits()), (l2.to_bits(), b2.to_bits()));
            assert!(g1.iter().zip(&g2).all(|(a, b)| close(*a, *b, 1e-12)));
        }
    }

    #[test]
    fn extreme_scores_agree_with_the_reference() {
        // Coefficients large enough that |z| reaches the hundreds: saturated rows on both sides.
        let data = Data::new(3000, 9, &[5], 11);
        let beta: Vec<f64> = data.beta.iter().map(|b| b * 60.0).collect();
        let p = data.problem(true);
        let (mut g1, mut g2) = (vec![0.0; beta.len()], vec![0.0; beta.len()]);
        let (l1, b1) = loss_grad(&p, &beta, -5.0, &mut g1);
        let (l2, b2) = loss_grad_reference(&p, &beta, -5.0, &mut g2);
        assert!(close(l1, l2, 1e-9) && close(b1, b2, 1e-9), "{l1} {l2} {b1} {b2}");
        assert!(g1.iter().zip(&g2).all(|(a, b)| close(*a, *b, 1e-9)), "{g1:?} vs {g2:?}");
    }

    #[test]
    fn vector_and_baseline_builds_give_the_same_bits() {
        let data = Data::new(1000, 37, &[9, 120], 5);
        let p = data.problem(true);
        let layout = Layout::new(&p.design);
        let (mut g1, mut g2) = (vec![0.0; 37], vec![0.0; 37]);
        let (mut r1, mut r2) = (vec![0.0; 997], vec![0.0; 997]);
        // `block` dispatches to the widest instruction set here; `block_body` is the baseline.
        let a = block(&p, &layout, 3, 1000, &data.beta, 0.4, &mut g1, &mut r1);
        let b = block_body::<Portable>(&p, &layout, 3, 1000, &data.beta, 0.4, &mut g2, &mut r2);
        assert_eq!((a.0.to_bits(), a.1.to_bits()), (b.0.to_bits(), b.1.to_bits()));
        assert_eq!((g1, r1), (g2, r2));
        let mut o1 = vec![0.0; 1000];
        let mut o2 = vec![0.0; 1000];
        predict_proba(&p.design, &data.beta, 0.4, &mut o1);
        proba_body::<Portable>(&mut o2, &p.design, &layout, 0, &data.beta, 0.4);
        assert_eq!(o1, o2);
    }

    #[test]
    fn results_are_bitwise_identical_across_thread_counts() {
        for slots in [&[][..], &[3, 500]] {
            let data = Data::new(BLOCK_ROWS * 5 + 17, 21, slots, 9);
            let p = data.problem(true);
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut g = vec![0.0; data.beta.len()];
                    let (l, b) = loss_grad(&p, &data.beta, -0.2, &mut g);
                    let mut m = vec![0.0; data.beta.len()];
                    let total = second_moments(&p, &mut m);
                    let mut out = vec![0.0; p.design.rows];
                    predict_proba(&p.design, &data.beta, -0.2, &mut out);
                    let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    (l.to_bits(), b.to_bits(), bits(&g), bits(&m), total.to_bits(), bits(&out))
                })
            };
            let one = run(1);
            assert_eq!(one, run(2));
            assert_eq!(one, run(7));
        }
    }

    #[test]
    fn second_moments_are_the_diagonal_of_the_one_hot_gram_matrix() {
        let data = Data::new(2500, 4, &[6, 2], 21);
        let p = data.problem(true);
        let mut m = vec![0.0; data.beta.len()];
        let total = second_moments(&p, &mut m);
        let mut want = vec![0.0; m.len()];
        for i in 0..p.design.rows {
            let s = f64::from(data.w[i]);
            for (w, x) in want.iter_mut().zip(one_hot_row(&p.design, i)) {
                *w += s * x * x;
            }
        }
        assert!(close(total, data.w.iter().map(|&v| f64::from(v)).sum(), 1e-12));
        assert!(m.iter().zip(&want).all(|(a, b)| close(*a, *b, 1e-12)), "{m:?} vs {want:?}");
    }

    #[test]
    fn gradient_matches_central_finite_differences() {
        let data = Data::new(300, 5, &[4], 3);
        let p = data.problem(true);
        let width = data.beta.len();
        let mut g = vec![0.0; width];
        let (_, g0) = loss_grad(&p, &data.beta, 0.2, &mut g);
        let mut scratch = vec![0.0; width];
        let loss = |beta: &[f64], b: f64, scratch: &mut [f64]| loss_grad(&p, beta, b, scratch).0;
        let h = 1e-6;
        for j in 0..width {
            let (mut up, mut down) = (data.beta.clone(), data.beta.clone());
            up[j] += h;
            down[j] -= h;
            let fd = (loss(&up, 0.2, &mut scratch) - loss(&down, 0.2, &mut scratch)) / (2.0 * h);
            assert!((fd - g[j]).abs() <= 1e-5 * (1.0 + g[j].abs()), "coef {j}: {fd} vs {}", g[j]);
        }
        let fd =
            (loss(&data.beta, 0.2 + h, &mut scratch) - loss(&data.beta, 0.2 - h, &mut scratch)) / (2.0 * h);
        assert!((fd - g0).abs() <= 1e-5 * (1.0 + g0.abs()), "intercept: {fd} vs {g0}");
    }

    #[test]
    fn extreme_scores_stay_finite() {
        assert_eq!(softplus(-800.0), 0.0);
        assert_eq!(softplus(800.0), 800.0);
        assert!((softplus(0.0) - std::f64::consts::LN_2).abs() < 1e-15);
        assert_eq!(sigmoid(-800.0), 0.0);
        assert_eq!(sigmoid(800.0), 1.0);
        let x = [1.0f32];
        let p = Problem::dense(&x, 1, 1, &[0.0], None);
        let mut g = [0.0];
        let (loss, _) = loss_grad(&p, &[1000.0], 0.0, &mut g);
        assert!((loss - 1000.0).abs() < 1e-9 && (g[0] - 1.0).abs() < 1e-12);
    }
}
