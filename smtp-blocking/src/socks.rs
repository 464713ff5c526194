//! A sans-IO SOCKS5 client handshake (RFC 1928) with username/password authentication (RFC 1929).
//!
//! [`Socks5Handshake`] encodes the method greeting, the optional username/password request and the `CONNECT`
//! request, and parses the proxy's replies incrementally. It does no I/O: an adapter writes what
//! [`poll_transmit`](Socks5Handshake::poll_transmit) gives, then reads exactly
//! [`wanted`](Socks5Handshake::wanted) bytes (never more: the SMTP greeting may follow the last reply in the same
//! segment, and it belongs to the session, not to the handshake) and hands them to
//! [`receive`](Socks5Handshake::receive), until [`is_done`](Socks5Handshake::is_done). Both adapters drive this
//! one state machine: blocking with std sockets, smol with `async-io`.
//!
//! The target is sent as a domain name (address type 3) when it is a name, so the proxy resolves it (nothing about
//! the destination leaks to the local resolver), and as an IPv4/IPv6 address otherwise.

use std::fmt;
use std::net::IpAddr;

use smtp_proto::Secret;

/// The SOCKS protocol version byte (RFC 1928 §3).
const VERSION: u8 = 5;
/// "No authentication required" (RFC 1928 §3).
const METHOD_NONE: u8 = 0x00;
/// "Username/password" (RFC 1928 §3, RFC 1929).
const METHOD_USERNAME: u8 = 0x02;
/// "No acceptable methods" (RFC 1928 §3).
const METHOD_UNACCEPTABLE: u8 = 0xFF;
/// The username/password sub-negotiation version (RFC 1929 §2).
const AUTH_VERSION: u8 = 1;
/// `CONNECT` (RFC 1928 §4).
const CMD_CONNECT: u8 = 1;
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// A non-success `REP` field of a SOCKS5 reply (RFC 1928 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplyCode {
    /// `X'01'` general SOCKS server failure.
    GeneralFailure,
    /// `X'02'` connection not allowed by ruleset.
    NotAllowed,
    /// `X'03'` network unreachable.
    NetworkUnreachable,
    /// `X'04'` host unreachable.
    HostUnreachable,
    /// `X'05'` connection refused (by the destination).
    ConnectionRefused,
    /// `X'06'` TTL expired.
    TtlExpired,
    /// `X'07'` command not supported.
    CommandNotSupported,
    /// `X'08'` address type not supported.
    AddressTypeNotSupported,
    /// Any other (unassigned) value.
    Other(u8),
}

impl ReplyCode {
    /// The code for a `REP` byte other than `0` (success).
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::GeneralFailure,
            2 => Self::NotAllowed,
            3 => Self::NetworkUnreachable,
            4 => Self::HostUnreachable,
            5 => Self::ConnectionRefused,
            6 => Self::TtlExpired,
            7 => Self::CommandNotSupported,
            8 => Self::AddressTypeNotSupported,
            other => Self::Other(other),
        }
    }

    /// The `REP` byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::GeneralFailure => 1,
            Self::NotAllowed => 2,
            Self::NetworkUnreachable => 3,
            Self::HostUnreachable => 4,
            Self::ConnectionRefused => 5,
            Self::TtlExpired => 6,
            Self::CommandNotSupported => 7,
            Self::AddressTypeNotSupported => 8,
            Self::Other(b) => b,
        }
    }

    /// True when the same request may succeed later (the destination or the network may come back).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::GeneralFailure
                | Self::NetworkUnreachable
                | Self::HostUnreachable
                | Self::ConnectionRefused
                | Self::TtlExpired
        )
    }

    /// RFC 1928's meaning and what to do about it.
    fn explain(self) -> &'static str {
        match self {
            Self::GeneralFailure => "general SOCKS server failure; see the proxy's log",
            Self::NotAllowed => {
                "connection not allowed by the proxy's ruleset; the proxy's rules must allow this destination \
                 and port"
            }
            Self::NetworkUnreachable => "network unreachable from the proxy",
            Self::HostUnreachable => {
                "host unreachable from the proxy (or the proxy could not resolve the name)"
            }
            Self::ConnectionRefused => {
                "connection refused by the destination; check the server's host and port, and that the mail \
                 server is running"
            }
            Self::TtlExpired => "TTL expired on the way from the proxy to the destination",
            Self::CommandNotSupported => "the proxy does not support the CONNECT command",
            Self::AddressTypeNotSupported => {
                "the proxy does not support this address type (domain names or IPv6); give the server as an \
                 IPv4 address"
            }
            Self::Other(_) => "an unassigned reply code",
        }
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reply {} ({})", self.byte(), self.explain())
    }
}

