//! What the machine tells the application: events, transaction reports and transcript entries.

use std::time::Instant;

use crate::capability::Capabilities;
use crate::error::{Error, Stage};
use crate::path::Address;
use crate::reply::Reply;

/// Identifies one transaction on a connection (returned by [`crate::Client::send_mail`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub(crate) u64);

impl TransactionId {
    /// The sequence number on this connection, from 1.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// An output of the machine, drained with [`crate::Client::poll_event`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// Do the TLS handshake now (implicit TLS at the start, or after the server's `220` to STARTTLS), then call
    /// [`crate::Client::tls_established`]. Before that, any byte read from the socket in plaintext is an attack.
    StartTls,
    /// The session is ready for transactions: greeting, EHLO, TLS and AUTH are done as configured.
    Ready {
        /// What the server offers (from the last EHLO/LHLO).
        capabilities: Capabilities,
        /// Whether the connection is encrypted.
        tls: bool,
        /// Whether AUTH succeeded.
        authenticated: bool,
    },
    /// The server answered one RCPT.
    RecipientReply {
        /// The transaction.
        id: TransactionId,
        /// The recipient's index in the envelope.
        index: usize,
        /// The reply.
        reply: Reply,
    },
    /// The body may be written with [`crate::Client::write_body`] (after `354`, or at once with BDAT).
    ReadyForBody {
        /// The transaction.
        id: TransactionId,
    },
    /// A transaction ended; the report has the outcome and every recipient's result.
    TransactionComplete(Box<TransactionReport>),
    /// The server refused the OAuth 2.0 bearer token ([`crate::Config::token_refresh`] on): the session is paused
    /// in the AUTH stage and still usable. Call [`crate::Client::retry_auth`] with fresh credentials (once), or
    /// [`crate::Client::quit`]. `error` is [`crate::ErrorKind::AuthFailed`] with the server's decoded error
    /// challenge (RFC 7628 §3.2.2 JSON: `status`, `scope`) and its final reply.
    AuthRejected {
        /// Why: the server's decoded status and reply.
        error: Error,
    },
    /// The reply to [`crate::Client::noop`].
    NoopReply {
        /// The reply.
        reply: Reply,
    },
    /// The session ended: `error` is `None` after a clean QUIT. Emitted exactly once; nothing is transmitted after.
    Closed {
        /// Why, unless the session ended cleanly.
        error: Option<Error>,
    },
}

/// The overall result of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The server accepted the message for every recipient.
    Accepted,
    /// The server accepted the message for some recipients and refused others.
    PartiallyAccepted,
    /// The server refused the message (MAIL, every RCPT, DATA, or the final reply was negative).
    Rejected,
    /// The connection failed before the end of the data was sent: the server cannot have accepted it.
    NotSent,
    /// The end of the data was sent and no verdict arrived (connection lost or deadline passed): the message may or
    /// may not have been accepted. Never counted as sent.
    Unknown,
}

impl Outcome {
    /// Accepted for at least one recipient.
    pub fn is_delivered(self) -> bool {
        matches!(self, Self::Accepted | Self::PartiallyAccepted)
    }
}

/// One recipient's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientReport {
    /// The recipient.
    pub address: Address,
    /// The reply to its RCPT, if one arrived.
    pub rcpt_reply: Option<Reply>,
    /// The verdict on the message for this recipient: the reply after the data (per recipient in LMTP), or the
    /// transaction's final reply, if one arrived.
    pub data_reply: Option<Reply>,
    /// True only when the server positively accepted the message for this recipient.
    pub accepted: bool,
    /// Not accepted here but worth sending in a further transaction on the same connection: the recipient was beyond
    /// the server's RCPTMAX (RFC 9422) and not tried, or the server answered "too many recipients" (`452`, or a
    /// legacy `552 5.5.3`; RFC 5321 §4.5.3.1.10).
    pub retry_separately: bool,
}

impl RecipientReport {
    /// The reply that decided this recipient's result: the data verdict, else the RCPT reply.
    pub fn reply(&self) -> Option<&Reply> {
        match (&self.rcpt_reply, &self.data_reply) {
            (Some(r), _) if !r.code().is_positive_completion() => Some(r),
            (_, Some(d)) => Some(d),
            (r, None) => r.as_ref(),
        }
    }
}

/// The full result of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionReport {
    /// The transaction.
    pub id: TransactionId,
    /// The overall outcome.
    pub outcome: Outcome,
    /// The reply to MAIL FROM, if one arrived.
    pub mail_reply: Option<Reply>,
    /// Every recipient in envelope order.
    pub recipients: Vec<RecipientReport>,
    /// The final reply after the data (SMTP), if one arrived.
    pub final_reply: Option<Reply>,
    /// Where the transaction failed, and the reply that failed it (for `Rejected`), if it failed.
    pub failure: Option<(Stage, Option<Reply>)>,
    /// The session error that interrupted it (for `NotSent` and `Unknown`).
    pub error: Option<Error>,
}

impl TransactionReport {
    /// How many recipients accepted the message.
    pub fn accepted_count(&self) -> usize {
        self.recipients.iter().filter(|r| r.accepted).count()
    }

    /// True when retrying later may change the result for at least one recipient: a `4xx` on some path, or an
    /// interrupted session.
    pub fn is_transient(&self) -> bool {
        match self.outcome {
            Outcome::Accepted => false,
            Outcome::NotSent | Outcome::Unknown => true,
            Outcome::PartiallyAccepted | Outcome::Rejected => {
                let failure_transient = self
                    .failure
                    .as_ref()
                    .and_then(|(_, reply)| reply.as_ref())
                    .is_some_and(|r| r.code().is_transient());
                failure_transient
                    || self.recipients.iter().filter(|r| !r.accepted).any(|r| {
                        r.retry_separately || r.reply().is_some_and(|x| x.code().is_transient())
                    })
            }
        }
    }
}

/// Which side said a transcript line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The client (commands; AUTH payloads redacted; bodies summarised).
    Client,
    /// The server (replies).
    Server,
}

/// One line of the session transcript (enabled with [`crate::Config::transcript`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptEntry {
    /// When it was sent or received (the `now` the machine was given).
    pub at: Instant,
    /// Who said it.
    pub direction: Direction,
    /// The text, safe to print: credentials redacted, control characters removed.
    pub text: String,
}
