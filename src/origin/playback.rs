//! Playback routes over the hot store: HLS playlists (with blocking reload
//! and delta updates), the DASH MPD, init segments, parts (preload hints
//! answered on publication), segments (one being written is streamed as its
//! parts land: LL-DASH); cache headers, ETag, Range, gzip.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING,
    CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RANGE, RETRY_AFTER, VARY,
};
use hyper::{Response, StatusCode};

use super::routes::{full, text, Body, BodyError};
use super::Origin;
use crate::package::dash;
use crate::package::hls::{self, MediaPlaylist, ObjectName, RenditionReport};
use crate::store::dvr::RunSegments;
use crate::store::hot::{Block, Object, Rendition, StreamMedia};

/// Media objects never change once published.
pub(super) const IMMUTABLE: &str = "public, max-age=86400, immutable";
/// Segments whose parts a playlist lists.
const PART_SEGMENTS: usize = 3;

/// The parsed LL-HLS query.
#[derive(Debug, Default, PartialEq)]
pub struct Query {
    pub msn: Option<u64>,
    pub part: Option<u32>,
    pub skip: bool,
}

/// Parses `_HLS_msn`, `_HLS_part`, `_HLS_skip`; other keys are ignored
/// (cache busters), malformed values are an error.
pub fn parse_query(q: Option<&str>) -> Result<Query, &'static str> {
    let mut out = Query::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "_HLS_msn" => out.msn = Some(v.parse().map_err(|_| "_HLS_msn must be a number")?),
            "_HLS_part" => out.part = Some(v.parse().map_err(|_| "_HLS_part must be a number")?),
            "_HLS_skip" => match v {
                "YES" | "v2" => out.skip = true,
                _ => return Err("_HLS_skip must be YES or v2"),
            },
            _ => {}
        }
    }
    if out.part.is_some() && out.msn.is_none() {
        return Err("_HLS_part without _HLS_msn");
    }
    Ok(out)
}

/// The MPD's query: `ll=1` asks for LL-DASH (`ll=0` or none: standard DASH);
/// other keys are ignored (cache busters), another `ll` value is an error.
pub fn parse_mpd_query(q: Option<&str>) -> Result<MpdQuery, &'static str> {
    let mut out = MpdQuery::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("ll", "1") => out.low_latency = true,
            ("ll", "0") => out.low_latency = false,
            ("ll", _) => return Err("ll must be 1 or 0\n"),
            ("audio", "1") => out.audio_only = true,
            ("audio", "0") => out.audio_only = false,
            ("audio", _) => return Err("audio must be 1 or 0\n"),
            _ => {}
        }
    }
    Ok(out)
}

/// An MPD request's choices: `?ll=1` low-latency, `?audio=1` the audio
/// AdaptationSet alone (the audio-only choice, as HLS's audio-only variant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MpdQuery {
    pub low_latency: bool,
    pub audio_only: bool,
}

/// What a listing request (multivariant playlist or MPD) lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    /// A multivariant playlist whose variants are `RENDITION/{name}`.
    Hls(&'static str),
    Mpd {
        low_latency: bool,
        audio_only: bool,
        /// The DVR MPD: the whole rewind window.
        dvr: bool,
    },
}

