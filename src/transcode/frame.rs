//! Decoded pictures: planar I420 in host memory, or NV12 in device memory
//! (GPU backend), behind one type so every stage trait takes the same thing.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

/// A picture in GPU memory: NV12, `pitch` bytes per row for both planes.
/// The pointers stay valid while `owner` (the buffer's allocation) lives.
#[derive(Clone)]
pub struct DevicePicture {
    pub luma: u64,
    pub chroma: u64,
    pub pitch: usize,
    pub owner: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for DevicePicture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DevicePicture {{ luma: {:#x}, chroma: {:#x}, pitch: {} }}",
            self.luma, self.chroma, self.pitch
        )
    }
}

/// One picture, tightly packed I420 (stride == width for Y, width/2 for U and V).
///
/// Frames are reused: a stage owns its output frame and overwrites it for every
/// picture ([`Frame::reshape`] only allocates when the size grows), so the hot
/// path allocates nothing per frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    /// Presentation time, 90 kHz.
    pub pts: i64,
    /// Arrival of the packet that carried this picture (for latency).
    pub arrival: Instant,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
    /// Set when the picture is (also) in device memory. A GPU stage reads this;
    /// a CPU stage reads the host planes, which a GPU stage fills only when the
    /// next stage is on the CPU (counted as a device→host copy).
    pub device: Option<DevicePicture>,
}

impl Frame {
    pub fn new(width: u32, height: u32) -> Self {
        let mut f = Frame {
            width: 0,
            height: 0,
            pts: 0,
            arrival: crate::telemetry::clock::now(),
            y: Vec::new(),
            u: Vec::new(),
            v: Vec::new(),
            device: None,
        };
        f.reshape(width, height);
        f
    }

    /// Sets the picture size, keeping the buffers' capacity.
    pub fn reshape(&mut self, width: u32, height: u32) {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        self.width = width;
        self.height = height;
        self.y.resize(w * h, 0);
        self.u.resize(cw * ch, 0);
        self.v.resize(cw * ch, 0);
    }

    pub fn chroma_size(&self) -> (u32, u32) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }
}

impl openh264::formats::YUVSource for Frame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }
    fn strides(&self) -> (usize, usize, usize) {
        let cw = self.chroma_size().0 as usize;
        (self.width as usize, cw, cw)
    }
    fn y(&self) -> &[u8] {
        &self.y
    }
    fn u(&self) -> &[u8] {
        &self.u
    }
    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// Copies a strided plane into a tight one.
pub fn copy_plane(dst: &mut [u8], src: &[u8], width: usize, height: usize, src_stride: usize) {
    for row in 0..height {
        let s = &src[row * src_stride..row * src_stride + width];
        dst[row * width..(row + 1) * width].copy_from_slice(s);
    }
}

/// Peak signal-to-noise ratio of two 8-bit planes, dB (99 when identical):
/// how the tests and `hwtest` compare scalers and decodes.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}
