#!/usr/bin/env bash
# Installs what posta's tests need from Debian packages: Postfix, Dovecot (imapd, pop3d, lmtpd),
# BIND9 (with bind9-utils: named-checkzone), swaks (+ Net::SSLeay, without which `swaks --tls` exits "TLS not available"), fetchmail,
# monitoring-plugins, hyperfine, GNU time and keepalived (for the benchmarks), openssl, iproute2,
# arping, shellcheck (CI lints the scripts with it) and prometheus (for promtool: CI checks and
# unit-tests the shipped alert rules with it; its server is never started), and for the Debian
# package's check (scripts/package-test.sh) man-db, binutils (cargo-deb strips with it),
# systemd (systemd-analyze) and cargo-deb itself, from crates.io at a pinned version, and
# cargo-nextest (the test runner scripts/test.sh uses), from crates.io.
# Also creates the posta-vmail system user/group that owns test Maildirs (Dovecot refuses uid 0 for
# mail). Safe to repeat: packages and the user already present are left alone. Never starts the
# system-wide daemons.
set -euo pipefail

# The Maildir owner for private Dovecot/Postfix instances in tests/support. Runs before the
# package check so a machine that already has every package still gets the user.
ensure_vmail() {
  getent passwd posta-vmail >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: user posta-vmail is missing; run this script as root" >&2
    exit 1
  fi
  getent group posta-vmail >/dev/null || groupadd --system posta-vmail
  useradd --system --gid posta-vmail --no-create-home --home-dir /nonexistent \
          --shell /usr/sbin/nologin posta-vmail
  echo "install-test-deps: created system user posta-vmail"
}
ensure_vmail

# cargo-deb builds the package (scripts/package.sh). Pinned: a newer release may need a newer
# Rust, or change what it packages. Installed before the Debian packages so a machine that has
# them all still gets it; skipped when this version is there.
CARGO_DEB_VERSION=3.8.0
ensure_cargo_deb() {
  if cargo deb --version 2>/dev/null | grep -qw "$CARGO_DEB_VERSION"; then return 0; fi
  echo "install-test-deps: installing cargo-deb $CARGO_DEB_VERSION (cargo install)"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
}
ensure_cargo_deb

# cargo-nextest runs the tests (scripts/test.sh; .config/nextest.toml). Not pinned: the
# config only uses settings nextest has had for years.
ensure_cargo_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then return 0; fi
  echo "install-test-deps: installing cargo-nextest (cargo install)"
  cargo install cargo-nextest --locked --quiet
}
ensure_cargo_nextest

need=()
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || need+=("$1"); }
for p in postfix dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd bind9 bind9-utils bind9-dnsutils swaks fetchmail \
         libnet-ssleay-perl monitoring-plugins-basic monitoring-plugins-standard openssl iproute2 iputils-arping \
         hyperfine time keepalived ca-certificates shellcheck prometheus \
         man-db binutils systemd adduser; do
  want "$p"
done

if [ ${#need[@]} -eq 0 ]; then
  echo "install-test-deps: everything is installed"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: missing ${need[*]}; run this script as root" >&2
  exit 1
fi

# Package postinst scripts try to start system-wide daemons through invoke-rc.d; a policy-rc.d
# that exits 101 stops them. Create it only if missing, and remove only what we created.
# POSTA_POLICY_RC_D moves it for tests/install.rs, which runs this script with stub packaging
# tools and must not touch the machine's own.
policy=${POSTA_POLICY_RC_D:-/usr/sbin/policy-rc.d}
created_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=yes
fi
# An `if`, not `[ ] &&`: under set -e a false test as the last command of an EXIT trap
# becomes the script's exit status, failing an install that succeeded.
cleanup() { if [ "$created_policy" = yes ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

# "No configuration": no /etc/postfix/main.cf, which is what private instances want.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: installing ${need[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "install-test-deps: done"
