//! Who may hold an RTMP connection slot: the decision, apart from sockets.
//!
//! A flood of strangers (255 connections trickling handshake bytes, or 1,000 idle
//! ones) used to fill every slot and refuse a legitimate publisher. Now each
//! connection holds a [`Ticket`]; connections that have not published yet are
//! capped together ([`Caps::pending`]) and per address ([`Caps::per_ip`]), and
//! share one budget of buffered bytes, so the remaining slots stay free for
//! publishers. The setup deadline itself is enforced by the socket glue.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::telemetry::throttle::LogThrottle;

#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// All connections.
    pub total: usize,
    /// Connections that have not had a publish accepted.
    pub pending: usize,
    /// Connections from one IP address.
    pub per_ip: usize,
    /// Bytes all pending connections together may buffer.
    pub pending_bytes: usize,
}

impl Caps {
    pub fn from_config(l: &crate::config::Limits) -> Caps {
        Caps {
            total: l.max_rtmp_connections,
            pending: l.max_rtmp_pending_connections,
            per_ip: l.max_rtmp_connections_per_ip,
            pending_bytes: l.rtmp_pending_buffer_bytes,
        }
    }
}

/// Why a new connection was refused, or an open one closed by these limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// `limits.max_rtmp_connections` reached.
    Full,
    /// `limits.max_rtmp_pending_connections` reached.
    Pending,
    /// `limits.max_rtmp_connections_per_ip` reached for this address.
    PerIp,
    /// The pending connections' buffer budget is spent (an open connection closed).
    PendingBuffer,
    /// Handshake, `connect` and `publish` did not finish in time (an open connection closed).
    SetupTimeout,
    /// The peer broke the protocol or a size/depth bound (an open connection closed).
    ProtocolError,
    /// The RTMP handshake failed: not RTMP, or a broken C0/C1/C2 (an open connection closed).
    Handshake,
    /// A pending connection closed to give its slot to a new one (see [`Admission::admit`]).
    Evicted,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::Full,
        Refusal::Pending,
        Refusal::PerIp,
        Refusal::PendingBuffer,
        Refusal::SetupTimeout,
        Refusal::ProtocolError,
        Refusal::Handshake,
        Refusal::Evicted,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Full => "connection_limit",
            Refusal::Pending => "pending_limit",
            Refusal::PerIp => "per_ip_limit",
            Refusal::PendingBuffer => "pending_buffer",
            Refusal::SetupTimeout => "setup_timeout",
            Refusal::ProtocolError => "protocol_error",
            Refusal::Handshake => "handshake_failed",
            Refusal::Evicted => "evicted",
        }
    }
}

/// A pending connection younger than this is never evicted: it may be a
/// publisher still in its handshake on a slow link. A flood fast enough to
/// make every pending connection younger than this is refused as before.
pub const EVICT_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    pending_bytes: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Connections that have not published, oldest first (by admission order).
    waiting: BTreeMap<u64, Waiting>,
    next_seq: u64,
}

/// One pending connection's place in the queue.
#[derive(Debug)]
struct Waiting {
    ip: IpAddr,
    since: Instant,
    buffered: usize,
    /// Told when the connection is evicted; dropped (no message) when it publishes.
    evict: flume::Sender<()>,
}

