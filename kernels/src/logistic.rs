//! The fused logistic objective: one pass over the design matrix computes scores, the stable
//! log-loss and the gradient together.

use rayon::prelude::*;

use crate::cuda::CudaError;
use crate::lanes::{self, LANES};

/// Rows per block. Fixed (not derived from the thread count) because the block partition decides
/// the order of floating-point sums, and results must not depend on the machine.
pub const BLOCK_ROWS: usize = 2048;

/// A binary classification problem over a dense row-major f32 matrix.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// `rows * cols` values, row after row.
    pub x: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns (features; the intercept is separate).
    pub cols: usize,
    /// Labels, 0.0 or 1.0.
    pub y: &'a [f32],
    /// Per-row weights, or `None` for all ones.
    pub weights: Option<&'a [f32]>,
}

impl Problem<'_> {
    /// Panics when the slices disagree with `rows` and `cols`: a caller bug, not an input error.
    pub(crate) fn check(&self) {
        assert_eq!(self.x.len(), self.rows * self.cols, "x has rows * cols values");
        assert_eq!(self.y.len(), self.rows, "one label per row");
        if let Some(w) = self.weights {
            assert_eq!(w.len(), self.rows, "one weight per row");
        }
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
trait RowOps {
    /// x · beta with f64 accumulation in eight lanes (lane k takes columns k, k+8, ...), then
    /// `((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7))`, then the leftover columns in order.
    fn dot(x: &[f32], beta: &[f64]) -> f64;
    /// `g += r · x`, widening x to f64.
    fn axpy(g: &mut [f64], r: f64, x: &[f32]);
}

struct Portable;

impl RowOps for Portable {
    #[inline(always)]
    fn dot(x: &[f32], beta: &[f64]) -> f64 {
        const W: usize = 8;
        let mut acc = [0f64; W];
        let xc = x.chunks_exact(W);
        let bc = beta.chunks_exact(W);
        let (xr, br) = (xc.remainder(), bc.remainder());
        for (xs, bs) in xc.zip(bc) {
            for k in 0..W {
                acc[k] += f64::from(xs[k]) * bs[k];
            }
        }
        let mut tail = 0.0;
        for (a, b) in xr.iter().zip(br) {
            tail += f64::from(*a) * b;
        }
        ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
    }

    #[inline(always)]
    fn axpy(g: &mut [f64], r: f64, x: &[f32]) {
        for (gj, xj) in g.iter_mut().zip(x) {
            *gj += r * f64::from(*xj);
        }
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl RowOps for Avx2 {
    #[inline(always)]
    fn dot(x: &[f32], beta: &[f64]) -> f64 {
        use std::arch::x86_64::*;
        let n = x.len().min(beta.len());
        let full = n / 8 * 8;
        // SAFETY: only called from functions compiled with AVX2 enabled, on a CPU that has it;
        // every load reads 4 or 8 values at an offset below `full <= len`.
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
            // Lanes (l0 + l4, l1 + l5, l2 + l6, l3 + l7), then pairs: the portable order.
            let s = _mm256_add_pd(lo, hi);
            let mut lanes = [0f64; 4];
            _mm256_storeu_pd(lanes.as_mut_ptr(), s);
            let mut tail = 0.0;
            for k in full..n {
                tail += f64::from(x[k]) * beta[k];
            }
            ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + tail
        }
    }

    #[inline(always)]
    fn axpy(g: &mut [f64], r: f64, x: &[f32]) {
        use std::arch::x86_64::*;
        let n = g.len().min(x.len());
        let full = n / 4 * 4;
        // SAFETY: as in `dot`; each access is at an offset below `full <= len`.
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

/// Scores `xᵢ·beta + intercept` of up to [`LANES`] consecutive rows starting at `first`; lanes
/// past the last row hold 0 and are ignored by callers.
#[inline(always)]
fn scores<O: RowOps>(
    x: &[f32],
    cols: usize,
    first: usize,
    n: usize,
    beta: &[f64],
    intercept: f64,
) -> [f64; LANES] {
    let mut z = [0f64; LANES];
    for (l, zl) in z.iter_mut().enumerate().take(n) {
        let i = first + l;
        *zl = O::dot(&x[i * cols..(i + 1) * cols], beta) + intercept;
    }
    z
}

/// One block of rows: its loss, intercept gradient, and coefficient gradient added into `g`.
/// Rows go [`LANES`] at a time so the transcendental functions run as vector code.
#[inline(always)]
fn block_body<O: RowOps>(
    p: &Problem<'_>,
    start: usize,
    end: usize,
    beta: &[f64],
    intercept: f64,
    g: &mut [f64],
) -> (f64, f64) {
    let cols = p.cols;
    let (mut loss, mut g0) = (0f64, 0f64);
    let mut i = start;
    while i < end {
        let n = LANES.min(end - i);
        let z = scores::<O>(p.x, cols, i, n, beta, intercept);
        let (softplus, sigmoid) = lanes::softplus_sigmoid(&z);
        for l in 0..n {
            let row = i + l;
            let y = f64::from(p.y[row]);
            let s = p.weights.map_or(1.0, |w| f64::from(w[row]));
            loss += s * (softplus[l] - y * z[l]);
            let r = s * (sigmoid[l] - y);
            g0 += r;
            O::axpy(g, r, &p.x[row * cols..(row + 1) * cols]);
        }
        i += n;
    }
    (loss, g0)
}

/// [`block_body`] compiled for AVX2. Without FMA on purpose: the results stay bitwise equal to
/// the baseline build's, so a model does not change with the machine it was trained on.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn block_avx2(
    p: &Problem<'_>,
    start: usize,
    end: usize,
    beta: &[f64],
    intercept: f64,
    g: &mut [f64],
) -> (f64, f64) {
    block_body::<Avx2>(p, start, end, beta, intercept, g)
}

/// [`block_body`] with the best instruction set this CPU has, chosen at run time so the binary
/// stays portable.
fn block(
    p: &Problem<'_>,
    start: usize,
    end: usize,
    beta: &[f64],
    intercept: f64,
    g: &mut [f64],
) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { block_avx2(p, start, end, beta, intercept, g) };
    }
    block_body::<Portable>(p, start, end, beta, intercept, g)
}

/// The weighted log loss Σ sᵢ·[log(1 + e^{zᵢ}) − yᵢ·zᵢ] with zᵢ = xᵢ·beta + intercept, and its
/// gradient: written to `grad` (length `cols`) for beta, returned for the intercept.
///
/// Returns `(loss, d loss / d intercept)`. Regularization is the caller's.
pub fn loss_grad(p: &Problem<'_>, beta: &[f64], intercept: f64, grad: &mut [f64]) -> (f64, f64) {
    p.check();
    assert_eq!(beta.len(), p.cols);
    assert_eq!(grad.len(), p.cols);
    let blocks = p.rows.div_ceil(BLOCK_ROWS);
    let partials: Vec<(f64, f64, Vec<f64>)> = (0..blocks)
        .into_par_iter()
        .map(|b| {
            let start = b * BLOCK_ROWS;
            let end = (start + BLOCK_ROWS).min(p.rows);
            let mut g = vec![0f64; p.cols];
            let (loss, g0) = block(p, start, end, beta, intercept, &mut g);
            (loss, g0, g)
        })
        .collect();
    grad.iter_mut().for_each(|g| *g = 0.0);
    let (mut loss, mut g0) = (0.0, 0.0);
    // Block order, not completion order: the sum is the same on 1 or 64 threads.
    for (l, b0, g) in partials {
        loss += l;
        g0 += b0;
        for (a, b) in grad.iter_mut().zip(g) {
            *a += b;
        }
    }
    (loss, g0)
}

/// The objective as the solver sees it, whichever device holds the data: the CPU ([`Cpu`]) or
/// a GPU ([`crate::cuda::logistic::Objective`]). Same contract as [`loss_grad`]; only a device
/// can fail.
pub trait LossGrad {
    /// `(loss, d loss / d intercept)`, with the gradient for beta written to `grad`.
    fn loss_grad(&mut self, beta: &[f64], intercept: f64, grad: &mut [f64]) -> Result<(f64, f64), CudaError>;
}

/// [`loss_grad`] on this machine's cores.
#[derive(Debug, Clone, Copy)]
pub struct Cpu<'a>(pub Problem<'a>);

