//! A retrain's baseline: the earlier run (or a name's production run) named by the spec's
//! `baseline`, opened before any data is read, scoring the new run's test rows with its own
//! pipeline and group models; and [`Comparison`], both models' metrics on those rows with the
//! deltas and their uncertainty, which `metrics.json` records and `runs compare` prints.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::artifact::{self, Run};
use crate::error::{Error, Result};
use crate::metrics::paired::{self, DeLong, Interval};
use crate::metrics::{Evaluation, Scores};
use crate::progress::{Counter, Reporter};
use crate::registry::{Root, production};
use crate::rundir::names;
use crate::runfiles::{Manifest, RunFiles};
use crate::spec::{CheckedSpec, MissingBaseline};

/// The baseline run, opened and verified.
pub struct Baseline {
    /// Its model, pipeline and group models.
    pub run: Run,
    /// Its run id.
    pub run_id: String,
    /// Where it is.
    pub path: PathBuf,
    /// The job name it is the production run of, when `baseline.production` named it.
    pub production: Option<String>,
}

/// What the spec's `baseline` resolved to.
pub enum Resolved {
    /// A run to compare with.
    Run(Box<Baseline>),
    /// `baseline.production` with `missing: "eligible"`, and no production run yet.
    Missing {
        /// The job name.
        name: String,
        /// The runs root it was looked up in.
        root: String,
    },
}

/// The parent of a run directory or URL: the default runs root of its baseline.
pub(crate) fn parent_of(output: &str) -> String {
    let trimmed = output.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => "/".into(),
        Some(i) if !trimmed[..i].ends_with(':') && !trimmed[..i].ends_with(":/") => trimmed[..i].to_string(),
        _ => ".".into(),
    }
}

/// Errors about the baseline say so: "run directory x not found" alone would read as the
/// run being trained.
fn in_field(field: &str, e: Error) -> Error {
    match e {
        Error::Usage(m) => Error::spec(field, m),
        Error::Data(m) => Error::Data(format!("{field}: {m}")),
        other => other,
    }
}

/// Opens the spec's baseline, if any (exit 2 naming `baseline.run` or `baseline.production`
/// when it is missing or not a usable run).
pub fn resolve(checked: &CheckedSpec) -> Result<Option<Resolved>> {
    let Some(b) = &checked.spec.baseline else { return Ok(None) };
    let (field, path, production, expected) = match (&b.run, &b.production) {
        (Some(run), _) => ("baseline.run", PathBuf::from(run), None, None),
        (None, Some(name)) => {
            let root_text = b.root.clone().unwrap_or_else(|| parent_of(&checked.spec.output_dir()));
            let root_field = if b.root.is_some() { "baseline.root" } else { "baseline.production" };
            // A runs folder that does not exist yet holds no production run (a first run on a
            // fresh volume); anything else wrong with the root is an error.
            let absent = !crate::store::is_url(&root_text)
                && !std::path::Path::new(crate::store::local_path(&root_text)).exists();
            let root = if absent {
                None
            } else {
                Some(Root::open(&root_text).map_err(|e| in_field(root_field, e))?)
            };
            let pointer = match &root {
                Some(root) => production::current(root, name)?,
                None => None,
            };
            let shown = root.as_ref().map_or_else(|| format!("{root_text} (not found)"), Root::display);
            let (Some(root), Some(pointer)) = (root, pointer) else {
                if b.missing == MissingBaseline::Eligible {
                    return Ok(Some(Resolved::Missing { name: name.clone(), root: shown }));
                }
                return Err(Error::spec(
                    "baseline.production",
                    format!(
                        "{name} has no production run in {shown}; promote one with `trainyard runs promote {root_text} {name} RUN`, \
                         or set baseline.missing to \"eligible\" to let a first run through"
                    ),
                ));
            };
            let path = pointer.location(&root);
            ("baseline.production", path, Some(name.clone()), Some(pointer.run_id))
        }
        (None, None) => return Ok(None),
    };
    let files = RunFiles::open(&path).map_err(|e| in_field(field, e))?;
    let manifest: Manifest = serde_json::from_value(files.manifest().clone())
        .map_err(|e| Error::data(format!("{field}: {}: {e}", files.path(names::MANIFEST).display())))?;
    // The folder a pointer names may since hold another run (an --overwrite): comparing with
    // that one would pass it off as production.
    if let Some(expected) = expected.filter(|id| *id != manifest.run_id) {
        return Err(Error::spec(
            field,
            format!(
                "the production pointer names run {expected}, but {} now holds run {}; the production \
                 run was overwritten: promote a run again with `trainyard runs promote`",
                path.display(),
                manifest.run_id
            ),
        ));
    }
    let run = artifact::load_from(&files).map_err(|e| in_field(field, e))?;
    Ok(Some(Resolved::Run(Box::new(Baseline { run, run_id: manifest.run_id, path, production }))))
}

