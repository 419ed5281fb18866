//! One test body per behaviour, run on the CPU always and on CUDA device 0 when
//! `TRAINYARD_TEST_CUDA=1` and a GPU is usable (skipped with a message otherwise):
//! - the fused logistic objective equals the textbook f64 reference to 1e-5 relative, with
//!   weights, categorical codes and extreme scores;
//! - `trainyard train` of logistic regression on a real dataset reaches scikit-learn's test AUC
//!   (CPU, within 0.002) and the CPU's test AUC to 1e-4 (CUDA);
//! - the fused multinomial (softmax) objective equals its f64 reference the same way;
//! - an MLP epoch runs and gives finite metrics.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{datasets_dir, outcome, reference_spec, references};
use serde_json::{Value, json};
use trainyard::device::{self, Device, Workload};
use trainyard_kernels::cuda;
use trainyard_kernels::logistic::{Cpu, Design, LossGrad, Problem, loss_grad_reference};
use trainyard_kernels::softmax::{self, SoftmaxLossGrad};

/// The CPU, plus CUDA device 0 when asked for and usable for `workload`.
fn devices(workload: Workload) -> Vec<Device> {
    let mut out = vec![Device::Cpu];
    if std::env::var("TRAINYARD_TEST_CUDA").as_deref() != Ok("1") {
        eprintln!("CUDA runs skipped: set TRAINYARD_TEST_CUDA=1 on a machine with a GPU");
    } else {
        match device::cuda_unusable(0, workload) {
            None => out.push(Device::Cuda(0)),
            Some(why) => eprintln!("CUDA runs skipped: TRAINYARD_TEST_CUDA=1 but {why}"),
        }
    }
    out
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn multinomial_objective_equals_the_f64_reference_on_every_device() {
    let (rows, cols, k) = (3001, 19, 7);
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let x: Vec<f32> = (0..rows * cols).map(|_| (4.0 * next() - 2.0) as f32).collect();
    let y: Vec<f32> = (0..rows).map(|_| ((next() * k as f64) as usize).min(k - 1) as f32).collect();
    let w: Vec<f32> = (0..rows).map(|_| (0.1 + 3.0 * next()) as f32).collect();
    let slots = [4usize, 120];
    let codes: Vec<u32> =
        (0..rows * 2).map(|j| (next().powi(2) * slots[j % 2] as f64) as u32 % slots[j % 2] as u32).collect();
    let devs = devices(Workload::Logistic);
    for (weights, coded) in [(None, false), (Some(&w[..]), true)] {
        let (codes, slots): (&[u32], &[usize]) = if coded { (&codes, &slots) } else { (&[], &[]) };
        let p = softmax::Problem {
            design: Design { x: &x, rows, cols, codes, slots },
            classes: k,
            y: &y,
            weights,
        };
        let n = p.coefficients();
        for scale in [0.1, 3.0, 60.0] {
            let coef: Vec<f64> = (0..n).map(|j| scale * ((j as f64 * 0.37).sin())).collect();
            let intercept: Vec<f64> = (0..k).map(|c| 0.1 * c as f64).collect();
            let (mut g_ref, mut gb_ref) = (vec![0.0; n], vec![0.0; k]);
            let l_ref = softmax::loss_grad_reference(&p, &coef, &intercept, &mut g_ref, &mut gb_ref);
            for &dev in &devs {
                let mut objective: Box<dyn SoftmaxLossGrad> = match dev {
                    Device::Cpu => Box::new(softmax::Cpu::new(p)),
                    Device::Cuda(o) => Box::new(cuda::softmax::Objective::new(o, &p).unwrap()),
                };
                let (mut g, mut gb) = (vec![0.0; n], vec![0.0; k]);
                let l = objective.loss_grad(&coef, &intercept, &mut g, &mut gb).unwrap();
                let tag = format!("{dev} weights={} codes={coded} scale={scale}", weights.is_some());
                assert!(rel(l, l_ref) < 1e-5, "{tag}: loss {l} vs {l_ref}");
                let g_scale = g_ref.iter().chain(&gb_ref).fold(0f64, |m, v| m.max(v.abs()));
                for (j, (a, b)) in g.iter().chain(&gb).zip(g_ref.iter().chain(&gb_ref)).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * g_scale, "{tag}: gradient[{j}] {a} vs {b}");
                }
                let (mut g2, mut gb2) = (vec![0.0; n], vec![0.0; k]);
                let l2 = objective.loss_grad(&coef, &intercept, &mut g2, &mut gb2).unwrap();
                assert_eq!((l.to_bits(), &g, &gb), (l2.to_bits(), &g2, &gb2), "{tag}: not deterministic");
            }
        }
    }
}

