//! The edge tier (issue 19): Varnish 7.1 with `deploy/varnish/` as shipped
//! (its VCL and parameters; only the backend's address is the test's) in
//! front of ladderd. hls.js plays through it; simulated LL-HLS viewers
//! through it cost the origin one request per object.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The Varnish in front is one address carrying every viewer: exempt from
/// the per-client caps, as deploy/varnish/README.md tells operators.
const DEMO: &str = "[demo]\nwidth = 640\nheight = 360\n\n\
[server]\nlimit_exempt = [\"127.0.0.1\"]\n\n\
[ladder]\nsegment_secs = 1.0\n\n\
[[ladder.rungs]]\nname = \"240p30\"\nheight = 240\nfps = 30\nbitrate_kbps = 400\n";

/// One edge test at a time: each runs a ladder, Varnish and a browser or
/// 500 simulated viewers, which on 2 cores must not compete with another's.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
}

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/varnish")
}

/// The requests that show varnishncsa has attached (left out of its log's reading).
const NCSA_PROBE: &str = "/healthz?varnishncsa-probe=";

/// varnishd in the foreground on a free port, with `varnishncsa` logging
/// every request it sends to the origin.
struct Varnish {
    varnishd: Child,
    ncsa: Child,
    addr: SocketAddr,
    backend_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Varnish {
    fn start(origin: SocketAddr) -> Varnish {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        Varnish::start_on(origin, addr)
    }

    /// On `addr`, known before the origin starts (its config names it).
    fn start_on(origin: SocketAddr, addr: SocketAddr) -> Varnish {
        require("varnishd");
        require("varnishncsa");
        let dir = tempfile::tempdir().unwrap();
        // The shipped backend file, pointed at this test's origin.
        let shipped = std::fs::read_to_string(deploy().join("ladderd-backend.vcl")).unwrap();
        let backend = shipped
            .replace("\"127.0.0.1\"", &format!("\"{}\"", origin.ip()))
            .replace("\"8080\"", &format!("\"{}\"", origin.port()));
        assert_ne!(backend, shipped, "the backend file names 127.0.0.1:8080");
        std::fs::write(dir.path().join("ladderd-backend.vcl"), backend).unwrap();
        let params: Vec<String> = std::fs::read_to_string(deploy().join("varnishd.params"))
            .unwrap()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        assert!(params.iter().any(|p| p.starts_with("thread_pool_min=")));
        let work = dir.path().join("work");
        let mut cmd = Command::new("varnishd");
        cmd.args(["-F", "-j", "none", "-n"])
            .arg(&work)
            .args(["-a", &addr.to_string(), "-s", "malloc,256m", "-f"])
            .arg(deploy().join("ladderd.vcl"))
            .arg("-p")
            .arg(format!(
                "vcl_path={}:{}",
                dir.path().display(),
                deploy().display()
            ));
        for p in &params {
            cmd.args(["-p", p]);
        }
        let varnishd = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("varnishd.log")).unwrap())
            .spawn()
            .expect("varnishd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "varnishd did not listen: {}",
                std::fs::read_to_string(dir.path().join("varnishd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let backend_log = dir.path().join("backend.log");
        let ncsa = Command::new("varnishncsa")
            .arg("-n")
            .arg(&work)
            .args(["-b", "-F", "%U%q %s"])
            .stdout(std::fs::File::create(&backend_log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("varnishncsa");
        let v = Varnish {
            varnishd,
            ncsa,
            addr,
            backend_log,
            _dir: dir,
        };
        // varnishncsa attaches to the log a moment after it starts: probes
        // (passed to the origin) until one of them is in its log.
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in 0.. {
            let probe = format!("{NCSA_PROBE}{n}");
            let _ = ureq::get(&format!("{}{probe}", v.base())).call();
            let seen = std::fs::read_to_string(&v.backend_log)
                .unwrap_or_default()
                .contains(NCSA_PROBE);
            if seen {
                break;
            }
            assert!(Instant::now() < deadline, "varnishncsa logged no request");
            std::thread::sleep(Duration::from_millis(100));
        }
        v
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request Varnish sent to the origin so far: (path?query, status),
    /// the start-up probes aside.
    fn backend_requests(&self) -> Vec<(String, u16)> {
        std::fs::read_to_string(&self.backend_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with(NCSA_PROBE))
            .filter_map(|l| {
                let (url, status) = l.rsplit_once(' ')?;
                Some((url.to_string(), status.parse().ok()?))
            })
            .collect()
    }

    /// [`Self::backend_requests`] once `done` holds of them (varnishncsa
    /// writes a request when it completes), or at most 10 s on.
    fn backend_requests_when(
        &self,
        mut done: impl FnMut(&[(String, u16)]) -> bool,
    ) -> Vec<(String, u16)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.backend_requests();
            if done(&r) || Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        let _ = self.ncsa.kill();
        let _ = self.ncsa.wait();
        let _ = self.varnishd.kill();
        let _ = self.varnishd.wait();
    }
}

/// One GET through Varnish: (status, headers lower-cased, body).
fn get(addr: SocketAddr, path: &str) -> (u16, HashMap<String, String>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<HashMap<_, _>>();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// The demo's 240p30 media playlist through the edge, once it lists a segment.
fn wait_for_playlist(v: &Varnish) -> String {
    wait_for_playlist_at(v, "/live/demo/240p30/playlist.m3u8")
}

/// The media playlist at `path` through the edge, once it lists a segment.
fn wait_for_playlist_at(v: &Varnish, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _, body) = get(v.addr, path);
        let text = String::from_utf8_lossy(&body).to_string();
        if status == 200 && text.contains("#EXTINF:") {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no playlist {path} through the edge: {status} {text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Objects come back from the edge byte for byte as from the origin; a
/// second fetch is a hit; errors are not cached; the API is not cached.
#[test]
fn the_edge_caches_media_by_its_headers_and_passes_errors_through() {
    let _alone = alone();
    let server = Server::start_with(DEMO, &["--demo"]);
    let v = Varnish::start(server.http);
    let text = wait_for_playlist(&v);
    let seg = text
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .unwrap()
        .to_string();
    let path = format!("/live/demo/240p30/{seg}");
    let (st, h1, b1) = get(v.addr, &path);
    assert_eq!(st, 200);
    assert_eq!(h1["x-cache"], "MISS", "{h1:?}");
    assert!(h1["cache-control"].contains("immutable"), "{h1:?}");
    let (_, h2, b2) = get(v.addr, &path);
    assert_eq!(h2["x-cache"], "HIT", "{h2:?}");
    assert_eq!(b1, b2);
    assert_eq!(
        b1,
        server.get_bytes(&path),
        "the edge's copy is the origin's"
    );
    // A 404 is not kept: each one reaches the origin.
    for _ in 0..2 {
        let (st, h, _) = get(v.addr, "/live/demo/240p30/seg999999.m4s");
        assert_eq!(st, 404);
        assert_eq!(h["x-cache"], "MISS", "{h:?}");
    }
    // The API and metrics are passed, never cached.
    let (st, h, _) = get(v.addr, "/api/v1/streams");
    assert_eq!(st, 200);
    assert_eq!(h["x-cache"], "MISS");
    let missing = |r: &[(String, u16)]| {
        r.iter()
            .filter(|(u, _)| u.ends_with("seg999999.m4s"))
            .count()
    };
    let origin = v.backend_requests_when(|r| missing(r) >= 2);
    let misses = missing(&origin);
    assert_eq!(misses, 2, "{origin:?}");
    assert_eq!(
        origin.iter().filter(|(u, _)| *u == path).count(),
        1,
        "{origin:?}"
    );
}

/// hls.js plays the demo through Varnish as it does direct: no stall, no
/// error, no hole, every rendition. Glass-to-glass is printed for both (the
/// note compares them; a test does not fail on a timing).
#[test]
fn hls_js_plays_through_the_edge() {
    let _alone = alone();
    let server = Server::start_with(DEMO, &["--demo"]);
    let v = Varnish::start(server.http);
    wait_for_playlist(&v);
    let direct = play_in_chromium(&server, "demo", "ll", "12", false);
    let edge = play_in_chromium_at(&v.base(), "demo", "ll", "12", true, &[]);
    let g2g = |r: &Value| {
        median(
            &r["glassToGlass"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_f64)
                .collect::<Vec<_>>(),
        )
    };
    println!(
        "glass-to-glass median: direct {:.3} s, through Varnish {:.3} s",
        g2g(&direct),
        g2g(&edge)
    );
    // It did play from the edge: media requests reached the origin through it.
    let origin = v.backend_requests();
    assert!(
        origin.iter().filter(|(u, _)| u.contains(".m4s")).count() >= 10,
        "{origin:?}"
    );
}

/// What kind of object a request is, for the fan-in table.
fn kind(url: &str) -> &'static str {
    let path = url.split('?').next().unwrap_or(url);
    if path.ends_with(".m3u8") {
        if url.contains("_HLS_msn") {
            "blocking-playlist"
        } else {
            "playlist"
        }
    } else if path
        .rsplit('/')
        .next()
        .is_some_and(|f| f.starts_with("part"))
    {
        "part"
    } else if path.ends_with(".m4s") {
        "segment"
    } else if path.ends_with(".mp4") {
        "init"
    } else {
        "other"
    }
}

/// 500 simulated LL-HLS viewers (blocking playlist reloads and preload-hinted
/// parts, as hls.js does at the live edge) for 60 s through Varnish: no viewer
/// error, and the origin sees about one request per object, however many
/// viewers asked for it (fan-in).
#[test]
fn five_hundred_ll_viewers_through_the_edge_cost_one_origin_request_per_object() {
    let _alone = alone();
    let server = Server::start_with(DEMO, &["--demo"]);
    let v = Varnish::start(server.http);
    wait_for_playlist(&v);
    let before = v.backend_requests().len();
    let url = format!("{}/live/demo/240p30/playlist.m3u8", v.base());
    let r = node("ll-viewers.mjs", &[&url, "500", "60"]);
    println!("viewers: {r}");
    // varnishncsa writes a request once it completes: wait for it to settle.
    let mut seen = 0;
    let origin = v.backend_requests_when(|r| {
        let settled = r.len() == seen;
        seen = r.len();
        settled
    });
    let origin: Vec<(String, u16)> = origin[before..].to_vec();
    let mut per_object: BTreeMap<&str, HashMap<&str, usize>> = BTreeMap::new();
    for (u, _) in &origin {
        *per_object
            .entry(kind(u))
            .or_default()
            .entry(u.as_str())
            .or_default() += 1;
    }
    println!(
        "object type | viewer requests | objects | origin requests | origin requests per object"
    );
    for (k, objects) in &per_object {
        let origin_requests: usize = objects.values().sum();
        println!(
            "{k} | {} | {} | {origin_requests} | {:.3}",
            r["requests"][k],
            r["objects"][k],
            origin_requests as f64 / objects.len() as f64
        );
    }
    assert_eq!(r["errors"], serde_json::json!({}), "{r:#}");
    let parts = r["parts"].as_u64().unwrap();
    assert!(parts >= 500 * 60, "each viewer followed the stream: {r:#}");
    // Fan-in: every part and every blocking playlist reload, each asked for by
    // up to 500 viewers, reached the origin once.
    for k in ["part", "blocking-playlist"] {
        let objects = &per_object[k];
        let repeated: Vec<_> = objects.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            repeated.is_empty(),
            "{k} fetched from the origin more than once: {repeated:?}"
        );
        let viewer_requests = r["requests"][k].as_u64().unwrap();
        assert!(
            viewer_requests >= 100 * objects.len() as u64,
            "{k}: {viewer_requests} viewer requests for {} origin requests",
            objects.len()
        );
    }
    let errors: Vec<_> = origin.iter().filter(|(_, s)| *s != 200).collect();
    assert!(
        errors.is_empty(),
        "the origin answered the edge with errors: {errors:?}"
    );
}

/// Content steering (issue 19): the origin lists every variant on two CDN
/// pathways (a Varnish each, `[cdn] pathways`) and serves the steering
/// manifest; hls.js plays from pathway A, A's edge is killed mid-play, and
/// playback moves to B without a fatal error and goes on. The MPD lists a
/// BaseURL per pathway and `<ContentSteering>`.
#[test]
fn killing_one_cdn_pathway_moves_hls_js_to_the_other() {
    let _alone = alone();
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    );
    let config = format!(
        "{DEMO}\n[cdn]\nsteering_ttl_secs = 2\n\
         pathways = [{{ id = \"cdn-a\", base_url = \"http://{a_addr}\" }}, \
         {{ id = \"cdn-b\", base_url = \"http://{b_addr}/\" }}]\n"
    );
    let server = Server::start_with(&config, &["--demo"]);
    let a = Varnish::start_on(server.http, a_addr);
    let b = Varnish::start_on(server.http, b_addr);
    wait_for_playlist(&a);

    // The listings, read direct.
    let (status, _, body) = get(server.http, "/live/demo/master.m3u8");
    assert_eq!(status, 200);
    let master = String::from_utf8(body).unwrap();
    assert!(
        master
            .contains("#EXT-X-CONTENT-STEERING:SERVER-URI=\"steering.json\",PATHWAY-ID=\"cdn-a\""),
        "{master}"
    );
    for (id, addr) in [("cdn-a", a_addr), ("cdn-b", b_addr)] {
        let uris: Vec<&str> = master
            .lines()
            .filter(|l| l.starts_with(&format!("http://{addr}/live/demo/")))
            .collect();
        assert!(uris.len() >= 2, "{id}: {master}");
        assert!(master.contains(&format!("PATHWAY-ID=\"{id}\"")), "{master}");
    }
    let (status, headers, body) = get(
        server.http,
        "/live/demo/steering.json?_HLS_pathway=cdn-a&_HLS_throughput=1000000",
    );
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("cache-control").map(String::as_str),
        Some("no-store")
    );
    let steering: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(steering["VERSION"], 1);
    assert_eq!(steering["TTL"], 2);
    assert_eq!(
        steering["PATHWAY-PRIORITY"],
        serde_json::json!(["cdn-a", "cdn-b"])
    );
    let (status, _, body) = get(server.http, "/live/demo/manifest.mpd");
    assert_eq!(status, 200);
    let mpd = String::from_utf8(body).unwrap();
    assert!(
        mpd.contains(&format!(
            "<BaseURL serviceLocation=\"cdn-a\">http://{a_addr}/live/demo/</BaseURL>"
        )),
        "{mpd}"
    );
    assert!(
        mpd.contains(&format!(
            "<BaseURL serviceLocation=\"cdn-b\">http://{b_addr}/live/demo/</BaseURL>"
        )),
        "{mpd}"
    );
    assert!(mpd.contains("<ContentSteering defaultServiceLocation=\"cdn-a\" queryBeforeStart=\"false\">steering.json</ContentSteering>"), "{mpd}");
    // The schema we validate with predates ContentSteering (6th edition);
    // everything else, the serviceLocation BaseURLs included, is checked.
    let older: String = mpd
        .lines()
        .filter(|l| !l.contains("<ContentSteering"))
        .map(|l| format!("{l}\n"))
        .collect();
    xmllint_mpd(&older, "steered MPD");

    // hls.js from the origin's player page; A's edge dies 8 s in.
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut node = Command::new("node")
        .arg(format!(
            "{}/tests/browser/steering.mjs",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args([&format!("http://{}", server.http), "demo", "24"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node");
    let mut out = std::io::BufReader::new(node.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "PLAYING", "steering.mjs: {line}");
    std::thread::sleep(Duration::from_secs(8));
    let killed_ms = unix_ms();
    drop(a);
    line.clear();
    out.read_line(&mut line).unwrap();
    let _ = node.wait();
    let r: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    let summary = |r: &Value| {
        let mut by_host: BTreeMap<(String, bool, bool), u64> = BTreeMap::new();
        for q in r["requests"].as_array().unwrap() {
            let after = q["at"].as_u64().unwrap() >= killed_ms;
            let key = (
                q["host"].as_str().unwrap().to_string(),
                after,
                q["failed"] == true,
            );
            *by_host.entry(key).or_default() += 1;
        }
        by_host
    };
    let by_host = summary(&r);
    println!("media requests (host, after the kill, failed): {by_host:?}");
    println!("steering loads: {}", r["steering"]);
    println!("hls.js errors: {}", r["errors"]);
    assert_eq!(r["pageErrors"].as_array().unwrap().len(), 0, "{r:#}");
    let errors: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!errors.iter().any(|e| e.starts_with("fatal")), "{errors:?}");
    let (a_host, b_host) = (a_addr.to_string(), b_addr.to_string());
    let count = |host: &str, after: bool, failed: bool| {
        by_host
            .get(&(host.to_string(), after, failed))
            .copied()
            .unwrap_or(0)
    };
    // Before: pathway A, the manifest's first, served the media.
    assert!(count(&a_host, false, false) >= 10, "{by_host:?}");
    assert_eq!(count(&b_host, false, false), 0, "{by_host:?}");
    // After: B serves it, successfully, and A is left alone once it failed.
    assert!(count(&b_host, true, false) >= 10, "{by_host:?}");
    let late_a = r["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["host"] == a_host.as_str() && q["at"].as_u64().unwrap() > killed_ms + 5_000)
        .count();
    assert_eq!(
        late_a, 0,
        "pathway A still asked 5 s after its edge died: {r:#}"
    );
    // The steering manifest was read, with the player's pathway.
    assert!(
        r["steering"].as_array().unwrap().iter().any(
            |s| s["status"] == 200 && s["url"].as_str().unwrap().contains("_HLS_pathway=cdn-a")
        ),
        "{r:#}"
    );
    // And playback went on: the last 10 s of the run played at least 8 s.
    let samples = r["samples"].as_array().unwrap();
    let end = samples.last().unwrap();
    let end_at = end["at"].as_u64().unwrap();
    let ten_before = samples
        .iter()
        .find(|s| s["at"].as_u64().unwrap() >= end_at - 10_000)
        .unwrap();
    let played = end["t"].as_f64().unwrap() - ten_before["t"].as_f64().unwrap();
    println!(
        "played {played:.2} s in the last 10 s (A killed {} s before the end)",
        (end_at - killed_ms) / 1000
    );
    assert!(played >= 8.0, "{r:#}");
    drop(b);
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Signed playback URLs (issue 19): with `[playback] signing_key` only a
/// URL `ladderd sign` made plays, direct or through Varnish; a missing,
/// forged, expired or out-of-prefix token is a 403, counted. Through the
/// edge every good token shares one cache entry per object (a second
/// viewer's token is a HIT), the origin checks each token once, and a
/// forged token never gets a cached part. hls.js plays the signed page
/// through the edge. SIGHUP reloads the key: the old key's URLs stop, a bad
/// key file keeps the key in use.
#[test]
fn signed_urls_play_through_the_edge_and_forged_ones_reach_nothing() {
    use ladderd::origin::signing::{Scope, SigningKey};
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("signing.key");
    std::fs::write(&key_path, "k3y-for-the-edge-test-0123456789abcdef\n").unwrap();
    let config = format!(
        "{DEMO}\n[playback]\nsigning_key = \"{}\"\n",
        key_path.display()
    );
    let server = Server::start_with(&config, &["--demo"]);
    let v = Varnish::start(server.http);
    // `ladderd sign` with the same key, for the edge's address.
    let cfg = dir.path().join("sign.toml");
    std::fs::write(&cfg, &config).unwrap();
    let sign = |args: &[&str]| -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_ladderd"))
            .arg("--config")
            .arg(&cfg)
            .arg("sign")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let urls = sign(&["demo", "--ttl", "1h", "--base-url", &v.base()]);
    assert_eq!(urls.len(), 3, "{urls:?}");
    assert!(
        urls[0].starts_with(&format!("{}/live/demo/t/", v.base()))
            && urls[0].ends_with("/master.m3u8"),
        "{urls:?}"
    );
    assert!(
        urls[1].ends_with("/manifest.mpd") && urls[2].contains("/watch/demo?token="),
        "{urls:?}"
    );
    let token1 = token_in(&urls[0]);
    let token2 = token_in(&sign(&["demo", "--ttl", "2h"])[0]);
    assert_ne!(token1, token2);
    let key = SigningKey::load(&key_path).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = key.token(Scope::Live, "demo", now - 10, None).unwrap();
    let other_name = key.token(Scope::Live, "other", now + 3600, None).unwrap();
    // Issue 30: a recording's token (`sign demo --vod`) does not open the live NAME.
    let vod_token = token_in(&sign(&["demo", "--vod"])[0]);
    let mut forged = token1.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });

    // The rendition playlist through the edge with token 1, once it has a part.
    let signed = |t: &str, rest: &str| format!("/live/demo/t/{t}/{rest}");
    let playlist = wait_for_playlist_at(&v, &signed(&token1, "240p30/playlist.m3u8"));
    // Relative URIs: the player resolves them under the token directory.
    let seg = playlist
        .lines()
        .find(|l| l.ends_with(".m4s") && l.contains("seg"))
        .unwrap()
        .to_string();
    assert!(!seg.contains("t/") && !seg.starts_with('/'), "{seg}");
    let (status, h1, body1) = get(v.addr, &signed(&token1, &format!("240p30/{seg}")));
    assert_eq!(status, 200);
    // Another viewer's token: the same cache entry.
    let (status, h2, body2) = get(v.addr, &signed(&token2, &format!("240p30/{seg}")));
    assert_eq!(status, 200);
    assert_eq!(body1, body2);
    assert_eq!(
        h2.get("x-cache").map(String::as_str),
        Some("HIT"),
        "{h1:?} {h2:?}"
    );
    // Bad tokens never reach it.
    for (what, t) in [
        ("forged", &forged),
        ("expired", &expired),
        ("other stream", &other_name),
        ("recording scope", &vod_token),
    ] {
        let (status, h, body) = get(v.addr, &signed(t, &format!("240p30/{seg}")));
        assert_eq!(
            status,
            403,
            "{what}: {h:?} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (status, _, _) = get(v.addr, &format!("/live/demo/240p30/{seg}"));
    assert_eq!(status, 403, "no token");
    // Direct to the origin, the same answers: one body whatever the reason
    // (issue 30: it named the reason, telling forged from expired).
    for path in [
        "/live/demo/master.m3u8".to_string(),
        signed(&forged, "master.m3u8"),
        signed(&expired, "master.m3u8"),
        signed(&vod_token, "master.m3u8"),
    ] {
        let (status, _, body) = get(server.http, &path);
        assert_eq!(
            (status, String::from_utf8_lossy(&body).as_ref()),
            (403, "forbidden\n"),
            "{path}"
        );
    }
    assert_eq!(get(server.http, &signed(&token1, "master.m3u8")).0, 200);
    assert_eq!(get(server.http, &signed(&expired, "master.m3u8")).0, 403);
    // A token for one rendition: that rendition only.
    let narrow = token_in(&sign(&["demo", "--prefix", "240p30"])[0]);
    assert_eq!(get(v.addr, &signed(&narrow, "240p30/playlist.m3u8")).0, 200);
    assert_eq!(get(v.addr, &signed(&narrow, "master.m3u8")).0, 403);
    assert_eq!(
        get(server.http, &signed(&narrow, "source/playlist.m3u8")).0,
        403
    );

    // hls.js plays the signed page through the edge.
    play_in_chromium_query(
        &v.base(),
        "demo",
        &format!("token={token1}"),
        "ll",
        "8",
        false,
        &[],
    );
    // The origin checked token 1 once, however many objects it fetched.
    let origin = v.backend_requests();
    let auth1 = origin
        .iter()
        .filter(|(u, _)| u.contains(&token1) && u.ends_with("/auth"))
        .count();
    let media1 = origin
        .iter()
        .filter(|(u, _)| u.contains(&token1) && u.contains(".m4s"))
        .count();
    println!("origin requests with token 1: {auth1} token checks, {media1} media objects");
    assert_eq!(auth1, 1, "{origin:?}");
    assert!(media1 >= 10, "{origin:?}");

    let metrics = server.get("/metrics").unwrap().1;
    for reason in ["missing", "forged", "expired", "prefix"] {
        assert!(
            metric_in(
                &metrics,
                "ladderd_playback_denied_total",
                &[&format!("reason=\"{reason}\"")]
            ) >= 1.0,
            "{reason}: {metrics}"
        );
    }

    // SIGHUP with a new key: token 1 is refused, a new URL plays.
    std::fs::write(&key_path, "a-new-key-after-rotation-0123456789abcdef\n").unwrap();
    unsafe_kill(server.pid(), libc::SIGHUP);
    let fresh = token_in(&sign(&["demo"])[0]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(server.http, &signed(&token1, "master.m3u8")).0 != 403 {
        assert!(
            Instant::now() < deadline,
            "the old key still opens the stream after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(server.http, &signed(&fresh, "master.m3u8")).0, 200);
    // A key file that cannot be used: the key in use stays, the error is counted.
    std::fs::write(&key_path, "short\n").unwrap();
    unsafe_kill(server.pid(), libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric_in(
        &server.get("/metrics").unwrap().1,
        "ladderd_reloads_total",
        &["result=\"error\""],
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "no reload error counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(server.http, &signed(&fresh, "master.m3u8")).0, 200);
    assert!(
        server.log_text().contains("reload failed"),
        "{}",
        server.log_text()
    );
}

/// The token of a signed URL (`…/t/TOKEN/…`).
fn token_in(url: &str) -> String {
    url.split("/t/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}
