#!/usr/bin/env bash
# scripts/run-qemu.sh: boots the peer-pod image under QEMU (TCG; KVM is not
# used) with user-mode networking, the forwarder's SSH port forwarded to a
# loopback port, and a cidata config drive carrying init-data. The user
# network is restricted: the guest gets DHCP but cannot connect to the host
# or beyond (so the pod reaches the KBS only through the forwarder's tunnel).
#
# Usage:
#   scripts/run-qemu.sh [--image-dir DIR] [--profile test|production]
#       [--initdata FILE.toml | --config-drive FILE.iso | --no-config-drive]
#       [--port PORT] [--uki | --disk] [--memory MiB] [--append "ARGS"]
#       [--serial-log FILE] [--test-hook PIPE] [--pidfile FILE]
#
#   --image-dir     where build-image.sh put the image (default
#                   build/image/PROFILE in the repository)
#   --initdata      an init-data TOML; it is packed into a config drive
#                   (default: init-data/example.toml)
#   --port          host loopback port forwarded to the guest's SSH port
#                   (default 2222)
#   --guest-port    the guest's SSH port (default 2222, the forwarder; 22 for
#                   the baseline profile's OpenSSH)
#   --tap IFNAME    attach the NIC to an existing tap device instead of user
#                   networking (no NAT, no port forwarding; --port is unused)
#   --mac ADDR      the NIC's MAC address (default: QEMU's)
#   --uki           boot the UKI through OVMF instead of kernel + initrd
#                   directly (SeaBIOS). The UKI's command line is sealed in
#                   it; systemd-stub accepts a replacement only while Secure
#                   Boot is off (as with this OVMF), so --append then passes
#                   the sealed line plus the extra arguments.
#   --disk          boot the raw cloud disk (PREFIX.disk.raw: GPT, an EFI
#                   system partition with the UKI as \EFI\BOOT\BOOTX64.EFI)
#                   through OVMF, as a cloud's firmware does: no -kernel.
#                   The disk is opened with snapshot=on (never written).
#                   --append then reaches systemd-stub as an SMBIOS type 11
#                   string io.systemd.stub.kernel-cmdline-extra=ARGS, which
#                   it appends to the sealed line (Secure Boot off only).
#   --append        extra kernel command line, e.g.
#                   PP_ATTESTATION_DEADLINE=20s
#   --serial-log    write the serial console there instead of to stdout
#   --test-hook     test profile: connect the guest's test-hook port to the
#                   FIFOs PIPE.in / PIPE.out (created if missing)
#   --pidfile       QEMU writes its PID there
#
# QEMU runs in the foreground (exec) and exits when the guest powers off.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../guest-image/host-setup.sh
source "$repo/guest-image/host-setup.sh"

profile=test image_dir= initdata=$repo/init-data/example.toml config_drive= use_drive=yes
port=2222 guest_port=2222 tap= mac= uki=no disk=no memory=1024 append= serial_log= test_hook= pidfile=
while (($#)); do
    case "$1" in
    --image-dir) image_dir=${2:?}; shift 2 ;;
    --profile) profile=${2:?}; shift 2 ;;
    --initdata) initdata=${2:?}; shift 2 ;;
    --config-drive) config_drive=${2:?}; shift 2 ;;
    --no-config-drive) use_drive=no; shift ;;
    --port) port=${2:?}; shift 2 ;;
    --guest-port) guest_port=${2:?}; shift 2 ;;
    --tap) tap=${2:?}; shift 2 ;;
    --mac) mac=${2:?}; shift 2 ;;
    --uki) uki=yes; shift ;;
    --disk) disk=yes; shift ;;
    --memory) memory=${2:?}; shift 2 ;;
    --append) append=${2?}; shift 2 ;;
    --serial-log) serial_log=${2:?}; shift 2 ;;
    --test-hook) test_hook=${2:?}; shift 2 ;;
    --pidfile) pidfile=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
