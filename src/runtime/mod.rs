//! Thread-per-core runtime: one pinned glommio executor per configured core.
//!
//! The first `runtime.io_cores` cores serve sockets (every I/O core binds the
//! RTMP and HTTP listeners with `SO_REUSEPORT`, so the kernel spreads
//! connections); the others run stream pipelines. With one core, it does both.
//! Cross-core hand-off is by bounded channels of owned values. This is the only
//! module that knows about cores.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use tracing::{error, info, warn};

use crate::admin::{Admin, Health};
use crate::config::Config;
use crate::ingest::Ingest;
use crate::origin::{HttpStats, Origin};
use crate::store::hot::HotStore;
use crate::stream::{driver, Driver, EndReason, Streams};
use crate::telemetry::notify;
pub use crate::telemetry::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot start the executor on CPU {cpu}: {reason}")]
    Executor { cpu: usize, reason: String },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("signal handling: {0}")]
    Signals(std::io::Error),
    #[error("executor thread on CPU {0} exited unexpectedly")]
    ExecutorDied(usize),
    #[error("ladder.{0}")]
    Backend(#[from] crate::transcode::backend::BackendError),
    #[error("{0}")]
    Srt(String),
    #[error("dvr.dir: {0}")]
    Dvr(#[from] crate::store::dvr::DvrError),
    #[error("{0}")]
    Archive(#[from] crate::store::archive::ArchiveError),
    #[error("archive.credentials_file {0}")]
    ArchiveCredentials(crate::config::CredentialsError),
    #[error("{0}")]
    Keys(#[from] crate::origin::KeysError),
}

/// Stack of each executor thread, where connection tasks run: set explicitly so the
/// fuzz targets and stack-depth tests run protocol code on the same size.
pub const IO_THREAD_STACK: usize = 2 << 20;

/// The boxes' handles, and what only the runtime keeps (listening sockets,
/// executor heartbeats). Each box gets its own handle, never this.
struct Wiring {
    config: Arc<Config>,
    shutdown: Arc<Shutdown>,
    streams: Arc<Streams>,
    health: Arc<Health>,
    ingest: Arc<Ingest>,
    origin: Arc<Origin>,
    driver: Arc<Driver>,
    /// Listening sockets bound by the first I/O core; the others accept on copies.
    listen_sockets: std::sync::Mutex<std::collections::HashMap<SocketAddr, std::net::TcpListener>>,
    /// Per executor: ms since `epoch` when it last ran its heartbeat task.
    heartbeats: Vec<std::sync::atomic::AtomicU64>,
    epoch: Instant,
}

/// How often a listener whose port is taken tries again.
const BIND_RETRY: Duration = Duration::from_millis(200);

/// How often each executor proves it is responsive.
const HEARTBEAT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Io,
    Media,
    Both,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Io => "io",
            Role::Media => "media",
            Role::Both => "io+media",
        }
    }
}

enum Report {
    Ready,
    Failed(RuntimeError),
    Exited(usize),
    Signal(i32),
}

/// Runs the appliance until SIGINT/SIGTERM; returns once every core has stopped
/// (or the shutdown grace period ran out).
/// Resolves `[ladder] backend` before anything listens, so `gpu` without a
/// usable GPU stops start-up with the reason and `auto` says what it chose.
fn select_backend(config: &Config) -> Result<crate::transcode::backend::Backend, RuntimeError> {
    use crate::transcode::backend::Backend;
    if !config.ladder.enabled {
        return Ok(Backend::cpu());
    }
    // `decoder = "libavcodec"` or `scaler = "swscale"` on a box without
    // the library stops here, saying why.
    let soft = config.ladder.soft_codecs();
    soft.decoder_name()?;
    soft.scaler_name()?;
    let (backend, why_not_gpu) = Backend::select(
        config.ladder.backend,
        config.ladder.gpu_device,
        config.ladder.soft_codecs(),
    )?;
    match why_not_gpu {
        Some(why) => tracing::info!(
            backend = backend.kind(),
            "ladder backend: {} (backend = \"auto\" and the GPU is unavailable: {why})",
            backend.describe()
        ),
        None => tracing::info!(
            backend = backend.kind(),
            "ladder backend: {}",
            backend.describe()
        ),
    }
    Ok(backend)
}

