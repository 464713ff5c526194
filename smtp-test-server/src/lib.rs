//! A scripted, fault-injecting SMTP/LMTP server for the adapters' integration tests.
//!
//! Real servers (Postfix, aiosmtpd, Dovecot) cover the well-behaved paths; this crate covers what they will not do on
//! demand: silence, slow drips, injected bytes after `STARTTLS`, endless replies, resets after the body, `421` at any
//! stage, garbage, non-UTF-8 and bare-LF replies, wrong certificates.
//!
//! It is runtime-agnostic: [`TestServer`] runs on its own std threads over `std::net::TcpListener` on `127.0.0.1:0`
//! (or `[::1]:0`), so a blocking client and an async client test against it the same way. TLS is rustls (ring
//! provider) with certificates made at run time by [`TestPki`].
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//! use smtp_test_server::{Fault, ServerConfig, Stage, TestServer};
//!
//! let server = TestServer::start(
//!     ServerConfig::new()
//!         .reject_recipient("nobody@example.org")
//!         .fault(Fault::Shutdown(Stage::Data)),
//! )
//! .unwrap();
//! let stream = TcpStream::connect(server.addr()).unwrap();
//! stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
//! let mut reader = BufReader::new(stream.try_clone().unwrap());
//! let mut line = String::new();
//! reader.read_line(&mut line).unwrap(); // 220 test.example ESMTP
//! (&stream).write_all(b"HELO me\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n").unwrap();
//! let mut replies = Vec::new();
//! for _ in 0..4 {
//!     line.clear();
//!     reader.read_line(&mut line).unwrap();
//!     replies.push(line.clone());
//! }
//! assert_eq!(replies[3], "421 4.3.2 shutting down\r\n");
//! assert_eq!(server.sessions()[0].verbs(), ["HELO", "MAIL", "RCPT", "DATA"]);
//! ```
//!
//! # What is recorded
//! [`TestServer::sessions`] gives one [`SessionRecord`] per connection: every command line with whether TLS was
//! active and which read delivered it (pipelining), the raw bytes received and sent, TLS/SNI/AUTH outcomes.
//! [`TestServer::messages`] gives every accepted [`Message`] (envelope and body).
//!
//! # Bounds
//! Sockets poll every 50 ms; every wait and every endless fault stops when the client disconnects, when the server
//! is dropped, or after 120 s / 64 MiB. Dropping [`TestServer`] never hangs.

mod config;
mod io;
mod pki;
mod record;
mod server;
mod session;

pub use config::{Fault, Protocol, ServerConfig, Stage, TlsMode};
pub use pki::{ServerCert, TestPki};
pub use record::{BodyTransfer, ClientLine, Message, SessionRecord};
pub use server::TestServer;

/// Re-exported so tests can build TLS clients with the same rustls the server uses.
pub use rustls;
