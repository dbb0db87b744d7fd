//! H.264 decode with FFmpeg's libavcodec, opened at run time (`dlopen`, as
//! libsrt and NVIDIA's libraries are): about twice openh264's speed on High
//! profile, with its own frame threads. Not linked: Debian builds libavcodec
//! under the GPL, and the default build stays free of GPL code (README,
//! Licences); a box without it decodes with openh264.
//!
//! Only the few struct fields read or written here are declared, at their
//! offsets in FFmpeg 5.1's headers (libavutil 57, libavcodec 59, Debian 12):
//! a library of another major version is refused, saying so.
//! `tests/libav_layout.rs` checks the offsets against the installed headers.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;
use std::time::Instant;

use crate::dylib::{self, Unavailable};
use crate::media::h264::{avcc_to_annexb, AvcConfig};
use crate::media::Packet;
use crate::transcode::frame::{copy_plane, Frame};
use crate::transcode::{Decoder, StageError};

/// The majors whose layouts this file declares.
pub const AVUTIL_MAJOR: u32 = 57;
pub const AVCODEC_MAJOR: u32 = 59;

/// `AVPacket`'s first fields (unchanged since FFmpeg 1): the rest is
/// the library's, allocated by `av_packet_alloc`.
#[repr(C)]
pub struct PacketHead {
    pub buf: *mut c_void,
    pub pts: i64,
    pub dts: i64,
    pub data: *mut u8,
    pub size: c_int,
    pub stream_index: c_int,
    pub flags: c_int,
}

/// `AVFrame`'s first fields, up to `pts`.
#[repr(C)]
pub struct FrameHead {
    pub data: [*mut u8; 8],
    pub linesize: [c_int; 8],
    pub extended_data: *mut *mut u8,
    pub width: c_int,
    pub height: c_int,
    pub nb_samples: c_int,
    pub format: c_int,
    pub key_frame: c_int,
    pub pict_type: c_int,
    pub sample_aspect_ratio: [c_int; 2],
    pub pts: i64,
}

const AV_CODEC_ID_H264: c_int = 27;
const AV_PIX_FMT_YUV420P: c_int = 0;
const AV_PIX_FMT_YUVJ420P: c_int = 12;
const AV_PKT_FLAG_KEY: c_int = 1;
const AVERROR_EAGAIN: c_int = -11;
const AVERROR_EOF: c_int = -0x2046_4f45;
const AV_NOPTS_VALUE: i64 = i64::MIN;

/// The constants used here, for `tests/libav_layout.rs`: H.264's codec id,
/// the two 4:2:0 formats, the key flag, EAGAIN, EOF.
pub fn constants() -> [i64; 6] {
    [
        AV_CODEC_ID_H264.into(),
        AV_PIX_FMT_YUV420P.into(),
        AV_PIX_FMT_YUVJ420P.into(),
        AV_PKT_FLAG_KEY.into(),
        AVERROR_EAGAIN.into(),
        AVERROR_EOF.into(),
    ]
}

struct Av {
    avutil_version: unsafe extern "C" fn() -> u32,
    avcodec_version: unsafe extern "C" fn() -> u32,
    find_decoder: unsafe extern "C" fn(c_int) -> *const c_void,
    alloc_context3: unsafe extern "C" fn(*const c_void) -> *mut c_void,
    open2: unsafe extern "C" fn(*mut c_void, *const c_void, *mut c_void) -> c_int,
    free_context: unsafe extern "C" fn(*mut *mut c_void),
    send_packet: unsafe extern "C" fn(*mut c_void, *const PacketHead) -> c_int,
    receive_frame: unsafe extern "C" fn(*mut c_void, *mut FrameHead) -> c_int,
    packet_alloc: unsafe extern "C" fn() -> *mut PacketHead,
    packet_free: unsafe extern "C" fn(*mut *mut PacketHead),
    frame_alloc: unsafe extern "C" fn() -> *mut FrameHead,
    frame_free: unsafe extern "C" fn(*mut *mut FrameHead),
    frame_unref: unsafe extern "C" fn(*mut FrameHead),
    opt_set: unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, c_int) -> c_int,
    strerror: unsafe extern "C" fn(c_int, *mut c_char, usize) -> c_int,
    _libs: (libloading::Library, libloading::Library),
}

const AVUTIL_NAMES: &[&str] = &["libavutil.so.57"];
const AVCODEC_NAMES: &[&str] = &["libavcodec.so.59"];

