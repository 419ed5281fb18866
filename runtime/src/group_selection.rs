//! How strongly group models are pulled toward the generic model (`partition.l2: "auto"`), and
//! which groups keep their own model (`partition.select: "validation"`), both decided from the
//! train rows alone by K-fold cross-validation inside each group.
//!
//! Each eligible group's rows are dealt into [`FOLDS`] stratified folds, seeded by the run's seed
//! and the group's key (so a group's folds do not move when other groups come and go). A group
//! model fitted without a fold scores that fold, so every train row gets a held-out log loss;
//! the generic model's loss on the same row is the reference.
//!
//! Strength: on a seeded sample of groups (taken until [`STRENGTH_ROWS`] rows are in; all of
//! them when they hold fewer), every fold's group model is fitted along a log-spaced grid from
//! the strongest pull down, each strength warm-started from the previous one's solution, so the
//! path costs a few cold fits; the walk stops two strengths past the best (see [`walk`]). The
//! strength is the one with the lowest held-out log loss pooled over the sampled rows, every
//! group scored by its own model (ties go to the stronger pull). Cross-validation rather than an
//! empirical-Bayes estimate of the between-group variance because it needs no model of how groups
//! differ (a few groups with flipped signs and many identical ones is not one Gaussian), works
//! the same for one-hot columns, and measures what the user cares about: the log loss.
//!
//! Selection: every eligible group is refitted per fold at the chosen strength, each fold fitted
//! exactly as the group's own model was (from the generic model with global shrinkage), so no
//! fold starts from a solution that has seen it. A group keeps its own model when the mean
//! per-row gain over the generic model (generic loss minus group loss) exceeds one standard error
//! of that mean: a gain smaller than its own noise is not evidence. The generic model saw every
//! train row, the group's included, so the comparison is, if anything, tilted toward it. Losses
//! are per row, unweighted, like the run's metrics; sample weights weigh the fits only.

use crate::features::Design;
use crate::logistic::{self, LogisticModel};
use crate::partition::GroupKey;
use crate::random;
use crate::spec::LogisticSpec;

/// Folds per group.
pub const FOLDS: usize = 5;

/// The strength is chosen on a seeded sample of groups holding at least this many rows (all
/// groups when they hold fewer): one number needs far fewer rows than every group's selection.
pub const STRENGTH_ROWS: usize = 100_000;

/// The strengths tried by `"auto"`, strongest first: half-decades from 10⁴ down to 0.1. A
/// strength is a prior precision in rows' worth of log loss (the objective is the summed log
/// loss + (l2/2)·‖θ_g − θ_generic‖² over coefficients and intercept with global shrinkage, the
/// coefficients' ‖β_g‖² alone with none), so 10⁴ holds any realistic group at the generic model
/// (at zero with none) and 0.1 lets a group of a few hundred rows fit on its own.
pub fn strength_grid() -> Vec<f64> {
    (0..11).map(|k| 10f64.powf(4.0 - 0.5 * k as f64)).collect()
}

/// The seed of a group's folds: the run's seed and the group's key.
pub fn fold_seed(seed: u64, key: &GroupKey) -> u64 {
    // FNV-1a over the key's bytes; the kind is hashed too, so 7 and "7" differ.
    let (kind, bytes): (u8, Vec<u8>) = match key {
        GroupKey::Int(v) => (1, v.to_le_bytes().to_vec()),
        GroupKey::Str(s) => (2, s.as_bytes().to_vec()),
    };
    let hash = std::iter::once(kind)
        .chain(bytes)
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    random::base(seed, random::Stream::Folds(hash))
}

/// The fold of each of a group's rows: positives dealt round-robin in a seeded order, then the
/// negatives continuing from the next fold, so every fold holds about the same share of both and
/// no fold takes every row of a tiny group.
pub fn folds(y: &[f32], k: usize, base: u64) -> Vec<u8> {
    let mut out = vec![0u8; y.len()];
    let mut dealt = 0usize;
    for positive in [true, false] {
        let rows: Vec<usize> = (0..y.len()).filter(|&i| (y[i] == 1.0) == positive).collect();
        let order = random::permutation(rows.len(), base ^ u64::from(positive));
        for &o in &order {
            out[rows[o as usize]] = (dealt % k) as u8;
            dealt += 1;
        }
    }
    out
}

