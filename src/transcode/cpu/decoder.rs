//! H.264 decode with openh264.
//!
//! Measured here: openh264's default flush-after-decode loses frames on
//! B-frame streams (90 of 600 decoded), so it runs with `Flush::NoFlush` and
//! [`Decoder::flush`] drains the reorder buffer at end of stream. openh264 does
//! not carry timestamps through, but it emits pictures in presentation order,
//! so each picture takes the smallest pts still pending.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use openh264::decoder::{DecodedYUV, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use crate::media::h264::{avcc_to_annexb, AvcConfig};
use crate::media::Packet;
use crate::transcode::frame::{copy_plane, Frame};
use crate::transcode::{Decoder, StageError};

pub struct OpenH264Decoder {
    inner: openh264::decoder::Decoder,
    config: AvcConfig,
    /// Annex-B scratch buffer, reused.
    annexb: Vec<u8>,
    pending: BinaryHeap<Reverse<(i64, Instant)>>,
    frame: Frame,
}

impl OpenH264Decoder {
    pub fn new(config: AvcConfig) -> Result<Self, StageError> {
        let cfg = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        let inner = openh264::decoder::Decoder::with_api_config(OpenH264API::from_source(), cfg)
            .map_err(|e| StageError::Unavailable {
                stage: "openh264 decoder",
                reason: e.to_string(),
            })?;
        Ok(OpenH264Decoder {
            inner,
            frame: Frame::new(config.width, config.height),
            config,
            annexb: Vec::new(),
            pending: BinaryHeap::new(),
        })
    }

    fn emit(
        frame: &mut Frame,
        pending: &mut BinaryHeap<Reverse<(i64, Instant)>>,
        yuv: &DecodedYUV<'_>,
        out: &mut dyn FnMut(&mut Frame),
    ) {
        let (w, h) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        frame.reshape(w as u32, h as u32);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        copy_plane(&mut frame.y, yuv.y(), w, h, sy);
        copy_plane(&mut frame.u, yuv.u(), cw, ch, su);
        copy_plane(&mut frame.v, yuv.v(), cw, ch, sv);
        if let Some(Reverse((pts, arrival))) = pending.pop() {
            frame.pts = pts;
            frame.arrival = arrival;
        }
        out(frame);
    }
}

impl Decoder for OpenH264Decoder {
    fn decode(
        &mut self,
        packet: &Packet,
        out: &mut dyn FnMut(&mut Frame),
    ) -> Result<(), StageError> {
        avcc_to_annexb(
            &self.config,
            &packet.data,
            packet.keyframe,
            &mut self.annexb,
        );
        self.pending.push(Reverse((packet.pts, packet.arrival)));
        let decoded = self
            .inner
            .decode(&self.annexb)
            .map_err(|e| StageError::Decode {
                dts: packet.dts,
                reason: e.to_string(),
            });
        match decoded {
            Ok(Some(yuv)) => Self::emit(&mut self.frame, &mut self.pending, &yuv, out),
            Ok(None) => {}
            Err(e) => {
                // The picture will never come out; forget its timestamp.
                self.pending.retain(|Reverse((pts, _))| *pts != packet.pts);
                return Err(e);
            }
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut dyn FnMut(&mut Frame)) -> Result<(), StageError> {
        let frames = self
            .inner
            .flush_remaining()
            .map_err(|e| StageError::Decode {
                dts: -1,
                reason: format!("flush: {e}"),
            })?;
        for yuv in &frames {
            Self::emit(&mut self.frame, &mut self.pending, yuv, out);
        }
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::flv::{Demuxed, Demuxer, FileTags};
    use bytes::Bytes;

    pub(crate) fn capture() -> (AvcConfig, Vec<Packet>) {
        let data = Bytes::from_static(include_bytes!("../../../tests/data/tiny-720p30-high.flv"));
        let mut d = Demuxer::new(1);
        let now = Instant::now();
        let mut v = Vec::new();
        for t in FileTags::new(data).unwrap() {
            let t = t.unwrap();
            if t.kind == 9 {
                if let Ok(Demuxed::Packet(p)) = d.push_video(t.timestamp_ms, &t.body, now) {
                    v.push(p);
                }
            }
        }
        (d.video_config().unwrap().clone(), v)
    }

    #[test]
    fn decodes_every_bframe_picture_in_presentation_order() {
        let (cfg, packets) = capture();
        let mut dec = OpenH264Decoder::new(cfg).unwrap();
        let mut pts = Vec::new();
        for p in &packets {
            dec.decode(p, &mut |f| pts.push(f.pts)).unwrap();
        }
        dec.flush(&mut |f| pts.push(f.pts)).unwrap();
        assert_eq!(pts.len(), packets.len());
        let mut sorted = pts.clone();
        sorted.sort();
        assert_eq!(pts, sorted, "pictures must come out in presentation order");
        let mut want: Vec<i64> = packets.iter().map(|p| p.pts).collect();
        want.sort();
        assert_eq!(pts, want);
    }

    #[test]
    fn garbage_slice_is_an_error() {
        let (cfg, packets) = capture();
        let mut dec = OpenH264Decoder::new(cfg).unwrap();
        dec.decode(&packets[0], &mut |_| {}).unwrap();
        let mut bad = packets[1].clone();
        let mut data = bad.data.to_vec();
        // Keep the length prefix and NAL header; trash the slice.
        for b in data.iter_mut().skip(5) {
            *b = 0xff;
        }
        bad.data = Bytes::from(data);
        let mut failures = 0;
        for p in std::iter::once(&bad).chain(&packets[2..]) {
            failures += dec.decode(p, &mut |_| {}).is_err() as u32;
        }
        assert!(
            failures > 0,
            "openh264 reported no error for a trashed slice"
        );
    }
}
