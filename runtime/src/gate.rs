//! The promotion gate: whether a retrain may replace its baseline, from the spec's `gate` and the
//! baseline [`Comparison`], recorded as `manifest.json` `promotion`.
//!
//! The improvement in `gate.metric` is `new − baseline` for metrics where higher is better
//! (ROC AUC, PR AUC, accuracy) and `baseline − new` for losses (log loss, Brier), so a positive
//! improvement is always better. A run is eligible when the improvement is at least
//! `gate.min_delta` and, when `gate.max_p_value` is given, positive with a p-value of "no
//! difference" at most `max_p_value` (DeLong's test for ROC AUC, the paired bootstrap for the
//! others). An undefined metric (no positives among the test rows) is never eligible.

use serde::{Deserialize, Serialize};

use crate::baseline::Comparison;
use crate::error::{Error, Result};
use crate::spec::{GATE_METRICS, GateSpec};

/// `manifest.json` `promotion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    /// Whether the gate lets the run through.
    pub eligible: bool,
    /// Why, one sentence per condition.
    pub reasons: Vec<String>,
}

/// Whether higher is better for `metric`.
fn higher_is_better(metric: &str) -> bool {
    GATE_METRICS.iter().find(|(m, ..)| *m == metric).is_some_and(|(_, higher, _)| *higher)
}

/// Refuses a gate the run's labels cannot evaluate (exit 2, before the fit): PR AUC needs a
/// binary label, and multiclass ROC AUC (one-vs-rest macro) has no paired test.
pub fn check(gate: &GateSpec, multiclass: bool) -> Result<()> {
    if multiclass && gate.metric == "pr_auc" {
        return Err(Error::spec(
            "gate.metric",
            "pr_auc is a binary metric; for a multiclass label gate on accuracy or log_loss",
        ));
    }
    if multiclass && gate.metric == "roc_auc" && gate.max_p_value.is_some() {
        return Err(Error::spec(
            "gate.max_p_value",
            "a multiclass ROC AUC (one-vs-rest macro) has no paired test here; use null, or gate on log_loss or accuracy",
        ));
    }
    Ok(())
}

/// The verdict of `gate` on `comparison`.
pub fn decide(gate: &GateSpec, comparison: &Comparison) -> Promotion {
    let metric = gate.metric.as_str();
    let base = comparison.baseline.headline().into_iter().find(|(m, _)| m == metric).map(|(_, v)| v);
    let new = comparison.candidate.headline().into_iter().find(|(m, _)| m == metric).map(|(_, v)| v);
    let (Some(base), Some(new)) = (base, new) else {
        return Promotion {
            eligible: false,
            reasons: vec![format!("{metric} is not a metric of this run's labels")],
        };
    };
    let improvement = if higher_is_better(metric) { new - base } else { base - new };
    let mut reasons = Vec::new();
    if !improvement.is_finite() {
        reasons.push(format!("{metric} is undefined on the test rows (baseline {base}, new {new})"));
        return Promotion { eligible: false, reasons };
    }
    let direction = if higher_is_better(metric) { "higher is better" } else { "lower is better" };
    let by_enough = improvement >= gate.min_delta;
    reasons.push(format!(
        "{metric} {base:.4} -> {new:.4} ({direction}): improvement {improvement:+.4} {} min_delta {:+.4}",
        if by_enough { ">=" } else { "<" },
        gate.min_delta
    ));
    let mut eligible = by_enough;
    if let Some(max_p) = gate.max_p_value {
        match comparison.p_value(metric) {
            Some(p) if p <= max_p && improvement > 0.0 => {
                reasons.push(format!("significantly better: p-value {p:.4} <= max_p_value {max_p}"));
            }
            Some(p) if improvement <= 0.0 => {
                eligible = false;
                reasons.push(format!(
                    "not better, so not significantly better (p-value {p:.4}, max_p_value {max_p})"
                ));
            }
            Some(p) => {
                eligible = false;
                reasons.push(format!("not significantly different: p-value {p:.4} > max_p_value {max_p}"));
            }
            None => {
                eligible = false;
                reasons.push(format!("no p-value for {metric} (fewer than two rows of each class?)"));
            }
        }
    }
    Promotion { eligible, reasons }
}

