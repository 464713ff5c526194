//! Target `session`: a scripted client (EHLO, STARTTLS, AUTH, two messages with pipelining and chunking) fed server
//! bytes in arbitrary splits, with arbitrary timer firings, application calls and API misuse.
//!
//! The script ([`script::Script`]) mixes raw bytes with replies rendered by a server model ([`model::Model`]) that
//! reads everything the client writes as a server would and answers the next outstanding command with a reply of the
//! chosen kind (right, wrong, transient, permanent, 421, multiline, bare LF...), so the fuzzer reaches deep states.
//!
//! Invariants checked after every input, command and output (a violation panics):
//! - bounded input: a shadow [`ReplyFramer`] with the session's limits, fed the same bytes, stays within the caps;
//!   when it fails (a cap or the grammar), the client must be closed;
//! - `Closed` at most once (exactly once by the end), no event after it, nothing transmitted after it, no byte after
//!   QUIT, `poll_timeout()` `None` once closed;
//! - no AUTH command, AUTH response or credential bytes before TLS unless `allow_insecure_auth`; nothing before TLS
//!   with implicit TLS; no MAIL/RCPT/DATA/BDAT before TLS with a required policy; `Ready` says TLS when required and
//!   authenticated exactly when credentials are configured; transcripts never show a credential;
//! - the client's bytes are a valid command stream (model): known commands only, no bare CR/LF, RFC 2920 lockstep
//!   without PIPELINING and for EHLO/STARTTLS/AUTH/NOOP, nothing after DATA before its reply, a DATA body that a
//!   strict server decodes to the normalized body, BDAT payloads that add up to it;
//! - every reply the client processed (seen through the transcript) is the shadow framer's next reply and answers a
//!   command the model expected: no reply is left unmatched while the session is open;
//! - liveness: while a reply, a handshake or body data is awaited there is a deadline, and it lies in the future;
//!   firing it closes the session; one nanosecond earlier does nothing; a failed command changes nothing;
//! - honest outcomes: a message is reported accepted only when the reply the model matched to the end of its data
//!   is positive, was processed after `finish_body`, and equals the report's verdict; MAIL and the recipients'
//!   RCPT were positive; `NotSent` only when the end was never written; `Unknown` only without a complete verdict;
//!   a complete positive verdict for a valid transaction is reported delivered; reports agree with events.

pub mod model;
pub mod script;

use std::time::{Duration, Instant};

use smtp_proto::{
    Capabilities, Client, Config, Credentials, Direction, Envelope, Error, ErrorKind, Event,
    Outcome, ReplyFramer, ReplyLimits, ReversePath, TlsPolicy, TransactionId, TransactionReport,
    UsageError,
};

use super::input::split_at_cuts;
use super::reply::{check_buffered, check_printable};
use model::{Model, auto_reply, b64, render};
use script::{Script, Setup, Step};

/// The password and token the sessions use; they must never appear before TLS (unless allowed) nor in a transcript.
pub const USER: &str = "fuzz-user";
/// See [`USER`].
pub const PASSWORD: &str = "fuzz-secret-pw";
/// See [`USER`].
pub const TOKEN: &str = "fuzz-token-xyz";

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    run_script(&Script::decode(data));
}

/// What a finished session looked like, for the proptest model.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The error in the `Closed` event.
    pub closed: Option<Error>,
    /// The reports, in order.
    pub reports: Vec<TransactionReport>,
    /// `Ready` was emitted.
    pub ready: bool,
    /// Everything the client wrote.
    pub wire: Vec<u8>,
    /// Replies the client processed.
    pub replies: usize,
    /// The session was still open after the last step (the harness then ends it with an EOF).
    pub open_at_end: bool,
}

/// The fake clock's origin: the real clock is read once, only to get an `Instant` value.
#[allow(clippy::disallowed_methods)]
pub fn origin() -> Instant {
    Instant::now()
}

fn config(setup: &Setup) -> Config {
    let mut c = Config::default();
    c.tls = [
        TlsPolicy::None,
        TlsPolicy::StartTlsRequired,
        TlsPolicy::StartTlsOpportunistic,
        TlsPolicy::Implicit,
    ][usize::from(setup.tls % 4)];
    c.credentials = match setup.credentials {
        1 => Some(Credentials::password(USER, PASSWORD)),
        2 => Some(Credentials::oauth2(USER, TOKEN)),
        _ => None,
    };
    c.allow_insecure_auth = setup.allow_insecure_auth;
    c.pipelining = setup.pipelining;
    c.chunking = setup.chunking;
    if setup.lmtp {
        c.protocol = smtp_proto::Protocol::Lmtp;
    }
    if setup.small_limits {
        c.reply_limits = ReplyLimits {
            max_line_len: 128,
            max_lines: 8,
            max_reply_len: 512,
        };
    }
    if setup.small_body_buffer {
        c.max_buffered_body = 16;
    }
    if setup.overall_deadline {
        c.timeouts.overall = Some(Duration::from_secs(20 * 60));
    }
    if setup.port_465 {
        c.port = Some(465);
    }
    c.transcript = true;
    c
}

