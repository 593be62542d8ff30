#!/usr/bin/env bash
# guest-image/make-disk.sh: wraps a UKI into the cloud disk images that boot
# through UEFI firmware (and a vTPM): a GPT disk whose one partition, an EFI
# system partition (FAT32), holds the UKI as the removable-media default boot
# entry \EFI\BOOT\BOOTX64.EFI, in three forms:
#   PREFIX.disk.raw   the raw disk (AWS: import as a snapshot; QEMU + OVMF)
#   PREFIX.vhd        Azure: a fixed VHD (the raw disk + a 512-byte footer)
#   PREFIX.gcp.tar.gz GCP: disk.raw in a tar (oldgnu, sparse) compressed
#                     with gzip
#
# Usage: guest-image/make-disk.sh UKI PREFIX
#
# Reproducible: the same UKI and SOURCE_DATE_EPOCH (default: mkosi.conf's)
# give the same bytes. The disk and partition GUIDs, the FAT volume id and
# the VHD's unique id are derived from the UKI's SHA-256 (two images never
# share them, one image always has the same); every time stamp (FAT
# directory entries, the VHD footer, the tar member) is SOURCE_DATE_EPOCH;
# the tar member's owner is 0:0 and its sparse map comes from the bytes
# (zero runs), not from the file system; gzip stores no name or time.
#
# The disk is 1 GiB (GCP imports only whole GiB; Azure needs a multiple of
# 1 MiB): the raw disk and the VHD are written sparse, the tar stores only
# the data, so they cost about the UKI's size on disk and in upload.
set -euo pipefail

uki=${1:?usage: make-disk.sh UKI PREFIX}
prefix=${2:?usage: make-disk.sh UKI PREFIX}
[[ -s "$uki" ]] || { echo "make-disk.sh: no UKI at $uki" >&2; exit 1; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
epoch=${SOURCE_DATE_EPOCH:-$(sed -n 's/^SourceDateEpoch=//p' "$repo/mkosi.conf")}
[[ "$epoch" =~ ^[0-9]+$ ]] || { echo "make-disk.sh: SOURCE_DATE_EPOCH '$epoch' is not a number" >&2; exit 1; }

disk_bytes=$((1024 * 1024 * 1024))
esp_start=2048                          # sectors of 512 bytes: 1 MiB aligned
esp_sectors=$((disk_bytes / 512 - esp_start - 2048)) # leaves room for the backup GPT
uki_sum=$(sha256sum "$uki" | cut -d' ' -f1)
# derived_uuid LABEL: a UUID (version 4 and variant bits set) from SHA-256 of
# the UKI's digest and LABEL.
derived_uuid() {
    local h
    h=$(printf '%s %s' "$uki_sum" "$1" | sha256sum | cut -c1-32)
    printf '%s-%s-4%s-%x%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:13:3}" \
        $(((16#${h:16:1} & 3) | 8)) "${h:17:3}" "${h:20:12}"
}

work=$(mktemp -d "${prefix}.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
raw=$work/disk.raw

# The partition table: GPT, one EFI system partition.
truncate -s "$disk_bytes" "$raw"
sfdisk --quiet --no-reread --no-tell-kernel "$raw" <<EOF
label: gpt
label-id: $(derived_uuid disk)
first-lba: $esp_start
start=$esp_start, size=$esp_sectors, type=uefi, uuid=$(derived_uuid esp), name="ESP"
EOF

# The file system: FAT32 written straight into the partition (--invariant
# fixes what mkfs.vfat would otherwise randomise or date), then the UKI.
# mcopy -s -m copies the tree with the files' and directories' own time
# stamps, which are set to SOURCE_DATE_EPOCH first. (mkfs.vfat warns that
# the partition is smaller than the rest of the file; only its errors show.)
if ! mkfs_output=$(mkfs.vfat -F 32 -S 512 -s 8 --invariant -i "${uki_sum:0:8}" -n ESP \
    --offset "$esp_start" "$raw" "$((esp_sectors / 2))" 2>&1); then
    printf '%s\n' "$mkfs_output" >&2
    exit 1
fi
tree=$work/esp
mkdir -p "$tree/EFI/BOOT"
cp "$uki" "$tree/EFI/BOOT/BOOTX64.EFI"
touch -h -d "@$epoch" "$tree/EFI/BOOT/BOOTX64.EFI" "$tree/EFI/BOOT" "$tree/EFI"
SOURCE_DATE_EPOCH=$epoch MTOOLS_SKIP_CHECK=1 mcopy -s -m -Q -i "$raw@@$((esp_start * 512))" "$tree/EFI" ::/

# Azure: the raw disk and a fixed-disk VHD footer (Virtual Hard Disk Image
# Format Specification, "Hard Disk Footer Format").
vhd=$work/disk.vhd
cp --sparse=always "$raw" "$vhd"
python3 - "$disk_bytes" "$epoch" "$(derived_uuid vhd)" >>"$vhd" <<'PY'
import struct, sys, uuid

size, epoch, unique = int(sys.argv[1]), int(sys.argv[2]), uuid.UUID(sys.argv[3])
# CHS geometry as the spec computes it (capped at 65535 x 16 x 255).
sectors = min(size // 512, 65535 * 16 * 255)
if sectors >= 65535 * 16 * 63:
    spt, heads = 255, 16
    cth = sectors // spt
else:
    spt = 17
    cth = sectors // spt
    heads = max((cth + 1023) // 1024, 4)
    if cth >= heads * 1024 or heads > 16:
        spt, heads = 31, 16
        cth = sectors // spt
    if cth >= heads * 1024:
        spt, heads = 63, 16
        cth = sectors // spt
cylinders = cth // heads
footer = bytearray(struct.pack(
    ">8sIIQI4sI4sQQHBBII16sB",
    b"conectix", 2, 0x00010000, 0xFFFFFFFFFFFFFFFF,
    epoch - 946684800,          # seconds since 2000-01-01 00:00:00 UTC
    # "qem2": readers (QEMU among them) take the current size, not the CHS
    # geometry, as the disk's size, as for qemu-img's force_size.
    b"qem2", 0x00010000, b"Wi2k", size, size,
    cylinders, heads, spt, 2, 0, unique.bytes, 0,
))
footer += bytes(512 - len(footer))
struct.pack_into(">I", footer, 64, ~sum(footer) & 0xFFFFFFFF)
sys.stdout.buffer.write(footer)
PY

# GCP: disk.raw in an old-GNU sparse tar, gzip without name or time.
(cd "$work" && tar --format=oldgnu --sparse --hole-detection=raw \
    --mtime="@$epoch" --owner=0 --group=0 --numeric-owner --mode=0644 \
    -cf - disk.raw) | gzip -n -9 >"$work/disk.tar.gz"

mv "$raw" "$prefix.disk.raw"
mv "$vhd" "$prefix.vhd"
mv "$work/disk.tar.gz" "$prefix.gcp.tar.gz"
