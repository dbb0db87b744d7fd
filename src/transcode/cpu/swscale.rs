//! Bilinear scaling with FFmpeg's libswscale, opened at run time like
//! libavcodec (never linked: Debian builds it under the GPL). Measured here
//! (`bench ladder`, 1080p30 to 720p/480p/360p): fast_image_resize's
//! convolution spent ~8.4 ms a picture, its horizontal pass over every
//! source row once per rung the largest cost in a `perf` profile; swscale
//! (what ffmpeg's side of the bench runs) about 2.4x less.
//!
//! The API used takes plain pointers and strides: no struct layout is
//! declared, only the major version checked.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use crate::dylib::{self, Unavailable};
use crate::transcode::{Frame, Scaler, StageError};

/// The major this build has been tested with (FFmpeg 5.1, Debian 12).
pub const SWSCALE_MAJOR: u32 = 6;
const AV_PIX_FMT_YUV420P: c_int = 0;
const SWS_BILINEAR: c_int = 2;

struct Sws {
    version: unsafe extern "C" fn() -> u32,
    get_context: unsafe extern "C" fn(
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        *mut c_void,
        *mut c_void,
        *const f64,
    ) -> *mut c_void,
    scale: unsafe extern "C" fn(
        *mut c_void,
        *const *const u8,
        *const c_int,
        c_int,
        c_int,
        *const *mut u8,
        *const c_int,
    ) -> c_int,
    free_context: unsafe extern "C" fn(*mut c_void),
    _lib: libloading::Library,
}

fn sws() -> Result<&'static Sws, Unavailable> {
    static SWS: OnceLock<Result<Sws, Unavailable>> = OnceLock::new();
    SWS.get_or_init(load).as_ref().map_err(Clone::clone)
}

const NAMES: &[&str] = &["libswscale.so.6"];

fn load() -> Result<Sws, Unavailable> {
    // SAFETY: libswscale has no initialisers with preconditions.
    let (lib, file) = unsafe { dylib::open("libswscale", NAMES, "install Debian's libswscale6") }?;
    let fail = |reason: String| Unavailable::new("libswscale", &[file], reason);
    macro_rules! sym {
        ($name:literal) => {{
            // SAFETY: each symbol's type is its declaration in FFmpeg 5.1's
            // swscale.h, written out in `Sws`; the library lives as long.
            let s = unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                .map_err(|e| fail(format!("{}: {e}", $name)))?;
            *s
        }};
    }
    let sws = Sws {
        version: sym!("swscale_version"),
        get_context: sym!("sws_getContext"),
        scale: sym!("sws_scale"),
        free_context: sym!("sws_freeContext"),
        _lib: lib,
    };
    // SAFETY: a version getter without arguments.
    let major = unsafe { (sws.version)() } >> 16;
    if major != SWSCALE_MAJOR {
        return Err(fail(format!(
            "libswscale {major}: this build knows {SWSCALE_MAJOR} (FFmpeg 5.1) only"
        )));
    }
    Ok(sws)
}

/// Whether this box can scale with libswscale, and which (or why not).
pub fn probe() -> Result<String, Unavailable> {
    let sws = sws()?;
    // SAFETY: a version getter without arguments.
    let v = unsafe { (sws.version)() };
    Ok(format!(
        "libswscale {}.{}.{}",
        v >> 16,
        (v >> 8) & 0xff,
        v & 0xff
    ))
}

/// One rung's scaler: a context per source and target size (made again
/// when either changes).
pub struct SwsScaler {
    sws: &'static Sws,
    ctx: *mut c_void,
    sizes: (u32, u32, u32, u32),
}

// SAFETY: the context is used by one thread at a time (a rung's task holds
// its scaler exclusively); libswscale contexts have no thread affinity.
unsafe impl Send for SwsScaler {}

impl SwsScaler {
    pub fn new() -> Result<Self, StageError> {
        let sws = sws().map_err(|source| StageError::Library {
            stage: "libswscale scaler",
            source,
        })?;
        Ok(SwsScaler {
            sws,
            ctx: std::ptr::null_mut(),
            sizes: (0, 0, 0, 0),
        })
    }
}

impl Drop for SwsScaler {
    fn drop(&mut self) {
        // SAFETY: null or a context made by sws_getContext, freed once.
        unsafe { (self.sws.free_context)(self.ctx) };
    }
}

