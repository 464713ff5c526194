#!/usr/bin/env python3
"""Counts, in an `strace -f` log, the system calls that move SMTP bytes: writes to and reads from TCP sockets.

Usage: strace_count.py LOG MESSAGES SERVER CLIENT  ->  one tab-separated line:
server, client, messages, socket writes, socket reads, empty socket reads (EAGAIN), writes/message, reads/message.

Sockets are the descriptors seen in send*/recv*/connect calls. Not counted: an async runtime's wake-ups (eventfd
writes and reads), reads of /proc and of libraries, writes to stdout. Reads that found nothing yet (EAGAIN) are
counted apart: they cost a system call but move no byte.
"""
import re
import sys

CALL = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\((\d+),.*\)\s+=\s+(-?\d+)")
PID = re.compile(r"^(?:\[pid\s+(\d+)\]|(\d+))\s")
UNFINISHED = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\((\d+),.*<unfinished \.\.\.>")
RESUMED = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?<\.\.\. (\w+) resumed>.*\)\s+=\s+(-?\d+)")


def main():
    path, messages, server, client = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    calls = []
    sockets = set()
    pending = {}  # pid -> (fn, fd) of a call whose result comes on a later "resumed" line
    with open(path, errors="replace") as f:
        for line in f:
            pid = PID.match(line)
            pid = (pid.group(1) or pid.group(2)) if pid else ""
            unfinished = UNFINISHED.match(line)
            if unfinished:
                pending[pid] = (unfinished.group(1), int(unfinished.group(2)))
                continue
            resumed = RESUMED.match(line)
            if resumed and pid in pending:
                fn, fd = pending.pop(pid)
                ret = int(resumed.group(2))
            else:
                m = CALL.match(line)
                if not m:
                    continue
                fn, fd, ret = m.group(1), int(m.group(2)), int(m.group(3))
            calls.append((fn, fd, ret, "EAGAIN" in line))
            if fn in ("sendto", "sendmsg", "recvfrom", "recvmsg", "connect"):
                sockets.add(fd)
    writes = reads = empty = 0
    for fn, fd, ret, eagain in calls:
        if fd not in sockets:
            continue
        if fn in ("write", "writev", "sendto", "sendmsg") and ret > 0:
            writes += 1
        elif fn in ("read", "readv", "recvfrom", "recvmsg"):
            if ret > 0:
                reads += 1
            elif eagain:
                empty += 1
    print(f"{server}\t{client}\t{messages}\t{writes}\t{reads}\t{empty}\t{writes / messages:.2f}\t{reads / messages:.2f}")


if __name__ == "__main__":
    main()
