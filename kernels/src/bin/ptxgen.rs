//! Writes the PTX of every CUDA kernel in this crate, compiled by NVRTC for each architecture
//! asked for, so machines without a GPU can check the kernels (then assemble them with ptxas).
//!
//! ```sh
//! ptxgen OUT_DIR [ARCH ...]     # default archs: compute_80 compute_90
//! ```
//! Writes `OUT_DIR/<module>.<arch>.ptx`; exits 1 with NVRTC's log when a kernel does not compile.

use std::path::PathBuf;
use std::process::ExitCode;

use trainyard_kernels::cuda;

const DEFAULT_ARCHS: &[&str] = &["compute_80", "compute_90"];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: ptxgen OUT_DIR [ARCH ...]  (default: {})", DEFAULT_ARCHS.join(" "));
        return ExitCode::from(2);
    };
    // NVRTC keeps the option string, so the architecture names must live for the whole run.
    let archs: Vec<&'static str> = {
        let given: Vec<&'static str> = args.map(|a| &*Box::leak(a.into_boxed_str())).collect();
        if given.is_empty() { DEFAULT_ARCHS.to_vec() } else { given }
    };
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("ptxgen: cannot create {}: {e}", out.display());
        return ExitCode::from(1);
    }
    let mut failed = false;
    for (name, source) in cuda::SOURCES {
        for arch in &archs {
            match cuda::compile(name, source, Some(arch)) {
                Ok(ptx) => {
                    let path = out.join(format!("{name}.{arch}.ptx"));
                    if let Err(e) = std::fs::write(&path, ptx) {
                        eprintln!("ptxgen: cannot write {}: {e}", path.display());
                        failed = true;
                    } else {
                        println!("{}", path.display());
                    }
                }
                Err(e) => {
                    eprintln!("ptxgen: {name} for {arch}: {e}");
                    failed = true;
                }
            }
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
