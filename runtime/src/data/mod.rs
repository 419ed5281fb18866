//! Parquet input and output: expanding file entries, reading footers and schemas, checking kinds across
//! files, pruning row groups by statistics, and decoding the needed columns in parallel; numeric
//! feature columns straight into row-major f32 rows.

mod column;
mod dense;
mod files;
mod filter;
mod finite;
mod guard;
mod parquet_file;
mod reader;
mod remote;
mod writer;

pub use column::{Column, KeyRef, Kind, Values};
pub use dense::{Dense, NOWHERE, Place, is_numeric, scatter, scatter_reporting};
pub(crate) use files::describe;
pub use files::{Source, expand};
pub use filter::Predicate;
pub use finite::{check_finite, to_design};
pub use guard::{panic_is_caught, panic_message};
pub use parquet_file::{Origins, ParquetFile, column_kinds};
pub use reader::{Frame, ReadStats, read, read_reporting, read_tracked};
pub use remote::RemoteFile;
pub use writer::write_parquet;
