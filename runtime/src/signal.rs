//! Cancellation as data: Kubernetes sends SIGTERM before preempting a pod, and a model that
//! checkpoints answers by finishing its step, writing a checkpoint and stopping (exit 143). The
//! library never installs a handler; the binary connects SIGTERM to a [`Cancellation`] (see
//! `main.rs`), and tests can set it themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Two flags shared with whoever handles signals: `requested` turns true when the process is
/// asked to stop; `immediate` says whether it should rather end at once (true until a loop that
/// can checkpoint is running, so a SIGTERM while loading data ends the process as it always
/// did, and the staging directory it leaves is cleaned up by the next run).
#[derive(Debug, Clone)]
pub struct Cancellation {
    requested: Arc<AtomicBool>,
    immediate: Arc<AtomicBool>,
}

impl Default for Cancellation {
    fn default() -> Self {
        Cancellation {
            requested: Arc::new(AtomicBool::new(false)),
            immediate: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl Cancellation {
    /// The flag a signal handler sets to ask for a stop.
    pub fn requested_flag(&self) -> Arc<AtomicBool> {
        self.requested.clone()
    }

    /// The flag that says a stop request should end the process at once (the signal's default
    /// action) because nothing is running that could save its work.
    pub fn immediate_flag(&self) -> Arc<AtomicBool> {
        self.immediate.clone()
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Marks a loop that can checkpoint as running until the guard is dropped: a stop request
    /// is then answered by the loop instead of ending the process.
    pub fn checkpointing(&self) -> CheckpointGuard {
        self.immediate.store(false, Ordering::SeqCst);
        CheckpointGuard { immediate: self.immediate.clone() }
    }
}

/// See [`Cancellation::checkpointing`].
#[derive(Debug)]
pub struct CheckpointGuard {
    immediate: Arc<AtomicBool>,
}

impl Drop for CheckpointGuard {
    fn drop(&mut self) {
        self.immediate.store(true, Ordering::SeqCst);
    }
}
