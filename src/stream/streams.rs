//! What ingest holds: the live names ([`Registry`]) and the way into a media
//! core. [`Streams::publish`] claims a NAME and hands its input to the NAME's
//! driver (the running one, else a new one on the next media core); the
//! [`Publisher`] it returns releases the NAME through [`Release`], never
//! through `Streams` itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::stream::feed::{self, Job};
use crate::stream::publisher::{Publisher, Release};
use crate::stream::registry::{self, LiveStream, Registry, Rejection};
use crate::stream::role::Role;
use crate::telemetry::clock;

/// What ingest holds: the live names, and the way into a media core.
pub struct Streams {
    pub registry: Registry,
    /// Each NAME's running driver: how a later publisher of the NAME (a
    /// reconnect, a backup) reaches it.
    drivers: std::sync::Mutex<std::collections::HashMap<String, feed::Parked>>,
    next_token: std::sync::atomic::AtomicU64,
    cores: Vec<flume::Sender<Job>>,
    next: AtomicUsize,
    /// `limits.packet_queue`: each stream's input channel (backpressure reaches
    /// the publisher's socket, never unbounded memory).
    packet_queue: usize,
    /// A publisher silent this long yields its NAME to a new one
    /// (`ingest.failover_after_ms`: silent that long, it has failed).
    holder_silent_after: Option<std::time::Duration>,
}

impl Streams {
    /// `cores`: one job queue per media core (round-robin).
    pub fn new(cores: Vec<flume::Sender<Job>>, packet_queue: usize) -> Self {
        Streams {
            registry: Registry::new(),
            drivers: Default::default(),
            next_token: AtomicU64::new(1),
            cores,
            next: AtomicUsize::new(0),
            packet_queue,
            holder_silent_after: None,
        }
    }

    /// A NAME's publisher silent for `after` yields it to a new publisher.
    pub fn with_holder_silent_after(mut self, after: std::time::Duration) -> Self {
        self.holder_silent_after = Some(after);
        self
    }

    /// Makes `name` live for `publisher` in `role` and hands its input to the
    /// NAME's driver: the running one (a publisher back within the reconnect
    /// window, a backup beside its primary), else a new one on the next media
    /// core. With `takeover`, an existing publisher of the role is told to
    /// stop and replaced. The [`Publisher`] is how the publish hands its
    /// media on.
    pub fn publish(
        self: &Arc<Self>,
        name: &str,
        publisher: SocketAddr,
        protocol: &'static str,
        takeover: bool,
        max_streams: usize,
        role: Role,
    ) -> Result<Publisher, Rejection> {
        let claim = registry::Claim {
            takeover,
            max_streams,
            role,
            holder_silent_after: self.holder_silent_after,
            now: clock::now(),
        };
        let stream = self.registry.claim_with(name, publisher, protocol, claim)?;
        let (tx, rx) = flume::bounded(self.packet_queue.max(1));
        let mut job = Job {
            stream: stream.clone(),
            input: rx,
            role,
            attach: None,
        };
        let mut drivers = self.lock_drivers();
        // Sent under the lock: a driver that ends takes itself off the map
        // under it too, then takes what was sent (`Streams::retire`).
        if let Some(running) = drivers.get(name) {
            match running.attach.send(job) {
                Ok(()) => return Ok(Publisher::new(stream, tx, self.clone(), takeover)),
                Err(e) => {
                    job = e.into_inner();
                    drivers.remove(name);
                }
            }
        }
        drop(drivers);
        self.start_driver(job)?;
        Ok(Publisher::new(stream, tx, self.clone(), takeover))
    }

    /// A new driver for `job`'s NAME on the next media core (the NAME has
    /// none running).
    fn start_driver(&self, mut job: Job) -> Result<(), Rejection> {
        let name = job.stream.name.clone();
        let (attach_tx, attach_rx) = flume::unbounded();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        job.attach = Some((token, attach_rx));
        self.lock_drivers().insert(
            name.clone(),
            feed::Parked {
                attach: attach_tx,
                token,
            },
        );
        if let Err(job) = self.dispatch(job) {
            self.lock_drivers().remove(&name);
            self.registry.release(&job.stream);
            return Err(Rejection::ShuttingDown);
        }
        Ok(())
    }

    /// A publish that reached a driver as it ended (after `retire`): it
    /// runs on a driver of its own rather than being dropped.
    pub fn adopt(&self, job: Job) {
        let name = job.stream.name.clone();
        let mut drivers = self.lock_drivers();
        // Another publish may have started a driver for the NAME meanwhile.
        if let Some(running) = drivers.get(&name) {
            match running.attach.send(job) {
                Ok(()) => return,
                Err(e) => {
                    drivers.remove(&name);
                    drop(drivers);
                    let _ = self.start_driver(e.into_inner());
                    return;
                }
            }
        }
        drop(drivers);
        let _ = self.start_driver(job);
    }

    /// The driver `token` ends: it leaves the map (if still there), and gets
    /// back whatever publish reached it meanwhile, to run instead of ending.
    pub fn retire(&self, name: &str, token: u64, attach: &flume::Receiver<Job>) -> Option<Job> {
        let mut drivers = self.lock_drivers();
        match attach.try_recv() {
            Ok(job) => Some(job),
            Err(_) => {
                if drivers.get(name).is_some_and(|p| p.token == token) {
                    drivers.remove(name);
                }
                None
            }
        }
    }

    fn lock_drivers(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, feed::Parked>> {
        self.drivers.lock().unwrap_or_else(|e| e.into_inner())
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

impl Release for Streams {
    fn release(&self, stream: &LiveStream) {
        self.registry.release(stream);
    }
}
