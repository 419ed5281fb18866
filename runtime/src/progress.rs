//! Progress as data: a phase that takes long (today the MLP's epochs) reports [`Update`]s to a
//! [`Reporter`] its caller passed in. The library draws nothing; the binary turns updates into a
//! bar on a terminal or periodic JSON log lines in a pod.

use std::sync::Arc;

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
