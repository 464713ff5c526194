//! A blocking SMTP/LMTP client on std sockets and rustls, driven by the sans-IO [`smtp_proto`] core, and the
//! `smtp-send` command-line tool (feature `cli`, on by default).
//!
//! The core decides what to say and when to give up; this crate moves bytes, does the TLS handshakes, and turns
//! the core's deadlines into socket timeouts. A server that is silent, slow or dribbling bytes cannot keep a call
//! alive past the deadline of the stage it is in.
//!
//! ```no_run
//! use smtp_blocking::{Connection, ConnectOptions, Envelope, Outcome, ReversePath};
//!
//! // TLS mode `auto` (the default): STARTTLS on 587, implicit TLS on 465, never plaintext.
//! let options = ConnectOptions::from_url("smtp://alice@mail.example.org")?.with_password("alice", "secret");
//! let mut conn = Connection::connect(&options)?;
//! let envelope = Envelope::new(
//!     ReversePath::Mailbox("alice@example.org".parse().unwrap()),
//!     ["bob@example.net".parse().unwrap()],
//! );
//! let report = conn.send(&envelope, std::fs::File::open("message.eml").unwrap())?;
//! match report.outcome {
//!     Outcome::Accepted => println!("sent"),
//!     other => println!("{other}: {:?}", report.recipients),
//! }
//! conn.quit()?;
//! # Ok::<(), smtp_blocking::Error>(())
//! ```
//!
//! # What the smol adapter reuses
//!
//! Everything except [`Connection`] is runtime-agnostic and does no I/O: [`ConnectOptions`] (URL and builder),
//! [`TlsMode`] with `Auto`'s port rules and switching decision ([`TlsMode::first_policy`],
//! [`TlsMode::probe_applies`], [`TlsMode::auto_switch`]), [`TlsOptions`] and [`tls::build_client_config`] /
//! [`tls::server_name`] / [`tls::describe_tls_error`], the [`Error`] type, and [`SendReport`]. Depend on this
//! crate with `default-features = false` to get none of the CLI's dependencies.
//!
//! # Exit codes of `smtp-send` (sysexits)
//!
//! | status | when |
//! |---|---|
//! | 0 | every recipient accepted the message |
//! | 64 | usage: bad arguments, URL or option |
//! | 65 | bad message: unreadable, or the server cannot take it as it is (SMTPUTF8, size) |
//! | 68 | unknown host |
//! | 69 | permanent rejection (5xx), including a partial acceptance where every refusal was permanent |
//! | 75 | temporary failure or timeout: 4xx, 421, lost connection, outcome unknown, partial with a 4xx refusal |
//! | 76 | protocol error: malformed replies, bytes injected after STARTTLS |
//! | 77 | authentication refused |
//! | 78 | TLS or configuration error: mode mismatch, untrusted certificate, STARTTLS missing |
//!
//! "Partial" (some recipients accepted) exits 69 or 75 as above, never 0; "unknown" (the end of the message was
//! sent and no verdict came) exits 75 — retrying may deliver the message twice.

pub mod batch;
pub mod connection;
pub mod error;
pub mod oauth;
pub mod options;
pub mod report;
pub mod resend;
pub mod socks;
pub mod tls;
pub mod transcript;
pub mod transport;

pub use connection::Connection;
pub use error::{Error, ErrorKind, stage_name};
pub use options::{ClientCertificate, ConnectOptions, Pem, TlsMode, TlsOptions, TrustRoots};
pub use report::{Outcome, RecipientResult, SendReport, TlsUsed};
pub use transcript::{Direction, TranscriptLine, TranscriptSink};
pub use transport::{Peer, Socks5Proxy};

pub use rustls;
pub use smtp_proto;
pub use smtp_proto::{
    Address, BodyType, Capabilities, ClientId, Credentials, Envelope, Mechanism, Protocol, Reply,
    ReversePath, Secret, Stage, Timeouts, TlsPolicy,
};