impl LossGrad for Cpu<'_> {
    fn loss_grad(&mut self, beta: &[f64], intercept: f64, grad: &mut [f64]) -> Result<(f64, f64), CudaError> {
        Ok(loss_grad(&self.0, beta, intercept, grad))
    }
}

/// The textbook computation of [`loss_grad`]: one row at a time, no blocks, no lanes. Slow; the
/// reference that tests compare the fast path with.
pub fn loss_grad_reference(p: &Problem<'_>, beta: &[f64], intercept: f64, grad: &mut [f64]) -> (f64, f64) {
    p.check();
    grad.iter_mut().for_each(|g| *g = 0.0);
    let (mut loss, mut g0) = (0.0, 0.0);
    for i in 0..p.rows {
        let row = &p.x[i * p.cols..(i + 1) * p.cols];
        let z: f64 = row.iter().zip(beta).map(|(x, b)| f64::from(*x) * b).sum::<f64>() + intercept;
        let y = f64::from(p.y[i]);
        let s = p.weights.map_or(1.0, |w| f64::from(w[i]));
        let prob = 1.0 / (1.0 + (-z).exp());
        loss += s * (if z > 30.0 { z - y * z + (-z).exp() } else { (1.0 + z.exp()).ln() - y * z });
        g0 += s * (prob - y);
        for (g, x) in grad.iter_mut().zip(row) {
            *g += s * (prob - y) * f64::from(*x);
        }
    }
    (loss, g0)
}

