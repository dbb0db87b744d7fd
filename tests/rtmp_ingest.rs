//! RTMP ingest against real ffmpeg publishers, and hostile peers, on the real binary.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;

const KEY1: &str = "key-one-secret";
const KEY2: &str = "key-two-secret";

/// Two configured streams. The ladder is off here (these tests are about
/// ingest; `rtmp_ladder.rs` runs it) to keep the suite light on 2 cores.
fn two_streams(extra: &str) -> String {
    format!(
        "{extra}\n[ladder]\nenabled = false\n\n[[streams]]\nname = \"cam1\"\nkey = \"{KEY1}\"\n\n[[streams]]\nname = \"cam2\"\nkey = \"{KEY2}\"\n"
    )
}

/// The packet counts of a drained session equal what ffprobe counts in the input,
/// and the timeline invariants held for every packet.
fn assert_complete(session: &serde_json::Value, input: &Input) {
    assert_eq!(
        session["packets"]["video"], input.video_frames,
        "{session:#}"
    );
    assert_eq!(
        session["packets"]["audio"], input.audio_frames,
        "{session:#}"
    );
    let p = &session["pipeline"];
    assert_eq!(
        p["video_packets"], input.video_frames,
        "pipeline saw every video packet"
    );
    assert_eq!(
        p["audio_packets"], input.audio_frames,
        "pipeline saw every audio packet"
    );
    assert_eq!(p["dts_regressions"], 0, "dts monotonic per track");
    assert_eq!(p["pts_before_dts"], 0, "pts - dts >= 0");
    assert_eq!(p["discontinuities"], 0);
    assert_eq!(session["tag_errors"], 0);
}

