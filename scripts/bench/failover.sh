#!/usr/bin/env bash
# Client-visible outage of a whole failover cycle, posta's two watches against keepalived, in
# the same network namespaces with the same fast timings (issue 15's failback target: < 1 s).
#
# Layout (scripts/bench/lan.sh, as tests/support/netns.rs builds it): namespaces client, ms1
# and ms2 on one bridge (names start with `pfx`), an SMTP greeter on ms1 and on ms2 that names
# its host (examples/vip_bench.rs `greet`, enough SMTP for posta's health probe), the VIP
# configured on ms1 as its own address. A client in the client namespace connects to the VIP
# every few milliseconds (vip_bench `await-greeting`) and notes when the greeting it waits
# for first comes back.
#
# posta: one site file (written below: services ["smtp?starttls=no"], as the greeters have no
# TLS and keepalived counts `check --nagios`'s WARNING as a failure; probe interval 1 s,
# timeout 500 ms, fall 2, rise 2, takeover_grace 4 s, auto_takeover and auto_failback);
# `posta watch` on ms2 and `posta watch` on ms1 (its primary-side role: releases the VIP when
# its own services die, reclaims and announces it the moment ms2 lets go; README "Failback
# without a blackout").
# keepalived: the same site file through `posta keepalived config --role primary|backup`
# (advert_int 1, ms1 priority 150 with `posta check --nagios primary` as vrrp_script, interval
# 1 s, fall 2 + 4 for the grace, rise 2; ms2 priority 100), keepalived 2.2.x run in each
# namespace with its own pid files and its console log time-stamped by this script.
#
# Each cycle: the client reaches ms1 through the VIP; at a random point of the 1 s probe and
# advert cycle the outage starts (OUTAGES: `link`, ms1's link down; `services`, ms1's greeter
# killed); ms1 stays out until 6 s after the client reached ms2 (keepalived's second GARP
# burst comes 5 s after MASTER); then it comes back. Measured, in ms:
#
# - takeover gap: from the tool's decision that ms1 is gone to the client's first greeting
#   from ms2 through the VIP. The decision is when the grace ends: for posta, the watch's
#   transition into `down` (its state file) + takeover_grace, i.e. detection (fall failed
#   rounds) + grace; for keepalived, ms2's "Entering MASTER STATE" (its log), i.e. its
#   master-down timer (3 x advert_int + skew (256-100)/256 s after the last advert it heard)
#   or, for dead services, ms1 entering FAULT after `fall` failed checks and ms2 answering.
#   Both are "the moment the tool has decided to move the address"; what follows is the move.
# - outage: outage start -> that greeting (everything the client lives through).
# - failback gap: from the failback decision to the client's first greeting from ms1 through
#   the VIP. posta: the ms2 watch's `running command=failback` (its log: the round that saw
#   ms1 up `rise` times); keepalived: ms1's "Entering MASTER STATE" (its log; preemption).
#   Negative when the client was back on ms1 before that decision: after a link outage ms1
#   still has the VIP configured, both hosts answer, and ms1's watch defends the address as
#   its rightful owner (RFC 5227 §2.4) before ms2's watch has decided anything.
# - ms1 back -> first greeting from ms1: from the link coming up (or the greeter restarting)
#   to the client's first greeting from ms1, whatever decided it.
#
# Then a table per tool and outage: median and max of each gap, and posta/keepalived of the
# medians. Environment: CYCLES (default 5) per tool and outage, OUTAGES (default "link
# services"), POSTA (default target/debug/posta, built here: these are network timings, not
# CPU), KEEPALIVED (default `command -v keepalived`). Needs root. Not part of CI or the tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/lan.sh
. scripts/bench/lan.sh

cycles=${CYCLES:-5}
outages=${OUTAGES:-link services}
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$PWD/$target ;; esac
if [ -z "${POSTA:-}" ]; then
  cargo build --locked --bin posta --example vip_bench >/dev/null 2>&1
  posta=$target/debug/posta
