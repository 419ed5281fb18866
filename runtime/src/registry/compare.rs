//! `trainyard runs compare A B`: what changed between two runs (the resolved spec as JSON paths,
//! the input files' fingerprints), their test metrics side by side, and, when both wrote test
//! rows with the same key column, the paired tests on the rows they have in common (A as the
//! baseline, B as the candidate, B's labels).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use arrow::array::{Array, Float64Array, Int64Array};
use serde::Serialize;
use serde_json::Value;

use crate::baseline::Comparison;
use crate::error::{Error, Result};
use crate::metrics::Scores;
use crate::rundir::names;
use crate::runfiles::{Manifest, MetricsFile, RunFiles};

/// One run of the two.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// Its run id.
    pub run_id: String,
    /// Where it is.
    pub path: String,
}

/// A spec field that differs.
#[derive(Debug, Clone, Serialize)]
pub struct SpecChange {
    /// JSON path, e.g. `model.logistic.l2` or `features.numeric[3]`.
    pub path: String,
    /// A's value (null when A lacks it).
    pub a: Value,
    /// B's value.
    pub b: Value,
}

/// An input file that is not the same in both.
#[derive(Debug, Clone, Serialize)]
pub struct InputChange {
    /// The spec field that read it.
    pub role: String,
    /// Its path.
    pub path: String,
    /// A's fingerprint, or null when only B read it.
    pub a: Option<String>,
    /// B's fingerprint, or null when only A read it.
    pub b: Option<String>,
}

/// `runs compare`'s result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The first run (the baseline of the paired tests).
    pub a: Side,
    /// The second run.
    pub b: Side,
    /// Resolved-spec fields that differ.
    pub spec: Vec<SpecChange>,
    /// Input files added, removed or changed.
    pub inputs: Vec<InputChange>,
    /// Headline test metrics: name, A, B, B − A (each run on its own test rows).
    pub metrics: Vec<(String, f64, f64, f64)>,
    /// Both models on the test rows they share by key.
    pub paired: Option<Comparison>,
    /// Why there is no paired comparison, or what to know about it.
    pub note: Option<String>,
}

struct Opened {
    files: RunFiles,
    manifest: Manifest,
    metrics: MetricsFile,
    path: String,
}

fn open(run: &Path) -> Result<Opened> {
    let files = RunFiles::open(run)?;
    let manifest: Manifest = serde_json::from_value(files.manifest().clone())
        .map_err(|e| Error::data(format!("{}: {e}", files.path(names::MANIFEST).display())))?;
    let metrics: MetricsFile = files.read_json(names::METRICS)?;
    Ok(Opened { files, manifest, metrics, path: run.display().to_string() })
}

/// Compares run `a` with run `b`; the paired tests draw `resamples` bootstrap resamples.
pub fn compare(a: &Path, b: &Path, resamples: usize) -> Result<Report> {
    let (ra, rb) = (open(a)?, open(b)?);
    let mut spec = Vec::new();
    diff("", &ra.manifest.spec, &rb.manifest.spec, &mut spec);
    let fingerprints = |m: &Manifest| -> BTreeMap<(String, String), String> {
        m.inputs
            .iter()
            .map(|f| ((f.role.clone(), f.path.display().to_string()), f.short_fingerprint()))
            .collect()
    };
    let (fa, fb) = (fingerprints(&ra.manifest), fingerprints(&rb.manifest));
    let mut inputs = Vec::new();
    for key in fa.keys().chain(fb.keys().filter(|k| !fa.contains_key(*k))) {
        let (x, y) = (fa.get(key).cloned(), fb.get(key).cloned());
        if x != y {
            inputs.push(InputChange { role: key.0.clone(), path: key.1.clone(), a: x, b: y });
        }
    }
    let hb: BTreeMap<String, f64> = rb.metrics.test.headline().into_iter().collect();
    let metrics = ra
        .metrics
        .test
        .headline()
        .into_iter()
        .filter_map(|(name, x)| hb.get(&name).map(|&y| (name, x, y, y - x)))
        .collect();
    let (paired, note) = paired(&ra, &rb, resamples)?;
    Ok(Report {
        a: Side { run_id: ra.manifest.run_id, path: ra.path },
        b: Side { run_id: rb.manifest.run_id, path: rb.path },
        spec,
        inputs,
        metrics,
        paired,
        note,
    })
}

/// Every JSON path where `a` and `b` differ; objects and arrays by member.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<SpecChange>) {
    let at = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                diff(&at(key), x.get(key).unwrap_or(&Value::Null), y.get(key).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                diff(
                    &format!("{path}[{i}]"),
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(SpecChange { path: path.to_string(), a: a.clone(), b: b.clone() }),
        _ => {}
    }
}

