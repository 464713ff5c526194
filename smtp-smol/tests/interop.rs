//! Interop against real servers started by `.ci/servers/start.sh` (Postfix 2525/2587/2465, aiosmtpd 2527/2528/2529,
//! Dovecot LMTP 2424): every TLS mode and Auto, AUTH PLAIN/LOGIN right and wrong, partial rejection, a 25 MiB
//! message, many messages on one connection and through the pool, LMTP per-recipient results, SMTPUTF8.
//!
//! When the servers are not running these tests fail with "run .ci/servers/start.sh"; they never skip.

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::*;
use futures_lite::io::AsyncRead;
use smtp_smol::smtp_proto::{Mechanism, Mismatch};
use smtp_smol::{
    ConnectOptions, Connection, Envelope, ErrorKind, Outcome, Pool, PoolOptions, Protocol, Stage,
    Timeouts, TlsMode, TlsUsed,
};

/// Deadline cap for every stage against the real servers (they answer in milliseconds).
const CAP: Duration = Duration::from_secs(10);
/// The cap where a mode mismatch is expected: the silent side of a wrong mode ends at its greeting deadline.
const SHORT: Duration = Duration::from_secs(3);

fn servers() -> Servers {
    Servers::load()
}

fn opts(s: &Servers, port_key: &str, mode: TlsMode) -> ConnectOptions {
    s.options(port_key)
        .with_tls(mode)
        .with_timeouts(Timeouts::submission().capped(CAP))
        .with_connect_timeout(CAP)
        .with_probe_delay(Duration::from_millis(500))
}

fn alice(s: &Servers, o: ConnectOptions) -> ConnectOptions {
    o.with_password(s.get("TEST_USER_ALICE"), s.get("TEST_PASS_ALICE"))
}

fn carol(s: &Servers, o: ConnectOptions) -> ConnectOptions {
    o.with_password(s.get("TEST_USER_CAROL"), s.get("TEST_PASS_CAROL"))
}

/// Waits up to 20 s for a complete file under `dir` (recursively: `new/` and `cur/` of a maildir, never `tmp/`, or
/// a spool), modified in the last few minutes, whose content contains `token`.
fn find_file_with(dir: &Path, token: &str) -> Option<PathBuf> {
    let recent = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < Duration::from_secs(300)))
    };
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    if p.file_name().is_none_or(|n| n != "tmp") {
                        stack.push(p);
                    }
                } else if is_message_file(&p)
                    && recent(&p)
                    && head(&p).is_some_and(|b| memmem(&b, token.as_bytes()))
                {
                    return Some(p);
                }
            }
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A delivered message: in a maildir's `new/` or `cur/`, or an `.eml` in the aiosmtpd spool (not Dovecot's index
/// files, not the spool's JSON sidecars).
fn is_message_file(p: &Path) -> bool {
    let parent = p
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str());
    matches!(parent, Some("new" | "cur")) || p.extension().is_some_and(|x| x == "eml")
}

