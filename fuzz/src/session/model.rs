//! The server model: reads what the client wrote as a server would (command lines, dot-stuffed DATA bodies, counted
//! BDAT chunks), lists the replies the client owes an answer to in RFC 2920 order, matches the replies the client
//! processed against them, and renders the reply a server would give to the next one.
//!
//! It is written from the RFCs' point of view, not from the client's code: it is what the targets compare the
//! client's events and reports against.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use smtp_proto::Reply;

use super::super::reference;
use super::script::Kind;

/// The AUTH mechanisms the model understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mech {
    /// PLAIN.
    Plain,
    /// LOGIN.
    Login,
    /// CRAM-MD5.
    CramMd5,
    /// XOAUTH2.
    XOAuth2,
    /// OAUTHBEARER.
    OAuthBearer,
    /// Another valid SASL name (SCRAM-SHA-256...).
    Other,
}

/// What a reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    /// The greeting (no command).
    Greeting,
    /// EHLO, HELO or LHLO.
    Hello {
        /// HELO: no extensions.
        helo: bool,
    },
    /// STARTTLS.
    StartTls,
    /// An AUTH command (`round` 0, `initial`: with an initial response) or the `round`-th response line.
    Auth {
        /// The mechanism.
        mech: Mech,
        /// Whether the AUTH line carried an initial response.
        initial: bool,
        /// 0 for the AUTH line, then 1, 2... for response lines.
        round: u8,
    },
    /// MAIL FROM of transaction `.0`.
    Mail(usize),
    /// RCPT TO of transaction `.0`, recipient `.1`.
    Rcpt(usize, usize),
    /// DATA of transaction `.0`.
    Data(usize),
    /// A non-last BDAT chunk of transaction `.0`.
    Bdat(usize),
    /// The lone dot after a DATA accepted without recipients (RFC 2920 §3.1).
    Discard(usize),
    /// The end of the data (terminator or `BDAT ... LAST`) of transaction `.0`.
    Final(usize),
    /// RSET.
    Rset,
    /// NOOP.
    Noop,
    /// QUIT.
    Quit,
}

/// One expected reply (several for an LMTP final).
#[derive(Clone, Debug)]
pub struct Slot {
    /// What it answers.
    pub kind: SlotKind,
    /// Indexes (in processing order) of the replies matched to it.
    pub replies: Vec<usize>,
}

/// What the model knows of one transaction.
#[derive(Clone, Debug, Default)]
pub struct TxModel {
    /// Envelope size.
    pub recipients: usize,
    /// The body bytes `write_body` took.
    pub body: Vec<u8>,
    /// `finish_body` was called, with this many replies processed at that moment.
    pub finished_at: Option<usize>,
    /// `ReadyForBody` was seen for a DATA-mode transaction (the body follows DATA).
    pub data_body_expected: bool,
    /// Slot indexes.
    pub mail: Option<usize>,
    /// Slot per recipient, in envelope order.
    pub rcpts: Vec<usize>,
    /// The DATA slot.
    pub data: Option<usize>,
    /// Non-last BDAT chunk slots.
    pub chunks: Vec<usize>,
    /// The end-of-data slot (transmitted when set).
    pub end: Option<usize>,
    /// Dot-stuffed DATA bytes read so far (terminator included at the end).
    pub data_wire: Vec<u8>,
    /// BDAT payloads read so far.
    pub bdat_payload: Vec<u8>,
}

/// How the model reads the client's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Command,
    /// Right after a DATA line: body or commands, depending on whether the client was told to send the body.
    AfterData(usize),
    DataBody(usize),
    Bdat {
        tx: usize,
        remaining: u64,
        last: bool,
    },
}

