//! Software backend: openh264 decode and encode, fast_image_resize scaling.

pub mod decoder;
pub mod encoder;
pub mod scaler;

pub use decoder::OpenH264Decoder;
pub use encoder::OpenH264Encoder;
pub use scaler::BilinearScaler;
