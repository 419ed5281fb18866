//! A run's fitted pipeline and model as one ONNX graph over the raw feature columns. Every step
//! repeats what [`crate::features`] and the model do at `predict` time, in the same precision:
//! numeric values are rounded to float32 and standardized in float64 before the float32 cast,
//! logistic scores are summed in float64, the MLP runs in float32 and its outputs go through the
//! sigmoid or softmax in float64.

use crate::artifact::Run;
use crate::error::{Error, Result};
use crate::features::{CategoricalStep, Pipeline};
use crate::model::Model as Fitted;
use crate::partition::{GroupKey, GroupModels};

use super::proto::{Attr, Dim, ElemType, Model, Node, Tensor, ValueInfo, Values};

/// `ai.onnx` operator set of the graph (Where-16, GreaterOrEqual-16 and the opset-13 forms of
/// Unsqueeze and ReduceSum, which take their axes as an input).
pub const OPSET: i64 = 17;
/// `ai.onnx.ml` operator set (LabelEncoder-2).
pub const ML_OPSET: i64 = 3;
/// IR version that goes with opset 17.
pub const IR_VERSION: i64 = 8;
/// What an int64 categorical input holds for a null.
pub const INT64_NULL: i64 = i64::MIN;
/// The output names.
pub const PROBABILITIES: &str = "probabilities";
/// See [`PROBABILITIES`].
pub const LABEL: &str = "label";

/// Choices an export makes that the run does not decide.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// The string a categorical (or string group) input holds for a null: ONNX string tensors
    /// have no null. Default: the empty string.
    pub null_string: String,
    /// Categorical columns whose input is int64 rather than string: every level must be an
    /// integer; null is [`INT64_NULL`] (an int64 tensor cannot hold null). Default: none.
    pub int64: Vec<String>,
}

/// Where the model came from, recorded in the model's metadata.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// `manifest.json` `run_id`.
    pub run_id: String,
    /// `manifest.json` `spec_sha256`.
    pub spec_sha256: String,
}

/// Refuses, before anything is built, what the graph could not score as `predict` does: an
/// input named like an output, or a categorical level (or group key) spelled like the null
/// string. Training with `"export": ["onnx"]` calls it right after the pipeline is fitted, so
/// such a run fails before its fit rather than after it.
pub fn check<'a>(
    pipeline: &Pipeline,
    by: Option<&str>,
    group_keys: impl IntoIterator<Item = &'a GroupKey>,
    opts: &Options,
) -> Result<()> {
    let inputs =
        pipeline.numeric.iter().map(|n| &n.column).chain(pipeline.categorical.iter().map(|c| &c.column));
    for name in inputs.map(String::as_str).chain(by) {
        if name == PROBABILITIES || name == LABEL {
            return Err(Error::Usage(format!(
                "column {name:?} has the name of an output of the ONNX graph ({PROBABILITIES}, {LABEL}); \
                 rename the column to export this model"
            )));
        }
    }
    for c in &pipeline.categorical {
        level_keys(c, opts)?;
    }
    for name in &opts.int64 {
        let Some(c) = pipeline.categorical.iter().find(|c| &c.column == name) else {
            let names: Vec<&str> = pipeline.categorical.iter().map(|c| c.column.as_str()).collect();
            return Err(Error::Usage(format!(
                "--int64 {name}: not a categorical feature of this model; its categorical features: {}",
                names.join(", ")
            )));
        };
        if let Some(level) = c
            .levels
            .iter()
            .flatten()
            .find(|l| l.parse::<i64>().ok().map(|v| v.to_string()) != Some(l.to_string()))
        {
            return Err(Error::Usage(format!(
                "--int64 {name}: the level {level:?} is not an integer; leave the column a string input"
            )));
        }
    }
    if let Some(by) = by
        && !pipeline.numeric.iter().any(|n| n.column == by)
        && let Some(k) =
            group_keys.into_iter().find(|k| matches!(k, GroupKey::Str(s) if *s == opts.null_string))
    {
        return Err(null_clash(by, &k.to_string(), "a group of partition.by"));
    }
    Ok(())
}

fn null_clash(column: &str, value: &str, what: &str) -> Error {
    Error::Usage(format!(
        "column {column:?}: {value:?} is {what}, and also the string the ONNX graph reads as null \
         (--null-string, default \"\"); export with another --null-string, e.g. `trainyard export RUN \
         --null-string '<null>'`"
    ))
}

