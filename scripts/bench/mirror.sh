#!/usr/bin/env bash
# Times `posta mirror` keeping a warm copy of a whole site on mailserver2, against mbsync (one
# IMAP->IMAP channel per account, all in one run, as isync is used) and Dovecot's own
# `doveadm sync -1 -R ... imapc:` (run on mailserver2, pulling each account over IMAP) as a
# reference. Both servers are Dovecots with a master user `admin`; every tool logs in as
# `user*admin` or with SASL PLAIN's authorization identity, over TLS with a verified
# certificate.
#
# For each tool: fresh servers, each host on a file system of its own, and mailserver1 seeded
# (ACCOUNTS accounts x PER_ACCOUNT messages of SIZE bytes over 5 folders, nested, one non-ASCII
# name, some read and flagged), then the initial pass is timed, then a pass with nothing changed;
# then 1% of mailserver1's messages change (new mail, a flag, a move, an expunge per 100) and the
# incremental pass is timed; the change and its pass repeat ROUNDS times (default 3) and the median
# counts, since one sub-second pass on a busy machine is noise. After each pass mailserver2 must
# hold as many messages as mailserver1, or the run is marked failed. GNU time gives each client's
# peak RSS and what it wrote to disk (its file system outputs: posta's and mbsync's state;
# doveadm's also the mail it stores on mailserver2 itself).
#
# Most of a small pass is Dovecot starting processes: with its default login mode every
# connection forks a new imap-login, and each tool makes two connections per account.
# LOGIN=performance runs both Dovecots' login processes in Dovecot's documented
# high-performance mode (long-lived, one waiting per CPU), as a busy site runs them; the same
# servers serve every tool either way.
#
# The bench also times those sessions alone (sessions_alone: log in to both servers for every
# account, select each folder, nothing else) and prints what each tool's 1% pass takes beyond
# them.
#
# Defaults: 20 accounts x 500 x 10,000 bytes, PARALLEL=4 accounts at once (posta's default).
# DOVEADM=0 leaves Dovecot's reference out, MBSYNC=0 mbsync. POSTA is the binary. Needs root
# (it installs isync and Python and starts the servers).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-test-deps.sh >/dev/null
if ! command -v mbsync >/dev/null || ! command -v python3 >/dev/null; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q isync python3 >/dev/null
fi
cargo build --release --locked --bin posta --example bench_env >/dev/null 2>&1

POSTA=${POSTA:-target/release/posta}
ACCOUNTS=${ACCOUNTS:-20}
PER_ACCOUNT=${PER_ACCOUNT:-500}
SIZE=${SIZE:-10000}
MBSYNC=${MBSYNC:-1}
DOVEADM=${DOVEADM:-1}
ROUNDS=${ROUNDS:-3}
PARALLEL=${PARALLEL:-4}
LOGIN=${LOGIN:-security}
case $LOGIN in
  security) unset POSTA_DOVECOT_LOGIN ;;
  performance) export POSTA_DOVECOT_LOGIN=performance ;;
  *) echo "LOGIN must be security or performance, not $LOGIN" >&2; exit 2 ;;
esac

# shellcheck source=scripts/bench/env.sh
. scripts/bench/env.sh
users=()
for ((i = 0; i < ACCOUNTS; i++)); do users+=("$(printf 'user%02d' "$i")"); done

# timed CMD...: runs CMD under GNU time; elapsed seconds and peak RSS (KB) land in $work/time.
timed() {
  /usr/bin/time -f '%e %M %O' -o "$work/time" "$@" >>"$work/client.log" 2>&1
}

# ---- the tools ----------------------------------------------------------------------------------

