//! `trainyard export` and the spec's `"export": ["onnx"]`: the protobuf read back declares one
//! input per raw feature column (float64 numbers, string categoricals, `[N]` with a named batch
//! dimension), the `probabilities` and `label` outputs, the operator sets, and the run it came
//! from (run id, spec sha256, version) in its metadata; both ways write the same bytes, the
//! run's manifest covers `model.onnx`, and what cannot be exported exits 2 naming why. Whether
//! onnxruntime scores the graph as `predict` does is `.ci/onnx_check.py`'s job.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{example_spec, outcome};
use serde_json::{Value, json};
use trainyard::onnx::proto::{Dim, ElemType, Summary};

fn trainyard(args: &[&str]) -> (i32, String, String) {
    outcome(&Command::new(env!("CARGO_BIN_EXE_trainyard")).args(args).output().unwrap())
}

/// Trains the committed example with `change` applied to its spec; returns the run directory.
fn train(tmp: &Path, name: &str, change: impl FnOnce(&mut Value)) -> PathBuf {
    let path = example_spec(tmp, name, change);
    let run = tmp.join("runs").join(name);
    let (code, _, err) = trainyard(&["train", path.to_str().unwrap(), "--output", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    run
}

fn manifest(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap()
}

fn batch() -> Vec<Dim> {
    vec![Dim::Named("N".into())]
}

/// Checks what every export declares: the inputs (in feature order), the outputs, the operator
/// sets and the provenance.
fn check_interface(s: &Summary, run: &Path, classes: i64) {
    let m = manifest(run);
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("model.json")).unwrap()).unwrap();
    assert_eq!(s.ir_version, 8);
    assert!(s.opsets.contains(&(String::new(), 17)), "{:?}", s.opsets);
    assert!(s.opsets.contains(&("ai.onnx.ml".to_string(), 3)), "{:?}", s.opsets);
    assert_eq!(s.producer.0, "trainyard");
    let mut expected: Vec<(String, ElemType)> = card["pipeline"]["numeric"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["column"].as_str().unwrap().to_string(), ElemType::Double))
        .collect();
    expected.extend(
        card["pipeline"]["categorical"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["column"].as_str().unwrap().to_string(), ElemType::String)),
    );
    let declared: Vec<(String, ElemType)> = s.inputs.iter().map(|i| (i.name.clone(), i.elem)).collect();
    assert_eq!(declared, expected);
    for i in &s.inputs {
        assert_eq!(i.dims, batch(), "input {}", i.name);
        assert!(!i.doc.is_empty(), "input {} says what it holds", i.name);
    }
    let outputs: Vec<(&str, ElemType, &[Dim])> =
        s.outputs.iter().map(|o| (o.name.as_str(), o.elem, o.dims.as_slice())).collect();
    assert_eq!(
        outputs,
        vec![
            ("probabilities", ElemType::Double, &[Dim::Named("N".into()), Dim::Fixed(classes)][..]),
            // is_fraud is a boolean column: the label is a bool tensor.
            ("label", ElemType::Bool, &batch()[..]),
        ]
    );
    assert_eq!(s.metadata("run_id"), m["run_id"].as_str());
    assert_eq!(s.metadata("spec_sha256"), m["spec_sha256"].as_str());
    assert_eq!(s.metadata("trainyard_version"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(s.metadata("probability_columns"), Some("[\"false\",\"true\"]"));
    assert_eq!(s.metadata("label_column"), Some("is_fraud"));
    // Categorical levels become codes through the ML domain's LabelEncoder, one per column.
    let encoders = s.nodes.iter().filter(|(d, op)| d == "ai.onnx.ml" && op == "LabelEncoder").count();
    assert!(encoders >= card["pipeline"]["categorical"].as_array().unwrap().len());
    assert!(s.nodes.iter().all(|(d, _)| d.is_empty() || d == "ai.onnx.ml"), "standard domains only");
}

#[test]
fn a_partitioned_run_exports_from_the_spec_and_the_cli_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train(tmp.path(), "partitioned", |s| {
        s["partition"] =
            json!({"by": "merchant_id", "min_rows": 100, "min_positives": 3, "select": "none", "l2": 1.0});
        s["export"] = json!(["onnx"]);
    });
    let written = std::fs::read(run.join("model.onnx")).unwrap();
    let s = Summary::read(&written).unwrap();
    check_interface(&s, &run, 2);
    assert_eq!(s.metadata("model"), Some("binary logistic regression with per-group models"));
    // merchant_id is a categorical feature: the group lookup reads that input, no second one.
    assert_eq!(s.inputs.iter().filter(|i| i.name == "merchant_id").count(), 1);
    assert_eq!(
        s.nodes.iter().filter(|(_, op)| op == "LabelEncoder").count(),
        5,
        "4 categoricals + the groups"
    );
    assert!(
        manifest(&run)["artifacts"]["model.onnx"].as_str().is_some_and(|d| !d.is_empty()),
        "the manifest holds model.onnx's digest"
    );

    let out = tmp.path().join("exported.onnx");
    let (code, stdout, err) = trainyard(&["export", run.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.trim(), out.to_str().unwrap());
    // Not assert_eq!: a mismatch would print two ONNX files as byte lists.
    assert!(std::fs::read(&out).unwrap() == written, "the CLI writes the bytes the spec's export wrote");
}

#[test]
fn an_mlp_exports_its_embeddings_and_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train(tmp.path(), "mlp", |s| {
        s["model"] = json!({"mlp": {"hidden": [8], "epochs": 2, "batch_size": 256}});
    });
    let out = tmp.path().join("mlp.onnx");
    let (code, _, err) =
        trainyard(&["export", run.to_str().unwrap(), "--format", "onnx", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let s = Summary::read(&std::fs::read(&out).unwrap()).unwrap();
    check_interface(&s, &run, 2);
    assert_eq!(s.metadata("model"), Some("MLP (binary)"));
    let count = |op: &str| s.nodes.iter().filter(|(_, o)| o == op).count();
    assert_eq!(count("Gemm"), 2, "one hidden layer and the output layer");
    assert_eq!(count("Relu"), 1);
    assert!(s.initializers.len() >= 4 + 4, "4 embeddings, 2 weights, 2 biases");
}

#[test]
fn what_cannot_be_exported_exits_2_naming_why() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train(tmp.path(), "plain", |_| {});
    let run_arg = run.to_str().unwrap();

    // "US" is a country level: as the null string, null rows would score as US.
    let (code, _, err) = trainyard(&["export", run_arg, "--null-string", "US", "--out", "x.onnx"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"country\"") && err.contains("--null-string"), "{err}");

    let inside = run.join("model.onnx");
    let (code, _, err) = trainyard(&["export", run_arg, "--out", inside.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(!inside.exists(), "nothing written inside the run");

    let (code, _, err) = trainyard(&["export", tmp.path().to_str().unwrap(), "--out", "y.onnx"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("manifest.json"), "{err}");

    let (code, _, err) = trainyard(&["export", run_arg, "--format", "pmml"]);
    assert_eq!(code, 2, "{err}");

    let dir = tmp.path().join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let (code, _, err) = trainyard(&["export", run_arg, "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("directory"), "{err}");

    // The spec asks for an unknown format: refused with the spec, before any data is read.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(examples.join("quickstart.json")).unwrap()).unwrap();
    spec["export"] = json!(["pmml"]);
    let path = tmp.path().join("pmml.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    let out = tmp.path().join("runs/pmml");
    let (code, _, err) = trainyard(&["train", path.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("export"), "{err}");
    assert!(!out.exists());
}
