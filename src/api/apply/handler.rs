//! `PATCH` with `application/apply-patch+yaml`: server-side apply over the store.
//!
//! Decode the configuration (YAML, of which JSON is a subset), check it against the endpoint,
//! read the live object, run [`super::apply`], then go through admission and the endpoint's
//! strategy as kube-apiserver's patch handler does, and write with compare-and-swap, retrying
//! from the read when another writer got there first. A missing object is created (201);
//! otherwise 200.
//!
//! Per attempt, in kube's order: apply (managedFields computed for the applier) → mutating
//! admission (`CREATE` when the object does not exist, else `UPDATE` with the live object as the
//! old one; dry runs too, flagged `dryRun`) → RBAC escalation check → strategy and metadata
//! validation → validating admission → write. Changes made by mutating admission are not
//! attributed to the applier, as in kube (the field manager runs before admission), so a later
//! apply that omits them does not remove them.
//!
//! The endpoint strategy (namespace, metadata validation, create/update preparation) and the
//! admission calls are the ones `handlers/write.rs` makes for every write.

use super::managed::{apply, ignore_managed_fields_timestamps, validate_patch_options};
use super::schema::Schema;
use crate::admission::{Attributes, Operation};
use crate::api::handlers::write::{
    cas_outcome, now_rfc3339, prepare_for_create, prepare_for_update, resolve_namespace,
    restore_invalid_managed_fields, validate_meta, validate_update, with_warnings, write_options,
};
use crate::api::handlers::{object_response, parse_rv, store_error, Api, Format, Resp};
use crate::api::request::{Query, ResourcePath};
use crate::api::status::ApiError;
use crate::auth::authz::escalation;
use crate::object::codec;
use crate::object::raw::{meta, meta_str, RawObject};
use crate::storage::StoreError;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value};

/// Attempts of the read-apply-write loop before giving up on a hot object.
const MAX_ATTEMPTS: usize = 64;

