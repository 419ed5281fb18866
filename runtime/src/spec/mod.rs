//! The JSON job spec: serde types named exactly as DESIGN.md names the fields, their defaults,
//! `--set` overrides, and validation into [`CheckedSpec`].
//!
//! Unknown fields, keys given twice and arrays in place of objects are rejected everywhere
//! (see [`JobSpec::from_json`]). Every error names the JSON path of the field that was
//! wrong. The resolved spec (every default filled in, see [`JobSpec::resolved_json`]) is what a
//! run records in its manifest.

mod check;
mod overrides;
pub(crate) mod strict_json;

pub(crate) use check::check_name;
pub use check::{
    CheckedFilter, CheckedHoldout, CheckedSpec, FilterOp, FilterValue, GATE_METRICS, RESOURCE_CLASSES,
    ResourceClass, parse_instant,
};
pub use overrides::apply_override;

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A training job. Required: `name`, `data`, `label`, `features`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Name of the job; letters, digits, `.`, `_` and `-` (it names directories and Kubernetes
    /// objects). Required.
    pub name: String,
    /// Where the rows come from. Required.
    pub data: DataSpec,
    /// The label column. Required. Binary: 0/1 integers, booleans, or exactly two strings.
    pub label: String,
    /// Which label value is the positive class. Default: `1` for integers, `true` for booleans,
    /// and for strings the one that sorts last (scikit-learn's `classes_[1]`).
    #[serde(default)]
    pub positive_label: Option<serde_json::Value>,
    /// Feature columns. Required; at least one numeric or categorical column.
    pub features: FeaturesSpec,
    /// Column of non-negative sample weights. Default: none (every row weighs 1).
    #[serde(default)]
    pub weight: Option<String>,
    /// How rows are split into train and test. Default: `{"random": {"fraction": 0.2}}`.
    #[serde(default)]
    pub holdout: HoldoutSpec,
    /// The model to fit. Default: `{"logistic": {}}` with the logistic defaults.
    #[serde(default)]
    pub model: ModelSpec,
    /// One logistic model per group of rows next to the generic model (logistic only).
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionSpec>,
    /// An earlier run that scores the same test rows, for deltas with their uncertainty in
    /// `metrics.json`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineSpec>,
    /// When the run is eligible for promotion against its baseline (`manifest.json`
    /// `promotion`). Requires `baseline`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateSpec>,
    /// Free JSON passed through untouched into the manifest. Default: `{}`.
    #[serde(default = "empty_object")]
    pub params: serde_json::Value,
    /// `auto`, `cpu`, `cuda` or `cuda:N`. Default: `auto`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Resource class the job asks for: `cpu-small`, `cpu-large`, `highmem` or `gpu`.
    /// Default: none. Recorded by `train`, mapped to a node pool by `render`.
    #[serde(default)]
    pub resources: Option<String>,
    /// Seed for every random choice (holdout, initialisation, shuffling). Default: 42.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Run directory, relative to the working directory. Default: `runs/<name>`.
    #[serde(default)]
    pub output: Option<String>,
    /// Exports written into the run directory with the model: `["onnx"]` adds `model.onnx`
    /// (as `trainyard export` writes it, the null string `""`). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export: Vec<crate::onnx::Format>,
}

/// Input files, filters and the optional label join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Parquet files, globs or directories with the feature columns. Relative paths are resolved
    /// against the spec file's directory. Required, non-empty.
    pub features: Vec<String>,
    /// Parquet files, globs or directories with `join_key` and the label column. Default: none
    /// (the label is read from the feature files).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Column present in both feature and label files. Required when `labels` is given.
    #[serde(default)]
    pub join_key: Option<String>,
    /// Row filters, all of which must hold (AND). Default: none.
    #[serde(default)]
    pub filters: Vec<FilterSpec>,
}

/// One row filter: a column and exactly one operator.
///
/// Nulls match only `is_null`: every comparison, `ne` and `not_in` included, is false for a null
/// (SQL semantics).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// The column the filter reads (it need not be a feature).
    pub column: String,
    /// Equal to a number, string or boolean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eq: Option<serde_json::Value>,
    /// Not equal to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ne: Option<serde_json::Value>,
    /// One of a list of values.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "in")]
    pub in_: Option<Vec<serde_json::Value>>,
    /// None of a list of values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_in: Option<Vec<serde_json::Value>>,
    /// Greater than. Dates and timestamps compare with ISO-8601 strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<serde_json::Value>,
    /// Greater than or equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<serde_json::Value>,
    /// Less than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<serde_json::Value>,
    /// Less than or equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<serde_json::Value>,
    /// `true`: keep only nulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_null: Option<bool>,
    /// `true`: keep only non-nulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_null: Option<bool>,
}

