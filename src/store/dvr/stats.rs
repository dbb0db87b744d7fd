//! The DVR's counters, read by `/metrics`.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

/// Counters `/metrics` reads.
#[derive(Default)]
pub struct DvrStats {
    pub segments_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub write_errors: AtomicU64,
    pub segments_evicted: AtomicU64,
    /// Init objects deleted once no segment on disk named them.
    pub inits_evicted: AtomicU64,
    pub bytes_on_disk: AtomicU64,
    pub recordings_made: AtomicU64,
    pub recording_errors: AtomicU64,
    pub index_compactions: AtomicU64,
    /// The newest segment writes' latency (µs, from the packager's hand-off
    /// to the index synced), for `write_latency`.
    write_micros: Mutex<VecDeque<u32>>,
}

/// How many segment writes `write_latency` looks back over.
const LATENCY_SAMPLES: usize = 4096;

impl DvrStats {
    /// p50 and p99 (s) of the newest segment writes' latency, from the
    /// packager's hand-off to the index synced (queueing included).
    pub fn write_latency(&self) -> Option<(f64, f64)> {
        let mut v: Vec<u32> = self
            .write_micros
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: f64| f64::from(v[((v.len() - 1) as f64 * q).round() as usize]) / 1e6;
        Some((at(0.5), at(0.99)))
    }

    pub(super) fn record_write(&self, took: std::time::Duration) {
        let mut w = self.write_micros.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() == LATENCY_SAMPLES {
            w.pop_front();
        }
        w.push_back(took.as_micros().min(u128::from(u32::MAX)) as u32);
    }
}
