//! Per-group logistic models next to the generic model (`partition` in the spec).
//!
//! One pass groups the train rows by key; every group that meets the thresholds gets its own
//! model, fitted on a gathered copy of its rows with the same fused kernel and solver as the
//! generic model, groups taken largest first by whichever thread is free. With
//! `shrinkage: "global"` the penalty pulls each group's coefficients toward the generic ones.
//! Scoring composes: a row of a group with its own model is scored by it, every other row (a
//! group below the thresholds, a group unseen in training, a null key) by the generic model.
//! Each row's score depends only on the row and its model, so `predict` reproduces training.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::data::{self, Column, KeyRef, ParquetFile};
use crate::error::{Error, Result};
use crate::f64_tensors;
use crate::features::Design;
use crate::group_selection::{self, FOLDS, GroupRows, STRENGTH_ROWS, Tried, Verdict};
use crate::logistic::{self, LogisticModel};
use crate::metrics::{SplitMetrics, nan_as_null};
use crate::progress::{Counter, Reporter};
use crate::runfiles::RunFiles;
use crate::spec::{LogisticSpec, PartitionSpec, Select, Shrinkage, Strength};

/// File names in the run directory.
pub const GROUPS_WEIGHTS: &str = "groups.safetensors";
/// Per-group statistics, and which coefficient row each fitted group uses.
pub const GROUPS_TABLE: &str = "groups.parquet";
const COEF: &str = "coef";
const INTERCEPT: &str = "intercept";

/// A group's key: the value of the `by` column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKey {
    /// Integer, boolean or time column values.
    Int(i64),
    /// String column values.
    Str(String),
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupKey::Int(v) => write!(f, "{v}"),
            GroupKey::Str(s) => f.write_str(s),
        }
    }
}

/// The group key of every row of `column` (`None` for nulls).
pub fn keys(column: &Column, by: &str) -> Result<Vec<Option<GroupKey>>> {
    (0..column.len())
        .map(|i| match column.key_at(i) {
            None => Ok(None),
            Some(KeyRef::Int(v)) => Ok(Some(GroupKey::Int(v))),
            Some(KeyRef::Str(s)) => Ok(Some(GroupKey::Str(s.to_string()))),
            Some(KeyRef::UInt(v)) => Err(Error::data(format!(
                "partition.by: column {by:?} has value {v}, above the largest supported group key {}",
                i64::MAX
            ))),
        })
        .collect()
}

/// Every group's fitted model, one coefficient row per group, groups in key order.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupModels {
    /// Keys of the groups with a model, sorted.
    pub keys: Vec<GroupKey>,
    /// Design-matrix width.
    pub cols: usize,
    /// `keys.len() * cols` coefficients, row after row.
    pub coef: Vec<f64>,
    /// One intercept per group.
    pub intercept: Vec<f64>,
}

impl GroupModels {
    /// Group `g`'s model.
    pub fn model(&self, g: usize) -> LogisticModel {
        LogisticModel {
            coef: self.coef[g * self.cols..(g + 1) * self.cols].to_vec(),
            intercept: self.intercept[g],
        }
    }

