//! The model artifact: `model.json` (kind, hyperparameters, feature pipeline, label mapping,
//! tensor names) and `model.safetensors` (weights), and [`Run`], a run's model loaded back,
//! which scores raw rows in one call. Everything `predict` needs, nothing else.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::Frame;
use crate::error::{Error, Result};
use crate::features::Pipeline;
use crate::label::Labels;
use crate::metrics::Scores;
use crate::mlp::Architecture;
use crate::model::Model;
use crate::partition::{self, GroupModels};
use crate::rundir::names;
use crate::runfiles::RunFiles;
use crate::spec::{ModelSpec, PartitionSpec};

/// Version of the `model.json` layout; bumped on incompatible changes (2: MLP models, and
/// hyperparameters tagged with the model kind). Multiclass models added fields (`labels.classes`,
/// `architecture.outputs`) without changing binary cards, so they are still version 2.
pub const FORMAT_VERSION: u32 = 2;

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
    /// The MLP's shape (layer widths, embedding sizes, outputs); absent for logistic models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    /// The fitted feature pipeline.
    pub pipeline: Pipeline,
    /// How label values map to classes: `{column, positive, negative}` for binary labels,
    /// `{column, classes}` (ascending; the order of the probability columns) for multiclass.
    pub labels: Labels,
    /// Column identifying a row, copied into predictions when present in the data.
    pub key: Option<String>,
    /// Tensor names in `model.safetensors`. Logistic: coefficients (f64, one per one-hot design
    /// column in `pipeline.names` order; `[classes, width]` for multiclass) and the intercepts
    /// (f64, `[1]` or `[classes]`). MLP: f32 weights named as a candle `VarMap` would
    /// (`hidden.0.weight` is `[out, in]`; `output.weight` has one row per output).
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
        labels: Labels,
        key: Option<String>,
    ) -> Self {
        ModelCard {
            format_version: FORMAT_VERSION,
            kind: model.kind().into(),
            trainyard_version: env!("CARGO_PKG_VERSION").into(),
            hyperparameters,
            architecture: model.architecture(),
            pipeline,
            labels,
            key,
            tensors: model.tensor_names(),
            partition: None,
        }
    }

    /// The raw columns scoring needs: the features, and the group column of a partitioned run
    /// (without it no row could reach its group's model: an error, not a silent fallback to the
    /// generic model).
    pub fn input_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = self
            .pipeline
            .numeric
            .iter()
            .map(|s| s.column.clone())
            .chain(self.pipeline.categorical.iter().map(|s| s.column.clone()))
            .collect();
        if let Some(p) = &self.partition
            && !columns.contains(&p.by)
        {
            columns.push(p.by.clone());
        }
        columns
    }
}

/// A run's model loaded back: its card, the model, and its group models when it has them.
#[derive(Debug, Clone)]
pub struct Run {
    /// `model.json`.
    pub card: ModelCard,
    /// The fitted model.
    pub model: Model,
    /// Per-group models of a partitioned run.
    pub groups: Option<GroupModels>,
}

impl Run {
    /// Probabilities for `frame`'s rows (raw columns, as [`ModelCard::input_columns`] lists),
    /// exactly as the run scored its test rows: the pipeline builds the design, the model
    /// scores it, and rows of groups with their own model get that model's scores.
    pub fn score(&self, frame: &Frame) -> Result<Scores> {
        let x = self.card.pipeline.design(frame)?;
        let mut scores = self.model.score(&x)?;
        if let (Some(groups), Some(p), Scores::Binary(s)) = (&self.groups, &self.card.partition, &mut scores)
        {
            let column = frame.column(&p.by).ok_or_else(|| Error::Internal(format!("{} not read", p.by)))?;
            groups.compose(&x, &partition::keys(column, &p.by)?, s);
        }
        Ok(scores)
    }
}

/// Reads `model.json` and `model.safetensors` (and a partitioned run's group models) from a run
/// directory, each checked against the manifest's digests.
pub fn load(run: &Path) -> Result<Run> {
    load_from(&RunFiles::open(run)?)
}

/// [`load`] from a run directory already opened.
pub fn load_from(files: &RunFiles) -> Result<Run> {
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
    let classes = card.labels.classes();
    if classes > crate::label::MAX_CLASSES {
        return Err(Error::data(format!("{}: {classes} classes", card_path.display())));
    }
    if let Some(arch) = &card.architecture {
        arch.check().map_err(|why| Error::data(format!("{}: {why}", card_path.display())))?;
        if arch.numeric != card.pipeline.numeric_width()
            || arch.cardinalities != card.pipeline.cardinalities()
            || arch.outputs != if classes > 2 { classes } else { 1 }
        {
            return Err(Error::data(format!(
                "{}: the architecture does not match the feature pipeline and labels",
                card_path.display()
            )));
        }
    }
    let model = Model::from_bytes(
        &card.hyperparameters,
        card.architecture.as_ref(),
        &card.pipeline,
        classes,
        &bytes,
        &weights_path.display().to_string(),
    )?;
    let groups = match &card.partition {
        Some(_) => Some(GroupModels::load(files, card.pipeline.width())?),
        None => None,
    };
    Ok(Run { card, model, groups })
}
