//! Multiclass labels from the CLI on a small fixture: a 3-class string label trains end to end
//! (logistic and MLP, predictions with one probability column per class, `predict` equal to
//! them); where a multiclass label cannot work the run is refused with exit 2 before any
//! compute and no run directory: with `partition`, with a class on a single train row, with
//! more than 1,000 classes, and with `positive_label`; and a row key named like a predictions
//! column.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use common::{Fixture, outcome, write_parquet};
use serde_json::{Value, json};

/// 600 rows whose class (`ant`, `bee`, `cat`) follows `x` with noise, the first 450 in
/// `train.parquet` and the rest in `test.parquet`; the first `rare` rows get a fourth class,
/// `dodo`.
fn fixture(rare: usize) -> (Fixture, Value) {
    let fx = Fixture::new();
    let n = 600usize;
    let mut s = 7u64;
    let mut u = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut x, mut z, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let (a, b) = (u() * 6.0 - 3.0, u() * 2.0 - 1.0);
        let noisy = a + 0.8 * (u() - 0.5);
        let class = if i < rare {
            "dodo"
        } else if noisy < -1.0 {
            "ant"
        } else if noisy < 1.0 {
            "bee"
        } else {
            "cat"
        };
        x.push(a);
        z.push(b);
        y.push(class);
    }
    for (file, rows) in [("train.parquet", 0..450), ("test.parquet", 450..n)] {
        write_parquet(
            &fx.path(file),
            vec![
                (
                    "id",
                    Arc::new(Int64Array::from(rows.clone().map(|i| i as i64).collect::<Vec<_>>()))
                        as ArrayRef,
                ),
                ("x", Arc::new(Float64Array::from(x[rows.clone()].to_vec()))),
                ("z", Arc::new(Float64Array::from(z[rows.clone()].to_vec()))),
                ("species", Arc::new(StringArray::from(y[rows].to_vec()))),
            ],
            1000,
        );
    }
    let spec = json!({"name": "multi", "data": {"features": ["train.parquet"]}, "label": "species",
        "features": {"numeric": ["x", "z"]}, "holdout": {"files": ["test.parquet"]},
        "model": {"logistic": {}}});
    (fx, spec)
}

fn train(fx: &Fixture, spec: &Value) -> (i32, String, String) {
    let path = fx.write_spec(spec);
    outcome(&fx.run(&["train", path.to_str().unwrap(), "--output", "run"]))
}

fn refused(fx: &Fixture, spec: &Value, needles: &[&str]) {
    let (code, stdout, stderr) = train(fx, spec);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in: {stderr}");
    }
    assert!(!fx.path("run").exists(), "a refused run must leave no run directory");
}

#[test]
fn a_three_class_string_label_trains_and_predicts_with_both_models() {
    let (fx, mut spec) = fixture(0);
    for model in [
        json!({"logistic": {"class_weight": "balanced"}}),
        json!({"mlp": {"hidden": [16], "epochs": 40, "learning_rate": 0.01}}),
    ] {
        spec["model"] = model.clone();
        let _ = std::fs::remove_dir_all(fx.path("run"));
        let (code, stdout, stderr) = train(&fx, &spec);
        assert_eq!(code, 0, "{model}: {stderr}");
        assert!(stdout.contains("3 classes, test accuracy"), "{stdout}");
        let metrics: Value =
            serde_json::from_str(&std::fs::read_to_string(fx.path("run/metrics.json")).unwrap()).unwrap();
        let acc = metrics["test"]["accuracy"].as_f64().unwrap();
        assert!(acc > 0.7, "{model}: test accuracy {acc}");
        let classes: Vec<&str> = metrics["test"]["per_class"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["class"].as_str().unwrap())
            .collect();
        assert_eq!(classes, ["ant", "bee", "cat"]);
        let (code, _, stderr) = outcome(&fx.run(&[
            "predict",
            "--model",
            "run",
            "--data",
            "test.parquet",
            "--out",
            "scored.parquet",
        ]));
        assert_eq!(code, 0, "{stderr}");
        let p = common::read_f64_column(&fx.path("scored.parquet"), "probability_bee");
        assert_eq!(p.len(), 150);
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn multiclass_labels_are_refused_where_they_cannot_work() {
    let (fx, spec) = fixture(0);
    let with = |field: &str, value: Value| {
        let mut s = spec.clone();
        s[field] = value;
        s
    };
    refused(
        &fx,
        &with("partition", json!({"by": "id"})),
        &["label column \"species\" has 3 distinct values", "partition"],
    );
    refused(
        &fx,
        &with("positive_label", json!("bee")),
        &["positive_label: applies to binary labels", "3 classes"],
    );

    // One train row of a fourth class.
    let (fx, spec) = fixture(1);
    refused(&fx, &spec, &["label column \"species\": class \"dodo\" has 1 train row", "at least 2"]);

    // An identifier as the label: 1,200 distinct integers.
    let fx = Fixture::new();
    let n = 1200i64;
    write_parquet(
        &fx.path("ids.parquet"),
        vec![
            ("x", Arc::new(Float64Array::from((0..n).map(|i| i as f64).collect::<Vec<_>>())) as ArrayRef),
            ("y", Arc::new(Int64Array::from((0..n).collect::<Vec<_>>()))),
        ],
        1000,
    );
    let spec = json!({"name": "ids", "data": {"features": ["ids.parquet"]}, "label": "y",
        "features": {"numeric": ["x"]}});
    refused(&fx, &spec, &["label column \"y\" has 1200 distinct values", "at most 1000 classes"]);

    // A row key named like a predictions column would collide with it when the run is written.
    let fx = Fixture::new();
    write_parquet(
        &fx.path("keyed.parquet"),
        vec![
            ("x", Arc::new(Float64Array::from((0..200).map(f64::from).collect::<Vec<_>>())) as ArrayRef),
            ("y", Arc::new(Int64Array::from((0..200).map(|i| i64::from(i % 3 == 0)).collect::<Vec<_>>()))),
            ("score", Arc::new(Int64Array::from((0..200).collect::<Vec<i64>>()))),
        ],
        1000,
    );
    let spec = json!({"name": "keyed", "data": {"features": ["keyed.parquet"]}, "label": "y",
        "features": {"numeric": ["x"]}, "holdout": {"random": {"fraction": 0.3, "key": "score"}}});
    refused(
        &fx,
        &spec,
        &["holdout.random.key: column \"score\" has the name of a column predictions.parquet writes"],
    );
}
