//! Incremental, bounded framing and parsing of server replies (RFC 5321 §4.2).
//!
//! A reply is one or more lines `NNN-text` ended by a line `NNN text` (or a bare `NNN`), all with the same code.
//! [`ReplyFramer`] takes bytes as they arrive, in any split, and returns each complete [`Reply`]. It never buffers
//! more than [`ReplyLimits`] allows: past a cap it fails at once with a typed [`ReplyError`] so the client can close
//! instead of letting a hostile or broken server grow its memory.

use std::{fmt, mem};

use crate::reply::{Reply, ReplyCode};
use memchr::memchr;

/// Caps on what a server can make the client buffer.
///
/// Lengths count every byte of a line, including its CRLF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimits {
    /// The longest accepted line, CRLF included. RFC 5321 §4.5.3.1.5 says 512, but real servers send longer lines
    /// (long EHLO `AUTH` lists, explanations with URLs); the default is 4096.
    pub max_line_len: usize,
    /// The most lines in one reply. The default, 256, is far above any EHLO reply.
    pub max_lines: usize,
    /// The most bytes in one reply: the sum of its line lengths. The default is 64 KiB.
    pub max_reply_len: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        Self {
            max_line_len: 4096,
            max_lines: 256,
            max_reply_len: 64 * 1024,
        }
    }
}

/// Why a server's reply could not be framed or parsed. The connection cannot be trusted after any of these: close it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line, CRLF included, is longer than [`ReplyLimits::max_line_len`]. Reported as soon as the bytes received
    /// show it, without waiting for the end of the line.
    LineTooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A reply has more lines than [`ReplyLimits::max_lines`]. Reported as soon as the line after the last allowed
    /// one is announced by a continuation (`NNN-`).
    TooManyLines {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The lines of one reply add up to more than [`ReplyLimits::max_reply_len`] bytes.
    ReplyTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A line is not `NNN-text`, `NNN text` or `NNN` with `NNN` a valid reply code.
    Malformed {
        /// The first 80 bytes of the offending line, without its line ending.
        line: Vec<u8>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The lines of a multiline reply carry different codes (RFC 5321 §4.2.1 requires the same code on each).
    InconsistentCode {
        /// The code of the reply's first line.
        first: ReplyCode,
        /// The code of the line that differs.
        found: u16,
    },
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineTooLong { limit } => write!(
                f,
                "the server sent a reply line longer than {limit} bytes; closing \
                 (limit: ReplyLimits::max_line_len)"
            ),
            Self::TooManyLines { limit } => write!(
                f,
                "the server sent a reply of more than {limit} lines; closing (limit: ReplyLimits::max_lines)"
            ),
            Self::ReplyTooLarge { limit } => write!(
                f,
                "the server sent a reply larger than {limit} bytes; closing (limit: ReplyLimits::max_reply_len)"
            ),
            Self::Malformed { line, reason } => write!(
                f,
                "the server sent a malformed reply line ({reason}): \"{}\"; closing",
                line.escape_ascii()
            ),
            Self::InconsistentCode { first, found } => write!(
                f,
                "the server sent a multiline reply whose lines carry different codes ({first}, then {found}); closing"
            ),
        }
    }
}

impl std::error::Error for ReplyError {}

const NOT_A_CODE: &str = "the line does not start with a three-digit reply code";
const CODE_OUT_OF_RANGE: &str = "the reply code is outside 200-559 or its second digit is above 5";
const BAD_SEPARATOR: &str =
    "the reply code is not followed by a space, a hyphen or the end of the line";

/// How much of a malformed line an error keeps.
const MALFORMED_EXCERPT: usize = 80;

fn malformed(line: &[u8], reason: &'static str) -> ReplyError {
    ReplyError::Malformed {
        line: line[..line.len().min(MALFORMED_EXCERPT)].to_vec(),
        reason,
    }
}

/// Parses the head of one line (its line ending removed): the code and whether it is the last line, and the text.
///
/// Plain slice patterns rather than parser combinators: this runs once per reply line, and the grammar is three
/// digits and one separator.
#[inline]
fn parse_line(line: &[u8]) -> Result<(ReplyCode, bool, &[u8]), ReplyError> {
    let [a, b, c, rest @ ..] = line else {
        return Err(malformed(line, NOT_A_CODE));
    };
    if !(a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit()) {
        return Err(malformed(line, NOT_A_CODE));
    }
    let (last, text) = match rest {
        [] => (true, rest),
        [b' ', text @ ..] => (true, text),
        [b'-', text @ ..] => (false, text),
        // `NNN` must be followed by a separator, unless it is the whole line.
        _ => return Err(malformed(line, BAD_SEPARATOR)),
    };
    let Some(code) = ReplyCode::from_digits(*a, *b, *c) else {
        return Err(malformed(line, CODE_OUT_OF_RANGE));
    };
    Ok((code, last, text))
}

/// The counters of the reply being read: enough to enforce the limits and the same-code rule.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    /// The code of the first line, once it has been read.
    code: Option<ReplyCode>,
    /// Complete lines read so far.
    lines: usize,
    /// Bytes of those lines, line endings included.
    len: usize,
}

impl Progress {
    /// The longest the next line may be (line ending included) and the error when it is longer.
    fn cap(&self, limits: &ReplyLimits) -> (usize, ReplyError) {
        let budget = limits.max_reply_len.saturating_sub(self.len);
        if limits.max_line_len <= budget {
            let limit = limits.max_line_len;
            (limit, ReplyError::LineTooLong { limit })
        } else {
            let limit = limits.max_reply_len;
            (budget, ReplyError::ReplyTooLarge { limit })
        }
    }

    /// Accounts for one complete line of `raw_len` bytes; `line` is the line without its LF. Returns the code,
    /// whether the line ends the reply, and its text. `raw_len` must be within [`Progress::cap`].
    fn accept<'a>(
        &mut self,
        line: &'a [u8],
        raw_len: usize,
        limits: &ReplyLimits,
    ) -> Result<(ReplyCode, bool, &'a [u8]), ReplyError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (code, last, text) = parse_line(line)?;
        match self.code {
            None => self.code = Some(code),
            Some(first) if first != code => {
                return Err(ReplyError::InconsistentCode {
                    first,
                    found: code.get(),
                });
            }
            Some(_) => {}
        }
        self.lines += 1;
        self.len += raw_len;
        // A continuation after the last allowed line is an error now: the next line would be one too many.
        if self.lines > limits.max_lines || (!last && self.lines >= limits.max_lines) {
            return Err(ReplyError::TooManyLines {
                limit: limits.max_lines,
            });
        }
        Ok((code, last, text))
    }
}

