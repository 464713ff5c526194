//! How the bytes get to the server: a direct TCP connection (optionally from a chosen local address), a
//! Unix-domain socket, or a SOCKS5 proxy ([`crate::socks`]). [`Peer`] says which one a connection uses.
//!
//! The types and the runtime-agnostic helpers ([`Socks5Proxy`], [`Peer`], [`socks_handshake`], [`proxy_error`],
//! [`resolve`], [`usable_addresses`]) are shared with the smol adapter; the blocking connect lives here too
//! (crate-private).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use smtp_proto::{Secret, Stage};

use crate::error::{Error, ErrorKind};
use crate::options::ConnectOptions;
use crate::socks::{ProxyError, Socks5Handshake};

/// The default SOCKS port (RFC 1928 §3).
pub const SOCKS_PORT: u16 = 1080;

/// A SOCKS5 proxy (RFC 1928) to reach the server through, with optional username/password authentication
/// (RFC 1929). The password never appears in `Debug` output, errors or transcripts.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Socks5Proxy {
    /// The proxy's host name or IP address.
    pub host: String,
    /// The proxy's port (1080 by default).
    pub port: u16,
    /// User name and password, when the proxy requires them.
    pub credentials: Option<(String, Secret)>,
}

impl fmt::Debug for Socks5Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socks5Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish_non_exhaustive()
    }
}

impl Socks5Proxy {
    /// A proxy at `address` (`host:port`, `[v6]:port`, or a bare host for port 1080), without credentials. An
    /// unparsable address is reported by [`ConnectOptions::validate`].
    pub fn new(address: &str) -> Self {
        let (host, port) = match crate::options::split_host_port(address) {
            Ok((host, port)) => (host, port.unwrap_or(SOCKS_PORT)),
            Err(_) => (address.to_owned(), 0),
        };
        Self {
            host,
            port,
            credentials: None,
        }
    }

    /// `host:port` of the proxy, with brackets around an IPv6 literal.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Where a connection is connected to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Peer {
    /// A direct TCP connection to this address.
    Tcp(SocketAddr),
    /// A Unix-domain socket at this path.
    Unix(PathBuf),
    /// Through the SOCKS5 proxy at `proxy` to `target` (`host:port` as configured: a name is resolved by the
    /// proxy, so its address is not known here).
    Socks5 {
        /// The proxy's address.
        proxy: SocketAddr,
        /// The server, as asked of the proxy.
        target: String,
    },
}

impl Peer {
    /// The server's IP address, when known: for a direct TCP connection.
    pub fn ip(&self) -> Option<IpAddr> {
        self.socket_addr().map(|a| a.ip())
    }

    /// The server's socket address, for a direct TCP connection.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(a) => Some(*a),
            _ => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Socks5 { proxy, target } => write!(f, "{target} via SOCKS5 proxy {proxy}"),
        }
    }
}

/// Resolves `host:port` (an IP literal needs no lookup).
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let resolve_error =
        || Error::new(ErrorKind::Resolve, Stage::Connect).with_context(host.to_owned());
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| resolve_error().with_cause(e))?
        .collect();
    if addrs.is_empty() {
        return Err(resolve_error());
    }
    Ok(addrs)
}

/// The host and port the TCP connection goes to: the proxy's with SOCKS5, else the server's. `None` for a Unix
/// socket.
pub fn first_hop(options: &ConnectOptions) -> Option<(&str, u16)> {
    if options.unix_socket.is_some() {
        return None;
    }
    Some(match &options.socks5 {
        Some(p) => (p.host.as_str(), p.port),
        None => (options.host.as_str(), options.port),
    })
}

/// What the first hop is, for messages: `127.0.0.1:587` or `the SOCKS5 proxy 127.0.0.1:1080`.
pub fn first_hop_description(options: &ConnectOptions) -> String {
    match &options.socks5 {
        Some(p) => format!("the SOCKS5 proxy {}", p.authority()),
        None => options.authority(),
    }
}

/// The addresses a connection from `local` may use: those of the same family. An error that says so when none
/// is left.
pub fn usable_addresses(
    addrs: &[SocketAddr],
    local: Option<IpAddr>,
    what: &str,
) -> Result<Vec<SocketAddr>, Error> {
    let Some(local) = local else {
        return Ok(addrs.to_vec());
    };
    let usable: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| a.is_ipv4() == local.is_ipv4())
        .collect();
    if usable.is_empty() {
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        return Err(Error::config(format!(
            "the local address {local} is IPv{} but {what} resolves only to {}: choose a local address of the \
             other family",
            if local.is_ipv4() { 4 } else { 6 },
            list.join(", ")
        )));
    }
    Ok(usable)
}

