//! What the server says and how it misbehaves: [`ServerConfig`], [`Fault`], [`Stage`].

use std::time::Duration;

use crate::pki::{ServerCert, TestPki};

/// The protocol spoken after the greeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// ESMTP (RFC 5321): `EHLO`/`HELO`, one reply after the end of the body.
    Smtp,
    /// LMTP (RFC 2033): `LHLO` only, one reply per accepted recipient after the end of the body.
    Lmtp,
}

/// How TLS is offered, when a certificate is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsMode {
    /// Plaintext greeting; `STARTTLS` (RFC 3207) advertised and honoured.
    StartTls,
    /// TLS handshake first, greeting inside TLS (RFC 8314 "implicit TLS", port 465 style).
    /// A client that waits for a plaintext greeting gets nothing.
    Implicit,
}

/// A point in the conversation where a [`Fault`] can replace the server's normal behaviour.
///
/// A stage is the server's *reply* to something: `Mail` is the reply to `MAIL FROM`, `DataEnd` the reply(ies) after
/// the final `.` of a `DATA` body, and so on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// The `220` greeting, right after accept (after the handshake in implicit-TLS mode).
    Greeting,
    /// The reply to `EHLO`, `HELO` or `LHLO`.
    Ehlo,
    /// The reply to `STARTTLS`.
    StartTls,
    /// The final reply to `AUTH` (the `235`/`535`; `334` prompts are not affected).
    Auth,
    /// The reply to `MAIL FROM`.
    Mail,
    /// The reply to each `RCPT TO`.
    Rcpt,
    /// The reply to the `DATA` command (normally `354`).
    Data,
    /// The reply after the final `.` of a `DATA` body (per recipient in LMTP).
    DataEnd,
    /// The reply to a `BDAT` chunk that is not the last one.
    Bdat,
    /// The reply after a `BDAT n LAST` chunk (per recipient in LMTP).
    BdatLast,
    /// The reply to `RSET`.
    Rset,
    /// The reply to `NOOP`.
    Noop,
    /// The reply to `QUIT`.
    Quit,
}

/// A scripted misbehaviour. Add with [`ServerConfig::fault`] (every connection) or
/// [`ServerConfig::fault_on_connection`] (one connection, counted from 0 in accept order).
///
/// Stage-bound faults fire every time their stage is reached. Every "forever" behaviour is a loop that stops when the
/// client disconnects, when the [`TestServer`](crate::TestServer) is dropped, or after 120 s / 64 MiB, whichever
/// comes first; the connection is then closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Accept the connection and never send anything (client bytes are read and recorded).
    SilentOnConnect,
    /// Send the greeting one byte per `interval`, forever: `220-` continuation lines that never reach a final line.
    DribbleGreetingForever {
        /// Pause between two bytes.
        interval: Duration,
    },
    /// Wait this long before a normal greeting.
    DelayGreeting(Duration),
    /// Read `STARTTLS` and never answer it.
    SilentAfterStartTls,
    /// Answer `STARTTLS` with `220 2.0.0 Ready to start TLS\r\n` followed by these bytes in the same `write`
    /// (a plaintext injection, CVE-2011-0411 style), then start the TLS handshake as usual.
    StartTlsInjection(Vec<u8>),
    /// Do not advertise `STARTTLS` even if TLS is configured; the command is answered `502 5.5.1`.
    NoStartTls,
    /// Answer `EHLO`/`LHLO` with `250-x` lines forever.
    EndlessEhlo,
    /// At this stage, send the reply code and a space, then `x` forever without any line ending (tens of MB).
    EndlessLine(Stage),
    /// Close the connection right after the final `.` of `DATA` or the `BDAT … LAST` chunk, without replying.
    ResetAfterBody,
    /// Reply `421 4.3.2 shutting down` at this stage (instead of the normal reply), then close.
    Shutdown(Stage),
    /// Send these bytes instead of the greeting, then carry on as a normal server.
    GarbageGreeting(Vec<u8>),
    /// Put invalid UTF-8 (`\xff\xfe\xc3\x28`) in the text of every reply line.
    NonUtf8Replies,
    /// End every reply line with a bare `\n` instead of `\r\n`.
    BareLfReplies,
    /// Generic: send this reply instead of the normal one, then carry on (close if the code is `421`).
    /// Lines are separated by `\n`; each gets the configured line ending, e.g. `"554 5.7.1 go away"`.
    Reply(Stage, String),
    /// Generic: send these exact bytes instead of the normal reply, then carry on.
    Raw(Stage, Vec<u8>),
    /// Generic: wait this long, then send the normal reply.
    Delay(Stage, Duration),
    /// Generic: send the normal reply one byte per interval, then carry on.
    Dribble(Stage, Duration),
    /// Generic: send nothing at this stage; read (and record) until the client goes away.
    Silent(Stage),
    /// Generic: close the connection at this stage without replying.
    Close(Stage),
}

