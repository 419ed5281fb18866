//! How much memory a run will need, estimated from the spec, the fitted feature pipeline and the
//! row counts before the large allocations (the design matrices, the network and its optimizer
//! state), and the memory this process may use. A run that cannot fit is an exit-2 error naming
//! what is too large, not an out-of-memory kill an hour in.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::features::Pipeline;
use crate::mlp::Architecture;
use crate::spec::ModelSpec;

pub use crate::limits::{Budget, LIMIT_ENV, budget, resident_bytes};

/// One large allocation of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// What it is, with its dimensions.
    pub what: String,
    /// Bytes (saturated at `u64::MAX`).
    pub bytes: u64,
    /// The spec field that sizes it, and how to shrink it.
    pub culprit: String,
}

/// The estimate of a run's large allocations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// Each allocation, largest first.
    pub items: Vec<Item>,
    /// Their sum.
    pub total_bytes: u64,
}

/// Sizes in u128, so that no product of spec values can wrap.
fn bytes(parts: &[usize], each: u128) -> u64 {
    let n = parts.iter().fold(each, |acc, &p| acc.saturating_mul(p as u128));
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The large allocations of training `model` with `pipeline` on `train_rows` and `test_rows`.
pub fn estimate(
    model: &ModelSpec,
    pipeline: &Pipeline,
    train_rows: usize,
    test_rows: usize,
    classes: usize,
) -> Estimate {
    // A binary model has one output; a multinomial one K coefficient vectors and residuals.
    let outputs = if classes > 2 { classes } else { 1 };
    let rows = train_rows.saturating_add(test_rows);
    let mut items = Vec::new();
    let widest = pipeline
        .categorical
        .iter()
        .enumerate()
        .max_by_key(|(_, c)| c.levels.len())
        .map(|(i, c)| (i, c.column.clone(), c.levels.len() + 1));
    match model {
        ModelSpec::Logistic(_) => {
            let (numeric, ncat, width) =
                (pipeline.numeric_width(), pipeline.categorical.len(), pipeline.width());
            items.push(Item {
                what: format!("designs: {rows} rows x ({numeric} float32 + {ncat} codes)"),
                bytes: bytes(&[rows, numeric + ncat], 4),
                culprit: "the number of rows and features".into(),
            });
            items.push(Item {
                what: format!("row residuals: {train_rows} x {outputs} float64"),
                bytes: bytes(&[train_rows, outputs], 8),
                culprit: "the number of rows".into(),
            });
            // L-BFGS keeps 10 pairs of correction vectors; with the iterate, the gradients, the
            // trial point, the direction and the preconditioner: 26 float64 vectors of the
            // coefficients.
            let culprit = match &widest {
                Some((i, name, k)) if *k * 2 > width => format!(
                    "features.categorical[{i}] {name:?} has {k} one-hot columns; raise \
                     features.min_category_count or drop the column"
                ),
                _ => "the number of features".into(),
            };
            items.push(Item {
                what: format!("solver state: 26 float64 vectors of {width} x {outputs} coefficients"),
                bytes: bytes(&[width, outputs, 26], 8),
                culprit,
            });
        }
        ModelSpec::Mlp(m) => {
            let numeric = pipeline.numeric_width();
            let cards = pipeline.cardinalities();
            items.push(Item {
                what: format!(
                    "numeric blocks and codes: {rows} rows x ({numeric} float32 + {} codes)",
                    cards.len()
                ),
                bytes: bytes(&[rows, numeric + cards.len()], 4),
                culprit: "the number of rows and features".into(),
            });
            // Weights, gradients, the two AdamW moments, the best epoch's copy and the
            // checkpoint being serialized: six float32 copies of every parameter.
            let arch = Architecture::new(m, numeric, cards, classes);
            let sizes = arch.sizes();
            let embedded = sizes.input - numeric as u128;
            let culprit = if sizes.embeddings.saturating_mul(2) > sizes.parameters || embedded > 4096 {
                format!(
                    "model.mlp.embedding_dim: the embeddings hold {} values and make the first \
                     layer's input {embedded} wide",
                    sizes.embeddings
                )
            } else {
                "model.mlp.hidden".to_string()
            };
            items.push(Item {
                what: format!(
                    "network: {} parameters x 6 float32 copies (weights, gradients, AdamW, best, checkpoint)",
                    sizes.parameters
                ),
                bytes: u64::try_from(sizes.parameters.saturating_mul(24)).unwrap_or(u64::MAX),
                culprit,
            });
            let batch = m
                .batch_size
                .unwrap_or_else(|| crate::mlp::default_batch_size(train_rows))
                .min(train_rows.max(1)) as u128;
            // Forward values, ReLU and dropout masks, and their gradients per layer.
            items.push(Item {
                what: format!("activations: batch of {batch} rows x {} units", sizes.units),
                bytes: u64::try_from(batch.saturating_mul(sizes.units).saturating_mul(16))
                    .unwrap_or(u64::MAX),
                culprit: "model.mlp.batch_size and model.mlp.hidden".into(),
            });
        }
    }
    items.sort_by_key(|i| std::cmp::Reverse(i.bytes));
    let total_bytes = items.iter().fold(0u64, |t, i| t.saturating_add(i.bytes));
    Estimate { items, total_bytes }
}

/// Fails when `estimate` plus what the process already holds exceeds `budget`, naming the
/// largest allocation and the spec field behind it.
pub fn check(estimate: &Estimate, budget: &Budget, resident: u64) -> Result<()> {
    let need = estimate.total_bytes.saturating_add(resident);
    if need <= budget.bytes {
        return Ok(());
    }
    let largest = estimate.items.first().map_or_else(String::new, |i| {
        format!("; the largest is {} = {} ({})", i.what, human(i.bytes), i.culprit)
    });
    Err(Error::data(format!(
        "memory: this run needs about {} ({} for the model and its data, {} already loaded) but \
         the process may use {} ({}){largest}",
        human(need),
        human(estimate.total_bytes),
        human(resident),
        human(budget.bytes),
        budget.source
    )))
}

/// Bytes for people: `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{CategoricalStep, NumericStep};
    use crate::spec::{LogisticSpec, MlpSpec};

    fn pipeline(levels: usize) -> Pipeline {
        let numeric =
            vec![NumericStep { column: "x".into(), median: 0.0, mean: 0.0, scale: 1.0, indicator: false }];
        let categorical = vec![CategoricalStep {
            column: "merchant".into(),
            levels: (0..levels).map(|l| Some(l.to_string())).collect(),
            null_as: None,
        }];
        let mut names = vec!["x".to_string()];
        names.extend((0..=levels).map(|l| format!("merchant={l}")));
        Pipeline { numeric, categorical, names, f32_values: true }
    }

    #[test]
    fn a_wide_one_hot_design_names_the_categorical_column() {
        // Codes, not one-hot columns, hold the rows: 200,000 levels cost their coefficients.
        let budget = Budget { bytes: 24 << 30, source: "test".into() };
        let e =
            estimate(&ModelSpec::Logistic(LogisticSpec::default()), &pipeline(200_000), 400_000, 100_000, 2);
        assert_eq!(e.total_bytes, 500_000 * 2 * 4 + 400_000 * 8 + 200_002 * 26 * 8);
        check(&e, &budget, 0).unwrap();
        // What is left to refuse: more levels than the solver's vectors can hold.
        let e = estimate(
            &ModelSpec::Logistic(LogisticSpec::default()),
            &pipeline(200_000_000),
            400_000,
            100_000,
            2,
        );
        let err = check(&e, &budget, 0).unwrap_err().to_string();
        assert!(err.contains("features.categorical[0] \"merchant\" has 200000001 one-hot columns"), "{err}");
        assert!(err.contains("38.7 GiB"), "{err}");
        check(
            &estimate(&ModelSpec::Logistic(LogisticSpec::default()), &pipeline(10), 1000, 100, 2),
            &budget,
            0,
        )
        .unwrap();
    }

    #[test]
    fn huge_layers_saturate_instead_of_wrapping() {
        let spec = MlpSpec {
            hidden: vec![usize::MAX, usize::MAX],
            embedding_dim: Some(1 << 40),
            ..Default::default()
        };
        let e = estimate(&ModelSpec::Mlp(spec), &pipeline(3), 100, 10, 2);
        assert_eq!(e.total_bytes, u64::MAX);
        let err = check(&e, &Budget { bytes: 1 << 40, source: "test".into() }, 0).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("model.mlp"), "{err}");
    }
}
