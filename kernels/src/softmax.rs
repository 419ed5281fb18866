//! The fused multinomial (softmax) objective: one pass over the design computes each row's K
//! scores, a stable log-softmax, the weighted cross-entropy and the gradient for every class.
//!
//! The design is the logistic kernel's ([`Design`]: a dense f32 block plus one code per
//! categorical column). Coefficients are class-major, as scikit-learn's `coef_` is: class c's
//! [`Design::width`] coefficients are `coef[c·width..(c+1)·width]`, in the one-hot layout, and
//! each class has its own intercept. Each class's score is computed exactly as the binary
//! kernel computes a score, so the dense and categorical parts cost what K binary passes would
//! cost in arithmetic, but the row is read from memory once for all classes.
//!
//! Determinism follows the binary kernel: fixed [`BLOCK_ROWS`] blocks summed in block order,
//! and the categorical gradient scattered from stored row residuals in row order, one task per
//! (class, categorical column); the exponentials and logarithms are [`lanes`] functions, which
//! give the same bits on every instruction set.

use rayon::prelude::*;

use crate::cuda::CudaError;
use crate::lanes::{self, LANES};
use crate::logistic::{self, BLOCK_ROWS, Design, Layout, Portable, RowOps, score};

/// Row blocks whose partial gradients are held at once (see [`loss_grad_with`]).
const GROUP_BLOCKS: usize = 64;

/// A multiclass problem: a design with class labels.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// The rows.
    pub design: Design<'a>,
    /// Classes, K >= 2.
    pub classes: usize,
    /// Each row's class index in `0..classes`, as an f32 (exact below 2^24).
    pub y: &'a [f32],
    /// Per-row weights, or `None` for all ones.
    pub weights: Option<&'a [f32]>,
}

impl Problem<'_> {
    /// Coefficients: `classes` × [`Design::width`].
    pub fn coefficients(&self) -> usize {
        self.classes * self.design.width()
    }

    /// The binary kernel's view of the same rows (for what does not depend on the labels).
    fn binary(&self) -> logistic::Problem<'_> {
        logistic::Problem { design: self.design, y: self.y, weights: self.weights }
    }

    /// Panics when the slices disagree with the shape: a caller bug, not an input error.
    pub(crate) fn check(&self) {
        self.design.check();
        assert!(self.classes >= 2, "at least two classes");
        assert_eq!(self.y.len(), self.design.rows, "one label per row");
        assert!(self.y.iter().all(|&c| c >= 0.0 && (c as usize) < self.classes), "labels are class indices");
        if let Some(w) = self.weights {
            assert_eq!(w.len(), self.design.rows, "one weight per row");
        }
    }
}

/// Turns each lane's class scores `z[c][l]` into probabilities in place and returns each lane's
/// log-sum-exp minus its largest score: `ln Σ_c e^(z_c − max)`, so that
/// `log p_c = (z_c − max) − returned`. The largest score is written to `max`.
#[inline(always)]
fn softmax_lanes(z: &mut [[f64; LANES]], max: &mut [f64; LANES]) -> [f64; LANES] {
    *max = z[0];
    for zc in &z[1..] {
        for l in 0..LANES {
            if zc[l] > max[l] {
                max[l] = zc[l];
            }
        }
    }
    let mut sum = [0f64; LANES];
    for zc in z.iter_mut() {
        let mut shifted = [0f64; LANES];
        for l in 0..LANES {
            shifted[l] = zc[l] - max[l];
        }
        // The shifted scores are <= 0, so e^(-|x|) is e^x.
        *zc = lanes::exp_neg_abs(&shifted);
        for l in 0..LANES {
            sum[l] += zc[l];
        }
    }
    for zc in z.iter_mut() {
        for l in 0..LANES {
            zc[l] /= sum[l];
        }
    }
    lanes::ln_at_least_one(&sum)
}

