//! `ladderd transcode` on inputs made by ffmpeg: every rendition is a CMAF
//! file that ffmpeg decodes without a complaint; every rung checked by ffprobe
//! (size, frame count, keyframe positions), bitrate against target, and Y-PSNR
//! against ffmpeg's own bilinear scale of the source.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;

struct Source {
    path: PathBuf,
    fps: f64,
    frames: u64,
    audio_frames: u64,
}

fn make(name: &str, size: &str, fps: u32, profile: &[&str]) -> Source {
    require("ffmpeg");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("media");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    if !path.exists() {
        let tmp = dir.join(format!("{}.{}.tmp.flv", name, std::process::id()));
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={size}:rate={fps}"))
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=330:sample_rate=44100",
                "-t",
                "4",
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g",
            ])
            .arg((fps * 2).to_string())
            .args(profile)
            .args(["-c:a", "aac", "-b:a", "96k"])
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::rename(&tmp, &path).unwrap();
    }
    Source {
        frames: count_packets(&path, "v:0"),
        audio_frames: count_packets(&path, "a:0"),
        path,
        fps: fps as f64,
    }
}

fn src_1080p30_high_b() -> &'static Source {
    static S: OnceLock<Source> = OnceLock::new();
    S.get_or_init(|| {
        make(
            "t-1080p30-high-b.flv",
            "1920x1080",
            30,
            &["-profile:v", "high", "-bf", "3"],
        )
    })
}
fn src_1080p60_main() -> &'static Source {
    static S: OnceLock<Source> = OnceLock::new();
    S.get_or_init(|| {
        make(
            "t-1080p60-main.flv",
            "1920x1080",
            60,
            &["-profile:v", "main"],
        )
    })
}
fn src_720p30_baseline() -> &'static Source {
    static S: OnceLock<Source> = OnceLock::new();
    S.get_or_init(|| {
        make(
            "t-720p30-baseline.flv",
            "1280x720",
            30,
            &["-profile:v", "baseline"],
        )
    })
}

struct RungOut {
    name: String,
    path: PathBuf,
    width: u64,
    height: u64,
    frames: u64,
    keyframes: Vec<u64>,
}

fn probe(path: &Path) -> (u64, u64, u64, Vec<u64>) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text.trim().split(',').map(|x| x.parse().unwrap()).collect();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_frames",
            "-show_entries",
            "frame=key_frame",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    // One line per frame ("0"/"1" first); side data (x264's SEI) adds lines.
    let keys = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| match l.split(',').next().map(str::trim) {
            Some("0") => Some(false),
            Some("1") => Some(true),
            _ => None,
        })
        .enumerate()
        .filter(|(_, key)| *key)
        .map(|(i, _)| i as u64)
        .collect();
    (v[0], v[1], v[2], keys)
}

/// ffmpeg's decode of a whole file: nothing on stderr when it is good.
fn decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{}: {err}",
        path.display()
    );
}

/// `ladderd transcode INPUT --out OUT ARGS…`, which must succeed; its stdout.
fn run_transcode(input: &Path, out: &Path, args: &[&str]) -> String {
    let run = Command::new(env!("CARGO_BIN_EXE_ladderd"))
        .arg("transcode")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "transcode failed: {stderr}");
    // Issue 13 (d): codec libraries log through `tracing` (with the rung), never raw
    // lines like `[OpenH264] this = 0x…, Warning: …` on stderr.
    assert!(
        !stderr.contains("[OpenH264]"),
        "codec library wrote to stderr outside the log: {stderr}"
    );
    String::from_utf8_lossy(&run.stdout).to_string()
}

fn transcode(src: &Source, args: &[&str]) -> (tempfile::TempDir, Vec<RungOut>, String) {
    let dir = tempfile::tempdir().unwrap();
    let stdout = run_transcode(&src.path, dir.path(), args);
    let mut rungs = Vec::new();
    for line in stdout.lines().skip(2) {
        let name = line.split_whitespace().next().unwrap().to_string();
        if name.ends_with(':') || name == "latency" {
            continue;
        }
        let path = dir.path().join(format!("{name}.mp4"));
        decodes_cleanly(&path);
        let (width, height, frames, keyframes) = probe(&path);
        rungs.push(RungOut {
            name,
            path,
            width,
            height,
            frames,
            keyframes,
        });
    }
    (dir, rungs, stdout)
}

