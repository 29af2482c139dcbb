#!/usr/bin/env bash
# Builds the Debian package, target/debian/posta_VERSION-1_ARCH.deb, with cargo-deb (the
# version scripts/install-test-deps.sh pins; `cargo install cargo-deb --locked` otherwise):
# a release build of posta, its man pages (gzipped), completions, systemd units, examples and
# the maintainer scripts in scripts/debian/. Install it with
#   apt install ./target/debian/posta_*.deb
# Extra arguments go to `cargo deb` (scripts/package-test.sh packages the test build's binary
# with `--no-build --profile dev`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
    echo "package.sh: cargo-deb is missing: cargo install cargo-deb --locked" >&2
    exit 1
fi
cargo deb --locked "$@"
