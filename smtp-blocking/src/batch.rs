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

/// A message of a batch that has not started: its place in the batch, its envelope (with what the adapter declares
/// for a body in memory), its body.
pub type Queued<'a> = (usize, Envelope, &'a [u8]);

/// The messages of a batch that have not started: the caller's source, read only as messages can go out, and the
/// one taken from it that the core did not take yet.
pub struct Queue<'a, I> {
    source: I,
    /// The envelope a message is sent with, from the caller's and the body.
    declare: fn(&Envelope, &[u8]) -> Envelope,
    /// Messages taken from the source so far: the next one's place in the batch.
    taken: usize,
    held: Option<Queued<'a>>,
}

impl<'a, I: Iterator<Item = (&'a Envelope, &'a [u8])>> Queue<'a, I> {
    /// The batch `source`, each envelope made with `declare`.
    pub fn new(source: I, declare: fn(&Envelope, &[u8]) -> Envelope) -> Self {
        Self {
            source,
            declare,
            taken: 0,
            held: None,
        }
    }

    /// The next message to start: the one held back, else the next one of the source.
    pub fn take(&mut self) -> Option<Queued<'a>> {
        if let Some(queued) = self.held.take() {
            return Some(queued);
        }
        let (envelope, body) = self.source.next()?;
        let index = self.taken;
        self.taken += 1;
        Some((index, (self.declare)(envelope, body), body))
    }

    /// Keeps a message taken with [`take`](Self::take) for later: the core does not take it now.
    pub fn hold(&mut self, queued: Queued<'a>) {
        self.held = Some(queued);
    }

    /// Whether a message is held back.
    pub fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// Fails every message that has not started, the one held back first, then the rest of the source.
    pub fn fail_all(
        &mut self,
        error: &Error,
        order: &mut InOrder,
        on_result: &mut impl FnMut(usize, Result<SendReport, Error>),
    ) {
        if let Some((index, ..)) = self.held.take() {
            order.done(index, Err(error.clone()), on_result);
        }
        for _ in self.source.by_ref() {
            order.done(self.taken, Err(error.clone()), on_result);
            self.taken += 1;
        }
    }
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