/// Feature columns and their preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesSpec {
    /// Numeric columns (integers, unsigned, floats, decimals, booleans, dates, timestamps):
    /// median-imputed (plus a missing indicator where the train rows have nulls), then
    /// standardized with the population standard deviation. Default: none.
    #[serde(default)]
    pub numeric: Vec<String>,
    /// Categorical columns (strings, dictionary strings, or integers declared categorical):
    /// one-hot encoded, with an "other" slot for rare and unseen values. Null is a value of its
    /// own. Default: none.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// A categorical value seen on fewer train rows than this goes to the "other" slot.
    /// Default: 5.
    #[serde(default = "default_min_category_count")]
    pub min_category_count: u64,
    /// What a null categorical value is: `"level"`, a value of its own (missingness is often
    /// informative in fraud data), or `"most_frequent"`, the train rows' most frequent value (as
    /// scikit-learn's `SimpleImputer(strategy="most_frequent")`). Default: `"level"`.
    #[serde(default)]
    pub categorical_nulls: CategoricalNulls,
}

/// How null categorical values are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoricalNulls {
    /// Null is a level of its own.
    #[default]
    Level,
    /// Null becomes the most frequent train value (ties: the smallest value).
    MostFrequent,
}

/// The holdout: how rows are split into train and test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum HoldoutSpec {
    /// A seeded random share of the rows goes to test.
    Random(RandomHoldout),
    /// Test = rows whose date column is in `[start, end)`; train = rows before `start`. Rows on
    /// or after `end`, and rows with a null date, are dropped (and counted).
    DateRange(DateRangeHoldout),
    /// A fixed evaluation set: test rows are read from these files (same filters and label
    /// join), train rows from `data.features`.
    Files(Vec<String>),
}

impl Default for HoldoutSpec {
    fn default() -> Self {
        HoldoutSpec::Random(RandomHoldout::default())
    }
}

/// `holdout.random`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomHoldout {
    /// Share of rows in test, in (0, 1). Default: 0.2.
    #[serde(default = "default_fraction")]
    pub fraction: f64,
    /// Column whose seeded hash decides the side, so a row keeps its side when data is appended.
    /// Default: none (the side is decided by the seeded row position).
    #[serde(default)]
    pub key: Option<String>,
}

impl Default for RandomHoldout {
    fn default() -> Self {
        RandomHoldout { fraction: default_fraction(), key: None }
    }
}

/// `holdout.date_range`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRangeHoldout {
    /// A date or timestamp column. Required.
    pub column: String,
    /// First instant of the test window: `YYYY-MM-DD` (midnight UTC) or RFC 3339. Required.
    pub start: String,
    /// End of the test window, exclusive. Required.
    pub end: String,
}

/// The model, one of its kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ModelSpec {
    /// L2-regularized binary logistic regression.
    Logistic(LogisticSpec),
    /// A multilayer perceptron with categorical embeddings, trained with AdamW.
    Mlp(MlpSpec),
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec::Logistic(LogisticSpec::default())
    }
}

/// `model.logistic`: minimizes Σ wᵢ·logloss(yᵢ, σ(xᵢ·β + b)) + (l2/2)·‖β‖² (intercept `b` not
/// penalized), so `l2 = 1/C` matches scikit-learn's `LogisticRegression(C=C)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticSpec {
    /// L2 penalty strength, `>= 0`. Default: 1.0.
    #[serde(default = "default_l2")]
    pub l2: f64,
    /// Most L-BFGS iterations, `>= 1`. Default: 500.
    #[serde(default = "default_max_iter")]
    pub max_iter: u32,
    /// Converged when the largest absolute component of the gradient of the objective divided
    /// by the total sample weight is at most `tol` (scikit-learn's lbfgs `tol`, whose default
    /// 1e-4 is looser). `> 0`. Default: 1e-6.
    #[serde(default = "default_tol")]
    pub tol: f64,
    /// `"balanced"` weighs each class by total / (K · class total), as scikit-learn does.
    /// Default: none.
    #[serde(default)]
    pub class_weight: Option<ClassWeight>,
}

