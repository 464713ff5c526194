#!/usr/bin/env python3
"""aiosmtpd test servers for the SMTP client interop tests.

Started in the background by .ci/servers/start.sh:

    python3 aiosmtpd_server.py --state-dir STATE_DIR [--pidfile FILE]

Instances (all on 127.0.0.1):
  * 2527  STARTTLS required (require_starttls), AUTH PLAIN/LOGIN after TLS
  * 2528  implicit TLS, AUTH PLAIN/LOGIN
  * 2529  plaintext only, no TLS, no AUTH (for `--tls none` tests)

Every instance: SMTPUTF8 enabled, 50 MiB size limit, recipient
reject@example.test refused with "550 5.1.1 no such user", every accepted
message stored as STATE_DIR/aiosmtpd/<id>.eml plus a <id>.json sidecar
(envelope).  The .json file is written before the .eml file appears, both via
atomic rename, so a test may wait for *.eml and then read the sidecar.
"""

import argparse
import datetime
import json
import logging
import os
import signal
import ssl
import sys
import threading
import time
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USERS = {"carol": "carol-secret-3"}
REJECT_RCPTS = {"reject@example.test"}
SIZE_LIMIT = 52428800
HOSTNAME = "aiosmtpd.example.test"

log = logging.getLogger("ci-aiosmtpd")


def authenticator(server, session, envelope, mechanism, auth_data):
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    login = auth_data.login.decode("utf-8", "replace")
    password = auth_data.password.decode("utf-8", "replace")
    ok = USERS.get(login) == password
    log.info("AUTH %s user=%r -> %s", mechanism, login, "ok" if ok else "FAILED")
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class SpoolHandler:
    def __init__(self, spool_dir, instance):
        self.spool_dir = spool_dir
        self.instance = instance

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in REJECT_RCPTS:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(list(rcpt_options))
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content
        if content is None:
            content = envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        now = time.time()
        stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        msg_id = "%s-%s-%s" % (stamp.strftime("%Y%m%dT%H%M%S.%f"), self.instance, uuid.uuid4().hex[:12])
        peer = session.peer
        meta = {
            "id": msg_id,
            "instance": self.instance,
            "received_at": stamp.isoformat(),
            "peer": list(peer) if isinstance(peer, tuple) else peer,
            "helo": session.host_name,
            "extended_smtp": bool(session.extended_smtp),
            "tls": session.ssl is not None or self.instance == "implicit",
            "authenticated": bool(session.authenticated),
            "auth_user": (session.auth_data.login.decode("utf-8", "replace")
                          if isinstance(session.auth_data, LoginPassword) else None),
            "smtputf8": bool(envelope.smtp_utf8),
            "mail_from": envelope.mail_from,
            "mail_options": list(envelope.mail_options),
            "rcpt_tos": list(envelope.rcpt_tos),
            "rcpt_options": list(envelope.rcpt_options),
            "size": len(content),
        }
        base = os.path.join(self.spool_dir, msg_id)
        _atomic_write(base + ".json", json.dumps(meta, indent=2, ensure_ascii=False).encode("utf-8") + b"\n")
        _atomic_write(base + ".eml", content)
        log.info("stored %s from=%r to=%r size=%d", msg_id, envelope.mail_from, envelope.rcpt_tos, len(content))
        return "250 2.0.0 OK queued as %s" % msg_id


def _atomic_write(path, data):
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--starttls-port", type=int, default=2527)
    ap.add_argument("--implicit-port", type=int, default=2528)
    ap.add_argument("--plain-port", type=int, default=2529)
    ap.add_argument("--pidfile")
    args = ap.parse_args()

    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.INFO)

    state = os.path.abspath(args.state_dir)
    spool = os.path.join(state, "aiosmtpd")
    os.makedirs(spool, exist_ok=True)
    cert = os.path.join(state, "tls", "server-chain.pem")
    key = os.path.join(state, "tls", "server.key")

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    common = dict(
        hostname=args.host,
        server_hostname=HOSTNAME,
        data_size_limit=SIZE_LIMIT,
        enable_SMTPUTF8=True,
        decode_data=False,
        authenticator=authenticator,
        auth_exclude_mechanism=[],
        ready_timeout=10.0,
    )
    controllers = [
        # STARTTLS required; AUTH only after STARTTLS.
        Controller(SpoolHandler(spool, "starttls"), port=args.starttls_port,
                   tls_context=tls, require_starttls=True, auth_require_tls=True, **common),
        # Implicit TLS. aiosmtpd only counts STARTTLS as "TLS" for
        # auth_require_tls, so it is switched off here (the socket is TLS anyway).
        Controller(SpoolHandler(spool, "implicit"), port=args.implicit_port,
                   ssl_context=tls, auth_require_tls=False, **common),
        # Plain text, no TLS, no AUTH (AUTH is never offered without TLS).
        Controller(SpoolHandler(spool, "plain"), port=args.plain_port,
                   auth_require_tls=True, **common),
    ]

    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started = []
    try:
        for c in controllers:
            c.start()
            started.append(c)
            log.info("listening on %s:%d", c.hostname, c.port)
        if args.pidfile:
            _atomic_write(args.pidfile, b"%d\n" % os.getpid())
        while not stop.wait(3600):
            pass
    finally:
        for c in reversed(started):
            try:
                c.stop()
            except Exception as exc:  # pragma: no cover - best effort
                log.warning("stop failed: %s", exc)
        if args.pidfile:
            try:
                with open(args.pidfile) as fh:
                    if fh.read().strip() == str(os.getpid()):
                        os.unlink(args.pidfile)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
