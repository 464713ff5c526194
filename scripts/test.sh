#!/usr/bin/env bash
# The project's test command: starts the real mail servers the interop tests talk to (Postfix, Dovecot LMTP,
# aiosmtpd, smtp-sink, dante; loopback only), then runs every test in the workspace.
# Needs root (or passwordless sudo) the first time, to install the servers with apt and pip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash .ci/servers/setup.sh
bash .ci/servers/start.sh
cargo test --workspace --all-features --no-fail-fast
