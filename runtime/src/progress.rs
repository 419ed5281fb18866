//! A one-line progress bar on stderr for interactive runs. Logs carry the same facts per epoch;
//! the bar only shows the steps in between, so it is drawn only on a terminal.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// Redraws at most this often: a bar is for eyes, not for throughput.
const REDRAW: Duration = Duration::from_millis(100);
const WIDTH: usize = 30;

/// The bar of one epoch.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    label: String,
    total: usize,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    /// A bar for `total` steps; draws nothing unless `enabled`.
    pub fn new(enabled: bool, label: String, total: usize) -> Self {
        Progress { enabled, label, total: total.max(1), started: Instant::now(), drawn: None }
    }

    /// `done` steps finished, running loss `loss`.
    pub fn update(&mut self, done: usize, loss: f64) {
        if !self.enabled || self.drawn.is_some_and(|t| t.elapsed() < REDRAW) && done < self.total {
            return;
        }
        self.drawn = Some(Instant::now());
        let filled = WIDTH * done.min(self.total) / self.total;
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let _ = write!(
            std::io::stderr(),
            "\r{} [{}{}] {done}/{} steps  loss {loss:.5}  {rate:.0} steps/s",
            self.label,
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            self.total
        );
    }

    /// Clears the line so the epoch's log line starts clean.
    pub fn finish(&mut self) {
        if self.enabled && self.drawn.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.drawn = None;
        }
    }
}
