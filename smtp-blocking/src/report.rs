//! The result of one send: [`SendReport`] with per-recipient results and an [`Outcome`]. No I/O here.

use std::fmt;

use smtp_proto::{EnhancedCode, Reply, Stage, TransactionReport};

use crate::error::{Error, ErrorKind};

/// The overall result of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Every recipient accepted the message.
    Accepted,
    /// Some recipients accepted the message and others refused it.
    PartiallyAccepted,
    /// The server refused the message (MAIL, every RCPT, DATA or the final reply).
    Rejected,
    /// The end of the message was sent and no verdict arrived (connection lost, deadline passed): the message may
    /// or may not have been accepted. Never counted as sent; retrying may deliver it twice.
    Unknown,
}

impl Outcome {
    /// `accepted`, `partial`, `rejected` or `unknown` (as in `smtp-send --json`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::PartiallyAccepted => "partial",
            Self::Rejected => "rejected",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which TLS the session ended up using.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsUsed {
    /// Implicit TLS from the first byte.
    Implicit,
    /// Upgraded with STARTTLS.
    StartTls,
    /// Plaintext.
    None,
}

impl TlsUsed {
    /// `implicit`, `starttls` or `none` (as in `smtp-send --json`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Implicit => "implicit",
            Self::StartTls => "starttls",
            Self::None => "none",
        }
    }
}

impl fmt::Display for TlsUsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recipient's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientResult {
    /// The recipient address.
    pub address: String,
    /// True only when the server positively accepted the message for this recipient.
    pub accepted: bool,
    /// The reply that decided it: the RCPT refusal, else the verdict after the data (per recipient in LMTP).
    pub reply: Option<Reply>,
    /// Not accepted here but worth sending again in a separate transaction: the recipient was beyond the server's
    /// RCPTMAX (RFC 9422) or got "too many recipients" (RFC 5321 §4.5.3.1.10).
    pub retry_separately: bool,
}

impl RecipientResult {
    /// The reply code, if a reply arrived.
    pub fn code(&self) -> Option<u16> {
        self.reply.as_ref().map(|r| r.code().get())
    }

    /// The enhanced status code, if the reply had one.
    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.reply.as_ref().and_then(Reply::enhanced)
    }

    /// The reply text, sanitized, without the enhanced code (available from [`enhanced`](Self::enhanced)).
    pub fn text(&self) -> Option<String> {
        let reply = self.reply.as_ref()?;
        let text = reply.message();
        Some(match reply.enhanced().map(|e| e.to_string()) {
            Some(code) => text
                .strip_prefix(code.as_str())
                .map(str::trim_start)
                .unwrap_or(&text)
                .to_owned(),
            None => text,
        })
    }
}

/// What happened to one message.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SendReport {
    /// The overall outcome.
    pub outcome: Outcome,
    /// Every recipient, in envelope order.
    pub recipients: Vec<RecipientResult>,
    /// The reply to MAIL FROM.
    pub mail_reply: Option<Reply>,
    /// The final reply after the data (SMTP).
    pub final_reply: Option<Reply>,
    /// Where the transaction failed and the reply that failed it, for `Rejected` and `PartiallyAccepted`.
    pub failure: Option<(Stage, Option<Reply>)>,
    /// The session error, when the connection ended during or right after the transaction (always set for
    /// `Unknown`; e.g. a `421` for a `Rejected` one).
    pub error: Option<Error>,
    /// The TLS in use.
    pub tls: TlsUsed,
    /// Body bytes taken from the source (summed over the transactions).
    pub body_bytes: u64,
    /// How many transactions this report covers: 1, or more when recipients the server asked to get the message
    /// separately (`retry_separately`: LIMITS RCPTMAX, "too many recipients") were sent it again in further
    /// transactions (see [`crate::resend`]).
    pub transactions: usize,
}

impl SendReport {
    /// Builds the report from the core's. A transaction that did not get to send its end (`NotSent`) is an error:
    /// the message was certainly not accepted.
    pub fn from_transaction(
        report: TransactionReport,
        tls: TlsUsed,
        body_bytes: u64,
        session_error: Option<Error>,
    ) -> Result<Self, Error> {
        let core_error = report.error.clone().map(Error::from_proto);
        let error = core_error.or(session_error);
        let outcome = match report.outcome {
            smtp_proto::Outcome::Accepted => Outcome::Accepted,
            smtp_proto::Outcome::PartiallyAccepted => Outcome::PartiallyAccepted,
            smtp_proto::Outcome::Rejected => Outcome::Rejected,
            smtp_proto::Outcome::Unknown => Outcome::Unknown,
            _ => {
                return Err(
                    error.unwrap_or_else(|| Error::new(ErrorKind::ConnectionClosed, Stage::Mail))
                );
            }
        };
        let recipients = report
            .recipients
            .iter()
            .map(|r| RecipientResult {
                address: r.address.as_str().to_owned(),
                accepted: r.accepted,
                reply: r.reply().cloned(),
                retry_separately: r.retry_separately,
            })
            .collect();
        Ok(Self {
            outcome,
            recipients,
            mail_reply: report.mail_reply,
            final_reply: report.final_reply,
            failure: report.failure,
            error,
            tls,
            body_bytes,
            transactions: 1,
        })
    }

    /// How many recipients accepted the message.
    pub fn accepted_count(&self) -> usize {
        self.recipients.iter().filter(|r| r.accepted).count()
    }

    /// True when every recipient accepted the message.
    pub fn is_accepted(&self) -> bool {
        self.outcome == Outcome::Accepted
    }

    /// True when retrying later may change the result: the outcome is unknown, or a refusal was temporary (`4xx`),
    /// or the session ended with a transient error.
    pub fn is_transient(&self) -> bool {
        match self.outcome {
            Outcome::Accepted => false,
            Outcome::Unknown => true,
            Outcome::PartiallyAccepted | Outcome::Rejected => {
                self.failure
                    .as_ref()
                    .and_then(|(_, r)| r.as_ref())
                    .is_some_and(Reply::is_transient)
                    || self
                        .recipients
                        .iter()
                        .filter(|r| !r.accepted)
                        .any(|r| r.reply.as_ref().is_some_and(Reply::is_transient))
                    || self.error.as_ref().is_some_and(Error::is_transient)
            }
        }
    }

    /// The exit status for a command-line tool (`sysexits.h`): 0 accepted by every recipient; `PartiallyAccepted`
    /// and `Rejected` exit 75 (`EX_TEMPFAIL`) when a refusal was temporary, else 69 (`EX_UNAVAILABLE`); `Unknown`
    /// exits 75 (the message may have been accepted: retrying may deliver it twice).
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Accepted => 0,
            Outcome::Unknown => 75,
            _ if self.is_transient() => 75,
            _ => 69,
        }
    }
}
