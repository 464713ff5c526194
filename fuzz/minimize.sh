#!/usr/bin/env bash
# Folds new fuzzer finds into the checked-in corpus of one target, keeping it small:
#
#   fuzz/minimize.sh <target> <dir-with-new-inputs>...      (needs python3)
#
# Keeps every seed-* and regress-* file, drops the old min-* files, and re-picks up to FUZZ_CORPUS_MAX (200) files
# from the old min-* files and the new inputs, greedily by coverage edges (libFuzzer -merge=1 -use_counters=0 finds
# the edges; select_corpus.py picks the files).
set -euo pipefail
target="$1"
shift
fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz_dir"
export RUSTC_BOOTSTRAP=1
work="$(mktemp -d "${TMPDIR:-/tmp}/smtp-fuzz-min.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/old" "$work/merged"
find "corpus/$target" -maxdepth 1 -name 'min-*' -exec mv {} "$work/old/" \;
abs=()
for d in "$@"; do abs+=("$(cd "$d" && pwd)"); done
cargo fuzz run "$target" "$work/merged" "corpus/$target" "$work/old" "${abs[@]}" -- \
  -merge=1 -use_counters=0 -max_len=16384 -merge_control_file="$work/control" >"$work/log" 2>&1 ||
  { tail -n 30 "$work/log" >&2; exit 1; }
python3 select_corpus.py "$work/control" "corpus/$target" "${FUZZ_CORPUS_MAX:-200}"
