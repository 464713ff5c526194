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

use hmac::{Hmac, Mac};
use md5::Md5;

use crate::config::Credentials;
use crate::scram::{Scram, ScramError};

/// The order in which mechanisms are preferred when the configuration does not say: challenge-response before
/// plaintext, standard before proprietary.
const PASSWORD_PREFERENCE: [Mechanism; 5] = [
    Mechanism::ScramSha256Plus,
    Mechanism::ScramSha256,
    Mechanism::CramMd5,
    Mechanism::Plain,
    Mechanism::Login,
];
const TOKEN_PREFERENCE: [Mechanism; 2] = [Mechanism::OAuthBearer, Mechanism::XOAuth2];

/// What the session can give SCRAM (RFC 5802): it needs fresh random bytes for its nonce, and -PLUS needs TLS
/// channel binding data from the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScramSupport {
    /// No random bytes: SCRAM is not used.
    Unavailable,
    /// SCRAM-SHA-256 without channel binding.
    Scram,
    /// SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (`tls-exporter` binding available).
    ScramPlus,
}

/// True when this crate can run `mechanism` with `credentials` in a session with `scram` support.
pub fn supports(mechanism: &Mechanism, credentials: &Credentials, scram: ScramSupport) -> bool {
    match (credentials, mechanism) {
        (Credentials::Password { .. }, Mechanism::ScramSha256) => {
            scram != ScramSupport::Unavailable
        }
        (Credentials::Password { .. }, Mechanism::ScramSha256Plus) => {
            scram == ScramSupport::ScramPlus
        }
        (Credentials::Password { .. }, m) => PASSWORD_PREFERENCE.contains(m),
        (Credentials::OAuth2 { .. }, m) => TOKEN_PREFERENCE.contains(m),
    }
}

/// Picks the mechanism to use: the first of `preference` (or the built-in strongest-first order) that the server
/// offers and the credentials and session support.
pub fn select_mechanism(
    offered: &[Mechanism],
    credentials: &Credentials,
    preference: Option<&[Mechanism]>,
    scram: ScramSupport,
) -> Option<Mechanism> {
    let builtin: &[Mechanism] = match credentials {
        Credentials::Password { .. } => &PASSWORD_PREFERENCE,
        Credentials::OAuth2 { .. } => &TOKEN_PREFERENCE,
    };
    preference
        .unwrap_or(builtin)
        .iter()
        .find(|m| offered.contains(m) && supports(m, credentials, scram))
        .cloned()
}

/// Why a SASL step could not produce a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StepError {
    /// The mechanism takes no (further) challenge.
    Unexpected,
    /// SCRAM refused the server's message.
    Scram(ScramError),
}

/// The client side of one SASL exchange.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    mechanism: Mechanism,
    /// The SCRAM state, for SCRAM mechanisms.
    pub(crate) scram: Option<Scram>,
    /// Challenges answered so far.
    step: u8,
    /// Set when the server sent an error challenge (XOAUTH2 / OAUTHBEARER JSON).
    pub(crate) error_details: Option<String>,
}

impl Exchange {
    pub(crate) fn new(mechanism: Mechanism) -> Self {
        Self {
            mechanism,
            scram: None,
            step: 0,
            error_details: None,
        }
    }

