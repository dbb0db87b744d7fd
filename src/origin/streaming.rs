//! A part or segment still being written, streamed as its chunks are
//! published (HTTP/1.1 chunked transfer, h2 DATA frames): whether a request
//! may be answered that way, and the body that follows the writer.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;

use super::response::{Body, BodyError, IMMUTABLE};
use crate::package::hls::ObjectName;
use crate::store::hot::{Object, Rendition};
use crate::store::waiters::Position;
use crate::telemetry::clock;

/// What a request for a part being written does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowingStep {
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
pub fn growing_step(
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
pub fn streamed(
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
            let mut parking = st.r.park(Position::object(lookup), deadline);
            let have = match st.r.lookup(group, lookup) {
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
            let left = deadline.saturating_duration_since(clock::now());
            if left.is_zero() {
                st.done = true;
                let e = BodyError::Late {
                    rendition: st.r.name.clone(),
                    object: lookup.uri(),
                    secs: limit.as_secs(),
                };
                return Some((Err(e), st));
            }
            futures_lite::future::or(parking.notified(), glommio::timer::sleep(left)).await;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
