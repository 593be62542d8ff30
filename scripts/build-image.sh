#!/usr/bin/env bash
# scripts/build-image.sh: builds the peer-pod guest image with mkosi.
#
# Usage:
#   scripts/build-image.sh [--profile test|production] [--output-dir DIR]
#       [--guest-components DIR] [--binaries DIR] [--no-cache] [--no-measure]
#       [--no-disk] [--test-only-qemu-harness]
#
#   --profile           test (default): the project's CDH and kata-agent test
#                       doubles and a test hook; production: the user's
#                       guest-components and kata-agent (--guest-components);
#                       baseline: stock Debian systemd + OpenSSH with the same
#                       kernel, only for scripts/bench-boot.sh.
#   --guest-components  production only: a directory holding attestation-agent,
#                       confidential-data-hub, api-server-rest and kata-agent
#                       (static or built for Debian bookworm, x86_64).
#   --binaries          a directory that already holds this project's static
#                       binaries (pp-init, pp-forwarder, pp-provision, and for
#                       the test profile cdh-double and agent-echo). Default:
#                       build them with cargo (static, for musl; see
#                       guest-image/host-setup.sh) into
#                       $CARGO_TARGET_DIR (default: target/ in the repository),
#                       together with pp-adaptor (one cargo run, one feature
#                       set, whichever script builds them).
#   --output-dir        default: build/image/PROFILE in the repository.
#   --no-cache          build from scratch (no incremental cache; the package
#                       cache is still used): what check-reproducible.sh does.
#   --no-measure        do not call pp-measure even when it is available.
#   --no-disk           do not write the cloud disk images (tests that never
#                       boot them: about 10 s less per build).
#   --test-only-qemu-harness
#                       TESTS ONLY (tests-qemu): the production profile with
#                       the test profile's simulated-TEE provisioning
#                       (guest-image/tree-test's 30-provision.toml and
#                       pp-sim-tee; QEMU TCG has no TEE) and its network
#                       service (20-network.toml and pp-test-network: a
#                       fixed address on tests-qemu's tap, which has no DHCP
#                       server) in place of the real ones. The other service
#                       files stay the production ones. Such an image binds
#                       init-data to nothing: never deploy it.
#   --allow-missing     development only: leave out binaries that do not exist
#                       yet, with a warning (their services fail at boot, and
#                       a pod without pp-provision or pp-forwarder powers off).
#
# Output: DIR/peerpod[-test].{vmlinuz,initrd,efi,cmdline}; for the test and
# production profiles, unless --no-disk, also the cloud disk images
# (guest-image/make-disk.sh: a GPT disk with the UKI as the ESP's
# \EFI\BOOT\BOOTX64.EFI) as DIR/peerpod[-test].disk.raw (raw), .vhd (Azure,
# fixed VHD) and .gcp.tar.gz (GCP); DIR/SHA256SUMS of all of them; and
# (when pp-measure exists) reference values in DIR/measurements/, of which
# the ones vTPM clouds check are printed too (the UKI's Authenticode
# SHA-256, what the firmware measures into PCR 4, and PCR 11). The last
# lines printed are the output paths with their SHA-256.
#
# Needs root (mkosi, apt). Installs mkosi 24.3 from bookworm-backports and the
# other tools on first use. Apt sources come from this machine's configured
# Debian mirror and are written outside the repository ($PEERPOD_CACHE,
# default /var/cache/peerpod-image), which also holds the package cache.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-image/host-setup.sh
source "$repo/guest-image/host-setup.sh"

profile=test
output_dir=
guest_components=
binaries=
incremental=yes
measure=yes
disk=yes
allow_missing=no
qemu_harness=no
while (($#)); do
    case "$1" in
    --profile) profile=${2:?--profile needs test or production}; shift 2 ;;
    --output-dir) output_dir=${2:?--output-dir needs a directory}; shift 2 ;;
    --guest-components) guest_components=${2:?--guest-components needs a directory}; shift 2 ;;
    --binaries) binaries=${2:?--binaries needs a directory}; shift 2 ;;
    --no-cache) incremental=no; shift ;;
    --no-measure) measure=no; shift ;;
    --no-disk) disk=no; shift ;;
    --allow-missing) allow_missing=yes; shift ;;
    --test-only-qemu-harness) qemu_harness=yes; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