/// The first 16 KiB of a file: the token is in the headers.
fn head(p: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(p)
        .ok()?
        .take(16 * 1024)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

fn memmem(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The aiosmtpd sidecar (`<id>.json`) of the stored message containing `token`.
fn aiosmtpd_sidecar(s: &Servers, token: &str) -> String {
    let eml = find_file_with(Path::new(&s.get("AIOSMTPD_SPOOL")), token)
        .unwrap_or_else(|| panic!("message {token} not found in the aiosmtpd spool"));
    std::fs::read_to_string(eml.with_extension("json"))
        .expect("the sidecar is written before the .eml")
}

async fn send_to(
    conn: &mut Connection,
    from: &str,
    to: &[&str],
    token: &str,
) -> smtp_smol::SendReport {
    conn.send_bytes(
        &envelope(from, to),
        &message(token, &format!("body of {token}")),
    )
    .await
    .unwrap_or_else(|e| panic!("{token}: {e}"))
}

// ----- the TLS matrix -----

/// (port key, mode, credentials?, expected TLS in use or the expected error kind)
enum Expect {
    Delivered(TlsUsed),
    Fails(fn(&ErrorKind) -> bool),
}

#[test]
fn tls_matrix_against_postfix_and_aiosmtpd() {
    let s = servers();
    let mismatch = |k: &ErrorKind| matches!(k, ErrorKind::ModeMismatch(_));
    let plaintext_first = |k: &ErrorKind| {
        matches!(
            k,
            ErrorKind::ModeMismatch(Mismatch::ServerSpeaksPlaintext { .. })
        )
    };
    let no_starttls = |k: &ErrorKind| matches!(k, ErrorKind::StartTlsUnavailable);
    use Expect::*;
    let cases: Vec<(&str, TlsMode, bool, &str, Expect)> = vec![
        // Postfix 2525: plain port, STARTTLS offered, no AUTH needed from loopback.
        (
            "POSTFIX_PLAIN_PORT",
            TlsMode::StartTls,
            false,
            "alice@example.test",
            Delivered(TlsUsed::StartTls),
        ),
        (
            "POSTFIX_PLAIN_PORT",
            TlsMode::Auto,
            false,
            "alice@example.test",
            Delivered(TlsUsed::StartTls),
        ),
        (
            "POSTFIX_PLAIN_PORT",
            TlsMode::Opportunistic,
            false,
            "alice@example.test",
            Delivered(TlsUsed::StartTls),
        ),
        (
            "POSTFIX_PLAIN_PORT",
            TlsMode::None,
            false,
            "alice@example.test",
            Delivered(TlsUsed::None),
        ),
        (
            "POSTFIX_PLAIN_PORT",
            TlsMode::Implicit,
            false,
            "alice@example.test",
            Fails(plaintext_first),
        ),
        // Postfix 2587: submission, STARTTLS and AUTH required.
        (
            "POSTFIX_SUBMISSION_PORT",
            TlsMode::StartTls,
            true,
            "bob@example.test",
            Delivered(TlsUsed::StartTls),
        ),
        (
            "POSTFIX_SUBMISSION_PORT",
            TlsMode::Auto,
            true,
            "bob@example.test",
            Delivered(TlsUsed::StartTls),
        ),
        (
            "POSTFIX_SUBMISSION_PORT",
            TlsMode::Opportunistic,
            true,
            "bob@example.test",
            Delivered(TlsUsed::StartTls),
        ),
        (
            "POSTFIX_SUBMISSION_PORT",
            TlsMode::Implicit,
            true,
            "bob@example.test",
            Fails(plaintext_first),
        ),
        // Postfix 2465: smtps wrapper mode.
        (
            "POSTFIX_SMTPS_PORT",
            TlsMode::Implicit,
            true,
            "bob@example.test",
            Delivered(TlsUsed::Implicit),
        ),
        (
            "POSTFIX_SMTPS_PORT",
            TlsMode::Auto,
            true,
            "bob@example.test",
            Delivered(TlsUsed::Implicit),
        ),
        (
            "POSTFIX_SMTPS_PORT",
            TlsMode::StartTls,
            true,
            "bob@example.test",
            Fails(mismatch),
        ),
        (
            "POSTFIX_SMTPS_PORT",
            TlsMode::None,
            false,
            "bob@example.test",
            Fails(mismatch),
        ),
        // aiosmtpd 2527: STARTTLS required before MAIL.
        (
            "AIOSMTPD_STARTTLS_PORT",
            TlsMode::StartTls,
            false,
            "x@example.net",
            Delivered(TlsUsed::StartTls),
        ),
        (
            "AIOSMTPD_STARTTLS_PORT",
            TlsMode::Auto,
            false,
            "x@example.net",
            Delivered(TlsUsed::StartTls),
        ),
        (
            "AIOSMTPD_STARTTLS_PORT",
            TlsMode::Opportunistic,
            false,
            "x@example.net",
            Delivered(TlsUsed::StartTls),
        ),
        (
            "AIOSMTPD_STARTTLS_PORT",
            TlsMode::Implicit,
            false,
            "x@example.net",
            Fails(plaintext_first),
        ),
        // aiosmtpd 2528: implicit TLS.
        (
            "AIOSMTPD_IMPLICIT_PORT",
            TlsMode::Implicit,
            false,
            "x@example.net",
            Delivered(TlsUsed::Implicit),
        ),
        (
            "AIOSMTPD_IMPLICIT_PORT",
            TlsMode::Auto,
            false,
            "x@example.net",
            Delivered(TlsUsed::Implicit),
        ),
        (
            "AIOSMTPD_IMPLICIT_PORT",
            TlsMode::StartTls,
            false,
            "x@example.net",
            Fails(mismatch),
        ),
        // aiosmtpd 2529: plaintext only. Auto never falls back to plaintext.
        (
            "AIOSMTPD_PLAIN_PORT",
            TlsMode::None,
            false,
            "x@example.net",
            Delivered(TlsUsed::None),
        ),
        (
            "AIOSMTPD_PLAIN_PORT",
            TlsMode::Opportunistic,
            false,
            "x@example.net",
            Delivered(TlsUsed::None),
        ),
        (
            "AIOSMTPD_PLAIN_PORT",
            TlsMode::StartTls,
            false,
            "x@example.net",
            Fails(no_starttls),
        ),
        (
            "AIOSMTPD_PLAIN_PORT",
            TlsMode::Auto,
            false,
            "x@example.net",
            Fails(no_starttls),
        ),
    ];
    for (port, mode, auth, rcpt, expect) in cases {
        let mut o = opts(&s, port, mode).with_timeouts(Timeouts::submission().capped(SHORT));
        if auth {
            o = alice(&s, o);
        }
        let token = token(&format!("matrix-{}-{mode}", s.port(port)));
        let (r, _) = within(SHORT * 2, async {
            let mut conn = Connection::connect(&o).await?;
            let tls = conn.tls();
            let report = conn
                .send_bytes(
                    &envelope("alice@example.test", &[rcpt]),
                    &message(&token, "matrix"),
                )
                .await?;
            conn.quit().await?;
            Ok::<_, smtp_smol::Error>((tls, report))
        });
        match (expect, r) {
            (Delivered(used), Ok((tls, report))) => {
                assert_eq!(tls, used, "{port} {mode}");
                assert_eq!(
                    report.outcome,
                    Outcome::Accepted,
                    "{port} {mode}: {report:?}"
                );
                assert_eq!(report.tls, used);
                if port.starts_with("AIOSMTPD") {
                    let sidecar = aiosmtpd_sidecar(&s, &token);
                    let tls_json = format!("\"tls\": {}", used != TlsUsed::None);
                    assert!(sidecar.contains(&tls_json), "{port} {mode}: {sidecar}");
                } else {
                    let maildir = if rcpt.starts_with("alice") {
                        "MAILDIR_ALICE"
                    } else {
                        "MAILDIR_BOB"
                    };
                    assert!(
                        find_file_with(Path::new(&s.get(maildir)), &token).is_some(),
                        "{port} {mode}: {token} not delivered"
                    );
                }
            }
            (Fails(check), Err(e)) => {
                assert!(
                    check(e.kind()),
                    "{port} {mode}: unexpected error {e:?} ({e})"
                );
                assert!(
                    !e.is_transient() || matches!(e.kind(), ErrorKind::Timeout),
                    "{port} {mode}: {e}"
                );
            }
            (Delivered(_), Err(e)) => panic!("{port} {mode}: expected delivery, got {e}"),
            (Fails(_), Ok((tls, r))) => panic!(
                "{port} {mode}: expected a failure, got {tls:?} {:?}",
                r.outcome
            ),
        }
    }
}

#[test]
fn mismatch_texts_name_the_fix() {
    let s = servers();
    let o = opts(&s, "POSTFIX_SMTPS_PORT", TlsMode::StartTls)
        .with_timeouts(Timeouts::submission().capped(SHORT));
    let (r, _) = within(SHORT * 2, Connection::connect(&o));
    let e = expect_err(r);
    assert!(e.to_string().contains("implicit TLS (smtps://"), "{e}");
    assert_eq!(e.exit_code(), 78);
    let (r, _) = within(
        CAP,
        Connection::connect(&opts(&s, "POSTFIX_SUBMISSION_PORT", TlsMode::Implicit)),
    );
    let e = expect_err(r);
    assert!(e.to_string().contains("use STARTTLS"), "{e}");
    assert!(e.to_string().contains("220"), "the greeting is quoted: {e}");
}

#[test]
fn submission_without_auth_is_refused_per_recipient() {
    let s = servers();
    let report = run(async {
        let mut conn = Connection::connect(&opts(&s, "POSTFIX_SUBMISSION_PORT", TlsMode::StartTls))
            .await
            .unwrap();
        send_to(
            &mut conn,
            "alice@example.test",
            &["someone@example.net"],
            &token("noauth"),
        )
        .await
    });
    assert_eq!(report.outcome, Outcome::Rejected);
    assert!(
        report.recipients[0].code().is_some_and(|c| c >= 500),
        "{report:?}"
    );
}

// ----- AUTH -----

#[test]
fn auth_plain_and_login_right_and_wrong() {
    let s = servers();
    for (port, user, pass) in [
        (
            "POSTFIX_SUBMISSION_PORT",
            s.get("TEST_USER_ALICE"),
            s.get("TEST_PASS_ALICE"),
        ),
        (
            "POSTFIX_SMTPS_PORT",
            s.get("TEST_USER_BOB"),
            s.get("TEST_PASS_BOB"),
        ),
        (
            "AIOSMTPD_STARTTLS_PORT",
            s.get("TEST_USER_CAROL"),
            s.get("TEST_PASS_CAROL"),
        ),
    ] {
        for mechanism in [Mechanism::Plain, Mechanism::Login] {
            let o = opts(&s, port, TlsMode::Auto).with_mechanisms(vec![mechanism.clone()]);
            let (sink, lines) = collector();
            let right = o
                .clone()
                .with_password(user.clone(), pass.clone())
                .with_transcript(sink);
            let token = token("auth");
            run(async {
                let mut conn = Connection::connect(&right)
                    .await
                    .unwrap_or_else(|e| panic!("{port} {mechanism:?}: {e}"));
                assert!(conn.is_authenticated());
                let report = send_to(
                    &mut conn,
                    "alice@example.test",
                    &["alice@example.test"],
                    &token,
                )
                .await;
                assert_eq!(report.outcome, Outcome::Accepted, "{port} {mechanism:?}");
                conn.quit().await.unwrap();
            });
            let text = transcript_text(&lines);
            assert!(
                text.contains(&format!("C: AUTH {}", mechanism.as_str())),
                "{text}"
            );
            assert!(
                !text.contains(&pass),
                "the password leaked into the transcript: {text}"
            );
            let wrong = o.with_password(user.clone(), format!("{pass}-wrong"));
            let (r, _) = within(CAP, Connection::connect(&wrong));
            let e = expect_err(r);
            assert!(
                matches!(e.kind(), ErrorKind::AuthFailed { .. }),
                "{port} {mechanism:?}: {e}"
            );
            assert_eq!(e.stage(), Stage::Auth);
            assert_eq!(e.code(), Some(535), "{e}");
            assert_eq!(e.exit_code(), 77);
        }
    }
}

// ----- recipients, sizes, volume -----

#[test]
fn partial_rejection_and_tempfail_per_recipient() {
    let s = servers();
    let o = opts(&s, "POSTFIX_PLAIN_PORT", TlsMode::StartTls);
    run(async {
        let mut conn = Connection::connect(&o).await.unwrap();
        let reject = s.get("TEST_RCPT_REJECT");
        let tempfail = s.get("TEST_RCPT_TEMPFAIL");
        let unknown = s.get("TEST_RCPT_UNKNOWN");
        let token = token("partial");
        let report = send_to(
            &mut conn,
            "alice@example.test",
            &["alice@example.test", &reject, &tempfail, &unknown],
            &token,
        )
        .await;
        assert_eq!(report.outcome, Outcome::PartiallyAccepted, "{report:?}");
        let r = &report.recipients;
        assert!(r[0].accepted);
        assert_eq!(
            (r[1].code(), r[1].enhanced().map(|e| e.to_string())),
            (Some(550), Some("5.1.1".into()))
        );
        assert_eq!(
            (r[2].code(), r[2].enhanced().map(|e| e.to_string())),
            (Some(450), Some("4.2.1".into()))
        );
        assert_eq!(r[3].code(), Some(550));
        assert!(report.is_transient(), "one refusal was temporary");
        assert!(find_file_with(Path::new(&s.get("MAILDIR_ALICE")), &token).is_some());
        // All refused, then the connection is still usable.
        let report = send_to(
            &mut conn,
            "alice@example.test",
            &[&reject],
            &crate::token("rejected"),
        )
        .await;
        assert_eq!(report.outcome, Outcome::Rejected);
        assert_eq!(report.exit_code(), 69);
        let report = send_to(
            &mut conn,
            "alice@example.test",
            &["bob@example.test"],
            &crate::token("after"),
        )
        .await;
        assert_eq!(report.outcome, Outcome::Accepted);
        conn.quit().await.unwrap();
    });
}

/// A 25 MiB body generated on the fly, with a token in its headers.
struct Big {
    header: Vec<u8>,
    left: usize,
    n: usize,
}

impl AsyncRead for Big {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if !self.header.is_empty() {
            let n = buf.len().min(self.header.len());
            buf[..n].copy_from_slice(&self.header[..n]);
            self.header.drain(..n);
            return Poll::Ready(Ok(n));
        }
        let n = buf.len().min(self.left);
        for b in &mut buf[..n] {
            self.n += 1;
            *b = match self.n % 100 {
                98 => b'\r',
                99 => b'\n',
                0 => b'.',
                k => b'A' + (k % 26) as u8,
            };
        }
        self.left -= n;
        Poll::Ready(Ok(n))
    }
}

#[test]
fn a_25_mib_message_through_tls() {
    let s = servers();
    const SIZE: usize = 25 * 1024 * 1024;
    for (port, mode, rcpt) in [
        (
            "POSTFIX_SUBMISSION_PORT",
            TlsMode::StartTls,
            "bob@example.test",
        ),
        ("AIOSMTPD_IMPLICIT_PORT", TlsMode::Implicit, "x@example.net"),
    ] {
        let token = token("big");
        let mut o = opts(&s, port, mode).with_timeouts(Timeouts::submission());
        if port.starts_with("POSTFIX") {
            o = alice(&s, o);
        }
        let header =
            format!("Subject: {token}\r\nMessage-ID: <{token}@example.test>\r\n\r\n").into_bytes();
        let header_len = header.len();
        let (report, took) = within(Duration::from_secs(120), async {
            let mut conn = Connection::connect(&o).await.unwrap();
            let mut body = Big {
                header,
                left: SIZE,
                n: 0,
            };
            let r = conn
                .send(&envelope("alice@example.test", &[rcpt]), &mut body)
                .await;
            conn.quit().await.unwrap();
            r.unwrap()
        });
        assert_eq!(report.outcome, Outcome::Accepted, "{port}: {report:?}");
        assert_eq!(report.body_bytes, (SIZE + header_len) as u64);
        eprintln!("{port}: 25 MiB in {took:?}");
        if port.starts_with("AIOSMTPD") {
            let sidecar = aiosmtpd_sidecar(&s, &token);
            // Every line starting with a dot was stuffed on the wire and unstuffed by the server; the body did not
            // end with CRLF, so the encoder added one before the final dot.
            let size_json = format!("\"size\": {}", SIZE + header_len + 2);
            assert!(sidecar.contains(&size_json), "{sidecar}");
        } else {
            let file =
                find_file_with(Path::new(&s.get("MAILDIR_BOB")), &token).expect("delivered to bob");
            // Dovecot stores LF line endings: one byte less per 100-byte line.
            let len = std::fs::metadata(file).unwrap().len() as usize;
            assert!(len >= SIZE / 100 * 99, "{len}");
        }
    }
}

#[test]
fn many_messages_on_one_connection() {
    let s = servers();
    let sink = s.get("TEST_SINK_DOMAIN");
    let o = opts(&s, "POSTFIX_PLAIN_PORT", TlsMode::StartTls);
    let (_, took) = within(Duration::from_secs(60), async {
        let mut conn = Connection::connect(&o).await.unwrap();
        for i in 0..100 {
            let to = format!("user{i}@{sink}");
            let report = send_to(&mut conn, "alice@example.test", &[&to], &token("many")).await;
            assert_eq!(report.outcome, Outcome::Accepted, "message {i}");
        }
        assert_eq!(conn.messages_sent(), 100);
        conn.quit().await.unwrap();
    });
    eprintln!("100 messages on one STARTTLS connection in {took:?}");
}

#[test]
fn pool_through_authenticated_submission() {
    let s = servers();
    let o = alice(&s, opts(&s, "POSTFIX_SUBMISSION_PORT", TlsMode::Auto));
    let pool = Pool::new(
        o,
        PoolOptions::default()
            .max_connections(4)
            .max_messages_per_connection(10),
    )
    .unwrap();
    let sink = s.get("TEST_SINK_DOMAIN");
    let reports = run(async {
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let pool = pool.clone();
                let to = format!("pooled{i}@{sink}");
                async move {
                    pool.send_bytes(
                        &envelope("alice@example.test", &[&to]),
                        message(&format!("pool-{i}"), "pooled"),
                    )
                    .await
                }
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks.into_iter().map(smol::spawn) {
            out.push(t.await);
        }
        pool.close().await;
        out
    });
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(
            r.as_ref().map(|r| r.outcome).ok(),
            Some(Outcome::Accepted),
            "message {i}: {r:?}"
        );
    }
    let stats = pool.stats();
    assert!(stats.opened >= 4 && stats.opened <= 8, "{stats:?}");
    assert_eq!(stats.open, 0, "{stats:?}");
}

