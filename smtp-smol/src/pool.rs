//! A connection pool for one server: bounded connections, idle timeout, `NOOP` before reusing a connection that
//! idled, reconnection after `421`, a bound on messages per connection.
//!
//! The pool runs no task of its own (so it works on any executor): connections are opened, checked and closed by
//! the tasks that send. Cloned handles share one pool.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures_lite::io::AsyncRead;
use smtp_blocking::{ConnectOptions, Error, ErrorKind, Outcome, SendReport};
use smtp_proto::Envelope;

use crate::connection::{Attempt, Connection};
use crate::error::pool_closed;
use crate::settings::Settings;
use crate::transcript::TRANSCRIPT_TARGET;

/// How the pool behaves. Start from [`PoolOptions::default`] and chain the setters.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PoolOptions {
    /// The most connections open to the server at once (idle, in use, or being opened). Default 4.
    pub max_connections: usize,
    /// An idle connection older than this is closed instead of reused. Default 60 s (servers commonly drop idle
    /// clients after 60–300 s; RFC 5321 §4.5.3.2.7 gives the server 5 minutes).
    pub idle_timeout: Duration,
    /// After this many messages a connection is closed (`QUIT`) and a new one opened. Default 100.
    pub max_messages_per_connection: u64,
    /// How many times a message is retried on a new connection when the server closed the channel (`421`) before
    /// accepting it, or a reused connection turned out to be closed before anything was sent. Default 2.
    pub reconnect_attempts: u32,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 4,
            idle_timeout: Duration::from_secs(60),
            max_messages_per_connection: 100,
            reconnect_attempts: 2,
        }
    }
}

impl PoolOptions {
    /// Sets [`max_connections`](Self::max_connections) (at least 1).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    #[must_use]
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Sets [`max_messages_per_connection`](Self::max_messages_per_connection) (at least 1).
    #[must_use]
    pub fn max_messages_per_connection(mut self, n: u64) -> Self {
        self.max_messages_per_connection = n.max(1);
        self
    }

    /// Sets [`reconnect_attempts`](Self::reconnect_attempts).
    #[must_use]
    pub fn reconnect_attempts(mut self, n: u32) -> Self {
        self.reconnect_attempts = n;
        self
    }
}

/// Counters, for monitoring and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections open now (idle, in use, or being opened).
    pub open: usize,
    /// Idle connections now.
    pub idle: usize,
    /// Connections opened since the pool was created.
    pub opened: u64,
    /// Idle connections reused.
    pub reused: u64,
    /// `NOOP` health checks done before reusing a connection that idled.
    pub health_checks: u64,
    /// Health checks that failed (the connection was discarded).
    pub health_check_failures: u64,
    /// Messages retried on a new connection after `421` or a stale connection.
    pub retries: u64,
}

struct Idle {
    conn: Connection,
    since: Instant,
}

struct State {
    idle: Vec<Idle>,
    /// Idle + checked out + being opened.
    open: usize,
    closed: bool,
    stats: PoolStats,
}

struct Shared {
    settings: Arc<Settings>,
    options: PoolOptions,
    state: Mutex<State>,
    /// Notified when a slot frees up or the pool closes.
    available: Event,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A pool of connections to one server. Cheap to clone; clones share the pool.
///
/// * At most [`PoolOptions::max_connections`] connections are open at once; a send that finds none free waits for
///   one (it is woken when a connection is returned or the pool closes).
/// * Idle connections are reused most recently used first; one idle for [`PoolOptions::idle_timeout`] is closed
///   instead. One idle for [`ConnectOptions::noop_after_idle`] is checked with `NOOP` before reuse (a connection is
///   never checked right after it was opened or used); a failed check discards it and the send takes another.
/// * A connection that reached [`PoolOptions::max_messages_per_connection`] is retired with `QUIT`.
/// * A message refused with `421` before anyone accepted it, or sent on a reused connection that turned out to be
///   closed before the end of data, is retried on a new connection ([`PoolOptions::reconnect_attempts`]).
/// * A connection whose send was cancelled mid-way (future dropped) is never returned: see [`Connection`].
/// * After [`close`](Self::close), sends fail at once with [`ErrorKind::Closed`] ("the connection pool was
///   closed").
///
/// ```no_run
/// # async fn demo(pool: smtp_smol::Pool, envelope: smtp_proto::Envelope) -> Result<(), smtp_smol::Error> {
/// let report = pool.send_bytes(&envelope, b"Subject: hi\r\n\r\nhello\r\n").await?;
/// println!("{}", report.outcome);
/// pool.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.shared.settings.options.authority())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What a checkout gives: a connection to reuse, or the right to open one.
enum Slot {
    Reuse(Box<Idle>),
    Open,
}

impl Pool {
    /// A pool for the server in `options` (a URL parses into [`ConnectOptions`]). The TLS configuration is built
    /// once here (trust anchors read once) and shared by every connection. No connection is opened until the first
    /// send.
    pub fn new(options: ConnectOptions, pool: PoolOptions) -> Result<Self, Error> {
        Ok(Self::with_settings(Settings::new(options)?, pool))
    }

