//! Hostile data, weights, sizes and artifacts: each case exits 2 (or 1 where the machine, not
//! the input, is at fault) with a message naming the column, file or field, and writes nothing.
//! One test per case of the hardening issue, named after it.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array, StringArray};
use common::{Fixture, outcome, write_parquet};
use serde_json::{Value, json};

/// `n` rows: id, x (f64, from `x`), c (3 strings), y (every 4th positive), w (from `w`).
fn table(fx: &Fixture, name: &str, n: i64, x: impl Fn(i64) -> f64, w: impl Fn(i64) -> f64) {
    write_parquet(
        &fx.path(name),
        vec![
            ("id", Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())) as ArrayRef),
            ("x", Arc::new(Float64Array::from((0..n).map(&x).collect::<Vec<_>>()))),
            ("x32", Arc::new(Float32Array::from((0..n).map(|i| x(i) as f32).collect::<Vec<_>>()))),
            (
                "c",
                Arc::new(StringArray::from(
                    (0..n).map(|i| ["a", "b", "c"][(i % 3) as usize]).collect::<Vec<_>>(),
                )),
            ),
            ("y", Arc::new(Int64Array::from((0..n).map(|i| i64::from(i % 4 == 0)).collect::<Vec<_>>()))),
            ("w", Arc::new(Float64Array::from((0..n).map(&w).collect::<Vec<_>>()))),
        ],
        100,
    );
}

fn spec_for(file: &str, numeric: &str) -> Value {
    json!({
        "name": "hostile",
        "data": {"features": [file]},
        "label": "y",
        "features": {"numeric": [numeric], "categorical": ["c"]},
        "holdout": {"random": {"fraction": 0.25, "key": "id"}},
        "device": "cpu",
    })
}

/// Runs `train` on `spec` into `runs/out` and asserts exit `code`, every needle in stderr, no
/// stdout, and that nothing was written under `runs/`.
fn train_fails(fx: &Fixture, spec: &Value, code: i32, needles: &[&str]) -> String {
    let path = fx.write_spec(spec);
    let (got, stdout, stderr) = outcome(&fx.run(&["train", path.to_str().unwrap(), "--output", "runs/out"]));
    assert_eq!(got, code, "stderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !fx.path("runs").exists(),
        "something was written: {:?}",
        std::fs::read_dir(fx.path("runs")).ok()
    );
    stderr
}

fn validate_fails(fx: &Fixture, spec: &Value, needles: &[&str]) {
    let path = fx.write_spec(spec);
    let (code, stdout, stderr) = outcome(&fx.run(&["validate", path.to_str().unwrap()]));
    assert_eq!(code, 2, "stderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in: {stderr}");
    }
}

fn train_ok(fx: &Fixture, spec: &Value, out: &str) {
    let path = fx.write_spec(spec);
    let (code, _, stderr) = outcome(&fx.run(&["train", path.to_str().unwrap(), "--output", out]));
    assert_eq!(code, 0, "{stderr}");
}

// Case 1: non-finite or overflowing numeric features.

#[test]
fn infinite_float64_feature_names_column_file_and_row() {
    let fx = Fixture::new();
    table(&fx, "inf.parquet", 400, |i| if i == 237 { f64::INFINITY } else { i as f64 }, |_| 1.0);
    let spec = spec_for("inf.parquet", "x");
    train_fails(&fx, &spec, 2, &["features.numeric[0]: column \"x\" in", "inf.parquet has inf at row 237"]);
    validate_fails(&fx, &spec, &["inf.parquet has inf at row 237"]);
    let mut mlp = spec.clone();
    mlp["model"] = json!({"mlp": {"hidden": [4], "epochs": 1}});
    train_fails(&fx, &mlp, 2, &["has inf at row 237"]);
}