pub fn serve(config: Config) -> Result<(), RuntimeError> {
    let (report_tx, report_rx) = mpsc::channel::<Report>();
    watch_signals(report_tx.clone())?;

    let cores = config.cores();
    let io_count = config.runtime.io_cores.min(cores.len());
    let roles: Vec<Role> = if cores.len() == 1 {
        vec![Role::Both]
    } else {
        (0..cores.len())
            .map(|i| if i < io_count { Role::Io } else { Role::Media })
            .collect()
    };
    check_memlock(&config, cores.len());
    // Rung work runs on one pool of workers: a thread per rung per stream
    // would oversubscribe the box with many channels.
    crate::transcode::ladder_run::pool::configure(match config.ladder.rung_workers {
        0 => cores.len(),
        n => n,
    });
    let backend = select_backend(&config)?;
    let keys = Arc::new(crate::origin::Keys::load(&config)?);

    let mut media_rx = Vec::new();
    let mut senders = Vec::new();
    for role in &roles {
        if matches!(role, Role::Media | Role::Both) {
            // Bounded: a burst of publishes waits rather than piling up.
            let (tx, rx) = flume::bounded(64);
            senders.push(tx);
            media_rx.push(Some(rx));
        } else {
            media_rx.push(None);
        }
    }
    let config = Arc::new(config);
    watch_reload(keys.clone(), config.clone())?;
    let shutdown = Arc::new(Shutdown::default());
    let mut store = HotStore::new(config.hls.window_secs);
    let mut dvr_report = None;
    // Kept to flush at a graceful stop: its thread dies with the process.
    let mut dvr_flush = None;
    let mut archive_report = None;
    let archive = if config.archive.url.is_empty() {
        None
    } else {
        let a = &config.archive;
        let archive =
            crate::store::archive::Archive::start(&crate::store::archive::ArchiveConfig {
                url: a.url.clone(),
                endpoint: a.endpoint.clone(),
                region: if a.region.is_empty() {
                    "us-east-1".into()
                } else {
                    a.region.clone()
                },
                credentials: a.credentials().map_err(RuntimeError::ArchiveCredentials)?,
            })?;
        archive_report =
            Some(Arc::new(ArchiveReport(archive.clone()))
                as Arc<dyn crate::telemetry::metrics::Report>);
        Some(archive)
    };
    if !config.dvr.dir.as_os_str().is_empty() {
        let dvr = crate::store::dvr::Dvr::start(
            crate::store::dvr::DvrConfig {
                dir: config.dvr.dir.clone(),
                window_secs: config.dvr.window_secs,
                max_bytes: (config.dvr.max_disk_gb * 1e9) as u64,
                record_on_end: config.dvr.record_on_end,
                // Disk I/O goes through io_uring, as the network's does: the
                // storage thread shares the last I/O core, never a media one.
                cpu: roles
                    .iter()
                    .rposition(|r| *r != Role::Media)
                    .map(|i| cores[i]),
                compact_after: crate::store::dvr::DEFAULT_COMPACT_AFTER,
            },
            archive,
        )?;
        dvr_report =
            Some(Arc::new(DvrReport(dvr.clone())) as Arc<dyn crate::telemetry::metrics::Report>);
        dvr_flush = Some(dvr.clone());
        store = store.with_dvr(dvr);
    }
    let store = Arc::new(store);
    let streams = Arc::new(
        Streams::new(senders, config.limits.packet_queue)
            .with_holder_silent_after(Duration::from_millis(config.ingest.failover_after_ms)),
    );
    let health = Arc::new(Health::default());
    let http = Arc::new(HttpStats::default());
    let client_limits = crate::origin::limits::ClientLimits::new(&config.server);
    let auth_backoff = Arc::new(crate::ingest::auth::AuthBackoff::new(&config.ingest));
    let srt_per_ip =
        crate::ingest::srt::access::PerIp::new(config.limits.max_srt_connections_per_ip);
    let rtmp = crate::ingest::rtmp::admission::Admission::new(
        crate::ingest::rtmp::admission::Caps::from_config(&config.limits),
    );
    let admin = Arc::new(Admin {
        config: config.clone(),
        streams: streams.clone(),
        store: store.clone(),
        health: health.clone(),
        reports: [
            rtmp.clone() as Arc<dyn crate::telemetry::metrics::Report>,
            http.clone(),
            client_limits.clone(),
            auth_backoff.clone(),
            srt_per_ip.clone(),
            keys.clone(),
            Arc::new(backend.clone()),
        ]
        .into_iter()
        .chain(dvr_report)
        .chain(archive_report)
        .collect(),
        origin: {
            let http = http.clone();
            Arc::new(move || http.snapshot())
        },
    });
    let ctx = Arc::new(Wiring {
        ingest: Arc::new(Ingest {
            config: config.clone(),
            streams: streams.clone(),
            rtmp,
            auth: auth_backoff,
            srt: srt_per_ip,
            shutdown: shutdown.clone(),
        }),
        origin: Arc::new(Origin {
            config: config.clone(),
            store: store.clone(),
            http,
            shutdown: shutdown.clone(),
            admin: Arc::new(move |method, segments, headers| {
                admin.handle(method, segments, headers)
            }),
            keys,
            limits: client_limits,
        }),
        driver: Arc::new(Driver {
            config: config.clone(),
            store,
            backend,
            streams: streams.clone(),
            shutdown: shutdown.clone(),
        }),
        listen_sockets: Default::default(),
        heartbeats: cores.iter().map(|_| Default::default()).collect(),
        epoch: Instant::now(),
        config,
        shutdown,
        streams,
        health,
    });

    let io_memory = ctx.config.runtime.io_memory_kib * 1024;
    let mut threads = Vec::new();
    for (i, (&cpu, &role)) in cores.iter().zip(&roles).enumerate() {
        let ctx = ctx.clone();
        let report = report_tx.clone();
        let jobs = media_rx[i].take();
        let name = format!("ladderd-{}-{cpu}", role.name());
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .stack_size(IO_THREAD_STACK)
            .spawn(move || {
                let executor = LocalExecutorBuilder::new(Placement::Fixed(cpu))
                    .name(&name)
                    .io_memory(io_memory)
                    .make();
                let executor = match executor {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = report.send(Report::Failed(RuntimeError::Executor {
                            cpu,
                            reason: executor_hint(&e.to_string()),
                        }));
                        let _ = report.send(Report::Exited(cpu));
                        return;
                    }
                };
                executor.run(core_main(ctx, i, role, jobs, report.clone()));
                let _ = report.send(Report::Exited(cpu));
            })
            .map_err(|e| RuntimeError::Executor {
                cpu,
                reason: e.to_string(),
            })?;
        threads.push(thread);
    }
    drop(report_tx);

    let io_cores = roles.iter().filter(|r| **r != Role::Media).count();
    let mut ready = 0;
    let mut failure = None;
    let mut exited = 0;
    while ready < io_cores && failure.is_none() {
        match report_rx.recv() {
            Ok(Report::Ready) => ready += 1,
            Ok(Report::Failed(e)) => failure = Some(e),
            Ok(Report::Exited(cpu)) => {
                exited += 1;
                failure = Some(RuntimeError::ExecutorDied(cpu));
            }
            Ok(Report::Signal(sig)) => {
                info!(signal = sig, "signal during start-up; stopping");
                break;
            }
            Err(_) => break,
        }
    }
    if failure.is_none() && ready == io_cores {
        // SRT: a missing libsrt leaves RTMP-only ingest (said once); a port
        // another process holds stops start-up like the TCP listeners.
        match crate::ingest::srt::server::start(ctx.ingest.clone()) {
            Ok(_) => {}
            Err(e @ crate::ingest::srt::server::SrtError::Unavailable(_)) => {
                warn!("{e}; SRT ingest is off")
            }
            Err(e) => failure = Some(RuntimeError::Srt(e.to_string())),
        }
    }
    if failure.is_none() && ready == io_cores && ctx.config.demo.enabled {
        if let Err(e) = crate::stream::demo::spawn(
            ctx.config.clone(),
            ctx.streams.clone(),
            ctx.shutdown.clone(),
        ) {
            warn!("demo source not started: {e}");
        }
    }
    // Every I/O core holds its copy now: drop ours so a shutdown closes the ports.
    ctx.listen_sockets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    if failure.is_none() && ready == io_cores {
        ctx.health.set_ready(true);
        info!(
            rtmp = %ctx.config.server.rtmp_listen,
            http = %ctx.config.server.http_listen,
            cores = ?cores,
            io_cores,
            media_cores = roles.iter().filter(|r| **r != Role::Io).count(),
            "ladderd ready"
        );
        if let Err(e) = notify::notify("READY=1") {
            warn!("systemd notify READY: {e}");
        }
        let watchdog = notify::watchdog_interval();
        let tick = watchdog.unwrap_or(Duration::from_secs(1));
        let mut unresponsive_logged = false;
        loop {
            match report_rx.recv_timeout(tick) {
                Ok(Report::Signal(sig)) => {
                    info!(signal = sig, "shutting down");
                    break;
                }
                Ok(Report::Exited(cpu)) => {
                    exited += 1;
                    failure = Some(RuntimeError::ExecutorDied(cpu));
                    break;
                }
                Ok(Report::Failed(e)) => {
                    failure = Some(e);
                    break;
                }
                Ok(Report::Ready) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let Some(interval) = watchdog else { continue };
                    let now = ctx.epoch.elapsed().as_millis() as u64;
                    let limit = (interval + HEARTBEAT).as_millis() as u64;
                    let stuck = ctx
                        .heartbeats
                        .iter()
                        .position(|h| now.saturating_sub(h.load(Ordering::Relaxed)) > limit);
                    match stuck {
                        None => {
                            unresponsive_logged = false;
                            if let Err(e) = notify::notify("WATCHDOG=1") {
                                warn!("systemd notify WATCHDOG: {e}");
                            }
                        }
                        Some(i) if !unresponsive_logged => {
                            error!(
                                executor = i,
                                "executor unresponsive; not feeding the systemd watchdog"
                            );
                            unresponsive_logged = true;
                        }
                        Some(_) => {}
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    // Lame duck: not ready, still serving, so balancers move viewers away first.
    ctx.health.set_stopping();
    let _ = notify::notify("STOPPING=1");
    if failure.is_none() && ctx.config.server.drain_secs > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(ctx.config.server.drain_secs));
    }
    ctx.streams.registry.stop_all(EndReason::Shutdown);
    ctx.shutdown.trigger();
    let deadline = Instant::now() + Duration::from_secs_f64(ctx.config.server.shutdown_grace_secs);
    while exited < threads.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match report_rx.recv_timeout(left) {
            Ok(Report::Exited(_)) => exited += 1,
            Ok(Report::Failed(e)) => error!("{e}"),
            Ok(_) => {}
            Err(_) => {
                warn!(
                    still_running = threads.len() - exited,
                    "shutdown grace period over; exiting with cores still busy"
                );
                break;
            }
        }
    }
    // The streams have ended: their last segments, index appends and
    // recordings are queued on the storage thread, which must finish them
    // before the process exits (within what is left of the grace period).
    if let Some(dvr) = dvr_flush {
        let started = Instant::now();
        match dvr.flush(deadline.saturating_duration_since(started)) {
            Ok(()) => info!(
                took_ms = started.elapsed().as_millis() as u64,
                recordings_made = dvr.stats.recordings_made.load(Ordering::Relaxed),
                "DVR flushed: every queued segment, index append and recording is on disk"
            ),
            Err(e) => error!(
                unfinished = e.unfinished,
                "{e}; raise server.shutdown_grace_secs (the next start removes unindexed files)"
            ),
        }
    }
    match failure {
        Some(e) => Err(e),
        None => {
            info!("stopped");
            Ok(())
        }
    }
}