/// Describes the server. The default is a well-behaved ESMTP server without TLS or AUTH:
/// greeting `220 test.example ESMTP`, `EHLO` advertising `PIPELINING`, `8BITMIME`, `SMTPUTF8`, `CHUNKING`,
/// `SIZE 10485760` and `ENHANCEDSTATUSCODES`.
///
/// Built by chaining:
///
/// ```
/// use smtp_test_server::{Fault, ServerConfig, Stage, TestPki};
/// let pki = TestPki::shared();
/// let config = ServerConfig::new()
///     .starttls(&pki)
///     .user("alice", "secret")
///     .reject_recipient("nobody@example.org")
///     .fault(Fault::Shutdown(Stage::Data));
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub(crate) protocol: Protocol,
    pub(crate) hostname: String,
    pub(crate) greeting: Option<String>,
    pub(crate) pipelining: bool,
    pub(crate) eightbitmime: bool,
    pub(crate) smtputf8: bool,
    pub(crate) chunking: bool,
    pub(crate) enhanced_status_codes: bool,
    pub(crate) size: Option<u64>,
    pub(crate) limits: Option<String>,
    pub(crate) extra_extensions: Vec<String>,
    pub(crate) tls: Option<(TestPki, ServerCert, TlsMode)>,
    pub(crate) require_tls: bool,
    pub(crate) require_auth: bool,
    pub(crate) auth_mechanisms: Vec<String>,
    pub(crate) users: Vec<(String, String)>,
    pub(crate) oauth_tokens: Vec<(String, String)>,
    pub(crate) rejected_senders: Vec<String>,
    pub(crate) rejected_recipients: Vec<String>,
    pub(crate) tempfailed_recipients: Vec<String>,
    pub(crate) lmtp_replies: Vec<(String, String)>,
    pub(crate) max_recipients: Option<usize>,
    pub(crate) faults: Vec<(Option<usize>, Fault)>,
    pub(crate) ipv6: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerConfig {
    /// A well-behaved plaintext ESMTP server (see the type's docs for the defaults).
    pub fn new() -> Self {
        ServerConfig {
            protocol: Protocol::Smtp,
            hostname: "test.example".to_owned(),
            greeting: None,
            pipelining: true,
            eightbitmime: true,
            smtputf8: true,
            chunking: true,
            enhanced_status_codes: true,
            size: Some(10_485_760),
            limits: None,
            extra_extensions: Vec::new(),
            tls: None,
            require_tls: false,
            require_auth: false,
            auth_mechanisms: vec!["PLAIN".to_owned(), "LOGIN".to_owned()],
            users: Vec::new(),
            oauth_tokens: Vec::new(),
            rejected_senders: Vec::new(),
            rejected_recipients: Vec::new(),
            tempfailed_recipients: Vec::new(),
            lmtp_replies: Vec::new(),
            max_recipients: None,
            faults: Vec::new(),
            ipv6: false,
        }
    }

    /// Speak LMTP (RFC 2033): greeting `220 <host> LMTP`, only `LHLO` accepted, one reply per accepted recipient
    /// after the end of the body.
    pub fn lmtp(mut self) -> Self {
        self.protocol = Protocol::Lmtp;
        self
    }

    /// The server's name in the greeting and the first `EHLO` line (default `test.example`).
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = name.to_owned();
        self
    }

    /// Replace the whole greeting, e.g. `"220 mx.example ESMTP ready"`; lines separated by `\n` make a multiline
    /// greeting (`"220-first\n220 second"`).
    pub fn greeting(mut self, text: &str) -> Self {
        self.greeting = Some(text.to_owned());
        self
    }

    /// Advertise `PIPELINING` (RFC 2920; default on). The server always accepts pipelined commands anyway.
    pub fn pipelining(mut self, on: bool) -> Self {
        self.pipelining = on;
        self
    }

    /// Advertise and accept `8BITMIME` / `BODY=8BITMIME` (default on).
    pub fn eightbitmime(mut self, on: bool) -> Self {
        self.eightbitmime = on;
        self
    }

    /// Advertise and accept `SMTPUTF8` (RFC 6531; default on). Without it, non-ASCII addresses are refused.
    pub fn smtputf8(mut self, on: bool) -> Self {
        self.smtputf8 = on;
        self
    }

    /// Advertise `CHUNKING` (RFC 3030, `BDAT`; default on).
    pub fn chunking(mut self, on: bool) -> Self {
        self.chunking = on;
        self
    }

    /// Advertise `ENHANCEDSTATUSCODES` (RFC 2034) and put `x.y.z` codes in replies (default on).
    pub fn enhanced_status_codes(mut self, on: bool) -> Self {
        self.enhanced_status_codes = on;
        self
    }

    /// Advertise `SIZE n` (RFC 1870) and enforce it on `MAIL … SIZE=` and on the body (`552 5.3.4`);
    /// `None` advertises no SIZE (default `Some(10485760)`).
    pub fn size(mut self, limit: Option<u64>) -> Self {
        self.size = limit;
        self
    }

    /// Advertise `LIMITS <params>` (RFC 9422), e.g. `Some("RCPTMAX=2 MAILMAX=5")`. Only advertised; combine with
    /// [`max_recipients`](Self::max_recipients) to enforce a recipient limit.
    pub fn limits(mut self, params: Option<&str>) -> Self {
        self.limits = params.map(str::to_owned);
        self
    }

    /// Advertise one more `EHLO` keyword line verbatim, e.g. `"DSN"`.
    pub fn extension(mut self, line: &str) -> Self {
        self.extra_extensions.push(line.to_owned());
        self
    }

    /// Offer `STARTTLS` with the valid `localhost` certificate of `pki`.
    pub fn starttls(mut self, pki: &TestPki) -> Self {
        self.tls = Some((pki.clone(), ServerCert::Valid, TlsMode::StartTls));
        self
    }

    /// Speak TLS from the first byte (implicit TLS) with the valid `localhost` certificate of `pki`.
    pub fn implicit_tls(mut self, pki: &TestPki) -> Self {
        self.tls = Some((pki.clone(), ServerCert::Valid, TlsMode::Implicit));
        self
    }

    /// Present this certificate instead of the valid one (wrong name, unknown CA, expired). Needs
    /// [`starttls`](Self::starttls) or [`implicit_tls`](Self::implicit_tls) first; otherwise it does nothing.
    pub fn certificate(mut self, cert: ServerCert) -> Self {
        if let Some((_, c, _)) = &mut self.tls {
            *c = cert;
        }
        self
    }

    /// Refuse `AUTH`, `MAIL` (and so everything after) with `530 5.7.0` until TLS is active.
    pub fn require_tls(mut self, on: bool) -> Self {
        self.require_tls = on;
        self
    }

    /// Refuse `MAIL` with `530 5.7.0 Authentication required` until the client authenticated.
    pub fn require_auth(mut self, on: bool) -> Self {
        self.require_auth = on;
        self
    }

    /// Add an account for `AUTH`. With at least one user, `EHLO` advertises `AUTH <mechanisms>`
    /// (default `AUTH PLAIN LOGIN`), also before TLS, so tests can check that a client does not use it there.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_owned(), password.to_owned()));
        self
    }

    /// Add an OAuth 2.0 account: `XOAUTH2` and `OAUTHBEARER` (RFC 7628) succeed for `user` with bearer `token`.
    /// Any other token gets the mechanism's JSON error challenge (`334` with `{"status":"invalid_token",…}` for
    /// OAUTHBEARER, `{"status":"401",…}` for XOAUTH2), then `535 5.7.8` after the client's response; the session
    /// goes on. Advertise the mechanisms with [`auth_mechanisms`](Self::auth_mechanisms).
    pub fn oauth_token(mut self, user: &str, token: &str) -> Self {
        self.oauth_tokens.push((user.to_owned(), token.to_owned()));
        self
    }

    pub(crate) fn auth_enabled(&self) -> bool {
        !self.users.is_empty() || !self.oauth_tokens.is_empty()
    }

    /// The mechanisms advertised after `AUTH` (default `["PLAIN", "LOGIN"]`). Only `PLAIN` and `LOGIN` can succeed;
    /// others are advertised (to test mechanism choice) but answered `504 5.5.4`.
    pub fn auth_mechanisms(mut self, mechanisms: &[&str]) -> Self {
        self.auth_mechanisms = mechanisms.iter().map(|m| m.to_ascii_uppercase()).collect();
        self
    }

    /// `MAIL FROM` with this address (case-insensitive) gets `550 5.7.1`.
    pub fn reject_sender(mut self, address: &str) -> Self {
        self.rejected_senders.push(address.to_owned());
        self
    }

    /// `RCPT TO` with this address (case-insensitive) gets `550 5.1.1`.
    pub fn reject_recipient(mut self, address: &str) -> Self {
        self.rejected_recipients.push(address.to_owned());
        self
    }

    /// `RCPT TO` with this address (case-insensitive) gets `450 4.2.1`.
    pub fn tempfail_recipient(mut self, address: &str) -> Self {
        self.tempfailed_recipients.push(address.to_owned());
        self
    }

    /// In LMTP mode, the reply for this recipient after the end of the body, e.g.
    /// `"552 5.2.2 mailbox full"` (others get `250 2.0.0 <addr> delivered`). A recipient whose reply is not 2xx
    /// is left out of the recorded [`Message`](crate::Message).
    pub fn lmtp_reply(mut self, address: &str, reply: &str) -> Self {
        self.lmtp_replies
            .push((address.to_owned(), reply.to_owned()));
        self
    }

    /// Accept at most `n` recipients per transaction; more get `452 4.5.3 Too many recipients`.
    pub fn max_recipients(mut self, n: usize) -> Self {
        self.max_recipients = Some(n);
        self
    }

    /// Add a misbehaviour for every connection.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push((None, fault));
        self
    }

    /// Add a misbehaviour for one connection only: `index` counts accepted connections from 0, so
    /// `fault_on_connection(0, Fault::Shutdown(Stage::Greeting))` makes the first attempt fail and a retry succeed.
    pub fn fault_on_connection(mut self, index: usize, fault: Fault) -> Self {
        self.faults.push((Some(index), fault));
        self
    }

    /// Listen on `[::1]:0` instead of `127.0.0.1:0`.
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }
}
