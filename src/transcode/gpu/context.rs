//! One CUDA device in use: its context, stream, compiled kernels, device
//! buffers, and the count of bytes copied across the bus (the zero-copy
//! invariant is a number operators can read, not a promise).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cudarc::driver::sys::{self, CUmemorytype, CUresult};
use cudarc::driver::{CudaContext, CudaFunction, CudaStream};

use super::cuda::describe;
use super::kernels;

/// Bytes copied device→host and host→device by the GPU backend, process-wide.
/// On an all-GPU ladder (NVDEC → CUDA scale → NVENC) device→host reads 0.
pub static DEVICE_TO_HOST_BYTES: AtomicU64 = AtomicU64::new(0);
pub static HOST_TO_DEVICE_BYTES: AtomicU64 = AtomicU64::new(0);
/// Device→host copies (each one a wait on its stream): the hybrid plan makes
/// one per picture per CPU-encoded rung.
pub static DEVICE_TO_HOST_COPIES: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("CUDA {call}: {reason}")]
    Cuda { call: &'static str, reason: String },
    #[error("kernels: {0}")]
    Kernels(#[from] super::kernels::NvrtcError),
    /// The driver refuses the PTX and NVRTC cannot build machine code instead.
    #[error("kernels: the driver refuses the PTX ({refused}) and NVRTC cannot build {arch} machine code instead: {nvrtc}")]
    KernelsRefused {
        refused: String,
        arch: String,
        nvrtc: super::kernels::NvrtcError,
    },
    #[error("NVDEC {call}: {reason}")]
    Nvdec { call: &'static str, reason: String },
    #[error("NVENC {call}: {reason}")]
    Nvenc { call: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
    /// No usable driver, or no device of that ordinal (the probe's words).
    #[error("{0}")]
    NoDevice(String),
    /// The device's context did not open, so nothing else was asked.
    #[error("no context")]
    NoContext,
    /// NVDEC or NVENC, opened at run time, is missing or unusable.
    #[error(transparent)]
    Library(#[from] crate::dylib::Unavailable),
}

pub(crate) fn cu(call: &'static str, code: CUresult) -> Result<(), GpuError> {
    if code == CUresult::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(GpuError::Cuda {
            call,
            reason: describe(code),
        })
    }
}

fn driver_err(call: &'static str) -> impl Fn(cudarc::driver::DriverError) -> GpuError {
    move |e| GpuError::Cuda {
        call,
        reason: describe(e.0),
    }
}

/// Every driver entry point the backend calls (directly or through cudarc).
const REQUIRED: &[&str] = &[
    "cuInit",
    "cuDeviceGet",
    "cuDeviceGetAttribute",
    "cuDeviceGetName",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxSetCurrent",
    "cuCtxGetCurrent",
    "cuModuleLoadData",
    "cuModuleGetFunction",
    "cuModuleUnload",
    "cuLaunchKernel",
    "cuStreamSynchronize",
    "cuStreamCreate",
    "cuStreamDestroy_v2",
    "cuCtxSynchronize",
    "cuDevicePrimaryCtxSetFlags_v2",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemcpy2DAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuMemcpyHtoDAsync_v2",
];

/// The scaler's kernels, loaded into this context.
pub struct Kernels {
    pub scale_plane_ladder: CudaFunction,
    pub nv12_to_i420: CudaFunction,
    pub i420_to_nv12: CudaFunction,
}

pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub kernels: Kernels,
    pub name: String,
    pub compute_capability: (i32, i32),
    /// Which kernel image loaded: the PTX, or NVRTC machine code when the
    /// driver is too old for the PTX (`probe` says which).
    pub kernels_from: String,
}

impl Gpu {
    /// Opens device `ordinal` and loads the kernels (PTX built in when NVRTC was
    /// found at build time, else compiled now by NVRTC for this device).
    /// Callers check [`super::cuda::driver_present`] first (cudarc panics otherwise).
    pub fn open(ordinal: usize) -> Result<Arc<Gpu>, GpuError> {
        // cudarc panics on the first call of a symbol the driver lacks: refuse
        // up front, naming it, rather than in the middle of a stream.
        if let Some(missing) = REQUIRED.iter().find(|s| !super::cuda::exports(s)) {
            return Err(GpuError::Unsupported(format!(
                "libcuda lacks {missing} (driver too old for ladderd's CUDA 12 calls?)"
            )));
        }
        blocking_sync(ordinal)?;
        let ctx = CudaContext::new(ordinal).map_err(driver_err("cuCtx (primary context)"))?;
        let compute_capability = ctx
            .compute_capability()
            .map_err(driver_err("cuDeviceGetAttribute"))?;
        let name = ctx.name().map_err(driver_err("cuDeviceGetName"))?;
        let ptx = kernels::ptx_for(compute_capability)?;
        let (module, kernels_from) = match ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)) {
            Ok(m) => (m, "PTX".to_string()),
            // The PTX's ISA is newer than this driver JIT-compiles (NVRTC 12.9
            // writes `.version 8.8`, which needs a 12.9 driver): machine code
            // for this device from NVRTC loads on any 12.x driver instead.
            Err(e) if e.0 == CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION => {
                let (major, minor) = compute_capability;
                let arch = format!("sm_{major}{minor}");
                let cubin = kernels::compile("scale.cu", kernels::SCALE_CU, &arch)
                    .map_err(|nvrtc| GpuError::KernelsRefused {
                        refused: describe(e.0),
                        arch: arch.clone(),
                        nvrtc,
                    })?
                    .cubin;
                let m = ctx
                    .load_module(cudarc::nvrtc::Ptx::from_binary(cubin))
                    .map_err(driver_err("cuModuleLoadData (cubin)"))?;
                (
                    m,
                    format!("{arch} cubin from NVRTC (the driver is too old for the PTX)"),
                )
            }
            Err(e) => return Err(driver_err("cuModuleLoadData")(e)),
        };
        let f = |n: &'static str| {
            module
                .load_function(n)
                .map_err(driver_err("cuModuleGetFunction"))
        };
        let kernels = Kernels {
            scale_plane_ladder: f("scale_plane_ladder")?,
            nv12_to_i420: f("nv12_to_i420")?,
            i420_to_nv12: f("i420_to_nv12")?,
        };
        // Never the legacy NULL stream: it synchronises with every other
        // stream in the context, so one channel's work would wait for all.
        let stream = ctx.new_stream().map_err(driver_err("cuStreamCreate"))?;
        Ok(Arc::new(Gpu {
            ctx,
            stream,
            kernels,
            name,
            compute_capability,
            kernels_from,
        }))
    }

    /// Makes this context current on the calling thread (every GPU stage entry).
    pub fn bind(&self) -> Result<(), GpuError> {
        self.ctx
            .bind_to_thread()
            .map_err(driver_err("cuCtxSetCurrent"))
    }

    pub fn cu_ctx(&self) -> sys::CUcontext {
        self.ctx.cu_ctx()
    }

    pub fn cu_stream(&self) -> sys::CUstream {
        self.stream.cu_stream()
    }

    /// A stream of its own for one decoder or ladder (non-blocking: it does
    /// not wait for other channels' work).
    pub fn new_stream(&self) -> Result<Arc<CudaStream>, GpuError> {
        self.ctx.new_stream().map_err(driver_err("cuStreamCreate"))
    }

    /// Waits for the work queued on `stream`.
    pub fn wait(&self, stream: &CudaStream) -> Result<(), GpuError> {
        stream
            .synchronize()
            .map_err(driver_err("cuStreamSynchronize"))
    }

    pub fn alloc(self: &Arc<Self>, bytes: usize) -> Result<DeviceBuffer, GpuError> {
        self.bind()?;
        let mut ptr: sys::CUdeviceptr = 0;
        // SAFETY: out-pointer to a local; the context is current.
        cu("cuMemAlloc", unsafe {
            sys::cuMemAlloc_v2(&mut ptr, bytes.max(1))
        })?;
        Ok(DeviceBuffer {
            ptr,
            bytes,
            gpu: self.clone(),
        })
    }

    /// A pitched 2-D copy between device addresses (NVDEC surface → our buffer).
    #[allow(clippy::too_many_arguments)]
    pub fn copy_2d_dtod(
        &self,
        stream: &CudaStream,
        src: u64,
        src_pitch: usize,
        dst: u64,
        dst_pitch: usize,
        width_bytes: usize,
        rows: usize,
    ) -> Result<(), GpuError> {
        let copy = sys::CUDA_MEMCPY2D {
            srcXInBytes: 0,
            srcY: 0,
            srcMemoryType: CUmemorytype::CU_MEMORYTYPE_DEVICE,
            srcHost: std::ptr::null(),
            srcDevice: src,
            srcArray: std::ptr::null_mut(),
            srcPitch: src_pitch,
            dstXInBytes: 0,
            dstY: 0,
            dstMemoryType: CUmemorytype::CU_MEMORYTYPE_DEVICE,
            dstHost: std::ptr::null_mut(),
            dstDevice: dst,
            dstArray: std::ptr::null_mut(),
            dstPitch: dst_pitch,
            WidthInBytes: width_bytes,
            Height: rows,
        };
        // SAFETY: both ranges are device allocations at least pitch × rows long
        // (the caller's buffers); the struct is fully initialised.
        cu("cuMemcpy2DAsync", unsafe {
            sys::cuMemcpy2DAsync_v2(&copy, stream.cu_stream())
        })
    }

    /// Device → host, counted in [`DEVICE_TO_HOST_BYTES`]; waits for the stream.
    pub fn download(&self, stream: &CudaStream, src: u64, dst: &mut [u8]) -> Result<(), GpuError> {
        // SAFETY: `src` is a device allocation of at least dst.len() bytes.
        cu("cuMemcpyDtoHAsync", unsafe {
            sys::cuMemcpyDtoHAsync_v2(dst.as_mut_ptr().cast(), src, dst.len(), stream.cu_stream())
        })?;
        self.wait(stream)?;
        DEVICE_TO_HOST_BYTES.fetch_add(dst.len() as u64, Ordering::Relaxed);
        DEVICE_TO_HOST_COPIES.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Host → device, counted in [`HOST_TO_DEVICE_BYTES`]; waits for the stream
    /// (the host slice may be reused as soon as this returns).
    pub fn upload(&self, stream: &CudaStream, src: &[u8], dst: u64) -> Result<(), GpuError> {
        // SAFETY: `dst` is a device allocation of at least src.len() bytes.
        cu("cuMemcpyHtoDAsync", unsafe {
            sys::cuMemcpyHtoDAsync_v2(dst, src.as_ptr().cast(), src.len(), stream.cu_stream())
        })?;
        self.wait(stream)?;
        HOST_TO_DEVICE_BYTES.fetch_add(src.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Asks for the primary context to block the calling thread in a
/// synchronisation instead of spinning (the default, SCHED_AUTO, spins with
/// few contexts and competes with the CPU encoders). Before the context is
/// retained; an already active context keeps its flags (logged).
fn blocking_sync(ordinal: usize) -> Result<(), GpuError> {
    let mut dev: sys::CUdevice = 0;
    // SAFETY: the entry points were checked to exist; out-pointer to a local.
    unsafe {
        cu("cuInit", sys::cuInit(0))?;
        cu("cuDeviceGet", sys::cuDeviceGet(&mut dev, ordinal as i32))?;
        let r = sys::cuDevicePrimaryCtxSetFlags_v2(
            dev,
            sys::CUctx_flags::CU_CTX_SCHED_BLOCKING_SYNC as u32,
        );
        if r != CUresult::CUDA_SUCCESS {
            tracing::info!("CUDA context flags left as they are: {}", describe(r));
        }
    }
    Ok(())
}

/// One device allocation, freed on drop.
pub struct DeviceBuffer {
    pub ptr: u64,
    pub bytes: usize,
    gpu: Arc<Gpu>,
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: `ptr` came from cuMemAlloc in this context and is freed once.
            let _ = unsafe { sys::cuMemFree_v2(self.ptr) };
        }
    }
}
