//! NVDEC H.264 decode into device memory: `libnvcuvid.so.1` opened at run time,
//! the parser's callbacks driving the decoder, each displayed picture copied
//! (device to device) into a buffer we own so the decode surface goes back to
//! NVDEC at once. Frames leave as NV12 [`DevicePicture`]s; nothing crosses the bus.

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, c_uint, c_ulonglong, c_void};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde::Serialize;

use super::context::{DeviceBuffer, Gpu, GpuError};
use super::ffi::entry;
use super::ffi::nvcuvid_sys as nv;
use super::scaler::pitch_for;
use crate::dylib::{self, Unavailable};
use crate::media::h264::{avcc_to_annexb, AvcConfig};
use crate::media::Packet;
use crate::transcode::frame::DevicePicture;
use crate::transcode::{Decoder, Frame, StageError};

/// The cuvid entry points the decoder uses.
pub struct NvdecLib {
    _lib: libloading::Library,
    get_caps: unsafe extern "C" fn(*mut nv::CUVIDDECODECAPS) -> nv::CUresult,
    create_decoder: unsafe extern "C" fn(
        *mut nv::CUvideodecoder,
        *mut nv::CUVIDDECODECREATEINFO,
    ) -> nv::CUresult,
    destroy_decoder: unsafe extern "C" fn(nv::CUvideodecoder) -> nv::CUresult,
    decode_picture:
        unsafe extern "C" fn(nv::CUvideodecoder, *mut nv::CUVIDPICPARAMS) -> nv::CUresult,
    map: unsafe extern "C" fn(
        nv::CUvideodecoder,
        c_int,
        *mut c_ulonglong,
        *mut c_uint,
        *mut nv::CUVIDPROCPARAMS,
    ) -> nv::CUresult,
    unmap: unsafe extern "C" fn(nv::CUvideodecoder, c_ulonglong) -> nv::CUresult,
    create_parser:
        unsafe extern "C" fn(*mut nv::CUvideoparser, *mut nv::CUVIDPARSERPARAMS) -> nv::CUresult,
    parse: unsafe extern "C" fn(nv::CUvideoparser, *mut nv::CUVIDSOURCEDATAPACKET) -> nv::CUresult,
    destroy_parser: unsafe extern "C" fn(nv::CUvideoparser) -> nv::CUresult,
}

const NAMES: &[&str] = &["libnvcuvid.so.1", "libnvcuvid.so"];

impl NvdecLib {
    fn load() -> Result<NvdecLib, Unavailable> {
        // SAFETY: the NVIDIA driver libraries run no initialisers that depend on
        // the caller's state; opening one is how the driver expects to be found.
        let (lib, file) = unsafe { dylib::open("NVDEC", NAMES, "") }?;
        Ok(NvdecLib {
            get_caps: entry(&lib, "NVDEC", file, "cuvidGetDecoderCaps")?,
            create_decoder: entry(&lib, "NVDEC", file, "cuvidCreateDecoder")?,
            destroy_decoder: entry(&lib, "NVDEC", file, "cuvidDestroyDecoder")?,
            decode_picture: entry(&lib, "NVDEC", file, "cuvidDecodePicture")?,
            map: entry(&lib, "NVDEC", file, "cuvidMapVideoFrame64")?,
            unmap: entry(&lib, "NVDEC", file, "cuvidUnmapVideoFrame64")?,
            create_parser: entry(&lib, "NVDEC", file, "cuvidCreateVideoParser")?,
            parse: entry(&lib, "NVDEC", file, "cuvidParseVideoData")?,
            destroy_parser: entry(&lib, "NVDEC", file, "cuvidDestroyVideoParser")?,
            _lib: lib,
        })
    }
}

/// The process's NVDEC library, loaded once; the error says why it is unusable.
pub fn lib() -> Result<&'static NvdecLib, Unavailable> {
    static LIB: OnceLock<Result<NvdecLib, Unavailable>> = OnceLock::new();
    LIB.get_or_init(NvdecLib::load)
        .as_ref()
        .map_err(Clone::clone)
}

/// A CUresult from NVDEC, named by the driver (`cuGetErrorName`), so codes
/// such as 400 or 700 read as their names too.
fn cu_name(code: nv::CUresult) -> String {
    // SAFETY: CUresult is a C enum of u32 codes; the driver names any value
    // (and says "unknown" for one it does not know).
    let name = super::cuda::describe(unsafe {
        std::mem::transmute::<u32, cudarc::driver::sys::CUresult>(code as u32)
    });
    format!("{name} (CUresult {code})")
}