#[test]
fn infinite_float32_feature_names_column_file_and_row() {
    let fx = Fixture::new();
    table(&fx, "inf32.parquet", 400, |i| if i == 301 { f64::NEG_INFINITY } else { i as f64 }, |_| 1.0);
    train_fails(
        &fx,
        &spec_for("inf32.parquet", "x32"),
        2,
        &["column \"x32\" in", "inf32.parquet has -inf at row 301"],
    );
}

#[test]
fn finite_values_beyond_float32_range() {
    // The design holds float32: a double beyond its range would become infinity.
    let fx = Fixture::new();
    table(&fx, "huge.parquet", 400, |i| if i % 50 == 3 { 1e308 } else { i as f64 }, |_| 1.0);
    let needles = ["column \"x\" in", "huge.parquet has 1e308 at row 3", "read as float32"];
    train_fails(&fx, &spec_for("huge.parquet", "x"), 2, &needles);
    validate_fails(&fx, &spec_for("huge.parquet", "x"), &needles);
}

#[test]
fn predict_refuses_infinite_and_out_of_range_values() {
    let fx = Fixture::new();
    table(&fx, "ok.parquet", 400, |i| i as f64, |_| 1.0);
    train_ok(&fx, &spec_for("ok.parquet", "x"), "run");
    table(&fx, "new.parquet", 50, |i| if i == 17 { f64::INFINITY } else { i as f64 }, |_| 1.0);
    let (code, _, stderr) =
        outcome(&fx.run(&["predict", "--model", "run", "--data", "new.parquet", "--out", "scores.parquet"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("column \"x\" in new.parquet has inf at row 17"), "{stderr}");
    // Finite, but beyond float32, which the design holds.
    table(&fx, "far.parquet", 50, |i| if i == 9 { 1e300 } else { i as f64 }, |_| 1.0);
    let (code, _, stderr) =
        outcome(&fx.run(&["predict", "--model", "run", "--data", "far.parquet", "--out", "scores.parquet"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("column \"x\" in far.parquet has 1e300 at row 9"), "{stderr}");
    // Within float32, but 3e38 / the train scale (about 1e-4) is beyond it: the score would be
    // 0 or 1.
    table(&fx, "tiny.parquet", 400, |i| i as f64 * 1e-6, |_| 1.0);
    train_ok(&fx, &spec_for("tiny.parquet", "x"), "tiny");
    table(&fx, "far32.parquet", 50, |i| if i == 9 { 3e38 } else { i as f64 }, |_| 1.0);
    let (code, _, stderr) = outcome(&fx.run(&[
        "predict",
        "--model",
        "tiny",
        "--data",
        "far32.parquet",
        "--out",
        "scores.parquet",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("column \"x\": the value 3.0")
            && stderr.contains("e38 at row 9 standardizes to infinity"),
        "{stderr}"
    );
    assert!(!fx.path("scores.parquet").exists());
}

// Case 2: degenerate weights.

fn weighted(fx: &Fixture, w: impl Fn(i64) -> f64) -> Value {
    table(fx, "w.parquet", 400, |i| (i % 37) as f64, w);
    let mut spec = spec_for("w.parquet", "x");
    spec["weight"] = json!("w");
    spec
}

#[test]
fn all_weights_zero() {
    let fx = Fixture::new();
    let spec = weighted(&fx, |_| 0.0);
    train_fails(&fx, &spec, 2, &["weight: column \"w\": every train row has weight 0"]);
}

#[test]
fn zero_weight_on_every_positive_or_every_negative() {
    let fx = Fixture::new();
    let spec = weighted(&fx, |i| if i % 4 == 0 { 0.0 } else { 1.0 });
    train_fails(&fx, &spec, 2, &["weight: column \"w\": every positive (1) train row has weight 0"]);
    let fx = Fixture::new();
    let spec = weighted(&fx, |i| if i % 4 == 0 { 1.0 } else { 0.0 });
    train_fails(&fx, &spec, 2, &["every negative (0) train row has weight 0"]);
}

#[test]
fn weights_whose_sum_overflows() {
    let fx = Fixture::new();
    let spec = weighted(&fx, |_| 1e37);
    train_fails(&fx, &spec, 2, &["weight: column \"w\": the train weights sum to", "beyond float32 range"]);
    let mut mlp = spec.clone();
    mlp["model"] = json!({"mlp": {"hidden": [4], "epochs": 1}});
    let stderr = train_fails(&fx, &mlp, 2, &["beyond float32 range"]);
    assert!(!stderr.contains("learning_rate"), "{stderr}");
    let fx = Fixture::new();
    let spec = weighted(&fx, |_| 1e39);
    train_fails(&fx, &spec, 2, &["weight column \"w\" has 1000000000000000000000000000000000000000 at row"]);
}

#[test]
fn large_but_representable_weights_train_the_mlp() {
    let fx = Fixture::new();
    let mut spec = weighted(&fx, |_| 1e33);
    spec["model"] = json!({"mlp": {"hidden": [4], "epochs": 2}});
    train_ok(&fx, &spec, "runs/big");
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.path("runs/big/metrics.json")).unwrap()).unwrap();
    assert!(metrics["test"]["log_loss"].as_f64().unwrap().is_finite(), "{metrics}");
}

// Case 3: sizes that cannot be allocated.

#[test]
fn hidden_layer_wider_than_any_address_space_is_a_spec_error() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["model"] = json!({"mlp": {"hidden": [18446744073709551615u64]}});
    train_fails(&fx, &spec, 2, &["model.mlp.hidden[0]: 18446744073709551615 units"]);
}

#[test]
fn hidden_layer_and_embedding_larger_than_memory_are_refused_with_the_estimate() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["model"] = json!({"mlp": {"hidden": [1099511627776u64]}});
    train_fails(&fx, &spec, 2, &["memory: this run needs about", "the process may use", "model.mlp.hidden"]);
    spec["model"] = json!({"mlp": {"embedding_dim": 1099511627776u64}});
    train_fails(&fx, &spec, 2, &["memory: this run needs about", "model.mlp.embedding_dim"]);
}

#[test]
fn a_categorical_with_200000_levels_trains_as_codes_not_one_hot_columns() {
    // Dense one-hot this was 200,000 rows x 160,000 columns of float32 (120 GiB) and refused;
    // as codes it is one u32 a row and 160,000 coefficients.
    let fx = Fixture::new();
    let n = 200_000i64;
    write_parquet(
        &fx.path("wide.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())) as ArrayRef),
            ("merchant", Arc::new(StringArray::from((0..n).map(|i| format!("m{i}")).collect::<Vec<_>>()))),
            ("y", Arc::new(Int64Array::from((0..n).map(|i| i64::from(i % 4 == 0)).collect::<Vec<_>>()))),
        ],
        1 << 16,
    );
    let spec = json!({
        "name": "wide",
        "data": {"features": ["wide.parquet"]},
        "label": "y",
        "features": {"categorical": ["merchant"], "min_category_count": 1},
        "holdout": {"random": {"fraction": 0.2}},
        "device": "cpu",
    });
    train_ok(&fx, &spec, "wide");
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.path("wide/metrics.json")).unwrap()).unwrap();
    assert!(metrics["design_width"].as_u64().unwrap() > 150_000, "{}", metrics["design_width"]);
    assert_eq!(metrics["fit"]["converged"], true, "{}", metrics["fit"]);
}

