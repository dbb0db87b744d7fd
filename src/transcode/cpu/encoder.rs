//! H.264 encode with openh264: bitrate rate control, no frame skipping, no
//! scene-change IDRs (so rungs stay aligned: IDRs come only when forced).
//!
//! openh264 prints its messages on stderr (`[OpenH264] this = 0x…, Warning: …`);
//! we route them through `tracing` with the rung's name instead. Its one warning
//! at start-up, "bEnableFrameSkip = 0, bitrate can't be controlled …", is expected:
//! skipping frames would break the aligned ladder, and the rate control holds each
//! rung within a few percent anyway (measured by `tests/transcode.rs`
//! `each_rung_holds_its_bitrate_and_codec_messages_go_through_the_log`).

use std::ffi::{c_char, c_int, c_void, CStr};

use bytes::Bytes;
use openh264::encoder::{BitRate, EncoderConfig, FrameRate, FrameType, RateControlMode};
use openh264::{OpenH264API, Timestamp};

use crate::transcode::ladder::Rung;
use crate::transcode::{EncodedFrame, Encoder, Frame, StageError};

pub struct OpenH264Encoder {
    inner: openh264::encoder::Encoder,
    rung: String,
    out: Vec<u8>,
    /// The log callback's context; dropped after `inner` (field order).
    _trace: Box<TraceContext>,
}

/// openh264's `ENCODER_OPTION_TRACE_CALLBACK` / `…_CONTEXT` (codec_app_def.h).
const OPTION_TRACE_CALLBACK: c_int = 26;
const OPTION_TRACE_CALLBACK_CONTEXT: c_int = 27;
/// `WELS_LOG_ERROR`, `WELS_LOG_WARNING`.
const LOG_ERROR: c_int = 1;
const LOG_WARNING: c_int = 2;

struct TraceContext {
    rung: String,
}

type TraceCallback = unsafe extern "C" fn(*mut c_void, c_int, *const c_char);

/// Receives openh264's log lines (from the thread running the encoder).
unsafe extern "C" fn on_trace(ctx: *mut c_void, level: c_int, text: *const c_char) {
    if ctx.is_null() || text.is_null() {
        return;
    }
    // SAFETY: `ctx` is the `TraceContext` the encoder was given, alive as long as
    // the encoder; `text` is a NUL-terminated string openh264 owns for this call.
    let (ctx, text) = unsafe { (&*(ctx as *const TraceContext), CStr::from_ptr(text)) };
    let text = text.to_string_lossy();
    let text = text.trim();
    if level <= LOG_ERROR {
        tracing::warn!(rung = %ctx.rung, "openh264: {text}");
    } else if level <= LOG_WARNING {
        tracing::debug!(rung = %ctx.rung, "openh264: {text}");
    } else {
        tracing::trace!(rung = %ctx.rung, "openh264: {text}");
    }
}

impl OpenH264Encoder {
    pub fn new(rung: &Rung) -> Result<Self, StageError> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(rung.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(rung.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .scene_change_detect(false);
        let mut inner =
            openh264::encoder::Encoder::with_api_config(OpenH264API::from_source(), config)
                .map_err(|e| StageError::Unavailable {
                    stage: "openh264 encoder",
                    reason: e.to_string(),
                })?;
        let mut trace = Box::new(TraceContext {
            rung: rung.name.clone(),
        });
        // Before the first encode initialises the codec (which is when it warns).
        let mut callback: TraceCallback = on_trace;
        let mut context: *mut c_void = (&mut *trace as *mut TraceContext).cast();
        // SAFETY: SetOption copies the pointed-to callback pointer and context pointer;
        // the context lives in `_trace`, which outlives `inner`.
        unsafe {
            let api = inner.raw_api();
            api.set_option(
                OPTION_TRACE_CALLBACK_CONTEXT,
                (&mut context as *mut *mut c_void).cast(),
            );
            api.set_option(
                OPTION_TRACE_CALLBACK,
                (&mut callback as *mut TraceCallback).cast(),
            );
        }
        Ok(OpenH264Encoder {
            inner,
            rung: rung.name.clone(),
            out: Vec::new(),
            _trace: trace,
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
