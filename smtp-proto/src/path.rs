//! Validated envelope addresses, client identities and ESMTP parameters.
//!
//! Everything the command encoder ([`crate::command`]) writes on a command line comes from a type in this module,
//! and every one of these types is validated when it is built. That is what makes command injection impossible by
//! construction: no [`Address`], [`ClientId`] or [`Parameter`] can contain CR, LF, NUL or any other ASCII control,
//! so no command line can carry a second command (RFC 5321 §4.1.1, §4.1.2).
//!
//! Rules and their sources:
//! - addresses follow the RFC 5321 §4.1.2 `Mailbox` grammar, extended by RFC 6531 (SMTPUTF8) to allow non-ASCII
//!   UTF-8 in the local part and in domain labels; the RFC 5321 §4.5.3.1 size limits apply (64-octet local part,
//!   255-octet domain, 256-octet path including the angle brackets);
//! - ESMTP parameters follow the RFC 5321 §4.1.2 `esmtp-param` grammar;
//! - DSN parameters (`RET`, `ENVID`, `NOTIFY`, `ORCPT`) follow RFC 3461 and are xtext-encoded (RFC 3461 §4);
//! - `BODY` is RFC 6152 / RFC 3030, `SIZE` RFC 1870, `SMTPUTF8` RFC 6531, `REQUIRETLS` RFC 8689 and
//!   `MT-PRIORITY` RFC 6710.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::fmt;
use std::str::FromStr;

/// Maximum length of a local part in octets (RFC 5321 §4.5.3.1.1).
const LOCAL_PART_LIMIT: usize = 64;
/// Maximum length of a domain in octets (RFC 5321 §4.5.3.1.2).
const DOMAIN_LIMIT: usize = 255;
/// Maximum length of a domain label in octets (RFC 1035 §2.3.4).
const LABEL_LIMIT: usize = 63;
/// Maximum length of a path including `<` and `>` (RFC 5321 §4.5.3.1.3).
const PATH_LIMIT: usize = 256;
/// Maximum length of an address: the path limit minus the two angle brackets.
const ADDRESS_LIMIT: usize = PATH_LIMIT - 2;
/// Maximum length of the xtext-encoded `ENVID` value (RFC 3461 §4.4).
const ENVID_LIMIT: usize = 100;
/// Maximum length of the encoded `ORCPT` value, `addr-type ";" xtext` (RFC 3461 §4.2).
const ORCPT_LIMIT: usize = 500;

// ---------------------------------------------------------------------------------------------------------------
// Character classes
// ---------------------------------------------------------------------------------------------------------------

/// RFC 5322 `atext` / RFC 5321 `Atom` characters (ASCII only).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// ASCII controls: `%x00-1F` and DEL. Never allowed anywhere in a path.
fn is_ascii_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Characters rejected everywhere although they are not ASCII: Unicode controls (C1, U+0085 NEL) and Unicode line
/// or paragraph separators and other whitespace, which some software treats as line breaks.
fn is_forbidden_char(c: char) -> bool {
    !c.is_ascii() && (c.is_control() || c.is_whitespace())
}

// ---------------------------------------------------------------------------------------------------------------
// AddressError
// ---------------------------------------------------------------------------------------------------------------

/// Why a string is not a valid [`Address`] or [`ClientId`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressError {
    /// The string is empty.
    Empty,
    /// The address is longer than the RFC 5321 §4.5.3.1.3 path limit allows.
    TooLong {
        /// Length of the address in octets (without angle brackets).
        len: usize,
        /// The largest allowed length in octets (without angle brackets).
        limit: usize,
    },
    /// The local part is longer than 64 octets (RFC 5321 §4.5.3.1.1).
    LocalPartTooLong {
        /// Length of the local part in octets.
        len: usize,
    },
    /// The domain is longer than 255 octets (RFC 5321 §4.5.3.1.2).
    DomainTooLong {
        /// Length of the domain in octets.
        len: usize,
    },
    /// A byte that can never appear at this place: an ASCII control (CR, LF, NUL...), a Unicode control or
    /// whitespace character, or `<`, `>` or a space outside a quoted local part.
    ForbiddenByte {
        /// The offending byte (the first byte of a multi-byte character).
        byte: u8,
        /// Its offset in the input, counted in bytes from 0.
        position: usize,
    },
    /// There is no `@domain` part (only `Postmaster` may omit it).
    MissingDomain,
    /// The local part is neither a dot-string nor a quoted string.
    InvalidLocalPart,
    /// The domain is neither a valid domain name nor a supported address literal.
    InvalidDomain {
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => f.write_str("the address is empty"),
            Self::TooLong { len, limit } => write!(
                f,
                "the address is {len} octets long; the limit is {limit} octets \
                 ({} with the angle brackets, RFC 5321 §4.5.3.1.3)",
                limit + 2
            ),
            Self::LocalPartTooLong { len } => write!(
                f,
                "the local part (before the @) is {len} octets long; the limit is {LOCAL_PART_LIMIT} octets \
                 (RFC 5321 §4.5.3.1.1)"
            ),
            Self::DomainTooLong { len } => write!(
                f,
                "the domain is {len} octets long; the limit is {DOMAIN_LIMIT} octets (RFC 5321 §4.5.3.1.2)"
            ),
            Self::ForbiddenByte { byte, position } => match byte {
                b'\r' | b'\n' => write!(
                    f,
                    "the address contains a line break at byte {position}; addresses cannot contain CR or LF"
                ),
                0 => write!(f, "the address contains a NUL byte at byte {position}"),
                b'<' | b'>' => write!(
                    f,
                    "the address contains '{}' at byte {position}; give the bare address without angle brackets",
                    byte as char
                ),
                b' ' => write!(
                    f,
                    "the address contains a space at byte {position}; spaces are only allowed inside a quoted \
                     local part"
                ),
                b if b.is_ascii() => write!(
                    f,
                    "the address contains the control character 0x{b:02X} at byte {position}"
                ),
                _ => write!(
                    f,
                    "the address contains a Unicode control or whitespace character at byte {position}"
                ),
            },
            Self::MissingDomain => f.write_str(
                "the address has no domain; expected local-part@domain (only Postmaster may omit the domain)",
            ),
            Self::InvalidLocalPart => f.write_str(
                "the local part (before the @) is invalid: it must be dot-separated atoms of letters, digits and \
                 !#$%&'*+-/=?^_`{|}~ (no leading, trailing or doubled dots), or a quoted string",
            ),
            Self::InvalidDomain { reason } => write!(f, "the domain is invalid: {reason}"),
        }
    }
}

impl std::error::Error for AddressError {}

// ---------------------------------------------------------------------------------------------------------------
// Shared validation
// ---------------------------------------------------------------------------------------------------------------

/// Rejects ASCII controls and Unicode controls/whitespace anywhere in `s`.
fn check_controls(s: &str) -> Result<(), AddressError> {
    if let Some(position) = s.bytes().position(is_ascii_control) {
        return Err(AddressError::ForbiddenByte {
            byte: s.as_bytes()[position],
            position,
        });
    }
    if !s.is_ascii() {
        if let Some((position, _)) = s.char_indices().find(|&(_, c)| is_forbidden_char(c)) {
            return Err(AddressError::ForbiddenByte {
                byte: s.as_bytes()[position],
                position,
            });
        }
    }
    Ok(())
}

