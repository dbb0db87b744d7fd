//! Cascade scaling (`[ladder] cascade`): the rungs below a middle rung (480p
//! and 360p under 720p) scale from that rung's picture instead of the
//! source, which is cheaper (fewer source rows to filter). The middle picture
//! is made once per source picture by whichever of those rungs gets to it
//! first and kept for the others (a few pictures back, for a rung that lags).
//! Quality: `tests` below compare with the direct scale.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::transcode::{Frame, Scaler, StageError};

/// Middle pictures kept: a rung this many pictures behind the first one
/// makes its own again.
const KEPT: usize = 8;

/// The middle picture, shared by the rungs cascading from it.
pub struct Middle {
    width: u32,
    height: u32,
    made: Mutex<(Box<dyn Scaler>, VecDeque<Arc<Frame>>)>,
}

impl Middle {
    pub fn new(width: u32, height: u32, scaler: Box<dyn Scaler>) -> Arc<Middle> {
        Arc::new(Middle {
            width,
            height,
            made: Mutex::new((scaler, VecDeque::new())),
        })
    }

    /// The middle picture of `src` (by pts), made now if no rung has yet.
    fn of(&self, src: &Frame) -> Result<Arc<Frame>, StageError> {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        let (scaler, kept) = &mut *made;
        if let Some(f) = kept
            .iter()
            .find(|f| f.pts == src.pts && f.arrival == src.arrival)
        {
            return Ok(f.clone());
        }
        let mut f = Frame::new(self.width, self.height);
        scaler.scale(src, &mut f)?;
        let f = Arc::new(f);
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(f.clone());
        Ok(f)
    }
}

/// A rung's scaler in a cascade: from the middle picture (a copy of it for
/// the middle rung itself).
pub struct CascadeScaler {
    middle: Arc<Middle>,
    scaler: Box<dyn Scaler>,
}

impl CascadeScaler {
    pub fn new(middle: Arc<Middle>, scaler: Box<dyn Scaler>) -> Self {
        CascadeScaler { middle, scaler }
    }
}

impl Scaler for CascadeScaler {
    fn scale(&mut self, src: &Frame, dst: &mut Frame) -> Result<(), StageError> {
        let mid = self.middle.of(src)?;
        self.scaler.scale(&mid, dst)
    }
}

/// Which rungs cascade: the rungs below the largest rung of at most 720
/// lines that is smaller than the source, from that one, when they take the
/// same pictures (same frame step). Returns (middle rung, rungs from it).
pub fn plan(sizes: &[(u32, u32, u32)], source: (u32, u32)) -> Option<(usize, Vec<usize>)> {
    let middle = sizes
        .iter()
        .enumerate()
        .filter(|(_, (w, h, _))| *h <= 720 && (*w, *h) != source && *h < source.1)
        .max_by_key(|(_, (_, h, _))| *h)
        .map(|(i, _)| i)?;
    let (_, mh, step) = sizes[middle];
    let below: Vec<usize> = sizes
        .iter()
        .enumerate()
        .filter(|(i, (_, h, s))| *i != middle && *h < mh && *s == step)
        .map(|(i, _)| i)
        .collect();
    (!below.is_empty()).then_some((middle, below))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::cpu::BilinearScaler;
    use crate::transcode::frame::psnr;

    /// 480p and 360p through 720p against straight from a 1080p source:
    /// close to the direct scale (≥ 38 dB luma, ≥ 40 dB chroma on a decoded
    /// picture upscaled to 1080p, the worst case for detail), and the middle
    /// picture is made once for all three rungs.
    #[test]
    fn cascade_keeps_quality_and_scales_once() {
        let (cfg, packets) = crate::transcode::cpu::decoder::tests::capture();
        let mut dec = crate::transcode::cpu::OpenH264Decoder::new(cfg).unwrap();
        let mut pictures = Vec::new();
        for p in &packets {
            crate::transcode::Decoder::decode(&mut dec, p, &mut |f| pictures.push(f.clone()))
                .unwrap();
        }
        let mut src = Frame::new(1920, 1080);
        BilinearScaler::new()
            .scale(pictures.last().unwrap(), &mut src)
            .unwrap();
        struct Counting(BilinearScaler, Arc<std::sync::atomic::AtomicUsize>);
        impl Scaler for Counting {
            fn scale(&mut self, s: &Frame, d: &mut Frame) -> Result<(), StageError> {
                self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.0.scale(s, d)
            }
        }
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let middle = Middle::new(
            1280,
            720,
            Box::new(Counting(BilinearScaler::new(), count.clone())),
        );
        for (w, h) in [(1280, 720), (854, 480), (640, 360)] {
            let (mut a, mut b) = (Frame::new(w, h), Frame::new(w, h));
            CascadeScaler::new(middle.clone(), Box::new(BilinearScaler::new()))
                .scale(&src, &mut a)
                .unwrap();
            BilinearScaler::new().scale(&src, &mut b).unwrap();
            let (y, u, v) = (psnr(&a.y, &b.y), psnr(&a.u, &b.u), psnr(&a.v, &b.v));
            println!("{w}x{h} cascade vs direct: Y {y:.1} dB, U {u:.1}, V {v:.1}");
            assert!(
                y >= 38.0 && u >= 40.0 && v >= 40.0,
                "{w}x{h}: {y:.1}/{u:.1}/{v:.1}"
            );
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn plan_picks_720p_for_the_rungs_below_it() {
        let ladder = [
            (1920, 1080, 1),
            (1280, 720, 1),
            (854, 480, 1),
            (640, 360, 1),
        ];
        assert_eq!(plan(&ladder, (1920, 1080)), Some((1, vec![2, 3])));
        // A 720p source: 720p is the source's size, 480p the middle.
        assert_eq!(plan(&ladder[1..], (1280, 720)), Some((1, vec![2])));
        // Another frame step does not cascade.
        let mixed = [(1280, 720, 2), (854, 480, 1)];
        assert_eq!(plan(&mixed, (1920, 1080)), None);
    }
}
