//! Issue 30: a publisher that pauses with the slate off (`slate_after_ms =
//! 0`). Every rung carries every picture sent, promptly, while the input is
//! silent (the decoder's reorder delay used to keep the last few inside it
//! until the next packets came), and goes on correctly when it is back.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use ladderd::media::flv::FileTags;

/// No slate, no reconnect window (the end of the publish ends the
/// renditions), no lag policy (a loaded machine must not drop frames), an
/// idle publisher kept.
const CONFIG: &str = "[ingest]\nallow_any_key = true\ndecoder_drain_after_ms = 250\nslate_after_ms = 0\nreconnect_window_secs = 0\n\n[ladder]\nmax_lag_secs = 60.0\n\n[limits]\nrtmp_idle_timeout_secs = 60.0\n";

struct Tag {
    ts: u32,
    kind: u8,
    body: Vec<u8>,
}

/// An AVC NALU tag's (pts in ms, keyframe): its timestamp plus the
/// composition offset (signed 24 bits after the packet type).
fn video_pts(t: &Tag) -> Option<(i64, bool)> {
    if t.kind != 9 || t.body.len() < 5 || t.body[1] != 1 {
        return None;
    }
    let cts = i32::from_be_bytes([0, t.body[2], t.body[3], t.body[4]]) << 8 >> 8;
    Some((t.ts as i64 + cts as i64, t.body[0] >> 4 == 1))
}

/// Sends `tags` at their real-time pace, `zero` being the time of ts 0.
fn send(client: &mut RawClient, tags: &[Tag], zero: Instant) {
    for t in tags {
        if let Some(wait) = Duration::from_millis(t.ts as u64).checked_sub(zero.elapsed()) {
            std::thread::sleep(wait);
        }
        match t.kind {
            9 => client.video(&t.body, t.ts).unwrap(),
            8 => client.audio(&t.body, t.ts).unwrap(),
            _ => {}
        }
    }
}

/// The video renditions' media playlists the master lists.
fn video_renditions(server: &Server, name: &str) -> Vec<String> {
    let master = server
        .get(&format!("/live/{name}/master.m3u8"))
        .map(|r| r.1)
        .unwrap_or_default();
    master
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty() && !l.starts_with("audio/"))
        .map(|l| format!("/live/{name}/{l}"))
        .collect()
}

/// The part a rendition's playlist hints (`EXT-X-PRELOAD-HINT`).
fn hinted_part(server: &Server, playlist: &str) -> Option<String> {
    let text = server.get(playlist).ok()?.1;
    let dir = &playlist[..playlist.rfind('/')? + 1];
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))?
        .split('"')
        .next()?;
    Some(format!("{dir}{hint}"))
}

/// What a low-latency player has of a rendition (seconds from its first
/// segment's start): the parts its playlist lists, and what its request for
/// the hinted part, made before the pause, has had streamed chunk by chunk
/// as frames were placed (`chunked_parts`).
fn delivered_span(server: &Server, playlist: &str, streamed: &[u8]) -> Option<f64> {
    let text = server.get(playlist).ok()?.1;
    let dir = &playlist[..playlist.rfind('/')? + 1];
    let init = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))?
        .split('"')
        .next()?;
    let timescale = init_timescale(&server.get_bytes(&format!("{dir}{init}"))) as f64;
    let start = segment_times(server, playlist).first()?.tfdt;
    let listed = text.lines().rev().find_map(|l| {
        if let Some(rest) = l.strip_prefix("#EXT-X-PART:") {
            return Some(rest.split_once("URI=\"")?.1.split('"').next()?.to_string());
        }
        (!l.starts_with('#') && !l.is_empty()).then(|| l.to_string())
    })?;
    let end = |frag: &[u8]| fragment_times(frag).last().map(|(t, d)| t + d);
    let listed = end(&server.get_bytes(&format!("{dir}{listed}")));
    let end = listed.max(end(streamed))?;
    Some((end - start) as f64 / timescale)
}