    /// Replaces the generic model's score with the group model's for every row whose group has
    /// one. `scores` holds the generic model's scores of `x`'s rows; returns how many rows a
    /// group model scored.
    pub fn compose(&self, x: &Design, keys: &[Option<GroupKey>], scores: &mut [f64]) -> usize {
        let index: HashMap<&GroupKey, usize> = self.keys.iter().enumerate().map(|(g, k)| (k, g)).collect();
        let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); self.keys.len()];
        for (i, k) in keys.iter().enumerate() {
            if let Some(&g) = k.as_ref().and_then(|k| index.get(k)) {
                rows_of[g].push(i);
            }
        }
        let scored: Vec<(usize, Vec<f64>)> = rows_of
            .par_iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(g, rows)| (g, self.model(g).predict_proba(&x.gather(rows))))
            .collect();
        let mut n = 0;
        for (g, p) in scored {
            for (&i, v) in rows_of[g].iter().zip(p) {
                scores[i] = v;
            }
            n += rows_of[g].len();
        }
        n
    }

    /// The bytes of `groups.safetensors`: `coef` `[groups, cols]` and `intercept` `[groups]`,
    /// both f64.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let g = self.keys.len();
        f64_tensors::to_bytes(&[
            (COEF, vec![g, self.cols], &self.coef),
            (INTERCEPT, vec![g], &self.intercept),
        ])
    }

    /// Reads `groups.safetensors` and the keys of the groups that keep a model from
    /// `groups.parquet` in `run`.
    pub fn load(run: &RunFiles, cols: usize) -> Result<GroupModels> {
        // The table is small: verified from its bytes, then read as Parquet from a local file.
        let table = run.local_copy(GROUPS_TABLE)?;
        let files = ParquetFile::open_all(std::slice::from_ref(&table))?;
        let columns = vec!["group".to_string(), "model_row".to_string()];
        let kinds = data::column_kinds(&files, &columns)?;
        let (frame, _) = data::read(&files, &columns, &kinds, &[])?;
        let shown = run.path(GROUPS_TABLE);
        let bad = |what: String| Error::data(format!("{}: {what}", shown.display()));
        let (group, row) = match (frame.column("group"), frame.column("model_row")) {
            (Some(g), Some(r)) => (g, r),
            _ => return Err(bad("needs columns group and model_row".into())),
        };
        let group_keys = keys(group, "group")?;
        let mut fitted: Vec<(usize, GroupKey)> = Vec::new();
        for (i, key) in group_keys.into_iter().enumerate() {
            if let (Some(k), Some(KeyRef::Int(r))) = (key, row.key_at(i)) {
                let r = usize::try_from(r).map_err(|_| bad(format!("model_row {r} is negative")))?;
                fitted.push((r, k));
            }
        }
        fitted.sort();
        if fitted.iter().enumerate().any(|(i, (r, _))| *r != i) {
            return Err(bad("model_row must number the groups with a model 0, 1, 2, ...".into()));
        }
        let path = run.path(GROUPS_WEIGHTS);
        let bytes = run.read(GROUPS_WEIGHTS)?;
        let bad = |what: String| Error::data(format!("{}: {what}", path.display()));
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let coef = f64_tensors::read(&st, COEF, &path)?;
        let intercept = f64_tensors::read(&st, INTERCEPT, &path)?;
        let g = fitted.len();
        if coef.len() != g * cols || intercept.len() != g {
            return Err(bad(format!(
                "{} coefficients and {} intercepts for {g} groups of {cols} design columns",
                coef.len(),
                intercept.len()
            )));
        }
        Ok(GroupModels { keys: fitted.into_iter().map(|(_, k)| k).collect(), cols, coef, intercept })
    }
}

/// One row of `groups.parquet`: a group seen in the train or test rows.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// The key.
    pub key: GroupKey,
    /// Row of the group's model in `groups.safetensors`, `None` when it falls back.
    pub model_row: Option<usize>,
    /// Whether the group met the thresholds and a model was fitted (kept or not).
    pub fitted: bool,
    /// Why the group keeps its model or falls back to the generic one.
    pub reason: String,
    /// Mean per-row held-out log-loss gain of the group's model over the generic model
    /// (`select: "validation"`; NaN otherwise).
    pub validation_gain: f64,
    /// Its standard error.
    pub validation_gain_se: f64,
    /// Train rows and positives.
    pub train_rows: usize,
    /// Positive train rows.
    pub train_positives: usize,
    /// Test rows.
    pub test_rows: usize,
    /// Positive test rows.
    pub test_positives: usize,
    /// The scores the composition gives this group (its model, or the generic one): train ROC
    /// AUC (NaN with one class) and log loss (NaN without rows).
    pub train_roc_auc: f64,
    /// Train log loss.
    pub train_log_loss: f64,
    /// Test ROC AUC of the composition.
    pub test_roc_auc: f64,
    /// Test log loss of the composition.
    pub test_log_loss: f64,
    /// Test ROC AUC of the generic model alone.
    pub generic_test_roc_auc: f64,
    /// Test log loss of the generic model alone.
    pub generic_test_log_loss: f64,
    /// L-BFGS passes of the group's fit (0 when it falls back).
    pub passes: u32,
    /// Whether the group's fit converged (false when it falls back).
    pub converged: bool,
}

/// Headline metrics of one scoring of the test rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// ROC AUC over all test rows.
    #[serde(with = "nan_as_null")]
    pub roc_auc: f64,
    /// PR AUC (average precision) over all test rows.
    #[serde(with = "nan_as_null")]
    pub pr_auc: f64,
    /// Log loss over all test rows.
    #[serde(with = "nan_as_null")]
    pub log_loss: f64,
    /// Mean over groups of each group's test ROC AUC, weighted by its test rows (groups with
    /// both classes in the test rows).
    #[serde(with = "nan_as_null")]
    pub group_mean_roc_auc: f64,
    /// Mean over groups of each group's test log loss, weighted by its test rows.
    #[serde(with = "nan_as_null")]
    pub group_mean_log_loss: f64,
}

