//! Server replies (RFC 5321 §4.2): reply codes, their classes, RFC 3463 enhanced status codes and the reply text.

use std::fmt;

use nom::branch::alt;
use nom::combinator::{eof, value};
use nom::error::ErrorKind;
use nom::{IResult, Parser};

/// A three-digit SMTP reply code, always in `200..=599` with a second digit in `0..=5` (RFC 5321 §4.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(u16);

/// The class of a reply, from its first digit (RFC 5321 §4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplyClass {
    /// `2yz`: the requested action completed.
    PositiveCompletion,
    /// `3yz`: accepted, more information is needed (354 for DATA, 334 for AUTH).
    PositiveIntermediate,
    /// `4yz`: not accepted this time; the same command may succeed later.
    TransientNegative,
    /// `5yz`: not accepted; repeating it unchanged will fail again.
    PermanentNegative,
}

impl ReplyCode {
    /// 220 `<domain> Service ready`.
    pub const SERVICE_READY: Self = Self(220);
    /// 221 `<domain> Service closing transmission channel`.
    pub const CLOSING: Self = Self(221);
    /// 235 authentication succeeded (RFC 4954).
    pub const AUTH_SUCCEEDED: Self = Self(235);
    /// 250 requested mail action okay, completed.
    pub const OK: Self = Self(250);
    /// 334 AUTH continuation (RFC 4954).
    pub const AUTH_CONTINUE: Self = Self(334);
    /// 354 start mail input.
    pub const START_MAIL_INPUT: Self = Self(354);
    /// 421 service not available, closing transmission channel.
    pub const SERVICE_NOT_AVAILABLE: Self = Self(421);

    /// Validates a numeric code: `None` unless it is `2yz`..`5yz` with `y` in `0..=5`.
    pub const fn new(code: u16) -> Option<Self> {
        let first = code / 100;
        let second = (code / 10) % 10;
        if first >= 2 && first <= 5 && second <= 5 {
            Some(Self(code))
        } else {
            None
        }
    }

    /// The code written with these three ASCII digits, if valid: the same as [`ReplyCode::new`] without the
    /// divisions, for the reply parser.
    #[inline]
    pub(crate) const fn from_digits(a: u8, b: u8, c: u8) -> Option<Self> {
        if a >= b'2' && a <= b'5' && b >= b'0' && b <= b'5' && c >= b'0' && c <= b'9' {
            Some(Self(
                (a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16,
            ))
        } else {
            None
        }
    }

    /// The numeric value.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The class given by the first digit.
    pub const fn class(self) -> ReplyClass {
        match self.0 / 100 {
            2 => ReplyClass::PositiveCompletion,
            3 => ReplyClass::PositiveIntermediate,
            4 => ReplyClass::TransientNegative,
            _ => ReplyClass::PermanentNegative,
        }
    }

    /// `2yz`.
    pub const fn is_positive_completion(self) -> bool {
        self.0 / 100 == 2
    }

    /// `3yz`.
    pub const fn is_positive_intermediate(self) -> bool {
        self.0 / 100 == 3
    }

    /// `4yz`.
    pub const fn is_transient(self) -> bool {
        self.0 / 100 == 4
    }

    /// `5yz`.
    pub const fn is_permanent(self) -> bool {
        self.0 / 100 == 5
    }
}

impl fmt::Debug for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An RFC 3463 enhanced status code `class.subject.detail`, e.g. `5.1.1`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// The subject, 0..=999 (RFC 3463 §2: one to three digits).
    pub subject: u16,
    /// The detail, 0..=999.
    pub detail: u16,
}

