//! Requests parked on a rendition's live edge: LL-HLS blocking playlist
//! reloads (`_HLS_msn`, `_HLS_part`), preload hints, and parts or segments
//! being written. Sans-IO, after quinn-proto's `TimerTable`: each waiter is
//! keyed by the [`Position`] it waits for and its deadline; a publish says
//! which waiters it reached ([`Waiters::publish`]), the clock says which ran
//! out ([`Waiters::expire`], [`Waiters::poll_timeout`]). Nothing here sleeps,
//! reads a clock or wakes a task: the store's glue notifies the waiters a
//! publish returns, the origin's sleeps until a waiter's deadline.
//!
//! Drive contract: [`Waiters::insert`] a waiter *before* looking at the
//! store (a publish in between then readies it rather than being missed);
//! call [`Waiters::publish`] after every publish has changed the store, and
//! [`Waiters::end`] when the rendition ends; a waiter's owner asks
//! [`Waiters::poll`] after each wake and [`Waiters::remove`]s it when it
//! stops waiting for any other reason.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::package::chunker::Chunk;
use crate::package::hls::ObjectName;

/// A point in a rendition's publication order: a segment's start, then each
/// of its parts (its chunks, then the whole part), then its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    msn: u64,
    /// 0: the segment started; `2i + 1`: a chunk of part `i`; `2i + 2`:
    /// part `i` whole; `u64::MAX`: the segment complete.
    step: u64,
}

impl Position {
    /// The first thing any publish reaches.
    pub const ANY: Position = Position { msn: 0, step: 0 };

    /// Segment `msn` started.
    pub fn start(msn: u64) -> Position {
        Position { msn, step: 0 }
    }

    /// A chunk of part `index` of segment `msn` (chunked parts).
    pub fn chunk(msn: u64, index: u32) -> Position {
        Position {
            msn,
            step: 2 * u64::from(index) + 1,
        }
    }

    /// Part `index` of segment `msn`, whole.
    pub fn part(msn: u64, index: u32) -> Position {
        Position {
            msn,
            step: 2 * u64::from(index) + 2,
        }
    }

    /// Segment `msn` complete.
    pub fn end(msn: u64) -> Position {
        Position {
            msn,
            step: u64::MAX,
        }
    }

    /// What a blocking playlist reload waits for: with `_HLS_part`, that
    /// part of segment `msn` (a part past the segment's last is the next
    /// segment's first: later in this order); without, the whole segment.
    pub fn playlist(msn: u64, part: Option<u32>) -> Position {
        match part {
            Some(p) => Position::part(msn, p),
            None => Position::end(msn),
        }
    }

    /// What a request for an object not there yet (or being written) waits
    /// for: a part's first chunk (it may be streamed from there), a
    /// segment's start. Inits and standard segments are never waited for:
    /// any publish.
    pub fn object(name: ObjectName) -> Position {
        match name {
            ObjectName::Part(msn, index) => Position::chunk(msn, index),
            ObjectName::Segment(msn) => Position::start(msn),
            ObjectName::Init(_) | ObjectName::Long(_) => Position::ANY,
        }
    }

    /// What publishing `chunk` reaches.
    pub fn of(chunk: &Chunk) -> Position {
        match *chunk {
            Chunk::SegmentStart { msn, .. } => Position::start(msn),
            Chunk::PartChunk { msn, index, .. } => Position::chunk(msn, index),
            Chunk::Part { msn, index, .. } => Position::part(msn, index),
            Chunk::SegmentEnd { msn, .. } => Position::end(msn),
        }
    }
}

/// A waiter's name in its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaiterId(u64);

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A publish reached its position (or the rendition ended): look again.
    Ready,
    /// Its deadline passed first.
    Expired,
}

struct Entry<T> {
    at: Position,
    deadline: Instant,
    payload: T,
}

/// The waiters of one rendition, each carrying a `T` (the glue's way to
/// wake it).
pub struct Waiters<T> {
    next: u64,
    entries: HashMap<WaiterId, Entry<T>>,
    by_position: BTreeSet<(Position, WaiterId)>,
    by_deadline: BTreeSet<(Instant, WaiterId)>,
    /// Readied by a publish or the end, not yet polled by their owner.
    ready: BTreeSet<WaiterId>,
    /// The rendition ended: nothing more will be published.
    ended: bool,
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Waiters {
            next: 0,
            entries: HashMap::new(),
            by_position: BTreeSet::new(),
            by_deadline: BTreeSet::new(),
            ready: BTreeSet::new(),
            ended: false,
        }
    }
}