impl Counts {
    fn release(&mut self, ip: IpAddr) {
        self.open -= 1;
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Frees a pending connection's slot now and tells its connection to close.
    fn evict(&mut self, seq: u64) -> Option<Waiting> {
        let w = self.waiting.remove(&seq)?;
        self.pending_bytes -= w.buffered;
        self.release(w.ip);
        let _ = w.evict.try_send(());
        Some(w)
    }
}

/// Shared by every I/O core's accept loop.
pub struct Admission {
    caps: Caps,
    counts: Mutex<Counts>,
    refused: [AtomicU64; Refusal::ALL.len()],
    /// One log line a minute per reason, across all cores: strangers choose how often these happen.
    logged: [LogThrottle; Refusal::ALL.len()],
}

/// Snapshot for metrics and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionStats {
    pub open: usize,
    pub pending: usize,
    pub pending_bytes: usize,
    /// Per [`Refusal::label`].
    pub refused: Vec<(&'static str, u64)>,
}

impl Admission {
    pub fn new(caps: Caps) -> Arc<Admission> {
        Arc::new(Admission {
            caps,
            counts: Mutex::default(),
            refused: Default::default(),
            logged: Default::default(),
        })
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // A panic while holding this lock leaves plain counters: still usable.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection from `ip` arriving at `now`, or why not
    /// (counted). When the pending or total cap is reached, the oldest pending
    /// connection gives its slot up (if older than [`EVICT_AFTER`]): strangers
    /// from many addresses, each under the per-address cap, could otherwise
    /// hold every pending slot until their setup deadline and refuse a publisher.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Ticket, Refusal> {
        let mut c = self.counts();
        let from_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        let crowded = if from_ip >= self.caps.per_ip {
            // Evicting for an address at its own cap would only let it churn.
            drop(c);
            self.count(Refusal::PerIp);
            return Err(Refusal::PerIp);
        } else if c.open >= self.caps.total {
            Some(Refusal::Full)
        } else if c.waiting.len() >= self.caps.pending {
            Some(Refusal::Pending)
        } else {
            None
        };
        if let Some(why) = crowded {
            let oldest = c
                .waiting
                .first_key_value()
                .filter(|(_, w)| now.saturating_duration_since(w.since) >= EVICT_AFTER)
                .map(|(seq, _)| *seq);
            let Some(evicted) = oldest.and_then(|seq| c.evict(seq)) else {
                drop(c);
                self.count(why);
                return Err(why);
            };
            self.count(Refusal::Evicted);
            if let Some(unlogged) = self.log_due(Refusal::Evicted, now) {
                let age_ms = now.saturating_duration_since(evicted.since).as_millis() as u64;
                warn!(evicted = %evicted.ip, age_ms, new = %ip, cap = why.label(), unlogged, "rtmp: the oldest connection not yet publishing was closed for a new one (limits.max_rtmp_pending_connections / max_rtmp_connections reached); further ones only counted for a minute (rtmp_connections_refused_total{{reason=\"evicted\"}})");
            }
        }
        c.open += 1;
        *c.per_ip.entry(ip).or_default() += 1;
        let seq = c.next_seq;
        c.next_seq += 1;
        let (evict, evicted) = flume::bounded(1);
        c.waiting.insert(
            seq,
            Waiting {
                ip,
                since: now,
                buffered: 0,
                evict,
            },
        );
        Ok(Ticket {
            admission: self.clone(),
            ip,
            seq,
            published: false,
            evicted,
        })
    }

    /// Counts a close these limits caused (setup timeout, buffer budget).
    pub fn count(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    /// Whether a refusal for `why` (already counted) may be logged at `now`:
    /// `Some(n)` at most once a minute per reason, `n` the ones only counted since.
    pub fn log_due(&self, why: Refusal, now: Instant) -> Option<u64> {
        self.logged[why as usize].hit(now)
    }

    pub fn stats(&self) -> AdmissionStats {
        let c = self.counts();
        AdmissionStats {
            open: c.open,
            pending: c.waiting.len(),
            pending_bytes: c.pending_bytes,
            refused: Refusal::ALL
                .iter()
                .map(|r| (r.label(), self.refused[*r as usize].load(Relaxed)))
                .collect(),
        }
    }
}

/// One connection's slot; dropping it frees the slot (unless it was evicted,
/// which freed it already).
pub struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
    seq: u64,
    published: bool,
    evicted: flume::Receiver<()>,
}

impl Ticket {
    /// The connection's publish is being accepted: it no longer counts as
    /// pending and can no longer be evicted. `Err(Evicted)`: too late, its slot
    /// went to a newer connection (close it).
    pub fn published(&mut self) -> Result<(), Refusal> {
        if self.published {
            return Ok(());
        }
        let mut c = self.admission.counts();
        let w = c.waiting.remove(&self.seq).ok_or(Refusal::Evicted)?;
        c.pending_bytes -= w.buffered;
        self.published = true;
        Ok(())
    }

