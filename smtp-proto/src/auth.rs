//! SASL authentication (RFC 4954): mechanisms and the client side of each exchange.

use std::fmt;

/// A SASL mechanism name as advertised in the EHLO `AUTH` keyword.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `LOGIN` (obsolete, widely deployed).
    Login,
    /// `CRAM-MD5` (RFC 2195).
    CramMd5,
    /// `XOAUTH2` (Google/Microsoft bearer tokens).
    XOAuth2,
    /// `OAUTHBEARER` (RFC 7628).
    OAuthBearer,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-256-PLUS` (RFC 7677 with channel binding).
    ScramSha256Plus,
    /// Any other mechanism, upper-cased as advertised.
    Other(Box<str>),
}

impl Mechanism {
    /// Parses an advertised mechanism name, case-insensitively (RFC 4954 §3: names are case-insensitive).
    pub fn from_name(name: &[u8]) -> Self {
        let upper = name.to_ascii_uppercase();
        match upper.as_slice() {
            b"PLAIN" => Self::Plain,
            b"LOGIN" => Self::Login,
            b"CRAM-MD5" => Self::CramMd5,
            b"XOAUTH2" => Self::XOAuth2,
            b"OAUTHBEARER" => Self::OAuthBearer,
            b"SCRAM-SHA-256" => Self::ScramSha256,
            b"SCRAM-SHA-256-PLUS" => Self::ScramSha256Plus,
            _ => Self::Other(String::from_utf8_lossy(&upper).into()),
        }
    }

    /// The name as sent in `AUTH <name>`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
            Self::CramMd5 => "CRAM-MD5",
            Self::XOAuth2 => "XOAUTH2",
            Self::OAuthBearer => "OAUTHBEARER",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