/// The SOCKS5 handshake for the options' server and proxy credentials.
pub fn socks_handshake(options: &ConnectOptions) -> Result<Socks5Handshake, Error> {
    let proxy = options
        .socks5
        .as_ref()
        .ok_or_else(|| Error::config("no SOCKS5 proxy is configured"))?;
    Socks5Handshake::new(&options.host, options.port, proxy.credentials.clone())
        .map_err(|e| proxy_error(e, proxy))
}

/// The adapter error for a failed SOCKS5 negotiation with `proxy` (its address is the context; never its
/// password).
pub fn proxy_error(e: ProxyError, proxy: &Socks5Proxy) -> Error {
    Error::new(ErrorKind::Proxy(e), Stage::Connect).with_context(proxy.authority())
}

/// The error for a Unix socket that cannot be opened.
pub fn unix_connect_error(path: &Path, e: io::Error) -> Error {
    Error::new(ErrorKind::Connect, Stage::Connect)
        .with_context(format!("unix:{}", path.display()))
        .with_cause(e)
}

// ----- blocking sockets (crate-private) -----

/// The blocking socket under a session: TCP (direct or through a proxy) or a Unix-domain socket.
#[derive(Debug)]
pub(crate) enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Socket::Tcp($s) => $e,
            #[cfg(unix)]
            Socket::Unix($s) => $e,
        }
    };
}

impl Socket {
    pub(crate) fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        each!(self, s => s.set_read_timeout(d))
    }

    pub(crate) fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        each!(self, s => s.set_write_timeout(d))
    }

    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        each!(self, s => s.set_nonblocking(on))
    }

    /// Whether the peer has certainly sent nothing that was not read yet: one non-blocking peek, which neither
    /// waits nor takes anything. `false` when bytes (or the end of the stream, or an error) are there to read, and
    /// where the check is not available.
    pub(crate) fn nothing_to_read(&self) -> bool {
        #[cfg(unix)]
        {
            use rustix::net::{RecvFlags, recv};
            let mut byte = [0u8; 1];
            let flags = RecvFlags::PEEK | RecvFlags::DONTWAIT;
            let result = each!(self, s => recv(s, &mut byte[..], flags));
            matches!(result, Err(e) if e == rustix::io::Errno::AGAIN)
        }
        #[cfg(not(unix))]
        {
            false
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        each!(self, s => s.shutdown(how))
    }

    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Self::Tcp(s) => Self::Tcp(s.try_clone()?),
            #[cfg(unix)]
            Self::Unix(s) => Self::Unix(s.try_clone()?),
        })
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        each!(self, s => s.read(buf))
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        each!(self, s => s.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        each!(self, s => s.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        each!(self, s => s.flush())
    }
}

/// Opens the transport the options ask for: the Unix socket, or TCP to the first of `addrs` that answers
/// (`addrs` are the first hop's: the proxy's with SOCKS5), then the SOCKS5 negotiation when a proxy is set.
pub(crate) fn connect(
    options: &ConnectOptions,
    addrs: &[SocketAddr],
) -> Result<(Socket, Peer), Error> {
    if let Some(path) = &options.unix_socket {
        return connect_unix(path, options.connect_timeout);
    }
    let what = first_hop_description(options);
    let (mut sock, addr) =
        connect_tcp(addrs, options.connect_timeout, options.local_address, &what)?;
    let Some(proxy) = &options.socks5 else {
        return Ok((Socket::Tcp(sock), Peer::Tcp(addr)));
    };
    let mut handshake = socks_handshake(options)?;
    let deadline = Instant::now() + options.connect_timeout;
    if let Err(e) = negotiate(&mut sock, &mut handshake, deadline) {
        let _ = sock.shutdown(Shutdown::Both);
        let error = proxy_error(e.0, proxy);
        return Err(match e.1 {
            Some(cause) => error.with_cause(cause),
            None => error,
        });
    }
    // The session sets its own timeouts before every read and write.
    Ok((
        Socket::Tcp(sock),
        Peer::Socks5 {
            proxy: addr,
            target: options.authority(),
        },
    ))
}

