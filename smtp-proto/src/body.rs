//! Message body encoding: streaming dot-stuffing and line-ending normalization.
//!
//! For `DATA` (RFC 5321 §4.5.2) every line that starts with `.` gets a second dot, and the body ends with
//! `CRLF . CRLF`. Every bare CR and bare LF is turned into CRLF first (RFC 5321 §2.3.8 only allows CRLF as a line
//! ending): servers disagree on what a bare LF or CR ends, which is exactly what SMTP smuggling exploits
//! (`\n.\r\n` read as the end of data by one server and as content by the next). After this encoder, there is
//! nothing left to disagree about.
//!
//! For `BDAT` (RFC 3030) bodies are counted, not stuffed: [`DotStuffer::normalizing_only`] only fixes line
//! endings of a text body; a `BINARYMIME` body is sent as is.
//!
//! [`unstuff`] and [`normalize_line_endings`] are simple, independent reference implementations for tests and
//! fuzzing.

use smtp_scan::{Check, copy_fixed};

/// Streaming body encoder for `DATA` (dot-stuffing and CRLF normalization) or a text `BDAT` body
/// (normalization only).
///
/// State carries across [`push`](DotStuffer::push) calls, so a body can be fed in chunks of any size, split
/// anywhere (between CR and LF, right before a dot...), and the output is the same as for a single push.
///
/// The exact output, for a body `B` fed in any chunking:
/// - [`DotStuffer::new`]: `S + T`, where `N = normalize_line_endings(B)`, `S` is `N` with a `.` inserted before
///   every line that starts with `.` (including the first byte of the body), and `T` is `.\r\n` when `N` is empty
///   or ends with CRLF, else `\r\n.\r\n`. So [`unstuff`] of the output gives back `N`, plus CRLF when `N` is
///   non-empty and does not end with CRLF.
/// - [`DotStuffer::normalizing_only`]: exactly `normalize_line_endings(B)`.
///
/// ```
/// use smtp_proto::body::DotStuffer;
///
/// let mut stuffer = DotStuffer::new();
/// let mut wire = Vec::new();
/// stuffer.push(b".hidden\n.\r", &mut wire);
/// stuffer.push(b"\nend", &mut wire);
/// stuffer.finish(&mut wire);
/// assert_eq!(wire, b"..hidden\r\n..\r\nend\r\n.\r\n");
/// ```
#[derive(Clone, Debug)]
pub struct DotStuffer {
    /// The next byte starts a line (true at the start of the body).
    at_line_start: bool,
    /// The previous chunk ended with a CR whose line ending is written once the next byte is known.
    pending_cr: bool,
    /// Double leading dots and write the terminator (DATA mode).
    stuff_dots: bool,
}

impl DotStuffer {
    /// For `DATA`: doubles a leading dot on every line (including the body's first byte), turns bare CR and bare LF
    /// into CRLF, and [`finish`](DotStuffer::finish) writes the `.` terminator line.
    pub fn new() -> Self {
        Self {
            at_line_start: true,
            pending_cr: false,
            stuff_dots: true,
        }
    }

    /// For `BDAT` with a text body: only the line-ending normalization, no dot doubling and no terminator
    /// (RFC 3030 bodies are counted, not stuffed).
    pub fn normalizing_only() -> Self {
        Self {
            stuff_dots: false,
            ..Self::new()
        }
    }

