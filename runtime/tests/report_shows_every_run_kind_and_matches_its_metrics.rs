//! `report.html`: every run directory gets one, for each run kind the sections and charts that
//! kind has are present, the drawn curves agree with `metrics.json` (the area under the ROC
//! polyline as drawn, read back from its pixels, is the test AUC to 1e-3; the calibration bins
//! give the reported ECE; the confusion matrix's cells add up to the test rows), the page is
//! well-formed XML that references nothing outside itself, and `trainyard report` draws it
//! again, compares two runs, and refuses what is not a run with exit 2.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{datasets_dir, example_spec, outcome};
use quick_xml::events::{BytesStart, Event};
use serde_json::{Value, json};

/// One element of the page: its tag, attributes, text and parent.
#[derive(Debug)]
struct Node {
    tag: String,
    attrs: HashMap<String, String>,
    text: String,
    parent: Option<usize>,
}

/// The page parsed as XML: a parse error (a tag left open, a bad entity) fails the test.
struct Page {
    nodes: Vec<Node>,
}

impl Page {
    fn parse(html: &str) -> Page {
        let mut reader = quick_xml::Reader::from_str(html);
        let mut nodes: Vec<Node> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        let node = |e: &BytesStart<'_>, parent: Option<usize>| Node {
            tag: String::from_utf8(e.name().as_ref().to_vec()).unwrap(),
            attrs: e
                .attributes()
                .map(|a| {
                    let a = a.unwrap();
                    (
                        String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned(),
                    )
                })
                .collect(),
            text: String::new(),
            parent,
        };
        loop {
            match reader.read_event().unwrap_or_else(|e| panic!("report.html is not well-formed: {e}")) {
                Event::Start(e) => {
                    nodes.push(node(&e, open.last().copied()));
                    open.push(nodes.len() - 1);
                }
                Event::Empty(e) => nodes.push(node(&e, open.last().copied())),
                Event::End(_) => {
                    open.pop();
                }
                Event::Text(t) => {
                    if let Some(&i) = open.last() {
                        nodes[i].text.push_str(&t.decode().unwrap());
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert!(open.is_empty(), "elements left open");
        Page { nodes }
    }

    fn by_id(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.attrs.get("id").is_some_and(|v| v == id))
    }

    fn has(&self, id: &str) -> bool {
        self.by_id(id).is_some()
    }

    /// Elements with `tag` inside element `root`.
    fn within(&self, root: usize, tag: &str) -> Vec<&Node> {
        let inside = |mut i: usize| loop {
            match self.nodes[i].parent {
                Some(p) if p == root => return true,
                Some(p) => i = p,
                None => return false,
            }
        };
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].tag == tag && inside(i))
            .map(|i| &self.nodes[i])
            .collect()
    }

    fn figure(&self, id: &str) -> usize {
        let i = self.by_id(id).unwrap_or_else(|| panic!("no element {id:?}"));
        assert_eq!(self.nodes[i].tag, "figure", "{id}");
        assert_eq!(self.within(i, "svg").len(), 1, "{id} holds one chart");
        i
    }
}

/// The vertices of the longest polyline of `color` in `figure`, mapped from drawing
/// coordinates back to data through the figure's frame. plotters floors (or ceils, on a
/// reversed axis) a value to its pixel; half a pixel back the other way undoes the bias.
fn drawn_curve(page: &Page, figure: usize, color: &str) -> Vec<(f64, f64)> {
    let f = &page.nodes[figure].attrs;
    let frame: Vec<f64> = f["data-frame"].split(' ').map(|v| v.parse().unwrap()).collect();
    let range: Vec<f64> = f["data-range"].split(' ').map(|v| v.parse().unwrap()).collect();
    let line = page
        .within(figure, "polyline")
        .into_iter()
        .filter(|p| p.attrs.get("stroke").is_some_and(|s| s.eq_ignore_ascii_case(color)))
        .max_by_key(|p| p.attrs["points"].len())
        .unwrap_or_else(|| panic!("no {color} polyline"));
    let back = |px: f64, lo_px: f64, hi_px: f64, lo: f64, hi: f64| {
        let len = hi_px - lo_px;
        let v = ((px - lo_px + 0.5 * len.signum()) / len).clamp(0.0, 1.0);
        lo + v * (hi - lo)
    };
    line.attrs["points"]
        .split_whitespace()
        .map(|xy| {
            let (x, y) = xy.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            (back(x, frame[0], frame[2], range[0], range[1]), back(y, frame[1], frame[3], range[2], range[3]))
        })
        .collect()
}

fn trapezoid(points: &[(f64, f64)]) -> f64 {
    points.windows(2).map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0).sum()
}

