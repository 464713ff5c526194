//! The one error type of the adapters: what went wrong ([`ErrorKind`]), at which [`Stage`], the server's reply
//! if one caused it, and the underlying cause (an I/O or TLS error) when there is one.
//!
//! This module does no I/O: the smol adapter uses the same type.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

use smtp_proto::{EnhancedCode, Mechanism, Mismatch, Reply, ReplyError, Stage, UsageError};

pub use crate::socks::{ProxyError, ReplyCode};

/// What went wrong. Protocol kinds mirror [`smtp_proto::ErrorKind`]; the others belong to the adapters
/// (name resolution, connecting, TLS configuration, reading the message).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is unusable: a bad URL, an invalid EHLO name, conflicting options.
    Config {
        /// What is wrong, as a sentence.
        details: String,
    },
    /// The host name could not be resolved to any address.
    Resolve,
    /// No TCP connection could be opened to any resolved address (refused, unreachable, connect timeout), or the
    /// Unix socket could not be opened.
    Connect,
    /// The SOCKS5 proxy could not connect to the server, refused the credentials, or broke its protocol. The
    /// [`ProxyError`] says which, with RFC 1928's meaning of the proxy's reply code.
    Proxy(ProxyError),
    /// The deadline of a stage passed.
    Timeout,
    /// The server closed the connection (or it was reset).
    ConnectionClosed,
    /// The server sent `421`: it is closing the channel (RFC 5321 §3.8). Try again later.
    ServiceNotAvailable,
    /// The greeting was not `220`.
    GreetingRejected,
    /// A session command (EHLO, RSET, NOOP, QUIT) was refused.
    CommandRejected,
    /// The server's bytes broke the reply grammar or a size cap.
    MalformedReply(ReplyError),
    /// A reply arrived that no command asked for, or that makes no sense for the command.
    UnexpectedReply,
    /// STARTTLS is required and the server does not offer it.
    StartTlsUnavailable,
    /// STARTTLS is required and the server refused it.
    StartTlsRejected,
    /// Bytes arrived after the `220` to STARTTLS, before the TLS handshake (RFC 3207 §4.2, CVE-2011-0411 class).
    ResponseInjection,
    /// Credentials are configured and the server offers no usable mechanism.
    AuthUnavailable {
        /// What the server offered.
        offered: Vec<Mechanism>,
    },
    /// Credentials would be sent in plaintext and that was not explicitly allowed.
    AuthRequiresTls,
    /// The server refused the credentials.
    AuthFailed {
        /// Decoded details from the mechanism (e.g. XOAUTH2's JSON status), if any.
        details: Option<String>,
    },
    /// The AUTH exchange broke its protocol.
    AuthProtocol,
    /// The OAuth 2.0 token provider ([`crate::ConnectOptions::with_oauth_token_provider`]) failed to give a token;
    /// its error is the cause. `refresh` tells whether it was asked after the server refused a token.
    TokenProvider {
        /// Asked for a fresh token after a refusal (else for the first token of a connection).
        refresh: bool,
    },
    /// SCRAM: the server could not prove it knows the password (a possible impostor); the session was closed.
    AuthServerNotVerified,
    /// The TLS mode does not match what the server speaks; the message names the fix.
    ModeMismatch(Mismatch),
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol error...).
    Tls {
        /// What failed, as a sentence with the fix when one is known.
        details: String,
    },
    /// The TLS configuration could not be built (unreadable CA file, bad client certificate or key...).
    TlsConfig {
        /// What is wrong.
        details: String,
    },
    /// The envelope or message cannot be sent to this server as it is (SMTPUTF8 or 8BITMIME missing, over the
    /// server's SIZE limit...). Nothing was sent.
    Message(UsageError),
    /// Reading the message body from its source failed. The transaction was abandoned.
    BodyRead,
    /// Another I/O error on the connection.
    Io,
    /// The connection is already closed; connect again.
    Closed,
}

