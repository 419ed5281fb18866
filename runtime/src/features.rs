//! The feature pipeline: fitted on the train rows only, serialized into `model.json`, and applied
//! identically to test rows and to new data at `predict` time.
//!
//! - numeric: values are read as f32 (the design's precision, whatever the column's type); nulls
//!   and NaN → the train median, plus a 0/1 missing-indicator column, when the train rows had
//!   any; then `(x - mean) / std` with the population std of the imputed train values (a
//!   constant column keeps scale 1), as scikit-learn's `SimpleImputer` + `StandardScaler` do. A
//!   column without missing train values imputes later nulls with its train mean (0 once
//!   standardized): it has no median to compute, since no train row uses one.
//! - categorical: one column per value seen on at least `min_category_count` train rows (null
//!   counts as a value of its own), plus an "other" column for rarer values and values never seen
//!   in training.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{Column, Dense, Frame, Values};
use crate::error::{Error, Result};
use crate::spec::CategoricalNulls;

/// Rows per parallel work unit when building the design matrix.
const ROW_BLOCK: usize = 4096;

/// A dense row-major f32 matrix.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matrix {
    /// `rows * cols` values, row after row.
    pub data: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
}

impl Matrix {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// What both model kinds fit on: the numeric block (standardized values and missing
/// indicators) and, per categorical feature, each row's slot (a level, "other", or the null
/// level). Logistic coefficients have the one-hot layout over it; the MLP embeds the slots.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Design {
    /// The numeric block, one row per row.
    pub numeric: Matrix,
    /// `rows × slots.len()` slot indices, row after row.
    pub codes: Vec<u32>,
    /// Slots of each categorical feature (its levels plus "other").
    pub slots: Vec<usize>,
}

impl Design {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.numeric.rows
    }

    /// Width of the one-hot design: the numeric block plus every categorical slot.
    pub fn width(&self) -> usize {
        self.numeric.cols + self.slots.iter().sum::<usize>()
    }

    /// The rows as the kernels read them.
    pub fn view(&self) -> trainyard_kernels::logistic::Design<'_> {
        trainyard_kernels::logistic::Design {
            x: &self.numeric.data,
            rows: self.numeric.rows,
            cols: self.numeric.cols,
            codes: &self.codes,
            slots: &self.slots,
        }
    }

    /// Rows `rows`, gathered into a design of their own.
    pub fn gather(&self, rows: &[usize]) -> Design {
        let (cols, ncat) = (self.numeric.cols, self.slots.len());
        let mut data = Vec::with_capacity(rows.len() * cols);
        let mut codes = Vec::with_capacity(rows.len() * ncat);
        for &i in rows {
            data.extend_from_slice(self.numeric.row(i));
            codes.extend_from_slice(&self.codes[i * ncat..(i + 1) * ncat]);
        }
        Design { numeric: Matrix { data, rows: rows.len(), cols }, codes, slots: self.slots.clone() }
    }
}

/// One numeric feature's fitted statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericStep {
    /// Source column.
    pub column: String,
    /// The value nulls and NaN are imputed with: the train median when the train rows had
    /// missing values (`indicator` is then true), else the train mean.
    pub median: f64,
    /// Mean of the imputed train values.
    pub mean: f64,
    /// Population std of the imputed train values, or 1 for a constant column.
    pub scale: f64,
    /// Whether a missing-indicator column follows this feature.
    pub indicator: bool,
}

/// One categorical feature's fitted levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalStep {
    /// Source column.
    pub column: String,
    /// Levels with a column of their own, sorted; `null` is the null level. The "other" column
    /// follows them.
    pub levels: Vec<Option<String>>,
    /// The value nulls are read as (`categorical_nulls: most_frequent`), or `None` when null is
    /// a level of its own.
    #[serde(default)]
    pub null_as: Option<String>,
}

/// The fitted pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// Numeric features, in spec order.
    pub numeric: Vec<NumericStep>,
    /// Categorical features, in spec order.
    pub categorical: Vec<CategoricalStep>,
    /// Names of the design-matrix columns, in order.
    pub names: Vec<String>,
    /// Whether numeric values are rounded to f32 before they are standardized: true for every
    /// pipeline fitted since numeric columns decode straight into f32 rows. Pipelines fitted
    /// before (absent in their `model.json`) standardized the f64 value and keep doing so, so
    /// their runs score the same bits as when they were trained.
    #[serde(default)]
    pub f32_values: bool,
}

