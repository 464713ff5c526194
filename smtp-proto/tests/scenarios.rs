//! Byte-transcript scenarios through the public API with a fake clock.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use smtp_proto::{
    Config, Credentials, ErrorKind, Event, Mechanism, Mismatch, Outcome, Protocol, Stage,
    TlsPolicy, UsageError,
};

fn send_body(s: &mut Session, body: &[u8]) {
    let n = s.client.write_body(body).unwrap();
    assert_eq!(n, body.len());
    s.client.finish_body().unwrap();
    s.drain();
}

// ----- happy paths -----

#[test]
fn happy_path_without_pipelining_waits_for_each_reply() {
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.client
        .send_mail(envelope(
            "a@example.org",
            &["b@example.net", "c@example.net"],
        ))
        .unwrap();
    s.drain();
    assert_eq!(s.sent(), "MAIL FROM:<a@example.org>\r\n");
    s.server(b"250 2.1.0 ok\r\n");
    assert_eq!(s.sent(), "RCPT TO:<b@example.net>\r\n");
    s.server(b"250 2.1.5 ok\r\n");
    assert_eq!(s.sent(), "RCPT TO:<c@example.net>\r\n");
    s.server(b"250 2.1.5 ok\r\n");
    assert_eq!(s.sent(), "DATA\r\n");
    assert!(!s.ready_for_body());
    assert_eq!(
        s.client.write_body(b"early").unwrap(),
        0,
        "no body before 354"
    );
    s.server(b"354 go ahead\r\n");
    assert!(s.ready_for_body());
    send_body(&mut s, b"Subject: x\r\n\r\n.dot\r\nend");
    assert_eq!(s.sent(), "Subject: x\r\n\r\n..dot\r\nend\r\n.\r\n");
    assert!(s.report().is_none());
    s.server(b"250 2.0.0 queued\r\n");
    let r = s.report().unwrap();
    assert_eq!(r.outcome, Outcome::Accepted);
    assert_eq!(r.accepted_count(), 2);
    assert_eq!(r.final_reply.unwrap().code().get(), 250);
    assert_eq!(s.sent(), "", "no RSET after a successful transaction");
    assert!(s.client.is_idle());
    assert_eq!(
        s.client.poll_timeout(),
        None,
        "an idle session has no deadline"
    );
    s.client.quit();
    s.drain();
    assert_eq!(s.sent(), "QUIT\r\n");
    s.server(b"221 bye\r\n");
    assert_eq!(s.closed_error(), Some(None));
}

#[test]
fn pipelining_sends_envelope_and_data_in_one_write() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    let writes_before = s.writes.len();
    s.client
        .send_mail(envelope(
            "a@example.org",
            &["b@example.net", "c@example.net"],
        ))
        .unwrap();
    s.drain();
    assert_eq!(s.writes.len(), writes_before + 1, "one write");
    assert_eq!(
        s.sent(),
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n"
    );
    s.server(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    send_body(&mut s, b"hi\r\n");
    assert_eq!(s.sent(), "hi\r\n.\r\n");
    s.server(b"250 queued\r\n");
    assert_eq!(s.report().unwrap().outcome, Outcome::Accepted);
}

#[test]
fn chunking_small_message_costs_one_write_and_one_round_trip() {
    let mut s = Session::ready(plain(), EHLO_CHUNKING);
    let writes_before = s.writes.len();
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    assert!(
        s.client
            .poll_event()
            .is_some_and(|e| matches!(e, Event::ReadyForBody { .. }))
    );
    // Body written before anything is transmitted: everything goes in one write.
    assert_eq!(s.client.write_body(b".x\nline\r\n").unwrap(), 9);
    s.client.finish_body().unwrap();
    s.drain();
    assert_eq!(s.writes.len(), writes_before + 1);
    assert_eq!(
        s.sent(),
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 10 LAST\r\n.x\r\nline\r\n",
        "BDAT is counted, not dot-stuffed; bare LF still becomes CRLF"
    );
    s.server(b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n");
    let r = s.report().unwrap();
    assert_eq!(r.outcome, Outcome::Accepted);
}

#[test]
fn chunking_streams_several_chunks_and_tracks_each_reply() {
    let mut cfg = plain();
    cfg.max_buffered_body = 8;
    let mut s = Session::ready(cfg, EHLO_CHUNKING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.drain();
    s.sent();
    let body = b"0123456789abcdef";
    let mut off = 0;
    let mut rounds = 0;
    while off < body.len() {
        rounds += 1;
        assert!(rounds < 10);
        let n = s.client.write_body(&body[off..]).unwrap();
        off += n;
        s.drain();
    }
    s.client.finish_body().unwrap();
    s.drain();
    let sent = s.sent();
    assert!(sent.starts_with("BDAT "), "{sent}");
    assert!(
        sent.ends_with("LAST\r\n") || sent.contains(" LAST\r\n"),
        "{sent}"
    );
    let chunks = sent.matches("BDAT ").count();
    let replies: String = "250 ok\r\n".repeat(chunks + 2);
    s.server(replies.as_bytes());
    assert_eq!(s.report().unwrap().outcome, Outcome::Accepted);
}

#[test]
fn helo_fallback_when_ehlo_is_unknown() {
    let mut s = Session::new(plain());
    s.server(b"220 old.example ready\r\n");
    assert_eq!(s.sent(), "EHLO localhost\r\n");
    s.server(b"502 5.5.2 command not recognized\r\n");
    assert_eq!(s.sent(), "HELO localhost\r\n");
    s.server(b"250 old.example\r\n");
    let ready = s.take_events().into_iter().find_map(|e| match e {
        Event::Ready { capabilities, .. } => Some(capabilities),
        _ => None,
    });
    assert!(ready.unwrap().auth_mechanisms().is_empty());
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.drain();
    assert_eq!(
        s.sent(),
        "MAIL FROM:<a@example.org>\r\n",
        "no pipelining without EHLO"
    );
}

#[test]
fn helo_fallback_cannot_satisfy_required_starttls() {
    let mut s = Session::new(Config::default());
    s.server(b"220 old.example\r\n");
    s.server(b"500 what?\r\n");
    assert_eq!(s.sent(), "EHLO localhost\r\nHELO localhost\r\n");
    s.server(b"250 old.example\r\n");
    let e = s.closed_error().unwrap().unwrap();
    assert_eq!(e.kind(), &ErrorKind::StartTlsUnavailable);
}

#[test]
fn greeting_554_quits_and_reports_the_refusal() {
    let mut s = Session::new(plain());
    s.server(b"554 5.7.1 no service for you\r\n");
    assert_eq!(s.sent(), "QUIT\r\n");
    assert!(s.closed_error().is_none());
    s.server(b"221 bye\r\n");
    let e = s.closed_error().unwrap().unwrap();
    assert_eq!(e.kind(), &ErrorKind::GreetingRejected);
    assert_eq!(e.reply().unwrap().code().get(), 554);
    assert!(!e.is_transient());
}

#[test]
fn many_transactions_on_one_connection_with_rset_after_failure() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    // 1: rejected at MAIL
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.drain();
    s.sent();
    s.server(b"550 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n");
    let r = s.report().unwrap();
    assert_eq!(r.outcome, Outcome::Rejected);
    assert_eq!(r.failure.as_ref().unwrap().0, Stage::Mail);
    assert_eq!(s.sent(), "RSET\r\n");
    s.take_events();
    // 2: accepted, MAIL pipelined behind the RSET
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.drain();
    assert_eq!(
        s.sent(),
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
    );
    s.server(b"250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    send_body(&mut s, b"x");
    s.server(b"250 queued\r\n");
    assert_eq!(s.report().unwrap().outcome, Outcome::Accepted);
    assert_eq!(s.sent(), "x\r\n.\r\n");
    s.take_events();
    // 3: accepted again, no RSET in between
    s.client
        .send_mail(envelope("a@example.org", &["c@example.net"]))
        .unwrap();
    s.drain();
    assert!(s.sent().starts_with("MAIL FROM"));
}

// ----- recipients -----

#[test]
fn partial_rcpt_rejection_keeps_the_others() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope(
            "a@example.org",
            &["ok1@x.org", "bad@x.org", "ok2@x.org", "later@x.org"],
        ))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n450 4.2.1 try later\r\n354 go\r\n");
    let rcpt_events = s
        .events
        .iter()
        .filter(|e| matches!(e, Event::RecipientReply { .. }))
        .count();
    assert_eq!(rcpt_events, 4);
    send_body(&mut s, b"x\r\n");
    s.server(b"250 queued\r\n");
    let r = s.report().unwrap();
    assert_eq!(r.outcome, Outcome::PartiallyAccepted);
    let accepted: Vec<bool> = r.recipients.iter().map(|x| x.accepted).collect();
    assert_eq!(accepted, [true, false, true, false]);
    assert_eq!(
        r.recipients[1]
            .reply()
            .unwrap()
            .enhanced()
            .unwrap()
            .to_string(),
        "5.1.1"
    );
    assert_eq!(r.recipients[0].reply().unwrap().code().get(), 250);
    assert!(r.is_transient(), "a 450 recipient may succeed later");
}

