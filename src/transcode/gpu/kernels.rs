//! The CUDA sources in `kernels/`, their build-time PTX, and NVRTC.
//!
//! `build.rs` compiles the scaler's kernels to PTX for `compute_75` when it finds NVRTC
//! (the PTX is then JIT-compiled by the driver on any Turing or newer GPU);
//! otherwise the kernels are compiled here at run time by NVRTC for the
//! device's own compute capability. NVRTC is loaded at run time like the
//! driver (cudarc panics when it is missing, so [`nvrtc_present`] comes first).

use std::ffi::{c_int, CString};

use cudarc::nvrtc::{result, sys};

/// The scaler's kernels (one module: `kernels/scale.cu`).
pub const SCALE_CU: &str = include_str!("../../../kernels/scale.cu");

/// PTX of `scale.cu` for [`BUILT_ARCH`] compiled by build.rs; empty when NVRTC
/// was not found at build time.
const BUILT: &str = include_str!(concat!(env!("OUT_DIR"), "/scale.ptx"));
pub const BUILT_ARCH: (i32, i32) = (7, 5);

pub fn built_ptx() -> Option<&'static str> {
    (!BUILT.is_empty()).then_some(BUILT)
}

/// Options every compile uses: the kernels' float math must match
/// `kernel_ref.rs`, so no fast-math contractions that change rounding.
const OPTIONS: &[&str] = &["--fmad=false", "--std=c++14"];

pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the candidate names.
    unsafe { sys::is_culib_present() }
}

/// Why a kernel could not be compiled at run time (which kernel, for which
/// architecture, the NVRTC call and its words).
#[derive(Debug, Clone, thiserror::Error)]
pub enum NvrtcError {
    #[error("libnvrtc not found (libnvrtc.so.12; e.g. pip install nvidia-cuda-nvrtc-cu12 and put its lib/ on LD_LIBRARY_PATH)")]
    Missing,
    #[error("{kernel}: {call}: {reason}")]
    Call {
        kernel: String,
        call: &'static str,
        reason: String,
    },
    #[error("{kernel} for {arch}: {reason}\n{log}")]
    Compile {
        kernel: String,
        arch: String,
        reason: String,
        log: String,
    },
    /// The device is older than the built-in PTX and NVRTC failed too.
    #[error("no built-in PTX for sm_{}{} and NVRTC failed: {nvrtc}", .cc.0, .cc.1)]
    NoPtx {
        cc: (i32, i32),
        nvrtc: Box<NvrtcError>,
    },
}

/// "12.9", or why there is no NVRTC.
pub fn nvrtc_version() -> Result<String, NvrtcError> {
    if !nvrtc_present() {
        return Err(NvrtcError::Missing);
    }
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: NVRTC is present; out-pointers to locals.
    let r = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(NvrtcError::Call {
            kernel: String::new(),
            call: "nvrtcVersion",
            reason: format!("{r:?}"),
        });
    }
    Ok(format!("{major}.{minor}"))
}

/// One kernel source compiled for one architecture.
pub struct Compiled {
    pub ptx: String,
    /// Machine code, when `arch` names a real GPU (`sm_XY`), else empty.
    pub cubin: Vec<u8>,
    pub log: String,
}

/// Compiles `source` for `arch` (`compute_75` → PTX only, `sm_90` → PTX and cubin).
pub fn compile(name: &str, source: &str, arch: &str) -> Result<Compiled, NvrtcError> {
    if !nvrtc_present() {
        return Err(NvrtcError::Missing);
    }
    let failed = |call: &'static str| {
        move |reason: String| NvrtcError::Call {
            kernel: name.to_string(),
            call,
            reason,
        }
    };
    let src = CString::new(source).map_err(|e| failed("source")(e.to_string()))?;
    let cname = CString::new(name).map_err(|e| failed("name")(e.to_string()))?;
    let prog = result::create_program(&src, Some(&cname))
        .map_err(|e| failed("nvrtcCreateProgram")(format!("{e:?}")))?;
    let mut opts: Vec<String> = OPTIONS.iter().map(|s| s.to_string()).collect();
    opts.push(format!("--gpu-architecture={arch}"));
    // SAFETY: `prog` is live until the destroy below; every call gets it.
    let out = unsafe {
        let compiled = result::compile_program(prog, &opts);
        let log = result::get_program_log(prog)
            .map(|l| c_chars_to_string(&l))
            .unwrap_or_default();
        let out = match compiled {
            Err(e) => Err(NvrtcError::Compile {
                kernel: name.to_string(),
                arch: arch.to_string(),
                reason: format!("{e:?}"),
                log,
            }),
            Ok(()) => {
                let ptx = result::get_ptx(prog)
                    .map(|p| c_chars_to_string(&p))
                    .map_err(|e| failed("nvrtcGetPTX")(format!("{e:?}")));
                let cubin = if arch.starts_with("sm_") {
                    cubin_of(prog).map_err(|(call, r)| failed(call)(format!("{r:?}")))
                } else {
                    Ok(Vec::new())
                };
                ptx.and_then(|ptx| cubin.map(|cubin| Compiled { ptx, cubin, log }))
            }
        };
        let _ = result::destroy_program(prog);
        out
    };
    out
}

