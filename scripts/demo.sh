#!/usr/bin/env bash
# The main job, on one machine: start a private Postfix + Dovecot on loopback and probe them
# with `posta check` (table and Nagios forms). Needs root (it installs the Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo build --release --locked --bin posta --example demo
exec target/release/examples/demo
