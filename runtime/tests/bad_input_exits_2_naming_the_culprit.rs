//! Bad input: each case gets a clear message naming the field, file or column, exit code 2, and
//! no output, from the real binary.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use common::{Fixture, outcome, write_parquet};
use serde_json::{Value, json};

/// Runs `validate` on `spec` and asserts exit 2, empty stdout, and every `needles` in stderr.
fn rejects(fx: &Fixture, spec: &Value, needles: &[&str]) {
    let path = fx.write_spec(spec);
    let (code, stdout, stderr) = outcome(&fx.run(&["validate", path.to_str().unwrap()]));
    assert_eq!(code, 2, "stderr: {stderr}");
    assert!(stdout.is_empty(), "no report on failure, got {stdout}");
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in: {stderr}");
    }
}

#[test]
fn unknown_spec_field() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["holdout"]["random"]["fractoin"] = json!(0.1);
    rejects(&fx, &spec, &["holdout.random", "unknown field `fractoin`"]);
}

#[test]
fn missing_required_field() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec.as_object_mut().unwrap().remove("label");
    rejects(&fx, &spec, &["missing field `label`"]);
}

#[test]
fn wrong_json_type() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["features"]["numeric"] = json!("amount");
    rejects(&fx, &spec, &["features.numeric", "invalid type: string \"amount\", expected a sequence"]);
}

#[test]
fn malformed_json() {
    let fx = Fixture::new();
    std::fs::write(fx.path("spec.json"), "{\"name\": \"x\",\n \"data\": }").unwrap();
    let (code, _, stderr) = outcome(&fx.run(&["validate", "spec.json"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("malformed JSON at line 2") && stderr.contains("spec.json"), "{stderr}");
}

#[test]
fn feature_column_absent_lists_available_columns() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["features"]["numeric"] = json!(["amout"]);
    rejects(
        &fx,
        &spec,
        &["column \"amout\" not found in", "data.parquet", "columns: id, t, amount, country, y"],
    );
}

#[test]
fn label_column_absent() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["label"] = json!("is_fraud");
    rejects(&fx, &spec, &["column \"is_fraud\" not found in", "columns: id, t, amount"]);
}

fn with_label(fx: &Fixture, label: ArrayRef) -> Value {
    let n = label.len() as i64;
    write_parquet(
        &fx.path("odd.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())) as ArrayRef),
            ("amount", Arc::new(Float64Array::from((0..n).map(|i| i as f64).collect::<Vec<_>>()))),
            ("label", label),
        ],
        100,
    );
    json!({"name": "odd", "data": {"features": ["odd.parquet"]}, "label": "label",
           "features": {"numeric": ["amount"]}, "holdout": {"random": {"fraction": 0.5}}})
}

#[test]
fn label_with_nulls() {
    let fx = Fixture::new();
    let labels: Vec<Option<i64>> = (0..40).map(|i| (i != 7).then_some(i % 2)).collect();
    let spec = with_label(&fx, Arc::new(Int64Array::from(labels)));
    rejects(&fx, &spec, &["label column \"label\" has 1 null rows"]);
}

#[test]
fn label_with_nan() {
    let fx = Fixture::new();
    let labels: Vec<f64> = (0..40).map(|i| if i == 3 { f64::NAN } else { f64::from(i % 2) }).collect();
    let spec = with_label(&fx, Arc::new(Float64Array::from(labels)));
    rejects(&fx, &spec, &["label column \"label\" has NaN"]);
}

#[test]
fn label_with_a_third_value() {
    // A third value is a multiclass label; per-group models are what need a binary one.
    let fx = Fixture::new();
    let labels: Vec<&str> = (0..40).map(|i| ["fraud", "legit", "unknown"][i % 3]).collect();
    let binary_only = |mut spec: Value| {
        spec["partition"] = json!({"by": "id"});
        spec
    };
    let spec = binary_only(with_label(&fx, Arc::new(StringArray::from(labels))));
    rejects(
        &fx,
        &spec,
        &["label column \"label\" has 3 distinct values (\"fraud\", \"legit\", \"unknown\")"],
    );
    let ints: Vec<i64> = (0..40).map(|i| i % 3).collect();
    let spec = binary_only(with_label(&fx, Arc::new(Int64Array::from(ints))));
    rejects(&fx, &spec, &["label column \"label\" has values other than 0 and 1: 2"]);
}

#[test]
fn zero_rows_after_filters() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["data"]["filters"] = json!([{"column": "amount", "gt": 1e9}]);
    rejects(
        &fx,
        &spec,
        &["no rows left after the filters (data.filters)", "4 row groups skipped by statistics"],
    );
}