/// # Safety
/// `prog` must be a live, compiled program.
/// On failure: the call and NVRTC's result.
unsafe fn cubin_of(prog: sys::nvrtcProgram) -> Result<Vec<u8>, (&'static str, sys::nvrtcResult)> {
    let mut size = 0usize;
    // SAFETY: the caller's contract; out-pointer to a local.
    let r = unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) };
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(("nvrtcGetCUBINSize", r));
    }
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` holds the size NVRTC just reported.
    let r = unsafe { sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr().cast()) };
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(("nvrtcGetCUBIN", r));
    }
    Ok(buf)
}

fn c_chars_to_string(c: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = c.iter().map(|&b| b as u8).take_while(|&b| b != 0).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The PTX to load on a device of compute capability `cc`: the built-in PTX
/// when there is one and the device can JIT it, else an NVRTC compile now.
pub fn ptx_for(cc: (i32, i32)) -> Result<String, NvrtcError> {
    if let Some(ptx) = built_ptx() {
        if cc >= BUILT_ARCH {
            return Ok(ptx.to_string());
        }
    }
    let arch = format!("compute_{}{}", cc.0, cc.1);
    compile("scale.cu", SCALE_CU, &arch)
        .map(|c| c.ptx)
        .map_err(|e| NvrtcError::NoPtx {
            cc,
            nvrtc: Box::new(e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NVRTC must be here when the test command installed it
    /// (`LADDERD_REQUIRE_NVRTC=1`, set by scripts/test.sh); elsewhere the
    /// compile tests say they were skipped.
    fn nvrtc_or_skip() -> bool {
        if nvrtc_present() {
            return true;
        }
        assert!(
            std::env::var("LADDERD_REQUIRE_NVRTC").is_err(),
            "LADDERD_REQUIRE_NVRTC is set but NVRTC does not load: {:?}",
            nvrtc_version()
        );
        eprintln!("NVRTC not found: kernel compile test skipped");
        false
    }

    /// Every `.cu` in kernels/ compiles to PTX for the built-in target and to
    /// Ampere and Hopper machine code, with every kernel entry present.
    #[test]
    fn every_kernel_compiles_to_ptx_and_sm80_sm90_cubins() {
        if !nvrtc_or_skip() {
            return;
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/kernels");
        let mut sources = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "cu") {
                continue;
            }
            sources += 1;
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let src = std::fs::read_to_string(&path).unwrap();
            let entries: Vec<&str> = src
                .lines()
                .filter_map(|l| l.split("__global__ void ").nth(1))
                .filter_map(|rest| rest.split('(').next())
                .collect();
            assert!(!entries.is_empty(), "{name} has no kernels");
            let ptx = compile(&name, &src, "compute_75").unwrap_or_else(|e| panic!("{e}"));
            for e in &entries {
                assert!(
                    ptx.ptx.contains(&format!(".entry {e}(")),
                    "{name}: PTX lacks {e}"
                );
            }
            for arch in ["sm_80", "sm_90"] {
                let c = compile(&name, &src, arch).unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    c.cubin.starts_with(b"\x7fELF"),
                    "{name} {arch}: not an ELF cubin"
                );
                assert!(
                    c.cubin.len() > 1000,
                    "{name} {arch}: cubin of {} bytes",
                    c.cubin.len()
                );
            }
        }
        assert!(sources >= 1, "no .cu files in {dir}");
        let v = nvrtc_version().unwrap();
        assert!(v.starts_with("12."), "{v}");
    }

    /// build.rs found the same NVRTC (the test command puts it on the path for
    /// the build too), so the built-in PTX is what a run-time compile makes.
    #[test]
    fn build_time_ptx_is_the_run_time_compile() {
        if !nvrtc_or_skip() {
            return;
        }
        let Some(built) = built_ptx() else {
            assert!(
                std::env::var("LADDERD_REQUIRE_NVRTC").is_err(),
                "NVRTC was on the path but build.rs built no PTX"
            );
            return;
        };
        let now = compile("scale.cu", SCALE_CU, "compute_75").unwrap();
        assert_eq!(built, now.ptx);
        assert_eq!(ptx_for((9, 0)).unwrap(), built);
    }

    #[test]
    fn a_broken_kernel_is_an_error_with_the_compiler_log() {
        if !nvrtc_or_skip() {
            return;
        }
        let err = compile(
            "bad.cu",
            "extern \"C\" __global__ void k() { undefined_thing(); }",
            "compute_75",
        )
        .err()
        .expect("must not compile");
        // Which kernel, for which architecture, and the compiler's log.
        assert!(
            matches!(&err, NvrtcError::Compile { kernel, arch, log, .. }
                if kernel == "bad.cu" && arch == "compute_75" && log.contains("undefined_thing")),
            "{err:?}"
        );
        assert!(err.to_string().contains("undefined_thing"), "{err}");
    }
}
