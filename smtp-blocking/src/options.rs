//! Where to connect and how: [`ConnectOptions`] (from a URL or a builder), the [`TlsMode`] including `Auto` and its
//! port rules, and [`TlsOptions`] (trust anchors, client certificate, SNI).
//!
//! Nothing here does I/O, so the smol adapter reuses it as is.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use smtp_proto::{
    ClientId, Config, Credentials, Mechanism, Mismatch, Protocol, Stage, Timeouts, TlsPolicy,
};

use crate::error::{Error, ErrorKind};
use crate::transcript::TranscriptSink;
use crate::transport::Socks5Proxy;

/// The TLS mode a user asks for. [`TlsMode::Auto`] is the default when only a host and port are given.
///
/// * `Auto`: port 465 starts with implicit TLS, every other port with STARTTLS (required). If an implicit-TLS attempt
///   receives a plaintext `220` greeting, it reconnects with STARTTLS; if a STARTTLS attempt sees no greeting within
///   [`ConnectOptions::probe_delay`] (never on port 25), an implicit-TLS connection is tried in parallel and the
///   first one to complete a verified TLS handshake is used. It never falls back to plaintext.
/// * `Implicit`: TLS from the first byte (RFC 8314, `smtps://`).
/// * `StartTls`: STARTTLS is required; the session never continues in plaintext (RFC 3207).
/// * `Opportunistic`: STARTTLS when offered, plaintext otherwise. Vulnerable to downgrade: only for relays.
/// * `None`: plaintext only. Only when asked for by name (trusted loopback or test servers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsMode {
    /// Pick from the port and switch when the server shows it speaks the other mode; never plaintext.
    #[default]
    Auto,
    /// Implicit TLS (`smtps`).
    Implicit,
    /// STARTTLS, required.
    StartTls,
    /// STARTTLS when offered, else plaintext.
    Opportunistic,
    /// No TLS.
    None,
}

impl TlsMode {
    /// The name used on the command line and in URLs: `auto`, `implicit`, `starttls`, `opportunistic`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Implicit => "implicit",
            Self::StartTls => "starttls",
            Self::Opportunistic => "opportunistic",
            Self::None => "none",
        }
    }

    /// The core policy for the first connection attempt on `port`. For `Auto`: 465 is implicit TLS (RFC 8314
    /// §3.3), every other port requires STARTTLS.
    pub fn first_policy(self, port: u16) -> TlsPolicy {
        match self {
            Self::Auto => TlsPolicy::for_port(port),
            Self::Implicit => TlsPolicy::Implicit,
            Self::StartTls => TlsPolicy::StartTlsRequired,
            Self::Opportunistic => TlsPolicy::StartTlsOpportunistic,
            Self::None => TlsPolicy::None,
        }
    }

    /// Whether `Auto` may start a parallel implicit-TLS attempt when the STARTTLS attempt has seen no greeting
    /// after the probe delay. Never on port 25, where servers legitimately delay their greeting (tarpits) and
    /// implicit TLS is never spoken.
    pub fn probe_applies(self, port: u16) -> bool {
        self == Self::Auto && port != 25 && self.first_policy(port) == TlsPolicy::StartTlsRequired
    }

    /// Why `Auto` picked its first attempt on `port`, for the transcript.
    pub fn first_reason(self, port: u16) -> String {
        match (self, self.first_policy(port)) {
            (Self::Auto, TlsPolicy::Implicit) => {
                format!(
                    "auto: port {port} is the implicit-TLS submission port (RFC 8314): trying implicit TLS"
                )
            }
            (Self::Auto, _) if port == 25 => format!(
                "auto: port {port}: trying STARTTLS (required); no implicit-TLS probe on port 25"
            ),
            (Self::Auto, _) => format!(
                "auto: port {port}: trying STARTTLS (required) first; implicit TLS is tried if no greeting comes"
            ),
            (mode, _) => format!("TLS mode {} (forced)", mode.as_str()),
        }
    }

    /// `Auto`'s decision after a failed attempt with `tried`: the policy to try next and why, or `None` to give up.
    ///
    /// * an implicit-TLS attempt that received a plaintext SMTP reply -> STARTTLS;
    /// * a STARTTLS attempt that received TLS records, or (except on port 25) no byte at all before its greeting
    ///   deadline -> implicit TLS.
    ///
    /// `bytes_seen` says whether the failed attempt received anything from the server.
    pub fn auto_switch(
        self,
        port: u16,
        tried: TlsPolicy,
        error: &Error,
        bytes_seen: bool,
    ) -> Option<(TlsPolicy, &'static str)> {
        if self != Self::Auto {
            return None;
        }
        match (tried, error.kind()) {
            (
                TlsPolicy::Implicit,
                ErrorKind::ModeMismatch(Mismatch::ServerSpeaksPlaintext { .. }),
            ) => Some((
                TlsPolicy::StartTlsRequired,
                "the implicit-TLS attempt received a plaintext SMTP greeting: reconnecting with STARTTLS",
            )),
            (
                TlsPolicy::StartTlsRequired,
                ErrorKind::ModeMismatch(
                    Mismatch::ServerSpeaksTls | Mismatch::ImplicitTlsExpected { .. },
                ),
            ) => Some((
                TlsPolicy::Implicit,
                "the server did not speak plaintext SMTP first: trying implicit TLS",
            )),
            (TlsPolicy::StartTlsRequired, ErrorKind::Timeout | ErrorKind::ConnectionClosed)
                if port != 25 && !bytes_seen && error.stage() == Stage::Greeting =>
            {
                Some((
                    TlsPolicy::Implicit,
                    "no greeting arrived on the STARTTLS attempt: trying implicit TLS",
                ))
            }
            _ => None,
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TlsMode {
    type Err = Error;

    /// Accepts `auto`, `implicit` (also `tls`, `smtps`, `wrapper`), `starttls` (also `required`), `opportunistic`
    /// (also `may`), `none` (also `plain`, `plaintext`), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "implicit" | "tls" | "smtps" | "wrapper" => Self::Implicit,
            "starttls" | "required" => Self::StartTls,
            "opportunistic" | "may" => Self::Opportunistic,
            "none" | "plain" | "plaintext" => Self::None,
            other => {
                return Err(Error::config(format!(
                    "unknown TLS mode {other:?}: use auto, implicit, starttls, opportunistic or none"
                )));
            }
        })
    }
}

