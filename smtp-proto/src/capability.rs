//! What the server offers, from its EHLO or LHLO reply (RFC 5321 §4.1.1.1 and the extension RFCs).
//!
//! The first line of the reply is the server's domain and greeting; each later line is an `ehlo-keyword`
//! (letters, digits and `-`, case-insensitive) followed by space-separated parameters. Lines that do not fit that
//! grammar are ignored: a server's oddities must never stop a client from sending mail.

use crate::auth::Mechanism;
#[cfg(doc)]
use crate::framer::parse_reply;
use crate::framer::{ReplyError, ReplyLimits, scan_with};
use crate::reply::{Reply, write_sanitized};

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

    /// The extension advertised by a keyword, in any case: the keyword is upper-cased into one integer and
    /// compared with the known ones as integers (no per-byte compare loop, no allocation).
    fn from_keyword_ignore_case(keyword: &[u8]) -> Option<Self> {
        use Extension::*;
        if keyword.len() == 19 {
            // The only known keyword longer than 16 bytes.
            return keyword
                .eq_ignore_ascii_case(b"ENHANCEDSTATUSCODES")
                .then_some(EnhancedStatusCodes);
        }
        let key = packed_upper(keyword)?;
        let len = keyword.len();
        Some(match key {
            k if k == const { pack(b"SIZE") } && len == 4 => Size,
            k if k == const { pack(b"PIPELINING") } && len == 10 => Pipelining,
            k if k == const { pack(b"8BITMIME") } && len == 8 => EightBitMime,
            k if k == const { pack(b"SMTPUTF8") } && len == 8 => SmtpUtf8,
            k if k == const { pack(b"CHUNKING") } && len == 8 => Chunking,
            k if k == const { pack(b"BINARYMIME") } && len == 10 => BinaryMime,
            k if k == const { pack(b"DSN") } && len == 3 => Dsn,
            k if k == const { pack(b"STARTTLS") } && len == 8 => StartTls,
            k if k == const { pack(b"AUTH") } && len == 4 => Auth,
            k if k == const { pack(b"REQUIRETLS") } && len == 10 => RequireTls,
            k if k == const { pack(b"LIMITS") } && len == 6 => Limits,
            k if k == const { pack(b"MT-PRIORITY") } && len == 11 => MtPriority,
            k if k == const { pack(b"DELIVERBY") } && len == 9 => DeliverBy,
            k if k == const { pack(b"ETRN") } && len == 4 => Etrn,
            k if k == const { pack(b"VRFY") } && len == 4 => Vrfy,
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    domain: String,
    /// One bit per [`Extension`].
    known: u32,
    size: Option<u64>,
    mechanisms: Vec<Mechanism>,
    limits: MailLimits,
    mt_priority_profile: Option<String>,
    other: Vec<(String, Vec<String>)>,
}

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
        let mut lines = reply.lines();
        if let Some(first) = lines.next() {
            caps.set_domain(first);
        }
        for line in lines {
            caps.add_line(line);
        }
        caps
    }

    /// Framing and parsing in one step, for fuzzing and benchmarks: the same result as [`parse_reply`] then
    /// [`Capabilities::from_ehlo`], in one pass over the bytes and without building the reply's text.
    ///
    /// Fails if the bytes are not a well-formed reply, and with [`ReplyError::Malformed`] (reason
    /// `"incomplete reply"`) if they end before the reply does.
    pub fn parse_ehlo(bytes: &[u8]) -> Result<Self, ReplyError> {
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
                caps.add_line(text);
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
        let domain = first.trim_ascii_start();
        let end = domain
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(domain.len());
        let domain = &domain[..end];
        if domain.iter().all(|b| (0x21..0x7f).contains(b)) {
            // Printable ASCII (the common case): one allocation, no UTF-8 validation.
            self.domain = domain.iter().map(|&b| char::from(b)).collect();
        } else {
            // Writing to a String cannot fail.
            let _ = write_sanitized(&mut self.domain, domain);
        }
    }

    /// What a HELO-only server offers: nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// The first word of the reply's first line, normally the server's domain (lossy UTF-8, control characters
    /// replaced). Empty for [`Capabilities::none`].
    pub fn domain(&self) -> &str {
        &self.domain
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
        &self.mechanisms
    }

    /// The limits announced with `LIMITS` (RFC 9422); all `None` if there were none. Unknown and malformed limits
    /// are ignored, as RFC 9422 §3 requires.
    pub fn limits(&self) -> MailLimits {
        self.limits
    }

    /// The priority assignment policy named with `MT-PRIORITY` (RFC 6710 §5), e.g. `MIXER`, if the server named one.
    pub fn mt_priority_profile(&self) -> Option<&str> {
        self.mt_priority_profile.as_deref()
    }

    /// The keywords the client does not know (upper-cased) with their parameters, in advertised order.
    pub fn other(&self) -> &[(String, Vec<String>)] {
        &self.other
    }

    /// Reads one line after the first: `keyword *(SP param)`.
    fn add_line(&mut self, line: &[u8]) {
        let line = trim_spaces(line);
        // Lines are short: a plain search beats a vectorized one's set-up.
        let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
            Some(space) => (&line[..space], &line[space + 1..]),
            None => (line, &[][..]),
        };
        let params = || rest.split(|&b| b == b' ').filter(|p| !p.is_empty());

        // Pre-RFC 4954 servers (and Postfix, for old clients) write `AUTH=LOGIN PLAIN`.
        if keyword.len() >= 5 && keyword[..5].eq_ignore_ascii_case(b"AUTH=") {
            self.known |= Extension::Auth.bit();
            self.add_mechanisms(std::iter::once(&keyword[5..]).chain(params()));
            return;
        }
        let known = Extension::from_keyword_ignore_case(keyword);
        if known.is_none() && !is_keyword(keyword) {
            return;
        }
        let Some(ext) = known else {
            let name = keyword.to_ascii_uppercase();
            let name = String::from_utf8(name).unwrap_or_default();
            self.other
                .push((name, params().map(sanitized_string).collect()));
            return;
        };
        self.known |= ext.bit();
        match ext {
            Extension::Size => {
                self.size = params().next().and_then(parse_decimal).filter(|&n| n > 0);
            }
            Extension::Auth => self.add_mechanisms(params()),
            Extension::Limits => {
                for param in params() {
                    self.add_limit(param);
                }
            }
            Extension::MtPriority => {
                self.mt_priority_profile = params().next().map(sanitized_string);
            }
            _ => {}
        }
    }

    /// Adds the valid, not yet seen mechanism names.
    fn add_mechanisms<'a>(&mut self, names: impl Iterator<Item = &'a [u8]>) {
        for name in names {
            let valid = (1..=20).contains(&name.len())
                && name
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                continue;
            }
            let mechanism = mechanism(name);
            if !self.mechanisms.contains(&mechanism) {
                self.mechanisms.push(mechanism);
            }
        }
    }

    /// Reads one `NAME=value` parameter of `LIMITS` (RFC 9422 §3); unknown or malformed ones are ignored.
    fn add_limit(&mut self, param: &[u8]) {
        let Some(eq) = memchr::memchr(b'=', param) else {
            return;
        };
        let (name, value) = (&param[..eq], &param[eq + 1..]);
        let slot = if name.eq_ignore_ascii_case(b"RCPTMAX") {
            &mut self.limits.rcpt_max
        } else if name.eq_ignore_ascii_case(b"MAILMAX") {
            &mut self.limits.mail_max
        } else if name.eq_ignore_ascii_case(b"RCPTDOMAINMAX") {
            &mut self.limits.rcpt_domain_max
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

/// The mechanism named `name`, without allocating for the common ones ([`Mechanism::from_name`] upper-cases into
/// a new buffer).
fn mechanism(name: &[u8]) -> Mechanism {
    let len = name.len();
    let known = match packed_upper(name) {
        Some(k) if k == const { pack(b"PLAIN") } && len == 5 => Some(Mechanism::Plain),
        Some(k) if k == const { pack(b"LOGIN") } && len == 5 => Some(Mechanism::Login),
        Some(k) if k == const { pack(b"XOAUTH2") } && len == 7 => Some(Mechanism::XOAuth2),
        Some(k) if k == const { pack(b"OAUTHBEARER") } && len == 11 => Some(Mechanism::OAuthBearer),
        Some(k) if k == const { pack(b"CRAM-MD5") } && len == 8 => Some(Mechanism::CramMd5),
        Some(k) if k == const { pack(b"SCRAM-SHA-256") } && len == 13 => {
            Some(Mechanism::ScramSha256)
        }
        _ => None,
    };
    known.unwrap_or_else(|| Mechanism::from_name(name))
}

/// A word of at most 16 bytes as one integer (little-endian, zero-padded), for compares without loops. Words
/// without NUL bytes map to distinct integers, and zero-padding keeps words of different lengths apart.
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
#[inline]
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
    digits.iter().try_fold(0u64, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

fn trim_spaces(mut line: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = line {
        line = rest;
    }
    while let [rest @ .., b' '] = line {
        line = rest;
    }
    line
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
            assert_eq!(mechanism(name), Mechanism::from_name(name));
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
    }
}
