//! Driving the sans-IO core by hand over a plain `std::net::TcpStream`: the whole adapter in one loop.
//!
//! Run: `cargo run -p smtp-proto --example std_tcp` (starts its own loopback server).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // an adapter owns the clock and the socket

use std::io::{ErrorKind as Io, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use smtp_proto::{Address, Client, Config, Envelope, Event, Outcome, ReversePath, TlsPolicy};
use smtp_test_server::{ServerConfig, TestServer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(ServerConfig::new())?; // a loopback ESMTP server for the example
    let mut socket = TcpStream::connect(server.addr())?;
    socket.set_nodelay(true)?;

    let mut config = Config::default();
    config.tls = TlsPolicy::None; // loopback only: plaintext must be asked for by name
    let mut client = Client::new(config, Instant::now());
    let envelope = Envelope::new(
        ReversePath::Mailbox("alice@example.org".parse::<Address>()?),
        ["bob@example.net".parse::<Address>()?],
    );
    let mut envelope = Some(envelope);
    let body = b"Subject: hello\r\n\r\nSent by a hand-written drive loop.\r\n";
    let mut outcome = None;
    let mut buf = [0u8; 16 * 1024];

    loop {
        // 1. Write everything the machine wants to send.
        while let Some(bytes) = client.poll_transmit(Instant::now()) {
            socket.write_all(&bytes)?;
        }
        // 2. Handle events; commands they trigger are written on the next turn.
        let mut issued = false;
        while let Some(event) = client.poll_event() {
            match event {
                Event::Ready { .. } => {
                    client.send_mail(envelope.take().expect("one message"))?;
                    issued = true;
                }
                Event::ReadyForBody { .. } => {
                    let mut rest = &body[..];
                    while !rest.is_empty() {
                        let n = client.write_body(rest)?;
                        rest = &rest[n..];
                        while let Some(bytes) = client.poll_transmit(Instant::now()) {
                            socket.write_all(&bytes)?;
                        }
                    }
                    client.finish_body()?;
                    issued = true;
                }
                Event::TransactionComplete(report) => {
                    println!(
                        "outcome: {:?}, server said: {:?}",
                        report.outcome, report.final_reply
                    );
                    outcome = Some(report.outcome);
                    client.quit();
                    issued = true;
                }
                Event::Closed { error: None } => return finish(outcome),
                Event::Closed { error: Some(e) } => return Err(e.into()),
                _ => {}
            }
        }
        if issued {
            continue;
        }
        // 3. Wait for the server, but never past the machine's deadline.
        let deadline = client.poll_timeout();
        let now = Instant::now();
        match deadline {
            Some(d) if d <= now => {
                client.handle_timeout(now);
                continue;
            }
            Some(d) => socket.set_read_timeout(Some(d - now))?,
            None => socket.set_read_timeout(None)?,
        }
        match socket.read(&mut buf) {
            Ok(0) => client.receive_eof(Instant::now()),
            Ok(n) => client.receive(Instant::now(), &buf[..n]),
            Err(e) if matches!(e.kind(), Io::WouldBlock | Io::TimedOut) => {
                client.handle_timeout(Instant::now())
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn finish(outcome: Option<Outcome>) -> Result<(), Box<dyn std::error::Error>> {
    match outcome {
        Some(Outcome::Accepted) => Ok(()),
        other => Err(format!("message not accepted: {other:?}").into()),
    }
}
