#!/usr/bin/env bash
# Cache memory and LIST peak memory (issue 4): kapi's resident memory with N ~1 KB ConfigMaps
# cached, against the wire bytes of those objects, and the extra peak while a LIST of all of them
# is served (whole, and paged with limit=PAGE).
#
#   bash loadtest/run-memory-bench.sh                  # 100k objects
#   OBJECTS=20000 bash loadtest/run-memory-bench.sh
#
# Steps, all in one run on one throwaway etcd (random loopback ports, temp dir):
#  1. kapi (release build) on the empty etcd; once /readyz is ok and 3 s have passed, its RSS is
#     the baseline.
#  2. `kapi-loadgen --fill` writes OBJECTS ConfigMaps straight into etcd, each the bytes kapi
#     stored for a template created through that kapi (so exactly kapi's stored form), one put
#     per revision. kapi is stopped.
#  3. The same kapi build starts on the filled etcd; when its configmaps cache holds them all
#     (apiserver_resource_objects) and /readyz is ok, plus 3 s, its RSS minus the baseline is the
#     cache's memory. The wire bytes are the length of the JSON LIST body of the namespace
#     (resourceVersion=0, from the cache), read once to a file to count its items.
#  4. Peak of a LIST: VmHWM is reset (`echo 5 > /proc/PID/clear_refs`), a full LIST is read to
#     /dev/null (HTTP/1.1, then HTTP/2), and VmHWM minus the RSS before it is the LIST's extra
#     peak; then the same while paging through everything with limit=PAGE.
#
# Variables: OBJECTS (100000), SIZE (approximate object size, 1024), WRITERS (fill connections,
# 4), PAGE (500), SKIP_BUILD=1, KEEP=1 (keep the data directories). The report is printed as
# JSON at the end and kept in $WORK/memory.json. See also `cargo bench --bench cache_memory`
# for the same cache measured in-process with a counting allocator.
set -euo pipefail
cd "$(dirname "$0")/.."

OBJECTS=${OBJECTS:-100000}
SIZE=${SIZE:-1024}
WRITERS=${WRITERS:-4}
PAGE=${PAGE:-500}
NS=loadgen

# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
lib_init memory-bench
build_release kapi kapi-loadgen
DATA=$WORK/kapi

start_etcd

# 1. Baseline: the same build on an empty etcd.
start_kapi "$DATA" --etcd-servers="$ETCD_URL"
wait_readyz "$DATA"
sleep 3
RSS_EMPTY=$(rss_kib "$KAPI_PID")
echo "== kapi on empty etcd: RSS $RSS_EMPTY KiB" >&2

# 2. Fill etcd in kapi's stored form.
echo "== filling etcd with $OBJECTS ConfigMaps" >&2
"$LOADGEN" --target=etcd --etcd-endpoint="$ETCD_URL" --kubeconfig="$DATA/admin.kubeconfig" \
    --namespace="$NS" --fill="$OBJECTS" --object-size="$SIZE" --writers="$WRITERS" \
    | tail -n1 >"$WORK/fill.json"
stop_pid "$KAPI_PID"

# 3. kapi on the filled etcd.
T0=$(date +%s.%N)
start_kapi "$DATA" --etcd-servers="$ETCD_URL"
cached() {
    kapi_curl "$DATA" /metrics 2>/dev/null |
        awk '/^apiserver_resource_objects\{/ && /resource="configmaps"/ {print $NF; exit}'
}
for _ in $(seq 1200); do
    n=$(cached || true)
    [ -n "$n" ] && [ "${n%.*}" -ge "$OBJECTS" ] && break
    sleep 0.1
