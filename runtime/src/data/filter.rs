//! Row filters: typed against the column's kind once, evaluated per decoded chunk, and used to
//! skip whole row groups whose Parquet statistics prove that no row can match.

use parquet::basic::{LogicalType, TimeUnit as PqTimeUnit};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::statistics::Statistics;

use super::column::{Column, Kind, Values};
use crate::error::{Error, Result};
use crate::spec::{CheckedFilter, FilterOp, FilterValue, parse_instant};

/// An operand converted to the column's domain.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// Numbers, booleans (0/1) and instants (microseconds) compare as f64.
    Num(f64),
    Str(String),
}

#[derive(Debug, Clone)]
enum Op {
    Cmp(std::cmp::Ordering, bool, Operand), // (ordering wanted, or-equal, operand); Equal = eq
    Ne(Operand),
    In(Vec<Operand>),
    NotIn(Vec<Operand>),
    IsNull,
    NotNull,
}

/// A filter bound to a column of a known kind.
#[derive(Debug, Clone)]
pub struct Predicate {
    /// The column it reads.
    pub column: String,
    op: Op,
}

impl Predicate {
    /// Types `filter` against the column's kind; a value of the wrong type is a spec error at the
    /// operator's JSON path.
    pub fn bind(filter: &CheckedFilter, kind: Kind) -> Result<Predicate> {
        let convert = |v: &FilterValue| -> Result<Operand> {
            let wrong = || {
                Error::spec(
                    &filter.path,
                    format!("column {:?} is {}, cannot compare it with {v}", filter.column, kind.name()),
                )
            };
            match (kind, v) {
                (Kind::String, FilterValue::Str(s)) => Ok(Operand::Str(s.clone())),
                (Kind::Date | Kind::Timestamp, FilterValue::Str(s)) => {
                    parse_instant(s).map(|us| Operand::Num(us as f64)).ok_or_else(|| {
                        Error::spec(
                            &filter.path,
                            format!("expected YYYY-MM-DD or RFC 3339 for {:?}, got {s:?}", filter.column),
                        )
                    })
                }
                (Kind::Boolean, FilterValue::Bool(b)) => Ok(Operand::Num(f64::from(u8::from(*b)))),
                (Kind::Integer | Kind::Unsigned | Kind::Float | Kind::Decimal, FilterValue::Num(n)) => {
                    Ok(Operand::Num(*n))
                }
                _ => Err(wrong()),
            }
        };
        use std::cmp::Ordering::*;
        let op = match &filter.op {
            FilterOp::Eq(v) => Op::Cmp(Equal, true, convert(v)?),
            FilterOp::Ne(v) => Op::Ne(convert(v)?),
            FilterOp::In(vs) => Op::In(vs.iter().map(convert).collect::<Result<_>>()?),
            FilterOp::NotIn(vs) => Op::NotIn(vs.iter().map(convert).collect::<Result<_>>()?),
            FilterOp::Gt(v) => Op::Cmp(Greater, false, convert(v)?),
            FilterOp::Gte(v) => Op::Cmp(Greater, true, convert(v)?),
            FilterOp::Lt(v) => Op::Cmp(Less, false, convert(v)?),
            FilterOp::Lte(v) => Op::Cmp(Less, true, convert(v)?),
            FilterOp::IsNull => Op::IsNull,
            FilterOp::NotNull => Op::NotNull,
        };
        Ok(Predicate { column: filter.column.clone(), op })
    }

    /// ANDs this predicate into `keep` for the rows of `column`.
    pub fn apply(&self, column: &Column, keep: &mut [bool]) {
        match &self.op {
            Op::IsNull => keep.iter_mut().enumerate().for_each(|(i, k)| *k &= column.is_null(i)),
            Op::NotNull => keep.iter_mut().enumerate().for_each(|(i, k)| *k &= !column.is_null(i)),
            op => {
                // Strings: evaluate once per dictionary entry, then look codes up.
                if let Values::Str { codes, dict } = &column.values {
                    let per_entry: Vec<bool> =
                        dict.iter().map(|s| op_matches(op, &Operand::Str(s.clone()))).collect();
                    for (i, k) in keep.iter_mut().enumerate() {
                        *k &=
                            !column.is_null(i) && per_entry.get(codes[i] as usize).copied().unwrap_or(false);
                    }
                } else {
                    for (i, k) in keep.iter_mut().enumerate() {
                        if *k {
                            *k = column
                                .f64_at(i)
                                .is_some_and(|x| !x.is_nan() && op_matches(op, &Operand::Num(x)));
                        }
                    }
                }
            }
        }
    }

