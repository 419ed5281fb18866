//! Property: any spec the checker accepts either trains, or fails with exit 1 or 2 and an
//! `error:` line; never a panic, an abort or a signal. Specs are random (model kind and
//! hyperparameters including extremes, holdouts, filters, feature subsets, weights, label
//! joins, partitions) over a few hundred rows, and each runs the real binary. A few the checker
//! rejects are run too (they must exit 2), and so are a few with absurd sizes, which must be
//! refused cleanly instead of allocating.
//!
//! `TRAINYARD_FUZZ_SPECS` sets how many random specs (default 60, a few seconds);
//! `TRAINYARD_FUZZ_SEED` works as for the fuzz targets (see `tests/fuzzing/mod.rs`). A failing
//! spec is saved under `$CARGO_TARGET_TMPDIR/fuzz-findings/accepted-specs/`.
//! `TRAINYARD_FUZZ_VERBOSE=1` prints each run's exit code and error line.

#![allow(clippy::unwrap_used)]

mod fuzzing;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::record_batch::RecordBatch;
use fuzzing::Mutator;
use fuzzing::binary;
use fuzzing::mutate::Rng;
use serde_json::{Value, json};
use trainyard::spec::{CheckedSpec, JobSpec};

const JAN_1_2024_US: i64 = 1_704_067_200_000_000;
const DAY_US: i64 = 86_400_000_000;