/// Serves an apply patch. `force` is the `?force=` query parameter (see
/// [`super::parse_force`]; kapi's `Query` does not carry it yet).
pub async fn apply_patch(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
    format: Format,
    force: Option<bool>,
) -> Result<Resp, ApiError> {
    let _ = headers;
    validate_patch_options(true, q.field_manager.as_deref(), force)?;
    let manager = q.field_manager.clone().unwrap_or_default();
    let force = force.unwrap_or(false);
    let res = path.res;
    let name = path.name.clone().unwrap_or_default();
    let subresource = path.subresource.clone().unwrap_or_default();
    let applied = decode_config(&body)?;
    if let Some(kind) = applied.get("kind").and_then(Value::as_str) {
        if kind != res.kind {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{}\" cannot be handled as a {}: the kind in the data does not match the endpoint",
                res.version, res.kind
            )));
        }
    }
    let precondition = match meta_str(&applied, "resourceVersion") {
        Some(rv) if !rv.is_empty() => Some(parse_rv(rv)?),
        _ => None,
    };
    let schema = Schema::for_kind(&res.api_version(), res.kind, &subresource);
    let key = api.key(res, path.namespace.as_deref(), &name);

    // Admission warnings go out with the answer, errors included (as for every write).
    let mut warnings: Vec<String> = Vec::new();
    let result = async {
        for _ in 0..MAX_ATTEMPTS {
            warnings.clear();
            let (kv, _) = api
                .store
                .get(&key)
                .await
                .map_err(|e| store_error(e, res, "get"))?;
            let current = match &kv {
                Some(kv) => Some(RawObject::from_kv(res, kv).map_err(ApiError::internal)?),
                None => None,
            };
            let live = current.as_ref().map(RawObject::to_map);
            if live.is_none() && !subresource.is_empty() {
                return Err(ApiError::not_found(res, &name));
            }
            if live.is_none() && precondition.is_some() {
                return Err(ApiError::modified_conflict(res, &name));
            }
            let now = now_rfc3339();
            let mut new = apply(live.as_ref(), &applied, &manager, force, &schema, &now)
                .map_err(|e| e.to_api_error())?;
            check_name(&new, &name, path.namespace.as_deref())?;
            let ns = resolve_namespace(res, path, &mut new)?;

            let (operation, options_kind) = match live {
                None => (Operation::Create, "CreateOptions"),
                Some(_) => (Operation::Update, "UpdateOptions"),
            };
            let mut attrs =
                Attributes::new(operation, res, ns.as_deref(), &name, q.requester.clone())
                    .with_subresource(path.subresource.as_deref())
                    .with_dry_run(q.is_dry_run())
                    .with_options(write_options(options_kind, q, Some(&manager)));
            if let Some(live) = &live {
                attrs = attrs.with_old_object(live.clone());
            }
            let managed_before = meta(&new).and_then(|m| m.get("managedFields")).cloned();
            attrs = attrs.with_object(new);
            warnings.extend(api.admission.mutate(api, &mut attrs).await?);
            let mut new = attrs.object.take().unwrap_or_default();
            restore_invalid_managed_fields(&mut new, managed_before, &mut warnings);
            // A mutation may not move the object to another key.
            check_name(&new, &name, ns.as_deref())?;
            if subresource.is_empty() {
                escalation::check(
                    api,
                    &escalation::Write {
                        res,
                        namespace: ns.as_deref(),
                        url_name: &name,
                        name: &name,
                        user: &q.requester,
                        old: live.as_ref(),
                        new: &new,
                    },
                )
                .await?;
            }

            let (Some(kv), Some(current), Some(live)) = (kv, current, live) else {
                // Create.
                let causes = validate_meta(res, &new, true);
                if !causes.is_empty() {
                    return Err(ApiError::invalid(res, &name, causes));
                }
                prepare_for_create(res, &mut new);
                attrs.object = Some(new.clone());
                warnings.extend(api.admission.validate(api, &attrs).await?);
                if q.is_dry_run() {
                    return Ok(object_response(201, format, codec::served(res, &new, None)));
                }
                match api.store.create(&key, codec::stored(res, &new)).await {
                    Ok(rev) => {
                        return Ok(object_response(
                            201,
                            format,
                            codec::served(res, &new, Some(rev)),
                        ))
                    }
                    // Someone created it meanwhile: apply to theirs.
                    Err(StoreError::AlreadyExists) => continue,
                    Err(e) => return Err(store_error(e, res, "create")),
                }
            };

            // Update. The precondition is checked after mutating admission, as kube's
            // GuaranteedUpdate does.
            if let Some(p) = precondition {
                if p != kv.mod_revision {
                    return Err(ApiError::modified_conflict(res, &name));
                }
            }
            prepare_for_update(
                res,
                Some(subresource.as_str()).filter(|s| !s.is_empty()),
                &live,
                &mut new,
                &name,
            )?;
            // A change the strategy undid (status, say) leaves only new timestamps: keep the old.
            ignore_managed_fields_timestamps(&live, &mut new);
            let causes = validate_update(res, &new, &live);
            if !causes.is_empty() {
                return Err(ApiError::invalid(res, &name, causes));
            }
            attrs.object = Some(new.clone());
            warnings.extend(api.admission.validate(api, &attrs).await?);
            let stored = codec::stored(res, &new);
            if stored == kv.value {
                return Ok(object_response(200, format, current.json().clone()));
            }
            if q.is_dry_run() {
                return Ok(object_response(
                    200,
                    format,
                    codec::served(res, &new, Some(kv.mod_revision)),
                ));
            }
            let deleting = meta(&new).is_some_and(|m| m.contains_key("deletionTimestamp"));
            let finalizers_empty = meta(&new)
                .and_then(|m| m.get("finalizers"))
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty());
            let result = if deleting && finalizers_empty {
                api.store.delete(&key, kv.mod_revision).await
            } else {
                api.store.update(&key, stored, kv.mod_revision).await
            };
            if let Some(rev) = cas_outcome(result, precondition.is_some(), res, &name)? {
                return Ok(object_response(
                    200,
                    format,
                    codec::served(res, &new, Some(rev)),
                ));
            }
        }
        Err(ApiError::modified_conflict(res, &name))
    }
    .await;
    with_warnings(result, &warnings)
}

