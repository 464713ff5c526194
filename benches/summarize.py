#!/usr/bin/env python3
"""Turns benches/run.sh's raw.tsv (and batching.tsv) into Markdown tables: medians with min-max over the rounds,
and ratios to smtp-source computed from the medians of the same run."""
import os
import statistics
import sys
from collections import defaultdict

CLIENT_ORDER = ["smtp-source", "ours-blocking", "ours-blocking-batch", "ours-blocking-sepquit", "ours-smol",
                "ours-smol-batch", "ours-smol-sepquit", "lettre-blocking", "lettre-tokio"]


def fmt(values, digits=0):
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main():
    raw = sys.argv[1]
    rows = []
    with open(raw) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    groups = defaultdict(list)
    for r in rows:
        groups[(r["section"], r["scenario"], r["client"])].append(r)
    sections = []
    for r in rows:
        key = (r["section"], r["scenario"])
        if key not in sections:
            sections.append(key)

    def clients(section, scenario):
        present = [c for c in CLIENT_ORDER if (section, scenario, c) in groups]
        return present + sorted(c for (s, sc, c) in groups if (s, sc) == (section, scenario) and c not in present)

    out = []
    by_section = defaultdict(list)
    for s, sc in sections:
        by_section[s].append(sc)

    if "protocol" in by_section:
        out.append("### Protocol cost: 2 KiB messages to smtp-sink (loopback)\n")
        out.append("| scenario | client | messages/s | vs smtp-source | client CPU per message (µs) | vs smtp-source "
                   "| peak RSS (KiB) | rounds |")
        out.append("|---|---|---|---|---|---|---|---|")
        for sc in by_section["protocol"]:
            base = groups.get(("protocol", sc, "smtp-source"))
            base_rate = statistics.median(float(r["messages"]) / float(r["seconds"]) for r in base) if base else None
            base_cpu = statistics.median(float(r["cpu_s"]) / float(r["messages"]) for r in base) if base else None
            for c in clients("protocol", sc):
                g = groups[("protocol", sc, c)]
                rates = [float(r["messages"]) / float(r["seconds"]) for r in g]
                cpus = [1e6 * float(r["cpu_s"]) / float(r["messages"]) for r in g]
                rss = [float(r["rss_kb"]) for r in g]
                rr = f"{statistics.median(rates) / base_rate:.2f}x" if base_rate else "-"
                cr = f"{statistics.median(cpus) / 1e6 / base_cpu:.2f}x" if base_cpu else "-"
                out.append(f"| {sc} | {c} | {fmt(rates)} | {rr} | {fmt(cpus, 1)} | {cr} | {fmt(rss)} | {len(g)} |")
        out.append("")

    for s in by_section:
        if not s.startswith("rtt-"):
            continue
        base_section = "rtt0-" + s[4:]
        rtt = statistics.median(float(r["rtt_ms"]) for r in rows if r["section"] == s)
        has_base = any(r["section"] == base_section for r in rows)
        rtt0 = statistics.median(float(r["rtt_ms"]) for r in rows if r["section"] == base_section) if has_base else 0.0
        out.append(f"### Round trips per message, {s[4:]} server, through a delay proxy "
                   f"(measured RTT {rtt:.2f} ms; {rtt0:.2f} ms through the same proxy without delay)\n")
        out.append("| scenario | client | ms per message per connection, 5 ms proxy | same, 0 ms proxy "
                   "| round trips per message: (t5 - t0) / (RTT5 - RTT0) | raw: t5 / RTT5 | messages/s (5 ms) |")
        out.append("|---|---|---|---|---|---|---|")
        for sc in by_section[s]:
            for c in clients(s, sc):
                g = groups[(s, sc, c)]
                per = [1000 * float(r["seconds"]) / (float(r["messages"]) / float(r["connections"])) for r in g]
                raw_trips = [p / float(r["rtt_ms"]) for p, r in zip(per, g)]
                rates = [float(r["messages"]) / float(r["seconds"]) for r in g]
                g0 = groups.get((base_section, sc, c), [])
                per0 = [1000 * float(r["seconds"]) / (float(r["messages"]) / float(r["connections"])) for r in g0]
                if per0:
                    # Paired by round (the two runs of a round are back to back).
                    trips = [(a - b) / (rtt - rtt0) for a, b in zip(per, per0)]
                    col0, colt = fmt(per0, 1), fmt(trips, 2)
                else:
                    col0, colt = "-", "-"
                out.append(f"| {sc} | {c} | {fmt(per, 1)} | {col0} | {colt} | {fmt(raw_trips, 2)} | {fmt(rates, 1)} |")
        out.append("")

    if "large" in by_section:
        out.append("### Large bodies to smtp-sink (loopback)\n")
        out.append("| size | client | messages per run | throughput (MiB/s) | client CPU per message (s) "
                   "| peak RSS (MiB) |")
        out.append("|---|---|---|---|---|---|")
        for sc in by_section["large"]:
            for c in clients("large", sc):
                g = groups[("large", sc, c)]
                thr = [float(r["messages"]) * float(r["bytes"]) / float(r["seconds"]) / 2**20 for r in g]
                cpu = [float(r["cpu_s"]) / float(r["messages"]) for r in g]
                rss = [float(r["rss_kb"]) / 1024 for r in g]
                out.append(f"| {sc} | {c} | {g[0]['messages']} | {fmt(thr)} | {fmt(cpu, 2)} | {fmt(rss, 1)} |")
        out.append("")

    if len(sys.argv) > 2 and os.path.exists(sys.argv[2]):
        out.append("### Write batching: socket system calls per message (strace -f, one connection)\n")
        out.append("| server | client | messages | socket writes | socket reads | empty reads (EAGAIN) "
                   "| writes per message | reads per message |")
        out.append("|---|---|---|---|---|---|---|---|")
        with open(sys.argv[2]) as f:
            for line in f:
                out.append("| " + " | ".join(line.rstrip("\n").split("\t")) + " |")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