/// Where one complete reply lies at the start of a slice.
pub(crate) struct Scanned {
    pub(crate) code: ReplyCode,
    /// Bytes taken by the reply, its last line ending included.
    end: usize,
    /// Number of lines.
    lines: usize,
    /// Exact length of the joined text.
    text_len: usize,
    /// Where the text of the last line starts and ends (the whole text for a one-line reply).
    last_text: (usize, usize),
}

/// Reply lines are short: looking at the first bytes one by one is cheaper than a vectorized search's set-up.
const SHORT_LINE: usize = 16;

/// The position of the first LF in `bytes`.
#[inline]
fn find_lf(bytes: &[u8]) -> Option<usize> {
    let head = &bytes[..bytes.len().min(SHORT_LINE)];
    match head.iter().position(|&b| b == b'\n') {
        Some(lf) => Some(lf),
        None if bytes.len() > SHORT_LINE => {
            memchr(b'\n', &bytes[SHORT_LINE..]).map(|lf| lf + SHORT_LINE)
        }
        None => None,
    }
}

/// Finds and validates one complete reply at the start of `input` without copying anything: `Ok(None)` if `input`
/// ends first.
#[inline(always)]
fn scan(input: &[u8], limits: &ReplyLimits) -> Result<Option<Scanned>, ReplyError> {
    scan_with(input, limits, |_, _| {})
}

/// [`scan`], handing the text of each line (in order, with the reply code) to `on_line` as it is validated. Lines
/// of a reply that turns out malformed or incomplete may already have been handed over: callers keep what they
/// build only when the result is `Ok(Some(_))`.
#[inline(always)]
pub(crate) fn scan_with(
    input: &[u8],
    limits: &ReplyLimits,
    mut on_line: impl FnMut(ReplyCode, &[u8]),
) -> Result<Option<Scanned>, ReplyError> {
    let mut progress = Progress::default();
    let mut pos = 0;
    let mut text_len = 0;
    loop {
        let rest = &input[pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        let (cap, too_long) = progress.cap(limits);
        let Some(lf) = find_lf(&rest[..cap.min(rest.len())]) else {
            return if rest.len() >= cap {
                Err(too_long)
            } else {
                Ok(None)
            };
        };
        let (code, last, text) = progress.accept(&rest[..lf], lf + 1, limits)?;
        on_line(code, text);
        if progress.lines > 1 {
            text_len += 1;
        }
        text_len += text.len();
        if last {
            let end = pos + lf - usize::from(rest[..lf].ends_with(b"\r"));
            let start = end - text.len();
            return Ok(Some(Scanned {
                code,
                end: pos + lf + 1,
                lines: progress.lines,
                text_len,
                last_text: (start, start + text.len()),
            }));
        }
        pos += lf + 1;
    }
}

/// Copies the text of a reply that [`scan`] validated: inline in the [`Reply`] when short, else in one allocation.
#[inline(always)]
fn collect(input: &[u8], scanned: &Scanned) -> Reply {
    if scanned.lines == 1 {
        let (start, end) = scanned.last_text;
        return Reply::from_input(scanned.code, &input[start..], end - start);
    }
    // Multiline: joined into a vector of the exact size (replies this long rarely fit inline).
    let mut text = Vec::with_capacity(scanned.text_len);
    let mut rest = &input[..scanned.end];
    let mut first = true;
    while let Some(lf) = memchr(b'\n', rest) {
        let line = &rest[..lf];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !first {
            text.push(b'\n');
        }
        first = false;
        // Validated: three digits, then a separator and the text, or nothing.
        text.extend_from_slice(line.get(4..).unwrap_or_default());
        rest = &rest[lf + 1..];
    }
    debug_assert_eq!(text.len(), scanned.text_len);
    Reply::from_parts(scanned.code, text)
}

/// Parses exactly one complete reply from the start of `bytes` with [`ReplyLimits::default`].
///
/// Returns the reply and the number of bytes it took, or `Ok(None)` if `bytes` does not yet hold a complete reply.
/// For benchmarks, fuzzing and one-shot use; a connection uses a [`ReplyFramer`].
pub fn parse_reply(bytes: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let limits = ReplyLimits::default();
    if let Some((code, text, used)) = parse_fast_parts(bytes, &limits) {
        // Built right here, in the slot returned: a reply moved after it is built is copied in blocks that do not
        // line up with the stores that built it, and each such copy stalls on store forwarding.
        return Ok(Some((text.into_reply(code), used)));
    }
    Ok(scan(bytes, &limits)?.map(|scanned| (collect(bytes, &scanned), scanned.end)))
}

/// The fast path of reply parsing: one pass over a reply that lies whole at the start of `input`, is well-formed
/// and stays within `limits`, copying each line's text as it is validated.
///
/// `None` means "take the general path" ([`scan`] and [`collect`]), which reports errors and incomplete input
/// exactly; whenever this returns a reply, the general path returns the same reply and length (checked by the
/// differential property test below and by the fuzz target's reference framer).
#[cfg(test)]
fn parse_fast(input: &[u8], limits: &ReplyLimits) -> Option<(Reply, usize)> {
    let (code, text, used) = parse_fast_parts(input, limits)?;
    Some((text.into_reply(code), used))
}

/// The text of a reply found by the fast path, before it is made into a [`Reply`].
enum FastText<'a> {
    /// A one-line reply: the input from its text on, and the text's length.
    Line(&'a [u8], usize),
    /// A multiline reply: its lines joined.
    Joined(Vec<u8>),
}

impl FastText<'_> {
    #[inline(always)]
    fn into_reply(self, code: ReplyCode) -> Reply {
        match self {
            FastText::Line(input, len) => Reply::from_input(code, input, len),
            FastText::Joined(text) => Reply::from_parts(code, text),
        }
    }
}

