#!/usr/bin/env bash
# scripts/bench-boot.sh: boot-time benchmark under QEMU TCG (no KVM here).
#
# Measures, for each variant, the time from starting QEMU to the first SSH
# banner on the forwarded port (the forwarder, or OpenSSH for the baseline),
# and prints a table with the image size:
#   peer pod, kernel + initramfs, direct boot (SeaBIOS, -kernel/-initrd)
#   peer pod, UKI through OVMF (-kernel)
#   peer pod, the raw cloud disk through OVMF (the firmware boots the ESP's
#   \EFI\BOOT\BOOTX64.EFI, as a vTPM cloud does; no -kernel)
#   baseline: the same kernel with a stock Debian systemd userspace and
#   OpenSSH (mkosi profile "baseline"), direct boot
# The peer pod is the TEST image (its simulated TEE lets pp-provision pass
# here); the production image differs only in the binaries it carries.
#
# Usage: scripts/bench-boot.sh [--runs N] [--skip-build] [--timeout SECONDS]
#            [--test-image-dir DIR] [--no-baseline]
#   --runs N      boots per variant (default 3); the table shows the median
#                 and the range
#   --skip-build  use the images already in $PEERPOD_CACHE/bench
#   --test-image-dir DIR
#                 use the test image already built in DIR (e.g. tests-qemu's)
#                 instead of building one
#   --no-baseline leave out the baseline (no build, no row)
# A second table splits the peer pod's boots into phases, from the serial
# console's lines stamped on arrival with the host's clock: firmware (QEMU
# start to OVMF starting the disk's boot entry), loading (to the kernel's
# first instant: the firmware reading the UKI, systemd-stub, the kernel's
# decompressor; for direct boot and the UKI via -kernel, which print no boot
# entry line, all of QEMU start to kernel),
# kernel (to pp-init, whose first line carries the kernel's uptime),
# pp-init (to the forwarder listening) and the banner reaching the probe.
# TCG timings depend on the host's load: the load average is printed too.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-image/host-setup.sh
source "$repo/guest-image/host-setup.sh"

runs=3 skip_build=no timeout=180 test_dir= baseline=yes
while (($#)); do
    case "$1" in
    --runs) runs=${2:?}; shift 2 ;;
    --skip-build) skip_build=yes; shift ;;
    --test-image-dir) test_dir=${2:?}; shift 2 ;;
    --no-baseline) baseline=no; shift ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

bench_dir="$PEERPOD_CACHE/bench"
if [[ "$skip_build" == no ]]; then
    [[ -n "$test_dir" ]] ||
        "$repo/scripts/build-image.sh" --profile test --no-measure --output-dir "$bench_dir/test" >/dev/null
    [[ "$baseline" == no ]] ||
        "$repo/scripts/build-image.sh" --profile baseline --no-measure --output-dir "$bench_dir/baseline" >/dev/null
fi
test_dir=${test_dir:-$bench_dir/test}
command -v qemu-system-x86_64 >/dev/null || ensure_qemu_tools

initdata=$repo/init-data/example.toml
host_data=$(sha384sum "$initdata" | cut -c1-64)
scratch=$(mktemp -d)
# The running QEMU's process group, in a file: boot_seconds runs in a
# command substitution's subshell, and the EXIT trap must find it too.
stop_qemu() {
    local pgid
    pgid=$(cat "$scratch/qemu.pgid" 2>/dev/null) || return 0
    kill -TERM -- "-$pgid" 2>/dev/null || true
    wait "$pgid" 2>/dev/null || true
    rm -f "$scratch/qemu.pgid"
}
trap 'stop_qemu; rm -rf "$scratch"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# True when the port answers with an SSH banner.
ssh_banner() {
    local line=
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    # QEMU's user networking accepts on the host before the guest listens
    # and then just waits: a short read keeps the probe's resolution fine
    # (the loop below tries again at once).
    IFS= read -r -t 0.15 line <&3 || true
    exec 3<&- 3>&-
    [[ "$line" == SSH-* ]]
}

# boot_seconds PHASES-FILE RUN-QEMU-ARGS...: seconds from QEMU start to the
# SSH banner, or "timeout"; appends the boot's phases to PHASES-FILE.
boot_seconds() {
    local phases=$1; shift
    local port start now reader
    port=$((20000 + RANDOM % 30000))
    rm -f "$scratch/serial.fifo"
    mkfifo "$scratch/serial.fifo"
    start=$(date +%s.%N)
    # Each console line stamped with the host's clock as it arrives (a
    # built-in: no process per line).
    while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done \
        <"$scratch/serial.fifo" >"$scratch/serial.log" &
    reader=$!
    setsid "$repo/scripts/run-qemu.sh" --port "$port" --serial-log "$scratch/serial.fifo" "$@" \
        >"$scratch/qemu.log" 2>&1 </dev/null &
    qemu_pgid=$!
    echo "$qemu_pgid" >"$scratch/qemu.pgid"
    while :; do
        if ssh_banner "$port"; then
            now=$(date +%s.%N)
            break
        fi
        if ! kill -0 "$qemu_pgid" 2>/dev/null || (($(date +%s) - ${start%.*} > timeout)); then
            now=
            break
        fi
        sleep 0.05
    done
    stop_qemu
    # The reader ends at the console's EOF; if QEMU never opened it, it is
    # still waiting for a writer.
    for _ in {1..20}; do kill -0 "$reader" 2>/dev/null || break; sleep 0.1; done
    kill "$reader" 2>/dev/null || true
    wait "$reader" 2>/dev/null || true
    [[ -z "$now" ]] || boot_phases "$start" "$now" <"$scratch/serial.log" >>"$phases"
    if [[ -n "$now" ]]; then
        awk -v a="$start" -v b="$now" 'BEGIN { printf "%.1f\n", b - a }'
    else
        echo timeout
    fi
}