/// `rows` rows starting at id `first`: numeric, boolean, timestamp, string and integer columns
/// with nulls, three label encodings, a weight column with zeros, and one huge-valued column.
fn table(first: i64, rows: i64) -> RecordBatch {
    let ids: Vec<i64> = (first..first + rows).collect();
    let pattern = |i: i64| (i * 7919 + 13) % 100;
    let y: Vec<i64> = ids.iter().map(|&i| i64::from(pattern(i) < 25)).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(ids.clone()))),
        (
            "t",
            Arc::new(
                TimestampMicrosecondArray::from(
                    ids.iter().map(|i| JAN_1_2024_US + i * DAY_US).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ),
        (
            "amount",
            Arc::new(Float64Array::from(
                ids.iter()
                    .zip(&y)
                    .map(|(&i, &label)| (i % 17 != 0).then(|| pattern(i) as f64 * 1.5 + label as f64 * 40.0))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "count",
            Arc::new(Int32Array::from(ids.iter().map(|&i| (pattern(i) % 9) as i32 - 3).collect::<Vec<_>>())),
        ),
        (
            "ratio",
            Arc::new(Float32Array::from(
                ids.iter().map(|&i| (i % 11 != 0).then(|| pattern(i) as f32 / 100.0)).collect::<Vec<_>>(),
            )),
        ),
        (
            "flag",
            Arc::new(BooleanArray::from(ids.iter().map(|&i| Some(pattern(i) % 3 == 0)).collect::<Vec<_>>())),
        ),
        (
            "big",
            Arc::new(Float64Array::from(
                ids.iter().map(|&i| if i % 2 == 0 { 1e300 } else { -1e300 }).collect::<Vec<_>>(),
            )),
        ),
        (
            "country",
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|&i| (i % 13 != 0).then(|| ["US", "CA", "FR", "BR"][(i % 4) as usize]))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "merchant",
            Arc::new(StringArray::from(ids.iter().map(|&i| format!("m_{}", i % 6)).collect::<Vec<_>>())),
        ),
        ("cat_int", Arc::new(Int64Array::from(ids.iter().map(|&i| i % 5).collect::<Vec<_>>()))),
        ("w", Arc::new(Float64Array::from(ids.iter().map(|&i| (i % 4) as f64 * 0.75).collect::<Vec<_>>()))),
        ("y", Arc::new(Int64Array::from(y.clone()))),
        (
            "y_str",
            Arc::new(StringArray::from(
                y.iter().map(|&v| if v == 1 { "fraud" } else { "ok" }).collect::<Vec<_>>(),
            )),
        ),
        ("y_bool", Arc::new(BooleanArray::from(y.iter().map(|&v| Some(v == 1)).collect::<Vec<_>>()))),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

fn write_data(dir: &Path) {
    trainyard::data::write_parquet(&dir.join("train.parquet"), table(0, 300), 64).unwrap();
    trainyard::data::write_parquet(&dir.join("test.parquet"), table(300, 80), 64).unwrap();
    let labels = table(0, 290);
    let labels = RecordBatch::try_from_iter([
        ("id", labels.column_by_name("id").unwrap().clone()),
        ("label", labels.column_by_name("y").unwrap().clone()),
    ])
    .unwrap();
    trainyard::data::write_parquet(&dir.join("labels.parquet"), labels, 1000).unwrap();
}

fn pick<T: Clone>(rng: &mut Rng, items: &[T]) -> T {
    rng.pick(items).clone()
}

fn subset(rng: &mut Rng, items: &[&str]) -> Vec<String> {
    items.iter().filter(|_| rng.chance(45)).map(|s| s.to_string()).collect()
}

/// A random spec; small sizes so that a run takes well under a second, with extremes of the
/// values that are cheap (penalties, rates, fractions, counts).
fn random_spec(rng: &mut Rng, i: usize) -> Value {
    let join = rng.chance(20);
    let label = if join { "label".to_string() } else { pick(rng, &["y", "y_str", "y_bool"]).to_string() };
    let mut numeric = subset(rng, &["amount", "count", "ratio", "flag", "t"]);
    if rng.chance(5) {
        numeric.push(pick(rng, &["big", "w"]).to_string());
    }
    let mut categorical = subset(rng, &["country", "merchant", "cat_int", "flag"]);
    if numeric.is_empty() && categorical.is_empty() {
        numeric.push("amount".into());
    }
    if rng.chance(5) {
        categorical.push(pick(rng, &["nope", "y", "id", "amount"]).to_string());
    }
    numeric.dedup();
    categorical.retain(|c| !numeric.contains(c));
    let mut spec = json!({
        "name": format!("prop-{i}"),
        "data": {"features": [pick(rng, &["train.parquet", "./train.parquet", "train*.parquet"])]},
        "label": label,
        "features": {
            "numeric": numeric,
            "categorical": categorical,
            "min_category_count": pick(rng, &[1u64, 1, 2, 5, 50, 1_000_000]),
            "categorical_nulls": pick(rng, &["level", "most_frequent"]),
        },
        "device": "cpu",
        "seed": rng.next_u64(),
    });
    if join {
        spec["data"]["labels"] = json!(["labels.parquet"]);
        spec["data"]["join_key"] = json!("id");
    }
    if rng.chance(10) {
        spec["positive_label"] = pick(rng, &[json!(1), json!("fraud"), json!(true), json!("nope"), json!(0)]);
    }
    if rng.chance(25) {
        spec["weight"] = json!("w");
    }
    // Filters that keep most rows, and now and then one that keeps none.
    let mut filters: Vec<Value> = Vec::new();
    if rng.chance(30) {
        filters.push(pick(
            rng,
            &[
                json!({"column": "amount", "gt": 10}),
                json!({"column": "country", "in": ["US", "CA", "FR"]}),
                json!({"column": "t", "gte": "2024-02-01"}),
                json!({"column": "merchant", "ne": "m_1"}),
                json!({"column": "ratio", "not_null": true}),
            ],
        ));
    }
    if rng.chance(5) {
        filters.push(pick(
            rng,
            &[
                json!({"column": "amount", "is_null": true}),
                json!({"column": "count", "lt": -50}),
                json!({"column": "flag", "eq": true}),
            ],
        ));
    }
    if !filters.is_empty() {
        spec["data"]["filters"] = json!(filters);
    }
    spec["holdout"] = match rng.below(4) {
        0 => {
            let start = pick(rng, &["2024-08-01", "2024-06-15", "2024-09-20"]);
            let end = pick(rng, &["2024-10-01", "2024-12-31", "2030-01-01T00:00:00Z"]);
            json!({"date_range": {"column": "t", "start": start, "end": end}})
        }
        1 => json!({"files": ["test.parquet"]}),
        _ => {
            let mut r = json!({"fraction": pick(rng, &[0.2, 0.1, 0.5, 0.3, 0.25, 0.2, 1e-9, 0.999])});
            if rng.chance(50) {
                r["key"] = json!(pick(rng, &["id", "merchant", "t"]));
            }
            json!({"random": r})
        }
    };
    let class_weight = if rng.chance(20) { json!("balanced") } else { Value::Null };
    spec["model"] = if rng.chance(50) {
        json!({"logistic": {
            "l2": pick(rng, &[0.0, 1e-8, 1.0, 1e6, 1e300]),
            "max_iter": pick(rng, &[1, 5, 50]),
            "tol": pick(rng, &[1e-12, 1e-6, 1.0]),
            "class_weight": class_weight,
        }})
    } else {
        let hidden: Vec<usize> = (0..=rng.below(2)).map(|_| 1 + rng.below(16)).collect();
        let mut mlp = json!({
            "hidden": hidden,
            "dropout": pick(rng, &[0.0, 0.1, 0.5, 0.99]),
            "epochs": 1 + rng.below(3),
            "learning_rate": pick(rng, &[1e-6, 1e-3, 1.0, 1e3]),
            "weight_decay": pick(rng, &[0.0, 1e-4, 10.0]),
            "warmup_epochs": pick(rng, &[0.0, 0.5, 2.0]),
            "schedule": pick(rng, &["cosine", "constant"]),
            "grad_clip_norm": pick(rng, &[json!(null), json!(1.0), json!(1e-9)]),
            "class_weight": class_weight,
            "early_stopping": pick(rng, &[json!(null), json!({"patience": 1, "validation_fraction": 0.5}),
                                          json!({"patience": 2, "validation_fraction": 0.99})]),
        });
        if rng.chance(50) {
            mlp["embedding_dim"] = json!(1 + rng.below(8));
        }
        if rng.chance(50) {
            mlp["batch_size"] = json!(pick(rng, &[1, 7, 32, 128, 100_000]));
        }
        if rng.chance(20) {
            mlp["checkpoint_every_steps"] = json!(pick(rng, &[1, 5]));
        }
        json!({"mlp": mlp})
    };
    if spec["model"].get("logistic").is_some() && rng.chance(25) {
        let mut p = json!({
            "by": pick(rng, &["merchant", "country", "cat_int"]),
            "min_rows": pick(rng, &[5, 20, 50]),
            "min_positives": pick(rng, &[1, 3]),
            "shrinkage": pick(rng, &["global", "none"]),
        });
        if rng.chance(50) {
            p["l2"] = json!(pick(rng, &[0.0, 2.0, 1e300]));
        }
        spec["partition"] = p;
    }
    spec
}

/// Sizes no machine can hold; the spec checker or the memory estimate must refuse them.
fn absurd_specs() -> Vec<Value> {
    let base = json!({"name": "absurd", "data": {"features": ["train.parquet"]}, "label": "y",
        "features": {"numeric": ["amount"], "categorical": ["country"]}, "device": "cpu"});
    let with = |model: Value| {
        let mut s = base.clone();
        s["model"] = model;
        s
    };
    vec![
        with(json!({"mlp": {"hidden": [1_099_511_627_776u64], "epochs": 1}})),
        with(json!({"mlp": {"hidden": [8], "embedding_dim": 1_099_511_627_776u64, "epochs": 1}})),
        with(json!({"mlp": {"hidden": [100_000, 100_000], "epochs": 1}})),
        with(json!({"mlp": {"hidden": [8], "batch_size": 1_099_511_627_776u64, "epochs": 1}})),
        with(json!({"mlp": {"hidden": [4_611_686_018_427_387_904u64, 4], "epochs": 1}})),
        with(json!({"mlp": {"hidden": [3_000_000_000u64], "epochs": 1}})),
    ]
}

#[test]
fn any_accepted_spec_trains_or_fails_cleanly() {
    fuzzing::limit_memory();
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let count: usize = fuzzing::env_parse("TRAINYARD_FUZZ_SPECS").unwrap_or(60);
    let mut rng = Rng::new(fuzzing::seed() ^ 0x7370_6563);
    let mut mutator = Mutator::new(rng.next_u64());
    mutator.learn_words(random_spec(&mut Rng::new(0), 0).to_string().as_bytes());
    let findings = fuzzing::findings_dir("accepted-specs");

    // (spec, whether the checker accepted it)
    let mut cases: Vec<(Value, bool)> = absurd_specs().into_iter().map(|s| (s, true)).collect();
    let (mut accepted, mut rejected) = (0, 0);
    let mut attempts = 0;
    while accepted + rejected < count {
        attempts += 1;
        assert!(attempts < count * 100, "the generator makes almost no spec the checker accepts");
        let mut spec = random_spec(&mut rng, attempts);
        // Now and then one structural mutation on top: values and shapes no generator rule
        // would pick, some of which the checker still accepts.
        if mutator.rng.chance(15) {
            mutator.json_op(&mut spec, None);
        }
        let ok =
            JobSpec::from_json(&spec.to_string(), &[]).and_then(|s| CheckedSpec::new(s, tmp.path())).is_ok();
        // Mostly accepted specs; about one in six rejected ones, which must exit 2.
        if ok || (rejected * 5 < accepted && rng.chance(50)) {
            if ok {
                accepted += 1
            } else {
                rejected += 1
            }
            cases.push((spec, ok));
        }
    }

    let mut failures = Vec::new();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for (i, (spec, ok)) in cases.iter().enumerate() {
        let spec_path = tmp.path().join(format!("spec-{i}.json"));
        let text = serde_json::to_string_pretty(spec).unwrap();
        std::fs::write(&spec_path, &text).unwrap();
        let out = tmp.path().join(format!("run-{i}"));
        let args = ["train", spec_path.to_str().unwrap(), "--output", out.to_str().unwrap()];
        let ended = binary::run(binary::trainyard(tmp.path(), &args), Duration::from_secs(120));
        *outcomes.entry(format!("exit {:?}", ended.code)).or_default() += 1;
        if std::env::var_os("TRAINYARD_FUZZ_VERBOSE").is_some() {
            eprintln!(
                "spec {i}: exit {:?} in {:.2} s: {}",
                ended.code,
                ended.seconds,
                ended.error_line().unwrap_or("")
            );
            if ended.code == Some(1) {
                // Exit 1 keeps the contract but says "retry": worth reading which spec did it.
                eprintln!("{text}");
            }
        }
        let mut problem = ended.check_clean().err().map(|(_, details)| details);
        if problem.is_none() && !ok && ended.code != Some(2) {
            problem = Some(format!("the checker rejects it, yet train ended with {:?}", ended.code));
        }
        if problem.is_none() && ended.code == Some(0) && !out.join("model.json").is_file() {
            problem = Some("exit 0 without a model.json".into());
        }
        if let Some(problem) = problem {
            let saved = findings.join(format!("spec-{}.json", fuzzing::hash_of(text.as_bytes())));
            std::fs::write(&saved, &text).unwrap();
            failures.push(format!("{} ({:.1} s): {problem}\n{text}", saved.display(), ended.seconds));
        }
    }
    eprintln!(
        "accepted specs: {} runs ({accepted} accepted, {rejected} rejected, {} absurd): {outcomes:?}",
        cases.len(),
        absurd_specs().len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} runs broke the exit contract:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