impl Scaler for SwsScaler {
    fn scale(&mut self, src: &Frame, dst: &mut Frame) -> Result<(), StageError> {
        dst.pts = src.pts;
        dst.arrival = src.arrival;
        let err = |reason: String| StageError::Scale {
            width: dst.width,
            height: dst.height,
            reason,
        };
        let sizes = (src.width, src.height, dst.width, dst.height);
        let (scw, sch) = src.chroma_size();
        let (dcw, dch) = dst.chroma_size();
        let whole = |f: &Frame, cw: u32, ch: u32| {
            f.y.len() >= (f.width * f.height) as usize
                && f.u.len() >= (cw * ch) as usize
                && f.v.len() >= (cw * ch) as usize
        };
        if src.width == 0 || src.height == 0 || !whole(src, scw, sch) || !whole(dst, dcw, dch) {
            return Err(err(format!(
                "{}x{} to {}x{}: planes too small",
                src.width, src.height, dst.width, dst.height
            )));
        }
        if sizes == (src.width, src.height, src.width, src.height) {
            dst.y.copy_from_slice(&src.y);
            dst.u.copy_from_slice(&src.u);
            dst.v.copy_from_slice(&src.v);
            return Ok(());
        }
        if self.ctx.is_null() || self.sizes != sizes {
            // SAFETY: frees the old context (or null), then makes one for
            // these sizes; null means libswscale refused them.
            unsafe {
                (self.sws.free_context)(self.ctx);
                self.ctx = (self.sws.get_context)(
                    src.width as c_int,
                    src.height as c_int,
                    AV_PIX_FMT_YUV420P,
                    dst.width as c_int,
                    dst.height as c_int,
                    AV_PIX_FMT_YUV420P,
                    SWS_BILINEAR,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null(),
                );
            }
            self.sizes = sizes;
            if self.ctx.is_null() {
                return Err(err("sws_getContext refused the sizes".into()));
            }
        }
        let src_planes = [
            src.y.as_ptr(),
            src.u.as_ptr(),
            src.v.as_ptr(),
            std::ptr::null(),
        ];
        let src_strides = [src.width as c_int, scw as c_int, scw as c_int, 0];
        let dst_planes = [
            dst.y.as_mut_ptr(),
            dst.u.as_mut_ptr(),
            dst.v.as_mut_ptr(),
            std::ptr::null_mut(),
        ];
        let dst_strides = [dst.width as c_int, dcw as c_int, dcw as c_int, 0];
        // SAFETY: the planes were checked to hold their tight I420 sizes
        // above; sws_scale reads `src.height` rows and writes the target's.
        let rows = unsafe {
            (self.sws.scale)(
                self.ctx,
                src_planes.as_ptr(),
                src_strides.as_ptr(),
                0,
                src.height as c_int,
                dst_planes.as_ptr(),
                dst_strides.as_ptr(),
            )
        };
        if rows != dst.height as c_int {
            return Err(err(format!("sws_scale wrote {rows} rows")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::cpu::BilinearScaler;
    use crate::transcode::frame::psnr;

    /// A decoded 720p picture scaled to each lower rung by swscale and by
    /// fast_image_resize (both bilinear): the same picture to within what
    /// two bilinear filters differ by (≥ 35 dB), every size.
    #[test]
    fn scales_as_fast_image_resize_does() {
        if let Err(why) = probe() {
            eprintln!("libswscale not here ({why}): skipped");
            return;
        }
        let (cfg, packets) = crate::transcode::cpu::decoder::tests::capture();
        let mut dec = crate::transcode::cpu::OpenH264Decoder::new(cfg).unwrap();
        let mut pictures = Vec::new();
        for p in &packets {
            crate::transcode::Decoder::decode(&mut dec, p, &mut |f| pictures.push(f.clone()))
                .unwrap();
        }
        let src = pictures.last().unwrap();
        for (w, h) in [(854, 480), (640, 360), (1280, 720), (426, 240)] {
            let (mut a, mut b) = (Frame::new(w, h), Frame::new(w, h));
            SwsScaler::new().unwrap().scale(src, &mut a).unwrap();
            BilinearScaler::new().scale(src, &mut b).unwrap();
            for (x, y) in [(&a.y, &b.y), (&a.u, &b.u), (&a.v, &b.v)] {
                let db = psnr(x, y);
                assert!(db >= 35.0, "{w}x{h}: {db:.1} dB");
            }
            assert_eq!(a.pts, src.pts);
        }
    }

    /// Planes too small for their stated size are an error, not a read
    /// past the end.
    #[test]
    fn short_planes_are_an_error() {
        if probe().is_err() {
            return;
        }
        let mut src = Frame::new(64, 64);
        src.y.truncate(100);
        let mut dst = Frame::new(32, 32);
        assert!(SwsScaler::new().unwrap().scale(&src, &mut dst).is_err());
    }
}
