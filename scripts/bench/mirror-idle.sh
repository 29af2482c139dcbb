#!/usr/bin/env bash
# What a mirror daemon costs mailserver1 while its accounts are quiet: `posta mirror --interval`
# against `posta mirror --idle --trust-notify --interval`, each on fresh servers (a Dovecot with a
# master user for each host, ACCOUNTS accounts of 50 small messages over 5 folders). After WARMUP
# seconds (the first passes, the IDLE sessions logging in), the bench counts for WINDOW seconds the
# logins mailserver1's Dovecot logs, and the passes posta reports. Without --idle every interval
# passes every account, with a login each; with --idle --trust-notify, Dovecot's NOTIFY tells the
# IDLE sessions that nothing changed, so the intervals vouch for the accounts instead, and each is
# passed only every 10 intervals. Nothing changes on mailserver1 during the window.
#
# Defaults: ACCOUNTS=20, INTERVAL=5s, WARMUP=20, WINDOW=60. POSTA is the binary. Needs root
# (it starts the servers).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-test-deps.sh >/dev/null
cargo build --release --locked --bin posta --example bench_env >/dev/null 2>&1

POSTA=${POSTA:-target/release/posta}
ACCOUNTS=${ACCOUNTS:-20}
INTERVAL=${INTERVAL:-5s}
WARMUP=${WARMUP:-20}
WINDOW=${WINDOW:-60}

# shellcheck source=scripts/bench/env.sh
. scripts/bench/env.sh
users=()
for ((i = 0; i < ACCOUNTS; i++)); do users+=("$(printf 'user%02d' "$i")"); done

logins() { grep -c "imap-login: Info: Login:" "$DST_DOVECOT_LOG" || true; }

declare -A LOGINS PASSES
# measure KEY FLAGS...: LOGINS[KEY] and PASSES[KEY] over the window, on fresh servers.
measure() {
  local key=$1 pid before
  shift
  work=$(mktemp -d)
  bench_env_start --accounts "$ACCOUNTS"
  [ "$(ask mirror-seed 50 2000)" = ok ] || { echo "seeding failed" >&2; exit 1; }
  state=$work/state
  mirror_site_file
  "$POSTA" --config "$work/site.toml" mirror --interval "$INTERVAL" --json "$@" \
    >"$work/out" 2>&1 &
  pid=$!
  sleep "$WARMUP"
  before=$(logins)
  local passes_before
  passes_before=$(grep -c '"ok":' "$work/out" || true)
  sleep "$WINDOW"
  LOGINS[$key]=$(($(logins) - before))
  PASSES[$key]=$(($(grep -c '"ok":' "$work/out" || true) - passes_before))
  kill "$pid"
  wait "$pid" || true
  bench_env_stop
  echo "  $key: ${LOGINS[$key]} logins to mailserver1; passes reported: ${PASSES[$key]}"
}

echo "posta: $POSTA ($("$POSTA" --version 2>/dev/null || echo 'version unknown'))"
echo "$ACCOUNTS quiet accounts, interval $INTERVAL, counted over ${WINDOW}s after ${WARMUP}s"
measure --interval
measure --idle --idle --trust-notify
echo "logins to mailserver1: --interval ${LOGINS[--interval]}," \
  "--idle --trust-notify ${LOGINS[--idle]}" \
  "($(ratio "${LOGINS[--interval]}" "${LOGINS[--idle]}")x fewer)"