done
n=$(cached || true)
[ -n "$n" ] && [ "${n%.*}" -ge "$OBJECTS" ] || { echo "the cache holds ${n:-?} configmaps after 120 s" >&2; exit 1; }
wait_readyz "$DATA"
T1=$(date +%s.%N)
READY_S=$(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.2f", b - a}')
echo "== cache filled ($n configmaps) $READY_S s after kapi started" >&2
sleep 3
RSS_LOADED=$(rss_kib "$KAPI_PID")

LIST="/api/v1/namespaces/$NS/configmaps"
WIRE=$(kapi_curl "$DATA" "$LIST?resourceVersion=0" --fail -o "$WORK/list.json" -w '%{size_download}')
ITEMS=$(python3 -c 'import sys; print(open(sys.argv[1], "rb").read().count(b"\"uid\":\""))' "$WORK/list.json")
rm -f "$WORK/list.json"
echo "== RSS loaded $RSS_LOADED KiB; LIST body $WIRE bytes, $ITEMS items" >&2
sleep 2

# 4. Extra peak of one LIST: HWM after it minus RSS before it.
list_peak() { # curl flags...
    reset_hwm "$KAPI_PID"
    local before
    before=$(rss_kib "$KAPI_PID")
    kapi_curl "$DATA" "$LIST?resourceVersion=0" --fail -o /dev/null "$@"
    echo "$before $(hwm_kib "$KAPI_PID") $(rss_kib "$KAPI_PID")"
}
read -r H1_BEFORE H1_HWM H1_AFTER < <(list_peak)
read -r H2_BEFORE H2_HWM H2_AFTER < <(list_peak --http2)

# Paging: limit=PAGE with continue tokens until the end.
reset_hwm "$KAPI_PID"
P_BEFORE=$(rss_kib "$KAPI_PID")
PAGES=0
PAGED_ITEMS=0
TOKEN=
while :; do
    q="limit=$PAGE"
    [ -n "$TOKEN" ] && q="$q&continue=$(jq -rn --arg t "$TOKEN" '$t|@uri')"
    kapi_curl "$DATA" "$LIST?$q" --fail -o "$WORK/page.json"
    PAGES=$((PAGES + 1))
    PAGED_ITEMS=$((PAGED_ITEMS + $(jq '.items|length' "$WORK/page.json")))
    TOKEN=$(jq -r '.metadata.continue // empty' "$WORK/page.json")
    [ -z "$TOKEN" ] && break
done
P_HWM=$(hwm_kib "$KAPI_PID")
P_AFTER=$(rss_kib "$KAPI_PID")
rm -f "$WORK/page.json"

jq -n --slurpfile fill "$WORK/fill.json" \
    --argjson objects "$OBJECTS" --argjson items "$ITEMS" --argjson wire "$WIRE" \
    --argjson rss_empty "$RSS_EMPTY" --argjson rss_loaded "$RSS_LOADED" \
    --argjson cache_ready_s "$READY_S" \
    --argjson h1 "[$H1_BEFORE,$H1_HWM,$H1_AFTER]" --argjson h2 "[$H2_BEFORE,$H2_HWM,$H2_AFTER]" \
    --argjson paged "[$P_BEFORE,$P_HWM,$P_AFTER]" --argjson pages "$PAGES" \
    --argjson paged_items "$PAGED_ITEMS" --argjson page "$PAGE" '
  def mb: . * 1024 / 1e6 | . * 10 | round / 10;
  def peak(a): {rss_before_kib: a[0], hwm_kib: a[1], rss_after_kib: a[2],
                extra_peak_mb: ((a[1] - a[0]) | mb)};
  {
    objects: $objects,
    list_items: $items,
    wire_bytes: $wire,
    wire_bytes_per_object: ($wire / $items | round),
    stored_bytes: $fill[0].stored_bytes,
    fill_s: $fill[0].seconds,
    cache_ready_s: $cache_ready_s,
    rss_empty_kib: $rss_empty,
    rss_loaded_kib: $rss_loaded,
    cache_mb: (($rss_loaded - $rss_empty) | mb),
    cache_over_wire: ((($rss_loaded - $rss_empty) * 1024 / $wire) * 1000 | round / 1000),
    list_http1: peak($h1),
    list_http2: peak($h2),
    list_paged: (peak($paged) + {limit: $page, pages: $pages, items: $paged_items})
  }' | tee "$WORK/memory.json"
echo "report: $WORK/memory.json" >&2
