//! The Parquet loader on files written here: every supported type, nulls, projection, filters
//! with statistics pruning, several files, the label join and the three holdout modes.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, LargeStringArray, StringArray, TimestampMillisecondArray,
    UInt8Array, UInt64Array,
};
use arrow::datatypes::Int32Type;
use common::{DAY_US, Fixture, JAN_1_2024_US, write_parquet};
use serde_json::json;
use trainyard::data::{self, Kind, ParquetFile, Predicate, Values};
use trainyard::dataset;
use trainyard::spec::{CheckedFilter, CheckedSpec, FilterOp, FilterValue, JobSpec};

fn all_types(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("types.parquet");
    let dict = DictionaryArray::<Int32Type>::try_new(
        Int32Array::from(vec![1, 0, 1]),
        Arc::new(StringArray::from(vec!["visa", "amex"])),
    )
    .unwrap();
    write_parquet(
        &path,
        vec![
            ("i8", Arc::new(Int8Array::from(vec![Some(-1), None, Some(3)])) as ArrayRef),
            ("i16", Arc::new(Int16Array::from(vec![1, 2, 3]))),
            ("i32", Arc::new(Int32Array::from(vec![1, 2, 3]))),
            ("i64", Arc::new(Int64Array::from(vec![i64::MIN, 0, i64::MAX]))),
            ("u8", Arc::new(UInt8Array::from(vec![0, 200, 255]))),
            ("u64", Arc::new(UInt64Array::from(vec![0, 1, u64::MAX]))),
            ("f32", Arc::new(Float32Array::from(vec![Some(0.5), Some(f32::NAN), None]))),
            ("f64", Arc::new(Float64Array::from(vec![1.25, -2.5, 1e300]))),
            ("flag", Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)]))),
            (
                "dec",
                Arc::new(Decimal128Array::from(vec![12345, -5, 0]).with_precision_and_scale(10, 2).unwrap()),
            ),
            ("day", Arc::new(Date32Array::from(vec![0, 1, 19_723]))),
            ("ts", Arc::new(TimestampMillisecondArray::from(vec![0, 1_500, -1_000]).with_timezone("+02:00"))),
            ("s", Arc::new(StringArray::from(vec![Some("a"), None, Some("b")]))),
            ("ls", Arc::new(LargeStringArray::from(vec!["x", "y", "x"]))),
            ("dict", Arc::new(dict)),
        ],
        10,
    );
    path
}

#[test]
fn every_supported_type_decodes_to_its_kind_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let files = ParquetFile::open_all(&[all_types(dir.path())]).unwrap();
    let names: Vec<String> =
        ["i8", "i16", "i32", "i64", "u8", "u64", "f32", "f64", "flag", "dec", "day", "ts", "s", "ls", "dict"]
            .map(String::from)
            .to_vec();
    let kinds = data::column_kinds(&files, &names).unwrap();
    let k = |s: &str| match s {
        "i" => Kind::Integer,
        "u" => Kind::Unsigned,
        "f" => Kind::Float,
        "b" => Kind::Boolean,
        "dec" => Kind::Decimal,
        "d" => Kind::Date,
        "t" => Kind::Timestamp,
        _ => Kind::String,
    };
    let expected: Vec<Kind> =
        ["i", "i", "i", "i", "u", "u", "f", "f", "b", "dec", "d", "t", "s", "s", "s"].map(k).to_vec();
    assert_eq!(kinds, expected);
    let (frame, stats) = data::read(&files, &names, &kinds, &[]).unwrap();
    assert_eq!((frame.rows, stats.rows_in_files, stats.rows_kept), (3, 3, 3));
    let col = |n: &str| frame.column(n).unwrap();
    assert_eq!(
        (col("i8").f64_at(0), col("i8").f64_at(1), col("i8").f64_at(2)),
        (Some(-1.0), None, Some(3.0))
    );
    assert_eq!(col("i64").values, Values::Int(vec![i64::MIN, 0, i64::MAX]));
    assert_eq!(col("u8").f64_at(1), Some(200.0));
    assert_eq!(col("u64").values, Values::UInt(vec![0, 1, u64::MAX]));
    assert_eq!(col("f32").f64_at(0), Some(0.5));
    assert!(col("f32").f64_at(1).unwrap().is_nan() && col("f32").f64_at(2).is_none());
    assert_eq!(col("flag").f64_at(0), Some(1.0));
    assert!(col("flag").is_null(1));
    assert_eq!(col("dec").f64_at(0), Some(123.45));
    assert_eq!(col("dec").f64_at(1), Some(-0.05));
    assert_eq!(col("day").values, Values::Time(vec![0, DAY_US, 19_723 * DAY_US]));
    // Zoned timestamps keep their UTC instant.
    assert_eq!(col("ts").values, Values::Time(vec![0, 1_500_000, -1_000_000]));
    assert_eq!(col("s").string_at(0).as_deref(), Some("a"));
    assert_eq!(col("s").string_at(1), None);
    assert_eq!(col("ls").string_at(2).as_deref(), Some("x"));
    assert_eq!(
        (0..3).map(|i| col("dict").string_at(i).unwrap()).collect::<Vec<_>>(),
        ["amex", "visa", "amex"]
    );
}

