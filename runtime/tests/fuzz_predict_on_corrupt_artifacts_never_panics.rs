//! Fuzzes `predict` (and `inspect`) on run directories with one corrupted file: `manifest.json`,
//! `metrics.json`, `model.json` (mutated as JSON: pipeline statistics, levels, label mapping,
//! architecture, tensor names), `model.safetensors` (header, shapes, extreme weights,
//! truncation) and a partitioned run's `groups.*`. The runs are real: trained once per test by
//! the binary from the quick-start spec (logistic, MLP, and logistic with a partition). A corrupt
//! run directory must be an error naming the file; a panic is a bug.

#![allow(clippy::unwrap_used)]

mod fuzzing;

use std::path::PathBuf;

use fuzzing::Mutator;
use fuzzing::runs::{quickstart_spec, synth_data, trained};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The files of a run directory that `predict` reads to score (when the run has them).
const FILES: [&str; 6] = [
    "manifest.json",
    "metrics.json",
    "model.json",
    "model.safetensors",
    "groups.safetensors",
    "groups.parquet",
];

fn mutate_file(file: &str) -> impl FnMut(&mut Mutator, &[u8], &[u8]) -> Vec<u8> {
    let file = file.to_string();
    move |m, input, other| {
        let structured = match file.as_str() {
            f if f.ends_with(".json") && m.rng.chance(85) => m.json(input, other),
            f if f.ends_with(".safetensors") && m.rng.chance(75) => m.safetensors(input, other),
            _ => None,
        };
        structured.unwrap_or_else(|| m.bytes(input, other, input.len() + 4096))
    }
}

#[test]
fn predict_never_panics_on_a_corrupt_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let train_data = synth_data(&tmp.path().join("train-data"), 2000, 1);
    let score_data = synth_data(&tmp.path().join("score-data"), 300, 2);
    let runs: Vec<(&str, PathBuf)> = vec![
        (
            "logistic",
            trained(&quickstart_spec(&train_data, json!({"logistic": {}})), &tmp.path().join("logistic")),
        ),
        (
            "mlp",
            trained(
                &quickstart_spec(&train_data, json!({"mlp": {"hidden": [8], "epochs": 1}})),
                &tmp.path().join("mlp"),
            ),
        ),
        ("partition", {
            let mut spec = quickstart_spec(&train_data, json!({"logistic": {}}));
            spec["partition"] = json!({"by": "card_brand", "min_rows": 100, "min_positives": 3});
            trained(&spec, &tmp.path().join("partition"))
        }),
    ];
    let data = vec![score_data.join("charges").display().to_string()];
    for (kind, run) in &runs {
        // An unmutated run must score, or every mutation would stop at the same first error.
        let scored = trainyard::predict::predict(run, &data, &tmp.path().join("check.parquet"));
        assert!(scored.is_ok(), "the pristine {kind} run does not predict: {}", scored.unwrap_err());
    }
    let targets: Vec<(&str, &PathBuf, &str)> = runs
        .iter()
        .flat_map(|(kind, run)| FILES.iter().filter(|f| run.join(f).exists()).map(move |f| (*kind, run, *f)))
        .collect();
    let names: Vec<String> = targets.iter().map(|(k, _, f)| format!("{k}/{f}")).collect();
    assert!(
        names.contains(&"partition/groups.safetensors".to_string()),
        "the partition run has no groups: {names:?}"
    );

    let scratch = tmp.path().join("scratch");
    let out = tmp.path().join("scores.parquet");
    let share = 1.0 / targets.len() as f64;
    let mut failures = Vec::new();
    for (kind, run, file) in targets {
        // A copy of the whole run (manifest and all) in which only `file` is rewritten.
        std::fs::create_dir_all(&scratch).unwrap();
        for entry in std::fs::read_dir(run).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, scratch.join(path.file_name().unwrap())).unwrap();
        }
        // The manifest's digest of the corrupted file is brought up to date, as a careless
        // edit or a buggy writer would: otherwise every input would stop at the digest check
        // and never reach the parsers behind it.
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
        let exec = |input: &[u8]| {
            std::fs::write(scratch.join(file), input).unwrap();
            if file != "manifest.json" {
                let mut manifest = manifest.clone();
                manifest["artifacts"][file] = json!(sha256_hex(input));
                std::fs::write(scratch.join("manifest.json"), manifest.to_string()).unwrap();
            }
            // `inspect` reads the same run files (and metrics.json); it must survive them too.
            let inspected = trainyard::inspect::inspect(&scratch);
            trainyard::predict::predict(&scratch, &data, &out)?;
            inspected.map(|_| ())
        };
        let seed = std::fs::read(run.join(file)).unwrap();
        let name = format!("predict-{kind}-{file}");
        // One sub-target's findings must not hide the others'.
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fuzzing::run_target(&name, vec![seed], fuzzing::budget(share), mutate_file(file), exec)
        })) {
            failures.push(panic_text(&e));
        }
        std::fs::remove_dir_all(&scratch).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>().cloned().unwrap_or_else(|| "a panic".into())
}
