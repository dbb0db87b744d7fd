//! The GPU backend on a machine without a GPU (CI): probe never panics and
//! says what is missing; a stub libcuda (built here with `cc`) makes the
//! driver "present, no device", which `backend = "gpu"` refuses and `auto`
//! reports while running on the CPU. On a GPU box see `hwtest/`.
//!
//! The rest runs the whole GPU path against the CPU stand-ins for the NVIDIA
//! driver libraries in tests/stubs/ (libcuda, libnvcuvid, libnvidia-encode,
//! built here with `cc` against NVIDIA's headers, decoding with libavcodec and
//! encoding with libx264): NVDEC → CUDA scale → NVENC, and the hybrid plan, in
//! `serve --demo`, `transcode` and `hwtest`, with failures injected. A contract
//! violation in the stand-in aborts the process with "ladderd stand-in
//! VIOLATION", which every test here fails on.
//!
//! A test that cannot run on this machine (a real driver masks the no-driver
//! checks; no kernels for the stand-in GPU) fails under `LADDERD_REQUIRE_GPU=1`,
//! which scripts/test.sh sets, and elsewhere prints why it was skipped.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{play_in_chromium, Server};

fn ladderd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ladderd"))
}

/// Whether this machine has a real NVIDIA driver in the loader cache (then the
/// "no driver" checks cannot hold). The stand-ins are unaffected: they come
/// first on `LD_LIBRARY_PATH`, which the loader searches before its cache.
fn real_driver() -> bool {
    Command::new("sh")
        .args(["-c", "ldconfig -p | grep -q 'libcuda.so.1 '"])
        .status()
        .is_ok_and(|s| s.success())
}

/// A test that cannot check anything on this machine. Under
/// `LADDERD_REQUIRE_GPU=1` (scripts/test.sh sets it where every test here must
/// run: no real driver, stand-ins and kernels available) that is a failure;
/// elsewhere the test says on stderr that it was skipped and why, and the
/// caller returns.
fn cannot_run_here(why: &str) {
    assert!(
        std::env::var_os("LADDERD_REQUIRE_GPU").is_none(),
        "LADDERD_REQUIRE_GPU is set but this test cannot run here: {why}"
    );
    eprintln!("SKIPPED: {why}");
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
            continue;
        }
        assert!(text.contains("libcuda not found"), "{text}");
        if json {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["gpu"]["available"], false);
            assert!(v["gpu"]["backend"].as_str().unwrap().starts_with("cpu"));
        }
    }
    if real_driver() {
        cannot_run_here("this machine has libcuda: probe cannot say \"libcuda not found\"");
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
            "--srt-listen",
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
        cannot_run_here("this machine has libcuda: hwtest runs the GPU suite (hwtest/run.sh)");
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

/// tests/stubs/ built once per test process: the stand-in driver libraries.
fn standin() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let stubs = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stubs"));
        // libcuda first: the other two link against it (one instance, one
        // device-memory registry). -ffp-contract=off: the kernels' float math
        // is compiled with --fmad=false.
        for (src, lib, flags) in [
            (
                "fake_cuda.c",
                "libcuda.so.1",
                &["-ffp-contract=off", "-lm", "-lpthread"][..],
            ),
            (
                "fake_nvcuvid.c",
                "libnvcuvid.so.1",
                &["-L.", "-l:libcuda.so.1", "-lavcodec", "-lavutil"][..],
            ),
            (
                "fake_nvenc.c",
                "libnvidia-encode.so.1",
                &["-L.", "-l:libcuda.so.1", "-lx264"][..],
            ),
        ] {
            let out = Command::new("cc")
                .current_dir(d)
                .args(["-shared", "-fPIC", "-O2", "-Wall"])
                .arg(format!("-Wl,-soname,{lib}"))
                .arg("-o")
                .arg(d.join(lib))
                .arg(stubs.join(src))
                .args(flags)
                .output()
                .expect("cc (gcc) is on the machine");
            assert!(
                out.status.success(),
                "{src} (the stand-ins need the ffnvcodec headers, libavcodec-dev and libx264-dev: \
                 scripts/test.sh installs them): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::os::unix::fs::symlink(d.join("libcuda.so.1"), d.join("libcuda.so")).unwrap();
        dir
    })
    .path()
}