#[test]
fn filters_prune_row_groups_and_match_a_full_scan() {
    let fx = Fixture::new();
    let files = ParquetFile::open_all(&[fx.path("data.parquet")]).unwrap();
    let names: Vec<String> = ["id", "t", "amount", "country"].map(String::from).to_vec();
    let kinds = data::column_kinds(&files, &names).unwrap();
    let bind = |column: &str, op: FilterOp| {
        let f = CheckedFilter { column: column.into(), op, path: "data.filters[0].x".into() };
        Predicate::bind(&f, kinds[names.iter().position(|n| n == column).unwrap()]).unwrap()
    };
    // ids 0..200 in row groups of 50, time-ordered: `t >= 2024-05-01` (day 121) needs the last
    // two row groups only; id < 120 needs the first three.
    let cases = [
        (vec![bind("t", FilterOp::Gte(FilterValue::Str("2024-05-01".into())))], 2, 79),
        (vec![bind("id", FilterOp::Lt(FilterValue::Num(120.0)))], 1, 120),
        (vec![bind("id", FilterOp::Eq(FilterValue::Num(7.0)))], 3, 1),
        (vec![bind("id", FilterOp::In(vec![FilterValue::Num(7.0), FilterValue::Num(180.0)]))], 2, 2),
        (vec![bind("country", FilterOp::Eq(FilterValue::Str("ZZ".into())))], 4, 0),
        (vec![bind("amount", FilterOp::IsNull)], 0, 12),
        (
            vec![
                bind("country", FilterOp::NotIn(vec![FilterValue::Str("US".into())])),
                bind("amount", FilterOp::NotNull),
            ],
            0,
            // 200 rows, 67 US (i % 3 == 0); nulls at i % 17 == 0, of which 4 are not US.
            133 - 8,
        ),
    ];
    for (preds, pruned, kept) in cases {
        let (frame, stats) = data::read(&files, &names, &kinds, &preds).unwrap();
        assert_eq!((stats.row_groups_pruned, frame.rows), (pruned, kept), "{preds:?}");
        // Reference: read everything, then apply the predicates row by row.
        let (all, _) = data::read(&files, &names, &kinds, &[]).unwrap();
        let mut keep = vec![true; all.rows];
        for p in &preds {
            p.apply(all.column(&p.column).unwrap(), &mut keep);
        }
        let expected = all.filter(&keep);
        for name in &names {
            let (a, b) = (expected.column(name).unwrap(), frame.column(name).unwrap());
            let text = |c: &trainyard::data::Column| (0..c.len()).map(|i| c.string_at(i)).collect::<Vec<_>>();
            assert_eq!(text(a), text(b), "{name}");
        }
    }
}

fn checked(fx: &Fixture, spec: serde_json::Value) -> CheckedSpec {
    let spec: JobSpec = serde_json::from_value(spec).unwrap();
    CheckedSpec::new(spec, fx.dir.path()).unwrap()
}