/// A GET of a part, read until it ends or `until`: its body so far (whole
/// chunks of a chunked transfer) and whether it ended cleanly (the part was
/// complete). A part being written comes chunk by chunk as its frames are
/// placed.
fn part_until(addr: std::net::SocketAddr, path: &str, until: Instant) -> (Vec<u8>, bool) {
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    write!(
        sock,
        "GET {path} HTTP/1.1\r\nHost: ladderd\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let (mut raw, mut buf, mut ended) = (Vec::new(), [0u8; 65536], false);
    while Instant::now() < until {
        match sock.read(&mut buf) {
            Ok(0) => {
                ended = true;
                break;
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (Vec::new(), false);
    };
    let head = String::from_utf8_lossy(&raw[..at]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return (Vec::new(), false);
    }
    let mut rest = &raw[at + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return (rest.to_vec(), ended);
    }
    let mut body = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok());
        match size {
            Some(0) => return (body, ended),
            Some(n) if rest.len() >= eol + 2 + n => {
                body.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
                rest = &rest[(eol + 4 + n).min(rest.len())..];
            }
            _ => break,
        }
    }
    (body, false)
}

/// A low-latency player on one rendition for `secs`: it waits on the hinted
/// part, and on the next one's hint when that one completes. Returns what
/// it has of the part still being written when the time is up.
fn follow(server: &Server, playlist: &str, secs: u64) -> Vec<u8> {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        let Some(part) = hinted_part(server, playlist) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let (body, complete) = part_until(server.http, &part, until);
        if !complete {
            return body;
        }
    }
    Vec::new()
}

