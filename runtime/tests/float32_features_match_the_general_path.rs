//! Numeric feature columns skip the columnar frame: they are decoded straight into the rows of
//! the design matrix (as f32) and, when the layout allows, standardized in place. The model must
//! not notice: the same values stored as float32 or float64 give byte-identical weights and
//! scores, and `predict` (which reads through the frame) reproduces the test scores of either.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array, StringArray};
use common::{Fixture, outcome, read_f64_column, write_parquet};
use serde_json::{Value, json};

const ROWS: usize = 3000;

/// Seeded rows: `a` with nulls, `b` dense, `c` with NaNs, a categorical and a label that
/// depends on all of them. Written once as float32 and once as the same values in float64.
fn write_data(fx: &Fixture) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut c = Vec::new();
    let mut country = Vec::new();
    let mut y = Vec::new();
    for i in 0..ROWS {
        let (u, v, w) = (next(), next(), next());
        a.push((i % 11 != 3).then_some((u * 40.0 - 7.0) as f32));
        b.push((v * 1e4 + 3e5) as f32);
        c.push(if i % 13 == 5 { f32::NAN } else { (w - 0.5) as f32 });
        country.push(["US", "CA", "FR", "DE"][i % 4]);
        let z = 0.08 * f64::from(a[i].unwrap_or(0.0)) + 4.0 * (v - 0.5) - 3.0 * (w - 0.5) + next() - 0.5;
        y.push(i64::from(z > 0.3));
    }
    let ids: Vec<i64> = (0..ROWS as i64).collect();
    let widen =
        |v: &[Option<f32>]| Float64Array::from(v.iter().map(|x| x.map(f64::from)).collect::<Vec<_>>());
    let b_opt: Vec<Option<f32>> = b.iter().copied().map(Some).collect();
    let c_opt: Vec<Option<f32>> = c.iter().copied().map(Some).collect();
    write_parquet(
        &fx.path("f32.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(ids.clone())) as ArrayRef),
            ("a", Arc::new(Float32Array::from(a.clone()))),
            ("b", Arc::new(Float32Array::from(b.clone()))),
            ("c", Arc::new(Float32Array::from(c.clone()))),
            ("country", Arc::new(StringArray::from(country.clone()))),
            ("y", Arc::new(Int64Array::from(y.clone()))),
        ],
        700,
    );
    write_parquet(
        &fx.path("f64.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            ("a", Arc::new(widen(&a))),
            ("b", Arc::new(widen(&b_opt))),
            ("c", Arc::new(widen(&c_opt))),
            ("country", Arc::new(StringArray::from(country))),
            ("y", Arc::new(Int64Array::from(y))),
        ],
        700,
    );
}

fn spec(file: &str, numeric: &[&str], categorical: &[&str], holdout: Value) -> Value {
    json!({
        "name": "f32",
        "data": {"features": [file]},
        "label": "y",
        "features": {"numeric": numeric, "categorical": categorical},
        "holdout": holdout,
    })
}

fn train(fx: &Fixture, spec: &Value, out: &str, threads: &str) -> Vec<u8> {
    let path = fx.write_spec(spec);
    let o = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["train", path.to_str().unwrap(), "--output", out])
        .env("RAYON_NUM_THREADS", threads)
        .current_dir(fx.dir.path())
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&o);
    assert_eq!(code, 0, "{stderr}");
    std::fs::read(fx.path(&format!("{out}/model.safetensors"))).unwrap()
}

fn test_scores(fx: &Fixture, run: &str) -> Vec<(i64, u64)> {
    let p = fx.path(&format!("{run}/predictions.parquet"));
    read_f64_column(&p, "id")
        .into_iter()
        .zip(read_f64_column(&p, "score"))
        .map(|(k, s)| (k as i64, s.to_bits()))
        .collect()
}

