#!/usr/bin/env bash
# Idle watcher cost (issue 4): kapi's RSS per idle watch, over HTTP/1.1 (one TLS connection per
# watcher, the kubelet pattern) and over HTTP/2 (STREAMS watch streams per connection, the
# client-go pattern), each on a fresh kapi.
#
#   bash loadtest/run-idle-watchers.sh                     # 5000 watchers
#   WATCHERS=10000 HOLD=10 bash loadtest/run-idle-watchers.sh
#
# For each protocol: kapi (release build, embedded store, temp dir) starts; once /readyz is ok
# and 3 s have passed, `kapi-loadgen --hold HOLD` reads kapi's RSS, opens WATCHERS watches of
# configmaps in all namespaces, writes nothing, reads the RSS again after HOLD seconds, closes them
# and reads it once more. KiB per watcher = (RSS with − RSS before) / watchers.
#
# Variables: WATCHERS (5000), HOLD (5 s), STREAMS (100), PROTOCOLS ("http1 http2"),
# SKIP_BUILD=1. Reports are kept in $WORK/idle-<protocol>.json.
set -euo pipefail
cd "$(dirname "$0")/.."

WATCHERS=${WATCHERS:-5000}
HOLD=${HOLD:-5}
STREAMS=${STREAMS:-100}
PROTOCOLS=${PROTOCOLS:-http1 http2}

# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
lib_init idle-watchers
build_release kapi kapi-loadgen

for http in $PROTOCOLS; do
    start_kapi "$WORK/kapi-$http"
    wait_readyz "$WORK/kapi-$http"
    sleep 3
    echo "== $http: $WATCHERS idle watchers" >&2
    "$LOADGEN" --data-dir="$WORK/kapi-$http" --http="$http" --streams-per-conn="$STREAMS" \
        --watchers="$WATCHERS" --hold="$HOLD" --server-pid="$KAPI_PID" \
        | tail -n1 >"$WORK/idle-$http.json"
    stop_pid "$KAPI_PID"
done

for http in $PROTOCOLS; do
    jq -c '{http, watchers, connected: .watchers_connected,
            connections: (if .http == "http2" then ((.watchers_connected + .streams_per_conn - 1) / .streams_per_conn | floor) else .watchers_connected end),
            rss_before_kib: .idle[0].rss_before_kib, rss_with_kib: .idle[0].rss_with_watchers_kib,
            rss_after_close_kib: .idle[0].rss_after_close_kib,
            kib_per_watcher: .idle[0].kib_per_watcher, connect_s}' "$WORK/idle-$http.json"
done
echo "reports: $WORK/idle-*.json" >&2