#[test]
fn all_recipients_rejected_without_pipelining_sends_no_data() {
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.client
        .send_mail(envelope("a@example.org", &["x@x.org", "y@x.org"]))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n");
    s.server(b"550 no\r\n");
    s.server(b"550 no\r\n");
    let sent = s.sent();
    assert!(!sent.contains("DATA"), "{sent}");
    assert!(sent.ends_with("RSET\r\n"), "{sent}");
    let r = s.report().unwrap();
    assert_eq!(r.outcome, Outcome::Rejected);
    assert!(
        r.recipients
            .iter()
            .all(|x| x.rcpt_reply.as_ref().unwrap().code().get() == 550)
    );
    assert_eq!(s.client.write_body(b"x"), Err(UsageError::NoBodyExpected));
}

#[test]
fn all_recipients_rejected_with_pipelining_reads_every_reply() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@example.org", &["x@x.org"]))
        .unwrap();
    s.drain();
    s.sent();
    s.server(b"250 ok\r\n550 no\r\n");
    assert!(s.report().is_none(), "the DATA reply is still owed");
    s.server(b"554 5.5.1 no valid recipients\r\n");
    assert_eq!(s.report().unwrap().outcome, Outcome::Rejected);
    assert_eq!(s.sent(), "RSET\r\n");
}

#[test]
fn pipelined_data_accepted_without_recipients_gets_a_lone_dot() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@example.org", &["x@x.org"]))
        .unwrap();
    s.drain();
    s.sent();
    s.server(b"250 ok\r\n550 no\r\n354 go ahead anyway\r\n");
    assert_eq!(s.sent(), ".\r\n");
    assert!(!s.ready_for_body());
    s.server(b"554 no valid recipients\r\n");
    assert_eq!(s.report().unwrap().outcome, Outcome::Rejected);
}

// ----- 421 and connection loss -----

#[test]
fn service_closing_mid_transaction() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@example.org", &["b@x.org", "c@x.org"]))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n421 4.3.2 shutting down\r\n");
    let r = s.report().unwrap();
    assert_eq!(r.outcome, Outcome::Rejected);
    assert_eq!(r.failure.as_ref().unwrap().0, Stage::Rcpt);
    let e = s.closed_error().unwrap().unwrap();
    assert_eq!(e.kind(), &ErrorKind::ServiceNotAvailable);
    assert_eq!(e.stage(), Stage::Rcpt);
    assert!(e.is_transient());
    assert_eq!(s.closed_count(), 1);
    assert!(s.client.poll_transmit(s.now).is_none());
}

#[test]
fn service_closing_in_every_opening_state() {
    for stage_replies in [
        &[&b"421 busy\r\n"[..]][..],
        &[b"220 hi\r\n", b"421 busy\r\n"],
    ] {
        let mut s = Session::new(plain());
        for r in stage_replies {
            s.server(r);
        }
        let e = s.closed_error().unwrap().unwrap();
        assert_eq!(e.kind(), &ErrorKind::ServiceNotAvailable);
    }
    // unsolicited 421 while idle
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.server(b"421 4.4.2 idle timeout\r\n");
    let e = s.closed_error().unwrap().unwrap();
    assert_eq!(e.kind(), &ErrorKind::ServiceNotAvailable);
    assert_eq!(e.stage(), Stage::Idle);
}

#[test]
fn connection_lost_after_final_dot_is_unknown_never_sent() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@example.org", &["b@x.org"]))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    send_body(&mut s, b"hello\r\n");
    assert!(s.client.awaiting_verdict());
    s.eof();
    let r = s.report().unwrap();
    assert_eq!(r.outcome, Outcome::Unknown);
    assert!(!r.outcome.is_delivered());
    assert!(r.recipients.iter().all(|x| !x.accepted));
    assert_eq!(r.error.unwrap().kind(), &ErrorKind::ConnectionClosed);
}

#[test]
fn connection_lost_before_final_dot_is_not_sent() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@example.org", &["b@x.org"]))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    s.client.write_body(b"partial").unwrap();
    s.drain();
    s.eof();
    assert_eq!(s.report().unwrap().outcome, Outcome::NotSent);
}

#[test]
fn unsolicited_reply_is_a_protocol_error() {
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.server(b"250 surprise\r\n");
    let e = s.closed_error().unwrap().unwrap();
    assert_eq!(e.kind(), &ErrorKind::UnexpectedReply);
}

// ----- STARTTLS -----

fn starttls_session() -> Session {
    let mut s = Session::new(Config::default());
    s.server(b"220 mx ESMTP\r\n");
    s.server(b"250-mx\r\n250-STARTTLS\r\n250-AUTH PLAIN\r\n250 PIPELINING\r\n");
    assert_eq!(s.sent(), "EHLO localhost\r\nSTARTTLS\r\n");
    s
}

