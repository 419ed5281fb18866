//! DeLong's paired test against an independent implementation: `tests/reference/delong.py`
//! (Sun & Xu's mid-rank algorithm with scikit-learn's ROC AUC and scipy's normal tail), run on
//! the same labels and scores, with ties, unbalanced classes and models from equal to clearly
//! different. The simulation of the test's false-positive rate under the null is a unit test
//! of `metrics::paired`.

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use trainyard::metrics::paired::delong;
use trainyard::random;

/// The Python with numpy, scipy and scikit-learn: `TRAINYARD_STATS_PYTHON`, else `python3`.
/// `None` (the test skips) when it lacks them, unless `TRAINYARD_REQUIRE_STATS` is set.
fn python() -> Option<String> {
    let python = std::env::var("TRAINYARD_STATS_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import numpy, scipy, sklearn"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let why = format!("{python} lacks numpy, scipy or scikit-learn (set TRAINYARD_STATS_PYTHON)");
    assert!(std::env::var_os("TRAINYARD_REQUIRE_STATS").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}

fn reference(python: &str, y: &[f32], a: &[f64], b: &[f64]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/delong.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({"y": y, "a": a, "b": b}).to_string();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Labels with `rate` positives and two correlated scores, `b` better by `gain`, rounded to
/// `step` (coarse steps make many ties).
fn data(n: usize, seed: u64, rate: f64, gain: f64, step: f64) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
    let base = random::base(seed, random::Stream::Init(7));
    let round = |v: f64| (v / step).round() * step;
    let (mut y, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n as u64 {
        let positive = random::unit(base, 4 * i) < rate;
        let signal = if positive { 1.0 } else { 0.0 };
        let shared = random::normal(base, 4 * i + 1);
        y.push(signal as f32);
        a.push(round(signal + shared + random::normal(base, 4 * i + 2)));
        b.push(round((1.0 + gain) * signal + shared + random::normal(base, 4 * i + 3)));
    }
    (y, a, b)
}

#[test]
fn delong_agrees_with_the_mid_rank_reference_on_ties_imbalance_and_gains() {
    let Some(python) = python() else { return };
    let cases = [
        // n, seed, positive rate, gain, rounding step
        (60, 1, 0.4, 0.0, 0.5),
        (500, 2, 0.3, 0.3, 0.1),
        (2000, 3, 0.05, 0.2, 0.05),
        (5000, 4, 0.5, 0.0, 1e-9),
        (3000, 5, 0.02, 1.0, 0.25),
    ];
    for (n, seed, rate, gain, step) in cases {
        let (y, a, b) = data(n, seed, rate, gain, step);
        let ours = delong(&y, &a, &b).unwrap();
        let theirs = reference(&python, &y, &a, &b);
        let close = |name: &str, x: f64, tol: f64| {
            let want = theirs[name].as_f64().unwrap();
            assert!(
                (x - want).abs() <= tol * want.abs().max(1e-12),
                "n={n} seed={seed}: {name} {x} vs {want}"
            );
        };
        close("auc_a", ours.auc_a, 1e-12);
        close("auc_b", ours.auc_b, 1e-12);
        close("variance", ours.variance, 1e-9);
        close("z", ours.z, 1e-8);
        close("p_value", ours.p_value, 1e-7);
    }
}
