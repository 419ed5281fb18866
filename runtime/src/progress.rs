//! Progress as data: a phase that takes long (the load's row groups, objective passes, group
//! fits, MLP epochs) reports [`Update`]s to a
//! [`Reporter`] its caller passed in. The library draws nothing; the binary turns updates into a
//! bar on a terminal or periodic JSON log lines in a pod.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where a long phase is.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The phase, as `metrics.json` names it (`fit`).
    pub phase: &'static str,
    /// What is being counted, for people (`epoch 3/20`).
    pub label: String,
    /// Steps done.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// The running loss, when there is one.
    pub loss: Option<f64>,
}

/// What a [`Reporter`] calls.
type Sink = dyn Fn(&Update) + Send + Sync;

/// A callback for [`Update`]s; the default reports nowhere.
#[derive(Clone, Default)]
pub struct Reporter(Option<Arc<Sink>>);

impl Reporter {
    /// A reporter calling `f` with every update.
    pub fn new(f: impl Fn(&Update) + Send + Sync + 'static) -> Self {
        Reporter(Some(Arc::new(f)))
    }

    /// Passes `update` on.
    pub fn report(&self, update: &Update) {
        if let Some(f) = &self.0 {
            f(update);
        }
    }
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Reporter(on)" } else { "Reporter(off)" })
    }
}

/// Counts finished units of parallel work (row groups, group fits) and reports each.
#[derive(Debug)]
pub struct Counter<'a> {
    reporter: &'a Reporter,
    phase: &'static str,
    label: &'static str,
    total: usize,
    done: AtomicUsize,
}

impl<'a> Counter<'a> {
    /// A count of `total` units of `phase`, described by `label`.
    pub fn new(reporter: &'a Reporter, phase: &'static str, label: &'static str, total: usize) -> Self {
        Counter { reporter, phase, label, total, done: AtomicUsize::new(0) }
    }

    /// One more unit finished, from any thread.
    pub fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.reporter.report(&Update {
            phase: self.phase,
            label: self.label.to_string(),
            done,
            total: self.total,
            loss: None,
        });
    }
}