#[test]
fn starttls_hand_off_forgets_capabilities_and_says_ehlo_again() {
    let mut s = starttls_session();
    s.server(b"220 2.0.0 go ahead\r\n");
    assert!(s.events.iter().any(|e| matches!(e, Event::StartTls)));
    assert!(s.client.capabilities().is_none() || !s.client.is_tls());
    s.now += Duration::from_millis(30);
    s.client.tls_established(s.now).unwrap();
    assert!(
        s.client.capabilities().is_none(),
        "RFC 3207 §4.2: forget what was learnt in plaintext"
    );
    s.drain();
    assert_eq!(s.sent(), "EHLO localhost\r\n");
    s.server(b"250-mx\r\n250 PIPELINING\r\n");
    let ready = s.events.iter().find_map(|e| match e {
        Event::Ready {
            tls, capabilities, ..
        } => Some((*tls, capabilities.clone())),
        _ => None,
    });
    let (tls, caps) = ready.unwrap();
    assert!(tls);
    assert!(
        caps.auth_mechanisms().is_empty(),
        "post-TLS EHLO is authoritative"
    );
    assert_eq!(
        s.client.tls_established(s.now),
        Err(UsageError::TlsNotExpected)
    );
}

#[test]
fn bytes_injected_with_the_220_close_the_session() {
    let mut s = starttls_session();
    s.server(b"220 go ahead\r\n250-injected\r\n");
    let e = s.closed_error().unwrap().unwrap();
    assert_eq!(e.kind(), &ErrorKind::ResponseInjection);
    assert!(!s.events.iter().any(|e| matches!(e, Event::StartTls)) || s.closed_count() == 1);
    assert_eq!(s.closed_count(), 1);
}

#[test]
fn partial_line_injected_with_the_220_closes_the_session() {
    let mut s = starttls_session();
    s.server(b"220 go ahead\r\n2");
    assert_eq!(
        s.closed_error().unwrap().unwrap().kind(),
        &ErrorKind::ResponseInjection
    );
}

#[test]
fn bytes_injected_after_the_220_before_the_handshake_close_the_session() {
    let mut s = starttls_session();
    s.server(b"220 go ahead\r\n");
    assert!(s.closed_error().is_none());
    s.server(b"250 injected\r\n");
    assert_eq!(
        s.closed_error().unwrap().unwrap().kind(),
        &ErrorKind::ResponseInjection
    );
    assert!(s.client.tls_established(s.now).is_err());
}

#[test]
fn starttls_required_but_not_offered() {
    let mut s = Session::new(Config::default());
    s.server(b"220 mx\r\n");
    s.server(b"250-mx\r\n250 AUTH PLAIN\r\n");
    let e = s.closed_error().unwrap().unwrap();
    assert_eq!(e.kind(), &ErrorKind::StartTlsUnavailable);
    assert!(e.to_string().contains("does not offer STARTTLS"), "{e}");
    assert!(!s.sent().contains("AUTH"));
}

#[test]
fn starttls_refused_when_required() {
    let mut s = starttls_session();
    s.server(b"454 4.7.0 TLS not available\r\n");
    assert_eq!(
        s.closed_error().unwrap().unwrap().kind(),
        &ErrorKind::StartTlsRejected
    );
}

#[test]
fn opportunistic_continues_in_plaintext_when_not_offered_or_refused() {
    let mut cfg = Config::default();
    cfg.tls = TlsPolicy::StartTlsOpportunistic;
    let mut s = Session::new(cfg.clone());
    s.server(b"220 mx\r\n");
    s.server(b"250 mx\r\n");
    assert!(
        s.events
            .iter()
            .any(|e| matches!(e, Event::Ready { tls: false, .. }))
    );

    let mut s = Session::new(cfg);
    s.server(b"220 mx\r\n");
    s.server(b"250-mx\r\n250 STARTTLS\r\n");
    assert_eq!(s.sent(), "EHLO localhost\r\nSTARTTLS\r\n");
    s.server(b"454 not now\r\n");
    assert!(
        s.events
            .iter()
            .any(|e| matches!(e, Event::Ready { tls: false, .. }))
    );
}

#[test]
fn implicit_tls_asks_for_the_handshake_first() {
    let mut cfg = Config::default();
    cfg.tls = TlsPolicy::Implicit;
    let mut s = Session::new(cfg);
    assert!(matches!(s.events.first(), Some(Event::StartTls)));
    assert_eq!(s.sent(), "");
    s.client.tls_established(s.now).unwrap();
    s.drain();
    assert_eq!(s.sent(), "", "the server speaks first after the handshake");
    s.server(b"220 mx\r\n");
    s.server(b"250-mx\r\n250 STARTTLS\r\n");
    assert_eq!(s.sent(), "EHLO localhost\r\n", "no STARTTLS inside TLS");
    assert!(
        s.events
            .iter()
            .any(|e| matches!(e, Event::Ready { tls: true, .. }))
    );
}

#[test]
fn implicit_tls_against_a_plaintext_server_is_diagnosed() {
    let mut cfg = Config::default();
    cfg.tls = TlsPolicy::Implicit;
    let mut s = Session::new(cfg);
    s.client.tls_failed(
        s.now,
        b"220 mx.example.org ESMTP Postfix\r\n",
        "received corrupt message",
    );
    s.drain();
    let e = s.closed_error().unwrap().unwrap();
    assert!(matches!(
        e.kind(),
        ErrorKind::ModeMismatch(Mismatch::ServerSpeaksPlaintext { .. })
    ));
    let text = e.to_string();
    assert!(
        text.contains("this server speaks plaintext SMTP first: use STARTTLS"),
        "{text}"
    );
}

