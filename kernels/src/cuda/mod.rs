//! The kernels on NVIDIA GPUs: CUDA C sources next to their wrappers, compiled at run time by
//! NVRTC (once per process) and launched through cudarc's driver API.
//!
//! Without the `cuda` feature cudarc loads the driver and NVRTC libraries when first used, so a
//! CPU build runs everywhere and still uses a GPU when the node has one; [`probe`] says whether
//! it can. With the feature the libraries are linked, as candle's CUDA backend needs.

pub mod logistic;
pub mod softmax;

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaModule};
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};

/// Every CUDA C source of this crate, by module name: what [`ptx`] compiles and `ptxgen` checks.
/// Each source is prepended with the shared reductions (`reduce.cuh`): NVRTC compiles one string
/// per module, without include paths.
pub const SOURCES: &[(&str, &str)] = &[
    ("logistic", concat!(include_str!("reduce.cuh"), include_str!("logistic.cu"))),
    ("softmax", concat!(include_str!("reduce.cuh"), include_str!("softmax.cu"))),
];

// The launch shapes the `.cu` sources (and `reduce.cuh`) are written for.
const ROW_THREADS: usize = 256;
const TILE: usize = 32;
const CHUNK_ROWS: usize = 1024;
const XTR_LANES: usize = 8;
const SUM_THREADS: usize = 256;

/// `n` as a CUDA grid dimension; `what` names it in the error.
fn launch_size(n: usize, what: &str) -> Result<u32, CudaError> {
    u32::try_from(n).map_err(|_| CudaError(format!("{what} ({n}) exceeds a CUDA grid dimension")))
}

/// `n` as a kernel's integer argument; `what` names it in the error.
fn int<T: TryFrom<usize>>(n: usize, what: &str) -> Result<T, CudaError> {
    T::try_from(n).map_err(|_| CudaError(format!("too many {what} ({n})")))
}

/// Launches `reduce.cuh`'s `sum_parts` over `n` parts of `width` values into `out` (one block
/// per output, a fixed-order tree in each).
fn sum_parts(
    stream: &cudarc::driver::CudaStream,
    sum_fn: &cudarc::driver::CudaFunction,
    parts: &cudarc::driver::CudaSlice<f64>,
    n: usize,
    width: usize,
    out: &mut cudarc::driver::CudaSlice<f64>,
) -> Result<(), CudaError> {
    use cudarc::driver::{LaunchConfig, PushKernelArg};
    let (n, w): (i64, i32) = (int(n, "parts")?, int(width, "sums")?);
    let cfg = LaunchConfig {
        grid_dim: (launch_size(width, "sums")?, 1, 1),
        block_dim: (SUM_THREADS as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = stream.launch_builder(sum_fn);
    b.arg(parts).arg(&n).arg(&w).arg(out);
    // SAFETY: the arguments match `sum_parts`'s parameters; `parts` holds n × width values
    // and `out` width.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// Why the GPU path cannot run, in words fit for an error message or a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaError(pub String);

impl std::fmt::Display for CudaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CudaError {}

impl From<cudarc::driver::DriverError> for CudaError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        CudaError(format!("CUDA driver error: {e}"))
    }
}

/// cudarc panics when a library it loads lazily is missing; turn that into an error instead.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, CudaError>) -> Result<T, CudaError> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown failure");
        Err(CudaError(format!("{what}: {msg}")))
    })
}

#[cfg(not(feature = "cuda"))]
fn driver_library_present() -> bool {
    // SAFETY: only tries to open the library; no symbol is called.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

#[cfg(feature = "cuda")]
fn driver_library_present() -> bool {
    // Linked: the process would not have started without it.
    true
}

#[cfg(not(feature = "cuda"))]
fn nvrtc_library_present() -> bool {
    // SAFETY: only tries to open the library; no symbol is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

#[cfg(feature = "cuda")]
fn nvrtc_library_present() -> bool {
    true
}

/// What this process can use: the number of CUDA devices the driver reports, or why none.
/// Probes the driver at run time (library present, `cuInit`, device count); the result is
/// cached, since the answer does not change while the process runs.
pub fn probe() -> Result<usize, CudaError> {
    static PROBE: OnceLock<Result<usize, CudaError>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            if !driver_library_present() {
                return Err(CudaError("no NVIDIA driver found (libcuda.so is not loadable)".into()));
            }
            guarded("probing the NVIDIA driver", || {
                let n = CudaContext::device_count()?;
                match usize::try_from(n) {
                    Ok(0) | Err(_) => Err(CudaError("the NVIDIA driver reports no CUDA device".into())),
                    Ok(n) => Ok(n),
                }
            })
        })
        .clone()
}

