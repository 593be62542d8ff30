#!/usr/bin/env bash
# guest-image/make-config-drive.sh: writes a cloud-init config drive for a
# peer pod, as cloud-api-adaptor's libvirt provider does.
#
# Usage: guest-image/make-config-drive.sh INITDATA.toml OUT.iso
#
# The drive is an ISO9660 volume labelled "cidata" (Joliet and Rock Ridge
# names) holding meta-data and a cloud-config user-data whose write_files
# entry /run/peerpod/initdata carries base64(gzip(the init-data TOML)), the
# TOML bytes exactly as given (its digest is what the TEE launch binds).
# pp-provision in the guest reads it. Needs xorriso.
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 INITDATA.toml OUT.iso" >&2; exit 2; }
initdata=$1 out=$2
[[ -r "$initdata" ]] || { echo "$0: cannot read init-data file $initdata" >&2; exit 1; }
command -v xorriso >/dev/null || { echo "$0: xorriso is missing (apt-get install xorriso)" >&2; exit 1; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
{
    printf '#cloud-config\n'
    printf 'write_files:\n'
    printf -- '- path: /run/peerpod/initdata\n'
    printf '  permissions: "0644"\n'
    printf '  content: %s\n' "$(gzip -9n <"$initdata" | base64 -w0)"
} >"$dir/user-data"
printf 'instance-id: peerpod\nlocal-hostname: peerpod\n' >"$dir/meta-data"
xorriso -as genisoimage -quiet -output "$out" -volid cidata -joliet -rock \
    "$dir/user-data" "$dir/meta-data" 2>/dev/null
