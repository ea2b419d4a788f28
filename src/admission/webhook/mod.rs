//! `MutatingAdmissionWebhook` and `ValidatingAdmissionWebhook`
//! (`apiserver/pkg/admission/plugin/webhook`): the admissionregistration.k8s.io/v1
//! `MutatingWebhookConfiguration` and `ValidatingWebhookConfiguration` objects name HTTPS
//! endpoints that receive an `admission.k8s.io/v1` AdmissionReview for each request their rules
//! match.
//!
//! - Matching: `rules` (operations, apiGroups, apiVersions, resources with `*`, `pods/*`,
//!   `*/status` forms, scope), `namespaceSelector` (the namespace's labels; for Namespace objects
//!   their own), `objectSelector` (the new or the old object's labels). Requests on the webhook
//!   and admission-policy configurations themselves are never sent to webhooks.
//! - Calls: `clientConfig.url`, or `clientConfig.service` resolved to the Service's cluster IP
//!   with the certificate checked for `<name>.<namespace>.svc`; trust is `caBundle`;
//!   `?timeout=<n>s` is appended and the call bounded by `timeoutSeconds` (default 10). The
//!   user's credentials are never forwarded.
//! - Mutating webhooks run one after another, in configuration-name order, each seeing the
//!   previous one's JSONPatch; validating webhooks run concurrently.
//! - `allowed: false` → `admission webhook "<name>" denied the request: <message>` with the
//!   webhook's code (at least 400); a failed call → 500 `failed calling webhook "<name>": …`
//!   under `failurePolicy: Fail` (the default), ignored under `Ignore`.
//! - Dry runs (`dryRun: true` in the review) only reach webhooks whose `sideEffects` is `None` or
//!   `NoneOnDryRun`; any other value refuses the request with 400 `admission webhook "<name>"
//!   does not support dry run` whatever the failurePolicy, and a missing one is a failed call.
//! - Configurations are validated on create and update with kube's rules and messages
//!   ([`validation`]).
//!
//! Not supported: `matchConditions` (CEL; such webhooks are called as if they matched),
//! `reinvocationPolicy: IfNeeded`, `matchPolicy: Equivalent` across versions (kapi serves one
//! version per resource), client certificates for webhook servers.

pub mod client;
pub mod validation;

use super::pod::{labels, selector_matches};
use super::{Attributes, Lookup, MutatingPlugin, Operation, ValidatingPlugin};
use crate::api::catalogue::{self, ResourceInfo};
use crate::api::status::{ApiError, Cause, Details};
use async_trait::async_trait;
use base64::Engine;
use client::{Target, WebhookClients};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub const ADMISSION_GROUP: &str = "admissionregistration.k8s.io";

/// Resources whose requests never go to webhooks (`IsExemptAdmissionConfigurationResource`).
const EXEMPT: &[&str] = &[
    "validatingwebhookconfigurations",
    "mutatingwebhookconfigurations",
    "validatingadmissionpolicies",
    "validatingadmissionpolicybindings",
    "mutatingadmissionpolicies",
    "mutatingadmissionpolicybindings",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Mutating,
    Validating,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::Mutating => "mutatingwebhookconfigurations",
            Kind::Validating => "validatingwebhookconfigurations",
        }
    }
}

/// One webhook of a configuration.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub name: String,
    pub configuration: String,
    spec: Value,
}

impl Webhook {
    fn str_field(&self, k: &str) -> Option<&str> {
        self.spec.get(k).and_then(Value::as_str)
    }

    fn ignore_failures(&self) -> bool {
        self.str_field("failurePolicy") == Some("Ignore")
    }

    fn timeout(&self) -> Duration {
        let s = self
            .spec
            .get("timeoutSeconds")
            .and_then(Value::as_i64)
            .filter(|s| *s > 0)
            .unwrap_or(10);
        Duration::from_secs(s as u64)
    }

    /// The AdmissionReview version to send: the first of `admissionReviewVersions` kapi speaks.
    fn review_version(&self) -> Option<&'static str> {
        let versions: Vec<&str> = self
            .spec
            .get("admissionReviewVersions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        versions.iter().find_map(|v| match *v {
            "v1" => Some("admission.k8s.io/v1"),
            "v1beta1" => Some("admission.k8s.io/v1beta1"),
            _ => None,
        })
    }
}

