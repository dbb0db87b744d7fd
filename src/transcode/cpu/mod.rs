//! Software backend: libavcodec (loaded at run time) or openh264 decode,
//! openh264 encode (or libx264 with the `x264` feature), libswscale (loaded
//! at run time) or fast_image_resize scaling.

pub mod cascade;
pub mod decoder;
pub mod encoder;
pub mod libav;
pub mod scaler;
pub mod swscale;
#[cfg(feature = "x264")]
pub mod x264;

pub use decoder::OpenH264Decoder;
pub use encoder::OpenH264Encoder;
pub use scaler::BilinearScaler;
