//! The cold tier: every segment, init object and recording description the
//! DVR writes is copied to object storage (any S3-compatible store through
//! `object_store`, or a local directory) as soon as it is on disk, by a thread
//! of its own (a small tokio runtime: `object_store` is tokio's, the rest of
//! ladderd is not). As written, not as evicted: a box that dies loses at most
//! the upload queue, not the DVR window (two hours by default).
//!
//! An unreachable store delays archiving, never ingest or playback: uploads
//! wait in a bounded queue (paths, not bytes: the bytes are read from the DVR
//! file at upload time), each retried with backoff until it lands; the
//! failure is logged once (and its end), and counted. An object the DVR
//! evicted before its upload (a store away longer than the window) or one
//! that did not fit in the queue is counted as dropped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tracing::{info, warn};

/// `[archive]` as the store needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveConfig {
    /// `s3://BUCKET[/PREFIX]` or `file:///DIR`.
    pub url: String,
    /// S3 endpoint (`http://127.0.0.1:3900` for a local Garage); empty: AWS.
    pub endpoint: String,
    pub region: String,
    /// Access key id and secret; `None`: from the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub credentials: Option<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive.url {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("archive {url}: {source}")]
    Store {
        url: String,
        source: object_store::Error,
    },
    #[error("archive: cannot start its thread: {0}")]
    Thread(std::io::Error),
}

/// Counters `/metrics` reads.
#[derive(Default)]
pub struct ArchiveStats {
    pub uploaded: AtomicU64,
    pub bytes: AtomicU64,
    /// Upload attempts that failed (each is retried).
    pub errors: AtomicU64,
    /// Objects never archived: evicted from the DVR before their upload,
    /// or past the queue's bound.
    pub dropped: AtomicU64,
    pub pending: AtomicU64,
    /// When the oldest waiting upload was queued (Unix ms; 0: none).
    pub oldest_pending_ms: AtomicU64,
}

impl ArchiveStats {
    /// How far the archive is behind: the oldest waiting upload's age.
    pub fn lag_secs(&self, now_ms: u64) -> f64 {
        match self.oldest_pending_ms.load(Relaxed) {
            0 => 0.0,
            t => now_ms.saturating_sub(t) as f64 / 1000.0,
        }
    }
}

struct Upload {
    /// The object's name under the archive's prefix.
    name: String,
    file: PathBuf,
    queued_ms: u64,
}

/// Uploads waiting at most (about 2 h of a 4-stream, 6-rendition box).
const QUEUE: usize = 100_000;
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

pub struct Archive {
    jobs: flume::Sender<Upload>,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    pub stats: ArchiveStats,
    down: AtomicBool,
}

