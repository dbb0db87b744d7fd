//! LL-HLS and HLS from the origin, checked by real clients: hls-parser (npm),
//! ffprobe/ffmpeg, and hls.js in headless Chromium; plus the server behaviour
//! no checker looks at (blocking reload, delta updates, preload hints, 400/503,
//! caching headers).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use ladderd::media::flv::FileTags;
use serde_json::Value;

/// A light demo (one rung + source) and 1 s segments so windows fill quickly.
const DEMO: &str = "[demo]\nwidth = 640\nheight = 360\n\n[ladder]\nsegment_secs = 1.0\n\n[hls]\nwindow_secs = 19.0\n";

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

fn request(server: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let url = format!("http://{}{}", server.http, path);
    let mut req = ureq::request(method, &url).timeout(Duration::from_secs(15));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| Some((n.to_ascii_lowercase(), resp.header(&n)?.to_string())))
        .collect();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

fn get(server: &Server, path: &str) -> Reply {
    request(server, "GET", path, &[])
}

/// Media playlist URIs of a multivariant playlist (video variants and audio).
fn media_uris(master: &str) -> Vec<String> {
    let mut uris: Vec<String> = master
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(String::from)
        .collect();
    for l in master.lines().filter(|l| l.starts_with("#EXT-X-MEDIA:")) {
        if let Some(u) = l.split("URI=\"").nth(1).and_then(|r| r.split('"').next()) {
            uris.push(u.to_string());
        }
    }
    uris
}

/// Video variants of a multivariant playlist (the audio-only one has no RESOLUTION).
fn video_variants(master: &str) -> usize {
    master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:") && l.contains(",RESOLUTION="))
        .count()
}

/// The audio-only variant's (STREAM-INF line, URI), if the master has one.
fn audio_only_variant(master: &str) -> Option<(&str, &str)> {
    let lines: Vec<&str> = master.lines().collect();
    lines.windows(2).find_map(|w| {
        (w[0].starts_with("#EXT-X-STREAM-INF:") && !w[0].contains("RESOLUTION="))
            .then_some((w[0], w[1]))
    })
}

fn wait_master(server: &Server, name: &str, variants: usize) -> String {
    server.wait_for(
        "renditions in the master playlist",
        Duration::from_secs(30),
        || {
            let r = get(server, &format!("/live/{name}/master.m3u8"));
            let text = r.text();
            (r.status == 200 && video_variants(&text) >= variants).then_some(text)
        },
    )
}

/// Every playlist the stream serves passes hls-parser's rules; ffprobe lists
/// every rendition; ffmpeg reads each rendition for 10 s without error.
fn check_with_third_party_tools(server: &Server, name: &str, master: &str) {
    let base = format!("http://{}/live/{name}", server.http);
    let mut urls = vec![format!("{base}/master.m3u8"), format!("{base}/index.m3u8")];
    for uri in media_uris(master) {
        let rendition = uri.split('/').next().unwrap();
        urls.push(format!("{base}/{uri}"));
        urls.push(format!("{base}/{rendition}/playlist.m3u8?_HLS_skip=YES"));
        urls.push(format!("{base}/{rendition}/index.m3u8"));
    }
    assert_hls_parser_clean(&urls);

    require("ffprobe");
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,width,height",
            "-of",
            "json",
        ])
        .arg(format!("{base}/master.m3u8"))
        .output()
        .unwrap();
    let probed: Value = serde_json::from_slice(&probe.stdout).unwrap();
    let streams = probed["streams"].as_array().unwrap();
    let videos = streams
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .count();
    assert_eq!(
        videos,
        video_variants(master),
        "ffprobe of master.m3u8: {probed:#}"
    );
    if master.contains("TYPE=AUDIO") {
        assert!(
            streams.iter().any(|s| s["codec_type"] == "audio"),
            "{probed:#}"
        );
        // Issue 16: the audio-only variant, last, is the audio rendition's
        // media playlist with the audio codec alone and its own BANDWIDTH.
        let (inf, uri) = audio_only_variant(master).unwrap_or_else(|| panic!("{master}"));
        let media = master
            .lines()
            .find(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO"))
            .unwrap();
        assert!(media.contains(&format!("URI=\"{uri}\"")), "{master}");
        assert!(inf.contains("CODECS=\"mp4a.40.2\""), "{inf}");
        assert!(!inf.contains("AUDIO="), "{inf}");
        let bandwidth: u64 = inf
            .split("BANDWIDTH=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|b| b.parse().ok())
            .unwrap();
        assert!((64_000..400_000).contains(&bandwidth), "{inf}");
        assert_eq!(
            master.lines().rfind(|l| !l.starts_with('#')),
            Some(uri),
            "{master}"
        );
    }
    for uri in media_uris(master) {
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
            .arg(format!("{base}/{uri}"))
            .args(["-t", "10", "-c", "copy", "-f", "null", "-"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "ffmpeg reading {uri}: {err}"
        );
    }
}

/// (msn, EXTINF seconds) of each complete segment a media playlist lists.
fn listed_segments(playlist: &str) -> Vec<(u64, f64)> {
    let mut out = Vec::new();
    let mut duration = None;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d.split(',').next().and_then(|d| d.parse().ok());
        } else if !line.starts_with('#') && !line.is_empty() {
            let msn = segment_number(line);
            if let (Some(d), Some(msn)) = (duration.take(), msn) {
                out.push((msn, d));
            }
        }
    }
    out
}

