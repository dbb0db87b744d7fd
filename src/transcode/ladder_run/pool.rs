//! The rung workers: one fixed pool of threads, one per core, runs every
//! rung of every ladder, so many channels do not oversubscribe the box
//! with a thread per rung per stream (issue 18). A rung is a task: its
//! queue of pictures, handled in order by one worker at a time, a few
//! pictures per turn, then back in line behind the other rungs. Each rung
//! has a home worker, so its encoder's state stays where it was last used
//! (the scheduler keeps a busy thread on its core) rather than moving with
//! every turn; an idle worker takes a rung waiting on a busy one. Measured
//! with `bench channels` here: 4 channels held with one shared line, 6 with
//! home workers (ffmpeg 6); pinning the workers to cores added nothing and
//! slowed a single ladder (its decoder lost a core to them).
//!
//! A task whose codec panics stops (its queue closes, the ladder sees the
//! rung gone and carries on); the worker lives on.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use super::threads::{rung_job, RungJob, RungOutput};
use crate::transcode::{Encoder, Frame, Scaler};

/// Pictures a rung handles per turn before the next rung's turn.
const TURN: usize = 2;

/// One rung's work: its stages, its queue, where its results go.
pub(super) struct Task {
    /// The worker it goes to (its encoder's state stays in that core's
    /// cache); another takes it only while that one is busy.
    home: usize,
    scheduled: AtomicBool,
    inner: Mutex<Option<TaskInner>>,
}

struct TaskInner {
    index: usize,
    scaler: Box<dyn Scaler>,
    encoder: Box<dyn Encoder>,
    frame: Frame,
    jobs: flume::Receiver<RungJob>,
    outputs: flume::Sender<RungOutput>,
}

impl Task {
    pub(super) fn new(
        index: usize,
        scaler: Box<dyn Scaler>,
        encoder: Box<dyn Encoder>,
        frame: Frame,
        jobs: flume::Receiver<RungJob>,
        outputs: flume::Sender<RungOutput>,
    ) -> Arc<Task> {
        let p = pool();
        Arc::new(Task {
            home: p.next_home.fetch_add(1, Ordering::Relaxed) % p.workers,
            scheduled: AtomicBool::new(false),
            inner: Mutex::new(Some(TaskInner {
                index,
                scaler,
                encoder,
                frame,
                jobs,
                outputs,
            })),
        })
    }

    /// Puts the rung in line for a worker (after a picture was queued, or its
    /// queue closed), unless it already is.
    pub(super) fn schedule(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            pool().push(self.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<TaskInner>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the rung has work: pictures queued, or a closed queue to
    /// finish (which drops its stages and its side of the results channel).
    fn pending(&self) -> bool {
        self.lock()
            .as_ref()
            .is_some_and(|i| !i.jobs.is_empty() || i.jobs.is_disconnected())
    }

    /// One turn: a few pictures, in order.
    fn run(self: &Arc<Self>) {
        {
            let mut guard = self.lock();
            let mut done = false;
            if let Some(inner) = guard.as_mut() {
                for _ in 0..TURN {
                    match inner.jobs.try_recv() {
                        Ok(job) => {
                            let TaskInner {
                                index,
                                scaler,
                                encoder,
                                frame,
                                ..
                            } = inner;
                            let made = catch_unwind(AssertUnwindSafe(|| {
                                rung_job(*index, scaler.as_mut(), encoder.as_mut(), frame, job)
                            }));
                            // A codec panic (logged by the panic hook), or
                            // nobody takes results any more: the rung stops.
                            let delivered = made.is_ok_and(|out| inner.outputs.send(out).is_ok());
                            if !delivered {
                                done = true;
                                break;
                            }
                        }
                        Err(flume::TryRecvError::Empty) => break,
                        Err(flume::TryRecvError::Disconnected) => {
                            done = true;
                            break;
                        }
                    }
                }
            }
            if done {
                *guard = None;
            }
        }
        self.scheduled.store(false, Ordering::Release);
        // A picture queued while this turn ran found it scheduled: look again.
        if self.pending() {
            self.schedule();
        }
    }
}

/// The worker threads and the rungs waiting for each.
pub struct Pool {
    lines: Mutex<Vec<VecDeque<Arc<Task>>>>,
    ready: Condvar,
    /// Whether each worker is running a task.
    busy: Vec<AtomicBool>,
    workers: usize,
    next_home: AtomicUsize,
}

static POOL: OnceLock<Pool> = OnceLock::new();
static WORKERS: AtomicUsize = AtomicUsize::new(0);

/// Sets the pool's size before its first use (the runtime: one per core it
/// runs on, or `[ladder] rung_workers`); later calls change nothing.
pub fn configure(workers: usize) {
    let _ = WORKERS.compare_exchange(0, workers.max(1), Ordering::AcqRel, Ordering::Acquire);
}

/// The pool's size (starting it if needed).
pub fn workers() -> usize {
    pool().workers
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let n = match WORKERS.load(Ordering::Acquire) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        for i in 0..n {
            let spawned = std::thread::Builder::new()
                .name(format!("ladderd-rungs-{i}"))
                .spawn(move || {
                    let p = pool();
                    loop {
                        let task = p.pop(i);
                        task.run();
                        p.busy[i].store(false, Ordering::Release);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(worker = i, "rung worker thread could not start: {e}");
            }
        }
        Pool {
            lines: Mutex::new(vec![VecDeque::new(); n]),
            ready: Condvar::new(),
            busy: (0..n).map(|_| AtomicBool::new(false)).collect(),
            workers: n,
            next_home: AtomicUsize::new(0),
        }
    })
}

impl Pool {
    fn push(&self, task: Arc<Task>) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines[task.home].push_back(task);
        drop(lines);
        self.ready.notify_all();
    }

    /// Worker `me`'s next task: its own rungs first, else one waiting on a
    /// busy worker, else it waits.
    fn pop(&self, me: usize) -> Arc<Task> {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let from = if !lines[me].is_empty() {
                Some(me)
            } else {
                (0..self.workers).find(|&w| {
                    w != me && !lines[w].is_empty() && self.busy[w].load(Ordering::Acquire)
                })
            };
            if let Some(w) = from {
                if let Some(t) = lines[w].pop_front() {
                    self.busy[me].store(true, Ordering::Release);
                    return t;
                }
            }
            lines = self.ready.wait(lines).unwrap_or_else(|e| e.into_inner());
        }
    }
}