#[test]
fn several_files_and_directories_concatenate_in_order() {
    let fx = Fixture::new();
    std::fs::create_dir(fx.path("more")).unwrap();
    for (k, start) in [(0, 1000i64), (1, 2000)] {
        // int32 in one file, int64 in the other: the same kind, so no drift.
        let amount: ArrayRef = if k == 0 {
            Arc::new(Int32Array::from((0..10).collect::<Vec<_>>()))
        } else {
            Arc::new(Int64Array::from((0..10).collect::<Vec<_>>()))
        };
        write_parquet(
            &fx.path(&format!("more/part-{k}.parquet")),
            vec![
                ("id", Arc::new(Int64Array::from((start..start + 10).collect::<Vec<_>>())) as ArrayRef),
                ("amount", amount),
                ("country", Arc::new(StringArray::from(vec!["DE"; 10]))),
                ("y", Arc::new(Int64Array::from((0..10).map(|i| i % 2).collect::<Vec<_>>()))),
            ],
            4,
        );
    }
    let mut spec = fx.base_spec();
    spec["data"]["features"] = json!(["data.parquet", "more"]);
    let err = dataset::load(&checked(&fx, spec.clone())).unwrap_err().to_string();
    assert!(err.contains("column \"amount\" is float in") && err.contains("but integer in"), "{err}");
    spec["data"]["features"] = json!(["more"]);
    let d = dataset::load(&checked(&fx, spec)).unwrap();
    let ids = |r: &dataset::Rows| {
        let c = r.frame.column("id").unwrap();
        (0..c.len()).map(|i| c.f64_at(i).unwrap() as i64).collect::<Vec<_>>()
    };
    // File order, then row order, on each side of the split.
    for side in [ids(&d.train), ids(&d.test)] {
        assert!(side.windows(2).all(|w| w[0] < w[1]), "{side:?}");
    }
    assert_eq!(d.report.files.len(), 2);
    assert_eq!(d.report.features_read.row_groups, 6);
    assert_eq!(d.report.train_rows + d.report.test_rows, 20);
}

#[test]
fn labels_join_on_the_key_dropping_and_counting_unlabeled_rows() {
    let fx = Fixture::new();
    let mut spec = fx.base_spec();
    spec["data"]["labels"] = json!(["labels.parquet"]);
    spec["data"]["join_key"] = json!("id");
    spec["label"] = json!("label");
    let d = dataset::load(&checked(&fx, spec)).unwrap();
    assert_eq!(d.report.rows_without_label, 10);
    assert_eq!(d.report.train_rows + d.report.test_rows, 190);
    // Labels joined by key equal the label column stored beside the features (y == label).
    for rows in [&d.train, &d.test] {
        let ids = rows.frame.column("id").unwrap();
        for (i, y) in rows.labels.iter().enumerate() {
            let id = ids.f64_at(i).unwrap() as i64;
            assert_eq!(*y, if id % 4 == 0 { 1.0 } else { 0.0 });
        }
    }
}

#[test]
fn holdout_modes_assign_the_expected_rows() {
    let fx = Fixture::new();
    // date_range: days 0..200 from 2024-01-01; test = [Mar 1, Apr 1) = days 60..91, train = 0..60.
    let mut spec = fx.base_spec();
    spec["holdout"] = json!({"date_range": {"column": "t", "start": "2024-03-01", "end": "2024-04-01"}});
    let d = dataset::load(&checked(&fx, spec)).unwrap();
    assert_eq!((d.report.train_rows, d.report.test_rows, d.report.rows_dropped_by_holdout), (60, 31, 109));
    let t = d.test.frame.column("t").unwrap();
    assert!((0..t.len()).all(|i| {
        let day = (t.f64_at(i).unwrap() as i64 - JAN_1_2024_US) / DAY_US;
        (60..91).contains(&day)
    }));

    // random with a key: about a quarter in test, stable for a given seed.
    let d = dataset::load(&checked(&fx, fx.base_spec())).unwrap();
    assert!((30..70).contains(&d.report.test_rows), "{}", d.report.test_rows);
    let again = dataset::load(&checked(&fx, fx.base_spec())).unwrap();
    assert_eq!(d.test.frame.column("id"), again.test.frame.column("id"));

    // files: test rows come from the holdout files only.
    write_parquet(
        &fx.path("eval.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from((500..540).collect::<Vec<_>>())) as ArrayRef),
            ("amount", Arc::new(Float64Array::from(vec![3.0; 40]))),
            ("country", Arc::new(StringArray::from(vec!["US"; 40]))),
            ("y", Arc::new(Int64Array::from((0..40).map(|i| i % 2).collect::<Vec<_>>()))),
        ],
        100,
    );
    let mut spec = fx.base_spec();
    spec["holdout"] = json!({"files": ["eval.parquet"]});
    let d = dataset::load(&checked(&fx, spec)).unwrap();
    assert_eq!((d.report.train_rows, d.report.test_rows, d.report.test_positives), (200, 40, 20));
}