/// The secrets' wire forms: raw, base64 alone, and base64 of each mechanism's payload.
fn secret_patterns() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in [PASSWORD, TOKEN] {
        out.push(s.as_bytes().to_vec());
        out.push(b64(s.as_bytes()).into_bytes());
    }
    out.push(b64(format!("\0{USER}\0{PASSWORD}").as_bytes()).into_bytes());
    out.push(b64(format!("user={USER}\x01auth=Bearer {TOKEN}\x01\x01").as_bytes()).into_bytes());
    out.push(b64(format!("n,a={USER},\x01auth=Bearer {TOKEN}\x01\x01").as_bytes()).into_bytes());
    out
}

struct Tx {
    id: TransactionId,
    reports: usize,
}

struct Harness<'s> {
    setup: &'s Setup,
    config: Config,
    client: Client,
    now: Instant,
    model: Model,
    limits: ReplyLimits,
    shadow: ReplyFramer,
    shadow_failed: bool,
    shadow_replies: Vec<smtp_proto::Reply>,
    held: Vec<u8>,
    held_replies: usize,
    tls_up: bool,
    handshake_pending: Option<bool>,
    closed: Option<Option<Error>>,
    closed_count: usize,
    ready: bool,
    txs: Vec<Tx>,
    reports: Vec<TransactionReport>,
    /// (transaction, bytes of its body written so far)
    writer: Option<(usize, usize)>,
    /// `back_to_back`: the first message's body is finished, the second starts as soon as the client takes it.
    next_pending: bool,
    handshake_now: bool,
    closing: bool,
    quit_called: bool,
    secrets: Vec<Vec<u8>>,
    step: usize,
}

/// Runs a script, checking every invariant; panics on a violation.
pub fn run_script(script: &Script) -> Summary {
    let setup = &script.setup;
    let config = config(setup);
    let start = origin();
    let limits = config.reply_limits;
    let implicit = config.tls == TlsPolicy::Implicit;
    let client = Client::new(config.clone(), start);
    let model = Model::new(
        setup.lmtp,
        config.client_id.as_str(),
        implicit,
        setup.pipelining,
    );
    let mut h = Harness {
        setup,
        config,
        client,
        now: start,
        model,
        limits,
        shadow: ReplyFramer::new(limits),
        shadow_failed: false,
        shadow_replies: Vec::new(),
        held: Vec::new(),
        held_replies: 0,
        tls_up: false,
        handshake_pending: None,
        closed: None,
        closed_count: 0,
        ready: false,
        txs: Vec::new(),
        reports: Vec::new(),
        writer: None,
        next_pending: false,
        handshake_now: false,
        closing: false,
        quit_called: false,
        secrets: secret_patterns(),
        step: 0,
    };
    h.pump();
    for (i, step) in script.steps.iter().enumerate() {
        h.step = i;
        h.run_step(step);
    }
    h.step = script.steps.len();
    h.flush_held();
    let open_at_end = h.closed.is_none();
    if h.closed.is_none() {
        h.client.receive_eof(h.now);
        h.pump();
        h.check(h.closed.is_some(), "still open after EOF");
    }
    h.check(h.closed_count == 1, "Closed not emitted exactly once");
    for (i, t) in h.txs.iter().enumerate() {
        h.check(
            t.reports == 1,
            &format!("transaction {i} has {} reports", t.reports),
        );
    }
    Summary {
        closed: h.closed.clone().flatten(),
        reports: h.reports,
        ready: h.ready,
        replies: h.model.replies.len(),
        wire: h.model.wire,
        open_at_end,
    }
}