// ----- LMTP and SMTPUTF8 -----

#[test]
fn lmtp_per_recipient_results_from_dovecot() {
    let s = servers();
    let o = opts(&s, "DOVECOT_LMTP_PORT", TlsMode::None).with_protocol(Protocol::Lmtp);
    let token = token("lmtp");
    let report = run(async {
        let mut conn = Connection::connect(&o).await.unwrap();
        let r = send_to(
            &mut conn,
            "sender@example.test",
            &[
                "alice@example.test",
                "nobody@example.test",
                "bob@example.test",
            ],
            &token,
        )
        .await;
        conn.quit().await.unwrap();
        r
    });
    assert_eq!(report.outcome, Outcome::PartiallyAccepted, "{report:?}");
    let r = &report.recipients;
    assert!(r[0].accepted && r[2].accepted && !r[1].accepted);
    assert_eq!(r[1].code(), Some(550));
    // Each accepted recipient has its own verdict after the data (RFC 2033).
    assert!(
        r[0].code() == Some(250) && r[2].code() == Some(250),
        "{r:?}"
    );
    assert!(find_file_with(Path::new(&s.get("MAILDIR_ALICE")), &token).is_some());
    assert!(find_file_with(Path::new(&s.get("MAILDIR_BOB")), &token).is_some());
}

