//! Fill mode (`--fill N`): create N objects as fast as `--writers` allow, then exit. No watchers.
//!
//! Through kapi (`--target kapi`): N creates. Straight into etcd (`--target etcd`): one template
//! object is created through kapi, its stored bytes are read back from etcd and the template is
//! deleted again; every filled value is that stored form with its own name, uid and sequence
//! number, re-serialized in the same key order (kapi stores plain JSON, kind and apiVersion
//! first), so kapi decodes exactly what it would have written itself. One put per revision, as
//! kapi itself writes (multi-key transactions, which share a revision, are covered by
//! tests/txn_revisions.rs).

use crate::kapi::{Endpoint, Writer as KapiWriter};
use crate::objects::{self, Kind};
use crate::track::now_ns;
use crate::{etcd, Args, Target};
use anyhow::{anyhow, bail, Context as _};
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;

/// Puts in flight per writer (each writer has its own etcd connection).
const IN_FLIGHT: usize = 32;

fn name(args: &Args, i: u64) -> String {
    format!("{}{i:07}", args.fill_prefix)
}

fn node(args: &Args, i: u64) -> Option<String> {
    (args.kind == Kind::Pods).then(|| format!("node-{}", i % u64::from(args.nodes.max(1))))
}

pub async fn run(args: &Args, ep: Option<Arc<Endpoint>>, n: u64) -> anyhow::Result<Value> {
    let ep = ep.ok_or_else(|| {
        anyhow!("--fill needs kapi (--kubeconfig or --data-dir): --target etcd takes its template from it")
    })?;
    let plural = args.kind.plural();
    let mut admin = KapiWriter::new(ep.clone(), &args.namespace, plural);
    admin.ensure_namespace(&args.namespace).await?;
    let started = now_ns();
    let writers = (args.writers as u64).max(1);
    let (via, stored_bytes, revision, errors, first_error) = match args.target {
        Target::Kapi => {
            let mut tasks = Vec::new();
            for k in 0..writers {
                let mut w = KapiWriter::new(ep.clone(), &args.namespace, plural);
                let a = args.clone();
                tasks.push(tokio::spawn(async move {
                    let (mut errors, mut first, mut last_rv) = (0u64, None, 0i64);
                    for i in (k..n).step_by(writers as usize) {
                        let nm = name(&a, i);
                        let o = objects::object(
                            a.kind,
                            &a.namespace,
                            &nm,
                            node(&a, i).as_deref(),
                            i,
                            a.object_size,
                            None,
                        );
                        match w.create(&o).await {
                            Ok(rv) => last_rv = last_rv.max(rv),
                            Err(e) => {
                                errors += 1;
                                first.get_or_insert_with(|| format!("{e:#}"));
                            }
                        }
                    }
                    (errors, first, last_rv)
                }));
            }
            let (mut errors, mut first, mut rev) = (0, None, 0);
            for t in tasks {
                let (e, f, r) = t.await?;
                errors += e;
                first = first.or(f);
                rev = rev.max(r);
            }
            ("kapi", None, rev, errors, first)
        }
        Target::Etcd => {
            let endpoint = args
                .etcd_endpoint
                .clone()
                .ok_or_else(|| anyhow!("--target etcd needs --etcd-endpoint"))?;
            let prefix = format!(
                "{}/{}/{}/",
                args.etcd_prefix.trim_end_matches('/'),
                plural,
                args.namespace
            );
            let template = template(args, &mut admin, &endpoint, &prefix).await?;
            let template = Arc::new(template);
            let mut tasks = Vec::new();
            for k in 0..writers {
                let client = etcd::connect(&endpoint).await?;
                let (a, t, prefix) = (args.clone(), template.clone(), prefix.clone());
                tasks.push(tokio::spawn(async move {
                    let puts = (k..n).step_by(writers as usize).map(|i| {
                        let mut w = etcd::Writer::new(client.clone(), &prefix);
                        let nm = name(&a, i);
                        let v = stored_value(&t, a.kind, &nm, i, node(&a, i).as_deref());
                        async move {
                            let size = v.len() as u64;
                            w.put(&nm, v).await.map(|r| (r, size))
                        }
                    });
                    let mut results = futures::stream::iter(puts).buffer_unordered(IN_FLIGHT);
                    let (mut errors, mut first, mut rev, mut bytes) = (0u64, None, 0i64, 0u64);
                    while let Some(r) = results.next().await {
                        match r {
                            Ok((r, size)) => {
                                rev = rev.max(r);
                                bytes += size;
                            }
                            Err(e) => {
                                errors += 1;
                                first.get_or_insert_with(|| format!("{e:#}"));
                            }
                        }
                    }
                    (errors, first, rev, bytes)
                }));
            }
            let (mut errors, mut first, mut rev, mut bytes) = (0, None, 0, 0);
            for t in tasks {
                let (e, f, r, b) = t.await?;
                errors += e;
                first = first.or(f);
                rev = rev.max(r);
                bytes += b;
            }
            ("etcd", Some(bytes), rev, errors, first)
        }
    };
    let secs = (now_ns() - started) as f64 / 1e9;
    if errors > 0 && revision == 0 {
        bail!(
            "fill failed: {}",
            first_error.unwrap_or_else(|| "no write succeeded".into())
        );
    }
    // kapi must be able to read what was filled.
    let probe = format!(
        "/api/v1/namespaces/{}/{plural}/{}",
        args.namespace,
        name(args, n - 1)
    );
    let last = admin
        .get_json(&probe)
        .await
        .context("reading the last filled object back through kapi")?;
    eprintln!(
        "loadgen: filled {n} {plural} via {via} in {secs:.1} s ({:.0}/s), {errors} failed writes{}",
        n as f64 / secs.max(1e-9),
        stored_bytes
            .map(|b| format!(", {b} stored bytes"))
            .unwrap_or_default()
    );
    Ok(json!({
        "loadgen": 1,
        "mode": "fill",
        "via": via,
        "kind": plural,
        "namespace": args.namespace,
        "objects": n,
        "failed_writes": errors,
        "first_error": first_error,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "per_s": (n as f64 / secs.max(1e-9)).round(),
        "stored_bytes": stored_bytes,
        "revision": revision,
        "last_object_served_bytes": serde_json::to_vec(&last)?.len(),
    }))
}

