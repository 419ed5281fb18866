//! The sections of a report page, for one run or two compared, laid out by the template
//! `report.html.jinja`.
//!
//! Sections and charts have fixed element ids (`metrics`, `roc`, `calibration`, ...; in a
//! comparison the per-run sections end in `-a` and `-b`), which the tests and the browser check
//! look for.

use serde::Serialize;

use super::RunView;
use super::charts::{self, BLUE, Chart, Line, ORANGE};
use super::curves::{CURVE_TOLERANCE, SideCurves};
use crate::error::{Error, Result};
use crate::label::class_name;
use crate::metrics::Evaluation;
use crate::model::FitReport;

const TEMPLATE: &str = include_str!("report.html.jinja");

/// The whole page, as the template reads it.
#[derive(Debug, Serialize)]
struct Page {
    title: String,
    comparison: bool,
    runs: Vec<Header>,
    sections: Vec<Section>,
    generator: String,
}

/// One run's header card.
#[derive(Debug, Serialize)]
struct Header {
    label: String,
    fields: Vec<(String, String)>,
    phases: Vec<(String, String)>,
    inputs: Table,
}

/// A section: a title, a sentence on what it shows, charts, tables and notes.
#[derive(Debug, Default, Serialize)]
struct Section {
    id: String,
    title: String,
    intro: String,
    charts: Vec<Chart>,
    tables: Vec<Table>,
    notes: Vec<String>,
}

/// A table of preformatted cells.
#[derive(Debug, Default, Serialize)]
struct Table {
    id: String,
    caption: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// The page for `runs` (one run, or two compared).
pub fn render(runs: &[RunView]) -> Result<String> {
    let page = match runs {
        [run] => single(run)?,
        [a, b] => comparison(a, b)?,
        _ => return Err(Error::Internal(format!("a report shows one or two runs, not {}", runs.len()))),
    };
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| Error::Internal(format!("the report template: {e}")))?;
    let template =
        env.get_template("report.html").map_err(|e| Error::Internal(format!("the report template: {e}")))?;
    template
        .render(minijinja::value::Serde(&page))
        .map_err(|e| Error::Internal(format!("rendering the report: {e}")))
}

fn single(run: &RunView) -> Result<Page> {
    let mut sections = vec![metrics_single(run)];
    match run.curves.as_ref().and_then(|c| c.test.as_ref().map(|t| (t, c.train.as_ref()))) {
        Some((test, train)) => {
            sections.push(curves_section(&[("test", BLUE, test, train)])?);
            sections.push(operating_points(&[("", test)]));
            let mut cal = vec![("test", BLUE, test.calibration.as_slice())];
            let mut by_rank = vec![test.calibration_by_rank.as_slice()];
            if let Some(train) = train {
                cal.push(("train", ORANGE, train.calibration.as_slice()));
                by_rank.push(train.calibration_by_rank.as_slice());
            }
            sections.push(calibration(&cal, &by_rank, &format!("test ECE {}", num(test_ece(run))))?);
            sections.push(scores(run, &[("", test)])?);
        }
        None if binary(run) => sections.push(Section {
            id: "curves".into(),
            title: "Curves".into(),
            notes: vec![format!(
                "{} has no curves.json: it was written by a trainyard older than the report; retrain \
                 it to get ROC, precision-recall, calibration and score charts.",
                run.dir
            )],
            ..Default::default()
        }),
        None => {}
    }
    sections.extend(model_sections(run, "", "")?);
    Ok(Page {
        title: format!("trainyard report: {}", run.manifest.name),
        comparison: false,
        runs: vec![header(run, "run")],
        sections,
        generator: generator(),
    })
}