/// Y-PSNR of a rung against ffmpeg's bilinear scale of the source (every
/// `step`-th source frame), matched frame by frame.
fn y_psnr(rung: &RungOut, src: &Source, step: u64) -> f64 {
    let filter = format!(
        "[0:v]setpts=N/TB[a];[1:v]select='not(mod(n\\,{step}))',setpts=N/TB,scale={}:{}:flags=bilinear[b];[a][b]psnr",
        rung.width, rung.height
    );
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(&rung.path)
        .arg("-i")
        .arg(&src.path)
        .args(["-filter_complex", &filter, "-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("PSNR y:"))
        .unwrap_or_else(|| panic!("no PSNR line: {err}"));
    line.split("y:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn check_ladder(src: &Source, expect: &[(&str, u64, u64, u64)]) {
    check_ladder_with(src, expect, &[]);
}

fn check_ladder_with(src: &Source, expect: &[(&str, u64, u64, u64)], args: &[&str]) {
    let (dir, rungs, summary) = transcode(src, args);
    println!("{summary}");
    let names: Vec<&str> = rungs.iter().map(|r| r.name.as_str()).collect();
    let want: Vec<&str> = expect.iter().map(|e| e.0).collect();
    assert_eq!(names, want, "rungs for this source");
    let mut key_times: Option<Vec<u64>> = None;
    for (r, (name, w, h, step)) in rungs.iter().zip(expect) {
        assert_eq!((r.width, r.height), (*w, *h), "{name} size");
        assert_eq!(r.frames, src.frames / step, "{name} frame count");
        // Keyframes as source frame indices: identical on every rung.
        let times: Vec<u64> = r.keyframes.iter().map(|k| k * step).collect();
        assert!(
            times.len() >= 2,
            "{name}: expected an IDR per 2 s segment, got {times:?}"
        );
        match &key_times {
            None => key_times = Some(times),
            Some(t) => assert_eq!(&times, t, "{name} keyframes not aligned"),
        }
        let target_kbps: f64 = summary
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(6))
            .unwrap()
            .parse()
            .unwrap();
        let bytes = std::fs::metadata(&r.path).unwrap().len() as f64;
        let kbps = bytes * 8.0 / (src.frames as f64 / src.fps) / 1000.0;
        assert!(
            (kbps / target_kbps - 1.0).abs() <= 0.15,
            "{name}: {kbps:.0} kbit/s vs target {target_kbps}"
        );
        let psnr = y_psnr(r, src, *step);
        println!("{name}: {kbps:.0} kbit/s (target {target_kbps}), Y-PSNR {psnr:.2} dB");
        assert!(psnr >= 35.0, "{name}: Y-PSNR {psnr:.2} dB < 35");
    }
    let audio = dir.path().join("audio.mp4");
    decodes_cleanly(&audio);
    assert_eq!(
        count_packets(&audio, "a:0"),
        src.audio_frames,
        "audio passthrough frame count"
    );
    // The passthrough rendition: the source's frames, repackaged.
    let source = dir.path().join("source.mp4");
    decodes_cleanly(&source);
    assert_eq!(
        count_packets(&source, "v:0"),
        src.frames,
        "source rendition"
    );
}

#[test]
fn ladder_from_1080p30_high_with_bframes() {
    check_ladder(
        src_1080p30_high_b(),
        &[
            ("1080p30", 1920, 1080, 1),
            ("720p30", 1280, 720, 1),
            ("480p30", 854, 480, 1),
            ("360p30", 640, 360, 1),
        ],
    );
}

#[test]
fn ladder_from_1080p60_main_has_60_and_30_fps_rungs() {
    check_ladder(
        src_1080p60_main(),
        &[
            ("1080p60", 1920, 1080, 1),
            ("1080p30", 1920, 1080, 2),
            ("720p30", 1280, 720, 2),
            ("480p30", 854, 480, 2),
            ("360p30", 640, 360, 2),
        ],
    );
}

#[test]
fn ladder_from_720p30_baseline_has_no_1080p_rungs() {
    check_ladder(
        src_720p30_baseline(),
        &[
            ("720p30", 1280, 720, 1),
            ("480p30", 854, 480, 1),
            ("360p30", 640, 360, 1),
        ],
    );
}

/// The `x264` feature: the same ladder checks with libx264 as the encoder.
#[cfg(feature = "x264")]
#[test]
fn x264_ladder_from_1080p30_high_with_bframes() {
    check_ladder_with(
        src_1080p30_high_b(),
        &[
            ("1080p30", 1920, 1080, 1),
            ("720p30", 1280, 720, 1),
            ("480p30", 854, 480, 1),
            ("360p30", 640, 360, 1),
        ],
        &["--encoder", "x264", "--x264-preset", "veryfast"],
    );
}

/// ffmpeg writes OUT from a 640x360@30 test pattern and ARGS (more inputs,
/// codecs, format).
fn make_360p30(out: &Path, args: &[&str]) {
    require("ffmpeg");
    let st = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
        ])
        .args(args)
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg could not make {}", out.display());
}

/// Raw Annex-B input (no container, no timestamps): every frame comes out,
/// IDRs on the segment boundaries.
#[test]
fn raw_annexb_input() {
    require("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let es = dir.path().join("in.h264");
    make_360p30(
        &es,
        &[
            "-t", "4", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "60",
            "-pix_fmt", "yuv420p", "-f", "h264",
        ],
    );
    let out = dir.path().join("out");
    run_transcode(&es, &out, &[]);
    let (w, h, frames, keys) = probe(&out.join("360p30.mp4"));
    assert_eq!((w, h, frames), (640, 360, 120));
    assert_eq!(keys, vec![0, 60]);
}

/// MP3 audio in the FLV: re-encoded as AAC, as long as the source's audio.
#[test]
fn mp3_audio_comes_out_as_aac() {
    require("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("in.flv");
    make_360p30(
        &flv,
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
            "-ac",
            "2",
        ],
    );
    let out = dir.path().join("out");
    run_transcode(&flv, &out, &[]);
    let audio = out.join("audio.mp4");
    decodes_cleanly(&audio);
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,sample_rate,channels:format=start_time,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&audio)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap_or_default(), "aac,48000,2", "{text}");
    // Decode times start 2 s in (the packager's slack for B-frames).
    let times: Vec<f64> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    let secs = times[1] - times[0];
    assert!(
        (secs - 4.0).abs() < 0.15,
        "audio lasts {secs} s, source 4 s"
    );
}
