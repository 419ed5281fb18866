//! A run written before the design held categorical codes (and before numeric columns were read
//! as f32) must load and score exactly as it did: its coefficients keep their one-hot layout and
//! names, the kernel sums a row's score in the order the dense one-hot dot product did, and its
//! pipeline, which has no `f32_values`, standardizes the f64 values as it did then.
//!
//! The fixture is the quick start's run directory as commit 87f8df4 wrote it (its manifest names
//! the commit); `predict` on the quick start's data must reproduce its test scores bit for bit.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::{outcome, read_f64_column};

#[test]
fn predict_with_a_run_from_before_codes_reproduces_its_test_scores_bitwise() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quickstart-run-87f8df4");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["git_commit"], "87f8df4b6c6c082e9e084969598eaf86ee0d6c77");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("model.json")).unwrap()).unwrap();
    assert!(model["pipeline"].get("f32_values").is_none(), "the fixture predates f32_values");

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("scores.parquet");
    let o = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["predict", "--model", fixture.to_str().unwrap(), "--data"])
        .arg(root.join("examples/data/charges"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&o);
    assert_eq!(code, 0, "{stderr}");

    let scored: HashMap<i64, u64> = read_f64_column(&out, "charge_id")
        .into_iter()
        .zip(read_f64_column(&out, "score"))
        .map(|(k, s)| (k as i64, s.to_bits()))
        .collect();
    let then = fixture.join("predictions.parquet");
    let keys = read_f64_column(&then, "charge_id");
    let scores = read_f64_column(&then, "score");
    assert!(keys.len() > 1000, "{} test rows", keys.len());
    for (k, s) in keys.iter().zip(&scores) {
        let now = scored.get(&(*k as i64)).copied().unwrap_or_else(|| panic!("charge {k} was not scored"));
        assert_eq!(now, s.to_bits(), "charge {k}: {} now, {s} when trained", f64::from_bits(now));
    }
}
