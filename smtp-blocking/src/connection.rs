//! The blocking adapter: TCP connect, the drive loop around [`smtp_proto::Client`], TLS hand-offs, `Auto` mode, and
//! the send API on [`Connection`].
//!
//! The drive loop follows the core's contract to the letter: write everything `poll_transmit` gives (the socket's
//! write timeout is the time left until `poll_timeout`), handle every event, then wait for input with the socket's
//! read timeout set from `poll_timeout` — re-read before every read, so a server that dribbles bytes cannot stretch
//! a stage — and turn a timed-out read into `handle_timeout`.

use std::error::Error as StdError;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use smtp_proto::{
    Capabilities, Client, Envelope, Event, PeerSpeaks, Reply, Stage, TlsPolicy, UsageError,
};

use crate::batch::{Flight, InOrder, Queue, asks_for_resend, feeding};
use crate::error::{Error, ErrorKind};
use crate::options::{ConnectOptions, TlsMode};
use crate::report::{SendReport, TlsUsed};
use crate::tls::{self, HandshakeFailure, TlsStream};
use crate::transcript::{Direction, Transcript, TranscriptLine};
use crate::transport::{self, Peer, Socket};

/// Body bytes read from the source per block (the core applies back-pressure on top).
const BODY_BLOCK: usize = 64 * 1024;

/// The first block read from the source is smaller (zeroing 64 KiB per message costs more than a small message's
/// whole body); a read that fills it switches to [`BODY_BLOCK`].
const FIRST_BODY_BLOCK: usize = 8 * 1024;

/// What every connection attempt shares: the options, the resolved addresses and the TLS configuration.
struct Shared {
    options: ConnectOptions,
    addrs: Vec<SocketAddr>,
    tls_config: Option<Arc<ClientConfig>>,
    server_name: Option<ServerName<'static>>,
}

enum Stream {
    Plain(Socket),
    Tls(Box<TlsStream>),
    Closed,
}

impl Stream {
    fn socket(&self) -> Option<&Socket> {
        match self {
            Self::Plain(s) => Some(s),
            Self::Tls(t) => Some(t.socket()),
            Self::Closed => None,
        }
    }

    fn set_read_timeout(&self, d: Duration) -> io::Result<()> {
        match self.socket() {
            Some(s) => s.set_read_timeout(Some(d.max(Duration::from_millis(1)))),
            None => Ok(()),
        }
    }

    fn set_write_timeout(&self, d: Duration) -> io::Result<()> {
        match self.socket() {
            Some(s) => s.set_write_timeout(Some(d.max(Duration::from_millis(1)))),
            None => Ok(()),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(t) => t.read(buf),
            Self::Closed => Ok(0),
        }
    }

