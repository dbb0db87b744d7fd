//! The `/live/NAME/…` routes over the hot store: the listings (see
//! [`super::listing`]), media playlists (with blocking reload and delta
//! updates), init segments, parts (preload hints answered on publication),
//! segments (one being written is streamed as its parts land: LL-DASH), and
//! earlier runs' objects from the DVR.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, RANGE};
use hyper::{Response, StatusCode};

use super::blocking::{blocking_limit, served_after_wait, wait};
use super::listing::{multivariant_file, steering_manifest, Listing, Steered};
use super::path::LiveFile;
use super::query::{parse_mpd_query, parse_query};
use super::response::{media_object, object_type, playlist, text, Body};
use super::runs::{dvr_runs, run_etag, run_prefix};
use super::streaming::{growing_step, streamed, GrowingStep};
use super::Origin;
use crate::package::hls::{self, MediaPlaylist, ObjectName, RenditionReport};
use crate::store::dvr::RunSegments;
use crate::store::hot::{Block, Object, Rendition, StreamMedia};
use crate::store::waiters::Position;
use crate::telemetry::clock;

/// Segments whose parts a playlist lists.
const PART_SEGMENTS: usize = 3;

/// `/live/NAME/FILE`.
/// `head`: a HEAD request (its headers must be the GET's final ones).
/// `dir`: a signed URL's token directory (`t/TOKEN/`) or `""`.
pub async fn handle(
    ctx: &Origin,
    name: &str,
    file: LiveFile<'_>,
    dir: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    head: bool,
) -> Response<Body> {
    // The steering manifest answers whether or not the stream is on air:
    // a player between two runs of it still needs a CDN that works.
    if file == LiveFile::Steering {
        return steering_manifest(ctx, name);
    }
    let Some(media) = ctx.store.playback(name) else {
        return text(StatusCode::NOT_FOUND, "no such stream\n");
    };
    let steered = Steered::of(ctx, name, dir);
    let steering = steered.as_ref().map(Steered::view);
    match file {
        LiveFile::Master => {
            let listing = Listing::Hls("playlist.m3u8");
            multivariant_file(ctx, &media, listing, steering, headers, "max-age=0").await
        }
        LiveFile::Index => {
            let listing = Listing::Hls("index.m3u8");
            multivariant_file(ctx, &media, listing, steering, headers, "max-age=1").await
        }
        LiveFile::DvrPlaylist if media.dvr.is_some() => {
            let listing = Listing::Hls("dvr.m3u8");
            multivariant_file(ctx, &media, listing, steering, headers, "max-age=1").await
        }
        LiveFile::DvrMpd if media.dvr.is_some() => match parse_mpd_query(query) {
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
        LiveFile::Manifest => match parse_mpd_query(query) {
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
        LiveFile::Rendition { rendition, file } => match media.rendition(rendition) {
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
        LiveFile::Run {
            rendition,
            run,
            file,
        } if run == run_prefix(media.timing.media_epoch_ms).trim_end_matches('/')
            && !file.ends_with(".m3u8") =>
        {
            match media.rendition(rendition) {
                Some(r) => rendition_file(ctx, &media, r, file, None, headers, head).await,
                None => text(StatusCode::NOT_FOUND, "no such rendition\n"),
            }
        }
        // An earlier run's object (the DVR playlists of a resumed NAME).
        LiveFile::Run {
            rendition,
            run,
            file,
        } => {
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
    let deadline = clock::now() + limit;
    if file == "playlist.m3u8" {
        let q = match parse_query(query) {
            Ok(q) => q,
            Err(e) => return text(StatusCode::BAD_REQUEST, e),
        };
        if let Some(msn) = q.msn {
            let mut waited = false;
            loop {
                let parking = r.park(Position::playlist(msn, q.part), deadline);
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
                        if !wait(ctx, parking).await {
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
        let parking = r.park(Position::object(lookup), deadline);
        match r.lookup(media.group, lookup) {
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
                let quiet = r.since_publish(clock::now());
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
                        if !wait(ctx, parking).await {
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
                if !wait(ctx, parking).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::hot::test_segment;

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

    /// A stream with one video rendition (group of 3 LL segments per long one).
    fn media() -> (std::sync::Arc<StreamMedia>, std::sync::Arc<Rendition>) {
        crate::store::hot::test_stream(30.0)
    }

    /// Issue 12 item 6: `long18446744073709551615.m4s` was a 200 with an empty
    /// body (u64 overflow of n × group) and an immutable Cache-Control. Every
    /// number a client can put in an object name is now looked up without
    /// overflow: out of range is 404 (Missing), never an empty object.
    #[test]
    fn standard_segment_number_overflow_is_404() {
        let (media, r) = media();
        for msn in 0..3 {
            test_segment(&r, msn);
        }
        let lookup = hls::parse_object_name("long18446744073709551615.m4s").unwrap();
        assert_eq!(r.lookup(media.group, lookup), Object::Missing);
        // n × group fits but n × group + group does not; and the smallest overflowing n.
        for n in [u64::MAX / 3, u64::MAX / 3 + 1, u64::MAX / 2] {
            assert_eq!(
                r.lookup(media.group, ObjectName::Long(n)),
                Object::Missing,
                "{n}"
            );
        }
        assert_eq!(
            r.lookup(0, ObjectName::Long(0)),
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
            assert_eq!(r.lookup(media.group, lookup), Object::Missing, "{lookup:?}");
        }
        // The real one still concatenates its group.
        assert_eq!(
            r.lookup(media.group, ObjectName::Long(0)),
            Object::Ready(Bytes::from([[0u8; 4], [1; 4], [2; 4]].concat()))
        );
        // Blocking-reload numbers: far beyond the edge is 400, never a wait or a wrap.
        assert_eq!(r.block(u64::MAX, Some(u32::MAX)), Block::TooFar);
        assert_eq!(r.block(u64::MAX, None), Block::TooFar);
        assert_eq!(r.block(4, Some(u32::MAX)), Block::Wait);
        assert!(parse_query(Some("_HLS_msn=18446744073709551616")).is_err());
        assert!(parse_query(Some("_HLS_msn=1&_HLS_part=4294967296")).is_err());
    }
}
