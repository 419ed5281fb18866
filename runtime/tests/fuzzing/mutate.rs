//! Seeded mutations: byte havoc for any input, and structure-aware mutators for JSON documents
//! and safetensors files, so that enough mutated inputs survive the first parse to reach the
//! checks behind it (a random byte flip in a JSON spec is almost always a syntax error).

use std::ops::Range;

use serde_json::{Map, Number, Value};

/// SplitMix64: one word of state, so a whole run replays from `TRAINYARD_FUZZ_SEED` alone.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// In `0..=max`, small values far more often than large ones: the lengths and counts that
    /// break parsers are mostly 0, 1 and "a little more than expected".
    pub fn small(&mut self, max: usize) -> usize {
        let bits = usize::BITS - max.leading_zeros();
        let cap = 1usize << self.below(bits as usize + 1).min(usize::BITS as usize - 1);
        self.below(cap.min(max).saturating_add(1))
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const INTERESTING_8: [u8; 6] = [0, 1, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_32: [u32; 8] = [0, 1, 0x7f, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff];
const INTERESTING_64: [u64; 7] =
    [0, 1 << 32, 1 << 40, i64::MAX as u64, i64::MIN as u64, u64::MAX - 1, u64::MAX];
const INTERESTING_F32: [f32; 10] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    1e-45,
    0.0,
    -0.0,
    1e30,
];
const INTERESTING_F64: [f64; 8] =
    [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN, 5e-324, -0.0, 1e300];

/// Mutations driven by one [`Rng`], with a dictionary of words (JSON keys and string values
/// learned from the seeds) to splice into documents.
pub struct Mutator {
    pub rng: Rng,
    words: Vec<String>,
}

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Mutator { rng: Rng::new(seed), words: Vec::new() }
    }

    /// Adds the keys and short strings of a JSON seed to the dictionary, so that a mutation can
    /// move a known field name (`early_stopping`) to a place where it is unexpected.
    pub fn learn_words(&mut self, input: &[u8]) {
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, c) in m {
                        out.push(k.clone());
                        walk(c, out);
                    }
                }
                Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
                Value::String(s) if s.len() <= 64 => out.push(s.clone()),
                _ => {}
            }
        }
        if let Ok(v) = serde_json::from_slice::<Value>(input) {
            walk(&v, &mut self.words);
            self.words.sort();
            self.words.dedup();
        }
    }

    pub fn word(&mut self) -> String {
        if self.words.is_empty() { "x".into() } else { self.rng.pick(&self.words).clone() }
    }

    /// One to eight stacked byte mutations of `input`; `other` is a second corpus entry for
    /// splicing. The result is at most `max_len` bytes.
    pub fn bytes(&mut self, input: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
        self.bytes_focused(input, other, max_len, 0..0)
    }

    /// [`Mutator::bytes`], with most mutations inside `focus` (for Parquet: the footer, where
    /// every length and offset the reader trusts lives).
    pub fn bytes_focused(
        &mut self,
        input: &[u8],
        other: &[u8],
        max_len: usize,
        focus: Range<usize>,
    ) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=self.rng.small(7) {
            let focus =
                (focus.end <= out.len() && !focus.is_empty() && self.rng.chance(70)).then(|| focus.clone());
            self.byte_op(&mut out, other, focus);
        }
        out.truncate(max_len);
        out
    }

    fn position(&mut self, len: usize, focus: &Option<Range<usize>>) -> usize {
        match focus {
            Some(r) => r.start + self.rng.below(r.len()),
            None => self.rng.below(len),
        }
    }

    fn byte_op(&mut self, out: &mut Vec<u8>, other: &[u8], focus: Option<Range<usize>>) {
        if out.is_empty() {
            out.extend((0..=self.rng.small(16)).map(|_| self.rng.next_u64() as u8));
            return;
        }
        let len = out.len();
        let at = self.position(len, &focus);
        match self.rng.below(12) {
            0 => out[at] ^= 1 << self.rng.below(8),
            1 => out[at] = self.rng.next_u64() as u8,
            2 => out[at] = *self.rng.pick(&INTERESTING_8),
            3 => {
                let v = *self.rng.pick(&INTERESTING_32);
                let b = if self.rng.chance(80) { v.to_le_bytes() } else { v.to_be_bytes() };
                overwrite(out, at, &b);
            }
            4 => {
                let v = *self.rng.pick(&INTERESTING_64);
                overwrite(out, at, &v.to_le_bytes());
            }
            5 => {
                let delta = 1 + self.rng.below(16) as u8;
                out[at] = if self.rng.chance(50) {
                    out[at].wrapping_add(delta)
                } else {
                    out[at].wrapping_sub(delta)
                };
            }
            6 => {
                let n = (1 + self.rng.small(len.min(4096))).min(len - at);
                out.drain(at..at + n);
            }
            7 => {
                let chunk: Vec<u8> = (0..=self.rng.small(64)).map(|_| self.rng.next_u64() as u8).collect();
                out.splice(at..at, chunk);
            }
            8 => {
                let from = self.rng.below(len);
                let n = (1 + self.rng.small(256)).min(len - from);
                let chunk = out[from..from + n].to_vec();
                if self.rng.chance(50) {
                    out.splice(at..at, chunk);
                } else {
                    overwrite(out, at, &chunk);
                }
            }
            9 => out.truncate(at),
            10 if !other.is_empty() => {
                // Crossover: our head, the other input's tail.
                let from = self.rng.below(other.len());
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            _ => {
                let word = self.word();
                out.splice(at..at, word.into_bytes());
            }
        }
    }

    /// One to four structural mutations of a JSON document; `None` when `input` is not JSON.
    /// `other` (when it is JSON) donates subtrees.
    pub fn json(&mut self, input: &[u8], other: &[u8]) -> Option<Vec<u8>> {
        let mut doc: Value = serde_json::from_slice(input).ok()?;
        let donor: Option<Value> = serde_json::from_slice(other).ok();
        for _ in 0..=self.rng.small(3) {
            self.json_op(&mut doc, donor.as_ref());
        }
        Some(self.render(&doc))
    }

    /// Serializes a document: usually compact, sometimes pretty, and sometimes by hand with one
    /// object's first key written twice (serde_json keeps the last of duplicate keys, which is
    /// exactly the ambiguity a spec reader must reject or at least survive).
    pub fn render(&mut self, doc: &Value) -> Vec<u8> {
        match self.rng.below(10) {
            0..=5 => serde_json::to_vec(doc).unwrap_or_default(),
            6 => serde_json::to_vec_pretty(doc).unwrap_or_default(),
            _ => {
                let objects = count_objects(doc);
                let target = self.rng.below(objects.max(1));
                let twin = self.interesting_value();
                let mut out = String::new();
                write_with_duplicate(doc, &mut 0, target, &twin, &mut out);
                out.into_bytes()
            }
        }
    }

    /// Mutates one node of `doc` in place.
    pub fn json_op(&mut self, doc: &mut Value, donor: Option<&Value>) {
        let mut pointers = Vec::new();
        collect_pointers(doc, String::new(), &mut pointers);
        let pointer = self.rng.pick(&pointers).clone();
        let replacement = match self.rng.below(4) {
            0 => donor.map(|d| {
                let mut ps = Vec::new();
                collect_pointers(d, String::new(), &mut ps);
                d.pointer(self.rng.pick(&ps).as_str()).cloned().unwrap_or(Value::Null)
            }),
            1 => doc.pointer(self.rng.pick(&pointers).as_str()).cloned(),
            _ => None,
        };
        let Some(node) = doc.pointer_mut(&pointer) else { return };
        if let Some(r) = replacement.filter(|_| self.rng.chance(50)) {
            *node = r;
            return;
        }
        match node {
            Value::Object(map) if self.rng.chance(70) => self.object_op(map),
            Value::Array(items) if self.rng.chance(70) => self.array_op(items),
            Value::Number(n) if self.rng.chance(60) => *node = self.number_near(n),
            Value::String(s) if self.rng.chance(50) => *node = Value::String(self.string_near(s)),
            _ => match self.rng.below(8) {
                0 => *node = Value::Array(vec![node.take()]),
                1 => *node = Value::Object(Map::from_iter([(self.word(), node.take())])),
                _ => *node = self.interesting_value(),
            },
        }
    }

    fn object_op(&mut self, map: &mut Map<String, Value>) {
        let keys: Vec<String> = map.keys().cloned().collect();
        match self.rng.below(5) {
            0 if !keys.is_empty() => {
                map.remove(self.rng.pick(&keys));
            }
            1 if !keys.is_empty() => {
                // Rename a key: to another known field name, or a near miss of its own name.
                let old = self.rng.pick(&keys).clone();
                let value = map.remove(&old).unwrap_or(Value::Null);
                let new = if self.rng.chance(60) { self.word() } else { self.string_near(&old) };
                map.insert(new, value);
            }
            2 => {
                let v = self.interesting_value();
                map.insert(self.word(), v);
            }
            3 if !keys.is_empty() => {
                let k = self.rng.pick(&keys).clone();
                let v = map[&k].clone();
                map.insert(self.word(), v);
            }
            _ => map.clear(),
        }
    }

    fn array_op(&mut self, items: &mut Vec<Value>) {
        match self.rng.below(6) {
            0 if !items.is_empty() => {
                items.remove(self.rng.below(items.len()));
            }
            1 if !items.is_empty() => {
                let v = items[self.rng.below(items.len())].clone();
                for _ in 0..=self.rng.small(16) {
                    items.push(v.clone());
                }
            }
            2 => items.push(self.interesting_value()),
            3 => items.reverse(),
            4 => items.clear(),
            _ => {
                let w = self.word();
                items.push(Value::String(w));
            }
        }
    }

    fn number_near(&mut self, n: &Number) -> Value {
        let x = n.as_f64().unwrap_or(0.0);
        let v = match self.rng.below(7) {
            0 => x + 1.0,
            1 => x - 1.0,
            2 => -x,
            3 => x * 10f64.powi(self.rng.below(40) as i32),
            4 => x / 10f64.powi(self.rng.below(40) as i32),
            5 => return Value::String(n.to_string()),
            _ => {
                if let Some(i) = n.as_u64() {
                    return Value::from(i.wrapping_add(1 + self.rng.below(3) as u64).wrapping_sub(2));
                }
                x.trunc()
            }
        };
        Number::from_f64(v).map_or(Value::Null, Value::Number)
    }

    fn string_near(&mut self, s: &str) -> String {
        let mut chars: Vec<char> = s.chars().collect();
        match self.rng.below(6) {
            0 if !chars.is_empty() => {
                chars.remove(self.rng.below(chars.len()));
            }
            1 => chars.insert(
                self.rng.below(chars.len() + 1),
                *self.rng.pick(&['é', '🦀', '\0', '.', '/', '*', ' ', 'X']),
            ),
            2 => chars = chars.iter().map(|c| c.to_ascii_uppercase()).collect(),
            3 => chars.extend(self.word().chars()),
            4 => chars.truncate(self.rng.below(chars.len() + 1)),
            _ => return self.interesting_string(),
        }
        chars.into_iter().collect()
    }

    fn interesting_string(&mut self) -> String {
        const STRINGS: [&str; 32] = [
            "",
            "NaN",
            "inf",
            "-inf",
            "1e999",
            "0",
            "-1",
            "true",
            "null",
            "éééééééééééééééééééé",
            "🦀🦀🦀🦀🦀🦀🦀🦀",
            "\0",
            "a/b",
            "../..",
            "/",
            "*",
            "**/*.parquet",
            "[",
            "2024-02-30",
            "2024-13-01",
            "9999-12-31",
            "0000-01-01",
            "-262144-01-01",
            "2024-01-01T00:00:00+25:00",
            "+292278-01-01T00:00:00Z",
            "2024-01-01T00:00:00.9999999999Z",
            "cuda:99999999999999999999",
            "cuda:-1",
            "cuda:",
            "balanced",
            "global",
            "most_frequent",
        ];
        match self.rng.below(10) {
            0 => "x".repeat([63, 64, 4096, 100_000][self.rng.below(4)]),
            1 => self.word(),
            _ => (*self.rng.pick(&STRINGS)).to_string(),
        }
    }

    /// A value from the edges of what JSON can say: extreme numbers, odd strings, empty and
    /// deeply nested containers, long arrays.
    pub fn interesting_value(&mut self) -> Value {
        let number = |v: f64| Number::from_f64(v).map_or(Value::Null, Value::Number);
        match self.rng.below(24) {
            0 => Value::from(0),
            1 => Value::from(-1),
            2 => Value::from(1),
            3 => number(0.5),
            4 => number(1e308),
            5 => number(-1e308),
            6 => number(5e-324),
            7 => Value::from(u64::MAX),
            8 => Value::from(i64::MIN),
            9 => Value::from(1u64 << 53),
            10 => Value::from(u64::from(u32::MAX)),
            11 => Value::from(1u64 << 32),
            12 => Value::from(1u64 << 40),
            13 => Value::from(true),
            14 => Value::Null,
            15 | 16 => Value::String(self.interesting_string()),
            17 => Value::Array(vec![]),
            18 => Value::Object(Map::new()),
            19 => {
                // Nesting around serde_json's recursion limit (128) from both sides.
                let depth = [8, 64, 126, 127, 129, 300][self.rng.below(6)];
                (0..depth).fold(Value::from(0), |v, _| Value::Array(vec![v]))
            }
            20 => Value::Array(vec![Value::from(0); [2, 100, 10_000][self.rng.below(3)]]),
            21 => Value::Array(vec![Value::String(self.word())]),
            22 => number(-0.0),
            _ => Value::String(self.word()),
        }
    }

    /// A mutation of a safetensors file (`u64` header length, JSON header, raw data) that keeps
    /// the framing valid most of the time: mutated header JSON (shapes, offsets, dtypes, and the
    /// JSON strings inside `__metadata__`), extreme floats written into the data, or truncated
    /// data. `None` when `input` is not framed like safetensors.
    pub fn safetensors(&mut self, input: &[u8], other: &[u8]) -> Option<Vec<u8>> {
        let n = u64::from_le_bytes(input.get(..8)?.try_into().ok()?) as usize;
        let end = 8usize.checked_add(n).filter(|&e| e <= input.len())?;
        let (header, data) = (&input[8..end], &input[end..]);
        let mut doc: Value = serde_json::from_slice(header).ok()?;
        let mut data = data.to_vec();
        match self.rng.below(10) {
            0..=3 => {
                let nested = doc
                    .get_mut("__metadata__")
                    .and_then(Value::as_object_mut)
                    .filter(|m| !m.is_empty() && self.rng.chance(60));
                match nested {
                    Some(meta) => {
                        let keys: Vec<String> = meta.keys().cloned().collect();
                        let key = self.rng.pick(&keys).clone();
                        let text = meta[&key].as_str().unwrap_or_default().to_string();
                        let mutated = self.json(text.as_bytes(), &[]).unwrap_or_else(|| text.into_bytes());
                        meta[&key] = Value::String(String::from_utf8_lossy(&mutated).into_owned());
                    }
                    None => self.json_op(&mut doc, None),
                }
            }
            4..=6 if !data.is_empty() => {
                for _ in 0..=self.rng.small(8) {
                    if self.rng.chance(70) {
                        let at = self.rng.below(data.len() / 4) * 4;
                        overwrite(&mut data, at, &self.rng.pick(&INTERESTING_F32).to_le_bytes());
                    } else {
                        let at = self.rng.below(data.len() / 8 + 1) * 8;
                        overwrite(&mut data, at, &self.rng.pick(&INTERESTING_F64).to_le_bytes());
                    }
                }
            }
            7 => {
                let keep = self.rng.below(data.len() + 1);
                data.truncate(keep);
            }
            _ => return Some(self.bytes(input, other, input.len() + 4096)),
        }
        let header = self.render(&doc);
        // A stale or absurd length now and then: the reader must not trust it.
        let length = match self.rng.below(20) {
            0 => n as u64,
            1 => *self.rng.pick(&INTERESTING_64),
            _ => header.len() as u64,
        };
        let mut out = length.to_le_bytes().to_vec();
        out.extend_from_slice(&header);
        out.extend_from_slice(&data);
        Some(out)
    }
}

