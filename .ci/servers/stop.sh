#!/usr/bin/env bash
# Stop every server that .ci/servers/start.sh started (bounded in time).
# Usage: bash .ci/servers/stop.sh [STATE_DIR]   (default <repo>/target/test-servers)
set -uo pipefail

LOG_TAG=stop
# shellcheck source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"
as_root "$SERVERS_DIR/stop.sh" "$@"
resolve_state_dir "${1:-}"

# kill_port_owner PORT NAME: last resort when a pidfile was lost (e.g. the
# state dir was deleted): stop the listener on 127.0.0.1/::1 PORT, but only if
# its command line contains NAME, i.e. it is one of the servers started here.
kill_port_owner() {
  local port="$1" name="$2" pids pid i
  command -v ss >/dev/null 2>&1 || return 0
  pids="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)"
  for pid in $pids; do
    if pid_alive "$pid" "$name"; then
      warn "port $port still held by $name (pid $pid) without a pidfile: stopping it"
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do pid_alive "$pid" "$name" || break; sleep 0.1; done
      pid_alive "$pid" "$name" && kill -KILL "$pid" 2>/dev/null
    fi
  done
  return 0
}

# stop_state DIR: stop the daemons whose pidfiles live in DIR
stop_state() {
  local STATE_DIR="$1"
  # aiosmtpd, smtp-sink, dante: our own pidfiles
  stop_pidfile "$STATE_DIR/aiosmtpd.pid" aiosmtpd_server.py 10
  stop_pidfile "$STATE_DIR/smtp-sink.pid" smtp-sink 5
  stop_pidfile "$STATE_DIR/dante/danted-$SOCKS_PORT.pid" danted 5
  stop_pidfile "$STATE_DIR/dante/danted-$SOCKS_AUTH_PORT.pid" danted 5

  # Dovecot (our instance: base_dir under STATE_DIR)
  if [ -f "$STATE_DIR/dovecot/run/master.pid" ]; then
    log "stopping dovecot"
    stop_pidfile "$STATE_DIR/dovecot/run/master.pid" dovecot 15
  fi
  rm -f "$STATE_DIR/servers.env" "$STATE_DIR/lmtp.sock" "$REPO_ENV_FILE"
}

stop_state "$STATE_DIR"
# The servers may have been started with another STATE_DIR.
if [ -f "$ACTIVE_MARKER" ]; then
  other="$(head -n1 "$ACTIVE_MARKER")"
  if [ -n "$other" ] && [ "$other" != "$STATE_DIR" ] && [ -d "$other" ]; then
    log "also stopping the servers of $other"
    stop_state "$other"
  fi
fi

# --- Postfix (system instance, configured from /etc/postfix)
if [ -f /etc/postfix/main.cf ] && command -v postfix >/dev/null 2>&1; then
  if timeout 10 postfix status >/dev/null 2>&1; then
    log "stopping postfix"
    timeout 20 postfix stop </dev/null >/dev/null 2>&1 || true
    for ((i = 0; i < 150; i++)); do
      timeout 5 postfix status >/dev/null 2>&1 || break
      sleep 0.1
    done
    if timeout 5 postfix status >/dev/null 2>&1; then
      warn "postfix did not stop in 15s: postfix abort"
      timeout 10 postfix abort </dev/null >/dev/null 2>&1 || true
    fi
  fi
fi

# --- Leftovers whose pidfile is gone
kill_port_owner "$AIOSMTPD_STARTTLS_PORT" aiosmtpd_server.py
kill_port_owner "$AIOSMTPD_IMPLICIT_PORT" aiosmtpd_server.py
kill_port_owner "$AIOSMTPD_PLAIN_PORT" aiosmtpd_server.py
kill_port_owner "$SMTP_SINK_PORT" smtp-sink
kill_port_owner "$SOCKS_PORT" danted
kill_port_owner "$SOCKS_AUTH_PORT" danted
kill_port_owner "$DOVECOT_LMTP_PORT" dovecot
for p in "$POSTFIX_PLAIN_PORT" "$POSTFIX_SUBMISSION_PORT" "$POSTFIX_SMTPS_PORT" "$POSTFIX_CHUNKING_PORT"; do
  kill_port_owner "$p" postfix/sbin/master
done

rm -f "$ACTIVE_MARKER"
log "stopped (state dir $STATE_DIR kept)"
exit 0
