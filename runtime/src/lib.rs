//! trainyard: a native training runtime. Parquet features and labels in; an evaluated,
//! reproducible model and its run directory out.
//!
//! A map of the crate, in the order a job flows through it:
//!
//! | step | module | entry point |
//! | --- | --- | --- |
//! | parse and check the JSON job spec | [`spec`] | [`spec::CheckedSpec::from_file`] |
//! | read Parquet (projection, filters, statistics pruning) | [`data`] | [`data::read`] |
//! | join labels, split train/test, encode labels | [`dataset`], [`split`], [`label`] | [`dataset::load`] |
//! | fit the feature pipeline, build the design matrix | [`features`] | [`features::Pipeline::fit`] |
//! | summarize a spec and its data without training | [`validate`] | [`validate::validate`] |
//! | make synthetic fraud-like data | [`synth`] | [`synth::write`] |
//!
//! The library never prints; the `trainyard` binary is a thin layer over these calls.
//! Every error is an [`Error`] whose [`Error::exit_code`] is the process exit code.

#![warn(missing_docs)]

pub mod data;
pub mod dataset;
mod error;
pub mod features;
pub mod label;
pub mod spec;
pub mod split;
pub mod synth;
pub mod validate;

pub use error::{Error, Result};