fn comparison(a: &RunView, b: &RunView) -> Result<Page> {
    let mut sections = vec![metrics_compared(a, b)];
    let side = |r: &RunView| r.curves.as_ref().and_then(|c| c.test.clone());
    if let (Some(ta), Some(tb)) = (side(a), side(b)) {
        sections.push(curves_section(&[("A test", BLUE, &ta, None), ("B test", ORANGE, &tb, None)])?);
        sections.push(operating_points(&[("A", &ta), ("B", &tb)]));
        sections.push(calibration(
            &[("A test", BLUE, ta.calibration.as_slice()), ("B test", ORANGE, tb.calibration.as_slice())],
            &[ta.calibration_by_rank.as_slice(), tb.calibration_by_rank.as_slice()],
            &format!("test ECE: A {}, B {}", num(test_ece(a)), num(test_ece(b))),
        )?);
        let mut s = scores(a, &[("-a", &ta)])?;
        s.charts.extend(scores(b, &[("-b", &tb)])?.charts);
        sections.push(s);
    }
    sections.extend(model_sections(a, "-a", "Run A: ")?);
    sections.extend(model_sections(b, "-b", "Run B: ")?);
    Ok(Page {
        title: format!("trainyard report: {} against {}", b.manifest.name, a.manifest.name),
        comparison: true,
        runs: vec![header(a, "A"), header(b, "B")],
        sections,
        generator: generator(),
    })
}

fn generator() -> String {
    format!("trainyard {} (commit {})", env!("CARGO_PKG_VERSION"), env!("TRAINYARD_GIT_COMMIT"))
}

fn binary(run: &RunView) -> bool {
    matches!(run.metrics.test, Evaluation::Binary(_))
}

fn test_ece(run: &RunView) -> f64 {
    match &run.metrics.test {
        Evaluation::Binary(m) => m.ece,
        Evaluation::Multiclass(_) => f64::NAN,
    }
}

/// A number to 4 decimals, `n/a` when undefined.
fn num(v: f64) -> String {
    if v.is_finite() { format!("{v:.4}") } else { "n/a".into() }
}

fn signed(v: f64) -> String {
    if v.is_finite() { format!("{v:+.4}") } else { "n/a".into() }
}

fn share(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v < 0.01 && v > 0.0 {
        format!("{:.3}%", 100.0 * v)
    } else {
        format!("{:.1}%", 100.0 * v)
    }
}

fn seconds(v: f64) -> String {
    format!("{v:.2} s")
}

fn header(run: &RunView, label: &str) -> Header {
    let m = &run.manifest;
    let (train_rows, test_rows) = match &m.summary {
        Some(s) => (s.train_rows.to_string(), s.test_rows.to_string()),
        None => ("n/a".into(), run.metrics.test.rows().to_string()),
    };
    let fields = vec![
        ("name".into(), m.name.clone()),
        ("run id".into(), m.run_id.clone()),
        ("status".into(), m.status.clone()),
        ("model".into(), run.model_kind()),
        ("started".into(), m.started_at.clone()),
        ("device".into(), format!("{} ({} threads)", m.device, m.threads)),
        ("rows".into(), format!("{train_rows} train, {test_rows} test")),
        ("data fingerprint".into(), run.data_fingerprint()),
        ("spec sha256".into(), m.spec_sha256.clone()),
        ("seed".into(), m.seed.to_string()),
        (
            "trainyard".into(),
            format!("{} (commit {})", m.trainyard_version, m.git_commit.chars().take(12).collect::<String>()),
        ),
        ("path".into(), run.dir.clone()),
    ];
    let p = &run.metrics.phases;
    let mut phases = vec![
        ("load".to_string(), seconds(p.load)),
        ("features".into(), seconds(p.features)),
        ("fit".into(), seconds(p.fit)),
    ];
    if let Some(g) = p.group_selection {
        phases.push(("group selection".into(), seconds(g)));
    }
    phases.push(("evaluate".into(), seconds(p.evaluate)));
    phases.push(("write".into(), seconds(p.write)));
    // At training time the report is drawn before its own seconds are known.
    match p.report {
        Some(r) => {
            phases.push(("report".into(), seconds(r)));
            phases.push(("total".into(), seconds(p.total)));
        }
        None => phases.push(("total before the report".into(), seconds(p.total))),
    }
    let inputs = Table {
        id: format!("inputs-{}", label.to_lowercase()),
        caption: "input files".into(),
        header: ["role", "path", "bytes", "rows", "fingerprint"].map(String::from).to_vec(),
        rows: m
            .inputs
            .iter()
            .map(|f| {
                vec![
                    f.role.clone(),
                    f.path.display().to_string(),
                    f.bytes.to_string(),
                    f.rows.to_string(),
                    f.short_fingerprint(),
                ]
            })
            .collect(),
    };
    Header { label: label.into(), fields, phases, inputs }
}

