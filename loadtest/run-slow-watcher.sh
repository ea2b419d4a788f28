#!/usr/bin/env bash
# Slow-watcher isolation (issue 4): do healthy watchers' latencies change when one watcher never
# reads, and does that watcher's memory stay bounded?
#
#   bash loadtest/run-slow-watcher.sh                  # 1000 watchers, HTTP/2, 20 writes/s, 15 s
#   ROUNDS=5 WATCHERS=2000 HTTP=http1 bash loadtest/run-slow-watcher.sh
#
# One throwaway etcd and one kapi (release build) on it serve every run. The same load runs
# ROUNDS times without and ROUNDS times with STUCK stuck watchers, alternating (without, with,
# without, ...), so slow drift of the shared machine hits both groups alike. A stuck watcher is
# `kapi-loadgen --stuck-watchers`: its own TLS connection (SO_RCVBUF STUCK_RCVBUF), the HTTP/1.1
# watch request of the same resource, then not a byte read until the run is over. Before the
# measured watchers connect, every run (both groups) makes PREFILL unmeasured writes of other
# objects, so the stuck watcher starts the measurement with the kernel's buffers (up to
# net.ipv4.tcp_wmem's maximum on kapi's side) and its queue already full.
#
# Printed: per run the healthy watchers' p50/p99 (write acknowledged → frame received), missed and
# duplicated events, kapi's RSS at the start of the run / highest / at the end, what the stuck
# watcher had coming when it finally read and kapi's stall counter; then, per group, the p99 of
# all its runs' latencies pooled (the bar: with / without < 1.10) and the median of the per-run
# p99s, each with the ratio with / without.
#
# Before the first run, WARMUP unmeasured writes fill kapi's watch-cache history ring (10,240
# events by default), so kapi's RSS is at its steady state and what changes from run to run is
# down to the watchers.
#
# Variables: WATCHERS (1000), HTTP (http2), RATE (20 writes/s), DURATION (15 s), OBJECTS (100),
# ROUNDS (3), STUCK (1), STUCK_RCVBUF (4096), PREFILL (5000), WARMUP (11000), EXTRA (more
# loadgen flags), SKIP_BUILD=1. The JSON reports stay in $WORK.
set -euo pipefail
cd "$(dirname "$0")/.."

WATCHERS=${WATCHERS:-1000}
HTTP=${HTTP:-http2}
RATE=${RATE:-20}
DURATION=${DURATION:-15}
OBJECTS=${OBJECTS:-100}
ROUNDS=${ROUNDS:-3}
STUCK=${STUCK:-1}
STUCK_RCVBUF=${STUCK_RCVBUF:-4096}
PREFILL=${PREFILL:-5000}
WARMUP=${WARMUP:-11000}
EXTRA=${EXTRA:-}

# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
lib_init slow-watcher
build_release kapi kapi-loadgen
start_etcd
start_kapi "$WORK/kapi" --etcd-servers="$ETCD_URL"
wait_readyz "$WORK/kapi"

if [ "$WARMUP" -gt 0 ]; then
    echo "== warm-up: $WARMUP writes" >&2
    "$LOADGEN" --target=kapi --kubeconfig="$WORK/kapi/admin.kubeconfig" --watchers=1 --rate=1 \
        --duration=1 --objects="$OBJECTS" --prefill-writes="$WARMUP" >/dev/null
fi

for r in $(seq "$ROUNDS"); do
    for mode in without with; do
        n=0
        [ "$mode" = with ] && n=$STUCK
        echo "== round $r, $mode stuck watcher: $WATCHERS watchers ($HTTP), $RATE writes/s, ${DURATION}s" >&2
        # shellcheck disable=SC2086
        "$LOADGEN" --target=kapi --kubeconfig="$WORK/kapi/admin.kubeconfig" --http="$HTTP" \
            --watchers="$WATCHERS" --rate="$RATE" --duration="$DURATION" --objects="$OBJECTS" \
            --prefill-writes="$PREFILL" --stuck-watchers="$n" --stuck-rcvbuf="$STUCK_RCVBUF" \
            --server-pid="$KAPI_PID" $EXTRA | tail -n1 >"$WORK/$mode-$r.json"
    done
done

echo
printf '%-8s %-5s %9s %9s %9s %7s %5s %24s %30s %7s\n' group round p50_ms p99_ms deliveries missed dup \
    "rss_MiB start/max/end" "stuck: status bytes closed" stalls
for r in $(seq "$ROUNDS"); do
    for mode in without with; do
        jq -r --arg mode "$mode" --arg r "$r" '
          def mb: . / 1024 | . * 10 | round / 10 | tostring;
          [$mode, $r, .latency_ms.p50, .latency_ms.p99, .deliveries, .missed, .duplicated,
           ((.rss[0].start_kib | mb) + "/" + (.rss[0].max_kib | mb) + "/" + (.rss[0].end_kib | mb)),
           (if .stuck.opened > 0
            then (.stuck.each[0] | "\(.status | split(" ")[1]) \(.bytes_read_after_run) \(.closed_by_server)")
            else "-" end),
           (.server_metrics.kapi_watch_stalls_total // "?")]
          | @tsv' "$WORK/$mode-$r.json"
    done
done | awk -F'\t' '{printf "%-8s %-5s %9s %9s %9s %7s %5s %24s %30s %7s\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10}'

jq -s '
  def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                     else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  # The quantile q of the pooled latency histograms of several runs, in ms.
  def pooled(q): [.[].latency_hist_us[]] | group_by(.[0]) | map([.[0][0], (map(.[1]) | add)])
    | (map(.[1]) | add) as $n | (q * $n | ceil) as $rank
    | reduce .[] as $b ({seen: 0, v: null};
        if .v == null then .seen += $b[1] | (if .seen >= $rank then .v = $b[0] else . end)
        else . end)
    | .v / 1000;
  def ratio(a; b): if a > 0 then (b / a * 1000 | round / 1000) else null end;
  (map(select(.stuck.watchers == 0))) as $without |
  (map(select(.stuck.watchers > 0))) as $with |
  ($without | map(.latency_ms.p99) | median) as $a |
  ($with | map(.latency_ms.p99) | median) as $b |
  ($without | pooled(0.99)) as $pa |
  ($with | pooled(0.99)) as $pb |
  {
    pooled_p99_ms_without: $pa,
    pooled_p99_ms_with: $pb,
    pooled_ratio_with_over_without: ratio($pa; $pb),
    median_p99_ms_without: $a,
    median_p99_ms_with: $b,
    ratio_with_over_without: ratio($a; $b),
    median_p50_ms_without: ($without | map(.latency_ms.p50) | median),
    median_p50_ms_with: ($with | map(.latency_ms.p50) | median),
    missed: (map(.missed) | add), duplicated: (map(.duplicated) | add),
    stuck_runs_rss_kib: ($with | map({start: .rss[0].start_kib, max: .rss[0].max_kib, end: .rss[0].end_kib})),
    stuck_bytes_read_after_run: ($with | map(.stuck.each[0].bytes_read_after_run)),
    kapi_watch_stalls: ($with | map(.server_metrics.kapi_watch_stalls_total))
  }' "$WORK"/without-*.json "$WORK"/with-*.json | tee "$WORK/summary.json"
echo "reports: $WORK/{without,with}-*.json $WORK/summary.json" >&2
