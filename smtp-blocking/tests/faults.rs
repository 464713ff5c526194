//! The blocking adapter against the scripted fault-injecting server (smtp-test-server): every misbehaviour ends
//! in the right outcome and error kind, within the stage's deadline plus a small margin.

mod common;

use std::io::{self, Read};
use std::time::Duration;

use common::*;
use smtp_blocking::smtp_proto::{Mismatch, ReplyError};
use smtp_blocking::{
    ConnectOptions, Connection, Direction, ErrorKind, Outcome, Protocol, Stage, Timeouts, TlsMode,
    TlsUsed,
};
use smtp_test_server::{Fault, ServerCert, ServerConfig, Stage as SStage, TestPki, TestServer};

const SHORT: Duration = Duration::from_secs(1);

fn pki() -> TestPki {
    TestPki::shared()
}

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config).expect("start the test server")
}

/// Client options for a test server: short deadlines (1 s per stage), test CA trusted.
fn opts(server: &TestServer, mode: TlsMode) -> ConnectOptions {
    local(server.port(), &pki().ca_pem())
        .with_tls(mode)
        .with_timeouts(Timeouts::submission().capped(SHORT))
        .with_connect_timeout(SHORT)
        .with_probe_delay(Duration::from_millis(300))
}

fn send_one(
    conn: &mut Connection,
    subject: &str,
) -> Result<smtp_blocking::SendReport, smtp_blocking::Error> {
    conn.send_bytes(
        &envelope("a@example.org", &["b@example.org"]),
        &message(subject, "hello"),
    )
}

// ----- the well-behaved paths, every TLS mode -----

#[test]
fn every_tls_mode_delivers() {
    let starttls = start(ServerConfig::new().starttls(&pki()));
    let implicit = start(ServerConfig::new().implicit_tls(&pki()));
    let plain = start(ServerConfig::new());
    let cases = [
        (&starttls, TlsMode::StartTls, TlsUsed::StartTls),
        (&starttls, TlsMode::Auto, TlsUsed::StartTls),
        (&starttls, TlsMode::Opportunistic, TlsUsed::StartTls),
        (&implicit, TlsMode::Implicit, TlsUsed::Implicit),
        (&implicit, TlsMode::Auto, TlsUsed::Implicit),
        (&plain, TlsMode::None, TlsUsed::None),
        (&plain, TlsMode::Opportunistic, TlsUsed::None),
    ];
    for (i, (server, mode, used)) in cases.into_iter().enumerate() {
        let subject = format!("mode-{i}");
        let (report, _) = within(Duration::from_secs(3), || {
            let mut conn =
                Connection::connect(&opts(server, mode)).unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert_eq!(conn.tls(), used, "{mode}");
            let report = send_one(&mut conn, &subject).unwrap();
            conn.quit().unwrap();
            report
        });
        assert_eq!(report.outcome, Outcome::Accepted, "{mode}");
        assert_eq!(report.tls, used);
        let found = server
            .messages()
            .into_iter()
            .find(|m| String::from_utf8_lossy(&m.body).contains(&subject));
        let m = found.unwrap_or_else(|| panic!("{mode}: message not recorded"));
        assert_eq!(m.tls, used != TlsUsed::None);
        assert_eq!(m.rcpt_to, ["b@example.org"]);
    }
}

#[test]
fn auto_on_an_implicit_port_races_and_says_why() {
    let server = start(ServerConfig::new().implicit_tls(&pki()));
    let (sink, lines) = collector();
    let (conn, _) = within(Duration::from_secs(2), || {
        Connection::connect(&opts(&server, TlsMode::Auto).with_transcript(sink)).unwrap()
    });
    assert_eq!(conn.tls(), TlsUsed::Implicit);
    assert!(
        conn.tls_reason().contains("implicit TLS"),
        "{}",
        conn.tls_reason()
    );
    let text = transcript_text(&lines);
    assert!(
        text.contains("also trying implicit TLS in parallel"),
        "{text}"
    );
    assert!(
        text.contains("implicit TLS completed a verified TLS handshake first"),
        "{text}"
    );
    conn.quit().unwrap();
}