/// A split's metrics by name, counts included.
fn named(e: &Evaluation) -> Vec<(&'static str, f64)> {
    match e {
        Evaluation::Binary(m) => vec![
            ("rows", m.rows as f64),
            ("positives", m.positives as f64),
            ("ROC AUC", m.roc_auc),
            ("PR AUC (average precision)", m.pr_auc),
            ("log loss", m.log_loss),
            ("Brier", m.brier),
            ("accuracy at 0.5", m.accuracy),
            ("precision at 0.5", m.precision),
            ("recall at 0.5", m.recall),
            ("F1 at 0.5", m.f1),
            ("expected calibration error", m.ece),
        ],
        Evaluation::Multiclass(m) => vec![
            ("rows", m.rows as f64),
            ("accuracy", m.accuracy),
            ("log loss", m.log_loss),
            ("Brier", m.brier),
            ("macro F1", m.macro_f1),
            ("weighted F1", m.weighted_f1),
            ("ROC AUC (one-vs-rest, macro)", m.roc_auc_ovr_macro),
        ],
    }
}

fn is_count(name: &str) -> bool {
    matches!(name, "rows" | "positives")
}

fn cell(name: &str, v: f64) -> String {
    if is_count(name) { format!("{v:.0}") } else { num(v) }
}

fn fit_note(fit: &FitReport) -> String {
    match fit {
        FitReport::Logistic(f) => format!(
            "fit: {} L-BFGS iterations ({} passes over the train rows), converged: {} ({:?}), objective {:.6}",
            f.iterations, f.objective_passes, f.converged, f.stop, f.final_objective
        ),
        FitReport::Mlp(f) => format!(
            "fit: {} epochs of {} steps in all, kept epoch {}, early stopped: {}, {} parameters, {:.0} samples/s",
            f.epochs, f.steps, f.best_epoch, f.converged, f.parameters, f.samples_per_second
        ),
    }
}

fn metrics_single(run: &RunView) -> Section {
    let (train, test) = (named(&run.metrics.train), named(&run.metrics.test));
    let rows = train
        .iter()
        .zip(&test)
        .map(|((name, tr), (_, te))| vec![name.to_string(), cell(name, *tr), cell(name, *te)])
        .collect();
    Section {
        id: "metrics".into(),
        title: "Metrics".into(),
        intro: "Train and test rows, as metrics.json records them.".into(),
        tables: vec![Table {
            id: "metrics-table".into(),
            caption: "train against test".into(),
            header: ["metric", "train", "test"].map(String::from).to_vec(),
            rows,
        }],
        notes: vec![fit_note(&run.metrics.fit)],
        ..Default::default()
    }
}

fn metrics_compared(a: &RunView, b: &RunView) -> Section {
    let (ta, tb) = (named(&a.metrics.test), named(&b.metrics.test));
    let mut notes =
        vec![format!("A: {}", fit_note(&a.metrics.fit)), format!("B: {}", fit_note(&b.metrics.fit))];
    if ta.len() != tb.len() {
        notes.push(
            "The runs' labels differ (binary against multiclass): only shared metrics are shown.".into(),
        );
    }
    let rows = ta
        .iter()
        .filter_map(|(name, va)| tb.iter().find(|(n, _)| n == name).map(|(_, vb)| (name, *va, *vb)))
        .map(|(name, va, vb)| {
            let delta = if is_count(name) { format!("{:+.0}", vb - va) } else { signed(vb - va) };
            vec![name.to_string(), cell(name, va), cell(name, vb), delta]
        })
        .collect();
    if a.data_fingerprint() != b.data_fingerprint() {
        notes.push(
            "The runs read different data (their data fingerprints differ): the test rows are not the \
             same, so the deltas mix model and data changes."
                .into(),
        );
    }
    Section {
        id: "metrics".into(),
        title: "Metrics".into(),
        intro: "Test metrics of both runs; the delta is B − A.".into(),
        tables: vec![Table {
            id: "metrics-table".into(),
            caption: "test rows".into(),
            header: ["metric", "A", "B", "B − A"].map(String::from).to_vec(),
            rows,
        }],
        notes,
        ..Default::default()
    }
}