/// One group's gathered train rows and their folds.
#[derive(Debug, Clone)]
pub struct GroupRows {
    /// The design rows.
    pub x: Design,
    /// Labels.
    pub y: Vec<f32>,
    /// Sample weights.
    pub w: Option<Vec<f32>>,
    /// The fold of each row.
    pub folds: Vec<u8>,
}

/// Each row's held-out log loss at strength `l2`: per fold, the model fitted without the fold
/// (started from `starts[fold]`, default: the anchor, else the base rate) scores the fold; the
/// penalty pulls toward `anchor` when given, else toward zero. Also returns each fold's model:
/// the starts of the next strength along a path.
pub fn held_out(
    g: &GroupRows,
    l2: f64,
    hyper: &LogisticSpec,
    anchor: Option<&LogisticModel>,
    starts: &[Option<LogisticModel>],
) -> (Vec<f64>, Vec<Option<LogisticModel>>) {
    let n = g.y.len();
    // NaN, not 0 (a perfect score), for a row no fold scored; an eligible group has both classes,
    // which the dealing puts in different folds, so every fold's train rows are non-empty.
    let mut out = vec![f64::NAN; n];
    let mut models = vec![None; FOLDS];
    let spec = LogisticSpec { l2, ..hyper.clone() };
    for (fold, slot) in models.iter_mut().enumerate() {
        let (train, test): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| usize::from(g.folds[i]) != fold);
        if test.is_empty() || train.is_empty() {
            continue;
        }
        let (tx, vx) = (g.x.gather(&train), g.x.gather(&test));
        let ty: Vec<f32> = train.iter().map(|&i| g.y[i]).collect();
        let vy: Vec<f32> = test.iter().map(|&i| g.y[i]).collect();
        let tw: Option<Vec<f32>> = g.w.as_ref().map(|w| train.iter().map(|&i| w[i]).collect());
        let start = starts.get(fold).and_then(Option::as_ref).or(anchor);
        let (model, _) = logistic::fit_from(&tx, &ty, tw.as_deref(), &spec, anchor, start);
        let losses = crate::metrics::paired::log_losses(&vy, &model.predict_proba(&vx));
        for (&i, loss) in test.iter().zip(losses) {
            out[i] = loss;
        }
        *slot = Some(model);
    }
    (out, models)
}

/// The one-standard-error rule on one group's per-row gains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Whether the group keeps its own model.
    pub keep: bool,
    /// Mean per-row held-out log-loss gain of the group model over the generic model.
    pub gain: f64,
    /// Its standard error.
    pub se: f64,
}

/// Keeps the group model when the mean of `generic − group` per-row losses exceeds its standard
/// error.
pub fn verdict(generic: &[f64], group: &[f64]) -> Verdict {
    let n = generic.len() as f64;
    let gains = generic.iter().zip(group).map(|(g, o)| g - o);
    let gain = gains.clone().sum::<f64>() / n.max(1.0);
    let var = gains.map(|d| (d - gain).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let se = (var / n.max(1.0)).sqrt();
    Verdict { keep: gain > se, gain, se }
}

/// One strength of the grid as `"auto"` saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tried {
    /// The strength.
    pub l2: f64,
    /// Held-out log loss per sampled row, every sampled group scored by its own model.
    pub log_loss: f64,
    /// The same with the groups selection would drop scored by the generic model (optimistic:
    /// the same held-out rows decide and measure).
    pub selected_log_loss: f64,
    /// Sampled groups that selection would keep.
    pub kept: usize,
}

