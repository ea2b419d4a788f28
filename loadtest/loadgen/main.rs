//! kapi-loadgen: a watch-load generator (PERFORMANCE.md "How to measure").
//!
//! Opens N watchers against kapi (HTTP/1.1 or HTTP/2, TLS with the admin client certificate) or
//! straight against etcd (the baseline), drives W writes/s of ~1 KB objects, and reports
//! deliveries/s, write-ack → receive latency (matched by object name and resourceVersion),
//! missed and duplicated events, and the server's CPU seconds and RSS from /proc.
//!
//! The last line on stdout is one JSON object (the report); progress and a readable summary go
//! to stderr. The run is bounded (`--duration` of writes, then at most `--drain` seconds waiting
//! for deliveries) and talks only to loopback addresses.
//!
//! ```sh
//! kapi-loadgen --kubeconfig DATA/admin.kubeconfig --watchers 2000 --rate 100 --duration 20 \
//!     --server-pid $(pgrep -n kapi)
//! kapi-loadgen --kubeconfig DATA/admin.kubeconfig --kind pods --nodes 1000 --watchers 1000 ...
//! kapi-loadgen --target etcd --etcd-endpoint http://127.0.0.1:2379 --watchers 2000 --rate 100 \
//!     --duration 20 --server-pid $(pgrep -n etcd)
//! ```
//!
//! Beyond the plain run:
//!
//! - `--stuck-watchers N` (kapi): N more watchers of the same resource and selection, each on its
//!   own TLS connection with a small receive buffer (`--stuck-rcvbuf`), that send the HTTP/1.1
//!   watch request and then read nothing until the run is over. They are not counted in
//!   deliveries or latency; the report's `stuck` section says what each had coming afterwards
//!   and whether kapi had cut it off, and `server_metrics` the stalls kapi counted.
//! - `--prefill-writes N`: unmeasured writes (other objects) after the stuck watchers are open
//!   and before the measured watchers connect, so a stuck watcher starts the measured window with
//!   its buffers and queue already full. Use the same value with and without stuck watchers.
//! - `--hold SECS` (idle watchers): open the watchers, write nothing, hold them SECS seconds, and
//!   report the server's RSS before and with them (`idle`: KiB per watcher), then close them.
//! - `--fill N`: only create N objects (`--fill-prefix`0000000 …) as fast as `--writers`
//!   allow, through kapi (`--target kapi`) or straight into etcd in kapi's stored form
//!   (`--target etcd`, template taken from kapi: give `--kubeconfig` too), and exit.
//!
//! The server's RSS (`--server-pid`) is sampled every `--rss-interval` seconds from start to
//! finish: the report's `rss` section has it at start, with the watchers connected, at its
//! highest, at the end, and every sample.
//!
//! ```sh
//! kapi-loadgen --kubeconfig DATA/admin.kubeconfig --http http2 --watchers 1000 --rate 20 \
//!     --duration 15 --prefill-writes 600 --stuck-watchers 1 --server-pid $KAPI_PID
//! kapi-loadgen --data-dir DATA --watchers 5000 --hold 5 --server-pid $KAPI_PID
//! kapi-loadgen --target etcd --etcd-endpoint $ETCD --kubeconfig DATA/admin.kubeconfig \
//!     --fill 100000 --writers 8
//! ```

mod etcd;
mod fill;
mod kapi;
mod objects;
mod procstat;
mod stuck;
mod track;

