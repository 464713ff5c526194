#!/usr/bin/env bash
# Configure and (re)start the loopback test mail servers.
# Usage: bash .ci/servers/start.sh [STATE_DIR]   (default <repo>/target/test-servers)
#
# Needs root and the packages from .ci/servers/setup.sh. Idempotent: running
# it again stops what runs (stop.sh) and starts everything afresh. Every wait
# is bounded. On success writes STATE_DIR/servers.env (KEY=value lines).
# Environment:
#   SERVERS_NEW_CERTS=1  regenerate the CA and certificates even if still valid
#   SERVERS_CLEAN=1      wipe maildirs, aiosmtpd spool and logs before starting
#   SERVERS_WAIT=30      seconds to wait for all ports to accept connections
set -euo pipefail

LOG_TAG=start
# shellcheck source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"
as_root "$SERVERS_DIR/start.sh" "$@"
resolve_state_dir "${1:-}"
T0=$SECONDS
TEMPLATES="$SERVERS_DIR/templates"
WAIT_SECS="${SERVERS_WAIT:-30}"

export PATH="$PATH:/usr/sbin:/sbin"
for bin in postfix postconf dovecot doveconf danted smtp-sink openssl runuser; do
  command -v "$bin" >/dev/null 2>&1 ||
    die "'$bin' not found: run 'bash .ci/servers/setup.sh' first"
done
# Resolve the real interpreter once (pyenv shims cost ~1 s per call).
PY_EXE="$("$PY" -c 'import sys, aiosmtpd; print(sys.executable)' 2>/dev/null)" ||
  die "python module aiosmtpd missing for $PY: run setup.sh"

# ---------------------------------------------------------------- stop + dirs
bash "$SERVERS_DIR/stop.sh" "$STATE_DIR"

ALL_PORTS=("$POSTFIX_PLAIN_PORT" "$POSTFIX_SUBMISSION_PORT" "$POSTFIX_SMTPS_PORT" "$POSTFIX_CHUNKING_PORT"
  "$SMTP_SINK_PORT" "$DOVECOT_LMTP_PORT" "$AIOSMTPD_STARTTLS_PORT" "$AIOSMTPD_IMPLICIT_PORT"
  "$AIOSMTPD_PLAIN_PORT" "$SOCKS_PORT" "$SOCKS_AUTH_PORT")
busy=()
for p in "${ALL_PORTS[@]}"; do
  if port_open 127.0.0.1 "$p"; then
    owner="$(ss -Hltnp "sport = :$p" 2>/dev/null | grep -o 'users:.*' | head -n1 || true)"
    busy+=("$p ${owner:-(owner unknown)}")
  fi
done
if [ "${#busy[@]}" -gt 0 ]; then
  printf '[servers/start] port in use by a process start.sh did not start: %s\n' "${busy[@]}" >&2
  die "free these ports (or stop that process) and run start.sh again"
fi

echo "$STATE_DIR" >"$ACTIVE_MARKER"

# From here on, a failure stops whatever was already started (unless
# SERVERS_KEEP_ON_FAILURE=1, to poke at a half-started setup).
on_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -z "${SERVERS_KEEP_ON_FAILURE:-}" ]; then
    echo "[servers/start] start failed (rc=$rc): stopping what was started; logs stay in $STATE_DIR" >&2
    bash "$SERVERS_DIR/stop.sh" "$STATE_DIR" >&2 || true
  fi
}
trap on_exit EXIT

