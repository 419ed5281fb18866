//! `trainyard inspect`: a human summary of a run directory's manifest, metrics and model.

use std::fmt::Write as _;
use std::path::Path;

use crate::artifact;
use crate::error::{Error, Result};
use crate::metrics::{Evaluation, MulticlassMetrics, SplitMetrics};
use crate::rundir::names;
use crate::runfiles::{Manifest, MetricsFile, RunFiles};

/// Renders the summary of the run in `run`.
pub fn inspect(run: &Path) -> Result<String> {
    let files = RunFiles::open(run)?;
    let manifest: Manifest = serde_json::from_value(files.manifest().clone())
        .map_err(|e| Error::data(format!("{}: {e}", files.path(names::MANIFEST).display())))?;
    let metrics: MetricsFile = files.read_json(names::METRICS)?;
    let loaded = artifact::load_from(&files)?;
    let (card, model) = (&loaded.card, &loaded.model);
    let mut s = String::new();
    let _ = writeln!(s, "run {}  ({})", manifest.run_id, manifest.status);
    let _ = writeln!(s, "  path        {}", run.display());
    let _ = writeln!(s, "  started     {}  ({:.2} s)", manifest.started_at, manifest.seconds);
    let _ = writeln!(
        s,
        "  trainyard   {} (commit {})  device {}  threads {}  seed {}",
        manifest.trainyard_version,
        manifest.git_commit.chars().take(12).collect::<String>(),
        manifest.device,
        manifest.threads,
        manifest.seed
    );
    let _ = writeln!(s, "  spec sha256 {}", manifest.spec_sha256);
    if let Some(params) = manifest.spec.get("params").filter(|p| p.as_object().is_some_and(|o| !o.is_empty()))
    {
        let _ = writeln!(s, "  params      {params}");
    }
    let _ = writeln!(s, "\ninputs:");
    for f in &manifest.inputs {
        let _ =
            writeln!(s, "  {:<14} {}  {} rows  {}", f.role, f.path.display(), f.rows, f.short_fingerprint());
    }
    model.describe(&card.hyperparameters, &metrics.fit, &card.pipeline, &card.labels.values(), &mut s);
    match (&metrics.train, &metrics.test) {
        (Evaluation::Binary(train), Evaluation::Binary(test)) => binary_metrics(train, test, &mut s),
        (Evaluation::Multiclass(train), Evaluation::Multiclass(test)) => {
            multiclass_metrics(train, test, &mut s)
        }
        _ => {
            return Err(Error::data(format!(
                "{}: the train and test metrics are of different kinds",
                files.path(names::METRICS).display()
            )));
        }
    }
    if let Some(g) = &metrics.partition {
        partition(g, &mut s);
    }
    if let Some(c) = &metrics.baseline {
        c.describe(&mut s);
    }
    crate::gate::describe(manifest.promotion.as_ref(), &mut s);
    let p = &metrics.phases;
    let _ = writeln!(
        s,
        "\nseconds: load {:.2}  features {:.2}  fit {:.2}{}  evaluate {:.2}  write {:.2}  total {:.2}",
        p.load,
        p.features,
        p.fit,
        p.group_selection.map_or(String::new(), |v| format!("  group selection {v:.2}")),
        p.evaluate,
        p.write,
        p.total
    );
    Ok(s)
}