/// An attribute of an `EXT-X-STREAM-INF` line, as a number.
fn stream_inf_number(line: &str, key: &str) -> u64 {
    // Splitting at commas also splits CODECS="a,b"; no piece of it starts KEY=.
    let attrs = line.split_once(':').map_or("", |(_, a)| a);
    attrs
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

/// Issue 16: each variant's BANDWIDTH against the peak segment bit rate of
/// its segments, measured here (RFC 8216 4.3.4.2: BANDWIDTH is the peak, so
/// peak ≤ BANDWIDTH; a BANDWIDTH that lies makes players oscillate). A
/// video variant is its rendition's segments and the audio's of the same
/// number together. Only segments still listed once the master is read are
/// counted (the master speaks for the window it sees). Prints the table.
fn bandwidth_is_at_least_the_measured_peak(server: &Server, name: &str) {
    let base = format!("/live/{name}");
    let master = get(server, &format!("{base}/master.m3u8")).text();
    let mut renditions: Vec<String> = media_uris(&master)
        .iter()
        .filter_map(|u| u.split('/').next().map(String::from))
        .collect();
    renditions.sort();
    renditions.dedup();
    let listed =
        |r: &str| listed_segments(&get(server, &format!("{base}/{r}/playlist.m3u8")).text());
    // Bits per second of each segment, by rendition and number.
    let mut rates: HashMap<String, HashMap<u64, (f64, f64)>> = HashMap::new();
    for r in &renditions {
        for (msn, secs) in listed(r) {
            let bytes = get(server, &format!("{base}/{r}/seg{msn}.m4s")).body.len();
            rates
                .entry(r.clone())
                .or_default()
                .insert(msn, (bytes as f64 * 8.0, secs));
        }
    }
    let master = get(server, &format!("{base}/master.m3u8")).text();
    for r in &renditions {
        let still: Vec<u64> = listed(r).iter().map(|s| s.0).collect();
        if let Some(m) = rates.get_mut(r) {
            m.retain(|msn, _| still.contains(msn));
        }
    }
    let audio = master
        .lines()
        .find(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO"))
        .and_then(|l| l.split("URI=\"").nth(1))
        .and_then(|u| u.split('/').next());
    println!("{name}: variant       BANDWIDTH  measured peak  AVERAGE-BANDWIDTH  measured average  segments");
    let lines: Vec<&str> = master.lines().collect();
    for w in lines.windows(2) {
        if !w[0].starts_with("#EXT-X-STREAM-INF:") {
            continue;
        }
        let rendition = w[1].split('/').next().unwrap();
        let with_audio = w[0].contains("AUDIO=").then_some(audio).flatten();
        let own = &rates[rendition];
        let mut peak = 0.0f64;
        let (mut bits, mut secs) = (0.0, 0.0);
        for (msn, &(b, d)) in own {
            let mut rate = b / d;
            if let Some(a) = with_audio {
                let Some(&(ab, ad)) = rates[a].get(msn) else {
                    continue;
                };
                rate += ab / ad;
            }
            peak = peak.max(rate);
            bits += b;
            secs += d;
        }
        let mut average = bits / secs;
        if let Some(a) = with_audio {
            let (ab, ad) = rates[a]
                .values()
                .fold((0.0, 0.0), |s, v| (s.0 + v.0, s.1 + v.1));
            average += ab / ad;
        }
        let bandwidth = stream_inf_number(w[0], "BANDWIDTH");
        let average_bandwidth = stream_inf_number(w[0], "AVERAGE-BANDWIDTH");
        println!(
            "{name}: {rendition:<12} {bandwidth:>10} {:>14.0} {average_bandwidth:>18} {average:>17.0} {:>9}",
            peak,
            own.len()
        );
        assert!(own.len() >= 2, "{rendition}: too few segments measured");
        // EXTINF has 5 decimals (2.00533 for 2.0053333 s): the rate measured
        // from it can be a few parts per million above the segment's own.
        assert!(
            bandwidth as f64 >= peak * (1.0 - 1e-5),
            "{rendition}: BANDWIDTH {bandwidth} below the measured peak {peak:.0}:\n{master}"
        );
    }
}

#[test]
fn demo_stream_is_valid_ll_hls_and_plays_in_chromium() {
    let server = Server::start_with(DEMO, &["--demo"]);
    let master = wait_master(&server, "demo", 2);
    assert!(
        master.contains("source/playlist.m3u8") && master.contains("360p30/playlist.m3u8"),
        "{master}"
    );
    // The demo's tone: an AAC audio rendition (ffprobe must then find audio).
    assert!(
        master.contains("TYPE=AUDIO") && master.contains("mp4a.40.2"),
        "{master}"
    );
    // Enough segments for a standard-HLS segment (6 × 1 s) and a delta update.
    server.wait_for("a standard-HLS segment", Duration::from_secs(30), || {
        get(&server, "/live/demo/360p30/index.m3u8")
            .text()
            .contains("long")
            .then_some(())
    });
    check_with_third_party_tools(&server, "demo", &master);
    bandwidth_is_at_least_the_measured_peak(&server, "demo");
    play_in_chromium(&server, "demo", "ll", "15", true);
    play_in_chromium(&server, "demo", "standard", "8", false);
}

/// Issue 16: the page's audio-only choice plays the audio-only variant, and
/// the audio timeline it played has no hole (from the segments' bytes: hls.js
/// once reported its own start-up seek, see `hls_js_start_up_seek`).
#[test]
fn demo_audio_only_variant_plays_in_chromium() {
    let server = Server::start_with(DEMO, &["--demo"]);
    let master = wait_master(&server, "demo", 2);
    let r = play_audio_only_in_chromium(&server, "demo", "ll", "8");
    let (_, uri) = audio_only_variant(&master).unwrap();
    let url = r["media"]["levels"][0]["url"].as_str().unwrap();
    assert!(
        url.ends_with(&format!("/live/demo/{uri}")),
        "{url} is not {uri}"
    );
    let (segments, faults) = timeline_faults(&server, &format!("/live/demo/{uri}"));
    assert!(segments.len() >= 4 && faults.is_empty(), "{faults:#?}");
}

#[test]
fn rtmp_push_is_served_with_audio_and_plays_in_chromium() {
    let input = input_360p30_high();
    let server = Server::start("[ingest]\nallow_any_key = true\n");
    let _ff = push(&input.path, &server.rtmp_url("cam"), true);
    let master = wait_master(&server, "cam", 2);
    assert!(
        master.contains("TYPE=AUDIO") && master.contains("mp4a.40.2"),
        "{master}"
    );
    for line in master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF") && l.contains(",RESOLUTION="))
    {
        assert!(
            line.contains("AUDIO=\"aud\"") && line.contains("CODECS=\"avc1."),
            "{line}"
        );
    }
    check_with_third_party_tools(&server, "cam", &master);
    bandwidth_is_at_least_the_measured_peak(&server, "cam");
    play_in_chromium(&server, "cam", "ll", "15", true);
    // Issue 13 (b): with the default 2 s segments every playlist says
    // TARGETDURATION 2 (it was 3, and standard segments were 6 s: hls.js played
    // 17.5-18.8 s behind live); standard mode then plays about 8 s behind.
    for path in [
        "/live/cam/360p30/playlist.m3u8",
        "/live/cam/360p30/index.m3u8",
    ] {
        let text = get(&server, path).text();
        assert!(
            text.contains("#EXT-X-TARGETDURATION:2\n"),
            "{path}:\n{text}"
        );
    }
    play_in_chromium(&server, "cam", "standard", "8", false);
}

fn part_target(playlist: &str) -> f64 {
    let line = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-PART-INF"))
        .unwrap();
    line.split('=').nth(1).unwrap().parse().unwrap()
}

#[test]
fn blocking_reload_preload_hints_delta_updates_and_http_semantics() {
    let server = Server::start_with(DEMO, &["--demo"]);
    wait_master(&server, "demo", 2);
    let path = "/live/demo/360p30/playlist.m3u8";

    // Blocking reload: ask for the hinted part; it must come back when it is
    // published (about a part duration), not at its 3-target-duration
    // deadline (6 s). How fast is printed, not asserted: a loaded 2-core box
    // took 907 ms once for a 333 ms part; the bound below only tells a wake
    // on publication from a request held to its deadline.
    let playlist = get(&server, path).text();
    let target = part_target(&playlist);
    let mut worst: f64 = 0.0;
    for _ in 0..12 {
        let (msn, part) = preload_hint(&get(&server, path).text());
        let t = Instant::now();
        let r = get(&server, &format!("{path}?_HLS_msn={msn}&_HLS_part={part}"));
        let took = t.elapsed().as_secs_f64();
        assert_eq!(r.status, 200);
        // The hinted part, or (when the segment ended early) the next segment's first.
        let text = r.text();
        assert!(
            text.contains(&format!("part{msn}.{part}.m4s\""))
                || text.contains(&format!("part{}.0.m4s\"", msn + 1)),
            "asked for part {msn}.{part}:\n{text}"
        );
        assert!(
            r.header("cache-control").contains("max-age"),
            "{:?}",
            r.headers
        );
        worst = worst.max(took);
    }
    println!(
        "blocking reload: slowest answer {:.0} ms for a {:.0} ms part",
        worst * 1000.0,
        target * 1000.0
    );
    assert!(
        worst < 3.0,
        "slowest blocking reload {worst} s: held toward its 6 s deadline, not woken by the publish"
    );

    // The preload-hinted part itself: requested before it exists, answered on publication.
    let hinted = get(&server, path).text();
    let (msn, part) = preload_hint(&hinted);
    let run = run_dir(&hinted).unwrap().to_string();
    let t = Instant::now();
    let r = get(
        &server,
        &format!("/live/demo/360p30/{run}/part{msn}.{part}.m4s"),
    );
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 8 && &r.body[4..8] == b"moof");
    assert!(t.elapsed().as_secs_f64() <= target + 0.2);
    assert!(r.header("cache-control").contains("immutable"));

    // init + three whole segments, concatenated, decode with the right frame count
    // (1 s segments of the 30 fps rung).
    let listed = get(&server, path).text();
    let segs: Vec<&str> = listed
        .lines()
        .filter(|l| segment_number(l).is_some())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat.mp4");
    let mut bytes = get(&server, "/live/demo/360p30/init0.mp4").body;
    for s in &segs[segs.len() - 3..] {
        bytes.extend(get(&server, &format!("/live/demo/360p30/{s}")).body);
    }
    std::fs::write(&cat, &bytes).unwrap();
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&cat)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&cat)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "90");

    // The API counts playback requests as viewers and lists the renditions.
    let api = server.json("/api/v1/streams/demo");
    assert!(api["viewers"].as_u64().unwrap() > 0, "{api:#}");
    assert!(
        api["renditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "360p30"),
        "{api:#}"
    );

    // Server-side wake-up: publish → parked request answered.
    let origin = server.json("/api/v1/origin");
    let wake = &origin["blocked_wake"];
    println!("blocked wake-up (server): {wake}");
    assert!(wake["count"].as_u64().unwrap() >= 12);
    // A wake on publication (p50 0.2 ms here; p99 51 ms once under a load
    // average of 24), not a request left to its deadline: correctness, with
    // the speed printed above (the origin bench measures it).
    assert!(wake["p99_ms"].as_f64().unwrap() < 3000.0, "{wake}");

    // 400: beyond the edge + 2, or a part without an msn; 404 unknown stream / junk paths.
    let (msn, _) = preload_hint(&get(&server, path).text());
    assert_eq!(
        get(&server, &format!("{path}?_HLS_msn={}", msn + 3)).status,
        400
    );
    assert_eq!(get(&server, &format!("{path}?_HLS_part=1")).status, 400);
    assert_eq!(get(&server, "/live/nope/master.m3u8").status, 404);
    assert_eq!(get(&server, "/live/demo/nope/playlist.m3u8").status, 404);
    for junk in [
        "/live/demo/360p30/..%2F..%2Fetc%2Fpasswd",
        "/live/demo/360p30/seg-1.m4s",
    ] {
        assert_eq!(get(&server, junk).status, 404, "{junk}");
    }
    // A literal `..` sent on the wire (clients normally resolve it away).
    let mut sock = std::net::TcpStream::connect(server.http).unwrap();
    sock.write_all(
        b"GET /live/demo/../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = String::new();
    let _ = sock.read_to_string(&mut raw);
    assert!(raw.starts_with("HTTP/1.1 404"), "{raw}");
    assert!(!raw.contains("root:"));
    // Issue 30: an HTTP/1.1 request without Host is a 400 (RFC 9112 §3.2; it
    // got 200); HTTP/1.0 may leave it out.
    for (request, status) in [
        (
            &b"GET /live/demo/master.m3u8 HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
            "400",
        ),
        (b"GET /live/demo/master.m3u8 HTTP/1.0\r\n\r\n", "200"),
    ] {
        let mut sock = std::net::TcpStream::connect(server.http).unwrap();
        sock.write_all(request).unwrap();
        let mut raw = String::new();
        let _ = sock.read_to_string(&mut raw);
        assert_eq!(raw.split(' ').nth(1), Some(status), "{raw}");
    }

    // Issue 30: blocking reloads abandoned before their answer (the client
    // closes) leave `blocked_waiters` as it was; it only ever rose.
    let waiters = || server.metric("ladderd_http_blocked_waiters", &[]);
    let (msn, _) = preload_hint(&get(&server, path).text());
    let abandoned: Vec<std::net::TcpStream> = (0..6)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(server.http).unwrap();
            let req = format!(
                "GET {path}?_HLS_msn={} HTTP/1.1\r\nHost: x\r\n\r\n",
                msn + 2
            );
            s.write_all(req.as_bytes()).unwrap();
            s
        })
        .collect();
    server.wait_for("6 parked reloads", Duration::from_secs(2), || {
        (waiters() >= 6.0).then_some(())
    });
    drop(abandoned);
    server.wait_for(
        "blocked_waiters back to 0 after the clients went away",
        Duration::from_secs(2),
        || (waiters() == 0.0).then_some(()),
    );

    // Delta update: once more than CAN-SKIP-UNTIL (6 × 2 s) is listed, skip.
    let full = server.wait_for(
        "a playlist long enough to skip",
        Duration::from_secs(40),
        || {
            let t = get(&server, path).text();
            (t.matches("#EXTINF").count() >= 15).then_some(t)
        },
    );
    let delta = get(&server, &format!("{path}?_HLS_skip=YES")).text();
    let skipped: usize = delta
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
        .unwrap_or_else(|| panic!("no EXT-X-SKIP:\n{delta}"))
        .parse()
        .unwrap();
    assert!(skipped > 0);
    let listed = |t: &str| t.matches("#EXTINF").count();
    assert!(
        (listed(&full) as i64 - (listed(&delta) + skipped) as i64).abs() <= 1,
        "full:\n{full}\ndelta:\n{delta}"
    );
    assert_eq!(
        full.lines()
            .find(|l| l.starts_with("#EXT-X-MEDIA-SEQUENCE")),
        delta
            .lines()
            .find(|l| l.starts_with("#EXT-X-MEDIA-SEQUENCE"))
    );
    assert!(get(&server, &format!("{path}?_HLS_skip=v2"))
        .text()
        .contains("#EXT-X-SKIP:"));

    // 410 once evicted from the 19 s window; media objects: ETag, HEAD, Range, CORS.
    server.wait_for("segment 0 evicted", Duration::from_secs(30), || {
        (get(&server, "/live/demo/360p30/seg0.m4s").status == 410).then_some(())
    });
    let first = full
        .lines()
        .rev()
        .find(|l| segment_number(l).is_some())
        .unwrap()
        .to_string();
    let seg = get(&server, &format!("/live/demo/360p30/{first}"));
    assert_eq!(seg.status, 200);
    assert_eq!(seg.header("access-control-allow-origin"), "*");
    assert_eq!(seg.header("accept-ranges"), "bytes");
    let etag = seg.header("etag").to_string();
    let again = request(
        &server,
        "GET",
        &format!("/live/demo/360p30/{first}"),
        &[("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);
    let head = request(&server, "HEAD", &format!("/live/demo/360p30/{first}"), &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), seg.body.len().to_string());
    assert!(head.body.is_empty());
    let part = request(
        &server,
        "GET",
        &format!("/live/demo/360p30/{first}"),
        &[("Range", "bytes=4-7")],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, seg.body[4..8]);
    assert_eq!(
        part.header("content-range"),
        format!("bytes 4-7/{}", seg.body.len())
    );
    assert_eq!(
        request(
            &server,
            "GET",
            &format!("/live/demo/360p30/{first}"),
            &[("Range", "bytes=99999999-")]
        )
        .status,
        416
    );
    // Playlists: gzip when asked.
    let zipped = request(&server, "GET", path, &[("Accept-Encoding", "gzip")]);
    assert_eq!(zipped.header("content-encoding"), "gzip");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.starts_with("#EXTM3U"));
}