fn list_of(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn exact_or_wildcard(items: &[&str], requested: &str) -> bool {
    items.iter().any(|i| *i == "*" || *i == requested)
}

/// Whether one rule matches the request (`rules.Matcher`).
fn rule_matches(rule: &Value, attrs: &Attributes) -> bool {
    let res = attrs.resource;
    let scope_ok = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Namespaced" => res.plural != "namespaces" && !attrs.namespace.is_empty(),
        "Cluster" => res.plural == "namespaces" || attrs.namespace.is_empty(),
        _ => true,
    };
    let ops = list_of(rule.get("operations"));
    let op_ok = ops
        .iter()
        .any(|o| *o == "*" || *o == attrs.operation.as_str());
    let resource_ok = list_of(rule.get("resources")).iter().any(|r| {
        let (rr, sub) = r.split_once('/').unwrap_or((r, ""));
        (rr == "*" || rr == res.plural) && (sub == "*" || sub == attrs.subresource)
    });
    scope_ok
        && op_ok
        && exact_or_wildcard(&list_of(rule.get("apiGroups")), res.group)
        && exact_or_wildcard(&list_of(rule.get("apiVersions")), res.version)
        && resource_ok
}

fn object_labels(o: Option<&Map<String, Value>>) -> Option<Map<String, Value>> {
    o.map(labels)
}

/// A JSON Status-like error of a failed call.
fn call_failed(hook: &Webhook, reason: impl std::fmt::Display) -> CallOutcome {
    CallOutcome::CallFailed(format!(
        "failed calling webhook \"{}\": {reason}",
        hook.name
    ))
}

enum CallOutcome {
    /// Allowed; the patch (mutating) and the warnings.
    Allowed(Option<json_patch::Patch>, Vec<String>),
    /// `allowed: false`: the error to return, and the warnings.
    Denied(ApiError, Vec<String>),
    /// The call itself failed (failurePolicy decides).
    CallFailed(String),
    /// A dry run the webhook's side effects forbid: never called, failurePolicy does not apply.
    DryRunUnsupported(ApiError),
}

/// The dry-run gate of both dispatchers (`callHook`/`callAttrMutatingHook`): `None` lets the
/// call proceed.
fn dry_run_gate(hook: &Webhook, attrs: &Attributes) -> Option<CallOutcome> {
    if !attrs.dry_run {
        return None;
    }
    match hook.spec.get("sideEffects") {
        None | Some(Value::Null) => Some(call_failed(hook, "Webhook SideEffects is nil")),
        Some(Value::String(s)) if s == "None" || s == "NoneOnDryRun" => None,
        // `webhookerrors.NewDryRunUnsupportedErr`.
        Some(_) => Some(CallOutcome::DryRunUnsupported(ApiError::bad_request(
            format!(
                "admission webhook \"{}\" does not support dry run",
                hook.name
            ),
        ))),
    }
}

/// Reasons a webhook sends are free text; the Status keeps them as `&'static str`.
fn intern(reason: &str) -> &'static str {
    static KNOWN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let set = KNOWN.get_or_init(Default::default);
    let mut set = set.lock().unwrap();
    if let Some(s) = set.get(reason) {
        return s;
    }
    if set.len() >= 256 || reason.len() > 128 {
        return "";
    }
    let leaked: &'static str = Box::leak(reason.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// `webhookerrors.ToStatusErr`.
