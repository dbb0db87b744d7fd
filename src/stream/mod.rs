//! One live stream's life: the registry of names and claims, the hand-off of a
//! claimed stream to a media core, the per-stream driver (ingest packets →
//! ladder → packager → store), the rendition/audio policy, and the stats
//! snapshots the API and `/metrics` read.
//!
//! Ingest only claims a name and sends [`Input`] values; it never sees a
//! pipeline, a packager or the store.

pub mod demo;
pub mod driver;
pub mod inputs;
pub mod policy;
pub mod registry;
pub mod slate;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

pub use driver::{Driver, Input, Job};
pub use registry::{EndReason, LiveStream, Registry, Rejection};

/// What ingest holds: the live names, and the way into a media core.
pub struct Streams {
    pub registry: Registry,
    /// Drivers waiting for a publisher that may come back (by NAME).
    parked: std::sync::Mutex<std::collections::HashMap<String, driver::Parked>>,
    next_token: std::sync::atomic::AtomicU64,
    cores: Vec<flume::Sender<Job>>,
    next: AtomicUsize,
    /// `limits.packet_queue`: each stream's input channel (backpressure reaches
    /// the publisher's socket, never unbounded memory).
    packet_queue: usize,
}

/// A claimed stream and its input channel.
pub struct Publish {
    pub stream: Arc<LiveStream>,
    pub input: flume::Sender<Input>,
}

impl Streams {
    /// `cores`: one job queue per media core (round-robin).
    pub fn new(cores: Vec<flume::Sender<Job>>, packet_queue: usize) -> Self {
        Streams {
            registry: Registry::new(),
            parked: Default::default(),
            next_token: AtomicU64::new(1),
            cores,
            next: AtomicUsize::new(0),
            packet_queue,
        }
    }

    /// Makes `name` live for `publisher` and starts its driver on the next media
    /// core. With `takeover`, an existing publisher is told to stop and replaced.
    pub fn publish(
        &self,
        name: &str,
        publisher: SocketAddr,
        protocol: &'static str,
        takeover: bool,
        max_streams: usize,
    ) -> Result<Publish, Rejection> {
        let stream = self
            .registry
            .claim(name, publisher, protocol, takeover, max_streams)?;
        let (tx, rx) = flume::bounded(self.packet_queue.max(1));
        let mut job = Job {
            stream: stream.clone(),
            input: rx,
        };
        // Within the reconnect window the NAME's driver is still running
        // (on the slate): the new publisher continues its renditions.
        if let Some(parked) = self.unpark(name) {
            match parked.attach.send(job) {
                Ok(()) => return Ok(Publish { stream, input: tx }),
                Err(e) => job = e.into_inner(),
            }
        }
        if self.dispatch(job).is_err() {
            self.registry.release(&stream);
            return Err(Rejection::ShuttingDown);
        }
        Ok(Publish { stream, input: tx })
    }

    /// Marks NAME's driver as waiting for its next publisher; returns the
    /// parking's token. One already parked under the NAME is replaced (its
    /// driver ends when its window does).
    pub fn park(&self, name: &str, mut p: driver::Parked) -> u64 {
        p.token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let token = p.token;
        self.lock_parked().insert(name.to_string(), p);
        token
    }

    /// The driver waiting for NAME's next publisher, taken by it.
    fn unpark(&self, name: &str) -> Option<driver::Parked> {
        self.lock_parked().remove(name)
    }

    /// Takes the parking only if it is still the one `token` names.
    pub fn unpark_if(&self, name: &str, token: u64) -> Option<driver::Parked> {
        let mut parked = self.lock_parked();
        if parked.get(name).is_some_and(|p| p.token == token) {
            parked.remove(name)
        } else {
            None
        }
    }

    fn lock_parked(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, driver::Parked>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dispatch(&self, job: Job) -> Result<(), Job> {
        let n = self.cores.len();
        if n == 0 {
            return Err(job);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        self.cores[i].send(job).map_err(|e| e.into_inner())
    }
}
