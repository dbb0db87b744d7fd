//! Listings: the multivariant playlists and the MPDs (live, standard, DVR),
//! held back until every rendition can be listed, and the content steering
//! manifest they point at.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};

use super::blocking::wait_any;
use super::response::{full, playlist, text, Body};
use super::runs::{dvr_runs, run_prefix};
use super::Origin;
use crate::package::dash;
use crate::package::hls;
use crate::store::hot::StreamMedia;
use crate::store::waiters::Position;
use crate::telemetry::clock::{self, unix_ms};

/// What a listing request (multivariant playlist or MPD) lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// A multivariant playlist whose variants are `RENDITION/{name}`.
    Hls(&'static str),
    Mpd {
        low_latency: bool,
        audio_only: bool,
        /// The DVR MPD: the whole rewind window.
        dvr: bool,
    },
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
#[cfg(test)]
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
pub async fn multivariant_file(
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
    let deadline = clock::now() + wait;
    loop {
        // Park before looking, so a publish in between is not missed. A
        // rendition added later has no waiter here: look again at least
        // every 250 ms.
        let step = deadline.min(clock::now() + Duration::from_millis(250));
        let parkings: Vec<_> = media
            .renditions()
            .iter()
            .map(|r| r.park(Position::ANY, step))
            .collect();
        let body = match listing {
            Listing::Hls(playlist_name) => multivariant(media, playlist_name, steering),
            Listing::Mpd {
                low_latency,
                audio_only,
                dvr,
            } => mpd(media, low_latency, audio_only, dvr, steering, unix_ms()),
        };
        match listing_step(body, media, clock::now(), deadline) {
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
                wait_any(ctx, parkings, step).await;
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

/// The multivariant playlist, or None while no video rendition can be listed.
pub fn multivariant(
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
pub struct Steered {
    server_uri: String,
    pathways: Vec<(String, String)>,
}

impl Steered {
    /// `dir`: what follows `/live/NAME/` before the stream's own files
    /// (a signed URL's token directory), kept so every CDN's URIs carry it.
    pub fn of(ctx: &Origin, name: &str, dir: &str) -> Option<Steered> {
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

    pub fn view(&self) -> hls::Steering<'_> {
        hls::Steering {
            server_uri: &self.server_uri,
            pathways: &self.pathways,
        }
    }
}

/// `NAME/steering.json`: the HLS / DASH-IF steering manifest: the CDNs in
/// `[cdn] pathways` order. A player that failed on one moves on by itself
/// (and keeps away from it a while); this says where to go first.
pub fn steering_manifest(ctx: &Origin, name: &str) -> Response<Body> {
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

/// The MPD at `now_ms`, or None while no video rendition can be listed.
pub fn mpd(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::chunker::Chunk;
    use crate::package::hls::ObjectName;
    use crate::store::hot::{test_segment, Object, Rendition};

    /// A stream with one video rendition (group of 3 LL segments per long one).
    fn media() -> (std::sync::Arc<StreamMedia>, std::sync::Arc<Rendition>) {
        crate::store::hot::test_stream(30.0)
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
        test_segment(&r, 0);
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

    /// The MPD lists the store's window: one Period, the rendition's
    /// segments from its first, and the segment being written only in LL-DASH.
    #[test]
    fn mpd_from_the_store() {
        let (media, r) = media();
        assert_eq!(mpd(&media, false, false, false, None, 0), None);
        for msn in 0..4 {
            test_segment(&r, msn);
        }
        r.publish_now(Chunk::SegmentStart {
            msn: 4,
            pdt_ms: 0,
            discontinuity: false,
            start: 720_000,
            timescale: 90_000,
        });
        r.publish_now(Chunk::Part {
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
            r.lookup(media.group, ObjectName::Segment(4)),
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
        test_segment(&r, 0);
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
        test_segment(&audio, 0);
        assert!(mpd(&media, true, false, false, None, 0)
            .is_some_and(|m| m.contains("contentType=\"audio\"")));
        assert!(multivariant(&media, "playlist.m3u8", None).is_some());
        // Standard DASH: segments past the presentation delay first.
        let needed = standard_dash_min_segments(&media.timing);
        assert!(needed >= 2, "{needed}");
        for msn in 1..needed as u64 {
            assert_eq!(mpd(&media, false, false, false, None, 0), None);
            test_segment(&r, msn);
            test_segment(&audio, msn);
        }
        assert!(mpd(&media, false, false, false, None, 0).is_some());
    }
}