/// `class_weight`: a weight per class on top of the sample weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// n / (K · n_k) for class k, from the train rows' counts (scikit-learn's
    /// `class_weight="balanced"`).
    Balanced,
}

impl Default for LogisticSpec {
    fn default() -> Self {
        LogisticSpec {
            l2: default_l2(),
            max_iter: default_max_iter(),
            tol: default_tol(),
            class_weight: None,
        }
    }
}

/// `partition`: per-group logistic models next to the generic one. A row of a group with its own
/// model is scored by it, any other row (small group, null key) by the generic model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// The group column (integers or strings) in the feature files. Required.
    pub by: String,
    /// A group gets its own model with at least this many train rows. Default: 200.
    #[serde(default = "default_min_rows")]
    pub min_rows: usize,
    /// ... and at least this many positive and this many negative train rows. Default: 5.
    #[serde(default = "default_min_positives")]
    pub min_positives: usize,
    /// `"global"`: the penalty is (l2/2)·(‖w_g − w_generic‖² + (b_g − b_generic)²), so small
    /// groups stay near the generic model; `"none"`: (l2/2)·‖w_g‖² with a free intercept, each
    /// group on its own. Default: `"global"`.
    #[serde(default)]
    pub shrinkage: Shrinkage,
    /// L2 strength of the group models (of the pull toward the generic model with `global`
    /// shrinkage): `"auto"` chooses it by cross-validation on the train rows, a number fixes it.
    /// Larger keeps groups closer to the generic model. Default: `"auto"`.
    #[serde(default)]
    pub l2: Strength,
    /// `"validation"`: a group keeps its own model only when it beats the generic model on its
    /// held-out rows by more than one standard error; `"none"`: every group that meets the
    /// thresholds keeps its model. Default: `"validation"`.
    #[serde(default)]
    pub select: Select,
}

/// `partition.l2`: chosen from the data, or fixed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Strength {
    /// Chosen by cross-validation over a log-spaced grid (`null` reads as this too).
    #[default]
    Auto,
    /// This strength.
    Fixed(f64),
}

impl Serialize for Strength {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Strength::Auto => s.serialize_str("auto"),
            Strength::Fixed(v) => s.serialize_f64(*v),
        }
    }
}

impl<'de> Deserialize<'de> for Strength {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Null(()),
            Other(serde_json::Value),
        }
        match Raw::deserialize(d)? {
            Raw::Number(v) => Ok(Strength::Fixed(v)),
            Raw::Null(()) => Ok(Strength::Auto),
            Raw::Other(serde_json::Value::String(w)) if w == "auto" => Ok(Strength::Auto),
            Raw::Other(other) => {
                Err(serde::de::Error::custom(format!("expected \"auto\" or a number, got {other}")))
            }
        }
    }
}

/// `partition.select`: which fitted groups keep their own model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// Only groups whose model beats the generic model on held-out rows by more than noise.
    #[default]
    Validation,
    /// Every group that meets the thresholds.
    None,
}

impl std::fmt::Display for Select {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Select::Validation => "validation",
            Select::None => "none",
        })
    }
}

/// `baseline`: the run the new model is compared with, on the new run's test rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    /// A run directory (or URL), relative to the working directory like `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// A job name whose production run (`trainyard runs promote`) in `root` is the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<String>,
    /// The runs root `production` is looked up in. Default: the parent of `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// With `production`, what a run does when the name has no production run yet: `"fail"`
    /// (exit 2), or `"eligible"` (train without a comparison; the gate lets the first model
    /// through). Default: `"fail"`.
    #[serde(default)]
    pub missing: MissingBaseline,
    /// Paired bootstrap resamples for the log loss and PR AUC intervals. Default: 1000.
    #[serde(default = "default_resamples")]
    pub resamples: usize,
}

/// `baseline.missing`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingBaseline {
    /// No production run is an error.
    #[default]
    Fail,
    /// No production run: no comparison, and the run is eligible.
    Eligible,
}

fn default_resamples() -> usize {
    crate::metrics::paired::RESAMPLES
}

