//! The `smtp-send` binary end to end against the scripted server: mismatch diagnosis within the deadline, Auto
//! delivering, exit codes, `--json`, and no password byte in the transcript.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{MARGIN, token, within};
use serde_json::Value;
use smtp_test_server::{Fault, ServerConfig, TestPki, TestServer};

fn ca_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.pem", token("smtp-send-test-ca")));
    std::fs::write(&path, TestPki::shared().ca_pem()).unwrap();
    path
}

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config).expect("start the test server")
}

/// Runs smtp-send with `args` (and `env`), optional stdin; asserts it ends within `limit` plus the margin.
fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>, limit: Duration) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smtp-send"));
    cmd.args(args)
        .env_remove("SMTP_PASSWORD")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (out, _) = within(limit, || {
        let mut child = cmd.spawn().expect("spawn smtp-send");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        child.wait_with_output().unwrap()
    });
    out
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let v: Value = serde_json::from_str(lines.next().expect("a JSON line")).expect("valid JSON");
    assert!(lines.next().is_none(), "one object only: {text}");
    v
}

fn server_arg(s: &TestServer) -> String {
    format!("127.0.0.1:{}", s.port())
}

#[test]
fn starttls_forced_on_an_implicit_port_fails_fast_with_the_mismatch_text() {
    let server = start(ServerConfig::new().implicit_tls(&TestPki::shared()));
    let ca = ca_file();
    let out = run(
        &[
            "--server",
            &server_arg(&server),
            "--tls",
            "starttls",
            "--timeout",
            "2",
            "--ca-file",
            ca.to_str().unwrap(),
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--subject",
            "x",
        ],
        &[],
        None,
        Duration::from_secs(2) + MARGIN,
    );
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("this port most likely expects implicit TLS (smtps://"),
        "{err}"
    );
    assert!(server.messages().is_empty());
}

#[test]
fn auto_delivers_on_an_implicit_port() {
    let server = start(ServerConfig::new().implicit_tls(&TestPki::shared()));
    let ca = ca_file();
    let out = run(
        &[
            "--server",
            &server_arg(&server),
            "--tls",
            "auto",
            "--timeout",
            "5",
            "--ca-file",
            ca.to_str().unwrap(),
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--subject",
            "auto",
            "--body",
            "hello",
            "--header",
            "X-Test: yes",
            "--json",
        ],
        &[],
        None,
        Duration::from_secs(10),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["outcome"], "accepted");
    assert_eq!(v["tls"], "implicit");
    let m = &server.messages()[0];
    let body = String::from_utf8_lossy(&m.body);
    for header in [
        "Subject: auto",
        "X-Test: yes",
        "Date: ",
        "Message-ID: <",
        "@example.org>",
    ] {
        assert!(body.contains(header), "{header} missing: {body}");
    }
    assert!(m.tls);
}

