//! OpenAPI documents (API-SEMANTICS §7 "Other endpoints"; kube-openapi `pkg/handler3`).
//!
//! - `GET /openapi/v3`: the index `{"paths":{"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=<ETAG>"},…}}`.
//! - `GET /openapi/v3/api/v1`, `/openapi/v3/apis/<g>/<v>`: one OpenAPI 3.0 document per
//!   group-version, with the paths of every catalogue resource of that group-version and the
//!   component schemas they reach. kubectl reads these for `explain`, for client-side `apply`
//!   (strategic-merge metadata) and to learn whether the server supports `fieldValidation`.
//! - `GET /openapi/v2`: the same content as one Swagger 2.0 document.
//!
//! The schemas come from `k8s-openapi` (its `schemars` implementations, generated from the
//! Kubernetes OpenAPI spec). Those carry names, descriptions, types and `required`, but not the
//! `x-kubernetes-*` extensions that describe list and map semantics, so [`LIST_RULES`] and
//! [`ATOMIC_STRUCTS`] add them from the `patchStrategy`/`patchMergeKey` tags and `+listType`,
//! `+listMapKey`, `+mapType`, `+structType` markers of the Kubernetes types.
//!
//! Every document is built once, on first use, and served from memory with kube-openapi's caching
//! protocol: a quoted `ETag` (upper-case hex SHA-512 of the JSON), `If-None-Match` → 304, and for a
//! group-version document requested with the current `?hash=`, `Cache-Control: public, immutable`
//! plus an `Expires` one year ahead; a stale hash is redirected (301) to the current URL.

use super::catalogue::{self, ResourceInfo};
use super::handlers::{full, json_response, text_response, Resp};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::JsonSchema;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;
use std::time::SystemTime;

const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";

// ---------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------

/// Serves `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<group-version>`; None for other paths.
/// The caller routes only GET and HEAD here.
pub fn serve(path: &str, query: Option<&str>, headers: &HeaderMap) -> Option<Resp> {
    let rest = path.strip_prefix("/openapi/")?;
    if rest == "v3" {
        let idx = index();
        return Some(serve_document(&idx.body, &idx.etag, idx.built, headers));
    }
    if rest == "v2" {
        if !accepts_json(headers) {
            return Some(not_acceptable());
        }
        let doc = v2();
        return Some(serve_document(&doc.body, &doc.etag, doc.built, headers));
    }
    let gv = rest.strip_prefix("v3/")?;
    let Some(doc) = documents().get(gv) else {
        return Some(text_response(404, "404 page not found\n"));
    };
    if !accepts_json(headers) {
        return Some(not_acceptable());
    }
    let hash = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "hash")
            .map(|(_, v)| v.into_owned())
    });
    let mut resp = match hash.as_deref() {
        Some(h) if !h.is_empty() && h != doc.etag => {
            // kube-openapi answers http.Redirect after having set Content-Type, so the 301 keeps
            // `application/json` and has no body.
            let mut r = json_response(301, Bytes::new());
            set(
                &mut r,
                http::header::LOCATION,
                &server_relative_url(gv, &doc.etag),
            );
            set(&mut r, http::header::ETAG, &quote(&doc.etag));
            r
        }
        Some(h) if !h.is_empty() => {
            let mut r = serve_document(&doc.body, &doc.etag, doc.built, headers);
            set(&mut r, http::header::CACHE_CONTROL, "public, immutable");
            let expires = SystemTime::now() + std::time::Duration::from_secs(365 * 24 * 3600);
            set(&mut r, http::header::EXPIRES, &http_date(expires));
            r
        }
        _ => serve_document(&doc.body, &doc.etag, doc.built, headers),
    };
    set(&mut resp, http::header::VARY, "Accept");
    Some(resp)
}

/// Builds the v3 documents and their index ahead of the first request (they are otherwise built
/// lazily by the first `/openapi/v3` request, which takes ~1 s in a debug build). Blocking: call
/// it from `spawn_blocking` or a thread at start-up.
pub fn warm() {
    index();
}

/// One built document: its JSON, the unquoted ETag and when it was built (`Last-Modified`).
struct Document {
    body: Bytes,
    etag: String,
    built: SystemTime,
}

impl Document {
    fn new(value: &Value) -> Document {
        let body = serde_json::to_vec(value).expect("OpenAPI documents serialize");
        let etag = compute_etag(&body);
        Document {
            body: Bytes::from(body),
            etag,
            built: SystemTime::now(),
        }
    }
}

/// kube-openapi `computeETag`: `fmt.Sprintf("%X", sha512.Sum512(data))`.
pub fn compute_etag(data: &[u8]) -> String {
    let digest = Sha512::digest(data);
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

fn quote(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// `/openapi/v3/<gv>?hash=<etag>` (kube-openapi `constructServerRelativeURL`).
fn server_relative_url(gv: &str, etag: &str) -> String {
    format!("/openapi/v3/{gv}?hash={etag}")
}

fn set(resp: &mut Resp, name: http::header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// Like Go's `http.ServeContent` for a complete in-memory body: `ETag`, `Last-Modified` and the
/// `If-None-Match` check. Without a hash the cache must revalidate (`no-cache, private`).
fn serve_document(body: &Bytes, etag: &str, built: SystemTime, headers: &HeaderMap) -> Resp {
    let quoted = quote(etag);
    let mut resp = if if_none_match(headers, &quoted) {
        let mut r = http::Response::new(full(Bytes::new()));
        *r.status_mut() = http::StatusCode::NOT_MODIFIED;
        r
    } else {
        json_response(200, body.clone())
    };
    set(&mut resp, http::header::ETAG, &quoted);
    set(&mut resp, http::header::LAST_MODIFIED, &http_date(built));
    set(&mut resp, http::header::CACHE_CONTROL, "no-cache, private");
    resp
}

/// Whether `If-None-Match` names this (quoted) ETag, weakly compared, or is `*`.
fn if_none_match(headers: &HeaderMap, quoted: &str) -> bool {
    headers
        .get_all(http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == quoted)
}

/// JSON is served for a missing Accept, `*/*`, `application/*` and `application/json`; the
/// protobuf variants of the documents are not served.
fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    if accept.trim().is_empty() {
        return true;
    }
    accept.split(',').any(|part| {
        let mut params = part.split(';');
        let mt = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let zero_q = params.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        !zero_q && matches!(mt.as_str(), "application/json" | "application/*" | "*/*")
    })
}

fn not_acceptable() -> Resp {
    let mut r = http::Response::new(full(Bytes::new()));
    *r.status_mut() = http::StatusCode::NOT_ACCEPTABLE;
    r
}

/// An IMF-fixdate (`Mon, 02 Jan 2006 15:04:05 GMT`).
fn http_date(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------------

/// `api/v1` for the core group, `apis/<g>/<v>` otherwise.
fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The per-group-version documents, keyed by `api/v1`, `apis/apps/v1`, ….
fn documents() -> &'static BTreeMap<String, Document> {
    static DOCS: OnceLock<BTreeMap<String, Document>> = OnceLock::new();
    DOCS.get_or_init(|| {
        catalogue::group_versions()
            .into_iter()
            .map(|(g, v)| (gv_key(g, v), Document::new(&v3_document(g, v))))
            .collect()
    })
}

fn index() -> &'static Document {
    static INDEX: OnceLock<Document> = OnceLock::new();
    INDEX.get_or_init(|| {
        let paths: Map<String, Value> = documents()
            .iter()
            .map(|(gv, doc)| {
                (
                    gv.clone(),
                    json!({"serverRelativeURL": server_relative_url(gv, &doc.etag)}),
                )
            })
            .collect();
        Document::new(&json!({ "paths": paths }))
    })
}

fn v2() -> &'static Document {
    static V2: OnceLock<Document> = OnceLock::new();
    V2.get_or_init(|| Document::new(&v2_document()))
}

