//! Test inputs made once per target directory with ffmpeg (H.264 High with
//! B-frames, AAC/MP3/PCM audio, FLV for raw pushes), their packet counts, and
//! repeatable junk bytes for hostile-input tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::require;

/// Test inputs made by ffmpeg once per test binary, cached under target/.
pub struct Input {
    pub path: PathBuf,
    pub video_frames: u64,
    pub audio_frames: u64,
}

fn media_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("media");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 10 s of 1280x720@30 H.264 High with B-frames + AAC stereo 48 kHz.
pub fn input_720p30_high() -> &'static Input {
    static I: OnceLock<Input> = OnceLock::new();
    I.get_or_init(|| high_with_bframes("720p30-high-bf-aac-10s.mp4", "1280x720", "10"))
}

/// 10 s of 1920x1080@30 H.264 High with B-frames + AAC stereo 48 kHz.
pub fn input_1080p30_high() -> &'static Input {
    static I: OnceLock<Input> = OnceLock::new();
    I.get_or_init(|| high_with_bframes("1080p30-high-bf-aac-10s.mp4", "1920x1080", "10"))
}

/// The same at 640x360: a light ladder (one rung), for tests that run several
/// live ladders at once on 2 cores.
pub fn input_360p30_high() -> &'static Input {
    static I: OnceLock<Input> = OnceLock::new();
    I.get_or_init(|| high_with_bframes("360p30-high-bf-aac-10s.mp4", "640x360", "10"))
}

/// As [`input_360p30_high`], 40 s: a publish that must not loop while a
/// player watches. ffmpeg's `-stream_loop -1 -c copy` re-stamps each loop by
/// the file's longest track (the AAC audio, 10.005 s), so the video jumps
/// 5.3 ms at every loop: a publisher artifact, and the B-frame source
/// rendition then has a 5.3 ms presentation gap there that hls.js can stall
/// on when it switches levels across it (issue 30 note, session 18).
pub fn input_360p30_high_long() -> &'static Input {
    static I: OnceLock<Input> = OnceLock::new();
    I.get_or_init(|| high_with_bframes("360p30-high-bf-aac-40s.mp4", "640x360", "40"))
}

fn high_with_bframes(name: &str, size: &str, secs: &str) -> Input {
    let src = format!("testsrc2=size={size}:rate=30");
    make_input(
        name,
        &[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            secs,
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
            "128k",
            "-ac",
            "2",
        ],
    )
}

/// 8 s of 640x360@30 H.264 Main + MP3 audio (FLV allows it; ladderd re-encodes it as AAC).
pub fn input_mp3_audio() -> &'static Input {
    static I: OnceLock<Input> = OnceLock::new();
    I.get_or_init(|| input_with_audio("360p30-mp3-8s.mkv", "8", &["libmp3lame", "-b:a", "96k"]))
}

/// 4 s of 640x360@30 H.264 + 16-bit PCM audio (FLV sound format 3: refused).
pub fn input_pcm_audio() -> &'static Input {
    static I: OnceLock<Input> = OnceLock::new();
    I.get_or_init(|| input_with_audio("360p30-pcm-4s.mkv", "4", &["pcm_s16le"]))
}

/// 640x360@30 H.264 and a 440 Hz tone in the audio codec `audio` names.
fn input_with_audio(name: &str, secs: &str, audio: &[&str]) -> Input {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        secs,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "30",
        "-c:a",
    ];
    args.extend_from_slice(audio);
    make_input(name, &args)
}

/// Makes (once per target dir) `name` with ffmpeg `args`, counting its packets.
pub fn make_input(name: &str, args: &[&str]) -> Input {
    require("ffmpeg");
    let path = media_dir().join(name);
    if !path.exists() {
        // Unique temp name, then rename: test binaries run in parallel.
        let tmp = path.with_extension(format!(
            "tmp{}.{}",
            std::process::id(),
            path.extension().unwrap().to_str().unwrap()
        ));
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(args)
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(st.success(), "ffmpeg failed to make {name}");
        std::fs::rename(&tmp, &path).unwrap();
    }
    Input {
        video_frames: count_packets(&path, "v:0"),
        audio_frames: count_packets(&path, "a:0"),
        path,
    }
}

/// Packets ffprobe counts in one stream of a file.
pub fn count_packets(path: &Path, stream: &str) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe count of {stream} in {}: {:?}", path.display(), out))
}

/// `input_360p30_high` remuxed to FLV (for pushing tags with `RawClient`).
pub fn input_360p30_flv() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let input = input_360p30_high();
        let flv = media_dir().join("360p30-high-bf-aac-10s.flv");
        if !flv.exists() {
            let tmp = media_dir().join(format!("360p30-{}.flv.tmp", std::process::id()));
            let ok = Command::new("ffmpeg")
                .args(["-hide_banner", "-nostdin", "-v", "error", "-y", "-i"])
                .arg(&input.path)
                .args(["-c", "copy", "-f", "flv"])
                .arg(&tmp)
                .status()
                .unwrap();
            assert!(ok.success());
            std::fs::rename(&tmp, &flv).unwrap();
        }
        flv
    })
    .clone()
}

/// `n` pseudo-random bytes (xorshift64 from `seed`, which moves on):
/// repeatable junk for hostile-input tests.
pub fn noise(seed: &mut u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}
