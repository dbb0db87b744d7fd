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

pub mod index;
pub mod recordings;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tracing::{info, warn};

use crate::package::hls::{RenditionSummary, SegmentEntry};
use index::Record;
use recordings::Recording;

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

/// Counters `/metrics` reads.
#[derive(Default)]
pub struct DvrStats {
    pub segments_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub write_errors: AtomicU64,
    pub segments_evicted: AtomicU64,
    /// Init objects deleted once no segment on disk named them.
    pub inits_evicted: AtomicU64,
    pub bytes_on_disk: AtomicU64,
    pub recordings_made: AtomicU64,
    pub recording_errors: AtomicU64,
    pub index_compactions: AtomicU64,
    /// The newest segment writes' latency (µs, from the packager's hand-off
    /// to the index synced), for `write_latency`.
    write_micros: Mutex<VecDeque<u32>>,
}

/// How many segment writes `write_latency` looks back over.
const LATENCY_SAMPLES: usize = 4096;

impl DvrStats {
    /// p50 and p99 (s) of the newest segment writes' latency, from the
    /// packager's hand-off to the index synced (queueing included).
    pub fn write_latency(&self) -> Option<(f64, f64)> {
        let mut v: Vec<u32> = self
            .write_micros
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: f64| f64::from(v[((v.len() - 1) as f64 * q).round() as usize]) / 1e6;
        Some((at(0.5), at(0.99)))
    }

    fn record_write(&self, took: std::time::Duration) {
        let mut w = self.write_micros.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() == LATENCY_SAMPLES {
            w.pop_front();
        }
        w.push_back(took.as_micros().min(u128::from(u32::MAX)) as u32);
    }
}

enum Job {
    Init {
        key: String,
        rendition: String,
        version: u32,
        data: Bytes,
    },
    Segment {
        key: String,
        rendition: String,
        entry: SegmentEntry,
        data: Bytes,
        queued: std::time::Instant,
    },
    Record {
        key: String,
        recording: Recording,
        summaries: Vec<RenditionSummary>,
    },
    /// Answered once every job queued before it is done (a graceful stop).
    Flush(std::sync::mpsc::Sender<()>),
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

/// One rendition's segments on disk, oldest first.
#[derive(Default)]
struct OnDisk {
    records: VecDeque<Record>,
    inits: BTreeSet<u32>,
    /// Discontinuity tags before the oldest record (evicted with their
    /// segments): EXT-X-DISCONTINUITY-SEQUENCE within the run.
    discontinuity_sequence: u64,
    /// Segments evicted so far: the media sequence within the run.
    evicted: u64,
    /// Records evicted since the index was last compacted.
    stale: usize,
    /// The newest record evicted while none followed it: whether a tag
    /// stands between it and the next one is known when that one comes.
    evicted_last: Option<Record>,
    /// Where the run continues its NAME's DVR timeline; None until the
    /// rendition's first object of the run is on the storage thread.
    chain: Option<Chain>,
    /// Bytes of its files other than segments (inits, index, chain): they
    /// count against `max_disk_gb` too.
    overhead: u64,
    /// The index file's bytes (part of `overhead`).
    index_bytes: u64,
}

/// Where one run (`NAME/EPOCH`) of a rendition continues the NAME's DVR
/// timeline, so a NAME resumed after a restart or a long outage keeps the
/// earlier runs seekable behind one playlist: the media sequence and the
/// discontinuity sequence of the run's first segment carry on from the run
/// before (its segments, then a discontinuity), and every run of a chain
/// shares the first one's epoch as its MPD's `availabilityStartTime`.
/// Persisted per rendition (`chain`) when the run starts, so the numbers
/// never go back over a restart. A chain starts afresh when the run before
/// has nothing left on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    pub sequence: u64,
    pub discontinuities: u64,
    pub origin_ms: u64,
}

impl Chain {
    fn encode(&self) -> String {
        format!(
            "{} {} {}\n",
            self.sequence, self.discontinuities, self.origin_ms
        )
    }

    fn decode(text: &str) -> Option<Chain> {
        let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
        let c = Chain {
            sequence: it.next()??,
            discontinuities: it.next()??,
            origin_ms: it.next()??,
        };
        it.next().is_none().then_some(c)
    }
}

/// One run of a rendition in a NAME's DVR timeline, for the DVR playlist
/// and MPD.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSegments {
    pub epoch_ms: u64,
    /// Oldest first.
    pub segments: Vec<SegmentEntry>,
    /// Media sequence and discontinuity sequence of the first one.
    pub sequence: u64,
    pub discontinuity_sequence: u64,
    /// The chain's first epoch (the DVR MPD's `availabilityStartTime`).
    pub origin_ms: u64,
}

