//! HLS playback routes over the hot store: playlists (with blocking reload
//! and delta updates), init segments, parts (preload hints answered on
//! publication), segments; cache headers, ETag, Range, gzip.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING,
    CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RANGE, VARY,
};
use hyper::{Response, StatusCode};

use super::routes::{full, text, Body};
use crate::package::hls::{self, MediaPlaylist, RenditionReport};
use crate::runtime::Context;
use crate::store::hot::{Block, Object, Rendition, RenditionKind, StreamMedia};

/// Media objects never change once published.
const IMMUTABLE: &str = "public, max-age=86400, immutable";
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

/// `/live/{stream}/…`
pub async fn handle(
    ctx: &Context,
    rest: &[&str],
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response<Body> {
    let Some(media) = rest.first().and_then(|name| ctx.store.get(name)) else {
        return text(StatusCode::NOT_FOUND, "no such stream\n");
    };
    media.count_request();
    match rest {
        [_, "master.m3u8"] => playlist(multivariant(&media, "playlist.m3u8"), headers, "max-age=0"),
        [_, "index.m3u8"] => playlist(multivariant(&media, "index.m3u8"), headers, "max-age=1"),
        [_, rendition, file] => match media.rendition(rendition) {
            Some(r) => rendition_file(ctx, &media, r, file, query, headers).await,
            None => text(StatusCode::NOT_FOUND, "no such rendition\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn multivariant(media: &StreamMedia, playlist_name: &str) -> String {
    let renditions = media.renditions();
    let audio = renditions.iter().find_map(|r| match r.kind {
        RenditionKind::Audio {
            channels,
            nominal_bps,
        } => Some((r, channels, nominal_bps)),
        _ => None,
    });
    let audio_bps = audio.map_or(0, |(r, _, nominal)| {
        r.measured_bps().map_or(nominal, |m| m.1)
    });
    let mut variants = Vec::new();
    for r in &renditions {
        let RenditionKind::Video {
            width,
            height,
            fps,
            nominal_bps,
        } = r.kind
        else {
            continue;
        };
        // Listed once there is a whole segment to start from (and to measure).
        let Some((avg, peak)) = r.measured_bps() else {
            continue;
        };
        if r.is_ended() {
            continue;
        }
        let average = avg.max(nominal_bps) + audio_bps;
        let mut codecs = r.codecs.clone();
        if let Some((a, _, _)) = audio {
            codecs = format!("{codecs},{}", a.codecs);
        }
        variants.push(hls::Variant {
            uri: format!("{}/{playlist_name}", r.name),
            bandwidth: peak.max(average - audio_bps) + audio_bps,
            average_bandwidth: average,
            codecs,
            width,
            height,
            frame_rate: fps,
        });
    }
    // Highest first: players that take the first variant start on the best.
    variants.sort_by(|a, b| b.bandwidth.cmp(&a.bandwidth));
    let audio_media = audio.map(|(r, channels, _)| hls::AudioMedia {
        uri: format!("{}/{playlist_name}", r.name),
        channels,
    });
    hls::multivariant_playlist(&variants, audio_media.as_ref())
}

async fn rendition_file(
    ctx: &Context,
    media: &StreamMedia,
    r: std::sync::Arc<Rendition>,
    file: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response<Body> {
    let deadline = Instant::now() + Duration::from_secs(3 * media.timing.target_duration);
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
    if file == "index.m3u8" {
        let body = r.with_segments(|segments, disc, ended| {
            hls::standard_playlist(&hls::long_segments(segments, media.group), disc, ended)
        });
        return playlist(body, headers, "max-age=1");
    }
    let Some(lookup) = parse_object(file) else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let find = || match lookup {
        Lookup::Init(v) => r.init(v),
        Lookup::Part(msn, i) => r.part(msn, i),
        Lookup::Segment(msn) => r.segment(msn),
        Lookup::Long(n) => r.long_segment(n, media.group),
    };
    let mut waited = false;
    loop {
        let listener = r.changed.listen();
        match find() {
            Object::Ready(data) => {
                if waited {
                    served_after_wait(ctx, media, &r);
                }
                let etag = format!("\"{}-{}-{file}\"", media.generation, r.name);
                let kind = if file.ends_with(".mp4") {
                    "video/mp4"
                } else {
                    "video/iso.segment"
                };
                return media_object(data, kind, &etag, headers);
            }
            Object::Gone => return text(StatusCode::GONE, "evicted from the live window\n"),
            Object::Missing => return text(StatusCode::NOT_FOUND, "not found\n"),
            // A part being written: stream its chunks as they land (unless a
            // byte range was asked for: that waits for the whole part).
            Object::Growing(_) if !headers.contains_key(RANGE) => {
                if let Lookup::Part(msn, index) = lookup {
                    if waited {
                        served_after_wait(ctx, media, &r);
                    }
                    return streamed_part(r.clone(), msn, index, deadline);
                }
            }
            Object::Growing(_) => {
                if !wait(ctx, listener, deadline).await {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "not available in time\n");
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

/// A part still being written, sent chunk by chunk (HTTP/1.1 chunked
/// transfer, h2 DATA frames) as each frame's fragment is published; ends with
/// the part. The bytes are the part's bytes, whichever way they are sent.
fn streamed_part(
    r: std::sync::Arc<Rendition>,
    msn: u64,
    index: u32,
    deadline: Instant,
) -> Response<Body> {
    use http_body_util::BodyExt;
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
            let have = match st.r.part(msn, index) {
                Object::Ready(data) => {
                    st.done = true;
                    data
                }
                Object::Growing(chunks) => {
                    let mut all = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
                    for c in &chunks {
                        all.extend_from_slice(c);
                    }
                    Bytes::from(all)
                }
                // Evicted or abandoned mid-way: end here (the client sees a short body).
                _ => return None,
            };
            if have.len() > st.sent {
                let next = have.slice(st.sent..);
                st.sent = have.len();
                return Some((Ok(hyper::body::Frame::data(next)), st));
            }
            if st.done || Instant::now() >= deadline {
                return None;
            }
            // No timer here (bodies must be Send): a stream that stops
            // publishing ends the rendition, which wakes this too.
            listener.await;
        }
    });
    let mut resp = Response::new(http_body_util::StreamBody::new(stream).boxed());
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("video/iso.segment"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    resp
}

/// A parked request is being answered: how long after the publish that woke it.
fn served_after_wait(ctx: &Context, media: &StreamMedia, r: &Rendition) {
    if let Some(d) = r.since_publish() {
        media.record_served(d);
        ctx.http.record_wake(d);
    }
}

/// Waits for a publish (or the deadline, or shutdown); false on the deadline.
async fn wait(ctx: &Context, listener: event_listener::EventListener, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() || ctx.shutdown.is_triggered() {
        return false;
    }
    ctx.http.blocked_waiters.fetch_add(1, Relaxed);
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
    let woke = futures_lite::future::or(woke, async {
        ctx.shutdown.wait().await;
        false
    })
    .await;
    ctx.http.blocked_waiters.fetch_sub(1, Relaxed);
    woke
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
        hls::media_playlist(&MediaPlaylist {
            timing: media.timing,
            segments,
            discontinuity_sequence,
            reports: &reports,
            part_segments: PART_SEGMENTS,
            skip,
            ended,
        })
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Lookup {
    Init(u32),
    Part(u64, u32),
    Segment(u64),
    Long(u64),
}

/// File names the packager publishes; anything else (`..` included) is not ours.
fn parse_object(file: &str) -> Option<Lookup> {
    fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
        // Digits only: no signs, no spaces.
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    }
    if let Some(v) = file
        .strip_prefix("init")
        .and_then(|f| f.strip_suffix(".mp4"))
    {
        return num(v).map(Lookup::Init);
    }
    let stem = file.strip_suffix(".m4s")?;
    if let Some(rest) = stem.strip_prefix("part") {
        let (msn, i) = rest.split_once('.')?;
        return Some(Lookup::Part(num(msn)?, num(i)?));
    }
    if let Some(n) = stem.strip_prefix("seg") {
        return num(n).map(Lookup::Segment);
    }
    stem.strip_prefix("long").and_then(num).map(Lookup::Long)
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

fn playlist(body: String, headers: &HeaderMap, cache: &'static str) -> Response<Body> {
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

fn media_object(
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
        assert_eq!(parse_object("init0.mp4"), Some(Lookup::Init(0)));
        assert_eq!(parse_object("part12.3.m4s"), Some(Lookup::Part(12, 3)));
        assert_eq!(parse_object("seg7.m4s"), Some(Lookup::Segment(7)));
        assert_eq!(parse_object("long2.m4s"), Some(Lookup::Long(2)));
        for bad in [
            "..",
            "../x",
            "seg.m4s",
            "seg+1.m4s",
            "part1.m4s",
            "init.mp4",
            "seg1.mp4",
        ] {
            assert_eq!(parse_object(bad), None, "{bad}");
        }
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
