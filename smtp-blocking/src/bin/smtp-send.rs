//! `smtp-send`: send one message through an SMTP or LMTP server, safely by default.
//!
//! TLS mode `auto` unless told otherwise (STARTTLS required, implicit TLS on 465 or when the port turns out to
//! speak it; never plaintext), passwords never on the command line, a transcript with AUTH redacted, machine-readable
//! output with `--json`, and sysexits exit codes (see `--help`).

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use smtp_blocking::{
    Address, BodyType, ClientId, ConnectOptions, Connection, Credentials, Envelope, Error,
    Mechanism, Protocol, ReversePath, SendReport, TlsMode, TlsUsed, TranscriptLine, stage_name,
};

const AFTER_HELP: &str = "\
PASSWORD
  The password is never taken from the command line. It comes from the environment variable named by
  --password-env, else from SMTP_PASSWORD, else from a prompt when stdin is a terminal.

TLS MODES
  auto (default)  port 465: implicit TLS; other ports: STARTTLS required. Switches to the other mode when the server
                  shows it speaks it (a plaintext greeting on an implicit attempt; no greeting on a STARTTLS attempt
                  within 3 s, except on port 25). Never plaintext.
  implicit        TLS from the first byte (smtps://, port 465).
  starttls        STARTTLS required.
  opportunistic   STARTTLS when offered, plaintext otherwise.
  none            plaintext (trusted test servers only).
  With --unix-socket (or lmtp+unix:///path), the default is none: the socket is local; auto means STARTTLS required.

TRANSPORTS
  --unix-socket PATH      a Unix-domain socket, e.g. Dovecot's LMTP socket (with --lmtp or lmtp+unix:///PATH)
  --socks5 HOST:PORT      through a SOCKS5 proxy; --socks5-user NAME with the password in SOCKS5_PASSWORD or
                          the variable named by --socks5-password-env
  --source-address IP     bind to this local address before connecting

EXIT STATUS (sysexits)
  0   every recipient accepted the message
  64  usage error (bad arguments, URL, address or password source)
  65  bad message: unreadable, or not acceptable to this server as it is (SMTPUTF8, 8BITMIME, SIZE)
  68  unknown host
  69  permanent rejection (5xx); also a partial acceptance whose refusals were all permanent
  75  temporary failure or timeout (4xx, 421, connection lost or refused); also outcome unknown (the end of the
      message was sent and no verdict came: retrying may deliver it twice) and a partial acceptance with a 4xx
  76  protocol error (malformed replies, bytes injected after STARTTLS)
  77  authentication refused
  78  TLS or configuration error (TLS mode mismatch, untrusted certificate, STARTTLS not offered)";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TlsArg {
    Auto,
    Implicit,
    Starttls,
    Opportunistic,
    None,
}

impl From<TlsArg> for TlsMode {
    fn from(t: TlsArg) -> Self {
        match t {
            TlsArg::Auto => TlsMode::Auto,
            TlsArg::Implicit => TlsMode::Implicit,
            TlsArg::Starttls => TlsMode::StartTls,
            TlsArg::Opportunistic => TlsMode::Opportunistic,
            TlsArg::None => TlsMode::None,
        }
    }
}

/// Send one message through an SMTP (or LMTP) server.
#[derive(Debug, Parser)]
#[command(name = "smtp-send", version, after_help = AFTER_HELP)]
struct Cli {
    /// The server address.
    #[arg(
        long,
        value_name = "SERVER",
        help = "The server: host[:port], smtp://[user@]host[:port] (587), smtps://[user@]host[:port] (465), lmtp://host[:port]"
    )]
    server: String,
    /// The envelope sender (MAIL FROM), also the From header of a composed message
    #[arg(long, value_name = "ADDR")]
    from: String,
    /// An envelope recipient (RCPT TO); repeat for several
    #[arg(long = "to", value_name = "ADDR", required = true)]
    to: Vec<String>,
    /// TLS mode [default: auto, or implicit for smtps://]
    #[arg(long, value_enum, value_name = "MODE")]
    tls: Option<TlsArg>,
    /// Also trust the CA certificates in this PEM file
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// The name to send in EHLO/LHLO
    #[arg(long, value_name = "NAME")]
    helo: Option<String>,
    /// Speak LMTP (RFC 2033): LHLO and one verdict per recipient
    #[arg(long)]
    lmtp: bool,
    /// Authenticate as this user
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Read the password from this environment variable
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// Use this SASL mechanism (PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER) instead of the strongest offered
    #[arg(long, value_name = "MECHANISM")]
    auth: Option<String>,
    /// Allow sending credentials without TLS
    #[arg(long)]
    allow_insecure_auth: bool,
    /// Cap every stage's deadline (and the connect timeout) at this many seconds
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Send this raw RFC 5322 message (a file, or - for stdin) instead of composing one
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["subject", "body", "body_file", "attach", "header"])]
    message: Option<String>,
    /// Subject of the composed message
    #[arg(long, value_name = "TEXT")]
    subject: Option<String>,
    /// Text body of the composed message
    #[arg(long, value_name = "TEXT", conflicts_with = "body_file")]
    body: Option<String>,
    /// Read the text body of the composed message from this file
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Attach this file; repeat for several
    #[arg(long, value_name = "FILE")]
    attach: Vec<PathBuf>,
    /// Add a header to the composed message; repeat for several
    #[arg(long, value_name = "Name: value")]
    header: Vec<String>,
    /// Print the SMTP dialogue to stderr (AUTH redacted), with the time of each line and each reply's latency
    #[arg(long)]
    transcript: bool,
    /// Print one JSON object on stdout: outcome, recipients, error, tls
    #[arg(long)]
    json: bool,
    /// Connect to this Unix-domain socket instead of a host and port (TLS none unless --tls says otherwise; the
    /// name TLS verifies is localhost, or the --server host)
    #[arg(long, value_name = "PATH", conflicts_with_all = ["socks5", "source_address"])]
    unix_socket: Option<PathBuf>,
    /// Reach the server through this SOCKS5 proxy (RFC 1928); the proxy resolves the server's name
    #[arg(long, value_name = "HOST:PORT")]
    socks5: Option<String>,
    /// Authenticate to the SOCKS5 proxy as this user (RFC 1929); the password comes from --socks5-password-env
    /// or SOCKS5_PASSWORD
    #[arg(long, value_name = "NAME", requires = "socks5")]
    socks5_user: Option<String>,
    /// Read the SOCKS5 proxy password from this environment variable
    #[arg(long, value_name = "VAR", requires = "socks5_user")]
    socks5_password_env: Option<String>,
    /// Connect from this local IP address (bind before connect)
    #[arg(long, value_name = "IP")]
    source_address: Option<std::net::IpAddr>,
}