/// The environment that puts the stand-ins first on the loader path, as
/// `profile` (`h100`: NVDEC, no NVENC; `rtx`: NVDEC and NVENC), plus `extra`.
fn standin_env(profile: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("LD_LIBRARY_PATH".to_string(), with_stub_path(standin())),
        ("LADDERD_STANDIN_GPU".to_string(), profile.to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Whether the stand-in GPU can open a device here: it needs the CUDA kernels,
/// built in or compiled by NVRTC at run time. Where neither is had the test
/// cannot run (`cannot_run_here`: a failure under `LADDERD_REQUIRE_GPU=1`), and
/// `LADDERD_REQUIRE_NVRTC=1` fails it too. The stand-ins themselves not
/// building is always a failure (`standin`).
fn standin_usable() -> bool {
    let v = probe_json(&with_stub_path(standin()));
    let gpu = &v["gpu"];
    if gpu["kernels_built_in"] == false && gpu["nvrtc"]["detail"].is_string() {
        assert!(
            std::env::var("LADDERD_REQUIRE_NVRTC").is_err(),
            "NVRTC required: {gpu:#}"
        );
        cannot_run_here(&format!(
            "no NVRTC and no built-in PTX for the stand-in GPU: {}",
            gpu["nvrtc"]["detail"]
        ));
        return false;
    }
    true
}

/// The stand-in tests share two cores: those that play in hls.js (which must
/// not stall) run alone, the others alongside one another. Contention between
/// tests is not what they check.
static CPU: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn share_the_cpu() -> std::sync::RwLockReadGuard<'static, ()> {
    CPU.read().unwrap_or_else(|e| e.into_inner())
}

fn the_cpu_alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    CPU.write().unwrap_or_else(|e| e.into_inner())
}

fn assert_no_violation(what: &str, text: &str) {
    assert!(
        !text.contains("stand-in VIOLATION") && !text.contains("panicked"),
        "{what}:\n{text}"
    );
}