/// Reads a run's report and checks what every page has: well-formed, self-contained, the
/// header and the metrics section, and `report` among metrics.json's phases.
fn report_of(run: &Path) -> (Page, Value, Value) {
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    let page = self_contained(&html);
    assert!(page.has("runs") && page.has("metrics") && page.has("metrics-table"));
    assert!(metrics["phases"]["report"].as_f64().unwrap() > 0.0);
    for file in ["report.html", "curves.json"] {
        assert!(manifest["artifacts"][file].is_string(), "the manifest records {file}");
    }
    let header = page.by_id("run-run").unwrap();
    let fields: Vec<&str> = page.within(header, "dd").iter().map(|d| d.text.as_str()).collect();
    assert!(fields.contains(&manifest["run_id"].as_str().unwrap()), "{fields:?}");
    assert!(fields.contains(&manifest["spec_sha256"].as_str().unwrap()));
    (page, metrics, manifest)
}

/// Parses `html` and checks it fetches nothing: no scripts, no linked files, no URLs in
/// attributes or styles other than the SVG namespace and in-page anchors.
fn self_contained(html: &str) -> Page {
    let page = Page::parse(html);
    for n in &page.nodes {
        assert!(
            !matches!(n.tag.as_str(), "script" | "link" | "img" | "iframe" | "object" | "embed"),
            "<{}>",
            n.tag
        );
        for (k, v) in &n.attrs {
            let external = v.contains("://") && !(k == "xmlns" && v == "http://www.w3.org/2000/svg");
            assert!(!external, "{k}={v:?} on <{}>", n.tag);
            if matches!(k.as_str(), "href" | "src" | "xlink:href") {
                assert!(v.starts_with('#'), "{k}={v:?}");
            }
        }
        if n.tag == "style" {
            assert!(!n.text.contains("url(") && !n.text.contains("@import"), "the style fetches something");
        }
    }
    page
}

fn train(tmp: &Path, spec: &Path, name: &str) -> PathBuf {
    let run = tmp.join("runs").join(name);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["train", spec.to_str().unwrap(), "--output", run.to_str().unwrap(), "--log-format", "json"])
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
    run
}

fn trainyard(args: &[&str], dir: &Path) -> (i32, String, String) {
    outcome(
        &std::process::Command::new(env!("CARGO_BIN_EXE_trainyard"))
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap(),
    )
}