/// The LabelEncoder of a categorical step: every non-null level to its slot and the null
/// string to the slot a null takes (its own level, the `null_as` level, or `<other>`);
/// anything else defaults to `<other>`, as unseen values do at `predict` time.
fn level_keys(step: &CategoricalStep, opts: &Options) -> Result<(Vec<String>, Vec<i64>, i64)> {
    let other = step.levels.len();
    let null_slot = null_slot(step);
    // An int64 input is matched as its decimal text, its null as the text of INT64_NULL.
    let null = match opts.int64.contains(&step.column) {
        true => INT64_NULL.to_string(),
        false => opts.null_string.clone(),
    };
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    for (slot, level) in step.levels.iter().enumerate() {
        let Some(level) = level else { continue };
        if *level == null && slot != null_slot {
            return Err(null_clash(&step.column, level, "a level of its own"));
        }
        keys.push(level.clone());
        values.push(slot as i64);
    }
    if !keys.contains(&null) {
        keys.push(null);
        values.push(null_slot as i64);
    }
    Ok((keys, values, other as i64))
}

/// The slot a null takes: its own level, the `null_as` level, or `<other>`.
fn null_slot(step: &CategoricalStep) -> usize {
    let slot_of = |v: Option<&str>| step.levels.iter().position(|l| l.as_deref() == v);
    match &step.null_as {
        Some(v) => slot_of(Some(v)),
        None => slot_of(None),
    }
    .unwrap_or(step.levels.len())
}

/// Nodes and constants, named under a prefix no input column has.
struct Builder {
    nodes: Vec<Node>,
    constants: Vec<Tensor>,
    prefix: String,
    next: usize,
    /// The `[1]` axes constant of Unsqueeze and ReduceSum, once made.
    axis_one: Option<String>,
}

impl Builder {
    fn name(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{}{hint}_{}", self.prefix, self.next)
    }

    fn node(
        &mut self,
        op: &'static str,
        domain: &'static str,
        inputs: &[&str],
        attrs: Vec<(&'static str, Attr)>,
        out: String,
    ) -> String {
        self.nodes.push(Node {
            op,
            domain,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![out.clone()],
            attrs,
        });
        out
    }

    fn op(&mut self, op: &'static str, inputs: &[&str], attrs: Vec<(&'static str, Attr)>) -> String {
        let out = self.name(&op.to_ascii_lowercase());
        self.node(op, "", inputs, attrs, out)
    }

    fn constant(&mut self, hint: &str, dims: Vec<usize>, values: Values) -> String {
        let name = self.name(hint);
        self.constants.push(Tensor {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            values,
        });
        name
    }

    fn cast(&mut self, x: &str, to: ElemType) -> String {
        self.op("Cast", &[x], vec![("to", Attr::Int(to as i64))])
    }

    fn axis_one(&mut self) -> String {
        if self.axis_one.is_none() {
            self.axis_one = Some(self.constant("axes", vec![1], Values::Int64(vec![1])));
        }
        self.axis_one.clone().unwrap_or_default()
    }

    /// `[N]` → `[N, 1]`.
    fn column(&mut self, x: &str) -> String {
        let axes = self.axis_one();
        self.op("Unsqueeze", &[x, &axes], vec![])
    }

    fn concat(&mut self, parts: &[String]) -> String {
        match parts {
            [one] => one.clone(),
            _ => {
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                self.op("Concat", &refs, vec![("axis", Attr::Int(1))])
            }
        }
    }

    fn gather(&mut self, table: &str, index: &str, axis: i64) -> String {
        self.op("Gather", &[table, index], vec![("axis", Attr::Int(axis))])
    }
}

/// The pipeline's output as graph values.
struct Encoded {
    /// float32 `[N, numeric width]`: standardized values, then missing indicators.
    block: Option<String>,
    /// For each column of `block`, its column in the design (where indicators interleave).
    order: Vec<usize>,
    /// int64 `[N]` slot of each categorical feature.
    codes: Vec<String>,
}

fn batch() -> Vec<Dim> {
    vec![Dim::Named("N".into())]
}

