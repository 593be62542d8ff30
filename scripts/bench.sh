#!/usr/bin/env bash
# Benchmarks, measured in one run on this machine, printed as tables:
#   1. the static release pp-forwarder's size (goal: at most 1.5 MB stripped)
#   2. the tunnel against OpenSSH: 64-byte echo p50/p99, throughput both
#      ways, connect to first tunnel byte, each with ours, OpenSSH's, the
#      ratio, the goal (issue 12) and met/missed; the forwarder's peak RSS
#      after the bulk transfers (e2e/src/bin/pp-bench.rs; Debian's sshd on a
#      loopback port as baseline). The forwarder measured is the static one
#      from 1., as the image ships it.
#   3. UDP tunnels: 64-byte round trip p50/p99 and datagrams per second
#      through a UDP tunnel against plain loopback (bench_udp at the end).
# Release builds take several minutes the first time; the run itself about
# a minute (the tunnel table alternates ours and OpenSSH over three rounds:
# PP_BENCH_ROUNDS; PP_BENCH_ADAPTOR_THREADS sets the adaptor's threads).
#
#   scripts/bench.sh --profile DIR   instead: an unstripped release build
#     (target/profile), `perf record -a` (cpu-clock) with one file per phase,
#     and DIR/report.md with the top symbols of each side in each phase
#     (docs/decisions/tunnel-speed.md shows such tables).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
if [ "${1:-}" = "--profile" ]; then
    exec "$repo/scripts/bench-profile.sh" "${2:?usage: bench.sh --profile DIR}"
fi
"$repo/scripts/install-deps.sh"
target="${CARGO_TARGET_DIR:-$repo/target}"

# The static binaries as the image carries them (one cargo run for all of
# them, musl when rustup has the target: see guest-image/host-setup.sh).
# shellcheck source=../guest-image/host-setup.sh
source "$repo/guest-image/host-setup.sh"
echo "building the static binaries (opt-level z, LTO, stripped)..." >&2
static="$(build_project_binaries "$repo")/pp-forwarder"
bytes=$(stat -c %s "$static")
echo
echo "| binary | bytes | MB | goal |"
echo "|---|---|---|---|"
printf '| pp-forwarder (static, stripped, %s) | %d | %.2f | <= 1.50 MB: %s |\n' "$(basename "$(dirname "$(dirname "$static")")")" "$bytes" "$(echo "$bytes / 1000000" | bc -l)" \
    "$([ "$bytes" -le 1500000 ] && echo met || echo missed)"
file "$static" | grep -q "static" && echo "(linked statically: $(file -b "$static" | cut -d, -f1-2))"

echo "building release binaries for the tunnel benchmark..." >&2
cargo build -q --release --bins -p pp-adaptor -p pp-testdoubles -p pp-e2e
export PP_E2E_FORWARDER="$static"
echo
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), forwarder: $(file -b "$static" | cut -d, -f1-2)"
echo
# pp-bench starts the forwarder, the doubles and sshd; a panic in a release
# build aborts without running their Drop guards, so run it in a process
# group of its own and end the whole group on every exit path.
setsid "$target/release/pp-bench" &
bench=$!
trap 'kill -- -"$bench" 2>/dev/null || true' EXIT
wait "$bench"

# UDP tunnels (issue 16): round trip p50/p99 and datagrams per second
# through a UDP tunnel against the plain loopback path
# (e2e/src/bin/pp-bench-udp.rs). A block of its own, run after the table
# above, in its own process group like pp-bench.
bench_udp() {
    echo
    setsid "$target/release/pp-bench-udp" &
    # Global, not local: the EXIT trap runs after this function returned.
    bench_udp_pid=$!
    trap 'kill -- -"$bench_udp_pid" 2>/dev/null || true' EXIT
    wait "$bench_udp_pid"
}
bench_udp