/// `partition` in `metrics.json`: the generic model alone against the composition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionReport {
    /// The group column.
    pub by: String,
    /// `global` or `none`.
    pub shrinkage: Shrinkage,
    /// Groups in the train rows.
    pub train_groups: usize,
    /// Groups that met the thresholds and were fitted.
    pub groups_fitted: usize,
    /// Fitted groups that keep their own model (all of them with `select: "none"`).
    #[serde(default)]
    pub groups_kept: usize,
    /// Train groups below the thresholds.
    #[serde(default)]
    pub groups_dropped_by_thresholds: usize,
    /// Fitted groups whose model did not beat the generic model on held-out rows.
    #[serde(default)]
    pub groups_dropped_by_selection: usize,
    /// Train groups scored by the generic model (dropped by the thresholds or by selection).
    pub groups_fell_back: usize,
    /// How the strength was set (`partition.l2`).
    #[serde(default)]
    pub strength: StrengthReport,
    /// The held-out comparison behind `select: "validation"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionReport>,
    /// Test rows scored by a group model.
    pub test_rows_group_model: usize,
    /// Test rows scored by the generic model (small, unseen or null groups).
    pub test_rows_generic: usize,
    /// Group fits that did not converge.
    pub groups_not_converged: usize,
    /// Objective passes over all group fits.
    pub group_passes: u64,
    /// The generic model on the test rows.
    pub generic: Headline,
    /// The composition on the test rows.
    pub composition: Headline,
    /// Seconds grouping the train rows and fitting every group at the strength used.
    pub fit_seconds: f64,
    /// Seconds choosing the strength and selecting groups (cross-validation).
    #[serde(default)]
    pub selection_seconds: f64,
    /// Seconds scoring the composition and computing per-group metrics.
    pub evaluate_seconds: f64,
}

