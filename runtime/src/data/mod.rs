//! Parquet input and output: expanding file entries, reading footers and schemas, checking kinds across
//! files, pruning row groups by statistics, and decoding the needed columns in parallel.

mod column;
mod files;
mod filter;
mod reader;
mod writer;

pub use column::{Column, KeyRef, Kind, Values};
pub use files::expand;
pub use filter::Predicate;
pub use reader::{Frame, ParquetFile, ReadStats, column_kinds, read};
pub use writer::write_parquet;
