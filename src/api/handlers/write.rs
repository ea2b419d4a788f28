//! create, update (PUT) and patch: decode → metadata rules → validation → CAS write.

use super::{error_response, object_response, parse_rv, store_error, Api, Format, Resp};
use crate::admission::{Attributes, Operation};
use crate::api::catalogue::{NameRule, ResourceInfo};
use crate::api::patch::{fields, strategic, SchemaRef};
use crate::api::request::{Query, ResourcePath};
use crate::api::status::{ApiError, Cause};
use crate::auth::authz::escalation;
use crate::object::codec::{self, decode_body};
use crate::object::raw::{meta, meta_mut, meta_str, RawObject};
use crate::object::validation;
use crate::storage::StoreError;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Attempts at a generated name before giving up (RetryGenerateName).
const GENERATE_NAME_ATTEMPTS: usize = 8;

pub fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// `metav1.Time` as kube-apiserver writes it: RFC 3339, whole seconds, UTC.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Checks (and fills in) kind and apiVersion against the endpoint.
fn check_type_meta(res: &ResourceInfo, obj: &mut Map<String, Value>) -> Result<(), ApiError> {
    let want_av = res.api_version();
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if av != want_av {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    if let Some(kind) = obj.get("kind").and_then(Value::as_str) {
        if kind != res.kind {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{}\" cannot be handled as a {}: the kind in the data does not match the endpoint",
                res.version, res.kind
            )));
        }
    }
    obj.insert("kind".into(), Value::String(res.kind.into()));
    obj.insert("apiVersion".into(), Value::String(want_av));
    Ok(())
}

/// The object's namespace: the URL's, which the body may repeat but not contradict.
pub(crate) fn resolve_namespace(
    res: &ResourceInfo,
    path: &ResourcePath,
    obj: &mut Map<String, Value>,
) -> Result<Option<String>, ApiError> {
    if !res.namespaced {
        meta_mut(obj).shift_remove("namespace");
        return Ok(None);
    }
    let url_ns = path.namespace.clone().unwrap_or_default();
    match meta_str(obj, "namespace") {
        Some(ns) if !ns.is_empty() && ns != url_ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta_mut(obj).insert("namespace".into(), Value::String(url_ns.clone()));
            Ok(Some(url_ns))
        }
    }
}

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

/// Validation shared by create and update (and server-side apply): ObjectMeta, then the kind's
/// own rules. The kind's rules are applied as on create; [`validate_update`] gives them the
/// stored object.
pub(crate) fn validate_meta(
    res: &ResourceInfo,
    obj: &Map<String, Value>,
    check_name: bool,
) -> Vec<Cause> {
    let mut causes = validate_object_meta(res, obj, check_name);
    causes.extend(crate::admission::webhook::validation::validate(
        res, obj, None,
    ));
    causes
}

/// Update validation: ObjectMeta, then the kind's rules, which may depend on the stored object
/// (kube's `ValidateUpdate` relaxes some webhook-configuration rules the old object broke).
pub(crate) fn validate_update(
    res: &ResourceInfo,
    new: &Map<String, Value>,
    old: &Map<String, Value>,
) -> Vec<Cause> {
    let mut causes = validate_object_meta(res, new, false);
    causes.extend(crate::admission::webhook::validation::validate(
        res,
        new,
        Some(old),
    ));
    causes
}

/// The CreateOptions / UpdateOptions admission and webhooks see for an ordinary write
/// (`request.options` of the AdmissionReview): the request's query options as kube decodes
/// them, empty fields omitted, `fieldManager` as given (not the User-Agent fallback). A PUT that
/// creates sends CreateOptions (`updateToCreateOptions`), a PATCH UpdateOptions
/// (`patchToUpdateOptions`). Apply passes its required manager (`patchToCreateOptions` /
/// `patchToUpdateOptions`).
pub(crate) fn write_options(kind: &str, q: &Query, field_manager: Option<&str>) -> Value {
    let mut o = Map::new();
    o.insert("kind".into(), kind.into());
    o.insert("apiVersion".into(), "meta.k8s.io/v1".into());
    if !q.dry_run.is_empty() {
        o.insert("dryRun".into(), q.dry_run.clone().into());
    }
    if let Some(fm) = field_manager.filter(|v| !v.is_empty()) {
        o.insert("fieldManager".into(), fm.into());
    }
    if let Some(fv) = q.field_validation.as_deref().filter(|v| !v.is_empty()) {
        o.insert("fieldValidation".into(), fv.into());
    }
    Value::Object(o)
}

