#!/usr/bin/env bash
# The test suite: everything CI runs (.ci/run calls exactly this). Installs
# what it needs; safe to run twice.
#
#   1. style: rustfmt and clippy (-D warnings) on the whole workspace
#   2. cargo test of every crate, including the loopback end-to-end tests
#      (forwarder + adaptor + test doubles, OpenSSH interop, races, restarts)
#   3. pp-measure against the reference tools (sev-snp-measure, pesign, ...)
#   4. pp-provision's privileged checks (loop-device config drive, metadata
#      doubles inside a network namespace)
#   4b. a short run of every fuzz target from its seed corpus (about 4 min
#      to build, 5 s per target)
#   5. the guest image: build it and boot it under QEMU (TCG) for the
#      end-to-end tests in tests-qemu/
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
"$repo/scripts/install-deps.sh"

section() { printf '\n==== %s\n' "$*"; }

section "style: cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all --check
cargo clippy --workspace --all-targets -q -- -D warnings

section "the trusted core: at most 1,500 lines, builds without std (x86_64-unknown-none)"
"$repo/scripts/core-size.sh" | tail -1
# The serial curve25519 backend: the target has no SIMD, and the simd
# backend crashes LLVM there. About 10 s.
rustup target add x86_64-unknown-none >/dev/null
RUSTFLAGS='--cfg curve25519_dalek_backend="serial"' \
    cargo build -q -p pp-forwarder-core --target x86_64-unknown-none

section "build every binary (the end-to-end tests run them)"
cargo build --workspace --bins -q

section "cargo test (unit, integration and loopback end-to-end tests)"
cargo test --workspace -q 2>&1 | tee "${TMPDIR:-/tmp}/pp-cargo-test.log"

section "pp-measure against the reference tools"
"$repo/scripts/measure-test.sh"

section "pp-provision privileged checks"
"$repo/scripts/provision-test.sh"

section "fuzzing: every target in fuzz/fuzz_targets, 5 s each (scripts/fuzz.sh --ci)"
"$repo/scripts/fuzz.sh" --ci

section "guest image under QEMU (TCG)"
"$repo/tests-qemu/run.sh"
