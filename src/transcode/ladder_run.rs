//! Decode once, fan out to every rung with IDRs aligned: the core of the
//! pipeline, shared by the live path and `ladderd transcode`.
//!
//! Drive contract: [`LadderRun::push`] every video packet in decode order,
//! then [`LadderRun::finish`] once; encoded frames come out through the
//! callback as `(rung index, frame)`, in presentation order per rung.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::media::h264::AvcConfig;
use crate::media::{Packet, TIMESCALE};
use crate::transcode::boundary::{Boundaries, Mode};
use crate::transcode::cpu::{BilinearScaler, OpenH264Decoder, OpenH264Encoder};
use crate::transcode::ladder::{plan, Rung, RungConfig};
use crate::transcode::{Decoder, EncodedFrame, Encoder, Frame, Scaler, StageError};

/// Per-rung output accounting.
#[derive(Debug, Clone, Default)]
pub struct RungStats {
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub scale_time: Duration,
    pub encode_time: Duration,
}

struct RungState {
    rung: Rung,
    scaler: Box<dyn Scaler>,
    encoder: Box<dyn Encoder>,
    frame: Frame,
    stats: RungStats,
}

pub struct LadderRun {
    decoder: Box<dyn Decoder>,
    rungs: Vec<RungState>,
    boundaries: Boundaries,
    source_keyframes: HashSet<i64>,
    frame_ticks: i64,
    pub decoded: u64,
    pub decode_time: Duration,
    /// Packets not decoded because of a decode error: the bad one and those
    /// skipped up to the next keyframe.
    pub skipped: u64,
    waiting_for_keyframe: bool,
}

impl LadderRun {
    /// Plans the rungs for this source and builds the CPU stages.
    pub fn new(
        config: &AvcConfig,
        fps: f64,
        ladder: &[RungConfig],
        segment_secs: f64,
    ) -> Result<Self, StageError> {
        let rungs = plan(ladder, config.width, config.height, fps);
        let mut states = Vec::with_capacity(rungs.len());
        for rung in rungs {
            states.push(RungState {
                encoder: Box::new(OpenH264Encoder::new(&rung)?),
                scaler: Box::new(BilinearScaler::new()),
                frame: Frame::new(rung.width, rung.height),
                rung,
                stats: RungStats::default(),
            });
        }
        Ok(LadderRun {
            decoder: Box::new(OpenH264Decoder::new(config.clone())?),
            rungs: states,
            boundaries: Boundaries::new(segment_secs),
            source_keyframes: HashSet::new(),
            frame_ticks: (TIMESCALE as f64 / fps).round() as i64,
            decoded: 0,
            decode_time: Duration::ZERO,
            skipped: 0,
            waiting_for_keyframe: false,
        })
    }

    pub fn rungs(&self) -> impl Iterator<Item = (&Rung, &RungStats)> {
        self.rungs.iter().map(|r| (&r.rung, &r.stats))
    }

    pub fn boundary_mode(&self) -> Mode {
        self.boundaries.mode()
    }

    /// Decodes one video packet and encodes every rung's share of what came out.
    /// A decode error skips this stream to its next keyframe and is returned once.
    pub fn push(
        &mut self,
        packet: &Packet,
        out: &mut dyn FnMut(usize, EncodedFrame),
    ) -> Result<(), StageError> {
        if self.waiting_for_keyframe && !packet.keyframe {
            self.skipped += 1;
            return Ok(());
        }
        self.waiting_for_keyframe = false;
        if packet.keyframe {
            self.source_keyframes.insert(packet.pts);
        }
        let t = Instant::now();
        let mut result = Ok(());
        let mut fan_out_time = Duration::ZERO;
        let Self {
            decoder,
            rungs,
            boundaries,
            source_keyframes,
            frame_ticks,
            decoded,
            ..
        } = self;
        let r = decoder.decode(packet, &mut |frame| {
            *decoded += 1;
            let t = Instant::now();
            if let Err(e) = fan_out(
                frame,
                rungs,
                boundaries,
                source_keyframes,
                *frame_ticks,
                out,
            ) {
                result = Err(e);
            }
            fan_out_time += t.elapsed();
        });
        self.decode_time += t.elapsed().saturating_sub(fan_out_time);
        if let Err(e) = r {
            self.skipped += 1;
            self.waiting_for_keyframe = true;
            return Err(e);
        }
        result
    }

    /// End of stream: drains the decoder's reorder buffer through the rungs.
    pub fn finish(&mut self, out: &mut dyn FnMut(usize, EncodedFrame)) -> Result<(), StageError> {
        let mut result = Ok(());
        let Self {
            decoder,
            rungs,
            boundaries,
            source_keyframes,
            frame_ticks,
            decoded,
            ..
        } = self;
        decoder.flush(&mut |frame| {
            *decoded += 1;
            if let Err(e) = fan_out(
                frame,
                rungs,
                boundaries,
                source_keyframes,
                *frame_ticks,
                out,
            ) {
                result = Err(e);
            }
        })?;
        result
    }
}

fn fan_out(
    frame: &Frame,
    rungs: &mut [RungState],
    boundaries: &mut Boundaries,
    source_keyframes: &mut HashSet<i64>,
    frame_ticks: i64,
    out: &mut dyn FnMut(usize, EncodedFrame),
) -> Result<(), StageError> {
    let key = source_keyframes.remove(&frame.pts);
    let decision = boundaries.next(frame.pts, key, frame_ticks);
    if decision.switched_to_cadence {
        tracing::info!(pts = frame.pts, "source GOP longer than the segment target: segmenting on a fixed cadence; the passthrough rendition is not offered");
    }
    let index = boundaries.index_in_segment;
    for (i, r) in rungs.iter_mut().enumerate() {
        if index % r.rung.frame_step as u64 != 0 {
            continue;
        }
        let t = Instant::now();
        r.scaler.scale(frame, &mut r.frame)?;
        let t2 = Instant::now();
        r.stats.scale_time += t2 - t;
        let encoded = r.encoder.encode(&r.frame, decision.boundary)?;
        r.stats.encode_time += t2.elapsed();
        if let Some(e) = encoded {
            r.stats.frames += 1;
            r.stats.keyframes += e.keyframe as u64;
            r.stats.bytes += e.data.len() as u64;
            out(i, e);
        }
    }
    Ok(())
}
