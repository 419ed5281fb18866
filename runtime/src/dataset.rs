//! From a checked spec to train and test rows: file expansion, schema checks, filtered reads,
//! the label join, the holdout and label encoding. Everything `validate` reports is counted here.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::data::{
    self, Column, Dense, Frame, KeyRef, Kind, Origins, ParquetFile, Predicate, ReadStats, Values,
};
use crate::error::{Error, Result};
use crate::label::{LabelMapping, Labels};
use crate::progress::Reporter;
use crate::spec::{CheckedHoldout, CheckedSpec};
use crate::split::{self, Side};

/// Rows of one side of the split.
#[derive(Debug, Clone)]
pub struct Rows {
    /// Feature columns plus any key columns, one row per example.
    pub frame: Frame,
    /// 1.0 for the positive class, 0.0 otherwise.
    pub labels: Vec<f32>,
    /// Sample weights from the spec's `weight` column, if any.
    pub weights: Option<Vec<f32>>,
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of positive rows.
    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|&&y| y == 1.0).count()
    }
}

/// A file that was read, for reports and the manifest's input fingerprint.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// The spec field that listed it (`data.features`, `data.labels`, `holdout.files`).
    pub role: String,
    /// Path as resolved.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows in the file.
    pub rows: u64,
    /// Row groups in the file.
    pub row_groups: usize,
    /// For an object in a store: its ETag, version and last-modified time, as listed.
    #[serde(skip)]
    pub object: Option<object_store::ObjectMeta>,
}

/// Counts from loading, joining and splitting.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// Every file read.
    pub files: Vec<FileInfo>,
    /// The read of `data.features`.
    pub features_read: ReadStats,
    /// The read of `holdout.files`, for a `files` holdout.
    pub holdout_read: Option<ReadStats>,
    /// The read of `data.labels`, when labels are joined.
    pub labels_read: Option<ReadStats>,
    /// Feature rows dropped because no label row had their key.
    pub rows_without_label: u64,
    /// Rows dropped by the holdout (after a `date_range` window, or a null date).
    pub rows_dropped_by_holdout: u64,
    /// Train rows and positives.
    pub train_rows: usize,
    /// Positive train rows.
    pub train_positives: usize,
    /// Test rows.
    pub test_rows: usize,
    /// Positive test rows.
    pub test_positives: usize,
    /// Multiclass labels: train rows of each class, in class order (empty for binary labels,
    /// whose classes `train_positives` counts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub train_class_rows: Vec<usize>,
    /// Multiclass labels: test rows of each class.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test_class_rows: Vec<usize>,
}

/// Train and test rows with the label mapping and the counts.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The train side.
    pub train: Rows,
    /// The test side.
    pub test: Rows,
    /// How label values map to classes.
    pub labels: Labels,
    /// Kind of each feature column, numeric first then categorical, in spec order.
    pub feature_kinds: Vec<(String, Kind)>,
    /// What loading did.
    pub report: LoadReport,
}

/// The column that identifies a row in `predictions.parquet`: the join key, else the random
/// holdout key.
pub fn row_key(checked: &CheckedSpec) -> Option<&str> {
    checked.spec.data.join_key.as_deref().or(match &checked.holdout {
        CheckedHoldout::Random { key, .. } => key.as_deref(),
        _ => None,
    })
}

/// Loads the job's rows and splits them.
pub fn load(checked: &CheckedSpec) -> Result<Dataset> {
    load_reporting(checked, &Reporter::default())
}

/// Columns another model reads from the same rows (a baseline's features), loaded beside the
/// job's own.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// The columns.
    pub columns: Vec<String>,
    /// Those of them that must be frame columns (categorical codes, group keys), never only in
    /// the dense numeric rows.
    pub frame: Vec<String>,
    /// Who reads them, for the error when the data lacks one (`the baseline run <id>`).
    pub reader: String,
}

/// [`load`], reporting the row groups read and decoded to `progress`.
pub fn load_reporting(checked: &CheckedSpec, progress: &Reporter) -> Result<Dataset> {
    load_with(checked, &Extra::default(), progress)
}

