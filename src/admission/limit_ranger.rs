//! `LimitRanger` (`plugin/pkg/admission/limitranger`): the LimitRange objects of a namespace
//! default the requests and limits of new pods' containers (mutating) and bound containers, pods
//! and PersistentVolumeClaims by `min`, `max` and `maxLimitRequestRatio` (validating).
//!
//! kube-apiserver defaults a LimitRange item when it is stored (a `max` without `default` makes
//! the max the default limit; a default limit is the default request; a `min` is the default
//! request). kapi does not default stored objects, so those defaults are applied here, on read.

use super::pod::{get, obj_mut};
use super::quantity::{resource_list, Quantity};
use super::{forbidden, Attributes, Lookup, MutatingPlugin, Operation, ValidatingPlugin};
use crate::api::catalogue;
use crate::api::status::ApiError;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

type ResourceList = BTreeMap<String, Quantity>;

/// One `spec.limits[]` item, with the storage-time defaults applied.
#[derive(Clone, Debug, Default)]
struct Item {
    kind: String,
    min: ResourceList,
    max: ResourceList,
    default: ResourceList,
    default_request: ResourceList,
    ratio: ResourceList,
}

fn items(limit_range: &Map<String, Value>) -> Vec<Item> {
    let Some(limits) = limit_range
        .get("spec")
        .and_then(|s| s.get("limits"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    limits
        .iter()
        .map(|l| {
            let mut it = Item {
                kind: l
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                min: resource_list(l.get("min")),
                max: resource_list(l.get("max")),
                default: resource_list(l.get("default")),
                default_request: resource_list(l.get("defaultRequest")),
                ratio: resource_list(l.get("maxLimitRequestRatio")),
            };
            if it.kind == "Container" {
                for (k, v) in &it.max {
                    it.default.entry(k.clone()).or_insert(*v);
                }
                for (k, v) in &it.default {
                    it.default_request.entry(k.clone()).or_insert(*v);
                }
                for (k, v) in &it.min {
                    it.default_request.entry(k.clone()).or_insert(*v);
                }
            }
            it
        })
        .collect()
}

/// (request, limit, enforced) at a common precision (`requestLimitEnforcedValues`).
fn precise(
    req: Option<&Quantity>,
    lim: Option<&Quantity>,
    enforced: &Quantity,
) -> (i128, i128, i128) {
    let zero = Quantity::zero();
    let (r, l) = (req.unwrap_or(&zero), lim.unwrap_or(&zero));
    const MAX_MILLI: i128 = i64::MAX as i128 / 1000;
    if r.value() <= MAX_MILLI && l.value() <= MAX_MILLI && enforced.value() <= MAX_MILLI {
        (r.milli_value(), l.milli_value(), enforced.milli_value())
    } else {
        (r.value(), l.value(), enforced.value())
    }
}

fn min_constraint(
    kind: &str,
    res: &str,
    enforced: &Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let (r, l) = (req.get(res), lim.get(res));
    let (rv, lv, ev) = precise(r, l, enforced);
    match r {
        None => Some(format!(
            "minimum {res} usage per {kind} is {enforced}.  No request is specified"
        )),
        Some(r) if rv < ev => Some(format!(
            "minimum {res} usage per {kind} is {enforced}, but request is {r}"
        )),
        _ => match l {
            Some(l) if lv < ev => Some(format!(
                "minimum {res} usage per {kind} is {enforced}, but limit is {l}"
            )),
            _ => None,
        },
    }
}

fn max_constraint(
    kind: &str,
    res: &str,
    enforced: &Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let (r, l) = (req.get(res), lim.get(res));
    let (rv, lv, ev) = precise(r, l, enforced);
    match l {
        None => Some(format!(
            "maximum {res} usage per {kind} is {enforced}.  No limit is specified"
        )),
        Some(l) if lv > ev => Some(format!(
            "maximum {res} usage per {kind} is {enforced}, but limit is {l}"
        )),
        _ => match r {
            Some(r) if rv > ev => Some(format!(
                "maximum {res} usage per {kind} is {enforced}, but request is {r}"
            )),
            _ => None,
        },
    }
}

fn max_request_constraint(
    kind: &str,
    res: &str,
    enforced: &Quantity,
    req: &ResourceList,
) -> Option<String> {
    let r = req.get(res);
    let (rv, _, ev) = precise(r, None, enforced);
    match r {
        None => Some(format!(
            "maximum {res} usage per {kind} is {enforced}.  No request is specified"
        )),
        Some(r) if rv > ev => Some(format!(
            "maximum {res} usage per {kind} is {enforced}, but request is {r}"
        )),
        _ => None,
    }
}

fn ratio_constraint(
    kind: &str,
    res: &str,
    enforced: &Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let (r, l) = (req.get(res), lim.get(res));
    let (rv, lv, _) = precise(r, l, enforced);
    if r.is_none() || rv == 0 {
        return Some(format!(
            "{res} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
        ));
    }
    if l.is_none() || lv == 0 {
        return Some(format!(
            "{res} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
        ));
    }
    let observed = lv as f64 / rv as f64;
    const MAX_MILLI: i128 = i64::MAX as i128 / 1000;
    let (cmp_observed, max) = if enforced.value() <= MAX_MILLI {
        (observed * 1000.0, enforced.milli_value() as f64)
    } else {
        (observed, enforced.value() as f64)
    };
    if cmp_observed > max {
        return Some(format!(
            "{res} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:.6}"
        ));
    }
    None
}

/// `utilerrors.NewAggregate(errs).Error()`.
fn aggregate(errs: Vec<String>) -> Option<String> {
    let mut seen = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

fn container_resources(c: &Value) -> (ResourceList, ResourceList) {
    (
        resource_list(get(c, &["resources", "requests"])),
        resource_list(get(c, &["resources", "limits"])),
    )
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
        for (k, v) in resource_list(get(c, &["resources", which])) {
            match total.get_mut(&k) {
                Some(e) => *e = e.add(&v),
                None => {
                    total.insert(k, v);
                }
            }
        }
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

/// Fills in default requests and limits (`mergePodResourceRequirements`).
fn default_pod(pod: &mut Map<String, Value>, items: &[Item]) {
    let mut requests = ResourceList::new();
    let mut limits = ResourceList::new();
    for it in items.iter().filter(|i| i.kind == "Container") {
        requests.extend(it.default_request.iter().map(|(k, v)| (k.clone(), *v)));
        limits.extend(it.default.iter().map(|(k, v)| (k.clone(), *v)));
    }
    if requests.is_empty() && limits.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    let spec = obj_mut(pod, "spec");
    for (key, label) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in list.iter_mut().filter_map(Value::as_object_mut) {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let res = obj_mut(c, "resources");
            let mut set_limits = Vec::new();
            let lim = obj_mut(res, "limits");
            for (k, v) in &limits {
                if !lim.contains_key(k) {
                    lim.insert(k.clone(), Value::String(v.canonical()));
                    set_limits.push(k.clone());
                }
            }
            let mut set_requests = Vec::new();
            let req = obj_mut(res, "requests");
            for (k, v) in &requests {
                if !req.contains_key(k) {
                    req.insert(k.clone(), Value::String(v.canonical()));
                    set_requests.push(k.clone());
                }
            }
            for k in ["limits", "requests"] {
                if res
                    .get(k)
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty)
                {
                    res.remove(k);
                }
            }
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {label} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!(
                    "{} limit for {label} {name}",
                    set_limits.join(", ")
                ));
            }
        }
    }
    if !notes.is_empty() {
        let ann = obj_mut(obj_mut(pod, "metadata"), "annotations");
        ann.insert(
            ANNOTATION.into(),
            Value::String(format!("LimitRanger plugin set: {}", notes.join("; "))),
        );
    }
}