case "$profile" in
test) image_id=peerpod-test; project_bins=(pp-init pp-forwarder pp-provision cdh-double agent-echo) ;;
production) image_id=peerpod; project_bins=(pp-init pp-forwarder pp-provision) ;;
baseline) image_id=peerpod-baseline; project_bins=() ;;
*) die "--profile must be 'test', 'production' or 'baseline', not '$profile'" ;;
esac
guest_components_bins=(attestation-agent confidential-data-hub api-server-rest kata-agent)
if [[ "$profile" == production ]]; then
    [[ -n "$guest_components" ]] || die "the production profile needs --guest-components DIR holding: ${guest_components_bins[*]}"
elif [[ -n "$guest_components" ]]; then
    die "--guest-components is for the production profile; the test profile carries the project's test doubles"
fi
[[ "$qemu_harness" == no || "$profile" == production ]] || die "--test-only-qemu-harness is for the production profile (the test profile has it already)"
[[ $EUID -eq 0 ]] || die "run as root (mkosi needs it to build the image)"
output_dir=${output_dir:-$repo/build/image/$profile}

# Copies NAME from DIR into the staging tree's /usr/local/bin. The image has
# glibc and little else: the binaries should be static.
stage_binary() {
    local dir=$1 name=$2 stage=$3
    if [[ ! -f "$dir/$name" || ! -x "$dir/$name" ]]; then
        [[ "$allow_missing" == yes ]] || die "$dir/$name is missing or not executable"
        log "WARNING: $dir/$name is missing: the image will not carry it (--allow-missing)"
        return 0
    fi
    install -m 0755 "$dir/$name" "$stage/usr/local/bin/$name"
}

