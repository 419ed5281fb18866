//! The model artifact: `model.json` (kind, hyperparameters, feature pipeline, label mapping,
//! tensor names) and `model.safetensors` (weights). Everything `predict` needs, nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::features::Pipeline;
use crate::label::LabelMapping;
use crate::logistic::LogisticModel;
use crate::mlp::{Architecture, MlpModel};
use crate::model::Model;
use crate::rundir::names;
use crate::spec::{ModelSpec, PartitionSpec};

/// Version of the `model.json` layout; bumped on incompatible changes (2: MLP models, and
/// hyperparameters tagged with the model kind).
pub const FORMAT_VERSION: u32 = 2;
const COEF: &str = "coef";
const INTERCEPT: &str = "intercept";

/// `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// Layout version, [`FORMAT_VERSION`].
    pub format_version: u32,
    /// `logistic` or `mlp`.
    pub kind: String,
    /// trainyard version that wrote it.
    pub trainyard_version: String,
    /// The resolved hyperparameters, as the spec's `model` field.
    pub hyperparameters: ModelSpec,
    /// The MLP's shape (layer widths, embedding sizes); absent for logistic models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    /// The fitted feature pipeline.
    pub pipeline: Pipeline,
    /// How label values map to 0/1.
    pub labels: LabelMapping,
    /// Column identifying a row, copied into predictions when present in the data.
    pub key: Option<String>,
    /// Tensor names in `model.safetensors`. Logistic: coefficients (f64, one per one-hot design
    /// column, in `pipeline.names` order) and the intercept (f64, shape [1]). MLP: f32 weights
    /// named as a candle `VarMap` would (`hidden.0.weight` is `[out, in]`).
    pub tensors: Vec<String>,
    /// Per-group models (`partition` in the spec): rows whose `by` value has a model in
    /// `groups.safetensors` are scored by it. Absent without a partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionCard>,
}

/// What `predict` needs to compose group models with the generic one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionCard {
    /// The group column.
    pub by: String,
    /// The resolved `partition` spec (thresholds and shrinkage), for the record.
    pub spec: PartitionSpec,
    /// Groups with a model: rows of `groups.safetensors`, keys in `groups.parquet`.
    pub groups: usize,
}

impl ModelCard {
    /// The card of a fitted model: its kind, tensor names and (MLP) architecture come from the
    /// model itself.
    pub fn new(
        hyperparameters: ModelSpec,
        model: &Model,
        pipeline: Pipeline,
        labels: LabelMapping,
        key: Option<String>,
    ) -> Self {
        let (kind, architecture, tensors) = match model {
            Model::Logistic(_) => ("logistic", None, vec![COEF.into(), INTERCEPT.into()]),
            Model::Mlp(m) => ("mlp", Some(m.net.arch.clone()), m.tensor_names()),
        };
        ModelCard {
            format_version: FORMAT_VERSION,
            kind: kind.into(),
            trainyard_version: env!("CARGO_PKG_VERSION").into(),
            hyperparameters,
            architecture,
            pipeline,
            labels,
            key,
            tensors,
            partition: None,
        }
    }
}

/// The bytes of `model.safetensors`. Deterministic: the same weights give the same bytes.
pub fn weights_bytes(model: &Model) -> Result<Vec<u8>> {
    match model {
        Model::Logistic(m) => logistic_bytes(m),
        Model::Mlp(m) => m.weights_bytes(),
    }
}

fn logistic_bytes(model: &LogisticModel) -> Result<Vec<u8>> {
    f64_safetensors(&[(COEF, vec![model.coef.len()], &model.coef), (INTERCEPT, vec![1], &[model.intercept])])
}

/// A safetensors file of f64 tensors `(name, shape, values)`, little-endian as the format says.
pub(crate) fn f64_safetensors(tensors: &[(&str, Vec<usize>, &[f64])]) -> Result<Vec<u8>> {
    let internal = |e: safetensors::SafeTensorError| Error::Internal(format!("serializing weights: {e}"));
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            Ok((*name, TensorView::new(Dtype::F64, shape.clone(), b).map_err(internal)?))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(internal)
}

