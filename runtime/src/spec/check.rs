//! Validation of a parsed [`JobSpec`] into a [`CheckedSpec`]: everything that can be checked
//! without opening the data. Checks that need the data (columns exist, types fit) happen in the
//! loader and name the same JSON paths.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{HoldoutSpec, JobSpec, LogisticSpec, MlpSpec, ModelSpec};
use crate::error::{Error, Result};

/// A spec that passed every check that does not need the data.
#[derive(Debug, Clone)]
pub struct CheckedSpec {
    /// The parsed spec, defaults filled in.
    pub spec: JobSpec,
    /// Directory that relative input paths are resolved against (the spec file's directory).
    pub base_dir: PathBuf,
    /// The filters, each with its one operator.
    pub filters: Vec<CheckedFilter>,
    /// The holdout with its dates parsed.
    pub holdout: CheckedHoldout,
    /// `device`, parsed.
    pub device: crate::device::Request,
    /// `resources`, parsed.
    pub resources: Option<ResourceClass>,
}

/// One filter with exactly one operator.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedFilter {
    /// The column it reads.
    pub column: String,
    /// The operator and its operand(s).
    pub op: FilterOp,
    /// JSON path of the operator, e.g. `data.filters[1].gte`, for error messages.
    pub path: String,
}

/// A filter operator.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum FilterOp {
    Eq(FilterValue),
    Ne(FilterValue),
    In(Vec<FilterValue>),
    NotIn(Vec<FilterValue>),
    Gt(FilterValue),
    Gte(FilterValue),
    Lt(FilterValue),
    Lte(FilterValue),
    IsNull,
    NotNull,
}

/// A scalar operand from the spec.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum FilterValue {
    Num(f64),
    Str(String),
    Bool(bool),
}

impl std::fmt::Display for FilterValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterValue::Num(n) => write!(f, "{n}"),
            FilterValue::Str(s) => write!(f, "{s:?}"),
            FilterValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// The holdout, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckedHoldout {
    /// Seeded random split.
    Random {
        /// Share of rows in test.
        fraction: f64,
        /// Column hashed to decide the side.
        key: Option<String>,
    },
    /// Test = `[start, end)`, train = before `start`, in microseconds since the Unix epoch (UTC).
    DateRange {
        /// The date or timestamp column.
        column: String,
        /// Start of the test window.
        start_us: i64,
        /// End of the test window, exclusive.
        end_us: i64,
    },
    /// Test rows come from these files.
    Files(Vec<String>),
}

/// Resource classes known to `render` and the Kubernetes manifests.
pub const RESOURCE_CLASSES: [&str; 4] = ["cpu-small", "cpu-large", "highmem", "gpu"];

/// A resource class (`resources` in the spec), which `render` maps to a node pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceClass {
    /// `cpu-small`.
    CpuSmall,
    /// `cpu-large`.
    CpuLarge,
    /// `highmem`.
    Highmem,
    /// `gpu`.
    Gpu,
}

impl ResourceClass {
    const ALL: [ResourceClass; 4] =
        [ResourceClass::CpuSmall, ResourceClass::CpuLarge, ResourceClass::Highmem, ResourceClass::Gpu];

    /// The class named `name` (one of [`RESOURCE_CLASSES`]).
    pub fn parse(name: &str) -> Option<ResourceClass> {
        RESOURCE_CLASSES.iter().position(|&n| n == name).map(|i| Self::ALL[i])
    }

    /// Its name in specs and manifests.
    pub fn name(self) -> &'static str {
        RESOURCE_CLASSES[Self::ALL.iter().position(|&c| c == self).unwrap_or(0)]
    }
}

