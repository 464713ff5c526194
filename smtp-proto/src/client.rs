//! The state machine: the only place where session state changes.

use std::collections::VecDeque;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, STANDARD_NO_PAD as BASE64_NOPAD};
use bytes::Bytes;

use crate::auth::{self, Exchange, Mechanism, ScramSupport, StepError};
use crate::body::DotStuffer;
use crate::capability::{Capabilities, Extension};
use crate::command::Command;
use crate::config::{Config, Protocol, TlsPolicy};
use crate::diagnose::{self, Mismatch, PeerSpeaks};
use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind, Stage, UsageError};
use crate::event::{
    Direction, Event, Outcome, RecipientReport, TransactionId, TransactionReport, TranscriptEntry,
};
use crate::framer::ReplyFramer;
use crate::path::{BodyType, MailParameters, ReversePath};
use crate::reply::{Reply, ReplyCode};
use crate::scram::{Binding, Scram, ScramError};

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets; RFC 4954 §4: an AUTH initial response that would
/// exceed it is sent after an empty `334` instead.
const MAX_COMMAND_LINE: usize = 512;

/// What a reply in flight answers, in the order the commands were sent (RFC 2920 §3.1: replies come in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Greeting,
    Hello(Hello),
    StartTls,
    Auth,
    Mail,
    Rcpt(usize),
    Data,
    Bdat,
    /// The lone dot that ends a DATA the server should have refused (RFC 2920 §3.1).
    DataDiscard,
    /// The end of the data (dot or `BDAT ... LAST`): one reply, or one per accepted recipient in LMTP.
    Final,
    Rset,
    Noop,
    Quit,
}

impl Pending {
    fn stage(self) -> Stage {
        match self {
            Self::Greeting => Stage::Greeting,
            Self::Hello(_) => Stage::Ehlo,
            Self::StartTls => Stage::StartTls,
            Self::Auth => Stage::Auth,
            Self::Mail => Stage::Mail,
            Self::Rcpt(_) => Stage::Rcpt,
            Self::Data => Stage::DataInit,
            Self::Bdat => Stage::DataBlock,
            Self::DataDiscard | Self::Final => Stage::DataTermination,
            Self::Rset => Stage::Rset,
            Self::Noop => Stage::Noop,
            Self::Quit => Stage::Quit,
        }
    }

