//! Server replies (RFC 5321 §4.2): reply codes, their classes, RFC 3463 enhanced status codes and the reply text.

use std::fmt;

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
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    pub(crate) code: ReplyCode,
    pub(crate) enhanced: Option<EnhancedCode>,
    /// The text of every line after `NNN-`/`NNN `, joined with `\n` (lines never contain `\n` themselves).
    pub(crate) text: Vec<u8>,
}
