//! Smoke test of the watch-load generator (`loadtest/loadgen`): against a kapi on its embedded
//! store, 50 watchers see all 20 writes exactly once, and the report is sane.

mod common;

use common::kapi::Kapi;
use std::process::Command;

fn run_loadgen(kapi: &Kapi, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kapi-loadgen"))
        .arg(format!("--kubeconfig={}", kapi.kubeconfig.display()))
        .arg(format!("--server-pid={}", kapi.pid()))
        .args(["--connect-timeout=60", "--drain=10", "--threads=2"])
        .args(extra)
        .output()
        .expect("run kapi-loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kapi-loadgen failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}\nstderr:\n{stderr}"))
}

fn assert_clean(r: &serde_json::Value, watchers: u64, writes: u64, expected: u64) {
    let n = |k: &str| {
        r[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {r}"))
    };
    assert_eq!(n("watchers_connected"), watchers, "{r}");
    assert_eq!(n("writes"), writes, "{r}");
    assert_eq!(n("write_errors"), 0, "{r}");
    assert_eq!(n("expected"), expected, "{r}");
    assert_eq!(n("deliveries"), expected, "{r}");
    assert_eq!(n("missed"), 0, "{r}");
    assert_eq!(n("duplicated"), 0, "{r}");
    assert_eq!(n("out_of_order"), 0, "{r}");
    assert_eq!(n("watchers_ended_early"), 0, "{r}");
    let lat = &r["latency_ms"];
    let (p50, p99, max) = (
        lat["p50"].as_f64().unwrap(),
        lat["p99"].as_f64().unwrap(),
        lat["max"].as_f64().unwrap(),
    );
    assert!(
        0.0 <= p50 && p50 <= p99 && p99 <= max && max < 10_000.0,
        "{r}"
    );
    assert!(r["deliveries_per_s"].as_f64().unwrap() > 0.0, "{r}");
    let server = &r["server"][0];
    assert!(server["rss_kib"].as_u64().unwrap() > 0, "{r}");
    assert!(r["server_cpu_s"].as_f64().unwrap() >= 0.0, "{r}");
}

#[test]
fn loadgen_delivers_every_write_once() {
    let kapi = Kapi::embedded();
    let r = run_loadgen(
        &kapi,
        &[
            "--watchers=50",
            "--rate=4",
            "--duration=5",
            "--max-writes=20",
            "--objects=10",
        ],
    );
    assert_clean(&r, 50, 20, 50 * 20);
    assert_eq!(r["target"], "kapi");
    assert_eq!(r["http"], "http1");
}

#[test]
fn loadgen_node_mode_over_http2() {
    let kapi = Kapi::embedded();
    let r = run_loadgen(
        &kapi,
        &[
            "--http=http2",
            "--streams-per-conn=10",
            "--kind=pods",
            "--nodes=20",
            "--watchers=20",
            "--rate=10",
            "--duration=3",
            "--max-writes=20",
            "--objects=20",
        ],
    );
    // Each write reaches only the watcher of its node.
    assert_clean(&r, 20, 20, 20);
    assert_eq!(r["misrouted"], 0, "{r}");
    assert_eq!(r["mode"], "nodes");
}
