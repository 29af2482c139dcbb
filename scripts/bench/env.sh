# shellcheck shell=bash disable=SC2154  # $work: set by the caller
# Sourced by the benchmarks that run their servers with examples/bench_env.
# bench_env_start ARGS...: starts target/release/examples/bench_env ARGS in the background
# (its log in $work/bench_env.log), removes it and $work on exit, waits for its "ready" and
# sources the env file it writes ($work/env: ports, users, directories). ask REQUEST: one
# request to it, one line back.
bench_env_start() {
  coproc BENCH_ENV {
    exec target/release/examples/bench_env "$work/env" "$@" 2>"$work/bench_env.log"
  }
  env_pid=$BENCH_ENV_PID
  to_env=${BENCH_ENV[1]}
  from_env=${BENCH_ENV[0]}
  trap bench_env_stop EXIT
  local ready
  if ! read -r -t 120 ready <&"$from_env" || [ "$ready" != ready ]; then
    echo "bench_env did not start:" >&2
    cat "$work/bench_env.log" >&2
    exit 1
  fi
  # shellcheck disable=SC1091
  . "$work/env"
}

bench_env_stop() {
  if [ -n "${env_pid:-}" ]; then
    exec {to_env}>&-
    wait "$env_pid" 2>/dev/null || true
    env_pid=''
  fi
  rm -rf "$work"
  local dir
  for dir in "${HOST_FS[@]}"; do
    umount "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null || true
    rm -rf "$dir" "$dir.img"
  done
  HOST_FS=()
}

ask() {
  local reply
  echo "$*" >&"$to_env"
  if ! read -r -t 600 reply <&"$from_env"; then
    echo "bench_env did not answer '$*':" >&2
    cat "$work/bench_env.log" >&2
    exit 1
  fi
  echo "$reply"
}

# ratio A B: A / B to two places, or "-" when either is missing or zero.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }

# host_fs VAR: a file system of its own for one emulated host, its mount point in VAR: an ext4
# image without a journal (like this machine's disk) loop-mounted under /tmp, removed by
# bench_env_stop. Two hosts have two disks, and on one the deletions of either would slow the
# other's file creation: ext4 without a journal skips every inode deleted in the last minute or
# more when it allocates one (`recently_deleted`), reading the inode table to do so.
HOST_FS=()
host_fs() {
  local dir
  dir=$(mktemp -d /tmp/posta-host.XXXXXX)
  HOST_FS+=("$dir")
  trap bench_env_stop EXIT
  truncate -s 4G "$dir.img"
  mkfs.ext4 -q -F -O ^has_journal "$dir.img"
  mount -o loop "$dir.img" "$dir"
  chmod 755 "$dir"
  printf -v "$1" '%s' "$dir"
}

# site_head SERVICES: the start of $work/site.toml for the bench servers on loopback:
# mailserver1 (DST_*) with SERVICES (a TOML list's items), mailserver2 (SRC_*) over IMAPS, a
# VIP takeover that is never run, the bench CA.
site_head() {
  cat >"$work/site.toml" <<EOF
domain = "example.org"
[primary]
name = "localhost"
address = "127.0.0.1"
services = [$1]
[backup]
name = "localhost"
address = "127.0.0.2"
services = ["imaps:$SRC_IMAPS_PORT"]
[takeover]
mode = "vip"
state_file = "$work/takeover.json"
[vip]
address = "127.0.0.9/8"
interface = "lo"
[tls]
ca_file = "$CA_FILE"
EOF
}

# mirror_site_file: $work/site.toml for the mirror benches: both servers over IMAPS with their
# master users, the mirror's state under $state, one account per name in $users.
mirror_site_file() {
  site_head "\"imaps:$DST_IMAPS_PORT\""
  cat >>"$work/site.toml" <<EOF
[mirror]
state_dir = "$state/posta"
[migrate]
source = "server"
source_admin = { user = "admin", password_file = "$SRC_ADMIN_PASSWORD_FILE" }
dest_admin = { user = "admin", password_file = "$DST_ADMIN_PASSWORD_FILE" }
EOF
  for user in "${users[@]}"; do
    printf '[[migrate.accounts]]\nuser = "%s"\ndeliver_to = "%s@example.org"\n' "$user" "$user" \
      >>"$work/site.toml"
  done
}