/// Tensor `name` of `st` as f64 values; anything else is a data error naming `path`.
pub(crate) fn read_f64_tensor(st: &SafeTensors<'_>, name: &str, path: &Path) -> Result<Vec<f64>> {
    let bad = |what: String| Error::data(format!("{}: {what}", path.display()));
    let t = st.tensor(name).map_err(|e| bad(format!("tensor {name}: {e}")))?;
    if t.dtype() != Dtype::F64 {
        return Err(bad(format!("tensor {name} is {:?}, expected F64", t.dtype())));
    }
    Ok(t.data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

/// SHA-256 (hex) of every file in the staged run directory `dir`, by file name: what the
/// manifest records so that a reader can tell a corrupt or changed artifact from a good one.
pub fn digests(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name != names::MANIFEST && path.is_file() {
            out.insert(name, sha256_file(&path)?);
        }
    }
    Ok(out)
}

/// SHA-256 (hex) of a file's content, streamed.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A run directory whose manifest has been read once: the manifest and the artifact digests it
/// records, through which every other file of the run is read and verified.
#[derive(Debug, Clone)]
pub struct RunFiles {
    dir: PathBuf,
    manifest: serde_json::Value,
    digests: BTreeMap<String, String>,
}

impl RunFiles {
    /// Opens the run directory `run`: it must be a directory with a `manifest.json` that lists
    /// artifact digests (exit 2 otherwise, naming what is wrong).
    pub fn open(run: &Path) -> Result<Self> {
        match std::fs::metadata(run) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Usage(format!("run directory {} not found", run.display())));
            }
            Err(e) => return Err(Error::io(run, e)),
            Ok(m) if !m.is_dir() => {
                return Err(Error::Usage(format!(
                    "{} is a file, not a run directory (pass the directory `train` wrote)",
                    run.display()
                )));
            }
            Ok(_) => {}
        }
        let path = run.join(names::MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Usage(format!(
                "{} is not a trainyard run directory (no {})",
                run.display(),
                names::MANIFEST
            )),
            _ => Error::io(&path, e),
        })?;
        let manifest: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::data(format!("{}: not a trainyard manifest: {e}", path.display())))?;
        let digests = manifest
            .get("artifacts")
            .and_then(|a| serde_json::from_value::<BTreeMap<String, String>>(a.clone()).ok())
            .ok_or_else(|| {
                Error::data(format!(
                    "{}: no artifact digests (\"artifacts\"); the run was written by an older trainyard \
                     or the manifest was edited, retrain it",
                    path.display()
                ))
            })?;
        Ok(RunFiles { dir: run.to_path_buf(), manifest, digests })
    }

    /// The manifest as read by [`RunFiles::open`].
    pub fn manifest(&self) -> &serde_json::Value {
        &self.manifest
    }

    /// Path of `name` in the run.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The bytes of `name`, checked against the manifest's digest: a missing, corrupt or changed
    /// file is exit 2 naming it.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.path(name);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::Usage(format!("{} is missing; the run directory is incomplete", path.display()))
            }
            _ => Error::io(&path, e),
        })?;
        let expected = self.digests.get(name).ok_or_else(|| {
            Error::data(format!("{}: the manifest records no digest for this file", path.display()))
        })?;
        let actual = hex(&Sha256::digest(&bytes));
        if &actual != expected {
            return Err(Error::data(format!(
                "{}: sha256 {} does not match the manifest's {}; the file is corrupt or was changed",
                path.display(),
                &actual[..16],
                expected.chars().take(16).collect::<String>()
            )));
        }
        Ok(bytes)
    }

    /// JSON file `name`, verified as [`RunFiles::read`] does, then parsed.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let bytes = self.read(name)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::data(format!("{}: {e}", self.path(name).display())))
    }
}

/// Reads `model.json` and `model.safetensors` from a run directory, each checked against the
/// manifest's digests.
pub fn load(run: &Path) -> Result<(ModelCard, Model)> {
    load_from(&RunFiles::open(run)?)
}

/// [`load`] from a run directory already opened.
pub fn load_from(files: &RunFiles) -> Result<(ModelCard, Model)> {
    let card_path = files.path(names::MODEL_JSON);
    let text = String::from_utf8(files.read(names::MODEL_JSON)?)
        .map_err(|e| Error::data(format!("{}: not UTF-8: {e}", card_path.display())))?;
    let card: ModelCard = serde_json::from_str(&text)
        .map_err(|e| Error::data(format!("{}: not a trainyard model card: {e}", card_path.display())))?;
    let supported = match (&card.hyperparameters, &card.architecture) {
        (ModelSpec::Logistic(_), None) => card.kind == "logistic",
        (ModelSpec::Mlp(_), Some(_)) => card.kind == "mlp",
        _ => false,
    };
    if card.format_version != FORMAT_VERSION || !supported {
        return Err(Error::data(format!(
            "{}: model kind {:?} format {} is not supported by this trainyard ({} format {FORMAT_VERSION})",
            card_path.display(),
            card.kind,
            card.format_version,
            env!("CARGO_PKG_VERSION")
        )));
    }
    let weights_path = files.path(names::WEIGHTS);
    let bytes = files.read(names::WEIGHTS)?;
    card.pipeline.check().map_err(|why| Error::data(format!("{}: {why}", card_path.display())))?;
    if let Some(arch) = &card.architecture {
        arch.check().map_err(|why| Error::data(format!("{}: {why}", card_path.display())))?;
        if arch.numeric != card.pipeline.numeric_width()
            || arch.cardinalities != card.pipeline.cardinalities()
        {
            return Err(Error::data(format!(
                "{}: the architecture does not match the feature pipeline",
                card_path.display()
            )));
        }
        let model = MlpModel::from_bytes(arch, &bytes, &weights_path.display().to_string())?;
        return Ok((card, Model::Mlp(model)));
    }
    let bad = |what: String| Error::data(format!("{}: {what}", weights_path.display()));
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let coef = read_f64_tensor(&st, COEF, &weights_path)?;
    let intercept = read_f64_tensor(&st, INTERCEPT, &weights_path)?;
    if coef.len() != card.pipeline.width() || intercept.len() != 1 {
        return Err(bad(format!("{} coefficients for {} design columns", coef.len(), card.pipeline.width())));
    }
    Ok((card, Model::Logistic(LogisticModel { coef, intercept: intercept[0] })))
}
