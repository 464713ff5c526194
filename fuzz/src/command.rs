//! Target `command`: command encoding from arbitrary addresses, client names, parameters and AUTH payloads.
//!
//! Every argument goes through the core's validating constructors ([`Address::new`], [`ClientId::new`],
//! [`Parameter::new`], [`EnvelopeId::new`], [`OriginalRecipient::new`], [`MtPriority::new`]...). Either a constructor
//! returns its typed error, or the encoded command:
//! - ends with CRLF and holds no other CR, LF or NUL (one line: no command can carry a second one);
//! - is valid UTF-8, and parses back with the independent RFC 5321/3461/4954/3030 parser below into exactly the
//!   command that was built: same verb, same path, same parameters (DSN values xtext-decoded), same AUTH payload.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use smtp_proto::auth::Mechanism;
use smtp_proto::command::Command;
use smtp_proto::path::{
    Address, BodyType, ClientId, EnvelopeId, MailParameters, MtPriority, Notify, OriginalRecipient,
    Parameter, RcptParameters, Ret, ReversePath,
};

use super::input::{Encoder, Input};
use super::reference;

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    match input.u8() % 10 {
        0 => mail(&mut input),
        1 => rcpt(&mut input),
        2..=4 => hello(&mut input),
        5 => auth(&mut input),
        6 => {
            let payload = input.bytes(400);
            check(
                &Command::AuthResponse(payload),
                &Expected::AuthResponse(payload.to_vec()),
            );
        }
        7 => {
            let size = number(&mut input);
            let last = input.bool();
            check(
                &Command::Bdat { size, last },
                &Expected::Bdat { size, last },
            );
        }
        _ => {
            let (command, text) = [
                (Command::StartTls, "STARTTLS"),
                (Command::Data, "DATA"),
                (Command::Rset, "RSET"),
                (Command::Noop, "NOOP"),
                (Command::Quit, "QUIT"),
                (Command::AuthCancel, "*"),
            ][input.below(6)];
            check(&command, &Expected::Bare(text));
        }
    }
}

/// Seeds: one per command shape.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let s = |max: usize, e: &mut Encoder, v: &[u8]| {
        e.bytes(max, v);
    };
    let mut out = Vec::new();
    // MAIL with every parameter.
    let mut e = Encoder::new();
    e.u8(0);
    s(300, &mut e, b"jane.doe+tag@example.org");
    // flags: SIZE, BODY=BINARYMIME, SMTPUTF8, ENVID, REQUIRETLS, MT-PRIORITY; SIZE small 1234; RET=FULL.
    e.u8(0x7f).u8(0).u16(1234).u8(1);
    s(120, &mut e, b"QQ314159 id+=x");
    e.u8(0xfb).u8(2);
    s(24, &mut e, b"X-FOO");
    e.u8(1);
    s(60, &mut e, b"bar");
    s(24, &mut e, b"HOLDFOR");
    e.u8(0);
    out.push(("mail-all-params", e.finish()));
    // MAIL with a quoted local part and an IPv6 literal, null path.
    let mut e = Encoder::new();
    e.u8(0);
    s(300, &mut e, b"\"a b\\\"<c>@\"@[IPv6:2001:db8::1]");
    e.u8(0).u8(0);
    out.push(("mail-quoted-literal", e.finish()));
    let mut e = Encoder::new();
    e.u8(0);
    s(300, &mut e, b"");
    e.u8(0).u8(0);
    out.push(("mail-null", e.finish()));
    // RCPT with NOTIFY and ORCPT, an SMTPUTF8 address.
    let mut e = Encoder::new();
    e.u8(1);
    s(300, &mut e, "用户@例子.广告".as_bytes());
    e.u8(0x07).u8(0x03);
    s(12, &mut e, b"utf-8");
    s(300, &mut e, "用户+x@例子.广告".as_bytes());
    e.u8(0);
    out.push(("rcpt-utf8-dsn", e.finish()));
    let mut e = Encoder::new();
    e.u8(1);
    s(300, &mut e, b"Postmaster");
    e.u8(0x03).u8(0x00);
    s(12, &mut e, b"rfc822");
    s(300, &mut e, b"a+b=c@example.com");
    e.u8(0);
    out.push(("rcpt-postmaster", e.finish()));
    // EHLO / HELO / LHLO.
    for (name, id) in [
        ("ehlo-domain", &b"client.example.com"[..]),
        ("ehlo-literal", b"[192.0.2.1]"),
    ] {
        let mut e = Encoder::new();
        e.u8(2).u8(0).u8(0);
        s(300, &mut e, id);
        out.push((name, e.finish()));
    }
    let mut e = Encoder::new();
    e.u8(3)
        .u8(1)
        .u8(1)
        .raw(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    out.push(("helo-ipv6", e.finish()));
    // AUTH with and without an initial response, every builtin mechanism.
    for m in 0..8u8 {
        let mut e = Encoder::new();
        e.u8(5).u8(m);
        s(24, &mut e, b"X-CUSTOM_1");
        e.u8(m % 3);
        s(400, &mut e, b"\0user\0pass");
        out.push((
            [
                "auth-0", "auth-1", "auth-2", "auth-3", "auth-4", "auth-5", "auth-6", "auth-7",
            ][usize::from(m)],
            e.finish(),
        ));
    }
    let mut e = Encoder::new();
    e.u8(6);
    s(400, &mut e, b"dXNlcg==");
    out.push(("auth-response", e.finish()));
    let mut e = Encoder::new();
    e.u8(7).u8(1).u16(4096).u16(0).u16(0).u16(0).u8(1);
    out.push(("bdat-last", e.finish()));
    for k in 0..6u8 {
        out.push((
            ["bare-0", "bare-1", "bare-2", "bare-3", "bare-4", "bare-5"][usize::from(k)],
            vec![8, k],
        ));
    }
    out
}

