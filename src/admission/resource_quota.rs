//! `ResourceQuota` (`apiserver/pkg/admission/plugin/resourcequota` with the evaluators of
//! `pkg/quota/v1/evaluator/core`): a create (or an update that grows usage) is charged against
//! every ResourceQuota of its namespace that tracks what it uses. Usage is kept in the quota's
//! `status.used`, against `status.hard`; admission adds the request to `status.used` with a
//! compare-and-swap write before the object is stored, and refuses what would go over:
//! `exceeded quota: <name>, requested: pods=1, used: pods=2, limited: pods=2`.
//!
//! kube-controller-manager's quota controller, which sets `status.hard` from `spec.hard` and
//! recomputes `status.used` (releasing what deleted objects held), runs here as
//! [`spawn_controller`] / [`sync_all`].
//!
//! Tracked: pods (`pods`, `count/pods`, `cpu`/`memory`/`ephemeral-storage` and their
//! `requests.`/`limits.` forms, hugepages, extended resources; scopes `Terminating`,
//! `NotTerminating`, `BestEffort`, `NotBestEffort`, `PriorityClass`,
//! `CrossNamespacePodAffinity`), services (`services`, `services.loadbalancers`,
//! `services.nodeports`), persistentvolumeclaims (`persistentvolumeclaims`, `requests.storage`,
//! and per storage class), and `count/<resource>[.<group>]` for every resource (plus the legacy
//! names `configmaps`, `secrets`, `replicationcontrollers`, `resourcequotas`).

use super::pod::get;
use super::quantity::{resource_list, Quantity};
use super::{forbidden, Attributes, Lookup, Operation, ValidatingPlugin};
use crate::api::catalogue::{self, ResourceInfo};
use crate::api::handlers::Api;
use crate::api::status::ApiError;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub type ResourceList = BTreeMap<String, Quantity>;

fn quotas_res() -> &'static ResourceInfo {
    catalogue::lookup("", "v1", "resourcequotas").expect("resourcequotas are served")
}

/// `count/<plural>` for the core group, `count/<plural>.<group>` otherwise.
pub fn count_name(res: &ResourceInfo) -> String {
    if res.group.is_empty() {
        format!("count/{}", res.plural)
    } else {
        format!("count/{}.{}", res.plural, res.group)
    }
}

const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];
/// Resources whose absence from a container is an error when a quota tracks them.
const POD_VALIDATION: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];
const LEGACY_COUNTED: &[&str] = &[
    "configmaps",
    "secrets",
    "replicationcontrollers",
    "resourcequotas",
];
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// `helper.IsExtendedResourceName`: a qualified name outside `kubernetes.io`, not `requests.`.
fn is_extended(name: &str) -> bool {
    let Some((ns, _)) = name.split_once('/') else {
        return false;
    };
    !(ns == "kubernetes.io" || ns.ends_with(".kubernetes.io") || name.starts_with("requests."))
}

#[derive(Clone, Copy, Debug)]
enum Evaluator {
    Pods,
    Services,
    Pvcs,
    Count(&'static ResourceInfo),
}

impl PartialEq for Evaluator {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Evaluator::Count(a), Evaluator::Count(b)) => std::ptr::eq(*a, *b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

fn evaluator_for(res: &'static ResourceInfo) -> Evaluator {
    match (res.group, res.plural) {
        ("", "pods") => Evaluator::Pods,
        ("", "services") => Evaluator::Services,
        ("", "persistentvolumeclaims") => Evaluator::Pvcs,
        _ => Evaluator::Count(res),
    }
}

fn one() -> Quantity {
    Quantity::from_int(1)
}

fn add_into(total: &mut ResourceList, usage: &ResourceList) {
    for (k, v) in usage {
        match total.get_mut(k) {
            Some(t) => *t = t.add(v),
            None => {
                total.insert(k.clone(), *v);
            }
        }
    }
}

fn mask(list: &ResourceList, names: &BTreeSet<String>) -> ResourceList {
    list.iter()
        .filter(|(k, _)| names.contains(*k))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// `podComputeUsageHelper`.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut r = ResourceList::new();
    r.insert("pods".into(), one());
    for (base, req_name, lim_name) in [
        ("cpu", "requests.cpu", "limits.cpu"),
        ("memory", "requests.memory", "limits.memory"),
        (
            "ephemeral-storage",
            "requests.ephemeral-storage",
            "limits.ephemeral-storage",
        ),
    ] {
        if let Some(q) = requests.get(base) {
            r.insert(base.into(), *q);
            r.insert(req_name.into(), *q);
        }
        if let Some(q) = limits.get(base) {
            r.insert(lim_name.into(), *q);
        }
    }
    for (k, q) in requests {
        if k.starts_with("hugepages-") {
            r.insert(k.clone(), *q);
            r.insert(format!("requests.{k}"), *q);
        }
        if is_extended(k) {
            r.insert(format!("requests.{k}"), *q);
        }
    }
    r
}

/// Pod requests or limits: the containers' sum, at least each init container's value.
fn pod_totals(spec: &Value, which: &str) -> ResourceList {
    let mut total = ResourceList::new();
    for c in spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add_into(&mut total, &resource_list(get(c, &["resources", which])));
    }
    for c in spec
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (k, v) in resource_list(get(c, &["resources", which])) {
            let e = total.entry(k).or_insert(v);
            if v > *e {
                *e = v;
            }
        }
    }
    total
}