/// Which certificate authorities the client trusts for the server's certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustRoots {
    /// Mozilla's root program, compiled in (webpki-roots). The default: same behaviour everywhere.
    #[default]
    WebPki,
    /// The operating system's verifier and store (rustls-platform-verifier; needs the `platform-verifier`
    /// feature).
    Platform,
    /// No built-in roots: only [`TlsOptions::extra_roots`] (e.g. a private CA).
    ExtraOnly,
}

/// PEM data given inline or as a file to read when the TLS configuration is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pem {
    /// A file to read.
    File(PathBuf),
    /// The PEM text itself.
    Inline(Vec<u8>),
}

/// A client certificate (RFC 8446 §4.4.2) and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The certificate chain, leaf first, in PEM.
    pub chain: Pem,
    /// The private key (PKCS#8, PKCS#1 or SEC1) in PEM.
    pub key: Pem,
}

/// How TLS is set up: trust anchors, client certificate, the name to verify and send as SNI.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// The built-in trust anchors.
    pub roots: TrustRoots,
    /// Extra trust anchors (e.g. a private CA), in PEM.
    pub extra_roots: Vec<Pem>,
    /// A client certificate to present, if any.
    pub client_certificate: Option<ClientCertificate>,
    /// The name to verify the certificate against and send as SNI, when it differs from the host connected to.
    pub server_name: Option<String>,
    /// Do not send SNI (the certificate is still verified against the name).
    pub disable_sni: bool,
    /// A complete rustls configuration to use instead of building one from the fields above.
    pub custom: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("roots", &self.roots)
            .field("extra_roots", &self.extra_roots.len())
            .field("client_certificate", &self.client_certificate.is_some())
            .field("server_name", &self.server_name)
            .field("disable_sni", &self.disable_sni)
            .field("custom", &self.custom.is_some())
            .finish()
    }
}

