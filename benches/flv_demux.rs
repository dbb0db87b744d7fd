//! FLV demux throughput: ladderd's sans-IO demuxer vs ffmpeg demuxing the same
//! file (`-c copy -f null`), measured in the same run. Prints MB/s and the ratio.
//!
//! Run: `cargo bench --bench flv_demux`. Needs ffmpeg (scripts/test.sh installs it).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ladderd::media::flv::{Demuxed, Demuxer, FileTags};

fn main() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let input = dir.join("bench-1080p30-8mbps-30s.flv");
    if !input.exists() {
        let ok = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1920x1080:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine=sample_rate=48000",
                "-t",
                "30",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-b:v",
                "8M",
                "-bf",
                "0",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
            ])
            .arg(&input)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ffmpeg could not make the bench input");
    }
    let size = std::fs::metadata(&input).unwrap().len() as f64 / 1e6;

    let ffmpeg = best_of(5, || {
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&input)
            .args(["-map", "0", "-c", "copy", "-f", "null", "-"])
            .status()
            .unwrap();
        assert!(st.success());
    });
    let mut packets = 0;
    let ours = best_of(5, || {
        let data = Bytes::from(std::fs::read(&input).unwrap());
        let mut d = Demuxer::new(1);
        let now = Instant::now();
        packets = 0;
        for tag in FileTags::new(data).unwrap() {
            let tag = tag.unwrap();
            let out = match tag.kind {
                8 => d.push_audio(tag.timestamp_ms, &tag.body, now),
                9 => d.push_video(tag.timestamp_ms, &tag.body, now),
                _ => continue,
            };
            if let Ok(Demuxed::Packet(_)) = out {
                packets += 1;
            }
        }
    });
    println!("flv demux, {size:.1} MB, {packets} packets (best of 5)");
    println!(
        "  ffmpeg -c copy -f null : {:>9.1} MB/s  ({:?})",
        size / ffmpeg.as_secs_f64(),
        ffmpeg
    );
    println!(
        "  ladderd Demuxer        : {:>9.1} MB/s  ({:?})",
        size / ours.as_secs_f64(),
        ours
    );
    println!(
        "  ratio ladderd/ffmpeg   : {:>9.1}x",
        ffmpeg.as_secs_f64() / ours.as_secs_f64()
    );
}

fn best_of(n: usize, mut f: impl FnMut()) -> Duration {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}