/// Why a SOCKS5 negotiation failed. The adapters report it as
/// [`ErrorKind::Proxy`](crate::ErrorKind::Proxy); `Display` is a sentence that says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy answered the `CONNECT` request with a failure code.
    Refused(ReplyCode),
    /// The proxy requires a method this client did not offer (`X'FF'`): with no credentials configured, it wants
    /// a user name and password.
    NoAcceptableMethod {
        /// Whether username/password authentication was offered.
        offered_password: bool,
    },
    /// The proxy refused the user name and password (RFC 1929 status other than 0).
    AuthFailed {
        /// The status byte.
        status: u8,
    },
    /// The proxy broke the protocol (wrong version, a method that was not offered, a bad address type).
    Protocol {
        /// What was wrong.
        details: String,
    },
    /// The negotiation did not finish within the connect timeout.
    TimedOut {
        /// The step that was waiting: `greeting`, `authentication` or `connect`.
        step: &'static str,
    },
    /// The proxy closed the connection during the negotiation.
    Closed {
        /// The step that was waiting.
        step: &'static str,
    },
    /// The request cannot be encoded: a name or credential over 255 bytes, or empty.
    Invalid {
        /// What is wrong.
        details: String,
    },
}

impl ProxyError {
    /// True when trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused(code) => code.is_transient(),
            Self::TimedOut { .. } | Self::Closed { .. } => true,
            _ => false,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(code) => write!(f, "the proxy could not connect to the server: {code}"),
            Self::NoAcceptableMethod {
                offered_password: false,
            } => f.write_str(
                "the proxy requires authentication: give a proxy user name and password (--socks5-user)",
            ),
            Self::NoAcceptableMethod {
                offered_password: true,
            } => f.write_str(
                "the proxy accepts neither no authentication nor username/password (RFC 1929)",
            ),
            Self::AuthFailed { status } => write!(
                f,
                "the proxy refused the user name or password (RFC 1929 status {status}); check the proxy \
                 credentials"
            ),
            Self::Protocol { details } => write!(f, "the proxy broke the SOCKS5 protocol: {details}"),
            Self::TimedOut { step } => write!(
                f,
                "the proxy did not answer the SOCKS5 {step} step within the connect timeout"
            ),
            Self::Closed { step } => write!(
                f,
                "the proxy closed the connection during the SOCKS5 {step} step (is it a SOCKS5 proxy?)"
            ),
            Self::Invalid { details } => write!(f, "cannot make the SOCKS5 request: {details}"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Where the handshake is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The greeting is to be sent.
    Greeting,
    /// Waiting for the method selection (2 bytes).
    Method,
    /// The username/password request is to be sent.
    Auth,
    /// Waiting for the authentication status (2 bytes).
    AuthStatus,
    /// The CONNECT request is to be sent.
    Connect,
    /// Waiting for the reply header (4 bytes: version, reply code, reserved, address type).
    ReplyHead,
    /// Waiting for the length of a domain-name bound address (1 byte).
    ReplyNameLen,
    /// Waiting for the rest of the reply (the bound address and port).
    ReplyTail { atyp: u8, len: usize },
    /// Connected: the stream now carries the session.
    Done,
    /// Failed; nothing more happens.
    Failed,
}

/// The destination of the `CONNECT` request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Ip(IpAddr),
    Name(String),
}

/// A SOCKS5 client handshake, without I/O. See the [module docs](self) for the drive loop.
pub struct Socks5Handshake {
    state: State,
    target: Target,
    port: u16,
    credentials: Option<(String, Secret)>,
    /// Reply bytes collected for the current message.
    buf: Vec<u8>,
    bound: Option<String>,
}

impl fmt::Debug for Socks5Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socks5Handshake")
            .field("state", &self.state)
            .field("target", &self.target)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish_non_exhaustive()
    }
}

