//! Adapters that let hyper run on glommio (its socket traits and a local
//! executor), and the connection's header clock its socket reads feed.

use crate::telemetry::clock;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};

use super::conn::{self, RequestLines};

/// What an over-long request line reads (see [`RequestLines`]): the
/// body the request checks' `414` has, and a close.
const URI_TOO_LONG: &[u8] = b"HTTP/1.1 414 URI Too Long\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: 10\r\nConnection: close\r\n\r\nuri_bytes\n";

/// A glommio socket seen through hyper's `Read`/`Write` traits; every read
/// that returns bytes is reported to the connection's header clock, and
/// scanned for a request line too long for hyper's buffer (answered `414`
/// here: hyper would say `431`).
pub struct HyperIo<T> {
    io: T,
    watch: Rc<ConnWatch>,
    lines: RequestLines,
    /// Once a request line ran over: how much of the `414` is written.
    refusing: Option<usize>,
    /// The `414` waits for a response still being sent (a pipelined request).
    idle: Option<event_listener::EventListener>,
}

impl<T> HyperIo<T> {
    /// `max_uri_bytes`: `server.http_max_uri_bytes`.
    pub fn new(io: T, watch: Rc<ConnWatch>, max_uri_bytes: usize) -> Self {
        HyperIo {
            io,
            watch,
            lines: RequestLines::new(max_uri_bytes),
            refusing: None,
            idle: None,
        }
    }
}

impl<T: AsyncWrite + Unpin> HyperIo<T> {
    /// Writes the `414` (after any response in flight), then reads as the end
    /// of the connection: hyper, holding an incomplete head, closes it without
    /// an answer of its own.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.watch.busy() {
            match &mut self.idle {
                // Listen, then look again: a response ending in between is not missed.
                None => self.idle = Some(self.watch.idle.listen()),
                Some(l) => {
                    ready!(Pin::new(l).poll(cx));
                    self.idle = None;
                }
            }
        }
        let answer = URI_TOO_LONG;
        let mut done = self.refusing.unwrap_or(0);
        while done < answer.len() {
            match Pin::new(&mut self.io).poll_write(cx, &answer[done..]) {
                Poll::Ready(Ok(n)) if n > 0 => done += n,
                // The client is gone: nobody to tell.
                Poll::Ready(_) => done = answer.len(),
                Poll::Pending => {
                    self.refusing = Some(done);
                    return Poll::Pending;
                }
            }
        }
        self.refusing = Some(done);
        let _ = ready!(Pin::new(&mut self.io).poll_flush(cx));
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.refusing.is_some() {
            return this.poll_refuse(cx);
        }
        // SAFETY: we only write initialised bytes into the cursor's spare capacity
        // (zeroed first) and advance by exactly what the socket returned.
        let unfilled = unsafe { buf.as_mut() };
        for b in unfilled.iter_mut() {
            b.write(0);
        }
        // SAFETY: every byte of `unfilled` was initialised just above.
        let slice = unsafe { &mut *(unfilled as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
        match Pin::new(&mut this.io).poll_read(cx, slice) {
            Poll::Ready(Ok(n)) => {
                this.watch.on_read(&slice[..n]);
                if this.lines.on_read(&slice[..n]).is_err() {
                    // hyper never sees the refused line; the requests read
                    // before it are its to answer first (issue 31).
                    this.watch.uri_too_long.set(true);
                    this.refusing = Some(0);
                    let before = this.lines.refused_at().min(n);
                    if before > 0 {
                        // SAFETY: the socket filled `n` bytes of the
                        // initialised slice; `before` is at most `n`.
                        unsafe { buf.advance(before) };
                        return Poll::Ready(Ok(()));
                    }
                    return this.poll_refuse(cx);
                }
                // SAFETY: the socket filled `n` bytes of the initialised slice.
                unsafe { buf.advance(n) };
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}

/// Spawns hyper's background tasks (HTTP/2 streams) on the current glommio executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        glommio::spawn_local(fut).detach();
    }
}

/// A connection's header clock, shared by its socket reads, its service and its watchdog.
pub struct ConnWatch {
    clock: RefCell<conn::HeaderClock>,
    /// Notified when a deadline is armed, so the watchdog sleeps until it.
    armed: event_listener::Event,
    /// Notified when a response is done (an answer the socket glue holds back waits for it).
    idle: event_listener::Event,
    /// The socket glue answered an over-long request line itself (counted when the connection ends).
    pub(super) uri_too_long: std::cell::Cell<bool>,
}

impl ConnWatch {
    pub(super) fn new(timeout: Duration) -> Self {
        ConnWatch {
            clock: RefCell::new(conn::HeaderClock::new(clock::now(), timeout)),
            armed: event_listener::Event::new(),
            idle: event_listener::Event::new(),
            uri_too_long: std::cell::Cell::new(false),
        }
    }

    /// Whether a request is being answered.
    fn busy(&self) -> bool {
        self.clock.borrow().in_flight()
    }

    fn on_read(&self, bytes: &[u8]) {
        if self.clock.borrow_mut().on_read(clock::now(), bytes) {
            self.armed.notify(usize::MAX);
        }
    }

    pub(super) fn on_request(&self) {
        self.clock.borrow_mut().on_request();
    }

    pub(super) fn on_response_done(&self) {
        if self.clock.borrow_mut().on_response_done(clock::now()) {
            self.armed.notify(usize::MAX);
        }
        self.idle.notify(usize::MAX);
    }

    /// Returns when the connection's headers are overdue.
    pub(super) async fn overdue(&self) {
        loop {
            let listener = self.armed.listen();
            let due = self.clock.borrow().due();
            let Some(due) = due else {
                listener.await;
                continue;
            };
            let now = clock::now();
            if self.clock.borrow().expired(now) {
                return;
            }
            futures_lite::future::or(listener, glommio::timer::sleep(due - now)).await;
        }
    }
}