if [ -n "${SERVERS_CLEAN:-}" ]; then
  log "SERVERS_CLEAN set: wiping mail, spool and logs"
  rm -rf "$STATE_DIR/mail" "$STATE_DIR/aiosmtpd" "$STATE_DIR"/*.log "$STATE_DIR/dante"
fi
mkdir -p "$STATE_DIR"/{tls,postfix,dovecot/state,dante,aiosmtpd,mail}
chmod 755 "$STATE_DIR" "$STATE_DIR/postfix" "$STATE_DIR/dovecot" "$STATE_DIR/dante" "$STATE_DIR/aiosmtpd"

# ---------------------------------------------------------------- users
ensure_user() { # name
  getent passwd "$1" >/dev/null ||
    useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$1"
}
ensure_user vmail
ensure_user socks
echo 'socks:socks-secret' | chpasswd
for u in postfix dovecot dovenull; do
  getent passwd "$u" >/dev/null || die "system user $u missing (package install incomplete? run setup.sh)"
done
VMAIL_UID="$(id -u vmail)"
VMAIL_GID="$(id -g vmail)"

# The daemons' unprivileged users must be able to reach files under STATE_DIR.
for u in vmail dovecot postfix; do
  if ! runuser -u "$u" -- test -x "$STATE_DIR"; then
    die "user '$u' cannot traverse $STATE_DIR (a parent directory is not searchable, e.g. mode 700 /root).
  Pass a STATE_DIR below a world-searchable path, e.g.: bash .ci/servers/start.sh /tmp/test-servers"
  fi
done

# ---------------------------------------------------------------- helpers
# render TEMPLATE OUT KEY=VALUE...: replace @KEY@ placeholders
render() {
  local tpl="$1" out="$2" content kv k v
  shift 2
  content="$(cat "$tpl")"
  content="${content//@STATE_DIR@/"$STATE_DIR"}"
  for kv in "$@"; do
    k="${kv%%=*}"; v="${kv#*=}"
    content="${content//@$k@/"$v"}"
  done
  if grep -q '@[A-Z_0-9]*@' <<<"$content"; then
    die "unreplaced placeholder in $tpl: $(grep -o '@[A-Z_0-9]*@' <<<"$content" | sort -u | tr '\n' ' ')"
  fi
  printf '%s\n' "$content" >"$out.tmp"
  mv -f "$out.tmp" "$out"
}

tail_log() { # file [lines]
  if [ -f "$1" ]; then
    echo "----- tail of $1 -----" >&2
    tail -n "${2:-40}" "$1" >&2
    echo "-----" >&2
  else
    echo "(no log file $1)" >&2
  fi
}

# ---------------------------------------------------------------- TLS
gen_certs() {
  local d="$STATE_DIR/tls" cnf="$TEMPLATES/openssl.cnf"
  if [ -z "${SERVERS_NEW_CERTS:-}" ] && [ -s "$d/ca.pem" ] && [ -s "$d/server.pem" ] &&
     [ -s "$d/server.key" ] && [ -s "$d/server-chain.pem" ] && [ -s "$d/client.pem" ] &&
     openssl verify -CAfile "$d/ca.pem" "$d/server.pem" >/dev/null 2>&1 &&
     openssl x509 -in "$d/server.pem" -noout -checkend 86400 >/dev/null 2>&1 &&
     openssl x509 -in "$d/ca.pem" -noout -checkend 86400 >/dev/null 2>&1; then
    log "reusing test CA and certificates in $d"
    return 0
  fi
  log "generating test CA and certificates (EC P-256) in $d"
  rm -rf "$d"; mkdir -p "$d"; chmod 755 "$d"
  (
    cd "$d"
    umask 077
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    openssl req -new -x509 -config "$cnf" -extensions v3_ca -key ca.key -sha256 -days 3650 \
      -subj "/O=SMTP client CI/CN=SMTP client CI test CA" -set_serial "0x$(openssl rand -hex 16)" \
      -out ca.pem
    for kind in server client; do
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$kind.key" 2>/dev/null
      if [ "$kind" = server ]; then subj="/O=SMTP client CI/CN=localhost"
      else subj="/O=SMTP client CI/CN=alice@example.test"; fi
      openssl req -new -config "$cnf" -key "$kind.key" -subj "$subj" -out "$kind.csr"
      openssl x509 -req -in "$kind.csr" -CA ca.pem -CAkey ca.key -sha256 -days 825 \
        -set_serial "0x$(openssl rand -hex 16)" -extfile "$cnf" -extensions "v3_$kind" \
        -out "$kind.pem" 2>/dev/null
      rm -f "$kind.csr"
    done
    cat server.pem ca.pem >server-chain.pem
    chmod 644 ca.pem server.pem client.pem server-chain.pem
    chmod 600 ca.key server.key client.key
  )
  openssl verify -CAfile "$d/ca.pem" "$d/server.pem" >/dev/null || die "generated server cert does not verify"
}
gen_certs

# ---------------------------------------------------------------- IPv6?
if ipv6_loopback_usable; then
  HAVE_IPV6=1; INET_PROTOCOLS=all; MYNETWORKS="127.0.0.0/8 [::1]/128"
  IPV6_CHUNKING="[::1]:$POSTFIX_CHUNKING_PORT inet n - n - - smtpd
  -o syslog_name=postfix/chunking6
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=\$ci_noauth_relay_restrictions"
else
  HAVE_IPV6=0; INET_PROTOCOLS=ipv4; MYNETWORKS="127.0.0.0/8"
  IPV6_CHUNKING="# (no IPv6 loopback: [::1]:$POSTFIX_CHUNKING_PORT not configured)"
fi

# ---------------------------------------------------------------- Dovecot
log "configuring dovecot"
DOVECOT_CONF="$STATE_DIR/dovecot/dovecot.conf"
render "$TEMPLATES/dovecot.conf.in" "$DOVECOT_CONF" \
  VMAIL_UID="$VMAIL_UID" VMAIL_GID="$VMAIL_GID" DOVECOT_LMTP_PORT="$DOVECOT_LMTP_PORT"
cat >"$STATE_DIR/dovecot/users.tmp" <<'EOF'
alice@example.test:{PLAIN}alice-secret-1::::::
bob@example.test:{PLAIN}bob-secret-2::::::
EOF
chown root:dovecot "$STATE_DIR/dovecot/users.tmp"
chmod 640 "$STATE_DIR/dovecot/users.tmp"
mv -f "$STATE_DIR/dovecot/users.tmp" "$STATE_DIR/dovecot/users"
for u in alice bob; do
  mkdir -p "$STATE_DIR/mail/example.test/$u"/{cur,new,tmp}
done
chown -R vmail:vmail "$STATE_DIR/mail"
chmod 755 "$STATE_DIR/mail"
if ! timeout 20 doveconf -c "$DOVECOT_CONF" -n >"$STATE_DIR/dovecot/doveconf-n.txt" 2>"$STATE_DIR/dovecot/doveconf.err"; then
  cat "$STATE_DIR/dovecot/doveconf.err" >&2
  die "dovecot config invalid ($DOVECOT_CONF)"
fi
rm -rf "$STATE_DIR/lmtp.sock" "$STATE_DIR/dovecot/run"   # no stale sockets (e.g. anvil-auth-penalty)
log "starting dovecot"
if ! timeout 30 dovecot -c "$DOVECOT_CONF" </dev/null >>"$STATE_DIR/dovecot.log" 2>&1; then
  tail_log "$STATE_DIR/dovecot.log"
  die "dovecot failed to start"
fi

# ---------------------------------------------------------------- Postfix
log "configuring postfix (/etc/postfix/main.cf, master.cf)"
for f in main.cf master.cf; do
  if [ -f "/etc/postfix/$f" ] && ! grep -q 'GENERATED by .ci/servers/start.sh' "/etc/postfix/$f" &&
     [ ! -f "/etc/postfix/$f.pre-ci-servers" ]; then
    cp -p "/etc/postfix/$f" "/etc/postfix/$f.pre-ci-servers"
    log "saved previous /etc/postfix/$f as $f.pre-ci-servers"
  fi
done
for f in vmailbox transport recipient_access; do
  install -m 644 "$SERVERS_DIR/postfix/$f" "$STATE_DIR/postfix/$f"
done
PF_VARS=(INET_PROTOCOLS="$INET_PROTOCOLS" MYNETWORKS="$MYNETWORKS" IPV6_CHUNKING="$IPV6_CHUNKING"
  DOVECOT_LMTP_PORT="$DOVECOT_LMTP_PORT" SMTP_SINK_PORT="$SMTP_SINK_PORT"
  POSTFIX_PLAIN_PORT="$POSTFIX_PLAIN_PORT" POSTFIX_SUBMISSION_PORT="$POSTFIX_SUBMISSION_PORT"
  POSTFIX_SMTPS_PORT="$POSTFIX_SMTPS_PORT" POSTFIX_CHUNKING_PORT="$POSTFIX_CHUNKING_PORT")
render "$TEMPLATES/postfix-main.cf.in" /etc/postfix/main.cf "${PF_VARS[@]}"
render "$TEMPLATES/postfix-master.cf.in" /etc/postfix/master.cf "${PF_VARS[@]}"
cp /etc/postfix/main.cf /etc/postfix/master.cf "$STATE_DIR/postfix/"   # for reference
touch "$STATE_DIR/postfix.log"
if ! timeout 60 postfix check </dev/null >"$STATE_DIR/postfix/check.out" 2>&1; then
  cat "$STATE_DIR/postfix/check.out" >&2
  die "postfix check failed"
fi
if [ -s "$STATE_DIR/postfix/check.out" ]; then
  warn "postfix check said:"; cat "$STATE_DIR/postfix/check.out" >&2
fi
log "starting postfix"
if ! timeout 60 postfix start </dev/null >"$STATE_DIR/postfix/start.out" 2>&1; then
  cat "$STATE_DIR/postfix/start.out" >&2
  tail_log "$STATE_DIR/postfix.log"
  die "postfix start failed"
fi

# ---------------------------------------------------------------- smtp-sink
log "starting smtp-sink on 127.0.0.1:$SMTP_SINK_PORT"
SMTP_SINK_BIN="$(command -v smtp-sink || echo /usr/sbin/smtp-sink)"
setsid "$SMTP_SINK_BIN" -c -u postfix -h sink.example.test "127.0.0.1:$SMTP_SINK_PORT" 256 \
  </dev/null >>"$STATE_DIR/smtp-sink.log" 2>&1 &
echo $! >"$STATE_DIR/smtp-sink.pid"

# ---------------------------------------------------------------- aiosmtpd
log "starting aiosmtpd on 127.0.0.1:$AIOSMTPD_STARTTLS_PORT/$AIOSMTPD_IMPLICIT_PORT/$AIOSMTPD_PLAIN_PORT"
setsid "$PY_EXE" -u "$SERVERS_DIR/aiosmtpd_server.py" --state-dir "$STATE_DIR" \
  --starttls-port "$AIOSMTPD_STARTTLS_PORT" --implicit-port "$AIOSMTPD_IMPLICIT_PORT" \
  --plain-port "$AIOSMTPD_PLAIN_PORT" \
  </dev/null >>"$STATE_DIR/aiosmtpd.log" 2>&1 &
echo $! >"$STATE_DIR/aiosmtpd.pid"

# ---------------------------------------------------------------- Dante
for port in "$SOCKS_PORT" "$SOCKS_AUTH_PORT"; do
  if [ "$port" = "$SOCKS_PORT" ]; then method=none; else method=username; fi
  conf="$STATE_DIR/dante/danted-$port.conf"
  render "$TEMPLATES/danted.conf.in" "$conf" PORT="$port" SOCKSMETHOD="$method"
  log "starting danted on 127.0.0.1:$port (socksmethod $method)"
  if ! timeout 20 danted -D -f "$conf" -p "$STATE_DIR/dante/danted-$port.pid" \
       </dev/null >>"$STATE_DIR/dante/danted-$port.log" 2>&1; then
    tail_log "$STATE_DIR/dante/danted-$port.log"
    die "danted ($port) failed to start"
  fi
done

# ---------------------------------------------------------------- wait
PORT_LOGS=(
  "127.0.0.1 $DOVECOT_LMTP_PORT $STATE_DIR/dovecot.log"
  "127.0.0.1 $POSTFIX_PLAIN_PORT $STATE_DIR/postfix.log"
  "127.0.0.1 $POSTFIX_SUBMISSION_PORT $STATE_DIR/postfix.log"
  "127.0.0.1 $POSTFIX_SMTPS_PORT $STATE_DIR/postfix.log"
  "127.0.0.1 $POSTFIX_CHUNKING_PORT $STATE_DIR/postfix.log"
  "127.0.0.1 $SMTP_SINK_PORT $STATE_DIR/smtp-sink.log"
  "127.0.0.1 $AIOSMTPD_STARTTLS_PORT $STATE_DIR/aiosmtpd.log"
  "127.0.0.1 $AIOSMTPD_IMPLICIT_PORT $STATE_DIR/aiosmtpd.log"
  "127.0.0.1 $AIOSMTPD_PLAIN_PORT $STATE_DIR/aiosmtpd.log"
  "127.0.0.1 $SOCKS_PORT $STATE_DIR/dante/danted-$SOCKS_PORT.log"
  "127.0.0.1 $SOCKS_AUTH_PORT $STATE_DIR/dante/danted-$SOCKS_AUTH_PORT.log"
)
[ "$HAVE_IPV6" = 1 ] && PORT_LOGS+=("::1 $POSTFIX_CHUNKING_PORT $STATE_DIR/postfix.log")

log "waiting up to ${WAIT_SECS}s for all ports"
deadline=$((SECONDS + WAIT_SECS))
failed=()
for entry in "${PORT_LOGS[@]}"; do
  read -r host port logf <<<"$entry"
  until port_open "$host" "$port"; do
    if [ "$SECONDS" -ge "$deadline" ]; then failed+=("$entry"); break; fi
    sleep 0.2
  done
done
# Background servers that died after binding some ports (e.g. one port taken).
for entry in "aiosmtpd.pid aiosmtpd_server.py $STATE_DIR/aiosmtpd.log" \
             "smtp-sink.pid smtp-sink $STATE_DIR/smtp-sink.log"; do
  read -r pidf name logf <<<"$entry"
  pid_alive "$(cat "$STATE_DIR/$pidf" 2>/dev/null)" "$name" || failed+=("process $name $logf")
done
if [ ! -S "$STATE_DIR/lmtp.sock" ]; then
  failed+=("unix $STATE_DIR/lmtp.sock $STATE_DIR/dovecot.log")
fi
if [ ! -S /var/spool/postfix/private/auth ]; then
  failed+=("unix /var/spool/postfix/private/auth $STATE_DIR/dovecot.log")
fi
if [ "${#failed[@]}" -gt 0 ]; then
  declare -A shown=()
  for entry in "${failed[@]}"; do
    read -r host port logf <<<"$entry"
    echo "[servers/start] ERROR: not up: $host $port" >&2
    if [ -z "${shown[$logf]:-}" ]; then tail_log "$logf" 30; shown[$logf]=1; fi
  done
  die "some servers did not come up within ${WAIT_SECS}s (state dir $STATE_DIR)"
fi

# ---------------------------------------------------------------- env file
ENV_FILE="$STATE_DIR/servers.env"
cat >"$ENV_FILE.tmp" <<EOF
# Written by .ci/servers/start.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). KEY=value, no quoting needed.
SERVERS_STATE_DIR=$STATE_DIR
SMTP_TEST_CA=$STATE_DIR/tls/ca.pem
SMTP_TEST_SERVER_CERT=$STATE_DIR/tls/server.pem
SMTP_TEST_CLIENT_CERT=$STATE_DIR/tls/client.pem
SMTP_TEST_CLIENT_KEY=$STATE_DIR/tls/client.key
SMTP_TEST_HOST=localhost
SMTP_TEST_IPV4=127.0.0.1
SMTP_TEST_IPV6=$([ "$HAVE_IPV6" = 1 ] && echo ::1)
POSTFIX_PLAIN_PORT=$POSTFIX_PLAIN_PORT
POSTFIX_SUBMISSION_PORT=$POSTFIX_SUBMISSION_PORT
POSTFIX_SMTPS_PORT=$POSTFIX_SMTPS_PORT
POSTFIX_CHUNKING_PORT=$POSTFIX_CHUNKING_PORT
POSTFIX_CHUNKING_IPV6=$HAVE_IPV6
POSTFIX_LOG=$STATE_DIR/postfix.log
SMTP_SINK_PORT=$SMTP_SINK_PORT
SMTP_SINK_LOG=$STATE_DIR/smtp-sink.log
DOVECOT_LMTP_PORT=$DOVECOT_LMTP_PORT
DOVECOT_LMTP_SOCKET=$STATE_DIR/lmtp.sock
DOVECOT_LOG=$STATE_DIR/dovecot.log
MAILDIR_ROOT=$STATE_DIR/mail
MAILDIR_ALICE=$STATE_DIR/mail/example.test/alice
MAILDIR_BOB=$STATE_DIR/mail/example.test/bob
AIOSMTPD_STARTTLS_PORT=$AIOSMTPD_STARTTLS_PORT
AIOSMTPD_IMPLICIT_PORT=$AIOSMTPD_IMPLICIT_PORT
AIOSMTPD_PLAIN_PORT=$AIOSMTPD_PLAIN_PORT
AIOSMTPD_SPOOL=$STATE_DIR/aiosmtpd
AIOSMTPD_LOG=$STATE_DIR/aiosmtpd.log
SOCKS_HOST=127.0.0.1
SOCKS_PORT=$SOCKS_PORT
SOCKS_AUTH_PORT=$SOCKS_AUTH_PORT
SOCKS_USER=socks
SOCKS_PASS=socks-secret
TEST_USER_ALICE=alice@example.test
TEST_PASS_ALICE=alice-secret-1
TEST_USER_BOB=bob@example.test
TEST_PASS_BOB=bob-secret-2
TEST_USER_CAROL=carol
TEST_PASS_CAROL=carol-secret-3
TEST_RCPT_REJECT=reject@example.test
TEST_RCPT_REJECT_DOMAIN=rejected.example.test
TEST_RCPT_TEMPFAIL=tempfail@example.test
TEST_RCPT_UNKNOWN=nobody@example.test
TEST_SINK_DOMAIN=sink.example.test
EOF
mv -f "$ENV_FILE.tmp" "$ENV_FILE"
if [ "$ENV_FILE" != "$REPO_ENV_FILE" ]; then
  mkdir -p "$(dirname "$REPO_ENV_FILE")"
  cp -f "$ENV_FILE" "$REPO_ENV_FILE"
fi

log "all servers up in $((SECONDS - T0))s; env file: $ENV_FILE"
log "smoke test: python3 $SERVERS_DIR/check.py $STATE_DIR"