impl Socks5Handshake {
    /// A handshake that asks the proxy to connect to `host:port` (an IP literal, with or without brackets, or a
    /// name the proxy resolves), authenticating with `credentials` when given.
    pub fn new(
        host: &str,
        port: u16,
        credentials: Option<(String, Secret)>,
    ) -> Result<Self, ProxyError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let target = match bare.parse::<IpAddr>() {
            Ok(ip) => Target::Ip(ip),
            Err(_) if bare.is_empty() || bare.len() > 255 => {
                return Err(ProxyError::Invalid {
                    details: format!(
                        "the host name must be 1 to 255 bytes long (it is {})",
                        bare.len()
                    ),
                });
            }
            Err(_) => Target::Name(bare.to_owned()),
        };
        if let Some((user, password)) = &credentials {
            let (u, p) = (user.len(), password.expose().len());
            if !(1..=255).contains(&u) || !(1..=255).contains(&p) {
                return Err(ProxyError::Invalid {
                    details: "the proxy user name and password must each be 1 to 255 bytes long (RFC 1929)"
                        .to_owned(),
                });
            }
        }
        Ok(Self {
            state: State::Greeting,
            target,
            port,
            credentials,
            buf: Vec::with_capacity(32),
            bound: None,
        })
    }

    /// The next bytes to write, if any. Write them fully before reading.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        match self.state {
            State::Greeting => {
                self.state = State::Method;
                Some(if self.credentials.is_some() {
                    vec![VERSION, 2, METHOD_NONE, METHOD_USERNAME]
                } else {
                    vec![VERSION, 1, METHOD_NONE]
                })
            }
            State::Auth => {
                self.state = State::AuthStatus;
                let (user, password) = self.credentials.as_ref()?;
                let password = password.expose();
                let mut out = Vec::with_capacity(3 + user.len() + password.len());
                out.push(AUTH_VERSION);
                out.push(user.len() as u8);
                out.extend_from_slice(user.as_bytes());
                out.push(password.len() as u8);
                out.extend_from_slice(password);
                Some(out)
            }
            State::Connect => {
                self.state = State::ReplyHead;
                let mut out = vec![VERSION, CMD_CONNECT, 0];
                match &self.target {
                    Target::Ip(IpAddr::V4(v4)) => {
                        out.push(ATYP_IPV4);
                        out.extend_from_slice(&v4.octets());
                    }
                    Target::Ip(IpAddr::V6(v6)) => {
                        out.push(ATYP_IPV6);
                        out.extend_from_slice(&v6.octets());
                    }
                    Target::Name(name) => {
                        out.push(ATYP_DOMAIN);
                        out.push(name.len() as u8);
                        out.extend_from_slice(name.as_bytes());
                    }
                }
                out.extend_from_slice(&self.port.to_be_bytes());
                Some(out)
            }
            _ => None,
        }
    }

    /// How many bytes to read next, exactly: reading more could swallow the server's first bytes. `0` when there
    /// is something to transmit first, or the handshake is over.
    pub fn wanted(&self) -> usize {
        let total = match self.state {
            State::Method | State::AuthStatus => 2,
            State::ReplyHead => 4,
            State::ReplyNameLen => 1,
            State::ReplyTail { len, .. } => len,
            _ => return 0,
        };
        total - self.buf.len()
    }

    /// The step being waited on, for messages: `greeting`, `authentication` or `connect`.
    pub fn step(&self) -> &'static str {
        match self.state {
            State::Greeting | State::Method => "greeting",
            State::Auth | State::AuthStatus => "authentication",
            _ => "connect",
        }
    }

    /// True once the proxy has connected to the target: the stream now carries the SMTP/LMTP session.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The address the proxy bound for the connection (`BND.ADDR:BND.PORT`), once done; for the transcript.
    pub fn bound_address(&self) -> Option<&str> {
        self.bound.as_deref()
    }

    /// Takes bytes read from the proxy: at most [`wanted`](Self::wanted). An error ends the handshake.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), ProxyError> {
        if bytes.len() > self.wanted() {
            self.state = State::Failed;
            return Err(ProxyError::Protocol {
                details: "more bytes than the SOCKS5 reply holds were handed to the handshake"
                    .to_owned(),
            });
        }
        self.buf.extend_from_slice(bytes);
        if self.wanted() > 0 {
            return Ok(());
        }
        let result = self.complete();
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// A whole message is in `buf`: act on it.
    fn complete(&mut self) -> Result<(), ProxyError> {
        let msg = std::mem::take(&mut self.buf);
        match self.state {
            State::Method => {
                if msg[0] != VERSION {
                    return Err(protocol(format!(
                        "the method selection has version {} instead of 5",
                        msg[0]
                    )));
                }
                self.state = match msg[1] {
                    METHOD_NONE => State::Connect,
                    METHOD_USERNAME if self.credentials.is_some() => State::Auth,
                    METHOD_UNACCEPTABLE => {
                        return Err(ProxyError::NoAcceptableMethod {
                            offered_password: self.credentials.is_some(),
                        });
                    }
                    other => {
                        return Err(protocol(format!(
                            "the proxy chose authentication method {other:#04x}, which was not offered"
                        )));
                    }
                };
            }
            State::AuthStatus => {
                // RFC 1929 says version 1; some proxies answer 5. The status is what matters.
                if msg[0] != AUTH_VERSION && msg[0] != VERSION {
                    return Err(protocol(format!(
                        "the authentication reply has version {}",
                        msg[0]
                    )));
                }
                if msg[1] != 0 {
                    return Err(ProxyError::AuthFailed { status: msg[1] });
                }
                self.state = State::Connect;
            }
            State::ReplyHead => {
                if msg[0] != VERSION {
                    return Err(protocol(format!(
                        "the reply has version {} instead of 5",
                        msg[0]
                    )));
                }
                if msg[1] != 0 {
                    return Err(ProxyError::Refused(ReplyCode::from_byte(msg[1])));
                }
                self.state = match msg[3] {
                    ATYP_IPV4 => State::ReplyTail {
                        atyp: ATYP_IPV4,
                        len: 4 + 2,
                    },
                    ATYP_IPV6 => State::ReplyTail {
                        atyp: ATYP_IPV6,
                        len: 16 + 2,
                    },
                    ATYP_DOMAIN => State::ReplyNameLen,
                    other => {
                        return Err(protocol(format!("the reply has address type {other}")));
                    }
                };
            }
            State::ReplyNameLen => {
                self.state = State::ReplyTail {
                    atyp: ATYP_DOMAIN,
                    len: usize::from(msg[0]) + 2,
                };
            }
            State::ReplyTail { atyp, .. } => {
                let (addr, port) = msg.split_at(msg.len() - 2);
                let port = u16::from_be_bytes([port[0], port[1]]);
                self.bound = Some(match atyp {
                    ATYP_IPV4 => {
                        let a: [u8; 4] = addr.try_into().map_err(|_| protocol("short address"))?;
                        format!("{}:{port}", IpAddr::from(a))
                    }
                    ATYP_IPV6 => {
                        let a: [u8; 16] = addr.try_into().map_err(|_| protocol("short address"))?;
                        format!("[{}]:{port}", IpAddr::from(a))
                    }
                    _ => format!("{}:{port}", String::from_utf8_lossy(addr)),
                });
                self.state = State::Done;
            }
            _ => return Err(protocol("bytes arrived when none were expected")),
        }
        Ok(())
    }
}