impl Pipeline {
    /// Fits on `frame` (the train rows). `numeric` and `categorical` name frame columns;
    /// `min_count` is the rare-value threshold.
    pub fn fit(
        frame: &Frame,
        numeric: &[String],
        categorical: &[String],
        min_count: u64,
        nulls: CategoricalNulls,
    ) -> Result<Pipeline> {
        let dense_wanted: Vec<(usize, usize)> = numeric
            .iter()
            .enumerate()
            .filter_map(|(i, name)| frame.dense.index(name).map(|j| (i, j)))
            .collect();
        let mut steps: Vec<Option<NumericStep>> = vec![None; numeric.len()];
        for (&(i, _), step) in dense_wanted.iter().zip(fit_dense(&frame.dense, &dense_wanted)?) {
            steps[i] = Some(step);
        }
        let from_frame: Vec<(usize, NumericStep)> = numeric
            .par_iter()
            .enumerate()
            .filter(|(_, name)| frame.dense.index(name).is_none())
            .map(|(i, name)| Ok((i, fit_numeric(name, column(frame, name)?, i)?)))
            .collect::<Result<_>>()?;
        for (i, step) in from_frame {
            steps[i] = Some(step);
        }
        let numeric: Vec<NumericStep> = steps
            .into_iter()
            .map(|s| s.ok_or_else(|| Error::Internal("a numeric feature was not fitted".into())))
            .collect::<Result<_>>()?;
        let categorical: Vec<CategoricalStep> = categorical
            .par_iter()
            .map(|name| Ok(fit_categorical(name, column(frame, name)?, min_count, nulls)))
            .collect::<Result<_>>()?;
        let mut names = Vec::new();
        for n in &numeric {
            names.push(n.column.clone());
            if n.indicator {
                names.push(format!("{}=<missing>", n.column));
            }
        }
        for c in &categorical {
            for l in &c.levels {
                names.push(format!("{}={}", c.column, l.as_deref().unwrap_or("<null>")));
            }
            names.push(format!("{}=<other>", c.column));
        }
        Ok(Pipeline { numeric, categorical, names, f32_values: true })
    }

    /// Fits the features a spec lists, with its thresholds, on `frame` (the train rows).
    pub fn fit_spec(frame: &Frame, spec: &crate::spec::FeaturesSpec) -> Result<Pipeline> {
        Self::fit(frame, &spec.numeric, &spec.categorical, spec.min_category_count, spec.categorical_nulls)
    }

    /// Checks a pipeline read from a `model.json` for what the transforms rely on: a design
    /// column name for every column the steps produce, and finite statistics. A fitted pipeline
    /// always passes; an edited or corrupt one fails here instead of indexing out of bounds.
    pub fn check(&self) -> std::result::Result<(), String> {
        let expected = self
            .categorical
            .iter()
            .try_fold(self.numeric.len() + self.numeric.iter().filter(|n| n.indicator).count(), |w, c| {
                w.checked_add(c.levels.len())?.checked_add(1)
            })
            .ok_or("the pipeline's width overflows")?;
        if expected != self.names.len() {
            return Err(format!(
                "the pipeline's steps make {expected} design columns but it names {}",
                self.names.len()
            ));
        }
        for n in &self.numeric {
            if !(n.median.is_finite() && n.mean.is_finite() && n.scale.is_finite() && n.scale > 0.0) {
                return Err(format!(
                    "numeric step {:?} has median {}, mean {}, scale {}; they must be finite, the scale > 0",
                    n.column, n.median, n.mean, n.scale
                ));
            }
        }
        Ok(())
    }

    /// Width of the design matrix.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// Width of the numeric block: one column per numeric feature plus its missing indicator.
    pub fn numeric_width(&self) -> usize {
        self.numeric.iter().map(|n| 1 + usize::from(n.indicator)).sum()
    }

    /// Slots of each categorical feature: its levels plus the "other" slot.
    pub fn cardinalities(&self) -> Vec<usize> {
        self.categorical.iter().map(|c| c.levels.len() + 1).collect()
    }

    /// Builds the dense one-hot design matrix for `frame`'s rows: the textbook form of
    /// [`design`](Self::design), which tests compare with. Every feature column must be present
    /// with a usable kind (names the column otherwise).
    pub fn transform(&self, frame: &Frame) -> Result<Matrix> {
        Ok(self.encode(frame, Encoding::OneHot)?.0)
    }

    /// The design of `frame`'s rows: what both model kinds fit on and score.
    pub fn design(&self, frame: &Frame) -> Result<Design> {
        let (numeric, codes) = self.transform_embedded(frame)?;
        Ok(Design { numeric, codes, slots: self.cardinalities() })
    }

    /// [`design`](Self::design) consuming the frame's dense rows, standardized in place when
    /// their layout allows (see [`transform_embedded_owned`](Self::transform_embedded_owned)).
    pub fn design_owned(&self, frame: &mut Frame) -> Result<Design> {
        let (numeric, codes) = self.transform_embedded_owned(frame)?;
        Ok(Design { numeric, codes, slots: self.cardinalities() })
    }

    /// Builds the numeric block (standardized values and missing indicators) and, per
    /// categorical feature, the slot index of each row (what embeddings look up): row-major,
    /// `rows × categorical.len()`.
    pub fn transform_embedded(&self, frame: &Frame) -> Result<(Matrix, Vec<u32>)> {
        self.encode(frame, Encoding::Index)
    }

    /// [`transform_embedded`](Self::transform_embedded) for a frame that is no longer needed as
    /// it is: when the frame's dense rows already have the numeric block's layout (every
    /// numeric feature dense, in order, none with a missing indicator) they are standardized in
    /// place, so the design costs no second copy. The frame's dense rows are consumed either way.
    pub fn transform_embedded_owned(&self, frame: &mut Frame) -> Result<(Matrix, Vec<u32>)> {
        if let Some(m) = self.standardize_in_place(frame) {
            let m = m?;
            let mut codes_only = Pipeline { numeric: Vec::new(), ..self.clone() };
            codes_only.names.clear();
            let (_, codes) = codes_only.encode(frame, Encoding::Index)?;
            return Ok((m, codes));
        }
        let out = self.transform_embedded(frame);
        frame.dense = Dense::default();
        out
    }