/// Row indices of every non-null key, groups in key order.
fn index(keys: &[Option<GroupKey>]) -> Vec<(GroupKey, Vec<usize>)> {
    let mut at: HashMap<&GroupKey, usize> = HashMap::new();
    let mut groups: Vec<(GroupKey, Vec<usize>)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if let Some(k) = k {
            let g = *at.entry(k).or_insert_with(|| {
                groups.push((k.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    groups
}

/// How one eligible group's fit went.
#[derive(Debug, Clone)]
struct GroupFit {
    model: LogisticModel,
    passes: u32,
    converged: bool,
    train_roc_auc: f64,
    train_log_loss: f64,
    /// The held-out comparison with the generic model (`select: "validation"`).
    verdict: Option<Verdict>,
}

impl GroupFit {
    fn kept(&self) -> bool {
        self.verdict.is_none_or(|v| v.keep)
    }
}

/// A train group: its rows, positives, and its fit when it met the thresholds.
#[derive(Debug, Clone)]
struct TrainGroup {
    key: GroupKey,
    rows: Vec<usize>,
    positives: usize,
    fit: Option<GroupFit>,
}

impl TrainGroup {
    /// Why the group keeps its model or falls back to the generic one.
    fn reason(&self, part: &PartitionSpec) -> String {
        let (n, pos) = (self.rows.len(), self.positives);
        match &self.fit {
            None if n < part.min_rows => format!("min_rows: {n} train rows < {}", part.min_rows),
            None if pos < part.min_positives => {
                format!("min_positives: {pos} positive train rows < {}", part.min_positives)
            }
            None => format!("min_positives: {} negative train rows < {}", n - pos, part.min_positives),
            Some(GroupFit { verdict: None, .. }) => "kept: partition.select is none".into(),
            Some(GroupFit { verdict: Some(v), .. }) if v.keep => format!(
                "kept: held-out log loss {:.5} per row better than the generic model's, above one standard error ({:.5})",
                v.gain, v.se
            ),
            Some(GroupFit { verdict: Some(v), .. }) => format!(
                "selection: held-out gain {:.5} per row over the generic model is not above one standard error ({:.5})",
                v.gain, v.se
            ),
        }
    }
}

/// `partition.strength` in `metrics.json`: the strength the group models were fitted with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StrengthReport {
    /// `auto` (chosen by cross-validation) or `fixed` (the spec's number).
    pub method: String,
    /// The strength used.
    #[serde(with = "nan_as_null")]
    pub l2: f64,
    /// With `auto`: folds per group.
    pub folds: usize,
    /// With `auto`: the groups and train rows the choice was made on.
    pub sample_groups: usize,
    /// Train rows of those groups.
    pub sample_rows: usize,
    /// With `auto`: each strength tried, strongest first.
    pub grid: Vec<GridPoint>,
    /// Seconds choosing it.
    pub seconds: f64,
}

/// One strength `auto` tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// The strength.
    pub l2: f64,
    /// Held-out log loss per sampled row, every sampled group by its own model: what the
    /// choice minimizes.
    #[serde(with = "nan_as_null")]
    pub validation_log_loss: f64,
    /// The same with the groups selection would drop scored by the generic model (optimistic:
    /// the same rows decide and measure).
    #[serde(with = "nan_as_null")]
    pub validation_log_loss_selected: f64,
    /// Sampled groups that selection would keep at this strength.
    pub groups_kept: usize,
}

/// `partition.selection` in `metrics.json`: the held-out comparison behind `select:
/// "validation"`, over every fitted group's train rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionReport {
    /// The rule: `one_standard_error`.
    pub rule: String,
    /// Folds per group.
    pub folds: usize,
    /// Held-out rows (the fitted groups' train rows).
    pub rows: usize,
    /// Their log loss under the generic model.
    #[serde(with = "nan_as_null")]
    pub validation_log_loss_generic: f64,
    /// Their held-out log loss under the composition (kept groups by their model).
    #[serde(with = "nan_as_null")]
    pub validation_log_loss_composition: f64,
    /// 1 − composition / generic: the composition's estimated relative gain (optimistic: the
    /// rows that decide each group's selection also measure it).
    #[serde(with = "nan_as_null")]
    pub validation_relative_gain: f64,
    /// Seconds refitting the folds.
    pub seconds: f64,
}

/// What [`fit`] returns: the models and every train group, in key order.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The models of the groups that keep one.
    pub models: GroupModels,
    groups: Vec<TrainGroup>,
    /// How the strength was set.
    pub strength: StrengthReport,
    /// The held-out comparison, with `select: "validation"`.
    pub selection: Option<SelectionReport>,
}

impl Fitted {
    /// Seconds choosing the strength and selecting groups (the `group_selection` phase).
    pub fn selection_seconds(&self) -> f64 {
        self.strength.seconds + self.selection.as_ref().map_or(0.0, |s| s.seconds)
    }
}

/// What every group's work needs to see.
struct Shared<'a> {
    x: &'a Design,
    y: &'a [f32],
    weights: Option<&'a [f32]>,
    hyper: &'a LogisticSpec,
    generic: &'a LogisticModel,
    anchor: Option<&'a LogisticModel>,
    seed: u64,
}

impl Shared<'_> {
    /// A group's rows gathered, with its folds.
    fn gather(&self, group: &TrainGroup) -> GroupRows {
        let rows = &group.rows;
        let y: Vec<f32> = rows.iter().map(|&i| self.y[i]).collect();
        GroupRows {
            x: self.x.gather(rows),
            w: self.weights.map(|w| rows.iter().map(|&i| w[i]).collect()),
            folds: group_selection::folds(&y, FOLDS, group_selection::fold_seed(self.seed, &group.key)),
            y,
        }
    }

    /// The generic model's loss on each of a group's rows.
    fn generic_losses(&self, g: &GroupRows) -> Vec<f64> {
        crate::metrics::paired::log_losses(&g.y, &self.generic.predict_proba(&g.x))
    }
}

/// Runs `work(i)` for every `i` of `sizes` (the row counts of the groups worked on) on whichever
/// thread is free, largest first so the long ones start early and the small ones fill the gaps;
/// results come back in index order, so nothing depends on the thread count.
fn each<T: Send>(sizes: &[usize], counter: Option<&Counter<'_>>, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let mut by_size: Vec<usize> = (0..sizes.len()).collect();
    by_size.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let mut done: Vec<(usize, T)> = by_size
        .into_iter()
        .par_bridge()
        .map(|i| {
            let _tick = counter.map(Tick);
            (i, work(i))
        })
        .collect();
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, t)| t).collect()
}