/// `QuotaV1Pod`: terminal or past-deletion pods hold no compute quota.
fn pod_counts(pod: &Value) -> bool {
    let phase = get(pod, &["status", "phase"])
        .and_then(Value::as_str)
        .unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return false;
    }
    if let Some(ts) = get(pod, &["metadata", "deletionTimestamp"]).and_then(Value::as_str) {
        if let Ok(t) =
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        {
            if time::OffsetDateTime::now_utc() > t {
                return false;
            }
        }
    }
    true
}

fn is_best_effort(spec: &Value) -> bool {
    super::pod::all_containers(spec).iter().all(|c| {
        let empty = |w: &str| {
            resource_list(get(c, &["resources", w]))
                .keys()
                .all(|k| k != "cpu" && k != "memory")
        };
        empty("requests") && empty("limits")
    })
}

fn cross_namespace_affinity(spec: &Value) -> bool {
    for kind in ["podAffinity", "podAntiAffinity"] {
        for mode in [
            "requiredDuringSchedulingIgnoredDuringExecution",
            "preferredDuringSchedulingIgnoredDuringExecution",
        ] {
            for t in get(spec, &["affinity", kind, mode])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let term = t.get("podAffinityTerm").unwrap_or(t);
                let has_ns = term
                    .get("namespaces")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if has_ns || term.get("namespaceSelector").is_some_and(|s| !s.is_null()) {
                    return true;
                }
            }
        }
    }
    false
}