/// The applied configuration: YAML (or JSON) decoding to an object.
fn decode_config(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let v = codec::decode_yaml(body).map_err(|mut e| {
        e.message = format!("error decoding YAML: {}", e.message);
        e
    })?;
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(ApiError::bad_request(format!(
            "error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            match other {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                _ => "bool",
            }
        ))),
    }
}

/// `checkName` of the patch handler.
fn check_name(
    obj: &Map<String, Value>,
    name: &str,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    let obj_name = meta_str(obj, "name").unwrap_or("");
    if obj_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({obj_name}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(ns) = namespace.filter(|ns| !ns.is_empty()) {
        let obj_ns = meta_str(obj, "namespace").unwrap_or("");
        if !obj_ns.is_empty() && obj_ns != ns {
            return Err(ApiError::bad_request(format!(
                "the namespace of the object ({obj_ns}) does not match the namespace on the request ({ns})"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::catalogue;
    use crate::cache::Caches;
    use http_body_util::BodyExt;
    use serde_json::json;
    use std::sync::Arc;

    async fn body_json(r: Resp) -> (u16, Value) {
        let code = r.status().as_u16();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (code, serde_json::from_slice(&bytes).unwrap())
    }

    fn deployments_path(name: &str) -> ResourcePath {
        ResourcePath {
            res: catalogue::lookup("apps", "v1", "deployments").unwrap(),
            namespace: Some("default".into()),
            name: Some(name.into()),
            subresource: None,
            watch_prefix: false,
        }
    }

    fn query(manager: &str) -> Query {
        Query {
            field_manager: Some(manager.into()),
            ..Default::default()
        }
    }

    /// An Api over `store` with the admission chain `--enable-admission-plugins=<enable>` builds.
    fn api_with(store: &crate::storage::DynStore, enable: &[&str]) -> Api {
        let enable: Vec<String> = enable.iter().map(|s| s.to_string()).collect();
        let chain =
            crate::admission::Chain::new(&enable, &[], &crate::admission::PluginOptions::default())
                .unwrap();
        Api {
            admission: Arc::new(chain),
            caches: Caches::start(store.clone(), "/registry", 100),
            store: store.clone(),
            etcd_prefix: "/registry".into(),
            namespace_deleted: Arc::new(tokio::sync::Notify::new()),
            min_request_timeout: 1800,
        }
    }

    /// Applies ConfigMap `name` with `data: {a: <value>}` in `ns`.
    async fn apply_cm(
        api: &Api,
        ns: &str,
        name: &str,
        value: &str,
        q: &Query,
    ) -> Result<Resp, ApiError> {
        let path = ResourcePath {
            res: catalogue::lookup("", "v1", "configmaps").unwrap(),
            namespace: Some(ns.into()),
            name: Some(name.into()),
            subresource: None,
            watch_prefix: false,
        };
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: {value}\n"
        );
        apply_patch(
            api,
            &path,
            q,
            &HeaderMap::new(),
            Bytes::from(yaml),
            Format::Json,
            None,
        )
        .await
    }

    #[tokio::test]
    async fn apply_goes_through_admission() {
        let dir = tempfile::tempdir().unwrap();
        let store: crate::storage::DynStore = Arc::new(
            crate::storage::embedded::EmbeddedStore::open(&dir.path().join("db.redb")).unwrap(),
        );
        let cms = catalogue::lookup("", "v1", "configmaps").unwrap();

        // The default chain: NamespaceLifecycle answers for a missing namespace.
        let api = api_with(&store, &[]);
        let e = apply_cm(&api, "x", "cm", "b", &query("m"))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (404, "namespaces \"x\" not found")
        );

        let ns = catalogue::lookup("", "v1", "namespaces").unwrap();
        let ns_obj = json!({"metadata": {"name": "ns", "uid": "u"}, "spec": {}, "status": {"phase": "Active"}});
        store
            .create(
                &api.key(ns, None, "ns"),
                codec::stored(ns, ns_obj.as_object().unwrap()),
            )
            .await
            .unwrap();
        let r = apply_cm(&api, "ns", "cm", "b", &query("m")).await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let key = api.key(cms, Some("ns"), "cm");
        let (before, _) = store.get(&key).await.unwrap();

        // AlwaysDeny refuses an update, its dry run, and a create; nothing is written.
        let deny = api_with(&store, &["AlwaysDeny"]);
        let dry = Query {
            dry_run: vec!["All".into()],
            ..query("m")
        };
        for q in [query("m"), dry] {
            let e = apply_cm(&deny, "ns", "cm", "c", &q).await.unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str()),
                (
                    403,
                    "configmaps \"cm\" is forbidden: admission control is denying all modifications"
                )
            );
        }
        let (after, _) = store.get(&key).await.unwrap();
        assert_eq!(before.unwrap().value, after.unwrap().value);
        let e = apply_cm(&deny, "ns", "new", "b", &query("m"))
            .await
            .unwrap_err();
        assert_eq!(e.code, 403);
        let (created, _) = store.get(&api.key(cms, Some("ns"), "new")).await.unwrap();
        assert!(created.is_none());
    }

    #[tokio::test]
    async fn apply_creates_then_updates_then_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let store: crate::storage::DynStore = Arc::new(
            crate::storage::embedded::EmbeddedStore::open(&dir.path().join("db.redb")).unwrap(),
        );
        let api = Api {
            admission: std::sync::Arc::new(crate::admission::Chain::default()),
            caches: Caches::start(store.clone(), "/registry", 100),
            store: store.clone(),
            etcd_prefix: "/registry".into(),
            namespace_deleted: Arc::new(tokio::sync::Notify::new()),
            min_request_timeout: 1800,
        };
        let ns = catalogue::lookup("", "v1", "namespaces").unwrap();
        let ns_obj = json!({"metadata": {"name": "default", "uid": "u"}, "spec": {}, "status": {"phase": "Active"}});
        store
            .create(
                &api.key(ns, None, "default"),
                codec::stored(ns, ns_obj.as_object().unwrap()),
            )
            .await
            .unwrap();

        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: nginx\n        image: nginx:1.25\n";
        let path = deployments_path("web");
        let headers = HeaderMap::new();
        let r = apply_patch(
            &api,
            &path,
            &query("kubectl"),
            &headers,
            Bytes::from(yaml),
            Format::Json,
            Some(false),
        )
        .await
        .unwrap();
        let (code, created) = body_json(r).await;
        assert_eq!(code, 201);
        assert_eq!(created["metadata"]["generation"], 1);
        assert_eq!(created["metadata"]["namespace"], "default");
        assert_eq!(
            created["metadata"]["managedFields"][0]["manager"],
            "kubectl"
        );
        assert!(created["metadata"]["uid"].is_string());

        // The same configuration again: no write, same resourceVersion.
        let r = apply_patch(
            &api,
            &path,
            &query("kubectl"),
            &headers,
            Bytes::from(yaml),
            Format::Json,
            None,
        )
        .await
        .unwrap();
        let (code, again) = body_json(r).await;
        assert_eq!(code, 200);
        assert_eq!(
            again["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );

        // A change bumps the generation.
        let changed = yaml.replace("replicas: 2", "replicas: 3");
        let r = apply_patch(
            &api,
            &path,
            &query("kubectl"),
            &headers,
            Bytes::from(changed.clone()),
            Format::Json,
            None,
        )
        .await
        .unwrap();
        let (code, updated) = body_json(r).await;
        assert_eq!(code, 200);
        assert_eq!(updated["spec"]["replicas"], 3);
        assert_eq!(updated["metadata"]["generation"], 2);

        // Another manager changing replicas conflicts.
        let other = changed.replace("replicas: 3", "replicas: 9");
        let e = apply_patch(
            &api,
            &path,
            &query("ci"),
            &headers,
            Bytes::from(other),
            Format::Json,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
        );

        // Missing fieldManager, wrong name.
        let e = apply_patch(
            &api,
            &path,
            &Query::default(),
            &headers,
            Bytes::from(yaml),
            Format::Json,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, 422);
        let e = apply_patch(
            &api,
            &deployments_path("other"),
            &query("kubectl"),
            &headers,
            Bytes::from(yaml),
            Format::Json,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.message,
            "the name of the object (web) does not match the name on the URL (other)"
        );
    }
}