/// Time to first and last body byte of a GET, and the body.
fn timed_get(server: &Server, path: &str) -> (f64, f64, Vec<u8>) {
    let t = Instant::now();
    let resp = ureq::get(&format!("http://{}{path}", server.http))
        .timeout(Duration::from_secs(15))
        .call()
        .unwrap();
    let mut reader = resp.into_reader();
    let mut body = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut first = None;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        first.get_or_insert(t.elapsed().as_secs_f64());
        body.extend_from_slice(&buf[..n]);
    }
    (first.unwrap_or(f64::NAN), t.elapsed().as_secs_f64(), body)
}

/// The preload-hinted part, requested before it exists: with chunked parts it
/// streams frame by frame as they are written; without, it comes whole when
/// complete. Same bytes either way as a later plain GET.
#[test]
fn hinted_part_streams_frame_by_frame_or_arrives_whole() {
    for chunked in [true, false] {
        // No drain: SIGTERM below goes straight to shutdown.
        let config = format!("{DEMO}chunked_parts = {chunked}\n\n[server]\ndrain_secs = 0.0\n");
        let mut server = Server::start_with(&config, &["--demo"]);
        wait_master(&server, "demo", 2);
        let path = "/live/demo/360p30/playlist.m3u8";
        let (mut firsts, mut lasts) = (Vec::new(), Vec::new());
        for _ in 0..6 {
            let (msn, part) = preload_hint(&get(&server, path).text());
            let uri = format!("/live/demo/360p30/part{msn}.{part}.m4s");
            let (first, last, body) = timed_get(&server, &uri);
            // What was streamed is the part as published.
            let whole = get(&server, &uri);
            assert_eq!(whole.status, 200);
            assert_eq!(body, whole.body, "{uri}");
            let moofs = body.windows(4).filter(|w| w == b"moof").count();
            if chunked {
                assert!(moofs >= 2, "one fragment per frame: {moofs}");
            } else {
                assert_eq!(moofs, 1);
            }
            firsts.push(first);
            lasts.push(last);
        }
        println!(
            "hinted part, chunked_parts = {chunked}: first byte median {:.0} ms, last byte median {:.0} ms after the request",
            median(&firsts) * 1000.0,
            median(&lasts) * 1000.0
        );
        if chunked {
            // Streamed: the first frame's bytes came well before the part was done.
            assert!(
                median(&lasts) - median(&firsts) > 0.05,
                "{firsts:?} {lasts:?}"
            );
            streamed_bytes_are_counted(&server, path);
            sigterm_lets_a_streamed_part_finish(&mut server, path);
        }
    }
}

