//! Live-to-VOD: a recording is one run of a stream (its media epoch), the
//! segments the DVR holds of it frozen at the moment it was made: hard links
//! under `DIR/.recordings/ID/RENDITION/` (the rewind window's eviction
//! unlinks only the DVR's names, so a recording keeps its bytes without a
//! copy) and `recording.json`, which says what they are. Made on the storage
//! thread, after every segment queued before it, so a recording made as a
//! stream ends holds its last segment.
//!
//! A recording is written as `ID.partial` and renamed when complete: a crash
//! mid-way leaves a `.partial` that start-up deletes, never half a recording.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::package::hls::{RenditionSummary, SegmentEntry};

/// Where recordings live under the DVR directory (stream names never start
/// with a dot, so it is no stream's directory).
pub const DIR: &str = ".recordings";

/// One recording, as `recording.json` and `GET /api/v1/recordings` say it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub id: String,
    pub stream: String,
    /// The run of the stream it came from (its media epoch, Unix ms).
    pub epoch_ms: u64,
    /// When it was made (Unix ms).
    pub created_ms: u64,
    /// `ended` (the stream ended) or `api` (asked for while live).
    pub reason: String,
    /// Wall-clock time of its first sample (Unix ms) and its length (s).
    pub start_ms: u64,
    pub duration_secs: f64,
    /// The stream's segment target (s): the MPD's tolerances.
    pub segment_target: f64,
    pub renditions: Vec<RecordedRendition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRendition {
    pub summary: RenditionSummary,
    pub segments: Vec<SegmentEntry>,
}

impl Recording {
    pub fn rendition(&self, name: &str) -> Option<&RecordedRendition> {
        self.renditions.iter().find(|r| r.summary.name == name)
    }

    /// Whether `file` (`seg{N}.m4s`, `init{V}.mp4`) is one of a rendition's.
    pub fn has(&self, rendition: &str, file: &str) -> bool {
        use crate::package::hls::{parse_object_name, ObjectName};
        let Some(r) = self.rendition(rendition) else {
            return false;
        };
        match parse_object_name(file) {
            Some(ObjectName::Segment(msn)) => r.segments.iter().any(|s| s.msn == msn),
            Some(ObjectName::Init(v)) => r.segments.iter().any(|s| s.init_version == v),
            _ => false,
        }
    }
}

/// What a recording is made of: a rendition's summary and its segments on
/// disk (the files under `from`).
pub struct Source {
    pub summary: RenditionSummary,
    pub segments: Vec<SegmentEntry>,
    pub from: PathBuf,
}

/// The recording's id: the stream name and the time it was made (a name
/// is URL- and file-safe: `config::valid_name`).
pub fn id(stream: &str, created_ms: u64) -> String {
    format!("{stream}-{created_ms}")
}

/// Makes recording `rec` (its renditions filled from `sources`) under
/// `root` (`DIR/.recordings`): links every segment and init file, writes
/// `recording.json`, syncs, and renames the directory into place.
pub fn make(root: &Path, mut rec: Recording, sources: Vec<Source>) -> std::io::Result<Recording> {
    let partial = root.join(format!("{}.partial", rec.id));
    let done = root.join(&rec.id);
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    let mut first_pdt = u64::MAX;
    let mut end_pdt = 0u64;
    for src in sources.into_iter().filter(|s| !s.segments.is_empty()) {
        let dir = partial.join(&src.summary.name);
        std::fs::create_dir_all(&dir)?;
        let mut inits: Vec<u32> = src.segments.iter().map(|s| s.init_version).collect();
        inits.dedup();
        let files = src
            .segments
            .iter()
            .map(|s| format!("seg{}.m4s", s.msn))
            .chain(inits.iter().map(|v| format!("init{v}.mp4")));
        for f in files {
            link_or_copy(&src.from.join(&f), &dir.join(&f))?;
        }
        for s in &src.segments {
            first_pdt = first_pdt.min(s.pdt_ms);
            end_pdt = end_pdt.max(s.pdt_ms + (s.duration * 1000.0).round() as u64);
        }
        let mut summary = src.summary;
        // A recording's renditions are listed whatever the live one did.
        summary.ended = false;
        rec.renditions.push(RecordedRendition {
            summary,
            segments: src.segments,
        });
    }
    if rec.renditions.is_empty() {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(std::io::Error::other(
            "the DVR holds no segment of this stream run",
        ));
    }
    rec.start_ms = first_pdt;
    rec.duration_secs = end_pdt.saturating_sub(first_pdt) as f64 / 1000.0;
    let json = serde_json::to_vec_pretty(&rec).map_err(std::io::Error::other)?;
    let meta = partial.join("recording.json");
    std::fs::write(&meta, json)?;
    std::fs::File::open(&meta)?.sync_all()?;
    std::fs::rename(&partial, &done)?;
    std::fs::File::open(root)?.sync_all()?;
    Ok(rec)
}