/// [`parse_fast`] without building the reply: its code, text and length. The caller builds the reply where it
/// returns it.
#[inline(always)]
fn parse_fast_parts<'a>(
    input: &'a [u8],
    limits: &ReplyLimits,
) -> Option<(ReplyCode, FastText<'a>, usize)> {
    let mut lines = FastLines::new(input, limits);
    let (text, last) = lines.next_line()?;
    if last {
        let input = &input[lines.text_start..];
        return Some((lines.code, FastText::Line(input, text.len()), lines.pos));
    }
    // Multiline: the text is at most the reply's size; reserve for it once (bounded, it grows if needed).
    let mut joined = Vec::with_capacity(input.len().min(limits.max_reply_len).min(FAST_RESERVE));
    joined.extend_from_slice(text);
    loop {
        let (text, last) = lines.next_line()?;
        joined.push(b'\n');
        joined.extend_from_slice(text);
        if last {
            break;
        }
    }
    Some((lines.code, FastText::Joined(joined), lines.pos))
}

/// The most a multiline reply's text reserves up front on the fast path.
const FAST_RESERVE: usize = 2048;

/// The lines of one reply at the start of a slice, validated one by one: the line scanner of the reply parsing fast
/// path. It gives up (returns `None`) on anything the general path would have to report
/// or wait for: a malformed line, a different code, a limit reached, a missing line end.
pub(crate) struct FastLines<'a> {
    input: &'a [u8],
    /// Where the next line starts (the bytes taken so far).
    pos: usize,
    /// Lines returned so far.
    lines: usize,
    /// The code of the first line (meaningful once a line was returned).
    code: ReplyCode,
    /// The first line's three digits, compared as bytes with every later line's.
    digits: [u8; 3],
    /// Where the text of the line last returned starts.
    text_start: usize,
    limits: ReplyLimits,
}

impl<'a> FastLines<'a> {
    #[inline(always)]
    pub(crate) fn new(input: &'a [u8], limits: &ReplyLimits) -> Self {
        Self {
            input,
            pos: 0,
            lines: 0,
            code: ReplyCode::OK,
            digits: [0; 3],
            text_start: 0,
            limits: *limits,
        }
    }

    /// The text of the next line (line ending and `NNN-`/`NNN ` removed) and whether it is the last line.
    #[inline(always)]
    pub(crate) fn next_line(&mut self) -> Option<(&'a [u8], bool)> {
        let rest = self.input.get(self.pos..)?;
        // The same cap as `Progress::cap`: the line may not exceed the line limit nor the reply's remaining budget.
        let cap = self
            .limits
            .max_line_len
            .min(self.limits.max_reply_len.saturating_sub(self.pos));
        let lf = find_lf_fast(&rest[..rest.len().min(cap)])?;
        let line = &rest[..lf];
        let line = match line {
            [head @ .., b'\r'] => head,
            _ => line,
        };
        let [a, b, c, tail @ ..] = line else {
            return None;
        };
        if self.lines == 0 {
            self.code = ReplyCode::from_digits(*a, *b, *c)?;
            self.digits = [*a, *b, *c];
        } else if [*a, *b, *c] != self.digits {
            return None;
        }
        let (last, text) = match tail {
            [] => (true, tail),
            [b' ', text @ ..] => (true, text),
            [b'-', text @ ..] => (false, text),
            _ => return None,
        };
        self.lines += 1;
        if self.lines > self.limits.max_lines || (!last && self.lines >= self.limits.max_lines) {
            return None;
        }
        self.text_start = self.pos + (line.len() - text.len());
        self.pos += lf + 1;
        Some((text, last))
    }
}

/// A mask of the low `n` bytes of a word (all of it for `n >= 8`).
#[inline(always)]
pub(crate) fn low_bytes(n: usize) -> u64 {
    const MASKS: [u64; 9] = {
        let mut masks = [u64::MAX; 9];
        let mut n = 0;
        while n < 8 {
            masks[n] = (1 << (8 * n)) - 1;
            n += 1;
        }
        masks
    };
    MASKS[n.min(8)]
}

/// The position of the first LF in `hay`: sixteen bytes at a time in two words (reply lines are short, so this
/// beats a vectorized search's set-up), then `memchr` for long lines.
#[inline(always)]
pub(crate) fn find_lf_fast(hay: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = hay.get(i..).and_then(<[u8]>::first_chunk::<16>) {
        let (lo, hi) = chunk.split_at(8);
        let lo = lf_mask(u64::from_le_bytes(lo.try_into().unwrap_or_default()));
        let hi = lf_mask(u64::from_le_bytes(hi.try_into().unwrap_or_default()));
        if lo | hi != 0 {
            let at = if lo != 0 {
                lo.trailing_zeros() / 8
            } else {
                8 + hi.trailing_zeros() / 8
            };
            return Some(i + at as usize);
        }
        i += 16;
        if i >= 128 {
            return memchr(b'\n', &hay[i..]).map(|lf| lf + i);
        }
    }
    if let Some(chunk) = hay.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let found = lf_mask(u64::from_le_bytes(*chunk));
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&b| b == b'\n').map(|lf| lf + i)
}

/// The high bit of each byte of `word` (little-endian) that is LF, and of no byte before the first LF: borrows only
/// propagate upwards from a zero byte, so the lowest flagged byte is exactly the first LF.
#[inline(always)]
pub(crate) fn lf_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (ONES * b'\n' as u64);
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Turns a byte stream from the server into replies, one [`push`](ReplyFramer::push) at a time.
///
/// Lines end with LF; a CR just before it is removed, and a bare LF is accepted from broken servers. Any other byte,
/// NUL and bare CR included, is kept as text. When a whole reply is inside the pushed slice it is parsed in place and
/// its text is the only allocation; only data split across pushes is copied into an internal buffer.
///
/// After an error the framer is in an unspecified state: the connection must be closed.
#[derive(Clone, Debug, Default)]
pub struct ReplyFramer {
    limits: ReplyLimits,
    /// The start of a line whose end has not arrived yet (never more than the line cap).
    partial: Vec<u8>,
    /// Counters of the reply in progress.
    progress: Progress,
    /// Text of the complete lines of the reply in progress.
    text: Vec<u8>,
}

impl ReplyFramer {
    /// A framer that enforces `limits`.
    pub fn new(limits: ReplyLimits) -> Self {
        Self {
            limits,
            partial: Vec::new(),
            progress: Progress::default(),
            text: Vec::new(),
        }
    }