async fn core_main(
    ctx: Arc<Wiring>,
    index: usize,
    role: Role,
    jobs: Option<flume::Receiver<driver::Job>>,
    report: mpsc::Sender<Report>,
) {
    let mut tasks = Vec::new();
    {
        // The watchdog is fed only while every executor gets to run this.
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            while !ctx.shutdown.is_triggered() {
                if let Some(h) = ctx.heartbeats.get(index) {
                    h.store(ctx.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                glommio::timer::sleep(HEARTBEAT).await;
            }
        })
        .detach();
    }
    if matches!(role, Role::Io | Role::Both) {
        // Health first: the admin listener (or, without one, the public HTTP
        // listener) answers `/readyz` 503 while the others wait for their port.
        let mut listeners: Vec<(SocketAddr, &'static str)> = Vec::new();
        if let Some(addr) = ctx.config.admin.listen {
            listeners.push((addr, "admin HTTP"));
        }
        listeners.push((ctx.config.server.http_listen, "HTTP"));
        if let Some(addr) = ctx.config.server.https_listen {
            listeners.push((addr, "HTTPS"));
        }
        listeners.push((ctx.config.server.rtmp_listen, "RTMP"));
        for (addr, what) in listeners {
            let listener = match bind_when_free(&ctx, addr, what).await {
                Ok(Some(l)) => l,
                Ok(None) => return, // shutdown during start-up
                Err(e) => {
                    let _ = report.send(Report::Failed(e));
                    return;
                }
            };
            tasks.push(match what {
                "RTMP" => glommio::spawn_local(crate::ingest::rtmp::server::accept_loop(
                    listener,
                    ctx.ingest.clone(),
                )),
                "HTTP" => glommio::spawn_local(crate::origin::accept_loop(
                    listener,
                    ctx.origin.clone(),
                    crate::origin::Surface::Public,
                    false,
                )),
                "HTTPS" => glommio::spawn_local(crate::origin::accept_loop(
                    listener,
                    ctx.origin.clone(),
                    crate::origin::Surface::Public,
                    true,
                )),
                _ => glommio::spawn_local(crate::origin::accept_loop(
                    listener,
                    ctx.origin.clone(),
                    crate::origin::Surface::Admin,
                    false,
                )),
            });
        }
        let _ = report.send(Report::Ready);
    }
    if let Some(jobs) = jobs {
        tasks.push(glommio::spawn_local(driver::media_core(
            jobs,
            ctx.driver.clone(),
        )));
    }
    for t in tasks {
        t.await;
    }
}

/// Binds ADDR, waiting up to `server.bind_wait_secs` while another process
/// still holds the port (a restart overlapping the old instance's drain);
/// `/readyz` says which listener is waiting. Other bind errors fail at once.
/// `None`: shutdown began while waiting.
async fn bind_when_free(
    ctx: &Wiring,
    addr: SocketAddr,
    what: &'static str,
) -> Result<Option<glommio::net::TcpListener>, RuntimeError> {
    let deadline = Instant::now() + Duration::from_secs_f64(ctx.config.server.bind_wait_secs);
    let mut logged = false;
    loop {
        let err = match bind_shared(ctx, addr) {
            Ok(l) => return Ok(Some(l)),
            Err(e) => e,
        };
        if err.kind() != std::io::ErrorKind::AddrInUse || Instant::now() >= deadline {
            return Err(RuntimeError::Bind {
                addr,
                what,
                source: err,
            });
        }
        let reason = format!(
            "starting: {what} listener {addr} not bound: {err}; retrying for up to {} s",
            ctx.config.server.bind_wait_secs
        );
        if !logged {
            warn!(listener = what, %addr, "{reason}");
            logged = true;
        }
        ctx.health.set_not_ready_reason(reason);
        if ctx.shutdown.is_triggered() {
            return Ok(None);
        }
        glommio::timer::sleep(BIND_RETRY).await;
    }
}

/// One listening socket per address, bound without `SO_REUSEPORT` and shared by
/// the I/O cores (each accepts on its own copy of the descriptor). glommio's own
/// `bind` sets `SO_REUSEPORT`, which let a second ladderd (same user) bind the same
/// ports, report ready, and take half the connections.
fn bind_shared(ctx: &Wiring, addr: SocketAddr) -> std::io::Result<glommio::net::TcpListener> {
    use std::os::fd::IntoRawFd;
    let mut sockets = ctx.listen_sockets.lock().unwrap_or_else(|e| e.into_inner());
    let socket = match sockets.get(&addr) {
        Some(bound) => bound.try_clone()?,
        None => {
            let bound = std::net::TcpListener::bind(addr)?;
            // std listens with a backlog of 128 (glommio's bind used 1024): a burst
            // of connections (viewers arriving at once, a flood the HTTP cap must
            // see to refuse) overflowed it and waited for SYN retries, 1 s and up.
            // listen(2) again on the bound socket only sets the backlog.
            socket2::SockRef::from(&bound).listen(1024)?;
            sockets.insert(addr, bound.try_clone()?);
            bound
        }
    };
    // SAFETY: `into_raw_fd` hands over an open, bound, listening TCP socket that
    // nothing else owns; glommio's listener takes ownership and closes it.
    Ok(unsafe {
        <glommio::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(socket.into_raw_fd())
    })
}

/// Turns glommio's start-up errors into what the operator must change.
fn executor_hint(err: &str) -> String {
    let lower = err.to_lowercase();
    if lower.contains("memlock") || lower.contains("locked memory") {
        format!("{err}: raise the locked-memory limit (systemd LimitMEMLOCK=, ulimit -l) or lower runtime.io_memory_kib")
    } else if lower.contains("operation not permitted")
        || lower.contains("function not implemented")
    {
        format!("{err}: io_uring is unavailable (kernel ≥ 5.8 with io_uring enabled, and not blocked by seccomp/container policy)")
    } else {
        err.to_string()
    }
}

/// Logs whether io_uring buffers can be registered (glommio falls back silently when not).
fn check_memlock(config: &Config, executors: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct into `lim`.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // glommio registers the io_memory arena in three rings per executor.
    let needed = (config.runtime.io_memory_kib as u64 * 1024) * 3 * executors as u64;
    if rc != 0 {
        warn!("cannot read RLIMIT_MEMLOCK; io_uring buffer registration may fall back");
        return;
    }
    let unlimited = lim.rlim_cur == libc::RLIM_INFINITY;
    if root || unlimited || lim.rlim_cur >= needed {
        info!(
            memlock_kib = if unlimited {
                u64::MAX
            } else {
                lim.rlim_cur / 1024
            },
            needed_kib = needed / 1024,
            root,
            "io_uring registered buffers: available"
        );
    } else {
        warn!(
            memlock_kib = lim.rlim_cur / 1024,
            needed_kib = needed / 1024,
            "io_uring registered buffers: unavailable, using unregistered I/O (raise LimitMEMLOCK or lower runtime.io_memory_kib)"
        );
    }
}

/// SIGHUP: reads the signing key and the TLS certificate again (a bad file
/// keeps the ones in use, logged and counted). `systemctl reload ladderd`.
fn watch_reload(keys: Arc<crate::origin::Keys>, config: Arc<Config>) -> Result<(), RuntimeError> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .map_err(RuntimeError::Signals)?;
    std::thread::Builder::new()
        .name("ladderd-reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                match keys.reload(&config) {
                    Ok(()) => {
                        keys.reloads
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        info!("SIGHUP: signing key and TLS certificate reloaded");
                    }
                    Err(e) => {
                        keys.reload_errors
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        error!("SIGHUP: reload failed, keeping the ones in use: {e}");
                    }
                }
            }
        })
        .map_err(RuntimeError::Signals)?;
    Ok(())
}

