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

    // The 5 s bitrate window comes to reflect the push (~2-3 Mbit/s here)
    // while packets keep arriving.
    let live = server.wait_for(
        "the bitrate window to fill",
        Duration::from_secs(15),
        || {
            server
                .live("cam1")
                .filter(|l| l["bitrate_bps"].as_u64().unwrap_or(0) > 100_000)
        },
    );
    assert!(
        live["since_last_packet_ms"].as_u64().unwrap() < 1000,
        "{live:#}"
    );

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

    // Issue 30: each refused publisher is told, in an `onStatus`, and a wrong
    // key, a missing key and an unknown NAME read the same.
    let said = |p: &mut Proc| {
        let mut err = String::new();
        std::io::Read::read_to_string(p.0.stderr.as_mut().unwrap(), &mut err).unwrap();
        err.lines()
            .find(|l| l.contains("Server error"))
            .map(|l| l[l.find("Server error").unwrap()..].to_string())
            .unwrap_or_else(|| panic!("ffmpeg was not told why: {err}"))
    };
    let (told_key, told_name) = (said(&mut bad), said(&mut unknown));
    assert_eq!(told_key, told_name);
    assert!(said(&mut dup).contains("already"), "a live name says so");
    for name in [
        "cam1?key=guess-0".to_string(),
        "cam1".into(),
        "cam9?key=x".into(),
    ] {
        let refused =
            RawClient::try_publish_on(std::net::TcpStream::connect(server.rtmp).unwrap(), &name)
                .err();
        assert_eq!(
            refused.as_deref(),
            Some("refused: onStatus NetStream.Publish.Denied"),
            "{name}"
        );
    }

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
    let junk = noise(&mut 0x2545_F491_4F6C_DD1D, 8192);
    let _ = random.write_all(&junk);
    let mut random = RawClient::from_socket(random);
    assert!(
        random.closed_within(Duration::from_secs(5)),
        "random bytes: connection left open"
    );

    // Issue 30: a flood of failed handshakes is counted, each one, and logged
    // once a minute (it was one WARN per connection: 384 lines in 30 s).
    for i in 0..20u8 {
        let mut c = std::net::TcpStream::connect(server.rtmp).unwrap();
        let _ = c.write_all(&[0x16, 0x03, i, 0, 0x20]);
        assert!(RawClient::from_socket(c).closed_within(Duration::from_secs(5)));
    }
    let failed = server.metric(
        "ladderd_rtmp_connections_refused_total",
        &["reason=\"handshake_failed\""],
    );
    assert_eq!(failed, 21.0, "every failed handshake counted");
    let log = server.log_text();
    let lines = log
        .lines()
        .filter(|l| l.contains("rtmp connection closed"))
        .count();
    assert!(lines <= 1, "{lines} lines for 21 failed handshakes:\n{log}");

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