/// A rendition as a player decodes it: its init and every segment,
/// decoded by ffmpeg (which must report nothing), and each picture's pts in
/// seconds, in the order they come out.
fn decoded_pts(server: &Server, playlist: &str, file: &Path) -> Vec<f64> {
    let text = server.get(playlist).unwrap().1;
    let dir = &playlist[..playlist.rfind('/').unwrap() + 1];
    let init = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|r| r.split('"').next())
        .unwrap();
    let mut bytes = server.get_bytes(&format!("{dir}{init}"));
    for seg in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        bytes.extend(server.get_bytes(&format!("{dir}{seg}")));
    }
    std::fs::write(file, &bytes).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{playlist}: {err}"
    );
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Issue 30: with the slate off, a publisher that stops sending (still
/// connected) left the pictures its decoder held for reordering (B-frames)
/// out of every rung until it sent again. Now every rung encodes every
/// picture sent within moments of the pause, every rendition's published
/// media ends where the source rendition's does, and when the publisher goes
/// on every rendition decodes cleanly with each picture once, in order.
#[test]
fn a_silent_publisher_leaves_no_picture_inside_the_ladder() {
    require("ffprobe");
    let input = input_360p30_high();
    let tags: Vec<Tag> = FileTags::new(Bytes::from(std::fs::read(input_360p30_flv()).unwrap()))
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            Tag {
                ts: t.timestamp_ms,
                kind: t.kind,
                body: t.body.to_vec(),
            }
        })
        .collect();
    // (tag index, pts ms, keyframe) of each picture.
    let video: Vec<(usize, i64, bool)> = tags
        .iter()
        .enumerate()
        .filter_map(|(i, t)| video_pts(t).map(|(pts, key)| (i, pts, key)))
        .collect();
    assert_eq!(video.len() as u64, input.video_frames);
    // The pause: mid-GOP after the first segment (2 s: the master lists
    // the renditions once one is complete), between mini-GOPs (every
    // picture sent shows before every picture to come, so nothing sent
    // after it is to be dropped).
    let sent = (75..video.len())
        .find(|&k| {
            let before = video[..k].iter().map(|v| v.1).max().unwrap();
            let after = video[k..].iter().map(|v| v.1).min().unwrap();
            !video[k].2 && before < after
        })
        .expect("a pause point between mini-GOPs");
    let cut = video[sent].0;
    println!(
        "pausing after {sent} pictures (tag {cut}, {} ms)",
        tags[cut].ts
    );

    let server = Server::start(CONFIG);
    let mut client = RawClient::publish(server.rtmp, "paused");
    let zero = Instant::now();
    // Up to 2.2 s (the first segment out), then low-latency players wait
    // on each rendition's hinted part, as hls.js does, while the last
    // pictures go out and for 4 s of the pause.
    let early = tags.iter().position(|t| t.ts >= 2200).unwrap().min(cut);
    send(&mut client, &tags[..early], zero);
    let renditions = server.wait_for("the master", Duration::from_secs(10), || {
        let r = video_renditions(&server, "paused");
        (r.len() >= 2).then_some(r)
    });
    let streamed: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let players: Vec<_> = renditions
            .iter()
            .map(|r| {
                let server = &server;
                scope.spawn(move || follow(server, r, 4))
            })
            .collect();
        send(&mut client, &tags[early..cut], zero);
        let paused = Instant::now();

        // Silent: every rung encodes every picture sent.
        let deadline = paused + Duration::from_secs(10);
        loop {
            let live = server.live("paused").expect("the stream is live");
            let rungs = live["pipeline"]["rungs"].as_array().unwrap().clone();
            let frames: Vec<u64> = rungs
                .iter()
                .map(|r| r["frames"].as_u64().unwrap())
                .collect();
            if !frames.is_empty() && frames.iter().all(|&f| f == sent as u64) {
                println!(
                    "every rung at {sent} pictures {:.2} s into the pause",
                    paused.elapsed().as_secs_f64()
                );
                assert_eq!(live["pipeline"]["decoder_drains"], 1, "{live:#}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rungs stop short of the {sent} pictures sent, 10 s into the pause: {frames:?}\n{:#}",
                live["pipeline"]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        players.into_iter().map(|p| p.join().unwrap()).collect()
    });
    assert_eq!(
        server.metric("ladderd_decoder_drains_total", &["stream=\"paused\""]),
        1.0
    );
    // And what a low-latency player gets of every rendition reaches the
    // last picture sent (each rendition's latest frame waits for the next
    // one, whose time gives its duration): a rung's up to the last
    // picture's pts, the source's (frames in decode order) up to the last
    // one's dts.
    let first_pts = video.iter().map(|v| v.1).min().unwrap();
    let last_pts = video[..sent].iter().map(|v| v.1).max().unwrap();
    let dts = |k: usize| tags[video[k].0].ts as i64;
    let want: Vec<f64> = renditions
        .iter()
        .map(|r| {
            let ms = if r.contains("/source/") {
                dts(sent - 1) - dts(0)
            } else {
                last_pts - first_pts
            };
            ms as f64 / 1000.0
        })
        .collect();
    let spans: Vec<Option<f64>> = renditions
        .iter()
        .zip(&streamed)
        .map(|(r, s)| delivered_span(&server, r, s))
        .collect();
    println!("{renditions:?}: media {spans:?} s, {want:?} sent");
    for ((r, s), w) in renditions.iter().zip(&spans).zip(&want) {
        assert!(
            s.is_some_and(|s| (s - w).abs() < 0.002),
            "{r}: a player has {s:?} s 4 s into the pause, {w} s sent"
        );
    }

    // Back: the rest, paced from where it stopped, then the end of the publish.
    let zero = Instant::now() - Duration::from_millis(tags[cut].ts as u64);
    send(&mut client, &tags[cut..], zero);
    drop(client);
    let session = server.session("paused", 1, Duration::from_secs(20));
    let p = &session["pipeline"];
    println!("{p:#}");
    assert_eq!(p["dropped_late"], 0, "{p:#}");
    assert_eq!(p["frames_decoded"], input.video_frames, "{p:#}");
    for r in p["rungs"].as_array().unwrap() {
        assert_eq!(r["frames"], input.video_frames, "{r:#}");
        assert_eq!(r["dropped_drain"], 0, "{r:#}");
        assert_eq!(r["dropped_behind"], 0, "{r:#}");
    }

    // Every rendition as a player gets it: each picture once, in order.
    server.wait_for("the renditions to end", Duration::from_secs(15), || {
        renditions
            .iter()
            .all(|r| server.get(r).is_ok_and(|t| t.1.contains("#EXT-X-ENDLIST")))
            .then_some(())
    });
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for (i, r) in renditions.iter().enumerate() {
        let pts = decoded_pts(&server, r, &dir.path().join(format!("r{i}.mp4")));
        assert_eq!(pts.len() as u64, input.video_frames, "{r}");
        assert!(
            pts.windows(2).all(|w| w[0] < w[1]),
            "{r}: pts out of order or twice: {pts:?}"
        );
        all.push((r, pts));
    }
    // The same pictures in every rendition (times from each one's first:
    // a rendition with B-frames may start its presentation later).
    let (first, want) = &all[0];
    for (r, pts) in &all[1..] {
        for (a, b) in pts.iter().zip(want) {
            let (a, b) = (a - pts[0], b - want[0]);
            assert!((a - b).abs() < 0.002, "{r} at {a} s, {first} at {b} s");
        }
    }
}