/// Scores of rows `first..first + n` for every class, into `z[c][l]`.
#[inline(always)]
fn class_scores<O: RowOps>(
    d: &Design<'_>,
    layout: &Layout,
    first: usize,
    n: usize,
    coef: &[f64],
    intercept: &[f64],
    z: &mut [[f64; LANES]],
) {
    let width = d.width();
    for (c, zc) in z.iter_mut().enumerate() {
        let beta = &coef[c * width..(c + 1) * width];
        *zc = [0.0; LANES];
        for (l, v) in zc.iter_mut().enumerate().take(n) {
            *v = score::<O>(d, layout, first + l, beta, intercept[c]);
        }
    }
}

/// One block of rows: its loss, the dense block's gradient added into `g` (class-major,
/// `classes × cols`), the intercepts' into `gb`, and each row's K residuals written to
/// `residual` when it is not empty.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_body<O: RowOps>(
    p: &Problem<'_>,
    layout: &Layout,
    start: usize,
    end: usize,
    coef: &[f64],
    intercept: &[f64],
    g: &mut [f64],
    gb: &mut [f64],
    residual: &mut [f64],
) -> f64 {
    let (k, cols) = (p.classes, p.design.cols);
    let mut z = vec![[0f64; LANES]; k];
    let mut max = [0f64; LANES];
    let mut loss = 0.0;
    let mut i = start;
    while i < end {
        let n = LANES.min(end - i);
        class_scores::<O>(&p.design, layout, i, n, coef, intercept, &mut z);
        let mut true_score = [0f64; LANES];
        for (l, t) in true_score.iter_mut().enumerate().take(n) {
            *t = z[p.y[i + l] as usize][l];
        }
        let log_sum = softmax_lanes(&mut z, &mut max);
        for l in 0..n {
            let row = i + l;
            let y = p.y[row] as usize;
            let s = p.weights.map_or(1.0, |w| f64::from(w[row]));
            loss += s * (log_sum[l] - (true_score[l] - max[l]));
            let x = &p.design.x[row * cols..(row + 1) * cols];
            for c in 0..k {
                let r = s * (z[c][l] - if c == y { 1.0 } else { 0.0 });
                gb[c] += r;
                O::axpy(&mut g[c * cols..(c + 1) * cols], r, x);
                if !residual.is_empty() {
                    residual[(row - start) * k + c] = r;
                }
            }
        }
        i += n;
    }
    loss
}

/// [`block_body`] compiled for AVX2 (without FMA, as the binary kernel, for the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn block_avx2(
    p: &Problem<'_>,
    layout: &Layout,
    start: usize,
    end: usize,
    coef: &[f64],
    intercept: &[f64],
    g: &mut [f64],
    gb: &mut [f64],
    residual: &mut [f64],
) -> f64 {
    block_body::<logistic::Avx2>(p, layout, start, end, coef, intercept, g, gb, residual)
}

#[allow(clippy::too_many_arguments)]
fn block(
    p: &Problem<'_>,
    layout: &Layout,
    start: usize,
    end: usize,
    coef: &[f64],
    intercept: &[f64],
    g: &mut [f64],
    gb: &mut [f64],
    residual: &mut [f64],
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { block_avx2(p, layout, start, end, coef, intercept, g, gb, residual) };
    }
    block_body::<Portable>(p, layout, start, end, coef, intercept, g, gb, residual)
}

/// The weighted cross-entropy Σᵢ sᵢ·(−log softmax(zᵢ)_{yᵢ}) with z_{i,c} = xᵢ·coef_c +
/// intercept_c, and its gradient: written to `grad` (class-major, like `coef`) and `grad_b`
/// (one per class). Regularization is the caller's.
pub fn loss_grad(
    p: &Problem<'_>,
    coef: &[f64],
    intercept: &[f64],
    grad: &mut [f64],
    grad_b: &mut [f64],
) -> f64 {
    loss_grad_with(p, coef, intercept, grad, grad_b, &mut Vec::new())
}

