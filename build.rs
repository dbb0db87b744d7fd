//! Build script: records the commit for `--version`-style reports, watches
//! `kernels/`, and says when nasm is missing (openh264 then builds without its
//! assembly and decodes/encodes at about half speed, silently).
//!
//! The scaler's CUDA kernels (`kernels/scale.cu`) are compiled to PTX here when
//! NVRTC can be loaded (`LADDERD_NVRTC` names the library, else the loader's
//! search path); otherwise an empty file stands in and the binary compiles them
//! at run time. Nothing GPU-related is ever required to build.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=.git/HEAD");
    // A commit moves the branch HEAD names, not HEAD itself: watch that ref
    // too, or the binary goes on reporting the commit of its first build.
    if let Some(branch) = std::fs::read_to_string(".git/HEAD")
        .ok()
        .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string()))
    {
        // Only paths that exist: a missing one would rerun this every build.
        for path in [format!(".git/{branch}"), ".git/packed-refs".into()] {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LADDERD_COMMIT={commit}");
    let nasm = Command::new("nasm")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !nasm {
        println!("cargo:warning=nasm not found: openh264 is built without its assembly (about half the codec speed); install it (apt-get install nasm) and rebuild");
    }
    println!(
        "cargo:rustc-env=LADDERD_CODEC_ASM={}",
        if nasm { "yes" } else { "no" }
    );
    build_kernels();
}

/// The kernels' target: PTX for compute_75 is JIT-compiled by the driver on
/// every GPU from Turing on (the oldest with the NVENC features we use).
const ARCH: &str = "compute_75";

fn build_kernels() {
    println!("cargo:rerun-if-env-changed=LADDERD_NVRTC");
    println!("cargo:rerun-if-env-changed=LD_LIBRARY_PATH");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("scale.ptx");
    let source =
        std::fs::read_to_string("kernels/scale.cu").expect("kernels/scale.cu is in the tree");
    let ptx = match Nvrtc::load() {
        Err(_) => String::new(),
        Ok(nvrtc) => match nvrtc.ptx("scale.cu", &source) {
            Ok(ptx) => ptx,
            // A kernel that does not compile is a bug in the tree, not a missing tool.
            Err(log) => panic!("kernels/scale.cu does not compile with NVRTC:\n{log}"),
        },
    };
    std::fs::write(&out, ptx).expect("write OUT_DIR/scale.ptx");
}

type Prog = *mut c_void;

/// The six NVRTC entry points a PTX compile needs, loaded at build time.
struct Nvrtc {
    _lib: libloading::Library,
    create: unsafe extern "C" fn(
        *mut Prog,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> c_int,
    compile: unsafe extern "C" fn(Prog, c_int, *const *const c_char) -> c_int,
    ptx_size: unsafe extern "C" fn(Prog, *mut usize) -> c_int,
    ptx: unsafe extern "C" fn(Prog, *mut c_char) -> c_int,
    log_size: unsafe extern "C" fn(Prog, *mut usize) -> c_int,
    log: unsafe extern "C" fn(Prog, *mut c_char) -> c_int,
    destroy: unsafe extern "C" fn(*mut Prog) -> c_int,
}

impl Nvrtc {
    fn load() -> Result<Nvrtc, String> {
        let names = std::env::var("LADDERD_NVRTC")
            .map(|p| vec![p])
            .unwrap_or_else(|_| vec!["libnvrtc.so.12".into(), "libnvrtc.so".into()]);
        for name in names {
            // SAFETY: loading NVRTC runs no initialisers that depend on us.
            let Ok(lib) = (unsafe { libloading::Library::new(&name) }) else {
                continue;
            };
            // SAFETY: the types are NVRTC's documented C signatures.
            unsafe {
                return Ok(Nvrtc {
                    create: *lib
                        .get(b"nvrtcCreateProgram\0")
                        .map_err(|e| e.to_string())?,
                    compile: *lib
                        .get(b"nvrtcCompileProgram\0")
                        .map_err(|e| e.to_string())?,
                    ptx_size: *lib.get(b"nvrtcGetPTXSize\0").map_err(|e| e.to_string())?,
                    ptx: *lib.get(b"nvrtcGetPTX\0").map_err(|e| e.to_string())?,
                    log_size: *lib
                        .get(b"nvrtcGetProgramLogSize\0")
                        .map_err(|e| e.to_string())?,
                    log: *lib
                        .get(b"nvrtcGetProgramLog\0")
                        .map_err(|e| e.to_string())?,
                    destroy: *lib
                        .get(b"nvrtcDestroyProgram\0")
                        .map_err(|e| e.to_string())?,
                    _lib: lib,
                });
            }
        }
        Err("NVRTC not found".into())
    }

    fn ptx(&self, name: &str, source: &str) -> Result<String, String> {
        let src = CString::new(source).map_err(|e| e.to_string())?;
        let cname = CString::new(name).map_err(|e| e.to_string())?;
        // Same options as the run-time compile in src/transcode/gpu/kernels.rs.
        let opts: Vec<CString> = [
            "--fmad=false",
            "--std=c++14",
            &format!("--gpu-architecture={ARCH}"),
        ]
        .iter()
        .map(|o| CString::new(*o).expect("no NUL in options"))
        .collect();
        let optp: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        let mut prog: Prog = std::ptr::null_mut();
        // SAFETY: NVRTC's documented call sequence; every buffer is sized by the
        // size call before it and outlives the program.
        unsafe {
            if (self.create)(
                &mut prog,
                src.as_ptr(),
                cname.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            ) != 0
            {
                return Err("nvrtcCreateProgram failed".into());
            }
            let ok = (self.compile)(prog, optp.len() as c_int, optp.as_ptr()) == 0;
            let result = if ok {
                let mut n = 0usize;
                (self.ptx_size)(prog, &mut n);
                let mut buf = vec![0u8; n];
                (self.ptx)(prog, buf.as_mut_ptr().cast());
                Ok(String::from_utf8_lossy(&buf)
                    .trim_end_matches('\0')
                    .to_string())
            } else {
                let mut n = 0usize;
                (self.log_size)(prog, &mut n);
                let mut buf = vec![0u8; n];
                (self.log)(prog, buf.as_mut_ptr().cast());
                Err(String::from_utf8_lossy(&buf).to_string())
            };
            (self.destroy)(&mut prog);
            result
        }
    }
}