impl TlsOptions {
    /// Trusts the CA certificates in a PEM file in addition to the built-in roots.
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_roots.push(Pem::File(path.into()));
        self
    }

    /// Trusts the CA certificates in PEM text in addition to the built-in roots.
    #[must_use]
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(Pem::Inline(pem.into()));
        self
    }

    /// Presents a client certificate.
    #[must_use]
    pub fn with_client_certificate(mut self, chain: Pem, key: Pem) -> Self {
        self.client_certificate = Some(ClientCertificate { chain, key });
        self
    }

    /// Verifies the certificate against (and sends as SNI) this name instead of the host.
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Chooses the built-in trust anchors.
    #[must_use]
    pub fn with_roots(mut self, roots: TrustRoots) -> Self {
        self.roots = roots;
        self
    }
}

/// Everything needed to open a session: server, TLS mode and options, credentials, timeouts, and the core's
/// [`Config`] for the rest.
///
/// Build it from a URL (`"smtp://alice@mail.example.org:587".parse()`, see [`ConnectOptions::from_url`]) or with
/// [`ConnectOptions::new`] and the `with_*` methods. Fields are public so adapters can read everything.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The server's host name or IP address.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// The TLS mode.
    pub tls: TlsMode,
    /// Trust anchors, client certificate, SNI.
    pub tls_options: TlsOptions,
    /// How long one TCP connect attempt (to one resolved address) may take.
    pub connect_timeout: Duration,
    /// `Auto` only: how long a STARTTLS attempt may go without any byte from the server before an implicit-TLS
    /// attempt is started in parallel (never on port 25).
    pub probe_delay: Duration,
    /// Before reusing a connection idle for longer than this, check it with `NOOP` (and reconnect if it died).
    /// `None`: never check.
    pub noop_after_idle: Option<Duration>,
    /// Reconnect (once) before a send when the connection turns out to be closed. The transaction has not started
    /// then, so this never sends a message twice.
    pub reconnect: bool,
    /// Receives every transcript line (AUTH redacted) besides the `tracing` events.
    pub transcript: Option<TranscriptSink>,
    /// The core session configuration: EHLO name, protocol, timeouts, credentials, mechanisms, limits, pipelining.
    /// Its `tls`, `port` and `transcript` fields are set per attempt from the fields above.
    pub session: Config,
    /// Connect to this Unix-domain socket instead of `host:port` (e.g. Dovecot's LMTP socket). See
    /// [`ConnectOptions::unix`]: `host` stays the name TLS verifies, `port` is unused.
    pub unix_socket: Option<PathBuf>,
    /// Reach the server through this SOCKS5 proxy (RFC 1928). See [`ConnectOptions::with_socks5`].
    pub socks5: Option<Socks5Proxy>,
    /// Bind the TCP socket to this local address before connecting (to the server, or to the proxy).
    pub local_address: Option<IpAddr>,
    /// OAuth 2.0 bearer tokens from a provider, asked on every connect and after a refused token. See
    /// [`ConnectOptions::with_oauth_token_provider`].
    pub oauth: Option<crate::oauth::OAuthTokenSource>,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("tls_options", &self.tls_options)
            .field("connect_timeout", &self.connect_timeout)
            .field("probe_delay", &self.probe_delay)
            .field("noop_after_idle", &self.noop_after_idle)
            .field("reconnect", &self.reconnect)
            .field("transcript", &self.transcript.is_some())
            .field("session", &self.session)
            .field("unix_socket", &self.unix_socket)
            .field("socks5", &self.socks5)
            .field("local_address", &self.local_address)
            .field("oauth", &self.oauth)
            .finish()
    }
}

/// The default submission port (RFC 6409).
pub const SUBMISSION_PORT: u16 = 587;
/// The implicit-TLS submission port (RFC 8314).
pub const SUBMISSIONS_PORT: u16 = 465;
/// The LMTP port (RFC 2033).
pub const LMTP_PORT: u16 = 24;

