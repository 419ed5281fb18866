//! Evaluation metrics, computed from labels and probabilities: binary classifiers here,
//! multiclass ones in [`MulticlassMetrics`].
//! Definitions follow scikit-learn's: `roc_auc_score`, `average_precision_score`, `log_loss`,
//! `brier_score_loss`, and the classification metrics at threshold 0.5 (`p > 0.5` is positive,
//! as `LogisticRegression.predict` decides). Rows count equally (sample weights shape the fit,
//! not the evaluation).

mod multiclass;
pub mod paired;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use multiclass::{ClassMetrics, MulticlassMetrics, argmax};

/// A model's probabilities for a set of rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Scores {
    /// The probability of the positive class, one per row.
    Binary(Vec<f64>),
    /// Row-major `rows × classes` class probabilities, each row summing to 1.
    Multiclass {
        /// K.
        classes: usize,
        /// The probabilities.
        p: Vec<f64>,
    },
}

impl Scores {
    /// Rows scored.
    pub fn rows(&self) -> usize {
        match self {
            Scores::Binary(p) => p.len(),
            Scores::Multiclass { classes, p } => p.len() / classes,
        }
    }

    /// Every value, for finiteness checks.
    pub fn values(&self) -> &[f64] {
        match self {
            Scores::Binary(p) | Scores::Multiclass { p, .. } => p,
        }
    }
}

/// The metrics of one split, as `metrics.json` records them (binary: [`SplitMetrics`]'s fields;
/// multiclass: [`MulticlassMetrics`]'s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Evaluation {
    /// Two classes.
    Binary(SplitMetrics),
    /// K >= 3 classes.
    Multiclass(MulticlassMetrics),
}

impl Evaluation {
    /// Every metric of `scores` against labels `y` (0/1, or class indices); `classes` names
    /// the classes for the per-class rows.
    pub fn compute(y: &[f32], scores: &Scores, classes: &[serde_json::Value]) -> Evaluation {
        Self::compute_ranked(y, scores, classes).0
    }

    /// [`Evaluation::compute`], and for binary scores the rows ranked by score.
    pub fn compute_ranked(
        y: &[f32],
        scores: &Scores,
        classes: &[serde_json::Value],
    ) -> (Evaluation, Option<Ranked>) {
        match scores {
            Scores::Binary(p) => {
                let (m, ranked) = SplitMetrics::compute_ranked(y, p);
                (Evaluation::Binary(m), Some(ranked))
            }
            Scores::Multiclass { classes: k, p } => {
                (Evaluation::Multiclass(MulticlassMetrics::compute(y, p, *k, classes)), None)
            }
        }
    }

    /// The headline metrics by name: what a registry listing, a baseline's deltas and a gate
    /// read. Binary: ROC AUC, PR AUC, log loss, Brier, accuracy (at 0.5), F1; multiclass:
    /// accuracy, log loss, macro F1, Brier, one-vs-rest macro ROC AUC.
    pub fn headline(&self) -> Vec<(String, f64)> {
        let pairs: Vec<(&str, f64)> = match self {
            Evaluation::Binary(m) => vec![
                ("roc_auc", m.roc_auc),
                ("pr_auc", m.pr_auc),
                ("log_loss", m.log_loss),
                ("brier", m.brier),
                ("accuracy", m.accuracy),
                ("f1", m.f1),
            ],
            Evaluation::Multiclass(m) => vec![
                ("accuracy", m.accuracy),
                ("log_loss", m.log_loss),
                ("macro_f1", m.macro_f1),
                ("brier", m.brier),
                ("roc_auc", m.roc_auc_ovr_macro),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Rows evaluated.
    pub fn rows(&self) -> usize {
        match self {
            Evaluation::Binary(m) => m.rows,
            Evaluation::Multiclass(m) => m.rows,
        }
    }

    /// Mean log loss.
    pub fn log_loss(&self) -> f64 {
        match self {
            Evaluation::Binary(m) => m.log_loss,
            Evaluation::Multiclass(m) => m.log_loss,
        }
    }

    /// ROC AUC: binary, or one-vs-rest macro for multiclass.
    pub fn roc_auc(&self) -> f64 {
        match self {
            Evaluation::Binary(m) => m.roc_auc,
            Evaluation::Multiclass(m) => m.roc_auc_ovr_macro,
        }
    }

    /// Accuracy (binary: at 0.5; multiclass: of the most probable class).
    pub fn accuracy(&self) -> f64 {
        match self {
            Evaluation::Binary(m) => m.accuracy,
            Evaluation::Multiclass(m) => m.accuracy,
        }
    }
}

/// `serde(with)` for metrics that are NaN when undefined (ROC AUC of one class): JSON has no
/// NaN, so they are written as `null` and read back as NaN.
pub mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    /// NaN and infinities as `null`.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() { s.serialize_f64(*v) } else { s.serialize_none() }
    }

    /// `null` as NaN.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// Bins of the expected calibration error.
pub const ECE_BINS: usize = 10;

/// Rows, Σ score and Σ label of one equal-width score bin of the expected calibration error.
pub type EceBin = (usize, f64, f64);

/// Adds a row of score `p` and label `y` to its bin of the expected calibration error (the
/// report's reliability diagram bins the same way, through here).
#[inline]
pub fn ece_bin(bins: &mut [EceBin; ECE_BINS], p: f64, y: f32) {
    let b = ((p * ECE_BINS as f64) as usize).min(ECE_BINS - 1);
    bins[b].0 += 1;
    bins[b].1 += p;
    bins[b].2 += f64::from(y);
}

/// Metrics of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    /// Rows.
    pub rows: usize,
    /// Positive rows.
    pub positives: usize,
    /// Area under the ROC curve (ties count half).
    #[serde(with = "nan_as_null")]
    pub roc_auc: f64,
    /// Average precision (area under the precision-recall curve, step-wise).
    #[serde(with = "nan_as_null")]
    pub pr_auc: f64,
    /// Mean negative log-likelihood (natural log), probabilities clipped to [ε, 1 − ε].
    pub log_loss: f64,
    /// Mean squared error of the probabilities.
    pub brier: f64,
    /// Accuracy at threshold 0.5.
    pub accuracy: f64,
    /// Precision at threshold 0.5 (0 when nothing is predicted positive).
    pub precision: f64,
    /// Recall at threshold 0.5.
    pub recall: f64,
    /// F1 at threshold 0.5.
    pub f1: f64,
    /// Expected calibration error over ten equal-width probability bins.
    pub ece: f64,
}

impl SplitMetrics {
    /// Computes every metric. `y` holds 0.0/1.0, `p` probabilities.
    pub fn compute(y: &[f32], p: &[f64]) -> SplitMetrics {
        Self::compute_ranked(y, p).0
    }

