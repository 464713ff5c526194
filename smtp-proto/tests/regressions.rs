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
    for mail_reply in [&b"550 5.1.0 sender rejected\r\n"[..], b"354 not a MAIL reply\r\n", b"451 4.3.0 later\r\n"] {
        let mut s = Session::ready(plain(), EHLO_CHUNKING);
        s.client.send_mail(envelope("a@example.org", &["b@example.net"])).unwrap();
        assert_eq!(s.client.write_body(b"hi\r\n").unwrap(), 4);
        s.client.finish_body().unwrap();
        s.drain();
        assert_eq!(s.sent(), "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 4 LAST\r\nhi\r\n");
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
    s.client.send_mail(envelope("a@example.org", &["b@example.net"])).unwrap();
    s.drain();
    assert_eq!(s.client.write_body(b"0123456789").unwrap(), 8);
    s.drain();
    assert_eq!(s.client.write_body(b"89").unwrap(), 2);
    s.client.finish_body().unwrap();
    s.drain();
    let sent = s.sent();
    assert!(sent.contains("BDAT 8\r\n01234567BDAT 2 LAST\r\n89"), "{sent}");
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
    for literal in ["[abcd\u{20ac}]", "[;\u{fffd}\u{fffd}..21]", "[IPv6\u{e9}:1]", "[\u{e9}\u{e9}\u{e9}]"] {
        let id = std::panic::catch_unwind(|| ClientId::new(literal)).expect("ClientId::new must not panic");
        assert!(matches!(id, Err(AddressError::InvalidDomain { .. })), "{literal}: {id:?}");
        let address = format!("user@{literal}");
        let a = std::panic::catch_unwind(|| Address::new(&address)).expect("Address::new must not panic");
        assert!(matches!(a, Err(AddressError::InvalidDomain { .. })), "{address}: {a:?}");
    }
    // The valid forms still parse, in any case of the tag.
    assert!(ClientId::new("[IPv6:2001:db8::1]").is_ok());
    assert!(Address::new("user@[ipv6:::1]").is_ok());
}
