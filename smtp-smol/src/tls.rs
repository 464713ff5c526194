//! Every rustls call of this crate: the stream type (plaintext or TLS over one socket) and the handshake.
//!
//! The handshake records the first bytes the TLS layer reads from the server, so that a failed handshake can be
//! diagnosed by the core ([`smtp_proto::Client::tls_failed`]): a server that answers a ClientHello with
//! `220 mx ESMTP` speaks plaintext SMTP first and wants STARTTLS, and the error says so.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use async_io::Async;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use smtp_proto::diagnose::{self, PeerSpeaks};

use crate::settings::Settings;

/// How many bytes of the server's first answer are kept for the diagnosis (the classifier needs four; the message
/// quotes at most one line).
const OBSERVE_CAP: usize = 256;

/// A socket that can copy what it reads into a shared buffer, while a TLS handshake is in progress.
///
/// The buffer is shared (not owned) so that it survives the handshake future being dropped when the handshake
/// deadline passes.
#[derive(Debug)]
pub(crate) struct Observed<S> {
    inner: S,
    seen: Option<Arc<Mutex<Vec<u8>>>>,
}

impl<S> Observed<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner, seen: None }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Observed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(seen)) = (&result, &this.seen) {
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            let take = (*n).min(OBSERVE_CAP.saturating_sub(seen.len()));
            seen.extend_from_slice(&buf[..take]);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Observed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

pub(crate) type Socket = Observed<crate::transport::Net>;

/// The connection: plaintext until a handshake, TLS after it.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(Socket),
    Tls(Box<TlsStream<Socket>>),
    /// Taken for a handshake that did not complete (the connection is unusable).
    Gone,
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection was closed after a failed TLS handshake",
    )
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut *$self {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    };
}

impl Stream {
    /// Ready when a read may find something: for plaintext, once the socket reported readability (see
    /// [`crate::transport::Net::poll_readable`]); for TLS always, since rustls may hold decrypted bytes already.
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Plain(s) => s.inner.poll_readable(cx),
            Stream::Tls(_) | Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_close(cx))
    }
}

/// A failed handshake: the error and what the server had sent (at most [`OBSERVE_CAP`] bytes).
#[derive(Debug)]
pub(crate) struct HandshakeError {
    pub(crate) error: io::Error,
    pub(crate) observed: Vec<u8>,
}

impl HandshakeError {
    /// The rustls error inside, if the handshake failed at the TLS level (not the socket).
    pub(crate) fn rustls(&self) -> Option<&rustls::Error> {
        self.error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
    }
}

/// A handshake in progress; [`Handshake::observed`] reads what the server sent so far, even after the handshake
/// future was dropped at its deadline.
pub(crate) struct Handshake {
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Handshake {
    pub(crate) fn observed(&self) -> Vec<u8> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts recording on `socket` and returns the handshake future. The caller races it against the deadline.
    pub(crate) fn start(
        mut socket: Socket,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> (
        Self,
        impl Future<Output = Result<TlsStream<Socket>, HandshakeError>> + Send + 'static,
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        socket.seen = Some(Arc::clone(&seen));
        let handle = Self {
            seen: Arc::clone(&seen),
        };
        let connect = TlsConnector::from(config)
            .connect(name, socket)
            .into_fallible();
        let fut = async move {
            match connect.await {
                Ok(mut stream) => {
                    // Stop recording: application data is none of the diagnosis' business.
                    stream.get_mut().0.seen = None;
                    Ok(stream)
                }
                Err((error, _socket)) => {
                    let observed = seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
                    Err(HandshakeError { error, observed })
                }
            }
        };
        (handle, fut)
    }
}

/// The negotiated protocol version and cipher suite, for the transcript.
pub(crate) fn summary(stream: &TlsStream<Socket>) -> String {
    smtp_blocking::tls::session_summary(stream.get_ref().1)
}

/// The `tls-exporter` channel binding (RFC 9266) of the session, for SCRAM-SHA-256-PLUS (TLS 1.3 only).
pub(crate) fn channel_binding(stream: &TlsStream<Socket>) -> Option<Vec<u8>> {
    smtp_blocking::tls::channel_binding(stream.get_ref().1)
}

/// A sentence for a failed handshake that says what to change.
pub(crate) fn describe_failure(e: &HandshakeError, settings: &Settings) -> String {
    match e.rustls() {
        Some(r) => smtp_blocking::tls::describe_tls_error(r, settings.verified_name()),
        None if e.error.kind() == io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the TLS handshake".to_owned()
        }
        None => e.error.to_string(),
    }
}

/// Diagnosis only: on a new connection to `addr`, sends a TLS ClientHello and classifies the first bytes of the
/// answer (the caller bounds it with a deadline). Verifies nothing and sends no mail: it tells "this port speaks
/// implicit TLS" from plain silence after a plaintext greeting never came.
pub(crate) async fn probe_implicit_tls(addr: SocketAddr, settings: &Settings) -> PeerSpeaks {
    let Ok(mut sock) = Async::<TcpStream>::connect(addr).await else {
        return PeerSpeaks::Nothing;
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(builder) =
        ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()
    else {
        return PeerSpeaks::Nothing;
    };
    let config = builder
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let Ok(mut conn) =
        rustls::ClientConnection::new(Arc::new(config), settings.server_name.clone())
    else {
        return PeerSpeaks::Nothing;
    };
    let mut hello = Vec::new();
    while conn.wants_write() {
        if conn.write_tls(&mut hello).is_err() {
            return PeerSpeaks::Nothing;
        }
    }
    if sock.write_all(&hello).await.is_err() {
        return PeerSpeaks::Nothing;
    }
    let mut first = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                first.extend_from_slice(&buf[..n]);
                if diagnose::classify(&first) != PeerSpeaks::Undecided {
                    break;
                }
            }
        }
    }
    diagnose::classify(&first)
}