/// A size: small or any u64.
fn number(input: &mut Input<'_>) -> u64 {
    if input.bool() {
        u64::from(input.u16())
            | u64::from(input.u16()) << 16
            | u64::from(input.u16()) << 32
            | u64::from(input.u16()) << 48
    } else {
        u64::from(input.u16())
    }
}

fn text(input: &mut Input<'_>, max: usize) -> String {
    String::from_utf8_lossy(input.bytes(max)).into_owned()
}

fn address(input: &mut Input<'_>) -> Option<Address> {
    let s = text(input, 300);
    let result = Address::new(&s);
    if let Ok(a) = &result {
        assert_eq!(a.as_str(), s);
    }
    result.ok()
}

/// Extra parameters; `None` when a constructor refused one (a typed error: nothing to encode).
fn extras(input: &mut Input<'_>) -> Option<Vec<Parameter>> {
    let n = input.below(5);
    let mut out = Vec::new();
    for _ in 0..n {
        let keyword = text(input, 24);
        let value = input.bool().then(|| text(input, 60));
        out.push(Parameter::new(&keyword, value.as_deref()).ok()?);
    }
    Some(out)
}

fn mail(input: &mut Input<'_>) {
    let path = text(input, 300);
    let from = if path.is_empty() {
        ReversePath::Null
    } else {
        match Address::new(&path) {
            Ok(a) => ReversePath::Mailbox(a),
            Err(_) => return,
        }
    };
    let flags = input.u8();
    let mut params = MailParameters::default();
    if flags & 1 != 0 {
        params.size = Some(number(input));
    }
    params.body = match (flags >> 1) & 3 {
        0 => None,
        1 => Some(BodyType::SevenBit),
        2 => Some(BodyType::EightBitMime),
        _ => Some(BodyType::BinaryMime),
    };
    params.smtputf8 = flags & 8 != 0;
    params.ret = match input.u8() % 3 {
        0 => None,
        1 => Some(Ret::Full),
        _ => Some(Ret::Headers),
    };
    if flags & 16 != 0 {
        let Ok(id) = EnvelopeId::new(&text(input, 120)) else {
            return;
        };
        params.envid = Some(id);
    }
    params.require_tls = flags & 32 != 0;
    if flags & 64 != 0 {
        let Ok(p) = MtPriority::new(input.u8() as i8) else {
            return;
        };
        params.mt_priority = Some(p);
    }
    let Some(extra) = extras(input) else { return };
    params.extra = extra;

    let mut expected = Vec::new();
    if let Some(size) = params.size {
        expected.push(Param::exact("SIZE", Some(&size.to_string())));
    }
    if let Some(body) = params.body {
        let v = match body {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
            _ => "BINARYMIME",
        };
        expected.push(Param::exact("BODY", Some(v)));
    }
    if params.smtputf8 {
        expected.push(Param::exact("SMTPUTF8", None));
    }
    if let Some(ret) = params.ret {
        expected.push(Param::exact(
            "RET",
            Some(if ret == Ret::Full { "FULL" } else { "HDRS" }),
        ));
    }
    if let Some(id) = &params.envid {
        expected.push(Param::Envid(id.as_str().to_owned()));
    }
    if params.require_tls {
        expected.push(Param::exact("REQUIRETLS", None));
    }
    if let Some(p) = params.mt_priority {
        expected.push(Param::exact("MT-PRIORITY", Some(&p.get().to_string())));
    }
    for p in &params.extra {
        expected.push(Param::exact(p.keyword(), p.value()));
    }
    let path = from.address().map(|a| a.as_str().to_owned());
    check(
        &Command::Mail {
            from: &from,
            params: &params,
        },
        &Expected::Mail {
            path,
            params: expected,
        },
    );
}

