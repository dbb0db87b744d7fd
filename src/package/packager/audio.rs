//! The AAC rendition: frames held until the video reaches their time, then
//! placed sample-accurately, cutting segments where the video cut.

use std::collections::VecDeque;
use std::time::Instant;

use tracing::warn;

use super::output::Output;
use super::{AudioOutput, QueuedAudio, StreamPackager};
use crate::media::aac::AudioSpecificConfig;
use crate::media::{Packet, StreamCtx, TIMESCALE};
use crate::package::chunker::{Chunker, Frame};
use crate::package::cmaf::{self, TrackConfig};
use crate::package::published::{Published, RenditionKind};

/// AAC frames are 1024 samples.
const AAC_FRAME: i64 = 1024;

/// AAC frames per audio chunk of a chunked part: ~85 ms at 48 kHz, a fifth
/// of the per-frame box overhead, still several chunks per part.
const AUDIO_CHUNK_FRAMES: i64 = 4;

/// Longest an audio frame waits for the video to reach its time (90 kHz):
/// beyond it (video stalled, or none) the audio goes on alone.
const AUDIO_WAIT: i64 = TIMESCALE as i64 / 5;

impl StreamPackager {
    /// The audio rendition (AAC).
    #[must_use]
    pub fn set_audio(&mut self, asc: &AudioSpecificConfig) -> Vec<Published> {
        self.add_audio(asc);
        self.take()
    }

    fn add_audio(&mut self, asc: &AudioSpecificConfig) {
        if self.audio.is_some() || asc.sample_rate == 0 {
            return;
        }
        let track = TrackConfig::Audio(asc.clone());
        let init = match cmaf::init_segment(&track) {
            Ok(i) => i,
            Err(e) => {
                let e = e.in_stream(StreamCtx::new(&self.name).rendition("audio"));
                warn!("init segment: {e}");
                return;
            }
        };
        let sr = asc.sample_rate as i64;
        // Whole AAC frames, rounded up: 16 frames (341 ms) at 48 kHz for 1/3 s
        // parts, so each segment splits into parts of 15-16 frames (at least 85 %
        // of PART-TARGET, as the spec asks of every part but a segment's last).
        let per_frame = TIMESCALE as i64 * AAC_FRAME;
        let frames = ((self.part_ticks * sr + per_frame - 1) / per_frame).max(1);
        let part = frames * AAC_FRAME;
        let rendition = self.add_rendition(
            "audio",
            asc.codec_string(),
            RenditionKind::Audio {
                channels: asc.channels,
                nominal_bps: 128_000,
            },
            init,
            part as f64 / sr as f64,
        );
        self.audio = Some(AudioOutput {
            out: Output::new(
                rendition,
                Chunker::new(asc.sample_rate, part, AAC_FRAME)
                    .chunked(self.chunked)
                    .chunk_target(AUDIO_CHUNK_FRAMES * AAC_FRAME)
                    .even_parts(self.segment_ticks * sr / TIMESCALE as i64),
            ),
            sample_rate: sr,
            next: None,
            segment_start: None,
            queue: VecDeque::new(),
        });
    }

    /// One raw AAC frame. It waits (at most [`AUDIO_WAIT`]) until the
    /// source video has reached its time, so a segment boundary the video
    /// decides (a break's) is known before the audio passes it: publishers
    /// interleave audio up to a video frame ahead.
    #[must_use]
    pub fn audio(&mut self, p: &Packet, now: Instant) -> Vec<Published> {
        let t90 = self.decode_time(p.pts);
        let pdt_ms = self.pdt_ms(p.pts);
        if p.discontinuity {
            self.break_timeline(t90, false);
        }
        let Some(a) = &mut self.audio else {
            return Vec::new();
        };
        a.queue.push_back(QueuedAudio {
            t90,
            pdt_ms,
            data: p.data.clone(),
            arrival: p.arrival,
        });
        self.release_audio(false, now);
        self.take()
    }

    /// Packages the queued audio the video has caught up with (`all`: everything).
    pub(super) fn release_audio(&mut self, all: bool, now: Instant) {
        let video_at = self.video_at;
        loop {
            let Some(a) = &mut self.audio else { return };
            let (Some(front), Some(back)) = (a.queue.front(), a.queue.back()) else {
                return;
            };
            let due = all
                || video_at.is_some_and(|v| front.t90 <= v)
                || back.t90 - front.t90 >= AUDIO_WAIT;
            if !due {
                return;
            }
            if let Some(q) = a.queue.pop_front() {
                self.place_audio(q, now);
            }
        }
    }

    fn place_audio(&mut self, q: QueuedAudio, now: Instant) {
        let (segment_ticks, name) = (self.segment_ticks, self.name.clone());
        let Some(a) = &mut self.audio else { return };
        let sr = a.sample_rate;
        let t = q.t90 * sr / TIMESCALE as i64;
        // Sample-accurate while the source is continuous; a gap moves ahead,
        // an overlap drops the frame (decode time never goes backwards).
        let at = match a.next {
            Some(n) if t < n - 2 * AAC_FRAME => return,
            Some(n) if t <= n + 2 * AAC_FRAME => n,
            _ => t,
        };
        a.next = Some(at + AAC_FRAME);
        let target = segment_ticks * sr / TIMESCALE as i64;
        // A break cuts the audio where the video cut for it. Until then the
        // audio's own cadence waits (up to twice the target), so its segments
        // stay one for one with the video's.
        let pending = self.brk.filter(|b| a.out.marked != Some(b.id));
        let boundary = pending.and_then(|b| b.boundary).filter(|k| q.t90 >= *k);
        let cut = boundary.is_some();
        if cut {
            a.out.marked = pending.map(|b| b.id);
        }
        let elapsed = a.segment_start.map(|s| at - s + AAC_FRAME / 2);
        let wait = pending.is_some() && elapsed.is_some_and(|e| e < 2 * target);
        let starts_segment = cut || (!wait && elapsed.is_none_or(|e| e >= target));
        if starts_segment {
            // Segments start on the target's cadence from the last cut, not on
            // the AAC frame that crossed it: no drift against the video.
            a.segment_start = Some(match (boundary, a.segment_start, elapsed) {
                (Some(k), ..) => k * sr / TIMESCALE as i64,
                (None, Some(s), Some(e)) if e < 2 * target => s + target,
                _ => at,
            });
        }
        a.out.push(
            Frame {
                dts: at,
                pts: at,
                keyframe: true,
                starts_segment,
                discontinuity: cut,
                pdt_ms: q.pdt_ms,
                data: q.data,
                arrival: q.arrival,
                ready: now,
            },
            &name,
            &mut self.out,
        );
    }
}
