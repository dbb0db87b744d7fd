//! Build script: records the commit for `--version`-style reports, watches
//! `kernels/`, and says when nasm is missing (openh264 then builds without its
//! assembly and decodes/encodes at about half speed, silently).
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
}
