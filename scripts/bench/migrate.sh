#!/usr/bin/env bash
# Times `posta migrate` moving alice's INBOX from mailserver2 (a Dovecot) to mailserver1 (Postfix
# delivering over LMTP into a Dovecot) against fetchmail doing the same job over IMAP and POP3,
# and against Postfix's own intake ceiling measured with smtp-source. examples/bench_env.rs runs
# the servers; before every run it reseeds the source INBOX and empties the destination, so each
# tool gets the same data. The clock starts with the client and stops when the destination
# Maildir holds all N messages (Postfix has delivered them over LMTP), not when the client exits.
# GNU time gives each client's peak RSS.
#
# Datasets: 1,000 x 20 KB and 200 x 500 KB; then posta's peak RSS at 1,000 vs 10,000 x 20 KB
# (flat when it streams). One run per cell, after an uncounted smtp-source run; smtp-source runs
# again after each dataset's tools, and posta is also compared with the ceiling interpolated
# between the two. Override with DATASETS / FLAT ("COUNTxBYTES ...") and POSTA (the binary).
# Needs root (it installs the Debian packages and starts the servers).
#
# SITE=1 times a whole site instead: ACCOUNTS (50) accounts x PER_ACCOUNT (200) messages of
# SIZE (20,000) bytes in each INBOX on mailserver2, a Dovecot with a master user, as an
# administrator migrates it: posta with one admin login per server and accounts = "all" (over
# IMAP, then straight from mailserver2's Maildirs), fetchmail with one poll entry per account
# in one .fetchmailrc (logging in as user*admin; it polls them one after another), and
# smtp-source's ceiling into the same Postfix. fetchmail runs over the first FETCHMAIL_ACCOUNTS
# (5) accounts only and its time is scaled to the site, which the output says.
#
# ROUNDS=N (site mode) runs the ceiling and both posta runs N times, one after another, then the
# ceiling once more, and reports each posta run's ratio to the ceiling of its own round and to
# the ceiling interpolated in time between the runs before and after it, with the medians: on
# a shared machine the ceiling itself drifts by tens of percent between minutes, and within a
# round. With TWO_HOSTS every run also counts mailserver1's CPU time per message (CPU 1's busy
# ticks in /proc/stat), compared the same way: how much more work posta makes mailserver1 do
# than Postfix's own intake. It drifts with the machine too (the same work takes more CPU time
# when the host is busy), which is why it is interpolated as well.
#
# FETCHMAIL=0 leaves fetchmail out (quicker while iterating on posta alone). POSTA_ARGS adds
# arguments to posta's runs (e.g. --no-verify, to see what reading the mail back costs).
#
# TWO_HOSTS=1 (the default in site mode) emulates two hosts on a machine of two or more CPUs:
# mailserver1 (Postfix and its Dovecot, every process they start) runs on CPU 1 only, and
# mailserver2's Dovecot, the clients (posta, fetchmail, smtp-source) and bench_env on CPU 0.
# The ceiling then is what mailserver1 can take on its own CPU, and a tool's ratio to it says
# how close it comes to that, as on a real site where reading mailserver2 costs mailserver2's
# CPU, not mailserver1's. TWO_HOSTS=0 lets every process share every CPU (the old figures).
#
# Why fetchmail is slow here: it writes SMTP a line at a time without TCP_NODELAY, so every
# message waits about 40 ms for Postfix's delayed ACK (1,000 x 20 KB: about 50 s, 20 msg/s).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-test-deps.sh >/dev/null
cargo build --release --locked --bin posta --example bench_env >/dev/null 2>&1

POSTA=${POSTA:-target/release/posta}
DATASETS=${DATASETS:-"1000x20000 200x500000"}
FLAT=${FLAT:-"1000x20000 10000x20000"}
# Delivery must make progress at least this often, or the run counts as failed.
STALL_SECONDS=${STALL_SECONDS:-60}