    /// Encodes `input` and appends the result to `out`.
    ///
    /// A CR at the very end of `input` is held back until the next chunk (or [`finish`](DotStuffer::finish)) shows
    /// whether an LF follows, so the output of one push may be one byte shorter than expected; a single push writes
    /// at most `2 * input.len() + 2` bytes.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        out.reserve(input.len().saturating_mul(2).saturating_add(2));
        let mut input = input;
        if self.pending_cr {
            // The held CR ends a line whether or not an LF follows: a bare CR becomes CRLF too.
            self.pending_cr = false;
            out.extend_from_slice(b"\r\n");
            self.at_line_start = true;
            if input[0] == b'\n' {
                input = &input[1..];
            }
        }
        if self.stuff_dots {
            self.encode::<true>(input, out);
        } else {
            self.encode::<false>(input, out);
        }
    }

    /// The encoding, specialized for dot-stuffing (`STUFF`) or normalization only.
    ///
    /// Every change the encoder makes depends only on a pair of adjacent bytes: an LF after a bare CR (and a
    /// second dot if the new line starts with `.`), a CR before a bare LF, a second dot after an LF followed by
    /// `.`. So the encoder only handles the first byte (whose predecessor was in an earlier push) and the last one
    /// (whose successor is unknown); [`smtp_scan::copy_fixed`] does everything in between in one pass (AVX2 or
    /// SSE2: 128 bytes loaded, stored and checked at a time, the rare insertions made without leaving the loop).
    fn encode<const STUFF: bool>(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let check = if STUFF {
            Check::LineEndingsAndDots
        } else {
            Check::LineEndings
        };
        // The first byte to hand to `copy_fixed`: `at_line_start` describes it, and it is not an LF (a bare LF
        // here, at the start of the input or after a line ending we inserted, is written first).
        let mut i = 0;
        loop {
            let Some(&b) = input.get(i) else {
                return;
            };
            if self.at_line_start {
                self.at_line_start = false;
                if STUFF && b == b'.' {
                    out.push(b'.');
                }
            }
            if b != b'\n' {
                break;
            }
            out.extend_from_slice(b"\r\n");
            i += 1;
            self.at_line_start = true;
        }
        // `input[i..]` but its last byte, with every pair inside fixed.
        copy_fixed(&input[i..], check, out);
        match input[input.len() - 1] {
            // A CR at the end (`i` is before it, so it was not handled above): held back until the next byte shows
            // whether an LF follows.
            b'\r' => self.pending_cr = true,
            // Its pair with the byte before it was fixed: an LF ends a line, whether it was bare or not.
            b => {
                out.push(b);
                self.at_line_start = b == b'\n';
            }
        }
    }

    /// Ends the body and resets the encoder for the next one.
    ///
    /// Flushes a held CR as CRLF. In `DATA` mode, then appends CRLF if the body did not end with a line break, and
    /// the terminator `.\r\n`; an empty body yields exactly `.\r\n`. In normalizing mode, only flushes.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            out.extend_from_slice(b"\r\n");
            self.at_line_start = true;
        }
        if self.stuff_dots {
            if !self.at_line_start {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b".\r\n");
        }
        self.at_line_start = true;
        self.pending_cr = false;
    }

    /// An upper bound of output bytes for `n` input bytes in total, in any chunking, including
    /// [`finish`](DotStuffer::finish): `2n + 5`. For back-pressure accounting.
    pub fn max_output_len(n: usize) -> usize {
        n.saturating_mul(2).saturating_add(5)
    }
}

impl Default for DotStuffer {
    /// The `DATA` mode encoder, [`DotStuffer::new`].
    fn default() -> Self {
        Self::new()
    }
}

/// Reference decoder for tests and fuzzing (independent of [`DotStuffer`], byte at a time): takes the full `DATA`
/// wire bytes including the terminator and returns the body with CRLF line endings and leading dots un-doubled.
///
/// Strict on purpose: returns `None` when there is no `.` terminator line, when anything follows it, or when the
/// wire contains a bare CR or bare LF (which [`DotStuffer`] never sends).
pub fn unstuff(wire: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::with_capacity(wire.len());
    let mut line: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < wire.len() {
        let b = wire[i];
        if b == b'\r' {
            if wire.get(i + 1) != Some(&b'\n') {
                return None; // bare CR
            }
            i += 2;
            if line == b"." {
                // The terminator: it must be the very end.
                return (i == wire.len()).then_some(body);
            }
            let content = if line.first() == Some(&b'.') {
                &line[1..]
            } else {
                &line[..]
            };
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
            line.clear();
        } else if b == b'\n' {
            return None; // bare LF
        } else {
            line.push(b);
            i += 1;
        }
    }
    None
}

