//! Fuzzes Parquet ingest with mutated files: opening the footer, typing every column, reading
//! all usable columns (with a filter whose statistics pruning reads the mutated row-group
//! statistics), and decoding float32 columns again through the dense scatter path. A corrupt
//! file must be a data error naming it; a panic is a bug, and so is an abort (a corrupt length
//! that makes the reader allocate without bound), which the harness leaves on disk as
//! `in-flight`.
//!
//! Seeds: small files from `synth` and `synth --numeric`, files of every column type written
//! with each compression codec (also committed under `tests/fuzz/corpus/parquet/`; rewrite them
//! with `TRAINYARD_FUZZ_WRITE_SEEDS=1`), and the shared datasets' `train.parquet` when present.

#![allow(clippy::unwrap_used)]

mod common;
mod fuzzing;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, Decimal128Array, DictionaryArray,
    Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, LargeStringArray, ListArray,
    StringArray, TimestampMillisecondArray, TimestampNanosecondArray, UInt8Array, UInt64Array,
};
use arrow::datatypes::{DataType, Int32Type};
use arrow::record_batch::RecordBatch;
use fuzzing::Mutator;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use trainyard::data::{self, Dense, Kind, ParquetFile, Predicate};
use trainyard::spec::{CheckedFilter, FilterOp, FilterValue};
use trainyard::synth::{self, SynthOptions};

/// Shared datasets larger than this are left out: each execution rewrites the whole input.
const MAX_SEED_BYTES: u64 = 2 << 20;

fn exec(path: &Path, input: &[u8]) -> trainyard::Result<()> {
    std::fs::write(path, input).unwrap();
    let file = ParquetFile::open(path)?;
    let _ = (file.rows(), file.row_groups(), file.bytes);
    let mut names: Vec<String> = file.schema().fields().iter().map(|f| f.name().clone()).collect();
    let files = vec![file];
    let _ = data::column_kinds(&files, &names);
    names.sort();
    names.dedup();
    let (names, kinds): (Vec<String>, Vec<Kind>) =
        names.into_iter().filter_map(|n| files[0].kind_of(&n).ok().map(|k| (n, k))).unzip();
    let predicates = predicate_for(input, &names, &kinds).into_iter().collect::<Vec<_>>();
    let (frame, _, origins) = data::read_tracked(&files, &names, &kinds, &predicates)?;
    for name in &names {
        let Some(column) = frame.column(name) else { continue };
        for i in 0..column.len() {
            let _ = (column.is_null(i), column.f64_at(i), column.string_at(i), column.key_at(i));
        }
    }
    let dense: Vec<String> = names.iter().filter(|n| data::is_numeric(&files, n)).cloned().collect();
    if !dense.is_empty() {
        let mut out = Dense::zeros(&dense, frame.rows);
        let places: Vec<data::Place> = (0..frame.rows as u32).map(|r| (0, r)).collect();
        let fields: Vec<String> = dense.iter().map(|n| format!("column {n}")).collect();
        data::scatter(&files, &origins, &dense, &fields, &places, &mut [&mut out])?;
    }
    Ok(())
}

/// A filter on one of the columns, chosen by the input's bytes so that a saved input replays
/// the same way: with it, reading consults the row-group statistics to prune.
fn predicate_for(input: &[u8], names: &[String], kinds: &[Kind]) -> Option<Predicate> {
    if names.is_empty() {
        return None;
    }
    let h = input.iter().fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize));
    let j = h % names.len();
    let (op, path) = match (h / 7 % 4, kinds[j]) {
        (0, _) => return None,
        (1, Kind::String) => {
            (FilterOp::In(vec![FilterValue::Str("US".into()), FilterValue::Str("x".into())]), "in")
        }
        (1, Kind::Date | Kind::Timestamp) => (FilterOp::Gte(FilterValue::Str("2024-07-01".into())), "gte"),
        (1, Kind::Boolean) => (FilterOp::Eq(FilterValue::Bool(true)), "eq"),
        (1, _) => (FilterOp::Gte(FilterValue::Num(0.5)), "gte"),
        (2, Kind::String) => (FilterOp::Lt(FilterValue::Str("m".into())), "lt"),
        (2, k) if k.is_numeric() && k != Kind::Boolean && k != Kind::Date && k != Kind::Timestamp => {
            (FilterOp::NotIn(vec![FilterValue::Num(0.0), FilterValue::Num(f64::MAX)]), "not_in")
        }
        _ => (FilterOp::NotNull, "not_null"),
    };
    let filter = CheckedFilter { column: names[j].clone(), op, path: format!("data.filters[0].{path}") };
    Predicate::bind(&filter, kinds[j]).ok()
}

