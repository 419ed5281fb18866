//! Helpers shared by the integration tests: a temp directory with small Parquet fixtures, spec
//! files, and running the real binary in it.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};

/// Microseconds of 2024-01-01T00:00:00Z.
pub const JAN_1_2024_US: i64 = 1_704_067_200_000_000;
pub const DAY_US: i64 = 86_400_000_000;

/// Writes `columns` as a Parquet file with `row_group_rows` rows per row group.
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, row_group_rows: usize) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    trainyard::data::write_parquet(path, batch, row_group_rows).unwrap();
}

/// A temp directory holding `data.parquet` (200 rows: id, t, amount, country, y) and
/// `labels.parquet` (id, label for ids 0..190).
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let n = 200i64;
        let ids: Vec<i64> = (0..n).collect();
        let times: Vec<i64> = ids.iter().map(|i| JAN_1_2024_US + i * DAY_US).collect();
        let amount: Vec<Option<f64>> = ids.iter().map(|&i| (i % 17 != 0).then_some(i as f64 * 1.5)).collect();
        let country: Vec<&str> = ids.iter().map(|i| ["US", "CA", "FR"][(*i % 3) as usize]).collect();
        let y: Vec<i64> = ids.iter().map(|i| i64::from(i % 4 == 0)).collect();
        write_parquet(
            &dir.path().join("data.parquet"),
            vec![
                ("id", Arc::new(Int64Array::from(ids.clone())) as ArrayRef),
                ("t", Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC"))),
                ("amount", Arc::new(Float64Array::from(amount))),
                ("country", Arc::new(StringArray::from(country))),
                ("y", Arc::new(Int64Array::from(y.clone()))),
            ],
            50,
        );
        write_parquet(
            &dir.path().join("labels.parquet"),
            vec![
                ("id", Arc::new(Int64Array::from(ids[..190].to_vec())) as ArrayRef),
                ("label", Arc::new(Int64Array::from(y[..190].to_vec()))),
            ],
            1000,
        );
        Fixture { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A valid spec over `data.parquet`; tests change fields of it.
    pub fn base_spec(&self) -> Value {
        json!({
            "name": "fixture",
            "data": {"features": ["data.parquet"]},
            "label": "y",
            "features": {"numeric": ["amount"], "categorical": ["country"]},
            "holdout": {"random": {"fraction": 0.25, "key": "id"}},
        })
    }

    /// Writes `spec` (a JSON value, or raw text) to `spec.json` and returns its path.
    pub fn write_spec(&self, spec: &Value) -> PathBuf {
        let path = self.path("spec.json");
        std::fs::write(&path, serde_json::to_string_pretty(spec).unwrap()).unwrap();
        path
    }

    /// Runs the binary with the fixture directory as working directory.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_trainyard"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }
}

/// The exit code, stdout and stderr of a run.
pub fn outcome(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Column `name` of a Parquet file as numbers (panics on nulls).
pub fn read_f64_column(path: &Path, name: &str) -> Vec<f64> {
    use trainyard::data::{self, ParquetFile};
    let files = ParquetFile::open_all(&[path.to_path_buf()]).unwrap();
    let cols = vec![name.to_string()];
    let kinds = data::column_kinds(&files, &cols).unwrap();
    let (frame, _) = data::read(&files, &cols, &kinds, &[]).unwrap();
    let c = frame.column(name).unwrap();
    (0..c.len()).map(|i| c.f64_at(i).unwrap()).collect()
}

/// `../shared/datasets` beside the checkout, or `None` (with a message) when it is absent.
pub fn datasets_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets");
    if dir.is_dir() {
        Some(dir.canonicalize().unwrap())
    } else {
        // CI has the datasets: a skip there would hide a test that must run.
        assert!(
            std::env::var_os("TRAINYARD_REQUIRE_DATASETS").is_none(),
            "{} is absent but TRAINYARD_REQUIRE_DATASETS is set",
            dir.display()
        );
        eprintln!("skipping: {} is absent (real datasets live beside the checkout)", dir.display());
        None
    }
}

/// Every dataset folder under `root` that has a `reference.json`, sorted by name, with the
/// parsed reference.
pub fn references(root: &Path) -> Vec<(PathBuf, Value)> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    dirs.into_iter()
        .filter_map(|dir| {
            let text = std::fs::read_to_string(dir.join("reference.json")).ok()?;
            Some((dir, serde_json::from_str(&text).unwrap()))
        })
        .collect()
}

/// A spec that trains `model` on a reference dataset the way scikit-learn's reference did: its
/// train and test files, every category kept, null categories imputed with the most frequent.
pub fn reference_spec(dir: &Path, reference: &Value, model: Value) -> Value {
    let mut features = reference["features"].clone();
    features["min_category_count"] = json!(1);
    features["categorical_nulls"] = json!("most_frequent");
    json!({
        "name": reference["dataset"],
        "data": {"features": [dir.join("train.parquet")]},
        "label": reference["label_column"],
        "features": features,
        "holdout": {"files": [dir.join("test.parquet")]},
        "model": model,
    })
}

/// A copy of the committed example's spec in `dir` (`<name>.json`), its data paths absolute and
/// its name `name`, with `change` applied; returns its path.
pub fn example_spec(dir: &Path, name: &str, change: impl FnOnce(&mut Value)) -> PathBuf {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(examples.join("quickstart.json")).unwrap()).unwrap();
    spec["name"] = json!(name);
    spec["data"]["features"] = json!([examples.join("data/charges/*.parquet")]);
    spec["data"]["labels"] = json!([examples.join("data/labels.parquet")]);
    change(&mut spec);
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}
