//! Build script: records the commit for `--version`-style reports and watches `kernels/`.
//!
//! CUDA kernels in `kernels/` will be compiled to PTX here when NVRTC is found
//! (GPU backend); nothing GPU-related is ever required to build.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=.git/HEAD");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LADDERD_COMMIT={commit}");
}
