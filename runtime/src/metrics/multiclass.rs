//! Metrics of a multiclass classifier from class indices and row-major class probabilities,
//! defined as scikit-learn defines them: `accuracy_score` and `f1_score` of the most probable
//! class (the first on ties, as `argmax`), `log_loss`, `roc_auc_score(multi_class="ovr",
//! average="macro")`, and the multiclass Brier score Σ_c (p_c − 1[y = c])² averaged over rows.

use serde::{Deserialize, Serialize};

use super::nan_as_null;

/// One class's row of the per-class table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class value, as in `model.json`'s `labels.classes`.
    pub class: serde_json::Value,
    /// Rows of this class.
    pub support: usize,
    /// Of the rows predicted as this class, the share that are (0 when none is predicted).
    pub precision: f64,
    /// Of this class's rows, the share predicted as it (0 without rows).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// ROC AUC of this class's probability against the other classes (null without rows of
    /// this class or without rows of others).
    #[serde(with = "nan_as_null")]
    pub roc_auc: f64,
}

/// Metrics of one split for K classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MulticlassMetrics {
    /// Rows.
    pub rows: usize,
    /// K.
    pub classes: usize,
    /// Share of rows whose most probable class is their class.
    pub accuracy: f64,
    /// Mean −ln p(true class), probabilities clipped below at machine epsilon.
    pub log_loss: f64,
    /// Mean over rows of Σ_c (p_c − 1[y = c])², in [0, 2].
    pub brier: f64,
    /// Unweighted mean of the per-class F1 over the classes that occur (as label or prediction).
    pub macro_f1: f64,
    /// Mean of the per-class F1 weighted by support.
    pub weighted_f1: f64,
    /// Unweighted mean of the one-vs-rest ROC AUCs of the classes where it is defined.
    #[serde(with = "nan_as_null")]
    pub roc_auc_ovr_macro: f64,
    /// Per class, in class order.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` row counts.
    pub confusion: Vec<Vec<usize>>,
}

/// The most probable class of each row of `p` (`rows × k`), the first on ties.
pub fn argmax(p: &[f64], k: usize) -> Vec<usize> {
    p.chunks_exact(k)
        .map(|row| {
            let mut best = 0;
            for (c, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = c;
                }
            }
            best
        })
        .collect()
}

impl MulticlassMetrics {
    /// Every metric; `y` holds class indices, `p` is `rows × k`, `names` the class values.
    pub fn compute(y: &[f32], p: &[f64], k: usize, names: &[serde_json::Value]) -> MulticlassMetrics {
        assert_eq!(p.len(), y.len() * k);
        let n = y.len();
        let nf = n.max(1) as f64;
        let predicted = argmax(p, k);
        let mut confusion = vec![vec![0usize; k]; k];
        let (mut log_loss, mut brier) = (0.0, 0.0);
        for (i, (&yi, &pred)) in y.iter().zip(&predicted).enumerate() {
            let t = yi as usize;
            confusion[t][pred] += 1;
            let row = &p[i * k..(i + 1) * k];
            log_loss -= row[t].max(f64::EPSILON).ln();
            brier += row
                .iter()
                .enumerate()
                .map(|(c, &v)| (v - if c == t { 1.0 } else { 0.0 }).powi(2))
                .sum::<f64>();
        }
        let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
        let mut per_class = Vec::with_capacity(k);
        let (mut f1_sum, mut f1_count, mut weighted) = (0.0, 0usize, 0.0);
        let (mut auc_sum, mut auc_count) = (0.0, 0usize);
        for c in 0..k {
            let support: usize = confusion[c].iter().sum();
            let predicted_c: usize = (0..k).map(|t| confusion[t][c]).sum();
            let tp = confusion[c][c];
            let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
            let (precision, recall) = (ratio(tp, predicted_c), ratio(tp, support));
            let f1 =
                if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            if support > 0 || predicted_c > 0 {
                f1_sum += f1;
                f1_count += 1;
            }
            weighted += f1 * support as f64;
            let roc_auc = if support == 0 || support == n {
                f64::NAN
            } else {
                let yc: Vec<f32> = y.iter().map(|&v| if v as usize == c { 1.0 } else { 0.0 }).collect();
                let pc: Vec<f64> = p.chunks_exact(k).map(|row| row[c]).collect();
                super::roc_auc(&yc, &pc)
            };
            if roc_auc.is_finite() {
                auc_sum += roc_auc;
                auc_count += 1;
            }
            per_class.push(ClassMetrics {
                class: names.get(c).cloned().unwrap_or(serde_json::Value::from(c)),
                support,
                precision,
                recall,
                f1,
                roc_auc,
            });
        }
        MulticlassMetrics {
            rows: n,
            classes: k,
            accuracy: correct as f64 / nf,
            log_loss: log_loss / nf,
            brier: brier / nf,
            macro_f1: f1_sum / f1_count.max(1) as f64,
            weighted_f1: weighted / nf,
            roc_auc_ovr_macro: if auc_count == 0 { f64::NAN } else { auc_sum / auc_count as f64 },
            per_class,
            confusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values obtained from scikit-learn 1.9.1 on these rows (y = [0, 1, 2, 2, 1, 0],
    /// p below): `log_loss` 0.6986228, `roc_auc_score(multi_class="ovr")` 0.9166667 (per class
    /// 0.875, 1.0, 0.875), `f1_score` of the argmax [0, 1, 2, 1, 1, 2] macro 0.6555556 and
    /// weighted 0.6555556, `accuracy_score` 0.6666667.
    #[test]
    fn agrees_with_scikit_learn() {
        let y = [0.0, 1.0, 2.0, 2.0, 1.0, 0.0];
        #[rustfmt::skip]
        let p = [
            0.7, 0.2, 0.1,
            0.1, 0.8, 0.1,
            0.2, 0.2, 0.6,
            0.3, 0.4, 0.3,
            0.3, 0.5, 0.2,
            0.3, 0.3, 0.4,
        ];
        let names: Vec<serde_json::Value> = (0..3).map(serde_json::Value::from).collect();
        let m = MulticlassMetrics::compute(&y, &p, 3, &names);
        let close = |a: f64, b: f64| (a - b).abs() < 5e-7;
        assert!(close(m.log_loss, 0.6986228), "{}", m.log_loss);
        assert!(close(m.accuracy, 4.0 / 6.0));
        assert_eq!(m.confusion, vec![vec![1, 0, 1], vec![0, 2, 0], vec![0, 1, 1]]);
        // Per class: precision 1, 2/3, 1/2; recall 1/2, 1, 1/2; F1 2/3, 4/5, 1/2.
        assert!(close(m.macro_f1, 0.6555556), "{}", m.macro_f1);
        assert!(close(m.weighted_f1, 0.6555556), "{}", m.weighted_f1);
        let aucs: Vec<f64> = m.per_class.iter().map(|c| c.roc_auc).collect();
        assert!(close(aucs[0], 0.875) && close(aucs[1], 1.0) && close(aucs[2], 0.875), "{aucs:?}");
        assert!(close(m.roc_auc_ovr_macro, 0.9166667), "{}", m.roc_auc_ovr_macro);
        // Σ_c (p_c − 1[y = c])² of each row, by hand.
        let brier = [0.14, 0.06, 0.24, 0.74, 0.38, 0.74].iter().sum::<f64>() / 6.0;
        assert!(close(m.brier, brier), "{} vs {brier}", m.brier);
    }
}
