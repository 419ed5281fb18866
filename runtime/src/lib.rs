//! trainyard: a native training runtime. Parquet features and labels in; an evaluated,
//! reproducible model and its run directory out.
//!
//! A map of the crate, in the order a job flows through it:
//!
//! | step | module | entry point |
//! | --- | --- | --- |
//! | parse and check the JSON job spec | [`spec`] | [`spec::CheckedSpec::from_file`] |
//! | read Parquet (projection, filters, statistics pruning) | [`data`] | [`data::read`] |
//! | join labels, split train/test, encode labels (binary or K classes) | [`dataset`], [`split`], [`label`] | [`dataset::load`] |
//! | fit the feature pipeline, build the design matrix | [`features`] | [`features::Pipeline::fit`] |
//! | estimate the run's memory against the process's limit | [`memory`] | [`memory::estimate`] |
//! | resolve `device` against the GPUs this process can use | [`device`] | [`device::resolve`] |
//! | fit, score, save, load and describe a model of any kind | [`model`] | [`model::Model::fit`] |
//! | fit logistic regression, binary and multinomial (L-BFGS over the fused kernels) | [`logistic`], [`solver`] | [`logistic::fit`], [`logistic::fit_multinomial`] |
//! | fit the MLP (AdamW, early stopping, checkpoints) | [`mlp`] | [`mlp::fit`] |
//! | fit one logistic model per group next to the generic one, and compose them | [`partition`] | [`partition::fit`] |
//! | evaluate | [`metrics`] | [`metrics::Evaluation::compute`] |
//! | compare with a baseline run on the same test rows (DeLong, paired bootstrap) | [`baseline`], [`metrics::paired`] | [`baseline::Comparison::compute`] |
//! | decide whether the run may be promoted | [`gate`] | [`gate::decide`] |
//! | train end to end and write the run directory atomically | [`train`], [`rundir`], [`artifact`], [`runfiles`] | [`train::train`] |
//! | score new data from a run directory | [`predict`], [`artifact`] | [`artifact::Run::score`] |
//! | summarize a run | [`inspect`] | [`inspect::inspect`] |
//! | draw the run report (`report.html`), or compare two runs on one page | [`report`] | [`report::render`], [`report::write`] |
//! | export the model with its pipeline as ONNX | [`onnx`] | [`onnx::export`] |
//! | list, compare and promote the runs of a runs root | [`registry`] | [`registry::list`], [`registry::production::promote`] |
//! | summarize a spec and its data without training | [`validate`] | [`validate::validate`] |
//! | render the Kubernetes Job for a spec and resource class | [`render`] | [`render::render`] |
//! | make synthetic fraud-like data | [`synth`] | [`synth::write`] |
//!
//! Randomness comes from one counter-based generator ([`random`]); cancellation (SIGTERM) is
//! passed in as a [`signal::Cancellation`] by the caller. The `trainyard` binary is a thin
//! layer over these calls.
//! Every error is an [`Error`] whose [`Error::exit_code`] is the process exit code.

#![warn(missing_docs)]

pub mod artifact;
pub mod baseline;
pub mod data;
pub mod dataset;
pub mod device;
mod error;
mod f64_tensors;
pub mod features;
pub mod gate;
pub mod group_selection;
pub mod inspect;
pub mod label;
pub mod limits;
pub mod logistic;
pub mod memory;
pub mod metrics;
pub mod mlp;
pub mod model;
pub mod onnx;
pub mod partition;
pub mod predict;
pub mod progress;
pub mod random;
pub mod registry;
pub mod render;
pub mod report;
pub mod rundir;
pub mod runfiles;
pub mod serve;
pub mod signal;
pub mod solver;
pub mod spec;
pub mod split;
pub mod store;
pub mod synth;
pub mod train;
pub mod validate;

pub use error::{Error, Result};