    fn write_some(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => io::Write::write(s, data),
            Self::Tls(t) => t.write_some(data),
            Self::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tls(t) => t.flush(),
            _ => Ok(()),
        }
    }

    fn close(&mut self) {
        let _ = self.set_write_timeout(Duration::from_millis(500));
        if let Self::Tls(t) = self {
            t.close();
        }
        if let Some(s) = self.socket() {
            let _ = s.shutdown(Shutdown::Both);
        }
        *self = Self::Closed;
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Progress of an attempt that `Auto` runs on its own thread.
enum Msg {
    GotBytes,
    Verified,
    Done(Box<Result<Session, AttemptError>>),
}

type Progress = (usize, Sender<(usize, Msg)>);

/// Lets `Auto` abandon an attempt: sets the flag and shuts the socket, so a blocked read returns at once.
#[derive(Default)]
struct Cancel {
    flag: AtomicBool,
    sock: Mutex<Option<Socket>>,
}

impl Cancel {
    fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let guard = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = guard.as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// A failed attempt: the error, whether the server sent anything, and where it was connected.
struct AttemptError {
    error: Error,
    bytes_seen: bool,
    peer: Option<SocketAddr>,
}

impl From<Error> for AttemptError {
    fn from(error: Error) -> Self {
        Self {
            error,
            bytes_seen: false,
            peer: None,
        }
    }
}

/// One connection (TCP, Unix socket, or through a proxy) driven by one core [`Client`].
struct Session {
    stream: Stream,
    client: Client,
    policy: TlsPolicy,
    peer: Peer,
    shared: Arc<Shared>,
    transcript: Transcript,
    /// Set when `Event::Closed` was seen: the core's error, if any.
    closed: Option<Option<smtp_proto::Error>>,
    /// The I/O or TLS error behind the last failure, for `Error::source`.
    cause: Option<Arc<dyn StdError + Send + Sync>>,
    bytes_seen: bool,
    progress: Option<Progress>,
    cancel: Option<Arc<Cancel>>,
    /// A `poll_transmit` chunk not fully written yet, and how much of it was.
    out: Option<(Bytes, usize)>,
    buf: Vec<u8>,
    /// The socket timeouts as last set here, so that `setsockopt` is skipped when the one set will do.
    timeouts: SocketTimeouts,
}

/// The read and write timeouts last set on the socket by the drive loop (`None`: unknown, set before the next call).
#[derive(Default)]
struct SocketTimeouts {
    read: Option<Duration>,
    write: Option<Duration>,
}

/// The timeout to set on the socket before a call that must return within `left`, or `None` when the one set
/// (`set`) will do: not longer than `left` (the call cannot block past the deadline) and not much shorter (a shorter
/// one costs a spurious time-out, after which the caller re-checks the core's deadline and waits again). A new one
/// is set a quarter below `left`, so that the next message's deadline, counted from later, still fits it.
fn timeout_to_set(set: Option<Duration>, left: Duration) -> Option<Duration> {
    match set {
        Some(t) if t <= left && t >= left / 4 => None,
        _ if left > Duration::from_secs(1) => Some(left * 3 / 4),
        // The socket's floor (`Stream::set_*_timeout`): a zero timeout would mean "none".
        _ => Some(left.max(Duration::from_millis(1))),
    }
}

impl Session {
    fn connect(
        shared: &Arc<Shared>,
        policy: TlsPolicy,
        buffered: bool,
        progress: Option<Progress>,
        cancel: Option<Arc<Cancel>>,
    ) -> Result<Self, AttemptError> {
        let o = &shared.options;
        let mut transcript = Transcript::new(o.transcript.clone(), buffered);
        let (sock, peer) = match transport::connect(o, &shared.addrs) {
            Ok(x) => x,
            Err(e) => {
                transcript.go_live();
                return Err(e.into());
            }
        };
        if let Some(c) = &cancel {
            let mut slot = c.sock.lock().unwrap_or_else(|p| p.into_inner());
            if c.is_cancelled() {
                let _ = sock.shutdown(Shutdown::Both);
                return Err(Error::new(ErrorKind::ConnectionClosed, Stage::Connect).into());
            }
            *slot = sock.try_clone().ok();
        }
        let mode = match policy {
            TlsPolicy::Implicit => "implicit TLS",
            TlsPolicy::StartTlsRequired => "STARTTLS required",
            TlsPolicy::StartTlsOpportunistic => "STARTTLS opportunistic",
            _ => "no TLS",
        };
        match &peer {
            Peer::Tcp(_) => {
                transcript.note(format!("connected to {peer} ({}), {mode}", o.authority()))
            }
            _ => transcript.note(format!("connected to {peer}, {mode}")),
        }
        let mut config = o.connect_config(policy, Transcript::wanted(&o.transcript))?;
        if config.sasl_random.is_none() {
            // SCRAM nonces: fresh per connection (the core reads no randomness itself).
            config.sasl_random = tls::random_bytes();
        }
        Ok(Self {
            stream: Stream::Plain(sock),
            client: Client::new(config, Instant::now()),
            policy,
            peer,
            shared: Arc::clone(shared),
            transcript,
            closed: None,
            cause: None,
            bytes_seen: false,
            progress,
            cancel,
            out: None,
            buf: vec![0; 16 * 1024],
            timeouts: SocketTimeouts::default(),
        })
    }

    fn send_progress(&self, msg: Msg) {
        if let Some((i, tx)) = &self.progress {
            let _ = tx.send((*i, msg));
        }
    }

    fn drain_transcript(&mut self) {
        while let Some(entry) = self.client.poll_transcript() {
            let direction = match entry.direction {
                smtp_proto::Direction::Client => Direction::Client,
                _ => Direction::Server,
            };
            self.transcript.emit(TranscriptLine {
                at: entry.at,
                direction,
                text: entry.text,
            });
        }
    }

    /// The error the session closed with.
    fn closed_error(&self) -> Error {
        match &self.closed {
            Some(Some(e)) => Error::from_proto(e.clone()).with_shared_cause(self.cause.clone()),
            _ => Error::new(ErrorKind::Closed, Stage::Idle),
        }
    }

    fn tls_used(&self) -> TlsUsed {
        match (self.client.is_tls(), self.policy) {
            (false, _) => TlsUsed::None,
            (true, TlsPolicy::Implicit) => TlsUsed::Implicit,
            (true, _) => TlsUsed::StartTls,
        }
    }

    /// Writes what the core gives, then returns its next event (doing TLS hand-offs in between). `None`: nothing to
    /// do until input arrives or a deadline passes.
    fn poll(&mut self) -> Option<Event> {
        loop {
            self.flush_out();
            let event = self.client.poll_event();
            self.drain_transcript();
            match event {
                Some(Event::StartTls) => self.handshake(),
                Some(Event::Closed { error }) => {
                    self.closed = Some(error.clone());
                    self.stream.close();
                    return Some(Event::Closed { error });
                }
                other => return other,
            }
        }
    }

    /// The next event without writing first (`poll` writes): for a caller that may add to the same write.
    fn poll_no_flush(&mut self) -> Option<Event> {
        let event = self.client.poll_event();
        self.drain_transcript();
        match event {
            Some(Event::StartTls) => {
                self.handshake();
                self.poll_no_flush()
            }
            Some(Event::Closed { error }) => {
                self.closed = Some(error.clone());
                self.stream.close();
                Some(Event::Closed { error })
            }
            other => other,
        }
    }

    /// `poll_transmit` until `None`, each chunk written fully (or until the core gives up on it). True when there
    /// was something to write.
    fn flush_out(&mut self) -> bool {
        let mut wrote = false;
        loop {
            if self.out.is_none() {
                match self.client.poll_transmit(Instant::now()) {
                    Some(bytes) => self.out = Some((bytes, 0)),
                    None => break,
                }
            }
            wrote = true;
            if !self.write_out() {
                self.out = None;
                return wrote;
            }
            self.out = None;
        }
        // TLS: push out what rustls still holds.
        if matches!(self.stream, Stream::Tls(_)) {
            self.write_with_deadline(|s| s.flush().map(|()| 1));
        }
        wrote
    }

    /// Writes the pending chunk. False when the core closed (deadline passed, connection lost).
    fn write_out(&mut self) -> bool {
        loop {
            let Some((bytes, off)) = &self.out else {
                return true;
            };
            if *off >= bytes.len() {
                return true;
            }
            let (bytes, start) = (bytes.clone(), *off);
            let mut taken = 0;
            let ok = self.write_with_deadline(|s| {
                let n = s.write_some(&bytes[start..])?;
                taken = n;
                Ok(n.max(1))
            });
            if !ok {
                return false;
            }
            if let Some((_, off)) = &mut self.out {
                *off += taken;
            }
        }
    }

    /// Runs one write operation with the socket's write timeout set from `poll_timeout`. On a timeout tells the
    /// core (`handle_timeout`) and retries until the core closes; on an error reads what the server may have said
    /// last (e.g. a `421`) and reports the end of the stream. Returns false when the session is closed.
    fn write_with_deadline(
        &mut self,
        mut op: impl FnMut(&mut Stream) -> io::Result<usize>,
    ) -> bool {
        loop {
            if self.client.is_closed() {
                return false;
            }
            let now = Instant::now();
            let deadline = self
                .client
                .poll_timeout()
                .unwrap_or(now + Duration::from_secs(60));
            if now >= deadline {
                self.client.handle_timeout(now);
                continue;
            }
            if let Some(t) = timeout_to_set(self.timeouts.write, deadline - now) {
                if let Err(e) = self.stream.set_write_timeout(t) {
                    self.fail_io(e);
                    return false;
                }
                self.timeouts.write = Some(t);
            }
            match op(&mut self.stream) {
                Ok(_) => return true,
                Err(e) if is_timeout(&e) => self.client.handle_timeout(Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail_io(e);
                    return false;
                }
            }
        }
    }

    /// The connection broke: read whatever the server sent before (a `421` explains more than a reset), then
    /// report the end of the stream.
    fn fail_io(&mut self, e: io::Error) {
        self.cause = Some(Arc::new(e));
        self.timeouts.read = None;
        let _ = self.stream.set_read_timeout(Duration::from_millis(100));
        for _ in 0..16 {
            match self.stream.read(&mut self.buf) {
                Ok(n) if n > 0 && !self.client.is_closed() => {
                    self.client.receive(Instant::now(), &self.buf[..n])
                }
                _ => break,
            }
        }
        self.client.receive_eof(Instant::now());
    }

    /// Waits for input until the core's next deadline (or `wake`, if earlier), and feeds what happened to the core.
    /// False when there is nothing to wait for.
    fn wait(&mut self, wake: Option<Instant>) -> bool {
        let deadline = match (self.client.poll_timeout(), wake) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(d) => d,
                None => return false,
            },
        };
        let now = Instant::now();
        if now >= deadline {
            self.client.handle_timeout(now);
            return true;
        }
        if let Some(t) = timeout_to_set(self.timeouts.read, deadline - now) {
            if let Err(e) = self.stream.set_read_timeout(t) {
                self.cause = Some(Arc::new(e));
                self.client.receive_eof(now);
                return true;
            }
            self.timeouts.read = Some(t);
        }
        match self.stream.read(&mut self.buf) {
            Ok(0) => self.client.receive_eof(Instant::now()),
            Ok(n) => {
                if !self.bytes_seen {
                    self.bytes_seen = true;
                    self.send_progress(Msg::GotBytes);
                }
                self.client.receive(Instant::now(), &self.buf[..n]);
            }
            Err(e) if is_timeout(&e) => self.client.handle_timeout(Instant::now()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                self.cause = Some(Arc::new(e));
                self.client.receive_eof(Instant::now());
            }
        }
        true
    }

    /// The TLS handshake the core asked for ([`Event::StartTls`]).
    fn handshake(&mut self) {
        let now = Instant::now();
        let implicit = self.policy == TlsPolicy::Implicit;
        let (Some(config), Some(name)) = (
            self.shared.tls_config.clone(),
            self.shared.server_name.clone(),
        ) else {
            self.client
                .tls_failed(now, &[], "TLS is not configured for this connection");
            return;
        };
        // The handshake sets the socket's timeouts itself.
        self.timeouts = SocketTimeouts::default();
        let sock = match std::mem::replace(&mut self.stream, Stream::Closed) {
            Stream::Plain(s) => s,
            other => {
                self.stream = other;
                self.client.tls_failed(now, &[], "TLS was requested twice");
                return;
            }
        };
        let timeout = self.shared.options.session.timeouts.tls_handshake;
        let deadline = self.client.poll_timeout().unwrap_or(now + timeout);
        let name_text = name.to_str().into_owned();
        match tls::handshake(sock, config, name, deadline) {
            Ok(stream) => {
                self.transcript.note(format!(
                    "TLS established ({}), certificate verified for {name_text:?}",
                    stream.summary()
                ));
                let binding = stream.channel_binding();
                self.stream = Stream::Tls(Box::new(stream));
                let _ = self
                    .client
                    .tls_established_with_binding(Instant::now(), binding);
                self.send_progress(Msg::Verified);
            }
            Err((failure, observed)) => {
                let now = Instant::now();
                match failure {
                    HandshakeFailure::TimedOut => self.client.handle_timeout(now),
                    HandshakeFailure::Closed if observed.is_empty() => self.client.receive_eof(now),
                    HandshakeFailure::Closed => self.fail_handshake(
                        implicit,
                        &observed,
                        "the server closed the connection during the TLS handshake",
                    ),
                    HandshakeFailure::Tls(e) => {
                        let details = tls::describe_tls_error(&e, &name_text);
                        self.cause = Some(Arc::new(e));
                        self.fail_handshake(implicit, &observed, &details);
                    }
                    HandshakeFailure::Io(e) => {
                        let details = format!("I/O error during the TLS handshake: {e}");
                        self.cause = Some(Arc::new(e));
                        if observed.is_empty() {
                            self.client.receive_eof(now);
                        } else {
                            self.fail_handshake(implicit, &observed, &details);
                        }
                    }
                }
                if !observed.is_empty() && !self.bytes_seen {
                    self.bytes_seen = true;
                    self.send_progress(Msg::GotBytes);
                }
            }
        }
    }

    fn fail_handshake(&mut self, implicit: bool, observed: &[u8], details: &str) {
        let now = Instant::now();
        let speaks = smtp_proto::diagnose::classify(observed);
        if !implicit
            && !matches!(
                speaks,
                PeerSpeaks::TlsRecord | PeerSpeaks::Undecided | PeerSpeaks::Nothing
            )
        {
            // Plaintext after the 220 to STARTTLS: the core reports the response injection.
            self.client.receive(now, observed);
        } else {
            self.client.tls_failed(now, observed, details);
        }
    }

    /// Drives the opening (greeting, EHLO, STARTTLS, AUTH) until the session is ready.
    fn open(&mut self) -> Result<(), Error> {
        // A token provider that failed after a refused token: reported once the polite QUIT is done.
        let mut provider_error = None;
        loop {
            while let Some(event) = self.poll() {
                match event {
                    Event::AuthRejected { error } => {
                        // RFC 7628 §3.2.3: the session survives a refused token; ask for a fresh one and retry once.
                        let details = match error.kind() {
                            smtp_proto::ErrorKind::AuthFailed { details } => details.clone(),
                            _ => None,
                        };
                        self.transcript.note(format!(
                            "the server refused the OAuth token{}: asking the token provider for a fresh one",
                            details.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
                        ));
                        let request = crate::oauth::TokenRequest::Refresh { details };
                        let fresh = match &self.shared.options.oauth {
                            Some(source) => source.credentials(&request),
                            None => Err(Error::from_proto(error)),
                        };
                        match fresh {
                            Ok(credentials) => self
                                .client
                                .retry_auth(credentials, Instant::now())
                                .map_err(|e| usage(e, Stage::Auth))?,
                            Err(e) => {
                                provider_error = Some(e);
                                self.client.quit();
                            }
                        }
                    }
                    Event::Closed { .. } if provider_error.is_some() => {
                        return Err(provider_error.take().expect("checked"));
                    }
                    Event::Ready {
                        tls, authenticated, ..
                    } => {
                        let mut note = format!(
                            "ready: TLS {}",
                            if tls {
                                self.tls_used().as_str()
                            } else {
                                "none"
                            }
                        );
                        if authenticated {
                            note.push_str(", authenticated");
                        }
                        if !tls && self.policy == TlsPolicy::StartTlsOpportunistic {
                            note.push_str(" (STARTTLS not available: continuing in plaintext, opportunistic mode)");
                        }
                        self.transcript.note(note);
                        return Ok(());
                    }
                    Event::Closed { .. } => return Err(self.closed_error()),
                    _ => {}
                }
            }
            if !self.wait(None) {
                if let Some(e) = provider_error {
                    self.stream.close();
                    return Err(e);
                }
                return Err(Error::new(ErrorKind::UnexpectedReply, Stage::Greeting));
            }
        }
    }

    /// Reads outstanding replies (e.g. to the RSET after a failed transaction) until the session is idle.
    fn settle(&mut self) {
        loop {
            while self.poll().is_some() {}
            if self.client.is_idle() || self.client.is_closed() || !self.wait(None) {
                return;
            }
        }
    }

    /// While idle, looks (without blocking) for anything the server sent since the last exchange: a `421` before
    /// an idle close, or the close itself. The core then closes the session, so the next transaction reconnects
    /// instead of pipelining a message into a dead connection.
    fn check_idle(&mut self) {
        if self.closed.is_some() || !self.client.is_idle() {
            return;
        }
        // The usual case, nothing there, in one system call: no decrypted bytes waiting in the TLS layer, nothing
        // on the socket. Anything else takes the full read below.
        let buffered = match &mut self.stream {
            Stream::Tls(t) => t.has_plaintext(),
            _ => false,
        };
        let Some(sock) = self.stream.socket() else {
            return;
        };
        if !buffered && sock.nothing_to_read() {
            return;
        }
        if sock.set_nonblocking(true).is_err() {
            return;
        }
        let read = self.stream.read(&mut self.buf);
        if let Some(sock) = self.stream.socket() {
            let _ = sock.set_nonblocking(false);
        }
        match read {
            Ok(0) => self.client.receive_eof(Instant::now()),
            Ok(n) => self.client.receive(Instant::now(), &self.buf[..n]),
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                self.cause = Some(Arc::new(e));
                self.client.receive_eof(Instant::now());
            }
        }
        while self.poll().is_some() {}
    }

    /// Connects and opens with `policy`; the transcript is buffered when `buffered` (for `Auto`'s parallel
    /// attempts) and delivered when the attempt fails or is adopted.
    fn attempt(
        shared: &Arc<Shared>,
        policy: TlsPolicy,
        buffered: bool,
        progress: Option<Progress>,
        cancel: Option<Arc<Cancel>>,
    ) -> Result<Self, AttemptError> {
        let mut session = Self::connect(shared, policy, buffered, progress, cancel)?;
        match session.open() {
            Ok(()) => Ok(session),
            Err(error) => {
                if !session.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                    session.transcript.go_live();
                }
                Err(AttemptError {
                    error,
                    bytes_seen: session.bytes_seen,
                    peer: session.peer.socket_addr(),
                })
            }
        }
    }

    /// The attempt now belongs to the caller: deliver its transcript live, stop reporting progress.
    fn adopt(&mut self) {
        self.transcript.go_live();
        self.progress = None;
        self.cancel = None;
    }
}

