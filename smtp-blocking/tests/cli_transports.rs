//! `smtp-send` through its transport flags against the real servers (`.ci/servers/start.sh`, read from
//! `target/test-servers/servers.env` or `SMTP_TEST_SERVERS_ENV`): `--unix-socket` with `--lmtp` to Dovecot,
//! `--socks5` (with and without `--socks5-user`) and `--source-address` to Postfix. Never skipped.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{token, within};
use serde_json::Value;

fn get(key: &str) -> &'static str {
    common::env().get(key)
}

/// Runs smtp-send with `args` and `vars`; asserts it ends within 30 s plus the margin.
fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smtp-send"));
    cmd.args(args)
        .args(["--timeout", "15", "--json"])
        .env_remove("SMTP_PASSWORD")
        .env_remove("SOCKS5_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    within(Duration::from_secs(30), || {
        cmd.output().expect("run smtp-send")
    })
    .0
}

fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().next().expect("a JSON line")).expect("valid JSON")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

/// Waits (bounded) until a message file holding `token` appears in the maildir named by `key`.
fn in_maildir(key: &str, token: &str) {
    let dir = PathBuf::from(get(key));
    let end = Instant::now() + Duration::from_secs(30);
    let since = SystemTime::now() - Duration::from_secs(300);
    loop {
        for sub in ["new", "cur"] {
            for entry in std::fs::read_dir(dir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                let recent = entry
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .is_some_and(|t| t >= since);
                if recent
                    && std::fs::read(entry.path())
                        .is_ok_and(|b| String::from_utf8_lossy(&b).contains(token))
                {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < end,
            "{token} was not delivered to {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn postfix_args(t: &str) -> Vec<String> {
    [
        "--server",
        &format!("{}:{}", get("SMTP_TEST_HOST"), get("POSTFIX_PLAIN_PORT")),
        "--tls",
        "starttls",
        "--ca-file",
        get("SMTP_TEST_CA"),
        "--from",
        "sender@example.test",
        "--to",
        get("TEST_USER_BOB"),
        "--subject",
        t,
        "--body",
        t,
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn sends_through_socks5_with_and_without_credentials() {
    let socks = |key| format!("{}:{}", get("SOCKS_HOST"), get(key));

    let t = token("cli-socks");
    let mut args = postfix_args(&t);
    args.extend(["--socks5".to_owned(), socks("SOCKS_PORT")]);
    args.extend(["--source-address".to_owned(), "127.0.0.2".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, &[]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&out)["outcome"], "accepted");
    in_maildir("MAILDIR_BOB", &t);

    let t = token("cli-socks-auth");
    let mut args = postfix_args(&t);
    args.extend(
        [
            "--socks5",
            &socks("SOCKS_AUTH_PORT"),
            "--socks5-user",
            get("SOCKS_USER"),
        ]
        .map(str::to_owned),
    );
    args.extend(["--socks5-password-env", "TEST_SOCKS_PW"].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, &[("TEST_SOCKS_PW", get("SOCKS_PASS"))]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    in_maildir("MAILDIR_BOB", &t);

    // A wrong proxy password: exit 77, a typed error, and the password nowhere in the output.
    let wrong = "cli-wrong-socks-pw-5d1e";
    let t = token("cli-socks-wrong");
    let mut args = postfix_args(&t);
    args.extend(
        [
            "--socks5",
            &socks("SOCKS_AUTH_PORT"),
            "--socks5-user",
            get("SOCKS_USER"),
        ]
        .map(str::to_owned),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, &[("SOCKS5_PASSWORD", wrong)]);
    assert_eq!(code(&out), 77, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&out)["error"]["kind"], "proxy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused the user name or password"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong) && !String::from_utf8_lossy(&out.stdout).contains(wrong));

    // No password at all for --socks5-user: a usage error that names the variable.
    let out = run(&args, &[]);
    assert_eq!(code(&out), 64);
    assert!(String::from_utf8_lossy(&out.stderr).contains("SOCKS5_PASSWORD"));
}

#[test]
fn sends_lmtp_through_a_unix_socket() {
    let t = token("cli-unix-lmtp");
    let out = run(
        &[
            "--server",
            "localhost",
            "--unix-socket",
            get("DOVECOT_LMTP_SOCKET"),
            "--lmtp",
            "--from",
            "sender@example.test",
            "--to",
            get("TEST_USER_ALICE"),
            "--to",
            get("TEST_RCPT_UNKNOWN"),
            "--subject",
            &t,
            "--body",
            &t,
        ],
        &[],
    );
    let v = json(&out);
    // One recipient accepted, one unknown: partial, with a permanent refusal (69).
    assert_eq!(v["outcome"], "partial", "{v}");
    assert_eq!(code(&out), 69);
    assert_eq!(v["recipients"][0]["accepted"], true);
    assert_eq!(v["recipients"][1]["accepted"], false);
    assert_eq!(v["tls"], "none");
    in_maildir("MAILDIR_ALICE", &t);

    // A socket that does not exist: exit 75 and the path in the message.
    let missing = std::env::temp_dir().join(format!("{}.sock", token("cli-missing")));
    let missing = missing.to_string_lossy();
    let out = run(
        &[
            "--server",
            "localhost",
            "--unix-socket",
            &missing,
            "--lmtp",
            "--from",
            "sender@example.test",
            "--to",
            get("TEST_USER_ALICE"),
        ],
        &[],
    );
    assert_eq!(code(&out), 75);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("unix:{missing}")), "{stderr}");
}
