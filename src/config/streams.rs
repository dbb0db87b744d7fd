//! `[[streams]]`: the configured stream names and their keys.

use std::collections::HashSet;

use serde::Deserialize;

use super::invalid::{ensure, range, Invalid};
use super::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Public name, used in playback URLs.
    pub name: String,
    /// Secret the publisher sends as `?key=`.
    pub key: Secret,
    /// Overrides `ingest.takeover` for this stream.
    #[serde(default)]
    pub takeover: Option<bool>,
    /// Overrides `ingest.srt_latency_ms` for this stream.
    #[serde(default)]
    pub srt_latency_ms: Option<u32>,
}

/// Every `[[streams]]` entry: a valid name once, a key long enough, an SRT
/// latency (when set) in range.
pub fn validate(streams: &[StreamConfig]) -> Result<(), Invalid> {
    for s in streams {
        if let Some(ms) = s.srt_latency_ms {
            range(
                format!("streams.{}.srt_latency_ms", s.name),
                ms,
                20..=8000,
                "must be between 20 and 8000 ms",
            )?;
        }
    }
    let mut names = HashSet::new();
    for (i, s) in streams.iter().enumerate() {
        ensure(
            valid_name(&s.name),
            format!("streams[{i}].name"),
            format!("{:?}: use 1-64 characters from A-Z a-z 0-9 _ - .", s.name),
        )?;
        ensure(
            names.insert(&s.name),
            format!("streams[{i}].name"),
            format!("{:?} is configured twice", s.name),
        )?;
        range(
            format!("streams[{i}].key"),
            s.key.expose().len(),
            8..,
            "must be at least 8 characters",
        )?;
    }
    Ok(())
}

/// Stream and app names: safe in URLs, paths and logs.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}
