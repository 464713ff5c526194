//! The bookkeeping of a batch of messages sent back to back ([`crate::Connection::send_batch_with`]), shared with
//! the async adapter: the messages in progress, and results handed over in the batch's order.

use std::collections::BTreeMap;

use smtp_proto::{Client, Envelope, TransactionId};

use crate::error::Error;
use crate::report::SendReport;

/// A message of a batch in progress.
#[derive(Debug)]
pub struct Flight<'a> {
    /// Its place in the batch.
    pub index: usize,
    /// Its transaction in the core.
    pub id: TransactionId,
    /// Its envelope, kept to send the message again to recipients the server asks to get it separately.
    pub envelope: Envelope,
    /// Its body.
    pub body: &'a [u8],
    /// Body bytes handed to the core.
    pub offset: usize,
    /// `ReadyForBody` seen.
    pub open: bool,
    /// The end of the body handed over (or the transaction failed before).
    pub finished: bool,
}

impl<'a> Flight<'a> {
    /// A message whose transaction `id` was just started.
    pub fn new(index: usize, id: TransactionId, envelope: Envelope, body: &'a [u8]) -> Self {
        Self {
            index,
            id,
            envelope,
            body,
            offset: 0,
            open: false,
            finished: false,
        }
    }

    /// Hands the core as much of the body as it takes now, and its end once all of it was taken. True when
    /// something was handed over.
    pub fn feed(&mut self, client: &mut Client) -> bool {
        let mut fed = false;
        while self.offset < self.body.len() {
            match client.write_body(&self.body[self.offset..]) {
                Ok(0) => break,
                Ok(n) => {
                    self.offset += n;
                    fed = true;
                }
                Err(_) => {
                    // The transaction failed meanwhile: its report is on the way.
                    self.finished = true;
                    return fed;
                }
            }
        }
        if self.offset == self.body.len() && !self.finished {
            let _ = client.finish_body();
            self.finished = true;
            fed = true;
        }
        fed
    }
}

/// The body of the batch's message whose body is open (the newest one), if it still has bytes to hand over.
pub fn feeding<'f, 'a>(flights: &'f mut [Flight<'a>]) -> Option<&'f mut Flight<'a>> {
    flights.iter_mut().find(|f| f.open && !f.finished)
}

/// Whether a result asks for the message to be sent again to some recipients (`retry_separately`).
pub fn asks_for_resend(result: &Result<SendReport, Error>) -> bool {
    result
        .as_ref()
        .is_ok_and(|r| r.recipients.iter().any(|r| r.retry_separately))
}

/// Hands results over in the order of the batch: a result that is final before an earlier one (the message queued
/// behind one that is being sent again) waits here.
#[derive(Debug, Default)]
pub struct InOrder {
    next: usize,
    early: BTreeMap<usize, Result<SendReport, Error>>,
}

impl InOrder {
    /// Records the result of message `index` and hands over every result now due, in order.
    pub fn done(
        &mut self,
        index: usize,
        result: Result<SendReport, Error>,
        on_result: &mut impl FnMut(usize, Result<SendReport, Error>),
    ) {
        self.early.insert(index, result);
        while let Some(result) = self.early.remove(&self.next) {
            on_result(self.next, result);
            self.next += 1;
        }
    }
}