/// The pipeline: inputs declared in `inputs`, nodes that turn them into the numeric block and
/// the categorical slots.
fn encode(b: &mut Builder, p: &Pipeline, opts: &Options, inputs: &mut Vec<ValueInfo>) -> Result<Encoded> {
    let mut block = None;
    let mut order = Vec::new();
    if !p.numeric.is_empty() {
        let mut columns = Vec::new();
        let mut position = 0;
        let mut indicators = Vec::new();
        for (k, n) in p.numeric.iter().enumerate() {
            inputs.push(ValueInfo {
                name: n.column.clone(),
                elem: ElemType::Double,
                dims: batch(),
                doc: format!(
                    "numeric feature; NaN is missing (imputed with {}); standardized with mean {} and scale {}",
                    n.median, n.mean, n.scale
                ),
            });
            columns.push(b.column(&n.column));
            order.push(position);
            if n.indicator {
                indicators.push((k as i64, position + 1));
            }
            position += 1 + usize::from(n.indicator);
        }
        let mut raw = b.concat(&columns);
        if p.f32_values {
            // The design holds float32 values: round first, as the Parquet reader does.
            let f = b.cast(&raw, ElemType::Float);
            raw = b.cast(&f, ElemType::Double);
        }
        let width = p.numeric.len();
        let missing = b.op("IsNaN", &[&raw], vec![]);
        let median =
            b.constant("median", vec![width], Values::Double(p.numeric.iter().map(|n| n.median).collect()));
        let mean =
            b.constant("mean", vec![width], Values::Double(p.numeric.iter().map(|n| n.mean).collect()));
        let scale =
            b.constant("scale", vec![width], Values::Double(p.numeric.iter().map(|n| n.scale).collect()));
        let filled = b.op("Where", &[&missing, &median, &raw], vec![]);
        let centered = b.op("Sub", &[&filled, &mean], vec![]);
        let scaled = b.op("Div", &[&centered, &scale], vec![]);
        let z = b.cast(&scaled, ElemType::Float);
        block = Some(if indicators.is_empty() {
            z
        } else {
            let flags = b.cast(&missing, ElemType::Float);
            let which = b.constant(
                "indicators",
                vec![indicators.len()],
                Values::Int64(indicators.iter().map(|&(k, _)| k).collect()),
            );
            let picked = b.gather(&flags, &which, 1);
            order.extend(indicators.iter().map(|&(_, at)| at));
            b.concat(&[z, picked])
        });
    }
    let mut codes = Vec::new();
    for c in &p.categorical {
        let (keys, values, other) = level_keys(c, opts)?;
        let int64 = opts.int64.contains(&c.column);
        inputs.push(ValueInfo {
            name: c.column.clone(),
            elem: if int64 { ElemType::Int64 } else { ElemType::String },
            dims: batch(),
            doc: if int64 {
                format!(
                    "categorical feature; {INT64_NULL} is null; {} levels, other values score as <other>",
                    c.levels.len()
                )
            } else {
                format!(
                    "categorical feature; {:?} is null; {} levels, other values score as <other>",
                    opts.null_string,
                    c.levels.len()
                )
            },
        });
        // Integers are matched as the decimal text `predict` compares them by.
        let text = if int64 { b.cast(&c.column, ElemType::String) } else { c.column.clone() };
        let out = b.name("codes");
        codes.push(b.node(
            "LabelEncoder",
            "ai.onnx.ml",
            &[&text],
            vec![
                ("keys_strings", Attr::Strings(keys)),
                ("values_int64s", Attr::Ints(values)),
                ("default_int64", Attr::Int(other)),
            ],
            out,
        ));
    }
    Ok(Encoded { block, order, codes })
}

/// The linear scores of logistic models with coefficient rows `rows` (one-hot layout) and
/// `intercepts`: float64 `[N, rows.len()]`.
fn linear(
    b: &mut Builder,
    p: &Pipeline,
    e: &Encoded,
    x: Option<&str>,
    rows: &[&[f64]],
    intercepts: &[f64],
) -> String {
    let k = rows.len();
    let mut terms = Vec::new();
    if let Some(x) = x {
        let w: Vec<f64> = e.order.iter().flat_map(|&j| rows.iter().map(move |r| r[j])).collect();
        let w = b.constant("coef", vec![e.order.len(), k], Values::Double(w));
        terms.push(b.op("MatMul", &[x, &w], vec![]));
    }
    let mut offset = p.numeric_width();
    for (codes, slots) in e.codes.iter().zip(p.cardinalities()) {
        let table: Vec<f64> = (offset..offset + slots).flat_map(|s| rows.iter().map(move |r| r[s])).collect();
        let table = b.constant("levels", vec![slots, k], Values::Double(table));
        terms.push(b.gather(&table, codes, 0));
        offset += slots;
    }
    terms.push(b.constant("intercept", vec![k], Values::Double(intercepts.to_vec())));
    let refs: Vec<&str> = terms.iter().map(String::as_str).collect();
    b.op("Sum", &refs, vec![])
}