/// The `partition` section: groups kept and dropped, how the strength was set, the selection,
/// and the generic model against the composition on the test rows.
fn partition(g: &crate::partition::PartitionReport, s: &mut String) {
    if g.strength.method.is_empty() {
        // Written before strength and selection were reported: every fitted group kept its model.
        let _ = writeln!(
            s,
            "\ngroups by {:?} (shrinkage {}): {} train groups, {} with their own model, {} fall back to the generic model",
            g.by, g.shrinkage, g.train_groups, g.groups_fitted, g.groups_fell_back
        );
    } else {
        let _ = writeln!(
            s,
            "\ngroups by {:?} (shrinkage {}): {} train groups, {} keep their own model; {} dropped by the thresholds, {} by selection{}",
            g.by,
            g.shrinkage,
            g.train_groups,
            g.groups_kept,
            g.groups_dropped_by_thresholds,
            g.groups_dropped_by_selection,
            if g.groups_not_converged > 0 {
                format!(", {} fits not converged", g.groups_not_converged)
            } else {
                String::new()
            }
        );
        strength(&g.strength, s);
        if let Some(sel) = &g.selection {
            let _ = writeln!(
                s,
                "  selection (held-out rows of {} folds, one-standard-error rule): log loss generic {:.5}, composition {:.5} ({:+.2}%, optimistic: the same rows decide and measure) over {} rows, {:.2} s",
                sel.folds,
                sel.validation_log_loss_generic,
                sel.validation_log_loss_composition,
                -100.0 * sel.validation_relative_gain,
                sel.rows,
                sel.seconds
            );
        }
    }
    let _ = writeln!(
        s,
        "  test rows scored by a group model {}, by the generic model {}; {} passes over group rows in {:.2} s",
        g.test_rows_group_model, g.test_rows_generic, g.group_passes, g.fit_seconds
    );
    let _ = writeln!(s, "  test           {:>10} {:>12}", "generic", "composition");
    let rows: [(&str, f64, f64); 5] = [
        ("ROC AUC", g.generic.roc_auc, g.composition.roc_auc),
        ("PR AUC", g.generic.pr_auc, g.composition.pr_auc),
        ("log loss", g.generic.log_loss, g.composition.log_loss),
        ("group ROC AUC", g.generic.group_mean_roc_auc, g.composition.group_mean_roc_auc),
        ("group log loss", g.generic.group_mean_log_loss, g.composition.group_mean_log_loss),
    ];
    for (name, a, b) in rows {
        let _ = writeln!(s, "  {name:<14}{a:>10.4} {b:>12.4}");
    }
    let _ = writeln!(
        s,
        "  (group rows: means over groups weighted by their test rows; per group in groups.parquet)"
    );
}

/// How the group models' strength was set, and with `auto` the grid it was chosen from.
fn strength(st: &crate::partition::StrengthReport, s: &mut String) {
    if st.method != "auto" {
        let _ = writeln!(s, "  strength (partition.l2) {:.4} ({})", st.l2, st.method);
        return;
    }
    if st.sample_groups == 0 {
        let _ = writeln!(s, "  strength (partition.l2 auto): not chosen, no group met the thresholds");
        return;
    }
    let _ = writeln!(
        s,
        "  strength (partition.l2 auto) {:.4}: chosen by {}-fold cross-validation on {} groups, {} train rows, {:.2} s",
        st.l2, st.folds, st.sample_groups, st.sample_rows, st.seconds
    );
    let _ = writeln!(s, "    {:>10} {:>14} {:>12}", "l2", "held-out loss", "would keep");
    for p in &st.grid {
        let mark = if p.l2 == st.l2 { "  <- chosen" } else { "" };
        let _ = writeln!(s, "    {:>10.4} {:>14.5} {:>12}{mark}", p.l2, p.validation_log_loss, p.groups_kept);
    }
}

fn rate(m: &crate::metrics::SplitMetrics) -> f64 {
    m.positives as f64 / m.rows.max(1) as f64
}

fn binary_metrics(train: &SplitMetrics, test: &SplitMetrics, s: &mut String) {
    let _ = writeln!(s, "\nmetrics        {:>10} {:>10}", "train", "test");
    let rows: [(&str, f64, f64); 10] = [
        ("ROC AUC", train.roc_auc, test.roc_auc),
        ("PR AUC", train.pr_auc, test.pr_auc),
        ("log loss", train.log_loss, test.log_loss),
        ("Brier", train.brier, test.brier),
        ("accuracy", train.accuracy, test.accuracy),
        ("precision", train.precision, test.precision),
        ("recall", train.recall, test.recall),
        ("F1", train.f1, test.f1),
        ("ECE", train.ece, test.ece),
        ("positive rate", rate(train), rate(test)),
    ];
    let _ = writeln!(s, "  rows         {:>10} {:>10}", train.rows, test.rows);
    for (name, a, b) in rows {
        let _ = writeln!(s, "  {name:<13}{a:>10.4} {b:>10.4}");
    }
}