/// The verdict when `baseline.missing` is `"eligible"` and the name has no production run yet.
pub fn first_run(name: &str, root: &str) -> Promotion {
    Promotion {
        eligible: true,
        reasons: vec![format!(
            "{name} has no production run in {root} yet: nothing to compare with (baseline.missing: eligible)"
        )],
    }
}

/// The verdict for people, as `inspect` and `runs show` print it.
pub fn describe(promotion: Option<&Promotion>, s: &mut String) {
    use std::fmt::Write as _;
    let Some(p) = promotion else { return };
    let _ = writeln!(s, "\npromotion gate: {}", if p.eligible { "eligible" } else { "NOT eligible" });
    for reason in &p.reasons {
        let _ = writeln!(s, "  {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Scores;

    /// A baseline and a candidate that separates the classes better by `gain`.
    fn comparison(gain: f64, n: usize) -> Comparison {
        let base = crate::random::base(3, crate::random::Stream::Init(0));
        let (mut y, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n as u64 {
            let positive = crate::random::unit(base, 3 * i) < 0.3;
            let s = if positive { 1.0 } else { 0.0 };
            let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
            y.push(s as f32);
            a.push(sigmoid(s + crate::random::normal(base, 3 * i + 1) - 1.0));
            b.push(sigmoid((1.0 + gain) * s + crate::random::normal(base, 3 * i + 2) - 1.0));
        }
        let classes = [serde_json::json!(0), serde_json::json!(1)];
        Comparison::compute(&y, &Scores::Binary(a), &Scores::Binary(b), &classes, 200, 1, &Default::default())
    }

    fn gate(metric: &str, min_delta: f64, max_p_value: Option<f64>) -> GateSpec {
        GateSpec { metric: metric.into(), min_delta, max_p_value }
    }

    #[test]
    fn improvements_are_signed_so_that_positive_is_better_for_every_metric() {
        let better = comparison(1.5, 3000);
        for metric in ["roc_auc", "pr_auc", "log_loss", "brier", "accuracy"] {
            let d = better.deltas[metric];
            let improvement = if higher_is_better(metric) { d } else { -d };
            assert!(improvement > 0.0, "{metric}: delta {d}");
            assert!(decide(&gate(metric, 0.0, None), &better).eligible, "{metric}");
            assert!(!decide(&gate(metric, improvement + 1e-9, None), &better).eligible, "{metric}");
        }
        // Significance: a large gain passes a strict level; the same model does not.
        assert!(decide(&gate("roc_auc", 0.0, Some(0.001)), &better).eligible);
        assert!(decide(&gate("log_loss", 0.0, Some(0.01)), &better).eligible);
        let same = comparison(0.0, 3000);
        let held = decide(&gate("roc_auc", -0.05, Some(0.05)), &same);
        assert!(!held.eligible && held.reasons.len() == 2, "{held:?}");
        assert!(decide(&gate("roc_auc", -0.05, None), &same).eligible);
        // A worse candidate never passes a significance gate, however small its p-value.
        let worse = decide(&gate("roc_auc", -1.0, Some(0.5)), &comparison(-0.9, 3000));
        assert!(!worse.eligible, "{worse:?}");
    }

    #[test]
    fn multiclass_runs_refuse_binary_gates() {
        assert!(check(&gate("pr_auc", 0.0, None), true).is_err());
        assert!(check(&gate("roc_auc", 0.0, Some(0.05)), true).is_err());
        assert!(check(&gate("roc_auc", 0.0, None), true).is_ok());
        assert!(check(&gate("pr_auc", 0.0, Some(0.05)), false).is_ok());
    }
}
