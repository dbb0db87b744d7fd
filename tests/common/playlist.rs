//! Playlists and MPDs as a player reads them: the segments a media playlist
//! lists timed from their bytes, timeline holes and overlaps, object names,
//! preload hints, hls-parser and the MPEG schema (xmllint).

use std::path::Path;
use std::process::Command;

use super::{fragment_times, init_timescale, node, SegmentTime, Server};

/// Every segment a media playlist (`/live/NAME/RENDITION/playlist.m3u8`) lists, timed from its bytes.
pub fn segment_times(server: &Server, playlist: &str) -> Vec<SegmentTime> {
    let text = server.get(playlist).unwrap().1;
    let dir = &playlist[..playlist.rfind('/').unwrap() + 1];
    listed(&text)
        .into_iter()
        .map(|(uri, extinf, disc)| {
            let bytes = server.get_bytes(&format!("{dir}{uri}"));
            timed(uri, extinf, disc, &bytes)
        })
        .collect()
}

/// The segments a media playlist's text lists: (URI, EXTINF, whether an
/// `EXT-X-DISCONTINUITY` comes before it).
fn listed(text: &str) -> Vec<(String, f64, bool)> {
    let (mut out, mut extinf, mut disc) = (Vec::new(), None, false);
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("#EXTINF:") {
            extinf = v.split(',').next().and_then(|v| v.parse::<f64>().ok());
        } else if l == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if !l.starts_with('#') && !l.is_empty() {
            let extinf = extinf.take().unwrap_or(0.0);
            out.push((l.to_string(), extinf, std::mem::take(&mut disc)));
        }
    }
    out
}

/// A listed segment timed from its bytes.
fn timed(uri: String, extinf: f64, discontinuity: bool, bytes: &[u8]) -> SegmentTime {
    let fragments = fragment_times(bytes);
    SegmentTime {
        tfdt: fragments.first().map_or(0, |f| f.0),
        ticks: fragments.iter().map(|f| f.1).sum(),
        fragments,
        uri,
        extinf,
        discontinuity,
    }
}

/// Where a rendition's media leaves a hole or overlaps (between the parts of
/// a segment, and from one segment's end to the next one's start,
/// discontinuities included: a re-join goes on from the last frame), or a
/// segment's samples disagree with its EXTINF. Empty when the timeline is whole; with the segments.
pub fn timeline_faults(server: &Server, playlist: &str) -> (Vec<SegmentTime>, Vec<String>) {
    let text = server.get(playlist).unwrap().1;
    let timescale = playlist_timescale(server, playlist, &text);
    let segments = segment_times(server, playlist);
    let faults = faults_in(&segments, timescale);
    (segments, faults)
}

/// The timescale of the init a media playlist's `EXT-X-MAP` names.
fn playlist_timescale(server: &Server, playlist: &str, text: &str) -> f64 {
    let dir = &playlist[..playlist.rfind('/').unwrap() + 1];
    let init = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("{playlist} has no EXT-X-MAP:\n{text}"));
    init_timescale(&server.get_bytes(&format!("{dir}{init}"))) as f64
}

/// [`timeline_faults`] of segments already timed.
pub fn faults_in(segments: &[SegmentTime], timescale: f64) -> Vec<String> {
    let mut faults = Vec::new();
    for s in segments {
        for w in s.fragments.windows(2) {
            if w[0].0 + w[0].1 != w[1].0 {
                faults.push(format!(
                    "{}: a fragment ends at {:.4} s, the next starts at {:.4} s",
                    s.uri,
                    (w[0].0 + w[0].1) as f64 / timescale,
                    w[1].0 as f64 / timescale
                ));
            }
        }
        let secs = s.ticks as f64 / timescale;
        if (secs - s.extinf).abs() > 0.002 {
            faults.push(format!(
                "{}: EXTINF {} but samples last {secs:.4} s",
                s.uri, s.extinf
            ));
        }
    }
    for w in segments.windows(2) {
        let end = w[0].tfdt + w[0].ticks;
        if end != w[1].tfdt {
            faults.push(format!(
                "{} ends at {:.4} s, {}{} starts at {:.4} s",
                w[0].uri,
                end as f64 / timescale,
                if w[1].discontinuity {
                    "after a discontinuity "
                } else {
                    ""
                },
                w[1].uri,
                w[1].tfdt as f64 / timescale
            ));
        }
    }
    faults
}