/// The version string in `info.version`: the server's `gitVersion`.
fn server_version() -> String {
    serde_json::from_slice::<Value>(&super::discovery::version_info())
        .ok()
        .and_then(|v| v["gitVersion"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unversioned".into())
}

/// The OpenAPI v3 document of one group-version, as a JSON value.
pub fn v3_document(group: &str, version: &str) -> Value {
    let resources: Vec<&ResourceInfo> = catalogue::all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    let paths = gv_paths(group, version, &resources);
    let schemas = &schemas().defs;
    // Only the schemas the paths reach, transitively (as kube-apiserver's per-GV documents).
    let mut reached = BTreeSet::new();
    let mut stack = Vec::new();
    collect_refs(&Value::Object(paths.clone()), &mut stack);
    while let Some(name) = stack.pop() {
        if reached.insert(name.clone()) {
            if let Some(s) = schemas.get(&name) {
                collect_refs(s, &mut stack);
            }
        }
    }
    let components: Map<String, Value> = reached
        .into_iter()
        .filter_map(|n| schemas.get(&n).map(|s| (n, s.clone())))
        .collect();
    let mut doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": server_version()},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "BearerToken": {
                    "description": "Bearer Token authentication",
                    "in": "header",
                    "name": "authorization",
                    "type": "apiKey",
                },
            },
        },
        "security": [{"BearerToken": []}],
    });
    sort_keys(&mut doc);
    doc
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    if let Some(name) = v.as_str().and_then(|s| s.strip_prefix(SCHEMA_REF_PREFIX)) {
                        out.push(name.to_string());
                    }
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Sorts object keys recursively (Go marshals maps sorted; kube's documents read that way).
fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, mut v) in entries {
                sort_keys(&mut v);
                m.insert(k, v);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

const OBJECT_MEDIA: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const STREAM_MEDIA: &[&str] = &[
    "application/json",
    "application/json;stream=watch",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
const PATCH_MEDIA: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// Query parameters of list and watch (without `pretty`, which sits on the path).
const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
];
const DELETE_COLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];