fn validate_pod(pod: &Value, items: &[Item]) -> Option<String> {
    let spec = pod.get("spec").cloned().unwrap_or_default();
    let mut errs = Vec::new();
    for it in items {
        match it.kind.as_str() {
            "Container" => {
                for key in ["containers", "initContainers"] {
                    for c in spec
                        .get(key)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let (req, lim) = container_resources(c);
                        errs.extend(
                            it.min
                                .iter()
                                .filter_map(|(k, v)| min_constraint("Container", k, v, &req, &lim)),
                        );
                        errs.extend(
                            it.max
                                .iter()
                                .filter_map(|(k, v)| max_constraint("Container", k, v, &req, &lim)),
                        );
                        errs.extend(
                            it.ratio.iter().filter_map(|(k, v)| {
                                ratio_constraint("Container", k, v, &req, &lim)
                            }),
                        );
                    }
                }
            }
            "Pod" => {
                let req = pod_totals(&spec, "requests");
                let lim = pod_totals(&spec, "limits");
                errs.extend(
                    it.min
                        .iter()
                        .filter_map(|(k, v)| min_constraint("Pod", k, v, &req, &lim)),
                );
                errs.extend(
                    it.max
                        .iter()
                        .filter_map(|(k, v)| max_constraint("Pod", k, v, &req, &lim)),
                );
                errs.extend(
                    it.ratio
                        .iter()
                        .filter_map(|(k, v)| ratio_constraint("Pod", k, v, &req, &lim)),
                );
            }
            _ => {}
        }
    }
    aggregate(errs)
}

