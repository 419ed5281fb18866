//! Preemption: SIGTERM during MLP training finishes the step, writes a checkpoint beside the
//! output and exits 143 with no run directory; running the same command again resumes and ends
//! with the same weights as a run that was never interrupted, then removes the checkpoint. A
//! different spec refuses the checkpoint with exit 2. `inspect` summarizes the resumed run.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::outcome;
use serde_json::{Value, json};

/// The committed quick-start data with an MLP long enough to interrupt.
fn spec(tmp: &Path) -> PathBuf {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(examples.join("quickstart.json")).unwrap()).unwrap();
    spec["data"]["features"] = json!([examples.join("data/charges/*.parquet")]);
    spec["data"]["labels"] = json!([examples.join("data/labels.parquet")]);
    spec["model"] = json!({"mlp": {"hidden": [32, 16], "epochs": 6, "batch_size": 64,
        "checkpoint_every_steps": 10}});
    let path = tmp.join("spec.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainyard"));
    c.arg("--log-format").arg("json");
    c
}

#[test]
fn sigterm_checkpoints_exits_143_and_the_rerun_ends_with_uninterrupted_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec(tmp.path());
    let run = tmp.path().join("run");
    let checkpoint = tmp.path().join("run.checkpoint");
    let args = ["train", spec.to_str().unwrap(), "--output", run.to_str().unwrap()];

    // Uninterrupted reference (same spec, same output path).
    let (code, _, stderr) = outcome(&bin().args(args).output().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let expected = std::fs::read(run.join("model.safetensors")).unwrap();
    std::fs::remove_dir_all(&run).unwrap();

    // Interrupted: SIGTERM once the first step checkpoint exists.
    let child = bin().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !checkpoint.join("checkpoint.safetensors").exists() {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let (code, _, stderr) = outcome(&out);
    assert_eq!(code, 143, "the run was not preempted (did it finish first?): {stderr}");
    assert!(stderr.contains("stopped by SIGTERM") && stderr.contains("checkpoint saved"), "{stderr}");
    assert!(!run.exists(), "a preempted run must not leave a run directory");
    assert!(checkpoint.join("checkpoint.safetensors").exists());

    // A different spec refuses the checkpoint.
    let (code, stdout, stderr) =
        outcome(&bin().args(args).args(["--set", "model.mlp.learning_rate=0.01"]).output().unwrap());
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("run.checkpoint") && stderr.contains("different spec"), "{stderr}");
    assert!(!run.exists());

    // The same command resumes and finishes with the uninterrupted weights.
    let (code, _, stderr) = outcome(&bin().args(args).output().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("resuming from the checkpoint"), "{stderr}");
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["fit"]["resumed_from"].is_array(), "{}", metrics["fit"]);
    assert!(std::fs::read(run.join("model.safetensors")).unwrap() == expected, "resumed weights differ");
    assert!(!checkpoint.exists(), "the checkpoint must be removed once the run is written");

    // inspect summarizes the MLP run, resume point and per-epoch history included.
    let (code, stdout, stderr) = outcome(&bin().args(["inspect", run.to_str().unwrap()]).output().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("model: mlp") && stdout.contains("resumed at epoch"), "{stdout}");
    assert!(stdout.contains("epoch  train loss  val loss  val AUC"), "{stdout}");
}