/// `/live/{stream}/…`
/// `head`: a HEAD request (its headers must be the GET's final ones).
/// `dir`: a signed URL's token directory (`t/TOKEN/`) or `""`.
pub async fn handle(
    ctx: &Origin,
    rest: &[&str],
    dir: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    head: bool,
) -> Response<Body> {
    // The steering manifest answers whether or not the stream is on air:
    // a player between two runs of it still needs a CDN that works.
    if let [name, "steering.json"] = rest {
        return steering_manifest(ctx, name);
    }
    let Some(media) = rest.first().and_then(|name| ctx.store.get(name)) else {
        return text(StatusCode::NOT_FOUND, "no such stream\n");
    };
    media.count_request();
    let steered = rest.first().and_then(|name| Steered::of(ctx, name, dir));
    let steering = steered.as_ref().map(Steered::view);
    match rest {
        [_, "master.m3u8"] => {
            let listing = Listing::Hls("playlist.m3u8");
            multivariant_file(ctx, &media, listing, steering, headers, "max-age=0").await
        }
        [_, "index.m3u8"] => {
            let listing = Listing::Hls("index.m3u8");
            multivariant_file(ctx, &media, listing, steering, headers, "max-age=1").await
        }
        [_, "dvr.m3u8"] if media.dvr.is_some() => {
            let listing = Listing::Hls("dvr.m3u8");
            multivariant_file(ctx, &media, listing, steering, headers, "max-age=1").await
        }
        [_, "dvr.mpd"] if media.dvr.is_some() => match parse_mpd_query(query) {
            Ok(q) => {
                let listing = Listing::Mpd {
                    low_latency: false,
                    audio_only: q.audio_only,
                    dvr: true,
                };
                multivariant_file(ctx, &media, listing, steering, headers, "no-cache").await
            }
            Err(e) => text(StatusCode::BAD_REQUEST, e),
        },
        [_, "manifest.mpd"] => match parse_mpd_query(query) {
            Ok(q) => {
                let listing = Listing::Mpd {
                    low_latency: q.low_latency,
                    audio_only: q.audio_only,
                    dvr: false,
                };
                multivariant_file(ctx, &media, listing, steering, headers, "no-cache").await
            }
            Err(e) => text(StatusCode::BAD_REQUEST, e),
        },
        [_, rendition, file] => match media.rendition(rendition) {
            Some(r) => {
                let mut resp = rendition_file(ctx, &media, r, file, query, headers, head).await;
                // An object by a URI without its run (`R/seg5.m4s`): the
                // current run's, but the same URI names another run's bytes
                // once the NAME is published again, so caches revalidate it
                // (the ETag names the run). Playlists list `R/e{EPOCH}/…`.
                if !file.ends_with(".m3u8") && resp.status().is_success() {
                    resp.headers_mut()
                        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                }
                resp
            }
            None => text(StatusCode::NOT_FOUND, "no such rendition\n"),
        },
        // An object of this run, by the URI the playlists list.
        [_, rendition, run, file]
            if *run == run_prefix(media.timing.media_epoch_ms).trim_end_matches('/')
                && !file.ends_with(".m3u8") =>
        {
            match media.rendition(rendition) {
                Some(r) => rendition_file(ctx, &media, r, file, None, headers, head).await,
                None => text(StatusCode::NOT_FOUND, "no such rendition\n"),
            }
        }
        // An earlier run's object (the DVR playlists of a resumed NAME).
        [_, rendition, run, file] => {
            let epoch = run.strip_prefix('e').and_then(|e| e.parse::<u64>().ok());
            match (epoch, media.rendition(rendition), &media.dvr) {
                (Some(epoch), Some(r), Some(tap)) if epoch < tap.epoch_ms => {
                    let key = format!("{}/{epoch}", tap.name);
                    match tap.dvr.read(&key, rendition, file).await {
                        Some(data) => media_object(
                            data,
                            object_type(file),
                            &run_etag(epoch, &r.name, file),
                            headers,
                        ),
                        None => text(StatusCode::NOT_FOUND, "not found\n"),
                    }
                }
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// How long a blocking request (playlist reload, preload hint, a part being
/// written) may wait:
/// 3 target durations, the limit the HLS spec sets for blocking reloads.
pub fn blocking_limit(media: &StreamMedia) -> Duration {
    Duration::from_secs(3 * media.timing.target_duration)
}

/// Where a multivariant playlist request stands (issue 12 item 8).
#[derive(Debug, PartialEq)]
pub enum MultivariantStep {
    /// The playlist, with at least one variant.
    Serve(String),
    /// No variant yet (the first segment is not complete): wait for a publish.
    Wait,
    /// Still none at the deadline ([`multivariant_wait`]): 503 with
    /// `Retry-After`, which players retry
    /// (hls.js retries a 5xx manifest load; a 200 without variants is fatal to
    /// it: "no levels found").
    Unavailable,
    /// The stream ended before it had a variant.
    Ended,
}

/// Sans-IO: what to answer for the multivariant playlist at `now`.
pub fn multivariant_step(
    media: &StreamMedia,
    playlist_name: &str,
    now: Instant,
    deadline: Instant,
) -> MultivariantStep {
    listing_step(
        multivariant(media, playlist_name, None),
        media,
        now,
        deadline,
    )
}

/// Sans-IO: what to answer for a listing (multivariant playlist or MPD)
/// whose text is `body` (`None`: no video rendition to list yet).
fn listing_step(
    body: Option<String>,
    media: &StreamMedia,
    now: Instant,
    deadline: Instant,
) -> MultivariantStep {
    if let Some(body) = body {
        MultivariantStep::Serve(body)
    } else if media.is_ended() {
        MultivariantStep::Ended
    } else if now >= deadline {
        MultivariantStep::Unavailable
    } else {
        MultivariantStep::Wait
    }
}

/// How long a multivariant request waits for its first variant: one target
/// duration, about what the first segment takes to complete. Brief on purpose
/// (an edge holds the request meanwhile); a player that starts earlier still
/// gets a 503 it retries (hls.js: once, 1 s later, so about two target
/// durations plus a second are covered).
pub fn multivariant_wait(media: &StreamMedia) -> Duration {
    Duration::from_secs(media.timing.target_duration.max(1))
}

/// `master.m3u8` / `index.m3u8` / `manifest.mpd`: served once a variant
/// exists; until then the request blocks (up to [`multivariant_wait`]).
async fn multivariant_file(
    ctx: &Origin,
    media: &StreamMedia,
    listing: Listing,
    steering: Option<hls::Steering<'_>>,
    headers: &HeaderMap,
    cache: &'static str,
) -> Response<Body> {
    let wait = match listing {
        // A young stream's standard MPD waits for its presentation delay.
        Listing::Mpd {
            low_latency: false, ..
        } => {
            Duration::from_secs_f64(media.timing.hold_back() + media.timing.segment_target.max(0.0))
        }
        _ => multivariant_wait(media),
    };
    let deadline = Instant::now() + wait;
    loop {
        // Listen before looking, so a publish in between is not missed.
        let listeners: Vec<_> = media
            .renditions()
            .iter()
            .map(|r| r.changed.listen())
            .collect();
        let body = match listing {
            Listing::Hls(playlist_name) => multivariant(media, playlist_name, steering),
            Listing::Mpd {
                low_latency,
                audio_only,
                dvr,
            } => mpd(media, low_latency, audio_only, dvr, steering, unix_ms()),
        };
        match listing_step(body, media, Instant::now(), deadline) {
            MultivariantStep::Serve(body) => {
                let mut r = playlist(body, headers, cache);
                if let Listing::Mpd { .. } = listing {
                    r.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("application/dash+xml"),
                    );
                }
                return r;
            }
            MultivariantStep::Ended => return text(StatusCode::NOT_FOUND, "stream ended\n"),
            MultivariantStep::Unavailable => {
                let mut r = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no rendition has a complete segment yet; retry\n",
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
            MultivariantStep::Wait => {
                // A rendition added later has no listener here: look again
                // at least every 250 ms.
                let step = deadline.min(Instant::now() + Duration::from_millis(250));
                wait_any(ctx, listeners, step).await;
                if ctx.shutdown.is_triggered() {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
                }
            }
        }
    }
}

/// A young stream's first segments: once a rendition has this many, the
/// listings go out with whatever else has one (a rung that never completes a
/// segment must not keep the stream off the air).
const SETTLE_SEGMENTS: usize = 3;

/// Complete segments before a standard-DASH MPD goes out: enough that the
/// live edge less `suggestedPresentationDelay` falls inside them. Earlier,
/// dash.js 5.2 clamps its start to the window's first sample, exactly, and
/// Chromium sat there at readyState 1 with 16 s buffered (measured joining
/// a one-segment stream; a 50 ms nudge started it).
fn standard_dash_min_segments(t: &crate::package::hls::Timing) -> usize {
    let delay = t.hold_back() / t.segment_target.max(0.1);
    delay.ceil() as usize + 1
}

/// Whether the renditions, as (complete segments, ended) each, can be listed:
/// every rendition still running has a complete segment, or one has
/// [`SETTLE_SEGMENTS`]. A listing that went out with the first rendition
/// alone would keep a player from the rest: hls.js reads the multivariant
/// playlist once, and dash.js does not take AdaptationSets added to a Period
/// it started (joining a young stream it stalled at 0 s for good).
fn settled(renditions: impl IntoIterator<Item = (usize, bool)>) -> bool {
    let (mut all, mut most) = (true, 0);
    for (complete, ended) in renditions {
        most = most.max(complete);
        all &= ended || complete > 0;
    }
    all || most >= SETTLE_SEGMENTS
}

fn settled_media(media: &StreamMedia) -> bool {
    settled(
        media
            .renditions()
            .iter()
            .map(|r| (r.complete_segments(), r.is_ended())),
    )
}

/// A rendition's rewind window: the runs of its NAME's DVR chain (earlier
/// runs, then this one's whole segments on disk, then its newest, not on
/// disk yet, from RAM), and whether the rendition ended. None without a DVR.
fn dvr_runs(media: &StreamMedia, r: &Rendition) -> Option<(Vec<RunSegments>, bool)> {
    let tap = media.dvr.as_ref()?;
    let mut runs = tap.dvr.runs(&tap.name, tap.epoch_ms, &r.name);
    let current = runs.last_mut()?;
    let last = current.segments.last().map(|s| s.msn);
    let ended = r.with_segments(|ram, _, ended| {
        current.segments.extend(
            ram.iter()
                .filter(|s| s.complete && last.is_none_or(|l| s.msn > l))
                .cloned(),
        );
        ended
    });
    Some((runs, ended))
}

/// An earlier run's objects: `RENDITION/e{EPOCH}/FILE`.
/// An object's ETag: its run, rendition and name, wherever it is read from
/// (RAM, this run's DVR copy, an earlier run's on disk).
fn run_etag(epoch_ms: u64, rendition: &str, file: &str) -> String {
    format!("\"e{epoch_ms}-{rendition}-{file}\"")
}

/// Where a run's objects are listed: `e{EPOCH}/` under the rendition. A
/// NAME published again starts its segment numbers over, so a URI without
/// the run would name different bytes in each run, and an edge cache
/// keeping it (it is `immutable`) would serve the old ones.
fn run_prefix(epoch_ms: u64) -> String {
    format!("e{epoch_ms}/")
}

/// The multivariant playlist, or None while no video rendition can be listed.
fn multivariant(
    media: &StreamMedia,
    playlist_name: &str,
    steering: Option<hls::Steering<'_>>,
) -> Option<String> {
    if !settled_media(media) {
        return None;
    }
    let renditions: Vec<hls::RenditionSummary> =
        media.renditions().iter().map(|r| r.summary()).collect();
    hls::multivariant(&renditions, playlist_name, steering)
}

/// A stream's addresses on each CDN of `[cdn] pathways`, and where its
/// steering manifest is; `None` without pathways.
struct Steered {
    server_uri: String,
    pathways: Vec<(String, String)>,
}

impl Steered {
    /// `dir`: what follows `/live/NAME/` before the stream's own files
    /// (a signed URL's token directory), kept so every CDN's URIs carry it.
    fn of(ctx: &Origin, name: &str, dir: &str) -> Option<Steered> {
        let cdn = &ctx.config.cdn;
        if cdn.pathways.is_empty() {
            return None;
        }
        let path = format!("/live/{name}/{dir}");
        let pathways = cdn
            .pathways
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    format!("{}{path}", p.base_url.trim_end_matches('/')),
                )
            })
            .collect();
        // Relative by default: beside the multivariant playlist, wherever
        // the player read it.
        let server_uri = if cdn.steering_base_url.is_empty() {
            "steering.json".to_string()
        } else {
            format!(
                "{}{path}steering.json",
                cdn.steering_base_url.trim_end_matches('/')
            )
        };
        Some(Steered {
            server_uri,
            pathways,
        })
    }

    fn view(&self) -> hls::Steering<'_> {
        hls::Steering {
            server_uri: &self.server_uri,
            pathways: &self.pathways,
        }
    }
}

