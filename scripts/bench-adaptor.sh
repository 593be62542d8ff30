#!/usr/bin/env bash
# Adaptor benchmark (e2e/src/bin/pp-bench-adaptor.rs), printed as a markdown
# table: one `pp-adaptor serve` with 256 pods attached through its control
# API in waves of 32 (each pod: forwarder, CDH double, agent double on
# loopback), then 20 s idle in the Kubernetes phase: the adaptor's RSS
# (goal <= 100 MB) and CPU, the CPU spent attaching, and attach ->
# Kubernetes phase p50/p99/max.
#
# Release build by default; `--debug` measures the debug build instead
# (what the e2e tests run). Bounded: gives up after 10 minutes; about
# 1 minute after the build. Loopback only; every process it starts is
# killed when it ends.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
profile=release
build=(--release)
if [[ "${1:-}" == "--debug" ]]; then
    profile=debug
    build=()
fi
echo "building the $profile binaries..." >&2
cargo build -q "${build[@]}" --bins -p pp-adaptor -p pp-forwarder -p pp-testdoubles -p pp-e2e
# ~800 processes with piped output plus the adaptor's connections.
ulimit -n 16384
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $profile build"
timeout 600 "$target/$profile/pp-bench-adaptor"