/// managedFields that mutating admission left undecodable go back to what the field manager
/// (or apply) computed, with kube's warning (`NewManagedFieldsValidatingAdmissionController`).
pub(crate) fn restore_invalid_managed_fields(
    obj: &mut Map<String, Value>,
    before: Option<Value>,
    warnings: &mut Vec<String>,
) {
    let Some(after) = meta(obj).and_then(|m| m.get("managedFields")) else {
        return;
    };
    let Err(e) = crate::api::apply::managed::decode_managed_fields(after) else {
        return;
    };
    warnings.push(format!(
        ".metadata.managedFields was in an invalid state after admission; this could be caused by an outdated mutating admission controller; please fix your requests: {e}"
    ));
    match before {
        Some(mf) => meta_mut(obj).insert("managedFields".into(), mf),
        None => meta_mut(obj).shift_remove("managedFields"),
    };
}

fn managed_fields_of(obj: &Map<String, Value>) -> Option<Value> {
    meta(obj).and_then(|m| m.get("managedFields")).cloned()
}

/// ObjectMeta validation.
fn validate_object_meta(
    res: &ResourceInfo,
    obj: &Map<String, Value>,
    check_name: bool,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = meta_str(obj, "name").unwrap_or("");
    if check_name {
        let errs = match res.names {
            NameRule::Subdomain => validation::dns1123_subdomain(name),
            NameRule::Label => validation::dns1123_label(name),
            NameRule::Label1035 => validation::dns1035_label(name),
            NameRule::PathSegment => validation::path_segment_name(name, false),
        };
        for e in errs {
            causes.push(cause(
                "FieldValueInvalid",
                "metadata.name",
                format!("Invalid value: \"{name}\": {e}"),
            ));
        }
    }
    if let Some(labels) = meta(obj).and_then(|m| m.get("labels")) {
        match labels.as_object() {
            Some(labels) => {
                for (k, v) in labels {
                    for e in validation::qualified_name(k) {
                        causes.push(cause(
                            "FieldValueInvalid",
                            "metadata.labels",
                            format!("Invalid value: \"{k}\": {e}"),
                        ));
                    }
                    match v.as_str() {
                        Some(v) => {
                            for e in validation::label_value(v) {
                                causes.push(cause(
                                    "FieldValueInvalid",
                                    "metadata.labels",
                                    format!("Invalid value: \"{v}\": {e}"),
                                ));
                            }
                        }
                        None => causes.push(cause(
                            "FieldValueTypeInvalid",
                            "metadata.labels",
                            "Invalid value: label values must be strings".into(),
                        )),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push(cause(
                "FieldValueTypeInvalid",
                "metadata.labels",
                "Invalid value: must be an object".into(),
            )),
        }
    }
    if let Some(ann) = meta(obj)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let total: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if total > 256 * 1024 {
            causes.push(cause(
                "FieldValueTooLong",
                "metadata.annotations",
                format!("Too long: must have at most {} bytes", 256 * 1024),
            ));
        }
    }
    causes
}

/// The status a resource starts with (strategies reset status on create).
fn initial_status(res: &ResourceInfo) -> Value {
    match res.plural {
        "pods" => json!({"phase": "Pending"}),
        "namespaces" => json!({"phase": "Active"}),
        "services" => json!({"loadBalancer": {}}),
        "persistentvolumeclaims" | "persistentvolumes" => json!({"phase": "Pending"}),
        _ => json!({}),
    }
}

pub(crate) fn prepare_for_create(res: &ResourceInfo, obj: &mut Map<String, Value>) {
    let m = meta_mut(obj);
    for k in [
        "resourceVersion",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        m.shift_remove(k);
    }
    m.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    m.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
    if res.generation {
        m.insert("generation".into(), json!(1));
    } else {
        m.shift_remove("generation");
    }
    if res.status_subresource {
        obj.insert("status".into(), initial_status(res));
    }
    if res.plural == "namespaces" {
        let spec = obj.entry("spec").or_insert_with(|| json!({}));
        if let Some(spec) = spec.as_object_mut() {
            spec.insert("finalizers".into(), json!(["kubernetes"]));
        }
    }
}

/// Namespaced creates need a live namespace (NamespaceLifecycle): 404 if missing, 403 if it is
/// terminating. The cache answers first; a miss is confirmed against the store.
pub async fn check_namespace(
    api: &Api,
    res: &ResourceInfo,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    let ns_res =
        crate::api::catalogue::lookup("", "v1", "namespaces").expect("namespaces are served");
    let key = api.key(ns_res, None, ns);
    let obj = match api.caches.get(ns_res).get(&key) {
        Some(o) => Some(o),
        None => {
            let (kv, _) = api
                .store
                .get(&key)
                .await
                .map_err(|e| store_error(e, ns_res, "get"))?;
            kv.and_then(|kv| RawObject::from_kv(ns_res, &kv).ok())
                .map(std::sync::Arc::new)
        }
    };
    let Some(obj) = obj else {
        return Err(ApiError::namespace_not_found(ns));
    };
    if obj.field(ns_res, "status.phase") == Some("Terminating") {
        return Err(ApiError::forbidden_terminating(res, name, ns));
    }
    Ok(())
}

pub async fn create(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
    format: Format,
) -> Result<Resp, ApiError> {
    let res = path.res;
    let validation = field_validation(q, "CreateOptions")?;
    let mut warnings = Vec::new();
    let mut obj = decode_checked(res, headers, &body, validation, &mut warnings)?;
    let result = async {
        check_type_meta(res, &mut obj)?;
        let ns = resolve_namespace(res, path, &mut obj)?;
        if meta_str(&obj, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
            return Err(ApiError::new(
                500,
                "",
                "resourceVersion should not be set on objects to be created",
            ));
        }
        create_object(api, res, ns, obj, q, "", format).await
    }
    .await;
    with_warnings(result, &warnings)
}

/// Creates `obj`; `url_name` is the name in the URL (`""` for a POST, the name for a PUT that
/// creates).
async fn create_object(
    api: &Api,
    res: &'static ResourceInfo,
    ns: Option<String>,
    mut obj: Map<String, Value>,
    q: &Query,
    url_name: &str,
    format: Format,
) -> Result<Resp, ApiError> {
    let name = meta_str(&obj, "name").unwrap_or("").to_string();
    let generate = meta_str(&obj, "generateName").unwrap_or("").to_string();
    if name.is_empty() && generate.is_empty() {
        let c = cause(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required".into(),
        );
        return Err(ApiError::invalid(res, "", vec![c]));
    }
    // The writer's managedFields entry is recorded before admission, so what mutating admission
    // adds is attributed to nobody (kube's create handler runs the field manager first).
    let manager = field_manager(q)?;
    crate::api::apply::track_update(None, &mut obj, &manager, "Update", "", &now_rfc3339());
    let managed_before = managed_fields_of(&obj);
    // Mutating admission sees the object first, validating admission the final one
    // (NamespaceLifecycle answers for missing and terminating namespaces).
    let mut attrs = Attributes::new(
        Operation::Create,
        res,
        ns.as_deref(),
        meta_str(&obj, "name").unwrap_or(""),
        q.requester.clone(),
    )
    .with_dry_run(q.is_dry_run())
    .with_options(write_options(
        "CreateOptions",
        q,
        q.field_manager.as_deref(),
    ))
    .with_object(obj);
    let mut warnings = api.admission.mutate(api, &mut attrs).await?;
    let mut obj = attrs.object.take().unwrap_or_default();
    restore_invalid_managed_fields(&mut obj, managed_before, &mut warnings);
    // A name is generated after mutating admission, as kube's `BeforeCreate` does (mutating
    // webhooks see generateName and no name; validating admission sees the generated name).
    let generate = meta_str(&obj, "generateName").unwrap_or("").to_string();
    let generated = meta_str(&obj, "name").unwrap_or("").is_empty() && !generate.is_empty();
    if generated {
        meta_mut(&mut obj).insert(
            "name".into(),
            Value::String(validation::generate_name(&generate)),
        );
    }
    check_type_meta(res, &mut obj)?;
    escalation::check(
        api,
        &escalation::Write {
            res,
            namespace: ns.as_deref(),
            url_name,
            name: &name,
            user: &q.requester,
            old: None,
            new: &obj,
        },
    )
    .await?;
    let causes = validate_meta(res, &obj, true);
    if !causes.is_empty() {
        let shown = if generated { "" } else { name.as_str() };
        return Err(ApiError::invalid(res, shown, causes));
    }
    prepare_for_create(res, &mut obj);
    attrs.object = Some(obj.clone());
    warnings.extend(api.admission.validate(api, &attrs).await?);
    let result = store_create(api, res, ns, obj, generated, &generate, q, format).await;
    with_warnings(result, &warnings)
}

/// Writes a prepared object, retrying generated names that are taken.
#[allow(clippy::too_many_arguments)]
async fn store_create(
    api: &Api,
    res: &'static ResourceInfo,
    ns: Option<String>,
    mut obj: Map<String, Value>,
    generated: bool,
    generate: &str,
    q: &Query,
    format: Format,
) -> Result<Resp, ApiError> {
    let attempts = if generated { GENERATE_NAME_ATTEMPTS } else { 1 };
    for attempt in 0..attempts {
        if generated && attempt > 0 {
            meta_mut(&mut obj).insert(
                "name".into(),
                Value::String(validation::generate_name(generate)),
            );
        }
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        let key = api.key(res, ns.as_deref(), &name);
        if q.is_dry_run() {
            // Dry-run creates answer with an empty resourceVersion.
            let enc = codec::served(res, &obj, None);
            return Ok(object_response(201, format, enc));
        }
        let stored = codec::stored(res, &obj);
        match api.store.create(&key, stored).await {
            Ok(rev) => {
                let enc = codec::served(res, &obj, Some(rev));
                return Ok(object_response(201, format, enc));
            }
            Err(StoreError::AlreadyExists) if generated && attempt + 1 < attempts => continue,
            Err(StoreError::AlreadyExists) if generated => {
                let mut e = ApiError::already_exists(res, &name);
                e.message
                    .push_str(", the server was not able to generate a unique name for the object");
                e.details.retry_after_seconds = 1;
                return Err(e);
            }
            Err(StoreError::AlreadyExists) => return Err(ApiError::already_exists(res, &name)),
            Err(e) => return Err(store_error(e, res, "create")),
        }
    }
    unreachable!("the loop returns on its last attempt")
}

pub async fn update(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
    format: Format,
) -> Result<Resp, ApiError> {
    let res = path.res;
    let validation = field_validation(q, "UpdateOptions")?;
    let mut warnings = Vec::new();
    let new = decode_checked(res, headers, &body, validation, &mut warnings)?;
    let result = update_object(api, path, q, new, format).await;
    with_warnings(result, &warnings)
}

async fn update_object(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    mut new: Map<String, Value>,
    format: Format,
) -> Result<Resp, ApiError> {
    let res = path.res;
    let name = path.name.clone().unwrap_or_default();
    check_type_meta(res, &mut new)?;
    match meta_str(&new, "name") {
        Some(n) if !n.is_empty() && n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        _ => {
            meta_mut(&mut new).insert("name".into(), Value::String(name.clone()));
        }
    }
    let ns = resolve_namespace(res, path, &mut new)?;
    let precondition = match meta_str(&new, "resourceVersion") {
        Some(rv) if !rv.is_empty() => Some(parse_rv(rv)?),
        _ => None,
    };
    let allow_create = res.create_on_update && path.subresource.is_none();
    let outcome =
        guaranteed_update(api, path, q, format, |_old| Ok((new.clone(), precondition))).await;
    match outcome {
        Err(e) if e.code == 404 && allow_create && e.reason == "NotFound" => {
            if precondition.is_some() {
                return Err(e);
            }
            meta_mut(&mut new).remove("resourceVersion");
            create_object(api, res, ns, new, q, &name, format).await
        }
        other => other,
    }
}

const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";
const APPLY_PATCH_YAML: &str = "application/apply-patch+yaml";
const APPLY_PATCH_CBOR: &str = "application/apply-patch+cbor";

#[derive(Clone, Copy, PartialEq, Eq)]
enum PatchType {
    Json,
    Merge,
    Strategic,
}

pub async fn patch(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
    format: Format,
) -> Result<Resp, ApiError> {
    let res = path.res;
    let schema = SchemaRef::for_resource(res);
    // Built-in kinds have a closed schema; custom resources (and kinds without a k8s-openapi
    // type) preserve unknown fields and, like unstructured types, take no strategic merge patch.
    let typed = schema.is_some_and(|s| s.is_closed());
    let accepted: &[&str] = if typed {
        &[JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH_YAML]
    } else {
        &[JSON_PATCH, MERGE_PATCH, APPLY_PATCH_YAML]
    };
    let ct = codec::media_type(content_type(headers));
    let patch_type = match ct.as_str() {
        JSON_PATCH => PatchType::Json,
        MERGE_PATCH => PatchType::Merge,
        STRATEGIC_PATCH if typed => PatchType::Strategic,
        APPLY_PATCH_YAML => {
            return crate::api::apply::handler::apply_patch(
                api, path, q, headers, body, format, q.force,
            )
            .await;
        }
        APPLY_PATCH_CBOR => return Err(ApiError::unsupported_media_type(accepted)),
        _ => return Err(ApiError::unsupported_media_type(accepted)),
    };
    crate::api::apply::validate_patch_options(false, q.field_manager.as_deref(), q.force)?;
    let validation = field_validation(q, "PatchOptions")?;
    let patch_doc: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    // Strict errors of the patch document itself (`appliedStrictErrs`).
    let patch_errors = if validation == FieldValidation::Ignore {
        Vec::new()
    } else if patch_type == PatchType::Json {
        fields::strict_errors(&body, &json_patch_ops_schema())
            .into_iter()
            .map(|e| format!("json patch {e}"))
            .collect()
    } else {
        fields::duplicate_fields(&body)
    };
    let json_patch: Option<json_patch::Patch> = if patch_type == PatchType::Json {
        let p: json_patch::Patch = serde_json::from_value(patch_doc.clone()).map_err(|e| {
            ApiError::bad_request(format!(
                "the server rejected our request due to an error in our request: {e}"
            ))
        })?;
        if p.0.len() > 10_000 {
            return Err(ApiError::new(
                422,
                "Invalid",
                "The allowed maximum operations in a JSON patch is 10000, got more",
            ));
        }
        Some(p)
    } else {
        if !patch_doc.is_object() {
            return Err(ApiError::bad_request(
                "error decoding patch: a merge patch must be a JSON object",
            ));
        }
        None
    };
    let mut warnings = Vec::new();
    let result = guaranteed_update(api, path, q, format, |old| {
        warnings.clear();
        let mut doc = Value::Object(old.clone());
        match (patch_type, &json_patch) {
            (PatchType::Json, Some(p)) => json_patch::patch(&mut doc, p)
                .map_err(|e| patch_invalid(res, &body, &e.to_string()))?,
            (PatchType::Strategic, _) => {
                let schema = schema.expect("strategic merge patch is only taken for typed kinds");
                doc = strategic::apply(&doc, &patch_doc, &schema).map_err(smp_error)?;
            }
            _ => json_patch::merge(&mut doc, &patch_doc),
        }
        if let Some(schema) = &schema {
            if validation != FieldValidation::Ignore {
                // The patched object is decoded into the Go type: after a Go map round trip for
                // JSON and merge patches, from a map (whose unknown fields are sorted) for SMP.
                let mut errors = patch_errors.clone();
                if patch_type == PatchType::Strategic {
                    let mut unknown = fields::unknown_fields(&doc, schema);
                    unknown.sort();
                    errors.extend(unknown);
                } else {
                    errors.extend(fields::unknown_fields_sorted(&doc, schema));
                }
                if !errors.is_empty() {
                    if validation == FieldValidation::Strict {
                        let shown = match patch_type {
                            PatchType::Strategic => strategic::go_fmt(&patch_doc),
                            _ => doc.to_string(),
                        };
                        return Err(strict_patch_error(&shown, &errors));
                    }
                    warnings = errors;
                }
            }
            fields::prune_unknown_fields(&mut doc, schema);
        }
        let Value::Object(mut new) = doc else {
            return Err(patch_invalid(
                res,
                &body,
                "the patched document is not an object",
            ));
        };
        check_type_meta(res, &mut new)?;
        let old_rv = meta_str(old, "resourceVersion").unwrap_or("");
        let precondition = match meta_str(&new, "resourceVersion") {
            Some(rv) if rv != old_rv => Some(parse_rv(rv)?),
            _ => None,
        };
        Ok((new, precondition))
    })
    .await;
    with_warnings(result, &warnings)
}

/// The strategic merge patch error as kube-apiserver answers it
/// (`interpretStrategicMergePatchError`).
fn smp_error(err: String) -> ApiError {
    match strategic::error_code(&err) {
        400 => ApiError::bad_request(err),
        422 => {
            let mut e = ApiError::new(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
            );
            e.details.causes = vec![cause("UnexpectedServerResponse", "", err)];
            e
        }
        // A plain error: 500 with an empty reason.
        _ => ApiError::new(500, "", err),
    }
}

/// `jsonPatchOp`, the type a JSON patch is strictly decoded into.
fn json_patch_ops_schema() -> SchemaRef<'static> {
    static DEFS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    let defs = DEFS.get_or_init(|| {
        let mut defs = BTreeMap::new();
        defs.insert(
            "jsonPatchOp".to_string(),
            json!({
                "type": "object",
                "properties": {"op": {"type": "string"}, "path": {"type": "string"}, "from": {"type": "string"}, "value": {}}
            }),
        );
        defs.insert(
            "jsonPatch".to_string(),
            json!({"type": "array", "items": {"$ref": "#/components/schemas/jsonPatchOp"}}),
        );
        defs
    });
    SchemaRef::definition(defs, "jsonPatch").expect("defined above")
}

// ---------------------------------------------------------------------------------------------
// fieldValidation and warnings
// ---------------------------------------------------------------------------------------------

/// The `fieldValidation` directive (API-SEMANTICS §4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FieldValidation {
    /// Unknown fields are dropped silently, duplicates resolved last-wins.
    Ignore,
    /// As Ignore, with a `Warning` header per unknown or duplicate field (the default).
    Warn,
    /// Unknown or duplicate fields fail the request.
    Strict,
}