/// [`loss_grad`] with the row residuals kept in `residual` (reused between passes).
pub fn loss_grad_with(
    p: &Problem<'_>,
    coef: &[f64],
    intercept: &[f64],
    grad: &mut [f64],
    grad_b: &mut [f64],
    residual: &mut Vec<f64>,
) -> f64 {
    p.check();
    let (k, cols, width) = (p.classes, p.design.cols, p.design.width());
    assert_eq!(coef.len(), k * width);
    assert_eq!(grad.len(), k * width);
    assert_eq!((intercept.len(), grad_b.len()), (k, k));
    let layout = Layout::new(&p.design);
    let coded = !p.design.slots.is_empty();
    residual.resize(if coded { p.design.rows * k } else { 0 }, 0.0);
    let run = |b: usize, res: &mut [f64]| {
        let start = b * BLOCK_ROWS;
        let end = (start + BLOCK_ROWS).min(p.design.rows);
        let (mut g, mut gb) = (vec![0f64; k * cols], vec![0f64; k]);
        let loss = block(p, &layout, start, end, coef, intercept, &mut g, &mut gb, res);
        (loss, g, gb)
    };
    grad.iter_mut().for_each(|g| *g = 0.0);
    grad_b.iter_mut().for_each(|g| *g = 0.0);
    let mut loss = 0.0;
    // Blocks are run GROUP_BLOCKS at a time, so that at most that many K × cols partial
    // gradients exist at once (they would otherwise grow with the rows for wide designs); they
    // are added in block order, not completion order, so the sum is the same on 1 or 64 threads.
    let blocks = p.design.rows.div_ceil(BLOCK_ROWS);
    for first in (0..blocks).step_by(GROUP_BLOCKS) {
        let last = (first + GROUP_BLOCKS).min(blocks);
        let partials: Vec<(f64, Vec<f64>, Vec<f64>)> = if coded {
            let span = first * BLOCK_ROWS * k..(last * BLOCK_ROWS * k).min(residual.len());
            residual[span]
                .par_chunks_mut(BLOCK_ROWS * k)
                .enumerate()
                .map(|(b, res)| run(first + b, res))
                .collect()
        } else {
            (first..last).into_par_iter().map(|b| run(b, &mut [])).collect()
        };
        for (l, g, gb) in partials {
            loss += l;
            for c in 0..k {
                for (a, b) in grad[c * width..c * width + cols].iter_mut().zip(&g[c * cols..(c + 1) * cols]) {
                    *a += b;
                }
                grad_b[c] += gb[c];
            }
        }
    }
    if coded {
        scatter_class_slots(&p.design, k, residual, grad);
    }
    loss
}

/// Adds the rows × `classes` residuals into every class's categorical slots of `grad`
/// (class-major), in row order: one task per class and column, so the sums do not depend on the
/// thread count. The CPU and GPU objectives both finish their gradient with it.
pub(crate) fn scatter_class_slots(design: &Design<'_>, classes: usize, residual: &[f64], grad: &mut [f64]) {
    grad.par_chunks_mut(design.width()).enumerate().for_each(|(c, gc)| {
        logistic::scatter_slots(design, gc, &|i| residual[i * classes + c]);
    });
}

/// The diagonal of Σᵢ sᵢ·x̃ᵢx̃ᵢᵀ over the one-hot rows (the same for every class), and Σᵢ sᵢ;
/// see [`logistic::second_moments`].
pub fn second_moments(p: &Problem<'_>, out: &mut [f64]) -> f64 {
    logistic::second_moments(&p.binary(), out)
}

/// The objective as the solver sees it, whichever device holds the data: the CPU ([`Cpu`]) or a
/// GPU ([`crate::cuda::softmax::Objective`]). Same contract as [`loss_grad`]; only a device can
/// fail.
pub trait SoftmaxLossGrad {
    /// The loss, with the gradient written to `grad` (class-major) and `grad_b`.
    fn loss_grad(
        &mut self,
        coef: &[f64],
        intercept: &[f64],
        grad: &mut [f64],
        grad_b: &mut [f64],
    ) -> Result<f64, CudaError>;
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

impl SoftmaxLossGrad for Cpu<'_> {
    fn loss_grad(
        &mut self,
        coef: &[f64],
        intercept: &[f64],
        grad: &mut [f64],
        grad_b: &mut [f64],
    ) -> Result<f64, CudaError> {
        Ok(loss_grad_with(&self.problem, coef, intercept, grad, grad_b, &mut self.residual))
    }
}