    /// Consumes bytes from the front of `input`, advancing the slice.
    ///
    /// Stops right after the last line of one complete reply and returns it, leaving any later bytes (the next
    /// pipelined reply) in `input`; call again with them. Returns `Ok(None)` when `input` is exhausted, keeping a
    /// partial line or an unfinished multiline reply for the next call. Never buffers more than the limits allow: an
    /// over-long line is an error as soon as it is seen.
    pub fn push(&mut self, input: &mut &[u8]) -> Result<Option<Reply>, ReplyError> {
        if self.is_empty() {
            // Common case: the whole reply is in `input`; parse it in place.
            if let Some((code, text, used)) = parse_fast_parts(input, &self.limits) {
                *input = &input[used..];
                return Ok(Some(text.into_reply(code)));
            }
            if let Some(scanned) = scan(input, &self.limits)? {
                let reply = collect(input, &scanned);
                *input = &input[scanned.end..];
                return Ok(Some(reply));
            }
        }
        loop {
            let data = *input;
            if data.is_empty() {
                return Ok(None);
            }
            let (cap, too_long) = self.progress.cap(&self.limits);
            let held = self.partial.len();
            let window = cap.saturating_sub(held).min(data.len());
            let Some(lf) = memchr(b'\n', &data[..window]) else {
                if held + data.len() >= cap {
                    return Err(too_long);
                }
                self.partial.extend_from_slice(data);
                *input = &[];
                return Ok(None);
            };
            *input = &data[lf + 1..];
            let reply = if held == 0 {
                self.take_line(&data[..lf], lf + 1)
            } else {
                let mut line = mem::take(&mut self.partial);
                line.extend_from_slice(&data[..lf]);
                let reply = self.take_line(&line, line.len() + 1);
                line.clear();
                self.partial = line;
                reply
            }?;
            if reply.is_some() {
                return Ok(reply);
            }
        }
    }

    /// Adds one complete line to the reply in progress, returning the reply if the line ends it.
    fn take_line(&mut self, line: &[u8], raw_len: usize) -> Result<Option<Reply>, ReplyError> {
        let (code, last, text) = self.progress.accept(line, raw_len, &self.limits)?;
        if self.progress.lines > 1 {
            self.text.push(b'\n');
        }
        self.text.extend_from_slice(text);
        if !last {
            return Ok(None);
        }
        self.progress = Progress::default();
        Ok(Some(Reply::from_parts(code, mem::take(&mut self.text))))
    }

    /// Bytes currently held: the partial line plus the lines (as received) of the reply under construction.
    pub fn buffered(&self) -> usize {
        self.partial.len() + self.progress.len
    }

    /// True when nothing is buffered: no partial line and no reply in progress.
    pub fn is_empty(&self) -> bool {
        self.partial.is_empty() && self.progress.lines == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::EnhancedCode;
    use proptest::prelude::*;

    fn code(n: u16) -> ReplyCode {
        ReplyCode::new(n).unwrap()
    }

    fn reply(n: u16, lines: &[&[u8]]) -> Reply {
        Reply::new(code(n), lines)
    }

    /// Feeds `chunks` in order, collecting every reply until the first error (which ends the list).
    fn feed<'a>(
        framer: &mut ReplyFramer,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> Vec<Result<Reply, ReplyError>> {
        let mut out = Vec::new();
        for chunk in chunks {
            let mut input = chunk;
            loop {
                match framer.push(&mut input) {
                    Ok(Some(reply)) => out.push(Ok(reply)),
                    Ok(None) => {
                        assert!(input.is_empty(), "Ok(None) must consume all input");
                        break;
                    }
                    Err(error) => {
                        out.push(Err(error));
                        return out;
                    }
                }
                if input.is_empty() {
                    break;
                }
            }
        }
        out
    }

    /// All results of `bytes` pushed whole with `limits`.
    fn feed_whole(bytes: &[u8], limits: ReplyLimits) -> Vec<Result<Reply, ReplyError>> {
        feed(&mut ReplyFramer::new(limits), [bytes])
    }

    /// The result of one reply pushed whole into a default framer.
    fn one(bytes: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let mut framer = ReplyFramer::default();
        let mut input = bytes;
        let result = framer.push(&mut input);
        if let Ok(Some(_)) = result {
            assert!(input.is_empty(), "trailing bytes after {bytes:?}");
            assert!(framer.is_empty());
        }
        result
    }

    /// Asserts that every split of `bytes` in two, and byte-by-byte feeding, gives the same results as one push.
    fn assert_split_invariant(bytes: &[u8], limits: ReplyLimits) {
        let whole = feed_whole(bytes, limits);
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            let split = feed(&mut ReplyFramer::new(limits), [a, b]);
            assert_eq!(
                split,
                whole,
                "split at {at} of {:?}",
                bytes.escape_ascii().to_string()
            );
        }
        let bytewise = feed(&mut ReplyFramer::new(limits), bytes.chunks(1));
        assert_eq!(bytewise, whole, "byte by byte");
    }

    fn malformed(line: &[u8], reason: &'static str) -> ReplyError {
        ReplyError::Malformed {
            line: line.to_vec(),
            reason,
        }
    }