fn rcpt(input: &mut Input<'_>) {
    let Some(to) = address(input) else { return };
    let flags = input.u8();
    let mut params = RcptParameters::default();
    if flags & 1 != 0 {
        let bits = input.u8();
        params.notify = if bits & 7 == 0 {
            Some(Notify::NEVER)
        } else {
            Notify::new(bits & 1 != 0, bits & 2 != 0, bits & 4 != 0)
        };
    }
    if flags & 2 != 0 {
        let addr_type = text(input, 12);
        let addr = text(input, 300);
        let Ok(orcpt) = OriginalRecipient::new(&addr_type, &addr) else {
            return;
        };
        params.orcpt = Some(orcpt);
    } else if flags & 4 != 0 {
        let Ok(orcpt) = OriginalRecipient::for_address(&to) else {
            return;
        };
        params.orcpt = Some(orcpt);
    }
    let Some(extra) = extras(input) else { return };
    params.extra = extra;

    let mut expected = Vec::new();
    if let Some(n) = params.notify {
        expected.push(Param::Notify {
            never: n.is_never(),
            success: n.on_success(),
            failure: n.on_failure(),
            delay: n.on_delay(),
        });
    }
    if let Some(o) = &params.orcpt {
        expected.push(Param::Orcpt {
            addr_type: o.addr_type().to_owned(),
            addr: o.addr().to_owned(),
        });
    }
    for p in &params.extra {
        expected.push(Param::exact(p.keyword(), p.value()));
    }
    check(
        &Command::Rcpt {
            to: &to,
            params: &params,
        },
        &Expected::Rcpt {
            path: to.as_str().to_owned(),
            params: expected,
        },
    );
}

fn hello(input: &mut Input<'_>) {
    // The selector byte was 2, 3 or 4; read the verb from a fresh byte so that seeds are explicit.
    let verb = input.below(3);
    let id = if input.bool() {
        let ip: std::net::IpAddr = if input.bool() {
            std::net::Ipv6Addr::from(std::array::from_fn::<u8, 16, _>(|_| input.u8())).into()
        } else {
            std::net::Ipv4Addr::from(std::array::from_fn::<u8, 4, _>(|_| input.u8())).into()
        };
        ClientId::from_ip(ip)
    } else {
        let s = text(input, 300);
        match ClientId::new(&s) {
            Ok(id) => {
                assert_eq!(id.as_str(), s);
                id
            }
            Err(_) => return,
        }
    };
    let (command, name) = match verb {
        0 => (Command::Ehlo(&id), "EHLO"),
        1 => (Command::Helo(&id), "HELO"),
        _ => (Command::Lhlo(&id), "LHLO"),
    };
    check(&command, &Expected::Hello(name, id.as_str().to_owned()));
}

