//! OAuth 2.0 bearer tokens from a provider (XOAUTH2, OAUTHBEARER RFC 7628): asked for the current token on every
//! connect, and for a fresh one when the server refuses the token. No I/O here: both adapters use it.
//!
//! ```
//! use smtp_blocking::{ConnectOptions, oauth::TokenRequest};
//!
//! let options = ConnectOptions::new("smtp.example.org", 587).with_oauth_token_provider(
//!     "alice@example.org",
//!     |request: &TokenRequest| {
//!         // `request.is_refresh()`: the server refused the last token (`request.status()` says why, e.g.
//!         // "invalid_token"): refresh it with the identity provider instead of returning the cached one.
//!         Ok("ya29.a0Af...".into())
//!     },
//! );
//! # let _ = options;
//! ```
//!
//! The flow, driven by the adapters with the core's [`smtp_proto::Client::retry_auth`]: on each (re)connect the
//! provider is asked with [`TokenRequest::Initial`]; when the server refuses the token (its RFC 7628 §3.2.2 error
//! challenge, then `535`), the provider is asked once with [`TokenRequest::Refresh`] and AUTH is tried again on the
//! same connection (the session is still usable after a failed exchange). A second refusal is
//! [`ErrorKind::AuthFailed`] with the server's status; a provider error is [`ErrorKind::TokenProvider`] with the
//! provider's error as the cause. Tokens are [`Secret`]s: never in `Debug`, `Display` or transcripts.
//!
//! The provider is called synchronously, on the thread (or executor task) opening the connection: return a cached
//! token for [`TokenRequest::Initial`] when it is still valid. With [`TlsMode::Auto`](crate::TlsMode::Auto) two
//! connection attempts may run at once, and each asks for its token.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use smtp_proto::{Credentials, Secret, Stage};

use crate::error::{Error, ErrorKind};

/// Why the provider is asked for a token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRequest {
    /// For a new connection (the first one, or a reconnect): the current token.
    Initial,
    /// The server refused the previous token on this connection: a fresh one (refresh it, do not return the cached
    /// one).
    Refresh {
        /// The server's decoded error challenge (RFC 7628 §3.2.2 JSON, e.g.
        /// `{"status":"invalid_token","scope":"…"}`), if it sent one.
        details: Option<String>,
    },
}

impl TokenRequest {
    /// True for [`TokenRequest::Refresh`].
    pub fn is_refresh(&self) -> bool {
        matches!(self, Self::Refresh { .. })
    }

    /// The server's decoded error challenge, for a refresh.
    pub fn details(&self) -> Option<&str> {
        match self {
            Self::Refresh { details } => details.as_deref(),
            Self::Initial => None,
        }
    }

    /// The `status` member of the server's error challenge (`"invalid_token"`, or XOAUTH2's `"401"`), if any.
    pub fn status(&self) -> Option<String> {
        self.details().and_then(|d| json_string_member(d, "status"))
    }

    /// The `scope` member of the server's error challenge (the scope the server wants), if any.
    pub fn scope(&self) -> Option<String> {
        self.details().and_then(|d| json_string_member(d, "scope"))
    }
}

/// The error a provider returns.
pub type TokenError = Box<dyn StdError + Send + Sync>;

/// A token provider: returns the current (or, for [`TokenRequest::Refresh`], a fresh) access token.
pub type TokenProvider = Arc<dyn Fn(&TokenRequest) -> Result<Secret, TokenError> + Send + Sync>;

/// The user name and the provider set with [`crate::ConnectOptions::with_oauth_token_provider`].
#[derive(Clone)]
pub struct OAuthTokenSource {
    /// The user the tokens are issued for.
    pub username: String,
    /// Gives the tokens.
    pub provider: TokenProvider,
}

impl fmt::Debug for OAuthTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthTokenSource")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl OAuthTokenSource {
    /// Asks the provider and wraps the token as [`Credentials::OAuth2`]; a provider error becomes
    /// [`ErrorKind::TokenProvider`] (stage AUTH) with the provider's error as the cause.
    pub fn credentials(&self, request: &TokenRequest) -> Result<Credentials, Error> {
        match (self.provider)(request) {
            Ok(token) => Ok(Credentials::OAuth2 {
                username: self.username.clone(),
                token,
            }),
            Err(e) => Err(Error::new(
                ErrorKind::TokenProvider {
                    refresh: request.is_refresh(),
                },
                Stage::Auth,
            )
            .with_shared_cause(Some(Arc::from(e)))),
        }
    }
}

/// The string value of a top-level `"name":"value"` member of a small JSON object, without a JSON library (the
/// error challenges are flat objects of strings; escapes other than `\"` and `\\` are kept as they are).
fn json_string_member(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\"");
    let after = &json[json.find(&key)? + key.len()..];
    let after = after.trim_start().strip_prefix(':')?.trim_start();
    let mut chars = after.strip_prefix('"')?.chars();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_scope_are_read_from_the_challenge() {
        let r = TokenRequest::Refresh {
            details: Some(
                r#"{"status":"invalid_token", "scope" : "https://mail.example/","schemes":"Bearer"}"#.to_owned(),
            ),
        };
        assert_eq!(r.status().as_deref(), Some("invalid_token"));
        assert_eq!(r.scope().as_deref(), Some("https://mail.example/"));
        assert!(r.is_refresh());
        assert_eq!(TokenRequest::Initial.status(), None);
    }

    #[test]
    fn provider_errors_are_typed_and_tokens_never_print() {
        let source = OAuthTokenSource {
            username: "alice".to_owned(),
            provider: Arc::new(|r: &TokenRequest| {
                if r.is_refresh() {
                    Err("the refresh token expired".into())
                } else {
                    Ok(Secret::from("tok-123"))
                }
            }),
        };
        let c = source.credentials(&TokenRequest::Initial).unwrap();
        assert!(!format!("{c:?} {source:?}").contains("tok-123"));
        let e = source
            .credentials(&TokenRequest::Refresh { details: None })
            .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::TokenProvider { refresh: true });
        assert!(e.to_string().contains("the refresh token expired"), "{e}");
        assert_eq!(e.exit_code(), 77);
    }
}