/// [`load_reporting`] with `extra` columns in the frames (exit 2 naming the column, the file and
/// the reader when a file lacks one, before any rows are read).
pub fn load_with(checked: &CheckedSpec, extra: &Extra, progress: &Reporter) -> Result<Dataset> {
    let spec = &checked.spec;
    let mut report = LoadReport::default();

    let feature_paths = data::expand("data.features", &spec.data.features, |p| checked.resolve(p))?;
    let feature_files = ParquetFile::open_sources(&feature_paths)?;
    record(&mut report, "data.features", &feature_files);

    let labels_source = if spec.data.labels.is_empty() {
        None
    } else {
        let paths = data::expand("data.labels", &spec.data.labels, |p| checked.resolve(p))?;
        let files = ParquetFile::open_sources(&paths)?;
        record(&mut report, "data.labels", &files);
        Some(files)
    };
    // The weight lives in the feature files, or else in the label files.
    let weight_in_labels = match (&spec.weight, &labels_source) {
        (Some(w), Some(_)) => !feature_files[0].has_column(w),
        _ => false,
    };

    // A fixed evaluation set's files are opened first: whether a column can skip the frame
    // depends on its type in them too.
    let holdout_files = match &checked.holdout {
        CheckedHoldout::Files(entries) => {
            let paths = data::expand("holdout.files", entries, |p| checked.resolve(p))?;
            // A file on both sides puts the same rows in train and test: metrics that flatter.
            let canonical = |s: &data::Source| {
                let p = s.path();
                p.canonicalize().unwrap_or(p)
            };
            let train: Vec<PathBuf> = feature_paths.iter().map(canonical).collect();
            if let Some(both) = paths.iter().map(canonical).find(|p| train.contains(p)) {
                return Err(Error::spec(
                    "holdout.files",
                    format!(
                        "{} is also read by data.features; its rows would be in train and test alike",
                        both.display()
                    ),
                ));
            }
            Some(ParquetFile::open_sources(&paths)?)
        }
        _ => None,
    };

    let mut columns: Vec<String> = Vec::new();
    let mut want = |c: &str| {
        if !columns.iter().any(|x| x == c) {
            columns.push(c.to_string());
        }
    };
    checked.filters.iter().for_each(|f| want(&f.column));
    match &checked.holdout {
        CheckedHoldout::Random { key: Some(k), .. } => want(k),
        CheckedHoldout::DateRange { column, .. } => want(column),
        _ => {}
    }
    match &spec.data.join_key {
        Some(k) => want(k),
        None => want(&spec.label),
    }
    if let Some(w) = &spec.weight
        && !weight_in_labels
    {
        want(w);
    }
    if let Some(p) = &spec.partition {
        want(&p.by);
    }
    extra.frame.iter().for_each(|c| want(c));
    // Numeric features used for nothing else skip the frame: they are decoded after the split,
    // straight into the rows of each side (see `data::dense`).
    let dense: Vec<String> = spec
        .features
        .numeric
        .iter()
        .filter(|c| {
            !columns.contains(c)
                && data::is_numeric(&feature_files, c)
                && holdout_files.as_ref().is_none_or(|h| data::is_numeric(h, c))
        })
        .cloned()
        .collect();
    let dense_fields: Vec<String> = dense
        .iter()
        .map(|c| {
            let i = spec.features.numeric.iter().position(|n| n == c).unwrap_or_default();
            format!("features.numeric[{i}]")
        })
        .collect();
    for c in spec.features.numeric.iter().chain(&spec.features.categorical) {
        if !dense.contains(c) && !columns.contains(c) {
            columns.push(c.clone());
        }
    }

    let sides = [("data.features", Some(&feature_files)), ("holdout.files", holdout_files.as_ref())];
    for (field, files) in sides {
        for file in files.into_iter().flatten() {
            let missing: Vec<&String> = extra.columns.iter().filter(|c| !file.has_column(c)).collect();
            if !missing.is_empty() {
                let names: Vec<String> = missing.iter().map(|c| format!("{c:?}")).collect();
                return Err(Error::data(format!(
                    "{}: {} reads {} {}, not in {} ({field}); the new data must carry every column \
                     the baseline reads",
                    if extra.reader.contains("baseline") { "baseline" } else { field },
                    extra.reader,
                    if missing.len() == 1 { "column" } else { "columns" },
                    names.join(", "),
                    file.path.display()
                )));
            }
        }
    }
    for c in &extra.columns {
        if !dense.contains(c) && !columns.contains(c) {
            columns.push(c.clone());
        }
    }

    let kinds = data::column_kinds(&feature_files, &columns)?;
    let kind_of = |name: &str| columns.iter().position(|c| c == name).map(|i| kinds[i]);
    check_kinds(checked, &kind_of)?;
    let predicates = checked
        .filters
        .iter()
        .map(|f| Predicate::bind(f, kind_of(&f.column).unwrap_or(Kind::Float)))
        .collect::<Result<Vec<_>>>()?;

    let label_frame = match &labels_source {
        Some(files) => {
            let key = spec.data.join_key.as_deref().unwrap_or_default();
            let mut cols = vec![key.to_string(), spec.label.clone()];
            if weight_in_labels {
                cols.extend(spec.weight.clone());
            }
            let label_kinds = data::column_kinds(files, &cols)?;
            let (fk, lk) = (kind_of(key).unwrap_or(Kind::String), label_kinds[0]);
            // Integer and unsigned keys compare by value; any other pair of kinds never matches,
            // so it is an error now rather than "no feature row has a label" after the read.
            let integer = |k: Kind| matches!(k, Kind::Integer | Kind::Unsigned);
            if fk != lk && !(integer(fk) && integer(lk)) {
                return Err(Error::data(format!(
                    "data.join_key: column {key:?} is {} in the feature files but {} in the label files",
                    fk.name(),
                    lk.name()
                )));
            }
            let (frame, stats) = data::read(files, &cols, &label_kinds, &[])?;
            report.labels_read = Some(stats);
            Some(frame)
        }
        None => None,
    };

    let numeric_fields: Vec<(String, String)> = spec
        .features
        .numeric
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("features.numeric[{i}]"), c.clone()))
        .collect();
    // Each row remembers its position in the read, so the dense columns can be placed after the
    // join and the split have chosen rows.
    let read_side = |files: &[ParquetFile], report: &mut LoadReport| -> Result<(Frame, ReadStats, Origins)> {
        let (mut frame, stats, origins) =
            data::read_reporting(files, &columns, &kinds, &predicates, progress)?;
        data::check_finite(files, &origins, |n| frame.column(n), &numeric_fields)?;
        let positions = Values::Int((0..frame.rows as i64).collect());
        frame.push(READ_ROW, Column { kind: Kind::Integer, values: positions, nulls: None });
        let frame = match (&label_frame, &spec.data.join_key) {
            (Some(labels), Some(key)) => {
                let (joined, dropped) = join(
                    frame,
                    labels,
                    key,
                    &spec.label,
                    spec.weight.as_deref().filter(|_| weight_in_labels),
                )?;
                report.rows_without_label += dropped;
                joined
            }
            _ => frame,
        };
        Ok((frame, stats, origins))
    };

    let (frame, stats, origins) = read_side(&feature_files, &mut report)?;
    let read_rows = stats.rows_kept as usize;
    if stats.rows_kept == 0 {
        return Err(Error::data(format!(
            "no rows left after the filters (data.filters): {} rows in {} files, {} row groups skipped by statistics",
            stats.rows_in_files,
            feature_files.len(),
            stats.row_groups_pruned
        )));
    }
    report.features_read = stats;
    if frame.rows == 0 {
        return Err(Error::data(format!(
            "no feature row has a label: none of the {} keys in column {:?} is in data.labels",
            report.features_read.rows_kept,
            spec.data.join_key.as_deref().unwrap_or_default()
        )));
    }

    let (train, test) = match &checked.holdout {
        CheckedHoldout::Files(_) => {
            let files = holdout_files.unwrap_or_default();
            record(&mut report, "holdout.files", &files);
            let holdout_kinds = data::column_kinds(&files, &columns)?;
            for (name, (a, b)) in columns.iter().zip(kinds.iter().zip(&holdout_kinds)) {
                if a != b {
                    return Err(Error::data(format!(
                        "column {name:?} is {} in data.features but {} in holdout.files ({})",
                        a.name(),
                        b.name(),
                        files[0].path.display()
                    )));
                }
            }
            let (mut test, stats, test_origins) = read_side(&files, &mut report)?;
            let mut train = frame;
            let test_rows = stats.rows_kept as usize;
            place_dense(
                &feature_files,
                &origins,
                read_rows,
                &dense,
                &dense_fields,
                &mut [&mut train],
                progress,
            )?;
            place_dense(&files, &test_origins, test_rows, &dense, &dense_fields, &mut [&mut test], progress)?;
            report.holdout_read = Some(stats);
            (train, test)
        }
        holdout => {
            let sides = match holdout {
                CheckedHoldout::Random { fraction, key } => split::random(
                    frame.rows,
                    *fraction,
                    spec.seed,
                    key.as_deref().and_then(|k| frame.column(k).map(|c| (k, c))),
                )?,
                CheckedHoldout::DateRange { column, start_us, end_us } => {
                    let c =
                        frame.column(column).ok_or_else(|| Error::Internal(format!("{column} not read")))?;
                    split::date_range(c, *start_us, *end_us)
                }
                CheckedHoldout::Files(_) => unreachable!("handled above"),
            };
            report.rows_dropped_by_holdout = sides.iter().filter(|s| **s == Side::Dropped).count() as u64;
            let pick = |want: Side| -> Vec<bool> { sides.iter().map(|s| *s == want).collect() };
            let (mut train, mut test) = frame.split(&pick(Side::Train), &pick(Side::Test));
            place_dense(
                &feature_files,
                &origins,
                read_rows,
                &dense,
                &dense_fields,
                &mut [&mut train, &mut test],
                progress,
            )?;
            (train, test)
        }
    };
    for (side, f) in [("train", &train), ("test", &test)] {
        if f.rows == 0 {
            return Err(Error::data(format!("holdout: the {side} side is empty; {}", holdout_hint(checked))));
        }
    }

    let feature_kinds = || {
        spec.features
            .numeric
            .iter()
            .chain(&spec.features.categorical)
            .map(|c| (c.clone(), kind_of(c).unwrap_or(Kind::Float)))
            .collect()
    };
    let label_col =
        |f: &Frame| f.column(&spec.label).cloned().ok_or_else(|| Error::Internal("label not read".into()));
    let (train_labels, test_labels) = (label_col(&train)?, label_col(&test)?);
    let binary_only = spec
        .partition
        .as_ref()
        .map(|_| "partition: per-group models need a binary label (remove partition for a multiclass label)");
    let labels =
        Labels::fit(&spec.label, &[&train_labels, &test_labels], spec.positive_label.as_ref(), binary_only)?;
    let train = rows(train, &labels.encode(&train_labels)?, spec.weight.as_deref())?;
    let test = rows(test, &labels.encode(&test_labels)?, spec.weight.as_deref())?;
    let mapping = match &labels {
        Labels::Binary(m) => m,
        Labels::Multiclass(m) => {
            check_classes(
                &spec.label,
                &m.classes,
                &train.labels,
                train.weights.as_deref(),
                spec.weight.as_deref(),
            )?;
            report.train_rows = train.len();
            report.test_rows = test.len();
            let counts = |y: &[f32]| {
                let mut n = vec![0usize; m.classes.len()];
                y.iter().for_each(|&c| n[c as usize] += 1);
                n
            };
            report.train_class_rows = counts(&train.labels);
            report.test_class_rows = counts(&test.labels);
            return Ok(Dataset { train, test, labels, feature_kinds: feature_kinds(), report });
        }
    };
    for (side, r) in [("train", &train), ("test", &test)] {
        let pos = r.positives();
        if pos == 0 || pos == r.len() {
            return Err(Error::data(format!(
                "the {side} side has a single class: {} rows, all {}; a binary model needs both classes in train and test",
                r.len(),
                if pos == 0 { &mapping.negative } else { &mapping.positive }
            )));
        }
    }
    if let (Some(w), Some(weights)) = (&spec.weight, &train.weights) {
        check_weights(w, weights, &train.labels, mapping)?;
    }
    report.train_rows = train.len();
    report.train_positives = train.positives();
    report.test_rows = test.len();
    report.test_positives = test.positives();

    Ok(Dataset { train, test, labels, feature_kinds: feature_kinds(), report })
}