impl EnhancedCode {
    /// What the code means, from the IANA "Enumerated Status Codes" registry (RFC 3463 and later RFCs: 4954,
    /// 5248, 6531, 6710, 7293, 7372, 7505, 8098, 8617, 8689). `None` for codes the registry does not list.
    pub fn meaning(&self) -> Option<&'static str> {
        let text = match (self.subject, self.detail) {
            (0, 0) => "other undefined status",
            (1, 0) => "other address status",
            (1, 1) => "bad destination mailbox address",
            (1, 2) => "bad destination system address",
            (1, 3) => "bad destination mailbox address syntax",
            (1, 4) => "destination mailbox address ambiguous",
            (1, 5) => "destination address valid",
            (1, 6) => "destination mailbox has moved, no forwarding address",
            (1, 7) => "bad sender's mailbox address syntax",
            (1, 8) => "bad sender's system address",
            (1, 9) => "message relayed to non-compliant mailer",
            (1, 10) => "recipient address has null MX",
            (2, 0) => "other or undefined mailbox status",
            (2, 1) => "mailbox disabled, not accepting messages",
            (2, 2) => "mailbox full",
            (2, 3) => "message length exceeds administrative limit",
            (2, 4) => "mailing list expansion problem",
            (3, 0) => "other or undefined mail system status",
            (3, 1) => "mail system full",
            (3, 2) => "system not accepting network messages",
            (3, 3) => "system not capable of selected features",
            (3, 4) => "message too big for system",
            (3, 5) => "system incorrectly configured",
            (3, 6) => "requested priority was changed",
            (4, 0) => "other or undefined network or routing status",
            (4, 1) => "no answer from host",
            (4, 2) => "bad connection",
            (4, 3) => "directory server failure",
            (4, 4) => "unable to route",
            (4, 5) => "mail system congestion",
            (4, 6) => "routing loop detected",
            (4, 7) => "delivery time expired",
            (5, 0) => "other or undefined protocol status",
            (5, 1) => "invalid command",
            (5, 2) => "syntax error",
            (5, 3) => "too many recipients",
            (5, 4) => "invalid command arguments",
            (5, 5) => "wrong protocol version",
            (5, 6) => "authentication exchange line is too long",
            (6, 0) => "other or undefined media error",
            (6, 1) => "media not supported",
            (6, 2) => "conversion required and prohibited",
            (6, 3) => "conversion required but not supported",
            (6, 4) => "conversion with loss performed",
            (6, 5) => "conversion failed",
            (6, 6) => "message content not available",
            (6, 7) => "non-ASCII addresses not permitted for that sender or recipient",
            (6, 8) => "UTF-8 string reply is required, but not permitted by the client",
            (6, 9) => "UTF-8 header message cannot be transferred to one or more recipients",
            (7, 0) => "other or undefined security status",
            (7, 1) => "delivery not authorized, message refused",
            (7, 2) => "mailing list expansion prohibited",
            (7, 3) => "security conversion required but not possible",
            (7, 4) => "security features not supported",
            (7, 5) => "cryptographic failure",
            (7, 6) => "cryptographic algorithm not supported",
            (7, 7) => "message integrity failure",
            (7, 8) => "authentication credentials invalid",
            (7, 9) => "authentication mechanism is too weak",
            (7, 10) => "encryption needed",
            (7, 11) => "encryption required for requested authentication mechanism",
            (7, 12) => "a password transition is needed",
            (7, 13) => "user account disabled",
            (7, 14) => "trust relationship required",
            (7, 15) => "priority level is too low",
            (7, 16) => "message is too big for the specified priority",
            (7, 17) => "mailbox owner has changed",
            (7, 18) => "domain owner has changed",
            (7, 19) => "RRVS test cannot be completed",
            (7, 20) => "no passing DKIM signature found",
            (7, 21) => "no acceptable DKIM signature found",
            (7, 22) => "no valid author-matched DKIM signature found",
            (7, 23) => "SPF validation failed",
            (7, 24) => "SPF validation error",
            (7, 25) => "reverse DNS validation failed",
            (7, 26) => "multiple authentication checks failed",
            (7, 27) => "sender address has null MX",
            (7, 28) => "mail flood detected",
            (7, 29) => "ARC validation failure",
            (7, 30) => "REQUIRETLS support required",
            _ => return None,
        };
        Some(text)
    }
}

impl fmt::Debug for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One complete server reply: its code, the enhanced code of its first line if present, and the text of all lines.
///
/// The text is kept as bytes (servers send non-UTF-8 text); [`Reply::message`] gives a lossy, readable form.
///
/// The layout serves the reply parser's hot path, where a reply is built and then moved out of a
/// `Result<Option<(Reply, usize)>, _>`: a move copies 16-byte blocks, and a block loaded right after it was written
/// by narrower stores stalls on store forwarding. So a short text is written in whole 16-byte blocks, the length,
/// code and enhanced code share one 8-byte word, and the only niche (the vector's capacity) is an aligned word
/// after them.
#[derive(Clone)]
#[repr(C, align(16))]
pub struct Reply {
    /// The text when it fits (`len <= REPLY_INLINE`): its first `len` bytes; the bytes after them are unspecified
    /// (whatever followed the text in the input).
    inline: [[u8; 16]; INLINE_BLOCKS],
    /// The text's length (or [`HEAP`]), the code and the enhanced code: see [`Meta`].
    meta: Meta,
    /// The text when it does not fit inline (`len == HEAP`); empty, without an allocation, otherwise.
    heap: Vec<u8>,
}