/// `gate`: the new model is eligible for promotion when its improvement over the baseline in
/// `metric` (new − baseline for metrics where higher is better, baseline − new for losses) is at
/// least `min_delta` and, with `max_p_value`, positive and significant at that level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// `roc_auc` (DeLong's test), `pr_auc`, `log_loss`, `accuracy` (paired bootstrap); binary
    /// runs also `brier` (no test: `max_p_value` must be null). Required.
    pub metric: String,
    /// The least improvement accepted; negative tolerates a small loss. Default: 0.
    #[serde(default)]
    pub min_delta: f64,
    /// The largest p-value of "no difference" accepted. Default: null (no test).
    #[serde(default)]
    pub max_p_value: Option<f64>,
}

fn default_min_rows() -> usize {
    200
}

fn default_min_positives() -> usize {
    5
}

/// `partition.shrinkage`: what a group's penalty pulls its coefficients toward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shrinkage {
    /// Toward the generic model's coefficients.
    #[default]
    Global,
    /// Toward zero: each group on its own.
    None,
}

impl std::fmt::Display for Shrinkage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Shrinkage::Global => "global",
            Shrinkage::None => "none",
        })
    }
}

/// `model.mlp`: numeric features (standardized, with missing indicators) concatenated with one
/// learned embedding per categorical column, then `hidden` Linear+ReLU layers with dropout and a
/// single logit, trained on the weighted mean log loss with AdamW.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpSpec {
    /// Widths of the hidden layers, each `>= 1`. Default: `[256, 128]`.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Dropout probability after every hidden layer, in `[0, 1)`. Default: 0.1.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Width of every categorical embedding. Default: `null`, which sizes each column's embedding
    /// from its cardinality `k` (levels plus the "other" slot) as `min(16, ceil(1.6 · k^0.56))`.
    #[serde(default)]
    pub embedding_dim: Option<usize>,
    /// Most passes over the training rows, `>= 1`. Default: 20.
    #[serde(default = "default_epochs")]
    pub epochs: u32,
    /// Rows per optimizer step, `>= 1`. Default: `null`, which is 1024, or fewer on small data
    /// so that an epoch has at least 32 steps (never fewer than 32 rows).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Peak AdamW learning rate, `> 0`. Default: 1e-3.
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// AdamW decoupled weight decay, `>= 0`. Default: 1e-4.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Epochs of linear warm-up from 0 to `learning_rate`, `>= 0`, may be fractional.
    /// Default: 0.
    #[serde(default)]
    pub warmup_epochs: f64,
    /// Learning rate after warm-up: `"cosine"` decays to 0 at `epochs`, `"constant"` keeps it.
    /// Default: `"cosine"`.
    #[serde(default)]
    pub schedule: LrSchedule,
    /// Largest global L2 norm of the gradient; larger gradients are scaled down to it. `null`
    /// turns clipping off. Default: 1.0.
    #[serde(default = "default_clip")]
    pub grad_clip_norm: Option<f64>,
    /// `"balanced"` weighs each class by total / (K · class total). Default: none.
    #[serde(default)]
    pub class_weight: Option<ClassWeight>,
    /// Early stopping on a validation share of the train rows; `null` trains every epoch.
    /// Default: `{"patience": 3, "validation_fraction": 0.1}`.
    #[serde(default = "default_early_stopping")]
    pub early_stopping: Option<EarlyStopping>,
    /// Also checkpoint every this many optimizer steps (a checkpoint is always written after
    /// every epoch), `>= 1`. Default: none.
    #[serde(default)]
    pub checkpoint_every_steps: Option<u64>,
}

impl Default for MlpSpec {
    fn default() -> Self {
        MlpSpec {
            hidden: default_hidden(),
            dropout: default_dropout(),
            embedding_dim: None,
            epochs: default_epochs(),
            batch_size: None,
            learning_rate: default_learning_rate(),
            weight_decay: default_weight_decay(),
            warmup_epochs: 0.0,
            schedule: LrSchedule::default(),
            grad_clip_norm: default_clip(),
            class_weight: None,
            early_stopping: default_early_stopping(),
            checkpoint_every_steps: None,
        }
    }
}

/// The learning-rate schedule after warm-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// Half a cosine from `learning_rate` down to 0 at the last epoch.
    #[default]
    Cosine,
    /// `learning_rate` throughout.
    Constant,
}

