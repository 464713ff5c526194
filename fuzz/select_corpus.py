#!/usr/bin/env python3
"""Greedy max-coverage choice of corpus files from a libFuzzer `-merge=1 -merge_control_file=...` control file.

usage: select_corpus.py CONTROL_FILE CORPUS_DIR MAX_FILES

Keeps every file already in CORPUS_DIR (the seed-* and regress-* files), then copies in, as min-<name>, the files that
add the most coverage edges not yet covered, until CORPUS_DIR holds MAX_FILES files or nothing adds coverage.
(The control file lists, per input, the edges it added over the smaller inputs before it, so the counts printed are
lower bounds; re-merging everything into the result gives the exact number of edges left out.)
"""
import os
import shutil
import sys

control, corpus, budget = sys.argv[1], os.path.abspath(sys.argv[2]), int(sys.argv[3])
lines = open(control).read().split("\n")
count = int(lines[0])
paths = lines[2 : 2 + count]
cov = {}
for line in lines[2 + count :]:
    parts = line.split()
    if parts and parts[0] == "COV":
        cov[int(parts[1])] = set(parts[2:])
inside = lambda p: os.path.dirname(os.path.abspath(p)) == corpus
covered = set().union(*(cov.get(i, set()) for i, p in enumerate(paths) if inside(p)))
everything = set().union(*cov.values()) if cov else set()
candidates = {i: cov.get(i, set()) - covered for i, p in enumerate(paths) if not inside(p)}
files = len(os.listdir(corpus))
added = 0
while files < budget and candidates:
    best = max(candidates, key=lambda i: (len(candidates[i]), -os.path.getsize(paths[i])))
    gain = candidates.pop(best)
    if not gain:
        break
    covered |= gain
    for i in candidates:
        candidates[i] -= gain
    name = os.path.basename(paths[best])
    shutil.copy(paths[best], os.path.join(corpus, name if name.startswith("min-") else "min-" + name))
    files += 1
    added += 1
print(f"{added} files added, {files} in {corpus}; edges: {len(covered)} of {len(everything)} (lower bound)")