impl Tried {
    /// Pools the sampled groups' held-out losses at `l2`: `(generic, group)` losses per row.
    pub fn pool(l2: f64, groups: &[(&[f64], &[f64])]) -> Tried {
        let rows: usize = groups.iter().map(|(g, _)| g.len()).sum();
        let per_row = |total: f64| total / rows.max(1) as f64;
        let (mut own, mut selected, mut kept) = (0.0, 0.0, 0);
        for (generic, group) in groups {
            let sum: f64 = group.iter().sum();
            own += sum;
            if verdict(generic, group).keep {
                selected += sum;
                kept += 1;
            } else {
                selected += generic.iter().sum::<f64>();
            }
        }
        Tried { l2, log_loss: per_row(own), selected_log_loss: per_row(selected), kept }
    }
}

/// Walks `grid` from the strongest pull down, `measure` pooling each strength's held-out losses,
/// and stops two strengths after the best so far (the loss along the path is one valley: past
/// its bottom the group models only fit more noise, and the weak strengths cost the most
/// passes). Returns the index of the lowest held-out loss, every sampled group scored by its own
/// model (the first, i.e. strongest, of equals), and what was tried.
///
/// The choice does not look at selection: a held-out loss after keeping the groups that did best
/// on those very rows rewards noise (the winner's curse) and so favours weak pulls whose lucky
/// groups look good; without selection the pooled loss is an honest estimate, and selection at
/// the chosen strength then only removes groups.
pub fn walk(grid: &[f64], mut measure: impl FnMut(f64) -> Tried) -> (usize, Vec<Tried>) {
    let mut tried: Vec<Tried> = Vec::new();
    let mut best = 0;
    for &l2 in grid {
        let t = measure(l2);
        if t.log_loss < tried.get(best).map_or(f64::INFINITY, |b| b.log_loss) {
            best = tried.len();
        }
        tried.push(t);
        if tried.len() > best + 2 {
            break;
        }
    }
    (best, tried)
}

