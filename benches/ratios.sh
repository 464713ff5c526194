#!/usr/bin/env bash
# Prints the microbenchmark figures of the last criterion run as Markdown tables, with the ratios the targets of
# issue 6 are stated in (all from the same run):
#   reply parsing and EHLO-to-capabilities: peer time / our time (>= 1.5 means 1.5x faster than the peer);
#   dot-stuffing: our throughput / memcpy throughput (target >= 0.6).
#
#   cargo bench -p smtp-benches --bench parsing --bench dotstuff && bash benches/ratios.sh
#
# Reads $CARGO_TARGET_DIR/criterion (default target/criterion). Uses each benchmark's median estimate.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${CARGO_TARGET_DIR:-$ROOT/target}/criterion
python3 - "$DIR" <<'EOF'
import json, os, sys
base = sys.argv[1]

def median_ns(group, fn):
    path = os.path.join(base, group, fn, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]

def groups(prefix):
    if not os.path.isdir(base):
        return []
    return sorted(g for g in os.listdir(base) if g.startswith(prefix))

for kind, title in (("reply_", "Reply parsing (framing + parsing into an owned reply)"),
                    ("ehlo_", "EHLO reply to capabilities (framing + parsing + capabilities)")):
    rows = groups(kind)
    if not rows:
        continue
    print(f"### {title}\n")
    print("| corpus file | ours (ns) | Stalwart smtp-proto (ns) | lettre (ns) | Stalwart / ours | lettre / ours |")
    print("|---|---|---|---|---|---|")
    for g in rows:
        try:
            o, s, l = (median_ns(g, fn) for fn in ("ours", "stalwart", "lettre"))
        except OSError:
            continue
        print(f"| {g[len(kind):]} | {o:.0f} | {s:.0f} | {l:.0f} | {s / o:.2f}x | {l / o:.2f}x |")
    print()

rows = groups("dotstuff_")
if rows:
    print("### DotStuffer against memcpy of the same bytes (1 MiB body)\n")
    print("| body | memcpy (GiB/s) | stuffer (GiB/s) | stuffer / memcpy | 64 KiB pushes / memcpy | normalize only / memcpy |")
    print("|---|---|---|---|---|---|")
    for g in rows:
        gib = (1 << 20) / (1 << 30)
        t = {fn: median_ns(g, fn) * 1e-9 for fn in ("memcpy", "stuffer", "stuffer-64k-pushes", "normalize-only")}
        print(f"| {g[len('dotstuff_'):]} | {gib / t['memcpy']:.1f} | {gib / t['stuffer']:.1f} | "
              f"{t['memcpy'] / t['stuffer']:.2f}x | {t['memcpy'] / t['stuffer-64k-pushes']:.2f}x | "
              f"{t['memcpy'] / t['normalize-only']:.2f}x |")
    print()
EOF