#[test]
fn smtputf8_with_postfix_and_aiosmtpd() {
    let s = servers();
    let sink = s.get("TEST_SINK_DOMAIN");
    let to = format!("ünïcödé@{sink}");
    let report = run(async {
        let mut conn = Connection::connect(&opts(&s, "POSTFIX_PLAIN_PORT", TlsMode::StartTls))
            .await
            .unwrap();
        send_to(
            &mut conn,
            "jösé@example.test",
            &[&to],
            &token("utf8-postfix"),
        )
        .await
    });
    assert_eq!(report.outcome, Outcome::Accepted, "{report:?}");
    let token = token("utf8-aiosmtpd");
    let report = run(async {
        let o = carol(&s, opts(&s, "AIOSMTPD_STARTTLS_PORT", TlsMode::Auto));
        let mut conn = Connection::connect(&o).await.unwrap();
        send_to(&mut conn, "jösé@exämple.test", &["用户@例子.test"], &token).await
    });
    assert_eq!(report.outcome, Outcome::Accepted);
    let sidecar = aiosmtpd_sidecar(&s, &token);
    assert!(sidecar.contains("\"smtputf8\": true"), "{sidecar}");
    assert!(sidecar.contains("\"auth_user\": \"carol\""), "{sidecar}");
}

#[test]
fn strongest_mechanism_is_scram_with_channel_binding_data() {
    // Postfix (through Dovecot) offers PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256: with fresh randomness from the adapter
    // the core picks SCRAM-SHA-256 and verifies the server's signature. Wrong passwords fail for every mechanism.
    let s = servers();
    let token = token("scram");
    let (sink, lines) = collector();
    let o = alice(&s, opts(&s, "POSTFIX_SUBMISSION_PORT", TlsMode::Auto)).with_transcript(sink);
    run(async {
        let mut conn = Connection::connect(&o).await.unwrap();
        assert!(conn.is_authenticated());
        let r = send_to(
            &mut conn,
            "alice@example.test",
            &["bob@example.test"],
            &token,
        )
        .await;
        assert_eq!(r.outcome, Outcome::Accepted);
        conn.quit().await.unwrap();
    });
    let text = transcript_text(&lines);
    assert!(text.contains("C: AUTH SCRAM-SHA-256"), "{text}");
    assert!(!text.contains(&s.get("TEST_PASS_ALICE")), "{text}");
    assert!(find_file_with(Path::new(&s.get("MAILDIR_BOB")), &token).is_some());
    for mechanism in [Mechanism::Plain, Mechanism::Login, Mechanism::ScramSha256] {
        let o = opts(&s, "POSTFIX_SUBMISSION_PORT", TlsMode::StartTls)
            .with_password(s.get("TEST_USER_ALICE"), "not-the-password")
            .with_mechanisms(vec![mechanism.clone()]);
        let e = expect_err(run(Connection::connect(&o)));
        assert!(
            matches!(e.kind(), ErrorKind::AuthFailed { .. }),
            "{mechanism}: {e}"
        );
        assert_eq!(
            (e.stage(), e.code(), e.exit_code()),
            (Stage::Auth, Some(535), 77)
        );
        assert!(!e.is_transient());
    }
}