    /// Records what a pending connection now buffers; `Err` when the shared budget
    /// would be exceeded (close the connection; counted), or the connection was evicted.
    pub fn set_buffered(&mut self, bytes: usize) -> Result<(), Refusal> {
        if self.published {
            return Ok(());
        }
        let cap = self.admission.caps.pending_bytes;
        let mut c = self.admission.counts();
        let mine = c.waiting.get(&self.seq).ok_or(Refusal::Evicted)?.buffered;
        let others = c.pending_bytes - mine;
        if others + bytes > cap {
            drop(c);
            self.admission.count(Refusal::PendingBuffer);
            return Err(Refusal::PendingBuffer);
        }
        c.pending_bytes = others + bytes;
        if let Some(w) = c.waiting.get_mut(&self.seq) {
            w.buffered = bytes;
        }
        Ok(())
    }

    /// Resolves once this pending connection has been evicted (its slot is
    /// already free: close it); never after it published.
    pub async fn evicted(&self) {
        if self.evicted.recv_async().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        if self.published {
            c.release(self.ip);
        } else if let Some(w) = c.waiting.remove(&self.seq) {
            c.pending_bytes -= w.buffered;
            c.release(self.ip);
        }
    }
}

impl crate::telemetry::metrics::Report for Admission {
    fn report(&self, m: &mut crate::telemetry::metrics::MetricSet) {
        use crate::telemetry::metrics::l;
        let rtmp = self.stats();
        m.gauge(
            "ladderd_publishers_connected",
            "Open RTMP connections.",
            vec![],
            rtmp.open as i64,
        );
        m.gauge(
            "ladderd_rtmp_pending_connections",
            "RTMP connections that have not published yet.",
            vec![],
            rtmp.pending as i64,
        );
        m.gauge(
            "ladderd_rtmp_pending_buffer_bytes",
            "Bytes buffered by RTMP connections that have not published yet.",
            vec![],
            rtmp.pending_bytes as i64,
        );
        for (reason, n) in rtmp.refused {
            m.counter(
                "ladderd_rtmp_connections_refused",
                "RTMP connections refused or closed by a limit or protocol error, by reason.",
                l(&[("reason", reason)]),
                n,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        total: 6,
        pending: 3,
        per_ip: 2,
        pending_bytes: 1000,
    };

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    /// The fake clock's start: one instant for the whole test process.
    fn t0() -> Instant {
        static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    fn at(ms: u64) -> Instant {
        t0() + Duration::from_millis(ms)
    }

    fn evicted(t: &Ticket) -> bool {
        futures_lite::future::block_on(futures_lite::future::poll_once(t.evicted())).is_some()
    }

    /// Issue 30: strangers from many addresses, each under the per-address cap,
    /// held every pending slot and a publisher was refused until their setup
    /// deadline. Now a newcomer takes the oldest pending slot once that one
    /// has had [`EVICT_AFTER`]; publishers are never evicted.
    #[test]
    fn a_new_connection_evicts_the_oldest_pending_one() {
        let a = Admission::new(CAPS);
        let mut s1 = a.admit(ip(1), at(0)).unwrap();
        let s2 = a.admit(ip(2), at(100)).unwrap();
        let mut s3 = a.admit(ip(3), at(200)).unwrap();
        s1.set_buffered(300).unwrap();
        s3.set_buffered(200).unwrap();
        // Every pending slot held, none older than EVICT_AFTER: refused as before.
        assert_eq!(a.admit(ip(4), at(999)).err(), Some(Refusal::Pending));
        assert!(!evicted(&s1));
        // The oldest has had its chance: the newcomer gets its slot at once.
        let mut p = a.admit(ip(4), at(1000)).unwrap();
        assert!(evicted(&s1) && !evicted(&s2));
        let st = a.stats();
        assert_eq!((st.open, st.pending, st.pending_bytes), (3, 3, 200));
        // The evicted connection can neither publish nor buffer; closing it frees nothing twice.
        assert_eq!(s1.published(), Err(Refusal::Evicted));
        assert_eq!(s1.set_buffered(1), Err(Refusal::Evicted));
        drop(s1);
        assert_eq!(a.stats().open, 3);
        // Next in line is s2 (admitted at 100 ms): not before 1100 ms.
        assert_eq!(a.admit(ip(5), at(1050)).err(), Some(Refusal::Pending));
        let _s5 = a.admit(ip(5), at(1100)).unwrap();
        assert!(evicted(&s2));
        // A publisher leaves the queue for good.
        p.published().unwrap();
        assert!(!evicted(&p));
        let _s6 = a.admit(ip(6), at(1100)).unwrap();
        // s3 goes next (its 200 bytes with it), never p.
        let _s7 = a.admit(ip(7), at(5000)).unwrap();
        assert!(evicted(&s3) && !evicted(&p));
        let st = a.stats();
        assert_eq!((st.open, st.pending, st.pending_bytes), (4, 3, 0));
        let refused: HashMap<_, _> = st.refused.into_iter().collect();
        assert_eq!(refused["evicted"], 3);
        assert_eq!(refused["pending_limit"], 2);
        drop((s2, s3, p));
        assert_eq!(a.stats().open, 3);
    }

    /// An address at its own cap evicts nobody (it would only churn its own).
    #[test]
    fn per_address_cap_is_not_an_eviction() {
        let a = Admission::new(Caps { pending: 2, ..CAPS });
        let _x = a.admit(ip(1), at(0)).unwrap();
        let _y = a.admit(ip(1), at(0)).unwrap();
        assert_eq!(a.admit(ip(1), at(60_000)).err(), Some(Refusal::PerIp));
        assert!(!evicted(&_x));
    }

    /// Issue 12 item 3: strangers fill at most the pending slots (and per address
    /// only `per_ip`), a connection that has published keeps its slot, and freed
    /// slots come back.
    #[test]
    fn flood_of_strangers_leaves_slots_for_publishers() {
        let a = Admission::new(CAPS);
        let s1 = a.admit(ip(2), t0()).unwrap();
        let _s2 = a.admit(ip(2), t0()).unwrap();
        assert_eq!(a.admit(ip(2), t0()).err(), Some(Refusal::PerIp));
        let mut p = a.admit(ip(1), t0()).unwrap();
        assert_eq!(a.admit(ip(3), t0()).err(), Some(Refusal::Pending));
        p.published().unwrap();
        // The publisher's slot no longer counts as pending: a new stranger fits.
        let _s3 = a.admit(ip(3), t0()).unwrap();
        drop(s1);
        let _s4 = a.admit(ip(2), t0()).unwrap();
        let st = a.stats();
        assert_eq!((st.open, st.pending), (4, 3));
        let refused: HashMap<_, _> = st.refused.into_iter().collect();
        assert_eq!(refused["per_ip_limit"], 1);
        assert_eq!(refused["pending_limit"], 1);
        drop(p);
        assert_eq!(a.stats().open, 3);
    }

    #[test]
    fn total_cap_counts_publishers_too() {
        let a = Admission::new(Caps {
            pending: 6,
            per_ip: 6,
            ..CAPS
        });
        let mut held = Vec::new();
        for _ in 0..6 {
            let mut t = a.admit(ip(1), t0()).unwrap();
            t.published().unwrap();
            held.push(t);
        }
        assert_eq!(a.admit(ip(9), t0()).err(), Some(Refusal::Full));
        // Publishers are never evicted, however old.
        assert_eq!(a.admit(ip(9), at(600_000)).err(), Some(Refusal::Full));
    }

    /// Issue 12 item 2: pending connections share one buffer budget.
    #[test]
    fn pending_connections_share_one_buffer_budget() {
        let a = Admission::new(CAPS);
        let mut x = a.admit(ip(1), t0()).unwrap();
        let mut y = a.admit(ip(2), t0()).unwrap();
        x.set_buffered(600).unwrap();
        assert_eq!(y.set_buffered(500), Err(Refusal::PendingBuffer));
        y.set_buffered(400).unwrap();
        x.set_buffered(100).unwrap();
        y.set_buffered(900).unwrap();
        // Publishing releases its share; a published connection is not limited here.
        y.published().unwrap();
        x.set_buffered(1000).unwrap();
        y.set_buffered(1 << 20).unwrap();
        drop(x);
        assert_eq!(a.stats().pending_bytes, 0);
    }
}
