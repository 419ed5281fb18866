//! Preemption of a multiclass MLP (digits, 10 classes): SIGTERM mid-epoch writes a checkpoint
//! and exits 143; the same command resumes and ends with the weights of a run that was never
//! interrupted.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{datasets_dir, outcome, reference_spec};
use serde_json::{Value, json};

#[test]
fn a_multiclass_mlp_stopped_by_sigterm_resumes_to_the_uninterrupted_weights() {
    let Some(root) = datasets_dir() else { return };
    let dir = root.join("digits");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let model = json!({"mlp": {"hidden": [64, 32], "epochs": 30, "batch_size": 8, "early_stopping": null,
        "checkpoint_every_steps": 20}});
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("spec.json");
    std::fs::write(&spec, reference_spec(&dir, &reference, model).to_string()).unwrap();
    let run = tmp.path().join("run");
    let checkpoint = tmp.path().join("run.checkpoint");
    let bin = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trainyard"));
        c.args(["--log-format", "json", "train", spec.to_str().unwrap(), "--output", run.to_str().unwrap()]);
        c
    };

    let (code, _, stderr) = outcome(&bin().output().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let expected = std::fs::read(run.join("model.safetensors")).unwrap();
    std::fs::remove_dir_all(&run).unwrap();

    let child = bin().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !checkpoint.join("checkpoint.safetensors").exists() {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let (code, _, stderr) = outcome(&child.wait_with_output().unwrap());
    assert_eq!(code, 143, "the run was not preempted (did it finish first?): {stderr}");
    assert!(!run.exists());

    let (code, _, stderr) = outcome(&bin().output().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("resuming from the checkpoint"), "{stderr}");
    assert!(std::fs::read(run.join("model.safetensors")).unwrap() == expected, "resumed weights differ");
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["architecture"]["outputs"], 10);
}