/// `NAME/steering.json`: the HLS / DASH-IF steering manifest: the CDNs in
/// `[cdn] pathways` order. A player that failed on one moves on by itself
/// (and keeps away from it a while); this says where to go first.
fn steering_manifest(ctx: &Origin, name: &str) -> Response<Body> {
    let cdn = &ctx.config.cdn;
    if cdn.pathways.is_empty() || !crate::config::valid_name(name) {
        return text(StatusCode::NOT_FOUND, "no content steering configured\n");
    }
    let priority: Vec<&str> = cdn.pathways.iter().map(|p| p.id.as_str()).collect();
    let body = serde_json::json!({
        "VERSION": 1,
        "TTL": cdn.steering_ttl_secs,
        "PATHWAY-PRIORITY": priority,
    });
    let mut r = Response::new(full(Bytes::from(body.to_string())));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Players ask with their own `_HLS_pathway` / `_HLS_throughput`: no
    // two ask the same URL, so nothing is gained by caching it.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Wall-clock now, Unix ms.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The MPD at `now_ms`, or None while no video rendition can be listed.
fn mpd(
    media: &StreamMedia,
    low_latency: bool,
    audio_only: bool,
    dvr: bool,
    steering: Option<hls::Steering<'_>>,
    now_ms: u64,
) -> Option<String> {
    let renditions = media.renditions();
    let counts: Vec<(usize, bool)> = renditions
        .iter()
        .map(|r| (r.complete_segments(), r.is_ended()))
        .collect();
    if !settled(counts.iter().copied()) {
        return None;
    }
    let most = counts.iter().map(|c| c.0).max().unwrap_or(0);
    if !low_latency && most < standard_dash_min_segments(&media.timing) {
        return None;
    }
    // By run: earlier runs of the NAME (the DVR MPD), then this one.
    let mut by_epoch: std::collections::BTreeMap<u64, Vec<dash::RenditionWindow>> =
        std::collections::BTreeMap::new();
    let mut origin_ms = media.timing.media_epoch_ms;
    let mut windows = Vec::new();
    for r in renditions.iter() {
        let (segments, run_start) = match dvr_runs(media, r) {
            Some((runs, _)) if dvr => {
                let mut runs = runs.into_iter();
                let current = runs.next_back().map(|c| {
                    origin_ms = c.origin_ms;
                    c.segments
                });
                for run in runs {
                    by_epoch
                        .entry(run.epoch_ms)
                        .or_default()
                        .push(dash::RenditionWindow {
                            summary: r.summary(),
                            segments: run.segments,
                            run_start: None,
                        });
                }
                (current.unwrap_or_default(), None)
            }
            _ => r.with_timeline(|s, run| (s.to_vec(), run)),
        };
        windows.push(dash::RenditionWindow {
            summary: r.summary(),
            segments,
            run_start,
        });
    }
    let prefixes: Vec<(u64, String)> = by_epoch.keys().map(|&e| (e, run_prefix(e))).collect();
    let earlier: Vec<dash::EarlierRun> = prefixes
        .iter()
        .map(|(e, prefix)| dash::EarlierRun {
            offset_ms: e.saturating_sub(origin_ms),
            prefix,
            renditions: &by_epoch[e],
        })
        .collect();
    let window_secs = match &media.dvr {
        Some(tap) if dvr => tap.dvr.config().window_secs,
        _ => media.window_secs(),
    };
    let mut timing = media.timing;
    timing.media_epoch_ms = origin_ms.min(timing.media_epoch_ms);
    dash::manifest(&dash::Manifest {
        timing,
        renditions: &windows,
        window_secs,
        now_ms,
        low_latency,
        audio_only,
        vod: false,
        utc_timing: "/time",
        earlier: &earlier,
        offset_ms: media.timing.media_epoch_ms - timing.media_epoch_ms,
        prefix: &run_prefix(media.timing.media_epoch_ms),
        steering,
    })
    .ok()
}

async fn rendition_file(
    ctx: &Origin,
    media: &StreamMedia,
    r: std::sync::Arc<Rendition>,
    file: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    head: bool,
) -> Response<Body> {
    let limit = blocking_limit(media);
    let deadline = Instant::now() + limit;
    if file == "playlist.m3u8" {
        let q = match parse_query(query) {
            Ok(q) => q,
            Err(e) => return text(StatusCode::BAD_REQUEST, e),
        };
        if let Some(msn) = q.msn {
            let mut waited = false;
            loop {
                let listener = r.changed.listen();
                match r.block(msn, q.part) {
                    Block::Ready => {
                        if waited {
                            served_after_wait(ctx, media, &r);
                        }
                        break;
                    }
                    Block::TooFar => {
                        return text(
                            StatusCode::BAD_REQUEST,
                            "_HLS_msn is beyond the live edge + 2\n",
                        )
                    }
                    Block::Wait => {
                        if !wait(ctx, listener, deadline).await {
                            return text(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "not available in time\n",
                            );
                        }
                        waited = true;
                    }
                }
            }
        }
        let body = ll_playlist(media, &r, q.skip);
        let cache = if q.msn.is_some() {
            "public, max-age=12"
        } else {
            "max-age=0"
        };
        return playlist(body, headers, cache);
    }
    if file == "dvr.m3u8" {
        let Some((runs, ended)) = dvr_runs(media, &r) else {
            return text(StatusCode::NOT_FOUND, "no DVR (dvr.dir is not set)\n");
        };
        let runs: Vec<RunSegments> = runs
            .into_iter()
            .filter(|r| !r.segments.is_empty())
            .collect();
        let Some(first) = runs.first() else {
            return text(StatusCode::NOT_FOUND, "no complete segment yet\n");
        };
        let prefixes: Vec<String> = runs.iter().map(|run| run_prefix(run.epoch_ms)).collect();
        let listed: Vec<hls::DvrRun> = runs
            .iter()
            .zip(&prefixes)
            .map(|(run, prefix)| hls::DvrRun {
                prefix,
                segments: &run.segments,
            })
            .collect();
        let body = hls::dvr_playlist(&listed, first.sequence, first.discontinuity_sequence, ended);
        return playlist(body, headers, "max-age=1");
    }
    if file == "index.m3u8" {
        let body = r.with_segments(|segments, disc, ended| {
            hls::standard_playlist(
                &hls::long_segments(segments, media.group),
                disc,
                ended,
                &run_prefix(media.timing.media_epoch_ms),
            )
        });
        return playlist(body, headers, "max-age=1");
    }
    let Some(lookup) = hls::parse_object_name(file) else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let mut waited = false;
    loop {
        let listener = r.changed.listen();
        match find(&r, media.group, lookup) {
            Object::Ready(data) => {
                if waited {
                    served_after_wait(ctx, media, &r);
                }
                return stored_object(media, &r, file, data, headers);
            }
            gone @ (Object::Gone | Object::Missing) => {
                // Older than the RAM window: the DVR's copy, same headers.
                if let Some(tap) = &media.dvr {
                    if let Some(data) = tap.dvr.read(&tap.key, &r.name, file).await {
                        return stored_object(media, &r, file, data, headers);
                    }
                }
                return match gone {
                    Object::Gone => text(StatusCode::GONE, "evicted from the live window\n"),
                    _ => text(StatusCode::NOT_FOUND, "not found\n"),
                };
            }
            // A part being written by a rendition that has ended: never completes.
            Object::Growing(_) if r.is_ended() => {
                return text(StatusCode::NOT_FOUND, "abandoned while being written\n")
            }
            Object::Growing(_) => {
                let quiet = r.since_publish();
                match (
                    lookup,
                    growing_step(
                        head,
                        headers.contains_key(RANGE),
                        quiet,
                        r.part_target
                            .get()
                            .copied()
                            .unwrap_or(media.timing.part_target),
                    ),
                ) {
                    (ObjectName::Part(..) | ObjectName::Segment(_), GrowingStep::Stream) => {
                        if waited {
                            served_after_wait(ctx, media, &r);
                        }
                        return streamed(r.clone(), media.group, lookup, deadline, limit);
                    }
                    _ => {
                        if !wait(ctx, listener, deadline).await {
                            return text(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "not available in time\n",
                            );
                        }
                        waited = true;
                    }
                }
            }
            // The preload hint: answered the moment the part is published.
            Object::Pending => {
                if !wait(ctx, listener, deadline).await {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "not available in time\n");
                }
                waited = true;
            }
        }
    }
}