    fn standardize_in_place(&self, frame: &mut Frame) -> Option<Result<Matrix>> {
        let same_layout = frame.dense.cols() == self.numeric.len()
            && self.numeric.iter().zip(&frame.dense.names).all(|(n, d)| &n.column == d && !n.indicator);
        if !same_layout || self.numeric.is_empty() {
            return None;
        }
        let cols = self.numeric.len();
        let mut data = std::mem::take(&mut frame.dense).data;
        let first_bad = data
            .par_chunks_mut(ROW_BLOCK * cols)
            .enumerate()
            .map(|(b, block)| {
                let mut bad = None;
                for (r, row) in block.chunks_exact_mut(cols).enumerate() {
                    for (j, (x, n)) in row.iter_mut().zip(&self.numeric).enumerate() {
                        let raw = *x;
                        *x = standardize(n, Some(f64::from(raw)).filter(|v| !v.is_nan()));
                        if !x.is_finite() && bad.is_none() {
                            bad =
                                Some(NonFinite { feature: j, row: b * ROW_BLOCK + r, value: f64::from(raw) });
                        }
                    }
                }
                bad
            })
            .reduce(|| None, |a, b| a.or(b));
        Some(match first_bad {
            Some(bad) => Err(bad.error(self)),
            None => Ok(Matrix { data, rows: frame.rows, cols }),
        })
    }

