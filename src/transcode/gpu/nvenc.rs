//! NVENC H.264 encode from device memory: `libnvidia-encode.so.1` opened at
//! run time, the API's function table filled by `NvEncodeAPICreateInstance`,
//! the scaler's NV12 buffers registered once as CUDA resources and mapped per
//! picture. Synchronous mode, no B-frames, infinite GOP: IDRs come only when
//! forced, at the same source pts on every rung.
//!
//! Hopper data-centre GPUs (H100/H200) have NVDEC but no NVENC: opening a
//! session fails there, `probe` says so and the ladder encodes on the CPU.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::context::{Gpu, GpuError};
use super::ffi;
use super::ffi::nvenc_sys as ne;
use crate::dylib::{self, Unavailable};
use crate::transcode::ladder::Rung;
use crate::transcode::{EncodedFrame, Encoder, Frame, StageError};

/// NVENC sessions open in this process (consumer cards cap them; the
/// `ladderd_gpu_nvenc_sessions` gauge).
pub static SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// Rungs that got no NVENC session and encode on the CPU instead
/// (`ladderd_gpu_nvenc_fallback_rungs_total`).
pub static CPU_FALLBACK_RUNGS: AtomicUsize = AtomicUsize::new(0);

pub struct NvencLib {
    _lib: libloading::Library,
    api: ne::NV_ENCODE_API_FUNCTION_LIST,
    /// `NvEncodeAPIGetMaxSupportedVersion`: (major, minor) the driver offers.
    pub driver_api: (u32, u32),
}

// SAFETY: the function table is immutable after load; NVENC entry points are
// thread-safe for distinct encoder sessions.
unsafe impl Send for NvencLib {}
unsafe impl Sync for NvencLib {}

impl NvencLib {
    fn load() -> Result<NvencLib, Unavailable> {
        // SAFETY: the NVIDIA driver libraries run no initialisers that depend on
        // the caller's state; opening one is how the driver expects to be found.
        let (lib, file) = unsafe { dylib::open("NVENC", NAMES, "") }?;
        let fail = |reason: String| Unavailable::new("NVENC", &[file], reason);
        type MaxVersion = unsafe extern "C" fn(*mut u32) -> ne::NVENCSTATUS;
        type Create = unsafe extern "C" fn(*mut ne::NV_ENCODE_API_FUNCTION_LIST) -> ne::NVENCSTATUS;
        let max: MaxVersion = ffi::entry(&lib, "NVENC", file, "NvEncodeAPIGetMaxSupportedVersion")?;
        let create: Create = ffi::entry(&lib, "NVENC", file, "NvEncodeAPICreateInstance")?;
        let mut v = 0u32;
        // SAFETY: out-pointer to a local.
        let s = unsafe { max(&mut v) };
        if s != ne::NV_ENC_SUCCESS {
            return Err(fail(format!(
                "NvEncodeAPIGetMaxSupportedVersion: {}",
                ffi::nvenc_status_name(s)
            )));
        }
        let driver_api = (v >> 4, v & 0xf);
        let ours = (ne::NVENCAPI_MAJOR_VERSION, ne::NVENCAPI_MINOR_VERSION);
        if driver_api < ours {
            return Err(fail(format!(
                "driver offers NVENC API {}.{}, ladderd needs {}.{} (update the NVIDIA driver)",
                driver_api.0, driver_api.1, ours.0, ours.1
            )));
        }
        // SAFETY: plain C data; version set as the API requires.
        let mut api: ne::NV_ENCODE_API_FUNCTION_LIST = unsafe { std::mem::zeroed() };
        api.version = ffi::NV_ENCODE_API_FUNCTION_LIST_VER;
        // SAFETY: `api` is a zeroed table with its version set.
        let s = unsafe { create(&mut api) };
        if s != ne::NV_ENC_SUCCESS {
            return Err(fail(format!(
                "NvEncodeAPICreateInstance: {}",
                ffi::nvenc_status_name(s)
            )));
        }
        Ok(NvencLib {
            _lib: lib,
            api,
            driver_api,
        })
    }
}

const NAMES: &[&str] = &["libnvidia-encode.so.1", "libnvidia-encode.so"];

pub fn lib() -> Result<&'static NvencLib, Unavailable> {
    static LIB: OnceLock<Result<NvencLib, Unavailable>> = OnceLock::new();
    LIB.get_or_init(NvencLib::load)
        .as_ref()
        .map_err(Clone::clone)
}

