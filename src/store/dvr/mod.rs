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
}

/// Counters `/metrics` reads.
#[derive(Default)]
pub struct DvrStats {
    pub segments_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub write_errors: AtomicU64,
    pub segments_evicted: AtomicU64,
    pub bytes_on_disk: AtomicU64,
    pub recordings_made: AtomicU64,
    pub recording_errors: AtomicU64,
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
    /// Discontinuities evicted from the front (EXT-X-DISCONTINUITY-SEQUENCE).
    discontinuity_sequence: u64,
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
                        continue;
                    }
                };
                in_flight.set(in_flight.get() + 1);
                let tx = lanes.entry(lane).or_insert_with(|| {
                    let (tx, rx) = flume::unbounded::<Job>();
                    let me = self.clone();
                    let count = in_flight.clone();
                    glommio::spawn_local(async move {
                        while let Ok(job) = rx.recv_async().await {
                            me.write(job).await;
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
                        self.with(&key, &rendition, |d| {
                            d.inits.insert(version);
                        });
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
                        self.stats.bytes_on_disk.fetch_add(record.bytes, Relaxed);
                        self.with(&key, &rendition, |d| d.records.push_back(record));
                        self.archive(format!("{key}/{rendition}/seg{}.m4s", entry.msn), path);
                        self.evict(unix_ms());
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
        for (key, rendition, r) in gone {
            self.stats.bytes_on_disk.fetch_sub(r.bytes, Relaxed);
            self.stats.segments_evicted.fetch_add(1, Relaxed);
            let path = self
                .rendition_dir(&key, &rendition)
                .join(format!("seg{}.m4s", r.msn));
            let _ = std::fs::remove_file(path);
        }
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
        for epoch in subdirs(&name)? {
            for rendition in subdirs(&epoch)? {
                let (Some(n), Some(e), Some(r)) = (
                    name.file_name().and_then(|f| f.to_str()),
                    epoch.file_name().and_then(|f| f.to_str()),
                    rendition.file_name().and_then(|f| f.to_str()),
                ) else {
                    continue;
                };
                let index_path = rendition.join("index");
                let data = std::fs::read(&index_path).unwrap_or_default();
                let (records, valid) = index::decode(&data);
                if valid < data.len() {
                    torn += 1;
                    warn!(path = %index_path.display(), kept = records.len(), cut_bytes = data.len() - valid, "DVR index had a torn or corrupt tail: truncated");
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&index_path)?
                        .set_len(valid as u64)?;
                }
                let mut d = OnDisk::default();
                let mut named = BTreeSet::new();
                for rec in records {
                    let file = rendition.join(format!("seg{}.m4s", rec.msn));
                    if std::fs::metadata(&file).is_ok_and(|m| m.len() == rec.bytes) {
                        named.insert(rec.msn);
                        stats.bytes_on_disk.fetch_add(rec.bytes, Relaxed);
                        d.records.push_back(rec);
                    }
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
                        }
                        _ => {}
                    }
                }
                segments += d.records.len() as u64;
                out.entry(format!("{n}/{e}"))
                    .or_default()
                    .insert(r.to_string(), d);
            }
        }
    }
    if segments + torn + orphans > 0 {
        info!(dir = %dir.display(), segments, torn_indexes = torn, unindexed_files_removed = orphans, "DVR recovered what earlier runs left");
    }
    Ok(out)
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

/// Takes the oldest record of a rendition, keeping its discontinuity count.
fn pop(d: &mut OnDisk) -> Option<Record> {
    let r = d.records.pop_front()?;
    if d.records.front().is_some_and(|n| n.discontinuity) {
        d.discontinuity_sequence += 1;
    }
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
