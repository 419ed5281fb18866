//! The daily loop on the quick-start data: train, promote, retrain against the production run
//! (`baseline.production`), gate, promote. A retrain of the same spec is not significantly
//! different, so a gate with `max_p_value` holds it back; a model with half the features fails
//! the gate and exits 3 with `--fail-on-gate`; stale and racing promotions are refused, and of
//! concurrent `runs promote` processes exactly one wins.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::outcome;
use serde_json::{Value, json};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").canonicalize().unwrap()
}

/// A working directory with `runs/` as the runs root.
struct Yard {
    dir: tempfile::TempDir,
}

impl Yard {
    fn new() -> Yard {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("runs")).unwrap();
        Yard { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The quick-start spec with its data paths made absolute, changed by `edit`.
    fn spec(&self, file: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let mut spec: Value =
            serde_json::from_str(&std::fs::read_to_string(examples().join("quickstart.json")).unwrap())
                .unwrap();
        spec["data"]["features"] = json!([examples().join("data/charges/*.parquet")]);
        spec["data"]["labels"] = json!([examples().join("data/labels.parquet")]);
        edit(&mut spec);
        let path = self.path(file);
        std::fs::write(&path, spec.to_string()).unwrap();
        path
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trainyard"));
        c.current_dir(self.dir.path()).args(["--log-format", "json"]);
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        outcome(&self.command().args(args).output().unwrap())
    }

    fn train(&self, spec: &Path, run: &str, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["train", spec.to_str().unwrap(), "--output", run];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn json(&self, rel: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.path(rel)).unwrap()).unwrap()
    }

    fn run_id(&self, run: &str) -> String {
        self.json(&format!("{run}/manifest.json"))["run_id"].as_str().unwrap().to_string()
    }
}

fn gated(spec: &mut Value, gate: Value) {
    spec["baseline"] = json!({"production": "quickstart"});
    spec["gate"] = gate;
}

/// Half the numeric features: a model that is clearly worse on the same rows.
fn half_the_features(spec: &mut Value) {
    let numeric = spec["features"]["numeric"].as_array().unwrap().clone();
    spec["features"]["numeric"] = json!(numeric[..numeric.len() / 2]);
    spec["features"]["categorical"] = json!(["country", "card_brand"]);
}

