//! Fuzzes the MLP checkpoint: `checkpoint::load` in-process on mutated files (most of the time),
//! and `train` resuming from a mutated checkpoint, run as the binary, which must exit 0 (the
//! mutation left a usable checkpoint), or 1 or 2 with a message; never panic or abort. The seed is
//! a real checkpoint: an MLP run on synthetic data stopped by SIGTERM, as a preempted pod is.
//!
//! Mutations keep the safetensors framing valid most of the time and often change only the loop
//! state JSON inside its metadata, so that inputs get past the decoder into the resume checks.

#![allow(clippy::unwrap_used)]

mod fuzzing;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fuzzing::Mutator;
use fuzzing::binary::{self, Ended};
use fuzzing::runs::{quickstart_spec, synth_data};
use serde_json::{Value, json};
use trainyard::mlp::checkpoint;

/// Share of the time for the in-process loader; a resume runs the binary and costs a hundred
/// loads or more.
const LOAD_SHARE: f64 = 0.6;

fn mutate(m: &mut Mutator, input: &[u8], other: &[u8]) -> Vec<u8> {
    let structured = if m.rng.chance(80) { m.safetensors(input, other) } else { None };
    let mutated = structured.unwrap_or_else(|| m.bytes(input, other, input.len() + 4096));
    // Mostly re-signed, as a buggy writer would sign what it wrote: otherwise nearly every
    // input would stop at the digest check and the resume checks behind it would go untested.
    if m.rng.chance(80) { resign(&mutated).unwrap_or(mutated) } else { mutated }
}

use trainyard::mlp::checkpoint::DIGEST_KEY;

/// `bytes` with the digest in its metadata recomputed by `checkpoint::content_digest`, or
/// `None` when the file does not parse far enough to have one. The test checks that re-signing
/// the real checkpoint changes nothing, so a change to the digest cannot silently make this a
/// no-op.
fn resign(bytes: &[u8]) -> Option<Vec<u8>> {
    let digest = checkpoint::content_digest(bytes).ok()?;

    let n = u64::from_le_bytes(bytes[..8].try_into().ok()?) as usize;
    let mut doc: Value = serde_json::from_slice(&bytes[8..8 + n]).ok()?;
    doc.get_mut("__metadata__")?.as_object_mut()?.insert(DIGEST_KEY.into(), Value::String(digest));
    let mut header = serde_json::to_vec(&doc).ok()?;
    // safetensors pads its header with spaces to 8 bytes; keep the data where it was aligned.
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&bytes[8 + n..]);
    Some(out)
}

fn train_args<'a>(spec: &'a Path, output: &'a Path) -> Vec<&'a str> {
    vec!["train", spec.to_str().unwrap(), "--output", output.to_str().unwrap(), "--overwrite"]
}

/// Starts training `spec` and sends SIGTERM as soon as its first checkpoint exists; returns the
/// checkpoint's bytes. Retries when a run finishes before the signal lands.
fn preempted_checkpoint(dir: &Path, spec: &Path, output: &Path) -> Vec<u8> {
    let file = checkpoint::dir_for(output).join("checkpoint.safetensors");
    for _ in 0..5 {
        let mut command = binary::trainyard(dir, &train_args(spec, output));
        let child =
            command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !file.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        // SAFETY: kill only sends a signal to the child we started.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        if out.status.code() == Some(143) {
            return std::fs::read(&file).unwrap();
        }
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::remove_dir_all(output).unwrap();
    }
    panic!("training always finished before SIGTERM; make the fixture run longer");
}

fn checkpoint_loads(tmp: &Path, bytes: &[u8]) -> bool {
    let dir = tmp.join("check");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("checkpoint.safetensors"), bytes).unwrap();
    checkpoint::load(&dir, &candle_core::Device::Cpu).is_ok_and(|c| c.is_some())
}

#[test]
fn the_checkpoint_loader_and_resume_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_data(&tmp.path().join("data"), 2000, 3);
    let spec: Value = quickstart_spec(
        &data,
        json!({"mlp": {"hidden": [4], "epochs": 2, "batch_size": 64, "checkpoint_every_steps": 1}}),
    );
    let spec_path = tmp.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let output: PathBuf = tmp.path().join("run");
    let seed = preempted_checkpoint(tmp.path(), &spec_path, &output);
    let ckpt_dir = checkpoint::dir_for(&output);
    let resigned = resign(&seed).expect("the real checkpoint parses");
    assert!(
        resigned == seed || checkpoint_loads(tmp.path(), &resigned),
        "re-signing the real checkpoint makes it unusable: checkpoint.rs digests differently, update resign()"
    );

    let load_dir = tmp.path().join("load");
    std::fs::create_dir_all(&load_dir).unwrap();
    let load = |input: &[u8]| {
        std::fs::write(load_dir.join("checkpoint.safetensors"), input).unwrap();
        checkpoint::load(&load_dir, &candle_core::Device::Cpu).map(|_| ())
    };
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fuzzing::run_target("checkpoint-load", vec![seed.clone()], fuzzing::budget(LOAD_SHARE), mutate, load)
    }));

    let resume = |input: &[u8]| -> Result<(), String> {
        let _ = std::fs::remove_dir_all(&output);
        std::fs::create_dir_all(&ckpt_dir).unwrap();
        std::fs::write(ckpt_dir.join("checkpoint.safetensors"), input).unwrap();
        let ended: Ended = binary::run(
            binary::trainyard(tmp.path(), &train_args(&spec_path, &output)),
            Duration::from_secs(120),
        );
        fuzzing::check_child(&ended);
        ended.error_line().map_or(Ok(()), |l| Err(l.to_string()))
    };
    fuzzing::run_target("checkpoint-resume", vec![seed], fuzzing::budget(1.0 - LOAD_SHARE), mutate, resume);
    if let Err(e) = loaded {
        std::panic::resume_unwind(e);
    }
}