fn denied(hook: &Webhook, status: Option<&Value>) -> ApiError {
    let empty = Value::Null;
    let st = status.unwrap_or(&empty);
    let s = |k: &str| st.get(k).and_then(Value::as_str).unwrap_or("");
    let denied_by = format!("admission webhook \"{}\" denied the request", hook.name);
    let message = if !s("message").is_empty() {
        format!("{denied_by}: {}", s("message"))
    } else if !s("reason").is_empty() {
        format!("{denied_by}: {}", s("reason"))
    } else {
        format!("{denied_by} without explanation")
    };
    let code = st
        .get("code")
        .and_then(Value::as_u64)
        .filter(|c| (400..600).contains(c))
        .unwrap_or(400) as u16;
    let mut e = ApiError::new(code, intern(s("reason")), message);
    if let Some(d) = st.get("details").and_then(Value::as_object) {
        let ds = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        *e.details = Details {
            name: ds("name"),
            group: ds("group"),
            kind: ds("kind"),
            uid: ds("uid"),
            causes: d
                .get("causes")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            let cs = |k: &str| {
                                c.get(k).and_then(Value::as_str).unwrap_or("").to_string()
                            };
                            Cause {
                                reason: cs("reason"),
                                message: cs("message"),
                                field: cs("field"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
            retry_after_seconds: d
                .get("retryAfterSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32,
        };
    }
    e
}

/// The operation's options when the handler passed none: kube sends the decoded request
/// options, whose `dryRun` is `["All"]` on a dry run.
fn default_options(op: Operation, dry_run: bool) -> Value {
    let kind = match op {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
        Operation::Connect => return Value::Null,
    };
    let mut o = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
    if dry_run {
        o["dryRun"] = json!(["All"]);
    }
    o
}

/// The AdmissionReview sent for a request.
pub fn review_request(attrs: &Attributes, uid: &str, api_version: &str) -> Value {
    let res = attrs.resource;
    let (kg, kv, kk) = attrs.kind();
    let mut req = Map::new();
    req.insert("uid".into(), uid.into());
    let gvk = json!({"group": kg, "version": kv, "kind": kk});
    let gvr = json!({"group": res.group, "version": res.version, "resource": res.plural});
    req.insert("kind".into(), gvk.clone());
    req.insert("resource".into(), gvr.clone());
    if !attrs.subresource.is_empty() {
        req.insert("subResource".into(), attrs.subresource.clone().into());
    }
    req.insert("requestKind".into(), gvk);
    req.insert("requestResource".into(), gvr);
    if !attrs.subresource.is_empty() {
        req.insert(
            "requestSubResource".into(),
            attrs.subresource.clone().into(),
        );
    }
    if !attrs.name.is_empty() {
        req.insert("name".into(), attrs.name.clone().into());
    }
    if !attrs.namespace.is_empty() {
        req.insert("namespace".into(), attrs.namespace.clone().into());
    }
    req.insert("operation".into(), attrs.operation.as_str().into());
    req.insert("userInfo".into(), attrs.user.to_json());
    let obj = |o: &Option<Map<String, Value>>| o.clone().map(Value::Object).unwrap_or(Value::Null);
    req.insert("object".into(), obj(&attrs.object));
    req.insert("oldObject".into(), obj(&attrs.old_object));
    req.insert("dryRun".into(), attrs.dry_run.into());
    req.insert(
        "options".into(),
        attrs
            .options
            .clone()
            .unwrap_or_else(|| default_options(attrs.operation, attrs.dry_run)),
    );
    json!({"kind": "AdmissionReview", "apiVersion": api_version, "request": Value::Object(req)})
}

/// `apiserver_admission_webhook_admission_duration_seconds` for one call.
fn observe(
    hook: &Webhook,
    attrs: &Attributes,
    kind: Kind,
    rejected: bool,
    started: std::time::Instant,
) {
    metrics::histogram!(
        "apiserver_admission_webhook_admission_duration_seconds",
        "name" => hook.name.clone(),
        "operation" => attrs.operation.as_str(),
        "rejected" => if rejected { "true" } else { "false" },
        "type" => if kind == Kind::Mutating { "admit" } else { "validating" },
    )
    .record(started.elapsed().as_secs_f64());
}

/// The shared machinery of both plugins.
#[derive(Default)]
struct Dispatcher {
    clients: Arc<WebhookClients>,
}

impl Dispatcher {
    /// The webhooks of every configuration of a kind, in configuration-name order.
    async fn webhooks(&self, lookup: &dyn Lookup, kind: Kind) -> Result<Vec<Webhook>, ApiError> {
        let Some(res) = catalogue::lookup(ADMISSION_GROUP, "v1", kind.plural()) else {
            return Ok(Vec::new());
        };
        let mut configs = lookup.list(res, None).await?;
        let name_of = |o: &Map<String, Value>| {
            o.get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        configs.sort_by_key(|c| name_of(&c.object));
        let mut out = Vec::new();
        for c in configs {
            let cname = name_of(&c.object);
            for w in c
                .object
                .get("webhooks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push(Webhook {
                    name: w
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    configuration: cname.clone(),
                    spec: w.clone(),
                });
            }
        }
        Ok(out)
    }

    /// `ShouldCallHook`: rules, namespace selector and object selector.
    async fn should_call(
        &self,
        lookup: &dyn Lookup,
        hook: &Webhook,
        attrs: &Attributes,
    ) -> Result<bool, ApiError> {
        let rules = hook.spec.get("rules").and_then(Value::as_array);
        if !rules.is_some_and(|rs| rs.iter().any(|r| rule_matches(r, attrs))) {
            return Ok(false);
        }
        let ns_sel = hook
            .spec
            .get("namespaceSelector")
            .cloned()
            .unwrap_or(Value::Null);
        let ns_sel_empty = ns_sel.is_null()
            || ns_sel.as_object().is_some_and(|m| {
                m.get("matchLabels")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty)
                    && m.get("matchExpressions")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty)
            });
        let is_namespace = attrs.is("", "namespaces");
        if !ns_sel_empty && (is_namespace || !attrs.namespace.is_empty()) {
            let ns_labels = if is_namespace {
                let o = if attrs.operation == Operation::Delete {
                    attrs.old_object.as_ref()
                } else {
                    attrs.object.as_ref().or(attrs.old_object.as_ref())
                };
                o.map(labels).unwrap_or_default()
            } else {
                let nsr = catalogue::lookup("", "v1", "namespaces").expect("namespaces are served");
                match lookup.get(nsr, None, &attrs.namespace).await? {
                    Some(n) => labels(&n.object),
                    None => return Err(ApiError::namespace_not_found(&attrs.namespace)),
                }
            };
            if !selector_matches(&ns_sel, &ns_labels) {
                return Ok(false);
            }
        }
        let obj_sel = hook
            .spec
            .get("objectSelector")
            .cloned()
            .unwrap_or(Value::Null);
        let obj_sel_empty = obj_sel.is_null()
            || obj_sel.as_object().is_some_and(|m| {
                m.get("matchLabels")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty)
                    && m.get("matchExpressions")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty)
            });
        if !obj_sel_empty {
            let new = object_labels(attrs.object.as_ref())
                .is_some_and(|l| selector_matches(&obj_sel, &l));
            let old = object_labels(attrs.old_object.as_ref())
                .is_some_and(|l| selector_matches(&obj_sel, &l));
            if !new && !old {
                return Ok(false);
            }
        }
        if hook
            .spec
            .get("matchConditions")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty())
        {
            tracing::debug!(webhook = %hook.name, "matchConditions are not evaluated by kapi; calling the webhook");
        }
        Ok(true)
    }

    async fn target(&self, lookup: &dyn Lookup, hook: &Webhook) -> Result<Target, String> {
        let cc = hook.spec.get("clientConfig").cloned().unwrap_or_default();
        let ca_bundle = match cc.get("caBundle").and_then(Value::as_str) {
            Some(b) if !b.is_empty() => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| format!("invalid caBundle: {e}"))?,
            _ => Vec::new(),
        };
        let timeout = format!("timeout={}s", hook.timeout().as_secs());
        let with_timeout = |url: &str| {
            if url.contains('?') {
                format!("{url}&{timeout}")
            } else {
                format!("{url}?{timeout}")
            }
        };
        if let Some(url) = cc.get("url").and_then(Value::as_str) {
            if !url.starts_with("https://") {
                return Err(format!(
                    "invalid webhook URL {url:?}: the scheme must be https"
                ));
            }
            return Ok(Target {
                url: with_timeout(url),
                server_name: None,
                ca_bundle,
            });
        }
        let Some(svc) = cc.get("service") else {
            return Err("the webhook has neither a url nor a service reference".into());
        };
        let s = |k: &str| svc.get(k).and_then(Value::as_str).unwrap_or("");
        let (ns, name) = (s("namespace"), s("name"));
        let port = svc.get("port").and_then(Value::as_i64).unwrap_or(443);
        let path = svc.get("path").and_then(Value::as_str).unwrap_or("/");
        let services = catalogue::lookup("", "v1", "services").expect("services are served");
        let found = lookup
            .get(services, Some(ns), name)
            .await
            .map_err(|e| e.message)?
            .ok_or_else(|| format!("services \"{name}\" not found"))?;
        let ip = found
            .object
            .get("spec")
            .and_then(|s| s.get("clusterIP"))
            .and_then(Value::as_str)
            .filter(|ip| !ip.is_empty() && *ip != "None")
            .ok_or_else(|| format!("service {ns}/{name} has no cluster IP"))?
            .to_string();
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip
        };
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Ok(Target {
            url: with_timeout(&format!("https://{host}:{port}{path}")),
            server_name: Some(format!("{name}.{ns}.svc")),
            ca_bundle,
        })
    }

    async fn call(
        &self,
        lookup: &dyn Lookup,
        hook: &Webhook,
        attrs: &Attributes,
        kind: Kind,
    ) -> CallOutcome {
        if let Some(refused) = dry_run_gate(hook, attrs) {
            // kube observes these as rejections too.
            observe(hook, attrs, kind, true, std::time::Instant::now());
            return refused;
        }
        let Some(api_version) = hook.review_version() else {
            return call_failed(
                hook,
                "webhook does not accept v1 or v1beta1 AdmissionReview",
            );
        };
        let target = match self.target(lookup, hook).await {
            Ok(t) => t,
            Err(e) => return call_failed(hook, e),
        };
        let uid = uuid::Uuid::new_v4().to_string();
        let body =
            serde_json::to_vec(&review_request(attrs, &uid, api_version)).expect("serializes");
        let started = std::time::Instant::now();
        let result = self.clients.post(&target, body, hook.timeout()).await;
        let rejected = matches!(&result, Ok(b) if serde_json::from_slice::<Value>(b)
            .ok()
            .and_then(|v| v.get("response").and_then(|r| r.get("allowed")).and_then(Value::as_bool))
            == Some(false));
        observe(hook, attrs, kind, rejected || result.is_err(), started);
        let bytes = match result {
            Ok(b) => b,
            Err(e) => return call_failed(hook, format!("failed to call webhook: {}", e.0)),
        };
        let invalid =
            |why: String| call_failed(hook, format!("received invalid webhook response: {why}"));
        let review: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return invalid(e.to_string()),
        };
        let got_av = review
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let got_kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
        if got_av != api_version || got_kind != "AdmissionReview" {
            return invalid(format!(
                "expected webhook response of {api_version}, Kind=AdmissionReview, got {got_av}, Kind={got_kind}"
            ));
        }
        let Some(resp) = review.get("response").filter(|r| r.is_object()) else {
            return invalid("webhook response was absent".into());
        };
        let got_uid = resp.get("uid").and_then(Value::as_str).unwrap_or("");
        if got_uid != uid {
            return invalid(format!(
                "expected response.uid=\"{uid}\", got \"{got_uid}\""
            ));
        }
        let warnings: Vec<String> = resp
            .get("warnings")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if resp.get("allowed").and_then(Value::as_bool) != Some(true) {
            return CallOutcome::Denied(denied(hook, resp.get("status")), warnings);
        }
        let patch = resp
            .get("patch")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty());
        let patch_type = resp
            .get("patchType")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty());
        match (patch, patch_type) {
            (None, None) => CallOutcome::Allowed(None, warnings),
            (Some(_), None) => {
                invalid("webhook returned response.patch but not response.patchType".into())
            }
            (None, Some(_)) => {
                invalid("webhook returned response.patchType but not response.patch".into())
            }
            (Some(p), Some("JSONPatch")) => {
                if kind == Kind::Validating {
                    return CallOutcome::Allowed(None, warnings);
                }
                let raw = match base64::engine::general_purpose::STANDARD.decode(p) {
                    Ok(r) => r,
                    Err(e) => return invalid(format!("invalid patch: {e}")),
                };
                match serde_json::from_slice::<json_patch::Patch>(&raw) {
                    Ok(p) => CallOutcome::Allowed(Some(p), warnings),
                    Err(e) => CallOutcome::Denied(ApiError::internal(e), warnings),
                }
            }
            (Some(_), Some(t)) => invalid(format!(
                "webhook returned invalid response.patchType of \"{t}\""
            )),
        }
    }
}