/// An open SMTP or LMTP session over TCP (and TLS), ready for messages.
///
/// ```no_run
/// use smtp_blocking::{Connection, ConnectOptions, Envelope, Outcome};
///
/// let options = ConnectOptions::from_url("smtp://alice@mail.example.org:587")?
///     .with_password("alice", "app-password");
/// let mut conn = Connection::connect(&options)?;
/// let envelope = Envelope::new(
///     smtp_blocking::ReversePath::Mailbox("alice@example.org".parse().unwrap()),
///     ["bob@example.net".parse().unwrap()],
/// );
/// let report = conn.send_bytes(&envelope, b"Subject: hi\r\n\r\nhello\r\n")?;
/// assert_eq!(report.outcome, Outcome::Accepted);
/// conn.quit()?;
/// # Ok::<(), smtp_blocking::Error>(())
/// ```
///
/// The connection stays usable after each message (a failed transaction is reset with `RSET`); before reuse after
/// [`ConnectOptions::noop_after_idle`] it is checked with `NOOP`, and a dead connection is reopened (when
/// [`ConnectOptions::reconnect`] is on) before the transaction starts. Call [`quit`](Self::quit) to end politely;
/// dropping it just closes the socket.
pub struct Connection {
    session: Session,
    shared: Arc<Shared>,
    last_used: Instant,
    tls_reason: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.session.peer)
            .field("tls", &self.tls())
            .field("closed", &self.session.closed.is_some())
            .finish_non_exhaustive()
    }
}