/// libavcodec, opened once per process, or why not (for `probe` and the log).
fn av() -> Result<&'static Av, Unavailable> {
    static AV: OnceLock<Result<Av, Unavailable>> = OnceLock::new();
    AV.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// Whether this box can decode with libavcodec, and which (or why not).
pub fn probe() -> Result<String, Unavailable> {
    let av = av()?;
    // SAFETY: version getters without arguments.
    let (u, c) = unsafe { ((av.avutil_version)(), (av.avcodec_version)()) };
    let v = |x: u32| format!("{}.{}.{}", x >> 16, (x >> 8) & 0xff, x & 0xff);
    Ok(format!("libavcodec {} (libavutil {})", v(c), v(u)))
}

fn load() -> Result<Av, Unavailable> {
    // SAFETY: FFmpeg's libraries have no initialisers with preconditions.
    let (util, util_file) =
        unsafe { dylib::open("libavutil", AVUTIL_NAMES, "install Debian's libavutil57") }?;
    // SAFETY: as above.
    let (codec, codec_file) =
        unsafe { dylib::open("libavcodec", AVCODEC_NAMES, "install Debian's libavcodec59") }?;
    let fail = |reason: String| Unavailable::new("libavcodec", &[util_file, codec_file], reason);
    macro_rules! sym {
        ($lib:ident, $name:literal) => {{
            // SAFETY: each symbol's type is its C declaration in FFmpeg 5.1's
            // headers, written out in `Av`; the libraries live as long as it.
            let s = unsafe { $lib.get(concat!($name, "\0").as_bytes()) }
                .map_err(|e| fail(format!("{}: {e}", $name)))?;
            *s
        }};
    }
    let av = Av {
        avutil_version: sym!(util, "avutil_version"),
        avcodec_version: sym!(codec, "avcodec_version"),
        find_decoder: sym!(codec, "avcodec_find_decoder"),
        alloc_context3: sym!(codec, "avcodec_alloc_context3"),
        open2: sym!(codec, "avcodec_open2"),
        free_context: sym!(codec, "avcodec_free_context"),
        send_packet: sym!(codec, "avcodec_send_packet"),
        receive_frame: sym!(codec, "avcodec_receive_frame"),
        packet_alloc: sym!(codec, "av_packet_alloc"),
        packet_free: sym!(codec, "av_packet_free"),
        frame_alloc: sym!(util, "av_frame_alloc"),
        frame_free: sym!(util, "av_frame_free"),
        frame_unref: sym!(util, "av_frame_unref"),
        opt_set: sym!(util, "av_opt_set"),
        strerror: sym!(util, "av_strerror"),
        _libs: (util, codec),
    };
    // SAFETY: version getters without arguments.
    let (u, c) = unsafe { ((av.avutil_version)() >> 16, (av.avcodec_version)() >> 16) };
    if u != AVUTIL_MAJOR || c != AVCODEC_MAJOR {
        return Err(fail(format!(
            "libavutil {u} / libavcodec {c}: this build knows the layouts of {AVUTIL_MAJOR} / {AVCODEC_MAJOR} (FFmpeg 5.1) only"
        )));
    }
    Ok(av)
}