fn check(call: &'static str, code: nv::CUresult) -> Result<(), GpuError> {
    if code == nv::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(GpuError::Nvdec {
            call,
            reason: cu_name(code),
        })
    }
}

/// `cuvidGetDecoderCaps` for one codec at 8-bit 4:2:0.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeCaps {
    pub codec: &'static str,
    pub supported: bool,
    pub engines: u8,
    pub max_width: u32,
    pub max_height: u32,
    pub min_width: u16,
    pub min_height: u16,
}

/// NVDEC capabilities of the current context's device for the codecs we take.
pub fn caps(gpu: &Gpu) -> Result<Vec<DecodeCaps>, GpuError> {
    let lib = lib()?;
    gpu.bind()?;
    let mut out = Vec::new();
    for (codec, name) in [
        (nv::cudaVideoCodec_H264, "h264"),
        (nv::cudaVideoCodec_HEVC, "hevc"),
        (nv::cudaVideoCodec_AV1, "av1"),
    ] {
        // SAFETY: CUVIDDECODECAPS is plain C data; zero is its documented initial state.
        let mut c: nv::CUVIDDECODECAPS = unsafe { std::mem::zeroed() };
        c.eCodecType = codec;
        c.eChromaFormat = nv::cudaVideoChromaFormat_420;
        c.nBitDepthMinus8 = 0;
        // SAFETY: a valid, initialised struct; the device's context is current.
        check("cuvidGetDecoderCaps", unsafe { (lib.get_caps)(&mut c) })?;
        out.push(DecodeCaps {
            codec: name,
            supported: c.bIsSupported != 0,
            engines: c.nNumNVDECs,
            max_width: c.nMaxWidth,
            max_height: c.nMaxHeight,
            min_width: c.nMinWidth,
            min_height: c.nMinHeight,
        });
    }
    Ok(out)
}

struct Ready {
    buf: Arc<DeviceBuffer>,
    pts: i64,
    width: u32,
    height: u32,
    pitch: usize,
}

/// What the parser callbacks touch: boxed so its address is stable.
struct Session {
    lib: &'static NvdecLib,
    gpu: Arc<Gpu>,
    /// This decoder's own stream (post-processing and our copies).
    stream: Arc<cudarc::driver::CudaStream>,
    decoder: nv::CUvideodecoder,
    /// Display size and our buffers' pitch.
    width: u32,
    height: u32,
    pitch: usize,
    /// Pictures displayed during the last parse call, in display order, each
    /// with the geometry it was copied at (a size change may come between a
    /// picture's display and its emit).
    ready: VecDeque<Ready>,
    /// Buffers free for reuse (no Frame holds them any more).
    pool: Vec<Arc<DeviceBuffer>>,
    /// The first failure inside a callback (the parser only sees 0/1).
    error: Option<GpuError>,
}

impl Session {
    fn buffer(&mut self) -> Result<Arc<DeviceBuffer>, GpuError> {
        if let Some(i) = self.pool.iter().position(|b| Arc::strong_count(b) == 1) {
            return Ok(self.pool.swap_remove(i));
        }
        let bytes = self.pitch * self.height as usize * 3 / 2;
        Ok(Arc::new(self.gpu.alloc(bytes)?))
    }