/// The hidden column that carries each row's position in its read through the join and split.
/// The leading NUL keeps it apart from any Parquet column name.
const READ_ROW: &str = "\0read_row";

/// Decodes the dense columns of `files` into each of `sides` (frames from one read of `files`,
/// `read_rows` rows, after the join and split), using and then removing their read-row column.
fn place_dense(
    files: &[ParquetFile],
    origins: &Origins,
    read_rows: usize,
    dense: &[String],
    fields: &[String],
    sides: &mut [&mut Frame],
    progress: &Reporter,
) -> Result<()> {
    let mut places = vec![data::NOWHERE; if dense.is_empty() { 0 } else { read_rows }];
    for (o, side) in sides.iter_mut().enumerate() {
        let ids = side.remove(READ_ROW).ok_or_else(|| Error::Internal("read-row column lost".into()))?;
        if dense.is_empty() {
            continue;
        }
        let Values::Int(ids) = ids.values else {
            return Err(Error::Internal("read-row column is not integer".into()));
        };
        for (k, &r) in ids.iter().enumerate() {
            places[r as usize] = (o as u32, k as u32);
        }
        side.dense = Dense::zeros(dense, side.rows);
    }
    if dense.is_empty() {
        return Ok(());
    }
    let mut outs: Vec<&mut Dense> = sides.iter_mut().map(|s| &mut s.dense).collect();
    data::scatter_reporting(files, origins, dense, fields, &places, &mut outs, progress)
}