fn error_text(av: &Av, code: c_int) -> String {
    let mut buf = [0 as c_char; 128];
    // SAFETY: av_strerror writes at most `len` bytes, NUL-terminated.
    unsafe { (av.strerror)(code, buf.as_mut_ptr(), buf.len()) };
    // SAFETY: NUL-terminated by av_strerror (or still all zeros).
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// How libavcodec's threads work: `threads` frame threads (each adds a
/// picture of delay; 1: none, the picture comes out of the call that
/// carried it).
pub struct LibavDecoder {
    av: &'static Av,
    ctx: *mut c_void,
    packet: *mut PacketHead,
    picture: *mut FrameHead,
    config: AvcConfig,
    annexb: Vec<u8>,
    /// Arrival of each picture still inside the decoder, by pts.
    arrivals: HashMap<i64, Instant>,
    frame: Frame,
    drained: bool,
}

impl LibavDecoder {
    pub fn new(config: AvcConfig, threads: u32) -> Result<Self, StageError> {
        let unavailable = |reason: String| StageError::Unavailable {
            stage: "libavcodec decoder",
            reason,
        };
        let av = av().map_err(|source| StageError::Library {
            stage: "libavcodec decoder",
            source,
        })?;
        // SAFETY: FFmpeg's documented allocation sequence; every pointer is
        // checked before use and freed in Drop (or below, on failure).
        unsafe {
            let codec = (av.find_decoder)(AV_CODEC_ID_H264);
            if codec.is_null() {
                return Err(unavailable("libavcodec has no H.264 decoder".into()));
            }
            let d = LibavDecoder {
                av,
                ctx: (av.alloc_context3)(codec),
                packet: (av.packet_alloc)(),
                picture: (av.frame_alloc)(),
                frame: Frame::new(config.width, config.height),
                config,
                annexb: Vec::new(),
                arrivals: HashMap::new(),
                drained: false,
            };
            if d.ctx.is_null() || d.packet.is_null() || d.picture.is_null() {
                return Err(unavailable("out of memory".into()));
            }
            let threads = std::ffi::CString::new(threads.max(1).to_string()).unwrap_or_default();
            for (key, value) in [(c"threads", threads.as_c_str()), (c"thread_type", c"frame")] {
                let rc = (av.opt_set)(d.ctx, key.as_ptr(), value.as_ptr(), 0);
                if rc < 0 {
                    return Err(unavailable(format!("{key:?}: {}", error_text(av, rc))));
                }
            }
            let rc = (av.open2)(d.ctx, codec, std::ptr::null_mut());
            if rc < 0 {
                return Err(unavailable(format!(
                    "avcodec_open2: {}",
                    error_text(av, rc)
                )));
            }
            Ok(d)
        }
    }

    fn error(&self, dts: i64, what: &str, rc: c_int) -> StageError {
        StageError::Decode {
            dts,
            reason: format!("libavcodec {what}: {}", error_text(self.av, rc)),
        }
    }

    /// Every picture the decoder has ready.
    fn receive(&mut self, dts: i64, out: &mut dyn FnMut(&mut Frame)) -> Result<(), StageError> {
        loop {
            // SAFETY: ctx is open, picture allocated; the picture's planes
            // are read only until the unref below.
            let rc = unsafe { (self.av.receive_frame)(self.ctx, self.picture) };
            if rc == AVERROR_EAGAIN || rc == AVERROR_EOF {
                return Ok(());
            }
            if rc < 0 {
                return Err(self.error(dts, "receive", rc));
            }
            // SAFETY: a frame just received: its fields are set.
            let p = unsafe { &*self.picture };
            let result = self.copy_out(p, dts);
            // SAFETY: drops the decoder's reference to the picture's buffers.
            unsafe { (self.av.frame_unref)(self.picture) };
            result?;
            out(&mut self.frame);
        }
    }

    fn copy_out(&mut self, p: &FrameHead, dts: i64) -> Result<(), StageError> {
        if p.format != AV_PIX_FMT_YUV420P && p.format != AV_PIX_FMT_YUVJ420P {
            return Err(StageError::Decode {
                dts,
                reason: format!("libavcodec picture format {} is not 8-bit 4:2:0", p.format),
            });
        }
        let (w, h) = (p.width.max(0) as usize, p.height.max(0) as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        self.frame.reshape(w as u32, h as u32);
        let planes = [(0, w, h), (1, cw, ch), (2, cw, ch)];
        for (i, pw, ph) in planes {
            let stride = p.linesize[i];
            if p.data[i].is_null() || stride < pw as c_int {
                return Err(StageError::Decode {
                    dts,
                    reason: format!("libavcodec plane {i}: stride {stride} for width {pw}"),
                });
            }
            // SAFETY: libavcodec's plane i holds `ph` rows of `stride` bytes.
            let src =
                unsafe { std::slice::from_raw_parts(p.data[i], stride as usize * (ph - 1) + pw) };
            let dst = match i {
                0 => &mut self.frame.y,
                1 => &mut self.frame.u,
                _ => &mut self.frame.v,
            };
            copy_plane_tail(dst, src, pw, ph, stride as usize);
        }
        if p.pts != AV_NOPTS_VALUE {
            self.frame.pts = p.pts;
        }
        self.frame.arrival = self
            .arrivals
            .remove(&self.frame.pts)
            .unwrap_or_else(Instant::now);
        Ok(())
    }
}

/// [`copy_plane`] over a source whose last row is only `width` long.
fn copy_plane_tail(dst: &mut [u8], src: &[u8], width: usize, height: usize, stride: usize) {
    if height == 0 {
        return;
    }
    copy_plane(
        &mut dst[..width * (height - 1)],
        src,
        width,
        height - 1,
        stride,
    );
    let last = (height - 1) * stride;
    dst[width * (height - 1)..width * height].copy_from_slice(&src[last..last + width]);
}

impl Decoder for LibavDecoder {
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
        // Frames held by the decoder past a lost picture would pile up.
        if self.arrivals.len() > 64 {
            self.arrivals.clear();
        }
        self.arrivals.insert(packet.pts, packet.arrival);
        // SAFETY: the packet is not reference-counted (buf is null), so
        // libavcodec copies `data` before send_packet returns.
        let rc = unsafe {
            let p = &mut *self.packet;
            p.buf = std::ptr::null_mut();
            p.data = self.annexb.as_mut_ptr();
            p.size = self.annexb.len() as c_int;
            p.pts = packet.pts;
            p.dts = packet.dts;
            p.flags = if packet.keyframe { AV_PKT_FLAG_KEY } else { 0 };
            (self.av.send_packet)(self.ctx, self.packet)
        };
        if rc < 0 && rc != AVERROR_EAGAIN {
            self.arrivals.remove(&packet.pts);
            return Err(self.error(packet.dts, "send", rc));
        }
        self.receive(packet.dts, out)
    }

    fn flush(&mut self, out: &mut dyn FnMut(&mut Frame)) -> Result<(), StageError> {
        if self.drained {
            return Ok(());
        }
        self.drained = true;
        // SAFETY: a null packet enters draining mode.
        let rc = unsafe { (self.av.send_packet)(self.ctx, std::ptr::null()) };
        if rc < 0 && rc != AVERROR_EOF {
            return Err(self.error(-1, "flush", rc));
        }
        let r = self.receive(-1, out);
        self.arrivals.clear();
        r
    }
}

impl Drop for LibavDecoder {
    fn drop(&mut self) {
        // SAFETY: each was allocated in `new` (null ones are no-ops) and is
        // freed once here.
        unsafe {
            (self.av.frame_free)(&mut self.picture);
            (self.av.packet_free)(&mut self.packet);
            (self.av.free_context)(&mut self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::cpu::OpenH264Decoder;
    use crate::transcode::frame::psnr;

    /// Decodes every picture of a High-profile B-frame stream in presentation
    /// order with its own timestamps, the pictures openh264 decodes (to
    /// rounding: openh264 differs from the reference decoder by a few pixel
    /// values on some High-profile pictures), frame threads or not.
    #[test]
    fn decodes_what_openh264_decodes() {
        if let Err(why) = probe() {
            eprintln!("libavcodec not here ({why}): skipped");
            return;
        }
        let (cfg, packets) = crate::transcode::cpu::decoder::tests::capture();
        let mut reference = Vec::new();
        let mut oh = OpenH264Decoder::new(cfg.clone()).unwrap();
        for p in &packets {
            oh.decode(p, &mut |f| reference.push(f.clone())).unwrap();
        }
        oh.flush(&mut |f| reference.push(f.clone())).unwrap();
        for threads in [1, 3] {
            let mut dec = LibavDecoder::new(cfg.clone(), threads).unwrap();
            let mut got = Vec::new();
            for p in &packets {
                dec.decode(p, &mut |f| got.push(f.clone())).unwrap();
            }
            dec.flush(&mut |f| got.push(f.clone())).unwrap();
            assert_eq!(got.len(), packets.len(), "threads {threads}");
            let (mut identical, mut worst) = (0, 99.0f64);
            for (a, b) in got.iter().zip(&reference) {
                assert_eq!((a.pts, a.width, a.height), (b.pts, b.width, b.height));
                identical += usize::from(a.y == b.y && a.u == b.u && a.v == b.v);
                for (x, y) in [(&a.y, &b.y), (&a.u, &b.u), (&a.v, &b.v)] {
                    worst = worst.min(psnr(x, y));
                }
            }
            eprintln!("threads {threads}: {identical} of {} pictures identical to openh264's, worst plane PSNR {worst:.1} dB", got.len());
            assert!(worst >= 60.0, "threads {threads}: worst PSNR {worst:.1} dB");
        }
    }

    /// A trashed slice is an error or a concealed picture, never a crash,
    /// and the decoder goes on with the next pictures.
    #[test]
    fn garbage_is_contained() {
        if probe().is_err() {
            return;
        }
        let (cfg, packets) = crate::transcode::cpu::decoder::tests::capture();
        let mut dec = LibavDecoder::new(cfg, 1).unwrap();
        let mut n = 0;
        for (i, p) in packets.iter().enumerate() {
            let mut p = p.clone();
            if i % 7 == 3 {
                let mut data = p.data.to_vec();
                for b in data.iter_mut().skip(5) {
                    *b = 0xff;
                }
                p.data = bytes::Bytes::from(data);
            }
            let _ = dec.decode(&p, &mut |_| n += 1);
        }
        let _ = dec.flush(&mut |_| n += 1);
        assert!(n > packets.len() / 2, "{n} pictures of {}", packets.len());
    }
}