/// The textbook computation of [`loss_grad`]: one dense one-hot row at a time, libm's exp and
/// ln, no blocks, no lanes. Slow; the reference that tests compare the fast path with.
pub fn loss_grad_reference(
    p: &Problem<'_>,
    coef: &[f64],
    intercept: &[f64],
    grad: &mut [f64],
    grad_b: &mut [f64],
) -> f64 {
    p.check();
    let (k, width) = (p.classes, p.design.width());
    grad.iter_mut().for_each(|g| *g = 0.0);
    grad_b.iter_mut().for_each(|g| *g = 0.0);
    let mut loss = 0.0;
    for i in 0..p.design.rows {
        let row = logistic::one_hot_row(&p.design, i);
        let z: Vec<f64> = (0..k)
            .map(|c| {
                row.iter().zip(&coef[c * width..(c + 1) * width]).map(|(x, b)| x * b).sum::<f64>()
                    + intercept[c]
            })
            .collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let y = p.y[i] as usize;
        let s = p.weights.map_or(1.0, |w| f64::from(w[i]));
        loss += s * (lse - z[y]);
        for c in 0..k {
            let r = s * ((z[c] - lse).exp() - if c == y { 1.0 } else { 0.0 });
            grad_b[c] += r;
            for (g, x) in grad[c * width..(c + 1) * width].iter_mut().zip(&row) {
                *g += r * x;
            }
        }
    }
    loss
}