/// The scope selectors of a quota: `spec.scopes` (as Exists) and `spec.scopeSelector`.
fn scope_selectors(quota: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = get(quota, &["spec", "scopes"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for e in get(quota, &["spec", "scopeSelector", "matchExpressions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        out.push((s("scopeName"), s("operator"), values));
    }
    out
}

fn pod_matches_scope(scope: &str, op: &str, values: &[String], pod: &Value) -> bool {
    let spec = pod.get("spec").cloned().unwrap_or_default();
    match scope {
        "Terminating" => get(&spec, &["activeDeadlineSeconds"])
            .and_then(Value::as_i64)
            .is_some_and(|d| d >= 0),
        "NotTerminating" => get(&spec, &["activeDeadlineSeconds"])
            .and_then(Value::as_i64)
            .is_none_or(|d| d < 0),
        "BestEffort" => is_best_effort(&spec),
        "NotBestEffort" => !is_best_effort(&spec),
        "CrossNamespacePodAffinity" => cross_namespace_affinity(&spec),
        "PriorityClass" => {
            let pc = spec
                .get("priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or("");
            match op {
                "Exists" => !pc.is_empty(),
                "DoesNotExist" => pc.is_empty(),
                "In" => values.iter().any(|v| v == pc),
                "NotIn" => !values.iter().any(|v| v == pc),
                _ => false,
            }
        }
        _ => false,
    }
}

impl Evaluator {
    /// `Handles`: which operations can change usage.
    fn handles(&self, attrs: &Attributes) -> bool {
        match self {
            Evaluator::Pods | Evaluator::Count(_) => attrs.operation == Operation::Create,
            Evaluator::Services | Evaluator::Pvcs => {
                matches!(attrs.operation, Operation::Create | Operation::Update)
            }
        }
    }

    /// `MatchingResources`: whether a quota resource name is measured by this evaluator.
    fn tracks(&self, name: &str) -> bool {
        match self {
            Evaluator::Pods => {
                POD_RESOURCES.contains(&name)
                    || name.starts_with("hugepages-")
                    || name.starts_with("requests.hugepages-")
                    || name.strip_prefix("requests.").is_some_and(is_extended)
            }
            Evaluator::Services => matches!(
                name,
                "count/services" | "services" | "services.loadbalancers" | "services.nodeports"
            ),
            Evaluator::Pvcs => {
                matches!(
                    name,
                    "count/persistentvolumeclaims" | "persistentvolumeclaims" | "requests.storage"
                ) || name
                    .split_once(STORAGE_CLASS_SUFFIX)
                    .is_some_and(|(_, r)| r == "requests.storage" || r == "persistentvolumeclaims")
            }
            Evaluator::Count(res) => {
                name == count_name(res)
                    || (res.group.is_empty()
                        && LEGACY_COUNTED.contains(&res.plural)
                        && name == res.plural)
            }
        }
    }

    fn usage(&self, obj: &Value) -> ResourceList {
        let mut r = ResourceList::new();
        match self {
            Evaluator::Pods => {
                r.insert("count/pods".into(), one());
                if pod_counts(obj) {
                    let spec = obj.get("spec").cloned().unwrap_or_default();
                    let req = pod_totals(&spec, "requests");
                    let lim = pod_totals(&spec, "limits");
                    add_into(&mut r, &compute_usage(&req, &lim));
                }
            }
            Evaluator::Services => {
                r.insert("count/services".into(), one());
                r.insert("services".into(), one());
                let t = get(obj, &["spec", "type"])
                    .and_then(Value::as_str)
                    .unwrap_or("ClusterIP");
                let ports = get(obj, &["spec", "ports"])
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len) as i64;
                let lb = t == "LoadBalancer";
                r.insert(
                    "services.loadbalancers".into(),
                    Quantity::from_int(lb as i64),
                );
                let node_ports = match t {
                    "NodePort" => ports,
                    "LoadBalancer"
                        if get(obj, &["spec", "allocateLoadBalancerNodePorts"])
                            .and_then(Value::as_bool)
                            != Some(false) =>
                    {
                        ports
                    }
                    _ => 0,
                };
                r.insert("services.nodeports".into(), Quantity::from_int(node_ports));
            }
            Evaluator::Pvcs => {
                r.insert("count/persistentvolumeclaims".into(), one());
                r.insert("persistentvolumeclaims".into(), one());
                let class = get(obj, &["spec", "storageClassName"])
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !class.is_empty() {
                    r.insert(
                        format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
                        one(),
                    );
                }
                if let Some(q) =
                    resource_list(get(obj, &["spec", "resources", "requests"])).get("storage")
                {
                    r.insert("requests.storage".into(), *q);
                    if !class.is_empty() {
                        r.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), *q);
                    }
                }
            }
            Evaluator::Count(res) => {
                r.insert(count_name(res), one());
                if res.group.is_empty() && LEGACY_COUNTED.contains(&res.plural) {
                    r.insert(res.plural.to_string(), one());
                }
            }
        }
        r
    }

    /// `Matches`: the quota limits something this evaluator measures, and its scopes select
    /// the object (only pods can be selected by scopes).
    fn matches(&self, quota: &Value, hard: &ResourceList, obj: &Value) -> bool {
        if !hard.keys().any(|k| self.tracks(k)) {
            return false;
        }
        scope_selectors(quota)
            .iter()
            .all(|(scope, op, values)| match self {
                Evaluator::Pods => pod_matches_scope(scope, op, values, obj),
                _ => false,
            })
    }

    /// `Constraints`: with cpu or memory quota'd, every container must state them.
    fn constraints(&self, required: &BTreeSet<String>, obj: &Value) -> Result<(), String> {
        if *self != Evaluator::Pods {
            return Ok(());
        }
        let required: BTreeSet<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|r| POD_VALIDATION.contains(r))
            .collect();
        if required.is_empty() {
            return Ok(());
        }
        let spec = obj.get("spec").cloned().unwrap_or_default();
        let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for key in ["containers", "initContainers"] {
            for c in spec
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let usage = compute_usage(
                    &resource_list(get(c, &["resources", "requests"])),
                    &resource_list(get(c, &["resources", "limits"])),
                );
                for r in &required {
                    if !usage.contains_key(*r) {
                        missing
                            .entry(r)
                            .or_default()
                            .insert(super::pod::name_of(c).to_string());
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(r, names)| {
                format!(
                    "{r} for: {}",
                    names.iter().cloned().collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }
}

/// `prettyPrint`: `a=1,b=2` in key order.
fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A quota as read for admission.
#[derive(Clone, Debug)]
struct QuotaDoc {
    name: String,
    object: Map<String, Value>,
    revision: i64,
    hard: ResourceList,
    used: ResourceList,
    changed: bool,
}

impl QuotaDoc {
    fn from_stored(s: super::Stored) -> QuotaDoc {
        let v = Value::Object(s.object.clone());
        QuotaDoc {
            name: get(&v, &["metadata", "name"])
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            hard: resource_list(get(&v, &["status", "hard"])),
            used: resource_list(get(&v, &["status", "used"])),
            object: s.object,
            revision: s.revision,
            changed: false,
        }
    }

    fn value(&self) -> Value {
        Value::Object(self.object.clone())
    }
}

fn list_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.canonical())))
            .collect(),
    )
}