#[test]
fn greeting_delayed_by_several_seconds_succeeds() {
    let server = start(
        ServerConfig::new()
            .starttls(&pki())
            .fault(Fault::DelayGreeting(Duration::from_millis(2500))),
    );
    let o = opts(&server, TlsMode::Auto)
        .with_timeouts(Timeouts::submission().capped(Duration::from_secs(6)));
    let (conn, took) = within(Duration::from_secs(6), || Connection::connect(&o));
    let mut conn = conn.unwrap();
    assert!(took >= Duration::from_millis(2400), "{took:?}");
    // The parallel implicit-TLS attempt saw the plaintext greeting and lost; STARTTLS won.
    assert_eq!(conn.tls(), TlsUsed::StartTls);
    assert_eq!(
        send_one(&mut conn, "delayed").unwrap().outcome,
        Outcome::Accepted
    );
}

// ----- deadlines: silence and slow drips -----

#[test]
fn silence_on_connect_times_out_at_the_greeting() {
    let server = start(ServerConfig::new().fault(Fault::SilentOnConnect));
    for mode in [TlsMode::StartTls, TlsMode::None, TlsMode::Auto] {
        // Forced modes probe for implicit TLS (bounded by the greeting timeout) before reporting.
        let (r, _) = within(SHORT * 2, || Connection::connect(&opts(&server, mode)));
        let e = expect_err(r);
        assert_eq!(e.kind(), &ErrorKind::Timeout, "{mode}: {e}");
        assert!(e.is_transient());
        assert_eq!(e.exit_code(), 75);
    }
}

#[test]
fn greeting_dribbled_forever_cannot_stretch_the_deadline() {
    let server = start(ServerConfig::new().fault(Fault::DribbleGreetingForever {
        interval: Duration::from_millis(20),
    }));
    let (r, _) = within(SHORT, || Connection::connect(&opts(&server, TlsMode::None)));
    let e = expect_err(r);
    assert_eq!(
        (e.kind(), e.stage()),
        (&ErrorKind::Timeout, Stage::Greeting),
        "{e}"
    );
}

#[test]
fn slow_drip_reply_inside_the_transaction_times_out_at_its_stage() {
    // Without pipelining MAIL is answered before anything else is sent: the message is certainly not sent.
    let server = start(
        ServerConfig::new()
            .pipelining(false)
            .chunking(false)
            .fault(Fault::Dribble(SStage::Mail, Duration::from_millis(200))),
    );
    let mut conn = Connection::connect(&opts(&server, TlsMode::None)).unwrap();
    let (r, _) = within(SHORT, || send_one(&mut conn, "drip"));
    let e = expect_err(r);
    assert_eq!(
        (e.kind(), e.stage()),
        (&ErrorKind::Timeout, Stage::Mail),
        "{e}"
    );
    assert!(server.messages().is_empty());
}

#[test]
fn no_answer_to_starttls() {
    let server = start(
        ServerConfig::new()
            .starttls(&pki())
            .fault(Fault::SilentAfterStartTls),
    );
    let (r, _) = within(SHORT, || {
        Connection::connect(&opts(&server, TlsMode::StartTls))
    });
    let e = expect_err(r);
    assert_eq!(
        (e.kind(), e.stage()),
        (&ErrorKind::Timeout, Stage::StartTls),
        "{e}"
    );
}

// ----- STARTTLS attacks and policy -----

#[test]
fn bytes_injected_after_the_starttls_220_close_the_session() {
    let server = start(
        ServerConfig::new()
            .starttls(&pki())
            .fault(Fault::StartTlsInjection(
                b"250-injected\r\n250 AUTH PLAIN\r\n".to_vec(),
            )),
    );
    let (r, _) = within(SHORT, || {
        Connection::connect(&opts(&server, TlsMode::StartTls))
    });
    let e = expect_err(r);
    assert_eq!(e.kind(), &ErrorKind::ResponseInjection, "{e}");
    assert_eq!(e.exit_code(), 76);
    assert!(e.to_string().contains("response-injection"), "{e}");
}

