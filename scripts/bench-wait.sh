#!/bin/sh
# Reaction time of a waiting ADD: from the waitFor address appearing to ADD exiting (the
# goal <= 20 ms median). Runs as root, entirely inside throwaway network namespaces.
# Usage: scripts/bench-wait.sh [RUNS]   (default 30)
set -eu
cd "$(dirname "$0")/.."
HG_BENCH_RUNS="${1:-30}" exec cargo test --release --quiet --test suite wait_bench:: -- \
    --ignored --nocapture --test-threads=1