/// Sets `status.<key>` the way Go's `omitempty` serializes a ResourceList: an empty list is left
/// out, so JSON and protobuf reads of the quota agree.
fn set_status_list(status: &mut Map<String, Value>, key: &str, list: &ResourceList) {
    if list.is_empty() {
        status.remove(key);
    } else {
        status.insert(key.into(), list_json(list));
    }
}

/// `CheckRequest`: charges one request to the quotas that apply; returns whether any changed.
fn check_request(
    quotas: &mut [QuotaDoc],
    attrs: &Attributes,
    ev: Evaluator,
) -> Result<(), ApiError> {
    if !ev.handles(attrs) {
        return Ok(());
    }
    let Some(obj) = attrs.object.as_ref() else {
        return Ok(());
    };
    let mut obj = Value::Object(obj.clone());
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if m.get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && !attrs.namespace.is_empty()
        {
            m.insert("namespace".into(), attrs.namespace.clone().into());
        }
    }
    let mut interesting = Vec::new();
    for (i, q) in quotas.iter().enumerate() {
        if !ev.matches(&q.value(), &q.hard, &obj) {
            continue;
        }
        let restricted: BTreeSet<String> =
            q.hard.keys().filter(|k| ev.tracks(k)).cloned().collect();
        if let Err(e) = ev.constraints(&restricted, &obj) {
            return Err(forbidden(attrs, format!("failed quota: {}: {e}", q.name)));
        }
        if restricted.iter().any(|r| !q.used.contains_key(r)) {
            return Err(forbidden(
                attrs,
                format!(
                    "status unknown for quota: {}, resources: {}",
                    q.name,
                    restricted.iter().cloned().collect::<Vec<_>>().join(",")
                ),
            ));
        }
        interesting.push(i);
    }
    if interesting.is_empty() {
        return Ok(());
    }
    let input = ev.usage(&obj);
    let negative: Vec<&String> = input
        .iter()
        .filter(|(_, v)| v.is_negative())
        .map(|(k, _)| k)
        .collect();
    if !negative.is_empty() {
        let names: Vec<String> = negative.into_iter().cloned().collect();
        return Err(forbidden(
            attrs,
            format!(
                "quota usage is negative for resource(s): {}",
                names.join(",")
            ),
        ));
    }
    let mut deltas: HashMap<usize, ResourceList> =
        interesting.iter().map(|i| (*i, input.clone())).collect();
    if attrs.operation == Operation::Update {
        let Some(old) = attrs.old_object.as_ref() else {
            return Err(forbidden(
                attrs,
                "unable to get previous usage since prior version of object was not found",
            ));
        };
        let old = Value::Object(old.clone());
        let has_rv = get(&old, &["metadata", "resourceVersion"])
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if has_rv {
            let prev = ev.usage(&old);
            let mut delta = ResourceList::new();
            for (k, v) in &input {
                let d = prev.get(k).map_or(*v, |p| v.sub(p));
                delta.insert(
                    k.clone(),
                    if d.is_negative() || d.is_zero() {
                        Quantity::zero()
                    } else {
                        d
                    },
                );
            }
            for k in prev.keys() {
                delta.entry(k.clone()).or_insert_with(Quantity::zero);
            }
            for i in &interesting {
                if ev.matches(&quotas[*i].value(), &quotas[*i].hard, &old) {
                    deltas.insert(*i, delta.clone());
                }
            }
        }
    }
    for d in deltas.values_mut() {
        d.retain(|_, v| !v.is_zero());
    }
    deltas.retain(|_, d| !d.is_empty());
    if deltas.is_empty() {
        return Ok(());
    }
    let mut updated: Vec<(usize, ResourceList)> = Vec::new();
    for i in &interesting {
        let Some(delta) = deltas.get(i) else { continue };
        let q = &quotas[*i];
        let hard_names: BTreeSet<String> = q.hard.keys().cloned().collect();
        let requested = mask(delta, &hard_names);
        let mut new_used = q.used.clone();
        add_into(&mut new_used, &requested);
        if attrs.subresource != "status" {
            let exceeded: BTreeSet<String> = requested
                .keys()
                .filter(|k| match (new_used.get(*k), q.hard.get(*k)) {
                    (Some(u), Some(h)) => u > h,
                    _ => false,
                })
                .cloned()
                .collect();
            if !exceeded.is_empty() {
                return Err(forbidden(
                    attrs,
                    format!(
                        "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                        q.name,
                        pretty(&mask(&requested, &exceeded)),
                        pretty(&mask(&q.used, &exceeded)),
                        pretty(&mask(&q.hard, &exceeded))
                    ),
                ));
            }
        }
        updated.push((*i, new_used));
    }
    for (i, used) in updated {
        if used != quotas[i].used {
            quotas[i].used = used;
            quotas[i].changed = true;
        }
    }
    Ok(())
}

