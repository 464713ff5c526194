//! A sans-IO SMTP and LMTP client core.
//!
//! `smtp-proto` decides *what* to say to a mail server and *when to give up*, and nothing else: it consumes the
//! bytes the server sent and the current time, and produces the bytes to send, events, and the next deadline. It
//! opens no socket, reads no clock, starts no thread and links no TLS library, so the same machine runs under any
//! runtime, is tested byte for byte with a fake clock, and is fuzzed in isolation. The `smtp-blocking` and
//! `smtp-smol` crates are thin adapters around it.
//!
//! What it covers: reply framing and parsing with size caps (RFC 5321 §4.2), enhanced status codes (RFC 3463),
//! EHLO capabilities, HELO fallback, LMTP (RFC 2033), STARTTLS hand-off with response-injection defence (RFC 3207),
//! AUTH SCRAM-SHA-256(-PLUS), CRAM-MD5, PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER (RFC 4954, 7677, 9266, 4616, 7628), PIPELINING (RFC 2920), CHUNKING
//! (RFC 3030), streaming dot-stuffing that also neutralises bare CR/LF (SMTP smuggling), per-recipient results, and
//! a deadline for every stage (RFC 5321 §4.5.3.2).
//!
//! # The drive loop
//!
//! The contract is on [`Client`]. This example drives a whole session against a scripted server, in memory:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use smtp_proto::{Client, Config, Envelope, Event, Outcome, TlsPolicy, Address, ReversePath};
//!
//! // What a server would send, one reply per command (a real adapter reads these from a socket).
//! let mut server = vec![
//!     &b"220 mx.example.org ESMTP\r\n"[..],
//!     b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
//!     b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n",
//!     b"250 2.0.0 queued as 12345\r\n",
//!     b"221 2.0.0 bye\r\n",
//! ]
//! .into_iter();
//!
//! let mut config = Config::default();
//! config.tls = TlsPolicy::None; // plaintext only because this is an in-memory example
//! let mut now = Instant::now(); // adapters pass the real time; tests pass a fake clock
//! let mut client = Client::new(config, now);
//! let mut wire = Vec::new(); // what the client wrote
//! let mut report = None;
//!
//! loop {
//!     // 1. transmit everything
//!     while let Some(bytes) = client.poll_transmit(now) {
//!         wire.extend_from_slice(&bytes);
//!     }
//!     // 2. handle every event (which may issue commands)
//!     let mut closed = false;
//!     while let Some(event) = client.poll_event() {
//!         match event {
//!             Event::Ready { .. } => {
//!                 let from = ReversePath::Mailbox("alice@example.org".parse::<Address>().unwrap());
//!                 let to = "bob@example.net".parse::<Address>().unwrap();
//!                 client.send_mail(Envelope::new(from, [to])).unwrap();
//!             }
//!             Event::ReadyForBody { .. } => {
//!                 let body = b"Subject: hi\r\n\r\n.leading dot is stuffed\r\n";
//!                 assert_eq!(client.write_body(body).unwrap(), body.len());
//!                 client.finish_body().unwrap();
//!             }
//!             Event::TransactionComplete(r) => {
//!                 report = Some(r);
//!                 client.quit();
//!             }
//!             Event::Closed { error } => {
//!                 assert!(error.is_none());
//!                 closed = true;
//!             }
//!             _ => {}
//!         }
//!     }
//!     if closed {
//!         break;
//!     }
//!     if client.poll_transmit(now).map(|b| wire.extend_from_slice(&b)).is_some() {
//!         continue;
//!     }
//!     // 3. wait for input or the deadline
//!     match server.next() {
//!         Some(bytes) => {
//!             now += Duration::from_millis(5);
//!             client.receive(now, bytes);
//!         }
//!         None => {
//!             now = client.poll_timeout().expect("a deadline is armed");
//!             client.handle_timeout(now);
//!         }
//!     }
//! }
//!
//! assert_eq!(report.unwrap().outcome, Outcome::Accepted);
//! let wire = String::from_utf8(wire).unwrap();
//! assert!(wire.contains("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n"));
//! assert!(wire.contains("\r\n..leading dot is stuffed\r\n.\r\n"));
//! assert!(wire.ends_with("QUIT\r\n"));
//! ```
//!
//! Examples that drive the machine over a real `TcpStream` and on tokio are in `examples/`.
#![forbid(unsafe_code)]

pub mod auth;
pub mod body;
pub mod capability;
mod client;
pub mod command;
pub mod config;
pub mod diagnose;
pub mod envelope;
pub mod error;
pub mod event;
pub mod framer;
pub mod path;
pub mod reply;
mod scram;
pub mod timer;

pub use auth::{Mechanism, ScramSupport};
pub use body::DotStuffer;
pub use capability::{Capabilities, Extension, MailLimits};
pub use client::Client;
pub use command::Command;
pub use config::{Config, Credentials, Protocol, Secret, TlsPolicy};
pub use diagnose::{Mismatch, PeerSpeaks};
pub use envelope::{Envelope, Recipient};
pub use error::{Error, ErrorKind, Stage, UsageError};
pub use event::{
    Direction, Event, Outcome, RecipientReport, TransactionId, TransactionReport, TranscriptEntry,
};
pub use framer::{ReplyError, ReplyFramer, ReplyLimits};
pub use path::{
    Address, AddressError, BodyType, ClientId, MailParameters, RcptParameters, ReversePath,
};
pub use reply::{EnhancedCode, Reply, ReplyClass, ReplyCode};
pub use timer::Timeouts;
