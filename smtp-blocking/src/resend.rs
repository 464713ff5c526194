//! Sending a message again to the recipients a server asked to get it in a separate transaction, and merging the
//! transactions into one [`SendReport`]. No I/O here: both adapters drive a [`ResendPlan`] around their
//! single-transaction send.
//!
//! A server may take fewer recipients per transaction than the envelope has: it advertises `LIMITS RCPTMAX=n`
//! (RFC 9422 §4.2; the core then sends the first `n` RCPTs only) or answers a RCPT with "too many recipients"
//! (`452`, or a legacy `552 5.5.3`; RFC 5321 §4.5.3.1.10). Those recipients are reported
//! [`retry_separately`](crate::RecipientResult::retry_separately), and the client is expected to send the message
//! again to them in a further transaction. That needs the body a second time, so only a body that can be re-read is
//! sent again (a message in memory, or a source the caller can reopen); a streamed body leaves the flag set for the
//! caller.
//!
//! ```
//! use smtp_blocking::resend::ResendPlan;
//! # use smtp_blocking::{Envelope, ReversePath, SendReport, Error};
//! # fn send_once(_: &Envelope) -> Result<SendReport, Error> { unimplemented!() }
//! # fn demo(envelope: &Envelope) -> Result<SendReport, Error> {
//! let mut plan = ResendPlan::new(envelope);
//! while let Some(next) = plan.next_envelope() {
//!     plan.record(send_once(&next))?;
//! }
//! Ok(plan.into_report().expect("at least one transaction was recorded"))
//! # }
//! ```

use smtp_proto::Envelope;

use crate::error::Error;
use crate::report::{Outcome, RecipientResult, SendReport};

/// Which recipients still need the message, and what the transactions so far said about each of them.
///
/// Bounded: at most one transaction per recipient, and it stops as soon as a transaction makes no progress (no
/// recipient of it got a final result), fails as a whole (MAIL, DATA or the final reply refused), ends with an
/// unknown outcome, or fails with an error.
#[derive(Debug)]
pub struct ResendPlan {
    envelope: Envelope,
    /// Each recipient's latest result, in envelope order (`None` until a transaction included it).
    results: Vec<Option<RecipientResult>>,
    /// Indices into `envelope.recipients` of the next transaction's recipients.
    pending: Vec<usize>,
    /// The merged report so far (recipients are filled in by [`into_report`](Self::into_report)).
    merged: Option<SendReport>,
    transactions: usize,
    done: bool,
}

impl ResendPlan {
    /// A plan for sending `envelope`: the first transaction carries every recipient.
    pub fn new(envelope: &Envelope) -> Self {
        let n = envelope.recipients.len();
        Self {
            envelope: envelope.clone(),
            results: vec![None; n],
            pending: (0..n).collect(),
            merged: None,
            transactions: 0,
            done: false,
        }
    }

    /// The envelope of the next transaction (the original one with only the recipients still to try, in their
    /// order, each with its own parameters), or `None` when no further transaction is needed or useful.
    pub fn next_envelope(&self) -> Option<Envelope> {
        if self.transactions == 0 && !self.done {
            // The first transaction goes as it is (even without recipients: the send reports that usage error).
            return Some(self.envelope.clone());
        }
        if self.done
            || self.pending.is_empty()
            || self.transactions >= self.envelope.recipients.len()
        {
            return None;
        }
        let mut next = self.envelope.clone();
        next.recipients = self
            .pending
            .iter()
            .map(|&i| self.envelope.recipients[i].clone())
            .collect();
        Some(next)
    }

    /// How many transactions were recorded.
    pub fn transactions(&self) -> usize {
        self.transactions
    }

    /// Records the result of the transaction sent with the last [`next_envelope`](Self::next_envelope).
    ///
    /// An error from the first transaction is returned as it is (nothing was delivered). An error from a later one
    /// ends the plan: earlier transactions delivered the message to some recipients, so the merged report is still
    /// the answer, with the error in [`SendReport::error`] and the remaining recipients left `retry_separately`.
    pub fn record(&mut self, result: Result<SendReport, Error>) -> Result<(), Error> {
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                self.done = true;
                return match self.merged.as_mut() {
                    None => Err(e),
                    Some(merged) => {
                        merged.error = Some(e);
                        Ok(())
                    }
                };
            }
        };
        self.transactions += 1;
        let mut still = Vec::new();
        let mut progress = false;
        for (pos, &index) in self.pending.iter().enumerate() {
            let Some(r) = report.recipients.get(pos) else {
                still.push(index);
                continue;
            };
            if r.retry_separately {
                still.push(index);
            } else {
                progress = true;
            }
            self.results[index] = Some(r.clone());
        }
        // MAIL, DATA or the final reply refused: the message itself was refused, and would be again.
        let whole_failure = report
            .failure
            .as_ref()
            .is_some_and(|(stage, _)| !matches!(stage, smtp_proto::Stage::Rcpt))
            && report.accepted_count() == 0;
        if !progress
            || whole_failure
            || report.outcome == Outcome::Unknown
            || report.error.is_some()
        {
            self.done = true;
        }
        self.pending = still;
        self.merge(report);
        Ok(())
    }

    fn merge(&mut self, report: SendReport) {
        let Some(merged) = self.merged.as_mut() else {
            self.merged = Some(report);
            return;
        };
        if report.outcome == Outcome::Unknown {
            merged.outcome = Outcome::Unknown;
        }
        if report.final_reply.is_some() {
            merged.final_reply = report.final_reply;
        }
        if report.failure.is_some() {
            merged.failure = report.failure;
        }
        if report.error.is_some() {
            merged.error = report.error;
        }
        merged.tls = report.tls;
        merged.body_bytes += report.body_bytes;
    }

    /// The merged report: every recipient's latest result in the original envelope order, the outcome over all
    /// of them ([`Outcome::Unknown`] if any transaction's was), the first MAIL reply, the latest final reply, failure
    /// and error, body bytes summed, and [`SendReport::transactions`]. `None` if no transaction was recorded.
    pub fn into_report(self) -> Option<SendReport> {
        let mut merged = self.merged?;
        merged.transactions = self.transactions;
        if self.transactions <= 1 {
            return Some(merged);
        }
        merged.recipients = self
            .results
            .into_iter()
            .zip(&self.envelope.recipients)
            .map(|(r, rcpt)| {
                r.unwrap_or_else(|| RecipientResult {
                    address: rcpt.address.as_str().to_owned(),
                    accepted: false,
                    reply: None,
                    retry_separately: true,
                })
            })
            .collect();
        if merged.outcome != Outcome::Unknown {
            let accepted = merged.accepted_count();
            merged.outcome = if accepted == merged.recipients.len() {
                Outcome::Accepted
            } else if accepted > 0 {
                Outcome::PartiallyAccepted
            } else {
                Outcome::Rejected
            };
        }
        if merged.outcome == Outcome::Accepted {
            merged.failure = None;
        }
        Some(merged)
    }
}