/// Issue 30: `http_out_bytes_total` took a body's length up front, so a part
/// streamed as it was written (no length yet) counted nothing.
fn streamed_bytes_are_counted(server: &Server, path: &str) {
    let (msn, part) = preload_hint(&get(server, path).text());
    let uri = format!("/live/demo/360p30/part{msn}.{part}.m4s");
    let before = server.get("/metrics").unwrap().1;
    let (first, last, body) = timed_get(server, &uri);
    // Less the /metrics answer read before it (nothing else asks meanwhile).
    let counted = server.metric("ladderd_http_out_bytes_total", &[])
        - metric_in(&before, "ladderd_http_out_bytes_total", &[])
        - before.len() as f64;
    println!(
        "streamed part of {} bytes over {:.0} ms: {counted} bytes counted",
        body.len(),
        (last - first) * 1000.0
    );
    assert!(
        counted >= body.len() as f64,
        "{counted} bytes counted for a {} byte streamed part",
        body.len()
    );
}

/// Issue 30: SIGTERM cut the parts being streamed mid-body. The hinted part,
/// its head in (it is streaming), then SIGTERM: the body still ends with the
/// chunked terminator, whole boxes, and the process exits 0.
fn sigterm_lets_a_streamed_part_finish(server: &mut Server, path: &str) {
    let mut buf = [0u8; 65536];
    let (mut sock, mut got) = (0..5)
        .find_map(|_| {
            let (msn, part) = preload_hint(&get(server, path).text());
            let mut sock = std::net::TcpStream::connect(server.http).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let req =
                format!("GET /live/demo/360p30/part{msn}.{part}.m4s HTTP/1.1\r\nHost: x\r\n\r\n");
            sock.write_all(req.as_bytes()).unwrap();
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).unwrap();
                assert!(n > 0, "closed before the head");
                got.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            // Complete by the time it was answered: not streamed, try the next.
            head.contains("transfer-encoding: chunked")
                .then_some((sock, got))
        })
        .expect("a part streamed in 5 tries");
    unsafe_kill(server.pid(), libc_sig::TERM);
    loop {
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("the part was cut after {} bytes: {e}", got.len()),
        }
    }
    let at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    // De-chunk: SIZE\r\nDATA\r\n … 0\r\n\r\n.
    let (mut rest, mut body, mut ended) = (&got[at..], Vec::new(), false);
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
        if size == 0 {
            ended = &rest[eol..] == b"\r\n\r\n";
            break;
        }
        assert!(rest.len() >= eol + 2 + size + 2, "a chunk cut short");
        body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
    assert!(
        ended,
        "no chunked terminator after {} body bytes",
        body.len()
    );
    // Whole top-level boxes (moof, mdat, …) to the last byte.
    let mut off = 0;
    while off + 8 <= body.len() {
        let size = u32::from_be_bytes(body[off..off + 4].try_into().unwrap()) as usize;
        assert!(size >= 8, "box size {size} at {off}");
        off += size;
    }
    assert_eq!(off, body.len(), "boxes do not end with the body");
    println!("streamed part finished after SIGTERM: {} bytes", body.len());
    let code = server.exited_within(Duration::from_secs(8));
    assert!(code.success(), "{code}");
}