/// Rejects `<`, `>` and space in `bytes`, reporting positions relative to `offset`.
fn check_unquoted_specials(bytes: &[u8], offset: usize) -> Result<(), AddressError> {
    match bytes.iter().position(|&b| matches!(b, b'<' | b'>' | b' ')) {
        Some(i) => Err(AddressError::ForbiddenByte {
            byte: bytes[i],
            position: offset + i,
        }),
        None => Ok(()),
    }
}

/// Validates a domain name: dot-separated labels of letters, digits and hyphens (plus non-ASCII characters when
/// `allow_utf8`), no label empty, longer than 63 octets, or starting or ending with a hyphen.
fn validate_domain_name(domain: &str, allow_utf8: bool) -> Result<(), AddressError> {
    if domain.len() > DOMAIN_LIMIT {
        return Err(AddressError::DomainTooLong { len: domain.len() });
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(AddressError::InvalidDomain {
                reason: "it has an empty label (a leading, trailing or doubled dot)",
            });
        }
        if label.len() > LABEL_LIMIT {
            return Err(AddressError::InvalidDomain {
                reason: "a label is longer than 63 octets",
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AddressError::InvalidDomain {
                reason: "a label starts or ends with a hyphen",
            });
        }
        for b in label.bytes() {
            if b.is_ascii_alphanumeric() || b == b'-' {
                continue;
            }
            if !b.is_ascii() {
                if allow_utf8 {
                    continue;
                }
                return Err(AddressError::InvalidDomain {
                    reason: "it contains non-ASCII characters; use the A-label (xn--) form",
                });
            }
            return Err(AddressError::InvalidDomain {
                reason: "labels may only contain letters, digits and hyphens",
            });
        }
    }
    Ok(())
}

/// Validates an address literal including its brackets: `[1.2.3.4]` or `[IPv6:...]` (RFC 5321 §4.1.3).
fn validate_address_literal(literal: &str) -> Result<(), AddressError> {
    let Some(inner) = literal
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    else {
        return Err(AddressError::InvalidDomain {
            reason: "an address literal must be enclosed in [ and ]",
        });
    };
    // `get`, not `[..5]`: byte 5 may fall inside a multi-byte character.
    if inner
        .get(..5)
        .is_some_and(|tag| tag.eq_ignore_ascii_case("IPv6:"))
    {
        return match inner[5..].parse::<Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(AddressError::InvalidDomain {
                reason: "the IPv6 address literal is not a valid IPv6 address",
            }),
        };
    }
    match inner.parse::<Ipv4Addr>() {
        Ok(_) => Ok(()),
        Err(_) if inner.contains(':') => Err(AddressError::InvalidDomain {
            reason: "only IPv4 literals like [192.0.2.1] and IPv6 literals like [IPv6:2001:db8::1] are supported",
        }),
        Err(_) => Err(AddressError::InvalidDomain {
            reason: "the IPv4 address literal is not a valid dotted-quad address",
        }),
    }
}

/// Validates the domain part of an address or a client identity.
fn validate_domain(domain: &str, allow_utf8: bool) -> Result<(), AddressError> {
    if domain.starts_with('[') {
        if domain.len() > DOMAIN_LIMIT {
            return Err(AddressError::DomainTooLong { len: domain.len() });
        }
        validate_address_literal(domain)
    } else {
        validate_domain_name(domain, allow_utf8)
    }
}

/// Finds the end of a quoted local part starting at byte 0 (which is `"`): returns the index just past the closing
/// quote, or `None` when the quote is not closed or contains an invalid escape.
fn quoted_string_end(bytes: &[u8]) -> Option<usize> {
    debug_assert_eq!(bytes.first(), Some(&b'"'));
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some(i + 1),
            // quoted-pairSMTP = %d92 %d32-126
            b'\\' => match bytes.get(i + 1) {
                Some(&next) if (32..=126).contains(&next) => i += 2,
                _ => return None,
            },
            _ => i += 1,
        }
    }
    None
}

/// Validates a dot-string local part: atoms of atext (or non-ASCII UTF-8) separated by single dots.
fn is_valid_dot_string(local: &str) -> bool {
    !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(|b| is_atext(b) || !b.is_ascii()))
}

// ---------------------------------------------------------------------------------------------------------------
// Address
// ---------------------------------------------------------------------------------------------------------------

/// A validated envelope address: an RFC 5321 §4.1.2 `Mailbox` (`local-part@domain`) or the special `Postmaster`
/// (any case), which `RCPT TO` accepts without a domain (RFC 5321 §4.5.1).
///
/// Built only through [`Address::new`] (or [`FromStr`]), so every value is safe to put between the angle brackets
/// of a `MAIL FROM` or `RCPT TO` command: it contains no CR, LF, NUL or other control character, no `<` or `>` or
/// space outside a quoted local part, and `<address>` fits in 256 octets (RFC 5321 §4.5.3.1.3).
///
/// Non-ASCII UTF-8 is accepted in the local part and in domain labels (RFC 6531); such an address can only be sent
/// to a server that advertises `SMTPUTF8`, which [`Address::needs_smtputf8`] tells.
///
/// ```
/// use smtp_proto::path::Address;
///
/// let addr = Address::new("jane.doe@example.org").unwrap();
/// assert_eq!(addr.local_part(), "jane.doe");
/// assert_eq!(addr.domain(), Some("example.org"));
/// assert!(Address::new("a\r\nRCPT TO:<x>@y").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Address(Box<str>);

