//! What the server offers, from its EHLO or LHLO reply (RFC 5321 §4.1.1.1 and the extension RFCs).
//!
//! The first line of the reply is the server's domain and greeting; each later line is an `ehlo-keyword`
//! (letters, digits and `-`, case-insensitive) followed by space-separated parameters. Lines that do not fit that
//! grammar are ignored: a server's oddities must never stop a client from sending mail.

use crate::auth::Mechanism;
#[cfg(doc)]
use crate::framer::parse_reply;
use std::sync::OnceLock;

use crate::framer::{FastLines, ReplyError, ReplyLimits, low_bytes, scan_with};
use crate::reply::{Reply, SmallBytes, write_sanitized};

/// An SMTP service extension the client knows how to use or report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Extension {
    /// `SIZE` (RFC 1870): message size declaration.
    Size,
    /// `PIPELINING` (RFC 2920): several commands per write.
    Pipelining,
    /// `8BITMIME` (RFC 6152).
    EightBitMime,
    /// `SMTPUTF8` (RFC 6531): internationalized addresses and headers.
    SmtpUtf8,
    /// `CHUNKING` (RFC 3030): `BDAT`.
    Chunking,
    /// `BINARYMIME` (RFC 3030).
    BinaryMime,
    /// `DSN` (RFC 3461): delivery status notifications.
    Dsn,
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    EnhancedStatusCodes,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH` (RFC 4954), including the pre-standard `AUTH=` form.
    Auth,
    /// `REQUIRETLS` (RFC 8689).
    RequireTls,
    /// `LIMITS` (RFC 9422).
    Limits,
    /// `MT-PRIORITY` (RFC 6710).
    MtPriority,
    /// `DELIVERBY` (RFC 2852).
    DeliverBy,
    /// `ETRN` (RFC 1985).
    Etrn,
    /// `VRFY` (RFC 5321 §3.5).
    Vrfy,
}

impl Extension {
    /// The EHLO keyword that advertises this extension, upper-cased.
    pub const fn keyword(self) -> &'static str {
        match self {
            Self::Size => "SIZE",
            Self::Pipelining => "PIPELINING",
            Self::EightBitMime => "8BITMIME",
            Self::SmtpUtf8 => "SMTPUTF8",
            Self::Chunking => "CHUNKING",
            Self::BinaryMime => "BINARYMIME",
            Self::Dsn => "DSN",
            Self::EnhancedStatusCodes => "ENHANCEDSTATUSCODES",
            Self::StartTls => "STARTTLS",
            Self::Auth => "AUTH",
            Self::RequireTls => "REQUIRETLS",
            Self::Limits => "LIMITS",
            Self::MtPriority => "MT-PRIORITY",
            Self::DeliverBy => "DELIVERBY",
            Self::Etrn => "ETRN",
            Self::Vrfy => "VRFY",
        }
    }

    /// The extension advertised by an upper-cased keyword.
    #[cfg(test)]
    fn from_keyword(upper: &[u8]) -> Option<Self> {
        Self::from_keyword_ignore_case(upper)
    }

    /// The extension advertised by a keyword, in any case.
    #[cfg(test)]
    fn from_keyword_ignore_case(keyword: &[u8]) -> Option<Self> {
        let len = keyword.len();
        let lo = upper_swar(load_word(keyword, 0, len));
        let hi = upper_swar(load_word(keyword, 8, len));
        Self::from_packed(len, keyword, lo, hi)
    }

    /// The extension advertised by a keyword (any case) of `len` bytes, given its first 16 bytes upper-cased as
    /// two little-endian words (`lo`, `hi`, zero-padded): compared with the known keywords by length and as
    /// integers, no per-byte loop, no allocation. `keyword` itself is only read when `len` is 19.
    #[inline(always)]
    fn from_packed(len: usize, keyword: &[u8], lo: u64, hi: u64) -> Option<Self> {
        use Extension::*;
        const DSN: u64 = pack8(b"DSN");
        const SIZE: u64 = pack8(b"SIZE");
        const AUTH: u64 = pack8(b"AUTH");
        const ETRN: u64 = pack8(b"ETRN");
        const VRFY: u64 = pack8(b"VRFY");
        const LIMITS: u64 = pack8(b"LIMITS");
        const EIGHTBITMIME: u64 = pack8(b"8BITMIME");
        const SMTPUTF8: u64 = pack8(b"SMTPUTF8");
        const CHUNKING: u64 = pack8(b"CHUNKING");
        const STARTTLS: u64 = pack8(b"STARTTLS");
        const DELIVERB: u64 = pack8(b"DELIVERB");
        const PIPELINI: u64 = pack8(b"PIPELINI");
        const BINARYMI: u64 = pack8(b"BINARYMI");
        const REQUIRET: u64 = pack8(b"REQUIRET");
        const MT_PRIOR: u64 = pack8(b"MT-PRIOR");
        const ENHANCED: u64 = pack8(b"ENHANCED");
        Some(match (len, lo) {
            (3, DSN) => Dsn,
            (4, SIZE) => Size,
            (4, AUTH) => Auth,
            (4, ETRN) => Etrn,
            (4, VRFY) => Vrfy,
            (6, LIMITS) => Limits,
            (8, EIGHTBITMIME) => EightBitMime,
            (8, SMTPUTF8) => SmtpUtf8,
            (8, CHUNKING) => Chunking,
            (8, STARTTLS) => StartTls,
            (9, DELIVERB) if hi == const { pack8(b"Y") } => DeliverBy,
            (10, PIPELINI) if hi == const { pack8(b"NG") } => Pipelining,
            (10, BINARYMI) if hi == const { pack8(b"ME") } => BinaryMime,
            (10, REQUIRET) if hi == const { pack8(b"LS") } => RequireTls,
            (11, MT_PRIOR) if hi == const { pack8(b"ITY") } => MtPriority,
            // The only known keyword longer than 16 bytes.
            (19, ENHANCED)
                if hi == const { pack8(b"STATUSCO") }
                    && keyword
                        .get(16..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(b"DES")) =>
            {
                EnhancedStatusCodes
            }
            _ => return None,
        })
    }

    /// This extension's bit in [`Capabilities`]' set.
    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// The limits a server announces with `LIMITS` (RFC 9422). `None` means not announced (or announced malformed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailLimits {
    /// `RCPTMAX`: the most `RCPT TO` commands accepted in one transaction.
    pub rcpt_max: Option<u32>,
    /// `MAILMAX`: the most transactions (`MAIL FROM` commands) accepted in one session.
    pub mail_max: Option<u32>,
    /// `RCPTDOMAINMAX`: the most distinct recipient domains accepted in one transaction.
    pub rcpt_domain_max: Option<u32>,
}

/// The extensions a server advertised in its EHLO or LHLO reply, with their parameters.
///
/// Parsing allocates only for what is rare: a domain or `MT-PRIORITY` profile longer than the inline buffers, a long
/// list of SASL mechanisms past the first two known ones (kept as bytes and decoded by
/// [`Capabilities::auth_mechanisms`] on first use), and one buffer for the lines of unknown keywords, which
/// [`Capabilities::other`] decodes on first use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    domain: SmallStr<DOMAIN_INLINE>,
    /// One bit per [`Extension`].
    known: u32,
    size: Option<u64>,
    mechanisms: Mechanisms,
    limits: MailLimits,
    mt_priority_profile: Option<SmallStr<PROFILE_INLINE>>,
    other: OtherKeywords,
}

/// Domains up to this many bytes are kept inside [`Capabilities`].
const DOMAIN_INLINE: usize = 38;
/// `MT-PRIORITY` profile names up to this many bytes are kept inside [`Capabilities`].
const PROFILE_INLINE: usize = 22;
/// Bytes of unknown keywords' lines kept inside [`Capabilities`] before they move to the heap.
const OTHER_INLINE: usize = 62;
/// Known SASL mechanisms kept decoded inside [`Capabilities`] (later ones are kept as bytes; kept small so that
/// `Capabilities` stays a cheap move and `Event::Ready` small).
const INLINE_MECHANISMS: usize = 2;

/// Longest keyword that can name a known extension (`ENHANCEDSTATUSCODES`).
#[cfg(test)]
const MAX_KNOWN_KEYWORD: usize = 19;

impl Capabilities {
    /// Capabilities from a successful EHLO or LHLO reply: the first line is the server's domain and greeting, each
    /// later line a keyword with parameters.
    ///
    /// A reply that is not `2yz` advertises nothing: it gives [`Capabilities::none`].
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut caps = Self::none();
        if !reply.is_positive_completion() {
            return caps;
        }
        // The lines of the text (as `Reply::lines` splits them), as ranges: `add_line` may look past a line's end.
        let text = reply.text();
        let mut start = 0;
        let mut first = true;
        loop {
            let end = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |lf| start + lf);
            if first {
                first = false;
                caps.set_domain(&text[start..end]);
            } else {
                caps.add_line(text, start, end);
            }
            if end == text.len() {
                return caps;
            }
            start = end + 1;
        }
    }

    /// Framing and parsing in one step, for fuzzing and benchmarks: the same result as [`parse_reply`] then
    /// [`Capabilities::from_ehlo`], in one pass over the bytes and without building the reply's text.
    ///
    /// Fails if the bytes are not a well-formed reply, and with [`ReplyError::Malformed`] (reason
    /// `"incomplete reply"`) if they end before the reply does.
    pub fn parse_ehlo(bytes: &[u8]) -> Result<Self, ReplyError> {
        match Self::parse_ehlo_fast(bytes) {
            Some(caps) => Ok(caps),
            None => Self::parse_ehlo_general(bytes),
        }
    }

    /// The fast path of [`Capabilities::parse_ehlo`]: the shared fast line scanner, each line read in place.
    /// `None` when the general path must decide (an error, incomplete input, a limit reached); whenever this
    /// returns capabilities, the general path returns the same (a differential property test checks it).
    #[inline]
    fn parse_ehlo_fast(bytes: &[u8]) -> Option<Self> {
        let limits = ReplyLimits::default();
        let mut lines = FastLines::new(bytes, &limits);
        let (first, mut last) = lines.next_line()?;
        if !lines.code.is_positive_completion() {
            // The whole reply must still be well-formed.
            while !last {
                (_, last) = lines.next_line()?;
            }
            return Some(Self::none());
        }
        let mut caps = Self::none();
        caps.set_domain(first);
        while !last {
            // Most lines are a short keyword alone: matched from the words the line was found with.
            if let Some(short) = lines.peek_short() {
                // A text equal to a known keyword has no space (and no leading or trailing one to trim).
                let hi = if short.len > 8 {
                    upper_swar(short.hi)
                } else {
                    0
                };
                let keyword: &[u8] = if short.len == 19 {
                    let start = lines.pos + 4;
                    &bytes[start..start + 19]
                } else {
                    &[]
                };
                let known = Extension::from_packed(short.len, keyword, upper_swar(short.lo), hi);
                lines.commit_short(&short);
                last = short.last;
                match known {
                    Some(ext) if ext.bit() & WITH_PARAMS == 0 => caps.known |= ext.bit(),
                    // Keywords with parameters (even absent ones) and unknown keywords: read in full.
                    _ => caps.add_line(bytes, lines.text_start, lines.text_start + short.len),
                }
                continue;
            }
            let (text, end) = lines.next_line()?;
            last = end;
            caps.add_line(bytes, lines.text_start, lines.text_start + text.len());
        }
        Some(caps)
    }

    /// The general path of [`Capabilities::parse_ehlo`], with the framer's exact errors.
    fn parse_ehlo_general(bytes: &[u8]) -> Result<Self, ReplyError> {
        let mut caps = Self::none();
        let mut first = true;
        let scanned = scan_with(bytes, &ReplyLimits::default(), |code, text| {
            // Every line carries the first line's code (checked by the scan before this is called).
            if !code.is_positive_completion() {
                return;
            }
            if first {
                first = false;
                caps.set_domain(text);
            } else {
                caps.add_line(text, 0, text.len());
            }
        })?;
        match scanned {
            Some(scanned) if scanned.code.is_positive_completion() => Ok(caps),
            Some(_) => Ok(Self::none()),
            None => Err(ReplyError::Malformed {
                line: bytes[..bytes.len().min(80)].to_vec(),
                reason: "incomplete reply",
            }),
        }
    }

    /// Reads the first line: the first word is the server's domain.
    fn set_domain(&mut self, first: &[u8]) {
        // Common case: the first word is printable ASCII from the first byte on, ended by a space or the end of the
        // line; found eight bytes at a time.
        let mut i = 0;
        let stop = loop {
            match first.get(i..).and_then(<[u8]>::first_chunk::<8>) {
                Some(word) => {
                    let stop = not_graphic_mask(u64::from_le_bytes(*word));
                    if stop != 0 {
                        break i + (stop.trailing_zeros() / 8) as usize;
                    }
                    i += 8;
                }
                // The zero padding stops the search at the end.
                None => {
                    let stop = not_graphic_mask(load_short(&first[i..]));
                    break i + (stop.trailing_zeros() / 8) as usize;
                }
            }
        };
        if stop == first.len() || (stop > 0 && first[stop] == b' ') {
            self.domain.set(&first[..stop]);
            return;
        }
        let domain = first.trim_ascii_start();
        let end = domain
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(domain.len());
        let domain = &domain[..end];
        if domain.iter().all(|b| (0x21..0x7f).contains(b)) {
            // Printable ASCII (the common case): copied as it is, in place, inline when short.
            self.domain.set(domain);
        } else {
            let mut sanitized = String::new();
            // Writing to a String cannot fail.
            let _ = write_sanitized(&mut sanitized, domain);
            self.domain = SmallStr::from_ascii(sanitized.as_bytes());
        }
    }

    /// What a HELO-only server offers: nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// The first word of the reply's first line, normally the server's domain (lossy UTF-8, control characters
    /// replaced). Empty for [`Capabilities::none`].
    pub fn domain(&self) -> &str {
        self.domain.as_str()
    }

    /// Whether the server advertised `ext`.
    pub fn supports(&self, ext: Extension) -> bool {
        self.known & ext.bit() != 0
    }

    /// The largest message the server accepts (RFC 1870), if it advertised `SIZE` with a nonzero value. `SIZE`
    /// alone or `SIZE 0` means no fixed limit: `None` (check [`Capabilities::supports`] for the keyword itself).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The SASL mechanisms advertised with `AUTH a b c` and the older `AUTH=a b` form, deduplicated, in the order
    /// the server listed them. Malformed names (not 1-20 letters, digits, `-` or `_`) are left out.
    pub fn auth_mechanisms(&self) -> &[Mechanism] {
        self.mechanisms.as_slice()
    }

    /// The limits announced with `LIMITS` (RFC 9422); all `None` if there were none. Unknown and malformed limits
    /// are ignored, as RFC 9422 §3 requires.
    pub fn limits(&self) -> MailLimits {
        self.limits
    }

    /// The priority assignment policy named with `MT-PRIORITY` (RFC 6710 §5), e.g. `MIXER`, if the server named one.
    pub fn mt_priority_profile(&self) -> Option<&str> {
        self.mt_priority_profile.as_ref().map(SmallStr::as_str)
    }

    /// The keywords the client does not know (upper-cased) with their parameters, in advertised order.
    ///
    /// Decoded from the kept lines on the first call (a client rarely looks at them).
    pub fn other(&self) -> &[(String, Vec<String>)] {
        self.other.get()
    }

    /// Reads one line after the first, `buf[start..end]`: `keyword *(SP param)`. Bytes of `buf` after `end` may
    /// be loaded (and masked off) to read the keyword a word at a time.
    #[inline(always)]
    fn add_line(&mut self, buf: &[u8], start: usize, end: usize) {
        let (start, end) = trim_spaces(buf, start, end);
        let len = end - start;
        // The keyword ends at the first space: found in the same words that are compared with the known ones
        // (bytes past the line's end may be loaded; they are ignored).
        let w0 = load_raw(buf, start, end);
        let sp0 = zero_byte_mask(w0 ^ SPACES);
        let (keyword_len, hi) = if sp0 != 0 && ((sp0.trailing_zeros() / 8) as usize) < len {
            ((sp0.trailing_zeros() / 8) as usize, 0)
        } else if len <= 8 {
            (len, 0)
        } else {
            let w1 = load_raw(buf, start + 8, end);
            let sp1 = zero_byte_mask(w1 ^ SPACES);
            let keyword_len = if sp1 != 0 && 8 + ((sp1.trailing_zeros() / 8) as usize) < len {
                8 + (sp1.trailing_zeros() / 8) as usize
            } else if len <= 16 {
                len
            } else {
                let at = buf[start + 16..end].iter().position(|&b| b == b' ');
                at.map_or(len, |at| 16 + at)
            };
            (keyword_len, upper_swar(w1 & low_bytes(keyword_len - 8)))
        };
        let lo = upper_swar(w0 & low_bytes(keyword_len));
        let keyword = &buf[start..start + keyword_len];

        // Pre-RFC 4954 servers (and Postfix, for old clients) write `AUTH=LOGIN PLAIN`.
        if keyword_len >= 5 && lo & low_bytes(5) == const { pack8(b"AUTH=") } {
            self.known |= Extension::Auth.bit();
            // `AUTH=a b`: the names are `a` and `b`, as in `AUTH a b`.
            self.add_mechanisms(buf, start + 5, end);
            return;
        }
        let known = Extension::from_packed(keyword_len, keyword, lo, hi);
        if known.is_none() && !is_keyword(keyword) {
            return;
        }
        let line = &buf[start..end];
        let Some(ext) = known else {
            self.other.push(line);
            return;
        };
        let rest = line.get(keyword_len + 1..).unwrap_or_default();
        let params = || rest.split(|&b| b == b' ').filter(|p| !p.is_empty());
        self.known |= ext.bit();
        match ext {
            Extension::Size => {
                self.size = first_word(rest).and_then(parse_decimal).filter(|&n| n > 0);
            }
            Extension::Auth => self.add_mechanisms(buf, start + keyword_len + 1, end),
            Extension::Limits => {
                let mut rest = rest;
                while let Some(param) = first_word(rest) {
                    self.add_limit(param);
                    // `param` is a subslice of `rest`: continue after it.
                    let used = param.as_ptr() as usize - rest.as_ptr() as usize + param.len();
                    rest = &rest[used..];
                }
            }
            Extension::MtPriority => {
                self.mt_priority_profile = params().next().map(|profile| {
                    if profile.iter().all(|b| (0x20..0x7f).contains(b)) {
                        SmallStr::from_ascii(profile)
                    } else {
                        SmallStr::from_ascii(sanitized_string(profile).as_bytes())
                    }
                });
            }
            _ => {}
        }
    }

    /// Adds the valid, not yet seen mechanism names of the space-separated list `buf[start..end]` (`start` may be
    /// past `end`: no names).
    #[inline]
    fn add_mechanisms(&mut self, buf: &[u8], start: usize, end: usize) {
        let mut i = start;
        while i < end {
            if buf[i] == b' ' {
                i += 1;
                continue;
            }
            let name_start = i;
            // The name ends at the next space or at `end`: found eight bytes at a time (bytes from `end` on may be
            // loaded; a space among them only stops the search at `end`).
            let name_end = loop {
                let spaces = zero_byte_mask(load_raw(buf, i, end) ^ SPACES);
                if spaces != 0 {
                    break (i + (spaces.trailing_zeros() / 8) as usize).min(end);
                }
                i += 8;
                if i >= end {
                    break end;
                }
            };
            i = name_end;
            // 1 to 20 of `A-Z a-z 0-9 - _`; a known name is valid as matched.
            if name_end - name_start <= 20 {
                match known_mechanism(buf, name_start, name_end) {
                    Some(index) => self.mechanisms.push_known(index),
                    None => {
                        let name = &buf[name_start..name_end];
                        if name.iter().all(|&b| MECHANISM_BYTE[usize::from(b)]) {
                            self.mechanisms.push_name(name);
                        }
                    }
                }
            }
        }
    }

    /// Reads one `NAME=value` parameter of `LIMITS` (RFC 9422 §3); unknown or malformed ones are ignored.
    fn add_limit(&mut self, param: &[u8]) {
        // The name is what comes before the first `=`: the known names have none, so a name of 7 or 13 bytes
        // followed by `=` is compared (upper-cased, a word at a time) without looking for the first `=`.
        let end = param.len();
        let lo = upper_swar(load_raw(param, 0, end));
        let (slot, value) = if param.get(7) == Some(&b'=') {
            const RCPTMAX: u64 = pack8(b"RCPTMAX");
            const MAILMAX: u64 = pack8(b"MAILMAX");
            let slot = match lo & low_bytes(7) {
                RCPTMAX => &mut self.limits.rcpt_max,
                MAILMAX => &mut self.limits.mail_max,
                _ => return,
            };
            (slot, &param[8..])
        } else if param.get(13) == Some(&b'=')
            && lo == const { pack8(b"RCPTDOMA") }
            && upper_swar(load_raw(param, 8, end)) & low_bytes(5) == const { pack8(b"INMAX") }
        {
            (&mut self.limits.rcpt_domain_max, &param[14..])
        } else {
            return;
        };
        // A limit of zero would forbid the command altogether: treat it as malformed.
        if let Some(n) = parse_decimal(value)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
        {
            *slot = Some(n);
        }
    }
}

/// A short string kept inline (no allocation), on the heap when longer than `N` bytes.
#[derive(Clone, Default, PartialEq, Eq)]
struct SmallStr<const N: usize>(SmallBytes<N>);

impl<const N: usize> SmallStr<N> {
    /// From valid UTF-8 (ASCII, or text written by the sanitizer).
    fn from_ascii(text: &[u8]) -> Self {
        let mut bytes = SmallBytes::with_capacity(text.len());
        bytes.extend_from_slice(text);
        Self(bytes)
    }

    /// Replaces the text with `text` (valid UTF-8), in place.
    #[inline]
    fn set(&mut self, text: &[u8]) {
        match &mut self.0 {
            SmallBytes::Inline { len, buf } if text.len() <= N => {
                buf[..text.len()].copy_from_slice(text);
                // `text.len() <= N <= 255`.
                *len = text.len() as u8;
            }
            other => *other = SmallBytes::Heap(text.to_vec()),
        }
    }

    fn as_str(&self) -> &str {
        // Always valid: built from ASCII or from a `str`.
        std::str::from_utf8(self.0.as_slice()).unwrap_or_default()
    }
}

impl<const N: usize> std::fmt::Debug for SmallStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The SASL mechanisms: known ones inline up to [`INLINE_MECHANISMS`]; from the first unknown name (or the first
/// that does not fit inline) on, the names are kept as compact bytes and decoded on first use.
#[derive(Clone)]
struct Mechanisms {
    len: u8,
    inline: [Mechanism; INLINE_MECHANISMS],
    /// The names read once `inline` could no longer take them, in advertised order (possibly repeating earlier
    /// ones): each a known mechanism's code (`0x80 |` its index in [`KNOWN_MECHANISMS`]) or a length byte
    /// (1 to 20) followed by the name as advertised (a valid name: ASCII).
    rest: SmallBytes<MECHANISMS_REST_INLINE>,
    /// `inline` then `rest`, deduplicated; only used when `rest` is not empty.
    decoded: OnceLock<Box<[Mechanism]>>,
}

impl Default for Mechanisms {
    fn default() -> Self {
        Self {
            len: 0,
            inline: [const { Mechanism::Plain }; INLINE_MECHANISMS],
            rest: SmallBytes::default(),
            decoded: OnceLock::new(),
        }
    }
}

/// Bytes of [`Mechanisms::rest`] kept inline.
const MECHANISMS_REST_INLINE: usize = 30;

/// The mechanisms [`Mechanisms::rest`] stores as one code byte.
const KNOWN_MECHANISMS: [Mechanism; 6] = [
    Mechanism::Plain,
    Mechanism::Login,
    Mechanism::CramMd5,
    Mechanism::XOAuth2,
    Mechanism::OAuthBearer,
    Mechanism::ScramSha256,
];

impl Mechanisms {
    #[inline]
    fn as_slice(&self) -> &[Mechanism] {
        if self.rest.len() == 0 {
            &self.inline[..usize::from(self.len)]
        } else {
            self.decoded.get_or_init(|| self.decode())
        }
    }

    /// `inline` then the names of `rest`, without repeats.
    #[cold]
    fn decode(&self) -> Box<[Mechanism]> {
        let mut all = self.inline[..usize::from(self.len)].to_vec();
        let rest = self.rest.as_slice();
        let mut i = 0;
        while let Some(&b) = rest.get(i) {
            let mechanism = if b & 0x80 != 0 {
                i += 1;
                KNOWN_MECHANISMS.get(usize::from(b & 0x7f)).cloned()
            } else {
                let name = rest.get(i + 1..i + 1 + usize::from(b)).unwrap_or_default();
                i += 1 + usize::from(b);
                (!name.is_empty()).then(|| Mechanism::from_name(name))
            };
            if let Some(mechanism) = mechanism
                && !all.contains(&mechanism)
            {
                all.push(mechanism);
            }
        }
        all.into_boxed_slice()
    }

    /// Adds the known mechanism `KNOWN_MECHANISMS[index]`.
    #[inline]
    fn push_known(&mut self, index: usize) {
        if self.rest.len() == 0 {
            let mechanism = &KNOWN_MECHANISMS[index];
            let len = usize::from(self.len);
            if self.inline[..len].contains(mechanism) {
                return;
            }
            if let Some(slot) = self.inline.get_mut(len) {
                *slot = mechanism.clone();
                self.len += 1;
                return;
            }
        }
        // `index < 6`.
        self.rest.push(0x80 | index as u8);
        self.decoded = OnceLock::new();
    }

    /// Adds the mechanism named `name` (a valid name, 1 to 20 bytes, that is not one of [`KNOWN_MECHANISMS`]).
    #[cold]
    fn push_name(&mut self, name: &[u8]) {
        // `name.len() <= 20`.
        self.rest.push(name.len() as u8);
        self.rest.extend_from_slice(name);
        self.decoded = OnceLock::new();
    }
}

impl PartialEq for Mechanisms {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Mechanisms {}

impl std::fmt::Debug for Mechanisms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_slice(), f)
    }
}

/// An unknown keyword (upper-cased) and its parameters, as [`Capabilities::other`] lists them.
type UnknownKeyword = (String, Vec<String>);

/// The lines of unknown keywords (trimmed, `\n`-separated), decoded into keyword and parameters on first use.
#[derive(Clone, Default)]
struct OtherKeywords {
    /// Inline when short (a few unknown keywords without long parameters).
    lines: SmallBytes<OTHER_INLINE>,
    decoded: OnceLock<Box<[UnknownKeyword]>>,
}

impl OtherKeywords {
    /// Keeps one line whose first word is a valid, unknown keyword.
    fn push(&mut self, line: &[u8]) {
        match &mut self.lines {
            // Common case: it fits inline; one copy, no calls.
            SmallBytes::Inline { len, buf }
                if usize::from(*len) + 1 + line.len() <= OTHER_INLINE =>
            {
                let mut at = usize::from(*len);
                if at > 0 {
                    buf[at] = b'\n';
                    at += 1;
                }
                buf[at..at + line.len()].copy_from_slice(line);
                // At most `OTHER_INLINE <= 255`.
                *len = (at + line.len()) as u8;
            }
            lines => {
                if lines.len() > 0 {
                    lines.push(b'\n');
                }
                lines.extend_from_slice(line);
            }
        }
        if self.decoded.get().is_some() {
            self.decoded = OnceLock::new();
        }
    }

    fn get(&self) -> &[(String, Vec<String>)] {
        self.decoded
            .get_or_init(|| {
                if self.lines.len() == 0 {
                    return Box::default();
                }
                self.lines
                    .as_slice()
                    .split(|&b| b == b'\n')
                    .map(|line| {
                        let mut words = line.split(|&b| b == b' ');
                        let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
                        // An ehlo-keyword: ASCII.
                        let keyword = String::from_utf8(keyword).unwrap_or_default();
                        let params = words
                            .filter(|p| !p.is_empty())
                            .map(sanitized_string)
                            .collect();
                        (keyword, params)
                    })
                    .collect()
            })
            .as_ref()
    }
}

impl PartialEq for OtherKeywords {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for OtherKeywords {}

impl std::fmt::Debug for OtherKeywords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.get(), f)
    }
}

/// Bytes of a SASL mechanism name as the EHLO parser accepts them: ASCII letters (any case), digits, `-` and `_`.
const MECHANISM_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

/// The index in [`KNOWN_MECHANISMS`] of the mechanism named `buf[start..end]` (a valid SASL name: ASCII), matched
/// a word at a time (bytes after `end` may be loaded and are masked off); `None` for any other name.
#[inline]
fn known_mechanism(buf: &[u8], start: usize, end: usize) -> Option<usize> {
    let len = end - start;
    let lo = upper_swar(load_raw(buf, start, end) & low_bytes(len));
    let hi = if len > 8 {
        upper_swar(load_raw(buf, start + 8, end) & low_bytes(len - 8))
    } else {
        0
    };
    const PLAIN: u64 = pack8(b"PLAIN");
    const LOGIN: u64 = pack8(b"LOGIN");
    const XOAUTH2: u64 = pack8(b"XOAUTH2");
    const OAUTHBEA: u64 = pack8(b"OAUTHBEA");
    const CRAM_MD5: u64 = pack8(b"CRAM-MD5");
    const SCRAM_SH: u64 = pack8(b"SCRAM-SH");
    Some(match (len, lo) {
        (5, PLAIN) => 0,
        (5, LOGIN) => 1,
        (8, CRAM_MD5) => 2,
        (7, XOAUTH2) => 3,
        (11, OAUTHBEA) if hi == const { pack8(b"RER") } => 4,
        (13, SCRAM_SH) if hi == const { pack8(b"A-256") } => 5,
        _ => return None,
    })
}

/// The high bit of every byte of `word` that is not printable ASCII other than space (`0x21..0x7f`), exactly (no
/// carry crosses bytes).
#[inline(always)]
fn not_graphic_mask(word: u64) -> u64 {
    let low7 = word & !(ONES << 7);
    let at_least_21 = low7 + ONES * 0x5f;
    let is_7f = low7 + ONES;
    (word | !at_least_21 | is_7f) & (ONES << 7)
}

/// The extensions whose parameters `add_line` reads.
const WITH_PARAMS: u32 = Extension::Size.bit()
    | Extension::Auth.bit()
    | Extension::Limits.bit()
    | Extension::MtPriority.bit();

const ONES: u64 = 0x0101_0101_0101_0101;
const SPACES: u64 = ONES * b' ' as u64;

/// The high bit of the first zero byte of `x` (little-endian), and possibly of later bytes: only the lowest flagged
/// byte is meaningful (borrows propagate upwards from a zero byte only).
#[inline(always)]
fn zero_byte_mask(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & (ONES << 7)
}

/// Eight bytes of `buf` from `at` as a little-endian word when `buf` has them (bytes at or after `end` included:
/// the caller masks them), else the bytes `buf[at..end]` zero-padded.
#[inline(always)]
fn load_raw(buf: &[u8], at: usize, end: usize) -> u64 {
    match buf.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        Some(word) => u64::from_le_bytes(*word),
        None => load_short(buf.get(at..end).unwrap_or_default()),
    }
}

/// The bytes `buf[at..end]`, at most 8 of them, as a little-endian word, zero-padded. Reads 8 bytes at once when
/// `buf` has them (bytes at or after `end` are masked off).
#[cfg(test)]
fn load_word(buf: &[u8], at: usize, end: usize) -> u64 {
    let n = end.saturating_sub(at);
    match buf.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        Some(word) => u64::from_le_bytes(*word) & low_bytes(n),
        None => load_short(buf.get(at..end).unwrap_or_default()),
    }
}

/// The first 8 bytes of `word`, zero-padded, as a little-endian integer (for constants).
const fn pack8(word: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let mut i = 0;
    while i < word.len() && i < 8 {
        bytes[i] = word[i];
        i += 1;
    }
    u64::from_le_bytes(bytes)
}
/// A word of at most 16 bytes as one integer (little-endian, zero-padded), for compares without loops. Words
/// without NUL bytes map to distinct integers, and zero-padding keeps words of different lengths apart.
#[cfg(test)]
const fn pack(word: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let mut i = 0;
    while i < word.len() {
        bytes[i] = word[i];
        i += 1;
    }
    u128::from_le_bytes(bytes)
}

/// [`pack`] of the upper-cased `word`; `None` when it is longer than 16 bytes. Callers compare the length too: a
/// word with NUL bytes could otherwise pack like a shorter one.
///
/// Whole 8-byte words are loaded at once and upper-cased with SWAR arithmetic; only a tail of fewer than 8 bytes
/// is assembled byte by byte.
#[cfg(test)]
fn packed_upper(word: &[u8]) -> Option<u128> {
    if word.len() > 16 {
        return None;
    }
    let (lo, hi) = match word.split_first_chunk::<8>() {
        Some((head, tail)) => (u64::from_le_bytes(*head), load_short(tail)),
        None => (load_short(word), 0),
    };
    Some(u128::from(upper_swar(lo)) | (u128::from(upper_swar(hi)) << 64))
}

/// Up to 8 bytes as a little-endian integer, zero-padded.
#[inline]
fn load_short(bytes: &[u8]) -> u64 {
    let mut x = 0u64;
    for (i, &b) in bytes.iter().take(8).enumerate() {
        x |= u64::from(b) << (8 * i);
    }
    x
}

/// ASCII upper-casing of the 8 bytes of `x` at once: each byte in `a..=z` loses its 0x20 bit, every other byte is
/// kept.
#[inline]
fn upper_swar(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = x & !HIGH;
    // High bit set in a byte when its low 7 bits are >= b'a', resp. > b'z' (no carry crosses bytes: each sum < 0x100).
    let ge_a = low7 + ONES * u64::from(0x80 - b'a');
    let gt_z = low7 + ONES * u64::from(0x80 - b'z' - 1);
    // A lowercase letter: >= 'a', not > 'z', and not a byte >= 0x80.
    let lower = (ge_a & !gt_z) & !x & HIGH;
    x - (lower >> 2)
}

/// `ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")` (RFC 5321 §4.1.1.1).
fn is_keyword(word: &[u8]) -> bool {
    word.first().is_some_and(u8::is_ascii_alphanumeric)
        && word.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A non-empty run of ASCII digits as a number; `None` for anything else (signs included) or on overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    if digits.len() <= 8 {
        return parse_short_decimal(digits);
    }
    let mut n = 0u64;
    for &d in digits {
        let digit = d.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    Some(n)
}

/// [`parse_decimal`] of 1 to 8 bytes, a word at a time: no per-digit loop.
#[inline]
fn parse_short_decimal(digits: &[u8]) -> Option<u64> {
    let len = digits.len();
    // Right-aligned in the 8 bytes (the most significant digit first, in the lowest byte), `0`-padded on the left.
    let pad = 8 - len;
    let word = (load_short(digits) << (8 * pad)) | ((ONES * u64::from(b'0')) & low_bytes(pad));
    // Every byte in `0x30..=0x39`: the high nibble is 3, and adding 6 keeps it 3 (no carry crosses bytes).
    const HIGH_NIBBLES: u64 = ONES * 0xf0;
    if word & HIGH_NIBBLES != ONES * 0x30 || (word + ONES * 6) & HIGH_NIBBLES != ONES * 0x30 {
        return None;
    }
    let v = word - ONES * u64::from(b'0');
    // Pairs, then groups of four, then all eight digits (each step combines neighbouring lanes).
    let v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    let v = (v * 10_000 + (v >> 32)) & 0xffff_ffff;
    Some(v)
}

/// The first non-empty space-separated word of `text`, if any.
#[inline]
fn first_word(text: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while i < text.len() && text[i] == b' ' {
        i += 1;
    }
    let start = i;
    while i < text.len() && text[i] != b' ' {
        i += 1;
    }
    (i > start).then(|| &text[start..i])
}

/// `buf[start..end]` without leading and trailing spaces, as a range.
#[inline(always)]
fn trim_spaces(buf: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    // Common case: nothing to trim.
    if start < end && buf[start] != b' ' && buf[end - 1] != b' ' {
        return (start, end);
    }
    while start < end && buf[start] == b' ' {
        start += 1;
    }
    while end > start && buf[end - 1] == b' ' {
        end -= 1;
    }
    (start, end)
}

fn sanitized_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    // Writing to a String cannot fail.
    let _ = write_sanitized(&mut out, bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::ReplyCode;

    const ALL: [Extension; 16] = [
        Extension::Size,
        Extension::Pipelining,
        Extension::EightBitMime,
        Extension::SmtpUtf8,
        Extension::Chunking,
        Extension::BinaryMime,
        Extension::Dsn,
        Extension::EnhancedStatusCodes,
        Extension::StartTls,
        Extension::Auth,
        Extension::RequireTls,
        Extension::Limits,
        Extension::MtPriority,
        Extension::DeliverBy,
        Extension::Etrn,
        Extension::Vrfy,
    ];

    fn parse(bytes: &[u8]) -> Capabilities {
        Capabilities::parse_ehlo(bytes).unwrap()
    }

    /// Asserts that exactly `expected` are supported.
    fn assert_supports(caps: &Capabilities, expected: &[Extension]) {
        for ext in ALL {
            assert_eq!(caps.supports(ext), expected.contains(&ext), "{ext:?}");
        }
    }

    fn other(entries: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        entries
            .iter()
            .map(|(k, ps)| (k.to_string(), ps.iter().map(|p| p.to_string()).collect()))
            .collect()
    }

    #[test]
    fn postfix() {
        let caps = parse(include_bytes!(
            "../../corpus/replies/ehlo--ehlo-postfix.txt"
        ));
        assert_eq!(caps.domain(), "mail.example.org");
        use Extension::*;
        assert_supports(
            &caps,
            &[
                Pipelining,
                Size,
                Vrfy,
                Etrn,
                StartTls,
                Auth,
                EnhancedStatusCodes,
                EightBitMime,
                Dsn,
                SmtpUtf8,
                Chunking,
            ],
        );
        assert_eq!(caps.size(), Some(10_240_000));
        // `AUTH PLAIN LOGIN` and `AUTH=PLAIN LOGIN`, deduplicated.
        assert_eq!(caps.auth_mechanisms(), [Mechanism::Plain, Mechanism::Login]);
        assert_eq!(caps.limits(), MailLimits::default());
        assert_eq!(caps.mt_priority_profile(), None);
        assert!(caps.other().is_empty());
    }

    #[test]
    fn exim() {
        let caps = parse(include_bytes!("../../corpus/replies/ehlo--ehlo-exim.txt"));
        assert_eq!(caps.domain(), "mail.example.net");
        use Extension::*;
        assert_supports(
            &caps,
            &[
                Size,
                Limits,
                EightBitMime,
                Pipelining,
                Auth,
                Chunking,
                StartTls,
                SmtpUtf8,
            ],
        );
        assert_eq!(caps.size(), Some(52_428_800));
        assert_eq!(
            caps.limits(),
            MailLimits {
                rcpt_max: Some(50_000),
                mail_max: Some(1000),
                rcpt_domain_max: None,
            }
        );
        assert_eq!(
            caps.auth_mechanisms(),
            [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5]
        );
        assert_eq!(
            caps.other(),
            other(&[("PIPECONNECT", &[]), ("PRDR", &[]), ("HELP", &[])])
        );
    }

    #[test]
    fn gmail_submission() {
        let caps = parse(include_bytes!(
            "../../corpus/replies/ehlo--ehlo-gmail-submission.txt"
        ));
        assert_eq!(caps.domain(), "smtp.gmail.com");
        use Extension::*;
        assert_supports(
            &caps,
            &[
                Size,
                EightBitMime,
                Auth,
                EnhancedStatusCodes,
                Pipelining,
                Chunking,
                SmtpUtf8,
            ],
        );
        assert_eq!(caps.size(), Some(35_882_577));
        assert_eq!(
            caps.auth_mechanisms(),
            [
                Mechanism::Login,
                Mechanism::Plain,
                Mechanism::XOAuth2,
                Mechanism::Other("PLAIN-CLIENTTOKEN".into()),
                Mechanism::OAuthBearer,
                Mechanism::Other("XOAUTH".into()),
            ]
        );
        assert!(caps.other().is_empty());
    }

    #[test]
    fn office365() {
        let caps = parse(include_bytes!(
            "../../corpus/replies/ehlo--ehlo-office365.txt"
        ));
        assert_eq!(caps.domain(), "LO4P123CA0001.outlook.office365.com");
        use Extension::*;
        assert_supports(
            &caps,
            &[
                Size,
                Pipelining,
                Dsn,
                EnhancedStatusCodes,
                Auth,
                EightBitMime,
                BinaryMime,
                Chunking,
                SmtpUtf8,
            ],
        );
        assert_eq!(caps.size(), Some(157_286_400));
        assert_eq!(
            caps.auth_mechanisms(),
            [Mechanism::Login, Mechanism::XOAuth2]
        );
        assert!(caps.other().is_empty());
    }

    #[test]
    fn fifteen_lines() {
        let caps = parse(include_bytes!(
            "../../corpus/replies/ehlo--ehlo-15-lines.txt"
        ));
        assert_eq!(caps.domain(), "mx.example.com");
        use Extension::*;
        assert_supports(
            &caps,
            &[
                EightBitMime,
                BinaryMime,
                Chunking,
                DeliverBy,
                Dsn,
                EnhancedStatusCodes,
                Auth,
                MtPriority,
                Pipelining,
                RequireTls,
                Size,
                SmtpUtf8,
            ],
        );
        assert_eq!(caps.size(), Some(104_857_600));
        assert_eq!(
            caps.auth_mechanisms(),
            [
                Mechanism::Plain,
                Mechanism::Login,
                Mechanism::OAuthBearer,
                Mechanism::XOAuth2
            ]
        );
        assert_eq!(caps.mt_priority_profile(), Some("MIXER"));
        assert_eq!(
            caps.other(),
            other(&[
                ("FUTURERELEASE", &["86400", "2030-01-01T00:00:00Z"]),
                ("NO-SOLICITING", &[]),
            ])
        );
    }

    #[test]
    fn size_values() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"250-x\r\n250 SIZE 1000\r\n", Some(1000)),
            (b"250-x\r\n250 SIZE\r\n", None),
            (b"250-x\r\n250 SIZE 0\r\n", None),
            (b"250-x\r\n250 SIZE abc\r\n", None),
            (b"250-x\r\n250 SIZE +5\r\n", None),
            (b"250-x\r\n250 SIZE 7\r\n", Some(7)),
            (b"250-x\r\n250 SIZE 00000009\r\n", Some(9)),
            (b"250-x\r\n250 SIZE 99999999\r\n", Some(99_999_999)),
            (b"250-x\r\n250 SIZE 1234567:\r\n", None),
            (b"250-x\r\n250 SIZE 1234/67\r\n", None),
            (b"250-x\r\n250 SIZE 123456789\r\n", Some(123_456_789)),
            (b"250-x\r\n250 SIZE -5\r\n", None),
            (b"250-x\r\n250 SIZE 99999999999999999999999\r\n", None),
            (
                b"250-x\r\n250 SIZE 18446744073709551615\r\n",
                Some(u64::MAX),
            ),
            (b"250-x\r\n250 size   2048  \r\n", Some(2048)),
        ];
        for (bytes, expected) in cases {
            let caps = parse(bytes);
            assert!(caps.supports(Extension::Size), "{bytes:?}");
            assert_eq!(caps.size(), *expected, "{bytes:?}");
        }
        assert!(!parse(b"250 x\r\n").supports(Extension::Size));
    }

    #[test]
    fn auth_forms() {
        let cases: &[(&[u8], &[Mechanism])] = &[
            (b"250-x\r\n250 AUTH PLAIN LOGIN\r\n", &[Mechanism::Plain, Mechanism::Login]),
            (b"250-x\r\n250 AUTH=LOGIN\r\n", &[Mechanism::Login]),
            (b"250-x\r\n250 AUTH=LOGIN PLAIN\r\n", &[Mechanism::Login, Mechanism::Plain]),
            (b"250-x\r\n250 auth=login cram-md5\r\n", &[Mechanism::Login, Mechanism::CramMd5]),
            (
                b"250-x\r\n250-AUTH=LOGIN\r\n250 AUTH PLAIN LOGIN\r\n",
                &[Mechanism::Login, Mechanism::Plain],
            ),
            (
                b"250-x\r\n250-AUTH LOGIN  PLAIN login\r\n250 AUTH XOAUTH2\r\n",
                &[Mechanism::Login, Mechanism::Plain, Mechanism::XOAuth2],
            ),
            (
                b"250-x\r\n250-AUTH LOGIN X-A PLAIN login x-a XOAUTH2 CRAM-MD5\r\n250 AUTH OAUTHBEARER plain\r\n",
                &[
                    Mechanism::Login,
                    Mechanism::Other("X-A".into()),
                    Mechanism::Plain,
                    Mechanism::XOAuth2,
                    Mechanism::CramMd5,
                    Mechanism::OAuthBearer,
                ],
            ),
            (b"250-x\r\n250 AUTH\r\n", &[]),
            (b"250-x\r\n250 AUTH=\r\n", &[]),
            (
                b"250-x\r\n250 AUTH PLAIN b@d \xff THIS-NAME-IS-TOO-LONG-FOR-SASL SCRAM-SHA-256\r\n",
                &[Mechanism::Plain, Mechanism::ScramSha256],
            ),
        ];
        for (bytes, expected) in cases {
            let caps = parse(bytes);
            assert!(caps.supports(Extension::Auth), "{bytes:?}");
            assert_eq!(caps.auth_mechanisms(), *expected, "{bytes:?}");
        }
    }

    #[test]
    fn limits_parameters() {
        let limits = |rcpt, mail, domain| MailLimits {
            rcpt_max: rcpt,
            mail_max: mail,
            rcpt_domain_max: domain,
        };
        let cases: &[(&[u8], MailLimits)] = &[
            (
                b"250-x\r\n250 LIMITS RCPTMAX=100 MAILMAX=1000 RCPTDOMAINMAX=10\r\n",
                limits(Some(100), Some(1000), Some(10)),
            ),
            (
                b"250-x\r\n250 limits rcptmax=5 FUTUREMAX=7 MAILMAX\r\n",
                limits(Some(5), None, None),
            ),
            (b"250-x\r\n250 LIMITS\r\n", limits(None, None, None)),
            (
                b"250-x\r\n250 LIMITS RCPTMAX= MAILMAX=x RCPTDOMAINMAX=-1\r\n",
                limits(None, None, None),
            ),
            (
                b"250-x\r\n250 LIMITS RCPTMAX=0 MAILMAX=4294967296 RCPTDOMAINMAX=4294967295\r\n",
                limits(None, None, Some(u32::MAX)),
            ),
            (
                b"250-x\r\n250 LIMITS RCPTMAX=3 RCPTMAX=bad\r\n",
                limits(Some(3), None, None),
            ),
        ];
        for (bytes, expected) in cases {
            let caps = parse(bytes);
            assert!(caps.supports(Extension::Limits), "{bytes:?}");
            assert_eq!(caps.limits(), *expected, "{bytes:?}");
        }
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let caps = parse(
            b"250-Mail.Example.COM hi\r\n250-pipelining\r\n250-StartTLS\r\n250-8bitmime\r\n\
              250-smtputf8\r\n250-mt-priority stanag4406\r\n250 x-custom Param\r\n",
        );
        use Extension::*;
        assert_supports(
            &caps,
            &[Pipelining, StartTls, EightBitMime, SmtpUtf8, MtPriority],
        );
        assert_eq!(caps.domain(), "Mail.Example.COM");
        assert_eq!(caps.mt_priority_profile(), Some("stanag4406"));
        assert_eq!(caps.other(), other(&[("X-CUSTOM", &["Param"])]));
    }

    #[test]
    fn garbage_lines_are_ignored() {
        let caps = parse(
            b"250-mx\r\n250-\r\n250- \r\n250--DASH\r\n250-SIZE=100\r\n250-PIPE_LINING\r\n\
              250- STARTTLS\r\n250-\xff\xfe\r\n250-\x1b[2J\r\n250-\tDSN\r\n250-CHUNKING\x00\r\n\
              250-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA x\r\n250 VRFY \r\n",
        );
        // ` STARTTLS` is accepted with surrounding spaces trimmed; nothing else but VRFY is valid.
        assert_supports(&caps, &[Extension::StartTls, Extension::Vrfy]);
        assert_eq!(
            caps.other(),
            other(&[(
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                &["x"]
            )])
        );
        assert_eq!(caps.size(), None);
    }

    #[test]
    fn unknown_keyword_params_are_sanitized() {
        let caps = parse(b"250-x\r\n250 XFOO a\x1bb \xff\r\n");
        assert_eq!(
            caps.other(),
            other(&[("XFOO", &["a\u{fffd}b", "\u{fffd}"])])
        );
    }

    #[test]
    fn domain_forms() {
        let cases: &[(&[u8], &str)] = &[
            (b"250 mx.example.com\r\n", "mx.example.com"),
            (
                b"250 mx.example.com Hello [192.0.2.1]\r\n",
                "mx.example.com",
            ),
            (b"250\r\n", ""),
            (b"250 \r\n", ""),
            (b"250  padded.example\r\n", "padded.example"),
            (b"250 bad\x1b\xffname rest\r\n", "bad\u{fffd}\u{fffd}name"),
        ];
        for (bytes, expected) in cases {
            let caps = parse(bytes);
            assert_eq!(caps.domain(), *expected, "{bytes:?}");
            assert_supports(&caps, &[]);
        }
    }

    #[test]
    fn none_and_negative_replies() {
        let none = Capabilities::none();
        assert_eq!(none, Capabilities::default());
        assert_eq!(none.domain(), "");
        assert_supports(&none, &[]);
        assert_eq!(none.size(), None);
        assert!(none.auth_mechanisms().is_empty());
        assert_eq!(none.limits(), MailLimits::default());
        assert_eq!(none.mt_priority_profile(), None);
        assert!(none.other().is_empty());

        let refused = Reply::new(
            ReplyCode::new(502).unwrap(),
            &[b"5.5.1 mx.example.com", b"PIPELINING"],
        );
        assert_eq!(Capabilities::from_ehlo(&refused), Capabilities::none());
    }

    #[test]
    fn from_ehlo_on_a_synthetic_reply() {
        let reply = Reply::new(
            ReplyCode::OK,
            &[
                b"lmtp.example.org",
                b"PIPELINING",
                b"ENHANCEDSTATUSCODES",
                b"8BITMIME",
            ],
        );
        let caps = Capabilities::from_ehlo(&reply);
        assert_eq!(caps.domain(), "lmtp.example.org");
        use Extension::*;
        assert_supports(&caps, &[Pipelining, EnhancedStatusCodes, EightBitMime]);
    }

    #[test]
    fn parse_ehlo_errors() {
        assert_eq!(
            Capabilities::parse_ehlo(b"250-mx\r\n250-PIPE"),
            Err(ReplyError::Malformed {
                line: b"250-mx\r\n250-PIPE".to_vec(),
                reason: "incomplete reply",
            })
        );
        assert!(matches!(
            Capabilities::parse_ehlo(b"250-mx\r\n251 x\r\n"),
            Err(ReplyError::InconsistentCode { .. })
        ));
        assert!(matches!(
            Capabilities::parse_ehlo(b"hello\r\n"),
            Err(ReplyError::Malformed { .. })
        ));
    }

    #[test]
    fn corpus_takes_the_fast_path() {
        for bytes in [
            &include_bytes!("../../corpus/replies/ehlo--ehlo-15-lines.txt")[..],
            include_bytes!("../../corpus/replies/ehlo--ehlo-exim.txt"),
            include_bytes!("../../corpus/replies/ehlo--ehlo-gmail-submission.txt"),
            include_bytes!("../../corpus/replies/ehlo--ehlo-office365.txt"),
            include_bytes!("../../corpus/replies/ehlo--ehlo-postfix.txt"),
        ] {
            let fast = Capabilities::parse_ehlo_fast(bytes).expect("fast path");
            assert_eq!(Ok(fast), Capabilities::parse_ehlo_general(bytes));
        }
    }

    #[test]
    fn common_mechanisms_match_from_name() {
        for name in [
            &b"plain"[..],
            b"LOGIN",
            b"Cram-Md5",
            b"xoauth2",
            b"OAUTHBEARER",
            b"scram-sha-256",
            b"SCRAM-SHA-256-PLUS",
            b"SCRAM-SHA-1",
            b"x-custom",
        ] {
            let known = known_mechanism(name, 0, name.len()).map(|i| KNOWN_MECHANISMS[i].clone());
            assert_eq!(
                known.is_some(),
                !matches!(
                    Mechanism::from_name(name),
                    Mechanism::Other(_) | Mechanism::ScramSha256Plus
                ),
                "{name:?}"
            );
            if let Some(known) = known {
                assert_eq!(known, Mechanism::from_name(name));
            }
        }
    }

    #[test]
    fn swar_upper_case_matches_the_byte_loop() {
        for word in [
            &b"pipelining"[..],
            b"Mt-Priority",
            b"8bitmime",
            b"auth",
            b"\x80\xe1az{@`AZ",
            b"xoauth2",
            b"",
        ] {
            let expected: Vec<u8> = word.to_ascii_uppercase();
            assert_eq!(packed_upper(word), Some(pack(&expected)), "{word:?}");
        }
        for b in 0..=255u8 {
            let x = upper_swar(u64::from_le_bytes([b; 8]));
            assert_eq!(x.to_le_bytes(), [b.to_ascii_uppercase(); 8], "{b}");
        }
    }

    #[test]
    fn keywords_round_trip() {
        for ext in ALL {
            assert_eq!(Extension::from_keyword(ext.keyword().as_bytes()), Some(ext));
            assert!(ext.keyword().len() <= MAX_KNOWN_KEYWORD);
        }
        let bits: u32 = ALL.iter().fold(0, |acc, ext| {
            assert_eq!(acc & ext.bit(), 0);
            acc | ext.bit()
        });
        assert_eq!(bits.count_ones(), 16);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::reply::ReplyCode;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_ehlo_text_never_panics(
            lines in prop::collection::vec(
                prop::collection::vec(
                    prop_oneof![
                        4 => prop::sample::select(&b"AUTH=SIZE LIMITS RCPTMAX0123456789-mt-priority \t\r\xff"[..]),
                        1 => any::<u8>().prop_filter("no LF", |&b| b != b'\n'),
                    ],
                    0..40,
                ),
                0..8,
            ),
        ) {
            let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let caps = Capabilities::from_ehlo(&Reply::new(ReplyCode::OK, &lines));
            prop_assert!(!caps.domain().chars().any(char::is_control));
            let mut seen = Vec::new();
            for mechanism in caps.auth_mechanisms() {
                prop_assert!(!seen.contains(&mechanism));
                seen.push(mechanism);
            }
            prop_assert!(caps.size() != Some(0));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Capabilities::parse_ehlo(&bytes);
        }

        /// The fast path agrees with the general path (framer errors and all) on EHLO-like input: whenever it
        /// answers, it gives the same capabilities, and `parse_ehlo` always gives the general path's result.
        #[test]
        fn fast_path_matches_the_general_path(
            lines in prop::collection::vec(ehlo_line(), 1..12),
            tail in prop::collection::vec(any::<u8>(), 0..3),
        ) {
            let mut wire = Vec::new();
            for line in &lines {
                wire.extend_from_slice(line);
            }
            wire.extend_from_slice(&tail);
            let general = Capabilities::parse_ehlo_general(&wire);
            if let Some(fast) = Capabilities::parse_ehlo_fast(&wire) {
                prop_assert_eq!(Ok(fast.clone()), general.clone());
                // Field by field too (`other` compares decoded).
                prop_assert_eq!(fast.other(), general.as_ref().unwrap().other());
            }
            prop_assert_eq!(Capabilities::parse_ehlo(&wire), general);
        }
    }

    /// One EHLO-like reply line: a head (mostly `250-`/`250 `, sometimes another code or separator) and a text
    /// made of known keywords in any case, parameters, spaces and odd bytes, ended by CRLF, LF or nothing.
    fn ehlo_line() -> impl Strategy<Value = Vec<u8>> {
        let head = prop_oneof![
            6 => Just(&b"250-"[..]),
            3 => Just(&b"250 "[..]),
            1 => Just(&b"250"[..]),
            1 => Just(&b"550-"[..]),
            1 => Just(&b"251-"[..]),
            1 => Just(&b"25x-"[..]),
        ];
        let word = prop_oneof![
            prop::sample::select(
                ALL_KEYWORDS
                    .iter()
                    .map(|k| k.as_bytes().to_vec())
                    .collect::<Vec<_>>()
            )
            .prop_flat_map(|k| {
                let len = k.len();
                (Just(k), prop::collection::vec(any::<bool>(), len)).prop_map(|(k, lower)| {
                    k.iter()
                        .zip(lower)
                        .map(|(&b, l)| if l { b.to_ascii_lowercase() } else { b })
                        .collect::<Vec<u8>>()
                })
            }),
            Just(b"AUTH=".to_vec()),
            Just(b"AUTH=PLAIN".to_vec()),
            prop::sample::select(vec![
                b"PLAIN".to_vec(),
                b"login".to_vec(),
                b"XOAUTH".to_vec(),
                b"1000".to_vec(),
                b"RCPTMAX=5".to_vec(),
                b"mailmax=0".to_vec(),
                b"X-FOO".to_vec(),
                b"mx.example.com".to_vec(),
                b"".to_vec(),
            ]),
            prop::collection::vec(
                prop_oneof![
                    4 => prop::sample::select(&b"AZaz09-_=. \r\0"[..]),
                    1 => any::<u8>().prop_filter("no LF", |&b| b != b'\n'),
                ],
                0..24,
            ),
        ];
        let text = prop::collection::vec(
            (word, prop::sample::select(vec![&b" "[..], b"  ", b""])),
            0..4,
        );
        let end = prop_oneof![8 => Just(&b"\r\n"[..]), 1 => Just(&b"\n"[..]), 1 => Just(&b""[..])];
        (head, text, end).prop_map(|(head, text, end)| {
            let mut line = head.to_vec();
            for (word, space) in text {
                line.extend_from_slice(&word);
                line.extend_from_slice(space);
            }
            line.extend_from_slice(end);
            line
        })
    }

    const ALL_KEYWORDS: [&str; 16] = [
        "SIZE",
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "CHUNKING",
        "BINARYMIME",
        "DSN",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "AUTH",
        "REQUIRETLS",
        "LIMITS",
        "MT-PRIORITY",
        "DELIVERBY",
        "ETRN",
        "VRFY",
    ];
}
