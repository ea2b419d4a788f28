//! Subresources beyond `/status`: `/scale` (autoscaling/v1 Scale for the workload kinds),
//! `pods/binding` (the scheduler), `pods/eviction` (`kubectl drain`) and
//! `pods/ephemeralcontainers`.

use super::write::content_type;
use super::{object_response, parse_rv, store_error, Api, Format, Resp};
use crate::api::catalogue::{self, ResourceInfo};
use crate::api::request::{Query, ResourcePath, Verb};
use crate::api::selectors::label::LabelSelector;
use crate::api::status::{ApiError, Cause};
use crate::object::codec::{self, decode_body};
use crate::object::raw::{meta, meta_mut, meta_str, RawObject};
use crate::storage::StoreError;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Map, Value};

/// Reads an object, lets `change` edit it, and writes it back with CAS, retrying on conflicts
/// unless `precondition` (a resourceVersion the client sent) pins the revision.
async fn modify<F>(
    api: &Api,
    res: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
    precondition: Option<i64>,
    mut change: F,
) -> Result<(Map<String, Value>, i64), ApiError>
where
    F: FnMut(&mut Map<String, Value>) -> Result<(), ApiError>,
{
    let key = api.key(res, ns, name);
    loop {
        let (kv, _) = api
            .store
            .get(&key)
            .await
            .map_err(|e| store_error(e, res, "get"))?;
        let kv = kv.ok_or_else(|| ApiError::not_found(res, name))?;
        if precondition.is_some_and(|p| p != kv.mod_revision) {
            return Err(ApiError::modified_conflict(res, name));
        }
        let mut obj = RawObject::from_kv(res, &kv)
            .map_err(ApiError::internal)?
            .to_map();
        let before = obj.clone();
        change(&mut obj)?;
        if obj == before {
            return Ok((obj, kv.mod_revision));
        }
        match api
            .store
            .update(&key, codec::stored(res, &obj), kv.mod_revision)
            .await
        {
            Ok(rev) => return Ok((obj, rev)),
            Err(StoreError::Conflict { .. }) if precondition.is_none() => continue,
            Err(StoreError::Conflict { .. }) => return Err(ApiError::modified_conflict(res, name)),
            Err(StoreError::NotFound) => return Err(ApiError::not_found(res, name)),
            Err(e) => return Err(store_error(e, res, "update")),
        }
    }
}

