//! ONNX's protobuf messages on the wire, written (and read back) by hand. An export needs seven
//! messages and a handful of their fields; encoding them directly keeps `protoc` and generated
//! code out of the build. Field numbers are those of `onnx/onnx.proto` (IR version 8).

/// Element types of tensors (`TensorProto.DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    /// float32.
    Float = 1,
    /// int64.
    Int64 = 7,
    /// UTF-8 string.
    String = 8,
    /// bool.
    Bool = 9,
    /// float64.
    Double = 11,
}

impl ElemType {
    /// The type of a `TensorProto.DataType` number, when it is one of ours.
    pub fn from_code(code: i64) -> Option<ElemType> {
        [ElemType::Float, ElemType::Int64, ElemType::String, ElemType::Bool, ElemType::Double]
            .into_iter()
            .find(|t| *t as i64 == code)
    }

    /// The name numpy and onnxruntime use for it.
    pub fn name(self) -> &'static str {
        match self {
            ElemType::Float => "float32",
            ElemType::Int64 => "int64",
            ElemType::String => "string",
            ElemType::Bool => "bool",
            ElemType::Double => "float64",
        }
    }
}

/// A constant tensor's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// float32 values.
    Float(Vec<f32>),
    /// float64 values.
    Double(Vec<f64>),
    /// int64 values.
    Int64(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Strings.
    String(Vec<String>),
}

/// A named constant tensor (an initializer, or a tensor attribute).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Name the graph refers to it by.
    pub name: String,
    /// Shape.
    pub dims: Vec<i64>,
    /// Values, row-major.
    pub values: Values,
}

/// A node attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// One integer.
    Int(i64),
    /// Integers.
    Ints(Vec<i64>),
    /// Strings.
    Strings(Vec<String>),
}

/// One operator application.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Operator name, e.g. `Gather`.
    pub op: &'static str,
    /// Operator set domain: empty for `ai.onnx`.
    pub domain: &'static str,
    /// Input value names.
    pub inputs: Vec<String>,
    /// Output value names.
    pub outputs: Vec<String>,
    /// Attributes by name.
    pub attrs: Vec<(&'static str, Attr)>,
}

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A size named at run time (the batch).
    Named(String),
}

/// A graph input or output: name, element type, shape, and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    /// Name.
    pub name: String,
    /// Element type.
    pub elem: ElemType,
    /// Shape.
    pub dims: Vec<Dim>,
    /// What it holds, for a reader of the model.
    pub doc: String,
}

/// A whole model: the graph with its operator sets and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// `ModelProto.ir_version`.
    pub ir_version: i64,
    /// `(domain, version)` of every operator set the nodes use.
    pub opsets: Vec<(String, i64)>,
    /// Producer name and version.
    pub producer: (String, String),
    /// What the model is.
    pub doc: String,
    /// The graph's name.
    pub graph_name: String,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Constants.
    pub initializers: Vec<Tensor>,
    /// Graph inputs.
    pub inputs: Vec<ValueInfo>,
    /// Graph outputs.
    pub outputs: Vec<ValueInfo>,
    /// `metadata_props`, in order.
    pub metadata: Vec<(String, String)>,
}

/// A message being written: fields appended in field order.
#[derive(Default)]
struct Message(Vec<u8>);

const VARINT: u64 = 0;
const LENGTH: u64 = 2;

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u64, wire: u64) {
        self.varint((field << 3) | wire);
    }

    fn int(&mut self, field: u64, v: i64) {
        self.key(field, VARINT);
        // Negative int64 fields are ten-byte two's complement varints, as protobuf writes them.
        self.varint(v as u64);
    }

    fn bytes(&mut self, field: u64, b: &[u8]) {
        self.key(field, LENGTH);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u64, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn message(&mut self, field: u64, m: Message) {
        self.bytes(field, &m.0);
    }

    fn packed_ints(&mut self, field: u64, v: &[i64]) {
        let mut inner = Message::default();
        for &x in v {
            inner.varint(x as u64);
        }
        self.bytes(field, &inner.0);
    }
}

fn tensor(t: &Tensor) -> Message {
    let mut m = Message::default();
    m.packed_ints(1, &t.dims);
    let elem = match &t.values {
        Values::Float(_) => ElemType::Float,
        Values::Double(_) => ElemType::Double,
        Values::Int64(_) => ElemType::Int64,
        Values::Bool(_) => ElemType::Bool,
        Values::String(_) => ElemType::String,
    };
    m.int(2, elem as i64);
    m.string(8, &t.name);
    // Numbers go in raw_data, little-endian, as the ONNX spec requires of raw_data.
    let raw: Option<Vec<u8>> = match &t.values {
        Values::Float(v) => Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Values::Double(v) => Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Values::Int64(v) => Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Values::Bool(v) => Some(v.iter().map(|&x| u8::from(x)).collect()),
        Values::String(_) => None,
    };
    match (&t.values, raw) {
        (_, Some(raw)) => m.bytes(9, &raw),
        (Values::String(v), None) => v.iter().for_each(|s| m.bytes(6, s.as_bytes())),
        _ => {}
    }
    m
}

