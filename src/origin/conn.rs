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

    /// When the connection must be closed (no complete headers by then).
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.due.is_some_and(|d| now >= d)
    }
}

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