    fn in_transaction(self) -> bool {
        matches!(
            self,
            Self::Mail | Self::Rcpt(_) | Self::Data | Self::Bdat | Self::DataDiscard | Self::Final
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hello {
    Ehlo,
    Helo,
    Lhlo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the adapter's TLS handshake (`implicit`: at the start of the connection).
    Handshake {
        implicit: bool,
    },
    /// Greeting, EHLO, STARTTLS and AUTH: one command at a time.
    Opening,
    /// `Ready` was emitted: transactions, NOOP and QUIT are allowed.
    Ready,
    /// QUIT was sent (or the session is ending politely after a refused greeting).
    Quitting,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyMode {
    Data,
    Bdat { binary: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyState {
    /// DATA mode, waiting for `354`.
    Waiting,
    /// The application may write.
    Open,
    /// `finish_body` was called.
    Finished,
}

/// Bytes to write and replies awaited, kept apart from the rest so commands can borrow the config while encoding.
#[derive(Debug)]
struct Wire {
    out: Vec<u8>,
    pending: VecDeque<Pending>,
    transcript: Option<VecDeque<TranscriptEntry>>,
    /// The last moment of progress: a reply processed, bytes handed out, or a hand-off completed. The deadline of the
    /// stage in progress counts from here.
    anchor: Instant,
    /// How many of the last `pending` entries answer commands still in `out`, not yet handed out by `poll_transmit`:
    /// the server cannot have received them, so a reply to one of them is premature.
    unsent: usize,
}

impl Wire {
    fn send(&mut self, command: Command<'_>, pending: Option<Pending>) {
        let start = self.out.len();
        command.encode(&mut self.out);
        if let Some(p) = pending {
            self.pending.push_back(p);
            self.unsent += 1;
        }
        if let Some(t) = &mut self.transcript {
            let text = if command.is_secret() {
                match command {
                    Command::Auth {
                        mechanism,
                        initial_response: Some(_),
                    } => format!("AUTH {mechanism} <redacted>"),
                    Command::Auth { mechanism, .. } => format!("AUTH {mechanism}"),
                    _ => "<redacted>".to_owned(),
                }
            } else {
                printable(&self.out[start..])
            };
            t.push_back(TranscriptEntry {
                at: self.anchor,
                direction: Direction::Client,
                text,
            });
        }
    }

    fn note(&mut self, direction: Direction, at: Instant, text: impl FnOnce() -> String) {
        if let Some(t) = &mut self.transcript {
            t.push_back(TranscriptEntry {
                at,
                direction,
                text: text(),
            });
        }
    }
}

fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

#[derive(Debug)]
struct Transaction {
    id: TransactionId,
    envelope: Envelope,
    params: MailParameters,
    mode: BodyMode,
    mail_reply: Option<Reply>,
    rcpt_replies: Vec<Option<Reply>>,
    /// Per-recipient verdicts after the data (LMTP), indexed like the envelope.
    lmtp_replies: Vec<Option<Reply>>,
    final_reply: Option<Reply>,
    mail_sent: bool,
    /// RCPTs this transaction may send: all, or the server's RCPTMAX (RFC 9422), or fewer once the server said
    /// "too many recipients" (RFC 5321 §4.5.3.1.10). The others are reported for a further transaction.
    rcpt_limit: usize,
    rcpts_sent: usize,
    rcpts_answered: usize,
    accepted: usize,
    data_sent: bool,
    body: BodyState,
    stuffer: DotStuffer,
    /// BDAT staging: body bytes not yet framed into a chunk.
    chunk: Vec<u8>,
    body_bytes: u64,
    end_sent: bool,
    failure: Option<(Stage, Option<Reply>)>,
    /// Replies still owed to this transaction.
    in_flight: usize,
    finals_received: usize,
}

impl Transaction {
    fn accepted_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.rcpt_replies
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.as_ref()
                    .is_some_and(|r| r.code().is_positive_completion())
            })
            .map(|(i, _)| i)
    }

    fn body_open(&self) -> bool {
        self.failure.is_none() && self.body == BodyState::Open
    }

    fn fail(&mut self, stage: Stage, reply: Option<Reply>) {
        if self.failure.is_none() {
            self.failure = Some((stage, reply));
        }
    }

    /// Builds the report. `interrupted` is the session error when the transaction did not reach its end.
    fn into_report(self, lmtp: bool, interrupted: Option<Error>) -> TransactionReport {
        let n = self.envelope.recipients.len();
        let final_positive = self
            .final_reply
            .as_ref()
            .map(|r| r.code().is_positive_completion());
        // A transaction that failed before its end (MAIL refused, a BDAT chunk refused...) delivered nothing, whatever
        // a `BDAT ... LAST` already in flight got (RFC 3030 §2, RFC 2920 §3.1). A failure at the end (a 421 among
        // LMTP verdicts) keeps the verdicts already received.
        let failed_before_end = self
            .failure
            .as_ref()
            .is_some_and(|(stage, _)| *stage != Stage::DataTermination);
        let mut recipients = Vec::with_capacity(n);
        for (i, rcpt) in self.envelope.recipients.into_iter().enumerate() {
            let rcpt_reply = self.rcpt_replies[i].clone();
            let rcpt_ok = rcpt_reply
                .as_ref()
                .is_some_and(|r| r.code().is_positive_completion());
            let retry_separately =
                i >= self.rcpt_limit || rcpt_reply.as_ref().is_some_and(too_many_recipients);
            let data_reply = if !rcpt_ok {
                None
            } else if lmtp {
                self.lmtp_replies[i].clone()
            } else {
                self.final_reply.clone()
            };
            let accepted = rcpt_ok
                && !failed_before_end
                && data_reply
                    .as_ref()
                    .is_some_and(|r| r.code().is_positive_completion());
            recipients.push(RecipientReport {
                address: rcpt.address,
                rcpt_reply,
                data_reply,
                accepted,
                retry_separately,
            });
        }
        let accepted = recipients.iter().filter(|r| r.accepted).count();
        // LMTP owes one verdict per recipient accepted at RCPT (RFC 2033 §4.2): until all are in, the fate of the
        // others is unknown, not refused.
        let lmtp_expected = if !failed_before_end && self.accepted > 0 {
            self.accepted
        } else {
            1
        };
        let verdict_known = !failed_before_end
            && if lmtp {
                self.finals_received >= lmtp_expected
            } else {
                final_positive.is_some()
            };
        let mut failure = self.failure;
        let outcome = if verdict_known {
            if accepted == 0 {
                // The verdict refused the message (SMTP), or every LMTP verdict did.
                let refusal = if lmtp {
                    self.lmtp_replies
                        .iter()
                        .flatten()
                        .chain(&self.final_reply)
                        .find(|r| !r.code().is_positive_completion())
                        .cloned()
                } else {
                    self.final_reply.clone()
                };
                failure.get_or_insert((Stage::DataTermination, refusal));
            }
            if accepted == n {
                Outcome::Accepted
            } else if accepted > 0 {
                Outcome::PartiallyAccepted
            } else {
                Outcome::Rejected
            }
        } else if !failed_before_end && accepted > 0 {
            // Some LMTP verdicts were positive and the session ended before the others.
            Outcome::PartiallyAccepted
        } else if failure.is_some() {
            Outcome::Rejected
        } else if self.end_sent {
            Outcome::Unknown
        } else {
            Outcome::NotSent
        };
        let interrupted_outcome = matches!(outcome, Outcome::Unknown | Outcome::NotSent)
            || (outcome == Outcome::PartiallyAccepted && !verdict_known);
        TransactionReport {
            id: self.id,
            outcome,
            mail_reply: self.mail_reply,
            recipients,
            final_reply: self.final_reply,
            failure,
            error: if interrupted_outcome {
                interrupted
            } else {
                None
            },
        }
    }
}

/// A sans-IO SMTP/LMTP client session.
///
/// The machine never touches a socket, a clock or a TLS library. The application (an adapter) moves bytes and
/// time in and out of it:
///
/// * **Inputs** never fail; a fatal problem closes the machine and is reported once as [`Event::Closed`]:
///   [`receive`](Self::receive) (bytes read from the server), [`receive_eof`](Self::receive_eof),
///   [`handle_timeout`](Self::handle_timeout), [`tls_established`](Self::tls_established) /
///   [`tls_failed`](Self::tls_failed).
/// * **Commands** from the application: [`send_mail`](Self::send_mail), [`write_body`](Self::write_body),
///   [`finish_body`](Self::finish_body), [`noop`](Self::noop), [`quit`](Self::quit) (or
///   [`quit_after_transaction`](Self::quit_after_transaction), QUIT pipelined behind the message). A
///   [`UsageError`] leaves the machine unchanged.
/// * **Outputs**, drained after every input or command, in this order:
///   1. [`poll_transmit`](Self::poll_transmit) until `None`, writing each chunk fully to the connection;
///   2. [`poll_event`](Self::poll_event) until `None` (handling an event may issue commands: go back to 1);
///   3. [`poll_timeout`](Self::poll_timeout): wait for input until that instant; when it passes, call
///      [`handle_timeout`](Self::handle_timeout).
///
/// On [`Event::StartTls`] do the TLS handshake on the same connection, then call
/// [`tls_established`](Self::tls_established); bytes read in plaintext before that must not be passed on (they are an
/// injection attempt and [`receive`](Self::receive) treats them as such). After [`Event::Closed`], close the
/// connection: nothing more is transmitted.
///
/// Every stage arms its own deadline from the `now` passed in (see [`crate::Timeouts`]); only complete replies
/// count as progress, so a server cannot stretch a stage by dribbling bytes.
///
/// See the crate documentation for a complete drive loop.
#[derive(Debug)]
pub struct Client {
    config: Config,
    phase: Phase,
    framer: ReplyFramer,
    wire: Wire,
    events: VecDeque<Event>,
    capabilities: Option<Capabilities>,
    tls_active: bool,
    starttls_attempted: bool,
    authenticated: bool,
    auth: Option<(Exchange, bool, u8)>,
    /// A refused OAuth token is waiting for [`Client::retry_auth`] ([`Config::token_refresh`]).
    auth_paused: bool,
    /// [`Client::retry_auth`] was used: a second refusal closes the session.
    auth_retried: bool,
    /// The oldest transaction still owed replies: the replies at the front of `pending` are its own.
    tx: Option<Transaction>,
    /// A transaction pipelined behind `tx`'s end of data (RFC 2920 §3.1), whose commands follow `tx`'s on the wire;
    /// it becomes `tx` when `tx` completes.
    queued: Option<Transaction>,
    next_tx: u64,
    quit_requested: bool,
    quit_sent: bool,
    /// The error to report once a polite QUIT after a refused greeting completes.
    closing_error: Option<Error>,
    overall_deadline: Option<Instant>,
    /// The first bytes of the greeting, kept until they can be classified.
    greeting_probe: Vec<u8>,
    /// TLS channel-binding data (`tls-exporter`, RFC 9266) given by the adapter, for SCRAM-SHA-256-PLUS.
    channel_binding: Option<Vec<u8>>,
}

impl Client {
    /// Creates a session on a freshly opened connection, arming the first deadline (greeting, or the TLS
    /// handshake with [`TlsPolicy::Implicit`], in which case [`Event::StartTls`] is the first event).
    pub fn new(config: Config, now: Instant) -> Self {
        let implicit = config.tls == TlsPolicy::Implicit;
        let mut client = Self {
            phase: if implicit {
                Phase::Handshake { implicit: true }
            } else {
                Phase::Opening
            },
            framer: ReplyFramer::new(config.reply_limits),
            wire: Wire {
                out: Vec::new(),
                pending: VecDeque::new(),
                transcript: config.transcript.then(VecDeque::new),
                anchor: now,
                unsent: 0,
            },
            events: VecDeque::new(),
            capabilities: None,
            tls_active: false,
            starttls_attempted: false,
            authenticated: false,
            auth: None,
            auth_paused: false,
            auth_retried: false,
            tx: None,
            queued: None,
            next_tx: 1,
            quit_requested: false,
            quit_sent: false,
            closing_error: None,
            overall_deadline: config.timeouts.overall.map(|d| now + d),
            greeting_probe: Vec::new(),
            channel_binding: None,
            config,
        };
        if implicit {
            client.events.push_back(Event::StartTls);
        } else {
            client.wire.pending.push_back(Pending::Greeting);
        }
        client
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The server's capabilities from the last EHLO/LHLO (`None` before it, and right after a TLS switch).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// Whether the connection is encrypted (as reported by the adapter).
    pub fn is_tls(&self) -> bool {
        self.tls_active
    }

    /// Whether AUTH succeeded.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// True when a new transaction can start right now: ready, no transaction, nothing outstanding.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Ready
            && self.tx.is_none()
            && self.wire.pending.is_empty()
            && !self.quit_requested
    }

    /// True once [`Event::Closed`] has been queued.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// True when the machine is inside a transaction whose terminator was sent and whose verdict has not arrived.
    pub fn awaiting_verdict(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.end_sent)
    }

    /// True when [`send_mail`](Self::send_mail) would start a transaction now (an envelope this server cannot take
    /// is still refused): the session is idle, or the transaction in progress has sent the end of its data and can
    /// have the next one pipelined behind it (see [`send_mail`](Self::send_mail)).
    pub fn accepts_mail(&self) -> bool {
        self.phase == Phase::Ready && !self.quit_requested && self.tx_slot_free()
    }

    /// Whether a new transaction may start: none in progress, or one whose end of data is out and whose envelope
    /// was not refused, with PIPELINING offered and nothing queued behind it yet.
    fn tx_slot_free(&self) -> bool {
        match &self.tx {
            None => true,
            Some(tx) => {
                self.queued.is_none() && tx.end_sent && tx.failure.is_none() && self.pipelining()
            }
        }
    }

    /// The newest transaction: the one whose body the application writes.
    fn newest(&self) -> Option<&Transaction> {
        self.queued.as_ref().or(self.tx.as_ref())
    }

    // ----- inputs -----

    /// Feeds bytes read from the server. Never fails: a problem closes the machine with [`Event::Closed`].
    pub fn receive(&mut self, now: Instant, mut bytes: &[u8]) {
        if bytes.is_empty() || self.phase == Phase::Closed {
            return;
        }
        match self.phase {
            Phase::Handshake { implicit: false } => {
                return self.close(Some(Error::new(
                    ErrorKind::ResponseInjection,
                    Stage::TlsHandshake,
                    None,
                )));
            }
            Phase::Handshake { implicit: true } => {
                return self.tls_failed(now, bytes, "plaintext bytes before TLS");
            }
            _ => {}
        }
        if self.wire.pending.front() == Some(&Pending::Greeting) && self.greeting_probe.len() < 4 {
            let take = bytes.len().min(4 - self.greeting_probe.len());
            self.greeting_probe.extend_from_slice(&bytes[..take]);
            if diagnose::classify(&self.greeting_probe) == PeerSpeaks::TlsRecord {
                let kind = ErrorKind::ModeMismatch(Mismatch::ServerSpeaksTls);
                return self.close(Some(Error::new(kind, Stage::Greeting, None)));
            }
        }
        while !bytes.is_empty() && self.phase != Phase::Closed {
            if let Some(used) = self.try_fast_hello(now, bytes) {
                bytes = &bytes[used..];
            } else {
                match self.framer.push(&mut bytes) {
                    Err(e) => {
                        let stage = self.stage();
                        return self.close(Some(Error::new(ErrorKind::Reply(e), stage, None)));
                    }
                    Ok(None) => break,
                    Ok(Some(reply)) => self.on_reply(now, reply),
                }
            }
            if self.phase == (Phase::Handshake { implicit: false })
                && (!bytes.is_empty() || !self.framer.is_empty())
            {
                // RFC 3207 §4.2 / CVE-2011-0411: nothing may follow the 220 in plaintext.
                return self.close(Some(Error::new(
                    ErrorKind::ResponseInjection,
                    Stage::StartTls,
                    None,
                )));
            }
        }
    }

    /// The server closed its side of the connection.
    pub fn receive_eof(&mut self, _now: Instant) {
        match self.phase {
            Phase::Closed => {}
            Phase::Quitting => {
                let e = self.closing_error.take();
                self.close(e)
            }
            _ => {
                let stage = self.stage();
                self.close(Some(Error::new(ErrorKind::ConnectionClosed, stage, None)))
            }
        }
    }

    /// Tells the machine that time has passed. Early or repeated calls are harmless no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        if self.phase == Phase::Quitting {
            let e = self.closing_error.take();
            return self.close(e);
        }
        let stage = self.stage();
        let kind = match (stage, self.config.port) {
            (Stage::Greeting, Some(port))
                if self.config.tls != TlsPolicy::Implicit
                    && diagnose::is_implicit_tls_port(port) =>
            {
                ErrorKind::ModeMismatch(Mismatch::ImplicitTlsExpected { port })
            }
            _ => ErrorKind::Timeout,
        };
        self.close(Some(Error::new(kind, stage, None)));
    }