#[test]
fn every_resolved_address_is_tried_and_ipv6_works() {
    // "localhost" resolves to ::1 and 127.0.0.1; the plain aiosmtpd instance listens on 127.0.0.1 only, so an
    // IPv6-first resolution must fall through to IPv4.
    let s = servers();
    let token = token("resolve");
    run(async {
        let mut conn = Connection::connect(&opts(&s, "AIOSMTPD_PLAIN_PORT", TlsMode::None))
            .await
            .unwrap();
        assert!(conn.peer_addr().ip().is_some_and(|ip| ip.is_loopback()));
        let r = send_to(
            &mut conn,
            "sender@example.test",
            &["rcpt@example.test"],
            &token,
        )
        .await;
        assert_eq!(r.outcome, Outcome::Accepted);
    });
    aiosmtpd_sidecar(&s, &token);
    let ipv6 = s.get("SMTP_TEST_IPV6");
    let host = if ipv6.is_empty() {
        s.get("SMTP_TEST_IPV4")
    } else {
        ipv6
    };
    let o =
        ConnectOptions::new(host.clone(), s.port("POSTFIX_CHUNKING_PORT")).with_tls(TlsMode::None);
    let to = format!("v6@{}", s.get("TEST_SINK_DOMAIN"));
    let r = run(async {
        let mut conn = Connection::connect(&o)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        send_to(
            &mut conn,
            "sender@example.test",
            &[&to],
            &crate::token("v6"),
        )
        .await
    });
    assert_eq!(r.outcome, Outcome::Accepted);
}