/// `model.mlp.early_stopping`: the validation rows are a seeded share of the train rows (never
/// the test rows); training stops when the validation log loss has not improved for `patience`
/// epochs, and the best epoch's weights are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping, `>= 1`. Default: 3.
    #[serde(default = "default_patience")]
    pub patience: u32,
    /// Share of the train rows held out for validation, in (0, 1). Default: 0.1.
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
}

fn default_hidden() -> Vec<usize> {
    vec![256, 128]
}
fn default_dropout() -> f64 {
    0.1
}
fn default_epochs() -> u32 {
    20
}
fn default_learning_rate() -> f64 {
    1e-3
}
fn default_weight_decay() -> f64 {
    1e-4
}
fn default_clip() -> Option<f64> {
    Some(1.0)
}
fn default_early_stopping() -> Option<EarlyStopping> {
    Some(EarlyStopping { patience: default_patience(), validation_fraction: default_validation_fraction() })
}
fn default_patience() -> u32 {
    3
}
fn default_validation_fraction() -> f64 {
    0.1
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}
fn default_device() -> String {
    "auto".into()
}
fn default_seed() -> u64 {
    42
}
fn default_fraction() -> f64 {
    0.2
}
fn default_min_category_count() -> u64 {
    5
}
fn default_l2() -> f64 {
    1.0
}
fn default_max_iter() -> u32 {
    500
}
fn default_tol() -> f64 {
    1e-6
}

impl JobSpec {
    /// Parses a spec from JSON text, applying `--set` overrides first. Errors name the JSON path.
    ///
    /// Stricter than serde_json: the document must be an object, a key may appear only once per
    /// object (serde_json would keep the last silently, also inside `params`), and an object of
    /// the spec may not be written as an array of its fields' values.
    pub fn from_json(text: &str, overrides: &[String]) -> Result<Self> {
        let mut value = strict_json::parse(text).map_err(|e| match e {
            strict_json::Error::Syntax(e) => {
                Error::spec("spec", format!("malformed JSON at line {} column {}: {e}", e.line(), e.column()))
            }
            strict_json::Error::DuplicateKey { path, key, line, column } => {
                Error::spec(path, format!("duplicate key {key:?} at line {line} column {column}"))
            }
        })?;
        // Before the overrides, which would otherwise replace a non-object document by an object.
        if !value.is_object() {
            return Err(Error::spec("spec", format!("must be a JSON object, got {}", json_type(&value))));
        }
        for o in overrides {
            apply_override(&mut value, o)?;
        }
        Self::from_value(value)
    }

    /// Reads and parses a spec file: a regular file, or a pipe (`validate <(jq ... spec.json)`,
    /// `/dev/stdin`). A directory or a device is a usage error naming the path.
    pub fn from_file(path: &Path, overrides: &[String]) -> Result<Self> {
        let not_found = || Error::Usage(format!("spec file {} not found", path.display()));
        let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => not_found(),
            _ => Error::io(path, e),
        })?;
        let kind = metadata.file_type();
        // A device would be read forever (/dev/zero) or read as nothing (/dev/null): neither is
        // what was meant, so say what the path is instead.
        if !(kind.is_file() || kind.is_fifo()) {
            return Err(Error::Usage(format!(
                "spec file {} is {}, not a JSON file",
                path.display(),
                crate::data::describe(kind)
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => not_found(),
            std::io::ErrorKind::InvalidData => {
                Error::spec("spec", format!("{} is not UTF-8 text", path.display()))
            }
            _ => Error::io(path, e),
        })?;
        Self::from_json(&text, overrides).map_err(|e| match e {
            Error::Spec { path: p, message } => Error::spec(p, format!("{message} (in {})", path.display())),
            other => other,
        })
    }

    fn from_value(value: serde_json::Value) -> Result<Self> {
        let spec: JobSpec = serde_path_to_error::deserialize(&value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { "spec".to_string() } else { path };
            Error::spec(path, e.into_inner().to_string())
        })?;
        // Serializing a plain data struct cannot fail.
        let typed = serde_json::to_value(&spec).unwrap_or(serde_json::Value::Null);
        reject_positional_objects(&value, &typed, "")?;
        Ok(spec)
    }

    /// The spec with every default filled in: what the manifest records and what its sha256 is
    /// computed over.
    pub fn resolved_json(&self) -> serde_json::Value {
        let mut resolved = self.clone();
        resolved.output = Some(self.output_dir());
        // Serializing a plain data struct cannot fail.
        serde_json::to_value(resolved).unwrap_or(serde_json::Value::Null)
    }

    /// The run directory: `output`, or `runs/<name>`.
    pub fn output_dir(&self) -> String {
        self.output.clone().unwrap_or_else(|| format!("runs/{}", self.name))
    }

    /// The logistic hyperparameters, when the model is logistic.
    pub fn logistic(&self) -> Option<&LogisticSpec> {
        match &self.model {
            ModelSpec::Logistic(l) => Some(l),
            ModelSpec::Mlp(_) => None,
        }
    }
}