#[test]
fn starttls_missing_when_required_never_falls_back() {
    let server = start(
        ServerConfig::new()
            .starttls(&pki())
            .fault(Fault::NoStartTls),
    );
    for mode in [TlsMode::StartTls, TlsMode::Auto] {
        let (r, _) = within(SHORT, || Connection::connect(&opts(&server, mode)));
        let e = expect_err(r);
        assert_eq!(e.kind(), &ErrorKind::StartTlsUnavailable, "{mode}: {e}");
        assert_eq!(e.exit_code(), 78);
    }
    // Opportunistic continues in plaintext, as asked.
    let mut conn = Connection::connect(&opts(&server, TlsMode::Opportunistic)).unwrap();
    assert_eq!(conn.tls(), TlsUsed::None);
    assert_eq!(
        send_one(&mut conn, "opportunistic").unwrap().outcome,
        Outcome::Accepted
    );
    assert!(
        server
            .sessions()
            .iter()
            .all(|s| s.lines_with_verb("MAIL").iter().all(|l| !l.tls))
    );
}

#[test]
fn auth_is_never_sent_in_plaintext_unless_allowed() {
    let server = start(ServerConfig::new().user("alice", "secret"));
    let o = opts(&server, TlsMode::None).with_password("alice", "secret");
    let e = expect_err(Connection::connect(&o));
    assert_eq!(e.kind(), &ErrorKind::AuthRequiresTls, "{e}");
    assert!(
        server
            .sessions()
            .iter()
            .all(|s| s.lines_with_verb("AUTH").is_empty())
    );
    let conn = Connection::connect(&o.with_insecure_auth(true)).unwrap();
    assert!(conn.is_authenticated());
}

// ----- hostile or broken replies -----

#[test]
fn endless_multiline_reply_is_capped() {
    let server = start(ServerConfig::new().fault(Fault::EndlessEhlo));
    let (r, _) = within(SHORT, || Connection::connect(&opts(&server, TlsMode::None)));
    let e = expect_err(r);
    assert!(
        matches!(
            e.kind(),
            ErrorKind::MalformedReply(
                ReplyError::TooManyLines { .. } | ReplyError::ReplyTooLarge { .. }
            )
        ),
        "{e}"
    );
    assert_eq!(e.stage(), Stage::Ehlo);
    assert_eq!(e.exit_code(), 76);
}

#[test]
fn endless_line_is_capped() {
    for stage in [SStage::Greeting, SStage::Ehlo, SStage::Rcpt] {
        let server = start(
            ServerConfig::new()
                .pipelining(false)
                .fault(Fault::EndlessLine(stage)),
        );
        let (r, _) = within(SHORT, || {
            Connection::connect(&opts(&server, TlsMode::None))
                .and_then(|mut c| send_one(&mut c, "endless"))
        });
        let e = expect_err(r);
        assert!(
            matches!(
                e.kind(),
                ErrorKind::MalformedReply(ReplyError::LineTooLong { .. })
            ),
            "{stage:?}: {e}"
        );
    }
}

#[test]
fn garbage_greeting_is_a_protocol_error() {
    let server = start(
        ServerConfig::new().fault(Fault::GarbageGreeting(b"\xff\xfeHELLO? \x00\r\n".to_vec())),
    );
    let (r, _) = within(SHORT, || Connection::connect(&opts(&server, TlsMode::None)));
    let e = expect_err(r);
    assert!(
        matches!(
            e.kind(),
            ErrorKind::MalformedReply(ReplyError::Malformed { .. })
        ),
        "{e}"
    );
    assert_eq!(e.stage(), Stage::Greeting);
}

#[test]
fn non_utf8_and_bare_lf_replies_are_tolerated() {
    for fault in [Fault::NonUtf8Replies, Fault::BareLfReplies] {
        let server = start(ServerConfig::new().starttls(&pki()).fault(fault.clone()));
        let (report, _) = within(SHORT * 3, || {
            let mut conn = Connection::connect(&opts(&server, TlsMode::StartTls)).unwrap();
            send_one(&mut conn, "tolerant").unwrap()
        });
        assert_eq!(report.outcome, Outcome::Accepted, "{fault:?}");
        assert_eq!(server.messages().len(), 1);
    }
}