    fn encode(&self, frame: &Frame, encoding: Encoding) -> Result<(Matrix, Vec<u32>)> {
        let numeric = self
            .numeric
            .iter()
            .map(|n| {
                if let Some(j) = frame.dense.index(&n.column) {
                    return Ok((n, Source::Dense(j)));
                }
                let c = column(frame, &n.column)?;
                if c.kind.is_numeric() {
                    Ok((n, Source::Column(c)))
                } else {
                    Err(Error::data(format!(
                        "column {:?} is {} but the model uses it as a numeric feature",
                        n.column,
                        c.kind.name()
                    )))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let categorical = self
            .categorical
            .iter()
            .map(|cat| Ok(Slots::new(cat, column(frame, &cat.column)?)))
            .collect::<Result<Vec<_>>>()?;
        let cols = match encoding {
            Encoding::OneHot => self.width(),
            Encoding::Index => self.numeric_width(),
        };
        let ncat = categorical.len();
        let rows = frame.rows;
        let mut data = vec![0f32; rows * cols];
        let mut codes = vec![0u32; if encoding == Encoding::Index { rows * ncat } else { 0 }];
        let numeric_width = self.numeric_width();
        // Column by column within a block of rows: the value kind is matched once per column
        // and block, not once per cell.
        let dense_cols = frame.dense.cols();
        let fill = |first: usize, block: &mut [f32], block_codes: &mut [u32]| {
            let block_rows = block.len().checked_div(cols).unwrap_or_else(|| block_codes.len() / ncat.max(1));
            let mut off = 0;
            let mut bad: Option<NonFinite> = None;
            for (feature, (n, source)) in numeric.iter().enumerate() {
                let mut write = |out: &mut [f32], r: usize, v: Option<f64>| {
                    let z = standardize(n, v);
                    out[r * cols + off] = z;
                    if n.indicator {
                        out[r * cols + off + 1] = f32::from(u8::from(v.is_none()));
                    }
                    if !z.is_finite() && bad.is_none() {
                        bad = Some(NonFinite { feature, row: first + r, value: v.unwrap_or(f64::NAN) });
                    }
                };
                let c = match source {
                    Source::Dense(j) => {
                        let rows = &frame.dense.data[first * dense_cols..(first + block_rows) * dense_cols];
                        for (r, row) in rows.chunks_exact(dense_cols).enumerate() {
                            write(block, r, Some(f64::from(row[*j])).filter(|x| !x.is_nan()));
                        }
                        off += 1 + usize::from(n.indicator);
                        continue;
                    }
                    Source::Column(c) => c,
                };
                // Rounded to f32 first, as the dense path stores them (`data::to_design`), unless
                // the pipeline predates that.
                let round = |x: f64| if self.f32_values { f64::from(x as f32) } else { x };
                match (&c.values, &c.nulls) {
                    (Values::Float(v), None) => {
                        for (r, &x) in v[first..first + block_rows].iter().enumerate() {
                            write(block, r, Some(round(x)).filter(|x| !x.is_nan()));
                        }
                    }
                    (Values::Int(v), None) => {
                        for (r, &x) in v[first..first + block_rows].iter().enumerate() {
                            write(block, r, Some(round(x as f64)));
                        }
                    }
                    _ => {
                        for r in 0..block_rows {
                            write(block, r, c.f64_at(first + r).map(round).filter(|x| !x.is_nan()));
                        }
                    }
                }
                off += 1 + usize::from(n.indicator);
            }
            debug_assert_eq!(off, numeric_width);
            for (j, slots) in categorical.iter().enumerate() {
                for r in 0..block_rows {
                    let slot = slots.at(first + r);
                    match encoding {
                        Encoding::OneHot => block[r * cols + off + slot as usize] = 1.0,
                        Encoding::Index => block_codes[r * ncat + j] = slot,
                    }
                }
                if encoding == Encoding::OneHot {
                    off += slots.other as usize + 1;
                }
            }
            bad
        };
        let first_bad = match encoding {
            Encoding::OneHot if cols > 0 => data
                .par_chunks_mut(ROW_BLOCK * cols)
                .enumerate()
                .map(|(b, block)| fill(b * ROW_BLOCK, block, &mut []))
                .reduce(|| None, |a, b| a.or(b)),
            Encoding::Index if cols > 0 || ncat > 0 => {
                // Chunk both outputs by the same row blocks; a side with no columns gets empty
                // chunks of the right count.
                let blocks = rows.div_ceil(ROW_BLOCK);
                let mut data_chunks: Vec<&mut [f32]> = if cols > 0 {
                    data.chunks_mut(ROW_BLOCK * cols).collect()
                } else {
                    (0..blocks).map(|_| &mut [][..]).collect()
                };
                let mut code_chunks: Vec<&mut [u32]> = if ncat > 0 {
                    codes.chunks_mut(ROW_BLOCK * ncat).collect()
                } else {
                    (0..blocks).map(|_| &mut [][..]).collect()
                };
                data_chunks
                    .par_iter_mut()
                    .zip(code_chunks.par_iter_mut())
                    .enumerate()
                    .map(|(b, (block, block_codes))| fill(b * ROW_BLOCK, block, block_codes))
                    .reduce(|| None, |a, b| a.or(b))
            }
            _ => None,
        };
        if let Some(bad) = first_bad {
            return Err(bad.error(self));
        }
        Ok((Matrix { data, rows, cols }, codes))
    }
}

/// The first numeric value that standardizes to ±inf in f32: a value far outside the train
/// rows' range (|x − mean| > 3.4e38 · scale). Infinite inputs are refused when the data is read.
struct NonFinite {
    /// Index into the pipeline's numeric steps.
    feature: usize,
    /// Row of the frame being transformed.
    row: usize,
    /// The raw value.
    value: f64,
}

impl NonFinite {
    fn error(&self, pipeline: &Pipeline) -> Error {
        let n = &pipeline.numeric[self.feature];
        Error::data(format!(
            "column {:?}: the value {:e} at row {} standardizes to infinity in float32 (train mean {:e}, \
             scale {:e}); numeric features must be finite and within float32 range once standardized",
            n.column, self.value, self.row, n.mean, n.scale
        ))
    }
}

/// The standardized f32 value of a numeric feature; `None` is a null or NaN. Both the frame and
/// the dense path go through here, so they build the same bits.
#[inline]
fn standardize(n: &NumericStep, v: Option<f64>) -> f32 {
    ((v.unwrap_or(n.median) - n.mean) / n.scale) as f32
}

/// Where a numeric feature's values are.
enum Source<'a> {
    /// Column `j` of the frame's dense rows.
    Dense(usize),
    /// A frame column.
    Column(&'a Column),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    OneHot,
    Index,
}

/// Resolves a categorical column's values to slots: level index, or `other`.
struct Slots<'a> {
    column: &'a Column,
    by_value: HashMap<Option<String>, u32>,
    /// For dictionary strings: the slot of each dictionary entry, resolved once, not per row.
    by_code: Vec<u32>,
    other: u32,
}

impl<'a> Slots<'a> {
    fn new(cat: &CategoricalStep, column: &'a Column) -> Self {
        let mut by_value: HashMap<Option<String>, u32> =
            cat.levels.iter().enumerate().map(|(i, l)| (l.clone(), i as u32)).collect();
        let other = cat.levels.len() as u32;
        if let Some(v) = &cat.null_as {
            let slot = by_value.get(&Some(v.clone())).copied().unwrap_or(other);
            by_value.insert(None, slot);
        }
        let by_code = match &column.values {
            Values::Str { dict, .. } => {
                dict.iter().map(|s| by_value.get(&Some(s.clone())).copied().unwrap_or(other)).collect()
            }
            _ => Vec::new(),
        };
        Slots { column, by_value, by_code, other }
    }

    fn at(&self, i: usize) -> u32 {
        let c = self.column;
        if c.is_null(i) {
            self.by_value.get(&None).copied().unwrap_or(self.other)
        } else if let Values::Str { codes, .. } = &c.values {
            self.by_code[codes[i] as usize]
        } else {
            self.by_value.get(&c.string_at(i)).copied().unwrap_or(self.other)
        }
    }
}

fn column<'a>(frame: &'a Frame, name: &str) -> Result<&'a Column> {
    frame.column(name).ok_or_else(|| Error::data(format!("feature column {name:?} is missing from the data")))
}

fn fit_numeric(name: &str, c: &Column, index: usize) -> Result<NumericStep> {
    if !c.kind.is_numeric() {
        return Err(Error::spec(
            format!("features.numeric[{index}]"),
            format!("column {name:?} is {}; list it under features.categorical", c.kind.name()),
        ));
    }
    // Rounded to f32, the design's precision, as the dense path reads them; NaN for missing. As
    // one dense column, so both paths take the same sums in the same order.
    let values: Vec<f32> = match (&c.values, &c.nulls) {
        (Values::Float(v), None) => v.iter().map(|&x| x as f32).collect(),
        _ => (0..c.len()).map(|i| c.f64_at(i).map_or(f32::NAN, |x| x as f32)).collect(),
    };
    let steps = fit_dense(&Dense { names: vec![name.to_string()], data: values }, &[(index, 0)])?;
    steps.into_iter().next().ok_or_else(|| Error::Internal("a numeric feature was not fitted".into()))
}

