//! `/metrics`: Prometheus exposition (prometheus-client, OpenMetrics text).
//!
//! Nothing is recorded here on the hot path: the pipelines keep their own
//! counters (atomics) and histograms (per stream, published once a second),
//! and a scrape reads them into one snapshot that a collector encodes.
//! Labels are bounded: stream, rung/rendition, stage, route, status, reason.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::runtime::Context;
use crate::telemetry::latency::{StageBuckets, BUCKETS_SECS};

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
enum Value {
    Counter(u64),
    CounterF(f64),
    Gauge(i64),
    GaugeF(f64),
    Histogram(StageBuckets),
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

/// One scrape's worth of values, encoded by prometheus-client.
#[derive(Debug, Default)]
struct Snapshot {
    families: Vec<Family>,
}

impl Snapshot {
    fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: MetricType,
    ) -> &mut Vec<(Labels, Value)> {
        if let Some(i) = self.families.iter().position(|f| f.name == name) {
            return &mut self.families[i].samples;
        }
        self.families.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
        let last = self.families.len() - 1;
        &mut self.families[last].samples
    }
    fn counter(&mut self, name: &'static str, help: &'static str, labels: Labels, v: u64) {
        self.family(name, help, MetricType::Counter)
            .push((labels, Value::Counter(v)));
    }
    fn counter_f(&mut self, name: &'static str, help: &'static str, labels: Labels, v: f64) {
        self.family(name, help, MetricType::Counter)
            .push((labels, Value::CounterF(v)));
    }
    fn gauge(&mut self, name: &'static str, help: &'static str, labels: Labels, v: i64) {
        self.family(name, help, MetricType::Gauge)
            .push((labels, Value::Gauge(v)));
    }
    fn gauge_f(&mut self, name: &'static str, help: &'static str, labels: Labels, v: f64) {
        self.family(name, help, MetricType::Gauge)
            .push((labels, Value::GaugeF(v)));
    }
    fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: Labels,
        b: StageBuckets,
    ) {
        self.family(name, help, MetricType::Histogram)
            .push((labels, Value::Histogram(b)));
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let mut family = encoder.encode_descriptor(f.name, f.help, None, f.kind)?;
            for (labels, value) in &f.samples {
                let m = family.encode_family(labels)?;
                match value {
                    Value::Counter(v) => ConstCounter::new(*v).encode(m)?,
                    Value::CounterF(v) => ConstCounter::new(*v).encode(m)?,
                    Value::Gauge(v) => ConstGauge::new(*v).encode(m)?,
                    Value::GaugeF(v) => ConstGauge::new(*v).encode(m)?,
                    Value::Histogram(b) => {
                        let mut m = m;
                        // Per-bucket (not cumulative) counts, with +Inf last.
                        let mut buckets: Vec<(f64, u64)> =
                            Vec::with_capacity(BUCKETS_SECS.len() + 1);
                        let mut prev = 0;
                        for (bound, cum) in BUCKETS_SECS.iter().zip(&b.cumulative) {
                            buckets.push((*bound, cum.saturating_sub(prev)));
                            prev = *cum;
                        }
                        buckets.push((f64::INFINITY, b.count.saturating_sub(prev)));
                        m.encode_histogram::<Labels>(b.sum_secs, b.count, &buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn l(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn gather(ctx: &Context) -> Snapshot {
    let mut s = Snapshot::default();
    let live = ctx.registry.live();
    s.gauge(
        "ladderd_streams_live",
        "Live streams (publishing now).",
        vec![],
        live.len() as i64,
    );
    let rtmp = ctx.rtmp.stats();
    s.gauge(
        "ladderd_publishers_connected",
        "Open RTMP connections.",
        vec![],
        rtmp.open as i64,
    );
    s.gauge(
        "ladderd_rtmp_pending_connections",
        "RTMP connections that have not published yet.",
        vec![],
        rtmp.pending as i64,
    );
    s.gauge(
        "ladderd_rtmp_pending_buffer_bytes",
        "Bytes buffered by RTMP connections that have not published yet.",
        vec![],
        rtmp.pending_bytes as i64,
    );
    for (reason, n) in rtmp.refused {
        s.counter(
            "ladderd_rtmp_connections_refused",
            "RTMP connections refused or closed by a limit or protocol error, by reason.",
            l(&[("reason", reason)]),
            n,
        );
    }
    let mut rejected: Vec<_> = ctx.registry.rejections().into_iter().collect();
    rejected.sort();
    for (reason, n) in rejected {
        s.counter(
            "ladderd_publishers_rejected",
            "Publish attempts refused, by reason.",
            l(&[("reason", reason)]),
            n,
        );
    }
    for st in &live {
        let name = st.name.as_str();
        let ls = l(&[("stream", name)]);
        let ing = &st.stats;
        s.counter(
            "ladderd_packets_in",
            "Media packets received.",
            l(&[("stream", name), ("track", "video")]),
            ing.video_packets.load(Relaxed),
        );
        s.counter(
            "ladderd_packets_in",
            "Media packets received.",
            l(&[("stream", name), ("track", "audio")]),
            ing.audio_packets.load(Relaxed),
        );
        s.counter(
            "ladderd_in_bytes",
            "Media payload bytes received.",
            ls.clone(),
            ing.bytes.load(Relaxed),
        );
        let p = &st.pipeline;
        let latency = p.latency.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // The decode histogram and this counter come from the same snapshot.
        let decoded = latency
            .histograms
            .iter()
            .find(|h| h.stage == "decode")
            .map_or(0, |h| h.count);
        s.counter(
            "ladderd_frames_decoded",
            "Access units decoded (as of the last latency snapshot, ~1 s).",
            ls.clone(),
            decoded,
        );
        s.counter(
            "ladderd_decode_errors",
            "Packets that failed to decode (the stream then skips to its next keyframe).",
            ls.clone(),
            p.decode_errors.load(Relaxed),
        );
        s.counter(
            "ladderd_ladder_failures",
            "Ladders that failed to start or stopped on a stage failure; the stream continues without them.",
            ls.clone(),
            p.ladder_failures.load(Relaxed),
        );
        s.counter(
            "ladderd_frames_skipped",
            "Video packets not decoded after a decode error.",
            ls.clone(),
            p.frames_skipped.load(Relaxed),
        );
        let rungs = p.rungs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let since = st.started.elapsed();
        for r in rungs.iter() {
            let rl = l(&[("stream", name), ("rung", &r.name)]);
            s.counter(
                "ladderd_frames_encoded",
                "Frames encoded per rung.",
                rl.clone(),
                r.frames.load(Relaxed),
            );
            s.counter(
                "ladderd_frames_dropped",
                "Frames a rung did not encode, by reason.",
                l(&[("stream", name), ("rung", &r.name), ("reason", "late")]),
                r.dropped.load(Relaxed),
            );
            s.counter(
                "ladderd_frames_dropped",
                "Frames a rung did not encode, by reason.",
                l(&[("stream", name), ("rung", &r.name), ("reason", "behind")]),
                r.dropped_behind.load(Relaxed),
            );
            s.counter(
                "ladderd_encoded_bytes",
                "Encoded bytes per rung.",
                rl.clone(),
                r.bytes.load(Relaxed),
            );
            let fps = r.frame_rate.per_second(since) as f64;
            s.gauge_f(
                "ladderd_rung_realtime_factor",
                "Output fps over target fps in the last seconds (1 = real time).",
                rl,
                if r.target_fps > 0.0 {
                    fps / r.target_fps
                } else {
                    0.0
                },
            );
        }
        for h in latency.histograms {
            let mut hl = l(&[("stream", name), ("stage", h.stage)]);
            if let Some(r) = &h.rung {
                hl.push(("rung", r.clone()));
            }
            s.histogram("ladderd_stage_latency_seconds", "Per-stage latency of the ladder (decode, scale and encode per rung, all rungs, ingest arrival to encoded).", hl, h);
        }
    }
    for media in ctx.store.all() {
        if let Some(b) = media.served_buckets() {
            s.histogram(
                "ladderd_publish_to_served_seconds",
                "Part published to a parked request answered, per stream.",
                l(&[("stream", &media.name)]),
                b,
            );
        }
        for r in media.renditions() {
            let rl = l(&[("stream", &media.name), ("rendition", &r.name)]);
            s.counter(
                "ladderd_parts_published",
                "LL-HLS parts published.",
                rl.clone(),
                r.parts_published.load(Relaxed),
            );
            s.counter(
                "ladderd_segments_published",
                "Segments published.",
                rl.clone(),
                r.segments_published.load(Relaxed),
            );
            s.counter(
                "ladderd_published_bytes",
                "CMAF bytes published.",
                rl,
                r.bytes_published.load(Relaxed),
            );
        }
    }
    for ((route, status), n) in ctx.http.requests() {
        s.counter(
            "ladderd_http_requests",
            "HTTP requests, by route and status.",
            l(&[("route", route), ("status", &status.to_string())]),
            n,
        );
    }
    s.counter(
        "ladderd_http_out_bytes",
        "HTTP body bytes sent.",
        vec![],
        ctx.http.bytes_out.load(Relaxed),
    );
    s.gauge(
        "ladderd_http_blocked_waiters",
        "Requests parked on a blocking reload or a preload hint.",
        vec![],
        ctx.http.blocked_waiters.load(Relaxed),
    );
    s.gauge(
        "ladderd_http_connections",
        "HTTP connections open on the public listener.",
        vec![],
        ctx.http.open_connections.load(Relaxed),
    );
    s.counter(
        "ladderd_http_connections_refused",
        "HTTP connections refused at server.http_max_connections.",
        vec![],
        ctx.http.refused_connections.load(Relaxed),
    );
    s.counter(
        "ladderd_http_header_timeouts",
        "HTTP connections closed for not sending a request's headers within server.http_header_timeout_secs.",
        vec![],
        ctx.http.header_timeouts.load(Relaxed),
    );
    for (core, secs) in crate::telemetry::cpu::per_thread_cpu_seconds() {
        s.counter_f(
            "ladderd_core_cpu_seconds",
            "CPU time of each executor thread.",
            l(&[("thread", &core)]),
            secs,
        );
    }
    let backend = &ctx.backend;
    let device = match backend {
        crate::transcode::backend::Backend::Gpu { plan, .. } => plan.device.clone(),
        crate::transcode::backend::Backend::Cpu(_) => String::new(),
    };
    s.gauge(
        "ladderd_gpu_backend_info",
        "Where the ladder runs: backend cpu, gpu (NVDEC+CUDA+NVENC) or hybrid (CPU decode or encode).",
        l(&[("backend", backend.kind()), ("device", &device)]),
        1,
    );
    use crate::transcode::gpu::context::{DEVICE_TO_HOST_BYTES, HOST_TO_DEVICE_BYTES};
    for (direction, v) in [
        ("device_to_host", &DEVICE_TO_HOST_BYTES),
        ("host_to_device", &HOST_TO_DEVICE_BYTES),
    ] {
        s.counter(
            "ladderd_gpu_copied_bytes",
            "Picture bytes copied across the bus by the GPU backend (0 device_to_host on an all-GPU ladder).",
            l(&[("direction", direction)]),
            v.load(Relaxed),
        );
    }
    s.gauge(
        "ladderd_gpu_nvenc_sessions",
        "NVENC sessions open (consumer cards cap them).",
        vec![],
        crate::transcode::gpu::nvenc::SESSIONS.load(Relaxed) as i64,
    );
    s.counter(
        "ladderd_gpu_nvenc_fallback_rungs",
        "Rungs that got no NVENC session (the card's session cap) and encode on the CPU instead.",
        vec![],
        crate::transcode::gpu::nvenc::CPU_FALLBACK_RUNGS.load(Relaxed) as u64,
    );
    s.gauge(
        "ladderd_ready",
        "1 while ready to serve (listeners bound, not shutting down).",
        vec![],
        ctx.ready.load(Relaxed) as i64,
    );
    s
}

/// The exposition in the classic Prometheus text format (0.0.4), for
/// scrapers and tools (promtool) that do not ask for OpenMetrics: counter
/// families are named with their `_total`, and `# EOF`/`# UNIT` go.
pub fn to_classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    let _ = writeln!(out, "{prefix}{name}_total {tail}");
                } else {
                    let _ = writeln!(out, "{line}");
                }
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

/// The whole exposition, OpenMetrics text.
pub fn render(ctx: &Context) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(gather(ctx)));
    let mut out = String::with_capacity(16 * 1024);
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
        let _ = writeln!(out, "# metrics encoding failed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_total() {
        let om = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            to_classic(om),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }
}
