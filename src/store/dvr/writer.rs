//! The storage thread: one glommio executor pinned to the last I/O core,
//! one lane per rendition so several writes are in flight at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tracing::info;

use super::files::{append_index, write_durably, write_file};
use super::index::{self, Record};
use super::job::Job;
use super::recordings;
use super::timeline::{chain_for, push, OnDisk, CHAIN_FILE};
use super::{unix_ms, Dvr, DvrError, RecordingState};

impl Dvr {
    pub(super) fn run(
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
                    Err(e) => {
                        self.failed(DvrError::write(&key, &rendition, "init segment", path, e))
                    }
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
                        self.failed(DvrError::write(&key, &rendition, "segment", path, e));
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
                let path = dir.join(CHAIN_FILE);
                self.failed(DvrError::write(key, rendition, "chain", path, e));
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
                self.failed(DvrError::write(key, rendition, "index compaction", tmp, e));
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
}