/// The addresses of the first hop: the server's, or the SOCKS5 proxy's (the proxy resolves the server's name).
/// None for a Unix socket.
fn resolve(options: &ConnectOptions) -> Result<Vec<SocketAddr>, Error> {
    match transport::first_hop(options) {
        Some((host, port)) => transport::resolve(host, port),
        None => Ok(Vec::new()),
    }
}

fn add(a: Duration, b: Duration) -> Duration {
    a.saturating_add(b)
}

/// An upper bound for a whole opening (connect, greeting, EHLO, STARTTLS, handshake, EHLO, AUTH); only a safety
/// net for `Auto`'s parallel attempts, each of which is bounded by the core's deadlines anyway.
fn opening_bound(shared: &Shared) -> Duration {
    let o = &shared.options;
    let t = &o.session.timeouts;
    // One connect timeout per address, and one more for a SOCKS5 negotiation.
    let hops = shared.addrs.len().max(1) + usize::from(o.socks5.is_some());
    let connect = o.connect_timeout.saturating_mul(hops as u32);
    let auth = t
        .auth
        .saturating_mul(u32::from(o.session.max_auth_rounds) + 1);
    [
        t.greeting,
        t.ehlo,
        t.ehlo,
        t.ehlo,
        t.starttls,
        t.tls_handshake,
        auth,
        Duration::from_secs(5),
    ]
    .into_iter()
    .fold(connect, add)
}

impl Connection {
    /// Resolves the host, connects (to each address in turn), and opens the session: greeting, EHLO, TLS as the
    /// [`TlsMode`] says, AUTH when credentials are set. Returns when the server is ready for a message.
    pub fn connect(options: &ConnectOptions) -> Result<Self, Error> {
        options.validate()?;
        let (tls_config, server_name) = if options.tls == TlsMode::None {
            (None, None)
        } else {
            (
                Some(tls::build_client_config(&options.tls_options)?),
                Some(tls::server_name(&options.host, &options.tls_options)?),
            )
        };
        let addrs = resolve(options)?;
        let shared = Arc::new(Shared {
            options: options.clone(),
            addrs,
            tls_config,
            server_name,
        });
        let (session, tls_reason) = open(&shared)?;
        Ok(Self {
            session,
            shared,
            last_used: Instant::now(),
            tls_reason,
        })
    }

    /// The options this connection was opened with.
    pub fn options(&self) -> &ConnectOptions {
        &self.shared.options
    }

    /// What this connection is connected to: an address, a Unix socket, or a server through a SOCKS5 proxy.
    pub fn peer_addr(&self) -> &Peer {
        &self.session.peer
    }

    /// The TLS in use.
    pub fn tls(&self) -> TlsUsed {
        self.session.tls_used()
    }

    /// Why this TLS mode was chosen (forced, or `Auto`'s reasoning), as a sentence.
    pub fn tls_reason(&self) -> &str {
        &self.tls_reason
    }