impl ErrorKind {
    /// A stable snake_case name, for logs and machine-readable output (`smtp-send --json`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Config { .. } => "config",
            Self::Resolve => "resolve",
            Self::Connect => "connect",
            Self::Proxy(_) => "proxy",
            Self::Timeout => "timeout",
            Self::ConnectionClosed => "connection_closed",
            Self::ServiceNotAvailable => "service_not_available",
            Self::GreetingRejected => "greeting_rejected",
            Self::CommandRejected => "command_rejected",
            Self::MalformedReply(_) => "malformed_reply",
            Self::UnexpectedReply => "unexpected_reply",
            Self::StartTlsUnavailable => "starttls_unavailable",
            Self::StartTlsRejected => "starttls_rejected",
            Self::ResponseInjection => "response_injection",
            Self::AuthUnavailable { .. } => "auth_unavailable",
            Self::AuthRequiresTls => "auth_requires_tls",
            Self::AuthFailed { .. } => "auth_failed",
            Self::AuthProtocol => "auth_protocol",
            Self::TokenProvider { .. } => "token_provider",
            Self::AuthServerNotVerified => "auth_server_not_verified",
            Self::ModeMismatch(_) => "mode_mismatch",
            Self::Tls { .. } => "tls",
            Self::TlsConfig { .. } => "tls_config",
            Self::Message(_) => "message",
            Self::BodyRead => "body_read",
            Self::Io => "io",
            Self::Closed => "closed",
        }
    }
}

/// A stable snake_case name for a [`Stage`] (`"greeting"`, `"rcpt"`, `"data_termination"`...), for machine-readable
/// output.
pub fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Connect => "connect",
        Stage::Greeting => "greeting",
        Stage::Ehlo => "ehlo",
        Stage::StartTls => "starttls",
        Stage::TlsHandshake => "tls_handshake",
        Stage::Auth => "auth",
        Stage::Mail => "mail",
        Stage::Rcpt => "rcpt",
        Stage::DataInit => "data",
        Stage::DataBlock => "data_block",
        Stage::DataTermination => "data_termination",
        Stage::Rset => "rset",
        Stage::Noop => "noop",
        Stage::Quit => "quit",
        Stage::Idle => "idle",
        _ => "other",
    }
}

/// Why a connection or a send failed: the kind, the stage, the server's reply that caused it (code, enhanced code,
/// text) and the underlying cause.
///
/// `Display` is a sentence a user can act on; [`source`](std::error::Error::source) gives the cause (an
/// [`io::Error`], a rustls error, or the core's [`ReplyError`]).
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    stage: Stage,
    reply: Option<Reply>,
    /// Extra context for the message (e.g. "127.0.0.1:587").
    context: Option<String>,
    cause: Option<Arc<dyn StdError + Send + Sync>>,
}