/// kapi's stored form of one object: created through kapi, read from etcd, deleted again.
async fn template(
    args: &Args,
    admin: &mut KapiWriter,
    endpoint: &str,
    prefix: &str,
) -> anyhow::Result<serde_json::Map<String, Value>> {
    let nm = format!("{}template", args.fill_prefix);
    let o = objects::object(
        args.kind,
        &args.namespace,
        &nm,
        node(args, 0).as_deref(),
        0,
        args.object_size,
        None,
    );
    admin.create(&o).await.context("creating the template")?;
    let mut w = etcd::Writer::new(etcd::connect(endpoint).await?, prefix);
    let stored = w.get(&nm).await?;
    admin.delete_quietly(&nm).await;
    let stored = stored.ok_or_else(|| {
        anyhow!(
            "the template is not at {prefix}{nm}: is kapi on this etcd with --etcd-prefix {}?",
            args.etcd_prefix
        )
    })?;
    match serde_json::from_slice(&stored) {
        Ok(Value::Object(m)) => Ok(m),
        _ => bail!(
            "kapi's stored value is not JSON (encryption at rest?): cannot fill etcd directly"
        ),
    }
}

/// The template with this object's name, a fresh uid and its sequence number.
fn stored_value(
    t: &serde_json::Map<String, Value>,
    kind: Kind,
    name: &str,
    seq: u64,
    node: Option<&str>,
) -> Vec<u8> {
    let mut o = t.clone();
    if let Some(Value::Object(m)) = o.get_mut("metadata") {
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        if let Some(Value::Object(a)) = m.get_mut("annotations") {
            if a.contains_key("loadgen/seq") {
                a.insert("loadgen/seq".into(), json!(seq.to_string()));
            }
        }
    }
    match kind {
        Kind::Configmaps => {
            if let Some(Value::Object(d)) = o.get_mut("data") {
                d.insert("seq".into(), json!(seq.to_string()));
            }
        }
        Kind::Pods => {
            if let (Some(n), Some(Value::Object(s))) = (node, o.get_mut("spec")) {
                s.insert("nodeName".into(), json!(n));
            }
        }
    }
    serde_json::to_vec(&o).expect("JSON serializes")
}