/// Rows per block of the moment sums. Fixed, not derived from the thread count: the blocks
/// decide the order of the sums.
const MOMENT_ROWS: usize = 8192;

/// Per column: the count, Σ d and Σ d² of its non-NaN values, d = x − shift. One array per
/// sum, so the loop over a row's columns vectorizes.
#[derive(Debug, Clone)]
struct Moments {
    count: Vec<u64>,
    s1: Vec<f64>,
    s2: Vec<f64>,
}

impl Moments {
    fn zeros(cols: usize) -> Moments {
        Moments { count: vec![0; cols], s1: vec![0.0; cols], s2: vec![0.0; cols] }
    }

    fn add(&mut self, o: &Moments) {
        for j in 0..self.count.len() {
            self.count[j] += o.count[j];
            self.s1[j] += o.s1[j];
            self.s2[j] += o.s2[j];
        }
    }

    /// Adds rows of `shift.len()` columns, in row order. Branch-free (a missing value adds 0), so
    /// the loop over a row's columns vectorizes.
    fn add_rows(&mut self, rows: &[f32], shift: &[f64]) {
        let cols = shift.len();
        let (count, s1, s2) = (&mut self.count[..cols], &mut self.s1[..cols], &mut self.s2[..cols]);
        for row in rows.chunks_exact(cols) {
            for j in 0..cols {
                let x = row[j];
                let present = !x.is_nan();
                let d = if present { f64::from(x) - shift[j] } else { 0.0 };
                s1[j] += d;
                s2[j] += d * d;
                count[j] += u64::from(present);
            }
        }
    }

    fn of(&self, j: usize) -> (u64, f64, f64) {
        (self.count[j], self.s1[j], self.s2[j])
    }
}

/// The first non-NaN value (0 when there is none): sums of x − shift lose nothing to
/// cancellation when the shift is a value of the column, however far its mean is from zero.
fn first_present(values: impl Iterator<Item = f32>) -> f64 {
    values.map(f64::from).find(|x| !x.is_nan()).unwrap_or(0.0)
}

/// The step of a numeric feature from the moments `(count, Σ d, Σ d²)` of its `total` train
/// rows around `shift`. `median` gives the median of the present values; it is computed only
/// when some rows are missing, since only then does training use it. Without missing train rows
/// the imputation value (for nulls in data scored later) is the train mean.
fn summarize(
    name: &str,
    index: usize,
    total: usize,
    (count, s1, s2): (u64, f64, f64),
    shift: f64,
    median: impl FnOnce() -> f64,
) -> Result<NumericStep> {
    let missing = total as u64 - count;
    if count == 0 {
        return Err(Error::data(format!(
            "features.numeric[{index}]: column {name:?} has no non-null values in the train rows"
        )));
    }
    let n = total as f64;
    let (median, s1, s2) = if missing > 0 {
        let med = median();
        let (d, k) = (med - shift, missing as f64);
        (Some(med), s1 + k * d, s2 + k * d * d)
    } else {
        (None, s1, s2)
    };
    let mean = shift + s1 / n;
    let var = (s2 / n - (s1 / n) * (s1 / n)).max(0.0);
    if !(mean.is_finite() && var.is_finite()) {
        // Values are within float32's range when read, so their squares fit in f64: a guard.
        return Err(Error::data(format!(
            "features.numeric[{index}]: column {name:?} is too large to standardize: the variance \
             of its train values overflows; rescale the column"
        )));
    }
    let std = var.sqrt();
    // Like scikit-learn, a std that is rounding noise relative to the mean counts as constant.
    let scale = if std <= 10.0 * f64::EPSILON * mean.abs().max(1.0) { 1.0 } else { std };
    Ok(NumericStep {
        column: name.to_string(),
        median: median.unwrap_or(mean),
        mean,
        scale,
        indicator: missing > 0,
    })
}

/// Steps of the numeric features `wanted` (`(spec index, dense column)`), in that order, from the
/// frame's dense rows: one parallel pass for every column's moments, then a gather and a median
/// only for the columns with missing train values.
fn fit_dense(dense: &Dense, wanted: &[(usize, usize)]) -> Result<Vec<NumericStep>> {
    let cols = dense.cols();
    let rows = dense.data.len().checked_div(cols).unwrap_or(0);
    if cols == 0 {
        return Ok(Vec::new());
    }
    let shift: Vec<f64> = (0..cols).map(|j| first_present(dense.column(j))).collect();
    let parts: Vec<Moments> = dense
        .data
        .par_chunks(MOMENT_ROWS * cols)
        .map(|block| {
            let mut m = Moments::zeros(cols);
            m.add_rows(block, &shift);
            m
        })
        .collect();
    let mut moments = Moments::zeros(cols);
    for part in &parts {
        moments.add(part);
    }
    wanted
        .par_iter()
        .map(|&(i, j)| {
            summarize(&dense.names[j], i, rows, moments.of(j), shift[j], || {
                let mut present: Vec<f32> = dense.column(j).filter(|x| !x.is_nan()).collect();
                median_f32(&mut present)
            })
        })
        .collect()
}

