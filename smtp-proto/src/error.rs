//! Errors: what went wrong, at which stage, and what the server said.
//!
//! Server `4xx`/`5xx` replies to transaction commands are data (see [`crate::TransactionReport`]), not errors. An
//! [`Error`] ends the session: it is reported once, in [`crate::Event::Closed`]. A [`UsageError`] is a command the
//! application gave at the wrong time or with data the server cannot take; it leaves the machine unchanged.

use std::fmt;

use crate::diagnose::Mismatch;
use crate::framer::ReplyError;
use crate::reply::Reply;

/// The step of the session an error or deadline belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Opening the connection (adapters).
    Connect,
    /// Waiting for the `220` greeting.
    Greeting,
    /// EHLO, HELO or LHLO.
    Ehlo,
    /// The STARTTLS command.
    StartTls,
    /// The TLS handshake (implicit or after STARTTLS).
    TlsHandshake,
    /// The AUTH exchange.
    Auth,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// The DATA command, waiting for `354`.
    DataInit,
    /// Sending the body (or a non-final BDAT chunk).
    DataBlock,
    /// After the final dot or `BDAT ... LAST`, waiting for the verdict.
    DataTermination,
    /// RSET.
    Rset,
    /// NOOP.
    Noop,
    /// QUIT.
    Quit,
    /// Between transactions, nothing outstanding.
    Idle,
}

impl Stage {
    /// A short human name, usable after "during": "the greeting", "RCPT TO", "the message body"...
    pub fn describe(self) -> &'static str {
        match self {
            Self::Connect => "the connection attempt",
            Self::Greeting => "the greeting",
            Self::Ehlo => "EHLO",
            Self::StartTls => "STARTTLS",
            Self::TlsHandshake => "the TLS handshake",
            Self::Auth => "AUTH",
            Self::Mail => "MAIL FROM",
            Self::Rcpt => "RCPT TO",
            Self::DataInit => "DATA",
            Self::DataBlock => "the message body",
            Self::DataTermination => {
                "the end of the message (after the final dot, before the server's verdict)"
            }
            Self::Rset => "RSET",
            Self::Noop => "NOOP",
            Self::Quit => "QUIT",
            Self::Idle => "an idle moment",
        }
    }

    /// What the client waits for in this stage, usable after "waiting for": "the server's greeting"...
    pub fn awaited(self) -> &'static str {
        match self {
            Self::Connect => "the connection to open",
            Self::Greeting => "the server's greeting",
            Self::Ehlo => "the reply to EHLO",
            Self::StartTls => "the reply to STARTTLS",
            Self::TlsHandshake => "the TLS handshake to complete",
            Self::Auth => "the reply to AUTH",
            Self::Mail => "the reply to MAIL FROM",
            Self::Rcpt => "the reply to RCPT TO",
            Self::DataInit => "the reply to DATA",
            Self::DataBlock => "the server to take the message body",
            Self::DataTermination => "the server's verdict on the message (after the final dot)",
            Self::Rset => "the reply to RSET",
            Self::Noop => "the reply to NOOP",
            Self::Quit => "the reply to QUIT",
            Self::Idle => "nothing (the connection was idle)",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The stage's deadline passed.
    Timeout,
    /// The server closed the connection.
    ConnectionClosed,
    /// `421`: the server is shutting the channel (RFC 5321 §3.8).
    ServiceNotAvailable,
    /// The greeting was not `220` (typically `554`, RFC 5321 §3.1).
    GreetingRejected,
    /// A session command (EHLO, HELO, RSET, QUIT...) was refused.
    CommandRejected,
    /// The server's bytes broke the reply grammar or a configured size cap.
    Reply(ReplyError),
    /// A reply arrived that no command asked for, or with a code that makes no sense for the command.
    UnexpectedReply,
    /// The policy requires STARTTLS and the server did not advertise it.
    StartTlsUnavailable,
    /// The server refused STARTTLS while the policy requires it.
    StartTlsRejected,
    /// Bytes arrived after the `220` to STARTTLS and before the TLS handshake: a response-injection attempt
    /// (RFC 3207 §4.2, CVE-2011-0411 class). Never handed to TLS or read as replies.
    ResponseInjection,
    /// Credentials are configured and the server offers no mechanism the client can use with them.
    AuthUnavailable {
        /// What the server offered (may be empty).
        offered: Vec<crate::auth::Mechanism>,
    },
    /// Credentials would travel unencrypted and the configuration does not allow it.
    AuthRequiresTls,
    /// The server refused the credentials.
    AuthFailed {
        /// Decoded error details from the mechanism (e.g. XOAUTH2's JSON status), if any.
        details: Option<String>,
    },
    /// The AUTH exchange broke its protocol (too many challenges, undecodable challenge).
    AuthProtocol,
    /// SCRAM: the server could not prove that it knows the password (RFC 5802 §5.1 `v=`); it may be an impostor.
    AuthServerNotVerified,
    /// The TLS mode does not match what the server speaks; the text names the fix.
    ModeMismatch(Mismatch),
    /// The TLS handshake failed (reported by the adapter).
    Tls {
        /// The TLS library's description.
        details: String,
    },
}