// ----- outcomes -----

#[test]
fn reset_after_the_final_dot_is_outcome_unknown() {
    for chunking in [true, false] {
        let server = start(
            ServerConfig::new()
                .chunking(chunking)
                .fault(Fault::ResetAfterBody),
        );
        let mut conn = Connection::connect(&opts(&server, TlsMode::None)).unwrap();
        let (r, _) = within(SHORT, || send_one(&mut conn, "reset"));
        let report = r.expect("a report, not an error: the end of the message was sent");
        assert_eq!(report.outcome, Outcome::Unknown, "chunking {chunking}");
        let e = report.error.as_ref().expect("the session error");
        assert_eq!(
            (e.kind(), e.stage()),
            (&ErrorKind::ConnectionClosed, Stage::DataTermination),
            "{e}"
        );
        assert_eq!(report.exit_code(), 75);
        assert!(!conn.is_open());
    }
}

#[test]
fn service_closing_mid_transaction_then_reconnects() {
    let server = start(ServerConfig::new().fault_on_connection(0, Fault::Shutdown(SStage::Rcpt)));
    let mut conn = Connection::connect(&opts(&server, TlsMode::None)).unwrap();
    let (r, _) = within(SHORT, || send_one(&mut conn, "first"));
    let report = r.unwrap();
    assert_eq!(report.outcome, Outcome::Rejected);
    assert_eq!(report.recipients[0].code(), Some(421));
    assert!(report.is_transient());
    assert_eq!(report.exit_code(), 75);
    let e = report.error.as_ref().unwrap();
    assert_eq!(e.kind(), &ErrorKind::ServiceNotAvailable);
    // The next message opens a new connection (the transaction had not started: nothing is sent twice).
    let report = send_one(&mut conn, "second").unwrap();
    assert_eq!(report.outcome, Outcome::Accepted);
    assert_eq!(server.connections(), 2);
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn partial_and_full_rejection() {
    let server = start(
        ServerConfig::new()
            .reject_recipient("nobody@example.org")
            .tempfail_recipient("later@example.org"),
    );
    let mut conn = Connection::connect(&opts(&server, TlsMode::None)).unwrap();
    let partial = conn
        .send_bytes(
            &envelope("a@example.org", &["b@example.org", "nobody@example.org"]),
            &message("p", "x"),
        )
        .unwrap();
    assert_eq!(partial.outcome, Outcome::PartiallyAccepted);
    assert_eq!(partial.accepted_count(), 1);
    assert_eq!(partial.recipients[1].code(), Some(550));
    assert_eq!(
        partial.recipients[1].enhanced().map(|e| e.to_string()),
        Some("5.1.1".into())
    );
    assert_eq!(partial.exit_code(), 69);
    let rejected = conn
        .send_bytes(
            &envelope("a@example.org", &["nobody@example.org"]),
            &message("r", "x"),
        )
        .unwrap();
    assert_eq!(rejected.outcome, Outcome::Rejected);
    assert_eq!(rejected.exit_code(), 69);
    let temp = conn
        .send_bytes(
            &envelope("a@example.org", &["b@example.org", "later@example.org"]),
            &message("t", "x"),
        )
        .unwrap();
    assert_eq!(temp.outcome, Outcome::PartiallyAccepted);
    assert_eq!(temp.exit_code(), 75);
    // The connection is still usable after a rejection (RSET in between).
    assert_eq!(
        send_one(&mut conn, "after").unwrap().outcome,
        Outcome::Accepted
    );
    assert_eq!(server.messages().len(), 3);
}

#[test]
fn lmtp_reports_each_recipient() {
    let server = start(
        ServerConfig::new()
            .lmtp()
            .lmtp_reply("full@example.org", "552 5.2.2 mailbox full"),
    );
    let o = opts(&server, TlsMode::None).with_protocol(Protocol::Lmtp);
    let mut conn = Connection::connect(&o).unwrap();
    let report = conn
        .send_bytes(
            &envelope("a@example.org", &["b@example.org", "full@example.org"]),
            &message("l", "x"),
        )
        .unwrap();
    assert_eq!(report.outcome, Outcome::PartiallyAccepted);
    assert!(report.recipients[0].accepted);
    assert_eq!(report.recipients[1].code(), Some(552));
    assert!(server.sessions()[0].verbs().contains(&"LHLO".to_owned()));
}

// ----- certificates and mode mismatches -----

#[test]
fn untrusted_or_misnamed_certificates_fail() {
    for cert in [
        ServerCert::UnknownCa,
        ServerCert::WrongName,
        ServerCert::Expired,
    ] {
        for implicit in [false, true] {
            let config = if implicit {
                ServerConfig::new().implicit_tls(&pki())
            } else {
                ServerConfig::new().starttls(&pki())
            };
            let server = start(config.certificate(cert));
            let mode = if implicit {
                TlsMode::Implicit
            } else {
                TlsMode::StartTls
            };
            for mode in [mode, TlsMode::Auto] {
                let (r, _) = within(SHORT * 2, || Connection::connect(&opts(&server, mode)));
                let e = expect_err(r);
                assert!(
                    matches!(e.kind(), ErrorKind::Tls { .. }),
                    "{cert:?} {mode}: {e}"
                );
                assert_eq!(e.stage(), Stage::TlsHandshake);
                assert_eq!(e.exit_code(), 78);
                let text = e.to_string();
                let expected = match cert {
                    ServerCert::UnknownCa => "unknown issuer",
                    ServerCert::WrongName => "not valid for the name",
                    _ => "expired",
                };
                assert!(text.contains(expected), "{cert:?}: {text}");
                assert!(server.messages().is_empty());
            }
        }
    }
}

#[test]
fn forcing_starttls_on_an_implicit_port_is_diagnosed() {
    let server = start(ServerConfig::new().implicit_tls(&pki()));
    let (r, _) = within(SHORT * 2, || {
        Connection::connect(&opts(&server, TlsMode::StartTls))
    });
    let e = expect_err(r);
    assert_eq!(
        e.kind(),
        &ErrorKind::ModeMismatch(Mismatch::ImplicitTlsExpected {
            port: server.port()
        }),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("most likely expects implicit TLS (smtps://"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 78);
}

#[test]
fn forcing_implicit_on_a_starttls_port_is_diagnosed() {
    let server = start(ServerConfig::new().starttls(&pki()));
    let (r, _) = within(SHORT, || {
        Connection::connect(&opts(&server, TlsMode::Implicit))
    });
    let e = expect_err(r);
    assert!(
        matches!(
            e.kind(),
            ErrorKind::ModeMismatch(Mismatch::ServerSpeaksPlaintext { .. })
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("speaks plaintext SMTP first: use STARTTLS"),
        "{e}"
    );
}

// ----- sending: streaming, reuse, NOOP, body errors, transcript -----

/// A body source that produces `len` bytes of text lines without holding them.
struct Generated {
    left: usize,
    line: usize,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.left).min(1000);
        for b in &mut buf[..n] {
            self.line += 1;
            *b = if self.line.is_multiple_of(78) {
                b'\n'
            } else {
                b'a' + (self.line % 26) as u8
            };
        }
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn a_streamed_body_arrives_whole_with_progress() {
    let server = start(ServerConfig::new().starttls(&pki()).chunking(false));
    let mut conn = Connection::connect(&opts(&server, TlsMode::StartTls)).unwrap();
    let len = 3 * 1024 * 1024;
    let mut calls = 0;
    let mut last = 0;
    let report = conn
        .send_with_progress(
            &envelope("a@example.org", &["b@example.org"]),
            Generated { left: len, line: 0 },
            |n| {
                calls += 1;
                last = n;
            },
        )
        .unwrap();
    assert_eq!(report.outcome, Outcome::Accepted);
    assert_eq!(report.body_bytes, len as u64);
    assert_eq!(last, len as u64);
    assert!(calls > 10);
    let m = &server.messages()[0];
    // Bare LF became CRLF; nothing else changed.
    let lines = len / 78;
    assert_eq!(
        m.body.len(),
        len + lines + 2 * usize::from(len % 78 != 0) - usize::from(len % 78 == 0)
    );
}

struct Failing(usize);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(b'x');
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn a_failing_body_source_never_completes_the_message() {
    for chunking in [true, false] {
        let server = start(ServerConfig::new().chunking(chunking));
        let mut conn = Connection::connect(&opts(&server, TlsMode::None)).unwrap();
        let e = expect_err(conn.send(
            &envelope("a@example.org", &["b@example.org"]),
            Failing(200_000),
        ));
        assert_eq!(e.kind(), &ErrorKind::BodyRead, "{e}");
        assert_eq!(e.exit_code(), 65);
        assert!(server.wait_idle(Duration::from_secs(2)));
        assert!(
            server.messages().is_empty(),
            "a truncated message was accepted"
        );
        // The next message reconnects.
        assert_eq!(
            send_one(&mut conn, "next").unwrap().outcome,
            Outcome::Accepted
        );
    }
}

#[test]
fn many_messages_on_one_connection_with_noop_after_idle() {
    let server = start(ServerConfig::new().starttls(&pki()));
    let o = opts(&server, TlsMode::StartTls).with_noop_after_idle(Some(Duration::ZERO));
    let mut conn = Connection::connect(&o).unwrap();
    for i in 0..20 {
        assert_eq!(
            send_one(&mut conn, &format!("many-{i}")).unwrap().outcome,
            Outcome::Accepted
        );
    }
    conn.quit().unwrap();
    assert_eq!(server.connections(), 1);
    assert_eq!(server.messages().len(), 20);
    let verbs = server.sessions()[0].verbs();
    assert_eq!(verbs.iter().filter(|v| *v == "NOOP").count(), 20);
    assert_eq!(verbs.last().map(String::as_str), Some("QUIT"));
}

#[test]
fn noop_detects_a_dead_connection_and_reconnects() {
    let server = start(ServerConfig::new().fault_on_connection(0, Fault::Shutdown(SStage::Noop)));
    let o = opts(&server, TlsMode::None).with_noop_after_idle(Some(Duration::ZERO));
    let mut conn = Connection::connect(&o).unwrap();
    assert_eq!(
        send_one(&mut conn, "after-noop").unwrap().outcome,
        Outcome::Accepted
    );
    assert_eq!(server.connections(), 2);
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn transcript_redacts_auth_and_times_replies() {
    let server = start(
        ServerConfig::new()
            .starttls(&pki())
            .user("alice", "s3cr3t-pa55"),
    );
    let (sink, lines) = collector();
    let o = opts(&server, TlsMode::StartTls)
        .with_password("alice", "s3cr3t-pa55")
        .with_transcript(sink);
    let mut conn = Connection::connect(&o).unwrap();
    send_one(&mut conn, "transcript").unwrap();
    conn.quit().unwrap();
    let text = transcript_text(&lines);
    assert!(text.contains("C: AUTH PLAIN <redacted>"), "{text}");
    assert!(text.contains("*: TLS established"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(
        text.contains("BDAT 119 LAST"),
        "a small message is one chunk: {text}"
    );
    let lines = lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.direction == Direction::Server && l.text.starts_with("235"))
    );
}

#[test]
fn wrong_password_is_auth_failed() {
    let server = start(ServerConfig::new().starttls(&pki()).user("alice", "right"));
    let e = expect_err(Connection::connect(
        &opts(&server, TlsMode::StartTls).with_password("alice", "wrong"),
    ));
    assert!(matches!(e.kind(), ErrorKind::AuthFailed { .. }), "{e}");
    assert_eq!(e.code(), Some(535));
    assert_eq!(e.exit_code(), 77);
}

#[test]
fn smtputf8_addresses() {
    let server = start(ServerConfig::new());
    let mut conn = Connection::connect(&opts(&server, TlsMode::None)).unwrap();
    let report = conn
        .send_bytes(
            &envelope("jösé@example.org", &["ünïcode@example.org"]),
            &message("utf8", "x"),
        )
        .unwrap();
    assert_eq!(report.outcome, Outcome::Accepted);
    assert!(
        server.messages()[0]
            .mail_params
            .iter()
            .any(|p| p == "SMTPUTF8")
    );
    let old = start(ServerConfig::new().smtputf8(false));
    let mut conn = Connection::connect(&opts(&old, TlsMode::None)).unwrap();
    let e =
        expect_err(conn.send_bytes(&envelope("jösé@example.org", &["b@example.org"]), b"x\r\n"));
    assert!(matches!(e.kind(), ErrorKind::Message(_)), "{e}");
    assert_eq!(e.exit_code(), 65);
}

/// A minimal sequential server: one message per connection, then `421` and close (an idle timeout); with `tls`,
/// implicit TLS (the `421` and the close, with its `close_notify`, arrive as TLS records).
fn one_message_then_close(
    listener: std::net::TcpListener,
    connections: usize,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut delivered = 0;
        for _ in 0..connections {
            let Ok((sock, _)) = listener.accept() else {
                break;
            };
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            delivered += match &tls {
                None => serve_one_message(sock),
                Some(config) => {
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    serve_one_message(rustls::StreamOwned::new(conn, sock))
                }
            };
        }
        delivered
    })
}

/// The session of [`one_message_then_close`]: how many messages it accepted (0 or 1).
fn serve_one_message(stream: impl io::Read + io::Write) -> usize {
    use std::io::{BufRead, BufReader, Write};
    let mut r = BufReader::new(stream);
    let send = |r: &mut BufReader<_>, bytes: &[u8]| {
        let w: &mut dyn Write = r.get_mut();
        let _ = w.write_all(bytes).and_then(|()| w.flush());
    };
    let mut line = String::new();
    send(&mut r, b"220 mini ESMTP\r\n");
    let mut in_data = false;
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return 0;
        }
        if in_data {
            if line == ".\r\n" {
                send(&mut r, b"250 2.0.0 queued\r\n");
                std::thread::sleep(Duration::from_millis(50));
                send(&mut r, b"421 4.4.2 idle timeout\r\n");
                return 1;
            }
            continue;
        }
        let reply: &[u8] = match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
            "EHLO" => b"250 mini\r\n",
            "DATA" => {
                in_data = true;
                b"354 go\r\n"
            }
            _ => b"250 ok\r\n",
        };
        send(&mut r, reply);
    }
}

