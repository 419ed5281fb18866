//! `curves.json`: what the report draws that `metrics.json` does not hold, computed once at
//! training time from every scored row (the report can be drawn again later from the run
//! directory alone, and the train rows' scores are not kept anywhere else).
//!
//! ROC and precision-recall curves have a vertex per distinct score, millions on real data;
//! [`simplify`] keeps a few thousand of them with a bound on the area it can change, so the
//! drawn curves have the areas `metrics.json` reports.

use serde::{Deserialize, Serialize};

use crate::metrics::{ECE_BINS, EceBin, Ranked, ece_bin, nan_as_null, rank, tie_groups};
use crate::partition::GroupRow;

/// `curves.json`'s format.
pub const FORMAT_VERSION: u32 = 1;

/// The widest box a dropped stretch of a curve may span in either coordinate: the drawn
/// curve's area then differs from the exact one by at most this much (see [`simplify`]).
pub const CURVE_TOLERANCE: f64 = 5e-4;

/// The most vertices a simplified curve keeps; past it the tolerance is doubled.
pub const MAX_VERTICES: usize = 5000;

/// Score histogram bins (on the logit scale).
pub const HISTOGRAM_BINS: usize = 48;

/// The most groups the per-group chart shows (the largest by test rows).
pub const MAX_GROUP_POINTS: usize = 5000;

/// Alert budgets of the operating-point table: the share of rows flagged.
pub const FLAGGED_SHARES: [f64; 8] = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];

/// `curves.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Curves {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The test rows (binary labels; `None` for multiclass runs).
    pub test: Option<SideCurves>,
    /// The train rows.
    pub train: Option<SideCurves>,
    /// Partitioned runs: the generic model alone on the test rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_test: Option<SideCurves>,
    /// Partitioned runs: one point per group with test rows (at most [`MAX_GROUP_POINTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupPoint>,
    /// Groups with test rows, including those left out of `groups`.
    #[serde(default)]
    pub groups_with_test_rows: usize,
}

/// One split's curves, bins and operating points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideCurves {
    /// Rows.
    pub rows: usize,
    /// Positive rows.
    pub positives: usize,
    /// ROC vertices (false positive rate, true positive rate) from (0, 0) to (1, 1), joined by
    /// straight lines (tied scores give a diagonal step, as ties count half in the AUC).
    pub roc: Curve,
    /// Precision-recall vertices (recall, precision) in recall order, drawn as steps: each
    /// vertex's precision holds from the previous vertex's recall to its own (the area under
    /// the steps is the average precision).
    pub pr: Curve,
    /// Reliability bins: the ten equal-width bins of the expected calibration error.
    pub calibration: Vec<CalibrationBin>,
    /// Reliability bins of equal row counts ([`RANK_BINS`] of them, by score): where scores of a
    /// rare class crowd near 0, the equal-width bins put nearly every row in the first one.
    #[serde(default)]
    pub calibration_by_rank: Vec<CalibrationBin>,
    /// Score distribution per class.
    pub histogram: Histogram,
    /// Precision, recall and flagged share at a few thresholds.
    pub operating_points: Vec<OperatingPoint>,
}

/// A simplified curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// Vertices of the exact curve before simplification.
    pub exact_vertices: usize,
    /// The bound on how far the kept vertices' area is from the exact curve's.
    pub max_area_error: f64,
    /// The kept vertices, (x, y).
    pub points: Vec<[f64; 2]>,
}

/// One reliability bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Lower edge of the score bin.
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
    /// Rows whose score falls in it.
    pub rows: usize,
    /// Their mean score.
    #[serde(with = "nan_as_null")]
    pub mean_score: f64,
    /// The share of them that are positive.
    #[serde(with = "nan_as_null")]
    pub positive_rate: f64,
}

/// Score counts per class over bins of equal width in logit(score), so that the scores of a
/// rare class near 0 are not all in one bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Bin edges on the logit scale, `bins + 1` of them.
    pub logit_edges: Vec<f64>,
    /// Positive rows per bin.
    pub positives: Vec<u64>,
    /// Negative rows per bin.
    pub negatives: Vec<u64>,
}

