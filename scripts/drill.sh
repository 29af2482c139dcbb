#!/usr/bin/env bash
# The main job: rehearse the whole failover on this machine with `posta drill` (network
# namespaces: mailserver1, mailserver2, the friend's relay and a client). As root it uses them
# directly; as any other user it enters an unprivileged user namespace (unshare -Urnm) first.
# Needs iproute2 and util-linux, nothing else. Extra arguments go to posta drill, e.g. `--messages 100`, or
# `--slow` for the realistic pace instead of --fast.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ip >/dev/null || { echo "drill.sh: needs iproute2 (apt-get install iproute2)" >&2; exit 1; }
cargo build --release --locked --bin posta
pace=--fast
if [ "${1:-}" = --slow ]; then pace=; shift; fi
exec target/release/posta drill $pace "$@"