    /// The TLS handshake requested by [`Event::StartTls`] succeeded. The capabilities learnt before are forgotten
    /// and EHLO is sent again (RFC 3207 §4.2); with implicit TLS the greeting is awaited next.
    pub fn tls_established(&mut self, now: Instant) -> Result<(), UsageError> {
        self.tls_established_with_binding(now, None)
    }

    /// Like [`tls_established`](Self::tls_established), also giving the TLS session's channel-binding data: the
    /// `tls-exporter` value (RFC 9266: 32 bytes exported with the label `EXPORTER-Channel-Binding` and no context).
    /// It enables SCRAM-SHA-256-PLUS, which ties the authentication to this TLS session so that a man in the middle
    /// holding another certificate cannot relay it.
    pub fn tls_established_with_binding(
        &mut self,
        now: Instant,
        tls_exporter: Option<Vec<u8>>,
    ) -> Result<(), UsageError> {
        let Phase::Handshake { implicit } = self.phase else {
            return Err(UsageError::TlsNotExpected);
        };
        self.channel_binding = tls_exporter;
        self.tls_active = true;
        self.capabilities = None;
        self.phase = Phase::Opening;
        self.wire.anchor = now;
        self.wire
            .note(Direction::Client, now, || "[TLS established]".to_owned());
        if implicit {
            self.wire.pending.push_back(Pending::Greeting);
        } else {
            self.send_hello();
        }
        Ok(())
    }

    /// The TLS handshake failed. `observed` is what the adapter read from the server during it (may be empty): when
    /// it is a plaintext SMTP reply, the error says the server wants STARTTLS rather than implicit TLS.
    pub fn tls_failed(&mut self, _now: Instant, observed: &[u8], details: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        let kind = if diagnose::classify(observed) == PeerSpeaks::SmtpReply {
            ErrorKind::ModeMismatch(Mismatch::ServerSpeaksPlaintext {
                observed: diagnose::excerpt(observed),
            })
        } else {
            ErrorKind::Tls {
                details: details.to_owned(),
            }
        };
        self.close(Some(Error::new(kind, Stage::TlsHandshake, None)));
    }