/// A hard link where the file system has them, else a copy.
fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", from.display()),
        )),
        Err(_) => std::fs::copy(from, to).map(|_| ()),
    }
}

/// The recordings under `root`, oldest first; a `.partial` (a crash while
/// one was made) or an unreadable one is deleted.
pub fn load(root: &Path) -> Vec<Recording> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(root) else {
        return out;
    };
    for e in dir.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".partial") {
            let _ = std::fs::remove_dir_all(&path);
            continue;
        }
        let read = std::fs::read(path.join("recording.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Recording>(&b).ok());
        match read {
            Some(rec) if rec.id == name => out.push(rec),
            _ => {
                tracing::warn!(path = %path.display(), "recording without a readable recording.json: deleted");
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
    out.sort_by_key(|r| (r.created_ms, r.id.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::RenditionKind;

    fn entry(msn: u64) -> SegmentEntry {
        SegmentEntry {
            msn,
            duration: 2.0,
            pdt_ms: 1_000_000 + msn * 2000,
            discontinuity: false,
            init_version: 0,
            parts: Vec::new(),
            complete: true,
            start: msn * 180_000,
            timescale: 90_000,
        }
    }

    fn summary() -> RenditionSummary {
        RenditionSummary {
            name: "360p30".into(),
            codecs: "avc1.42c01e".into(),
            kind: RenditionKind::Video {
                width: 640,
                height: 360,
                fps: 30.0,
                nominal_bps: 800_000,
            },
            measured_bps: Some((700_000, 900_000)),
            ended: true,
        }
    }

    fn empty(id: &str) -> Recording {
        Recording {
            id: id.into(),
            stream: "cam".into(),
            epoch_ms: 5,
            created_ms: 9,
            reason: "api".into(),
            start_ms: 0,
            duration_secs: 0.0,
            segment_target: 2.0,
            renditions: Vec::new(),
        }
    }

    /// Made, survives its sources' deletion (eviction), read back by
    /// `load`; a `.partial` left by a crash is deleted at load.
    #[test]
    fn a_recording_outlives_eviction_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("cam/5/360p30");
        std::fs::create_dir_all(&from).unwrap();
        for f in ["init0.mp4", "seg3.m4s", "seg4.m4s"] {
            std::fs::write(from.join(f), f).unwrap();
        }
        let root = dir.path().join(DIR);
        std::fs::create_dir_all(root.join("cam-1.partial")).unwrap();
        let rec = make(
            &root,
            empty("cam-9"),
            vec![Source {
                summary: summary(),
                segments: vec![entry(3), entry(4)],
                from: from.clone(),
            }],
        )
        .unwrap();
        assert_eq!(rec.start_ms, 1_006_000);
        assert_eq!(rec.duration_secs, 4.0);
        assert!(!rec.renditions[0].summary.ended);
        assert!(rec.has("360p30", "seg4.m4s") && rec.has("360p30", "init0.mp4"));
        assert!(!rec.has("360p30", "seg5.m4s") && !rec.has("audio", "seg4.m4s"));
        std::fs::remove_dir_all(&from).unwrap();
        let loaded = load(&root);
        assert_eq!(loaded, vec![rec]);
        assert_eq!(
            std::fs::read(root.join("cam-9/360p30/seg4.m4s")).unwrap(),
            b"seg4.m4s"
        );
        assert!(!root.join("cam-1.partial").exists());
    }

    #[test]
    fn nothing_on_disk_is_no_recording() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(DIR);
        let made = make(
            &root,
            empty("cam-9"),
            vec![Source {
                summary: summary(),
                segments: Vec::new(),
                from: dir.path().into(),
            }],
        );
        assert!(made.is_err());
        assert!(load(&root).is_empty());
    }
}