fn curve_caption(c: &SideCurves) -> String {
    format!(
        "{} of {} vertices drawn (area within {:.0e} of the exact curve's)",
        c.roc.points.len(),
        c.roc.exact_vertices,
        c.roc.max_area_error
    )
}

/// ROC and precision-recall charts: per entry (label, colour, test curves, train curves).
fn curves_section(sides: &[(&str, charts::RGBColor, &SideCurves, Option<&SideCurves>)]) -> Result<Section> {
    let mut roc_lines = Vec::new();
    let mut pr_lines = Vec::new();
    for &(label, color, test, train) in sides {
        roc_lines.push(Line {
            label: label.into(),
            color,
            dashed: false,
            points: &test.roc.points,
            steps: false,
        });
        pr_lines.push(Line {
            label: label.into(),
            color,
            dashed: false,
            points: &test.pr.points,
            steps: true,
        });
        if let Some(train) = train {
            roc_lines.push(Line {
                label: "train".into(),
                color,
                dashed: true,
                points: &train.roc.points,
                steps: false,
            });
            pr_lines.push(Line {
                label: "train".into(),
                color,
                dashed: true,
                points: &train.pr.points,
                steps: true,
            });
        }
    }
    let chance = [[0.0, 0.0], [1.0, 1.0]];
    roc_lines.push(Line {
        label: "chance".into(),
        color: charts::GREY,
        dashed: true,
        points: &chance,
        steps: false,
    });
    let (_, _, first, _) = sides[0];
    let rate = first.positives as f64 / first.rows.max(1) as f64;
    let no_skill = [[0.0, rate], [1.0, rate]];
    pr_lines.push(Line {
        label: "no skill".into(),
        color: charts::GREY,
        dashed: true,
        points: &no_skill,
        steps: false,
    });
    let roc = charts::lines(
        "roc",
        "ROC curve",
        &if sides.iter().any(|s| s.3.is_some()) {
            format!("Test rows solid, train rows dashed; {}.", curve_caption(first))
        } else {
            format!("Test rows of each run; run A: {}.", curve_caption(first))
        },
        ("false positive rate", "true positive rate"),
        (0.0, 1.0),
        (0.0, 1.0),
        &roc_lines,
        None,
    )?;
    let pr = charts::lines(
        "pr",
        "Precision-recall curve",
        &format!(
            "Precision among the rows scored at or above each threshold; the grey line is the share of \
             positives ({}), what flagging at random gives.",
            share(rate)
        ),
        ("recall", "precision"),
        (0.0, 1.0),
        (0.0, 1.0),
        &pr_lines,
        None,
    )?;
    Ok(Section {
        id: "curves".into(),
        title: "ROC and precision-recall".into(),
        intro: format!(
            "Curves keep the corners of the exact step functions; dropped stretches change the area by \
             at most {CURVE_TOLERANCE:.0e}."
        ),
        charts: vec![roc, pr],
        ..Default::default()
    })
}

/// The operating-point tables: per entry (id suffix or run label, test curves).
fn operating_points(sides: &[(&str, &SideCurves)]) -> Section {
    let tables = sides
        .iter()
        .map(|(label, c)| Table {
            id: if label.is_empty() {
                "operating-points-table".into()
            } else {
                format!("operating-points-{}", label.to_lowercase())
            },
            caption: if label.is_empty() { "test rows".into() } else { format!("run {label}, test rows") },
            header: [
                "flag",
                "threshold (score ≥)",
                "rows flagged",
                "share flagged",
                "precision",
                "recall",
                "false positive rate",
            ]
            .map(String::from)
            .to_vec(),
            rows: c
                .operating_points
                .iter()
                .map(|o| {
                    vec![
                        o.rule.clone(),
                        if o.threshold.is_finite() { format!("{:.6}", o.threshold) } else { "n/a".into() },
                        o.flagged.to_string(),
                        share(o.flagged_share),
                        share(o.precision),
                        share(o.recall),
                        share(o.false_positive_rate),
                    ]
                })
                .collect(),
        })
        .collect();
    Section {
        id: "operating-points".into(),
        title: "Operating points".into(),
        intro: "What flagging the highest-scored rows gives at a few alert budgets, for choosing a \
                threshold; rows tied at the threshold are flagged together."
            .into(),
        tables,
        ..Default::default()
    }
}