impl Address {
    /// Validates `s` as an envelope address. The input is the bare address, without angle brackets.
    ///
    /// # Errors
    ///
    /// Returns an [`AddressError`] naming the first rule the input breaks.
    pub fn new(s: &str) -> Result<Self, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        check_controls(s)?;
        let bytes = s.as_bytes();
        // Where the local part ends: after the closing quote of a quoted string, or at the first '@'
        // (a dot-string cannot contain '@'; a quoted string can).
        let local_end = if bytes[0] == b'"' {
            match quoted_string_end(bytes) {
                Some(end) => end,
                None => return Err(AddressError::InvalidLocalPart),
            }
        } else {
            let end = memchr::memchr(b'@', bytes).unwrap_or(bytes.len());
            check_unquoted_specials(&bytes[..end], 0)?;
            end
        };
        check_unquoted_specials(&bytes[local_end..], local_end)?;
        if s.len() > ADDRESS_LIMIT {
            return Err(AddressError::TooLong {
                len: s.len(),
                limit: ADDRESS_LIMIT,
            });
        }
        let local = &s[..local_end];
        let rest = &s[local_end..];
        if rest.is_empty() {
            if s.eq_ignore_ascii_case("postmaster") {
                return Ok(Self(s.into()));
            }
            if local.len() > LOCAL_PART_LIMIT {
                return Err(AddressError::LocalPartTooLong { len: local.len() });
            }
            return Err(AddressError::MissingDomain);
        }
        let Some(domain) = rest.strip_prefix('@') else {
            // Something other than '@' right after a quoted string.
            return Err(AddressError::InvalidLocalPart);
        };
        if local.len() > LOCAL_PART_LIMIT {
            return Err(AddressError::LocalPartTooLong { len: local.len() });
        }
        if local.is_empty() || (bytes[0] != b'"' && !is_valid_dot_string(local)) {
            return Err(AddressError::InvalidLocalPart);
        }
        if domain.is_empty() {
            return Err(AddressError::MissingDomain);
        }
        validate_domain(domain, true)?;
        Ok(Self(s.into()))
    }

    /// The address as given, without angle brackets.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The local part: everything before the last `@` (a quoted local part keeps its quotes and escapes), or the
    /// whole address for a bare `Postmaster`.
    pub fn local_part(&self) -> &str {
        match self.0.rfind('@') {
            Some(at) => &self.0[..at],
            None => &self.0,
        }
    }

    /// The domain or address literal after the `@`; `None` for a bare `Postmaster`.
    pub fn domain(&self) -> Option<&str> {
        self.0.rfind('@').map(|at| &self.0[at + 1..])
    }

    /// True when the address contains non-ASCII characters, so it may only be sent with the `SMTPUTF8` parameter
    /// to a server that advertises the extension (RFC 6531 §3.4).
    pub fn needs_smtputf8(&self) -> bool {
        !self.0.is_ascii()
    }

    /// True for the bare `Postmaster` recipient (no domain), which is only valid in `RCPT TO` (RFC 5321 §4.5.1).
    pub fn is_bare_postmaster(&self) -> bool {
        self.domain().is_none()
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for Address {
    type Error = AddressError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl AsRef<str> for Address {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ReversePath
// ---------------------------------------------------------------------------------------------------------------

/// The argument of `MAIL FROM` (RFC 5321 §4.1.1.2): the null path `<>` used for bounces and other automatic
/// messages that must not be answered (RFC 5321 §4.5.5), or a mailbox.
///
/// A bare `Postmaster` address is accepted by the type but is only meaningful in `RCPT TO`; servers reject it in
/// `MAIL FROM`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ReversePath {
    /// `MAIL FROM:<>`.
    Null,
    /// `MAIL FROM:<address>`.
    Mailbox(Address),
}

impl ReversePath {
    /// The address, or `None` for the null path.
    pub fn address(&self) -> Option<&Address> {
        match self {
            Self::Null => None,
            Self::Mailbox(addr) => Some(addr),
        }
    }

    /// True when the path contains non-ASCII characters (RFC 6531).
    pub fn needs_smtputf8(&self) -> bool {
        self.address().is_some_and(Address::needs_smtputf8)
    }
}

impl From<Address> for ReversePath {
    fn from(addr: Address) -> Self {
        Self::Mailbox(addr)
    }
}

impl fmt::Display for ReversePath {
    /// Formats as on the wire, with angle brackets: `<>` or `<address>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("<>"),
            Self::Mailbox(addr) => write!(f, "<{addr}>"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ClientId
// ---------------------------------------------------------------------------------------------------------------

/// The client's identity in `EHLO`, `HELO` and `LHLO` (RFC 5321 §4.1.1.1): a fully qualified domain name in ASCII
/// (A-labels for internationalized names, since SMTPUTF8 is not negotiated yet) or an address literal such as
/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` when the client has no name.
///
/// The default is `localhost`, which servers accept but may score as suspicious; set a real name for relaying.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ClientId(Box<str>);

impl ClientId {
    /// Validates a domain name or an address literal (with its brackets).
    ///
    /// # Errors
    ///
    /// Returns an [`AddressError`] naming the first rule the input breaks.
    pub fn new(s: &str) -> Result<Self, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        check_controls(s)?;
        check_unquoted_specials(s.as_bytes(), 0)?;
        validate_domain(s, false)?;
        Ok(Self(s.into()))
    }

    /// The address literal for `ip`: `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
    pub fn from_ip(ip: IpAddr) -> Self {
        let s = match ip {
            IpAddr::V4(v4) => format!("[{v4}]"),
            IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
        };
        Self(s.into())
    }

    /// The identity as sent after `EHLO`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClientId {
    fn default() -> Self {
        Self("localhost".into())
    }
}

impl FromStr for ClientId {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl From<IpAddr> for ClientId {
    fn from(ip: IpAddr) -> Self {
        Self::from_ip(ip)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------------------------

/// Why an ESMTP parameter (or a typed DSN parameter) is invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParameterError {
    /// The keyword is empty.
    EmptyKeyword,
    /// The keyword contains a byte other than letters, digits and `-`, or starts with `-`.
    InvalidKeyword {
        /// The offending byte (the first byte of a multi-byte character).
        byte: u8,
        /// Its offset in the keyword.
        position: usize,
    },
    /// A value was given but it is empty (pass `None` for a parameter without value).
    EmptyValue,
    /// The value contains a byte outside printable ASCII, or `=` or a space.
    InvalidValue {
        /// The offending byte (the first byte of a multi-byte character).
        byte: u8,
        /// Its offset in the value.
        position: usize,
    },
    /// A value is longer than its extension allows.
    TooLong {
        /// Which parameter.
        parameter: &'static str,
        /// Length of the encoded value.
        len: usize,
        /// The largest allowed length.
        limit: usize,
    },
    /// A numeric value is outside its allowed range.
    OutOfRange {
        /// Which parameter.
        parameter: &'static str,
        /// The allowed range, for the message.
        allowed: &'static str,
    },
    /// The `ORCPT` address type is not an RFC 5321 atom.
    InvalidAddressType,
    /// An `ORCPT` or `ENVID` value contains a character that cannot be carried.
    InvalidText {
        /// Which parameter.
        parameter: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for ParameterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::EmptyKeyword => f.write_str("the ESMTP parameter keyword is empty"),
            Self::InvalidKeyword { byte, position } => write!(
                f,
                "the ESMTP parameter keyword has an invalid byte 0x{byte:02X} at position {position}; keywords are \
                 letters, digits and '-' and do not start with '-' (RFC 5321 §4.1.2)"
            ),
            Self::EmptyValue => f.write_str(
                "the ESMTP parameter value is empty; pass no value for a keyword-only parameter",
            ),
            Self::InvalidValue { byte, position } => {
                let what = match byte {
                    b'\r' | b'\n' => "a line break",
                    b' ' => "a space",
                    b'=' => "'='",
                    _ => "a byte that is not printable ASCII",
                };
                write!(
                    f,
                    "the ESMTP parameter value contains {what} (0x{byte:02X}) at position {position}; values are \
                     printable ASCII without '=' and space (RFC 5321 §4.1.2)"
                )
            }
            Self::TooLong {
                parameter,
                len,
                limit,
            } => write!(
                f,
                "the {parameter} value is {len} characters long once encoded; the limit is {limit}"
            ),
            Self::OutOfRange { parameter, allowed } => {
                write!(f, "the {parameter} value is out of range; allowed: {allowed}")
            }
            Self::InvalidAddressType => f.write_str(
                "the ORCPT address type must be an atom such as \"rfc822\" or \"utf-8\" (RFC 3461 §4.2)",
            ),
            Self::InvalidText { parameter, reason } => {
                write!(f, "the {parameter} value is invalid: {reason}")
            }
        }
    }
}

impl std::error::Error for ParameterError {}

/// A validated ESMTP parameter for `MAIL FROM` or `RCPT TO` (RFC 5321 §4.1.2 `esmtp-param`): `KEYWORD` or
/// `KEYWORD=value`.
///
/// Use it for extensions without a typed field in [`MailParameters`] or [`RcptParameters`]. The encoder does not
/// check for duplicates: do not repeat a keyword that a typed field already sends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Parameter {
    keyword: Box<str>,
    value: Option<Box<str>>,
}

impl Parameter {
    /// Validates a parameter: keyword `(ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`, value one or more characters
    /// of `%d33-60 / %d62-126` (printable ASCII except `=` and space).
    ///
    /// # Errors
    ///
    /// Returns a [`ParameterError`] naming the first offending byte.
    pub fn new(keyword: &str, value: Option<&str>) -> Result<Self, ParameterError> {
        if keyword.is_empty() {
            return Err(ParameterError::EmptyKeyword);
        }
        if let Some(position) = keyword
            .bytes()
            .enumerate()
            .position(|(i, b)| !(b.is_ascii_alphanumeric() || (b == b'-' && i > 0)))
        {
            return Err(ParameterError::InvalidKeyword {
                byte: keyword.as_bytes()[position],
                position,
            });
        }
        if let Some(value) = value {
            if value.is_empty() {
                return Err(ParameterError::EmptyValue);
            }
            if let Some(position) = value.bytes().position(|b| !matches!(b, 33..=60 | 62..=126)) {
                return Err(ParameterError::InvalidValue {
                    byte: value.as_bytes()[position],
                    position,
                });
            }
        }
        Ok(Self {
            keyword: keyword.into(),
            value: value.map(Into::into),
        })
    }

    /// The keyword as given.
    pub fn keyword(&self) -> &str {
        &self.keyword
    }

    /// The value, if any.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

impl fmt::Display for Parameter {
    /// Formats as on the wire: `KEYWORD` or `KEYWORD=value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value}", self.keyword),
            None => f.write_str(&self.keyword),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// xtext
// ---------------------------------------------------------------------------------------------------------------

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Appends the xtext encoding of `s` (RFC 3461 §4) to `out`.
fn xtext_encode_into(s: &[u8], out: &mut String) {
    for &b in s {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push('+');
            out.push(HEX_UPPER[usize::from(b >> 4)] as char);
            out.push(HEX_UPPER[usize::from(b & 0x0f)] as char);
        }
    }
}

/// Length of the xtext encoding of `s` without building it.
fn xtext_len(s: &[u8]) -> usize {
    s.iter()
        .map(|&b| {
            if (33..=126).contains(&b) && b != b'+' && b != b'=' {
                1
            } else {
                3
            }
        })
        .sum()
}

/// Encodes bytes as xtext (RFC 3461 §4): bytes outside `33..=126`, and `+` and `=`, become `+HH` with two
/// uppercase hex digits; every other byte is copied.
///
/// The result is always a valid ESMTP parameter value.
pub fn xtext_encode(s: &[u8]) -> String {
    let mut out = String::with_capacity(xtext_len(s));
    xtext_encode_into(s, &mut out);
    out
}

/// Decodes xtext (RFC 3461 §4). Returns `None` for anything that is not xtext: a character outside `33..=126`,
/// a bare `=`, or a `+` not followed by two uppercase hex digits (RFC 3461 requires uppercase).
pub fn xtext_decode(s: &str) -> Option<Vec<u8>> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'=' => return None,
            b @ 33..=126 => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------------------------
// Typed parameters
// ---------------------------------------------------------------------------------------------------------------

/// `RET=` in `MAIL FROM` (RFC 3461 §4.3): how much of the message a delivery status notification returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: only the headers.
    Headers,
}

impl Ret {
    /// The value as sent: `FULL` or `HDRS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Headers => "HDRS",
        }
    }
}

/// `NOTIFY=` in `RCPT TO` (RFC 3461 §4.1): when the recipient's server sends a delivery status notification.
///
/// Either [`Notify::NEVER`] or a non-empty combination of success, failure and delay; any other combination (such
/// as `NEVER` with `SUCCESS`, or nothing at all) cannot be built.
///
/// ```
/// use smtp_proto::path::Notify;
///
/// let n = Notify::FAILURE.and(Notify::DELAY).unwrap();
/// assert_eq!(n.to_string(), "FAILURE,DELAY");
/// assert!(Notify::NEVER.and(Notify::SUCCESS).is_none());
/// assert!(Notify::new(false, false, false).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Notify(u8);

impl Notify {
    const SUCCESS_BIT: u8 = 1;
    const FAILURE_BIT: u8 = 2;
    const DELAY_BIT: u8 = 4;

    /// `NOTIFY=NEVER`: no notification at all.
    pub const NEVER: Self = Self(0);
    /// `NOTIFY=SUCCESS`.
    pub const SUCCESS: Self = Self(Self::SUCCESS_BIT);
    /// `NOTIFY=FAILURE`.
    pub const FAILURE: Self = Self(Self::FAILURE_BIT);
    /// `NOTIFY=DELAY`.
    pub const DELAY: Self = Self(Self::DELAY_BIT);

    /// A combination of conditions; `None` when none is set (use [`Notify::NEVER`] to ask for no notification).
    pub const fn new(success: bool, failure: bool, delay: bool) -> Option<Self> {
        let mut bits = 0;
        if success {
            bits |= Self::SUCCESS_BIT;
        }
        if failure {
            bits |= Self::FAILURE_BIT;
        }
        if delay {
            bits |= Self::DELAY_BIT;
        }
        if bits == 0 { None } else { Some(Self(bits)) }
    }

    /// The union of two sets of conditions; `None` when either is [`Notify::NEVER`], which cannot be combined.
    pub const fn and(self, other: Self) -> Option<Self> {
        if self.0 == 0 || other.0 == 0 {
            None
        } else {
            Some(Self(self.0 | other.0))
        }
    }

    /// True for `NEVER`.
    pub const fn is_never(self) -> bool {
        self.0 == 0
    }

    /// True when a notification is asked for on successful delivery.
    pub const fn on_success(self) -> bool {
        self.0 & Self::SUCCESS_BIT != 0
    }

    /// True when a notification is asked for on failure.
    pub const fn on_failure(self) -> bool {
        self.0 & Self::FAILURE_BIT != 0
    }

    /// True when a notification is asked for on delay.
    pub const fn on_delay(self) -> bool {
        self.0 & Self::DELAY_BIT != 0
    }
}

impl fmt::Display for Notify {
    /// The value as sent: `NEVER` or a comma-separated list such as `SUCCESS,FAILURE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_never() {
            return f.write_str("NEVER");
        }
        let mut first = true;
        for (set, name) in [
            (self.on_success(), "SUCCESS"),
            (self.on_failure(), "FAILURE"),
            (self.on_delay(), "DELAY"),
        ] {
            if set {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// `ORCPT=` in `RCPT TO` (RFC 3461 §4.2): the recipient as originally given, so a notification can name it even
/// after forwarding.
///
/// Encoded as `ORCPT=<addr-type>;<xtext>`; for the `utf-8` type the address is encoded as RFC 6533
/// `utf-8-addr-xtext` instead (non-ASCII and specials as `\x{HEX}`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OriginalRecipient {
    addr_type: String,
    addr: String,
}

impl OriginalRecipient {
    /// Builds an `ORCPT` value with an explicit address type (an RFC 5321 atom such as `rfc822`).
    ///
    /// # Errors
    ///
    /// [`ParameterError::InvalidAddressType`] when `addr_type` is not an atom; [`ParameterError::InvalidText`] when
    /// `addr` is empty, or is not ASCII for a type other than `utf-8`; [`ParameterError::TooLong`] when the encoded
    /// value exceeds 500 characters (RFC 3461 §4.2).
    pub fn new(addr_type: &str, addr: &str) -> Result<Self, ParameterError> {
        // An atom, written as is in the parameter value: so no `=`, which `esmtp-value` excludes (RFC 5321 §4.1.2).
        if addr_type.is_empty() || !addr_type.bytes().all(|b| is_atext(b) && b != b'=') {
            return Err(ParameterError::InvalidAddressType);
        }
        if addr.is_empty() {
            return Err(ParameterError::InvalidText {
                parameter: "ORCPT",
                reason: "the original recipient is empty",
            });
        }
        let this = Self {
            addr_type: addr_type.to_owned(),
            addr: addr.to_owned(),
        };
        if !this.is_utf8_type() && !addr.is_ascii() {
            return Err(ParameterError::InvalidText {
                parameter: "ORCPT",
                reason: "a non-ASCII address needs the \"utf-8\" address type (RFC 6533)",
            });
        }
        let len = this.encoded().len();
        if len > ORCPT_LIMIT {
            return Err(ParameterError::TooLong {
                parameter: "ORCPT",
                len,
                limit: ORCPT_LIMIT,
            });
        }
        Ok(this)
    }

    /// The `ORCPT` for a validated address: type `rfc822`, or `utf-8` when the address is not ASCII (RFC 6533).
    ///
    /// # Errors
    ///
    /// Only [`ParameterError::TooLong`], for an address whose encoding exceeds 500 characters.
    pub fn for_address(addr: &Address) -> Result<Self, ParameterError> {
        let addr_type = if addr.needs_smtputf8() {
            "utf-8"
        } else {
            "rfc822"
        };
        Self::new(addr_type, addr.as_str())
    }

    /// The address type, such as `rfc822`.
    pub fn addr_type(&self) -> &str {
        &self.addr_type
    }

    /// The original address, decoded.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn is_utf8_type(&self) -> bool {
        self.addr_type.eq_ignore_ascii_case("utf-8")
    }

    /// The value after `ORCPT=`: `addr-type;encoded-address`.
    pub fn encoded(&self) -> String {
        let mut out = String::with_capacity(self.addr_type.len() + 1 + self.addr.len());
        out.push_str(&self.addr_type);
        out.push(';');
        if self.is_utf8_type() {
            // RFC 6533 §3: utf-8-addr-xtext = 1*(QCHAR / EmbeddedUnicodeChar),
            // QCHAR = %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e (printable ASCII but '+', '=' and '\').
            for c in self.addr.chars() {
                if matches!(c, '\x21'..='\x2a' | '\x2c'..='\x3c' | '\x3e'..='\x5b' | '\x5d'..='\x7e')
                {
                    out.push(c);
                } else {
                    use fmt::Write as _;
                    let _ = write!(out, "\\x{{{:X}}}", u32::from(c));
                }
            }
        } else {
            xtext_encode_into(self.addr.as_bytes(), &mut out);
        }
        out
    }
}

/// `ENVID=` in `MAIL FROM` (RFC 3461 §4.4): an identifier for the transaction that notifications will quote.
///
/// The identifier is printable ASCII (spaces allowed); it is xtext-encoded on the wire and the encoded form may not
/// exceed 100 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EnvelopeId(String);

impl EnvelopeId {
    /// Validates an envelope identifier.
    ///
    /// # Errors
    ///
    /// [`ParameterError::InvalidText`] for an empty identifier or a character outside printable ASCII and space;
    /// [`ParameterError::TooLong`] when the xtext encoding exceeds 100 characters.
    pub fn new(id: &str) -> Result<Self, ParameterError> {
        if id.is_empty() {
            return Err(ParameterError::InvalidText {
                parameter: "ENVID",
                reason: "the envelope identifier is empty",
            });
        }
        if !id.bytes().all(|b| (32..=126).contains(&b)) {
            return Err(ParameterError::InvalidText {
                parameter: "ENVID",
                reason: "the envelope identifier must be printable ASCII (RFC 3461 §4.4)",
            });
        }
        let len = xtext_len(id.as_bytes());
        if len > ENVID_LIMIT {
            return Err(ParameterError::TooLong {
                parameter: "ENVID",
                len,
                limit: ENVID_LIMIT,
            });
        }
        Ok(Self(id.to_owned()))
    }

    /// The identifier, decoded.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The xtext-encoded value sent after `ENVID=`.
    pub fn encoded(&self) -> String {
        xtext_encode(self.0.as_bytes())
    }
}

/// `BODY=` in `MAIL FROM`: the body's content transfer class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyType {
    /// `BODY=7BIT` (RFC 6152): 7-bit ASCII lines.
    SevenBit,
    /// `BODY=8BITMIME` (RFC 6152): 8-bit lines, needs the `8BITMIME` extension.
    EightBitMime,
    /// `BODY=BINARYMIME` (RFC 3030): arbitrary bytes, needs `BINARYMIME` and `CHUNKING` (sent with `BDAT`).
    BinaryMime,
}

