//! On every binary dataset in `../shared/datasets/`, `trainyard train` with scikit-learn's
//! preprocessing (every category kept, nulls imputed with the most frequent value) reaches
//! scikit-learn's optimum: test ROC AUC within 0.002 and log loss within 1% of
//! `reference.json`. And `predict` on the test file reproduces the run's test scores exactly.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{datasets_dir, outcome, read_f64_column, reference_spec, references};
use serde_json::{Value, json};

#[test]
fn test_auc_and_log_loss_match_scikit_learn_on_every_binary_dataset() {
    let Some(root) = datasets_dir() else { return };
    let bin = env!("CARGO_BIN_EXE_trainyard");
    let mut checked = 0;
    for (dir, reference) in references(&root) {
        if reference["task"] != "binary" {
            continue;
        }
        let name = reference["dataset"].as_str().unwrap();
        let lr = &reference["models"]["logistic_regression"];
        assert_eq!(lr["params"]["C"], 1.0, "{name}: the spec below assumes C = 1");
        let spec = reference_spec(&dir, &reference, json!({"logistic": {"l2": 1.0, "max_iter": 2000}}));
        let tmp = tempfile::tempdir().unwrap();
        let spec_path = tmp.path().join("spec.json");
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        let run = tmp.path().join("run");
        let out = Command::new(bin)
            .args(["train", spec_path.to_str().unwrap(), "--output", run.to_str().unwrap()])
            .output()
            .unwrap();
        let (code, _, stderr) = outcome(&out);
        assert_eq!(code, 0, "{name}: {stderr}");

        let metrics: Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
        let (auc, ll) =
            (metrics["test"]["roc_auc"].as_f64().unwrap(), metrics["test"]["log_loss"].as_f64().unwrap());
        let (ref_auc, ref_ll) =
            (lr["test"]["roc_auc"].as_f64().unwrap(), lr["test"]["log_loss"].as_f64().unwrap());
        eprintln!(
            "{name}: test ROC AUC {auc:.6} (scikit-learn {ref_auc:.6}), log loss {ll:.6} (scikit-learn {ref_ll:.6}), \
             {} iterations, {} passes (scikit-learn n_iter {})",
            metrics["fit"]["iterations"], metrics["fit"]["objective_passes"], lr["n_iter"]
        );
        assert!(metrics["fit"]["converged"].as_bool().unwrap(), "{name}: {}", metrics["fit"]);
        assert!((auc - ref_auc).abs() <= 0.002, "{name}: AUC {auc} vs {ref_auc}");
        assert!((ll - ref_ll).abs() <= 0.01 * ref_ll, "{name}: log loss {ll} vs {ref_ll}");
        assert_eq!(metrics["test"]["rows"], reference["n_test"]);

        // predict from the run directory alone reproduces the test scores bit for bit.
        let scored = tmp.path().join("scored.parquet");
        let out = Command::new(bin)
            .args(["predict", "--model", run.to_str().unwrap(), "--data"])
            .arg(dir.join("test.parquet"))
            .args(["--out", scored.to_str().unwrap()])
            .output()
            .unwrap();
        let (code, _, stderr) = outcome(&out);
        assert_eq!(code, 0, "{name}: {stderr}");
        let (a, b) =
            (read_f64_column(&run.join("predictions.parquet"), "score"), read_f64_column(&scored, "score"));
        assert_eq!(a.len(), b.len());
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name}: predict differs from training"
        );
        checked += 1;
    }
    assert!(checked >= 4, "expected the four binary datasets, checked {checked}");
}
