//! Cuts one rendition's frames into CMAF parts and segments (sans-IO).
//!
//! Segments start where the caller says (an IDR on the stream's shared
//! boundaries); parts are cut so none is longer than the part target. A frame
//! is held until the next one arrives, so every sample's duration is its real
//! dts delta (one frame of latency; none of the guessing that leaves gaps).
//! A gap in the frames (a source that dropped some, a stream that skipped to
//! its next keyframe to catch up with real time, a rung behind) is covered by
//! the frame before it staying on screen: players stall on a hole in the
//! timeline, not on a long sample.

use std::time::Instant;

use bytes::Bytes;

use super::cmaf::{self, CmafError, Sample};

/// One frame in, timestamps in the track's timescale (already ≥ 0).
#[derive(Debug, Clone)]
pub struct Frame {
    pub dts: i64,
    pub pts: i64,
    pub keyframe: bool,
    /// This frame begins a new segment (it must be a keyframe for video).
    pub starts_segment: bool,
    /// A timestamp reset happened before this frame.
    pub discontinuity: bool,
    /// Wall-clock time of this frame's presentation (ms since the Unix epoch).
    pub pdt_ms: u64,
    pub data: Bytes,
    /// When the source packet arrived at ingest, and when this frame was
    /// ready to package (encoded, or received for passthrough).
    pub arrival: Instant,
    pub ready: Instant,
}

/// What the chunker publishes, in order.
#[derive(Debug, Clone)]
pub enum Chunk {
    SegmentStart {
        msn: u64,
        pdt_ms: u64,
        discontinuity: bool,
        /// Decode time of the segment's first sample (its `tfdt`), in
        /// `timescale` ticks: where the segment sits on the media timeline
        /// (DASH's `S@t`).
        start: u64,
        timescale: u32,
    },
    Part {
        msn: u64,
        index: u32,
        /// Starts with an IDR.
        independent: bool,
        duration: f64,
        data: Bytes,
        /// (arrival, ready) of each frame in the part, for latency accounting.
        frames: Vec<(Instant, Instant)>,
    },
    SegmentEnd {
        msn: u64,
        duration: f64,
    },
    /// One frame of the part being written, as its own `moof`+`mdat` (chunked
    /// parts only): the part's bytes are exactly its chunks, in order.
    PartChunk {
        msn: u64,
        index: u32,
        data: Bytes,
    },
}

/// The longest gap a held frame covers: ingest's own bound on normal time
/// (a longer step is a discontinuity there). Beyond it the sample gets one
/// frame's length.
const MAX_HOLD_MS: i64 = crate::media::timeline::DEFAULT_MAX_GAP_MS as i64;

pub struct Chunker {
    timescale: u32,
    part_target: i64,
    /// Duration used when the next frame's dts says nothing sensible.
    nominal: i64,
    held: Option<Frame>,
    part: Vec<Sample>,
    part_frames: Vec<(Instant, Instant)>,
    part_base: i64,
    part_ticks: i64,
    segment_ticks: i64,
    msn: Option<u64>,
    /// Where the last placed sample ends: decode times never go back past it.
    end_dts: Option<i64>,
    part_index: u32,
    sequence: u32,
    pending_discontinuity: bool,
    /// Write the part as fragments published as they are placed.
    chunked: bool,
    /// A chunk closes once it holds this much media (0: every frame).
    chunk_target: i64,
    part_chunks: Vec<Bytes>,
    /// Index in `part` of the first sample not yet in a chunk, and the
    /// part's ticks before it.
    chunk_start: usize,
    chunk_base_ticks: i64,
    /// `(segment, parts)`: each segment's parts end on a grid of `parts` equal
    /// steps of the segment target (see [`Chunker::even_parts`]).
    grid: Option<(i64, i64)>,
}

