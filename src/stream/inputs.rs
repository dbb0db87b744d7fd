//! Which input a stream's renditions follow, per NAME: it outlives each
//! publisher (a reconnect, the slate between, a backup taking over), so the
//! API and `/metrics` read it from here rather than from one publish.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// What the renditions show now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Active {
    /// Nothing yet, or the stream has ended.
    None,
    /// The publisher (the primary, when there are two).
    Publisher,
    /// The "signal lost" slate.
    Slate,
    /// The backup publisher.
    Backup,
}

impl Active {
    const ALL: [Active; 4] = [
        Active::None,
        Active::Publisher,
        Active::Slate,
        Active::Backup,
    ];
}

/// Why the renditions moved to another input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// No input for `ingest.slate_after_ms`: to the slate (or the backup).
    InputLost,
    /// Input came back: from the slate to the publisher.
    InputReturned,
    /// The primary stopped: to the backup.
    Failover,
    /// The primary is back: from the backup to it.
    Failback,
}

impl Switch {
    pub const ALL: [Switch; 4] = [
        Switch::InputLost,
        Switch::InputReturned,
        Switch::Failover,
        Switch::Failback,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Switch::InputLost => "input_lost",
            Switch::InputReturned => "input_returned",
            Switch::Failover => "failover",
            Switch::Failback => "failback",
        }
    }
}

#[derive(Default)]
pub struct InputState {
    /// An operator asked to go back to the primary (`failback = "manual"`).
    failback: std::sync::atomic::AtomicBool,
    active: AtomicU8,
    switches: [AtomicU64; 4],
    /// Milliseconds the slate has been on air, in all.
    slate_ms: AtomicU64,
}

impl InputState {
    pub fn active(&self) -> Active {
        Active::ALL
            .get(self.active.load(Relaxed) as usize)
            .copied()
            .unwrap_or(Active::None)
    }

    pub fn set_active(&self, a: Active) {
        self.active.store(a as u8, Relaxed);
    }

    /// Counts a switch and makes `to` the active input.
    pub fn switched(&self, why: Switch, to: Active) {
        self.switches[why as usize].fetch_add(1, Relaxed);
        self.set_active(to);
    }

    pub fn switches(&self, why: Switch) -> u64 {
        self.switches[why as usize].load(Relaxed)
    }

    pub fn request_failback(&self) {
        self.failback.store(true, Relaxed);
    }

    /// Takes an operator's failback request (once).
    pub fn take_failback_request(&self) -> bool {
        self.failback.swap(false, Relaxed)
    }

    pub fn add_slate_ms(&self, ms: u64) {
        self.slate_ms.fetch_add(ms, Relaxed);
    }

    pub fn slate_ms(&self) -> u64 {
        self.slate_ms.load(Relaxed)
    }

    /// For the API.
    pub fn view(&self) -> InputView {
        InputView {
            active: self.active(),
            switches: Switch::ALL
                .iter()
                .map(|s| (s.label(), self.switches(*s)))
                .collect(),
            slate_secs: self.slate_ms() as f64 / 1000.0,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InputView {
    pub active: Active,
    pub switches: std::collections::BTreeMap<&'static str, u64>,
    pub slate_secs: f64,
}
