#!/usr/bin/env bash
# scripts/check-reproducible.sh: proves the image build is reproducible by
# building it twice from scratch (no incremental cache; downloaded packages
# are reused) with the same binaries, and comparing the SHA-256 of every
# output (kernel, initrd, UKI, command line, and the disk images: raw, VHD
# and GCP tar.gz).
#
# Usage: scripts/check-reproducible.sh [--profile test|production]
#            [--guest-components DIR] [--binaries DIR] [--allow-missing]
# Exits 0 when every output is bit-identical, 1 otherwise (and shows which).
# Both builds go to $PEERPOD_CACHE/reproducible/{a,b}.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-image/host-setup.sh
source "$repo/guest-image/host-setup.sh"

pass_through=()
binaries=
while (($#)); do
    case "$1" in
    --profile | --guest-components) pass_through+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --binaries) binaries=${2:?--binaries needs a directory}; shift 2 ;;
    --allow-missing) pass_through+=("$1"); shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# Both builds must carry the same binaries: build them once, up front.
if [[ -z "$binaries" ]]; then
    binaries=$(build_project_binaries "$repo") ||
        [[ " ${pass_through[*]} " == *" --allow-missing "* ]] || die "cargo build failed"
    binaries=${binaries:-${CARGO_TARGET_DIR:-$repo/target}/$(static_target)/release}
fi

root="$PEERPOD_CACHE/reproducible"
rm -rf "$root"
for run in a b; do
    log "build $run of 2"
    "$repo/scripts/build-image.sh" "${pass_through[@]}" --binaries "$binaries" \
        --no-cache --no-measure --output-dir "$root/$run" >/dev/null
done

printf '%-26s %-64s %s\n' OUTPUT "SHA-256 (build a)" "build b"
status=0
while read -r sum name; do
    other=$(awk -v n="$name" '$2 == n { print $1 }' "$root/b/SHA256SUMS")
    if [[ "$sum" == "$other" ]]; then
        verdict=identical
    else
        verdict="DIFFERS ($other)"
        status=1
    fi
    printf '%-26s %s %s\n' "$name" "$sum" "$verdict"
done <"$root/a/SHA256SUMS"
if ((status == 0)); then
    log "reproducible: both builds gave identical bytes for every output"
else
    log "NOT reproducible: compare $root/a and $root/b (e.g. diffoscope, or unpack the initrds with cpio; for the disks: sfdisk -d, mdir -/ -i DISK@@1M)"
fi
exit "$status"