fn exempt(attrs: &Attributes) -> bool {
    attrs.resource.group == ADMISSION_GROUP && EXEMPT.contains(&attrs.resource.plural)
}

/// `MutatingAdmissionWebhook`.
#[derive(Default)]
pub struct MutatingWebhook {
    dispatcher: Dispatcher,
}

#[async_trait]
impl MutatingPlugin for MutatingWebhook {
    fn name(&self) -> &'static str {
        "MutatingAdmissionWebhook"
    }

    async fn admit(
        &self,
        lookup: &dyn Lookup,
        attrs: &mut Attributes,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if exempt(attrs) {
            return Ok(());
        }
        let hooks = self.dispatcher.webhooks(lookup, Kind::Mutating).await?;
        for hook in hooks {
            if !self.dispatcher.should_call(lookup, &hook, attrs).await? {
                continue;
            }
            match self
                .dispatcher
                .call(lookup, &hook, attrs, Kind::Mutating)
                .await
            {
                CallOutcome::Allowed(patch, w) => {
                    warnings.extend(w);
                    let Some(patch) = patch.filter(|p| !p.0.is_empty()) else {
                        continue;
                    };
                    let Some(obj) = attrs.object.take() else {
                        return Err(ApiError::internal(format!(
                            "admission webhook \"{}\" attempted to modify the object, which is not supported for this operation",
                            hook.name
                        )));
                    };
                    let mut doc = Value::Object(obj);
                    let original = doc.clone();
                    if let Err(e) = json_patch::patch(&mut doc, &patch) {
                        attrs.object = original.as_object().cloned();
                        return Err(ApiError::internal(e));
                    }
                    match doc {
                        Value::Object(m) => attrs.object = Some(m),
                        _ => {
                            attrs.object = original.as_object().cloned();
                            return Err(ApiError::internal(format!(
                                "admission webhook \"{}\" returned a patch that does not produce an object",
                                hook.name
                            )));
                        }
                    }
                }
                CallOutcome::Denied(e, w) => {
                    warnings.extend(w);
                    return Err(e);
                }
                CallOutcome::DryRunUnsupported(e) => return Err(e),
                CallOutcome::CallFailed(msg) => {
                    if hook.ignore_failures() {
                        tracing::warn!(webhook = %hook.name, error = %msg, "failed calling webhook, failing open");
                        continue;
                    }
                    tracing::warn!(webhook = %hook.name, error = %msg, "failed calling webhook, failing closed");
                    return Err(ApiError::internal(msg));
                }
            }
        }
        Ok(())
    }
}