/// The outcome of flagging every row scored at or above `threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// How the threshold was chosen: `top 1%` (an alert budget) or `score > 0.5`.
    pub rule: String,
    /// The lowest flagged score (NaN when nothing is flagged).
    #[serde(with = "nan_as_null")]
    pub threshold: f64,
    /// Rows flagged.
    pub flagged: usize,
    /// Their share of all rows.
    pub flagged_share: f64,
    /// Of the flagged rows, the share that are positive.
    pub precision: f64,
    /// Of the positive rows, the share flagged (NaN without positives).
    #[serde(with = "nan_as_null")]
    pub recall: f64,
    /// Of the negative rows, the share flagged (NaN without negatives).
    #[serde(with = "nan_as_null")]
    pub false_positive_rate: f64,
}

/// One group of a partitioned run on the test rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPoint {
    /// The group's key.
    pub key: String,
    /// Test rows of the group.
    pub test_rows: usize,
    /// Whether it is scored by a model of its own.
    pub kept: bool,
    /// Test ROC AUC of the composition minus the generic model's (NaN with one class).
    #[serde(with = "nan_as_null")]
    pub roc_auc_gain: f64,
    /// Test log loss of the generic model minus the composition's (positive: better).
    #[serde(with = "nan_as_null")]
    pub log_loss_gain: f64,
}

impl SideCurves {
    /// Every curve of binary labels `y` (0/1) and positive-class probabilities `p`.
    pub fn compute(y: &[f32], p: &[f64]) -> SideCurves {
        Self::from_ranked(&Ranked(rank(y, p)))
    }

    /// [`SideCurves::compute`] from the rows already ranked by score (the metrics' ranking).
    pub fn from_ranked(ranked: &Ranked) -> SideCurves {
        let ranked = &ranked.0;
        let positives = ranked.iter().filter(|(_, pos)| *pos).count();
        let negatives = ranked.len() - positives;
        let (pos, neg) = (positives as f64, negatives as f64);
        // One vertex per distinct score, highest first: the rows at or above it are flagged.
        let (mut roc, mut pr) = (vec![[0.0, 0.0]], Vec::new());
        let (mut tp, mut fp) = (0.0, 0.0);
        for (tie_pos, tie_neg) in tie_groups(ranked) {
            tp += tie_pos;
            fp += tie_neg;
            roc.push([rate(fp, neg), rate(tp, pos)]);
            if pos > 0.0 {
                pr.push([tp / pos, tp / (tp + fp)]);
            }
        }
        SideCurves {
            rows: ranked.len(),
            positives,
            roc: Curve::simplified(&roc),
            pr: Curve::simplified(&pr),
            calibration: calibration(ranked),
            calibration_by_rank: calibration_by_rank(ranked),
            histogram: Histogram::from_ranked(ranked),
            operating_points: operating_points(ranked, positives),
        }
    }
}

