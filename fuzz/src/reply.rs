//! Target `reply`: [`ReplyFramer`] and [`parse_reply`] on raw server bytes, in arbitrary splits.
//!
//! Input: a limits selector, up to 15 cut points, then the byte stream.
//!
//! Invariants:
//! - `buffered()` never exceeds the configured caps (`max_reply_len`, and each partial line below `max_line_len`);
//! - `Ok(None)` consumes the whole input, `Ok(Some)` consumes at least one byte;
//! - any split of the stream gives the same replies and the same error as one push (split invariance);
//! - the result matches the independent reference framer ([`reference::frame_replies`]) exactly: codes, texts,
//!   enhanced codes, and which error ends the stream;
//! - `parse_reply` agrees with the framer on the first reply;
//! - `Reply::message()` and `Display` are safe to print: no control or bidi-override character.

use smtp_proto::framer::parse_reply;
use smtp_proto::{Reply, ReplyError, ReplyFramer, ReplyLimits};

use super::input::{Encoder, Input, split_at_cuts};
use super::reference::{self, RefError, RefReply};

/// Limits chosen by the first input byte: mostly the defaults (the real-server seeds), sometimes tiny caps.
pub fn limits(input: &mut Input<'_>) -> ReplyLimits {
    match input.u8() % 4 {
        0 => ReplyLimits::default(),
        1 => ReplyLimits {
            max_line_len: input.below(80),
            max_lines: input.below(8),
            max_reply_len: usize::from(input.u16() % 400),
        },
        2 => ReplyLimits {
            max_line_len: 512,
            max_lines: 64,
            max_reply_len: 4096,
        },
        _ => ReplyLimits {
            max_line_len: 16 + input.below(64),
            max_lines: 1 + input.below(32),
            max_reply_len: 64 + usize::from(input.u16() % 2048),
        },
    }
}

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let limits = limits(&mut input);
    let n = input.below(16);
    let cuts: Vec<u16> = (0..n).map(|_| input.u16()).collect();
    let stream = input.rest();
    check_stream(stream, &cuts, limits);
}

/// A seed: default limits, no cuts, then `stream`.
pub fn seed(stream: &[u8]) -> Vec<u8> {
    Encoder::new().u8(0).u8(0).raw(stream).finish()
}

/// Pushes `pieces` through a framer, checking the buffering invariants after every call; stops at the first error.
pub fn feed(
    framer: &mut ReplyFramer,
    limits: &ReplyLimits,
    pieces: &[&[u8]],
) -> (Vec<Reply>, Option<ReplyError>) {
    let mut replies = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        loop {
            let before = input.len();
            let result = framer.push(&mut input);
            check_buffered(framer, limits);
            match result {
                Ok(Some(reply)) => {
                    assert!(input.len() < before, "a reply from no bytes");
                    replies.push(reply);
                    if input.is_empty() {
                        break;
                    }
                }
                Ok(None) => {
                    assert!(
                        input.is_empty(),
                        "Ok(None) left {} bytes unread",
                        input.len()
                    );
                    break;
                }
                Err(e) => return (replies, Some(e)),
            }
        }
    }
    (replies, None)
}

/// The bounded-input invariant: what the framer holds fits the caps.
pub fn check_buffered(framer: &ReplyFramer, limits: &ReplyLimits) {
    let held = framer.buffered();
    assert!(
        held <= limits.max_reply_len
            && held <= limits.max_line_len.saturating_mul(limits.max_lines.max(1)),
        "the framer holds {held} bytes; limits {limits:?}"
    );
    assert_eq!(
        framer.is_empty(),
        held == 0,
        "is_empty disagrees with buffered() = {held}"
    );
}

/// Checks one stream in one piece and in the given cuts against each other and the reference.
pub fn check_stream(stream: &[u8], cuts: &[u16], limits: ReplyLimits) {
    let whole = feed(&mut ReplyFramer::new(limits), &limits, &[stream]);
    let pieces = split_at_cuts(stream, cuts);
    let split = feed(&mut ReplyFramer::new(limits), &limits, &pieces);
    assert_eq!(whole, split, "split invariance; cuts {cuts:?}");

    let (expected, expected_error) = reference::frame_replies(stream, &limits);
    assert_eq!(
        whole.0.len(),
        expected.len(),
        "reply count vs the reference: {:?} / {expected:?}",
        whole.0
    );
    for (reply, reference) in whole.0.iter().zip(&expected) {
        check_reply(reply, reference);
    }
    assert_eq!(
        whole.1.as_ref().map(error_kind),
        expected_error,
        "the error vs the reference"
    );

    // parse_reply works with the default limits on the first reply.
    let first = parse_reply(stream);
    let default = ReplyLimits::default();
    let (ref_replies, ref_error) = reference::frame_replies(stream, &default);
    match first {
        Ok(Some((reply, used))) => {
            let reference = ref_replies
                .first()
                .expect("parse_reply found a reply the reference did not");
            check_reply(&reply, reference);
            assert_eq!(used, reference.raw_len);
        }
        Ok(None) => assert!(
            ref_replies.is_empty() && ref_error.is_none(),
            "parse_reply: incomplete"
        ),
        Err(e) => {
            assert!(
                ref_replies.is_empty(),
                "parse_reply failed before the first reply"
            );
            assert_eq!(Some(error_kind(&e)), ref_error);
        }
    }
}

/// A core reply against the reference reply, plus the printable-text invariants.
pub fn check_reply(reply: &Reply, reference: &RefReply) {
    assert_eq!(reply.code().get(), reference.code);
    assert_eq!(reply.text(), &reference.text[..], "text of {reply:?}");
    let enhanced = reply.enhanced().map(|e| (e.class, e.subject, e.detail));
    assert_eq!(
        enhanced,
        reference::enhanced_code(reference.code, &reference.text),
        "enhanced code of {reply:?}"
    );
    assert_eq!(
        reply.lines().count(),
        reference.text.split(|&b| b == b'\n').count()
    );
    check_printable(&reply.message());
    check_printable(&reply.to_string());
}

/// Text meant for a terminal or a log carries no control or bidi-override character.
pub fn check_printable(s: &str) {
    assert!(
        !s.chars()
            .any(|c| c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
        "unsafe text {s:?}"
    );
}

/// The reference's view of a core error.
pub fn error_kind(e: &ReplyError) -> RefError {
    match e {
        ReplyError::LineTooLong { limit } => RefError::LineTooLong(*limit),
        ReplyError::ReplyTooLarge { limit } => RefError::ReplyTooLarge(*limit),
        ReplyError::TooManyLines { limit } => RefError::TooManyLines(*limit),
        ReplyError::Malformed { line, .. } => RefError::Malformed(line.clone()),
        ReplyError::InconsistentCode { first, found } => {
            RefError::InconsistentCode(first.get(), *found)
        }
        other => panic!("a new ReplyError variant: {other:?}"),
    }
}
