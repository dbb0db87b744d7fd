//! Latency histograms every stage records and reports: microseconds in, p50/p99
//! for the API and `transcode`, cumulative buckets for Prometheus.

use hdrhistogram::Histogram;

/// Microseconds, 1 µs to 60 s, 3 significant figures; values above saturate.
pub fn latency_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 60_000_000, 3) {
        Ok(h) => h,
        Err(_) => unreachable!("constant bounds are valid"),
    }
}

/// Count, p50 and p99 of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        Percentiles {
            count: h.len(),
            p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }
}

/// Per-stage latency summary of a ladder, for the API and `transcode`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LatencySummary {
    pub decode: Percentiles,
    /// Scale + encode of all rungs for one picture.
    pub ladder: Percentiles,
    /// Ingest arrival → all rungs encoded.
    pub total: Percentiles,
    /// Per rung: (name, scale, encode).
    pub rungs: Vec<(String, Percentiles, Percentiles)>,
    /// Cumulative buckets of every stage, for Prometheus.
    #[serde(skip)]
    pub histograms: Vec<StageBuckets>,
}

/// Bucket bounds for exported stage latencies: 1 ms … 10 s.
pub const BUCKETS_SECS: [f64; 13] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// One stage's latency as Prometheus histogram data.
#[derive(Debug, Clone, Default)]
pub struct StageBuckets {
    pub stage: &'static str,
    pub rung: Option<String>,
    pub count: u64,
    pub sum_secs: f64,
    /// Cumulative counts at each of [`BUCKETS_SECS`].
    pub cumulative: Vec<u64>,
}

impl StageBuckets {
    pub fn of(stage: &'static str, rung: Option<String>, h: &Histogram<u64>) -> Self {
        StageBuckets {
            stage,
            rung,
            count: h.len(),
            sum_secs: h.mean() * h.len() as f64 / 1e6,
            cumulative: BUCKETS_SECS
                .iter()
                .map(|b| h.count_between(0, (b * 1e6) as u64))
                .collect(),
        }
    }
}