/// The train rows of each group of `order`.
fn sizes(order: &[usize], groups: &[TrainGroup]) -> Vec<usize> {
    order.iter().map(|&g| groups[g].rows.len()).collect()
}

/// Fits one model per train group that has at least `min_rows` rows and `min_positives`
/// positive and negative rows, at the strength `partition.l2` gives or chooses, and with
/// `select: "validation"` keeps only those that beat the generic model on held-out rows (see
/// [`group_selection`]). Results do not depend on the thread count: each group's fits see only
/// its own rows, in their original order, and every sum over groups runs in key order.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    x: &Design,
    y: &[f32],
    weights: Option<&[f32]>,
    keys: &[Option<GroupKey>],
    part: &PartitionSpec,
    hyper: &LogisticSpec,
    generic: &LogisticModel,
    seed: u64,
    progress: &Reporter,
) -> Fitted {
    let mut groups: Vec<TrainGroup> = index(keys)
        .into_iter()
        .map(|(key, rows)| {
            let positives = rows.iter().filter(|&&i| y[i] == 1.0).count();
            TrainGroup { key, rows, positives, fit: None }
        })
        .collect();
    let eligible: Vec<usize> = (0..groups.len())
        .filter(|&g| {
            let (n, pos) = (groups[g].rows.len(), groups[g].positives);
            n >= part.min_rows && pos >= part.min_positives && n - pos >= part.min_positives
        })
        .collect();
    let anchor = (part.shrinkage == Shrinkage::Global).then_some(generic);
    let shared = Shared { x, y, weights, hyper, generic, anchor, seed };
    let select = part.select == Select::Validation;
    let strength = match part.l2 {
        Strength::Fixed(l2) => StrengthReport { method: "fixed".into(), l2, ..StrengthReport::default() },
        Strength::Auto => choose_strength(&shared, &groups, &eligible, progress),
    };
    let hyper = &LogisticSpec { l2: strength.l2, ..hyper.clone() };

    let counter = Counter::new(progress, "fit", "group models", eligible.len());
    let fits = each(&sizes(&eligible, &groups), Some(&counter), |i| {
        let g = shared.gather(&groups[eligible[i]]);
        let (model, report) = logistic::fit_anchored(&g.x, &g.y, g.w.as_deref(), hyper, anchor);
        let m = SplitMetrics::compute(&g.y, &model.predict_proba(&g.x));
        GroupFit {
            model,
            passes: report.objective_passes,
            converged: report.converged,
            train_roc_auc: m.roc_auc,
            train_log_loss: m.log_loss,
            verdict: None,
        }
    });
    for (&g, f) in eligible.iter().zip(fits) {
        groups[g].fit = Some(f);
    }

    let selection = select.then(|| {
        let started = std::time::Instant::now();
        let counter = Counter::new(progress, "fit", "group selection folds", eligible.len());
        // Per group: the verdict, and the generic and composition held-out loss sums.
        let judged = each(&sizes(&eligible, &groups), Some(&counter), |i| {
            let group = &groups[eligible[i]];
            let g = shared.gather(group);
            // Started like the group's own fit (from the anchor), not from that fit: a fold must
            // not start from a solution that has seen it, or an unconverged fit would carry it.
            let (held, _) = group_selection::held_out(&g, strength.l2, hyper, anchor, &[]);
            let generic_losses = shared.generic_losses(&g);
            let v = group_selection::verdict(&generic_losses, &held);
            let generic_sum: f64 = generic_losses.iter().sum();
            let composed_sum = if v.keep { held.iter().sum() } else { generic_sum };
            (v, generic_sum, composed_sum)
        });
        let (mut generic_sum, mut composed_sum, mut rows) = (0.0, 0.0, 0);
        for (&g, (v, gs, cs)) in eligible.iter().zip(judged) {
            generic_sum += gs;
            composed_sum += cs;
            rows += groups[g].rows.len();
            if let Some(f) = groups[g].fit.as_mut() {
                f.verdict = Some(v);
            }
        }
        let per_row = |sum: f64| if rows > 0 { sum / rows as f64 } else { f64::NAN };
        let (generic_ll, composed_ll) = (per_row(generic_sum), per_row(composed_sum));
        SelectionReport {
            rule: "one_standard_error".into(),
            folds: FOLDS,
            rows,
            validation_log_loss_generic: generic_ll,
            validation_log_loss_composition: composed_ll,
            validation_relative_gain: 1.0 - composed_ll / generic_ll,
            seconds: started.elapsed().as_secs_f64(),
        }
    });

    let mut models =
        GroupModels { keys: Vec::new(), cols: x.width(), coef: Vec::new(), intercept: Vec::new() };
    for group in &groups {
        if let Some(f) = group.fit.as_ref().filter(|f| f.kept()) {
            models.keys.push(group.key.clone());
            models.coef.extend_from_slice(&f.model.coef);
            models.intercept.push(f.model.intercept);
        }
    }
    Fitted { models, groups, strength, selection }
}