/// The calibration charts: per entry (label, colour, equal-width bins), and each entry's
/// equal-count bins in `by_rank`.
fn calibration(
    runs: &[(&str, charts::RGBColor, &[super::CalibrationBin])],
    by_rank: &[&[super::CalibrationBin]],
    ece: &str,
) -> Result<Section> {
    Ok(Section {
        id: "calibration".into(),
        title: "Calibration".into(),
        intro: format!("Whether a score of p means a share p of positives ({ece})."),
        charts: vec![
            charts::calibration("calibration-chart", "Reliability diagram", runs)?,
            charts::reliability_by_rank(
                "calibration-by-rank",
                "Reliability by score rank",
                &runs
                    .iter()
                    .zip(by_rank)
                    .map(|(&(label, color, _), &bins)| (label, color, bins))
                    .collect::<Vec<_>>(),
            )?,
        ],
        ..Default::default()
    })
}

/// Score histograms: per entry (id suffix, test curves).
fn scores(run: &RunView, sides: &[(&str, &SideCurves)]) -> Result<Section> {
    let names: Vec<String> = run.classes.iter().map(class_name).collect();
    let (neg, pos) = match names.as_slice() {
        [neg, pos] => (format!("class {neg}"), format!("class {pos}")),
        _ => ("negative".into(), "positive".into()),
    };
    let mut charts_out = Vec::new();
    for (suffix, c) in sides {
        let title = if suffix.is_empty() {
            "Test scores by class".to_string()
        } else {
            format!("Run {}: test scores by class", suffix.trim_start_matches('-').to_uppercase())
        };
        charts_out.push(charts::histogram(
            &format!("scores{suffix}"),
            &title,
            &c.histogram.logit_edges,
            &[(&neg, BLUE, &c.histogram.negatives), (&pos, ORANGE, &c.histogram.positives)],
        )?);
    }
    Ok(Section {
        id: "scores".into(),
        title: "Score distributions".into(),
        intro: "How the scores of each class spread; the x axis is on the logit scale, labelled in \
                probabilities."
            .into(),
        charts: charts_out,
        ..Default::default()
    })
}