#[test]
fn tls_records_instead_of_a_greeting_are_diagnosed() {
    let mut s = Session::new(Config::default());
    s.server(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
    let e = s.closed_error().unwrap().unwrap();
    assert_eq!(
        e.kind(),
        &ErrorKind::ModeMismatch(Mismatch::ServerSpeaksTls)
    );
}

#[test]
fn no_greeting_on_port_465_names_implicit_tls() {
    let mut s = Session::new(Config::default().with_port(465));
    let waited = s.fire_deadline();
    assert_eq!(waited, Config::default().timeouts.greeting);
    let e = s.closed_error().unwrap().unwrap();
    assert_eq!(
        e.kind(),
        &ErrorKind::ModeMismatch(Mismatch::ImplicitTlsExpected { port: 465 })
    );
    assert!(
        e.to_string()
            .contains("this port most likely expects implicit TLS (smtps://"),
        "{e}"
    );
    // On another port the same silence is a plain timeout.
    let mut s = Session::new(Config::default().with_port(587));
    s.fire_deadline();
    assert_eq!(
        s.closed_error().unwrap().unwrap().kind(),
        &ErrorKind::Timeout
    );
}

/// The EHLO reply whole in one read takes the client's one-pass path; byte by byte it goes through the framer and
/// `Capabilities::from_ehlo`. Both must end the same way: the same capabilities, transcript and next command.
#[test]
fn ehlo_in_one_read_or_byte_by_byte_gives_the_same_session() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/replies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the corpus")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ehlo--"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let mut replies: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    // Odd but valid replies: bare LF endings, lower case, spaces, an unknown keyword with parameters.
    replies
        .push(b"250-mx\n250-pipelining\n250-size 1000\n250-X-FOO a b\n250 AUTH=login\n".to_vec());
    replies.push(b"250 mx.example.org\r\n".to_vec());
    for ehlo in &replies {
        let run = |whole: bool| {
            let mut cfg = plain();
            cfg.transcript = true;
            let mut s = Session::new(cfg);
            s.server(b"220 mx\r\n");
            s.sent();
            if whole {
                s.server(ehlo);
            } else {
                for b in ehlo {
                    s.server(std::slice::from_ref(b));
                }
            }
            let ready = s.events.iter().find_map(|e| match e {
                Event::Ready { capabilities, .. } => Some(capabilities.clone()),
                _ => None,
            });
            let ready = ready.expect("ready after EHLO");
            let mut transcript = Vec::new();
            while let Some(e) = s.client.poll_transcript() {
                transcript.push(e.text);
            }
            (ready, transcript, s.sent())
        };
        let (fast, fast_transcript, fast_sent) = run(true);
        let (framed, framed_transcript, framed_sent) = run(false);
        let name = String::from_utf8_lossy(ehlo);
        assert_eq!(fast, framed, "{name}");
        assert_eq!(fast.auth_mechanisms(), framed.auth_mechanisms(), "{name}");
        assert_eq!(fast.other(), framed.other(), "{name}");
        assert_eq!(fast_transcript, framed_transcript, "{name}");
        assert_eq!(fast_sent, framed_sent, "{name}");
    }
}

// ----- AUTH -----

fn auth_session(creds: Credentials, mechs: &str) -> Session {
    let mut cfg = plain();
    cfg.credentials = Some(creds);
    cfg.allow_insecure_auth = true;
    cfg.transcript = true;
    let mut s = Session::new(cfg);
    s.server(b"220 mx\r\n");
    s.sent();
    s.server(format!("250-mx\r\n250 AUTH {mechs}\r\n").as_bytes());
    s
}

fn transcript_text(s: &mut Session) -> String {
    let mut t = String::new();
    while let Some(e) = s.client.poll_transcript() {
        t.push_str(&e.text);
        t.push('\n');
    }
    t
}

#[test]
fn auth_plain_with_initial_response() {
    let mut s = auth_session(Credentials::password("alice", "s3cret-pw"), "LOGIN PLAIN");
    let expected = format!("AUTH PLAIN {}\r\n", B64.encode(b"\0alice\0s3cret-pw"));
    assert_eq!(s.sent(), expected);
    s.server(b"235 2.7.0 ok\r\n");
    assert!(s.events.iter().any(|e| matches!(
        e,
        Event::Ready {
            authenticated: true,
            ..
        }
    )));
    assert!(s.client.is_authenticated());
    let t = transcript_text(&mut s);
    assert!(t.contains("AUTH PLAIN <redacted>"), "{t}");
    assert!(!t.contains(&B64.encode(b"\0alice\0s3cret-pw")), "{t}");
    assert!(!t.contains("s3cret"), "{t}");
}

#[test]
fn auth_plain_when_the_server_asks_with_334() {
    let mut cfg = plain();
    cfg.credentials = Some(Credentials::password("u", "p"));
    cfg.allow_insecure_auth = true;
    // An initial response that does not fit 512 octets is sent after the 334 instead (RFC 4954 §4).
    let long = "p".repeat(600);
    cfg.credentials = Some(Credentials::password("u", long.as_str()));
    let mut s = Session::new(cfg);
    s.server(b"220 mx\r\n");
    s.server(b"250-mx\r\n250 AUTH PLAIN\r\n");
    assert!(s.sent().ends_with("AUTH PLAIN\r\n"));
    s.server(b"334 \r\n");
    let line = s.sent();
    assert_eq!(line, format!("{}\r\n", B64.encode(format!("\0u\0{long}"))));
    s.server(b"235 ok\r\n");
    assert!(s.client.is_authenticated());
}

#[test]
fn auth_login_answers_both_prompts() {
    let mut s = auth_session(Credentials::password("alice", "pw"), "LOGIN");
    assert_eq!(s.sent(), "AUTH LOGIN\r\n");
    s.server(b"334 VXNlcm5hbWU6\r\n");
    assert_eq!(s.sent(), format!("{}\r\n", B64.encode("alice")));
    s.server(b"334 UGFzc3dvcmQ6\r\n");
    assert_eq!(s.sent(), format!("{}\r\n", B64.encode("pw")));
    s.server(b"235 ok\r\n");
    assert!(s.client.is_authenticated());
    let t = transcript_text(&mut s);
    assert!(!t.contains(&B64.encode("pw")), "{t}");
    assert_eq!(t.matches("<redacted>").count(), 2, "{t}");
}

#[test]
fn auth_cram_md5_is_preferred_and_computed() {
    let mut s = auth_session(
        Credentials::password("tim", "tanstaaftanstaaf"),
        "PLAIN LOGIN CRAM-MD5",
    );
    assert_eq!(s.sent(), "AUTH CRAM-MD5\r\n");
    let challenge = B64.encode("<1896.697170952@postoffice.reston.mci.net>");
    s.server(format!("334 {challenge}\r\n").as_bytes());
    assert_eq!(
        s.sent(),
        format!("{}\r\n", B64.encode("tim b913a602c7eda7a495b4e6e7334d3890"))
    );
    s.server(b"235 ok\r\n");
    assert!(s.client.is_authenticated());
}

#[test]
fn auth_xoauth2_error_challenge_is_decoded_into_the_error() {
    let mut s = auth_session(Credentials::oauth2("u@example.com", "tok"), "PLAIN XOAUTH2");
    let sent = s.sent();
    assert!(sent.starts_with("AUTH XOAUTH2 "), "{sent}");
    let json = r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
    s.server(format!("334 {}\r\n", B64.encode(json)).as_bytes());
    assert_eq!(
        s.sent(),
        "\r\n",
        "an empty response asks for the final reply"
    );
    s.server(b"535 5.7.8 Username and Password not accepted\r\n");
    let e = s.closed_error().unwrap().unwrap();
    match e.kind() {
        ErrorKind::AuthFailed { details } => assert!(details.as_ref().unwrap().contains("401")),
        k => panic!("{k:?}"),
    }
    assert_eq!(e.reply().unwrap().code().get(), 535);
}

#[test]
fn auth_oauthbearer() {
    let mut s = auth_session(
        Credentials::oauth2("u@example.com", "tok"),
        "OAUTHBEARER XOAUTH2",
    );
    let expected = format!(
        "AUTH OAUTHBEARER {}\r\n",
        B64.encode("n,a=u@example.com,\x01auth=Bearer tok\x01\x01")
    );
    assert_eq!(s.sent(), expected);
    s.server(b"235 ok\r\n");
    assert!(s.client.is_authenticated());
}