/// An init or media object of a rendition, from RAM or the DVR alike:
/// the same ETag and type wherever it was read.
fn stored_object(
    media: &StreamMedia,
    r: &Rendition,
    file: &str,
    data: Bytes,
    headers: &HeaderMap,
) -> Response<Body> {
    let etag = run_etag(media.timing.media_epoch_ms, &r.name, file);
    media_object(data, object_type(file), &etag, headers)
}

/// A stored object's Content-Type.
pub(super) fn object_type(file: &str) -> &'static str {
    if file.ends_with(".mp4") {
        "video/mp4"
    } else {
        "video/iso.segment"
    }
}

/// The store's answer for an object name; every number in it came from a
/// client, so the store's lookups must treat any value as possible (issue 12
/// item 6: `long18446744073709551615.m4s` overflowed into an empty 200).
fn find(r: &Rendition, group: u64, lookup: ObjectName) -> Object {
    match lookup {
        ObjectName::Init(v) => r.init(v),
        ObjectName::Part(msn, i) => r.part(msn, i),
        ObjectName::Segment(msn) => r.segment(msn),
        ObjectName::Long(n) => r.long_segment(n, group),
    }
}

/// What a request for a part being written does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrowingStep {
    /// Send its chunks as they land (200 now, the body follows the writer).
    Stream,
    /// Wait for it to complete (or to grow again), like a preload hint: 503
    /// at the blocking limit.
    Wait,
}