impl ConnectOptions {
    /// Options for `host:port` with `Auto` TLS and the defaults: 30 s connect timeout, 3 s probe delay, NOOP check
    /// after 30 s idle, reconnect on, [`Timeouts::submission`].
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls: TlsMode::Auto,
            tls_options: TlsOptions::default(),
            connect_timeout: Duration::from_secs(30),
            probe_delay: Duration::from_secs(3),
            noop_after_idle: Some(Duration::from_secs(30)),
            reconnect: true,
            transcript: None,
            session: Config::default(),
            unix_socket: None,
            socks5: None,
            local_address: None,
            oauth: None,
        }
    }

    /// Options for a Unix-domain socket at `path` (LMTP to Dovecot is usually one; combine with
    /// [`with_protocol`](Self::with_protocol)`(Protocol::Lmtp)`, or use the URL `lmtp+unix:///path`).
    ///
    /// TLS is [`TlsMode::None`] by default: the socket is local, and its file permissions decide who may connect.
    /// STARTTLS or implicit TLS still work when asked for with [`with_tls`](Self::with_tls); [`TlsMode::Auto`] on
    /// a Unix socket means STARTTLS required (there is no port to take rules from, and Auto never falls back to
    /// plaintext). The name TLS verifies is `host`, `"localhost"` here: change it with
    /// [`TlsOptions::with_server_name`].
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        let mut options = Self::new("localhost", 0);
        options.unix_socket = Some(path.into());
        options.tls = TlsMode::None;
        options
    }

    /// Connects through the SOCKS5 proxy at `proxy` (`host:port`, `[v6]:port`, or a host for port 1080), with a
    /// user name and password (RFC 1929) when given. The server is sent to the proxy as a domain name when `host`
    /// is one (the proxy resolves it), as an address otherwise. Every step of the negotiation is bounded by the
    /// [`connect_timeout`](Self::connect_timeout); the password never appears in `Debug` output, errors or
    /// transcripts.
    #[must_use]
    pub fn with_socks5(
        mut self,
        proxy: impl Into<String>,
        credentials: Option<(String, smtp_proto::Secret)>,
    ) -> Self {
        let mut p = Socks5Proxy::new(&proxy.into());
        p.credentials = credentials;
        self.socks5 = Some(p);
        self
    }

    /// Binds the TCP socket to this local address (any port) before connecting: the server (or the proxy) sees
    /// connections from it. Only addresses of the same family are tried.
    #[must_use]
    pub fn with_local_address(mut self, address: IpAddr) -> Self {
        self.local_address = Some(address);
        self
    }

    /// The TLS mode actually used: [`tls`](Self::tls), except that `Auto` on a Unix socket is STARTTLS required
    /// (no port rules, no implicit-TLS probe, never plaintext).
    pub fn effective_tls(&self) -> TlsMode {
        match self.tls {
            TlsMode::Auto if self.unix_socket.is_some() => TlsMode::StartTls,
            mode => mode,
        }
    }

    /// Parses a URL as mail libraries take them:
    ///
    /// * `smtp://[user[:password]@]host[:port]` — port 587 by default, TLS `auto`;
    /// * `smtps://[user[:password]@]host[:port]` — port 465 by default, implicit TLS;
    /// * `lmtp://host[:port]` — LMTP (RFC 2033), port 24 by default, TLS `auto`;
    /// * `lmtp+unix:///path/to/socket`, `smtp+unix:///path/to/socket` — a Unix-domain socket (the path is
    ///   percent-decoded), TLS `none` unless `tls=` says otherwise (see [`ConnectOptions::unix`]);
    /// * query parameters: `tls=auto|implicit|required|starttls|opportunistic|none`, `helo=<name>`,
    ///   `auth=<MECH>[,<MECH>...]`.
    ///
    /// The user name and password are percent-decoded. A bare `host`, `host:port` or `[v6]:port` is accepted too
    /// (as `smtp://`).
    pub fn from_url(url: &str) -> Result<Self, Error> {
        parse_url(url)
    }

    /// Sets the TLS mode.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsMode) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the TLS options.
    #[must_use]
    pub fn with_tls_options(mut self, tls_options: TlsOptions) -> Self {
        self.tls_options = tls_options;
        self
    }

    /// Trusts the CA certificates in a PEM file (in addition to the built-in roots).
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_options.extra_roots.push(Pem::File(path.into()));
        self
    }

    /// Trusts the CA certificates in PEM text (in addition to the built-in roots).
    #[must_use]
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_options.extra_roots.push(Pem::Inline(pem.into()));
        self
    }

    /// Authenticates with a user name and password (never sent without TLS unless
    /// [`with_insecure_auth`](Self::with_insecure_auth)).
    #[must_use]
    pub fn with_password(
        mut self,
        user: impl Into<String>,
        password: impl Into<smtp_proto::Secret>,
    ) -> Self {
        self.session.credentials = Some(Credentials::password(user, password));
        self
    }

    /// Sets the credentials.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.session.credentials = Some(credentials);
        self
    }

    /// Authenticates with OAuth 2.0 bearer tokens (OAUTHBEARER RFC 7628, or XOAUTH2) for `username`, taken from
    /// `provider`: asked with [`TokenRequest::Initial`](crate::oauth::TokenRequest::Initial) on every connect
    /// (and reconnect), and, when the server refuses the token, once with
    /// [`TokenRequest::Refresh`](crate::oauth::TokenRequest::Refresh) (carrying the server's decoded status) before
    /// AUTH is tried again on the same connection. Replaces fixed credentials. See [`crate::oauth`].
    #[must_use]
    pub fn with_oauth_token_provider(
        mut self,
        username: impl Into<String>,
        provider: impl Fn(
            &crate::oauth::TokenRequest,
        ) -> Result<smtp_proto::Secret, crate::oauth::TokenError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.session.credentials = None;
        self.oauth = Some(crate::oauth::OAuthTokenSource {
            username: username.into(),
            provider: std::sync::Arc::new(provider),
        });
        self
    }

    /// The core configuration for one connection attempt: [`session_config`](Self::session_config), plus, with a
    /// token provider, the current token (asked now) and [`Config::token_refresh`](smtp_proto::Config) on.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TokenProvider`] when the provider fails.
    pub fn connect_config(&self, policy: TlsPolicy, transcript: bool) -> Result<Config, Error> {
        let mut config = self.session_config(policy, transcript);
        if let Some(source) = &self.oauth {
            config.credentials = Some(source.credentials(&crate::oauth::TokenRequest::Initial)?);
            config.token_refresh = true;
        }
        Ok(config)
    }

    /// Restricts AUTH to these mechanisms, in order of preference.
    #[must_use]
    pub fn with_mechanisms(mut self, mechanisms: Vec<Mechanism>) -> Self {
        self.session.mechanisms = Some(mechanisms);
        self
    }

    /// Allows sending credentials over an unencrypted connection.
    #[must_use]
    pub fn with_insecure_auth(mut self, allow: bool) -> Self {
        self.session.allow_insecure_auth = allow;
        self
    }

    /// Speaks LMTP (RFC 2033) instead of SMTP.
    #[must_use]
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.session.protocol = protocol;
        self
    }

    /// Sets the EHLO/LHLO name.
    #[must_use]
    pub fn with_client_id(mut self, id: ClientId) -> Self {
        self.session.client_id = id;
        self
    }

    /// Sets every stage's deadline.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.session.timeouts = timeouts;
        self
    }

    /// Caps every stage's deadline, the connect timeout and the probe delay at `max` (one `--timeout` knob).
    #[must_use]
    pub fn with_timeout_cap(mut self, max: Duration) -> Self {
        self.session.timeouts = self.session.timeouts.capped(max);
        self.connect_timeout = self.connect_timeout.min(max);
        self.probe_delay = self.probe_delay.min(max);
        self
    }

    /// Sets the connect timeout (per address).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets `Auto`'s probe delay.
    #[must_use]
    pub fn with_probe_delay(mut self, delay: Duration) -> Self {
        self.probe_delay = delay;
        self
    }

    /// Sets the idle time after which a connection is checked with `NOOP` before reuse.
    #[must_use]
    pub fn with_noop_after_idle(mut self, idle: Option<Duration>) -> Self {
        self.noop_after_idle = idle;
        self
    }

    /// Sends every transcript line to `sink` too.
    #[must_use]
    pub fn with_transcript(mut self, sink: TranscriptSink) -> Self {
        self.transcript = Some(sink);
        self
    }

    /// The core configuration for one attempt with `policy`.
    pub fn session_config(&self, policy: TlsPolicy, transcript: bool) -> Config {
        let mut config = self.session.clone();
        config.tls = policy;
        // A Unix socket has no port for the core's port-based diagnosis.
        config.port = self.unix_socket.is_none().then_some(self.port);
        config.transcript = transcript;
        config
    }

    /// `host:port`, with brackets around an IPv6 literal (`unix:<path>` for a Unix socket).
    pub fn authority(&self) -> String {
        if let Some(path) = &self.unix_socket {
            format!("unix:{}", path.display())
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Checks what can be checked without the network.
    pub fn validate(&self) -> Result<(), Error> {
        if self.host.is_empty() {
            return Err(Error::config("the server host is empty"));
        }
        if let Some(path) = &self.unix_socket {
            if path.as_os_str().is_empty() {
                return Err(Error::config("the Unix socket path is empty"));
            }
            if self.socks5.is_some() {
                return Err(Error::config(
                    "a Unix socket cannot be reached through a SOCKS5 proxy: use one or the other",
                ));
            }
            if self.local_address.is_some() {
                return Err(Error::config(
                    "a local (source) address applies to TCP only, not to a Unix socket",
                ));
            }
            return Ok(());
        }
        if self.port == 0 {
            return Err(Error::config("the server port is 0"));
        }
        if let Some(proxy) = &self.socks5 {
            if proxy.host.is_empty() || proxy.port == 0 {
                return Err(Error::config(format!(
                    "invalid SOCKS5 proxy address {:?}: use host:port",
                    proxy.authority()
                )));
            }
            if let Some((user, password)) = &proxy.credentials
                && (!(1..=255).contains(&user.len())
                    || !(1..=255).contains(&password.expose().len()))
            {
                return Err(Error::config(
                    "the SOCKS5 user name and password must each be 1 to 255 bytes long (RFC 1929)",
                ));
            }
        }
        if let Some(local) = self.local_address {
            // The TCP connection goes to the proxy when there is one.
            let (what, host) = match &self.socks5 {
                Some(p) => ("SOCKS5 proxy", p.host.as_str()),
                None => ("server", self.host.as_str()),
            };
            if let Ok(ip) = host.parse::<IpAddr>()
                && ip.is_ipv4() != local.is_ipv4()
            {
                return Err(Error::config(format!(
                    "the local address {local} and the {what} address {ip} are of different IP families"
                )));
            }
        }
        Ok(())
    }
}

impl FromStr for ConnectOptions {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_url(s)
    }
}