    pub(crate) fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }

    /// The initial response (RFC 4954 §4), for mechanisms where the client speaks first.
    pub(crate) fn initial_response(&self, credentials: &Credentials) -> Option<Vec<u8>> {
        if let Some(scram) = &self.scram {
            return Some(scram.client_first());
        }
        match (&self.mechanism, credentials) {
            (Mechanism::Plain, Credentials::Password { username, password }) => {
                Some(plain_response(username, password.expose()))
            }
            (Mechanism::XOAuth2, Credentials::OAuth2 { username, token }) => {
                let mut v = format!("user={username}\x01auth=Bearer ").into_bytes();
                v.extend_from_slice(token.expose());
                v.extend_from_slice(b"\x01\x01");
                Some(v)
            }
            (Mechanism::OAuthBearer, Credentials::OAuth2 { username, token }) => {
                // RFC 7628 §3.1: gs2-header "n,a=<authzid>," then kvpairs separated by ^A.
                let mut v = format!("n,a={},\x01auth=Bearer ", saslname(username)).into_bytes();
                v.extend_from_slice(token.expose());
                v.extend_from_slice(b"\x01\x01");
                Some(v)
            }
            _ => None,
        }
    }

    /// Answers one decoded `334` challenge. `sent_initial` tells whether the initial response already went out.
    pub(crate) fn respond(
        &mut self,
        challenge: &[u8],
        credentials: &Credentials,
        sent_initial: bool,
    ) -> Result<Vec<u8>, StepError> {
        self.step = self.step.saturating_add(1);
        if let (Some(scram), Credentials::Password { password, .. }) =
            (&mut self.scram, credentials)
        {
            return scram
                .step(challenge, password.expose())
                .map_err(StepError::Scram);
        }
        match (&self.mechanism, credentials) {
            (Mechanism::Plain, Credentials::Password { username, password })
                if !sent_initial && self.step == 1 =>
            {
                Ok(plain_response(username, password.expose()))
            }
            (Mechanism::Login, Credentials::Password { username, password }) => match self.step {
                1 => Ok(username.as_bytes().to_vec()),
                2 => Ok(password.expose().to_vec()),
                _ => Err(StepError::Unexpected),
            },
            (Mechanism::CramMd5, Credentials::Password { username, password })
                if self.step == 1 =>
            {
                Ok(cram_md5_response(username, password.expose(), challenge))
            }
            (Mechanism::XOAuth2 | Mechanism::OAuthBearer, _) if sent_initial || self.step > 1 => {
                // An error challenge: a JSON status (RFC 7628 §3.2.2). Record it; answer so the server sends the
                // final failure reply: an empty line for XOAUTH2, a lone ^A for OAUTHBEARER (RFC 7628 §3.2.3).
                self.error_details = Some(String::from_utf8_lossy(challenge).into_owned());
                Ok(if self.mechanism == Mechanism::OAuthBearer {
                    b"\x01".to_vec()
                } else {
                    Vec::new()
                })
            }
            (Mechanism::XOAuth2 | Mechanism::OAuthBearer, _) => self
                .initial_response(credentials)
                .ok_or(StepError::Unexpected),
            _ => Err(StepError::Unexpected),
        }
    }
}

fn plain_response(username: &str, password: &[u8]) -> Vec<u8> {
    // RFC 4616 §2: [authzid] NUL authcid NUL passwd; an empty authzid means "act as authcid".
    let mut v = Vec::with_capacity(username.len() + password.len() + 2);
    v.push(0);
    v.extend_from_slice(username.as_bytes());
    v.push(0);
    v.extend_from_slice(password);
    v
}

