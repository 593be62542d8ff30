#!/usr/bin/env bash
# The demo: the whole peer-pod secure-comms story on loopback, with the
# project's test doubles standing in for Trustee (kbs-double), CDH
# (cdh-double) and the kata-agent (agent-echo). Builds what it needs, tells
# what happens phase by phase, exits 0 only if all of it worked, and stops
# every process it started, also on Ctrl-C or failure. Safe to run twice.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
"$repo/scripts/install-deps.sh"

if [ -t 1 ]; then bold=$'\033[1m' red=$'\033[31m' plain=$'\033[0m'; else bold="" red="" plain=""; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
step() { printf '   %s\n' "$*"; }
fail() { printf '\n%sDEMO FAILED: %s%s\n' "$red" "$*" "$plain" >&2; exit 1; }

say "Building the forwarder, the adaptor and the test doubles (cargo build)"
cargo build -q --bins -p pp-forwarder -p pp-adaptor -p pp-testdoubles
bin="${CARGO_TARGET_DIR:-$repo/target}/debug"

work="$(mktemp -d "${TMPDIR:-/tmp}/pp-demo.XXXXXX")"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start() { # start NAME COMMAND... : runs in the background, output in $work/NAME.log
    local name="$1"; shift
    "$@" >"$work/$name.log" 2>&1 &
    pids+=("$!")
}
wait_for() { # wait_for LOG TEXT SECONDS
    local log="$1" text="$2" seconds="$3"
    for _ in $(seq $((seconds * 10))); do
        grep -q -- "$text" "$log" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "--- $log:" >&2; tail -n 30 "$log" >&2 || true
    fail "no \"$text\" in $(basename "$log") within ${seconds}s"
}

ssh_port=$(free_port); kbs_tunnel=$(free_port); cdh_port=$(free_port); agent_port=$(free_port)

say "Trustee side: starting the KBS test double (speaks the KBS protocol 0.4.0)"
ssh-keygen -q -t ed25519 -N "" -C trustee-admin -f "$work/admin"
start kbs "$bin/kbs-double" --listen 127.0.0.1:0 --admin-public-key "$work/admin.pub"
wait_for "$work/kbs.log" "listening on" 10
kbs_addr=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$work/kbs.log" | head -n1)
step "KBS at http://$kbs_addr; its admin API accepts EdDSA JWTs signed by $work/admin"

say "Worker node: the adaptor makes the keys and registers them at Trustee"
cat >"$work/adaptor.toml" <<TOML
trustee_url = "http://$kbs_addr"
admin_key = "admin"
key_dir = "keys"
state_dir = "state"
control_socket = "control.sock"

[timing]
backoff_initial_ms = 200
backoff_max_secs = 2

[[pp]]
sid = "demo"
forwarder = "127.0.0.1:$ssh_port"
init_data_has_wn_key = true
tunnels = ["KUBERNETES_PHASE:KATAAGENT:127.0.0.1:$agent_port"]
TOML
wn_line=$("$bin/pp-adaptor" --config "$work/adaptor.toml" pp create --sid demo 2>"$work/create.log")
step "WN key pair (shared by all PPs): $(cut -d' ' -f1-2 <<<"$wn_line" | cut -c1-60)..."
step "PP key pair for sandbox 'demo'; Trustee now holds default/sshclient/publicKey and default/pp-demo/privateKey"
grep -q "stored resource default/pp-demo/privateKey" "$work/kbs.log" || fail "the PP key is not at the KBS"

say "Peer pod: init-data with the WN key, then CDH, the kata-agent and the forwarder"
cat >"$work/initdata.toml" <<TOML
version = "0.1.0"
algorithm = "sha256"

[data]
"forwarder.toml" = '''
wn-public-key = "$wn_line"
inbounds = ["BOTH_PHASES:KBS:$kbs_tunnel"]
outbounds = ["KUBERNETES_PHASE:KATAAGENT:unix:$work/agent.sock"]
'''
TOML
gzip -9nc "$work/initdata.toml" | base64 -w0 >"$work/initdata"
step "init-data delivered as base64(gzip(TOML)), like peer pods' /run/peerpod/initdata"
start agent "$bin/agent-echo" --unix "$work/agent.sock"
start cdh "$bin/cdh-double" --listen "127.0.0.1:$cdh_port" --kbs-url "http://127.0.0.1:$kbs_tunnel"
start forwarder "$bin/pp-forwarder" --listen "127.0.0.1:$ssh_port" --state-dir "$work/pp-state" \
    --initdata "$work/initdata" --cdh-url "http://127.0.0.1:$cdh_port" \
    --attestation-deadline 5m --deadline-action exit --upgrade-grace 2s
