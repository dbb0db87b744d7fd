//! H.264 access units: Annex-B PES in, AVCC packets and configs out.

use std::time::Instant;

use bytes::Bytes;

use super::clock::{signed_33, MAX_GAP};
use super::output::Demuxed;
use super::state::Core;
use crate::media::h264::{annexb_nal_units, AvcConfig};
use crate::media::{CodecConfig, Packet, Track};

impl Core {
    /// One PES of H.264 is one access unit: Annex-B in, AVCC (4-byte lengths) out.
    pub(super) fn video_access_unit(
        &mut self,
        annexb: &[u8],
        pts: Option<u64>,
        dts: Option<u64>,
        arrival: Instant,
    ) {
        let Some(pts_raw) = pts else {
            self.counters.dropped_pes += 1;
            return;
        };
        let dts_raw = dts.unwrap_or(pts_raw);
        let mut avcc = Vec::with_capacity(annexb.len() + 16);
        let mut keyframe = false;
        for nal in annexb_nal_units(annexb) {
            let Some(&header) = nal.first() else { continue };
            match header & 0x1f {
                9 => continue, // access unit delimiter: AVCC has no use for it
                7 => self.video.sps = Some(Bytes::copy_from_slice(nal)),
                8 => self.video.pps = Some(Bytes::copy_from_slice(nal)),
                5 => keyframe = true,
                _ => {}
            }
            avcc.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            avcc.extend_from_slice(nal);
        }
        self.update_avc_config();
        if self.video.config.is_none() {
            self.counters.video_before_config += 1;
            return;
        }
        if avcc.is_empty() {
            self.counters.dropped_pes += 1;
            return;
        }
        let other = self.audio.clock.last;
        let t = self.video.clock.unwrap(dts_raw, other);
        let mut cts = signed_33(pts_raw, dts_raw);
        if !(0..=MAX_GAP).contains(&cts) {
            self.counters.bad_composition_offsets += 1;
            cts = 0;
        }
        self.out.push_back(Demuxed::Packet(Packet {
            stream: self.stream,
            track: Track::Video,
            dts: t.ticks,
            pts: t.ticks + cts,
            keyframe,
            discontinuity: t.discontinuity,
            data: Bytes::from(avcc),
            arrival,
        }));
    }

    /// Announces a config built from the latest SPS/PPS when they differ from
    /// the current one; a pair that does not parse leaves video without config.
    fn update_avc_config(&mut self) {
        let v = &mut self.video;
        let (Some(sps), Some(pps)) = (&v.sps, &v.pps) else {
            return;
        };
        let current = v
            .config
            .as_ref()
            .is_some_and(|c| c.sps.first() == Some(sps) && c.pps.first() == Some(pps));
        let rejected = v
            .rejected
            .as_ref()
            .is_some_and(|(s, p)| s == sps && p == pps);
        if current || rejected {
            return;
        }
        match AvcConfig::from_parameter_sets(sps, pps) {
            Ok(cfg) => {
                v.rejected = None;
                v.config = Some(cfg.clone());
                self.out.push_back(Demuxed::Config(CodecConfig::Avc(cfg)));
            }
            Err(_) => {
                v.rejected = Some((sps.clone(), pps.clone()));
                v.config = None;
                self.counters.bad_parameter_sets += 1;
            }
        }
    }
}
