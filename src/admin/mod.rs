//! Operators' surface: `/api/v1` (streams, kick, sessions, origin), `/metrics`,
//! `/healthz`, `/readyz`. Reads snapshots the other boxes publish; owns the
//! readiness state `runtime` sets.

pub mod api;
pub mod metrics;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::store::hot::HotStore;
use crate::stream::Streams;
use crate::telemetry::metrics::Report;

/// What the operators' routes read, built by `runtime`.
pub struct Admin {
    pub config: Arc<Config>,
    pub streams: Arc<Streams>,
    pub store: Arc<HotStore>,
    pub health: Arc<Health>,
    /// The other boxes' counters (ingest, origin, transcode) for `/metrics`.
    pub reports: Vec<Arc<dyn Report>>,
    /// `/api/v1/origin`: the origin's request accounting.
    pub origin: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
}

/// Readiness, as `/readyz` and `ladderd_ready` say it.
#[derive(Default)]
pub struct Health {
    /// Set once every listener is bound; cleared on shutdown.
    ready: AtomicBool,
    /// Set when shutdown begins (before the drain period).
    stopping: AtomicBool,
    /// Why `/readyz` says 503 during start-up, when something specific is pending.
    starting: Mutex<Option<String>>,
}

impl Health {
    pub fn is_ready(&self) -> bool {
        self.ready.load(SeqCst)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, SeqCst);
    }

    /// Shutdown began: not ready from now on (lame duck).
    pub fn set_stopping(&self) {
        self.stopping.store(true, SeqCst);
        self.ready.store(false, SeqCst);
    }

    pub fn set_not_ready_reason(&self, reason: String) {
        if let Ok(mut r) = self.starting.lock() {
            *r = Some(reason);
        }
    }

    /// Why the process is not ready (only meaningful while not ready).
    pub fn not_ready_reason(&self) -> String {
        if self.stopping.load(SeqCst) {
            return "shutting down".into();
        }
        self.starting
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "starting: listeners and executors not all up".into())
    }
}
