//! H.264 encode with openh264: bitrate rate control, no frame skipping, no
//! scene-change IDRs (so rungs stay aligned: IDRs come only when forced).

use bytes::Bytes;
use openh264::encoder::{BitRate, EncoderConfig, FrameRate, FrameType, RateControlMode};
use openh264::{OpenH264API, Timestamp};

use crate::transcode::ladder::Rung;
use crate::transcode::{EncodedFrame, Encoder, Frame, StageError};

pub struct OpenH264Encoder {
    inner: openh264::encoder::Encoder,
    rung: String,
    out: Vec<u8>,
}

impl OpenH264Encoder {
    pub fn new(rung: &Rung) -> Result<Self, StageError> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(rung.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(rung.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .scene_change_detect(false);
        let inner = openh264::encoder::Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| StageError::Unavailable {
                stage: "openh264 encoder",
                reason: e.to_string(),
            })?;
        Ok(OpenH264Encoder {
            inner,
            rung: rung.name.clone(),
            out: Vec::new(),
        })
    }
}

impl Encoder for OpenH264Encoder {
    fn encode(
        &mut self,
        frame: &Frame,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>, StageError> {
        if force_idr {
            self.inner.force_intra_frame();
        }
        let ms = (frame.pts.max(0) / 90) as u64;
        let err = |reason: String| StageError::Encode {
            rung: self.rung.clone(),
            pts: frame.pts,
            reason,
        };
        let bits = self
            .inner
            .encode_at(frame, Timestamp::from_millis(ms))
            .map_err(|e| err(e.to_string()))?;
        let keyframe = matches!(bits.frame_type(), FrameType::IDR | FrameType::I);
        if matches!(bits.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        self.out.clear();
        bits.write_vec(&mut self.out);
        if self.out.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            pts: frame.pts,
            dts: frame.pts,
            keyframe,
            data: Bytes::copy_from_slice(&self.out),
            arrival: frame.arrival,
        }))
    }
}