/// A usage problem: exit 64.
struct Usage(String);

enum Failure {
    Usage(Usage),
    Error(Error, Option<TlsUsed>),
}

impl From<Usage> for Failure {
    fn from(u: Usage) -> Self {
        Self::Usage(u)
    }
}

fn usage(msg: impl Into<String>) -> Usage {
    Usage(msg.into())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(64),
            };
        }
    };
    let json = cli.json;
    let recipients = cli.to.clone();
    match run(cli) {
        Ok(report) => {
            if json {
                print_json(&report_json(&report));
            } else {
                print_human(&report);
            }
            ExitCode::from(report.exit_code())
        }
        Err(Failure::Usage(Usage(msg))) => {
            if json {
                print_json(&json!({
                    "outcome": "error",
                    "recipients": unsent(&recipients),
                    "error": {"kind": "usage", "stage": Value::Null, "message": msg},
                    "tls": "none",
                }));
            }
            eprintln!("smtp-send: {msg}");
            ExitCode::from(64)
        }
        Err(Failure::Error(e, tls)) => {
            if json {
                print_json(&json!({
                    "outcome": "error",
                    "recipients": unsent(&recipients),
                    "error": error_json(&e),
                    "tls": tls.unwrap_or(TlsUsed::None).as_str(),
                }));
            }
            eprintln!("smtp-send: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn print_json(v: &Value) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn unsent(recipients: &[String]) -> Value {
    Value::Array(
        recipients
            .iter()
            .map(|a| json!({"address": a, "accepted": false, "code": null, "enhanced": null, "text": null}))
            .collect(),
    )
}

fn error_json(e: &Error) -> Value {
    json!({"kind": e.kind().name(), "stage": stage_name(e.stage()), "message": e.to_string()})
}

fn report_json(r: &SendReport) -> Value {
    let recipients: Vec<Value> = r
        .recipients
        .iter()
        .map(|x| {
            json!({
                "address": x.address,
                "accepted": x.accepted,
                "code": x.code(),
                "enhanced": x.enhanced().map(|e| e.to_string()),
                "text": x.text(),
            })
        })
        .collect();
    json!({
        "outcome": r.outcome.as_str(),
        "recipients": recipients,
        "error": r.error.as_ref().map(error_json),
        "tls": r.tls.as_str(),
        "transactions": r.transactions,
    })
}

fn print_human(r: &SendReport) {
    let verdict = r
        .final_reply
        .as_ref()
        .map(|x| format!(": {x}"))
        .unwrap_or_default();
    println!(
        "{} ({} of {} recipients, TLS {}){verdict}",
        r.outcome,
        r.accepted_count(),
        r.recipients.len(),
        r.tls
    );
    for x in r.recipients.iter().filter(|x| !x.accepted) {
        match &x.reply {
            Some(reply) => println!("  {}: {reply}", x.address),
            None => println!("  {}: no verdict", x.address),
        }
    }
    if let Some(e) = &r.error {
        eprintln!("smtp-send: {e}");
    }
}

fn parse_address(s: &str, what: &str) -> Result<Address, Usage> {
    s.parse::<Address>()
        .map_err(|e| usage(format!("invalid {what} address {s:?}: {e}")))
}

fn password(user: &str, var: Option<&str>) -> Result<String, Usage> {
    if let Some(var) = var {
        return std::env::var(var)
            .map_err(|_| usage(format!("--password-env {var}: that variable is not set")));
    }
    if let Ok(p) = std::env::var("SMTP_PASSWORD") {
        return Ok(p);
    }
    if io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("Password for {user}: "))
            .map_err(|e| usage(format!("reading the password failed: {e}")));
    }
    Err(usage(format!(
        "no password for {user}: use --password-env VAR, set SMTP_PASSWORD, or run on a terminal to be prompted"
    )))
}

