#!/usr/bin/env bash
# CI's check of the Debian package on this machine (as root): packages the binary the test
# build makes (a release build on 2 cores costs minutes; scripts/package.sh for users builds
# release; the pinned cargo-deb warns that the dev profile is unsupported), installs it, runs `posta --version`, `man -w posta-watch` and `systemd-analyze
# verify` on the installed units, checks the posta user and its directories, installs it
# again (an upgrade), purges it, and then compares the file system with what it was before:
# nothing may be left but the admin's /etc/posta. Cleans up after itself when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "package-test: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (dpkg -i, adduser)"
for tool in dpkg systemd-analyze man adduser; do
    command -v "$tool" >/dev/null || fail "$tool missing (scripts/install-test-deps.sh installs it)"
done
if dpkg-query -W -f='${Status}' posta 2>/dev/null | grep -q "install ok installed"; then
    fail "the posta package is installed already: this test purges it, remove it first"
fi
getent passwd posta >/dev/null && fail "a user posta exists that the package did not make: purge would remove it"
getent group posta >/dev/null && fail "a group posta exists that the package did not make: purge would remove it"

# Every unit in scripts/systemd/ is shipped; the maintainer scripts must stop and purge each.
for unit in scripts/systemd/*.service; do
    name=$(basename "$unit")
    for script in postinst prerm postrm; do
        grep -q "^UNITS=.*\b$name\b" "scripts/debian/$script" ||
            fail "$name is not in scripts/debian/$script's UNITS"
    done
done

work=$(mktemp -d /tmp/posta-package-test.XXXXXX)
admin_file=""
cleanup() {
    dpkg -P posta >/dev/null 2>&1 || true
    if [ -n "$admin_file" ]; then rm -f "$admin_file"; fi
    if [ "$etc_existed" = no ]; then rmdir /etc/posta 2>/dev/null || true; fi
    rm -rf "$work"
}
etc_existed=no
[ -d /etc/posta ] && etc_existed=yes
trap cleanup EXIT

# What the package may touch. dpkg's and apt's own records, logs, caches and the user
# database's backups (passwd-, group-, ...) change with any install and are left out.
snapshot() {
    local dirs=() d
    for d in /usr/bin /usr/share/man/man1 /usr/share/doc /usr/share/bash-completion \
             /usr/share/zsh /usr/share/fish /lib/systemd/system /etc /var/lib /var/spool; do
        if [ -d "$d" ]; then dirs+=("$d"); fi
    done
    find "${dirs[@]}" -xdev |
        grep -v -e '^/var/lib/dpkg' -e '^/var/lib/apt' -e '^/var/lib/ucf' \
                -e '^/etc/\(passwd\|group\|shadow\|gshadow\)-$' -e '^/etc/posta\(/\|$\)' \
                -e '^/var/cache' -e '^/var/log' |
        LC_ALL=C sort
}
snapshot > "$work/before"

echo "package-test: building the package from the test build's binary"
# `cargo test` builds target/debug/posta for the integration tests with the dev-dependencies'
# features (tokio's test-util); `cargo build` would build every dependency a second time
# without them. Building one small test target makes the same binary the test run reuses.
cargo test --locked --no-run --test docs
scripts/package.sh --no-build --profile dev --fast
shopt -s nullglob
debs=(target/debian/posta_*.deb)
[ ${#debs[@]} -eq 1 ] || fail "expected one target/debian/posta_*.deb, found ${#debs[@]}: ${debs[*]}"
deb=${debs[0]}

echo "package-test: dpkg -i $deb"
dpkg -i "$deb"
/usr/bin/posta --version
man -w posta-watch
units=(/lib/systemd/system/posta-*.service)
[ ${#units[@]} -eq "$(find scripts/systemd -maxdepth 1 -name '*.service' | wc -l)" ] ||
    fail "installed units ${units[*]} differ from scripts/systemd/"
for u in "${units[@]}"; do
    grep -q '^ExecStart=/usr/bin/posta ' "$u" || fail "$u does not run /usr/bin/posta"
    grep -q '^User=posta$' "$u" || fail "$u does not run as posta"
done
# verify prints its findings and exits 0 for some of them: any output is a failure.
out=$(systemd-analyze verify "${units[@]}" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
# The shipped drop-in, as the admin installs it for the mta and the watch (verify reads the
# drop-ins beside a unit file it is given).
for name in posta-mta posta-watch; do
    mkdir -p "$work/units/$name.service.d"
    cp "/lib/systemd/system/$name.service" "$work/units/"
    cp /usr/share/doc/posta/examples/maildir-owner.conf "$work/units/$name.service.d/"
done
out=$(systemd-analyze verify "$work"/units/*.service 2>&1) || fail "systemd-analyze verify with maildir-owner.conf: $out"
[ -z "$out" ] || fail "systemd-analyze verify with maildir-owner.conf: $out"
for f in /usr/share/man/man1/posta.1.gz /usr/share/bash-completion/completions/posta \
         /usr/share/zsh/vendor-completions/_posta /usr/share/fish/vendor_completions.d/posta.fish \
         /usr/share/doc/posta/examples/site.toml /usr/share/doc/posta/examples/routes.toml; do
    [ -f "$f" ] || fail "$f is not installed"
done
getent passwd posta >/dev/null || fail "no posta user after install"
[ "$(stat -c '%U:%G %a' /var/lib/posta)" = "posta:posta 750" ] || fail "/var/lib/posta: $(stat -c '%U:%G %a' /var/lib/posta)"
[ "$(stat -c '%U:%G %a' /var/spool/posta)" = "posta:posta 700" ] || fail "/var/spool/posta: $(stat -c '%U:%G %a' /var/spool/posta)"

# The admin's site file, and state the daemons wrote: the upgrade keeps both.
admin_file=/etc/posta/package-test-site.toml
echo "# the admin's own" > "$admin_file"
touch /var/lib/posta/watch.json
echo "package-test: dpkg -i again (upgrade)"
dpkg -i "$deb"
/usr/bin/posta --version
[ -f /var/lib/posta/watch.json ] || fail "the upgrade removed /var/lib/posta/watch.json"

echo "package-test: dpkg -P posta"
dpkg -P posta
! getent passwd posta >/dev/null || fail "the posta user is left after purge"
! getent group posta >/dev/null || fail "the posta group is left after purge"
[ -f "$admin_file" ] || fail "purge removed the admin's $admin_file"
snapshot > "$work/after"
diff -u "$work/before" "$work/after" || fail "purge left these behind (+) or removed them (-)"
echo "package-test: installed, upgraded and purged cleanly"
