//! Fuzzes the job spec path a `train`, `validate` or `render` command takes before it opens any
//! data: JSON parsing, `--set` overrides, deserialization, the checks into `CheckedSpec`, and
//! rendering the Kubernetes objects of an accepted spec. Any error is fine; a panic is a bug.
//!
//! An input is the spec text, then each `--set` assignment after a NUL byte (which JSON text
//! cannot contain). Seeds: `examples/*.json` and `tests/fuzz/corpus/spec/`.

#![allow(clippy::unwrap_used)]

mod fuzzing;

use std::path::Path;

use fuzzing::Mutator;
use serde_json::Value;
use trainyard::render::{self, RenderOptions};
use trainyard::spec::{CheckedSpec, JobSpec, apply_override};

/// Splits an input into the spec text and its `--set` assignments.
fn split(input: &[u8]) -> (String, Vec<String>) {
    let mut parts = input.split(|&b| b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
    let text = parts.next().unwrap_or_default();
    (text, parts.collect())
}

fn join(text: &str, sets: &[String]) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    for s in sets {
        out.push(0);
        out.extend_from_slice(s.as_bytes());
    }
    out
}

fn exec(input: &[u8]) -> trainyard::Result<()> {
    let (text, sets) = split(input);
    // `--set` on its own, on whatever document the text is, as `from_json` applies it.
    if let Ok(mut doc) = serde_json::from_str::<Value>(&text) {
        for s in &sets {
            let _ = apply_override(&mut doc, s);
        }
    }
    let spec = JobSpec::from_json(&text, &sets)?;
    // The resolved spec is what a run records and `render` embeds: it must read back as itself.
    let resolved = spec.resolved_json();
    let back: JobSpec = serde_json::from_value(resolved.clone())
        .unwrap_or_else(|e| panic!("the resolved spec does not parse back: {e}\n{resolved}"));
    assert_eq!(back.resolved_json(), resolved, "the resolved spec changed on a round trip");
    let checked = CheckedSpec::new(spec, Path::new("."))?;
    let _ = checked.resolve("a/b.parquet");
    let class = checked.spec.resources.clone().or_else(|| Some("cpu-small".into()));
    render::render(&checked, &RenderOptions { class, ..Default::default() })?;
    Ok(())
}

/// Paths to aim `--set` at: every field of the document in dot form, plus malformed ones.
fn set_paths(text: &str, m: &mut Mutator) -> Vec<String> {
    fn walk(v: &Value, here: &str, out: &mut Vec<String>) {
        let join = |k: &str| if here.is_empty() { k.to_string() } else { format!("{here}.{k}") };
        match v {
            Value::Object(map) => map.iter().for_each(|(k, c)| walk(c, &join(k), out)),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| walk(c, &join(&i.to_string()), out)),
            _ => {}
        }
        if !here.is_empty() {
            out.push(here.to_string());
        }
    }
    let mut out = Vec::new();
    if let Ok(doc) = serde_json::from_str::<Value>(text) {
        walk(&doc, "", &mut out);
    }
    let word = m.word();
    out.extend(
        [
            "",
            ".",
            "a..b",
            " ",
            "model.mlp.hidden.99",
            "model.mlp.hidden.-1",
            "data.features.18446744073709551616",
            "holdout.random.fraction.x",
            "model",
            "model.mlp",
            "params.a.b.c.d.e.f",
            "seed.x",
        ]
        .map(String::from),
    );
    out.push(format!("{word}.{word}"));
    out
}

fn mutate(m: &mut Mutator, input: &[u8], other: &[u8]) -> Vec<u8> {
    let (text, mut sets) = split(input);
    let (other_text, _) = split(other);
    match m.rng.below(10) {
        0..=5 => match m.json(text.as_bytes(), other_text.as_bytes()) {
            Some(t) => join(&String::from_utf8_lossy(&t), &sets),
            None => m.bytes(input, other, input.len() + 1024),
        },
        6 | 7 => {
            let paths = set_paths(&text, m);
            let path = m.rng.pick(&paths).clone();
            let value = match m.rng.below(4) {
                0 => m.word(),
                1 => String::from_utf8_lossy(&m.bytes(b"", b"", 32)).into_owned(),
                _ => m.interesting_value().to_string(),
            };
            let assignment = if m.rng.chance(5) { value } else { format!("{path}={value}") };
            if sets.is_empty() || m.rng.chance(60) {
                sets.push(assignment);
            } else {
                let i = m.rng.below(sets.len());
                sets[i] = assignment;
            }
            join(&text, &sets)
        }
        8 if !sets.is_empty() => {
            sets.remove(m.rng.below(sets.len()));
            join(&text, &sets)
        }
        _ => m.bytes(input, other, input.len() + 1024),
    }
}

#[test]
fn the_spec_parser_checker_and_set_never_panic() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            seeds.push(std::fs::read(&path).unwrap());
        }
    }
    assert!(!seeds.is_empty(), "no example specs in {}", examples.display());
    fuzzing::run_target("spec", seeds, fuzzing::budget(1.0), mutate, exec);
}
