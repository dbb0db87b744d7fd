//! Limits that hold under abuse: each test drives one address (127.0.0.2)
//! past a limit while a legitimate client on another (127.0.0.1) keeps
//! playing or publishing, and checks the refusals are counted.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{
    connect_from, input_360p30_high, node, preload_hint, push, require, srt_live_transmit_push,
    RawClient, Server, BROWSER,
};
use serde_json::Value;

const DEMO: &str = "[demo]\nwidth = 640\nheight = 360\n\n[ladder]\nsegment_secs = 1.0\n";

const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const EXEMPT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

/// Sends `request` and reads one response: (status, body); status 0 when
/// the connection ended before a response.
fn exchange(sock: &mut TcpStream, request: &[u8]) -> (u16, String) {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before the whole request is in (a body it
    // refuses): a failed write is fine, the answer is what counts.
    let _ = sock.write_all(request);
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let (head_end, length) = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..at]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (at + 4, length);
        }
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return (0, String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    while got.len() < head_end + length {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let status = String::from_utf8_lossy(&got[..head_end])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        String::from_utf8_lossy(&got[head_end..]).into_owned(),
    )
}

/// Sends `request` (any number of requests) and reads every response until
/// the server closes the connection: (status, body) each, in order.
fn responses(sock: &mut TcpStream, request: &[u8]) -> Vec<(u16, String)> {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = sock.write_all(request);
    let mut got = Vec::new();
    let _ = sock.read_to_end(&mut got);
    let mut out = Vec::new();
    let mut rest = &got[..];
    while let Some(at) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..at]).to_ascii_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let end = (at + 4 + length).min(rest.len());
        out.push((
            status,
            String::from_utf8_lossy(&rest[at + 4..end]).into_owned(),
        ));
        rest = &rest[end..];
    }
    out
}