/// The median of non-NaN f32 values (non-empty), exactly as sorting by `total_cmp` would give:
/// a histogram of the top 16 bits of each value's order-preserving key finds the buckets holding
/// the middle ranks, and only those buckets' values are selected in. Two passes over the values
/// instead of a selection's many.
fn median_f32(v: &mut [f32]) -> f64 {
    const BITS: u32 = 16;
    let bucket = |x: f32| {
        let b = x.to_bits();
        (if b >> 31 == 1 { !b } else { b | 0x8000_0000 }) >> (32 - BITS)
    };
    let n = v.len();
    let ranks = if n % 2 == 1 { [n / 2, n / 2] } else { [n / 2 - 1, n / 2] };
    // u32 counts keep the table at 256 KiB, inside a core's cache; a column has fewer than
    // 2^32 rows (the matrix could not be allocated otherwise).
    let mut hist = vec![0u32; 1 << BITS];
    for &x in v.iter() {
        hist[bucket(x) as usize] += 1;
    }
    // The bucket of each rank and the rank inside it.
    let locate = |rank: usize| {
        let mut below = 0;
        for (b, &count) in hist.iter().enumerate() {
            let count = count as usize;
            if rank < below + count {
                return (b as u32, rank - below);
            }
            below += count;
        }
        unreachable!("rank < n")
    };
    let ((lo, lo_rank), (hi, hi_rank)) = (locate(ranks[0]), locate(ranks[1]));
    let mut lo_values = Vec::with_capacity(hist[lo as usize] as usize);
    let mut hi_values = Vec::with_capacity(if hi == lo { 0 } else { hist[hi as usize] as usize });
    for &x in v.iter() {
        let b = bucket(x);
        if b == lo {
            lo_values.push(x);
        } else if b == hi {
            hi_values.push(x);
        }
    }
    let lower = *lo_values.select_nth_unstable_by(lo_rank, f32::total_cmp).1;
    let upper = if hi == lo {
        // Both ranks in one bucket: the upper is the next value up within it.
        if hi_rank == lo_rank { lower } else { *lo_values.select_nth_unstable_by(hi_rank, f32::total_cmp).1 }
    } else {
        *hi_values.select_nth_unstable_by(hi_rank, f32::total_cmp).1
    };
    if n % 2 == 1 { f64::from(upper) } else { (f64::from(lower) + f64::from(upper)) / 2.0 }
}

