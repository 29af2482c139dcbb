#!/usr/bin/env bash
# Durable SMTP intake: Postfix's smtp-source against `posta mta` in its two storing modes and
# against the harness Postfix (tests/support/postfix.rs, started by examples/mta_bench.rs), with
# the same load for all three, one after the other in one run:
#
#   smtp-source -s 20 -m COUNT -l 4096 -c -f sender@bench.test -t rcpt@bench.test 127.0.0.1:PORT
#
# 20 parallel sessions, 4 KB messages, one new connection per message (smtp-source's default;
# set REUSE=1 to add -d, every session reusing its connection, for all three peers alike).
#
#   posta maildir  posta mta --domain bench.test --maildir DIR: local delivery, each 250 after
#                  the file and new/ are fsync'd (group commit across sessions).
#   posta queue    posta mta --relay-domain bench.test --queue DIR --relay-to 127.0.0.1:9: the
#                  queue file and active/ fsync'd before 250. Nothing listens on port 9 and
#                  --retry-min 1h keeps the runner from retrying, so the queue only grows: what
#                  is measured is acceptance.
#   postfix        the harness Postfix accepting for bench.test: cleanup(8) fsyncs the queue file
#                  before smtpd answers 250; qmgr and virtual(8) deliver into a Maildir meanwhile.
#
# The clock runs from smtp-source's start to its exit, when all COUNT messages have had their
# 250: durable acceptances per second. For Postfix a second figure is the time until all COUNT
# are in its Maildir. posta's peak RSS is VmHWM read from /proc before it is stopped. After each
# posta run its Maildir / queue must hold exactly COUNT messages, or the script fails.
#
# Limits that would refuse the benchmark's own sessions are lifted on both sides: posta gets
# --max-per-ip 1000 (its default of 50 leaves little headroom over 20 sessions: a slot is freed a moment
# after the client has read 221 and reconnected), Postfix gets loopback exempted from anvil's
# per-client limits (see UNTHROTTLE in examples/mta_bench.rs). Both log every message at their
# default level (posta: info to a file; Postfix: postlogd to maillog_file).
#
# Then 20 sessions x one 40 MB message to the Maildir mode, for the peak RSS.
# Override with COUNT (default 20000), REUSE=1 and POSTA (the binary). Needs root (it installs
# the Debian packages and starts Postfix). On a 2-core machine, run nothing else meanwhile.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-test-deps.sh >/dev/null
cargo build --release --locked --bin posta --example mta_bench >/dev/null 2>&1

POSTA=${POSTA:-target/release/posta}
COUNT=${COUNT:-20000}
SESSIONS=20
SIZE=4096
# Postfix's delivery into its Maildir must progress at least this often.
STALL_SECONDS=${STALL_SECONDS:-60}
reuse=()
mode="a new connection per message"
if [ "${REUSE:-0}" = 1 ]; then
  reuse=(-d)
  mode="connections reused (-d)"
fi

work=$(mktemp -d)
posta_pid=
coproc MTA_BENCH { exec target/release/examples/mta_bench "$work/env" 2>"$work/mta_bench.log"; }
env_pid=$MTA_BENCH_PID
to_env=${MTA_BENCH[1]}
from_env=${MTA_BENCH[0]}
cleanup() {
  if [ -n "$posta_pid" ]; then
    kill "$posta_pid" 2>/dev/null || true
    wait "$posta_pid" 2>/dev/null || true
  fi
  exec {to_env}>&-
  wait "$env_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! read -r -t 120 ready <&"$from_env" || [ "$ready" != ready ]; then
  echo "mta_bench did not start:" >&2
  cat "$work/mta_bench.log" >&2
  exit 1
fi
# shellcheck disable=SC1091
. "$work/env"

# files DIR...: how many files the directories hold.
files() { find "$@" -maxdepth 1 -type f 2>/dev/null | wc -l; }

# smtp_source PORT: the load, timed; its elapsed seconds land in $work/seconds.
smtp_source() {
  local start end status=0
  start=$(date +%s.%N)
  /usr/sbin/smtp-source "${reuse[@]}" -s "$SESSIONS" -m "$COUNT" -l "$SIZE" -c \
    -f sender@bench.test -t "$RCPT" "127.0.0.1:$1" >"$work/smtp-source.log" 2>&1 || status=$?
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }' >"$work/seconds"
  if [ "$status" -ne 0 ]; then
    echo "smtp-source failed with exit status $status:" >&2
    tail -n 5 "$work/smtp-source.log" >&2
    return 1
  fi
}

# A free loopback port for posta.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

declare -A SECS RATE RSS
record() {
  SECS[$1]=$(cat "$work/seconds")
  RATE[$1]=$(awk -v n="$COUNT" -v t="${SECS[$1]}" 'BEGIN { printf "%.0f", n / t }')
}