fn auth(input: &mut Input<'_>) {
    let which = input.u8() % 8;
    let custom = input.bytes(24);
    let mechanism = match which {
        0 => Mechanism::Plain,
        1 => Mechanism::Login,
        2 => Mechanism::CramMd5,
        3 => Mechanism::XOAuth2,
        4 => Mechanism::OAuthBearer,
        5 => Mechanism::ScramSha256,
        6 => Mechanism::ScramSha256Plus,
        _ => Mechanism::from_name(custom),
    };
    let initial = match input.u8() % 3 {
        0 => None,
        1 => Some(input.bytes(400)),
        _ => Some(&[][..]),
    };
    let name = mechanism.as_str();
    let valid = (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    check(
        &Command::Auth {
            mechanism: &mechanism,
            initial_response: initial,
        },
        &Expected::Auth {
            // A `Mechanism::Other` with characters outside the RFC 4422 alphabet is not built by the client (it only
            // selects mechanisms it implements); for one, only the one-line property is required.
            mechanism: valid.then(|| name.to_owned()),
            initial: initial.map(<[u8]>::to_vec),
        },
    );
}

// ----- the expected command and the independent parser -----

/// An expected ESMTP parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    /// Keyword and value exactly as written.
    Exact(String, Option<String>),
    /// `ENVID=` whose xtext decodes to this.
    Envid(String),
    /// `ORCPT=type;value` with the value decoding to `addr`.
    Orcpt {
        /// The address type.
        addr_type: String,
        /// The decoded address.
        addr: String,
    },
    /// `NOTIFY=` with exactly these flags.
    Notify {
        /// `NEVER`.
        never: bool,
        /// `SUCCESS`.
        success: bool,
        /// `FAILURE`.
        failure: bool,
        /// `DELAY`.
        delay: bool,
    },
}

impl Param {
    fn exact(k: &str, v: Option<&str>) -> Self {
        Self::Exact(k.to_owned(), v.map(str::to_owned))
    }

    fn matches(&self, keyword: &str, value: Option<&str>) -> bool {
        match self {
            Self::Exact(k, v) => k == keyword && v.as_deref() == value,
            Self::Envid(id) => {
                keyword.eq_ignore_ascii_case("ENVID")
                    && value
                        .and_then(|v| reference::xtext_decode(v.as_bytes()))
                        .is_some_and(|d| d == id.as_bytes())
            }
            Self::Orcpt { addr_type, addr } => {
                let Some((t, encoded)) = value.and_then(|v| v.split_once(';')) else {
                    return false;
                };
                let decoded = if t.eq_ignore_ascii_case("utf-8") {
                    reference::utf8_xtext_decode(encoded)
                } else {
                    reference::xtext_decode(encoded.as_bytes())
                        .and_then(|d| String::from_utf8(d).ok())
                };
                keyword.eq_ignore_ascii_case("ORCPT")
                    && t == addr_type
                    && decoded.as_deref() == Some(addr.as_str())
            }
            Self::Notify {
                never,
                success,
                failure,
                delay,
            } => {
                let Some(v) = value else { return false };
                let items: Vec<&str> = v.split(',').collect();
                let has = |name: &str| {
                    items
                        .iter()
                        .filter(|i| i.eq_ignore_ascii_case(name))
                        .count()
                        == 1
                };
                let known = ["NEVER", "SUCCESS", "FAILURE", "DELAY"];
                keyword.eq_ignore_ascii_case("NOTIFY")
                    && items
                        .iter()
                        .all(|i| known.iter().any(|k| i.eq_ignore_ascii_case(k)))
                    && has("NEVER") == *never
                    && has("SUCCESS") == *success
                    && has("FAILURE") == *failure
                    && has("DELAY") == *delay
                    && (!*never || items.len() == 1)
            }
        }
    }
}

