//! `partition`: one logistic model per group next to the generic model, end to end through the
//! CLI. Where groups truly differ (half of them flip the sign of a feature) the composition beats
//! the generic model on test log loss; where they do not, a fixed pull toward the generic model
//! keeps the composition within 0.5% of it. Small groups, groups dropped by selection and null
//! keys fall back to the generic model, `predict` reproduces the composed test scores bit for
//! bit, and `inspect` summarizes.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array};
use common::{Fixture, outcome, read_f64_column, write_parquet};
use serde_json::{Value, json};

const BIG_GROUPS: i64 = 30;
const BIG_ROWS: usize = 800;
const SMALL_GROUPS: i64 = 6;
const SMALL_ROWS: usize = 60;
const NULL_ROWS: usize = 300;

/// Rows of `merchant` (null for the last `NULL_ROWS`), x0..x3 and a label from
/// z = s·1.5·x0 − x1 + 0.5·x2 − 1.5, where s = −1 for odd merchants when `flip`.
fn write_data(path: &Path, flip: bool) {
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let mut u = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut merchant: Vec<Option<i64>> = Vec::new();
    for g in 0..BIG_GROUPS {
        merchant.extend(std::iter::repeat_n(Some(1000 + g), BIG_ROWS));
    }
    for g in 0..SMALL_GROUPS {
        merchant.extend(std::iter::repeat_n(Some(5000 + g), SMALL_ROWS));
    }
    merchant.extend(std::iter::repeat_n(None, NULL_ROWS));
    let n = merchant.len();
    let mut x: Vec<Vec<f64>> = (0..4).map(|_| Vec::with_capacity(n)).collect();
    let mut y = Vec::with_capacity(n);
    for m in &merchant {
        let row: Vec<f64> = (0..4).map(|_| 2.0 * u() - 1.0).collect();
        let sign = if flip && m.is_some_and(|m| m % 2 == 1) { -1.0 } else { 1.0 };
        let z = sign * 1.5 * row[0] - row[1] + 0.5 * row[2] - 1.5;
        y.push(i64::from(u() < 1.0 / (1.0 + (-z).exp())));
        for (col, v) in x.iter_mut().zip(row) {
            col.push(v);
        }
    }
    let mut columns: Vec<(&str, ArrayRef)> = vec![("merchant", Arc::new(Int64Array::from(merchant)))];
    for (j, name) in ["x0", "x1", "x2", "x3"].into_iter().enumerate() {
        columns.push((name, Arc::new(Float64Array::from(x[j].clone()))));
    }
    columns.push(("y", Arc::new(Int64Array::from(y))));
    write_parquet(path, columns, 4096);
}

/// The spec; `group_l2` is `partition.l2` (null: `"auto"`).
fn spec(shrinkage: &str, group_l2: Option<f64>) -> Value {
    json!({
        "name": "groups",
        "data": {"features": ["groups.parquet"]},
        "label": "y",
        "features": {"numeric": ["x0", "x1", "x2", "x3"]},
        "holdout": {"random": {"fraction": 0.3}},
        "model": {"logistic": {"l2": 1.0}},
        "partition": {"by": "merchant", "min_rows": 200, "min_positives": 5, "shrinkage": shrinkage, "l2": group_l2},
    })
}

/// Trains `spec` on data written with `flip`; returns the fixture and metrics.json.
fn train(flip: bool, spec: &Value) -> (Fixture, Value) {
    let fx = Fixture::new();
    write_data(&fx.path("groups.parquet"), flip);
    let spec_path = fx.write_spec(spec);
    let out = fx.run(&["train", spec_path.to_str().unwrap(), "--output", fx.path("run").to_str().unwrap()]);
    let (code, _, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.path("run/metrics.json")).unwrap()).unwrap();
    (fx, metrics)
}