SITE=${SITE:-0}
TWO_HOSTS=${TWO_HOSTS:-$SITE}
ACCOUNTS=${ACCOUNTS:-50}
PER_ACCOUNT=${PER_ACCOUNT:-200}
SIZE=${SIZE:-20000}
FETCHMAIL_ACCOUNTS=${FETCHMAIL_ACCOUNTS:-5}
FETCHMAIL=${FETCHMAIL:-1}
ROUNDS=${ROUNDS:-1}
site_args=()
[ "$SITE" = 1 ] && site_args=(--accounts "$ACCOUNTS")

work=$(mktemp -d)
# shellcheck source=scripts/bench/env.sh
. scripts/bench/env.sh
# Two hosts have two disks (host_fs): with one, every message posta or fetchmail moves,
# unlinked on mailserver2, would slow mailserver1's file creation; in one profile that was 14 %
# of mailserver1's CPU during posta's runs and 1 % during smtp-source's first. So mailserver2
# (its Dovecot's directory, posta's state) gets a file system of its own.
ms2_data=$work
if [ "$TWO_HOSTS" = 1 ]; then
  host_fs ms2_data
  export POSTA_BENCH_MS2_DIR=$ms2_data
fi
bench_env_start "${site_args[@]}"

# pin_tree CPU PID: PID, its threads and every process below it on CPU; their future
# children inherit it.
pin_tree() {
  local child pid=$(($2)) # Postfix pads its pid file with spaces
  taskset -a -p -c "$1" "$pid" >/dev/null
  for child in $(pgrep -P "$pid"); do pin_tree "$1" "$child"; done
}
client_cpu=()
if [ "$TWO_HOSTS" = 1 ]; then
  if [ "$(nproc)" -lt 2 ]; then
    echo "TWO_HOSTS=1 needs two CPUs; this machine has $(nproc)" >&2
    exit 1
  fi
  pin_tree 1 "$(cat "$POSTFIX_DIR/spool/pid/master.pid")"
  pin_tree 1 "$(cat "$DST_DOVECOT_DIR/run/master.pid")"
  pin_tree 0 "$(cat "$SRC_DOVECOT_DIR/run/master.pid")"
  pin_tree 0 "$env_pid"
  client_cpu=(taskset -c 0)
fi

# ---- one measured run ---------------------------------------------------------------------------

# timed CMD...: runs CMD under GNU time; its elapsed seconds and peak RSS (KB) land in $work/time.
timed() {
  "${client_cpu[@]}" /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/client.log" 2>&1
}

# await_delivery N: waits until the destination INBOX holds N messages; fails on more than N
# (duplicates) or when the count stands still for STALL_SECONDS.
await_delivery() {
  local want=$1 last=-1 since=$SECONDS src dst
  while :; do
    read -r src dst <<<"$(ask count)"
    [ "$dst" -eq "$want" ] && return 0
    if [ "$dst" -gt "$want" ]; then
      echo "    destination holds $dst messages, $want expected (duplicates)" >&2
      return 1
    fi
    if [ "$dst" -ne "$last" ]; then
      last=$dst since=$SECONDS
    elif [ $((SECONDS - since)) -ge "$STALL_SECONDS" ]; then
      echo "    delivery stalled at $dst of $want (source still holds $src); postfix log:" >&2
      tail -n 5 "$POSTFIX_LOG" >&2
      return 1
    fi
    sleep 0.05
  done
}

