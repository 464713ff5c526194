//! What the server offers, from its EHLO or LHLO reply (RFC 5321 §4.1.1.1 and the extension RFCs).
//!
//! The first line of the reply is the server's domain and greeting; each later line is an `ehlo-keyword`
//! (letters, digits and `-`, case-insensitive) followed by space-separated parameters. Lines that do not fit that
//! grammar are ignored: a server's oddities must never stop a client from sending mail.

use crate::auth::Mechanism;
#[cfg(doc)]
use crate::framer::parse_reply;
use std::sync::OnceLock;

use crate::framer::{ReplyError, ReplyLimits, find_lf_fast, lf_mask, low_bytes, scan_with};
use crate::reply::{Reply, ReplyCode, SmallBytes, write_sanitized};

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
        let words = [0, 8, 16].map(|at| load_word(keyword, at, len));
        if len > 24 {
            return None;
        }
        Self::lookup(len, words)
    }

    /// The extension advertised by a keyword (any case) of `len` bytes, given its first 24 bytes as little-endian
    /// words (see [`WordSlot::find`]).
    #[inline(always)]
    fn lookup(len: usize, words: [u64; 3]) -> Option<Self> {
        let index = WordSlot::find(&KEYWORD_TABLE, KEYWORD_HASH, len, words)?;
        KNOWN_EXTENSIONS.get(index).copied()
    }

    /// This extension's bit in [`Capabilities`]' set.
    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// One word of a small perfect hash table of known words (EHLO keywords, SASL mechanism names): its length and its
/// bytes as three little-endian words (zero-padded).
#[derive(Clone, Copy)]
struct WordSlot {
    words: [u64; 3],
    /// `0x20` in every byte that is a letter: the bit that may differ (keywords and mechanism names are
    /// case-insensitive).
    case: [u64; 3],
    /// The bytes of each word that belong to the word (`0xff`), as masks.
    mask: [u64; 3],
    /// The word's length; `u8::MAX` for an empty slot (never a length looked up).
    len: u8,
    /// The word's index in the list the table was built from.
    index: u8,
}

impl WordSlot {
    /// The table's slot for a word whose first bytes are `first` (little-endian; any bytes past the word's third):
    /// the hash of the first three bytes, the same in any case (letters are lower-cased; other bytes change too,
    /// which only moves them to another slot, where they do not match). The known words of each table differ in
    /// their first three bytes.
    #[inline(always)]
    const fn slot(first: u64, hash: u64, slots: usize) -> usize {
        (((first & 0xff_ffff) | 0x20_2020).wrapping_mul(hash) >> (64 - slots.trailing_zeros()))
            as usize
    }

    /// A table of `words` (each 3 to 24 bytes) where [`WordSlot::slot`] with `hash` gives every word a slot of its
    /// own: checked here, at compile time.
    const fn table<const SLOTS: usize>(words: &[&str], hash: u64) -> [WordSlot; SLOTS] {
        assert!(SLOTS.is_power_of_two() && words.len() < u8::MAX as usize);
        let mut table = [WordSlot {
            words: [0; 3],
            case: [0; 3],
            mask: [0; 3],
            len: u8::MAX,
            index: u8::MAX,
        }; SLOTS];
        let mut i = 0;
        while i < words.len() {
            let word = words[i].as_bytes();
            assert!(word.len() >= 3 && word.len() <= 24);
            let mut packed = [0u64; 3];
            let mut case = [0u64; 3];
            let mut mask = [0u64; 3];
            let mut b = 0;
            while b < word.len() {
                packed[b / 8] |= (word[b] as u64) << (8 * (b % 8));
                mask[b / 8] |= 0xff << (8 * (b % 8));
                if word[b].is_ascii_alphabetic() {
                    case[b / 8] |= 0x20 << (8 * (b % 8));
                }
                b += 1;
            }
            let slot = Self::slot(packed[0], hash, SLOTS);
            assert!(table[slot].len == u8::MAX, "two words share a hash slot");
            table[slot] = WordSlot {
                words: packed,
                case,
                mask,
                len: word.len() as u8,
                index: i as u8,
            };
            i += 1;
        }
        table
    }

    /// The slot `words` would be in.
    #[inline(always)]
    fn probe<const SLOTS: usize>(table: &[WordSlot; SLOTS], hash: u64, first: u64) -> &WordSlot {
        &table[Self::slot(first, hash, SLOTS) & (SLOTS - 1)]
    }

    /// Whether the bytes given as three little-endian words start with this slot's word (any case; bytes past it
    /// are not looked at). An empty slot matches nothing.
    #[inline(always)]
    fn starts(&self, words: [u64; 3]) -> bool {
        let differ = ((words[0] ^ self.words[0]) & !self.case[0] & self.mask[0])
            | ((words[1] ^ self.words[1]) & !self.case[1] & self.mask[1])
            | ((words[2] ^ self.words[2]) & !self.case[2] & self.mask[2]);
        differ == 0 && self.index != u8::MAX
    }

    /// The index of the word of `len` bytes (any case), given as three little-endian words (bytes past `len` may be
    /// anything): one probe, then compared as integers. No per-byte loop.
    #[inline(always)]
    fn find<const SLOTS: usize>(
        table: &[WordSlot; SLOTS],
        hash: u64,
        len: usize,
        words: [u64; 3],
    ) -> Option<usize> {
        let slot = Self::probe(table, hash, words[0]);
        (usize::from(slot.len) == len && slot.starts(words)).then_some(usize::from(slot.index))
    }
}

