//! Moving bytes: one "turn" writes what is queued, reads what arrived, and stops at the core's deadline.
//!
//! Writing and reading happen in the same poll, on the same stream, so a server that answers while the client is
//! still writing (a pipelined BDAT reply, an early `421`) is read at once and can never deadlock a large write.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::Timer;
use bytes::{Buf, Bytes};
use futures_lite::io::{AsyncRead, AsyncWrite};

use crate::tls::Stream;

/// Size of the read buffer for server replies.
const READ_BUFFER: usize = 16 * 1024;

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
    timer: Timer,
}

impl Io {
    pub(crate) fn new(stream: Stream) -> Self {
        Self {
            stream,
            out: VecDeque::new(),
            unflushed: false,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            timer: Timer::never(),
        }
    }

    /// Queues bytes to write (written by the next turns, in order).
    pub(crate) fn queue(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.out.push_back(bytes);
        }
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
        match deadline {
            Some(at) => self.timer.set_at(at),
            None => self.timer = Timer::never(),
        }
        poll_fn(|cx| self.poll_turn(cx, until_written)).await
    }

    fn poll_turn(&mut self, cx: &mut Context<'_>, until_written: bool) -> Poll<io::Result<Turn>> {
        // 1. Write as much as the socket takes.
        while let Some(front) = self.out.front_mut() {
            match Pin::new(&mut self.stream).poll_write(cx, front) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.unflushed = true;
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
            Poll::Ready(Ok(n)) => return Poll::Ready(Ok(Turn::Read(n))),
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
        if Pin::new(&mut self.timer).poll(cx).is_ready() {
            return Poll::Ready(Ok(Turn::Deadline));
        }
        Poll::Pending
    }

    /// Reads from `source` into `buf`, raced against `deadline`; `None` when the deadline passed first.
    pub(crate) async fn read_source<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        source: &mut R,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Option<io::Result<usize>> {
        match deadline {
            Some(at) => self.timer.set_at(at),
            None => self.timer = Timer::never(),
        }
        let timer = &mut self.timer;
        poll_fn(|cx| {
            if let Poll::Ready(r) = Pin::new(&mut *source).poll_read(cx, buf) {
                return Poll::Ready(Some(r));
            }
            if Pin::new(&mut *timer).poll(cx).is_ready() {
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
        match deadline {
            Some(at) => self.timer.set_at(at),
            None => self.timer = Timer::never(),
        }
        let timer = &mut self.timer;
        let mut fut = std::pin::pin!(fut);
        poll_fn(|cx| {
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if Pin::new(&mut *timer).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }
}
