//! Minimal regression tests for core bugs found by fuzzing (`fuzz/`) and the proptest state machine.
//! Each test names the target that found the bug and what was wrong.

mod common;

use common::*;
use smtp_proto::{Outcome, Stage};

/// Found by the `session` target (seed `fault-wrong-codes`): with PIPELINING and CHUNKING, MAIL, RCPT and
/// `BDAT <n> LAST` go out in one write. When the server refused MAIL and still answered the pipelined `BDAT LAST`
/// with 250, the report said `Accepted` (with `failure: Mail` next to it). A transaction whose MAIL was refused
/// delivered nothing (RFC 5321 §4.1.1.2, RFC 3030 §2): it must be `Rejected`.
#[test]
fn pipelined_bdat_after_a_refused_mail_is_not_accepted() {
    for mail_reply in [
        &b"550 5.1.0 sender rejected\r\n"[..],
        b"354 not a MAIL reply\r\n",
        b"451 4.3.0 later\r\n",
    ] {
        let mut s = Session::ready(plain(), EHLO_CHUNKING);
        s.client
            .send_mail(envelope("a@example.org", &["b@example.net"]))
            .unwrap();
        assert_eq!(s.client.write_body(b"hi\r\n").unwrap(), 4);
        s.client.finish_body().unwrap();
        s.drain();
        assert_eq!(
            s.sent(),
            "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 4 LAST\r\nhi\r\n"
        );
        s.server(&[mail_reply, b"250 2.1.5 ok\r\n250 2.0.0 queued\r\n"].concat());
        let r = s.report().expect("a report");
        assert_eq!(r.outcome, Outcome::Rejected, "{r:?}");
        assert_eq!(r.accepted_count(), 0, "{r:?}");
        assert!(!r.recipients[0].accepted);
        assert_eq!(r.failure.as_ref().map(|f| f.0), Some(Stage::Mail));
    }
}

/// Same shape with a refused non-last BDAT chunk: RFC 3030 §2 says the transaction failed; a 250 to the `LAST`
/// chunk that was already in flight does not make it accepted.
#[test]
fn pipelined_bdat_last_after_a_refused_chunk_is_not_accepted() {
    let mut cfg = plain();
    cfg.max_buffered_body = 8;
    let mut s = Session::ready(cfg, EHLO_CHUNKING);
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.drain();
    assert_eq!(s.client.write_body(b"0123456789").unwrap(), 8);
    s.drain();
    assert_eq!(s.client.write_body(b"89").unwrap(), 2);
    s.client.finish_body().unwrap();
    s.drain();
    let sent = s.sent();
    assert!(
        sent.contains("BDAT 8\r\n01234567BDAT 2 LAST\r\n89"),
        "{sent}"
    );
    s.server(b"250 ok\r\n250 ok\r\n552 5.3.4 chunk too big\r\n250 2.0.0 queued\r\n");
    let r = s.report().expect("a report");
    assert_eq!(r.outcome, Outcome::Rejected, "{r:?}");
    assert_eq!(r.accepted_count(), 0, "{r:?}");
    assert_eq!(r.failure.as_ref().map(|f| f.0), Some(Stage::DataBlock));
}

/// Found by the `command` target: validating an address literal sliced its text at byte 5 (`inner[..5]`) to look
/// for `IPv6:`, which panics when a multi-byte character straddles that byte. `Address::new` and `ClientId::new`
/// are the validating constructors for user input (a CLI's `--from`, a config file): they must return an error.
#[test]
fn address_literal_with_multibyte_text_is_an_error_not_a_panic() {
    use smtp_proto::{Address, AddressError, ClientId};
    for literal in [
        "[abcd\u{20ac}]",
        "[;\u{fffd}\u{fffd}..21]",
        "[IPv6\u{e9}:1]",
        "[\u{e9}\u{e9}\u{e9}]",
    ] {
        let id = std::panic::catch_unwind(|| ClientId::new(literal))
            .expect("ClientId::new must not panic");
        assert!(
            matches!(id, Err(AddressError::InvalidDomain { .. })),
            "{literal}: {id:?}"
        );
        let address = format!("user@{literal}");
        let a = std::panic::catch_unwind(|| Address::new(&address))
            .expect("Address::new must not panic");
        assert!(
            matches!(a, Err(AddressError::InvalidDomain { .. })),
            "{address}: {a:?}"
        );
    }
    // The valid forms still parse, in any case of the tag.
    assert!(ClientId::new("[IPv6:2001:db8::1]").is_ok());
    assert!(Address::new("user@[ipv6:::1]").is_ok());
}