/// The extensions [`Extension::lookup`] knows, in [`KEYWORD_TABLE`]'s order.
const KNOWN_EXTENSIONS: [Extension; 16] = {
    use Extension::*;
    [
        Size,
        Pipelining,
        EightBitMime,
        SmtpUtf8,
        Chunking,
        BinaryMime,
        Dsn,
        EnhancedStatusCodes,
        StartTls,
        Auth,
        RequireTls,
        Limits,
        MtPriority,
        DeliverBy,
        Etrn,
        Vrfy,
    ]
};

/// The hash multiplier of [`KEYWORD_TABLE`] (found by a search; the table's build checks it).
const KEYWORD_HASH: u64 = 0x891b_a6ad_998a_0e31;

// The fast path sets `1 << index` for the keyword at `index`: the list is in declaration order.
const _: () = {
    let mut i = 0;
    while i < KNOWN_EXTENSIONS.len() {
        assert!(KNOWN_EXTENSIONS[i] as usize == i);
        i += 1;
    }
};

/// The keywords of [`KNOWN_EXTENSIONS`].
const KEYWORD_TABLE: [WordSlot; 32] = {
    let mut keywords = [""; KNOWN_EXTENSIONS.len()];
    let mut i = 0;
    while i < keywords.len() {
        keywords[i] = KNOWN_EXTENSIONS[i].keyword();
        i += 1;
    }
    WordSlot::table(&keywords, KEYWORD_HASH)
};

/// The hash multiplier of [`MECHANISM_TABLE`].
const MECHANISM_HASH: u64 = 0x6d4b_9adb_ebcd_1f5f;

/// The names of [`KNOWN_MECHANISMS`].
const MECHANISM_TABLE: [WordSlot; 8] = WordSlot::table(
    &[
        "PLAIN",
        "LOGIN",
        "CRAM-MD5",
        "XOAUTH2",
        "OAUTHBEARER",
        "SCRAM-SHA-256",
    ],
    MECHANISM_HASH,
);

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
/// Parsing allocates only for what is rare: a domain or `MT-PRIORITY` profile longer than the inline buffers, many
/// unknown SASL mechanism names, and many unknown keywords. What a client rarely reads is kept compact and decoded
/// on first use: the SASL mechanisms (by [`Capabilities::auth_mechanisms`]) and the unknown keywords (by
/// [`Capabilities::other`]).
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