impl<T> Waiters<T> {
    /// Parks a waiter until a publish reaches `at` or `deadline` passes.
    /// After the end a new waiter is ready at once (its owner looks again
    /// and finds the rendition ended).
    pub fn insert(&mut self, at: Position, deadline: Instant, payload: T) -> WaiterId {
        let id = WaiterId(self.next);
        self.next += 1;
        if self.ended {
            self.ready.insert(id);
        } else {
            self.by_position.insert((at, id));
            self.by_deadline.insert((deadline, id));
            self.entries.insert(
                id,
                Entry {
                    at,
                    deadline,
                    payload,
                },
            );
        }
        id
    }

    /// A publish reached `at`: the payloads of the waiters it readies (those
    /// waiting for `at` or anything before it), for the glue to wake.
    pub fn publish(&mut self, at: Position) -> Vec<T> {
        let reached: Vec<WaiterId> = self
            .by_position
            .range(..=(at, WaiterId(u64::MAX)))
            .map(|&(_, id)| id)
            .collect();
        reached
            .into_iter()
            .filter_map(|id| {
                let payload = self.unlink(id)?;
                self.ready.insert(id);
                Some(payload)
            })
            .collect()
    }

    /// The rendition ended: every waiter is ready (to find it ended).
    pub fn end(&mut self) -> Vec<T> {
        self.ended = true;
        let all: Vec<WaiterId> = self.entries.keys().copied().collect();
        all.into_iter()
            .filter_map(|id| {
                let payload = self.unlink(id)?;
                self.ready.insert(id);
                Some(payload)
            })
            .collect()
    }

