//! Multiclass through the CLI on `../shared/datasets/digits` (10 classes): multinomial logistic
//! regression with scikit-learn's preprocessing reaches scikit-learn's optimum (test log loss
//! within 1%, accuracy within 0.005 of `reference.json`), the MLP with its defaults is as
//! accurate as scikit-learn's `MLPClassifier` within 0.01, `predict` reproduces every
//! probability column bit for bit, `inspect` shows the per-class table, and the weights do not
//! depend on the thread count.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{datasets_dir, outcome, read_f64_column, reference_spec};
use serde_json::{Value, json};

fn digits() -> Option<(std::path::PathBuf, Value)> {
    let dir = datasets_dir()?.join("digits");
    let reference =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    Some((dir, reference))
}

/// Trains `model` on digits into `run` with `threads` rayon threads; returns metrics.json.
fn train(dir: &Path, reference: &Value, model: Value, run: &Path, threads: &str) -> Value {
    let spec = reference_spec(dir, reference, model);
    let spec_path = run.with_extension("json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["train", spec_path.to_str().unwrap(), "--output", run.to_str().unwrap()])
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap();
    let (code, stdout, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("10 classes, test accuracy"), "{stdout}");
    serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap()
}

/// `predict` on the test file writes the run's test probabilities, column by column, bit for bit.
fn predict_reproduces_the_test_probabilities(dir: &Path, run: &Path) {
    let scored = run.with_extension("scored.parquet");
    let out = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["predict", "--model", run.to_str().unwrap(), "--data"])
        .arg(dir.join("test.parquet"))
        .args(["--out", scored.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(outcome(&out).0, 0, "{}", outcome(&out).2);
    for class in 0..10 {
        let column = format!("probability_{class}");
        let (a, b) =
            (read_f64_column(&run.join("predictions.parquet"), &column), read_f64_column(&scored, &column));
        assert_eq!(a.len(), 360);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{column} differs");
    }
    assert_eq!(
        read_f64_column(&run.join("predictions.parquet"), "predicted"),
        read_f64_column(&scored, "predicted")
    );
    // Each row's probabilities sum to 1.
    let rows: Vec<Vec<f64>> =
        (0..10).map(|c| read_f64_column(&scored, &format!("probability_{c}"))).collect();
    for i in 0..360 {
        let total: f64 = rows.iter().map(|r| r[i]).sum();
        assert!((total - 1.0).abs() < 1e-12, "row {i} sums to {total}");
    }
}

#[test]
fn multinomial_logistic_reaches_scikit_learns_optimum_and_predict_reproduces_it() {
    let Some((dir, reference)) = digits() else { return };
    let lr = &reference["models"]["logistic_regression"];
    assert_eq!(lr["params"]["C"], 1.0, "the spec below assumes C = 1");
    let tmp = tempfile::tempdir().unwrap();
    let model = json!({"logistic": {"l2": 1.0, "max_iter": 2000}});
    let run = tmp.path().join("lr");
    let metrics = train(&dir, &reference, model.clone(), &run, "2");
    let test = &metrics["test"];
    let (ll, acc, auc) = (
        test["log_loss"].as_f64().unwrap(),
        test["accuracy"].as_f64().unwrap(),
        test["roc_auc_ovr_macro"].as_f64().unwrap(),
    );
    let (ref_ll, ref_acc, ref_auc) = (
        lr["test"]["log_loss"].as_f64().unwrap(),
        lr["test"]["accuracy"].as_f64().unwrap(),
        lr["test"]["roc_auc_ovr_macro"].as_f64().unwrap(),
    );
    eprintln!(
        "digits logistic: test log loss {ll:.6} (scikit-learn {ref_ll:.6}), accuracy {acc:.6} ({ref_acc:.6}), \
         ROC AUC ovr {auc:.6} ({ref_auc:.6}); {} iterations, {} passes (scikit-learn n_iter {})",
        metrics["fit"]["iterations"], metrics["fit"]["objective_passes"], lr["n_iter"]
    );
    assert!(metrics["fit"]["converged"].as_bool().unwrap(), "{}", metrics["fit"]);
    assert!((ll - ref_ll).abs() <= 0.01 * ref_ll, "log loss {ll} vs {ref_ll}");
    assert!((acc - ref_acc).abs() <= 0.005, "accuracy {acc} vs {ref_acc}");
    assert!((auc - ref_auc).abs() <= 0.002, "ROC AUC {auc} vs {ref_auc}");
    assert_eq!(test["rows"], 360);
    assert_eq!(test["per_class"].as_array().unwrap().len(), 10);
    let confusion: u64 = test["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(confusion, 360);
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["labels"]["classes"], json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    assert_eq!(card["kind"], "logistic");
    predict_reproduces_the_test_probabilities(&dir, &run);

    let out = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["inspect", run.to_str().unwrap()])
        .output()
        .unwrap();
    let (code, text, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
    for want in [
        "multinomial over 10 classes",
        "metrics (10 classes)",
        "macro F1",
        "test per class",
        "test confusion",
    ] {
        assert!(text.contains(want), "inspect lacks {want:?}:\n{text}");
    }

    // The same spec on one thread writes the same weights, byte for byte.
    let one = tmp.path().join("lr-1");
    train(&dir, &reference, model, &one, "1");
    assert_eq!(
        std::fs::read(run.join("model.safetensors")).unwrap(),
        std::fs::read(one.join("model.safetensors")).unwrap()
    );
}

#[test]
fn the_mlp_with_defaults_is_as_accurate_as_scikit_learns_and_thread_count_free() {
    let Some((dir, reference)) = digits() else { return };
    let ref_acc = reference["models"]["mlp"]["test"]["accuracy"].as_f64().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("mlp");
    let metrics = train(&dir, &reference, json!({"mlp": {}}), &run, "2");
    let acc = metrics["test"]["accuracy"].as_f64().unwrap();
    eprintln!(
        "digits mlp: test accuracy {acc:.6} (scikit-learn MLPClassifier {ref_acc:.6}), log loss {:.6}, {} epochs, kept {}",
        metrics["test"]["log_loss"], metrics["fit"]["epochs"], metrics["fit"]["best_epoch"]
    );
    assert!(acc >= ref_acc - 0.01, "accuracy {acc} vs scikit-learn {ref_acc}");
    predict_reproduces_the_test_probabilities(&dir, &run);
    let one = tmp.path().join("mlp-1");
    train(&dir, &reference, json!({"mlp": {}}), &one, "1");
    assert_eq!(
        std::fs::read(run.join("model.safetensors")).unwrap(),
        std::fs::read(one.join("model.safetensors")).unwrap()
    );
}

#[test]
fn a_multiclass_retrain_is_compared_with_its_baseline_on_log_loss_and_accuracy() {
    let Some((dir, reference)) = digits() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let baseline = tmp.path().join("baseline");
    train(&dir, &reference, json!({"logistic": {"l2": 1.0, "max_iter": 2000}}), &baseline, "2");
    // A much stronger penalty: worse log loss on the same 360 test rows.
    let mut spec = reference_spec(&dir, &reference, json!({"logistic": {"l2": 300.0, "max_iter": 2000}}));
    spec["baseline"] = json!({"run": baseline});
    spec["gate"] = json!({"metric": "log_loss", "min_delta": 0.0, "max_p_value": 0.05});
    let spec_path = tmp.path().join("retrain.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let run = tmp.path().join("retrain");
    let out = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["train", spec_path.to_str().unwrap(), "--output", run.to_str().unwrap(), "--fail-on-gate"])
        .output()
        .unwrap();
    let (code, stdout, stderr) = outcome(&out);
    assert_eq!(code, 3, "{stdout}{stderr}");
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    let b = &metrics["baseline"];
    assert_eq!(b["rows"], 360);
    assert!(b.get("roc_auc_test").is_none(), "no DeLong test for ten classes: {b}");
    let ll = &b["bootstrap"]["log_loss"];
    assert!(ll["delta"].as_f64().unwrap() > 0.0 && ll["low"].as_f64().unwrap() > 0.0, "{ll}");
    assert!(ll["p_value"].as_f64().unwrap() < 0.05, "{ll}");
    let base_ll = b["baseline"]["log_loss"].as_f64().unwrap();
    let new_ll = metrics["test"]["log_loss"].as_f64().unwrap();
    assert!((ll["delta"].as_f64().unwrap() - (new_ll - base_ll)).abs() < 1e-12, "{ll}");
    assert!(b["bootstrap"]["accuracy"]["delta"].is_number());

    // A binary-only gate on a multiclass label is exit 2 before the fit.
    spec["gate"] = json!({"metric": "pr_auc"});
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["train", spec_path.to_str().unwrap(), "--output", tmp.path().join("x").to_str().unwrap()])
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&out);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("gate.metric"), "{stderr}");
}