/// connect(2) from a chosen loopback source address: a stranger on another IP.
fn connect_from(src: [u8; 4], dst: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(dst) = dst else {
        panic!("IPv4 only")
    };
    let sin = |ip: [u8; 4], port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns until it is wrapped.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let local = sin(src, 0);
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sin(dst.ip().octets(), dst.port());
        if libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One RTMP message as a client sends it: type-0 header on csid 3, then 128-byte
/// chunks with type-3 headers.
fn chunked_message(type_id: u8, body: &[u8]) -> Vec<u8> {
    let mut wire = vec![3, 0, 0, 0];
    wire.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    wire.extend_from_slice(&[type_id, 0, 0, 0, 0]);
    for (i, c) in body.chunks(128).enumerate() {
        if i > 0 {
            wire.push(0xC3);
        }
        wire.extend_from_slice(c);
    }
    wire
}

/// Issue 12 item 1: one `connect` whose AMF0 argument nests objects 4,000 deep
/// (16 KB), or strict arrays 10,000 deep (50 KB), overflowed the I/O thread's stack
/// and aborted the process (exit 134). Now only that connection closes.
#[test]
fn nested_amf_connect_16_kb_does_not_kill_the_process() {
    let input = input_720p30_high();
    let mut server = Server::start(&two_streams(""));
    let _good = push(
        &input.path,
        &server.rtmp_url(&format!("cam1?key={KEY1}")),
        true,
    );
    server.wait_for("good publisher live", Duration::from_secs(10), || {
        server.live("cam1")
    });
    for (level, depth) in [
        (&[0x03u8, 0, 1, b'a'][..], 4000),
        (&[0x0A, 0, 0, 0, 1][..], 10_000),
    ] {
        let mut body = vec![0x02, 0, 7];
        body.extend_from_slice(b"connect");
        body.extend_from_slice(&[0, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
        for _ in 0..depth {
            body.extend_from_slice(level);
        }
        let mut c = RawClient::handshake(server.rtmp);
        let _ = c.sock.write_all(&chunked_message(20, &body));
        assert!(
            c.closed_within(Duration::from_secs(5)),
            "nested connect left open"
        );
    }
    assert!(
        server.child().try_wait().unwrap().is_none(),
        "ladderd died:\n{}",
        server.log_text()
    );
    let count = || {
        server
            .live("cam1")
            .map_or(0, |s| s["packets"]["video"].as_u64().unwrap())
    };
    let before = count();
    server.wait_for(
        "good publisher still flowing",
        Duration::from_secs(10),
        || (count() > before).then_some(()),
    );
    assert!(
        server.metric(
            "ladderd_rtmp_connections_refused_total",
            &["protocol_error"]
        ) >= 2.0
    );
    assert!(
        server.log_text().contains("nest deeper than"),
        "{}",
        server.log_text()
    );
}

/// Issue 12 item 2: before publishing, a connection could declare a 16 MiB message
/// (chunk size 0x7fffffff): 30 of them took RSS from 54 to 556 MiB. Now message and
/// chunk sizes are capped before `publish`, and what unauthenticated connections
/// buffer together is capped too.
#[test]
fn unauthenticated_16_mib_messages_do_not_grow_memory() {
    let mut server = Server::start(&two_streams(
        "[limits]\nrtmp_pending_buffer_bytes = 1048576\nmax_rtmp_connections_per_ip = 128\nmax_rtmp_pending_connections = 128",
    ));
    let rss_before = rss_kib(server.pid());
    let filler = vec![0x41u8; 1 << 20];
    for _ in 0..30 {
        // Chunk size 2^31 - 1, then a 16 MiB - 1 command and 1 MiB of it.
        let mut c = RawClient::handshake(server.rtmp);
        let _ = c.sock.write_all(&[
            0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF,
        ]);
        let _ = c
            .sock
            .write_all(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0]);
        let _ = c.sock.write_all(&filler);
        assert!(
            c.closed_within(Duration::from_secs(5)),
            "16 MiB declaration left open"
        );
        let mut c = RawClient::handshake(server.rtmp);
        let _ = c
            .sock
            .write_all(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0]);
        let _ = c.sock.write_all(&filler);
        assert!(
            c.closed_within(Duration::from_secs(5)),
            "16 MiB message left open"
        );
    }
    // Messages under the cap but never finished: the shared 1 MiB budget closes
    // connections once spent (30 x 60 KiB would be 1.8 MiB).
    let mut held = Vec::new();
    for _ in 0..30 {
        let mut c = RawClient::handshake(server.rtmp);
        let mut wire = vec![0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0, 1, 0, 0];
        wire.extend_from_slice(&[0x03, 0, 0, 0, 0, 0xFF, 0x00, 20, 0, 0, 0, 0]);
        wire.extend_from_slice(&[0x02; 60 << 10]);
        let _ = c.sock.write_all(&wire);
        held.push(c);
    }
    let closed = held
        .iter_mut()
        .map(|c| c.closed_within(Duration::from_millis(500)))
        .filter(|closed| *closed)
        .count();
    assert!(
        (5..30).contains(&closed),
        "{closed} of 30 partial-message connections closed"
    );
    assert!(
        server.metric(
            "ladderd_rtmp_connections_refused_total",
            &["pending_buffer"]
        ) >= 5.0
    );
    let pending = server.metric("ladderd_rtmp_pending_buffer_bytes", &[]);
    assert!(pending <= 1048576.0, "{pending}");
    let grew = rss_kib(server.pid()).saturating_sub(rss_before);
    assert!(grew < 48 << 10, "RSS grew by {grew} KiB");
    assert!(server.child().try_wait().unwrap().is_none());
}

/// Issue 12 item 3: 255 connections trickling handshake bytes held every slot for
/// 45 s, and 1,000 idle ones until the idle timeout, refusing a legitimate
/// publisher. Now one address holds at most `max_rtmp_connections_per_ip`, a
/// connection that has not published by `rtmp_setup_timeout_secs` is closed
/// however busy it keeps the socket, and the publisher gets in at once.
#[test]
fn handshake_trickle_and_idle_flood_do_not_lock_out_a_publisher() {
    let input = input_720p30_high();
    let server = Server::start(&two_streams(
        "[limits]\nrtmp_setup_timeout_secs = 2.0\nrtmp_idle_timeout_secs = 30.0",
    ));
    let started = Instant::now();
    let mut trickle: Vec<_> = (0..255)
        .filter_map(|_| connect_from([127, 0, 0, 2], server.rtmp).ok())
        .collect();
    for s in &mut trickle {
        let _ = s.write_all(&[3]);
    }
    let idle: Vec<_> = (0..400)
        .filter_map(|_| connect_from([127, 0, 0, 3], server.rtmp).ok())
        .collect();
    let _good = push(
        &input.path,
        &server.rtmp_url(&format!("cam1?key={KEY1}")),
        true,
    );
    server.wait_for(
        "publisher live despite the flood",
        Duration::from_secs(10),
        || server.live("cam1"),
    );
    // Keep trickling (well inside the idle timeout): the setup deadline still applies.
    std::thread::sleep(Duration::from_secs(1));
    for s in &mut trickle {
        let _ = s.write_all(&[0]);
    }
    // Well before the 30 s idle timeout, every stranger is gone.
    let deadline = started + Duration::from_secs(20);
    let strangers = trickle.len() + idle.len();
    let mut still_open = 0;
    for s in trickle.into_iter().chain(idle) {
        let mut c = RawClient::from_socket(s);
        let left = deadline.saturating_duration_since(Instant::now());
        if !c.closed_within(left.max(Duration::from_millis(300))) {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "stranger connections outlived the setup deadline"
    );
    // Each address held at most 16 (the default per-IP cap); the rest were refused.
    let refused = server.metric("ladderd_rtmp_connections_refused_total", &["per_ip_limit"]);
    assert!(
        refused >= (strangers - 32) as f64,
        "{refused} of {strangers} refused"
    );
    assert!(server.metric("ladderd_rtmp_connections_refused_total", &["setup_timeout"]) >= 32.0);
    assert!(server.live("cam1").is_some(), "publisher lost");
}

/// Issue 30: strangers from several addresses, each under the per-address
/// cap, held every pending slot, so a publisher was refused until their setup
/// deadline. Now the newcomer takes the oldest one's slot: that connection is
/// closed at once, counted, and the publisher is live.
#[test]
fn pending_slots_held_by_strangers_go_to_a_newcomer() {
    let server = Server::start(&two_streams(
        "[limits]\nmax_rtmp_pending_connections = 4\nrtmp_setup_timeout_secs = 30.0\nrtmp_idle_timeout_secs = 30.0",
    ));
    let pending = |n: f64| {
        server.wait_for(&format!("{n} pending"), Duration::from_secs(5), || {
            (server.metric("ladderd_rtmp_pending_connections", &[]) == n).then_some(())
        })
    };
    // Start-up's readiness probe has gone; then four strangers hold every slot.
    pending(0.0);
    let mut strangers: Vec<_> = (0..4u8)
        .map(|i| connect_from([127, 0, 0, 10 + i], server.rtmp).unwrap())
        .collect();
    pending(4.0);
    // Past the age below which a pending connection is never evicted (1 s).
    std::thread::sleep(Duration::from_millis(1300));
    let _publisher = RawClient::publish(server.rtmp, &format!("cam1?key={KEY1}"));
    let mut oldest = RawClient::from_socket(strangers.remove(0));
    assert!(
        oldest.closed_within(Duration::from_secs(2)),
        "the oldest stranger kept its slot:\n{}",
        server.log_text()
    );
    assert!(server.live("cam1").is_some());
    assert_eq!(
        server.metric(
            "ladderd_rtmp_connections_refused_total",
            &["reason=\"evicted\""]
        ),
        1.0
    );
    // The others keep theirs: only one slot was needed.
    for s in strangers {
        assert!(!RawClient::from_socket(s).closed_within(Duration::from_millis(200)));
    }
}