#[inline(always)]
fn proba_body<O: RowOps>(out: &mut [f64], x: &[f32], cols: usize, beta: &[f64], intercept: f64) {
    let mut i = 0;
    while i < out.len() {
        let n = LANES.min(out.len() - i);
        let p = lanes::sigmoid(&scores::<O>(x, cols, i, n, beta, intercept));
        out[i..i + n].copy_from_slice(&p[..n]);
        i += n;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn proba_avx2(out: &mut [f64], x: &[f32], cols: usize, beta: &[f64], intercept: f64) {
    proba_body::<Avx2>(out, x, cols, beta, intercept)
}

/// Probabilities σ(xᵢ·beta + intercept) for every row, written to `out`. Each row's result
/// depends only on that row, so scoring the same row anywhere gives the same bits.
pub fn predict_proba(x: &[f32], cols: usize, beta: &[f64], intercept: f64, out: &mut [f64]) {
    assert_eq!(beta.len(), cols);
    assert_eq!(x.len(), out.len() * cols);
    if cols == 0 {
        let p = lanes::sigmoid(&[intercept; LANES])[0];
        out.iter_mut().for_each(|o| *o = p);
        return;
    }
    out.par_chunks_mut(BLOCK_ROWS).zip(x.par_chunks(BLOCK_ROWS * cols)).for_each(|(o, xs)| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { proba_avx2(o, xs, cols, beta, intercept) };
        }
        proba_body::<Portable>(o, xs, cols, beta, intercept)
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A seeded problem with rows not a multiple of the block size or the lane width.
    fn problem(rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f64>) {
        let mut s = seed;
        let mut next = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let x: Vec<f32> = (0..rows * cols).map(|_| (3.0 * next()) as f32).collect();
        let y: Vec<f32> = (0..rows).map(|_| if next() > 0.3 { 1.0 } else { 0.0 }).collect();
        let w: Vec<f32> = (0..rows).map(|_| (1.0 + next()) as f32).collect();
        let beta: Vec<f64> = (0..cols).map(|_| next()).collect();
        (x, y, w, beta)
    }

    #[test]
    fn fast_path_agrees_with_the_reference() {
        for (rows, cols) in [(1, 1), (7, 3), (5000, 13), (BLOCK_ROWS * 2 + 1, 16)] {
            let (x, y, w, beta) = problem(rows, cols, rows as u64);
            for weights in [None, Some(w.as_slice())] {
                let p = Problem { x: &x, rows, cols, y: &y, weights };
                let (mut g1, mut g2) = (vec![0.0; cols], vec![0.0; cols]);
                let (l1, b1) = loss_grad(&p, &beta, 0.3, &mut g1);
                let (l2, b2) = loss_grad_reference(&p, &beta, 0.3, &mut g2);
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-10 * (1.0 + a.abs().max(b.abs()));
                assert!(close(l1, l2) && close(b1, b2), "{rows}x{cols}: {l1} {l2} {b1} {b2}");
                for (a, b) in g1.iter().zip(&g2) {
                    assert!(close(*a, *b), "{rows}x{cols}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn extreme_scores_agree_with_the_reference() {
        // Coefficients large enough that |z| reaches the hundreds: saturated rows on both sides.
        let (rows, cols) = (3000, 9);
        let (x, y, w, beta) = problem(rows, cols, 11);
        let beta: Vec<f64> = beta.iter().map(|b| b * 60.0).collect();
        let p = Problem { x: &x, rows, cols, y: &y, weights: Some(&w) };
        let (mut g1, mut g2) = (vec![0.0; cols], vec![0.0; cols]);
        let (l1, b1) = loss_grad(&p, &beta, -5.0, &mut g1);
        let (l2, b2) = loss_grad_reference(&p, &beta, -5.0, &mut g2);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()));
        assert!(close(l1, l2) && close(b1, b2), "{l1} {l2} {b1} {b2}");
        assert!(g1.iter().zip(&g2).all(|(a, b)| close(*a, *b)), "{g1:?} vs {g2:?}");
    }

    #[test]
    fn vector_and_baseline_builds_give_the_same_bits() {
        let (rows, cols) = (1000, 37);
        let (x, y, w, beta) = problem(rows, cols, 5);
        let p = Problem { x: &x, rows, cols, y: &y, weights: Some(&w) };
        let (mut g1, mut g2) = (vec![0.0; cols], vec![0.0; cols]);
        // `block` dispatches to the widest instruction set here; `block_body` is the baseline.
        let a = block(&p, 3, rows, &beta, 0.4, &mut g1);
        let b = block_body::<Portable>(&p, 3, rows, &beta, 0.4, &mut g2);
        assert_eq!((a.0.to_bits(), a.1.to_bits()), (b.0.to_bits(), b.1.to_bits()));
        assert_eq!(g1, g2);
        let mut o1 = vec![0.0; rows];
        let mut o2 = vec![0.0; rows];
        predict_proba(&x, cols, &beta, 0.4, &mut o1);
        proba_body::<Portable>(&mut o2, &x, cols, &beta, 0.4);
        assert_eq!(o1, o2);
    }

    #[test]
    fn results_are_bitwise_identical_across_thread_counts() {
        let (rows, cols) = (BLOCK_ROWS * 5 + 17, 21);
        let (x, y, w, beta) = problem(rows, cols, 9);
        let p = Problem { x: &x, rows, cols, y: &y, weights: Some(&w) };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut g = vec![0.0; cols];
                let (l, b) = loss_grad(&p, &beta, -0.2, &mut g);
                let mut out = vec![0.0; rows];
                predict_proba(&x, cols, &beta, -0.2, &mut out);
                (l.to_bits(), b.to_bits(), g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), out)
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(7));
    }

    #[test]
    fn gradient_matches_central_finite_differences() {
        let (rows, cols) = (300, 5);
        let (x, y, w, beta) = problem(rows, cols, 3);
        let p = Problem { x: &x, rows, cols, y: &y, weights: Some(&w) };
        let mut g = vec![0.0; cols];
        let (_, g0) = loss_grad(&p, &beta, 0.2, &mut g);
        let mut scratch = vec![0.0; cols];
        let loss = |beta: &[f64], b: f64, scratch: &mut [f64]| loss_grad(&p, beta, b, scratch).0;
        let h = 1e-6;
        for j in 0..cols {
            let (mut up, mut down) = (beta.clone(), beta.clone());
            up[j] += h;
            down[j] -= h;
            let fd = (loss(&up, 0.2, &mut scratch) - loss(&down, 0.2, &mut scratch)) / (2.0 * h);
            assert!((fd - g[j]).abs() <= 1e-5 * (1.0 + g[j].abs()), "coef {j}: {fd} vs {}", g[j]);
        }
        let fd = (loss(&beta, 0.2 + h, &mut scratch) - loss(&beta, 0.2 - h, &mut scratch)) / (2.0 * h);
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
        let p = Problem { x: &x, rows: 1, cols: 1, y: &[0.0], weights: None };
        let mut g = [0.0];
        let (loss, _) = loss_grad(&p, &[1000.0], 0.0, &mut g);
        assert!((loss - 1000.0).abs() < 1e-9 && (g[0] - 1.0).abs() < 1e-12);
    }
}
