#!/usr/bin/env bash
# Privileged end-to-end checks of pp-provision that `cargo test` cannot do
# unprivileged. Needs root, iproute2, losetup, python3 and genisoimage (or
# xorriso; genisoimage is installed if neither is there).
#
# 1. Config drive as a real block device: an ISO labelled cidata is attached
#    with losetup and pp-provision finds it through /sys/class/block by its
#    label (no --device).
# 2. Metadata services at their real address: a network namespace of our own
#    with a veth pair, 169.254.169.254 assigned INSIDE it; a double for Azure
#    IMDS, AWS IMDSv2 and GCP runs there and pp-provision runs there with its
#    default --imds-addr. Nothing is sent outside the namespace.
#
# The namespace, loop device, double and temporary files are removed on
# every exit path. Prints "ok"/"not ok" per check and "N passed, M failed".
#
# Usage: sudo scripts/provision-test.sh   (PP_PROVISION=path skips the build)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
if [[ $EUID -ne 0 ]]; then
    echo "provision-test: needs root (network namespaces, losetup)" >&2
    exit 2
fi

# Our extras (iproute2 and python3 come from scripts/install-deps.sh).
if ! command -v genisoimage >/dev/null && ! command -v xorriso >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends genisoimage >/dev/null
fi

if [[ -z "${PP_PROVISION:-}" ]]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
    cargo build --quiet -p pp-provision --manifest-path "$repo/Cargo.toml"
    PP_PROVISION="$CARGO_TARGET_DIR/debug/pp-provision"
fi

work="$(mktemp -d /tmp/pp-provision-test.XXXXXX)"
netns="pp-provision-test-$$"
loop=""
double_pid=""

