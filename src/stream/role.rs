//! A publisher's part in its NAME (a leaf: the registry, the feeds, the
//! switcher and the API all name it).

/// A publisher's part in its NAME: the one the renditions follow, or a
/// second feed they fail over to (`role=backup` in the RTMP query or the SRT
/// stream id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Backup,
}