/// `ValidatingAdmissionWebhook`.
#[derive(Default)]
pub struct ValidatingWebhook {
    dispatcher: Dispatcher,
}

#[async_trait]
impl ValidatingPlugin for ValidatingWebhook {
    fn name(&self) -> &'static str {
        "ValidatingAdmissionWebhook"
    }

    async fn validate(
        &self,
        lookup: &dyn Lookup,
        attrs: &Attributes,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if exempt(attrs) {
            return Ok(());
        }
        let mut selected = Vec::new();
        for hook in self.dispatcher.webhooks(lookup, Kind::Validating).await? {
            if self.dispatcher.should_call(lookup, &hook, attrs).await? {
                selected.push(hook);
            }
        }
        let calls = selected
            .iter()
            .map(|h| self.dispatcher.call(lookup, h, attrs, Kind::Validating));
        let outcomes = futures::future::join_all(calls).await;
        let mut first_err = None;
        let mut refused = None;
        for (hook, outcome) in selected.iter().zip(outcomes) {
            match outcome {
                CallOutcome::Allowed(_, w) => warnings.extend(w),
                CallOutcome::Denied(e, w) => {
                    warnings.extend(w);
                    first_err.get_or_insert(e);
                }
                // kube returns the first error its concurrent calls report; a refused dry run
                // reports before any network call, so it is the one the caller sees.
                CallOutcome::DryRunUnsupported(e) => {
                    refused.get_or_insert(e);
                }
                CallOutcome::CallFailed(msg) => {
                    if hook.ignore_failures() {
                        tracing::warn!(webhook = %hook.name, error = %msg, "failed calling webhook, failing open");
                    } else {
                        tracing::warn!(webhook = %hook.name, error = %msg, "failed calling webhook, failing closed");
                        first_err.get_or_insert(ApiError::internal(msg));
                    }
                }
            }
        }
        match refused.or(first_err) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The catalogue entries the configurations are served from.
pub fn configuration_resources() -> [Option<&'static ResourceInfo>; 2] {
    [
        catalogue::lookup(ADMISSION_GROUP, "v1", "mutatingwebhookconfigurations"),
        catalogue::lookup(ADMISSION_GROUP, "v1", "validatingwebhookconfigurations"),
    ]
}

#[cfg(test)]
mod tests;