impl Chunker {
    /// `part_target` and `nominal` (one frame) in track timescale units.
    pub fn new(timescale: u32, part_target: i64, nominal: i64) -> Self {
        Chunker {
            timescale,
            part_target: part_target.max(1),
            nominal: nominal.max(1),
            held: None,
            part: Vec::new(),
            part_frames: Vec::new(),
            part_base: 0,
            part_ticks: 0,
            segment_ticks: 0,
            msn: None,
            end_dts: None,
            part_index: 0,
            sequence: 0,
            pending_discontinuity: false,
            chunked: false,
            chunk_target: 0,
            part_chunks: Vec::new(),
            chunk_start: 0,
            chunk_base_ticks: 0,
            grid: None,
        }
    }

    /// Splits each segment of about `segment` ticks into equal parts (as many
    /// as it takes for none to exceed the part target), a part ending on the
    /// frame nearest each step. For audio, whose frames do not divide the part
    /// target (AAC at 48 kHz: 15.6 frames per 1/3 s part), filling each part
    /// to the target left a last part of one or two frames before every
    /// segment boundary: hls.js, looking parts up by time with a 250 ms
    /// tolerance, then skipped that sliver and left a hole in the buffer.
    pub fn even_parts(mut self, segment: i64) -> Self {
        let max_frames = (self.part_target / self.nominal).max(1);
        let per_part = max_frames * self.nominal;
        if segment > 0 {
            self.grid = Some((segment, (segment + per_part - 1) / per_part));
        }
        self
    }

    /// Whether a frame of `duration` placed next would end nearer the next step
    /// of the part grid than it starts: it belongs to the next part.
    fn past_grid(&self, duration: i64) -> bool {
        let Some((segment, parts)) = self.grid else {
            return false;
        };
        // The last step is the segment's end: a frame past it (the audio's
        // cadence lets a segment run half a frame long) joins the last part.
        if self.part_index as i64 + 1 >= parts {
            return false;
        }
        (2 * self.segment_ticks + duration) * parts >= 2 * (self.part_index as i64 + 1) * segment
    }

    /// Parts made of one fragment per frame, each published as it is placed,
    /// so a waiting request can stream the part while it is being written.
    pub fn chunked(mut self, on: bool) -> Self {
        self.chunked = on;
        self
    }

    /// With `chunked`: group frames into chunks of at least `ticks` of media
    /// (audio: one `moof` per AAC frame would cost ~35 kbit/s of boxes).
    pub fn chunk_target(mut self, ticks: i64) -> Self {
        self.chunk_target = ticks.max(0);
        self
    }

    /// Takes one frame; returns the chunks that became complete.
    pub fn push(&mut self, frame: Frame) -> Result<Vec<Chunk>, CmafError> {
        let mut out = Vec::new();
        if self.msn.is_none() && self.held.is_none() && !frame.starts_segment {
            // Nothing to hang a segment on yet (video waits for its first IDR).
            return Ok(out);
        }
        if let Some(prev) = self.held.take() {
            let delta = frame.dts - prev.dts;
            let max_hold = (self.nominal * 10).max(self.timescale as i64 * MAX_HOLD_MS / 1000);
            let duration = if delta > 0 && delta <= max_hold {
                delta
            } else {
                self.nominal
            };
            self.place(prev, duration, &mut out)?;
        }
        self.held = Some(frame);
        Ok(out)
    }

    /// End of stream: publishes the held frame and closes the segment.
    pub fn finish(&mut self) -> Result<Vec<Chunk>, CmafError> {
        let mut out = Vec::new();
        if let Some(prev) = self.held.take() {
            self.place(prev, self.nominal, &mut out)?;
        }
        self.close_part(&mut out)?;
        if let Some(msn) = self.msn {
            out.push(Chunk::SegmentEnd {
                msn,
                duration: self.secs(self.segment_ticks),
            });
            self.msn = Some(msn + 1);
        }
        Ok(out)
    }

    fn secs(&self, ticks: i64) -> f64 {
        ticks as f64 / self.timescale as f64
    }