    #[test]
    fn valid_replies() {
        type Case = (&'static [u8], u16, &'static [&'static [u8]]);
        let cases: &[Case] = &[
            (b"250 OK\r\n", 250, &[b"OK"]),
            (b"250 OK\n", 250, &[b"OK"]),
            (b"250\r\n", 250, &[]),
            (b"250\n", 250, &[]),
            (b"250 \r\n", 250, &[b""]),
            (b"250  two spaces \r\n", 250, &[b" two spaces "]),
            (b"220 mx ESMTP\r\n", 220, &[b"mx ESMTP"]),
            (
                b"354 End data with <CR><LF>.<CR><LF>\r\n",
                354,
                &[b"End data with <CR><LF>.<CR><LF>"],
            ),
            (b"250-a\r\n250-b\r\n250 c\r\n", 250, &[b"a", b"b", b"c"]),
            (b"250-a\n250-b\r\n250 c\n", 250, &[b"a", b"b", b"c"]),
            (b"250-\r\n250-\r\n250\r\n", 250, &[b"", b"", b""]),
            (b"250-first\r\n250\r\n", 250, &[b"first", b""]),
            (b"250-a-b-c\r\n250 -\r\n", 250, &[b"a-b-c", b"-"]),
            (b"250 nul\0inside\r\n", 250, &[b"nul\0inside"]),
            (b"250 bare\rcr\r\n", 250, &[b"bare\rcr"]),
            (b"250 two cr\r\r\n", 250, &[b"two cr\r"]),
            (b"250 \rcr first\r\n", 250, &[b"\rcr first"]),
            (
                b"250 \xff\xfe not utf-8 \xc3\r\n",
                250,
                &[b"\xff\xfe not utf-8 \xc3"],
            ),
            (b"559 highest\r\n", 559, &[b"highest"]),
            (b"200 lowest\r\n", 200, &[b"lowest"]),
        ];
        for (bytes, n, lines) in cases {
            let expected = reply(*n, lines);
            assert_eq!(one(bytes), Ok(Some(expected.clone())), "{bytes:?}");
            assert_eq!(parse_reply(bytes), Ok(Some((expected, bytes.len()))));
            assert_split_invariant(bytes, ReplyLimits::default());
        }
    }

    #[test]
    fn code_only_reply_has_one_empty_line() {
        let reply = one(b"250\r\n").unwrap().unwrap();
        assert_eq!(reply.text(), b"");
        assert_eq!(reply.lines().collect::<Vec<_>>(), [&b""[..]]);
        assert_eq!(reply.to_string(), "250");
    }

    #[test]
    fn malformed_lines() {
        let cases: &[(&[u8], &[u8], &str)] = &[
            (b"099 low\r\n", b"099 low", CODE_OUT_OF_RANGE),
            (b"199 low\r\n", b"199 low", CODE_OUT_OF_RANGE),
            (b"600 high\r\n", b"600 high", CODE_OUT_OF_RANGE),
            (
                b"270 second digit\r\n",
                b"270 second digit",
                CODE_OUT_OF_RANGE,
            ),
            (
                b"560 second digit\r\n",
                b"560 second digit",
                CODE_OUT_OF_RANGE,
            ),
            (b"2a0 letter\r\n", b"2a0 letter", NOT_A_CODE),
            (b"25\r\n", b"25", NOT_A_CODE),
            (b"\r\n", b"", NOT_A_CODE),
            (b"\n", b"", NOT_A_CODE),
            (b" 250 leading space\r\n", b" 250 leading space", NOT_A_CODE),
            (b"OK\r\n", b"OK", NOT_A_CODE),
            (b"2500 four digits\r\n", b"2500 four digits", BAD_SEPARATOR),
            (b"250_x\r\n", b"250_x", BAD_SEPARATOR),
            (b"250\tx\r\n", b"250\tx", BAD_SEPARATOR),
            (b"250\rx\r\n", b"250\rx", BAD_SEPARATOR),
            (b"250\r\r\n", b"250\r", BAD_SEPARATOR),
            (b"250-ok\r\nxyz\r\n", b"xyz", NOT_A_CODE),
            (b"250-ok\r\n600 bad\r\n", b"600 bad", CODE_OUT_OF_RANGE),
        ];
        for (bytes, line, reason) in cases {
            assert_eq!(one(bytes), Err(malformed(line, reason)), "{bytes:?}");
            assert_eq!(parse_reply(bytes), Err(malformed(line, reason)));
            assert_split_invariant(bytes, ReplyLimits::default());
        }
    }

    #[test]
    fn malformed_keeps_only_80_bytes_of_the_line() {
        let mut bytes = vec![b'x'; 200];
        bytes.extend_from_slice(b"\r\n");
        let Err(ReplyError::Malformed { line, .. }) = one(&bytes) else {
            panic!("expected Malformed");
        };
        assert_eq!(line, vec![b'x'; 80]);
    }

    #[test]
    fn inconsistent_codes() {
        let cases: &[(&[u8], u16, u16)] = &[
            (b"250-a\r\n251 b\r\n", 250, 251),
            (b"250-a\r\n250-b\r\n550 c\r\n", 250, 550),
            (b"450-a\r\n451-b\r\n", 450, 451),
        ];
        for (bytes, first, found) in cases {
            let expected = ReplyError::InconsistentCode {
                first: code(*first),
                found: *found,
            };
            assert_eq!(one(bytes), Err(expected.clone()));
            assert_split_invariant(bytes, ReplyLimits::default());
        }
    }

    #[test]
    fn enhanced_codes_from_the_wire() {
        type Case = (&'static [u8], Option<(u8, u16, u16)>);
        let cases: &[Case] = &[
            (b"250 2.1.5 Ok\r\n", Some((2, 1, 5))),
            (b"250 Ok\r\n", None),
            (b"550 5.1.1\r\n", Some((5, 1, 1))),
            (b"550 5.1.1.1 four parts\r\n", None),
            (b"550 5.123.456 three digits\r\n", Some((5, 123, 456))),
            (b"550 2.0.0 class mismatch\r\n", None),
            (b"250 5.0.0 class mismatch\r\n", None),
            (b"550-5.7.26 first\r\n550 5.7.26 last\r\n", Some((5, 7, 26))),
            (b"550-5.7.1\r\n550 text\r\n", Some((5, 7, 1))),
            (b"550-first\r\n550 5.7.1 second only\r\n", None),
            (b"250\r\n", None),
        ];
        for (bytes, expected) in cases {
            let expected = expected.map(|(class, subject, detail)| EnhancedCode {
                class,
                subject,
                detail,
            });
            assert_eq!(
                one(bytes).unwrap().unwrap().enhanced(),
                expected,
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn two_replies_in_one_buffer() {
        let bytes = b"250 2.1.0 Ok\r\n250-a\r\n250 2.1.5 Ok\r\n354 go\r\n";
        let mut framer = ReplyFramer::default();
        let mut input = &bytes[..];
        assert_eq!(
            framer.push(&mut input),
            Ok(Some(reply(250, &[b"2.1.0 Ok"])))
        );
        assert_eq!(input, b"250-a\r\n250 2.1.5 Ok\r\n354 go\r\n");
        assert!(framer.is_empty());
        assert_eq!(
            framer.push(&mut input),
            Ok(Some(reply(250, &[b"a", b"2.1.5 Ok"])))
        );
        assert_eq!(input, b"354 go\r\n");
        assert_eq!(framer.push(&mut input), Ok(Some(reply(354, &[b"go"]))));
        assert_eq!(input, b"");
        assert_eq!(framer.push(&mut input), Ok(None));
        assert_split_invariant(bytes, ReplyLimits::default());

        assert_eq!(
            parse_reply(bytes),
            Ok(Some((reply(250, &[b"2.1.0 Ok"]), 14)))
        );
    }

    #[test]
    fn partial_input_is_buffered() {
        let mut framer = ReplyFramer::default();
        assert!(framer.is_empty());
        assert_eq!(framer.buffered(), 0);
        let mut input = &b"250-fir"[..];
        assert_eq!(framer.push(&mut input), Ok(None));
        assert!(input.is_empty());
        assert_eq!(framer.buffered(), 7);
        assert!(!framer.is_empty());
        let mut input = &b"st\r\n250-"[..];
        assert_eq!(framer.push(&mut input), Ok(None));
        assert_eq!(framer.buffered(), 11 + 4);
        let mut input = &b"second\r\n250 end\r\n220 next"[..];
        assert_eq!(
            framer.push(&mut input),
            Ok(Some(reply(250, &[b"first", b"second", b"end"])))
        );
        assert_eq!(input, b"220 next");
        assert!(framer.is_empty());
        assert_eq!(framer.push(&mut input), Ok(None));
        assert_eq!(framer.buffered(), 8);
        let mut input = &b"\r\n"[..];
        assert_eq!(framer.push(&mut input), Ok(Some(reply(220, &[b"next"]))));
        assert!(framer.is_empty());

        // A complete line of an unfinished reply also counts as buffered.
        let mut input = &b"250-\r\n"[..];
        assert_eq!(framer.push(&mut input), Ok(None));
        assert_eq!(framer.buffered(), 6);
        assert!(!framer.is_empty());
    }

    #[test]
    fn parse_reply_incomplete() {
        for bytes in [
            &b""[..],
            b"2",
            b"250",
            b"250 ok",
            b"250 ok\r",
            b"250-ok\r\n",
            b"250-ok\r\n250 ok",
        ] {
            assert_eq!(parse_reply(bytes), Ok(None), "{bytes:?}");
            assert_eq!(one(bytes), Ok(None), "{bytes:?}");
        }
    }

    fn limits(max_line_len: usize, max_lines: usize, max_reply_len: usize) -> ReplyLimits {
        ReplyLimits {
            max_line_len,
            max_lines,
            max_reply_len,
        }
    }

    #[test]
    fn default_limits() {
        assert_eq!(ReplyLimits::default(), limits(4096, 256, 65536));
    }

    #[test]
    fn line_length_limit_at_the_boundary() {
        let limits = limits(10, 256, 65536);
        // 10 bytes with CRLF, 10 with a bare LF.
        for bytes in [
            &b"250 abcd\r\n"[..],
            b"250 abcde\n",
            b"250-abcd\r\n250 abcd\r\n",
        ] {
            assert!(
                matches!(feed_whole(bytes, limits)[..], [Ok(_)]),
                "{bytes:?}"
            );
            assert_split_invariant(bytes, limits);
        }
        // One byte more.
        for bytes in [
            &b"250 abcde\r\n"[..],
            b"250 abcdef\n",
            b"250-abcd\r\n250 abcde\r\n",
        ] {
            assert_eq!(
                feed_whole(bytes, limits),
                [Err(ReplyError::LineTooLong { limit: 10 })],
                "{bytes:?}"
            );
            assert_split_invariant(bytes, limits);
        }
    }

    #[test]
    fn line_too_long_is_detected_before_the_line_ends() {
        let limits = limits(10, 256, 65536);
        let mut framer = ReplyFramer::new(limits);
        let mut input = &b"250 abcde"[..];
        assert_eq!(framer.push(&mut input), Ok(None));
        assert_eq!(framer.buffered(), 9);
        // The 10th byte is not LF: the line will have at least 11 bytes.
        let mut input = &b"f"[..];
        assert_eq!(
            framer.push(&mut input),
            Err(ReplyError::LineTooLong { limit: 10 })
        );

        // Without any buffered prefix, in one push, and without scanning a huge input.
        let flood = vec![b'2'; 1 << 20];
        let mut framer = ReplyFramer::new(limits);
        let mut input = &flood[..];
        assert_eq!(
            framer.push(&mut input),
            Err(ReplyError::LineTooLong { limit: 10 })
        );
        assert_eq!(
            parse_reply(&flood),
            Err(ReplyError::LineTooLong { limit: 4096 })
        );
    }

    #[test]
    fn line_count_limit_at_the_boundary() {
        let limits = limits(4096, 3, 65536);
        let ok = b"250-a\r\n250-b\r\n250 c\r\n";
        assert_eq!(
            feed_whole(ok, limits),
            [Ok(reply(250, &[b"a", b"b", b"c"]))]
        );
        assert_split_invariant(ok, limits);
        let too_many = b"250-a\r\n250-b\r\n250-c\r\n250 d\r\n";
        assert_eq!(
            feed_whole(too_many, limits),
            [Err(ReplyError::TooManyLines { limit: 3 })]
        );
        assert_split_invariant(too_many, limits);
        // Known as soon as the third line announces a fourth.
        let mut framer = ReplyFramer::new(limits);
        let mut input = &b"250-a\r\n250-b\r\n250-c\r\n"[..];
        assert_eq!(
            framer.push(&mut input),
            Err(ReplyError::TooManyLines { limit: 3 })
        );
        // A limit of one line allows single-line replies only.
        let limits = self::limits(4096, 1, 65536);
        assert!(matches!(feed_whole(b"250 a\r\n", limits)[..], [Ok(_)]));
        assert_eq!(
            feed_whole(b"250-a\r\n", limits),
            [Err(ReplyError::TooManyLines { limit: 1 })]
        );
    }

    #[test]
    fn reply_size_limit_at_the_boundary() {
        // Lines of 7 bytes each: 21 bytes in all.
        let bytes = b"250-a\r\n250-b\r\n250 c\r\n";
        let exact = limits(4096, 256, 21);
        assert_eq!(
            feed_whole(bytes, exact),
            [Ok(reply(250, &[b"a", b"b", b"c"]))]
        );
        assert_split_invariant(bytes, exact);
        let under = limits(4096, 256, 20);
        assert_eq!(
            feed_whole(bytes, under),
            [Err(ReplyError::ReplyTooLarge { limit: 20 })]
        );
        assert_split_invariant(bytes, under);
        // The limit applies to each reply, not to the stream.
        let two = b"250 a\r\n250 b\r\n250 c\r\n";
        assert_eq!(feed_whole(two, limits(4096, 256, 7)).len(), 3);
        // Known before the last line ends.
        let mut framer = ReplyFramer::new(under);
        let mut input = &b"250-a\r\n250-b\r\n250 c\r"[..];
        assert_eq!(
            framer.push(&mut input),
            Err(ReplyError::ReplyTooLarge { limit: 20 })
        );
    }

    #[test]
    fn limits_the_line_and_reply_caps_interact() {
        // The reply budget left (5 bytes) is below the line cap: the reply limit is the one reported.
        let limits = limits(10, 256, 12);
        let bytes = b"250-a\r\n250 bc\r\n";
        assert_eq!(
            feed_whole(bytes, limits),
            [Err(ReplyError::ReplyTooLarge { limit: 12 })]
        );
        assert_split_invariant(bytes, limits);
        // A zero limit refuses any byte but accepts no input.
        let zero = self::limits(0, 0, 0);
        let mut framer = ReplyFramer::new(zero);
        assert_eq!(framer.push(&mut &b""[..]), Ok(None));
        assert!(framer.push(&mut &b"2"[..]).is_err());
    }

    #[test]
    fn corpus_replies_split_at_every_offset() {
        let corpus: &[&[u8]] = &[
            include_bytes!("../../corpus/replies/reply--220-banner-gmail.txt"),
            include_bytes!("../../corpus/replies/reply--250-esc-queued-gmail.txt"),
            include_bytes!("../../corpus/replies/reply--250-esc-rcpt.txt"),
            include_bytes!("../../corpus/replies/reply--250-ok.txt"),
            include_bytes!("../../corpus/replies/reply--354-data.txt"),
            include_bytes!("../../corpus/replies/reply--550-multiline-gmail.txt"),
            include_bytes!("../../corpus/replies/ehlo--ehlo-postfix.txt"),
            include_bytes!("../../corpus/replies/ehlo--ehlo-15-lines.txt"),
        ];
        let mut stream = Vec::new();
        for bytes in corpus {
            let (reply, used) = parse_reply(bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert_split_invariant(bytes, ReplyLimits::default());
            assert_eq!(feed_whole(bytes, ReplyLimits::default()), [Ok(reply)]);
            stream.extend_from_slice(bytes);
        }
        assert_eq!(
            feed_whole(&stream, ReplyLimits::default()).len(),
            corpus.len()
        );
        assert_split_invariant(&stream, ReplyLimits::default());

        let gmail = parse_reply(corpus[5]).unwrap().unwrap().0;
        assert_eq!(gmail.code(), code(550));
        assert_eq!(gmail.lines().count(), 9);
        assert_eq!(
            gmail.enhanced().map(|e| e.to_string()).as_deref(),
            Some("5.7.26")
        );
        assert!(gmail.to_string().starts_with(
            "550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires"
        ));
        assert_eq!(gmail.to_string().matches("5.7.26").count(), 1);
    }

    #[test]
    fn error_messages_name_the_limit() {
        let cases = [
            (
                ReplyError::LineTooLong { limit: 4096 },
                "the server sent a reply line longer than 4096 bytes; closing (limit: ReplyLimits::max_line_len)",
            ),
            (
                ReplyError::TooManyLines { limit: 256 },
                "the server sent a reply of more than 256 lines; closing (limit: ReplyLimits::max_lines)",
            ),
            (
                ReplyError::ReplyTooLarge { limit: 65536 },
                "the server sent a reply larger than 65536 bytes; closing (limit: ReplyLimits::max_reply_len)",
            ),
            (
                malformed(b"2a0 \x1b[2J", NOT_A_CODE),
                "the server sent a malformed reply line (the line does not start with a three-digit reply \
                 code): \"2a0 \\x1b[2J\"; closing",
            ),
            (
                ReplyError::InconsistentCode {
                    first: code(250),
                    found: 251,
                },
                "the server sent a multiline reply whose lines carry different codes (250, then 251); closing",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.to_string(), expected);
            let _: &dyn std::error::Error = &error;
        }
    }

    /// Bytes likely to form reply-like structure, plus anything.
    fn wire_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => prop::sample::select(&b"0123456789- \r\n"[..]),
            1 => any::<u8>(),
        ]
    }

    /// Splits `bytes` at the given (unsorted, possibly out of range) points.
    fn split_at_points(bytes: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts {
            chunks.push(bytes[start..cut].to_vec());
            start = cut;
        }
        chunks.push(bytes[start..].to_vec());
        chunks
    }

    /// One valid reply: its wire form and the reply it must parse to.
    fn valid_reply() -> impl Strategy<Value = (Vec<u8>, Reply)> {
        let code = (2u16..=5, 0u16..=5, 0u16..=9).prop_map(|(a, b, c)| a * 100 + b * 10 + c);
        let text = prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(&b"abc 0.5-\r\0\xff"[..]),
                1 => any::<u8>().prop_filter("no LF", |&b| b != b'\n'),
            ],
            0..12,
        );
        // (text, bare LF, code-only line)
        let line = (text, any::<bool>(), any::<bool>());
        (code, prop::collection::vec(line, 1..6)).prop_map(|(n, lines)| {
            let mut wire = Vec::new();
            let mut texts: Vec<Vec<u8>> = Vec::new();
            let count = lines.len();
            for (i, (text, bare_lf, code_only)) in lines.into_iter().enumerate() {
                let last = i + 1 == count;
                wire.extend_from_slice(n.to_string().as_bytes());
                if code_only && text.is_empty() && last {
                    // `NNN` alone.
                } else {
                    wire.push(if last { b' ' } else { b'-' });
                    wire.extend_from_slice(&text);
                }
                // A CR at the end of the text needs a CRLF after it: before a bare LF it would be the line ending.
                if bare_lf && text.last() != Some(&b'\r') {
                    wire.push(b'\n');
                } else {
                    wire.extend_from_slice(b"\r\n");
                }
                texts.push(text);
            }
            let lines: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
            (wire, Reply::new(ReplyCode::new(n).unwrap(), &lines))
        })
    }

    /// The general path: [`scan`] then [`collect`].
    fn general(bytes: &[u8], limits: &ReplyLimits) -> Result<Option<(Reply, usize)>, ReplyError> {
        Ok(scan(bytes, limits)?.map(|scanned| (collect(bytes, &scanned), scanned.end)))
    }

    #[test]
    fn corpus_takes_the_fast_path() {
        for bytes in [
            &include_bytes!("../../corpus/replies/reply--220-banner-gmail.txt")[..],
            include_bytes!("../../corpus/replies/reply--250-esc-queued-gmail.txt"),
            include_bytes!("../../corpus/replies/reply--550-multiline-gmail.txt"),
            include_bytes!("../../corpus/replies/ehlo--ehlo-postfix.txt"),
            b"250 OK\r\n",
        ] {
            let limits = ReplyLimits::default();
            let fast = parse_fast(bytes, &limits).expect("fast path");
            assert_eq!(Ok(Some(fast)), general(bytes, &limits));
        }
    }

    #[test]
    fn one_line_texts_of_every_length_around_the_block_boundaries() {
        // Texts are copied inline in 16-byte blocks, read from the input past the text when it has them: lengths
        // 0..=120 cross every block boundary and the inline capacity; the reply ends the input or is followed by
        // more bytes.
        let limits = ReplyLimits::default();
        for len in 0..=120usize {
            let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut wire = b"250 ".to_vec();
            wire.extend_from_slice(&text);
            wire.extend_from_slice(b"\r\n");
            let expected = reply(250, &[&text]);
            for trailer in [&b""[..], b"2", b"250 next reply that is long enough\r\n"] {
                let mut bytes = wire.clone();
                bytes.extend_from_slice(trailer);
                let fast = parse_fast(&bytes, &limits).expect("fast path");
                assert_eq!(fast, (expected.clone(), wire.len()), "{len} {trailer:?}");
                assert_eq!(
                    Ok(Some(fast)),
                    general(&bytes, &limits),
                    "{len} {trailer:?}"
                );
                assert_eq!(fast_or_general_text(&bytes), text, "{len} {trailer:?}");
            }
        }
    }

    /// The text that `parse_reply` gives.
    fn fast_or_general_text(bytes: &[u8]) -> Vec<u8> {
        parse_reply(bytes).unwrap().unwrap().0.text().to_vec()
    }

    proptest! {
        /// The fast path agrees with the general path: whenever it answers, the general path gives the same reply
        /// and length (and `parse_reply` always gives the general path's result).
        #[test]
        fn fast_path_matches_the_general_path(
            bytes in prop::collection::vec(wire_byte(), 0..300),
            max_line_len in 0usize..60,
            max_lines in 0usize..8,
            max_reply_len in 0usize..200,
        ) {
            for limits in [limits(max_line_len, max_lines, max_reply_len), ReplyLimits::default()] {
                if let Some(fast) = parse_fast(&bytes, &limits) {
                    prop_assert_eq!(Ok(Some(fast)), general(&bytes, &limits));
                }
            }
            prop_assert_eq!(parse_reply(&bytes), general(&bytes, &ReplyLimits::default()));
        }

        #[test]
        fn fast_path_matches_the_general_path_on_valid_replies(
            replies in prop::collection::vec(valid_reply(), 1..4),
            max_line_len in 4usize..40,
            max_lines in 1usize..8,
            max_reply_len in 0usize..120,
        ) {
            let mut wire = Vec::new();
            for (bytes, _) in &replies {
                wire.extend_from_slice(bytes);
            }
            for limits in [limits(max_line_len, max_lines, max_reply_len), ReplyLimits::default()] {
                if let Some(fast) = parse_fast(&wire, &limits) {
                    prop_assert_eq!(Ok(Some(fast)), general(&wire, &limits));
                }
            }
            let fast = parse_fast(&wire, &ReplyLimits::default());
            prop_assert_eq!(fast.map(|(reply, _)| reply), Some(replies[0].1.clone()));
        }

        #[test]
        fn arbitrary_bytes_never_panic_or_overbuffer(
            bytes in prop::collection::vec(wire_byte(), 0..400),
            points in prop::collection::vec(any::<usize>(), 0..8),
            max_line_len in 0usize..40,
            max_lines in 0usize..6,
            max_reply_len in 0usize..120,
        ) {
            let limits = limits(max_line_len, max_lines, max_reply_len);
            let whole = feed_whole(&bytes, limits);
            let mut framer = ReplyFramer::new(limits);
            let mut results = Vec::new();
            'chunks: for chunk in split_at_points(&bytes, &points) {
                let mut input = &chunk[..];
                loop {
                    let result = framer.push(&mut input);
                    prop_assert!(framer.buffered() <= max_line_len + max_reply_len);
                    match result {
                        Ok(Some(reply)) => results.push(Ok(reply)),
                        Ok(None) => break,
                        Err(error) => {
                            results.push(Err(error));
                            break 'chunks;
                        }
                    }
                    if input.is_empty() {
                        break;
                    }
                }
            }
            prop_assert_eq!(results, whole);
            let _ = parse_reply(&bytes);
        }

        #[test]
        fn valid_replies_parse_the_same_in_any_split(
            replies in prop::collection::vec(valid_reply(), 1..5),
            points in prop::collection::vec(any::<usize>(), 0..10),
        ) {
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for (bytes, reply) in replies {
                wire.extend_from_slice(&bytes);
                expected.push(Ok(reply));
            }
            prop_assert_eq!(&feed_whole(&wire, ReplyLimits::default()), &expected);
            let chunks = split_at_points(&wire, &points);
            let split = feed(&mut ReplyFramer::default(), chunks.iter().map(Vec::as_slice));
            prop_assert_eq!(&split, &expected);
            let (first, used) = parse_reply(&wire).unwrap().unwrap();
            prop_assert_eq!(Ok(first), expected[0].clone());
            prop_assert!(used <= wire.len());
        }
    }
}