/// EHLO replies up to this many bytes take the fast path of [`Capabilities::parse_ehlo`]: at most 204 lines of
/// at most this many bytes, within every default [`ReplyLimits`] (a unit test checks it), so that path checks
/// no limit per line.
const FAST_EHLO_MAX: usize = 1024;
/// Domains up to this many bytes are kept inside [`Capabilities`].
const DOMAIN_INLINE: usize = 40;
/// `MT-PRIORITY` profile names up to this many bytes are kept inside [`Capabilities`].
const PROFILE_INLINE: usize = 24;
/// Bytes of unknown keywords' lines kept inside [`Capabilities`] before they move to the heap.
const OTHER_INLINE: usize = 62;

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
    #[inline]
    pub fn parse_ehlo(bytes: &[u8]) -> Result<Self, ReplyError> {
        // Built in place in the value returned (a move of `Capabilities` is a few hundred bytes of copying).
        let mut parsed = Ok(const { Self::none() });
        if let Ok(caps) = &mut parsed
            && caps.fill_fast(bytes).is_none()
        {
            parsed = Self::parse_ehlo_general(bytes);
        }
        parsed
    }

    /// The fast path of [`Capabilities::parse_ehlo`]: the shared fast line scanner, each line read in place.
    /// `None` when the general path must decide (an error, incomplete input, a limit reached); whenever this
    /// returns capabilities, the general path returns the same (a differential property test checks it).
    #[cfg(test)]
    fn parse_ehlo_fast(bytes: &[u8]) -> Option<Self> {
        let mut caps = Self::none();
        caps.fill_fast(bytes)?;
        Some(caps)
    }

    /// The client's way to read a positive EHLO or LHLO reply that lies whole at the start of `bytes`: the
    /// capabilities and the reply's length, in one pass and without building the reply (what
    /// [`Capabilities::parse_ehlo`] does). `None` when the reply is negative, incomplete, longer than
    /// [`FAST_EHLO_MAX`], malformed, or when `limits` are tighter than the defaults: then the framer decides.
    pub(crate) fn parse_ehlo_prefix(bytes: &[u8], limits: &ReplyLimits) -> Option<(Self, usize)> {
        if limits.max_line_len < FAST_EHLO_MAX
            || limits.max_reply_len < FAST_EHLO_MAX
            || limits.max_lines <= FAST_EHLO_MAX / 5
        {
            return None;
        }
        let mut caps = Self::none();
        let used = caps.fill_fast(bytes)?;
        Some((caps, used))
    }

    /// [`Capabilities::parse_ehlo_fast`] into `self` (which is [`Capabilities::none`]), in place: the length of the
    /// reply, or `None` when the general path must decide (then `self` holds a partial result to be discarded).
    ///
    /// Only a positive reply of at most [`FAST_EHLO_MAX`] bytes is read here: whatever its lines, it is within every
    /// default [`ReplyLimits`], so no limit is checked per line.
    #[inline]
    fn fill_fast(&mut self, bytes: &[u8]) -> Option<usize> {
        let bytes = &bytes[..bytes.len().min(FAST_EHLO_MAX)];
        // The first line, as the framer reads it: `2yz-text`, `2yz text` or `2yz`, ended by LF or CRLF.
        let lf = find_lf_fast(bytes)?;
        let line = &bytes[..lf];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let [a, b, c, tail @ ..] = line else {
            return None;
        };
        // A negative reply advertises nothing; the general path checks that it is well-formed.
        if !ReplyCode::from_digits(*a, *b, *c)?.is_positive_completion() {
            return None;
        }
        let (mut last, first) = match tail {
            [] => (true, tail),
            [b' ', text @ ..] => (true, text),
            [b'-', text @ ..] => (false, text),
            _ => return None,
        };
        // `first` is `bytes[first_start..lf]` less a CR.
        let first_start = line.len() - first.len();
        self.set_domain_within(bytes, first_start, first_start + first.len());
        let more = u32::from_le_bytes([*a, *b, *c, b'-']);
        let end_head = u32::from_le_bytes([*a, *b, *c, b' ']);
        let mut pos = lf + 1;
        while !last {
            // The line's first 28 bytes: `NNN-` or `NNN ` with the first line's digits, then the text's first 24
            // bytes as three words (zero past the input: a zero is never an LF; bytes past the line are masked off).
            // Loaded in place (never through a copy, whose stores the loads would have to wait for); zero past
            // the input.
            let (head, w0, w1, w2) = match bytes.get(pos..).and_then(<[u8]>::first_chunk::<28>) {
                Some(chunk) => {
                    let (head, text) = chunk.split_first_chunk::<4>()?;
                    let (w0, text) = text.split_first_chunk::<8>()?;
                    let (w1, w2) = text.split_first_chunk::<8>()?;
                    let w2 = w2.first_chunk::<8>()?;
                    (
                        u32::from_le_bytes(*head),
                        u64::from_le_bytes(*w0),
                        u64::from_le_bytes(*w1),
                        u64::from_le_bytes(*w2),
                    )
                }
                None => {
                    let head = bytes.get(pos..)?.first_chunk::<4>()?;
                    let end = bytes.len();
                    (
                        u32::from_le_bytes(*head),
                        load_raw(bytes, pos + 4, end),
                        load_raw(bytes, pos + 12, end),
                        load_raw(bytes, pos + 20, end),
                    )
                }
            };
            last = if head == more {
                false
            } else if head == end_head {
                true
            } else {
                return None;
            };
            let start = pos + 4;
            // Most lines are one known keyword alone, then CRLF: checked against the one keyword its first three
            // bytes can begin, without looking for the line end.
            let slot = WordSlot::probe(&KEYWORD_TABLE, KEYWORD_HASH, w0);
            let keyword_len = usize::from(slot.len);
            let known = slot.starts([w0, w1, w2]);
            if known && bytes.get(start + keyword_len..start + keyword_len + 2) == Some(b"\r\n") {
                // `slot.index < 16`: the slot is not empty.
                let bit = 1u32 << (slot.index & 31);
                if bit & WITH_PARAMS == 0 {
                    self.known |= bit;
                    pos = start + keyword_len + 2;
                    continue;
                }
            }
            let lf = match (lf_mask(w0), lf_mask(w1), lf_mask(w2)) {
                (0, 0, 0) => start + 24 + find_lf_fast(bytes.get(start + 24..)?)?,
                (0, 0, m2) => start + 16 + (m2.trailing_zeros() / 8) as usize,
                (0, m1, _) => start + 8 + (m1.trailing_zeros() / 8) as usize,
                (m0, _, _) => start + (m0.trailing_zeros() / 8) as usize,
            };
            pos = lf + 1;
            let end = if lf > start && bytes.get(lf - 1) == Some(&b'\r') {
                lf - 1
            } else {
                lf
            };
            // A known keyword, a space, parameters.
            if known
                && bytes.get(start + keyword_len) == Some(&b' ')
                && let Some(&ext) = KNOWN_EXTENSIONS.get(usize::from(slot.index))
            {
                self.add_known(ext, bytes, start + keyword_len, end);
                continue;
            }
            let len = end - start;
            // An unknown keyword alone: no space, not a known keyword (which, being the only one starting with the
            // same three bytes, would have matched `slot`) and not `AUTH=`. Kept as it is: [`OtherKeywords::get`]
            // checks that it is a valid keyword when it decodes the lines (a client rarely asks).
            if len <= 16 && len > 0 && !(known && len == keyword_len) {
                let lo = w0 & low_bytes(len);
                let hi = w1 & low_bytes(len.saturating_sub(8));
                let spaces = zero_byte_mask(lo ^ SPACES) & low_bytes(len)
                    | zero_byte_mask(hi ^ SPACES) & low_bytes(len.saturating_sub(8));
                if spaces == 0 && !is_auth_equals(lo) {
                    self.other.push_short([lo, hi], len);
                    continue;
                }
            }
            if len > 0 && bytes[start] != b' ' && bytes[end - 1] != b' ' {
                self.add_trimmed_line(bytes, start, end, w0, w1);
            } else {
                self.add_line(bytes, start, end);
            }
        }
        Some(pos)
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
        self.set_domain_within(first, 0, first.len());
    }

    /// [`Capabilities::set_domain`] of `buf[start..end]`; bytes of `buf` past `end` may be copied (not kept).
    #[inline]
    fn set_domain_within(&mut self, buf: &[u8], start: usize, end: usize) {
        let first = &buf[start..end];
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
            self.domain.set_within(buf, start, stop);
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
    pub const fn none() -> Self {
        Self {
            domain: SmallStr::new(),
            known: 0,
            size: None,
            mechanisms: Mechanisms {
                order: 0,
                count: 0,
                seen: 0,
                names: SmallBytes::new(),
                decoded: OnceLock::new(),
            },
            limits: MailLimits {
                rcpt_max: None,
                mail_max: None,
                rcpt_domain_max: None,
            },
            mt_priority_profile: None,
            other: OtherKeywords {
                lines: SmallBytes::new(),
                decoded: OnceLock::new(),
            },
        }
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
        let w0 = load_raw(buf, start, end);
        let w1 = if end - start > 8 {
            load_raw(buf, start + 8, end)
        } else {
            0
        };
        self.add_trimmed_line(buf, start, end, w0, w1);
    }

    /// [`Capabilities::add_line`] of a line without leading or trailing spaces, given its first 16 bytes as
    /// [`load_raw`] reads them (`w1` is only read when the line is longer than 8 bytes; bytes past `end` may be
    /// anything: they are masked off).
    #[inline(never)]
    fn add_trimmed_line(&mut self, buf: &[u8], start: usize, end: usize, w0: u64, w1: u64) {
        let len = end - start;
        // The keyword ends at the first space: found in the words that are compared with the known keywords.
        let sp0 = zero_byte_mask(w0 ^ SPACES);
        let (keyword_len, w1) = if sp0 != 0 && ((sp0.trailing_zeros() / 8) as usize) < len {
            ((sp0.trailing_zeros() / 8) as usize, 0)
        } else if len <= 8 {
            (len, 0)
        } else {
            let sp1 = zero_byte_mask(w1 ^ SPACES);
            let keyword_len = if sp1 != 0 && 8 + ((sp1.trailing_zeros() / 8) as usize) < len {
                8 + (sp1.trailing_zeros() / 8) as usize
            } else if len <= 16 {
                len
            } else {
                word_end(buf, start + 16, end) - start
            };
            (keyword_len, w1 & low_bytes(keyword_len - 8))
        };
        let lo = w0 & low_bytes(keyword_len);
        let keyword_end = start + keyword_len;

        // Pre-RFC 4954 servers (and Postfix, for old clients) write `AUTH=LOGIN PLAIN`.
        if keyword_len >= 5 && is_auth_equals(lo) {
            self.known |= Extension::Auth.bit();
            // `AUTH=a b`: the names are `a` and `b`, as in `AUTH a b`.
            self.add_mechanisms(buf, start + 5, end);
            return;
        }
        let known = match keyword_len {
            0..=16 => Extension::lookup(keyword_len, [lo, w1, 0]),
            17..=24 => {
                let w2 = load_raw(buf, start + 16, end) & low_bytes(keyword_len - 16);
                Extension::lookup(keyword_len, [lo, w1, w2])
            }
            _ => None,
        };
        let Some(ext) = known else {
            // Whether the keyword is valid is checked when `other()` decodes the line.
            if keyword_len > 0 {
                self.other.push(&buf[start..end]);
            }
            return;
        };
        self.add_known(ext, buf, keyword_end, end);
    }

    /// Adds the known extension `ext`, whose parameters (if any, after spaces) are `buf[from..end]`.
    #[inline]
    fn add_known(&mut self, ext: Extension, buf: &[u8], keyword_end: usize, end: usize) {
        self.known |= ext.bit();
        match ext {
            Extension::Size => {
                self.size = next_word(buf, keyword_end, end)
                    .and_then(|(from, to)| decimal(buf, from, to))
                    .filter(|&n| n > 0);
            }
            Extension::Auth => self.add_mechanisms(buf, keyword_end, end),
            Extension::Limits => self.add_limits(buf, keyword_end, end),
            Extension::MtPriority => {
                self.mt_priority_profile = next_word(buf, keyword_end, end).map(|(from, to)| {
                    let profile = &buf[from..to];
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
            // The name's first word: where it ends is found in it, and it is compared with the known names.
            let w0 = load_raw(buf, i, end);
            if w0 as u8 == b' ' {
                i += 1;
                continue;
            }
            let spaces = zero_byte_mask(w0 ^ SPACES);
            let name_end = if spaces != 0 {
                (i + (spaces.trailing_zeros() / 8) as usize).min(end)
            } else if i + 8 >= end {
                end
            } else {
                word_end(buf, i + 8, end)
            };
            let len = name_end - i;
            let w1 = if (9..=16).contains(&len) {
                load_raw(buf, i + 8, end)
            } else {
                0
            };
            match WordSlot::find(&MECHANISM_TABLE, MECHANISM_HASH, len, [w0, w1, 0]) {
                Some(index) => self.mechanisms.push_known(index),
                // 1 to 20 of `A-Z a-z 0-9 - _`.
                None => {
                    let name = &buf[i..name_end];
                    if len <= 20 && name.iter().all(|&b| MECHANISM_BYTE[usize::from(b)]) {
                        self.mechanisms.push_name(name);
                    }
                }
            }
            i = name_end;
        }
    }

    /// Reads the parameters of `LIMITS` (RFC 9422 §3), the space-separated `NAME=value` words of `buf[at..end]`;
    /// unknown and malformed ones are ignored. Each parameter is read from words loaded in place (bytes of `buf`
    /// past `end` may be loaded): the known names, `=` included, are compared as integers in any case (the case
    /// bit of their letters masked off), and a value of up to 8 digits is read as one word.
    #[inline]
    fn add_limits(&mut self, buf: &[u8], mut at: usize, end: usize) {
        const MAILMAX: u64 = pack8(b"MAILMAX=");
        const RCPTMAX: u64 = pack8(b"RCPTMAX=");
        const RCPTDOMA: u64 = pack8(b"RCPTDOMA");
        const INMAX: u64 = pack8(b"INMAX=");
        // The case bits of the letters of `MAILMAX=` and `RCPTMAX=` (the same positions), `RCPTDOMA` and `INMAX=`.
        const CASE_7: u64 = letter_bits(b"MAILMAX=");
        const CASE_8: u64 = letter_bits(b"RCPTDOMA");
        const CASE_5: u64 = letter_bits(b"INMAX=");
        while at < end {
            let w0 = load_raw(buf, at, end);
            if w0 as u8 == b' ' {
                at += 1;
                continue;
            }
            // A byte that matches a pattern is never the line's end (CR, LF, a space or, past the input, zero), so
            // a match lies within the line; the bound checks only make that explicit.
            let (slot, value) = if (w0 ^ MAILMAX) & !CASE_7 == 0 && at + 8 <= end {
                (&mut self.limits.mail_max, at + 8)
            } else if (w0 ^ RCPTMAX) & !CASE_7 == 0 && at + 8 <= end {
                (&mut self.limits.rcpt_max, at + 8)
            } else if (w0 ^ RCPTDOMA) & !CASE_8 == 0
                && at + 14 <= end
                && (load_raw(buf, at + 8, end) ^ INMAX) & !CASE_5 & low_bytes(6) == 0
            {
                (&mut self.limits.rcpt_domain_max, at + 14)
            } else {
                // Another name (ignored), or no `=` after a known one (`MAILMAX`, `RCPTMAXIMUM=2`: not that name).
                at = word_end(buf, at, end);
                continue;
            };
            at = word_end(buf, value, end);
            // A limit of zero would forbid the command altogether: treat it as malformed.
            if let Some(n) = decimal(buf, value, at)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n > 0)
            {
                *slot = Some(n);
            }
        }
    }

    /// Reads one `NAME=value` parameter of `LIMITS` (RFC 9422 §3); unknown or malformed ones are ignored. The
    /// reference [`Capabilities::add_limits`] is tested against.
    #[cfg(test)]
    fn add_limit(&mut self, buf: &[u8], start: usize, end: usize) {
        // The name is what comes before the first `=`: the known names have none, so a name of 7 or 13 bytes
        // followed by `=` is compared (upper-cased, a word at a time) without looking for the first `=`.
        let len = end - start;
        let lo = upper_swar(load_raw(buf, start, end) & low_bytes(len));
        let (slot, value) = if len > 7 && buf[start + 7] == b'=' {
            const RCPTMAX: u64 = pack8(b"RCPTMAX");
            const MAILMAX: u64 = pack8(b"MAILMAX");
            let slot = match lo & low_bytes(7) {
                RCPTMAX => &mut self.limits.rcpt_max,
                MAILMAX => &mut self.limits.mail_max,
                _ => return,
            };
            (slot, start + 8)
        } else if len > 13
            && buf[start + 13] == b'='
            && lo == const { pack8(b"RCPTDOMA") }
            && upper_swar(load_raw(buf, start + 8, end)) & low_bytes(5) == const { pack8(b"INMAX") }
        {
            (&mut self.limits.rcpt_domain_max, start + 14)
        } else {
            return;
        };
        // A limit of zero would forbid the command altogether: treat it as malformed.
        if let Some(n) = decimal(buf, value, end)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
        {
            *slot = Some(n);
        }
    }
}

/// A short string kept inline (no allocation), on the heap when longer than `N` bytes.
///
/// The inline bytes are 8-aligned: [`SmallStr::as_str`]'s UTF-8 check (std's, the one safe way to a `&str`) then
/// takes its word-at-a-time ASCII path from the first byte; from an odd offset it went byte by byte (about 150
/// instructions for a 16-byte domain, on every `domain()` call).
#[derive(Clone)]
enum SmallStr<const N: usize> {
    Inline { buf: AlignedBytes<N>, len: u8 },
    Heap(Box<str>),
}

/// `N` bytes at an 8-aligned address.
#[derive(Clone, Copy)]
#[repr(align(8))]
struct AlignedBytes<const N: usize>([u8; N]);

impl<const N: usize> SmallStr<N> {
    /// The empty string.
    const fn new() -> Self {
        assert!(N <= u8::MAX as usize);
        Self::Inline {
            buf: AlignedBytes([0; N]),
            len: 0,
        }
    }

    /// From valid UTF-8 (ASCII, or text written by the sanitizer).
    fn from_ascii(text: &[u8]) -> Self {
        let mut s = Self::new();
        s.set(text);
        s
    }

    /// Replaces the text with `text` (valid UTF-8), in place.
    #[inline]
    fn set(&mut self, text: &[u8]) {
        match self {
            Self::Inline { buf, len } if text.len() <= N => {
                buf.0[..text.len()].copy_from_slice(text);
                // `text.len() <= N <= 255`.
                *len = text.len() as u8;
            }
            other => *other = Self::Heap(std::str::from_utf8(text).unwrap_or_default().into()),
        }
    }

    /// Replaces the text with `buf[start..start + len]` (valid UTF-8), in place: a copy of fixed size when `buf`
    /// has `N` bytes from `start` (the bytes past `len` are not part of the text).
    #[inline]
    fn set_within(&mut self, buf: &[u8], start: usize, len: usize) {
        match self {
            Self::Inline {
                buf: inline,
                len: used,
            } if len <= N => {
                match buf.get(start..).and_then(<[u8]>::first_chunk::<N>) {
                    Some(block) => inline.0 = *block,
                    None => inline.0[..len].copy_from_slice(&buf[start..start + len]),
                }
                // `len <= N <= 255`.
                *used = len as u8;
            }
            other => {
                *other = Self::Heap(
                    std::str::from_utf8(&buf[start..start + len])
                        .unwrap_or_default()
                        .into(),
                )
            }
        }
    }

    #[inline]
    fn as_str(&self) -> &str {
        match self {
            // Always valid: built from ASCII or from a `str`.
            Self::Inline { buf, len } => {
                std::str::from_utf8(buf.0.get(..usize::from(*len)).unwrap_or_default())
                    .unwrap_or_default()
            }
            Self::Heap(text) => text,
        }
    }
}

impl<const N: usize> Default for SmallStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> PartialEq for SmallStr<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for SmallStr<N> {}

impl<const N: usize> std::fmt::Debug for SmallStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The SASL mechanisms in advertised order, kept compact while parsing: each known mechanism is a 4-bit code, each
/// other name a few bytes. The list of [`Mechanism`]s is built on first use (a client looks at it once, when it
/// authenticates).
#[derive(Clone, Default)]
struct Mechanisms {
    /// The first [`ORDER_SLOTS`] mechanisms, one nibble each, lowest first: `1 +` the index in
    /// [`KNOWN_MECHANISMS`], or [`NAME_SLOT`] for the next entry of `names`.
    order: u64,
    /// Nibbles used in `order`.
    count: u8,
    /// One bit per known mechanism already listed (repeats are left out).
    seen: u8,
    /// Names that are not in [`KNOWN_MECHANISMS`], each a length byte (1 to 20) then the name as advertised (ASCII),
    /// in advertised order; once `order` is full, known mechanisms follow here too as one byte,
    /// `0x80 |` their index.
    names: SmallBytes<MECHANISM_NAMES_INLINE>,
    /// The mechanisms, decoded on first use (only ever after parsing, which owns the value).
    decoded: OnceLock<Box<[Mechanism]>>,
}

/// Bytes of [`Mechanisms::names`] kept inline.
const MECHANISM_NAMES_INLINE: usize = 30;
/// Mechanisms whose order [`Mechanisms::order`] holds.
const ORDER_SLOTS: u8 = 16;
/// The nibble of a mechanism named in [`Mechanisms::names`].
const NAME_SLOT: u64 = 0xf;

/// The mechanisms [`Mechanisms`] stores as a code.
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
        if self.count == 0 {
            return &[];
        }
        self.decoded.get_or_init(|| self.decode())
    }

    /// The mechanisms in advertised order, without repeats.
    #[cold]
    fn decode(&self) -> Box<[Mechanism]> {
        let mut all: Vec<Mechanism> = Vec::with_capacity(usize::from(self.count));
        let names = self.names.as_slice();
        let mut at = 0;
        // The next entry of `names`.
        let mut next_name = || {
            let &b = names.get(at)?;
            if b & 0x80 != 0 {
                at += 1;
                return KNOWN_MECHANISMS.get(usize::from(b & 0x7f)).cloned();
            }
            let name = names.get(at + 1..at + 1 + usize::from(b))?;
            at += 1 + usize::from(b);
            Some(Mechanism::from_name(name))
        };
        let mut push = |mechanism: Mechanism| {
            if !all.contains(&mechanism) {
                all.push(mechanism);
            }
        };
        for slot in 0..self.count {
            let code = (self.order >> (4 * slot)) & 0xf;
            let mechanism = if code == NAME_SLOT {
                next_name()
            } else {
                KNOWN_MECHANISMS
                    .get((code as usize).wrapping_sub(1))
                    .cloned()
            };
            if let Some(mechanism) = mechanism {
                push(mechanism);
            }
        }
        // What did not fit in `order`.
        while let Some(mechanism) = next_name() {
            push(mechanism);
        }
        all.into_boxed_slice()
    }

    /// Adds the known mechanism `KNOWN_MECHANISMS[index]`.
    #[inline(always)]
    fn push_known(&mut self, index: usize) {
        let bit = 1u8 << index;
        if self.seen & bit != 0 {
            return;
        }
        self.seen |= bit;
        debug_assert!(self.decoded.get().is_none(), "pushed after decoding");
        if self.count < ORDER_SLOTS {
            self.order |= (index as u64 + 1) << (4 * self.count);
            self.count += 1;
        } else {
            // `index < 6`.
            self.names.push(0x80 | index as u8);
        }
    }

    /// Adds the mechanism named `name` (a valid name, 1 to 20 bytes, that is not one of [`KNOWN_MECHANISMS`]).
    #[inline]
    fn push_name(&mut self, name: &[u8]) {
        debug_assert!(self.decoded.get().is_none(), "pushed after decoding");
        if self.count < ORDER_SLOTS {
            self.order |= NAME_SLOT << (4 * self.count);
            self.count += 1;
        }
        match &mut self.names {
            // Common case: it fits inline; one copy, no calls.
            SmallBytes::Inline { len, buf }
                if usize::from(*len) + 1 + name.len() <= MECHANISM_NAMES_INLINE =>
            {
                let at = usize::from(*len);
                // `name.len() <= 20`.
                buf[at] = name.len() as u8;
                buf[at + 1..at + 1 + name.len()].copy_from_slice(name);
                *len = (at + 1 + name.len()) as u8;
            }
            names => {
                names.push(name.len() as u8);
                names.extend_from_slice(name);
            }
        }
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

/// The lines of unknown keywords (trimmed, `\n`-separated), decoded into keyword and parameters on first use. The
/// lines are kept unchecked (any line whose first word is not a known keyword): the decoding leaves out those whose
/// first word is not a valid `ehlo-keyword`, so parsing does not check every byte of lines a client rarely reads.
#[derive(Clone, Default)]
struct OtherKeywords {
    /// Inline when short (a few unknown keywords without long parameters).
    lines: SmallBytes<OTHER_INLINE>,
    decoded: OnceLock<Box<[UnknownKeyword]>>,
}

impl OtherKeywords {
    /// Keeps one line whose first word is not a known keyword (nor empty).
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

    /// [`OtherKeywords::push`] of a line of `len` (at most 16) bytes given as two little-endian words, zero past
    /// `len`: copied as whole words when they fit inline.
    #[inline(always)]
    fn push_short(&mut self, words: [u64; 2], len: usize) {
        if let SmallBytes::Inline { len: used, buf } = &mut self.lines {
            let at = usize::from(*used) + usize::from(*used > 0);
            if at + 16 <= OTHER_INLINE {
                if at > 0 {
                    buf[at - 1] = b'\n';
                }
                // `buf[at..at + 16]`: the line, then zeros past `len` (not counted).
                let [lo, hi] = words;
                buf[at..at + 8].copy_from_slice(&lo.to_le_bytes());
                buf[at + 8..at + 16].copy_from_slice(&hi.to_le_bytes());
                // At most `OTHER_INLINE <= 255`.
                *used = (at + len) as u8;
                debug_assert!(self.decoded.get().is_none(), "pushed after decoding");
                return;
            }
        }
        let mut line = [0u8; 16];
        line[..8].copy_from_slice(&words[0].to_le_bytes());
        line[8..].copy_from_slice(&words[1].to_le_bytes());
        self.push(&line[..len]);
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
                    .filter_map(|line| {
                        let mut words = line.split(|&b| b == b' ');
                        // Lines whose first word is not a valid keyword were kept too: left out here.
                        let keyword = words.next().filter(|keyword| is_keyword(keyword))?;
                        let keyword = keyword.to_ascii_uppercase();
                        // An ehlo-keyword: ASCII.
                        let keyword = String::from_utf8(keyword).unwrap_or_default();
                        let params = words
                            .filter(|p| !p.is_empty())
                            .map(sanitized_string)
                            .collect();
                        Some((keyword, params))
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

/// The index in [`KNOWN_MECHANISMS`] of the mechanism named `buf[start..end]` (1 to 20 bytes), matched a word at a
/// time (bytes after `end` may be loaded and are masked off); `None` for any other name.
#[cfg(test)]
fn known_mechanism(buf: &[u8], start: usize, end: usize) -> Option<usize> {
    let len = end - start;
    if len > 16 {
        return None;
    }
    let lo = load_raw(buf, start, end) & low_bytes(len);
    let hi = if len > 8 {
        load_raw(buf, start + 8, end) & low_bytes(len - 8)
    } else {
        0
    };
    WordSlot::find(&MECHANISM_TABLE, MECHANISM_HASH, len, [lo, hi, 0])
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

/// `0x20` in each byte of [`pack8`]`(word)` that is an ASCII letter: the case bit masked off to compare a word with
/// `word` (upper-cased) in any case.
const fn letter_bits(word: &[u8]) -> u64 {
    let mut bits = 0;
    let mut i = 0;
    while i < word.len() && i < 8 {
        if word[i].is_ascii_alphabetic() {
            bits |= 0x20 << (8 * i);
        }
        i += 1;
    }
    bits
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

/// Up to 8 bytes (the first 8 of `bytes`) as a little-endian integer, zero-padded. Two overlapping loads, no
/// per-byte loop: the bytes both loads cover are the same, so OR-ing them keeps them.
#[inline]
fn load_short(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    if let Some(word) = bytes.first_chunk::<8>() {
        return u64::from_le_bytes(*word);
    }
    match (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        (Some(lo), Some(hi)) => {
            u64::from(u32::from_le_bytes(*lo))
                | (u64::from(u32::from_le_bytes(*hi)) << (8 * (n - 4)))
        }
        _ => match (bytes.first_chunk::<2>(), bytes.last_chunk::<2>()) {
            (Some(lo), Some(hi)) => {
                u64::from(u16::from_le_bytes(*lo))
                    | (u64::from(u16::from_le_bytes(*hi)) << (8 * (n - 2)))
            }
            _ => bytes.first().map_or(0, |&b| u64::from(b)),
        },
    }
}

/// ASCII upper-casing of the 8 bytes of `x` at once: each byte in `a..=z` loses its 0x20 bit, every other byte is
/// kept.
#[cfg(test)]
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

/// Whether the bytes of a little-endian word start with `AUTH=` in any case (a word of fewer than 5 bytes, zero
/// past its end, does not).
#[inline(always)]
fn is_auth_equals(word: u64) -> bool {
    const AUTH: u64 = pack8(b"AUTH=");
    (word ^ AUTH) & !letter_bits(b"AUTH=") & low_bytes(5) == 0
}

/// `ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")` (RFC 5321 §4.1.1.1).
fn is_keyword(word: &[u8]) -> bool {
    word.first().is_some_and(u8::is_ascii_alphanumeric)
        && word.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The non-empty run of ASCII digits `buf[start..end]` as a number; `None` for anything else (signs included) or on
/// overflow. Up to 8 digits are read as one word (bytes of `buf` past `end` may be loaded; they are masked off).
#[inline(always)]
fn decimal(buf: &[u8], start: usize, end: usize) -> Option<u64> {
    let len = end.checked_sub(start)?;
    match len {
        0 => None,
        1..=8 => decimal_word(load_raw(buf, start, end) & low_bytes(len), len),
        _ => {
            let mut n = 0u64;
            for &d in &buf[start..end] {
                let digit = d.wrapping_sub(b'0');
                if digit > 9 {
                    return None;
                }
                n = n.checked_mul(10)?.checked_add(u64::from(digit))?;
            }
            Some(n)
        }
    }
}

/// The number written by the `len` (1 to 8) bytes of `word` (little-endian, zero past `len`) if they are all ASCII
/// digits: no per-digit loop.
#[inline]
fn decimal_word(word: u64, len: usize) -> Option<u64> {
    // Right-aligned in the 8 bytes (the most significant digit first, in the lowest byte), `0`-padded on the left.
    let pad = 8 - len;
    let word = (word << (8 * pad)) | ((ONES * u64::from(b'0')) & low_bytes(pad));
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

/// The first non-empty space-separated word of `buf[at..end]`, as a range, if any.
#[inline]
fn next_word(buf: &[u8], mut at: usize, end: usize) -> Option<(usize, usize)> {
    while at < end && buf[at] == b' ' {
        at += 1;
    }
    (at < end).then(|| (at, word_end(buf, at, end)))
}

/// Where the word starting at `at` ends in `buf[..end]`: the next space, or `end`. Eight bytes at a time (bytes
/// from `end` on may be loaded; a space among them only stops the search at `end`).
#[inline(always)]
fn word_end(buf: &[u8], mut at: usize, end: usize) -> usize {
    loop {
        let spaces = zero_byte_mask(load_raw(buf, at, end) ^ SPACES);
        if spaces != 0 {
            return (at + (spaces.trailing_zeros() / 8) as usize).min(end);
        }
        at += 8;
        if at >= end {
            return end;
        }
    }
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

    const ALL: [Extension; 16] = KNOWN_EXTENSIONS;

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
    fn the_fast_path_needs_no_limit_checks() {
        let limits = ReplyLimits::default();
        assert!(FAST_EHLO_MAX <= limits.max_line_len);
        assert!(FAST_EHLO_MAX <= limits.max_reply_len);
        // Every line takes at least 5 bytes (`NNN\n` is the shortest, and only last).
        assert!(FAST_EHLO_MAX / 5 < limits.max_lines);
    }

    #[test]
    fn short_loads_match_the_byte_loop() {
        let bytes: Vec<u8> = (1..=12).collect();
        for start in 0..bytes.len() {
            for end in start..=bytes.len() {
                let slice = &bytes[start..end];
                let mut expected = 0u64;
                for (i, &b) in slice.iter().take(8).enumerate() {
                    expected |= u64::from(b) << (8 * i);
                }
                assert_eq!(load_short(slice), expected, "{slice:?}");
            }
        }
    }

    #[test]
    fn unknown_keywords_are_checked_when_decoded() {
        let mut words: Vec<Vec<u8>> = [
            &b"PIPECONNECT"[..],
            b"X-EXPS",
            b"8BITMIME8",
            b"A",
            b"help",
            b"X-LINK2STATE-ABCD",
            b"X-LINK2STATE-ABCDEFGHIJKL",
            b"-X",
            b"X_Y",
            b"X.Y",
            b"X\x80",
            b"X\xad",
            b"X\x00",
            b"X:",
            b"X@",
            b"X[",
            b"X`",
            b"X/",
            b"X,",
            b"SIZE=5",
            b"0123456789ABCDEF",
            b"0123456789ABCDEFG",
        ]
        .iter()
        .map(|w| w.to_vec())
        .collect();
        for b in (0..=255u8).filter(|b| !b" \r\n".contains(b)) {
            words.push(vec![b, b'X']);
            words.push(vec![b'X', b]);
        }
        for word in &words {
            // Alone (the fast path's short lines), with a parameter, and through the general path.
            let mut wire = b"250-x\r\n250-".to_vec();
            wire.extend_from_slice(word);
            wire.extend_from_slice(b"\r\n250 ");
            wire.extend_from_slice(word);
            wire.extend_from_slice(b" p\r\n");
            let upper = String::from_utf8_lossy(&word.to_ascii_uppercase()).into_owned();
            let expected = if is_keyword(word) {
                other(&[(&upper, &[]), (&upper, &["p"])])
            } else {
                Vec::new()
            };
            let fast = Capabilities::parse_ehlo_fast(&wire).expect("fast path");
            assert_eq!(fast.other(), expected, "{word:?}");
            assert_eq!(parse(&wire).other(), expected, "{word:?}");
            let general = Capabilities::parse_ehlo_general(&wire).expect("valid");
            assert_eq!(general.other(), expected, "{word:?}");
        }
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

    proptest! {
        /// [`Capabilities::add_limits`] reads the parameters of `LIMITS` as the reference loop (each word by
        /// [`Capabilities::add_limit`]) does, whatever bytes follow the line.
        #[test]
        fn limits_reader_matches_the_reference(
            params in prop::collection::vec(
                prop_oneof![
                    prop::sample::select(vec![
                        &b"MAILMAX="[..], b"mailmax=", b"RCPTMAX=", b"RcptMax=", b"RCPTDOMAINMAX=",
                        b"rcptdomainmax=", b"RCPTDOMAINMAX", b"MAILMAX", b"RCPTMAXX=", b"FOO=", b"=", b" ", b"  ",
                        b"4294967295", b"4294967296", b"123456789", b"0",
                    ])
                    .prop_map(<[u8]>::to_vec),
                    prop::collection::vec(prop::sample::select(&b"0123456789=-+ aZ\0\xff"[..]), 0..12),
                ],
                0..8,
            ),
            tail in prop::collection::vec(
                prop::sample::select(&b"MAILMAX=RCPTDOMAINMAX=0123456789 \r\n"[..]),
                0..16,
            ),
        ) {
            let mut buf = params.concat();
            let end = buf.len();
            buf.extend_from_slice(&tail);
            let mut fast = Capabilities::none();
            fast.add_limits(&buf, 0, end);
            let mut reference = Capabilities::none();
            let mut at = 0;
            while let Some((from, to)) = next_word(&buf, at, end) {
                reference.add_limit(&buf, from, to);
                at = to;
            }
            prop_assert_eq!(fast.limits(), reference.limits());
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
