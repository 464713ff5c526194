//! Independent reference implementations the targets compare the core against.
//!
//! Each one is written from the RFCs and the core's documented contract, byte at a time and without the core's
//! helpers (in particular not `smtp_proto::body::{unstuff, normalize_line_endings}`): slow and obvious on purpose,
//! so that a shared mistake is unlikely.

use smtp_proto::ReplyLimits;

// ----- reply framing (RFC 5321 §4.2) -----

/// A reply as the reference framer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefReply {
    /// The numeric code.
    pub code: u16,
    /// The text of each line after `NNN-`/`NNN ` (or empty for a bare `NNN`), joined with `\n`.
    pub text: Vec<u8>,
    /// Bytes of the stream this reply took.
    pub raw_len: usize,
}

/// Why the reference framer stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefError {
    /// A line (with its LF) exceeds the line cap.
    LineTooLong(usize),
    /// A reply exceeds its byte budget.
    ReplyTooLarge(usize),
    /// More lines than allowed.
    TooManyLines(usize),
    /// A line that is not `NNN[ -]text` / `NNN` with a valid code. The first 80 bytes of the line, CR removed.
    Malformed(Vec<u8>),
    /// A line whose code differs from the reply's first line.
    InconsistentCode(u16, u16),
}

/// Frames a whole stream the way the framer's documentation says, returning the complete replies and the error
/// that ended the stream, if any (an unfinished reply at the end is neither).
pub fn frame_replies(stream: &[u8], limits: &ReplyLimits) -> (Vec<RefReply>, Option<RefError>) {
    let mut replies = Vec::new();
    let mut pos = 0;
    // The reply in progress.
    let mut first_code: Option<u16> = None;
    let mut lines = 0usize;
    let mut len = 0usize;
    let mut text: Vec<u8> = Vec::new();
    let mut start = 0;
    while pos < stream.len() {
        // The most bytes the next line may take, LF included, and the error past it.
        let budget = limits.max_reply_len.saturating_sub(len);
        let (cap, too_long) = if limits.max_line_len <= budget {
            (
                limits.max_line_len,
                RefError::LineTooLong(limits.max_line_len),
            )
        } else {
            (budget, RefError::ReplyTooLarge(limits.max_reply_len))
        };
        let mut end = None;
        let mut i = pos;
        while i < stream.len() {
            if stream[i] == b'\n' {
                end = Some(i);
                break;
            }
            i += 1;
        }
        let raw = match end {
            Some(lf) if lf + 1 - pos <= cap => lf + 1 - pos,
            Some(_) => return (replies, Some(too_long)),
            None if stream.len() - pos >= cap => return (replies, Some(too_long)),
            None => break,
        };
        let mut line = &stream[pos..pos + raw - 1];
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        let malformed = || RefError::Malformed(line[..line.len().min(80)].to_vec());
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return (replies, Some(malformed()));
        }
        let code = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        let (last, line_text): (bool, &[u8]) = match line.get(3) {
            None => (true, b""),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return (replies, Some(malformed())),
        };
        if !(2..=5).contains(&(code / 100)) || (code / 10) % 10 > 5 {
            return (replies, Some(malformed()));
        }
        match first_code {
            None => first_code = Some(code),
            Some(first) if first != code => {
                return (replies, Some(RefError::InconsistentCode(first, code)));
            }
            Some(_) => {}
        }
        lines += 1;
        len += raw;
        if lines > limits.max_lines || (!last && lines >= limits.max_lines) {
            return (replies, Some(RefError::TooManyLines(limits.max_lines)));
        }
        if lines > 1 {
            text.push(b'\n');
        }
        text.extend_from_slice(line_text);
        pos += raw;
        if last {
            replies.push(RefReply {
                code,
                text: std::mem::take(&mut text),
                raw_len: pos - start,
            });
            first_code = None;
            lines = 0;
            len = 0;
            start = pos;
        }
    }
    (replies, None)
}

/// The RFC 3463 enhanced code at the start of a reply's first line, when its class matches the reply code
/// (RFC 2034 §4): `class "." 1*3DIGIT "." 1*3DIGIT` followed by a space or the end of the line.
pub fn enhanced_code(code: u16, text: &[u8]) -> Option<(u8, u16, u16)> {
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let class = *first.first()?;
    if !matches!(class, b'2' | b'4' | b'5')
        || u16::from(class - b'0') != code / 100
        || first.get(1) != Some(&b'.')
    {
        return None;
    }
    // 1 to 3 digits from `i`: the value and where they end.
    let number = |i: usize| -> Option<(u16, usize)> {
        let mut j = i;
        let mut value = 0u16;
        while j < first.len() && first[j].is_ascii_digit() && j - i < 3 {
            value = value * 10 + u16::from(first[j] - b'0');
            j += 1;
        }
        (j > i).then_some((value, j))
    };
    let (subject, i) = number(2)?;
    if first.get(i) != Some(&b'.') {
        return None;
    }
    let (detail, i) = number(i + 1)?;
    match first.get(i) {
        None | Some(b' ') => Some((class - b'0', subject, detail)),
        Some(_) => None,
    }
}