fn entry<T>(f: Option<T>, name: &str) -> Result<T, GpuError> {
    f.ok_or_else(|| GpuError::Nvenc {
        call: name.into(),
        reason: "missing from the driver's function table".into(),
    })
}

fn check(call: &str, s: ne::NVENCSTATUS) -> Result<(), GpuError> {
    if s == ne::NV_ENC_SUCCESS {
        Ok(())
    } else {
        Err(GpuError::Nvenc {
            call: call.into(),
            reason: ffi::nvenc_status_name(s).into(),
        })
    }
}

/// An open NVENC session on a CUDA context; destroyed on drop.
struct Session {
    lib: &'static NvencLib,
    handle: *mut c_void,
}

impl Session {
    fn open(gpu: &Gpu) -> Result<Session, GpuError> {
        let lib = lib()?;
        gpu.bind()?;
        // SAFETY: plain C data.
        let mut p: ne::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS = unsafe { std::mem::zeroed() };
        p.version = ffi::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER;
        p.deviceType = ne::NV_ENC_DEVICE_TYPE_CUDA;
        p.device = gpu.cu_ctx() as *mut c_void;
        p.apiVersion = ne::NVENCAPI_VERSION;
        let mut handle: *mut c_void = std::ptr::null_mut();
        let open = entry(lib.api.nvEncOpenEncodeSessionEx, "nvEncOpenEncodeSessionEx")?;
        // SAFETY: initialised params; the CUDA context is live and current.
        let s = unsafe { open(&mut p, &mut handle) };
        if s != ne::NV_ENC_SUCCESS {
            let open_now = SESSIONS.load(Ordering::Relaxed);
            let hint = match s {
                ne::NV_ENC_ERR_NO_ENCODE_DEVICE | ne::NV_ENC_ERR_UNSUPPORTED_DEVICE => {
                    format!(
                        " ({} has no NVENC: data-centre Hopper GPUs lack it; in a container, \
                         the `video` driver capability is also needed)",
                        gpu.name
                    )
                }
                ne::NV_ENC_ERR_OUT_OF_MEMORY | ne::NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY => {
                    format!(" ({open_now} sessions already open: the card's session cap?)")
                }
                _ => String::new(),
            };
            return Err(GpuError::Nvenc {
                call: "nvEncOpenEncodeSessionEx".into(),
                reason: format!("{}{hint}", ffi::nvenc_status_name(s)),
            });
        }
        SESSIONS.fetch_add(1, Ordering::Relaxed);
        Ok(Session { lib, handle })
    }