/// The group models' score of each row whose group has one, composed over `p1` (the generic
/// model's `[N, 1]` probability): float64 `[N, 1]`.
fn compose(
    b: &mut Builder,
    p: &Pipeline,
    e: &Encoded,
    x: Option<&str>,
    groups: &GroupModels,
    (key, keys): (String, Vec<String>),
    p1: String,
) -> String {
    let g = groups.keys.len();
    if g == 0 {
        return p1;
    }
    let out = b.name("group");
    let index = b.node(
        "LabelEncoder",
        "ai.onnx.ml",
        &[&key],
        vec![
            ("keys_strings", Attr::Strings(keys)),
            ("values_int64s", Attr::Ints((0..g as i64).collect())),
            ("default_int64", Attr::Int(-1)),
        ],
        out,
    );
    let zero = b.constant("zero", vec![], Values::Int64(vec![0]));
    let has = b.op("GreaterOrEqual", &[&index, &zero], vec![]);
    let row = b.op("Where", &[&has, &index, &zero], vec![]);
    let cols = groups.cols;
    let mut terms = Vec::new();
    if let Some(x) = x {
        let w: Vec<f64> =
            (0..g).flat_map(|r| e.order.iter().map(move |&j| groups.coef[r * cols + j])).collect();
        let w = b.constant("group_coef", vec![g, e.order.len()], Values::Double(w));
        let per_row = b.gather(&w, &row, 0);
        let products = b.op("Mul", &[&per_row, x], vec![]);
        let axes = b.axis_one();
        terms.push(b.op("ReduceSum", &[&products, &axes], vec![("keepdims", Attr::Int(1))]));
    }
    let mut offset = p.numeric_width();
    for (codes, slots) in e.codes.iter().zip(p.cardinalities()) {
        // One flat table, indexed by group row × slots + slot: a lookup per row, whatever the
        // number of groups.
        let table: Vec<f64> =
            (0..g).flat_map(|r| (offset..offset + slots).map(move |s| groups.coef[r * cols + s])).collect();
        let table = b.constant("group_levels", vec![g * slots], Values::Double(table));
        let width = b.constant("slots", vec![], Values::Int64(vec![slots as i64]));
        let base = b.op("Mul", &[&row, &width], vec![]);
        let at = b.op("Add", &[&base, codes], vec![]);
        let picked = b.gather(&table, &at, 0);
        terms.push(b.column(&picked));
        offset += slots;
    }
    let intercepts = b.constant("group_intercept", vec![g], Values::Double(groups.intercept.clone()));
    let intercept = b.gather(&intercepts, &row, 0);
    terms.push(b.column(&intercept));
    let refs: Vec<&str> = terms.iter().map(String::as_str).collect();
    let logit = b.op("Sum", &refs, vec![]);
    let group_p = b.op("Sigmoid", &[&logit], vec![]);
    let has = b.column(&has);
    b.op("Where", &[&has, &group_p, &p1], vec![])
}

/// The MLP's logits: float32 `[N, outputs]`.
fn network(b: &mut Builder, e: &Encoded, m: &crate::mlp::MlpModel) -> Result<String> {
    let arch = &m.net.arch;
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = m
        .net
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let dims = t.dims().to_vec();
            let values = t.flatten_all().and_then(|t| t.to_vec1::<f32>());
            values
                .map(|v| (name, dims, v))
                .map_err(|err| Error::Internal(format!("reading the MLP's weights: {err}")))
        })
        .collect::<Result<_>>()?;
    let find = |name: &str| {
        tensors
            .iter()
            .find(|(n, ..)| n == name)
            .ok_or_else(|| Error::Internal(format!("the MLP has no tensor {name}")))
    };
    let mut parts: Vec<String> = e.block.iter().cloned().collect();
    for (j, codes) in e.codes.iter().enumerate() {
        let (_, dims, v) = find(&format!("embedding.{j}.weight"))?;
        let table = b.constant("embedding", dims.clone(), Values::Float(v.clone()));
        parts.push(b.gather(&table, codes, 0));
    }
    let mut h = b.concat(&parts);
    let layers: Vec<(String, bool)> = (0..arch.hidden.len())
        .map(|l| (format!("hidden.{l}"), true))
        .chain(std::iter::once(("output".to_string(), false)))
        .collect();
    for (l, (layer, relu)) in layers.iter().enumerate() {
        let (_, dims, w) = find(&format!("{layer}.weight"))?;
        let (_, bias_dims, bias) = find(&format!("{layer}.bias"))?;
        let mut permuted = w.clone();
        if l == 0 {
            // The block puts the missing indicators after the values; the first layer's columns
            // follow the design's order, where each indicator follows its value.
            for (row, original) in permuted.chunks_exact_mut(dims[1]).zip(w.chunks_exact(dims[1])) {
                for (to, &from) in e.order.iter().enumerate() {
                    row[to] = original[from];
                }
            }
        }
        let w = permuted;
        let w = b.constant("weight", dims.clone(), Values::Float(w));
        let bias = b.constant("bias", bias_dims.clone(), Values::Float(bias.clone()));
        let z = b.op("Gemm", &[&h, &w, &bias], vec![("transB", Attr::Int(1))]);
        h = if *relu { b.op("Relu", &[&z], vec![]) } else { z };
    }
    Ok(h)
}

