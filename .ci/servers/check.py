#!/usr/bin/env python3
"""Smoke test for the loopback test mail servers started by .ci/servers/start.sh.

Usage: python3 .ci/servers/check.py [STATE_DIR]   (default <repo>/target/test-servers)

Sends one message through every port/mode with Python's smtplib (TLS verified
against the generated ca.pem), checks delivery where it can be seen (Dovecot
maildirs, aiosmtpd spool), checks advertised extensions and fixed rejections,
and the SOCKS5 proxies. Exits 1 with a clear message if anything fails.
Every network operation has a timeout; the whole run takes a few seconds.
"""

import base64
import glob
import hashlib
import hmac
import json
import os
import socket
import ssl
import smtplib
import subprocess
import sys
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_STATE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "target", "test-servers")
TIMEOUT = 15
DELIVERY_WAIT = 20

RESULTS = []  # (name, ok, detail)


class CheckFailed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def check(name):
    def deco(fn):
        def run(*a, **kw):
            t0 = time.monotonic()
            try:
                detail = fn(*a, **kw)
                RESULTS.append((name, True, detail or ""))
                print("ok   - %s (%.2fs)%s" % (name, time.monotonic() - t0, (": " + detail) if detail else ""))
            except CheckFailed as e:
                RESULTS.append((name, False, str(e)))
                print("FAIL - %s: %s" % (name, e))
            except Exception as e:  # unexpected: show the traceback
                RESULTS.append((name, False, repr(e)))
                print("FAIL - %s: %r" % (name, e))
                traceback.print_exc(limit=3, file=sys.stdout)
        run.__name__ = fn.__name__
        return run
    return deco


def load_env(state):
    path = os.path.join(state, "servers.env")
    if not os.path.exists(path):
        sys.exit("check.py: %s not found: are the servers started? (bash .ci/servers/start.sh %s)" % (path, state))
    env = {}
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


def make_msg(token, sender, rcpts, extra=""):
    return (
        "From: <%s>\r\nTo: %s\r\nSubject: ci-check %s\r\nMessage-ID: <%s@check.ci>\r\n"
        "Date: %s\r\nX-CI-Token: %s\r\n\r\nhello from check.py %s\r\n%s"
        % (sender, ", ".join("<%s>" % r for r in rcpts), token, token,
           time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()), token, token, extra)
    )


def new_token():
    return uuid.uuid4().hex


def ehlo_keys(smtp):
    return {k.upper(): v for k, v in smtp.esmtp_features.items()}


def wait_file_with(pattern, token, timeout=DELIVERY_WAIT):
    """Wait until a file matching glob `pattern` contains `token`; return its path."""
    deadline = time.monotonic() + timeout
    tok = token.encode()
    while True:
        for p in glob.glob(pattern):
            try:
                with open(p, "rb") as fh:
                    if tok in fh.read():
                        return p
            except OSError:
                pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def maildir_new(env, user):
    return os.path.join(env["MAILDIR_ROOT"], "example.test", user, "new", "*")


def expect_delivered(env, user, token):
    p = wait_file_with(maildir_new(env, user), token)
    expect(p, "message %s not delivered to %s's maildir (%s) within %ds; see %s and %s" % (
        token, user, maildir_new(env, user), DELIVERY_WAIT, env.get("POSTFIX_LOG"), env.get("DOVECOT_LOG")))
    return p


def expect_spooled(env, token):
    p = wait_file_with(os.path.join(env["AIOSMTPD_SPOOL"], "*.eml"), token, timeout=5)
    expect(p, "message %s not found in aiosmtpd spool %s" % (token, env["AIOSMTPD_SPOOL"]))
    side = p[:-4] + ".json"
    expect(os.path.exists(side), "sidecar %s missing" % side)
    with open(side) as fh:
        return p, json.load(fh)


def rcpt_code(smtp, addr):
    code, msg = smtp.rcpt(addr)
    return code, msg.decode("utf-8", "replace")


def expect_rcpt(smtp, addr, want_code, want_enh=None):
    code, msg = rcpt_code(smtp, addr)
    expect(code == want_code, "RCPT %s: expected %d, got %d %s" % (addr, want_code, code, msg))
    if want_enh:
        expect(msg.startswith(want_enh), "RCPT %s: expected enhanced code %s, got %d %s" % (addr, want_enh, code, msg))