#[test]
fn auth_failure_is_typed_and_keeps_the_reply() {
    let mut s = auth_session(Credentials::password("alice", "wrong"), "PLAIN");
    s.sent();
    s.server(b"535 5.7.8 Error: authentication failed\r\n");
    let e = s.closed_error().unwrap().unwrap();
    assert!(matches!(e.kind(), ErrorKind::AuthFailed { .. }));
    assert_eq!(e.stage(), Stage::Auth);
    assert!(!e.is_transient());
    assert!(!format!("{e} {e:?}").contains("wrong"));
}

#[test]
fn auth_is_refused_over_plaintext_unless_allowed() {
    let mut cfg = plain();
    cfg.credentials = Some(Credentials::password("alice", "pw"));
    let mut s = Session::new(cfg);
    s.server(b"220 mx\r\n");
    s.server(b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
    assert_eq!(s.sent(), "EHLO localhost\r\n", "no AUTH byte on the wire");
    assert_eq!(
        s.closed_error().unwrap().unwrap().kind(),
        &ErrorKind::AuthRequiresTls
    );
}

#[test]
fn auth_without_a_usable_mechanism() {
    let s = auth_session(Credentials::password("a", "b"), "GSSAPI NTLM");
    let e = s.closed_error().unwrap().unwrap();
    assert!(matches!(e.kind(), ErrorKind::AuthUnavailable { offered } if offered.len() == 2));
    assert!(e.to_string().contains("GSSAPI NTLM"));
}

#[test]
fn auth_challenge_loop_is_capped() {
    let mut cfg = plain();
    cfg.credentials = Some(Credentials::oauth2("u", "t"));
    cfg.allow_insecure_auth = true;
    cfg.max_auth_rounds = 3;
    let mut s = Session::new(cfg);
    s.server(b"220 mx\r\n");
    s.server(b"250-mx\r\n250 AUTH XOAUTH2\r\n");
    for _ in 0..10 {
        if s.closed_error().is_some() {
            break;
        }
        s.server(b"334 e30=\r\n");
    }
    assert_eq!(
        s.closed_error().unwrap().unwrap().kind(),
        &ErrorKind::AuthProtocol
    );
}

#[test]
fn auth_over_starttls_only_after_the_handshake() {
    let mut cfg = Config::default();
    cfg.credentials = Some(Credentials::password("alice", "pw"));
    let mut s = Session::new(cfg);
    s.server(b"220 mx\r\n");
    s.server(b"250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n");
    s.server(b"220 go\r\n");
    assert!(!s.sent().contains("AUTH"), "no AUTH before TLS");
    s.client.tls_established(s.now).unwrap();
    s.drain();
    s.server(b"250-mx\r\n250 AUTH PLAIN\r\n");
    assert!(
        s.sent()
            .ends_with(&format!("AUTH PLAIN {}\r\n", B64.encode("\0alice\0pw")))
    );
}

#[test]
fn configured_mechanism_preference_wins() {
    let mut cfg = plain();
    cfg.credentials = Some(Credentials::password("a", "b"));
    cfg.allow_insecure_auth = true;
    cfg.mechanisms = Some(vec![Mechanism::Login]);
    let mut s = Session::new(cfg);
    s.server(b"220 mx\r\n");
    s.server(b"250-mx\r\n250 AUTH PLAIN LOGIN CRAM-MD5\r\n");
    assert!(s.sent().ends_with("AUTH LOGIN\r\n"));
}

// ----- deadlines -----

#[test]
fn every_stage_times_out_with_its_own_deadline() {
    let t = Config::default().timeouts;
    // greeting
    let mut s = Session::new(plain());
    assert_eq!(s.fire_deadline(), t.greeting);
    assert_eq!(s.closed_error().unwrap().unwrap().stage(), Stage::Greeting);
    // EHLO
    let mut s = Session::new(plain());
    s.server(b"220 mx\r\n");
    assert_eq!(s.fire_deadline(), t.ehlo);
    assert_eq!(s.closed_error().unwrap().unwrap().stage(), Stage::Ehlo);
    // STARTTLS
    let mut s = starttls_session();
    assert_eq!(s.fire_deadline(), t.starttls);
    assert_eq!(s.closed_error().unwrap().unwrap().stage(), Stage::StartTls);
    // TLS handshake
    let mut s = starttls_session();
    s.server(b"220 go\r\n");
    assert_eq!(s.fire_deadline(), t.tls_handshake);
    assert_eq!(
        s.closed_error().unwrap().unwrap().stage(),
        Stage::TlsHandshake
    );
    // AUTH
    let mut s = auth_session(Credentials::password("a", "b"), "PLAIN");
    assert_eq!(s.fire_deadline(), t.auth);
    assert_eq!(s.closed_error().unwrap().unwrap().stage(), Stage::Auth);
    // MAIL, RCPT, DATA, data block, data termination
    let cases: [(&[&[u8]], Stage, Duration); 5] = [
        (&[], Stage::Mail, t.mail),
        (&[b"250 ok\r\n"], Stage::Rcpt, t.rcpt),
        (
            &[b"250 ok\r\n", b"250 ok\r\n"],
            Stage::DataInit,
            t.data_init,
        ),
        (
            &[b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"],
            Stage::DataBlock,
            t.data_block,
        ),
        (
            &[b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"],
            Stage::DataTermination,
            t.data_termination,
        ),
    ];
    for (replies, stage, timeout) in cases {
        let mut s = Session::ready(plain(), EHLO_BASIC);
        s.client
            .send_mail(envelope("a@x.org", &["b@x.org"]))
            .unwrap();
        s.drain();
        for r in replies {
            s.server(r);
        }
        if stage == Stage::DataTermination {
            send_body(&mut s, b"body");
        }
        assert_eq!(s.fire_deadline(), timeout, "{stage:?}");
        let e = s.closed_error().unwrap().unwrap();
        assert_eq!(e.stage(), stage);
        assert_eq!(e.kind(), &ErrorKind::Timeout);
        let outcome = s.report().unwrap().outcome;
        if stage == Stage::DataTermination {
            assert_eq!(
                outcome,
                Outcome::Unknown,
                "time passed after the final dot: unknown, never sent"
            );
        } else {
            assert_eq!(outcome, Outcome::NotSent);
        }
    }
    // RSET, NOOP, QUIT
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.client.noop().unwrap();
    s.drain();
    assert_eq!(s.fire_deadline(), t.noop);
    assert_eq!(s.closed_error().unwrap().unwrap().stage(), Stage::Noop);
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.client
        .send_mail(envelope("a@x.org", &["b@x.org"]))
        .unwrap();
    s.drain();
    s.server(b"550 no\r\n");
    assert!(s.sent().ends_with("RSET\r\n"));
    assert_eq!(s.fire_deadline(), t.rset);
    assert_eq!(s.closed_error().unwrap().unwrap().stage(), Stage::Rset);
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.client.quit();
    s.drain();
    assert_eq!(s.fire_deadline(), t.quit);
    assert_eq!(
        s.closed_error(),
        Some(None),
        "a QUIT that is not answered still ends cleanly"
    );
}

#[test]
fn a_dribbling_server_cannot_stretch_a_stage() {
    let mut s = Session::new(plain());
    let deadline = s.client.poll_timeout().unwrap();
    let greeting = b"220 mx.example.org ESMTP but very very slowly";
    for b in greeting.iter() {
        s.now += Duration::from_secs(1);
        s.client.receive(s.now, std::slice::from_ref(b));
        s.client.handle_timeout(s.now);
        s.drain();
        assert_eq!(
            s.client.poll_timeout().unwrap_or(deadline),
            deadline,
            "partial input is not progress"
        );
        if s.client.is_closed() {
            break;
        }
    }
    assert!(s.client.is_closed());
    assert_eq!(
        s.closed_error().unwrap().unwrap().kind(),
        &ErrorKind::Timeout
    );
    assert!(s.now - s.start <= Config::default().timeouts.greeting + Duration::from_secs(1));
}

#[test]
fn the_overall_deadline_caps_the_session() {
    let mut cfg = plain();
    cfg.timeouts.overall = Some(Duration::from_secs(3));
    let mut s = Session::new(cfg);
    assert_eq!(s.fire_deadline(), Duration::from_secs(3));
    assert_eq!(
        s.closed_error().unwrap().unwrap().kind(),
        &ErrorKind::Timeout
    );
}

#[test]
fn the_data_block_deadline_moves_with_progress() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@x.org", &["b@x.org"]))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    let block = Config::default().timeouts.data_block;
    for _ in 0..5 {
        s.now += block - Duration::from_secs(1);
        s.client.handle_timeout(s.now);
        assert!(!s.client.is_closed());
        s.client.write_body(b"more body\r\n").unwrap();
        s.drain();
    }
    send_body(&mut s, b"");
    s.server(b"250 ok\r\n");
    assert_eq!(s.report().unwrap().outcome, Outcome::Accepted);
}

// ----- LMTP -----

#[test]
fn lmtp_reports_one_verdict_per_accepted_recipient() {
    let mut cfg = plain();
    cfg.protocol = Protocol::Lmtp;
    let mut s = Session::new(cfg);
    s.server(b"220 lmtp ready\r\n");
    assert_eq!(s.sent(), "LHLO localhost\r\n");
    s.server(b"250-lmtp\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n");
    s.client
        .send_mail(envelope(
            "a@x.org",
            &["one@x.org", "nobody@x.org", "two@x.org", "full@x.org"],
        ))
        .unwrap();
    s.drain();
    s.sent();
    s.server(b"250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    send_body(&mut s, b"hi\r\n");
    s.server(b"250 2.0.0 <one@x.org> saved\r\n250 2.0.0 <two@x.org> saved\r\n");
    assert!(s.report().is_none(), "one verdict still owed");
    s.server(b"452 4.2.2 <full@x.org> mailbox full\r\n");
    let r = s.report().unwrap();
    assert_eq!(r.outcome, Outcome::PartiallyAccepted);
    let accepted: Vec<bool> = r.recipients.iter().map(|x| x.accepted).collect();
    assert_eq!(accepted, [true, false, true, false]);
    assert_eq!(r.recipients[3].reply().unwrap().code().get(), 452);
    assert_eq!(r.recipients[1].reply().unwrap().code().get(), 550);
    assert!(
        r.recipients[2]
            .data_reply
            .as_ref()
            .unwrap()
            .message()
            .contains("two@x.org")
    );
}

#[test]
fn lmtp_with_chunking() {
    let mut cfg = plain();
    cfg.protocol = Protocol::Lmtp;
    let mut s = Session::new(cfg);
    s.server(b"220 lmtp\r\n");
    s.server(b"250-lmtp\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    s.client
        .send_mail(envelope("a@x.org", &["one@x.org", "two@x.org"]))
        .unwrap();
    s.client.write_body(b"x").unwrap();
    s.client.finish_body().unwrap();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n250 ok\r\n250 one\r\n");
    assert!(s.report().is_none());
    s.server(b"250 two\r\n");
    assert_eq!(s.report().unwrap().outcome, Outcome::Accepted);
}

// ----- malformed and oversize input -----

#[test]
fn oversize_line_closes_without_buffering() {
    let mut s = Session::new(plain());
    let chunk = vec![b'2'; 1024];
    for _ in 0..64 {
        s.server(&chunk);
        if s.client.is_closed() {
            break;
        }
    }
    let e = s.closed_error().unwrap().unwrap();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Reply(smtp_proto::ReplyError::LineTooLong { .. })
        ),
        "{e:?}"
    );
}

#[test]
fn endless_multiline_reply_is_capped() {
    let mut s = Session::new(plain());
    s.server(b"220 mx\r\n");
    for _ in 0..10_000 {
        s.server(b"250-X-EXTENSION-LINE\r\n");
        if s.client.is_closed() {
            break;
        }
    }
    let e = s.closed_error().unwrap().unwrap();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Reply(smtp_proto::ReplyError::TooManyLines { .. })
        ),
        "{e:?}"
    );
    assert_eq!(e.stage(), Stage::Ehlo);
}