/// Parses `?fieldValidation=`; anything but `Ignore`, `Warn`, `Strict` or empty is rejected by
/// the options validation (`ValidateFieldValidation`): 422 on `<Create|Update|Patch>Options`.
fn field_validation(q: &Query, options_kind: &str) -> Result<FieldValidation, ApiError> {
    match q.field_validation.as_deref().unwrap_or("") {
        "" | "Warn" => Ok(FieldValidation::Warn),
        "Ignore" => Ok(FieldValidation::Ignore),
        "Strict" => Ok(FieldValidation::Strict),
        other => Err(ApiError::invalid_options(
            options_kind,
            "fieldValidation",
            "FieldValueNotSupported",
            &format!(
                "Unsupported value: \"{other}\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
            ),
        )),
    }
}

/// Decodes a create or update body and applies `fieldValidation`: unknown and duplicate fields
/// fail the request under Strict (400), become warnings under Warn, and unknown fields are
/// dropped, as decoding into the Go type does. Protobuf bodies carry only known fields.
fn decode_checked(
    res: &ResourceInfo,
    headers: &HeaderMap,
    body: &[u8],
    validation: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, ApiError> {
    let ct = content_type(headers);
    let obj = decode_body(ct, body)?;
    let Some(schema) = SchemaRef::for_resource(res) else {
        return Ok(obj);
    };
    let mt = codec::media_type(ct);
    if mt == codec::PROTOBUF {
        return Ok(obj);
    }
    let mut obj = Value::Object(obj);
    if validation != FieldValidation::Ignore {
        let errors = match mt.as_str() {
            codec::YAML | "application/x-yaml" | "text/yaml" => {
                fields::unknown_fields_sorted(&obj, &schema)
            }
            _ => fields::strict_errors(body, &schema),
        };
        if !errors.is_empty() {
            if validation == FieldValidation::Strict {
                return Err(strict_body_error(res, &obj, &errors));
            }
            warnings.extend(errors);
        }
    }
    fields::prune_unknown_fields(&mut obj, &schema);
    match obj {
        Value::Object(m) => Ok(m),
        _ => unreachable!("decode_body returns objects"),
    }
}

/// Strict decoding errors of a create or update body (`transformDecodeError`): 400
/// `Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: …`.
fn strict_body_error(res: &ResourceInfo, obj: &Value, errors: &[String]) -> ApiError {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .unwrap_or(res.kind);
    let version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(|av| av.rsplit('/').next().unwrap_or(av))
        .unwrap_or(res.version);
    ApiError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {}: {}",
        res.kind,
        fields::strict_decoding_error(errors)
    ))
}