case "$profile" in
test) image_id=peerpod-test ;;
production) image_id=peerpod ;;
baseline) image_id=peerpod-baseline ;;
*) die "--profile must be 'test', 'production' or 'baseline', not '$profile'" ;;
esac
image_dir=${image_dir:-$repo/build/image/$profile}
[[ -f "$image_dir/$image_id.vmlinuz" ]] || die "no image in $image_dir (run scripts/build-image.sh --profile $profile first)"
command -v qemu-system-x86_64 >/dev/null || ensure_qemu_tools
# Per-port scratch files (config drive, UEFI variables), reused by the next
# run on the same port.
scratch="$PEERPOD_CACHE/run/$port"
mkdir -p "$scratch"

args=(
    -accel tcg -machine q35 -cpu max -smp 2 -m "$memory"
    -nographic -no-reboot -nodefaults
    -device "virtio-net-pci,netdev=net0,romfile=${mac:+,mac=$mac}"
    -device virtio-rng-pci
)
if [[ -n "$tap" ]]; then
    args+=(-netdev "tap,id=net0,ifname=$tap,script=no,downscript=no")
else
    args+=(-netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:$guest_port")
fi
if [[ -n "$serial_log" ]]; then
    args+=(-serial "file:$serial_log")
else
    args+=(-serial stdio)
fi
[[ -z "$pidfile" ]] || args+=(-pidfile "$pidfile")

[[ "$uki" == no || "$disk" == no ]] || die "--uki and --disk are two different boots: give one"
if [[ "$uki" == yes || "$disk" == yes ]]; then
    vars=$scratch/OVMF_VARS.fd
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "$vars"
    args+=(
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
        -drive "if=pflash,format=raw,unit=1,file=$vars"
    )
fi
if [[ "$disk" == yes ]]; then
    [[ -f "$image_dir/$image_id.disk.raw" ]] || die "no disk image $image_dir/$image_id.disk.raw (scripts/build-image.sh writes it)"
    args+=(
        -drive "if=none,id=boot,format=raw,snapshot=on,file=$image_dir/$image_id.disk.raw"
        -device virtio-blk-pci,drive=boot,bootindex=0
    )
    [[ -z "$append" ]] || args+=(-smbios "type=11,value=io.systemd.stub.kernel-cmdline-extra=${append//,/,,}")
elif [[ "$uki" == yes ]]; then
    args+=(-kernel "$image_dir/$image_id.efi")
    [[ -z "$append" ]] || args+=(-append "$(cat "$image_dir/$image_id.cmdline") $append")
else
    cmdline=$(cat "$image_dir/$image_id.cmdline")
    args+=(
        -kernel "$image_dir/$image_id.vmlinuz"
        -initrd "$image_dir/$image_id.initrd"
        -append "$cmdline${append:+ $append}"
    )
fi

if [[ "$use_drive" == yes ]]; then
    if [[ -z "$config_drive" ]]; then
        config_drive=$scratch/cidata.iso
        "$repo/guest-image/make-config-drive.sh" "$initdata" "$config_drive"
    fi
    args+=(-drive "file=$config_drive,if=virtio,format=raw,readonly=on")
fi

if [[ -n "$test_hook" ]]; then
    [[ -p "$test_hook.in" ]] || mkfifo "$test_hook.in"
    [[ -p "$test_hook.out" ]] || mkfifo "$test_hook.out"
    args+=(
        -device virtio-serial-pci
        -chardev "pipe,id=testhook,path=$test_hook"
        -device virtserialport,chardev=testhook,name=org.peerpod.test-hook
    )
fi

boot="direct kernel boot"
[[ "$uki" == no ]] || boot="UKI via OVMF"
[[ "$disk" == no ]] || boot="raw disk via OVMF"
log "booting $image_dir/$image_id ($boot), TCG"
if [[ -n "$tap" ]]; then
    log "network: tap device $tap (the guest configures its own address)"
else
    log "forwarder: 127.0.0.1:$port (e.g. pp-adaptor ... 127.0.0.1:$port; ssh -p $port peerpod@127.0.0.1)"
fi
exec qemu-system-x86_64 "${args[@]}"
