//! Ingest: Parquet files to the standardized row-major f32 design matrices of both sides
//! (read, split, fit the feature pipeline, transform), reported as rows per second.
//!
//! `cargo bench -p trainyard-benches --bench ingest`
//!
//! The data (float32 features, as `trainyard synth --numeric` writes) is made once per size in a
//! temporary directory, outside the timed closure.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use trainyard::dataset;
use trainyard::features::Pipeline;
use trainyard::spec::CheckedSpec;
use trainyard::synth::{SynthOptions, write_numeric};

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest_to_design_matrix");
    group.sample_size(10);
    for (rows, cols) in [(200_000, 32), (1_000_000, 32)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = SynthOptions { rows, files: 4, ..SynthOptions::default() };
        write_numeric(dir.path(), cols, &opts).expect("synthetic data");
        let names: Vec<String> = (0..cols).map(|j| format!("x{j}")).collect();
        let spec = serde_json::json!({
            "name": "ingest",
            "data": {"features": [dir.path().to_string_lossy()]},
            "label": "label",
            "features": {"numeric": names},
            "holdout": {"random": {"fraction": 0.2}},
        });
        let spec_path = dir.path().join("spec.json");
        std::fs::write(&spec_path, spec.to_string()).expect("spec");
        let checked = CheckedSpec::from_file(&spec_path, &[]).expect("valid spec");
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("{rows}x{cols}")), |b| {
            b.iter(|| {
                let mut data = dataset::load(&checked).expect("load");
                let pipeline = Pipeline::fit_spec(&data.train.frame, &checked.spec.features).expect("fit");
                let train = pipeline.design_owned(&mut data.train.frame).expect("train design");
                let test = pipeline.design_owned(&mut data.test.frame).expect("test design");
                (train.rows(), test.rows())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
