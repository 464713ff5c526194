//! The project demo: `cargo run -p smtp-blocking --example demo`.
//!
//! Starts two scripted SMTP servers on loopback (one speaking implicit TLS, one STARTTLS with AUTH) with a
//! throw-away certificate authority, sends a message through implicit TLS, STARTTLS and `Auto` (printing every
//! transcript), then forces the wrong TLS mode on each port to show the diagnosis. Finishes in a few seconds.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_blocking::{
    ConnectOptions, Connection, Envelope, Outcome, ReversePath, Timeouts, TlsMode, TlsOptions,
    TranscriptLine, TrustRoots,
};
use smtp_test_server::{ServerConfig, TestPki, TestServer};

fn printer(start: Instant) -> smtp_blocking::TranscriptSink {
    Arc::new(move |line: &TranscriptLine| {
        let t = line.at.saturating_duration_since(start).as_secs_f64();
        println!("    [{t:6.3}s] {line}");
    })
}

fn options(port: u16, pki: &TestPki, mode: TlsMode) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", port)
        .with_tls(mode)
        // Trust only the demo's CA (as `smtp-send --ca-file` would add one).
        .with_tls_options(
            TlsOptions::default()
                .with_roots(TrustRoots::ExtraOnly)
                .with_ca_pem(pki.ca_pem().into_bytes()),
        )
        // Auto starts an implicit-TLS attempt after 1 s without a greeting (3 s by default).
        .with_probe_delay(Duration::from_secs(1))
        .with_transcript(printer(Instant::now()))
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: demo@example.org\r\nTo: friend@example.net\r\nSubject: {subject}\r\n\r\nSent by the smtp-blocking demo.\r\n"
    )
    .into_bytes()
}

fn send(title: &str, options: &ConnectOptions) -> bool {
    println!("\n== {title}");
    let started = Instant::now();
    let mut conn = match Connection::connect(options) {
        Ok(c) => c,
        Err(e) => {
            println!("  unexpected error: {e}");
            return false;
        }
    };
    let envelope = Envelope::new(
        ReversePath::Mailbox("demo@example.org".parse().expect("valid address")),
        ["friend@example.net".parse().expect("valid address")],
    );
    let report = match conn.send_bytes(&envelope, &message(title)) {
        Ok(r) => r,
        Err(e) => {
            println!("  unexpected error: {e}");
            return false;
        }
    };
    let tls = conn.tls();
    let reason = conn.tls_reason().to_owned();
    let _ = conn.quit();
    println!(
        "  => {} over TLS mode {tls} in {} ms ({reason})",
        report.outcome,
        started.elapsed().as_millis()
    );
    report.outcome == Outcome::Accepted
}

fn mismatch(title: &str, options: ConnectOptions) -> bool {
    println!("\n== {title}");
    let started = Instant::now();
    match Connection::connect(&options) {
        Ok(_) => {
            println!("  unexpectedly connected");
            false
        }
        Err(e) => {
            println!(
                "  => error after {} ms [kind {}, exit code {}]:\n     {e}",
                started.elapsed().as_millis(),
                e.kind().name(),
                e.exit_code()
            );
            matches!(e.kind(), smtp_blocking::ErrorKind::ModeMismatch(_))
        }
    }
}

fn main() -> ExitCode {
    let pki = TestPki::new();
    let (implicit, starttls) = match (
        TestServer::start(
            ServerConfig::new()
                .hostname("implicit.demo")
                .implicit_tls(&pki),
        ),
        TestServer::start(
            ServerConfig::new()
                .hostname("starttls.demo")
                .starttls(&pki)
                .user("demo", "demo-password"),
        ),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cannot start the demo servers: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Demo servers on loopback: implicit TLS on port {}, STARTTLS (with AUTH) on port {}.",
        implicit.port(),
        starttls.port()
    );

    let mut ok = true;
    ok &= send(
        "implicit TLS (smtps)",
        &options(implicit.port(), &pki, TlsMode::Implicit),
    );
    ok &= send(
        "STARTTLS with AUTH PLAIN (the password never appears in the transcript)",
        &options(starttls.port(), &pki, TlsMode::StartTls).with_password("demo", "demo-password"),
    );
    ok &= send(
        "auto on the STARTTLS port",
        &options(starttls.port(), &pki, TlsMode::Auto),
    );
    ok &= send(
        "auto on the implicit-TLS port (a non-standard port: it finds out)",
        &options(implicit.port(), &pki, TlsMode::Auto),
    );

    // Forced modes that do not match: short deadlines, so the demo stays fast.
    let short = Timeouts::submission().capped(Duration::from_secs(1));
    ok &= mismatch(
        "forcing STARTTLS against the implicit-TLS port",
        options(implicit.port(), &pki, TlsMode::StartTls).with_timeouts(short),
    );
    ok &= mismatch(
        "forcing implicit TLS against the STARTTLS port",
        options(starttls.port(), &pki, TlsMode::Implicit).with_timeouts(short),
    );

    println!(
        "\nThe servers received {} messages.",
        implicit.messages().len() + starttls.messages().len()
    );
    if ok {
        println!("Demo finished: every step behaved as expected.");
        ExitCode::SUCCESS
    } else {
        println!("Demo finished with unexpected results (see above).");
        ExitCode::FAILURE
    }
}
