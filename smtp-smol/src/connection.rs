//! One SMTP/LMTP session over `async_io::Async` TCP or Unix sockets (directly or through a SOCKS5 proxy): connecting,
//! the drive loop, and sending.
//!
//! The drive loop follows the core's contract ([`smtp_proto::Client`]): drain `poll_transmit`, then `poll_event`,
//! then wait for bytes or `poll_timeout()`, whichever comes first. Every wait — reading a reply, writing a command or
//! a body block, the TLS handshake, reading the body from its source — is raced against the core's deadline, so the
//! stage deadlines hold however the server (or the body source) behaves.

use std::fmt;
use std::io;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use futures_lite::io::AsyncRead;
use smtp_blocking::batch::{Flight, InOrder, Queue, asks_for_resend, feeding};
use smtp_blocking::{ConnectOptions, Error, ErrorKind, Peer, SendReport, TlsMode, TlsUsed};
use smtp_proto::diagnose::{self, PeerSpeaks};
use smtp_proto::{
    Capabilities, Client, Envelope, Event, Outcome, Reply, Stage, TlsPolicy, TransactionReport,
    UsageError,
};

use crate::io::{Io, Turn};
use crate::settings::Settings;
use crate::tls::{self, Handshake, Observed, Stream};
use crate::transcript::Transcript;

/// Body bytes read from an [`AsyncRead`] source at a time.
const BODY_CHUNK: usize = 64 * 1024;

/// The first read from the source uses a smaller buffer (zeroing 64 KiB per message costs more than a small message's
/// whole body); a read that fills it switches to [`BODY_CHUNK`].
const FIRST_BODY_CHUNK: usize = 8 * 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What a drive loop is trying to reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    Ready,
    Transaction,
    /// A transaction with QUIT pipelined behind the end of its data: ends when the session closed.
    LastTransaction,
    Noop,
    Closed,
}

/// What happened while driving.
#[derive(Debug, Default)]
struct Progress {
    ready: bool,
    report: Option<TransactionReport>,
    noop: Option<Reply>,
    closed: bool,
    usage: Option<smtp_proto::UsageError>,
    body_error: Option<io::Error>,
    /// The OAuth token provider failed after a refused token (the session is being ended with QUIT).
    token_error: Option<Error>,
}

/// The body of the transaction being sent: a source and a buffer of bytes read but not yet taken by the core.
struct Body<'a, R: ?Sized> {
    source: &'a mut R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    /// Bytes read from the source so far.
    read: u64,
    progress: Option<&'a mut (dyn FnMut(u64) + Send)>,
}

/// The envelope of a message in memory with its size declared (RFC 1870), as [`Connection::send_bytes`] does.
fn declared(envelope: &Envelope, body: &[u8]) -> Envelope {
    let mut envelope = envelope.clone();
    if envelope.size.is_none() {
        envelope = envelope.with_size(body.len() as u64);
    }
    envelope
}

/// The result of one send attempt, with what a pool needs to decide on a retry.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) result: Result<SendReport, Error>,
    /// The message certainly did not reach the server's verdict (the core's `NotSent`).
    pub(crate) not_sent: bool,
}