    pub(crate) fn with_settings(settings: Arc<Settings>, options: PoolOptions) -> Self {
        Self {
            shared: Arc::new(Shared {
                settings,
                options,
                state: Mutex::new(State {
                    idle: Vec::new(),
                    open: 0,
                    closed: false,
                    stats: PoolStats::default(),
                }),
                available: Event::new(),
            }),
        }
    }

    /// The connection options every pooled connection is opened with.
    pub fn connect_options(&self) -> &ConnectOptions {
        &self.shared.settings.options
    }

    /// The pool's options.
    pub fn options(&self) -> &PoolOptions {
        &self.shared.options
    }

    /// Current counters.
    pub fn stats(&self) -> PoolStats {
        let st = self.shared.lock();
        PoolStats {
            open: st.open,
            idle: st.idle.len(),
            ..st.stats
        }
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Sends one message whose body is in memory, on a pooled connection (see [`Connection::send`] for
    /// what is an error and what is a report). Retried on a new connection, up to
    /// [`PoolOptions::reconnect_attempts`] times, when the server closed the channel with `421` before accepting the
    /// message for anyone, or when a reused connection turned out to be closed before the end of data was sent.
    ///
    /// Declares the size (RFC 1870 `SIZE=`) unless the envelope does, and sends the message again to the recipients
    /// the server asked to get it separately (LIMITS RCPTMAX, "too many recipients"), each further transaction on a
    /// pooled connection: one merged report, as [`Connection::send_reopen`] gives. A connection that reached the
    /// server's LIMITS MAILMAX is closed with QUIT and the transaction goes on another one.
    pub async fn send_bytes(
        &self,
        envelope: &Envelope,
        body: impl AsRef<[u8]>,
    ) -> Result<SendReport, Error> {
        let body = body.as_ref();
        let mut envelope = envelope.clone();
        if envelope.size.is_none() {
            envelope = envelope.with_size(body.len() as u64);
        }
        let mut plan = smtp_blocking::resend::ResendPlan::new(&envelope);
        while let Some(next) = plan.next_envelope() {
            plan.record(self.send_bytes_once(&next, body).await)?;
        }
        plan.into_report()
            .ok_or_else(|| Error::new(ErrorKind::ConnectionClosed, smtp_proto::Stage::Mail))
    }

    /// One transaction of [`send_bytes`](Self::send_bytes), retried on a new connection as documented there.
    async fn send_bytes_once(&self, envelope: &Envelope, body: &[u8]) -> Result<SendReport, Error> {
        let mut retries = 0;
        // Each connection found at the server's MAILMAX is retired; bounded in case every one is.
        let mut mail_max_retired = 0;
        loop {
            let mut conn = self.get().await?;
            let reused = conn.reused;
            let mut reader = body;
            let attempt = conn.attempt(envelope, &mut reader, None).await;
            if let Some(limit) = crate::resend::mail_max_reached(&attempt.result)
                && mail_max_retired <= self.shared.options.max_connections
            {
                mail_max_retired += 1;
                tracing::info!(
                    target: TRANSCRIPT_TARGET,
                    "* the server allows {limit} messages per connection (LIMITS MAILMAX): retiring it"
                );
                let _ = conn.detach().quit().await;
                continue;
            }
            self.release(conn).await;
            if should_retry(&attempt, reused) && retries < self.shared.options.reconnect_attempts {
                retries += 1;
                self.note_retry(&attempt);
                continue;
            }
            return attempt.result;
        }
    }

    /// Sends one message streamed from `body` (see [`Connection::send`]). Retried like [`send_bytes`](Self::send_bytes)
    /// when the body can be replayed: nothing was read from `body` yet (a `421` to MAIL, RCPT or DATA before the
    /// body started), or the whole body was shorter than 64 KiB (kept while it streamed). A larger body that was
    /// partly read is never retried: the stream cannot be rewound.
    pub async fn send(
        &self,
        envelope: &Envelope,
        mut body: impl AsyncRead + Unpin,
    ) -> Result<SendReport, Error> {
        let mut retries = 0;
        let mut mail_max_retired = 0;
        let mut source = Replay::new(&mut body);
        loop {
            let mut conn = self.get().await?;
            let reused = conn.reused;
            let attempt = conn.attempt(envelope, &mut source, None).await;
            if let Some(limit) = crate::resend::mail_max_reached(&attempt.result)
                && mail_max_retired <= self.shared.options.max_connections
            {
                // Refused before anything was sent or read: retire the connection, go on with another.
                mail_max_retired += 1;
                tracing::info!(
                    target: TRANSCRIPT_TARGET,
                    "* the server allows {limit} messages per connection (LIMITS MAILMAX): retiring it"
                );
                let _ = conn.detach().quit().await;
                continue;
            }
            self.release(conn).await;
            if should_retry(&attempt, reused)
                && retries < self.shared.options.reconnect_attempts
                && source.rewind()
            {
                retries += 1;
                self.note_retry(&attempt);
                continue;
            }
            return attempt.result;
        }
    }

    fn note_retry(&self, attempt: &Attempt) {
        self.shared.lock().stats.retries += 1;
        let why = match &attempt.result {
            Ok(r) => r
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        tracing::info!(target: TRANSCRIPT_TARGET, "* retrying the message on a new connection: {why}");
    }

    /// Checks out a ready connection: an idle one (after a `NOOP` if it idled for
    /// [`ConnectOptions::noop_after_idle`]), or a new one when fewer than
    /// [`max_connections`](PoolOptions::max_connections) are open; otherwise waits for one to be returned.
    ///
    /// Dropping the [`PooledConnection`] returns it to the pool if it is usable (between transactions, not
    /// poisoned, under the message bound); otherwise it is closed and its slot freed.
    pub async fn get(&self) -> Result<PooledConnection, Error> {
        loop {
            let slot = self.checkout().await?;
            let mut pooled = PooledConnection {
                conn: None,
                shared: Arc::clone(&self.shared),
                reused: false,
            };
            match slot {
                Slot::Open => {
                    // The slot is counted; if opening fails, dropping `pooled` frees it.
                    let mut conn = Connection::open(Arc::clone(&self.shared.settings)).await?;
                    conn.set_pooled();
                    self.shared.lock().stats.opened += 1;
                    pooled.conn = Some(conn);
                    return Ok(pooled);
                }
                Slot::Reuse(idle) => {
                    let Idle { mut conn, since } = *idle;
                    pooled.reused = true;
                    let check_after = self.shared.settings.options.noop_after_idle;
                    if check_after.is_some_and(|d| since.elapsed() >= d) {
                        let ok = conn.noop().await.is_ok();
                        let mut st = self.shared.lock();
                        st.stats.health_checks += 1;
                        if !ok {
                            st.stats.health_check_failures += 1;
                            drop(st);
                            pooled.conn = Some(conn);
                            drop(pooled); // closed: frees the slot
                            continue;
                        }
                    }
                    self.shared.lock().stats.reused += 1;
                    pooled.conn = Some(conn);
                    return Ok(pooled);
                }
            }
        }
    }

    /// Returns a connection after use: `QUIT` when it reached the message bound or the pool is closed (so the
    /// server sees a clean end), otherwise back to the idle list (by dropping it).
    async fn release(&self, mut pooled: PooledConnection) {
        let retire = {
            let Some(conn) = pooled.conn.as_ref() else {
                return;
            };
            conn.is_usable()
                && (conn.messages_sent() >= self.shared.options.max_messages_per_connection
                    || self.is_closed())
        };
        if retire && let Some(conn) = pooled.conn.take() {
            let _ = conn.quit().await;
        }
        drop(pooled);
    }

    async fn checkout(&self) -> Result<Slot, Error> {
        loop {
            if let Some(slot) = self.try_checkout()? {
                return Ok(slot);
            }
            let listener = self.shared.available.listen();
            if let Some(slot) = self.try_checkout()? {
                return Ok(slot);
            }
            listener.await;
        }
    }

    fn try_checkout(&self) -> Result<Option<Slot>, Error> {
        let mut expired = Vec::new();
        let slot = {
            let mut st = self.shared.lock();
            if st.closed {
                return Err(pool_closed());
            }
            let timeout = self.shared.options.idle_timeout;
            // Oldest first in the list: drop the ones that idled too long.
            while st
                .idle
                .first()
                .is_some_and(|i| i.since.elapsed() >= timeout)
            {
                expired.push(st.idle.remove(0));
                st.open -= 1;
            }
            if let Some(idle) = st.idle.pop() {
                Some(Slot::Reuse(Box::new(idle)))
            } else if st.open < self.shared.options.max_connections {
                st.open += 1;
                Some(Slot::Open)
            } else {
                None
            }
        };
        if !expired.is_empty() {
            tracing::debug!(target: TRANSCRIPT_TARGET, count = expired.len(), "closing connections idle for too long");
            // Freed slots may serve other waiters.
            self.shared.available.notify_additional(expired.len());
        }
        drop(expired);
        Ok(slot)
    }

    /// Closes the pool: new sends fail at once with a clear error, waiters are woken with that error, idle
    /// connections are closed with `QUIT`, and connections in use are closed when their message is done.
    pub async fn close(&self) {
        let idle = {
            let mut st = self.shared.lock();
            st.closed = true;
            let idle = std::mem::take(&mut st.idle);
            st.open -= idle.len();
            idle
        };
        self.shared.available.notify_additional(usize::MAX);
        // QUIT every idle connection at once: closing does not take one round trip per connection.
        let mut quits: Vec<_> = idle
            .into_iter()
            .map(|i| Some(Box::pin(i.conn.quit())))
            .collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for slot in &mut quits {
                if let Some(q) = slot {
                    if q.as_mut().poll(cx).is_ready() {
                        *slot = None;
                    } else {
                        pending = true;
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
    }
}

/// Whether a message may be sent again on a new connection: the server closed the channel (`421`) before accepting
/// it for anyone, or a reused connection was found closed before the end of data was sent.
fn should_retry(attempt: &Attempt, reused: bool) -> bool {
    match &attempt.result {
        Ok(report) => {
            report.outcome == Outcome::Rejected
                && report.accepted_count() == 0
                && report
                    .error
                    .as_ref()
                    .is_some_and(|e| matches!(e.kind(), ErrorKind::ServiceNotAvailable))
        }
        Err(e) => {
            attempt.not_sent
                && match e.kind() {
                    ErrorKind::ServiceNotAvailable => true,
                    ErrorKind::ConnectionClosed | ErrorKind::Io => reused,
                    _ => false,
                }
        }
    }
}

/// A connection checked out of a [`Pool`]. Derefs to [`Connection`]; dropping it returns the connection to the pool
/// when it is usable, and closes it otherwise (e.g. when a send future was dropped mid-way).
pub struct PooledConnection {
    conn: Option<Connection>,
    shared: Arc<Shared>,
    reused: bool,
}

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("conn", &self.conn)
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

impl PooledConnection {
    /// True when this connection had been used before and came from the idle list.
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// Takes the connection out of the pool for good (it no longer counts against the pool's limit).
    pub fn detach(mut self) -> Connection {
        self.conn.take().expect("present until dropped")
    }
}

impl Deref for PooledConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let conn = self.conn.take();
        let keep = conn.as_ref().is_some_and(|c| {
            c.is_usable()
                && !st.closed
                && c.messages_sent() < self.shared.options.max_messages_per_connection
        });
        let discarded = match (keep, conn) {
            (true, Some(conn)) => {
                st.idle.push(Idle {
                    conn,
                    since: Instant::now(),
                });
                None
            }
            (_, conn) => {
                st.open -= 1;
                conn
            }
        };
        drop(st);
        // Closing a socket outside the lock.
        drop(discarded);
        self.shared.available.notify_additional(1);
    }
}

/// How much of a streamed body is kept so that a short message can be sent again after a `421`.
const REPLAY_LIMIT: usize = 64 * 1024;

/// A body source that keeps what it read while that stays under [`REPLAY_LIMIT`], so that it can be rewound.
struct Replay<'a, R: ?Sized> {
    inner: &'a mut R,
    kept: Vec<u8>,
    /// `kept` holds everything read so far.
    complete: bool,
    /// The source reached its end.
    eof: bool,
    /// Replaying `kept` from this offset.
    replay: Option<usize>,
}

impl<'a, R: AsyncRead + Unpin + ?Sized> Replay<'a, R> {
    fn new(inner: &'a mut R) -> Self {
        Self {
            inner,
            kept: Vec::new(),
            complete: true,
            eof: false,
            replay: None,
        }
    }

    /// Starts over from the first byte; false when that is impossible (too much was read to keep).
    fn rewind(&mut self) -> bool {
        if self.complete {
            self.replay = Some(0);
        }
        self.complete
    }
}

impl<R: AsyncRead + Unpin + ?Sized> AsyncRead for Replay<'_, R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if let Some(at) = this.replay {
            if at < this.kept.len() {
                let n = buf.len().min(this.kept.len() - at);
                buf[..n].copy_from_slice(&this.kept[at..at + n]);
                this.replay = Some(at + n);
                return std::task::Poll::Ready(Ok(n));
            }
            this.replay = None;
            if this.eof {
                return std::task::Poll::Ready(Ok(0));
            }
        }
        let result = std::pin::Pin::new(&mut *this.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &result {
            if *n == 0 {
                this.eof = true;
            } else if this.complete && this.kept.len() + n <= REPLAY_LIMIT {
                this.kept.extend_from_slice(&buf[..*n]);
            } else {
                this.complete = false;
                this.kept = Vec::new();
            }
        }
        result
    }
}
