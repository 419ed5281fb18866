//! A boundary around the Parquet and Arrow decoders. On some malformed files they panic (an
//! index out of range in a page decoder, an assertion on a corrupt footer) instead of returning
//! an error; a user's broken file must be an exit-2 data error naming the file, not a crash. The
//! decoders are called through [`decoding`], which turns such a panic into that error.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Error, Result};

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread is inside [`decoding`]: a panic here is caught and reported as a data
/// error, so a process-wide panic hook should stay quiet and let it unwind.
pub fn panic_is_caught() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// Runs `f`, a call into the Parquet or Arrow decoders for `what` (a file, a row group), and
/// turns a panic in it into a data error naming `what`.
pub(crate) fn decoding<T>(what: impl FnOnce() -> String, f: impl FnOnce() -> Result<T>) -> Result<T> {
    DEPTH.with(|d| d.set(d.get() + 1));
    // Nothing observes the decoder's state after a panic: its reader is dropped with the error.
    let outcome = catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    outcome.unwrap_or_else(|payload| {
        let message = panic_message(payload.as_ref());
        Err(Error::data(format!("{}: corrupt Parquet data (the decoder failed: {message})", what())))
    })
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