/// `partition.l2: "auto"`: the strength of the grid with the lowest pooled held-out loss on a
/// seeded sample of the eligible groups, walked from the strongest pull down with every fold's
/// model warm-started from the previous strength's.
fn choose_strength(
    shared: &Shared<'_>,
    groups: &[TrainGroup],
    eligible: &[usize],
    progress: &Reporter,
) -> StrengthReport {
    let started = std::time::Instant::now();
    let grid = group_selection::strength_grid();
    let sampled: Vec<usize> = group_selection::sample(&sizes(eligible, groups), STRENGTH_ROWS, shared.seed)
        .into_iter()
        .map(|e| eligible[e])
        .collect();
    let sampled_sizes = sizes(&sampled, groups);
    let (rows, generic): (Vec<GroupRows>, Vec<Vec<f64>>) = each(&sampled_sizes, None, |i| {
        let g = shared.gather(&groups[sampled[i]]);
        let losses = shared.generic_losses(&g);
        (g, losses)
    })
    .into_iter()
    .unzip();
    if sampled.is_empty() {
        // No eligible group: nothing to choose from, and nothing is fitted with it.
        return StrengthReport {
            method: "auto".into(),
            l2: f64::NAN,
            folds: FOLDS,
            ..StrengthReport::default()
        };
    }
    let mut starts: Vec<Vec<Option<LogisticModel>>> = vec![vec![None; FOLDS]; sampled.len()];
    // The walk usually stops before the grid's end: the bar's total is the most it can try.
    let counter = Counter::new(progress, "fit", "strengths (at most)", grid.len());
    let (best, tried) = group_selection::walk(&grid, |l2| {
        let _tick = Tick(&counter);
        let stepped = each(&sampled_sizes, None, |i| {
            group_selection::held_out(&rows[i], l2, shared.hyper, shared.anchor, &starts[i])
        });
        let mut held = Vec::with_capacity(stepped.len());
        for (i, (losses, models)) in stepped.into_iter().enumerate() {
            starts[i] = models;
            held.push(losses);
        }
        let pooled: Vec<(&[f64], &[f64])> =
            generic.iter().zip(&held).map(|(g, h)| (g.as_slice(), h.as_slice())).collect();
        Tried::pool(l2, &pooled)
    });
    StrengthReport {
        method: "auto".into(),
        l2: tried[best].l2,
        folds: FOLDS,
        sample_groups: sampled.len(),
        sample_rows: sampled.iter().map(|&g| groups[g].rows.len()).sum(),
        grid: tried
            .into_iter()
            .map(|t| GridPoint {
                l2: t.l2,
                validation_log_loss: t.log_loss,
                validation_log_loss_selected: t.selected_log_loss,
                groups_kept: t.kept,
            })
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// One side of the split as the generic model scored it.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The design.
    pub x: &'a Design,
    /// Labels, 0.0 or 1.0.
    pub y: &'a [f32],
    /// Group of each row.
    pub keys: &'a [Option<GroupKey>],
    /// The generic model's scores.
    pub generic: &'a [f64],
}

/// What [`evaluate`] returns.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The composition's train scores.
    pub train: Vec<f64>,
    /// The composition's test scores.
    pub test: Vec<f64>,
    /// `partition` in `metrics.json`.
    pub report: PartitionReport,
    /// The rows of `groups.parquet`.
    pub rows: Vec<GroupRow>,
}

/// ROC AUC and log loss of `p` on `rows`.
fn group_metrics(y: &[f32], p: &[f64], rows: &[usize]) -> (f64, f64) {
    let gy: Vec<f32> = rows.iter().map(|&i| y[i]).collect();
    let gp: Vec<f64> = rows.iter().map(|&i| p[i]).collect();
    let m = SplitMetrics::compute(&gy, &gp);
    (m.roc_auc, m.log_loss)
}

