//! `trainyard inspect`: a human summary of a run directory's manifest, metrics and model.

use std::fmt::Write as _;
use std::path::Path;

use crate::artifact;
use crate::error::{Error, Result};
use crate::model::{FitReport, Model};
use crate::rundir::names;
use crate::spec::ModelSpec;
use crate::train::{Manifest, MetricsFile};

/// Renders the summary of the run in `run`.
pub fn inspect(run: &Path) -> Result<String> {
    let files = artifact::RunFiles::open(run)?;
    let manifest: Manifest = serde_json::from_value(files.manifest().clone())
        .map_err(|e| Error::data(format!("{}: {e}", files.path(names::MANIFEST).display())))?;
    let metrics: MetricsFile = files.read_json(names::METRICS)?;
    let (card, model) = artifact::load_from(&files)?;
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
        let _ = writeln!(
            s,
            "  {:<14} {}  {} rows  sha256 {}",
            f.role,
            f.path.display(),
            f.rows,
            f.sha256.chars().take(16).collect::<String>()
        );
    }
    match (&card.hyperparameters, &metrics.fit, &model) {
        (ModelSpec::Logistic(h), FitReport::Logistic(f), Model::Logistic(m)) => {
            let _ = writeln!(
                s,
                "\nmodel: logistic (l2 {}, tol {}, max_iter {}, class_weight {}), {} design columns",
                h.l2,
                h.tol,
                h.max_iter,
                h.class_weight.as_deref().unwrap_or("none"),
                card.pipeline.width()
            );
            let _ = writeln!(
                s,
                "  fit: {} iterations, {} passes over the data, objective {:.6}, converged {} ({:?})",
                f.iterations, f.objective_passes, f.final_objective, f.converged, f.stop
            );
            let mut top: Vec<(usize, f64)> = m.coef.iter().copied().enumerate().collect();
            top.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
            let _ = writeln!(s, "  largest coefficients (standardized features):");
            for (j, c) in top.iter().take(5) {
                let _ = writeln!(s, "    {:>9.4}  {}", c, card.pipeline.names[*j]);
            }
        }
        (ModelSpec::Mlp(h), FitReport::Mlp(f), Model::Mlp(m)) => {
            let a = &m.net.arch;
            let _ = writeln!(
                s,
                "\nmodel: mlp {} -> {:?} -> 1 ({} numeric + embeddings {:?}), {} parameters, dropout {}",
                a.input_width(),
                a.hidden,
                a.numeric,
                a.embedding_dims,
                a.parameter_count(),
                a.dropout
            );
            let _ = writeln!(
                s,
                "  fit: {} epochs ({} steps of {} rows), kept epoch {}, early stopped {}, lr {} {}, \
                 weight decay {}{}",
                f.epochs,
                f.steps,
                f.batch_size,
                f.best_epoch,
                f.converged,
                h.learning_rate,
                format!("{:?}", h.schedule).to_lowercase(),
                h.weight_decay,
                f.resumed_from
                    .map(|(e, st)| format!(", resumed at epoch {} step {st}", e + 1))
                    .unwrap_or_default()
            );
            let _ = writeln!(s, "  epoch  train loss  val loss  val AUC");
            for e in &f.history {
                let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.5}"));
                let _ = writeln!(
                    s,
                    "  {:>5}  {:>10.5}  {:>8}  {:>7}{}",
                    e.epoch,
                    e.train_loss,
                    opt(e.validation_loss),
                    opt(e.validation_auc),
                    if e.epoch == f.best_epoch { "  *" } else { "" }
                );
            }
        }
        _ => {
            return Err(Error::data(format!(
                "{}: model and metrics disagree on the model kind",
                run.display()
            )));
        }
    }
    let _ = writeln!(s, "\nmetrics        {:>10} {:>10}", "train", "test");
    let rows: [(&str, f64, f64); 10] = [
        ("ROC AUC", metrics.train.roc_auc, metrics.test.roc_auc),
        ("PR AUC", metrics.train.pr_auc, metrics.test.pr_auc),
        ("log loss", metrics.train.log_loss, metrics.test.log_loss),
        ("Brier", metrics.train.brier, metrics.test.brier),
        ("accuracy", metrics.train.accuracy, metrics.test.accuracy),
        ("precision", metrics.train.precision, metrics.test.precision),
        ("recall", metrics.train.recall, metrics.test.recall),
        ("F1", metrics.train.f1, metrics.test.f1),
        ("ECE", metrics.train.ece, metrics.test.ece),
        ("positive rate", rate(&metrics.train), rate(&metrics.test)),
    ];
    let _ = writeln!(s, "  rows         {:>10} {:>10}", metrics.train.rows, metrics.test.rows);
    for (name, a, b) in rows {
        let _ = writeln!(s, "  {name:<13}{a:>10.4} {b:>10.4}");
    }
    if let Some(g) = &metrics.partition {
        let _ = writeln!(
            s,
            "\ngroups by {:?} (shrinkage {}): {} train groups, {} with their own model, {} fall back to the generic model{}",
            g.by,
            g.shrinkage,
            g.train_groups,
            g.groups_fitted,
            g.groups_fell_back,
            if g.groups_not_converged > 0 {
                format!(", {} not converged", g.groups_not_converged)
            } else {
                String::new()
            }
        );
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
    let p = &metrics.phases;
    let _ = writeln!(
        s,
        "\nseconds: load {:.2}  features {:.2}  fit {:.2}  evaluate {:.2}  write {:.2}  total {:.2}",
        p.load, p.features, p.fit, p.evaluate, p.write, p.total
    );
    Ok(s)
}

fn rate(m: &crate::metrics::SplitMetrics) -> f64 {
    m.positives as f64 / m.rows.max(1) as f64
}