impl Reply {
    /// Builds a reply from its code and the text of each line (what follows `NNN-`/`NNN `), for tests and
    /// synthetic replies.
    ///
    /// The enhanced status code is taken from the first line when it is present and its class matches the reply
    /// code's first digit (RFC 2034 §4). An empty `lines` gives a reply with empty text, like a bare `250` line.
    /// A line should not contain `\n`: the text uses it to separate lines, so an embedded `\n` starts a new line.
    pub fn new(code: ReplyCode, lines: &[&[u8]]) -> Reply {
        let len = lines.iter().map(|l| l.len() + 1).sum::<usize>();
        let mut text = Vec::with_capacity(len.saturating_sub(1));
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                text.push(b'\n');
            }
            text.extend_from_slice(line);
        }
        if text.len() <= REPLY_INLINE {
            Reply::from_text(code, &text)
        } else {
            Reply::from_parts(code, text)
        }
    }

    /// A reply whose text is a copy of `text`.
    #[inline(always)]
    pub(crate) fn from_text(code: ReplyCode, text: &[u8]) -> Reply {
        Reply::from_input(code, text, text.len())
    }

    /// A reply whose text is a copy of `input[..len]`: up to [`REPLY_INLINE`] bytes it is copied inline, in 16-byte
    /// blocks read from `input` where it has them (the bytes after the text come along and are ignored), else
    /// assembled in a register from overlapping loads of the text.
    #[inline(always)]
    pub(crate) fn from_input(code: ReplyCode, input: &[u8], len: usize) -> Reply {
        let text = &input[..len];
        let enhanced = enhanced_for(code, text);
        let block = |at: usize| match input.get(at..).and_then(<[u8]>::first_chunk::<16>) {
            Some(block) => *block,
            // Fewer than 16 bytes of input from `at`, hence of text too.
            None => load_short(&text[at..]).to_le_bytes(),
        };
        if len <= 16 {
            let mut inline = [[0; 16]; INLINE_BLOCKS];
            inline[0] = block(0);
            return Reply {
                inline,
                meta: Meta::new(len as u8, code, enhanced),
                heap: Vec::new(),
            };
        }
        let mut inline = [[0; 16]; INLINE_BLOCKS];
        if len > REPLY_INLINE {
            return Reply {
                inline,
                meta: Meta::new(HEAP, code, enhanced),
                heap: text.to_vec(),
            };
        }
        for (k, dst) in inline.iter_mut().enumerate() {
            if 16 * k >= len {
                break;
            }
            *dst = block(16 * k);
        }
        Reply {
            inline,
            // `len <= REPLY_INLINE < HEAP`.
            meta: Meta::new(len as u8, code, enhanced),
            heap: Vec::new(),
        }
    }

    /// Builds a reply from its code and its `\n`-joined text, finding the enhanced code in the first line. Keeps the
    /// vector's allocation.
    #[inline(always)]
    pub(crate) fn from_parts(code: ReplyCode, text: Vec<u8>) -> Reply {
        let enhanced = enhanced_for(code, &text);
        Reply {
            inline: [[0; 16]; INLINE_BLOCKS],
            meta: Meta::new(HEAP, code, enhanced),
            heap: text,
        }
    }

    /// The reply code, shared by every line.
    #[inline]
    pub fn code(&self) -> ReplyCode {
        self.meta.code()
    }

    /// The class given by the code's first digit.
    pub fn class(&self) -> ReplyClass {
        self.code().class()
    }

    /// The RFC 3463 enhanced status code at the start of the first line, if the server sent one whose class matches
    /// the reply code (RFC 2034 §4).
    #[inline]
    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.meta.enhanced()
    }

    /// The raw text of every line after `NNN-`/`NNN ` (enhanced codes included), joined with `\n`.
    ///
    /// Not sanitized: it may hold any byte but `\n` inside a line. Use [`Reply::message`] to show it to a person.
    #[inline]
    pub fn text(&self) -> &[u8] {
        match self.inline.as_flattened().get(..self.meta.len()) {
            Some(text) => text,
            None => &self.heap,
        }
    }

    /// The raw text of each line, in order. There is always at least one item: a reply that is only `250` yields
    /// one empty line.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.text().split(|&b| b == b'\n')
    }

    /// The text as one readable line, safe to print in a terminal or a log.
    ///
    /// Invalid UTF-8 becomes U+FFFD, as do control characters (a tab becomes a space). The enhanced code is kept
    /// once: a later line that repeats the first line's code has it removed. Lines are trimmed of surrounding
    /// spaces, empty lines are skipped and the rest are joined with a single space.
    pub fn message(&self) -> String {
        let mut out = String::with_capacity(self.text().len());
        self.write_message(&mut out)
            .expect("writing to a String cannot fail");
        out
    }

    /// Writes [`Reply::message`] to `out` without building an intermediate string.
    fn write_message<W: fmt::Write>(&self, out: &mut W) -> fmt::Result {
        let mut first = true;
        for (i, line) in self.lines().enumerate() {
            let mut line = line;
            if i > 0
                && let Some(expected) = self.enhanced()
                && let Some((code, len)) = parse_enhanced_code(line)
                && code == expected
            {
                line = &line[len..];
            }
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            if !first {
                out.write_char(' ')?;
            }
            first = false;
            write_sanitized(out, line)?;
        }
        Ok(())
    }

    /// `2yz`: the command succeeded.
    pub fn is_positive_completion(&self) -> bool {
        self.code().is_positive_completion()
    }

    /// `3yz`: the server waits for more (354 after DATA, 334 during AUTH).
    pub fn is_positive_intermediate(&self) -> bool {
        self.code().is_positive_intermediate()
    }

    /// `4yz`: a transient failure; the same command may succeed later.
    pub fn is_transient(&self) -> bool {
        self.code().is_transient()
    }

    /// `5yz`: a permanent failure; repeating the command unchanged will fail again.
    pub fn is_permanent(&self) -> bool {
        self.code().is_permanent()
    }
}