impl CheckedSpec {
    /// Checks `spec`; relative input paths will be resolved against `base_dir`.
    pub fn new(spec: JobSpec, base_dir: &Path) -> Result<Self> {
        check_name(&spec.name)?;
        if spec.data.features.is_empty() {
            return Err(Error::spec("data.features", "must list at least one file, glob or directory"));
        }
        match (&spec.data.join_key, spec.data.labels.is_empty()) {
            (None, false) => {
                return Err(Error::spec("data.join_key", "required when data.labels is given"));
            }
            (Some(_), true) => {
                return Err(Error::spec(
                    "data.join_key",
                    "given without data.labels; remove it or add label files",
                ));
            }
            _ => {}
        }
        check_columns(&spec)?;
        let filters = spec
            .data
            .filters
            .iter()
            .enumerate()
            .map(|(i, f)| check_filter(i, f))
            .collect::<Result<Vec<_>>>()?;
        let holdout = check_holdout(&spec.holdout)?;
        check_model(&spec)?;
        check_partition(&spec)?;
        if let Some(twice) = spec.export.iter().enumerate().find(|(i, f)| spec.export[..*i].contains(f)) {
            return Err(Error::spec(
                format!("export[{}]", twice.0),
                format!("{:?} is listed twice", twice.1),
            ));
        }
        check_baseline(&spec)?;
        let device = crate::device::parse(&spec.device)?;
        let resources = match &spec.resources {
            None => None,
            Some(class) => Some(ResourceClass::parse(class).ok_or_else(|| {
                Error::spec(
                    "resources",
                    format!("unknown resource class {class:?}; known: {}", RESOURCE_CLASSES.join(", ")),
                )
            })?),
        };
        if spec.output.as_deref() == Some("") {
            return Err(Error::spec("output", "must not be empty"));
        }
        Ok(CheckedSpec { spec, base_dir: base_dir.to_path_buf(), filters, holdout, device, resources })
    }

    /// Reads, parses and checks a spec file with `--set` overrides.
    pub fn from_file(path: &Path, overrides: &[String]) -> Result<Self> {
        let spec = JobSpec::from_file(path, overrides)?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Self::new(spec, base)
    }

    /// Every input entry as written: `data.features`, `data.labels`, then a `files` holdout's.
    pub fn input_entries(&self) -> impl Iterator<Item = &String> {
        let holdout: &[String] = match &self.holdout {
            CheckedHoldout::Files(entries) => entries,
            _ => &[],
        };
        self.spec.data.features.iter().chain(&self.spec.data.labels).chain(holdout)
    }

    /// Resolves a spec path against the spec file's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        // Object-store URLs are absolute; `file://` URLs are local paths.
        if crate::store::is_url(path) {
            return PathBuf::from(path);
        }
        let p = Path::new(crate::store::local_path(path));
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }
}

/// A job name: it names directories, pointer files and Kubernetes objects.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::spec("name", format!("must be 1-63 letters, digits, '.', '_' or '-', got {name:?}")))
    }
}

fn check_columns(spec: &JobSpec) -> Result<()> {
    let f = &spec.features;
    if f.numeric.is_empty() && f.categorical.is_empty() {
        return Err(Error::spec("features", "must list at least one numeric or categorical column"));
    }
    let mut seen = HashSet::new();
    for (path, cols) in [("features.numeric", &f.numeric), ("features.categorical", &f.categorical)] {
        for (i, c) in cols.iter().enumerate() {
            if !seen.insert(c.as_str()) {
                return Err(Error::spec(format!("{path}[{i}]"), format!("column {c:?} is listed twice")));
            }
            if c == &spec.label {
                return Err(Error::spec(format!("{path}[{i}]"), format!("column {c:?} is the label")));
            }
            if spec.weight.as_ref() == Some(c) {
                return Err(Error::spec(format!("{path}[{i}]"), format!("column {c:?} is the weight")));
            }
        }
    }
    if f.min_category_count == 0 {
        return Err(Error::spec("features.min_category_count", "must be >= 1, got 0"));
    }
    if spec.label.is_empty() {
        return Err(Error::spec("label", "must name a column"));
    }
    if spec.weight.as_ref() == Some(&spec.label) {
        return Err(Error::spec("weight", "must not be the label column"));
    }
    Ok(())
}

