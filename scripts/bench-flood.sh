#!/usr/bin/env bash
# Pre-auth flood benchmark (e2e/src/bin/pp-bench-flood.rs), printed as a
# markdown table with goal and met/missed per row: silent, banner-then-stall,
# byte-dribble and reopen-on-close floods of 1,000 connections from
# 127.0.0.2-9 against the static release pp-forwarder (as the image ships
# it) on loopback; for each, the time until a Kubernetes-phase client with
# the WN key is admitted (goal <= 5 s; <= 1 s from a source in
# wn-source-networks), the forwarder's RSS and fds before / at the peak /
# after (goal: back within 1 MiB), and the log lines it wrote.
#
# Bounded: 12 runs, each gives up after 60 s; about 2-4 minutes in all
# after the release build (which takes several minutes the first time).
# Loopback only; every process it starts is killed when it ends.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
# The forwarder as the image ships it (static, musl when rustup has the
# target: see guest-image/host-setup.sh); musl's allocator gives freed
# memory back where glibc's keeps it, which the RSS rows show.
# shellcheck source=../guest-image/host-setup.sh
source "$repo/guest-image/host-setup.sh"
echo "building the static forwarder and the release harness..." >&2
export PP_E2E_FORWARDER
PP_E2E_FORWARDER="$(build_project_binaries "$repo")/pp-forwarder"
cargo build -q --release --bins -p pp-adaptor -p pp-testdoubles -p pp-e2e
# 1,000 flood sockets plus the harness; the forwarder inherits the limit.
ulimit -n 8192
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), forwarder: $(file -b "$PP_E2E_FORWARDER" | cut -d, -f1-2)"
timeout 900 "$target/release/pp-bench-flood"