/// The store and the prefix inside it that `url` names.
pub fn open(config: &ArchiveConfig) -> Result<(Arc<dyn ObjectStore>, String), ArchiveError> {
    let bad = |why: &str| ArchiveError::Url {
        url: config.url.clone(),
        why: why.to_string(),
    };
    let store_error = |source| ArchiveError::Store {
        url: config.url.clone(),
        source,
    };
    if let Some(dir) = config.url.strip_prefix("file://") {
        if !dir.starts_with('/') {
            return Err(bad(
                "a file:// archive needs an absolute path (file:///DIR)",
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| bad(&e.to_string()))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(store_error)?;
        return Ok((Arc::new(fs), String::new()));
    }
    let Some(rest) = config.url.strip_prefix("s3://") else {
        return Err(bad("must be s3://BUCKET[/PREFIX] or file:///DIR"));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("no bucket"));
    }
    let mut b = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(&config.region);
    if !config.endpoint.is_empty() {
        b = b
            .with_endpoint(&config.endpoint)
            .with_allow_http(config.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    if let Some((id, secret)) = &config.credentials {
        b = b.with_access_key_id(id).with_secret_access_key(secret);
    }
    // The archive thread retries on its own terms (forever, with backoff):
    // the client's own retries would hide how long the store was away.
    let retry = object_store::RetryConfig {
        max_retries: 0,
        ..Default::default()
    };
    let store = b.with_retry(retry).build().map_err(store_error)?;
    Ok((Arc::new(store), prefix.trim_matches('/').to_string()))
}

impl Archive {
    /// Opens the store `config` names and starts the archive thread.
    pub fn start(config: &ArchiveConfig) -> Result<Arc<Archive>, ArchiveError> {
        let (store, prefix) = open(config)?;
        let (tx, rx) = flume::bounded(QUEUE);
        let archive = Arc::new(Archive {
            jobs: tx,
            store,
            prefix,
            url: config.url.clone(),
            stats: ArchiveStats::default(),
            down: AtomicBool::new(false),
        });
        let worker = archive.clone();
        std::thread::Builder::new()
            .name("archive".into())
            .spawn(move || worker.run(rx))
            .map_err(ArchiveError::Thread)?;
        info!(url = %config.url, "archive on");
        Ok(archive)
    }

    /// Queues `file` (on the DVR disk) for upload as `name` (`NAME/EPOCH/
    /// RENDITION/seg{N}.m4s`, the DVR's own layout). Never blocks.
    pub fn submit(&self, name: String, file: PathBuf) {
        let now = unix_ms();
        let job = Upload {
            name,
            file,
            queued_ms: now,
        };
        // Counted before it is sent: the archive thread may take it at once.
        if self.stats.pending.fetch_add(1, Relaxed) == 0 {
            self.stats.oldest_pending_ms.store(now, Relaxed);
        }
        if self.jobs.try_send(job).is_err() {
            self.stats.pending.fetch_sub(1, Relaxed);
            self.stats.dropped.fetch_add(1, Relaxed);
        }
    }

    /// An archived object's path in the store.
    pub fn path(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    fn run(self: Arc<Self>, rx: flume::Receiver<Upload>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                warn!("archive: no runtime ({e}); nothing will be archived");
                return;
            }
        };
        rt.block_on(async move {
            while let Ok(up) = rx.recv_async().await {
                // The one being uploaded is the oldest waiting.
                self.stats.oldest_pending_ms.store(up.queued_ms, Relaxed);
                self.upload(&up).await;
                if self.stats.pending.fetch_sub(1, Relaxed) == 1 {
                    self.stats.oldest_pending_ms.store(0, Relaxed);
                }
            }
        });
    }

    /// One object, retried with backoff until the store takes it.
    async fn upload(&self, up: &Upload) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            // Read now (the DVR may have evicted it while the store was away).
            let data = match std::fs::read(&up.file) {
                Ok(d) => d,
                Err(_) => {
                    self.stats.dropped.fetch_add(1, Relaxed);
                    return;
                }
            };
            let len = data.len() as u64;
            let path = self.path(&up.name);
            match self.store.put(&path, PutPayload::from(data)).await {
                Ok(_) => {
                    self.stats.uploaded.fetch_add(1, Relaxed);
                    self.stats.bytes.fetch_add(len, Relaxed);
                    if self.down.swap(false, Relaxed) {
                        info!(url = %self.url, "archive reachable again: uploading the backlog");
                    }
                    return;
                }
                Err(e) => {
                    self.stats.errors.fetch_add(1, Relaxed);
                    if !self.down.swap(true, Relaxed) {
                        warn!(url = %self.url, object = %path, "archive upload failed: {e} (retrying with backoff; ingest and playback go on; see ladderd_archive_errors_total and ladderd_archive_lag_seconds)");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

use crate::telemetry::clock::unix_ms;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> ArchiveConfig {
        ArchiveConfig {
            url: url.into(),
            endpoint: String::new(),
            region: "us-east-1".into(),
            credentials: Some(("id".into(), "secret".into())),
        }
    }

    #[test]
    fn urls_name_a_store_and_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        assert_eq!(open(&cfg(&url)).unwrap().1, "");
        assert_eq!(open(&cfg("s3://bucket/live/a/")).unwrap().1, "live/a");
        assert_eq!(open(&cfg("s3://bucket")).unwrap().1, "");
        for bad in ["s3://", "http://x", "file://relative", ""] {
            assert!(open(&cfg(bad)).is_err(), "{bad}");
        }
    }

    /// A local-directory archive: uploads land byte for byte; a file gone
    /// before its upload (evicted) is dropped, counted, and the queue goes on.
    #[test]
    fn a_directory_archive_gets_every_object() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let out = dir.path().join("archive");
        let a = Archive::start(&cfg(&format!("file://{}", out.display()))).unwrap();
        for i in 0..5 {
            let f = src.join(format!("seg{i}.m4s"));
            std::fs::write(&f, vec![i as u8; 1000 + i]).unwrap();
            a.submit(format!("cam/1/360p30/seg{i}.m4s"), f);
        }
        a.submit("cam/1/360p30/seg9.m4s".into(), src.join("gone.m4s"));
        let t0 = std::time::Instant::now();
        while a.stats.uploaded.load(Relaxed) + a.stats.dropped.load(Relaxed) < 6 {
            assert!(t0.elapsed() < Duration::from_secs(10), "uploads stuck");
            std::thread::sleep(Duration::from_millis(5));
        }
        for i in 0..5 {
            let got = std::fs::read(out.join(format!("cam/1/360p30/seg{i}.m4s"))).unwrap();
            assert_eq!(got, vec![i as u8; 1000 + i]);
        }
        assert_eq!(a.stats.dropped.load(Relaxed), 1);
        assert_eq!(a.stats.bytes.load(Relaxed), 5010);
        assert_eq!(a.stats.lag_secs(unix_ms()), 0.0);
    }
}