    fn codecs(&self) -> Result<Vec<String>, GpuError> {
        let count_f = entry(
            self.lib.api.nvEncGetEncodeGUIDCount,
            "nvEncGetEncodeGUIDCount",
        )?;
        let get_f = entry(self.lib.api.nvEncGetEncodeGUIDs, "nvEncGetEncodeGUIDs")?;
        let mut n = 0u32;
        // SAFETY: open session; out-pointer to a local.
        check("nvEncGetEncodeGUIDCount", unsafe {
            count_f(self.handle, &mut n)
        })?;
        // SAFETY: GUID is plain C data.
        let mut guids = vec![unsafe { std::mem::zeroed::<ne::GUID>() }; n as usize];
        let mut got = 0u32;
        // SAFETY: the array holds `n` GUIDs as the call is told.
        check("nvEncGetEncodeGUIDs", unsafe {
            get_f(self.handle, guids.as_mut_ptr(), n, &mut got)
        })?;
        guids.truncate(got as usize);
        Ok(guids.iter().map(ffi::codec_name).collect())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(destroy) = self.lib.api.nvEncDestroyEncoder {
            // SAFETY: our session, destroyed once.
            unsafe { destroy(self.handle) };
        }
        SESSIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The codecs NVENC offers on this GPU, or why it offers none.
pub fn codecs(gpu: &Gpu) -> Result<Vec<String>, GpuError> {
    Session::open(gpu)?.codecs()
}

struct Registration {
    ptr: u64,
    pitch: usize,
    resource: ne::NV_ENC_REGISTERED_PTR,
    _owner: Arc<dyn std::any::Any + Send + Sync>,
}

pub struct NvencEncoder {
    session: Session,
    gpu: Arc<Gpu>,
    rung: String,
    width: u32,
    height: u32,
    bitstream: ne::NV_ENC_OUTPUT_PTR,
    /// (device pointer, pitch) → registered resource, registered once. Each
    /// holds the picture's owner, so the allocation outlives its registration
    /// whatever the drop order (the stand-in driver fails a cuMemFree of a
    /// registered buffer).
    registered: Vec<Registration>,
    /// A picture was encoded: Drop must flush with EOS before destroying.
    encoded_any: bool,
    frame_idx: u32,
}

// SAFETY: the session and its resources are used only via `&mut self`.
unsafe impl Send for NvencEncoder {}

impl NvencEncoder {
    pub fn new(gpu: Arc<Gpu>, rung: &Rung, _segment_secs: f64) -> Result<Self, GpuError> {
        let session = Session::open(&gpu)?;
        let api = &session.lib.api;
        let preset_f = entry(
            api.nvEncGetEncodePresetConfigEx,
            "nvEncGetEncodePresetConfigEx",
        )?;
        // SAFETY: plain C data; versions set as the API requires.
        let mut preset: ne::NV_ENC_PRESET_CONFIG = unsafe { std::mem::zeroed() };
        preset.version = ffi::NV_ENC_PRESET_CONFIG_VER;
        preset.presetCfg.version = ffi::NV_ENC_CONFIG_VER;
        let tuning = ne::NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY;
        // SAFETY: open session, initialised out-struct.
        check("nvEncGetEncodePresetConfigEx", unsafe {
            preset_f(
                session.handle,
                ffi::NV_ENC_CODEC_H264_GUID,
                ffi::NV_ENC_PRESET_P1_GUID,
                tuning,
                &mut preset,
            )
        })?;
        let mut config = preset.presetCfg;
        config.version = ffi::NV_ENC_CONFIG_VER;
        config.profileGUID = ffi::NV_ENC_H264_PROFILE_HIGH_GUID;
        config.gopLength = ne::NVENC_INFINITE_GOPLENGTH;
        config.frameIntervalP = 1;
        config.rcParams.version = ffi::NV_ENC_RC_PARAMS_VER;
        config.rcParams.rateControlMode = ne::NV_ENC_PARAMS_RC_CBR;
        config.rcParams.averageBitRate = rung.bitrate_bps;
        config.rcParams.maxBitRate = rung.bitrate_bps;
        // VBV ≈ 1 s, as on the CPU path.
        config.rcParams.vbvBufferSize = rung.bitrate_bps;
        config.rcParams.vbvInitialDelay = rung.bitrate_bps;
        // SAFETY: H.264 is the codec this config was fetched for, so the union holds h264Config.
        unsafe {
            let h264 = &mut config.encodeCodecConfig.h264Config;
            h264.idrPeriod = ne::NVENC_INFINITE_GOPLENGTH;
            h264.set_repeatSPSPPS(1);
        }
        // SAFETY: plain C data.
        let mut init: ne::NV_ENC_INITIALIZE_PARAMS = unsafe { std::mem::zeroed() };
        init.version = ffi::NV_ENC_INITIALIZE_PARAMS_VER;
        init.encodeGUID = ffi::NV_ENC_CODEC_H264_GUID;
        init.presetGUID = ffi::NV_ENC_PRESET_P1_GUID;
        init.tuningInfo = tuning;
        init.encodeWidth = rung.width;
        init.encodeHeight = rung.height;
        init.darWidth = rung.width;
        init.darHeight = rung.height;
        init.frameRateNum = (rung.fps * 1000.0).round() as u32;
        init.frameRateDen = 1000;
        init.enableEncodeAsync = 0;
        init.enablePTD = 1;
        init.encodeConfig = &mut config;
        init.maxEncodeWidth = rung.width;
        init.maxEncodeHeight = rung.height;
        init.bufferFormat = ne::NV_ENC_BUFFER_FORMAT_NV12;
        let init_f = entry(api.nvEncInitializeEncoder, "nvEncInitializeEncoder")?;
        // SAFETY: initialised params pointing at `config`, alive for the call.
        check("nvEncInitializeEncoder", unsafe {
            init_f(session.handle, &mut init)
        })?;
        // SAFETY: plain C data.
        let mut bs: ne::NV_ENC_CREATE_BITSTREAM_BUFFER = unsafe { std::mem::zeroed() };
        bs.version = ffi::NV_ENC_CREATE_BITSTREAM_BUFFER_VER;
        let bs_f = entry(api.nvEncCreateBitstreamBuffer, "nvEncCreateBitstreamBuffer")?;
        // SAFETY: initialised session and struct.
        check("nvEncCreateBitstreamBuffer", unsafe {
            bs_f(session.handle, &mut bs)
        })?;
        Ok(NvencEncoder {
            session,
            gpu,
            rung: rung.name.clone(),
            width: rung.width,
            height: rung.height,
            bitstream: bs.bitstreamBuffer,
            registered: Vec::new(),
            encoded_any: false,
            frame_idx: 0,
        })
    }

    fn resource(
        &mut self,
        ptr: u64,
        pitch: usize,
        owner: &Arc<dyn std::any::Any + Send + Sync>,
    ) -> Result<ne::NV_ENC_REGISTERED_PTR, GpuError> {
        if let Some(r) = self
            .registered
            .iter()
            .find(|r| r.ptr == ptr && r.pitch == pitch)
        {
            return Ok(r.resource);
        }
        // SAFETY: plain C data.
        let mut reg: ne::NV_ENC_REGISTER_RESOURCE = unsafe { std::mem::zeroed() };
        reg.version = ffi::NV_ENC_REGISTER_RESOURCE_VER;
        reg.resourceType = ne::NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR;
        reg.width = self.width;
        reg.height = self.height;
        reg.pitch = pitch as u32;
        reg.resourceToRegister = ptr as *mut c_void;
        reg.bufferFormat = ne::NV_ENC_BUFFER_FORMAT_NV12;
        reg.bufferUsage = ne::NV_ENC_INPUT_IMAGE;
        let f = entry(
            self.session.lib.api.nvEncRegisterResource,
            "nvEncRegisterResource",
        )?;
        // SAFETY: `ptr` is a live NV12 allocation of pitch × height × 3/2 bytes
        // (the scaler's rung buffer, kept alive by the frame's owner Arc).
        check("nvEncRegisterResource", unsafe {
            f(self.session.handle, &mut reg)
        })?;
        self.registered.push(Registration {
            ptr,
            pitch,
            resource: reg.registeredResource,
            _owner: owner.clone(),
        });
        Ok(reg.registeredResource)
    }

    fn encode_device(
        &mut self,
        frame: &Frame,
        force_idr: bool,
    ) -> Result<Option<Vec<u8>>, GpuError> {
        let Some(pic) = &frame.device else {
            return Err(GpuError::Unsupported(
                "NVENC takes pictures in device memory (GPU scaler output)".into(),
            ));
        };
        self.gpu.bind()?;
        let registered = self.resource(pic.luma, pic.pitch, &pic.owner)?;
        let api = &self.session.lib.api;
        // SAFETY: plain C data.
        let mut map: ne::NV_ENC_MAP_INPUT_RESOURCE = unsafe { std::mem::zeroed() };
        map.version = ffi::NV_ENC_MAP_INPUT_RESOURCE_VER;
        map.registeredResource = registered;
        let map_f = entry(api.nvEncMapInputResource, "nvEncMapInputResource")?;
        let unmap_f = entry(api.nvEncUnmapInputResource, "nvEncUnmapInputResource")?;
        // SAFETY: a resource registered on this session.
        check("nvEncMapInputResource", unsafe {
            map_f(self.session.handle, &mut map)
        })?;
        let result = self.encode_mapped(map.mappedResource, pic.pitch, frame.pts, force_idr);
        // SAFETY: unmapping what was mapped above, once.
        let unmapped = check("nvEncUnmapInputResource", unsafe {
            unmap_f(self.session.handle, map.mappedResource)
        });
        let out = result?;
        unmapped?;
        Ok(out)
    }

    fn encode_mapped(
        &mut self,
        input: ne::NV_ENC_INPUT_PTR,
        pitch: usize,
        pts: i64,
        force_idr: bool,
    ) -> Result<Option<Vec<u8>>, GpuError> {
        let api = &self.session.lib.api;
        // SAFETY: plain C data.
        let mut pic: ne::NV_ENC_PIC_PARAMS = unsafe { std::mem::zeroed() };
        pic.version = ffi::NV_ENC_PIC_PARAMS_VER;
        pic.inputWidth = self.width;
        pic.inputHeight = self.height;
        pic.inputPitch = pitch as u32;
        pic.inputBuffer = input;
        pic.outputBitstream = self.bitstream;
        pic.bufferFmt = ne::NV_ENC_BUFFER_FORMAT_NV12;
        pic.pictureStruct = ne::NV_ENC_PIC_STRUCT_FRAME;
        pic.inputTimeStamp = pts.max(0) as u64;
        pic.frameIdx = self.frame_idx;
        if force_idr {
            pic.encodePicFlags = ne::NV_ENC_PIC_FLAG_FORCEIDR | ne::NV_ENC_PIC_FLAG_OUTPUT_SPSPPS;
        }
        self.frame_idx = self.frame_idx.wrapping_add(1);
        let enc_f = entry(api.nvEncEncodePicture, "nvEncEncodePicture")?;
        // SAFETY: a mapped input and our bitstream buffer, both of this session.
        let s = unsafe { enc_f(self.session.handle, &mut pic) };
        self.encoded_any = true;
        if s == ne::NV_ENC_ERR_NEED_MORE_INPUT {
            return Ok(None);
        }
        check("nvEncEncodePicture", s)?;
        // SAFETY: plain C data.
        let mut lock: ne::NV_ENC_LOCK_BITSTREAM = unsafe { std::mem::zeroed() };
        lock.version = ffi::NV_ENC_LOCK_BITSTREAM_VER;
        lock.outputBitstream = self.bitstream;
        let lock_f = entry(api.nvEncLockBitstream, "nvEncLockBitstream")?;
        let unlock_f = entry(api.nvEncUnlockBitstream, "nvEncUnlockBitstream")?;
        // SAFETY: our bitstream buffer, just written by the encode above.
        check("nvEncLockBitstream", unsafe {
            lock_f(self.session.handle, &mut lock)
        })?;
        // SAFETY: while locked, bitstreamBufferPtr holds bitstreamSizeInBytes bytes.
        let data = unsafe {
            std::slice::from_raw_parts(
                lock.bitstreamBufferPtr as *const u8,
                lock.bitstreamSizeInBytes as usize,
            )
        }
        .to_vec();
        // SAFETY: unlocking what was locked above, once.
        check("nvEncUnlockBitstream", unsafe {
            unlock_f(self.session.handle, self.bitstream)
        })?;
        Ok(Some(data))
    }
}

impl Encoder for NvencEncoder {
    fn encode(
        &mut self,
        frame: &Frame,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>, StageError> {
        let data = self
            .encode_device(frame, force_idr)
            .map_err(|e| StageError::Encode {
                rung: self.rung.clone(),
                pts: frame.pts,
                reason: e.to_string(),
            })?;
        Ok(data.filter(|d| !d.is_empty()).map(|d| EncodedFrame {
            pts: frame.pts,
            dts: frame.pts,
            keyframe: crate::media::h264::annexb_has_idr(&d),
            data: Bytes::from(d),
            arrival: frame.arrival,
        }))
    }
}

impl Drop for NvencEncoder {
    fn drop(&mut self) {
        let _ = self.gpu.bind();
        let api = &self.session.lib.api;
        // SAFETY: our resources and bitstream buffer, released once, before the
        // session itself is destroyed (Session's Drop runs after this).
        unsafe {
            // NvEncDestroyEncoder requires the EOS flush first: a picture with
            // no input and NV_ENC_PIC_FLAG_EOS (synchronous mode: nothing is
            // pending, so there is no output to collect).
            if let (true, Some(enc)) = (self.encoded_any, api.nvEncEncodePicture) {
                let mut eos: ne::NV_ENC_PIC_PARAMS = std::mem::zeroed();
                eos.version = ffi::NV_ENC_PIC_PARAMS_VER;
                eos.encodePicFlags = ne::NV_ENC_PIC_FLAG_EOS;
                enc(self.session.handle, &mut eos);
            }
            if let Some(unreg) = api.nvEncUnregisterResource {
                // The owners drop after their unregistration, never before.
                for r in self.registered.drain(..) {
                    unreg(self.session.handle, r.resource);
                }
            }
            if let Some(destroy) = api.nvEncDestroyBitstreamBuffer {
                destroy(self.session.handle, self.bitstream);
            }
        }
    }
}
