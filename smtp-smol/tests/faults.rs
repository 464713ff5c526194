//! The async adapter against the scripted fault-injecting server (smtp-test-server): every misbehaviour ends in
//! the right outcome and error kind, within the stage's deadline plus a small margin. The same scenarios as the
//! blocking adapter's `faults.rs`, run through `smtp-smol`.

mod common;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use futures_lite::io::AsyncRead;
use smtp_smol::smtp_proto::{Mismatch, ReplyError};
use smtp_smol::{
    ConnectOptions, Connection, Direction, ErrorKind, Outcome, Protocol, SendReport, Stage,
    Timeouts, TlsMode, TlsUsed,
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

async fn send_one(conn: &mut Connection, subject: &str) -> Result<SendReport, smtp_smol::Error> {
    conn.send_bytes(
        &envelope("a@example.org", &["b@example.org"]),
        &message(subject, "hello"),
    )
    .await
}

async fn connect_and_send(
    o: &ConnectOptions,
    subject: &str,
) -> Result<SendReport, smtp_smol::Error> {
    let mut c = Connection::connect(o).await?;
    send_one(&mut c, subject).await
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
        let (report, _) = within(Duration::from_secs(3), async {
            let mut conn = Connection::connect(&opts(server, mode))
                .await
                .unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert_eq!(conn.tls(), used, "{mode}");
            let report = send_one(&mut conn, &subject).await.unwrap();
            conn.quit().await.unwrap();
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
    // A 3 s greeting deadline: the implicit attempt must start after the probe delay (300 ms), not after that.
    let o = opts(&server, TlsMode::Auto)
        .with_timeouts(Timeouts::submission().capped(Duration::from_secs(3)))
        .with_transcript(sink);
    let (conn, took) = within(Duration::from_secs(3), async {
        Connection::connect(&o).await.unwrap()
    });
    assert_eq!(conn.tls(), TlsUsed::Implicit);
    assert!(
        conn.tls_reason().contains("implicit TLS"),
        "{}",
        conn.tls_reason()
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    let text = transcript_text(&lines);
    assert!(text.contains("trying implicit TLS in parallel"), "{text}");
    assert!(
        text.contains("implicit TLS completed a verified TLS session first"),
        "{text}"
    );
    run(conn.quit()).unwrap();
}

#[test]
fn auto_on_port_465_style_server_speaking_plaintext_switches_to_starttls() {
    // Auto starts with implicit TLS only on port 465, which a test cannot bind; the switch itself is exercised
    // through a forced implicit attempt: the error is the diagnosis Auto switches on.
    let server = start(ServerConfig::new().starttls(&pki()));
    let e = expect_err(
        within(
            SHORT,
            Connection::connect(&opts(&server, TlsMode::Implicit)),
        )
        .0,
    );
    assert!(
        matches!(
            e.kind(),
            ErrorKind::ModeMismatch(Mismatch::ServerSpeaksPlaintext { .. })
        ),
        "{e}"
    );
    let switch =
        TlsMode::Auto.auto_switch(465, smtp_smol::smtp_proto::TlsPolicy::Implicit, &e, true);
    assert_eq!(
        switch.map(|s| s.0),
        Some(smtp_smol::smtp_proto::TlsPolicy::StartTlsRequired)
    );
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
    let (conn, took) = within(Duration::from_secs(6), Connection::connect(&o));
    let mut conn = conn.unwrap();
    assert!(took >= Duration::from_millis(2400), "{took:?}");
    // The parallel implicit-TLS attempt got a plaintext greeting and lost; STARTTLS won.
    assert_eq!(conn.tls(), TlsUsed::StartTls);
    assert_eq!(
        run(send_one(&mut conn, "delayed")).unwrap().outcome,
        Outcome::Accepted
    );
    // Forced modes wait too.
    let o = opts(&server, TlsMode::StartTls)
        .with_timeouts(Timeouts::submission().capped(Duration::from_secs(6)));
    let (r, _) = within(
        Duration::from_secs(6),
        connect_and_send(&o, "delayed-forced"),
    );
    assert_eq!(r.unwrap().outcome, Outcome::Accepted);
}

// ----- deadlines: silence and slow drips -----

#[test]
fn silence_on_connect_times_out_at_the_greeting() {
    let server = start(ServerConfig::new().fault(Fault::SilentOnConnect));
    for mode in [TlsMode::StartTls, TlsMode::None, TlsMode::Auto] {
        // Forced modes probe for implicit TLS (bounded by the probe delay) before reporting.
        let (r, _) = within(SHORT * 2, Connection::connect(&opts(&server, mode)));
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
    let (r, _) = within(SHORT, Connection::connect(&opts(&server, TlsMode::None)));
    let e = expect_err(r);
    assert_eq!(
        (e.kind(), e.stage()),
        (&ErrorKind::Timeout, Stage::Greeting),
        "{e}"
    );
}

#[test]
fn slow_drip_reply_inside_the_transaction_times_out_at_its_stage() {
    let server = start(
        ServerConfig::new()
            .pipelining(false)
            .chunking(false)
            .fault(Fault::Dribble(SStage::Mail, Duration::from_millis(200))),
    );
    let mut conn = run(Connection::connect(&opts(&server, TlsMode::None))).unwrap();
    let (r, _) = within(SHORT, send_one(&mut conn, "drip"));
    let e = expect_err(r);
    assert_eq!(
        (e.kind(), e.stage()),
        (&ErrorKind::Timeout, Stage::Mail),
        "{e}"
    );
    assert!(server.messages().is_empty());
}

#[test]
fn silence_after_the_final_dot_is_unknown_within_the_deadline() {
    let server = start(
        ServerConfig::new()
            .chunking(false)
            .fault(Fault::Silent(SStage::DataEnd)),
    );
    let mut conn = run(Connection::connect(&opts(&server, TlsMode::None))).unwrap();
    let (r, _) = within(SHORT, send_one(&mut conn, "silent-end"));
    let report = r.expect("a report: the end of data was sent");
    assert_eq!(report.outcome, Outcome::Unknown);
    let e = report.error.as_ref().unwrap();
    assert_eq!(
        (e.kind(), e.stage()),
        (&ErrorKind::Timeout, Stage::DataTermination),
        "{e}"
    );
}

#[test]
fn no_answer_to_starttls() {
    let server = start(
        ServerConfig::new()
            .starttls(&pki())
            .fault(Fault::SilentAfterStartTls),
    );
    let (r, _) = within(
        SHORT,
        Connection::connect(&opts(&server, TlsMode::StartTls)),
    );
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
    let (r, _) = within(
        SHORT,
        Connection::connect(&opts(&server, TlsMode::StartTls)),
    );
    let e = expect_err(r);
    assert_eq!(e.kind(), &ErrorKind::ResponseInjection, "{e}");
    assert_eq!(e.exit_code(), 76);
    assert!(e.to_string().contains("response-injection"), "{e}");
    assert!(server.messages().is_empty());
}

#[test]
fn starttls_missing_when_required_never_falls_back() {
    let server = start(
        ServerConfig::new()
            .starttls(&pki())
            .fault(Fault::NoStartTls),
    );
    for mode in [TlsMode::StartTls, TlsMode::Auto] {
        let (r, _) = within(SHORT, Connection::connect(&opts(&server, mode)));
        let e = expect_err(r);
        assert_eq!(e.kind(), &ErrorKind::StartTlsUnavailable, "{mode}: {e}");
        assert_eq!(e.exit_code(), 78);
    }
    let mut conn = run(Connection::connect(&opts(&server, TlsMode::Opportunistic))).unwrap();
    assert_eq!(conn.tls(), TlsUsed::None);
    assert_eq!(
        run(send_one(&mut conn, "opportunistic")).unwrap().outcome,
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
    let e = expect_err(run(Connection::connect(&o)));
    assert_eq!(e.kind(), &ErrorKind::AuthRequiresTls, "{e}");
    assert!(
        server
            .sessions()
            .iter()
            .all(|s| s.lines_with_verb("AUTH").is_empty())
    );
    let conn = run(Connection::connect(&o.with_insecure_auth(true))).unwrap();
    assert!(conn.is_authenticated());
}

// ----- hostile or broken replies -----

#[test]
fn endless_multiline_reply_is_capped() {
    let server = start(ServerConfig::new().fault(Fault::EndlessEhlo));
    let (r, _) = within(SHORT, Connection::connect(&opts(&server, TlsMode::None)));
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
        let (r, _) = within(
            SHORT,
            connect_and_send(&opts(&server, TlsMode::None), "endless"),
        );
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
    let (r, _) = within(SHORT, Connection::connect(&opts(&server, TlsMode::None)));
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
        let (r, _) = within(
            SHORT * 3,
            connect_and_send(&opts(&server, TlsMode::StartTls), "tolerant"),
        );
        assert_eq!(r.unwrap().outcome, Outcome::Accepted, "{fault:?}");
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
        let mut conn = run(Connection::connect(&opts(&server, TlsMode::None))).unwrap();
        let (r, _) = within(SHORT, send_one(&mut conn, "reset"));
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
    let mut conn = run(Connection::connect(&opts(&server, TlsMode::None))).unwrap();
    let (r, _) = within(SHORT, send_one(&mut conn, "first"));
    let report = r.unwrap();
    assert_eq!(report.outcome, Outcome::Rejected);
    assert_eq!(report.recipients[0].code(), Some(421));
    assert!(report.is_transient());
    assert_eq!(report.exit_code(), 75);
    let e = report.error.as_ref().unwrap();
    assert_eq!(e.kind(), &ErrorKind::ServiceNotAvailable);
    // The next message opens a new connection (the transaction had not started: nothing is sent twice).
    let report = run(send_one(&mut conn, "second")).unwrap();
    assert_eq!(report.outcome, Outcome::Accepted);
    assert_eq!(server.connections(), 2);
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn service_closing_at_every_transaction_stage() {
    for stage in [
        SStage::Mail,
        SStage::Rcpt,
        SStage::Data,
        SStage::DataEnd,
        SStage::BdatLast,
    ] {
        let chunking = stage == SStage::BdatLast;
        let server = start(
            ServerConfig::new()
                .chunking(chunking)
                .fault(Fault::Shutdown(stage)),
        );
        let mut conn = run(Connection::connect(&opts(&server, TlsMode::None))).unwrap();
        let (r, _) = within(SHORT, send_one(&mut conn, "421"));
        let report = r.unwrap_or_else(|e| panic!("{stage:?}: {e}"));
        assert_eq!(report.outcome, Outcome::Rejected, "{stage:?}");
        assert_eq!(
            report.error.as_ref().map(|e| e.kind().clone()),
            Some(ErrorKind::ServiceNotAvailable)
        );
        assert!(report.is_transient(), "{stage:?}");
        assert!(!conn.is_open());
        assert!(server.messages().is_empty());
    }
}

#[test]
fn partial_and_full_rejection() {
    let server = start(
        ServerConfig::new()
            .reject_recipient("nobody@example.org")
            .tempfail_recipient("later@example.org"),
    );
    run(async {
        let mut conn = Connection::connect(&opts(&server, TlsMode::None))
            .await
            .unwrap();
        let partial = conn
            .send_bytes(
                &envelope("a@example.org", &["b@example.org", "nobody@example.org"]),
                &message("p", "x"),
            )
            .await
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
            .await
            .unwrap();
        assert_eq!(rejected.outcome, Outcome::Rejected);
        assert_eq!(rejected.exit_code(), 69);
        let temp = conn
            .send_bytes(
                &envelope("a@example.org", &["b@example.org", "later@example.org"]),
                &message("t", "x"),
            )
            .await
            .unwrap();
        assert_eq!(temp.outcome, Outcome::PartiallyAccepted);
        assert_eq!(temp.exit_code(), 75);
        // The connection is still usable after a rejection (RSET in between).
        assert!(conn.is_usable());
        assert_eq!(
            send_one(&mut conn, "after").await.unwrap().outcome,
            Outcome::Accepted
        );
    });
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
    let report = run(async {
        let mut conn = Connection::connect(&o).await.unwrap();
        conn.send_bytes(
            &envelope("a@example.org", &["b@example.org", "full@example.org"]),
            &message("l", "x"),
        )
        .await
        .unwrap()
    });
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
                let (r, _) = within(SHORT * 2, Connection::connect(&opts(&server, mode)));
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
    let (r, _) = within(
        SHORT * 2,
        Connection::connect(&opts(&server, TlsMode::StartTls)),
    );
    let e = expect_err(r);
    assert!(
        matches!(e.kind(), ErrorKind::ModeMismatch(Mismatch::ServerSpeaksTls)),
        "{e}"
    );
    assert!(
        e.to_string().contains("expects implicit TLS (smtps://"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 78);
}

#[test]
fn forcing_implicit_on_a_starttls_port_is_diagnosed() {
    let server = start(ServerConfig::new().starttls(&pki()));
    let (r, _) = within(
        SHORT,
        Connection::connect(&opts(&server, TlsMode::Implicit)),
    );
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

/// An async body source that produces `len` bytes of text lines without holding them.
struct Generated {
    left: usize,
    line: usize,
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
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
        Poll::Ready(Ok(n))
    }
}

#[test]
fn a_streamed_body_arrives_whole_with_progress() {
    let server = start(ServerConfig::new().starttls(&pki()).chunking(false));
    let len = 3 * 1024 * 1024;
    let (mut calls, mut last) = (0, 0);
    let report = run(async {
        let mut conn = Connection::connect(&opts(&server, TlsMode::StartTls))
            .await
            .unwrap();
        conn.send_with_progress(
            &envelope("a@example.org", &["b@example.org"]),
            Generated { left: len, line: 0 },
            |n| {
                calls += 1;
                last = n;
            },
        )
        .await
        .unwrap()
    });
    assert_eq!(report.outcome, Outcome::Accepted);
    assert_eq!(report.body_bytes, len as u64);
    assert_eq!(last, len as u64);
    assert!(calls > 10, "{calls}");
    let m = &server.messages()[0];
    // Bare LF became CRLF; nothing else changed.
    let lines = len / 78;
    assert_eq!(
        m.body.len(),
        len + lines + 2 * usize::from(len % 78 != 0) - usize::from(len % 78 == 0)
    );
}

struct Failing(usize);

impl AsyncRead for Failing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.0 == 0 {
            return Poll::Ready(Err(io::Error::other("disk on fire")));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(b'x');
        self.0 -= n;
        Poll::Ready(Ok(n))
    }
}

#[test]
fn a_failing_body_source_never_completes_the_message() {
    for chunking in [true, false] {
        let server = start(ServerConfig::new().chunking(chunking));
        run(async {
            let mut conn = Connection::connect(&opts(&server, TlsMode::None))
                .await
                .unwrap();
            let e = expect_err(
                conn.send(
                    &envelope("a@example.org", &["b@example.org"]),
                    &mut Failing(200_000),
                )
                .await,
            );
            assert_eq!(e.kind(), &ErrorKind::BodyRead, "{e}");
            assert_eq!(e.exit_code(), 65);
            assert!(server.wait_idle(Duration::from_secs(2)));
            assert!(
                server.messages().is_empty(),
                "a truncated message was accepted"
            );
            // The next message reconnects.
            assert_eq!(
                send_one(&mut conn, "next").await.unwrap().outcome,
                Outcome::Accepted
            );
        });
    }
}

/// A body source that never produces anything: the DATA block deadline must still hold.
struct Stalled;

impl AsyncRead for Stalled {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Pending
    }
}

#[test]
fn a_stalled_body_source_times_out_at_the_data_block_deadline() {
    let server = start(ServerConfig::new().chunking(false));
    let mut conn = run(Connection::connect(&opts(&server, TlsMode::None))).unwrap();
    let (r, _) = within(
        SHORT,
        conn.send(&envelope("a@example.org", &["b@example.org"]), &mut Stalled),
    );
    let e = expect_err(r);
    assert_eq!(
        (e.kind(), e.stage()),
        (&ErrorKind::Timeout, Stage::DataBlock),
        "{e}"
    );
    assert!(server.messages().is_empty());
}

#[test]
fn many_messages_on_one_connection_with_noop_after_idle() {
    let server = start(ServerConfig::new().starttls(&pki()));
    let o = opts(&server, TlsMode::StartTls).with_noop_after_idle(Some(Duration::ZERO));
    run(async {
        let mut conn = Connection::connect(&o).await.unwrap();
        for i in 0..20 {
            assert_eq!(
                send_one(&mut conn, &format!("many-{i}"))
                    .await
                    .unwrap()
                    .outcome,
                Outcome::Accepted
            );
        }
        conn.quit().await.unwrap();
    });
    assert_eq!(server.connections(), 1);
    assert_eq!(server.messages().len(), 20);
    let verbs = server.sessions()[0].verbs();
    // Not before the first message (a fresh connection), before each reuse after that.
    assert_eq!(verbs.iter().filter(|v| *v == "NOOP").count(), 19);
    assert_eq!(verbs.last().map(String::as_str), Some("QUIT"));
}

#[test]
fn noop_detects_a_dead_connection_and_reconnects() {
    let server = start(ServerConfig::new().fault_on_connection(0, Fault::Shutdown(SStage::Noop)));
    let o = opts(&server, TlsMode::None).with_noop_after_idle(Some(Duration::ZERO));
    run(async {
        let mut conn = Connection::connect(&o).await.unwrap();
        assert_eq!(
            send_one(&mut conn, "before-noop").await.unwrap().outcome,
            Outcome::Accepted
        );
        assert_eq!(
            send_one(&mut conn, "after-noop").await.unwrap().outcome,
            Outcome::Accepted
        );
    });
    assert_eq!(server.connections(), 2);
    assert_eq!(server.messages().len(), 2);
}

#[test]
fn transcript_redacts_auth() {
    let server = start(
        ServerConfig::new()
            .starttls(&pki())
            .user("alice", "s3cr3t-pa55"),
    );
    let (sink, lines) = collector();
    let o = opts(&server, TlsMode::StartTls)
        .with_password("alice", "s3cr3t-pa55")
        .with_transcript(sink);
    run(async {
        let mut conn = Connection::connect(&o).await.unwrap();
        send_one(&mut conn, "transcript").await.unwrap();
        conn.quit().await.unwrap();
    });
    let text = transcript_text(&lines);
    assert!(text.contains("C: AUTH PLAIN <redacted>"), "{text}");
    assert!(text.contains("*: TLS established"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(
        !text.contains("czNjcjN0"),
        "no base64 of the password either: {text}"
    );
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
    let e = expect_err(run(Connection::connect(
        &opts(&server, TlsMode::StartTls).with_password("alice", "wrong"),
    )));
    assert!(matches!(e.kind(), ErrorKind::AuthFailed { .. }), "{e}");
    assert_eq!(e.code(), Some(535));
    assert_eq!(e.exit_code(), 77);
}

#[test]
fn smtputf8_addresses() {
    let server = start(ServerConfig::new());
    let report = run(async {
        let mut conn = Connection::connect(&opts(&server, TlsMode::None))
            .await
            .unwrap();
        conn.send_bytes(
            &envelope("jösé@example.org", &["ünïcode@example.org"]),
            &message("utf8", "x"),
        )
        .await
        .unwrap()
    });
    assert_eq!(report.outcome, Outcome::Accepted);
    assert!(
        server.messages()[0]
            .mail_params
            .iter()
            .any(|p| p == "SMTPUTF8")
    );
    let old = start(ServerConfig::new().smtputf8(false));
    run(async {
        let mut conn = Connection::connect(&opts(&old, TlsMode::None))
            .await
            .unwrap();
        let e = expect_err(
            conn.send_bytes(&envelope("jösé@example.org", &["b@example.org"]), b"x\r\n")
                .await,
        );
        assert!(matches!(e.kind(), ErrorKind::Message(_)), "{e}");
        assert_eq!(e.exit_code(), 65);
        // Nothing was sent: the connection is still usable.
        assert!(conn.is_usable());
        assert_eq!(
            send_one(&mut conn, "ascii").await.unwrap().outcome,
            Outcome::Accepted
        );
    });
}

// ----- cancellation -----

#[test]
fn dropping_a_send_mid_body_poisons_the_connection() {
    let server = start(
        ServerConfig::new()
            .chunking(false)
            .fault(Fault::Delay(SStage::DataEnd, Duration::from_secs(5))),
    );
    run(async {
        let mut conn = Connection::connect(&opts(&server, TlsMode::None))
            .await
            .unwrap();
        // The send is waiting for the verdict after the dot when its future is dropped.
        let send = send_one(&mut conn, "cancelled");
        let raced = futures_lite::future::or(async { Some(send.await) }, async {
            async_io::Timer::after(Duration::from_millis(300)).await;
            None
        })
        .await;
        assert!(raced.is_none(), "the send should still be waiting");
        assert!(conn.is_poisoned());
        assert!(!conn.is_usable());
        let e = expect_err(send_one(&mut conn, "after").await);
        assert_eq!(e.kind(), &ErrorKind::Closed, "{e}");
        assert!(e.to_string().contains("closed"), "{e}");
    });
}

#[test]
fn dropping_a_send_mid_stream_poisons_the_connection() {
    let server = start(ServerConfig::new().chunking(false));
    run(async {
        let mut conn = Connection::connect(&opts(&server, TlsMode::None))
            .await
            .unwrap();
        let mut body = Generated {
            left: 100_000,
            line: 0,
        }
        .chain(Stalled);
        let env = envelope("a@example.org", &["b@example.org"]);
        let send = conn.send(&env, &mut body);
        let raced = futures_lite::future::or(async { Some(send.await) }, async {
            async_io::Timer::after(Duration::from_millis(200)).await;
            None
        })
        .await;
        assert!(raced.is_none());
        assert!(conn.is_poisoned());
        drop(conn);
    });
    assert!(server.wait_idle(Duration::from_secs(2)));
    assert!(
        server.messages().is_empty(),
        "half a message must never be delivered"
    );
}

#[test]
fn dropping_a_connect_midway_leaves_nothing_behind() {
    // The server reads until the client goes away: it sees the socket closed when the future is dropped.
    let server = start(ServerConfig::new().fault(Fault::SilentOnConnect));
    let r = run(futures_lite::future::or(
        async { Some(Connection::connect(&opts(&server, TlsMode::None)).await) },
        async {
            async_io::Timer::after(Duration::from_millis(200)).await;
            None
        },
    ));
    assert!(r.is_none());
    assert!(
        server.wait_idle(Duration::from_secs(3)),
        "the socket was closed when the future was dropped"
    );
}

use futures_lite::AsyncReadExt as _;