/// The class values as a constant the label output gathers from: int64 when every class is an
/// integer, bool when every class is a boolean, else their names as strings.
fn classes(b: &mut Builder, values: &[serde_json::Value]) -> (String, ElemType) {
    let ints: Option<Vec<i64>> = values.iter().map(serde_json::Value::as_i64).collect();
    let bools: Option<Vec<bool>> = values.iter().map(serde_json::Value::as_bool).collect();
    match (ints, bools) {
        (Some(v), _) => (b.constant("classes", vec![v.len()], Values::Int64(v)), ElemType::Int64),
        (None, Some(v)) => (b.constant("classes", vec![v.len()], Values::Bool(v)), ElemType::Bool),
        (None, None) => {
            let v: Vec<String> = values.iter().map(crate::label::class_name).collect();
            (b.constant("classes", vec![v.len()], Values::String(v)), ElemType::String)
        }
    }
}

/// The model of `run` as ONNX.
pub fn build(run: &Run, provenance: &Provenance, opts: &Options) -> Result<Model> {
    let card = &run.card;
    let p = &card.pipeline;
    let by = card.partition.as_ref().map(|x| x.by.as_str());
    let keys = run.groups.as_ref().map(|g| g.keys.as_slice()).unwrap_or_default();
    check(p, by, keys, opts)?;
    let columns = card.input_columns();
    let mut prefix = "trainyard.".to_string();
    while columns.iter().any(|c| c.starts_with(&prefix)) {
        prefix.insert(0, '_');
    }
    let mut b = Builder { nodes: Vec::new(), constants: Vec::new(), prefix, next: 0, axis_one: None };
    let mut inputs = Vec::new();
    let e = encode(&mut b, p, opts, &mut inputs)?;
    let values = card.labels.values();
    let k = values.len();
    let x = match (&run.model, &e.block) {
        (Fitted::Logistic(_) | Fitted::Multinomial(_), Some(block)) => Some(b.cast(block, ElemType::Double)),
        _ => None,
    };
    let (probabilities, kind) = match &run.model {
        Fitted::Logistic(m) => {
            let z = linear(&mut b, p, &e, x.as_deref(), &[&m.coef], &[m.intercept]);
            let mut p1 = b.op("Sigmoid", &[&z], vec![]);
            let mut kind = "binary logistic regression";
            if let (Some(groups), Some(by)) = (&run.groups, by) {
                let key = group_key(&mut b, p, by, groups, opts, &mut inputs);
                p1 = compose(&mut b, p, &e, x.as_deref(), groups, key, p1);
                kind = "binary logistic regression with per-group models";
            }
            (two_columns(&mut b, p1), kind)
        }
        Fitted::Multinomial(m) => {
            let rows: Vec<&[f64]> = m.coef.chunks_exact(p.width()).collect();
            let z = linear(&mut b, p, &e, x.as_deref(), &rows, &m.intercept);
            (
                b.node("Softmax", "", &[&z], vec![("axis", Attr::Int(1))], PROBABILITIES.into()),
                "multinomial logistic regression",
            )
        }
        Fitted::Mlp(m) => {
            let logits = network(&mut b, &e, m)?;
            let z = b.cast(&logits, ElemType::Double);
            if k > 2 {
                (
                    b.node("Softmax", "", &[&z], vec![("axis", Attr::Int(1))], PROBABILITIES.into()),
                    "MLP (multiclass)",
                )
            } else {
                let p1 = b.op("Sigmoid", &[&z], vec![]);
                (two_columns(&mut b, p1), "MLP (binary)")
            }
        }
    };
    let (classes, label_type) = classes(&mut b, &values);
    let best = b.op("ArgMax", &[&probabilities], vec![("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))]);
    b.node("Gather", "", &[&classes, &best], vec![("axis", Attr::Int(0))], LABEL.into());
    let names: Vec<String> = values.iter().map(crate::label::class_name).collect();
    let outputs = vec![
        ValueInfo {
            name: PROBABILITIES.into(),
            elem: ElemType::Double,
            dims: vec![Dim::Named("N".into()), Dim::Fixed(k as i64)],
            doc: format!("P(class) per row, columns in the order {names:?}"),
        },
        ValueInfo {
            name: LABEL.into(),
            elem: label_type,
            dims: batch(),
            doc: "the class of the largest probability (the first of a tie)".into(),
        },
    ];
    let label_column = match &card.labels {
        crate::label::Labels::Binary(m) => m.column.clone(),
        crate::label::Labels::Multiclass(m) => m.column.clone(),
    };
    let metadata = vec![
        ("trainyard_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("run_id".into(), provenance.run_id.clone()),
        ("spec_sha256".into(), provenance.spec_sha256.clone()),
        ("model".into(), kind.to_string()),
        ("label_column".into(), label_column),
        ("probability_columns".into(), serde_json::to_string(&names).unwrap_or_default()),
        ("null_string".into(), opts.null_string.clone()),
    ];
    Ok(Model {
        ir_version: IR_VERSION,
        opsets: vec![(String::new(), OPSET), ("ai.onnx.ml".into(), ML_OPSET)],
        producer: ("trainyard".into(), env!("CARGO_PKG_VERSION").into()),
        doc: format!(
            "trainyard run {}: {kind} over the raw feature columns, pipeline included",
            provenance.run_id
        ),
        graph_name: "trainyard".into(),
        nodes: b.nodes,
        initializers: b.constants,
        inputs,
        outputs,
        metadata,
    })
}

/// `[N, 1]` P(positive) → `[N, 2]` (negative, positive): the probabilities output.
fn two_columns(b: &mut Builder, p1: String) -> String {
    let one = b.constant("one", vec![1], Values::Double(vec![1.0]));
    let p0 = b.op("Sub", &[&one, &p1], vec![]);
    b.node("Concat", "", &[&p0, &p1], vec![("axis", Attr::Int(1))], PROBABILITIES.into())
}

/// The group column as strings (what the group LabelEncoder reads): the categorical input of
/// the same name, the numeric one cast to int64 then text, or an input of its own (int64 when
/// every group key is an integer, else string); and each group's key as that text.
fn group_key(
    b: &mut Builder,
    p: &Pipeline,
    by: &str,
    groups: &GroupModels,
    opts: &Options,
    inputs: &mut Vec<ValueInfo>,
) -> (String, Vec<String>) {
    let text: Vec<String> = groups.keys.iter().map(GroupKey::to_string).collect();
    if let Some(c) = p.categorical.iter().find(|c| c.column == by) {
        // A boolean column's group keys are 0/1, its categorical text true/false.
        let booleans = c.levels.iter().flatten().all(|l| l == "true" || l == "false");
        if booleans && groups.keys.iter().all(|k| matches!(k, GroupKey::Int(0 | 1))) {
            let words = groups.keys.iter().map(|k| (k == &GroupKey::Int(1)).to_string()).collect();
            return (by.to_string(), words);
        }
        if opts.int64.contains(&c.column) {
            return (b.cast(by, ElemType::String), text);
        }
        return (by.to_string(), text);
    }
    if p.numeric.iter().any(|n| n.column == by) {
        let int = b.cast(by, ElemType::Int64);
        return (b.cast(&int, ElemType::String), text);
    }
    let ints = !groups.keys.is_empty() && groups.keys.iter().all(|k| matches!(k, GroupKey::Int(_)));
    inputs.push(ValueInfo {
        name: by.to_string(),
        elem: if ints { ElemType::Int64 } else { ElemType::String },
        dims: batch(),
        doc: format!(
            "the group (partition.by): rows of the {} groups with a model get theirs, others the generic model",
            groups.keys.len()
        ),
    });
    (if ints { b.cast(by, ElemType::String) } else { by.to_string() }, text)
}