#[test]
fn objective_equals_the_f64_reference_on_every_device() {
    let (rows, cols) = (5003, 37);
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let x: Vec<f32> = (0..rows * cols).map(|_| (4.0 * next() - 2.0) as f32).collect();
    let y: Vec<f32> = (0..rows).map(|_| f32::from(next() < 0.3)).collect();
    let w: Vec<f32> = (0..rows).map(|_| (0.1 + 3.0 * next()) as f32).collect();
    let slots = [5usize, 300];
    let codes: Vec<u32> =
        (0..rows * 2).map(|k| (next().powi(2) * slots[k % 2] as f64) as u32 % slots[k % 2] as u32).collect();
    let devs = devices(Workload::Logistic);
    for (weights, coded) in [(None, false), (Some(&w[..]), false), (Some(&w[..]), true)] {
        let (codes, slots): (&[u32], &[usize]) = if coded { (&codes, &slots) } else { (&[], &[]) };
        let p = Problem { design: Design { x: &x, rows, cols, codes, slots }, y: &y, weights };
        let width = p.width();
        // Scales from ordinary to scores of several hundred, where a naive log(1 + e^z) overflows.
        for scale in [0.1, 3.0, 60.0] {
            let beta: Vec<f64> = (0..width).map(|j| scale * ((j as f64 * 0.7).sin())).collect();
            let mut g_ref = vec![0.0; width];
            let (l_ref, g0_ref) = loss_grad_reference(&p, &beta, -0.3, &mut g_ref);
            for &dev in &devs {
                let mut objective: Box<dyn LossGrad> = match dev {
                    Device::Cpu => Box::new(Cpu::new(p)),
                    Device::Cuda(n) => Box::new(cuda::logistic::Objective::new(n, &p).unwrap()),
                };
                let mut g = vec![0.0; width];
                let (l, g0) = objective.loss_grad(&beta, -0.3, &mut g).unwrap();
                let tag = format!("{dev} weights={} codes={coded} scale={scale}", weights.is_some());
                assert!(rel(l, l_ref) < 1e-5, "{tag}: loss {l} vs {l_ref}");
                assert!(rel(g0, g0_ref) < 1e-5, "{tag}: intercept gradient {g0} vs {g0_ref}");
                let g_scale = g_ref.iter().fold(0f64, |m, v| m.max(v.abs()));
                for (j, (a, b)) in g.iter().zip(&g_ref).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * g_scale, "{tag}: gradient[{j}] {a} vs {b}");
                }
                // Deterministic: a second pass gives the same bits.
                let mut g2 = vec![0.0; width];
                let (l2, _) = objective.loss_grad(&beta, -0.3, &mut g2).unwrap();
                assert_eq!(l.to_bits(), l2.to_bits(), "{tag}");
                assert!(g.iter().zip(&g2).all(|(a, b)| a.to_bits() == b.to_bits()), "{tag}");
            }
        }
    }
}

/// Trains `model` on the dataset named `name` on `dev`; returns metrics.json and the manifest.
fn train(name: &str, model: Value, dev: Device) -> Option<(Value, Value)> {
    let root = datasets_dir()?;
    let (dir, reference) = references(&root).into_iter().find(|(_, r)| r["dataset"] == name)?;
    let mut spec = reference_spec(&dir, &reference, model);
    spec["device"] = json!(dev.to_string());
    let tmp = tempfile::tempdir().unwrap();
    let spec_path = tmp.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let run = tmp.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["train", spec_path.to_str().unwrap(), "--output", run.to_str().unwrap()])
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&out);
    assert_eq!(code, 0, "{name} on {dev}: {stderr}");
    let read =
        |f: &str| serde_json::from_str::<Value>(&std::fs::read_to_string(run.join(f)).unwrap()).unwrap();
    Some((read("metrics.json"), read("manifest.json")))
}