use anyhow::{bail, Context as _};
use clap::Parser;
use objects::{Kind, Naming};
use rand::Rng;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use track::{now_ns, AckTable, Hist, WatchRec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    Kapi,
    Etcd,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "kapi-loadgen",
    about = "Watch-load generator for kapi (and etcd as the baseline)"
)]
struct Args {
    /// What serves the watchers and takes the writes.
    #[arg(long, value_enum, default_value = "kapi")]
    target: Target,
    /// kapi's admin.kubeconfig (server URL, CA, client certificate).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// kapi's data dir (admin.kubeconfig or pki/{ca.crt,admin.crt,admin.key}).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// kapi URL (overrides the kubeconfig's), e.g. https://127.0.0.1:6443.
    #[arg(long)]
    server: Option<String>,
    /// HTTP version of the watch and write connections to kapi.
    #[arg(long, value_enum, default_value = "http1")]
    http: kapi::HttpVersion,
    /// HTTP/2: watch streams per connection.
    #[arg(long, default_value_t = 100)]
    streams_per_conn: usize,
    /// etcd client URL (for --target etcd).
    #[arg(long)]
    etcd_endpoint: Option<String>,
    /// etcd: watch streams per client connection.
    #[arg(long, default_value_t = 100)]
    etcd_streams_per_conn: usize,
    /// etcd key prefix (kapi's --etcd-prefix).
    #[arg(long, default_value = "/registry")]
    etcd_prefix: String,
    /// Number of watchers.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// 0: every watcher watches the whole resource. N > 0: watcher i watches pods with
    /// fieldSelector=spec.nodeName=node-(i mod N), and object j is bound to node-(j mod N).
    #[arg(long, default_value_t = 0)]
    nodes: u32,
    /// Watch only the generator's namespace instead of all namespaces.
    #[arg(long)]
    namespaced_watch: bool,
    /// Kind of object written and watched.
    #[arg(long, value_enum, default_value = "configmaps")]
    kind: Kind,
    /// Namespace of the objects.
    #[arg(long, default_value = "loadgen")]
    namespace: String,
    /// Writes per second (all writers together).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seconds of writing.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many writes (if reached before --duration).
    #[arg(long)]
    max_writes: Option<u64>,
    /// Distinct objects: the first writes create them, the following update them round-robin.
    #[arg(long, default_value_t = 100)]
    objects: u32,
    /// Concurrent writers (connections), each owning a share of the objects.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Delete/create churn instead of updates (kapi: needs --kind pods, whose DELETE answers
    /// with the deleted object at the delete's revision).
    #[arg(long)]
    churn: bool,
    /// Approximate size of an object's JSON, bytes.
    #[arg(long, default_value_t = 1024)]
    object_size: usize,
    /// Server processes whose CPU and memory to report (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Seconds to wait for outstanding deliveries after the last write.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Seconds allowed to establish every watcher.
    #[arg(long, default_value_t = 120.0)]
    connect_timeout: f64,
    /// Watchers being connected at once.
    #[arg(long, default_value_t = 32)]
    connect_concurrency: usize,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Leave the written objects in place.
    #[arg(long)]
    no_cleanup: bool,
    /// Extra watchers that never read (kapi only): each on its own TLS connection, watching the
    /// same resource and selection with a hand-written HTTP/1.1 request (whatever --http says).
    /// Not counted in deliveries or latency.
    #[arg(long, default_value_t = 0)]
    stuck_watchers: usize,
    /// SO_RCVBUF of the stuck watchers' sockets in bytes (0: the kernel's default), so the
    /// server feels a stuck watcher after a few KB instead of the default window.
    #[arg(long, default_value_t = 4096)]
    stuck_rcvbuf: u32,
    /// Unmeasured writes of other objects after the stuck watchers are open and before the
    /// measured watchers connect (fills the stuck watchers' buffers and queues).
    #[arg(long, default_value_t = 0)]
    prefill_writes: u64,
    /// Idle-watcher mode: open the watchers, write nothing, hold them this many seconds, report
    /// the server's RSS before and with them (KiB per watcher), then close them.
    #[arg(long)]
    hold: Option<f64>,
    /// Fill mode: create this many objects as fast as --writers allow, then exit. --target
    /// kapi: through kapi; --target etcd: puts straight into etcd (one per revision) of kapi's
    /// stored form of a template created through kapi (needs --kubeconfig or --data-dir too).
    #[arg(long)]
    fill: Option<u64>,
    /// Names of filled objects: <prefix><index, 7 digits>.
    #[arg(long, default_value = "fill-")]
    fill_prefix: String,
    /// Seconds between samples of the server's RSS.
    #[arg(long, default_value_t = 0.5)]
    rss_interval: f64,
}

/// What watchers and writers share.
pub struct Ctx {
    pub acks: AckTable,
    pub naming: Naming,
    pub nodes: u32,
    /// Deliveries of this run's objects so far (all watchers).
    pub delivered: AtomicU64,
    /// Deliveries expected from the writes acknowledged so far.
    pub expected: AtomicU64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (before, after) = procstat::raise_nofile_limit();
    track::start_clock();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = args.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt.enable_all().build()?;
    let mut report = rt.block_on(run(args))?;
    report["nofile_limit"] = json!([before, after]);
    // Watch connections and tasks may still be winding down: do not wait for them.
    rt.shutdown_timeout(Duration::from_millis(500));
    println!("{report}");
    Ok(())
}