    /// Whether Parquet statistics prove that no row of the row group matches. `leaf` is the
    /// column's index among the file's leaf columns.
    pub fn prunes(&self, rg: &RowGroupMetaData, leaf: usize, kind: Kind) -> bool {
        let chunk = rg.column(leaf);
        let Some(stats) = chunk.statistics() else {
            return false;
        };
        let rows = rg.num_rows().max(0) as u64;
        let nulls = stats.null_count_opt();
        match &self.op {
            Op::IsNull => return nulls == Some(0),
            Op::NotNull => return nulls == Some(rows),
            _ => {}
        }
        // Every comparison is false on a null, so an all-null row group never matches.
        if nulls == Some(rows) && rows > 0 {
            return true;
        }
        let Some((min, max)) = bounds(stats, kind, chunk.column_descr().logical_type_ref()) else {
            return false;
        };
        use std::cmp::Ordering::*;
        let lt = |a: &Operand, b: &Operand| cmp(a, b) == Some(Less);
        let le = |a: &Operand, b: &Operand| matches!(cmp(a, b), Some(Less | Equal));
        match &self.op {
            Op::Cmp(Equal, _, v) => lt(v, &min) || lt(&max, v),
            Op::Cmp(Greater, false, v) => le(&max, v),
            Op::Cmp(Greater, true, v) => lt(&max, v),
            Op::Cmp(Less, false, v) => le(v, &min),
            Op::Cmp(Less, true, v) => lt(v, &min),
            Op::Ne(v) => min == max && &min == v,
            Op::In(vs) => vs.iter().all(|v| lt(v, &min) || lt(&max, v)),
            Op::NotIn(vs) => min == max && vs.contains(&min),
            Op::IsNull | Op::NotNull => false,
        }
    }
}

fn cmp(a: &Operand, b: &Operand) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Operand::Num(x), Operand::Num(y)) => x.partial_cmp(y),
        (Operand::Str(x), Operand::Str(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn op_matches(op: &Op, x: &Operand) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Cmp(Equal, _, v) => cmp(x, v) == Some(Equal),
        Op::Cmp(want, or_equal, v) => match cmp(x, v) {
            Some(Equal) => *or_equal,
            Some(o) => o == *want,
            None => false,
        },
        Op::Ne(v) => cmp(x, v).is_some_and(|o| o != Equal),
        Op::In(vs) => vs.iter().any(|v| cmp(x, v) == Some(Equal)),
        Op::NotIn(vs) => vs.iter().all(|v| cmp(x, v).is_some_and(|o| o != Equal)),
        Op::IsNull | Op::NotNull => unreachable!("handled by the caller"),
    }
}