/// The binary sections every binary run has, checked against metrics.json and curves.json.
fn binary_sections(page: &Page, metrics: &Value, run: &Path) {
    for id in ["curves", "roc", "pr", "operating-points", "operating-points-table", "calibration", "scores"] {
        assert!(page.has(id), "no {id}");
    }
    let auc = metrics["test"]["roc_auc"].as_f64().unwrap();
    let drawn = trapezoid(&drawn_curve(page, page.figure("roc"), "#1F5FBF"));
    assert!((drawn - auc).abs() < 1e-3, "drawn ROC area {drawn}, test AUC {auc}");
    // The precision-recall curve is drawn as steps: the area under its vertices is the average
    // precision.
    let ap = metrics["test"]["pr_auc"].as_f64().unwrap();
    let drawn = trapezoid(&drawn_curve(page, page.figure("pr"), "#1F5FBF"));
    assert!((drawn - ap).abs() < 1e-3, "drawn precision-recall area {drawn}, test average precision {ap}");
    let curves: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("curves.json")).unwrap()).unwrap();
    let test = &curves["test"];
    let roc: Vec<(f64, f64)> = test["roc"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    let bound = test["roc"]["max_area_error"].as_f64().unwrap();
    assert!((trapezoid(&roc) - auc).abs() <= bound, "curves.json ROC area against {auc}");
    // The reliability bins are the ECE's bins.
    let bins = test["calibration"].as_array().unwrap();
    let rows: f64 = bins.iter().map(|b| b["rows"].as_f64().unwrap()).sum();
    let ece: f64 = bins
        .iter()
        .filter(|b| b["rows"].as_u64().unwrap() > 0)
        .map(|b| {
            b["rows"].as_f64().unwrap() / rows
                * (b["positive_rate"].as_f64().unwrap() - b["mean_score"].as_f64().unwrap()).abs()
        })
        .sum();
    assert!((ece - metrics["test"]["ece"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(rows as u64, metrics["test"]["rows"].as_u64().unwrap());
    // One point per equal-count bin, test and train, on the log-scale reliability chart.
    let by_rank = |side: &str| curves[side]["calibration_by_rank"].as_array().unwrap().len();
    assert_eq!(by_rank("test"), 20);
    let points = page.within(page.figure("calibration-by-rank"), "circle").len();
    assert_eq!(points, by_rank("test") + by_rank("train"));
    // The train curve is drawn dashed beside the test curve: many short pieces of the same colour.
    let pieces =
        page.within(page.figure("roc"), "polyline").iter().filter(|p| p.attrs["stroke"] == "#1F5FBF").count();
    assert!(pieces > 10, "{pieces} blue polylines");
    // One operating-point row per alert budget that flags a distinct number of rows, plus 0.5.
    let table = page.by_id("operating-points-table").unwrap();
    let rows = page.within(table, "tr").len() - 1;
    assert_eq!(rows, test["operating_points"].as_array().unwrap().len());
}

#[test]
fn logistic_mlp_and_partitioned_runs_draw_their_sections() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    let logistic = train(t, &example_spec(t, "logistic", |_| {}), "logistic");
    let (page, metrics, _) = report_of(&logistic);
    binary_sections(&page, &metrics, &logistic);
    assert!(page.has("coefficients") && page.has("coefficients-chart"));
    let bars = page.within(page.figure("coefficients-chart"), "rect").len();
    assert!(bars >= 20, "{bars} rectangles for 20 coefficients");
    assert!(!page.has("training") && !page.has("groups") && !page.has("confusion"));

    let mlp = train(
        t,
        &example_spec(t, "mlp", |s| {
            s["model"] = json!({"mlp": {"hidden": [16], "epochs": 6, "batch_size": 256,
                "early_stopping": {"patience": 2, "validation_fraction": 0.2}}});
        }),
        "mlp",
    );
    let (page, metrics, _) = report_of(&mlp);
    binary_sections(&page, &metrics, &mlp);
    let loss = page.figure("training-loss");
    page.figure("training-auc");
    let texts: Vec<&str> = page.within(loss, "text").iter().map(|n| n.text.trim()).collect();
    assert!(texts.contains(&"kept epoch") && texts.contains(&"validation loss"), "{texts:?}");
    assert!(!page.has("coefficients"));

    let partitioned = train(
        t,
        &example_spec(t, "partitioned", |s| {
            s["partition"] = json!({"by": "merchant_id", "min_rows": 100, "min_positives": 3, "select": "none", "l2": 1.0});
        }),
        "partitioned",
    );
    let (page, metrics, _) = report_of(&partitioned);
    binary_sections(&page, &metrics, &partitioned);
    for id in ["groups", "groups-table", "groups-roc", "groups-gain"] {
        assert!(page.has(id), "no {id}");
    }
    let curves: Value =
        serde_json::from_str(&std::fs::read_to_string(partitioned.join("curves.json")).unwrap()).unwrap();
    let finite = curves["groups"].as_array().unwrap().iter().filter(|g| g["roc_auc_gain"].is_f64()).count();
    let kept = metrics["partition"]["groups_kept"].as_u64().unwrap();
    assert!(kept > 0 && finite > 0, "{kept} groups kept, {finite} with an AUC gain");
    let circles = page.within(page.figure("groups-gain"), "circle").len();
    assert_eq!(circles, finite + 2, "one point per group and two legend marks");
    // The generic model's curve is drawn next to the composition's, with its own area.
    let generic = trapezoid(&drawn_curve(&page, page.figure("groups-roc"), "#E06C00"));
    let expected = metrics["partition"]["generic"]["roc_auc"].as_f64().unwrap();
    assert!((generic - expected).abs() < 1e-3, "generic ROC drawn {generic}, reported {expected}");

    // Drawn again from the run directory alone, and two runs on one page.
    let (code, stdout, stderr) = trainyard(&["report", logistic.to_str().unwrap(), "--out", "again.html"], t);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "again.html");
    let again = self_contained(&std::fs::read_to_string(t.join("again.html")).unwrap());
    assert!(again.has("roc") && again.has("coefficients-chart"));
    let (code, stdout, stderr) =
        trainyard(&["report", logistic.to_str().unwrap(), "--compare", mlp.to_str().unwrap()], t);
    assert_eq!(code, 0, "{stderr}");
    let both_path = t.join(stdout.trim());
    assert!(stdout.trim().ends_with(".report.html") && stdout.contains("-vs-"), "{stdout}");
    let both = self_contained(&std::fs::read_to_string(&both_path).unwrap());
    for id in [
        "run-a",
        "run-b",
        "metrics-table",
        "roc",
        "pr",
        "calibration",
        "scores-a",
        "scores-b",
        "coefficients-a",
        "training-b",
    ] {
        assert!(both.has(id), "comparison has no {id}");
    }
    let roc = both.figure("roc");
    let (a, b) =
        (trapezoid(&drawn_curve(&both, roc, "#1F5FBF")), trapezoid(&drawn_curve(&both, roc, "#E06C00")));
    let auc = |run: &Path| {
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
        m["test"]["roc_auc"].as_f64().unwrap()
    };
    assert!((a - auc(&logistic)).abs() < 1e-3 && (b - auc(&mlp)).abs() < 1e-3, "A {a}, B {b}");
    let table = both.by_id("metrics-table").unwrap();
    let header: Vec<&str> = both.within(table, "th").iter().map(|n| n.text.as_str()).collect();
    assert_eq!(header, ["metric", "A", "B", "B − A"]);

    // A retrain against the first run, with a gate: the comparison and the verdict are on the page.
    let retrain = train(
        t,
        &example_spec(t, "retrain", |s| {
            s["model"]["logistic"]["l2"] = json!(4.0);
            s["baseline"] = json!({"run": logistic});
            s["gate"] = json!({"metric": "roc_auc", "min_delta": -0.01});
        }),
        "retrain",
    );
    let (page, metrics, _) = report_of(&retrain);
    for id in ["baseline", "baseline-table", "promotion"] {
        assert!(page.has(id), "no {id}");
    }
    let table = page.by_id("baseline-table").unwrap();
    let first_row: Vec<&str> = page.within(table, "td").iter().take(4).map(|n| n.text.as_str()).collect();
    let delta = metrics["baseline"]["deltas"]["roc_auc"].as_f64().unwrap();
    assert_eq!(first_row[0], "roc_auc");
    assert_eq!(first_row[3], format!("{delta:+.4}"));

    // Never into a run: its files are verified against its manifest.
    let inside = logistic.join("report.html");
    let (code, _, stderr) =
        trainyard(&["report", logistic.to_str().unwrap(), "--out", inside.to_str().unwrap()], t);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("inside the run directory"), "{stderr}");
    // Without --out: named after the run id, in the current directory.
    let (code, stdout, stderr) = trainyard(&["report", mlp.to_str().unwrap()], t);
    assert_eq!(code, 0, "{stderr}");
    let run_id = serde_json::from_str::<Value>(&std::fs::read_to_string(mlp.join("manifest.json")).unwrap())
        .unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(stdout.trim(), format!("{run_id}.report.html"));
    assert!(t.join(stdout.trim()).is_file());
}