fn fit_categorical(name: &str, c: &Column, min_count: u64, nulls: CategoricalNulls) -> CategoricalStep {
    let mut counts: HashMap<Option<String>, u64> = HashMap::new();
    match &c.values {
        Values::Str { codes, dict } => {
            let mut per_code = vec![0u64; dict.len()];
            let mut nulls = 0;
            for (i, &code) in codes.iter().enumerate() {
                if c.is_null(i) { nulls += 1 } else { per_code[code as usize] += 1 }
            }
            for (s, n) in dict.iter().zip(per_code) {
                if n > 0 {
                    counts.insert(Some(s.clone()), n);
                }
            }
            if nulls > 0 {
                counts.insert(None, nulls);
            }
        }
        _ => {
            for i in 0..c.len() {
                *counts.entry(c.string_at(i)).or_default() += 1;
            }
        }
    }
    let null_as = match nulls {
        CategoricalNulls::Level => None,
        CategoricalNulls::MostFrequent => {
            let null_rows = counts.remove(&None).unwrap_or(0);
            // Most frequent, ties to the smallest value, as scikit-learn's SimpleImputer.
            let mode =
                counts.iter().max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0))).map(|(v, _)| v.clone());
            if let Some(Some(m)) = &mode {
                *counts.entry(Some(m.clone())).or_default() += null_rows;
            }
            mode.flatten()
        }
    };
    let mut levels: Vec<Option<String>> =
        counts.into_iter().filter(|(_, n)| *n >= min_count).map(|(l, _)| l).collect();
    levels.sort();
    CategoricalStep { column: name.to_string(), levels, null_as }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Kind;

    fn frame(cols: Vec<(&str, Column)>) -> Frame {
        let rows = cols[0].1.len();
        let (names, columns) = cols.into_iter().map(|(n, c)| (n.to_string(), c)).unzip();
        Frame { names, columns, rows, ..Frame::default() }
    }

    #[test]
    fn numeric_imputes_median_adds_indicator_and_standardizes() {
        let x = Column {
            kind: Kind::Float,
            values: Values::Float(vec![1.0, 2.0, f64::NAN, 4.0, 0.0]),
            nulls: Some(vec![false, false, false, false, true]),
        };
        let k = Column { kind: Kind::Integer, values: Values::Int(vec![3; 5]), nulls: None };
        let f = frame(vec![("x", x), ("k", k)]);
        let p = Pipeline::fit(&f, &["x".into(), "k".into()], &[], 1, CategoricalNulls::Level).unwrap();
        let s = &p.numeric[0];
        // Median of {1, 2, 4} is 2; imputed column {1, 2, 2, 4, 2}: mean 2.2, population var 0.96.
        assert_eq!(s.median, 2.0);
        assert!((s.mean - 2.2).abs() < 1e-12);
        assert!((s.scale - 0.96f64.sqrt()).abs() < 1e-12);
        assert!(s.indicator);
        assert_eq!(p.numeric[1].scale, 1.0, "constant column left unscaled");
        // An even count takes the mean of the two middle values.
        let even = Column {
            kind: Kind::Float,
            values: Values::Float(vec![4.0, 1.0, 3.0, 2.0, 9.0, 0.0, f64::NAN]),
            nulls: None,
        };
        let fe = frame(vec![("e", even)]);
        let pe = Pipeline::fit(&fe, &["e".into()], &[], 1, CategoricalNulls::Level).unwrap();
        assert_eq!(pe.numeric[0].median, 2.5);
        // No missing train value: no median is computed, later nulls get the mean.
        let full = Column { kind: Kind::Float, values: Values::Float(vec![4.0, 1.0, 3.0, 9.0]), nulls: None };
        let pf =
            Pipeline::fit(&frame(vec![("f", full.clone())]), &["f".into()], &[], 1, CategoricalNulls::Level)
                .unwrap();
        assert_eq!((pf.numeric[0].median, pf.numeric[0].mean, pf.numeric[0].indicator), (4.25, 4.25, false));
        let with_null = Column { nulls: Some(vec![false, true, false, false]), ..full };
        let m = pf.transform(&frame(vec![("f", with_null)])).unwrap();
        assert_eq!(m.row(1), [0.0]);
        assert_eq!(p.names, ["x", "x=<missing>", "k"]);
        let m = p.transform(&f).unwrap();
        assert_eq!(m.cols, 3);
        let z = |v: f64| ((v - 2.2) / 0.96f64.sqrt()) as f32;
        assert_eq!(m.row(0), [z(1.0), 0.0, 0.0]);
        assert_eq!(m.row(2), [z(2.0), 1.0, 0.0]);
        assert_eq!(m.row(4), [z(2.0), 1.0, 0.0]);
    }

    #[test]
    fn radix_median_equals_the_sorted_median() {
        let mut state = 7u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        for n in [1, 2, 3, 4, 5, 10, 101, 1000, 4097, 50_000] {
            let samples: [Vec<f32>; 4] = [
                (0..n).map(|_| (next() % 1000) as f32 / 7.0 - 70.0).collect(),
                (0..n).map(|_| f32::from_bits(next()).clamp(-1e30, 1e30)).filter(|x| !x.is_nan()).collect(),
                (0..n).map(|i| if i % 2 == 0 { 0.0 } else { 1.0 }).collect(),
                (0..n).map(|i| if i % 3 == 0 { -0.0 } else { 0.0 }).collect(),
            ];
            for mut v in samples {
                if v.is_empty() {
                    continue;
                }
                let mut sorted = v.clone();
                sorted.sort_by(f32::total_cmp);
                let m = sorted.len();
                let want = if m % 2 == 1 {
                    f64::from(sorted[m / 2])
                } else {
                    (f64::from(sorted[m / 2 - 1]) + f64::from(sorted[m / 2])) / 2.0
                };
                let got = median_f32(&mut v);
                assert_eq!(got.to_bits(), want.to_bits(), "n = {m}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn dense_rows_give_the_same_pipeline_and_matrix_as_columns() {
        let values: Vec<Option<f32>> =
            (0..5000).map(|i| (i % 9 != 4).then(|| ((i * 37) % 101) as f32 * 0.3 - 11.0)).collect();
        let other: Vec<f32> =
            (0..5000).map(|i| if i % 17 == 0 { f32::NAN } else { (i % 7) as f32 }).collect();
        let column = |v: Vec<Option<f32>>| Column {
            kind: Kind::Float,
            values: Values::Float(v.iter().map(|x| x.map_or(0.0, f64::from)).collect()),
            nulls: Some(v.iter().map(Option::is_none).collect()),
        };
        let columns = frame(vec![
            ("a", column(values.clone())),
            ("b", column(other.iter().copied().map(Some).collect())),
        ]);
        let mut dense = Frame { rows: 5000, ..Frame::default() };
        dense.dense = Dense {
            names: vec!["a".into(), "b".into()],
            data: values.iter().zip(&other).flat_map(|(a, b)| [a.unwrap_or(f32::NAN), *b]).collect(),
        };
        let names = ["b".to_string(), "a".to_string()];
        let p1 = Pipeline::fit(&columns, &names, &[], 1, CategoricalNulls::Level).unwrap();
        let p2 = Pipeline::fit(&dense, &names, &[], 1, CategoricalNulls::Level).unwrap();
        assert_eq!(p1, p2);
        assert!(p1.numeric.iter().all(|n| n.indicator));
        assert_eq!(p1.transform(&columns).unwrap(), p2.transform(&dense).unwrap());
        assert_eq!(p1.transform(&columns).unwrap(), p2.design_owned(&mut dense).unwrap().numeric);
        assert!(dense.dense.data.is_empty(), "the dense rows are consumed");

        // Without missing values and in layout order, the rows are standardized in place.
        let plain: Vec<f32> = (0..3000).map(|i| (i % 13) as f32 * 1.5).collect();
        let cols = frame(vec![(
            "p",
            Column {
                kind: Kind::Float,
                values: Values::Float(plain.iter().map(|&x| f64::from(x)).collect()),
                nulls: None,
            },
        )]);
        let mut rows = Frame { rows: 3000, ..Frame::default() };
        rows.dense = Dense { names: vec!["p".into()], data: plain };
        let p = Pipeline::fit(&rows, &["p".into()], &[], 1, CategoricalNulls::Level).unwrap();
        let ptr = rows.dense.data.as_ptr();
        let m = p.design_owned(&mut rows).unwrap().numeric;
        assert_eq!(m.data.as_ptr(), ptr, "no copy");
        assert_eq!(m, p.transform(&cols).unwrap());
    }

    #[test]
    fn categorical_one_hot_with_other_slot_for_rare_and_unseen() {
        let c = Column {
            kind: Kind::String,
            values: Values::Str {
                codes: vec![0, 0, 1, 2, 0, 1, 0],
                dict: vec!["US".into(), "CA".into(), "FR".into()],
            },
            nulls: Some(vec![false, false, false, false, false, false, true]),
        };
        let f = frame(vec![("country", c)]);
        let p = Pipeline::fit(&f, &[], &["country".into()], 2, CategoricalNulls::Level).unwrap();
        // US 3, CA 2, FR 1 (rare), null 1 (rare at threshold 2).
        assert_eq!(p.categorical[0].levels, [Some("CA".to_string()), Some("US".to_string())]);
        assert_eq!(p.names, ["country=CA", "country=US", "country=<other>"]);
        let m = p.transform(&f).unwrap();
        assert_eq!(m.row(0), [0.0, 1.0, 0.0]);
        assert_eq!(m.row(2), [1.0, 0.0, 0.0]);
        assert_eq!(m.row(3), [0.0, 0.0, 1.0]);
        assert_eq!(m.row(6), [0.0, 0.0, 1.0]);

        // New data with its own dictionary order and an unseen value.
        let new = frame(vec![(
            "country",
            Column {
                kind: Kind::String,
                values: Values::Str { codes: vec![0, 1], dict: vec!["BR".into(), "US".into()] },
                nulls: None,
            },
        )]);
        let m = p.transform(&new).unwrap();
        assert_eq!(m.data, [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);

        // With threshold 1 the null level gets its own column.
        let p1 = Pipeline::fit(&f, &[], &["country".into()], 1, CategoricalNulls::Level).unwrap();
        assert_eq!(p1.categorical[0].levels[0], None);
        assert_eq!(p1.transform(&f).unwrap().row(6), [1.0, 0.0, 0.0, 0.0, 0.0]);

        // most_frequent: the null row reads as US (3 rows), and US now counts 4.
        let pm = Pipeline::fit(&f, &[], &["country".into()], 1, CategoricalNulls::MostFrequent).unwrap();
        assert_eq!(pm.categorical[0].null_as.as_deref(), Some("US"));
        assert_eq!(pm.names, ["country=CA", "country=FR", "country=US", "country=<other>"]);
        assert_eq!(pm.transform(&f).unwrap().row(6), pm.transform(&f).unwrap().row(0));
    }

    #[test]
    fn embedded_encoding_gives_numeric_block_and_slot_indices() {
        let x = Column {
            kind: Kind::Float,
            values: Values::Float(vec![1.0, 3.0, 0.0]),
            nulls: Some(vec![false, false, true]),
        };
        let c = Column {
            kind: Kind::String,
            values: Values::Str { codes: vec![0, 1, 1], dict: vec!["a".into(), "b".into()] },
            nulls: None,
        };
        let f = frame(vec![("x", x), ("c", c)]);
        let p = Pipeline::fit(&f, &["x".into()], &["c".into()], 2, CategoricalNulls::Level).unwrap();
        assert_eq!(p.numeric_width(), 2);
        assert_eq!(p.cardinalities(), [2]);
        let onehot = p.transform(&f).unwrap();
        let (num, codes) = p.transform_embedded(&f).unwrap();
        assert_eq!((num.rows, num.cols), (3, 2));
        // "a" is rare (1 row < 2): the other slot, 1; "b" is level 0.
        assert_eq!(codes, [1, 0, 0]);
        for i in 0..3 {
            assert_eq!(num.row(i), &onehot.row(i)[..2]);
        }
    }

    #[test]
    fn integer_categoricals_and_roundtrip_through_json() {
        let c = Column { kind: Kind::Integer, values: Values::Int(vec![5, 7, 5]), nulls: None };
        let f = frame(vec![("mcc", c)]);
        let p = Pipeline::fit(&f, &[], &["mcc".into()], 1, CategoricalNulls::Level).unwrap();
        assert_eq!(p.names, ["mcc=5", "mcc=7", "mcc=<other>"]);
        let back: Pipeline = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back.transform(&f).unwrap(), p.transform(&f).unwrap());
    }

    #[test]
    fn string_column_declared_numeric_is_a_spec_error() {
        let c = Column {
            kind: Kind::String,
            values: Values::Str { codes: vec![0], dict: vec!["a".into()] },
            nulls: None,
        };
        let err =
            Pipeline::fit(&frame(vec![("country", c)]), &["country".into()], &[], 1, CategoricalNulls::Level)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "features.numeric[0]: column \"country\" is string; list it under features.categorical"
        );
    }
}
