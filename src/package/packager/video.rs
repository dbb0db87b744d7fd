//! Video in: the source passthrough (AVCC packets) and the rungs' encoded
//! pictures (Annex-B), each rendition starting with its first IDR.

use std::time::Instant;

use bytes::Bytes;
use tracing::{info, warn};

use super::output::Output;
use super::StreamPackager;
use crate::media::h264::{annexb_nal_units, AvcConfig};
use crate::media::Packet;
use crate::package::chunker::Frame;
use crate::package::cmaf;
use crate::package::input::RungPicture;
use crate::package::published::Published;

impl StreamPackager {
    /// One ingested video packet (AVCC), for the passthrough rendition; the
    /// audio waiting for the video's time goes on.
    #[must_use]
    pub fn source_video(&mut self, p: &Packet, now: Instant) -> Vec<Published> {
        self.package_source(p, now);
        let pts = self.decode_time(p.pts);
        self.video_at = Some(self.video_at.map_or(pts, |v| v.max(pts)));
        self.release_audio(false, now);
        self.take()
    }

    fn package_source(&mut self, p: &Packet, now: Instant) {
        let dts = self.decode_time(p.dts);
        let pts = self.decode_time(p.pts);
        let pdt_ms = self.pdt_ms(p.pts);
        if p.discontinuity || (self.reconfigured && p.keyframe) {
            self.break_timeline(pts, self.reconfigured && p.keyframe);
        }
        if p.keyframe {
            self.reconfigured = false;
        }
        let (half, target) = (self.frame_ticks / 2, self.segment_ticks);
        let name = self.name.clone();
        let Some(s) = &mut self.source else { return };
        let init = match s.pending_init.take() {
            // The new configuration starts a segment on its first keyframe.
            Some(init) if p.keyframe => {
                s.last_boundary = None;
                Some(init)
            }
            Some(init) => {
                s.pending_init = Some(init);
                return;
            }
            None => None,
        };
        let since = s.last_boundary.map(|b| pts - b);
        let starts_segment = p.keyframe && since.is_none_or(|e| e + half >= target);
        if !p.keyframe && s.follow_ladder && since.is_some_and(|e| e + half >= target * 3 / 2) {
            info!(stream = %name, "source GOP longer than the segment target duration + 0.5 s: the ladder segments on a fixed cadence, so the source rendition is withdrawn");
            s.out.end(&mut self.out);
            self.source = None;
            return;
        }
        if starts_segment {
            s.last_boundary = Some(pts);
        }
        let discontinuity = s.out.carries(&mut self.brk, pts, starts_segment);
        let data = cmaf::avcc_to_len4(&p.data, s.nal_length_size);
        let frame = Frame {
            dts,
            pts,
            keyframe: p.keyframe,
            starts_segment,
            discontinuity,
            pdt_ms,
            data,
            arrival: p.arrival,
            ready: now,
        };
        match init {
            Some(init) => s.out.push_with_init(frame, init, &name, &mut self.out),
            None => s.out.push(frame, &name, &mut self.out),
        }
    }

    /// One encoded frame of rung `i` (Annex-B).
    #[must_use]
    pub fn rung_frame(&mut self, i: usize, f: &RungPicture, now: Instant) -> Vec<Published> {
        self.package_rung(i, f, now);
        self.take()
    }

    fn package_rung(&mut self, i: usize, f: &RungPicture, now: Instant) {
        let mut init = None;
        match self.rungs.get(i) {
            Some(None) if f.keyframe => {
                let mut out = self.rung_output(i, f.data);
                if let Some(o) = &mut out {
                    // A break before the rendition existed is not its own.
                    o.marked = self.brk.map(|b| b.id);
                }
                if let Some(slot) = self.rungs.get_mut(i) {
                    *slot = out;
                }
            }
            Some(Some(o)) if o.reinit && f.keyframe => {
                let bps = self.rung_plan.get(i).map_or(0, |r| r.bitrate_bps as u64);
                init = self.rung_config(i, f.data).and_then(|cfg| {
                    self.video_config(&cfg, bps)
                        .map_err(|e| warn!(stream = %self.name, rung = i, "init segment: {e}"))
                        .ok()
                });
            }
            _ => {}
        }
        let dts = self.decode_time(f.dts);
        let pts = self.decode_time(f.pts);
        let pdt_ms = self.pdt_ms(f.pts);
        let name = self.name.clone();
        let Some(Some(out)) = self.rungs.get_mut(i) else {
            return;
        };
        if out.reinit && !f.keyframe {
            return;
        }
        let frame = Frame {
            dts,
            pts,
            keyframe: f.keyframe,
            starts_segment: f.keyframe,
            discontinuity: out.carries(&mut self.brk, pts, f.keyframe),
            pdt_ms,
            data: cmaf::annexb_to_avcc(f.data),
            arrival: f.arrival,
            ready: now,
        };
        if !out.reinit {
            out.push(frame, &name, &mut self.out);
            return;
        }
        out.reinit = false;
        match init {
            Some(init) => out.push_with_init(frame, init, &name, &mut self.out),
            None => {
                // Its old init cannot decode the new pictures: the rendition ends.
                warn!(stream = %name, rendition = %out.rendition, "restarted encoder's parameter sets unusable; the rendition ends");
                out.finish(&name, now, &mut self.out);
            }
        }
    }

    /// A rung's rendition, from the SPS/PPS in front of its first IDR.
    fn rung_output(&mut self, i: usize, annexb: &Bytes) -> Option<Output> {
        let rung = self.rung_plan.get(i)?.clone();
        let cfg = self.rung_config(i, annexb)?;
        self.video_output(&rung.name, &cfg, rung.bitrate_bps as u64)
    }

    /// A rung's codec configuration, from the SPS/PPS in front of an IDR.
    fn rung_config(&self, i: usize, annexb: &Bytes) -> Option<AvcConfig> {
        let rung = self.rung_plan.get(i)?;
        let (mut sps, mut pps) = (None, None);
        for nal in annexb_nal_units(annexb) {
            match nal.first().map(|h| h & 0x1f) {
                Some(7) if sps.is_none() => sps = Some(nal),
                Some(8) if pps.is_none() => pps = Some(nal),
                _ => {}
            }
        }
        match AvcConfig::from_parameter_sets(sps?, pps?) {
            Ok(mut c) => {
                c.fps = Some(rung.fps.min(self.fps));
                Some(c)
            }
            Err(e) => {
                warn!(stream = %self.name, rung = %rung.name, "encoder parameter sets: {e}");
                None
            }
        }
    }
}