/// Writes `bytes` at `at`, clipped to the end of `out`.
fn overwrite(out: &mut [u8], at: usize, bytes: &[u8]) {
    let n = bytes.len().min(out.len().saturating_sub(at));
    out[at..at + n].copy_from_slice(&bytes[..n]);
}

pub fn collect_pointers(v: &Value, here: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                collect_pointers(c, format!("{here}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate().take(64) {
                collect_pointers(c, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(here);
}

fn count_objects(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(count_objects).sum::<usize>(),
        Value::Array(a) => a.iter().map(count_objects).sum(),
        _ => 0,
    }
}

/// JSON text of `v` in which the `target`-th object (depth-first) has its first key written a
/// second time, with the value `twin`.
fn write_with_duplicate(v: &Value, seen: &mut usize, target: usize, twin: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let this = *seen;
            *seen += 1;
            out.push('{');
            for (i, (k, c)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_with_duplicate(c, seen, target, twin, out);
                if i == 0 && this == target {
                    out.push(',');
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    out.push_str(&twin.to_string());
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, c) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_with_duplicate(c, seen, target, twin, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Simpler versions of `doc` at `pointer`, for shrinking a crashing document: the node removed
/// from its parent, or a scalar made plain.
pub fn simpler(doc: &Value, pointer: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let Some((parent, last)) = pointer.rsplit_once('/') else { return out };
    let key = last.replace("~1", "/").replace("~0", "~");
    let mut removed = doc.clone();
    match removed.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.shift_remove(&key);
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = key.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
    out.push(removed);
    let plain = match doc.pointer(pointer) {
        Some(Value::String(s)) if !s.is_empty() => Some(Value::String(String::new())),
        Some(Value::Number(n)) if n.as_u64() != Some(0) => Some(Value::from(0)),
        Some(Value::Array(a)) if !a.is_empty() => Some(Value::Array(vec![])),
        Some(Value::Object(m)) if !m.is_empty() => Some(Value::Object(Map::new())),
        _ => None,
    };
    if let Some(plain) = plain {
        let mut p = doc.clone();
        if let Some(node) = p.pointer_mut(pointer) {
            *node = plain;
        }
        out.push(p);
    }
    out
}