#[test]
fn validate_shows_the_memory_estimate() {
    let fx = Fixture::new();
    let path = fx.write_spec(&fx.base_spec());
    let (code, stdout, stderr) = outcome(&fx.run(&["validate", path.to_str().unwrap()]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("memory: about") && stdout.contains("designs: 200 rows x"), "{stdout}");
}

#[test]
fn synth_sizes_beyond_memory_are_refused() {
    let fx = Fixture::new();
    for args in [
        &["synth", "--rows", "1000000000000000000", "--out", "s"][..],
        &["synth", "--rows", "1000", "--numeric", "100000000", "--files", "1", "--out", "s"][..],
    ] {
        let (code, _, stderr) = outcome(&fx.run(args));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("synth: generating this dataset needs about"), "{stderr}");
        assert!(!fx.path("s").exists());
    }
}

#[test]
fn an_allocation_that_fails_anyway_is_exit_1_with_one_line() {
    let fx = Fixture::new();
    let bin = env!("CARGO_BIN_EXE_trainyard");
    // An address-space limit the memory estimate does not know about: the allocation itself fails.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v 300000 && exec {bin} synth --rows 5000000 --files 1 --out s"))
        .current_dir(fx.dir.path())
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&out);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("error: out of memory: allocating"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

// Case 6: artifact integrity.

fn flip(path: &Path, at_fraction: f64, count: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let start = ((bytes.len() as f64) * at_fraction) as usize;
    for b in &mut bytes[start..start + count] {
        *b ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn corrupt_model_weights_are_refused_by_predict_and_inspect() {
    let fx = Fixture::new();
    let spec = fx.base_spec();
    train_ok(&fx, &spec, "run");
    flip(&fx.path("run/model.safetensors"), 0.7, 40);
    let (code, _, stderr) =
        outcome(&fx.run(&["predict", "--model", "run", "--data", "data.parquet", "--out", "scores.parquet"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("model.safetensors: sha256") && stderr.contains("does not match the manifest"),
        "{stderr}"
    );
    assert!(!fx.path("scores.parquet").exists());
    let (code, _, stderr) = outcome(&fx.run(&["inspect", "run"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("model.safetensors: sha256"), "{stderr}");
}

#[test]
fn edited_model_card_is_refused() {
    let fx = Fixture::new();
    train_ok(&fx, &fx.base_spec(), "run");
    let card = std::fs::read_to_string(fx.path("run/model.json")).unwrap();
    std::fs::write(fx.path("run/model.json"), card.replacen("\"median\": ", "\"median\": 1", 1)).unwrap();
    let (code, _, stderr) =
        outcome(&fx.run(&["predict", "--model", "run", "--data", "data.parquet", "--out", "scores.parquet"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("model.json: sha256"), "{stderr}");
}

#[test]
fn manifest_records_a_digest_of_every_artifact() {
    let fx = Fixture::new();
    train_ok(&fx, &fx.base_spec(), "run");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.path("run/manifest.json")).unwrap()).unwrap();
    let digests = manifest["artifacts"].as_object().unwrap();
    let mut names: Vec<&str> = digests.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "curves.json",
            "metrics.json",
            "model.json",
            "model.safetensors",
            "predictions.parquet",
            "report.html"
        ]
    );
    use sha2::Digest as _;
    let bytes = std::fs::read(fx.path("run/model.safetensors")).unwrap();
    let hex: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digests["model.safetensors"], hex);
}

// Case 8: input errors reported as exit 1.

#[test]
fn missing_model_weights_is_exit_2() {
    let fx = Fixture::new();
    train_ok(&fx, &fx.base_spec(), "run");
    std::fs::remove_file(fx.path("run/model.safetensors")).unwrap();
    let (code, _, stderr) =
        outcome(&fx.run(&["predict", "--model", "run", "--data", "data.parquet", "--out", "scores.parquet"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("model.safetensors is missing; the run directory is incomplete"), "{stderr}");
}

#[test]
fn predict_out_that_is_a_directory_is_exit_2() {
    let fx = Fixture::new();
    train_ok(&fx, &fx.base_spec(), "run");
    std::fs::create_dir(fx.path("outdir")).unwrap();
    let (code, _, stderr) =
        outcome(&fx.run(&["predict", "--model", "run", "--data", "data.parquet", "--out", "outdir"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--out outdir is a directory"), "{stderr}");
    assert_eq!(std::fs::read_dir(fx.path("outdir")).unwrap().count(), 0);
}

#[test]
fn inspect_on_a_file_is_exit_2() {
    let fx = Fixture::new();
    let (code, _, stderr) = outcome(&fx.run(&["inspect", "data.parquet"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("data.parquet is a file, not a run directory"), "{stderr}");
    let (code, _, stderr) = outcome(&fx.run(&["inspect", "nowhere"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("run directory nowhere not found"), "{stderr}");
}

#[test]
fn synth_out_that_is_a_file_is_exit_2() {
    let fx = Fixture::new();
    let before = std::fs::read(fx.path("data.parquet")).unwrap();
    let (code, _, stderr) = outcome(&fx.run(&["synth", "--rows", "100", "--out", "data.parquet"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--out data.parquet exists and is not a directory"), "{stderr}");
    assert_eq!(std::fs::read(fx.path("data.parquet")).unwrap(), before);
}

// Case 10: partition.by on a column with another role.

#[test]
fn partition_by_the_label_weight_or_join_key_is_refused() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["partition"] = json!({"by": "y"});
    train_fails(&fx, &spec, 2, &["partition.by: column \"y\" is the label"]);
    spec["weight"] = json!("amount");
    spec["features"]["numeric"] = json!([]);
    spec["partition"] = json!({"by": "amount"});
    train_fails(&fx, &spec, 2, &["partition.by: column \"amount\" is the weight"]);
    let mut spec = fx.base_spec();
    spec["data"]["labels"] = json!(["labels.parquet"]);
    spec["data"]["join_key"] = json!("id");
    spec["label"] = json!("label");
    spec["partition"] = json!({"by": "id"});
    train_fails(&fx, &spec, 2, &["partition.by: column \"id\" is data.join_key"]);
}

#[test]
fn partition_by_a_categorical_feature_trains() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["partition"] = json!({"by": "country", "min_rows": 20, "min_positives": 2});
    train_ok(&fx, &spec, "runs/p");
    assert!(fx.path("runs/p/groups.safetensors").exists());
}

// Case 13: predict over its own input.

#[test]
fn predict_out_equal_to_a_data_file_is_refused() {
    let fx = Fixture::new();
    train_ok(&fx, &fx.base_spec(), "run");
    let before = std::fs::read(fx.path("data.parquet")).unwrap();
    for out in ["data.parquet", "./data.parquet"] {
        let (code, _, stderr) =
            outcome(&fx.run(&["predict", "--model", "run", "--data", "*.parquet", "--out", out]));
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("is one of the --data files"), "{stderr}");
    }
    assert_eq!(std::fs::read(fx.path("data.parquet")).unwrap(), before);
}

// Case 14: a float join key against an integer key.

#[test]
fn float_join_key_against_an_integer_key_names_both_types() {
    let fx = Fixture::new();
    write_parquet(
        &fx.path("float_labels.parquet"),
        vec![
            ("id", Arc::new(Float64Array::from((0..200).map(f64::from).collect::<Vec<_>>())) as ArrayRef),
            (
                "label",
                Arc::new(Int64Array::from((0..200).map(|i| i64::from(i % 4 == 0)).collect::<Vec<_>>())),
            ),
        ],
        1000,
    );
    let mut spec = fx.base_spec();
    spec["data"]["labels"] = json!(["float_labels.parquet"]);
    spec["data"]["join_key"] = json!("id");
    spec["label"] = json!("label");
    train_fails(
        &fx,
        &spec,
        2,
        &["data.join_key: column \"id\" is integer in the feature files but float in the label files"],
    );
}

// Crashes the fuzz targets found, each kept as a regression test. The run's files are edited
// and the manifest's digest refreshed to match, as a hand-edited (or buggy-tool) run would be:
// the digest check passes, and the content checks must catch what is wrong.

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces `file` of run `run` with `edit(old)` and records its digest in the manifest.
fn edit_consistently(fx: &Fixture, run: &str, file: &str, edit: impl FnOnce(Value) -> Value) {
    let path = fx.path(&format!("{run}/{file}"));
    let value = edit(serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap());
    let bytes = serde_json::to_vec_pretty(&value).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let manifest_path = fx.path(&format!("{run}/manifest.json"));
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["artifacts"][file] = json!(sha256_hex(&bytes));
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

fn predict_fails(fx: &Fixture, run: &str, needles: &[&str]) {
    let (code, _, stderr) =
        outcome(&fx.run(&["predict", "--model", run, "--data", "data.parquet", "--out", "scores.parquet"]));
    assert_eq!(code, 2, "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!fx.path("scores.parquet").exists());
}

#[test]
fn fuzz_finding_model_card_whose_levels_do_not_match_its_design_columns() {
    let fx = Fixture::new();
    train_ok(&fx, &fx.base_spec(), "run");
    edit_consistently(&fx, "run", "model.json", |mut card| {
        card["pipeline"]["categorical"][0]["levels"].as_array_mut().unwrap().push(json!("XX"));
        card
    });
    predict_fails(&fx, "run", &["model.json: the pipeline's steps make", "design columns but it names"]);
}

#[test]
fn fuzz_finding_mlp_architecture_whose_sizes_overflow() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["model"] = json!({"mlp": {"hidden": [4], "epochs": 1}});
    train_ok(&fx, &spec, "run");
    edit_consistently(&fx, "run", "model.json", |mut card| {
        card["architecture"]["embedding_dims"] = json!([u64::MAX]);
        card
    });
    predict_fails(&fx, "run", &["model.json: the architecture's sizes overflow"]);
}

#[test]
fn fuzz_finding_manifest_digest_with_a_multibyte_character() {
    let fx = Fixture::new();
    train_ok(&fx, &fx.base_spec(), "run");
    let path = fx.path("run/manifest.json");
    let mut manifest: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest["artifacts"]["model.json"] =
        json!("5b200951a44b6ab🦀a7b8ddec6845cdc6e83a0dbc061e0ed58f1e16d8cd3aa6d58");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    predict_fails(&fx, "run", &["model.json: sha256", "does not match the manifest's 5b200951a44b6ab🦀"]);
}

#[test]
fn fuzz_finding_manifest_with_short_input_digests_and_commit() {
    let fx = Fixture::new();
    train_ok(&fx, &fx.base_spec(), "run");
    let path = fx.path("run/manifest.json");
    let mut manifest: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest["inputs"][0]["sha256"] = json!("");
    manifest["git_commit"] = json!("é");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    // The manifest is not an artifact with a digest of its own: inspect shows what it says.
    let (code, stdout, stderr) = outcome(&fx.run(&["inspect", "run"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(commit é)"), "{stdout}");
}

#[test]
fn property_finding_a_diverging_mlp_is_exit_2_and_writes_nothing() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["model"] = json!({"mlp": {"hidden": [16], "epochs": 3, "learning_rate": 1e30,
                                   "grad_clip_norm": null, "schedule": "constant"}});
    train_fails(&fx, &spec, 2, &["model.mlp: the ", "the optimizer diverged"]);
}

#[test]
fn predict_out_inside_the_run_directory_is_refused() {
    let fx = Fixture::new();
    train_ok(&fx, &fx.base_spec(), "run");
    let before = std::fs::read(fx.path("run/predictions.parquet")).unwrap();
    for out in ["run/predictions.parquet", "run/scores.parquet"] {
        let (code, _, stderr) =
            outcome(&fx.run(&["predict", "--model", "run", "--data", "data.parquet", "--out", out]));
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("is inside the run directory run"), "{stderr}");
    }
    assert_eq!(std::fs::read(fx.path("run/predictions.parquet")).unwrap(), before);
    assert!(!fx.path("run/scores.parquet").exists());
}

#[test]
fn a_holdout_file_also_read_for_training_is_refused() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["data"]["features"] = json!(["*.parquet"]);
    spec["holdout"] = json!({"files": ["./data.parquet"]});
    spec["features"]["categorical"] = json!([]);
    train_fails(&fx, &spec, 2, &["holdout.files:", "data.parquet is also read by data.features"]);
}
