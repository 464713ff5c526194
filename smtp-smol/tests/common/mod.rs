//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smtp_smol::{
    Address, ConnectOptions, Connection, Envelope, Error, Outcome, ReversePath, Timeouts, TlsMode,
    TlsOptions, TranscriptLine, TranscriptSink,
};
use smtp_test_server::{ServerConfig, TestPki, TestServer};

/// How much longer than its deadline a call may take before the test calls it a hang.
pub const MARGIN: Duration = Duration::from_secs(2);

pub fn addr(s: &str) -> Address {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope::new(ReversePath::Mailbox(addr(from)), to.iter().map(|t| addr(t)))
}

/// Runs the future on `async_io::block_on` and asserts it finished within `limit` plus [`MARGIN`].
pub fn within<T>(limit: Duration, f: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = async_io::block_on(f);
    let took = start.elapsed();
    assert!(
        took <= limit + MARGIN,
        "took {took:?}, more than the deadline {limit:?} plus {MARGIN:?}"
    );
    (out, took)
}

/// Runs a future to completion on the async-io reactor.
pub fn run<T>(f: impl Future<Output = T>) -> T {
    async_io::block_on(f)
}

/// A transcript sink that keeps every line.
pub fn collector() -> (TranscriptSink, Arc<Mutex<Vec<TranscriptLine>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l2 = Arc::clone(&lines);
    let sink: TranscriptSink =
        Arc::new(move |line: &TranscriptLine| l2.lock().unwrap().push(line.clone()));
    (sink, lines)
}

pub fn transcript_text(lines: &Arc<Mutex<Vec<TranscriptLine>>>) -> String {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}

pub fn expect_err<T: std::fmt::Debug>(r: Result<T, Error>) -> Error {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: sender@example.test\r\nTo: rcpt@example.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.test>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// A unique token per call, for finding a message in a spool.
pub fn token(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Options for a loopback server trusting `ca_pem` only.
pub fn local(port: u16, ca_pem: &str) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", port).with_tls_options(
        TlsOptions::default()
            .with_roots(smtp_smol::TrustRoots::ExtraOnly)
            .with_ca_pem(ca_pem.as_bytes().to_vec()),
    )
}

/// The real servers started by `.ci/servers/start.sh`: the `KEY=value` lines of `servers.env`.
pub struct Servers(HashMap<String, String>);

impl Servers {
    /// Loads the env file; panics (the test fails, never skips) when the servers are not running.
    pub fn load() -> Self {
        let path = std::env::var_os("SERVERS_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-servers/servers.env")
            });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the interop servers are not running ({}: {e}): run .ci/servers/start.sh first",
                path.display()
            )
        });
        let map = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Self(map)
    }

    pub fn get(&self, key: &str) -> String {
        self.0
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} missing from servers.env: run .ci/servers/start.sh"))
    }

    pub fn port(&self, key: &str) -> u16 {
        self.get(key)
            .parse()
            .unwrap_or_else(|e| panic!("{key}: {e}"))
    }

    /// Options for `localhost:<port>` trusting the test CA only.
    pub fn options(&self, port_key: &str) -> ConnectOptions {
        ConnectOptions::new(self.get("SMTP_TEST_HOST"), self.port(port_key)).with_tls_options(
            TlsOptions::default()
                .with_roots(smtp_smol::TrustRoots::ExtraOnly)
                .with_ca_file(self.get("SMTP_TEST_CA")),
        )
    }
}

/// A scripted server with STARTTLS and the user `alice` / `pa55-w0rd`.
pub fn starttls_auth_server() -> TestServer {
    TestServer::start(
        ServerConfig::new()
            .starttls(&TestPki::shared())
            .user("alice", "pa55-w0rd"),
    )
    .unwrap()
}

/// Options for [`starttls_auth_server`]: STARTTLS required, PLAIN as alice, short timeouts.
pub fn starttls_auth_options(server: &TestServer) -> ConnectOptions {
    local(server.port(), &TestPki::shared().ca_pem())
        .with_tls(TlsMode::StartTls)
        .with_password("alice", "pa55-w0rd")
        .with_timeouts(Timeouts::submission().capped(Duration::from_secs(2)))
}

/// Connects, sends one small message, QUITs; the message's outcome.
pub async fn send_one(o: ConnectOptions, subject: &str) -> Outcome {
    let mut conn = Connection::connect(&o).await.unwrap();
    let report = conn
        .send_bytes(
            &envelope("a@example.org", &["b@example.org"]),
            &message(subject, "x"),
        )
        .await
        .unwrap();
    conn.quit().await.unwrap();
    report.outcome
}