#[test]
fn push_720p30_high_with_bframes_is_described_and_complete() {
    let input = input_720p30_high();
    let server = Server::start(&two_streams(""));
    let mut ff = push(
        &input.path,
        &server.rtmp_url(&format!("cam1?key={KEY1}")),
        false,
    );

    let live = server.wait_for(
        "cam1 live with video and audio config",
        Duration::from_secs(10),
        || {
            server
                .live("cam1")
                .filter(|s| !s["video"].is_null() && !s["audio"].is_null())
        },
    );
    assert_eq!(live["video"]["codec"], "avc1.64001f");
    assert_eq!(live["video"]["profile"], "High");
    assert_eq!(live["video"]["width"], 1280);
    assert_eq!(live["video"]["height"], 720);
    assert_eq!(live["video"]["fps"], 30.0);
    assert_eq!(live["audio"]["codec"], "mp4a.40.2");
    assert_eq!(live["audio"]["sample_rate"], 48000);
    assert_eq!(live["audio"]["channels"], 2);
    assert!(live["publisher"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(live["metadata"]["width"], 1280);

    // After a few seconds the 5 s bitrate window reflects the push (~2-3 Mbit/s here).
    std::thread::sleep(Duration::from_secs(4));
    let live = server.live("cam1").expect("still live");
    let bitrate = live["bitrate_bps"].as_u64().unwrap();
    assert!(bitrate > 100_000, "bitrate {bitrate}");
    assert!(live["since_last_packet_ms"].as_u64().unwrap() < 1000);

    let status = ff
        .wait_timeout(Duration::from_secs(20))
        .expect("ffmpeg finished");
    assert!(status.success(), "ffmpeg push failed");
    let session = server.session("cam1", 1, Duration::from_secs(5));
    assert_complete(&session, input);
    assert_eq!(session["ended"]["kind"], "publisher_closed");
    assert!(server.live("cam1").is_none());

    // The secret never leaves: not in the API, not in the log.
    let api = server.get("/api/v1/sessions").unwrap().1 + &server.get("/api/v1/streams").unwrap().1;
    assert!(!api.contains(KEY1));
    assert!(!server.log_text().contains(KEY1), "key leaked into the log");
}

#[test]
fn two_publishers_at_once_and_rejections_do_not_disturb_them() {
    let input = input_720p30_high();
    let server = Server::start(&two_streams(""));
    let mut a = push(
        &input.path,
        &server.rtmp_url(&format!("cam1?key={KEY1}")),
        false,
    );
    let mut b = push(
        &input.path,
        &server.rtmp_url(&format!("cam2?key={KEY2}")),
        false,
    );
    server.wait_for("both live", Duration::from_secs(10), || {
        (server.live("cam1").is_some() && server.live("cam2").is_some()).then_some(())
    });

    // Unknown key, no key, unknown stream, and a second publisher on a live name.
    let wrong_key = "not-the-key-xyz";
    let mut bad = push(
        &input.path,
        &server.rtmp_url(&format!("cam1?key={wrong_key}")),
        false,
    );
    let st = bad
        .wait_timeout(Duration::from_secs(10))
        .expect("rejected publisher exits");
    assert!(!st.success(), "publish with a wrong key must fail");
    let mut dup = push(
        &input.path,
        &server.rtmp_url(&format!("cam2?key={KEY2}")),
        false,
    );
    let st = dup
        .wait_timeout(Duration::from_secs(10))
        .expect("duplicate publisher exits");
    assert!(!st.success(), "a second publisher on a live name must fail");
    let mut unknown = push(
        &input.path,
        &server.rtmp_url("cam9?key=whatever-key"),
        false,
    );
    assert!(!unknown
        .wait_timeout(Duration::from_secs(10))
        .expect("exits")
        .success());

    let sessions = server.json("/api/v1/sessions");
    assert_eq!(sessions["rejected"]["bad_key"], 1, "{sessions:#}");
    assert_eq!(sessions["rejected"]["already_live"], 1, "{sessions:#}");
    assert_eq!(sessions["rejected"]["unknown_stream"], 1, "{sessions:#}");
    let log = server.log_text();
    let rejected_lines: Vec<_> = log
        .lines()
        .filter(|l| l.contains("publish rejected"))
        .collect();
    assert_eq!(
        rejected_lines.len(),
        3,
        "one log line per rejection:\n{log}"
    );
    assert!(rejected_lines
        .iter()
        .any(|l| l.contains("bad_key") && l.contains("cam1")));
    assert!(
        !log.contains(wrong_key),
        "a rejected key must not be logged either"
    );

    // The rejected pushes did not disturb the two real ones: both arrive intact.
    assert!(a
        .wait_timeout(Duration::from_secs(25))
        .expect("push a done")
        .success());
    assert!(b
        .wait_timeout(Duration::from_secs(25))
        .expect("push b done")
        .success());
    assert_complete(&server.session("cam1", 1, Duration::from_secs(5)), input);
    assert_complete(&server.session("cam2", 1, Duration::from_secs(5)), input);
}

#[test]
fn takeover_replaces_the_first_publisher_when_configured() {
    let input = input_720p30_high();
    let server = Server::start(&two_streams("[ingest]\ntakeover = true"));
    let mut first = push(
        &input.path,
        &server.rtmp_url(&format!("cam1?key={KEY1}")),
        true,
    );
    let a = server.wait_for("first live", Duration::from_secs(10), || {
        server.live("cam1")
    });
    let _second = push(
        &input.path,
        &server.rtmp_url(&format!("cam1?key={KEY1}")),
        true,
    );
    let b = server.wait_for("second took over", Duration::from_secs(10), || {
        server.live("cam1").filter(|s| s["id"] != a["id"])
    });
    assert_ne!(a["publisher"], b["publisher"]);
    let old = server.session("cam1", 1, Duration::from_secs(5));
    assert_eq!(old["ended"]["kind"], "taken_over");
    // The first ffmpeg was disconnected.
    assert!(
        first.wait_timeout(Duration::from_secs(10)).is_some(),
        "first publisher still connected"
    );
}

#[test]
fn killed_publisher_leaves_within_5s_and_the_name_can_publish_again() {
    let input = input_720p30_high();
    let server = Server::start(&two_streams(""));
    let mut ff = push(
        &input.path,
        &server.rtmp_url(&format!("cam1?key={KEY1}")),
        true,
    );
    server.wait_for("live", Duration::from_secs(10), || server.live("cam1"));
    std::thread::sleep(Duration::from_secs(1));
    unsafe_kill(ff.0.id(), libc_sig::KILL);
    let _ = ff.0.wait();
    let t = Instant::now();
    server.wait_for("stream to leave the API", Duration::from_secs(5), || {
        server.live("cam1").is_none().then_some(())
    });
    println!("stream left the API {:?} after SIGKILL", t.elapsed());
    let s = server.session("cam1", 1, Duration::from_secs(5));
    assert_eq!(s["pipeline"]["dts_regressions"], 0);

    let _again = push(
        &input.path,
        &server.rtmp_url(&format!("cam1?key={KEY1}")),
        true,
    );
    let live = server.wait_for("republished", Duration::from_secs(10), || {
        server
            .live("cam1")
            .filter(|s| s["packets"]["video"].as_u64().unwrap_or(0) > 0)
    });
    assert_ne!(live["id"], s["id"]);
}

#[test]
fn hostile_input_closes_only_that_connection() {
    let input = input_720p30_high();
    let server = Server::start(&two_streams("[limits]\nrtmp_idle_timeout_secs = 2.0"));
    let _good = push(
        &input.path,
        &server.rtmp_url(&format!("cam1?key={KEY1}")),
        true,
    );
    server.wait_for("good publisher live", Duration::from_secs(10), || {
        server.live("cam1")
    });
    let count = || {
        server
            .live("cam1")
            .map(|s| s["packets"]["video"].as_u64().unwrap())
            .unwrap_or(0)
    };

    // 1. Random bytes instead of a handshake.
    let mut random = std::net::TcpStream::connect(server.rtmp).unwrap();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let junk: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let _ = random.write_all(&junk);
    let mut random = RawClient::from_socket(random);
    assert!(
        random.closed_within(Duration::from_secs(5)),
        "random bytes: connection left open"
    );

    // 2. A truncated handshake (C0 + half of C1), then silence: closed by the idle timeout.
    let mut trunc = std::net::TcpStream::connect(server.rtmp).unwrap();
    trunc.write_all(&[3]).unwrap();
    trunc.write_all(&[0u8; 700]).unwrap();
    let mut trunc = RawClient::from_socket(trunc);
    assert!(
        trunc.closed_within(Duration::from_secs(6)),
        "truncated handshake: connection left open"
    );

    // 3. Set Chunk Size 2^31 after a valid handshake.
    let mut chunk = RawClient::handshake(server.rtmp);
    chunk
        .sock
        .write_all(&[0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0x80, 0, 0, 0])
        .unwrap();
    assert!(
        chunk.closed_within(Duration::from_secs(5)),
        "chunk size 2^31: connection left open"
    );

    // 4. AMF garbage: a command message (type 20) whose body is not AMF0.
    let mut amf = RawClient::handshake(server.rtmp);
    let body = [
        0xffu8, 0x13, 0x37, 0x02, 0xff, 0xff, 0x00, 0x05, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
        0x42,
    ];
    let mut msg = vec![0x03, 0, 0, 0, 0, 0, body.len() as u8, 20, 0, 0, 0, 0];
    msg.extend_from_slice(&body);
    amf.sock.write_all(&msg).unwrap();
    assert!(
        amf.closed_within(Duration::from_secs(5)),
        "AMF garbage: connection left open"
    );

    // 5. A message claiming 16 MiB − 1 (the format's maximum), then 100 MB of filler.
    let mut huge = RawClient::handshake(server.rtmp);
    huge.sock
        .write_all(&[0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0])
        .unwrap();
    let filler = vec![0x41u8; 1 << 20];
    let mut sent = 0usize;
    let _ = huge.sock.set_write_timeout(Some(Duration::from_secs(5)));
    while sent < 100 << 20 {
        if huge.sock.write_all(&filler).is_err() {
            break;
        }
        sent += filler.len();
    }
    assert!(
        huge.closed_within(Duration::from_secs(10)),
        "huge message: connection left open after {sent} bytes"
    );

    // 6. Enhanced-RTMP HEVC on a publish: that stream is refused as unsupported.
    let mut hevc = RawClient::publish(server.rtmp, &format!("cam2?key={KEY2}"));
    let _ = hevc.video(&[0x90, b'h', b'v', b'c', b'1', 0x01, 0x64, 0, 0], 0);
    assert!(
        hevc.closed_within(Duration::from_secs(5)),
        "HEVC publish left open"
    );
    let refused = server.session("cam2", 1, Duration::from_secs(5));
    assert_eq!(refused["ended"]["kind"], "error");
    assert!(
        refused["ended"]["detail"]
            .as_str()
            .unwrap()
            .contains("unsupported codec"),
        "{refused:#}"
    );

    // The good publisher kept flowing through all of it, and the server is healthy.
    let before = count();
    std::thread::sleep(Duration::from_secs(2));
    let after = count();
    assert!(
        after > before + 30,
        "good stream stalled: {before} -> {after}"
    );
    assert_eq!(server.get("/healthz").unwrap().0, 200);
    assert!(server.live("cam1").is_some());
}

#[test]
fn pcm_audio_is_refused_as_unsupported_and_others_continue() {
    let good_input = input_720p30_high();
    let pcm = input_pcm_audio();
    let server = Server::start(&two_streams(""));
    let _good = push(
        &good_input.path,
        &server.rtmp_url(&format!("cam1?key={KEY1}")),
        true,
    );
    server.wait_for("good live", Duration::from_secs(10), || server.live("cam1"));
    let mut bad = push(
        &pcm.path,
        &server.rtmp_url(&format!("cam2?key={KEY2}")),
        false,
    );
    assert!(
        bad.wait_timeout(Duration::from_secs(10)).is_some(),
        "PCM publisher not disconnected"
    );
    let s = server.session("cam2", 1, Duration::from_secs(5));
    let detail = s["ended"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains("unsupported codec") && detail.contains("PCM"),
        "{s:#}"
    );
    let log = server.log_text();
    let warnings = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("unsupported codec"));
    assert_eq!(warnings.count(), 1, "logged once as a warning:\n{log}");
    let c0 = server.live("cam1").unwrap()["packets"]["video"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let c1 = server.live("cam1").unwrap()["packets"]["video"]
        .as_u64()
        .unwrap();
    assert!(c1 > c0, "good stream stalled");
}

/// MP3 audio (FLV allows it; CMAF players want AAC): decoded and re-encoded
/// as AAC at `audio_kbps`; the API names the source's codec, the master
/// playlist the AAC rendition, and ffmpeg decodes that rendition cleanly.
#[test]
fn mp3_audio_is_reencoded_as_aac() {
    let mp3 = input_mp3_audio();
    let server = Server::start(&two_streams(""));
    let _ff = push(
        &mp3.path,
        &server.rtmp_url(&format!("cam2?key={KEY2}")),
        true,
    );
    let live = server.wait_for("cam2 live with audio", Duration::from_secs(10), || {
        server.live("cam2").filter(|s| !s["audio"].is_null())
    });
    assert_eq!(live["audio"]["codec"], "mp3", "{live:#}");
    assert_eq!(live["audio"]["sample_rate"], 44100, "{live:#}");
    let get = |path: &str| server.get_bytes(path);
    let (uri, playlist) = server.wait_for("3 audio segments", Duration::from_secs(30), || {
        let (status, master) = server.get("/live/cam2/master.m3u8").ok()?;
        if status != 200 || !master.contains("#EXT-X-STREAM-INF") {
            return None;
        }
        let media = master
            .lines()
            .find(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO"))?;
        assert!(master.contains("mp4a.40.2"), "{master}");
        let uri = media.split("URI=\"").nth(1)?.split('"').next()?.to_string();
        let text = String::from_utf8(get(&format!("/live/cam2/{uri}"))).ok()?;
        (text.matches("#EXTINF").count() >= 3).then_some((uri, text))
    });
    let dir = uri
        .rsplit_once('/')
        .map_or(String::new(), |(d, _)| format!("{d}/"));
    let init = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let mut cat = get(&format!("/live/cam2/{dir}{init}"));
    let segments: Vec<&str> = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .take(3)
        .collect();
    for s in &segments {
        cat.extend(get(&format!("/live/cam2/{dir}{s}")));
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("audio.mp4");
    std::fs::write(&file, &cat).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,sample_rate",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "aac,44100");
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
    assert!(
        server.log_text().contains("MP3 audio re-encoded as AAC"),
        "{}",
        server.log_text()
    );
}

#[test]
fn sigterm_with_a_live_publisher_exits_zero_within_5s() {
    let input = input_720p30_high();
    let mut server = Server::start(&two_streams(""));
    let _ff = push(
        &input.path,
        &server.rtmp_url(&format!("cam1?key={KEY1}")),
        true,
    );
    server.wait_for("live", Duration::from_secs(10), || server.live("cam1"));
    let t = Instant::now();
    unsafe_kill(server.pid(), libc_sig::TERM);
    let deadline = t + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = server.child().try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still running 5 s after SIGTERM\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("exited {:?} after SIGTERM", t.elapsed());
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    let log = server.log_text();
    assert!(
        log.contains("pipeline drained"),
        "stream did not end cleanly:\n{log}"
    );
}
