#!/usr/bin/env bash
# The benchmark harness in quick mode (a few seconds per scenario): proves every
# scenario still runs end to end and prints the table. It asserts no figure; it
# fails only when a scenario cannot run. BENCHMARKS.md has the full run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

if ! command -v wrk >/dev/null; then
    echo "installing: wrk"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
fi

echo "== cargo build --release (bench harness and the service binaries footprint runs)"
# The same package set as .ci/containers.sh builds, so features unify the same way
# and that build finds everything compiled.
cargo build --release --locked --bins -p pixpress-bench \
    -p pixpress-print -p pixpress-download -p pixpress-management -p pixpress-printer-sim \
    -p pixpress-ipp-gateway -p pixpress-embedded

echo "== pixpress-bench all --quick"
cargo run --release -p pixpress-bench --locked -- all --quick