/// Connects to a Unix-domain socket without ever blocking past `timeout`: the connect is non-blocking, so a
/// server whose listen queue is full fails at once (`EAGAIN`) instead of hanging.
#[cfg(unix)]
fn connect_unix(path: &Path, timeout: Duration) -> Result<(Socket, Peer), Error> {
    use socket2::{Domain, SockAddr, Socket as RawSocket, Type};
    let attempt = (|| {
        let socket = RawSocket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.connect_timeout(&SockAddr::unix(path)?, timeout)?;
        socket.set_nonblocking(false)?;
        Ok::<UnixStream, io::Error>(UnixStream::from(std::os::fd::OwnedFd::from(socket)))
    })();
    match attempt {
        Ok(s) => Ok((Socket::Unix(s), Peer::Unix(path.to_owned()))),
        Err(e) => Err(unix_connect_error(path, e)),
    }
}

#[cfg(not(unix))]
fn connect_unix(_path: &Path, _timeout: Duration) -> Result<(Socket, Peer), Error> {
    Err(Error::config(
        "Unix-domain sockets are not available on this platform",
    ))
}

/// Connects to each address in turn (of the local address's family, when one is set), each within `timeout`.
fn connect_tcp(
    addrs: &[SocketAddr],
    timeout: Duration,
    local: Option<IpAddr>,
    what: &str,
) -> Result<(TcpStream, SocketAddr), Error> {
    let addrs = usable_addresses(addrs, local, what)?;
    let mut failures = Vec::new();
    let mut last = None;
    for addr in &addrs {
        let attempt = match local {
            None => TcpStream::connect_timeout(addr, timeout),
            Some(ip) => connect_from(ip, addr, timeout),
        };
        match attempt {
            Ok(sock) => {
                let _ = sock.set_nodelay(true);
                return Ok((sock, *addr));
            }
            Err(e) => {
                failures.push(format!("{addr}: {e}"));
                last = Some(e);
            }
        }
    }
    let mut context = format!("{what} ({})", failures.join("; "));
    if let Some(ip) = local {
        context.push_str(&format!(" from local address {ip}"));
    }
    let error = Error::new(ErrorKind::Connect, Stage::Connect).with_context(context);
    Err(match last {
        Some(e) => error.with_cause(e),
        None => error,
    })
}

/// Binds a new TCP socket to `local` (any port) and connects it to `addr` within `timeout`.
fn connect_from(local: IpAddr, addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket as RawSocket, Type};
    let socket = RawSocket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket
        .bind(&SockAddr::from(SocketAddr::new(local, 0)))
        .map_err(|e| io::Error::new(e.kind(), format!("binding to {local} failed: {e}")))?;
    socket.connect_timeout(&SockAddr::from(*addr), timeout)?;
    Ok(socket.into())
}

/// Drives the SOCKS5 handshake on a blocking socket until `deadline`. The error carries the I/O cause, if any.
fn negotiate(
    sock: &mut TcpStream,
    handshake: &mut Socks5Handshake,
    deadline: Instant,
) -> Result<(), (ProxyError, Option<io::Error>)> {
    let mut buf = [0u8; 256];
    loop {
        let left = |step| {
            let now = Instant::now();
            if now >= deadline {
                return Err((ProxyError::TimedOut { step }, None));
            }
            Ok((deadline - now).max(Duration::from_millis(1)))
        };
        while let Some(bytes) = handshake.poll_transmit() {
            let step = handshake.step();
            let _ = sock.set_write_timeout(Some(left(step)?));
            sock.write_all(&bytes).map_err(|e| io_failure(e, step))?;
        }
        if handshake.is_done() {
            let _ = sock.set_read_timeout(None);
            let _ = sock.set_write_timeout(None);
            return Ok(());
        }
        let step = handshake.step();
        let want = handshake.wanted().min(buf.len());
        sock.set_read_timeout(Some(left(step)?))
            .map_err(|e| io_failure(e, step))?;
        match sock.read(&mut buf[..want]) {
            Ok(0) => return Err((ProxyError::Closed { step }, None)),
            Ok(n) => handshake.receive(&buf[..n]).map_err(|e| (e, None))?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(e, step)),
        }
    }
}

/// A socket error during the negotiation: a timeout, or the proxy went away.
fn io_failure(e: io::Error, step: &'static str) -> (ProxyError, Option<io::Error>) {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            (ProxyError::TimedOut { step }, None)
        }
        _ => (ProxyError::Closed { step }, Some(e)),
    }
}
