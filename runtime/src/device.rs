//! Where a run computes: the spec's `device` resolved against what this process can use.
//!
//! The answer comes from probing the NVIDIA driver at run time (library present, device count),
//! never from the build alone: a CPU build still runs the logistic objective on a GPU through
//! the `kernels` crate's NVRTC kernels, while the MLP on a GPU needs candle's CUDA backend, so a
//! build with the `cuda` feature.

use trainyard_kernels::cuda;

use crate::{Error, Result};

/// A resolved device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// This machine's cores.
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Which model the device is for: they need different things from a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Logistic regression, binary or multinomial: our NVRTC kernels, so the driver and NVRTC.
    Logistic,
    /// The MLP: candle's CUDA backend, so a build with the `cuda` feature.
    Mlp,
}

/// Why `workload` cannot run on CUDA device `ordinal` in this process, or `None` when it can.
pub fn cuda_unusable(ordinal: usize, workload: Workload) -> Option<String> {
    let count = match cuda::probe() {
        Ok(n) => n,
        Err(e) => return Some(e.to_string()),
    };
    if ordinal >= count {
        return Some(format!("CUDA device {ordinal} does not exist (the driver reports {count})"));
    }
    match workload {
        Workload::Logistic => cuda::nvrtc_available().err().map(|e| e.to_string()),
        Workload::Mlp if cfg!(feature = "cuda") => None,
        Workload::Mlp => Some(
            "the MLP on a GPU needs trainyard built with the `cuda` feature (the CUDA image); this build is CPU-only"
                .into(),
        ),
    }
}

/// What the spec's `device` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A GPU when one is usable, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N (`cuda` is `cuda:0`).
    Cuda(usize),
}

/// Parses `auto`, `cpu`, `cuda` or `cuda:N`; anything else is a spec error on `device`.
pub fn parse(requested: &str) -> Result<Request> {
    match requested {
        "auto" => Ok(Request::Auto),
        "cpu" => Ok(Request::Cpu),
        "cuda" => Ok(Request::Cuda(0)),
        other => {
            other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()).map(Request::Cuda).ok_or_else(
                || Error::spec("device", format!("must be auto, cpu, cuda or cuda:N, got {other:?}")),
            )
        }
    }
}

/// Resolves the spec's `device` against what this process can use. `cuda` where no GPU is
/// usable is a spec error naming the reason (exit 2); `auto` falls back to the CPU and logs why.
pub fn resolve(requested: &str, workload: Workload) -> Result<Device> {
    resolve_request(parse(requested)?, requested, workload)
}

/// [`resolve`] for a request already parsed (the checked spec's `device`), spelled `requested`
/// in the spec for messages.
pub fn resolve_request(request: Request, requested: &str, workload: Workload) -> Result<Device> {
    match request {
        Request::Cpu => Ok(Device::Cpu),
        Request::Auto => Ok(match cuda_unusable(0, workload) {
            None => {
                tracing::info!("device auto: using cuda:0");
                Device::Cuda(0)
            }
            Some(why) => {
                tracing::info!(reason = %why, "device auto: using cpu ({why})");
                Device::Cpu
            }
        }),
        Request::Cuda(ordinal) => match cuda_unusable(ordinal, workload) {
            None => Ok(Device::Cuda(ordinal)),
            Some(why) => {
                Err(Error::spec("device", format!("{requested} requested, but no GPU is usable: {why}")))
            }
        },
    }
}

/// The candle device for the MLP on `device`.
pub fn candle(device: Device) -> Result<candle_core::Device> {
    match device {
        Device::Cpu => Ok(candle_core::Device::Cpu),
        Device::Cuda(n) => candle_core::Device::new_cuda(n)
            .map_err(|e| Error::Internal(format!("opening CUDA device {n} for candle: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available_and_malformed_names_are_spec_errors() {
        assert_eq!(resolve("cpu", Workload::Mlp).unwrap(), Device::Cpu);
        let e = resolve("cuda:x", Workload::Logistic).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("device:"), "{e}");
    }

    #[test]
    fn cuda_without_a_usable_gpu_names_the_reason_and_auto_falls_back() {
        // Meaningful on machines without a GPU (this project's CI); on a GPU box the same
        // requests must succeed instead.
        match cuda_unusable(0, Workload::Logistic) {
            Some(why) => {
                let e = resolve("cuda", Workload::Logistic).unwrap_err();
                assert_eq!(e.exit_code(), 2);
                assert!(e.to_string().contains(&why), "{e} should name {why}");
                assert_eq!(resolve("auto", Workload::Logistic).unwrap(), Device::Cpu);
            }
            None => {
                assert_eq!(resolve("cuda", Workload::Logistic).unwrap(), Device::Cuda(0));
                assert_eq!(resolve("auto", Workload::Logistic).unwrap(), Device::Cuda(0));
            }
        }
        let e = resolve("cuda:4096", Workload::Mlp).unwrap_err();
        assert!(e.to_string().contains("cuda:4096 requested"), "{e}");
    }
}