/// Sans-IO: a part being written is streamed only to a GET without a Range
/// (HEAD and ranges need its final length: issue 12 item 7), and only while
/// its writer is live. A writer quiet for longer than a part (a paused
/// publisher) may never finish it: committing to a 200 then would leave the
/// request hanging past the blocking limit (item 11), so it waits like a
/// preload hint and gets the same 503.
fn growing_step(
    head: bool,
    range: bool,
    quiet_for: Option<Duration>,
    part_target: f64,
) -> GrowingStep {
    let live = quiet_for.is_some_and(|q| q.as_secs_f64() <= 1.5 * part_target.max(0.1));
    if head || range || !live {
        GrowingStep::Wait
    } else {
        GrowingStep::Stream
    }
}

/// A part or segment still being written, sent chunk by chunk (HTTP/1.1
/// chunked transfer, h2 DATA frames) as each frame's fragment is published;
/// ends with the object. The bytes are the object's bytes, whichever way they
/// are sent (a segment's are its parts', in order: LL-DASH reads the segment
/// being written this way, as LL-HLS reads a part).
///
/// The body ends by the blocking limit: an object not complete by then (its
/// writer stopped mid-way) cuts the connection with an error instead of
/// ending the body cleanly, so nobody caches a short copy of an immutable one.
fn streamed(
    r: std::sync::Arc<Rendition>,
    group: u64,
    lookup: ObjectName,
    deadline: Instant,
    limit: Duration,
) -> Response<Body> {
    struct State {
        r: std::sync::Arc<Rendition>,
        sent: usize,
        done: bool,
    }
    let state = State {
        r,
        sent: 0,
        done: false,
    };
    let stream = futures_lite::stream::unfold(state, move |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let listener = st.r.changed.listen();
            let have = match find(&st.r, group, lookup) {
                Object::Ready(data) => {
                    st.done = true;
                    vec![data]
                }
                Object::Growing(chunks) if !st.r.is_ended() => chunks,
                // Evicted or abandoned mid-way.
                _ => {
                    st.done = true;
                    let e = BodyError::Abandoned {
                        rendition: st.r.name.clone(),
                        object: lookup.uri(),
                    };
                    return Some((Err(e), st));
                }
            };
            if let Some(next) = unsent(&have, st.sent) {
                st.sent += next.len();
                return Some((Ok(hyper::body::Frame::data(next)), st));
            }
            if st.done {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                st.done = true;
                let e = BodyError::Late {
                    rendition: st.r.name.clone(),
                    object: lookup.uri(),
                    secs: limit.as_secs(),
                };
                return Some((Err(e), st));
            }
            futures_lite::future::or(listener, glommio::timer::sleep(left)).await;
        }
    });
    let mut resp = Response::new(Box::pin(http_body_util::StreamBody::new(stream)) as Body);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("video/iso.segment"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    resp
}

/// The bytes of `chunks` (in order) past the first `sent`, copied only when
/// they span more than one chunk; `None` when there are none.
fn unsent(chunks: &[Bytes], sent: usize) -> Option<Bytes> {
    let mut skip = sent;
    let mut rest: Vec<Bytes> = Vec::new();
    for c in chunks {
        if skip >= c.len() {
            skip -= c.len();
            continue;
        }
        rest.push(c.slice(skip..));
        skip = 0;
    }
    match rest.len() {
        0 => None,
        1 => rest.pop(),
        _ => {
            let mut all = Vec::with_capacity(rest.iter().map(|c| c.len()).sum());
            for c in &rest {
                all.extend_from_slice(c);
            }
            Some(Bytes::from(all))
        }
    }
}

