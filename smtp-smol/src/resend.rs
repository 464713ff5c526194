//! Sending a message again to the recipients the server asked to get it separately, and LIMITS MAILMAX. The plan
//! and the merged report are [`smtp_blocking::resend`]'s, shared with the blocking adapter.

use std::io;

use futures_lite::io::AsyncRead;
use smtp_blocking::resend::ResendPlan;
use smtp_blocking::{Error, ErrorKind, SendReport};
use smtp_proto::{Envelope, Stage, UsageError};

use crate::connection::{Attempt, Connection};

/// The server's LIMITS MAILMAX when `result` is the refusal to start one more transaction on the connection.
pub(crate) fn mail_max_reached(result: &Result<SendReport, Error>) -> Option<u32> {
    match result {
        Err(e) => match e.kind() {
            ErrorKind::Message(UsageError::MailMaxReached { limit }) => Some(*limit),
            _ => None,
        },
        Ok(_) => None,
    }
}

impl Connection {
    /// [`send`](Self::send) for a body that can be read again: `open` is called once per transaction. When the
    /// server takes fewer recipients per transaction than the envelope has (LIMITS RCPTMAX, RFC 9422; or a `452` /
    /// `552 5.5.3` "too many recipients" to RCPT, RFC 5321 §4.5.3.1.10), the message is sent again to the
    /// recipients marked [`retry_separately`](smtp_blocking::RecipientResult::retry_separately), in further
    /// transactions (on this connection, or on a new one when LIMITS MAILMAX is reached and
    /// [`ConnectOptions::reconnect`](smtp_blocking::ConnectOptions::reconnect) is on), until each has a final
    /// result. At most one transaction per recipient, and it stops when a transaction makes no progress.
    ///
    /// Returns ONE report with every recipient's final result in the envelope's order and
    /// [`SendReport::transactions`]; an error only when the first transaction failed (later failures are in
    /// [`SendReport::error`], the recipients not reached keep `retry_separately`).
    pub async fn send_reopen<R, F>(
        &mut self,
        envelope: &Envelope,
        mut open: F,
    ) -> Result<SendReport, Error>
    where
        R: AsyncRead + Unpin,
        F: FnMut() -> io::Result<R>,
    {
        let mut plan = ResendPlan::new(envelope);
        while let Some(next) = plan.next_envelope() {
            if plan.transactions() > 0 {
                self.transcript_mut().note(format!(
                    "sending the message again to {} recipient(s) the server asked to get it separately",
                    next.recipients.len()
                ));
            }
            let result = match open() {
                Ok(mut body) => self.attempt_renewing(&next, &mut body, None).await.result,
                Err(e) => Err(Error::new(ErrorKind::BodyRead, Stage::DataBlock).with_cause(e)),
            };
            plan.record(result)?;
        }
        plan.into_report()
            .ok_or_else(|| Error::new(ErrorKind::ConnectionClosed, Stage::Mail))
    }

    /// Sends a message again to the recipients the server asked to get it separately in `first` (as
    /// [`send_reopen`](Self::send_reopen) does), and returns the combined report.
    pub(crate) async fn resend_rest(
        &mut self,
        envelope: &Envelope,
        body: &[u8],
        first: Result<SendReport, Error>,
    ) -> Result<SendReport, Error> {
        if !smtp_blocking::batch::asks_for_resend(&first) {
            return first;
        }
        let mut plan = ResendPlan::new(envelope);
        plan.record(first)?;
        while let Some(next) = plan.next_envelope() {
            self.transcript_mut().note(format!(
                "sending the message again to {} recipient(s) the server asked to get it separately",
                next.recipients.len()
            ));
            let mut source = body;
            let result = self.attempt_renewing(&next, &mut source, None).await.result;
            plan.record(result)?;
        }
        plan.into_report()
            .ok_or_else(|| Error::new(ErrorKind::ConnectionClosed, Stage::Mail))
    }

    /// One transaction; when the server's LIMITS MAILMAX is reached on this connection (nothing was sent or read
    /// from `body` then) and [`ConnectOptions::reconnect`](smtp_blocking::ConnectOptions::reconnect) is on, ends
    /// the session with QUIT, opens a new one and tries once more. A pooled connection is left to its pool.
    pub(crate) async fn attempt_renewing<'a, R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        envelope: &Envelope,
        body: &'a mut R,
        mut progress: Option<&'a mut (dyn FnMut(u64) + Send)>,
    ) -> Attempt {
        let first = progress
            .as_mut()
            .map(|p| &mut **p as &mut (dyn FnMut(u64) + Send));
        let attempt = self.attempt(envelope, &mut *body, first).await;
        let Some(limit) = mail_max_reached(&attempt.result) else {
            return attempt;
        };
        if !self.options().reconnect || self.is_pooled() {
            return attempt;
        }
        self.transcript_mut().note(format!(
            "the server allows {limit} messages per connection (LIMITS MAILMAX): reconnecting"
        ));
        if let Err(e) = self.renew().await {
            return Attempt {
                result: Err(e),
                not_sent: true,
            };
        }
        self.attempt(envelope, body, progress).await
    }
}