    /// [`SplitMetrics::compute`], and the rows ranked by score (highest first) that the curves
    /// of the report walk: one sort serves both.
    pub fn compute_ranked(y: &[f32], p: &[f64]) -> (SplitMetrics, Ranked) {
        assert_eq!(y.len(), p.len());
        let n = y.len();
        let positives = y.iter().filter(|&&v| v == 1.0).count();
        let eps = f64::EPSILON;
        let (mut ll, mut brier) = (0.0, 0.0);
        let (mut tp, mut fp, mut tn, mut fneg) = (0usize, 0usize, 0usize, 0usize);
        let mut bins: [EceBin; ECE_BINS] = [(0, 0.0, 0.0); ECE_BINS];
        for (&yi, &pi) in y.iter().zip(p) {
            let pos = yi == 1.0;
            let pc = pi.clamp(eps, 1.0 - eps);
            ll -= if pos { pc.ln() } else { (1.0 - pc).ln() };
            brier += (pi - f64::from(yi)).powi(2);
            match (pi > 0.5, pos) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, false) => tn += 1,
                (false, true) => fneg += 1,
            }
            ece_bin(&mut bins, pi, yi);
        }
        let nf = n.max(1) as f64;
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fneg);
        let f1 =
            if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        let ece = bins
            .iter()
            .filter(|b| b.0 > 0)
            .map(|&(k, sp, sy)| (k as f64 / nf) * ((sy - sp) / k as f64).abs())
            .sum();
        let ranked = rank(y, p);
        let m = SplitMetrics {
            rows: n,
            positives,
            roc_auc: roc_auc_ranked(&ranked),
            pr_auc: average_precision_ranked(&ranked),
            log_loss: ll / nf,
            brier: brier / nf,
            accuracy: (tp + tn) as f64 / nf,
            precision,
            recall,
            f1,
            ece,
        };
        (m, Ranked(ranked))
    }
}

/// Rows as (score, is positive), sorted by score, highest first.
#[derive(Debug, Clone, Default)]
pub struct Ranked(pub(crate) Vec<(f64, bool)>);

/// (score, is positive) pairs sorted by score, descending (NaN last). Sorting the pairs rather
/// than indices keeps the sort cache-friendly; ties are handled by the callers, so an unstable
/// parallel sort gives the same metrics as any other order.
pub(crate) fn rank(y: &[f32], p: &[f64]) -> Vec<(f64, bool)> {
    let mut pairs: Vec<(f64, bool)> = p.iter().copied().zip(y.iter().map(|&v| v == 1.0)).collect();
    pairs.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    pairs
}