/// `a / b`, 0 when `b` is 0 (a curve over rows of one class stays on its axis).
fn rate(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

impl Curve {
    /// `points` simplified within [`CURVE_TOLERANCE`], doubling it until at most
    /// [`MAX_VERTICES`] are kept.
    fn simplified(points: &[[f64; 2]]) -> Curve {
        let mut tolerance = CURVE_TOLERANCE;
        loop {
            let kept = simplify(points, tolerance);
            // Rates lie in [0, 1], so a tolerance of 1 keeps at most a handful of vertices; the
            // bound on the doublings only guards against a non-finite coordinate.
            if kept.len() <= MAX_VERTICES || tolerance >= 1.0 {
                return Curve { exact_vertices: points.len(), max_area_error: tolerance, points: kept };
            }
            tolerance *= 2.0;
        }
    }

    /// Area under the vertices joined by straight lines (the ROC AUC of a ROC curve).
    pub fn trapezoid_area(&self) -> f64 {
        self.points.windows(2).map(|w| (w[1][0] - w[0][0]) * (w[0][1] + w[1][1]) / 2.0).sum()
    }

    /// Area under the vertices drawn as steps, each vertex's y held back to the previous
    /// vertex's x (the average precision of a precision-recall curve).
    pub fn step_area(&self) -> f64 {
        let mut prev_x = 0.0;
        self.points
            .iter()
            .map(|&[x, y]| {
                let a = (x - prev_x) * y;
                prev_x = x;
                a
            })
            .sum()
    }
}

/// The vertices of `points` to draw: the first and the last, and enough in between that every
/// dropped stretch lies in a box at most `tolerance` wide and high whose corners are kept
/// vertices' coordinates. For a curve whose x never decreases, the area under the kept vertices
/// (as straight lines, or as steps holding each vertex's y back to the previous x) then
/// differs from the exact area by at most Σ Δx·tolerance ≤ tolerance. Corners that matter
/// survive: a turn that moves the curve more than `tolerance` starts a new box.
pub fn simplify(points: &[[f64; 2]], tolerance: f64) -> Vec<[f64; 2]> {
    let Some((&first, rest)) = points.split_first() else {
        return Vec::new();
    };
    let mut kept = vec![first];
    // The bounding box of the stretch since the last kept vertex, that vertex included.
    let (mut lo, mut hi) = (first, first);
    for (i, &p) in rest.iter().enumerate() {
        let (nlo, nhi) = ([lo[0].min(p[0]), lo[1].min(p[1])], [hi[0].max(p[0]), hi[1].max(p[1])]);
        if nhi[0] - nlo[0] <= tolerance && nhi[1] - nlo[1] <= tolerance {
            (lo, hi) = (nlo, nhi);
            continue;
        }
        // `p` would widen the box too far: close the stretch at the vertex before it (unless
        // that is the kept one), and start the next box there.
        let prev = if i == 0 { first } else { rest[i - 1] };
        if kept.last() != Some(&prev) {
            kept.push(prev);
        }
        (lo, hi) = ([prev[0].min(p[0]), prev[1].min(p[1])], [prev[0].max(p[0]), prev[1].max(p[1])]);
        if hi[0] - lo[0] > tolerance || hi[1] - lo[1] > tolerance {
            kept.push(p);
            (lo, hi) = (p, p);
        }
    }
    if let Some(&last) = points.last()
        && kept.last() != Some(&last)
    {
        kept.push(last);
    }
    kept
}

/// Equal-count reliability bins.
pub const RANK_BINS: usize = 20;

/// [`RANK_BINS`] bins of consecutive rows by score (lowest first), of equal row counts up to
/// one row; fewer when there are fewer rows.
fn calibration_by_rank(ranked: &[(f64, bool)]) -> Vec<CalibrationBin> {
    let n = ranked.len();
    let bins = RANK_BINS.min(n);
    (0..bins)
        .map(|k| {
            // `ranked` is highest first: bin 0 takes the last rows.
            let (from, to) = (n - (k + 1) * n / bins, n - k * n / bins);
            let rows = &ranked[from..to];
            let (sum_p, positives) =
                rows.iter().fold((0.0, 0usize), |(s, c), &(p, pos)| (s + p, c + usize::from(pos)));
            CalibrationBin {
                lower: rows.last().map_or(f64::NAN, |r| r.0),
                upper: rows.first().map_or(f64::NAN, |r| r.0),
                rows: rows.len(),
                mean_score: sum_p / rows.len() as f64,
                positive_rate: positives as f64 / rows.len() as f64,
            }
        })
        .collect()
}

/// The ten equal-width bins of `metrics.json`'s expected calibration error, binned the same way.
fn calibration(ranked: &[(f64, bool)]) -> Vec<CalibrationBin> {
    let mut bins: [EceBin; ECE_BINS] = [(0, 0.0, 0.0); ECE_BINS];
    for &(p, pos) in ranked {
        ece_bin(&mut bins, p, f32::from(u8::from(pos)));
    }
    bins.iter()
        .enumerate()
        .map(|(b, &(rows, sum_p, sum_y))| CalibrationBin {
            lower: b as f64 / ECE_BINS as f64,
            upper: (b + 1) as f64 / ECE_BINS as f64,
            rows,
            mean_score: sum_p / rows as f64,
            positive_rate: sum_y / rows as f64,
        })
        .collect()
}

/// logit(p), clipped to ±[`LOGIT_LIMIT`] (probabilities of exactly 0 or 1 land in the end bins).
fn logit(p: f64) -> f64 {
    (p.ln() - (-p).ln_1p()).clamp(-LOGIT_LIMIT, LOGIT_LIMIT)
}

/// Where the histogram's logit axis ends: 1 − p ≈ 6e-6.
const LOGIT_LIMIT: f64 = 12.0;

impl Histogram {
    /// From the rows ranked by score, highest first: logit is monotone, so the range is the
    /// logits of the two ends, and one walk up the rows against each bin's upper edge (as a
    /// probability) counts them, with no logarithm per row.
    fn from_ranked(ranked: &[(f64, bool)]) -> Histogram {
        let (lo, hi) = match (ranked.last(), ranked.first()) {
            // The outer edges on whole logit units, at least one unit apart.
            (Some(min), Some(max)) => {
                let lo = logit(min.0).floor();
                (lo, logit(max.0).ceil().max(lo + 1.0))
            }
            _ => (-1.0, 1.0),
        };
        let width = (hi - lo) / HISTOGRAM_BINS as f64;
        let logit_edges: Vec<f64> = (0..=HISTOGRAM_BINS).map(|i| lo + i as f64 * width).collect();
        let upper = |b: usize| 1.0 / (1.0 + (-logit_edges[b + 1]).exp());
        let mut positives = vec![0u64; HISTOGRAM_BINS];
        let mut negatives = vec![0u64; HISTOGRAM_BINS];
        let mut b = 0;
        let mut edge = upper(0);
        for &(v, pos) in ranked.iter().rev() {
            while v >= edge && b + 1 < HISTOGRAM_BINS {
                b += 1;
                edge = upper(b);
            }
            if pos {
                positives[b] += 1;
            } else {
                negatives[b] += 1;
            }
        }
        Histogram { logit_edges, positives, negatives }
    }
}

/// The operating points at the alert budgets of [`FLAGGED_SHARES`] and at `score > 0.5`, from
/// the rows ranked by score (highest first). Tied scores are flagged together, so the flagged
/// share can exceed the budget.
fn operating_points(ranked: &[(f64, bool)], positives: usize) -> Vec<OperatingPoint> {
    let n = ranked.len();
    let negatives = n - positives;
    // Cumulative positives after each row, to read any cut in O(1).
    let mut cum = Vec::with_capacity(n);
    let mut tp = 0usize;
    for &(_, pos) in ranked {
        tp += usize::from(pos);
        cum.push(tp);
    }
    let point = |rule: String, flagged: usize| {
        let tp = if flagged == 0 { 0 } else { cum[flagged - 1] };
        let fp = flagged - tp;
        OperatingPoint {
            rule,
            threshold: if flagged == 0 { f64::NAN } else { ranked[flagged - 1].0 },
            flagged,
            flagged_share: flagged as f64 / n.max(1) as f64,
            precision: if flagged == 0 { 0.0 } else { tp as f64 / flagged as f64 },
            recall: tp as f64 / positives as f64,
            false_positive_rate: fp as f64 / negatives as f64,
        }
    };
    let mut out: Vec<OperatingPoint> = Vec::new();
    for share in FLAGGED_SHARES {
        let budget = (share * n as f64).ceil() as usize;
        if budget == 0 || budget > n {
            continue;
        }
        // Every row tied with the last one in the budget is flagged too.
        let threshold = ranked[budget - 1].0;
        let flagged = budget + ranked[budget..].iter().take_while(|r| r.0 == threshold).count();
        if out.last().is_some_and(|o| o.flagged == flagged) {
            continue;
        }
        out.push(point(format!("top {}%", (share * 1000.0).round() / 10.0), flagged));
    }
    let above_half = ranked.iter().take_while(|r| r.0 > 0.5).count();
    out.push(point("score > 0.5".into(), above_half));
    out
}

/// The per-group points of a partitioned run's groups table: the groups with test rows, the
/// largest [`MAX_GROUP_POINTS`] of them; and how many have test rows.
pub fn group_points(rows: &[GroupRow]) -> (Vec<GroupPoint>, usize) {
    let mut points: Vec<GroupPoint> = rows
        .iter()
        .filter(|r| r.test_rows > 0)
        .map(|r| GroupPoint {
            key: r.key.to_string(),
            test_rows: r.test_rows,
            kept: r.model_row.is_some(),
            roc_auc_gain: r.test_roc_auc - r.generic_test_roc_auc,
            log_loss_gain: r.generic_test_log_loss - r.test_log_loss,
        })
        .collect();
    let total = points.len();
    if total > MAX_GROUP_POINTS {
        points.sort_by(|a, b| b.test_rows.cmp(&a.test_rows).then_with(|| a.key.cmp(&b.key)));
        points.truncate(MAX_GROUP_POINTS);
    }
    (points, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{SplitMetrics, average_precision, roc_auc};

    /// The expected calibration error of reliability bins: Σ (rows / total)·|positive rate − mean
    /// score|, as `metrics.json` computes it.
    fn expected_calibration_error(bins: &[CalibrationBin]) -> f64 {
        let total: usize = bins.iter().map(|b| b.rows).sum();
        bins.iter()
            .filter(|b| b.rows > 0)
            .map(|b| (b.rows as f64 / total as f64) * (b.positive_rate - b.mean_score).abs())
            .sum()
    }

    /// Seeded scores: a signal plus noise, rounded to `levels` distinct values (ties common
    /// when `levels` is small), with positives at rate `rate`.
    fn seeded(n: usize, levels: f64, rate: f64, seed: u64) -> (Vec<f32>, Vec<f64>) {
        let mut s = seed;
        let (mut y, mut p) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            s = crate::random::mix64(s);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            let pos = u < rate;
            s = crate::random::mix64(s);
            let noise = (s >> 11) as f64 / (1u64 << 53) as f64;
            let v: f64 = (if pos { 0.35 } else { 0.0 }) + 0.65 * noise;
            y.push(if pos { 1.0 } else { 0.0 });
            p.push((v * levels).round() / levels);
        }
        (y, p)
    }

    #[test]
    fn simplified_curves_keep_the_exact_areas_within_their_bound() {
        for (n, levels, rate, seed) in
            [(200_000, 1e9, 0.1, 1), (200_000, 50.0, 0.3, 2), (50_000, 1e9, 0.002, 3), (7, 1e9, 0.5, 4)]
        {
            let (y, p) = seeded(n, levels, rate, seed);
            let c = SideCurves::compute(&y, &p);
            assert!(c.roc.points.len() <= MAX_VERTICES && c.pr.points.len() <= MAX_VERTICES);
            let (auc, ap) = (roc_auc(&y, &p), average_precision(&y, &p));
            let (roc_err, pr_err) = ((c.roc.trapezoid_area() - auc).abs(), (c.pr.step_area() - ap).abs());
            assert!(roc_err <= c.roc.max_area_error, "n {n}: ROC area off by {roc_err}");
            assert!(pr_err <= c.pr.max_area_error, "n {n}: PR area off by {pr_err}");
            assert_eq!(c.roc.points.first(), Some(&[0.0, 0.0]));
            assert_eq!(c.roc.points.last(), Some(&[1.0, 1.0]));
            if n > 10_000 && levels > 1e6 {
                assert!(c.roc.exact_vertices > 10 * c.roc.points.len(), "{} kept", c.roc.points.len());
            }
        }
    }

    #[test]
    fn simplify_keeps_the_corners_of_a_staircase() {
        // Two big steps: up, right, up. Every corner moves the curve far more than the tolerance.
        let pts = [[0.0, 0.0], [0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [1.0, 1.0]];
        assert_eq!(simplify(&pts, 1e-3), pts.to_vec());
        // A dense diagonal of tiny steps collapses to a few vertices.
        let dense: Vec<[f64; 2]> = (0..=10_000).map(|i| [i as f64 / 10_000.0, i as f64 / 10_000.0]).collect();
        assert!(simplify(&dense, 0.01).len() <= 202);
    }

    #[test]
    fn calibration_bins_give_the_metrics_expected_calibration_error() {
        let (y, p) = seeded(30_000, 1e9, 0.2, 9);
        let c = SideCurves::compute(&y, &p);
        let m = SplitMetrics::compute(&y, &p);
        assert!((expected_calibration_error(&c.calibration) - m.ece).abs() < 1e-12);
        assert_eq!(c.calibration.iter().map(|b| b.rows).sum::<usize>(), 30_000);
        let counted: u64 = c.histogram.positives.iter().chain(&c.histogram.negatives).sum();
        assert_eq!(counted, 30_000);
        assert_eq!(c.histogram.positives.iter().sum::<u64>() as usize, c.positives);
    }

    #[test]
    fn equal_count_bins_split_the_rows_in_score_order() {
        let (y, p) = seeded(30_007, 1e9, 0.01, 11);
        let c = SideCurves::compute(&y, &p);
        let bins = &c.calibration_by_rank;
        assert_eq!(bins.len(), RANK_BINS);
        assert_eq!(bins.iter().map(|b| b.rows).sum::<usize>(), 30_007);
        assert!(bins.iter().all(|b| b.rows.abs_diff(30_007 / RANK_BINS) <= 1));
        assert!(bins.windows(2).all(|w| w[0].upper <= w[1].lower && w[0].mean_score <= w[1].mean_score));
        let positives: f64 = bins.iter().map(|b| b.positive_rate * b.rows as f64).sum();
        assert!((positives - c.positives as f64).abs() < 1e-6);
        let mean: f64 = bins.iter().map(|b| b.mean_score * b.rows as f64).sum::<f64>() / 30_007.0;
        assert!((mean - p.iter().sum::<f64>() / 30_007.0).abs() < 1e-12);
        // Fewer rows than bins: one bin a row.
        assert_eq!(SideCurves::compute(&[0.0, 1.0, 1.0], &[0.2, 0.9, 0.4]).calibration_by_rank.len(), 3);
    }

    #[test]
    fn the_histogram_walk_bins_every_row_as_its_logit_does() {
        for (n, levels, rate, seed) in [(50_000, 1e9, 0.05, 5), (20_000, 1e9, 0.5, 6)] {
            let (y, mut p) = seeded(n, levels, rate, seed);
            // Scores near 0 and 1 too, where the logit axis is clipped.
            p[0] = 0.0;
            p[1] = 1.0;
            p[2] = 1e-9;
            let h = SideCurves::compute(&y, &p).histogram;
            let (lo, width) = (h.logit_edges[0], h.logit_edges[1] - h.logit_edges[0]);
            let (mut pos, mut neg) = (vec![0u64; HISTOGRAM_BINS], vec![0u64; HISTOGRAM_BINS]);
            for (&yi, &v) in y.iter().zip(&p) {
                let b = (((logit(v) - lo) / width) as usize).min(HISTOGRAM_BINS - 1);
                if yi == 1.0 { pos[b] += 1 } else { neg[b] += 1 }
            }
            assert_eq!((h.positives, h.negatives), (pos, neg), "n {n}");
        }
    }

    #[test]
    fn curves_of_degenerate_splits_read_back() {
        // Nothing scored above 0.5, and a split of one class: NaN thresholds and rates.
        for (y, p) in [(vec![0.0, 1.0, 0.0], vec![0.1, 0.2, 0.3]), (vec![0.0, 0.0], vec![0.6, 0.4])] {
            let c = SideCurves::compute(&y, &p);
            let text = serde_json::to_string(&c).expect("serialize");
            let back: SideCurves = serde_json::from_str(&text).expect("read back");
            assert_eq!((back.rows, back.operating_points.len()), (c.rows, c.operating_points.len()));
            let undefined = |o: &OperatingPoint| {
                (o.threshold.is_nan(), o.recall.is_nan(), o.false_positive_rate.is_nan())
            };
            assert!(back.operating_points.iter().map(undefined).eq(c.operating_points.iter().map(undefined)));
        }
    }

    #[test]
    fn operating_points_count_flagged_rows_by_hand() {
        // Scores 0.9 .. 0.0, positives at 0.9, 0.7 and 0.2.
        let p: Vec<f64> = (0..10).rev().map(|i| f64::from(i) / 10.0).collect();
        let y: Vec<f32> = p
            .iter()
            .map(|&v| if [9, 7, 2].contains(&((v * 10.0).round() as i32)) { 1.0 } else { 0.0 })
            .collect();
        let ops = SideCurves::compute(&y, &p).operating_points;
        // 0.1%, 0.5%, 1%, 2%, 5% and 10% of 10 rows all flag the top row; 20% two, 50% five.
        let top = &ops[0];
        assert_eq!((top.flagged, top.precision, top.threshold), (1, 1.0, 0.9));
        let twenty = ops.iter().find(|o| o.rule == "top 20%").expect("20%");
        assert_eq!((twenty.flagged, twenty.precision), (2, 0.5));
        let half = ops.iter().find(|o| o.rule == "top 50%").expect("50%");
        assert_eq!((half.flagged, half.recall, half.false_positive_rate), (5, 2.0 / 3.0, 3.0 / 7.0));
        let at_half = ops.last().expect("0.5");
        assert_eq!((at_half.rule.as_str(), at_half.flagged), ("score > 0.5", 4));
    }
}
