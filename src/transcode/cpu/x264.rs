//! H.264 encode with libx264 (cargo feature `x264`): better quality per bit
//! and faster than openh264 at the fast presets. Tuned for live: no
//! lookahead, no B-frames (dts == pts), one output per input, and IDRs only
//! when forced (infinite keyint, scene cuts off) so the rungs stay aligned.
//! Bitrate: ABR constrained by a VBV of one second at the rung's rate.

use std::ffi::CString;
use std::os::raw::c_int;

use bytes::Bytes;
use x264_sys as sys;

use crate::transcode::ladder::Rung;
use crate::transcode::{EncodedFrame, Encoder, Frame, StageError};

/// x264's speed/quality presets, fastest first.
pub use crate::config::X264_PRESETS as PRESETS;

pub struct X264Encoder {
    handle: *mut sys::x264_t,
    rung: String,
    width: u32,
    height: u32,
}

// SAFETY: an x264 encoder handle is used by one thread at a time (`&mut self`);
// libx264 keeps no thread-local state tied to the thread that opened it.
unsafe impl Send for X264Encoder {}

impl X264Encoder {
    /// `threads`: x264's own threads for this encoder (0: x264 decides).
    pub fn new(rung: &Rung, preset: &str, threads: u32) -> Result<Self, StageError> {
        let unavailable = |reason: String| StageError::Unavailable {
            stage: "x264 encoder",
            reason: format!("rung {}: {reason}", rung.name),
        };
        if !PRESETS.contains(&preset) {
            return Err(unavailable(format!("unknown preset {preset:?}")));
        }
        let preset_c = CString::new(preset).map_err(|e| unavailable(e.to_string()))?;
        let tune = c"zerolatency";
        let mut param = std::mem::MaybeUninit::<sys::x264_param_t>::zeroed();
        // SAFETY: x264_param_default_preset fills the whole struct; both
        // strings are NUL-terminated and outlive the call.
        let rc = unsafe {
            sys::x264_param_default_preset(param.as_mut_ptr(), preset_c.as_ptr(), tune.as_ptr())
        };
        if rc != 0 {
            return Err(unavailable(format!("preset {preset:?} refused")));
        }
        // SAFETY: initialised by x264_param_default_preset above.
        let mut p = unsafe { param.assume_init() };
        let kbps = (rung.bitrate_bps / 1000).max(1) as c_int;
        p.i_log_level = sys::X264_LOG_ERROR as c_int;
        p.i_threads = threads as c_int;
        p.i_width = rung.width as c_int;
        p.i_height = rung.height as c_int;
        p.i_csp = sys::X264_CSP_I420 as c_int;
        p.i_fps_num = (rung.fps.max(1.0) * 1000.0).round() as u32;
        p.i_fps_den = 1000;
        p.i_timebase_num = 1;
        p.i_timebase_den = 90_000;
        p.b_vfr_input = 0;
        p.i_keyint_max = sys::X264_KEYINT_MAX_INFINITE as c_int;
        p.i_keyint_min = 1;
        p.i_scenecut_threshold = 0;
        p.i_bframe = 0;
        p.b_repeat_headers = 1;
        p.b_annexb = 1;
        p.b_aud = 0;
        p.rc.i_rc_method = sys::X264_RC_ABR as c_int;
        p.rc.i_bitrate = kbps;
        p.rc.i_vbv_max_bitrate = kbps;
        p.rc.i_vbv_buffer_size = kbps;
        // SAFETY: `p` is a complete parameter set; x264 copies it.
        let handle = unsafe { sys::x264_encoder_open(&mut p) };
        if handle.is_null() {
            return Err(unavailable(format!(
                "x264_encoder_open refused {}x{}@{} {kbps} kbit/s preset {preset}",
                rung.width, rung.height, rung.fps
            )));
        }
        Ok(X264Encoder {
            handle,
            rung: rung.name.clone(),
            width: rung.width,
            height: rung.height,
        })
    }
}

impl Drop for X264Encoder {
    fn drop(&mut self) {
        // SAFETY: opened in `new`, closed once here.
        unsafe { sys::x264_encoder_close(self.handle) };
    }
}