/// The paired comparison on the rows both runs' predictions share by key, and a note: why there
/// is none, or what to know about it.
fn paired(a: &Opened, b: &Opened, resamples: usize) -> Result<(Option<Comparison>, Option<String>)> {
    let none = |why: String| Ok((None, Some(why)));
    let key = |o: &Opened| -> Result<Option<String>> {
        let card: Value = o.files.read_json(names::MODEL_JSON)?;
        Ok(card.get("key").and_then(Value::as_str).map(str::to_string))
    };
    let (ka, kb) = (key(a)?, key(b)?);
    let (Some(ka), Some(kb)) = (ka, kb) else {
        return none("no paired test: a run without a row key (data.join_key or holdout.random.key) cannot be matched row by row".into(),);
    };
    if ka != kb {
        return none(format!(
            "no paired test: the runs key their rows by different columns ({ka:?}, {kb:?})"
        ));
    }
    let (Some(pa), Some(pb)) = (scores(a, &ka)?, scores(b, &kb)?) else {
        return none(
            "no paired test: paired tests on common rows cover binary runs; these are multiclass".into(),
        );
    };
    let index: HashMap<&str, usize> = pa.keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
    let unique = |keys: &[String]| keys.iter().collect::<std::collections::HashSet<_>>().len() == keys.len();
    if index.len() != pa.keys.len() || !unique(&pb.keys) {
        return none(format!(
            "no paired test: {ka:?} is not unique among the test rows, so rows cannot be matched one to one"
        ));
    }
    let (mut y, mut sa, mut sb, mut relabeled) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
    for (j, k) in pb.keys.iter().enumerate() {
        if let Some(&i) = index.get(k.as_str()) {
            y.push(pb.labels[j]);
            sa.push(pa.scores[i]);
            sb.push(pb.scores[j]);
            relabeled += usize::from(pa.labels[i] != pb.labels[j]);
        }
    }
    if y.is_empty() {
        return none(format!("no paired test: the runs' test rows share no {ka:?} value"));
    }
    let classes = [Value::from(0), Value::from(1)];
    let mut c = Comparison::compute(
        &y,
        &Scores::Binary(sa),
        &Scores::Binary(sb),
        &classes,
        resamples,
        b.manifest.seed,
        &Default::default(),
    );
    c.run_id = a.manifest.run_id.clone();
    c.path = a.path.clone();
    let note = (relabeled > 0).then(|| {
        format!(
            "{relabeled} of the {} common rows have another label in {}; B's labels are used",
            y.len(),
            a.manifest.run_id
        )
    });
    Ok((Some(c), note))
}

struct KeyedScores {
    keys: Vec<String>,
    labels: Vec<f32>,
    scores: Vec<f64>,
}

/// A binary run's test rows from `predictions.parquet`: key (as text), label, score; `None` for
/// a multiclass run.
fn scores(o: &Opened, key: &str) -> Result<Option<KeyedScores>> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let path = o.files.local_copy(names::PREDICTIONS)?;
    let shown = o.files.path(names::PREDICTIONS);
    let bad = |e: &dyn std::fmt::Display| Error::data(format!("{}: {e}", shown.display()));
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?.build().map_err(|e| bad(&e))?;
    let mut out = KeyedScores { keys: Vec::new(), labels: Vec::new(), scores: Vec::new() };
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        let (Some(k), Some(label), Some(score)) =
            (batch.column_by_name(key), batch.column_by_name("label"), batch.column_by_name("score"))
        else {
            return Ok(None);
        };
        let label = label.as_any().downcast_ref::<Int64Array>().ok_or_else(|| bad(&"label is not int64"))?;
        let score =
            score.as_any().downcast_ref::<Float64Array>().ok_or_else(|| bad(&"score is not double"))?;
        let formatter = arrow::util::display::ArrayFormatter::try_new(k.as_ref(), &Default::default())
            .map_err(|e| bad(&e))?;
        for i in 0..batch.num_rows() {
            if k.is_null(i) {
                continue;
            }
            out.keys.push(formatter.value(i).to_string());
            out.labels.push(label.value(i) as f32);
            out.scores.push(score.value(i));
        }
    }
    Ok(Some(out))
}

/// The report for people.
pub fn describe(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "A {}  ({})\nB {}  ({})", r.a.run_id, r.a.path, r.b.run_id, r.b.path);
    let _ = writeln!(s, "\nspec: {} fields differ", r.spec.len());
    for c in &r.spec {
        let _ = writeln!(s, "  {}: {} -> {}", c.path, c.a, c.b);
    }
    let _ = writeln!(s, "\ninputs: {} files differ", r.inputs.len());
    for c in &r.inputs {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
        let _ = writeln!(s, "  {:<14} {}  {} -> {}", c.role, c.path, show(&c.a), show(&c.b));
    }
    let _ = writeln!(
        s,
        "\ntest metrics (each run on its own test rows)\n  {:<10} {:>9} {:>9} {:>9}",
        "metric", "A", "B", "B - A"
    );
    for (name, x, y, d) in &r.metrics {
        let _ = writeln!(s, "  {name:<10} {x:>9.4} {y:>9.4} {d:>+9.4}");
    }
    if let Some(c) = &r.paired {
        c.describe(&mut s);
    }
    if let Some(note) = &r.note {
        let _ = writeln!(s, "\n{note}");
    }
    s
}