    fn sequence(&mut self, format: &nv::CUVIDEOFORMAT) -> Result<c_int, GpuError> {
        let area = format.display_area;
        let (w, h) = (
            (area.right - area.left) as u32,
            (area.bottom - area.top) as u32,
        );
        let surfaces = (format.min_num_decode_surfaces as u32).max(4) + 4;
        if !self.decoder.is_null() {
            if (w, h) == (self.width, self.height) {
                // Keeping the decoder: 1 keeps the parser's surface count (the
                // decoder's). A larger count would let the parser hand out
                // picture indices the decoder has no surface for.
                return Ok(1);
            }
            // SAFETY: the decoder was created by us and is destroyed once.
            check("cuvidDestroyDecoder", unsafe {
                (self.lib.destroy_decoder)(self.decoder)
            })?;
            self.decoder = std::ptr::null_mut();
            self.pool.clear();
        }
        if format.codec != nv::cudaVideoCodec_H264
            || format.chroma_format != nv::cudaVideoChromaFormat_420
            || format.bit_depth_luma_minus8 != 0
        {
            return Err(GpuError::Unsupported(format!(
                "NVDEC path takes 8-bit 4:2:0 H.264 (codec {}, chroma {}, depth {})",
                format.codec,
                format.chroma_format,
                8 + format.bit_depth_luma_minus8 as u32
            )));
        }
        // SAFETY: plain C data; zero is the documented default for unused fields.
        let mut info: nv::CUVIDDECODECREATEINFO = unsafe { std::mem::zeroed() };
        info.ulWidth = format.coded_width as _;
        info.ulHeight = format.coded_height as _;
        info.ulMaxWidth = format.coded_width as _;
        info.ulMaxHeight = format.coded_height as _;
        info.ulNumDecodeSurfaces = surfaces as _;
        info.CodecType = format.codec;
        info.ChromaFormat = format.chroma_format;
        info.ulCreationFlags = nv::cudaVideoCreate_PreferCUVID as _;
        info.bitDepthMinus8 = 0;
        info.display_area.left = area.left as i16;
        info.display_area.top = area.top as i16;
        info.display_area.right = area.right as i16;
        info.display_area.bottom = area.bottom as i16;
        info.OutputFormat = nv::cudaVideoSurfaceFormat_NV12;
        info.DeinterlaceMode = if format.progressive_sequence != 0 {
            nv::cudaVideoDeinterlaceMode_Weave
        } else {
            nv::cudaVideoDeinterlaceMode_Adaptive
        };
        info.ulTargetWidth = w as _;
        info.ulTargetHeight = h as _;
        info.ulNumOutputSurfaces = 2;
        self.gpu.bind()?;
        // SAFETY: `info` is fully initialised; the context is current.
        check("cuvidCreateDecoder", unsafe {
            (self.lib.create_decoder)(&mut self.decoder, &mut info)
        })?;
        self.width = w;
        self.height = h;
        self.pitch = pitch_for(w);
        Ok(surfaces as c_int)
    }

    fn display(&mut self, info: &nv::CUVIDPARSERDISPINFO) -> Result<(), GpuError> {
        // SAFETY: plain C data.
        let mut proc_params: nv::CUVIDPROCPARAMS = unsafe { std::mem::zeroed() };
        proc_params.progressive_frame = info.progressive_frame;
        proc_params.top_field_first = info.top_field_first;
        // The whole frame (first field), and a lone field when the parser says
        // so (repeat_first_field < 0), as NVIDIA's samples set them.
        proc_params.second_field = 0;
        proc_params.unpaired_field = (info.repeat_first_field < 0) as c_int;
        proc_params.output_stream = self.stream.cu_stream() as nv::CUstream;
        let (mut surface, mut pitch): (c_ulonglong, c_uint) = (0, 0);
        // SAFETY: a picture index the parser just handed us; out-pointers to locals.
        check("cuvidMapVideoFrame64", unsafe {
            (self.lib.map)(
                self.decoder,
                info.picture_index,
                &mut surface,
                &mut pitch,
                &mut proc_params,
            )
        })?;
        let copied = self.buffer().and_then(|buf| {
            let (rows, pitch) = (self.height as usize, pitch as usize);
            // The mapped surface holds luma rows, then the UV rows at pitch × height.
            self.gpu.copy_2d_dtod(
                &self.stream,
                surface,
                pitch,
                buf.ptr,
                self.pitch,
                self.width as usize,
                rows,
            )?;
            self.gpu.copy_2d_dtod(
                &self.stream,
                surface + (pitch * rows) as u64,
                pitch,
                buf.ptr + (self.pitch * rows) as u64,
                self.pitch,
                self.width as usize,
                rows.div_ceil(2),
            )?;
            self.gpu.wait(&self.stream)?;
            Ok(buf)
        });
        // SAFETY: unmapping the surface mapped above, once.
        let unmapped = check("cuvidUnmapVideoFrame64", unsafe {
            (self.lib.unmap)(self.decoder, surface)
        });
        let buf = copied?;
        unmapped?;
        self.ready.push_back(Ready {
            buf,
            pts: info.timestamp,
            width: self.width,
            height: self.height,
            pitch: self.pitch,
        });
        Ok(())
    }
}

unsafe extern "C" fn on_sequence(user: *mut c_void, format: *mut nv::CUVIDEOFORMAT) -> c_int {
    // SAFETY: `user` is the Box<Session> the parser was created with, alive
    // while the parser is; `format` is valid for the call.
    let (s, format) = unsafe { (&mut *(user as *mut Session), &*format) };
    match s.sequence(format) {
        Ok(n) => n,
        Err(e) => {
            s.error.get_or_insert(e);
            0
        }
    }
}