# ms1_busy: the time CPU 1 has worked so far, in clock ticks (user, nice, system, irq and
# softirq; not idle, iowait or steal). In TWO_HOSTS mode that is mailserver1's work, which
# neighbours on a shared machine slow down but do not add to.
ms1_busy() { awk '$1 == "cpu1" { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
ticks=$(getconf CLK_TCK)

# imap_out FROM: the bytes mailserver1's Dovecot sent to IMAP clients in the sessions that
# ended after byte FROM of its log (its logout lines count them: out=N), in MB.
imap_out() {
  tail -c +"$(($1 + 1))" "$DST_DOVECOT_DIR/dovecot.log" |
    awk '/^.*imap\(/ && match($0, / out=[0-9]+/) { n += substr($0, RSTART + 5, RLENGTH - 5) }
      END { printf "%.1f", n / 1e6 }'
}

# measure KEY N SIZE RUN_FUNCTION [SEED]: reseeds SEED (default N) messages per account, runs
# the function, waits for N messages at the destination, records msgs/s, MB/s, the elapsed
# time, its middle (for interpolating the ceiling), the client's peak RSS, (TWO_HOSTS)
# mailserver1's CPU time per message and what mailserver1's IMAP sent (the read-back) under
# KEY, and prints one line.
declare -A RATE RSS ELAPSED CPU_MS MID READ_MB
measure() {
  local key=$1 n=$2 size=$3 run=$4 seed=${5:-$2} start end status client_s rss_kb total busy cpu=
  local log_at
  [ "$(ask reseed "$seed" "$size")" = ok ] || { echo "reseed failed" >&2; exit 1; }
  rm -rf "$ms2_data/state" "$ms2_data/fetchids"
  busy=$(ms1_busy)
  log_at=$(stat -c %s "$DST_DOVECOT_DIR/dovecot.log" 2>/dev/null || echo 0)
  start=$(date +%s.%N)
  status=0
  "$run" "$n" "$size" || status=$?
  if [ "$status" -ne 0 ]; then
    printf '  %-32s failed with exit status %s:\n' "$key" "$status"
    tail -n 5 "$work/client.log" | sed 's/^/      /'
    RATE[$key]=failed RSS[$key]=failed
    return 0
  fi
  if ! await_delivery "$n"; then
    printf '  %-32s failed: not all messages delivered\n' "$key"
    RATE[$key]=failed RSS[$key]=failed
    return 0
  fi
  end=$(date +%s.%N)
  CPU_MS[$key]=$(awk -v b="$busy" -v e="$(ms1_busy)" -v t="$ticks" -v n="$n" \
    'BEGIN { printf "%.2f", (e - b) * 1000 / t / n }')
  [ "$TWO_HOSTS" = 1 ] && cpu="  mailserver1 CPU ${CPU_MS[$key]} ms/msg"
  READ_MB[$key]=$(imap_out "$log_at")
  [ "${READ_MB[$key]}" = 0.0 ] || cpu+="  read from mailserver1 over IMAP ${READ_MB[$key]} MB"
  read -r client_s rss_kb < "$work/time"
  total=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')
  ELAPSED[$key]=$total
  MID[$key]=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", (s + e) / 2 }')
  RATE[$key]=$(awk -v n="$n" -v t="$total" 'BEGIN { printf "%.1f", n / t }')
  RSS[$key]=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')
  printf '  %-32s %8s msg/s %7s MB/s  delivered in %6.2f s (client exited after %6.2f s)  peak RSS %6s MB%s\n' \
    "$key" "${RATE[$key]}" "$(awk -v n="$n" -v s="$size" -v t="$total" 'BEGIN { printf "%.2f", n * s / 1e6 / t }')" \
    "$total" "$client_s" "${RSS[$key]}" "$cpu"
}

# interpolate A MA B MB M: the value at time M on the line through (MA, A) and (MB, B): a
# ceiling measured before and after a run, at the run's middle.
interpolate() {
  awk -v a="$1" -v ma="$2" -v b="$3" -v mb="$4" -v m="$5" \
    'BEGIN { if (mb == ma) printf "-"; else printf "%.4f", a + (b - a) * (m - ma) / (mb - ma) }'
}

# ---- the tools ----------------------------------------------------------------------------------

# A fresh journal per run: each run moves a freshly seeded mailbox.
posta_migrate() {
  rm -rf "$ms2_data/state"
  # shellcheck disable=SC2086 # POSTA_ARGS is word-split on purpose
  timed "$POSTA" migrate --from "$1" --to "smtp://127.0.0.1:$DST_SMTP_PORT?starttls=no" --rcpt "$RCPT" \
    --password-file "$PASSWORD_FILE" --ca-file "$CA_FILE" --state-dir "$ms2_data/state" ${POSTA_ARGS:-}
}
run_posta_imap() { posta_migrate "imaps://$MAIL_USER@127.0.0.1:$SRC_IMAPS_PORT"; }
run_posta_pop3() { posta_migrate "pop3s://$MAIL_USER@127.0.0.1:$SRC_POP3S_PORT"; }

# fetchmail PROTOCOL PORT: fetch everything over implicit TLS with a verified certificate (the
# leaf names localhost), delete it from the source, and forward it to the primary's Postfix.
fetchmail_run() {
  local rc=$work/fetchmailrc status
  (
    umask 077
    cat >"$rc" <<EOF
set no bouncemail
poll 127.0.0.1 with proto $1 service $2
  user "$MAIL_USER" there with password "$(cat "$PASSWORD_FILE")" is "$RCPT" here
  options ssl sslcertck sslcertfile "$CA_FILE" sslcommonname "localhost"
  smtphost "127.0.0.1/$DST_SMTP_PORT" smtpname "$RCPT"
  fetchall nokeep
EOF
  )
  status=0
  timed fetchmail -f "$rc" --nosyslog --idfile "$ms2_data/fetchids" --pidfile "$work/fetchmail.pid" ||
    status=$?
  rm -f "$rc"
  # 0: mail was retrieved. 1 would mean "no mail", anything else an error.
  return "$status"
}
run_fetchmail_imap() { fetchmail_run IMAP "$SRC_IMAPS_PORT"; }
run_fetchmail_pop3() { fetchmail_run POP3 "$SRC_POP3S_PORT"; }

# smtp-source N SIZE: N messages with a SIZE-byte body over 4 parallel sessions that each reuse
# their connection (-d), straight into the primary's Postfix: what Postfix + LMTP can take.
run_smtp_source() {
  timed /usr/sbin/smtp-source -d -s 4 -m "$1" -l "$2" -f bench@sender.example.net \
    -t "$RCPT" "127.0.0.1:$DST_SMTP_PORT"
}


# ---- site mode ----------------------------------------------------------------------------------

# site_file SOURCE: a site file for the bench servers on loopback with accounts = "all", one
# admin per server, and SOURCE ("server": mailserver2's IMAP; "maildir": its Maildirs on disk).
site_file() {
  site_head "\"smtp:$DST_SMTP_PORT?starttls=no\", \"imaps:$DST_IMAPS_PORT\""
  cat >>"$work/site.toml" <<EOF
[mta]
maildir = "$SRC_MAIL_ROOT/%u/Maildir"
[migrate]
source = "$1"
accounts = "all"
deliver_to = "%u@example.org"
source_admin = { user = "admin", password_file = "$SRC_ADMIN_PASSWORD_FILE" }
dest_admin = { user = "admin", password_file = "$DST_ADMIN_PASSWORD_FILE" }
EOF
}

# posta_site SOURCE: the whole site in one run.
posta_site() {
  rm -rf "$ms2_data/state"
  site_file "$1"
  # shellcheck disable=SC2086 # POSTA_ARGS is word-split on purpose
  timed "$POSTA" --config "$work/site.toml" migrate --json --state-dir "$ms2_data/state" ${POSTA_ARGS:-}
  # REPORT_DIR keeps posta's JSON reports (per-account figures) after the run.
  [ -z "${REPORT_DIR:-}" ] || cp "$work/client.log" "$REPORT_DIR/posta-$1.json"
}
run_posta_site_imap() { posta_site server; }
run_posta_site_maildir() { posta_site maildir; }

# One poll entry per account, as administrators write .fetchmailrc; fetchmail polls them one
# after another. Each logs in as user*admin (the master user; Dovecot's separator form).
run_fetchmail_site() {
  local rc=$work/fetchmailrc status i user
  (
    umask 077
    echo "set no bouncemail" >"$rc"
    for ((i = 0; i < FETCHMAIL_ACCOUNTS; i++)); do
      user=$(printf 'user%02d' "$i")
      cat >>"$rc" <<EOF
poll 127.0.0.1 with proto IMAP service $SRC_IMAPS_PORT
  user "$user*admin" there with password "$(cat "$SRC_ADMIN_PASSWORD_FILE")" is "$user@example.org" here
  options ssl sslcertck sslcertfile "$CA_FILE" sslcommonname "localhost"
  smtphost "127.0.0.1/$DST_SMTP_PORT" smtpname "$user@example.org"
  fetchall nokeep
EOF
    done
  )
  status=0
  timed fetchmail -f "$rc" --nosyslog --idfile "$ms2_data/fetchids" --pidfile "$work/fetchmail.pid" ||
    status=$?
  rm -f "$rc"
  return "$status"
}

# smtp-source's ceiling for the whole site: each account's messages to its own address, as
# posta delivers them (10,000 into one mailbox would measure Dovecot's growing index instead),
# 4 accounts at a time over one reused session each: 4 sessions, as in the one-mailbox runs.
run_smtp_source_site() {
  local per=$(($1 / ACCOUNTS))
  # shellcheck disable=SC2016 # expanded by the inner shell
  timed xargs -P 4 -I USER sh -c '/usr/sbin/smtp-source -d -s 1 -m "$1" -l "$2" \
    -f bench@sender.example.net -t "$3" "127.0.0.1:$4"' _ "$per" "$2" USER@example.org \
    "$DST_SMTP_PORT" < <(for ((i = 0; i < ACCOUNTS; i++)); do printf 'user%02d\n' "$i"; done)
}

if [ "$SITE" = 1 ]; then
  total=$((ACCOUNTS * PER_ACCOUNT))
  ((FETCHMAIL_ACCOUNTS <= ACCOUNTS)) || FETCHMAIL_ACCOUNTS=$ACCOUNTS
  fetch_total=$((FETCHMAIL_ACCOUNTS * PER_ACCOUNT))
  fkey="fetchmail ($FETCHMAIL_ACCOUNTS accounts)"
  echo "posta: $POSTA ($("$POSTA" --version 2>/dev/null || echo 'version unknown'))"
  echo "site: $ACCOUNTS accounts x $PER_ACCOUNT messages x $((SIZE / 1000)) KB ($total messages)"
  if [ "$TWO_HOSTS" = 1 ]; then
    echo "two hosts emulated: mailserver1 on CPU 1, mailserver2 and the clients on CPU 0"
  else
    echo "one host: every process on every CPU"
  fi
  posta_keys=("posta (IMAP, admin)" "posta (Maildir)")
  declare -A ROUND_RATIOS PEAK_RSS CEILING RUN
  # ceiling ROUND: smtp-source's run at the start of ROUND (ROUNDS + 1: after the last round),
  # kept as "rate cpu middle".
  ceiling() {
    measure smtp-source "$total" "$SIZE" run_smtp_source_site "$PER_ACCOUNT"
    CEILING[$1]="${RATE[smtp-source]} ${CPU_MS[smtp-source]} ${MID[smtp-source]}"
  }
  # A first run on fresh servers has no deletions behind it on mailserver1's disk; every later
  # one has the reseed's, which empties the INBOXes there: one uncounted run first.
  echo "warm-up (not counted)"
  measure smtp-source "$total" "$SIZE" run_smtp_source_site "$PER_ACCOUNT"
  for ((round = 1; round <= ROUNDS; round++)); do
    [ "$ROUNDS" = 1 ] || echo "round $round of $ROUNDS"
    ceiling "$round"
    measure "posta (IMAP, admin)" "$total" "$SIZE" run_posta_site_imap "$PER_ACCOUNT"
    measure "posta (Maildir)" "$total" "$SIZE" run_posta_site_maildir "$PER_ACCOUNT"
    for key in "${posta_keys[@]}"; do
      ROUND_RATIOS[$key]+="$(ratio "${RATE[$key]}" "${RATE[smtp-source]}") "
      RUN[$key/$round]="${RATE[$key]} ${CPU_MS[$key]} ${MID[$key]}"
      PEAK_RSS[$key]=$(awk -v a="${PEAK_RSS[$key]:-0}" -v b="${RSS[$key]}" \
        'BEGIN { print (b + 0 > a + 0 ? b : a) }')
    done
  done
  # The table compares the last round with its own ceiling, not with the one after it.
  last=("${RATE[smtp-source]}" "${ELAPSED[smtp-source]}" "${RSS[smtp-source]}")
  echo "after the last round"
  ceiling $((ROUNDS + 1))
  # The other accounts keep their seed: only the polled ones count at the destination.
  if [ "$FETCHMAIL" = 1 ]; then
    measure "$fkey" "$fetch_total" "$SIZE" run_fetchmail_site "$PER_ACCOUNT"
  else
    RATE[$fkey]=skipped RSS[$fkey]=skipped
  fi
  f=${RATE[$fkey]} s=${last[0]}
  echo
  [ "$FETCHMAIL" = 1 ] && echo "fetchmail was timed over $FETCHMAIL_ACCOUNTS of $ACCOUNTS" \
    "accounts ($fetch_total messages); its site time below is scaled from that rate."
  row() { printf '%-22s %10s %12s %14s %16s %13s\n' "$@"; }
  row tool "msg/s" "elapsed s" "posta/fetchm." "posta/smtp-src" "peak RSS MB"
  for key in "${posta_keys[@]}"; do
    p=${RATE[$key]}
    row "$key" "$p" "${ELAPSED[$key]}" "$(ratio "$p" "$f")" "$(ratio "$p" "$s")" "${PEAK_RSS[$key]}"
  done
  row "fetchmail (scaled)" "$f" \
    "$(awk -v n="$total" -v r="$f" 'BEGIN { if (r + 0 > 0) printf "%.0f", n / r; else printf "-" }')" \
    - - "${RSS[$fkey]}"
  row smtp-source "$s" "${last[1]}" - - "${last[2]}"
  median() { printf '%s\n' "$@" | sort -n | awk '{ r[NR] = $1 } END { print r[int((NR + 1) / 2)] }'; }
  if [ "$ROUNDS" != 1 ]; then
    echo
    echo "The rates above are the last round's; peak RSS is the highest of every round."
    for key in "${posta_keys[@]}"; do
      # shellcheck disable=SC2086 # one ratio per word
      echo "$key / smtp-source per round: ${ROUND_RATIOS[$key]}(median $(median ${ROUND_RATIOS[$key]}))"
    done
  fi
  # bracketed KEY FIELD: per round, posta's FIELD (1: rate, 2: CPU ms per message) against
  # the ceiling's, interpolated linearly in time between the ceiling runs before and after
  # it; for the CPU, ceiling over posta. A ceiling that drifts during a round then drifts for
  # both sides of the ratio.
  bracketed() {
    local r out=
    for ((r = 1; r <= ROUNDS; r++)); do
      local run before after i=$(($2 - 1)) c
      read -ra run <<<"${RUN[$1/$r]}"
      read -ra before <<<"${CEILING[$r]}"
      read -ra after <<<"${CEILING[$((r + 1))]}"
      c=$(interpolate "${before[i]}" "${before[2]}" "${after[i]}" "${after[2]}" "${run[2]}")
      # ratio prints "-" when a figure is missing or zero.
      if [ "$2" = 1 ]; then
        out+="$(ratio "${run[i]}" "$c") "
      else
        out+="$(ratio "$c" "${run[i]}") "
      fi
    done
    # shellcheck disable=SC2086 # one ratio per word
    echo "${out}(median $(median $out))"
  }
  echo
  echo "Each posta run against the ceiling interpolated between the smtp-source runs before and"
  echo "after it (the machine's speed drifts within a round too):"
  for key in "${posta_keys[@]}"; do
    echo "  $key, rate per round: $(bracketed "$key" 1)"
    [ "$TWO_HOSTS" = 1 ] &&
      echo "  $key, mailserver1 CPU per message, ceiling's over posta's: $(bracketed "$key" 2)"
  done
  exit 0
fi

# ---- the runs -----------------------------------------------------------------------------------

label() { awk -v n="${1%x*}" -v s="${1#*x}" 'BEGIN { printf "%d x %g KB", n, s / 1000 }'; }

echo "posta: $POSTA ($("$POSTA" --version 2>/dev/null || echo 'version unknown'))"
# As in site mode: the first run on fresh servers has no deletions behind it on mailserver1's
# disk, every later one has the reseed's: one uncounted run first.
first=${DATASETS%% *}
echo "warm-up (not counted)"
measure warm-up "${first%x*}" "${first#*x}" run_smtp_source
for set in $DATASETS; do
  n=${set%x*} size=${set#*x}
  echo "$(label "$set"):"
  measure "$set/smtp-source" "$n" "$size" run_smtp_source
  for proto in imap pop3; do
    measure "$set/$proto/posta" "$n" "$size" "run_posta_$proto"
    if [ "$FETCHMAIL" = 1 ]; then
      measure "$set/$proto/fetchmail" "$n" "$size" "run_fetchmail_$proto"
    else
      RATE[$set/$proto/fetchmail]=skipped
    fi
  done
  # The ceiling again: each posta run is also compared with it interpolated in time.
  measure "$set/smtp-source after" "$n" "$size" run_smtp_source
done
echo "posta peak RSS by mailbox size:"
for set in $FLAT; do
  n=${set%x*} size=${set#*x}
  for proto in imap pop3; do
    [ -n "${RSS[$set/$proto/posta]:-}" ] || measure "$set/$proto/posta" "$n" "$size" "run_posta_$proto"
  done
done

# ---- the tables ---------------------------------------------------------------------------------

echo
printf '%-16s %-5s %12s %16s %7s %18s %18s %14s\n' dataset proto "posta msg/s" "fetchmail msg/s" \
  ratio "smtp-source msg/s" "posta/smtp-source" "posta RSS MB"
for set in $DATASETS; do
  for proto in imap pop3; do
    p=${RATE[$set/$proto/posta]} f=${RATE[$set/$proto/fetchmail]} s=${RATE[$set/smtp-source]}
    printf '%-16s %-5s %12s %16s %7s %18s %18s %14s\n' "$(label "$set")" "${proto^^}" "$p" "$f" \
      "$(ratio "$p" "$f")" "$s" "$(ratio "$p" "$s")" "${RSS[$set/$proto/posta]}"
  done
done
echo
echo "posta against smtp-source's rate interpolated in time between its runs before and after:"
for set in $DATASETS; do
  for proto in imap pop3; do
    key=$set/$proto/posta
    c=$(interpolate "${RATE[$set/smtp-source]}" "${MID[$set/smtp-source]}" \
      "${RATE[$set/smtp-source after]}" "${MID[$set/smtp-source after]}" "${MID[$key]}")
    printf '  %s %s: ceiling %.1f msg/s, posta %s (%s)\n' "$(label "$set")" "${proto^^}" "$c" \
      "${RATE[$key]}" "$(ratio "${RATE[$key]}" "$c")"
  done
done
echo
read -ra flat <<<"$FLAT"
printf '%-6s %22s %22s %8s\n' proto "RSS MB $(label "${flat[0]}")" "RSS MB $(label "${flat[-1]}")" growth
for proto in imap pop3; do
  a=${RSS[${flat[0]}/$proto/posta]} b=${RSS[${flat[-1]}/$proto/posta]}
  printf '%-6s %22s %22s %8s\n' "${proto^^}" "$a" "$b" "$(ratio "$b" "$a")"
done
