#!/usr/bin/env bash
# VIP takeover, timed from the client's side: a client, mailserver1 (ms1) and mailserver2 (ms2)
# in network namespaces on one bridge, each server with an SMTP greeter that names itself. The
# client has ms1's MAC cached; ms1 drops off the LAN (link down); then:
#
#   (a) the RFC 5227 probe alone, as posta runs it by default (3 probes 50 ms apart + 100 ms);
#   (b) posta add + announce, from the takeover command's start to the client's first SMTP
#       greeting from ms2 through the VIP (an impatient client retrying every ~10 ms);
#   (c) the same with the probe in front;
#   (d) keepalived 2.2.7 (Debian) in the same namespaces, ms1 MASTER priority 150, ms2 BACKUP
#       priority 100, advert_int 1: from ms1's link going down, and from ms1's keepalived being
#       stopped (SIGTERM: it sends a priority-0 advert), to the client's greeting from ms2;
#
# then runs scripts/bench/takeover-dns.sh (DNS takeover + verification vs nsupdate + dig),
# and prints medians next to keepalived's documented ~3.6 s host-death failover (3 × advert_int
# + skew (256-100)/256 s: docs/failover.md §1.1 and §3).
#
# Fair reading: keepalived's numbers include its failure detection; posta's start when the
# takeover command starts, because posta's detection and grace belong to its health checks and
# are deliberately long (minutes, docs/failover.md §3). The SIGTERM case is keepalived's nearest
# to "switch now". Target (issue 4): posta under 300 ms beyond the probe wait.
#
# RUNS (default 10) posta runs per case, KEEPALIVED_RUNS (default 5) per keepalived case; each
# keepalived run waits out its second GARP burst (5 s), so those take ~12 s each. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/lan.sh
. scripts/bench/lan.sh
scripts/install-test-deps.sh >/dev/null
cargo build --release --locked --bin posta --example vip_bench >/dev/null 2>&1

runs=${RUNS:-10}
ka_runs=${KEEPALIVED_RUNS:-5}
bench=$PWD/target/release/examples/vip_bench
posta=$PWD/target/release/posta
work=$(mktemp -d)
tag=posta-bench-$$
hub=$tag-hub client=$tag-client ms1=$tag-ms1 ms2=$tag-ms2
vip=10.77.250.100
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  lan_down
  rm -rf "$work"
}
trap cleanup EXIT

# The LAN, as tests/support/netns.rs builds it (IPv4 only here).
lan_up 250 fa

# The one place that runs posta's takeover, in ms2's namespace: the real command, with its
# SMTP check through the address and its state file, without the probe (measured apart) and
# without the second burst (it would keep the command alive for 5 s after clients moved).
run_posta_vip_takeover() {
  ip netns exec "$ms2" "$posta" takeover vip --address "$vip/24" --dev eth0 --probe-count 0 \
    --second-burst 0 --state-file "$work/state.json"
}

# The same with posta's default probe in front.
run_posta_vip_takeover_probed() {
  ip netns exec "$ms2" "$posta" takeover vip --address "$vip/24" --dev eth0 --second-burst 0 \
    --state-file "$work/state.json"
}

now_ns() { date +%s%N; }

# Starts a client waiting for SERVER's greeting through the VIP; sets $poller.
await_greeting_bg() {
  ip netns exec "$client" "$bench" await-greeting "$vip" "$1" "$2" > "$work/greeting" &
  poller=$!
  sleep 0.2
}

# Milliseconds from $t0 to the greeting the poller saw.
elapsed_ms() {
  wait "$poller"
  local t1
  t1=$(sed -n 's/^greeting_ns=//p' "$work/greeting")
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) / 1e6 }'
}

# ms1 holds the VIP, the client has just talked to it (its MAC cached), then ms1's link dies.
ms1_serves_then_dies() {
  ip netns exec "$ms2" "$bench" failback "$vip/24" eth0
  ip -n "$ms1" link set eth0 up
  ip netns exec "$ms1" "$bench" reclaim "$vip/24" eth0
  ip netns exec "$client" "$bench" await-greeting "$vip" ms1 5000 >/dev/null
  ip -n "$ms1" link set eth0 down
}

: > "$work/probe" ; : > "$work/held" ; : > "$work/posta" ; : > "$work/probed"
for _ in $(seq "$runs"); do
  # (a) the probe alone, nobody answering; and answered by a holder, for reference.
  ms1_serves_then_dies
  ip netns exec "$ms2" "$bench" probe "$vip/24" eth0 | sed -n 's/^probe_ms=//p' >> "$work/probe"
  ip -n "$ms1" link set eth0 up
  ip netns exec "$ms2" "$bench" probe "$vip/24" eth0 > "$work/out"
  grep -q '^outcome=held:02:77:fa:00:00:11$' "$work/out" || { cat "$work/out"; exit 1; }
  sed -n 's/^probe_ms=//p' "$work/out" >> "$work/held"

  # (b) add + announce.
  ms1_serves_then_dies
  await_greeting_bg ms2 10000
  t0=$(now_ns)
  run_posta_vip_takeover > "$work/out"
  elapsed_ms >> "$work/posta"

  # (c) probe + add + announce.
  ms1_serves_then_dies
  await_greeting_bg ms2 10000
  t0=$(now_ns)
  run_posta_vip_takeover_probed > "$work/out"
  elapsed_ms >> "$work/probed"