unsafe extern "C" fn on_decode(user: *mut c_void, pic: *mut nv::CUVIDPICPARAMS) -> c_int {
    // SAFETY: as in `on_sequence`.
    let s = unsafe { &mut *(user as *mut Session) };
    if s.decoder.is_null() {
        return 0;
    }
    // SAFETY: the parser's own picture parameters for our decoder.
    match check("cuvidDecodePicture", unsafe {
        (s.lib.decode_picture)(s.decoder, pic)
    }) {
        Ok(()) => 1,
        Err(e) => {
            s.error.get_or_insert(e);
            0
        }
    }
}

unsafe extern "C" fn on_display(user: *mut c_void, info: *mut nv::CUVIDPARSERDISPINFO) -> c_int {
    // SAFETY: as in `on_sequence`; `info` is null at end of stream.
    let s = unsafe { &mut *(user as *mut Session) };
    let Some(info) = (unsafe { info.as_ref() }) else {
        return 1;
    };
    match s.display(info) {
        Ok(()) => 1,
        Err(e) => {
            s.error.get_or_insert(e);
            0
        }
    }
}

pub struct NvdecDecoder {
    /// Owned (from `Box::into_raw`, freed in Drop). A raw pointer, not a Box:
    /// the parser's callbacks reach the session through `pUserData` while we
    /// hold it, and a Box would claim unique access the callbacks break.
    session: std::ptr::NonNull<Session>,
    parser: nv::CUvideoparser,
    config: AvcConfig,
    annexb: Vec<u8>,
    arrivals: HashMap<i64, Instant>,
    frame: Frame,
}

// SAFETY: the parser and decoder handles are used only through `&mut self`,
// from one thread at a time; CUDA handles are not tied to a thread.
unsafe impl Send for NvdecDecoder {}

impl NvdecDecoder {
    pub fn new(gpu: Arc<Gpu>, config: AvcConfig) -> Result<Self, GpuError> {
        let lib = lib()?;
        gpu.bind()?;
        let stream = gpu.new_stream()?;
        let session = Box::new(Session {
            lib,
            gpu,
            stream,
            decoder: std::ptr::null_mut(),
            width: config.width,
            height: config.height,
            pitch: pitch_for(config.width),
            ready: VecDeque::new(),
            pool: Vec::new(),
            error: None,
        });
        let session = std::ptr::NonNull::from(Box::leak(session));
        let parser = match create_parser(lib, session) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: leaked above, never handed out: no parser was created.
                drop(unsafe { Box::from_raw(session.as_ptr()) });
                return Err(e);
            }
        };
        Ok(NvdecDecoder {
            frame: Frame::new(0, 0),
            session,
            parser,
            config,
            annexb: Vec::new(),
            arrivals: HashMap::new(),
        })
    }
}

/// A parser whose callbacks reach `session` (which must outlive it).
fn create_parser(
    lib: &'static NvdecLib,
    session: std::ptr::NonNull<Session>,
) -> Result<nv::CUvideoparser, GpuError> {
    // SAFETY: plain C data.
    let mut params: nv::CUVIDPARSERPARAMS = unsafe { std::mem::zeroed() };
    params.CodecType = nv::cudaVideoCodec_H264;
    params.ulMaxNumDecodeSurfaces = 1;
    params.ulClockRate = crate::media::TIMESCALE as c_uint;
    // Display as soon as a picture is ready: lowest latency.
    params.ulMaxDisplayDelay = 0;
    params.pUserData = session.as_ptr() as *mut c_void;
    params.pfnSequenceCallback = Some(on_sequence);
    params.pfnDecodePicture = Some(on_decode);
    params.pfnDisplayPicture = Some(on_display);
    let mut parser: nv::CUvideoparser = std::ptr::null_mut();
    // SAFETY: `params` is initialised; `session` outlives the parser (the
    // parser is destroyed before the session is freed, in Drop).
    check("cuvidCreateVideoParser", unsafe {
        (lib.create_parser)(&mut parser, &mut params)
    })?;
    Ok(parser)
}

impl NvdecDecoder {
    /// Destroys the parser (no callback runs after); `decode` makes a new one
    /// at the next keyframe.
    fn drop_parser(&mut self) {
        let lib = self.session().lib;
        let parser = std::mem::replace(&mut self.parser, std::ptr::null_mut());
        if !parser.is_null() {
            let _ = self.session().gpu.bind();
            // SAFETY: created by us, destroyed once (the field is now null).
            unsafe { (lib.destroy_parser)(parser) };
        }
    }

    /// The session, between parse calls (no callback runs while this is used).
    fn session(&mut self) -> &mut Session {
        // SAFETY: allocated in `new`, freed only in Drop; the parser's callbacks
        // use it only inside a parse call, when no reference from here is live.
        unsafe { self.session.as_mut() }
    }