# run_posta KEY COUNT_DIR ARGS...: starts posta mta with ARGS, loads it, checks that COUNT_DIR
# holds exactly COUNT files, records rate and peak RSS, stops it.
run_posta() {
  local key=$1 dir=$2 port held
  shift 2
  port=$(free_port)
  env -u POSTA_CONFIG "$POSTA" mta --listen "127.0.0.1:$port" --hostname mx.bench.test \
    --max-per-ip 1000 "$@" >"$work/$key.log" 2>&1 &
  posta_pid=$!
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$posta_pid" 2>/dev/null || break
    sleep 0.05
  done
  if ! kill -0 "$posta_pid" 2>/dev/null; then
    echo "posta mta ($key) did not start:" >&2
    tail -n 20 "$work/$key.log" >&2
    exit 1
  fi
  smtp_source "$port"
  RSS[$key]=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$posta_pid/status")
  kill "$posta_pid"
  wait "$posta_pid" 2>/dev/null || true
  posta_pid=
  record "$key"
  held=$(files "$dir")
  if [ "$held" -ne "$COUNT" ]; then
    echo "posta mta ($key) holds $held messages in $dir, $COUNT expected" >&2
    exit 1
  fi
  printf '  %-14s %6d msgs in %7.2f s  %6s msg/s  peak RSS %5s MB  (%s holds %d)\n' "$key" \
    "$COUNT" "${SECS[$key]}" "${RATE[$key]}" "${RSS[$key]}" "${dir#"$work"/}" "$held"
}

echo "posta: $POSTA ($("$POSTA" --version 2>/dev/null || echo 'version unknown')); $(postconf -d -h mail_version 2>/dev/null | sed 's/^/postfix /')"
echo "load: $COUNT x $SIZE bytes, $SESSIONS sessions, $mode; $(nproc) cores"

mkdir -p "$work/maildir" "$work/queue"
run_posta "posta maildir" "$work/maildir/rcpt/new" --domain bench.test --maildir "$work/maildir"
run_posta "posta queue" "$work/queue/active" --relay-domain bench.test --queue "$work/queue" \
  --control-socket "$work/queue.sock" --relay-to 127.0.0.1:9 --relay-tls none --retry-min 1h

# Postfix: acceptance when smtp-source exits, delivery when its Maildir holds COUNT.
start=$(date +%s.%N)
smtp_source "$POSTFIX_SMTP_PORT"
record postfix
last=-1 since=$SECONDS
while :; do
  held=$(files "$POSTFIX_MAILDIR/new" "$POSTFIX_MAILDIR/cur")
  [ "$held" -eq "$COUNT" ] && break
  if [ "$held" -gt "$COUNT" ]; then
    echo "postfix delivered $held messages, $COUNT expected" >&2
    exit 1
  fi
  if [ "$held" -ne "$last" ]; then
    last=$held since=$SECONDS
  elif [ $((SECONDS - since)) -ge "$STALL_SECONDS" ]; then
    echo "postfix delivery stalled at $held of $COUNT; log tail:" >&2
    tail -n 5 "$POSTFIX_LOG" >&2
    exit 1
  fi
  sleep 0.05
done
end=$(date +%s.%N)
delivered=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')
printf '  %-14s %6d msgs in %7.2f s  %6s msg/s  (all in its Maildir after %.2f s: %.0f msg/s)\n' \
  postfix "$COUNT" "${SECS[postfix]}" "${RATE[postfix]}" "$delivered" \
  "$(awk -v n="$COUNT" -v t="$delivered" 'BEGIN { print n / t }')"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
printf '%-14s %8s %9s %8s %16s %14s\n' peer messages seconds "msg/s" "ratio /postfix" "peak RSS MB"
for key in "posta maildir" "posta queue" postfix; do
  printf '%-14s %8d %9s %8s %16s %14s\n' "$key" "$COUNT" "${SECS[$key]}" "${RATE[$key]}" \
    "$(ratio "${RATE[$key]}" "${RATE[postfix]}")" "${RSS[$key]:--}"
done

# The big-message case (issue 13): 20 sessions each sending one 40 MB message to the Maildir
# mode. Bodies beyond 1 MiB are spooled to disk while they arrive, so posta's peak RSS stays
# bounded however big the messages are (the target: under 64 MiB).
COUNT=$SESSIONS
SIZE=$((40 * 1024 * 1024))
echo
echo "big messages: $COUNT x $SIZE bytes, $SESSIONS sessions"
mkdir -p "$work/big"
run_posta "posta 40MB" "$work/big/rcpt/new" --domain bench.test --maildir "$work/big" \
  --max-message-size 100000000