impl Encoder for X264Encoder {
    fn encode(
        &mut self,
        frame: &Frame,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>, StageError> {
        let err = |reason: String| StageError::Encode {
            rung: self.rung.clone(),
            pts: frame.pts,
            reason,
        };
        if frame.width != self.width || frame.height != self.height {
            return Err(err(format!(
                "picture is {}x{}, encoder opened for {}x{}",
                frame.width, frame.height, self.width, self.height
            )));
        }
        let (w, h) = (frame.width as usize, frame.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        if frame.y.len() < w * h || frame.u.len() < cw * ch || frame.v.len() < cw * ch {
            return Err(err("picture planes shorter than its size".into()));
        }
        let mut pic = std::mem::MaybeUninit::<sys::x264_picture_t>::zeroed();
        // SAFETY: x264_picture_init only writes defaults into the struct.
        unsafe { sys::x264_picture_init(pic.as_mut_ptr()) };
        // SAFETY: initialised just above.
        let mut pic = unsafe { pic.assume_init() };
        pic.img.i_csp = sys::X264_CSP_I420 as c_int;
        pic.img.i_plane = 3;
        pic.img.i_stride = [w as c_int, cw as c_int, cw as c_int, 0];
        // x264 only reads the input planes; the pointers live for this call.
        pic.img.plane = [
            frame.y.as_ptr() as *mut u8,
            frame.u.as_ptr() as *mut u8,
            frame.v.as_ptr() as *mut u8,
            std::ptr::null_mut(),
        ];
        pic.i_pts = frame.pts;
        pic.i_type = if force_idr {
            sys::X264_TYPE_IDR as c_int
        } else {
            sys::X264_TYPE_AUTO as c_int
        };
        let mut out = std::mem::MaybeUninit::<sys::x264_picture_t>::zeroed();
        let mut nals: *mut sys::x264_nal_t = std::ptr::null_mut();
        let mut n_nals: c_int = 0;
        // SAFETY: handle is open; `pic` describes planes of at least the
        // encoder's size (checked above); x264 writes `out`, `nals`, `n_nals`.
        let size = unsafe {
            sys::x264_encoder_encode(
                self.handle,
                &mut nals,
                &mut n_nals,
                &mut pic,
                out.as_mut_ptr(),
            )
        };
        if size < 0 {
            return Err(err(format!("x264_encoder_encode returned {size}")));
        }
        if size == 0 || n_nals <= 0 || nals.is_null() {
            return Ok(None);
        }
        // SAFETY: on success x264 wrote `out`; the NAL payloads are one
        // contiguous buffer of `size` bytes starting at the first NAL's
        // payload, valid until the next encode call (copied out here).
        let (data, out) = unsafe {
            let first = (*nals).p_payload;
            (
                std::slice::from_raw_parts(first, size as usize),
                out.assume_init(),
            )
        };
        Ok(Some(EncodedFrame {
            pts: out.i_pts,
            dts: out.i_pts,
            keyframe: out.b_keyframe != 0,
            data: Bytes::copy_from_slice(data),
            arrival: frame.arrival,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264::annexb_has_idr;

    fn rung() -> Rung {
        Rung {
            name: "360p30".into(),
            width: 640,
            height: 360,
            fps: 30.0,
            bitrate_bps: 800_000,
            frame_step: 1,
        }
    }

    #[test]
    fn idrs_only_where_forced_and_one_output_per_picture() {
        let mut enc = X264Encoder::new(&rung(), "ultrafast", 1).unwrap();
        let mut f = Frame::new(640, 360);
        let mut idrs = Vec::new();
        for i in 0..90i64 {
            // Moving content, and a hard cut at 45 that must not make an IDR.
            let shift = if i >= 45 { 128 } else { 0 };
            for (n, px) in f.y.iter_mut().enumerate() {
                *px = ((n as i64 + i * 7 + shift) % 251) as u8;
            }
            f.pts = i * 3000;
            let out = enc
                .encode(&f, i % 30 == 0)
                .unwrap()
                .expect("one frame per picture");
            assert_eq!(out.pts, f.pts);
            assert_eq!(out.keyframe, annexb_has_idr(&out.data), "pts {}", out.pts);
            if out.keyframe {
                idrs.push(i);
            }
        }
        assert_eq!(idrs, vec![0, 30, 60]);
    }

    #[test]
    fn wrong_size_and_unknown_preset_are_errors() {
        assert!(X264Encoder::new(&rung(), "warp9", 1).is_err());
        let mut enc = X264Encoder::new(&rung(), "ultrafast", 1).unwrap();
        let e = enc.encode(&Frame::new(320, 180), true).unwrap_err();
        assert!(e.to_string().contains("640x360"), "{e}");
    }
}
