#!/usr/bin/env bash
# Profiles the tunnel benchmark (scripts/bench.sh --profile DIR): builds
# unstripped release binaries into target/profile (the glibc build, so perf
# finds the symbols), records the whole machine with `perf record -a -e
# cpu-clock` while e2e/src/bin/pp-bench.rs runs, one perf.data file per
# phase (pp-bench signals perf between phases), and writes DIR/report.md:
# per phase the CPU share of each process, and the top symbols of our two
# ends (pp-forwarder; the threads named tokio-rt-worker, i.e. the adaptor
# daemon's worker and the benchmark client's) or OpenSSH's (sshd, ssh). About a minute after the
# build. Needs perf (Debian: linux-perf).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "$1" && cd "$1" && pwd)"
cd "$repo"
command -v perf >/dev/null || { echo "perf is missing: apt-get install -y linux-perf" >&2; exit 1; }
# PP_PROFILE_TARGET: another target directory for the unstripped build.
target="${PP_PROFILE_TARGET:-${CARGO_TARGET_DIR:-$repo/target}/profile}"
echo "building unstripped release binaries into $target..." >&2
CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR="$target" \
    cargo build -q --release --bins -p pp-forwarder -p pp-adaptor -p pp-testdoubles -p pp-e2e
rm -f "$out"/perf.data*
perf record -a -e cpu-clock -F 2000 --switch-output=signal -o "$out/perf.data" 2>"$out/perf.log" &
perf_pid=$!
bench=
cleanup() {
    [ -n "$bench" ] && kill -- -"$bench" 2>/dev/null || true
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
}
trap cleanup EXIT
sleep 1
# One round: the report expects six phase files, ours then OpenSSH's.
PP_BENCH_ROUNDS=1 PP_BENCH_PERF_PID=$perf_pid PP_E2E_FORWARDER="$target/release/pp-forwarder" \
    setsid "$target/release/pp-bench" >"$out/bench.txt" &
bench=$!
wait "$bench"
bench=
kill -INT "$perf_pid"
wait "$perf_pid" || true
cat "$out/bench.txt"

# head closes the pipe early; perf report's SIGPIPE is expected there.
set +o pipefail
phases=(ours-echo "ours-WN→PP" "ours-PP→WN" openssh-echo "openssh-WN→PP" "openssh-PP→WN")
mapfile -t files < <(ls "$out"/perf.data.2* | sort)
top() { grep -v '^#' | grep -v '^$' | head -"${TOP:-15}" | cut -c1-140; }
{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    for i in 0 1 2 3 4 5; do
        f=${files[$i]}
        echo
        echo "## ${phases[$i]}"
        echo
        echo "CPU share per process (whole machine, both CPUs = 100%):"
        echo '```'
        perf report -i "$f" --sort comm --stdio 2>/dev/null | top
        echo '```'
        if [ "$i" -lt 3 ]; then comms=(pp-forwarder tokio-rt-worker); else comms=(sshd ssh); fi
        for c in "${comms[@]}"; do
            echo
            echo "$c, share of its own samples:"
            echo '```'
            perf report -i "$f" --comm "$c" --percentage relative --sort dso,sym --stdio 2>/dev/null | top
            echo '```'
        done
    done
} >"$out/report.md"
echo "profile tables: $out/report.md" >&2