#[test]
fn logistic_train_on_a_real_dataset_gives_the_same_test_auc_on_every_device() {
    let name = "lightgbm_binary";
    let model = json!({"logistic": {"l2": 1.0, "max_iter": 2000}});
    let mut cpu_auc = None;
    for dev in devices(Workload::Logistic) {
        let Some((metrics, manifest)) = train(name, model.clone(), dev) else { return };
        assert_eq!(manifest["device"], dev.to_string());
        assert!(metrics["fit"]["converged"].as_bool().unwrap(), "{dev}: {}", metrics["fit"]);
        let auc = metrics["test"]["roc_auc"].as_f64().unwrap();
        eprintln!("{name} on {dev}: test ROC AUC {auc:.6}");
        match cpu_auc {
            None => {
                let root = datasets_dir().unwrap();
                let (_, reference) =
                    references(&root).into_iter().find(|(_, r)| r["dataset"] == name).unwrap();
                let ref_auc = reference["models"]["logistic_regression"]["test"]["roc_auc"].as_f64().unwrap();
                assert!((auc - ref_auc).abs() <= 0.002, "cpu: AUC {auc} vs scikit-learn {ref_auc}");
                cpu_auc = Some(auc);
            }
            Some(c) => assert!((auc - c).abs() <= 1e-4, "{dev}: AUC {auc} vs cpu {c}"),
        }
    }
}

#[test]
fn an_mlp_epoch_runs_on_every_device() {
    let model = json!({"mlp": {"hidden": [32, 16], "epochs": 1, "dropout": 0.1, "learning_rate": 1e-2,
                             "schedule": "constant", "early_stopping": null}});
    for dev in devices(Workload::Mlp) {
        let Some((metrics, manifest)) = train("breast_cancer", model.clone(), dev) else { return };
        assert_eq!(manifest["device"], dev.to_string());
        assert_eq!(metrics["fit"]["epochs"], 1, "{dev}: {}", metrics["fit"]);
        let (auc, ll) =
            (metrics["test"]["roc_auc"].as_f64().unwrap(), metrics["test"]["log_loss"].as_f64().unwrap());
        assert!(auc.is_finite() && ll.is_finite() && ll > 0.0, "{dev}: {}", metrics["test"]);
        // One epoch on this easy dataset already separates the classes far better than chance.
        assert!(auc > 0.9, "{dev}: test AUC {auc} after one epoch");
    }
}

#[test]
fn cuda_where_no_gpu_is_usable_exits_2_naming_the_reason_and_writes_nothing() {
    for (model, workload) in
        [(json!({"logistic": {}}), Workload::Logistic), (json!({"mlp": {"epochs": 1}}), Workload::Mlp)]
    {
        let Some(why) = device::cuda_unusable(0, workload) else {
            eprintln!("skipping: a GPU is usable here, so device cuda is not an error");
            return;
        };
        let fx = common::Fixture::new();
        let mut spec = fx.base_spec();
        spec["model"] = model;
        spec["device"] = json!("cuda");
        let spec_path = fx.write_spec(&spec);
        let out =
            fx.run(&["train", spec_path.to_str().unwrap(), "--output", fx.path("run").to_str().unwrap()]);
        let (code, _, stderr) = outcome(&out);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("device") && stderr.contains(&why), "{stderr}");
        assert!(!fx.path("run").exists(), "no output on a refused device");

        // auto runs on the CPU instead, and the manifest says so.
        spec["device"] = json!("auto");
        let spec_path = fx.write_spec(&spec);
        let out =
            fx.run(&["train", spec_path.to_str().unwrap(), "--output", fx.path("run").to_str().unwrap()]);
        let (code, _, stderr) = outcome(&out);
        assert_eq!(code, 0, "{stderr}");
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(fx.path("run").join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["device"], "cpu");
    }
}