fn validate_pvc(pvc: &Value, items: &[Item]) -> Option<String> {
    let req = resource_list(get(pvc, &["spec", "resources", "requests"]));
    let mut errs = Vec::new();
    for it in items.iter().filter(|i| i.kind == "PersistentVolumeClaim") {
        errs.extend(it.min.iter().filter_map(|(k, v)| {
            min_constraint("PersistentVolumeClaim", k, v, &req, &ResourceList::new())
        }));
        errs.extend(
            it.max
                .iter()
                .filter_map(|(k, v)| max_request_constraint("PersistentVolumeClaim", k, v, &req)),
        );
    }
    aggregate(errs)
}

/// Pods (create only: containers are immutable afterwards) and PVCs, never subresources, never
/// objects already being deleted.
fn supports(attrs: &Attributes) -> bool {
    if !attrs.subresource.is_empty() || attrs.object.is_none() {
        return false;
    }
    let deleting = attrs
        .old_object
        .as_ref()
        .and_then(|o| o.get("metadata"))
        .is_some_and(|m| m.get("deletionTimestamp").is_some_and(|d| !d.is_null()));
    if deleting {
        return false;
    }
    match attrs.operation {
        Operation::Create => attrs.is("", "pods") || attrs.is("", "persistentvolumeclaims"),
        Operation::Update => attrs.is("", "persistentvolumeclaims"),
        _ => false,
    }
}

async fn limit_ranges(lookup: &dyn Lookup, attrs: &Attributes) -> Result<Vec<Vec<Item>>, ApiError> {
    let res = catalogue::lookup("", "v1", "limitranges").expect("limitranges are served");
    let list = lookup
        .list(res, Some(&attrs.namespace))
        .await
        .map_err(|_| {
            forbidden(
                attrs,
                format!(
                "unable to {} {} at this time because there was an error enforcing limit ranges",
                attrs.operation,
                attrs.resource.qualified()
            ),
            )
        })?;
    Ok(list.iter().map(|s| items(&s.object)).collect())
}

pub struct LimitRanger;