/// The multiclass table: the headline metrics train vs test, then the test rows per class and
/// the confusion matrix (rows: true class, columns: predicted).
fn multiclass_metrics(train: &MulticlassMetrics, test: &MulticlassMetrics, s: &mut String) {
    let _ = writeln!(s, "\nmetrics ({} classes) {:>10} {:>10}", test.classes, "train", "test");
    let _ = writeln!(s, "  rows              {:>10} {:>10}", train.rows, test.rows);
    let rows: [(&str, f64, f64); 6] = [
        ("accuracy", train.accuracy, test.accuracy),
        ("log loss", train.log_loss, test.log_loss),
        ("macro F1", train.macro_f1, test.macro_f1),
        ("weighted F1", train.weighted_f1, test.weighted_f1),
        ("ROC AUC (ovr)", train.roc_auc_ovr_macro, test.roc_auc_ovr_macro),
        ("Brier", train.brier, test.brier),
    ];
    for (name, a, b) in rows {
        let _ = writeln!(s, "  {name:<18}{a:>10.4} {b:>10.4}");
    }
    let _ = writeln!(s, "\ntest per class     support  precision  recall      F1  ROC AUC");
    let names: Vec<String> = test
        .per_class
        .iter()
        .map(|c| match &c.class {
            serde_json::Value::String(v) => v.clone(),
            other => other.to_string(),
        })
        .collect();
    for (c, name) in test.per_class.iter().zip(&names) {
        let _ = writeln!(
            s,
            "  {name:<16} {:>8} {:>10.4} {:>7.4} {:>7.4} {:>8.4}",
            c.support, c.precision, c.recall, c.f1, c.roc_auc
        );
    }
    let width = names.iter().map(String::len).max().unwrap_or(1).max(5);
    let _ = write!(s, "\ntest confusion (rows: true, columns: predicted)\n  {:<width$}", "");
    for name in &names {
        let _ = write!(s, " {name:>width$}");
    }
    let _ = writeln!(s);
    for (name, row) in names.iter().zip(&test.confusion) {
        let _ = write!(s, "  {name:<width$}");
        for n in row {
            let _ = write!(s, " {n:>width$}");
        }
        let _ = writeln!(s);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A `partition` section as runs wrote it before strength and selection were reported.
    const BEFORE_SELECTION: &str = r#"{"by": "merchant", "shrinkage": "global", "train_groups": 36,
        "groups_fitted": 30, "groups_fell_back": 6, "test_rows_group_model": 7000,
        "test_rows_generic": 800, "groups_not_converged": 0, "group_passes": 900,
        "generic": {"roc_auc": 0.7, "pr_auc": 0.3, "log_loss": 0.5, "group_mean_roc_auc": 0.7, "group_mean_log_loss": 0.5},
        "composition": {"roc_auc": 0.8, "pr_auc": 0.4, "log_loss": 0.45, "group_mean_roc_auc": 0.8, "group_mean_log_loss": 0.45},
        "fit_seconds": 0.1, "evaluate_seconds": 0.01}"#;

    #[test]
    fn a_partition_report_from_before_selection_reads_as_every_fitted_group_kept() {
        let g: crate::partition::PartitionReport = serde_json::from_str(BEFORE_SELECTION).unwrap();
        let mut s = String::new();
        partition(&g, &mut s);
        assert!(s.contains("36 train groups, 30 with their own model, 6 fall back"), "{s}");
        assert!(!s.contains("strength"), "{s}");
        assert!(s.contains("log loss          0.5000       0.4500"), "{s}");
    }
}
