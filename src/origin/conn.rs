//! One HTTP connection's header deadline (sans-IO: the socket glue reports
//! reads, requests and finished responses with the time; this says when the
//! connection must be closed).
//!
//! The idle timeout alone (a socket read timeout) restarts on every byte, so a
//! client sending its headers a byte a second held a connection for ever
//! (issue 12 item 10). Here a connection owes a request's complete headers
//! within `server.http_header_timeout_secs`:
//! - from accept, for its first request (a connection that sends nothing is
//!   closed then too);
//! - from the first byte after its last response, for each later request
//!   (HTTP/1.1 keep-alive);
//! - never while a request is being answered (a blocking reload, a part
//!   streamed as it is written), nor on an HTTP/2 connection after its first
//!   request (its frames flow while streams are idle; the idle timeout still
//!   closes a silent one).
//!
//! Drive contract: call [`HeaderClock::on_read`] for every read that returned
//! bytes, [`HeaderClock::on_request`] when a request's headers are parsed (the
//! service is called), [`HeaderClock::on_response_done`] when its response
//! body is finished or dropped; after each, [`HeaderClock::due`] is when the
//! connection must be closed unless another call comes first.

use std::time::{Duration, Instant};

/// The HTTP/2 connection preface, as the first bytes of a prior-knowledge h2c connection.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

#[derive(Debug)]
pub struct HeaderClock {
    timeout: Duration,
    due: Option<Instant>,
    in_flight: u32,
    requests: u64,
    /// Bytes arrived while a request was in flight (a pipelined next request).
    read_in_flight: bool,
    /// The first bytes seen so far (up to the preface's length), to spot h2c.
    head: Vec<u8>,
}

impl HeaderClock {
    /// A connection accepted at `now`: its first request's headers are due by `now + timeout`.
    pub fn new(now: Instant, timeout: Duration) -> Self {
        HeaderClock {
            timeout,
            due: Some(now + timeout),
            in_flight: 0,
            requests: 0,
            read_in_flight: false,
            head: Vec::new(),
        }
    }

    fn is_h2(&self) -> bool {
        self.head.len() >= H2_PREFACE.len() && self.head.starts_with(H2_PREFACE)
    }

    /// The socket returned `bytes`. True when this armed a deadline that was not set.
    pub fn on_read(&mut self, now: Instant, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return false;
        }
        if self.head.len() < H2_PREFACE.len() {
            let take = (H2_PREFACE.len() - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
        if self.in_flight > 0 {
            self.read_in_flight = true;
            return false;
        }
        if self.due.is_some() || (self.requests > 0 && self.is_h2()) {
            return false;
        }
        self.due = Some(now + self.timeout);
        true
    }

    /// A request's headers were parsed: nothing is due while it is answered.
    pub fn on_request(&mut self) {
        self.in_flight += 1;
        self.requests += 1;
        self.due = None;
        self.read_in_flight = false;
    }

    /// A response finished (or was dropped). True when this armed a deadline.
    pub fn on_response_done(&mut self, now: Instant) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight > 0 || !self.read_in_flight || self.is_h2() {
            return false;
        }
        self.read_in_flight = false;
        self.due = Some(now + self.timeout);
        true
    }

    /// Whether a request is being answered.
    pub fn in_flight(&self) -> bool {
        self.in_flight > 0
    }

    /// When the connection must be closed (no complete headers by then).
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.due.is_some_and(|d| now >= d)
    }
}

/// An over-long request line, spotted before hyper's read buffer overflows.
///
/// hyper's buffer bounds a request's head (it is a little larger than the
/// header and URI limits together); a request line longer than that overflowed
/// it before the line ended, and hyper answered `431` with an empty body, where
/// a URI that long is a `414` (a 100 KB URL got 431: issue 30). The socket glue
/// passes every byte it reads through [`RequestLines::on_read`] before hyper
/// sees it and answers `414` itself when that says so.
///
/// It follows HTTP/1 framing only as far as it must: request line, header
/// lines (for `Content-Length`), then that many body bytes. A chunked body (or
/// any `Transfer-Encoding`) is refused with a close by the body limit, and an
/// h2c connection carries no request lines: both stop the scan.
#[derive(Debug)]
pub struct RequestLines {
    /// The longest request line (without CRLF) let through.
    max_line: usize,
    state: Scan,
    /// The first bytes of the connection (up to the h2 preface's length).
    head: Vec<u8>,
    /// Where, in the last read, the request line being scanned began (0:
    /// in an earlier read).
    line_at: usize,
}

#[derive(Debug)]
enum Scan {
    /// In a request line: its length so far (empty lines before one are skipped).
    RequestLine(usize),
    /// In the header lines: the current line's start (lower-cased, up to
    /// [`HEADER_START`] bytes) and length, and what the lines said so far.
    Headers {
        start: Vec<u8>,
        len: usize,
        body: u64,
        te: bool,
    },
    /// In a body: its bytes left.
    Body(u64),
    /// Not followed any further.
    Off,
}

/// Enough of a header line to tell `content-length:` or `transfer-encoding:` apart.
const HEADER_START: usize = 40;