/// Scores both sides with the composition and sets it against the generic model alone on the
/// test rows, overall and per group (one row per group seen on either side, in key order).
/// `fit_seconds` is what [`fit`] took, for the report.
pub fn evaluate(
    fitted: &Fitted,
    part: &PartitionSpec,
    fit_seconds: f64,
    train: Side<'_>,
    test: Side<'_>,
) -> Evaluation {
    let started = std::time::Instant::now();
    let mut composed_train = train.generic.to_vec();
    fitted.models.compose(train.x, train.keys, &mut composed_train);
    let mut composed = test.generic.to_vec();
    let test_rows_group_model = fitted.models.compose(test.x, test.keys, &mut composed);
    let y = test.y;
    let test_groups = index(test.keys);
    let per_group = |p: &[f64], rows: &[usize]| group_metrics(y, p, rows);
    let mut rows_out: Vec<GroupRow> = Vec::new();
    let mut test_at: HashMap<&GroupKey, &Vec<usize>> = test_groups.iter().map(|(k, r)| (k, r)).collect();
    let mut model_row = 0;
    for group in &fitted.groups {
        let TrainGroup { key, rows: train_rows, positives, fit } = group;
        let kept = fit.as_ref().is_some_and(GroupFit::kept);
        let in_test = test_at.remove(key);
        let (t_rows, t_pos) =
            in_test.map_or((0, 0), |r| (r.len(), r.iter().filter(|&&i| y[i] == 1.0).count()));
        let ((auc, ll), (gauc, gll)) = match in_test {
            Some(r) => (per_group(&composed, r), per_group(test.generic, r)),
            None => ((f64::NAN, f64::NAN), (f64::NAN, f64::NAN)),
        };
        let row = kept.then(|| {
            model_row += 1;
            model_row - 1
        });
        let (train_auc, train_ll) = match fit {
            Some(f) if kept => (f.train_roc_auc, f.train_log_loss),
            _ => group_metrics(train.y, train.generic, train_rows),
        };
        let verdict = fit.as_ref().and_then(|f| f.verdict);
        rows_out.push(GroupRow {
            key: key.clone(),
            model_row: row,
            fitted: fit.is_some(),
            reason: group.reason(part),
            validation_gain: verdict.map_or(f64::NAN, |v| v.gain),
            validation_gain_se: verdict.map_or(f64::NAN, |v| v.se),
            train_rows: train_rows.len(),
            train_positives: *positives,
            test_rows: t_rows,
            test_positives: t_pos,
            train_roc_auc: train_auc,
            train_log_loss: train_ll,
            test_roc_auc: auc,
            test_log_loss: ll,
            generic_test_roc_auc: gauc,
            generic_test_log_loss: gll,
            passes: fit.as_ref().map_or(0, |f| f.passes),
            converged: fit.as_ref().is_some_and(|f| f.converged),
        });
    }
    // Groups only in the test rows: scored by the generic model.
    for (key, r) in &test_groups {
        if test_at.contains_key(key) {
            let (auc, ll) = per_group(test.generic, r);
            rows_out.push(GroupRow {
                key: key.clone(),
                model_row: None,
                fitted: false,
                reason: "not in the train rows".into(),
                validation_gain: f64::NAN,
                validation_gain_se: f64::NAN,
                train_rows: 0,
                train_positives: 0,
                test_rows: r.len(),
                test_positives: r.iter().filter(|&&i| y[i] == 1.0).count(),
                train_roc_auc: f64::NAN,
                train_log_loss: f64::NAN,
                test_roc_auc: auc,
                test_log_loss: ll,
                generic_test_roc_auc: auc,
                generic_test_log_loss: ll,
                passes: 0,
                converged: false,
            });
        }
    }
    rows_out.sort_by(|a, b| a.key.cmp(&b.key));
    let headline = |p: &[f64], pick: fn(&GroupRow) -> (f64, f64)| {
        let m = SplitMetrics::compute(y, p);
        let (mut auc_sum, mut auc_n, mut ll_sum, mut ll_n) = (0.0, 0usize, 0.0, 0usize);
        for g in &rows_out {
            let (auc, ll) = pick(g);
            if g.test_rows > 0 && auc.is_finite() {
                auc_sum += auc * g.test_rows as f64;
                auc_n += g.test_rows;
            }
            if g.test_rows > 0 && ll.is_finite() {
                ll_sum += ll * g.test_rows as f64;
                ll_n += g.test_rows;
            }
        }
        Headline {
            roc_auc: m.roc_auc,
            pr_auc: m.pr_auc,
            log_loss: m.log_loss,
            group_mean_roc_auc: if auc_n > 0 { auc_sum / auc_n as f64 } else { f64::NAN },
            group_mean_log_loss: if ll_n > 0 { ll_sum / ll_n as f64 } else { f64::NAN },
        }
    };
    let groups_kept = fitted.models.keys.len();
    let groups_fitted = fitted.groups.iter().filter(|g| g.fit.is_some()).count();
    let report = PartitionReport {
        by: part.by.clone(),
        shrinkage: part.shrinkage,
        train_groups: fitted.groups.len(),
        groups_fitted,
        groups_kept,
        groups_dropped_by_thresholds: fitted.groups.len() - groups_fitted,
        groups_dropped_by_selection: groups_fitted - groups_kept,
        groups_fell_back: fitted.groups.len() - groups_kept,
        strength: fitted.strength.clone(),
        selection: fitted.selection.clone(),
        test_rows_group_model,
        test_rows_generic: y.len() - test_rows_group_model,
        groups_not_converged: rows_out.iter().filter(|r| r.fitted && !r.converged).count(),
        group_passes: rows_out.iter().map(|r| u64::from(r.passes)).sum(),
        generic: headline(test.generic, |r| (r.generic_test_roc_auc, r.generic_test_log_loss)),
        composition: headline(&composed, |r| (r.test_roc_auc, r.test_log_loss)),
        fit_seconds,
        selection_seconds: fitted.selection_seconds(),
        evaluate_seconds: started.elapsed().as_secs_f64(),
    };
    Evaluation { train: composed_train, test: composed, report, rows: rows_out }
}