/// Strict decoding errors of a patched object: 422 with an empty kind, as the patch handler
/// builds it (`errors.NewInvalid(schema.GroupKind{}, "", …)` on field `patch`).
fn strict_patch_error(shown: &str, errors: &[String]) -> ApiError {
    let body = format!(
        "Invalid value: {}: {}",
        Value::String(shown.to_string()),
        fields::strict_decoding_error(errors)
    );
    let mut e = ApiError::new(422, "Invalid", format!(" \"\" is invalid: patch: {body}"));
    e.details.causes = vec![cause("FieldValueInvalid", "patch", body)];
    e
}

/// `299 - "<text>"` (k8s.io/apimachinery/pkg/util/net `NewWarningHeader`).
fn warning_header(text: &str) -> Option<HeaderValue> {
    let mut v = String::with_capacity(text.len() + 8);
    v.push_str("299 - \"");
    for c in text.chars() {
        if c == '"' || c == '\\' {
            v.push('\\');
        }
        v.push(if c.is_control() { ' ' } else { c });
    }
    v.push('"');
    HeaderValue::from_bytes(v.as_bytes()).ok()
}

/// Adds a `Warning` header per (distinct) warning to a response.
pub fn add_warnings(resp: &mut Resp, warnings: &[String]) {
    let mut sent: Vec<&str> = Vec::new();
    for w in warnings {
        if sent.contains(&w.as_str()) {
            continue;
        }
        sent.push(w);
        if let Some(v) = warning_header(w) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
}

/// A write handler's result with its warnings: kube-apiserver sends them on errors too, so an
/// error becomes its Status response here.
pub fn with_warnings(
    result: Result<Resp, ApiError>,
    warnings: &[String],
) -> Result<Resp, ApiError> {
    if warnings.is_empty() {
        return result;
    }
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    add_warnings(&mut resp, warnings);
    Ok(resp)
}

fn patch_invalid(res: &ResourceInfo, body: &[u8], err: &str) -> ApiError {
    let shown = String::from_utf8_lossy(body);
    let c = cause(
        "FieldValueInvalid",
        "patch",
        format!("Invalid value: \"{shown}\": {err}"),
    );
    let mut e = ApiError::invalid(res, "", vec![c]);
    e.message = format!("the server rejected our request due to an error in our request: {err}");
    e
}

/// Read-modify-write with CAS, retried on conflicts unless the client gave a resourceVersion.
/// `make` turns the current object (as served) into the desired one plus a precondition.
async fn guaranteed_update<F>(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    format: Format,
    mut make: F,
) -> Result<Resp, ApiError>
where
    F: FnMut(&Map<String, Value>) -> Result<(Map<String, Value>, Option<i64>), ApiError>,
{
    let res = path.res;
    let name = path.name.clone().unwrap_or_default();
    let key = api.key(res, path.namespace.as_deref(), &name);
    let manager = field_manager(q)?;
    let subresource = path.subresource.as_deref();
    loop {
        let (kv, _) = api
            .store
            .get(&key)
            .await
            .map_err(|e| store_error(e, res, "get"))?;
        let Some(kv) = kv else {
            return Err(ApiError::not_found(res, &name));
        };
        let current = RawObject::from_kv(res, &kv).map_err(ApiError::internal)?;
        let old = current.to_map();
        let (new, precondition) = make(&old)?;
        if let Some(p) = precondition {
            if p != kv.mod_revision {
                return Err(ApiError::modified_conflict(res, &name));
            }
        }
        // The writer's managedFields entry first, then mutating admission (kube's update and
        // patch handlers run the field manager before admission).
        let mut new = new;
        crate::api::apply::track_update(
            Some(&old),
            &mut new,
            &manager,
            "Update",
            subresource.unwrap_or(""),
            &now_rfc3339(),
        );
        let managed_before = managed_fields_of(&new);
        let mut attrs = Attributes::new(
            Operation::Update,
            res,
            path.namespace.as_deref(),
            &name,
            q.requester.clone(),
        )
        .with_subresource(subresource)
        .with_dry_run(q.is_dry_run())
        .with_options(write_options(
            "UpdateOptions",
            q,
            q.field_manager.as_deref(),
        ))
        .with_old_object(old.clone())
        .with_object(new);
        let mut warnings = api.admission.mutate(api, &mut attrs).await?;
        let mut new = attrs.object.take().unwrap_or_default();
        restore_invalid_managed_fields(&mut new, managed_before, &mut warnings);
        if subresource.is_none() {
            escalation::check(
                api,
                &escalation::Write {
                    res,
                    namespace: path.namespace.as_deref(),
                    url_name: &name,
                    name: &name,
                    user: &q.requester,
                    old: Some(&old),
                    new: &new,
                },
            )
            .await?;
        }
        prepare_for_update(res, subresource, &old, &mut new, &name)?;
        // A change only to managedFields timestamps is no change (kube's store runs
        // IgnoreManagedFieldsTimestampsTransformer after the strategy).
        crate::api::apply::ignore_managed_fields_timestamps(&old, &mut new);
        let causes = validate_update(res, &new, &old);
        if !causes.is_empty() {
            return Err(ApiError::invalid(res, &name, causes));
        }
        attrs.object = Some(new.clone());
        warnings.extend(api.admission.validate(api, &attrs).await?);
        let deleting = meta(&new).is_some_and(|m| m.contains_key("deletionTimestamp"));
        let finalizers_empty = meta(&new)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
        let stored = codec::stored(res, &new);
        if stored == kv.value {
            // A no-op update is not written and fires no event.
            return with_warnings(
                Ok(object_response(200, format, current.json().clone())),
                &warnings,
            );
        }
        if q.is_dry_run() {
            let enc = codec::served(res, &new, Some(kv.mod_revision));
            return with_warnings(Ok(object_response(200, format, enc)), &warnings);
        }
        let result = if deleting && finalizers_empty {
            // The last finalizer is gone: the object is deleted (ShouldDeleteDuringUpdate).
            api.store.delete(&key, kv.mod_revision).await
        } else {
            api.store.update(&key, stored, kv.mod_revision).await
        };
        if let Some(rev) = cas_outcome(result, precondition.is_some(), res, &name)? {
            let enc = codec::served(res, &new, Some(rev));
            return with_warnings(Ok(object_response(200, format, enc)), &warnings);
        }
    }
}

/// What a compare-and-swap update's result means: the new revision, `None` to read again and
/// retry (a lost race, when the client set no resourceVersion precondition), or the client's
/// error.
pub(crate) fn cas_outcome(
    result: Result<i64, StoreError>,
    precondition: bool,
    res: &ResourceInfo,
    name: &str,
) -> Result<Option<i64>, ApiError> {
    match result {
        Ok(rev) => Ok(Some(rev)),
        Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound) if !precondition => Ok(None),
        Err(StoreError::Conflict { .. }) => Err(ApiError::modified_conflict(res, name)),
        Err(StoreError::NotFound) => Err(ApiError::not_found(res, name)),
        Err(e) => Err(store_error(e, res, "update")),
    }
}