#[inline(always)]
fn proba_body<O: RowOps>(
    out: &mut [f64],
    d: &Design<'_>,
    layout: &Layout,
    first: usize,
    coef: &[f64],
    intercept: &[f64],
) {
    let k = intercept.len();
    let rows = out.len() / k;
    let mut z = vec![[0f64; LANES]; k];
    let mut max = [0f64; LANES];
    let mut i = 0;
    while i < rows {
        let n = LANES.min(rows - i);
        class_scores::<O>(d, layout, first + i, n, coef, intercept, &mut z);
        softmax_lanes(&mut z, &mut max);
        for l in 0..n {
            for c in 0..k {
                out[(i + l) * k + c] = z[c][l];
            }
        }
        i += n;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn proba_avx2(
    out: &mut [f64],
    d: &Design<'_>,
    layout: &Layout,
    first: usize,
    coef: &[f64],
    intercept: &[f64],
) {
    proba_body::<logistic::Avx2>(out, d, layout, first, coef, intercept)
}

/// Class probabilities softmax(xᵢ·coef_c + intercept_c) of every row of `d`, written row after
/// row to `out` (`rows × classes`, classes = `intercept.len()`). Each row's result depends only
/// on that row, so scoring the same row anywhere gives the same bits.
pub fn predict_proba(d: &Design<'_>, coef: &[f64], intercept: &[f64], out: &mut [f64]) {
    d.check();
    let k = intercept.len();
    assert!(k >= 2);
    assert_eq!(coef.len(), k * d.width());
    assert_eq!(out.len(), d.rows * k);
    let layout = Layout::new(d);
    out.par_chunks_mut(BLOCK_ROWS * k).enumerate().for_each(|(b, o)| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { proba_avx2(o, d, &layout, b * BLOCK_ROWS, coef, intercept) };
        }
        proba_body::<Portable>(o, d, &layout, b * BLOCK_ROWS, coef, intercept)
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A seeded problem: a dense block, codes, class labels, weights and coefficients.
    struct Data {
        x: Vec<f32>,
        codes: Vec<u32>,
        slots: Vec<usize>,
        y: Vec<f32>,
        w: Vec<f32>,
        coef: Vec<f64>,
        intercept: Vec<f64>,
        rows: usize,
        cols: usize,
        classes: usize,
    }

    impl Data {
        fn new(rows: usize, cols: usize, slots: &[usize], classes: usize, seed: u64) -> Data {
            let mut s = seed;
            let mut next = move || {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            };
            let x: Vec<f32> = (0..rows * cols).map(|_| (3.0 * next()) as f32).collect();
            let codes: Vec<u32> = (0..rows * slots.len())
                .map(|k| {
                    let n = slots[k % slots.len()] as f64;
                    ((next() * 0.5 + 0.5).powi(3) * n).min(n - 1.0) as u32
                })
                .collect();
            let y: Vec<f32> = (0..rows)
                .map(|_| (((next() * 0.5 + 0.5) * classes as f64) as usize).min(classes - 1) as f32)
                .collect();
            let w: Vec<f32> = (0..rows).map(|_| (1.0 + next()) as f32).collect();
            let width = cols + slots.iter().sum::<usize>();
            let coef: Vec<f64> = (0..classes * width).map(|_| next()).collect();
            let intercept: Vec<f64> = (0..classes).map(|_| next()).collect();
            Data { x, codes, slots: slots.to_vec(), y, w, coef, intercept, rows, cols, classes }
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
                classes: self.classes,
                y: &self.y,
                weights: weighted.then_some(&self.w[..]),
            }
        }
    }

    const SHAPES: [(usize, usize, &[usize], usize); 6] = [
        (1, 1, &[], 3),
        (7, 3, &[], 2),
        (5000, 13, &[], 10),
        (BLOCK_ROWS * 2 + 1, 16, &[], 4),
        (3001, 5, &[3, 300, 1], 5),
        (BLOCK_ROWS + 3, 0, &[40, 7], 3),
    ];

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn fast_path_agrees_with_the_reference() {
        for (rows, cols, slots, k) in SHAPES {
            let data = Data::new(rows, cols, slots, k, rows as u64);
            for weighted in [false, true] {
                let p = data.problem(weighted);
                let n = p.coefficients();
                let (mut g1, mut g2, mut b1, mut b2) =
                    (vec![0.0; n], vec![0.0; n], vec![0.0; k], vec![0.0; k]);
                let l1 = loss_grad(&p, &data.coef, &data.intercept, &mut g1, &mut b1);
                let l2 = loss_grad_reference(&p, &data.coef, &data.intercept, &mut g2, &mut b2);
                assert!(close(l1, l2, 1e-11), "{rows}x{cols}x{k}: loss {l1} vs {l2}");
                for (a, b) in g1.iter().chain(&b1).zip(g2.iter().chain(&b2)) {
                    assert!(close(*a, *b, 1e-10), "{rows}x{cols}x{k}: gradient {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn probabilities_are_the_softmax_of_the_scores_and_each_row_stands_alone() {
        let data = Data::new(BLOCK_ROWS + 11, 6, &[9], 4, 5);
        let p = data.problem(false);
        let mut out = vec![0.0; p.design.rows * 4];
        predict_proba(&p.design, &data.coef, &data.intercept, &mut out);
        let width = p.design.width();
        for i in [0, 7, BLOCK_ROWS + 10] {
            let row = logistic::one_hot_row(&p.design, i);
            let z: Vec<f64> = (0..4)
                .map(|c| {
                    row.iter().zip(&data.coef[c * width..]).map(|(x, b)| x * b).sum::<f64>()
                        + data.intercept[c]
                })
                .collect();
            let total: f64 = z.iter().map(|v| v.exp()).sum();
            for c in 0..4 {
                assert!(close(out[i * 4 + c], z[c].exp() / total, 1e-13), "row {i} class {c}");
            }
            assert!(close(out[i * 4..i * 4 + 4].iter().sum::<f64>(), 1.0, 1e-15));
            // Scored alone, the row gets the same bits.
            let one = Design {
                x: &data.x[i * 6..(i + 1) * 6],
                rows: 1,
                cols: 6,
                codes: &data.codes[i..i + 1],
                slots: &data.slots,
            };
            let mut alone = vec![0.0; 4];
            predict_proba(&one, &data.coef, &data.intercept, &mut alone);
            assert_eq!(alone, out[i * 4..i * 4 + 4]);
        }
    }

    #[test]
    fn vector_and_baseline_builds_give_the_same_bits() {
        let data = Data::new(1000, 19, &[5, 30], 6, 13);
        let p = data.problem(true);
        let layout = Layout::new(&p.design);
        let (mut g1, mut g2) = (vec![0.0; 6 * 19], vec![0.0; 6 * 19]);
        let (mut b1, mut b2) = (vec![0.0; 6], vec![0.0; 6]);
        let (mut r1, mut r2) = (vec![0.0; 1000 * 6], vec![0.0; 1000 * 6]);
        let l1 = block(&p, &layout, 0, 1000, &data.coef, &data.intercept, &mut g1, &mut b1, &mut r1);
        let l2 = block_body::<Portable>(
            &p,
            &layout,
            0,
            1000,
            &data.coef,
            &data.intercept,
            &mut g2,
            &mut b2,
            &mut r2,
        );
        assert_eq!((l1.to_bits(), &g1, &b1, &r1), (l2.to_bits(), &g2, &b2, &r2));
        let (mut o1, mut o2) = (vec![0.0; 6000], vec![0.0; 6000]);
        predict_proba(&p.design, &data.coef, &data.intercept, &mut o1);
        proba_body::<Portable>(&mut o2, &p.design, &layout, 0, &data.coef, &data.intercept);
        assert_eq!(o1, o2);
    }

    #[test]
    fn results_are_bitwise_identical_across_thread_counts() {
        for slots in [&[][..], &[3, 500]] {
            let data = Data::new(BLOCK_ROWS * 5 + 17, 21, slots, 7, 9);
            let p = data.problem(true);
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut g = vec![0.0; p.coefficients()];
                    let mut gb = vec![0.0; 7];
                    let l = loss_grad(&p, &data.coef, &data.intercept, &mut g, &mut gb);
                    let mut out = vec![0.0; p.design.rows * 7];
                    predict_proba(&p.design, &data.coef, &data.intercept, &mut out);
                    let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    (l.to_bits(), bits(&g), bits(&gb), bits(&out))
                })
            };
            let one = run(1);
            assert_eq!(one, run(2));
            assert_eq!(one, run(7));
        }
    }

    #[test]
    fn gradient_matches_central_finite_differences() {
        let data = Data::new(300, 5, &[4], 3, 3);
        let p = data.problem(true);
        let n = p.coefficients();
        let (mut g, mut gb) = (vec![0.0; n], vec![0.0; 3]);
        loss_grad(&p, &data.coef, &data.intercept, &mut g, &mut gb);
        let (mut sg, mut sb) = (vec![0.0; n], vec![0.0; 3]);
        let mut loss = |coef: &[f64], b: &[f64]| loss_grad(&p, coef, b, &mut sg, &mut sb);
        let h = 1e-6;
        for j in 0..n {
            let (mut up, mut down) = (data.coef.clone(), data.coef.clone());
            up[j] += h;
            down[j] -= h;
            let fd = (loss(&up, &data.intercept) - loss(&down, &data.intercept)) / (2.0 * h);
            assert!((fd - g[j]).abs() <= 1e-5 * (1.0 + g[j].abs()), "coef {j}: {fd} vs {}", g[j]);
        }
        for c in 0..3 {
            let (mut up, mut down) = (data.intercept.clone(), data.intercept.clone());
            up[c] += h;
            down[c] -= h;
            let fd = (loss(&data.coef, &up) - loss(&data.coef, &down)) / (2.0 * h);
            assert!((fd - gb[c]).abs() <= 1e-5 * (1.0 + gb[c].abs()), "intercept {c}: {fd} vs {}", gb[c]);
        }
    }

    #[test]
    fn extreme_scores_stay_finite() {
        let x = [1.0f32];
        let p = Problem {
            design: Design { x: &x, rows: 1, cols: 1, codes: &[], slots: &[] },
            classes: 3,
            y: &[0.0],
            weights: None,
        };
        let (mut g, mut gb) = (vec![0.0; 3], vec![0.0; 3]);
        // Class 0 scores 2000 below class 2: the loss is 2000, the gradient finite.
        let loss = loss_grad(&p, &[-1000.0, 0.0, 1000.0], &[0.0; 3], &mut g, &mut gb);
        assert!((loss - 2000.0).abs() < 1e-9, "{loss}");
        assert!(g.iter().chain(&gb).all(|v| v.is_finite()));
        assert!((g[0] + 1.0).abs() < 1e-12 && (g[2] - 1.0).abs() < 1e-12, "{g:?}");
        let mut out = vec![0.0; 3];
        predict_proba(&p.design, &[-1000.0, 0.0, 1000.0], &[0.0; 3], &mut out);
        assert_eq!(out, [0.0, 0.0, 1.0]);
    }
}