fn record(report: &mut LoadReport, role: &str, files: &[ParquetFile]) {
    report.files.extend(files.iter().map(|f| FileInfo {
        role: role.to_string(),
        path: f.path.clone(),
        bytes: f.bytes,
        rows: f.rows(),
        row_groups: f.row_groups(),
        object: f.remote.as_ref().map(|r| r.meta.clone()),
    }));
}

fn holdout_hint(checked: &CheckedSpec) -> String {
    match &checked.holdout {
        CheckedHoldout::DateRange { column, .. } => format!(
            "check holdout.date_range.start/end against the dates in column {column:?} (train = before start, test = [start, end))"
        ),
        CheckedHoldout::Random { fraction, .. } => {
            format!("too few rows for holdout.random.fraction {fraction}")
        }
        CheckedHoldout::Files(_) => {
            "holdout.files and data.features must both have rows after the filters".into()
        }
    }
}

/// Checks that each column's kind suits its role, before any data is decoded.
fn check_kinds(checked: &CheckedSpec, kind_of: &dyn Fn(&str) -> Option<Kind>) -> Result<()> {
    let spec = &checked.spec;
    for (i, c) in spec.features.numeric.iter().enumerate() {
        if kind_of(c) == Some(Kind::String) {
            return Err(Error::spec(
                format!("features.numeric[{i}]"),
                format!("column {c:?} is string; list it under features.categorical"),
            ));
        }
    }
    for (i, c) in spec.features.categorical.iter().enumerate() {
        if let Some(k @ (Kind::Float | Kind::Decimal | Kind::Date | Kind::Timestamp)) = kind_of(c) {
            return Err(Error::spec(
                format!("features.categorical[{i}]"),
                format!(
                    "column {c:?} is {}; categorical columns are strings, integers or booleans",
                    k.name()
                ),
            ));
        }
    }
    let not_float = |path: &str, c: &str| match kind_of(c) {
        Some(k @ (Kind::Float | Kind::Decimal)) => {
            Err(Error::spec(path, format!("column {c:?} is {}; keys must be integers or strings", k.name())))
        }
        _ => Ok(()),
    };
    if let Some(k) = &spec.data.join_key {
        not_float("data.join_key", k)?;
    }
    if let Some(p) = &spec.partition {
        not_float("partition.by", &p.by)?;
    }
    match &checked.holdout {
        CheckedHoldout::Random { key: Some(k), .. } => not_float("holdout.random.key", k)?,
        CheckedHoldout::DateRange { column, .. } => {
            if let Some(k) = kind_of(column).filter(|k| !matches!(k, Kind::Date | Kind::Timestamp)) {
                return Err(Error::spec(
                    "holdout.date_range.column",
                    format!("column {column:?} is {}; it must be a date or timestamp", k.name()),
                ));
            }
        }
        _ => {}
    }
    if let Some(w) = &spec.weight
        && kind_of(w).is_some_and(|k| !k.is_numeric() || k == Kind::Date || k == Kind::Timestamp)
    {
        return Err(Error::spec("weight", format!("column {w:?} must be numeric")));
    }
    Ok(())
}

