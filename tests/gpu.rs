//! The GPU backend on a machine without a GPU (CI): probe never panics and
//! says what is missing; a stub libcuda (built here with `cc`) makes the
//! driver "present, no device", which `backend = "gpu"` refuses and `auto`
//! reports while running on the CPU. On a GPU box see `hwtest/`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;

fn ladderd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ladderd"))
}

/// Whether this machine has a real NVIDIA driver (then the "no driver" checks
/// cannot hold and are skipped with a line saying so).
fn real_driver() -> bool {
    Command::new("sh")
        .args(["-c", "ldconfig -p | grep -q 'libcuda.so.1 '"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn probe_without_a_driver_says_libcuda_not_found() {
    for json in [false, true] {
        let mut cmd = ladderd();
        cmd.arg("probe");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "probe exits 0: {out:?}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{out:?}"
        );
        if real_driver() {
            eprintln!("this machine has libcuda: skipping the no-driver message check");
            continue;
        }
        assert!(text.contains("libcuda not found"), "{text}");
        if json {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["gpu"]["available"], false);
            assert!(v["gpu"]["backend"].as_str().unwrap().starts_with("cpu"));
        }
    }
}

/// A libcuda.so.1 whose cuInit answers CUDA_ERROR_NO_DEVICE (100), with the
/// two error-string entry points a driver always has.
fn stub_libcuda(dir: &Path) {
    let src = dir.join("stub.c");
    std::fs::write(
        &src,
        r#"
        int cuInit(unsigned int flags) { (void)flags; return 100; }
        int cuGetErrorName(int e, const char **s) {
            *s = e == 100 ? "CUDA_ERROR_NO_DEVICE" : "CUDA_ERROR_UNKNOWN"; return 0; }
        int cuGetErrorString(int e, const char **s) {
            *s = e == 100 ? "no CUDA-capable device is detected" : "unknown error"; return 0; }
        "#,
    )
    .unwrap();
    build_lib(dir, &src, "libcuda.so.1");
    std::os::unix::fs::symlink(dir.join("libcuda.so.1"), dir.join("libcuda.so")).unwrap();
}

/// Builds `src` into the shared library `dir/lib` with the system C compiler.
fn build_lib(dir: &Path, src: &Path, lib: &str) {
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(dir.join(lib))
        .arg(src)
        .output()
        .expect("cc (gcc) is on the machine");
    assert!(
        out.status.success(),
        "{} (the fakes need the ffnvcodec headers: apt-get install libffmpeg-nvenc-dev): {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ladderd probe --json` with the stubs first on the loader path.
fn probe_json(path: &str) -> serde_json::Value {
    let out = ladderd()
        .args(["probe", "--json"])
        .env("LD_LIBRARY_PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn with_stub_path(dir: &Path) -> String {
    match std::env::var("LD_LIBRARY_PATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", dir.display()),
        _ => dir.display().to_string(),
    }
}

#[test]
fn stub_driver_without_device_gpu_refuses_auto_runs_on_cpu() {
    if real_driver() {
        eprintln!("this machine has libcuda: the stub would not be the driver found; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    stub_libcuda(dir.path());
    let path = with_stub_path(dir.path());

    let v = probe_json(&path);
    let driver = v["gpu"]["driver"].as_str().unwrap();
    assert!(
        driver.contains("driver present") && driver.contains("no CUDA device"),
        "{driver}"
    );
    assert!(driver.contains("CUDA_ERROR_NO_DEVICE"), "{driver}");
    assert_eq!(v["gpu"]["available"], false);

    // backend = "gpu": start-up fails, naming the reason.
    let cfg = dir.path().join("gpu.toml");
    std::fs::write(&cfg, "[ladder]\nbackend = \"gpu\"\n").unwrap();
    let started = Instant::now();
    let out = ladderd()
        .arg("--config")
        .arg(&cfg)
        .args([
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "serve",
        ])
        .env("LD_LIBRARY_PATH", &path)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "backend = gpu must not start: {out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("backend = \"gpu\"") && err.contains("no CUDA device"),
        "{err}"
    );

    // backend = "auto": runs the demo ladder on the CPU and says why.
    let server = Server::start_env(
        "[ladder]\nbackend = \"auto\"\n",
        &["--demo"],
        &[("LD_LIBRARY_PATH", &path)],
    );
    let log = server.log_text();
    assert!(log.contains("ladder backend: cpu"), "{log}");
    assert!(log.contains("no CUDA device"), "{log}");
    // And the ladder really runs: the demo's rungs publish.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = server.get("/live/demo/master.m3u8").unwrap();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "demo never published: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = server.get("/metrics").unwrap().1;
    assert!(
        metrics.contains("ladderd_gpu_backend_info{backend=\"cpu\""),
        "{metrics}"
    );
}

#[test]
fn hwtest_without_a_gpu_exits_2_and_says_why() {
    if real_driver() {
        eprintln!("this machine has libcuda: run hwtest/run.sh instead; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = ladderd()
        .args(["hwtest", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| gpu") && table.contains("not run: libcuda not found"),
        "{table}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["ran_on_gpu"], false);
}

/// tests/stubs/: a driver with one Hopper-like device, an NVDEC that decodes
/// H.264, an NVENC library that refuses sessions (as on H100/H200).
fn fake_hopper(dir: &Path) {
    let stubs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stubs");
    for (src, lib) in [
        ("fake_cuda.c", "libcuda.so.1"),
        ("fake_nvcuvid.c", "libnvcuvid.so.1"),
        ("fake_nvenc.c", "libnvidia-encode.so.1"),
    ] {
        build_lib(dir, &Path::new(stubs).join(src), lib);
    }
    std::os::unix::fs::symlink(dir.join("libcuda.so.1"), dir.join("libcuda.so")).unwrap();
}

/// What probe and start-up say on a GPU with NVDEC and no NVENC, read through
/// our bindings from libraries built against NVIDIA's headers: the NVDEC caps
/// struct, the NVENC function table and version handshake, the session error.
#[test]
fn hopper_without_nvenc_is_detected_and_runs_hybrid() {
    if real_driver() {
        eprintln!("this machine has libcuda: the stubs would not be the driver found; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fake_hopper(dir.path());
    let path = with_stub_path(dir.path());
    let v = probe_json(&path);
    let gpu = &v["gpu"];
    if gpu["kernels_built_in"] == false && gpu["nvrtc"]["Err"].is_string() {
        // Opening the device needs the kernels: built in, or NVRTC at run time.
        assert!(
            std::env::var("LADDERD_REQUIRE_NVRTC").is_err(),
            "NVRTC required: {gpu:#}"
        );
        eprintln!("no NVRTC and no built-in PTX: skipped");
        return;
    }
    assert_eq!(gpu["available"], true, "{gpu:#}");
    assert_eq!(gpu["driver_version"], "12.9");
    let dev = &gpu["devices"][0];
    assert_eq!(dev["name"], "Stub H100");
    assert_eq!(dev["compute_capability"], serde_json::json!([9, 0]));
    assert_eq!(dev["memory_bytes"], 80u64 << 30);
    let h264 = &dev["nvdec"]["Ok"][0];
    assert_eq!(h264["codec"], "h264");
    assert_eq!(h264["supported"], true);
    assert_eq!(h264["max_width"], 4096);
    assert_eq!(h264["engines"], 7);
    assert_eq!(dev["nvdec"]["Ok"][2]["supported"], false, "av1");
    let nvenc = dev["nvenc"]["Err"].as_str().unwrap();
    assert!(
        nvenc.contains("NV_ENC_ERR_UNSUPPORTED_DEVICE") && nvenc.contains("has no NVENC"),
        "{nvenc}"
    );
    let backend = gpu["backend"].as_str().unwrap();
    assert!(
        backend.starts_with("hybrid: NVDEC + CUDA scale + CPU encode on Stub H100"),
        "{backend}"
    );

    // backend = "gpu" starts on the hybrid plan; this fake GPU has no memory, so
    // the demo's ladder fails at its first allocation: that stream runs without
    // a ladder (source rendition only), logged with the reason; the process and
    // its other duties carry on.
    let server = Server::start_env(
        "[ladder]\nbackend = \"gpu\"\n",
        &["--demo"],
        &[("LD_LIBRARY_PATH", &path)],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log_text().contains("ladder not started") {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.log_text();
    assert!(log.contains("ladder backend: hybrid"), "{log}");
    assert!(log.contains("CUDA_ERROR_OUT_OF_MEMORY"), "{log}");
    assert_eq!(server.get("/healthz").unwrap().0, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = server.get("/live/demo/master.m3u8").unwrap();
        if status == 200 && body.contains("source") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "source rendition never offered: {body}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = server.get("/metrics").unwrap().1;
    assert!(
        metrics.contains(
            "ladderd_gpu_backend_info{backend=\"hybrid\",device=\"Stub H100 (sm_90)\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("ladderd_ladder_failures_total{stream=\"demo\"} 1"),
        "{metrics}"
    );
}
