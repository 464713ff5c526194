//! Transactions back to back: the next transaction's MAIL, RCPT and DATA/BDAT pipelined behind the previous end of
//! data (RFC 2920 §3.1), byte transcripts with a fake clock.

mod common;

use common::*;
use smtp_proto::{Config, ErrorKind, Event, Outcome, Protocol, Stage, TransactionId, UsageError};

/// Writes the whole body and ends it (without draining).
fn write_all(s: &mut Session, body: &[u8]) {
    let n = s.client.write_body(body).unwrap();
    assert_eq!(n, body.len());
    s.client.finish_body().unwrap();
}

/// DATA: a first message to `b@example.net` through its `354` and `body` (the dot not handed out yet), then a
/// second one to `c@example.net` started behind it. Returns both ids.
fn data_first_then_second(s: &mut Session, body: &[u8]) -> (TransactionId, TransactionId) {
    let first = s
        .client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    write_all(s, body);
    let second = s
        .client
        .send_mail(envelope("a@example.org", &["c@example.net"]))
        .unwrap();
    (first, second)
}

/// CHUNKING: a first message to `to` with body `one\r\n`, then a second one to `c@example.net` with body
/// `two\r\n` behind it, nothing handed out yet. Returns both ids.
fn chunking_two(s: &mut Session, to: &str) -> (TransactionId, TransactionId) {
    let first = s
        .client
        .send_mail(envelope("a@example.org", &[to]))
        .unwrap();
    write_all(s, b"one\r\n");
    let second = s
        .client
        .send_mail(envelope("a@example.org", &["c@example.net"]))
        .unwrap();
    write_all(s, b"two\r\n");
    (first, second)
}

/// The reports so far, in order, as (id, outcome).
fn outcomes(s: &Session) -> Vec<(TransactionId, Outcome)> {
    s.events
        .iter()
        .filter_map(|e| match e {
            Event::TransactionComplete(r) => Some((r.id, r.outcome)),
            _ => None,
        })
        .collect()
}

