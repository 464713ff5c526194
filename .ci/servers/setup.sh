#!/usr/bin/env bash
# Install the real mail servers used by the interop tests (idempotent, fast on re-runs).
# Usage: bash .ci/servers/setup.sh
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
PY="${PYTHON:-python3}"

log() { printf '[servers/setup] %s\n' "$*"; }

SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else
    echo "setup.sh must run as root (or with passwordless sudo)" >&2; exit 1; fi
fi

APT_PKGS=(postfix dovecot-core dovecot-lmtpd dante-server openssl swaks ca-certificates netcat-openbsd iproute2 util-linux)

missing=()
for p in "${APT_PKGS[@]}"; do
  st="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
  [ "$st" = installed ] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  # Postfix: do not let the installer write a configuration or ask anything.
  echo "postfix postfix/main_mailer_type select No configuration" | "${SUDO[@]}" debconf-set-selections
  echo "postfix postfix/mailname string mx.example.test" | "${SUDO[@]}" debconf-set-selections

  # Keep the package scripts from starting daemons with their default
  # configuration (start.sh starts them with ours, on loopback only).
  tmp_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    tmp_policy=1
  fi
  cleanup() { if [ -n "$tmp_policy" ]; then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi; }
  trap cleanup EXIT

  timeout 300 "${SUDO[@]}" apt-get update -q </dev/null
  timeout 600 "${SUDO[@]}" apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null
  cleanup; trap - EXIT
else
  log "apt packages already installed"
fi

# aiosmtpd for the Python test server (into the python3 that start.sh uses).
if "$PY" -c 'import aiosmtpd' >/dev/null 2>&1; then
  log "aiosmtpd already installed"
else
  log "installing aiosmtpd with pip"
  pip_flags=(--disable-pip-version-check --no-input -q --root-user-action=ignore)
  # Debian's system python refuses plain pip installs (PEP 668); pyenv's does not.
  if "$PY" -c 'import sys; sys.exit(0 if sys.prefix == sys.base_prefix else 1)' \
     && [ -e "$("$PY" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]; then
    pip_flags+=(--break-system-packages)
  fi
  timeout 300 "$PY" -m pip install "${pip_flags[@]}" "aiosmtpd>=1.4,<2" </dev/null
fi

# System users the servers run as (created here so start.sh only checks).
ensure_user() { # name home
  if ! getent passwd "$1" >/dev/null; then
    "${SUDO[@]}" useradd --system --home-dir "$2" --no-create-home --shell /usr/sbin/nologin "$1"
    log "created system user $1"
  fi
}
ensure_user vmail /nonexistent
ensure_user socks /nonexistent
# dante username auth checks the system password database.
echo 'socks:socks-secret' | "${SUDO[@]}" chpasswd

log "done"
