//! Load generator for the protocol-level benchmarks: sends messages to an SMTP server with one of four clients and
//! prints one line of results. `benches/run.sh` runs it (and `smtp-source`) as separate processes, so that client
//! CPU and peak RSS are measured the same way for every client (`/usr/bin/time`).
//!
//! ```text
//! smtp-load --client ours-blocking|ours-smol|lettre-blocking|lettre-tokio
//!           --server 127.0.0.1:2600 [--messages N] [--size BYTES] [--connections C] [--new-connection]
//!           [--stream]   # generate the body on the fly (never held in memory); ours only
//!           [--batch]    # ours on reused connections: `send_batch_with` (the next envelope pipelined behind
//!                        # the previous end of data) instead of one `send_bytes` per message
//! smtp-load --rtt 127.0.0.1:2526 [--samples N]   # median NOOP round trip on one connection, in ms
//! ```
//!
//! Output: `client=... messages=N seconds=S msgs_per_s=R` (wall time measured inside the process, from the first
//! connection to the last reply, so process start-up is not counted).
//!
//! Every message must be accepted: any failure aborts with a non-zero status, so a broken client cannot look fast.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_benches::{BodyStream, message};

const FROM: &str = "bench@example.test";
const TO: &str = "rcpt@sink.example.test";

#[derive(Clone, Debug)]
struct Args {
    client: String,
    server: SocketAddr,
    messages: usize,
    size: u64,
    connections: usize,
    new_connection: bool,
    /// With `--new-connection`: QUIT after the message's verdict instead of pipelined behind its end.
    separate_quit: bool,
    stream: bool,
    /// On reused connections: all of a connection's messages through one `send_batch_with` call.
    batch: bool,
    rtt: bool,
    samples: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        client: String::new(),
        server: "127.0.0.1:2600".parse().expect("valid"),
        messages: 1000,
        size: 2048,
        connections: 1,
        new_connection: false,
        separate_quit: false,
        stream: false,
        batch: false,
        rtt: false,
        samples: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--client" => args.client = value()?,
            "--server" => args.server = value()?.parse().map_err(|e| format!("--server: {e}"))?,
            "--messages" => args.messages = value()?.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--size" => args.size = value()?.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--connections" => {
                args.connections = value()?.parse().map_err(|e| format!("{flag}: {e}"))?
            }
            "--new-connection" => args.new_connection = true,
            "--separate-quit" => args.separate_quit = true,
            "--stream" => args.stream = true,
            "--batch" => args.batch = true,
            "--rtt" => {
                args.rtt = true;
                args.server = value()?.parse().map_err(|e| format!("--rtt: {e}"))?;
            }
            "--samples" => args.samples = value()?.parse().map_err(|e| format!("{flag}: {e}"))?,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.batch && (args.new_connection || args.stream || !args.client.starts_with("ours-")) {
        return Err(
            "--batch is for ours-* clients on reused connections with bodies in memory".into(),
        );
    }
    if args.connections == 0 || args.messages == 0 {
        return Err("--connections and --messages must be positive".into());
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("smtp-load: {e}");
            std::process::exit(64);
        }
    };
    if args.rtt {
        match measure_rtt(args.server, args.samples) {
            Ok(ms) => println!("rtt_ms={ms:.3}"),
            Err(e) => {
                eprintln!("smtp-load: rtt: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    // The message is built before the clock starts (a streamed body is generated while sending).
    let body = Arc::new(if args.stream {
        Vec::new()
    } else {
        message(args.size as usize)
    });
    let start = Instant::now();
    let result = match args.client.as_str() {
        "ours-blocking" => threads(&args, |a, n| ours_blocking(a, n, &body)),
        "lettre-blocking" => threads(&args, |a, n| lettre_blocking(a, n, &body)),
        "ours-smol" => ours_smol(&args, &body),
        "lettre-tokio" => lettre_tokio(&args, &body),
        other => Err(format!("unknown client {other:?}")),
    };
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(()) => println!(
            "client={} messages={} seconds={seconds:.6} msgs_per_s={:.1}",
            args.client,
            args.messages,
            args.messages as f64 / seconds
        ),
        Err(e) => {
            eprintln!("smtp-load: {}: {e}", args.client);
            std::process::exit(1);
        }
    }
}

/// Splits `args.messages` over `args.connections` OS threads running `work(args, count)`.
fn threads(
    args: &Args,
    work: impl Fn(&Args, usize) -> Result<(), String> + Sync,
) -> Result<(), String> {
    if args.connections == 1 {
        return work(args, args.messages);
    }
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = share(args.messages, args.connections)
            .map(|n| scope.spawn(move || work(args, n)))
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "a thread panicked".to_string())?)
    })
}