/// `550 5.1.1 text of all lines`, on one line, sanitized as by [`Reply::message`].
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())?;
        if self.lines().any(|l| !l.trim_ascii().is_empty()) {
            f.write_str(" ")?;
            self.write_message(f)?;
        }
        Ok(())
    }
}

/// `Reply(550 5.1.1 text of all lines)`.
impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({self})")
    }
}

/// Reply texts up to this many bytes are stored inside the [`Reply`], without a heap allocation: almost every
/// single-line reply (`250 2.1.5 Ok`, `354 ...`, a queue id, a banner) fits.
pub(crate) const REPLY_INLINE: usize = 16 * INLINE_BLOCKS;
const _: () = assert!(REPLY_INLINE < HEAP as usize);

/// The bytes of `text` (at most 16) as a little-endian word, from at most two overlapping loads: the bytes both
/// loads read are the same, so or-ing the two places each byte once.
#[inline(always)]
fn load_short(text: &[u8]) -> u128 {
    let n = text.len();
    debug_assert!(n <= 16);
    if let (Some(lo), Some(hi)) = (text.first_chunk::<8>(), text.last_chunk::<8>()) {
        u128::from(u64::from_le_bytes(*lo)) | u128::from(u64::from_le_bytes(*hi)) << (8 * (n - 8))
    } else if let (Some(lo), Some(hi)) = (text.first_chunk::<4>(), text.last_chunk::<4>()) {
        u128::from(u32::from_le_bytes(*lo)) | u128::from(u32::from_le_bytes(*hi)) << (8 * (n - 4))
    } else if let (Some(lo), Some(hi)) = (text.first_chunk::<2>(), text.last_chunk::<2>()) {
        u128::from(u16::from_le_bytes(*lo)) | u128::from(u16::from_le_bytes(*hi)) << (8 * (n - 2))
    } else {
        text.first().map_or(0, |&b| u128::from(b))
    }
}

impl PartialEq for Reply {
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code()
            && self.enhanced() == other.enhanced()
            && self.text() == other.text()
    }
}

impl Eq for Reply {}

/// The 16-byte blocks of a reply's inline text.
const INLINE_BLOCKS: usize = 6;

/// [`Meta`] length of a text kept on the heap.
const HEAP: u8 = u8::MAX;