/// The model of the server side of one session.
#[derive(Debug)]
pub struct Model {
    /// LMTP (several final replies).
    pub lmtp: bool,
    /// The client name expected in EHLO.
    pub client_id: String,
    /// Expected replies, in order.
    pub slots: Vec<Slot>,
    /// Replies the client processed, in order.
    pub replies: Vec<Reply>,
    /// The first reply not yet matched to a slot.
    next_reply: usize,
    /// The slot the next reply goes to.
    cursor: usize,
    /// Transactions, in `send_mail` order.
    pub txs: Vec<TxModel>,
    /// Everything the client wrote.
    pub wire: Vec<u8>,
    pos: usize,
    mode: Mode,
    /// The last command line opened or continued an AUTH exchange.
    auth_open: Option<(Mech, bool, u8)>,
    /// QUIT was read.
    pub quit_seen: bool,
    /// STARTTLS was read.
    pub starttls_seen: bool,
    /// The client may pipeline: the configuration allows it and the last EHLO reply advertised PIPELINING.
    pub pipelining: bool,
    /// The configuration allows pipelining.
    pub pipelining_allowed: bool,
    /// An EHLO/HELO/LHLO was sent since the connection became encrypted (RFC 3207 §4.2: capabilities learnt in
    /// plaintext are forgotten).
    pub hello_since_tls: bool,
}

/// A protocol violation found in the client's bytes.
pub type Violation = String;

impl Model {
    /// A model for a session; the greeting is awaited at once unless TLS is implicit.
    pub fn new(lmtp: bool, client_id: &str, implicit_tls: bool, pipelining_allowed: bool) -> Self {
        let mut m = Self {
            lmtp,
            client_id: client_id.to_owned(),
            slots: Vec::new(),
            replies: Vec::new(),
            next_reply: 0,
            cursor: 0,
            txs: Vec::new(),
            wire: Vec::new(),
            pos: 0,
            mode: Mode::Command,
            auth_open: None,
            quit_seen: false,
            starttls_seen: false,
            pipelining: false,
            pipelining_allowed,
            hello_since_tls: false,
        };
        if !implicit_tls {
            m.push_slot(SlotKind::Greeting);
        }
        m
    }

    /// After an implicit-TLS handshake the greeting comes.
    fn expect_greeting(&mut self) {
        self.push_slot(SlotKind::Greeting);
    }

    fn push_slot(&mut self, kind: SlotKind) -> usize {
        self.slots.push(Slot {
            kind,
            replies: Vec::new(),
        });
        self.match_replies();
        self.slots.len() - 1
    }

    /// A reply the client processed.
    pub fn processed(&mut self, reply: Reply) {
        self.replies.push(reply);
        self.match_replies();
    }

    /// Replies the client processed that no command asked for (yet).
    pub fn unmatched(&self) -> usize {
        self.replies.len() - self.next_reply
    }

    /// Slots that still wait for a reply (counting an LMTP final as one).
    pub fn outstanding(&self) -> usize {
        self.slots.len() - self.cursor
    }

    /// The reply matched to slot `i`, if any (the first, for an LMTP final).
    pub fn reply(&self, slot: Option<usize>) -> Option<&Reply> {
        slot.and_then(|s| self.slots[s].replies.first())
            .map(|&r| &self.replies[r])
    }

    /// How many replies slot `i` takes.
    fn needs(&self, i: usize) -> usize {
        match self.slots[i].kind {
            SlotKind::Final(tx) if self.lmtp => match self.tx_failed(tx) {
                false => self.accepted(tx).max(1),
                true => 1,
            },
            _ => 1,
        }
    }

    fn match_replies(&mut self) {
        while self.next_reply < self.replies.len() && self.cursor < self.slots.len() {
            let need = self.needs(self.cursor);
            let reply = &self.replies[self.next_reply];
            let slot = &mut self.slots[self.cursor];
            if let SlotKind::Hello { helo } = slot.kind {
                // RFC 2920 §3.1: PIPELINING is advertised by an EHLO keyword line (never by HELO).
                self.pipelining = self.pipelining_allowed
                    && !helo
                    && reply.is_positive_completion()
                    && reply.lines().skip(1).any(|l| {
                        let word = l
                            .split(|&b| b == b' ')
                            .find(|w| !w.is_empty())
                            .unwrap_or_default();
                        word.eq_ignore_ascii_case(b"PIPELINING")
                    });
            }
            slot.replies.push(self.next_reply);
            self.next_reply += 1;
            if slot.replies.len() >= need {
                self.cursor += 1;
            }
        }
    }