/// Forwards SIGINT/SIGTERM to the main thread.
fn watch_signals(report: mpsc::Sender<Report>) -> Result<(), RuntimeError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(RuntimeError::Signals)?;
    std::thread::Builder::new()
        .name("ladderd-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if report.send(Report::Signal(sig)).is_err() {
                    return;
                }
            }
        })
        .map_err(RuntimeError::Signals)?;
    Ok(())
}

/// The archive's counters in `/metrics`.
struct ArchiveReport(Arc<crate::store::archive::Archive>);

impl crate::telemetry::metrics::Report for ArchiveReport {
    fn report(&self, m: &mut crate::telemetry::metrics::MetricSet) {
        let s = &self.0.stats;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        m.counter(
            "ladderd_archive_uploads",
            "Objects (segments, init objects, recording descriptions) uploaded to the archive.",
            vec![],
            n(&s.uploaded),
        );
        m.counter(
            "ladderd_archive_bytes",
            "Bytes uploaded to the archive.",
            vec![],
            n(&s.bytes),
        );
        m.counter(
            "ladderd_archive_errors",
            "Archive upload attempts that failed (each is retried with backoff; ingest and playback go on).",
            vec![],
            n(&s.errors),
        );
        m.counter(
            "ladderd_archive_dropped",
            "Objects never archived: evicted from the DVR before their upload, or past the upload queue's bound.",
            vec![],
            n(&s.dropped),
        );
        m.gauge(
            "ladderd_archive_pending",
            "Uploads waiting.",
            vec![],
            n(&s.pending) as i64,
        );
        m.gauge_f(
            "ladderd_archive_lag_seconds",
            "Age of the oldest waiting upload (0: none): how far the archive is behind.",
            vec![],
            s.lag_secs(crate::telemetry::clock::unix_ms()),
        );
    }
}

