#!/usr/bin/env python3
"""What one write instead of two costs a CHUNKING server: sends the same messages to Postfix smtpd (127.0.0.1:2526,
PIPELINING + CHUNKING) as `MAIL` + `RCPT` then `BDAT n LAST` + body in two writes, and in one write, on one
connection with TCP_NODELAY, and prints the time per message of each. Loopback only; bounded loops.

    python3 benches/bdat_writes.py [messages]
"""
import socket
import sys
import time


def run(split, n):
    s = socket.create_connection(("127.0.0.1", 2526), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")

    def reply():
        for _ in range(100):
            line = f.readline()
            if not line:
                raise SystemExit("connection closed")
            if line[3:4] != b"-":
                return line
        raise SystemExit("reply too long")

    reply()
    s.sendall(b"EHLO localhost\r\n")
    reply()
    body = (b"x" * 78 + b"\r\n") * 25 + b"y" * 46 + b"\r\n"  # 2048 bytes
    envelope = b"MAIL FROM:<bench@example.test>\r\nRCPT TO:<rcpt@sink.example.test>\r\n"
    bdat = b"BDAT %d LAST\r\n" % len(body) + body
    start = time.time()
    for _ in range(n):
        if split:
            s.sendall(envelope)
            s.sendall(bdat)
        else:
            s.sendall(envelope + bdat)
        for _ in range(3):
            if not reply().startswith(b"250"):
                raise SystemExit("not accepted")
    per = (time.time() - start) / n
    s.sendall(b"QUIT\r\n")
    reply()
    s.close()
    return per * 1000


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    for _ in range(3):
        print("two writes: %.2f ms/message   one write: %.2f ms/message" % (run(True, n), run(False, n)))