#[test]
fn client_certificate_and_untrusted_ca_against_real_servers() {
    let s = servers();
    let tls = smtp_smol::TlsOptions::default()
        .with_roots(smtp_smol::TrustRoots::ExtraOnly)
        .with_ca_file(s.get("SMTP_TEST_CA"))
        .with_client_certificate(
            smtp_smol::Pem::File(s.get("SMTP_TEST_CLIENT_CERT").into()),
            smtp_smol::Pem::File(s.get("SMTP_TEST_CLIENT_KEY").into()),
        );
    let o = opts(&s, "AIOSMTPD_IMPLICIT_PORT", TlsMode::Implicit).with_tls_options(tls);
    let token = token("client-cert");
    let r = run(async {
        let mut conn = Connection::connect(&o).await.unwrap();
        send_to(
            &mut conn,
            "sender@example.test",
            &["rcpt@example.test"],
            &token,
        )
        .await
    });
    assert_eq!(r.outcome, Outcome::Accepted);
    // A wrong key path is a TLS configuration error, reported before connecting.
    let bad = smtp_smol::TlsOptions::default().with_client_certificate(
        smtp_smol::Pem::File(s.get("SMTP_TEST_CLIENT_CERT").into()),
        smtp_smol::Pem::File("/nonexistent.key".into()),
    );
    let e = expect_err(run(Connection::connect(
        &opts(&s, "AIOSMTPD_IMPLICIT_PORT", TlsMode::Implicit).with_tls_options(bad),
    )));
    assert!(matches!(e.kind(), ErrorKind::TlsConfig { .. }), "{e}");
    assert_eq!(e.exit_code(), 78);
    // Without the test CA (the built-in roots only), Postfix's certificate does not verify.
    let o = ConnectOptions::new(s.get("SMTP_TEST_HOST"), s.port("POSTFIX_PLAIN_PORT"))
        .with_tls(TlsMode::StartTls)
        .with_timeouts(Timeouts::submission().capped(CAP));
    let (r, _) = within(CAP, Connection::connect(&o));
    let e = expect_err(r);
    assert!(matches!(e.kind(), ErrorKind::Tls { .. }), "{e}");
    assert!(e.to_string().contains("unknown issuer"), "{e}");
}