    // ----- commands -----

    /// Starts a transaction: MAIL FROM, one RCPT per recipient and, as the server allows, DATA or BDAT, pipelined
    /// in one write when PIPELINING is offered (RFC 2920). Then wait for [`Event::ReadyForBody`] and stream the body.
    ///
    /// **Transactions back to back.** With PIPELINING, the next transaction may start as soon as the one in progress
    /// has sent the end of its data ([`finish_body`](Self::finish_body)), without waiting for its verdict: the new
    /// MAIL, RCPT and DATA (or BDAT) go out in the same write as that final dot or `BDAT ... LAST` (RFC 2920 §3.1
    /// lets the message content start a group, and MAIL/RCPT sit in the middle of one). A DATA body is taken after
    /// the `354`, which the server sends after the previous verdict; a CHUNKING body at once
    /// ([`Event::ReadyForBody`] carries the new transaction's id), and behind a CHUNKING transaction an `RSET` goes
    /// first, so that the new envelope starts clean whatever the previous one came to (after a refused `BDAT` the
    /// server may still hold its `MAIL`; the final dot of DATA always ends a transaction). Each transaction is
    /// reported on its own, in order; at most two are in progress. Otherwise this returns
    /// [`UsageError::TransactionInProgress`]; [`accepts_mail`](Self::accepts_mail) tells in advance.
    pub fn send_mail(&mut self, envelope: Envelope) -> Result<TransactionId, UsageError> {
        match self.phase {
            Phase::Ready if !self.quit_requested => {}
            Phase::Closed | Phase::Quitting | Phase::Ready => return Err(UsageError::Closed),
            _ => return Err(UsageError::NotReady),
        }
        if !self.tx_slot_free() {
            return Err(UsageError::TransactionInProgress);
        }
        if envelope.recipients.is_empty() {
            return Err(UsageError::NoRecipients);
        }
        let started = self.next_tx - 1;
        if let Some(limit) = self.capabilities.as_ref().and_then(|c| c.limits().mail_max)
            && started >= u64::from(limit)
        {
            // RFC 9422 §4.1: no more transactions on this connection; open a new one.
            return Err(UsageError::MailMaxReached { limit });
        }
        let caps = self
            .capabilities
            .as_ref()
            .expect("Ready implies capabilities");
        let mut params = envelope.params.clone();
        if let Some(address) = non_ascii_address(&envelope) {
            if !caps.supports(Extension::SmtpUtf8) {
                return Err(UsageError::Smtputf8Unsupported { address });
            }
            params.smtputf8 = true;
        } else if params.smtputf8 && !caps.supports(Extension::SmtpUtf8) {
            // The caller declared an internationalized message (RFC 6532 headers): it cannot go as it is.
            return Err(UsageError::Smtputf8Unsupported {
                address: String::new(),
            });
        }
        params.size = None;
        if let Some(size) = envelope.size {
            if let Some(limit) = caps.size().filter(|&limit| size > limit) {
                return Err(UsageError::MessageTooLarge { size, limit });
            }
            if caps.supports(Extension::Size) {
                params.size = Some(size);
            }
        }
        let chunking = self.config.chunking && caps.supports(Extension::Chunking);
        match params.body {
            Some(BodyType::EightBitMime) if !caps.supports(Extension::EightBitMime) => {
                return Err(UsageError::EightBitMimeUnsupported);
            }
            Some(BodyType::BinaryMime) if !(chunking && caps.supports(Extension::BinaryMime)) => {
                return Err(UsageError::BinaryMimeUnsupported);
            }
            _ => {}
        }
        if params.require_tls && !(self.tls_active && caps.supports(Extension::RequireTls)) {
            return Err(UsageError::RequireTlsUnavailable);
        }
        let wants_dsn = params.ret.is_some()
            || params.envid.is_some()
            || envelope
                .recipients
                .iter()
                .any(|r| r.params.notify.is_some() || r.params.orcpt.is_some());
        if wants_dsn && !caps.supports(Extension::Dsn) {
            return Err(UsageError::DsnUnsupported);
        }
        if !caps.supports(Extension::MtPriority) {
            params.mt_priority = None;
        }
        let mode = if chunking {
            BodyMode::Bdat {
                binary: params.body == Some(BodyType::BinaryMime),
            }
        } else {
            BodyMode::Data
        };
        let id = TransactionId(self.next_tx);
        self.next_tx += 1;
        let n = envelope.recipients.len();
        let rcpt_limit = caps
            .limits()
            .rcpt_max
            .map_or(n, |max| n.min(usize::try_from(max).unwrap_or(usize::MAX)));
        let binary = mode == BodyMode::Bdat { binary: true };
        let mut tx = Transaction {
            id,
            envelope,
            params,
            mode,
            mail_reply: None,
            rcpt_replies: vec![None; n],
            lmtp_replies: vec![None; n],
            final_reply: None,
            mail_sent: false,
            rcpt_limit,
            rcpts_sent: 0,
            rcpts_answered: 0,
            accepted: 0,
            data_sent: false,
            body: if matches!(mode, BodyMode::Bdat { .. }) {
                BodyState::Open
            } else {
                BodyState::Waiting
            },
            stuffer: if matches!(mode, BodyMode::Data) {
                DotStuffer::new()
            } else {
                DotStuffer::normalizing_only()
            },
            chunk: Vec::new(),
            body_bytes: 0,
            end_sent: false,
            failure: None,
            in_flight: 0,
            finals_received: 0,
        };
        if binary {
            // BINARYMIME bodies go out untouched: no line-ending normalization.
            tx.stuffer = DotStuffer::normalizing_only();
        }
        match &self.tx {
            None => self.tx = Some(tx),
            Some(previous) => {
                if matches!(previous.mode, BodyMode::Bdat { .. }) {
                    // The server may keep a refused BDAT transaction's MAIL (RFC 3030 §2 leaves it to RSET).
                    self.wire.send(Command::Rset, Some(Pending::Rset));
                }
                self.queued = Some(tx);
            }
        }
        self.advance_tx();
        if matches!(mode, BodyMode::Bdat { .. }) {
            self.events.push_back(Event::ReadyForBody { id });
        }
        Ok(id)
    }