/// Inner join of feature rows with label rows on `key`: returns the joined frame (label and,
/// when it comes from the label files, weight columns added) and the number of feature rows
/// dropped for lack of a label. Duplicate keys on either side are errors.
fn join(
    features: Frame,
    labels: &Frame,
    key: &str,
    label: &str,
    weight: Option<&str>,
) -> Result<(Frame, u64)> {
    let missing = || Error::Internal(format!("join column {key} not read"));
    // The key maps are the join's largest allocations (tens of bytes a row): they are dropped
    // before the joined columns are built, so they never coexist with the copy.
    let (keep, label_rows) = {
        let lkeys = labels.column(key).ok_or_else(missing)?;
        let mut index: HashMap<KeyRef<'_>, usize> = HashMap::with_capacity(labels.rows);
        for i in 0..labels.rows {
            if let Some(k) = lkeys.key_at(i)
                && index.insert(k, i).is_some()
            {
                return Err(Error::data(format!(
                    "data.labels: join key {key:?} value {k} appears more than once; each key needs exactly one label"
                )));
            }
        }
        let fkeys = features.column(key).ok_or_else(missing)?;
        // A duplicate feature key either has a label (its label row is used twice) or has none
        // (it repeats among the unlabeled rows, found by sorting those few keys): no hash set
        // of every feature key.
        let duplicate = |k: KeyRef<'_>| {
            Error::data(format!(
                "data.features: join key {key:?} value {k} appears more than once; each row needs a unique key"
            ))
        };
        let mut used = vec![false; labels.rows];
        let mut unlabeled: Vec<KeyRef<'_>> = Vec::new();
        let mut keep = vec![false; features.rows];
        let mut label_rows = Vec::with_capacity(features.rows);
        for (i, k) in keep.iter_mut().enumerate() {
            if let Some(key_value) = fkeys.key_at(i) {
                match index.get(&key_value) {
                    Some(&j) if std::mem::replace(&mut used[j], true) => return Err(duplicate(key_value)),
                    Some(&j) => {
                        *k = true;
                        label_rows.push(j);
                    }
                    None => unlabeled.push(key_value),
                }
            }
        }
        unlabeled.sort_unstable();
        if let Some(w) = unlabeled.windows(2).find(|w| w[0] == w[1]) {
            return Err(duplicate(w[0]));
        }
        (keep, label_rows)
    };
    let dropped = (features.rows - label_rows.len()) as u64;
    let mut joined = if dropped == 0 { features } else { features.filter(&keep) };
    let take = |name: &str| -> Result<Column> {
        Ok(labels.column(name).ok_or_else(|| Error::Internal(format!("{name} not read")))?.take(&label_rows))
    };
    joined.push(label, take(label)?);
    if let Some(w) = weight {
        joined.push(w, take(w)?);
    }
    Ok((joined, dropped))
}

