//! delete and deletecollection, with preconditions, finalizers and namespace termination.

use super::read::{filter_for, list_body, Page};
use super::write::now_rfc3339;
use super::{object_response, store_error, Api, Format, Resp};
use crate::api::catalogue::ResourceInfo;
use crate::api::request::{Query, ResourcePath};
use crate::api::status::{success_status, ApiError};
use crate::object::codec;
use crate::object::raw::{meta, meta_mut, RawObject};
use crate::storage::StoreError;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

// Field order and omitempty as kube's `metav1.DeleteOptions`, which webhooks receive as is.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_version: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    grace_period_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preconditions: Option<Preconditions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    orphan_dependents: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    propagation_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<Vec<String>>,
}

impl DeleteOptions {
    /// The DeleteOptions admission and webhooks see (`request.options`): the request's, typed
    /// `meta.k8s.io/v1`, with `?dryRun=All` folded in.
    fn admission_options(&self, dry_run: bool) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("kind".into(), "DeleteOptions".into());
        o.insert("apiVersion".into(), "meta.k8s.io/v1".into());
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            o.extend(fields);
        }
        if dry_run && self.dry_run.as_ref().is_none_or(Vec::is_empty) {
            o.insert("dryRun".into(), json!(["All"]));
        } else if self.dry_run.as_ref().is_some_and(Vec::is_empty) {
            o.shift_remove("dryRun");
        }
        Value::Object(o)
    }
}

fn delete_options(q: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut opts: DeleteOptions = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        let v = codec::decode_json(body)?;
        serde_json::from_value(v)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    if q.propagation_policy.is_some() {
        opts.propagation_policy = q.propagation_policy.clone();
    }
    if q.orphan_dependents.is_some() {
        opts.orphan_dependents = q.orphan_dependents;
    }
    if q.grace_period_seconds.is_some() {
        opts.grace_period_seconds = q.grace_period_seconds;
    }
    if let Some(dr) = &opts.dry_run {
        if dr.iter().any(|d| d != "All") {
            return Err(ApiError::invalid_dry_run(dr));
        }
    }
    if opts.orphan_dependents.is_some() && opts.propagation_policy.is_some() {
        return Err(ApiError::invalid_options(
            "DeleteOptions",
            "propagationPolicy",
            "FieldValueInvalid",
            "Invalid value: \"null\": orphanDependents and deletionPropagation cannot be both set",
        ));
    }
    if let Some(p) = opts.propagation_policy.as_deref() {
        if !matches!(p, "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::invalid_options(
                "DeleteOptions",
                "propagationPolicy",
                "FieldValueNotSupported",
                &format!("Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""),
            ));
        }
    }
    Ok(opts)
}

pub async fn delete(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    body: Bytes,
    format: Format,
) -> Result<Resp, ApiError> {
    let opts = delete_options(q, &body)?;
    let name = path.name.clone().unwrap_or_default();
    let dry_run = q.is_dry_run() || opts.dry_run.as_ref().is_some_and(|d| !d.is_empty());
    let (code, json) = delete_one(
        api,
        path.res,
        path.namespace.as_deref(),
        &name,
        &opts,
        dry_run,
        &q.requester,
    )
    .await?;
    Ok(object_response(code, format, json))
}