/// A reply's text length, code and enhanced code in one word, written with one store: bits 0-7 the length of the
/// inline text or [`HEAP`], 8-23 the code, 24-31 the enhanced code's class (0 for none), 32-47 its subject, 48-63
/// its detail.
#[derive(Clone, Copy)]
struct Meta(u64);

impl Meta {
    #[inline(always)]
    fn new(len: u8, code: ReplyCode, enhanced: Option<EnhancedCode>) -> Self {
        let enhanced = enhanced.map_or(0, |e| {
            u64::from(e.class) | u64::from(e.subject) << 8 | u64::from(e.detail) << 24
        });
        Self(u64::from(len) | u64::from(code.get()) << 8 | enhanced << 24)
    }

    /// The inline text's length, or [`HEAP`] (more than the inline capacity).
    #[inline(always)]
    fn len(self) -> usize {
        usize::from(self.0 as u8)
    }

    #[inline(always)]
    fn code(self) -> ReplyCode {
        ReplyCode((self.0 >> 8) as u16)
    }

    #[inline(always)]
    fn enhanced(self) -> Option<EnhancedCode> {
        // Classes are 2, 4 or 5: never 0.
        match (self.0 >> 24) as u8 {
            0 => None,
            class => Some(EnhancedCode {
                class,
                subject: (self.0 >> 32) as u16,
                detail: (self.0 >> 48) as u16,
            }),
        }
    }
}

/// Bytes stored inline when there are at most `N` of them, on the heap otherwise. Short texts are the common case
/// (reply texts, a server's domain): this saves an allocation and a free for each.
#[derive(Clone)]
pub(crate) enum SmallBytes<const N: usize> {
    Inline { len: u8, buf: [u8; N] },
    Heap(Vec<u8>),
}

impl<const N: usize> SmallBytes<N> {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { len, buf } => &buf[..usize::from(*len)],
            Self::Heap(v) => v,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Appends `bytes`, moving to the heap when they no longer fit inline.
    #[inline]
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        match self {
            Self::Inline { len, buf } => {
                let start = usize::from(*len);
                let end = start + bytes.len();
                if let Some(dst) = buf.get_mut(start..end) {
                    dst.copy_from_slice(bytes);
                    // `end <= N <= 255`.
                    *len = end as u8;
                } else {
                    let mut v = Vec::with_capacity(end.max(2 * N));
                    v.extend_from_slice(&buf[..start]);
                    v.extend_from_slice(bytes);
                    *self = Self::Heap(v);
                }
            }
            Self::Heap(v) => v.extend_from_slice(bytes),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, byte: u8) {
        self.extend_from_slice(&[byte]);
    }
}

impl<const N: usize> SmallBytes<N> {
    /// Empty, inline.
    pub(crate) const fn new() -> Self {
        Self::Inline {
            len: 0,
            buf: [0; N],
        }
    }
}

impl<const N: usize> Default for SmallBytes<N> {
    fn default() -> Self {
        Self::Inline {
            len: 0,
            buf: [0; N],
        }
    }
}

impl<const N: usize> From<Vec<u8>> for SmallBytes<N> {
    /// Keeps the vector's allocation (a text built on the heap stays there).
    fn from(v: Vec<u8>) -> Self {
        Self::Heap(v)
    }
}

impl<const N: usize> PartialEq for SmallBytes<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for SmallBytes<N> {}

impl<const N: usize> std::hash::Hash for SmallBytes<N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

/// The enhanced code of the first line of `text`, if its class matches the reply code (RFC 2034 §4).
fn enhanced_for(code: ReplyCode, text: &[u8]) -> Option<EnhancedCode> {
    // Cheap rejection of the common text without a code, and of a class that cannot match.
    match text {
        [class @ (b'2' | b'4' | b'5'), b'.', ..] if u16::from(class - b'0') == code.get() / 100 => {
        }
        _ => return None,
    }
    enhanced_fast(text)
}

/// [`enhanced_for`] with the nom grammar of [`parse_enhanced_code`]: the reference the fast path is tested against.
#[cfg(test)]
fn enhanced_for_nom(code: ReplyCode, text: &[u8]) -> Option<EnhancedCode> {
    match text {
        [class @ (b'2' | b'4' | b'5'), b'.', ..] if u16::from(class - b'0') == code.get() / 100 => {
        }
        _ => return None,
    }
    // The longest enhanced code is `5.999.999 `: 10 bytes; look no further than the first line.
    let head = &text[..text.len().min(10)];
    let head = match head.iter().position(|&b| b == b'\n') {
        Some(end) => &head[..end],
        None => head,
    };
    parse_enhanced_code(head).map(|(enhanced, _)| enhanced)
}

