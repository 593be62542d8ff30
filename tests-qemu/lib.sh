# tests-qemu/lib.sh: helpers for the end-to-end tests (sourced by run.sh).
#
# Owns: starting and stopping the host-side processes (kbs-double, pp-adaptor,
# QEMU), each in its own process group so that cleanup() ends them with all
# their children on every exit path; talking to the guest's test hook; small
# waiting and assertion helpers. Every wait has a deadline; nothing here
# sleeps without one.
#
# Conventions: $WORK is this run's scratch directory; $BIN the directory
# holding the project's binaries; $IMAGE_DIR the test image. A test is a
# shell function named test_<sentence>; it returns non-zero (or calls fail)
# to fail.

# Process groups to end are listed in $WORK/pgids (a file, so that groups
# started inside subshells are ended too).

log() { printf '[tests-qemu %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() { log "FAIL: $*"; return 1; }

# spawn VAR LOGFILE CMD ARGS...: starts CMD in a new session (its own
# process group) with its output in LOGFILE, and stores its PID (= PGID) in
# VAR.
spawn() {
    local var=$1 logfile=$2; shift 2
    setsid "$@" >"$logfile" 2>&1 </dev/null &
    printf -v "$var" '%s' "$!"
    printf '%s\n' "$!" >>"$WORK/pgids"
}

# Ends one spawned process group (TERM, then KILL after 5 s).
stop_group() {
    local pgid=$1 waited=0
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    while kill -0 -- "-$pgid" 2>/dev/null && ((waited < 50)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    wait "$pgid" 2>/dev/null || true
}

cleanup() {
    local pgid
    [[ -f "$WORK/pgids" ]] || return 0
    while read -r pgid; do stop_group "$pgid"; done <"$WORK/pgids"
    rm -f "$WORK/pgids"
}

# A loopback TCP port nobody listens on.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return
        fi
    done
}

# wait_until [-q] SECONDS DESCRIPTION CMD...: runs CMD every 0.5 s until it
# succeeds or SECONDS pass (then logs a failure, unless -q).
wait_until() {
    local quiet=no
    [[ "$1" == -q ]] && { quiet=yes; shift; }
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            [[ "$quiet" == yes ]] || fail "timed out after ${seconds}s waiting for: $what"
            return 1
        fi
        sleep 0.5
    done
}

file_has() { grep -q -- "$2" "$1" 2>/dev/null; }
process_gone() { ! kill -0 "$1" 2>/dev/null; }

# Sends bytes through a loopback TCP port and expects them echoed back.
# Usage: echo_round_trip PORT PAYLOAD
echo_round_trip() {
    local port=$1 payload=$2 reply=
    { exec 7<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
    printf '%s' "$payload" >&7
    IFS= read -r -t 10 -N "${#payload}" reply <&7 || true
    exec 7>&- 7<&-
    [[ "$reply" == "$payload" ]]
}

# --- the guest's test hook (a virtio serial port piped to PIPE.in / PIPE.out) ---

# Opens the hook's FIFOs for the whole boot (fds 8: to the guest, 9: from the
# guest). Keeping them open means reads never see EOF between commands.
open_hook() {
    exec 8<>"$1.in" 9<>"$1.out"
}
close_hook() {
    exec 8>&- 9<&- 2>/dev/null || true
}

# hook COMMAND: sends COMMAND to the guest, prints its output; fails on a
# non-zero status or when no answer comes within 30 s. Each request carries
# a fresh id, so answers to earlier requests that timed out are skipped.
hook() {
    local command=$1 id="$RANDOM$RANDOM" line status= inside=no
    printf '%s %s\n' "$id" "$command" >&8
    while IFS= read -r -t 30 line <&9; do
        line=${line%$'\r'}
        if [[ "$inside" == no ]]; then
            [[ "$line" == "--BEGIN $id--" ]] && inside=yes
            continue
        fi
        if [[ "$line" =~ ^--END\ ${id}\ ([0-9]+)--$ ]]; then
            status=${BASH_REMATCH[1]}
            break
        fi
        printf '%s\n' "$line"
    done
    [[ "$status" == 0 ]]
}

# Reads the hook's "listeners" output (lines "tcp|tcp6|udp|udp6 <a
# /proc/net line>") and prints the sockets bound to an address other than
# loopback: TCP sockets in state LISTEN (0A), and every bound UDP socket but
# the DHCP client's (port 68, which only the firewall's DHCP rule reaches).
non_loopback_listeners() {
    awk '
        $1 !~ /^(tcp|udp)6?$/ || $3 !~ /:/ || $2 == "sl" { next }
        {
            proto = $1; split($3, local, ":"); addr = local[1]; port = local[2]; state = $5
            if (proto ~ /^tcp/ && state != "0A") next
            if (proto ~ /^udp/ && port == "0044") next
            if (length(addr) == 8 && addr ~ /7F$/) next
            if (addr == "00000000000000000000000001000000") next
            print proto, addr, port
        }
    ' | while read -r proto addr port; do printf '%s %s:%d\n' "$proto" "$addr" "$((16#$port))"; done
}
