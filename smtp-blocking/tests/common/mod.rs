//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use smtp_blocking::{
    Address, ConnectOptions, Envelope, Error, ReversePath, TranscriptLine, TranscriptSink,
};

/// How much longer than its deadline a call may take before the test calls it a hang.
pub const MARGIN: Duration = Duration::from_secs(2);

pub fn addr(s: &str) -> Address {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope::new(ReversePath::Mailbox(addr(from)), to.iter().map(|t| addr(t)))
}

/// Runs `f` and asserts it returned within `limit` plus [`MARGIN`].
pub fn within<T>(limit: Duration, f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(
        took <= limit + MARGIN,
        "took {took:?}, more than the deadline {limit:?} plus {MARGIN:?}"
    );
    (out, took)
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
        smtp_blocking::TlsOptions::default()
            .with_roots(smtp_blocking::TrustRoots::ExtraOnly)
            .with_ca_pem(ca_pem.as_bytes().to_vec()),
    )
}

/// The real servers started by `.ci/servers/start.sh`: the `KEY=value` lines of its `servers.env`
/// (`target/test-servers/servers.env`, or the file `SMTP_TEST_SERVERS_ENV` names).
pub struct Env(HashMap<String, String>);

impl Env {
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or_else(|| {
            panic!("{key} missing from servers.env: re-run .ci/servers/start.sh")
        })
    }

    pub fn port(&self, key: &str) -> u16 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not a port"))
    }
}

/// Loads `servers.env` once; panics (the test fails, never skips) when the servers were not started.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = std::env::var_os("SMTP_TEST_SERVERS_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-servers/servers.env")
            });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}. These tests need the real servers: run .ci/servers/start.sh first, or \
                 point SMTP_TEST_SERVERS_ENV at its servers.env",
                path.display()
            )
        });
        Env(text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect())
    })
}