#[cfg(test)]
mod tests {
    use smtp_proto::{Reply, ReplyCode, ReversePath, Stage};

    use super::*;
    use crate::report::TlsUsed;

    fn envelope(n: usize) -> Envelope {
        Envelope::new(
            ReversePath::Mailbox("a@example.org".parse().unwrap()),
            (0..n).map(|i| format!("r{i}@example.org").parse().unwrap()),
        )
    }

    fn reply(code: u16, text: &str) -> Reply {
        Reply::new(ReplyCode::new(code).unwrap(), &[text.as_bytes()])
    }

    /// A report for `env` where the first `ok` recipients are accepted and the rest are `retry_separately`.
    fn report(env: &Envelope, ok: usize) -> SendReport {
        let recipients: Vec<_> = env
            .recipients
            .iter()
            .enumerate()
            .map(|(i, r)| RecipientResult {
                address: r.address.as_str().to_owned(),
                accepted: i < ok,
                reply: Some(if i < ok {
                    reply(250, "2.0.0 ok")
                } else {
                    reply(452, "4.5.3 too many recipients")
                }),
                retry_separately: i >= ok,
            })
            .collect();
        let outcome = if ok == recipients.len() {
            Outcome::Accepted
        } else if ok > 0 {
            Outcome::PartiallyAccepted
        } else {
            Outcome::Rejected
        };
        SendReport {
            outcome,
            failure: (ok < recipients.len()).then_some((Stage::Rcpt, None)),
            recipients,
            mail_reply: None,
            final_reply: Some(reply(250, "2.0.0 queued")),
            error: None,
            tls: TlsUsed::None,
            body_bytes: 10,
            transactions: 1,
        }
    }

    #[test]
    fn rcptmax_two_of_five_takes_three_transactions_in_order() {
        let env = envelope(5);
        let mut plan = ResendPlan::new(&env);
        let mut sizes = Vec::new();
        while let Some(next) = plan.next_envelope() {
            sizes.push(next.recipients.len());
            plan.record(Ok(report(&next, 2))).unwrap();
        }
        assert_eq!(sizes, [5, 3, 1]);
        let merged = plan.into_report().unwrap();
        assert_eq!(merged.transactions, 3);
        assert_eq!(merged.outcome, Outcome::Accepted);
        assert_eq!(merged.failure, None);
        assert_eq!(merged.body_bytes, 30);
        let addrs: Vec<_> = merged
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(
            addrs,
            [
                "r0@example.org",
                "r1@example.org",
                "r2@example.org",
                "r3@example.org",
                "r4@example.org"
            ]
        );
        assert!(
            merged
                .recipients
                .iter()
                .all(|r| r.accepted && !r.retry_separately)
        );
    }

    #[test]
    fn no_progress_stops() {
        let env = envelope(3);
        let mut plan = ResendPlan::new(&env);
        let first = plan.next_envelope().unwrap();
        plan.record(Ok(report(&first, 1))).unwrap();
        let second = plan.next_envelope().unwrap();
        plan.record(Ok(report(&second, 0))).unwrap();
        assert!(plan.next_envelope().is_none());
        let merged = plan.into_report().unwrap();
        assert_eq!(merged.transactions, 2);
        assert_eq!(merged.outcome, Outcome::PartiallyAccepted);
        assert!(merged.recipients[0].accepted);
        assert!(merged.recipients[1].retry_separately && merged.recipients[2].retry_separately);
    }

    #[test]
    fn first_error_is_returned_later_error_is_kept() {
        let env = envelope(2);
        let mut plan = ResendPlan::new(&env);
        let e = Error::new(crate::ErrorKind::ConnectionClosed, Stage::Mail);
        assert!(plan.record(Err(e.clone())).is_err());
        assert!(plan.into_report().is_none());

        let mut plan = ResendPlan::new(&env);
        let first = plan.next_envelope().unwrap();
        plan.record(Ok(report(&first, 1))).unwrap();
        plan.record(Err(e)).unwrap();
        assert!(plan.next_envelope().is_none());
        let merged = plan.into_report().unwrap();
        assert_eq!(merged.outcome, Outcome::PartiallyAccepted);
        assert!(merged.error.is_some());
        assert!(merged.recipients[1].retry_separately);
    }
}