/// An open SMTP or LMTP session, ready for transactions.
///
/// Obtained from [`Connection::connect`] (or checked out of a [`crate::Pool`]). Methods take `&mut self`: one
/// transaction at a time, any number of them in a row (`RSET` after a failed one, as the core decides).
///
/// **Cancellation.** Every future is cancel-safe in the only sense that matters for mail: dropping it mid-way marks
/// the connection *poisoned* unless the session is provably between transactions. A poisoned connection refuses
/// every later call with [`ErrorKind::Closed`], a pool discards it, and so a half-sent message can never be followed
/// by another command on the same connection.
pub struct Connection {
    id: u64,
    io: Io,
    client: Client,
    settings: Arc<Settings>,
    peer: Peer,
    tls: TlsUsed,
    tls_details: Option<String>,
    capabilities: Option<Capabilities>,
    /// Managed by a pool: the pool does the NOOP check and never hands out a closed connection.
    pooled: bool,
    /// Why the session ended, once it has.
    closed: Option<Error>,
    /// The last I/O error, kept as the cause of the core's error.
    io_error: Option<Arc<io::Error>>,
    /// Set when any byte arrived: Auto mode's probe watches it.
    greeted: Option<Arc<AtomicBool>>,
    /// Bytes read from the server since connecting (a greeting timeout with none is "silence").
    bytes_seen: bool,
    transcript: Transcript,
    /// Which TLS mode was chosen and why (for `Auto`, the decision).
    tls_reason: String,
    messages: u64,
    last_used: Instant,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("tls", &self.tls)
            .field("poisoned", &self.is_poisoned())
            .field("closed", &self.closed.is_some())
            .field("messages", &self.messages)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to the server and opens the session: greeting, EHLO, TLS as [`ConnectOptions::tls`] says (including
    /// [`TlsMode::Auto`]), AUTH when credentials are set. Returns when the session is ready for a transaction.
    pub async fn connect(options: &ConnectOptions) -> Result<Self, Error> {
        let settings = Settings::new(options.clone())?;
        Self::open(settings).await
    }

    /// Opens a session with resolved settings (shared by a pool).
    pub(crate) async fn open(settings: Arc<Settings>) -> Result<Self, Error> {
        // `Auto` on a Unix socket is STARTTLS required: no port rules there.
        let mode = settings.options.effective_tls();
        if mode == TlsMode::Auto {
            return crate::auto::open(settings).await;
        }
        let policy = mode.first_policy(settings.options.port);
        let reason = mode.first_reason(settings.options.port);
        let mut transcript = Transcript::new(settings.options.transcript.clone(), false);
        transcript.note(reason.clone());
        let mut conn = Self::open_with(&settings, policy, None, transcript).await?;
        conn.tls_reason = reason;
        Ok(conn)
    }

    /// One attempt with one TLS policy. `greeted` is set when the server sends its first byte (Auto's probe).
    pub(crate) async fn open_with(
        settings: &Arc<Settings>,
        policy: TlsPolicy,
        greeted: Option<Arc<AtomicBool>>,
        mut transcript: Transcript,
    ) -> Result<Self, Error> {
        let (socket, peer) = crate::transport::connect(settings, &mut transcript).await?;
        let mut config = settings
            .options
            .connect_config(policy, transcript.wanted())?;
        if config.sasl_random.is_none() {
            // SCRAM nonces: fresh per connection (the core reads no randomness itself).
            config.sasl_random = smtp_blocking::tls::random_bytes();
        }
        let now = Instant::now();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        transcript.set_id(id);
        transcript.note(format!("connected to {peer}"));
        let mut conn = Self {
            id,
            io: Io::new(Stream::Plain(Observed::new(socket))),
            client: Client::new(config, now),
            settings: Arc::clone(settings),
            peer,
            tls: TlsUsed::None,
            tls_details: None,
            capabilities: None,
            pooled: false,
            closed: None,
            io_error: None,
            greeted,
            bytes_seen: false,
            transcript,
            tls_reason: String::new(),
            messages: 0,
            last_used: now,
        };
        let progress = conn
            .drive::<futures_lite::io::Empty>(Goal::Ready, None, None)
            .await;
        conn.finish_op();
        if progress.ready && conn.closed.is_none() {
            conn.greeted = None;
            return Ok(conn);
        }
        if let Some(e) = progress.token_error {
            return Err(e);
        }
        let error = conn.session_error();
        Err(conn.diagnose_silence(error, policy).await)
    }

    /// With a forced STARTTLS or plaintext mode, a greeting that never came on a port other than 465 is diagnosed
    /// by sending a TLS ClientHello on a second connection: if TLS records come back, the port speaks implicit TLS
    /// and the error says so instead of "timed out".
    async fn diagnose_silence(&mut self, error: Error, policy: TlsPolicy) -> Error {
        let silent = matches!(error.kind(), ErrorKind::Timeout)
            && error.stage() == Stage::Greeting
            && !self.bytes_seen;
        if !silent || policy == TlsPolicy::Implicit || self.settings.options.tls == TlsMode::Auto {
            return error;
        }
        // Only a direct TCP connection can be probed on a second connection.
        let Some(addr) = self.peer.socket_addr() else {
            return error;
        };
        let probe = tls::probe_implicit_tls(addr, &self.settings);
        let speaks = self
            .io
            .race(
                probe,
                Some(Instant::now() + self.settings.options.probe_delay),
            )
            .await;
        if speaks == Some(PeerSpeaks::TlsRecord) {
            self.transcript
                .note("the server answered a TLS ClientHello: this port speaks implicit TLS");
            let mismatch = smtp_proto::Error::new(
                smtp_proto::ErrorKind::ModeMismatch(smtp_proto::Mismatch::ServerSpeaksTls),
                Stage::Greeting,
                None,
            );
            return Error::from_proto(mismatch);
        }
        error
    }

    /// Sends one message, streaming the body from `body` with back-pressure: one 64 KiB read buffer and the core's
    /// [`max_buffered_body`](smtp_proto::Config::max_buffered_body) are all that is held in memory, whatever the
    /// message size, and the source is read only as fast as the server takes the bytes. `body` may be a reader or
    /// `&mut` one (an `&[u8]` works too; see [`send_bytes`](Self::send_bytes)).
    ///
    /// The body is the message as RFC 5322 text (headers, blank line, content); line endings are normalized and
    /// dots stuffed by the core (or BDAT used when the server offers CHUNKING).
    ///
    /// Returns the [`SendReport`] when the server gave a verdict (accepted, partly accepted, rejected: per recipient)
    /// or when the end of the data was sent and no verdict came ([`smtp_blocking::Outcome::Unknown`]: never counted
    /// as sent). Returns an error when the message was certainly not accepted: the connection is closed or poisoned
    /// ([`ErrorKind::Closed`]), the server cannot take this envelope ([`ErrorKind::Message`]; nothing was sent and
    /// the connection stays usable), reading the body failed ([`ErrorKind::BodyRead`]; the connection is closed
    /// without sending the end of data), or the session failed before the end of data was sent.
    ///
    /// Before reusing a connection idle for longer than [`ConnectOptions::noop_after_idle`], it is checked with
    /// `NOOP`; with [`ConnectOptions::reconnect`], a connection found closed at that point (or closed by an earlier
    /// error) is reopened first. Never reopened in the middle of a message: nothing is sent twice.
    ///
    /// One transaction: a streamed body cannot be replayed, so recipients the server asks to get the message
    /// separately (LIMITS RCPTMAX, "too many recipients") are only reported, with
    /// [`retry_separately`](smtp_blocking::RecipientResult::retry_separately) set;
    /// [`send_bytes`](Self::send_bytes) and [`send_reopen`](Self::send_reopen) send the message again to them.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        mut body: impl AsyncRead + Unpin,
    ) -> Result<SendReport, Error> {
        self.attempt_renewing(envelope, &mut body, None)
            .await
            .result
    }