/// Found by the `session` target: without PIPELINING, `BDAT <n> LAST` is queued inside `receive` when the reply to
/// the previous chunk arrives. A `250` that came in the same read answers a command the server cannot have
/// received (it is still in the client's output buffer); the client took it as the verdict and reported the
/// message `Accepted` — and if the session then closed, the last chunk was never even written. A verdict must come
/// after the end of the data was handed out: a premature one is a protocol error, and the outcome stays unknown.
#[test]
fn a_verdict_before_the_end_of_data_was_handed_out_is_not_accepted() {
    use smtp_proto::{ErrorKind, Outcome};
    let mut cfg = plain();
    cfg.max_buffered_body = 8;
    let mut s = Session::ready(
        cfg,
        b"250-mx.example.org\r\n250-CHUNKING\r\n250 8BITMIME\r\n",
    );
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.drain();
    s.server(b"250 2.1.0 ok\r\n");
    s.server(b"250 2.1.5 ok\r\n");
    assert_eq!(s.client.write_body(b"0123456789").unwrap(), 8);
    s.drain();
    assert_eq!(s.client.write_body(b"89").unwrap(), 2);
    s.client.finish_body().unwrap();
    s.drain();
    let sent = s.sent();
    assert!(sent.ends_with("BDAT 8\r\n01234567"), "{sent}");
    // The chunk's reply and, in the same read, a "verdict" for a BDAT LAST that is not on the wire yet.
    s.server(b"250 2.0.0 chunk ok\r\n250 2.0.0 queued\r\n");
    let r = s.report().expect("a report");
    assert!(!r.outcome.is_delivered(), "{r:?}");
    assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
    let error = s.closed_error().expect("closed").expect("an error");
    assert_eq!(*error.kind(), ErrorKind::UnexpectedReply, "{error:?}");
    // The same two replies in two reads are a normal exchange.
    let mut cfg = plain();
    cfg.max_buffered_body = 8;
    let mut s = Session::ready(
        cfg,
        b"250-mx.example.org\r\n250-CHUNKING\r\n250 8BITMIME\r\n",
    );
    s.client
        .send_mail(envelope("a@example.org", &["b@example.net"]))
        .unwrap();
    s.drain();
    s.server(b"250 2.1.0 ok\r\n");
    s.server(b"250 2.1.5 ok\r\n");
    s.client.write_body(b"01234567").unwrap();
    s.drain();
    s.client.write_body(b"89").unwrap();
    s.client.finish_body().unwrap();
    s.drain();
    s.server(b"250 2.0.0 chunk ok\r\n");
    assert!(s.sent().ends_with("BDAT 2 LAST\r\n89"));
    s.server(b"250 2.0.0 queued\r\n");
    assert_eq!(s.report().expect("a report").outcome, Outcome::Accepted);
}

/// An LMTP session with two accepted recipients, body sent, waiting for two verdicts.
fn lmtp_awaiting_two_verdicts() -> Session {
    let mut cfg = plain();
    cfg.protocol = smtp_proto::Protocol::Lmtp;
    let mut s = Session::new(cfg);
    s.server(b"220 lmtp ready\r\n");
    s.server(b"250-lmtp\r\n250 PIPELINING\r\n");
    s.client
        .send_mail(envelope(
            "a@x.org",
            &["one@x.org", "nobody@x.org", "two@x.org"],
        ))
        .unwrap();
    s.drain();
    s.server(b"250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n250 ok\r\n354 go\r\n");
    s.client.write_body(b"hi\r\n").unwrap();
    s.client.finish_body().unwrap();
    s.drain();
    s
}