#[test]
fn wrong_password_exits_77_and_never_shows_the_password() {
    let pki = TestPki::shared();
    let server = start(
        ServerConfig::new()
            .starttls(&pki)
            .user("alice", "right-password"),
    );
    let ca = ca_file();
    let secret = "Wr0ng-Pa55word-XYZ";
    for mech in ["PLAIN", "LOGIN"] {
        let out = run(
            &[
                "--server",
                &server_arg(&server),
                "--tls",
                "starttls",
                "--ca-file",
                ca.to_str().unwrap(),
                "--user",
                "alice",
                "--password-env",
                "MY_PASS",
                "--auth",
                mech,
                "--transcript",
                "--timeout",
                "5",
                "--from",
                "a@example.org",
                "--to",
                "b@example.org",
            ],
            &[("MY_PASS", secret)],
            None,
            Duration::from_secs(5),
        );
        assert_eq!(code(&out), 77, "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("authentication failed"), "{err}");
        assert!(err.contains(&format!("C: AUTH {mech}")), "{err}");
        assert!(err.contains("S: 535"), "{err}");
        // Neither the password nor any of its encodings.
        let b64 = |s: &[u8]| base64_encode(s);
        for needle in [
            secret.to_owned(),
            b64(secret.as_bytes()),
            b64(format!("\0alice\0{secret}").as_bytes()),
            b64(format!("alice\0alice\0{secret}").as_bytes()),
        ] {
            assert!(!err.contains(&needle), "{needle:?} leaked: {err}");
            assert!(!String::from_utf8_lossy(&out.stdout).contains(&needle));
        }
    }
    // The right password from SMTP_PASSWORD works.
    let out = run(
        &[
            "--server",
            &server_arg(&server),
            "--ca-file",
            ca.to_str().unwrap(),
            "--user",
            "alice",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--timeout",
            "5",
        ],
        &[("SMTP_PASSWORD", "right-password")],
        None,
        Duration::from_secs(5),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn json_shape_and_exit_codes_for_rejection_and_partial() {
    let server = start(
        ServerConfig::new()
            .reject_recipient("nobody@example.org")
            .tempfail_recipient("later@example.org"),
    );
    let base = [
        "--server",
        &server_arg(&server),
        "--tls",
        "none",
        "--from",
        "a@example.org",
        "--json",
        "--timeout",
        "5",
    ];
    let with = |extra: &[&str]| -> Output {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        run(&args, &[], None, Duration::from_secs(5))
    };

    let out = with(&["--to", "nobody@example.org"]);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["outcome"], "rejected");
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["tls"], "none");
    let r = &v["recipients"][0];
    assert_eq!(r["address"], "nobody@example.org");
    assert_eq!(r["accepted"], false);
    assert_eq!(r["code"], 550);
    assert_eq!(r["enhanced"], "5.1.1");
    assert!(r["text"].is_string());

    let out = with(&["--to", "b@example.org", "--to", "nobody@example.org"]);
    assert_eq!(code(&out), 69, "partial, permanent: {}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["outcome"], "partial");
    assert_eq!(v["recipients"][0]["accepted"], true);
    assert_eq!(v["recipients"][0]["code"], 250);
    assert_eq!(v["recipients"][1]["accepted"], false);

    let out = with(&["--to", "b@example.org", "--to", "later@example.org"]);
    assert_eq!(code(&out), 75, "partial, temporary: {}", stderr(&out));
    assert_eq!(json(&out)["outcome"], "partial");

    let out = with(&["--to", "b@example.org"]);
    assert_eq!(code(&out), 0);
    let v = json(&out);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["error", "outcome", "recipients", "tls", "transactions"]
    );
    assert_eq!(v["transactions"], 1);
    let rkeys: Vec<&str> = v["recipients"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(rkeys, ["accepted", "address", "code", "enhanced", "text"]);
}

#[test]
fn recipients_the_server_defers_get_the_message_in_a_further_transaction() {
    // RFC 9422 RCPTMAX=2: five recipients take three transactions on one connection, all delivered.
    let server = start(
        ServerConfig::new()
            .limits(Some("RCPTMAX=2"))
            .max_recipients(2),
    );
    let to: Vec<String> = (1..=5).map(|i| format!("r{i}@example.org")).collect();
    let mut args = vec![
        "--server".to_owned(),
        server_arg(&server),
        "--tls".to_owned(),
        "none".to_owned(),
        "--from".to_owned(),
        "a@example.org".to_owned(),
        "--subject".to_owned(),
        "deferred recipients".to_owned(),
        "--json".to_owned(),
        "--timeout".to_owned(),
        "5".to_owned(),
    ];
    for t in &to {
        args.push("--to".to_owned());
        args.push(t.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, &[], None, Duration::from_secs(10));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["outcome"], "accepted");
    assert_eq!(v["transactions"], 3);
    let got: Vec<&str> = v["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(got, to.iter().map(String::as_str).collect::<Vec<_>>());
    let batches: Vec<Vec<String>> = server.messages().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(
        batches,
        vec![to[0..2].to_vec(), to[2..4].to_vec(), to[4..5].to_vec()]
    );
}

#[test]
fn unknown_outcome_and_errors_in_json() {
    let server = start(ServerConfig::new().fault(Fault::ResetAfterBody));
    let out = run(
        &[
            "--server",
            &server_arg(&server),
            "--tls",
            "none",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--json",
            "--timeout",
            "3",
        ],
        &[],
        None,
        Duration::from_secs(3),
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["outcome"], "unknown");
    assert_eq!(v["error"]["kind"], "connection_closed");
    assert_eq!(v["error"]["stage"], "data_termination");

    let silent = start(ServerConfig::new().fault(Fault::SilentOnConnect));
    let out = run(
        &[
            "--server",
            &server_arg(&silent),
            "--tls",
            "none",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--json",
            "--timeout",
            "1",
        ],
        &[],
        None,
        Duration::from_secs(2),
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["outcome"], "error");
    assert_eq!(v["error"]["kind"], "timeout");
    assert_eq!(v["error"]["stage"], "greeting");
    assert_eq!(v["recipients"][0]["accepted"], false);
}

#[test]
fn raw_message_from_stdin_and_usage_errors() {
    let server = start(ServerConfig::new());
    let msg = b"Subject: raw\r\nFrom: a@example.org\r\n\r\n.dot line\r\n";
    let out = run(
        &[
            "--server",
            &server_arg(&server),
            "--tls",
            "none",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--message",
            "-",
        ],
        &[],
        Some(msg),
        Duration::from_secs(5),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("accepted"));
    assert_eq!(server.messages()[0].body, msg);

    // Usage errors exit 64: a bad address, a password in the URL, --message with composition flags.
    let srv = server_arg(&server);
    for args in [
        vec![
            "--server",
            srv.as_str(),
            "--from",
            "not an address",
            "--to",
            "b@example.org",
        ],
        vec![
            "--server",
            "smtp://u:secret@127.0.0.1:1",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
        ],
        vec![
            "--server",
            srv.as_str(),
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--message",
            "-",
            "--subject",
            "x",
        ],
        vec!["--server", srv.as_str(), "--from", "a@example.org"],
    ] {
        let out = run(&args, &[], None, Duration::from_secs(5));
        assert_eq!(code(&out), 64, "{args:?}: {}", stderr(&out));
    }
    // --help documents the exit codes.
    let out = run(&["--help"], &[], None, Duration::from_secs(5));
    assert_eq!(code(&out), 0);
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "EXIT STATUS",
        "77  authentication refused",
        "--password-env",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}
