#!/usr/bin/env bash
# Watch fan-out: kapi against etcd serving the same watchers directly, in one run.
#
#   bash loadtest/run-watch-bench.sh                      # 2000 watchers, 50 writes/s, 20 s
#   WATCHERS=10000 RATE=100 DURATION=30 bash loadtest/run-watch-bench.sh
#   HTTP=http2 bash loadtest/run-watch-bench.sh           # kapi watchers over HTTP/2
#   STORE=embedded bash loadtest/run-watch-bench.sh       # kapi on its embedded store
#
# It builds kapi and kapi-loadgen (release), starts a throwaway etcd (random loopback ports, temp
# dir) and kapi on it (or on its embedded store), runs the generator against kapi, stops kapi,
# runs the generator against etcd directly (the same number of etcd watch streams on the same
# prefix, writes as etcd puts), and prints both reports and the ratio of deliveries per
# server-CPU-second. kapi's server CPU is kapi's own (on etcd, etcd's share is reported
# separately as kapi_plus_etcd). Everything listens on 127.0.0.1 and is removed at the end.
#
# Variables: WATCHERS, RATE (writes/s), DURATION (s), OBJECTS, KIND (configmaps|pods), HTTP
# (http1|http2), STORE (etcd|embedded), NODES (>0: kapi watchers select pods by spec.nodeName;
# KIND=pods; the etcd run then watches the whole prefix), EXTRA (more loadgen flags),
# OUT (directory for the JSON reports; default a temp dir), SKIP_BUILD=1 (use the binaries in
# target/release as they are).
set -euo pipefail
cd "$(dirname "$0")/.."

WATCHERS=${WATCHERS:-2000}
RATE=${RATE:-50}
DURATION=${DURATION:-20}
OBJECTS=${OBJECTS:-100}
KIND=${KIND:-configmaps}
HTTP=${HTTP:-http1}
STORE=${STORE:-etcd}
NODES=${NODES:-0}
EXTRA=${EXTRA:-}
# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
lib_init watch-bench
OUT=${OUT:-$WORK}
mkdir -p "$OUT"
build_release kapi kapi-loadgen

start_etcd
STORE_ARGS=()
[ "$STORE" = etcd ] && STORE_ARGS=(--etcd-servers="$ETCD_URL")
start_kapi "$WORK/kapi" "${STORE_ARGS[@]}"

COMMON=(--watchers="$WATCHERS" --rate="$RATE" --duration="$DURATION" --objects="$OBJECTS" --kind="$KIND")
KAPI_PIDS=$KAPI_PID
[ "$STORE" = etcd ] && KAPI_PIDS="$KAPI_PID,$ETCD_PID"
NODE_ARGS=()
[ "$NODES" != 0 ] && NODE_ARGS=(--nodes="$NODES")

echo "== kapi ($HTTP, store $STORE): $WATCHERS watchers, $RATE writes/s, ${DURATION}s" >&2
# shellcheck disable=SC2086
"$LOADGEN" --target=kapi --kubeconfig="$WORK/kapi/admin.kubeconfig" --http="$HTTP" \
    "${COMMON[@]}" "${NODE_ARGS[@]}" --server-pid="$KAPI_PIDS" $EXTRA | tail -n1 >"$OUT/kapi.json"
stop_pid "$KAPI_PID"

echo "== etcd directly: $WATCHERS watch streams, $RATE puts/s, ${DURATION}s" >&2
# shellcheck disable=SC2086
"$LOADGEN" --target=etcd --etcd-endpoint="$ETCD_URL" "${COMMON[@]}" --server-pid="$ETCD_PID" $EXTRA \
    | tail -n1 >"$OUT/etcd.json"

jq -n --slurpfile k "$OUT/kapi.json" --slurpfile e "$OUT/etcd.json" '
  ($k[0]) as $k | ($e[0]) as $e |
  def per(r; cpu): if cpu > 0 then (r.deliveries / cpu) else null end;
  {
    kapi: {deliveries: $k.deliveries, missed: $k.missed, duplicated: $k.duplicated,
           deliveries_per_s: $k.deliveries_per_s, latency_ms: $k.latency_ms,
           cpu_s: $k.server[0].cpu_s, peak_rss_kib: $k.server[0].peak_rss_kib,
           write_syscalls_per_delivery: $k.server[0].write_syscalls_per_delivery,
           loadgen_cpu_s: $k.loadgen_cpu_s,
           deliveries_per_cpu_s: per($k; $k.server[0].cpu_s),
           kapi_plus_etcd_cpu_s: $k.server_cpu_s},
    etcd: {deliveries: $e.deliveries, missed: $e.missed, duplicated: $e.duplicated,
           deliveries_per_s: $e.deliveries_per_s, latency_ms: $e.latency_ms,
           cpu_s: $e.server_cpu_s, peak_rss_kib: $e.server[0].peak_rss_kib,
           write_syscalls_per_delivery: $e.server[0].write_syscalls_per_delivery,
           loadgen_cpu_s: $e.loadgen_cpu_s,
           deliveries_per_cpu_s: per($e; $e.server_cpu_s)},
    ratio_deliveries_per_cpu_s_kapi_over_etcd:
      (if per($e; $e.server_cpu_s) and per($k; $k.server[0].cpu_s)
       then (per($k; $k.server[0].cpu_s) / per($e; $e.server_cpu_s)) else null end),
    ratio_counting_kapi_plus_etcd:
      (if per($e; $e.server_cpu_s) and per($k; $k.server_cpu_s)
       then (per($k; $k.server_cpu_s) / per($e; $e.server_cpu_s)) else null end)
  }'
echo "reports: $OUT/kapi.json $OUT/etcd.json" >&2