fn percent_decode(s: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::config(format!("bad percent-encoding in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::config(format!("{s:?} does not decode to UTF-8")))
}

/// Splits `host[:port]` with IPv6 literals in brackets (or bare when there is no port).
pub(crate) fn split_host_port(s: &str) -> Result<(String, Option<u16>), Error> {
    let bad_port = |p: &str| Error::config(format!("invalid port {p:?} in {s:?}"));
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| Error::config(format!("unclosed '[' in {s:?}")))?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| Error::config(format!("{host:?} is not an IPv6 address")))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad_port(p))?,
            ),
        };
        return Ok((host.to_owned(), port));
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok((s.to_owned(), None));
    }
    match s.rsplit_once(':') {
        Some((host, p)) => Ok((host.to_owned(), Some(p.parse().map_err(|_| bad_port(p))?))),
        None => Ok((s.to_owned(), None)),
    }
}

fn parse_url(url: &str) -> Result<ConnectOptions, Error> {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("smtp".to_owned(), url),
    };
    // `lmtp+unix:///path`, `smtp+unix:///path`: a Unix-domain socket.
    let (scheme, unix) = match scheme.strip_suffix("+unix") {
        Some(base) => (base.to_owned(), true),
        None => (scheme, false),
    };
    let (default_port, default_tls, protocol) = match scheme.as_str() {
        "smtp" | "submission" => (SUBMISSION_PORT, TlsMode::Auto, Protocol::Smtp),
        "smtps" | "submissions" => (SUBMISSIONS_PORT, TlsMode::Implicit, Protocol::Smtp),
        "lmtp" => (LMTP_PORT, TlsMode::Auto, Protocol::Lmtp),
        other => {
            return Err(Error::config(format!(
                "unsupported URL scheme {other:?}: use smtp://, smtps://, lmtp://, or lmtp+unix:///path and \
                 smtp+unix:///path for a Unix socket"
            )));
        }
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (mut options, userinfo) = if unix {
        let path = percent_decode(rest)?;
        if !path.starts_with('/') {
            return Err(Error::config(format!(
                "{url:?}: a Unix socket URL takes an absolute path after the scheme, as in \
                 lmtp+unix:///run/dovecot/lmtp"
            )));
        }
        let mut options = ConnectOptions::unix(path);
        if default_tls == TlsMode::Implicit {
            options.tls = TlsMode::Implicit;
        }
        (options, None)
    } else {
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(Error::config(format!("unexpected path in {url:?}")));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return Err(Error::config(format!("no host in {url:?}")));
        }
        let mut options = ConnectOptions::new(host, port.unwrap_or(default_port));
        options.tls = default_tls;
        (options, userinfo)
    };
    options.session.protocol = protocol;
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (percent_decode(u)?, Some(percent_decode(p)?)),
            None => (percent_decode(userinfo)?, None),
        };
        if user.is_empty() {
            return Err(Error::config(format!("empty user name in {url:?}")));
        }
        options.session.credentials =
            Some(Credentials::password(user, password.unwrap_or_default()));
    }
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)?;
        match key.to_ascii_lowercase().as_str() {
            "tls" => {
                let mode: TlsMode = value.parse()?;
                if default_tls == TlsMode::Implicit && mode != TlsMode::Implicit {
                    return Err(Error::config(format!(
                        "smtps:// means implicit TLS, but tls={value} was given: use smtp://{}?tls={value}",
                        options.authority()
                    )));
                }
                options.tls = mode;
            }
            "helo" | "ehlo" => {
                options.session.client_id = value
                    .parse::<ClientId>()
                    .map_err(|e| Error::config(format!("invalid helo name {value:?}: {e}")))?;
            }
            "auth" => {
                options.session.mechanisms = Some(
                    value
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(|m| Mechanism::from_name(m.as_bytes()))
                        .collect(),
                );
            }
            other => return Err(Error::config(format!("unknown URL parameter {other:?}"))),
        }
    }
    options.validate()?;
    Ok(options)
}

