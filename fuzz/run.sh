#!/usr/bin/env bash
# Builds the cargo-fuzz targets and runs each one for a bounded time; exits non-zero if any target crashes (or an
# invariant panics), if the build fails, or if a run overstays its time.
#
#   fuzz/run.sh [seconds-per-target]        (default 60)
#
# Environment:
#   FUZZ_TARGETS   targets to run, space-separated (default: all of them, one after the other)
#   FUZZ_LOG_DIR   where the per-target logs go (default: a temporary directory)
#   FUZZ_WORK_DIR  keep the grown corpora in $FUZZ_WORK_DIR/corpus/<target> (default: a temporary directory, removed)
#
# One fuzzer process at a time, in the foreground (the machine is shared; libFuzzer's -jobs=N would fork workers that
# log to ./fuzz-N.log instead). Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc take cargo-fuzz's -Z flags (sanitizer,
# coverage instrumentation). Installs cargo-fuzz if it is missing. Never writes to the checked-in corpus: libFuzzer's
# new inputs go to a temporary copy; crash reproducers go to fuzz/artifacts/<target>/.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in '' | *[!0-9]*) echo "usage: $0 [seconds-per-target]" >&2; exit 2 ;; esac
fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz_dir"
targets="${FUZZ_TARGETS:-reply ehlo session body command}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ -n "${FUZZ_WORK_DIR:-}" ]; then
  work="$FUZZ_WORK_DIR"
  mkdir -p "$work"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/smtp-fuzz.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi
log_dir="${FUZZ_LOG_DIR:-$work/logs}"
mkdir -p "$log_dir"

echo "== building (cargo fuzz build, sanitizer=address)"
# Bounded: a cold build of the five targets takes a few minutes on two cores.
timeout 1800 cargo fuzz build

failed=()
summary=()
for t in $targets; do
  corpus="$work/corpus/$t"
  mkdir -p "$corpus"
  log="$log_dir/$t.log"
  echo "== $t: ${seconds}s (log: $log)"
  # -max_total_time ends the run; the outer timeout only catches a hang (an input slower than -timeout is a crash).
  set +e
  timeout --kill-after=30 $((seconds + 300)) cargo fuzz run "$t" "$corpus" "corpus/$t" -- \
    -max_total_time="$seconds" -dict=smtp.dict -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -print_final_stats=1 >"$log" 2>&1
  status=$?
  set -e
  done_line="$(grep -a 'DONE' "$log" | tail -n 1 || true)"
  execs="$(grep -a 'stat::average_exec_per_sec' "$log" | tail -n 1 | awk '{print $2}' || true)"
  summary+=("$t: status=$status exec/s=${execs:-?} ${done_line:-no final stats}")
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    echo "!! $t failed (status $status); the end of its log:" >&2
    tail -n 40 "$log" >&2
  fi
done

echo "== summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "== FAILED: ${failed[*]} (reproducers in fuzz/artifacts/<target>/; replay one on stable with" >&2
  echo "   REPRODUCE=<target>:<file> cargo test -p smtp-proto --test corpus_replay -- --ignored reproduce)" >&2
  exit 1
fi
