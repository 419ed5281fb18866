//! Object storage end to end, against a real S3-compatible server on loopback (moto's server):
//! training from `s3://` features, labels and a `files` holdout into an `s3://` run, predict and
//! inspect from it, byte-identical to the same run on local copies; row-group pruning that
//! fetches less; the commit protocol (manifest last, conditional, orphans cleaned); preemption
//! with the checkpoint in the bucket; and faults injected by a proxy (resets, 503s, the store
//! going away mid-upload); a bucket prefix as a runs root (production pointers, baselines).

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/s3.rs"]
mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::outcome;
use s3::{Faults, Proxy, S3};
use serde_json::{Value, json};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The quick start's files, in `bucket` under `data/` (as `charges/part-*.parquet` and
/// `labels.parquet`), and the local directory they came from.
fn upload_quickstart(server: &S3, bucket: &str) -> Vec<PathBuf> {
    server.bucket(bucket);
    let mut charges: Vec<PathBuf> = std::fs::read_dir(examples().join("data/charges"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    charges.sort();
    for p in &charges {
        let name = p.file_name().unwrap().to_str().unwrap();
        server.put_file(bucket, &format!("data/charges/{name}"), p);
    }
    // What a Spark writer leaves beside the parts: skipped when listing a prefix.
    server.put(bucket, "data/charges/_SUCCESS", Vec::new());
    server.put_file(bucket, "data/labels.parquet", &examples().join("data/labels.parquet"));
    charges
}

/// The quick start uploaded to `bucket`, and its spec reading the charges by prefix and the
/// labels by key from there.
fn quickstart_in(server: &S3, bucket: &str, dir: &Path, model: Value) -> PathBuf {
    upload_quickstart(server, bucket);
    spec(
        dir,
        json!([format!("s3://{bucket}/data/charges/")]),
        json!([format!("s3://{bucket}/data/labels.parquet")]),
        model,
    )
}

/// The quick-start spec with its data at `features` and `labels`.
fn spec(dir: &Path, features: Value, labels: Value, model: Value) -> PathBuf {
    spec_with_holdout(dir, features, labels, model, None)
}

/// [`spec`], with `holdout` (the quick start's date range when `None`).
fn spec_with_holdout(
    dir: &Path,
    features: Value,
    labels: Value,
    model: Value,
    holdout: Option<Value>,
) -> PathBuf {
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(examples().join("quickstart.json")).unwrap()).unwrap();
    spec["data"]["features"] = features;
    spec["data"]["labels"] = labels;
    spec["model"] = model;
    if let Some(h) = holdout {
        spec["holdout"] = h;
    }
    let path = dir.join(format!("spec-{}.json", rand_suffix()));
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn logistic() -> Value {
    json!({"logistic": {"l2": 1.0}})
}

fn run(c: &mut Command) -> (i32, String, String) {
    outcome(&c.output().unwrap())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn a_run_trained_from_and_into_s3_is_byte_identical_to_the_local_run_and_predicts_from_the_bucket() {
    let Some(server) = S3::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    upload_quickstart(&server, "features");
    server.bucket("models");
    let local_data = examples().join("data");

    // Local run on the committed files: three parts train, the fourth is a fixed test set.
    let local_spec = spec_with_holdout(
        tmp.path(),
        json!([local_data.join("charges/part-0000[0-2].parquet")]),
        json!([local_data.join("labels.parquet")]),
        logistic(),
        Some(json!({"files": [local_data.join("charges/part-00003.parquet")]})),
    );
    let local_run = tmp.path().join("local-run");
    let (code, _, stderr) = run(server.trainyard().args([
        "train",
        local_spec.to_str().unwrap(),
        "--output",
        local_run.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{stderr}");

    // The same run with everything in the bucket: a glob for the features, keys for the labels
    // and the test set.
    let remote_spec = spec_with_holdout(
        tmp.path(),
        json!(["s3://features/data/charges/part-0000[0-2].parquet"]),
        json!(["s3://features/data/labels.parquet"]),
        logistic(),
        Some(json!({"files": ["s3://features/data/charges/part-00003.parquet"]})),
    );
    let (code, stdout, stderr) = run(server.trainyard().args([
        "train",
        remote_spec.to_str().unwrap(),
        "--output",
        "s3://models/runs/quickstart",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("s3://models/runs/quickstart"), "{stdout}");
    for name in ["model.safetensors", "predictions.parquet", "model.json"] {
        let remote = server.get("models", &format!("runs/quickstart/{name}")).unwrap();
        assert_eq!(remote, std::fs::read(local_run.join(name)).unwrap(), "{name} differs from the local run");
    }
    let keys = server.list("models", "runs/quickstart");
    assert!(keys.contains(&"runs/quickstart/manifest.json".to_string()), "{keys:?}");
    assert!(server.list("models", "runs/quickstart.checkpoint").is_empty());

    // The manifest fingerprints objects by ETag, size and time, not by a hash of their bytes.
    let manifest = json_of(&server.get("models", "runs/quickstart/manifest.json").unwrap());
    assert_eq!(manifest["status"], "succeeded");
    let inputs = manifest["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), std::fs::read_dir(local_data.join("charges")).unwrap().count() + 1);
    for input in inputs {
        let path = input["path"].as_str().unwrap();
        assert!(path.starts_with("s3://features/data/"), "{input}");
        assert!(!path.ends_with("_SUCCESS"));
        assert!(input["etag"].as_str().is_some_and(|e| !e.is_empty()), "{input}");
        assert!(input["last_modified"].as_str().is_some(), "{input}");
        assert!(input.get("sha256").is_none(), "{input}");
        assert!(input["bytes"].as_u64().unwrap() > 0);
    }
    assert!(!manifest.to_string().contains(s3::SECRET_KEY));
    let metrics = json_of(&server.get("models", "runs/quickstart/metrics.json").unwrap());
    let fetched = metrics["object_store"]["read_bytes"].as_u64().unwrap();
    assert!(fetched > 0, "{metrics}");

    // predict from the bucket, into the bucket, equals predict on local files from the local run.
    let local_scores = tmp.path().join("scores.parquet");
    let (code, _, stderr) = run(server.trainyard().args([
        "predict",
        "--model",
        local_run.to_str().unwrap(),
        "--data",
        local_data.join("charges").to_str().unwrap(),
        "--out",
        local_scores.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(server.trainyard().args([
        "predict",
        "--model",
        "s3://models/runs/quickstart",
        "--data",
        "s3://features/data/charges/*.parquet",
        "--out",
        "s3://models/scores/quickstart.parquet",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        server.get("models", "scores/quickstart.parquet").unwrap(),
        std::fs::read(&local_scores).unwrap(),
        "scores from the bucket differ"
    );

    // inspect reads the run from the bucket and shows the objects' ETags.
    let (code, stdout, stderr) = run(server.trainyard().args(["inspect", "s3://models/runs/quickstart"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("s3://features/data/charges/") && stdout.contains("etag "), "{stdout}");

    // report reads the run from the bucket and writes the page into it beside the runs, not
    // into the run itself.
    let (code, stdout, stderr) = run(server.trainyard().args([
        "report",
        "s3://models/runs/quickstart",
        "--out",
        "s3://models/reports/quickstart.html",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "s3://models/reports/quickstart.html");
    let page = String::from_utf8(server.get("models", "reports/quickstart.html").unwrap()).unwrap();
    // The inputs table lists the objects by their ETags (the page escapes the URLs' slashes).
    assert!(page.contains("id=\"roc\"") && page.contains("etag "), "{}", page.len());

    // export reads the run from the bucket and writes the ONNX model to an object or a file:
    // the same bytes, naming the run in their metadata.
    let local_onnx = tmp.path().join("quickstart.onnx");
    for out in ["s3://models/exports/quickstart.onnx", local_onnx.to_str().unwrap()] {
        let (code, stdout, stderr) =
            run(server.trainyard().args(["export", "s3://models/runs/quickstart", "--out", out]));
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(stdout.trim(), out);
    }
    let exported = server.get("models", "exports/quickstart.onnx").unwrap();
    assert!(exported == std::fs::read(&local_onnx).unwrap(), "the object and the file differ");
    let summary = trainyard::onnx::proto::Summary::read(&exported).unwrap();
    assert_eq!(summary.metadata("run_id"), manifest["run_id"].as_str());
    assert_eq!(summary.inputs.len(), 9, "5 numeric and 4 categorical features");
    // Neither writes into the run itself.
    for (command, file) in [("report", "report.html"), ("export", "model.onnx")] {
        let out = format!("s3://models/runs/quickstart/{file}");
        let (code, _, stderr) =
            run(server.trainyard().args([command, "s3://models/runs/quickstart", "--out", &out]));
        assert_eq!(code, 2, "{command}: {stderr}");
        assert!(stderr.contains("inside the run"), "{command}: {stderr}");
    }

    // A second run to the same output without --overwrite is refused before any work.
    let started = Instant::now();
    let (code, stdout, stderr) = run(server.trainyard().args([
        "train",
        remote_spec.to_str().unwrap(),
        "--output",
        "s3://models/runs/quickstart",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("s3://models/runs/quickstart already holds a run") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // With --overwrite it replaces the run.
    let (code, _, stderr) = run(server.trainyard().args([
        "train",
        remote_spec.to_str().unwrap(),
        "--output",
        "s3://models/runs/quickstart",
        "--overwrite",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let again = json_of(&server.get("models", "runs/quickstart/manifest.json").unwrap());
    assert_ne!(again["started_at"], manifest["started_at"]);
}

#[test]
fn a_date_range_run_fetches_only_the_row_groups_that_survive_pruning() {
    let Some(server) = S3::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    server.bucket("pruning");
    // 40 row groups of 2,000 rows, one day each, sorted by time: a window of 5 days before a
    // 5-day test window reads 10 of them.
    let per_day = 2_000i64;
    let n = 40 * per_day;
    let ids: Vec<i64> = (0..n).collect();
    let t: Vec<i64> =
        ids.iter().map(|i| common::JAN_1_2024_US + (i / per_day) * common::DAY_US + i).collect();
    let amount: Vec<f64> = ids.iter().map(|i| ((i * 7919) % 1000) as f64 / 10.0).collect();
    let noise: Vec<f64> = ids.iter().map(|i| ((i * 104_729) % 997) as f64).collect();
    let y: Vec<i64> = ids.iter().map(|i| i64::from((i * 7919) % 1000 > 600 || i % 11 == 0)).collect();
    let path = tmp.path().join("events.parquet");
    use arrow::array::{ArrayRef, Float64Array, Int64Array, TimestampMicrosecondArray};
    use std::sync::Arc;
    common::write_parquet(
        &path,
        vec![
            ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            ("t", Arc::new(TimestampMicrosecondArray::from(t).with_timezone("UTC"))),
            ("amount", Arc::new(Float64Array::from(amount))),
            ("noise", Arc::new(Float64Array::from(noise))),
            ("y", Arc::new(Int64Array::from(y))),
        ],
        per_day as usize,
    );
    server.put_file("pruning", "events.parquet", &path);
    let size = std::fs::metadata(&path).unwrap().len();
    let run_with = |filters: Value, start: &str, end: &str, output: &str| -> Value {
        let spec = json!({
            "name": "pruning",
            "data": {"features": ["s3://pruning/events.parquet"], "filters": filters},
            "label": "y",
            "features": {"numeric": ["amount"]},
            "holdout": {"date_range": {"column": "t", "start": start, "end": end}},
        });
        let path = tmp.path().join(format!("{output}.json"));
        std::fs::write(&path, spec.to_string()).unwrap();
        let (code, _, stderr) = run(server.trainyard().args([
            "train",
            path.to_str().unwrap(),
            "--output",
            &format!("s3://pruning/{output}"),
        ]));
        assert_eq!(code, 0, "{stderr}");
        json_of(&server.get("pruning", &format!("{output}/metrics.json")).unwrap())
    };
    let all = run_with(json!([]), "2024-02-05", "2024-02-10", "all");
    let narrow =
        run_with(json!([{"column": "t", "gte": "2024-01-26"}]), "2024-01-31", "2024-02-05", "narrow");
    let bytes = |m: &Value| m["object_store"]["read_bytes"].as_u64().unwrap();
    let requests = |m: &Value| m["object_store"]["read_requests"].as_u64().unwrap();
    // The full read fetches at most the file (its projected columns, plus the footer's
    // prefetch); the pruned one about a quarter of that.
    assert!(bytes(&all) <= size + (64 << 10), "all: {} of {size} bytes", bytes(&all));
    assert!(
        (bytes(&narrow) as f64) < 0.45 * bytes(&all) as f64,
        "narrow fetched {} bytes, the full read {}",
        bytes(&narrow),
        bytes(&all)
    );
    assert!(requests(&narrow) < requests(&all), "{} vs {} requests", requests(&narrow), requests(&all));
    let rows = |m: &Value| m["test"]["rows"].as_u64().unwrap() + m["train"]["rows"].as_u64().unwrap();
    assert_eq!(rows(&narrow) as i64, 10 * per_day);
}

/// MLP long enough to interrupt, on the quick-start data in `bucket`.
fn mlp() -> Value {
    json!({"mlp": {"hidden": [32, 16], "epochs": 6, "batch_size": 64, "checkpoint_every_steps": 10}})
}

#[test]
fn a_preempted_mlp_resumes_from_its_checkpoint_in_the_bucket_to_the_uninterrupted_weights() {
    let Some(server) = S3::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let spec = quickstart_in(&server, "ckpt", tmp.path(), mlp());
    let train = |output: &str| {
        let mut c = server.trainyard();
        c.args(["train", spec.to_str().unwrap(), "--output", output]);
        c
    };
    let (code, _, stderr) = run(&mut train("s3://ckpt/runs/reference"));
    assert_eq!(code, 0, "{stderr}");
    let expected = server.get("ckpt", "runs/reference/model.safetensors").unwrap();

    let mut child =
        train("s3://ckpt/runs/preempted").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while server.get("ckpt", "runs/preempted.checkpoint/checkpoint.safetensors").is_none() {
        assert!(Instant::now() < deadline, "no checkpoint appeared in the bucket");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before a checkpoint reached the bucket");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let (code, _, stderr) = outcome(&child.wait_with_output().unwrap());
    assert_eq!(code, 143, "the run was not preempted (did it finish first?): {stderr}");
    assert!(stderr.contains("s3://ckpt/runs/preempted.checkpoint"), "{stderr}");
    assert!(server.get("ckpt", "runs/preempted/manifest.json").is_none(), "a preempted run must not commit");

    // A fresh pod (nothing local survives) resumes from the bucket.
    let (code, _, stderr) = run(&mut train("s3://ckpt/runs/preempted"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("resuming from the checkpoint"), "{stderr}");
    assert_eq!(server.get("ckpt", "runs/preempted/model.safetensors").unwrap(), expected);
    assert!(
        server.list("ckpt", "runs/preempted.checkpoint").is_empty(),
        "the checkpoint is removed once committed"
    );
}

#[test]
fn resets_and_503s_are_retried_and_the_run_is_the_same() {
    let Some(server) = S3::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let spec = quickstart_in(&server, "faults", tmp.path(), logistic());
    let (code, _, stderr) =
        run(server.trainyard().args(["train", spec.to_str().unwrap(), "--output", "s3://faults/runs/clean"]));
    assert_eq!(code, 0, "{stderr}");

    let proxy = Proxy::start(
        server.port,
        Faults { reset_every: Some(5), unavailable_every: Some(3), down_after_puts: None },
    );
    let (code, _, stderr) = run(S3::trainyard_via(&proxy.endpoint()).args([
        "train",
        spec.to_str().unwrap(),
        "--output",
        "s3://faults/runs/flaky",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let injected = proxy.injected.load(std::sync::atomic::Ordering::SeqCst);
    assert!(injected >= 5, "only {injected} faults were injected");
    for name in ["model.safetensors", "predictions.parquet", "model.json"] {
        assert_eq!(
            server.get("faults", &format!("runs/flaky/{name}")).unwrap(),
            server.get("faults", &format!("runs/clean/{name}")).unwrap(),
            "{name} differs after retries"
        );
    }
    // predict through the same faults.
    let (code, _, stderr) = run(S3::trainyard_via(&proxy.endpoint()).args([
        "predict",
        "--model",
        "s3://faults/runs/flaky",
        "--data",
        "s3://faults/data/charges/",
        "--out",
        "s3://faults/scores.parquet",
    ]));
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn the_store_going_away_mid_upload_is_exit_1_with_nothing_a_reader_accepts_and_the_next_run_cleans_up() {
    let Some(server) = S3::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let spec = quickstart_in(&server, "crash", tmp.path(), logistic());
    // Two objects reach the bucket, then the store is gone.
    let proxy = Proxy::start(server.port, Faults { down_after_puts: Some(2), ..Faults::default() });
    let (code, _, stderr) = run(S3::trainyard_via(&proxy.endpoint()).args([
        "train",
        spec.to_str().unwrap(),
        "--output",
        "s3://crash/runs/r",
    ]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("s3://crash/runs/r/"), "the error names the object: {stderr}");
    assert!(!stderr.contains(s3::SECRET_KEY));
    let left = server.list("crash", "runs/r");
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.iter().any(|k| k.ends_with("manifest.json")), "{left:?}");

    // Nothing reads the half-written prefix as a run.
    let out = tmp.path().join("scores.parquet");
    let (code, _, stderr) = run(server.trainyard().args([
        "predict",
        "--model",
        "s3://crash/runs/r",
        "--data",
        "s3://crash/data/charges/",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("s3://crash/runs/r is not a trainyard run") && stderr.contains("manifest.json"),
        "{stderr}"
    );
    assert!(!out.exists());
    let (code, _, stderr) = run(server.trainyard().args(["inspect", "s3://crash/runs/r"]));
    assert_eq!(code, 2, "{stderr}");

    // A stray object of the crashed attempt that this run does not write is cleaned too.
    server.put("crash", "runs/r/stale.bin", b"left by a crash".to_vec());
    let (code, _, stderr) =
        run(server.trainyard().args(["train", spec.to_str().unwrap(), "--output", "s3://crash/runs/r"]));
    assert_eq!(code, 0, "{stderr}");
    let keys = server.list("crash", "runs/r");
    assert!(!keys.iter().any(|k| k.ends_with("stale.bin")), "{keys:?}");
    let manifest = json_of(&server.get("crash", "runs/r/manifest.json").unwrap());
    let mut expected: Vec<String> =
        manifest["artifacts"].as_object().unwrap().keys().map(|k| format!("runs/r/{k}")).collect();
    expected.push("runs/r/manifest.json".into());
    expected.sort();
    assert_eq!(keys, expected);
}

#[test]
fn bad_urls_missing_objects_and_unreachable_stores_name_the_url() {
    let Some(server) = S3::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    server.bucket("errors");
    let train = |features: &str, output: &str, endpoint: &str| {
        let labels = examples().join("data/labels.parquet");
        let spec = spec(tmp.path(), json!([features]), json!([labels]), logistic());
        let mut c = S3::trainyard_via(endpoint);
        c.args(["train", spec.to_str().unwrap(), "--output", output]);
        run(&mut c)
    };
    let endpoint = server.endpoint();
    let cases = [
        ("s3://no-such-bucket/data/x.parquet", 2, "s3://no-such-bucket/data/x.parquet"),
        ("s3://errors/missing.parquet", 2, "s3://errors/missing.parquet not found"),
        ("s3://errors/missing/*.parquet", 2, "matched no objects"),
        ("s4://errors/x.parquet", 2, "unsupported URL scheme s4://"),
        ("s3://errors/x.parquet?X-Amz-Signature=abc", 2, "query string"),
    ];
    for (features, want_code, want) in cases {
        let (code, stdout, stderr) = train(features, tmp.path().join("run").to_str().unwrap(), &endpoint);
        assert_eq!(code, want_code, "{features}: {stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(want), "{features}: {stderr}");
        assert!(!stderr.contains("X-Amz-Signature=abc") && !stderr.contains(s3::SECRET_KEY), "{stderr}");
    }
    // Nothing listens on the endpoint: a transient failure, exit 1, naming the URL.
    let closed = format!("http://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let (code, _, stderr) = train("s3://errors/x.parquet", tmp.path().join("run").to_str().unwrap(), &closed);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("s3://errors/x.parquet"), "{stderr}");
    // An output in a bucket that does not exist fails before the fit with the URL.
    let local = examples().join("data/charges/*.parquet");
    let (code, _, stderr) = train(local.to_str().unwrap(), "s3://no-such-bucket/runs/x", &endpoint);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("s3://no-such-bucket/runs/x"), "{stderr}");
}

#[test]
fn a_bucket_prefix_is_a_runs_root_with_production_pointers_and_baselines() {
    let Some(server) = S3::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let first = quickstart_in(&server, "registry", tmp.path(), logistic());
    let root = "s3://registry/runs";
    let (code, _, stderr) =
        run(server.trainyard().args(["train", first.to_str().unwrap(), "--output", &format!("{root}/day1")]));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) =
        run(server.trainyard().args(["runs", "promote", root, "quickstart", "day1", "--by", "ci"]));
    assert_eq!(code, 0, "{stderr}");
    let pointer = json_of(&server.get("registry", "runs/.production/quickstart.json").unwrap());
    assert_eq!(pointer["path"], "day1");
    assert!(server.get("registry", "runs/.production/quickstart/000001.json").is_some());

    // The retrain finds its baseline through the pointer in the bucket (the output's parent).
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
    spec["baseline"] = json!({"production": "quickstart"});
    spec["gate"] = json!({"metric": "log_loss", "min_delta": -0.001});
    let retrain = tmp.path().join("retrain.json");
    std::fs::write(&retrain, spec.to_string()).unwrap();
    let (code, stdout, stderr) = run(server.trainyard().args([
        "train",
        retrain.to_str().unwrap(),
        "--output",
        &format!("{root}/day2"),
        "--fail-on-gate",
    ]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let metrics = json_of(&server.get("registry", "runs/day2/metrics.json").unwrap());
    assert_eq!(metrics["baseline"]["run_id"], pointer["run_id"]);
    assert_eq!(metrics["baseline"]["rows"], metrics["test"]["rows"]);

    let (code, stdout, stderr) = run(server.trainyard().args(["runs", "list", root, "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let records: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 2, "{records}");
    assert_eq!(records[0]["path"], "day2");
    assert_eq!(records[0]["eligible"], true);
    assert_eq!(records[1]["production"], true);

    // Compare-and-swap on the bucket: a promotion over a stale previous run is refused.
    let day2 = records[0]["run_id"].as_str().unwrap().to_string();
    let previous = pointer["run_id"].as_str().unwrap().to_string();
    let (code, _, stderr) =
        run(server.trainyard().args(["runs", "promote", root, "quickstart", &day2, "--previous", &previous]));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(server.trainyard().args([
        "runs",
        "promote",
        root,
        "quickstart",
        "day1",
        "--previous",
        &previous,
    ]));
    assert_eq!(code, 2, "{stderr}");
    let (code, stdout, _) =
        run(server.trainyard().args(["runs", "history", root, "quickstart", "--format", "json"]));
    assert_eq!(code, 0);
    let history: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(history[0]["run_id"], day2.as_str());
    assert_eq!(history[1]["run_id"], previous.as_str());
}
