//! `trainyard validate`: everything a user wants to know before spending compute — which files
//! matched, how many rows survived each step, the split and its positive rates, each feature's
//! type, null share and cardinality, and the width of the design matrix.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::data::{Column, Kind, Values};
use crate::dataset::{self, Dataset, LoadReport};
use crate::error::Result;
use crate::features::Pipeline;
use crate::label::Labels;
use crate::memory;
use crate::spec::CheckedSpec;

/// One feature column as seen in the train rows.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureSummary {
    /// Column name.
    pub column: String,
    /// `numeric` or `categorical`.
    pub role: &'static str,
    /// Logical type in the files.
    pub kind: Kind,
    /// Share of train rows that are null (or NaN).
    pub null_share: f64,
    /// Distinct non-null values in the train rows.
    pub cardinality: usize,
    /// Design-matrix columns this feature becomes.
    pub width: usize,
}

/// What `validate` found.
#[derive(Debug, Clone, Serialize)]
pub struct ValidateReport {
    /// The job's name.
    pub name: String,
    /// Files, rows and the split.
    pub load: LoadReport,
    /// Positive share of the train rows.
    pub train_positive_rate: f64,
    /// Positive share of the test rows.
    pub test_positive_rate: f64,
    /// The label mapping.
    pub labels: Labels,
    /// Each feature.
    pub features: Vec<FeatureSummary>,
    /// Columns of the design matrix.
    pub design_width: usize,
    /// The memory estimate of training this spec on this data.
    pub memory: Option<MemoryReport>,
    /// The baseline run `train` would compare with (`baseline` in the spec).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

/// Loads, splits and fits the feature pipeline without training.
pub fn validate(checked: &CheckedSpec) -> Result<ValidateReport> {
    // The baseline is checked as `train` checks it: opened, its columns read, its classes
    // compared, and the test rows scored.
    let baseline = crate::baseline::resolve(checked)?;
    let data =
        dataset::load_with(checked, &crate::baseline::extra_columns(baseline.as_ref()), &Default::default())?;
    crate::baseline::check_against(checked, baseline.as_ref(), &data.labels)?;
    let spec = &checked.spec;
    let pipeline = Pipeline::fit_spec(&data.train.frame, &spec.features)?;
    let group_keys = match spec.partition.as_ref().and_then(|p| Some((p, data.train.frame.column(&p.by)?))) {
        Some((p, column)) => crate::partition::keys(column, &p.by)?,
        None => Vec::new(),
    };
    crate::onnx::check_spec(spec, &pipeline, group_keys.iter().flatten())?;
    let mut report = report(checked, &data, &pipeline);
    report.baseline = match &baseline {
        Some(crate::baseline::Resolved::Run(b)) => {
            crate::baseline::score(b, &data.test.frame)?;
            Some(format!("{} ({})", b.run_id, b.path.display()))
        }
        Some(crate::baseline::Resolved::Missing { name, root }) => {
            Some(format!("none yet: {name} has no production run in {root}"))
        }
        None => None,
    };
    let estimate =
        memory::estimate(&spec.model, &pipeline, data.train.len(), data.test.len(), data.labels.classes());
    let budget = memory::budget();
    // What `train` would refuse, `validate` refuses too, with the same message.
    memory::check(&estimate, &budget, memory::resident_bytes())?;
    report.memory = Some(MemoryReport { estimate, budget });
    Ok(report)
}

/// The run's estimated large allocations and the memory the process may use.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// The estimate (see [`memory::estimate`]).
    pub estimate: memory::Estimate,
    /// The budget it was checked against.
    pub budget: memory::Budget,
}

fn report(checked: &CheckedSpec, data: &Dataset, pipeline: &Pipeline) -> ValidateReport {
    let train = &data.train.frame;
    let features = data
        .feature_kinds
        .iter()
        .map(|(name, kind)| {
            let c = train.column(name);
            let dense = train.dense.index(name);
            let numeric = checked.spec.features.numeric.contains(name);
            let width = if numeric {
                pipeline
                    .numeric
                    .iter()
                    .find(|s| &s.column == name)
                    .map_or(0, |s| 1 + usize::from(s.indicator))
            } else {
                pipeline.categorical.iter().find(|s| &s.column == name).map_or(0, |s| s.levels.len() + 1)
            };
            FeatureSummary {
                column: name.clone(),
                role: if numeric { "numeric" } else { "categorical" },
                kind: *kind,
                null_share: match (dense, c) {
                    (Some(j), _) => {
                        train.dense.column(j).filter(|x| x.is_nan()).count() as f64 / train.rows.max(1) as f64
                    }
                    (None, Some(c)) => missing(c) as f64 / c.len().max(1) as f64,
                    (None, None) => 0.0,
                },
                cardinality: match (dense, c) {
                    // Widened to f64 bits, as the frame path counts, so both agree.
                    (Some(j), _) => train
                        .dense
                        .column(j)
                        .filter(|x| !x.is_nan())
                        .map(|x| f64::from(x).to_bits())
                        .collect::<HashSet<_>>()
                        .len(),
                    (None, Some(c)) => cardinality(c),
                    (None, None) => 0,
                },
                width,
            }
        })
        .collect();
    let rate = |p: usize, n: usize| p as f64 / n.max(1) as f64;
    ValidateReport {
        name: checked.spec.name.clone(),
        train_positive_rate: rate(data.report.train_positives, data.report.train_rows),
        test_positive_rate: rate(data.report.test_positives, data.report.test_rows),
        load: data.report.clone(),
        labels: data.labels.clone(),
        features,
        design_width: pipeline.width(),
        memory: None,
        baseline: None,
    }
}