// ----- messages back to back (`send_batch`) -----

/// Five messages, the third to a refused recipient, through `send_batch`; checks the outcomes, the deliveries in
/// `maildir`, one connection, and that the second message's MAIL left before the first verdict came back.
fn batch_to(o: ConnectOptions, to: &str, refused: &str, maildir: &str, first_verdict: &str) {
    let (sink, lines) = collector();
    let o = o.with_transcript(sink);
    let tokens: Vec<String> = (0..5).map(|i| token(&format!("batch-{i}"))).collect();
    let envelopes: Vec<Envelope> = (0..5)
        .map(|i| envelope("sender@example.test", &[if i == 2 { refused } else { to }]))
        .collect();
    let bodies: Vec<Vec<u8>> = tokens
        .iter()
        .map(|t| message(t, &format!("body of {t}")))
        .collect();
    let results = run(async {
        let mut conn = Connection::connect(&o).await.unwrap();
        let results = conn
            .send_batch(
                envelopes
                    .iter()
                    .zip(&bodies)
                    .map(|(e, b)| (e, b.as_slice())),
            )
            .await;
        conn.quit().await.unwrap();
        results
    });
    let outcomes: Vec<Outcome> = results
        .iter()
        .map(|r| r.as_ref().expect("a report").outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Accepted,
            Outcome::Accepted,
            Outcome::Rejected,
            Outcome::Accepted,
            Outcome::Accepted
        ]
    );
    let text = transcript_text(&lines);
    assert_eq!(text.matches("connected to").count(), 1, "{text}");
    assert_eq!(text.matches("C: MAIL FROM").count(), 5, "{text}");
    let second_mail = text.match_indices("C: MAIL FROM").nth(1).unwrap().0;
    let verdict = text
        .find(first_verdict)
        .unwrap_or_else(|| panic!("no {first_verdict:?} in\n{text}"));
    assert!(
        second_mail < verdict,
        "the second envelope went out before the first verdict:\n{text}"
    );
    for i in [0, 1, 3, 4] {
        assert!(
            find_file_with(Path::new(maildir), &tokens[i]).is_some(),
            "message {i} delivered"
        );
    }
}

#[test]
fn postfix_batch_with_data_and_with_chunking() {
    let s = servers();
    for chunking in [false, true] {
        let mut o = opts(&s, "POSTFIX_PLAIN_PORT", TlsMode::StartTls);
        o.session.chunking = chunking;
        batch_to(
            o,
            "bob@example.test",
            &s.get("TEST_RCPT_REJECT"),
            &s.get("MAILDIR_BOB"),
            // The verdicts, not the RSET's "250 2.0.0 Ok".
            "S: 250 2.0.0 Ok: ",
        );
    }
}

#[test]
fn dovecot_lmtp_batch() {
    let s = servers();
    batch_to(
        opts(&s, "DOVECOT_LMTP_PORT", TlsMode::None).with_protocol(Protocol::Lmtp),
        "alice@example.test",
        &s.get("TEST_RCPT_UNKNOWN"),
        &s.get("MAILDIR_ALICE"),
        "S: 250 2.0.0 <",
    );
}
