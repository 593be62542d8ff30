#!/usr/bin/env bash
# Runs pp-measure's tests, including the cross-checks against the reference
# tools. Installs what they need (Debian: pesign, osslsigncode,
# systemd-boot-efi, ovmf, binutils; PyPI: sev-snp-measure) and a Debian
# cloud kernel as the test PE image. Safe to run twice: installs are
# idempotent and the kernel is cached under $PP_MEASURE_CACHE.
# Network: only the Debian archive and PyPI, through apt and pip.
# Takes about 2-3 minutes on 2 cores when the crate is already built.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PP_MEASURE_CACHE:-/var/cache/pp-measure-test}"
target="${CARGO_TARGET_DIR:-$repo/target}"
SEV_SNP_MEASURE_VERSION=0.0.13

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_debs=()
for pkg in pesign osslsigncode systemd-boot-efi ovmf binutils openssl curl; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_debs+=("$pkg")
done
if [ "${#need_debs[@]}" -gt 0 ]; then
    echo "measure-test: installing ${need_debs[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_debs[@]}" >/dev/null
fi
export PATH="$PATH:$HOME/.local/bin"
if ! command -v sev-snp-measure >/dev/null 2>&1; then
    echo "measure-test: installing sev-snp-measure $SEV_SNP_MEASURE_VERSION from PyPI"
    # A Debian-managed python refuses plain pip installs (PEP 668); a user
    # install beside it is fine for a test tool.
    python3 -m pip install -q "sev-snp-measure==$SEV_SNP_MEASURE_VERSION" 2>/dev/null ||
        python3 -m pip install -q --user --break-system-packages "sev-snp-measure==$SEV_SNP_MEASURE_VERSION"
    hash -r
fi
if [ ! -x /usr/lib/systemd/systemd-measure ]; then
    echo "measure-test: /usr/lib/systemd/systemd-measure is missing (systemd >= 252 needed)" >&2
    exit 1
fi

# A Debian cloud kernel (a real EFI-stub PE image) for the Authenticode and
# UKI checks, downloaded once.
mkdir -p "$cache"
kernel="$(ls "$cache"/vmlinuz-* 2>/dev/null | head -n1 || true)"
if [ -z "$kernel" ]; then
    package="$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')"
    if [ -z "$package" ]; then
        as_root apt-get update -qq
        package="$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')"
    fi
    echo "measure-test: downloading $package"
    work="$(mktemp -d)"
    (cd "$work" && apt-get download -qq "$package" && dpkg-deb -x ./*.deb extracted)
    cp "$work"/extracted/boot/vmlinuz-* "$cache"/
    rm -rf "$work"
    kernel="$(ls "$cache"/vmlinuz-* | head -n1)"
fi
export PP_MEASURE_TEST_KERNEL="$kernel"

cd "$repo"
# The KBS test double for the publish-script test.
CARGO_TARGET_DIR="$target" cargo build -q -p pp-testdoubles --bin kbs-double
export PP_MEASURE_KBS_DOUBLE="$target/debug/kbs-double"
CARGO_TARGET_DIR="$target" cargo test -p pp-measure -- --include-ignored