fn validate(a: &Args) -> anyhow::Result<()> {
    if a.writers == 0 {
        bail!("--writers must be positive");
    }
    if let Some(n) = a.fill {
        if n == 0 {
            bail!("--fill must be positive");
        }
        if a.target == Target::Etcd && a.etcd_endpoint.is_none() {
            bail!("--target etcd needs --etcd-endpoint");
        }
        return Ok(());
    }
    if a.watchers == 0 {
        bail!("--watchers must be positive");
    }
    if let Some(h) = a.hold {
        if !(h >= 0.0 && h.is_finite()) || a.target != Target::Kapi || a.stuck_watchers > 0 {
            bail!("--hold takes seconds >= 0, --target kapi and no --stuck-watchers");
        }
    } else if a.rate <= 0.0 || a.duration <= 0.0 || a.objects == 0 {
        bail!("--rate, --duration and --objects must be positive");
    }
    if (a.stuck_watchers > 0 || a.prefill_writes > 0) && a.target != Target::Kapi {
        bail!("--stuck-watchers and --prefill-writes need --target kapi");
    }
    if !(a.rss_interval > 0.0 && a.rss_interval.is_finite()) {
        bail!("--rss-interval must be positive");
    }
    if a.nodes > 0 && (a.kind != Kind::Pods || a.target != Target::Kapi) {
        bail!("--nodes (field-selected watchers) needs --kind pods and --target kapi");
    }
    if a.churn && a.target == Target::Kapi && a.kind != Kind::Pods {
        bail!("--churn against kapi needs --kind pods (a ConfigMap DELETE answers with a Status that has no revision)");
    }
    if a.target == Target::Etcd && a.etcd_endpoint.is_none() {
        bail!("--target etcd needs --etcd-endpoint");
    }
    Ok(())
}

/// The writer of one target.
enum Writer {
    Kapi(kapi::Writer),
    Etcd(Box<etcd::Writer>),
}

#[derive(Default)]
struct WriteStats {
    acked: u64,
    errors: u64,
    first_error: Option<String>,
    rtt: Hist,
    /// Objects that exist at the end (for cleanup).
    existing: Vec<u32>,
}

struct Plan {
    kind: Kind,
    ns: String,
    objects: u32,
    writers: usize,
    churn: bool,
    size: usize,
    rate: f64,
    max_writes: u64,
    t0_ns: u64,
    end_ns: u64,
    nodes: u32,
    /// Watchers per node (node mode) or [all watchers]: the deliveries one write should cause.
    weights: Vec<u64>,
}

impl Plan {
    fn node_of(&self, idx: u32) -> Option<String> {
        match self.kind {
            Kind::Pods => Some(format!("node-{}", idx % self.nodes.max(1))),
            Kind::Configmaps => None,
        }
    }
    fn weight(&self, idx: u32) -> u64 {
        if self.nodes > 0 {
            self.weights[(idx % self.nodes) as usize]
        } else {
            self.weights[0]
        }
    }
}

