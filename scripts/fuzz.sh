#!/usr/bin/env bash
# Runs every fuzz target in fuzz/fuzz_targets for N seconds each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 30)
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain provide them. Install it once with `cargo install cargo-fuzz`.
# Crashes are left in fuzz/artifacts/<target>/ and make the script fail.
set -euo pipefail

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]  (a positive whole number, default 30)" >&2
    exit 2
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/fuzz/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: run \`cargo install cargo-fuzz\`" >&2
    exit 1
fi

declared="$(cargo fuzz list)"
targets=()
for file in fuzz_targets/*.rs; do
    name="$(basename "$file" .rs)"
    if ! grep -qx "$name" <<<"$declared"; then
        echo "fuzz/$file has no [[bin]] entry named $name in fuzz/Cargo.toml" >&2
        exit 1
    fi
    targets+=("$name")
done

cargo fuzz build
failed=()
for target in "${targets[@]}"; do
    echo "=== $target: ${seconds}s"
    mkdir -p "corpus/$target"
    if ! cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -print_final_stats=1; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz targets that found a failure: ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "all ${#targets[@]} fuzz targets ran ${seconds}s each without a failure"