    /// Sends one message whose body is in memory. See [`send`](Self::send).
    ///
    /// Also declares its size (RFC 1870 `SIZE=`) unless the envelope already does, and sends the message again to
    /// the recipients the server asked to get it separately (LIMITS RCPTMAX, "too many recipients"), as
    /// [`send_reopen`](Self::send_reopen) does: one merged report.
    pub async fn send_bytes(
        &mut self,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<SendReport, Error> {
        let mut envelope = envelope.clone();
        if envelope.size.is_none() {
            envelope = envelope.with_size(body.len() as u64);
        }
        self.send_reopen(&envelope, || Ok(body)).await
    }

    /// Like [`send`](Self::send), calling `progress` with the number of body bytes read from `body` so far, each
    /// time more were read (for a progress display of large messages; reads follow the server's pace).
    pub async fn send_with_progress(
        &mut self,
        envelope: &Envelope,
        mut body: impl AsyncRead + Unpin,
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<SendReport, Error> {
        self.attempt_renewing(envelope, &mut body, Some(&mut progress))
            .await
            .result
    }

    /// Sends one message like [`send`](Self::send) and ends the session: `QUIT` goes out in the same write as the
    /// end of the data when the server offers PIPELINING (see
    /// [`Client::quit_after_transaction`](smtp_proto::Client::quit_after_transaction)), which saves the QUIT round
    /// trip on a connection used for one message. The report is the message's, as with `send`; the connection is
    /// closed afterwards whatever happened.
    pub async fn send_and_quit(
        mut self,
        envelope: &Envelope,
        mut body: impl AsyncRead + Unpin,
    ) -> Result<SendReport, Error> {
        let result = self
            .attempt_with(envelope, &mut body, None, Goal::LastTransaction)
            .await
            .result;
        if self.closed.is_none() && !self.is_poisoned() {
            // The transaction never started (e.g. the envelope was refused before anything was sent).
            let _ = self.quit().await;
        }
        result
    }

    /// Sends messages in memory one after the other on this connection, each in its own transaction, without
    /// waiting for each verdict before the next message: when the server offers PIPELINING, the next message's
    /// MAIL, RCPT and DATA go out in the same write as the previous final dot (about one round trip per message
    /// instead of two), and with CHUNKING the messages stream without waiting at all, two in flight at most (see
    /// [`Client::send_mail`](smtp_proto::Client::send_mail)). Without PIPELINING this is
    /// [`send_bytes`](Self::send_bytes) in a loop.
    ///
    /// Returns one result per message, in order, each what [`send_bytes`](Self::send_bytes) returns for it: every
    /// message is reported on its own (a refused one does not affect the others), `Unknown` when the connection was
    /// lost after its end was sent, an error when it certainly was not accepted. Sizes are declared as `send_bytes`
    /// does, recipients the server asks to get a message separately are sent it again afterwards, and a lost
    /// connection is reopened for the messages not sent yet when [`ConnectOptions::reconnect`] is on (not for a
    /// pooled connection: the pool decides).
    ///
    /// Cancel-safe as every operation here: dropping the future mid-way poisons the connection.
    pub async fn send_batch<'a>(
        &mut self,
        messages: impl IntoIterator<Item = (&'a Envelope, &'a [u8])>,
    ) -> Vec<Result<SendReport, Error>> {
        let mut results = Vec::new();
        self.send_batch_with(messages, |_, result| results.push(result))
            .await;
        results
    }

    /// [`send_batch`](Self::send_batch) for batches of any size: messages are taken from `messages` only as they can
    /// go out (at most two are held), and each result is handed to `on_result(index, result)` as soon as it is
    /// final, in order, instead of being collected; memory stays bounded however many messages there are.
    pub async fn send_batch_with<'a>(
        &mut self,
        messages: impl IntoIterator<Item = (&'a Envelope, &'a [u8])>,
        mut on_result: impl FnMut(usize, Result<SendReport, Error>),
    ) {
        let mut queue = Queue::new(messages.into_iter(), declared);
        let mut order = InOrder::default();
        if let Err(e) = self.check_before_send().await {
            queue.fail_all(&e, &mut order, &mut on_result);
            return;
        }
        let mut flights: Vec<Flight<'a>> = Vec::new();
        // A message whose report asks for a further transaction (`retry_separately`): no new message starts until
        // it is sent again, when nothing is in flight.
        let mut resend: Option<(Flight<'a>, Result<SendReport, Error>)> = None;
        // Each turn takes or starts a message, reports one, hands over body bytes, or writes/reads: bounded by the
        // messages, their bytes and the core's deadlines.
        loop {
            self.transmit();
            let mut again = false;
            if flights.is_empty()
                && self.client.is_idle()
                && self.io.is_drained()
                && let Some((f, first)) = resend.take()
            {
                let result = self.resend_rest(&f.envelope, f.body, first).await;
                order.done(f.index, result, &mut on_result);
                again = true;
            }
            // 1. Start what the core takes now (behind the end of the previous message's data).
            while resend.is_none() && self.closed.is_none() {
                let Some((index, envelope, body)) = queue.take() else {
                    break;
                };
                if !self.client.accepts_mail() {
                    queue.hold((index, envelope, body));
                    break;
                }
                match self.client.send_mail(envelope.clone()) {
                    Ok(id) => flights.push(Flight::new(index, id, envelope, body)),
                    Err(UsageError::MailMaxReached { .. }) if !flights.is_empty() => {
                        queue.hold((index, envelope, body));
                        break;
                    }
                    Err(UsageError::MailMaxReached { limit })
                        if self.settings.options.reconnect && !self.pooled =>
                    {
                        self.transcript.note(format!(
                            "the server allows {limit} messages per connection (LIMITS MAILMAX): reconnecting"
                        ));
                        match self.renew().await {
                            Ok(()) => queue.hold((index, envelope, body)),
                            Err(e) => order.done(index, Err(e), &mut on_result),
                        }
                    }
                    Err(u) => order.done(
                        index,
                        Err(Error::new(ErrorKind::Message(u), Stage::Mail)),
                        &mut on_result,
                    ),
                }
                again = true;
            }
            // 2. Every event.
            while let Some(event) = self.client.poll_event() {
                again = true;
                match event {
                    Event::StartTls => {
                        self.log_transcript();
                        self.handshake().await;
                    }
                    Event::ReadyForBody { id } => {
                        if let Some(f) = flights.iter_mut().find(|f| f.id == id) {
                            f.open = true;
                        }
                    }
                    Event::TransactionComplete(report) => {
                        let Some(at) = flights.iter().position(|f| f.id == report.id) else {
                            continue;
                        };
                        let f = flights.remove(at);
                        self.messages += 1;
                        // The core's report carries the session error when the message was interrupted.
                        let result =
                            SendReport::from_transaction(*report, self.tls, f.offset as u64, None);
                        if asks_for_resend(&result) {
                            resend = Some((f, result));
                        } else {
                            order.done(f.index, result, &mut on_result);
                        }
                    }
                    Event::Closed { error } => self.note_closed(error),
                    _ => {}
                }
            }
            self.log_transcript();
            // 3. Body bytes for the message whose body is open (the newest), while the write queue is small.
            if self.io.queued() < crate::io::COALESCE
                && let Some(f) = feeding(&mut flights)
            {
                again |= f.feed(&mut self.client);
            }
            if again {
                continue;
            }
            if self.closed.is_some() {
                // The core reported every transaction in progress when it closed.
                let error = self.session_error();
                for f in flights.drain(..) {
                    order.done(f.index, Err(error.clone()), &mut on_result);
                }
                let reopen = self.settings.options.reconnect && !self.pooled;
                if let Some((f, first)) = resend.take() {
                    // Sent again on a new connection when allowed (`resend_rest` goes through
                    // `check_before_send`), otherwise the first report stands with the error recorded.
                    let result = self.resend_rest(&f.envelope, f.body, first).await;
                    order.done(f.index, result, &mut on_result);
                    continue;
                }
                let Some((index, envelope, body)) = queue.take() else {
                    break;
                };
                if !reopen {
                    order.done(index, Err(error.clone()), &mut on_result);
                    queue.fail_all(&error, &mut order, &mut on_result);
                    break;
                }
                self.transcript
                    .note("the connection is closed: reconnecting for the rest of the batch");
                match self.reconnect().await {
                    Ok(()) => queue.hold((index, envelope, body)),
                    Err(e) => order.done(index, Err(e), &mut on_result),
                }
                continue;
            }
            if flights.is_empty()
                && !queue.holds()
                && resend.is_none()
                && self.client.is_idle()
                && self.io.is_drained()
            {
                // The source is exhausted (the start loop above pulls while nothing waits).
                break;
            }
            // 4. Wait for bytes, for the write queue to drain (when a body waits for room), or for the deadline.
            let deadline = self.client.poll_timeout();
            // Until written: a body waiting for room, or a message to send again once the connection is idle.
            let until_written = resend.is_some() || feeding(&mut flights).is_some();
            let turn = self.io.turn(deadline, until_written).await;
            let now = Instant::now();
            match turn {
                Ok(Turn::Read(n)) => self.client.receive(now, self.io.received(n)),
                Ok(Turn::Eof) => self.client.receive_eof(now),
                Ok(Turn::Written) => {}
                Ok(Turn::Deadline) => self.client.handle_timeout(now),
                Err(e) => {
                    self.io_error = Some(Arc::new(e));
                    self.client.receive_eof(now);
                }
            }
        }
        self.finish_op();
        self.last_used = Instant::now();
    }

    pub(crate) async fn attempt<'a, R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        envelope: &Envelope,
        body: &'a mut R,
        progress: Option<&'a mut (dyn FnMut(u64) + Send)>,
    ) -> Attempt {
        self.attempt_with(envelope, body, progress, Goal::Transaction)
            .await
    }