fn protocol(details: impl Into<String>) -> ProxyError {
    ProxyError::Protocol {
        details: details.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` to the handshake in pieces of at most `wanted()` bytes, as a driver does.
    fn feed(h: &mut Socks5Handshake, mut bytes: &[u8]) -> Result<(), ProxyError> {
        while !bytes.is_empty() {
            let n = h.wanted().min(bytes.len()).min(1 + bytes.len() / 2);
            assert!(n > 0, "the handshake wants nothing but bytes remain");
            h.receive(&bytes[..n])?;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    #[test]
    fn no_auth_domain_name() {
        let mut h = Socks5Handshake::new("mx.example", 25, None).unwrap();
        assert_eq!(h.poll_transmit().unwrap(), [5, 1, 0]);
        assert_eq!(h.poll_transmit(), None);
        assert_eq!(h.wanted(), 2);
        feed(&mut h, &[5, 0]).unwrap();
        let mut expected = vec![5, 1, 0, 3, 10];
        expected.extend_from_slice(b"mx.example");
        expected.extend_from_slice(&[0, 25]);
        assert_eq!(h.poll_transmit().unwrap(), expected);
        feed(&mut h, &[5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]).unwrap();
        assert!(h.is_done());
        assert_eq!(h.wanted(), 0);
        assert_eq!(h.bound_address(), Some("127.0.0.1:8080"));
    }

    #[test]
    fn password_auth_and_ip_targets() {
        let creds = Some(("u".to_owned(), Secret::from("pw")));
        let mut h = Socks5Handshake::new("[::1]", 587, creds).unwrap();
        assert_eq!(h.poll_transmit().unwrap(), [5, 2, 0, 2]);
        feed(&mut h, &[5, 2]).unwrap();
        assert_eq!(h.step(), "authentication");
        assert_eq!(h.poll_transmit().unwrap(), [1, 1, b'u', 2, b'p', b'w']);
        feed(&mut h, &[1, 0]).unwrap();
        let req = h.poll_transmit().unwrap();
        assert_eq!(&req[..4], &[5, 1, 0, 4]);
        assert_eq!(req.len(), 4 + 16 + 2);
        // A domain-name bound address, with the SMTP greeting right behind it: only the reply is wanted.
        let mut reply = vec![5, 0, 0, 3, 4];
        reply.extend_from_slice(b"host");
        reply.extend_from_slice(&[0, 1]);
        feed(&mut h, &reply).unwrap();
        assert!(h.is_done());
        assert_eq!(h.bound_address(), Some("host:1"));

        let mut h = Socks5Handshake::new("192.0.2.7", 2525, None).unwrap();
        let _ = h.poll_transmit();
        feed(&mut h, &[5, 0]).unwrap();
        assert_eq!(
            h.poll_transmit().unwrap(),
            [5, 1, 0, 1, 192, 0, 2, 7, 0x09, 0xdd]
        );
    }

    #[test]
    fn failures_are_typed() {
        let mut h = Socks5Handshake::new("localhost", 1, None).unwrap();
        let _ = h.poll_transmit();
        feed(&mut h, &[5, 0]).unwrap();
        let _ = h.poll_transmit();
        // The error is known from the 4-byte header: the rest is not waited for.
        let e = feed(&mut h, &[5, 5, 0, 1]).unwrap_err();
        assert_eq!(e, ProxyError::Refused(ReplyCode::ConnectionRefused));
        assert!(
            e.to_string()
                .contains("connection refused by the destination")
        );
        assert!(e.is_transient());

        let mut h = Socks5Handshake::new("localhost", 1, None).unwrap();
        let _ = h.poll_transmit();
        let e = feed(&mut h, &[5, 0xff]).unwrap_err();
        assert!(e.to_string().contains("requires authentication"));

        let creds = Some(("u".to_owned(), Secret::from("hunter2")));
        let mut h = Socks5Handshake::new("localhost", 1, creds).unwrap();
        assert!(!format!("{h:?}").contains("hunter2"));
        let _ = h.poll_transmit();
        feed(&mut h, &[5, 2]).unwrap();
        let _ = h.poll_transmit();
        let e = feed(&mut h, &[1, 1]).unwrap_err();
        assert_eq!(e, ProxyError::AuthFailed { status: 1 });
        assert!(!e.to_string().contains("hunter2"));

        // A method that was not offered.
        let mut h = Socks5Handshake::new("localhost", 1, None).unwrap();
        let _ = h.poll_transmit();
        assert!(matches!(
            feed(&mut h, &[5, 2]),
            Err(ProxyError::Protocol { .. })
        ));
        // Not SOCKS5 at all.
        let mut h = Socks5Handshake::new("localhost", 1, None).unwrap();
        let _ = h.poll_transmit();
        assert!(matches!(
            feed(&mut h, b"22"),
            Err(ProxyError::Protocol { .. })
        ));
        assert!(Socks5Handshake::new(&"a".repeat(256), 1, None).is_err());
        assert!(Socks5Handshake::new("h", 1, Some((String::new(), Secret::from("p")))).is_err());
    }
}
