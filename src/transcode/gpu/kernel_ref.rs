//! The arithmetic of `kernels/scale.cu`, on the CPU.
//!
//! CI has no GPU, so the kernels' math is tested here: this is a line-for-line
//! transcription of `scale_sample` (same window, same triangle weights, same
//! f32 order of operations, same rounding), checked against the CPU scaler.
//! `hwtest` then checks the device against the CPU scaler on real hardware.

/// `window()` in the kernel: filter centre, filter scale and the source range
/// `[lo, hi)` for output sample `o`.
fn window(o: usize, in_size: usize, out_size: usize) -> (f32, f32, usize, usize) {
    let ratio = in_size as f32 / out_size as f32;
    let s = if ratio > 1.0 { ratio } else { 1.0 };
    let c = (o as f32 + 0.5) * ratio;
    let a = (c - s + 0.5).floor() as i64;
    let b = (c + s + 0.5).floor() as i64;
    (c, s, a.max(0) as usize, b.min(in_size as i64) as usize)
}

fn triangle(x: f32) -> f32 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Scales one plane of `channels` interleaved samples per pixel (1 for Y,
/// 2 for NV12 UV): `src` is `sw`×`sh` pixels with `src_pitch` bytes per row,
/// `dst` is tight (`dw * channels` bytes per row).
#[allow(clippy::too_many_arguments)]
pub fn scale_plane(
    src: &[u8],
    src_pitch: usize,
    sw: usize,
    sh: usize,
    channels: usize,
    dst: &mut [u8],
    dw: usize,
    dh: usize,
) {
    for y in 0..dh {
        let (cy, sy, y0, y1) = window(y, sh, dh);
        for x in 0..dw {
            let (cx, sx, x0, x1) = window(x, sw, dw);
            let mut acc = [0f32; 2];
            let mut wsum_x = 0f32;
            let mut wsum_y = 0f32;
            for i in x0..x1 {
                wsum_x += triangle((i as f32 - cx + 0.5) / sx);
            }
            for j in y0..y1 {
                let wy = triangle((j as f32 - cy + 0.5) / sy);
                if wy == 0.0 {
                    continue;
                }
                wsum_y += wy;
                let row = &src[j * src_pitch..];
                let mut racc = [0f32; 2];
                for i in x0..x1 {
                    let wx = triangle((i as f32 - cx + 0.5) / sx);
                    for (c, r) in racc.iter_mut().enumerate().take(channels) {
                        *r += wx * row[i * channels + c] as f32;
                    }
                }
                for c in 0..channels {
                    acc[c] += wy * racc[c];
                }
            }
            let norm = wsum_x * wsum_y;
            for c in 0..channels {
                let v = if norm > 0.0 { acc[c] / norm } else { 0.0 };
                dst[(y * dw + x) * channels + c] = (v + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// `nv12_to_i420` and `i420_to_nv12` in the kernel, for the tests: interleaves
/// the planar chroma of a tight I420 picture.
pub fn interleave_uv(u: &[u8], v: &[u8]) -> Vec<u8> {
    u.iter().zip(v).flat_map(|(a, b)| [*a, *b]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::cpu::BilinearScaler;
    use crate::transcode::frame::psnr;
    use crate::transcode::{Frame, Scaler};

    /// A picture with detail at every scale: edges, a zone plate, gradients.
    fn test_picture(w: u32, h: u32) -> Frame {
        let mut f = Frame::new(w, h);
        for y in 0..h as usize {
            for x in 0..w as usize {
                let (fx, fy) = (x as f64, y as f64);
                let zone = ((fx * fx + fy * fy) / 4000.0).sin() * 60.0;
                let edge = if (x / 97 + y / 53) % 2 == 0 {
                    40.0
                } else {
                    -40.0
                };
                f.y[y * w as usize + x] = (128.0 + zone + edge).clamp(0.0, 255.0) as u8;
            }
        }
        let (cw, ch) = f.chroma_size();
        for y in 0..ch as usize {
            for x in 0..cw as usize {
                f.u[y * cw as usize + x] = (x * 255 / cw as usize) as u8;
                f.v[y * cw as usize + x] = ((y * 7 + x * 3) % 256) as u8;
            }
        }
        f
    }

    /// The kernel's math (luma as one channel, chroma as NV12's interleaved pair)
    /// against the CPU scaler, for every default-ladder size from 1080p.
    #[test]
    fn kernel_math_matches_the_cpu_scaler() {
        let src = test_picture(1920, 1080);
        let uv = interleave_uv(&src.u, &src.v);
        let (scw, sch) = src.chroma_size();
        for (w, h) in [
            (1280, 720),
            (854, 480),
            (640, 360),
            (426, 240),
            (1920, 1080),
        ] {
            let mut cpu = Frame::new(w, h);
            BilinearScaler::new().scale(&src, &mut cpu).unwrap();
            let mut y = vec![0u8; (w * h) as usize];
            scale_plane(&src.y, 1920, 1920, 1080, 1, &mut y, w as usize, h as usize);
            let (dcw, dch) = cpu.chroma_size();
            let mut duv = vec![0u8; (dcw * dch * 2) as usize];
            scale_plane(
                &uv,
                scw as usize * 2,
                scw as usize,
                sch as usize,
                2,
                &mut duv,
                dcw as usize,
                dch as usize,
            );
            let want_uv = interleave_uv(&cpu.u, &cpu.v);
            let (py, puv) = (psnr(&y, &cpu.y), psnr(&duv, &want_uv));
            eprintln!("{w}x{h}: kernel math vs CPU scaler: Y {py:.1} dB, UV {puv:.1} dB");
            assert!(py >= 45.0, "{w}x{h}: luma PSNR {py:.1} dB < 45");
            assert!(puv >= 45.0, "{w}x{h}: chroma PSNR {puv:.1} dB < 45");
        }
    }

    #[test]
    fn same_size_is_a_copy() {
        let src = test_picture(64, 36);
        let mut out = vec![0u8; 64 * 36];
        scale_plane(&src.y, 64, 64, 36, 1, &mut out, 64, 36);
        assert_eq!(out, src.y);
    }
}