/// (type, description) of a query parameter.
fn param_info(name: &str, patch: bool) -> (&'static str, &'static str) {
    match name {
        "allowWatchBookmarks" => ("boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored."),
        "continue" => ("string", "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize. If the specified continue value is no longer valid, the server will respond with a 410 ResourceExpired error together with a continue token.\n\nThis field is not supported when watch is true. Clients may start a watch from the last resourceVersion value returned by the server and not miss any modifications."),
        "dryRun" => ("string", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed"),
        "fieldManager" if patch => ("string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch)."),
        "fieldManager" => ("string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint."),
        "fieldSelector" => ("string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        "fieldValidation" => ("string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors. This is the default. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present."),
        "force" => ("boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests."),
        "gracePeriodSeconds" => ("integer", "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately."),
        "ignoreStoreReadErrorWithClusterBreakingPotential" => ("boolean", "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error. The default value is false, and the user must opt in to enable it."),
        "labelSelector" => ("string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        "limit" => ("integer", "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results. Clients should only use the presence of the continue field to determine whether more results are available. This field is not supported if watch is true."),
        "orphanDependents" => ("boolean", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both."),
        "pretty" => ("string", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget)."),
        "propagationPolicy" => ("string", "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground."),
        "resourceVersion" => ("string", "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset"),
        "resourceVersionMatch" => ("string", "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset"),
        "sendInitialEvents" => ("boolean", "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event will be sent, marked with the `\"k8s.io/initial-events-end\": \"true\"` annotation. Afterwards, the watch stream will proceed as usual. When `sendInitialEvents` is set, `resourceVersionMatch` must be NotOlderThan."),
        "timeoutSeconds" => ("integer", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity."),
        "watch" => ("boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion."),
        _ => ("string", ""),
    }
}

fn query_param(name: &str, patch: bool) -> Value {
    let (ty, desc) = param_info(name, patch);
    json!({"description": desc, "in": "query", "name": name, "schema": {"type": ty, "uniqueItems": true}})
}

fn query_params(names: &[&str], patch: bool) -> Vec<Value> {
    names.iter().map(|n| query_param(n, patch)).collect()
}

fn path_param(name: &str, description: String) -> Value {
    json!({"description": description, "in": "path", "name": name, "required": true,
           "schema": {"type": "string", "uniqueItems": true}})
}

fn namespace_param() -> Value {
    path_param(
        "namespace",
        "object name and auth scope, such as for teams and projects".into(),
    )
}

fn sorted(mut params: Vec<Value>) -> Value {
    params.sort_by(|a, b| {
        a["name"]
            .as_str()
            .unwrap_or("")
            .cmp(b["name"].as_str().unwrap_or(""))
    });
    Value::Array(params)
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMA_REF_PREFIX}{name}") })
}

fn content(media: &[&str], schema: &str) -> Value {
    Value::Object(
        media
            .iter()
            .map(|m| (m.to_string(), json!({ "schema": schema_ref(schema) })))
            .collect(),
    )
}

fn responses(codes: &[(&str, &str)], media: &[&str], schema: &str) -> Value {
    let mut m = Map::new();
    for (code, desc) in codes {
        m.insert(
            code.to_string(),
            json!({"content": content(media, schema), "description": desc}),
        );
    }
    m.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(m)
}

/// `apps` → `Apps`, `rbac.authorization.k8s.io` → `RbacAuthorization`, core → `Core`.
fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split(['.', '-'])
        .map(|s| {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `core_v1`, `apps_v1`, `rbacAuthorization_v1`.
fn tag(group: &str, version: &str) -> String {
    let g = group_camel(group);
    let mut c = g.chars();
    let lower = c
        .next()
        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
        .unwrap_or_default();
    format!("{lower}_{version}")
}

struct OpCtx {
    gvk: Value,
    tag: String,
    /// `CoreV1`, `AppsV1`.
    gv_id: String,
    /// `NamespacedPod` or `Node`.
    scoped_kind: String,
}

impl OpCtx {
    fn op(
        &self,
        description: String,
        op_id: String,
        action: &str,
        params: Vec<Value>,
        body: Option<Value>,
        responses: Value,
    ) -> Value {
        let mut m = Map::new();
        m.insert("description".into(), description.into());
        m.insert("operationId".into(), op_id.into());
        if !params.is_empty() {
            m.insert("parameters".into(), sorted(params));
        }
        if let Some(b) = body {
            m.insert("requestBody".into(), b);
        }
        m.insert("responses".into(), responses);
        m.insert("tags".into(), json!([self.tag]));
        m.insert("x-kubernetes-action".into(), action.into());
        m.insert("x-kubernetes-group-version-kind".into(), self.gvk.clone());
        Value::Object(m)
    }

    fn id(&self, verb: &str, suffix: &str) -> String {
        format!("{verb}{}{}{suffix}", self.gv_id, self.scoped_kind)
    }
}

fn object_body(schema: &str) -> Value {
    json!({"content": {"*/*": {"schema": schema_ref(schema)}}, "required": true})
}

fn patch_body() -> Value {
    json!({"content": content(PATCH_MEDIA, &format!("{META}Patch")), "required": true})
}

fn delete_body() -> Value {
    json!({"content": {"*/*": {"schema": schema_ref(&format!("{META}DeleteOptions"))}}})
}

/// The `paths` object of one group-version.
fn gv_paths(group: &str, version: &str, resources: &[&ResourceInfo]) -> Map<String, Value> {
    let s = schemas();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let gv_id = format!("{}{}", group_camel(group), capitalize(version));
    let tag = tag(group, version);
    let mut paths: BTreeMap<String, Value> = BTreeMap::new();
    let status = format!("{META}Status");
    let watch_event = format!("{META}WatchEvent");

    paths.insert(
        format!("{prefix}/"),
        json!({"get": {
            "description": "get available resources",
            "operationId": format!("get{gv_id}APIResources"),
            "responses": responses(&[("200", "OK")], OBJECT_MEDIA, &format!("{META}APIResourceList")),
            "tags": [tag],
        }}),
    );

    for r in resources {
        let Some(kind_def) = s.kinds.get(&(r.group, r.version, r.kind)) else {
            continue;
        };
        let list_def = format!("{kind_def}List");
        let ctx = OpCtx {
            gvk: json!({"group": r.group, "kind": r.kind, "version": r.version}),
            tag: tag.clone(),
            gv_id: gv_id.clone(),
            scoped_kind: if r.namespaced {
                format!("Namespaced{}", r.kind)
            } else {
                r.kind.to_string()
            },
        };
        let kind = r.kind;
        let ns_part = if r.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let coll = format!("{prefix}{ns_part}/{}", r.plural);
        let item = format!("{coll}/{{name}}");
        let name_param = path_param("name", format!("name of the {kind}"));
        let scope_params = |with_name: bool| {
            let mut v = Vec::new();
            if with_name {
                v.push(name_param.clone());
            }
            if r.namespaced {
                v.push(namespace_param());
            }
            v.push(query_param("pretty", false));
            v
        };

        // Collection: list, create, deletecollection.
        let mut c = Map::new();
        c.insert(
            "get".into(),
            ctx.op(
                format!("list or watch objects of kind {kind}"),
                ctx.id("list", ""),
                "list",
                query_params(LIST_PARAMS, false),
                None,
                responses(&[("200", "OK")], STREAM_MEDIA, &list_def),
            ),
        );
        c.insert(
            "post".into(),
            ctx.op(
                format!("create {} {kind}", article(kind)),
                ctx.id("create", ""),
                "post",
                query_params(WRITE_PARAMS, false),
                Some(object_body(kind_def)),
                responses(
                    &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                    OBJECT_MEDIA,
                    kind_def,
                ),
            ),
        );
        if !(r.group.is_empty() && r.plural == "namespaces") {
            c.insert(
                "delete".into(),
                ctx.op(
                    format!("delete collection of {kind}"),
                    format!("delete{}Collection{}", ctx.gv_id, ctx.scoped_kind),
                    "deletecollection",
                    query_params(DELETE_COLLECTION_PARAMS, false),
                    Some(delete_body()),
                    responses(&[("200", "OK")], OBJECT_MEDIA, &status),
                ),
            );
        }
        c.insert("parameters".into(), sorted(scope_params(false)));
        paths.insert(coll.clone(), Value::Object(c));

        // Item: read, replace, patch, delete.
        let deleted = if r.return_deleted_object {
            kind_def.as_str()
        } else {
            status.as_str()
        };
        let mut i = Map::new();
        i.insert(
            "get".into(),
            ctx.op(
                format!("read the specified {kind}"),
                ctx.id("read", ""),
                "get",
                Vec::new(),
                None,
                responses(&[("200", "OK")], OBJECT_MEDIA, kind_def),
            ),
        );
        i.insert(
            "put".into(),
            ctx.op(
                format!("replace the specified {kind}"),
                ctx.id("replace", ""),
                "put",
                query_params(WRITE_PARAMS, false),
                Some(object_body(kind_def)),
                responses(&[("200", "OK"), ("201", "Created")], OBJECT_MEDIA, kind_def),
            ),
        );
        i.insert(
            "patch".into(),
            ctx.op(
                format!("partially update the specified {kind}"),
                ctx.id("patch", ""),
                "patch",
                query_params(PATCH_PARAMS, true),
                Some(patch_body()),
                responses(&[("200", "OK"), ("201", "Created")], OBJECT_MEDIA, kind_def),
            ),
        );
        i.insert(
            "delete".into(),
            ctx.op(
                format!("delete {} {kind}", article(kind)),
                ctx.id("delete", ""),
                "delete",
                query_params(DELETE_PARAMS, false),
                Some(delete_body()),
                responses(&[("200", "OK"), ("202", "Accepted")], OBJECT_MEDIA, deleted),
            ),
        );
        i.insert("parameters".into(), sorted(scope_params(true)));
        paths.insert(item.clone(), Value::Object(i));

        // Subresources.
        if r.status_subresource {
            let mut st = Map::new();
            st.insert(
                "get".into(),
                ctx.op(
                    format!("read status of the specified {kind}"),
                    ctx.id("read", "Status"),
                    "get",
                    Vec::new(),
                    None,
                    responses(&[("200", "OK")], OBJECT_MEDIA, kind_def),
                ),
            );
            st.insert(
                "put".into(),
                ctx.op(
                    format!("replace status of the specified {kind}"),
                    ctx.id("replace", "Status"),
                    "put",
                    query_params(WRITE_PARAMS, false),
                    Some(object_body(kind_def)),
                    responses(&[("200", "OK"), ("201", "Created")], OBJECT_MEDIA, kind_def),
                ),
            );
            st.insert(
                "patch".into(),
                ctx.op(
                    format!("partially update status of the specified {kind}"),
                    ctx.id("patch", "Status"),
                    "patch",
                    query_params(PATCH_PARAMS, true),
                    Some(patch_body()),
                    responses(&[("200", "OK"), ("201", "Created")], OBJECT_MEDIA, kind_def),
                ),
            );
            st.insert("parameters".into(), sorted(scope_params(true)));
            paths.insert(format!("{item}/status"), Value::Object(st));
        }
        if r.group.is_empty() && r.plural == "namespaces" {
            let mut f = Map::new();
            f.insert(
                "put".into(),
                ctx.op(
                    format!("replace finalize of the specified {kind}"),
                    ctx.id("replace", "Finalize"),
                    "put",
                    query_params(WRITE_PARAMS, false),
                    Some(object_body(kind_def)),
                    responses(&[("200", "OK"), ("201", "Created")], OBJECT_MEDIA, kind_def),
                ),
            );
            f.insert("parameters".into(), sorted(scope_params(true)));
            paths.insert(format!("{item}/finalize"), Value::Object(f));
        }

        // Lists across all namespaces.
        let list_path_params = |extra: Vec<Value>| {
            let mut v = query_params(LIST_PARAMS, false);
            v.push(query_param("pretty", false));
            v.extend(extra);
            sorted(v)
        };
        if r.namespaced {
            paths.insert(
                format!("{prefix}/{}", r.plural),
                json!({
                    "get": ctx.op(
                        format!("list or watch objects of kind {kind}"),
                        format!("list{}{}ForAllNamespaces", ctx.gv_id, kind),
                        "list",
                        Vec::new(),
                        None,
                        responses(&[("200", "OK")], STREAM_MEDIA, &list_def),
                    ),
                    "parameters": list_path_params(Vec::new()),
                }),
            );
        }

        // The deprecated /watch/ paths.
        let ns_extra = || {
            if r.namespaced {
                vec![namespace_param()]
            } else {
                Vec::new()
            }
        };
        paths.insert(
            format!("{prefix}/watch{ns_part}/{}", r.plural),
            json!({
                "get": ctx.op(
                    format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                    ctx.id("watch", "List"),
                    "watchlist",
                    Vec::new(),
                    None,
                    responses(&[("200", "OK")], STREAM_MEDIA, &watch_event),
                ),
                "parameters": list_path_params(ns_extra()),
            }),
        );
        let mut item_extra = ns_extra();
        item_extra.push(name_param.clone());
        paths.insert(
            format!("{prefix}/watch{ns_part}/{}/{{name}}", r.plural),
            json!({
                "get": ctx.op(
                    format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."),
                    ctx.id("watch", ""),
                    "watch",
                    Vec::new(),
                    None,
                    responses(&[("200", "OK")], STREAM_MEDIA, &watch_event),
                ),
                "parameters": list_path_params(item_extra),
            }),
        );
        if r.namespaced {
            paths.insert(
                format!("{prefix}/watch/{}", r.plural),
                json!({
                    "get": ctx.op(
                        format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                        format!("watch{}{}ListForAllNamespaces", ctx.gv_id, kind),
                        "watchlist",
                        Vec::new(),
                        None,
                        responses(&[("200", "OK")], STREAM_MEDIA, &watch_event),
                    ),
                    "parameters": list_path_params(Vec::new()),
                }),
            );
        }
    }
    paths.into_iter().collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// `an Ingress`, `a Pod` (the generator's descriptions use the article).
fn article(kind: &str) -> &'static str {
    if kind.starts_with(['A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

struct Schemas {
    /// Definition name → schema, with `#/components/schemas/` references.
    defs: BTreeMap<String, Value>,
    /// (group, version, kind) → definition name.
    kinds: HashMap<(&'static str, &'static str, &'static str), String>,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(build_schemas)
}

/// Every component schema, by definition name (`io.k8s.api.core.v1.PodSpec`), references in the
/// `#/components/schemas/<name>` form, with the `x-kubernetes-*` extensions applied. Strategic
/// merge and server-side apply can read list semantics from here.
pub fn definitions() -> &'static BTreeMap<String, Value> {
    &schemas().defs
}

/// The definition name of a served kind (`io.k8s.api.apps.v1.Deployment`).
pub fn kind_definition(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    schemas()
        .kinds
        .iter()
        .find(|((g, v, k), _)| *g == group && *v == version && *k == kind)
        .map(|(_, name)| name.as_str())
}

fn register<T: JsonSchema>(gen: &mut SchemaGenerator) -> String {
    gen.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Registers the k8s-openapi type of a kind; None for kinds k8s-openapi does not know.
fn register_kind(
    gen: &mut SchemaGenerator,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<String> {
    use k8s_openapi::api::{
        admissionregistration::v1 as admreg, apps::v1 as apps, autoscaling::v2 as autoscaling,
        batch::v1 as batch, certificates::v1 as certificates, coordination::v1 as coordination,
        core::v1 as core, discovery::v1 as discovery, events::v1 as events,
        flowcontrol::v1 as flowcontrol, networking::v1 as networking, node::v1 as node,
        policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling,
        storage::v1 as storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
    let g = &mut *gen;
    let name = match (group, version, kind) {
        ("", "v1", "Binding") => register::<core::Binding>(g),
        ("", "v1", "ConfigMap") => register::<core::ConfigMap>(g),
        ("", "v1", "Endpoints") => register::<core::Endpoints>(g),
        ("", "v1", "Event") => register::<core::Event>(g),
        ("", "v1", "LimitRange") => register::<core::LimitRange>(g),
        ("", "v1", "Namespace") => register::<core::Namespace>(g),
        ("", "v1", "Node") => register::<core::Node>(g),
        ("", "v1", "PersistentVolume") => register::<core::PersistentVolume>(g),
        ("", "v1", "PersistentVolumeClaim") => register::<core::PersistentVolumeClaim>(g),
        ("", "v1", "Pod") => register::<core::Pod>(g),
        ("", "v1", "PodTemplate") => register::<core::PodTemplate>(g),
        ("", "v1", "ReplicationController") => register::<core::ReplicationController>(g),
        ("", "v1", "ResourceQuota") => register::<core::ResourceQuota>(g),
        ("", "v1", "Secret") => register::<core::Secret>(g),
        ("", "v1", "Service") => register::<core::Service>(g),
        ("", "v1", "ServiceAccount") => register::<core::ServiceAccount>(g),
        ("apps", "v1", "ControllerRevision") => register::<apps::ControllerRevision>(g),
        ("apps", "v1", "DaemonSet") => register::<apps::DaemonSet>(g),
        ("apps", "v1", "Deployment") => register::<apps::Deployment>(g),
        ("apps", "v1", "ReplicaSet") => register::<apps::ReplicaSet>(g),
        ("apps", "v1", "StatefulSet") => register::<apps::StatefulSet>(g),
        ("batch", "v1", "CronJob") => register::<batch::CronJob>(g),
        ("batch", "v1", "Job") => register::<batch::Job>(g),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            register::<autoscaling::HorizontalPodAutoscaler>(g)
        }
        ("coordination.k8s.io", "v1", "Lease") => register::<coordination::Lease>(g),
        ("discovery.k8s.io", "v1", "EndpointSlice") => register::<discovery::EndpointSlice>(g),
        ("events.k8s.io", "v1", "Event") => register::<events::Event>(g),
        ("networking.k8s.io", "v1", "Ingress") => register::<networking::Ingress>(g),
        ("networking.k8s.io", "v1", "IngressClass") => register::<networking::IngressClass>(g),
        ("networking.k8s.io", "v1", "NetworkPolicy") => register::<networking::NetworkPolicy>(g),
        ("policy", "v1", "PodDisruptionBudget") => register::<policy::PodDisruptionBudget>(g),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => register::<rbac::ClusterRole>(g),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            register::<rbac::ClusterRoleBinding>(g)
        }
        ("rbac.authorization.k8s.io", "v1", "Role") => register::<rbac::Role>(g),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => register::<rbac::RoleBinding>(g),
        ("scheduling.k8s.io", "v1", "PriorityClass") => register::<scheduling::PriorityClass>(g),
        ("storage.k8s.io", "v1", "CSIDriver") => register::<storage::CSIDriver>(g),
        ("storage.k8s.io", "v1", "CSINode") => register::<storage::CSINode>(g),
        ("storage.k8s.io", "v1", "StorageClass") => register::<storage::StorageClass>(g),
        ("storage.k8s.io", "v1", "VolumeAttachment") => register::<storage::VolumeAttachment>(g),
        ("node.k8s.io", "v1", "RuntimeClass") => register::<node::RuntimeClass>(g),
        ("certificates.k8s.io", "v1", "CertificateSigningRequest") => {
            register::<certificates::CertificateSigningRequest>(g)
        }
        ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration") => {
            register::<admreg::MutatingWebhookConfiguration>(g)
        }
        ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration") => {
            register::<admreg::ValidatingWebhookConfiguration>(g)
        }
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            register::<apiextensions::CustomResourceDefinition>(g)
        }
        ("apiregistration.k8s.io", "v1", "APIService") => {
            register::<apiregistration::APIService>(g)
        }
        ("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema") => {
            register::<flowcontrol::FlowSchema>(g)
        }
        ("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration") => {
            register::<flowcontrol::PriorityLevelConfiguration>(g)
        }
        _ => return None,
    };
    Some(name)
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// The `<Kind>List` schema (k8s-openapi models lists generically, without a schema).
fn list_schema(kind: &str, kind_def: &str, group: &str, version: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string",
            },
            "items": {
                "description": format!("List of {kind} objects."),
                "items": {"allOf": [schema_ref(kind_def)], "default": {}},
                "type": "array",
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string",
            },
            "metadata": {
                "allOf": [schema_ref(&format!("{META}ListMeta"))],
                "default": {},
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            },
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [gvk(group, version, &format!("{kind}List"))],
    })
}

/// Schema of a kind k8s-openapi does not know (a custom resource): any object.
fn unknown_kind_schema(group: &str, version: &str, kind: &str) -> Value {
    json!({
        "description": format!("{kind} is a resource of {}.", if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }),
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"allOf": [schema_ref(&format!("{META}ObjectMeta"))]},
        },
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "x-kubernetes-group-version-kind": [gvk(group, version, kind)],
    })
}

/// `com.example.v1.Widget` for group `example.com` (the name kube-apiserver gives CRD schemas).
fn reversed_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').filter(|s| !s.is_empty()).collect();
    parts.reverse();
    parts.push(version);
    parts.push(kind);
    parts.join(".")
}

fn build_schemas() -> Schemas {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    let mut gen = SchemaSettings::openapi3()
        .with(|s| s.meta_schema = None)
        .into_generator();
    let mut kinds = HashMap::new();
    let mut unknown = Vec::new();
    for r in catalogue::all() {
        match register_kind(&mut gen, r.group, r.version, r.kind) {
            Some(name) => {
                kinds.insert((r.group, r.version, r.kind), name);
            }
            None => {
                let name = reversed_name(r.group, r.version, r.kind);
                kinds.insert((r.group, r.version, r.kind), name.clone());
                unknown.push((name, r));
            }
        }
    }
    register::<meta::ListMeta>(&mut gen);
    register::<meta::ObjectMeta>(&mut gen);
    register::<meta::DeleteOptions>(&mut gen);
    register::<meta::Status>(&mut gen);
    register::<meta::Patch>(&mut gen);
    register::<meta::WatchEvent<Pod>>(&mut gen);
    register::<meta::APIResourceList>(&mut gen);

    let mut defs: BTreeMap<String, Value> = gen.take_definitions(true).into_iter().collect();
    for (name, r) in unknown {
        defs.insert(name, unknown_kind_schema(r.group, r.version, r.kind));
    }

    // Group-version-kind extensions: every served kind, its list, and the kinds that exist in
    // every group-version (DeleteOptions, WatchEvent).
    for r in catalogue::all() {
        let name = &kinds[&(r.group, r.version, r.kind)];
        if let Some(Value::Object(m)) = defs.get_mut(name) {
            let list = m
                .entry("x-kubernetes-group-version-kind")
                .or_insert_with(|| json!([]));
            if let Value::Array(a) = list {
                let g = gvk(r.group, r.version, r.kind);
                if !a.contains(&g) {
                    a.push(g);
                }
            }
        }
        defs.insert(
            format!("{name}List"),
            list_schema(r.kind, name, r.group, r.version),
        );
    }
    let gvs = catalogue::group_versions();
    for kind in ["DeleteOptions", "WatchEvent"] {
        if let Some(Value::Object(m)) = defs.get_mut(&format!("{META}{kind}")) {
            let mut list: Vec<Value> = gvs.iter().map(|(g, v)| gvk(g, v, kind)).collect();
            list.sort_by_key(|v| v.to_string());
            m.insert("x-kubernetes-group-version-kind".into(), Value::Array(list));
        }
    }
    if let Some(Value::Object(m)) = defs.get_mut(&format!("{META}Status")) {
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([gvk("", "v1", "Status")]),
        );
    }

    // kube-openapi's v3 forms of the two scalar types (k8s-openapi writes the CRD-style
    // `x-kubernetes-int-or-string`).
    let one_of = |types: &[&str]| -> Value {
        Value::Array(types.iter().map(|t| json!({ "type": t })).collect())
    };
    if let Some(Value::Object(m)) = defs.get_mut("io.k8s.apimachinery.pkg.util.intstr.IntOrString")
    {
        m.remove("x-kubernetes-int-or-string");
        m.insert("format".into(), "int-or-string".into());
        m.insert("oneOf".into(), one_of(&["integer", "string"]));
    }
    if let Some(Value::Object(m)) = defs.get_mut("io.k8s.apimachinery.pkg.api.resource.Quantity") {
        m.remove("x-kubernetes-int-or-string");
        m.insert("oneOf".into(), one_of(&["string", "number"]));
    }

    apply_extensions(&mut defs);
    for v in defs.values_mut() {
        sort_keys(v);
    }
    Schemas { defs, kinds }
}

