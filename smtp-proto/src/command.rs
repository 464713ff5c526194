//! The command encoder (RFC 5321 §4.1.1): turns a [`Command`] into the bytes of one command line.
//!
//! Every argument is a validated type from [`crate::path`] (or raw bytes that are base64-encoded here), so
//! encoding cannot fail and a command line can never contain a second command: the only CR and LF in the output
//! are the CRLF that ends the line.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::auth::Mechanism;
use crate::path::{Address, ClientId, MailParameters, RcptParameters, ReversePath};

/// One SMTP or LMTP command, borrowing its arguments.
///
/// Build it, call [`Command::encode`] to append the wire bytes, and drop it. It is `Copy`, so a state machine can
/// keep it around cheaply for transcripts and error messages ([`Command::verb`], [`Command::is_secret`]).
///
/// `Debug` redacts the payload of `AUTH` commands, like transcripts should.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `EHLO <client-id>` (RFC 5321 §4.1.1.1).
    Ehlo(&'a ClientId),
    /// `HELO <client-id>`, the fallback for servers that do not understand `EHLO` (RFC 5321 §4.1.1.1).
    Helo(&'a ClientId),
    /// `LHLO <client-id>`, the LMTP greeting (RFC 2033 §4.1).
    Lhlo(&'a ClientId),
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH <mech> [initial-response]` (RFC 4954 §4). The response is raw bytes, base64-encoded by the encoder;
    /// `Some(b"")` encodes as `=` (an empty initial response), `None` sends no initial response.
    Auth {
        /// The SASL mechanism.
        mechanism: &'a Mechanism,
        /// The initial client response (SASL-IR), raw.
        initial_response: Option<&'a [u8]>,
    },
    /// A reply to a `334` challenge: raw bytes, base64-encoded on the wire (empty gives an empty line).
    AuthResponse(&'a [u8]),
    /// `*`: cancels an authentication exchange (RFC 4954 §4).
    AuthCancel,
    /// `MAIL FROM:<reverse-path> [parameters]` (RFC 5321 §4.1.1.2).
    Mail {
        /// The reverse path (`<>` for bounces).
        from: &'a ReversePath,
        /// ESMTP parameters.
        params: &'a MailParameters,
    },
    /// `RCPT TO:<forward-path> [parameters]` (RFC 5321 §4.1.1.3).
    Rcpt {
        /// The recipient.
        to: &'a Address,
        /// ESMTP parameters.
        params: &'a RcptParameters,
    },
    /// `DATA` (RFC 5321 §4.1.1.4); the body follows the `354` reply, dot-stuffed ([`crate::body::DotStuffer`]).
    Data,
    /// `BDAT <size> [LAST]` (RFC 3030 §2); exactly `size` body octets follow the command line.
    Bdat {
        /// The number of octets in the chunk that follows.
        size: u64,
        /// True for the last chunk of the message.
        last: bool,
    },
    /// `RSET` (RFC 5321 §4.1.1.5): aborts the current transaction.
    Rset,
    /// `NOOP` (RFC 5321 §4.1.1.9).
    Noop,
    /// `QUIT` (RFC 5321 §4.1.1.10).
    Quit,
}

/// Appends the decimal representation of `n` without allocating.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `bytes` base64-encoded (RFC 4648 §4, with padding).
fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(BASE64.encode(bytes).as_bytes());
}

/// Appends a mechanism name, keeping only the RFC 4422 §3.1 `sasl-mech` characters (letters, digits, `-`, `_`).
///
/// The known mechanisms are constants; the filter guards [`Mechanism::Other`], whose content is not validated by
/// its type, so that no mechanism name can smuggle a line break or a space into the command line.
fn push_mechanism(out: &mut Vec<u8>, mechanism: &Mechanism) {
    out.extend(
        mechanism
            .as_str()
            .bytes()
            .filter(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
    );
}

fn push_mail_params(out: &mut Vec<u8>, p: &MailParameters) {
    if let Some(size) = p.size {
        out.extend_from_slice(b" SIZE=");
        push_u64(out, size);
    }
    if let Some(body) = p.body {
        out.extend_from_slice(b" BODY=");
        out.extend_from_slice(body.as_str().as_bytes());
    }
    if p.smtputf8 {
        out.extend_from_slice(b" SMTPUTF8");
    }
    if let Some(ret) = p.ret {
        out.extend_from_slice(b" RET=");
        out.extend_from_slice(ret.as_str().as_bytes());
    }
    if let Some(envid) = &p.envid {
        out.extend_from_slice(b" ENVID=");
        out.extend_from_slice(envid.encoded().as_bytes());
    }
    if p.require_tls {
        out.extend_from_slice(b" REQUIRETLS");
    }
    if let Some(priority) = p.mt_priority {
        out.extend_from_slice(b" MT-PRIORITY=");
        let value = priority.get();
        if value < 0 {
            out.push(b'-');
        }
        push_u64(out, u64::from(value.unsigned_abs()));
    }
    push_extra(out, &p.extra);
}

fn push_rcpt_params(out: &mut Vec<u8>, p: &RcptParameters) {
    if let Some(notify) = p.notify {
        out.extend_from_slice(b" NOTIFY=");
        out.extend_from_slice(notify.to_string().as_bytes());
    }
    if let Some(orcpt) = &p.orcpt {
        out.extend_from_slice(b" ORCPT=");
        out.extend_from_slice(orcpt.encoded().as_bytes());
    }
    push_extra(out, &p.extra);
}

fn push_extra(out: &mut Vec<u8>, extra: &[crate::path::Parameter]) {
    for param in extra {
        out.push(b' ');
        out.extend_from_slice(param.keyword().as_bytes());
        if let Some(value) = param.value() {
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
    }
}

impl Command<'_> {
    /// Appends the command line including its CRLF to `out`.
    ///
    /// Infallible: every argument is already validated, so the only CR and LF written are the final CRLF.
    /// The encoder does not check that the server supports what is sent (extensions, SMTPUTF8 for non-ASCII
    /// addresses, a bare `Postmaster` only in `RCPT TO`): the client state machine decides that.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Self::Ehlo(id) => {
                out.extend_from_slice(b"EHLO ");
                out.extend_from_slice(id.as_str().as_bytes());
            }
            Self::Helo(id) => {
                out.extend_from_slice(b"HELO ");
                out.extend_from_slice(id.as_str().as_bytes());
            }
            Self::Lhlo(id) => {
                out.extend_from_slice(b"LHLO ");
                out.extend_from_slice(id.as_str().as_bytes());
            }
            Self::StartTls => out.extend_from_slice(b"STARTTLS"),
            Self::Auth {
                mechanism,
                initial_response,
            } => {
                out.extend_from_slice(b"AUTH ");
                push_mechanism(out, mechanism);
                match initial_response {
                    None => {}
                    // RFC 4954 §4: a zero-length initial response is sent as a single "=".
                    Some([]) => out.extend_from_slice(b" ="),
                    Some(response) => {
                        out.push(b' ');
                        push_base64(out, response);
                    }
                }
            }
            Self::AuthResponse(response) => push_base64(out, response),
            Self::AuthCancel => out.push(b'*'),
            Self::Mail { from, params } => {
                out.extend_from_slice(b"MAIL FROM:<");
                if let ReversePath::Mailbox(addr) = from {
                    out.extend_from_slice(addr.as_str().as_bytes());
                }
                out.push(b'>');
                push_mail_params(out, params);
            }
            Self::Rcpt { to, params } => {
                out.extend_from_slice(b"RCPT TO:<");
                out.extend_from_slice(to.as_str().as_bytes());
                out.push(b'>');
                push_rcpt_params(out, params);
            }
            Self::Data => out.extend_from_slice(b"DATA"),
            Self::Bdat { size, last } => {
                out.extend_from_slice(b"BDAT ");
                push_u64(out, size);
                if last {
                    out.extend_from_slice(b" LAST");
                }
            }
            Self::Rset => out.extend_from_slice(b"RSET"),
            Self::Noop => out.extend_from_slice(b"NOOP"),
            Self::Quit => out.extend_from_slice(b"QUIT"),
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The verb, for transcripts and error messages: `"EHLO"`, `"MAIL"`, `"RCPT"`, `"BDAT"`...
    ///
    /// The three parts of an authentication exchange ([`Command::Auth`], [`Command::AuthResponse`] and
    /// [`Command::AuthCancel`]) all report `"AUTH"`.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Ehlo(_) => "EHLO",
            Self::Helo(_) => "HELO",
            Self::Lhlo(_) => "LHLO",
            Self::StartTls => "STARTTLS",
            Self::Auth { .. } | Self::AuthResponse(_) | Self::AuthCancel => "AUTH",
            Self::Mail { .. } => "MAIL",
            Self::Rcpt { .. } => "RCPT",
            Self::Data => "DATA",
            Self::Bdat { .. } => "BDAT",
            Self::Rset => "RSET",
            Self::Noop => "NOOP",
            Self::Quit => "QUIT",
        }
    }

    /// True for [`Command::Auth`] and [`Command::AuthResponse`]: their payload may hold credentials, so
    /// transcripts and logs must redact it.
    pub fn is_secret(&self) -> bool {
        matches!(self, Self::Auth { .. } | Self::AuthResponse(_))
    }
}

impl fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REDACTED: &str = "<redacted>";
        match self {
            Self::Ehlo(id) => f.debug_tuple("Ehlo").field(id).finish(),
            Self::Helo(id) => f.debug_tuple("Helo").field(id).finish(),
            Self::Lhlo(id) => f.debug_tuple("Lhlo").field(id).finish(),
            Self::StartTls => f.write_str("StartTls"),
            Self::Auth {
                mechanism,
                initial_response,
            } => f
                .debug_struct("Auth")
                .field("mechanism", mechanism)
                .field("initial_response", &initial_response.map(|_| REDACTED))
                .finish(),
            Self::AuthResponse(_) => f.debug_tuple("AuthResponse").field(&REDACTED).finish(),
            Self::AuthCancel => f.write_str("AuthCancel"),
            Self::Mail { from, params } => f
                .debug_struct("Mail")
                .field("from", from)
                .field("params", params)
                .finish(),
            Self::Rcpt { to, params } => f
                .debug_struct("Rcpt")
                .field("to", to)
                .field("params", params)
                .finish(),
            Self::Data => f.write_str("Data"),
            Self::Bdat { size, last } => f
                .debug_struct("Bdat")
                .field("size", size)
                .field("last", last)
                .finish(),
            Self::Rset => f.write_str("Rset"),
            Self::Noop => f.write_str("Noop"),
            Self::Quit => f.write_str("Quit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::{
        BodyType, EnvelopeId, MtPriority, Notify, OriginalRecipient, Parameter, Ret,
    };
    use proptest::prelude::*;

    fn enc(cmd: Command<'_>) -> String {
        let mut out = Vec::new();
        cmd.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn addr(s: &str) -> Address {
        Address::new(s).unwrap()
    }

    #[test]
    fn greetings_and_simple_commands() {
        let id = ClientId::new("client.example").unwrap();
        let lit = ClientId::from_ip("192.0.2.1".parse().unwrap());
        assert_eq!(enc(Command::Ehlo(&id)), "EHLO client.example\r\n");
        assert_eq!(enc(Command::Helo(&id)), "HELO client.example\r\n");
        assert_eq!(enc(Command::Lhlo(&id)), "LHLO client.example\r\n");
        assert_eq!(enc(Command::Ehlo(&lit)), "EHLO [192.0.2.1]\r\n");
        assert_eq!(
            enc(Command::Ehlo(&ClientId::default())),
            "EHLO localhost\r\n"
        );
        assert_eq!(enc(Command::StartTls), "STARTTLS\r\n");
        assert_eq!(enc(Command::Data), "DATA\r\n");
        assert_eq!(enc(Command::Rset), "RSET\r\n");
        assert_eq!(enc(Command::Noop), "NOOP\r\n");
        assert_eq!(enc(Command::Quit), "QUIT\r\n");
        assert_eq!(
            enc(Command::Bdat {
                size: 100,
                last: true
            }),
            "BDAT 100 LAST\r\n"
        );
        assert_eq!(
            enc(Command::Bdat {
                size: 0,
                last: false
            }),
            "BDAT 0\r\n"
        );
        assert_eq!(
            enc(Command::Bdat {
                size: u64::MAX,
                last: false
            }),
            "BDAT 18446744073709551615\r\n"
        );
    }

    #[test]
    fn encode_appends() {
        let mut out = b"NOOP\r\n".to_vec();
        Command::Quit.encode(&mut out);
        assert_eq!(out, b"NOOP\r\nQUIT\r\n");
    }

    #[test]
    fn auth() {
        let plain = Mechanism::Plain;
        assert_eq!(
            enc(Command::Auth {
                mechanism: &plain,
                initial_response: Some(b"\0user\0pass")
            }),
            "AUTH PLAIN AHVzZXIAcGFzcw==\r\n"
        );
        assert_eq!(
            enc(Command::Auth {
                mechanism: &plain,
                initial_response: Some(b"")
            }),
            "AUTH PLAIN =\r\n"
        );
        assert_eq!(
            enc(Command::Auth {
                mechanism: &Mechanism::Login,
                initial_response: None
            }),
            "AUTH LOGIN\r\n"
        );
        assert_eq!(
            enc(Command::Auth {
                mechanism: &Mechanism::ScramSha256Plus,
                initial_response: None
            }),
            "AUTH SCRAM-SHA-256-PLUS\r\n"
        );
        assert_eq!(enc(Command::AuthResponse(b"user")), "dXNlcg==\r\n");
        assert_eq!(enc(Command::AuthResponse(b"")), "\r\n");
        assert_eq!(enc(Command::AuthCancel), "*\r\n");
        // A hostile `Other` mechanism cannot inject anything.
        let evil = Mechanism::Other("X\r\nMAIL FROM:<a@b> Y_Z-1".into());
        assert_eq!(
            enc(Command::Auth {
                mechanism: &evil,
                initial_response: None
            }),
            "AUTH XMAILFROMabY_Z-1\r\n"
        );
    }

    #[test]
    fn mail() {
        let null = ReversePath::Null;
        let none = MailParameters::default();
        assert_eq!(
            enc(Command::Mail {
                from: &null,
                params: &none
            }),
            "MAIL FROM:<>\r\n"
        );
        let from = ReversePath::Mailbox(addr("a@example.org"));
        assert_eq!(
            enc(Command::Mail {
                from: &from,
                params: &none
            }),
            "MAIL FROM:<a@example.org>\r\n"
        );
        let all = MailParameters {
            size: Some(123),
            body: Some(BodyType::EightBitMime),
            smtputf8: true,
            ret: Some(Ret::Full),
            envid: Some(EnvelopeId::new("xx").unwrap()),
            require_tls: true,
            mt_priority: Some(MtPriority::new(3).unwrap()),
            extra: vec![
                Parameter::new("K", Some("V")).unwrap(),
                Parameter::new("FLAG", None).unwrap(),
            ],
        };
        assert_eq!(
            enc(Command::Mail {
                from: &from,
                params: &all
            }),
            "MAIL FROM:<a@example.org> SIZE=123 BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=xx REQUIRETLS \
             MT-PRIORITY=3 K=V FLAG\r\n"
        );
        let some = MailParameters {
            body: Some(BodyType::BinaryMime),
            ret: Some(Ret::Headers),
            envid: Some(EnvelopeId::new("a b+c").unwrap()),
            mt_priority: Some(MtPriority::new(-9).unwrap()),
            ..MailParameters::default()
        };
        assert_eq!(
            enc(Command::Mail {
                from: &null,
                params: &some
            }),
            "MAIL FROM:<> BODY=BINARYMIME RET=HDRS ENVID=a+20b+2Bc MT-PRIORITY=-9\r\n"
        );
        let seven = MailParameters {
            body: Some(BodyType::SevenBit),
            size: Some(0),
            ..MailParameters::default()
        };
        assert_eq!(
            enc(Command::Mail {
                from: &null,
                params: &seven
            }),
            "MAIL FROM:<> SIZE=0 BODY=7BIT\r\n"
        );
    }

    #[test]
    fn rcpt() {
        let to = addr("b@example.net");
        assert_eq!(
            enc(Command::Rcpt {
                to: &to,
                params: &RcptParameters::default()
            }),
            "RCPT TO:<b@example.net>\r\n"
        );
        let params = RcptParameters {
            notify: Notify::new(true, true, false),
            orcpt: Some(OriginalRecipient::new("rfc822", "b").unwrap()),
            extra: vec![Parameter::new("X-Y", Some("1")).unwrap()],
        };
        assert_eq!(
            enc(Command::Rcpt {
                to: &to,
                params: &params
            }),
            "RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b X-Y=1\r\n"
        );
        let never = RcptParameters {
            notify: Some(Notify::NEVER),
            ..RcptParameters::default()
        };
        let pm = addr("Postmaster");
        assert_eq!(
            enc(Command::Rcpt {
                to: &pm,
                params: &never
            }),
            "RCPT TO:<Postmaster> NOTIFY=NEVER\r\n"
        );
        let quoted = addr("\"john doe\"@[IPv6:::1]");
        assert_eq!(
            enc(Command::Rcpt {
                to: &quoted,
                params: &RcptParameters::default()
            }),
            "RCPT TO:<\"john doe\"@[IPv6:::1]>\r\n"
        );
        let utf8 = addr("ü@x.y");
        let orcpt = RcptParameters {
            orcpt: Some(OriginalRecipient::for_address(&utf8).unwrap()),
            ..RcptParameters::default()
        };
        assert_eq!(
            enc(Command::Rcpt {
                to: &utf8,
                params: &orcpt
            }),
            "RCPT TO:<ü@x.y> ORCPT=utf-8;\\x{FC}@x.y\r\n"
        );
    }

    #[test]
    fn verbs_and_secrets() {
        let id = ClientId::default();
        let m = Mechanism::Plain;
        let null = ReversePath::Null;
        let mp = MailParameters::default();
        let to = addr("a@b");
        let rp = RcptParameters::default();
        let cases: Vec<(Command<'_>, &str, bool)> = vec![
            (Command::Ehlo(&id), "EHLO", false),
            (Command::Helo(&id), "HELO", false),
            (Command::Lhlo(&id), "LHLO", false),
            (Command::StartTls, "STARTTLS", false),
            (
                Command::Auth {
                    mechanism: &m,
                    initial_response: Some(b"secret"),
                },
                "AUTH",
                true,
            ),
            (Command::AuthResponse(b"secret"), "AUTH", true),
            (Command::AuthCancel, "AUTH", false),
            (
                Command::Mail {
                    from: &null,
                    params: &mp,
                },
                "MAIL",
                false,
            ),
            (
                Command::Rcpt {
                    to: &to,
                    params: &rp,
                },
                "RCPT",
                false,
            ),
            (Command::Data, "DATA", false),
            (
                Command::Bdat {
                    size: 1,
                    last: false,
                },
                "BDAT",
                false,
            ),
            (Command::Rset, "RSET", false),
            (Command::Noop, "NOOP", false),
            (Command::Quit, "QUIT", false),
        ];
        for (cmd, verb, secret) in cases {
            assert_eq!(cmd.verb(), verb);
            assert_eq!(cmd.is_secret(), secret, "{cmd:?}");
            let dbg = format!("{cmd:?}");
            assert!(!dbg.contains("secret"), "{dbg}");
            let line = enc(cmd);
            assert!(line.ends_with("\r\n"));
            if !matches!(cmd, Command::AuthResponse(_) | Command::AuthCancel) {
                assert!(line.starts_with(verb), "{line}");
            }
        }
    }

    fn arb_address() -> impl Strategy<Value = Address> {
        prop_oneof![
            "[a-zA-Z0-9.+_=-]{1,20}@[a-z0-9.-]{1,30}",
            "\"[ -~\r\n<>]{0,10}\"@[a-z]{1,5}",
            "[a-zé.]{1,10}@[a-zü.]{1,10}",
            "[Pp]ostmaster",
            any::<String>(),
        ]
        .prop_filter_map("invalid address", |s| Address::new(&s).ok())
    }

    fn arb_param() -> impl Strategy<Value = Parameter> {
        ("[A-Za-z0-9-]{1,8}", proptest::option::of("[ -~\r\n]{1,8}"))
            .prop_filter_map("invalid parameter", |(k, v)| {
                Parameter::new(&k, v.as_deref()).ok()
            })
    }

    fn arb_mail_params() -> impl Strategy<Value = MailParameters> {
        (
            any::<Option<u64>>(),
            proptest::option::of(prop_oneof![
                Just(BodyType::SevenBit),
                Just(BodyType::EightBitMime),
                Just(BodyType::BinaryMime)
            ]),
            any::<bool>(),
            proptest::option::of(prop_oneof![Just(Ret::Full), Just(Ret::Headers)]),
            proptest::option::of("[ -~\r\n]{1,40}"),
            any::<bool>(),
            proptest::option::of(-9i8..=9),
            proptest::collection::vec(arb_param(), 0..3),
        )
            .prop_map(
                |(size, body, smtputf8, ret, envid, require_tls, prio, extra)| MailParameters {
                    size,
                    body,
                    smtputf8,
                    ret,
                    envid: envid.and_then(|e| EnvelopeId::new(&e).ok()),
                    require_tls,
                    mt_priority: prio.map(|p| MtPriority::new(p).unwrap()),
                    extra,
                },
            )
    }

    fn arb_rcpt_params() -> impl Strategy<Value = RcptParameters> {
        (
            proptest::option::of((any::<bool>(), any::<bool>(), any::<bool>())),
            proptest::option::of(("[a-z0-9-]{1,8}", "[ -~\r\n\0é]{1,30}")),
            proptest::collection::vec(arb_param(), 0..3),
        )
            .prop_map(|(notify, orcpt, extra)| RcptParameters {
                notify: notify.map(|(s, f, d)| Notify::new(s, f, d).unwrap_or(Notify::NEVER)),
                orcpt: orcpt.and_then(|(t, a)| OriginalRecipient::new(&t, &a).ok()),
                extra,
            })
    }

    fn assert_single_line(line: &[u8]) -> Result<(), TestCaseError> {
        prop_assert!(line.ends_with(b"\r\n"));
        let body = &line[..line.len() - 2];
        prop_assert!(
            !body.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
            "{:?}",
            String::from_utf8_lossy(line)
        );
        Ok(())
    }

    proptest! {
        #[test]
        fn mail_is_one_line(from in proptest::option::of(arb_address()), params in arb_mail_params()) {
            let from = from.map_or(ReversePath::Null, ReversePath::Mailbox);
            let mut out = Vec::new();
            Command::Mail { from: &from, params: &params }.encode(&mut out);
            assert_single_line(&out)?;
        }

        #[test]
        fn rcpt_is_one_line(to in arb_address(), params in arb_rcpt_params()) {
            let mut out = Vec::new();
            Command::Rcpt { to: &to, params: &params }.encode(&mut out);
            assert_single_line(&out)?;
            let prefix = format!("RCPT TO:<{to}>");
            prop_assert!(out.starts_with(prefix.as_bytes()));
        }

        #[test]
        fn other_commands_are_one_line(
            id in prop_oneof!["[a-z0-9.-]{1,20}", "\\[[0-9.:IPv6]{1,20}\\]", any::<String>()],
            name in any::<String>(),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            ir in any::<bool>(),
            size in any::<u64>(),
            last in any::<bool>(),
        ) {
            let id = ClientId::new(&id).unwrap_or_default();
            let mech = Mechanism::from_name(name.as_bytes());
            let other = Mechanism::Other(name.into());
            let cmds = [
                Command::Ehlo(&id),
                Command::Helo(&id),
                Command::Lhlo(&id),
                Command::StartTls,
                Command::Auth { mechanism: &mech, initial_response: ir.then_some(&payload[..]) },
                Command::Auth { mechanism: &other, initial_response: ir.then_some(&payload[..]) },
                Command::AuthResponse(&payload),
                Command::AuthCancel,
                Command::Data,
                Command::Bdat { size, last },
                Command::Rset,
                Command::Noop,
                Command::Quit,
            ];
            for cmd in cmds {
                let mut out = Vec::new();
                cmd.encode(&mut out);
                assert_single_line(&out)?;
            }
        }
    }
}
