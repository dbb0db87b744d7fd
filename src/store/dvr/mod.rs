//! The warm tier: every published segment and init object on local disk,
//! written with O_DIRECT through io_uring (glommio's `DmaStreamWriter`) on a
//! storage thread of its own, so hours of rewind outlive the RAM window.
//!
//! Layout: `DIR/NAME/EPOCH/RENDITION/{init{V}.mp4, seg{N}.m4s, index}`, where
//! EPOCH is the publish's media epoch (Unix ms), so a later publish of the
//! same NAME never overwrites an earlier one's files. A segment's record is
//! appended to `index` (and `fdatasync`ed) only after its file is closed,
//! which syncs it: a crash loses at most the segment being written.
//!
//! A full or failing disk costs the DVR, never the live stream: the write is
//! counted in `ladderd_dvr_write_errors_total`, logged once, and the RAM
//! window keeps serving.
//!
//! Files: this one is the store's face (queue a write, ask for a run's
//! segments, read an object, make a recording); `writer` is the storage
//! thread, `eviction` the rewind window and the size cap, `timeline` how runs
//! of a NAME chain into one DVR timeline, `recovery` what start-up reads back,
//! `files` the io_uring reads and writes, `stats` the counters.

pub mod index;
pub mod recordings;

mod eviction;
mod files;
mod job;
mod recovery;
mod stats;
mod timeline;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tracing::{info, warn};

// The wall clock the DVR's windows are kept on (Unix ms).
use crate::media::StreamCtx;
use crate::package::hls::{RenditionSummary, SegmentEntry};
use crate::telemetry::clock::unix_ms;
use files::read_path;
use index::Record;
use job::Job;
use recordings::Recording;
use recovery::recover;
pub use stats::DvrStats;
use timeline::{chain_for, split_key, OnDisk};
pub use timeline::{Chain, RunSegments};

/// `[dvr]` as the store needs it.
#[derive(Debug, Clone)]
pub struct DvrConfig {
    pub dir: PathBuf,
    /// Rewind kept per rendition (s).
    pub window_secs: f64,
    /// All renditions of all streams together; 0: no cap but the window.
    pub max_bytes: u64,
    /// A stream's run becomes a recording (live-to-VOD) when it ends.
    pub record_on_end: bool,
    /// The CPU the storage thread is pinned to (the runtime's last I/O
    /// core); None: unpinned.
    pub cpu: Option<usize>,
    /// Evicted records before an index is compacted (not a config key:
    /// [`DEFAULT_COMPACT_AFTER`]; tests use fewer).
    pub compact_after: usize,
}

/// What a graceful stop could not finish in its time ([`Dvr::flush`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "DVR flush: {unfinished} queued writes, index appends or recordings not finished in {waited:?}"
)]
pub struct FlushIncomplete {
    pub unfinished: usize,
    pub waited: std::time::Duration,
}

/// Where a recording asked for stands (`GET /api/v1/recordings/ID`).
#[derive(Debug, Clone, PartialEq)]
pub enum RecordingState {
    /// Queued behind the segments still being written.
    Pending,
    Done(Box<Recording>),
    Failed(String),
}

/// Records evicted since the last compaction before an index is rewritten
/// without them (about 34 min of 2 s segments).
pub const DEFAULT_COMPACT_AFTER: usize = 1024;