    fn place(&mut self, f: Frame, duration: i64, out: &mut Vec<Chunk>) -> Result<(), CmafError> {
        self.pending_discontinuity |= f.discontinuity;
        if f.starts_segment || self.msn.is_none() {
            self.close_part(out)?;
            let msn = match self.msn {
                Some(msn) => {
                    out.push(Chunk::SegmentEnd {
                        msn,
                        duration: self.secs(self.segment_ticks),
                    });
                    msn + 1
                }
                None => 0,
            };
            self.msn = Some(msn);
            self.part_index = 0;
            self.segment_ticks = 0;
            // Where the segment's first part will start (see below).
            let start = self.end_dts.map_or(f.dts, |end| f.dts.max(end)).max(0) as u64;
            out.push(Chunk::SegmentStart {
                msn,
                pdt_ms: f.pdt_ms,
                discontinuity: std::mem::take(&mut self.pending_discontinuity),
                start,
                timescale: self.timescale,
            });
        } else if !self.part.is_empty()
            && (self.part_ticks + duration > self.part_target || self.past_grid(duration))
        {
            self.close_part(out)?;
        }
        if self.part.is_empty() {
            // A source that jumps back would make tfdt go backwards: carry on
            // from where the previous part ended instead.
            self.part_base = self.end_dts.map_or(f.dts, |end| f.dts.max(end));
        }
        self.part_frames.push((f.arrival, f.ready));
        let sample = Sample {
            duration: duration as u32,
            composition_offset: (f.pts - f.dts).clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            keyframe: f.keyframe,
            data: f.data,
        };
        self.part.push(sample);
        self.part_ticks += duration;
        self.segment_ticks += duration;
        self.end_dts = Some(self.part_base + self.part_ticks);
        if self.part_ticks - self.chunk_base_ticks >= self.chunk_target {
            self.flush_chunk(out)?;
        }
        // Publish as soon as another frame of this length would not fit.
        if self.part_ticks + self.nominal > self.part_target || self.past_grid(self.nominal) {
            self.close_part(out)?;
        }
        Ok(())
    }

    /// Chunked parts: the samples placed since the last chunk, as one
    /// fragment published now.
    fn flush_chunk(&mut self, out: &mut Vec<Chunk>) -> Result<(), CmafError> {
        let (Some(msn), true) = (self.msn, self.chunked) else {
            return Ok(());
        };
        let Some(samples) = self.part.get(self.chunk_start..).filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        self.sequence += 1;
        let at = (self.part_base + self.chunk_base_ticks).max(0) as u64;
        let data = cmaf::fragment(self.sequence, at, samples)?;
        self.part_chunks.push(data.clone());
        out.push(Chunk::PartChunk {
            msn,
            index: self.part_index,
            data,
        });
        self.chunk_start = self.part.len();
        self.chunk_base_ticks = self.part_ticks;
        Ok(())
    }

    fn close_part(&mut self, out: &mut Vec<Chunk>) -> Result<(), CmafError> {
        if self.part.is_empty() {
            return Ok(());
        }
        self.flush_chunk(out)?;
        let Some(msn) = self.msn else {
            self.part.clear();
            self.part_frames.clear();
            self.part_chunks.clear();
            self.chunk_start = 0;
            self.chunk_base_ticks = 0;
            return Ok(());
        };
        let independent = self.part[0].keyframe;
        let data = if self.chunked {
            let chunks = std::mem::take(&mut self.part_chunks);
            let mut all = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
            for c in &chunks {
                all.extend_from_slice(c);
            }
            Bytes::from(all)
        } else {
            self.sequence += 1;
            cmaf::fragment(self.sequence, self.part_base.max(0) as u64, &self.part)?
        };
        out.push(Chunk::Part {
            msn,
            index: self.part_index,
            independent,
            duration: self.secs(self.part_ticks),
            data,
            frames: std::mem::take(&mut self.part_frames),
        });
        self.part_index += 1;
        self.part.clear();
        self.part_ticks = 0;
        self.chunk_start = 0;
        self.chunk_base_ticks = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: i64, key: bool) -> Frame {
        Frame {
            dts: i * 3000,
            pts: i * 3000,
            keyframe: key,
            starts_segment: key,
            discontinuity: false,
            pdt_ms: 1_000 + i as u64 * 33,
            data: Bytes::from(vec![0, 0, 0, 1, 0x65]),
            arrival: Instant::now(),
            ready: Instant::now(),
        }
    }