impl Harness<'_> {
    #[track_caller]
    fn check(&self, ok: bool, what: &str) {
        if !ok {
            self.fail(what);
        }
    }

    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        panic!(
            "session invariant violated at step {}: {what}\nwire so far: {:?}\nreplies processed: {:?}",
            self.step,
            String::from_utf8_lossy(&self.model.wire),
            self.model.replies,
        );
    }

    /// A reply the client reports against the one the model matched. In a batch that ends with `Closed`, the client
    /// may report replies to commands it queued and then discarded unsent (replies that came in the same read,
    /// before their command was handed out): the model has no slot for those.
    fn same(&self, model: Option<&smtp_proto::Reply>, client: Option<&smtp_proto::Reply>) -> bool {
        model == client || (self.closing && model.is_none() && self.model.unmatched() > 0)
    }

    fn tls_policy_satisfied(&self) -> bool {
        self.tls_up
            || matches!(
                self.config.tls,
                TlsPolicy::None | TlsPolicy::StartTlsOpportunistic
            )
    }

    fn run_step(&mut self, step: &Step) {
        match step {
            Step::Auto {
                kind,
                flags,
                delivery,
            } => {
                let slot = self.model.target(self.held_replies);
                let bytes = auto_reply(slot, *kind, *flags);
                self.held_replies += 1;
                self.send(bytes, delivery.hold, &delivery.cuts);
            }
            Step::Raw { bytes, delivery } => {
                self.send(bytes.clone(), delivery.hold, &delivery.cuts)
            }
            Step::Reply {
                code,
                lines,
                text,
                bare_lf,
                delivery,
            } => {
                let mut bytes = Vec::new();
                let n = 1 + usize::from(*lines % 4);
                for i in 0..n {
                    let sep = if i + 1 == n { ' ' } else { '-' };
                    bytes.extend_from_slice(format!("{code:03}{sep}").as_bytes());
                    bytes.extend_from_slice(text);
                    bytes.extend_from_slice(if *bare_lf { b"\n" } else { b"\r\n" });
                }
                self.held_replies += 1;
                self.send(bytes, delivery.hold, &delivery.cuts);
            }
            Step::Flood { shape, len } => {
                let len = usize::from(*len % 9000);
                let bytes = match shape % 4 {
                    0 => [b"250-".to_vec(), vec![b'a'; len]].concat(),
                    1 => b"250-x\r\n".repeat(len / 7 + 1),
                    2 => [b"250 ".to_vec(), vec![b'b'; len], b"\r\n".to_vec()].concat(),
                    _ => [vec![b'!'; len], b"\r\n".to_vec()].concat(),
                };
                self.send(bytes, false, &[]);
            }
            Step::Eof => {
                self.flush_held();
                let was_closed = self.closed.is_some();
                self.client.receive_eof(self.now);
                self.pump();
                self.check(self.closed.is_some(), "still open after EOF");
                // Unless the application asked to quit (QUIT sent or still queued), an EOF is a lost connection
                // (or, after a refused greeting, the refusal).
                if !was_closed && !self.quit_called {
                    let kind = self
                        .closed
                        .as_ref()
                        .and_then(|e| e.as_ref())
                        .map(Error::kind);
                    self.check(
                        matches!(
                            kind,
                            Some(ErrorKind::ConnectionClosed | ErrorKind::GreetingRejected)
                        ),
                        "EOF not reported as ConnectionClosed",
                    );
                }
            }
            Step::Tick { seconds } => {
                let deadline = self.client.poll_timeout();
                self.now += Duration::from_secs(u64::from(*seconds % 4000));
                self.timeout(deadline);
            }
            Step::FireDeadline => {
                let Some(deadline) = self.client.poll_timeout() else {
                    return;
                };
                self.check(deadline > self.now, "a deadline in the past");
                self.now = deadline - Duration::from_nanos(1);
                self.timeout(Some(deadline));
                self.now = deadline;
                self.timeout(Some(deadline));
            }
            Step::Handshake { ok } => {
                match self.handshake_pending {
                    Some(_) => self.complete_handshake(*ok),
                    None => self.misuse(2),
                }
                self.pump();
            }
            Step::Noop => {
                let (before, was_closed) = (self.client.poll_timeout(), self.client.is_closed());
                let idle = self.client.is_idle();
                let result = self.client.noop();
                self.check(result.is_ok() == idle, "noop() disagrees with is_idle()");
                if result.is_err() {
                    self.check_unchanged("a refused noop", before, was_closed);
                }
                self.pump();
            }
            Step::Quit => {
                let was_closed = self.closed.is_some();
                self.quit_called = true;
                self.client.quit();
                self.pump();
                if !was_closed && let Some(error) = &self.closed {
                    self.check(error.is_none(), "quit() closed with an error");
                }
            }
            Step::Misuse { which } => {
                self.misuse(*which);
                self.pump();
            }
        }
    }

    /// Server bytes: held for the next step, or delivered with what was held.
    fn send(&mut self, bytes: Vec<u8>, hold: bool, cuts: &[u16]) {
        self.held.extend_from_slice(&bytes);
        if !hold {
            let all = std::mem::take(&mut self.held);
            self.held_replies = 0;
            self.deliver(&all, cuts);
        }
    }

    fn flush_held(&mut self) {
        if !self.held.is_empty() {
            let all = std::mem::take(&mut self.held);
            self.held_replies = 0;
            self.deliver(&all, &[]);
        }
    }

    fn deliver(&mut self, bytes: &[u8], cuts: &[u16]) {
        for piece in split_at_cuts(bytes, cuts) {
            self.now += Duration::from_millis(1);
            if !self.shadow_failed && self.closed.is_none() {
                let mut input = piece;
                loop {
                    let result = self.shadow.push(&mut input);
                    check_buffered(&self.shadow, &self.limits);
                    match result {
                        Ok(Some(reply)) => self.shadow_replies.push(reply),
                        Ok(None) => break,
                        Err(_) => {
                            self.shadow_failed = true;
                            break;
                        }
                    }
                }
            }
            let open = self.closed.is_none();
            let in_handshake = self.handshake_pending.is_some();
            let (deadline, replies, written) = (
                self.client.poll_timeout(),
                self.model.replies.len(),
                self.model.wire.len(),
            );
            self.client.receive(self.now, piece);
            if open && in_handshake && !piece.is_empty() {
                // RFC 3207 §4.2: bytes before the handshake are an injection (or, with implicit TLS, not TLS).
                self.check(
                    self.client.is_closed(),
                    "bytes during a TLS handshake did not close the session",
                );
                self.handshake_pending = None;
            }
            self.pump();
            // Only a complete reply is progress: a server that dribbles bytes cannot push the deadline back.
            if self.closed.is_none()
                && self.model.replies.len() == replies
                && self.model.wire.len() == written
            {
                self.check(
                    self.client.poll_timeout() == deadline,
                    "bytes without a complete reply moved the deadline",
                );
            }
        }
    }

    fn timeout(&mut self, deadline: Option<Instant>) {
        let was_closed = self.closed.is_some();
        self.client.handle_timeout(self.now);
        if deadline.is_none_or(|d| self.now < d) {
            let event = self.client.poll_event();
            self.check(event.is_none(), "an early handle_timeout produced an event");
            let bytes = self.client.poll_transmit(self.now);
            self.check(bytes.is_none(), "an early handle_timeout produced bytes");
            self.check(
                self.client.is_closed() == was_closed,
                "an early handle_timeout changed the state",
            );
        } else if !was_closed {
            self.check(
                self.client.is_closed(),
                "a passed deadline did not close the session",
            );
        }
        self.pump();
    }

    /// Completes the pending handshake (the caller pumps afterwards).
    fn complete_handshake(&mut self, ok: bool) {
        let implicit = self.handshake_pending.take().expect("pending");
        // The session may have closed since the request (bytes injected after the 220, in the same read).
        let closed = self.client.is_closed();
        if ok {
            let result = self.client.tls_established(self.now);
            if closed {
                self.check(
                    result.is_err(),
                    "tls_established accepted on a closed session",
                );
                return;
            }
            self.check(result.is_ok(), "tls_established refused after StartTls");
            self.tls_up = true;
            self.model.tls_started(implicit);
        } else {
            self.client.tls_failed(self.now, b"", "handshake failed");
            self.check(self.client.is_closed(), "tls_failed did not close");
        }
    }

    /// After a refused command, with the event queue drained before it: nothing to send, no event, the same
    /// deadline (`before`) and state.
    fn check_unchanged(&mut self, what: &str, before: Option<Instant>, was_closed: bool) {
        self.check(
            self.client.poll_timeout() == before,
            &format!("{what} moved the deadline"),
        );
        self.check(
            self.client.is_closed() == was_closed,
            &format!("{what} changed the state"),
        );
        let event = self.client.poll_event();
        self.check(
            event.is_none(),
            &format!("{what} produced an event: {event:?}"),
        );
        let bytes = self.client.poll_transmit(self.now);
        self.check(bytes.is_none(), &format!("{what} produced bytes"));
    }

    /// API misuse that must fail and change nothing (called with the event queue drained).
    fn misuse(&mut self, which: u8) {
        let in_tx = self.txs.last().is_some_and(|t| t.reports == 0);
        // A transaction whose body is not finished has not sent its end: nothing may start behind it (once the end
        // is out, PIPELINING lets the next one start; this harness runs one at a time).
        let body_open = in_tx
            && self
                .model
                .txs
                .last()
                .is_some_and(|t| t.finished_at.is_none());
        let (before, was_closed) = (self.client.poll_timeout(), self.client.is_closed());
        match which % 5 {
            0 if body_open || !self.ready || self.closed.is_some() => {
                let result = self.client.send_mail(self.envelope(0));
                self.check(
                    result.is_err(),
                    "send_mail accepted during a transaction or before Ready",
                );
                self.check_unchanged("a refused send_mail", before, was_closed);
            }
            1 if self.writer.is_none() && !in_tx => {
                let result = self.client.finish_body();
                self.check(
                    result.is_err(),
                    "finish_body accepted without a transaction",
                );
                self.check_unchanged("a refused finish_body", before, was_closed);
            }
            2 if self.handshake_pending.is_none() => {
                let result = self.client.tls_established(self.now);
                self.check(
                    matches!(result, Err(UsageError::TlsNotExpected)),
                    "tls_established without a handshake request was not TlsNotExpected",
                );
                self.check_unchanged("a refused tls_established", before, was_closed);
            }
            3 if !in_tx => {
                let result = self.client.write_body(b"stray");
                self.check(result.is_err(), "write_body accepted without a transaction");
                self.check_unchanged("a refused write_body", before, was_closed);
            }
            4 => {
                // The harness never turns `token_refresh` on, so no refused token can be waiting.
                let result = self
                    .client
                    .retry_auth(Credentials::oauth2(USER, TOKEN), self.now);
                self.check(
                    matches!(result, Err(UsageError::NoAuthToRetry)),
                    "retry_auth accepted without a refused token waiting",
                );
                self.check_unchanged("a refused retry_auth", before, was_closed);
            }
            _ => {}
        }
    }

    fn envelope(&self, n: usize) -> Envelope {
        let mut e = if n == 0 {
            Envelope::new(
                ReversePath::Mailbox("sender@example.org".parse().expect("valid")),
                [
                    "rcpt1@example.net",
                    "rcpt2@example.net",
                    "rcpt3@example.net",
                ]
                .map(|a| a.parse().expect("valid")),
            )
        } else {
            Envelope::new(
                ReversePath::Null,
                ["rcpt4@example.net".parse().expect("valid")],
            )
        };
        if self.setup.declare_size {
            e = e.with_size(self.setup.bodies[n].len() as u64);
        }
        if self.setup.eight_bit {
            e = e.with_body_type(smtp_proto::BodyType::EightBitMime);
        }
        e
    }

    fn start_message(&mut self, n: usize) {
        let envelope = self.envelope(n);
        let recipients = envelope.recipients.len();
        match self.client.send_mail(envelope) {
            Ok(id) => {
                self.txs.push(Tx { id, reports: 0 });
                self.model.txs.push(model::TxModel {
                    recipients,
                    ..Default::default()
                });
            }
            Err(_) => {
                self.quit_called = true;
                self.client.quit();
            }
        }
    }

    /// Drains outputs and reacts to events until nothing happens, checking as it goes.
    fn pump(&mut self) {
        loop {
            self.sync_transcript();
            while let Some(bytes) = self.client.poll_transmit(self.now) {
                self.written(&bytes);
            }
            self.sync_transcript();
            let mut acted = false;
            // The whole batch first: if the session closed while reading, commands it had queued (and already got
            // premature replies to) were discarded unsent, so the model cannot know them; see `same`.
            let events: Vec<Event> = std::iter::from_fn(|| self.client.poll_event()).collect();
            self.closing = events.iter().any(|e| matches!(e, Event::Closed { .. }));
            for event in events {
                self.on_event(event);
                acted = true;
            }
            acted |= self.write_body();
            acted |= self.start_back_to_back();
            if std::mem::take(&mut self.handshake_now) && self.handshake_pending.is_some() {
                self.complete_handshake(true);
                acted = true;
            }
            if !acted {
                break;
            }
        }
        self.after_pump();
    }

    fn written(&mut self, bytes: &[u8]) {
        self.check(self.closed.is_none(), "bytes transmitted after Closed");
        self.check(!bytes.is_empty(), "an empty transmit");
        self.check(
            self.handshake_pending.is_none(),
            "bytes transmitted during a TLS handshake",
        );
        if self.config.tls == TlsPolicy::Implicit && !self.tls_up {
            self.fail("bytes transmitted before the implicit TLS handshake");
        }
        let guarded =
            self.config.credentials.is_some() && !self.config.allow_insecure_auth && !self.tls_up;
        if guarded
            && let Some(p) = self
                .secrets
                .iter()
                .find(|p| super::reference::find(bytes, p).is_some())
        {
            self.fail(&format!(
                "credentials before TLS: {:?}",
                String::from_utf8_lossy(p)
            ));
        }
        let auth_allowed = self.tls_up || self.config.allow_insecure_auth;
        let tx_allowed = self.tls_policy_satisfied();
        if let Err(v) = self
            .model
            .written(bytes, self.tls_up, auth_allowed, tx_allowed)
        {
            self.fail(&v);
        }
    }

    /// Replies the client processed, in order, from the transcript; checks that transcripts show no secret.
    fn sync_transcript(&mut self) {
        while let Some(entry) = self.client.poll_transcript() {
            check_printable(&entry.text);
            match entry.direction {
                Direction::Client => {
                    if let Some(p) = self
                        .secrets
                        .iter()
                        .find(|p| super::reference::find(entry.text.as_bytes(), p).is_some())
                    {
                        self.fail(&format!(
                            "a credential in the transcript: {:?}",
                            String::from_utf8_lossy(p)
                        ));
                    }
                }
                Direction::Server => {
                    let i = self.model.replies.len();
                    let Some(reply) = self.shadow_replies.get(i).cloned() else {
                        self.fail("the client processed a reply the shadow framer did not see");
                    };
                    self.check(
                        entry.text == reply.to_string(),
                        "the client's reply differs from the shadow framer's",
                    );
                    self.model.processed(reply);
                }
            }
        }
    }

    fn tx_index(&self, id: TransactionId) -> usize {
        match self.txs.iter().position(|t| t.id == id) {
            Some(i) => i,
            None => self.fail(&format!("an event for unknown transaction {id:?}")),
        }
    }

    fn on_event(&mut self, event: Event) {
        if self.closed.is_some() {
            self.fail(&format!("an event after Closed: {event:?}"));
        }
        match event {
            Event::StartTls => {
                self.check(
                    self.config.tls != TlsPolicy::None,
                    "StartTls with TlsPolicy::None",
                );
                self.check(
                    !self.tls_up && self.handshake_pending.is_none(),
                    "a second StartTls",
                );
                let implicit = self.config.tls == TlsPolicy::Implicit;
                self.check(
                    implicit || self.model.starttls_seen,
                    "StartTls without STARTTLS",
                );
                self.handshake_pending = Some(implicit);
                if implicit {
                    self.check(self.model.wire.is_empty(), "implicit StartTls after bytes");
                } else if !self.closing {
                    // RFC 3207 §4.2 (CVE-2011-0411): the 220 must be the last thing read; anything after it would be
                    // an injection the client has to refuse, not process.
                    let starttls = self
                        .model
                        .slots
                        .iter()
                        .rposition(|s| s.kind == model::SlotKind::StartTls);
                    let last = self.model.replies.len().checked_sub(1);
                    self.check(
                        starttls
                            .is_some_and(|i| self.model.slots[i].replies.last().copied() == last)
                            && self.shadow_replies.len() == self.model.replies.len()
                            && self.shadow.is_empty(),
                        "the session goes on to TLS with bytes read after the 220",
                    );
                }
                if self.setup.auto_handshake {
                    self.handshake_now = true;
                }
            }
            Event::Ready {
                capabilities,
                tls,
                authenticated,
            } => {
                self.check(!self.ready, "Ready twice");
                // In a read that ended the session, Ready may rest on a reply to a command queued and then discarded.
                let unknown = self.closing && self.model.unmatched() > 0;
                self.ready = true;
                self.check(tls == self.tls_up, "Ready.tls is wrong");
                if matches!(
                    self.config.tls,
                    TlsPolicy::StartTlsRequired | TlsPolicy::Implicit
                ) {
                    self.check(tls, "Ready without TLS under a policy that requires it");
                }
                self.check(
                    authenticated == self.config.credentials.is_some(),
                    "Ready.authenticated is wrong",
                );
                if self.tls_up && !unknown {
                    self.check(
                        self.model.hello_since_tls,
                        "Ready on capabilities learnt before TLS",
                    );
                }
                // The capabilities are those of the last EHLO/LHLO reply (none after HELO).
                let hello = self
                    .model
                    .slots
                    .iter()
                    .rposition(|s| matches!(s.kind, model::SlotKind::Hello { .. }));
                let expected = match hello.map(|i| (i, self.model.slots[i].kind)) {
                    Some((i, model::SlotKind::Hello { helo: false })) => {
                        self.model.reply(Some(i)).map(Capabilities::from_ehlo)
                    }
                    _ => Some(Capabilities::none()),
                };
                self.check(
                    unknown || Some(capabilities) == expected,
                    "Ready.capabilities are not the last EHLO reply's",
                );
                self.start_message(0);
            }
            Event::RecipientReply { id, index, reply } => {
                let k = self.tx_index(id);
                self.check(
                    index < self.model.txs[k].recipients,
                    "RecipientReply index out of range",
                );
                let slot = self.model.txs[k].rcpts.get(index).copied();
                self.check(
                    self.same(self.model.reply(slot), Some(&reply)),
                    "RecipientReply is not the RCPT's reply",
                );
            }
            Event::ReadyForBody { id } => {
                let k = self.tx_index(id);
                let t = &self.model.txs[k];
                let data_mode = self
                    .model
                    .reply(t.data)
                    .is_some_and(|r| r.code().get() == 354);
                if data_mode {
                    self.model.txs[k].data_body_expected = true;
                } else {
                    self.check(t.data.is_none(), "ReadyForBody after DATA without 354");
                }
                self.check(self.writer.is_none(), "ReadyForBody twice");
                self.writer = Some((k, 0));
            }
            Event::TransactionComplete(report) => {
                let k = self.tx_index(report.id);
                self.txs[k].reports += 1;
                self.check(self.txs[k].reports == 1, "two reports for one transaction");
                if self.writer.is_some_and(|(w, _)| w == k) {
                    self.writer = None;
                }
                self.check_report(k, &report);
                self.reports.push(*report);
                if k == 0 {
                    if self.txs.len() == 1 {
                        self.next_pending = false;
                        self.start_message(1);
                    }
                } else {
                    self.quit_called = true;
                    self.client.quit();
                }
            }
            Event::NoopReply { reply } => {
                let slot = self
                    .model
                    .slots
                    .iter()
                    .rposition(|s| s.kind == model::SlotKind::Noop);
                self.check(
                    self.same(self.model.reply(slot), Some(&reply)),
                    "NoopReply is not the NOOP's reply",
                );
            }
            Event::Closed { error } => {
                self.closed_count += 1;
                self.check(self.closed_count == 1, "Closed twice");
                self.check(self.client.is_closed(), "Closed but is_closed() is false");
                self.closed = Some(error);
                self.writer = None;
                self.handshake_pending = None;
            }
            other => self.fail(&format!("an unknown event {other:?}")),
        }
    }

    /// Writes body bytes while the client takes them; returns whether anything happened.
    fn write_body(&mut self) -> bool {
        let Some((k, mut offset)) = self.writer else {
            return false;
        };
        let body = &self.setup.bodies[k.min(1)];
        let mut acted = false;
        while offset < body.len() {
            let size = if self.setup.write_size == 0 {
                body.len()
            } else {
                usize::from(self.setup.write_size)
            };
            let end = (offset + size).min(body.len());
            match self.client.write_body(&body[offset..end]) {
                Ok(0) => break,
                Ok(n) => {
                    self.check(n <= end - offset, "write_body took more than offered");
                    self.model.txs[k]
                        .body
                        .extend_from_slice(&body[offset..offset + n]);
                    offset += n;
                    acted = true;
                }
                Err(_) => {
                    self.writer = None;
                    return acted;
                }
            }
        }
        if offset < body.len() {
            self.writer = Some((k, offset));
            return acted;
        }
        if self.client.finish_body().is_ok() {
            self.model.txs[k].finished_at = Some(self.model.replies.len());
            self.next_pending = self.setup.back_to_back && k == 0;
        }
        self.writer = None;
        true
    }

    /// `back_to_back`: starts the second message behind the first one's end of data once the client takes it
    /// (it must not before that end is out, with PIPELINING, and without a failure). The first message's bytes are
    /// written out first, so the model reads its end before the second transaction exists.
    fn start_back_to_back(&mut self) -> bool {
        if !self.next_pending || self.txs.len() != 1 || self.closed.is_some() {
            return false;
        }
        self.sync_transcript();
        while let Some(bytes) = self.client.poll_transmit(self.now) {
            self.written(&bytes);
        }
        self.sync_transcript();
        if !self.client.accepts_mail() {
            return false;
        }
        let first = &self.model.txs[0];
        self.check(
            self.setup.pipelining && first.end.is_some(),
            "accepts_mail behind a transaction whose end is not out, or without PIPELINING",
        );
        self.next_pending = false;
        self.start_message(1);
        true
    }

    fn after_pump(&mut self) {
        if self.closed.is_some() {
            self.check(
                self.client.poll_timeout().is_none(),
                "a deadline after Closed",
            );
            self.check(self.client.is_closed(), "is_closed() false after Closed");
            let bytes = self.client.poll_transmit(self.now);
            self.check(bytes.is_none(), "bytes after Closed");
            return;
        }
        self.check(
            !self.client.is_closed(),
            "is_closed() without a Closed event",
        );
        self.check(
            !self.shadow_failed,
            "the reply stream broke a cap or the grammar and the session is open",
        );
        self.check(
            self.model.replies.len() == self.shadow_replies.len(),
            "the client did not process every complete reply",
        );
        self.check(
            self.model.unmatched() == 0,
            "a reply no command asked for, and the session is open",
        );
        let awaiting = self.model.outstanding() > 0
            || self.handshake_pending.is_some()
            || self.writer.is_some();
        let timeout = self.client.poll_timeout();
        if awaiting {
            self.check(
                timeout.is_some(),
                "waiting for the server without a deadline",
            );
        }
        self.check(
            timeout.is_none_or(|t| t > self.now),
            "a deadline in the past",
        );
        // No stage waits longer than the longest stage timeout (10 minutes after the data, RFC 5321 §4.5.3.2).
        let longest = self
            .config
            .timeouts
            .for_stage(smtp_proto::Stage::DataTermination);
        self.check(
            timeout.is_none_or(|t| t <= self.now + longest),
            "a deadline further than any stage timeout",
        );
        if self.client.is_idle() {
            self.check(
                self.model.outstanding() == 0,
                "is_idle() with replies outstanding",
            );
        }
    }

    /// The honest-outcome oracle.
    fn check_report(&self, k: usize, report: &TransactionReport) {
        let m = &self.model;
        let t = &m.txs[k];
        self.check(
            report.recipients.len() == t.recipients,
            "report recipient count",
        );
        self.check(
            self.same(m.reply(t.mail), report.mail_reply.as_ref()),
            "report.mail_reply is not the MAIL reply",
        );
        for (i, r) in report.recipients.iter().enumerate() {
            self.check(
                self.same(m.reply(t.rcpts.get(i).copied()), r.rcpt_reply.as_ref()),
                "report rcpt_reply",
            );
            if r.accepted {
                self.check(
                    r.rcpt_reply
                        .as_ref()
                        .is_some_and(|x| x.is_positive_completion())
                        && r.data_reply
                            .as_ref()
                            .is_some_and(|x| x.is_positive_completion()),
                    "a recipient marked accepted without positive RCPT and data replies",
                );
            }
        }
        let finals = m.finals(k);
        let accepted = report.accepted_count();
        let delivered = report.outcome.is_delivered();
        match report.outcome {
            Outcome::Accepted => self.check(
                accepted == t.recipients,
                "Accepted but not every recipient accepted",
            ),
            Outcome::PartiallyAccepted => self.check(
                accepted > 0 && accepted < t.recipients,
                "PartiallyAccepted count",
            ),
            _ => self.check(
                accepted == 0,
                "not delivered but a recipient is marked accepted",
            ),
        }
        if report.outcome == Outcome::Rejected {
            self.check(report.failure.is_some(), "Rejected without a failure");
        }
        if report.outcome == Outcome::NotSent {
            self.check(
                t.end.is_none(),
                "NotSent but the end of the data was written",
            );
        }
        if report.outcome == Outcome::Unknown {
            self.check(!m.verdict_complete(k), "Unknown despite a complete verdict");
        }
        if !m.lmtp {
            self.check(
                self.same(m.reply(t.end), report.final_reply.as_ref()),
                "report.final_reply is not the verdict",
            );
        }
        if delivered {
            // (Only a 421 among LMTP verdicts leaves a failure next to verdicts already received.)
            let failure_at_end = m.lmtp
                && report
                    .failure
                    .as_ref()
                    .is_some_and(|f| f.0 == smtp_proto::Stage::DataTermination);
            self.check(
                report.failure.is_none() || failure_at_end,
                "delivered with a failure",
            );
            self.check(
                t.end.is_some(),
                "delivered but the end of the data was never written",
            );
            self.check(
                m.reply(t.mail).is_some_and(|r| r.is_positive_completion()),
                "delivered after MAIL was refused",
            );
            let finished_at = t.finished_at.unwrap_or(usize::MAX);
            let positive_after_finish = finals
                .iter()
                .any(|&(i, r)| i >= finished_at && r.is_positive_completion());
            self.check(
                positive_after_finish,
                "delivered without a positive reply after the end of the data",
            );
            if m.lmtp {
                // Each accepted recipient's verdict is the reply matched to it, in RCPT order.
                let accepted_rcpts: Vec<usize> = (0..t.rcpts.len())
                    .filter(|&i| {
                        m.reply(Some(t.rcpts[i]))
                            .is_some_and(|r| r.is_positive_completion())
                    })
                    .collect();
                for (j, &i) in accepted_rcpts.iter().enumerate() {
                    let r = &report.recipients[i];
                    if r.accepted {
                        let verdict = finals.get(j);
                        self.check(
                            verdict.is_some_and(|&(n, v)| {
                                n >= finished_at && Some(v) == r.data_reply.as_ref()
                            }),
                            "an LMTP recipient accepted without its own positive verdict",
                        );
                    }
                }
            } else {
                let verdict = finals.first();
                self.check(
                    verdict.is_some_and(|&(n, v)| n >= finished_at && v.is_positive_completion()),
                    "accepted without a positive final reply after the end of the data",
                );
            }
        }
        // The other way round: a clean transaction with a complete positive verdict is reported delivered.
        if m.verdict_complete(k) && !m.tx_failed(k) && m.accepted(k) > 0 && t.finished_at.is_some()
        {
            let positive = if m.lmtp {
                finals.iter().any(|(_, r)| r.is_positive_completion())
            } else {
                finals
                    .first()
                    .is_some_and(|(_, r)| r.is_positive_completion())
            };
            if positive {
                self.check(
                    delivered,
                    "a positive verdict for a valid transaction reported as not delivered",
                );
            }
        }
    }
}

/// Renders a reply for seeds and tests.
pub fn reply_bytes(code: u16, lines: &[&str]) -> Vec<u8> {
    let lines: Vec<String> = lines.iter().map(|s| (*s).to_owned()).collect();
    render(code, &lines, false)
}
