# Shared start-up for the loadtest scripts. Source it from the repository root:
#
#   source loadtest/lib.sh
#   lib_init watch-bench            # WORK=/tmp/kapi-watch-bench.XXXXXX, cleanup on exit
#   build_release kapi kapi-loadgen # unless SKIP_BUILD=1
#   start_etcd                      # sets ETCD_URL, ETCD_PID
#   start_kapi "$WORK/kapi" --etcd-servers="$ETCD_URL"   # sets KAPI_PID, KAPI_URL
#   rss_kib "$KAPI_PID"; hwm_kib "$KAPI_PID"; reset_hwm "$KAPI_PID"
#   kapi_curl "$WORK/kapi" "/api/v1/namespaces"          # curl with the admin client cert
#   stop_pid "$KAPI_PID"
#
# Everything listens on 127.0.0.1 on random free ports. On exit, every process started here is
# stopped and the etcd and kapi data directories are removed; logs and reports stay in $WORK
# (KEEP=1 keeps the data directories too). KAPI_TEST_ETCD overrides the etcd binary.

KAPI=target/release/kapi
LOADGEN=target/release/kapi-loadgen
ETCD_BIN=${KAPI_TEST_ETCD:-/usr/bin/etcd}
PIDS=()
DATA_DIRS=()

lib_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -z "${KEEP:-}" ]; then
        for p in "${DATA_DIRS[@]}"; do rm -rf "$p"; done
    fi
}

# lib_init NAME: checks the tools, makes $WORK and installs the cleanup trap.
lib_init() {
    command -v jq >/dev/null || { echo "needs jq (apt-get install jq)" >&2; exit 1; }
    command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }
    WORK=$(mktemp -d "/tmp/kapi-$1.XXXXXX")
    trap lib_cleanup EXIT
}

# build_release BIN...: cargo build --release of those binaries (SKIP_BUILD=1 skips it).
build_release() {
    [ -n "${SKIP_BUILD:-}" ] && return 0
    local args=() b
    for b in "$@"; do args+=(--bin "$b"); done
    cargo build --release "${args[@]}" >&2
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_etcd: a throwaway single-member etcd; sets ETCD_URL and ETCD_PID.
start_etcd() {
    [ -x "$ETCD_BIN" ] || { echo "needs etcd at $ETCD_BIN (apt-get install etcd-server)" >&2; exit 1; }
    local cp pp dir
    cp=$(free_port)
    pp=$(free_port)
    dir=$WORK/etcd-$cp
    DATA_DIRS+=("$dir")
    ETCD_URL=http://127.0.0.1:$cp
    ETCD_UNSUPPORTED_ARCH=$(uname -m) "$ETCD_BIN" --name bench --data-dir "$dir" \
        --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
        --initial-cluster "bench=http://127.0.0.1:$pp" --initial-cluster-state new \
        --log-level warn --logger zap >"$dir.log" 2>&1 &
    ETCD_PID=$!
    PIDS+=("$ETCD_PID")
    local _
    for _ in $(seq 100); do
        curl -sf "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"' && return 0
        sleep 0.2
    done
    echo "etcd did not become healthy" >&2
    cat "$dir.log" >&2
    exit 1
}

# start_kapi DATA_DIR [kapi flags...]: kapi (release build) on a random port; sets KAPI_PID and
# KAPI_URL. Without --etcd-servers it uses its embedded store in DATA_DIR.
start_kapi() {
    local dir=$1
    shift
    DATA_DIRS+=("$dir")
    "$KAPI" --secure-port=0 --data-dir="$dir" "$@" >"$dir.out" 2>"$dir.log" &
    KAPI_PID=$!
    PIDS+=("$KAPI_PID")
    local _
    for _ in $(seq 300); do
        grep -q '^kapi: serving on' "$dir.out" 2>/dev/null && break
        kill -0 "$KAPI_PID" 2>/dev/null || { echo "kapi exited" >&2; cat "$dir.log" >&2; exit 1; }
        sleep 0.1
    done
    KAPI_URL=$(sed -n 's/^kapi: serving on \([^ ]*\).*/\1/p' "$dir.out")
    [ -n "$KAPI_URL" ] || { echo "kapi did not start" >&2; cat "$dir.log" >&2; exit 1; }
}

# stop_pid PID: stops a process started here and waits for it.
stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# kapi_curl DATA_DIR PATH [curl flags...]: GET (by default) with the admin client certificate.
kapi_curl() {
    local dir=$1 path=$2
    shift 2
    curl -sS --http1.1 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" \
        --key "$dir/pki/admin.key" "$@" "$KAPI_URL$path"
}

# wait_readyz DATA_DIR: until kapi's /readyz answers ok (at most 60 s).
wait_readyz() {
    local _
    for _ in $(seq 600); do
        [ "$(kapi_curl "$1" /readyz 2>/dev/null)" = ok ] && return 0
        sleep 0.1
    done
    echo "kapi not ready after 60 s" >&2
    exit 1
}

# VmRSS / VmHWM of PID in KiB; reset_hwm sets VmHWM back to the current RSS.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs"; }