/// `total` split into `parts` counts that differ by at most one.
fn share(total: usize, parts: usize) -> impl Iterator<Item = usize> {
    (0..parts).map(move |i| total / parts + usize::from(i < total % parts))
}

fn ours_envelope() -> smtp_proto::Envelope {
    smtp_proto::Envelope::new(
        smtp_proto::ReversePath::Mailbox(FROM.parse().expect("valid")),
        [TO.parse().expect("valid")],
    )
}

fn ours_options(server: SocketAddr) -> smtp_blocking::ConnectOptions {
    let mut options = smtp_blocking::ConnectOptions::new(server.ip().to_string(), server.port())
        .with_tls(smtp_blocking::TlsMode::None);
    // A benchmark connection is never idle long enough to need a check.
    options.noop_after_idle = None;
    options
}

fn check_ours(report: &smtp_blocking::SendReport) -> Result<(), String> {
    if report.outcome == smtp_blocking::Outcome::Accepted {
        Ok(())
    } else {
        Err(format!("not accepted: {report:?}"))
    }
}

/// A batch result checked as [`check_ours`] does; the first failure is kept.
fn keep_first_error<E: std::fmt::Display>(
    first_error: &mut Option<String>,
    result: Result<smtp_blocking::SendReport, E>,
) {
    if let Err(e) = result
        .map_err(|e| e.to_string())
        .and_then(|r| check_ours(&r))
    {
        first_error.get_or_insert(e);
    }
}

