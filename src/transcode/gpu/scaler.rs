//! Every rung scaled from one picture in device memory, one kernel launch per
//! plane for the whole ladder (`kernels/scale.cu`).
//!
//! The stage trait is per rung, so the rungs of one ladder share a
//! [`LadderScaler`]: the first rung asked for a picture launches all of them,
//! the others find their output ready. A rung bound for a CPU encoder (the
//! hybrid path) gets its picture converted to I420 on the device and copied to
//! the host once; a rung bound for NVENC never leaves the device.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use cudarc::driver::{CudaStream, DeviceRepr, LaunchConfig, PushKernelArg};

use super::context::{DeviceBuffer, Gpu, GpuError};
use crate::transcode::frame::DevicePicture;
use crate::transcode::{Frame, Scaler, StageError};

/// `MAX_RUNGS` in scale.cu.
pub const MAX_RUNGS: usize = 8;
/// Row pitch alignment of our NV12 buffers (NVENC and coalesced loads like 256).
const PITCH_ALIGN: usize = 256;

/// `struct RungPlane` in scale.cu.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RungPlane {
    dst: u64,
    pitch: i32,
    width: i32,
    height: i32,
}

/// `struct Ladder` in scale.cu (passed by value).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct LadderArg {
    count: i32,
    rungs: [RungPlane; MAX_RUNGS],
}

// SAFETY: plain `repr(C)` data with the same layout as the kernel's struct.
unsafe impl DeviceRepr for LadderArg {}

/// One rung's NV12 output on the device.
struct RungOutput {
    width: u32,
    height: u32,
    pitch: usize,
    nv12: Arc<DeviceBuffer>,
    /// Tight I420 for the host copy (hybrid path only).
    i420: Option<DeviceBuffer>,
    /// Its host side: the whole picture arrives in one copy, then splits
    /// into the frame's planes.
    host: Vec<u8>,
}

pub struct LadderScaler {
    gpu: Arc<Gpu>,
    /// This ladder's own stream (launches, copies).
    stream: Arc<CudaStream>,
    rungs: Vec<RungOutput>,
    /// (pts, arrival) of the picture the outputs hold.
    last: Option<(i64, Instant)>,
    /// Staging for a host source picture: tight I420, then pitched NV12.
    upload_i420: Option<DeviceBuffer>,
    upload_nv12: Option<(Arc<DeviceBuffer>, usize)>,
}

pub fn pitch_for(width: u32) -> usize {
    (width as usize).div_ceil(PITCH_ALIGN) * PITCH_ALIGN
}

fn grid(w: u32, h: u32, z: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (w.div_ceil(32), h.div_ceil(8), z),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    }
}

impl LadderScaler {
    /// Allocates every rung's output once; `sizes` in ladder order.
    pub fn new(gpu: Arc<Gpu>, sizes: &[(u32, u32)]) -> Result<Arc<Mutex<Self>>, GpuError> {
        if sizes.len() > MAX_RUNGS {
            return Err(GpuError::Unsupported(format!(
                "{} rungs: the GPU scaler takes at most {MAX_RUNGS}",
                sizes.len()
            )));
        }
        let mut rungs = Vec::with_capacity(sizes.len());
        for &(width, height) in sizes {
            let pitch = pitch_for(width);
            let nv12 = Arc::new(gpu.alloc(pitch * height as usize * 3 / 2)?);
            rungs.push(RungOutput {
                width,
                height,
                pitch,
                nv12,
                i420: None,
                host: Vec::new(),
            });
        }
        let stream = gpu.new_stream()?;
        Ok(Arc::new(Mutex::new(LadderScaler {
            gpu,
            stream,
            rungs,
            last: None,
            upload_i420: None,
            upload_nv12: None,
        })))
    }

