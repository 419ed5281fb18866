//! Real artifacts to corrupt: synthetic data, and run directories and checkpoints made by the
//! binary from the quick-start spec, so the fuzzers start from exactly what `train` writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use trainyard::synth::{self, SynthOptions};

use super::binary::{self, Ended};

/// `synth` output under `dir`: `dir/charges/part-*.parquet` and `dir/labels.parquet`.
pub fn synth_data(dir: &Path, rows: usize, seed: u64) -> PathBuf {
    let opts = SynthOptions { rows, seed, files: 1, row_group_rows: 512, ..SynthOptions::default() };
    synth::write(dir, &opts).unwrap();
    dir.to_path_buf()
}

/// `examples/quickstart.json` over the synthetic data in `data`, with `model`, on the CPU.
pub fn quickstart_spec(data: &Path, model: Value) -> Value {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let text = std::fs::read_to_string(examples.join("quickstart.json")).unwrap();
    let mut spec: Value = serde_json::from_str(&text).unwrap();
    spec["data"]["features"] = json!([data.join("charges/*.parquet")]);
    spec["data"]["labels"] = json!([data.join("labels.parquet")]);
    spec["model"] = model;
    spec["device"] = json!("cpu");
    spec
}

/// Writes `spec` next to `output` and trains it; `extra` arguments follow.
pub fn train(spec: &Value, output: &Path, extra: &[&str], timeout: Duration) -> Ended {
    let spec_path = output.with_extension("spec.json");
    std::fs::write(&spec_path, serde_json::to_string_pretty(spec).unwrap()).unwrap();
    let dir = output.parent().unwrap();
    let mut args = vec!["train", spec_path.to_str().unwrap(), "--output", output.to_str().unwrap()];
    args.extend_from_slice(extra);
    binary::run(binary::trainyard(dir, &args), timeout)
}

/// Trains `spec` into `output` and insists that it worked: fixtures must be real.
pub fn trained(spec: &Value, output: &Path) -> PathBuf {
    let ended = train(spec, output, &[], Duration::from_secs(300));
    assert_eq!(ended.code, Some(0), "training the fixture failed: {}", ended.stderr);
    output.to_path_buf()
}