fn ours_blocking(args: &Args, count: usize, body: &[u8]) -> Result<(), String> {
    let options = ours_options(args.server);
    let envelope = ours_envelope();
    if args.batch {
        let mut c = smtp_blocking::Connection::connect(&options).map_err(|e| e.to_string())?;
        let mut first_error = None;
        c.send_batch_with((0..count).map(|_| (&envelope, body)), |_, result| {
            keep_first_error(&mut first_error, result)
        });
        if let Some(e) = first_error {
            return Err(e);
        }
        return c.quit().map_err(|e| e.to_string());
    }
    let mut conn = None;
    for _ in 0..count {
        if args.new_connection && !args.separate_quit && !args.stream {
            // QUIT pipelined behind the end of the message.
            let c = smtp_blocking::Connection::connect(&options).map_err(|e| e.to_string())?;
            let report = c
                .send_bytes_and_quit(&envelope, body)
                .map_err(|e| e.to_string())?;
            check_ours(&report)?;
            continue;
        }
        let c = match &mut conn {
            Some(c) => c,
            None => conn
                .insert(smtp_blocking::Connection::connect(&options).map_err(|e| e.to_string())?),
        };
        let report = if args.stream {
            c.send(&envelope, BodyStream::new(args.size))
        } else {
            c.send_bytes(&envelope, body)
        }
        .map_err(|e| e.to_string())?;
        check_ours(&report)?;
        if args.new_connection {
            conn.take()
                .expect("connected")
                .quit()
                .map_err(|e| e.to_string())?;
        }
    }
    if let Some(c) = conn {
        c.quit().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// [`BodyStream`] as an `AsyncRead` (it never blocks).
struct AsyncBody(BodyStream);

impl futures_lite::AsyncRead for AsyncBody {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(std::io::Read::read(&mut self.0, buf))
    }
}

/// All connections as tasks on one thread (the async clients are compared on one thread each).
fn ours_smol(args: &Args, body: &[u8]) -> Result<(), String> {
    let error = std::sync::Mutex::new(None);
    let executor = smol::LocalExecutor::new();
    let tasks: Vec<_> = share(args.messages, args.connections)
        .map(|count| {
            let error = &error;
            executor.spawn(async move {
                if let Err(e) = ours_smol_one(args, count, body).await {
                    *error.lock().expect("not poisoned") = Some(e);
                }
            })
        })
        .collect();
    smol::block_on(executor.run(async {
        for task in tasks {
            task.await;
        }
    }));
    drop(executor);
    match error.into_inner().expect("not poisoned") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn ours_smol_one(args: &Args, count: usize, body: &[u8]) -> Result<(), String> {
    let options = ours_options(args.server);
    let envelope = ours_envelope();
    if args.batch {
        let mut c = smtp_smol::Connection::connect(&options)
            .await
            .map_err(|e| e.to_string())?;
        let mut first_error = None;
        c.send_batch_with((0..count).map(|_| (&envelope, body)), |_, result| {
            keep_first_error(&mut first_error, result)
        })
        .await;
        if let Some(e) = first_error {
            return Err(e);
        }
        return c.quit().await.map_err(|e| e.to_string());
    }
    let mut conn = None;
    for _ in 0..count {
        if args.new_connection && !args.separate_quit && !args.stream {
            // QUIT pipelined behind the end of the message.
            let c = smtp_smol::Connection::connect(&options)
                .await
                .map_err(|e| e.to_string())?;
            let report = c
                .send_and_quit(&envelope, body)
                .await
                .map_err(|e| e.to_string())?;
            check_ours(&report)?;
            continue;
        }
        let c = match &mut conn {
            Some(c) => c,
            None => conn.insert(
                smtp_smol::Connection::connect(&options)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        };
        let report = if args.stream {
            c.send(&envelope, AsyncBody(BodyStream::new(args.size)))
                .await
        } else {
            c.send_bytes(&envelope, body).await
        }
        .map_err(|e| e.to_string())?;
        check_ours(&report)?;
        if args.new_connection {
            conn.take()
                .expect("connected")
                .quit()
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    if let Some(c) = conn {
        c.quit().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn lettre_envelope() -> lettre::address::Envelope {
    lettre::address::Envelope::new(
        Some(FROM.parse().expect("valid")),
        vec![TO.parse().expect("valid")],
    )
    .expect("valid")
}

fn hello() -> lettre::transport::smtp::extension::ClientId {
    lettre::transport::smtp::extension::ClientId::Domain("localhost".into())
}

/// lettre's blocking transport: its pool keeps one connection per thread open (reused connection), or one
/// `SmtpConnection` per message (new connection per message, as lettre does without its pool).
fn lettre_blocking(args: &Args, count: usize, body: &[u8]) -> Result<(), String> {
    use lettre::Transport;
    use lettre::transport::smtp::client::SmtpConnection;
    if args.stream {
        return Err("lettre cannot stream a body: it needs the whole message in memory".into());
    }
    let envelope = lettre_envelope();
    if args.new_connection {
        for _ in 0..count {
            let mut conn = SmtpConnection::connect(
                args.server,
                Some(Duration::from_secs(30)),
                &hello(),
                None,
                None,
            )
            .map_err(|e| e.to_string())?;
            conn.send(&envelope, body).map_err(|e| e.to_string())?;
            conn.quit().map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let transport = lettre::SmtpTransport::builder_dangerous(args.server.ip().to_string())
        .port(args.server.port())
        .hello_name(hello())
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(1))
        .build();
    for _ in 0..count {
        let response = transport
            .send_raw(&envelope, body)
            .map_err(|e| e.to_string())?;
        if !response.is_positive() {
            return Err(format!("not accepted: {response:?}"));
        }
    }
    Ok(())
}

/// lettre's tokio transport, all connections as tasks on one current-thread runtime.
fn lettre_tokio(args: &Args, body: &[u8]) -> Result<(), String> {
    use lettre::AsyncTransport;
    use lettre::transport::smtp::client::AsyncSmtpConnection;
    if args.stream {
        return Err("lettre cannot stream a body: it needs the whole message in memory".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    let body: Arc<[u8]> = body.into();
    local.block_on(&runtime, async {
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
            args.server.ip().to_string(),
        )
        .port(args.server.port())
        .hello_name(hello())
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(args.connections as u32))
        .build();
        let mut tasks = Vec::new();
        for count in share(args.messages, args.connections) {
            let transport = transport.clone();
            let body = body.clone();
            let args = args.clone();
            tasks.push(tokio::task::spawn_local(async move {
                let envelope = lettre_envelope();
                for _ in 0..count {
                    if args.new_connection {
                        let mut conn = AsyncSmtpConnection::connect_tokio1(
                            args.server,
                            Some(Duration::from_secs(30)),
                            &hello(),
                            None,
                            None,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                        conn.send(&envelope, &body)
                            .await
                            .map_err(|e| e.to_string())?;
                        conn.quit().await.map_err(|e| e.to_string())?;
                    } else {
                        let response = transport
                            .send_raw(&envelope, &body)
                            .await
                            .map_err(|e| e.to_string())?;
                        if !response.is_positive() {
                            return Err(format!("not accepted: {response:?}"));
                        }
                    }
                }
                Ok::<(), String>(())
            }));
        }
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        Ok(())
    })
}

/// The median time of `samples` NOOP round trips on one plain connection (after the greeting and EHLO).
fn measure_rtt(server: SocketAddr, samples: usize) -> Result<f64, String> {
    let stream = TcpStream::connect(server).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let read_reply = |reader: &mut BufReader<TcpStream>| -> Result<(), String> {
        // Bounded: a reply of more than 100 lines is not what this tool talks to.
        for _ in 0..100 {
            let mut line = String::new();
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("connection closed".into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
        Err("reply too long".into())
    };
    read_reply(&mut reader)?;
    writer
        .write_all(b"EHLO localhost\r\n")
        .map_err(|e| e.to_string())?;
    read_reply(&mut reader)?;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        let start = Instant::now();
        writer.write_all(b"NOOP\r\n").map_err(|e| e.to_string())?;
        read_reply(&mut reader)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    writer.write_all(b"QUIT\r\n").map_err(|e| e.to_string())?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