#[test]
fn composition_beats_the_generic_model_where_groups_differ() {
    for shrinkage in ["global", "none"] {
        let (_fx, m) = train(true, &spec(shrinkage, None));
        let p = &m["partition"];
        let (generic, composed) =
            (p["generic"]["log_loss"].as_f64().unwrap(), p["composition"]["log_loss"].as_f64().unwrap());
        eprintln!(
            "shrinkage {shrinkage}: test log loss generic {generic:.5}, composition {composed:.5}; {p}"
        );
        assert!(composed < 0.95 * generic, "{shrinkage}: composition {composed} vs generic {generic}");
        assert!(
            p["composition"]["roc_auc"].as_f64().unwrap() > p["generic"]["roc_auc"].as_f64().unwrap() + 0.02,
            "{p}"
        );
        assert_eq!(p["groups_fitted"], BIG_GROUPS);
        assert_eq!(p["groups_dropped_by_thresholds"], SMALL_GROUPS);
        let kept = p["groups_kept"].as_i64().unwrap();
        assert!(kept >= BIG_GROUPS / 2, "at least the flipped half keeps its models: {p}");
        assert_eq!(p["groups_fell_back"].as_i64().unwrap(), BIG_GROUPS + SMALL_GROUPS - kept);
        assert_eq!(p["train_groups"], BIG_GROUPS + SMALL_GROUPS);
        // The run's headline test metrics are the composition's.
        assert_eq!(m["test"]["log_loss"], p["composition"]["log_loss"]);
    }
}

#[test]
fn shrinkage_keeps_the_composition_near_the_generic_model_where_groups_do_not_differ() {
    // A pull of 100 toward the generic model, against ~560 train rows per group: the default
    // (the model's l2 of 1) lets noise cost ~1% (see the README).
    let (_fx, m) = train(false, &spec("global", Some(100.0)));
    let p = &m["partition"];
    let (generic, composed) =
        (p["generic"]["log_loss"].as_f64().unwrap(), p["composition"]["log_loss"].as_f64().unwrap());
    eprintln!("no group effect: test log loss generic {generic:.5}, composition {composed:.5}");
    assert!((composed - generic).abs() <= 0.005 * generic, "composition {composed} vs generic {generic}");
}