/// The columns the baseline reads, to be loaded beside the new run's.
pub fn extra_columns(baseline: Option<&Resolved>) -> crate::dataset::Extra {
    match baseline {
        Some(Resolved::Run(b)) => {
            let card = &b.run.card;
            // Codes and group keys come from frame columns; numeric features may be dense.
            let frame = card
                .pipeline
                .categorical
                .iter()
                .map(|c| c.column.clone())
                .chain(card.partition.as_ref().map(|p| p.by.clone()))
                .collect();
            crate::dataset::Extra {
                columns: card.input_columns(),
                frame,
                reader: format!("the baseline run {}", b.run_id),
            }
        }
        _ => crate::dataset::Extra::default(),
    }
}

/// Once the labels are known, before the fit: the gate must suit them, and the baseline must
/// predict the same classes (exit 2 otherwise).
pub fn check_against(
    checked: &CheckedSpec,
    baseline: Option<&Resolved>,
    labels: &crate::label::Labels,
) -> Result<()> {
    if let Some(g) = &checked.spec.gate {
        crate::gate::check(g, labels.classes() > 2)?;
    }
    if let Some(Resolved::Run(b)) = baseline {
        let (theirs, ours) = (b.run.card.labels.values(), labels.values());
        if theirs != ours {
            return Err(Error::data(format!(
                "baseline: run {} predicts the label classes {} but this run's are {}; a baseline must \
                 predict the same classes (and the same positive class)",
                b.run_id,
                serde_json::Value::from(theirs),
                serde_json::Value::from(ours)
            )));
        }
    }
    Ok(())
}

/// Both models on the same test rows: `metrics.json` `baseline`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// The baseline's run id.
    pub run_id: String,
    /// Where the baseline run is.
    pub path: String,
    /// The name it is the production run of, when resolved through the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<String>,
    /// Rows both models scored.
    pub rows: usize,
    /// The baseline's metrics on those rows.
    pub baseline: Evaluation,
    /// The new model's metrics on those rows.
    pub candidate: Evaluation,
    /// `candidate − baseline` for each headline metric.
    pub deltas: BTreeMap<String, f64>,
    /// DeLong's paired test of the ROC AUCs (binary; absent without two rows of each class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roc_auc_test: Option<DeLong>,
    /// Paired bootstrap intervals of `candidate − baseline`: log loss, accuracy, and PR AUC for
    /// binary labels.
    pub bootstrap: BTreeMap<String, Interval>,
    /// The bootstrap's seed (the spec's).
    pub seed: u64,
}

impl Comparison {
    /// Compares `candidate` with `baseline` on labels `y` (class indices; `classes` their values).
    pub fn compute(
        y: &[f32],
        baseline: &Scores,
        candidate: &Scores,
        classes: &[serde_json::Value],
        resamples: usize,
        seed: u64,
        progress: &Reporter,
    ) -> Comparison {
        let (base_eval, cand_eval) =
            (Evaluation::compute(y, baseline, classes), Evaluation::compute(y, candidate, classes));
        let base_headline: BTreeMap<String, f64> = base_eval.headline().into_iter().collect();
        // Undefined metrics (no positive among the rows) have no delta.
        let deltas = cand_eval
            .headline()
            .into_iter()
            .filter_map(|(k, v)| base_headline.get(&k).map(|b| (k, v - b)))
            .filter(|(_, d)| d.is_finite())
            .collect();
        let (a, b) = (baseline.values(), candidate.values());
        let mut roc_auc_test = None;
        let (names, differences): (Vec<&str>, Vec<paired::Difference>) = match candidate {
            Scores::Binary(_) => {
                roc_auc_test = paired::delong(y, a, b);
                let differences = vec![
                    paired::mean_difference(paired::log_losses(y, a), paired::log_losses(y, b)),
                    paired::average_precision_difference(y, a, b),
                    paired::mean_difference(paired::hits(y, a), paired::hits(y, b)),
                ];
                (vec!["log_loss", "pr_auc", "accuracy"], differences)
            }
            Scores::Multiclass { classes: k, .. } => {
                let differences = vec![
                    paired::mean_difference(
                        paired::multiclass_log_losses(y, a, *k),
                        paired::multiclass_log_losses(y, b, *k),
                    ),
                    paired::mean_difference(
                        paired::multiclass_hits(y, a, *k),
                        paired::multiclass_hits(y, b, *k),
                    ),
                ];
                (vec!["log_loss", "accuracy"], differences)
            }
        };
        let counter = Counter::new(progress, "evaluate", "baseline bootstrap resamples", resamples);
        let intervals = paired::bootstrap(y.len(), &differences, resamples, seed, &|| counter.tick());
        let bootstrap = names.into_iter().map(String::from).zip(intervals).collect();
        Comparison {
            run_id: String::new(),
            path: String::new(),
            production: None,
            rows: y.len(),
            baseline: base_eval,
            candidate: cand_eval,
            deltas,
            roc_auc_test,
            bootstrap,
            seed,
        }
    }