/// Whether a playlist puts EXT-X-DISCONTINUITY between two segments of a
/// run: a flagged one, or a gap (a segment that was never kept).
fn tag_between(prev: &Record, next: &Record) -> bool {
    next.discontinuity || next.msn != prev.msn + 1
}

fn tags_within(records: &VecDeque<Record>) -> u64 {
    records
        .iter()
        .zip(records.iter().skip(1))
        .filter(|(a, b)| tag_between(a, b))
        .count() as u64
}

/// `NAME/EPOCH` → (NAME, EPOCH).
fn split_key(key: &str) -> Option<(&str, u64)> {
    let (name, epoch) = key.rsplit_once('/')?;
    Some((name, epoch.parse().ok()?))
}

/// Records evicted since the last compaction before an index is rewritten
/// without them (about 34 min of 2 s segments).
pub const DEFAULT_COMPACT_AFTER: usize = 1024;

/// The chain a new run `key` of `rendition` starts: after the NAME's
/// latest earlier run of the rendition that still has segments on disk.
fn chain_for(disk: &HashMap<String, HashMap<String, OnDisk>>, key: &str, rendition: &str) -> Chain {
    let Some((name, epoch)) = split_key(key) else {
        return Chain {
            sequence: 0,
            discontinuities: 0,
            origin_ms: 0,
        };
    };
    let earlier = |k: &String| {
        split_key(k)
            .filter(|(n, e)| *n == name && *e < epoch)
            .map(|(_, e)| e)
    };
    let prev = disk
        .iter()
        .filter_map(|(k, rs)| Some((earlier(k)?, rs.get(rendition)?)))
        .filter(|(_, d)| !d.records.is_empty())
        .max_by_key(|(e, _)| *e);
    if let Some((_, d)) = prev {
        if let Some(c) = d.chain {
            return Chain {
                sequence: c.sequence + d.evicted + d.records.len() as u64,
                discontinuities: c.discontinuities
                    + d.discontinuity_sequence
                    + tags_within(&d.records)
                    + 1,
                origin_ms: c.origin_ms,
            };
        }
    }
    // A rendition new to the NAME joins the chain of the others' latest run.
    let origin_ms = disk
        .iter()
        .filter_map(|(k, rs)| Some((earlier(k)?, rs)))
        .filter(|(_, rs)| rs.values().any(|d| !d.records.is_empty()))
        .max_by_key(|(e, _)| *e)
        .and_then(|(_, rs)| rs.values().find_map(|d| d.chain))
        .map_or(epoch, |c| c.origin_ms);
    Chain {
        sequence: 0,
        discontinuities: 0,
        origin_ms,
    }
}

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
        if self.jobs.try_send(job).is_err() {
            self.failed(
                &self.config.dir,
                "the storage thread is behind; segment not kept",
            );
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

    fn failed(&self, path: &Path, why: &str) {
        self.stats.write_errors.fetch_add(1, Relaxed);
        if !self.logged.swap(true, Relaxed) {
            warn!(path = %path.display(), "DVR write failed: {why} (the live stream plays on from RAM; further failures are counted in ladderd_dvr_write_errors_total)");
        }
    }

    fn run(
        self: Arc<Self>,
        rx: flume::Receiver<Job>,
        ready: std::sync::mpsc::Sender<std::io::Result<()>>,
    ) {
        let placement = match self.config.cpu {
            Some(cpu) => glommio::Placement::Fixed(cpu),
            None => glommio::Placement::Unbound,
        };
        let ex = glommio::LocalExecutorBuilder::new(placement)
            .name("dvr-writer")
            .make();
        let ex = match ex {
            Ok(ex) => ex,
            Err(e) => {
                let _ = ready.send(Err(std::io::Error::other(format!(
                    "no io_uring executor: {e}"
                ))));
                return;
            }
        };
        ex.run(async move {
            let dir = self.config.dir.clone();
            let probe = dir.join(".ladderd-write-check");
            let checked = write_file(&dir, &probe, b"ladderd DVR write check").await;
            let _ = std::fs::remove_file(&probe);
            let ok = checked.is_ok();
            let _ = ready.send(checked);
            if !ok {
                return;
            }
            // One lane per rendition: its segments are written (and its
            // index appended) in order; lanes run side by side, so the disk
            // sees several writes in flight (io_uring), not one at a time.
            let mut lanes: HashMap<(String, String), flume::Sender<Job>> = HashMap::new();
            let in_flight = std::rc::Rc::new(std::cell::Cell::new(0usize));
            while let Ok(job) = rx.recv_async().await {
                let lane = match &job {
                    Job::Init { key, rendition, .. } | Job::Segment { key, rendition, .. } => {
                        (key.clone(), rendition.clone())
                    }
                    Job::Record { key, .. } => {
                        // A run is recorded as it ends: its lanes go (each
                        // task ends once its queue is empty).
                        lanes.retain(|(k, _), _| k != key);
                        // After every write queued before it.
                        while in_flight.get() > 0 {
                            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                        }
                        self.write(job).await;
                        self.unfinished.fetch_sub(1, Relaxed);
                        continue;
                    }
                    Job::Flush(done) => {
                        while in_flight.get() > 0 {
                            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                        }
                        let _ = done.send(());
                        continue;
                    }
                };
                if !lanes.contains_key(&lane) && !self.has_chain(&lane.0, &lane.1) {
                    // A new run: its chain counts the run before to its
                    // last segment, so that one's writes land first.
                    while in_flight.get() > 0 {
                        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    self.start_chain(&lane.0, &lane.1);
                }
                in_flight.set(in_flight.get() + 1);
                let tx = lanes.entry(lane).or_insert_with(|| {
                    let (tx, rx) = flume::unbounded::<Job>();
                    let me = self.clone();
                    let count = in_flight.clone();
                    glommio::spawn_local(async move {
                        while let Ok(job) = rx.recv_async().await {
                            me.write(job).await;
                            me.unfinished.fetch_sub(1, Relaxed);
                            count.set(count.get() - 1);
                        }
                    })
                    .detach();
                    tx
                });
                let _ = tx.send(job);
            }
        });
    }

    async fn write(&self, job: Job) {
        match job {
            Job::Init {
                key,
                rendition,
                version,
                data,
            } => {
                let dir = self.rendition_dir(&key, &rendition);
                let path = dir.join(format!("init{version}.mp4"));
                match write_file(&dir, &path, &data).await {
                    Ok(()) => {
                        let len = data.len() as u64;
                        if self.with(&key, &rendition, |d| {
                            let new = d.inits.insert(version);
                            if new {
                                d.overhead += len;
                            }
                            new
                        }) {
                            self.stats.bytes_on_disk.fetch_add(len, Relaxed);
                        }
                        self.archive(format!("{key}/{rendition}/init{version}.mp4"), path);
                    }
                    Err(e) => self.failed(&path, &e.to_string()),
                }
            }
            Job::Segment {
                key,
                rendition,
                entry,
                data,
                queued,
            } => {
                let dir = self.rendition_dir(&key, &rendition);
                let path = dir.join(format!("seg{}.m4s", entry.msn));
                let record = Record::of(&entry, data.len() as u64);
                let written = match write_file(&dir, &path, &data).await {
                    Ok(()) => append_index(&dir.join("index"), &record).await,
                    Err(e) => Err(e),
                };
                match written {
                    Ok(()) => {
                        self.stats.record_write(queued.elapsed());
                        self.stats.segments_written.fetch_add(1, Relaxed);
                        self.stats.bytes_written.fetch_add(record.bytes, Relaxed);
                        let index = index::RECORD as u64;
                        self.stats
                            .bytes_on_disk
                            .fetch_add(record.bytes + index, Relaxed);
                        self.with(&key, &rendition, |d| {
                            push(d, record);
                            d.overhead += index;
                            d.index_bytes += index;
                        });
                        self.archive(format!("{key}/{rendition}/seg{}.m4s", entry.msn), path);
                        self.evict(unix_ms());
                        self.compact(&key, &rendition, &dir).await;
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        self.failed(&path, &e.to_string());
                    }
                }
            }
            Job::Record {
                key,
                recording,
                summaries,
            } => {
                let (id, stream) = (recording.id.clone(), recording.stream.clone());
                let sources = summaries
                    .into_iter()
                    .map(|summary| recordings::Source {
                        segments: self.segments(&key, &summary.name).0,
                        from: self.rendition_dir(&key, &summary.name),
                        summary,
                    })
                    .collect();
                match recordings::make(&self.config.dir.join(recordings::DIR), recording, sources) {
                    Ok(rec) => {
                        info!(recording = %rec.id, stream = %rec.stream, reason = %rec.reason, duration_secs = rec.duration_secs, "recording made");
                        self.stats.recordings_made.fetch_add(1, Relaxed);
                        let meta = format!("{}/{}/recording.json", recordings::DIR, rec.id);
                        self.archive(meta.clone(), self.config.dir.join(&meta));
                        self.recordings_lock()
                            .insert(id, RecordingState::Done(Box::new(rec)));
                    }
                    Err(e) => self.recording_failed(&id, &stream, &e.to_string()),
                }
            }
            // Answered by the storage loop itself, after the lanes drain.
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }

    fn has_chain(&self, key: &str, rendition: &str) -> bool {
        let disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        disk.get(key)
            .and_then(|rs| rs.get(rendition))
            .is_some_and(|d| d.chain.is_some())
    }

    /// Fixes (and persists) where a new run of a rendition continues its
    /// NAME's DVR timeline.
    fn start_chain(&self, key: &str, rendition: &str) {
        let chain = {
            let disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
            chain_for(&disk, key, rendition)
        };
        let dir = self.rendition_dir(key, rendition);
        let text = chain.encode();
        let written = match write_durably(&dir, CHAIN_FILE, text.as_bytes()) {
            Ok(()) => text.len() as u64,
            Err(e) => {
                self.failed(&dir.join(CHAIN_FILE), &e.to_string());
                0
            }
        };
        self.with(key, rendition, |d| {
            d.chain = Some(chain);
            d.overhead += written;
        });
        self.stats.bytes_on_disk.fetch_add(written, Relaxed);
    }

    /// Rewrites a rendition's index without the records of evicted segments
    /// once `compact_after` have gone (on its lane: no append meanwhile).
    async fn compact(&self, key: &str, rendition: &str, dir: &Path) {
        let snapshot = self.with(key, rendition, |d| {
            (d.stale >= self.config.compact_after).then(|| {
                let head = index::Head {
                    evicted: d.evicted,
                    discontinuities: d.discontinuity_sequence,
                };
                (head, d.records.iter().cloned().collect::<Vec<_>>(), d.stale)
            })
        });
        let Some((head, records, stale)) = snapshot else {
            return;
        };
        let tmp = dir.join("index.new");
        let data = index::compacted(&head, &records);
        let done = match write_file(dir, &tmp, &data).await {
            Ok(()) => std::fs::rename(&tmp, dir.join("index")),
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => {
                self.stats.index_compactions.fetch_add(1, Relaxed);
                let now = data.len() as u64;
                let freed = self.with(key, rendition, |d| {
                    d.stale -= stale.min(d.stale);
                    let freed = d.index_bytes.saturating_sub(now);
                    d.index_bytes = now;
                    d.overhead = d.overhead.saturating_sub(freed);
                    freed
                });
                self.stats.bytes_on_disk.fetch_sub(freed, Relaxed);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                self.failed(&tmp, &format!("index compaction: {e}"));
                // Tried again after as many evictions more.
                self.with(key, rendition, |d| d.stale = 0);
            }
        }
    }

    /// Queues a file just written for the cold tier (named as on disk).
    fn archive(&self, name: String, file: PathBuf) {
        if let Some(a) = &self.archive {
            a.submit(name, file);
        }
    }

    fn with<R>(&self, key: &str, rendition: &str, f: impl FnOnce(&mut OnDisk) -> R) -> R {
        let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        let d = disk
            .entry(key.to_string())
            .or_default()
            .entry(rendition.to_string())
            .or_default();
        f(d)
    }

    /// Drops the segments that ended more than the window before `now_ms`
    /// (wall clock: what earlier runs left ages out too), then (all streams
    /// together, oldest first) those past `max_bytes`.
    fn evict(&self, now_ms: u64) {
        let oldest_kept = now_ms.saturating_sub((self.config.window_secs * 1000.0) as u64);
        let mut gone = Vec::new();
        {
            let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
            for (key, renditions) in disk.iter_mut() {
                for (name, d) in renditions.iter_mut() {
                    while d
                        .records
                        .front()
                        .is_some_and(|r| r.pdt_ms + (r.duration * 1000.0) as u64 <= oldest_kept)
                    {
                        if let Some(r) = pop(d) {
                            gone.push((key.clone(), name.clone(), r));
                        }
                    }
                }
            }
            let max = self.config.max_bytes;
            let mut total: u64 = gone
                .iter()
                .fold(self.stats.bytes_on_disk.load(Relaxed), |t, (_, _, r)| {
                    t.saturating_sub(r.bytes)
                });
            while max > 0 && total > max {
                // The oldest segment of any rendition.
                let oldest = disk
                    .iter()
                    .flat_map(|(k, rs)| rs.iter().map(move |(n, d)| (k, n, d)))
                    .filter(|(_, _, d)| d.records.len() > 1)
                    .min_by_key(|(_, _, d)| d.records.front().map_or(u64::MAX, |r| r.pdt_ms))
                    .map(|(k, n, _)| (k.clone(), n.clone()));
                let Some((k, n)) = oldest else { break };
                let Some(r) = disk.get_mut(&k).and_then(|rs| rs.get_mut(&n)).and_then(pop) else {
                    break;
                };
                total = total.saturating_sub(r.bytes);
                gone.push((k, n, r));
            }
        }
        if !gone.is_empty() {
            self.forget_emptied_runs();
        }
        self.evict_inits();
        for (key, rendition, r) in gone {
            self.stats.bytes_on_disk.fetch_sub(r.bytes, Relaxed);
            self.stats.segments_evicted.fetch_add(1, Relaxed);
            let path = self
                .rendition_dir(&key, &rendition)
                .join(format!("seg{}.m4s", r.msn));
            let _ = std::fs::remove_file(path);
        }
    }

    /// Removes the init objects no segment on disk names any more: older than
    /// the oldest kept segment's (versions only grow within a run). A run
    /// gets a new init at every input switch and new configuration, so a
    /// channel that fails over all day would otherwise keep thousands.
    /// The newest init stays even with no segment (the next one needs it).
    fn evict_inits(&self) {
        let mut freed = Vec::new();
        {
            let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
            for (key, renditions) in disk.iter_mut() {
                for (rendition, d) in renditions.iter_mut() {
                    // The newest segment's version when none is older: what
                    // the window emptied leaves only the newest init.
                    let Some(oldest) = d
                        .records
                        .front()
                        .map(|r| r.init_version)
                        .or_else(|| d.inits.last().copied())
                    else {
                        continue;
                    };
                    if d.inits.first().is_none_or(|&v| v >= oldest) {
                        continue;
                    }
                    let stale: Vec<u32> = d.inits.range(..oldest).copied().collect();
                    for v in stale {
                        d.inits.remove(&v);
                        let path = self
                            .rendition_dir(key, rendition)
                            .join(format!("init{v}.mp4"));
                        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                        d.overhead = d.overhead.saturating_sub(len);
                        freed.push((path, len));
                    }
                }
            }
        }
        for (path, len) in freed {
            if std::fs::remove_file(&path).is_ok() {
                self.stats.bytes_on_disk.fetch_sub(len, Relaxed);
                self.stats.inits_evicted.fetch_add(1, Relaxed);
            }
        }
    }

    /// Removes the runs with nothing left on disk that a later run of their
    /// NAME follows (their inits, indexes and chains; recordings hold their
    /// own links). The latest run of a NAME stays: the next one chains on.
    fn forget_emptied_runs(&self) {
        let gone: Vec<String> = {
            let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
            let latest: HashMap<&str, u64> =
                disk.keys()
                    .filter_map(|k| split_key(k))
                    .fold(HashMap::new(), |mut m, (n, e)| {
                        let v = m.entry(n).or_insert(e);
                        *v = (*v).max(e);
                        m
                    });
            let gone: Vec<String> = disk
                .iter()
                .filter(|(k, rs)| {
                    rs.values().all(|d| d.records.is_empty())
                        && split_key(k).is_some_and(|(n, e)| latest.get(n).is_some_and(|&l| l > e))
                })
                .map(|(k, _)| k.clone())
                .collect();
            let mut freed = 0;
            for k in &gone {
                if let Some(rs) = disk.remove(k) {
                    freed += rs.values().map(|d| d.overhead).sum::<u64>();
                }
            }
            self.stats.bytes_on_disk.fetch_sub(freed, Relaxed);
            gone
        };
        for key in gone {
            let _ = std::fs::remove_dir_all(self.config.dir.join(&key));
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

/// A whole file, read through io_uring (the files were written with O_DIRECT).
async fn read_path(path: &Path) -> Option<Bytes> {
    let f = glommio::io::DmaFile::open(path).await.ok()?;
    let len = f.file_size().await.ok()?;
    let data = f.read_at(0, len as usize).await.ok();
    let _ = f.close().await;
    let data = data?;
    Some(Bytes::copy_from_slice(&data))
}

/// What earlier runs left: every `NAME/EPOCH/RENDITION/index`, read back;
/// a torn or corrupt tail (a crash mid-append) is truncated, a record whose
/// file is missing or short is dropped, and a segment file no record names
/// (the one being written at the crash) is deleted.
fn recover(
    dir: &Path,
    stats: &DvrStats,
) -> std::io::Result<HashMap<String, HashMap<String, OnDisk>>> {
    let mut out: HashMap<String, HashMap<String, OnDisk>> = HashMap::new();
    let (mut segments, mut torn, mut orphans) = (0u64, 0u64, 0u64);
    // `.recordings` (and any dot directory) is no stream's.
    let streams = subdirs(dir)?.into_iter().filter(|p| {
        p.file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|f| !f.starts_with('.'))
    });
    for name in streams {
        // Oldest run first: a run without its chain file continues the one
        // before it.
        let mut epochs: Vec<(u64, PathBuf)> = subdirs(&name)?
            .into_iter()
            .filter_map(|p| Some((p.file_name()?.to_str()?.parse().ok()?, p)))
            .collect();
        epochs.sort();
        for (e, epoch) in epochs {
            for rendition in subdirs(&epoch)? {
                let (Some(n), Some(r)) = (
                    name.file_name().and_then(|f| f.to_str()),
                    rendition.file_name().and_then(|f| f.to_str()),
                ) else {
                    continue;
                };
                let key = format!("{n}/{e}");
                let index_path = rendition.join("index");
                let data = std::fs::read(&index_path).unwrap_or_default();
                let decoded = index::decode(&data);
                if decoded.valid < data.len() {
                    torn += 1;
                    warn!(path = %index_path.display(), kept = decoded.records.len(), cut_bytes = data.len() - decoded.valid, "DVR index had a torn or corrupt tail: truncated");
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&index_path)?
                        .set_len(decoded.valid as u64)?;
                }
                let mut d = OnDisk {
                    discontinuity_sequence: decoded.head.discontinuities,
                    evicted: decoded.head.evicted,
                    records: decoded.records.into(),
                    index_bytes: decoded.valid as u64,
                    overhead: decoded.valid as u64,
                    ..OnDisk::default()
                };
                // Evicted before the crash: counted as the eviction did.
                let whole = |rec: &Record| {
                    std::fs::metadata(rendition.join(format!("seg{}.m4s", rec.msn)))
                        .is_ok_and(|m| m.len() == rec.bytes)
                };
                while d.records.front().is_some_and(|rec| !whole(rec)) {
                    pop(&mut d);
                }
                // A record whose file is missing or short further on is
                // damage: dropped (the playlist shows a gap).
                d.records.retain(|rec| whole(rec));
                let named: BTreeSet<u64> = d.records.iter().map(|rec| rec.msn).collect();
                for rec in &d.records {
                    stats.bytes_on_disk.fetch_add(rec.bytes, Relaxed);
                }
                for f in std::fs::read_dir(&rendition)?.flatten() {
                    let fname = f.file_name();
                    let Some(fname) = fname.to_str() else {
                        continue;
                    };
                    match crate::package::hls::parse_object_name(fname) {
                        Some(crate::package::hls::ObjectName::Segment(msn))
                            if !named.contains(&msn) =>
                        {
                            orphans += 1;
                            let _ = std::fs::remove_file(f.path());
                        }
                        Some(crate::package::hls::ObjectName::Init(v)) => {
                            d.inits.insert(v);
                            d.overhead += f.metadata().map_or(0, |m| m.len());
                        }
                        _ => {}
                    }
                }
                let chain_text = std::fs::read_to_string(rendition.join(CHAIN_FILE)).ok();
                d.overhead += chain_text.as_ref().map_or(0, |t| t.len() as u64);
                d.chain = Some(
                    chain_text
                        .and_then(|t| Chain::decode(&t))
                        .unwrap_or_else(|| chain_for(&out, &key, r)),
                );
                stats.bytes_on_disk.fetch_add(d.overhead, Relaxed);
                segments += d.records.len() as u64;
                out.entry(key).or_default().insert(r.to_string(), d);
            }
        }
    }
    if segments + torn + orphans > 0 {
        info!(dir = %dir.display(), segments, torn_indexes = torn, unindexed_files_removed = orphans, "DVR recovered what earlier runs left");
    }
    Ok(out)
}

/// A run's chain, per rendition (see [`Chain`]).
const CHAIN_FILE: &str = "chain";

/// Writes a small file durably (temporary name, synced, renamed).
fn write_durably(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.new"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

fn subdirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}

/// Adds the newest record of a rendition.
fn push(d: &mut OnDisk, record: Record) {
    if let Some(last) = d.evicted_last.take() {
        if d.records.is_empty() && tag_between(&last, &record) {
            d.discontinuity_sequence += 1;
        }
    }
    d.records.push_back(record);
}

/// Takes the oldest record of a rendition, keeping its playlist counts.
fn pop(d: &mut OnDisk) -> Option<Record> {
    let r = d.records.pop_front()?;
    match d.records.front() {
        Some(n) if tag_between(&r, n) => d.discontinuity_sequence += 1,
        Some(_) => {}
        None => d.evicted_last = Some(r.clone()),
    }
    d.evicted += 1;
    d.stale += 1;
    Some(r)
}

/// Writes `data` to `path` with O_DIRECT (glommio pads to the device's block
/// size and truncates on close; close syncs). Opened read+write: a
/// write-only `DmaFile` breaks glommio's polling check (glommio #670).
async fn write_file(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(path)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut w = glommio::io::DmaStreamWriterBuilder::new(file).build();
    use futures_lite::AsyncWriteExt;
    let written = w.write_all(data).await;
    let closed = w.close().await;
    written?;
    closed
}

/// Appends one record to a rendition's index and makes it durable
/// (through io_uring: a blocking sync would stall every other lane).
async fn append_index(path: &Path, record: &Record) -> std::io::Result<()> {
    let io = |e: glommio::GlommioError<()>| std::io::Error::other(e.to_string());
    let f = glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .buffered_open(path)
        .await
        .map_err(io)?;
    let pos = f.file_size().await.map_err(io)?;
    let synced = match f.write_at(record.encode().to_vec(), pos).await {
        Ok(n) if n == index::RECORD => f.fdatasync().await.map_err(io),
        Ok(n) => Err(std::io::Error::other(format!(
            "short index write: {n} bytes"
        ))),
        Err(e) => Err(io(e)),
    };
    let _ = f.close().await;
    synced
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, window_secs: f64, compact_after: usize) -> DvrConfig {
        DvrConfig {
            dir: dir.to_path_buf(),
            window_secs,
            max_bytes: 0,
            record_on_end: false,
            cpu: None,
            compact_after,
        }
    }

    fn entry(msn: u64, pdt_ms: u64, discontinuity: bool) -> SegmentEntry {
        SegmentEntry {
            msn,
            duration: 2.0,
            pdt_ms,
            discontinuity,
            init_version: 0,
            parts: Vec::new(),
            complete: true,
            start: msn * 180_000,
            timescale: 90_000,
        }
    }

    fn wait_written(dvr: &Dvr, n: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while dvr.stats.segments_written.load(Relaxed) < n {
            assert!(std::time::Instant::now() < until, "segments not written");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn summary(runs: &[RunSegments]) -> Vec<(u64, Vec<u64>, u64, u64, u64)> {
        runs.iter()
            .map(|r| {
                let msns = r.segments.iter().map(|s| s.msn).collect();
                (
                    r.epoch_ms,
                    msns,
                    r.sequence,
                    r.discontinuity_sequence,
                    r.origin_ms,
                )
            })
            .collect()
    }

    /// A NAME's second run continues the first one's numbers (its segments,
    /// a discontinuity flagged in it, the break between runs) and its
    /// origin; a third run after a restart continues the second, with the
    /// chain read back (or, its file gone, worked out again the same).
    #[test]
    fn runs_of_a_name_chain_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let now = unix_ms();
        let dvr = Dvr::start(config(dir.path(), 1e6, DEFAULT_COMPACT_AFTER), None).unwrap();
        for msn in 0..6 {
            dvr.segment(
                "cam/1000",
                "v",
                &entry(msn, now, msn == 3),
                Bytes::from_static(b"a"),
            );
        }
        wait_written(&dvr, 6);
        for msn in 0..2 {
            dvr.segment(
                "cam/2000",
                "v",
                &entry(msn, now, false),
                Bytes::from_static(b"b"),
            );
        }
        wait_written(&dvr, 8);
        let want = vec![
            (1000, (0..6).collect(), 0, 0, 1000),
            (2000, vec![0, 1], 6, 2, 1000),
        ];
        assert_eq!(summary(&dvr.runs("cam", 2000, "v")), want);
        // The first run alone, as it was; another NAME shares nothing.
        assert_eq!(summary(&dvr.runs("cam", 1000, "v")), want[..1]);
        assert_eq!(
            summary(&dvr.runs("other", 3000, "v")),
            [(3000, vec![], 0, 0, 3000)]
        );
        // A run not written yet is where it will start.
        assert_eq!(
            summary(&dvr.runs("cam", 3000, "v"))[2],
            (3000, vec![], 8, 3, 1000)
        );

        for drop_chain_files in [false, true] {
            if drop_chain_files {
                for e in ["1000", "2000"] {
                    std::fs::remove_file(dir.path().join("cam").join(e).join("v").join(CHAIN_FILE))
                        .unwrap();
                }
            }
            let again = Dvr::start(config(dir.path(), 1e6, DEFAULT_COMPACT_AFTER), None).unwrap();
            assert_eq!(
                summary(&again.runs("cam", 2000, "v")),
                want,
                "chain files dropped: {drop_chain_files}"
            );
        }
    }

    /// Evicted segments leave the media and discontinuity sequences where
    /// the playlists had them, through index compaction and a restart; the
    /// compacted index holds the head and the records still on disk; a run
    /// with nothing left that a later run follows is removed.
    #[test]
    fn eviction_and_compaction_keep_the_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let now = unix_ms();
        let window = 600.0;
        let old = now - 700_000;
        let dvr = Dvr::start(config(dir.path(), window, 4), None).unwrap();
        // Run 1000: gone entirely (all older than the window).
        for msn in 0..3 {
            dvr.segment(
                "cam/1000",
                "v",
                &entry(msn, old, false),
                Bytes::from_static(b"x"),
            );
        }
        wait_written(&dvr, 3);
        // Run 2000: 7 old ones (a discontinuity at 2, a lost segment after
        // 5) evicted as written, then 3 kept.
        let msns = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10];
        for (i, msn) in msns.iter().enumerate() {
            let pdt = if i < 7 { old } else { now };
            dvr.segment(
                "cam/2000",
                "v",
                &entry(*msn, pdt, *msn == 2),
                Bytes::from_static(b"y"),
            );
        }
        wait_written(&dvr, 13);
        let runs = dvr.runs("cam", 2000, "v");
        // Run 1000 was already empty when 2000 began: 2000 starts a chain.
        assert_eq!(summary(&runs), [(2000, vec![8, 9, 10], 7, 2, 2000)]);
        assert!(
            !dir.path().join("cam/1000").exists(),
            "emptied earlier run kept"
        );
        assert!(dvr.stats.index_compactions.load(Relaxed) >= 1);
        let data = std::fs::read(dir.path().join("cam/2000/v/index")).unwrap();
        let d = index::decode(&data);
        assert_eq!(d.valid, data.len());
        assert!(d.head.evicted >= 4, "{:?}", d.head);
        assert!(d.records.len() < msns.len(), "{} records", d.records.len());
        // Every byte the DVR keeps counts against the cap: segments, inits,
        // indexes and chains (was segments only).
        dvr.init("cam/2000", "v", 0, Bytes::from_static(b"init"));
        dvr.flush(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(dvr.stats.bytes_on_disk.load(Relaxed), du(dir.path()));
        let again = Dvr::start(config(dir.path(), window, 4), None).unwrap();
        assert_eq!(summary(&again.runs("cam", 2000, "v")), summary(&runs));
        assert_eq!(again.stats.bytes_on_disk.load(Relaxed), du(dir.path()));
    }

    /// Issue 30's soak: a run gets a new init at every input switch, and the
    /// inits stayed after the window had taken every segment that named
    /// them (93 of them after 46 min of a switch a minute). The ones older
    /// than the oldest kept segment's go with it; the newest stays.
    #[test]
    fn inits_no_segment_names_are_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let now = unix_ms();
        let old = now - 700_000;
        let dvr = Dvr::start(config(dir.path(), 600.0, 4), None).unwrap();
        let v = dir.path().join("cam/2000/v");
        // Versions 0..3, two segments each: 0 and 1 old, 2 and 3 kept.
        for version in 0..4u32 {
            dvr.init("cam/2000", "v", version, Bytes::from_static(b"init-bytes"));
            for i in 0..2u64 {
                let msn = u64::from(version) * 2 + i;
                let mut e = entry(msn, if version < 2 { old } else { now }, i == 0);
                e.init_version = version;
                dvr.segment("cam/2000", "v", &e, Bytes::from_static(b"seg"));
            }
        }
        // A fifth init no segment names yet (a switch just happened).
        dvr.init("cam/2000", "v", 4, Bytes::from_static(b"init-bytes"));
        dvr.flush(std::time::Duration::from_secs(10)).unwrap();
        let inits = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with("init"))
                .collect();
            v.sort();
            v
        };
        assert_eq!(inits(&v), ["init2.mp4", "init3.mp4", "init4.mp4"]);
        assert_eq!(dvr.stats.inits_evicted.load(Relaxed), 2);
        assert_eq!(dvr.stats.bytes_on_disk.load(Relaxed), du(dir.path()));
        // A restart reads back the same.
        let again = Dvr::start(config(dir.path(), 600.0, 4), None).unwrap();
        assert_eq!(again.stats.bytes_on_disk.load(Relaxed), du(dir.path()));
        assert_eq!(inits(&v), ["init2.mp4", "init3.mp4", "init4.mp4"]);
    }

    /// Bytes of every file under `dir` but recordings.
    fn du(dir: &Path) -> u64 {
        let mut n = 0;
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with(recordings::DIR) {
                n += du(&p);
            } else if p.is_file() {
                n += e.metadata().map_or(0, |m| m.len());
            }
        }
        n
    }
}