/// A parked request is being answered: how long after the publish that woke it.
fn served_after_wait(ctx: &Origin, media: &StreamMedia, r: &Rendition) {
    if let Some(d) = r.since_publish() {
        media.record_served(d);
        ctx.http.record_wake(d);
    }
}

/// Waits for a publish (or the deadline, or shutdown); false on the deadline.
async fn wait(ctx: &Origin, listener: event_listener::EventListener, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() || ctx.shutdown.is_triggered() {
        return false;
    }
    let _parked = Parked::new(&ctx.http.blocked_waiters);
    let woke = futures_lite::future::or(
        async {
            listener.await;
            true
        },
        async {
            glommio::timer::sleep(left).await;
            false
        },
    );
    futures_lite::future::or(woke, async {
        ctx.shutdown.wait().await;
        false
    })
    .await
}

/// Waits for a publish on any of `listeners` (or `until`, or shutdown).
async fn wait_any(ctx: &Origin, mut listeners: Vec<event_listener::EventListener>, until: Instant) {
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() || ctx.shutdown.is_triggered() {
        return;
    }
    let _parked = Parked::new(&ctx.http.blocked_waiters);
    let any = futures_lite::future::poll_fn(|cx| {
        for l in listeners.iter_mut() {
            if std::future::Future::poll(std::pin::Pin::new(l), cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    });
    let timed = futures_lite::future::or(any, glommio::timer::sleep(left));
    futures_lite::future::or(timed, ctx.shutdown.wait()).await;
}

/// A request parked on the live edge, counted in `blocked_waiters` while this
/// lives. A guard rather than a decrement after the wait: a client that goes
/// away mid-wait drops the request's future at its `.await`, and the count
/// only ever rose (issue 30).
struct Parked<'a>(&'a AtomicI64);

impl<'a> Parked<'a> {
    fn new(count: &'a AtomicI64) -> Self {
        count.fetch_add(1, Relaxed);
        Parked(count)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

fn ll_playlist(media: &StreamMedia, r: &Rendition, skip: bool) -> String {
    let reports: Vec<RenditionReport> = media
        .renditions()
        .iter()
        .filter(|o| o.name != r.name && !o.is_ended())
        .filter_map(|o| {
            let (last_msn, last_part) = o.last_part()?;
            Some(RenditionReport {
                uri: format!("../{}/playlist.m3u8", o.name),
                last_msn,
                last_part,
            })
        })
        .collect();
    r.with_segments(|segments, discontinuity_sequence, ended| {
        let timing = hls::Timing {
            part_target: r
                .part_target
                .get()
                .copied()
                .unwrap_or(media.timing.part_target),
            ..media.timing
        };
        hls::media_playlist(&MediaPlaylist {
            timing,
            segments,
            discontinuity_sequence,
            reports: &reports,
            part_segments: PART_SEGMENTS,
            skip,
            ended,
            prefix: &run_prefix(media.timing.media_epoch_ms),
        })
    })
}

fn etag_of(body: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

pub(super) fn playlist(body: String, headers: &HeaderMap, cache: &'static str) -> Response<Body> {
    let etag = etag_of(body.as_bytes());
    let gzip = headers
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut resp = if not_modified(headers, &etag) {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zipped = enc.write_all(body.as_bytes()).and_then(|_| enc.finish());
        match zipped {
            Ok(z) => {
                let mut r = Response::new(full(Bytes::from(z)));
                r.headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            Err(_) => Response::new(full(Bytes::from(body))),
        }
    } else {
        Response::new(full(Bytes::from(body)))
    };
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.apple.mpegurl"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    resp
}

/// A single `bytes=` range against a body of `len` bytes: `Ok(None)` for
/// no (or an ignorable) Range header, `Err` when it cannot be satisfied.
pub fn byte_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: serve the whole object
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len.checked_sub(1).ok_or(())?)
        }
        (s, "") => (s.parse().map_err(|_| ())?, len.checked_sub(1).ok_or(())?),
        (s, e) => {
            let (s, e): (u64, u64) = (s.parse().map_err(|_| ())?, e.parse().map_err(|_| ())?);
            (s, e.min(len.saturating_sub(1)))
        }
    };
    if start > end || start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

pub(super) fn media_object(
    data: Bytes,
    kind: &'static str,
    etag: &str,
    headers: &HeaderMap,
) -> Response<Body> {
    let len = data.len() as u64;
    let range = byte_range(headers.get(RANGE).and_then(|v| v.to_str().ok()), len);
    let mut resp = if not_modified(headers, etag) {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        match range {
            Ok(None) => Response::new(full(data)),
            Ok(Some((s, e))) => {
                let mut r = Response::new(full(data.slice(s as usize..=e as usize)));
                *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {s}-{e}/{len}")) {
                    r.headers_mut().insert(CONTENT_RANGE, v);
                }
                r
            }
            Err(()) => {
                let mut r = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    r.headers_mut().insert(CONTENT_RANGE, v);
                }
                return r;
            }
        }
    };
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(ETAG, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        assert_eq!(parse_query(None), Ok(Query::default()));
        assert_eq!(
            parse_query(Some("_HLS_msn=12&_HLS_part=3&_HLS_skip=v2&x=1")),
            Ok(Query {
                msn: Some(12),
                part: Some(3),
                skip: true
            })
        );
        assert!(parse_query(Some("_HLS_part=1")).is_err());
        assert!(parse_query(Some("_HLS_msn=-1")).is_err());
        assert!(parse_query(Some("_HLS_skip=NO")).is_err());
    }

    #[test]
    fn object_names() {
        assert_eq!(
            hls::parse_object_name("init0.mp4"),
            Some(ObjectName::Init(0))
        );
        assert_eq!(
            hls::parse_object_name("part12.3.m4s"),
            Some(ObjectName::Part(12, 3))
        );
        assert_eq!(
            hls::parse_object_name("seg7.m4s"),
            Some(ObjectName::Segment(7))
        );
        assert_eq!(
            hls::parse_object_name("long2.m4s"),
            Some(ObjectName::Long(2))
        );
        for bad in [
            "..",
            "../x",
            "seg.m4s",
            "seg+1.m4s",
            "part1.m4s",
            "init.mp4",
            "seg1.mp4",
            "seg07.m4s",
            "part00.1.m4s",
            "long18446744073709551616.m4s",
            "init4294967296.mp4",
            "part1.4294967296.m4s",
        ] {
            assert_eq!(hls::parse_object_name(bad), None, "{bad}");
        }
    }

    use crate::package::chunker::Chunk;

    /// A stream with one video rendition (group of 3 LL segments per long one).
    fn media() -> (std::sync::Arc<StreamMedia>, std::sync::Arc<Rendition>) {
        crate::store::hot::test_stream(30.0)
    }

    fn publish_segment(r: &Rendition, msn: u64) {
        r.publish(Chunk::SegmentStart {
            msn,
            pdt_ms: 0,
            discontinuity: false,
            start: msn * 180_000,
            timescale: 90_000,
        });
        r.publish(Chunk::Part {
            msn,
            index: 0,
            independent: true,
            duration: 2.0,
            data: Bytes::from(vec![msn as u8; 4]),
            frames: Vec::new(),
        });
        r.publish(Chunk::SegmentEnd { msn, duration: 2.0 });
    }

    /// Issue 12 item 6: `long18446744073709551615.m4s` was a 200 with an empty
    /// body (u64 overflow of n × group) and an immutable Cache-Control. Every
    /// number a client can put in an object name is now looked up without
    /// overflow: out of range is 404 (Missing), never an empty object.
    #[test]
    fn standard_segment_number_overflow_is_404() {
        let (media, r) = media();
        for msn in 0..3 {
            publish_segment(&r, msn);
        }
        let lookup = hls::parse_object_name("long18446744073709551615.m4s").unwrap();
        assert_eq!(find(&r, media.group, lookup), Object::Missing);
        // n × group fits but n × group + group does not; and the smallest overflowing n.
        for n in [u64::MAX / 3, u64::MAX / 3 + 1, u64::MAX / 2] {
            assert_eq!(
                find(&r, media.group, ObjectName::Long(n)),
                Object::Missing,
                "{n}"
            );
        }
        assert_eq!(
            find(&r, 0, ObjectName::Long(0)),
            Object::Missing,
            "empty group"
        );
        for lookup in [
            ObjectName::Segment(u64::MAX),
            ObjectName::Part(u64::MAX, u32::MAX),
            ObjectName::Part(0, u32::MAX),
            ObjectName::Part(u64::MAX, 0),
            ObjectName::Init(u32::MAX),
        ] {
            assert_eq!(find(&r, media.group, lookup), Object::Missing, "{lookup:?}");
        }
        // The real one still concatenates its group.
        assert_eq!(
            find(&r, media.group, ObjectName::Long(0)),
            Object::Ready(Bytes::from([[0u8; 4], [1; 4], [2; 4]].concat()))
        );
        // Blocking-reload numbers: far beyond the edge is 400, never a wait or a wrap.
        assert_eq!(r.block(u64::MAX, Some(u32::MAX)), Block::TooFar);
        assert_eq!(r.block(u64::MAX, None), Block::TooFar);
        assert_eq!(r.block(4, Some(u32::MAX)), Block::Wait);
        assert!(parse_query(Some("_HLS_msn=18446744073709551616")).is_err());
        assert!(parse_query(Some("_HLS_msn=1&_HLS_part=4294967296")).is_err());
    }

    /// Issue 12 item 8 (sans-IO half): before a rendition has a complete
    /// segment there is no variant to list: the request waits, then is
    /// unavailable (503 + Retry-After), never a 200 without variants.
    #[test]
    fn multivariant_waits_for_its_first_variant_then_is_unavailable() {
        let (media, r) = media();
        let t0 = Instant::now();
        let deadline = t0 + multivariant_wait(&media);
        assert_eq!(multivariant_wait(&media), Duration::from_secs(2));
        assert_eq!(
            multivariant_step(&media, "playlist.m3u8", t0, deadline),
            MultivariantStep::Wait
        );
        assert_eq!(
            multivariant_step(&media, "playlist.m3u8", deadline, deadline),
            MultivariantStep::Unavailable
        );
        publish_segment(&r, 0);
        match multivariant_step(&media, "playlist.m3u8", deadline, deadline) {
            MultivariantStep::Serve(body) => {
                assert!(body.contains("#EXT-X-STREAM-INF"), "{body}");
                assert!(body.contains("360p30/playlist.m3u8"), "{body}");
            }
            other => panic!("{other:?}"),
        }
        let (media, _) = self::media();
        media.end();
        assert_eq!(
            multivariant_step(&media, "index.m3u8", t0, deadline),
            MultivariantStep::Ended
        );
    }

    /// Issue 12 items 7 and 11 (sans-IO half): a part being written is streamed
    /// only to a plain GET and only while its writer is live; HEAD, ranges and a
    /// stalled writer wait for the whole part (503 at the blocking limit).
    #[test]
    fn growing_part_streams_only_to_a_get_while_its_writer_is_live() {
        let part = 1.0 / 3.0;
        let fresh = Some(Duration::from_millis(30));
        assert_eq!(growing_step(false, false, fresh, part), GrowingStep::Stream);
        assert_eq!(growing_step(true, false, fresh, part), GrowingStep::Wait);
        assert_eq!(growing_step(false, true, fresh, part), GrowingStep::Wait);
        assert_eq!(
            growing_step(false, false, Some(Duration::from_secs(2)), part),
            GrowingStep::Wait
        );
        assert_eq!(growing_step(false, false, None, part), GrowingStep::Wait);
    }

    /// Issue 30: a parked request dropped before its answer (the client went
    /// away) left `blocked_waiters` one higher for good.
    #[test]
    fn a_parked_request_dropped_mid_wait_is_no_longer_counted() {
        let count = AtomicI64::new(0);
        let mut parked = Box::pin(async {
            let _parked = Parked::new(&count);
            std::future::pending::<()>().await;
        });
        let poll = futures_lite::future::block_on(futures_lite::future::poll_once(&mut parked));
        assert!(poll.is_none());
        assert_eq!(count.load(Relaxed), 1);
        drop(parked);
        assert_eq!(count.load(Relaxed), 0);
        // And an ordinary end of the wait.
        futures_lite::future::block_on(async {
            let _parked = Parked::new(&count);
            assert_eq!(count.load(Relaxed), 1);
        });
        assert_eq!(count.load(Relaxed), 0);
    }

    #[test]
    fn mpd_query() {
        let q = |low_latency, audio_only| {
            Ok(MpdQuery {
                low_latency,
                audio_only,
            })
        };
        assert_eq!(parse_mpd_query(None), q(false, false));
        assert_eq!(parse_mpd_query(Some("ll=1&t=5")), q(true, false));
        assert_eq!(parse_mpd_query(Some("ll=0")), q(false, false));
        assert_eq!(parse_mpd_query(Some("audio=1&ll=1")), q(true, true));
        assert!(parse_mpd_query(Some("ll=yes")).is_err());
        assert!(parse_mpd_query(Some("audio=yes")).is_err());
    }

    /// A streamed object sends each byte once, whatever chunks it grows by.
    #[test]
    fn unsent_bytes_of_growing_chunks() {
        let c = |s: &'static [u8]| Bytes::from_static(s);
        assert_eq!(unsent(&[], 0), None);
        assert_eq!(unsent(&[c(b"ab")], 0), Some(c(b"ab")));
        assert_eq!(unsent(&[c(b"ab")], 2), None);
        assert_eq!(unsent(&[c(b"ab"), c(b"cd")], 1), Some(c(b"bcd")));
        assert_eq!(unsent(&[c(b"ab"), c(b"cd")], 2), Some(c(b"cd")));
        // The segment complete: one body, the same bytes.
        assert_eq!(unsent(&[c(b"abcde")], 4), Some(c(b"e")));
    }

    /// The MPD lists the store's window: one Period, the rendition's
    /// segments from its first, and the segment being written only in LL-DASH.
    #[test]
    fn mpd_from_the_store() {
        let (media, r) = media();
        assert_eq!(mpd(&media, false, false, false, None, 0), None);
        for msn in 0..4 {
            publish_segment(&r, msn);
        }
        r.publish(Chunk::SegmentStart {
            msn: 4,
            pdt_ms: 0,
            discontinuity: false,
            start: 720_000,
            timescale: 90_000,
        });
        r.publish(Chunk::Part {
            msn: 4,
            index: 0,
            independent: true,
            duration: 1.0 / 3.0,
            data: Bytes::from_static(b"p"),
            frames: Vec::new(),
        });
        let standard = mpd(&media, false, false, false, None, 0).unwrap();
        assert!(
            standard.contains("<S t=\"0\" d=\"180000\" r=\"3\"/>"),
            "{standard}"
        );
        assert!(
            standard.contains("timeShiftBufferDepth=\"PT30S\""),
            "{standard}"
        );
        let ll = mpd(&media, true, false, false, None, 0).unwrap();
        assert!(ll.contains("<S t=\"0\" d=\"180000\" r=\"4\"/>"), "{ll}");
        // The segment being written: its bytes so far, to stream.
        assert_eq!(
            find(&r, media.group, ObjectName::Segment(4)),
            Object::Growing(vec![Bytes::from_static(b"p")])
        );
    }

    /// A rendition announced (a rung's first IDR, the audio's config) holds
    /// the listings back until it has a complete segment, unless another
    /// already has three (a rung that never completes one); ended ones do not.
    #[test]
    fn listings_wait_for_every_running_rendition() {
        assert!(settled([]));
        assert!(!settled([(1, false), (0, false)]));
        assert!(settled([(1, false), (1, false)]));
        assert!(settled([(1, false), (0, true)]));
        assert!(!settled([(2, false), (0, false)]));
        assert!(settled([(3, false), (0, false)]));
        // Through the store: the MPD and the multivariant playlist alike.
        let (media, r) = media();
        publish_segment(&r, 0);
        assert!(mpd(&media, true, false, false, None, 0).is_some());
        let audio = media.add(
            "audio",
            "mp4a.40.2".into(),
            crate::package::RenditionKind::Audio {
                channels: 2,
                nominal_bps: 128_000,
            },
        );
        assert_eq!(mpd(&media, false, false, false, None, 0), None);
        assert_eq!(multivariant(&media, "playlist.m3u8", None), None);
        publish_segment(&audio, 0);
        assert!(mpd(&media, true, false, false, None, 0)
            .is_some_and(|m| m.contains("contentType=\"audio\"")));
        assert!(multivariant(&media, "playlist.m3u8", None).is_some());
        // Standard DASH: segments past the presentation delay first.
        let needed = standard_dash_min_segments(&media.timing);
        assert!(needed >= 2, "{needed}");
        for msn in 1..needed as u64 {
            assert_eq!(mpd(&media, false, false, false, None, 0), None);
            publish_segment(&r, msn);
            publish_segment(&audio, msn);
        }
        assert!(mpd(&media, false, false, false, None, 0).is_some());
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_range(None, 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(byte_range(Some("bytes=5-"), 10), Ok(Some((5, 9))));
        assert_eq!(byte_range(Some("bytes=-4"), 10), Ok(Some((6, 9))));
        assert_eq!(byte_range(Some("bytes=8-20"), 10), Ok(Some((8, 9))));
        assert_eq!(byte_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(byte_range(Some("bytes=4-2"), 10), Err(()));
    }
}
