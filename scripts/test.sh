#!/usr/bin/env bash
# The one command that runs every posta test: installs the real servers the integration tests
# start (Postfix, Dovecot, BIND9, ...; needs root) and then runs all test targets.
# Extra arguments go to cargo test, e.g. `scripts/test.sh -- --nocapture`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
exec cargo test --all-targets --locked "$@"