#[test]
fn a_multiclass_run_draws_its_confusion_matrix() {
    let Some(datasets) = datasets_dir() else { return };
    let dir = datasets.join("digits");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::reference_spec(&dir, &reference, json!({"logistic": {"l2": 1.0}}));
    let path = tmp.path().join("digits.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    let run = train(tmp.path(), &path, "digits");
    let (page, metrics, _) = report_of(&run);
    for id in ["confusion", "confusion-chart", "per-class", "coefficients"] {
        assert!(page.has(id), "no {id}");
    }
    assert!(!page.has("roc") && !page.has("calibration"), "binary charts on a multiclass run");
    // Every test row is in one cell of the drawn matrix.
    let cells: u64 = page
        .within(page.figure("confusion-chart"), "text")
        .iter()
        .filter_map(|t| {
            let inside = t.attrs.get("text-anchor").is_some_and(|a| a == "middle")
                && t.attrs.get("dy").is_some_and(|d| d == "0.5ex");
            inside.then(|| t.text.trim().parse::<u64>().ok()).flatten()
        })
        .sum();
    assert_eq!(cells, metrics["test"]["rows"].as_u64().unwrap());
    let table = page.by_id("per-class").unwrap();
    assert_eq!(page.within(table, "tr").len() - 1, 10);
}

#[test]
fn report_refuses_what_is_not_a_run_and_draws_runs_older_than_it() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (code, _, stderr) = trainyard(&["report", "no-such-run"], t);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no-such-run"), "{stderr}");
    std::fs::write(t.join("file"), "x").unwrap();
    let (code, _, stderr) = trainyard(&["report", "file"], t);
    assert_eq!(code, 2, "{stderr}");

    // A run written before curves.json existed: the manifest lists no such file.
    let run = train(t, &example_spec(t, "older", |_| {}), "older");
    std::fs::remove_file(run.join("curves.json")).unwrap();
    let manifest_path = run.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["artifacts"].as_object_mut().unwrap().remove("curves.json");
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let (code, _, stderr) = trainyard(&["report", run.to_str().unwrap(), "--out", "older.html"], t);
    assert_eq!(code, 0, "{stderr}");
    let page = self_contained(&std::fs::read_to_string(t.join("older.html")).unwrap());
    assert!(page.has("metrics") && page.has("curves") && page.has("coefficients-chart"));
    assert!(!page.has("roc"));
    // A changed artifact is refused, naming it.
    std::fs::write(run.join("metrics.json"), "{}").unwrap();
    let (code, _, stderr) = trainyard(&["report", run.to_str().unwrap(), "--out", "x.html"], t);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("metrics.json"), "{stderr}");
    assert!(!t.join("x.html").exists());
}
