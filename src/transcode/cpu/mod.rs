//! Software backend: openh264 decode and encode (or libx264 encode with the
//! `x264` feature), fast_image_resize scaling.

pub mod decoder;
pub mod encoder;
pub mod scaler;
#[cfg(feature = "x264")]
pub mod x264;

pub use decoder::OpenH264Decoder;
pub use encoder::OpenH264Encoder;
pub use scaler::BilinearScaler;
