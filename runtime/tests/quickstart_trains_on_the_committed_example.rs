//! The README's quick start: `examples/quickstart.json` trains on the committed synthetic data,
//! and `trainyard synth` regenerates that data byte for byte.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::outcome;

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn quickstart_spec_trains_and_beats_chance_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("quickstart");
    let out = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["train"])
        .arg(examples().join("quickstart.json"))
        .arg("--output")
        .arg(&run)
        .output()
        .unwrap();
    let (code, stdout, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("quickstart: trained on"), "{stdout}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    let auc = metrics["test"]["roc_auc"].as_f64().unwrap();
    // The synthetic fraud model has real signal; a broken pipeline lands near 0.5.
    assert!(auc > 0.72, "test AUC {auc}");
    assert!(metrics["fit"]["converged"].as_bool().unwrap());
    // The date_range holdout: the test month is November 2024.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["spec"]["holdout"]["date_range"]["start"], "2024-11-01");
}

#[test]
fn synth_regenerates_the_committed_example_data() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args([
            "synth",
            "--rows",
            "20000",
            "--files",
            "4",
            "--row-group-rows",
            "2500",
            "--seed",
            "42",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    for f in ["charges/part-00000.parquet", "charges/part-00003.parquet", "labels.parquet"] {
        let committed = std::fs::read(examples().join("data").join(f)).unwrap();
        let fresh = std::fs::read(tmp.path().join(f)).unwrap();
        assert!(committed == fresh, "{f} differs from a fresh `trainyard synth`");
    }
}