    /// The server's capabilities from the last EHLO/LHLO.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.session.client.capabilities()
    }

    /// Whether AUTH succeeded.
    pub fn is_authenticated(&self) -> bool {
        self.session.client.is_authenticated()
    }

    /// False once the session has ended (QUIT, `421`, lost connection, deadline).
    pub fn is_open(&self) -> bool {
        self.session.closed.is_none()
    }

    /// Closes this session (if still open) and opens a new one with the same options and addresses.
    pub fn reconnect(&mut self) -> Result<(), Error> {
        self.session.stream.close();
        let (session, reason) = open(&self.shared)?;
        self.session = session;
        self.tls_reason = reason;
        self.last_used = Instant::now();
        Ok(())
    }

    /// Sends `NOOP` and returns the reply (RFC 5321 §4.1.1.9), e.g. to check the connection is alive.
    pub fn noop(&mut self) -> Result<Reply, Error> {
        let s = &mut self.session;
        s.settle();
        if s.closed.is_some() {
            return Err(s.closed_error());
        }
        s.client.noop().map_err(|e| usage(e, Stage::Noop))?;
        loop {
            while let Some(event) = s.poll() {
                match event {
                    Event::NoopReply { reply } => {
                        self.last_used = Instant::now();
                        return Ok(reply);
                    }
                    Event::Closed { .. } => return Err(s.closed_error()),
                    _ => {}
                }
            }
            if !s.wait(None) {
                return Err(Error::new(ErrorKind::UnexpectedReply, Stage::Noop));
            }
        }
    }

    /// Makes sure the session can take a transaction: reads outstanding replies, checks with NOOP after idling,
    /// reconnects a dead connection when allowed.
    fn prepare(&mut self) -> Result<(), Error> {
        self.session.settle();
        self.session.check_idle();
        let reconnect = self.shared.options.reconnect;
        if self.session.closed.is_some() {
            if !reconnect {
                return Err(self.session.closed_error());
            }
            self.session
                .transcript
                .note("the connection is closed: reconnecting before the next message");
            return self.reconnect();
        }
        let idle = self.last_used.elapsed();
        if self
            .shared
            .options
            .noop_after_idle
            .is_some_and(|limit| idle >= limit)
        {
            let healthy = matches!(self.noop(), Ok(reply) if reply.is_positive_completion());
            if !healthy {
                if !reconnect {
                    return Err(self.session.closed_error());
                }
                self.session.transcript.note(format!(
                    "NOOP after {} s idle failed: reconnecting",
                    idle.as_secs()
                ));
                return self.reconnect();
            }
        }
        Ok(())
    }

    /// Sends one message: the envelope, then the body streamed from `body` in blocks (never held whole).
    ///
    /// Returns the report when the server gave a verdict, or when the end of the message was sent and no verdict
    /// came (outcome [`Unknown`](crate::Outcome::Unknown), with the error). Returns `Err` when the message was
    /// certainly not accepted by anyone because the session failed before its end was sent, the envelope cannot be
    /// sent to this server ([`ErrorKind::Message`]), or reading `body` failed ([`ErrorKind::BodyRead`]; the
    /// connection is closed then, since a half-sent body cannot be taken back).
    ///
    /// One transaction: a streamed body cannot be replayed, so recipients the server asks to get the message
    /// separately (LIMITS RCPTMAX, "too many recipients") are only reported, with
    /// [`retry_separately`](crate::RecipientResult::retry_separately) set; [`send_bytes`](Self::send_bytes) and
    /// [`send_reopen`](Self::send_reopen) send the message again to them.
    pub fn send(&mut self, envelope: &Envelope, body: impl Read) -> Result<SendReport, Error> {
        self.send_with_progress(envelope, body, |_| {})
    }

    /// [`send`](Self::send) for a message in memory. Also declares its size (RFC 1870 `SIZE=`) and, unless the
    /// envelope already says, what it needs from the server ([`Envelope::declare_body`]: `BODY=8BITMIME` for 8-bit
    /// bytes, `SMTPUTF8` for UTF-8 headers), so a server that cannot take it refuses before anything is sent.
    ///
    /// Recipients the server asks to get the message in a separate transaction (LIMITS RCPTMAX, "too many
    /// recipients") are sent it again automatically, as [`send_reopen`](Self::send_reopen) does.
    pub fn send_bytes(&mut self, envelope: &Envelope, body: &[u8]) -> Result<SendReport, Error> {
        self.send_reopen(&declared(envelope, body), || Ok(body))
    }

    /// Sends messages in memory one after the other on this connection, each in its own transaction, without
    /// waiting for each verdict before the next message: when the server offers PIPELINING, the next message's
    /// MAIL, RCPT and DATA go out in the same write as the previous final dot (about one round trip per message
    /// instead of two), and with CHUNKING the messages stream without waiting at all, two in flight at most (see
    /// [`Client::send_mail`](smtp_proto::Client::send_mail)). Without PIPELINING this is [`send_bytes`](Self::send_bytes)
    /// in a loop.
    ///
    /// Returns one result per message, in order, each what [`send_bytes`](Self::send_bytes) returns for it: every
    /// message is reported on its own (a refused one does not affect the others), `Unknown` when the connection was
    /// lost after its end was sent, an error when it certainly was not accepted. Messages are prepared as
    /// `send_bytes` does (size and body type declared), recipients the server asks to get a message separately are
    /// sent it again afterwards, and a lost connection is reopened for the messages not sent yet when
    /// [`ConnectOptions::reconnect`] is on (otherwise they get the session's error).
    pub fn send_batch<'a>(
        &mut self,
        messages: impl IntoIterator<Item = (&'a Envelope, &'a [u8])>,
    ) -> Vec<Result<SendReport, Error>> {
        let mut results = Vec::new();
        self.send_batch_with(messages, |_, result| results.push(result));
        results
    }

    /// [`send_batch`](Self::send_batch) for batches of any size: messages are taken from `messages` only as they can
    /// go out (at most two are held), and each result is handed to `on_result(index, result)` as soon as it is
    /// final, in order, instead of being collected; memory stays bounded however many messages there are.
    pub fn send_batch_with<'a>(
        &mut self,
        messages: impl IntoIterator<Item = (&'a Envelope, &'a [u8])>,
        mut on_result: impl FnMut(usize, Result<SendReport, Error>),
    ) {
        let mut queue = Queue::new(messages.into_iter(), declared);
        let mut flights: Vec<Flight<'a>> = Vec::new();
        let mut order = InOrder::default();
        // A message whose report asks for a further transaction (`retry_separately`): no new message starts until
        // it is sent again, when nothing is in flight.
        let mut resend: Option<(Flight<'a>, Result<SendReport, Error>)> = None;
        // Each turn takes or starts a message, reports one, hands over body bytes, writes or reads: bounded by the
        // messages, their bytes and the core's deadlines.
        loop {
            let mut progressed = true;
            while progressed {
                progressed = false;
                if flights.is_empty()
                    && let Some((f, first)) = resend.take()
                {
                    let result = self.resend_rest(&f.envelope, f.body, first);
                    order.done(f.index, result, &mut on_result);
                    progressed = true;
                }
                // Start what the core takes now (behind the end of the previous message's data).
                while resend.is_none() && self.session.closed.is_none() {
                    let Some((index, envelope, body)) = queue.take() else {
                        break;
                    };
                    if flights.is_empty()
                        && let Err(e) = self.prepare()
                    {
                        order.done(index, Err(e), &mut on_result);
                        progressed = true;
                        continue;
                    }
                    let client = &mut self.session.client;
                    if !client.accepts_mail() {
                        queue.hold((index, envelope, body));
                        break;
                    }
                    match client.send_mail(envelope.clone()) {
                        Ok(id) => flights.push(Flight::new(index, id, envelope, body)),
                        Err(UsageError::MailMaxReached { .. })
                            if flights.is_empty() && self.shared.options.reconnect =>
                        {
                            // RFC 9422 MAILMAX: this connection carried all the transactions the server allows.
                            self.session.transcript.note(
                                "the server's LIMITS MAILMAX is reached: reconnecting for the next message",
                            );
                            self.session.client.quit();
                            self.settle_quit();
                            match self.reconnect() {
                                Ok(()) => queue.hold((index, envelope, body)),
                                Err(e) => order.done(index, Err(e), &mut on_result),
                            }
                        }
                        Err(UsageError::MailMaxReached { .. }) if !flights.is_empty() => {
                            queue.hold((index, envelope, body));
                            break;
                        }
                        Err(e) => order.done(index, Err(usage(e, Stage::Mail)), &mut on_result),
                    }
                    progressed = true;
                }
                // Events, without writing yet: a CHUNKING body may join the commands in the same write.
                let s = &mut self.session;
                while let Some(event) = s.poll_no_flush() {
                    progressed = true;
                    match event {
                        Event::ReadyForBody { id } => {
                            if let Some(f) = flights.iter_mut().find(|f| f.id == id) {
                                f.open = true;
                            }
                        }
                        Event::TransactionComplete(r) => {
                            let Some(at) = flights.iter().position(|f| f.id == r.id) else {
                                continue;
                            };
                            let f = flights.remove(at);
                            let session_error =
                                matches!(s.closed, Some(Some(_))).then(|| s.closed_error());
                            let result = SendReport::from_transaction(
                                *r,
                                s.tls_used(),
                                f.offset as u64,
                                session_error,
                            );
                            if asks_for_resend(&result) {
                                resend = Some((f, result));
                            } else {
                                order.done(f.index, result, &mut on_result);
                            }
                        }
                        _ => {}
                    }
                }
                // Body bytes for the message whose body is open (the newest one).
                if let Some(f) = feeding(&mut flights) {
                    progressed |= f.feed(&mut s.client);
                }
            }
            if self.session.closed.is_some() {
                // The core reported every transaction in progress when it closed.
                let error = self.session.closed_error();
                for f in flights.drain(..) {
                    order.done(f.index, Err(error.clone()), &mut on_result);
                }
                if resend.is_some() {
                    // Sent again on a new connection (`resend_rest` reconnects when allowed).
                    continue;
                }
                let Some((index, envelope, body)) = queue.take() else {
                    break;
                };
                if !self.shared.options.reconnect {
                    order.done(index, Err(error.clone()), &mut on_result);
                    queue.fail_all(&error, &mut order, &mut on_result);
                    break;
                }
                self.session
                    .transcript
                    .note("the connection is closed: reconnecting for the rest of the batch");
                match self.reconnect() {
                    Ok(()) => queue.hold((index, envelope, body)),
                    Err(e) => order.done(index, Err(e), &mut on_result),
                }
                continue;
            }
            if flights.is_empty() && !queue.holds() && resend.is_none() {
                // The source is exhausted (the start loop above pulls while nothing waits).
                break;
            }
            let wrote = self.session.flush_out();
            if self.session.client.is_closed() {
                // A write failed or a deadline passed: the next turn reads the reports.
                continue;
            }
            if wrote && feeding(&mut flights).is_some() {
                // The core's buffer was full and is written now: more body fits before any reply is due.
                continue;
            }
            if !self.session.wait(None) {
                // Nothing awaited, nothing to send, and the core takes no message: not expected to happen; end the
                // batch rather than spin.
                let error = Error::new(ErrorKind::UnexpectedReply, Stage::Mail);
                for f in flights.drain(..) {
                    order.done(f.index, Err(error.clone()), &mut on_result);
                }
                if let Some((f, first)) = resend.take() {
                    order.done(f.index, first, &mut on_result);
                }
                queue.fail_all(&error, &mut order, &mut on_result);
                break;
            }
        }
        self.last_used = Instant::now();
    }

    /// Sends a message again to the recipients the server asked to get it separately in `first` (as
    /// [`send_reopen`](Self::send_reopen) does), and returns the combined report.
    fn resend_rest(
        &mut self,
        envelope: &Envelope,
        body: &[u8],
        first: Result<SendReport, Error>,
    ) -> Result<SendReport, Error> {
        if !asks_for_resend(&first) {
            return first;
        }
        let mut plan = crate::resend::ResendPlan::new(envelope);
        plan.record(first)?;
        while let Some(next) = plan.next_envelope() {
            self.session.transcript.note(format!(
                "sending the message again to {} recipient(s) the server asked to get it separately",
                next.recipients.len()
            ));
            let result = self.send(&next, body);
            plan.record(result)?;
        }
        plan.into_report()
            .ok_or_else(|| Error::new(ErrorKind::ConnectionClosed, Stage::Mail))
    }

    /// [`send`](Self::send) for a body that can be read again: `open` is called once per transaction. When the
    /// server takes fewer recipients per transaction than the envelope has (LIMITS RCPTMAX, RFC 9422; or a `452` /
    /// `552 5.5.3` "too many recipients" to RCPT, RFC 5321 §4.5.3.1.10), the message is sent again to the
    /// recipients marked [`retry_separately`](crate::RecipientResult::retry_separately), in further transactions
    /// (on this connection, or on a new one when LIMITS MAILMAX is reached and
    /// [`ConnectOptions::reconnect`] is on), until each has a final result. At most one transaction per recipient,
    /// and it stops when a transaction makes no progress.
    ///
    /// Returns ONE report with every recipient's final result in the envelope's order and
    /// [`SendReport::transactions`]; an error only when the first transaction failed (later failures are in
    /// [`SendReport::error`], the recipients not reached keep `retry_separately`). See [`crate::resend`].
    pub fn send_reopen<R: Read>(
        &mut self,
        envelope: &Envelope,
        mut open: impl FnMut() -> io::Result<R>,
    ) -> Result<SendReport, Error> {
        let mut plan = crate::resend::ResendPlan::new(envelope);
        while let Some(next) = plan.next_envelope() {
            if plan.transactions() > 0 {
                self.session.transcript.note(format!(
                    "sending the message again to {} recipient(s) the server asked to get it separately",
                    next.recipients.len()
                ));
            }
            let result = match open() {
                Ok(body) => self.send(&next, body),
                Err(e) => Err(Error::io(ErrorKind::BodyRead, Stage::DataBlock, e)),
            };
            plan.record(result)?;
        }
        plan.into_report()
            .ok_or_else(|| Error::new(ErrorKind::ConnectionClosed, Stage::Mail))
    }

    /// [`send`](Self::send), calling `progress` with the number of body bytes taken so far after each block.
    pub fn send_with_progress(
        &mut self,
        envelope: &Envelope,
        body: impl Read,
        progress: impl FnMut(u64),
    ) -> Result<SendReport, Error> {
        self.send_inner(envelope, body, progress, false)
    }

    /// Sends one message like [`send`](Self::send) and ends the session: `QUIT` goes out in the same write as the
    /// end of the data when the server offers PIPELINING (see
    /// [`Client::quit_after_transaction`](smtp_proto::Client::quit_after_transaction)), which saves the QUIT round
    /// trip on a connection used for one message. The report is the message's, as with `send`; the connection is
    /// closed afterwards whatever happened.
    pub fn send_and_quit(self, envelope: &Envelope, body: impl Read) -> Result<SendReport, Error> {
        self.send_with_progress_and_quit(envelope, body, |_| {})
    }

    /// [`send_and_quit`](Self::send_and_quit) with a progress callback, as [`send_with_progress`](Self::send_with_progress).
    pub fn send_with_progress_and_quit(
        mut self,
        envelope: &Envelope,
        body: impl Read,
        progress: impl FnMut(u64),
    ) -> Result<SendReport, Error> {
        let result = self.send_inner(envelope, body, progress, true);
        let s = &mut self.session;
        if s.closed.is_none() {
            // Reads the `221` of the pipelined QUIT (or sends QUIT if the transaction never started).
            s.client.quit();
            self.settle_quit();
        }
        self.session.stream.close();
        result
    }

    /// [`send_and_quit`](Self::send_and_quit) for a message in memory, declaring its size and needs as
    /// [`send_bytes`](Self::send_bytes) does.
    pub fn send_bytes_and_quit(
        self,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<SendReport, Error> {
        self.send_and_quit(&declared(envelope, body), body)
    }

    fn send_inner(
        &mut self,
        envelope: &Envelope,
        body: impl Read,
        mut progress: impl FnMut(u64),
        quit_after: bool,
    ) -> Result<SendReport, Error> {
        self.prepare()?;
        match self.session.client.send_mail(envelope.clone()) {
            Ok(_) => {}
            Err(UsageError::MailMaxReached { limit }) if self.shared.options.reconnect => {
                // RFC 9422 MAILMAX: this connection has carried all the transactions the server allows.
                self.session
                    .transcript
                    .note(format!("the server allows {limit} messages per connection (LIMITS MAILMAX): reconnecting"));
                self.session.client.quit();
                self.settle_quit();
                self.reconnect()?;
                self.session
                    .client
                    .send_mail(envelope.clone())
                    .map_err(|e| usage(e, Stage::Mail))?;
            }
            Err(e) => return Err(usage(e, Stage::Mail)),
        }
        if quit_after {
            self.session.client.quit_after_transaction();
        }
        let s = &mut self.session;
        let mut body = BodyFeed {
            source: body,
            block: vec![0u8; FIRST_BODY_BLOCK],
            start: 0,
            end: 0,
            open: false,
            eof: false,
            finished: false,
            sent: 0,
        };
        let mut report = None;
        // With CHUNKING the body may be written at once: look at the events before transmitting, so that a small
        // message goes out as MAIL, RCPT and `BDAT n LAST` in one write (one round trip).
        let mut early = Vec::new();
        while let Some(event) = s.client.poll_event() {
            early.push(event);
        }
        let mut early = early.into_iter();
        // First pass: only those events, nothing written yet (`s.poll()` would write the commands alone).
        let mut first = true;
        loop {
            while let Some(event) = early.next().or_else(|| if first { None } else { s.poll() }) {
                match event {
                    Event::ReadyForBody { .. } => body.open = true,
                    Event::TransactionComplete(r) => report = Some(*r),
                    _ => {}
                }
            }
            if let Some(r) = report.take() {
                self.last_used = Instant::now();
                // A clean close (the 221 of a pipelined QUIT) is no session error.
                let session_error = matches!(s.closed, Some(Some(_))).then(|| s.closed_error());
                return SendReport::from_transaction(r, s.tls_used(), body.sent, session_error);
            }
            if s.closed.is_some() {
                return Err(s.closed_error());
            }
            let was_first = std::mem::replace(&mut first, false);
            match body.feed(&mut s.client, &mut progress) {
                // After the first pass, transmit before waiting.
                Ok(fed) if fed || was_first => continue,
                Ok(_) => {}
                Err(e) => {
                    // A half-sent body cannot be taken back: drop the connection without a final dot.
                    s.client.quit();
                    while s.poll().is_some() {}
                    s.stream.close();
                    return Err(Error::io(ErrorKind::BodyRead, Stage::DataBlock, e));
                }
            }
            if !s.wait(None) {
                return Err(Error::new(ErrorKind::UnexpectedReply, Stage::DataBlock));
            }
        }
    }

    /// Drives a QUIT already requested until the session closes.
    fn settle_quit(&mut self) {
        let s = &mut self.session;
        loop {
            while s.poll().is_some() {}
            if s.closed.is_some() || !s.wait(None) {
                return;
            }
        }
    }

    /// Ends the session politely with QUIT (RFC 5321 §4.1.1.10) and closes the connection.
    pub fn quit(mut self) -> Result<(), Error> {
        let s = &mut self.session;
        if s.closed.is_some() {
            return Ok(());
        }
        s.client.quit();
        loop {
            while let Some(event) = s.poll() {
                if let Event::Closed { error } = event {
                    return match error {
                        None => Ok(()),
                        Some(e) => Err(Error::from_proto(e)),
                    };
                }
            }
            if !s.wait(None) {
                s.stream.close();
                return Ok(());
            }
        }
    }
}

/// The envelope of a message in memory with what it declares: its size (RFC 1870) and, unless the caller said,
/// its body type ([`Envelope::declare_body`]).
fn declared(envelope: &Envelope, body: &[u8]) -> Envelope {
    let mut envelope = envelope.clone();
    if envelope.size.is_none() {
        envelope = envelope.with_size(body.len() as u64);
    }
    if envelope.params.body.is_none() {
        envelope = envelope.declare_body(body);
    }
    envelope
}

/// The body source and the block being handed to the core.
struct BodyFeed<R> {
    source: R,
    block: Vec<u8>,
    start: usize,
    end: usize,
    /// The core accepts body bytes (`ReadyForBody` seen, transaction not failed).
    open: bool,
    eof: bool,
    finished: bool,
    sent: u64,
}

impl<R: Read> BodyFeed<R> {
    /// Hands the core as much of the body as it takes now (and the end of it, at the end of the source). True when
    /// something was handed over (transmit before waiting), false when the core is full or not ready.
    fn feed(&mut self, client: &mut Client, progress: &mut impl FnMut(u64)) -> io::Result<bool> {
        let mut fed = false;
        while self.open && !self.finished {
            if self.start == self.end && !self.eof {
                if self.end == self.block.len() && self.block.len() < BODY_BLOCK {
                    // The last read filled the small first block: a large body.
                    self.block = vec![0u8; BODY_BLOCK];
                }
                match self.source.read(&mut self.block) {
                    Ok(0) => self.eof = true,
                    Ok(n) => (self.start, self.end) = (0, n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            if self.start < self.end {
                match client.write_body(&self.block[self.start..self.end]) {
                    Ok(0) => break,
                    Ok(n) => {
                        self.start += n;
                        self.sent += n as u64;
                        progress(self.sent);
                        fed = true;
                    }
                    // The transaction failed meanwhile; its report is on the way.
                    Err(_) => self.open = false,
                }
            } else {
                if client.finish_body().is_err() {
                    self.open = false;
                }
                self.finished = true;
                fed = true;
            }
        }
        Ok(fed)
    }
}

fn usage(e: UsageError, stage: Stage) -> Error {
    match e {
        UsageError::Closed => Error::new(ErrorKind::Closed, stage),
        e => Error::new(ErrorKind::Message(e), stage),
    }
}

/// Opens a session as the TLS mode says. Returns the session and why its TLS mode was chosen.
fn open(shared: &Arc<Shared>) -> Result<(Session, String), Error> {
    let o = &shared.options;
    // `Auto` on a Unix socket is STARTTLS required: no port rules there.
    let mode = o.effective_tls();
    let first = mode.first_policy(o.port);
    let mut notes = Transcript::new(o.transcript.clone(), false);
    let mut reason = mode.first_reason(o.port);
    notes.note(reason.clone());
    if mode.probe_applies(o.port) {
        return race(shared, &mut notes);
    }
    let failed = match Session::attempt(shared, first, false, None, None) {
        Ok(session) => return Ok((session, reason)),
        Err(f) => f,
    };
    if let Some((next, why)) = mode.auto_switch(o.port, first, &failed.error, failed.bytes_seen) {
        reason = format!("auto: {why}");
        notes.note(reason.clone());
        return Session::attempt(shared, next, false, None, None)
            .map(|s| (s, reason))
            .map_err(|f| f.error);
    }
    Err(diagnose(shared, first, failed, &mut notes))
}

/// A forced mode that got no greeting at all: probe whether the port speaks implicit TLS, to say so instead of
/// "timed out".
fn diagnose(
    shared: &Shared,
    policy: TlsPolicy,
    failed: AttemptError,
    notes: &mut Transcript,
) -> Error {
    let o = &shared.options;
    let silent_greeting = failed.error.stage() == Stage::Greeting
        && matches!(failed.error.kind(), ErrorKind::Timeout)
        && !failed.bytes_seen;
    let (true, Some(peer), false) = (silent_greeting, failed.peer, policy == TlsPolicy::Implicit)
    else {
        return failed.error;
    };
    let budget = Duration::from_secs(2)
        .min(o.connect_timeout)
        .min(o.session.timeouts.greeting);
    notes.note(format!(
        "no greeting: probing {peer} for implicit TLS (at most {} ms)",
        budget.as_millis()
    ));
    if tls::probe_implicit_tls(peer, &o.host, budget) == PeerSpeaks::TlsRecord {
        notes.note("the port answered a TLS ClientHello: it speaks implicit TLS");
        let kind = smtp_proto::ErrorKind::ModeMismatch(smtp_proto::Mismatch::ImplicitTlsExpected {
            port: o.port,
        });
        return Error::from_proto(smtp_proto::Error::new(kind, Stage::Greeting, None));
    }
    failed.error
}

struct Racer {
    policy: TlsPolicy,
    cancel: Arc<Cancel>,
    done: bool,
    bytes_seen: bool,
    error: Option<Error>,
}

fn spawn_attempt(
    shared: &Arc<Shared>,
    index: usize,
    policy: TlsPolicy,
    tx: &Sender<(usize, Msg)>,
) -> Racer {
    let cancel = Arc::new(Cancel::default());
    let (shared2, cancel2, tx2) = (Arc::clone(shared), Arc::clone(&cancel), tx.clone());
    let spawned = thread::Builder::new()
        .name(format!(
            "smtp-auto-{}",
            if policy == TlsPolicy::Implicit {
                "implicit"
            } else {
                "starttls"
            }
        ))
        .spawn(move || {
            let result = Session::attempt(
                &shared2,
                policy,
                true,
                Some((index, tx2.clone())),
                Some(cancel2),
            );
            let _ = tx2.send((index, Msg::Done(Box::new(result))));
        });
    let mut racer = Racer {
        policy,
        cancel,
        done: false,
        bytes_seen: false,
        error: None,
    };
    if let Err(e) = spawned {
        racer.done = true;
        racer.error = Some(Error::io(ErrorKind::Io, Stage::Connect, e));
    }
    racer
}

/// `Auto` on a STARTTLS port: start with STARTTLS; if no byte arrives within the probe delay, start an
/// implicit-TLS attempt too, and keep whichever completes a verified TLS handshake first.
fn race(shared: &Arc<Shared>, notes: &mut Transcript) -> Result<(Session, String), Error> {
    let o = &shared.options;
    let (tx, rx) = mpsc::channel();
    let mut racers = vec![spawn_attempt(shared, 0, TlsPolicy::StartTlsRequired, &tx)];
    let started = Instant::now();
    let probe_at = started + o.probe_delay;
    let bound = started + opening_bound(shared);
    let mut winner: Option<usize> = None;
    let mut reason = TlsMode::Auto.first_reason(o.port);
    let cancel_others = |racers: &[Racer], keep: usize| {
        for (j, r) in racers.iter().enumerate() {
            if j != keep && !r.done {
                r.cancel.cancel();
            }
        }
    };
    loop {
        if racers.iter().all(|r| r.done) && winner.is_none() {
            return Err(best_error(&mut racers));
        }
        let now = Instant::now();
        if now >= bound {
            cancel_others(&racers, usize::MAX);
            return Err(Error::new(ErrorKind::Timeout, Stage::Greeting));
        }
        let probing = racers.len() == 1 && !racers[0].bytes_seen && !racers[0].done;
        let wake = if probing { probe_at.min(bound) } else { bound };
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok((i, Msg::GotBytes)) => racers[i].bytes_seen = true,
            Ok((i, Msg::Verified)) => {
                if winner.is_none() {
                    winner = Some(i);
                    if racers.len() > 1 {
                        cancel_others(&racers, i);
                        // Noted once the winner's own transcript has been delivered.
                        reason = format!(
                            "auto: {} completed a verified TLS handshake first; using it",
                            if racers[i].policy == TlsPolicy::Implicit {
                                "implicit TLS"
                            } else {
                                "STARTTLS"
                            }
                        );
                    }
                }
            }
            Ok((i, Msg::Done(result))) => {
                racers[i].done = true;
                match *result {
                    Ok(mut session) => {
                        if winner.is_none() || winner == Some(i) {
                            cancel_others(&racers, i);
                            session.adopt();
                            if racers.len() > 1 {
                                notes.note(reason.clone());
                            }
                            return Ok((session, reason));
                        }
                    }
                    Err(failed) => {
                        if winner == Some(i) {
                            return Err(failed.error);
                        }
                        if winner.is_some() {
                            continue;
                        }
                        racers[i].bytes_seen |= failed.bytes_seen;
                        let policy = racers[i].policy;
                        if i == 0
                            && racers.len() == 1
                            && let Some((next, why)) = TlsMode::Auto.auto_switch(
                                o.port,
                                policy,
                                &failed.error,
                                failed.bytes_seen,
                            )
                        {
                            reason = format!("auto: {why}");
                            notes.note(reason.clone());
                            racers[0].error = Some(failed.error);
                            racers.push(spawn_attempt(shared, 1, next, &tx));
                            continue;
                        }
                        // Decisive failures: the implicit attempt reached TLS (so the port speaks TLS) or the
                        // STARTTLS attempt heard the server (so it speaks plaintext first).
                        let decisive = (policy == TlsPolicy::Implicit
                            && matches!(failed.error.kind(), ErrorKind::Tls { .. }))
                            || (policy != TlsPolicy::Implicit && failed.bytes_seen);
                        if decisive {
                            cancel_others(&racers, i);
                            return Err(failed.error);
                        }
                        racers[i].error = Some(failed.error);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let probing = racers.len() == 1 && !racers[0].bytes_seen && !racers[0].done;
                if probing && Instant::now() >= probe_at {
                    reason = format!(
                        "auto: no greeting within {} ms on port {}: also trying implicit TLS in parallel",
                        o.probe_delay.as_millis(),
                        o.port
                    );
                    notes.note(reason.clone());
                    racers.push(spawn_attempt(shared, 1, TlsPolicy::Implicit, &tx));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(best_error(&mut racers));
            }
        }
    }
}

/// The most useful error when every attempt failed: the implicit attempt's if it got further than "this is not
/// TLS" or a timeout, else the STARTTLS attempt's.
fn best_error(racers: &mut [Racer]) -> Error {
    let implicit_informative = racers
        .get(1)
        .and_then(|r| r.error.as_ref())
        .is_some_and(|e| {
            !matches!(
                e.kind(),
                ErrorKind::ModeMismatch(_) | ErrorKind::Timeout | ErrorKind::ConnectionClosed
            )
        });
    let pick = if implicit_informative { 1 } else { 0 };
    racers
        .get_mut(pick)
        .and_then(|r| r.error.take())
        .or_else(|| racers.iter_mut().find_map(|r| r.error.take()))
        .unwrap_or_else(|| Error::new(ErrorKind::ConnectionClosed, Stage::Greeting))
}