async fn write_loop(
    ctx: Arc<Ctx>,
    plan: Arc<Plan>,
    mut w: Writer,
    k: usize,
    ticket: Arc<AtomicU64>,
) -> (Writer, WriteStats) {
    let owned: Vec<u32> = (k as u32..plan.objects).step_by(plan.writers).collect();
    // (exists, last resourceVersion, writes so far)
    let mut state: Vec<(bool, i64, u64)> = vec![(false, 0, 0); owned.len()];
    let mut st = WriteStats::default();
    if owned.is_empty() {
        return (w, st);
    }
    let mut pos = 0usize;
    loop {
        let t = ticket.fetch_add(1, Ordering::Relaxed);
        if t >= plan.max_writes {
            break;
        }
        let due = plan.t0_ns + (t as f64 * 1e9 / plan.rate) as u64;
        if due >= plan.end_ns {
            break;
        }
        let now = now_ns();
        if due > now {
            tokio::time::sleep(Duration::from_nanos(due - now)).await;
        }
        let slot = pos % owned.len();
        pos += 1;
        let idx = owned[slot];
        let (exists, rv, seq) = state[slot];
        let name = ctx.naming.name(idx);
        let node = plan.node_of(idx);
        let sent = now_ns();
        let result = match &mut w {
            Writer::Kapi(kw) => {
                if !exists {
                    let o = objects::object(
                        plan.kind,
                        &plan.ns,
                        &name,
                        node.as_deref(),
                        seq,
                        plan.size,
                        None,
                    );
                    kw.create(&o).await.map(|rv| (true, rv))
                } else if plan.churn {
                    kw.delete(&name).await.map(|rv| (false, rv))
                } else {
                    let o = objects::object(
                        plan.kind,
                        &plan.ns,
                        &name,
                        node.as_deref(),
                        seq,
                        plan.size,
                        Some(rv),
                    );
                    kw.update(&name, &o).await.map(|rv| (true, rv))
                }
            }
            Writer::Etcd(ew) => {
                if exists && plan.churn {
                    ew.delete(&name).await.map(|rv| (false, rv))
                } else {
                    let o = objects::object(
                        plan.kind,
                        &plan.ns,
                        &name,
                        node.as_deref(),
                        seq,
                        plan.size,
                        None,
                    );
                    match serde_json::to_vec(&o) {
                        Ok(v) => ew.put(&name, v).await.map(|rv| (true, rv)),
                        Err(e) => Err(e.into()),
                    }
                }
            }
        };
        let ack = now_ns();
        match result {
            Ok((exists, rv)) => {
                ctx.acks.insert(rv, idx, sent, ack);
                ctx.expected.fetch_add(plan.weight(idx), Ordering::Relaxed);
                st.acked += 1;
                st.rtt.record((ack - sent) / 1000);
                state[slot] = (exists, rv, seq + 1);
            }
            Err(e) => {
                st.errors += 1;
                st.first_error.get_or_insert_with(|| format!("{e:#}"));
                // The object's state is unknown now: a create retried on an existing object
                // fails visibly, so assume it exists and refresh its revision on next update.
                state[slot].2 = seq + 1;
            }
        }
    }
    st.existing = owned
        .iter()
        .zip(&state)
        .filter(|(_, s)| s.0)
        .map(|(i, _)| *i)
        .collect();
    (w, st)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    validate(&args)?;
    if let Some(n) = args.fill {
        let ep = if args.target == Target::Kapi
            || args.kubeconfig.is_some()
            || args.data_dir.is_some()
        {
            Some(Arc::new(kapi::Endpoint::new(
                args.server.as_deref(),
                args.kubeconfig.as_deref(),
                args.data_dir.as_deref(),
                args.http,
            )?))
        } else {
            None
        };
        return fill::run(&args, ep, n).await;
    }
    let run_id = format!("{:06x}", rand::thread_rng().gen::<u32>() & 0xff_ffff);
    let naming = Naming::new(&run_id);
    let plural = args.kind.plural();
    eprintln!(
        "loadgen: run {run_id}: target {:?}, {} watchers{}{}, {}, {:?}",
        args.target,
        args.watchers,
        if args.nodes > 0 {
            format!(" over {} nodes", args.nodes)
        } else {
            String::new()
        },
        if args.stuck_watchers > 0 {
            format!(" + {} stuck", args.stuck_watchers)
        } else {
            String::new()
        },
        match args.hold {
            Some(h) => format!("idle for {h} s"),
            None => format!("{} writes/s for {} s", args.rate, args.duration),
        },
        args.kind
    );
    let rss =
        procstat::RssSampler::start(&args.server_pid, Duration::from_secs_f64(args.rss_interval));

    // Target set-up and the base revision every watcher starts after.
    let endpoint = match args.target {
        Target::Kapi => Some(Arc::new(kapi::Endpoint::new(
            args.server.as_deref(),
            args.kubeconfig.as_deref(),
            args.data_dir.as_deref(),
            args.http,
        )?)),
        Target::Etcd => None,
    };
    let etcd_endpoint = args.etcd_endpoint.clone().unwrap_or_default();
    let etcd_prefix = format!(
        "{}/{}/{}/",
        args.etcd_prefix.trim_end_matches('/'),
        plural,
        args.namespace
    );
    let mut admin = endpoint
        .as_ref()
        .map(|ep| kapi::Writer::new(ep.clone(), &args.namespace, plural));
    let mut base = match &mut admin {
        Some(w) => {
            w.ensure_namespace(&args.namespace).await?;
            kapi_revision(w, &args.namespace, plural).await?
        }
        None => {
            let mut c = etcd::connect(&etcd_endpoint).await?;
            etcd::current_revision(&mut c, &etcd_prefix).await?
        }
    };
    let metrics_before = match &mut admin {
        Some(w) => server_metrics(w).await,
        None => None,
    };
    let timeout_s =
        (args.connect_timeout + args.duration + args.drain + args.hold.unwrap_or(0.0) + 60.0)
            as u64;
    let scope = if args.namespaced_watch {
        format!("/api/v1/namespaces/{}/{plural}", args.namespace)
    } else {
        format!("/api/v1/{plural}")
    };
    let watch_path = |rv: i64, node: Option<u32>| {
        let mut path = format!("{scope}?watch=1&resourceVersion={rv}&timeoutSeconds={timeout_s}");
        if let Some(n) = node {
            path.push_str(&format!("&fieldSelector=spec.nodeName%3Dnode-{n}"));
        }
        path
    };

    // Stuck watchers, then the unmeasured writes that fill them up.
    let mut stuck_conns = Vec::new();
    let mut stuck_errors = Vec::new();
    if let Some(ep) = &endpoint {
        for i in 0..args.stuck_watchers {
            let node = (args.nodes > 0).then(|| i as u32 % args.nodes);
            match stuck::open(ep, &watch_path(base, node), args.stuck_rcvbuf).await {
                Ok(s) => stuck_conns.push(s),
                Err(e) => stuck_errors.push(format!("{e:#}")),
            }
        }
    }
    if args.stuck_watchers > 0 {
        eprintln!(
            "loadgen: {}/{} stuck watchers open{}",
            stuck_conns.len(),
            args.stuck_watchers,
            stuck_errors
                .first()
                .map(|e| format!(" (first error: {e})"))
                .unwrap_or_default()
        );
    }
    let mut prefilled: Vec<String> = Vec::new();
    if let (Some(ep), true) = (&endpoint, args.prefill_writes > 0) {
        let started = now_ns();
        let (names, errors) = prefill(ep, &args, &naming.prefix, args.prefill_writes).await;
        prefilled = names;
        eprintln!(
            "loadgen: {} prefill writes in {:.1} s ({errors} failed)",
            args.prefill_writes,
            (now_ns() - started) as f64 / 1e9
        );
        if let Some(w) = &mut admin {
            base = kapi_revision(w, &args.namespace, plural).await?;
        }
    }
    let planned = ((args.rate * args.duration).ceil() as u64)
        .min(args.max_writes.unwrap_or(u64::MAX))
        .max(1);
    let capacity = (planned * 4 + 100_000) as usize;
    let ctx = Arc::new(Ctx {
        acks: AckTable::new(base, capacity),
        naming,
        nodes: args.nodes,
        delivered: AtomicU64::new(0),
        expected: AtomicU64::new(0),
    });

    // Watchers.
    let connect_started = now_ns();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
    let sem = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let rss_before_watchers = rss.now();
    let mut tasks = Vec::with_capacity(args.watchers);
    let mut shared_h2: Option<kapi::Conn> = None;
    let mut etcd_client: Option<etcd_client::Client> = None;
    for i in 0..args.watchers {
        let node = (args.nodes > 0).then(|| i as u32 % args.nodes);
        let rec = WatchRec::new(node);
        let (ctx, conn_tx, stop_rx, sem) =
            (ctx.clone(), conn_tx.clone(), stop_rx.clone(), sem.clone());
        match &endpoint {
            Some(ep) => {
                let path = watch_path(base, node);
                // HTTP/2: a new connection every `streams_per_conn` watchers.
                let h2 = if args.http == kapi::HttpVersion::Http2 {
                    if i % args.streams_per_conn.max(1) == 0 {
                        let _permit = sem.clone().acquire_owned().await?;
                        shared_h2 = match ep.connect().await {
                            Ok(c) => Some(c),
                            Err(e) => {
                                eprintln!("loadgen: HTTP/2 connection failed: {e:#}");
                                None
                            }
                        };
                    }
                    shared_h2.as_ref().and_then(kapi::Conn::share)
                } else {
                    None
                };
                let ep = ep.clone();
                tasks.push(tokio::spawn(async move {
                    let conn = match h2 {
                        Some(c) => c,
                        None => {
                            let permit = sem.acquire_owned().await;
                            let c = ep.connect().await;
                            drop(permit);
                            match c {
                                Ok(c) => c,
                                Err(e) => {
                                    let mut rec = rec;
                                    let e = format!("connect: {e:#}");
                                    let _ = conn_tx.send(Err(e.clone()));
                                    rec.error = Some(e);
                                    return rec;
                                }
                            }
                        }
                    };
                    kapi::watch(ctx, conn, path, rec, conn_tx, stop_rx).await
                }));
            }
            None => {
                if i % args.etcd_streams_per_conn.max(1) == 0 {
                    etcd_client = Some(etcd::connect(&etcd_endpoint).await?);
                }
                let client = etcd_client.clone().expect("etcd client");
                let prefix = etcd_prefix.clone();
                tasks.push(tokio::spawn(async move {
                    let permit = sem.acquire_owned().await;
                    let r = etcd::watch(ctx, client, prefix, base + 1, rec, conn_tx, stop_rx);
                    drop(permit);
                    r.await
                }));
            }
        }
    }
    drop(conn_tx);
    let mut connected = 0usize;
    let mut failed = 0usize;
    let mut first_connect_error: Option<String> = None;
    let mut per_node = vec![0u64; args.nodes.max(1) as usize];
    let connect_deadline =
        tokio::time::Instant::now() + Duration::from_secs_f64(args.connect_timeout);
    while connected + failed < args.watchers {
        match tokio::time::timeout_at(connect_deadline, conn_rx.recv()).await {
            Ok(Some(Ok(node))) => {
                connected += 1;
                per_node[node.unwrap_or(0) as usize] += 1;
            }
            Ok(Some(Err(e))) => {
                failed += 1;
                first_connect_error.get_or_insert(e);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let connect_s = (now_ns() - connect_started) as f64 / 1e9;
    eprintln!(
        "loadgen: {connected}/{} watchers established in {connect_s:.1} s{}",
        args.watchers,
        first_connect_error
            .as_deref()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default()
    );
    if connected == 0 {
        let _ = stop_tx.send(true);
        bail!(
            "no watcher could be established: {}",
            first_connect_error.unwrap_or_default()
        );
    }
    let rss_connected = rss.now();
    if let Some(hold) = args.hold {
        // Idle watchers: nothing is written; what the server holds for them is the difference.
        tokio::time::sleep(Duration::from_secs_f64(hold)).await;
        let with = rss.now();
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let closed = rss.now();
        let idle: Vec<serde_json::Value> = rss
            .finish()
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let per = (with[i] as f64 - rss_before_watchers[i] as f64) / connected as f64;
                eprintln!(
                    "loadgen: server {} RSS {} KiB -> {} KiB with {connected} idle watchers \
                     ({per:.1} KiB each), {} KiB after closing them",
                    f.pid, rss_before_watchers[i], with[i], closed[i]
                );
                json!({
                    "pid": f.pid,
                    "rss_before_kib": rss_before_watchers[i],
                    "rss_with_watchers_kib": with[i],
                    "rss_after_close_kib": closed[i],
                    "kib_per_watcher": round3(per),
                    "series_kib": f.series_kib,
                })
            })
            .collect();
        return Ok(json!({
            "loadgen": 1,
            "mode": "hold",
            "run": run_id,
            "http": http_label(&args),
            "streams_per_conn": (args.http == kapi::HttpVersion::Http2).then_some(args.streams_per_conn),
            "kind": plural,
            "watchers": args.watchers,
            "watchers_connected": connected,
            "connect_s": round3(connect_s),
            "hold_s": hold,
            "idle": idle,
            "first_error": first_connect_error,
        }));
    }
    // Deliveries each write should cause: the established watchers of its node (node mode),
    // else every established watcher.
    let weights = per_node;

    // Writes.
    let mut probe = procstat::ServerProbe::new(&args.server_pid);
    let self_cpu0 = procstat::cpu_seconds("self").unwrap_or(0.0);
    probe.start();
    let t0 = now_ns() + 50_000_000;
    let plan = Arc::new(Plan {
        kind: args.kind,
        ns: args.namespace.clone(),
        objects: args.objects,
        writers: args.writers,
        churn: args.churn,
        size: args.object_size,
        rate: args.rate,
        max_writes: args.max_writes.unwrap_or(u64::MAX),
        t0_ns: t0,
        end_ns: t0 + (args.duration * 1e9) as u64,
        nodes: args.nodes,
        weights,
    });
    let ticket = Arc::new(AtomicU64::new(0));
    let mut writer_tasks = Vec::new();
    for k in 0..args.writers {
        let w = match &endpoint {
            Some(ep) => Writer::Kapi(kapi::Writer::new(ep.clone(), &args.namespace, plural)),
            None => Writer::Etcd(Box::new(etcd::Writer::new(
                etcd::connect(&etcd_endpoint).await?,
                &etcd_prefix,
            ))),
        };
        writer_tasks.push(tokio::spawn(write_loop(
            ctx.clone(),
            plan.clone(),
            w,
            k,
            ticket.clone(),
        )));
    }
    let mut writers_done = false;
    let mut last_progress = now_ns();
    let mut writes_end = 0u64;
    let mut drain_deadline = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        probe.sample();
        let now = now_ns();
        if !writers_done && writer_tasks.iter().all(|t| t.is_finished()) {
            writers_done = true;
            writes_end = now;
            drain_deadline = now + (args.drain * 1e9) as u64;
        }
        let delivered = ctx.delivered.load(Ordering::Relaxed);
        let expected = ctx.expected.load(Ordering::Relaxed);
        if now - last_progress > 5_000_000_000 {
            last_progress = now;
            eprintln!(
                "loadgen: t={:.0}s writes acked {} deliveries {delivered}/{expected}",
                (now.saturating_sub(t0)) as f64 / 1e9,
                ctx.acks.len()
            );
        }
        if writers_done && (delivered >= expected || now >= drain_deadline) {
            break;
        }
    }
    // A short grace for duplicates that would follow the last expected delivery.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let window_end = now_ns();
    let server = probe.finish();
    let rss_figs = rss.finish();
    let self_cpu = procstat::cpu_seconds("self").unwrap_or(0.0) - self_cpu0;
    let _ = stop_tx.send(true);
    let metrics_after = match &mut admin {
        Some(w) => server_metrics(w).await,
        None => None,
    };

    let mut ws = WriteStats::default();
    let mut writers = Vec::new();
    for t in writer_tasks {
        let (w, s) = t.await?;
        writers.push(w);
        ws.acked += s.acked;
        ws.errors += s.errors;
        if ws.first_error.is_none() {
            ws.first_error = s.first_error;
        }
        ws.rtt.merge(&s.rtt);
        ws.existing.extend(s.existing);
    }
    let mut recs = Vec::with_capacity(tasks.len());
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(10), t).await {
            Ok(Ok(r)) => recs.push(r),
            _ => {
                let mut r = WatchRec::new(None);
                r.error = Some("watcher task did not finish".into());
                recs.push(r);
            }
        }
    }
    let tally = track::tally(&mut recs, &ctx.acks, args.nodes);
    // The stuck watchers read now that the measurement is over.
    let drained = futures::future::join_all(
        stuck_conns
            .into_iter()
            .map(|c| c.drain(Duration::from_secs(1), Duration::from_secs(10))),
    )
    .await;

    // Cleanup (not measured).
    if !args.no_cleanup {
        let cleanup = async {
            match writers.first_mut() {
                Some(Writer::Kapi(kw)) => {
                    for idx in ws.existing.iter() {
                        kw.delete_quietly(&ctx.naming.name(*idx)).await;
                    }
                    for name in &prefilled {
                        kw.delete_quietly(name).await;
                    }
                }
                Some(Writer::Etcd(ew)) => {
                    ew.delete_prefix(&format!("{etcd_prefix}{}", ctx.naming.prefix))
                        .await;
                }
                None => {}
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(30), cleanup).await;
    }

    // Report.
    let active_s = (tally.last_recv_ns.max(writes_end).saturating_sub(t0)) as f64 / 1e9;
    let window_s = (window_end.saturating_sub(t0)) as f64 / 1e9;
    let write_s = (writes_end.saturating_sub(t0)) as f64 / 1e9;
    let deliveries_per_s = if active_s > 0.0 {
        tally.matched as f64 / active_s
    } else {
        0.0
    };
    let server_cpu: f64 = server.iter().map(|s| s.cpu_s).sum();
    let per_cpu = if server_cpu > 0.0 {
        tally.matched as f64 / server_cpu
    } else {
        0.0
    };
    let h = &tally.hist;
    let server_json: Vec<serde_json::Value> = server
        .iter()
        .map(|s| {
            json!({
                "pid": s.pid,
                "cpu_s": round3(s.cpu_s),
                "rss_kib": s.rss_kib,
                "peak_rss_kib": s.peak_rss_kib,
                "hwm_kib": s.hwm_kib,
                "write_syscalls": s.write_syscalls,
                "write_syscalls_per_delivery": s
                    .write_syscalls
                    .map(|w| round3(w as f64 / tally.matched.max(1) as f64)),
            })
        })
        .collect();
    let rss_json: Vec<serde_json::Value> = rss_figs
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({
                "pid": f.pid,
                "start_kib": f.first_kib,
                "before_watchers_kib": rss_before_watchers[i],
                "connected_kib": rss_connected[i],
                "max_kib": f.max_kib,
                "end_kib": f.last_kib,
                "series_kib": f.series_kib,
            })
        })
        .collect();
    let stuck_json = json!({
        "watchers": args.stuck_watchers,
        "opened": drained.len(),
        "open_errors": stuck_errors,
        "rcvbuf": args.stuck_rcvbuf,
        "each": drained.iter().map(stuck::Drained::to_json).collect::<Vec<_>>(),
    });
    let report = json!({
        "loadgen": 1,
        "run": run_id,
        "target": format!("{:?}", args.target).to_lowercase(),
        "http": http_label(&args),
        "kind": plural,
        "mode": if args.nodes > 0 { "nodes" } else { "resource" },
        "nodes": args.nodes,
        "churn": args.churn,
        "watchers": args.watchers,
        "watchers_connected": connected,
        "watchers_failed": tally.failed,
        "watchers_ended_early": tally.ended_early,
        "connect_s": round3(connect_s),
        "rate_target": args.rate,
        "writes": ws.acked,
        "write_errors": ws.errors,
        "write_rate": round3(if write_s > 0.0 { ws.acked as f64 / write_s } else { 0.0 }),
        "write_ms": {"p50": ms(ws.rtt.quantile(0.5)), "p99": ms(ws.rtt.quantile(0.99)), "max": ms(ws.rtt.max_us)},
        "expected": tally.expected,
        "deliveries": tally.matched,
        "missed": tally.missed,
        "duplicated": tally.duplicated,
        "out_of_order": tally.out_of_order,
        "foreign": tally.foreign,
        "misrouted": tally.misrouted,
        "bytes": tally.bytes,
        "active_s": round3(active_s),
        "window_s": round3(window_s),
        "deliveries_per_s": round3(deliveries_per_s),
        "latency_ms": {
            "p50": ms(h.quantile(0.5)),
            "p90": ms(h.quantile(0.9)),
            "p99": ms(h.quantile(0.99)),
            "p999": ms(h.quantile(0.999)),
            "max": ms(h.max_us),
        },
        "latency_hist_us": h.sparse(),
        "sent_latency_ms": {
            "p50": ms(tally.hist_sent.quantile(0.5)),
            "p99": ms(tally.hist_sent.quantile(0.99)),
            "max": ms(tally.hist_sent.max_us),
        },
        "server_cpu_s": round3(server_cpu),
        "deliveries_per_server_cpu_s": round3(per_cpu),
        "server": server_json,
        "loadgen_cpu_s": round3(self_cpu),
        "rss": rss_json,
        "prefill_writes": args.prefill_writes,
        "stuck": stuck_json,
        "server_metrics": metrics_delta(metrics_before.as_ref(), metrics_after.as_ref()),
        "first_error": ws.first_error.or(tally.first_error),
    });
    eprintln!(
        "loadgen: {} writes ({} errors) → {}/{} deliveries in {:.2} s = {:.0}/s; missed {} dup {} \
         foreign {}; latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms; server CPU {:.2} s → {:.0} \
         deliveries/CPU-s; loadgen CPU {:.2} s",
        ws.acked,
        ws.errors,
        tally.matched,
        tally.expected,
        active_s,
        deliveries_per_s,
        tally.missed,
        tally.duplicated,
        tally.foreign,
        ms(h.quantile(0.5)),
        ms(h.quantile(0.99)),
        ms(h.max_us),
        server_cpu,
        per_cpu,
        self_cpu
    );
    Ok(report)
}