    /// 30 fps, 2 s segments, 10-frame parts: 6 parts per segment, all ≤ target,
    /// INDEPENDENT only on the first part of each segment.
    #[test]
    fn parts_fit_the_target_and_segments_start_on_keyframes() {
        let mut c = Chunker::new(90_000, 30_000, 3000);
        let mut chunks = Vec::new();
        for i in 0..120 {
            chunks.extend(c.push(frame(i, i % 60 == 0)).unwrap());
        }
        chunks.extend(c.finish().unwrap());
        let parts: Vec<_> = chunks
            .iter()
            .filter_map(|c| match c {
                Chunk::Part {
                    msn,
                    index,
                    independent,
                    duration,
                    ..
                } => Some((*msn, *index, *independent, *duration)),
                _ => None,
            })
            .collect();
        assert_eq!(parts.len(), 12);
        for (msn, index, independent, duration) in &parts {
            assert!(
                *duration <= 30_000.0 / 90_000.0 + 1e-9,
                "{msn}.{index}: {duration}"
            );
            assert_eq!(*independent, *index == 0, "{msn}.{index}");
        }
        let ends: Vec<_> = chunks
            .iter()
            .filter_map(|c| match c {
                Chunk::SegmentEnd { msn, duration } => Some((*msn, *duration)),
                _ => None,
            })
            .collect();
        assert_eq!(ends, vec![(0, 2.0), (1, 2.0)]);
    }

    /// A chunked part is its frames' fragments, published frame by frame.
    #[test]
    fn chunked_parts_are_the_concatenation_of_their_chunks() {
        let mut c = Chunker::new(90_000, 30_000, 3000).chunked(true);
        let mut chunks = Vec::new();
        for i in 0..25 {
            chunks.extend(c.push(frame(i, i % 60 == 0)).unwrap());
        }
        let mut pending: Vec<u8> = Vec::new();
        let mut parts = 0;
        for ch in chunks {
            match ch {
                Chunk::PartChunk { data, .. } => {
                    assert_eq!(&data[4..8], b"moof");
                    pending.extend_from_slice(&data);
                }
                Chunk::Part { data, .. } => {
                    assert_eq!(&data[..], &pending[..]);
                    pending.clear();
                    parts += 1;
                }
                _ => {}
            }
        }
        assert_eq!(parts, 2);
        // Frames of the third part already went out as chunks.
        assert!(!pending.is_empty());
    }

    /// (tfdt, sample count) of one fragment, read from its boxes.
    fn tfdt_and_count(frag: &[u8]) -> (u64, u32) {
        let at = |name: &[u8]| frag.windows(4).position(|w| w == name).unwrap();
        let tfdt = at(b"tfdt");
        let base = if frag[tfdt + 4] == 1 {
            u64::from_be_bytes(frag[tfdt + 8..tfdt + 16].try_into().unwrap())
        } else {
            u32::from_be_bytes(frag[tfdt + 8..tfdt + 12].try_into().unwrap()) as u64
        };
        let trun = at(b"trun");
        let count = u32::from_be_bytes(frag[trun + 8..trun + 12].try_into().unwrap());
        (base, count)
    }