    /// The waiters whose deadline is `now` or earlier, removed: their
    /// owners give up (a blocking request's 503).
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        let due: Vec<WaiterId> = self
            .by_deadline
            .range(..=(now, WaiterId(u64::MAX)))
            .map(|&(_, id)| id)
            .collect();
        due.into_iter().filter_map(|id| self.unlink(id)).collect()
    }

    /// The next deadline: when the glue must call [`Waiters::expire`] (or a
    /// waiter's owner [`Waiters::poll`]) if no publish comes first.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.by_deadline.first().map(|&(t, _)| t)
    }

    /// Where waiter `id` stands at `now`, for its owner after a wake:
    /// `Some` ends its wait (it is out of the table), `None`: wait on.
    pub fn poll(&mut self, id: WaiterId, now: Instant) -> Option<Wake> {
        if self.ready.remove(&id) {
            return Some(Wake::Ready);
        }
        let deadline = self.entries.get(&id)?.deadline;
        if now >= deadline {
            self.unlink(id);
            return Some(Wake::Expired);
        }
        None
    }

    /// Takes waiter `id` out however it stands (its owner stopped waiting:
    /// answered, or the client went away).
    pub fn remove(&mut self, id: WaiterId) {
        self.ready.remove(&id);
        self.unlink(id);
    }

    /// Whether [`Waiters::end`] was called.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Waiters parked now (readied ones not yet polled included).
    pub fn len(&self) -> usize {
        self.entries.len() + self.ready.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn unlink(&mut self, id: WaiterId) -> Option<T> {
        let e = self.entries.remove(&id)?;
        self.by_position.remove(&(e.at, id));
        self.by_deadline.remove(&(e.deadline, id));
        Some(e.payload)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// A publish readies exactly the waiters at or before what it reached,
    /// in publication order: start, parts (chunks included), end.
    #[test]
    fn a_publish_readies_only_what_it_reaches() {
        let t0 = Instant::now();
        let mut w = Waiters::default();
        let deadline = t0 + secs(6.0);
        let whole = w.insert(Position::end(5), deadline, "msn 5");
        let part = w.insert(Position::part(5, 2), deadline, "part 5.2 whole");
        let chunk = w.insert(Position::chunk(5, 2), deadline, "part 5.2 begun");
        let next = w.insert(Position::start(6), deadline, "segment 6");
        let any = w.insert(Position::ANY, deadline, "any");
        assert_eq!(w.publish(Position::part(5, 0)), ["any"]);
        assert_eq!(w.poll(any, t0), Some(Wake::Ready));
        assert_eq!(w.publish(Position::part(5, 1)), Vec::<&str>::new());
        assert_eq!(w.poll(part, t0 + secs(1.0)), None);
        // Its first chunk: a streamed part may go out, a playlist not yet.
        assert_eq!(w.publish(Position::chunk(5, 2)), ["part 5.2 begun"]);
        assert_eq!(w.publish(Position::chunk(5, 2)), Vec::<&str>::new());
        assert_eq!(w.publish(Position::part(5, 2)), ["part 5.2 whole"]);
        assert_eq!(w.publish(Position::end(5)), ["msn 5"]);
        assert_eq!(w.publish(Position::start(6)), ["segment 6"]);
        for id in [chunk, part, whole, next] {
            assert_eq!(w.poll(id, t0 + secs(2.0)), Some(Wake::Ready));
        }
        assert!(w.is_empty());
        // Ordering: a later segment is past every part and the end of earlier ones.
        assert!(Position::start(6) > Position::end(5));
        assert!(Position::end(5) > Position::part(5, u32::MAX));
        assert!(Position::part(5, 0) > Position::chunk(5, 0));
        assert!(Position::chunk(5, 1) > Position::part(5, 0));
        assert!(Position::chunk(5, 0) > Position::start(5));
    }

    /// RFC 8216bis 6.2.5.2: a blocking reload not satisfied within three
    /// target durations is answered 503. With 2 s targets the deadline is
    /// 6 s after the request: not a moment before, and at it the waiter
    /// is out of the table (the real-time test took those 6 s).
    #[test]
    fn an_unreached_waiter_expires_at_three_target_durations() {
        let t0 = Instant::now();
        let target = Duration::from_secs(2);
        let mut w = Waiters::default();
        let id = w.insert(Position::part(7, 3), t0 + 3 * target, ());
        let later = w.insert(Position::end(9), t0 + secs(7.0), ());
        assert_eq!(w.poll_timeout(), Some(t0 + secs(6.0)));
        // Publishes short of it do not end the wait.
        assert!(w.publish(Position::part(7, 2)).is_empty());
        assert_eq!(w.poll(id, t0 + secs(5.999)), None);
        assert!(w.expire(t0 + secs(5.999)).is_empty());
        assert_eq!(w.poll(id, t0 + secs(6.0)), Some(Wake::Expired));
        assert_eq!(w.poll_timeout(), Some(t0 + secs(7.0)));
        // A publish after the deadline does not bring it back.
        assert!(w.publish(Position::part(7, 3)).is_empty());
        // The table's own sweep, for waiters nobody polls.
        assert_eq!(w.expire(t0 + secs(7.0)).len(), 1);
        assert_eq!(w.poll(later, t0 + secs(7.0)), None);
        assert!(w.is_empty());
        assert_eq!(w.poll_timeout(), None);
    }

    /// The end readies everyone, and anyone who parks afterwards at once.
    #[test]
    fn the_end_readies_every_waiter() {
        let t0 = Instant::now();
        let mut w = Waiters::default();
        let a = w.insert(Position::end(100), t0 + secs(6.0), 1);
        let b = w.insert(Position::part(3, 0), t0 + secs(6.0), 2);
        let mut woken = w.end();
        woken.sort();
        assert_eq!(woken, [1, 2]);
        let c = w.insert(Position::end(200), t0 + secs(6.0), 3);
        for id in [a, b, c] {
            assert_eq!(w.poll(id, t0), Some(Wake::Ready));
        }
        assert!(w.is_empty());
    }

    /// A client that goes away mid-wait takes its waiter with it, ready or
    /// not: nothing is left to wake or to count.
    #[test]
    fn removed_waiters_are_gone() {
        let t0 = Instant::now();
        let mut w = Waiters::default();
        let a = w.insert(Position::end(1), t0 + secs(6.0), 'a');
        let b = w.insert(Position::end(1), t0 + secs(6.0), 'b');
        w.remove(a);
        assert_eq!(w.publish(Position::end(1)), ['b']);
        w.remove(b);
        assert!(w.is_empty());
        assert_eq!(w.poll_timeout(), None);
        assert_eq!(w.poll(a, t0 + secs(9.0)), None);
    }

    /// What each chunk of the packager reaches.
    #[test]
    fn positions_of_chunks() {
        use bytes::Bytes;
        let start = Chunk::SegmentStart {
            msn: 4,
            pdt_ms: 0,
            discontinuity: false,
            start: 0,
            timescale: 90_000,
        };
        let chunk = Chunk::PartChunk {
            msn: 4,
            index: 1,
            data: Bytes::new(),
        };
        let part = Chunk::Part {
            msn: 4,
            index: 1,
            independent: false,
            duration: 0.2,
            data: Bytes::new(),
            frames: Vec::new(),
        };
        let end = Chunk::SegmentEnd {
            msn: 4,
            duration: 2.0,
        };
        assert_eq!(Position::of(&start), Position::start(4));
        assert_eq!(Position::of(&chunk), Position::chunk(4, 1));
        assert_eq!(Position::of(&part), Position::part(4, 1));
        assert_eq!(Position::of(&end), Position::end(4));
        // What requests wait for, against what publishes reach.
        assert_eq!(Position::playlist(4, None), Position::end(4));
        assert_eq!(Position::playlist(4, Some(1)), Position::of(&part));
        assert!(Position::playlist(4, Some(9)) < Position::start(5));
        assert_eq!(
            Position::object(ObjectName::Part(4, 1)),
            Position::of(&chunk)
        );
        assert_eq!(
            Position::object(ObjectName::Segment(4)),
            Position::of(&start)
        );
        assert_eq!(Position::object(ObjectName::Init(0)), Position::ANY);
    }
}