/// What the encoded line must say.
#[derive(Clone, Debug)]
pub enum Expected {
    /// `MAIL FROM:<path>` (`None`: `<>`) and parameters.
    Mail {
        /// The path.
        path: Option<String>,
        /// The parameters, in any order.
        params: Vec<Param>,
    },
    /// `RCPT TO:<path>` and parameters.
    Rcpt {
        /// The path.
        path: String,
        /// The parameters, in any order.
        params: Vec<Param>,
    },
    /// `EHLO`/`HELO`/`LHLO` and the client name.
    Hello(&'static str, String),
    /// `AUTH mech [response]`.
    Auth {
        /// The mechanism name (`None`: not a valid SASL name; only the one-line property is checked).
        mechanism: Option<String>,
        /// The raw initial response.
        initial: Option<Vec<u8>>,
    },
    /// A base64 line.
    AuthResponse(Vec<u8>),
    /// `BDAT n [LAST]`.
    Bdat {
        /// The chunk size.
        size: u64,
        /// LAST.
        last: bool,
    },
    /// A line without arguments.
    Bare(&'static str),
}

/// Encodes `command` and checks the line against `expected`.
pub fn check(command: &Command<'_>, expected: &Expected) {
    let mut out = b"previous\r\n".to_vec();
    command.encode(&mut out);
    assert!(out.starts_with(b"previous\r\n"), "encode must append");
    let line = &out[10..];
    check_line(line, expected).unwrap_or_else(|why| {
        panic!(
            "{why}: {:?} encoded as {:?}",
            expected,
            String::from_utf8_lossy(line)
        )
    });
}

/// The one-line property, then the parse-back.
pub fn check_line(line: &[u8], expected: &Expected) -> Result<(), String> {
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return Err("no CRLF at the end".into());
    };
    if let Some(b) = body.iter().find(|&&b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(format!("byte {b:#04x} inside the line"));
    }
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8".to_string())?;
    match expected {
        Expected::Mail { path, params } => {
            let rest = strip_verb(text, "MAIL FROM:")?;
            let (parsed, rest) = parse_path(rest)?;
            if parsed != path.as_deref() {
                return Err(format!("path {parsed:?}"));
            }
            check_params(rest, params)
        }
        Expected::Rcpt { path, params } => {
            let rest = strip_verb(text, "RCPT TO:")?;
            let (parsed, rest) = parse_path(rest)?;
            if parsed != Some(path.as_str()) {
                return Err(format!("path {parsed:?}"));
            }
            check_params(rest, params)
        }
        Expected::Hello(verb, id) => {
            let rest = strip_verb(text, verb)?;
            let rest = rest.strip_prefix(' ').ok_or("no space after the verb")?;
            if rest != id {
                return Err(format!("client name {rest:?}"));
            }
            let end = parse_domain_or_literal(rest, 0, false)?;
            if end != rest.len() {
                return Err("bytes after the client name".into());
            }
            Ok(())
        }
        Expected::Auth { mechanism, initial } => {
            let rest = strip_verb(text, "AUTH ")?;
            let Some(mechanism) = mechanism else {
                return Ok(());
            };
            let (mech, response) = match rest.split_once(' ') {
                Some((m, r)) => (m, Some(r)),
                None => (rest, None),
            };
            if mech != mechanism {
                return Err(format!("mechanism {mech:?}"));
            }
            let decoded = match response {
                None => None,
                Some("=") => Some(Vec::new()),
                Some("") => return Err("empty initial response".into()),
                Some(r) => Some(
                    BASE64
                        .decode(r)
                        .map_err(|e| format!("initial response: {e}"))?,
                ),
            };
            if decoded != *initial {
                return Err("initial response".into());
            }
            Ok(())
        }
        Expected::AuthResponse(payload) => {
            let decoded = BASE64.decode(text).map_err(|e| format!("response: {e}"))?;
            if decoded != *payload || text == "*" {
                return Err("response".into());
            }
            Ok(())
        }
        Expected::Bdat { size, last } => {
            let rest = strip_verb(text, "BDAT ")?;
            let (n, l) = match rest.split_once(' ') {
                Some((n, "LAST")) => (n, true),
                Some(_) => return Err("BDAT end marker".into()),
                None => (rest, false),
            };
            if n.is_empty()
                || !n.bytes().all(|b| b.is_ascii_digit())
                || n.parse::<u64>().ok() != Some(*size)
                || l != *last
            {
                return Err("BDAT arguments".into());
            }
            Ok(())
        }
        Expected::Bare(verb) => {
            if text == *verb {
                Ok(())
            } else {
                Err("verb".into())
            }
        }
    }
}

fn strip_verb<'a>(text: &'a str, verb: &str) -> Result<&'a str, String> {
    text.strip_prefix(verb)
        .ok_or_else(|| format!("does not start with {verb:?}"))
}

/// `esmtp-param *(SP esmtp-param)` after a path, matched against `expected` in any order.
fn check_params(rest: &str, expected: &[Param]) -> Result<(), String> {
    let mut parsed: Vec<(&str, Option<&str>)> = Vec::new();
    if !rest.is_empty() {
        let rest = rest
            .strip_prefix(' ')
            .ok_or("no space before the parameters")?;
        for param in rest.split(' ') {
            let (k, v) = match param.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (param, None),
            };
            let keyword_ok = k.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            // esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 with SMTPUTF8 (RFC 6531 §3.3).
            let value_ok = v.is_none_or(|v| {
                !v.is_empty() && v.bytes().all(|b| matches!(b, 33..=60 | 62..=126 | 0x80..))
            });
            if !keyword_ok || !value_ok {
                return Err(format!("malformed parameter {param:?}"));
            }
            parsed.push((k, v));
        }
    }
    if parsed.len() != expected.len() {
        return Err(format!(
            "{} parameters, expected {}",
            parsed.len(),
            expected.len()
        ));
    }
    let mut used = vec![false; parsed.len()];
    for e in expected {
        let Some(i) = (0..parsed.len()).find(|&i| !used[i] && e.matches(parsed[i].0, parsed[i].1))
        else {
            return Err(format!("parameter {e:?} missing from {parsed:?}"));
        };
        used[i] = true;
    }
    Ok(())
}