#[test]
fn file_that_is_not_parquet() {
    let fx = Fixture::new();
    std::fs::write(fx.path("notes.parquet"), "id,amount\n1,2\n").unwrap();
    let mut spec = fx.base_spec();
    spec["data"]["features"] = json!(["notes.parquet"]);
    rejects(&fx, &spec, &["notes.parquet: not a readable Parquet file"]);
}

#[test]
fn truncated_parquet_file() {
    let fx = Fixture::new();
    let bytes = std::fs::read(fx.path("data.parquet")).unwrap();
    // Cut in the middle of the data pages: the footer is gone.
    std::fs::write(fx.path("cut.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let mut spec = fx.base_spec();
    spec["data"]["features"] = json!(["cut.parquet"]);
    rejects(&fx, &spec, &["cut.parquet: not a readable Parquet file"]);
}

#[test]
fn glob_matching_nothing() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["data"]["features"] = json!(["charges/*.parquet"]);
    rejects(&fx, &spec, &["data.features[0]: glob \"charges/*.parquet\" matched no files"]);
}

#[test]
fn duplicate_join_keys() {
    let fx = Fixture::new();
    write_parquet(
        &fx.path("dup_labels.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2, 2, 3])) as ArrayRef),
            ("label", Arc::new(Int64Array::from(vec![0, 1, 0, 1]))),
        ],
        10,
    );
    let mut spec = fx.base_spec();
    spec["data"]["labels"] = json!(["dup_labels.parquet"]);
    spec["data"]["join_key"] = json!("id");
    spec["label"] = json!("label");
    rejects(&fx, &spec, &["data.labels: join key \"id\" value 2 appears more than once"]);
}

#[test]
fn date_range_with_an_empty_train_side() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["holdout"] = json!({"date_range": {"column": "t", "start": "2023-01-01", "end": "2024-03-01"}});
    rejects(&fx, &spec, &["holdout: the train side is empty", "holdout.date_range.start/end", "\"t\""]);
}

#[test]
fn date_range_with_an_empty_test_side() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["holdout"] = json!({"date_range": {"column": "t", "start": "2030-01-01", "end": "2030-03-01"}});
    rejects(&fx, &spec, &["holdout: the test side is empty"]);
}

#[test]
fn random_fraction_outside_the_open_unit_interval() {
    let fx = Fixture::new();
    for f in [0.0, 1.0, 2.5] {
        let mut spec = fx.base_spec();
        spec["holdout"]["random"]["fraction"] = json!(f);
        rejects(&fx, &spec, &[&format!("holdout.random.fraction: must be in (0, 1), got {f}")]);
    }
}

#[test]
fn string_column_declared_numeric() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["features"]["numeric"] = json!(["amount", "country"]);
    spec["features"]["categorical"] = json!([]);
    rejects(
        &fx,
        &spec,
        &["features.numeric[1]: column \"country\" is string; list it under features.categorical"],
    );
}

#[test]
fn column_type_drift_between_files_names_both_files() {
    let fx = Fixture::new();
    write_parquet(
        &fx.path("drift.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(vec![1000, 1001])) as ArrayRef),
            ("amount", Arc::new(StringArray::from(vec!["1.0", "2.0"]))),
            ("country", Arc::new(StringArray::from(vec!["US", "CA"]))),
            ("y", Arc::new(Int64Array::from(vec![0, 1]))),
        ],
        10,
    );
    let mut spec = fx.base_spec();
    spec["data"]["features"] = json!(["data.parquet", "drift.parquet"]);
    rejects(&fx, &spec, &["column \"amount\" is float in", "data.parquet but string in", "drift.parquet"]);
}

#[test]
fn set_override_is_validated_like_the_file() {
    let fx = Fixture::new();
    let path = fx.write_spec(&fx.base_spec());
    let (code, _, stderr) =
        outcome(&fx.run(&["validate", path.to_str().unwrap(), "--set", "holdout.random.fraction=1.5"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("holdout.random.fraction: must be in (0, 1), got 1.5"), "{stderr}");
}

#[test]
fn render_with_an_unknown_class_lists_the_known_ones() {
    let fx = Fixture::new();
    let path = fx.write_spec(&fx.base_spec());
    let (code, stdout, stderr) = outcome(&fx.run(&["render", path.to_str().unwrap(), "--class", "xl"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("unknown resource class \"xl\"; known: cpu-small, cpu-large, highmem, gpu"),
        "{stderr}"
    );
}
