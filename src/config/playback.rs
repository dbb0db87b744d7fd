//! `[playback]`: signed playback URLs.

use serde::Deserialize;

/// Who may watch: signed playback URLs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Playback {
    /// A file holding the HMAC-SHA256 key (at least 32 bytes; reloaded on
    /// SIGHUP). Set: `/live/…` and `/vod/…` answer only signed URLs
    /// (`ladderd sign NAME --ttl 1h`). Empty: playback is open.
    pub signing_key: std::path::PathBuf,
    /// How long an edge may keep the origin's "this token is good" answer
    /// (`/live/NAME/t/TOKEN/auth`), never past the token's expiry.
    pub auth_cache_secs: u32,
}

impl Default for Playback {
    fn default() -> Self {
        Playback {
            signing_key: std::path::PathBuf::new(),
            auth_cache_secs: 60,
        }
    }
}