fn spec_of(obj: &Map<String, Value>) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "kind" | "apiVersion"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The update strategy: what a client may change, and what the server keeps or bumps.
pub(crate) fn prepare_for_update(
    res: &ResourceInfo,
    subresource: Option<&str>,
    old: &Map<String, Value>,
    new: &mut Map<String, Value>,
    name: &str,
) -> Result<(), ApiError> {
    match subresource {
        Some("status") => {
            // Only status (and the request's managedFields) change through /status.
            let status = new.shift_remove("status");
            let managed = meta(new).and_then(|m| m.get("managedFields")).cloned();
            *new = old.clone();
            match status {
                Some(s) => new.insert("status".into(), s),
                None => new.shift_remove("status"),
            };
            match managed {
                Some(mf) => meta_mut(new).insert("managedFields".into(), mf),
                None => meta_mut(new).shift_remove("managedFields"),
            };
        }
        Some("finalize") => {
            let finalizers = new.get("spec").and_then(|s| s.get("finalizers")).cloned();
            // managedFields were tracked for this request before the strategy: keep them.
            let managed = managed_fields_of(new);
            *new = old.clone();
            match managed {
                Some(mf) => meta_mut(new).insert("managedFields".into(), mf),
                None => meta_mut(new).shift_remove("managedFields"),
            };
            let spec = new.entry("spec").or_insert_with(|| json!({}));
            if let Some(spec) = spec.as_object_mut() {
                match finalizers {
                    Some(f) => spec.insert("finalizers".into(), f),
                    None => spec.shift_remove("finalizers"),
                };
            }
        }
        _ => {
            if res.status_subresource {
                match old.get("status") {
                    Some(s) => new.insert("status".into(), s.clone()),
                    None => new.shift_remove("status"),
                };
            }
            if res.plural == "namespaces" {
                // spec.finalizers only change through /finalize.
                match old.get("spec") {
                    Some(s) => new.insert("spec".into(), s.clone()),
                    None => new.shift_remove("spec"),
                };
            }
        }
    }
    let old_meta = meta(old).cloned().unwrap_or_default();
    let mut causes = Vec::new();
    {
        let m = meta_mut(new);
        m.shift_remove("resourceVersion");
        m.shift_remove("selfLink");
        for k in [
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old_meta.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.shift_remove(k),
            };
        }
        match (
            m.get("uid").and_then(Value::as_str),
            old_meta.get("uid").and_then(Value::as_str),
        ) {
            (Some(n), Some(o)) if !n.is_empty() && n != o => {
                causes.push(cause(
                    "FieldValueInvalid",
                    "metadata.uid",
                    format!("Invalid value: \"{n}\": field is immutable"),
                ));
            }
            _ => {
                if let Some(u) = old_meta.get("uid") {
                    m.insert("uid".into(), u.clone());
                }
            }
        }
        if old_meta.contains_key("deletionTimestamp") {
            let old_f: Vec<&Value> = old_meta
                .get("finalizers")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            if let Some(new_f) = m.get("finalizers").and_then(Value::as_array) {
                if new_f.iter().any(|f| !old_f.contains(&f)) {
                    causes.push(cause(
                        "FieldValueForbidden",
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted"
                            .into(),
                    ));
                }
            }
        }
        match old_meta.get("generation") {
            Some(g) => m.insert("generation".into(), g.clone()),
            None => m.shift_remove("generation"),
        };
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(res, name, causes));
    }
    if res.generation && spec_of(old) != spec_of(new) {
        let g = meta(old)
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(new).insert("generation".into(), json!(g + 1));
    }
    Ok(())
}

/// The field manager of an ordinary write: `?fieldManager=`, else the User-Agent's product name.
fn field_manager(q: &Query) -> Result<String, ApiError> {
    if let Some(fm) = q.field_manager.as_deref() {
        crate::api::apply::validate_field_manager("UpdateOptions", Some(fm))?;
    }
    Ok(crate::api::apply::manager_or_user_agent(
        q.field_manager.as_deref(),
        q.user_agent.as_deref(),
    ))
}
