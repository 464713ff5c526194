//! Session configuration: TLS policy, protocol, credentials, limits and timeouts.

use std::fmt;

use crate::auth::Mechanism;
use crate::framer::ReplyLimits;
use crate::path::ClientId;
use crate::timer::Timeouts;

/// How the connection is protected (RFC 8314 for implicit TLS, RFC 3207 for STARTTLS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsPolicy {
    /// TLS from the first byte (`smtps`, port 465). The machine starts by asking for a handshake.
    Implicit,
    /// STARTTLS must be advertised and must succeed; the session never continues in plaintext.
    StartTlsRequired,
    /// STARTTLS when the server advertises it; plaintext otherwise or when the server refuses it.
    StartTlsOpportunistic,
    /// No TLS at all. An explicit opt-in for loopback and test servers.
    None,
}

impl TlsPolicy {
    /// The conventional policy for a port: 465 is implicit TLS (RFC 8314 §3.3), every other port requires STARTTLS.
    pub fn for_port(port: u16) -> Self {
        if port == 465 {
            Self::Implicit
        } else {
            Self::StartTlsRequired
        }
    }
}

/// SMTP (RFC 5321) or LMTP (RFC 2033: `LHLO`, and one reply per accepted recipient after the data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// Simple Mail Transfer Protocol.
    #[default]
    Smtp,
    /// Local Mail Transfer Protocol.
    Lmtp,
}

/// A secret (password or token) whose `Debug` output never shows its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into().into_boxed_slice())
    }

    /// The secret bytes, for the SASL exchange.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

/// What the client authenticates with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// A user name and password: PLAIN, LOGIN, CRAM-MD5.
    Password {
        /// The authentication identity.
        username: String,
        /// The password.
        password: Secret,
    },
    /// A user name and an OAuth 2.0 bearer token: XOAUTH2, OAUTHBEARER.
    OAuth2 {
        /// The user the token was issued for.
        username: String,
        /// The access token.
        token: Secret,
    },
}

impl Credentials {
    /// Password credentials.
    pub fn password(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self::Password {
            username: username.into(),
            password: password.into(),
        }
    }

    /// OAuth 2.0 bearer-token credentials.
    pub fn oauth2(username: impl Into<String>, token: impl Into<Secret>) -> Self {
        Self::OAuth2 {
            username: username.into(),
            token: token.into(),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        match self {
            Self::Password { username, .. } | Self::OAuth2 { username, .. } => username,
        }
    }
}

/// Everything that shapes one session. Start from [`Config::default`] (or [`Config::new`]) and set fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The name sent in EHLO/HELO/LHLO (RFC 5321 §4.1.1.1): the client's domain or an address literal.
    pub client_id: ClientId,
    /// The TLS policy. The default is [`TlsPolicy::StartTlsRequired`]: never plaintext unless asked for.
    pub tls: TlsPolicy,
    /// SMTP or LMTP.
    pub protocol: Protocol,
    /// Per-stage deadlines.
    pub timeouts: Timeouts,
    /// Caps on reply lines, lines per reply and reply size.
    pub reply_limits: ReplyLimits,
    /// Credentials for AUTH after EHLO (and after TLS). `None`: no AUTH.
    pub credentials: Option<Credentials>,
    /// Mechanisms the client may use, in order of preference. `None`: the strongest the server offers among
    /// those the credentials support.
    pub mechanisms: Option<Vec<Mechanism>>,
    /// Allow sending credentials over an unencrypted connection. Off by default: without TLS the machine refuses
    /// to authenticate and closes with [`crate::ErrorKind::AuthRequiresTls`].
    pub allow_insecure_auth: bool,
    /// Use PIPELINING (RFC 2920) when advertised.
    pub pipelining: bool,
    /// Use CHUNKING/BDAT (RFC 3030) when advertised.
    pub chunking: bool,
    /// The server port, when known; used only to diagnose TLS-mode mistakes (e.g. no greeting on 465).
    pub port: Option<u16>,
    /// Record a transcript (AUTH payloads redacted) to be drained with [`crate::Client::poll_transcript`].
    pub transcript: bool,
    /// Body bytes the machine buffers before [`crate::Client::write_body`] applies back-pressure.
    pub max_buffered_body: usize,
    /// The most `334` challenges one AUTH exchange may take before the machine gives up.
    pub max_auth_rounds: u8,
    /// Fresh random bytes for SASL nonces (SCRAM, RFC 5802). The core reads no randomness of its own: adapters fill
    /// this from the operating system for every connection. Without it SCRAM is not chosen.
    pub sasl_random: Option<[u8; 18]>,
    /// When the server refuses an OAuth 2.0 bearer token (XOAUTH2, OAUTHBEARER RFC 7628 §3.2.2), pause instead of
    /// closing: [`crate::Event::AuthRejected`] carries the decoded error, and the application either calls
    /// [`crate::Client::retry_auth`] once with a fresh token or ends the session with [`crate::Client::quit`].
    /// Off by default (the session closes with [`crate::ErrorKind::AuthFailed`]).
    pub token_refresh: bool,
}

impl Config {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the TLS policy.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsPolicy) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the credentials.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sets the protocol.
    #[must_use]
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets the EHLO name.
    #[must_use]
    pub fn with_client_id(mut self, client_id: ClientId) -> Self {
        self.client_id = client_id;
        self
    }

    /// Sets the timeouts.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets the port hint used for diagnosis.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            client_id: ClientId::default(),
            tls: TlsPolicy::StartTlsRequired,
            protocol: Protocol::Smtp,
            timeouts: Timeouts::default(),
            reply_limits: ReplyLimits::default(),
            credentials: None,
            mechanisms: None,
            allow_insecure_auth: false,
            pipelining: true,
            chunking: true,
            port: None,
            transcript: false,
            max_buffered_body: 256 * 1024,
            max_auth_rounds: 8,
            sasl_random: None,
            token_refresh: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = Credentials::password("alice", "hunter2");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice"));
    }

    #[test]
    fn port_policy() {
        assert_eq!(TlsPolicy::for_port(465), TlsPolicy::Implicit);
        assert_eq!(TlsPolicy::for_port(587), TlsPolicy::StartTlsRequired);
        assert_eq!(TlsPolicy::for_port(25), TlsPolicy::StartTlsRequired);
    }

    #[test]
    fn default_never_plaintext() {
        let c = Config::default();
        assert_eq!(c.tls, TlsPolicy::StartTlsRequired);
        assert!(!c.allow_insecure_auth);
    }
}