/// A metav1.LabelSelector (matchLabels + matchExpressions) or an RC's plain map, as the string
/// form used by Scale.status.selector and selector parsing.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(Value::Object(sel)) = sel else {
        return String::new();
    };
    let mut parts: Vec<String> = Vec::new();
    let plain = !sel.contains_key("matchLabels") && !sel.contains_key("matchExpressions");
    let labels = if plain {
        Some(sel)
    } else {
        sel.get("matchLabels").and_then(Value::as_object)
    };
    if let Some(labels) = labels {
        for (k, v) in labels {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match e["operator"].as_str().unwrap_or_default() {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.sort();
    parts.join(",")
}

fn scale_of(res: &ResourceInfo, obj: &Map<String, Value>, rv: i64) -> Value {
    let m = meta(obj).cloned().unwrap_or_default();
    let mut md = Map::new();
    for k in ["name", "namespace", "uid"] {
        if let Some(v) = m.get(k) {
            md.insert(k.into(), v.clone());
        }
    }
    md.insert("resourceVersion".into(), json!(rv.to_string()));
    if let Some(v) = m.get("creationTimestamp") {
        md.insert("creationTimestamp".into(), v.clone());
    }
    let spec = obj.get("spec");
    let replicas = spec
        .and_then(|s| s.get("replicas"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let status_replicas = obj
        .get("status")
        .and_then(|s| s.get("replicas"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = selector_string(spec.and_then(|s| s.get("selector")));
    let _ = res;
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": md,
        "spec": {"replicas": replicas},
        "status": {"replicas": status_replicas, "selector": selector},
    })
}

fn scale_response(res: &ResourceInfo, obj: &Map<String, Value>, rv: i64, format: Format) -> Resp {
    object_response(
        200,
        format,
        Bytes::from(serde_json::to_vec(&scale_of(res, obj, rv)).expect("scale serializes")),
    )
}

fn set_replicas(obj: &mut Map<String, Value>, replicas: i64) {
    let spec = obj.entry("spec").or_insert_with(|| json!({}));
    if spec.get("replicas").and_then(Value::as_i64) == Some(replicas) {
        return;
    }
    if let Some(spec) = spec.as_object_mut() {
        spec.insert("replicas".into(), json!(replicas));
    }
    let m = meta_mut(obj);
    let g = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
    m.insert("generation".into(), json!(g + 1));
}

fn invalid_scale(name: &str, replicas: &Value) -> ApiError {
    let mut e = ApiError::new(422, "Invalid", format!("Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"));
    e.details.name = name.to_string();
    e.details.group = "autoscaling".into();
    e.details.kind = "Scale".into();
    e.details.causes = vec![Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        field: "spec.replicas".into(),
    }];
    e
}

/// GET/PUT/PATCH `<workload>/scale`.
pub async fn scale(
    api: &Api,
    path: &ResourcePath,
    verb: Verb,
    headers: &HeaderMap,
    body: Bytes,
    format: Format,
) -> Result<Resp, ApiError> {
    let res = path.res;
    let ns = path.namespace.as_deref();
    let name = path.name.clone().unwrap_or_default();
    let key = api.key(res, ns, &name);
    let (kv, _) = api
        .store
        .get(&key)
        .await
        .map_err(|e| store_error(e, res, "get"))?;
    let kv = kv.ok_or_else(|| ApiError::not_found(res, &name))?;
    let current = RawObject::from_kv(res, &kv)
        .map_err(ApiError::internal)?
        .to_map();
    let (desired, precondition) = match verb {
        Verb::Get => return Ok(scale_response(res, &current, kv.mod_revision, format)),
        Verb::Update => {
            let s = decode_body(content_type(headers), &body)?;
            let rv = match meta_str(&s, "resourceVersion") {
                Some(rv) if !rv.is_empty() => Some(parse_rv(rv)?),
                _ => None,
            };
            (Value::Object(s), rv)
        }
        _ => {
            let mut doc = scale_of(res, &current, kv.mod_revision);
            patch_document(&mut doc, headers, &body)?;
            let rv = doc["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string);
            let pre = match rv {
                Some(rv) if rv != kv.mod_revision.to_string() => Some(parse_rv(&rv)?),
                _ => None,
            };
            (doc, pre)
        }
    };
    let replicas_v = desired
        .get("spec")
        .and_then(|s| s.get("replicas"))
        .cloned()
        .unwrap_or(json!(0));
    let replicas = replicas_v
        .as_i64()
        .filter(|r| *r >= 0)
        .ok_or_else(|| invalid_scale(&name, &replicas_v))?;
    let (obj, rev) = modify(api, res, ns, &name, precondition, |o| {
        set_replicas(o, replicas);
        Ok(())
    })
    .await?;
    Ok(scale_response(res, &obj, rev, format))
}

fn success(code: u16) -> Bytes {
    Bytes::from(serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})).expect("status serializes"))
}

/// POST `pods/<name>/binding`: assigns the pod to a node (once).
pub async fn binding(
    api: &Api,
    path: &ResourcePath,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Resp, ApiError> {
    let res = path.res;
    let name = path.name.clone().unwrap_or_default();
    let b = decode_body(content_type(headers), &body)?;
    let target = b
        .get("target")
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if target.is_empty() {
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("Binding \"{name}\" is invalid: target.name: Required value"),
        );
        e.details.causes = vec![Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "target.name".into(),
        }];
        return Err(e);
    }
    let annotations = meta(&b)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .cloned();
    modify(api, res, path.namespace.as_deref(), &name, None, |pod| {
        if meta(pod).is_some_and(|m| m.contains_key("deletionTimestamp")) {
            return Err(ApiError::conflict(res, &name, &format!("pod {name} is being deleted, cannot be assigned to a host")));
        }
        let spec = pod.entry("spec").or_insert_with(|| json!({}));
        if let Some(node) = spec.get("nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict(res, &name, &format!("pod {name} is already assigned to node \"{node}\"")));
        }
        spec.as_object_mut().expect("spec is an object").insert("nodeName".into(), json!(target));
        if let Some(ann) = &annotations {
            let m = meta_mut(pod);
            let dst = m.entry("annotations").or_insert_with(|| json!({}));
            if let Some(dst) = dst.as_object_mut() {
                dst.extend(ann.clone());
            }
        }
        let status = pod.entry("status").or_insert_with(|| json!({}));
        if let Some(status) = status.as_object_mut() {
            let conds = status.entry("conditions").or_insert_with(|| json!([]));
            if let Some(conds) = conds.as_array_mut() {
                conds.retain(|c| c["type"] != "PodScheduled");
                conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": super::write::now_rfc3339()}));
            }
        }
        Ok(())
    })
    .await?;
    Ok(object_response(201, Format::Json, success(201)))
}