done

# (d) keepalived, if installed (install-test-deps.sh installs it).
ka=$(command -v keepalived || echo /usr/sbin/keepalived)
: > "$work/ka_down" ; : > "$work/ka_term"
keepalived_conf() { # NAME STATE PRIORITY
  cat > "$work/$1.conf" <<EOF
global_defs {
  router_id $1
}
vrrp_instance VI_77 {
  state $2
  interface eth0
  virtual_router_id 77
  priority $3
  advert_int 1
  virtual_ipaddress {
    $vip/24 dev eth0
  }
}
EOF
}
start_keepalived() { # NAME
  ip netns exec "${!1}" "$ka" --dont-fork --log-console --no-syslog --vrrp \
    --use-file "$work/$1.conf" --pid "$work/$1.pid" --vrrp_pid "$work/$1-vrrp.pid" \
    >> "$work/$1.log" 2>&1 &
  eval "ka_$1=$!"
  pids+=($!)
}
if [ -x "$ka" ]; then
  # Hand the address to keepalived: nobody holds it, ms1 is up.
  ip netns exec "$ms2" "$bench" failback "$vip/24" eth0
  ip netns exec "$ms1" "$bench" failback "$vip/24" eth0
  ip -n "$ms1" link set eth0 up
  keepalived_conf ms1 MASTER 150
  keepalived_conf ms2 BACKUP 100
  start_keepalived ms1
  start_keepalived ms2
  # Each step ends right after an advert from the new MASTER: without a random pause the
  # failure would always hit the same point of the 1 s advert cycle, and host-death detection
  # (3 adverts missed + skew after the *last* advert) would look constant instead of 2.6-3.6 s.
  for _ in $(seq "$ka_runs"); do
    # Host death: ms1's link goes down.
    ip netns exec "$client" "$bench" await-greeting "$vip" ms1 20000 >/dev/null
    await_greeting_bg ms2 20000
    random_phase
    t0=$(now_ns)
    ip -n "$ms1" link set eth0 down
    elapsed_ms >> "$work/ka_down"
    sleep 6 # ms2's second GARP burst, 5 s after it became MASTER
    ip -n "$ms1" link set eth0 up

    # Clean stop: SIGTERM to ms1's keepalived, which advertises priority 0 on its way out.
    ip netns exec "$client" "$bench" await-greeting "$vip" ms1 20000 >/dev/null
    await_greeting_bg ms2 20000
    random_phase
    t0=$(now_ns)
    # shellcheck disable=SC2154  # ka_ms1 is set by start_keepalived (eval)
    kill -TERM "$ka_ms1"
    elapsed_ms >> "$work/ka_term"
    wait "$ka_ms1" 2>/dev/null || true
    sleep 6
    start_keepalived ms1
  done
fi

stats() { # FILE -> "median min max" in ms, or "-" when empty
  sort -n "$1" | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "- - -"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.1f %.1f %.1f\n", m, v[1], v[NR] }'
}
row() { # LABEL FILE
  read -r med min max < <(stats "$2")
  printf '| %-68s | %9s | %9s | %9s | %4s |\n' "$1" "$med" "$min" "$max" "$(wc -l < "$2")"
}

echo "VIP takeover seen from the client ($vip, client/ms1/ms2 in network namespaces on one bridge)"
printf '| %-68s | %9s | %9s | %9s | %4s |\n' measure "median ms" "min ms" "max ms" runs
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..70})" ----------- ----------- ----------- ------
row "(a) posta RFC 5227 probe wait, nobody answers (3 x 50 ms + 100 ms)" "$work/probe"
row "    posta probe, ms1 answers (refuses, names ms1's MAC)" "$work/held"
row "(b) posta add + announce -> client's first greeting from ms2" "$work/posta"
row "(c) posta probe + add + announce -> greeting" "$work/probed"
row "(d) keepalived 2.2.7: ms1 link down -> greeting from ms2" "$work/ka_down"
row "    keepalived 2.2.7: ms1 keepalived SIGTERM -> greeting from ms2" "$work/ka_term"
printf '| %-68s | %9s | %9s | %9s | %4s |\n' \
  "keepalived documented: 3 x advert_int 1 s + skew (256-100)/256 s" 3609.4 - - -
read -r posta_med _ < <(stats "$work/posta")
awk -v m="$posta_med" 'BEGIN { printf "target: takeover under 300 ms beyond the probe wait: median %.1f ms, %s\n",
  m, (m < 300 ? "met" : "NOT met") }'
[ -x "$ka" ] || echo "keepalived is not installed: run scripts/install-test-deps.sh for row (d)"

echo
echo "DNS takeover with verification against a private BIND9:"
scripts/bench/takeover-dns.sh