// ----- message bodies (RFC 5321 §4.5.2, §2.3.8) -----

/// Every bare CR and bare LF becomes CRLF; CRLF stays.
pub fn normalize(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut previous_cr = false;
    for &b in body {
        match b {
            b'\n' if previous_cr => {
                // The LF of a CRLF: already written with the CR.
                previous_cr = false;
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                previous_cr = true;
            }
            _ => {
                out.push(b);
                previous_cr = false;
            }
        }
    }
    out
}

/// What `DATA` must put on the wire for `body`: normalized, a dot added before every line that starts with one,
/// CRLF added if the body does not end with one, then `.` CRLF.
pub fn stuff(body: &[u8]) -> Vec<u8> {
    let normalized = normalize(body);
    let mut out = Vec::new();
    let mut at_line_start = true;
    for (i, &b) in normalized.iter().enumerate() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n' && i > 0 && normalized[i - 1] == b'\r';
    }
    if !normalized.is_empty() && !normalized.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// What a strict receiving server makes of `DATA` wire bytes: the body with leading dots un-doubled, ending at the
/// first line that is a lone dot. Errors on a bare CR or LF anywhere, a missing terminator, or bytes after it.
pub fn unstuff(wire: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut body = Vec::new();
    let mut rest = wire;
    loop {
        // One line, which must end with CRLF.
        let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') else {
            return Err("the data ends without a terminator line");
        };
        if rest[end] == b'\n' {
            return Err("bare LF on the wire");
        }
        if rest.get(end + 1) != Some(&b'\n') {
            return Err("bare CR on the wire");
        }
        let line = &rest[..end];
        rest = &rest[end + 2..];
        if line == b"." {
            return if rest.is_empty() {
                Ok(body)
            } else {
                Err("bytes after the terminator")
            };
        }
        body.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        body.extend_from_slice(b"\r\n");
    }
}

/// True when `wire` contains a CR not followed by LF or an LF not preceded by CR.
pub fn has_bare_cr_or_lf(wire: &[u8]) -> bool {
    wire.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => wire.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || wire[i - 1] != b'\r',
        _ => false,
    })
}

/// The first offset of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ----- xtext (RFC 3461 §4) -----

/// Decodes xtext: `+XX` (upper-case hex) for bytes outside `!`..`~`, `+` and `=`.
pub fn xtext_decode(s: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => {
                let v = hex(*s.get(i + 1)?)? * 16 + hex(*s.get(i + 2)?)?;
                // Only what had to be encoded is encoded.
                if (33..=126).contains(&v) && v != b'+' && v != b'=' {
                    return None;
                }
                out.push(v);
                i += 3;
            }
            b'!'..=b'~' if s[i] != b'=' => {
                out.push(s[i]);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Decodes RFC 6533 `utf-8-addr-xtext`: `\x{HEX}` for characters that cannot appear as is.
pub fn utf8_xtext_decode(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if let Some(tail) = rest.strip_prefix("\\x{") {
            let close = tail.find('}')?;
            let hex = &tail[..close];
            if hex.is_empty() || hex.len() > 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
            rest = &tail[close + 1..];
        } else {
            // Printable ASCII except `+`, `=` and `\` may appear as is.
            if !matches!(c, '!'..='*' | ','..='<' | '>'..='[' | ']'..='~') {
                return None;
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_stuffing() {
        assert_eq!(stuff(b""), b".\r\n");
        assert_eq!(stuff(b".a\nb\r.\r\n"), b"..a\r\nb\r\n..\r\n.\r\n");
        assert_eq!(stuff(b"x"), b"x\r\n.\r\n");
        assert_eq!(
            unstuff(b"..a\r\nb\r\n..\r\n.\r\n").unwrap(),
            b".a\r\nb\r\n.\r\n"
        );
        assert!(unstuff(b"a\n.\r\n").is_err());
        assert!(unstuff(b".\r\nx").is_err());
        assert_eq!(normalize(b"a\r\rb\n\r\n"), b"a\r\n\r\nb\r\n\r\n");
    }

    #[test]
    fn reference_framing() {
        let limits = ReplyLimits::default();
        let (r, e) = frame_replies(b"250-a\r\n250 b\n220\r\n25", &limits);
        assert_eq!(e, None);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].text, b"a\nb");
        assert_eq!(r[1].raw_len, 5);
        assert_eq!(enhanced_code(550, b"5.1.1 x\ny"), Some((5, 1, 1)));
        assert_eq!(enhanced_code(550, b"4.1.1 x"), None);
        assert_eq!(enhanced_code(250, b"2.0.0"), Some((2, 0, 0)));
        assert_eq!(enhanced_code(250, b"2.0.0000"), None);
    }
}
