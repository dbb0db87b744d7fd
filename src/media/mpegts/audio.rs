//! AAC in ADTS: PES payloads split into raw frames, each timed from the PES
//! pts and its index.

use std::time::Instant;

use bytes::Bytes;

use super::adts::{AdtsError, AdtsHeader};
use super::output::Demuxed;
use super::state::{AacTime, Core};
use crate::media::aac::AudioSpecificConfig;
use crate::media::{CodecConfig, Packet, Track};

impl Core {
    /// Splits one PES of ADTS into raw AAC frames, one packet each; a frame may
    /// start in one PES and end in the next.
    pub(super) fn audio_frames(&mut self, payload: &[u8], pts: Option<u64>, arrival: Instant) {
        if let Some(raw) = pts {
            let other = self.video.clock.last;
            let t = self.audio.clock.unwrap(raw, other);
            self.audio.discontinuity |= t.discontinuity;
        }
        let mut buf = std::mem::take(&mut self.audio.carry);
        let carried = buf.len();
        buf.extend_from_slice(payload);
        let base = pts.and_then(|_| self.audio.clock.last.map(|(_, out)| out));
        let mut time = if carried > 0 {
            self.audio.carry_time
        } else {
            base.map(|anchor| AacTime { anchor, index: 0 })
                .or(self.audio.next)
        };
        let mut in_new = carried == 0;
        let mut pos = 0;
        while pos < buf.len() {
            if !in_new && pos >= carried {
                // Frames that start in this PES are timed by its PTS.
                in_new = true;
                if let Some(anchor) = base {
                    time = Some(AacTime { anchor, index: 0 });
                }
            }
            let rest = &buf[pos..];
            let header = match AdtsHeader::parse(rest) {
                Ok(h) => h,
                Err(AdtsError::Truncated) => break,
                Err(_) => {
                    let skip = rest
                        .iter()
                        .skip(1)
                        .position(|&b| b == 0xff)
                        .map_or(rest.len(), |p| p + 1);
                    self.counters.adts_skipped_bytes += skip as u64;
                    pos += skip;
                    continue;
                }
            };
            let Some(frame) = rest.get(..header.frame_len) else {
                break; // continues in the next PES
            };
            pos += header.frame_len;
            let t = time.unwrap_or(AacTime {
                anchor: 0,
                index: 0,
            });
            time = time.map(|t| AacTime {
                index: t.index + 1,
                ..t
            });
            let raw = frame.get(header.header_len..).unwrap_or_default();
            if header.raw_blocks != 1 || time.is_none() {
                self.counters.adts_dropped_frames += 1;
                continue;
            }
            let Ok(cfg) = AudioSpecificConfig::from_adts(
                header.profile,
                header.sample_rate_index,
                header.channels,
            ) else {
                self.counters.adts_dropped_frames += 1;
                continue;
            };
            let mut pts = t.pts(cfg.sample_rate);
            // Rounding of a PES pts never takes audio time backwards.
            if let Some(last) = self.audio.last_pts {
                pts = pts.max(last);
            }
            self.audio.last_pts = Some(pts);
            if self.audio.config.as_ref() != Some(&cfg) {
                self.audio.config = Some(cfg.clone());
                self.out.push_back(Demuxed::Config(CodecConfig::Aac(cfg)));
            }
            self.out.push_back(Demuxed::Packet(Packet {
                stream: self.stream,
                track: Track::Audio,
                dts: pts,
                pts,
                keyframe: true,
                discontinuity: std::mem::take(&mut self.audio.discontinuity),
                data: Bytes::copy_from_slice(raw),
                arrival,
            }));
        }
        if !in_new && pos >= carried {
            if let Some(anchor) = base {
                time = Some(AacTime { anchor, index: 0 });
            }
        }
        buf.drain(..pos.min(buf.len()));
        self.audio.carry = buf;
        self.audio.carry_time = time;
        self.audio.next = time;
    }
}
