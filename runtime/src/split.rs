//! The holdout: deciding, row by row, whether a row is train, test or dropped.

use crate::data::{Column, KeyRef};
use crate::error::{Error, Result};

/// Where a row goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Used to fit.
    Train,
    /// Used to evaluate.
    Test,
    /// Neither (a date after the test window, or a null date).
    Dropped,
}

pub use crate::random::mix64;

/// A uniform number in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// FNV-1a over the key's text form, so that the integer 123 and the string "123" land on the
/// same side: a key column that changes type between exports does not reshuffle the split.
fn key_hash(key: KeyRef<'_>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    match key {
        KeyRef::Int(v) => feed(v.to_string().as_bytes()),
        KeyRef::UInt(v) => feed(v.to_string().as_bytes()),
        KeyRef::Str(s) => feed(s.as_bytes()),
    }
    h
}

/// Random holdout by a seeded hash of `key` (a row keeps its side when rows are added or
/// reordered), or by the seeded row position when there is no key.
pub fn random(rows: usize, fraction: f64, seed: u64, key: Option<(&str, &Column)>) -> Result<Vec<Side>> {
    let salt = mix64(seed ^ 0x7472_6169_6e79_6172); // "trainyar"
    let side = |h: u64| {
        if unit(mix64(h ^ salt)) < fraction { Side::Test } else { Side::Train }
    };
    match key {
        None => Ok((0..rows as u64).map(|i| side(mix64(i))).collect()),
        Some((name, column)) => (0..rows)
            .map(|i| {
                let k = column.key_at(i).ok_or_else(|| {
                    Error::data(format!(
                        "holdout.random.key: column {name:?} is null at row {i}; every row needs a key to be assigned a side"
                    ))
                })?;
                Ok(side(key_hash(k)))
            })
            .collect(),
    }
}

/// Date-range holdout: test = `[start, end)`, train = before `start`; later or null → dropped.
pub fn date_range(column: &Column, start_us: i64, end_us: i64) -> Vec<Side> {
    (0..column.len())
        .map(|i| match column.key_at(i) {
            Some(KeyRef::Int(t)) if t < start_us => Side::Train,
            Some(KeyRef::Int(t)) if t < end_us => Side::Test,
            _ => Side::Dropped,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Kind, Values};

    #[test]
    fn keyed_split_is_stable_under_appends_and_type_changes() {
        let keys: Vec<i64> = (0..10_000).collect();
        let col = Column { kind: Kind::Integer, values: Values::Int(keys.clone()), nulls: None };
        let sides = random(keys.len(), 0.2, 7, Some(("id", &col))).unwrap();
        let share = sides.iter().filter(|s| **s == Side::Test).count() as f64 / keys.len() as f64;
        assert!((share - 0.2).abs() < 0.02, "{share}");

        // Appending rows leaves earlier rows on their side.
        let more =
            Column { kind: Kind::Integer, values: Values::Int((0..12_000).rev().collect()), nulls: None };
        let sides_more = random(12_000, 0.2, 7, Some(("id", &more))).unwrap();
        for (i, k) in (0..12_000i64).rev().enumerate() {
            if k < 10_000 {
                assert_eq!(sides_more[i], sides[k as usize]);
            }
        }
        // The same ids as strings land on the same sides.
        let s = Column {
            kind: Kind::String,
            values: Values::Str {
                codes: (0..10_000).collect(),
                dict: keys.iter().map(|k| k.to_string()).collect(),
            },
            nulls: None,
        };
        assert_eq!(random(10_000, 0.2, 7, Some(("id", &s))).unwrap(), sides);
        // Another seed gives another split.
        assert_ne!(random(10_000, 0.2, 8, Some(("id", &col))).unwrap(), sides);
    }

    #[test]
    fn positional_split_is_seeded_and_null_keys_are_errors() {
        let a = random(1000, 0.3, 1, None).unwrap();
        assert_eq!(a, random(1000, 0.3, 1, None).unwrap());
        assert_ne!(a, random(1000, 0.3, 2, None).unwrap());
        let col =
            Column { kind: Kind::Integer, values: Values::Int(vec![1, 2]), nulls: Some(vec![false, true]) };
        let err = random(2, 0.3, 1, Some(("id", &col))).unwrap_err().to_string();
        assert!(err.contains("holdout.random.key: column \"id\" is null at row 1"), "{err}");
    }

    #[test]
    fn date_range_is_half_open() {
        let col = Column {
            kind: Kind::Timestamp,
            values: Values::Time(vec![5, 10, 15, 20, 0]),
            nulls: Some(vec![false, false, false, false, true]),
        };
        assert_eq!(
            date_range(&col, 10, 20),
            [Side::Train, Side::Test, Side::Test, Side::Dropped, Side::Dropped]
        );
    }
}