    /// Frames missing (a source that dropped them, a stream that skipped to
    /// its next keyframe to catch up, the CI failure of the stand-in GPU demo:
    /// 20 frames up to a segment start): the frame before the gap stays on
    /// screen, so every part starts where the one before it ended and each
    /// segment lasts up to the next one's start. A jump past ingest's bound
    /// is not held.
    #[test]
    fn a_gap_in_the_frames_is_covered_by_the_frame_before_it() {
        for (missing, hold) in [(40..60, 21 * 3000), (35..50, 16 * 3000), (41..42, 2 * 3000)] {
            let mut c = Chunker::new(90_000, 30_000, 3000);
            let mut chunks = Vec::new();
            for i in (0..120).filter(|i| !missing.contains(i)) {
                chunks.extend(c.push(frame(i, i % 30 == 0)).unwrap());
            }
            chunks.extend(c.finish().unwrap());
            let (mut next, mut longest, mut segments) = (0u64, 0.0f64, Vec::new());
            for ch in &chunks {
                match ch {
                    Chunk::Part { data, duration, .. } => {
                        let (tfdt, _) = tfdt_and_count(data);
                        assert_eq!(
                            tfdt, next,
                            "{missing:?}: a part starts where the last ended"
                        );
                        next = tfdt + (duration * 90_000.0).round() as u64;
                        longest = longest.max(*duration);
                    }
                    Chunk::SegmentStart { start, .. } => assert_eq!(*start, next),
                    Chunk::SegmentEnd { duration, .. } => segments.push(*duration),
                    _ => {}
                }
            }
            assert_eq!(next, 120 * 3000, "{missing:?}");
            assert_eq!(segments, vec![1.0; 4], "{missing:?}");
            // The held frame's part is as long as the hold needs (a part
            // over PART-TARGET, only where frames are missing).
            assert!(
                longest >= hold as f64 / 90_000.0 - 1e-9,
                "{missing:?}: {longest}"
            );
        }
        // Past ingest's bound (10 s): one frame's length; the jump shows.
        let mut c = Chunker::new(90_000, 30_000, 3000);
        let mut chunks = c.push(frame(0, true)).unwrap();
        chunks.extend(c.push(frame(400, true)).unwrap());
        chunks.extend(c.push(frame(401, false)).unwrap());
        let ends: Vec<f64> = chunks
            .iter()
            .filter_map(|ch| match ch {
                Chunk::SegmentEnd { duration, .. } => Some(*duration),
                _ => None,
            })
            .collect();
        assert_eq!(ends, vec![3000.0 / 90_000.0]);
    }

    /// Chunks of several frames (audio): each chunk starts where the one
    /// before ended, and the part is still exactly its chunks.
    #[test]
    fn grouped_chunks_carry_on_the_decode_time() {
        let mut c = Chunker::new(90_000, 30_000, 3000)
            .chunked(true)
            .chunk_target(9000);
        let mut chunks = Vec::new();
        for i in 0..40 {
            chunks.extend(c.push(frame(i, i % 60 == 0)).unwrap());
        }
        let (mut pending, mut per_part, mut next_dts) = (Vec::new(), Vec::new(), None);
        let mut parts = Vec::new();
        for ch in chunks {
            match ch {
                Chunk::PartChunk { data, .. } => {
                    let (tfdt, count) = tfdt_and_count(&data);
                    if let Some(n) = next_dts {
                        assert_eq!(tfdt, n, "chunk starts where the last ended");
                    }
                    next_dts = Some(tfdt + count as u64 * 3000);
                    per_part.push(count);
                    pending.extend_from_slice(&data);
                }
                Chunk::Part { data, .. } => {
                    assert_eq!(&data[..], &pending[..]);
                    pending.clear();
                    parts.push(std::mem::take(&mut per_part));
                }
                _ => {}
            }
        }
        // Ten frames per part: chunks of three, then the rest at the part's end.
        assert_eq!(parts.len(), 3);
        for p in &parts {
            assert_eq!(p, &vec![3, 3, 3, 1]);
        }
    }

    #[test]
    fn nothing_before_the_first_segment_start() {
        let mut c = Chunker::new(90_000, 30_000, 3000);
        assert!(c.push(frame(1, false)).unwrap().is_empty());
        assert!(c.finish().unwrap().is_empty());
    }