/// Found by the `session` target: LMTP sends one verdict per accepted recipient (RFC 2033 §4.2). When the session
/// ended after some verdicts but before the others, the report said `Rejected` (with no failure and no error)
/// although the missing recipients' fate is unknown: an LMTP delivery agent would bounce mail that may have been
/// delivered. Missing verdicts make the outcome `Unknown`, or `PartiallyAccepted` when some recipient already got a
/// positive verdict; the session error is kept in the report either way.
#[test]
fn lmtp_verdicts_cut_short_are_not_a_rejection() {
    use smtp_proto::{ErrorKind, Outcome};
    // A negative verdict for the first, then the connection drops.
    let mut s = lmtp_awaiting_two_verdicts();
    s.server(b"552 5.2.2 <one@x.org> mailbox full\r\n");
    assert!(s.report().is_none(), "one verdict still owed");
    s.eof();
    let r = s.report().expect("a report");
    assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
    assert_eq!(r.accepted_count(), 0);
    assert_eq!(
        r.error.as_ref().map(|e| e.kind().clone()),
        Some(ErrorKind::ConnectionClosed),
        "{r:?}"
    );
    assert_eq!(r.recipients[0].reply().map(|x| x.code().get()), Some(552));

    // A positive verdict for the first, then the deadline passes: delivered to one, unknown for the other.
    let mut s = lmtp_awaiting_two_verdicts();
    s.server(b"250 2.0.0 <one@x.org> saved\r\n");
    s.fire_deadline();
    let r = s.report().expect("a report");
    assert_eq!(r.outcome, Outcome::PartiallyAccepted, "{r:?}");
    let accepted: Vec<bool> = r.recipients.iter().map(|x| x.accepted).collect();
    assert_eq!(accepted, [true, false, false]);
    assert_eq!(
        r.error.as_ref().map(|e| e.kind().clone()),
        Some(ErrorKind::Timeout),
        "{r:?}"
    );

    // Every verdict negative: rejected, with the failure recorded.
    let mut s = lmtp_awaiting_two_verdicts();
    s.server(b"552 5.2.2 <one@x.org> mailbox full\r\n550 5.1.1 <two@x.org> gone\r\n");
    let r = s.report().expect("a report");
    assert_eq!(r.outcome, Outcome::Rejected, "{r:?}");
    assert_eq!(
        r.failure.as_ref().map(|f| f.0),
        Some(Stage::DataTermination),
        "{r:?}"
    );
}

/// Found by the `command` target: `OriginalRecipient::new` accepted any RFC 5322 atom as the ORCPT address type,
/// `=` included, and the type is written as is: `ORCPT=rfc822=;...` is not an `esmtp-value` (RFC 5321 §4.1.2
/// excludes `=`), so the command line was malformed. The constructor must refuse such a type.
#[test]
fn orcpt_address_type_with_equals_is_refused() {
    use smtp_proto::command::Command;
    use smtp_proto::path::{OriginalRecipient, ParameterError, RcptParameters};
    for addr_type in ["rfc822=", "rfc8b=", "="] {
        assert_eq!(
            OriginalRecipient::new(addr_type, "user@example.com"),
            Err(ParameterError::InvalidAddressType),
            "{addr_type}"
        );
    }
    // The registered types, and other atoms, still work and encode as one valid parameter.
    for addr_type in ["rfc822", "utf-8", "x-private+type"] {
        let orcpt = OriginalRecipient::new(addr_type, "user@example.com").expect(addr_type);
        let params = RcptParameters {
            orcpt: Some(orcpt),
            ..RcptParameters::default()
        };
        let to = smtp_proto::Address::new("user@example.com").unwrap();
        let mut line = Vec::new();
        Command::Rcpt {
            to: &to,
            params: &params,
        }
        .encode(&mut line);
        let text = String::from_utf8(line).unwrap();
        let value = text.trim_end().split_once(" ORCPT=").unwrap().1;
        assert!(
            value.bytes().all(|b| matches!(b, 33..=60 | 62..=126)),
            "{text:?}"
        );
    }
}