fn http_label(args: &Args) -> &'static str {
    match (args.target, args.http) {
        (Target::Etcd, _) => "grpc",
        (_, kapi::HttpVersion::Http1) => "http1",
        (_, kapi::HttpVersion::Http2) => "http2",
    }
}

/// The resourceVersion of a one-item list of the generator's namespace (the current revision).
async fn kapi_revision(w: &mut kapi::Writer, ns: &str, plural: &str) -> anyhow::Result<i64> {
    let list = w
        .get_json(&format!("/api/v1/namespaces/{ns}/{plural}?limit=1"))
        .await?;
    list["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .context("list without resourceVersion")
}

/// kapi's counters that tell what became of slow watchers, summed over their labels.
const WATCH_COUNTERS: &[&str] = &[
    "kapi_watch_stalls_total",
    "apiserver_terminated_watchers_total",
];

async fn server_metrics(w: &mut kapi::Writer) -> Option<Vec<f64>> {
    let text = w.get_text("/metrics").await.ok()?;
    Some(
        WATCH_COUNTERS
            .iter()
            .map(|name| {
                text.lines()
                    .filter(|l| {
                        l.strip_prefix(name)
                            .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                    })
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            })
            .collect(),
    )
}

fn metrics_delta(before: Option<&Vec<f64>>, after: Option<&Vec<f64>>) -> serde_json::Value {
    let (Some(b), Some(a)) = (before, after) else {
        return serde_json::Value::Null;
    };
    let m: serde_json::Map<String, serde_json::Value> = WATCH_COUNTERS
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), json!(a[i] - b[i])))
        .collect();
    serde_json::Value::Object(m)
}