cleanup() {
    if [[ -n "$double_pid" ]]; then kill "$double_pid" 2>/dev/null || true; wait "$double_pid" 2>/dev/null || true; fi
    if ip netns list | grep -qw "$netns"; then ip netns del "$netns"; fi
    if [[ -n "$loop" ]]; then losetup -d "$loop" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

passed=0
failed=0
check() { # check NAME EXPECTED_STATUS COMMAND...
    local name="$1" expected="$2"
    shift 2
    local status=0
    "$@" >"$work/last.log" 2>&1 || status=$?
    if [[ "$status" == "$expected" ]]; then
        echo "ok - $name"
        passed=$((passed + 1))
    else
        echo "not ok - $name (exit $status, expected $expected)"
        sed 's/^/    /' "$work/last.log"
        failed=$((failed + 1))
    fi
}
log_has() { # log_has NAME TEXT: the last command's log contains TEXT
    if grep -qF -- "$2" "$work/last.log"; then
        echo "ok - $1"
        passed=$((passed + 1))
    else
        echo "not ok - $1 (log lacks: $2)"
        sed 's/^/    /' "$work/last.log"
        failed=$((failed + 1))
    fi
}

# --- fixtures: init-data, user-data, a simulated SNP TEE ---------------------
cat >"$work/initdata.toml" <<'EOF'
version = "0.1.0"
algorithm = "sha256"

[data]
"cdh.toml" = '''
[kbc]
name = "cc_kbc"
url = "http://127.0.0.1:8080"
'''
EOF
delivered="$(gzip -9n -c "$work/initdata.toml" | base64 -w0)"
digest="$(sha256sum "$work/initdata.toml" | cut -d' ' -f1)"
printf '#cloud-config\nwrite_files:\n- path: /run/peerpod/initdata\n  content: %s\n' "$delivered" >"$work/user-data"
printf 'instance-id: provision-test\n' >"$work/meta-data"

make_snp_sim() { # make_snp_sim DIR HOST_DATA_HEX
    mkdir -p "$1"
    echo sev_guest >"$1/provider"
    python3 - "$1/outblob" "$2" <<'EOF'
import struct, sys
report = bytearray(0x4A0)
struct.pack_into("<I", report, 0, 3)      # version
struct.pack_into("<I", report, 0x34, 1)   # signature algorithm: ECDSA P-384
report[0xC0:0xC0 + 32] = bytes.fromhex(sys.argv[2])
open(sys.argv[1], "wb").write(report)
EOF
}
make_snp_sim "$work/sim-match" "$digest"
make_snp_sim "$work/sim-other" "$(printf '%064d' 0)"

# --- 1. config drive on a loop device, found by label ------------------------
mkdir "$work/drive"
cp "$work/user-data" "$work/meta-data" "$work/drive/"
if command -v genisoimage >/dev/null; then
    genisoimage -quiet -output "$work/seed.iso" -volid cidata -joliet -rock "$work/drive"
else
    xorriso -as mkisofs -quiet -output "$work/seed.iso" -volid cidata -joliet -rock "$work/drive"
fi
loop="$(losetup --find --show --read-only "$work/seed.iso")"

check "config drive on $loop is found by its cidata label and provisions" 0 \
    "$PP_PROVISION" --source config-drive --tee "sim:$work/sim-match" \
    --out-dir "$work/out-drive" --on-mismatch exit --timeout 5
log_has "the log names the loop device" "config drive $loop"
if cmp -s "$work/out-drive/initdata.toml" "$work/initdata.toml"; then
    echo "ok - initdata.toml holds the exact TOML"; passed=$((passed + 1))
else
    echo "not ok - initdata.toml differs from the delivered TOML"; failed=$((failed + 1))
fi
check "a mismatching TEE exits 3 and writes nothing" 3 \
    "$PP_PROVISION" --source config-drive --tee "sim:$work/sim-other" \
    --out-dir "$work/out-mismatch" --on-mismatch exit --timeout 5
if [[ ! -e "$work/out-mismatch" ]]; then
    echo "ok - no output directory after the mismatch"; passed=$((passed + 1))
else
    echo "not ok - output written despite the mismatch"; failed=$((failed + 1))
fi
losetup -d "$loop"
loop=""

# --- 2. metadata-service doubles on 169.254.169.254 inside our namespace -----
ip netns add "$netns"
ip link add pp-md0 type veth peer name pp-md1
ip link set pp-md0 netns "$netns"
ip link set pp-md1 netns "$netns"
ip -n "$netns" link set lo up
ip -n "$netns" addr add 169.254.169.254/16 dev pp-md0
ip -n "$netns" addr add 169.254.0.2/16 dev pp-md1
ip -n "$netns" link set pp-md0 up
ip -n "$netns" link set pp-md1 up

cat >"$work/double.py" <<'EOF'
# Metadata-service double: Azure IMDS, AWS IMDSv2 and GCP user-data routes,
# with the headers each cloud requires. Serves until killed.
import base64, http.server, sys
user_data = open(sys.argv[1], "rb").read()
TOKEN = "provision-test-token"

class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, TOKEN.encode())
        self.reply(400)

    def do_GET(self):
        if self.path == "/metadata/instance/compute/userData?api-version=2021-01-01&format=text":
            if self.headers.get("Metadata") != "true":
                return self.reply(400)
            return self.reply(200, base64.b64encode(user_data))
        if self.path == "/latest/user-data":
            if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                return self.reply(401)
            return self.reply(200, user_data)
        if self.path == "/computeMetadata/v1/instance/attributes/user-data":
            if self.headers.get("Metadata-Flavor") != "Google":
                return self.reply(403)
            return self.reply(200, user_data, [("Metadata-Flavor", "Google")])
        self.reply(404)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("169.254.169.254", 80), Handler)
open(sys.argv[2], "w").close()
server.serve_forever()
EOF
ip netns exec "$netns" python3 "$work/double.py" "$work/user-data" "$work/double.ready" &
double_pid=$!
for _ in $(seq 50); do [[ -e "$work/double.ready" ]] && break; sleep 0.1; done

for cloud in azure aws gcp; do
    check "$cloud user-data from the double at 169.254.169.254:80 provisions" 0 \
        ip netns exec "$netns" "$PP_PROVISION" --source "$cloud" --tee "sim:$work/sim-match" \
        --out-dir "$work/out-$cloud" --on-mismatch exit --timeout 5
    log_has "$cloud: the log names the service address" "169.254.169.254:80"
done
check "metadata user-data with a mismatching TEE exits 3" 3 \
    ip netns exec "$netns" "$PP_PROVISION" --source aws --tee "sim:$work/sim-other" \
    --out-dir "$work/out-aws-mismatch" --on-mismatch exit --timeout 5
log_has "the mismatch line names the expected digest" "$digest"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