/// The enhanced code at the start of `text` (its class already checked), ended by a space, the end of the first
/// line or the end of the text: the grammar of [`parse_enhanced_code`] unrolled for the reply parser's hot path
/// (a differential property test holds it to the nom parser).
#[inline]
fn enhanced_fast(text: &[u8]) -> Option<EnhancedCode> {
    let [class, b'.', rest @ ..] = text else {
        return None;
    };
    let (subject, used) = digits_1_3(rest)?;
    let [b'.', rest @ ..] = &rest[used..] else {
        return None;
    };
    let (detail, used) = digits_1_3(rest)?;
    match rest.get(used) {
        None | Some(b' ' | b'\n') => Some(EnhancedCode {
            class: class - b'0',
            subject,
            detail,
        }),
        _ => None,
    }
}

/// One to three ASCII digits at the start of `s`: their value and count.
#[inline(always)]
fn digits_1_3(s: &[u8]) -> Option<(u16, usize)> {
    let digit = |i: usize| {
        s.get(i)
            .filter(|b| b.is_ascii_digit())
            .map(|b| u16::from(b - b'0'))
    };
    let a = digit(0)?;
    let Some(b) = digit(1) else {
        return Some((a, 1));
    };
    let Some(c) = digit(2) else {
        return Some((a * 10 + b, 2));
    };
    Some((a * 100 + b * 10 + c, 3))
}

/// Parses an RFC 3463 enhanced status code at the start of `text`: `class "." subject "." detail` with class 2, 4
/// or 5 and one to three digits in each other part, followed by a space or the end of `text`.
///
/// Returns the code and the number of bytes it takes, including the space after it. `5.1.1.1` and `5.1.1234` are
/// not codes.
pub(crate) fn parse_enhanced_code(text: &[u8]) -> Option<(EnhancedCode, usize)> {
    let class = byte_if(|b| matches!(b, b'2' | b'4' | b'5'));
    let dot = || byte_if(|b| b == b'.');
    let end = alt((value(1usize, byte_if(|b| b == b' ')), value(0usize, eof)));
    let mut parser = (class, dot(), number_1_3, dot(), number_1_3, end);
    let (rest, (class, _, subject, _, detail, _)) = parser.parse(text).ok()?;
    Some((
        EnhancedCode {
            class: class - b'0',
            subject,
            detail,
        },
        text.len() - rest.len(),
    ))
}

/// A nom parser for one byte satisfying `pred`. (nom's own byte-level parsers go through generic `Input` calls that
/// are not inlined across crates; these leaves keep reply parsing cheap.)
pub(crate) fn byte_if(pred: impl Fn(u8) -> bool) -> impl Fn(&[u8]) -> IResult<&[u8], u8> {
    move |input| match input.split_first() {
        Some((&b, rest)) if pred(b) => Ok((rest, b)),
        _ => Err(nom::Err::Error(nom::error::Error::new(
            input,
            ErrorKind::Satisfy,
        ))),
    }
}

/// A nom parser for a number of one to three ASCII digits (RFC 3463 subject and detail).
fn number_1_3(input: &[u8]) -> IResult<&[u8], u16> {
    let len = input
        .iter()
        .take(3)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if len == 0 {
        return Err(nom::Err::Error(nom::error::Error::new(
            input,
            ErrorKind::Digit,
        )));
    }
    let (digits, rest) = input.split_at(len);
    let value = digits
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    Ok((rest, value))
}

/// Writes `bytes` as text safe for a terminal: invalid UTF-8 and control characters (C0, DEL, C1) and Unicode
/// bidirectional overrides become U+FFFD; a tab becomes a space.
pub(crate) fn write_sanitized<W: fmt::Write>(out: &mut W, bytes: &[u8]) -> fmt::Result {
    // Common case: printable ASCII, written as it is in one call.
    if bytes.iter().all(|b| (0x20..0x7f).contains(b))
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        return out.write_str(text);
    }
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if valid.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            out.write_str(valid)?;
        } else {
            for c in valid.chars() {
                out.write_char(sanitize_char(c))?;
            }
        }
        if !chunk.invalid().is_empty() {
            out.write_char(char::REPLACEMENT_CHARACTER)?;
        }
    }
    Ok(())
}

