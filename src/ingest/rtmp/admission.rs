//! Who may hold an RTMP connection slot: the decision, apart from sockets.
//!
//! A flood of strangers (255 connections trickling handshake bytes, or 1,000 idle
//! ones) used to fill every slot and refuse a legitimate publisher. Now each
//! connection holds a [`Ticket`]; connections that have not published yet are
//! capped together ([`Caps::pending`]) and per address ([`Caps::per_ip`]), and
//! share one budget of buffered bytes, so the remaining slots stay free for
//! publishers. The setup deadline itself is enforced by the socket glue.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

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
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::Full,
        Refusal::Pending,
        Refusal::PerIp,
        Refusal::PendingBuffer,
        Refusal::SetupTimeout,
        Refusal::ProtocolError,
        Refusal::Handshake,
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
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    pending: usize,
    pending_bytes: usize,
    per_ip: HashMap<IpAddr, usize>,
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

    /// A slot for a new connection from `ip`, or why not (counted).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let mut c = self.counts();
        let from_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        let why = if c.open >= self.caps.total {
            Some(Refusal::Full)
        } else if c.pending >= self.caps.pending {
            Some(Refusal::Pending)
        } else if from_ip >= self.caps.per_ip {
            Some(Refusal::PerIp)
        } else {
            None
        };
        if let Some(why) = why {
            drop(c);
            self.count(why);
            return Err(why);
        }
        c.open += 1;
        c.pending += 1;
        *c.per_ip.entry(ip).or_default() += 1;
        Ok(Ticket {
            admission: self.clone(),
            ip,
            published: false,
            buffered: 0,
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
            pending: c.pending,
            pending_bytes: c.pending_bytes,
            refused: Refusal::ALL
                .iter()
                .map(|r| (r.label(), self.refused[*r as usize].load(Relaxed)))
                .collect(),
        }
    }
}

/// One connection's slot; dropping it frees the slot.
pub struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
    published: bool,
    buffered: usize,
}

impl Ticket {
    /// The connection's publish was accepted: it no longer counts as pending.
    pub fn published(&mut self) {
        if !self.published {
            self.published = true;
            let mut c = self.admission.counts();
            c.pending -= 1;
            c.pending_bytes -= self.buffered;
            self.buffered = 0;
        }
    }

    /// Records what a pending connection now buffers; `Err` when the shared budget
    /// would be exceeded (close the connection; counted).
    pub fn set_buffered(&mut self, bytes: usize) -> Result<(), Refusal> {
        if self.published {
            return Ok(());
        }
        let mut c = self.admission.counts();
        let others = c.pending_bytes - self.buffered;
        if others + bytes > self.admission.caps.pending_bytes {
            drop(c);
            self.admission.count(Refusal::PendingBuffer);
            return Err(Refusal::PendingBuffer);
        }
        c.pending_bytes = others + bytes;
        self.buffered = bytes;
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        c.open -= 1;
        if !self.published {
            c.pending -= 1;
            c.pending_bytes -= self.buffered;
        }
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
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

    /// Issue 12 item 3: strangers fill at most the pending slots (and per address
    /// only `per_ip`), a connection that has published keeps its slot, and freed
    /// slots come back.
    #[test]
    fn flood_of_strangers_leaves_slots_for_publishers() {
        let a = Admission::new(CAPS);
        let s1 = a.admit(ip(2)).unwrap();
        let _s2 = a.admit(ip(2)).unwrap();
        assert_eq!(a.admit(ip(2)).err(), Some(Refusal::PerIp));
        let mut p = a.admit(ip(1)).unwrap();
        assert_eq!(a.admit(ip(3)).err(), Some(Refusal::Pending));
        p.published();
        // The publisher's slot no longer counts as pending: a new stranger fits.
        let _s3 = a.admit(ip(3)).unwrap();
        drop(s1);
        let _s4 = a.admit(ip(2)).unwrap();
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
            let mut t = a.admit(ip(1)).unwrap();
            t.published();
            held.push(t);
        }
        assert_eq!(a.admit(ip(9)).err(), Some(Refusal::Full));
    }

    /// Issue 12 item 2: pending connections share one buffer budget.
    #[test]
    fn pending_connections_share_one_buffer_budget() {
        let a = Admission::new(CAPS);
        let mut x = a.admit(ip(1)).unwrap();
        let mut y = a.admit(ip(2)).unwrap();
        x.set_buffered(600).unwrap();
        assert_eq!(y.set_buffered(500), Err(Refusal::PendingBuffer));
        y.set_buffered(400).unwrap();
        x.set_buffered(100).unwrap();
        y.set_buffered(900).unwrap();
        // Publishing releases its share; a published connection is not limited here.
        y.published();
        x.set_buffered(1000).unwrap();
        y.set_buffered(1 << 20).unwrap();
        drop(x);
        assert_eq!(a.stats().pending_bytes, 0);
    }
}