/// Reference normalizer: turns every bare CR and every bare LF into CRLF, keeps CRLF as is (what [`DotStuffer`]
/// sends, before stuffing).
pub fn normalize_line_endings(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if body.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stuff_chunks(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = DotStuffer::new();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    fn stuff(body: &[u8]) -> Vec<u8> {
        stuff_chunks(&[body])
    }

    fn normalize_chunks(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = DotStuffer::normalizing_only();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    /// What `unstuff(stuff(body))` must give: the normalized body, plus CRLF when it is non-empty and does not end
    /// with CRLF (the terminator needs a line start).
    fn expected_unstuffed(body: &[u8]) -> Vec<u8> {
        let mut n = normalize_line_endings(body);
        if !n.is_empty() && !n.ends_with(b"\r\n") {
            n.extend_from_slice(b"\r\n");
        }
        n
    }

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a\n", b"a\r\n.\r\n"),
            (b"a\r", b"a\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b".a", b"..a\r\n.\r\n"),
            (b"..", b"...\r\n.\r\n"),
            (b"a.b", b"a.b\r\n.\r\n"),
            (b"a\r\n.b", b"a\r\n..b\r\n.\r\n"),
            (b"a\n.b", b"a\r\n..b\r\n.\r\n"),
            (b"a\r.b", b"a\r\n..b\r\n.\r\n"),
            (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
            (
                b"a\n.\r\nMAIL FROM:<x>",
                b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n",
            ),
            (b"\r\n", b"\r\n.\r\n"),
            (b"\n", b"\r\n.\r\n"),
            (b"\r", b"\r\n.\r\n"),
            (b"\r\r", b"\r\n\r\n.\r\n"),
            (b"\n\r", b"\r\n\r\n.\r\n"),
            (b"\r\n\r\n", b"\r\n\r\n.\r\n"),
            (b"\n\n", b"\r\n\r\n.\r\n"),
            (b"\r\r\n", b"\r\n\r\n.\r\n"),
            (b"a\r\n\r\n.", b"a\r\n\r\n..\r\n.\r\n"),
            (b"x\0y\xff", b"x\0y\xff\r\n.\r\n"),
        ];
        for &(body, wire) in cases {
            assert_eq!(
                stuff(body),
                wire,
                "body {:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(unstuff(wire).unwrap(), expected_unstuffed(body));
        }
    }

    #[test]
    fn chunk_boundaries() {
        // A dot split from its line start.
        assert_eq!(stuff_chunks(&[b"a\r\n", b".b"]), b"a\r\n..b\r\n.\r\n");
        assert_eq!(stuff_chunks(&[b"a\n", b".", b"b"]), b"a\r\n..b\r\n.\r\n");
        assert_eq!(stuff_chunks(&[b"", b".", b""]), b"..\r\n.\r\n");
        // CR at a chunk end, LF at the start of the next.
        assert_eq!(stuff_chunks(&[b"a\r", b"\nb"]), b"a\r\nb\r\n.\r\n");
        assert_eq!(stuff_chunks(&[b"a\r", b"\n.b"]), b"a\r\n..b\r\n.\r\n");
        assert_eq!(stuff_chunks(&[b"a\r", b".b"]), b"a\r\n..b\r\n.\r\n");
        assert_eq!(stuff_chunks(&[b"a\r", b"", b"\n"]), b"a\r\n.\r\n");
        assert_eq!(stuff_chunks(&[b"a\r", b"\r", b"\n"]), b"a\r\n\r\n.\r\n");
        // CR at the very end.
        assert_eq!(stuff_chunks(&[b"a", b"\r"]), b"a\r\n.\r\n");
        // Byte by byte.
        let body = b".a\r\n.\r\n\r.\n..x\r";
        let chunks: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(stuff_chunks(&chunks), stuff(body));
        assert_eq!(stuff(body), b"..a\r\n..\r\n\r\n..\r\n...x\r\n.\r\n");
    }

    #[test]
    fn long_bodies_cross_the_fast_path() {
        // Clean CRLF lines long enough for whole blocks, with anomalies at and around block boundaries.
        let clean: Vec<u8> = (0..40)
            .flat_map(|k| {
                let mut l = vec![b'a' + (k % 26) as u8; 70 + k];
                l.extend_from_slice(b"\r\n");
                l
            })
            .collect();
        let mut bodies = vec![clean.clone()];
        for at in [0, 1, 63, 64, 65, 127, 128, 129, 130, 255, 256, 257, 1000] {
            for insert in [&b"\n"[..], b"\r", b"\r\n.", b"\n.", b"\r.", b"."] {
                let mut b = clean.clone();
                b.splice(at..at, insert.iter().copied());
                bodies.push(b);
            }
        }
        for body in &bodies {
            let expected = expected_unstuffed(body);
            let wire = stuff(body);
            assert_eq!(unstuff(&wire).as_ref(), Some(&expected));
            for chunk in [1, 7, 128, 129, 130, 300] {
                let chunks: Vec<&[u8]> = body.chunks(chunk).collect();
                assert_eq!(stuff_chunks(&chunks), wire, "chunk {chunk}");
                assert_eq!(normalize_chunks(&chunks), normalize_line_endings(body));
            }
        }
        // A clean body passes through unchanged.
        assert_eq!(&stuff(&clean)[..clean.len()], &clean[..]);
        assert_eq!(normalize_chunks(&[&clean]), clean);
        // A long body of bare LFs (the slow path's longest spans).
        let lf: Vec<u8> = b"line of text\n".repeat(1000);
        assert_eq!(unstuff(&stuff(&lf)), Some(normalize_line_endings(&lf)));
    }

    #[test]
    fn held_cr_is_not_written_until_known() {
        let mut s = DotStuffer::new();
        let mut out = Vec::new();
        s.push(b"ab\r", &mut out);
        assert_eq!(out, b"ab");
        s.push(b"\n", &mut out);
        assert_eq!(out, b"ab\r\n");
    }

    #[test]
    fn finish_resets() {
        let mut s = DotStuffer::new();
        let mut out = Vec::new();
        s.push(b"a\r", &mut out);
        s.finish(&mut out);
        s.push(b".b", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"a\r\n.\r\n..b\r\n.\r\n");
        let mut out = Vec::new();
        DotStuffer::default().finish(&mut out);
        assert_eq!(out, b".\r\n");
    }

    #[test]
    fn normalizing_only() {
        let cases: &[(&[&[u8]], &[u8])] = &[
            (&[], b""),
            (&[b""], b""),
            (&[b".a"], b".a"),
            (&[b"a\n.b"], b"a\r\n.b"),
            (&[b"a\r"], b"a\r\n"),
            (&[b"a\r", b"\n"], b"a\r\n"),
            (&[b"a\r", b"b"], b"a\r\nb"),
            (&[b"a"], b"a"),
            (&[b"\r\r\n\n"], b"\r\n\r\n\r\n"),
        ];
        for &(chunks, expected) in cases {
            assert_eq!(normalize_chunks(chunks), expected, "{chunks:?}");
        }
    }

    #[test]
    fn unstuff_rejects() {
        for wire in [
            &b""[..],
            b"a\r\n",
            b"a\r\n.",
            b"a\r\n.\r",
            b".\r\nx",
            b"a\r\n.\r\n.\r\n",
            b"a\n.\r\n",
            b"a\r.\r\n",
            b".\n",
        ] {
            assert_eq!(unstuff(wire), None, "{:?}", String::from_utf8_lossy(wire));
        }
        assert_eq!(unstuff(b".\r\n").unwrap(), b"");
        assert_eq!(unstuff(b"..\r\n.\r\n").unwrap(), b".\r\n");
        assert_eq!(unstuff(b".x\r\n.\r\n").unwrap(), b"x\r\n");
    }

    #[test]
    fn reference_normalizer() {
        assert_eq!(normalize_line_endings(b""), b"");
        assert_eq!(
            normalize_line_endings(b"a\rb\nc\r\nd\n\re\r"),
            b"a\r\nb\r\nc\r\nd\r\n\r\ne\r\n"
        );
    }

    #[test]
    fn max_output_len_bound() {
        assert_eq!(DotStuffer::max_output_len(0), 5);
        assert_eq!(DotStuffer::max_output_len(10), 25);
        assert_eq!(DotStuffer::max_output_len(usize::MAX), usize::MAX);
        // The worst cases: every byte doubled.
        for body in [
            &b"\n\n\n\n"[..],
            b"\r\r\r\r",
            b"\n.\n.",
            b".\r.\r",
            b"a",
            b"\r",
        ] {
            assert!(stuff(body).len() <= DotStuffer::max_output_len(body.len()));
        }
    }

    /// Splits `body` at the given cut points (taken modulo the length, sorted).
    fn split<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for c in cuts {
            chunks.push(&body[start..c]);
            start = c;
        }
        chunks.push(&body[start..]);
        chunks
    }

    /// Bodies rich in the bytes that matter.
    fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a'), Just(0u8)],
                0..64
            ),
            proptest::collection::vec(any::<u8>(), 0..256),
            long_text(),
        ]
    }

    /// Long, mostly clean CRLF text with occasional bare CR, bare LF and leading dots: exercises the block fast
    /// path and its hand-overs to the slow path at every offset.
    fn long_text() -> impl Strategy<Value = Vec<u8>> {
        let line = (
            prop_oneof![8 => Just(false), 1 => Just(true)],
            0usize..200,
            prop_oneof![
                20 => Just(&b"\r\n"[..]),
                1 => Just(&b"\n"[..]),
                1 => Just(&b"\r"[..]),
                1 => Just(&b"\n\r"[..]),
                1 => Just(&b""[..]),
            ],
        )
            .prop_map(|(dot, len, ending)| {
                let mut l = Vec::with_capacity(len + 3);
                if dot {
                    l.push(b'.');
                }
                l.extend((0..len).map(|k| b"abc. xyz"[k % 8]));
                l.extend_from_slice(ending);
                l
            });
        proptest::collection::vec(line, 0..40).prop_map(|lines| lines.concat())
    }

    /// An independent model of the exact `DATA` output: normalize, then double the dot of every line that starts
    /// with one, then the terminator.
    fn model_stuff(body: &[u8]) -> Vec<u8> {
        let n = normalize_line_endings(body);
        let mut out = Vec::with_capacity(n.len() * 2 + 5);
        let mut line_start = true;
        for &b in &n {
            if line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            line_start = b == b'\n';
        }
        if !line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    #[test]
    fn dot_lines_at_every_block_offset() {
        // The former fast path's block size (the scanner steps by 64 pairs): 128 and 256 are step boundaries.
        const BLOCK: usize = 128;
        // Long clean lines (the fast path) with a dot line, a bare LF or a bare CR placed at every offset around
        // two block boundaries, fed whole, in pushes that split at every offset near the anomaly, and with empty
        // pushes in between.
        let clean: Vec<u8> =
            b"0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n".repeat(8);
        for at in (BLOCK - 4..BLOCK + 6).chain(2 * BLOCK - 4..2 * BLOCK + 6) {
            for insert in [
                &b"\r\n."[..],
                b"\r\n..",
                b"\r\n.\r\n.",
                b"\n.",
                b"\r.",
                b"\r\n\r\n.",
                b"\n",
                b"\r",
                b"\r\r",
                b"\n\n.",
            ] {
                let mut body = clean.clone();
                body.splice(at..at, insert.iter().copied());
                let expected = model_stuff(&body);
                assert_eq!(stuff(&body), expected, "at {at} insert {insert:?}");
                for cut in at.saturating_sub(3)..(at + insert.len() + 3).min(body.len()) {
                    let chunks = [&body[..cut], b"", &body[cut..], b""];
                    assert_eq!(
                        stuff_chunks(&chunks),
                        expected,
                        "at {at} insert {insert:?} cut {cut}"
                    );
                    assert_eq!(normalize_chunks(&chunks), normalize_line_endings(&body));
                }
            }
        }
        // Dot lines back to back, and a dot line in every line.
        for body in [
            b".\r\n".repeat(200),
            b"..\r\n".repeat(200),
            b".x\r\n".repeat(100),
            b".abcdefghijklmnopqrstuvwxyz0123456789\r\n".repeat(20),
        ] {
            assert_eq!(stuff(&body), model_stuff(&body));
            for size in [1, 2, 3, 127, 128, 129, 130] {
                let chunks: Vec<&[u8]> = body.chunks(size).collect();
                assert_eq!(stuff_chunks(&chunks), model_stuff(&body), "chunk {size}");
            }
        }
    }

    #[test]
    fn anomalies_at_span_boundaries() {
        const SPAN: usize = 4096;
        // The two-pass scanners work on spans of `SPAN + 1` bytes that overlap by one: anomalies at and around the
        // span ends, in one push and split near them.
        let clean: Vec<u8> =
            b"0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n".repeat(140);
        for at in (SPAN - 3..SPAN + 4).chain(2 * SPAN - 3..2 * SPAN + 4) {
            for insert in [&b"\r\n."[..], b"\n.", b"\r.", b"\n", b"\r", b"\r\r\n"] {
                let mut body = clean.clone();
                body.splice(at..at, insert.iter().copied());
                let expected = model_stuff(&body);
                assert_eq!(stuff(&body), expected, "at {at} insert {insert:?}");
                assert_eq!(normalize_chunks(&[&body]), normalize_line_endings(&body));
                for cut in [at - 1, at, at + 1, at + insert.len()] {
                    let chunks = [&body[..cut], &body[cut..]];
                    assert_eq!(stuff_chunks(&chunks), expected, "at {at} cut {cut}");
                    assert_eq!(normalize_chunks(&chunks), normalize_line_endings(&body));
                }
            }
        }
        // LF-only text longer than a span.
        let lf = b".dot line\nplain line of text\n\n".repeat(400);
        assert_eq!(stuff(&lf), model_stuff(&lf));
    }

    /// Adversarial bodies for the block fast path: long clean runs interleaved with runs of dots, CRs and LFs.
    fn adversarial_body() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            8 => (0usize..300).prop_map(|n| b"abc xyz "
                .iter()
                .copied()
                .cycle()
                .take(n)
                .collect::<Vec<u8>>()),
            6 => Just(b"\r\n".to_vec()),
            3 => Just(b"\r\n.".to_vec()),
            1 => (1usize..5).prop_map(|n| vec![b'.'; n]),
            1 => (1usize..5).prop_map(|n| vec![b'\r'; n]),
            1 => (1usize..5).prop_map(|n| vec![b'\n'; n]),
            1 => Just(b"\n.".to_vec()),
            1 => Just(b"\r.".to_vec()),
            1 => Just(b"\n\r".to_vec()),
        ];
        proptest::collection::vec(piece, 0..60).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn round_trip_any_chunking(body in body_strategy(), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let chunks = split(&body, &cuts);
            let wire = stuff_chunks(&chunks);
            prop_assert_eq!(&wire, &stuff(&body));
            prop_assert_eq!(unstuff(&wire), Some(expected_unstuffed(&body)));
            prop_assert!(wire.len() <= DotStuffer::max_output_len(body.len()));

            // No bare CR, no bare LF.
            for (k, &b) in wire.iter().enumerate() {
                if b == b'\r' {
                    prop_assert_eq!(wire.get(k + 1), Some(&b'\n'));
                }
                if b == b'\n' {
                    prop_assert!(k > 0 && wire[k - 1] == b'\r');
                }
            }
            // The only `.` line is the terminator at the very end.
            prop_assert!(wire.ends_with(b".\r\n"));
            let terminator = wire.len() - 3;
            prop_assert!(terminator == 0 || wire[..terminator].ends_with(b"\r\n"));
            let early = wire[..terminator]
                .windows(5)
                .any(|w| w == b"\r\n.\r\n");
            prop_assert!(!early && !wire[..terminator].starts_with(b".\r\n"));
        }

        #[test]
        fn adversarial_bodies_match_the_model(
            body in adversarial_body(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let expected = model_stuff(&body);
            prop_assert_eq!(&stuff(&body), &expected);
            // Repeated cuts give empty pushes.
            let chunks = split(&body, &cuts);
            prop_assert_eq!(&stuff_chunks(&chunks), &expected);
            prop_assert_eq!(unstuff(&expected), Some(expected_unstuffed(&body)));
            prop_assert_eq!(normalize_chunks(&chunks), normalize_line_endings(&body));
        }

        #[test]
        fn normalizing_any_chunking(body in body_strategy(), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let chunks = split(&body, &cuts);
            prop_assert_eq!(normalize_chunks(&chunks), normalize_line_endings(&body));
        }

        #[test]
        fn push_bound(prefix in body_strategy(), chunk in body_strategy()) {
            let mut s = DotStuffer::new();
            let mut out = Vec::new();
            s.push(&prefix, &mut out);
            let before = out.len();
            s.push(&chunk, &mut out);
            prop_assert!(out.len() - before <= 2 * chunk.len() + 2);
        }
    }
}
