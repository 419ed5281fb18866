//! The MLP with its default hyperparameters, on every binary dataset in `../shared/datasets/`:
//! test ROC AUC at least max(logistic, MLP) of scikit-learn's `reference.json` minus 0.01, and
//! `predict` on the test file reproduces the run's test scores bit for bit. Plus determinism:
//! the same spec gives the same `model.safetensors` bytes with 1 and 2 threads.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{datasets_dir, outcome, read_f64_column, references};
use serde_json::{Value, json};

fn spec_for(dir: &Path, reference: &Value) -> Value {
    json!({
        "name": reference["dataset"],
        "data": {"features": [dir.join("train.parquet")]},
        "label": reference["label_column"],
        "features": reference["features"],
        "holdout": {"files": [dir.join("test.parquet")]},
        "model": {"mlp": {}},
    })
}

fn train(spec: &Value, run: &Path, threads: Option<&str>) {
    let spec_path = run.with_extension("json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainyard"));
    cmd.args(["train", spec_path.to_str().unwrap(), "--output", run.to_str().unwrap()]);
    if let Some(n) = threads {
        cmd.env("RAYON_NUM_THREADS", n);
    }
    let (code, _, stderr) = outcome(&cmd.output().unwrap());
    assert_eq!(code, 0, "{}: {stderr}", spec["name"]);
}

#[test]
fn default_mlp_reaches_the_reference_auc_and_predict_reproduces_its_scores() {
    let Some(root) = datasets_dir() else { return };
    let mut checked = 0;
    for (dir, reference) in references(&root) {
        if reference["task"] != "binary" {
            continue;
        }
        let name = reference["dataset"].as_str().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        train(&spec_for(&dir, &reference), &run, None);

        let metrics: Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
        let auc = metrics["test"]["roc_auc"].as_f64().unwrap();
        let models = &reference["models"];
        let floor = models["logistic_regression"]["test"]["roc_auc"]
            .as_f64()
            .unwrap()
            .max(models["mlp"]["test"]["roc_auc"].as_f64().unwrap())
            - 0.01;
        eprintln!(
            "{name}: MLP test ROC AUC {auc:.4} (floor {floor:.4}), {} epochs, kept {}",
            metrics["fit"]["epochs"], metrics["fit"]["best_epoch"]
        );
        assert!(auc >= floor, "{name}: AUC {auc} below {floor}");
        assert_eq!(metrics["fit"]["history"].as_array().unwrap().len() as u64, metrics["fit"]["epochs"]);

        let scored = tmp.path().join("scored.parquet");
        let out = Command::new(env!("CARGO_BIN_EXE_trainyard"))
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
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{name}: predict differs");
        checked += 1;
    }
    assert_eq!(checked, 4, "expected the four binary datasets");
}

#[test]
fn same_spec_gives_the_same_weights_with_one_or_two_threads() {
    let Some(root) = datasets_dir() else { return };
    let dir = root.join("adult");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let mut spec = spec_for(&dir, &reference);
    // Two epochs are enough to exercise shuffles, dropout, embeddings and early stopping state.
    spec["model"]["mlp"]["epochs"] = json!(2);
    let tmp = tempfile::tempdir().unwrap();
    let weights: Vec<Vec<u8>> = ["1", "2"]
        .iter()
        .map(|threads| {
            let run = tmp.path().join(format!("run-{threads}"));
            train(&spec, &run, Some(threads));
            std::fs::read(run.join("model.safetensors")).unwrap()
        })
        .collect();
    assert!(weights[0] == weights[1], "model.safetensors differs between 1 and 2 threads");
}
