//! One rendition: publishing its chunks, looking up its objects, and the
//! requests parked on its live edge.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use event_listener::Event;

use super::answer::{Block, Object};
use super::dvr_tap::DvrTap;
use super::timeline::{Body, Timeline};
use crate::package::chunker::Chunk;
use crate::package::hls::{ObjectName, PartEntry, RenditionSummary, SegmentEntry};
use crate::package::RenditionKind;
use crate::store::waiters::{Position, WaiterId, Waiters, Wake};

pub struct Rendition {
    pub(super) dvr: Option<DvrTap>,
    pub name: String,
    /// RFC 6381 codecs of this rendition alone, and what it carries: as the
    /// newest configuration says (a source that changes size mid-publish).
    pub(super) description: Mutex<(String, RenditionKind)>,
    pub(super) window_secs: f64,
    pub(super) timeline: Mutex<Timeline>,
    /// Requests parked on its live edge, each woken by its own event.
    pub(super) waiters: Mutex<Waiters<Arc<Event>>>,
    pub bytes_published: AtomicU64,
    pub parts_published: AtomicU64,
    pub segments_published: AtomicU64,
    pub(super) last_publish: Mutex<Option<Instant>>,
    /// Its playlist's PART-TARGET when it differs from the stream's (audio).
    pub part_target: std::sync::OnceLock<f64>,
}