#[test]
fn malformed_and_garbage_replies() {
    for bad in [
        &b"hello there\r\n"[..],
        b"2500 x\r\n",
        b"099 x\r\n",
        b"220-a\r\n250 b\r\n",
        b"\xff\xfe\r\n",
    ] {
        let mut s = Session::new(plain());
        s.server(bad);
        let e = s.closed_error().unwrap().unwrap();
        assert!(matches!(e.kind(), ErrorKind::Reply(_)), "{bad:?}: {e:?}");
        assert_eq!(s.closed_count(), 1);
    }
}

#[test]
fn bare_lf_and_non_utf8_replies_are_tolerated() {
    let mut s = Session::new(plain());
    s.server(b"220 mx \xe9t\xe9\n");
    s.server(b"250-mx\n250 PIPELINING\n");
    assert!(s.events.iter().any(|e| matches!(e, Event::Ready { .. })));
}

// ----- usage errors -----

#[test]
fn usage_errors_leave_the_machine_unchanged() {
    let mut s = Session::new(plain());
    assert_eq!(
        s.client.send_mail(envelope("a@x.org", &["b@x.org"])),
        Err(UsageError::NotReady)
    );
    assert_eq!(s.client.write_body(b"x"), Err(UsageError::NoBodyExpected));
    let mut s = Session::ready(plain(), b"250-mx\r\n250 SIZE 1000\r\n");
    let e = s
        .client
        .send_mail(envelope("a@x.org", &["b@x.org"]).with_size(5000))
        .unwrap_err();
    assert_eq!(
        e,
        UsageError::MessageTooLarge {
            size: 5000,
            limit: 1000
        }
    );
    assert!(e.to_string().contains("at most 1000 bytes"));
    let e = s
        .client
        .send_mail(envelope("a@x.org", &["jos\u{e9}@x.org"]))
        .unwrap_err();
    assert!(matches!(e, UsageError::Smtputf8Unsupported { .. }));
    assert_eq!(
        s.client
            .send_mail(smtp_proto::Envelope::new(smtp_proto::ReversePath::Null, [])),
        Err(UsageError::NoRecipients)
    );
    assert_eq!(s.sent(), "", "nothing was sent");
    s.client
        .send_mail(envelope("a@x.org", &["b@x.org"]).with_size(500))
        .unwrap();
    s.drain();
    assert_eq!(s.sent(), "MAIL FROM:<a@x.org> SIZE=500\r\n");
    assert_eq!(
        s.client.send_mail(envelope("a@x.org", &["b@x.org"])),
        Err(UsageError::TransactionInProgress)
    );
}

