#!/usr/bin/env bash
# tests-qemu/run.sh: end-to-end tests that boot the TEST image (and the
# production image, with the project's test doubles of guest-components and
# the kata-agent as separate processes) under QEMU (TCG) and drive it from
# the host with pp-adaptor, with kbs-double on the host as Trustee.
#
# The tests run in a network namespace of their own (built first, in the
# host's namespace, then re-executed inside it). The pod's NIC is a tap
# device there: the adaptor reaches the forwarder at 10.0.3.15:2222 with no
# NAT in between (as in a cloud VPC; the adaptor's relay check compares the
# peer address the pod saw with its own). kbs-double, the adaptor's
# listeners and everything else listen on the namespace's loopback, which
# the pod cannot reach: it reaches the KBS only through the forwarder's
# tunnel.
#
# Usage: tests-qemu/run.sh [--skip-build] [--keep] [TEST_NAME...]
#   --skip-build  use the binaries and image already built
#   --keep        keep the scratch directory (logs, serial consoles)
#   TEST_NAME     run only these tests (function names below); only the
#                 images they boot are built
#
# Environment: CARGO_TARGET_DIR (default target/ in the repository),
# PEERPOD_CACHE (see scripts/build-image.sh), TESTS_QEMU_TIMEOUT_SCALE (an
# integer multiplying every wait; default 1, use 2 or 3 on a busy machine).
#
# Prints one line per test and ends with "N passed, N failed".
# Needs root (the image build). QEMU and every host process run in their own
# process groups and are ended on every exit path.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
source "$repo/tests-qemu/lib.sh"

