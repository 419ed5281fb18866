//! A fitted model of either kind, scored the same way from a frame, and how its fit went.

use serde::{Deserialize, Serialize};

use crate::data::Frame;
use crate::error::Result;
use crate::features::Pipeline;
use crate::logistic::{self, LogisticModel};
use crate::mlp::{MlpModel, MlpReport};

/// A fitted model.
#[derive(Debug, Clone)]
pub enum Model {
    /// Logistic regression over the design, coefficients in one-hot order.
    Logistic(LogisticModel),
    /// The MLP over the numeric block and categorical embeddings.
    Mlp(MlpModel),
}

impl Model {
    /// Probabilities of the positive class for `frame`'s rows, each row scored on its own.
    pub fn score(&self, pipeline: &Pipeline, frame: &Frame) -> Result<Vec<f64>> {
        match self {
            Model::Logistic(m) => Ok(m.predict_proba(&pipeline.design(frame)?)),
            Model::Mlp(m) => {
                let x = pipeline.design(frame)?;
                m.predict_proba(&x.numeric, &x.codes)
            }
        }
    }
}

/// How the fit went, as `metrics.json` records it (the fields of the model kind's report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FitReport {
    /// L-BFGS iterations, passes, convergence.
    Logistic(logistic::FitReport),
    /// Epochs, steps, early stopping, history.
    Mlp(MlpReport),
}

impl FitReport {
    /// Whether the fit met its stopping criterion (logistic: converged; MLP: early stopping).
    pub fn converged(&self) -> bool {
        match self {
            FitReport::Logistic(f) => f.converged,
            FitReport::Mlp(f) => f.converged,
        }
    }
}