/// Deletes one object; returns the status code and body kube-apiserver would send.
async fn delete_one(
    api: &Api,
    res: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
    dry_run: bool,
    requester: &crate::admission::AdmissionUser,
) -> Result<(u16, Bytes), ApiError> {
    let key = api.key(res, ns, name);
    loop {
        let (kv, _) = api
            .store
            .get(&key)
            .await
            .map_err(|e| store_error(e, res, "get"))?;
        let Some(kv) = kv else {
            return Err(ApiError::not_found(res, name));
        };
        let current = RawObject::from_kv(res, &kv).map_err(ApiError::internal)?;
        if let Some(p) = &opts.preconditions {
            if let Some(uid) = p.uid.as_deref() {
                if uid != current.uid() {
                    return Err(ApiError::conflict(
                        res,
                        name,
                        &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        current.uid()
                    ),
                    ));
                }
            }
            if let Some(rv) = p.resource_version.as_deref() {
                if rv != kv.mod_revision.to_string() {
                    return Err(ApiError::conflict(res, name, &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        kv.mod_revision
                    )));
                }
            }
        }
        let mut obj = current.to_map();
        let mut attrs = crate::admission::Attributes::new(
            crate::admission::Operation::Delete,
            res,
            ns,
            name,
            requester.clone(),
        )
        .with_dry_run(dry_run)
        .with_options(opts.admission_options(dry_run))
        .with_old_object(obj.clone());
        api.admission.admit(api, &mut attrs).await?;
        let already_deleting = meta(&obj).is_some_and(|m| m.contains_key("deletionTimestamp"));

        // Namespaces are finalized: mark Terminating; the namespace finalizer empties and removes it.
        let mut finalizers: Vec<String> = meta(&obj)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        match opts.propagation_policy.as_deref() {
            Some("Orphan") => add(&mut finalizers, "orphan"),
            Some("Foreground") => add(&mut finalizers, "foregroundDeletion"),
            Some("Background") => finalizers.retain(|f| f != "orphan" && f != "foregroundDeletion"),
            _ => {}
        }
        if opts.orphan_dependents == Some(true) {
            add(&mut finalizers, "orphan");
        }
        let is_namespace = res.plural == "namespaces";
        if is_namespace || !finalizers.is_empty() {
            if already_deleting
                && !is_namespace
                && Some(&finalizers)
                    == meta(&obj)
                        .and_then(|m| m.get("finalizers"))
                        .and_then(|f| serde_json::from_value::<Vec<String>>(f.clone()).ok())
                        .as_ref()
            {
                return Ok((200, current.json().clone()));
            }
            if already_deleting && is_namespace {
                return Ok((200, current.json().clone()));
            }
            let m = meta_mut(&mut obj);
            if !already_deleting {
                m.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                if let Some(g) = m.get("generation").and_then(Value::as_i64) {
                    if g > 0 {
                        m.insert("generation".into(), json!(g + 1));
                    }
                }
            }
            if !is_namespace {
                m.insert("finalizers".into(), json!(finalizers));
            }
            if is_namespace {
                let status = obj.entry("status").or_insert_with(|| json!({}));
                if let Some(s) = status.as_object_mut() {
                    s.insert("phase".into(), json!("Terminating"));
                }
            }
            if dry_run {
                let enc = codec::served(res, &obj, Some(kv.mod_revision));
                return Ok((200, enc));
            }
            let stored = codec::stored(res, &obj);
            match api.store.update(&key, stored, kv.mod_revision).await {
                Ok(rev) => {
                    if is_namespace {
                        api.namespace_deleted.notify_one();
                    }
                    let enc = codec::served(res, &obj, Some(rev));
                    let code = if opts.orphan_dependents == Some(false) {
                        202
                    } else {
                        200
                    };
                    return Ok((code, enc));
                }
                Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound) => continue,
                Err(e) => return Err(store_error(e, res, "update")),
            }
        }
        let deleted_body = |rev: i64| -> Bytes {
            if res.return_deleted_object {
                current
                    .with_revision(res, rev)
                    .map(|o| o.json().clone())
                    .unwrap_or_else(|_| current.json().clone())
            } else {
                Bytes::from(success_status(res, name, current.uid()))
            }
        };
        if dry_run {
            return Ok((200, deleted_body(kv.mod_revision)));
        }
        match api.store.delete(&key, kv.mod_revision).await {
            Ok(rev) => return Ok((200, deleted_body(rev))),
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound) => return Err(ApiError::not_found(res, name)),
            Err(e) => return Err(store_error(e, res, "delete")),
        }
    }
}

fn add(finalizers: &mut Vec<String>, f: &str) {
    if !finalizers.iter().any(|x| x == f) {
        finalizers.push(f.to_string());
    }
}

pub async fn delete_collection(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    body: Bytes,
    format: Format,
) -> Result<Resp, ApiError> {
    let res = path.res;
    let opts = delete_options(q, &body)?;
    let dry_run = q.is_dry_run() || opts.dry_run.as_ref().is_some_and(|d| !d.is_empty());
    let filter = filter_for(res, path.namespace.as_deref(), q)?;
    let list_query = Query {
        label_selector: q.label_selector.clone(),
        field_selector: q.field_selector.clone(),
        ..Default::default()
    };
    let page =
        super::read::list_page(api, res, path.namespace.as_deref(), &filter, &list_query).await?;
    let mut deleted = Vec::new();
    for obj in &page.items {
        let ns = (!obj.namespace().is_empty()).then_some(obj.namespace());
        match delete_one(api, res, ns, obj.name(), &opts, dry_run, &q.requester).await {
            Ok(_) => deleted.push(obj.clone()),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let out = Page {
        items: deleted,
        revision: page.revision,
        continue_token: None,
        remaining: None,
    };
    Ok(object_response(200, format, list_body(res, &out)))
}