/// Runs of equal scores in ranked pairs: (positives, negatives) per run, highest score first.
pub(crate) fn tie_groups(ranked: &[(f64, bool)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    ranked.chunk_by(|a, b| a.0 == b.0).map(|g| {
        let pos = g.iter().filter(|(_, y)| *y).count() as f64;
        (pos, g.len() as f64 - pos)
    })
}

/// ROC AUC by the rank-sum (Mann–Whitney) statistic with tied scores sharing their mean rank.
/// NaN when one class is absent.
pub fn roc_auc(y: &[f32], p: &[f64]) -> f64 {
    roc_auc_ranked(&rank(y, p))
}

fn roc_auc_ranked(ranked: &[(f64, bool)]) -> f64 {
    let pos = ranked.iter().filter(|(_, y)| *y).count() as f64;
    let neg = ranked.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    // Walk from the highest score: each positive outranks the negatives below it; ties count
    // half.
    let (mut auc, mut neg_above) = (0.0, 0.0);
    for (tie_pos, tie_neg) in tie_groups(ranked) {
        auc += tie_pos * (neg - neg_above - tie_neg) + 0.5 * tie_pos * tie_neg;
        neg_above += tie_neg;
    }
    auc / (pos * neg)
}

/// Average precision: Σₖ (Rₖ − Rₖ₋₁)·Pₖ over the distinct score thresholds, as scikit-learn's
/// `average_precision_score`. NaN without positives.
pub fn average_precision(y: &[f32], p: &[f64]) -> f64 {
    average_precision_ranked(&rank(y, p))
}

fn average_precision_ranked(ranked: &[(f64, bool)]) -> f64 {
    let pos = ranked.iter().filter(|(_, y)| *y).count() as f64;
    if pos == 0.0 {
        return f64::NAN;
    }
    let (mut tp, mut seen, mut prev_recall, mut ap) = (0.0, 0.0, 0.0, 0.0);
    for (tie_pos, tie_neg) in tie_groups(ranked) {
        tp += tie_pos;
        seen += tie_pos + tie_neg;
        let recall = tp / pos;
        ap += (recall - prev_recall) * (tp / seen);
        prev_recall = recall;
    }
    ap
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values obtained from scikit-learn 1.9.1 (roc_auc_score, average_precision_score, log_loss,
    // brier_score_loss) on exactly these arrays, which include tied scores.
    const Y: [f32; 10] = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
    const P: [f64; 10] = [0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.2, 0.4, 0.65, 0.05];
    const SKLEARN_ROC_AUC: f64 = 0.8799999999999999;
    const SKLEARN_AP: f64 = 0.8761904761904762;
    const SKLEARN_LOG_LOSS: f64 = 0.41268484483288914;
    const SKLEARN_BRIER: f64 = 0.13275;

    #[test]
    fn matches_scikit_learn_on_a_fixed_example() {
        let m = SplitMetrics::compute(&Y, &P);
        assert!((m.roc_auc - SKLEARN_ROC_AUC).abs() < 1e-12, "{}", m.roc_auc);
        assert!((m.pr_auc - SKLEARN_AP).abs() < 1e-12, "{}", m.pr_auc);
        assert!((m.log_loss - SKLEARN_LOG_LOSS).abs() < 1e-12, "{}", m.log_loss);
        assert!((m.brier - SKLEARN_BRIER).abs() < 1e-12, "{}", m.brier);
        // p > 0.5: rows 3, 5, 8 → tp 3, fp 0, fn 2 (rows 2, 7), tn 5.
        assert_eq!((m.accuracy, m.precision, m.recall), (0.8, 1.0, 0.6));
        assert!((m.f1 - 0.75).abs() < 1e-12);
        assert_eq!((m.rows, m.positives), (10, 5));
    }

    /// AUC as the share of (positive, negative) pairs ranked correctly, ties half: O(n²), the
    /// definition itself.
    fn pairwise_auc(y: &[f32], p: &[f64]) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..y.len() {
            for j in 0..y.len() {
                if y[i] == 1.0 && y[j] == 0.0 {
                    den += 1.0;
                    num += if p[i] > p[j] {
                        1.0
                    } else if p[i] == p[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        num / den
    }

    #[test]
    fn auc_agrees_with_the_pairwise_definition_on_seeded_data() {
        let mut s = 17u64;
        for n in [2, 5, 50, 400] {
            let mut y = Vec::new();
            let mut p = Vec::new();
            for _ in 0..n {
                s = crate::random::mix64(s);
                y.push(if s.is_multiple_of(3) { 1.0 } else { 0.0 });
                // Coarse scores so that ties are common.
                p.push(((s >> 20) % 7) as f64 / 7.0);
            }
            y[0] = 1.0;
            y[1] = 0.0;
            assert!((roc_auc(&y, &p) - pairwise_auc(&y, &p)).abs() < 1e-12, "n = {n}");
        }
    }

    #[test]
    fn perfect_and_calibrated_predictions() {
        let y = [0.0, 1.0, 0.0, 1.0];
        let m = SplitMetrics::compute(&y, &[0.1, 0.9, 0.2, 0.8]);
        assert_eq!((m.roc_auc, m.pr_auc, m.accuracy), (1.0, 1.0, 1.0));
        // Each bin's mean prediction equals its share of positives: zero calibration error.
        let m = SplitMetrics::compute(&[0.0, 1.0, 0.0, 1.0], &[0.5, 0.5, 0.5, 0.5]);
        assert!(m.ece.abs() < 1e-12 && m.roc_auc == 0.5);
    }
}