/// Whether the server closes the connection (after its last response) within 2 s.
fn closed(sock: &mut TcpStream) -> bool {
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    match sock.read(&mut [0u8; 1024]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

/// hls.js on the player page (LL-HLS, the demo) for `seconds` of playback.
fn watch(base: &str, seconds: u32) -> Value {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    node(
        "play.mjs",
        &[base, "demo", "ll", &seconds.to_string(), "0", "0", ""],
    )
}

/// What the legitimate viewer must show while another address is refused:
/// it kept playing (its currentTime advanced over most of the window) and the
/// origin never refused it (no fatal hls.js error, no HTTP error status). A
/// non-fatal stall (`bufferStalledError`, a nudge) is reported, not failed
/// on: on a starved machine the browser itself falls behind, and contention
/// is not what this test checks; a refusal shows as an HTTP status.
fn kept_playing(r: &Value, seconds: u32) {
    assert_eq!(r["pageErrors"].as_array().map_or(1, Vec::len), 0, "{r:#}");
    let played = r["played"].as_f64().unwrap_or(0.0);
    assert!(
        played >= f64::from(seconds) / 2.0,
        "the viewer's currentTime advanced only {played} s in {seconds} s: {r:#}"
    );
    let errors: Vec<&str> = r["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // The HTTP status hls.js saw, when the origin answered with one.
    let status = |e: &str| -> Option<u32> {
        e.split(" HTTP ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let refused: Vec<&&str> = errors
        .iter()
        .filter(|e| e.starts_with("fatal") || status(e).is_some_and(|s| s >= 400))
        .collect();
    assert!(
        refused.is_empty(),
        "the viewer was failed or refused: {refused:?}\n{r:#}"
    );
    println!(
        "viewer: played {played:.1} s of {seconds}, {} stall(s), non-fatal errors {errors:?}",
        r["stalls"]
    );
}

/// hls.js plays from 127.0.0.1 while 127.0.0.2 goes past the per-client
/// connection cap, the held-request cap and the header, URI and body limits,
/// and 127.0.0.3 (`limit_exempt`) goes past the caps unhindered.
#[test]
fn http_client_limits_refuse_the_abuser_while_hls_js_plays() {
    let config = format!(
        "{DEMO}\n[server]\nhttp_max_connections_per_ip = 16\nhttp_max_held_requests_per_ip = 8\n\
         http_header_timeout_secs = 60\n\
         limit_exempt = [\"{EXEMPT}\"]\n"
    );
    let server = Server::start_with(&config, &["--demo"]);
    let origin = server.http;
    server.wait_for("the demo's playlist", Duration::from_secs(30), || {
        server
            .get("/live/demo/360p30/playlist.m3u8")
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    let base = format!("http://{origin}");
    let viewer = std::thread::spawn(move || watch(&base, 20));
    // hls.js is playing (fetching media: parts and segments, which are
    // counted as segments when named by their run) before the abuse starts.
    let media = || {
        ["part", "segment"]
            .iter()
            .map(|r| {
                server.metric(
                    "ladderd_http_requests_total",
                    &[&format!("route=\"{r}\""), "status=\"200\""],
                )
            })
            .sum::<f64>()
    };
    server.wait_for("hls.js fetching media", Duration::from_secs(60), || {
        (media() >= 8.0).then_some(())
    });

    // 1. Connections: 16 held open (each answered, so each is counted); the
    // next 8 get a 429 and a close.
    let mut open: Vec<TcpStream> = (0..16).map(|_| connect_from(ATTACKER, origin)).collect();
    for s in &mut open {
        assert_eq!(exchange(s, &get_request("/healthz")).0, 200);
    }
    for i in 0..8 {
        let mut s = connect_from(ATTACKER, origin);
        let (status, _) = exchange(&mut s, &get_request("/healthz"));
        assert_eq!(status, 429, "connection {} from the capped address", 17 + i);
        assert!(closed(&mut s), "a refused connection is closed");
    }
    // The open ones are still served, and a freed place is reused once the
    // server has seen the closes: the attacker is no longer a tracked client
    // (the viewer and this scrape, both from 127.0.0.1, are the one left).
    for s in &mut open {
        assert_eq!(exchange(s, &get_request("/healthz")).0, 200);
    }
    drop(open);
    server.wait_for(
        "the attacker's closed connections to be seen",
        Duration::from_secs(10),
        || (server.metric("ladderd_http_clients", &[]) <= 1.0).then_some(()),
    );
    let (status, _) = exchange(
        &mut connect_from(ATTACKER, origin),
        &get_request("/healthz"),
    );
    assert_eq!(status, 200, "places come back when connections close");

    // 2. An exempt address (an edge cache) is not capped. The last connection
    // is served first: the server accepts in order, so by then all 24 are
    // accepted and open together.
    let mut exempt: Vec<TcpStream> = (0..24).map(|_| connect_from(EXEMPT, origin)).collect();
    for s in exempt.iter_mut().rev() {
        assert_eq!(exchange(s, &get_request("/healthz")).0, 200);
    }
    drop(exempt);

    // 3. Held requests: 12 blocking reloads two segments ahead; 8 wait, 4 are refused at once.
    let (_, playlist) = server.get("/live/demo/360p30/playlist.m3u8").unwrap();
    let msn = preload_hint(&playlist).0 + 2;
    let held_path = format!("/live/demo/360p30/playlist.m3u8?_HLS_msn={msn}&_HLS_part=0");
    let mut socks: Vec<TcpStream> = (0..12).map(|_| connect_from(ATTACKER, origin)).collect();
    for s in &mut socks {
        s.write_all(&get_request(&held_path)).unwrap();
    }
    let statuses: Vec<u16> = socks.iter_mut().map(|s| exchange(s, b"").0).collect();
    let held = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((held, refused), (8, 4), "statuses: {statuses:?}");
    drop(socks);

    // 4. Request sizes.
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let (status, _) = exchange(&mut connect_from(ATTACKER, origin), big_header.as_bytes());
    assert_eq!(status, 431);
    let long_uri = get_request(&format!("/live/demo/master.m3u8?{}", "u".repeat(9000)));
    let (status, _) = exchange(&mut connect_from(ATTACKER, origin), &long_uri);
    assert_eq!(status, 414);
    // Issue 30: longer than hyper's read buffer, it got hyper's 431 with no body.
    let huge_uri = get_request(&format!("/live/demo/master.m3u8?{}", "u".repeat(100_000)));
    let mut s = connect_from(ATTACKER, origin);
    let (status, body) = exchange(&mut s, &huge_uri);
    assert_eq!((status, body.as_str()), (414, "uri_bytes\n"));
    assert!(
        closed(&mut s),
        "a refused request line closes its connection"
    );
    // Issue 31: the same line behind a response still in flight (pipelined
    // after a blocking reload for the next segment): the reload is answered
    // first and whole, then the 414, then the close.
    let (_, playlist) = server.get("/live/demo/360p30/playlist.m3u8").unwrap();
    let next = preload_hint(&playlist).0 + 1;
    let mut pipelined = get_request(&format!("/live/demo/360p30/playlist.m3u8?_HLS_msn={next}"));
    pipelined.extend_from_slice(&huge_uri);
    let mut s = connect_from(ATTACKER, origin);
    let answers = responses(&mut s, &pipelined);
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [200, 414], "{answers:?}");
    assert!(
        answers[0].1.contains("#EXT-X-PART:DURATION"),
        "the reload's playlist: {}",
        answers[0].1
    );
    assert_eq!(answers[1].1, "uri_bytes\n");
    let body = format!(
        "POST /live/demo/master.m3u8 HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{}",
        "b".repeat(5000)
    );
    let mut s = connect_from(ATTACKER, origin);
    assert_eq!(exchange(&mut s, body.as_bytes()).0, 413);
    assert!(closed(&mut s), "a refused body closes its connection");
    let chunked = b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n";
    let mut s = connect_from(ATTACKER, origin);
    assert_eq!(exchange(&mut s, chunked).0, 413);
    assert!(
        closed(&mut s),
        "a refused chunked body closes its connection"
    );
    // A small body on a route that ignores it is harmless: answered, connection kept.
    let small = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    let mut s = connect_from(ATTACKER, origin);
    let status = exchange(&mut s, small).0;
    assert!(status != 413 && status != 0, "status {status}");
    assert!(!closed(&mut s), "a small ignored body keeps the connection");

    let played = viewer.join().expect("hls.js played through the abuse");
    kept_playing(&played, 20);
    let limited =
        |l: &str| server.metric("ladderd_http_limited_total", &[&format!("limit=\"{l}\"")]);
    let counts = [
        ("per_ip_connections", 8.0),
        ("held_requests", 4.0),
        ("header_bytes", 1.0),
        ("uri_bytes", 3.0),
        ("body_bytes", 2.0),
    ];
    for (l, n) in counts {
        assert_eq!(limited(l), n, "ladderd_http_limited_total{{limit=\"{l}\"}}");
    }
    let log = server.log_text();
    assert!(
        log.contains("limit=\"held_requests\"") || log.contains("limit=held_requests"),
        "each limit is logged: {log}"
    );
}

/// A guesser on 127.0.0.2 tries stream keys; after 3 failures every publish
/// from that address is refused (the right key too) until the backoff ends,
/// while ffmpeg's publish from 127.0.0.1 goes on and another address may publish.
#[test]
fn rtmp_key_guessing_backs_off_while_a_publisher_goes_on() {
    let config = "[ladder]\nenabled = false\n\
                  [ingest]\nauth_failures_before_backoff = 3\nauth_backoff_secs = 4\n\
                  [[streams]]\nname = \"cam1\"\nkey = \"right-key-1\"\n\
                  [[streams]]\nname = \"cam2\"\nkey = \"right-key-2\"\n\
                  [[streams]]\nname = \"cam3\"\nkey = \"right-key-3\"\n";
    let server = Server::start(config);
    let _ffmpeg = push(
        &input_360p30_high().path,
        &server.rtmp_url("cam1?key=right-key-1"),
        true,
    );
    server.wait_for("cam1 live", Duration::from_secs(20), || server.live("cam1"));
    let session = server.live("cam1").unwrap()["id"].clone();

    let guess = |from: IpAddr, name: &str| {
        RawClient::try_publish_on(connect_from(from, server.rtmp), name).map(|c| drop(c))
    };
    for wrong in ["cam2?key=guess1", "cam2", "nosuch?key=x"] {
        assert!(guess(ATTACKER, wrong).is_err(), "{wrong} was accepted");
    }
    // Backed off: even the right key is refused from this address...
    let backed_off = guess(ATTACKER, "cam2?key=right-key-2");
    assert!(backed_off.is_err(), "a backed-off address published");
    let backoff_started = Instant::now();
    // ...but not from another one.
    guess(EXEMPT, "cam3?key=right-key-3").expect("another address publishes");
    assert_eq!(
        server.metric(
            "ladderd_publishers_rejected_total",
            &["reason=\"backed_off\""]
        ),
        1.0
    );
    assert_eq!(
        server.metric("ladderd_publish_auth_backoffs_total", &[]),
        1.0
    );
    assert_eq!(
        server.metric("ladderd_publish_auth_backed_off_addresses", &[]),
        1.0
    );
    // After the wait, the right key works again.
    let wait = Duration::from_secs(4).saturating_sub(backoff_started.elapsed());
    std::thread::sleep(wait + Duration::from_millis(500));
    guess(ATTACKER, "cam2?key=right-key-2").expect("publishes once the backoff is over");
    // The publisher on 127.0.0.1 went on, in the same session.
    let live = server.live("cam1").expect("cam1 still live");
    assert_eq!(live["id"], session, "cam1's publish was not interrupted");
    let log = server.log_text();
    assert_eq!(
        log.matches("too many failed (ingest.auth_failures_before_backoff)")
            .count(),
        1,
        "the backoff is logged once: {log}"
    );
}

/// Two SRT publishers from 127.0.0.2 are the most that address may hold; a
/// third is refused in the handshake while one from 127.0.0.1 gets in.
#[test]
fn srt_connections_per_address_are_capped() {
    require("srt-live-transmit");
    require("ffmpeg");
    let config = "[ladder]\nenabled = false\n[ingest]\nallow_any_key = true\n\
                  [limits]\nmax_srt_connections_per_ip = 2\n";
    let server = Server::start(config);
    let input = input_360p30_high();
    let url = |name: &str, from: IpAddr| {
        format!(
            "srt://{}?streamid=#!::r=live/{name},m=publish&pkt_size=1316&mode=caller&adapter={from}",
            server.srt
        )
    };
    let _a = srt_live_transmit_push(&input.path, &url("a", ATTACKER));
    let _b = srt_live_transmit_push(&input.path, &url("b", ATTACKER));
    for name in ["a", "b"] {
        server.wait_for(&format!("{name} live"), Duration::from_secs(20), || {
            server.live(name)
        });
    }
    let _c = srt_live_transmit_push(&input.path, &url("c", ATTACKER));
    let _d = srt_live_transmit_push(&input.path, &url("d", "127.0.0.1".parse().unwrap()));
    server.wait_for("d live", Duration::from_secs(20), || server.live("d"));
    server.wait_for("c refused", Duration::from_secs(20), || {
        (server.metric(
            "ladderd_srt_connections_refused_total",
            &["reason=\"per_ip_limit\""],
        ) >= 1.0)
            .then_some(())
    });
    assert!(
        server.live("c").is_none(),
        "a third publisher from one address got in"
    );
    for name in ["a", "b", "d"] {
        assert!(server.live(name).is_some(), "{name} still live");
    }
    let peers: Vec<SocketAddr> = ["a", "b"]
        .iter()
        .filter_map(|n| server.live(n)?["publisher"].as_str()?.parse().ok())
        .collect();
    assert!(
        peers.iter().all(|p| p.ip() == ATTACKER),
        "the relays publish from 127.0.0.2: {peers:?}"
    );
}