// ---- issue 12: what trying to break the origin found ----

/// Lab ingest without a ladder, 1 s segments, a publisher allowed to go quiet
/// and no slate (issue 15's slate would fill the silence these tests need).
const QUIET: &str = "[ingest]\nallow_any_key = true\nslate_after_ms = 0\n\n[ladder]\nenabled = false\nsegment_secs = 1.0\n\n[limits]\nrtmp_idle_timeout_secs = 60.0\n";

/// The test input's FLV tags as (timestamp ms, kind, body).
fn flv_tags() -> Vec<(u32, u8, Vec<u8>)> {
    let flv = input_360p30_flv();
    FileTags::new(Bytes::from(std::fs::read(&flv).unwrap()))
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            (t.timestamp_ms, t.kind, t.body.to_vec())
        })
        .collect()
}

/// Sends the tags with timestamps in `from..to` (ms) at their real-time pace from `start`.
fn send_tags(
    client: &mut RawClient,
    tags: &[(u32, u8, Vec<u8>)],
    from: u32,
    to: u32,
    start: Instant,
) {
    for (ts, kind, body) in tags.iter().filter(|t| (from..to).contains(&t.0)) {
        if let Some(wait) = Duration::from_millis(*ts as u64).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        match kind {
            9 => client.video(body, *ts).unwrap(),
            8 => client.audio(body, *ts).unwrap(),
            _ => {}
        }
    }
}

