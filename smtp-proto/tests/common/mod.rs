//! A fake-clock harness: feeds server bytes, records every byte the client writes and every event.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use smtp_proto::{
    Address, Client, Config, Envelope, Event, ReversePath, TlsPolicy, TransactionReport,
};

/// The fake clock's origin. Tests read the real clock once, only to get an `Instant` value; every later time is
/// derived from it by addition.
#[allow(clippy::disallowed_methods)]
pub fn base_instant() -> Instant {
    Instant::now()
}

pub struct Session {
    pub client: Client,
    pub start: Instant,
    pub now: Instant,
    /// Everything written, in order.
    pub wire: Vec<u8>,
    /// Each `poll_transmit` chunk, in order (to check batching).
    pub writes: Vec<Vec<u8>>,
    unread: usize,
    pub events: Vec<Event>,
}

pub fn plain() -> Config {
    let mut c = Config::default();
    c.tls = TlsPolicy::None;
    c
}

pub fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

pub fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope::new(ReversePath::Mailbox(addr(from)), to.iter().map(|t| addr(t)))
}

pub const EHLO_BASIC: &[u8] = b"250-mx.example.org\r\n250 8BITMIME\r\n";
pub const EHLO_PIPELINING: &[u8] = b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
pub const EHLO_CHUNKING: &[u8] =
    b"250-mx.example.org\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n";

impl Session {
    pub fn new(config: Config) -> Self {
        let start = base_instant();
        let mut s = Self {
            client: Client::new(config, start),
            start,
            now: start,
            wire: Vec::new(),
            writes: Vec::new(),
            unread: 0,
            events: Vec::new(),
        };
        s.drain();
        s
    }

    /// Greeting + EHLO with the given reply; asserts Ready.
    pub fn ready(config: Config, ehlo: &[u8]) -> Self {
        let mut s = Self::new(config);
        s.server(b"220 mx.example.org ESMTP\r\n");
        assert_eq!(s.sent(), "EHLO localhost\r\n");
        s.server(ehlo);
        assert!(
            s.take_events()
                .iter()
                .any(|e| matches!(e, Event::Ready { .. })),
            "not ready"
        );
        s.sent();
        s
    }

    pub fn drain(&mut self) {
        while let Some(b) = self.client.poll_transmit(self.now) {
            assert!(!b.is_empty());
            self.wire.extend_from_slice(&b);
            self.writes.push(b.to_vec());
        }
        while let Some(e) = self.client.poll_event() {
            self.events.push(e);
        }
        // Nothing may be left to send after the events were drained without issuing commands.
        assert!(self.client.poll_transmit(self.now).is_none());
    }

    pub fn server(&mut self, bytes: &[u8]) {
        self.now += Duration::from_millis(1);
        self.client.receive(self.now, bytes);
        self.drain();
    }

    pub fn eof(&mut self) {
        self.client.receive_eof(self.now);
        self.drain();
    }

    /// What the client wrote since the last call, as text.
    pub fn sent(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.wire[self.unread..]).into_owned();
        self.unread = self.wire.len();
        s
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Advances the fake clock by `d` and lets the machine notice.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.handle_timeout(self.now);
        self.drain();
    }

    /// Jumps to the armed deadline (asserting one is armed) and fires it.
    pub fn fire_deadline(&mut self) -> Duration {
        let at = self
            .client
            .poll_timeout()
            .expect("a deadline must be armed");
        assert!(at >= self.now);
        let waited = at - self.now;
        // One nanosecond early must do nothing.
        if waited > Duration::ZERO {
            self.client.handle_timeout(at - Duration::from_nanos(1));
            assert!(!self.client.is_closed());
        }
        self.now = at;
        self.client.handle_timeout(self.now);
        self.drain();
        waited
    }

    pub fn closed_error(&self) -> Option<Option<smtp_proto::Error>> {
        self.events.iter().find_map(|e| match e {
            Event::Closed { error } => Some(error.clone()),
            _ => None,
        })
    }

    pub fn report(&self) -> Option<TransactionReport> {
        self.events.iter().find_map(|e| match e {
            Event::TransactionComplete(r) => Some((**r).clone()),
            _ => None,
        })
    }

    pub fn ready_for_body(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::ReadyForBody { .. }))
    }

    pub fn closed_count(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Closed { .. }))
            .count()
    }
}