impl BodyType {
    /// The value as sent: `7BIT`, `8BITMIME` or `BINARYMIME`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SevenBit => "7BIT",
            Self::EightBitMime => "8BITMIME",
            Self::BinaryMime => "BINARYMIME",
        }
    }
}

/// `MT-PRIORITY=` in `MAIL FROM` (RFC 6710): a priority from -9 (lowest) to 9 (highest); 0 is normal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MtPriority(i8);

impl MtPriority {
    /// The normal priority, 0.
    pub const NORMAL: Self = Self(0);

    /// Checks that `priority` is in `-9..=9`.
    ///
    /// # Errors
    ///
    /// [`ParameterError::OutOfRange`] otherwise.
    pub const fn new(priority: i8) -> Result<Self, ParameterError> {
        if priority >= -9 && priority <= 9 {
            Ok(Self(priority))
        } else {
            Err(ParameterError::OutOfRange {
                parameter: "MT-PRIORITY",
                allowed: "-9 to 9",
            })
        }
    }

    /// The priority, in `-9..=9`.
    pub const fn get(self) -> i8 {
        self.0
    }
}

/// Parameters of `MAIL FROM`, sent in field order, then [`MailParameters::extra`] in order.
///
/// The encoder sends what is set here; checking that the server advertised each extension (and adding `SMTPUTF8`
/// for a non-ASCII address) is the caller's job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParameters {
    /// `SIZE=` (RFC 1870): the message size in octets, so a server can refuse an oversized message up front.
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152, RFC 3030).
    pub body: Option<BodyType>,
    /// `SMTPUTF8` (RFC 6531): required when any address or the message headers are not ASCII.
    pub smtputf8: bool,
    /// `RET=` (RFC 3461).
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461).
    pub envid: Option<EnvelopeId>,
    /// `REQUIRETLS` (RFC 8689): every hop must use verified TLS.
    pub require_tls: bool,
    /// `MT-PRIORITY=` (RFC 6710).
    pub mt_priority: Option<MtPriority>,
    /// Any other parameters, sent last.
    pub extra: Vec<Parameter>,
}

