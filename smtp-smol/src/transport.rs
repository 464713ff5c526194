//! Opening the byte stream under a session, without blocking a thread: direct TCP (optionally bound to a chosen
//! local address first), a Unix-domain socket, or TCP to a SOCKS5 proxy followed by the negotiation of
//! [`smtp_blocking::socks`] driven with `async-io`. Every step is raced against the connect timeout.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smtp_blocking::socks::{ProxyError, Socks5Handshake};
use smtp_blocking::transport::{self, Peer};
use smtp_blocking::{Error, ErrorKind};
use smtp_proto::Stage;

use crate::settings::Settings;
use crate::transcript::Transcript;

/// The socket under a session: TCP (direct or through a proxy) or a Unix-domain socket.
#[derive(Debug)]
pub(crate) enum Net {
    Tcp(Async<TcpStream>),
    #[cfg(unix)]
    Unix(Async<UnixStream>),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut *$self {
            Net::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            #[cfg(unix)]
            Net::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
        }
    };
}

impl Net {
    /// Ready once the socket reported readability since this task last got `Pending` (a hint: the read that follows
    /// may still find nothing). `Pending` registers interest with the reactor.
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Net::Tcp(s) => s.poll_readable(cx),
            #[cfg(unix)]
            Net::Unix(s) => s.poll_readable(cx),
        }
    }
}

impl AsyncRead for Net {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Net {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_flush(cx))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_close(cx))
    }
}

/// Races `fut` against `timeout`; `None` when the time ran out first.
async fn within<T>(timeout: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        Timer::after(timeout).await;
        None
    })
    .await
}

/// Opens the transport the options ask for.
pub(crate) async fn connect(
    settings: &Settings,
    transcript: &mut Transcript,
) -> Result<(Net, Peer), Error> {
    let options = &settings.options;
    if let Some(path) = &options.unix_socket {
        return match within(options.connect_timeout, connect_unix(path)).await {
            Some(result) => result,
            None => Err(transport::unix_connect_error(
                path,
                io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
            )),
        };
    }
    let (host, port) = transport::first_hop(options).expect("not a Unix socket");
    let what = transport::first_hop_description(options);
    let addrs = resolve(host, port, options.connect_timeout).await?;
    let (mut stream, addr) = connect_tcp(
        &addrs,
        options.connect_timeout,
        options.local_address,
        &what,
        transcript,
    )
    .await?;
    let Some(proxy) = &options.socks5 else {
        return Ok((Net::Tcp(stream), Peer::Tcp(addr)));
    };
    let mut handshake = transport::socks_handshake(options)?;
    let deadline = Instant::now() + options.connect_timeout;
    if let Err((e, cause)) = negotiate(&mut stream, &mut handshake, deadline).await {
        let error = transport::proxy_error(e, proxy);
        return Err(match cause {
            Some(c) => error.with_cause(c),
            None => error,
        });
    }
    if let Some(bound) = handshake.bound_address() {
        transcript.note(format!(
            "SOCKS5 proxy {addr} connected to {} (bound {bound})",
            options.authority()
        ));
    }
    Ok((
        Net::Tcp(stream),
        Peer::Socks5 {
            proxy: addr,
            target: options.authority(),
        },
    ))
}

#[cfg(unix)]
async fn connect_unix(path: &std::path::Path) -> Result<(Net, Peer), Error> {
    match Async::<UnixStream>::connect(path).await {
        Ok(s) => Ok((Net::Unix(s), Peer::Unix(path.to_owned()))),
        Err(e) => Err(transport::unix_connect_error(path, e)),
    }
}

#[cfg(not(unix))]
async fn connect_unix(_path: &std::path::Path) -> Result<(Net, Peer), Error> {
    Err(Error::config(
        "Unix-domain sockets are not available on this platform",
    ))
}

