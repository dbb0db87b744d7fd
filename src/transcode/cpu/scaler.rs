//! Bilinear convolution per plane with fast_image_resize (SIMD). Measured here:
//! ~6 ms for 4 rungs from 1080p; naive bilinear aliases and is not faster.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::transcode::{Frame, Scaler, StageError};

pub struct BilinearScaler {
    resizer: Resizer,
    options: ResizeOptions,
}

impl Default for BilinearScaler {
    fn default() -> Self {
        Self::new()
    }
}

impl BilinearScaler {
    pub fn new() -> Self {
        BilinearScaler {
            resizer: Resizer::new(),
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        }
    }
}

impl Scaler for BilinearScaler {
    fn scale(&mut self, src: &Frame, dst: &mut Frame) -> Result<(), StageError> {
        dst.pts = src.pts;
        dst.arrival = src.arrival;
        let err = |reason: String| StageError::Scale {
            width: dst.width,
            height: dst.height,
            reason,
        };
        let (scw, sch) = src.chroma_size();
        let (dcw, dch) = dst.chroma_size();
        let planes = [
            (
                &src.y,
                &mut dst.y,
                (src.width, src.height),
                (dst.width, dst.height),
            ),
            (&src.u, &mut dst.u, (scw, sch), (dcw, dch)),
            (&src.v, &mut dst.v, (scw, sch), (dcw, dch)),
        ];
        for (s, d, (sw, sh), (dw, dh)) in planes {
            if (sw, sh) == (dw, dh) {
                d.copy_from_slice(s);
                continue;
            }
            let src_img =
                ImageRef::new(sw, sh, s, PixelType::U8).map_err(|e| err(e.to_string()))?;
            let mut dst_img =
                Image::from_slice_u8(dw, dh, d, PixelType::U8).map_err(|e| err(e.to_string()))?;
            self.resizer
                .resize(&src_img, &mut dst_img, &self.options)
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }
}