/// `"<" Mailbox ">"` or `<>` (RFC 5321 §4.1.2), and `<Postmaster>`. RFC 5321 allows the bare `Postmaster` only in
/// RCPT TO; the encoder documents that it leaves that rule to the caller, so it is accepted in both here. Returns
/// the mailbox and the rest of the line.
pub fn parse_path(s: &str) -> Result<(Option<&str>, &str), String> {
    let inner = s.strip_prefix('<').ok_or("no '<'")?;
    if let Some(rest) = inner.strip_prefix('>') {
        return Ok((None, rest));
    }
    let b = inner.as_bytes();
    // Local part.
    let mut i = 0;
    if b.first() == Some(&b'"') {
        i = 1;
        loop {
            match b.get(i) {
                None => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    i += 1;
                    break;
                }
                Some(b'\\') => match b.get(i + 1) {
                    Some(32..=126) => i += 2,
                    _ => return Err("bad quoted pair".into()),
                },
                Some(32..=33 | 35..=91 | 93..=126 | 0x80..) => i += 1,
                Some(c) => return Err(format!("byte {c:#04x} in a quoted string")),
            }
        }
    } else {
        let mut atom = 0;
        loop {
            match b.get(i) {
                Some(&c)
                    if c.is_ascii_alphanumeric()
                        || b"!#$%&'*+-/=?^_`{|}~".contains(&c)
                        || c >= 0x80 =>
                {
                    atom += 1;
                    i += 1;
                }
                Some(b'.') if atom > 0 => {
                    atom = 0;
                    i += 1;
                }
                _ => break,
            }
        }
        if atom == 0 {
            return Err("empty atom in the local part".into());
        }
    }
    let local_len = i;
    if b.get(i) == Some(&b'>') && inner[..i].eq_ignore_ascii_case("postmaster") {
        return Ok((Some(&inner[..i]), &inner[i + 1..]));
    }
    if b.get(i) != Some(&b'@') {
        return Err("no '@' after the local part".into());
    }
    let domain_start = i + 1;
    let end = parse_domain_or_literal(inner, domain_start, true)?;
    if b.get(end) != Some(&b'>') {
        return Err("no '>' after the domain".into());
    }
    if local_len > 64 || end - domain_start > 255 || end + 2 > 256 {
        return Err("RFC 5321 §4.5.3.1 size limits".into());
    }
    Ok((Some(&inner[..end]), &inner[end + 1..]))
}

/// A domain (letters, digits, hyphens, UTF-8 U-labels with `utf8`) or an address literal starting at `start`;
/// returns where it ends.
fn parse_domain_or_literal(s: &str, start: usize, utf8: bool) -> Result<usize, String> {
    let b = s.as_bytes();
    if b.get(start) == Some(&b'[') {
        let close = s[start..].find(']').ok_or("unterminated address literal")? + start;
        let inner = &s[start + 1..close];
        let ok = if inner.len() >= 5 && inner.as_bytes()[..5].eq_ignore_ascii_case(b"IPv6:") {
            inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
        } else {
            inner.parse::<std::net::Ipv4Addr>().is_ok()
        };
        return if ok {
            Ok(close + 1)
        } else {
            Err(format!("address literal {inner:?}"))
        };
    }
    let mut i = start;
    loop {
        let label_start = i;
        while let Some(&c) = b.get(i) {
            if c.is_ascii_alphanumeric() || c == b'-' || (utf8 && c >= 0x80) {
                i += 1;
            } else {
                break;
            }
        }
        let label = &b[label_start..i];
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return Err(format!("domain label {:?}", String::from_utf8_lossy(label)));
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
        } else {
            return Ok(i);
        }
    }
}