/// Min and max of a row group in the column's domain, where the physical statistics can be
/// trusted to order like the logical values. Unsigned and decimal columns are not pruned: their
/// physical statistics need sort-order handling that is not worth the risk of a wrong skip.
fn bounds(stats: &Statistics, kind: Kind, logical: Option<&LogicalType>) -> Option<(Operand, Operand)> {
    let num = |a: f64, b: f64| Some((Operand::Num(a), Operand::Num(b)));
    match (kind, stats) {
        (Kind::Integer, Statistics::Int32(s)) => num(f64::from(*s.min_opt()?), f64::from(*s.max_opt()?)),
        (Kind::Integer, Statistics::Int64(s)) => num(*s.min_opt()? as f64, *s.max_opt()? as f64),
        (Kind::Float, Statistics::Float(s)) => {
            let (a, b) = (f64::from(*s.min_opt()?), f64::from(*s.max_opt()?));
            (!a.is_nan() && !b.is_nan()).then_some(())?;
            num(a, b)
        }
        (Kind::Float, Statistics::Double(s)) => {
            let (a, b) = (*s.min_opt()?, *s.max_opt()?);
            (!a.is_nan() && !b.is_nan()).then_some(())?;
            num(a, b)
        }
        (Kind::Boolean, Statistics::Boolean(s)) => {
            num(f64::from(u8::from(*s.min_opt()?)), f64::from(u8::from(*s.max_opt()?)))
        }
        (Kind::Date, Statistics::Int32(s)) => {
            let day = 86_400_000_000_f64;
            num(f64::from(*s.min_opt()?) * day, f64::from(*s.max_opt()?) * day)
        }
        (Kind::Timestamp, Statistics::Int64(s)) => {
            let per_us = match logical {
                Some(LogicalType::Timestamp(t)) => match t.unit {
                    PqTimeUnit::MILLIS => 1e3,
                    PqTimeUnit::MICROS => 1.0,
                    PqTimeUnit::NANOS => 1e-3,
                },
                _ => return None,
            };
            num(*s.min_opt()? as f64 * per_us, *s.max_opt()? as f64 * per_us)
        }
        (Kind::String, Statistics::ByteArray(s)) => {
            let a = s.min_opt()?.as_utf8().ok()?.to_string();
            let b = s.max_opt()?.as_utf8().ok()?.to_string();
            Some((Operand::Str(a), Operand::Str(b)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(op: FilterOp, kind: Kind) -> Predicate {
        Predicate::bind(&CheckedFilter { column: "c".into(), op, path: "data.filters[0].x".into() }, kind)
            .unwrap()
    }

    fn keep(p: &Predicate, c: &Column) -> Vec<bool> {
        let mut k = vec![true; c.len()];
        p.apply(c, &mut k);
        k
    }

    fn num(v: &[f64], nulls: Option<Vec<bool>>) -> Column {
        Column { kind: Kind::Float, values: Values::Float(v.to_vec()), nulls }
    }

    #[test]
    fn comparisons_on_numbers_with_nulls_following_sql() {
        let c = num(&[1.0, 2.0, 3.0, f64::NAN, 5.0], Some(vec![false, false, true, false, false]));
        use FilterValue::Num;
        assert_eq!(keep(&pred(FilterOp::Eq(Num(2.0)), Kind::Float), &c), [false, true, false, false, false]);
        assert_eq!(keep(&pred(FilterOp::Ne(Num(2.0)), Kind::Float), &c), [true, false, false, false, true]);
        assert_eq!(keep(&pred(FilterOp::Gt(Num(2.0)), Kind::Float), &c), [false, false, false, false, true]);
        assert_eq!(keep(&pred(FilterOp::Gte(Num(2.0)), Kind::Float), &c), [false, true, false, false, true]);
        assert_eq!(keep(&pred(FilterOp::Lt(Num(2.0)), Kind::Float), &c), [true, false, false, false, false]);
        assert_eq!(keep(&pred(FilterOp::Lte(Num(2.0)), Kind::Float), &c), [true, true, false, false, false]);
        assert_eq!(
            keep(&pred(FilterOp::In(vec![Num(1.0), Num(5.0)]), Kind::Float), &c),
            [true, false, false, false, true]
        );
        assert_eq!(
            keep(&pred(FilterOp::NotIn(vec![Num(1.0), Num(5.0)]), Kind::Float), &c),
            [false, true, false, false, false]
        );
        assert_eq!(keep(&pred(FilterOp::IsNull, Kind::Float), &c), [false, false, true, false, false]);
        assert_eq!(keep(&pred(FilterOp::NotNull, Kind::Float), &c), [true, true, false, true, true]);
    }

    #[test]
    fn comparisons_on_strings_and_instants() {
        let c = Column {
            kind: Kind::String,
            values: Values::Str {
                codes: vec![0, 1, 0, 2],
                dict: vec!["US".into(), "CA".into(), "FR".into()],
            },
            nulls: Some(vec![false, false, false, true]),
        };
        let s = |x: &str| FilterValue::Str(x.into());
        assert_eq!(
            keep(&pred(FilterOp::In(vec![s("US"), s("FR")]), Kind::String), &c),
            [true, false, true, false]
        );
        assert_eq!(keep(&pred(FilterOp::Ne(s("US")), Kind::String), &c), [false, true, false, false]);
        assert_eq!(keep(&pred(FilterOp::Lt(s("D")), Kind::String), &c), [false, true, false, false]);

        let day = 86_400_000_000_i64;
        let t = Column { kind: Kind::Date, values: Values::Time(vec![0, day, 2 * day]), nulls: None };
        assert_eq!(keep(&pred(FilterOp::Gte(s("1970-01-02")), Kind::Date), &t), [false, true, true]);
    }

    #[test]
    fn operand_of_the_wrong_type_names_the_filter_path() {
        let f = CheckedFilter {
            column: "amount".into(),
            op: FilterOp::Gte(FilterValue::Str("x".into())),
            path: "data.filters[1].gte".into(),
        };
        let err = Predicate::bind(&f, Kind::Float).unwrap_err().to_string();
        assert_eq!(err, "data.filters[1].gte: column \"amount\" is float, cannot compare it with \"x\"");
    }
}
