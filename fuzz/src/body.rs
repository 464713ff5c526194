//! Target `body`: the streaming [`DotStuffer`] in arbitrary chunkings against the independent reference encoder and
//! decoder in [`super::reference`].
//!
//! Input: a mode (DATA stuffing or BDAT normalizing), a split point that makes two bodies fed through the same
//! encoder (it must reset after `finish`), up to 31 chunk sizes, then the body bytes.
//!
//! Invariants, for each body:
//! - DATA: the wire is exactly the reference stuffing; the reference decoder (a strict server) gets back the
//!   normalized body (plus CRLF when it did not end with one); there is no bare CR or LF on the wire; the first
//!   lone-dot line (`CRLF . CRLF`, or `.` CRLF at the start) is the terminator at the very end;
//! - BDAT text: the output is exactly the normalized body, with no bare CR or LF;
//! - one `push` writes at most `2n + 2` bytes, a whole body at most `DotStuffer::max_output_len(n)`.

use smtp_proto::DotStuffer;

use super::input::{Encoder, Input};
use super::reference;

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let stuffing = input.u8() & 1 == 0;
    let second_at = usize::from(input.u16());
    let n = input.below(32);
    let sizes: Vec<usize> = (0..n).map(|_| usize::from(input.u8())).collect();
    let bodies = input.rest();
    let (first, second) = bodies.split_at(second_at % (bodies.len() + 1));
    let mut stuffer = if stuffing {
        DotStuffer::new()
    } else {
        DotStuffer::normalizing_only()
    };
    check_body(&mut stuffer, stuffing, first, &sizes);
    check_body(&mut stuffer, stuffing, second, &sizes);
}

/// A seed: DATA mode, one body in chunks of `size` bytes (0: one push).
pub fn seed(stuffing: bool, body: &[u8], size: u8) -> Vec<u8> {
    let mut e = Encoder::new();
    e.u8(if stuffing { 0 } else { 1 }).u16(u16::MAX);
    if size == 0 {
        e.u8(0);
    } else {
        e.u8(1).u8(size);
    }
    e.raw(body).finish()
}

/// Encodes `body` in pushes of the given sizes (cycled; the rest at once if they are all 0) and checks the output.
pub fn check_body(stuffer: &mut DotStuffer, stuffing: bool, body: &[u8], sizes: &[usize]) {
    let mut wire = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let size = if sizes.iter().all(|&s| s == 0) {
            rest.len()
        } else {
            sizes[i % sizes.len()]
        };
        i += 1;
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        let before = wire.len();
        stuffer.push(chunk, &mut wire);
        assert!(
            wire.len() - before <= 2 * chunk.len() + 2,
            "one push of {} bytes wrote {}",
            chunk.len(),
            wire.len() - before
        );
        rest = tail;
    }
    stuffer.finish(&mut wire);
    assert!(
        wire.len() <= DotStuffer::max_output_len(body.len()),
        "{} bytes for a {}-byte body",
        wire.len(),
        body.len()
    );
    assert!(
        !reference::has_bare_cr_or_lf(&wire),
        "bare CR or LF on the wire: {:?}",
        wire.escape_ascii().to_string()
    );
    if !stuffing {
        assert_eq!(wire, reference::normalize(body), "normalizing mode");
        return;
    }
    assert_eq!(
        wire,
        reference::stuff(body),
        "DATA wire for {:?}",
        body.escape_ascii().to_string()
    );
    let mut expected = reference::normalize(body);
    if !expected.is_empty() && !expected.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    assert_eq!(reference::unstuff(&wire), Ok(expected), "round trip");
    // "No CRLF.CRLF before the end": the first lone-dot line is the last line.
    let first_terminator = if wire.starts_with(b".\r\n") {
        Some(0)
    } else {
        reference::find(&wire, b"\r\n.\r\n").map(|p| p + 2)
    };
    assert_eq!(
        first_terminator,
        Some(wire.len() - 3),
        "a terminator before the end"
    );
}
