//! Every rustls call of the crate lives here: building the [`rustls::ClientConfig`] from [`TlsOptions`], the
//! server name, human-readable handshake errors, and (crate-private) the blocking handshake and record layer over
//! a TCP or Unix socket.
//!
//! [`build_client_config`], [`server_name`] and [`describe_tls_error`] do no I/O and are meant to be reused by the
//! async adapter.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};
use smtp_proto::PeerSpeaks;

use crate::error::{Error, ErrorKind};
use crate::options::{Pem, TlsOptions, TrustRoots};
use crate::transport::Socket;

/// The crypto provider: ring (no C/assembly toolchain beyond what ring needs; no aws-lc).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config_error(details: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::TlsConfig {
            details: details.into(),
        },
        smtp_proto::Stage::Connect,
    )
}

fn read_pem(pem: &Pem, what: &str) -> Result<Vec<u8>, Error> {
    match pem {
        Pem::Inline(bytes) => Ok(bytes.clone()),
        Pem::File(path) => std::fs::read(path).map_err(|e| {
            tls_config_error(format!(
                "cannot read the {what} file {}: {e}",
                path.display()
            ))
            .with_cause(e)
        }),
    }
}

fn certificates(pem: &Pem, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read_pem(pem, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_config_error(format!("the {what} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        let origin = match pem {
            Pem::File(p) => p.display().to_string(),
            Pem::Inline(_) => "the given PEM".to_owned(),
        };
        return Err(tls_config_error(format!(
            "no certificate found in {origin} (expected -----BEGIN CERTIFICATE----- blocks)"
        )));
    }
    Ok(certs)
}

/// Builds the rustls client configuration (ring provider, TLS 1.2 and 1.3) from the options: trust anchors
/// (webpki-roots, the platform verifier, or only the extra PEM anchors), extra anchors, client certificate, SNI.
pub fn build_client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, Error> {
    if let Some(custom) = &options.custom {
        return Ok(Arc::clone(custom));
    }
    let mut extra = Vec::new();
    for pem in &options.extra_roots {
        extra.extend(certificates(pem, "CA certificate")?);
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_config_error(format!("no usable TLS version: {e}")))?;
    let builder = match options.roots {
        TrustRoots::WebPki | TrustRoots::ExtraOnly => {
            let mut roots = RootCertStore::empty();
            if options.roots == TrustRoots::WebPki {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            for cert in extra {
                roots.add(cert).map_err(|e| {
                    tls_config_error(format!(
                        "a CA certificate cannot be used as a trust anchor: {e}"
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(tls_config_error(
                    "no trust anchors: give a CA file or use the built-in roots",
                ));
            }
            builder.with_root_certificates(roots)
        }
        TrustRoots::Platform => platform_verifier(builder, extra)?,
    };
    let mut config = match &options.client_certificate {
        None => builder.with_no_client_auth(),
        Some(cc) => {
            let chain = certificates(&cc.chain, "client certificate")?;
            let key_pem = read_pem(&cc.key, "client key")?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                tls_config_error(format!(
                    "the client key is not a usable PEM private key: {e}"
                ))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                tls_config_error(format!("the client certificate and key do not fit: {e}"))
            })?
        }
    };
    config.enable_sni = !options.disable_sni;
    Ok(Arc::new(config))
}

#[cfg(feature = "platform-verifier")]
fn platform_verifier(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>,
    extra: Vec<CertificateDer<'static>>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, Error> {
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider())
        .map_err(|e| {
            tls_config_error(format!(
                "the platform certificate verifier failed to start: {e}"
            ))
        })?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier)))
}

#[cfg(not(feature = "platform-verifier"))]
fn platform_verifier(
    _builder: rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>,
    _extra: Vec<CertificateDer<'static>>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, Error> {
    Err(tls_config_error(
        "the platform verifier was requested but smtp-blocking was built without the `platform-verifier` feature",
    ))
}

/// The name the certificate is verified against (and sent as SNI unless it is an IP address): the
/// [`TlsOptions::server_name`] override, else `host`.
pub fn server_name(host: &str, options: &TlsOptions) -> Result<ServerName<'static>, Error> {
    let name = options.server_name.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_owned())
        .map_err(|e| Error::config(format!("{name:?} cannot be used as a TLS server name: {e}")))
}