/// Which of the groups (their row counts in `sizes`) the strength is chosen on: a seeded order,
/// taken until `budget` rows are in.
pub fn sample(sizes: &[usize], budget: usize, seed: u64) -> Vec<usize> {
    let order = random::permutation(sizes.len(), random::base(seed, random::Stream::StrengthSample));
    let mut taken = Vec::new();
    let mut rows = 0;
    for &g in &order {
        if rows >= budget {
            break;
        }
        taken.push(g as usize);
        rows += sizes[g as usize];
    }
    taken.sort_unstable();
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Matrix;

    /// A group of `n` rows with two features whose labels follow `w` (the generic model's
    /// weights are `[1, -1]`).
    fn group(n: usize, w: [f64; 2], seed: u64) -> GroupRows {
        let base = random::base(seed, random::Stream::Init(9));
        let mut data = Vec::with_capacity(2 * n);
        let mut y = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let (a, b) = (random::normal(base, 3 * i), random::normal(base, 3 * i + 1));
            let p = 1.0 / (1.0 + (-(w[0] * a + w[1] * b - 1.0)).exp());
            y.push(if random::unit(base, 3 * i + 2) < p { 1.0 } else { 0.0 });
            data.extend([a as f32, b as f32]);
        }
        let x = Design { numeric: Matrix { data, rows: n, cols: 2 }, codes: Vec::new(), slots: Vec::new() };
        let folds = folds(&y, FOLDS, fold_seed(7, &GroupKey::Int(seed as i64)));
        GroupRows { x, y, w: None, folds }
    }

    #[test]
    fn folds_are_stratified_seeded_and_spread_tiny_groups() {
        let g = group(503, [1.0, -1.0], 1);
        let base = fold_seed(7, &GroupKey::Int(1));
        assert_eq!(g.folds, folds(&g.y, FOLDS, base));
        assert_ne!(folds(&g.y, FOLDS, base), folds(&g.y, FOLDS, fold_seed(7, &GroupKey::Str("1".into()))));
        let all_pos = g.y.iter().filter(|v| **v == 1.0).count() as f64;
        for fold in 0..FOLDS as u8 {
            let pos = (0..g.y.len()).filter(|&i| g.folds[i] == fold && g.y[i] == 1.0).count() as f64;
            assert!((pos - all_pos / FOLDS as f64).abs() <= 1.0, "fold {fold}: {pos} of {all_pos}");
        }
        // One positive and one negative land in different folds.
        let tiny = folds(&[1.0, 0.0], FOLDS, base);
        assert_ne!(tiny[0], tiny[1]);
    }

    /// Held-out losses of `g` along `grid` (`[strength][row]`), warm-started as `"auto"` does.
    fn path(g: &GroupRows, grid: &[f64], hyper: &LogisticSpec, anchor: &LogisticModel) -> Vec<Vec<f64>> {
        let mut starts = vec![None; FOLDS];
        grid.iter()
            .map(|&l2| {
                let (losses, models) = held_out(g, l2, hyper, Some(anchor), &starts);
                starts = models;
                losses
            })
            .collect()
    }

    #[test]
    fn a_group_like_the_generic_model_is_dropped_and_a_flipped_one_kept() {
        let generic = LogisticModel { coef: vec![1.0, -1.0], intercept: -1.0 };
        let hyper = LogisticSpec { l2: 1.0, ..LogisticSpec::default() };
        let grid = strength_grid();
        let (same, flip) = (group(400, [1.0, -1.0], 2), group(400, [-1.0, 1.0], 3));
        let losses = |g: &GroupRows| crate::metrics::paired::log_losses(&g.y, &generic.predict_proba(&g.x));
        let (same_generic, flip_generic) = (losses(&same), losses(&flip));
        let (same_path, flip_path) =
            (path(&same, &grid, &hyper, &generic), path(&flip, &grid, &hyper, &generic));
        let weak = grid.len() - 1;
        assert!(!verdict(&same_generic, &same_path[weak]).keep);
        assert!(verdict(&flip_generic, &flip_path[weak]).keep);
        // At the strongest pull the group model is the generic model.
        let v = verdict(&flip_generic, &flip_path[0]);
        assert!(v.gain.abs() < 0.01, "{v:?}");
        let (best, tried) = walk(&grid, |l2| {
            let s = grid.iter().position(|&v| v == l2).unwrap();
            Tried::pool(l2, &[(&same_generic, &same_path[s]), (&flip_generic, &flip_path[s])])
        });
        assert!(tried.iter().all(|t| t.log_loss.is_finite()));
        assert!(grid[best] < 10.0, "a weak pull lets the flipped group learn: {tried:?}");
        assert_eq!(tried[best].kept, 1);
        // Without the flipped group, nothing beats the generic model.
        let alone: Vec<Tried> =
            (0..grid.len()).map(|s| Tried::pool(grid[s], &[(&same_generic, &same_path[s])])).collect();
        assert!(alone.iter().all(|t| t.kept == 0), "{alone:?}");
    }

    #[test]
    fn the_walk_stops_two_strengths_past_the_valley() {
        let grid = strength_grid();
        let losses = [5.0, 4.0, 3.0, 3.5, 3.6, 1.0, 0.5];
        let mut asked = 0;
        let (best, tried) = walk(&grid, |l2| {
            asked += 1;
            Tried { l2, log_loss: losses[asked - 1], selected_log_loss: 0.0, kept: 0 }
        });
        assert_eq!((best, tried.len(), asked), (2, 5, 5));
        // A flat path keeps the strongest pull.
        let (best, tried) = walk(&grid, |l2| Tried { l2, log_loss: 1.0, selected_log_loss: 1.0, kept: 0 });
        assert_eq!((best, tried.len()), (0, 3));
    }

    #[test]
    fn the_sample_is_seeded_and_stops_at_the_budget() {
        let sizes = vec![100; 50];
        let s = sample(&sizes, 1000, 3);
        assert_eq!(s.len(), 10);
        assert_eq!(s, sample(&sizes, 1000, 3));
        assert_ne!(s, sample(&sizes, 1000, 4));
        assert_eq!(sample(&sizes, 1_000_000, 3), (0..50).collect::<Vec<_>>());
    }
}
