#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after the other, each for a bounded time, and
# reports per target the executions libFuzzer made and whether it crashed (issue 5).
# Not part of CI (.ci/run): it needs the nightly toolchain and minutes of CPU.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Each target starts from its tracked seeds (fuzz/seeds/TARGET) plus whatever earlier runs
# found (fuzz/corpus/TARGET, not tracked). Crash inputs land in fuzz/artifacts/TARGET; replay
# one with `cargo +nightly fuzz run -a TARGET fuzz/artifacts/TARGET/crash-...` in fuzz/.
# Exit status: 0 when no target crashed, 1 when one did, 2 on a usage or setup error.
set -euo pipefail

secs=${1:-60}
[[ $secs =~ ^[0-9]+$ && $secs -gt 0 ]] || { echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }
shift $(( $# > 0 ? 1 : 0 ))
cd "$(dirname "$0")/../fuzz"

if ! command -v cargo-fuzz >/dev/null; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked >&2 || exit 2
fi
rustup run nightly rustc --version >/dev/null 2>&1 \
    || { echo "the nightly toolchain is needed: rustup toolchain install nightly" >&2; exit 2; }

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || mapfile -t targets < <(cargo +nightly fuzz list)

# Longest input per target: a few SMTP transactions, a table file, a POP3 session.
max_len() {
    case $1 in
        tables) echo 8192 ;;
        *) echo 16384 ;;
    esac
}

# -a: debug assertions and overflow checks on, so arithmetic overflow is a crash too.
cargo +nightly fuzz build -a >&2 || exit 2

failed=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    log=$(mktemp)
    echo "== $t: ${secs}s" >&2
    set +e
    cargo +nightly fuzz run -a "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | tee "$log" | grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|==[0-9]+==|SUMMARY|Done [0-9]+ runs)' >&2
    status=${PIPESTATUS[0]}
    set -e
    after=$(find "artifacts/$t" -type f | wc -l)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [[ -n $runs ]] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "corpus/$t" -type f | wc -l)
    if [[ $status -eq 0 && $after -eq $before ]]; then
        verdict="ok"
    else
        verdict="CRASHED (exit $status, $((after - before)) new artifact(s) in fuzz/artifacts/$t)"
        failed=1
    fi
    summary+=("$(printf '%-14s %12s runs %8s exec/s  corpus %5s  %s' "$t" "${runs:-?}" "${rate:-?}" "$corpus" "$verdict")")
    rm -f "$log"
done

printf '%s\n' "${summary[@]}"
exit "$failed"