/// Whether NVRTC, which compiles this crate's kernels, can be loaded.
pub fn nvrtc_available() -> Result<(), CudaError> {
    if nvrtc_library_present() {
        Ok(())
    } else {
        Err(CudaError("NVRTC (libnvrtc.so, CUDA 13) is not loadable; the CUDA image carries it".into()))
    }
}

/// Compiles one CUDA C source with NVRTC for `arch` (`compute_80`, ...; `None`: NVRTC's
/// default), returning the PTX text or the compiler's log.
pub fn compile(name: &str, source: &str, arch: Option<&'static str>) -> Result<String, CudaError> {
    nvrtc_available()?;
    let opts = CompileOptions {
        // Same results as the CPU kernels to rounding: IEEE division and square root, no
        // flush-to-zero, no contraction of multiply-adds into FMA.
        ftz: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        fmad: Some(false),
        arch,
        name: Some(format!("{name}.cu")),
        ..Default::default()
    };
    let ptx = guarded("compiling with NVRTC", || {
        cudarc::nvrtc::compile_ptx_with_opts(source, opts).map_err(|e| match e {
            CompileError::CompileError { log, .. } => {
                CudaError(format!("NVRTC could not compile {name}.cu:\n{}", log.to_string_lossy()))
            }
            other => CudaError(format!("NVRTC failed on {name}.cu: {other}")),
        })
    })?;
    Ok(ptx.to_src())
}

/// The PTX of module `name`, compiled once per process for the device's own architecture (the
/// driver's JIT finishes it), or the reason it cannot be had.
fn ptx(name: &'static str) -> Result<String, CudaError> {
    type Compiled = (&'static str, Result<String, CudaError>);
    static CACHE: OnceLock<Mutex<Vec<Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, done)) = cache.iter().find(|(n, _)| *n == name) {
        return done.clone();
    }
    let source = SOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| CudaError(format!("no CUDA source named {name}")))?;
    let done = compile(name, source, None);
    cache.push((name, done.clone()));
    done
}

/// Module `name` loaded into the primary context of device `ordinal`.
fn module(ordinal: usize, name: &'static str) -> Result<(Arc<CudaContext>, Arc<CudaModule>), CudaError> {
    let count = probe()?;
    if ordinal >= count {
        return Err(CudaError(format!("CUDA device {ordinal} requested, but the driver reports {count}")));
    }
    let source = ptx(name)?;
    guarded("loading the kernels onto the GPU", || {
        let ctx = CudaContext::new(ordinal)?;
        let module = ctx.load_module(Ptx::from_src(source))?;
        Ok((ctx, module))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs only NVRTC, not a GPU: CI's CUDA check runs it with the toolkit wheels' libraries.
    #[test]
    fn nvrtc_compiles_every_source_and_reports_the_log_of_a_broken_one() {
        if let Err(why) = nvrtc_available() {
            eprintln!("skipping: {why}");
            return;
        }
        for (name, source) in SOURCES {
            for arch in ["compute_80", "compute_90"] {
                let ptx = compile(name, source, Some(arch)).unwrap_or_else(|e| panic!("{name} {arch}: {e}"));
                assert!(
                    ptx.contains(".entry") && ptx.contains(&format!(".target sm_{}", &arch[8..])),
                    "{ptx}"
                );
            }
        }
        let err =
            compile("broken", "extern \"C\" __global__ void k() { undeclared = 1; }", None).unwrap_err();
        assert!(err.0.contains("NVRTC could not compile broken.cu") && err.0.contains("undeclared"), "{err}");
    }
}
