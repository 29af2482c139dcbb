# shellcheck shell=bash disable=SC2154  # $hub, $client, $ms1, $ms2, $bench: set by the caller
# Sourced by the namespace benchmarks: the LAN tests/support/netns.rs builds (IPv4 only).
# lan_up SUBNET MACBYTE: namespaces $hub, $client, $ms1, $ms2 (set by the caller) on a bridge,
# as 10.77.SUBNET.10/.11/.12 with MACs 02:77:MACBYTE:00:00:10/11/12, then a vip_bench
# greeter on ms1 and ms2 (pids appended to the caller's $pids). lan_down removes them.
lan_up() {
  ip netns add "$hub"
  ip -n "$hub" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
  ip -n "$hub" link set br0 up
  local n=10 ns
  for ns in "$client" "$ms1" "$ms2"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$hub" link add "v$n" type veth peer name eth0 netns "$ns"
    ip -n "$hub" link set "v$n" master br0 up
    ip -n "$ns" link set eth0 address "02:77:$2:00:00:$n"
    ip -n "$ns" addr add "10.77.$1.$n/24" dev eth0
    ip -n "$ns" link set eth0 up
    n=$((n + 1))
  done
  local server
  for server in ms1 ms2; do
    ip netns exec "${!server}" "$bench" greet "$server" &
    pids+=($!)
  done
}

lan_down() {
  local ns
  for ns in "$client" "$ms1" "$ms2" "$hub"; do ip netns del "$ns" 2>/dev/null || true; done
}

# random_phase: sleeps a random part of a second, so that a failure does not always hit the
# same point of a 1 s probe or advert cycle.
random_phase() { sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", r / 32768 }')"; }
