//! The binary's command line, configuration errors, start-up failures and HTTP basics.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn ladderd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ladderd"))
}

fn write_config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

#[test]
fn bad_config_exits_2_and_names_the_key() {
    let cases = [
        (
            "[server]\nrtmp_listen = \"not-an-address\"\n",
            "server.rtmp_listen",
        ),
        ("[server]\nhttp_lisen = \"0.0.0.0:80\"\n", "http_lisen"),
        ("[limits]\nmax_streams = \"many\"\n", "limits.max_streams"),
        ("[limits]\npacket_queue = 1\n", "limits.packet_queue"),
        (
            "[[streams]]\nname = \"cam 1\"\nkey = \"0123456789\"\n",
            "streams[0].name",
        ),
        ("[runtime]\nio_cores = 0\n", "runtime.io_cores"),
    ];
    for (text, key) in cases {
        let (_d, path) = write_config(text);
        for args in [vec!["config", "check"], vec!["--config"]] {
            let mut cmd = ladderd();
            cmd.args(&args).arg(&path);
            if args[0] == "--config" {
                cmd.arg("serve");
            }
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?} {text:?}: {stderr}");
            assert!(
                stderr.contains(key),
                "{args:?}: error does not name {key}: {stderr}"
            );
        }
    }
}

#[test]
fn example_config_checks_ok() {
    let out = ladderd()
        .args([
            "config",
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/ladderd.example.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn probe_exits_0_and_reports_json() {
    let out = ladderd().args(["probe", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["cpus"].as_array().is_some_and(|c| !c.is_empty()));
    // scripts/test.sh installs nasm before building, so openh264 has its assembly.
    assert_eq!(v["codec_asm"], true, "built without nasm: {v:#}");
    assert!(v["gpu"]["driver"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(v["gpu"]["backend"].as_str().is_some());
    // scripts/test.sh installs libavcodec (ffmpeg's): the decoder `auto` takes.
    assert_eq!(v["libavcodec"]["available"], true, "{v:#}");
    assert!(
        v["libavcodec"]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("libavcodec 59.")),
        "{v:#}"
    );
    assert_eq!(v["libswscale"]["available"], true, "{v:#}");
    // ... and NVRTC on the loader path, so build.rs built the kernels' PTX in.
    // Issue 13 (c): whatever may be missing reads {available, detail, value},
    // never serde's {"Ok": …} / {"Err": …}.
    let nvrtc = &v["gpu"]["nvrtc"];
    assert!(nvrtc["available"].is_boolean(), "{v:#}");
    assert_eq!(
        nvrtc["available"] == true,
        nvrtc["value"].is_string(),
        "{v:#}"
    );
    assert_eq!(
        nvrtc["available"] == false,
        nvrtc["detail"].is_string(),
        "{v:#}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("\"Ok\"") && !text.contains("\"Err\""),
        "{text}"
    );
    if std::env::var("LADDERD_REQUIRE_NVRTC").is_ok() {
        assert_eq!(v["gpu"]["kernels_built_in"], true, "{v:#}");
        assert!(
            v["gpu"]["nvrtc"]["value"]
                .as_str()
                .is_some_and(|s| s.starts_with("12.")),
            "{v:#}"
        );
    }
}

#[test]
fn memlock_too_low_exits_with_what_to_raise() {
    // glommio needs at least 512 KiB of locked memory per executor to start.
    let (http, rtmp, srt) = (free_port(), free_port(), free_port());
    let script = format!(
        "ulimit -l 64 && exec {} --rtmp-listen 127.0.0.1:{rtmp} --http-listen 127.0.0.1:{http} --srt-listen 127.0.0.1:{srt}",
        env!("CARGO_BIN_EXE_ladderd")
    );
    let t = Instant::now();
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("LimitMEMLOCK"), "{stderr}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    // Without SO_REUSEPORT on the first socket, the second bind fails.
    let out = ladderd()
        .args([
            "--rtmp-listen",
            &addr.to_string(),
            "--http-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&addr.to_string()) && stderr.contains("RTMP"),
        "{stderr}"
    );
}

#[test]
fn http_answers_over_http1_and_h2c() {
    let server = Server::start("");
    let (status, body) = server.get("/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(server.get("/nope").unwrap().0, 404);
    assert_eq!(server.get("/api/v1/streams/absent").unwrap().0, 404);
    assert_eq!(
        server.json("/api/v1/streams")["streams"],
        serde_json::json!([])
    );
    let out = Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg(format!("http://{}/healthz", server.http))
        .output()
        .expect("curl is installed by scripts/test.sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
}

#[test]
fn transcode_reports_a_missing_or_wrong_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = ladderd()
        .args(["transcode", "/nonexistent.flv", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.flv"));
    let gif = dir.path().join("x.flv");
    std::fs::write(&gif, b"GIF89a not a video at all").unwrap();
    let out = ladderd()
        .arg("transcode")
        .arg(&gif)
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not an FLV file"), "{stderr}");
}

#[test]
fn bench_ladder_reports_both_sides_and_a_ratio() {
    require("ffmpeg");
    let out = ladderd()
        .args([
            "bench",
            "ladder",
            "--input",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/tiny-720p30-high.flv"
            ),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Like for like when built with x264: ffmpeg's encoder on both sides.
    let ours = if cfg!(feature = "x264") {
        "+ x264 ultrafast encode"
    } else {
        "+ openh264 encode"
    };
    assert!(
        stdout.contains("ffmpeg split+scale") && stdout.contains(ours),
        "{stdout}"
    );
    assert!(stdout.contains("ratio ladderd / best ffmpeg:"), "{stdout}");
    assert!(stdout.contains("its own threading"), "{stdout}");
    // ladderd's CPU by stage, and its run with openh264 decoding beside it
    // (where the box has libavcodec, which `auto` takes).
    assert!(
        stdout.contains("CPU per picture: decode ") && stdout.contains(" ms, scale "),
        "{stdout}"
    );
    assert!(stdout.contains("ladderd libavcodec 59."), "{stdout}");
    assert!(
        stdout.contains("openh264 decode + fast_image_resize (before)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[\"720p30\", \"480p30\", \"360p30\"]"),
        "{stdout}"
    );
}

/// `bench channels` runs ffmpeg's side too (one process per channel, same
/// rungs) in the same run and prints both counts and their ratio.
#[test]
fn bench_channels_counts_ffmpeg_too() {
    require("ffmpeg");
    let out = ladderd()
        .args(["bench", "channels", "--max", "1", "--input"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/tiny-720p30-high.flv"
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ffmpeg, 1 process(es): slowest"),
        "{stdout}"
    );
    assert!(stdout.contains("  1 channel(s): slowest"), "{stdout}");
    assert!(
        stdout.contains("channels held in real time: ladderd "),
        "{stdout}"
    );
    assert!(
        stdout.contains(", ffmpeg ") && stdout.contains("x\n"),
        "{stdout}"
    );
}

#[test]
fn stalled_http_client_is_closed_after_the_idle_timeout() {
    use std::io::{Read, Write};
    let server = Server::start("[server]\nhttp_idle_timeout_secs = 1.0\n");
    let mut slow = std::net::TcpStream::connect(server.http).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap(); // headers never finished
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 256];
    let closed = matches!(slow.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "server answered a half-sent request");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "not closed by the idle timeout ({:?})",
        t.elapsed()
    );
    // Others are served meanwhile and after.
    assert_eq!(server.get("/healthz").unwrap().0, 200);
}