fn target_duration(playlist: &str) -> f64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .unwrap()
        .parse()
        .unwrap()
}

/// A raw HTTP/1.1 exchange (no client library between us and the bytes):
/// the status and the headers (lower-case names).
fn raw_request(server: &Server, method: &str, path: &str) -> (u16, HashMap<String, String>) {
    let mut s = std::net::TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// Issue 12 item 6: `long18446744073709551615.m4s` was a 200 with an empty body
/// and `Cache-Control: immutable`. Out-of-range numbers in any object name are 404.
#[test]
fn standard_segment_number_overflow_is_404_over_http() {
    let server = Server::start_with(DEMO, &["--demo"]);
    wait_master(&server, "demo", 2);
    let base = "/live/demo/360p30";
    for file in [
        "long18446744073709551615.m4s",
        "long6148914691236517205.m4s",
        "long18446744073709551616.m4s",
        "seg18446744073709551615.m4s",
        "part18446744073709551615.4294967295.m4s",
        "part0.4294967296.m4s",
        "init4294967295.mp4",
        "seg01.m4s",
    ] {
        let r = get(&server, &format!("{base}/{file}"));
        assert_eq!(r.status, 404, "{file}: {}", r.text());
        assert!(!r.header("cache-control").contains("immutable"), "{file}");
    }
    for q in [
        "_HLS_msn=18446744073709551615",
        "_HLS_msn=18446744073709551615&_HLS_part=4294967295",
    ] {
        assert_eq!(
            get(&server, &format!("{base}/playlist.m3u8?{q}")).status,
            400,
            "{q}"
        );
    }
    for q in [
        "_HLS_msn=18446744073709551616",
        "_HLS_msn=1&_HLS_part=4294967296",
    ] {
        assert_eq!(
            get(&server, &format!("{base}/playlist.m3u8?{q}")).status,
            400,
            "{q}"
        );
    }
}

/// Issue 12 item 7: HEAD of a part still being written answered
/// `content-length: 0` while its GET sent 31 KB. HEAD must carry the GET's
/// final length (or none): never a wrong one.
#[test]
fn head_of_part_in_progress_has_no_wrong_content_length() {
    let server = Server::start_with(&format!("{DEMO}chunked_parts = true\n"), &["--demo"]);
    wait_master(&server, "demo", 2);
    let path = "/live/demo/360p30/playlist.m3u8";
    for _ in 0..6 {
        // The hinted part does not exist yet: HEAD it while it is being written.
        let (msn, part) = preload_hint(&get(&server, path).text());
        let uri = format!("/live/demo/360p30/part{msn}.{part}.m4s");
        let (status, headers) = raw_request(&server, "HEAD", &uri);
        assert_eq!(status, 200, "HEAD {uri}");
        let whole = get(&server, &uri);
        assert_eq!(whole.status, 200);
        assert!(whole.body.len() > 100, "{uri}: {} bytes", whole.body.len());
        if let Some(len) = headers.get("content-length") {
            assert_eq!(
                len.parse::<usize>().unwrap(),
                whole.body.len(),
                "HEAD {uri} claimed {len}, GET sent {}",
                whole.body.len()
            );
        }
        println!(
            "HEAD {uri}: content-length {:?}, GET {} bytes",
            headers.get("content-length"),
            whole.body.len()
        );
    }
}

/// Issue 12 item 8: for the first seconds of a stream `master.m3u8` was a 200
/// without variants, which hls.js treats as fatal ("no levels found"). Before
/// the first variant it blocks (up to one target duration) and then answers 503
/// with Retry-After (hls.js retries a 5xx manifest load); a request made
/// before the first segment completes gets the variants as soon as it does.
#[test]
fn master_before_renditions_is_not_a_200_without_variants() {
    let server = Server::start(QUIET);
    let tags = flv_tags();
    let mut client = RawClient::publish(server.rtmp, "early");
    // Half a second of media: no segment can be complete.
    send_tags(&mut client, &tags, 0, 500, Instant::now());
    let t = Instant::now();
    let early = server.wait_for("the stream in the store", Duration::from_secs(10), || {
        let r = get(&server, "/live/early/master.m3u8");
        (r.status != 404).then_some(r)
    });
    let variants = early.text().matches("#EXT-X-STREAM-INF").count();
    println!(
        "master.m3u8 before any segment: {} with {variants} variants after {:.2} s",
        early.status,
        t.elapsed().as_secs_f64()
    );
    assert!(
        early.status == 503 || (early.status == 200 && variants > 0),
        "before any segment: {} with {variants} variants:\n{}",
        early.status,
        early.text()
    );
    if early.status == 503 {
        assert_eq!(early.header("retry-after"), "1");
        assert_eq!(early.header("cache-control"), "no-store");
    }
    // Ask before the first segment completes; publish the rest meanwhile.
    let resume = Instant::now() - Duration::from_millis(500);
    let publisher = std::thread::spawn(move || {
        send_tags(&mut client, &tags, 500, 5000, resume);
        client
    });
    // Every answer is a 200 with variants or a 503 to retry, never a 200 without.
    let t = Instant::now();
    let mut answers = Vec::new();
    let master = server.wait_for("variants", Duration::from_secs(30), || {
        let r = get(&server, "/live/early/master.m3u8");
        let variants = r.text().matches("#EXT-X-STREAM-INF").count();
        answers.push((r.status, variants, t.elapsed().as_secs_f64()));
        match r.status {
            200 => {
                assert!(variants > 0, "a 200 without variants:\n{}", r.text());
                Some(r.text())
            }
            503 => {
                assert_eq!(r.header("retry-after"), "1");
                None
            }
            other => panic!("master.m3u8: {other} {}", r.text()),
        }
    });
    println!("master.m3u8 asked before the first segment: (status, variants, s) {answers:?}");
    assert!(master.contains("#EXT-X-STREAM-INF"));
    drop(publisher.join().unwrap());
}

/// Issue 12 item 11: a request for the hinted part while the publisher was
/// paused took 9.98 s: the part had started (a 200 was sent) and its body
/// waited for the publisher's idle timeout, past the 3-target-duration limit
/// blocking playlist reloads honour (503 after 9.00 s). A part request now
/// gives up at the same limit: with the same 503 when it is asked after the
/// writer went quiet (the audio rendition's hinted part has chunks written:
/// the case that hung), and by cutting the body when the pause comes while it
/// is already streaming.
#[test]
fn part_request_blocks_at_most_three_target_durations() {
    let server = Server::start(QUIET);
    let tags = flv_tags();
    let mut client = RawClient::publish(server.rtmp, "paused");
    let start = Instant::now();
    // Stop mid-part: the hinted parts have frames written and get no more.
    let publisher = std::thread::spawn(move || {
        send_tags(&mut client, &tags, 0, 3150, start);
        client
    });
    let url = |uri: &str| format!("http://{}{uri}", server.http);
    let hint_of = |rendition: &str| {
        let playlist = get(&server, &format!("/live/paused/{rendition}/playlist.m3u8")).text();
        let (msn, part) = preload_hint(&playlist);
        (
            target_duration(&playlist),
            format!("/live/paused/{rendition}/part{msn}.{part}.m4s"),
        )
    };

    // Asked while the publisher still sends, paused while (possibly) streaming:
    // whatever the path, the request is over by the limit.
    std::thread::sleep(Duration::from_millis(3020).saturating_sub(start.elapsed()));
    let (target, uri) = hint_of("audio");
    let limit = 3.0 * target;
    let t = Instant::now();
    let outcome = match ureq::get(&url(&uri))
        .timeout(Duration::from_secs(30))
        .call()
    {
        Ok(r) => {
            let mut body = Vec::new();
            match r.into_reader().read_to_end(&mut body) {
                Ok(_) => format!("200, whole part ({} bytes)", body.len()),
                Err(e) => format!("200, cut after {} bytes: {e}", body.len()),
            }
        }
        Err(ureq::Error::Status(code, _)) => code.to_string(),
        Err(e) => format!("{e}"),
    };
    let took = t.elapsed().as_secs_f64();
    println!("{uri} asked before the pause: {outcome} after {took:.2} s (limit {limit} s)");
    assert!(took < limit + 2.0, "{uri}: {outcome} after {took:.2} s");
    let client = publisher.join().unwrap();

    // Asked after the pause: the same 503 at the same limit as the playlist.
    std::thread::sleep(Duration::from_millis(1500));
    for what in ["audio part", "source part", "playlist"] {
        let (target, uri) = match what {
            "audio part" => hint_of("audio"),
            "source part" => hint_of("source"),
            _ => {
                let path = "/live/paused/source/playlist.m3u8";
                let playlist = get(&server, path).text();
                let (msn, part) = preload_hint(&playlist);
                (
                    target_duration(&playlist),
                    format!("{path}?_HLS_msn={msn}&_HLS_part={}", part + 1),
                )
            }
        };
        let t = Instant::now();
        let status = match ureq::get(&url(&uri))
            .timeout(Duration::from_secs(30))
            .call()
        {
            Ok(r) => {
                let mut body = Vec::new();
                let read = r.into_reader().read_to_end(&mut body);
                let took = t.elapsed().as_secs_f64();
                panic!(
                    "{what} {uri}: 200 after {took:.2} s, {} bytes, {read:?}",
                    body.len()
                );
            }
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{what} {uri}: {e} after {:.2} s", t.elapsed().as_secs_f64()),
        };
        let took = t.elapsed().as_secs_f64();
        println!("{what} {uri} asked while paused: {status} after {took:.2} s (target {target})");
        assert_eq!(status, 503, "{what}");
        assert!(
            (3.0 * target - 0.5..3.0 * target + 2.0).contains(&took),
            "{what}: 503 after {took} s (target {target})"
        );
    }
    drop(client);
}

/// One attacker connection: returns seconds until the server closed it
/// (None: still open after `give_up`), and whether it was answered 503.
fn attacker(addr: std::net::SocketAddr, trickle: bool, give_up: Duration) -> (Option<f64>, bool) {
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let request = b"GET /live/demo/master.m3u8 HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while t.elapsed() < give_up {
        if trickle && sent < request.len() {
            if s.write_all(&request[sent..sent + 1]).is_err() {
                return (
                    Some(t.elapsed().as_secs_f64()),
                    got.starts_with(b"HTTP/1.1 503"),
                );
            }
            sent += 1;
        }
        match s.read(&mut buf) {
            Ok(0) => {
                return (
                    Some(t.elapsed().as_secs_f64()),
                    got.starts_with(b"HTTP/1.1 503"),
                )
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                return (
                    Some(t.elapsed().as_secs_f64()),
                    got.starts_with(b"HTTP/1.1 503"),
                )
            }
        }
    }
    (None, false)
}

