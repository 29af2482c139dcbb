#!/usr/bin/env bash
# Times one `posta check` probing SMTP + IMAP + POP3 with STARTTLS on loopback against the
# monitoring-plugins check_smtp + check_imap + check_pop run one after another on the same
# servers, as a Nagios scheduler or keepalived vrrp_script would run them. hyperfine does many
# runs; the medians and their ratio are printed.
#
# Note: check_imap and check_pop cannot do STARTTLS (monitoring-plugins#1400), so they probe in
# cleartext; a second pair uses the implicit-TLS ports (check_simap/check_spop) for TLS parity.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-test-deps.sh >/dev/null
cargo build --release --locked --bin posta --example demo >/dev/null 2>&1

runs=${RUNS:-50}
plugins=/usr/lib/nagios/plugins
work=$(mktemp -d)
ports=$work/ports
# The demo keeps the servers up until its stdin closes.
mkfifo "$work/hold"
target/release/examples/demo --serve "$ports" < "$work/hold" &
server=$!
exec 3>"$work/hold"
cleanup() { exec 3>&-; wait "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 100); do [ -s "$ports" ] && break; sleep 0.2; done
# shellcheck disable=SC1090
. "$ports"

posta="target/release/posta check --ca-file $CA_FILE \
smtp://127.0.0.1:$SMTP_PORT?starttls=require imap://127.0.0.1:$IMAP_PORT?starttls=require \
pop3://127.0.0.1:$POP3_PORT?starttls=require"
plugins_plain="$plugins/check_smtp -H 127.0.0.1 -p $SMTP_PORT -S && \
$plugins/check_imap -H 127.0.0.1 -p $IMAP_PORT && $plugins/check_pop -H 127.0.0.1 -p $POP3_PORT"
plugins_tls="$plugins/check_smtp -H 127.0.0.1 -p $SMTP_PORT -S && \
$plugins/check_simap -H 127.0.0.1 -p $IMAPS_PORT && $plugins/check_spop -H 127.0.0.1 -p $POP3S_PORT"

# Everything must pass before it is timed.
$posta >/dev/null
bash -c "$plugins_plain" >/dev/null
bash -c "$plugins_tls" >/dev/null

hyperfine --warmup 3 --runs "$runs" -N --export-json "$work/posta.json" "$posta" >/dev/null
hyperfine --warmup 3 --runs "$runs" --export-json "$work/plain.json" "bash -c '$plugins_plain'" >/dev/null
hyperfine --warmup 3 --runs "$runs" --export-json "$work/tls.json" "bash -c '$plugins_tls'" >/dev/null

python3 - "$work" "$runs" <<'PY'
import json, sys
work, runs = sys.argv[1], sys.argv[2]
def median(name):
    return json.load(open(f"{work}/{name}.json"))["results"][0]["median"] * 1000
p, plain, tls = median("posta"), median("plain"), median("tls")
print(f"runs each: {runs}")
print(f"posta check smtp+imap+pop3 (STARTTLS, verified, one call): {p:8.1f} ms median")
print(f"check_smtp -S + check_imap + check_pop (3 calls):          {plain:8.1f} ms median  ratio posta/plugins {p/plain:.2f}")
print(f"check_smtp -S + check_simap + check_spop (3 calls, TLS):    {tls:8.1f} ms median  ratio posta/plugins {p/tls:.2f}")
PY