/// A session-ending error: the kind, the stage, and the server reply that caused it (if one did).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    stage: Stage,
    reply: Option<Reply>,
}

impl Error {
    /// Builds an error.
    pub fn new(kind: ErrorKind, stage: Stage, reply: Option<Reply>) -> Self {
        Self { kind, stage, reply }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Where it went wrong.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The server's reply, when the error is a reply.
    pub fn reply(&self) -> Option<&Reply> {
        self.reply.as_ref()
    }

    /// True when trying again later may succeed: timeouts, lost connections, `4xx` replies.
    pub fn is_transient(&self) -> bool {
        match &self.kind {
            ErrorKind::Timeout | ErrorKind::ConnectionClosed | ErrorKind::ServiceNotAvailable => {
                true
            }
            ErrorKind::ModeMismatch(_)
            | ErrorKind::ResponseInjection
            | ErrorKind::AuthRequiresTls
            | ErrorKind::AuthUnavailable { .. }
            | ErrorKind::StartTlsUnavailable
            | ErrorKind::Tls { .. }
            | ErrorKind::Reply(_)
            | ErrorKind::UnexpectedReply
            | ErrorKind::AuthProtocol
            | ErrorKind::AuthServerNotVerified => false,
            _ => self.reply.as_ref().is_some_and(|r| r.code().is_transient()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = self.stage;
        match &self.kind {
            ErrorKind::Timeout => write!(f, "timed out waiting for {}", stage.awaited())?,
            ErrorKind::ConnectionClosed => write!(f, "the server closed the connection during {stage}")?,
            ErrorKind::ServiceNotAvailable => {
                write!(f, "the server is closing the connection (421) during {stage}; try again later")?
            }
            ErrorKind::GreetingRejected => {
                f.write_str("the server refused the session in its greeting; it does not accept mail from this client now")?
            }
            ErrorKind::CommandRejected => write!(f, "the server refused {stage}")?,
            ErrorKind::Reply(e) => write!(f, "bad reply from the server during {stage}: {e}")?,
            ErrorKind::UnexpectedReply => write!(f, "the server sent a reply that does not fit {stage}; closing")?,
            ErrorKind::StartTlsUnavailable => f.write_str(
                "the server does not offer STARTTLS and the TLS policy requires it; refusing to continue in \
                 plaintext (use implicit TLS if the port is 465, or allow plaintext explicitly for a trusted server)",
            )?,
            ErrorKind::StartTlsRejected => f.write_str(
                "the server refused STARTTLS and the TLS policy requires it; refusing to continue in plaintext",
            )?,
            ErrorKind::ResponseInjection => f.write_str(
                "the server sent extra bytes after agreeing to STARTTLS, before the TLS handshake; this is a \
                 response-injection attack or a broken middlebox, so the connection was closed",
            )?,
            ErrorKind::AuthUnavailable { offered } => {
                if offered.is_empty() {
                    f.write_str("credentials were given but the server offers no AUTH at this point (check the port, and that TLS is on: many servers offer AUTH only after STARTTLS)")?
                } else {
                    let names: Vec<&str> = offered.iter().map(|m| m.as_str()).collect();
                    write!(f, "the server offers AUTH {} and none fits the given credentials", names.join(" "))?
                }
            }
            ErrorKind::AuthRequiresTls => f.write_str(
                "refusing to send credentials over an unencrypted connection; use STARTTLS or implicit TLS, or \
                 allow insecure AUTH explicitly",
            )?,
            ErrorKind::AuthFailed { details } => {
                f.write_str("authentication failed: the server refused the credentials")?;
                if let Some(d) = details {
                    write!(f, " ({d})")?;
                }
            }
            ErrorKind::AuthProtocol => f.write_str("the AUTH exchange broke its protocol; closing")?,
            ErrorKind::AuthServerNotVerified => f.write_str(
                "the server could not prove it knows the password (SCRAM server signature mismatch); it may be an \
                 impostor, so the session was closed",
            )?,
            ErrorKind::ModeMismatch(m) => write!(f, "{m}")?,
            ErrorKind::Tls { details } => write!(f, "TLS failed during {stage}: {details}")?,
        }
        if let Some(reply) = &self.reply {
            write!(f, "; the server said: {reply}")?;
            if let Some(meaning) = reply.enhanced().and_then(|e| e.meaning()) {
                write!(f, " ({meaning})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Reply(e) => Some(e),
            _ => None,
        }
    }
}

/// A command the application gave that the machine cannot carry out now; the machine is unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// The session is not ready for this (greeting, EHLO, TLS or AUTH not done yet). Wait for
    /// [`crate::Event::Ready`].
    NotReady,
    /// The session has ended.
    Closed,
    /// A transaction is already in progress; wait for its [`crate::Event::TransactionComplete`].
    TransactionInProgress,
    /// The envelope has no recipient.
    NoRecipients,
    /// No body is expected now (no transaction, body already finished, or the transaction already failed: its
    /// report is or will be in [`crate::Event::TransactionComplete`]).
    NoBodyExpected,
    /// `tls_established` was called while no TLS handshake was requested.
    TlsNotExpected,
    /// An address or the message (RFC 6532 UTF-8 headers) needs SMTPUTF8 (RFC 6531) and the server does not offer it.
    Smtputf8Unsupported {
        /// The address that needs it; empty when the message itself was declared internationalized.
        address: String,
    },
    /// The body was declared 8-bit and the server does not offer 8BITMIME (RFC 6152).
    EightBitMimeUnsupported,
    /// The body was declared binary and the server does not offer BINARYMIME and CHUNKING (RFC 3030).
    BinaryMimeUnsupported,
    /// The message is larger than the server's declared SIZE limit (RFC 1870); nothing was sent.
    MessageTooLarge {
        /// The declared message size.
        size: u64,
        /// The server's limit.
        limit: u64,
    },
    /// REQUIRETLS (RFC 8689) was asked for and the session is not TLS or the server does not offer it.
    RequireTlsUnavailable,
    /// DSN parameters were given and the server does not offer DSN (RFC 3461).
    DsnUnsupported,
    /// The server's MAILMAX (RFC 9422) transactions were used on this connection: open a new connection.
    MailMaxReached {
        /// The server's limit.
        limit: u32,
    },
    /// [`crate::Client::retry_auth`] was called while no refused token is waiting for a retry: only valid right
    /// after [`crate::Event::AuthRejected`], once per session.
    NoAuthToRetry,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotReady => f.write_str("the session is not ready yet; wait for the Ready event"),
            Self::Closed => f.write_str("the session is closed"),
            Self::TransactionInProgress => f.write_str("a transaction is already in progress"),
            Self::NoRecipients => f.write_str("the envelope has no recipient"),
            Self::NoBodyExpected => f.write_str("no message body is expected now"),
            Self::TlsNotExpected => f.write_str("no TLS handshake was requested"),
            Self::Smtputf8Unsupported { address } if address.is_empty() => f.write_str(
                "the message has UTF-8 headers (SMTPUTF8) and the server does not offer SMTPUTF8; encode the headers \
                 (RFC 2047) instead",
            ),
            Self::Smtputf8Unsupported { address } => write!(
                f,
                "the address {address:?} needs SMTPUTF8 and the server does not offer it; use an ASCII address"
            ),
            Self::EightBitMimeUnsupported => {
                f.write_str("the body is 8-bit and the server does not offer 8BITMIME; encode it as 7-bit MIME")
            }
            Self::BinaryMimeUnsupported => {
                f.write_str("the body is binary and the server does not offer BINARYMIME with CHUNKING")
            }
            Self::MessageTooLarge { size, limit } => write!(
                f,
                "the message is {size} bytes and the server accepts at most {limit} bytes (SIZE); nothing was sent"
            ),
            Self::RequireTlsUnavailable => f.write_str(
                "REQUIRETLS was requested but the session is not encrypted or the server does not offer REQUIRETLS",
            ),
            Self::DsnUnsupported => f.write_str("DSN parameters were given and the server does not offer DSN"),
            Self::MailMaxReached { limit } => write!(
                f,
                "the server allows {limit} transactions per connection (LIMITS MAILMAX); open a new connection"
            ),
            Self::NoAuthToRetry => f.write_str(
                "no refused token is waiting for a retry: retry_auth is valid once, right after the AuthRejected event",
            ),
        }
    }
}

impl std::error::Error for UsageError {}