    /// The source picture on the device: as decoded (NVDEC), or uploaded once.
    fn source(&mut self, src: &Frame) -> Result<(u64, u64, usize), GpuError> {
        if let Some(d) = &src.device {
            return Ok((d.luma, d.chroma, d.pitch));
        }
        let (w, h) = (src.width as usize, src.height as usize);
        let (cw, ch) = src.chroma_size();
        let tight = w * h + 2 * (cw * ch) as usize;
        if self.upload_i420.as_ref().is_none_or(|b| b.bytes < tight) {
            self.upload_i420 = Some(self.gpu.alloc(tight)?);
        }
        let pitch = pitch_for(src.width);
        let nv12_bytes = pitch * (h + ch as usize);
        if self
            .upload_nv12
            .as_ref()
            .is_none_or(|(b, p)| b.bytes < nv12_bytes || *p != pitch)
        {
            self.upload_nv12 = Some((Arc::new(self.gpu.alloc(nv12_bytes)?), pitch));
        }
        let (Some(i420), Some((nv12, _))) = (&self.upload_i420, &self.upload_nv12) else {
            unreachable!("both staging buffers were just ensured");
        };
        let stream = &self.stream;
        self.gpu.upload(stream, &src.y, i420.ptr)?;
        self.gpu.upload(stream, &src.u, i420.ptr + (w * h) as u64)?;
        self.gpu
            .upload(stream, &src.v, i420.ptr + (w * h) as u64 + (cw * ch) as u64)?;
        let (luma, chroma) = (nv12.ptr, nv12.ptr + (pitch * h) as u64);
        let (src_ptr, width, height, pitch_i) = (i420.ptr, w as i32, h as i32, pitch as i32);
        let mut launch = self.stream.launch_builder(&self.gpu.kernels.i420_to_nv12);
        launch
            .arg(&src_ptr)
            .arg(&width)
            .arg(&height)
            .arg(&luma)
            .arg(&chroma)
            .arg(&pitch_i);
        // SAFETY: the argument list matches `i420_to_nv12`'s signature; both
        // buffers were sized above for this picture.
        unsafe { launch.launch(grid(src.width, src.height, 1)) }.map_err(|e| GpuError::Cuda {
            call: "cuLaunchKernel(i420_to_nv12)",
            reason: super::cuda::describe(e.0),
        })?;
        Ok((luma, chroma, pitch))
    }

    /// Scales `src` to every rung, once per picture.
    fn run(&mut self, src: &Frame) -> Result<(), GpuError> {
        let key = (src.pts, src.arrival);
        if self.last == Some(key) {
            return Ok(());
        }
        self.gpu.bind()?;
        let (luma, chroma, pitch) = self.source(src)?;
        let (scw, sch) = src.chroma_size();
        for (plane, (s, sw, sh, channels)) in [
            (luma, src.width, src.height, 1i32),
            (chroma, scw, sch, 2i32),
        ]
        .into_iter()
        .enumerate()
        {
            let mut arg = LadderArg {
                count: self.rungs.len() as i32,
                ..Default::default()
            };
            let (mut max_w, mut max_h) = (0, 0);
            for (slot, r) in arg.rungs.iter_mut().zip(&self.rungs) {
                let (w, h) = if plane == 0 {
                    (r.width, r.height)
                } else {
                    (r.width.div_ceil(2), r.height.div_ceil(2))
                };
                let offset = if plane == 0 {
                    0
                } else {
                    r.pitch * r.height as usize
                };
                *slot = RungPlane {
                    dst: r.nv12.ptr + offset as u64,
                    pitch: r.pitch as i32,
                    width: w as i32,
                    height: h as i32,
                };
                max_w = max_w.max(w);
                max_h = max_h.max(h);
            }
            let (src_pitch, sw, sh) = (pitch as i32, sw as i32, sh as i32);
            let mut launch = self
                .stream
                .launch_builder(&self.gpu.kernels.scale_plane_ladder);
            launch
                .arg(&s)
                .arg(&src_pitch)
                .arg(&sw)
                .arg(&sh)
                .arg(&channels)
                .arg(&arg);
            // SAFETY: arguments match `scale_plane_ladder`; every destination was
            // allocated pitch × rows for its rung; the source is a live picture.
            unsafe { launch.launch(grid(max_w, max_h, self.rungs.len() as u32)) }.map_err(|e| {
                GpuError::Cuda {
                    call: "cuLaunchKernel(scale_plane_ladder)",
                    reason: super::cuda::describe(e.0),
                }
            })?;
        }
        // NVENC reads these buffers outside our stream: finish the launches first.
        self.gpu.wait(&self.stream)?;
        self.last = Some(key);
        Ok(())
    }

    /// Rung `index`'s picture as NV12 on the device.
    fn picture(&self, index: usize) -> DevicePicture {
        let r = &self.rungs[index];
        DevicePicture {
            luma: r.nv12.ptr,
            chroma: r.nv12.ptr + (r.pitch * r.height as usize) as u64,
            pitch: r.pitch,
            owner: r.nv12.clone(),
        }
    }