/// The sections that depend on the model and the spec: coefficients, training curves, groups,
/// confusion matrix, baseline, promotion.
fn model_sections(run: &RunView, suffix: &str, prefix: &str) -> Result<Vec<Section>> {
    let mut out = Vec::new();
    if !run.coefficients.is_empty() {
        out.push(Section {
            id: format!("coefficients{suffix}"),
            title: format!("{prefix}Largest coefficients"),
            intro: "Coefficients of the standardized design: the change in log-odds per standard deviation \
                    of a numeric column, or for a categorical level against the average row."
                .into(),
            charts: vec![charts::bars(
                &format!("coefficients-chart{suffix}"),
                "Largest coefficients by magnitude",
                "Positive (orange) raise the score, negative (blue) lower it.",
                "coefficient",
                &run.coefficients,
            )?],
            ..Default::default()
        });
    }
    if let FitReport::Mlp(f) = &run.metrics.fit {
        out.push(training(f, suffix, prefix)?);
    }
    if let Some(p) = &run.metrics.partition {
        out.push(groups(run, p, suffix, prefix)?);
    }
    if let Evaluation::Multiclass(m) = &run.metrics.test {
        let names: Vec<String> = m.per_class.iter().map(|c| class_name(&c.class)).collect();
        out.push(Section {
            id: format!("confusion{suffix}"),
            title: format!("{prefix}Confusion matrix and per-class metrics"),
            intro: "Test rows by true class (rows) and most probable class (columns); each row is shaded \
                    by its share of the class's rows."
                .into(),
            charts: vec![charts::heatmap(
                &format!("confusion-chart{suffix}"),
                "Confusion matrix (test rows)",
                "Counts; the diagonal is rows classified correctly.",
                &names,
                &m.confusion,
            )?],
            tables: vec![Table {
                id: format!("per-class{suffix}"),
                caption: "per class, test rows".into(),
                header: ["class", "rows", "precision", "recall", "F1", "ROC AUC (one-vs-rest)"]
                    .map(String::from)
                    .to_vec(),
                rows: m
                    .per_class
                    .iter()
                    .map(|c| {
                        vec![
                            class_name(&c.class),
                            c.support.to_string(),
                            num(c.precision),
                            num(c.recall),
                            num(c.f1),
                            num(c.roc_auc),
                        ]
                    })
                    .collect(),
            }],
            ..Default::default()
        });
    }
    if let Some(c) = &run.metrics.baseline {
        out.push(Section {
            id: format!("baseline{suffix}"),
            title: format!("{prefix}Against the baseline"),
            intro: format!("The baseline {} scored the same {} test rows.", c.source(), c.rows),
            tables: vec![Table {
                id: format!("baseline-table{suffix}"),
                caption: "new minus baseline, with 95% intervals".into(),
                header: ["metric", "baseline", "new", "delta", "95% interval", "p-value"]
                    .map(String::from)
                    .to_vec(),
                rows: c.rows().into_iter().map(|r| r.to_vec()).collect(),
            }],
            ..Default::default()
        });
    }
    if let Some(p) = &run.manifest.promotion {
        out.push(Section {
            id: format!("promotion{suffix}"),
            title: format!("{prefix}Promotion gate"),
            intro: if p.eligible {
                "Eligible for promotion.".into()
            } else {
                "Not eligible for promotion.".into()
            },
            notes: p.reasons.clone(),
            ..Default::default()
        });
    }
    Ok(out)
}

fn training(f: &crate::mlp::MlpReport, suffix: &str, prefix: &str) -> Result<Section> {
    let epoch = |e: &crate::mlp::EpochRecord| f64::from(e.epoch);
    let train: Vec<[f64; 2]> = f.history.iter().map(|e| [epoch(e), e.train_loss]).collect();
    // An epoch's validation AUC is NaN when its validation rows hold one class: not drawn.
    let finite =
        |e: &crate::mlp::EpochRecord, v: Option<f64>| v.filter(|v| v.is_finite()).map(|v| [epoch(e), v]);
    let valid: Vec<[f64; 2]> = f.history.iter().filter_map(|e| finite(e, e.validation_loss)).collect();
    let auc: Vec<[f64; 2]> = f.history.iter().filter_map(|e| finite(e, e.validation_auc)).collect();
    let last = f.history.last().map_or(1.0, epoch).max(2.0);
    let losses = train.iter().chain(&valid).map(|p| p[1]).filter(|v| v.is_finite());
    let (lo, hi) = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let first = f.history.first().map_or(1.0, epoch);
    let kept = f64::from(f.best_epoch);
    let mut lines = vec![Line {
        label: "train loss (dropout on)".into(),
        color: ORANGE,
        dashed: false,
        points: &train,
        steps: false,
    }];
    if !valid.is_empty() {
        lines.push(Line {
            label: "validation loss".into(),
            color: BLUE,
            dashed: false,
            points: &valid,
            steps: false,
        });
    }
    let mut out = vec![charts::lines(
        &format!("training-loss{suffix}"),
        "Loss per epoch",
        "The dashed line marks the epoch whose weights were kept.",
        ("epoch", "log loss"),
        (first, last),
        ((lo - pad).max(0.0), hi + pad),
        &lines,
        Some((kept, "kept epoch")),
    )?];
    if !auc.is_empty() {
        let (alo, ahi) = auc.iter().fold((1.0f64, 0.0f64), |(lo, hi), p| (lo.min(p[1]), hi.max(p[1])));
        let pad = ((ahi - alo) * 0.1).max(2e-3);
        out.push(charts::lines(
            &format!("training-auc{suffix}"),
            "Validation ROC AUC per epoch",
            "On the rows held out for early stopping (one-vs-rest macro for multiclass).",
            ("epoch", "validation ROC AUC"),
            (first, last),
            ((alo - pad).max(0.0), (ahi + pad).min(1.0)),
            &[Line {
                label: "validation ROC AUC".into(),
                color: BLUE,
                dashed: false,
                points: &auc,
                steps: false,
            }],
            Some((kept, "kept epoch")),
        )?);
    }
    let mut notes = Vec::new();
    if valid.is_empty() {
        notes.push("Early stopping was off: no validation rows, so the last epoch was kept.".into());
    }
    Ok(Section {
        id: format!("training{suffix}"),
        title: format!("{prefix}Training curves"),
        intro: format!(
            "{} epochs, kept epoch {}; a validation loss rising while the train loss falls is overfitting.",
            f.epochs, f.best_epoch
        ),
        charts: out,
        notes,
        ..Default::default()
    })
}