/// A sentence for a failed handshake, with the fix when one is known. `name` is the name that was verified.
pub fn describe_tls_error(error: &rustls::Error, name: &str) -> String {
    match error {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => format!(
                "the server's certificate for {name:?} is not signed by a trusted certificate authority (unknown \
                 issuer); if the server uses a private CA, trust it with --ca-file (TlsOptions::with_ca_file)"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let presented = match c {
                    CertificateError::NotValidForNameContext { presented, .. } => {
                        let names: Vec<&str> = presented
                            .iter()
                            .map(|p| {
                                // rustls shows `DnsName("mx.example")`: keep the name.
                                p.split_once("(\"")
                                    .and_then(|(_, rest)| rest.strip_suffix("\")"))
                                    .unwrap_or(p)
                            })
                            .collect();
                        format!(" (it is for {})", names.join(", "))
                    }
                    _ => String::new(),
                };
                format!(
                    "the server's certificate is not valid for the name {name:?}{presented}; connect using a name \
                     the certificate was issued for"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the server's certificate for {name:?} has expired")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => format!(
                "the server's certificate for {name:?} is not valid yet (check this machine's clock)"
            ),
            CertificateError::Revoked => {
                format!("the server's certificate for {name:?} has been revoked")
            }
            other => format!("the server's certificate for {name:?} was rejected: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "the server aborted the TLS handshake ({alert:?}); it may require a client certificate or not \
             support this client's TLS versions"
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!("the server did not answer with valid TLS ({error})")
        }
        rustls::Error::PeerIncompatible(p) => {
            format!(
                "the server has no TLS version or cipher suite in common with this client ({p:?})"
            )
        }
        other => format!("{other}"),
    }
}

/// `TLSv1_3 TLS13_AES_256_GCM_SHA384`: the negotiated version and cipher suite, for the transcript.
pub fn session_summary(conn: &ClientConnection) -> String {
    let version = conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_else(|| "?".into());
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "?".into());
    format!("{version} {suite}")
}

/// The `tls-exporter` channel-binding value of a session (RFC 9266: 32 bytes exported with the label
/// `EXPORTER-Channel-Binding` and no context), for SCRAM-SHA-256-PLUS. Only for TLS 1.3, where RFC 9266 defines it
/// without further conditions.
pub fn channel_binding(conn: &ClientConnection) -> Option<Vec<u8>> {
    if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    let mut out = vec![0u8; 32];
    conn.export_keying_material(&mut out[..], b"EXPORTER-Channel-Binding", None)
        .ok()?;
    Some(out)
}

/// Fresh random bytes from the crypto provider's secure generator (the operating system's), e.g. for the core's
/// [`smtp_proto::Config::sasl_random`].
pub fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut out = [0u8; N];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut out)
        .ok()?;
    Some(out)
}

// ----- blocking record layer (crate-private) -----

/// A TLS session over a blocking socket (TCP or Unix). Timeouts are the socket's, set by the caller before each
/// call.
pub(crate) struct TlsStream {
    conn: ClientConnection,
    sock: Socket,
}

impl TlsStream {
    pub(crate) fn socket(&self) -> &Socket {
        &self.sock
    }

    pub(crate) fn summary(&self) -> String {
        session_summary(&self.conn)
    }

    /// The `tls-exporter` channel binding (RFC 9266), for SCRAM-SHA-256-PLUS.
    pub(crate) fn channel_binding(&self) -> Option<Vec<u8>> {
        channel_binding(&self.conn)
    }

    /// Whether decrypted bytes are waiting to be read (taken from the socket with an earlier record); `true` when
    /// the records already received do not decrypt, so that a read reports it.
    pub(crate) fn has_plaintext(&mut self) -> bool {
        self.conn
            .process_new_packets()
            .map_or(true, |state| state.plaintext_bytes_to_read() > 0)
    }

    /// Reads plaintext; `Ok(0)` at the end of the stream (close_notify or TCP close).
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            let n = self.conn.read_tls(&mut self.sock)?;
            let state = self
                .conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            // Key updates or alerts to answer.
            while self.conn.wants_write() {
                self.conn.write_tls(&mut self.sock)?;
            }
            if n == 0 && state.plaintext_bytes_to_read() == 0 {
                return Ok(0);
            }
        }
    }

    /// Takes a prefix of `data` (encrypting it into the send buffer), or, when encrypted bytes are waiting, writes
    /// some of them to the socket and returns `Ok(0)`. Never loses data on a timeout: what was taken stays queued.
    pub(crate) fn write_some(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.conn.wants_write() {
            self.conn.write_tls(&mut self.sock)?;
            return Ok(0);
        }
        match self.conn.writer().write(data)? {
            0 if !data.is_empty() => Err(io::ErrorKind::WriteZero.into()),
            n => Ok(n),
        }
    }

    /// Writes the queued encrypted bytes to the socket.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.sock)?;
        }
        Ok(())
    }

    /// Sends close_notify, best effort (the socket's write timeout bounds it).
    pub(crate) fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

