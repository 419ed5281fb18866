//! `trainyard validate` with a `files` holdout on every dataset in `../shared/datasets/` reports
//! the row counts and positive rates that the dataset's `reference.json` (and README) state.

#![allow(clippy::unwrap_used)]

mod common;

use common::{datasets_dir, outcome, references};
use serde_json::{Value, json};

fn spec_for(dir: &std::path::Path, reference: &Value) -> Value {
    json!({
        "name": reference["dataset"],
        "data": {"features": [dir.join("train.parquet")]},
        "label": reference["label_column"],
        "features": reference["features"],
        "holdout": {"files": [dir.join("test.parquet")]},
    })
}

#[test]
fn validate_reports_reference_rows_and_positive_rates() {
    let Some(root) = datasets_dir() else { return };
    let mut checked = 0;
    for (dir, reference) in references(&root) {
        let tmp = tempfile::tempdir().unwrap();
        let spec_path = tmp.path().join("spec.json");
        std::fs::write(&spec_path, spec_for(&dir, &reference).to_string()).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainyard"))
            .args(["validate", spec_path.to_str().unwrap(), "--format", "json"])
            .output()
            .unwrap();
        let (code, stdout, stderr) = outcome(&out);
        let name = reference["dataset"].as_str().unwrap();
        if reference["task"] == "binary" {
            assert_eq!(code, 0, "{name}: {stderr}");
            let report: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(report["load"]["train_rows"], reference["n_train"], "{name}");
            assert_eq!(report["load"]["test_rows"], reference["n_test"], "{name}");
            for side in ["train", "test"] {
                let got = report[format!("{side}_positive_rate")].as_f64().unwrap();
                let want = reference[format!("positive_rate_{side}")].as_f64().unwrap();
                assert!((got - want).abs() < 5e-6, "{name} {side}: {got} vs {want}");
            }
            let n_features = reference["features"]["numeric"].as_array().unwrap().len()
                + reference["features"]["categorical"].as_array().unwrap().len();
            assert_eq!(report["features"].as_array().unwrap().len(), n_features, "{name}");
        } else {
            // Multiclass labels (digits: 10 classes) are accepted since multiclass models exist.
            assert_eq!(code, 0, "{name}: {stderr}");
            let report: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(report["load"]["train_rows"], reference["n_train"], "{name}");
            assert_eq!(report["load"]["test_rows"], reference["n_test"], "{name}");
            assert_eq!(report["labels"]["classes"], reference["classes"], "{name}");
        }
        checked += 1;
    }
    assert!(checked >= 5, "expected the five shared datasets, found {checked}");
}