#[test]
fn a_connection_closed_while_idle_is_reopened_before_the_next_message() {
    closed_while_idle_then_reopened(TlsMode::None, None);
}

#[test]
fn a_tls_connection_closed_while_idle_is_reopened_before_the_next_message() {
    // The same over implicit TLS: the idle check looks at the socket without reading (one non-blocking peek) and
    // must still see the `421` record and the close, and take them through the TLS layer.
    closed_while_idle_then_reopened(
        TlsMode::Implicit,
        Some(pki().server_config(ServerCert::Valid)),
    );
}

/// Two messages to [`one_message_then_close`], the second after the server's `421` and close: both accepted.
fn closed_while_idle_then_reopened(
    mode: TlsMode,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = one_message_then_close(listener, 2, tls);
    let o = local(port, &pki().ca_pem())
        .with_tls(mode)
        .with_timeouts(Timeouts::submission().capped(SHORT))
        .with_noop_after_idle(None);
    let mut conn = Connection::connect(&o).unwrap();
    for i in 0..2 {
        if i == 1 {
            std::thread::sleep(Duration::from_millis(300));
        }
        let report = send_one(&mut conn, &format!("idle-{mode:?}-{i}")).unwrap();
        assert_eq!(report.outcome, Outcome::Accepted, "message {i}: {report:?}");
    }
    drop(conn);
    assert_eq!(server.join().unwrap(), 2);
}