# Each tool gets fresh servers, each host on a file system of its own (host_fs): mailserver1
# (the primary's Dovecot, DST_*, and everything else bench_env makes) and mailserver2 (the
# other Dovecot, SRC_*, and the tools' state). Reseeding for the next tool would otherwise
# unlink the last tool's 10,000 copies and mailserver1's messages just before it starts, and
# ext4 without a journal slows every file creation after that for a minute or more: the tool
# measured first would be measured on a quieter disk than the others.
servers_up() {
  work=$(mktemp -d)
  ms1_fs="" ms2_fs=""
  host_fs ms1_fs
  host_fs ms2_fs
  TMPDIR=$ms1_fs POSTA_BENCH_MS2_DIR=$ms2_fs bench_env_start --accounts "$ACCOUNTS"
  state=$ms2_fs/state
  mirror_site_file
}

# POSTA_ARGS: extra posta mirror flags.
run_posta() {
  # shellcheck disable=SC2086
  timed "$POSTA" --config "$work/site.toml" mirror --once --json --parallel "$PARALLEL" \
    ${POSTA_ARGS:-}
}

# One channel per account: far = mailserver1, near = mailserver2, pull only, folders created
# and removed, expunges propagated, arrival dates kept. In a subshell: its umask must not
# reach the servers started after it.
mbsyncrc() (
  local user
  umask 077
  for user in "${users[@]}"; do
    cat <<EOF
IMAPAccount ms1-$user
Host localhost
Port $DST_IMAPS_PORT
User $user*admin
PassCmd "cat $DST_ADMIN_PASSWORD_FILE"
SSLType IMAPS
CertificateFile $CA_FILE

IMAPStore ms1-$user
Account ms1-$user

IMAPAccount ms2-$user
Host localhost
Port $SRC_IMAPS_PORT
User $user*admin
PassCmd "cat $SRC_ADMIN_PASSWORD_FILE"
SSLType IMAPS
CertificateFile $CA_FILE

IMAPStore ms2-$user
Account ms2-$user

Channel $user
Far :ms1-$user:
Near :ms2-$user:
Patterns *
Create Near
Remove Near
Expunge Near
Sync Pull
CopyArrivalDate yes
SyncState $state/mbsync/$user/

EOF
  done
)
run_mbsync() {
  local user
  for user in "${users[@]}"; do mkdir -p "$state/mbsync/$user"; done
  [ -f "$work/mbsyncrc" ] || mbsyncrc >"$work/mbsyncrc"
  timed mbsync -q -c "$work/mbsyncrc" -a
}

# Dovecot's reference: on mailserver2, `doveadm sync -1 -R` pulls each account one way from
# mailserver1 through its imapc storage, logged in as user*admin. Accounts one after another.
# (`doveadm backup -R` refuses here: it would delete mailserver2's INBOX to recreate it.)
run_doveadm() {
  local conf
  conf="$(dirname "$SRC_DOVECOT_LOG")/dovecot.conf"
  cat >"$work/doveadm.sh" <<EOF
#!/bin/sh
set -e
for user in ${users[*]}; do
  doveadm -c "$conf" \\
    -o imapc_host=localhost -o imapc_port=$DST_IMAPS_PORT -o imapc_ssl=imaps \\
    -o imapc_ssl_verify=yes -o ssl_client_ca_file=$CA_FILE \\
    -o imapc_user=\$user -o imapc_master_user=admin \\
    -o imapc_password="\$(cat "$DST_ADMIN_PASSWORD_FILE")" \\
    sync -1 -R -u "\$user" imapc:
done
EOF
  chmod 700 "$work/doveadm.sh"
  timed "$work/doveadm.sh"
}