    /// Rung `index`'s picture into `dst`'s host planes (I420): one conversion on
    /// the device, one copy of the whole picture, counted.
    fn download(&mut self, index: usize, dst: &mut Frame) -> Result<(), GpuError> {
        let pic = self.picture(index);
        let gpu = self.gpu.clone();
        let stream = self.stream.clone();
        let r = &mut self.rungs[index];
        let (w, h) = (r.width as usize, r.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let tight = w * h + 2 * cw * ch;
        if r.i420.is_none() {
            r.i420 = Some(gpu.alloc(tight)?);
        }
        let Some(i420) = &r.i420 else {
            unreachable!("allocated above")
        };
        let (out, width, height, pitch) = (i420.ptr, w as i32, h as i32, pic.pitch as i32);
        let mut launch = stream.launch_builder(&gpu.kernels.nv12_to_i420);
        launch
            .arg(&pic.luma)
            .arg(&pic.chroma)
            .arg(&pitch)
            .arg(&width)
            .arg(&height)
            .arg(&out);
        // SAFETY: arguments match `nv12_to_i420`; `out` holds a tight I420 picture.
        unsafe { launch.launch(grid(r.width, r.height, 1)) }.map_err(|e| GpuError::Cuda {
            call: "cuLaunchKernel(nv12_to_i420)",
            reason: super::cuda::describe(e.0),
        })?;
        dst.reshape(r.width, r.height);
        // One copy (and one wait) per picture, not one per plane.
        r.host.resize(tight, 0);
        gpu.download(&stream, out, &mut r.host)?;
        let (y, uv) = r.host.split_at(w * h);
        dst.y.copy_from_slice(y);
        dst.u.copy_from_slice(&uv[..cw * ch]);
        dst.v.copy_from_slice(&uv[cw * ch..]);
        Ok(())
    }
}

/// One rung's view of a shared [`LadderScaler`].
pub struct GpuRungScaler {
    shared: Arc<Mutex<LadderScaler>>,
    index: usize,
    /// The rung's encoder runs on the CPU: fill the host planes too.
    to_host: bool,
}

impl GpuRungScaler {
    pub fn new(shared: Arc<Mutex<LadderScaler>>, index: usize, to_host: bool) -> Self {
        GpuRungScaler {
            shared,
            index,
            to_host,
        }
    }
}

impl Scaler for GpuRungScaler {
    fn scale(&mut self, src: &Frame, dst: &mut Frame) -> Result<(), StageError> {
        let err = |e: GpuError| StageError::Scale {
            width: dst.width,
            height: dst.height,
            reason: e.to_string(),
        };
        let mut shared = match self.shared.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        shared.run(src).map_err(err)?;
        dst.pts = src.pts;
        dst.arrival = src.arrival;
        dst.device = Some(shared.picture(self.index));
        if self.to_host {
            let (w, h) = (dst.width, dst.height);
            shared
                .download(self.index, dst)
                .map_err(|e| StageError::Scale {
                    width: w,
                    height: h,
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::gpu::kernels;

    /// The by-value `Ladder` argument must have the kernel's layout: NVRTC's
    /// PTX declares the parameter's byte size, which must equal ours.
    #[test]
    fn ladder_argument_layout_matches_the_kernel() {
        if !kernels::nvrtc_present() {
            assert!(
                std::env::var("LADDERD_REQUIRE_NVRTC").is_err(),
                "NVRTC required"
            );
            eprintln!("NVRTC not found: layout check skipped");
            return;
        }
        let ptx = kernels::compile("scale.cu", kernels::SCALE_CU, "compute_75")
            .unwrap()
            .ptx;
        let decl = ptx
            .lines()
            .find(|l| l.contains("scale_plane_ladder_param_5["))
            .expect("PTX declares the sixth parameter");
        let size: usize = decl
            .split("param_5[")
            .nth(1)
            .and_then(|s| s.split(']').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert_eq!(size, std::mem::size_of::<LadderArg>(), "{decl}");
        assert!(decl.contains(".align 8"), "{decl}");
        assert_eq!(pitch_for(1920), 2048);
        assert_eq!(pitch_for(256), 256);
    }
}
