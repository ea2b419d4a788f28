#!/usr/bin/env python3
"""A reflector-style pod watcher on the Python `kubernetes` client, driven by tests/python_client.rs.

Usage: watch_resume.py KUBECONFIG NAMESPACE RESOURCE_VERSION STOP_POD

Watches pods in NAMESPACE from RESOURCE_VERSION with `watch.Watch().stream(...)` and prints one
JSON line per event, flushed at once:

    {"type": "ADDED", "name": "p1", "rv": "42"}

`Watch.stream` does not reconnect on its own when `timeout_seconds` is given, and a dropped
connection (the server restarting) surfaces as an exception. So, like client-go's reflector,
this script loops: whenever a stream ends (server timeout, connection lost, connection refused
while the server restarts) it opens a new watch from the last resourceVersion it saw, and says
so with a line `{"type": "RESUME", "rv": ..., "cause": ...}`; bookmarks are printed as
`{"type": "BOOKMARK", "rv": ...}` since they move the resume point too. It never relists: a 410 Gone is
reported as `{"type": "GONE", ...}` and the script exits with status 2, which fails the test.

It exits 0 after the ADDED event of STOP_POD, and 3 if it cannot reach the server for 30 s.
"""

import json
import sys
import time


def emit(**fields):
    print(json.dumps(fields), flush=True)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    kubeconfig, namespace, rv, stop_pod = sys.argv[1:]
    try:
        from kubernetes import client, config, watch
    except ImportError as e:
        emit(type="IMPORT_ERROR", message=str(e))
        sys.exit(4)

    config.load_kube_config(config_file=kubeconfig)
    v1 = client.CoreV1Api()
    last_rv = rv
    cause = "start"
    failing_since = None
    while True:
        emit(type="RESUME", rv=last_rv, cause=cause)
        w = watch.Watch()
        try:
            for event in w.stream(
                v1.list_namespaced_pod,
                namespace,
                resource_version=last_rv,
                allow_watch_bookmarks=True,
                timeout_seconds=4,
                _request_timeout=(5, 30),
            ):
                failing_since = None
                obj = event["raw_object"]
                ev_rv = obj["metadata"]["resourceVersion"]
                last_rv = ev_rv
                if event["type"] == "BOOKMARK":
                    emit(type="BOOKMARK", rv=ev_rv)
                    continue
                name = obj["metadata"]["name"]
                emit(type=event["type"], name=name, rv=ev_rv)
                if event["type"] == "ADDED" and name == stop_pod:
                    return 0
            cause = "stream ended"
            failing_since = None
        except client.exceptions.ApiException as e:
            if e.status == 410:
                emit(type="GONE", rv=last_rv, message=str(e.reason))
                return 2
            cause = "api error %s: %s" % (e.status, e.reason)
        except Exception as e:  # connection reset/refused while the server restarts
            cause = "%s: %s" % (type(e).__name__, e)
        if cause != "stream ended":
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > 30:
                emit(type="UNREACHABLE", rv=last_rv, cause=cause)
                return 3
            time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