impl Error {
    /// Builds an error.
    pub fn new(kind: ErrorKind, stage: Stage) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                stage,
                reply: None,
                context: None,
                cause: None,
            }),
        }
    }

    /// A configuration error (bad URL or option).
    pub fn config(details: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Config {
                details: details.into(),
            },
            Stage::Connect,
        )
    }

    /// Attaches the server reply.
    #[must_use]
    pub fn with_reply(mut self, reply: Option<Reply>) -> Self {
        self.inner.reply = reply;
        self
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_cause(mut self, cause: impl StdError + Send + Sync + 'static) -> Self {
        self.inner.cause = Some(Arc::new(cause));
        self
    }

    /// Attaches a shared cause (kept when the error is cloned).
    #[must_use]
    pub fn with_shared_cause(mut self, cause: Option<Arc<dyn StdError + Send + Sync>>) -> Self {
        if cause.is_some() {
            self.inner.cause = cause;
        }
        self
    }

    /// Attaches context for the message, e.g. the address that was being connected to.
    #[must_use]
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.inner.context = Some(context.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// The stage of the session it happened in.
    pub fn stage(&self) -> Stage {
        self.inner.stage
    }

    /// The server reply that caused it, if one did.
    pub fn reply(&self) -> Option<&Reply> {
        self.inner.reply.as_ref()
    }

    /// The reply code (e.g. 421, 535), if a reply caused it.
    pub fn code(&self) -> Option<u16> {
        self.inner.reply.as_ref().map(|r| r.code().get())
    }

    /// The enhanced status code (RFC 3463), if the reply had one.
    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.inner.reply.as_ref().and_then(Reply::enhanced)
    }

    /// The reply text, sanitized for display, if a reply caused it.
    pub fn text(&self) -> Option<String> {
        self.inner.reply.as_ref().map(Reply::message)
    }

    /// The underlying cause, if any (also available through [`std::error::Error::source`]).
    pub fn cause(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.inner.cause.as_deref()
    }

    /// True when trying again later may succeed: timeouts, lost connections, connect failures, `421` and other
    /// `4xx` replies. Mismatched TLS modes, certificate problems, refused credentials and protocol violations are
    /// not transient: retrying unchanged fails the same way.
    pub fn is_transient(&self) -> bool {
        match &self.inner.kind {
            ErrorKind::Timeout
            | ErrorKind::ConnectionClosed
            | ErrorKind::ServiceNotAvailable
            | ErrorKind::Connect
            | ErrorKind::Io => true,
            ErrorKind::Proxy(p) => p.is_transient(),
            ErrorKind::GreetingRejected
            | ErrorKind::CommandRejected
            | ErrorKind::AuthFailed { .. } => {
                self.inner.reply.as_ref().is_some_and(Reply::is_transient)
            }
            _ => false,
        }
    }

    /// The exit status a command-line tool should use for this error, following `sysexits.h` as mail tools do:
    ///
    /// | status | meaning |
    /// |---|---|
    /// | 64 `EX_USAGE` | bad configuration or URL |
    /// | 65 `EX_DATAERR` | the message cannot be sent as it is, or could not be read |
    /// | 68 `EX_NOHOST` | the host name does not resolve |
    /// | 69 `EX_UNAVAILABLE` | the server refused permanently (5xx greeting or command) |
    /// | 75 `EX_TEMPFAIL` | temporary: timeout, connection lost or refused, 421, other 4xx |
    /// | 76 `EX_PROTOCOL` | the server broke the protocol (malformed replies, injected bytes) |
    /// | 77 `EX_NOPERM` | authentication refused or impossible |
    /// | 78 `EX_CONFIG` | TLS problem: mode mismatch, untrusted certificate, STARTTLS missing, bad TLS files |
    pub fn exit_code(&self) -> u8 {
        match &self.inner.kind {
            ErrorKind::Config { .. } => 64,
            ErrorKind::Message(_) | ErrorKind::BodyRead => 65,
            ErrorKind::Resolve => 68,
            ErrorKind::Proxy(p) if p.is_transient() => 75,
            ErrorKind::Proxy(
                ProxyError::AuthFailed { .. } | ProxyError::NoAcceptableMethod { .. },
            ) => 77,
            ErrorKind::Proxy(ProxyError::Protocol { .. }) => 76,
            ErrorKind::Proxy(ProxyError::Invalid { .. }) => 64,
            ErrorKind::Proxy(_) => 69,
            ErrorKind::MalformedReply(_)
            | ErrorKind::UnexpectedReply
            | ErrorKind::ResponseInjection
            | ErrorKind::AuthProtocol => 76,
            ErrorKind::AuthFailed { .. } if self.is_transient() => 75,
            ErrorKind::AuthFailed { .. }
            | ErrorKind::AuthUnavailable { .. }
            | ErrorKind::AuthServerNotVerified
            | ErrorKind::TokenProvider { .. } => 77,
            ErrorKind::ModeMismatch(_)
            | ErrorKind::Tls { .. }
            | ErrorKind::TlsConfig { .. }
            | ErrorKind::StartTlsUnavailable
            | ErrorKind::StartTlsRejected
            | ErrorKind::AuthRequiresTls => 78,
            ErrorKind::GreetingRejected | ErrorKind::CommandRejected if !self.is_transient() => 69,
            _ => 75,
        }
    }

    /// Converts the core's session error, keeping its kind, stage and reply.
    pub fn from_proto(e: smtp_proto::Error) -> Self {
        use smtp_proto::ErrorKind as P;
        let kind = match e.kind().clone() {
            P::Timeout => ErrorKind::Timeout,
            P::ConnectionClosed => ErrorKind::ConnectionClosed,
            P::ServiceNotAvailable => ErrorKind::ServiceNotAvailable,
            P::GreetingRejected => ErrorKind::GreetingRejected,
            P::CommandRejected => ErrorKind::CommandRejected,
            P::Reply(r) => ErrorKind::MalformedReply(r),
            P::UnexpectedReply => ErrorKind::UnexpectedReply,
            P::StartTlsUnavailable => ErrorKind::StartTlsUnavailable,
            P::StartTlsRejected => ErrorKind::StartTlsRejected,
            P::ResponseInjection => ErrorKind::ResponseInjection,
            P::AuthUnavailable { offered } => ErrorKind::AuthUnavailable { offered },
            P::AuthRequiresTls => ErrorKind::AuthRequiresTls,
            P::AuthFailed { details } => ErrorKind::AuthFailed { details },
            P::AuthProtocol => ErrorKind::AuthProtocol,
            P::AuthServerNotVerified => ErrorKind::AuthServerNotVerified,
            P::ModeMismatch(m) => ErrorKind::ModeMismatch(m),
            P::Tls { details } => ErrorKind::Tls { details },
            other => ErrorKind::Config {
                details: format!("unhandled core error {other:?}"),
            },
        };
        Self::new(kind, e.stage()).with_reply(e.reply().cloned())
    }

    /// The core's error for the protocol kinds, to reuse its sentences.
    fn as_proto(&self) -> Option<smtp_proto::Error> {
        use smtp_proto::ErrorKind as P;
        let kind = match &self.inner.kind {
            ErrorKind::Timeout => P::Timeout,
            ErrorKind::ConnectionClosed => P::ConnectionClosed,
            ErrorKind::ServiceNotAvailable => P::ServiceNotAvailable,
            ErrorKind::GreetingRejected => P::GreetingRejected,
            ErrorKind::CommandRejected => P::CommandRejected,
            ErrorKind::MalformedReply(r) => P::Reply(r.clone()),
            ErrorKind::UnexpectedReply => P::UnexpectedReply,
            ErrorKind::StartTlsUnavailable => P::StartTlsUnavailable,
            ErrorKind::StartTlsRejected => P::StartTlsRejected,
            ErrorKind::ResponseInjection => P::ResponseInjection,
            ErrorKind::AuthUnavailable { offered } => P::AuthUnavailable {
                offered: offered.clone(),
            },
            ErrorKind::AuthRequiresTls => P::AuthRequiresTls,
            ErrorKind::AuthFailed { details } => P::AuthFailed {
                details: details.clone(),
            },
            ErrorKind::AuthProtocol => P::AuthProtocol,
            ErrorKind::AuthServerNotVerified => P::AuthServerNotVerified,
            ErrorKind::ModeMismatch(m) => P::ModeMismatch(m.clone()),
            ErrorKind::Tls { details } => P::Tls {
                details: details.clone(),
            },
            _ => return None,
        };
        Some(smtp_proto::Error::new(
            kind,
            self.inner.stage,
            self.inner.reply.clone(),
        ))
    }

    pub(crate) fn io(kind: ErrorKind, stage: Stage, e: io::Error) -> Self {
        Self::new(kind, stage).with_cause(e)
    }
}

