//! The listener: [`TestServer`].

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::ServerConfig;
use crate::io::Io;
use crate::record::{Message, SessionRecord};
use crate::session::Session;

/// State shared by the accept thread, the connection threads and the test thread.
pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    sessions: Mutex<Vec<SessionRecord>>,
    messages: Mutex<Vec<Message>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn with_session<R>(&self, id: usize, f: impl FnOnce(&mut SessionRecord) -> R) -> R {
        f(&mut lock(&self.sessions)[id])
    }

    pub(crate) fn push_message(&self, message: Message) {
        lock(&self.messages).push(message);
    }

    pub(crate) fn message_count(&self) -> usize {
        lock(&self.messages).len()
    }
}

/// A running scripted SMTP server on its own threads (one accept thread, one thread per connection), usable from
/// blocking and async tests alike.
///
/// Dropping it stops accepting at once; connection threads notice within ~50 ms and close their sockets. Nothing
/// blocks the test: every loop in the server is bounded (stop flag, client disconnect, 120 s, 64 MiB).
///
/// ```
/// use std::io::{BufRead, BufReader};
/// use std::net::TcpStream;
/// use smtp_test_server::{ServerConfig, TestServer};
///
/// let server = TestServer::start(ServerConfig::new()).unwrap();
/// let stream = TcpStream::connect(server.addr()).unwrap();
/// let mut greeting = String::new();
/// BufReader::new(stream).read_line(&mut greeting).unwrap();
/// assert_eq!(greeting, "220 test.example ESMTP\r\n");
/// ```
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Binds `127.0.0.1:0` (or `[::1]:0` with [`ServerConfig::ipv6`]) and starts accepting.
    pub fn start(config: ServerConfig) -> io::Result<TestServer> {
        let bind: SocketAddr = if config.ipv6 {
            (Ipv6Addr::LOCALHOST, 0).into()
        } else {
            (Ipv4Addr::LOCALHOST, 0).into()
        };
        let listener = TcpListener::bind(bind)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            sessions: Mutex::new(Vec::new()),
            messages: Mutex::new(Vec::new()),
        });
        let tls = config
            .tls
            .as_ref()
            .map(|(pki, cert, _)| pki.server_config(*cert));
        let config = Arc::new(config);
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name(format!("smtp-test-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, accept_shared, config, tls))?;
        Ok(TestServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The listening address (`127.0.0.1:port` or `[::1]:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A snapshot of every connection accepted so far, in accept order (also those still running).
    pub fn sessions(&self) -> Vec<SessionRecord> {
        lock(&self.shared.sessions).clone()
    }

    /// A snapshot of every message accepted so far, in order. A message is recorded before its final reply is
    /// sent, so once the client has seen that reply, the message is here.
    pub fn messages(&self) -> Vec<Message> {
        lock(&self.shared.messages).clone()
    }

    /// Number of connections accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.shared.sessions).len()
    }

    /// Polls (every 5 ms) until `done(sessions, messages)` holds or `timeout` passes; returns whether it held.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[SessionRecord], &[Message]) -> bool,
    ) -> bool {
        let end = Instant::now() + timeout;
        loop {
            {
                let sessions = lock(&self.shared.sessions);
                let messages = lock(&self.shared.messages);
                if done(&sessions, &messages) {
                    return true;
                }
            }
            if Instant::now() >= end {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until at least one connection was accepted and every accepted connection has ended.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |s, _| !s.is_empty() && s.iter().all(|r| r.ended))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    config: Arc<ServerConfig>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((sock, peer)) => {
                let id = {
                    let mut sessions = lock(&shared.sessions);
                    let id = sessions.len();
                    sessions.push(SessionRecord {
                        id,
                        peer: Some(peer),
                        ..SessionRecord::default()
                    });
                    id
                };
                let (conn_shared, config, tls) =
                    (Arc::clone(&shared), Arc::clone(&config), tls.clone());
                let spawned = thread::Builder::new()
                    .name(format!("smtp-test-conn-{id}"))
                    .spawn(move || serve(sock, conn_shared, config, tls, id));
                if let Err(e) = spawned {
                    // The socket went with the closure and is closed.
                    shared.with_session(id, |r| {
                        r.error = Some(format!("spawning the connection thread: {e}"));
                        r.ended = true;
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn serve(
    sock: TcpStream,
    shared: Arc<Shared>,
    config: Arc<ServerConfig>,
    tls: Option<Arc<rustls::ServerConfig>>,
    id: usize,
) {
    // The accepted socket may inherit the listener's non-blocking mode on some platforms.
    let result = sock
        .set_nonblocking(false)
        .and_then(|()| Io::new(sock, Arc::clone(&shared), id))
        .and_then(|io| Session::new(io, config, tls, id).run());
    shared.with_session(id, |r| {
        if let Err(e) = result {
            r.error = Some(e.to_string());
        }
        r.ended = true;
    });
}
