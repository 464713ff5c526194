//! Replays every checked-in fuzz corpus file, and every generated seed, through the fuzz targets' invariant checks,
//! on stable and without libFuzzer, so CI checks the corpus on every `cargo test`.
//!
//! The target code is not copied: `fuzz/src/lib.rs` (the fuzz crate's library, which the cargo-fuzz binaries call) is
//! compiled here as a module. It only uses smtp-proto and smtp-proto's own dependencies, so this test needs nothing
//! more.
//!
//! `cargo test -p smtp-proto --test corpus_replay -- --ignored write_seed_corpus` (re)writes the seeds into
//! `fuzz/corpus/<target>/seed-*`.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code, unreachable_pub, missing_docs)]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Runs `f` on `data`; on a panic, fails naming the input.
fn replay(what: &str, f: fn(&[u8]), data: &[u8], failures: &mut Vec<String>) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(data))) {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        failures.push(format!(
            "{what}: {}",
            message.lines().next().unwrap_or_default()
        ));
    }
}

#[test]
fn checked_in_corpus_keeps_every_invariant() {
    let mut failures = Vec::new();
    let mut total = 0;
    for (target, run) in targets::TARGETS {
        let dir = corpus_dir().join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {target}");
        for file in files {
            let data = std::fs::read(&file).expect("readable");
            replay(&file.display().to_string(), run, &data, &mut failures);
            total += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} corpus files fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn seeds_keep_every_invariant() {
    let mut failures = Vec::new();
    for (target, name, data) in targets::seeds::all() {
        let run = targets::TARGETS
            .iter()
            .find(|(t, _)| *t == target)
            .expect("a target")
            .1;
        replay(&format!("{target}/{name}"), run, &data, &mut failures);
    }
    assert!(failures.is_empty(), "seeds fail:\n{}", failures.join("\n"));
}

/// The happy-path seeds really reach the end of a session: two messages accepted, a clean QUIT.
#[test]
fn happy_seeds_deliver_both_messages() {
    use smtp_proto::Outcome;
    for (name, script) in targets::seeds::session_scripts() {
        let happy = [
            "full-bdat",
            "full-data",
            "full-data-held",
            "data-back-pressure",
            "bdat-back-pressure",
            "plain-lockstep",
            "plain-insecure-auth",
            "lmtp-bdat",
            "implicit-xoauth2",
            "implicit-manual-handshake",
            "auth-login",
            "auth-cram-md5",
        ];
        if !happy.contains(&name.as_str()) {
            continue;
        }
        let summary = targets::session::run_script(&script);
        let outcomes: Vec<Outcome> = summary.reports.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Accepted, Outcome::Accepted],
            "{name}: {summary:?}"
        );
        assert!(summary.closed.is_none(), "{name}: {:?}", summary.closed);
        assert!(summary.wire.ends_with(b"QUIT\r\n"), "{name}");
    }
}

#[test]
#[ignore = "writes fuzz/corpus/*/seed-*; run by hand after changing the seeds"]
fn write_seed_corpus() {
    for (target, name, data) in targets::seeds::all() {
        let dir = corpus_dir().join(target);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("write");
    }
}

/// `REPRODUCE=<target>:<file> cargo test -p smtp-proto --test corpus_replay -- --ignored reproduce --nocapture`
/// runs one input (a libFuzzer crash artifact, say) on stable, printing the decoded session script.
#[test]
#[ignore = "needs REPRODUCE=<target>:<file>"]
fn reproduce() {
    let spec = std::env::var("REPRODUCE").expect("REPRODUCE=<target>:<file>");
    let (target, file) = spec.split_once(':').expect("<target>:<file>");
    let data = std::fs::read(file).expect("readable");
    if target == "session" {
        println!(
            "{}",
            targets::session::script::Script::decode(&data).describe()
        );
    }
    let run = targets::TARGETS
        .iter()
        .find(|(t, _)| *t == target)
        .expect("a target")
        .1;
    run(&data);
}