/// A multiclass model needs every class on at least two train rows (one row gives no evidence
/// beyond memorizing it, and the early-stopping carve-out could leave none), and weight on each.
fn check_classes(
    label: &str,
    classes: &[serde_json::Value],
    y: &[f32],
    weights: Option<&[f32]>,
    weight_column: Option<&str>,
) -> Result<()> {
    let mut rows = vec![0usize; classes.len()];
    let mut weight = vec![0f64; classes.len()];
    for (i, &c) in y.iter().enumerate() {
        rows[c as usize] += 1;
        weight[c as usize] += weights.map_or(1.0, |w| f64::from(w[i]));
    }
    if let Some(c) = rows.iter().position(|&n| n < 2) {
        return Err(Error::data(format!(
            "label column {label:?}: class {} has {} train row{}; every one of the {} classes needs at least 2 \
             (filter the class out, or merge it with another)",
            classes[c],
            rows[c],
            if rows[c] == 1 { "" } else { "s" },
            classes.len()
        )));
    }
    if let (Some(column), Some(c)) = (weight_column, weight.iter().position(|&w| w == 0.0)) {
        return Err(Error::data(format!(
            "weight: column {column:?}: every train row of class {} has weight 0; a model needs weight on every class",
            classes[c]
        )));
    }
    let total: f64 = weight.iter().sum();
    if let Some(column) = weight_column.filter(|_| total > f64::from(f32::MAX)) {
        return Err(Error::data(format!(
            "weight: column {column:?}: the train weights sum to {total:e}, beyond float32 range (3.4e38); rescale them"
        )));
    }
    Ok(())
}