# The image a test boots: test, production (no TEE) or production-sim.
image_of() {
    case "$1" in
    test_production_image_without_a_tee*) echo production ;;
    test_production_services*) echo production-sim ;;
    *) echo test ;;
    esac
}
# image_needed KIND: whether a selected test (every test when none is
# selected) boots that image.
image_needed() {
    ((${#selected[@]})) || return 0
    local name
    for name in "${selected[@]}"; do [[ "$(image_of "$name")" == "$1" ]] && return 0; done
    return 1
}

skip_build=no keep=no selected=() in_netns=no
original_args=("$@")
while (($#)); do
    case "$1" in
    --skip-build) skip_build=yes; shift ;;
    --keep) keep=yes; shift ;;
    --in-netns) in_netns=yes; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) selected+=("$1"); shift ;;
    esac
done

scale=${TESTS_QEMU_TIMEOUT_SCALE:-1}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
IMAGE_DIR=${PEERPOD_CACHE:-/var/cache/peerpod-image}/tests-qemu-image
PRODUCTION_IMAGE_DIR=${PEERPOD_CACHE:-/var/cache/peerpod-image}/tests-qemu-production-image
# The production image built with --test-only-qemu-harness (QEMU TCG has no
# TEE, the tap no DHCP server): the production service files but for
# simulated-TEE provisioning and a fixed address. Tests only.
SIMULATED_PRODUCTION_IMAGE_DIR=${PEERPOD_CACHE:-/var/cache/peerpod-image}/tests-qemu-production-sim-tee-image
POD_ADDRESS=10.0.3.15 POD_MAC=52:54:00:0a:00:0f TAP=pptap0

source "$repo/guest-image/host-setup.sh"
BIN=$target_dir/$(static_target)/release

# Outside the namespace: build (cargo and mkosi need the registries), then
# run this script again inside a fresh namespace, and delete it afterwards.
if [[ "$in_netns" == no ]]; then
    if [[ "$skip_build" == no ]]; then
        BIN=$(build_project_binaries "$repo")
        if image_needed test; then
            log "building the test image"
            "$repo/scripts/build-image.sh" --profile test --binaries "$BIN" --no-measure \
                --output-dir "$IMAGE_DIR" >/dev/null
        fi
        # The production profile needs the user's guest-components and
        # kata-agent; this machine has none, so the project's test doubles
        # stand in, installed under the real names and started by the
        # production service files as they are.
        doubles=${PEERPOD_CACHE:-/var/cache/peerpod-image}/tests-qemu-guest-component-doubles
        mkdir -p "$doubles"
        install -m 0755 "$BIN/attestation-agent-double" "$doubles/attestation-agent"
        install -m 0755 "$BIN/confidential-data-hub-double" "$doubles/confidential-data-hub"
        install -m 0755 "$BIN/api-server-rest-double" "$doubles/api-server-rest"
        install -m 0755 "$BIN/agent-echo" "$doubles/kata-agent"
        if image_needed production; then
            log "building the production image (test doubles for guest-components)"
            "$repo/scripts/build-image.sh" --profile production --binaries "$BIN" --guest-components "$doubles" \
                --no-measure --no-disk --output-dir "$PRODUCTION_IMAGE_DIR" >/dev/null
        fi
        if image_needed production-sim; then
            log "building the production image with the QEMU test harness (simulated TEE; TEST ONLY)"
            "$repo/scripts/build-image.sh" --profile production --binaries "$BIN" --guest-components "$doubles" \
                --test-only-qemu-harness --no-measure --no-disk --output-dir "$SIMULATED_PRODUCTION_IMAGE_DIR" >/dev/null
        fi
    fi
    ensure_qemu_tools
    netns=pp-tests-$$
    ip netns add "$netns"
    trap 'ip netns delete "$netns" 2>/dev/null || true' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    ip netns exec "$netns" "$0" --in-netns "${original_args[@]}"
    exit
fi

for name in pp-adaptor kbs-double; do
    [[ -x "$BIN/$name" ]] || { log "missing $BIN/$name (run without --skip-build)"; exit 1; }
done
if image_needed test && [[ ! -f "$IMAGE_DIR/peerpod-test.initrd" || ! -f "$IMAGE_DIR/peerpod-test.disk.raw" ]]; then
    log "no test image in $IMAGE_DIR (run without --skip-build)"
    exit 1
fi
ip link set lo up
ip tuntap add dev "$TAP" mode tap
ip addr add 10.0.3.1/24 dev "$TAP"
ip link set "$TAP" up

WORK=$(mktemp -d /tmp/tests-qemu.XXXXXX)
on_exit() {
    local status=$?
    cleanup
    close_hook
    if [[ "$keep" == yes || $status -ne 0 ]]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- one world per test: KBS double, adaptor keys, init-data, a pod ---------

# Sets up kbs-double and the adaptor's configuration and keys in $T (this
# test's directory). Variables set: KBS_PORT AGENT_PORT REGISTRY_PORT SID.
# The adaptor's [egress] allows the registry double (started by the tests
# that pull: start_registry) on the namespace's loopback.
setup_world() {
    T=$WORK/$1
    mkdir -p "$T"
    KBS_PORT=$(free_port) AGENT_PORT=$(free_port) REGISTRY_PORT=$(free_port) SID=0123abcd
    ssh-keygen -q -t ed25519 -N '' -C kbs-admin -f "$T/admin" >/dev/null
    spawn KBS_PID "$T/kbs.log" "$BIN/kbs-double" --admin-public-key "$T/admin.pub" \
        --listen "127.0.0.1:$KBS_PORT"
    wait_until $((10 * scale)) "kbs-double to listen" file_has "$T/kbs.log" "listening on" || return 1
    cat >"$T/adaptor.toml" <<EOF
trustee_url = "http://127.0.0.1:$KBS_PORT"
admin_key = "admin"
key_dir = "keys"
state_dir = "state"
control_socket = "control.sock"

[egress]
allow = ["localhost:$REGISTRY_PORT"]
permit_networks = ["127.0.0.1/32"]   # the registry double; a real registry is never here

[[pp]]
sid = "$SID"
forwarder = "$POD_ADDRESS:2222"
init_data_has_wn_key = true
tunnels = ["KUBERNETES_PHASE:KATAAGENT:127.0.0.1:$AGENT_PORT"]
EOF
    "$BIN/pp-adaptor" --config "$T/adaptor.toml" keys init >"$T/wn.pub" 2>>"$T/adaptor-cli.log"
    "$BIN/pp-adaptor" --config "$T/adaptor.toml" keys register 2>>"$T/adaptor-cli.log"
    "$BIN/pp-adaptor" --config "$T/adaptor.toml" pp create --sid "$SID" >/dev/null 2>>"$T/adaptor-cli.log"
    write_initdata "$T/initdata.toml" "$(cat "$T/wn.pub")"
}

# write_initdata FILE WN_PUBLIC_KEY_LINE [without-aa-toml]: init-data with
# the WN key in forwarder.toml and an aa.toml (no cdh.toml: pp-provision
# writes its default); with "without-aa-toml" AA gets the default too.
write_initdata() {
    local q="'''"
    {
        printf 'version = "0.1.0"\nalgorithm = "sha384"\n\n[data]\n'
        [[ "${3:-}" == without-aa-toml ]] ||
            printf '"aa.toml" = %s\n[token_configs]\n[token_configs.kbs]\nurl = "http://127.0.0.1:8080"\n%s\n\n' "$q" "$q"
        printf '"forwarder.toml" = %s\nwn-public-key = "%s"\n%s\n%s\n' "$q" "$2" \
            'inbounds = ["BOTH_PHASES:KBS:8080", "KUBERNETES_PHASE:EGRESS:3128"]' "$q"
    } >"$1"
}

# boot_pod [EXTRA KERNEL ARGS...]: boots the test image with $T/initdata.toml
# on its config drive and the simulated TEE launched with that init-data's
# digest (SNP HOST_DATA: the first 32 bytes of SHA-384). Sets QEMU_PID.
boot_pod() {
    local host_data
    host_data=$(sha384sum "$T/initdata.toml" | cut -c1-64)
    spawn QEMU_PID "$T/qemu.log" "$repo/scripts/run-qemu.sh" --profile test \
        --image-dir "$IMAGE_DIR" --initdata "$T/initdata.toml" --tap "$TAP" --mac "$POD_MAC" \
        --serial-log "$T/serial.log" --test-hook "$T/hook" \
        --append "pp.test.host_data=$host_data $*"
    wait_until $((10 * scale)) "QEMU to create the test-hook pipes" test -p "$T/hook.out" || return 1
    open_hook "$T/hook"
}

start_adaptor() {
    spawn ADAPTOR_PID "$T/adaptor.log" env RUST_LOG=info "$BIN/pp-adaptor" --config "$T/adaptor.toml" serve
}

kubernetes_phase_echo() { echo_round_trip "$AGENT_PORT" "ping-$RANDOM"; }

# A registry TEST DOUBLE: static files at the OCI distribution paths of one
# manifest and its layer, served over HTTPS on the namespace's loopback with
# a certificate for localhost from a CA made here. Sets LAYER_DIGEST and
# REGISTRY_CA (base64 of the CA's PEM, for the guest's client).
start_registry() {
    local root=$T/registry/v2/test/pause tls=$T/registry-tls
    mkdir -p "$root/manifests" "$root/blobs" "$tls"
    printf 'not really a tar layer %s\n' "$RANDOM" >"$T/layer"
    LAYER_DIGEST=sha256:$(sha256sum "$T/layer" | cut -c1-64)
    cp "$T/layer" "$root/blobs/$LAYER_DIGEST"
    printf '{"schemaVersion":2,"layers":[{"digest":"%s"}]}' "$LAYER_DIGEST" >"$root/manifests/latest"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=test-registry-CA -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
            -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null &&
        openssl x509 -req -days 2 -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
            -CAcreateserial -extfile <(printf 'subjectAltName=DNS:localhost\n') -out "$tls/server.pem" 2>/dev/null ||
        fail "openssl could not make the registry's certificates" || return 1
    REGISTRY_CA=$(base64 -w0 "$tls/ca.pem")
    spawn REGISTRY_PID "$T/registry.log" python3 -u -c '
import functools, http.server, ssl, sys
port, root, cert, key = sys.argv[1:]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("serving https", flush=True)
server.serve_forever()' "$REGISTRY_PORT" "$T/registry" "$tls/server.pem" "$tls/server.key"
    wait_until $((10 * scale)) "the registry double to listen" \
        file_has "$T/registry.log" "serving https" || return 1
}

# pull_through_egress: from inside the pod, the manifest and its layer
# through the EGRESS tunnel (the layer's digest checked here), and a host
# off the adaptor's allow-list refused with the reason.
pull_through_egress() {
    local manifest layer refused
    manifest=$(hook "egress-get localhost:$REGISTRY_PORT /v2/test/pause/manifests/latest $REGISTRY_CA") ||
        fail "egress: no manifest ($manifest)" || return 1
    [[ "$manifest" == *"HTTP/1.0 200 OK"* && "$manifest" == *"$LAYER_DIGEST"* ]] ||
        fail "egress: unexpected manifest answer: $manifest" || return 1
    layer=$(hook "egress-get localhost:$REGISTRY_PORT /v2/test/pause/blobs/$LAYER_DIGEST $REGISTRY_CA") ||
        fail "egress: no layer ($layer)" || return 1
    [[ "$layer" == *"$(cat "$T/layer")"* ]] || fail "egress: the layer differs: $layer" || return 1
    refused=$(hook "egress-connect registry.invalid:443") || true
    [[ "$refused" == *"403 Forbidden"* && "$refused" == *"not in the worker node's egress allow-list"* ]] ||
        fail "egress: registry.invalid was not refused: $refused" || return 1
    log "egress: manifest and layer pulled over TLS through the tunnel; registry.invalid refused"
}
attest_count() { grep -c 'POST /kbs/v0/attest' "$T/kbs.log" || true; }

# --- the tests --------------------------------------------------------------

# Boot, attestation through the tunnel, upgrade, Kubernetes phase, and a
# byte round trip to the in-guest kata-agent double; an image pull from
# inside the pod through the EGRESS tunnel; the guest exposes only
# the forwarder; then the forwarder is killed inside the guest, restarted by
# pp-init, and the adaptor is back in the Kubernetes phase without a new
# attestation. (One boot: TCG boots are the expensive part.)
test_two_phase_flow_reaches_the_agent_and_survives_a_forwarder_restart() {
    setup_world two-phase || return 1
    boot_pod || return 1
    start_adaptor
    wait_until $((240 * scale)) "the adaptor to reach the Kubernetes phase" \
        file_has "$T/adaptor.log" "Kubernetes phase: connected" || return 1
    file_has "$T/adaptor.log" "attestation phase: connected" ||
        fail "the adaptor never saw the attestation phase" || return 1
    wait_until $((30 * scale)) "a KATAAGENT round trip to agent-echo" kubernetes_phase_echo || return 1
    log "two-phase flow done; KATAAGENT echo works"
    start_registry || return 1
    pull_through_egress || return 1

    hook listeners >"$T/listeners.txt" || fail "test hook: listeners" || return 1
    non_loopback_listeners <"$T/listeners.txt" >"$T/exposed.txt"
    if [[ "$(cat "$T/exposed.txt")" != "tcp 00000000:2222" ]]; then
        fail "only the forwarder (0.0.0.0:2222) may listen beyond loopback; found: $(tr '\n' ';' <"$T/exposed.txt")"
        return 1
    fi
    hook firewall >"$T/firewall.txt" || fail "test hook: firewall" || return 1
    grep -q 'tcp dport 2222 accept' "$T/firewall.txt" && grep -q 'policy drop' "$T/firewall.txt" ||
        fail "the nftables ruleset is not in force" || return 1
    # The kernel asks pp-init's kmod for modules on demand (the image has no
    # /sbin/modprobe); the NIC's and the firewall's modules are loaded.
    hook modules >"$T/modules.txt" || fail "test hook: modules ($(tr '\n' ';' <"$T/modules.txt"))" || return 1
    [[ "$(head -n1 "$T/modules.txt")" == /usr/lib/pp-init/modprobe ]] ||
        fail "kernel.modprobe is '$(head -n1 "$T/modules.txt")', not pp-init's" || return 1
    local module
    for module in virtio_net nf_tables nft_ct nft_reject_inet; do
        grep -qx "$module" "$T/modules.txt" || fail "module $module is not loaded" || return 1
    done

    local attests_before old_pid new_pid connects_before
    attests_before=$(attest_count)
    connects_before=$(grep -c "Kubernetes phase: connected" "$T/adaptor.log")
    old_pid=$(hook forwarder-pid)
    hook kill-forwarder >/dev/null || fail "test hook: kill-forwarder" || return 1
    forwarder_restarted() {
        new_pid=$(hook forwarder-pid) && [[ "$new_pid" != 0 && "$new_pid" != "$old_pid" ]]
    }
    wait_until $((30 * scale)) "pp-init to restart the forwarder" forwarder_restarted || return 1
    log "forwarder restarted (pid $old_pid -> $new_pid)"
    reconnected() { (($(grep -c "Kubernetes phase: connected" "$T/adaptor.log") > connects_before)); }
    wait_until $((90 * scale)) "the adaptor to reconnect in the Kubernetes phase" reconnected || return 1
    wait_until $((30 * scale)) "a KATAAGENT round trip after the restart" kubernetes_phase_echo || return 1
    [[ "$(attest_count)" == "$attests_before" ]] ||
        fail "the restarted forwarder attested again ($attests_before -> $(attest_count) attest requests)"
}

# While one WN holds the attestation phase, a second client is refused; and
# since the attestation never completes, the pod powers itself off at the
# attestation deadline (QEMU exits).
test_a_second_attestation_client_is_refused_and_the_deadline_powers_off() {
    setup_world second-client || return 1
    local deadline=$((60 * scale))
    boot_pod "PP_ATTESTATION_DEADLINE=${deadline}s" || return 1
    local key=$T/keys/wn ssh_opts=(-p 2222 -o BatchMode=yes -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o ConnectTimeout=20 -o LogLevel=ERROR)
    # The first client keeps its stdin open (sleep) and so its session.
    first_client() {
        local pid
        spawn pid "$T/first.err" bash -c 'sleep 3600 | exec ssh "$@" >"$0"' "$T/first.mux" \
            -i "$key" "${ssh_opts[@]}" -s "peerpod@$POD_ADDRESS" pp-mux-v1
        wait_until -q 20 "the first client's HELLO" test -s "$T/first.mux" && return 0
        stop_group "$pid"
        return 1
    }
    # The forwarder may not be up yet: retry the first client until it is in.
    wait_until $((deadline - 10)) "the first attestation client to be admitted" first_client || return 1
    log "first attestation-phase client admitted (HELLO received)"
    if timeout 30 ssh -i "$key" "${ssh_opts[@]}" -s "peerpod@$POD_ADDRESS" pp-mux-v1 </dev/null >"$T/second.mux" 2>"$T/second.err"; then
        fail "a second attestation-phase client was admitted"
        return 1
    fi
    [[ ! -s "$T/second.mux" ]] || fail "the second client got mux bytes" || return 1
    log "second client refused: $(tr '\n' ' ' <"$T/second.err")"
    wait_until $((deadline + 60 * scale)) "the pod to power off at the attestation deadline" \
        process_gone "$QEMU_PID" || return 1
}

# No WN ever connects: the pod powers itself off at the attestation deadline.
test_with_no_wn_the_pod_powers_off_at_the_attestation_deadline() {
    setup_world no-wn || return 1
    local started=$SECONDS deadline=$((30 * scale))
    boot_pod "PP_ATTESTATION_DEADLINE=${deadline}s" || return 1
    wait_until $((deadline + 150 * scale)) "the pod to power off" process_gone "$QEMU_PID" || return 1
    grep -q -i -E 'deadline|power' "$T/serial.log" ||
        fail "QEMU exited but the console shows no deadline power-off" || return 1
    log "powered off $((SECONDS - started)) s after QEMU start"
}

# The config drive carries init-data that differs from the launched one
# (someone swapped the WN key in user-data): pp-provision finds HOST_DATA
# and the digest apart, writes nothing, and powers the pod off long before
# the (large) attestation deadline; the forwarder never starts.
test_tampered_initdata_stops_the_forwarder_from_starting() {
    setup_world tampered || return 1
    local launched started=$SECONDS
    launched=$(sha384sum "$T/initdata.toml" | cut -c1-64)
    ssh-keygen -q -t ed25519 -N '' -C intruder -f "$T/intruder" >/dev/null
    write_initdata "$T/tampered.toml" "$(cat "$T/intruder.pub")"
    spawn QEMU_PID "$T/qemu.log" "$repo/scripts/run-qemu.sh" --profile test \
        --image-dir "$IMAGE_DIR" --initdata "$T/tampered.toml" --tap "$TAP" --mac "$POD_MAC" \
        --serial-log "$T/serial.log" --test-hook "$T/hook" \
        --append "pp.test.host_data=$launched PP_ATTESTATION_DEADLINE=3600s"
    wait_until $((300 * scale)) "pp-provision to power the pod off" process_gone "$QEMU_PID" || return 1
    if timeout 5 bash -c "exec 3<>/dev/tcp/$POD_ADDRESS/2222" 2>/dev/null; then
        fail "something still answers on the pod's SSH port" || return 1
    fi
    log "pod powered off $((SECONDS - started)) s after QEMU start (attestation deadline was 3600 s)"
}

# The production image, booted where there is no TEE (with the test doubles
# for guest-components): pp-provision finds no TEE evidence, pp-init powers
# the pod off, and nothing after pp-provision ever starts.
test_production_image_without_a_tee_powers_off_after_provisioning_fails() {
    T=$WORK/production
    mkdir -p "$T"
    ssh-keygen -q -t ed25519 -N '' -C wn -f "$T/wn" >/dev/null
    write_initdata "$T/initdata.toml" "$(cat "$T/wn.pub")"
    spawn QEMU_PID "$T/qemu.log" "$repo/scripts/run-qemu.sh" --profile production \
        --image-dir "$PRODUCTION_IMAGE_DIR" --initdata "$T/initdata.toml" --tap "$TAP" --mac "$POD_MAC" \
        --serial-log "$T/serial.log"
    wait_until $((300 * scale)) "the production pod to power off" process_gone "$QEMU_PID" || return 1
    grep -q 'pp-init: .*started pp-provision' "$T/serial.log" ||
        fail "the console does not show pp-provision starting" || return 1
    grep -q 'pp-init: .*powering off: pp-provision exited with status' "$T/serial.log" ||
        fail "the pod did not power off because of pp-provision" || return 1
    if grep -E 'pp-init: .*started (attestation-agent|confidential-data-hub|api-server-rest|pp-forwarder|kata-agent)' "$T/serial.log"; then
        fail "a service after pp-provision started" || return 1
    fi
}

# The production image's service files, with the project's doubles of AA,
# CDH, api-server-rest and the kata-agent as the separate processes they
# start (and, TEST ONLY, a simulated TEE for provisioning and a fixed
# address on the tap: build-image.sh --test-only-qemu-harness); init-data has no
# aa.toml and no cdh.toml, and AA starts 12 s late. pp-provision writes the
# default configurations; pp-init starts CDH only once AA's socket accepts
# (CDH never exits), api-server-rest once CDH's does, the forwarder once
# api-server-rest listens; the adaptor reaches the Kubernetes phase (the
# forwarder's keys come through api-server-rest -> CDH -> the KBS tunnel)
# and the kata-agent double. One boot covers both cases.
test_production_services_wait_for_a_slow_aa_and_default_configs_reach_the_kubernetes_phase() {
    setup_world production-services || return 1
    write_initdata "$T/initdata.toml" "$(cat "$T/wn.pub")" without-aa-toml
    local host_data aa_delay_ms=12000
    host_data=$(sha384sum "$T/initdata.toml" | cut -c1-64)
    spawn QEMU_PID "$T/qemu.log" "$repo/scripts/run-qemu.sh" --profile production \
        --image-dir "$SIMULATED_PRODUCTION_IMAGE_DIR" --initdata "$T/initdata.toml" --tap "$TAP" --mac "$POD_MAC" \
        --serial-log "$T/serial.log" \
        --append "pp.test.host_data=$host_data pp.test.aa_start_delay_ms=$aa_delay_ms"
    start_adaptor
    # A pod that powers off (e.g. CDH racing AA) ends the wait at once.
    phase_reached_or_pod_gone() {
        file_has "$T/adaptor.log" "Kubernetes phase: connected" || process_gone "$QEMU_PID"
    }
    wait_until $((240 * scale)) "the adaptor to reach the Kubernetes phase" phase_reached_or_pod_gone || return 1
    file_has "$T/adaptor.log" "Kubernetes phase: connected" ||
        fail "the pod powered off: $(grep -a 'powering off' "$T/serial.log")" || return 1
    wait_until $((30 * scale)) "a KATAAGENT round trip to the kata-agent double" kubernetes_phase_echo || return 1
    local serial=$T/serial.log expected
    for expected in \
        "pp-provision: init-data has no aa.toml: wrote the default" \
        "pp-provision: init-data has no cdh.toml: wrote the default" \
        "attestation-agent-double: starting in $aa_delay_ms ms" \
        "attestation-agent.sock is ready" \
        "cdh.sock is ready" \
        "TCP port 127.0.0.1:8006 is ready" \
        "api-server-rest-double: GET /cdh/resource/.* -> 200"; do
        grep -q -- "$expected" "$serial" || fail "the console does not show: $expected" || return 1
    done
    if grep -E 'pp-init: .*(attestation-agent|confidential-data-hub|api-server-rest|pp-forwarder) \(pid [0-9]+\) (exited|was killed)' "$serial"; then
        fail "a guest-component service or the forwarder ended (a race, not an order)" || return 1
    fi
    # The start order on the console: AA listening, then CDH, then
    # api-server-rest, then the forwarder.
    local previous=0 line what
    for what in "attestation-agent-double listening on" "started confidential-data-hub" \
        "started api-server-rest" "started pp-forwarder"; do
        line=$(grep -n -m1 -- "$what" "$serial" | cut -d: -f1)
        [[ -n "$line" && "$line" -gt "$previous" ]] ||
            fail "'$what' is not after the step before it on the console" || return 1
        previous=$line
    done
}

# The cloud disk image (GPT, the UKI as the ESP's \EFI\BOOT\BOOTX64.EFI),
# whose VHD and GCP forms hold the same bytes, boots through OVMF from the disk alone, as a vTPM cloud boots it (no
# -kernel: the firmware finds the removable-media boot entry), and the
# forwarder answers with its SSH banner. The simulated TEE's HOST_DATA
# reaches the sealed command line as an SMBIOS type 11 string that
# systemd-stub appends (run-qemu.sh --disk --append; Secure Boot is off).
test_raw_disk_boots_through_ovmf_to_the_forwarder_banner() {
    T=$WORK/disk
    mkdir -p "$T"
    ssh-keygen -q -t ed25519 -N '' -C wn -f "$T/wn" >/dev/null
    write_initdata "$T/initdata.toml" "$(cat "$T/wn.pub")"
    local host_data started=$SECONDS banner= disk=$IMAGE_DIR/peerpod-test
    # The Azure and GCP forms hold the same disk (qemu-img also checks the
    # VHD footer's checksum).
    qemu-img compare -q -f raw -F vpc "$disk.disk.raw" "$disk.vhd" ||
        fail "$disk.vhd does not hold the raw disk" || return 1
    [[ "$(tar -tzf "$disk.gcp.tar.gz")" == disk.raw ]] ||
        fail "$disk.gcp.tar.gz must hold disk.raw alone" || return 1
    tar -xOzf "$disk.gcp.tar.gz" disk.raw | cmp -s - "$disk.disk.raw" ||
        fail "$disk.gcp.tar.gz's disk.raw differs from the raw disk" || return 1
    log "VHD and GCP tar.gz hold the raw disk ($((SECONDS - started)) s)"
    started=$SECONDS
    host_data=$(sha384sum "$T/initdata.toml" | cut -c1-64)
    spawn QEMU_PID "$T/qemu.log" "$repo/scripts/run-qemu.sh" --profile test --disk \
        --image-dir "$IMAGE_DIR" --initdata "$T/initdata.toml" --tap "$TAP" --mac "$POD_MAC" \
        --serial-log "$T/serial.log" --append "pp.test.host_data=$host_data"
    forwarder_banner() {
        { exec 7<>"/dev/tcp/$POD_ADDRESS/2222"; } 2>/dev/null || return 1
        IFS= read -r -t 5 banner <&7 || true
        exec 7>&- 7<&-
        [[ "$banner" == SSH-2.0-* ]]
    }
    banner_or_pod_gone() { forwarder_banner || process_gone "$QEMU_PID"; }
    wait_until $((240 * scale)) "the forwarder's SSH banner from the disk boot" banner_or_pod_gone || return 1
    [[ "$banner" == SSH-2.0-* ]] ||
        fail "QEMU ended before the banner: $(grep -a -E 'powering off|error' "$T/serial.log" | head -n3)" || return 1
    grep -a -q 'BdsDxe: starting Boot[0-9A-F]* "UEFI Misc Device"' "$T/serial.log" ||
        fail "the console does not show OVMF starting the disk's boot entry" || return 1
    grep -a -q 'pp-provision: .*matches SNP HOST_DATA' "$T/serial.log" ||
        fail "pp-provision did not see the HOST_DATA passed through SMBIOS" || return 1
    log "banner '${banner%$'\r'}' $((SECONDS - started)) s after QEMU start"
}

all_tests=(
    test_production_image_without_a_tee_powers_off_after_provisioning_fails
    test_production_services_wait_for_a_slow_aa_and_default_configs_reach_the_kubernetes_phase
    test_tampered_initdata_stops_the_forwarder_from_starting
    test_two_phase_flow_reaches_the_agent_and_survives_a_forwarder_restart
    test_a_second_attestation_client_is_refused_and_the_deadline_powers_off
    test_with_no_wn_the_pod_powers_off_at_the_attestation_deadline
    test_raw_disk_boots_through_ovmf_to_the_forwarder_banner
)
((${#selected[@]})) || selected=("${all_tests[@]}")

passed=0 failed=0
for name in "${selected[@]}"; do
    declare -F "$name" >/dev/null || { log "no such test: $name"; failed=$((failed + 1)); continue; }
    log "RUN  $name"
    started=$SECONDS
    if (set +e; trap cleanup EXIT; "$name"); then
        passed=$((passed + 1))
        echo "ok   $name ($((SECONDS - started)) s)"
    else
        failed=$((failed + 1))
        echo "FAIL $name ($((SECONDS - started)) s; logs in $WORK)"
        keep=yes
    fi
    cleanup
done
echo "$passed passed, $failed failed"
((failed == 0))