    /// Offers body bytes; returns how many were taken (a prefix: `Ok(0)` means "drain `poll_transmit` and input
    /// first"). The body is never held whole: at most [`Config::max_buffered_body`] bytes wait in the machine.
    /// DATA bodies are dot-stuffed and bare CR/LF become CRLF; BDAT text bodies are only normalized; BINARYMIME bodies
    /// go out as given.
    pub fn write_body(&mut self, chunk: &[u8]) -> Result<usize, UsageError> {
        if self.phase == Phase::Closed {
            return Err(UsageError::Closed);
        }
        let max = self.config.max_buffered_body;
        let out_len = self.wire.out.len();
        let Some(tx) = self.queued.as_mut().or(self.tx.as_mut()) else {
            return Err(UsageError::NoBodyExpected);
        };
        if tx.failure.is_some() || tx.body == BodyState::Finished {
            return Err(UsageError::NoBodyExpected);
        }
        if tx.body == BodyState::Waiting {
            return Ok(0);
        }
        let room = max.saturating_sub(out_len + tx.chunk.len());
        let n = chunk.len().min(room);
        if n == 0 {
            return Ok(0);
        }
        let taken = &chunk[..n];
        match tx.mode {
            BodyMode::Data => tx.stuffer.push(taken, &mut self.wire.out),
            BodyMode::Bdat { binary: true } => tx.chunk.extend_from_slice(taken),
            BodyMode::Bdat { binary: false } => tx.stuffer.push(taken, &mut tx.chunk),
        }
        tx.body_bytes += n as u64;
        Ok(n)
    }

    /// Ends the body: the final dot (DATA) or `BDAT <n> LAST`. The verdict arrives as
    /// [`Event::TransactionComplete`].
    pub fn finish_body(&mut self) -> Result<(), UsageError> {
        if self.phase == Phase::Closed {
            return Err(UsageError::Closed);
        }
        let Some(tx) = self.queued.as_mut().or(self.tx.as_mut()) else {
            return Err(UsageError::NoBodyExpected);
        };
        if tx.failure.is_some() || tx.body != BodyState::Open {
            return Err(UsageError::NoBodyExpected);
        }
        tx.body = BodyState::Finished;
        match tx.mode {
            BodyMode::Data => {
                tx.stuffer.finish(&mut self.wire.out);
                tx.end_sent = true;
                tx.in_flight += 1;
                self.wire.pending.push_back(Pending::Final);
                self.wire.unsent += 1;
                let bytes = tx.body_bytes;
                let at = self.wire.anchor;
                self.wire.note(Direction::Client, at, || {
                    format!("[message body: {bytes} bytes]")
                });
                self.wire.note(Direction::Client, at, || ".".to_owned());
            }
            BodyMode::Bdat { binary } => {
                if !binary {
                    tx.stuffer.finish(&mut tx.chunk);
                }
                self.advance_tx();
            }
        }
        Ok(())
    }

    /// Sends NOOP, e.g. to check a pooled connection before reuse; the reply arrives as [`Event::NoopReply`].
    pub fn noop(&mut self) -> Result<(), UsageError> {
        if !self.is_idle() {
            return Err(match self.phase {
                Phase::Closed | Phase::Quitting => UsageError::Closed,
                Phase::Ready => UsageError::TransactionInProgress,
                _ => UsageError::NotReady,
            });
        }
        self.wire.send(Command::Noop, Some(Pending::Noop));
        Ok(())
    }

    /// Ends the session: QUIT when the session is ready (after any outstanding replies), otherwise, or in the middle
    /// of a transaction, close at once without a word (a transaction in progress is reported `NotSent`, or `Unknown`
    /// when its end was already sent). [`Event::Closed`] follows with no error.
    pub fn quit(&mut self) {
        match self.phase {
            Phase::Closed | Phase::Quitting => {}
            Phase::Ready if self.tx.is_none() => {
                self.quit_requested = true;
                self.phase = Phase::Quitting;
                self.flush_quit();
            }
            // Paused after a refused token (Event::AuthRejected): nothing is outstanding, so end politely.
            Phase::Opening if self.auth_paused => {
                self.auth_paused = false;
                self.quit_requested = true;
                self.phase = Phase::Quitting;
                self.flush_quit();
            }
            _ => self.close(None),
        }
    }

    /// Ends the session after the transaction in progress: `QUIT` goes out right behind the end of its data (the
    /// final dot or `BDAT <n> LAST`, in the same write) when the server offers PIPELINING (RFC 2920 §3.1 allows QUIT
    /// as the last command of a group), otherwise once the verdict arrived. That saves the QUIT round trip when the
    /// caller knows this is the last message on the connection.
    ///
    /// The transaction is reported first, as always ([`Event::TransactionComplete`]; a connection lost or a deadline
    /// passed after the end of the data was sent still makes it `Unknown`, never delivered), then [`Event::Closed`]
    /// with no error after the `221` or the server's close. No `RSET` follows a failed transaction and no other
    /// transaction can start. Without a transaction in progress this is [`quit`](Self::quit).
    pub fn quit_after_transaction(&mut self) {
        match self.phase {
            Phase::Ready if self.tx.is_some() => {
                self.quit_requested = true;
                self.flush_quit();
            }
            _ => self.quit(),
        }
    }

    /// Tries AUTH again with fresh `credentials` after [`Event::AuthRejected`] (an OAuth token the server refused,
    /// with [`Config::token_refresh`] on), on the same connection: the failed exchange left the SMTP session usable
    /// (RFC 7628 §3.2.3, RFC 4954 §4). Once per session; a second refusal closes it with
    /// [`ErrorKind::AuthFailed`] and the server's decoded status. Arms the AUTH deadline from `now`.
    ///
    /// # Errors
    ///
    /// [`UsageError::NoAuthToRetry`] when no refused token is waiting (any other state, or already retried); the
    /// machine is unchanged.
    pub fn retry_auth(
        &mut self,
        credentials: crate::config::Credentials,
        now: Instant,
    ) -> Result<(), UsageError> {
        if !self.auth_paused || self.phase != Phase::Opening || self.quit_requested {
            return Err(UsageError::NoAuthToRetry);
        }
        self.auth_paused = false;
        self.auth_retried = true;
        self.config.credentials = Some(credentials);
        self.wire.anchor = now;
        self.after_hello();
        Ok(())
    }

    // ----- outputs -----

