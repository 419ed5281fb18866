//! Parquet input: expanding file entries, reading footers and schemas, checking kinds across
//! files, pruning row groups by statistics, and decoding the needed columns in parallel.

mod column;
mod files;
mod filter;
mod reader;

pub use column::{Column, KeyRef, Kind, Values};
pub use files::expand;
pub use filter::Predicate;
pub use reader::{Frame, ParquetFile, ReadStats, column_kinds, read};