/// The SOCKS5 proxy password: from the variable named by --socks5-password-env, else SOCKS5_PASSWORD (never from
/// the command line).
fn socks5_password(user: &str, var: Option<&str>) -> Result<String, Usage> {
    let var = var.unwrap_or("SOCKS5_PASSWORD");
    std::env::var(var).map_err(|_| {
        usage(format!(
            "no SOCKS5 password for {user}: set {var} (or name another variable with --socks5-password-env)"
        ))
    })
}

fn options(cli: &Cli) -> Result<ConnectOptions, Failure> {
    let mut o =
        ConnectOptions::from_url(&cli.server).map_err(|e| usage(format!("--server: {e}")))?;
    if let Some(path) = &cli.unix_socket {
        // The --server host (its scheme gives the protocol) stays the name TLS verifies.
        let mut unix = ConnectOptions::unix(path.clone());
        unix.host = o.host.clone();
        unix.session = o.session.clone();
        if o.tls == TlsMode::Implicit {
            unix.tls = TlsMode::Implicit;
        }
        if o.unix_socket.is_some() {
            return Err(
                usage("--unix-socket and a +unix:// --server URL: give the socket once").into(),
            );
        }
        o = unix;
    }
    if let Some(proxy) = &cli.socks5 {
        let credentials = match &cli.socks5_user {
            Some(user) => Some((
                user.clone(),
                socks5_password(user, cli.socks5_password_env.as_deref())?.into(),
            )),
            None => None,
        };
        o = o.with_socks5(proxy.clone(), credentials);
    }
    if let Some(ip) = cli.source_address {
        o = o.with_local_address(ip);
    }
    let url_user = o
        .session
        .credentials
        .as_ref()
        .map(|c| c.username().to_owned());
    if o.session.credentials.is_some() && !smtp_blocking::options::password_missing(&o) {
        return Err(usage(
            "--server: do not put the password in the URL (other users can see command lines); use \
             --password-env VAR or SMTP_PASSWORD",
        )
        .into());
    }
    o.session.credentials = None;
    if let Some(t) = cli.tls {
        let mode = TlsMode::from(t);
        if o.tls == TlsMode::Implicit
            && cli.server.to_ascii_lowercase().starts_with("smtps://")
            && mode != o.tls
        {
            return Err(usage(format!(
                "--tls {} contradicts smtps:// (implicit TLS): use smtp://{} with --tls {}",
                mode,
                o.authority(),
                mode
            ))
            .into());
        }
        o.tls = mode;
    }
    if let Some(ca) = &cli.ca_file {
        o = o.with_ca_file(ca.clone());
    }
    if let Some(helo) = &cli.helo {
        let id = helo
            .parse::<ClientId>()
            .map_err(|e| usage(format!("--helo {helo:?}: {e}")))?;
        o.session.client_id = id;
    }
    if cli.lmtp {
        o.session.protocol = Protocol::Lmtp;
    }
    let mechanism = cli
        .auth
        .as_deref()
        .map(|m| Mechanism::from_name(m.as_bytes()));
    if let Some(Mechanism::Other(name)) = &mechanism {
        return Err(usage(format!(
            "--auth {name}: unsupported (use PLAIN, LOGIN, CRAM-MD5, XOAUTH2 or OAUTHBEARER)"
        ))
        .into());
    }
    let user = cli.user.clone().or(url_user);
    match &user {
        Some(user) => {
            let secret = password(user, cli.password_env.as_deref())?;
            o.session.credentials = Some(match mechanism {
                Some(Mechanism::XOAuth2 | Mechanism::OAuthBearer) => {
                    Credentials::oauth2(user.clone(), secret)
                }
                _ => Credentials::password(user.clone(), secret),
            });
        }
        None if cli.password_env.is_some() || cli.auth.is_some() => {
            return Err(
                usage("--password-env and --auth need --user (or smtp://user@host)").into(),
            );
        }
        None => {}
    }
    if let Some(m) = mechanism {
        o.session.mechanisms = Some(vec![m]);
    }
    o.session.allow_insecure_auth = cli.allow_insecure_auth;
    if let Some(t) = cli.timeout {
        if !(t.is_finite() && t > 0.0 && t < 1e9) {
            return Err(usage(format!("--timeout {t}: give a positive number of seconds")).into());
        }
        o = o.with_timeout_cap(Duration::from_secs_f64(t));
    }
    if cli.transcript {
        o = o.with_transcript(transcript_printer());
    }
    o.validate().map_err(|e| usage(e.to_string()))?;
    Ok(o)
}

