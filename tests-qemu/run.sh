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
                --no-measure --output-dir "$PRODUCTION_IMAGE_DIR" >/dev/null
        fi
        if image_needed production-sim; then
            log "building the production image with the QEMU test harness (simulated TEE; TEST ONLY)"
            "$repo/scripts/build-image.sh" --profile production --binaries "$BIN" --guest-components "$doubles" \
                --test-only-qemu-harness --no-measure --output-dir "$SIMULATED_PRODUCTION_IMAGE_DIR" >/dev/null
        fi
    fi
    command -v qemu-system-x86_64 >/dev/null || ensure_qemu_tools
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
if image_needed test && [[ ! -f "$IMAGE_DIR/peerpod-test.initrd" ]]; then
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
# test's directory). Variables set: KBS_PORT AGENT_PORT SID.
setup_world() {
    T=$WORK/$1
    mkdir -p "$T"
    KBS_PORT=$(free_port) AGENT_PORT=$(free_port) SID=0123abcd
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
        printf '"forwarder.toml" = %s\nwn-public-key = "%s"\n%s\n' "$q" "$2" "$q"
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
attest_count() { grep -c 'POST /kbs/v0/attest' "$T/kbs.log" || true; }

# --- the tests --------------------------------------------------------------

# Boot, attestation through the tunnel, upgrade, Kubernetes phase, and a
# byte round trip to the in-guest kata-agent double; the guest exposes only
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

all_tests=(
    test_production_image_without_a_tee_powers_off_after_provisioning_fails
    test_production_services_wait_for_a_slow_aa_and_default_configs_reach_the_kubernetes_phase
    test_tampered_initdata_stops_the_forwarder_from_starting
    test_two_phase_flow_reaches_the_agent_and_survives_a_forwarder_restart
    test_a_second_attestation_client_is_refused_and_the_deadline_powers_off
    test_with_no_wn_the_pod_powers_off_at_the_attestation_deadline
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