/// The admission plugin. Requests in one namespace are checked one at a time.
#[derive(Default)]
pub struct ResourceQuota {
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ResourceQuota {
    fn lock_for(&self, ns: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap()
            .entry(ns.to_string())
            .or_default()
            .clone()
    }
}

const UPDATE_ATTEMPTS: usize = 4;

#[async_trait]
impl ValidatingPlugin for ResourceQuota {
    fn name(&self) -> &'static str {
        "ResourceQuota"
    }

    async fn validate(
        &self,
        lookup: &dyn Lookup,
        attrs: &Attributes,
        _warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if attrs.namespace.is_empty() || attrs.object.is_none() {
            return Ok(());
        }
        let ev = evaluator_for(attrs.resource);
        if !ev.handles(attrs) {
            return Ok(());
        }
        // Most namespaces have no quota: skip the lock for them.
        if lookup
            .list(quotas_res(), Some(&attrs.namespace))
            .await?
            .is_empty()
        {
            return Ok(());
        }
        let lock = self.lock_for(&attrs.namespace);
        let _guard = lock.lock().await;
        let mut quotas: Vec<QuotaDoc> = lookup
            .list(quotas_res(), Some(&attrs.namespace))
            .await?
            .into_iter()
            .map(QuotaDoc::from_stored)
            .collect();
        for attempt in 0..UPDATE_ATTEMPTS {
            if quotas.is_empty() {
                return Ok(());
            }
            check_request(&mut quotas, attrs, ev)?;
            if attrs.dry_run {
                return Ok(());
            }
            let mut failed = Vec::new();
            for q in quotas.iter().filter(|q| q.changed) {
                let mut obj = q.object.clone();
                let status = super::pod::obj_mut(&mut obj, "status");
                set_status_list(status, "used", &q.used);
                if let Some(Value::Object(m)) = obj.get_mut("metadata") {
                    m.remove("resourceVersion");
                }
                let wrote = lookup
                    .update(
                        quotas_res(),
                        Some(&attrs.namespace),
                        &q.name,
                        &obj,
                        q.revision,
                    )
                    .await?;
                if wrote.is_none() {
                    failed.push(q.name.clone());
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if attempt + 1 == UPDATE_ATTEMPTS {
                return Err(ApiError::modified_conflict(quotas_res(), &failed[0]));
            }
            // Re-read the quotas whose write lost a race and charge them again.
            let mut fresh = Vec::new();
            for name in failed {
                if let Some(s) = lookup
                    .get_live(quotas_res(), Some(&attrs.namespace), &name)
                    .await?
                {
                    fresh.push(QuotaDoc::from_stored(s));
                }
            }
            quotas = fresh;
        }
        Ok(())
    }
}

// ---- the quota controller ------------------------------------------------------------------

/// The evaluator that measures a quota resource name, if any.
fn evaluator_for_name(name: &str) -> Option<Evaluator> {
    for ev in [Evaluator::Pods, Evaluator::Services, Evaluator::Pvcs] {
        if ev.tracks(name) {
            return Some(ev);
        }
    }
    if LEGACY_COUNTED.contains(&name) {
        return catalogue::lookup("", "v1", name).map(Evaluator::Count);
    }
    let rest = name.strip_prefix("count/")?;
    let (plural, group) = rest.split_once('.').unwrap_or((rest, ""));
    catalogue::all()
        .iter()
        .find(|r| r.plural == plural && r.group == group && r.namespaced && r.conversion.is_none())
        .map(Evaluator::Count)
}

/// The status a quota should have: `hard` from `spec.hard`, `used` recomputed from the objects
/// in its namespace.
pub async fn compute_status(
    lookup: &dyn Lookup,
    quota: &Map<String, Value>,
) -> Result<(ResourceList, ResourceList), ApiError> {
    let qv = Value::Object(quota.clone());
    let ns = get(&qv, &["metadata", "namespace"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let hard = resource_list(get(&qv, &["spec", "hard"]));
    let mut by_ev: Vec<(Evaluator, BTreeSet<String>)> = Vec::new();
    for name in hard.keys() {
        if let Some(ev) = evaluator_for_name(name) {
            match by_ev.iter_mut().find(|(e, _)| *e == ev) {
                Some((_, names)) => {
                    names.insert(name.clone());
                }
                None => by_ev.push((ev, BTreeSet::from([name.clone()]))),
            }
        }
    }
    let mut used = ResourceList::new();
    for (ev, names) in by_ev {
        for n in &names {
            used.insert(n.clone(), Quantity::zero());
        }
        let res = match ev {
            Evaluator::Pods => catalogue::lookup("", "v1", "pods"),
            Evaluator::Services => catalogue::lookup("", "v1", "services"),
            Evaluator::Pvcs => catalogue::lookup("", "v1", "persistentvolumeclaims"),
            Evaluator::Count(r) => Some(r),
        }
        .expect("evaluated resources are served");
        for item in lookup.list(res, Some(&ns)).await? {
            let obj = Value::Object(item.object);
            let selected = scope_selectors(&qv)
                .iter()
                .all(|(scope, op, values)| match ev {
                    Evaluator::Pods => pod_matches_scope(scope, op, values, &obj),
                    _ => false,
                });
            if selected {
                add_into(&mut used, &mask(&ev.usage(&obj), &names));
            }
        }
    }
    Ok((hard, used))
}

/// Brings every quota's status up to date (CAS writes; a lost race is left to the next sync).
/// Returns how many quotas were written.
pub async fn sync_all(lookup: &dyn Lookup) -> Result<usize, ApiError> {
    let mut written = 0;
    for q in lookup.list(quotas_res(), None).await? {
        let qv = Value::Object(q.object.clone());
        let (hard, used) = compute_status(lookup, &q.object).await?;
        let cur_hard = resource_list(get(&qv, &["status", "hard"]));
        let cur_used = resource_list(get(&qv, &["status", "used"]));
        let written_before = hard.is_empty() || get(&qv, &["status", "hard"]).is_some();
        if cur_hard == hard && cur_used == used && written_before {
            continue;
        }
        let mut obj = q.object.clone();
        let status = super::pod::obj_mut(&mut obj, "status");
        set_status_list(status, "hard", &hard);
        set_status_list(status, "used", &used);
        if let Some(Value::Object(m)) = obj.get_mut("metadata") {
            m.remove("resourceVersion");
        }
        let ns = get(&qv, &["metadata", "namespace"])
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = get(&qv, &["metadata", "name"])
            .and_then(Value::as_str)
            .unwrap_or("");
        if lookup
            .update(quotas_res(), Some(ns), name, &obj, q.revision)
            .await?
            .is_some()
        {
            written += 1;
        }
    }
    Ok(written)
}

/// Resources whose changes can move quota usage promptly (others are caught by the resync).
const WATCHED: &[(&str, &str)] = &[
    ("", "resourcequotas"),
    ("", "pods"),
    ("", "services"),
    ("", "persistentvolumeclaims"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "replicationcontrollers"),
];

/// The quota controller: resyncs every quota's status shortly after a change to quotas or the
/// objects they usually count, and every `resync` regardless.
pub fn spawn_controller(api: Arc<Api>, resync: Duration) -> tokio::task::JoinHandle<()> {
    let wake = Arc::new(tokio::sync::Notify::new());
    for (g, p) in WATCHED {
        let Some(res) = catalogue::lookup(g, "v1", p) else {
            continue;
        };
        let mut rx = api.caches.get(res).subscribe_revision();
        let wake = wake.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                wake.notify_one();
            }
        });
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(resync) => {}
            }
            // Let a burst of changes settle.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(e) = sync_all(api.as_ref()).await {
                tracing::warn!(error = %e.message, "resource quota sync failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::lookup::MemoryLookup;
    use crate::admission::AdmissionUser;
    use serde_json::json;

    fn res(p: &str) -> &'static ResourceInfo {
        catalogue::lookup("", "v1", p).unwrap()
    }

    fn quota(l: &MemoryLookup, name: &str, hard: Value) {
        l.put(
            quotas_res(),
            json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"hard": hard}}),
        );
    }

    async fn create(
        l: &MemoryLookup,
        p: &ResourceQuota,
        plural: &str,
        obj: Value,
    ) -> Result<(), ApiError> {
        let a = Attributes::new(
            Operation::Create,
            res(plural),
            Some("ns"),
            "x",
            AdmissionUser::default(),
        )
        .with_object(obj.as_object().unwrap().clone());
        p.validate(l, &a, &mut Vec::new()).await
    }

    fn used(l: &MemoryLookup, name: &str) -> Value {
        l.object(quotas_res(), Some("ns"), name).unwrap()["status"]["used"].clone()
    }

    fn pod(cpu: &str) -> Value {
        json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c",
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}, "limits": {"cpu": cpu, "memory": "64Mi"}}}]}})
    }

    #[tokio::test]
    async fn pods_count_quota_with_kubes_message() {
        let l = MemoryLookup::new();
        let p = ResourceQuota::default();
        quota(&l, "q", json!({"pods": "2"}));
        // Before the controller has filled the status, nothing is enforced.
        create(&l, &p, "pods", pod("100m")).await.unwrap();
        assert_eq!(sync_all(&l).await.unwrap(), 1);
        assert_eq!(used(&l, "q"), json!({"pods": "0"}));
        create(&l, &p, "pods", pod("100m")).await.unwrap();
        create(&l, &p, "pods", pod("100m")).await.unwrap();
        assert_eq!(used(&l, "q"), json!({"pods": "2"}));
        let e = create(&l, &p, "pods", pod("100m")).await.unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"x\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
        );
        // The controller recomputes from the pods that exist (none here): usage is released.
        sync_all(&l).await.unwrap();
        assert_eq!(used(&l, "q"), json!({"pods": "0"}));
    }

    #[tokio::test]
    async fn compute_resources_and_constraints() {
        let l = MemoryLookup::new();
        let p = ResourceQuota::default();
        quota(
            &l,
            "compute",
            json!({"requests.cpu": "1", "limits.memory": "128Mi"}),
        );
        sync_all(&l).await.unwrap();
        assert_eq!(
            used(&l, "compute"),
            json!({"requests.cpu": "0", "limits.memory": "0"})
        );
        create(&l, &p, "pods", pod("600m")).await.unwrap();
        assert_eq!(
            used(&l, "compute"),
            json!({"requests.cpu": "600m", "limits.memory": "64Mi"})
        );
        let e = create(&l, &p, "pods", pod("500m")).await.unwrap_err();
        assert_eq!(
            e.message,
            "pods \"x\" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1"
        );
        let e = create(&l, &p, "pods", json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}))
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            "pods \"x\" is forbidden: failed quota: compute: must specify limits.memory for: a,b; requests.cpu for: a,b"
        );
    }

    #[tokio::test]
    async fn object_counts_and_status_unknown() {
        let l = MemoryLookup::new();
        let p = ResourceQuota::default();
        quota(
            &l,
            "objs",
            json!({"count/configmaps": "1", "services.nodeports": "1"}),
        );
        l.put(quotas_res(), json!({"metadata": {"name": "stale", "namespace": "ns"}, "spec": {"hard": {"secrets": "5"}},
            "status": {"hard": {"secrets": "5"}}}));
        let e = create(&l, &p, "secrets", json!({"metadata": {"name": "x"}}))
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            "secrets \"x\" is forbidden: status unknown for quota: stale, resources: secrets"
        );
        sync_all(&l).await.unwrap();
        create(&l, &p, "configmaps", json!({"metadata": {"name": "x"}}))
            .await
            .unwrap();
        let e = create(&l, &p, "configmaps", json!({"metadata": {"name": "x"}}))
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            "configmaps \"x\" is forbidden: exceeded quota: objs, requested: count/configmaps=1, used: count/configmaps=1, limited: count/configmaps=1"
        );
        let svc = |t: &str| json!({"metadata": {"name": "x"}, "spec": {"type": t, "ports": [{"port": 80}, {"port": 81}]}});
        create(&l, &p, "services", svc("ClusterIP")).await.unwrap();
        let e = create(&l, &p, "services", svc("NodePort"))
            .await
            .unwrap_err();
        assert!(e.message.contains("requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1"), "{}", e.message);
        // Dry runs are checked but not charged.
        let before = used(&l, "stale");
        let a = Attributes::new(
            Operation::Create,
            res("secrets"),
            Some("ns"),
            "x",
            AdmissionUser::default(),
        )
        .with_object(
            json!({"metadata": {"name": "x"}})
                .as_object()
                .unwrap()
                .clone(),
        )
        .with_dry_run(true);
        p.validate(&l, &a, &mut Vec::new()).await.unwrap();
        assert_eq!(used(&l, "stale"), before);
    }

    #[tokio::test]
    async fn scopes_and_controller_usage() {
        let l = MemoryLookup::new();
        l.put(
            quotas_res(),
            json!({"metadata": {"name": "be", "namespace": "ns"},
            "spec": {"hard": {"pods": "5"}, "scopes": ["BestEffort"]}}),
        );
        let pods = res("pods");
        l.put(pods, json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"containers": [{"name": "c"}]}}));
        l.put(pods, json!({"metadata": {"name": "b", "namespace": "ns"}, "spec": {"containers": [{"name": "c",
            "resources": {"requests": {"cpu": "1"}}}]}}));
        l.put(pods, json!({"metadata": {"name": "done", "namespace": "ns"}, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Succeeded"}}));
        sync_all(&l).await.unwrap();
        assert_eq!(
            used(&l, "be"),
            json!({"pods": "1"}),
            "only the running best-effort pod counts"
        );
        let st = l.object(quotas_res(), Some("ns"), "be").unwrap();
        assert_eq!(st["status"]["hard"], json!({"pods": "5"}));
        assert_eq!(
            sync_all(&l).await.unwrap(),
            0,
            "nothing to write when up to date"
        );
    }

    #[tokio::test]
    async fn empty_quota_gets_no_empty_status_maps() {
        let l = MemoryLookup::new();
        l.put(
            quotas_res(),
            json!({"metadata": {"name": "empty", "namespace": "ns"}, "status": {}}),
        );
        // Go omits empty ResourceLists, so there is nothing to write for an empty quota.
        assert_eq!(sync_all(&l).await.unwrap(), 0);
        let q = l.object(quotas_res(), Some("ns"), "empty").unwrap();
        assert_eq!(q["status"], json!({}));
    }
}