# The floor every tool that logs in per run stands on: for each account, one session to each
# server (TLS handshake, log in, LIST, select every folder, LOGOUT), PARALLEL (posta's default,
# 4) accounts at a time, by Python's imaplib, which does nothing else. Dovecot starts a login
# process and an IMAP process for each; on a small pass that is most of the time, and it is the
# same for every tool. Run on posta's servers after its passes; prints the median of 3 runs.
sessions_alone() {
  python3 - "$DST_IMAPS_PORT" "$SRC_IMAPS_PORT" "$DST_ADMIN_PASSWORD_FILE" \
    "$SRC_ADMIN_PASSWORD_FILE" "$CA_FILE" "$PARALLEL" "${users[@]}" <<'PY'
import imaplib, re, ssl, sys, time
from concurrent.futures import ThreadPoolExecutor

ms1, ms2, ms1_pw, ms2_pw, ca, parallel, *users = sys.argv[1:]
secret = {p: open(p).read().strip() for p in (ms1_pw, ms2_pw)}
tls = ssl.create_default_context(cafile=ca)

def session(port, password_file, user):
    imap = imaplib.IMAP4_SSL("localhost", int(port), ssl_context=tls)
    imap.login(user + "*admin", secret[password_file])
    for line in imap.list()[1]:
        flags, name = re.match(rb'\(([^)]*)\) "." (.*)', line).groups()
        if b"\\Noselect" not in flags:
            imap.select(name.decode(), readonly=True)
    imap.logout()

def account(user):
    session(ms1, ms1_pw, user)
    session(ms2, ms2_pw, user)

runs = []
for _ in range(3):
    started = time.monotonic()
    with ThreadPoolExecutor(int(parallel)) as pool:
        list(pool.map(account, users))
    runs.append(time.monotonic() - started)
print("%.2f" % sorted(runs)[1])
PY
}

# ---- measuring ----------------------------------------------------------------------------------

declare -A INITIAL UNCHANGED INCREMENTAL RSS INITIAL_KB INCREMENTAL_KB
# pass KEY RUN: one timed pass; sets PASS_S (seconds) and PASS_KB (written), or returns 1 when
# the tool failed or mailserver2 does not hold what mailserver1 holds.
pass() {
  local key=$1 run=$2 status=0 client_s rss_kb blocks ms1 ms2
  : >"$work/client.log"
  "$run" || status=$?
  if [ "$status" -ne 0 ]; then
    printf '  %-10s failed with exit status %s:\n' "$key" "$status"
    tail -n 5 "$work/client.log" | sed 's/^/      /'
    return 1
  fi
  read -r client_s rss_kb blocks <"$work/time"
  read -r ms1 ms2 <<<"$(ask mirror-count)"
  if [ "$ms1" != "$ms2" ]; then
    printf '  %-10s left mailserver2 with %s messages, mailserver1 has %s\n' "$key" "$ms2" "$ms1"
    return 1
  fi
  PASS_S=$client_s
  PASS_KB=$((blocks / 2))
  RSS[$key]=$(awk -v a="${RSS[$key]:-0}" -v k="$rss_kb" 'BEGIN { m = k / 1024; printf "%.1f", (m > a ? m : a) }')
}

median() { printf '%s\n' "$@" | sort -n | awk '{ t[NR] = $1 } END { print t[int((NR + 1) / 2)] }'; }

# measure KEY RUN: the tool's passes on fresh servers.
measure() {
  servers_up
  passes "$@"
  bench_env_stop
}

passes() {
  local key=$1 run=$2
  [ "$(ask mirror-seed "$PER_ACCOUNT" "$SIZE")" = ok ] || { echo "seeding failed" >&2; exit 1; }
  INITIAL[$key]=failed UNCHANGED[$key]=failed INCREMENTAL[$key]=failed RSS[$key]=0
  pass "$key" "$run" || return 0
  INITIAL[$key]=$PASS_S INITIAL_KB[$key]=$PASS_KB
  pass "$key" "$run" || return 0
  UNCHANGED[$key]=$PASS_S
  local times=() written=() r
  for ((r = 0; r < ROUNDS; r++)); do
    [ "$(ask mirror-change)" = ok ] || { echo "changing mailserver1 failed" >&2; exit 1; }
    pass "$key" "$run" || return 0
    times+=("$PASS_S")
    written+=("$PASS_KB")
  done
  INCREMENTAL[$key]=$(median "${times[@]}")
  INCREMENTAL_KB[$key]=$(median "${written[@]}")
  echo "  $key 1% change passes: ${times[*]} s (median ${INCREMENTAL[$key]})"
  printf '  %-10s initial %8.2f s   unchanged %6.2f s   1%% change %7.2f s   peak RSS %6s MB\n' \
    "$key" "${INITIAL[$key]}" "${UNCHANGED[$key]}" "${INCREMENTAL[$key]}" "${RSS[$key]}"
  echo "  $key wrote ${INITIAL_KB[$key]} KB in the initial pass, ${written[*]} KB in the 1% change" \
    "passes (median ${INCREMENTAL_KB[$key]})"
  if [ "$key" = posta ]; then
    SESSIONS=$(sessions_alone)
    echo "  sessions alone: $SESSIONS s"
  fi
}