/// Prints transcript lines on stderr: time since start, direction, text, and for replies the wait since the last
/// command.
fn transcript_printer() -> smtp_blocking::TranscriptSink {
    let state = Arc::new(Mutex::new((Instant::now(), None::<Instant>)));
    Arc::new(move |line: &TranscriptLine| {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let (start, last_client) = &mut *st;
        let t = line.at.saturating_duration_since(*start).as_secs_f64();
        let latency = match line.direction {
            smtp_blocking::Direction::Client => {
                *last_client = Some(line.at);
                String::new()
            }
            smtp_blocking::Direction::Server => last_client
                .map(|c| {
                    format!(
                        "  (+{} ms)",
                        line.at.saturating_duration_since(c).as_millis()
                    )
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        eprintln!("[{t:8.3}s] {line}{latency}");
    })
}

/// The message to send: a source to stream and its size when known, or the composed message in memory.
struct Body {
    source: Box<dyn Read>,
    size: Option<u64>,
    composed: Option<Arc<[u8]>>,
    /// Opens the message again from its start (not for standard input), so that recipients the server defers
    /// (RFC 9422 RCPTMAX, a 452 "too many recipients") get it in a further transaction.
    reopen: Option<Reopen>,
}

type Reopen = Box<dyn FnMut() -> io::Result<Box<dyn Read>>>;

fn message_id(from: &Address) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let domain = from.domain().unwrap_or("localhost");
    format!("{nanos:x}.{:x}@{domain}", std::process::id())
}

fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "pdf" => "application/pdf",
        "json" => "application/json",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

fn compose(cli: &Cli, from: &Address) -> Result<Body, Failure> {
    use mail_builder::MessageBuilder;
    use mail_builder::headers::raw::Raw;

    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p).map_err(|e| {
            Failure::Error(
                Error::new(
                    smtp_blocking::ErrorKind::BodyRead,
                    smtp_blocking::Stage::Connect,
                )
                .with_context(format!("{what} {}", p.display()))
                .with_cause(io::Error::new(
                    e.kind(),
                    format!("{what} {}: {e}", p.display()),
                )),
                None,
            )
        })
    };
    let text = match (&cli.body, &cli.body_file) {
        (Some(b), _) => b.clone(),
        (None, Some(p)) => String::from_utf8(read(p, "body file")?).map_err(|_| {
            usage(format!(
                "--body-file {}: not UTF-8 text (attach it instead)",
                p.display()
            ))
        })?,
        (None, None) => String::new(),
    };
    let mut builder = MessageBuilder::new()
        .from(from.as_str())
        .to(cli.to.iter().map(|t| t.as_str()).collect::<Vec<_>>())
        .message_id(message_id(from))
        .text_body(text);
    if let Some(s) = &cli.subject {
        builder = builder.subject(s.as_str());
    }
    for h in &cli.header {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| usage(format!("--header {h:?}: expected \"Name: value\"")))?;
        let name = name.trim();
        let ok_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !ok_name || value.contains(['\r', '\n']) {
            return Err(usage(format!(
                "--header {h:?}: invalid header name or line break in the value"
            ))
            .into());
        }
        builder = builder.header(name.to_owned(), Raw::new(value.trim().to_owned()));
    }
    for path in &cli.attach {
        let data = read(path, "attachment")?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".to_owned());
        builder = builder.attachment(content_type(path), name, data);
    }
    let bytes = builder
        .write_to_vec()
        .map_err(|e| usage(format!("composing the message failed: {e}")))?;
    let bytes: Arc<[u8]> = bytes.into();
    let again = Arc::clone(&bytes);
    Ok(Body {
        size: Some(bytes.len() as u64),
        source: Box::new(io::Cursor::new(Arc::clone(&bytes))),
        composed: Some(bytes),
        reopen: Some(Box::new(move || {
            Ok(Box::new(io::Cursor::new(Arc::clone(&again))) as Box<dyn Read>)
        })),
    })
}