/// What probe and start-up say on a GPU with NVDEC and no NVENC, read through
/// our bindings from libraries built against NVIDIA's headers: the NVDEC caps
/// struct, the NVENC function table and version handshake, the session error.
#[test]
fn hopper_without_nvenc_is_detected_and_runs_hybrid() {
    // Opening the device needs the kernels: built in, or NVRTC at run time.
    if !standin_usable() {
        return;
    }
    let _cpu = share_the_cpu();
    let path = with_stub_path(standin());
    let v = probe_json(&path);
    let gpu = &v["gpu"];
    assert_eq!(gpu["available"], true, "{gpu:#}");
    assert_eq!(gpu["driver_version"], "12.9");
    let dev = &gpu["devices"][0];
    assert_eq!(dev["name"], "Stub H100");
    assert_eq!(dev["compute_capability"], serde_json::json!([9, 0]));
    assert_eq!(dev["memory_bytes"], 80u64 << 30);
    let h264 = &dev["nvdec"]["value"][0];
    assert_eq!(h264["codec"], "h264");
    assert_eq!(h264["supported"], true);
    assert_eq!(h264["max_width"], 4096);
    assert_eq!(h264["engines"], 7);
    assert_eq!(dev["nvdec"]["value"][2]["supported"], false, "av1");
    let nvenc = dev["nvenc"]["detail"].as_str().unwrap();
    assert!(
        nvenc.contains("NV_ENC_ERR_UNSUPPORTED_DEVICE") && nvenc.contains("has no NVENC"),
        "{nvenc}"
    );
    let backend = gpu["backend"].as_str().unwrap();
    assert!(
        backend.starts_with("hybrid: NVDEC + CUDA scale + CPU encode on Stub H100"),
        "{backend}"
    );

    // backend = "gpu" starts on the hybrid plan; here every allocation fails
    // (out of memory), so the demo's ladder fails at its first allocation: that
    // stream runs without a ladder (source rendition only), logged with the
    // reason; the process and its other duties carry on.
    let server = Server::start_env(
        "[ladder]\nbackend = \"gpu\"\n",
        &["--demo"],
        &[
            ("LD_LIBRARY_PATH", &path),
            ("LADDERD_STANDIN_FAIL", "cuMemAlloc_v2@1+=2"),
        ],
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

/// `ladderd [--config CFG] transcode INPUT --out DIR` with `env`; (stdout, stderr).
fn transcode_with(
    input: &Path,
    out: &Path,
    backend: &str,
    env: &[(String, String)],
) -> (String, String) {
    let cfg = out.join("ladderd.toml");
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(&cfg, format!("[ladder]\nbackend = \"{backend}\"\n")).unwrap();
    let run = ladderd()
        .arg("--config")
        .arg(&cfg)
        .arg("transcode")
        .arg(input)
        .arg("--out")
        .arg(out)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout).into_owned(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    );
    assert_no_violation("transcode", &stderr);
    assert!(
        run.status.success(),
        "transcode ({backend}) failed:\n{stderr}"
    );
    (stdout, stderr)
}

/// Rung name → (width, height, frames, keyframe indices) from a transcode
/// summary's table and ffprobe of each rung's file.
type Rungs = Vec<(String, u32, u32, u64, Vec<u64>)>;

fn rungs_of(stdout: &str, dir: &Path) -> Rungs {
    let mut out = Vec::new();
    for line in stdout.lines().skip(2) {
        let mut f = line.split_whitespace();
        let name = f.next().unwrap_or("");
        if name.is_empty() || name.ends_with(':') || name == "latency" {
            continue;
        }
        let size = f.next().unwrap();
        let (w, h) = size.split_once('x').unwrap();
        let file = dir.join(format!("{name}.mp4"));
        let probe = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args(["packet=flags", "-of", "csv=p=0"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            probe.status.success(),
            "ffprobe {}: {probe:?}",
            file.display()
        );
        let flags = String::from_utf8_lossy(&probe.stdout).into_owned();
        let keys: Vec<u64> = flags
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains('K'))
            .map(|(i, _)| i as u64)
            .collect();
        out.push((
            name.to_string(),
            w.parse().unwrap(),
            h.parse().unwrap(),
            flags.lines().count() as u64,
            keys,
        ));
    }
    assert!(!out.is_empty(), "no rungs in:\n{stdout}");
    out
}

/// Y-PSNR of one rendition file against another of the same size.
fn psnr_between(a: &Path, b: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(a)
        .arg("-i")
        .arg(b)
        .args(["-filter_complex", "[0:v][1:v]psnr", "-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("PSNR y:"))
        .unwrap_or_else(|| panic!("no PSNR line: {err}"));
    let v = line
        .split("y:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    if v == "inf" {
        return f64::INFINITY;
    }
    v.parse().unwrap()
}

/// (bytes, copies) from the summary's `gpu: N bytes copied device->host in M copies`.
fn copied(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("gpu: "))
        .unwrap_or_else(|| panic!("no `gpu: N bytes` line in:\n{stdout}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    (w[0].parse().unwrap(), w[5].parse().unwrap())
}

/// 4 s of 1280x720@30 H.264 High with B-frames (reordering through NVDEC) and
/// AAC, as FLV, made once per target dir by ffmpeg.
fn source_720p30_flv() -> std::path::PathBuf {
    common::make_input(
        "gpu-720p30-high-bf-4s.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:sample_rate=44100",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-bf",
            "3",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
        ],
    )
    .path
}

/// One tight I420 picture of `w`×`h`: what the hybrid plan copies per rung.
fn i420_bytes(w: u32, h: u32) -> u64 {
    let (w, h) = (w as u64, h as u64);
    w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
}

/// The transcode check through the GPU backend: a 720p30 High source with
/// B-frames through NVDEC → CUDA scale → NVENC (all rungs), through the hybrid
/// plan (no NVENC), and with a 2-session NVENC cap (the third rung encodes on
/// the CPU): every rung has the CPU ladder's frames and IDR positions, looks
/// like it (Y-PSNR), and the copies across the bus are exactly what each plan
/// needs: none for all-GPU, one I420 picture per picture per CPU-encoded rung.
#[test]
fn standin_transcode_gpu_hybrid_and_session_cap_match_the_cpu_ladder() {
    if !standin_usable() {
        return;
    }
    let _cpu = share_the_cpu();
    let input = &source_720p30_flv();
    let dir = tempfile::tempdir().unwrap();
    let (cpu_out, _) = transcode_with(input, &dir.path().join("cpu"), "cpu", &[]);
    let cpu = rungs_of(&cpu_out, &dir.path().join("cpu"));
    let source_frames = common::count_packets(input, "v:0");
    for (name, _, _, frames, keys) in &cpu {
        assert_eq!(*frames, source_frames, "cpu {name}");
        assert!(keys.len() >= 2, "cpu {name}: {keys:?}");
    }
    for (label, profile, extra, expect_backend) in [
        (
            "gpu",
            "rtx",
            &[("LADDERD_STANDIN_NVENC_SESSIONS", "8")][..],
            "backend: gpu: NVDEC + CUDA scale + NVENC",
        ),
        (
            "hybrid",
            "h100",
            &[][..],
            "backend: hybrid: NVDEC + CUDA scale + CPU encode",
        ),
        (
            "capped",
            "rtx",
            &[("LADDERD_STANDIN_NVENC_SESSIONS", "2")][..],
            "backend: gpu: NVDEC + CUDA scale + NVENC",
        ),
    ] {
        let out_dir = dir.path().join(label);
        let (stdout, stderr) = transcode_with(input, &out_dir, "gpu", &standin_env(profile, extra));
        assert!(stdout.contains(expect_backend), "{label}:\n{stdout}");
        let rungs = rungs_of(&stdout, &out_dir);
        assert_eq!(
            rungs.iter().map(|r| &r.0).collect::<Vec<_>>(),
            cpu.iter().map(|r| &r.0).collect::<Vec<_>>(),
            "{label}: rungs"
        );
        let (mut host_bytes, mut host_copies) = (0, 0);
        for (i, ((name, w, h, frames, keys), c)) in rungs.iter().zip(&cpu).enumerate() {
            assert_eq!((*w, *h), (c.1, c.2), "{label} {name} size");
            assert_eq!(*frames, c.3, "{label} {name}: frame count");
            assert_eq!(
                keys, &c.4,
                "{label} {name}: IDRs not where the CPU ladder has them"
            );
            let p = psnr_between(
                &out_dir.join(format!("{name}.mp4")),
                &dir.path().join("cpu").join(format!("{name}.mp4")),
            );
            println!("{label} {name}: Y-PSNR vs the CPU ladder {p:.1} dB");
            assert!(
                p >= 38.0,
                "{label} {name}: Y-PSNR {p:.1} dB vs the CPU ladder"
            );
            let on_cpu = match label {
                "gpu" => false,
                "hybrid" => true,
                _ => i >= 2,
            };
            if on_cpu {
                host_bytes += frames * i420_bytes(*w, *h);
                host_copies += frames;
            }
        }
        assert_eq!(
            copied(&stdout),
            (host_bytes, host_copies),
            "{label}: device->host (bytes, copies): one I420 copy per picture per CPU-encoded rung"
        );
        if label == "capped" {
            let warned = stderr.matches("NVENC unavailable for this rung").count();
            assert_eq!(warned, 1, "the capped rung is logged once:\n{stderr}");
        }
    }
}

/// The parser calls the sequence callback again at the 10th picture with the
/// same size and 8 more minimum surfaces (a new SPS with more reference
/// frames). Keeping the decoder, ladderd must answer 1 (keep the parser's
/// surface count): a larger count lets the parser hand out picture indices
/// the decoder has no surface for (review finding 4a). Every picture decodes.
#[test]
fn standin_sequence_callback_again_keeps_the_decoder_surface_count() {
    if !standin_usable() {
        return;
    }
    let _cpu = share_the_cpu();
    let input = &source_720p30_flv();
    let dir = tempfile::tempdir().unwrap();
    let env = standin_env("h100", &[("LADDERD_STANDIN_NVDEC_RESEQUENCE", "10")]);
    let (stdout, stderr) = transcode_with(input, dir.path(), "gpu", &env);
    let frames = common::count_packets(input, "v:0");
    assert!(
        stdout.starts_with(&format!("source: {frames} frames, decoded {frames} ")),
        "{stdout}\n{stderr}"
    );
    for (name, _, _, n, _) in rungs_of(&stdout, dir.path()) {
        assert_eq!(n, frames, "{name}");
    }
}

/// A driver older than the NVRTC that wrote the built-in PTX (12.4 here: PTX
/// ISA 8.8 needs 12.9) refuses it with CUDA_ERROR_UNSUPPORTED_PTX_VERSION; the
/// device still opens, on NVRTC machine code for its architecture, and probe
/// says which image loaded (review finding 1).
#[test]
fn standin_driver_too_old_for_the_ptx_loads_an_nvrtc_cubin() {
    if !standin_usable() {
        return;
    }
    let _cpu = share_the_cpu();
    let out = ladderd()
        .args(["probe", "--json"])
        .envs(standin_env("h100", &[("LADDERD_STANDIN_DRIVER", "12040")]))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gpu = &v["gpu"];
    assert_eq!(gpu["driver_version"], "12.4");
    assert_eq!(gpu["available"], true, "{gpu:#}");
    let kernels = gpu["devices"][0]["kernels"].as_str().unwrap();
    assert!(kernels.starts_with("sm_90 cubin from NVRTC"), "{kernels}");
    // The current driver takes the PTX.
    let v = probe_json(&with_stub_path(standin()));
    assert_eq!(v["gpu"]["devices"][0]["kernels"], "PTX");
}

/// Polls /metrics until `f` finds what it wants in it.
fn wait_metrics<T>(server: &Server, what: &str, mut f: impl FnMut(&str) -> Option<T>) -> T {
    server.wait_for(what, Duration::from_secs(120), || {
        let m = server.get("/metrics").ok()?.1;
        assert_no_violation("server", &server.log_text());
        f(&m)
    })
}

/// The value of one metric line `name{labels} V`.
fn metric(m: &str, series: &str) -> Option<f64> {
    m.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
}

/// `serve --demo` with `backend = "gpu"` on a card with NVENC: every rung of
/// the demo ladder encodes on NVENC from NVDEC pictures scaled on the device,
/// every rung's playlist fills, and nothing crosses the bus device→host.
#[test]
fn standin_demo_full_gpu_serves_every_rung_with_no_device_to_host_copy() {
    if !standin_usable() {
        return;
    }
    let _cpu = share_the_cpu();
    let env = standin_env("rtx", &[("LADDERD_STANDIN_NVENC_SESSIONS", "8")]);
    let server = Server::start_env(
        "[ladder]\nbackend = \"gpu\"\n",
        &["--demo"],
        &env_refs(&env),
    );
    let master = server.wait_for(
        "the demo's master playlist",
        Duration::from_secs(60),
        || {
            let (status, body) = server.get("/live/demo/master.m3u8").ok()?;
            // The source rendition is listed first; the demo's 720p ladder ends at 360p.
            (status == 200 && body.contains("360p30/playlist.m3u8")).then_some(body)
        },
    );
    let rungs: Vec<String> = master
        .lines()
        .filter(|l| {
            l.ends_with("/playlist.m3u8") && !l.starts_with("source") && !l.starts_with("audio")
        })
        .map(|l| l.trim_end_matches("/playlist.m3u8").to_string())
        .collect();
    assert!(rungs.len() >= 2, "{master}");
    wait_metrics(&server, "30 frames on every rung", |m| {
        rungs
            .iter()
            .all(|r| {
                metric(
                    m,
                    &format!("ladderd_frames_encoded_total{{stream=\"demo\",rung=\"{r}\"}}"),
                )
                .is_some_and(|n| n >= 30.0)
            })
            .then_some(())
    });
    for r in &rungs {
        let playlist = server.wait_for(
            &format!("{r} playlist with a part"),
            Duration::from_secs(60),
            || {
                let (status, body) = server.get(&format!("/live/demo/{r}/playlist.m3u8")).ok()?;
                (status == 200 && body.contains("#EXT-X-PART:")).then_some(body)
            },
        );
        assert!(playlist.contains("#EXT-X-MAP:"), "{r}: {playlist}");
    }
    let m = server.get("/metrics").unwrap().1;
    assert!(
        m.contains(
            "ladderd_gpu_backend_info{backend=\"gpu\",device=\"Stand-in RTX 4090 (sm_89)\"} 1"
        ),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "ladderd_gpu_copied_bytes_total{direction=\"device_to_host\"}"
        )
        .or_else(|| metric(&m, "ladderd_gpu_copied_bytes{direction=\"device_to_host\"}")),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "ladderd_gpu_nvenc_sessions"),
        Some(rungs.len() as f64),
        "{m}"
    );
    assert_eq!(
        metric(&m, "ladderd_ladder_failures_total{stream=\"demo\"}"),
        Some(0.0),
        "{m}"
    );
    assert_no_violation("server", &server.log_text());
}

/// Waits until the demo's one injected error is counted (`counter`, a
/// series of `/metrics`), then until `rung` has encoded 30 more frames: the
/// stream went on past the error.
fn error_counted_then_rung_goes_on(server: &Server, counter: &str, rung: &str) {
    wait_metrics(server, "the error counted", |m| {
        metric(m, counter).filter(|n| *n >= 1.0)
    });
    let series = format!("ladderd_frames_encoded_total{{stream=\"demo\",rung=\"{rung}\"}}");
    let after = wait_metrics(server, "encoded frames", |m| metric(m, &series));
    wait_metrics(server, "encoding going on after the error", |m| {
        metric(m, &series).filter(|n| *n >= after + 30.0)
    });
}

/// An NVDEC decode error mid-stream (the 40th picture) on a card capped at 2
/// NVENC sessions (the demo ladder has 3 rungs): the third rung encodes on the
/// CPU, logged once and counted, the others stay on NVENC; the decode error is
/// logged once, counted, the stream skips to its next keyframe and every rung
/// goes on encoding; the process stays healthy.
#[test]
fn standin_demo_decode_error_and_nvenc_session_cap_are_logged_once_and_counted() {
    if !standin_usable() {
        return;
    }
    let _cpu = share_the_cpu();
    let env = standin_env(
        "rtx",
        &[
            ("LADDERD_STANDIN_NVENC_SESSIONS", "2"),
            ("LADDERD_STANDIN_FAIL", "cuvidDecodePicture@40=1"),
        ],
    );
    let server = Server::start_env(
        "[ladder]\nbackend = \"gpu\"\n",
        &["--demo"],
        &env_refs(&env),
    );
    error_counted_then_rung_goes_on(
        &server,
        "ladderd_decode_errors_total{stream=\"demo\"}",
        "360p30",
    );
    let log = server.log_text();
    assert!(
        log.contains("ladderd stand-in: injected 1 into cuvidDecodePicture"),
        "{log}"
    );
    assert_eq!(
        log.matches("skipping to the next keyframe").count(),
        1,
        "logged once:\n{log}"
    );
    assert!(
        log.contains("CUDA_ERROR_INVALID_VALUE"),
        "the error is named:\n{log}"
    );
    assert_eq!(
        log.matches("NVENC unavailable for this rung").count(),
        1,
        "the capped rung is logged once:\n{log}"
    );
    assert!(log.contains("NV_ENC_ERR_OUT_OF_MEMORY"), "{log}");
    let m = server.get("/metrics").unwrap().1;
    assert_eq!(
        metric(&m, "ladderd_decode_errors_total{stream=\"demo\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "ladderd_ladder_failures_total{stream=\"demo\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "ladderd_gpu_nvenc_fallback_rungs_total"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "ladderd_gpu_nvenc_sessions"), Some(2.0), "{m}");
    for rung in ["720p30", "480p30", "360p30"] {
        let series = format!("ladderd_frames_encoded_total{{stream=\"demo\",rung=\"{rung}\"}}");
        assert!(
            metric(&m, &series).is_some_and(|n| n >= 30.0),
            "{rung}: {m}"
        );
    }
    assert_eq!(server.get("/healthz").unwrap().0, 200);
}

/// Out of device memory on a rung mid-stream (the hybrid plan's first host
/// copy of the 480p rung allocates its staging buffer): that picture's stage
/// error is logged once and counted for that rung, which alone skips to its
/// next IDR (the other rungs and the decoder go on: no decode error), the
/// ladder goes on (the allocation is retried) with no ladder failure, and
/// the process stays healthy.
#[test]
fn standin_demo_out_of_memory_on_a_rung_is_logged_once_and_the_ladder_goes_on() {
    if !standin_usable() {
        return;
    }
    let _cpu = share_the_cpu();
    // Allocations in order: 3 rung outputs at start, NVDEC's first picture
    // buffer, then each rung's I420 staging at its first copy (720p, 480p).
    let env = standin_env("h100", &[("LADDERD_STANDIN_FAIL", "cuMemAlloc_v2@6=2")]);
    let server = Server::start_env(
        "[ladder]\nbackend = \"gpu\"\n",
        &["--demo"],
        &env_refs(&env),
    );
    error_counted_then_rung_goes_on(
        &server,
        "ladderd_rung_errors_total{stream=\"demo\",rung=\"480p30\"}",
        "480p30",
    );
    let log = server.log_text();
    assert!(
        log.contains("injected 2 into cuMemAlloc_v2 (call 6)"),
        "{log}"
    );
    assert_eq!(
        log.matches("CUDA_ERROR_OUT_OF_MEMORY").count(),
        1,
        "logged once, naming the error:\n{log}"
    );
    assert!(
        log.contains("scale to 854x480"),
        "the rung is named:\n{log}"
    );
    let m = server.get("/metrics").unwrap().1;
    assert_eq!(
        metric(&m, "ladderd_decode_errors_total{stream=\"demo\"}"),
        Some(0.0),
        "a rung's error is not the decoder's: {m}"
    );
    for rung in ["720p30", "360p30"] {
        assert_eq!(
            metric(
                &m,
                &format!("ladderd_rung_errors_total{{stream=\"demo\",rung=\"{rung}\"}}")
            ),
            Some(0.0),
            "{m}"
        );
    }
    assert_eq!(
        metric(&m, "ladderd_ladder_failures_total{stream=\"demo\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(server.get("/healthz").unwrap().0, 200);
    assert_no_violation("server", &server.log_text());
}

/// `hwtest` on the stand-in runs every row to the end, none failing, and
/// labels itself: no number is taken for a hardware figure (ran_on_gpu false,
/// exit 2 as with no GPU).
#[test]
fn standin_hwtest_runs_to_completion_labelled_as_stand_in() {
    if !standin_usable() {
        return;
    }
    let _cpu = share_the_cpu();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let env = standin_env("rtx", &[("LADDERD_STANDIN_NVENC_SESSIONS", "8")]);
    let out = ladderd()
        .args(["hwtest", "--max-channels", "1", "--json"])
        .arg(&json)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_no_violation("hwtest", &String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{table}\n{out:?}");
    assert!(table.starts_with("STAND-IN DRIVER"), "{table}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["ran_on_gpu"], false);
    assert!(
        v["stand_in"].as_str().unwrap().contains("stand-in"),
        "{v:#}"
    );
    let rows = v["rows"].as_array().unwrap();
    for row in rows {
        assert_ne!(row["pass"], false, "{row}\n{table}");
        assert!(
            row["result"].as_str().unwrap().starts_with("[stand-in"),
            "{row}"
        );
    }
    for check in [
        "kernel vs CPU scaler 360p30",
        "nvdec pictures = software decoder",
        "nvdec picture out in the same decode() call",
        "nvenc 360p30",
        "device->host bytes, full ladder",
        "1080p60 full-ladder channels in real time",
    ] {
        assert!(
            rows.iter().any(|r| r["check"] == check),
            "no {check} row:\n{table}"
        );
    }
    let passed = |check: &str| {
        rows.iter()
            .any(|r| r["check"] == check && r["pass"] == true)
    };
    assert!(passed("nvdec pictures = software decoder"), "{table}");
    assert!(passed("device->host bytes, full ladder"), "{table}");
}

/// A demo small enough for the stand-in to run in real time on two cores
/// (about half real time at 720p): 640x360 with two small rungs, 1 s segments.
const SMALL_GPU_DEMO: &str = "[demo]\nwidth = 640\nheight = 360\n\n\
[ladder]\nbackend = \"gpu\"\nsegment_secs = 1.0\n\n\
[[ladder.rungs]]\nname = \"360p30\"\nheight = 360\nfps = 30\nbitrate_kbps = 800\n\n\
[[ladder.rungs]]\nname = \"240p30\"\nheight = 240\nfps = 30\nbitrate_kbps = 400\n\n\
[hls]\nwindow_secs = 19.0\n";

/// The number of the next segment a media playlist will list (its media
/// sequence plus the segments it lists): grows as the playlist advances.
fn next_msn(playlist: &str) -> Option<u64> {
    let seq: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?
        .trim()
        .parse()
        .ok()?;
    Some(seq + playlist.matches("#EXTINF:").count() as u64)
}

/// `serve --demo` with `backend = "gpu"` (NVDEC → CUDA scale → NVENC on the
/// stand-in) plays in hls.js in Chromium with no stall, no error and no buffer
/// hole, and every rendition (source and both rungs) is switched to and plays.
#[test]
fn standin_gpu_demo_plays_in_hls_js_with_every_rung() {
    if !standin_usable() {
        return;
    }
    let _cpu = the_cpu_alone();
    let env = standin_env("rtx", &[]);
    let server = Server::start_env(SMALL_GPU_DEMO, &["--demo"], &env_refs(&env));
    server.wait_for(
        "the demo's three renditions",
        Duration::from_secs(60),
        || {
            let (status, body) = server.get("/live/demo/master.m3u8").ok()?;
            (status == 200 && body.matches(",RESOLUTION=").count() >= 3).then_some(())
        },
    );
    wait_metrics(&server, "both rungs encoding on NVENC", |m| {
        ["360p30", "240p30"]
            .iter()
            .all(|r| {
                metric(
                    m,
                    &format!("ladderd_frames_encoded_total{{stream=\"demo\",rung=\"{r}\"}}"),
                )
                .is_some_and(|n| n >= 30.0)
            })
            .then_some(())
    });
    let r = play_in_chromium(&server, "demo", "ll", "12", true);
    assert_eq!(r["levels"], 3, "{r:#}");
    let m = server.get("/metrics").unwrap().1;
    assert!(
        m.contains("ladderd_gpu_backend_info{backend=\"gpu\""),
        "{m}"
    );
    assert_eq!(metric(&m, "ladderd_gpu_nvenc_sessions"), Some(2.0), "{m}");
    assert_eq!(
        metric(&m, "ladderd_ladder_failures_total{stream=\"demo\"}"),
        Some(0.0),
        "{m}"
    );
    assert_no_violation("server", &server.log_text());
}

/// Two streams on the stand-in at once: the demo and an RTMP publish. The
/// second decoder the process creates (the publish's: it starts after the demo
/// is encoding) fails with out of memory: that error is logged once and
/// counted against `cam` alone, while the demo's rungs keep encoding and its
/// playlists keep advancing, with no error of its own.
#[test]
fn standin_failure_in_one_stream_leaves_the_other_playing() {
    if !standin_usable() {
        return;
    }
    let _cpu = the_cpu_alone();
    let env = standin_env(
        "rtx",
        &[
            ("LADDERD_STANDIN_FAIL", "cuvidCreateDecoder@2=2"),
            ("LADDERD_STANDIN_NVENC_SESSIONS", "3"),
        ],
    );
    let config = format!("{SMALL_GPU_DEMO}\n[ingest]\nallow_any_key = true\n");
    let server = Server::start_env(&config, &["--demo"], &env_refs(&env));
    let demo_series = "ladderd_frames_encoded_total{stream=\"demo\",rung=\"240p30\"}";
    wait_metrics(&server, "the demo encoding", |m| {
        metric(m, demo_series).filter(|n| *n >= 30.0)
    });
    let input = common::input_360p30_high();
    let _ff = common::push(&input.path, &server.rtmp_url("cam"), true);
    wait_metrics(&server, "cam's decoder failure counted", |m| {
        metric(m, "ladderd_decode_errors_total{stream=\"cam\"}").filter(|n| *n >= 1.0)
    });
    let demo_playlist = |r: &str| {
        server
            .get(&format!("/live/demo/{r}/playlist.m3u8"))
            .ok()
            .filter(|(s, _)| *s == 200)
            .and_then(|(_, b)| next_msn(&b))
    };
    let frames = wait_metrics(&server, "demo frames", |m| metric(m, demo_series));
    let msn: Vec<u64> = ["360p30", "240p30"]
        .iter()
        .map(|r| {
            server.wait_for("demo playlist", Duration::from_secs(30), || {
                demo_playlist(r)
            })
        })
        .collect();
    // The demo goes on: 60 more frames and two more segments on each rung.
    wait_metrics(&server, "the demo encoding on", |m| {
        metric(m, demo_series).filter(|n| *n >= frames + 60.0)
    });
    for (r, before) in ["360p30", "240p30"].iter().zip(msn) {
        server.wait_for(
            &format!("demo {r} playlist advancing"),
            Duration::from_secs(60),
            || demo_playlist(r).filter(|n| *n >= before + 2),
        );
    }
    // Not played in hls.js here: with two stand-in ladders, ffmpeg and Chromium
    // on 2 cores, hls.js once found a 43 ms hole in the demo's audio buffer (the
    // last two AAC frames before a segment boundary; issue 13 (a), still open).
    // `standin_gpu_demo_plays_in_hls_js_with_every_rung` plays the GPU demo.
    // cam itself goes on from its next keyframe (the third decoder creation
    // succeeds), its second rung on the CPU: the card's 3 NVENC sessions are
    // the demo's two and cam's first rung.
    for r in ["360p30", "240p30"] {
        let series = format!("ladderd_frames_encoded_total{{stream=\"cam\",rung=\"{r}\"}}");
        wait_metrics(&server, "cam encoding after its error", |m| {
            metric(m, &series).filter(|n| *n >= 30.0)
        });
    }
    let log = server.log_text();
    assert!(
        log.contains("injected 2 into cuvidCreateDecoder (call 2)"),
        "{log}"
    );
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("skipping to the next keyframe"))
        .collect();
    assert_eq!(errors.len(), 1, "logged once:\n{log}");
    assert!(
        errors[0].contains(r#"stream "cam": decode"#)
            && errors[0].contains("CUDA_ERROR_OUT_OF_MEMORY"),
        "{log}"
    );
    let capped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("NVENC unavailable for this rung"))
        .collect();
    assert_eq!(capped.len(), 1, "logged once:\n{log}");
    let m = server.get("/metrics").unwrap().1;
    assert_eq!(metric(&m, "ladderd_gpu_nvenc_sessions"), Some(3.0), "{m}");
    assert_eq!(
        metric(&m, "ladderd_gpu_nvenc_fallback_rungs_total"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "ladderd_decode_errors_total{stream=\"demo\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "ladderd_ladder_failures_total{stream=\"demo\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(server.get("/healthz").unwrap().0, 200);
    assert_no_violation("server", &log);
}
