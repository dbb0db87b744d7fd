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
    let lib = dir.join("libcuda.so.1");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("cc (gcc) is on the machine");
    assert!(status.success());
    std::os::unix::fs::symlink(&lib, dir.join("libcuda.so")).unwrap();
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

    let out = ladderd()
        .args(["probe", "--json"])
        .env("LD_LIBRARY_PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
