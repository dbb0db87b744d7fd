//! Real publishers: ffmpeg pushing a file over RTMP, and srt-live-transmit
//! relaying ffmpeg's MPEG-TS over SRT.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_udp_port, require, Proc};

/// ffmpeg pushing a file to `url` in real time (`-re`), copying its codecs.
/// `looped`: repeat forever (until dropped).
pub fn push(input: &Path, url: &str, looped: bool) -> Proc {
    push_args(input, url, looped, &["-c", "copy"])
}

pub fn push_args(input: &Path, url: &str, looped: bool, codec_args: &[&str]) -> Proc {
    require("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-re"]);
    if looped {
        cmd.args(["-stream_loop", "-1"]);
    }
    cmd.arg("-i")
        .arg(input)
        .args(codec_args)
        .args(["-f", "flv", url]);
    Proc(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// srt-live-transmit (srt-tools) relaying into `url` the MPEG-TS that ffmpeg
/// sends it over UDP from `input`, looped in real time, codecs copied: (relay, ffmpeg).
pub fn srt_live_transmit_push(input: &Path, url: &str) -> (Proc, Proc) {
    require("srt-live-transmit");
    require("ffmpeg");
    let udp = free_udp_port();
    let relay = Proc(
        Command::new("srt-live-transmit")
            .arg("-q")
            .arg(format!("udp://127.0.0.1:{udp}"))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The relay listens on UDP before ffmpeg sends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !udp_bound(udp) {
        assert!(
            Instant::now() < deadline,
            "srt-live-transmit did not bind UDP port {udp}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ffmpeg = Proc(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-re"])
            .args(["-stream_loop", "-1", "-i"])
            .arg(input)
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(format!("udp://127.0.0.1:{udp}?pkt_size=1316"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (relay, ffmpeg)
}

/// Whether a UDP socket is bound to `port` on this machine (`/proc/net/udp`,
/// `udp6`: the local address's port, in hex).
fn udp_bound(port: u16) -> bool {
    let hex = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|local| local.ends_with(&hex))
            })
    })
}