/// The DVR's counters in `/metrics`.
struct DvrReport(Arc<crate::store::dvr::Dvr>);

impl crate::telemetry::metrics::Report for DvrReport {
    fn report(&self, m: &mut crate::telemetry::metrics::MetricSet) {
        let s = &self.0.stats;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        m.counter(
            "ladderd_dvr_segments_written",
            "Segments written to the DVR directory (O_DIRECT, synced).",
            vec![],
            n(&s.segments_written),
        );
        m.counter(
            "ladderd_dvr_write_errors",
            "DVR writes that failed (full or failing disk, storage thread behind): the segment is not kept; the live stream plays on from RAM.",
            vec![],
            n(&s.write_errors),
        );
        m.counter(
            "ladderd_dvr_segments_evicted",
            "DVR segments deleted past dvr.window_secs or dvr.max_disk_gb.",
            vec![],
            n(&s.segments_evicted),
        );
        m.counter(
            "ladderd_dvr_inits_evicted",
            "DVR init objects deleted once no segment on disk named them (a run gets one at every input switch).",
            vec![],
            n(&s.inits_evicted),
        );
        m.counter(
            "ladderd_dvr_index_compactions",
            "DVR indexes rewritten without the records of evicted segments (every 1024 evictions of a rendition).",
            vec![],
            n(&s.index_compactions),
        );
        m.gauge(
            "ladderd_dvr_bytes",
            "Bytes of DVR segments on disk.",
            vec![],
            n(&s.bytes_on_disk) as i64,
        );
        if let Some((p50, p99)) = s.write_latency() {
            for (q, v) in [("0.5", p50), ("0.99", p99)] {
                m.gauge_f(
                    "ladderd_dvr_write_latency_seconds",
                    "DVR segment write latency over the newest 4096 writes, from the packager's hand-off to the index synced (queueing included), by quantile.",
                    crate::telemetry::metrics::l(&[("quantile", q)]),
                    v,
                );
            }
        }
        m.counter(
            "ladderd_recordings_made",
            "Recordings (live-to-VOD) made: at a stream's end or through the API.",
            vec![],
            n(&s.recordings_made),
        );
        m.counter(
            "ladderd_recording_errors",
            "Recordings that could not be made (nothing on disk of the run, a failing disk).",
            vec![],
            n(&s.recording_errors),
        );
        m.gauge(
            "ladderd_recordings",
            "Recordings kept (they do not count against dvr.max_disk_gb).",
            vec![],
            self.0.recordings().len() as i64,
        );
    }
}
