//! SIGTERM as a flag: Kubernetes sends it before preempting a pod, and the MLP loop answers by
//! finishing its step, writing a checkpoint and exiting 143. Installed only when a loop that
//! can checkpoint starts; until then SIGTERM keeps its default (the process ends, and the
//! staging directory it leaves is cleaned up by the next run).

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use crate::error::{Error, Result};

static SIGTERM: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The flag that turns true when SIGTERM arrives; installs the handler on first use.
pub fn sigterm_flag() -> Result<Arc<AtomicBool>> {
    if let Some(flag) = SIGTERM.get() {
        return Ok(flag.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())
        .map_err(|e| Error::Internal(format!("installing the SIGTERM handler: {e}")))?;
    Ok(SIGTERM.get_or_init(|| flag).clone())
}