fn mutate(m: &mut Mutator, input: &[u8], other: &[u8]) -> Vec<u8> {
    // The footer (thrift metadata: schema, row groups, offsets, statistics) sits before the
    // last 8 bytes, whose first 4 are its length.
    let len = input.len();
    let focus = if len >= 12 && input.ends_with(b"PAR1") {
        let footer = u32::from_le_bytes(input[len - 8..len - 4].try_into().unwrap()) as usize;
        len.saturating_sub(8 + footer)..len
    } else {
        0..0
    };
    if m.rng.chance(50) {
        m.bytes_focused(input, other, len + 4096, focus)
    } else {
        m.bytes(input, other, len + 4096)
    }
}

/// Small files covering every column type trainyard reads (and two it refuses), nulls, NaN and
/// infinities, one row per row group and none at all, written with each codec.
fn edge_case_files() -> Vec<(String, Vec<u8>)> {
    let n = 6;
    let types: Vec<(&str, ArrayRef)> = vec![
        (
            "i8",
            Arc::new(Int8Array::from(vec![Some(i8::MIN), None, Some(0), Some(1), Some(i8::MAX), Some(-1)])),
        ),
        ("i16", Arc::new(Int16Array::from(vec![i16::MIN, 0, 1, 2, 3, i16::MAX]))),
        (
            "i32",
            Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(0), None, Some(7), Some(7), Some(i32::MAX)])),
        ),
        ("i64", Arc::new(Int64Array::from(vec![i64::MIN, -1, 0, 1, 2, i64::MAX]))),
        ("u8", Arc::new(UInt8Array::from(vec![0, 1, 2, 3, 254, 255]))),
        ("u64", Arc::new(UInt64Array::from(vec![0, 1, 2, 3, u64::MAX - 1, u64::MAX]))),
        (
            "f16",
            arrow::compute::cast(
                &Float32Array::from(vec![0.5, f32::NAN, f32::INFINITY, 65504.0, -65504.0, 0.0]),
                &DataType::Float16,
            )
            .unwrap(),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![
                Some(1.5),
                Some(f32::NAN),
                None,
                Some(f32::INFINITY),
                Some(f32::MIN_POSITIVE),
                Some(-0.0),
            ])),
        ),
        ("f64", Arc::new(Float64Array::from(vec![f64::MAX, f64::MIN, 5e-324, f64::NEG_INFINITY, 0.0, 1.0]))),
        (
            "bool",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
                Some(true),
                Some(false),
            ])),
        ),
        ("date32", Arc::new(Date32Array::from(vec![i32::MIN, -1, 0, 19_900, 19_901, i32::MAX]))),
        ("date64", Arc::new(Date64Array::from(vec![0, 86_400_000, -86_400_000, 1, 2, 3]))),
        (
            "ts_ms",
            Arc::new(
                TimestampMillisecondArray::from(vec![i64::MIN, 0, 1, 1_700_000_000_000, 2, i64::MAX])
                    .with_timezone("UTC"),
            ),
        ),
        ("ts_ns", Arc::new(TimestampNanosecondArray::from(vec![i64::MIN, 0, 1, 2, 3, i64::MAX]))),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![
                    Some(i128::from(i64::MAX) * 1000),
                    None,
                    Some(0),
                    Some(-1),
                    Some(1),
                    Some(12_345),
                ])
                .with_precision_and_scale(38, 2)
                .unwrap(),
            ),
        ),
        (
            "s",
            Arc::new(StringArray::from(vec![Some("US"), Some(""), None, Some("é🦀"), Some("US"), Some("x")])),
        ),
        ("ls", Arc::new(LargeStringArray::from(vec!["a", "b", "c", "a", "b", "c"]))),
        (
            "dict",
            Arc::new(
                DictionaryArray::<Int32Type>::try_new(
                    Int32Array::from(vec![Some(0), Some(1), None, Some(1), Some(0), Some(2)]),
                    Arc::new(StringArray::from(vec!["visa", "amex", "other"])),
                )
                .unwrap(),
            ),
        ),
        ("bin", Arc::new(BinaryArray::from(vec![&b"\x00"[..], b"", b"ab", b"\xff", b"c", b"d"]))),
        (
            "list",
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
                (0..n).map(|i| (i % 2 == 0).then(|| vec![Some(i as i32), None])),
            )),
        ),
    ];
    let typed = RecordBatch::try_from_iter(types).unwrap();
    let nulls = RecordBatch::try_from_iter([
        ("x", Arc::new(Float64Array::from(vec![None::<f64>; n])) as ArrayRef),
        ("s", Arc::new(StringArray::from(vec![None::<&str>; n]))),
        ("y", Arc::new(Int64Array::from(vec![None::<i64>; n]))),
    ])
    .unwrap();
    let empty = typed.slice(0, 0);
    let ones = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from_iter_values(0..24)) as ArrayRef),
        ("x", Arc::new(Float32Array::from_iter_values((0..24).map(|i| i as f32 / 3.0)))),
    ])
    .unwrap();

    let props = |c: Compression, v2: bool, dict: bool, rows: usize| {
        WriterProperties::builder()
            .set_compression(c)
            .set_writer_version(if v2 { WriterVersion::PARQUET_2_0 } else { WriterVersion::PARQUET_1_0 })
            .set_dictionary_enabled(dict)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(rows))
            .build()
    };
    let cases = [
        ("types-uncompressed.parquet", &typed, props(Compression::UNCOMPRESSED, false, true, 4)),
        ("types-snappy-v2.parquet", &typed, props(Compression::SNAPPY, true, false, 3)),
        ("types-zstd.parquet", &typed, props(Compression::ZSTD(ZstdLevel::default()), false, true, 6)),
        ("types-lz4raw-v2.parquet", &typed, props(Compression::LZ4_RAW, true, true, 2)),
        ("types-gzip.parquet", &typed, props(Compression::GZIP(Default::default()), false, false, 6)),
        ("types-lz4.parquet", &typed, props(Compression::LZ4, false, true, 5)),
        ("all-null.parquet", &nulls, props(Compression::SNAPPY, false, true, 4)),
        ("no-rows.parquet", &empty, props(Compression::SNAPPY, false, true, 4)),
        ("one-row-per-group.parquet", &ones, props(Compression::UNCOMPRESSED, true, false, 1)),
    ];
    cases
        .into_iter()
        .map(|(name, batch, props)| {
            let mut bytes = Vec::new();
            let mut w = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props)).unwrap();
            w.write(batch).unwrap();
            w.close().unwrap();
            (name.to_string(), bytes)
        })
        .collect()
}