ensure_build_tools
if ((${#project_bins[@]} == 0)); then
    binaries=/nonexistent
elif [[ -z "$binaries" ]]; then
    if [[ "$allow_missing" == yes ]]; then
        binaries=$(build_project_binaries "$repo") || binaries=${CARGO_TARGET_DIR:-$repo/target}/$(static_target)/release
    else
        binaries=$(build_project_binaries "$repo")
    fi
fi

stage="$PEERPOD_CACHE/stage/$profile"
rm -rf "$stage"
mkdir -p "$stage/usr/local/bin"
for name in "${project_bins[@]}"; do stage_binary "$binaries" "$name" "$stage"; done
if [[ "$profile" == production ]]; then
    for name in "${guest_components_bins[@]}"; do stage_binary "$guest_components" "$name" "$stage"; done
fi
if [[ "$qemu_harness" == yes ]]; then
    log "WARNING: --test-only-qemu-harness: this image provisions against a SIMULATED TEE; for tests only, never deploy it"
    for file in etc/pp-init.d/20-network.toml etc/pp-init.d/30-provision.toml \
        usr/local/libexec/pp-test-network usr/local/libexec/pp-sim-tee; do
        install -D -m "$([[ "$file" == usr/* ]] && echo 0755 || echo 0644)" \
            "$repo/guest-image/tree-test/$file" "$stage/$file"
    done
fi

package_manager_tree=$(write_package_manager_tree)
mkdir -p "$output_dir" "$PEERPOD_CACHE/packages" "$PEERPOD_CACHE/incremental"
workspace=$(mktemp -d "$PEERPOD_CACHE/workspace.XXXXXX")
trap 'rm -rf "$workspace"' EXIT

log "building the $profile image into $output_dir"
started=$SECONDS
(
    cd "$repo"
    mkosi \
        --profile "$profile" \
        --mirror "$(debian_mirror_uri)" \
        --package-manager-tree "$package_manager_tree" \
        --extra-tree "$stage" \
        --output-dir "$output_dir" \
        --cache-dir "$PEERPOD_CACHE/incremental" \
        --package-cache-dir "$PEERPOD_CACHE/packages" \
        --workspace-dir "$workspace" \
        --incremental "$incremental" \
        --force \
        build >&2
)
log "mkosi took $((SECONDS - started)) s"

# The kernel command line of direct boot is the one inside the UKI.
objcopy -O binary --only-section=.cmdline "$output_dir/$image_id.efi" "$output_dir/$image_id.cmdline.raw"
tr -d '\0' <"$output_dir/$image_id.cmdline.raw" >"$output_dir/$image_id.cmdline"
rm -f "$output_dir/$image_id.cmdline.raw"

outputs=("$image_id.vmlinuz" "$image_id.initrd" "$image_id.efi" "$image_id.cmdline")
for name in "${outputs[@]}"; do
    [[ -s "$output_dir/$name" ]] || die "mkosi did not produce $output_dir/$name"
done

# The cloud disk images around the UKI (the baseline is only booted directly).
if [[ "$profile" != baseline && "$disk" == yes ]]; then
    log "writing the disk images (raw, VHD, GCP tar.gz)"
    SOURCE_DATE_EPOCH=$(sed -n 's/^SourceDateEpoch=//p' "$repo/mkosi.conf") \
        "$repo/guest-image/make-disk.sh" "$output_dir/$image_id.efi" "$output_dir/$image_id"
    outputs+=("$image_id.disk.raw" "$image_id.vhd" "$image_id.gcp.tar.gz")
else
    # No disks from an earlier build beside a new UKI.
    rm -f "$output_dir/$image_id".{disk.raw,vhd,gcp.tar.gz}
fi

# Direct boot's initrd is the UKI's cpio recompressed with LZ4 (the legacy
# frame format, the one the kernel reads): under TCG the kernel unpacks it
# about 0.4 s sooner than zstd, which mkosi 24 uses (it offers no LZ4). The
# UKI keeps zstd: smaller to upload, and not the fast path.
zstd -q -d -c "$output_dir/$image_id.initrd" | lz4 -q -l -9 -c >"$output_dir/$image_id.initrd.lz4"
mv "$output_dir/$image_id.initrd.lz4" "$output_dir/$image_id.initrd"

(cd "$output_dir" && sha256sum "${outputs[@]}" >SHA256SUMS)

# Reference values: pp-measure from $binaries, the cargo target directory or
# PATH (it is not built here: cargo build --release -p pp-measure).
pp_measure=
for candidate in "$binaries/pp-measure" "${CARGO_TARGET_DIR:-$repo/target}"/{x86_64-unknown-linux-gnu/,x86_64-unknown-linux-musl/,}release/pp-measure \
    "$(command -v pp-measure || true)"; do
    [[ -x "$candidate" ]] && { pp_measure=$candidate; break; }
done
if [[ "$measure" == yes && -n "$pp_measure" ]]; then
    log "writing reference values with $pp_measure into $output_dir/measurements"
    measure_args=(
        --kernel "$output_dir/$image_id.vmlinuz"
        --initrd "$output_dir/$image_id.initrd"
        --cmdline "$(cat "$output_dir/$image_id.cmdline")"
        --uki "$output_dir/$image_id.efi"
        --out "$output_dir/measurements"
    )
    # Debian's OVMF.fd carries the TDVF metadata MRTD is computed from. (Its
    # SEV build has no kernel-hashes table, so SNP direct-boot digests need
    # an AmdSev OVMF: pass one with PP_MEASURE_SNP_FIRMWARE.)
    [[ -f /usr/share/ovmf/OVMF.fd ]] && measure_args+=(--tdx-firmware /usr/share/ovmf/OVMF.fd)
    [[ -n "${PP_MEASURE_SNP_FIRMWARE:-}" ]] && measure_args+=(--snp-firmware "$PP_MEASURE_SNP_FIRMWARE")
    "$pp_measure" image "${measure_args[@]}" >&2 || die "pp-measure failed (see above)"
    log "vTPM clouds (disk boot): PCR 4 event (the UKI's Authenticode SHA-256) and PCR 11 after systemd-stub:"
    jq -r '.uki | "  authenticode_sha256 \(.authenticode_sha256)\n  pcr11 \(.pcr11[0].pcr11) (after systemd-stub; pp-init extends no phases)"' \
        "$output_dir/measurements/reference-values.json" >&2
elif [[ "$measure" == yes ]]; then
    log "pp-measure not found: no reference values written (cargo build --release -p pp-measure, then rerun)"
fi

log "outputs ($profile profile):"
(cd "$output_dir" && for name in "${outputs[@]}"; do
    printf '%s  %s  (%s bytes)\n' "$(awk -v n="$name" '$2 == n { print $1 }' SHA256SUMS)" "$output_dir/$name" "$(stat -c %s "$name")"
done)