fn raw_message(spec: &str) -> Result<Body, Failure> {
    if spec == "-" {
        return Ok(Body {
            source: Box::new(io::stdin()),
            size: None,
            composed: None,
            reopen: None,
        });
    }
    let file = File::open(spec).map_err(|e| {
        Failure::Error(
            Error::new(
                smtp_blocking::ErrorKind::BodyRead,
                smtp_blocking::Stage::Connect,
            )
            .with_cause(io::Error::new(e.kind(), format!("--message {spec}: {e}"))),
            None,
        )
    })?;
    let size = file.metadata().ok().map(|m| m.len());
    let path = PathBuf::from(spec);
    Ok(Body {
        source: Box::new(io::BufReader::with_capacity(64 * 1024, file)),
        size,
        composed: None,
        reopen: Some(Box::new(move || {
            let file = File::open(&path)?;
            Ok(Box::new(io::BufReader::with_capacity(64 * 1024, file)) as Box<dyn Read>)
        })),
    })
}

/// Progress on stderr (bytes sent, rate) for bodies over 1 MiB, when stderr is a terminal.
struct ProgressLine {
    enabled: bool,
    start: Instant,
    last: Instant,
    total: Option<u64>,
    shown: bool,
}

impl ProgressLine {
    fn new(total: Option<u64>) -> Self {
        let now = Instant::now();
        Self {
            enabled: io::stderr().is_terminal() && total.is_none_or(|t| t > 1024 * 1024),
            start: now,
            last: now,
            total,
            shown: false,
        }
    }