#[test]
fn smtputf8_is_added_when_needed_and_offered() {
    let mut s = Session::ready(plain(), b"250-mx\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n");
    s.client
        .send_mail(envelope("a@x.org", &["jos\u{e9}@x.org"]))
        .unwrap();
    s.drain();
    assert_eq!(s.sent(), "MAIL FROM:<a@x.org> SMTPUTF8\r\n");
}

#[test]
fn quit_mid_body_closes_without_sending_quit_as_data() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@x.org", &["b@x.org"]))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    s.client.write_body(b"half").unwrap();
    s.drain();
    s.sent();
    s.client.quit();
    s.drain();
    assert_eq!(s.sent(), "");
    assert_eq!(s.report().unwrap().outcome, Outcome::NotSent);
    assert_eq!(s.closed_error(), Some(None));
}

#[test]
fn nothing_after_closed() {
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.eof();
    assert_eq!(s.closed_count(), 1);
    s.server(b"250 more\r\n");
    s.eof();
    s.advance(Duration::from_secs(3600));
    s.client.quit();
    s.drain();
    assert_eq!(s.closed_count(), 1);
    assert_eq!(s.client.poll_timeout(), None);
    assert_eq!(
        s.client.send_mail(envelope("a@x.org", &["b@x.org"])),
        Err(UsageError::Closed)
    );
}

#[test]
fn noop_reply_is_an_event() {
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.client.noop().unwrap();
    s.drain();
    assert_eq!(s.sent(), "NOOP\r\n");
    s.server(b"250 2.0.0 ok\r\n");
    assert!(
        s.events
            .iter()
            .any(|e| matches!(e, Event::NoopReply { reply } if reply.code().get() == 250))
    );
    assert!(s.client.is_idle());
}

#[test]
fn enhanced_status_codes_are_explained_in_errors() {
    let mut s = auth_session(Credentials::password("alice", "wrong"), "PLAIN");
    s.server(b"535 5.7.8 Error: authentication failed\r\n");
    let text = s.closed_error().unwrap().unwrap().to_string();
    assert!(
        text.contains(
            "535 5.7.8 Error: authentication failed (authentication credentials invalid)"
        ),
        "{text}"
    );
    let e = smtp_proto::Reply::new(
        smtp_proto::ReplyCode::new(550).unwrap(),
        &[b"5.1.1 no such user"],
    );
    assert_eq!(
        e.enhanced().unwrap().meaning(),
        Some("bad destination mailbox address")
    );
    let e = smtp_proto::Reply::new(smtp_proto::ReplyCode::new(550).unwrap(), &[b"5.9.9 what"]);
    assert_eq!(e.enhanced().unwrap().meaning(), None);
}

// ----- SCRAM -----

mod scram_server {
    //! The server side of SCRAM-SHA-256, written from RFC 5802 §3 for the tests.
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    /// Returns (proof the client must send, server signature) for an auth message.
    pub(crate) fn expected(
        password: &[u8],
        salt: &[u8],
        iterations: u32,
        auth_message: &str,
    ) -> (Vec<u8>, Vec<u8>) {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored = Sha256::digest(&client_key);
        let sig = hmac(&stored, auth_message.as_bytes());
        let proof = client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect();
        (
            proof,
            hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes()),
        )
    }
}

fn scram_session(binding: Option<Vec<u8>>, mechs: &str) -> Session {
    let mut cfg = Config::default();
    cfg.tls = TlsPolicy::Implicit;
    cfg.credentials = Some(Credentials::password("alice", "pencil"));
    cfg.sasl_random = Some([7; 18]);
    let mut s = Session::new(cfg);
    s.client
        .tls_established_with_binding(s.now, binding)
        .unwrap();
    s.drain();
    s.server(b"220 mx\r\n");
    s.sent();
    s.server(format!("250-mx\r\n250 AUTH {mechs}\r\n").as_bytes());
    s
}

/// Runs the server side; returns what the client finally sent after the server signature.
fn scram_exchange(s: &mut Session, gs2: &str, cbind: &[u8], forge: bool) {
    let line = s.sent();
    let b64 = line.trim_end().rsplit(' ').next().unwrap();
    let client_first = String::from_utf8(B64.decode(b64).unwrap()).unwrap();
    let nonce = B64.encode([7u8; 18]).trim_end_matches('=').to_owned();
    assert_eq!(client_first, format!("{gs2}n=alice,r={nonce}"));
    let bare = client_first.strip_prefix(gs2).unwrap();
    let server_first = format!("r={nonce}SERVERNONCE,s={},i=4096", B64.encode(b"salt1234"));
    s.server(format!("334 {}\r\n", B64.encode(&server_first)).as_bytes());
    let client_final = String::from_utf8(B64.decode(s.sent().trim_end()).unwrap()).unwrap();
    let mut c = gs2.as_bytes().to_vec();
    c.extend_from_slice(cbind);
    let without_proof = format!("c={},r={nonce}SERVERNONCE", B64.encode(&c));
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let (proof, signature) = scram_server::expected(b"pencil", b"salt1234", 4096, &auth_message);
    assert_eq!(
        client_final,
        format!("{without_proof},p={}", B64.encode(proof)),
        "the proof verifies"
    );
    let signature = if forge { vec![0; 32] } else { signature };
    s.server(
        format!(
            "334 {}\r\n",
            B64.encode(format!("v={}", B64.encode(signature)))
        )
        .as_bytes(),
    );
}

#[test]
fn scram_sha_256_is_preferred_and_verifies_the_server() {
    let mut s = scram_session(None, "PLAIN CRAM-MD5 SCRAM-SHA-256");
    scram_exchange(&mut s, "n,,", b"", false);
    assert_eq!(
        s.sent(),
        "\r\n",
        "empty response after a verified server signature"
    );
    s.server(b"235 2.7.0 ok\r\n");
    assert!(s.client.is_authenticated());
}

#[test]
fn scram_plus_binds_to_the_tls_session() {
    let exporter = vec![0xAB; 32];
    let mut s = scram_session(Some(exporter.clone()), "SCRAM-SHA-256 SCRAM-SHA-256-PLUS");
    scram_exchange(&mut s, "p=tls-exporter,,", &exporter, false);
    s.server(b"235 2.7.0 ok\r\n");
    assert!(s.client.is_authenticated());
}