    /// Recipients of transaction `tx` accepted at RCPT (2yz).
    pub fn accepted(&self, tx: usize) -> usize {
        self.txs[tx]
            .rcpts
            .iter()
            .filter(|&&s| {
                self.reply(Some(s))
                    .is_some_and(Reply::is_positive_completion)
            })
            .count()
    }

    /// The transaction failed before its end by RFC 5321/2920/3030 rules: MAIL refused, DATA not answered 354, a
    /// BDAT chunk refused. (Every RCPT refused fails it too; where this is used, no recipient accepted already
    /// decides, and the model need not know how many RCPTs a RCPTMAX limit lets the client send.)
    pub fn tx_failed(&self, tx: usize) -> bool {
        let t = &self.txs[tx];
        let refused =
            |s: Option<usize>, ok: fn(&Reply) -> bool| self.reply(s).is_some_and(|r| !ok(r));
        refused(t.mail, Reply::is_positive_completion)
            || refused(t.data, |r| r.code().get() == 354)
            || t.chunks
                .iter()
                .any(|&s| refused(Some(s), Reply::is_positive_completion))
    }

    /// The replies matched to the end of transaction `tx`, with their processing indexes.
    pub fn finals(&self, tx: usize) -> Vec<(usize, &Reply)> {
        match self.txs[tx].end {
            Some(s) => self.slots[s]
                .replies
                .iter()
                .map(|&r| (r, &self.replies[r]))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Whether every reply the end of `tx` takes has arrived.
    pub fn verdict_complete(&self, tx: usize) -> bool {
        match self.txs[tx].end {
            Some(s) => self.slots[s].replies.len() >= self.needs(s),
            None => false,
        }
    }

    /// The slot the `extra`-th reply after the ones already processed (and those `held`) would answer.
    pub fn target(&self, held: usize) -> Option<SlotKind> {
        let mut k = self.unmatched() + held;
        let mut i = self.cursor;
        let mut taken = self.slots.get(i).map_or(0, |s| s.replies.len());
        loop {
            let slot = self.slots.get(i)?;
            let need = self.needs(i);
            if taken + k < need {
                return Some(slot.kind);
            }
            k -= need - taken;
            taken = 0;
            i += 1;
        }
    }

    /// Reads newly written bytes. `tls`: the connection is encrypted; `auth_allowed`: credentials may be sent now;
    /// `tx_allowed`: MAIL may be sent now (TLS policy satisfied).
    pub fn written(
        &mut self,
        bytes: &[u8],
        tls: bool,
        auth_allowed: bool,
        tx_allowed: bool,
    ) -> Result<(), Violation> {
        if self.quit_seen && !bytes.is_empty() {
            return Err(format!(
                "bytes after QUIT: {:?}",
                bytes.escape_ascii().to_string()
            ));
        }
        self.wire.extend_from_slice(bytes);
        loop {
            if let Mode::Bdat {
                tx,
                remaining: 0,
                last,
            } = self.mode
            {
                self.mode = Mode::Command;
                let t = &self.txs[tx];
                if last {
                    let expected = reference::normalize(&t.body);
                    if t.bdat_payload != expected {
                        return Err(format!(
                            "BDAT payload {:?} is not the normalized body {:?}",
                            t.bdat_payload.escape_ascii().to_string(),
                            expected.escape_ascii().to_string()
                        ));
                    }
                }
            }
            let rest = &self.wire[self.pos..];
            if rest.is_empty() {
                return Ok(());
            }
            match self.mode {
                Mode::Bdat {
                    tx,
                    remaining,
                    last,
                } => {
                    let take = rest
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    let chunk = rest[..take].to_vec();
                    self.pos += take;
                    self.txs[tx].bdat_payload.extend_from_slice(&chunk);
                    self.mode = Mode::Bdat {
                        tx,
                        remaining: remaining - take as u64,
                        last,
                    };
                }
                Mode::AfterData(tx) => {
                    if self.reply(self.txs[tx].data).is_none() {
                        return Err("bytes after DATA before its reply (RFC 2920 §3.1)".into());
                    }
                    self.mode = if self.txs[tx].data_body_expected {
                        Mode::DataBody(tx)
                    } else {
                        Mode::Command
                    };
                }
                Mode::DataBody(tx) => {
                    let Some(end) = reference::find(rest, b"\r\n") else {
                        if rest.contains(&b'\n') {
                            return Err("bare LF in the DATA body".into());
                        }
                        return Ok(());
                    };
                    let line = rest[..end].to_vec();
                    self.pos += end + 2;
                    if line.contains(&b'\r') || line.contains(&b'\n') {
                        return Err(format!(
                            "bare CR or LF in the DATA body: {:?}",
                            line.escape_ascii().to_string()
                        ));
                    }
                    let t = &mut self.txs[tx];
                    t.data_wire.extend_from_slice(&line);
                    t.data_wire.extend_from_slice(b"\r\n");
                    if line == b"." {
                        let mut expected = reference::normalize(&t.body);
                        if !expected.is_empty() && !expected.ends_with(b"\r\n") {
                            expected.extend_from_slice(b"\r\n");
                        }
                        let decoded = reference::unstuff(&t.data_wire);
                        if decoded.as_ref() != Ok(&expected) {
                            return Err(format!(
                                "the DATA body decodes to {decoded:?}, expected {:?}",
                                expected.escape_ascii().to_string()
                            ));
                        }
                        if t.finished_at.is_none() {
                            return Err("the terminator went out before finish_body".into());
                        }
                        self.mode = Mode::Command;
                        let s = self.push_slot(SlotKind::Final(tx));
                        self.txs[tx].end = Some(s);
                    }
                }
                Mode::Command => {
                    let Some(end) = reference::find(rest, b"\r\n") else {
                        if rest.contains(&b'\n') {
                            return Err("bare LF in a command".into());
                        }
                        return Ok(());
                    };
                    let line = rest[..end].to_vec();
                    self.pos += end + 2;
                    self.command(&line, tls, auth_allowed, tx_allowed)?;
                }
            }
        }
    }

    fn current_tx(&self) -> Result<usize, Violation> {
        self.txs
            .len()
            .checked_sub(1)
            .ok_or_else(|| "a transaction command without send_mail".to_string())
    }

    /// RFC 2920 §3.1: without PIPELINING, and for the commands that must end a group (EHLO, STARTTLS, AUTH, NOOP),
    /// a command goes out only when every earlier one has its reply.
    fn in_lockstep(&self, what: &str) -> Result<(), Violation> {
        if self.outstanding() > 0 {
            return Err(format!(
                "{what} sent while {} replies are outstanding",
                self.outstanding()
            ));
        }
        Ok(())
    }

    fn command(
        &mut self,
        line: &[u8],
        tls: bool,
        auth_allowed: bool,
        tx_allowed: bool,
    ) -> Result<(), Violation> {
        let text =
            std::str::from_utf8(line).map_err(|_| "a command that is not UTF-8".to_string())?;
        if line.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("CR, LF or NUL inside a command: {text:?}"));
        }
        let auth_open = self.auth_open.take();
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        if matches!(verb, "MAIL" | "RCPT" | "DATA" | "BDAT") && !tx_allowed {
            return Err(format!("{verb} before the TLS policy was satisfied"));
        }
        let lockstep = !self.pipelining;
        match verb {
            "EHLO" | "HELO" | "LHLO" => {
                if (verb == "LHLO") != self.lmtp || arg != self.client_id {
                    return Err(format!("bad greeting command {text:?}"));
                }
                self.in_lockstep(verb)?;
                self.hello_since_tls = true;
                self.push_slot(SlotKind::Hello {
                    helo: verb == "HELO",
                });
            }
            "STARTTLS" if arg.is_empty() => {
                if tls || self.starttls_seen {
                    return Err("STARTTLS twice, or inside TLS".into());
                }
                self.in_lockstep(verb)?;
                self.starttls_seen = true;
                self.push_slot(SlotKind::StartTls);
            }
            "AUTH" => {
                if !auth_allowed {
                    return Err(format!("AUTH before TLS: {text:?}"));
                }
                self.in_lockstep(verb)?;
                let (mech, initial) = arg
                    .split_once(' ')
                    .map_or((arg, None), |(m, r)| (m, Some(r)));
                let mech = match mech {
                    "PLAIN" => Mech::Plain,
                    "LOGIN" => Mech::Login,
                    "CRAM-MD5" => Mech::CramMd5,
                    "XOAUTH2" => Mech::XOAuth2,
                    "OAUTHBEARER" => Mech::OAuthBearer,
                    other
                        if (1..=20).contains(&other.len())
                            && other.bytes().all(|b| {
                                b.is_ascii_uppercase()
                                    || b.is_ascii_digit()
                                    || b == b'-'
                                    || b == b'_'
                            }) =>
                    {
                        Mech::Other
                    }
                    other => return Err(format!("an invalid mechanism name {other:?}")),
                };
                if let Some(r) = initial
                    && r != "="
                    && BASE64.decode(r).is_err()
                {
                    return Err("an initial response that is not base64".into());
                }
                self.auth_open = Some((mech, initial.is_some(), 0));
                self.push_slot(SlotKind::Auth {
                    mech,
                    initial: initial.is_some(),
                    round: 0,
                });
            }
            "MAIL" if arg.starts_with("FROM:<") => {
                let tx = self.current_tx()?;
                if self.txs[tx].mail.is_some() {
                    return Err("two MAIL in one transaction".into());
                }
                if lockstep {
                    self.in_lockstep(verb)?;
                }
                let s = self.push_slot(SlotKind::Mail(tx));
                self.txs[tx].mail = Some(s);
            }
            "RCPT" if arg.starts_with("TO:<") => {
                let tx = self.current_tx()?;
                let t = &self.txs[tx];
                if t.mail.is_none()
                    || t.rcpts.len() >= t.recipients
                    || t.data.is_some()
                    || t.end.is_some()
                {
                    return Err("RCPT out of place".into());
                }
                if lockstep {
                    self.in_lockstep(verb)?;
                }
                let i = self.txs[tx].rcpts.len();
                let s = self.push_slot(SlotKind::Rcpt(tx, i));
                self.txs[tx].rcpts.push(s);
            }
            "DATA" if arg.is_empty() => {
                let tx = self.current_tx()?;
                let t = &self.txs[tx];
                // Fewer RCPTs than recipients: a RCPTMAX limit or "too many recipients" (RFC 9422, RFC 5321
                // §4.5.3.1.10) defers the rest to another transaction.
                if t.rcpts.is_empty() || t.data.is_some() || !t.chunks.is_empty() || t.end.is_some()
                {
                    return Err("DATA out of place".into());
                }
                if lockstep {
                    self.in_lockstep(verb)?;
                }
                let s = self.push_slot(SlotKind::Data(tx));
                self.txs[tx].data = Some(s);
                self.mode = Mode::AfterData(tx);
            }
            "BDAT" => {
                let tx = self.current_tx()?;
                let (n, last) = match arg.split_once(' ') {
                    Some((n, "LAST")) => (n, true),
                    None => (arg, false),
                    Some(_) => return Err(format!("bad BDAT {text:?}")),
                };
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("bad BDAT size {text:?}"));
                }
                let size: u64 = n.parse().map_err(|_| format!("bad BDAT size {text:?}"))?;
                let t = &self.txs[tx];
                if t.rcpts.is_empty() || t.data.is_some() || t.end.is_some() {
                    return Err("BDAT out of place".into());
                }
                if last && t.finished_at.is_none() {
                    return Err("BDAT LAST before finish_body".into());
                }
                if lockstep {
                    self.in_lockstep(verb)?;
                }
                if last {
                    let s = self.push_slot(SlotKind::Final(tx));
                    self.txs[tx].end = Some(s);
                } else {
                    if size == 0 {
                        return Err("an empty non-last BDAT chunk".into());
                    }
                    let s = self.push_slot(SlotKind::Bdat(tx));
                    self.txs[tx].chunks.push(s);
                }
                self.mode = Mode::Bdat {
                    tx,
                    remaining: size,
                    last,
                };
            }
            "." if arg.is_empty() => {
                let tx = self.current_tx()?;
                let t = &self.txs[tx];
                if t.data.is_none() || t.end.is_some() || t.data_body_expected {
                    return Err("a lone dot out of place".into());
                }
                self.push_slot(SlotKind::Discard(tx));
            }
            "RSET" if arg.is_empty() => {
                if lockstep {
                    self.in_lockstep(verb)?;
                }
                self.push_slot(SlotKind::Rset);
            }
            "NOOP" if arg.is_empty() => {
                self.in_lockstep(verb)?;
                self.push_slot(SlotKind::Noop);
            }
            "QUIT" if arg.is_empty() => {
                if lockstep {
                    self.in_lockstep(verb)?;
                }
                self.quit_seen = true;
                self.push_slot(SlotKind::Quit);
            }
            _ => {
                // An AUTH response line: base64 or empty, only inside an exchange.
                let Some((mech, initial, round)) = auth_open else {
                    return Err(format!("unknown command line {text:?}"));
                };
                if !auth_allowed {
                    return Err("an AUTH response before TLS".into());
                }
                self.in_lockstep("an AUTH response")?;
                if !text.is_empty() && BASE64.decode(text).is_err() {
                    return Err(format!("an AUTH response that is not base64: {text:?}"));
                }
                let round = round + 1;
                self.auth_open = Some((mech, initial, round));
                self.push_slot(SlotKind::Auth {
                    mech,
                    initial,
                    round,
                });
            }
        }
        Ok(())
    }

    /// The connection became encrypted: the capabilities (PIPELINING included) are forgotten until the next EHLO.
    pub fn tls_started(&mut self, implicit: bool) {
        self.pipelining = false;
        self.hello_since_tls = false;
        if implicit {
            self.expect_greeting();
        }
    }
}