wait_for "$work/forwarder.log" "listening for SSH" 15
step "forwarder on 127.0.0.1:$ssh_port, attestation phase, ephemeral host key $(sed -n 's/.*(ephemeral): //p' "$work/forwarder.log")"
step "CDH reaches Trustee at 127.0.0.1:$kbs_tunnel: the forwarder's KBS tunnel, through the WN"

say "An intruder tries the attestation phase first, with its own key"
ssh-keygen -q -t ed25519 -N "" -C intruder -f "$work/intruder"
intrude() {
    ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o ConnectTimeout=10 -i "$work/intruder" -p "$ssh_port" peerpod@127.0.0.1 tunnel KATAAGENT \
        </dev/null >/dev/null 2>&1
}
if intrude; then fail "the intruder got in"; fi
step "refused; the forwarder says: $(grep -m1 'is not the init-data WN key' "$work/forwarder.log" | sed 's/^INFO  //')"

say "Attestation phase: the adaptor connects (the host key cannot be proven yet)"
start adaptor "$bin/pp-adaptor" --config "$work/adaptor.toml" serve
wait_for "$work/adaptor.log" "^pp demo: attestation phase" 30
step "adaptor: $(grep -m1 '^pp demo: attestation phase' "$work/adaptor.log")"
wait_for "$work/forwarder.log" "admitted in the attestation phase" 10
step "forwarder: $(grep -m1 'persisting phase record: AttestationClaimed' "$work/forwarder.log" | sed 's/^INFO  //' | cut -c1-110)..."
step "the claim is in guest memory before the client learned it succeeded: no second client can ever win"

say "Keys: CDH attests through the tunnel; the adaptor's proxy rewrites pp-sid to pp-demo"
wait_for "$work/forwarder.log" "keys obtained from CDH" 60
step "$(grep -m1 'released resource default/pp-demo/privateKey' "$work/kbs.log")"
grep -q "default/pp-sid/privateKey" "$work/kbs.log" && fail "the KBS saw an unrewritten pp-sid request"
step "the KBS never saw 'pp-sid': the PP never needed to know its own id"
step "forwarder: $(grep -m1 'keys obtained from CDH' "$work/forwarder.log" | sed 's/^INFO  //')"

say "Upgrade: the forwarder tells the WN its keys arrived; the WN reconnects"
wait_for "$work/adaptor.log" "^pp demo: upgrading" 30
step "forwarder: $(grep -m1 'sending UPGRADE' "$work/forwarder.log" | sed 's/^INFO  //')"

say "Kubernetes phase: the host key is the PP's own and the WN verifies it"
wait_for "$work/adaptor.log" "^pp demo: Kubernetes phase" 60
step "adaptor: $(grep -m1 '^pp demo: Kubernetes phase' "$work/adaptor.log")"
step "forwarder: $(grep -m1 'admitted in the kubernetes phase' "$work/forwarder.log" | sed 's/^INFO  //')"

say "Transcript check: was the attestation phase relayed by someone else?"
wait_for "$work/adaptor.log" "confirms the adaptor's own attestation connection" 20
step "adaptor: $(grep -m1 "confirms the adaptor's own attestation connection" "$work/adaptor.log" | sed 's/.*\(pp demo: \)/\1/')"
step "(the PP reported, over the now-authenticated connection, the host key and peer address it saw in the attestation phase)"

say "Kata-agent traffic: a round trip through the KATAAGENT tunnel"
exec 3<>"/dev/tcp/127.0.0.1/$agent_port"
printf 'ping from the worker node\n' >&3
IFS= read -r -t 15 reply <&3 || fail "no answer through the KATAAGENT tunnel"
exec 3>&-
[ "$reply" = "ping from the worker node" ] || fail "the echo came back as '$reply'"
step "sent 'ping from the worker node' to 127.0.0.1:$agent_port on the WN; the kata-agent in the PP echoed it back"

say "A second attestation attempt is refused: the phase is over for this boot"
if intrude; then fail "the intruder got in"; fi
step "refused; the forwarder says: $(grep 'refused' "$work/forwarder.log" | tail -n1 | sed 's/^INFO  //')"

say "Done: attestation, keys through the tunnel with the SID rewrite, upgrade, verified Kubernetes phase, kata-agent round trip, intruders refused"