#[test]
fn scram_says_y_when_it_could_bind_but_the_server_offers_no_plus() {
    let mut s = scram_session(Some(vec![1; 32]), "SCRAM-SHA-256");
    scram_exchange(&mut s, "y,,", b"", false);
    s.server(b"235 ok\r\n");
    assert!(s.client.is_authenticated());
}

#[test]
fn scram_impostor_server_is_refused_even_if_it_says_235() {
    let mut s = scram_session(None, "SCRAM-SHA-256");
    scram_exchange(&mut s, "n,,", b"", true);
    assert_eq!(
        s.closed_error().unwrap().unwrap().kind(),
        &ErrorKind::AuthServerNotVerified
    );

    let mut s = scram_session(None, "SCRAM-SHA-256");
    s.sent();
    let nonce = B64.encode([7u8; 18]).trim_end_matches('=').to_owned();
    let server_first = format!("r={nonce}X,s={},i=4096", B64.encode(b"salt"));
    s.server(format!("334 {}\r\n", B64.encode(server_first)).as_bytes());
    s.server(b"235 2.7.0 ok without proving anything\r\n");
    assert_eq!(
        s.closed_error().unwrap().unwrap().kind(),
        &ErrorKind::AuthServerNotVerified
    );
    assert!(!s.client.is_authenticated());
}

#[test]
fn scram_is_not_used_without_random_bytes() {
    let mut cfg = plain();
    cfg.credentials = Some(Credentials::password("alice", "pencil"));
    cfg.allow_insecure_auth = true;
    let mut s = Session::new(cfg);
    s.server(b"220 mx\r\n");
    s.server(b"250-mx\r\n250 AUTH SCRAM-SHA-256 PLAIN\r\n");
    assert!(
        s.sent()
            .ends_with(&format!("AUTH PLAIN {}\r\n", B64.encode("\0alice\0pencil")))
    );
}

// ----- LIMITS and "too many recipients" -----

#[test]
fn rcptmax_limits_one_transaction_and_reports_the_rest_for_another() {
    let mut s = Session::ready(
        plain(),
        b"250-mx\r\n250-PIPELINING\r\n250 LIMITS RCPTMAX=2 MAILMAX=2\r\n",
    );
    s.client
        .send_mail(envelope("a@x.org", &["1@x.org", "2@x.org", "3@x.org"]))
        .unwrap();
    s.drain();
    assert_eq!(
        s.sent(),
        "MAIL FROM:<a@x.org>\r\nRCPT TO:<1@x.org>\r\nRCPT TO:<2@x.org>\r\nDATA\r\n"
    );
    s.server(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    send_body(&mut s, b"x\r\n");
    s.server(b"250 queued\r\n");
    let r = s.report().unwrap();
    assert_eq!(r.outcome, Outcome::PartiallyAccepted);
    let retry: Vec<bool> = r.recipients.iter().map(|x| x.retry_separately).collect();
    assert_eq!(retry, [false, false, true]);
    assert!(r.recipients[2].rcpt_reply.is_none(), "not tried");
    s.take_events();
    // MAILMAX=2: a second transaction is fine, a third needs a new connection.
    s.client
        .send_mail(envelope("a@x.org", &["3@x.org"]))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    send_body(&mut s, b"x\r\n");
    s.server(b"250 queued\r\n");
    assert_eq!(
        s.client.send_mail(envelope("a@x.org", &["4@x.org"])),
        Err(UsageError::MailMaxReached { limit: 2 })
    );
}

#[test]
fn too_many_recipients_without_pipelining_stops_and_defers_the_rest() {
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.client
        .send_mail(envelope("a@x.org", &["1@x.org", "2@x.org", "3@x.org"]))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n");
    s.server(b"250 ok\r\n");
    s.server(b"452 4.5.3 Too many recipients\r\n");
    assert_eq!(
        s.sent(),
        "MAIL FROM:<a@x.org>\r\nRCPT TO:<1@x.org>\r\nRCPT TO:<2@x.org>\r\nDATA\r\n"
    );
    s.server(b"354 go\r\n");
    send_body(&mut s, b"x\r\n");
    s.server(b"250 ok\r\n");
    let r = s.report().unwrap();
    let retry: Vec<bool> = r.recipients.iter().map(|x| x.retry_separately).collect();
    assert_eq!(retry, [false, true, true]);
    assert_eq!(r.outcome, Outcome::PartiallyAccepted);
}

#[test]
fn legacy_552_too_many_recipients_is_retried_but_a_mailbox_full_is_not() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@x.org", &["1@x.org", "2@x.org", "3@x.org"]))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n552 5.5.3 too many recipients\r\n452 4.2.2 mailbox full\r\n354 go\r\n");
    send_body(&mut s, b"x\r\n");
    s.server(b"250 ok\r\n");
    let r = s.report().unwrap();
    let retry: Vec<bool> = r.recipients.iter().map(|x| x.retry_separately).collect();
    assert_eq!(retry, [false, true, false]);
}

#[test]
fn a_message_the_server_cannot_take_fails_before_anything_is_sent() {
    let mut s = Session::ready(plain(), b"250-mx\r\n250 PIPELINING\r\n");
    let e = s.client.send_mail(
        envelope("a@x.org", &["b@x.org"])
            .declare_body("Subject: x\r\n\r\ncaf\u{e9}\r\n".as_bytes()),
    );
    assert_eq!(e, Err(UsageError::EightBitMimeUnsupported));
    let e = s.client.send_mail(
        envelope("a@x.org", &["b@x.org"])
            .declare_body("Subject: caf\u{e9}\r\n\r\nx\r\n".as_bytes()),
    );
    assert!(
        matches!(e, Err(UsageError::Smtputf8Unsupported { .. })),
        "{e:?}"
    );
    let e = s
        .client
        .send_mail(envelope("a@x.org", &["b@x.org"]).declare_body(b"x\r\n\r\n\0"));
    assert_eq!(e, Err(UsageError::BinaryMimeUnsupported));
    assert_eq!(s.sent(), "");
    let mut s = Session::ready(plain(), b"250-mx\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
    s.client
        .send_mail(
            envelope("a@x.org", &["b@x.org"])
                .declare_body("Subject: caf\u{e9}\r\n\r\ncaf\u{e9}\r\n".as_bytes()),
        )
        .unwrap();
    s.drain();
    assert_eq!(s.sent(), "MAIL FROM:<a@x.org> BODY=8BITMIME SMTPUTF8\r\n");
}

#[test]
fn a_transient_refusal_of_mail_makes_the_report_transient() {
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.client
        .send_mail(envelope("a@x.org", &["b@x.org"]))
        .unwrap();
    s.drain();
    s.server(b"451 4.3.0 try again later\r\n");
    let r = s.report().unwrap();
    assert_eq!(r.outcome, Outcome::Rejected);
    assert!(r.is_transient());
}

#[test]
fn timeout_messages_read_well() {
    let mut s = Session::new(plain());
    s.fire_deadline();
    let text = s.closed_error().unwrap().unwrap().to_string();
    assert_eq!(text, "timed out waiting for the server's greeting");
}