/// Rejects an array where the spec has an object. serde fills a struct from an array of its
/// fields' values in declaration order, so `"model": {"logistic": [1.0, 500]}` would parse as
/// `l2 = 1.0, max_iter = 500`: an accident, not a notation, and one that breaks silently when a
/// field is added. Rather than list the struct-typed fields, compare the document with the parsed
/// spec serialized back: every place where that is an object (a struct, or an enum's
/// `{"variant": ...}`) must be an object in the document too. Free JSON (`params`,
/// `positive_label`) serializes as it was given, so it is never flagged.
fn reject_positional_objects(doc: &serde_json::Value, typed: &serde_json::Value, path: &str) -> Result<()> {
    use serde_json::Value;
    match (doc, typed) {
        (Value::Array(_), Value::Object(_)) => Err(Error::spec(
            if path.is_empty() { "spec" } else { path },
            "must be a JSON object, got an array",
        )),
        (Value::Object(doc), Value::Object(typed)) => {
            for (key, t) in typed {
                if let Some(d) = doc.get(key) {
                    let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    reject_positional_objects(d, t, &here)?;
                }
            }
            Ok(())
        }
        (Value::Array(doc), Value::Array(typed)) => {
            for (i, (d, t)) in doc.iter().zip(typed).enumerate() {
                reject_positional_objects(d, t, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// "an array", "a string", ... for messages.
fn json_type(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"name": "t", "data": {"features": ["a.parquet"]}, "label": "y",
        "features": {"numeric": ["x"]}}"#;

    #[test]
    fn defaults_are_filled_in() {
        let spec = JobSpec::from_json(MINIMAL, &[]).unwrap();
        assert_eq!(spec.seed, 42);
        assert_eq!(spec.device, "auto");
        assert_eq!(spec.holdout, HoldoutSpec::Random(RandomHoldout { fraction: 0.2, key: None }));
        assert_eq!(spec.logistic(), Some(&LogisticSpec::default()));
        let resolved = spec.resolved_json();
        assert_eq!(resolved["output"], "runs/t");
        assert_eq!(resolved["model"]["logistic"]["l2"], 1.0);
        assert_eq!(resolved["features"]["min_category_count"], 5);
        // The resolved spec parses back to the same spec.
        let back: JobSpec = serde_json::from_value(resolved).unwrap();
        assert_eq!(back.output.as_deref(), Some("runs/t"));
    }

    #[test]
    fn mlp_defaults_are_filled_in() {
        let text = MINIMAL.replace(r#""label": "y""#, r#""label": "y", "model": {"mlp": {"hidden": [8]}}"#);
        let spec = JobSpec::from_json(&text, &[]).unwrap();
        let resolved = spec.resolved_json();
        let mlp = &resolved["model"]["mlp"];
        assert_eq!(mlp["hidden"], serde_json::json!([8]));
        assert_eq!(mlp["dropout"], 0.1);
        assert_eq!(mlp["epochs"], 20);
        assert_eq!(mlp["early_stopping"]["patience"], 3);
        assert_eq!(mlp["schedule"], "cosine");
        assert_eq!(mlp["grad_clip_norm"], 1.0);
        let back: JobSpec = serde_json::from_value(resolved).unwrap();
        assert_eq!(back.model, spec.model);
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let text = MINIMAL.replace(r#""label": "y""#, r#""label": "y", "model": {"logistic": {"l3": 1}}"#);
        let err = JobSpec::from_json(&text, &[]).unwrap_err().to_string();
        assert!(err.starts_with("model.logistic"), "{err}");
        assert!(err.contains("unknown field `l3`"), "{err}");
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let text = MINIMAL.replace(r#""label": "y""#, r#""label": "y", "seed": "x""#);
        let err = JobSpec::from_json(&text, &[]).unwrap_err().to_string();
        assert!(err.starts_with("seed: invalid type: string"), "{err}");
    }

    #[test]
    fn missing_required_field_is_named() {
        let err = JobSpec::from_json(r#"{"name": "t", "label": "y", "features": {}}"#, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `data`"), "{err}");
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let err = JobSpec::from_json("{\"name\": \n", &[]).unwrap_err().to_string();
        assert!(err.starts_with("spec: malformed JSON at line 2"), "{err}");
    }

    #[test]
    fn overrides_apply_before_validation() {
        let spec = JobSpec::from_json(
            MINIMAL,
            &["model.logistic.l2=0.25".into(), "holdout.random.key=id".into(), "seed=7".into()],
        )
        .unwrap();
        assert_eq!(spec.logistic().map(|l| l.l2), Some(0.25));
        assert_eq!(spec.seed, 7);
        assert_eq!(
            spec.holdout,
            HoldoutSpec::Random(RandomHoldout { fraction: 0.2, key: Some("id".into()) })
        );
    }

    fn error(text: &str, overrides: &[&str]) -> String {
        let overrides: Vec<String> = overrides.iter().map(|o| o.to_string()).collect();
        let err = JobSpec::from_json(text, &overrides).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        err.to_string()
    }

    #[test]
    fn the_document_must_be_an_object() {
        let err = error(r#"["t", {"features": ["a.parquet"]}, "y", {"numeric": ["x"]}]"#, &[]);
        assert_eq!(err, "spec: must be a JSON object, got an array");
        assert_eq!(error("42", &["name=t"]), "spec: must be a JSON object, got a number");
    }

    #[test]
    fn duplicate_keys_are_rejected_with_their_path() {
        let text =
            MINIMAL.replace(r#""label": "y""#, r#""label": "y", "params": {"owner": "a", "owner": "b"}"#);
        let err = error(&text, &[]);
        assert!(err.starts_with(r#"params.owner: duplicate key "owner" at line 1 column"#), "{err}");
        let text = MINIMAL
            .replace(r#""label": "y""#, r#""model": {"logistic": {"l2": 0.1, "l2": 10}}, "label": "y""#);
        assert!(error(&text, &[]).starts_with(r#"model.logistic.l2: duplicate key "l2""#));
        let text = MINIMAL.replace(r#""label": "y""#, r#""label": "y", "label": "z""#);
        assert!(error(&text, &[]).starts_with(r#"label: duplicate key "label""#));
    }

    #[test]
    fn arrays_in_place_of_objects_are_rejected_with_their_path() {
        for (field, path) in [
            (r#""model": {"logistic": [1.0, 500]}"#, "model.logistic"),
            (r#""model": {"mlp": {"early_stopping": [3, 0.1]}}"#, "model.mlp.early_stopping"),
            (r#""holdout": {"random": [0.1]}"#, "holdout.random"),
            (r#""holdout": {"date_range": ["t", "2024-01-01", "2024-02-01"]}"#, "holdout.date_range"),
            (r#""partition": ["country"]"#, "partition"),
        ] {
            let text = MINIMAL.replace(r#""label": "y""#, &format!(r#""label": "y", {field}"#));
            assert_eq!(error(&text, &[]), format!("{path}: must be a JSON object, got an array"), "{field}");
        }
        let text = r#"{"name": "t", "data": [["a.parquet"]], "label": "y", "features": [["x"]]}"#;
        assert_eq!(error(text, &[]), "data: must be a JSON object, got an array");
        let text = r#"{"name": "t", "data": {"features": ["a.parquet"], "filters": [{"column": "a", "eq": 1},
            ["b"]]}, "label": "y", "features": {"numeric": ["x"]}}"#;
        assert_eq!(error(text, &[]), "data.filters[1]: must be a JSON object, got an array");
        // An override is held to the same rule as the file.
        assert_eq!(
            error(MINIMAL, &["model.logistic=[1.0, 500]"]),
            "model.logistic: must be a JSON object, got an array"
        );
        // Free JSON and lists of values are arrays by right.
        let text = MINIMAL.replace(
            r#""label": "y""#,
            r#""label": "y", "params": {"tags": [["a"]]}, "holdout": {"files": ["t.parquet"]}"#,
        );
        JobSpec::from_json(&text, &[]).unwrap();
    }
}