// ---------------------------------------------------------------------------------------------
// x-kubernetes-* extensions
// ---------------------------------------------------------------------------------------------

/// List/map semantics of one property (from the Go struct tags and markers of the Kubernetes
/// types: `patchStrategy`, `patchMergeKey`, `+listType`, `+listMapKey`, `+mapType`).
pub struct ListRule {
    /// Definition name relative to `io.k8s.` (`api.core.v1.PodSpec`).
    pub def: &'static str,
    pub prop: &'static str,
    pub patch_strategy: Option<&'static str>,
    pub merge_key: Option<&'static str>,
    pub list_type: Option<&'static str>,
    pub map_keys: &'static [&'static str],
    pub map_type: Option<&'static str>,
}

/// `patchStrategy:"merge" patchMergeKey:"<key>"` with `+listType=map` and the given map keys.
const fn merge(
    def: &'static str,
    prop: &'static str,
    key: &'static str,
    map_keys: &'static [&'static str],
) -> ListRule {
    ListRule {
        def,
        prop,
        patch_strategy: Some("merge"),
        merge_key: Some(key),
        list_type: Some("map"),
        map_keys,
        map_type: None,
    }
}

/// Like [`merge`] with `patchStrategy:"merge,retainKeys"`.
const fn merge_retain(
    def: &'static str,
    prop: &'static str,
    key: &'static str,
    map_keys: &'static [&'static str],
) -> ListRule {
    ListRule {
        patch_strategy: Some("merge,retainKeys"),
        ..merge(def, prop, key, map_keys)
    }
}