    /// The next bytes to write to the connection, if any. Write each chunk fully before calling again.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if self.phase == Phase::Closed {
            return None;
        }
        self.advance_tx();
        self.flush_quit();
        if self.wire.out.is_empty() {
            return None;
        }
        self.wire.anchor = now;
        self.wire.unsent = 0;
        Some(Bytes::from(std::mem::take(&mut self.wire.out)))
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next transcript line, if [`Config::transcript`] is on.
    #[must_use]
    pub fn poll_transcript(&mut self) -> Option<TranscriptEntry> {
        self.wire.transcript.as_mut()?.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called if no input arrives before; `None` when nothing
    /// is awaited (an idle, ready session without an overall deadline).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        let stage = self
            .awaited_stage()
            .map(|s| self.wire.anchor + self.config.timeouts.for_stage(s));
        match (stage, self.overall_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- internals -----

    /// The stage whose deadline is running, if any.
    fn awaited_stage(&self) -> Option<Stage> {
        if let Some(p) = self.wire.pending.front() {
            return Some(p.stage());
        }
        match self.phase {
            Phase::Handshake { .. } => Some(Stage::TlsHandshake),
            Phase::Quitting => Some(Stage::Quit),
            Phase::Ready if self.newest().is_some_and(Transaction::body_open) => {
                Some(Stage::DataBlock)
            }
            _ => None,
        }
    }

    /// The stage to blame for an error now.
    fn stage(&self) -> Stage {
        self.awaited_stage().unwrap_or(Stage::Idle)
    }

    fn pipelining(&self) -> bool {
        self.config.pipelining
            && self
                .capabilities
                .as_ref()
                .is_some_and(|c| c.supports(Extension::Pipelining))
    }

    fn close(&mut self, error: Option<Error>) {
        if self.phase == Phase::Closed {
            return;
        }
        let lmtp = self.config.protocol == Protocol::Lmtp;
        for tx in [self.tx.take(), self.queued.take()].into_iter().flatten() {
            let report = tx.into_report(lmtp, error.clone());
            self.events
                .push_back(Event::TransactionComplete(Box::new(report)));
        }
        self.wire.out.clear();
        self.wire.pending.clear();
        self.wire.unsent = 0;
        self.phase = Phase::Closed;
        self.events.push_back(Event::Closed { error });
    }

    /// The common case of the EHLO or LHLO reply: positive and whole at the start of `bytes`. Read straight into
    /// capabilities in one pass ([`Capabilities::parse_ehlo`]'s), without building the reply; the outcome is the
    /// one [`Client::on_reply`] reaches for it. Returns the bytes taken, or `None` to let the framer read them.
    fn try_fast_hello(&mut self, now: Instant, bytes: &[u8]) -> Option<usize> {
        if !matches!(
            self.wire.pending.front(),
            Some(Pending::Hello(Hello::Ehlo | Hello::Lhlo))
        ) || !self.framer.is_empty()
            // Premature (the command is not out yet): `on_reply` decides.
            || self.wire.pending.len() <= self.wire.unsent
        {
            return None;
        }
        let (capabilities, used) =
            Capabilities::parse_ehlo_prefix(bytes, &self.config.reply_limits)?;
        let raw = &bytes[..used];
        self.wire.anchor = now;
        self.wire.note(Direction::Server, now, || {
            // Only when a transcript is kept: the reply as `on_reply` notes it.
            match crate::framer::parse_reply(raw) {
                Ok(Some((reply, _))) => reply.to_string(),
                _ => printable(raw),
            }
        });
        self.wire.pending.pop_front();
        self.capabilities = Some(capabilities);
        self.after_hello();
        Some(used)
    }

    fn on_reply(&mut self, now: Instant, reply: Reply) {
        self.wire.anchor = now;
        self.wire.note(Direction::Server, now, || reply.to_string());
        let premature = self.wire.pending.len() <= self.wire.unsent;
        let Some(pending) = self.wire.pending.pop_front() else {
            let kind = if reply.code() == ReplyCode::SERVICE_NOT_AVAILABLE {
                ErrorKind::ServiceNotAvailable
            } else {
                ErrorKind::UnexpectedReply
            };
            return self.close(Some(Error::new(kind, Stage::Idle, Some(reply))));
        };
        if reply.code() == ReplyCode::SERVICE_NOT_AVAILABLE && pending != Pending::Quit {
            // RFC 5321 §3.8: 421 may answer any command; the server closes the channel after it.
            if let Some(tx) = &mut self.tx {
                if pending.in_transaction() {
                    record_tx_reply(tx, pending, &reply, self.config.protocol == Protocol::Lmtp);
                    tx.fail(pending.stage(), Some(reply.clone()));
                }
            }
            let error = Error::new(ErrorKind::ServiceNotAvailable, pending.stage(), Some(reply));
            return self.close(Some(error));
        }
        if premature {
            self.wire.unsent -= 1;
            if pending == Pending::Final {
                // The verdict arrived before the end of the data was handed out (in the same read as an earlier
                // reply): the server cannot have seen it. Never take it as the message's fate.
                let error = Error::new(
                    ErrorKind::UnexpectedReply,
                    Stage::DataTermination,
                    Some(reply),
                );
                return self.close(Some(error));
            }
        }
        match pending {
            Pending::Greeting => self.on_greeting(reply),
            Pending::Hello(kind) => self.on_hello(kind, reply),
            Pending::StartTls => self.on_starttls(reply),
            Pending::Auth => self.on_auth(reply),
            Pending::Rset => {
                if !reply.code().is_positive_completion() {
                    self.close(Some(Error::new(
                        ErrorKind::CommandRejected,
                        Stage::Rset,
                        Some(reply),
                    )));
                }
            }
            Pending::Noop => self.events.push_back(Event::NoopReply { reply }),
            Pending::Quit => {
                let e = self.closing_error.take();
                self.close(e);
            }
            _ => self.on_tx_reply(pending, reply),
        }
    }

    fn on_greeting(&mut self, reply: Reply) {
        if reply.code() == ReplyCode::SERVICE_READY {
            self.send_hello();
        } else {
            // RFC 5321 §3.1: after a 554 greeting the client should QUIT and wait for the server's answer.
            self.closing_error = Some(Error::new(
                ErrorKind::GreetingRejected,
                Stage::Greeting,
                Some(reply),
            ));
            self.phase = Phase::Quitting;
            self.quit_requested = true;
            self.flush_quit();
        }
    }

    fn send_hello(&mut self) {
        let kind = match self.config.protocol {
            Protocol::Lmtp => Hello::Lhlo,
            Protocol::Smtp => Hello::Ehlo,
        };
        self.send_hello_kind(kind);
    }

    fn send_hello_kind(&mut self, kind: Hello) {
        let id = &self.config.client_id;
        let command = match kind {
            Hello::Ehlo => Command::Ehlo(id),
            Hello::Helo => Command::Helo(id),
            Hello::Lhlo => Command::Lhlo(id),
        };
        self.wire.send(command, Some(Pending::Hello(kind)));
    }

    fn on_hello(&mut self, kind: Hello, reply: Reply) {
        if reply.code().is_positive_completion() {
            self.capabilities = Some(match kind {
                Hello::Helo => Capabilities::none(),
                _ => Capabilities::from_ehlo(&reply),
            });
            return self.after_hello();
        }
        if kind == Hello::Ehlo && reply.code().is_permanent() {
            // RFC 5321 §4.1.4 / §3.2: an old server that does not know EHLO; HELO offers no extension.
            return self.send_hello_kind(Hello::Helo);
        }
        self.close(Some(Error::new(
            ErrorKind::CommandRejected,
            Stage::Ehlo,
            Some(reply),
        )));
    }

    fn after_hello(&mut self) {
        let caps = self.capabilities.as_ref().expect("set before");
        let wants_tls = matches!(
            self.config.tls,
            TlsPolicy::StartTlsRequired | TlsPolicy::StartTlsOpportunistic
        );
        if !self.tls_active && wants_tls && !self.starttls_attempted {
            if caps.supports(Extension::StartTls) {
                self.starttls_attempted = true;
                self.wire.send(Command::StartTls, Some(Pending::StartTls));
                return;
            }
            if self.config.tls == TlsPolicy::StartTlsRequired {
                return self.close(Some(Error::new(
                    ErrorKind::StartTlsUnavailable,
                    Stage::Ehlo,
                    None,
                )));
            }
        }
        if let Some(credentials) = &self.config.credentials
            && !self.authenticated
        {
            if !self.tls_active && !self.config.allow_insecure_auth {
                return self.close(Some(Error::new(
                    ErrorKind::AuthRequiresTls,
                    Stage::Auth,
                    None,
                )));
            }
            let offered = caps.auth_mechanisms();
            let scram = match (&self.config.sasl_random, &self.channel_binding) {
                (None, _) => ScramSupport::Unavailable,
                (Some(_), None) => ScramSupport::Scram,
                (Some(_), Some(_)) => ScramSupport::ScramPlus,
            };
            let preference = self.config.mechanisms.as_deref();
            let Some(mechanism) = auth::select_mechanism(offered, credentials, preference, scram)
            else {
                let kind = ErrorKind::AuthUnavailable {
                    offered: offered.to_vec(),
                };
                return self.close(Some(Error::new(kind, Stage::Auth, None)));
            };
            let mut exchange = Exchange::new(mechanism);
            if let Some(random) = &self.config.sasl_random
                && matches!(
                    exchange.mechanism(),
                    Mechanism::ScramSha256 | Mechanism::ScramSha256Plus
                )
            {
                // RFC 5802 §5.1: "y" when the client could bind but the server offers no -PLUS (downgrade check).
                let binding = match &self.channel_binding {
                    Some(data) if *exchange.mechanism() == Mechanism::ScramSha256Plus => {
                        Binding::TlsExporter(data.clone())
                    }
                    Some(_) if !offered.contains(&Mechanism::ScramSha256Plus) => {
                        Binding::NotOffered
                    }
                    _ => Binding::Unavailable,
                };
                let nonce = BASE64_NOPAD.encode(random);
                exchange.scram = Some(Scram::new(credentials.username(), &nonce, binding));
            }
            let initial = exchange.initial_response(credentials);
            let fits = initial.as_ref().is_some_and(|r| {
                6 + exchange.mechanism().as_str().len() + r.len().div_ceil(3) * 4 + 2
                    <= MAX_COMMAND_LINE
            });
            let initial = if fits { initial } else { None };
            self.wire.send(
                Command::Auth {
                    mechanism: exchange.mechanism(),
                    initial_response: initial.as_deref(),
                },
                Some(Pending::Auth),
            );
            self.auth = Some((exchange, initial.is_some(), 0));
            return;
        }
        self.become_ready();
    }

    fn become_ready(&mut self) {
        self.phase = Phase::Ready;
        self.events.push_back(Event::Ready {
            capabilities: self.capabilities.clone().unwrap_or_default(),
            tls: self.tls_active,
            authenticated: self.authenticated,
        });
    }

    fn on_starttls(&mut self, reply: Reply) {
        if reply.code() == ReplyCode::SERVICE_READY {
            self.phase = Phase::Handshake { implicit: false };
            self.events.push_back(Event::StartTls);
        } else if self.config.tls == TlsPolicy::StartTlsRequired {
            self.close(Some(Error::new(
                ErrorKind::StartTlsRejected,
                Stage::StartTls,
                Some(reply),
            )));
        } else {
            self.after_hello();
        }
    }

    fn on_auth(&mut self, reply: Reply) {
        let Some((mut exchange, sent_initial, rounds)) = self.auth.take() else {
            return self.close(Some(Error::new(
                ErrorKind::UnexpectedReply,
                Stage::Auth,
                Some(reply),
            )));
        };
        let code = reply.code();
        if code.is_positive_completion() {
            if exchange.scram.as_ref().is_some_and(|s| !s.verified()) {
                // RFC 5802 §5.1: the client must verify the server signature before trusting the outcome.
                return self.close(Some(Error::new(
                    ErrorKind::AuthServerNotVerified,
                    Stage::Auth,
                    Some(reply),
                )));
            }
            self.authenticated = true;
            return self.become_ready();
        }
        if code != ReplyCode::AUTH_CONTINUE {
            let kind = ErrorKind::AuthFailed {
                details: exchange.error_details.take(),
            };
            let error = Error::new(kind, Stage::Auth, Some(reply));
            let token = matches!(
                exchange.mechanism(),
                Mechanism::XOAuth2 | Mechanism::OAuthBearer
            );
            // RFC 7628 §3.2.3: after the failure reply the SMTP session goes on, so a fresh token may be tried on it.
            if self.config.token_refresh
                && token
                && !self.auth_retried
                && code.is_permanent()
                && code != ReplyCode::SERVICE_NOT_AVAILABLE
            {
                self.auth_paused = true;
                self.events.push_back(Event::AuthRejected { error });
                return;
            }
            return self.close(Some(error));
        }
        if rounds >= self.config.max_auth_rounds {
            return self.close(Some(Error::new(
                ErrorKind::AuthProtocol,
                Stage::Auth,
                Some(reply),
            )));
        }
        let text = reply.lines().next().unwrap_or_default().trim_ascii();
        let Ok(challenge) = BASE64.decode(text) else {
            return self.close(Some(Error::new(
                ErrorKind::AuthProtocol,
                Stage::Auth,
                Some(reply),
            )));
        };
        let credentials = self
            .config
            .credentials
            .as_ref()
            .expect("AUTH only starts with credentials");
        match exchange.respond(&challenge, credentials, sent_initial) {
            Ok(response) => {
                self.wire
                    .send(Command::AuthResponse(&response), Some(Pending::Auth));
                self.auth = Some((exchange, sent_initial, rounds + 1));
            }
            Err(e) => {
                let kind = match e {
                    StepError::Scram(ScramError::ServerNotVerified) => {
                        ErrorKind::AuthServerNotVerified
                    }
                    StepError::Scram(ScramError::Server(details)) => ErrorKind::AuthFailed {
                        details: Some(details),
                    },
                    _ => ErrorKind::AuthProtocol,
                };
                self.close(Some(Error::new(kind, Stage::Auth, Some(reply))))
            }
        }
    }

    fn on_tx_reply(&mut self, pending: Pending, reply: Reply) {
        let lmtp = self.config.protocol == Protocol::Lmtp;
        let Some(tx) = self.tx.as_mut() else {
            return self.close(Some(Error::new(
                ErrorKind::UnexpectedReply,
                pending.stage(),
                Some(reply),
            )));
        };
        let code = reply.code();
        let mut done = false;
        match pending {
            Pending::Mail => {
                if !code.is_positive_completion() {
                    tx.fail(Stage::Mail, Some(reply.clone()));
                }
                tx.mail_reply = Some(reply);
            }
            Pending::Rcpt(index) => {
                tx.rcpts_answered += 1;
                if code.is_positive_completion() {
                    tx.accepted += 1;
                }
                tx.rcpt_replies[index] = Some(reply.clone());
                let reply_for_limit = reply.clone();
                self.events.push_back(Event::RecipientReply {
                    id: tx.id,
                    index,
                    reply,
                });
                if too_many_recipients(&reply_for_limit) {
                    // Without pipelining, stop here; the rest go in a further transaction (RFC 5321 §4.5.3.1.10).
                    tx.rcpt_limit = tx.rcpt_limit.min(tx.rcpts_sent);
                }
                let all_answered =
                    tx.rcpts_sent == tx.rcpt_limit && tx.rcpts_answered == tx.rcpts_sent;
                if all_answered && tx.accepted == 0 {
                    tx.fail(Stage::Rcpt, None);
                }
            }
            Pending::Data => {
                if code == ReplyCode::START_MAIL_INPUT {
                    if tx.failure.is_some() || tx.accepted == 0 {
                        // RFC 2920 §3.1: a pipelined DATA accepted without valid recipients gets a lone dot.
                        tx.fail(Stage::Rcpt, None);
                        self.wire.out.extend_from_slice(b".\r\n");
                        self.wire.pending.push_back(Pending::DataDiscard);
                        self.wire.unsent += 1;
                        tx.in_flight += 1;
                    } else {
                        tx.body = BodyState::Open;
                        self.events.push_back(Event::ReadyForBody { id: tx.id });
                    }
                } else if code.is_positive_completion() || code.is_positive_intermediate() {
                    return self.close(Some(Error::new(
                        ErrorKind::UnexpectedReply,
                        Stage::DataInit,
                        Some(reply),
                    )));
                } else {
                    tx.fail(Stage::DataInit, Some(reply));
                }
            }
            Pending::Bdat => {
                if !code.is_positive_completion() {
                    // RFC 3030 §2: after a failed chunk no further BDAT is sent.
                    tx.fail(Stage::DataBlock, Some(reply));
                }
            }
            Pending::DataDiscard => {}
            Pending::Final => {
                let expected = if lmtp && tx.failure.is_none() && tx.accepted > 0 {
                    tx.accepted
                } else {
                    1
                };
                record_tx_reply(tx, pending, &reply, lmtp);
                tx.finals_received += 1;
                if tx.finals_received < expected {
                    self.wire.pending.push_front(Pending::Final);
                    return;
                }
                done = true;
            }
            _ => unreachable!("session replies are handled before"),
        }
        tx.in_flight -= 1;
        if done || (tx.failure.is_some() && tx.in_flight == 0) {
            return self.finish_tx();
        }
        self.advance_tx();
    }

    fn finish_tx(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        let report = tx.into_report(self.config.protocol == Protocol::Lmtp, None);
        let delivered = report.outcome.is_delivered();
        self.events
            .push_back(Event::TransactionComplete(Box::new(report)));
        if let Some(next) = self.queued.take() {
            // The pipelined transaction's replies come next. No RSET in between: it would undo the new envelope,
            // and none is needed (see `send_mail`). It received no reply yet, so it cannot have failed.
            self.tx = Some(next);
            return self.flush_quit();
        }
        if self.quit_requested {
            // `quit_after_transaction`: the session ends here; QUIT (already sent or sent now) replaces RSET.
            if self.phase == Phase::Ready {
                self.phase = Phase::Quitting;
            }
        } else if !delivered && self.phase == Phase::Ready {
            // Leave no half-open transaction behind (RFC 5321 §4.1.1.5).
            self.wire.send(Command::Rset, Some(Pending::Rset));
        }
        self.flush_quit();
    }

    fn flush_quit(&mut self) {
        if !self.quit_requested || self.quit_sent {
            return;
        }
        let now = match self.newest() {
            None => self.pipelining() || self.wire.pending.is_empty(),
            // `quit_after_transaction`: right behind the end of the data, in the same write.
            Some(tx) => tx.end_sent && self.pipelining(),
        };
        if now {
            self.quit_sent = true;
            self.wire.send(Command::Quit, Some(Pending::Quit));
        }
    }

    /// Sends whatever the transaction may send now: the envelope, DATA, BDAT chunks.
    fn advance_tx(&mut self) {
        let pipelining = self.pipelining();
        let Some(tx) = self.queued.as_mut().or(self.tx.as_mut()) else {
            return;
        };
        let wire = &mut self.wire;
        let can_send = |wire: &Wire| pipelining || wire.pending.is_empty();
        if !tx.mail_sent {
            if !can_send(wire) {
                return;
            }
            wire.send(
                Command::Mail {
                    from: &tx.envelope.from,
                    params: &tx.params,
                },
                Some(Pending::Mail),
            );
            tx.mail_sent = true;
            tx.in_flight += 1;
        }
        while tx.rcpts_sent < tx.rcpt_limit {
            if tx.failure.is_some() || !can_send(wire) {
                return;
            }
            let r = &tx.envelope.recipients[tx.rcpts_sent];
            wire.send(
                Command::Rcpt {
                    to: &r.address,
                    params: &r.params,
                },
                Some(Pending::Rcpt(tx.rcpts_sent)),
            );
            tx.rcpts_sent += 1;
            tx.in_flight += 1;
        }
        if tx.failure.is_some() || !can_send(wire) {
            return;
        }
        match tx.mode {
            BodyMode::Data => {
                if !tx.data_sent {
                    wire.send(Command::Data, Some(Pending::Data));
                    tx.data_sent = true;
                    tx.in_flight += 1;
                }
            }
            BodyMode::Bdat { .. } => {
                let last = tx.body == BodyState::Finished;
                if tx.end_sent || (tx.chunk.is_empty() && !last) {
                    return;
                }
                let size = tx.chunk.len() as u64;
                wire.send(
                    Command::Bdat { size, last },
                    Some(if last { Pending::Final } else { Pending::Bdat }),
                );
                wire.out.extend_from_slice(&tx.chunk);
                tx.chunk.clear();
                wire.note(Direction::Client, wire.anchor, || {
                    format!("[{size} bytes of message data]")
                });
                tx.in_flight += 1;
                tx.end_sent = last;
            }
        }
    }
}

/// Stores a transaction reply where the report will find it.
fn record_tx_reply(tx: &mut Transaction, pending: Pending, reply: &Reply, lmtp: bool) {
    match pending {
        Pending::Mail => tx.mail_reply = Some(reply.clone()),
        Pending::Rcpt(i) => tx.rcpt_replies[i] = Some(reply.clone()),
        Pending::Final if lmtp => {
            let slot = tx.accepted_indices().nth(tx.finals_received);
            match slot {
                Some(i) => tx.lmtp_replies[i] = Some(reply.clone()),
                None => tx.final_reply = Some(reply.clone()),
            }
        }
        Pending::Final => tx.final_reply = Some(reply.clone()),
        _ => {}
    }
}

fn non_ascii_address(envelope: &Envelope) -> Option<String> {
    if let ReversePath::Mailbox(a) = &envelope.from
        && a.needs_smtputf8()
    {
        return Some(a.as_str().to_owned());
    }
    envelope
        .recipients
        .iter()
        .find(|r| r.address.needs_smtputf8())
        .map(|r| r.address.as_str().to_owned())
}

/// A RCPT reply that means "too many recipients in this transaction, send the rest in another one":
/// `452` (RFC 5321 §4.5.3.1.10), or the legacy `552` with enhanced code `5.5.3` or that text.
fn too_many_recipients(reply: &Reply) -> bool {
    let enhanced = reply.enhanced().map(|e| (e.subject, e.detail));
    match reply.code().get() {
        452 => matches!(enhanced, None | Some((5, 3))),
        552 => {
            enhanced == Some((5, 3))
                || String::from_utf8_lossy(reply.text())
                    .to_ascii_lowercase()
                    .contains("too many recipients")
        }
        _ => false,
    }
}
