//! An async SMTP/LMTP client for smol and any executor that drives `async-io`, with a connection pool, driven by
//! the sans-IO [`smtp_proto`] core.
//!
//! Same behaviour as the blocking adapter ([`smtp_blocking`]), without blocking a thread: TLS modes including
//! [`TlsMode::Auto`], TLS-mode mismatch diagnosis, configuration from a URL ([`ConnectOptions`]), typed errors
//! ([`Error`]), per-recipient reports ([`SendReport`]), and transcripts through `tracing` (target
//! [`TRANSCRIPT_TARGET`]) with AUTH payloads redacted. Those types are `smtp-blocking`'s, re-exported here.
//!
//! * [`Connection`]: one session over `async_io::Async<TcpStream>` and futures-rustls. Every read, write, TLS
//!   handshake and body read is raced against the core's deadline (`async_io::Timer::at(poll_timeout())`), so a
//!   silent or dribbling server cannot hold a task past the deadline of the stage it is in. Bodies stream from any
//!   [`futures_lite::AsyncRead`] with back-pressure: memory stays flat whatever the message size.
//! * Transports, as in the blocking adapter: a Unix-domain socket ([`ConnectOptions::unix`], `lmtp+unix:///path`),
//!   a SOCKS5 proxy ([`ConnectOptions::with_socks5`]; the handshake is `smtp_blocking::socks`, driven here with
//!   `async-io`), a chosen local source address ([`ConnectOptions::with_local_address`]; socket2, non-blocking
//!   connect). [`Connection::peer_addr`] says which ([`Peer`]).
//! * [`Pool`]: bounded connections per server, idle timeout, `NOOP` before reusing a connection that idled,
//!   reconnection after `421`, a bound on messages per connection. Cloned handles share the pool.
//!
//! `examples/bulk.rs` sends N messages concurrently through a pool with a progress line (`cargo run -p smtp-smol
//! --example bulk -- --help`).
//!
//! No task is spawned and no runtime is assumed: the futures run on `smol`, `async_io::block_on`,
//! `async-executor`, or anything else that lets `async-io`'s reactor run.
//!
//! ```no_run
//! use smtp_smol::{ConnectOptions, Envelope, Outcome, Pool, PoolOptions, ReversePath};
//!
//! # fn main() -> Result<(), smtp_smol::Error> {
//! smol::block_on(async {
//!     let options = ConnectOptions::from_url("smtp://alice@mail.example.org")?.with_password("alice", "secret");
//!     let pool = Pool::new(options, PoolOptions::default().max_connections(8))?;
//!     let envelope = Envelope::new(
//!         ReversePath::Mailbox("alice@example.org".parse().unwrap()),
//!         ["bob@example.net".parse().unwrap()],
//!     );
//!     let report = pool.send_bytes(&envelope, b"Subject: hi\r\n\r\nHello.\r\n").await?;
//!     assert_eq!(report.outcome, Outcome::Accepted);
//!     pool.close().await;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # Cancellation
//!
//! Dropping a future of this crate mid-way never leaves a corrupt connection behind: unless the session is
//! provably between transactions, the connection is marked poisoned, refuses further use, and a pool discards it
//! instead of reusing it.

mod auto;
mod connection;
pub mod error;
mod io;
mod pool;
mod resend;
mod settings;
mod tls;
mod transcript;
mod transport;

pub use connection::Connection;
pub use error::{Error, ErrorKind};
pub use pool::{Pool, PoolOptions, PoolStats, PooledConnection};
pub use transcript::TRANSCRIPT_TARGET;

/// OAuth 2.0 token providers ([`ConnectOptions::with_oauth_token_provider`]), shared with the blocking adapter.
pub use smtp_blocking::oauth;
pub use smtp_blocking::{
    ClientCertificate, ConnectOptions, Direction, Outcome, Peer, Pem, RecipientResult, SendReport,
    Socks5Proxy, TlsMode, TlsOptions, TlsUsed, TranscriptLine, TranscriptSink, TrustRoots,
};
pub use smtp_proto;
pub use smtp_proto::{
    Address, Credentials, Envelope, Protocol, Reply, ReversePath, Stage, Timeouts,
};
