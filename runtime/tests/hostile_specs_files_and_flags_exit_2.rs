//! Hostile specs, files and flags: a spec that is a directory or a device, a spec that is a JSON
//! array, has a key twice or an array in place of an object, a data directory with symbolic link
//! loops, a Parquet file with two columns of one name, special files given as data, and `render`
//! flags that are not valid Kubernetes values. Each fails with exit 2 and a message naming the
//! field, file, column or flag, and writes nothing; the symlink loops are read once and finish.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use common::{Fixture, outcome, write_parquet};
use serde_json::{Value, json};

/// Runs `args` and asserts exit 2, an empty stdout, every `needles` in stderr, and no run
/// directory (`out`, the `--output` of `train`).
fn rejects(fx: &Fixture, args: &[&str], needles: &[&str]) {
    let (code, stdout, stderr) = outcome(&fx.run(args));
    assert_eq!(code, 2, "{args:?}: stderr: {stderr}");
    assert!(stdout.is_empty(), "{args:?}: nothing on stdout on failure, got {stdout}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: expected {n:?} in: {stderr}");
    }
    assert!(!fx.path("out").exists() && !fx.path("runs").exists(), "{args:?}: wrote a run directory");
}

/// `validate` and `train` of the spec file `spec` both reject it with `needles`.
fn both_reject(fx: &Fixture, spec: &str, needles: &[&str]) {
    rejects(fx, &["validate", spec], needles);
    rejects(fx, &["train", spec, "--output", "out"], needles);
}

/// Writes `text` as `spec.json`.
fn write_raw_spec(fx: &Fixture, text: &str) {
    std::fs::write(fx.path("spec.json"), text).unwrap();
}