fn ready_ids(s: &Session) -> Vec<TransactionId> {
    s.events
        .iter()
        .filter_map(|e| match e {
            Event::ReadyForBody { id } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn data_next_envelope_goes_out_with_the_final_dot() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    let first = s
        .client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    assert!(
        !s.client.accepts_mail(),
        "not before the end of the data is out"
    );
    assert_eq!(
        s.client
            .send_mail(envelope("a@example.org", &["c@example.net"])),
        Err(UsageError::TransactionInProgress)
    );
    s.drain();
    assert_eq!(
        s.sent(),
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
    );
    s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
    assert_eq!(ready_ids(&s), vec![first]);
    write_all(&mut s, b"one\r\n");
    assert!(s.client.accepts_mail());
    let second = s
        .client
        .send_mail(envelope("a@example.org", &["c@example.net"]))
        .unwrap();
    assert_ne!(first, second);
    assert!(!s.client.accepts_mail(), "at most two in progress");
    assert_eq!(
        s.client
            .send_mail(envelope("a@example.org", &["d@example.net"])),
        Err(UsageError::TransactionInProgress)
    );
    let writes = s.writes.len();
    s.drain();
    assert_eq!(s.writes.len(), writes + 1, "one write");
    assert_eq!(
        s.sent(),
        "one\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n",
        "no RSET between: the dot ends the first transaction"
    );
    // The first verdict and the second envelope's replies in one read.
    s.server(b"250 2.0.0 first queued\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    assert_eq!(outcomes(&s), vec![(first, Outcome::Accepted)]);
    assert_eq!(ready_ids(&s), vec![first, second]);
    let report_at = s
        .events
        .iter()
        .position(|e| matches!(e, Event::TransactionComplete(_)))
        .unwrap();
    let ready_at = s
        .events
        .iter()
        .rposition(|e| matches!(e, Event::ReadyForBody { .. }))
        .unwrap();
    assert!(report_at < ready_at, "the first verdict comes first");
    write_all(&mut s, b"two\r\n");
    s.drain();
    assert_eq!(s.sent(), "two\r\n.\r\n");
    s.server(b"250 2.0.0 second queued\r\n");
    assert_eq!(
        outcomes(&s),
        vec![(first, Outcome::Accepted), (second, Outcome::Accepted)]
    );
    assert!(s.client.is_idle());
    assert_eq!(s.sent(), "");
}

#[test]
fn a_refused_message_does_not_disturb_the_next_one() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    let (first, second) = data_first_then_second(&mut s, b"spam\r\n");
    s.drain();
    s.sent();
    s.server(b"554 5.7.1 rejected as spam\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    assert_eq!(outcomes(&s), vec![(first, Outcome::Rejected)]);
    let r = s.report().unwrap();
    assert_eq!(r.failure.as_ref().unwrap().0, Stage::DataTermination);
    assert_eq!(s.sent(), "", "no RSET: it would undo the second envelope");
    write_all(&mut s, b"ham\r\n");
    s.drain();
    s.server(b"250 ok\r\n");
    assert_eq!(
        outcomes(&s),
        vec![(first, Outcome::Rejected), (second, Outcome::Accepted)]
    );
    assert_eq!(s.sent(), "ham\r\n.\r\n");
    assert!(s.client.is_idle());
}

#[test]
fn chunking_messages_stream_without_waiting_and_rset_separates_them() {
    let mut s = Session::ready(plain(), EHLO_CHUNKING);
    let (first, second) = chunking_two(&mut s, "b@example.net");
    assert!(!s.client.accepts_mail(), "at most two in progress");
    let writes = s.writes.len();
    s.drain();
    assert_eq!(s.writes.len(), writes + 1, "both messages in one write");
    assert_eq!(
        s.sent(),
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 5 LAST\r\none\r\n\
         RSET\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<c@example.net>\r\nBDAT 5 LAST\r\ntwo\r\n"
    );
    assert_eq!(ready_ids(&s), vec![first, second]);
    // The first message's replies: the third may start now.
    s.server(b"250 ok\r\n250 ok\r\n250 2.0.0 one queued\r\n");
    assert_eq!(outcomes(&s), vec![(first, Outcome::Accepted)]);
    assert!(s.client.accepts_mail());
    let third = s
        .client
        .send_mail(envelope("a@example.org", &["d@example.net"]))
        .unwrap();
    write_all(&mut s, b"three\r\n");
    s.drain();
    assert_eq!(
        s.sent(),
        "RSET\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<d@example.net>\r\nBDAT 7 LAST\r\nthree\r\n"
    );
    s.server(b"250 reset\r\n250 ok\r\n250 ok\r\n250 2.0.0 two queued\r\n");
    s.server(b"250 reset\r\n250 ok\r\n250 ok\r\n250 2.0.0 three queued\r\n");
    assert_eq!(
        outcomes(&s),
        vec![
            (first, Outcome::Accepted),
            (second, Outcome::Accepted),
            (third, Outcome::Accepted)
        ]
    );
    assert!(s.client.is_idle());
    assert_eq!(s.sent(), "");
}

#[test]
fn chunking_refused_envelope_then_a_good_one() {
    let mut s = Session::ready(plain(), EHLO_CHUNKING);
    let (first, second) = chunking_two(&mut s, "nobody@example.net");
    s.drain();
    s.sent();
    // The server keeps the first MAIL after the refused BDAT; the RSET clears it before the second MAIL.
    s.server(b"250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n");
    assert_eq!(outcomes(&s), vec![(first, Outcome::Rejected)]);
    assert_eq!(
        s.sent(),
        "",
        "the RSET is already out, in front of the second MAIL"
    );
    s.server(b"250 2.0.0 reset\r\n250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n");
    assert_eq!(
        outcomes(&s),
        vec![(first, Outcome::Rejected), (second, Outcome::Accepted)]
    );
    assert!(s.client.is_idle());
}

#[test]
fn connection_lost_with_two_in_progress() {
    // DATA: the first is Unknown (its dot is out), the second NotSent (its body was never taken).
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    let (first, second) = data_first_then_second(&mut s, b"one\r\n");
    s.drain();
    s.eof();
    assert_eq!(
        outcomes(&s),
        vec![(first, Outcome::Unknown), (second, Outcome::NotSent)]
    );
    let e = s.closed_error().unwrap().unwrap();
    assert_eq!(e.kind(), &ErrorKind::ConnectionClosed);
    assert_eq!(e.stage(), Stage::DataTermination);

    // CHUNKING: both ends are out, so both are Unknown, never sent.
    let mut s = Session::ready(plain(), EHLO_CHUNKING);
    let (first, second) = chunking_two(&mut s, "b@example.net");
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n");
    s.eof();
    assert_eq!(
        outcomes(&s),
        vec![(first, Outcome::Unknown), (second, Outcome::Unknown)]
    );
}

#[test]
fn a_421_verdict_reports_both() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    let (first, second) = data_first_then_second(&mut s, b"one\r\n");
    s.drain();
    s.server(b"421 4.3.2 shutting down\r\n");
    assert_eq!(
        outcomes(&s),
        vec![(first, Outcome::Rejected), (second, Outcome::NotSent)]
    );
    let e = s.closed_error().unwrap().unwrap();
    assert_eq!(e.kind(), &ErrorKind::ServiceNotAvailable);
}

#[test]
fn a_verdict_before_the_dot_was_handed_out_is_refused() {
    let mut s = Session::ready(plain(), EHLO_PIPELINING);
    data_first_then_second(&mut s, b"one\r\n");
    // Nothing handed out yet: a reply now cannot answer the dot.
    s.client.receive(s.now, b"250 ok\r\n");
    s.drain();
    assert_eq!(
        s.report().unwrap().outcome,
        Outcome::Unknown,
        "never taken as delivered"
    );
    assert_eq!(
        s.closed_error().unwrap().unwrap().kind(),
        &ErrorKind::UnexpectedReply
    );
}

#[test]
fn without_pipelining_the_next_waits_for_the_verdict() {
    let mut s = Session::ready(plain(), EHLO_BASIC);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n");
    s.server(b"250 ok\r\n");
    s.server(b"354 go\r\n");
    write_all(&mut s, b"one\r\n");
    assert!(!s.client.accepts_mail());
    assert_eq!(
        s.client
            .send_mail(envelope("a@example.org", &["c@example.net"])),
        Err(UsageError::TransactionInProgress)
    );
    s.drain();
    s.server(b"250 ok\r\n");
    assert!(s.client.accepts_mail());
}

#[test]
fn quit_after_the_second_goes_behind_its_end() {
    let mut s = Session::ready(plain(), EHLO_CHUNKING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    write_all(&mut s, b"one\r\n");
    s.client
        .send_mail(envelope("a@example.org", &["c@example.net"]))
        .unwrap();
    s.client.quit_after_transaction();
    s.drain();
    assert!(!s.sent().contains("QUIT"), "not before the second's end");
    write_all(&mut s, b"two\r\n");
    s.drain();
    assert_eq!(s.sent(), "BDAT 5 LAST\r\ntwo\r\nQUIT\r\n");
    s.server(b"250 ok\r\n250 ok\r\n250 queued\r\n250 reset\r\n250 ok\r\n250 ok\r\n250 queued\r\n221 bye\r\n");
    assert_eq!(
        outcomes(&s).iter().map(|o| o.1).collect::<Vec<_>>(),
        vec![Outcome::Accepted, Outcome::Accepted]
    );
    assert_eq!(s.closed_error(), Some(None));
}

#[test]
fn lmtp_verdicts_per_recipient_then_the_next_transaction() {
    let mut config = plain();
    config.protocol = Protocol::Lmtp;
    let mut s = Session::new(config);
    s.server(b"220 lmtp ready\r\n");
    assert_eq!(s.sent(), "LHLO localhost\r\n");
    s.server(b"250-lmtp\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n");
    s.sent();
    let first = s
        .client
        .send_mail(envelope(
            "a@example.org",
            &["b@example.net", "c@example.net"],
        ))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    write_all(&mut s, b"one\r\n");
    let second = s
        .client
        .send_mail(envelope("a@example.org", &["d@example.net"]))
        .unwrap();
    s.drain();
    s.sent();
    // Two verdicts for the first (one per accepted recipient), then the second's envelope.
    s.server(b"250 2.0.0 b ok\r\n452 4.2.2 c over quota\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    assert_eq!(outcomes(&s), vec![(first, Outcome::PartiallyAccepted)]);
    write_all(&mut s, b"two\r\n");
    s.drain();
    s.server(b"250 2.0.0 d ok\r\n");
    assert_eq!(
        outcomes(&s),
        vec![
            (first, Outcome::PartiallyAccepted),
            (second, Outcome::Accepted)
        ]
    );
}

#[test]
fn config_without_pipelining_is_respected() {
    let mut config: Config = plain();
    config.pipelining = false;
    let mut s = Session::ready(config, EHLO_CHUNKING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    write_all(&mut s, b"one\r\n");
    s.drain();
    s.server(b"250 ok\r\n");
    s.server(b"250 ok\r\n");
    assert!(s.client.awaiting_verdict());
    assert!(!s.client.accepts_mail(), "PIPELINING is off in the config");
    s.server(b"250 queued\r\n");
    assert!(s.client.accepts_mail());
}