#[test]
fn parquet_ingest_never_panics_on_corrupt_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut seeds = Vec::new();

    let charges = tmp.path().join("synth");
    let opts = SynthOptions { rows: 300, seed: 7, files: 1, row_group_rows: 100, ..SynthOptions::default() };
    let summary = synth::write(&charges, &opts).unwrap();
    for path in summary.feature_files.iter().chain([&summary.label_file]) {
        seeds.push(std::fs::read(path).unwrap());
    }
    let numeric = tmp.path().join("numeric");
    let opts = SynthOptions { rows: 200, seed: 8, files: 1, row_group_rows: 64, ..SynthOptions::default() };
    for path in synth::write_numeric(&numeric, 3, &opts).unwrap().feature_files {
        seeds.push(std::fs::read(path).unwrap());
    }

    let edge = edge_case_files();
    if std::env::var_os("TRAINYARD_FUZZ_WRITE_SEEDS").is_some() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus/parquet");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &edge {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    seeds.extend(edge.into_iter().map(|(_, b)| b));

    // Without the datasets the synthetic and edge-case seeds still run (CI requires them).
    if let Some(datasets) = common::datasets_dir() {
        let mut paths: Vec<_> =
            std::fs::read_dir(&datasets).unwrap().map(|e| e.unwrap().path().join("train.parquet")).collect();
        paths.sort();
        for path in paths {
            match std::fs::metadata(&path) {
                Ok(m) if m.len() <= MAX_SEED_BYTES => seeds.push(std::fs::read(&path).unwrap()),
                Ok(m) => eprintln!("fuzz parquet: leaving out {} ({} bytes)", path.display(), m.len()),
                Err(_) => {}
            }
        }
    }

    let input = tmp.path().join("input.parquet");
    fuzzing::run_target("parquet", seeds, fuzzing::budget(1.0), mutate, |bytes| exec(&input, bytes));
}
