//! `/metrics`: what the stream registry, the store and the process report,
//! plus the reports other boxes hand in (ingest, origin, transcode), encoded
//! by `telemetry::metrics`.

use std::sync::atomic::Ordering::Relaxed;

use super::Admin;
use crate::telemetry::metrics::{l, MetricSet, Report};

/// The whole exposition, OpenMetrics text.
pub fn render(ctx: &Admin) -> String {
    let own = Own(ctx);
    let mut sources: Vec<&dyn Report> = vec![&own];
    sources.extend(ctx.reports.iter().map(|r| r.as_ref()));
    crate::telemetry::metrics::render(&sources)
}

/// What admin reads itself: the streams, the store, the process.
struct Own<'a>(&'a Admin);

impl Report for Own<'_> {
    fn report(&self, s: &mut MetricSet) {
        gather(self.0, s)
    }
}

fn gather(ctx: &Admin, s: &mut MetricSet) {
    let live = ctx.streams.registry.live();
    s.gauge(
        "ladderd_streams_live",
        "Live streams (publishing now).",
        vec![],
        live.len() as i64,
    );
    let mut rejected: Vec<_> = ctx.streams.registry.rejections().into_iter().collect();
    rejected.sort();
    for (reason, n) in rejected {
        s.counter(
            "ladderd_publishers_rejected",
            "Publish attempts refused, by reason.",
            l(&[("reason", reason)]),
            n,
        );
    }
    for (name, input) in ctx.streams.registry.inputs() {
        for why in crate::stream::inputs::Switch::ALL {
            s.counter(
                "ladderd_input_switches",
                "Times a stream's renditions moved to another input, by reason.",
                l(&[("stream", &name), ("reason", why.label())]),
                input.switches(why),
            );
        }
        s.counter(
            "ladderd_slate_seconds",
            "Seconds a stream showed the signal-lost slate.",
            l(&[("stream", &name)]),
            input.slate_ms() / 1000,
        );
        s.gauge(
            "ladderd_slate_active",
            "1 while the stream shows the signal-lost slate.",
            l(&[("stream", &name)]),
            (input.active() == crate::stream::inputs::Active::Slate) as i64,
        );
    }
    // Counters summed over every publish of a NAME, ended ones included:
    // they never go backwards when a publish ends.
    for (name, t) in ctx.streams.registry.totals() {
        let ls = l(&[("stream", &name)]);
        for (track, n) in [("video", t.video_packets), ("audio", t.audio_packets)] {
            s.counter(
                "ladderd_packets_in",
                "Media packets received (every publish of the stream, ended ones too).",
                l(&[("stream", &name), ("track", track)]),
                n,
            );
        }
        for (metric, help, n) in [
            ("ladderd_in_bytes", "Media payload bytes received.", t.bytes),
            ("ladderd_ingest_continuity_errors", "MPEG-TS continuity-counter gaps (TS packets lost or repeated on the way in).", t.continuity_errors),
            ("ladderd_decode_errors", "Packets that failed to decode (the stream then skips to its next keyframe).", t.decode_errors),
            ("ladderd_ladder_failures", "Ladders that failed to start or stopped on a stage failure; the stream continues without them.", t.ladder_failures),
            ("ladderd_in_band_reconfigurations", "New video configurations announced only by an in-band SPS (new size, profile or level); each continues the renditions after a discontinuity.", t.in_band_reconfigurations),
            ("ladderd_frames_skipped", "Video packets not decoded after a decode error.", t.frames_skipped),
            ("ladderd_decoder_drains", "Input pauses (no video for ingest.decoder_drain_after_ms) whose pictures held in the decoder went to every rung.", t.decoder_drains),
            ("ladderd_decoder_drain_failures", "Input pauses whose decoder drain failed: the renditions wait for the next packets.", t.decoder_drain_failures),
        ] {
            s.counter(metric, help, ls.clone(), n);
        }
        s.counter(
            "ladderd_ingest_ts_skipped_bytes",
            "Bytes the MPEG-TS demuxer skipped looking for the packet cadence (SRT input: garbage, torn packets).",
            ls.clone(),
            t.ts.skipped_bytes,
        );
        for (event, n) in [
            ("resync", t.ts.resyncs),
            ("dropped_pes", t.ts.dropped_pes),
            ("damaged_pes", t.ts.damaged_pes),
            ("pes_length_mismatch", t.ts.pes_length_mismatches),
        ] {
            s.counter(
                "ladderd_ingest_ts_demux_events",
                "What the MPEG-TS demuxer repaired or dropped in the stream's SRT input, by event (continuity errors: ladderd_ingest_continuity_errors_total).",
                l(&[("stream", &name), ("event", event)]),
                n,
            );
        }
    }
    for st in &live {
        let name = st.name.as_str();
        let ls = l(&[("stream", name)]);
        let transport = st
            .transport
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(t) = transport {
            s.gauge_f(
                "ladderd_srt_rtt_seconds",
                "SRT round-trip time to the publisher.",
                ls.clone(),
                t.rtt_ms / 1000.0,
            );
            s.gauge_f(
                "ladderd_srt_receive_rate_bits_per_second",
                "SRT receive rate, as libsrt measures it.",
                ls.clone(),
                t.receive_rate_mbps * 1e6,
            );
            s.gauge_f(
                "ladderd_srt_receive_buffer_seconds",
                "Media held in the SRT receive buffer.",
                ls.clone(),
                t.receive_buffer_ms as f64 / 1000.0,
            );
            for (name, help, v) in [
                (
                    "ladderd_srt_packets_received",
                    "SRT data packets received.",
                    t.packets_received,
                ),
                (
                    "ladderd_srt_packets_lost",
                    "SRT packets detected lost (before retransmission).",
                    t.packets_lost,
                ),
                (
                    "ladderd_srt_packets_retransmitted",
                    "SRT retransmitted packets received.",
                    t.packets_retransmitted,
                ),
                (
                    "ladderd_srt_packets_dropped",
                    "SRT packets given up as too late to play (beyond the receiver latency).",
                    t.packets_dropped,
                ),
            ] {
                s.counter(name, help, ls.clone(), v);
            }
        }
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
            for (reason, n) in [
                ("late", &r.dropped),
                ("behind", &r.dropped_behind),
                ("error", &r.dropped_error),
                ("drain", &r.dropped_drain),
            ] {
                s.counter(
                    "ladderd_frames_dropped",
                    "Frames a rung did not encode, by reason.",
                    l(&[("stream", name), ("rung", &r.name), ("reason", reason)]),
                    n.load(Relaxed),
                );
            }
            s.counter(
                "ladderd_rung_errors",
                "Scale or encode errors of one rung (a GPU out of memory, a codec refusing a picture): that rung alone skips to its next IDR.",
                rl.clone(),
                r.errors.load(Relaxed),
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
    for (core, secs) in crate::telemetry::cpu::per_thread_cpu_seconds() {
        s.counter_f(
            "ladderd_core_cpu_seconds",
            "CPU time of each executor thread.",
            l(&[("thread", &core)]),
            secs,
        );
    }
    s.gauge(
        "ladderd_ready",
        "1 while ready to serve (listeners bound, not shutting down).",
        vec![],
        ctx.health.is_ready() as i64,
    );
}