/// Parameters of `RCPT TO`, sent in field order, then [`RcptParameters::extra`] in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParameters {
    /// `NOTIFY=` (RFC 3461).
    pub notify: Option<Notify>,
    /// `ORCPT=` (RFC 3461).
    pub orcpt: Option<OriginalRecipient>,
    /// Any other parameters, sent last.
    pub extra: Vec<Parameter>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(s: &str) -> AddressError {
        Address::new(s).expect_err(s)
    }

    #[test]
    fn valid_addresses() {
        for s in [
            "a@b",
            "jane.doe@example.org",
            "user+tag@example.com",
            "!#$%&'*+-/=?^_`{|}~@x.y",
            "\"quoted\"@example.com",
            "\"with space\"@example.com",
            "\"a\\\"b\"@example.com",
            "\"a@b\"@example.com",
            "\"<weird>\"@example.com",
            "user@localhost",
            "user@[192.0.2.1]",
            "user@[IPv6:2001:db8::1]",
            "user@[ipv6:::1]",
            "user@[IPv6:::ffff:192.0.2.1]",
            "user@a-b.c-d.example",
            "1@2.3",
            "Postmaster",
            "postmaster",
            "POSTMASTER",
            "postmaster@example.com",
            "δοκιμή@παράδειγμα.δοκιμή",
            "用户@例子.广告",
        ] {
            let a = Address::new(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(a.as_str(), s);
            assert_eq!(a.to_string(), s);
            assert_eq!(s.parse::<Address>().unwrap(), a);
        }
    }

    #[test]
    fn parts() {
        let a = Address::new("\"a@b\"@example.com").unwrap();
        assert_eq!(a.local_part(), "\"a@b\"");
        assert_eq!(a.domain(), Some("example.com"));
        let p = Address::new("Postmaster").unwrap();
        assert_eq!(p.local_part(), "Postmaster");
        assert_eq!(p.domain(), None);
        assert!(p.is_bare_postmaster());
        let l = Address::new("x@[IPv6:::1]").unwrap();
        assert_eq!(l.domain(), Some("[IPv6:::1]"));
        assert!(!l.is_bare_postmaster());
    }

    #[test]
    fn smtputf8() {
        assert!(!Address::new("a@b.c").unwrap().needs_smtputf8());
        assert!(Address::new("ü@b.c").unwrap().needs_smtputf8());
        assert!(Address::new("a@bü.c").unwrap().needs_smtputf8());
        assert!(Address::new("\"ü x\"@b.c").unwrap().needs_smtputf8());
        assert!(!ReversePath::Null.needs_smtputf8());
        assert!(ReversePath::from(Address::new("ü@b.c").unwrap()).needs_smtputf8());
    }

    #[test]
    fn injection_attempts() {
        use AddressError::ForbiddenByte;
        let cases: &[(&str, u8, usize)] = &[
            ("a\r\nRCPT TO:<x>@y", b'\r', 1),
            ("a@y\r\nRCPT TO:<x@y>", b'\r', 3),
            ("a@y\nDATA", b'\n', 3),
            ("a@y\rDATA", b'\r', 3),
            ("a\0@y", 0, 1),
            ("a\t@y", b'\t', 1),
            ("a\x7f@y", 0x7f, 1),
            ("a@y> SIZE=1", b'>', 3),
            ("<a@y>", b'<', 0),
            ("a@y>", b'>', 3),
            ("a b@y", b' ', 1),
            ("a@y z", b' ', 3),
            ("\"a\r\nb\"@y", b'\r', 2),
            ("\"a\"@y>", b'>', 5),
            ("\"a\" @y", b' ', 3),
            ("a\u{85}@y", 0xc2, 1),
            ("a@y\u{2028}z", 0xe2, 3),
            ("\"a\u{a0}\"@y", 0xc2, 2),
        ];
        for &(s, byte, position) in cases {
            assert_eq!(err(s), ForbiddenByte { byte, position }, "{s:?}");
        }
        // ClientId too.
        assert_eq!(
            ClientId::new("x\r\nMAIL FROM:<a@b>").unwrap_err(),
            ForbiddenByte {
                byte: b'\r',
                position: 1
            }
        );
        assert_eq!(
            ClientId::new("x y").unwrap_err(),
            ForbiddenByte {
                byte: b' ',
                position: 1
            }
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            err("a\r\nb@x").to_string(),
            "the address contains a line break at byte 1; addresses cannot contain CR or LF"
        );
        for s in [
            "",
            "a",
            "a@",
            ".a@b",
            "a@-b",
            "\"a\0\"@b",
            "<a@b>",
            "a b@c",
            "a\x01@b",
            "a\u{85}@b",
        ] {
            let e = err(s);
            let msg = e.to_string();
            assert!(msg.len() > 15, "{s:?}: {msg}");
            let _: &dyn std::error::Error = &e;
        }
        let long = format!("{}@b", "a".repeat(65));
        assert!(err(&long).to_string().contains("65 octets"));
    }

    #[test]
    fn structural_errors() {
        use AddressError::*;
        assert_eq!(err(""), Empty);
        assert_eq!(err("a"), MissingDomain);
        assert_eq!(err("a@"), MissingDomain);
        assert_eq!(err("\"a\""), MissingDomain);
        assert_eq!(err("@b"), InvalidLocalPart);
        assert_eq!(err(".a@b"), InvalidLocalPart);
        assert_eq!(err("a.@b"), InvalidLocalPart);
        assert_eq!(err("a..b@c"), InvalidLocalPart);
        assert_eq!(err("a(b)@c"), InvalidLocalPart);
        assert_eq!(err("a,b@c"), InvalidLocalPart);
        assert_eq!(err("a\"b@c"), InvalidLocalPart);
        assert_eq!(err("a\\b@c"), InvalidLocalPart);
        assert_eq!(err("\"unterminated@c"), InvalidLocalPart);
        assert_eq!(err("\"a\"b@c"), InvalidLocalPart);
        assert_eq!(err("\"a\\"), InvalidLocalPart);
        assert_eq!(
            err("a@b@c"),
            InvalidDomain {
                reason: "labels may only contain letters, digits and hyphens"
            }
        );
        assert!(matches!(err("a@b..c"), InvalidDomain { .. }));
        assert!(matches!(err("a@.b"), InvalidDomain { .. }));
        assert!(matches!(err("a@b."), InvalidDomain { .. }));
        assert!(matches!(err("a@-b.c"), InvalidDomain { .. }));
        assert!(matches!(err("a@b-.c"), InvalidDomain { .. }));
        assert!(matches!(err("a@b_c.d"), InvalidDomain { .. }));
        assert!(matches!(err("a@[1.2.3]"), InvalidDomain { .. }));
        assert!(matches!(err("a@[1.2.3.256]"), InvalidDomain { .. }));
        assert!(matches!(err("a@[IPv6:1.2.3.4]"), InvalidDomain { .. }));
        assert!(matches!(err("a@[IPv6:::1%eth0]"), InvalidDomain { .. }));
        assert!(matches!(err("a@[::1]"), InvalidDomain { .. }));
        assert!(matches!(err("a@[x:abc]"), InvalidDomain { .. }));
        assert!(matches!(err("a@[1.2.3.4"), InvalidDomain { .. }));
        assert!(matches!(err("a@1.2.3.4]"), InvalidDomain { .. }));
        assert_eq!(err("postmaster@"), MissingDomain);
        assert_eq!(err("postmasters"), MissingDomain);
    }

    #[test]
    fn length_limits() {
        let l64 = "a".repeat(64);
        let l65 = "a".repeat(65);
        assert!(Address::new(&format!("{l64}@b")).is_ok());
        assert_eq!(
            err(&format!("{l65}@b")),
            AddressError::LocalPartTooLong { len: 65 }
        );
        // A quoted local part counts its quotes.
        assert!(Address::new(&format!("\"{}\"@b", "a".repeat(62))).is_ok());
        assert_eq!(
            err(&format!("\"{}\"@b", "a".repeat(63))),
            AddressError::LocalPartTooLong { len: 65 }
        );
        // Non-ASCII counts octets, not characters: 32 two-byte characters are 64 octets.
        assert!(Address::new(&format!("{}@b", "é".repeat(32))).is_ok());
        assert_eq!(
            err(&format!("{}a@b", "é".repeat(32))),
            AddressError::LocalPartTooLong { len: 65 }
        );

        // Paths: `<` + address + `>` at most 256 octets, so the address at most 254.
        let label63 = "d".repeat(63);
        let domain = |len: usize| -> String {
            // Build a valid domain of exactly `len` octets from labels of at most 63.
            let mut d = String::new();
            while d.len() < len {
                if !d.is_empty() {
                    d.push('.');
                }
                let take = (len - d.len()).min(63);
                d.push_str(&label63[..take]);
            }
            if d.ends_with('.') {
                unreachable!()
            }
            d
        };
        let a254 = format!("{l64}@{}", domain(254 - 65));
        assert_eq!(a254.len(), 254);
        let addr = Address::new(&a254).unwrap();
        assert_eq!(format!("<{addr}>").len(), 256);
        let a255 = format!("{l64}@{}", domain(255 - 65));
        assert_eq!(a255.len(), 255);
        assert_eq!(
            err(&a255),
            AddressError::TooLong {
                len: 255,
                limit: 254
            }
        );
        // A label of 64 octets is too long.
        assert!(matches!(
            err(&format!("a@{}.com", "d".repeat(64))),
            AddressError::InvalidDomain { .. }
        ));
        assert!(Address::new(&format!("a@{label63}.com")).is_ok());
    }

    #[test]
    fn client_id() {
        assert_eq!(ClientId::default().as_str(), "localhost");
        for s in [
            "mail.example.org",
            "localhost",
            "xn--bcher-kva.example",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
        ] {
            assert_eq!(ClientId::new(s).unwrap().as_str(), s);
            assert_eq!(s.parse::<ClientId>().unwrap().to_string(), s);
        }
        for s in [
            "",
            "bücher.example",
            "a..b",
            "-a",
            "a_b",
            "[1.2.3]",
            "<x>",
            "a@b",
            "a\nb",
        ] {
            assert!(ClientId::new(s).is_err(), "{s:?}");
        }
        assert!(matches!(
            ClientId::new(&format!("{}com", "a.".repeat(127))),
            Err(AddressError::DomainTooLong { len: 257 })
        ));
        let v4 = ClientId::from_ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(v4.as_str(), "[192.0.2.1]");
        let v6 = ClientId::from_ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(v6.as_str(), "[IPv6:::1]");
        let v6 = ClientId::from("2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(v6.as_str(), "[IPv6:2001:db8::1]");
        // from_ip output always validates.
        assert_eq!(ClientId::new(v6.as_str()).unwrap(), v6);
    }

    #[test]
    fn reverse_path() {
        assert_eq!(ReversePath::Null.to_string(), "<>");
        let p = ReversePath::from(Address::new("a@b").unwrap());
        assert_eq!(p.to_string(), "<a@b>");
        assert_eq!(p.address().unwrap().as_str(), "a@b");
        assert!(ReversePath::Null.address().is_none());
    }

    #[test]
    fn parameters() {
        let p = Parameter::new("X-FOO", Some("bar")).unwrap();
        assert_eq!((p.keyword(), p.value()), ("X-FOO", Some("bar")));
        assert_eq!(p.to_string(), "X-FOO=bar");
        assert_eq!(Parameter::new("AUTH", None).unwrap().to_string(), "AUTH");
        assert_eq!(
            Parameter::new("A1", Some("!<;>~")).unwrap().to_string(),
            "A1=!<;>~"
        );
        use ParameterError::*;
        assert_eq!(Parameter::new("", None), Err(EmptyKeyword));
        assert_eq!(
            Parameter::new("-X", None),
            Err(InvalidKeyword {
                byte: b'-',
                position: 0
            })
        );
        assert_eq!(
            Parameter::new("A=B", None),
            Err(InvalidKeyword {
                byte: b'=',
                position: 1
            })
        );
        assert_eq!(
            Parameter::new("A B", None),
            Err(InvalidKeyword {
                byte: b' ',
                position: 1
            })
        );
        assert_eq!(
            Parameter::new("A\r\n", None),
            Err(InvalidKeyword {
                byte: b'\r',
                position: 1
            })
        );
        assert_eq!(Parameter::new("A", Some("")), Err(EmptyValue));
        for (v, byte, position) in [
            ("a=b", b'=', 1),
            ("a b", b' ', 1),
            ("a\r\nQUIT", b'\r', 1),
            ("\n", b'\n', 0),
            ("\0", 0, 0),
            ("ü", 0xc3, 0),
            ("a\x7f", 0x7f, 1),
        ] {
            assert_eq!(
                Parameter::new("K", Some(v)),
                Err(InvalidValue { byte, position }),
                "{v:?}"
            );
        }
        for e in [
            Parameter::new("", None).unwrap_err(),
            Parameter::new("-", None).unwrap_err(),
            Parameter::new("A", Some("")).unwrap_err(),
            Parameter::new("A", Some("a b")).unwrap_err(),
            MtPriority::new(10).unwrap_err(),
            EnvelopeId::new("").unwrap_err(),
            OriginalRecipient::new("", "x").unwrap_err(),
        ] {
            assert!(e.to_string().len() > 20, "{e}");
        }
    }

    #[test]
    fn xtext() {
        assert_eq!(xtext_encode(b"a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext_encode(b"\r\n\x00\xff~!"), "+0D+0A+00+FF~!");
        assert_eq!(xtext_encode(b""), "");
        assert_eq!(xtext_decode("a+2Bb+3Dc+20d").unwrap(), b"a+b=c d");
        assert_eq!(xtext_decode("").unwrap(), b"");
        for bad in ["+", "+2", "+2b", "+G0", "a=b", "a b", "é", "a\r\n"] {
            assert_eq!(xtext_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn notify() {
        assert_eq!(Notify::NEVER.to_string(), "NEVER");
        assert_eq!(Notify::SUCCESS.to_string(), "SUCCESS");
        assert_eq!(
            Notify::new(true, true, true).unwrap().to_string(),
            "SUCCESS,FAILURE,DELAY"
        );
        assert_eq!(
            Notify::DELAY.and(Notify::SUCCESS).unwrap().to_string(),
            "SUCCESS,DELAY"
        );
        assert_eq!(Notify::new(false, false, false), None);
        assert_eq!(Notify::NEVER.and(Notify::FAILURE), None);
        assert_eq!(Notify::FAILURE.and(Notify::NEVER), None);
        let n = Notify::new(false, true, true).unwrap();
        assert!(!n.on_success() && n.on_failure() && n.on_delay() && !n.is_never());
        assert!(Notify::NEVER.is_never());
    }

    #[test]
    fn orcpt_and_envid() {
        let o = OriginalRecipient::new("rfc822", "a+b@c").unwrap();
        assert_eq!(o.encoded(), "rfc822;a+2Bb@c");
        assert_eq!((o.addr_type(), o.addr()), ("rfc822", "a+b@c"));
        let o = OriginalRecipient::for_address(&Address::new("b@x").unwrap()).unwrap();
        assert_eq!(o.encoded(), "rfc822;b@x");
        let o = OriginalRecipient::for_address(&Address::new("é+1@x").unwrap()).unwrap();
        assert_eq!(o.encoded(), "utf-8;\\x{E9}\\x{2B}1@x");
        assert_eq!(
            OriginalRecipient::new("rfc 822", "a"),
            Err(ParameterError::InvalidAddressType)
        );
        assert_eq!(
            OriginalRecipient::new("rfc;822", "a"),
            Err(ParameterError::InvalidAddressType)
        );
        assert!(OriginalRecipient::new("rfc822", "").is_err());
        assert!(OriginalRecipient::new("rfc822", "é@x").is_err());
        assert!(OriginalRecipient::new("rfc822", &"a".repeat(493)).is_ok());
        assert!(matches!(
            OriginalRecipient::new("rfc822", &"a".repeat(494)),
            Err(ParameterError::TooLong { len: 501, .. })
        ));
        // Control characters are encoded, never sent raw.
        let o = OriginalRecipient::new("rfc822", "a\r\nb").unwrap();
        assert_eq!(o.encoded(), "rfc822;a+0D+0Ab");
        let o = OriginalRecipient::new("utf-8", "a\r\nb").unwrap();
        assert_eq!(o.encoded(), "utf-8;a\\x{D}\\x{A}b");

        let e = EnvelopeId::new("QQ314159 x+y").unwrap();
        assert_eq!(e.as_str(), "QQ314159 x+y");
        assert_eq!(e.encoded(), "QQ314159+20x+2By");
        assert!(EnvelopeId::new("").is_err());
        assert!(EnvelopeId::new("a\r\n").is_err());
        assert!(EnvelopeId::new("é").is_err());
        assert!(EnvelopeId::new(&"a".repeat(100)).is_ok());
        assert!(EnvelopeId::new(&"a".repeat(101)).is_err());
        assert!(matches!(
            EnvelopeId::new(&"+".repeat(34)),
            Err(ParameterError::TooLong { len: 102, .. })
        ));
    }

    #[test]
    fn simple_enums() {
        assert_eq!(Ret::Full.as_str(), "FULL");
        assert_eq!(Ret::Headers.as_str(), "HDRS");
        assert_eq!(BodyType::SevenBit.as_str(), "7BIT");
        assert_eq!(BodyType::EightBitMime.as_str(), "8BITMIME");
        assert_eq!(BodyType::BinaryMime.as_str(), "BINARYMIME");
        assert_eq!(MtPriority::new(-9).unwrap().get(), -9);
        assert_eq!(MtPriority::new(9).unwrap().get(), 9);
        assert!(MtPriority::new(-10).is_err());
        assert!(MtPriority::new(10).is_err());
        assert_eq!(MtPriority::NORMAL.get(), 0);
    }

    /// Strings biased towards the characters that matter for address syntax.
    fn address_like() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-z0-9.@\"\\\\<> \\[\\]:\r\n\t\0\u{85}\u{2028}é-]{0,20}")
            .unwrap()
    }

    proptest! {
        #[test]
        fn accepted_addresses_are_safe(s in prop_oneof![address_like(), any::<String>()]) {
            if let Ok(a) = Address::new(&s) {
                let bytes = a.as_str().as_bytes();
                prop_assert!(!bytes.iter().any(|&b| is_ascii_control(b)));
                prop_assert!(bytes.len() <= ADDRESS_LIMIT);
                prop_assert!(a.local_part().len() <= LOCAL_PART_LIMIT);
                // `<` `>` and space only inside a quoted local part.
                if !a.local_part().starts_with('"') {
                    prop_assert!(!bytes.iter().any(|&b| matches!(b, b'<' | b'>' | b' ')));
                }
                if let Some(d) = a.domain() {
                    prop_assert!(!d.bytes().any(|b| matches!(b, b'<' | b'>' | b' ' | b'@')));
                }
                prop_assert_eq!(a.needs_smtputf8(), !s.is_ascii());
            }
            if let Ok(c) = ClientId::new(&s) {
                prop_assert!(c.as_str().bytes().all(|b| b.is_ascii_graphic()));
            }
        }

        #[test]
        fn xtext_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let enc = xtext_encode(&bytes);
            prop_assert!(enc.bytes().all(|b| matches!(b, 33..=60 | 62..=126)));
            prop_assert_eq!(enc.len(), xtext_len(&bytes));
            prop_assert_eq!(xtext_decode(&enc), Some(bytes));
        }

        #[test]
        fn parameter_values_are_safe(k in "[ -~\r\n]{0,6}", v in proptest::option::of("[ -~\r\n\0é]{0,6}")) {
            if let Ok(p) = Parameter::new(&k, v.as_deref()) {
                let s = p.to_string();
                prop_assert!(s.bytes().all(|b| b.is_ascii_graphic()));
                prop_assert_eq!(s.bytes().filter(|&b| b == b'=').count(), usize::from(v.is_some()));
            }
        }
    }
}
