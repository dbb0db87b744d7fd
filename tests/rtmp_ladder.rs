//! The live ladder behind RTMP ingest: rungs in the API, frame accounting, and
//! recovery from a corrupted packet without disturbing another stream.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use ladderd::media::flv::FileTags;

const CONFIG: &str = "[[streams]]\nname = \"cam1\"\nkey = \"key-one-secret\"\n\n[[streams]]\nname = \"cam2\"\nkey = \"key-two-secret\"\n";

fn rung_names(stream: &serde_json::Value) -> Vec<String> {
    stream["pipeline"]["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn rtmp_push_runs_the_ladder_and_accounts_every_frame() {
    let input = input_720p30_high();
    let server = Server::start(CONFIG);
    let mut ff = push(
        &input.path,
        &server.rtmp_url("cam1?key=key-one-secret"),
        false,
    );
    let live = server.wait_for("rungs producing frames", Duration::from_secs(15), || {
        server.live("cam1").filter(|s| {
            s["pipeline"]["rungs"].as_array().is_some_and(|r| {
                !r.is_empty() && r.iter().all(|r| r["frames"].as_u64().unwrap_or(0) > 0)
            })
        })
    });
    assert_eq!(
        rung_names(&live),
        ["720p30", "480p30", "360p30"],
        "a 720p30 source gets no 1080p rungs"
    );
    let r0 = &live["pipeline"]["rungs"][0];
    assert_eq!(
        (r0["width"].as_u64(), r0["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert!(r0.get("output_fps").is_some() && r0.get("dropped").is_some());

    assert!(ff
        .wait_timeout(Duration::from_secs(30))
        .expect("push finished")
        .success());
    let s = server.session("cam1", 1, Duration::from_secs(30));
    let p = &s["pipeline"];
    println!("{p:#}");
    assert_eq!(p["decode_errors"], 0);
    // Decode once: every source frame decoded exactly once, unless dropped for lag.
    let dropped = p["dropped_late"].as_u64().unwrap();
    assert_eq!(
        p["frames_decoded"].as_u64().unwrap() + dropped,
        input.video_frames
    );
    for r in p["rungs"].as_array().unwrap() {
        // Frame-accurate: output + dropped = input, and one IDR per 2 s segment.
        assert_eq!(
            r["frames"].as_u64().unwrap() + r["dropped"].as_u64().unwrap(),
            input.video_frames,
            "{r:#}"
        );
        if dropped == 0 {
            assert_eq!(r["keyframes"], 5, "10 s at 2 s segments: {r:#}");
        }
    }
}

/// Publishes the tags of an FLV file over RTMP, paced by their timestamps, with
/// the slice bytes of video tag `corrupt` overwritten.
fn publish_flv(server: &Server, name: &str, flv: &std::path::Path, corrupt: usize) {
    let data = Bytes::from(std::fs::read(flv).unwrap());
    let mut client = RawClient::publish(server.rtmp, name);
    let start = Instant::now();
    let mut video_index = 0;
    for tag in FileTags::new(data).unwrap() {
        let tag = tag.unwrap();
        let due = Duration::from_millis(tag.timestamp_ms as u64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        match tag.kind {
            9 => {
                let mut body = tag.body.to_vec();
                // AVC NALU tag: 5-byte tag header, 4-byte length, NAL header, slice.
                if video_index == corrupt && body.len() > 20 && body[1] == 1 {
                    for b in body.iter_mut().skip(10) {
                        *b = 0xff;
                    }
                }
                if body[1] == 1 {
                    video_index += 1;
                }
                client.video(&body, tag.timestamp_ms).unwrap();
            }
            8 => client.audio(&tag.body, tag.timestamp_ms).unwrap(),
            _ => {}
        }
    }
}

#[test]
fn corrupted_packet_recovers_at_the_next_keyframe_and_spares_other_streams() {
    // 360p keeps two live ladders light enough for 2 cores shared with other tests,
    // so the lag policy does not drop the corrupted packet before it is decoded.
    let input = input_360p30_high();
    let flv = input_360p30_flv();
    let server = Server::start(CONFIG);
    let mut other = push(
        &input.path,
        &server.rtmp_url("cam2?key=key-two-secret"),
        false,
    );
    // Frame 75 is mid-GOP (keyframes every 60): the stream must resume at frame 120.
    publish_flv(&server, "cam1?key=key-one-secret", &flv, 75);
    let s = server.session("cam1", 1, Duration::from_secs(20));
    let p = &s["pipeline"];
    println!("cam1: {p:#}");
    assert_eq!(
        p["dropped_late"], 0,
        "machine too loaded: the pipeline fell behind real time: {p:#}"
    );
    assert_eq!(
        p["decode_errors"], 1,
        "one corrupted packet, one error: {p:#}"
    );
    let skipped = p["frames_skipped"].as_u64().unwrap();
    let decoded = p["frames_decoded"].as_u64().unwrap();
    let late = p["dropped_late"].as_u64().unwrap();
    // Every source frame is decoded, skipped for the error, or dropped for lag.
    assert_eq!(decoded + skipped + late, input.video_frames, "{p:#}");
    // Recovered at the next keyframe: at most one GOP (60 frames) lost.
    assert!(
        (1..=60).contains(&skipped),
        "did not recover at the next keyframe: {p:#}"
    );
    for r in p["rungs"].as_array().unwrap() {
        assert_eq!(
            r["frames"].as_u64().unwrap() + r["dropped"].as_u64().unwrap() + skipped,
            input.video_frames,
            "{r:#}"
        );
    }
    let log = server.log_text();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("skipping to the next keyframe"))
            .count(),
        1,
        "logged once:\n{log}"
    );

    assert!(other
        .wait_timeout(Duration::from_secs(30))
        .expect("other push done")
        .success());
    let o = server.session("cam2", 1, Duration::from_secs(30));
    assert_eq!(
        o["pipeline"]["decode_errors"], 0,
        "the other stream was touched"
    );
    assert_eq!(o["pipeline"]["frames_skipped"], 0);
    assert_eq!(
        o["pipeline"]["frames_decoded"].as_u64().unwrap()
            + o["pipeline"]["dropped_late"].as_u64().unwrap(),
        input.video_frames
    );
}

/// `[ladder] audio_reencode`: the publisher's AAC comes out at `audio_kbps`
/// (the audio rendition's mdat bytes over its segments' EXTINF durations).
#[test]
fn audio_is_reencoded_at_the_configured_bitrate_when_asked() {
    let input = input_360p30_flv();
    let config = format!("{CONFIG}\n[ladder]\naudio_reencode = true\naudio_kbps = 32\n");
    let server = Server::start(&config);
    let _ff = push(&input, &server.rtmp_url("cam1?key=key-one-secret"), true);
    let get = |path: &str| server.get_bytes(path);
    let playlist = server.wait_for("4 audio segments", Duration::from_secs(40), || {
        let (status, master) = server.get("/live/cam1/master.m3u8").ok()?;
        if status != 200 || !master.contains("#EXT-X-STREAM-INF") {
            return None;
        }
        assert!(master.contains("mp4a.40.2"), "{master}");
        let uri = master
            .lines()
            .find(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO"))?
            .split("URI=\"")
            .nth(1)?
            .split('"')
            .next()?
            .to_string();
        let text = String::from_utf8(get(&format!("/live/cam1/{uri}"))).ok()?;
        let dir = uri
            .rsplit_once('/')
            .map_or(String::new(), |(d, _)| format!("{d}/"));
        (text.matches("#EXTINF").count() >= 4).then_some((dir, text))
    });
    let (dir, text) = playlist;
    let (mut secs, mut bytes) = (0.0, 0usize);
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some(d) = l.strip_prefix("#EXTINF:") {
            let d: f64 = d
                .trim_end_matches(',')
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let uri = lines.find(|l| !l.starts_with('#')).unwrap();
            // Media bytes only: chunked parts put a moof around every AAC frame.
            let seg = get(&format!("/live/cam1/{dir}{uri}"));
            let mut at = 0;
            while at + 8 <= seg.len() {
                let size = u32::from_be_bytes(seg[at..at + 4].try_into().unwrap()) as usize;
                if &seg[at + 4..at + 8] == b"mdat" {
                    bytes += size - 8;
                }
                assert!(size >= 8, "bad box at {at} in {uri}");
                at += size;
            }
            secs += d;
        }
    }
    let kbps = bytes as f64 * 8.0 / secs / 1000.0;
    println!("re-encoded audio: {bytes} bytes over {secs:.2} s = {kbps:.1} kbit/s");
    // CBR 32 kbit/s (the source is 128 kbit/s).
    assert!((28.0..=36.0).contains(&kbps), "{kbps:.1} kbit/s, want ~32");
    assert!(
        server.log_text().contains("audio re-encoded"),
        "{}",
        server.log_text()
    );
}

/// A source missing frames mid-GOP (an encoder that dropped them, as OBS
/// does under load; the same gap a stream leaves when it skips to its next
/// keyframe to catch up with real time, as the stand-in GPU demo did in CI):
/// every rendition, source and rung, covers the gap with the frame before it,
/// so no playlist's media has a hole for a player to stall on.
#[test]
fn frames_missing_from_the_source_leave_no_hole_in_any_rendition() {
    // 8 s at 30 fps with an IDR each second, frames 40-59 (1.33-2.00 s: up
    // to an IDR) cut with their timestamps kept.
    let input = make_input(
        "360p30-missing-40-59-idr-1s-8s.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "8",
            "-vf",
            "select='not(between(n,40,59))'",
            "-fps_mode",
            "passthrough",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-bf",
            "0",
            "-g",
            "30",
            "-sc_threshold",
            "0",
            "-force_key_frames",
            "expr:gte(t,n_forced)",
            "-c:a",
            "aac",
        ],
    );
    assert_eq!(input.video_frames, 220, "the input lacks 20 frames");
    let server = Server::start(
        "[[streams]]\nname = \"gappy\"\nkey = \"gappy-key-1\"\n\n\
         [ladder]\nsegment_secs = 1.0\n\n\
         [[ladder.rungs]]\nname = \"240p30\"\nheight = 240\nfps = 30\nbitrate_kbps = 400\n\n\
         [hls]\nwindow_secs = 30.0\n",
    );
    let _ff = push(
        &input.path,
        &server.rtmp_url("gappy?key=gappy-key-1"),
        false,
    );
    // Past the gap on every rendition (media starts at 2 s: the gap ends at 4 s).
    server.wait_for(
        "five segments on every rendition",
        Duration::from_secs(30),
        || {
            let (_, master) = server.get("/live/gappy/master.m3u8").ok()?;
            let playlists: Vec<&str> = master
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .chain(
                    master
                        .lines()
                        .filter_map(|l| l.split_once("URI=\"")?.1.split('"').next()),
                )
                .collect();
            (playlists.iter().any(|p| p.starts_with("source/"))
                && playlists.iter().all(|p| {
                    server
                        .get(&format!("/live/gappy/{p}"))
                        .is_ok_and(|(_, t)| t.matches("#EXTINF:").count() >= 5)
                }))
            .then_some(())
        },
    );
    let mut faults = Vec::new();
    for (r, segments, rendition_faults) in every_rendition_timeline(&server, "gappy") {
        println!("{r}: {segments:?}");
        faults.extend(rendition_faults.into_iter().map(|f| format!("{r}: {f}")));
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}