fn cram_md5_response(username: &str, password: &[u8], challenge: &[u8]) -> Vec<u8> {
    // RFC 2195 §2: user SP lowercase-hex(HMAC-MD5(password, challenge)).
    let mut mac =
        <Hmac<Md5> as Mac>::new_from_slice(password).expect("HMAC takes keys of any length");
    mac.update(challenge);
    let digest = mac.finalize().into_bytes();
    let mut v = Vec::with_capacity(username.len() + 33);
    v.extend_from_slice(username.as_bytes());
    v.push(b' ');
    for b in digest {
        v.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    v
}

/// RFC 7628 / RFC 5801 saslname: `=` and `,` are escaped as `=3D` and `=2C`.
fn saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// Redacts an AUTH command line for logs: keeps `AUTH <mechanism>` and hides any initial response. Any other
/// line is returned printable (control characters dropped). Adapters that log raw writes use this; the core's own
/// transcript already redacts.
pub fn redact_command(line: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(line)
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let mut words = text.splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some(verb), Some(mech), rest) if verb.eq_ignore_ascii_case("AUTH") => {
            if rest.is_some() {
                format!("{verb} {mech} <redacted>")
            } else {
                format!("{verb} {mech}")
            }
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in [
            Mechanism::Plain,
            Mechanism::Login,
            Mechanism::CramMd5,
            Mechanism::XOAuth2,
            Mechanism::OAuthBearer,
            Mechanism::ScramSha256,
            Mechanism::ScramSha256Plus,
        ] {
            assert_eq!(Mechanism::from_name(m.as_str().as_bytes()), m);
            assert_eq!(
                Mechanism::from_name(m.as_str().to_lowercase().as_bytes()),
                m
            );
        }
        assert_eq!(
            Mechanism::from_name(b"gssapi"),
            Mechanism::Other("GSSAPI".into())
        );
    }

    #[test]
    fn selection_prefers_strongest_supported() {
        let pw = Credentials::password("u", "p");
        let offered = [Mechanism::Login, Mechanism::Plain, Mechanism::CramMd5];
        let none = ScramSupport::Unavailable;
        assert_eq!(
            select_mechanism(&offered, &pw, None, none),
            Some(Mechanism::CramMd5)
        );
        assert_eq!(
            select_mechanism(&offered[..2], &pw, None, none),
            Some(Mechanism::Plain)
        );
        assert_eq!(
            select_mechanism(&[Mechanism::XOAuth2], &pw, None, none),
            None
        );
        let pref = [Mechanism::Login];
        assert_eq!(
            select_mechanism(&offered, &pw, Some(&pref), none),
            Some(Mechanism::Login)
        );
        let tok = Credentials::oauth2("u", "t");
        assert_eq!(
            select_mechanism(&[Mechanism::XOAuth2, Mechanism::Plain], &tok, None, none),
            Some(Mechanism::XOAuth2)
        );
        let scram = [
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha256Plus,
        ];
        assert_eq!(
            select_mechanism(&scram, &pw, None, none),
            Some(Mechanism::Plain)
        );
        assert_eq!(
            select_mechanism(&scram, &pw, None, ScramSupport::Scram),
            Some(Mechanism::ScramSha256)
        );
        assert_eq!(
            select_mechanism(&scram, &pw, None, ScramSupport::ScramPlus),
            Some(Mechanism::ScramSha256Plus)
        );
        assert_eq!(
            select_mechanism(&scram, &tok, None, ScramSupport::ScramPlus),
            None
        );
    }

    #[test]
    fn plain_initial_response() {
        let c = Credentials::password("alice", "secret");
        let x = Exchange::new(Mechanism::Plain);
        assert_eq!(x.initial_response(&c).unwrap(), b"\0alice\0secret");
    }

    #[test]
    fn login_answers_by_order() {
        let c = Credentials::password("alice", "secret");
        let mut x = Exchange::new(Mechanism::Login);
        assert_eq!(x.initial_response(&c), None);
        assert_eq!(x.respond(b"Username:", &c, false).unwrap(), b"alice");
        assert_eq!(x.respond(b"Password:", &c, false).unwrap(), b"secret");
        assert!(x.respond(b"More:", &c, false).is_err());
    }

    #[test]
    fn cram_md5_matches_rfc_2195_example() {
        // RFC 2195 §2 example: user "tim", password "tanstaaftanstaaf".
        let c = Credentials::password("tim", "tanstaaftanstaaf");
        let mut x = Exchange::new(Mechanism::CramMd5);
        let r = x
            .respond(b"<1896.697170952@postoffice.reston.mci.net>", &c, false)
            .unwrap();
        assert_eq!(r, b"tim b913a602c7eda7a495b4e6e7334d3890");
    }

    #[test]
    fn xoauth2_format_and_error_challenge() {
        let c = Credentials::oauth2("someone@example.com", "ya29.token");
        let mut x = Exchange::new(Mechanism::XOAuth2);
        assert_eq!(
            x.initial_response(&c).unwrap(),
            b"user=someone@example.com\x01auth=Bearer ya29.token\x01\x01"
        );
        let r = x
            .respond(br#"{"status":"401","schemes":"bearer"}"#, &c, true)
            .unwrap();
        assert!(r.is_empty());
        assert!(x.error_details.unwrap().contains("401"));
    }

    #[test]
    fn oauthbearer_format() {
        let c = Credentials::oauth2("a,b=c", "tok");
        let x = Exchange::new(Mechanism::OAuthBearer);
        assert_eq!(
            x.initial_response(&c).unwrap(),
            b"n,a=a=2Cb=3Dc,\x01auth=Bearer tok\x01\x01"
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_command(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
            "AUTH PLAIN <redacted>"
        );
        assert_eq!(redact_command(b"AUTH LOGIN\r\n"), "AUTH LOGIN");
        assert_eq!(redact_command(b"MAIL FROM:<a@b>\r\n"), "MAIL FROM:<a@b>");
    }
}
