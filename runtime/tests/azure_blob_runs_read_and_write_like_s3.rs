//! `az://` end to end against Azurite on loopback: training from blobs into a blob run,
//! byte-identical to the local run, `predict` and `inspect` from it, the commit protocol's
//! refusals, and a prefix without a manifest refused by readers. The same store code serves
//! `s3://` (tested against moto in `object_store_runs_read_write_and_survive_faults.rs`).

#![allow(clippy::unwrap_used)]

#[path = "common/azurite.rs"]
mod azurite;
mod common;

use std::path::{Path, PathBuf};

use azurite::Azurite;
use common::outcome;
use serde_json::{Value, json};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn spec(dir: &Path, name: &str, features: Value, labels: Value) -> PathBuf {
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(examples().join("quickstart.json")).unwrap()).unwrap();
    spec["data"]["features"] = features;
    spec["data"]["labels"] = labels;
    let path = dir.join(name);
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

#[test]
fn an_az_run_matches_the_local_run_and_only_committed_prefixes_are_runs() {
    let Some(server) = Azurite::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    server.container("features");
    server.container("models");
    let data = examples().join("data");
    for entry in std::fs::read_dir(data.join("charges")).unwrap() {
        let p = entry.unwrap().path();
        server.put_file("features", &format!("charges/{}", p.file_name().unwrap().to_str().unwrap()), &p);
    }
    server.put_file("features", "labels.parquet", &data.join("labels.parquet"));

    let local_spec =
        spec(tmp.path(), "local.json", json!([data.join("charges")]), json!([data.join("labels.parquet")]));
    let local_run = tmp.path().join("local-run");
    let (code, _, stderr) = outcome(
        &server
            .trainyard()
            .args(["train", local_spec.to_str().unwrap(), "--output", local_run.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{stderr}");

    let remote_spec = spec(
        tmp.path(),
        "az.json",
        json!(["az://features/charges/"]),
        json!(["az://features/labels.parquet"]),
    );
    let train = |extra: &[&str]| {
        outcome(
            &server
                .trainyard()
                .args(["train", remote_spec.to_str().unwrap(), "--output", "az://models/runs/q"])
                .args(extra)
                .output()
                .unwrap(),
        )
    };
    let (code, _, stderr) = train(&[]);
    assert_eq!(code, 0, "{stderr}");
    for name in ["model.safetensors", "predictions.parquet", "model.json"] {
        assert_eq!(
            server.get("models", &format!("runs/q/{name}")).unwrap(),
            std::fs::read(local_run.join(name)).unwrap(),
            "{name} differs from the local run"
        );
    }
    let manifest: Value =
        serde_json::from_slice(&server.get("models", "runs/q/manifest.json").unwrap()).unwrap();
    for input in manifest["inputs"].as_array().unwrap() {
        assert!(input["path"].as_str().unwrap().starts_with("az://features/"), "{input}");
        assert!(input["etag"].as_str().is_some_and(|e| !e.is_empty()), "{input}");
    }

    // A second commit is refused without --overwrite, and replaces the run with it.
    let (code, _, stderr) = train(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("az://models/runs/q already holds a run"), "{stderr}");
    let (code, _, stderr) = train(&["--overwrite"]);
    assert_eq!(code, 0, "{stderr}");

    // predict and inspect read the run from the container.
    let local_scores = tmp.path().join("scores.parquet");
    let (code, _, stderr) = outcome(
        &server
            .trainyard()
            .args([
                "predict",
                "--model",
                local_run.to_str().unwrap(),
                "--data",
                data.join("charges").to_str().unwrap(),
            ])
            .args(["--out", local_scores.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = outcome(
        &server
            .trainyard()
            .args(["predict", "--model", "az://models/runs/q", "--data", "az://features/charges/"])
            .args(["--out", "az://models/scores.parquet"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(server.get("models", "scores.parquet").unwrap(), std::fs::read(&local_scores).unwrap());
    let (code, stdout, stderr) =
        outcome(&server.trainyard().args(["inspect", "az://models/runs/q"]).output().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("az://features/charges/part-00000.parquet") && stdout.contains("etag "),
        "{stdout}"
    );

    // Files without a manifest (an upload that never finished) are not a run.
    for name in ["model.json", "model.safetensors"] {
        server.put(
            "models",
            &format!("runs/half/{name}"),
            &server.get("models", &format!("runs/q/{name}")).unwrap(),
        );
    }
    let (code, _, stderr) =
        outcome(&server.trainyard().args(["inspect", "az://models/runs/half"]).output().unwrap());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("az://models/runs/half is not a trainyard run"), "{stderr}");
    // The next run there commits over them and deletes what it does not write.
    server.put("models", "runs/half/stray.bin", b"left behind");
    let (code, _, stderr) = outcome(
        &server
            .trainyard()
            .args(["train", remote_spec.to_str().unwrap(), "--output", "az://models/runs/half"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!server.list("models", "runs/half/").iter().any(|n| n.ends_with("stray.bin")));
    assert!(server.list("models", "runs/q.checkpoint").is_empty());
}