impl RequestLines {
    /// A connection's scan. `max_uri_bytes`: `server.http_max_uri_bytes`; the
    /// line may be 1 KiB longer (method, version, an absolute URI's authority):
    /// a URI just over the limit still reaches the request checks (a `414`
    /// counted with the others) while hyper's buffer holds it.
    pub fn new(max_uri_bytes: usize) -> Self {
        RequestLines {
            max_line: max_uri_bytes + 1024,
            state: Scan::RequestLine(0),
            head: Vec::new(),
            line_at: 0,
        }
    }

    /// The bytes just read (in order). `Err`: a request line is longer than
    /// allowed; answer `414` and close, handing hyper only the bytes before
    /// that line ([`RequestLines::refused_at`]: the requests pipelined ahead
    /// of it, answered first).
    pub fn on_read(&mut self, bytes: &[u8]) -> Result<(), UriTooLong> {
        self.line_at = 0;
        if self.head.len() < H2_PREFACE.len() {
            let take = (H2_PREFACE.len() - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            if self.head.len() == H2_PREFACE.len() && self.head == H2_PREFACE {
                self.state = Scan::Off;
            }
        }
        let mut at = 0;
        while at < bytes.len() {
            match &mut self.state {
                Scan::Off => return Ok(()),
                Scan::Body(left) => {
                    let take = (*left).min((bytes.len() - at) as u64);
                    *left -= take;
                    at += take as usize;
                    if *left == 0 {
                        self.state = Scan::RequestLine(0);
                        self.line_at = at;
                    }
                }
                Scan::RequestLine(len) => {
                    let b = bytes[at];
                    at += 1;
                    match b {
                        b'\n' if *len == 0 => {}
                        b'\n' => {
                            self.state = Scan::Headers {
                                start: Vec::new(),
                                len: 0,
                                body: 0,
                                te: false,
                            }
                        }
                        b'\r' => {}
                        _ => {
                            *len += 1;
                            if *len > self.max_line {
                                return Err(UriTooLong);
                            }
                        }
                    }
                }
                Scan::Headers {
                    start,
                    len,
                    body,
                    te,
                } => {
                    let b = bytes[at];
                    at += 1;
                    match b {
                        b'\n' if *len == 0 => {
                            self.state = match (*te, *body) {
                                (true, _) => Scan::Off,
                                (false, 0) => Scan::RequestLine(0),
                                (false, n) => Scan::Body(n),
                            };
                            self.line_at = at;
                        }
                        b'\n' => {
                            if let Some(v) = start.strip_prefix(b"content-length:") {
                                // Unreadable: hyper refuses the request (400) and closes.
                                match std::str::from_utf8(v)
                                    .ok()
                                    .and_then(|v| v.trim().parse().ok())
                                {
                                    Some(n) => *body = n,
                                    None => self.state = Scan::Off,
                                }
                            } else if start.starts_with(b"transfer-encoding:") {
                                *te = true;
                            }
                            if let Scan::Headers { start, len, .. } = &mut self.state {
                                start.clear();
                                *len = 0;
                            }
                        }
                        b'\r' => {}
                        _ => {
                            *len += 1;
                            if start.len() < HEADER_START {
                                start.push(b.to_ascii_lowercase());
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl RequestLines {
    /// After [`RequestLines::on_read`] refused a read: how many of its bytes
    /// come before the refused line (whole requests, or the end of one, that
    /// hyper still gets and answers before the `414`).
    pub fn refused_at(&self) -> usize {
        self.line_at
    }
}

/// A request line over [`RequestLines`]' limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request line longer than server.http_max_uri_bytes allows")]
pub struct UriTooLong;

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    /// Issue 12 item 10 (sans-IO half): headers trickled a byte a second never
    /// complete, and the deadline does not move with each byte; a connection
    /// that sends nothing is due at the same time.
    #[test]
    fn slow_headers_are_due_from_accept_whatever_trickles_in() {
        let t0 = Instant::now();
        let mut c = HeaderClock::new(t0, T);
        for s in 0..4 {
            assert!(!c.on_read(t0 + Duration::from_secs(s), b"G"));
            assert!(!c.expired(t0 + Duration::from_secs(s)));
        }
        assert_eq!(c.due(), Some(t0 + T));
        assert!(c.expired(t0 + T));
        let idle = HeaderClock::new(t0, T);
        assert!(idle.expired(t0 + T));
    }

    #[test]
    fn keep_alive_requests_are_due_from_their_first_byte() {
        let t0 = Instant::now();
        let mut c = HeaderClock::new(t0, T);
        c.on_read(t0, b"GET / HTTP/1.1\r\n\r\n");
        c.on_request();
        // A long answer (blocking reload) is never cut by the header deadline.
        assert_eq!(c.due(), None);
        assert!(!c.expired(t0 + 10 * T));
        assert!(!c.on_response_done(t0 + 2 * T));
        // Idle keep-alive: nothing due (the idle timeout covers it).
        assert_eq!(c.due(), None);
        // The next request's first byte starts its clock.
        let t1 = t0 + 3 * T;
        assert!(c.on_read(t1, b"G"));
        assert!(!c.on_read(t1 + Duration::from_secs(1), b"E"));
        assert_eq!(c.due(), Some(t1 + T));
        c.on_request();
        assert_eq!(c.due(), None);
    }

    #[test]
    fn pipelined_bytes_start_the_clock_when_the_answer_ends() {
        let t0 = Instant::now();
        let mut c = HeaderClock::new(t0, T);
        c.on_request();
        c.on_read(t0 + T, b"GET /next");
        assert_eq!(c.due(), None);
        let t1 = t0 + 2 * T;
        assert!(c.on_response_done(t1));
        assert_eq!(c.due(), Some(t1 + T));
    }

    /// Issue 30: a 100 KB URL got hyper's 431 (its buffer overflowed before
    /// the line ended); the scan trips on the request line, however it is cut
    /// into reads, and never on headers, bodies or later requests that fit.
    #[test]
    fn an_over_long_request_line_trips_however_it_arrives() {
        let long = format!(
            "GET /live/x?{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "u".repeat(100_000)
        );
        let mut whole = RequestLines::new(8192);
        assert_eq!(whole.on_read(long.as_bytes()), Err(UriTooLong));
        let mut trickled = RequestLines::new(8192);
        let tripped = long
            .as_bytes()
            .chunks(1000)
            .position(|c| trickled.on_read(c).is_err());
        assert_eq!(tripped, Some(9), "trips once 9216 bytes of the line are in");
        // Just under the line limit: through (the request checks answer it).
        let mut fits = RequestLines::new(8192);
        let at_limit = format!("GET /{} HTTP/1.1\r\n", "u".repeat(8192 + 1024 - 14));
        assert_eq!(at_limit.len(), 8192 + 1024 + 2);
        assert_eq!(fits.on_read(at_limit.as_bytes()), Ok(()));
    }

    #[test]
    fn headers_bodies_and_keep_alive_requests_are_followed() {
        let mut scan = RequestLines::new(100);
        // A long header line is hyper's and the header limit's business.
        let big_header = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "h".repeat(500));
        assert_eq!(scan.on_read(big_header.as_bytes()), Ok(()));
        // A body (its bytes are not a request line), then the next request.
        let body = format!(
            "POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n{}GET /ok HTTP/1.1\r\n\r\n",
            "b".repeat(2000)
        );
        assert_eq!(scan.on_read(body.as_bytes()), Ok(()));
        let next = format!("\r\nGET /{} HTTP/1.1\r\n", "n".repeat(1200));
        assert_eq!(scan.on_read(next.as_bytes()), Err(UriTooLong));
        // Chunked bodies and h2c are not followed.
        let mut chunked = RequestLines::new(100);
        let req = format!(
            "POST / HTTP/1.1\r\ntransfer-ENCODING: chunked\r\n\r\n{}",
            "c".repeat(5000)
        );
        assert_eq!(chunked.on_read(req.as_bytes()), Ok(()));
        let mut h2 = RequestLines::new(100);
        assert_eq!(h2.on_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Ok(()));
        assert_eq!(h2.on_read(&[b'x'; 5000]), Ok(()));
    }

    /// Issue 31: a long line read together with requests pipelined ahead of
    /// it (one read, or after a body) refuses only itself: the bytes before
    /// it are still the server's to answer.
    #[test]
    fn a_refused_line_leaves_the_requests_before_it() {
        let first = "GET /live/a/r/playlist.m3u8?_HLS_msn=9 HTTP/1.1\r\nHost: x\r\n\r\n";
        // Over the line limit (100 + 1 KiB for method, version, authority).
        let long = format!("GET /{} HTTP/1.1\r\n", "u".repeat(2000));
        let mut scan = RequestLines::new(100);
        let both = format!("{first}{long}");
        assert_eq!(scan.on_read(both.as_bytes()), Err(UriTooLong));
        assert_eq!(scan.refused_at(), first.len());
        // After a body, in the same read.
        let post = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        let mut scan = RequestLines::new(100);
        let both = format!("{post}{long}");
        assert_eq!(scan.on_read(both.as_bytes()), Err(UriTooLong));
        assert_eq!(scan.refused_at(), post.len());
        // A line begun in an earlier read: nothing of this one is before it.
        let mut scan = RequestLines::new(100);
        assert_eq!(scan.on_read(first.as_bytes()), Ok(()));
        assert_eq!(scan.on_read(&long.as_bytes()[..50]), Ok(()));
        assert_eq!(scan.on_read(&long.as_bytes()[50..]), Err(UriTooLong));
        assert_eq!(scan.refused_at(), 0);
    }

    #[test]
    fn h2_connections_owe_only_their_first_request() {
        let t0 = Instant::now();
        let mut c = HeaderClock::new(t0, T);
        c.on_read(t0, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        c.on_request();
        c.on_request();
        c.on_read(t0, b"window update");
        c.on_response_done(t0);
        c.on_response_done(t0);
        c.on_read(t0 + T, b"ping");
        assert_eq!(c.due(), None);
    }
}