#[test]
fn float32_and_float64_copies_of_the_same_values_give_the_same_model() {
    let fx = Fixture::new();
    write_data(&fx);
    let random = json!({"random": {"fraction": 0.3, "key": "id"}});
    let cases: [(&[&str], &[&str]); 3] = [
        // Every feature float32 without nulls: standardized in place.
        (&["b"], &[]),
        // Nulls and NaN (missing indicators) and a one-hot block: built from the dense rows.
        (&["a", "b", "c"], &["country"]),
        (&["c", "b"], &[]),
    ];
    for (i, (numeric, categorical)) in cases.iter().enumerate() {
        let w32 = train(
            &fx,
            &spec("f32.parquet", numeric, categorical, random.clone()),
            &format!("runs/{i}-32"),
            "2",
        );
        let w64 = train(
            &fx,
            &spec("f64.parquet", numeric, categorical, random.clone()),
            &format!("runs/{i}-64"),
            "2",
        );
        assert!(w32 == w64, "case {i}: float32 and float64 inputs gave different weights");
        assert_eq!(test_scores(&fx, &format!("runs/{i}-32")), test_scores(&fx, &format!("runs/{i}-64")));
        let model32: Value = serde_json::from_str(
            &std::fs::read_to_string(fx.path(&format!("runs/{i}-32/model.json"))).unwrap(),
        )
        .unwrap();
        let model64: Value = serde_json::from_str(
            &std::fs::read_to_string(fx.path(&format!("runs/{i}-64/model.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(model32["pipeline"], model64["pipeline"], "case {i}");
    }
}

#[test]
fn in_place_design_is_thread_count_independent_and_predict_reproduces_it() {
    let fx = Fixture::new();
    write_data(&fx);
    let s = spec("f32.parquet", &["b", "c"], &[], json!({"random": {"fraction": 0.25}}));
    let one = train(&fx, &s, "runs/t1", "1");
    let two = train(&fx, &s, "runs/t2", "2");
    assert!(one == two, "weights differ between 1 and 2 threads");

    // A key makes predictions joinable; predict reads float32 and float64 through the frame.
    for file in ["f32.parquet", "f64.parquet"] {
        let s = spec(file, &["a", "b"], &["country"], json!({"random": {"fraction": 0.25, "key": "id"}}));
        train(&fx, &s, "runs/p", "2");
        let (code, _, stderr) =
            outcome(&fx.run(&["predict", "--model", "runs/p", "--data", file, "--out", "scores.parquet"]));
        assert_eq!(code, 0, "{stderr}");
        let all: std::collections::HashMap<i64, u64> = read_f64_column(&fx.path("scores.parquet"), "id")
            .into_iter()
            .zip(read_f64_column(&fx.path("scores.parquet"), "score"))
            .map(|(k, s)| (k as i64, s.to_bits()))
            .collect();
        let test = test_scores(&fx, "runs/p");
        assert!(test.len() > 500);
        for (id, s) in test {
            assert_eq!(all[&id], s, "{file} row {id}: predict differs from the training-time score");
        }
        std::fs::remove_dir_all(fx.path("runs/p")).unwrap();
    }
}

#[test]
fn validate_reports_float32_columns_like_any_other() {
    let fx = Fixture::new();
    write_data(&fx);
    let mut reports = Vec::new();
    for file in ["f32.parquet", "f64.parquet"] {
        let path = fx.write_spec(&spec(file, &["a", "b", "c"], &[], json!({"random": {"fraction": 0.2}})));
        let (code, stdout, stderr) =
            outcome(&fx.run(&["validate", path.to_str().unwrap(), "--format", "json"]));
        assert_eq!(code, 0, "{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        reports.push(report["features"].clone());
    }
    let f = reports[0].as_array().unwrap();
    assert!(f[0]["null_share"].as_f64().unwrap() > 0.05, "{f:?}");
    assert!(f[2]["null_share"].as_f64().unwrap() > 0.05, "NaN counts as missing: {f:?}");
    assert!(f[1]["cardinality"].as_u64().unwrap() > 1000);
    // Same kind (float), null shares, cardinalities and widths from either path.
    assert_eq!(reports[0], reports[1]);
}
