#!/usr/bin/env bash
# Runs every fuzz target in fuzz/fuzz_targets for a fixed time and prints a
# table of executions per target.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   long run (default 120 s each);
#                                          judges the goal of >= 10 M
#                                          executions per target
#   scripts/fuzz.sh --ci [SECONDS]         short run for CI (default 5 s
#                                          each): fails only on a crash
#
# Each target starts from its seed corpus in fuzz/corpus/<target>/ (kept in
# git, written by fuzz/examples/write_corpus.rs) plus what earlier runs
# found in fuzz/target/corpus/<target>/ (not in git). Crashes are left in
# fuzz/artifacts/<target>/ and make the script fail. cargo-fuzz needs
# nightly features; RUSTC_BOOTSTRAP=1 lets the stable toolchain provide
# them. cargo-fuzz is installed when missing. Safe to run twice.
set -euo pipefail

goal=10000000
mode=long
seconds=120
if [[ "${1:-}" == "--ci" ]]; then
    mode=ci
    seconds=5
    shift
fi
seconds="${1:-$seconds}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [--ci] [SECONDS_PER_TARGET]  (a positive whole number)" >&2
    exit 2
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/fuzz/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (once)"
    cargo install cargo-fuzz --locked
fi

declared="$(cargo fuzz list)"
targets=()
for file in fuzz_targets/*.rs; do
    name="$(basename "$file" .rs)"
    if ! grep -qx "$name" <<<"$declared"; then
        echo "fuzz/$file has no [[bin]] entry named $name in fuzz/Cargo.toml" >&2
        exit 1
    fi
    if [[ ! -d "corpus/$name" ]]; then
        echo "fuzz/corpus/$name is missing: run cargo run --manifest-path fuzz/Cargo.toml --example write_corpus" >&2
        exit 1
    fi
    targets+=("$name")
done

build_start=$SECONDS
cargo fuzz build
build_seconds=$((SECONDS - build_start))

logs="$CARGO_TARGET_DIR/fuzz-logs"
mkdir -p "$logs"
failed=()
rows=()
for target in "${targets[@]}"; do
    echo "=== $target: ${seconds}s"
    work="$CARGO_TARGET_DIR/corpus/$target"
    mkdir -p "$work"
    # New inputs go to the first directory; the seeds stay untouched.
    status=ok
    if ! cargo fuzz run "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 \
        >"$logs/$target.log" 2>&1; then
        status=FAILED
        failed+=("$target")
        tail -n 30 "$logs/$target.log" >&2
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -n 1)"
    rows+=("$target ${execs:-0} $status")
done

echo
echo "fuzz run: ${seconds}s per target, build ${build_seconds}s, logs in $logs"
if [[ "$mode" == long ]]; then
    printf '| %-24s | %14s | %-13s | %-6s |\n' target executions "goal >= 10 M" result
    printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..26})" "$(printf -- '-%.0s' {1..16})" \
        "$(printf -- '-%.0s' {1..15})" "$(printf -- '-%.0s' {1..8})"
else
    printf '| %-24s | %14s | %-6s |\n' target executions result
    printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..26})" "$(printf -- '-%.0s' {1..16})" \
        "$(printf -- '-%.0s' {1..8})"
fi
for row in "${rows[@]}"; do
    read -r target execs status <<<"$row"
    if [[ "$mode" == long ]]; then
        met=no
        ((execs >= goal)) && met=yes
        printf '| %-24s | %14s | %-13s | %-6s |\n' "$target" "$execs" "$met" "$status"
    else
        printf '| %-24s | %14s | %-6s |\n' "$target" "$execs" "$status"
    fi
done

if ((${#failed[@]})); then
    echo "fuzz targets that found a failure: ${failed[*]} (see fuzz/artifacts/ and $logs)" >&2
    exit 1
fi
echo "all ${#targets[@]} fuzz targets ran ${seconds}s each without a failure"
