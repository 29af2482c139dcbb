#!/usr/bin/env bash
# The one command that runs every posta test: installs the real servers the integration tests
# start (Postfix, Dovecot, BIND9, ...; needs root) and cargo-nextest, then runs all test
# targets with it: each test in its own process, several at once, as .config/nextest.toml says
# (which tests may run beside which). Extra arguments go to `cargo nextest run`, e.g.
# `scripts/test.sh --no-capture` or `scripts/test.sh -E 'binary(site)'`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
exec cargo nextest run --all-targets --locked "$@"
