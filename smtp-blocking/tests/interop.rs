//! The blocking adapter against real servers on loopback: Postfix (STARTTLS, submission with AUTH, smtps
//! wrapper mode, CHUNKING), aiosmtpd (STARTTLS+AUTH, implicit TLS, plaintext) and Dovecot LMTP, as started by
//! `.ci/servers/start.sh`, which writes `target/test-servers/servers.env` (path overridable with
//! `SMTP_TEST_SERVERS_ENV`). Without that file these tests fail: they never skip.
//!
//! Delivery is verified where the servers store mail: Dovecot maildirs (Postfix delivers local mail over LMTP) and
//! the aiosmtpd spool (one `.eml` and a `.json` envelope sidecar per message).

mod common;

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use smtp_blocking::smtp_proto::Mismatch;
use smtp_blocking::{
    ConnectOptions, Connection, Envelope, ErrorKind, Mechanism, Outcome, Pem, Protocol, Stage,
    Timeouts, TlsMode, TlsOptions, TlsUsed,
};

/// Options for a real server on `localhost` (its certificate's name) trusting the test CA.
fn server(port_key: &str, mode: TlsMode) -> ConnectOptions {
    let e = env();
    ConnectOptions::new(e.get("SMTP_TEST_HOST"), e.port(port_key))
        .with_tls(mode)
        .with_tls_options(TlsOptions::default().with_ca_file(e.get("SMTP_TEST_CA")))
        .with_timeouts(Timeouts::submission().capped(Duration::from_secs(20)))
        .with_connect_timeout(Duration::from_secs(5))
        .with_probe_delay(Duration::from_millis(500))
}

fn alice(o: ConnectOptions) -> ConnectOptions {
    let e = env();
    o.with_password(e.get("TEST_USER_ALICE"), e.get("TEST_PASS_ALICE"))
}

fn carol(o: ConnectOptions) -> ConnectOptions {
    let e = env();
    o.with_password(e.get("TEST_USER_CAROL"), e.get("TEST_PASS_CAROL"))
}

fn bob() -> String {
    env().get("TEST_USER_BOB").to_owned()
}

/// Sends a small message carrying `token` and returns the report.
fn send_token(
    conn: &mut Connection,
    from: &str,
    to: &[&str],
    token: &str,
) -> smtp_blocking::SendReport {
    conn.send_bytes(
        &envelope(from, to),
        &message(token, &format!("token {token}")),
    )
    .unwrap_or_else(|e| panic!("{token}: {e}"))
}