    fn update(&mut self, sent: u64) {
        let now = Instant::now();
        if !self.enabled || now.duration_since(self.last) < Duration::from_millis(200) {
            return;
        }
        self.last = now;
        let secs = now.duration_since(self.start).as_secs_f64().max(0.001);
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let of = self
            .total
            .map(|t| format!(" of {:.1} MiB", mib(t)))
            .unwrap_or_default();
        eprint!(
            "\rsent {:.1} MiB{of} ({:.1} MiB/s)   ",
            mib(sent),
            mib(sent) / secs
        );
        self.shown = true;
    }

    fn done(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

fn run(cli: Cli) -> Result<SendReport, Failure> {
    let from = parse_address(&cli.from, "--from")?;
    let to = cli
        .to
        .iter()
        .map(|t| parse_address(t, "--to"))
        .collect::<Result<Vec<_>, _>>()?;
    let options = options(&cli)?;
    let body = match &cli.message {
        Some(spec) => raw_message(spec)?,
        None => compose(&cli, &from)?,
    };
    let conn = Connection::connect(&options).map_err(|e| Failure::Error(e, None))?;
    let mut envelope = Envelope::new(ReversePath::Mailbox(from), to);
    if let Some(size) = body.size {
        envelope = envelope.with_size(size);
    }
    match &body.composed {
        // A composed message is scanned: BODY=8BITMIME / SMTPUTF8 only when it needs them.
        Some(bytes) => envelope = envelope.declare_body(bytes),
        // A raw message is streamed unseen: declare 8-bit when the server takes it (RFC 6152), as it may hold any.
        None => {
            let eight_bit_ok = conn
                .capabilities()
                .is_some_and(|c| c.supports(smtp_blocking::smtp_proto::Extension::EightBitMime));
            if eight_bit_ok {
                envelope = envelope.with_body_type(BodyType::EightBitMime);
            }
        }
    }
    let tls = conn.tls();
    if let (true, Some(mut reopen)) = (envelope.recipients.len() > 1, body.reopen) {
        // Several recipients: the server may defer some (RCPTMAX, 452), so the message may need a further
        // transaction; QUIT follows separately.
        let mut conn = conn;
        let result = conn.send_reopen(&envelope, &mut reopen);
        let _ = conn.quit();
        return result.map_err(|e| Failure::Error(e, Some(tls)));
    }
    let mut progress = ProgressLine::new(body.size);
    // QUIT goes out with the end of the message (pipelined when the server allows); a failing QUIT changes
    // nothing about the message's fate.
    let result = conn.send_with_progress_and_quit(&envelope, body.source, |n| progress.update(n));
    progress.done();
    let report = result.map_err(|e| Failure::Error(e, Some(tls)))?;
    Ok(report)
}