/// A spec over `features` (entries of `data.features`) of a file with id, amount, country, y.
fn spec_over(fx: &Fixture, features: &[&str]) -> Value {
    let mut spec = fx.base_spec();
    spec["data"]["features"] = json!(features);
    spec
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

#[test]
fn a_data_directory_with_symlink_loops_reads_each_file_once() {
    let fx = Fixture::new();
    let n = 400i64;
    let ids: Vec<i64> = (0..n).collect();
    std::fs::create_dir(fx.path("events")).unwrap();
    write_parquet(
        &fx.path("events/part-0.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(ids.clone())) as ArrayRef),
            ("amount", Arc::new(Float64Array::from(ids.iter().map(|&i| i as f64).collect::<Vec<_>>()))),
            (
                "country",
                Arc::new(StringArray::from(
                    ids.iter().map(|i| ["US", "FR"][(i % 2) as usize]).collect::<Vec<_>>(),
                )),
            ),
            ("y", Arc::new(Int64Array::from(ids.iter().map(|i| i64::from(i % 5 == 0)).collect::<Vec<_>>()))),
        ],
        100,
    );
    // Followed naively, one link reads the file 41 times (to the kernel's link limit) and two
    // double the paths at every level, so the search never ends.
    symlink(".", fx.path("events/loop")).unwrap();
    symlink(".", fx.path("events/again")).unwrap();
    let spec = spec_over(
        &fx,
        &["events", "events/*.parquet", "events/loop/part-0.parquet", "events/again/**/*.parquet"],
    );
    let path = fx.write_spec(&spec);
    let (code, stdout, stderr) = outcome(&fx.run(&["validate", path.to_str().unwrap(), "--format", "json"]));
    assert_eq!(code, 0, "stderr: {stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let load = &report["load"];
    let files = load["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "one file, read once: {files:?}");
    assert!(files[0]["path"].as_str().unwrap().ends_with("events/part-0.parquet"), "{files:?}");
    assert_eq!(files[0]["rows"], 400);
    assert_eq!(load["features_read"]["rows_in_files"], 400);
    assert_eq!(load["train_rows"].as_u64().unwrap() + load["test_rows"].as_u64().unwrap(), 400);
}

#[test]
fn a_spec_path_that_is_a_directory_or_a_device_is_a_usage_error() {
    let fx = Fixture::new();
    std::fs::create_dir(fx.path("somedir")).unwrap();
    both_reject(&fx, "somedir", &["spec file somedir is a directory, not a JSON file"]);
    both_reject(&fx, "/dev/zero", &["spec file /dev/zero is a character device, not a JSON file"]);
    rejects(&fx, &["render", "somedir", "--class", "cpu-small"], &["spec file somedir is a directory"]);
}

#[test]
fn a_spec_that_is_a_json_array_is_rejected() {
    let fx = Fixture::new();
    write_raw_spec(&fx, r#"["fixture", {"features": ["data.parquet"]}, "y", {"numeric": ["amount"]}]"#);
    both_reject(&fx, "spec.json", &["spec: must be a JSON object, got an array", "spec.json"]);
}

#[test]
fn duplicate_keys_in_a_spec_are_rejected_with_their_path() {
    let fx = Fixture::new();
    let base = serde_json::to_string(&fx.base_spec()).unwrap();
    let with = |field: &str| format!("{{{field}, {}", &base[1..]);
    write_raw_spec(&fx, &with(r#""params": {"owner": "fraud-team", "owner": "growth"}"#));
    both_reject(&fx, "spec.json", &[r#"params.owner: duplicate key "owner" at line 1"#, "spec.json"]);
    write_raw_spec(&fx, &with(r#""model": {"logistic": {"l2": 0.1, "max_iter": 50, "l2": 10}}"#));
    both_reject(&fx, "spec.json", &[r#"model.logistic.l2: duplicate key "l2""#]);
    write_raw_spec(&fx, &with(r#""label": "amount""#));
    both_reject(&fx, "spec.json", &[r#"label: duplicate key "label""#]);
    // In a --set value too.
    let path = fx.write_spec(&fx.base_spec());
    rejects(
        &fx,
        &["validate", path.to_str().unwrap(), "--set", r#"params={"a": 1, "a": 2}"#],
        &[r#"--set params: duplicate key "a""#],
    );
}

#[test]
fn arrays_in_place_of_spec_objects_are_rejected_with_their_path() {
    let fx = Fixture::new();
    for (field, value, path) in [
        ("model", json!({"logistic": [1.0, 500]}), "model.logistic"),
        ("model", json!({"mlp": {"hidden": [4], "early_stopping": [3, 0.1]}}), "model.mlp.early_stopping"),
        ("holdout", json!({"random": [0.25, "id"]}), "holdout.random"),
        ("features", json!([["amount"], ["country"]]), "features"),
        ("partition", json!(["country"]), "partition"),
    ] {
        let mut spec = fx.base_spec();
        spec[field] = value;
        let spec = fx.write_spec(&spec);
        both_reject(&fx, spec.to_str().unwrap(), &[&format!("{path}: must be a JSON object, got an array")]);
    }
    let mut spec = fx.base_spec();
    spec["data"]["filters"] = json!([["amount", 1.0]]);
    let spec = fx.write_spec(&spec);
    both_reject(&fx, spec.to_str().unwrap(), &["data.filters[0]: must be a JSON object, got an array"]);
    let spec = fx.write_spec(&fx.base_spec());
    rejects(
        &fx,
        &["validate", spec.to_str().unwrap(), "--set", "model.logistic=[1.0, 500]"],
        &["model.logistic: must be a JSON object, got an array"],
    );
}

#[test]
fn duplicate_parquet_column_names_are_rejected_naming_the_file_and_column() {
    let fx = Fixture::new();
    let n = 40i64;
    let ids: ArrayRef = Arc::new(Int64Array::from((0..n).collect::<Vec<_>>()));
    let amount: ArrayRef = Arc::new(Float64Array::from((0..n).map(|i| i as f64).collect::<Vec<_>>()));
    let other: ArrayRef = Arc::new(Float64Array::from((0..n).map(|i| -(i as f64)).collect::<Vec<_>>()));
    let country: ArrayRef =
        Arc::new(StringArray::from((0..n).map(|i| ["US", "FR"][(i % 2) as usize]).collect::<Vec<_>>()));
    let y: ArrayRef = Arc::new(Int64Array::from((0..n).map(|i| i % 2).collect::<Vec<_>>()));
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("y", DataType::Int64, false),
    ]);
    let batch = RecordBatch::try_new(Arc::new(schema), vec![ids, amount, country, other, y]).unwrap();
    trainyard::data::write_parquet(&fx.path("dup.parquet"), batch, 1000).unwrap();
    let spec = fx.write_spec(&spec_over(&fx, &["dup.parquet"]));
    both_reject(&fx, spec.to_str().unwrap(), &["dup.parquet: column \"amount\" appears 2 times"]);
}

#[test]
fn render_rejects_a_namespace_or_image_kubernetes_would_reject() {
    let fx = Fixture::new();
    let spec = fx.write_spec(&fx.base_spec());
    let spec = spec.to_str().unwrap();
    fn with<'a>(spec: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        [&["render", spec, "--class", "cpu-small"], extra].concat()
    }
    let render = |extra: &[&'static str]| with(spec, extra);
    for namespace in ["Bad NS", "team\nkind: Secret", "team-", ""] {
        rejects(
            &fx,
            &render(&["--namespace", namespace]),
            &[&format!("--namespace {namespace:?} is not a valid Kubernetes namespace"), "RFC 1123 label"],
        );
    }
    for (image, rule) in [
        ("ghcr.io/x/y:1 2", "whitespace or control characters"),
        ("ghcr.io/x/y:1\nkind: Secret", "whitespace or control characters"),
        ("", "it is empty"),
        ("ghcr.io/Team/y:1", "path component \"Team\""),
        ("ghcr.io/x/y:", "the tag"),
        ("ghcr.io/x/y@sha256:abc", "the digest"),
    ] {
        rejects(
            &fx,
            &render(&["--image", image]),
            &[&format!("--image {image:?} is not a valid image reference: "), rule],
        );
    }
    let (code, stdout, stderr) = outcome(&fx.run(&render(&[
        "--namespace",
        "ml-team",
        "--image",
        "registry.example.com:5000/ml/trainyard:1.2.3",
    ])));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("namespace: ml-team")
            && stdout.contains("image: registry.example.com:5000/ml/trainyard:1.2.3")
    );
}

#[test]
fn special_files_as_data_say_what_they_are() {
    let fx = Fixture::new();
    mkfifo(&fx.path("pipe.parquet"));
    let _socket = std::os::unix::net::UnixListener::bind(fx.path("sock.parquet")).unwrap();
    symlink("gone.parquet", fx.path("dangling.parquet")).unwrap();
    std::fs::create_dir(fx.path("parts")).unwrap();
    std::fs::copy(fx.path("data.parquet"), fx.path("parts/a.parquet")).unwrap();
    mkfifo(&fx.path("parts/b.parquet"));
    // Each after a good file, so that the culprit is `data.features[1]`.
    for (entry, what) in [
        ("/dev/null", "/dev/null is a character device, not a regular Parquet file"),
        ("/dev/zero", "/dev/zero is a character device, not a regular Parquet file"),
        ("pipe.parquet", "pipe.parquet is a named pipe (FIFO), not a regular Parquet file"),
        ("sock.parquet", "sock.parquet is a socket, not a regular Parquet file"),
        ("parts", "parts/b.parquet is a named pipe (FIFO), not a regular Parquet file"),
        (
            "dangling.parquet",
            "dangling.parquet is a dangling symbolic link (its target gone.parquet does not exist)",
        ),
        ("missing.parquet", "missing.parquet not found"),
    ] {
        let spec = fx.write_spec(&spec_over(&fx, &["data.parquet", entry]));
        both_reject(&fx, spec.to_str().unwrap(), &["data.features[1]: ", what]);
    }
}