impl From<smtp_proto::Error> for Error {
    fn from(e: smtp_proto::Error) -> Self {
        Self::from_proto(e)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("stage", &self.inner.stage);
        if let Some(r) = &self.inner.reply {
            d.field("reply", r);
        }
        if let Some(c) = &self.inner.context {
            d.field("context", c);
        }
        if let Some(c) = &self.inner.cause {
            d.field("cause", &c.to_string());
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ctx = self.inner.context.as_deref();
        let cause = self.inner.cause.as_ref().map(|c| c.to_string());
        match &self.inner.kind {
            ErrorKind::Config { details } => write!(f, "invalid configuration: {details}")?,
            ErrorKind::Resolve => {
                write!(f, "could not resolve the host name")?;
                if let Some(c) = ctx {
                    write!(f, " {c:?}")?;
                }
                f.write_str("; check the server name (and DNS)")?;
                if let Some(c) = &cause {
                    write!(f, " ({c})")?;
                }
                return Ok(());
            }
            ErrorKind::Connect => {
                f.write_str("could not connect")?;
                if let Some(c) = ctx {
                    write!(f, " to {c}")?;
                }
                if let Some(c) = &cause {
                    write!(f, " ({c})")?;
                }
                if ctx.is_some_and(|c| c.starts_with("unix:")) {
                    return f.write_str(
                        "; check the socket path, that the server is running, and that this user may open it",
                    );
                }
                return f.write_str(
                    "; check the host and port, and that the server is running and reachable",
                );
            }
            ErrorKind::Proxy(p) => {
                f.write_str("SOCKS5 proxy")?;
                if let Some(c) = ctx {
                    write!(f, " {c}")?;
                }
                write!(f, ": {p}")?;
                if let Some(c) = &cause {
                    write!(f, " ({c})")?;
                }
                return Ok(());
            }
            ErrorKind::Tls { details } if self.inner.stage == Stage::TlsHandshake => {
                write!(f, "the TLS handshake failed: {details}")?
            }
            ErrorKind::TlsConfig { details } => write!(f, "TLS configuration error: {details}")?,
            ErrorKind::TokenProvider { refresh } => {
                f.write_str(if *refresh {
                    "the OAuth token provider gave no fresh token after the server refused the previous one"
                } else {
                    "the OAuth token provider gave no token"
                })?;
                if let Some(c) = &cause {
                    write!(f, ": {c}")?;
                }
                return Ok(());
            }
            ErrorKind::Message(u) => write!(f, "the message was not sent: {u}")?,
            ErrorKind::BodyRead => {
                f.write_str("reading the message body failed; the transaction was abandoned")?
            }
            ErrorKind::Io => write!(f, "I/O error during {}", self.inner.stage)?,
            ErrorKind::Closed => match ctx {
                // e.g. a closed pool or a connection poisoned by a dropped send: the context says which.
                Some(c) => write!(f, "the connection is closed: {c}")?,
                None => f.write_str("the connection is closed; connect again")?,
            },
            _ => match self.as_proto() {
                Some(p) => {
                    // The core's sentence already includes the reply.
                    write!(f, "{p}")?;
                    if let (Some(c), ErrorKind::ConnectionClosed | ErrorKind::Timeout) =
                        (&cause, &self.inner.kind)
                    {
                        write!(f, " ({c})")?;
                    }
                    return Ok(());
                }
                None => write!(f, "{:?} during {}", self.inner.kind, self.inner.stage)?,
            },
        }
        if let Some(reply) = &self.inner.reply {
            write!(f, "; the server said: {reply}")?;
        }
        if let (Some(c), ErrorKind::BodyRead | ErrorKind::Io | ErrorKind::TlsConfig { .. }) =
            (&cause, &self.inner.kind)
        {
            write!(f, ": {c}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        if let Some(c) = &self.inner.cause {
            return Some(&**c as &(dyn StdError + 'static));
        }
        match &self.inner.kind {
            ErrorKind::MalformedReply(e) => Some(e),
            ErrorKind::Message(e) => Some(e),
            ErrorKind::Proxy(e) => Some(e),
            _ => None,
        }
    }
}