/// The train rows' weights must give both classes some weight, and their total must stay a
/// float32 number: otherwise the fit has nothing to learn from (all weight on one class, or
/// none) or its sums overflow, and would end at a constant model.
fn check_weights(column: &str, weights: &[f32], labels: &[f32], mapping: &LabelMapping) -> Result<()> {
    let (mut positive, mut negative) = (0f64, 0f64);
    for (&w, &y) in weights.iter().zip(labels) {
        if y == 1.0 { positive += f64::from(w) } else { negative += f64::from(w) }
    }
    let total = positive + negative;
    let problem = if total == 0.0 {
        "every train row has weight 0".to_string()
    } else if positive == 0.0 {
        format!("every positive ({}) train row has weight 0", mapping.positive)
    } else if negative == 0.0 {
        format!("every negative ({}) train row has weight 0", mapping.negative)
    } else if total > f64::from(f32::MAX) {
        format!("the train weights sum to {total:e}, beyond float32 range (3.4e38); rescale them")
    } else {
        return Ok(());
    };
    Err(Error::data(format!("weight: column {column:?}: {problem}; a model needs weight on both classes")))
}

fn rows(frame: Frame, labels: &[f32], weight: Option<&str>) -> Result<Rows> {
    let weights = match weight {
        None => None,
        Some(w) => {
            let c = frame.column(w).ok_or_else(|| Error::Internal(format!("weight {w} not read")))?;
            let mut out = Vec::with_capacity(c.len());
            for i in 0..c.len() {
                match c.f64_at(i) {
                    // Weights are float32 in the kernels: a finite f64 beyond its range is inf.
                    Some(x) if x >= 0.0 && (x as f32).is_finite() => out.push(x as f32),
                    other => {
                        return Err(Error::data(format!(
                            "weight column {w:?} has {} at row {i}; weights must be finite, >= 0 and at most 3.4e38 (float32)",
                            other.map_or("null".to_string(), |x| x.to_string())
                        )));
                    }
                }
            }
            Some(out)
        }
    };
    Ok(Rows { frame, labels: labels.to_vec(), weights })
}