    async fn attempt_with<'a, R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        envelope: &Envelope,
        body: &'a mut R,
        progress: Option<&'a mut (dyn FnMut(u64) + Send)>,
        goal: Goal,
    ) -> Attempt {
        let failed = |e| Attempt {
            result: Err(e),
            not_sent: true,
        };
        if let Err(e) = self.check_before_send().await {
            return failed(e);
        }
        let mut source = Body {
            source: body,
            buf: vec![0; FIRST_BODY_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            read: 0,
            progress,
        };
        let progress = self
            .drive(goal, Some(&mut source), Some(envelope.clone()))
            .await;
        let body_read = source.read;
        self.finish_op();
        self.last_used = Instant::now();
        if let Some(usage) = progress.usage {
            return failed(Error::new(ErrorKind::Message(usage), Stage::Mail));
        }
        if let Some(e) = progress.body_error {
            return Attempt {
                result: Err(Error::new(ErrorKind::BodyRead, Stage::DataBlock).with_cause(e)),
                not_sent: true,
            };
        }
        self.messages += 1;
        let session_error = self
            .closed
            .clone()
            .filter(|e| !matches!(e.kind(), ErrorKind::Closed));
        match progress.report {
            Some(report) => {
                let not_sent = report.outcome == Outcome::NotSent;
                Attempt {
                    result: SendReport::from_transaction(
                        report,
                        self.tls,
                        body_read,
                        session_error,
                    ),
                    not_sent,
                }
            }
            None => Attempt {
                result: Err(self.session_error()),
                not_sent: true,
            },
        }
    }

    /// Refuses a closed or poisoned connection; checks an idle one with NOOP; reconnects when allowed.
    async fn check_before_send(&mut self) -> Result<(), Error> {
        if self.is_poisoned() {
            return Err(poisoned());
        }
        let idle_for = self.last_used.elapsed();
        if self.closed.is_none()
            && !self.pooled
            && self.messages > 0
            && self
                .settings
                .options
                .noop_after_idle
                .is_some_and(|d| idle_for >= d)
            && let Err(e) = self.noop().await
        {
            self.transcript
                .note(format!("the idle connection failed its NOOP check: {e}"));
        }
        if let Some(e) = &self.closed {
            if !self.settings.options.reconnect || self.pooled {
                return Err(Error::new(ErrorKind::Closed, e.stage()).with_context(e.to_string()));
            }
            self.transcript
                .note("the connection is closed: reconnecting before the next message");
            self.reconnect().await?;
        }
        Ok(())
    }

    /// Sends `NOOP` and waits for the reply: checks that an idle connection still works.
    pub async fn noop(&mut self) -> Result<Reply, Error> {
        self.check_open()?;
        if let Err(u) = self.client.noop() {
            return Err(Error::new(ErrorKind::Message(u), Stage::Noop));
        }
        let progress = self
            .drive::<futures_lite::io::Empty>(Goal::Noop, None, None)
            .await;
        self.finish_op();
        match progress.noop {
            Some(reply) if reply.code().is_positive_completion() => {
                self.last_used = Instant::now();
                Ok(reply)
            }
            Some(reply) => {
                Err(Error::new(ErrorKind::CommandRejected, Stage::Noop).with_reply(Some(reply)))
            }
            None => Err(self.session_error()),
        }
    }

    /// Ends the session politely (`QUIT`, then the reply within the QUIT deadline) and closes the connection. A
    /// poisoned or already closed connection is just closed.
    pub async fn quit(mut self) -> Result<(), Error> {
        if self.is_poisoned() || self.closed.is_some() {
            return Ok(());
        }
        self.client.quit();
        let progress = self
            .drive::<futures_lite::io::Empty>(Goal::Closed, None, None)
            .await;
        self.finish_op();
        match &self.closed {
            Some(e) if progress.closed && !matches!(e.kind(), ErrorKind::Closed) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// True when a transaction can start now: open, between transactions, nothing outstanding.
    pub fn is_usable(&self) -> bool {
        self.closed.is_none() && self.client.is_idle() && self.io.is_drained()
    }

    /// True when an operation was interrupted (its future dropped) while the session was not provably between
    /// transactions: a reply is awaited, a transaction is open, or bytes are half-written. Such a connection refuses
    /// every further call and is never reused.
    ///
    /// Nothing is tracked for this: the core's state and the write queue *are* the evidence. After every completed
    /// operation the session is idle (or closed), so only an interrupted one can leave it otherwise.
    pub fn is_poisoned(&self) -> bool {
        self.closed.is_none() && !(self.client.is_idle() && self.io.is_drained())
    }

    /// The server's capabilities from the last EHLO/LHLO.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// How the session is protected.
    pub fn tls(&self) -> TlsUsed {
        self.tls
    }

    /// Which TLS mode was used and why: for [`TlsMode::Auto`], the port rule or the switch that decided it.
    pub fn tls_reason(&self) -> &str {
        &self.tls_reason
    }

    pub(crate) fn set_tls_reason(&mut self, reason: impl Into<String>) {
        self.tls_reason = reason.into();
    }

    /// The options this connection was opened with.
    pub fn options(&self) -> &ConnectOptions {
        &self.settings.options
    }

    /// Closes this session (without QUIT if it is in the middle of something) and opens a new one with the same
    /// options.
    pub async fn reconnect(&mut self) -> Result<(), Error> {
        let fresh = Self::open(Arc::clone(&self.settings)).await?;
        let (messages, pooled) = (self.messages, self.pooled);
        *self = fresh;
        self.messages = messages;
        self.pooled = pooled;
        Ok(())
    }

    /// Ends this session with QUIT and opens a new one with the same options: the server's LIMITS MAILMAX
    /// (RFC 9422 §4.1) was reached on this one.
    pub(crate) async fn renew(&mut self) -> Result<(), Error> {
        if self.closed.is_none() && !self.is_poisoned() {
            self.client.quit();
            let _ = self
                .drive::<futures_lite::io::Empty>(Goal::Closed, None, None)
                .await;
            self.finish_op();
        }
        self.reconnect().await
    }

    /// Whether AUTH succeeded.
    pub fn is_authenticated(&self) -> bool {
        self.client.is_authenticated()
    }

    /// True until the session ended (an error, QUIT, or a closed connection); a closed connection is reopened by
    /// the next send when [`ConnectOptions::reconnect`] is on.
    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }

    /// The negotiated TLS version and cipher suite, when TLS is active.
    pub fn tls_details(&self) -> Option<&str> {
        self.tls_details.as_deref()
    }

    /// What this connection is connected to: an address, a Unix socket, or a server through a SOCKS5 proxy.
    pub fn peer_addr(&self) -> &Peer {
        &self.peer
    }

    /// Transactions attempted on this connection.
    pub fn messages_sent(&self) -> u64 {
        self.messages
    }

    /// When the last operation on this connection ended.
    pub fn last_used(&self) -> Instant {
        self.last_used
    }

    /// The session error that closed this connection, if it is closed.
    pub fn close_reason(&self) -> Option<&Error> {
        self.closed.as_ref()
    }

    // ----- internals -----

    pub(crate) fn transcript_mut(&mut self) -> &mut Transcript {
        &mut self.transcript
    }

    fn check_open(&self) -> Result<(), Error> {
        if let Some(e) = &self.closed {
            return Err(Error::new(ErrorKind::Closed, e.stage()).with_context(e.to_string()));
        }
        if self.is_poisoned() {
            return Err(poisoned());
        }
        Ok(())
    }

    pub(crate) fn set_pooled(&mut self) {
        self.pooled = true;
    }

    pub(crate) fn is_pooled(&self) -> bool {
        self.pooled
    }

    /// Called when an operation's drive loop ends normally.
    fn finish_op(&mut self) {
        if self.closed.is_some() {
            // Drop the socket now: nothing more may be read or written.
            self.io.stream = Stream::Gone;
        }
    }

    /// The error to return when the session ended without the expected result.
    fn session_error(&self) -> Error {
        self.closed
            .clone()
            .unwrap_or_else(|| Error::new(ErrorKind::Closed, Stage::Idle))
    }

    fn with_cause(&self, e: Error) -> Error {
        match &self.io_error {
            Some(io) if matches!(e.kind(), ErrorKind::ConnectionClosed | ErrorKind::Timeout) => e
                .with_shared_cause(Some(
                    Arc::clone(io) as Arc<dyn std::error::Error + Send + Sync>
                )),
            _ => e,
        }
    }

    /// Moves everything the core wants to send into the write queue.
    fn transmit(&mut self) {
        while let Some(bytes) = self.client.poll_transmit(Instant::now()) {
            self.io.queue(bytes);
        }
    }

    /// After a refused OAuth token (RFC 7628 §3.2.3: the session survives it): asks the provider for a fresh token
    /// and retries AUTH once; when the provider fails, ends the session with QUIT and keeps its error.
    fn refresh_token(&mut self, error: smtp_proto::Error, p: &mut Progress) {
        let details = match error.kind() {
            smtp_proto::ErrorKind::AuthFailed { details } => details.clone(),
            _ => None,
        };
        self.transcript.note(format!(
            "the server refused the OAuth token{}: asking the token provider for a fresh one",
            details
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
        let request = smtp_blocking::oauth::TokenRequest::Refresh { details };
        let fresh = match &self.settings.options.oauth {
            Some(source) => source.credentials(&request),
            None => Err(Error::from_proto(error)),
        };
        let result = fresh.and_then(|credentials| {
            self.client
                .retry_auth(credentials, Instant::now())
                .map_err(|u| Error::new(ErrorKind::Message(u), Stage::Auth))
        });
        if let Err(e) = result {
            p.token_error = Some(e);
            self.client.quit();
        }
    }

    fn log_transcript(&mut self) {
        while let Some(entry) = self.client.poll_transcript() {
            self.transcript.core(entry);
        }
    }

    /// The drive loop.
    async fn drive<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        goal: Goal,
        mut body: Option<&mut Body<'_, R>>,
        mut envelope: Option<Envelope>,
    ) -> Progress {
        let mut p = Progress::default();
        let mut body_open = false;
        loop {
            // 1. Everything to transmit goes to the write queue.
            self.transmit();
            // 2. Every event; handling one may issue commands.
            let mut again = false;
            while let Some(event) = self.client.poll_event() {
                again = true;
                match event {
                    Event::StartTls => {
                        self.log_transcript();
                        self.handshake().await;
                    }
                    Event::Ready {
                        capabilities,
                        tls,
                        authenticated,
                    } => {
                        let mut note = format!(
                            "ready: TLS {}",
                            if tls { self.tls.as_str() } else { "none" }
                        );
                        if authenticated {
                            note.push_str(", authenticated");
                        }
                        if !tls && self.client.config().tls == TlsPolicy::StartTlsOpportunistic {
                            note.push_str(
                                " (STARTTLS not available: continuing in plaintext, opportunistic mode)",
                            );
                        }
                        self.transcript.note(note);
                        self.capabilities = Some(capabilities);
                        p.ready = true;
                    }
                    Event::ReadyForBody { .. } => body_open = body.is_some(),
                    Event::TransactionComplete(report) => {
                        body_open = false;
                        p.report = Some(*report);
                    }
                    Event::NoopReply { reply } => p.noop = Some(reply),
                    Event::AuthRejected { error } => self.refresh_token(error, &mut p),
                    Event::Closed { error } => {
                        self.note_closed(error);
                        p.closed = true;
                    }
                    _ => {}
                }
            }
            self.log_transcript();
            if envelope.is_some() && self.client.is_idle() {
                let env = envelope.take().expect("checked");
                match self.client.send_mail(env) {
                    Ok(_) => {
                        if goal == Goal::LastTransaction {
                            self.client.quit_after_transaction();
                        }
                        again = true;
                    }
                    Err(u) => {
                        p.usage = Some(u);
                        return p;
                    }
                }
            }
            if again {
                continue;
            }
            let reached = p.closed
                || match goal {
                    Goal::Ready => p.ready,
                    Goal::Transaction => p.report.is_some() && self.client.is_idle(),
                    Goal::Noop => p.noop.is_some(),
                    Goal::LastTransaction | Goal::Closed => false,
                };
            // Leave only with nothing left to write, so an idle connection owes nothing.
            if reached && (self.io.is_drained() || p.closed) {
                return p;
            }
            // 3. Feed the body while the write queue is small (back-pressure: the socket sets the pace). Not only
            //    when it is empty: a small body joins the pipelined commands in one write (CHUNKING).
            if body_open
                && self.io.queued() < crate::io::COALESCE
                && let Some(b) = body.as_deref_mut()
            {
                match self.feed_body(b).await {
                    Ok(open) => body_open = open,
                    Err(e) => {
                        // Never send the end of data after a failed read: that would deliver a truncated message.
                        self.transcript
                            .note(format!("reading the message body failed: {e}; closing"));
                        p.body_error = Some(e);
                        self.client.quit();
                        body_open = false;
                    }
                }
                continue;
            }
            // 4. Wait for bytes, for the write queue to drain (when the body needs it), or for the deadline.
            let deadline = self.client.poll_timeout();
            let turn = self.io.turn(deadline, body_open || reached).await;
            let now = Instant::now();
            match turn {
                Ok(Turn::Read(n)) => {
                    self.bytes_seen = true;
                    if let Some(g) = &self.greeted {
                        g.store(true, Ordering::Relaxed);
                    }
                    self.client.receive(now, self.io.received(n));
                }
                Ok(Turn::Eof) => self.client.receive_eof(now),
                Ok(Turn::Written) => {}
                Ok(Turn::Deadline) => self.client.handle_timeout(now),
                Err(e) => {
                    // A reset or broken pipe: the core decides what it means at this stage (lost, or unknown).
                    self.io_error = Some(Arc::new(e));
                    self.client.receive_eof(now);
                }
            }
        }
    }

    /// Offers body bytes to the core until it pushes back or the body ends. Returns whether the body is still open.
    async fn feed_body<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        b: &mut Body<'_, R>,
    ) -> io::Result<bool> {
        loop {
            if b.start == b.end {
                if b.eof {
                    // An error here means the transaction already failed; its report follows.
                    let _ = self.client.finish_body();
                    return Ok(false);
                }
                if b.end == b.buf.len() && b.buf.len() < BODY_CHUNK {
                    // The last read filled the small first buffer: a large body.
                    b.buf = vec![0; BODY_CHUNK].into_boxed_slice();
                }
                let deadline = self.client.poll_timeout();
                match self
                    .io
                    .read_source(&mut *b.source, &mut b.buf, deadline)
                    .await
                {
                    None => {
                        self.client.handle_timeout(Instant::now());
                        return Ok(false);
                    }
                    Some(Ok(0)) => b.eof = true,
                    Some(Ok(n)) => {
                        b.start = 0;
                        b.end = n;
                        b.read += n as u64;
                        if let Some(p) = b.progress.as_mut() {
                            p(b.read);
                        }
                    }
                    Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Some(Err(e)) => return Err(e),
                }
                continue;
            }
            match self.client.write_body(&b.buf[b.start..b.end]) {
                Ok(0) => return Ok(true),
                Ok(n) => b.start += n,
                // The transaction failed meanwhile (its report follows) or the session closed.
                Err(_) => return Ok(false),
            }
        }
    }

    /// Does the TLS handshake the core asked for, on the same socket, within the handshake deadline.
    async fn handshake(&mut self) {
        let implicit = !self.client.is_tls() && self.client.config().tls == TlsPolicy::Implicit;
        let now = Instant::now();
        let Stream::Plain(socket) = mem::replace(&mut self.io.stream, Stream::Gone) else {
            self.client.tls_failed(
                now,
                &[],
                "a TLS handshake was requested on a connection that is already TLS",
            );
            return;
        };
        let Some(config) = self.settings.tls_config.clone() else {
            self.client.tls_failed(now, &[], "TLS is not configured");
            return;
        };
        let (handle, fut) = Handshake::start(socket, config, self.settings.server_name.clone());
        let deadline = self.client.poll_timeout();
        let result = self.io.race(fut, deadline).await;
        let now = Instant::now();
        match result {
            Some(Ok(stream)) => {
                let summary = tls::summary(&stream);
                let binding = tls::channel_binding(&stream);
                self.transcript.note(format!(
                    "TLS established ({}): {summary}",
                    if implicit { "implicit" } else { "STARTTLS" }
                ));
                self.io.stream = Stream::Tls(Box::new(stream));
                self.tls = if implicit {
                    TlsUsed::Implicit
                } else {
                    TlsUsed::StartTls
                };
                self.tls_details = Some(summary);
                if let Some(g) = &self.greeted {
                    g.store(true, Ordering::Relaxed);
                }
                let _ = self.client.tls_established_with_binding(now, binding);
            }
            Some(Err(e)) => {
                let details = tls::describe_failure(&e, &self.settings);
                let observed = e.observed;
                if !observed.is_empty() {
                    self.bytes_seen = true;
                    if let Some(g) = &self.greeted {
                        g.store(true, Ordering::Relaxed);
                    }
                }
                let tls_level = e.error.get_ref().is_some_and(|x| x.is::<rustls::Error>());
                self.io_error = Some(Arc::new(e.error));
                if !tls_level && observed.is_empty() {
                    // The connection closed or broke before the server said anything.
                    self.client.receive_eof(now);
                } else if !implicit
                    && !matches!(
                        diagnose::classify(&observed),
                        PeerSpeaks::TlsRecord | PeerSpeaks::Undecided | PeerSpeaks::Nothing
                    )
                {
                    // Plaintext after the 220 to STARTTLS: the core reports the response injection.
                    self.client.receive(now, &observed);
                } else {
                    self.client.tls_failed(now, &observed, &details);
                }
            }
            None => {
                let observed = handle.observed();
                if diagnose::classify(&observed) == PeerSpeaks::SmtpReply {
                    self.client
                        .tls_failed(now, &observed, "the server sent a plaintext reply");
                } else {
                    self.client.handle_timeout(now);
                }
            }
        }
    }

    fn note_closed(&mut self, error: Option<smtp_proto::Error>) {
        let e = match error {
            Some(e) => self.with_cause(Error::from_proto(e)),
            None => Error::new(ErrorKind::Closed, Stage::Quit),
        };
        if !matches!(e.kind(), ErrorKind::Closed) {
            self.transcript.note(format!("session closed: {e}"));
        }
        self.closed.get_or_insert(e);
    }
}

fn poisoned() -> Error {
    Error::new(ErrorKind::Closed, Stage::Idle).with_context(
        "an earlier operation on this connection was cancelled mid-way (its future was dropped); the connection \
         cannot be reused",
    )
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.is_poisoned() {
            self.transcript.note(
                "dropped in the middle of an operation: the connection is discarded, never reused",
            );
        }
    }
}
