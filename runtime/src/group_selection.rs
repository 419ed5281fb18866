//! Work in progress for issue 18 (not wired into `partition` yet): choosing the strength of the
//! pull toward the generic model from the training rows, and keeping a group's own model only
//! where it beats the generic model on held-out rows by more than noise.
//!
//! Method: each eligible group's rows are dealt into K stratified folds (seeded per group). For
//! every strength of a log-spaced grid, the group model is fitted on K-1 folds and scores the
//! held-out fold, so every train row gets one held-out loss per strength; the generic model's
//! loss on the same rows is the reference. The strength is the one with the lowest held-out
//! log loss pooled over all groups, each group scored by whichever of its own model and the
//! generic model it would keep (so strength and selection are chosen together). A group keeps
//! its model when the mean per-row gain over the generic model exceeds one standard error of
//! that mean (the one-standard-error rule: a gain smaller than its own noise is not evidence).

use crate::features::Design;
use crate::logistic::{self, LogisticModel};
use crate::random;
use crate::spec::LogisticSpec;

/// Folds per group.
pub const FOLDS: usize = 5;

/// The fold of each of a group's rows: positives and negatives each dealt round-robin in a
/// seeded order, so every fold holds about the same share of both.
pub fn folds(y: &[f32], k: usize, base: u64) -> Vec<u8> {
    let mut out = vec![0u8; y.len()];
    for positive in [true, false] {
        let rows: Vec<usize> = (0..y.len()).filter(|&i| (y[i] == 1.0) == positive).collect();
        let order = random::permutation(rows.len(), base ^ u64::from(positive));
        for (dealt, &o) in order.iter().enumerate() {
            out[rows[o as usize]] = (dealt % k) as u8;
        }
    }
    out
}

/// Each row's log loss for probabilities `p`, clipped as the run metrics clip it.
fn losses(y: &[f32], p: &[f64]) -> Vec<f64> {
    crate::metrics::paired::log_losses(y, p)
}

/// A group's held-out losses: per strength of the grid, one loss per row (the model fitted
/// without the row's fold), and the generic model's loss on each row.
#[derive(Debug, Clone)]
pub struct HeldOut {
    /// `[grid][row]`.
    pub group: Vec<Vec<f64>>,
    /// `[row]`.
    pub generic: Vec<f64>,
}

/// Cross-validates one group (its gathered rows `x`, `y`) at every strength of `grid`, the
/// penalty pulling toward `anchor` (the generic model) when given.
pub fn cross_validate(
    x: &Design,
    y: &[f32],
    folds: &[u8],
    grid: &[f64],
    hyper: &LogisticSpec,
    generic: &LogisticModel,
    anchor: Option<&LogisticModel>,
) -> HeldOut {
    let n = y.len();
    let generic_losses = losses(y, &generic.predict_proba(x));
    let k = folds.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut group = vec![vec![0.0; n]; grid.len()];
    for fold in 0..k {
        let train: Vec<usize> = (0..n).filter(|&i| folds[i] as usize != fold).collect();
        let test: Vec<usize> = (0..n).filter(|&i| folds[i] as usize == fold).collect();
        let (tx, vx) = (x.gather(&train), x.gather(&test));
        let ty: Vec<f32> = train.iter().map(|&i| y[i]).collect();
        let vy: Vec<f32> = test.iter().map(|&i| y[i]).collect();
        for (s, &l2) in grid.iter().enumerate() {
            let spec = LogisticSpec { l2, ..hyper.clone() };
            let (model, _) = logistic::fit_anchored(&tx, &ty, None, &spec, anchor);
            for (&i, loss) in test.iter().zip(losses(&vy, &model.predict_proba(&vx))) {
                group[s][i] = loss;
            }
        }
    }
    HeldOut { group, generic: generic_losses }
}

/// The one-standard-error rule on per-row gains (generic loss minus group loss): the mean gain,
/// its standard error, and whether the gain exceeds it.
pub fn keep(generic: &[f64], group: &[f64]) -> (bool, f64, f64) {
    let n = generic.len() as f64;
    let gains: Vec<f64> = generic.iter().zip(group).map(|(g, o)| g - o).collect();
    let mean = gains.iter().sum::<f64>() / n;
    let var = gains.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let se = (var / n).sqrt();
    (mean > se, mean, se)
}