    #[test]
    fn jittery_durations_never_exceed_the_part_target() {
        let mut c = Chunker::new(90_000, 30_000, 3000);
        let mut dts = 0;
        let mut chunks = Vec::new();
        for i in 0..300 {
            // RTMP millisecond timestamps: 33/34 ms steps.
            dts += if i % 3 == 0 { 3060 } else { 2970 };
            let mut f = frame(0, i % 60 == 0);
            f.dts = dts;
            f.pts = dts;
            chunks.extend(c.push(f).unwrap());
        }
        for ch in chunks {
            if let Chunk::Part { duration, .. } = ch {
                assert!(duration <= 30_000.0 / 90_000.0 + 1e-9);
            }
        }
    }

    /// 25 fps video with 1/3 s parts (8 frames) and 2 s segments (50 frames):
    /// filled to the target, every segment ended on a 2-frame part.
    #[test]
    fn video_at_25_fps_gets_even_parts() {
        let frame_ticks = 3600;
        let part_target = 8 * frame_ticks;
        let mut c = Chunker::new(90_000, part_target, frame_ticks).even_parts(180_000);
        let mut parts: Vec<Vec<i64>> = Vec::new();
        for i in 0..250 {
            let mut f = frame(0, i % 50 == 0);
            (f.dts, f.pts) = (i * frame_ticks, i * frame_ticks);
            for ch in c.push(f).unwrap() {
                match ch {
                    Chunk::SegmentStart { .. } => parts.push(Vec::new()),
                    Chunk::Part { duration, .. } => parts
                        .last_mut()
                        .unwrap()
                        .push((duration * 25.0).round() as i64),
                    _ => {}
                }
            }
        }
        parts.pop();
        assert_eq!(parts.len(), 4);
        for p in parts {
            assert_eq!(p.iter().sum::<i64>(), 50, "{p:?}");
            assert!(p.iter().all(|n| (7..=8).contains(n)), "{p:?}");
        }
    }

    /// AAC at 48 kHz with 1/3 s parts, segments cut on the audio's own 2 s
    /// (or 1 s) cadence as the packager does: no part is a sliver. Filling parts
    /// to the target gave 15,15,15,2 frames per 1 s segment, and hls.js skipped
    /// the 2-frame part (a 43 ms hole in its audio buffer, issue 13 a).
    #[test]
    fn audio_segments_split_into_even_parts_with_no_sliver() {
        for segment_secs in [1i64, 2, 4] {
            let (sr, frame_len) = (48_000i64, 1024i64);
            let segment = segment_secs * sr;
            let mut c = Chunker::new(sr as u32, 16 * frame_len, frame_len).even_parts(segment);
            let mut chunks = Vec::new();
            let mut segment_start: Option<i64> = None;
            for i in 0..(20 * sr / frame_len) {
                let at = i * frame_len;
                let elapsed = segment_start.map(|s| at - s + frame_len / 2);
                let starts = elapsed.is_none_or(|e| e >= segment);
                if starts {
                    segment_start = Some(segment_start.map_or(at, |s| s + segment));
                }
                let mut f = frame(0, true);
                (f.dts, f.pts, f.starts_segment) = (at, at, starts);
                chunks.extend(c.push(f).unwrap());
            }
            chunks.extend(c.finish().unwrap());
            let mut per_segment: Vec<Vec<i64>> = Vec::new();
            for ch in &chunks {
                match ch {
                    Chunk::SegmentStart { .. } => per_segment.push(Vec::new()),
                    Chunk::Part { duration, .. } => {
                        let frames = (duration * sr as f64 / frame_len as f64).round() as i64;
                        per_segment.last_mut().unwrap().push(frames);
                    }
                    _ => {}
                }
            }
            // The last segment is cut short by the end of the stream.
            per_segment.pop();
            assert!(per_segment.len() >= 4, "{segment_secs} s: {per_segment:?}");
            for parts in &per_segment {
                let (min, max) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
                assert!(
                    *max <= 16,
                    "{segment_secs} s: a part over the target: {parts:?}"
                );
                // HLS: every part but a segment's last is at least 85 % of PART-TARGET.
                assert!(*min >= 14, "{segment_secs} s: a short part: {parts:?}");
            }
        }
    }
}