# boot_phases START BANNER < STAMPED-CONSOLE: one line "firmware loading
# kernel pp-init banner" in seconds ("-" for no firmware phase: direct boot);
# nothing when the console shows no pp-init (the baseline).
boot_phases() {
    awk -v s="$1" -v b="$2" '
        { t = $1 - s }
        bds == "" && /BdsDxe: starting/ { bds = t }
        init == "" && match($0, /pp-init: \[ *[0-9.]+\] pp-init [^ ]+ starting/) {
            k = substr($0, RSTART, RLENGTH); sub(/^pp-init: \[ */, "", k); sub(/\].*/, "", k)
            init = t; kernel = t - k
        }
        listen == "" && /listening for SSH/ { listen = t }
        END {
            if (init == "" || listen == "") exit
            printf "%s %.2f %.2f %.2f %.2f\n", (bds == "" ? "-" : sprintf("%.2f", bds)),
                kernel - (bds == "" ? 0 : bds), init - kernel, listen - init, (b - s) - listen
        }'
}

# summary T1 T2 ...: "median (min–max)" of the numeric values.
summary() {
    printf '%s\n' "$@" | grep -v timeout | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "no SSH banner"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.1f s (%.1f-%.1f, %d runs)\n", m, v[1], v[NR], NR
        }'
}

mib() { awk -v b="$(cat "$@" | wc -c)" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# median_column N < PHASES: the median of column N ("-" if it has none).
median_column() {
    awk -v n="$1" '$n != "-" { print $n }' | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "-"; exit }
            printf "%.1f s\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

declare -a rows=() phase_rows=()
bench_variant() {
    local label=$1 size=$2; shift 2
    local times=() i phases column cells=()
    phases=$scratch/phases.$((${#rows[@]}))
    : >"$phases"
    for ((i = 1; i <= runs; i++)); do
        times+=("$(boot_seconds "$phases" "$@")")
        log "$label run $i: ${times[-1]} s"
    done
    rows+=("$(printf '| %-44s | %-22s | %-28s |' "$label" "$size" "$(summary "${times[@]}")")")
    [[ -s "$phases" ]] || return 0
    for column in 1 2 3 4 5; do cells+=("$(median_column "$column" <"$phases")"); done
    phase_rows+=("$(printf '| %-44s | %-8s | %-8s | %-8s | %-8s | %-8s |' "$label" "${cells[@]}")")
}

test_args=(--profile test --image-dir "$test_dir" --initdata "$initdata")
bench_variant "peer pod: kernel + initramfs, direct boot" \
    "$(mib "$test_dir/peerpod-test.vmlinuz" "$test_dir/peerpod-test.initrd")" \
    "${test_args[@]}" --append "pp.test.host_data=$host_data"
bench_variant "peer pod: UKI via OVMF (-kernel)" \
    "$(mib "$test_dir/peerpod-test.efi")" \
    "${test_args[@]}" --uki --append "pp.test.host_data=$host_data"
# The disk's size is what the GCP tar.gz carries (the raw disk is sparse).
bench_variant "peer pod: raw disk via OVMF (no -kernel)" \
    "$(mib "$test_dir/peerpod-test.gcp.tar.gz") (tar.gz)" \
    "${test_args[@]}" --disk --append "pp.test.host_data=$host_data"
[[ "$baseline" == no ]] ||
    bench_variant "baseline: stock Debian systemd + OpenSSH" \
        "$(mib "$bench_dir/baseline/peerpod-baseline.vmlinuz" "$bench_dir/baseline/peerpod-baseline.initrd")" \
        --profile baseline --image-dir "$bench_dir/baseline" --no-config-drive --guest-port 22

echo
echo "Boot to SSH banner under QEMU TCG ($(nproc) host CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '| %-44s | %-22s | %-28s |\n' "variant" "image size" "QEMU start -> SSH banner"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..24})" "$(printf -- '-%.0s' {1..30})"
printf '%s\n' "${rows[@]}"
echo
echo "Where the time goes (medians; see the header of this script for the phases):"
printf '| %-44s | %-8s | %-8s | %-8s | %-8s | %-8s |\n' variant firmware loading kernel pp-init banner
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" ---------- ---------- ---------- ---------- ----------
printf '%s\n' "${phase_rows[@]}"