#[async_trait]
impl MutatingPlugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }

    async fn admit(
        &self,
        lookup: &dyn Lookup,
        attrs: &mut Attributes,
        _warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if !supports(attrs) || !attrs.is("", "pods") {
            return Ok(());
        }
        let ranges = limit_ranges(lookup, attrs).await?;
        if let Some(pod) = attrs.object.as_mut() {
            for items in &ranges {
                default_pod(pod, items);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ValidatingPlugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }

    async fn validate(
        &self,
        lookup: &dyn Lookup,
        attrs: &Attributes,
        _warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if !supports(attrs) {
            return Ok(());
        }
        let ranges = limit_ranges(lookup, attrs).await?;
        let obj = Value::Object(attrs.object.clone().unwrap_or_default());
        for items in &ranges {
            let err = if attrs.is("", "pods") {
                validate_pod(&obj, items)
            } else {
                validate_pvc(&obj, items)
            };
            if let Some(e) = err {
                return Err(forbidden(attrs, e));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::lookup::MemoryLookup;
    use crate::admission::AdmissionUser;
    use serde_json::json;

    fn lookup_with(limits: Value) -> MemoryLookup {
        let l = MemoryLookup::new();
        let res = catalogue::lookup("", "v1", "limitranges").unwrap();
        l.put(
            res,
            json!({"metadata": {"name": "lr", "namespace": "ns"}, "spec": {"limits": limits}}),
        );
        l
    }

    async fn admit(l: &MemoryLookup, plural: &str, obj: Value) -> Result<Value, ApiError> {
        let res = catalogue::lookup("", "v1", plural).unwrap();
        let mut a = Attributes::new(
            Operation::Create,
            res,
            Some("ns"),
            "p",
            AdmissionUser::default(),
        )
        .with_object(obj.as_object().unwrap().clone());
        let mut w = Vec::new();
        MutatingPlugin::admit(&LimitRanger, l, &mut a, &mut w).await?;
        ValidatingPlugin::validate(&LimitRanger, l, &a, &mut w).await?;
        Ok(Value::Object(a.object.unwrap()))
    }

    #[tokio::test]
    async fn defaults_requests_and_limits() {
        let l = lookup_with(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "1024Mi"}, "defaultRequest": {"cpu": "100m"}}]));
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "x"},
            {"name": "b", "image": "x", "resources": {"limits": {"cpu": "1"}}}]}});
        let out = admit(&l, "pods", pod).await.unwrap();
        let a = &out["spec"]["containers"][0]["resources"];
        assert_eq!(a["requests"], json!({"cpu": "100m", "memory": "1Gi"}));
        assert_eq!(a["limits"], json!({"cpu": "500m", "memory": "1Gi"}));
        let b = &out["spec"]["containers"][1]["resources"];
        assert_eq!(b["limits"], json!({"cpu": "1", "memory": "1Gi"}));
        assert_eq!(
            out["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for container a; cpu, memory request for container b; memory limit for container b"
        );
    }

    #[tokio::test]
    async fn min_max_and_ratio() {
        let l = lookup_with(
            json!([{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}}]),
        );
        // max also defaults the limit, min the request.
        let out = admit(&l, "pods", json!({"spec": {"containers": [{"name": "c"}]}}))
            .await
            .unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}})
        );
        let e = admit(
            &l,
            "pods",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "2"}}}]}}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, maximum cpu usage per Container is 1, but limit is 2]"
        );
        let l =
            lookup_with(json!([{"type": "Container", "maxLimitRequestRatio": {"memory": "2"}}]));
        let e = admit(&l, "pods", json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"memory": "100Mi"}, "limits": {"memory": "300Mi"}}}]}}))
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: memory max limit to request ratio per Container is 2, but provided ratio is 3.000000"
        );
        let l = lookup_with(json!([{"type": "Pod", "max": {"memory": "1Gi"}}]));
        let e = admit(
            &l,
            "pods",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"limits": {"memory": "600Mi"}}},
            {"name": "b", "resources": {"limits": {"memory": "600Mi"}}}]}}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: maximum memory usage per Pod is 1Gi, but limit is 1200Mi"
        );
    }

    #[tokio::test]
    async fn pvc_storage_bounds() {
        let l = lookup_with(
            json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]),
        );
        let pvc = |s: &str| json!({"metadata": {"name": "p"}, "spec": {"resources": {"requests": {"storage": s}}}});
        admit(&l, "persistentvolumeclaims", pvc("5Gi"))
            .await
            .unwrap();
        let e = admit(&l, "persistentvolumeclaims", pvc("20Gi"))
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            "persistentvolumeclaims \"p\" is forbidden: maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
        );
        let e = admit(&l, "persistentvolumeclaims", pvc("500Mi"))
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            "persistentvolumeclaims \"p\" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
        );
    }
}