/// Writes `groups.parquet`: one row per group, in key order.
pub fn write_table(path: &Path, rows: &[GroupRow]) -> Result<()> {
    use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
    let ints = |f: fn(&GroupRow) -> usize| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| f(r) as i64)))
    };
    // NaN (one class, or no rows) is written as null: "not defined", not a number.
    let floats = |f: fn(&GroupRow) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| Some(f(r)).filter(|v| v.is_finite()))))
    };
    let group: ArrayRef = if rows.iter().all(|r| matches!(r.key, GroupKey::Int(_))) {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| match r.key {
            GroupKey::Int(v) => v,
            GroupKey::Str(_) => 0,
        })))
    } else {
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.key.to_string())))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("group", group),
        ("fitted", Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.fitted))))),
        ("kept", Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.model_row.is_some()))))),
        ("reason", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.reason.as_str())))),
        ("model_row", Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.model_row.map(|v| v as i64))))),
        ("validation_gain", floats(|r| r.validation_gain)),
        ("validation_gain_se", floats(|r| r.validation_gain_se)),
        ("train_rows", ints(|r| r.train_rows)),
        ("train_positives", ints(|r| r.train_positives)),
        ("test_rows", ints(|r| r.test_rows)),
        ("test_positives", ints(|r| r.test_positives)),
        ("train_roc_auc", floats(|r| r.train_roc_auc)),
        ("train_log_loss", floats(|r| r.train_log_loss)),
        ("test_roc_auc", floats(|r| r.test_roc_auc)),
        ("test_log_loss", floats(|r| r.test_log_loss)),
        ("generic_test_roc_auc", floats(|r| r.generic_test_roc_auc)),
        ("generic_test_log_loss", floats(|r| r.generic_test_log_loss)),
        ("passes", ints(|r| r.passes as usize)),
        ("converged", Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.converged))))),
    ];
    let batch = arrow::record_batch::RecordBatch::try_from_iter(columns)
        .map_err(|e| Error::Internal(format!("building {GROUPS_TABLE}: {e}")))?;
    data::write_parquet(path, batch, 1 << 20)
}

/// Ticks its counter when dropped: when a group's fit is done, however its closure returns.
struct Tick<'a, 'b>(&'a Counter<'b>);

impl Drop for Tick<'_, '_> {
    fn drop(&mut self) {
        self.0.tick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_groups_rows_by_key_in_key_order_and_skips_nulls() {
        let k = |v: i64| Some(GroupKey::Int(v));
        let keys = vec![k(3), None, k(1), k(3), k(2), None, k(1)];
        let groups = index(&keys);
        let expect =
            vec![(GroupKey::Int(1), vec![2, 6]), (GroupKey::Int(2), vec![4]), (GroupKey::Int(3), vec![0, 3])];
        assert_eq!(groups, expect);
    }
}