fn missing(c: &Column) -> usize {
    (0..c.len()).filter(|&i| c.is_null(i) || c.f64_at(i).is_some_and(f64::is_nan)).count()
}

fn cardinality(c: &Column) -> usize {
    match &c.values {
        Values::Str { codes, .. } => codes
            .iter()
            .enumerate()
            .filter(|(i, _)| !c.is_null(*i))
            .map(|(_, k)| *k)
            .collect::<HashSet<_>>()
            .len(),
        _ => (0..c.len())
            .filter_map(|i| c.f64_at(i))
            .filter(|x| !x.is_nan())
            .map(f64::to_bits)
            .collect::<HashSet<_>>()
            .len(),
    }
}

impl ValidateReport {
    /// A human-readable summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let l = &self.load;
        let _ = writeln!(s, "job {}: spec and data are valid", self.name);
        let _ = writeln!(s, "\nfiles ({}):", l.files.len());
        for f in &l.files {
            let _ = writeln!(
                s,
                "  {:<14} {}  ({} rows, {} row groups, {})",
                f.role,
                f.path.display(),
                f.rows,
                f.row_groups,
                human_bytes(f.bytes)
            );
        }
        let r = &l.features_read;
        let _ = writeln!(s, "\nrows:");
        let _ = writeln!(s, "  read              {:>12}  (data.features)", r.rows_in_files);
        let _ = writeln!(
            s,
            "  row groups pruned {:>12}  of {} (statistics rule out every filter match)",
            r.row_groups_pruned, r.row_groups
        );
        let _ = writeln!(s, "  after filters     {:>12}", r.rows_kept);
        if let Some(lr) = &l.labels_read {
            let _ = writeln!(s, "  label rows        {:>12}  (data.labels)", lr.rows_kept);
            let _ = writeln!(s, "  without label     {:>12}  (dropped)", l.rows_without_label);
        }
        if let Some(h) = &l.holdout_read {
            let _ = writeln!(s, "  holdout files     {:>12}  after filters", h.rows_kept);
        }
        if l.rows_dropped_by_holdout > 0 {
            let _ = writeln!(
                s,
                "  outside holdout   {:>12}  (dropped: after the test window or null date)",
                l.rows_dropped_by_holdout
            );
        }
        let _ = writeln!(s, "\nsplit:");
        let _ = match &self.labels {
            Labels::Binary(m) => {
                let _ = writeln!(
                    s,
                    "  train {:>10} rows  {:>8} positive  ({:.4})",
                    l.train_rows, l.train_positives, self.train_positive_rate
                );
                let _ = writeln!(
                    s,
                    "  test  {:>10} rows  {:>8} positive  ({:.4})",
                    l.test_rows, l.test_positives, self.test_positive_rate
                );
                writeln!(s, "  label {:?}: positive = {}, negative = {}", m.column, m.positive, m.negative)
            }
            Labels::Multiclass(m) => {
                let _ = writeln!(s, "  train {:>10} rows", l.train_rows);
                let _ = writeln!(s, "  test  {:>10} rows", l.test_rows);
                let _ = writeln!(
                    s,
                    "  label {:?}: {} classes (train rows, test rows):",
                    m.column,
                    m.classes.len()
                );
                for (c, class) in m.classes.iter().enumerate() {
                    let count = |v: &[usize]| v.get(c).copied().unwrap_or(0);
                    let name = crate::label::class_name(class);
                    let _ = writeln!(
                        s,
                        "    {name:<20} {:>10} {:>10}",
                        count(&l.train_class_rows),
                        count(&l.test_class_rows)
                    );
                }
                Ok(())
            }
        };
        let _ = writeln!(s, "\nfeatures (train rows):");
        let _ = writeln!(
            s,
            "  {:<24} {:<12} {:<10} {:>7} {:>11} {:>6}",
            "column", "role", "type", "nulls", "cardinality", "width"
        );
        for f in &self.features {
            let _ = writeln!(
                s,
                "  {:<24} {:<12} {:<10} {:>6.2}% {:>11} {:>6}",
                f.column,
                f.role,
                f.kind.name(),
                100.0 * f.null_share,
                f.cardinality,
                f.width
            );
        }
        let _ = writeln!(s, "\ndesign matrix: {} columns", self.design_width);
        if let Some(m) = &self.memory {
            let _ = writeln!(
                s,
                "memory: about {} for the model and its data, of {} the process may use ({})",
                memory::human(m.estimate.total_bytes),
                memory::human(m.budget.bytes),
                m.budget.source
            );
            for i in &m.estimate.items {
                let _ = writeln!(s, "  {:>10}  {}", memory::human(i.bytes), i.what);
            }
        }
        if let Some(b) = &self.baseline {
            let _ = writeln!(s, "baseline: {b}");
        }
        s
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
