//! Response building shared by every route: the body type, plain-text
//! answers, and the headers of stored objects and playlists (cache, ETag,
//! Range, gzip). A leaf: it imports nothing else from `origin`, so the
//! routes and every handler can use it without importing each other.

use std::hash::{Hash, Hasher};
use std::io::Write;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING,
    CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RANGE, VARY,
};
use hyper::{Response, StatusCode};

/// Media objects never change once published.
pub const IMMUTABLE: &str = "public, max-age=86400, immutable";

/// Whole bodies, or a part streamed as its CMAF chunks are written. Not
/// `Send`: a streamed part waits on the executor's timer (connections never
/// leave their core).
pub type Body = std::pin::Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = BodyError>>>;

/// Why a body stopped before its end. The connection is cut rather than the
/// body ended cleanly, so no client or cache takes a short body for the whole
/// (immutable) object.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("{object} of {rendition} not complete {secs} s after the request")]
    Late {
        rendition: String,
        /// The part or segment's name (`part12.3.m4s`, `seg12.m4s`).
        object: String,
        secs: u64,
    },
    #[error("{object} of {rendition} abandoned while it was being written")]
    Abandoned { rendition: String, object: String },
}

pub fn full(b: Bytes) -> Body {
    Box::pin(Full::new(b).map_err(|never| match never {}))
}

/// No bytes and no claimed length: the answer to a HEAD whose GET body has no
/// known length (hyper then sends no Content-Length rather than a wrong `0`).
pub struct UnknownLength;

impl hyper::body::Body for UnknownLength {
    type Data = Bytes;
    type Error = BodyError;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        std::task::Poll::Ready(None)
    }
    fn is_end_stream(&self) -> bool {
        true
    }
}

pub fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A stored object's Content-Type.
pub fn object_type(file: &str) -> &'static str {
    if file.ends_with(".mp4") {
        "video/mp4"
    } else {
        "video/iso.segment"
    }
}

pub fn etag_of(body: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

pub fn playlist(body: String, headers: &HeaderMap, cache: &'static str) -> Response<Body> {
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

pub fn media_object(
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