fn attribute(name: &str, a: &Attr) -> Message {
    let mut m = Message::default();
    m.string(1, name);
    match a {
        Attr::Int(i) => {
            m.int(3, *i);
            m.int(20, 2);
        }
        Attr::Ints(v) => {
            // Unpacked, one key per value: what protobuf's proto2 writer emits for ONNX.
            v.iter().for_each(|&x| m.int(8, x));
            m.int(20, 7);
        }
        Attr::Strings(v) => {
            v.iter().for_each(|s| m.bytes(9, s.as_bytes()));
            m.int(20, 8);
        }
    }
    m
}

fn node(n: &Node, index: usize) -> Message {
    let mut m = Message::default();
    n.inputs.iter().for_each(|i| m.string(1, i));
    n.outputs.iter().for_each(|o| m.string(2, o));
    m.string(3, &format!("{}_{index}", n.op));
    m.string(4, n.op);
    for (name, a) in &n.attrs {
        m.message(5, attribute(name, a));
    }
    if !n.domain.is_empty() {
        m.string(7, n.domain);
    }
    m
}

fn value_info(v: &ValueInfo) -> Message {
    let mut shape = Message::default();
    for d in &v.dims {
        let mut dim = Message::default();
        match d {
            Dim::Fixed(n) => dim.int(1, *n),
            Dim::Named(s) => dim.string(2, s),
        }
        shape.message(1, dim);
    }
    let mut tensor_type = Message::default();
    tensor_type.int(1, v.elem as i64);
    tensor_type.message(2, shape);
    let mut ty = Message::default();
    ty.message(1, tensor_type);
    let mut m = Message::default();
    m.string(1, &v.name);
    m.message(2, ty);
    if !v.doc.is_empty() {
        m.string(3, &v.doc);
    }
    m
}

impl Model {
    /// The `ModelProto` bytes: what an `.onnx` file holds.
    pub fn encode(&self) -> Vec<u8> {
        let mut g = Message::default();
        for (i, n) in self.nodes.iter().enumerate() {
            g.message(1, node(n, i));
        }
        g.string(2, &self.graph_name);
        for t in &self.initializers {
            g.message(5, tensor(t));
        }
        self.inputs.iter().for_each(|v| g.message(11, value_info(v)));
        self.outputs.iter().for_each(|v| g.message(12, value_info(v)));
        let mut m = Message::default();
        m.int(1, self.ir_version);
        m.string(2, &self.producer.0);
        m.string(3, &self.producer.1);
        m.string(6, &self.doc);
        m.message(7, g);
        for (domain, version) in &self.opsets {
            let mut o = Message::default();
            o.string(1, domain);
            o.int(2, *version);
            m.message(8, o);
        }
        for (k, v) in &self.metadata {
            let mut e = Message::default();
            e.string(1, k);
            e.string(2, v);
            m.message(14, e);
        }
        m.0
    }
}

/// What a reader of an exported file checks: its interface and provenance, read back from the
/// bytes alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// `ModelProto.ir_version`.
    pub ir_version: i64,
    /// `(domain, version)` operator set imports.
    pub opsets: Vec<(String, i64)>,
    /// Producer name and version.
    pub producer: (String, String),
    /// Graph inputs.
    pub inputs: Vec<ValueInfo>,
    /// Graph outputs.
    pub outputs: Vec<ValueInfo>,
    /// `metadata_props`.
    pub metadata: Vec<(String, String)>,
    /// `(domain, op_type)` of every node, in order.
    pub nodes: Vec<(String, String)>,
    /// Names of the initializers.
    pub initializers: Vec<String>,
}

/// One field of a message on the wire.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one message, in order; `Err` names what is malformed.
fn fields(mut b: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    fn varint(b: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or("a varint runs past the end")?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err("a varint is longer than ten bytes".into())
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut b)?),
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                b = b.get(n..).ok_or("a fixed-width field runs past the end")?;
                Field::Fixed
            }
            2 => {
                let n = usize::try_from(varint(&mut b)?).map_err(|_| "a length overflows")?;
                let (body, rest) = (b.get(..n).ok_or("a length-delimited field runs past the end")?, &b[n..]);
                b = rest;
                Field::Bytes(body)
            }
            w => return Err(format!("wire type {w} is not one ONNX uses")),
        };
        out.push((key >> 3, field));
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string field is not UTF-8".into())
}

/// The sub-messages in field `field` of the message `b`, in order.
fn messages(b: &[u8], field: u64) -> Result<Vec<&[u8]>, String> {
    Ok(fields(b)?
        .into_iter()
        .filter_map(|(f, v)| match v {
            Field::Bytes(m) if f == field => Some(m),
            _ => None,
        })
        .collect())
}

/// String field `field` of the message `b` (the last one, as protobuf reads a repeated
/// singular field), or empty.
fn text_field(b: &[u8], field: u64) -> Result<String, String> {
    messages(b, field)?.last().map_or(Ok(String::new()), |s| text(s))
}