/// Why a handshake did not complete.
pub(crate) enum HandshakeFailure {
    /// The deadline passed.
    TimedOut,
    /// The server closed the connection.
    Closed,
    /// rustls refused what the server sent (certificate, protocol...).
    Tls(rustls::Error),
    /// Another socket error.
    Io(io::Error),
}

/// The first bytes the server sent during a handshake, kept for the core's classifier.
const OBSERVED_CAP: usize = 64;

/// Runs the client handshake on `sock` until `deadline`. Returns the session, or the failure and the first bytes
/// the server sent (so a plaintext `220` can be diagnosed).
pub(crate) fn handshake(
    sock: Socket,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    deadline: Instant,
) -> Result<TlsStream, (HandshakeFailure, Vec<u8>)> {
    let mut observed = Vec::new();
    let mut conn = match ClientConnection::new(config, name) {
        Ok(c) => c,
        Err(e) => return Err((HandshakeFailure::Tls(e), observed)),
    };
    let mut sock = sock;
    let mut buf = [0u8; 16 * 1024];
    let timed_out = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    while conn.is_handshaking() {
        let now = Instant::now();
        if now >= deadline {
            return Err((HandshakeFailure::TimedOut, observed));
        }
        let left = (deadline - now).max(Duration::from_millis(1));
        if conn.wants_write() {
            if let Err(e) = sock.set_write_timeout(Some(left)) {
                return Err((HandshakeFailure::Io(e), observed));
            }
            match conn.write_tls(&mut sock) {
                Ok(_) => continue,
                Err(e) if timed_out(&e) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err((HandshakeFailure::Io(e), observed)),
            }
        }
        if let Err(e) = sock.set_read_timeout(Some(left)) {
            return Err((HandshakeFailure::Io(e), observed));
        }
        let n = match sock.read(&mut buf) {
            Ok(0) => return Err((HandshakeFailure::Closed, observed)),
            Ok(n) => n,
            Err(e) if timed_out(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((HandshakeFailure::Io(e), observed)),
        };
        if observed.len() < OBSERVED_CAP {
            let take = n.min(OBSERVED_CAP - observed.len());
            observed.extend_from_slice(&buf[..take]);
        }
        let mut rd = &buf[..n];
        while !rd.is_empty() {
            if let Err(e) = conn.read_tls(&mut rd) {
                return Err((HandshakeFailure::Io(e), observed));
            }
            if let Err(e) = conn.process_new_packets() {
                // Let the server know why (an alert), best effort.
                let _ = sock.set_write_timeout(Some(Duration::from_millis(200)));
                let _ = conn.write_tls(&mut sock);
                return Err((HandshakeFailure::Tls(e), observed));
            }
        }
    }
    // Finished messages (TLS 1.2) or anything else pending.
    let mut stream = TlsStream { conn, sock };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let _ = stream.sock.set_write_timeout(Some(left));
    if let Err(e) = stream.flush() {
        return Err((HandshakeFailure::Io(e), observed));
    }
    Ok(stream)
}

/// Diagnosis only: opens a fresh connection to `addr`, sends a TLS ClientHello and classifies the first bytes of
/// the answer. Used after a plaintext greeting never came, to tell "this port speaks implicit TLS" from plain
/// silence. Bounded by `timeout`; verifies nothing and sends no mail.
pub(crate) fn probe_implicit_tls(addr: SocketAddr, host: &str, timeout: Duration) -> PeerSpeaks {
    let deadline = Instant::now() + timeout;
    let Ok(mut sock) = TcpStream::connect_timeout(&addr, timeout) else {
        return PeerSpeaks::Nothing;
    };
    let Ok(builder) =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()
    else {
        return PeerSpeaks::Nothing;
    };
    let config = builder
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("valid"));
    let Ok(mut conn) = ClientConnection::new(Arc::new(config), name) else {
        return PeerSpeaks::Nothing;
    };
    let mut hello = Vec::new();
    while conn.wants_write() {
        if conn.write_tls(&mut hello).is_err() {
            return PeerSpeaks::Nothing;
        }
    }
    let _ = sock.set_write_timeout(Some(timeout));
    if sock.write_all(&hello).is_err() {
        return PeerSpeaks::Nothing;
    }
    let mut first = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let _ = sock.set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                first.extend_from_slice(&buf[..n]);
                if smtp_proto::diagnose::classify(&first) != PeerSpeaks::Undecided {
                    break;
                }
            }
        }
    }
    let _ = sock.shutdown(std::net::Shutdown::Both);
    smtp_proto::diagnose::classify(&first)
}
