#!/usr/bin/env bash
# The watch-cache, codec and security-chain benchmarks in their short mode (CI): small samples,
# short measurement, 10k objects for the list/paging benches, one line per benchmark on stdout:
#   test dispatch/all_watchers/10000 ... bench:      725740 ns/iter (+/- 5120)
#
#   bash benches/run.sh                      # everything, short mode
#   bash benches/run.sh dispatch             # only benchmarks whose name matches "dispatch"
#   FULL=1 bash benches/run.sh               # criterion's defaults, 100k objects (minutes)
#   KAPI_BENCH_OBJECTS=100000 bash benches/run.sh list
#
# Criterion's estimates stay in target/criterion/<group>/<bench>/new/estimates.json.
# benches/cache_memory.rs is not criterion: it prints `cache_memory: ...` lines (bytes the watch
# cache holds for 100k 1 KB objects against their wire bytes; about a second).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FULL:-}" ]; then
    export KAPI_BENCH_QUICK=1
fi
exec cargo bench --bench watch_cache --bench codec --bench security_chain --bench cache_memory \
    -- --output-format bencher "$@"
