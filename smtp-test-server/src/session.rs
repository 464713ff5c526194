//! The SMTP/LMTP conversation on one connection, with faults applied at each stage.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Fault, Protocol, ServerConfig, Stage, TlsMode};
use crate::io::{CAP_BYTES, CAP_TIME, Io, Line};
use crate::record::{BodyTransfer, ClientLine, Message};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Longest command line (or AUTH response) accepted.
const MAX_LINE: usize = 64 * 1024;
const NON_UTF8: &[u8] = b" \xff\xfe\xc3\x28";

/// What happens after a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// Carry on; `positive` says whether the reply actually sent was 2xx/3xx.
    Go { positive: bool },
    /// Close politely (after `221`, `421`).
    Quit,
    /// Drop the connection (fault, client gone).
    Abort,
}

/// What a fault makes the server do at a stage.
enum Action {
    Silent,
    Close,
    Reply(String),
    Raw(Vec<u8>),
    Delay(Duration),
    Dribble(Duration),
    DribbleForever(Duration),
    EndlessMultiline,
    EndlessLine,
}

impl Action {
    /// Whether the client will see a positive reply: `None` when that depends on the normal reply.
    fn positive(&self) -> Option<bool> {
        match self {
            Action::Reply(text) => Some(text.starts_with(['2', '3'])),
            Action::Raw(bytes) => Some(bytes.starts_with(b"2") || bytes.starts_with(b"3")),
            Action::Delay(_) | Action::Dribble(_) => None,
            _ => Some(false),
        }
    }
}

struct Transaction {
    from: String,
    params: Vec<String>,
    smtputf8: bool,
    rcpts: Vec<String>,
    bdat_body: Vec<u8>,
    bdat_chunks: usize,
}

pub(crate) struct Session {
    io: Io,
    cfg: Arc<ServerConfig>,
    tls_config: Option<Arc<rustls::ServerConfig>>,
    faults: Vec<Fault>,
    id: usize,
    greeted: bool,
    auth_user: Option<String>,
    txn: Option<Transaction>,
}

fn positive(lines: &[String]) -> bool {
    lines.first().is_some_and(|l| l.starts_with(['2', '3']))
}

fn eq_addr(list: &[String], addr: &str) -> bool {
    list.iter().any(|a| a.eq_ignore_ascii_case(addr))
}

/// Splits `FROM:<addr> PARAM PARAM` (after the verb) into the address and the parameters.
fn parse_path<'a>(arg: &'a str, keyword: &str) -> Option<(&'a str, Vec<String>)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let close = rest.find('>')?;
    let addr = &rest[..close];
    let params = rest[close + 1..]
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    Some((addr, params))
}

impl Session {
    pub(crate) fn new(
        io: Io,
        cfg: Arc<ServerConfig>,
        tls_config: Option<Arc<rustls::ServerConfig>>,
        id: usize,
    ) -> Session {
        let faults = cfg
            .faults
            .iter()
            .filter(|(only, _)| only.is_none_or(|n| n == id))
            .map(|(_, f)| f.clone())
            .collect();
        Session {
            io,
            cfg,
            tls_config,
            faults,
            id,
            greeted: false,
            auth_user: None,
            txn: None,
        }
    }

    fn has_fault(&self, f: impl Fn(&Fault) -> bool) -> bool {
        self.faults.iter().any(f)
    }

    fn tls_mode(&self) -> Option<TlsMode> {
        self.cfg.tls.as_ref().map(|(_, _, mode)| *mode)
    }

    fn starttls_offered(&self) -> bool {
        self.tls_mode() == Some(TlsMode::StartTls)
            && !self.io.is_tls()
            && !self.has_fault(|f| matches!(f, Fault::NoStartTls))
    }