/// The character to show for `c` in a terminal.
fn sanitize_char(c: char) -> char {
    match c {
        '\t' => ' ',
        // Bidirectional embeddings, overrides and isolates can reorder what a terminal shows.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => char::REPLACEMENT_CHARACTER,
        c if c.is_control() => char::REPLACEMENT_CHARACTER,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(n: u16) -> ReplyCode {
        ReplyCode::new(n).unwrap()
    }

    fn esc(class: u8, subject: u16, detail: u16) -> EnhancedCode {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    #[test]
    fn enhanced_code_grammar() {
        type Case = (&'static [u8], Option<(EnhancedCode, usize)>);
        let cases: &[Case] = &[
            (b"5.1.1 User unknown", Some((esc(5, 1, 1), 6))),
            (b"5.1.1", Some((esc(5, 1, 1), 5))),
            (b"2.0.0 OK", Some((esc(2, 0, 0), 6))),
            (b"4.7.26 try later", Some((esc(4, 7, 26), 7))),
            (b"5.123.456 x", Some((esc(5, 123, 456), 10))),
            (b"5.999.999", Some((esc(5, 999, 999), 9))),
            (b"5.01.001 x", Some((esc(5, 1, 1), 9))),
            (b"5.1.1  two spaces", Some((esc(5, 1, 1), 6))),
            (b"5.1.1.1 x", None),
            (b"5.1.1234 x", None),
            (b"5.1234.1 x", None),
            (b"5.1.1x", None),
            (b"5.1.1\tx", None),
            (b"5.1.1\n", None),
            (b"3.1.1 x", None),
            (b"1.1.1 x", None),
            (b"6.1.1 x", None),
            (b"55.1.1 x", None),
            (b"5..1 x", None),
            (b"5.1. x", None),
            (b"5.1 x", None),
            (b"5 x", None),
            (b" 5.1.1 x", None),
            (b"", None),
            (b"OK", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_enhanced_code(text),
                *expected,
                "{:?}",
                text.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn new_joins_lines_and_finds_the_enhanced_code() {
        let reply = Reply::new(code(550), &[b"5.1.1 No such user", b"5.1.1 here"]);
        assert_eq!(reply.code(), code(550));
        assert_eq!(reply.class(), ReplyClass::PermanentNegative);
        assert_eq!(reply.enhanced(), Some(esc(5, 1, 1)));
        assert_eq!(reply.text(), b"5.1.1 No such user\n5.1.1 here");
        assert_eq!(
            reply.lines().collect::<Vec<_>>(),
            [&b"5.1.1 No such user"[..], b"5.1.1 here"]
        );
    }

    #[test]
    fn enhanced_code_only_from_the_first_line_and_matching_class() {
        type Case = (u16, &'static [&'static [u8]], Option<EnhancedCode>);
        let cases: &[Case] = &[
            (250, &[b"2.1.5 Ok"], Some(esc(2, 1, 5))),
            (250, &[b"2.1.5"], Some(esc(2, 1, 5))),
            (250, &[b"2.1.5", b"more"], Some(esc(2, 1, 5))),
            (250, &[b"Ok"], None),
            (250, &[b""], None),
            (250, &[], None),
            (250, &[b"5.1.1 mismatched class"], None),
            (550, &[b"2.0.0 mismatched class"], None),
            (450, &[b"4.2.0 busy"], Some(esc(4, 2, 0))),
            (354, &[b"3.0.0 no class 3 in RFC 3463"], None),
            (550, &[b"5.1.1.1 too many parts"], None),
            (550, &[b"no code", b"5.1.1 on the second line"], None),
            (550, &[b"5.7.1234 detail too long"], None),
        ];
        for (n, lines, expected) in cases {
            let reply = Reply::new(code(*n), lines);
            assert_eq!(reply.enhanced(), *expected, "{reply:?}");
        }
    }

    #[test]
    fn lines_of_an_empty_reply() {
        let reply = Reply::new(code(250), &[]);
        assert_eq!(reply.text(), b"");
        assert_eq!(reply.lines().collect::<Vec<_>>(), [&b""[..]]);
        let reply = Reply::new(code(250), &[b"", b"x", b""]);
        assert_eq!(reply.lines().collect::<Vec<_>>(), [&b""[..], b"x", b""]);
    }

    #[test]
    fn message_strips_repeated_enhanced_codes() {
        let reply = Reply::new(
            code(550),
            &[
                b"5.7.26 This mail has been blocked.",
                b"5.7.26 ",
                b"5.7.26  Authentication results:",
                b"5.7.26  DKIM = did not pass",
                b"5.7.1 a different code stays",
                b"5.7.26",
            ],
        );
        assert_eq!(
            reply.message(),
            "5.7.26 This mail has been blocked. Authentication results: DKIM = did not pass \
             5.7.1 a different code stays"
        );
        assert_eq!(
            reply.to_string(),
            "550 5.7.26 This mail has been blocked. Authentication results: DKIM = did not pass \
             5.7.1 a different code stays"
        );
    }

    #[test]
    fn message_without_enhanced_codes_keeps_code_like_text() {
        // The first line's code does not match the reply class, so nothing is stripped.
        let reply = Reply::new(code(250), &[b"5.1.1 odd", b"5.1.1 odd again"]);
        assert_eq!(reply.message(), "5.1.1 odd 5.1.1 odd again");
        let reply = Reply::new(code(250), &[b"mx.example.com", b"PIPELINING", b"SIZE 100"]);
        assert_eq!(reply.message(), "mx.example.com PIPELINING SIZE 100");
    }

    #[test]
    fn message_is_terminal_safe() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain ascii", "plain ascii"),
            (b"caf\xc3\xa9 ok", "café ok"),
            (b"bad \xff\xfe utf8", "bad \u{fffd}\u{fffd} utf8"),
            (b"trunc \xe2\x82", "trunc \u{fffd}"),
            (b"\x1b[31mred\x1b[0m", "\u{fffd}[31mred\u{fffd}[0m"),
            (b"csi \xc2\x9b2J", "csi \u{fffd}2J"),
            (b"nul\x00cr\rdel\x7f", "nul\u{fffd}cr\u{fffd}del\u{fffd}"),
            (b"tab\there", "tab here"),
            (b"bidi \xe2\x80\xae evil", "bidi \u{fffd} evil"),
        ];
        for (text, expected) in cases {
            let reply = Reply::new(code(250), &[text]);
            assert_eq!(reply.message(), *expected);
            assert!(!reply.to_string().chars().any(char::is_control));
        }
    }

    #[test]
    fn display_and_debug() {
        let reply = Reply::new(code(550), &[b"5.1.1 <bob@example.com>: user unknown"]);
        assert_eq!(
            reply.to_string(),
            "550 5.1.1 <bob@example.com>: user unknown"
        );
        assert_eq!(
            format!("{reply:?}"),
            "Reply(550 5.1.1 <bob@example.com>: user unknown)"
        );
        assert_eq!(Reply::new(code(250), &[]).to_string(), "250");
        assert_eq!(Reply::new(code(250), &[b"  "]).to_string(), "250");
        assert_eq!(format!("{:?}", Reply::new(code(221), &[])), "Reply(221)");
        assert_eq!(
            Reply::new(code(250), &[b"", b"second"]).to_string(),
            "250 second"
        );
    }

    proptest::proptest! {
        /// The unrolled enhanced-code parser agrees with the nom grammar on any text.
        #[test]
        fn enhanced_fast_matches_nom(
            n in proptest::sample::select(vec![250u16, 354, 451, 550, 221]),
            text in proptest::collection::vec(
                proptest::prop_oneof![
                    6 => proptest::sample::select(&b"0123456789.. \n245x"[..]),
                    1 => proptest::arbitrary::any::<u8>(),
                ],
                0..16,
            ),
        ) {
            let code = code(n);
            proptest::prop_assert_eq!(enhanced_for(code, &text), enhanced_for_nom(code, &text));
        }
    }

    #[test]
    fn class_predicates_delegate_to_the_code() {
        let cases = [
            (220, true, false, false, false),
            (334, false, true, false, false),
            (421, false, false, true, false),
            (554, false, false, false, true),
        ];
        for (n, completion, intermediate, transient, permanent) in cases {
            let reply = Reply::new(code(n), &[b"x"]);
            assert_eq!(reply.is_positive_completion(), completion, "{n}");
            assert_eq!(reply.is_positive_intermediate(), intermediate, "{n}");
            assert_eq!(reply.is_transient(), transient, "{n}");
            assert_eq!(reply.is_permanent(), permanent, "{n}");
        }
    }
}
