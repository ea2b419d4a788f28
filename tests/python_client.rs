//! The Python `kubernetes` client against kapi on etcd and on the embedded store: a
//! reflector-style watch (`tests/python/watch_resume.py`) sees every pod event in order, exactly
//! once, across a `kapi.restart()` — it resumes from the last resourceVersion it saw, and a 410
//! (which would force a relist) fails the test.

mod common;

use common::etcd::EtcdServer;
use common::kapi::{Kapi, RawClient};
use http::StatusCode;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/watch_resume.py");
const NS: &str = "py";

/// Fails with a clear message when `import kubernetes` does not work.
fn require_python_client() {
    let out = Command::new("python3")
        .args(["-c", "import kubernetes; print(kubernetes.__version__)"])
        .output()
        .expect("python3 must be on PATH for the Python client tests");
    assert!(
        out.status.success(),
        "the Python `kubernetes` package is not importable (install it with \
         `bash .ci/install-deps` or `python3 -m pip install kubernetes`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The watcher script; killed on drop.
struct Script {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Script {
    fn start(kubeconfig: &std::path::Path, rv: &str, stop_pod: &str) -> Script {
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(SCRIPT)
            .arg(kubeconfig)
            .args([NS, rv, stop_pod])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let (etx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            let _ = etx.send(s);
        });
        Script {
            child,
            lines,
            stderr,
        }
    }

    /// The next JSON line (polling, so the async runtime keeps running), or None after `timeout`.
    async fn next(&self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.lines.try_recv() {
                Ok(line) => {
                    return Some(
                        serde_json::from_str(&line)
                            .unwrap_or_else(|e| panic!("script printed non-JSON ({e}): {line}")),
                    )
                }
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) if Instant::now() > deadline => return None,
                Err(mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
            }
        }
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (type, name, resourceVersion) of one event.
type Ev = (String, String, String);

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "py"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

fn rv_of(v: &Value) -> String {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string()
}

/// Performs one change and returns the event the watcher must see for it.
async fn create(c: &RawClient, name: &str) -> Ev {
    let r = c
        .post_json(&format!("/api/v1/namespaces/{NS}/pods"), &pod(name))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    ("ADDED".into(), name.into(), rv_of(&r.json()))
}

async fn patch(c: &RawClient, name: &str, n: u32) -> Ev {
    let r = c
        .patch(
            &format!("/api/v1/namespaces/{NS}/pods/{name}"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"n": n.to_string()}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    ("MODIFIED".into(), name.into(), rv_of(&r.json()))
}

async fn delete(c: &RawClient, name: &str) -> Ev {
    let r = c
        .delete(&format!("/api/v1/namespaces/{NS}/pods/{name}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    ("DELETED".into(), name.into(), rv_of(&r.json()))
}

/// Reads script lines until `want` events have been seen (RESUME/BOOKMARK lines are kept too).
async fn read_events(script: &mut Script, log: &mut Vec<Value>, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(log).len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match script.next(left).await {
            Some(v) => {
                assert!(
                    !matches!(
                        v["type"].as_str(),
                        Some("GONE" | "UNREACHABLE" | "IMPORT_ERROR")
                    ),
                    "watcher failed: {v}\nlog so far: {log:#?}"
                );
                log.push(v);
            }
            None => panic!(
                "watcher saw {} of {want} events; log: {log:#?}\nstderr: {}",
                events(log).len(),
                script.stderr()
            ),
        }
    }
}

fn events(log: &[Value]) -> Vec<Ev> {
    log.iter()
        .filter(|v| matches!(v["type"].as_str(), Some("ADDED" | "MODIFIED" | "DELETED")))
        .map(|v| {
            (
                v["type"].as_str().unwrap().to_string(),
                v["name"].as_str().unwrap().to_string(),
                v["rv"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn watch_resume_across_restart(kapi: &mut Kapi) {
    require_python_client();
    let c = kapi.client();
    let r = c
        .post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    for name in ["a0", "a1"] {
        create(&c, name).await;
    }
    let r = c.get(&format!("/api/v1/namespaces/{NS}/pods")).await;
    let start_rv = rv_of(&r.json());

    let mut script = Script::start(&kapi.kubeconfig, &start_rv, "stop");
    let mut log = Vec::new();
    let mut want = vec![
        create(&c, "b1").await,
        patch(&c, "b1", 1).await,
        create(&c, "b2").await,
        patch(&c, "a0", 1).await,
        delete(&c, "a0").await,
        delete(&c, "b1").await,
    ];
    read_events(&mut script, &mut log, want.len()).await;
    assert_eq!(events(&log), want, "before the restart");
    let before_restart = want.len();

    let pid = kapi.pid();
    tokio::task::block_in_place(|| kapi.restart());
    assert_ne!(pid, kapi.pid(), "a new kapi process");
    let c = kapi.client();
    want.extend([
        patch(&c, "b2", 2).await,
        create(&c, "c1").await,
        delete(&c, "b2").await,
        patch(&c, "a1", 2).await,
        create(&c, "stop").await,
    ]);
    read_events(&mut script, &mut log, want.len()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = script.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "script did not exit after stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Anything printed after the stop event (there should be nothing).
    while let Some(v) = script.next(Duration::from_millis(100)).await {
        log.push(v);
    }
    let stderr = script.stderr();
    assert!(status.success(), "script exit {status}: {stderr}\n{log:#?}");

    // Every event, in order, exactly once: no relist replayed a0/a1/b2 as ADDED.
    assert_eq!(events(&log), want, "the whole log: {log:#?}");
    let rvs: Vec<u64> = want.iter().map(|e| e.2.parse().unwrap()).collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "RVs increase: {rvs:?}");

    // Each (re)connection resumed from the last resourceVersion the script had seen (bookmarks
    // included), and one reconnection came between the events before and after the restart (the
    // stream open at the restart died with the old process).
    let mut last = start_rv.clone();
    let mut seen = 0;
    let mut resumed_across_restart = false;
    for v in &log {
        match v["type"].as_str().unwrap() {
            "RESUME" => {
                assert_eq!(v["rv"].as_str().unwrap(), last, "resume point: {log:#?}");
                resumed_across_restart |= seen == before_restart;
            }
            "BOOKMARK" => last = v["rv"].as_str().unwrap().to_string(),
            _ => {
                last = v["rv"].as_str().unwrap().to_string();
                seen += 1;
            }
        }
    }
    assert!(resumed_across_restart, "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_watch_resumes_across_restart_on_etcd() {
    let etcd = EtcdServer::start();
    let mut kapi = Kapi::on_etcd(&etcd);
    watch_resume_across_restart(&mut kapi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_watch_resumes_across_restart_on_embedded_store() {
    let mut kapi = Kapi::embedded();
    watch_resume_across_restart(&mut kapi).await;
}