    /// Runs the conversation to its end.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let flow = match self.converse() {
            Ok(flow) => flow,
            Err(e) => {
                self.io.abort();
                return Err(e);
            }
        };
        match flow {
            Flow::Abort => self.io.abort(),
            Flow::Quit | Flow::Go { .. } => self.io.close(),
        }
        Ok(())
    }

    fn converse(&mut self) -> io::Result<Flow> {
        if self.tls_mode() == Some(TlsMode::Implicit) {
            let config = self.tls_config.clone().expect("TLS configured");
            self.io.start_tls(config)?;
        }
        let greeting = match &self.cfg.greeting {
            Some(text) => text
                .lines()
                .map(|l| l.trim_end_matches('\r').to_owned())
                .collect(),
            None => {
                let kind = match self.cfg.protocol {
                    Protocol::Smtp => "ESMTP",
                    Protocol::Lmtp => "LMTP",
                };
                vec![format!("220 {} {kind}", self.cfg.hostname)]
            }
        };
        let flow = self.respond(Stage::Greeting, greeting)?;
        if flow != (Flow::Go { positive: true }) && flow != (Flow::Go { positive: false }) {
            return Ok(flow);
        }
        loop {
            let Some(line) = self.io.read_line(MAX_LINE)? else {
                return Ok(Flow::Abort);
            };
            self.record_line(&line);
            match self.command(line.content())? {
                Flow::Go { .. } => {}
                other => return Ok(other),
            }
        }
    }

    fn record_line(&self, line: &Line) {
        let record = ClientLine {
            bytes: line.content().to_vec(),
            tls: self.io.is_tls(),
            read_seq: line.read_seq,
            bare_lf: line.bare_lf(),
        };
        self.io
            .shared()
            .with_session(self.id, |r| r.lines.push(record));
    }

    // ----- replies and faults -----

    /// Formats one reply: `"250 2.1.0 Ok"` (or `"250 Ok"` without enhanced status codes).
    fn reply(&self, code: u16, enhanced: &str, text: &str) -> String {
        if self.cfg.enhanced_status_codes && !enhanced.is_empty() {
            format!("{code} {enhanced} {text}")
        } else {
            format!("{code} {text}")
        }
    }

    fn one(&self, code: u16, enhanced: &str, text: &str) -> Vec<String> {
        vec![self.reply(code, enhanced, text)]
    }

    /// Reply lines to bytes, applying the line-ending and non-UTF-8 faults.
    fn encode(&self, lines: &[String]) -> Vec<u8> {
        let bare_lf = self.has_fault(|f| matches!(f, Fault::BareLfReplies));
        let non_utf8 = self.has_fault(|f| matches!(f, Fault::NonUtf8Replies));
        let mut out = Vec::new();
        for line in lines {
            out.extend_from_slice(line.as_bytes());
            if non_utf8 {
                out.extend_from_slice(NON_UTF8);
            }
            out.extend_from_slice(if bare_lf { b"\n" } else { b"\r\n" });
        }
        out
    }

    fn action(&self, stage: Stage) -> Option<Action> {
        self.faults.iter().find_map(|fault| match (fault, stage) {
            (Fault::SilentOnConnect, Stage::Greeting) => Some(Action::Silent),
            (Fault::DribbleGreetingForever { interval }, Stage::Greeting) => {
                Some(Action::DribbleForever(*interval))
            }
            (Fault::DelayGreeting(d), Stage::Greeting) => Some(Action::Delay(*d)),
            (Fault::SilentAfterStartTls, Stage::StartTls) => Some(Action::Silent),
            (Fault::EndlessEhlo, Stage::Ehlo) => Some(Action::EndlessMultiline),
            (Fault::ResetAfterBody, Stage::DataEnd | Stage::BdatLast) => Some(Action::Close),
            (Fault::GarbageGreeting(bytes), Stage::Greeting) => Some(Action::Raw(bytes.clone())),
            (Fault::EndlessLine(s), _) if *s == stage => Some(Action::EndlessLine),
            (Fault::Shutdown(s), _) if *s == stage => {
                Some(Action::Reply("421 4.3.2 shutting down".to_owned()))
            }
            (Fault::Reply(s, text), _) if *s == stage => Some(Action::Reply(text.clone())),
            (Fault::Raw(s, bytes), _) if *s == stage => Some(Action::Raw(bytes.clone())),
            (Fault::Delay(s, d), _) if *s == stage => Some(Action::Delay(*d)),
            (Fault::Dribble(s, d), _) if *s == stage => Some(Action::Dribble(*d)),
            (Fault::Silent(s), _) if *s == stage => Some(Action::Silent),
            (Fault::Close(s), _) if *s == stage => Some(Action::Close),
            _ => None,
        })
    }

    /// Sends the reply for `stage` (normally `normal`, unless a fault says otherwise).
    fn respond(&mut self, stage: Stage, normal: Vec<String>) -> io::Result<Flow> {
        let action = self.action(stage);
        self.perform(action, normal)
    }

    fn perform(&mut self, action: Option<Action>, normal: Vec<String>) -> io::Result<Flow> {
        let ok = Flow::Go {
            positive: positive(&normal),
        };
        let code = normal
            .first()
            .and_then(|l| l.get(..3))
            .unwrap_or("250")
            .to_owned();
        let Some(action) = action else {
            let bytes = self.encode(&normal);
            self.io.queue(&bytes);
            return Ok(ok);
        };
        match action {
            Action::Silent => {
                self.io.flush()?;
                let tls = self.io.is_tls();
                let id = self.id;
                let shared = self.io.shared_arc();
                self.io.read_lines_until_eof(|line| {
                    let record = ClientLine {
                        bytes: line.content().to_vec(),
                        tls,
                        read_seq: line.read_seq,
                        bare_lf: line.bare_lf(),
                    };
                    shared.with_session(id, |r| r.lines.push(record));
                })?;
                Ok(Flow::Abort)
            }
            Action::Close => Ok(Flow::Abort),
            Action::Reply(text) => {
                let lines: Vec<String> = text
                    .lines()
                    .map(|l| l.trim_end_matches('\r').to_owned())
                    .collect();
                let bytes = self.encode(&lines);
                self.io.queue(&bytes);
                if text.starts_with("421") {
                    Ok(Flow::Quit)
                } else {
                    Ok(Flow::Go {
                        positive: positive(&lines),
                    })
                }
            }
            Action::Raw(bytes) => {
                self.io.queue(&bytes);
                Ok(Flow::Go {
                    positive: bytes.starts_with(b"2") || bytes.starts_with(b"3"),
                })
            }
            Action::Delay(d) => {
                self.io.flush()?;
                self.io.pause(d)?;
                let bytes = self.encode(&normal);
                self.io.queue(&bytes);
                Ok(ok)
            }
            Action::Dribble(interval) => {
                let bytes = self.encode(&normal);
                for (i, b) in bytes.into_iter().enumerate() {
                    if i > 0 {
                        self.io.pause(interval)?;
                    }
                    self.io.write_now(&[b])?;
                }
                Ok(ok)
            }
            Action::DribbleForever(interval) => {
                let line = format!("{code}-{} dribbling", self.cfg.hostname);
                let bytes = self.encode(&[line]);
                let start = Instant::now();
                for &b in bytes.iter().cycle() {
                    if start.elapsed() > CAP_TIME {
                        break;
                    }
                    self.io.write_now(&[b])?;
                    self.io.pause(interval)?;
                }
                Ok(Flow::Abort)
            }
            Action::EndlessMultiline => {
                let first = self.encode(&[format!("{code}-{}", self.cfg.hostname)]);
                let one = self.encode(&[format!("{code}-x")]);
                let chunk = one.repeat(64 * 1024 / one.len());
                self.io.write_endless(&first, &chunk)?;
                Ok(Flow::Abort)
            }
            Action::EndlessLine => {
                let prefix = format!("{code} ").into_bytes();
                let chunk = vec![b'x'; 64 * 1024];
                self.io.write_endless(&prefix, &chunk)?;
                Ok(Flow::Abort)
            }
        }
    }

    // ----- commands -----

    fn command(&mut self, line: &[u8]) -> io::Result<Flow> {
        let text = String::from_utf8_lossy(line).into_owned();
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
            None => (text.to_ascii_uppercase(), String::new()),
        };
        match verb.as_str() {
            "EHLO" | "HELO" | "LHLO" => self.hello(&verb, &arg),
            "STARTTLS" => self.starttls(&arg),
            "AUTH" => self.auth(&arg),
            "MAIL" => self.mail(&arg),
            "RCPT" => self.rcpt(&arg),
            "DATA" => self.data(&arg),
            "BDAT" => self.bdat(&arg),
            "RSET" => {
                self.txn = None;
                let r = self.one(250, "2.0.0", "Ok");
                self.respond(Stage::Rset, r)
            }
            "NOOP" => {
                let r = self.one(250, "2.0.0", "Ok");
                self.respond(Stage::Noop, r)
            }
            "QUIT" => {
                let r = self.one(221, "2.0.0", "Bye");
                Ok(match self.respond(Stage::Quit, r)? {
                    Flow::Go { .. } => Flow::Quit,
                    other => other,
                })
            }
            "VRFY" => {
                let r = self.one(252, "2.0.0", "Cannot VRFY user");
                self.io.queue(&self.encode(&r));
                Ok(Flow::Go { positive: true })
            }
            _ => {
                let r = self.one(500, "5.5.2", "Error: command not recognized");
                self.io.queue(&self.encode(&r));
                Ok(Flow::Go { positive: false })
            }
        }
    }

    fn hello(&mut self, verb: &str, arg: &str) -> io::Result<Flow> {
        let lmtp = self.cfg.protocol == Protocol::Lmtp;
        if lmtp != (verb == "LHLO") {
            let text = if lmtp {
                "Error: this is LMTP, use LHLO"
            } else {
                "Error: LHLO is for LMTP"
            };
            let r = self.one(500, "5.5.1", text);
            return self.respond(Stage::Ehlo, r);
        }
        if arg.is_empty() {
            let r = self.one(501, "5.5.4", &format!("Syntax: {verb} hostname"));
            return self.respond(Stage::Ehlo, r);
        }
        self.greeted = true;
        self.txn = None;
        let host = &self.cfg.hostname;
        if verb == "HELO" {
            let r = vec![format!("250 {host}")];
            return self.respond(Stage::Ehlo, r);
        }
        let cfg = &self.cfg;
        let mut keywords = Vec::new();
        if cfg.pipelining {
            keywords.push("PIPELINING".to_owned());
        }
        if let Some(size) = cfg.size {
            keywords.push(format!("SIZE {size}"));
        }
        if self.starttls_offered() {
            keywords.push("STARTTLS".to_owned());
        }
        if cfg.auth_enabled() && !cfg.auth_mechanisms.is_empty() {
            keywords.push(format!("AUTH {}", cfg.auth_mechanisms.join(" ")));
        }
        if cfg.enhanced_status_codes {
            keywords.push("ENHANCEDSTATUSCODES".to_owned());
        }
        if cfg.eightbitmime {
            keywords.push("8BITMIME".to_owned());
        }
        if cfg.smtputf8 {
            keywords.push("SMTPUTF8".to_owned());
        }
        if cfg.chunking {
            keywords.push("CHUNKING".to_owned());
        }
        if let Some(limits) = &cfg.limits {
            keywords.push(format!("LIMITS {limits}"));
        }
        keywords.extend(cfg.extra_extensions.iter().cloned());
        let mut lines = vec![format!("{host} greets {arg}")];
        lines.extend(keywords);
        let last = lines.len() - 1;
        let lines = lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
            .collect();
        self.respond(Stage::Ehlo, lines)
    }

    fn starttls(&mut self, arg: &str) -> io::Result<Flow> {
        let r = if self.io.is_tls() {
            Some(self.one(503, "5.5.1", "Error: TLS already active"))
        } else if !self.starttls_offered() {
            Some(self.one(502, "5.5.1", "Error: command not implemented"))
        } else if !arg.is_empty() {
            Some(self.one(501, "5.5.4", "Syntax: STARTTLS"))
        } else {
            None
        };
        if let Some(r) = r {
            return self.respond(Stage::StartTls, r);
        }
        let ready = self.one(220, "2.0.0", "Ready to start TLS");
        let injection = self.faults.iter().find_map(|f| match f {
            Fault::StartTlsInjection(bytes) => Some(bytes.clone()),
            _ => None,
        });
        if let Some(bytes) = injection {
            let mut all = self.encode(&ready);
            all.extend_from_slice(&bytes);
            self.io.write_now(&all)?;
        } else {
            match self.respond(Stage::StartTls, ready)? {
                Flow::Go { positive: true } => {}
                other => return Ok(other),
            }
        }
        let config = self.tls_config.clone().expect("TLS configured");
        self.io.start_tls(config)?;
        // RFC 3207 §4.2: forget everything learnt before TLS.
        self.greeted = false;
        self.auth_user = None;
        self.txn = None;
        Ok(Flow::Go { positive: true })
    }

    /// Sends a `334` prompt and reads the client's answer; `None` if the client went away.
    fn prompt(&mut self, challenge: &str) -> io::Result<Option<Vec<u8>>> {
        let bytes = self.encode(&[format!("334 {challenge}")]);
        self.io.queue(&bytes);
        let Some(line) = self.io.read_line(MAX_LINE)? else {
            return Ok(None);
        };
        self.record_line(&line);
        Ok(Some(line.content().to_vec()))
    }

    fn auth(&mut self, arg: &str) -> io::Result<Flow> {
        let mut words = arg.split(' ').filter(|w| !w.is_empty());
        let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next().map(str::to_owned);
        let oauth = matches!(mechanism.as_str(), "XOAUTH2" | "OAUTHBEARER")
            && !self.cfg.oauth_tokens.is_empty();
        let refuse = if !self.cfg.auth_enabled() {
            Some(self.one(502, "5.5.1", "Error: authentication not enabled"))
        } else if self.cfg.require_tls && !self.io.is_tls() {
            Some(self.one(530, "5.7.0", "Must issue a STARTTLS command first"))
        } else if !self.greeted {
            Some(self.one(503, "5.5.1", "Error: send EHLO first"))
        } else if self.auth_user.is_some() {
            Some(self.one(503, "5.5.1", "Error: already authenticated"))
        } else if self.txn.is_some() {
            Some(self.one(503, "5.5.1", "Error: MAIL transaction in progress"))
        } else if !self.cfg.auth_mechanisms.contains(&mechanism)
            || !(oauth || matches!(mechanism.as_str(), "PLAIN" | "LOGIN"))
        {
            Some(self.one(504, "5.5.4", "Unrecognized authentication type"))
        } else {
            None
        };
        if let Some(r) = refuse {
            return self.respond(Stage::Auth, r);
        }
        if oauth {
            return self.oauth(&mechanism, initial);
        }
        // Collect (user, password) from the exchange; `Err(reply)` ends it early.
        let read = |this: &mut Self, prompt: &str, given: Option<String>| match given {
            Some(text) => Ok(Some(text.into_bytes())),
            None => this.prompt(prompt),
        };
        let decode = |raw: &[u8]| -> Result<Vec<u8>, (u16, &'static str, &'static str)> {
            if raw == b"*" {
                return Err((501, "5.7.0", "Authentication aborted"));
            }
            if raw == b"=" {
                return Ok(Vec::new());
            }
            BASE64
                .decode(raw)
                .ok()
                .ok_or((501, "5.5.2", "Cannot decode response"))
        };
        let credentials = if mechanism == "PLAIN" {
            let Some(raw) = read(self, "", initial)? else {
                return Ok(Flow::Abort);
            };
            decode(&raw).and_then(|plain| {
                let parts: Vec<&[u8]> = plain.split(|&b| b == 0).collect();
                match parts.as_slice() {
                    [_authzid, user, pass] => Ok((user.to_vec(), pass.to_vec())),
                    _ => Err((501, "5.5.2", "Malformed PLAIN response")),
                }
            })
        } else {
            let Some(raw) = read(self, &BASE64.encode(b"Username:"), initial)? else {
                return Ok(Flow::Abort);
            };
            match decode(&raw) {
                Err(e) => Err(e),
                Ok(user) => {
                    let Some(raw) = read(self, &BASE64.encode(b"Password:"), None)? else {
                        return Ok(Flow::Abort);
                    };
                    decode(&raw).map(|pass| (user, pass))
                }
            }
        };
        let r = match credentials {
            Err((code, enhanced, text)) => self.one(code, enhanced, text),
            Ok((user, pass)) => {
                let known = self
                    .cfg
                    .users
                    .iter()
                    .any(|(u, p)| u.as_bytes() == user && p.as_bytes() == pass);
                if known {
                    let user = String::from_utf8_lossy(&user).into_owned();
                    self.auth_user = Some(user.clone());
                    self.io
                        .shared()
                        .with_session(self.id, |r| r.authenticated = Some(user));
                    self.one(235, "2.7.0", "Authentication successful")
                } else {
                    self.one(535, "5.7.8", "Authentication credentials invalid")
                }
            }
        };
        self.respond(Stage::Auth, r)
    }

    /// XOAUTH2 (`user=U^Aauth=Bearer T^A^A`) or OAUTHBEARER (RFC 7628: `n,a=U,^Aauth=Bearer T^A^A`): the token is
    /// checked against [`ServerConfig::oauth_token`](crate::ServerConfig::oauth_token); a wrong one gets the JSON
    /// error challenge, and after the client's response (RFC 7628 §3.2.3) `535 5.7.8`.
    fn oauth(&mut self, mechanism: &str, initial: Option<String>) -> io::Result<Flow> {
        let raw = match initial {
            Some(text) => text.into_bytes(),
            None => match self.prompt("")? {
                Some(raw) => raw,
                None => return Ok(Flow::Abort),
            },
        };
        let decoded = BASE64.decode(&raw).unwrap_or_default();
        let text = String::from_utf8_lossy(&decoded).into_owned();
        let (mut user, mut token) = (None, None);
        for part in text.split('\x01') {
            if let Some(u) = part.strip_prefix("user=") {
                user = Some(u.to_owned());
            } else if let Some(t) = part.strip_prefix("auth=Bearer ") {
                token = Some(t.to_owned());
            } else if let Some(a) = part.strip_prefix("n,a=") {
                // gs2-header authzid (RFC 5801 saslname: `=2C` is ',', `=3D` is '=').
                let a = a.strip_suffix(',').unwrap_or(a);
                user = Some(a.replace("=2C", ",").replace("=3D", "="));
            }
        }
        let known = match (&user, &token) {
            (Some(u), Some(t)) => self
                .cfg
                .oauth_tokens
                .iter()
                .any(|(cu, ct)| cu.eq_ignore_ascii_case(u) && ct == t),
            _ => false,
        };
        let r = if known {
            let user = user.unwrap_or_default();
            self.auth_user = Some(user.clone());
            self.io
                .shared()
                .with_session(self.id, |r| r.authenticated = Some(user));
            self.one(235, "2.7.0", "Authentication successful")
        } else {
            let json = if mechanism == "XOAUTH2" {
                r#"{"status":"401","schemes":"bearer","scope":"https://mail.test.example/"}"#
            } else {
                r#"{"status":"invalid_token","scope":"https://mail.test.example/","schemes":"Bearer"}"#
            };
            if self.prompt(&BASE64.encode(json))?.is_none() {
                return Ok(Flow::Abort);
            }
            self.one(535, "5.7.8", "Authentication credentials invalid")
        };
        self.respond(Stage::Auth, r)
    }

    /// Checks MAIL/RCPT parameters; `Err(reply)` for the first unsupported one.
    fn check_params(&self, params: &[String], mail: bool) -> Result<bool, Vec<String>> {
        let dsn = self
            .cfg
            .extra_extensions
            .iter()
            .any(|e| e.eq_ignore_ascii_case("DSN"));
        let mut smtputf8 = false;
        for param in params {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            let key = key.to_ascii_uppercase();
            let ok = match (mail, key.as_str()) {
                (true, "SIZE") => {
                    let size: Option<u64> = value.parse().ok();
                    match (size, self.cfg.size) {
                        (None, _) => return Err(self.one(501, "5.5.4", "Bad SIZE parameter")),
                        (Some(n), Some(limit)) if limit > 0 && n > limit => {
                            return Err(self.one(
                                552,
                                "5.3.4",
                                "Message size exceeds fixed maximum message size",
                            ));
                        }
                        _ => self.cfg.size.is_some(),
                    }
                }
                (true, "BODY") => match value.to_ascii_uppercase().as_str() {
                    "7BIT" => true,
                    "8BITMIME" => self.cfg.eightbitmime,
                    _ => false,
                },
                (true, "SMTPUTF8") => {
                    smtputf8 = true;
                    self.cfg.smtputf8 && value.is_empty()
                }
                (true, "AUTH") => self.cfg.auth_enabled(),
                (true, "RET" | "ENVID") | (false, "NOTIFY" | "ORCPT") => dsn,
                _ => false,
            };
            if !ok {
                return Err(self.one(555, "5.5.4", &format!("Unsupported parameter {key}")));
            }
        }
        Ok(smtputf8)
    }

    fn mail(&mut self, arg: &str) -> io::Result<Flow> {
        let r = self.mail_reply(arg);
        self.respond(Stage::Mail, r)
    }

    fn mail_reply(&mut self, arg: &str) -> Vec<String> {
        if !self.greeted {
            return self.one(503, "5.5.1", "Error: send HELO/EHLO first");
        }
        if self.cfg.require_tls && !self.io.is_tls() {
            return self.one(530, "5.7.0", "Must issue a STARTTLS command first");
        }
        if self.cfg.require_auth && self.auth_user.is_none() {
            return self.one(530, "5.7.0", "Authentication required");
        }
        if self.txn.is_some() {
            return self.one(503, "5.5.1", "Error: nested MAIL command");
        }
        let Some((addr, params)) = parse_path(arg, "FROM:") else {
            return self.one(501, "5.5.4", "Syntax: MAIL FROM:<address>");
        };
        let smtputf8 = match self.check_params(&params, true) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if !addr.is_ascii() && !smtputf8 {
            return self.one(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
        }
        if eq_addr(&self.cfg.rejected_senders, addr) {
            return self.one(550, "5.7.1", &format!("<{addr}>: Sender address rejected"));
        }
        self.txn = Some(Transaction {
            from: addr.to_owned(),
            params,
            smtputf8,
            rcpts: Vec::new(),
            bdat_body: Vec::new(),
            bdat_chunks: 0,
        });
        self.one(250, "2.1.0", "Ok")
    }

    fn rcpt(&mut self, arg: &str) -> io::Result<Flow> {
        let r = self.rcpt_reply(arg);
        self.respond(Stage::Rcpt, r)
    }

    fn rcpt_reply(&mut self, arg: &str) -> Vec<String> {
        let Some(txn) = &self.txn else {
            return self.one(503, "5.5.1", "Error: need MAIL command");
        };
        let Some((addr, params)) = parse_path(arg, "TO:") else {
            return self.one(501, "5.5.4", "Syntax: RCPT TO:<address>");
        };
        if let Err(r) = self.check_params(&params, false) {
            return r;
        }
        if !addr.is_ascii() && !txn.smtputf8 {
            return self.one(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
        }
        if self
            .cfg
            .max_recipients
            .is_some_and(|max| txn.rcpts.len() >= max)
        {
            return self.one(452, "4.5.3", "Error: too many recipients");
        }
        if eq_addr(&self.cfg.rejected_recipients, addr) {
            let text = format!("<{addr}>: Recipient address rejected: User unknown");
            return self.one(550, "5.1.1", &text);
        }
        if eq_addr(&self.cfg.tempfailed_recipients, addr) {
            let text = format!("<{addr}>: Recipient address temporarily unavailable");
            return self.one(450, "4.2.1", &text);
        }
        let addr = addr.to_owned();
        if let Some(txn) = &mut self.txn {
            txn.rcpts.push(addr);
        }
        self.one(250, "2.1.5", "Ok")
    }

    /// Why a body cannot be accepted now, if it cannot.
    fn body_refusal(&self) -> Option<Vec<String>> {
        match &self.txn {
            None => Some(self.one(503, "5.5.1", "Error: need MAIL command")),
            Some(txn) if txn.rcpts.is_empty() => {
                Some(self.one(554, "5.5.1", "Error: no valid recipients"))
            }
            _ => None,
        }
    }

    fn data(&mut self, arg: &str) -> io::Result<Flow> {
        let refusal = if !arg.is_empty() {
            Some(self.one(501, "5.5.4", "Syntax: DATA"))
        } else if self.txn.as_ref().is_some_and(|t| t.bdat_chunks > 0) {
            Some(self.one(503, "5.5.1", "Error: DATA after BDAT"))
        } else {
            self.body_refusal()
        };
        if let Some(r) = refusal {
            return self.respond(Stage::Data, r);
        }
        let r = vec!["354 End data with <CR><LF>.<CR><LF>".to_owned()];
        match self.respond(Stage::Data, r)? {
            Flow::Go { positive: true } => {}
            other => return Ok(other),
        }
        // Dot-unstuff: only `\r\n.\r\n` ends the body, and only a dot right after CRLF is removed (RFC 5321
        // §4.5.2), so a client that leaks bare LFs is visible in the recorded body.
        let mut body = Vec::new();
        let mut line_start = true;
        loop {
            let Some(line) = self.io.read_line(CAP_BYTES)? else {
                return Ok(Flow::Abort);
            };
            if line_start && line.raw == b".\r\n" {
                break;
            }
            let content = match line.raw.strip_prefix(b".") {
                Some(rest) if line_start => rest,
                _ => &line.raw[..],
            };
            if body.len() + content.len() > CAP_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "message body over the 64 MiB cap",
                ));
            }
            body.extend_from_slice(content);
            line_start = line.raw.ends_with(b"\r\n");
        }
        self.deliver(Stage::DataEnd, body, BodyTransfer::Data)
    }

    fn bdat(&mut self, arg: &str) -> io::Result<Flow> {
        let mut words = arg.split(' ').filter(|w| !w.is_empty());
        let size = words.next().and_then(|s| s.parse::<usize>().ok());
        let last = match words.next() {
            None => Some(false),
            Some(w) if w.eq_ignore_ascii_case("LAST") => Some(true),
            Some(_) => None,
        };
        let (Some(size), Some(last), None) = (size, last, words.next()) else {
            let r = self.one(501, "5.5.4", "Syntax: BDAT size [LAST]");
            return self.respond(Stage::Bdat, r);
        };
        if size > CAP_BYTES {
            let r = self.one(552, "5.3.4", "Chunk too big for this test server");
            self.io.queue(&self.encode(&r));
            return Ok(Flow::Quit);
        }
        // The chunk is read whatever the verdict, so the conversation stays in sync.
        let Some(chunk) = self.io.read_exact(size)? else {
            return Ok(Flow::Abort);
        };
        let stage = if last { Stage::BdatLast } else { Stage::Bdat };
        let refusal = if !self.cfg.chunking {
            Some(self.one(502, "5.5.1", "Error: command not implemented"))
        } else {
            self.body_refusal()
        };
        if let Some(r) = refusal {
            return self.respond(stage, r);
        }
        let txn = self.txn.as_mut().expect("checked by body_refusal");
        if txn.bdat_body.len() + chunk.len() > CAP_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message body over the 64 MiB cap",
            ));
        }
        txn.bdat_body.extend_from_slice(&chunk);
        txn.bdat_chunks += 1;
        if !last {
            let r = self.one(250, "2.0.0", &format!("{size} octets received"));
            return self.respond(Stage::Bdat, r);
        }
        let body = std::mem::take(&mut txn.bdat_body);
        let chunks = txn.bdat_chunks;
        self.deliver(Stage::BdatLast, body, BodyTransfer::Bdat { chunks })
    }

    /// The end of a body: decide the reply(ies), record the message if the client will be told it was accepted,
    /// then reply (through the faults of `stage`).
    fn deliver(&mut self, stage: Stage, body: Vec<u8>, transfer: BodyTransfer) -> io::Result<Flow> {
        let txn = self.txn.take().expect("a transaction carries the body");
        let too_big = self
            .cfg
            .size
            .is_some_and(|limit| limit > 0 && body.len() as u64 > limit);
        let lmtp = self.cfg.protocol == Protocol::Lmtp;
        let (replies, accepted): (Vec<String>, Vec<String>) = if too_big {
            let r = self.reply(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
            let count = if lmtp { txn.rcpts.len() } else { 1 };
            (vec![r; count], Vec::new())
        } else if lmtp {
            let mut replies = Vec::new();
            let mut accepted = Vec::new();
            for rcpt in &txn.rcpts {
                let custom = self
                    .cfg
                    .lmtp_replies
                    .iter()
                    .find(|(a, _)| a.eq_ignore_ascii_case(rcpt))
                    .map(|(_, r)| r.clone());
                let r = custom
                    .unwrap_or_else(|| self.reply(250, "2.0.0", &format!("<{rcpt}> delivered")));
                if r.starts_with('2') {
                    accepted.push(rcpt.clone());
                }
                replies.push(r);
            }
            (replies, accepted)
        } else {
            let count = self.io.shared().message_count() + 1;
            let r = self.reply(250, "2.0.0", &format!("Ok: queued as TEST{count:05}"));
            (vec![r], txn.rcpts.clone())
        };
        let action = self.action(stage);
        let told_ok = action.as_ref().is_none_or(|a| a.positive().unwrap_or(true));
        if told_ok && !accepted.is_empty() {
            self.io.shared().push_message(Message {
                session: self.id,
                mail_from: txn.from,
                mail_params: txn.params,
                rcpt_to: accepted,
                body,
                transfer,
                tls: self.io.is_tls(),
                authenticated: self.auth_user.clone(),
            });
        }
        self.perform(action, replies)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_path;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("FROM:<a@b> SIZE=10 BODY=8BITMIME", "FROM:"),
            Some((
                "a@b",
                vec!["SIZE=10".to_owned(), "BODY=8BITMIME".to_owned()]
            ))
        );
        assert_eq!(parse_path("from: <>", "FROM:"), Some(("", vec![])));
        assert_eq!(parse_path("TO:a@b", "TO:"), None);
        assert_eq!(parse_path("T", "TO:"), None);
    }
}