// ----- what the server says -----

const CRAM_CHALLENGE: &str = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UuZXhhbXBsZS5uZXQ+";

/// The EHLO reply lines for `flags`.
fn ehlo_lines(flags: u8) -> Vec<String> {
    let mut lines = vec!["mx.example.org greets you".to_owned()];
    if flags & 1 != 0 {
        lines.push("PIPELINING".into());
    }
    if flags & 2 != 0 {
        lines.push("CHUNKING".into());
    }
    if flags & 4 != 0 {
        lines.push("STARTTLS".into());
    }
    if flags & 8 != 0 {
        lines.push(
            match (flags >> 4) & 3 {
                0 => "AUTH PLAIN LOGIN",
                1 => "AUTH LOGIN CRAM-MD5",
                2 => "AUTH XOAUTH2 OAUTHBEARER PLAIN",
                _ => "AUTH=LOGIN",
            }
            .into(),
        );
    }
    if flags & 64 != 0 {
        lines.extend(["8BITMIME".into(), "SMTPUTF8".into(), "SIZE 1000000".into()]);
    }
    if flags & 128 != 0 {
        lines.extend(["ENHANCEDSTATUSCODES".into(), "DSN".into()]);
    }
    lines
}

/// Renders a reply: `lines` joined as `code-`/`code ` lines, ending in CRLF or LF.
pub fn render(code: u16, lines: &[String], bare_lf: bool) -> Vec<u8> {
    let eol: &[u8] = if bare_lf { b"\n" } else { b"\r\n" };
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.extend_from_slice(format!("{code:03}{sep}{line}").as_bytes());
        out.extend_from_slice(eol);
    }
    if lines.is_empty() {
        out.extend_from_slice(format!("{code:03}").as_bytes());
        out.extend_from_slice(eol);
    }
    out
}