/// Waits (bounded) for a file in one of `dirs` that contains `token`. Only files changed in the last few minutes
/// are read, each once: the spools and maildirs grow with every run (and other crates' tests).
fn wait_for_file(dirs: &[PathBuf], token: &str, timeout: Duration) -> Option<PathBuf> {
    let end = Instant::now() + timeout;
    let since = SystemTime::now() - Duration::from_secs(300);
    let mut seen = HashSet::new();
    loop {
        for d in dirs {
            let Ok(entries) = std::fs::read_dir(d) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let recent = entry
                    .metadata()
                    .ok()
                    .filter(|m| m.is_file())
                    .and_then(|m| m.modified().ok())
                    .is_some_and(|t| t >= since);
                if !recent || seen.contains(&path) {
                    continue;
                }
                if let Ok(bytes) = std::fs::read(&path)
                    && bytes.windows(token.len()).any(|w| w == token.as_bytes())
                {
                    return Some(path);
                }
                seen.insert(path);
            }
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn in_maildir(key: &str, token: &str) -> PathBuf {
    let dir = PathBuf::from(env().get(key));
    // Only the messages: Dovecot's index cache in the maildir root holds headers too.
    wait_for_file(
        &[dir.join("new"), dir.join("cur")],
        token,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|| panic!("{token} was not delivered to {}", dir.display()))
}

/// The aiosmtpd spool entry (`.eml`) holding `token`, and its JSON sidecar as text.
fn in_spool(token: &str) -> (PathBuf, String) {
    let dir = PathBuf::from(env().get("AIOSMTPD_SPOOL"));
    let eml = wait_for_file(std::slice::from_ref(&dir), token, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{token} not in the aiosmtpd spool {}", dir.display()));
    let sidecar = std::fs::read_to_string(eml.with_extension("json")).expect("sidecar");
    (eml, sidecar)
}

fn compact(json: &str) -> String {
    json.chars().filter(|c| !c.is_whitespace()).collect()
}

// ----- Postfix -----

#[test]
fn postfix_plain_port_every_mode() {
    for (mode, used) in [
        (TlsMode::StartTls, TlsUsed::StartTls),
        (TlsMode::Auto, TlsUsed::StartTls),
        (TlsMode::Opportunistic, TlsUsed::StartTls),
        (TlsMode::None, TlsUsed::None),
    ] {
        let t = token(&format!("pf-2525-{mode}"));
        let mut conn = Connection::connect(&server("POSTFIX_PLAIN_PORT", mode))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(conn.tls(), used, "{mode}");
        let r = send_token(&mut conn, "sender@example.test", &[&bob()], &t);
        assert_eq!(r.outcome, Outcome::Accepted, "{mode}: {r:?}");
        conn.quit().unwrap();
        let delivered =
            String::from_utf8_lossy(&std::fs::read(in_maildir("MAILDIR_BOB", &t)).unwrap())
                .into_owned();
        assert_eq!(
            delivered.contains("using TLS"),
            used != TlsUsed::None,
            "{mode}: {delivered}"
        );
    }
    // Implicit TLS against the plaintext-first port is diagnosed.
    let e = expect_err(Connection::connect(&server(
        "POSTFIX_PLAIN_PORT",
        TlsMode::Implicit,
    )));
    assert!(
        matches!(
            e.kind(),
            ErrorKind::ModeMismatch(Mismatch::ServerSpeaksPlaintext { .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("use STARTTLS"), "{e}");
}

#[test]
fn postfix_submission_auth_plain_and_login() {
    for mode in [TlsMode::StartTls, TlsMode::Auto] {
        for mech in [Mechanism::Plain, Mechanism::Login] {
            let t = token(&format!("pf-2587-{mode}-{mech}"));
            let (sink, lines) = collector();
            let o = alice(server("POSTFIX_SUBMISSION_PORT", mode))
                .with_mechanisms(vec![mech.clone()])
                .with_transcript(sink);
            let mut conn = Connection::connect(&o).unwrap_or_else(|e| panic!("{mode} {mech}: {e}"));
            assert!(conn.is_authenticated());
            assert_eq!(conn.tls(), TlsUsed::StartTls);
            let r = send_token(&mut conn, env().get("TEST_USER_ALICE"), &[&bob()], &t);
            assert_eq!(r.outcome, Outcome::Accepted);
            conn.quit().unwrap();
            let text = transcript_text(&lines);
            assert!(text.contains(&format!("C: AUTH {mech}")), "{text}");
            assert!(!text.contains(env().get("TEST_PASS_ALICE")), "{text}");
            in_maildir("MAILDIR_BOB", &t);
        }
    }
}

#[test]
fn postfix_strongest_mechanism_is_scram() {
    // Postfix offers Dovecot's PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256; with fresh randomness from the adapter the core
    // picks SCRAM-SHA-256 and verifies the server's signature.
    let t = token("pf-scram");
    let (sink, lines) = collector();
    let o = alice(server("POSTFIX_SUBMISSION_PORT", TlsMode::Auto)).with_transcript(sink);
    let mut conn = Connection::connect(&o).unwrap();
    assert!(conn.is_authenticated());
    let r = send_token(&mut conn, env().get("TEST_USER_ALICE"), &[&bob()], &t);
    assert_eq!(r.outcome, Outcome::Accepted);
    conn.quit().unwrap();
    let text = transcript_text(&lines);
    assert!(text.contains("C: AUTH SCRAM-SHA-256"), "{text}");
    assert!(!text.contains(env().get("TEST_PASS_ALICE")), "{text}");
    in_maildir("MAILDIR_BOB", &t);
}

#[test]
fn postfix_wrong_password_is_refused() {
    for mech in [Mechanism::Plain, Mechanism::Login, Mechanism::ScramSha256] {
        let o = server("POSTFIX_SUBMISSION_PORT", TlsMode::StartTls)
            .with_password(env().get("TEST_USER_ALICE"), "not-the-password")
            .with_mechanisms(vec![mech.clone()]);
        let e = expect_err(Connection::connect(&o));
        assert!(
            matches!(e.kind(), ErrorKind::AuthFailed { .. }),
            "{mech}: {e}"
        );
        assert_eq!(e.stage(), Stage::Auth);
        assert_eq!(e.code(), Some(535), "{e}");
        assert_eq!(e.exit_code(), 77);
        assert!(!e.is_transient());
    }
}

#[test]
fn postfix_smtps_implicit_and_auto() {
    for mode in [TlsMode::Implicit, TlsMode::Auto] {
        let t = token(&format!("pf-2465-{mode}"));
        let (sink, lines) = collector();
        let o = alice(server("POSTFIX_SMTPS_PORT", mode)).with_transcript(sink);
        let mut conn = Connection::connect(&o).unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(conn.tls(), TlsUsed::Implicit, "{mode}");
        assert!(conn.is_authenticated());
        let r = send_token(&mut conn, env().get("TEST_USER_ALICE"), &[&bob()], &t);
        assert_eq!(r.outcome, Outcome::Accepted);
        conn.quit().unwrap();
        if mode == TlsMode::Auto {
            let text = transcript_text(&lines);
            assert!(text.contains("also trying implicit TLS"), "{text}");
        }
        in_maildir("MAILDIR_BOB", &t);
    }
    // Forcing STARTTLS on the wrapper-mode port: the greeting never comes, and the error says why.
    let o = server("POSTFIX_SMTPS_PORT", TlsMode::StartTls)
        .with_timeouts(Timeouts::submission().capped(SHORT_GREETING));
    let (r, _) = within(SHORT_GREETING * 2, || Connection::connect(&o));
    let e = expect_err(r);
    assert!(
        matches!(
            e.kind(),
            ErrorKind::ModeMismatch(Mismatch::ImplicitTlsExpected { .. })
        ),
        "{e}"
    );
}

const SHORT_GREETING: Duration = Duration::from_secs(1);

#[test]
fn postfix_partial_and_temporary_rejections() {
    let e = env();
    let mut conn = Connection::connect(&server("POSTFIX_PLAIN_PORT", TlsMode::StartTls)).unwrap();
    let t = token("pf-partial");
    let r = send_token(
        &mut conn,
        "sender@example.test",
        &[
            &bob(),
            e.get("TEST_RCPT_REJECT"),
            e.get("TEST_RCPT_TEMPFAIL"),
        ],
        &t,
    );
    assert_eq!(r.outcome, Outcome::PartiallyAccepted, "{r:?}");
    assert!(r.recipients[0].accepted);
    assert_eq!(r.recipients[1].code(), Some(550));
    assert_eq!(
        r.recipients[1].enhanced().map(|c| c.to_string()).as_deref(),
        Some("5.1.1")
    );
    assert_eq!(r.recipients[2].code(), Some(450));
    assert!(r.is_transient());
    assert_eq!(r.exit_code(), 75);
    let r = send_token(
        &mut conn,
        "sender@example.test",
        &[e.get("TEST_RCPT_REJECT"), e.get("TEST_RCPT_UNKNOWN")],
        &t,
    );
    assert_eq!(r.outcome, Outcome::Rejected);
    assert_eq!(r.exit_code(), 69);
    // The connection is reset and reusable.
    let r = send_token(
        &mut conn,
        "sender@example.test",
        &[&bob()],
        &token("pf-after-reject"),
    );
    assert_eq!(r.outcome, Outcome::Accepted);
    conn.quit().unwrap();
    in_maildir("MAILDIR_BOB", &t);
}

#[test]
fn postfix_twenty_messages_on_one_connection() {
    let sink_domain = env().get("TEST_SINK_DOMAIN").to_owned();
    let (sink, lines) = collector();
    let o = alice(server("POSTFIX_SUBMISSION_PORT", TlsMode::StartTls)).with_transcript(sink);
    let mut conn = Connection::connect(&o).unwrap();
    let to = format!("many@{sink_domain}");
    for i in 0..20 {
        let r = send_token(
            &mut conn,
            env().get("TEST_USER_ALICE"),
            &[&to],
            &token(&format!("many-{i}")),
        );
        assert_eq!(r.outcome, Outcome::Accepted, "message {i}");
    }
    conn.quit().unwrap();
    let text = transcript_text(&lines);
    assert_eq!(text.matches("connected to").count(), 1, "{text}");
    assert_eq!(text.matches("C: MAIL FROM").count(), 20);
}

/// A body of `len` bytes of CRLF lines, produced on the fly (never held whole), ending with CRLF.
struct BigBody {
    header: io::Cursor<Vec<u8>>,
    left: usize,
    col: usize,
}

impl BigBody {
    fn new(token: &str, len: usize) -> Self {
        let header =
            format!("Subject: {token}\r\nMessage-ID: <{token}@example.test>\r\n\r\n").into_bytes();
        let left = len - header.len();
        Self {
            header: io::Cursor::new(header),
            left,
            col: 0,
        }
    }
}

impl Read for BigBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.header.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        let n = buf.len().min(self.left);
        for b in &mut buf[..n] {
            self.left -= 1;
            *b = if self.left == 1 || self.col == 76 {
                b'\r'
            } else if self.left == 0 || self.col == 77 {
                b'\n'
            } else {
                b'.'
            };
            self.col = if *b == b'\n' { 0 } else { self.col + 1 };
        }
        Ok(n)
    }
}

const BIG: usize = 25 * 1024 * 1024;

#[test]
fn a_25_mib_message_over_starttls_to_aiosmtpd() {
    let t = token("big-aiosmtpd");
    let mut conn =
        Connection::connect(&carol(server("AIOSMTPD_STARTTLS_PORT", TlsMode::StartTls))).unwrap();
    let env_ = envelope("sender@example.test", &["big@example.test"]).with_size(BIG as u64);
    let r = conn.send(&env_, BigBody::new(&t, BIG)).unwrap();
    assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
    assert_eq!(r.body_bytes, BIG as u64);
    conn.quit().unwrap();
    let (eml, sidecar) = in_spool(&t);
    assert_eq!(std::fs::metadata(&eml).unwrap().len(), BIG as u64);
    assert!(
        compact(&sidecar).contains(&format!("\"size\":{BIG}")),
        "{sidecar}"
    );
}

#[test]
fn a_25_mib_message_with_chunking_to_postfix() {
    let e = env();
    let to = format!("big@{}", e.get("TEST_SINK_DOMAIN"));
    let mut conn = Connection::connect(&server("POSTFIX_CHUNKING_PORT", TlsMode::None)).unwrap();
    assert!(
        conn.capabilities()
            .unwrap()
            .supports(smtp_blocking::smtp_proto::Extension::Chunking)
    );
    let env_ = envelope("sender@example.test", &[&to]).with_size(BIG as u64);
    let r = conn
        .send(&env_, BigBody::new(&token("big-postfix"), BIG))
        .unwrap();
    assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
    assert_eq!(r.final_reply.as_ref().map(|x| x.code().get()), Some(250));
    conn.quit().unwrap();
}

#[test]
fn every_resolved_address_is_tried() {
    // "localhost" resolves to ::1 and 127.0.0.1; the plain aiosmtpd instance listens on 127.0.0.1 only, so an
    // IPv6-first resolution must fall through to IPv4.
    let t = token("resolve");
    let mut conn = Connection::connect(&server("AIOSMTPD_PLAIN_PORT", TlsMode::None)).unwrap();
    assert!(conn.peer_addr().ip().is_some_and(|ip| ip.is_loopback()));
    assert_eq!(
        send_token(&mut conn, "sender@example.test", &["rcpt@example.test"], &t).outcome,
        Outcome::Accepted
    );
    in_spool(&t);
    // And IPv6 itself, where the servers listen on it.
    let ipv6 = env().get("SMTP_TEST_IPV6").to_owned();
    let host = if ipv6.is_empty() {
        env().get("SMTP_TEST_IPV4").to_owned()
    } else {
        ipv6
    };
    let o = ConnectOptions::new(host.clone(), env().port("POSTFIX_CHUNKING_PORT"))
        .with_tls(TlsMode::None);
    let mut conn = Connection::connect(&o).unwrap_or_else(|e| panic!("{host}: {e}"));
    let to = format!("v6@{}", env().get("TEST_SINK_DOMAIN"));
    assert_eq!(
        send_token(&mut conn, "sender@example.test", &[&to], &token("v6")).outcome,
        Outcome::Accepted
    );
}

// ----- aiosmtpd -----

#[test]
fn aiosmtpd_starttls_auth_plain_login_and_wrong_password() {
    for mode in [TlsMode::StartTls, TlsMode::Auto] {
        for mech in [Mechanism::Plain, Mechanism::Login] {
            let t = token(&format!("aio-2527-{mode}-{mech}"));
            let o =
                carol(server("AIOSMTPD_STARTTLS_PORT", mode)).with_mechanisms(vec![mech.clone()]);
            let mut conn = Connection::connect(&o).unwrap_or_else(|e| panic!("{mode} {mech}: {e}"));
            assert_eq!(conn.tls(), TlsUsed::StartTls);
            let r = send_token(&mut conn, "sender@example.test", &["rcpt@example.test"], &t);
            assert_eq!(r.outcome, Outcome::Accepted);
            conn.quit().unwrap();
            let (_, sidecar) = in_spool(&t);
            let s = compact(&sidecar);
            assert!(
                s.contains("\"tls\":true") && s.contains("\"auth_user\":\"carol\""),
                "{sidecar}"
            );
        }
    }
    let o = server("AIOSMTPD_STARTTLS_PORT", TlsMode::StartTls)
        .with_password(env().get("TEST_USER_CAROL"), "wrong")
        .with_mechanisms(vec![Mechanism::Login]);
    let e = expect_err(Connection::connect(&o));
    assert!(matches!(e.kind(), ErrorKind::AuthFailed { .. }), "{e}");
    assert_eq!(e.exit_code(), 77);
}

#[test]
fn aiosmtpd_implicit_and_auto() {
    for mode in [TlsMode::Implicit, TlsMode::Auto] {
        let t = token(&format!("aio-2528-{mode}"));
        let mut conn = Connection::connect(&carol(server("AIOSMTPD_IMPLICIT_PORT", mode)))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(conn.tls(), TlsUsed::Implicit, "{mode}");
        let r = send_token(&mut conn, "sender@example.test", &["rcpt@example.test"], &t);
        assert_eq!(r.outcome, Outcome::Accepted);
        conn.quit().unwrap();
        let (_, sidecar) = in_spool(&t);
        assert!(
            compact(&sidecar).contains("\"instance\":\"implicit\""),
            "{sidecar}"
        );
    }
    let o = server("AIOSMTPD_IMPLICIT_PORT", TlsMode::StartTls)
        .with_timeouts(Timeouts::submission().capped(SHORT_GREETING));
    let e = expect_err(Connection::connect(&o));
    assert!(
        matches!(
            e.kind(),
            ErrorKind::ModeMismatch(Mismatch::ImplicitTlsExpected { .. })
        ),
        "{e}"
    );
}

#[test]
fn aiosmtpd_plaintext_only_with_explicit_none() {
    let t = token("aio-2529-none");
    let mut conn = Connection::connect(&server("AIOSMTPD_PLAIN_PORT", TlsMode::None)).unwrap();
    assert_eq!(conn.tls(), TlsUsed::None);
    let r = send_token(
        &mut conn,
        "sender@example.test",
        &["rcpt@example.test", env().get("TEST_RCPT_REJECT")],
        &t,
    );
    assert_eq!(r.outcome, Outcome::PartiallyAccepted);
    assert_eq!(r.recipients[1].code(), Some(550));
    conn.quit().unwrap();
    let (_, sidecar) = in_spool(&t);
    assert!(
        compact(&sidecar).contains("\"rcpt_tos\":[\"rcpt@example.test\"]"),
        "{sidecar}"
    );
    // Auto and STARTTLS never fall back to plaintext.
    for mode in [TlsMode::Auto, TlsMode::StartTls] {
        let e = expect_err(Connection::connect(&server("AIOSMTPD_PLAIN_PORT", mode)));
        assert_eq!(e.kind(), &ErrorKind::StartTlsUnavailable, "{mode}: {e}");
    }
    // Opportunistic does, as asked.
    let conn = Connection::connect(&server("AIOSMTPD_PLAIN_PORT", TlsMode::Opportunistic)).unwrap();
    assert_eq!(conn.tls(), TlsUsed::None);
}

#[test]
fn smtputf8_with_postfix_and_aiosmtpd() {
    let t = token("utf8-aio");
    let mut conn = Connection::connect(&server("AIOSMTPD_PLAIN_PORT", TlsMode::None)).unwrap();
    let r = send_token(
        &mut conn,
        "jösé@example.test",
        &["ünïcødé@example.test"],
        &t,
    );
    assert_eq!(r.outcome, Outcome::Accepted);
    let (_, sidecar) = in_spool(&t);
    let s = compact(&sidecar);
    assert!(
        s.contains("\"smtputf8\":true") && s.contains("ünïcødé@example.test"),
        "{sidecar}"
    );

    // Postfix takes it (SMTPUTF8 on the MAIL command) and queues it with the UTF-8 sender. (It goes to the sink
    // domain: Dovecot's LMTP does not offer SMTPUTF8, so Postfix would bounce it on local delivery.)
    let t = token("utf8-postfix");
    let mut conn = Connection::connect(&server("POSTFIX_PLAIN_PORT", TlsMode::StartTls)).unwrap();
    let to = format!("utf8@{}", env().get("TEST_SINK_DOMAIN"));
    let r = send_token(&mut conn, "jösé@example.test", &[&to], &t);
    assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
    conn.quit().unwrap();
    let log = PathBuf::from(env().get("POSTFIX_LOG"));
    let end = Instant::now() + Duration::from_secs(10);
    let queue_id = loop {
        let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
        let id = text
            .lines()
            .find(|l| l.contains(&format!("message-id=<{t}@example.test>")))
            .and_then(|l| l.split(": ").nth(1).map(str::to_owned));
        if let Some(id) = id
            && text.contains(&format!("{id}: from=<jösé@example.test>"))
        {
            break id;
        }
        assert!(
            Instant::now() < end,
            "the UTF-8 sender never showed in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!queue_id.is_empty());
}

#[test]
fn client_certificate_is_presented() {
    let e = env();
    let tls = TlsOptions::default()
        .with_ca_file(e.get("SMTP_TEST_CA"))
        .with_client_certificate(
            Pem::File(e.get("SMTP_TEST_CLIENT_CERT").into()),
            Pem::File(e.get("SMTP_TEST_CLIENT_KEY").into()),
        );
    let o = server("AIOSMTPD_IMPLICIT_PORT", TlsMode::Implicit).with_tls_options(tls);
    let t = token("client-cert");
    let mut conn = Connection::connect(&o).unwrap();
    assert_eq!(
        send_token(&mut conn, "sender@example.test", &["rcpt@example.test"], &t).outcome,
        Outcome::Accepted
    );
    // A wrong key path is a TLS configuration error, reported before connecting.
    let bad = TlsOptions::default().with_client_certificate(
        Pem::File(e.get("SMTP_TEST_CLIENT_CERT").into()),
        Pem::File("/nonexistent.key".into()),
    );
    let err = expect_err(Connection::connect(
        &server("AIOSMTPD_IMPLICIT_PORT", TlsMode::Implicit).with_tls_options(bad),
    ));
    assert!(matches!(err.kind(), ErrorKind::TlsConfig { .. }), "{err}");
    assert_eq!(err.exit_code(), 78);
}

#[test]
fn untrusted_ca_against_a_real_server() {
    // Without the test CA, Postfix's certificate does not verify (webpki roots only).
    let o = ConnectOptions::new(
        env().get("SMTP_TEST_HOST"),
        env().port("POSTFIX_PLAIN_PORT"),
    )
    .with_tls(TlsMode::StartTls);
    let e = expect_err(Connection::connect(&o));
    assert!(matches!(e.kind(), ErrorKind::Tls { .. }), "{e}");
    assert!(e.to_string().contains("unknown issuer"), "{e}");
}

// ----- Dovecot LMTP -----

#[test]
fn dovecot_lmtp_per_recipient_results() {
    let e = env();
    let t = token("lmtp");
    let o = server("DOVECOT_LMTP_PORT", TlsMode::None).with_protocol(Protocol::Lmtp);
    let mut conn = Connection::connect(&o).unwrap();
    let to = [
        e.get("TEST_USER_ALICE"),
        e.get("TEST_USER_BOB"),
        e.get("TEST_RCPT_UNKNOWN"),
    ];
    let env_: Envelope = envelope("sender@example.test", &to);
    let r = conn.send_bytes(&env_, &message(&t, "lmtp")).unwrap();
    assert_eq!(r.outcome, Outcome::PartiallyAccepted, "{r:?}");
    assert!(r.recipients[0].accepted && r.recipients[1].accepted);
    assert!(!r.recipients[2].accepted);
    for rcpt in &r.recipients[..2] {
        // One verdict per recipient after the data (RFC 2033 §4.2).
        assert_eq!(rcpt.code(), Some(250), "{rcpt:?}");
    }
    assert!(
        r.recipients[2].code().is_some_and(|c| c >= 500),
        "{:?}",
        r.recipients[2]
    );
    conn.quit().unwrap();
    in_maildir("MAILDIR_ALICE", &t);
    in_maildir("MAILDIR_BOB", &t);
    // lmtp:// URL form.
    let url = format!("lmtp://127.0.0.1:{}?tls=none", e.port("DOVECOT_LMTP_PORT"));
    let o = ConnectOptions::from_url(&url).unwrap();
    let t = token("lmtp-url");
    let mut conn = Connection::connect(&o).unwrap();
    assert_eq!(
        send_token(
            &mut conn,
            "sender@example.test",
            &[e.get("TEST_USER_ALICE")],
            &t
        )
        .outcome,
        Outcome::Accepted
    );
    in_maildir("MAILDIR_ALICE", &t);
}

// ----- messages back to back (`send_batch`) -----

/// Five messages to bob, the third to a refused recipient, through `send_batch`; checks the outcomes, the
/// deliveries, one connection, and that the second message's MAIL left before the first verdict came back.
fn batch_to(o: ConnectOptions, to: &str, refused: &str, maildir: &str, first_verdict: &str) {
    let (sink, lines) = collector();
    let mut conn = Connection::connect(&o.with_transcript(sink)).unwrap();
    let tokens: Vec<String> = (0..5).map(|i| token(&format!("batch-{i}"))).collect();
    let envelopes: Vec<Envelope> = (0..5)
        .map(|i| envelope("sender@example.test", &[if i == 2 { refused } else { to }]))
        .collect();
    let bodies: Vec<Vec<u8>> = tokens
        .iter()
        .map(|t| message(t, &format!("token {t}")))
        .collect();
    let results = conn.send_batch(
        envelopes
            .iter()
            .zip(&bodies)
            .map(|(e, b)| (e, b.as_slice())),
    );
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
    conn.quit().unwrap();
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
        in_maildir(maildir, &tokens[i]);
    }
}

#[test]
fn postfix_batch_with_data_and_with_chunking() {
    let e = env();
    for chunking in [false, true] {
        let mut o = server("POSTFIX_PLAIN_PORT", TlsMode::StartTls);
        o.session.chunking = chunking;
        batch_to(
            o,
            &bob(),
            e.get("TEST_RCPT_REJECT"),
            "MAILDIR_BOB",
            // The verdicts ("250 2.0.0 Ok: queued as ..." after DATA, "Ok: 205 bytes queued as ..." after BDAT),
            // not the RSET's "250 2.0.0 Ok".
            "S: 250 2.0.0 Ok: ",
        );
    }
}

#[test]
fn dovecot_lmtp_batch() {
    let e = env();
    batch_to(
        server("DOVECOT_LMTP_PORT", TlsMode::None).with_protocol(Protocol::Lmtp),
        e.get("TEST_USER_ALICE"),
        e.get("TEST_RCPT_UNKNOWN"),
        "MAILDIR_ALICE",
        "S: 250 2.0.0 <",
    );
}
