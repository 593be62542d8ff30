#!/usr/bin/env bash
# Installs what the demo and the loopback tests need on Debian bookworm:
# OpenSSH (client for interop tests and the demo's intruder, server for the
# benchmark's baseline), python3 and a C compiler for -sys crates. The
# image, measurement and provisioning scripts install their own extras;
# genisoimage and swtpm are for pp-provision's cargo tests.
# Safe to run twice: only missing packages are installed.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in openssh-client openssh-server python3 gcc pkg-config iproute2 procps genisoimage swtpm swtpm-tools bc file; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "cargo is missing: install Rust 1.95 (rustup) first" >&2
    exit 1
fi
