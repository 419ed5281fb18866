//! `trainyard train` end to end through the binary: the run directory's contents, byte-identical
//! weights across runs and thread counts, predict by key, and bad input at this stage (exit 2,
//! a clear message, no run directory), including a SIGKILL while writing.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Fixture, outcome, read_f64_column};
use serde_json::{Value, json};

fn train(fx: &Fixture, spec: &Value, extra: &[&str]) -> (i32, String, String) {
    let path = fx.write_spec(spec);
    let mut args = vec!["train", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    outcome(&fx.run(&args))
}

fn read_json(path: std::path::PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn run_directory_has_every_artifact_with_the_resolved_spec() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["params"] = json!({"owner": "risk", "nested": {"k": [1, 2]}});
    let (code, stdout, stderr) = train(&fx, &spec, &["--output", "runs/a"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("fixture: trained on") && stdout.contains("test ROC AUC"), "{stdout}");
    let run = fx.path("runs/a");
    let mut names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "curves.json",
            "manifest.json",
            "metrics.json",
            "model.json",
            "model.safetensors",
            "predictions.parquet",
            "report.html"
        ]
    );

    let manifest = read_json(run.join("manifest.json"));
    assert_eq!(manifest["status"], "succeeded");
    assert_eq!(manifest["spec"]["params"], spec["params"], "params pass through untouched");
    assert_eq!(manifest["spec"]["model"]["logistic"]["max_iter"], 500, "defaults filled in");
    assert_eq!(manifest["spec"]["output"], "runs/a");
    assert_eq!(manifest["seed"], 42);
    assert_eq!(manifest["device"], "cpu");
    assert_eq!(manifest["spec_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["inputs"][0]["rows"], 200);
    assert_eq!(manifest["inputs"][0]["sha256"].as_str().unwrap().len(), 64);

    let metrics = read_json(run.join("metrics.json"));
    for side in ["train", "test"] {
        for key in [
            "rows",
            "positives",
            "roc_auc",
            "pr_auc",
            "log_loss",
            "brier",
            "accuracy",
            "precision",
            "recall",
            "f1",
            "ece",
        ] {
            assert!(metrics[side][key].is_number(), "{side}.{key} in {metrics}");
        }
    }
    for key in ["iterations", "objective_passes", "final_objective", "converged"] {
        assert!(!metrics["fit"][key].is_null(), "fit.{key}");
    }
    for key in ["load", "features", "fit", "evaluate", "write", "total"] {
        assert!(metrics["phases"][key].as_f64().unwrap() >= 0.0, "phases.{key}");
    }
    let model = read_json(run.join("model.json"));
    assert_eq!(model["kind"], "logistic");
    assert_eq!(model["key"], "id");
    assert_eq!(
        model["pipeline"]["names"].as_array().unwrap().len(),
        metrics["design_width"].as_u64().unwrap() as usize
    );

    let (code, text, _) = outcome(&fx.run(&["inspect", "runs/a"]));
    assert_eq!(code, 0);
    assert!(
        text.contains("ROC AUC") && text.contains("spec sha256") && text.contains("\"owner\":\"risk\""),
        "{text}"
    );
}

#[test]
fn same_spec_gives_byte_identical_weights_whatever_the_thread_count() {
    let fx = Fixture::new();
    let spec = fx.write_spec(&fx.base_spec());
    let mut weights = Vec::new();
    for (i, threads) in ["1", "2", "3"].iter().enumerate() {
        let out = Command::new(env!("CARGO_BIN_EXE_trainyard"))
            .args(["train", spec.to_str().unwrap(), "--output", &format!("runs/r{i}")])
            .env("RAYON_NUM_THREADS", threads)
            .current_dir(fx.dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        weights.push(std::fs::read(fx.path(&format!("runs/r{i}/model.safetensors"))).unwrap());
        let manifest = read_json(fx.path(&format!("runs/r{i}/manifest.json")));
        assert_eq!(manifest["threads"].to_string(), *threads);
    }
    assert!(weights.windows(2).all(|w| w[0] == w[1]), "weights differ between runs");
}

#[test]
fn predict_on_all_rows_matches_the_test_scores_by_key() {
    let fx = Fixture::new();
    let (code, _, stderr) = train(&fx, &fx.base_spec(), &["--output", "runs/p"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = outcome(&fx.run(&[
        "predict",
        "--model",
        "runs/p",
        "--data",
        "data.parquet",
        "--out",
        "out/scores.parquet",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("scored 200 rows"), "{stdout}");
    let all: std::collections::HashMap<i64, u64> = read_f64_column(&fx.path("out/scores.parquet"), "id")
        .into_iter()
        .zip(read_f64_column(&fx.path("out/scores.parquet"), "score"))
        .map(|(k, s)| (k as i64, s.to_bits()))
        .collect();
    let test_ids = read_f64_column(&fx.path("runs/p/predictions.parquet"), "id");
    let test_scores = read_f64_column(&fx.path("runs/p/predictions.parquet"), "score");
    assert!(!test_ids.is_empty());
    for (id, s) in test_ids.iter().zip(&test_scores) {
        assert_eq!(all[&(*id as i64)], s.to_bits(), "id {id}");
    }
}

fn assert_rejected_without_output(fx: &Fixture, spec: &Value, needle: &str) {
    let (code, _, stderr) = train(fx, spec, &["--output", "runs/bad", "--termination-log", "term.log"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
    assert!(!fx.path("runs/bad").exists(), "no run directory on failure");
    let term = std::fs::read_to_string(fx.path("term.log")).unwrap();
    assert!(term.starts_with("exit 2: ") && term.contains(needle), "{term}");
    // Nor any staging leftovers.
    if let Ok(entries) = std::fs::read_dir(fx.path("runs")) {
        assert_eq!(entries.count(), 0);
    }
}

#[test]
fn negative_l2_and_zero_max_iter_are_rejected() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["model"] = json!({"logistic": {"l2": -1}});
    assert_rejected_without_output(&fx, &spec, "model.logistic.l2: must be >= 0, got -1");
    spec["model"] = json!({"logistic": {"max_iter": 0}});
    assert_rejected_without_output(&fx, &spec, "model.logistic.max_iter: must be >= 1, got 0");
}

#[test]
fn a_split_with_a_single_class_is_rejected() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    // y = 1 only for ids divisible by 4; keep only ids 1, 2, 3 (mod 4) via a filter on y.
    spec["data"]["filters"] = json!([{"column": "y", "eq": 0}]);
    assert_rejected_without_output(&fx, &spec, "single class");
}

#[test]
fn existing_output_needs_overwrite_and_only_a_run_is_replaced() {
    let fx = Fixture::new();
    let (code, _, stderr) = train(&fx, &fx.base_spec(), &["--output", "runs/x"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = train(&fx, &fx.base_spec(), &["--output", "runs/x"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("runs/x already exists and is not empty; pass --overwrite"), "{stderr}");
    let (code, _, stderr) = train(&fx, &fx.base_spec(), &["--output", "runs/x", "--overwrite"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(fx.path("runs/x/manifest.json").exists());
    // A directory of the user's own is never replaced, --overwrite or not.
    std::fs::create_dir_all(fx.path("runs/mine")).unwrap();
    std::fs::write(fx.path("runs/mine/keep.txt"), "precious").unwrap();
    let (code, _, stderr) = train(&fx, &fx.base_spec(), &["--output", "runs/mine", "--overwrite"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a trainyard run"), "{stderr}");
    assert_eq!(std::fs::read_to_string(fx.path("runs/mine/keep.txt")).unwrap(), "precious");
}

#[test]
fn an_output_below_a_file_is_refused_before_training() {
    let fx = Fixture::new();
    std::fs::write(fx.path("blocker"), "a file, not a directory").unwrap();
    let (code, _, stderr) = train(&fx, &fx.base_spec(), &["--output", "blocker/run"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("blocker"), "{stderr}");
    assert!(!stderr.contains("\"phase\":\"load\""), "{stderr}");
}

#[test]
fn sigkill_at_any_moment_leaves_no_partial_run_at_the_target() {
    let fx = Fixture::new();
    let out = fx.run(&["synth", "--rows", "100000", "--out", "big", "--files", "2"]);
    assert_eq!(out.status.code(), Some(0));
    let spec = json!({
        "name": "big",
        "data": {"features": ["big/charges"], "labels": ["big/labels.parquet"], "join_key": "charge_id"},
        "label": "is_fraud",
        "features": {"numeric": ["amount", "account_age_days", "ip_distance_km"], "categorical": ["country", "card_brand"]},
    });
    let spec_path = fx.write_spec(&spec);
    let target = fx.path("runs/big");
    let started = std::time::Instant::now();
    let out = fx.run(&["train", spec_path.to_str().unwrap(), "--output", "runs/big"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let full = started.elapsed().as_millis() as u64;
    let mut completed = 0;
    // Kill at 5%, 15%, ... 115% of an uninterrupted run: early kills land in loading or fitting,
    // late ones in writing or after the rename. At no moment may the target hold a partial run.
    for k in 0..12u64 {
        let delay_ms = full * (10 * k + 5) / 100;
        let _ = std::fs::remove_dir_all(&target);
        let mut child = Command::new(env!("CARGO_BIN_EXE_trainyard"))
            .args(["train", spec_path.to_str().unwrap(), "--output", "runs/big"])
            .current_dir(fx.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        if target.exists() {
            for f in [
                "manifest.json",
                "metrics.json",
                "model.json",
                "model.safetensors",
                "predictions.parquet",
                "curves.json",
                "report.html",
            ] {
                assert!(target.join(f).is_file(), "{f} missing after a kill at {delay_ms} ms");
            }
            read_json(target.join("manifest.json"));
            completed += 1;
        } else {
            assert!(!status.success(), "a run that exited 0 left no directory");
        }
    }
    eprintln!("{completed} of 12 runs completed before the kill (an uninterrupted run took {full} ms)");
    // A later run removes what the killed ones left in staging.
    let out = fx.run(&["train", spec_path.to_str().unwrap(), "--output", "runs/big", "--overwrite"]);
    assert_eq!(out.status.code(), Some(0));
    let leftovers: Vec<_> = std::fs::read_dir(fx.path("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "big")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
