//! Object file names within a rendition: written by the playlists, read back
//! by the origin (its only URI grammar).

/// A media object's file name within its rendition: what [`part_uri`],
/// [`segment_uri`], [`init_uri`] and [`long_segment_uri`] write, and
/// [`parse_object_name`] reads back (the origin's only URI grammar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectName {
    Init(u32),
    Part(u64, u32),
    Segment(u64),
    Long(u64),
}

impl ObjectName {
    pub fn uri(self) -> String {
        match self {
            ObjectName::Init(v) => init_uri(v),
            ObjectName::Part(msn, i) => part_uri(msn, i),
            ObjectName::Segment(msn) => segment_uri(msn),
            ObjectName::Long(n) => long_segment_uri(n),
        }
    }
}

/// File names the packager publishes; anything else (`..` included) is not ours.
pub fn parse_object_name(file: &str) -> Option<ObjectName> {
    fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
        // Digits only: no signs, no spaces, no leading zeros (one name per
        // object: `seg07.m4s` is not a second, separately cached `seg7.m4s`).
        // Out of the type's range: not ours either.
        let canonical = s == "0" || !s.starts_with('0');
        (!s.is_empty() && canonical && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())?
    }
    if let Some(v) = file
        .strip_prefix("init")
        .and_then(|f| f.strip_suffix(".mp4"))
    {
        return num(v).map(ObjectName::Init);
    }
    let stem = file.strip_suffix(".m4s")?;
    if let Some(rest) = stem.strip_prefix("part") {
        let (msn, i) = rest.split_once('.')?;
        return Some(ObjectName::Part(num(msn)?, num(i)?));
    }
    if let Some(n) = stem.strip_prefix("seg") {
        return num(n).map(ObjectName::Segment);
    }
    stem.strip_prefix("long")
        .and_then(num)
        .map(ObjectName::Long)
}

pub fn part_uri(msn: u64, index: u32) -> String {
    format!("part{msn}.{index}.m4s")
}

pub fn segment_uri(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

pub fn init_uri(version: u32) -> String {
    format!("init{version}.mp4")
}

pub fn long_segment_uri(n: u64) -> String {
    format!("long{n}.m4s")
}
