#!/bin/sh
# Deletion -> restored latency of `hostguard guard` (p50/p95/p99 over 200 deletions, each at
# least 200 ms after the previous restore), with settle 0 and the default 100 ms; goal p99 <=
# settle + 20 ms. Runs as root, entirely inside throwaway network namespaces.
# Usage: scripts/bench-guard.sh [RUNS]   (default 200)
set -eu
cd "$(dirname "$0")/.."
HG_BENCH_RUNS="${1:-200}" exec cargo test --release --quiet --test suite guard_bench:: -- \
    --ignored --nocapture --test-threads=1