# ---------------------------------------------------------------- SCRAM-SHA-256 client
def _hmac(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def auth_scram_sha256(smtp, user, password):
    b64 = lambda b: base64.b64encode(b).decode()
    cnonce = b64(os.urandom(18))
    saslname = user.replace("=", "=3D").replace(",", "=2C")
    first_bare = "n=%s,r=%s" % (saslname, cnonce)
    code, resp = smtp.docmd("AUTH", "SCRAM-SHA-256 " + b64(("n,," + first_bare).encode()))
    expect(code == 334, "SCRAM: AUTH answered %d %s" % (code, resp))
    server_first = base64.b64decode(resp).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    expect(attrs["r"].startswith(cnonce), "SCRAM: server nonce does not extend client nonce")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = _hmac(salted, b"Client Key")
    stored_key = hashlib.sha256(client_key).digest()
    final_no_proof = "c=%s,r=%s" % (b64(b"n,,"), attrs["r"])
    auth_message = ",".join([first_bare, server_first, final_no_proof]).encode()
    proof = bytes(a ^ b for a, b in zip(client_key, _hmac(stored_key, auth_message)))
    code, resp = smtp.docmd(b64(("%s,p=%s" % (final_no_proof, b64(proof))).encode()))
    expect(code == 334, "SCRAM: client-final answered %d %s" % (code, resp))
    server_final = base64.b64decode(resp).decode()
    want = "v=" + b64(_hmac(_hmac(salted, b"Server Key"), auth_message))
    expect(server_final == want, "SCRAM: bad server signature %r" % server_final)
    code, resp = smtp.docmd("")
    expect(code == 235, "SCRAM: final answered %d %s" % (code, resp))


# ---------------------------------------------------------------- checks
def run_checks(env):
    host = env["SMTP_TEST_HOST"]
    ca = env["SMTP_TEST_CA"]
    ctx = ssl.create_default_context(cafile=ca)   # verifies chain + hostname
    alice, alice_pw = env["TEST_USER_ALICE"], env["TEST_PASS_ALICE"]
    bob, bob_pw = env["TEST_USER_BOB"], env["TEST_PASS_BOB"]
    carol, carol_pw = env["TEST_USER_CAROL"], env["TEST_PASS_CAROL"]
    port = lambda k: int(env[k])

    @check("certificates: CA and server cert usable by strict verifiers")
    def _():
        out = subprocess.run(["openssl", "x509", "-in", env["SMTP_TEST_SERVER_CERT"], "-noout", "-text"],
                             capture_output=True, text=True, timeout=10).stdout
        for want in ("Version: 3", "DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1",
                     "TLS Web Server Authentication", "CA:FALSE", "Digital Signature"):
            expect(want in out, "server cert lacks %r" % want)
        out = subprocess.run(["openssl", "x509", "-in", ca, "-noout", "-text"],
                             capture_output=True, text=True, timeout=10).stdout
        expect("CA:TRUE" in out and "Certificate Sign" in out, "CA cert lacks CA:TRUE/keyCertSign")
        r = subprocess.run(["openssl", "verify", "-CAfile", ca, "-purpose", "sslserver", env["SMTP_TEST_SERVER_CERT"]],
                           capture_output=True, text=True, timeout=10)
        expect(r.returncode == 0, "openssl verify: %s %s" % (r.stdout, r.stderr))
    _()

    @check("postfix 2525 plain: STARTTLS, AUTH only after TLS, deliver to alice, fixed rejections")
    def _():
        tok = new_token()
        with smtplib.SMTP(host, port("POSTFIX_PLAIN_PORT"), timeout=TIMEOUT) as s:
            s.ehlo("check.ci")
            f = ehlo_keys(s)
            expect("STARTTLS" in f, "STARTTLS not offered: %s" % sorted(f))
            expect("AUTH" not in f, "AUTH offered before TLS")
            for k in ("PIPELINING", "CHUNKING", "SMTPUTF8", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE", "DSN"):
                expect(k in f, "%s not offered" % k)
            s.starttls(context=ctx)
            s.ehlo("check.ci")
            f = ehlo_keys(s)
            expect("AUTH" in f, "AUTH not offered after TLS")
            s.mail("sender@client.test")
            expect_rcpt(s, env["TEST_RCPT_REJECT"], 550, "5.1.1")
            expect_rcpt(s, "anyone@" + env["TEST_RCPT_REJECT_DOMAIN"], 550, "5.1.1")
            expect_rcpt(s, env["TEST_RCPT_TEMPFAIL"], 450, "4.2.1")
            expect_rcpt(s, env["TEST_RCPT_UNKNOWN"], 550, "5.1.1")
            expect_rcpt(s, alice, 250)
            code, msg = s.data(make_msg(tok, "sender@client.test", [alice]).encode())
            expect(code == 250, "DATA: %d %s" % (code, msg))
        expect_delivered(env, "alice", tok)
        return "delivered to alice"
    _()

    @check("postfix 2587 submission: TLS required, SCRAM-SHA-256/CRAM-MD5 offered, AUTH required")
    def _():
        with smtplib.SMTP(host, port("POSTFIX_SUBMISSION_PORT"), timeout=TIMEOUT) as s:
            s.ehlo("check.ci")
            expect("AUTH" not in ehlo_keys(s), "AUTH offered before TLS")
            code, msg = s.mail("x@client.test")
            expect(code == 530, "MAIL before STARTTLS: expected 530, got %d %s" % (code, msg))
            s.rset()
            s.starttls(context=ctx)
            s.ehlo("check.ci")
            mechs = ehlo_keys(s).get("AUTH", "").upper().split()
            for m in ("SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"):
                expect(m in mechs, "%s not in AUTH %s" % (m, mechs))
            s.mail("x@client.test")
            code, msg = rcpt_code(s, alice)
            expect(code == 554, "unauthenticated RCPT: expected 554, got %d %s" % (code, msg))
            s.rset()
            try:
                s.login(alice, "wrong-password")
                raise CheckFailed("login with a wrong password succeeded")
            except smtplib.SMTPAuthenticationError as e:
                expect(e.smtp_code == 535, "wrong password: expected 535, got %d" % e.smtp_code)
        tokens = {}
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"):
            tok = new_token()
            with smtplib.SMTP(host, port("POSTFIX_SUBMISSION_PORT"), timeout=TIMEOUT) as s:
                s.starttls(context=ctx)
                s.ehlo("check.ci")
                if mech == "SCRAM-SHA-256":
                    auth_scram_sha256(s, alice, alice_pw)
                else:
                    s.user, s.password = alice, alice_pw
                    obj = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mech]
                    code, resp = s.auth(mech, obj, initial_response_ok=(mech != "CRAM-MD5"))
                    expect(code == 235, "AUTH %s: %d %s" % (mech, code, resp))
                refused = s.sendmail(alice, [bob, "someone@elsewhere.test"],
                                     make_msg(tok, alice, [bob, "someone@elsewhere.test"]))
                expect(not refused, "refused: %r" % refused)
            tokens[mech] = tok
        for tok in tokens.values():
            expect_delivered(env, "bob", tok)
        return "AUTH %s each delivered to bob" % "/".join(tokens)
    _()

    @check("postfix 2465 smtps: implicit TLS, AUTH bob, deliver to alice")
    def _():
        tok = new_token()
        with smtplib.SMTP_SSL(host, port("POSTFIX_SMTPS_PORT"), timeout=TIMEOUT, context=ctx) as s:
            s.ehlo("check.ci")
            mechs = ehlo_keys(s).get("AUTH", "").upper().split()
            expect("SCRAM-SHA-256" in mechs and "CRAM-MD5" in mechs, "AUTH mechs %s" % mechs)
            s.mail(bob)
            code, msg = rcpt_code(s, alice)
            expect(code == 554, "unauthenticated RCPT: expected 554, got %d %s" % (code, msg))
            s.rset()
            s.login(bob, bob_pw)
            s.sendmail(bob, [alice], make_msg(tok, bob, [alice]))
        expect_delivered(env, "alice", tok)
        return "delivered to alice"
    _()

    def chunking_port(addr, family_name):
        tok = new_token()
        sink_rcpt = "bulk@" + env["TEST_SINK_DOMAIN"]
        with smtplib.SMTP(addr, port("POSTFIX_CHUNKING_PORT"), timeout=TIMEOUT) as s:
            s.ehlo("check.ci")
            f = ehlo_keys(s)
            for k in ("PIPELINING", "CHUNKING", "SMTPUTF8"):
                expect(k in f, "%s not offered" % k)
            expect("STARTTLS" not in f and "AUTH" not in f, "STARTTLS/AUTH offered: %s" % sorted(f))
            s.mail("bench@client.test")
            code, msg = rcpt_code(s, "someone@elsewhere.test")
            expect(code == 554, "relay must be denied here: got %d %s" % (code, msg))
            expect_rcpt(s, env["TEST_RCPT_REJECT"], 550, "5.1.1")
            expect_rcpt(s, sink_rcpt, 250)
            expect_rcpt(s, alice, 250)
            body = make_msg(tok, "bench@client.test", [sink_rcpt, alice]).encode()
            # BDAT in two chunks (smtplib has no BDAT support)
            half = len(body) // 2
            s.send(b"BDAT %d\r\n" % half + body[:half])
            code, msg = s.getreply()
            expect(code == 250, "BDAT chunk 1: %d %s" % (code, msg))
            s.send(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
            code, msg = s.getreply()
            expect(code == 250, "BDAT LAST: %d %s" % (code, msg))
            # and a plain DATA transaction to the sink only
            refused = s.sendmail("bench@client.test", [sink_rcpt], make_msg(new_token(), "bench@client.test", [sink_rcpt]))
            expect(not refused, "refused %r" % refused)
        expect_delivered(env, "alice", tok)
        return "%s: BDAT to sink+alice delivered, DATA to sink accepted" % family_name

    check("postfix 2526 chunking (127.0.0.1): PIPELINING+CHUNKING, no TLS/AUTH, sink discard")(
        lambda: chunking_port("127.0.0.1", "IPv4"))()
    if env.get("POSTFIX_CHUNKING_IPV6") == "1":
        check("postfix 2526 chunking ([::1])")(lambda: chunking_port("::1", "IPv6"))()

    @check("smtp-sink 2600: accepts a message")
    def _():
        with smtplib.SMTP("127.0.0.1", port("SMTP_SINK_PORT"), timeout=TIMEOUT) as s:
            s.ehlo("check.ci")
            expect("PIPELINING" in ehlo_keys(s), "PIPELINING not offered")
            refused = s.sendmail("a@client.test", ["b@sink.example.test", "c@sink.example.test"],
                                 make_msg(new_token(), "a@client.test", ["b@sink.example.test"]))
            expect(not refused, "refused %r" % refused)
    _()

    def lmtp_session(target, label):
        tok = new_token()
        if target.startswith("/"):
            s = smtplib.LMTP(target, timeout=TIMEOUT)          # unix socket
        else:
            s = smtplib.LMTP(target, port("DOVECOT_LMTP_PORT"), timeout=TIMEOUT)
        try:
            s.ehlo("check.ci")   # LMTP.ehlo sends LHLO
            f = ehlo_keys(s)
            for k in ("PIPELINING", "ENHANCEDSTATUSCODES"):
                expect(k in f, "LMTP does not advertise %s: %s" % (k, sorted(f)))
            s.mail("sender@client.test")
            expect_rcpt(s, alice, 250, "2.1.5")
            expect_rcpt(s, env["TEST_RCPT_UNKNOWN"], 550, "5.1.1")
            expect_rcpt(s, bob, 250, "2.1.5")
            code, msg = s.docmd("DATA")
            expect(code == 354, "DATA: %d %s" % (code, msg))
            body = make_msg(tok, "sender@client.test", [alice, bob]).encode()
            s.send(body + b".\r\n")
            replies = [s.getreply() for _ in range(2)]   # one per accepted recipient
            for (code, msg), who in zip(replies, (alice, bob)):
                expect(code == 250, "LMTP per-recipient reply for %s: %d %s" % (who, code, msg))
            s.quit()
        finally:
            s.close()
        expect_delivered(env, "alice", tok)
        expect_delivered(env, "bob", tok)
        return "%s: RCPT alice 250, nobody 550 5.1.1, bob 250; 2 per-recipient replies after DATA; CHUNKING %s" % (
            label, "advertised" if "CHUNKING" in f else "not advertised")

    check("dovecot LMTP 127.0.0.1:2424: per-recipient results")(lambda: lmtp_session("127.0.0.1", "tcp"))()
    check("dovecot LMTP unix socket")(lambda: lmtp_session(env["DOVECOT_LMTP_SOCKET"], "unix"))()

    @check("aiosmtpd 2527: STARTTLS required, AUTH carol, SMTPUTF8, reject@ 550")
    def _():
        tok = new_token()
        with smtplib.SMTP(host, port("AIOSMTPD_STARTTLS_PORT"), timeout=TIMEOUT) as s:
            s.ehlo("check.ci")
            f = ehlo_keys(s)
            expect("STARTTLS" in f and "AUTH" not in f, "before TLS: %s" % sorted(f))
            code, msg = s.mail("x@client.test")
            expect(code == 530, "MAIL before STARTTLS: expected 530, got %d %s" % (code, msg))
            s.starttls(context=ctx)
            s.ehlo("check.ci")
            f = ehlo_keys(s)
            expect("SMTPUTF8" in f, "SMTPUTF8 not offered")
            mechs = f.get("AUTH", "").upper().split()
            expect("PLAIN" in mechs and "LOGIN" in mechs, "AUTH mechs %s" % mechs)
            try:
                s.login(carol, "nope")
                raise CheckFailed("wrong password accepted")
            except smtplib.SMTPAuthenticationError:
                pass
            s.login(carol, carol_pw)
            sender = "josé@exämple.test"
            msg = make_msg(tok, "jose@example.test", [alice], extra="Grüße ✓\r\n").encode("utf-8")
            s.mail(sender, ["SMTPUTF8", "BODY=8BITMIME"])
            expect_rcpt(s, env["TEST_RCPT_REJECT"], 550, "5.1.1")
            expect_rcpt(s, "用户@例子.test", 250)
            expect_rcpt(s, alice, 250)
            code, resp = s.data(msg)
            expect(code == 250, "DATA: %d %s" % (code, resp))
        p, meta = expect_spooled(env, tok)
        expect(meta["mail_from"] == sender, "sidecar mail_from %r" % meta["mail_from"])
        expect(meta["rcpt_tos"] == ["用户@例子.test", alice], "sidecar rcpt_tos %r" % meta["rcpt_tos"])
        expect(meta["smtputf8"] and meta["tls"] and meta["auth_user"] == carol, "sidecar %r" % meta)
        return os.path.basename(p)
    _()

    @check("aiosmtpd 2528: implicit TLS")
    def _():
        tok = new_token()
        with smtplib.SMTP_SSL(host, port("AIOSMTPD_IMPLICIT_PORT"), timeout=TIMEOUT, context=ctx) as s:
            s.ehlo("check.ci")
            expect("STARTTLS" not in ehlo_keys(s), "STARTTLS offered inside TLS")
            s.login(carol, carol_pw)
            s.sendmail("a@client.test", [bob], make_msg(tok, "a@client.test", [bob]))
        _, meta = expect_spooled(env, tok)
        expect(meta["instance"] == "implicit" and meta["rcpt_tos"] == [bob], "sidecar %r" % meta)
    _()

    @check("aiosmtpd 2529: plaintext, no STARTTLS, no AUTH")
    def _():
        tok = new_token()
        with smtplib.SMTP("127.0.0.1", port("AIOSMTPD_PLAIN_PORT"), timeout=TIMEOUT) as s:
            s.ehlo("check.ci")
            f = ehlo_keys(s)
            expect("STARTTLS" not in f and "AUTH" not in f, "offered: %s" % sorted(f))
            s.sendmail("a@client.test", [alice], make_msg(tok, "a@client.test", [alice]))
        _, meta = expect_spooled(env, tok)
        expect(meta["instance"] == "plain" and not meta["tls"], "sidecar %r" % meta)
    _()

    # ---------------------------------------------------------------- SOCKS5
    def socks_connect(port_, dst, dport, auth=None, methods=None, timeout=TIMEOUT):
        """Minimal RFC 1928/1929 client. Returns (reply_code, socket or None)."""
        s = socket.create_connection(("127.0.0.1", port_), timeout=timeout)

        def recv_exact(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise CheckFailed("SOCKS server closed the connection")
                buf += chunk
            return buf

        if methods is None:
            methods = [0x02] if auth else [0x00]
        s.sendall(bytes([5, len(methods)] + methods))
        ver, method = recv_exact(2)
        if method == 0xFF:
            s.close()
            return "no-acceptable-method", None
        if method == 0x02:
            u, p = (x.encode() for x in auth)
            s.sendall(bytes([1, len(u)]) + u + bytes([len(p)]) + p)
            _, status = recv_exact(2)
            if status != 0:
                s.close()
                return "auth-failed", None
        try:
            addr = socket.inet_pton(socket.AF_INET, dst)
            req = bytes([5, 1, 0, 1]) + addr
        except OSError:
            req = bytes([5, 1, 0, 3, len(dst)]) + dst.encode()
        s.sendall(req + dport.to_bytes(2, "big"))
        ver, rep, _, atyp = recv_exact(4)
        recv_exact({1: 4, 4: 16}.get(atyp, 0) or recv_exact(1)[0])
        recv_exact(2)
        if rep != 0:
            s.close()
            return rep, None
        return 0, s

    def banner_via(sock):
        sock.settimeout(TIMEOUT)
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(512)
            if not chunk:
                break
            data += chunk
        sock.close()
        return data.decode("utf-8", "replace").strip()

    @check("dante 1080: SOCKS5 without auth to 127.0.0.1 and localhost; other targets refused")
    def _():
        rep, sk = socks_connect(port("SOCKS_PORT"), "127.0.0.1", port("POSTFIX_PLAIN_PORT"))
        expect(rep == 0, "CONNECT 127.0.0.1 failed: %r" % rep)
        b = banner_via(sk)
        expect(b.startswith("220 mx.example.test"), "banner via SOCKS: %r" % b)
        rep, sk = socks_connect(port("SOCKS_PORT"), "localhost", port("AIOSMTPD_PLAIN_PORT"))
        expect(rep == 0, "CONNECT localhost (domain name) failed: %r" % rep)
        b = banner_via(sk)
        expect(b.startswith("220"), "banner via SOCKS (domain name): %r" % b)
        rep, sk = socks_connect(port("SOCKS_PORT"), "127.0.0.2", port("POSTFIX_PLAIN_PORT"))
        expect(rep != 0, "CONNECT 127.0.0.2 should be refused by the ruleset")
        return "refusal code for 127.0.0.2: %r" % rep
    _()

    @check("dante 1081: SOCKS5 username auth")
    def _():
        rep, sk = socks_connect(port("SOCKS_AUTH_PORT"), "127.0.0.1", port("POSTFIX_SUBMISSION_PORT"),
                                auth=(env["SOCKS_USER"], env["SOCKS_PASS"]))
        expect(rep == 0, "CONNECT with auth failed: %r" % rep)
        b = banner_via(sk)
        expect(b.startswith("220 mx.example.test"), "banner via SOCKS: %r" % b)
        rep, _ = socks_connect(port("SOCKS_AUTH_PORT"), "127.0.0.1", port("POSTFIX_PLAIN_PORT"),
                               auth=(env["SOCKS_USER"], "wrong"))
        expect(rep == "auth-failed", "wrong password: %r" % rep)
        rep, _ = socks_connect(port("SOCKS_AUTH_PORT"), "127.0.0.1", port("POSTFIX_PLAIN_PORT"), methods=[0x00])
        expect(rep == "no-acceptable-method", "no-auth method on 1081: %r" % rep)
    _()

    @check("all servers listen on loopback only")
    def _():
        try:
            out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=10).stdout
        except FileNotFoundError:
            return "ss not installed: skipped"
        ours = ("master", "smtpd", "dovecot", "lmtp", "danted", "smtp-sink")
        apid = open(os.path.join(env["SERVERS_STATE_DIR"], "aiosmtpd.pid")).read().strip()
        bad = []
        for line in out.splitlines():
            cols = line.split()
            if len(cols) < 6:
                continue
            local = cols[3]
            procs = cols[5]
            mine = any('"%s"' % n in procs for n in ours) or ("pid=%s," % apid) in procs
            if mine and not (local.startswith("127.") or local.startswith("[::1]")):
                bad.append(line)
        expect(not bad, "non-loopback listeners:\n  " + "\n  ".join(bad))
    _()


def main():
    state = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_STATE)
    env = load_env(state)
    socket.setdefaulttimeout(TIMEOUT)
    t0 = time.monotonic()
    run_checks(env)
    failed = [r for r in RESULTS if not r[1]]
    print()
    if failed:
        print("FAILED checks:")
        for name, _, detail in failed:
            print("  - %s: %s" % (name, detail))
        print("logs: %s, %s, %s, %s" % (env.get("POSTFIX_LOG"), env.get("DOVECOT_LOG"),
                                        env.get("AIOSMTPD_LOG"), os.path.join(state, "dante")))
    print("elapsed %.1fs" % (time.monotonic() - t0))
    print("check.py: %d passed, %d failed" % (len(RESULTS) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