fn check_filter(i: usize, f: &super::FilterSpec) -> Result<CheckedFilter> {
    let base = format!("data.filters[{i}]");
    let scalar = |op: &str, v: &Value| -> Result<FilterValue> {
        match v {
            Value::Number(n) => Ok(FilterValue::Num(n.as_f64().unwrap_or(f64::NAN))),
            Value::String(s) => Ok(FilterValue::Str(s.clone())),
            Value::Bool(b) => Ok(FilterValue::Bool(*b)),
            other => Err(Error::spec(
                format!("{base}.{op}"),
                format!("expected a number, string or boolean, got {other}"),
            )),
        }
    };
    let list = |op: &str, vs: &Vec<Value>| -> Result<Vec<FilterValue>> {
        if vs.is_empty() {
            return Err(Error::spec(format!("{base}.{op}"), "must list at least one value"));
        }
        vs.iter().map(|v| scalar(op, v)).collect()
    };
    let flag = |op: &str, b: bool| -> Result<()> {
        if b {
            Ok(())
        } else {
            Err(Error::spec(format!("{base}.{op}"), "only `true` is meaningful; remove the filter"))
        }
    };
    let mut ops = Vec::new();
    if let Some(v) = &f.eq {
        ops.push(("eq", FilterOp::Eq(scalar("eq", v)?)));
    }
    if let Some(v) = &f.ne {
        ops.push(("ne", FilterOp::Ne(scalar("ne", v)?)));
    }
    if let Some(v) = &f.in_ {
        ops.push(("in", FilterOp::In(list("in", v)?)));
    }
    if let Some(v) = &f.not_in {
        ops.push(("not_in", FilterOp::NotIn(list("not_in", v)?)));
    }
    if let Some(v) = &f.gt {
        ops.push(("gt", FilterOp::Gt(scalar("gt", v)?)));
    }
    if let Some(v) = &f.gte {
        ops.push(("gte", FilterOp::Gte(scalar("gte", v)?)));
    }
    if let Some(v) = &f.lt {
        ops.push(("lt", FilterOp::Lt(scalar("lt", v)?)));
    }
    if let Some(v) = &f.lte {
        ops.push(("lte", FilterOp::Lte(scalar("lte", v)?)));
    }
    if let Some(b) = f.is_null {
        flag("is_null", b)?;
        ops.push(("is_null", FilterOp::IsNull));
    }
    if let Some(b) = f.not_null {
        flag("not_null", b)?;
        ops.push(("not_null", FilterOp::NotNull));
    }
    if f.column.is_empty() {
        return Err(Error::spec(format!("{base}.column"), "must name a column"));
    }
    match ops.len() {
        1 => {
            let (name, op) = ops.remove(0);
            Ok(CheckedFilter { column: f.column.clone(), op, path: format!("{base}.{name}") })
        }
        0 => Err(Error::spec(
            base,
            "needs one operator: eq, ne, in, not_in, gt, gte, lt, lte, is_null or not_null",
        )),
        _ => Err(Error::spec(
            base,
            format!(
                "has {} operators ({}); use one filter per operator",
                ops.len(),
                ops.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn check_holdout(h: &HoldoutSpec) -> Result<CheckedHoldout> {
    match h {
        HoldoutSpec::Random(r) => {
            if !(r.fraction > 0.0 && r.fraction < 1.0) {
                return Err(Error::spec(
                    "holdout.random.fraction",
                    format!("must be in (0, 1), got {}", r.fraction),
                ));
            }
            Ok(CheckedHoldout::Random { fraction: r.fraction, key: r.key.clone() })
        }
        HoldoutSpec::DateRange(d) => {
            let parse = |field: &str, s: &str| {
                parse_instant(s).ok_or_else(|| {
                    Error::spec(
                        format!("holdout.date_range.{field}"),
                        format!("expected YYYY-MM-DD or an RFC 3339 timestamp, got {s:?}"),
                    )
                })
            };
            let start_us = parse("start", &d.start)?;
            let end_us = parse("end", &d.end)?;
            if end_us <= start_us {
                return Err(Error::spec(
                    "holdout.date_range.end",
                    format!("must be after start ({}), got {}", d.start, d.end),
                ));
            }
            Ok(CheckedHoldout::DateRange { column: d.column.clone(), start_us, end_us })
        }
        HoldoutSpec::Files(files) => {
            if files.is_empty() {
                return Err(Error::spec("holdout.files", "must list at least one file, glob or directory"));
            }
            Ok(CheckedHoldout::Files(files.clone()))
        }
    }
}

fn check_model(spec: &JobSpec) -> Result<()> {
    match &spec.model {
        ModelSpec::Logistic(l) => check_logistic(l),
        ModelSpec::Mlp(m) => check_mlp(m),
    }
}

fn check_partition(spec: &JobSpec) -> Result<()> {
    let Some(p) = &spec.partition else { return Ok(()) };
    if !matches!(spec.model, ModelSpec::Logistic(_)) {
        return Err(Error::spec(
            "partition",
            "per-group models are logistic only; remove partition or use model.logistic",
        ));
    }
    if p.by.is_empty() {
        return Err(Error::spec("partition.by", "must name the group column"));
    }
    // A group column may also be a feature (merchant_id as both is common); as the label, the
    // weight or a row key it would make one group per class, per weight or per row.
    let role = if p.by == spec.label {
        Some("the label")
    } else if spec.weight.as_ref() == Some(&p.by) {
        Some("the weight")
    } else if spec.data.join_key.as_ref() == Some(&p.by) {
        Some("data.join_key (one group per row)")
    } else {
        None
    };
    if let Some(role) = role {
        return Err(Error::spec(
            "partition.by",
            format!(
                "column {:?} is {role}; group by a column such as a merchant id (features are allowed)",
                p.by
            ),
        ));
    }
    if p.min_rows == 0 {
        return Err(Error::spec("partition.min_rows", "must be >= 1, got 0"));
    }
    if p.min_positives == 0 {
        return Err(Error::spec("partition.min_positives", "must be >= 1, got 0"));
    }
    if let crate::spec::Strength::Fixed(l2) = p.l2
        && !(l2 >= 0.0 && l2.is_finite())
    {
        return Err(Error::spec("partition.l2", format!("must be >= 0, got {l2}")));
    }
    Ok(())
}

/// The metrics a gate can name, whether higher is better, and whether a test backs them.
pub const GATE_METRICS: [(&str, bool, bool); 5] = [
    ("roc_auc", true, true),
    ("pr_auc", true, true),
    ("log_loss", false, true),
    ("accuracy", true, true),
    ("brier", false, false),
];

fn check_baseline(spec: &JobSpec) -> Result<()> {
    if let Some(b) = &spec.baseline {
        match (&b.run, &b.production) {
            (Some(_), Some(_)) => {
                return Err(Error::spec(
                    "baseline",
                    "give either baseline.run or baseline.production, not both",
                ));
            }
            (None, None) => {
                return Err(Error::spec(
                    "baseline",
                    "needs baseline.run (a run directory) or baseline.production (a job name)",
                ));
            }
            (Some(run), None) if run.is_empty() => {
                return Err(Error::spec("baseline.run", "must not be empty"));
            }
            (None, Some(name)) => check_name(name).map_err(|e| match e {
                Error::Spec { message, .. } => Error::spec("baseline.production", message),
                other => other,
            })?,
            _ => {}
        }
        if b.root.is_some() && b.production.is_none() {
            return Err(Error::spec(
                "baseline.root",
                "is where baseline.production is looked up; it needs baseline.production",
            ));
        }
        if b.root.as_deref() == Some("") {
            return Err(Error::spec("baseline.root", "must not be empty"));
        }
        if b.missing == super::MissingBaseline::Eligible && b.production.is_none() {
            return Err(Error::spec(
                "baseline.missing",
                "applies to baseline.production only; a baseline.run must exist",
            ));
        }
        if !(1..=100_000).contains(&b.resamples) {
            return Err(Error::spec(
                "baseline.resamples",
                format!("must be within 1..=100000, got {}", b.resamples),
            ));
        }
    }
    let Some(g) = &spec.gate else { return Ok(()) };
    if spec.baseline.is_none() {
        return Err(Error::spec("gate", "compares with a baseline; add baseline.run or baseline.production"));
    }
    let Some((_, _, tested)) = GATE_METRICS.iter().find(|(m, ..)| *m == g.metric) else {
        let known: Vec<&str> = GATE_METRICS.iter().map(|(m, ..)| *m).collect();
        return Err(Error::spec(
            "gate.metric",
            format!("unknown metric {:?}; known: {}", g.metric, known.join(", ")),
        ));
    };
    if !g.min_delta.is_finite() {
        return Err(Error::spec("gate.min_delta", format!("must be finite, got {}", g.min_delta)));
    }
    match g.max_p_value {
        Some(p) if !(p > 0.0 && p <= 1.0) => {
            Err(Error::spec("gate.max_p_value", format!("must be within (0, 1], got {p}")))
        }
        Some(_) if !tested => Err(Error::spec(
            "gate.max_p_value",
            format!("{} has no significance test here; use null, or gate on log_loss or roc_auc", g.metric),
        )),
        _ => Ok(()),
    }
}

fn check_logistic(l: &LogisticSpec) -> Result<()> {
    if !(l.l2 >= 0.0 && l.l2.is_finite()) {
        return Err(Error::spec("model.logistic.l2", format!("must be >= 0, got {}", l.l2)));
    }
    if l.max_iter == 0 {
        return Err(Error::spec("model.logistic.max_iter", "must be >= 1, got 0"));
    }
    if !(l.tol > 0.0 && l.tol.is_finite()) {
        return Err(Error::spec("model.logistic.tol", format!("must be > 0, got {}", l.tol)));
    }
    Ok(())
}

fn check_mlp(m: &MlpSpec) -> Result<()> {
    let bad = |field: &str, message: String| Err(Error::spec(format!("model.mlp.{field}"), message));
    if m.hidden.is_empty() {
        return bad("hidden", "must list at least one layer width".into());
    }
    if let Some(i) = m.hidden.iter().position(|&h| h == 0) {
        return bad(&format!("hidden[{i}]"), "must be >= 1, got 0".into());
    }
    if !(0.0..1.0).contains(&m.dropout) {
        return bad("dropout", format!("must be in [0, 1), got {}", m.dropout));
    }
    // Sizes whose float32 weights could not even be addressed are spec errors here; sizes
    // that are merely too large for this machine are caught by the memory estimate once the
    // data's cardinalities are known.
    let addressable = isize::MAX as u128 / 4;
    let mut fan_in: u128 = 1;
    for (i, &h) in m.hidden.iter().enumerate() {
        if (h as u128).saturating_mul(fan_in) > addressable {
            return bad(
                &format!("hidden[{i}]"),
                format!("{h} units: the layer's weights would not fit in memory on any machine"),
            );
        }
        fan_in = h as u128;
    }
    if let Some(d) = m.embedding_dim
        && d as u128 > addressable
    {
        return bad("embedding_dim", format!("{d} is too large to allocate on any machine"));
    }
    if let Some(b) = m.batch_size
        && (b as u128).saturating_mul(m.hidden.iter().map(|&h| h as u128).max().unwrap_or(1)) > addressable
    {
        return bad(
            "batch_size",
            format!("{b} rows x the widest layer would not fit in memory on any machine"),
        );
    }
    if m.embedding_dim == Some(0) {
        return bad("embedding_dim", "must be >= 1 or null, got 0".into());
    }
    if m.epochs == 0 {
        return bad("epochs", "must be >= 1, got 0".into());
    }
    if m.batch_size == Some(0) {
        return bad("batch_size", "must be >= 1 or null, got 0".into());
    }
    if !(m.learning_rate > 0.0 && m.learning_rate.is_finite()) {
        return bad("learning_rate", format!("must be > 0, got {}", m.learning_rate));
    }
    if !(m.weight_decay >= 0.0 && m.weight_decay.is_finite()) {
        return bad("weight_decay", format!("must be >= 0, got {}", m.weight_decay));
    }
    if !(m.warmup_epochs >= 0.0 && m.warmup_epochs.is_finite()) {
        return bad("warmup_epochs", format!("must be >= 0, got {}", m.warmup_epochs));
    }
    if let Some(c) = m.grad_clip_norm
        && !(c > 0.0 && c.is_finite())
    {
        return bad("grad_clip_norm", format!("must be > 0 or null, got {c}"));
    }
    if let Some(e) = &m.early_stopping {
        if e.patience == 0 {
            return bad("early_stopping.patience", "must be >= 1, got 0".into());
        }
        if !(e.validation_fraction > 0.0 && e.validation_fraction < 1.0) {
            return bad(
                "early_stopping.validation_fraction",
                format!("must be in (0, 1), got {}", e.validation_fraction),
            );
        }
    }
    if m.checkpoint_every_steps == Some(0) {
        return bad("checkpoint_every_steps", "must be >= 1 or null, got 0".into());
    }
    Ok(())
}

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 timestamp into microseconds since the Unix
/// epoch.
pub fn parse_instant(s: &str) -> Option<i64> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok().map(|t| t.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<CheckedSpec> {
        CheckedSpec::new(JobSpec::from_json(json, &[])?, Path::new("."))
    }

    fn with(extra: &str) -> String {
        format!(
            r#"{{"name": "t", "data": {{"features": ["a.parquet"]}}, "label": "y",
                "features": {{"numeric": ["x"]}} {extra}}}"#
        )
    }

    #[test]
    fn negative_l2_names_the_field_and_value() {
        let err = check(&with(r#", "model": {"logistic": {"l2": -1}}"#)).unwrap_err();
        assert_eq!(err.to_string(), "model.logistic.l2: must be >= 0, got -1");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn fraction_outside_open_interval_is_rejected() {
        for f in ["0", "1", "1.5", "-0.1"] {
            let err =
                check(&with(&format!(r#", "holdout": {{"random": {{"fraction": {f}}}}}"#))).unwrap_err();
            assert!(err.to_string().starts_with("holdout.random.fraction: must be in (0, 1)"), "{err}");
        }
        assert!(check(&with(r#", "holdout": {"random": {"fraction": 0.5}}"#)).is_ok());
    }

    #[test]
    fn filters_need_exactly_one_operator() {
        let err = check(&with(r#", "x": 1"#)).unwrap_err();
        assert!(err.to_string().contains("unknown field `x`"));
        let spec = |f: &str| {
            format!(
                r#"{{"name": "t", "data": {{"features": ["a"], "filters": [{f}]}}, "label": "y",
                    "features": {{"numeric": ["x"]}}}}"#
            )
        };
        let err = check(&spec(r#"{"column": "a"}"#)).unwrap_err().to_string();
        assert!(err.starts_with("data.filters[0]: needs one operator"), "{err}");
        let err = check(&spec(r#"{"column": "a", "gt": 1, "lt": 3}"#)).unwrap_err().to_string();
        assert!(err.contains("has 2 operators (gt, lt)"), "{err}");
        let err = check(&spec(r#"{"column": "a", "in": []}"#)).unwrap_err().to_string();
        assert!(err.starts_with("data.filters[0].in: must list"), "{err}");
        let ok = check(&spec(r#"{"column": "a", "in": ["US", 3]}"#)).unwrap();
        assert_eq!(
            ok.filters[0].op,
            FilterOp::In(vec![FilterValue::Str("US".into()), FilterValue::Num(3.0)])
        );
    }

    #[test]
    fn date_range_parses_dates_and_timestamps() {
        let ok = check(&with(
            r#", "holdout": {"date_range": {"column": "t", "start": "2024-10-01", "end": "2024-11-01T12:00:00Z"}}"#,
        ))
        .unwrap();
        assert_eq!(
            ok.holdout,
            CheckedHoldout::DateRange {
                column: "t".into(),
                start_us: 1_727_740_800_000_000,
                end_us: 1_730_462_400_000_000
            }
        );
        let err = check(&with(
            r#", "holdout": {"date_range": {"column": "t", "start": "2024-10-01", "end": "2024-10-01"}}"#,
        ))
        .unwrap_err();
        assert!(err.to_string().starts_with("holdout.date_range.end: must be after start"));
        let err = check(&with(
            r#", "holdout": {"date_range": {"column": "t", "start": "Oct 1", "end": "2024-10-01"}}"#,
        ))
        .unwrap_err();
        assert!(err.to_string().starts_with("holdout.date_range.start: expected YYYY-MM-DD"));
    }

    #[test]
    fn model_device_resources_and_columns_are_checked() {
        let cases = [
            (r#", "model": {"logistic": {"max_iter": 0}}"#, "model.logistic.max_iter: must be >= 1"),
            (r#", "model": {"logistic": {"tol": 0}}"#, "model.logistic.tol: must be > 0"),
            (r#", "model": {"logistic": {"class_weight": "x"}}"#, "model.logistic.class_weight"),
            (r#", "model": {"mlp": {"hidden": [8, 0]}}"#, "model.mlp.hidden[1]: must be >= 1"),
            (r#", "model": {"mlp": {"dropout": 1}}"#, "model.mlp.dropout: must be in [0, 1)"),
            (r#", "model": {"mlp": {"learning_rate": 0}}"#, "model.mlp.learning_rate: must be > 0"),
            (r#", "model": {"mlp": {"epochs": 0}}"#, "model.mlp.epochs: must be >= 1"),
            (
                r#", "model": {"mlp": {"early_stopping": {"validation_fraction": 1}}}"#,
                "model.mlp.early_stopping.validation_fraction: must be in (0, 1)",
            ),
            (r#", "device": "tpu""#, "device: must be auto, cpu, cuda or cuda:N"),
            (r#", "resources": "huge""#, "resources: unknown resource class \"huge\"; known: cpu-small"),
            (r#", "weight": "y""#, "weight: must not be the label column"),
            (r#", "name": "a b""#, "name: must be 1-63"),
        ];
        for (extra, expected) in cases {
            let text = with(extra).replacen(
                r#""name": "t", "#,
                if extra.contains("\"name\"") { "" } else { r#""name": "t", "# },
                1,
            );
            let err = check(&text).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{extra}: {err}");
        }
        assert!(check(&with(r#", "device": "cuda:1", "resources": "gpu""#)).is_ok());
    }
}