/// `patchStrategy:"merge" patchMergeKey:"<key>"` on a list that is `+listType=atomic`.
const fn merge_atomic(def: &'static str, prop: &'static str, key: &'static str) -> ListRule {
    ListRule {
        list_type: Some("atomic"),
        map_keys: &[],
        ..merge(def, prop, key, &[])
    }
}

/// `patchStrategy:"merge"` on a list of scalars, `+listType=set`.
const fn merge_set(def: &'static str, prop: &'static str) -> ListRule {
    ListRule {
        def,
        prop,
        patch_strategy: Some("merge"),
        merge_key: None,
        list_type: Some("set"),
        map_keys: &[],
        map_type: None,
    }
}

/// `+listType=<t>` without a patch strategy.
const fn list(def: &'static str, prop: &'static str, t: &'static str) -> ListRule {
    ListRule {
        def,
        prop,
        patch_strategy: None,
        merge_key: None,
        list_type: Some(t),
        map_keys: &[],
        map_type: None,
    }
}

const fn atomic(def: &'static str, prop: &'static str) -> ListRule {
    list(def, prop, "atomic")
}

/// `+mapType=atomic` on a map-valued property.
const fn atomic_map(def: &'static str, prop: &'static str) -> ListRule {
    ListRule {
        def,
        prop,
        patch_strategy: None,
        merge_key: None,
        list_type: None,
        map_keys: &[],
        map_type: Some("atomic"),
    }
}

const NAME: &[&str] = &["name"];
const TYPE: &[&str] = &["type"];
const IP: &[&str] = &["ip"];

