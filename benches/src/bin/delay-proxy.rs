//! A TCP proxy that adds a fixed delay in each direction, to benchmark round trips on loopback (the kernel here has
//! no netem).
//!
//! ```text
//! delay-proxy --listen 127.0.0.1:12526 --upstream 127.0.0.1:2526 --delay-ms 5 [--max-seconds 3600]
//! ```
//!
//! Each chunk read from one side is written to the other side `delay` after it was read, in order, so a round trip
//! through the proxy takes `2 * delay` more than without it; bandwidth is not limited. TCP_NODELAY is set on both
//! sockets so that the proxy adds no Nagle delay of its own. Only loopback addresses are accepted, and the proxy
//! exits by itself after `--max-seconds`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn main() {
    let mut listen: Option<SocketAddr> = None;
    let mut upstream: Option<SocketAddr> = None;
    let mut delay = Duration::from_millis(5);
    let mut max = Duration::from_secs(3600);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| die(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--listen" => {
                listen = Some(
                    value
                        .parse()
                        .unwrap_or_else(|e| die(&format!("--listen: {e}"))),
                )
            }
            "--upstream" => {
                upstream = Some(
                    value
                        .parse()
                        .unwrap_or_else(|e| die(&format!("--upstream: {e}"))),
                )
            }
            "--delay-ms" => {
                delay = Duration::from_secs_f64(
                    value
                        .parse::<f64>()
                        .unwrap_or_else(|e| die(&format!("{e}")))
                        / 1e3,
                )
            }
            "--max-seconds" => {
                max = Duration::from_secs(value.parse().unwrap_or_else(|e| die(&format!("{e}"))))
            }
            _ => die(&format!("unknown argument {flag}")),
        }
    }
    let (Some(listen), Some(upstream)) = (listen, upstream) else {
        die("--listen and --upstream are required");
    };
    if !listen.ip().is_loopback() || !upstream.ip().is_loopback() {
        die("only loopback addresses are allowed");
    }
    let listener =
        TcpListener::bind(listen).unwrap_or_else(|e| die(&format!("bind {listen}: {e}")));
    eprintln!("delay-proxy: {listen} -> {upstream}, +{delay:?} each way");
    let deadline = Instant::now() + max;
    std::thread::spawn(move || {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        eprintln!("delay-proxy: --max-seconds reached, exiting");
        std::process::exit(0);
    });
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        for s in [&client, &server] {
            let _ = s.set_nodelay(true);
        }
        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => continue,
        };
        pipe(client, server, delay);
        pipe(s2, c2, delay);
    }
}

/// Copies `from` to `to`, each chunk delayed by `delay`: a reader thread stamps chunks, a writer thread sends each
/// when its time has come.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` tells the writer to shut down its side once everything before was sent.
    });
    std::thread::spawn(move || {
        while let Ok((due, chunk)) = rx.recv() {
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

fn die(message: &str) -> ! {
    eprintln!("delay-proxy: {message}");
    std::process::exit(64);
}
