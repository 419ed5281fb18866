//! `trainyard export`: a run's model, feature pipeline included, as an ONNX file that
//! onnxruntime (or any ONNX runtime with the `ai.onnx.ml` domain) scores as `trainyard predict`
//! does.
//!
//! | piece | module |
//! |---|---|
//! | the graph: inputs, pipeline, model, outputs | [`graph`] |
//! | the protobuf bytes, and a reader for checks | [`proto`] |
//!
//! The graph's interface (documented in the README): one input per raw feature column,
//! `[N]`, numeric columns as float64 (NaN is missing) and categorical columns as strings (the
//! null string, `""` by default, is null); partitioned runs add the group column. Outputs:
//! `probabilities` float64 `[N, K]` (binary: negative, positive; multiclass: the classes in
//! `model.json` order) and `label` `[N]`, the class of the largest probability.

pub mod graph;
pub mod proto;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use graph::{Options, Provenance};

use crate::artifact::{self, Run};
use crate::error::{Error, Result};
use crate::features::Pipeline;
use crate::partition::GroupKey;
use crate::rundir::names;
use crate::runfiles::{self, RunFiles};
use crate::spec::JobSpec;

/// Formats a model can be exported in (`--format`, and the spec's `export`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// ONNX (`ai.onnx` opset 17, `ai.onnx.ml` opset 3).
    Onnx,
}

/// When the spec's `export` asks for ONNX, refuses what the export would refuse once the model
/// is fitted (see [`graph::check`]), from the fitted pipeline and the train rows' group keys:
/// `train` and `validate` call it before any fit.
pub fn check_spec<'a>(
    spec: &JobSpec,
    pipeline: &Pipeline,
    group_keys: impl IntoIterator<Item = &'a GroupKey>,
) -> Result<()> {
    if !spec.export.contains(&Format::Onnx) {
        return Ok(());
    }
    graph::check(pipeline, spec.partition.as_ref().map(|p| p.by.as_str()), group_keys, &Options::default())
        .map_err(|e| match e {
            Error::Usage(why) => Error::spec("export", why),
            other => other,
        })
}

/// The bytes of `run`'s model as an ONNX file.
pub fn to_bytes(run: &Run, provenance: &Provenance, opts: &Options) -> Result<Vec<u8>> {
    Ok(graph::build(run, provenance, opts)?.encode())
}

/// Exports the model of the run directory `run` (local or object store) to `out` (a file or an
/// object; default `<run id>.onnx` in the current directory). Returns where it went.
pub fn export(run: &Path, format: Format, out: Option<&Path>, opts: &Options) -> Result<PathBuf> {
    let Format::Onnx = format;
    if let Some(out) = out {
        runfiles::check_output(out, &[run], "the ONNX model")?;
    }
    let files = RunFiles::open(run)?;
    let loaded = artifact::load_from(&files)?;
    let field = |name: &str| {
        files
            .manifest()
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| Error::data(format!("{}: no {name}", files.path(names::MANIFEST).display())))
    };
    let provenance = Provenance { run_id: field("run_id")?, spec_sha256: field("spec_sha256")? };
    let bytes = to_bytes(&loaded, &provenance, opts)?;
    let out = match out {
        Some(out) => out.to_path_buf(),
        None => {
            let id = provenance.run_id.replace(|c: char| !(c.is_alphanumeric() || "-_.".contains(c)), "_");
            let out = PathBuf::from(format!("{id}.onnx"));
            runfiles::check_output(&out, &[run], "the ONNX model")?;
            out
        }
    };
    runfiles::write_output(&out, bytes)?;
    Ok(out)
}