/// POST `pods/<name>/eviction`: deletes the pod unless a PodDisruptionBudget forbids it.
pub async fn eviction(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    body: Bytes,
) -> Result<Resp, ApiError> {
    let res = path.res;
    let ns = path.namespace.clone().unwrap_or_default();
    let name = path.name.clone().unwrap_or_default();
    let key = api.key(res, Some(&ns), &name);
    let (kv, _) = api
        .store
        .get(&key)
        .await
        .map_err(|e| store_error(e, res, "get"))?;
    let pod = RawObject::from_kv(res, &kv.ok_or_else(|| ApiError::not_found(res, &name))?)
        .map_err(ApiError::internal)?;
    let pdbs = catalogue::lookup("policy", "v1", "poddisruptionbudgets").expect("PDBs are served");
    let prefix = api.list_prefix(pdbs, Some(&ns));
    for o in api
        .caches
        .get(pdbs)
        .snapshot()
        .objects
        .range((
            std::ops::Bound::Included(prefix.as_str()),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(_, o)| o.to_map())
    {
        let sel = selector_string(o.get("spec").and_then(|s| s.get("selector")));
        let Ok(sel) = LabelSelector::parse(&sel) else {
            continue;
        };
        if sel.is_empty() || !sel.matches(|k| pod.label(k)) {
            continue;
        }
        let status = o.get("status");
        let allowed = status
            .and_then(|s| s.get("disruptionsAllowed"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if allowed < 1 {
            let pdb_name = meta_str(&o, "name").unwrap_or_default();
            let healthy = status
                .and_then(|s| s.get("currentHealthy"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let desired = status
                .and_then(|s| s.get("desiredHealthy"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let mut e = ApiError::too_many_requests(
                "Cannot evict pod as it would violate the pod's disruption budget.",
                0,
            );
            e.details.causes = vec![Cause {
                reason: "DisruptionBudget".into(),
                message: format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently"),
                field: String::new(),
            }];
            return Err(e);
        }
    }
    // The eviction's deleteOptions apply to the delete.
    let opts = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("deleteOptions").cloned())
        .unwrap_or(json!({}));
    let delete_body = Bytes::from(serde_json::to_vec(&opts).expect("options serialize"));
    super::delete::delete(api, path, q, delete_body, Format::Json).await?;
    Ok(object_response(201, Format::Json, success(201)))
}

/// GET/PUT/PATCH `pods/<name>/ephemeralcontainers`: only spec.ephemeralContainers changes.
pub async fn ephemeral_containers(
    api: &Api,
    path: &ResourcePath,
    verb: Verb,
    headers: &HeaderMap,
    body: Bytes,
    format: Format,
) -> Result<Resp, ApiError> {
    let res = path.res;
    let ns = path.namespace.as_deref();
    let name = path.name.clone().unwrap_or_default();
    let key = api.key(res, ns, &name);
    let (kv, _) = api
        .store
        .get(&key)
        .await
        .map_err(|e| store_error(e, res, "get"))?;
    let kv = kv.ok_or_else(|| ApiError::not_found(res, &name))?;
    let current = RawObject::from_kv(res, &kv).map_err(ApiError::internal)?;
    let desired = match verb {
        Verb::Get => return Ok(object_response(200, format, current.json().clone())),
        Verb::Update => Value::Object(decode_body(content_type(headers), &body)?),
        _ => {
            let mut doc = Value::Object(current.to_map());
            patch_document(&mut doc, headers, &body)?;
            doc
        }
    };
    let eph = desired
        .get("spec")
        .and_then(|s| s.get("ephemeralContainers"))
        .cloned();
    let (obj, rev) = modify(api, res, ns, &name, None, |pod| {
        let spec = pod.entry("spec").or_insert_with(|| json!({}));
        if let Some(spec) = spec.as_object_mut() {
            match &eph {
                Some(e) => spec.insert("ephemeralContainers".into(), e.clone()),
                None => spec.remove("ephemeralContainers"),
            };
        }
        Ok(())
    })
    .await?;
    Ok(object_response(
        200,
        format,
        codec::served(res, &obj, Some(rev)),
    ))
}

/// Applies a JSON, merge or strategic-merge patch to a subresource document (Scale, a pod's
/// ephemeral containers): these documents have no lists a strategic patch merges by key.
fn patch_document(doc: &mut Value, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    match codec::media_type(content_type(headers)).as_str() {
        "application/json-patch+json" => {
            let p: json_patch::Patch =
                serde_json::from_value(patch).map_err(|e| ApiError::bad_request(e.to_string()))?;
            json_patch::patch(doc, &p).map_err(|e| ApiError::new(422, "Invalid", e.to_string()))
        }
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            json_patch::merge(doc, &patch);
            Ok(())
        }
        _ => Err(ApiError::unsupported_media_type(&[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ])),
    }
}