/// The strength whose pooled held-out loss is lowest, each group counted with the model it
/// would keep at that strength; returns the grid index and the pooled mean loss per strength.
pub fn choose(held_out: &[HeldOut], grid_len: usize) -> (usize, Vec<f64>) {
    let rows: usize = held_out.iter().map(|h| h.generic.len()).sum();
    let pooled: Vec<f64> = (0..grid_len)
        .map(|s| {
            let total: f64 = held_out
                .iter()
                .map(|h| {
                    if keep(&h.generic, &h.group[s]).0 {
                        h.group[s].iter().sum::<f64>()
                    } else {
                        h.generic.iter().sum()
                    }
                })
                .sum();
            total / rows.max(1) as f64
        })
        .collect();
    let best = (0..grid_len).min_by(|&a, &b| pooled[a].total_cmp(&pooled[b])).unwrap_or(0);
    (best, pooled)
}

/// A log-spaced grid of `points` strengths from `low` to `high`.
pub fn grid(low: f64, high: f64, points: usize) -> Vec<f64> {
    let (a, b) = (low.ln(), high.ln());
    (0..points).map(|i| (a + (b - a) * i as f64 / (points - 1).max(1) as f64).exp()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Matrix;

    /// A group of `n` rows with two features whose labels follow `w` (the generic model's
    /// weights are `[1, -1]`).
    fn group(n: usize, w: [f64; 2], seed: u64) -> (Design, Vec<f32>) {
        let base = random::base(seed, random::Stream::Init(9));
        let mut data = Vec::with_capacity(2 * n);
        let mut y = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let (a, b) = (random::normal(base, 3 * i), random::normal(base, 3 * i + 1));
            let p = 1.0 / (1.0 + (-(w[0] * a + w[1] * b - 1.0)).exp());
            y.push(if random::unit(base, 3 * i + 2) < p { 1.0 } else { 0.0 });
            data.extend([a as f32, b as f32]);
        }
        (Design { numeric: Matrix { data, rows: n, cols: 2 }, codes: Vec::new(), slots: Vec::new() }, y)
    }

    #[test]
    fn folds_are_stratified_and_seeded() {
        let (_, y) = group(503, [1.0, -1.0], 1);
        let f = folds(&y, 5, 7);
        assert_eq!(f, folds(&y, 5, 7));
        for fold in 0..5u8 {
            let pos = (0..y.len()).filter(|&i| f[i] == fold && y[i] == 1.0).count() as f64;
            let all_pos = y.iter().filter(|v| **v == 1.0).count() as f64;
            assert!((pos - all_pos / 5.0).abs() <= 1.0, "fold {fold}: {pos} of {all_pos}");
        }
    }

    #[test]
    fn a_group_like_the_generic_model_is_dropped_and_a_flipped_one_kept() {
        let generic = LogisticModel { coef: vec![1.0, -1.0], intercept: -1.0 };
        let hyper = LogisticSpec { l2: 1.0, ..LogisticSpec::default() };
        let grid = grid(0.1, 100.0, 4);
        let (same_x, same_y) = group(400, [1.0, -1.0], 2);
        let (flip_x, flip_y) = group(400, [-1.0, 1.0], 3);
        let cv = |x: &Design, y: &[f32]| {
            cross_validate(x, y, &folds(y, FOLDS, 11), &grid, &hyper, &generic, Some(&generic))
        };
        let (same, flip) = (cv(&same_x, &same_y), cv(&flip_x, &flip_y));
        for (l2, losses) in grid.iter().zip(&same.group) {
            assert!(!keep(&same.generic, losses).0, "strength {l2}");
        }
        assert!(keep(&flip.generic, &flip.group[0]).0);
        let (best, pooled) = choose(&[same, flip], grid.len());
        assert!(pooled.iter().all(|p| p.is_finite()));
        assert!(grid[best] < 100.0, "a weak pull lets the flipped group learn: {pooled:?}");
    }
}