fn groups(
    run: &RunView,
    p: &crate::partition::PartitionReport,
    suffix: &str,
    prefix: &str,
) -> Result<Section> {
    let (g, c) = (&p.generic, &p.composition);
    let row = |name: &str, generic: f64, comp: f64| {
        vec![name.to_string(), num(generic), num(comp), signed(comp - generic)]
    };
    let headline = Table {
        id: format!("groups-table{suffix}"),
        caption: "test rows, generic model alone against the composition".into(),
        header: ["metric", "generic", "composition", "composition − generic"].map(String::from).to_vec(),
        rows: vec![
            row("ROC AUC", g.roc_auc, c.roc_auc),
            row("PR AUC", g.pr_auc, c.pr_auc),
            row("log loss", g.log_loss, c.log_loss),
            row("group-mean ROC AUC", g.group_mean_roc_auc, c.group_mean_roc_auc),
            row("group-mean log loss", g.group_mean_log_loss, c.group_mean_log_loss),
        ],
    };
    let mut charts_out = Vec::new();
    let mut notes = vec![format!(
        "{} train groups: {} keep a model of their own, {} fall back to the generic model ({} dropped by the \
         thresholds, {} by selection); test rows scored by a group model {}, by the generic model {}.",
        p.train_groups,
        p.groups_kept,
        p.train_groups.saturating_sub(p.groups_kept),
        p.groups_dropped_by_thresholds,
        p.groups_dropped_by_selection,
        p.test_rows_group_model,
        p.test_rows_generic
    )];
    if let Some(curves) = &run.curves {
        if let (Some(test), Some(generic)) = (&curves.test, &curves.generic_test) {
            charts_out.push(charts::lines(
                &format!("groups-roc{suffix}"),
                "ROC: composition against the generic model",
                "Test rows; the composition scores each group with its own model where it kept one.",
                ("false positive rate", "true positive rate"),
                (0.0, 1.0),
                (0.0, 1.0),
                &[
                    Line {
                        label: "composition".into(),
                        color: BLUE,
                        dashed: false,
                        points: &test.roc.points,
                        steps: false,
                    },
                    Line {
                        label: "generic".into(),
                        color: ORANGE,
                        dashed: false,
                        points: &generic.roc.points,
                        steps: false,
                    },
                ],
                None,
            )?);
        }
        let points: Vec<(f64, f64, bool)> = curves
            .groups
            .iter()
            .filter(|g| g.roc_auc_gain.is_finite())
            .map(|g| (g.test_rows as f64, g.roc_auc_gain, g.kept))
            .collect();
        if !points.is_empty() {
            charts_out.push(charts::groups(
                &format!("groups-gain{suffix}"),
                "Per-group ROC AUC gain against group size",
                "Each point is a group with both classes in its test rows; groups on the generic model sit at 0.",
                "test ROC AUC, composition − generic",
                &points,
            )?);
        }
        if curves.groups_with_test_rows > curves.groups.len() {
            notes.push(format!(
                "The chart shows the {} largest of {} groups with test rows.",
                curves.groups.len(),
                curves.groups_with_test_rows
            ));
        }
    }
    Ok(Section {
        id: format!("groups{suffix}"),
        title: format!("{prefix}Per-group models"),
        intro: format!("One model per {:?} next to the generic one, composed.", p.by),
        charts: charts_out,
        tables: vec![headline],
        notes,
    })
}