/// Properties whose list or map semantics differ from the defaults.
pub const LIST_RULES: &[ListRule] = &[
    // meta/v1
    merge_set("apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers"),
    merge(
        "apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "uid",
        &["uid"],
    ),
    atomic("apimachinery.pkg.apis.meta.v1.ObjectMeta", "managedFields"),
    atomic(
        "apimachinery.pkg.apis.meta.v1.LabelSelector",
        "matchExpressions",
    ),
    atomic(
        "apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
        "values",
    ),
    atomic("apimachinery.pkg.apis.meta.v1.StatusDetails", "causes"),
    // core/v1: pods
    merge_retain("api.core.v1.PodSpec", "volumes", "name", NAME),
    merge("api.core.v1.PodSpec", "initContainers", "name", NAME),
    merge("api.core.v1.PodSpec", "containers", "name", NAME),
    merge("api.core.v1.PodSpec", "ephemeralContainers", "name", NAME),
    merge("api.core.v1.PodSpec", "imagePullSecrets", "name", NAME),
    merge("api.core.v1.PodSpec", "hostAliases", "ip", IP),
    merge(
        "api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "topologyKey",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    merge("api.core.v1.PodSpec", "schedulingGates", "name", NAME),
    merge_retain("api.core.v1.PodSpec", "resourceClaims", "name", NAME),
    atomic("api.core.v1.PodSpec", "tolerations"),
    atomic("api.core.v1.PodSpec", "readinessGates"),
    atomic_map("api.core.v1.PodSpec", "nodeSelector"),
    merge(
        "api.core.v1.Container",
        "ports",
        "containerPort",
        &["containerPort", "protocol"],
    ),
    merge("api.core.v1.Container", "env", "name", NAME),
    merge(
        "api.core.v1.Container",
        "volumeMounts",
        "mountPath",
        &["mountPath"],
    ),
    merge(
        "api.core.v1.Container",
        "volumeDevices",
        "devicePath",
        &["devicePath"],
    ),
    atomic("api.core.v1.Container", "command"),
    atomic("api.core.v1.Container", "args"),
    atomic("api.core.v1.Container", "envFrom"),
    atomic("api.core.v1.Container", "resizePolicy"),
    merge(
        "api.core.v1.EphemeralContainer",
        "ports",
        "containerPort",
        &["containerPort", "protocol"],
    ),
    merge("api.core.v1.EphemeralContainer", "env", "name", NAME),
    merge(
        "api.core.v1.EphemeralContainer",
        "volumeMounts",
        "mountPath",
        &["mountPath"],
    ),
    merge(
        "api.core.v1.EphemeralContainer",
        "volumeDevices",
        "devicePath",
        &["devicePath"],
    ),
    atomic("api.core.v1.EphemeralContainer", "command"),
    atomic("api.core.v1.EphemeralContainer", "args"),
    atomic("api.core.v1.EphemeralContainer", "envFrom"),
    atomic("api.core.v1.EphemeralContainer", "resizePolicy"),
    merge("api.core.v1.PodStatus", "conditions", "type", TYPE),
    merge("api.core.v1.PodStatus", "podIPs", "ip", IP),
    merge_atomic("api.core.v1.PodStatus", "hostIPs", "ip"),
    atomic("api.core.v1.PodStatus", "initContainerStatuses"),
    atomic("api.core.v1.PodStatus", "containerStatuses"),
    atomic("api.core.v1.PodStatus", "ephemeralContainerStatuses"),
    merge_retain(
        "api.core.v1.PodStatus",
        "resourceClaimStatuses",
        "name",
        NAME,
    ),
    atomic("api.core.v1.PodSecurityContext", "supplementalGroups"),
    atomic("api.core.v1.PodSecurityContext", "sysctls"),
    atomic("api.core.v1.PodDNSConfig", "nameservers"),
    atomic("api.core.v1.PodDNSConfig", "searches"),
    atomic("api.core.v1.PodDNSConfig", "options"),
    atomic("api.core.v1.Capabilities", "add"),
    atomic("api.core.v1.Capabilities", "drop"),
    atomic("api.core.v1.ExecAction", "command"),
    atomic("api.core.v1.HTTPGetAction", "httpHeaders"),
    atomic("api.core.v1.NodeSelector", "nodeSelectorTerms"),
    atomic("api.core.v1.NodeSelectorTerm", "matchExpressions"),
    atomic("api.core.v1.NodeSelectorTerm", "matchFields"),
    atomic("api.core.v1.NodeSelectorRequirement", "values"),
    atomic(
        "api.core.v1.NodeAffinity",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        "api.core.v1.PodAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        "api.core.v1.PodAffinity",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        "api.core.v1.PodAntiAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        "api.core.v1.PodAntiAffinity",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic("api.core.v1.PodAffinityTerm", "namespaces"),
    atomic("api.core.v1.PodAffinityTerm", "matchLabelKeys"),
    atomic("api.core.v1.PodAffinityTerm", "mismatchLabelKeys"),
    atomic("api.core.v1.TopologySpreadConstraint", "matchLabelKeys"),
    atomic("api.core.v1.ConfigMapVolumeSource", "items"),
    atomic("api.core.v1.SecretVolumeSource", "items"),
    atomic("api.core.v1.ConfigMapProjection", "items"),
    atomic("api.core.v1.SecretProjection", "items"),
    atomic("api.core.v1.DownwardAPIVolumeSource", "items"),
    atomic("api.core.v1.DownwardAPIProjection", "items"),
    atomic("api.core.v1.ProjectedVolumeSource", "sources"),
    // core/v1: services, endpoints
    merge(
        "api.core.v1.ServiceSpec",
        "ports",
        "port",
        &["port", "protocol"],
    ),
    atomic_map("api.core.v1.ServiceSpec", "selector"),
    atomic("api.core.v1.ServiceSpec", "clusterIPs"),
    atomic("api.core.v1.ServiceSpec", "externalIPs"),
    atomic("api.core.v1.ServiceSpec", "loadBalancerSourceRanges"),
    atomic("api.core.v1.ServiceSpec", "ipFamilies"),
    merge("api.core.v1.ServiceStatus", "conditions", "type", TYPE),
    atomic("api.core.v1.LoadBalancerStatus", "ingress"),
    atomic("api.core.v1.LoadBalancerIngress", "ports"),
    atomic("api.core.v1.Endpoints", "subsets"),
    atomic("api.core.v1.EndpointSubset", "addresses"),
    atomic("api.core.v1.EndpointSubset", "notReadyAddresses"),
    atomic("api.core.v1.EndpointSubset", "ports"),
    merge("api.core.v1.ServiceAccount", "secrets", "name", NAME),
    atomic("api.core.v1.ServiceAccount", "imagePullSecrets"),
    // core/v1: nodes, namespaces, volumes, controllers, policy objects
    merge_set("api.core.v1.NodeSpec", "podCIDRs"),
    atomic("api.core.v1.NodeSpec", "taints"),
    merge("api.core.v1.NodeStatus", "conditions", "type", TYPE),
    merge("api.core.v1.NodeStatus", "addresses", "type", TYPE),
    atomic("api.core.v1.NodeStatus", "images"),
    atomic("api.core.v1.NodeStatus", "volumesInUse"),
    atomic("api.core.v1.NodeStatus", "volumesAttached"),
    atomic("api.core.v1.ContainerImage", "names"),
    atomic("api.core.v1.NamespaceSpec", "finalizers"),
    merge("api.core.v1.NamespaceStatus", "conditions", "type", TYPE),
    atomic("api.core.v1.PersistentVolumeSpec", "accessModes"),
    atomic("api.core.v1.PersistentVolumeSpec", "mountOptions"),
    atomic("api.core.v1.PersistentVolumeClaimSpec", "accessModes"),
    atomic("api.core.v1.PersistentVolumeClaimStatus", "accessModes"),
    merge(
        "api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        "type",
        TYPE,
    ),
    atomic_map("api.core.v1.ReplicationControllerSpec", "selector"),
    merge(
        "api.core.v1.ReplicationControllerStatus",
        "conditions",
        "type",
        TYPE,
    ),
    atomic("api.core.v1.LimitRangeSpec", "limits"),
    atomic("api.core.v1.ResourceQuotaSpec", "scopes"),
    atomic("api.core.v1.ScopeSelector", "matchExpressions"),
    atomic("api.core.v1.ScopedResourceSelectorRequirement", "values"),
    atomic("api.core.v1.TopologySelectorTerm", "matchLabelExpressions"),
    atomic("api.core.v1.TopologySelectorLabelRequirement", "values"),
    // apps/v1
    merge("api.apps.v1.DeploymentStatus", "conditions", "type", TYPE),
    merge("api.apps.v1.ReplicaSetStatus", "conditions", "type", TYPE),
    merge("api.apps.v1.DaemonSetStatus", "conditions", "type", TYPE),
    merge("api.apps.v1.StatefulSetStatus", "conditions", "type", TYPE),
    atomic("api.apps.v1.StatefulSetSpec", "volumeClaimTemplates"),
    // batch/v1
    merge_atomic("api.batch.v1.JobStatus", "conditions", "type"),
    atomic("api.batch.v1.CronJobStatus", "active"),
    atomic("api.batch.v1.PodFailurePolicy", "rules"),
    atomic("api.batch.v1.PodFailurePolicyRule", "onPodConditions"),
    list(
        "api.batch.v1.PodFailurePolicyOnExitCodesRequirement",
        "values",
        "set",
    ),
    atomic("api.batch.v1.SuccessPolicy", "rules"),
    // policy/v1
    merge(
        "api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        "type",
        TYPE,
    ),
    // networking/v1
    atomic("api.networking.v1.IngressSpec", "tls"),
    atomic("api.networking.v1.IngressSpec", "rules"),
    atomic("api.networking.v1.IngressTLS", "hosts"),
    atomic("api.networking.v1.HTTPIngressRuleValue", "paths"),
    atomic("api.networking.v1.IngressLoadBalancerStatus", "ingress"),
    atomic("api.networking.v1.IngressLoadBalancerIngress", "ports"),
    atomic("api.networking.v1.NetworkPolicySpec", "ingress"),
    atomic("api.networking.v1.NetworkPolicySpec", "egress"),
    atomic("api.networking.v1.NetworkPolicySpec", "policyTypes"),
    atomic("api.networking.v1.NetworkPolicyIngressRule", "ports"),
    atomic("api.networking.v1.NetworkPolicyIngressRule", "from"),
    atomic("api.networking.v1.NetworkPolicyEgressRule", "ports"),
    atomic("api.networking.v1.NetworkPolicyEgressRule", "to"),
    atomic("api.networking.v1.IPBlock", "except"),
    // rbac/v1
    atomic("api.rbac.v1.Role", "rules"),
    atomic("api.rbac.v1.ClusterRole", "rules"),
    atomic("api.rbac.v1.RoleBinding", "subjects"),
    atomic("api.rbac.v1.ClusterRoleBinding", "subjects"),
    atomic("api.rbac.v1.PolicyRule", "verbs"),
    atomic("api.rbac.v1.PolicyRule", "apiGroups"),
    atomic("api.rbac.v1.PolicyRule", "resources"),
    atomic("api.rbac.v1.PolicyRule", "resourceNames"),
    atomic("api.rbac.v1.PolicyRule", "nonResourceURLs"),
    atomic("api.rbac.v1.AggregationRule", "clusterRoleSelectors"),
    // discovery/v1
    atomic("api.discovery.v1.EndpointSlice", "endpoints"),
    atomic("api.discovery.v1.EndpointSlice", "ports"),
    list("api.discovery.v1.Endpoint", "addresses", "set"),
    atomic("api.discovery.v1.EndpointHints", "forZones"),
    // storage/v1
    atomic("api.storage.v1.StorageClass", "mountOptions"),
    atomic("api.storage.v1.StorageClass", "allowedTopologies"),
];

/// Structs marked `+structType=atomic` (`x-kubernetes-map-type: atomic` on the definition).
pub const ATOMIC_STRUCTS: &[&str] = &[
    "apimachinery.pkg.apis.meta.v1.LabelSelector",
    "apimachinery.pkg.apis.meta.v1.OwnerReference",
    "api.core.v1.ConfigMapKeySelector",
    "api.core.v1.LocalObjectReference",
    "api.core.v1.NodeSelector",
    "api.core.v1.NodeSelectorTerm",
    "api.core.v1.ObjectFieldSelector",
    "api.core.v1.ObjectReference",
    "api.core.v1.ResourceFieldSelector",
    "api.core.v1.SecretKeySelector",
    "api.core.v1.SecretReference",
    "api.core.v1.TopologySelectorTerm",
    "api.core.v1.TypedLocalObjectReference",
];

fn apply_extensions(defs: &mut BTreeMap<String, Value>) {
    for rule in LIST_RULES {
        let Some(prop) = defs
            .get_mut(&format!("io.k8s.{}", rule.def))
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(rule.prop))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if let Some(s) = rule.patch_strategy {
            prop.insert("x-kubernetes-patch-strategy".into(), s.into());
        }
        if let Some(k) = rule.merge_key {
            prop.insert("x-kubernetes-patch-merge-key".into(), k.into());
        }
        if let Some(t) = rule.list_type {
            prop.insert("x-kubernetes-list-type".into(), t.into());
        }
        if !rule.map_keys.is_empty() {
            prop.insert("x-kubernetes-list-map-keys".into(), json!(rule.map_keys));
        }
        if let Some(t) = rule.map_type {
            prop.insert("x-kubernetes-map-type".into(), t.into());
        }
    }
    for def in ATOMIC_STRUCTS {
        if let Some(Value::Object(m)) = defs.get_mut(&format!("io.k8s.{def}")) {
            m.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Swagger 2.0
// ---------------------------------------------------------------------------------------------

/// All group-versions in one Swagger 2.0 document: v3 paths converted (parameters typed inline,
/// request bodies as `in: body` parameters, `consumes`/`produces`), schemas under `definitions`.
fn v2_document() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (g, v) in catalogue::group_versions() {
        let doc = v3_document(g, v);
        if let Some(p) = doc["paths"].as_object() {
            for (path, item) in p {
                paths.insert(path.clone(), v2_path_item(item));
            }
        }
        if let Some(s) = doc["components"]["schemas"].as_object() {
            for (name, schema) in s {
                let mut schema = v2_schema(schema);
                // Swagger 2.0 has no oneOf: IntOrString and Quantity are strings there.
                if let Some(m) = schema.as_object_mut() {
                    if m.remove("oneOf").is_some() {
                        m.insert("type".into(), "string".into());
                    }
                }
                definitions.insert(name.clone(), schema);
            }
        }
    }
    let mut doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": server_version()},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "in": "header",
                "name": "authorization",
                "type": "apiKey",
            },
        },
        "security": [{"BearerToken": []}],
    });
    sort_keys(&mut doc);
    doc
}