/// The reply a server gives to `slot` (`None`: nothing is outstanding) in the given kind.
pub fn auto_reply(slot: Option<SlotKind>, kind: Kind, flags: u8) -> Vec<u8> {
    use SlotKind as S;
    let positive: (u16, Vec<String>) = match slot {
        None => (250, vec!["2.0.0 nothing was asked".into()]),
        Some(S::Greeting) => (220, vec!["mx.example.org ESMTP ready".into()]),
        Some(S::Hello { .. }) => (250, ehlo_lines(flags)),
        Some(S::StartTls) => (220, vec!["2.0.0 Ready to start TLS".into()]),
        Some(S::Auth {
            mech,
            initial,
            round,
        }) => match (mech, initial, round) {
            (Mech::Login, false, 0) => (334, vec!["VXNlcm5hbWU6".into()]),
            (Mech::Login, _, 1) | (Mech::Login, true, 0) => (334, vec!["UGFzc3dvcmQ6".into()]),
            (Mech::CramMd5, false, 0) => (334, vec![CRAM_CHALLENGE.into()]),
            (_, false, 0) => (334, vec![String::new()]),
            _ => (235, vec!["2.7.0 Authentication successful".into()]),
        },
        Some(S::Mail(_)) => (250, vec!["2.1.0 Sender OK".into()]),
        Some(S::Rcpt(..)) => (250, vec!["2.1.5 Recipient OK".into()]),
        Some(S::Data(_)) => (354, vec!["End data with <CR><LF>.<CR><LF>".into()]),
        Some(S::Bdat(_)) => (250, vec!["2.0.0 chunk received".into()]),
        Some(S::Discard(_)) => (554, vec!["5.5.1 No valid recipients".into()]),
        Some(S::Final(_)) => (250, vec!["2.0.0 Ok: queued as 4B2F1".into()]),
        Some(S::Rset | S::Noop) => (250, vec!["2.0.0 Ok".into()]),
        Some(S::Quit) => (221, vec!["2.0.0 Bye".into()]),
    };
    let (code, lines): (u16, Vec<String>) = match kind {
        Kind::Positive | Kind::BareLf => positive,
        Kind::Multiline => {
            let mut lines = vec!["this is".to_owned(), "a multiline reply".to_owned()];
            lines.extend(positive.1);
            (positive.0, lines)
        }
        Kind::OddPositive => (
            200 + u16::from(flags % 6) * 10 + u16::from(flags / 6 % 10),
            vec!["odd".into()],
        ),
        Kind::Transient => match slot {
            Some(S::Greeting) => (450, vec!["4.3.2 busy".into()]),
            Some(S::Auth { .. }) => (454, vec!["4.7.0 Temporary authentication failure".into()]),
            Some(S::StartTls) => (454, vec!["4.7.0 TLS not available".into()]),
            _ => (451, vec!["4.3.0 Try again later".into()]),
        },
        Kind::Permanent => match slot {
            Some(S::Greeting) => (554, vec!["5.7.1 No SMTP service here".into()]),
            Some(S::Hello { .. }) => (502, vec!["5.5.2 Command not recognized".into()]),
            Some(S::Auth { .. }) => (535, vec!["5.7.8 Authentication credentials invalid".into()]),
            Some(S::Mail(_)) => (550, vec!["5.1.0 Sender rejected".into()]),
            Some(S::Rcpt(..)) => (550, vec!["5.1.1 No such user".into()]),
            Some(S::Final(_)) => (554, vec!["5.7.1 Rejected as spam".into()]),
            Some(S::Bdat(_)) => (552, vec!["5.3.4 Message too big".into()]),
            _ => (554, vec!["5.5.1 Error".into()]),
        },
        Kind::Closing => (421, vec!["4.3.2 Service shutting down".into()]),
        Kind::Wrong => match slot {
            Some(S::Greeting | S::StartTls) => (250, vec!["hello?".into()]),
            Some(S::Hello { .. }) => (220, vec!["again".into()]),
            Some(S::Auth { .. }) => (334, vec!["not base64!".into()]),
            Some(S::Data(_)) => (250, vec!["2.0.0 Ok".into()]),
            Some(S::Quit) => (354, vec!["go on".into()]),
            _ => (354, vec!["Start mail input".into()]),
        },
    };
    let bare_lf = kind == Kind::BareLf;
    render(code, &lines, bare_lf)
}

/// Base64 of `s` (for the credential checks).
pub fn b64(s: &[u8]) -> String {
    BASE64.encode(s)
}