/// Integer field `field` of the message `b`, or 0.
fn int_field(b: &[u8], field: u64) -> Result<i64, String> {
    Ok(fields(b)?.into_iter().fold(0, |n, (f, v)| match v {
        Field::Varint(x) if f == field => x as i64,
        _ => n,
    }))
}

/// `ValueInfoProto` → name, `type.tensor_type.elem_type`, `type.tensor_type.shape.dim`, doc.
fn read_value_info(b: &[u8]) -> Result<ValueInfo, String> {
    let name = text_field(b, 1)?;
    let (mut elem, mut dims) = (None, Vec::new());
    for tensor in
        messages(b, 2)?.into_iter().map(|ty| messages(ty, 1)).collect::<Result<Vec<_>, _>>()?.concat()
    {
        elem = ElemType::from_code(int_field(tensor, 1)?);
        for shape in messages(tensor, 2)? {
            for d in messages(shape, 1)? {
                // dim_value (1) or dim_param (2).
                let param = text_field(d, 2)?;
                dims.push(if param.is_empty() { Dim::Fixed(int_field(d, 1)?) } else { Dim::Named(param) });
            }
        }
    }
    let elem = elem.ok_or_else(|| format!("value {name:?} has no element type this reader knows"))?;
    Ok(ValueInfo { name, elem, dims, doc: text_field(b, 3)? })
}

impl Summary {
    /// Reads the summary of a `ModelProto`.
    pub fn read(bytes: &[u8]) -> Result<Summary, String> {
        let graphs = messages(bytes, 7)?;
        let in_graph = |field| -> Result<Vec<&[u8]>, String> {
            Ok(graphs.iter().map(|g| messages(g, field)).collect::<Result<Vec<_>, _>>()?.concat())
        };
        let pairs = |ms: Vec<&[u8]>, a, b| -> Result<Vec<(String, String)>, String> {
            ms.into_iter().map(|m| Ok((text_field(m, a)?, text_field(m, b)?))).collect()
        };
        Ok(Summary {
            ir_version: int_field(bytes, 1)?,
            opsets: messages(bytes, 8)?
                .into_iter()
                .map(|o| Ok((text_field(o, 1)?, int_field(o, 2)?)))
                .collect::<Result<_, String>>()?,
            producer: (text_field(bytes, 2)?, text_field(bytes, 3)?),
            inputs: in_graph(11)?.into_iter().map(read_value_info).collect::<Result<_, _>>()?,
            outputs: in_graph(12)?.into_iter().map(read_value_info).collect::<Result<_, _>>()?,
            metadata: pairs(messages(bytes, 14)?, 1, 2)?,
            nodes: pairs(in_graph(1)?, 7, 4)?,
            initializers: in_graph(5)?.into_iter().map(|t| text_field(t, 8)).collect::<Result<_, _>>()?,
        })
    }

    /// A `metadata_props` value.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_protobufs_encoding() {
        let mut m = Message::default();
        m.varint(1);
        m.varint(300);
        m.int(1, -1);
        // 300 = 0b10_0101100 → 0xAC 0x02; -1 as int64 is ten bytes ending in 0x01.
        assert_eq!(&m.0[..3], &[0x01, 0xAC, 0x02]);
        assert_eq!(m.0[3], 0x08);
        assert_eq!(m.0.len(), 4 + 10);
        assert_eq!(*m.0.last().unwrap_or(&0), 0x01);
    }

    #[test]
    fn a_model_reads_back_as_written() {
        let io = |name: &str, elem| ValueInfo {
            name: name.into(),
            elem,
            dims: vec![Dim::Named("N".into()), Dim::Fixed(2)],
            doc: format!("{name} doc"),
        };
        let model = Model {
            ir_version: 8,
            opsets: vec![(String::new(), 17), ("ai.onnx.ml".into(), 3)],
            producer: ("trainyard".into(), "0.1.0".into()),
            doc: "d".into(),
            graph_name: "g".into(),
            nodes: vec![Node {
                op: "Identity",
                domain: "",
                inputs: vec!["x".into()],
                outputs: vec!["y".into()],
                attrs: vec![("k", Attr::Ints(vec![-3, 4]))],
            }],
            initializers: vec![Tensor {
                name: "w".into(),
                dims: vec![2],
                values: Values::Double(vec![1.0, -2.0]),
            }],
            inputs: vec![io("x", ElemType::Double)],
            outputs: vec![io("y", ElemType::String)],
            metadata: vec![("run_id".into(), "r-1".into())],
        };
        let s = Summary::read(&model.encode()).unwrap();
        assert_eq!(s.ir_version, 8);
        assert_eq!(s.opsets, model.opsets);
        assert_eq!(s.inputs, model.inputs);
        assert_eq!(s.outputs, model.outputs);
        assert_eq!(s.metadata("run_id"), Some("r-1"));
        assert_eq!(s.nodes, vec![(String::new(), "Identity".to_string())]);
        assert_eq!(s.initializers, vec!["w".to_string()]);
        assert!(Summary::read(&[0x0a, 0x05, 0x01]).is_err(), "a truncated field is an error");
    }
}