impl Rendition {
    fn lock(&self) -> MutexGuard<'_, Timeline> {
        self.timeline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// RFC 6381 codecs of this rendition alone.
    pub fn codecs(&self) -> String {
        self.description
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    pub fn kind(&self) -> RenditionKind {
        self.description
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// A new configuration of the same rendition (new size, profile, level):
    /// the multivariant playlist describes it from now on.
    pub fn describe(&self, codecs: String, kind: RenditionKind) {
        *self.description.lock().unwrap_or_else(|e| e.into_inner()) = (codecs, kind);
    }

    /// Publishes a new init segment; segments started from now on use it.
    pub fn set_init(&self, data: Bytes) -> u32 {
        let mut t = self.lock();
        let version = t.inits.last().map_or(0, |(v, _)| v + 1);
        if let Some(tap) = &self.dvr {
            tap.dvr.init(&tap.key, &self.name, version, data.clone());
        }
        t.inits.push((version, data));
        version
    }

    /// Publishes one chunk now (tests).
    #[cfg(test)]
    pub fn publish_now(&self, chunk: Chunk) {
        self.publish(chunk, crate::telemetry::clock::now());
    }

    /// Publishes one chunk at `now`, then wakes the requests it reaches.
    pub fn publish(&self, chunk: Chunk, now: Instant) {
        let at = Position::of(&chunk);
        {
            let mut t = self.lock();
            let version = t.inits.last().map_or(0, |(v, _)| *v);
            match chunk {
                Chunk::SegmentStart {
                    msn,
                    pdt_ms,
                    discontinuity,
                    start,
                    timescale,
                } => {
                    t.entries.push_back(SegmentEntry {
                        msn,
                        duration: 0.0,
                        pdt_ms,
                        discontinuity,
                        init_version: version,
                        parts: Vec::new(),
                        complete: false,
                        start,
                        timescale,
                    });
                    t.bodies.push_back(Body::default());
                }
                Chunk::PartChunk { msn, index, data } => match &mut t.open_part {
                    Some((m, i, chunks)) if *m == msn && *i == index => chunks.push(data),
                    _ => t.open_part = Some((msn, index, vec![data])),
                },
                Chunk::Part {
                    msn,
                    independent,
                    duration,
                    data,
                    ..
                } => {
                    t.open_part = None;
                    self.bytes_published.fetch_add(data.len() as u64, Relaxed);
                    self.parts_published.fetch_add(1, Relaxed);
                    if let Some((e, b)) = t.newest(msn) {
                        e.parts.push(PartEntry {
                            duration,
                            independent,
                        });
                        e.duration += duration;
                        b.parts.push(data);
                    }
                }
                Chunk::SegmentEnd { msn, duration } => {
                    self.segments_published.fetch_add(1, Relaxed);
                    if let Some((e, b)) = t.newest(msn) {
                        e.complete = true;
                        e.duration = duration;
                        let mut all =
                            BytesMut::with_capacity(b.parts.iter().map(|p| p.len()).sum());
                        for p in &b.parts {
                            all.extend_from_slice(p);
                        }
                        let all = all.freeze();
                        if let Some(tap) = &self.dvr {
                            tap.dvr.segment(&tap.key, &self.name, e, all.clone());
                        }
                        b.data = Some(all);
                    }
                    t.evict(self.window_secs);
                }
            }
        }
        *self.last_publish.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        let woken = self.waiters().publish(at);
        for w in woken {
            w.notify(usize::MAX);
        }
    }

    /// Time from the newest publish to `now`: how long a woken waiter took
    /// to answer, or how long the writer has been quiet.
    pub fn since_publish(&self, now: Instant) -> Option<Duration> {
        self.last_publish
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| now.saturating_duration_since(t))
    }

    pub fn end(&self) {
        self.lock().ended = true;
        let woken = self.waiters().end();
        for w in woken {
            w.notify(usize::MAX);
        }
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters<Arc<Event>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks a request until a publish reaches `at` (see [`Position`]), the
    /// rendition ends, or `deadline`. Park *before* looking at the store, so
    /// a publish in between wakes it rather than being missed.
    pub fn park(self: &Arc<Self>, at: Position, deadline: Instant) -> Parking {
        let wake = Arc::new(Event::new());
        let listener = wake.listen();
        let mut waiters = self.waiters();
        let id = waiters.insert(at, deadline, wake.clone());
        if waiters.is_ended() {
            wake.notify(usize::MAX);
        }
        drop(waiters);
        Parking {
            r: self.clone(),
            id,
            deadline,
            listener: Some(listener),
        }
    }

    /// Requests parked on it now.
    pub fn parked(&self) -> usize {
        self.waiters().len()
    }

    pub fn is_ended(&self) -> bool {
        self.lock().ended
    }

    /// Runs `f` over the window (oldest first), the discontinuity sequence and
    /// whether the rendition has ended.
    pub fn with_segments<R>(&self, f: impl FnOnce(&[SegmentEntry], u64, bool) -> R) -> R {
        let mut t = self.lock();
        let (disc, ended) = (t.discontinuity_sequence, t.ended);
        f(t.entries.make_contiguous(), disc, ended)
    }

    /// Runs `f` over the window (oldest first) and the media start of the run
    /// (no discontinuity, one init version) the oldest segment belongs to,
    /// `None` when that segment starts it: a timeline that keeps its origin
    /// while the window slides (DASH's Period@start).
    pub fn with_timeline<R>(&self, f: impl FnOnce(&[SegmentEntry], Option<u64>) -> R) -> R {
        let mut t = self.lock();
        let run_start = t.run_start;
        f(t.entries.make_contiguous(), run_start)
    }

    /// The newest published part: (msn, index).
    pub fn last_part(&self) -> Option<(u64, u32)> {
        let t = self.lock();
        t.entries
            .iter()
            .rev()
            .find_map(|e| (!e.parts.is_empty()).then(|| (e.msn, e.parts.len() as u32 - 1)))
    }

    /// Average and peak bits per second over the window's complete segments.
    pub fn measured_bps(&self) -> Option<(u64, u64)> {
        let t = self.lock();
        let (mut bytes, mut secs, mut peak) = (0usize, 0.0, 0.0f64);
        for (e, b) in t.entries.iter().zip(&t.bodies) {
            if let (true, Some(d)) = (e.complete && e.duration > 0.0, &b.data) {
                bytes += d.len();
                secs += e.duration;
                peak = peak.max(d.len() as f64 * 8.0 / e.duration);
            }
        }
        // The peak rounded up: BANDWIDTH (the peak) must not be below any
        // segment's bit rate, not even by a fraction.
        (secs > 0.0).then(|| ((bytes as f64 * 8.0 / secs) as u64, peak.ceil() as u64))
    }

    /// What a listing (multivariant playlist, MPD, a recording) says of it.
    pub fn summary(&self) -> RenditionSummary {
        RenditionSummary {
            name: self.name.clone(),
            codecs: self.codecs(),
            kind: self.kind(),
            measured_bps: self.measured_bps(),
            ended: self.is_ended(),
        }
    }

    pub fn complete_segments(&self) -> usize {
        self.lock().entries.iter().filter(|e| e.complete).count()
    }

    /// Where a blocking reload for `msn` (and `part`) stands.
    pub fn block(&self, msn: u64, part: Option<u32>) -> Block {
        let t = self.lock();
        let edge = t.entries.back().map_or(0, |e| e.msn);
        if msn > edge + 2 {
            return Block::TooFar;
        }
        if t.ended {
            return Block::Ready;
        }
        let Some(last) = t.entries.back() else {
            return Block::Wait;
        };
        let ready = match part {
            // The playlist must contain segment msn, complete.
            None => msn < last.msn || (msn == last.msn && last.complete),
            // A part index past the end of a complete segment means the first
            // part of the next one.
            Some(p) => match t.find(msn) {
                Some(e) => {
                    (p as usize) < e.parts.len()
                        || (e.complete && t.find(msn + 1).is_some_and(|n| !n.parts.is_empty()))
                }
                None => msn < t.entries.front().map_or(0, |e| e.msn),
            },
        };
        if ready {
            Block::Ready
        } else {
            Block::Wait
        }
    }

    pub fn init(&self, version: u32) -> Object {
        let t = self.lock();
        match t.inits.iter().find(|(v, _)| *v == version) {
            Some((_, d)) => Object::Ready(d.clone()),
            None if t.inits.last().is_some_and(|(v, _)| version < *v) => Object::Gone,
            None => Object::Missing,
        }
    }

    pub fn part(&self, msn: u64, index: u32) -> Object {
        let t = self.lock();
        if msn < t.evicted_before {
            return Object::Gone;
        }
        if let Some((m, i, chunks)) = &t.open_part {
            if (*m, *i) == (msn, index) {
                return Object::Growing(chunks.clone());
            }
        }
        match t.position(msn) {
            Some(i) => match t.bodies[i].parts.get(index as usize) {
                Some(p) => Object::Ready(p.clone()),
                None if !t.entries[i].complete && !t.ended => Object::Pending,
                None => Object::Missing,
            },
            None => t.next_in_line(msn, index == 0),
        }
    }

    pub fn segment(&self, msn: u64) -> Object {
        let t = self.lock();
        if msn < t.evicted_before {
            return Object::Gone;
        }
        match t.position(msn) {
            Some(i) => match &t.bodies[i].data {
                Some(d) => Object::Ready(d.clone()),
                None if t.ended => Object::Missing,
                // Still receiving parts: its bytes so far (the parts published,
                // then the chunks of the part being written), which the whole
                // segment will begin with (LL-DASH reads it as it grows).
                None => {
                    let mut so_far = t.bodies[i].parts.clone();
                    if let Some((m, _, chunks)) = &t.open_part {
                        if *m == msn {
                            so_far.extend(chunks.iter().cloned());
                        }
                    }
                    Object::Growing(so_far)
                }
            },
            None => t.next_in_line(msn, true),
        }
    }

    /// The object a URI's file name asks for (`group`: LL segments per
    /// standard one). Every number in it came from a client, so each lookup
    /// takes any value (issue 12 item 6: `long18446744073709551615.m4s`
    /// overflowed into an empty 200).
    pub fn lookup(&self, group: u64, name: ObjectName) -> Object {
        match name {
            ObjectName::Init(v) => self.init(v),
            ObjectName::Part(msn, i) => self.part(msn, i),
            ObjectName::Segment(msn) => self.segment(msn),
            ObjectName::Long(n) => self.long_segment(n, group),
        }
    }

    /// Standard-HLS segment `n`: LL segments `n*group ..` concatenated.
    pub fn long_segment(&self, n: u64, group: u64) -> Object {
        let t = self.lock();
        // `n` comes from a URL: a group past u64 (or an empty one) is no segment,
        // never an empty body (issue 12 item 6).
        let Some((first, end)) = n
            .checked_mul(group)
            .and_then(|first| Some((first, first.checked_add(group)?)))
            .filter(|_| group > 0)
        else {
            return Object::Missing;
        };
        if first < t.evicted_before {
            return Object::Gone;
        }
        let mut out = BytesMut::new();
        for msn in first..end {
            let Some(i) = t.position(msn) else {
                return Object::Missing;
            };
            // A discontinuity inside the group ends it (see `hls::long_segments`).
            if msn > first && t.entries[i].discontinuity {
                break;
            }
            match &t.bodies[i].data {
                Some(d) => out.extend_from_slice(d),
                None => return Object::Missing,
            }
        }
        Object::Ready(out.freeze())
    }
}

/// A request parked on a rendition ([`Rendition::park`]); leaves the
/// table when dropped (answered, or the client went away).
pub struct Parking {
    r: Arc<Rendition>,
    id: WaiterId,
    deadline: Instant,
    /// Fires once, when a publish reaches the waiter or the rendition ends;
    /// `None` once it has.
    listener: Option<event_listener::EventListener>,
}

impl Parking {
    /// When the wait gives up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Resolves when a publish reaches the waiter or the rendition ends
    /// (at once if it already has).
    pub async fn notified(&mut self) {
        std::future::poll_fn(|cx| self.poll_notified(cx)).await
    }

    /// [`Parking::notified`] as a poll, for waiting on several at once.
    pub fn poll_notified(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if let Some(l) = self.listener.as_mut() {
            std::task::ready!(std::future::Future::poll(std::pin::Pin::new(l), cx));
            self.listener = None;
        }
        std::task::Poll::Ready(())
    }

    /// After a wake or at the deadline: how the wait ended at `now`, `None`
    /// while it has not (a timer that fired early).
    pub fn poll(&self, now: Instant) -> Option<Wake> {
        self.r.waiters().poll(self.id, now)
    }
}

impl Drop for Parking {
    fn drop(&mut self) {
        self.r.waiters().remove(self.id);
    }
}