/// The media playlists a stream's master lists (variants and audio
/// renditions), relative to `/live/NAME/`, sorted.
fn renditions_of(master: &str) -> Vec<String> {
    let mut renditions: Vec<String> = master
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.to_string())
        .collect();
    renditions.extend(master.lines().filter_map(|l| {
        let (_, rest) = l.split_once("URI=\"")?;
        Some(rest.split('"').next()?.to_string())
    }));
    renditions.sort();
    renditions.dedup();
    renditions
}

/// Every segment each rendition of stream `name` lists until `stop` is
/// set, timed from its bytes as soon as a playlist lists it (polled every
/// 250 ms), then [`faults_in`] over all of them: the whole run, where a
/// live playlist's window has forgotten the early segments by the time a
/// test looks (`(playlist, segments, faults)`, as
/// [`every_rendition_timeline`]). Run it on a thread beside the test, with
/// a [`StopOnDrop`] so a panic in the test ends it too. A segment gone
/// before its bytes could be fetched is left out (and shows as a fault
/// where it was), never a panic here.
pub fn record_timelines(
    server: &Server,
    name: &str,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<(String, Vec<SegmentTime>, Vec<String>)> {
    use std::collections::{BTreeMap, HashSet};
    #[derive(Default)]
    struct Seen {
        uris: HashSet<String>,
        segments: Vec<SegmentTime>,
        /// The init's URI and timescale, read again only when it changes.
        init: Option<(String, f64)>,
    }
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    loop {
        // Read before the poll: the poll after `stop` is the last.
        let last = stop.load(std::sync::atomic::Ordering::Relaxed);
        let master = server.get(&format!("/live/{name}/master.m3u8"));
        let renditions = match master {
            Ok((200, m)) => renditions_of(&m),
            _ => Vec::new(),
        };
        for r in renditions {
            let playlist = format!("/live/{name}/{r}");
            let Ok((200, text)) = server.get(&playlist) else {
                continue;
            };
            let dir = &playlist[..playlist.rfind('/').unwrap() + 1];
            let entry = seen.entry(r.clone()).or_default();
            let init = text
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
                .and_then(|r| r.split('"').next());
            if let Some(init) = init {
                if entry.init.as_ref().is_none_or(|(uri, _)| uri != init) {
                    if let Some(bytes) = fetch_ok(server, &format!("{dir}{init}")) {
                        entry.init = Some((init.to_string(), init_timescale(&bytes) as f64));
                    }
                }
            }
            for (uri, extinf, disc) in listed(&text) {
                if !entry.uris.insert(uri.clone()) {
                    continue;
                }
                if let Some(bytes) = fetch_ok(server, &format!("{dir}{uri}")) {
                    entry.segments.push(timed(uri, extinf, disc, &bytes));
                }
            }
        }
        if last {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    seen.into_iter()
        .map(|(r, seen)| {
            let timescale = seen.init.map_or(90_000.0, |(_, t)| t);
            let faults = faults_in(&seen.segments, timescale);
            (r, seen.segments, faults)
        })
        .collect()
}

/// Sets its flag when dropped: a [`record_timelines`] thread ends when the
/// test that started it ends, panicking or not.
pub struct StopOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The body of a GET that answered 200, else `None`.
fn fetch_ok(server: &Server, path: &str) -> Option<Vec<u8>> {
    let url = format!("http://{}{}", server.http, path);
    let reply = ureq::get(&url)
        .timeout(std::time::Duration::from_secs(10))
        .call()
        .ok()?;
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut reply.into_reader(), &mut body).ok()?;
    Some(body)
}

/// [`timeline_faults`] of every media playlist a stream's master lists
/// (variants and audio renditions): `(playlist, segments, faults)`.
pub fn every_rendition_timeline(
    server: &Server,
    name: &str,
) -> Vec<(String, Vec<SegmentTime>, Vec<String>)> {
    let master = server.get(&format!("/live/{name}/master.m3u8")).unwrap().1;
    let renditions = renditions_of(&master);
    renditions
        .into_iter()
        .map(|r| {
            let (segments, faults) = timeline_faults(server, &format!("/live/{name}/{r}"));
            (r, segments, faults)
        })
        .collect()
}

/// N of a ladder segment URI `seg{N}.m4s`, in its run's directory
/// (`e{EPOCH}/seg{N}.m4s`, as playlists list them) or not.
pub fn segment_number(uri: &str) -> Option<u64> {
    object_name(uri)
        .strip_prefix("seg")?
        .strip_suffix(".m4s")?
        .parse()
        .ok()
}

/// A listed object URI without its run's directory: `e{EPOCH}/seg5.m4s` →
/// `seg5.m4s` (other URIs as they are).
pub fn object_name(uri: &str) -> &str {
    match uri.split_once('/') {
        Some((run, name))
            if run.len() > 1
                && run.starts_with('e')
                && run[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => uri,
    }
}

/// The run directory (`e{EPOCH}`) a playlist's objects are listed under.
pub fn run_dir(playlist: &str) -> Option<&str> {
    playlist
        .lines()
        .filter(|l| !l.starts_with('#'))
        .chain(
            playlist
                .lines()
                .filter_map(|l| l.split_once("URI=\"")?.1.split('"').next()),
        )
        .filter(|u| !u.starts_with(".."))
        .find_map(|u| Some(u.split_once('/')?.0))
        .filter(|d| d.starts_with('e'))
}

/// Where the MPD schema is: `LADDERD_DASH_SCHEMA`, `tests/data/dash-schema/`,
/// or the shared checkout beside the repository (`../shared/dash-schema/`).
/// The schema is not vendored: MPEG publishes it under the ISO/IEC Directives,
/// not an open licence.
pub fn dash_schema() -> Option<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("LADDERD_DASH_SCHEMA").map(std::path::PathBuf::from),
        Some(root.join("tests/data/dash-schema")),
        Some(root.join("../shared/dash-schema")),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|d| d.join("DASH-MPD.xsd"))
        .find(|p| p.is_file())
}

/// `xmllint --schema DASH-MPD.xsd` on `mpd`; reports a skip (with the
/// reason) where the schema is not on this machine.
pub fn xmllint_mpd(mpd: &str, what: &str) {
    let Some(xsd) = dash_schema() else {
        eprintln!("{what}: no DASH-MPD.xsd here (set LADDERD_DASH_SCHEMA): schema check skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifest.mpd");
    std::fs::write(&file, mpd).unwrap();
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(&file)
        .output()
        .expect("xmllint is not installed; run scripts/test.sh (libxml2-utils)");
    let err = String::from_utf8_lossy(&out.stderr);
    println!("xmllint {what}: {}", err.trim());
    assert!(out.status.success(), "xmllint {what}: {err}\n{mpd}");
}

/// hls-parser (`check-playlists.mjs`) reads every playlist URL and reports
/// nothing.
pub fn assert_hls_parser_clean(urls: &[String]) {
    let args: Vec<&str> = urls.iter().map(String::as_str).collect();
    let report = node("check-playlists.mjs", &args);
    for (url, problems) in report.as_object().unwrap() {
        assert_eq!(
            problems.as_array().unwrap().len(),
            0,
            "hls-parser on {url}: {problems}"
        );
    }
}

/// The next part from a playlist: the preload hint's (msn, part).
pub fn preload_hint(playlist: &str) -> (u64, u32) {
    let line = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .unwrap_or_else(|| panic!("no preload hint:\n{playlist}"));
    let uri = object_name(line.split("URI=\"").nth(1).unwrap())
        .strip_prefix("part")
        .unwrap()
        .split(".m4s")
        .next()
        .unwrap();
    let (msn, part) = uri.split_once('.').unwrap();
    (msn.parse().unwrap(), part.parse().unwrap())
}
