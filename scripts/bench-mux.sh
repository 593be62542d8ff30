#!/bin/sh
# Throughput of the pp-mux-v1 tokio driver over an in-memory pipe (no SSH,
# no sockets): prints a markdown table. Uses the workspace release profile.
set -eu
cd "$(dirname "$0")/.."
exec cargo run --quiet --release -p pp-tunnel --example mux_throughput