/// A v3 schema as Swagger 2.0: `#/definitions/` references, and a lone `allOf: [{$ref}]` next to
/// a description collapsed back into a `$ref` with siblings (as kube's v2 document has it).
fn v2_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                if k == "$ref" {
                    let s = v.as_str().unwrap_or("");
                    out.insert(
                        k.clone(),
                        s.replace(SCHEMA_REF_PREFIX, "#/definitions/").into(),
                    );
                } else if k == "allOf"
                    && v.as_array()
                        .is_some_and(|a| a.len() == 1 && a[0].get("$ref").is_some())
                {
                    if let Some(r) = v[0]["$ref"].as_str() {
                        out.insert(
                            "$ref".into(),
                            r.replace(SCHEMA_REF_PREFIX, "#/definitions/").into(),
                        );
                    }
                } else if k == "default" && m.contains_key("allOf") {
                    // `default` next to a reference is not valid Swagger 2.0.
                } else {
                    out.insert(k.clone(), v2_schema(v));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(v2_schema).collect()),
        other => other.clone(),
    }
}

fn v2_param(p: &Value) -> Value {
    let mut out = Map::new();
    if let Some(m) = p.as_object() {
        for (k, v) in m {
            if k == "schema" {
                if let Some(s) = v.as_object() {
                    for (sk, sv) in s {
                        out.insert(sk.clone(), sv.clone());
                    }
                }
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn v2_path_item(item: &Value) -> Value {
    let mut out = Map::new();
    let Some(m) = item.as_object() else {
        return item.clone();
    };
    for (k, v) in m {
        if k == "parameters" {
            let params = v
                .as_array()
                .map(|a| a.iter().map(v2_param).collect())
                .unwrap_or_default();
            out.insert(k.clone(), Value::Array(params));
        } else {
            out.insert(k.clone(), v2_operation(v));
        }
    }
    Value::Object(out)
}

fn v2_operation(op: &Value) -> Value {
    let Some(m) = op.as_object() else {
        return op.clone();
    };
    let mut out = Map::new();
    let mut params: Vec<Value> = m
        .get("parameters")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(v2_param).collect())
        .unwrap_or_default();
    if let Some(body) = m.get("requestBody") {
        let content = body["content"].as_object();
        let consumes: Vec<String> = content
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        let schema = content
            .and_then(|c| c.values().next())
            .map(|c| v2_schema(&c["schema"]))
            .unwrap_or(Value::Null);
        let mut p = json!({"in": "body", "name": "body", "schema": schema});
        if body["required"] == json!(true) {
            p["required"] = json!(true);
        }
        params.insert(0, p);
        out.insert("consumes".into(), json!(consumes));
    } else {
        out.insert("consumes".into(), json!(["*/*"]));
    }
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Map::new();
    if let Some(rs) = m.get("responses").and_then(Value::as_object) {
        for (code, r) in rs {
            let mut nr = Map::new();
            nr.insert("description".into(), r["description"].clone());
            if let Some(c) = r["content"].as_object() {
                for media in c.keys() {
                    if !produces.contains(media) {
                        produces.push(media.clone());
                    }
                }
                if let Some(first) = c.values().next() {
                    nr.insert("schema".into(), v2_schema(&first["schema"]));
                }
            }
            responses.insert(code.clone(), Value::Object(nr));
        }
    }
    for (k, v) in m {
        match k.as_str() {
            "parameters" | "requestBody" | "responses" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    out.insert("produces".into(), json!(produces));
    out.insert("responses".into(), Value::Object(responses));
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(gv: &str) -> Value {
        serde_json::from_slice(&documents()[gv].body).unwrap()
    }

    fn body(resp: Resp) -> (u16, HeaderMap, Vec<u8>) {
        use http_body_util::BodyExt;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = futures::executor::block_on(resp.into_body().collect())
            .unwrap()
            .to_bytes();
        (status, headers, bytes.to_vec())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn index_lists_every_group_version() {
        let (status, h, b) = body(serve("/openapi/v3", None, &HeaderMap::new()).unwrap());
        assert_eq!(status, 200);
        assert_eq!(h["content-type"], "application/json");
        let etag = h["etag"].to_str().unwrap();
        assert_eq!(etag, quote(&compute_etag(&b)));
        let idx: Value = serde_json::from_slice(&b).unwrap();
        let paths = idx["paths"].as_object().unwrap();
        let gvs = catalogue::group_versions();
        assert_eq!(paths.len(), gvs.len());
        for (g, v) in gvs {
            let key = gv_key(g, v);
            let url = paths[&key]["serverRelativeURL"].as_str().unwrap();
            let hash = url.split("?hash=").nth(1).unwrap();
            assert_eq!(url, format!("/openapi/v3/{key}?hash={hash}"));
            assert_eq!(hash.len(), 128);
            assert!(hash
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
            assert_eq!(hash, compute_etag(&documents()[&key].body));
        }
    }

    /// What kubectl's `queryParamVerifierV3` and `explain` look for, for every resource.
    #[test]
    fn every_resource_has_patch_with_field_validation_and_gvk_schemas() {
        for r in catalogue::all() {
            let d = doc(&gv_key(r.group, r.version));
            assert_eq!(d["openapi"], "3.0.0");
            let want = json!({"group": r.group, "kind": r.kind, "version": r.version});
            let patch_ops: Vec<&Value> = d["paths"]
                .as_object()
                .unwrap()
                .values()
                .filter_map(|p| p.get("patch"))
                .filter(|op| op["x-kubernetes-group-version-kind"] == want)
                .collect();
            assert!(!patch_ops.is_empty(), "no PATCH for {}", r.kind);
            for op in patch_ops {
                assert_eq!(op["x-kubernetes-action"], "patch");
                let names: Vec<&str> = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                for n in ["dryRun", "fieldManager", "fieldValidation", "force"] {
                    assert!(names.contains(&n), "{} patch lacks {n}", r.kind);
                }
            }
            let schemas = d["components"]["schemas"].as_object().unwrap();
            let with_gvk = schemas
                .values()
                .filter(|s| {
                    s["x-kubernetes-group-version-kind"]
                        .as_array()
                        .is_some_and(|a| a.contains(&want))
                })
                .count();
            assert_eq!(with_gvk, 1, "schema with GVK of {}", r.kind);
            // Every reference resolves inside the document.
            let mut refs = Vec::new();
            collect_refs(&d, &mut refs);
            for name in refs {
                assert!(schemas.contains_key(&name), "dangling $ref {name}");
            }
        }
    }

    #[test]
    fn paths_follow_kube_apiserver_layout() {
        let d = doc("api/v1");
        let p = d["paths"].as_object().unwrap();
        let coll = &p["/api/v1/namespaces/{namespace}/pods"];
        assert_eq!(coll["get"]["x-kubernetes-action"], "list");
        assert_eq!(coll["get"]["operationId"], "listCoreV1NamespacedPod");
        assert_eq!(coll["post"]["x-kubernetes-action"], "post");
        assert_eq!(coll["delete"]["x-kubernetes-action"], "deletecollection");
        let list_params: Vec<&str> = coll["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(list_params, LIST_PARAMS);
        let item = &p["/api/v1/namespaces/{namespace}/pods/{name}"];
        for (m, a) in [
            ("get", "get"),
            ("put", "put"),
            ("patch", "patch"),
            ("delete", "delete"),
        ] {
            assert_eq!(item[m]["x-kubernetes-action"], a);
        }
        assert_eq!(
            item["delete"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Pod"
        );
        assert!(p.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/status"));
        assert_eq!(
            p["/api/v1/pods"]["get"]["operationId"],
            "listCoreV1PodForAllNamespaces"
        );
        assert!(p.contains_key("/api/v1/watch/namespaces/{namespace}/pods/{name}"));
        assert!(p.contains_key("/api/v1/nodes/{name}/status"));
        assert!(p.contains_key("/api/v1/namespaces/{name}/finalize"));
        assert!(p["/api/v1/namespaces"].get("delete").is_none());
        assert!(!p.contains_key("/api/v1/namespaces/{namespace}/configmaps/{name}/status"));
        let rbac = doc("apis/rbac.authorization.k8s.io/v1");
        assert_eq!(
            rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["get"]["operationId"],
            "listRbacAuthorizationV1ClusterRole"
        );
        assert_eq!(
            rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["get"]["tags"][0],
            "rbacAuthorization_v1"
        );
    }

    #[test]
    fn pod_schema_carries_patch_metadata() {
        let d = doc("api/v1");
        let s = &d["components"]["schemas"];
        let containers = &s["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        let volumes = &s["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
        assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
        let ports = &s["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        let owners =
            &s["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["ownerReferences"];
        assert_eq!(owners["x-kubernetes-patch-merge-key"], "uid");
        assert_eq!(
            s["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"],
            "atomic"
        );
        assert_eq!(
            s["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        // A described reference is wrapped in allOf, as kube-openapi writes it.
        assert_eq!(
            s["io.k8s.api.core.v1.Pod"]["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodSpec"
        );
        assert!(
            s["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]["description"]
                .as_str()
                .unwrap()
                .contains("List of containers belonging to the pod")
        );
        assert_eq!(
            s["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["oneOf"],
            json!([{"type": "integer"}, {"type": "string"}])
        );
        let svc_ports = &s["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
        assert_eq!(svc_ports["x-kubernetes-patch-merge-key"], "port");
        let apps = doc("apis/apps/v1");
        let conds = &apps["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentStatus"]
            ["properties"]["conditions"];
        assert_eq!(conds["x-kubernetes-patch-merge-key"], "type");
    }

    /// Every rule names a property that exists, so a typo cannot silently drop an extension.
    #[test]
    fn extension_rules_resolve() {
        // Make sure the definitions the rules name are generated even if no served kind reaches
        // them today.
        let defs = &schemas().defs;
        for rule in LIST_RULES {
            let def = format!("io.k8s.{}", rule.def);
            let Some(d) = defs.get(&def) else {
                // Only definitions of unserved groups may be absent.
                assert!(
                    !rule.def.starts_with("api.core.")
                        && !rule.def.starts_with("apimachinery.")
                        && !rule.def.starts_with("api.apps."),
                    "missing definition {def}"
                );
                continue;
            };
            assert!(
                d["properties"].get(rule.prop).is_some(),
                "{def} has no property {}",
                rule.prop
            );
        }
        for def in ATOMIC_STRUCTS {
            assert!(defs.contains_key(&format!("io.k8s.{def}")), "{def}");
        }
    }

    #[test]
    fn caching_protocol() {
        let none = HeaderMap::new();
        let key = "apis/apps/v1";
        let etag = documents()[key].etag.clone();

        // No hash: revalidate every time.
        let (s, h, b) = body(serve(&format!("/openapi/v3/{key}"), None, &none).unwrap());
        assert_eq!(s, 200);
        assert_eq!(h["cache-control"], "no-cache, private");
        assert_eq!(h["etag"].to_str().unwrap(), quote(&etag));
        assert_eq!(h["vary"], "Accept");
        assert_eq!(compute_etag(&b), etag);

        // Current hash: immutable for a year.
        let q = format!("hash={etag}");
        let (s, h, _) = body(serve(&format!("/openapi/v3/{key}"), Some(&q), &none).unwrap());
        assert_eq!(s, 200);
        assert_eq!(h["cache-control"], "public, immutable");
        let expires = h["expires"].to_str().unwrap();
        assert!(expires.ends_with(" GMT"), "{expires}");
        let year: i32 = expires.split(' ').nth(3).unwrap().parse().unwrap();
        assert!(year > time::OffsetDateTime::now_utc().year());

        // If-None-Match.
        let inm = headers(&[("if-none-match", &quote(&etag))]);
        let (s, h, b) = body(serve(&format!("/openapi/v3/{key}"), Some(&q), &inm).unwrap());
        assert_eq!(s, 304);
        assert!(b.is_empty());
        assert_eq!(h["etag"].to_str().unwrap(), quote(&etag));
        let other = headers(&[("if-none-match", "\"ABC\"")]);
        let (s, _, _) = body(serve(&format!("/openapi/v3/{key}"), None, &other).unwrap());
        assert_eq!(s, 200);

        // Stale hash: 301 to the current URL.
        let (s, h, _) =
            body(serve(&format!("/openapi/v3/{key}"), Some("hash=0123"), &none).unwrap());
        assert_eq!(s, 301);
        assert_eq!(
            h["location"].to_str().unwrap(),
            format!("/openapi/v3/{key}?hash={etag}")
        );

        // The index revalidates too.
        let idx_etag = quote(&index().etag);
        let (s, _, _) = body(
            serve(
                "/openapi/v3",
                None,
                &headers(&[("if-none-match", &idx_etag)]),
            )
            .unwrap(),
        );
        assert_eq!(s, 304);

        // Unknown group-version, protobuf only, and paths that are not ours.
        let (s, _, _) = body(serve("/openapi/v3/apis/nope/v1", None, &none).unwrap());
        assert_eq!(s, 404);
        let pb = headers(&[(
            "accept",
            "application/com.github.proto-openapi.spec.v3.v1.0+protobuf",
        )]);
        let (s, _, _) = body(serve("/openapi/v3/api/v1", None, &pb).unwrap());
        assert_eq!(s, 406);
        let kubectl = headers(&[("accept", "application/json, */*")]);
        let (s, _, _) = body(serve("/openapi/v3/api/v1", None, &kubectl).unwrap());
        assert_eq!(s, 200);
        assert!(serve("/api/v1", None, &none).is_none());
        assert!(serve("/openapiv3", None, &none).is_none());
    }

    #[test]
    fn swagger_v2_document() {
        let (s, h, b) = body(serve("/openapi/v2", None, &HeaderMap::new()).unwrap());
        assert_eq!(s, 200);
        assert_eq!(h["etag"].to_str().unwrap(), quote(&compute_etag(&b)));
        let d: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(d["swagger"], "2.0");
        assert!(!String::from_utf8_lossy(&b).contains("#/components/"));
        let pod = &d["definitions"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
        assert_eq!(
            d["definitions"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        let patch = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let params = patch["parameters"].as_array().unwrap();
        assert_eq!(params[0]["in"], "body");
        assert!(params
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["type"] == "string"));
        assert_eq!(
            patch["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.Deployment"
        );
    }
}
