//! `Client::quit_after_transaction`: QUIT pipelined behind the end of the data (RFC 2920 §3.1), byte transcripts
//! with a fake clock.

mod common;

use common::*;
use smtp_proto::{ErrorKind, Event, Outcome, Stage, UsageError};

/// Writes the whole body and ends it.
fn send_body(s: &mut Session, body: &[u8]) {
    let n = s.client.write_body(body).unwrap();
    assert_eq!(n, body.len());
    s.client.finish_body().unwrap();
    s.drain();
}

/// The index of the first event matching `f`.
fn position(s: &Session, f: impl Fn(&Event) -> bool) -> usize {
    s.events
        .iter()
        .position(f)
        .expect("the event must be there")
}

/// The verdict comes before the close, and the close carries no error.
fn assert_report_then_clean_close(s: &Session) {
    let report = position(s, |e| matches!(e, Event::TransactionComplete(_)));
    let closed = position(s, |e| matches!(e, Event::Closed { .. }));
    assert!(report < closed, "the verdict is reported before the close");
    assert_eq!(s.closed_error(), Some(None));
    assert_eq!(s.closed_count(), 1);
}

#[test]
fn data_quit_goes_out_with_the_final_dot() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    s.drain();
    assert_eq!(
        s.sent(),
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n",
        "QUIT waits for the end of the data"
    );
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    assert!(s.ready_for_body());
    let writes = s.writes.len();
    send_body(&mut s, b"Subject: x\r\n\r\nhi\r\n");
    assert_eq!(
        s.writes.len(),
        writes + 1,
        "body, dot and QUIT in one write"
    );
    assert_eq!(s.sent(), "Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n");
    assert!(s.report().is_none());
    s.server(b"250 2.0.0 queued\r\n");
    let r = s.report().expect("the verdict is reported at once");
    assert_eq!(r.outcome, Outcome::Accepted);
    assert!(s.closed_error().is_none(), "still waiting for the 221");
    assert!(!s.client.is_idle());
    assert_eq!(s.sent(), "", "no RSET, no second QUIT");
    s.server(b"221 bye\r\n");
    assert_report_then_clean_close(&s);
    assert_eq!(s.sent(), "");
}

#[test]
fn chunking_envelope_body_and_quit_in_one_write() {
    let mut s = Session::ready(plain(), EHLO_CHUNKING);
    let writes = s.writes.len();
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    assert!(
        s.client
            .poll_event()
            .is_some_and(|e| matches!(e, Event::ReadyForBody { .. })),
        "CHUNKING: the body may follow at once"
    );
    send_body(&mut s, b"hi\r\n");
    assert_eq!(
        s.writes.len(),
        writes + 1,
        "one write for the whole message"
    );
    assert_eq!(
        s.sent(),
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 4 LAST\r\nhi\r\nQUIT\r\n"
    );
    // All the replies in one read.
    s.server(b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n221 bye\r\n");
    assert_eq!(s.report().unwrap().outcome, Outcome::Accepted);
    assert_report_then_clean_close(&s);
}

#[test]
fn lost_connection_after_the_dot_is_unknown_never_sent() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    send_body(&mut s, b"hi\r\n");
    assert!(s.sent().ends_with(".\r\nQUIT\r\n"));
    s.eof();
    let r = s.report().unwrap();
    assert_eq!(r.outcome, Outcome::Unknown);
    assert!(!r.outcome.is_delivered());
    let e = s
        .closed_error()
        .unwrap()
        .expect("a lost connection is an error");
    assert_eq!(e.kind(), &ErrorKind::ConnectionClosed);
    assert_eq!(e.stage(), Stage::DataTermination);
}