#[test]
fn a_same_spec_retrain_is_held_back_and_a_worse_model_exits_3() {
    let yard = Yard::new();
    let plain = yard.spec("plain.json", |_| {});
    assert_eq!(yard.train(&plain, "runs/day1", &[]).0, 0);
    let (code, stdout, stderr) =
        yard.run(&["runs", "promote", "runs", "quickstart", "day1", "--by", "alice"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("promoted"), "{stdout}");
    let day1 = yard.run_id("runs/day1");
    // The production run's folder is not overwritten by a retrain.
    let (code, _, stderr) = yard.train(&plain, "runs/day1", &["--overwrite"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("production run of quickstart"), "{stderr}");
    assert_eq!(yard.run_id("runs/day1"), day1);

    // The same spec against production: the same rows, no significant difference.
    let retrain = yard.spec("retrain.json", |s| {
        gated(s, json!({"metric": "roc_auc", "min_delta": -0.002, "max_p_value": 0.05}))
    });
    let (code, stdout, stderr) = yard.train(&retrain, "runs/day2", &[]);
    assert_eq!(code, 0, "without --fail-on-gate an ineligible run still exits 0: {stderr}");
    assert!(stdout.contains("NOT eligible"), "{stdout}");
    let metrics = yard.json("runs/day2/metrics.json");
    let b = &metrics["baseline"];
    assert_eq!(b["run_id"], day1.as_str());
    assert_eq!(b["production"], "quickstart");
    assert_eq!(b["rows"], metrics["test"]["rows"], "the baseline scores the same test rows");
    assert!(b["deltas"]["roc_auc"].as_f64().unwrap().abs() < 1e-12, "{b}");
    assert!(b["roc_auc_test"]["p_value"].as_f64().unwrap() > 0.05, "{b}");
    for m in ["log_loss", "pr_auc", "accuracy"] {
        let i = &b["bootstrap"][m];
        assert_eq!(i["resamples"], 1000, "{m}");
        assert!(i["low"].as_f64().unwrap() <= i["delta"].as_f64().unwrap(), "{m}: {i}");
        assert!(i["delta"].as_f64().unwrap() <= i["high"].as_f64().unwrap(), "{m}: {i}");
    }
    let promotion = &yard.json("runs/day2/manifest.json")["promotion"];
    assert_eq!(promotion["eligible"], false, "{promotion}");
    assert!(promotion["reasons"].to_string().contains("p-value"), "{promotion}");

    // A slightly different penalty: different scores, still no significant difference; with a
    // tolerance and no p-value required it passes.
    let tweak = yard.spec("tweak.json", |s| {
        s["model"]["logistic"]["l2"] = json!(3.0);
        gated(s, json!({"metric": "roc_auc", "min_delta": -0.01}));
    });
    let (code, stdout, stderr) = yard.train(&tweak, "runs/day2b", &["--fail-on-gate"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let b = &yard.json("runs/day2b/metrics.json")["baseline"];
    assert!(b["deltas"]["roc_auc"].as_f64().unwrap() != 0.0, "{b}");
    assert!(b["roc_auc_test"]["p_value"].as_f64().unwrap() > 0.05, "{b}");
    assert_eq!(yard.json("runs/day2b/manifest.json")["promotion"]["eligible"], true);

    // Half the features: written, but it fails the gate and exits 3.
    let worse = yard.spec("worse.json", |s| {
        half_the_features(s);
        gated(s, json!({"metric": "roc_auc", "min_delta": -0.002}));
    });
    let (code, stdout, stderr) = yard.train(&worse, "runs/day3", &["--fail-on-gate"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stderr.contains("failed its promotion gate"), "{stderr}");
    let b = &yard.json("runs/day3/metrics.json")["baseline"];
    assert!(b["deltas"]["roc_auc"].as_f64().unwrap() < -0.01, "{b}");
    assert!(b["roc_auc_test"]["p_value"].as_f64().unwrap() < 0.05, "{b}");
    assert_eq!(yard.json("runs/day3/manifest.json")["promotion"]["eligible"], false);
    let (code, inspect, stderr) = yard.run(&["inspect", "runs/day3"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(inspect.contains(&format!("baseline {day1}")), "{inspect}");
    assert!(inspect.contains("DeLong") && inspect.contains("promotion gate: NOT eligible"), "{inspect}");

    // A log-loss gate: lower is better, so the sign of the improvement flips.
    let by_loss = yard.spec("loss.json", |s| {
        half_the_features(s);
        gated(s, json!({"metric": "log_loss", "min_delta": -1.0}));
    });
    assert_eq!(yard.train(&by_loss, "runs/day3b", &["--fail-on-gate"]).0, 0);
    let p = &yard.json("runs/day3b/manifest.json")["promotion"];
    let d = yard.json("runs/day3b/metrics.json")["baseline"]["deltas"]["log_loss"].as_f64().unwrap();
    assert!(p["reasons"][0].as_str().unwrap().contains(&format!("improvement {:+.4}", -d)), "{p} {d}");

    // The registry refuses to promote what failed its gate, unless forced.
    let (code, _, stderr) = yard.run(&["runs", "promote", "runs", "quickstart", "day3"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("failed its promotion gate"), "{stderr}");
    let (code, _, stderr) = yard.run(&["runs", "promote", "runs", "quickstart", "day2b", "--by", "bob"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = yard.run(&["runs", "production", "runs", "quickstart", "--format", "json"]);
    assert_eq!(code, 0);
    let pointer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pointer["run_id"], yard.run_id("runs/day2b").as_str());
    assert_eq!(pointer["previous"]["run_id"], day1.as_str());
    assert_eq!(pointer["by"], "bob");
}

#[test]
fn a_baseline_that_is_missing_or_reads_absent_columns_is_exit_2_before_training() {
    let yard = Yard::new();
    let missing = yard.spec("missing.json", |s| s["baseline"] = json!({"run": "runs/nope"}));
    let (code, _, stderr) = yard.train(&missing, "runs/a", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("baseline.run") && stderr.contains("runs/nope"), "{stderr}");
    assert!(!yard.path("runs/a").exists());

    // No production run yet: exit 2, or with `missing: eligible` a first run that passes.
    let first = yard.spec("first.json", |s| gated(s, json!({"metric": "roc_auc"})));
    let (code, _, stderr) = yard.train(&first, "runs/a", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("baseline.production") && stderr.contains("no production run"), "{stderr}");
    let first = yard.spec("first.json", |s| {
        gated(s, json!({"metric": "roc_auc"}));
        s["baseline"]["missing"] = json!("eligible");
    });
    assert_eq!(yard.train(&first, "runs/a", &["--fail-on-gate"]).0, 0);
    let promotion = &yard.json("runs/a/manifest.json")["promotion"];
    assert_eq!(promotion["eligible"], true, "{promotion}");

    // A first run into a runs folder that does not exist yet.
    let (code, _, stderr) = yard.train(&first, "fresh/day1", &["--fail-on-gate"]);
    assert_eq!(code, 0, "{stderr}");

    // A folder that no longer holds the run its pointer names is not passed off as production.
    assert_eq!(yard.run(&["runs", "promote", "runs", "quickstart", "a"]).0, 0);
    let other = yard.spec("other.json", |s| s["model"]["logistic"]["l2"] = json!(5.0));
    assert_eq!(yard.train(&other, "runs/other", &[]).0, 0);
    for f in std::fs::read_dir(yard.path("runs/other")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, yard.path("runs/a").join(f.file_name().unwrap())).unwrap();
    }
    let (code, _, stderr) = yard.train(&first, "runs/b", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("production pointer names run") && stderr.contains("overwritten"), "{stderr}");

    // A baseline whose group column is a numeric feature of the new run (read as dense rows
    // by the new run, as group keys by the baseline).
    let grouped =
        yard.spec("grouped.json", |s| s["partition"] = json!({"by": "prior_charges", "min_rows": 50}));
    assert_eq!(yard.train(&grouped, "runs/grouped", &[]).0, 0);
    let against = yard.spec("against.json", |s| s["baseline"] = json!({"run": "runs/grouped"}));
    let (code, _, stderr) = yard.train(&against, "runs/against", &[]);
    assert_eq!(code, 0, "{stderr}");
    let b = &yard.json("runs/against/metrics.json")["baseline"];
    assert_eq!(b["candidate"]["rows"], b["baseline"]["rows"]);
    let grouped_test = yard.json("runs/grouped/metrics.json")["test"]["roc_auc"].as_f64().unwrap();
    assert!(
        (b["baseline"]["roc_auc"].as_f64().unwrap() - grouped_test).abs() < 1e-12,
        "the same scores as its own run"
    );

    // A baseline trained on a column the new data lacks.
    let data = yard.path("wide");
    let (code, _, stderr) =
        yard.run(&["synth", "--rows", "4000", "--card-bins", "30", "--out", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let wide = yard.spec("wide.json", |s| {
        s["data"]["features"] = json!([data.join("charges")]);
        s["data"]["labels"] = json!([data.join("labels.parquet")]);
        s["data"]["filters"] = json!([]);
        s["holdout"] = json!({"random": {"fraction": 0.3, "key": "charge_id"}});
        s["features"]["categorical"] = json!(["country", "card_bin"]);
    });
    assert_eq!(yard.train(&wide, "runs/wide", &[]).0, 0);
    let narrow = yard.spec("narrow.json", |s| s["baseline"] = json!({"run": "runs/wide"}));
    let (code, _, stderr) = yard.train(&narrow, "runs/narrow", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("\"card_bin\"") && stderr.contains("baseline"), "{stderr}");
    assert!(!yard.path("runs/narrow").exists());

    // A gate without a baseline, and a metric it cannot test.
    let bad = yard.spec("bad.json", |s| s["gate"] = json!({"metric": "roc_auc"}));
    let (code, _, stderr) = yard.train(&bad, "runs/bad", &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("gate"), "{stderr}");
    let bad = yard.spec("bad.json", |s| gated(s, json!({"metric": "brier", "max_p_value": 0.05})));
    let (code, _, stderr) = yard.train(&bad, "runs/bad", &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("gate.max_p_value"), "{stderr}");
}

#[test]
fn stale_promotions_are_refused_and_of_racing_promotions_exactly_one_wins() {
    let yard = Yard::new();
    let mut ids = Vec::new();
    for (i, l2) in [1.0, 2.0, 4.0, 8.0, 16.0].iter().enumerate() {
        let spec = yard.spec(&format!("s{i}.json"), |s| s["model"]["logistic"]["l2"] = json!(l2));
        assert_eq!(yard.train(&spec, &format!("runs/r{i}"), &[]).0, 0);
        ids.push(yard.run_id(&format!("runs/r{i}")));
    }
    assert_eq!(yard.run(&["runs", "promote", "runs", "quickstart", "r0", "--previous", "none"]).0, 0);
    let (code, _, stderr) = yard.run(&["runs", "promote", "runs", "quickstart", "r1", "--previous", "none"]);
    assert_eq!(code, 2, "a stale previous value is refused: {stderr}");
    assert!(stderr.contains(&ids[0]), "{stderr}");

    // Eight processes, each promoting one of four runs over the same production run.
    let racers: Vec<std::process::Child> = (0..8)
        .map(|i| {
            yard.command()
                .args([
                    "runs",
                    "promote",
                    "runs",
                    "quickstart",
                    &format!("r{}", 1 + i % 4),
                    "--previous",
                    &ids[0],
                ])
                .args(["--by", &format!("racer-{i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let results: Vec<Output> = racers.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let winners: Vec<usize> = (0..8).filter(|&i| results[i].status.code() == Some(0)).collect();
    assert_eq!(winners.len(), 1, "{:?}", results.iter().map(outcome).collect::<Vec<_>>());
    for (i, r) in results.iter().enumerate() {
        if i != winners[0] {
            let (code, _, stderr) = outcome(r);
            assert_eq!(code, 2, "{stderr}");
            assert!(stderr.contains("won the race") || stderr.contains("--previous"), "{stderr}");
        }
    }
    let (_, stdout, _) = yard.run(&["runs", "history", "runs", "quickstart", "--format", "json"]);
    let history: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    assert_eq!(history[0]["by"], format!("racer-{}", winners[0]));
    assert_eq!(history[0]["run_id"], ids[1 + winners[0] % 4].as_str());
    assert_eq!(history[0]["previous"]["run_id"], ids[0].as_str());

    // The registry listing marks the winner, and filters.
    let (code, stdout, stderr) = yard.run(&["runs", "list", "runs", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let records: Value = serde_json::from_str(&stdout).unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 5);
    let live: Vec<&Value> = records.iter().filter(|r| r["production"] == true).collect();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["run_id"], history[0]["run_id"]);
    assert!(records.iter().all(
        |r| r["summary"]["test_rows"] == 2869 && r["summary"]["test"]["roc_auc"].as_f64().unwrap() > 0.7
    ));
    let fingerprints: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r["data_fingerprint"].as_str().unwrap()).collect();
    assert_eq!(fingerprints.len(), 1, "same data, one fingerprint");
    let (_, stdout, _) = yard.run(&["runs", "list", "runs", "--since", "2999-01-01", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap(), json!([]));
    let (_, stdout, _) = yard.run(&["runs", "list", "runs", "--name", "other", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap(), json!([]));
    let (code, table, _) = yard.run(&["runs", "list", "runs"]);
    assert_eq!(code, 0);
    assert_eq!(table.lines().count(), 6, "{table}");

    // compare: the spec diff as JSON paths, and the paired test on the common rows by key.
    let (code, stdout, stderr) = yard.run(&["runs", "compare", "runs/r0", "runs/r4", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let paths: Vec<&str> =
        report["spec"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"model.logistic.l2") && paths.contains(&"output"), "{paths:?}");
    assert_eq!(report["inputs"], json!([]));
    assert_eq!(report["paired"]["rows"], 2869);
    assert!(report["paired"]["roc_auc_test"]["variance"].as_f64().unwrap() > 0.0);
    let (code, show, _) = yard.run(&["runs", "show", "runs/r0"]);
    assert_eq!(code, 0);
    assert!(show.contains(&ids[0]) && show.contains("2869 test"), "{show}");
}
