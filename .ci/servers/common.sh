# Shared helpers for .ci/servers/{start,stop}.sh. Sourced, not executed.
# shellcheck shell=bash disable=SC2034  # variables are used by the sourcing scripts

SERVERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SERVERS_DIR/../.." && pwd)"
PY="${PYTHON:-python3}"

# Fixed test ports (all on loopback).
POSTFIX_PLAIN_PORT=2525
POSTFIX_SUBMISSION_PORT=2587
POSTFIX_SMTPS_PORT=2465
POSTFIX_CHUNKING_PORT=2526
SMTP_SINK_PORT=2600
DOVECOT_LMTP_PORT=2424
AIOSMTPD_STARTTLS_PORT=2527
AIOSMTPD_IMPLICIT_PORT=2528
AIOSMTPD_PLAIN_PORT=2529
SOCKS_PORT=1080
SOCKS_AUTH_PORT=1081

# Records which STATE_DIR the running servers use (Postfix is system-wide, so
# only one set runs at a time); stop.sh also stops that one.
ACTIVE_MARKER="/run/smtp-test-servers.state-dir"
[ -d /run ] && [ -w /run ] || ACTIVE_MARKER="/tmp/smtp-test-servers.state-dir"

log()  { printf '[servers/%s +%ss] %s\n' "${LOG_TAG:-?}" "$SECONDS" "$*"; }
warn() { printf '[servers/%s] WARNING: %s\n' "${LOG_TAG:-?}" "$*" >&2; }
die()  { printf '[servers/%s] ERROR: %s\n' "${LOG_TAG:-?}" "$*" >&2; exit 1; }

# as_root SCRIPT ARGS...: if not root, re-run SCRIPT through passwordless sudo
# (keeping PYTHON and the SERVERS_* knobs); otherwise return.
as_root() {
  [ "$(id -u)" = 0 ] && return 0
  command -v sudo >/dev/null 2>&1 || die "must run as root (or with passwordless sudo)"
  local script="$1" py
  shift
  py="$("$PY" -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)"
  exec sudo -n --preserve-env=SERVERS_NEW_CERTS,SERVERS_CLEAN,SERVERS_WAIT,SERVERS_KEEP_ON_FAILURE \
    env PYTHON="$py" bash "$script" "$@"
}

# resolve_state_dir [ARG] -> sets STATE_DIR (absolute, no trailing slash)
# The env file the tests read is always published at $REPO_ENV_FILE, wherever the state lives.
REPO_ENV_FILE="$REPO_ROOT/target/test-servers/servers.env"

# all_parents_searchable DIR: every existing ancestor lets other users traverse it (the daemons run as
# vmail/dovecot/postfix, so a clone under a mode-700 home cannot hold their state).
all_parents_searchable() {
  local p="$1"
  while [ "$p" != "/" ] && [ -n "$p" ]; do
    if [ -d "$p" ] && [ "$(( 0$(stat -c %a "$p") & 1 ))" = 0 ]; then return 1; fi
    p="$(dirname "$p")"
  done
  return 0
}

resolve_state_dir() {
  local d="${1:-${SMTP_TEST_STATE_DIR:-}}"
  if [ -z "$d" ]; then
    d="$REPO_ROOT/target/test-servers"
    all_parents_searchable "$d" || d="/var/tmp/smtp-test-servers"
  fi
  case "$d" in /*) ;; *) d="$PWD/$d" ;; esac
  d="${d%/}"
  # Postfix/Dovecot config syntax: keep the path boring.
  if ! [[ "$d" =~ ^/[A-Za-z0-9._/+-]+$ ]]; then
    die "STATE_DIR '$d' contains characters Postfix/Dovecot configs cannot take (use [A-Za-z0-9._/+-])"
  fi
  STATE_DIR="$d"
}

# pid_alive PID NAME-SUBSTRING: true if PID runs and its cmdline contains NAME
pid_alive() {
  local pid="$1" name="$2"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name"
}

# stop_pidfile FILE NAME [TIMEOUT]: TERM, wait, then KILL the process in FILE
stop_pidfile() {
  local f="$1" name="$2" t="${3:-10}" pid i
  [ -f "$f" ] || return 0
  pid="$(head -n1 "$f" 2>/dev/null | tr -dc 0-9)"
  if pid_alive "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < t * 10; i++)); do
      pid_alive "$pid" "$name" || break
      sleep 0.1
    done
    if pid_alive "$pid" "$name"; then
      warn "$name (pid $pid) did not stop in ${t}s, killing"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$f"
}

# port_open HOST PORT: one bounded connection attempt
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

ipv6_loopback_usable() {
  [ -r /proc/net/if_inet6 ] || return 1
  grep -qE '^0{31}1 .* lo$' /proc/net/if_inet6 || return 1
  [ "$(cat /proc/sys/net/ipv6/conf/lo/disable_ipv6 2>/dev/null || echo 0)" = 0 ]
}