/// `n` unmeasured writes spread over `--objects` objects named `<prefix>p<i>` (creates first,
/// then updates), `--writers` at a time; returns the names created and the failures.
async fn prefill(
    ep: &Arc<kapi::Endpoint>,
    args: &Args,
    prefix: &str,
    n: u64,
) -> (Vec<String>, u64) {
    let objects = u64::from(args.objects).min(n).max(1);
    let writers = (args.writers as u64).min(objects);
    let mut tasks = Vec::new();
    for k in 0..writers {
        let mut w = kapi::Writer::new(ep.clone(), &args.namespace, args.kind.plural());
        let (a, prefix) = (args.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            let owned: Vec<u64> = (k..objects).step_by(writers as usize).collect();
            // (name, last resourceVersion if created)
            let mut state: Vec<(String, Option<i64>)> = owned
                .iter()
                .map(|i| (format!("{prefix}p{i}"), None))
                .collect();
            let mut errors = 0u64;
            let mine = (k..n).step_by(writers as usize).count();
            for j in 0..mine {
                let slot = j % owned.len();
                let idx = owned[slot] as u32;
                let node = (a.kind == Kind::Pods).then(|| format!("node-{}", idx % a.nodes.max(1)));
                let (name, rv) = &state[slot];
                let o = objects::object(
                    a.kind,
                    &a.namespace,
                    name,
                    node.as_deref(),
                    j as u64,
                    a.object_size,
                    *rv,
                );
                let r = match rv {
                    None => w.create(&o).await,
                    Some(_) => w.update(name, &o).await,
                };
                match r {
                    Ok(rv) => state[slot].1 = Some(rv),
                    Err(_) => errors += 1,
                }
            }
            let created: Vec<String> = state
                .into_iter()
                .filter(|s| s.1.is_some())
                .map(|s| s.0)
                .collect();
            (created, errors)
        }));
    }
    let mut names = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((c, e)) = t.await {
            names.extend(c);
            errors += e;
        }
    }
    (names, errors)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