/// True when `host` is an IP address literal (no SNI is sent for those).
pub fn is_ip_literal(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok()
}

/// Whether the credentials in `options` came with an empty password (a URL with only a user name): the caller
/// should supply the password from a safer place.
pub fn password_missing(options: &ConnectOptions) -> bool {
    matches!(&options.session.credentials, Some(Credentials::Password { password, .. }) if password.expose().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let o = ConnectOptions::from_url("smtp://alice@mail.example.org:2587").unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.tls),
            ("mail.example.org", 2587, TlsMode::Auto)
        );
        assert_eq!(o.session.credentials.as_ref().unwrap().username(), "alice");
        assert!(password_missing(&o));

        let o = ConnectOptions::from_url("smtps://mail.example.org").unwrap();
        assert_eq!((o.port, o.tls), (465, TlsMode::Implicit));

        let o = ConnectOptions::from_url("smtp://[::1]:25?tls=none&helo=client.example").unwrap();
        assert_eq!((o.host.as_str(), o.port, o.tls), ("::1", 25, TlsMode::None));
        assert_eq!(o.session.client_id.as_str(), "client.example");
        assert_eq!(o.authority(), "[::1]:25");

        let o = ConnectOptions::from_url("smtp://u%40x:p%3Aw@h?tls=opportunistic").unwrap();
        assert_eq!(o.session.credentials.as_ref().unwrap().username(), "u@x");
        assert_eq!(o.tls, TlsMode::Opportunistic);

        let o = ConnectOptions::from_url("lmtp://127.0.0.1:2424?tls=none").unwrap();
        assert_eq!(o.session.protocol, Protocol::Lmtp);

        let o: ConnectOptions = "localhost:2525".parse().unwrap();
        assert_eq!((o.host.as_str(), o.port), ("localhost", 2525));
        let o: ConnectOptions = "mx.example".parse().unwrap();
        assert_eq!(o.port, 587);

        let o = ConnectOptions::from_url("lmtp+unix:///run/dovecot/lmtp?helo=c.example").unwrap();
        assert_eq!(
            o.unix_socket.as_deref(),
            Some(std::path::Path::new("/run/dovecot/lmtp"))
        );
        assert_eq!((o.session.protocol, o.tls), (Protocol::Lmtp, TlsMode::None));
        assert_eq!(o.authority(), "unix:/run/dovecot/lmtp");
        assert_eq!(o.session_config(TlsPolicy::None, false).port, None);
        let o = ConnectOptions::from_url("smtp+unix:///tmp/s%20ock?tls=auto").unwrap();
        assert_eq!(
            o.unix_socket.as_deref(),
            Some(std::path::Path::new("/tmp/s ock"))
        );
        assert_eq!(
            (o.session.protocol, o.effective_tls()),
            (Protocol::Smtp, TlsMode::StartTls)
        );
        assert!(ConnectOptions::from_url("lmtp+unix://relative/path").is_err());
        assert!(ConnectOptions::from_url("smtps://h?tls=starttls").is_err());
        assert!(ConnectOptions::from_url("http://h").is_err());
        assert!(ConnectOptions::from_url("smtp://h:x").is_err());
        assert!(ConnectOptions::from_url("smtp://h?tls=bogus").is_err());
    }

    #[test]
    fn transports_are_validated() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let unix = ConnectOptions::unix("/run/lmtp");
        assert!(unix.validate().is_ok());
        assert!(
            unix.clone()
                .with_socks5("127.0.0.1:1080", None)
                .validate()
                .is_err()
        );
        assert!(unix.with_local_address(ip("127.0.0.2")).validate().is_err());

        let o = ConnectOptions::new("127.0.0.1", 25).with_local_address(ip("::1"));
        assert!(
            o.validate()
                .unwrap_err()
                .to_string()
                .contains("different IP families")
        );
        let o = ConnectOptions::new("mx.example", 25).with_local_address(ip("::1"));
        assert!(o.validate().is_ok());
        let o = ConnectOptions::new("::1", 25)
            .with_socks5("127.0.0.1", None)
            .with_local_address(ip("127.0.0.2"));
        assert!(o.validate().is_ok());
        assert_eq!(o.socks5.as_ref().unwrap().port, 1080);

        let o = ConnectOptions::new("mx.example", 25)
            .with_socks5("[::1]:1081", Some(("u".into(), "hunter2".into())));
        assert!(o.validate().is_ok());
        assert_eq!(o.socks5.as_ref().unwrap().authority(), "[::1]:1081");
        assert!(!format!("{o:?}").contains("hunter2"));
        let o = ConnectOptions::new("mx.example", 25).with_socks5("proxy:x", None);
        assert!(o.validate().is_err());
        let o = ConnectOptions::new("mx.example", 25)
            .with_socks5("p:1", Some((String::new(), "pw".into())));
        assert!(o.validate().is_err());
    }

    #[test]
    fn auto_port_rules() {
        assert_eq!(TlsMode::Auto.first_policy(465), TlsPolicy::Implicit);
        assert_eq!(TlsMode::Auto.first_policy(587), TlsPolicy::StartTlsRequired);
        assert_eq!(TlsMode::Auto.first_policy(25), TlsPolicy::StartTlsRequired);
        assert!(TlsMode::Auto.probe_applies(587));
        assert!(!TlsMode::Auto.probe_applies(25));
        assert!(!TlsMode::Auto.probe_applies(465));
        assert!(!TlsMode::StartTls.probe_applies(587));

        let plain = Error::from_proto(smtp_proto::Error::new(
            smtp_proto::ErrorKind::ModeMismatch(Mismatch::ServerSpeaksPlaintext {
                observed: "220 x".into(),
            }),
            Stage::TlsHandshake,
            None,
        ));
        assert_eq!(
            TlsMode::Auto
                .auto_switch(465, TlsPolicy::Implicit, &plain, true)
                .map(|s| s.0),
            Some(TlsPolicy::StartTlsRequired)
        );
        assert_eq!(
            TlsMode::Implicit.auto_switch(465, TlsPolicy::Implicit, &plain, true),
            None
        );
        let timeout = Error::new(ErrorKind::Timeout, Stage::Greeting);
        assert_eq!(
            TlsMode::Auto
                .auto_switch(2465, TlsPolicy::StartTlsRequired, &timeout, false)
                .map(|s| s.0),
            Some(TlsPolicy::Implicit)
        );
        assert_eq!(
            TlsMode::Auto.auto_switch(25, TlsPolicy::StartTlsRequired, &timeout, false),
            None
        );
        assert_eq!(
            TlsMode::Auto.auto_switch(587, TlsPolicy::StartTlsRequired, &timeout, true),
            None
        );
    }
}