#[test]
fn deadline_after_the_dot_is_unknown() {
    let mut s = Session::ready(plain(), EHLO_CHUNKING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    send_body(&mut s, b"hi\r\n");
    s.server(b"250 ok\r\n250 ok\r\n");
    s.fire_deadline();
    assert_eq!(s.report().unwrap().outcome, Outcome::Unknown);
    let e = s.closed_error().unwrap().expect("a timeout is an error");
    assert_eq!(e.kind(), &ErrorKind::Timeout);
}

#[test]
fn close_instead_of_221_after_the_verdict_is_clean() {
    let mut s = Session::ready(plain(), EHLO_CHUNKING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    send_body(&mut s, b"hi\r\n");
    s.server(b"250 ok\r\n250 ok\r\n250 queued\r\n");
    assert_eq!(s.report().unwrap().outcome, Outcome::Accepted);
    s.eof();
    assert_report_then_clean_close(&s);
}

#[test]
fn missing_221_ends_quietly_at_the_quit_deadline() {
    let mut s = Session::ready(plain(), EHLO_CHUNKING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    send_body(&mut s, b"hi\r\n");
    s.server(b"250 ok\r\n250 ok\r\n250 queued\r\n");
    s.fire_deadline();
    assert_eq!(s.report().unwrap().outcome, Outcome::Accepted);
    assert_report_then_clean_close(&s);
}

#[test]
fn without_pipelining_quit_follows_the_verdict() {
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    s.drain();
    assert_eq!(s.sent(), "MAIL FROM:<a@example.org>\r\n");
    s.server(b"250 ok\r\n");
    assert_eq!(s.sent(), "RCPT TO:<b@example.net>\r\n");
    s.server(b"250 ok\r\n");
    assert_eq!(s.sent(), "DATA\r\n");
    s.server(b"354 go\r\n");
    send_body(&mut s, b"hi\r\n");
    assert_eq!(
        s.sent(),
        "hi\r\n.\r\n",
        "no QUIT in the group without PIPELINING"
    );
    s.server(b"250 queued\r\n");
    assert_eq!(s.report().unwrap().outcome, Outcome::Accepted);
    assert_eq!(s.sent(), "QUIT\r\n");
    s.server(b"221 bye\r\n");
    assert_report_then_clean_close(&s);
}

#[test]
fn rejected_message_gets_quit_not_rset() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    s.drain();
    s.sent();
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    send_body(&mut s, b"hi\r\n");
    assert_eq!(s.sent(), "hi\r\n.\r\nQUIT\r\n");
    s.server(b"554 5.7.1 no\r\n221 bye\r\n");
    assert_eq!(s.report().unwrap().outcome, Outcome::Rejected);
    assert_eq!(s.sent(), "", "no RSET after QUIT");
    assert_report_then_clean_close(&s);
}

#[test]
fn envelope_refused_before_the_data_quits_instead_of_rset() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    s.drain();
    s.sent();
    s.server(b"550 no\r\n554 no valid recipients\r\n554 no valid recipients\r\n");
    assert_eq!(s.report().unwrap().outcome, Outcome::Rejected);
    assert_eq!(s.sent(), "QUIT\r\n");
    s.server(b"221 bye\r\n");
    assert_report_then_clean_close(&s);
}

#[test]
fn no_transaction_after_quit_was_asked() {
    let mut s = Session::ready(plain(), EHLO_CHUNKING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    send_body(&mut s, b"hi\r\n");
    s.server(b"250 ok\r\n250 ok\r\n250 queued\r\n");
    assert_eq!(
        s.client
            .send_mail(envelope("a@example.org", &["c@example.net"]))
            .unwrap_err(),
        UsageError::Closed
    );
    assert_eq!(s.client.noop().unwrap_err(), UsageError::Closed);
}

#[test]
fn without_a_transaction_it_is_quit() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client.quit_after_transaction();
    s.drain();
    assert_eq!(s.sent(), "QUIT\r\n");
    s.server(b"221 bye\r\n");
    assert_eq!(s.closed_error(), Some(None));
}

#[test]
fn replies_arriving_before_the_quit_was_handed_out_are_premature() {
    // The verdict and the 221 in the same read as the 354: the server cannot have seen the body yet.
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    s.client.write_body(b"hi\r\n").unwrap();
    s.client.finish_body().unwrap();
    // Not drained: the dot and QUIT are still in the machine.
    s.now += std::time::Duration::from_millis(1);
    s.client.receive(s.now, b"250 queued\r\n221 bye\r\n");
    s.drain();
    let r = s.report().unwrap();
    assert!(
        !r.outcome.is_delivered(),
        "a premature verdict is never taken"
    );
    assert!(s.closed_error().unwrap().is_some());
}