total=$((ACCOUNTS * PER_ACCOUNT))
echo "posta: $POSTA ($("$POSTA" --version 2>/dev/null || echo 'version unknown'))"
echo "site: $ACCOUNTS accounts x $PER_ACCOUNT messages x $SIZE bytes ($total messages, 5 folders each)"
echo "Dovecot login processes: $LOGIN mode; 1% change: median of $ROUNDS rounds"
measure posta run_posta
[ "$MBSYNC" = 1 ] && measure mbsync run_mbsync
[ "$DOVEADM" = 1 ] && measure doveadm run_doveadm

echo
printf '%-10s %12s %10s %12s %14s %12s %16s\n' tool "initial s" "msg/s" "unchanged s" "1% change s" \
  "peak RSS MB" "1% written KB"
for key in posta mbsync doveadm; do
  [ -n "${INITIAL[$key]:-}" ] || continue
  rate=$(awk -v n="$total" -v t="${INITIAL[$key]}" 'BEGIN { if (t + 0 > 0) printf "%.1f", n / t; else printf "-" }')
  printf '%-10s %12s %10s %12s %14s %12s %16s\n' "$key" "${INITIAL[$key]}" "$rate" \
    "${UNCHANGED[$key]}" "${INCREMENTAL[$key]}" "${RSS[$key]}" "${INCREMENTAL_KB[$key]:--}"
done
for peer in mbsync doveadm; do
  [ -n "${INITIAL[$peer]:-}" ] || continue
  echo "posta vs $peer: initial $(ratio "${INITIAL[$peer]}" "${INITIAL[posta]}")x as fast," \
    "unchanged pass $(ratio "${UNCHANGED[$peer]}" "${UNCHANGED[posta]}")x," \
    "1% change pass $(ratio "${INCREMENTAL[$peer]}" "${INCREMENTAL[posta]}")x"
done
# beyond SECONDS: SECONDS less the sessions' floor, or "-".
beyond() {
  awk -v t="$1" -v s="${SESSIONS:-}" \
    'BEGIN { if (t + 0 > 0 && s + 0 > 0) printf "%.2f", t - s; else printf "-" }'
}
if [ -n "${SESSIONS:-}" ]; then
  echo
  echo "Sessions alone (one per account and server, $PARALLEL accounts at a time, log in, LIST," \
    "select every folder, LOGOUT; Python's imaplib): $SESSIONS s."
  # doveadm is left out: it runs on mailserver2 and opens no IMAP session there.
  if [ -n "${INITIAL[mbsync]:-}" ]; then
    echo "A 1% pass that only opened them would be $(ratio "${INCREMENTAL[mbsync]}" "$SESSIONS")x" \
      "mbsync's. Beyond them: posta $(beyond "${INCREMENTAL[posta]}") s, mbsync" \
      "$(beyond "${INCREMENTAL[mbsync]}") s:" \
      "$(ratio "$(beyond "${INCREMENTAL[mbsync]}")" "$(beyond "${INCREMENTAL[posta]}")")x"
    awk -v m="${INCREMENTAL[mbsync]}" -v s="$SESSIONS" 'BEGIN {
      printf "A 1%% pass at 5x the speed of mbsync would take %.2f s: the sessions alone", m / 5
      printf " take %.0f %% of that.\n", 100 * s * 5 / m
    }'
  fi
fi