/// Resolves `host` on the `blocking` thread pool (unless it is an IP literal), within `timeout`.
async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = host.to_owned();
    let resolved = within(
        timeout,
        blocking::unblock(move || (lookup.as_str(), port).to_socket_addrs()),
    )
    .await;
    let error = || Error::new(ErrorKind::Resolve, Stage::Connect).with_context(host.to_owned());
    match resolved {
        Some(Ok(a)) => {
            let addrs: Vec<SocketAddr> = a.collect();
            if addrs.is_empty() {
                return Err(error());
            }
            Ok(addrs)
        }
        Some(Err(e)) => Err(error().with_cause(e)),
        None => Err(error().with_cause(io::Error::new(
            io::ErrorKind::TimedOut,
            "name resolution timed out",
        ))),
    }
}

/// Connects to each address in turn (IPv6 and IPv4, in resolver order; only the local address's family when one
/// is set), each within the connect timeout.
async fn connect_tcp(
    addrs: &[SocketAddr],
    timeout: Duration,
    local: Option<IpAddr>,
    what: &str,
    transcript: &mut Transcript,
) -> Result<(Async<TcpStream>, SocketAddr), Error> {
    let addrs = transport::usable_addresses(addrs, local, what)?;
    let mut last = None;
    for addr in &addrs {
        let attempt = within(timeout, async {
            match local {
                None => Async::<TcpStream>::connect(*addr).await,
                Some(ip) => connect_from(ip, *addr).await,
            }
        })
        .await;
        match attempt {
            Some(Ok(s)) => {
                let _ = s.get_ref().set_nodelay(true);
                return Ok((s, *addr));
            }
            Some(Err(e)) => {
                transcript.note(format!("connecting to {addr} failed: {e}"));
                last = Some(e);
            }
            None => {
                transcript.note(format!("connecting to {addr} timed out after {timeout:?}"));
                last = Some(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
            }
        }
    }
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let mut context = format!("{what} ({})", list.join(", "));
    if let Some(ip) = local {
        context.push_str(&format!(" from local address {ip}"));
    }
    let mut e = Error::new(ErrorKind::Connect, Stage::Connect).with_context(context);
    if let Some(cause) = last {
        e = e.with_cause(cause);
    }
    Err(e)
}

/// A non-blocking socket bound to `local` (any port), connected to `addr`: the connect starts (`EINPROGRESS`), the
/// socket becomes writable when it completes, and `SO_ERROR` says how.
async fn connect_from(local: IpAddr, addr: SocketAddr) -> io::Result<Async<TcpStream>> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&SockAddr::from(SocketAddr::new(local, 0)))
        .map_err(|e| io::Error::new(e.kind(), format!("binding to {local} failed: {e}")))?;
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if in_progress(&e) => {}
        Err(e) => return Err(e),
    }
    let stream = Async::new(TcpStream::from(socket))?;
    stream.writable().await?;
    match stream.get_ref().take_error()? {
        None => Ok(stream),
        Some(e) => Err(e),
    }
}

/// A non-blocking connect that has started and will complete later.
fn in_progress(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
        || rustix::io::Errno::from_io_error(e) == Some(rustix::io::Errno::INPROGRESS)
}

/// Drives the SOCKS5 handshake until `deadline`. The error carries the I/O cause, if any.
async fn negotiate(
    stream: &mut Async<TcpStream>,
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
            Ok(deadline - now)
        };
        while let Some(bytes) = handshake.poll_transmit() {
            let step = handshake.step();
            match within(left(step)?, stream.write_all(&bytes)).await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err((ProxyError::Closed { step }, Some(e))),
                None => return Err((ProxyError::TimedOut { step }, None)),
            }
        }
        if handshake.is_done() {
            return Ok(());
        }
        let step = handshake.step();
        let want = handshake.wanted().min(buf.len());
        match within(left(step)?, stream.read(&mut buf[..want])).await {
            Some(Ok(0)) => return Err((ProxyError::Closed { step }, None)),
            Some(Ok(n)) => handshake.receive(&buf[..n]).map_err(|e| (e, None))?,
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Some(Err(e)) => return Err((ProxyError::Closed { step }, Some(e))),
            None => return Err((ProxyError::TimedOut { step }, None)),
        }
    }
}
