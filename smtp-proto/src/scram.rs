//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677), with `tls-exporter` channel binding (RFC 9266).
//!
//! The client proves it knows the password without sending it, and verifies that the server knows it too: a server
//! signature that does not verify ends the session, even if the server then says `235`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// More iterations than this is a server trying to burn the client's CPU (RFC 7677 recommends 4096; common servers
/// use 4096 to 10000).
pub(crate) const MAX_ITERATIONS: u32 = 200_000;

/// How the client uses channel binding (RFC 5802 §6: the gs2 flag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    /// `n`: the client has no channel binding (no TLS, or the adapter did not provide it).
    Unavailable,
    /// `y`: the client could bind but the server did not offer a -PLUS mechanism (detects downgrade).
    NotOffered,
    /// `p=tls-exporter`: bound to the TLS session by this exporter value (RFC 9266).
    TlsExporter(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ScramError {
    /// The server's message does not follow RFC 5802, or its nonce does not extend ours.
    Malformed,
    /// The iteration count is zero or above [`MAX_ITERATIONS`].
    Iterations(u32),
    /// The server sent `e=...`.
    Server(String),
    /// The server signature did not verify: the server does not know the password.
    ServerNotVerified,
    /// A challenge after the exchange ended.
    Unexpected,
}

#[derive(Clone, Debug)]
enum State {
    Initial,
    /// Waiting for `v=`: the signature the server must prove.
    Final {
        server_signature: [u8; 32],
    },
    Verified,
}

/// The client side of one SCRAM-SHA-256(-PLUS) exchange.
#[derive(Clone, Debug)]
pub(crate) struct Scram {
    gs2_header: String,
    client_first_bare: String,
    nonce: String,
    binding: Binding,
    state: State,
}

/// RFC 5802 §5.1 saslname: `=` and `,` escaped.
fn saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

impl Scram {
    /// `nonce` must be printable ASCII without `,` (the caller encodes fresh random bytes in base64).
    pub(crate) fn new(username: &str, nonce: &str, binding: Binding) -> Self {
        let gs2_header = match &binding {
            Binding::Unavailable => "n,,".to_owned(),
            Binding::NotOffered => "y,,".to_owned(),
            Binding::TlsExporter(_) => "p=tls-exporter,,".to_owned(),
        };
        Self {
            client_first_bare: format!("n={},r={nonce}", saslname(username)),
            gs2_header,
            nonce: nonce.to_owned(),
            binding,
            state: State::Initial,
        }
    }

    /// The client-first message (the AUTH initial response).
    pub(crate) fn client_first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.client_first_bare).into_bytes()
    }

    /// True once the server proved it knows the password.
    pub(crate) fn verified(&self) -> bool {
        matches!(self.state, State::Verified)
    }

    /// Answers a decoded challenge.
    pub(crate) fn step(
        &mut self,
        challenge: &[u8],
        password: &[u8],
    ) -> Result<Vec<u8>, ScramError> {
        match self.state {
            State::Initial => self.client_final(challenge, password),
            State::Final { server_signature } => {
                let text = std::str::from_utf8(challenge).map_err(|_| ScramError::Malformed)?;
                if let Some(e) = text.strip_prefix("e=") {
                    return Err(ScramError::Server(
                        e.chars().filter(|c| !c.is_control()).take(100).collect(),
                    ));
                }
                let v = attribute(text, 'v').ok_or(ScramError::Malformed)?;
                let v = BASE64.decode(v).map_err(|_| ScramError::Malformed)?;
                if !constant_time_eq(&v, &server_signature) {
                    return Err(ScramError::ServerNotVerified);
                }
                self.state = State::Verified;
                Ok(Vec::new())
            }
            State::Verified => Err(ScramError::Unexpected),
        }
    }

    fn client_final(
        &mut self,
        server_first: &[u8],
        password: &[u8],
    ) -> Result<Vec<u8>, ScramError> {
        let server_first = std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed)?;
        if server_first.starts_with("m=") {
            return Err(ScramError::Malformed); // mandatory extensions are not supported (RFC 5802 §5.1)
        }
        let nonce = attribute(server_first, 'r').ok_or(ScramError::Malformed)?;
        let salt = attribute(server_first, 's').ok_or(ScramError::Malformed)?;
        let iterations = attribute(server_first, 'i').ok_or(ScramError::Malformed)?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::Malformed);
        }
        let salt = BASE64.decode(salt).map_err(|_| ScramError::Malformed)?;
        let iterations: u32 = iterations.parse().map_err(|_| ScramError::Malformed)?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(ScramError::Iterations(iterations));
        }
        let mut cbind = self.gs2_header.as_bytes().to_vec();
        if let Binding::TlsExporter(data) = &self.binding {
            cbind.extend_from_slice(data);
        }
        let without_proof = format!("c={},r={nonce}", BASE64.encode(&cbind));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);

        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.state = State::Final {
            server_signature: hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The value of `name=` among the comma-separated attributes.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|kv| {
        let mut chars = kv.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &kv[2..])
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3 test vector: user "user", password "pencil".
    #[test]
    fn rfc_7677_example() {
        let mut s = Scram::new("user", "rOprNGfwEbeRWgbNEkqO", Binding::Unavailable);
        assert_eq!(s.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = s.step(server_first, b"pencil").unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert!(!s.verified());
        let empty = s
            .step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", b"pencil")
            .unwrap();
        assert!(empty.is_empty());
        assert!(s.verified());
        assert_eq!(s.step(b"more", b"pencil"), Err(ScramError::Unexpected));
    }

    #[test]
    fn a_server_that_does_not_know_the_password_is_caught() {
        let mut s = Scram::new("user", "rOprNGfwEbeRWgbNEkqO", Binding::Unavailable);
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        s.step(server_first, b"pencil").unwrap();
        let forged = format!("v={}", BASE64.encode([0u8; 32]));
        assert_eq!(
            s.step(forged.as_bytes(), b"pencil"),
            Err(ScramError::ServerNotVerified)
        );
    }

    #[test]
    fn hostile_server_first_messages_are_refused() {
        for bad in [
            &b"r=someoneelsesnonce,s=QSXCR+Q6sek8bf92,i=4096"[..],
            b"r=abc,s=QSXCR+Q6sek8bf92,i=4096",
            b"r=abcdef,s=!!!,i=4096",
            b"r=abcdef,s=QSXCR+Q6sek8bf92",
            b"m=ext,r=abcdef,s=QSXCR+Q6sek8bf92,i=4096",
            b"\xff\xfe",
        ] {
            let mut s = Scram::new("u", "abc", Binding::Unavailable);
            assert_eq!(s.step(bad, b"p"), Err(ScramError::Malformed), "{bad:?}");
        }
        let mut s = Scram::new("u", "abc", Binding::Unavailable);
        assert_eq!(
            s.step(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=999999999", b"p"),
            Err(ScramError::Iterations(999_999_999))
        );
    }

    #[test]
    fn channel_binding_goes_into_the_proof() {
        let mut s = Scram::new("u,=x", "abc", Binding::TlsExporter(vec![1, 2, 3]));
        assert_eq!(s.client_first(), b"p=tls-exporter,,n=u=2C=3Dx,r=abc");
        let fin = s.step(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=4096", b"p").unwrap();
        let mut c = b"p=tls-exporter,,".to_vec();
        c.extend_from_slice(&[1, 2, 3]);
        assert!(
            String::from_utf8(fin)
                .unwrap()
                .starts_with(&format!("c={},r=abcdef,p=", BASE64.encode(c)))
        );
        let s = Scram::new("u", "abc", Binding::NotOffered);
        assert!(s.client_first().starts_with(b"y,,"));
    }

    #[test]
    fn server_error_is_reported() {
        let mut s = Scram::new("u", "abc", Binding::Unavailable);
        s.step(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=4096", b"p").unwrap();
        assert_eq!(
            s.step(b"e=invalid-proof", b"p"),
            Err(ScramError::Server("invalid-proof".into()))
        );
    }
}