pub struct Dvr {
    config: DvrConfig,
    /// The cold tier: every object written here is queued there.
    archive: Option<Arc<crate::store::archive::Archive>>,
    jobs: flume::Sender<Job>,
    /// By `NAME/EPOCH`, then rendition.
    disk: Mutex<HashMap<String, HashMap<String, OnDisk>>>,
    /// Recordings by id: made, being made, or failed.
    recordings: Mutex<std::collections::BTreeMap<String, RecordingState>>,
    /// The newest recording id's time, so two made in one ms differ.
    last_recording_ms: AtomicU64,
    pub stats: DvrStats,
    logged: AtomicBool,
    /// Jobs queued and not yet done (segments, inits, recordings): what a
    /// stop that cannot wait would lose.
    unfinished: std::sync::atomic::AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
pub enum DvrError {
    #[error("DVR directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("DVR directory {path}: cannot start the storage thread: {source}")]
    Thread {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One of a rendition's files (`what`: a segment, an init segment, its
    /// index, its chain) was not written.
    #[error("{ctx}: {what} {path}: {source}")]
    Write {
        ctx: StreamCtx,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The storage thread's queue was full: `what` is not kept.
    #[error("{ctx}: the storage thread is behind; {what} not kept")]
    Behind { ctx: StreamCtx, what: &'static str },
}

impl DvrError {
    /// The stream and rendition of a DVR lane: run `key` (`NAME/EPOCH`) of
    /// the stream NAME.
    fn lane(key: &str, rendition: &str) -> StreamCtx {
        let stream = split_key(key).map_or(key, |(name, _)| name);
        StreamCtx::new(stream).rendition(rendition)
    }

    /// `what` of `rendition` in run `key`, at `path`, not written.
    pub(super) fn write(
        key: &str,
        rendition: &str,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    ) -> DvrError {
        DvrError::Write {
            ctx: DvrError::lane(key, rendition),
            what,
            path,
            source,
        }
    }

    /// The stream (and rendition) this error names, if any.
    pub fn ctx(&self) -> Option<&StreamCtx> {
        match self {
            DvrError::Write { ctx, .. } | DvrError::Behind { ctx, .. } => Some(ctx),
            DvrError::Dir { .. } | DvrError::Thread { .. } => None,
        }
    }
}

impl Dvr {
    /// Opens the DVR directory (made if missing, checked writable) and starts
    /// its storage thread.
    pub fn start(
        config: DvrConfig,
        archive: Option<Arc<crate::store::archive::Archive>>,
    ) -> Result<Arc<Dvr>, DvrError> {
        let dir_error = |source| DvrError::Dir {
            path: config.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.dir).map_err(dir_error)?;
        let (tx, rx) = flume::bounded(1024);
        let stats = DvrStats::default();
        let found = recover(&config.dir, &stats).map_err(dir_error)?;
        let made = recordings::load(&config.dir.join(recordings::DIR));
        let dvr = Arc::new(Dvr {
            config: config.clone(),
            archive,
            jobs: tx,
            disk: Mutex::new(found),
            last_recording_ms: AtomicU64::new(made.iter().map(|r| r.created_ms).max().unwrap_or(0)),
            recordings: Mutex::new(
                made.into_iter()
                    .map(|r| (r.id.clone(), RecordingState::Done(Box::new(r))))
                    .collect(),
            ),
            stats,
            logged: AtomicBool::new(false),
            unfinished: Default::default(),
        });
        // What an earlier run left counts against the window and the cap.
        dvr.evict(unix_ms());
        let writer = dvr.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("dvr-writer".into())
            .spawn(move || writer.run(rx, ready_tx))
            .map_err(|source| DvrError::Thread {
                path: config.dir.clone(),
                source,
            })?;
        // The storage thread's first write, the way every segment is
        // written: a file system without O_DIRECT fails here, at start-up.
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(dir_error(source)),
            Err(_) => return Err(dir_error(std::io::Error::other("storage thread gone"))),
        }
        info!(dir = %config.dir.display(), window_secs = config.window_secs, cpu = ?config.cpu, "DVR on");
        Ok(dvr)
    }

    pub fn config(&self) -> &DvrConfig {
        &self.config
    }

    fn rendition_dir(&self, key: &str, rendition: &str) -> PathBuf {
        self.config.dir.join(key).join(rendition)
    }

    /// A new init object of a rendition (to disk, in order with its segments).
    pub fn init(&self, key: &str, rendition: &str, version: u32, data: Bytes) {
        self.submit(Job::Init {
            key: key.to_string(),
            rendition: rendition.to_string(),
            version,
            data,
        });
    }

    /// A complete segment of a rendition.
    pub fn segment(&self, key: &str, rendition: &str, entry: &SegmentEntry, data: Bytes) {
        let mut entry = entry.clone();
        entry.parts.clear();
        self.submit(Job::Segment {
            key: key.to_string(),
            rendition: rendition.to_string(),
            entry,
            data,
            queued: std::time::Instant::now(),
        });
    }

    /// Asks for a recording of run `key` (`NAME/EPOCH`, the media epoch
    /// `epoch_ms`) of `stream`: made on the storage thread after the segments
    /// queued before it. Returns its id at once (`RecordingState::Pending`
    /// until made).
    pub fn record(
        &self,
        key: &str,
        stream: &str,
        epoch_ms: u64,
        reason: &str,
        segment_target: f64,
        summaries: Vec<RenditionSummary>,
    ) -> String {
        let now = unix_ms();
        let created_ms = loop {
            let last = self.last_recording_ms.load(Relaxed);
            let next = now.max(last + 1);
            if self
                .last_recording_ms
                .compare_exchange(last, next, Relaxed, Relaxed)
                .is_ok()
            {
                break next;
            }
        };
        let id = recordings::id(stream, created_ms);
        let recording = Recording {
            id: id.clone(),
            stream: stream.to_string(),
            epoch_ms,
            created_ms,
            reason: reason.to_string(),
            start_ms: 0,
            duration_secs: 0.0,
            segment_target,
            renditions: Vec::new(),
        };
        self.recordings_lock()
            .insert(id.clone(), RecordingState::Pending);
        let job = Job::Record {
            key: key.to_string(),
            recording,
            summaries,
        };
        if self.jobs.try_send(job).is_err() {
            self.recording_failed(&id, stream, "the storage thread is behind");
        } else {
            self.unfinished.fetch_add(1, Relaxed);
        }
        id
    }

    fn recordings_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, RecordingState>> {
        self.recordings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn recording_failed(&self, id: &str, stream: &str, why: &str) {
        self.stats.recording_errors.fetch_add(1, Relaxed);
        warn!(recording = id, stream, "recording failed: {why}");
        self.recordings_lock()
            .insert(id.to_string(), RecordingState::Failed(why.to_string()));
    }

    /// Every recording made, oldest first.
    pub fn recordings(&self) -> Vec<Recording> {
        let mut v: Vec<Recording> = self
            .recordings_lock()
            .values()
            .filter_map(|s| match s {
                RecordingState::Done(r) => Some((**r).clone()),
                _ => None,
            })
            .collect();
        v.sort_by_key(|r| (r.created_ms, r.id.clone()));
        v
    }

    pub fn recording(&self, id: &str) -> Option<RecordingState> {
        self.recordings_lock().get(id).cloned()
    }

    /// Deletes a made (or failed) recording and its files; false if there
    /// is none by that id or it is still being made.
    pub fn delete_recording(&self, id: &str) -> bool {
        let mut recs = self.recordings_lock();
        match recs.get(id) {
            None | Some(RecordingState::Pending) => false,
            Some(_) => {
                recs.remove(id);
                drop(recs);
                let _ = std::fs::remove_dir_all(self.config.dir.join(recordings::DIR).join(id));
                true
            }
        }
    }

    /// An object of a recording (`seg{N}.m4s`, `init{V}.mp4` of one of its
    /// renditions), from disk.
    pub async fn read_recorded(&self, id: &str, rendition: &str, file: &str) -> Option<Bytes> {
        let known = match self.recordings_lock().get(id) {
            Some(RecordingState::Done(r)) => r.has(rendition, file),
            _ => false,
        };
        if !known {
            return None;
        }
        read_path(
            &self
                .config
                .dir
                .join(recordings::DIR)
                .join(id)
                .join(rendition)
                .join(file),
        )
        .await
    }

    /// Never blocks the packager: a storage thread that cannot keep up
    /// loses segments, counted like any write error.
    fn submit(&self, job: Job) {
        if let Err(e) = self.jobs.try_send(job) {
            let (key, rendition, what) = match e.into_inner() {
                Job::Init { key, rendition, .. } => (key, rendition, "init segment"),
                Job::Segment { key, rendition, .. } => (key, rendition, "segment"),
                // Queued by their own callers, never through here.
                Job::Record { .. } | Job::Flush(_) => return,
            };
            let ctx = DvrError::lane(&key, &rendition);
            self.failed(DvrError::Behind { ctx, what });
        } else {
            self.unfinished.fetch_add(1, Relaxed);
        }
    }

    /// Waits, at most `within`, until every write, index append and
    /// recording queued so far is on disk: a graceful stop calls it after
    /// the streams have ended (their last segments and recordings queued),
    /// since the storage thread dies with the process.
    pub fn flush(&self, within: std::time::Duration) -> Result<(), FlushIncomplete> {
        let start = std::time::Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let done = self.jobs.send_timeout(Job::Flush(tx), within).is_ok()
            && rx
                .recv_timeout(within.saturating_sub(start.elapsed()))
                .is_ok();
        let unfinished = self.unfinished.load(Relaxed);
        if done && unfinished == 0 {
            Ok(())
        } else {
            Err(FlushIncomplete {
                unfinished,
                waited: start.elapsed(),
            })
        }
    }

    fn failed(&self, e: DvrError) {
        self.stats.write_errors.fetch_add(1, Relaxed);
        if !self.logged.swap(true, Relaxed) {
            warn!("DVR write failed: {e} (the live stream plays on from RAM; further failures are counted in ladderd_dvr_write_errors_total)");
        }
    }

    /// A rendition's DVR timeline up to run `epoch_ms` of `name` (the
    /// current one): the runs of its chain with segments on disk, oldest
    /// first, and the current run always (its newest segments may still be
    /// in RAM only).
    pub fn runs(&self, name: &str, epoch_ms: u64, rendition: &str) -> Vec<RunSegments> {
        let disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        let current_key = format!("{name}/{epoch_ms}");
        let current = disk
            .get(&current_key)
            .and_then(|rs| rs.get(rendition))
            .and_then(|d| d.chain)
            .unwrap_or_else(|| chain_for(&disk, &current_key, rendition));
        let mut runs: Vec<RunSegments> = disk
            .iter()
            .filter_map(|(k, rs)| {
                let (n, e) = split_key(k)?;
                let d = rs.get(rendition)?;
                let c = d.chain?;
                (n == name && e <= epoch_ms && c.origin_ms == current.origin_ms)
                    .then_some((e, d, c))
            })
            .filter(|(e, d, _)| *e == epoch_ms || !d.records.is_empty())
            .map(|(e, d, c)| RunSegments {
                epoch_ms: e,
                segments: d.records.iter().map(Record::entry).collect(),
                sequence: c.sequence + d.evicted,
                discontinuity_sequence: c.discontinuities + d.discontinuity_sequence,
                origin_ms: c.origin_ms,
            })
            .collect();
        if !runs.iter().any(|r| r.epoch_ms == epoch_ms) {
            runs.push(RunSegments {
                epoch_ms,
                segments: Vec::new(),
                sequence: current.sequence,
                discontinuity_sequence: current.discontinuities,
                origin_ms: current.origin_ms,
            });
        }
        runs.sort_by_key(|r| r.epoch_ms);
        runs
    }

    /// The rendition's segments on disk (oldest first) and its
    /// discontinuity sequence, for a DVR playlist.
    pub fn segments(&self, key: &str, rendition: &str) -> (Vec<SegmentEntry>, u64) {
        let disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        disk.get(key)
            .and_then(|rs| rs.get(rendition))
            .map_or((Vec::new(), 0), |d| {
                (
                    d.records.iter().map(Record::entry).collect(),
                    d.discontinuity_sequence,
                )
            })
    }

    /// An object of a rendition from disk: `seg{N}.m4s` while its record is
    /// in the window, `init{V}.mp4` once written.
    pub async fn read(&self, key: &str, rendition: &str, file: &str) -> Option<Bytes> {
        let known = {
            let disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
            let d = disk.get(key)?.get(rendition)?;
            match crate::package::hls::parse_object_name(file)? {
                crate::package::hls::ObjectName::Segment(msn) => {
                    d.records.iter().any(|r| r.msn == msn)
                }
                crate::package::hls::ObjectName::Init(v) => d.inits.contains(&v),
                _ => false,
            }
        };
        if !known {
            return None;
        }
        read_path(&self.rendition_dir(key, rendition).join(file)).await
    }
}