    /// The two-sided p-value of "no difference" in `metric`: DeLong's for ROC AUC of binary
    /// labels, the bootstrap's for the others it covers, `None` for a metric without a test.
    pub fn p_value(&self, metric: &str) -> Option<f64> {
        match (metric, &self.roc_auc_test) {
            ("roc_auc", Some(t)) if matches!(self.candidate, Evaluation::Binary(_)) => Some(t.p_value),
            ("roc_auc", _) => None,
            _ => self.bootstrap.get(metric).map(|i| i.p_value),
        }
    }

    /// The comparison's rows: metric, baseline, candidate, delta, 95% interval (DeLong for ROC
    /// AUC, else the paired bootstrap's), p-value; numbers formatted to 4 decimals.
    pub fn rows(&self) -> Vec<[String; 6]> {
        let base: BTreeMap<String, f64> = self.baseline.headline().into_iter().collect();
        self.candidate
            .headline()
            .into_iter()
            .map(|(name, new)| {
                let interval = match (name.as_str(), &self.roc_auc_test, self.bootstrap.get(&name)) {
                    ("roc_auc", Some(t), _) => {
                        let half = 1.959_963_984_540_054 * t.variance.sqrt();
                        format!("[{:+.4}, {:+.4}] DeLong", t.delta - half, t.delta + half)
                    }
                    (_, _, Some(i)) => format!("[{:+.4}, {:+.4}] boot", i.low, i.high),
                    _ => String::new(),
                };
                let p = self.p_value(&name).map(|p| format!("{p:.4}")).unwrap_or_default();
                let old = base.get(&name).copied().unwrap_or(f64::NAN);
                let delta = self.deltas.get(&name).copied().unwrap_or(f64::NAN);
                [name, format!("{old:.4}"), format!("{new:.4}"), format!("{delta:+.4}"), interval, p]
            })
            .collect()
    }

    /// Where the baseline came from: `<run id> (<path>, production run of <name>)`.
    pub fn source(&self) -> String {
        let via = self.production.as_ref().map(|n| format!(", production run of {n}")).unwrap_or_default();
        format!("{} ({}{via})", self.run_id, self.path)
    }

    /// The comparison as a table: metric, baseline, candidate, delta, 95% interval, p-value.
    pub fn describe(&self, s: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(s, "\nbaseline {}, on the same {} test rows", self.source(), self.rows);
        let _ = writeln!(
            s,
            "  {:<10} {:>9} {:>9} {:>9}  {:<26} {:>8}",
            "metric", "baseline", "new", "delta", "95% interval", "p-value"
        );
        for [name, old, new, delta, interval, p] in self.rows() {
            let line = format!("  {name:<10} {old:>9} {new:>9} {delta:>9}  {interval:<26} {p:>8}");
            let _ = writeln!(s, "{}", line.trim_end());
        }
        if let Some(i) = self.bootstrap.values().next() {
            let _ = writeln!(s, "  (paired bootstrap: {} resamples, seed {})", i.resamples, self.seed);
        }
    }
}

/// The baseline's scores on `frame` (the new run's test rows), with the columns it needs
/// checked first. A non-finite score is exit 2: the baseline's features hold values it cannot
/// score (NaN or infinite in a column the new model does not read).
pub fn score(baseline: &Baseline, frame: &crate::data::Frame) -> Result<Scores> {
    let scores = baseline.run.score(frame).map_err(|e| in_field("baseline", e))?;
    if scores.values().iter().any(|v| !v.is_finite()) {
        return Err(Error::data(format!(
            "baseline: run {} gives non-finite scores on the test rows; a column it reads ({}) holds NaN or infinite values",
            baseline.run_id,
            baseline.run.card.input_columns().join(", ")
        )));
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::parent_of;

    #[test]
    fn the_default_root_is_the_parent_of_the_output() {
        assert_eq!(parent_of("runs/fraud"), "runs");
        assert_eq!(parent_of("/srv/runs/fraud/"), "/srv/runs");
        assert_eq!(parent_of("fraud"), ".");
        assert_eq!(parent_of("s3://bucket/runs/fraud"), "s3://bucket/runs");
        assert_eq!(parent_of("s3://bucket/fraud"), "s3://bucket");
    }
}
