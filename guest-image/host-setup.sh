#!/usr/bin/env bash
# guest-image/host-setup.sh: prepares the build host, the apt sources the
# image is built from, and the project's binaries. Sourced by the image
# scripts (scripts/{build-image,check-reproducible,run-qemu,bench-boot}.sh)
# and tests-qemu/run.sh.
#
# Contract:
# - Every function is idempotent and safe to call on a fresh Debian bookworm
#   machine (as root) or on one where it already ran.
# - The Debian mirror is read from the machine's own apt configuration
#   (/etc/apt/sources.list and /etc/apt/sources.list.d/*); its host name is
#   never written into the repository or the image.
# - Generated files live under $PEERPOD_CACHE (default /var/cache/peerpod-image),
#   outside the repository, and are reused between runs.

PEERPOD_CACHE="${PEERPOD_CACHE:-/var/cache/peerpod-image}"
mkdir -p "$PEERPOD_CACHE"

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Prints the URI of the machine's configured Debian archive (the one serving
# the "bookworm" suite), from deb822 .sources files or one-line .list files.
debian_mirror_uri() {
    local uri
    uri=$(awk '
        /^URIs:/   { uris = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") { print uris; exit } }
        /^[[:space:]]*$/ { uris = "" }
    ' /etc/apt/sources.list.d/*.sources 2>/dev/null)
    if [[ -z "$uri" ]]; then
        uri=$(awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
    fi
    [[ -n "$uri" ]] || die "no apt source for the Debian 'bookworm' suite found in /etc/apt/sources.list*; configure a Debian mirror first"
    printf '%s\n' "${uri%/}"
}

# Same for the security archive (the suite bookworm-security); empty if none.
debian_security_uri() {
    awk '
        /^URIs:/   { uris = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm-security") { print uris; exit } }
        /^[[:space:]]*$/ { uris = "" }
    ' /etc/apt/sources.list.d/*.sources 2>/dev/null | sed 's:/*$::'
}

# Adds bookworm-backports to the HOST's apt sources (same mirror), once.
ensure_host_backports() {
    local list=/etc/apt/sources.list.d/peerpod-bookworm-backports.sources
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        log "adding bookworm-backports to the host's apt sources ($list)"
        cat >"$list" <<SRC
Types: deb
URIs: $(debian_mirror_uri)
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        apt-get -o DPkg::Lock::Timeout=900 update -qq
    fi
}

apt_updated=
apt_update_once() {
    if [[ -z "$apt_updated" ]]; then
        apt-get -o DPkg::Lock::Timeout=900 update -qq
        apt_updated=1
    fi
}

# Installs the tools the image build needs: mkosi 24 from backports and what
# it calls (bubblewrap, cpio, zstd, ukify, the systemd-boot stub), lz4 for
# the direct-boot initrd, xorriso for the config drive, fdisk, dosfstools
# and mtools for the disk images, jq to print reference values.
ensure_build_tools() {
    ensure_host_backports
    local need=()
    mkosi --version 2>/dev/null | grep -q '^mkosi 2[4-9]' || need+=(mkosi)
    # ukify (ships in systemd-boot 254 from backports) builds the UKI.
    [[ -x /usr/lib/systemd/ukify ]] || need+=(systemd-boot systemd-boot-efi python3-pefile)
    command -v xorriso >/dev/null || need+=(xorriso)
    local tool pkg
    for tool in bwrap:bubblewrap cpio:cpio zstd:zstd lz4:lz4 debootstrap:debootstrap depmod:kmod sbsign:sbsigntool \
        sfdisk:fdisk mkfs.vfat:dosfstools mcopy:mtools jq:jq; do
        command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
    done
    [[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
    if ((${#need[@]})); then
        log "installing build tools: ${need[*]}"
        apt_update_once
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends -t bookworm-backports "${need[@]}" kmod >"$PEERPOD_CACHE/apt-install.log" 2>&1 || die "apt-get install failed, see $PEERPOD_CACHE/apt-install.log"
    fi
}

# Installs QEMU (backports 10.0: same version as qemu-utils on the machine),
# qemu-img (the disk test compares the VHD with the raw disk) and OVMF.
ensure_qemu_tools() {
    ensure_host_backports
    local need=()
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
    command -v qemu-img >/dev/null || need+=(qemu-utils)
    [[ -e /usr/share/OVMF/OVMF_CODE_4M.fd || -e /usr/share/ovmf/OVMF.fd ]] || need+=(ovmf)
    command -v xorriso >/dev/null || need+=(xorriso)
    if ((${#need[@]})); then
        log "installing QEMU tools: ${need[*]}"
        apt_update_once
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends -t bookworm-backports "${need[@]}" >"$PEERPOD_CACHE/apt-install.log" 2>&1 || die "apt-get install failed, see $PEERPOD_CACHE/apt-install.log"
    fi
}

# Writes an apt configuration tree for mkosi (--package-manager-tree) whose
# sources.list.d/mkosi.sources replaces the one mkosi would write (mkosi 24.3
# names deb.debian.org debug and security hosts that may not be reachable) and
# points bookworm, bookworm-updates, bookworm-security and bookworm-backports
# at the machine's mirror. Prints the tree's path.
write_package_manager_tree() {
    local tree="$PEERPOD_CACHE/package-manager-tree"
    local mirror security
    mirror=$(debian_mirror_uri)
    security=$(debian_security_uri)
    mkdir -p "$tree/etc/apt/sources.list.d" "$tree/etc/apt/apt.conf.d"
    {
        printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror"
        if [[ -n "$security" ]]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$security"
        fi
    } >"$tree/etc/apt/sources.list.d/mkosi.sources"
    # The mirror may be a dated snapshot: do not reject its Release files as expired.
    printf 'Acquire::Check-Valid-Until "false";\nAcquire::Languages "none";\n' >"$tree/etc/apt/apt.conf.d/50peerpod"
    printf '%s\n' "$tree"
}

# The project's binaries are always built in ONE cargo invocation with the
# same package set, so that feature unification (and so the bytes of each
# binary) is the same whichever script builds them, and the target directory
# stays warm between scripts.
# The guest's binaries, and the host's adaptor (for tests and the demo),
# built in two cargo runs so that the adaptor's dependencies (kube) cannot
# switch on features in what the guest runs: cargo unifies features over
# the packages of one run.
GUEST_PACKAGES=(-p pp-init -p pp-forwarder -p pp-provision -p pp-testdoubles)
HOST_PACKAGES=(-p pp-adaptor)

# Prints the Rust target the static binaries are built for, installing it
# first: x86_64-unknown-linux-musl (static by default; the forwarder is
# ~1.2 MB there, ~1.9 MB as glibc static-pie, whose libc and start-up code
# alone are ~1.1 MB), with musl-gcc for the C that ring (pp-adaptor)
# compiles. If rustup cannot fetch the target it says so and falls back to
# glibc static-pie (x86_64-unknown-linux-gnu): everything works, the
# binaries are just larger.
static_target() {
    local musl=x86_64-unknown-linux-musl
    if ! rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
        log "installing the Rust target $musl (rustup)"
        rustup target add "$musl" >&2 || {
            log "WARNING: rustup cannot install $musl: building glibc static-pie binaries instead (larger; the forwarder misses its 1.5 MB goal)"
            printf '%s\n' x86_64-unknown-linux-gnu
            return 0
        }
    fi
    if ! command -v musl-gcc >/dev/null; then
        log "installing musl-tools (musl-gcc)"
        apt_update_once
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends musl-tools >&2
    fi
    printf '%s\n' "$musl"
}

# build_project_binaries REPO: builds them static (release, for
# $(static_target)) into $CARGO_TARGET_DIR (default REPO/target) and prints
# the directory that holds them.
build_project_binaries() {
    local repo=$1 target_dir=${CARGO_TARGET_DIR:-$1/target} target
    target=$(static_target)
    # The glibc fallback links statically; cargo joins these flags with
    # those .cargo/config.toml gives every x86_64 build.
    local -a static_config=()
    [[ "$target" == *-gnu ]] &&
        static_config=(--config "target.$target.rustflags=[\"-C\", \"target-feature=+crt-static\"]")
    log "building the project's binaries (static, release, $target) into $target_dir"
    local packages
    for packages in "${GUEST_PACKAGES[*]}" "${HOST_PACKAGES[*]}"; do
        # shellcheck disable=SC2086 # the -p NAME words
        (cd "$repo" && CC_x86_64_unknown_linux_musl=musl-gcc CARGO_TARGET_DIR="$target_dir" \
            cargo build --release --target "$target" "${static_config[@]}" $packages >&2) ||
            return 1
    done
    printf '%s\n' "$target_dir/$target/release"
}
