//! Where in a live stream something happened: the context an error carries so
//! that its message finds the packet (STYLE 4, after retina's `PacketContext`).
//!
//! A stage deep in a box rarely knows the stream's name; the code that built
//! it for the stream (the ladder's owner, the packager's output, the DVR
//! lane) adds the context as the error passes through.

use std::fmt;

/// A stream, and where known the rendition and the picture (90 kHz pts).
///
/// Displayed as `stream "cam1", rendition 720p, pts 123456`, leaving out the
/// parts not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCtx {
    pub stream: String,
    pub rendition: Option<String>,
    pub pts: Option<i64>,
}

impl StreamCtx {
    pub fn new(stream: impl Into<String>) -> Self {
        StreamCtx {
            stream: stream.into(),
            rendition: None,
            pts: None,
        }
    }

    pub fn rendition(mut self, rendition: impl Into<String>) -> Self {
        self.rendition = Some(rendition.into());
        self
    }

    pub fn pts(mut self, pts: i64) -> Self {
        self.pts = Some(pts);
        self
    }
}

impl fmt::Display for StreamCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {:?}", self.stream)?;
        if let Some(r) = &self.rendition {
            write!(f, ", rendition {r}")?;
        }
        if let Some(pts) = self.pts {
            write!(f, ", pts {pts}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::StreamCtx;

    #[test]
    fn names_the_stream_then_what_is_known() {
        assert_eq!(StreamCtx::new("cam1").to_string(), r#"stream "cam1""#);
        assert_eq!(
            StreamCtx::new("cam1")
                .rendition("720p")
                .pts(123456)
                .to_string(),
            r#"stream "cam1", rendition 720p, pts 123456"#
        );
        assert_eq!(
            StreamCtx::new("cam1").pts(-3).to_string(),
            r#"stream "cam1", pts -3"#
        );
    }

    #[test]
    fn a_name_with_quotes_or_controls_stays_one_token() {
        assert_eq!(StreamCtx::new("a\"b\nc").to_string(), r#"stream "a\"b\nc""#);
    }
}