    fn feed(&mut self, data: &[u8], pts: Option<i64>, end: bool) -> Result<(), GpuError> {
        // SAFETY: plain C data.
        let mut pkt: nv::CUVIDSOURCEDATAPACKET = unsafe { std::mem::zeroed() };
        pkt.payload = data.as_ptr();
        pkt.payload_size = data.len() as _;
        if let Some(pts) = pts {
            pkt.flags |= nv::CUVID_PKT_TIMESTAMP as nv::tcu_ulong;
            pkt.timestamp = pts;
        }
        if end {
            pkt.flags |= nv::CUVID_PKT_ENDOFSTREAM as nv::tcu_ulong;
        } else {
            // Each packet is one whole access unit (one FLV video tag): saying
            // so lets the parser decode and display it now, not when the next
            // packet's start code arrives (a frame of latency otherwise).
            pkt.flags |= nv::CUVID_PKT_ENDOFPICTURE as nv::tcu_ulong;
        }
        self.session().gpu.bind()?;
        let parse = self.session().lib.parse;
        // SAFETY: `pkt` points at `data`, alive for the call; callbacks run
        // inside it on this thread.
        let r = unsafe { parse(self.parser, &mut pkt) };
        if let Some(e) = self.session().error.take() {
            return Err(e);
        }
        check("cuvidParseVideoData", r)
    }

    fn emit(&mut self, out: &mut dyn FnMut(&mut Frame)) {
        while let Some(Ready {
            buf,
            pts,
            width: w,
            height: h,
            pitch,
        }) = self.session().ready.pop_front()
        {
            if (self.frame.width, self.frame.height) != (w, h) {
                // Host planes are not filled on this path; keep them empty.
                self.frame.width = w;
                self.frame.height = h;
            }
            self.frame.pts = pts;
            self.frame.arrival = self.arrivals.remove(&pts).unwrap_or_else(Instant::now);
            self.frame.device = Some(DevicePicture {
                luma: buf.ptr,
                chroma: buf.ptr + (pitch * h as usize) as u64,
                pitch,
                owner: buf.clone(),
            });
            out(&mut self.frame);
            self.frame.device = None;
            // Back to the pool only if it still fits the current geometry.
            let session = self.session();
            if buf.bytes == session.pitch * session.height as usize * 3 / 2 {
                session.pool.push(buf);
            }
        }
    }
}

impl Decoder for NvdecDecoder {
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
        self.arrivals.insert(packet.pts, packet.arrival);
        if self.parser.is_null() {
            if !packet.keyframe {
                // Skipped up to the keyframe the new parser starts from (the
                // error that got here was counted once).
                return Ok(());
            }
            let (lib, session) = (self.session().lib, self.session);
            self.parser = create_parser(lib, session).map_err(|e| StageError::Decode {
                dts: packet.dts,
                reason: e.to_string(),
            })?;
        }
        let data = std::mem::take(&mut self.annexb);
        let fed = self.feed(&data, Some(packet.pts), false);
        self.annexb = data;
        if fed.is_err() && self.session().decoder.is_null() {
            // The sequence callback failed (creating the decoder: out of
            // memory, say). The parser calls it only when the format changes,
            // so with this parser the stream would never decode again: a
            // fresh one starts at the next keyframe and asks again.
            self.drop_parser();
        }
        self.emit(out);
        if self.arrivals.len() > 64 {
            // Pictures NVDEC dropped never come out: forget their arrival.
            let newest = packet.pts;
            self.arrivals
                .retain(|pts, _| newest - pts < 10 * crate::media::TIMESCALE as i64);
        }
        fed.map_err(|e| StageError::Decode {
            dts: packet.dts,
            reason: e.to_string(),
        })
    }

    fn flush(&mut self, out: &mut dyn FnMut(&mut Frame)) -> Result<(), StageError> {
        if self.parser.is_null() {
            return Ok(());
        }
        let fed = self.feed(&[], None, true);
        self.emit(out);
        fed.map_err(|e| StageError::Decode {
            dts: -1,
            reason: format!("flush: {e}"),
        })
    }
}

impl Drop for NvdecDecoder {
    fn drop(&mut self) {
        let _ = self.session().gpu.bind();
        let (lib, parser) = (self.session().lib, self.parser);
        // SAFETY: handles created by us, destroyed once, parser before decoder
        // (no callback runs after the parser is gone), then the session itself.
        unsafe {
            if !parser.is_null() {
                (lib.destroy_parser)(parser);
            }
            let decoder = self.session().decoder;
            if !decoder.is_null() {
                (lib.destroy_decoder)(decoder);
            }
            drop(Box::from_raw(self.session.as_ptr()));
        }
    }
}