#[test]
fn small_groups_and_null_keys_fall_back_and_predict_reproduces_the_composition() {
    let (fx, m) = train(true, &spec("global", None));
    let run = fx.path("run");
    // groups.parquet: one row per group; the small ones have no model, and every flipped (odd)
    // big one keeps its own.
    let fitted = read_f64_column(&run.join("groups.parquet"), "train_rows");
    assert_eq!(fitted.len() as i64, BIG_GROUPS + SMALL_GROUPS);
    let groups = read_i64_column(&run.join("groups.parquet"), "group");
    let model_row = read_opt_i64_column(&run.join("groups.parquet"), "model_row");
    let mut has_model = std::collections::HashSet::new();
    for (g, row) in groups.iter().zip(&model_row) {
        if *g >= 5000 {
            assert!(row.is_none(), "small group {g} model_row {row:?}");
        } else if g % 2 == 1 {
            assert!(row.is_some(), "flipped group {g} has no model");
        }
        if row.is_some() {
            has_model.insert(*g);
        }
    }
    assert!(m["partition"]["test_rows_generic"].as_u64().unwrap() > 0);

    // Score the training file: rows of small groups and null keys get the generic model's score,
    // the others their group's; the test rows' scores equal predictions.parquet's.
    let out = fx.run(&[
        "predict",
        "--model",
        run.to_str().unwrap(),
        "--data",
        "groups.parquet",
        "--out",
        fx.path("scored.parquet").to_str().unwrap(),
    ]);
    let (code, _, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
    let scored = read_f64_column(&fx.path("scored.parquet"), "score");
    // The same rows scored by the generic model alone: a run without partition on the same split.
    let mut generic_spec = spec("global", None);
    generic_spec.as_object_mut().unwrap().remove("partition");
    let spec_path = fx.write_spec(&generic_spec);
    let out =
        fx.run(&["train", spec_path.to_str().unwrap(), "--output", fx.path("generic").to_str().unwrap()]);
    assert_eq!(outcome(&out).0, 0);
    let out = fx.run(&[
        "predict",
        "--model",
        fx.path("generic").to_str().unwrap(),
        "--data",
        "groups.parquet",
        "--out",
        fx.path("generic.parquet").to_str().unwrap(),
    ]);
    assert_eq!(outcome(&out).0, 0);
    let generic = read_f64_column(&fx.path("generic.parquet"), "score");
    let merchant = read_opt_i64_column(&fx.path("groups.parquet"), "merchant");
    let (mut same, mut differ) = (0, 0);
    for ((m, a), b) in merchant.iter().zip(&scored).zip(&generic) {
        if m.is_none_or(|m| !has_model.contains(&m)) {
            assert_eq!(a.to_bits(), b.to_bits(), "merchant {m:?}: a fallback row must get the generic score");
            same += 1;
        } else if a != b {
            differ += 1;
        }
    }
    let with_model = has_model.len() * BIG_ROWS;
    assert_eq!(
        same,
        BIG_GROUPS as usize * BIG_ROWS - with_model + SMALL_GROUPS as usize * SMALL_ROWS + NULL_ROWS
    );
    assert!(differ > with_model * 9 / 10, "group rows use their own models");

    // predict reproduces the training-time composed test scores: match them by value multiset,
    // since predictions.parquet has no key column here.
    let test_scores = read_f64_column(&run.join("predictions.parquet"), "score");
    let mut all: HashMap<u64, usize> = HashMap::new();
    for s in &scored {
        *all.entry(s.to_bits()).or_default() += 1;
    }
    for s in &test_scores {
        let c =
            all.get_mut(&s.to_bits()).unwrap_or_else(|| panic!("test score {s} not reproduced by predict"));
        assert!(*c > 0);
        *c -= 1;
    }

    let out = fx.run(&["inspect", run.to_str().unwrap()]);
    let (code, stdout, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("groups by \"merchant\""), "{stdout}");
    assert!(stdout.contains(&format!("{} keep their own model", has_model.len())), "{stdout}");
}

#[test]
fn partition_errors_name_the_field() {
    let fx = Fixture::new();
    write_data(&fx.path("groups.parquet"), false);
    let cases = [
        (json!({"by": "merchant", "shrinkage": "some"}), None, "partition.shrinkage"),
        (json!({"by": "merchant", "min_rows": 0}), None, "partition.min_rows"),
        (json!({"by": "merchant", "l2": -1.0}), None, "partition.l2"),
        (json!({"by": "x0"}), None, "partition.by"),
        (json!({"by": "nope"}), None, "nope"),
        (json!({"by": "merchant"}), Some(json!({"mlp": {}})), "partition"),
    ];
    for (partition, model, needle) in cases {
        let mut s = spec("global", None);
        s["partition"] = partition;
        if let Some(m) = model {
            s["model"] = m;
        }
        let spec_path = fx.write_spec(&s);
        let out =
            fx.run(&["train", spec_path.to_str().unwrap(), "--output", fx.path("bad").to_str().unwrap()]);
        let (code, _, stderr) = outcome(&out);
        assert_eq!(code, 2, "{needle}: {stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
        assert!(!fx.path("bad").exists());
    }
}

fn read_opt_i64_column(path: &Path, name: &str) -> Vec<Option<i64>> {
    use trainyard::data::{self, KeyRef, ParquetFile};
    let files = ParquetFile::open_all(&[path.to_path_buf()]).unwrap();
    let cols = vec![name.to_string()];
    let kinds = data::column_kinds(&files, &cols).unwrap();
    let (frame, _) = data::read(&files, &cols, &kinds, &[]).unwrap();
    let c = frame.column(name).unwrap();
    (0..c.len())
        .map(|i| match c.key_at(i) {
            Some(KeyRef::Int(v)) => Some(v),
            None => None,
            other => panic!("{name}: {other:?}"),
        })
        .collect()
}

fn read_i64_column(path: &Path, name: &str) -> Vec<i64> {
    read_opt_i64_column(path, name).into_iter().map(Option::unwrap).collect()
}
