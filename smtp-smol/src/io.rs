//! Moving bytes: one "turn" writes what is queued, reads what arrived, and stops at the core's deadline.
//!
//! Writing and reading happen in the same poll, on the same stream, so a server that answers while the client is
//! still writing (a pipelined BDAT reply, an early `421`) is read at once and can never deadlock a large write.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use async_io::Timer;
use bytes::{Buf, Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncWrite};

use crate::tls::Stream;

/// Size of the read buffer for server replies.
const READ_BUFFER: usize = 16 * 1024;

/// Queued chunks are merged while the result stays this small, so that a pipelined group (commands, a small BDAT
/// body, QUIT) goes out in one write: a second small segment can wait for the peer's delayed ACK.
pub(crate) const COALESCE: usize = 64 * 1024;

/// What ended a turn.
#[derive(Debug)]
pub(crate) enum Turn {
    /// This many bytes were read into [`Io::received`].
    Read(usize),
    /// The server closed its side.
    Eof,
    /// Everything queued was written and flushed (only when asked for).
    Written,
    /// The deadline passed.
    Deadline,
}

/// The connection's byte pipes and its one timer.
#[derive(Debug)]
pub(crate) struct Io {
    pub(crate) stream: Stream,
    out: VecDeque<Bytes>,
    unflushed: bool,
    buf: Box<[u8]>,
    /// Bytes in `out`.
    queued: usize,
    /// Fires at `armed` (when set), no later than `deadline`. Re-arming costs a reactor notification, so it is only
    /// done when the deadline moves earlier than `armed` or after the timer fired: a timer that fires before the
    /// current deadline (which moved later since) is re-armed, never taken for the deadline.
    timer: Timer,
    armed: Option<Instant>,
    /// The deadline of the wait in progress.
    deadline: Option<Instant>,
}

impl Io {
    pub(crate) fn new(stream: Stream) -> Self {
        Self {
            stream,
            out: VecDeque::new(),
            unflushed: false,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            queued: 0,
            timer: Timer::never(),
            armed: None,
            deadline: None,
        }
    }

    /// Queues bytes to write (written by the next turns, in order). Small chunks are copied together so that
    /// they go out in one write.
    pub(crate) fn queue(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.queued += bytes.len();
        if let Some(back) = self.out.back_mut()
            && back.len() + bytes.len() <= COALESCE
        {
            let mut merged = BytesMut::with_capacity(back.len() + bytes.len());
            merged.extend_from_slice(back);
            merged.extend_from_slice(&bytes);
            *back = merged.freeze();
            return;
        }
        self.out.push_back(bytes);
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Sets the deadline of the next wait; the timer is only re-armed when it would fire too late.
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
        if let Some(at) = deadline
            && self.armed.is_none_or(|armed| armed > at)
        {
            self.timer.set_at(at);
            self.armed = Some(at);
        }
    }

    /// Ready once the deadline passed; a timer that fires earlier (armed for an earlier deadline) is re-armed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Bounded: after one early firing the timer is armed at the deadline itself.
        for _ in 0..2 {
            let Some(at) = self.deadline else {
                return Poll::Pending;
            };
            if self.armed.is_none() {
                self.timer.set_at(at);
                self.armed = Some(at);
            }
            if Pin::new(&mut self.timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.armed = None;
            if Instant::now() >= at {
                return Poll::Ready(());
            }
        }
        // Fired twice without the deadline having passed (a clock oddity): wake up again at once and re-check.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Nothing is waiting to be written or flushed.
    pub(crate) fn is_drained(&self) -> bool {
        self.out.is_empty() && !self.unflushed
    }

    /// The bytes read by the last [`Turn::Read`].
    pub(crate) fn received(&self, n: usize) -> &[u8] {
        &self.buf[..n]
    }

    /// Writes and reads until something happens: bytes arrive, the server closes, the deadline passes, or (with
    /// `until_written`) everything queued is on the wire.
    pub(crate) async fn turn(
        &mut self,
        deadline: Option<Instant>,
        until_written: bool,
    ) -> io::Result<Turn> {
        self.set_deadline(deadline);
        poll_fn(|cx| self.poll_turn(cx, until_written)).await
    }

    fn poll_turn(&mut self, cx: &mut Context<'_>, until_written: bool) -> Poll<io::Result<Turn>> {
        // 1. Write as much as the socket takes.
        while let Some(front) = self.out.front_mut() {
            match Pin::new(&mut self.stream).poll_write(cx, front) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.unflushed = true;
                    self.queued -= n;
                    front.advance(n);
                    if front.is_empty() {
                        self.out.pop_front();
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        // 2. Flush (TLS keeps records in rustls until flushed) before anything is awaited.
        if self.out.is_empty() && self.unflushed {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        // 3. Read whatever the server sent.
        match Pin::new(&mut self.stream).poll_read(cx, &mut self.buf) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Ok(Turn::Eof)),
            Poll::Ready(Ok(n)) => {
                self.consume_readiness();
                return Poll::Ready(Ok(Turn::Read(n)));
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                cx.waker().wake_by_ref()
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        if until_written && self.is_drained() {
            return Poll::Ready(Ok(Turn::Written));
        }
        // 4. The deadline.
        if self.poll_deadline(cx).is_ready() {
            return Poll::Ready(Ok(Turn::Deadline));
        }
        Poll::Pending
    }

    /// After a read that returned bytes, async-io still holds the readability event that led to it and would report
    /// it once more; taking it now keeps the next wait after a write from being woken by it (and from an empty read).
    /// Harmless either way: readability is only a hint, every read that finds nothing registers interest again, and
    /// the next real wait replaces the no-op waker this may register.
    fn consume_readiness(&mut self) {
        let _ = self
            .stream
            .poll_readable(&mut Context::from_waker(Waker::noop()));
    }

    /// Reads from `source` into `buf`, raced against `deadline`; `None` when the deadline passed first.
    pub(crate) async fn read_source<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        source: &mut R,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Option<io::Result<usize>> {
        self.set_deadline(deadline);
        poll_fn(|cx| {
            if let Poll::Ready(r) = Pin::new(&mut *source).poll_read(cx, buf) {
                return Poll::Ready(Some(r));
            }
            if self.poll_deadline(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }

    /// Races any future against `deadline`; `None` when the deadline passed first.
    pub(crate) async fn race<F: Future>(
        &mut self,
        fut: F,
        deadline: Option<Instant>,
    ) -> Option<F::Output> {
        self.set_deadline(deadline);
        let mut fut = std::pin::pin!(fut);
        poll_fn(|cx| {
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if self.poll_deadline(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }
}