else
  cargo build --locked --example vip_bench >/dev/null 2>&1
  posta=$POSTA
fi
case $posta in /*) ;; *) posta=$PWD/$posta ;; esac
bench=$target/debug/examples/vip_bench
ka=${KEEPALIVED:-$(command -v keepalived || echo /usr/sbin/keepalived)}
[ -x "$posta" ] || { echo "no posta binary at $posta" >&2; exit 1; }
[ -x "$ka" ] || { echo "keepalived not found: run scripts/install-test-deps.sh" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 1; }

work=$(mktemp -d /tmp/posta-failover.XXXXXX)
tag=pfxfb$$
hub=$tag-hub client=$tag-client ms1=$tag-ms1 ms2=$tag-ms2
subnet=251
vip=10.77.$subnet.100
grace=4 # takeover_grace, seconds
hold=6  # seconds ms1 stays out after the client reached ms2
pids=()

cleanup() {
  local f
  for f in "$work"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  lan_down
  if [ -n "${KEEP_WORK:-}" ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

lan_up "$subnet" fb
greeter_ms1=${pids[0]} # lan_up starts ms1's greeter first

cat > "$work/site.toml" <<EOF
domain = "example.org"

[primary]
name = "ms1"
address = "$vip"
probe_address = "10.77.$subnet.11"
services = ["smtp?starttls=no"]

[backup]
name = "ms2"
address = "10.77.$subnet.12"
services = ["smtp?starttls=no"]

[takeover]
mode = "vip"
state_file = "$work/takeover.json"

[vip]
address = "$vip/24"
interface = "eth0"

[probe]
interval = "1s"
timeout = "500ms"
fall = 2
rise = 2
takeover_grace = "${grace}s"

[watch]
auto_takeover = true
auto_failback = true
state_file = "$work/watch.json"
sweep_interval = "off"
EOF
site=$work/site.toml
ip netns exec "$ms2" "$posta" --config "$site" config check >/dev/null

now() { echo "$EPOCHREALTIME"; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'; }

# Starts the client waiting for NAME's greeting through the VIP; sets $poller.
await_bg() {
  ip netns exec "$client" "$bench" await-greeting "$vip" "$1" 60000 > "$work/greeting" &
  poller=$!
  sleep 0.2
}
# Waits for the poller; sets $greeted to the greeting's time (epoch seconds).
await_fg() {
  wait "$poller" || { echo "the client never got the greeting it waited for" >&2; exit 1; }
  greeted=$(sed -n 's/^greeting_ns=\(.*\)\(.........\)$/\1.\2/p' "$work/greeting")
}
await_now() { ip netns exec "$client" "$bench" await-greeting "$vip" "$1" 60000 >/dev/null; }

# Waits up to 60 s for COMMAND to succeed.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 600); do "$@" && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2
  exit 1
}

outage_start() { # KIND
  case $1 in
    link) ip -n "$ms1" link set eth0 down ;;
    services) kill -KILL "$greeter_ms1"; wait "$greeter_ms1" 2>/dev/null || true ;;
  esac
}
outage_end() { # KIND
  case $1 in
    link) ip -n "$ms1" link set eth0 up ;;
    services)
      ip netns exec "$ms1" "$bench" greet ms1 &
      greeter_ms1=$!
      pids+=("$greeter_ms1")
      ;;
  esac
}

# One file of figures per tool, outage and measure: $work/fig.TOOL.KIND.MEASURE, ms per line.
record() { echo "$4" >> "$work/fig.$1.$2.$3"; }

## posta ##########################################################################################

ip -n "$ms1" addr add "$vip/24" dev eth0
start_watch() { # HOST
  POSTA_LOG=posta=info ip netns exec "${!1}" "$posta" --config "$site" watch \
    --state-file "$work/watch-$1.json" > "$work/watch-$1.log" 2>&1 &
  pids+=($!)
  echo $! > "$work/watch-$1.pid"
}
watch_state() { jq -r '.state // empty' "$work/watch-$1.json" 2>/dev/null; }
state_is() { [ "$(watch_state "$1")" = "$2" ]; }
start_watch ms1
start_watch ms2
settled() { state_is ms2 healthy && state_is ms1 serving; }
wait_for "both watches settled" settled

# The first transition of ms2's watch into STATE at or after T (epoch seconds).
transition_at() { # STATE T
  jq -r --arg to "$1" --argjson t "$2" \
    '[.transitions[] | select(.to == $to and .at >= $t) | .at] | first // empty' \
    "$work/watch-ms2.json"
}
# When ms2's watch started `posta failback` at or after T: its log line's time stamp.
failback_started() { # T
  local stamp
  while read -r stamp _; do
    stamp=$(date -d "$stamp" +%s.%N)
    if awk -v a="$stamp" -v b="$1" 'BEGIN { exit !(a >= b) }'; then echo "$stamp"; return; fi
  done < <(grep 'running command=failback' "$work/watch-ms2.log" | sed 's/\x1b\[[0-9;]*m//g')
}

for kind in $outages; do
  for n in $(seq "$cycles"); do
    await_now ms1
    await_bg ms2
    random_phase
    t_out=$(now)
    outage_start "$kind"
    await_fg
    t_ms2=$greeted
    wait_for "ms2's watch to take over" state_is ms2 taken_over
    down=$(transition_at down "$t_out")
    [ -n "$down" ] || { echo "no transition into down after the outage" >&2; exit 1; }
    decided=$(awk -v d="$down" -v g="$grace" 'BEGIN { printf "%.6f", d + g }')
    record posta "$kind" takeover "$(ms_between "$decided" "$t_ms2")"
    record posta "$kind" outage "$(ms_between "$t_out" "$t_ms2")"
    sleep "$hold"
    await_bg ms1
    t_back=$(now)
    outage_end "$kind"
    await_fg
    t_ms1=$greeted
    wait_for "the failback to end" settled
    decided=$(failback_started "$t_back")
    [ -n "$decided" ] || { echo "no failback in ms2's watch log" >&2; exit 1; }
    record posta "$kind" failback "$(ms_between "$decided" "$t_ms1")"
    record posta "$kind" back "$(ms_between "$t_back" "$t_ms1")"
    echo "posta $kind $n: takeover $(tail -1 "$work/fig.posta.$kind.takeover") ms," \
      "outage $(tail -1 "$work/fig.posta.$kind.outage") ms," \
      "failback $(tail -1 "$work/fig.posta.$kind.failback") ms" >&2
  done
done
for host in ms1 ms2; do
  kill -TERM "$(cat "$work/watch-$host.pid")"
  wait "$(cat "$work/watch-$host.pid")" 2>/dev/null || true
  rm "$work/watch-$host.pid"
done

## keepalived #####################################################################################

# keepalived takes the address from here: nobody holds it, no takeover recorded.
ip netns exec "$ms1" "$bench" failback "$vip/24" eth0
ip netns exec "$ms2" "$bench" failback "$vip/24" eth0
rm -f "$work/takeover.json"

# Each console line with the time it was read (bash's clock, no fork per line).
stamp() { local line; while IFS= read -r line; do echo "$EPOCHREALTIME $line"; done; }
for host in ms1 ms2; do
  role=backup
  [ "$host" = ms1 ] && role=primary
  "$posta" --config "$site" keepalived config --role "$role" --fifo "$work/$host.fifo" \
    > "$work/$host.conf"
  ip netns exec "${!host}" "$ka" -n -l -P -f "$work/$host.conf" -p "$work/ka-$host.pid" \
    -r "$work/ka-$host-vrrp.pid" > >(stamp > "$work/ka-$host.log") 2>&1 &
  pids+=($!)
done
# When HOST's keepalived entered STATE at or after T (epoch seconds).
entered_at() { # HOST STATE T
  awk -v s="Entering $2 STATE" -v t="$3" 'index($0, s) && $1 >= t { print $1; exit }' \
    "$work/ka-$1.log"
}
is_master() { [ -n "$(entered_at "$1" MASTER "$2")" ]; }
is_backup() { [ -n "$(entered_at "$1" BACKUP "$2")" ]; }
wait_for "ms1's keepalived to be MASTER" is_master ms1 0
await_now ms1

for kind in $outages; do
  for n in $(seq "$cycles"); do
    await_now ms1
    await_bg ms2
    random_phase
    t_out=$(now)
    outage_start "$kind"
    await_fg
    t_ms2=$greeted
    wait_for "ms2's keepalived to be MASTER" is_master ms2 "$t_out"
    decided=$(entered_at ms2 MASTER "$t_out")
    record keepalived "$kind" takeover "$(ms_between "$decided" "$t_ms2")"
    record keepalived "$kind" outage "$(ms_between "$t_out" "$t_ms2")"
    sleep "$hold"
    await_bg ms1
    t_back=$(now)
    outage_end "$kind"
    await_fg
    t_ms1=$greeted
    wait_for "ms1's keepalived to be MASTER" is_master ms1 "$t_back"
    decided=$(entered_at ms1 MASTER "$t_back")
    record keepalived "$kind" failback "$(ms_between "$decided" "$t_ms1")"
    record keepalived "$kind" back "$(ms_between "$t_back" "$t_ms1")"
    # ms2 back to BACKUP before the next outage.
    wait_for "ms2's keepalived to be BACKUP" is_backup ms2 "$t_back"
    echo "keepalived $kind $n: takeover $(tail -1 "$work/fig.keepalived.$kind.takeover") ms," \
      "outage $(tail -1 "$work/fig.keepalived.$kind.outage") ms," \
      "failback $(tail -1 "$work/fig.keepalived.$kind.failback") ms" >&2
  done
done

## The table ######################################################################################

stats() { # FILE -> "median max" in ms
  sort -n "$1" | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.1f %.1f\n", m, v[NR] }'
}
echo "Failover seen from a client through $vip (client, ms1, ms2 in namespaces on one bridge;"
echo "probe interval 1 s, fall 2, rise 2, grace ${grace}s; keepalived advert_int 1;" \
  "$cycles cycles each)"
printf '| %-9s | %-55s | %10s | %10s | %10s | %10s | %9s |\n' outage measure \
  "posta med" "posta max" "ka med" "ka max" "posta/ka"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ----------- "$(printf -- '-%.0s' {1..57})" ------------ \
  ------------ ------------ ------------ -----------
worst_failback=0
for kind in $outages; do
  for measure in takeover outage failback back; do
    case $measure in
      takeover) label="takeover gap: grace end -> first greeting from ms2 (ms)" ;;
      outage) label="outage start -> first greeting from ms2 (ms)" ;;
      failback) label="failback gap: decision -> first greeting from ms1 (ms)" ;;
      back) label="ms1 back -> first greeting from ms1 (ms)" ;;
    esac
    read -r pm px < <(stats "$work/fig.posta.$kind.$measure")
    read -r km kx < <(stats "$work/fig.keepalived.$kind.$measure")
    # No ratio of a negative gap (no blackout at all): it would read as "faster" or "slower".
    ratio=$(awk -v p="$pm" -v k="$km" \
      'BEGIN { if (k > 0 && p >= 0) printf "%.2f", p / k; else print "-" }')
    printf '| %-9s | %-55s | %10s | %10s | %10s | %10s | %9s |\n' "$kind" "$label" \
      "$pm" "$px" "$km" "$kx" "$ratio"
    [ "$measure" = failback ] &&
      worst_failback=$(awk -v a="$worst_failback" -v b="$px" 'BEGIN { print (b > a ? b : a) }')
  done
done
awk -v w="$worst_failback" 'BEGIN {
  printf "target: posta failback gap < 1000 ms: worst %.1f ms, %s\n", w,
    (w < 1000 ? "met" : "NOT met")
}'