/// Issue 12 item 10: headers sent a byte at a time never timed out (200 such
/// connections were open after 70 s, past the 60 s idle timeout) and nothing
/// capped HTTP connections. Now a connection owes its headers within
/// `server.http_header_timeout_secs` and at most `server.http_max_connections`
/// are open (beyond: 503 and close, counted). A viewer playing through both
/// attacks keeps playing, and a new viewer gets in once the deadline frees slots.
#[test]
fn slow_headers_time_out_and_cap_holds_viewer_plays() {
    const CAP: usize = 40;
    let header_secs = 2.0;
    let config = format!(
        "{DEMO}\n[server]\nhttp_header_timeout_secs = {header_secs}\nhttp_max_connections = {CAP}\n"
    );
    let server = Server::start_with(&config, &["--demo"]);
    wait_master(&server, "demo", 2);
    let path = "/live/demo/360p30/playlist.m3u8";

    // A viewer already playing, on one keep-alive connection.
    let viewer = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .max_idle_connections(1)
        .build();
    let base = format!("http://{}", server.http);
    let playlist = viewer
        .get(&format!("{base}{path}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let (mut msn, mut part) = preload_hint(&playlist);

    // The attack: half slowloris (a header byte every 250 ms), half silent,
    // together filling every slot but the viewer's, plus 10 more (refused).
    let addr = server.http;
    let attackers: Vec<_> = (0..CAP - 1 + 10)
        .map(|i| std::thread::spawn(move || attacker(addr, i % 2 == 0, Duration::from_secs(20))))
        .collect();
    // Meanwhile the viewer plays: blocking reload for the hinted part, then the part.
    let (mut parts, mut errors) = (0, Vec::new());
    let play_until = Instant::now() + Duration::from_secs_f64(4.0 + 2.0 * header_secs);
    while Instant::now() < play_until {
        let reload = format!("{base}{path}?_HLS_msn={msn}&_HLS_part={part}");
        match viewer.get(&reload).call().map(|r| r.into_string()) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => errors.push(format!("{reload}: {e}")),
            Err(e) => errors.push(format!("{reload}: {e}")),
        }
        let uri = format!("{base}/live/demo/360p30/part{msn}.{part}.m4s");
        match viewer.get(&uri).call() {
            Ok(r) => {
                let mut body = Vec::new();
                r.into_reader().read_to_end(&mut body).unwrap();
                assert!(!body.is_empty());
                parts += 1;
            }
            Err(e) => errors.push(format!("{uri}: {e}")),
        }
        let playlist = viewer
            .get(&format!("{base}{path}"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let next = preload_hint(&playlist);
        (msn, part) = next;
    }
    let results: Vec<_> = attackers.into_iter().map(|a| a.join().unwrap()).collect();
    let refused = results.iter().filter(|r| r.1).count();
    let slowest = results.iter().filter_map(|r| r.0).fold(0.0f64, f64::max);
    let open = results.iter().filter(|r| r.0.is_none()).count();
    println!(
        "viewer: {parts} parts, {} errors; attackers: {refused} refused (503), {open} still open after 20 s, last closed after {slowest:.2} s",
        errors.len()
    );
    assert!(errors.is_empty(), "the playing viewer failed: {errors:?}");
    assert!(parts >= 5, "the viewer fetched only {parts} parts");
    assert_eq!(
        open, 0,
        "slow or silent connections outlived the header deadline"
    );
    // Generous: the deadline is 2 s; the bound only catches "never".
    assert!(
        slowest < header_secs + 8.0,
        "a header-less connection lived {slowest} s"
    );
    assert!(refused >= 1, "nothing was refused at the cap");

    // A new viewer while the cap is full again: refused at first at most, in
    // once the deadline frees a slot.
    let addr = server.http;
    let attackers: Vec<_> = (0..CAP + 10)
        .map(|i| std::thread::spawn(move || attacker(addr, i % 2 == 0, Duration::from_secs(20))))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let mut tries = 0;
    let master = server.wait_for("a new viewer to get in", Duration::from_secs(30), || {
        tries += 1;
        let r = ureq::get(&format!("{base}/live/demo/master.m3u8"))
            .timeout(Duration::from_secs(10))
            .call()
            .ok()?;
        r.into_string().ok()
    });
    println!(
        "new viewer: in after {:.2} s, {tries} tries",
        t.elapsed().as_secs_f64()
    );
    assert!(master.contains("#EXT-X-STREAM-INF"));
    for a in attackers {
        a.join().unwrap();
    }
    let metrics = get(&server, "/metrics").text();
    let m = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    println!(
        "metrics: refused {} header timeouts {} open {}",
        m("ladderd_http_connections_refused_total"),
        m("ladderd_http_header_timeouts_total"),
        m("ladderd_http_connections")
    );
    assert!(m("ladderd_http_connections_refused_total") >= refused as f64);
    assert!(m("ladderd_http_header_timeouts_total") >= (CAP - 1 - refused) as f64);
    assert!(m("ladderd_http_connections") <= CAP as f64);
}
