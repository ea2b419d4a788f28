//! RBAC escalation prevention, which kube-apiserver enforces in the RBAC registry (not in
//! admission): a user may only write a Role or ClusterRole whose permissions they already hold
//! (or with the `escalate` verb on it), and only bind a role whose permissions they already hold
//! (or with the `bind` verb on it). Members of `system:masters` skip the checks; with
//! `--authorization-mode=AlwaysAllow` the `escalate`/`bind` questions are always answered yes.
//!
//! What a user holds is resolved from the RBAC objects (the RBAC index over the watch caches),
//! whatever the authorization modes; `escalate` and `bind` are asked of the whole union.
//!
//! The write handlers call [`check`] once the object to be stored is known (after mutating
//! admission, before validation), for create, update, patch and apply, dry runs included.

use super::rbac::{self, rules_of, Rbac, GROUP};
use super::{Attributes, Authorizer, Decision, Mode, Rule};
use crate::admission::AdmissionUser;
use crate::api::apply::fieldpath::go_quote;
use crate::api::catalogue::ResourceInfo;
use crate::api::handlers::{store_error, Api};
use crate::api::status::ApiError;
use crate::auth::authn::{UserInfo, MASTERS_GROUP};
use crate::object::raw::RawObject;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};

// ---------------------------------------------------------------------------------------------
// Which authorizer serves which Api
// ---------------------------------------------------------------------------------------------

/// An authorizer, held weakly: the registry must not keep the server's objects alive.
struct Registered {
    api: Weak<Api>,
    modes: Weak<Vec<Mode>>,
    rbac: Option<Weak<Rbac>>,
}

/// The `Api` is built before the authorizer (which holds it), and the handlers only see the
/// `Api`; the authorizer registers itself here when it is built from the flags. Weak pointers
/// keep each entry's `Api` allocation reserved, so an address identifies one `Api`.
static REGISTRY: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

pub(super) fn register(api: &Arc<Api>, authz: &Authorizer) {
    let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    reg.retain(|r| r.api.strong_count() > 0 && r.modes.strong_count() > 0);
    reg.push(Registered {
        api: Arc::downgrade(api),
        modes: Arc::downgrade(&authz.modes),
        rbac: authz.rbac.as_ref().map(Arc::downgrade),
    });
}

fn authorizer_for(api: &Api) -> Option<Authorizer> {
    let reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let r = reg
        .iter()
        .rev()
        .find(|r| std::ptr::eq(r.api.as_ptr(), api))?;
    Some(Authorizer {
        modes: r.modes.upgrade()?,
        rbac: r.rbac.as_ref().and_then(Weak::upgrade),
    })
}

// ---------------------------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------------------------

/// One write of an RBAC object, as the escalation check needs it.
pub struct Write<'a> {
    pub res: &'static ResourceInfo,
    /// The request's namespace (`None` for cluster-scoped resources).
    pub namespace: Option<&'a str>,
    /// The name in the URL, `""` for a POST: what `escalate` is asked about.
    pub url_name: &'a str,
    /// The object's name as the 403 shows it (`""` while a generateName is pending).
    pub name: &'a str,
    pub user: &'a AdmissionUser,
    /// The stored object (updates).
    pub old: Option<&'a Map<String, Value>>,
    /// The object about to be written.
    pub new: &'a Map<String, Value>,
}

/// Fails a write that would grant permissions the requester does not hold: 403 with kube's
/// message, or the lookup error of the role a binding references (404).
pub async fn check(api: &Api, w: &Write<'_>) -> Result<(), ApiError> {
    if w.res.group != GROUP {
        return Ok(());
    }
    let is_role = match w.res.plural {
        "roles" | "clusterroles" => true,
        "rolebindings" | "clusterrolebindings" => false,
        _ => return Ok(()),
    };
    // `EscalationAllowed`: system:masters can do anything.
    if w.user.in_group(MASTERS_GROUP) {
        return Ok(());
    }
    let Some(authz) = authorizer_for(api) else {
        // No authorizer was built for this Api (unit tests): nothing to check against.
        return Ok(());
    };
    let user = UserInfo {
        name: w.user.username.clone(),
        uid: w.user.uid.clone(),
        groups: w.user.groups.clone(),
        extra: w.user.extra.clone(),
    };
    let ns = w.namespace.unwrap_or("");
    // Asks the whole authorizer union, in the request's namespace.
    let allowed = |verb: &str, group: &str, resource: &str, name: &str| {
        let a = Attributes {
            user: user.clone(),
            verb: verb.into(),
            resource_request: true,
            namespace: ns.into(),
            api_group: group.into(),
            api_version: "*".into(),
            resource: resource.into(),
            name: name.into(),
            ..Default::default()
        };
        authz.authorize(&a).0 == Decision::Allow
    };
    let gc_only = w.old.is_some_and(|old| only_gc_fields(old, w.new));

    if is_role {
        // `RoleEscalationAuthorized`: `escalate` on the URL's object (no name for a POST).
        if allowed("escalate", GROUP, w.res.plural, w.url_name) || gc_only {
            return Ok(());
        }
        confirm_no_escalation(&authz, &user, ns, &rules_of(w.new))
            .map_err(|msg| forbidden(w.res, w.name, &msg))?;
        // An aggregation rule can gather anything: setting or changing one needs `*` on `*`.
        if w.res.plural == "clusterroles"
            && (has_aggregation(w.new) || w.old.is_some_and(has_aggregation))
        {
            let full = [
                Rule::new(&["*"], &["*"], &["*"]),
                Rule::urls(&["*"], &["*"]),
            ];
            confirm_no_escalation(&authz, &user, ns, &full).map_err(|_| {
                forbidden(
                    w.res,
                    w.name,
                    "must have cluster-admin privileges to use the aggregationRule",
                )
            })?;
        }
        return Ok(());
    }

    if gc_only {
        return Ok(());
    }
    let role_ref = w.new.get("roleRef");
    let field = |k: &str| {
        role_ref
            .and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let (kind, group, name) = (field("kind"), field("apiGroup"), field("name"));
    // `BindingAuthorized`: `bind` on the role, asked in the binding's namespace (cluster scope
    // for ClusterRoleBindings), so a RoleBinding may be allowed by a namespaced grant.
    let bind_resource = match kind {
        "ClusterRole" => Some("clusterroles"),
        "Role" => Some("roles"),
        _ => None,
    };
    if bind_resource.is_some_and(|resource| allowed("bind", group, resource, name)) {
        return Ok(());
    }
    let rules = role_reference_rules(api, authz.rbac.as_deref(), kind, name, ns).await?;
    confirm_no_escalation(&authz, &user, ns, &rules).map_err(|msg| forbidden(w.res, w.name, &msg))
}

/// `GetRoleReferenceRules`: the rules of the role a binding references. The cache answers
/// first (ClusterRoles with their aggregated rules, as the authorizer evaluates them); a miss is
/// confirmed against the store, as the registry's resolver reads through the REST storage.
async fn role_reference_rules(
    api: &Api,
    rbac: Option<&Rbac>,
    kind: &str,
    name: &str,
    binding_ns: &str,
) -> Result<Vec<Rule>, ApiError> {
    let (plural, ns) = match kind {
        "ClusterRole" => ("clusterroles", None),
        "Role" if binding_ns.is_empty() => {
            return Err(ApiError::bad_request("Namespace parameter required."))
        }
        "Role" => ("roles", Some(binding_ns)),
        other => {
            // A plain error from the storage: 500 with reason Unknown.
            return Err(ApiError::new(
                500,
                "Unknown",
                format!("unsupported role reference kind: {}", go_quote(other)),
            ));
        }
    };
    if let Some(rules) = rbac.and_then(|r| r.role_rules(ns, name)) {
        return Ok(rules.to_vec());
    }
    let res = rbac::resource(plural);
    let (kv, _) = api
        .store
        .get(&api.key(res, ns, name))
        .await
        .map_err(|e| store_error(e, res, "get"))?;
    let Some(kv) = kv else {
        return Err(ApiError::not_found(res, name));
    };
    let obj = RawObject::from_kv(res, &kv).map_err(ApiError::internal)?;
    Ok(rules_of(&obj.to_map()))
}

/// `ConfirmNoEscalation`: `Err` is the message when the user's RBAC rules in `namespace` (and
/// cluster-wide) do not cover `rules`.
fn confirm_no_escalation(
    authz: &Authorizer,
    user: &UserInfo,
    namespace: &str,
    rules: &[Rule],
) -> Result<(), String> {
    let (owned, errors) = match &authz.rbac {
        Some(r) => r.registry_rules_for(user, namespace),
        None => (Vec::new(), Vec::new()),
    };
    let missing = uncovered(&owned, rules);
    if missing.is_empty() {
        return Ok(());
    }
    Err(escalation_message(user, &missing, &errors))
}

/// The message of a denied escalation: the missing rules compacted, one per line, sorted,
/// then the rule resolution errors (one aggregate error, printed as a Go slice).
pub fn escalation_message(user: &UserInfo, missing: &[Rule], errors: &[String]) -> String {
    let lines: BTreeSet<String> = compact(missing).iter().map(compact_string).collect();
    let mut msg = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        go_quote(&user.name),
        go_quote_list(&user.groups),
        lines.into_iter().collect::<Vec<_>>().join("\n")
    );
    let mut distinct: Vec<&str> = Vec::new();
    for e in errors {
        if !distinct.contains(&e.as_str()) {
            distinct.push(e);
        }
    }
    match distinct.len() {
        0 => {}
        1 => msg.push_str(&format!("; resolution errors: [{}]", distinct[0])),
        _ => msg.push_str(&format!("; resolution errors: [[{}]]", distinct.join(", "))),
    }
    msg
}

/// `apierrors.NewForbidden(rbac.Resource(plural), name, err)`.
fn forbidden(res: &ResourceInfo, name: &str, err: &str) -> ApiError {
    let message = if name.is_empty() {
        format!("{} is forbidden: {err}", res.qualified())
    } else {
        format!("{} {} is forbidden: {err}", res.qualified(), go_quote(name))
    };
    let mut e = ApiError::new(403, "Forbidden", message);
    e.details.name = name.to_string();
    e.details.group = res.group.to_string();
    e.details.kind = res.plural.to_string();
    e
}

fn has_aggregation(obj: &Map<String, Value>) -> bool {
    obj.get("aggregationRule")
        .and_then(|a| a.get("clusterRoleSelectors"))
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
}

/// `IsOnlyMutatingGCFields`: the update changes nothing but ownerReferences, finalizers and
/// selfLink (what the garbage collector writes), compared semantically (absent = empty).
/// managedFields are ignored too (kubernetes#90534): the writer's entry always changes.
fn only_gc_fields(old: &Map<String, Value>, new: &Map<String, Value>) -> bool {
    let mut copied = new.clone();
    let old_meta = old.get("metadata").and_then(Value::as_object);
    if let Some(m) = copied.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["ownerReferences", "finalizers", "selfLink", "managedFields"] {
            match old_meta.and_then(|o| o.get(k)) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.shift_remove(k),
            };
        }
    }
    semantic(&Value::Object(copied)) == semantic(&Value::Object(old.clone()))
}

/// A value with its empty members dropped: Go's typed objects do not tell a missing field from
/// an empty one.
fn semantic(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), semantic(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(semantic).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Rule covering (component-helpers' `validation.Covers`) and the missing-rule rendering
// ---------------------------------------------------------------------------------------------

/// The atoms of `servant` (one verb, group, resource and name; or one verb and URL) that no
/// rule of `owner` covers, in order. Empty when `owner` covers `servant`.
pub fn uncovered(owner: &[Rule], servant: &[Rule]) -> Vec<Rule> {
    servant
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect()
}

/// `BreakdownRule`: a rule as single-verb, single-group, single-resource, single-name rules,
/// then single-verb, single-URL ones.
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = Rule {
                    verbs: one(verb),
                    api_groups: one(group),
                    resources: one(resource),
                    ..Default::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for name in &rule.resource_names {
                        out.push(Rule {
                            resource_names: one(name),
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(Rule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..Default::default()
            });
        }
    }
    out
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

/// Owner resources cover every wanted one: `*`, an exact match, or `*/<sub>` for a subresource.
fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, "*") {
        return true;
    }
    wanted.iter().all(|r| {
        has(owner, r)
            || r.split_once('/')
                .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
    })
}

/// An owner URL covers a path it equals, or that starts with it when it ends in `*` (all
/// trailing stars trimmed).
fn url_covers(owner: &str, path: &str) -> bool {
    owner == path || (owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*')))
}

/// `ruleCovers`: `owner` (any shape) covers `sub` (an atom of [`breakdown`]).
fn rule_covers(owner: &Rule, sub: &Rule) -> bool {
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, "*") || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resources_cover(&owner.resources, &sub.resources);
    let urls = sub
        .non_resource_urls
        .iter()
        .all(|p| owner.non_resource_urls.iter().any(|o| url_covers(o, p)));
    // An owner restricted to names never covers a request for all names.
    let names = owner.resource_names.is_empty()
        || (!sub.resource_names.is_empty() && has_all(&owner.resource_names, &sub.resource_names));
    verbs && groups && resources && urls && names
}

/// `CompactRules`: atoms with one group, one resource, at most one name and nothing else are
/// merged when they differ only by verb; the others are kept as they are.
fn compact(rules: &[Rule]) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut simple: HashMap<(String, String, Option<String>), usize> = HashMap::new();
    for r in rules {
        let is_simple = r.resource_names.len() <= 1
            && r.non_resource_urls.is_empty()
            && r.api_groups.len() == 1
            && r.resources.len() == 1;
        if !is_simple {
            out.push(r.clone());
            continue;
        }
        let key = (
            r.api_groups[0].clone(),
            r.resources[0].clone(),
            r.resource_names.first().cloned(),
        );
        match simple.get(&key) {
            Some(&i) => out[i].verbs.extend(r.verbs.iter().cloned()),
            None => {
                simple.insert(key, out.len());
                out.push(r.clone());
            }
        }
    }
    out
}

/// `rbacv1helpers.CompactString`: `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`.
pub fn compact_string(r: &Rule) -> String {
    let parts: Vec<String> = [
        ("APIGroups", &r.api_groups),
        ("Resources", &r.resources),
        ("NonResourceURLs", &r.non_resource_urls),
        ("ResourceNames", &r.resource_names),
        ("Verbs", &r.verbs),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}:{}", go_quote_list(v)))
    .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quote_list(v: &[String]) -> String {
    let quoted: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(verbs: &[&str], groups: &[&str], res: &[&str]) -> Rule {
        Rule::new(verbs, groups, res)
    }

    fn covered(owner: &[Rule], servant: &[Rule]) -> bool {
        uncovered(owner, servant).is_empty()
    }

    #[test]
    fn wildcards_cover_everything_of_their_kind() {
        let star = [r(&["*"], &["*"], &["*"])];
        assert!(covered(
            &star,
            &[r(
                &["get", "escalate"],
                &["", "apps"],
                &["pods", "deployments/scale"]
            )]
        ));
        // Resource wildcards do not reach non-resource URLs, nor the reverse.
        assert!(!covered(&star, &[Rule::urls(&["get"], &["/healthz"])]));
        assert!(!covered(
            &[Rule::urls(&["*"], &["*"])],
            &[r(&["get"], &[""], &["pods"])]
        ));
        // Verb and group wildcards, one at a time.
        assert!(covered(
            &[r(&["*"], &[""], &["pods"])],
            &[r(&["get", "delete"], &[""], &["pods"])]
        ));
        assert!(!covered(
            &[r(&["*"], &[""], &["pods"])],
            &[r(&["get"], &["apps"], &["pods"])]
        ));
        assert!(covered(
            &[r(&["get"], &["*"], &["pods"])],
            &[r(&["get"], &["x.io", ""], &["pods"])]
        ));
        // A servant rule's atoms may be covered by different owner rules.
        assert!(covered(
            &[
                r(&["get"], &[""], &["pods"]),
                r(&["list"], &[""], &["pods"])
            ],
            &[r(&["get", "list"], &[""], &["pods"])]
        ));
        // Rules without verbs (or without groups) grant nothing, so they are always covered.
        assert!(covered(&[], &[r(&[], &[""], &["pods"])]));
        assert!(covered(&[], &[r(&["get"], &[], &["pods"])]));
    }

    #[test]
    fn subresources() {
        let pods_star = [r(&["get"], &[""], &["pods/*"])];
        // `pods/*` is a literal resource name for covering purposes: it covers itself only.
        assert!(covered(&pods_star, &[r(&["get"], &[""], &["pods/*"])]));
        assert!(!covered(&pods_star, &[r(&["get"], &[""], &["pods/log"])]));
        assert!(!covered(&pods_star, &[r(&["get"], &[""], &["pods"])]));
        // `*/<sub>` covers that subresource of every resource, not the resource.
        let any_status = [r(&["update"], &["*"], &["*/status"])];
        assert!(covered(
            &any_status,
            &[r(&["update"], &["apps"], &["deployments/status"])]
        ));
        assert!(!covered(
            &any_status,
            &[r(&["update"], &["apps"], &["deployments"])]
        ));
        assert!(!covered(
            &any_status,
            &[r(&["update"], &["apps"], &["deployments/scale"])]
        ));
        assert!(covered(
            &[r(&["get"], &[""], &["pods", "pods/log"])],
            &[r(&["get"], &[""], &["pods/log"])]
        ));
    }

    #[test]
    fn resource_names() {
        let named = [r(&["get"], &[""], &["secrets"]).names(&["a", "b"])];
        assert!(covered(
            &named,
            &[r(&["get"], &[""], &["secrets"]).names(&["b", "a"])]
        ));
        assert!(!covered(
            &named,
            &[r(&["get"], &[""], &["secrets"]).names(&["c"])]
        ));
        // Named access does not cover access to every name.
        assert!(!covered(&named, &[r(&["get"], &[""], &["secrets"])]));
        // Unrestricted access covers any name.
        assert!(covered(
            &[r(&["get"], &[""], &["secrets"])],
            &[r(&["get"], &[""], &["secrets"]).names(&["c"])]
        ));
        let missing = uncovered(
            &named,
            &[r(&["get"], &[""], &["secrets"]).names(&["a", "c"])],
        );
        assert_eq!(
            missing,
            vec![r(&["get"], &[""], &["secrets"]).names(&["c"])]
        );
    }

    #[test]
    fn non_resource_urls() {
        let owner = [Rule::urls(&["get"], &["/healthz", "/apis/*", "/logs**"])];
        assert!(covered(&owner, &[Rule::urls(&["get"], &["/healthz"])]));
        assert!(!covered(
            &owner,
            &[Rule::urls(&["get"], &["/healthz/etcd"])]
        ));
        assert!(!covered(&owner, &[Rule::urls(&["post"], &["/healthz"])]));
        assert!(covered(
            &owner,
            &[Rule::urls(
                &["get"],
                &["/apis/apps/v1", "/apis/*", "/apis/"]
            )]
        ));
        assert!(!covered(&owner, &[Rule::urls(&["get"], &["/apis"])]));
        // All trailing stars are trimmed.
        assert!(covered(&owner, &[Rule::urls(&["get"], &["/logsx/y"])]));
        assert!(covered(
            &[Rule::urls(&["*"], &["*"])],
            &[Rule::urls(&["get", "post"], &["/anything", "*"])]
        ));
        // A non-star owner does not cover a star servant.
        assert!(!covered(
            &[Rule::urls(&["get"], &["/metrics"])],
            &[Rule::urls(&["get"], &["/metrics*"])]
        ));
    }

    #[test]
    fn compacted_missing_rules_message() {
        let user = UserInfo::new("u", &["g1", "system:authenticated"]);
        let full = [r(&["*"], &["*"], &["*"]), Rule::urls(&["*"], &["*"])];
        assert_eq!(
            escalation_message(&user, &uncovered(&[], &full), &[]),
            "user \"u\" (groups=[\"g1\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}"
        );
        // Atoms differing only by verb merge (per name); the lines are sorted.
        let servant = [
            r(&["get", "list"], &["", "apps"], &["pods"]),
            r(&["get", "update"], &[""], &["secrets"]).names(&["a", "b"]),
        ];
        let owner = [r(&["list"], &[""], &["pods"])];
        assert_eq!(
            escalation_message(
                &UserInfo::new("bob", &[]),
                &uncovered(&owner, &servant),
                &["clusterroles.rbac.authorization.k8s.io \"gone\" not found".into()]
            ),
            "user \"bob\" (groups=[]) is attempting to grant RBAC permissions not currently held:\n\
             {APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\"]}\n\
             {APIGroups:[\"\"], Resources:[\"secrets\"], ResourceNames:[\"a\"], Verbs:[\"get\" \"update\"]}\n\
             {APIGroups:[\"\"], Resources:[\"secrets\"], ResourceNames:[\"b\"], Verbs:[\"get\" \"update\"]}\n\
             {APIGroups:[\"apps\"], Resources:[\"pods\"], Verbs:[\"get\" \"list\"]}; \
             resolution errors: [clusterroles.rbac.authorization.k8s.io \"gone\" not found]"
        );
        let two = escalation_message(
            &UserInfo::new("bob", &[]),
            &uncovered(&[], &[Rule::urls(&["get"], &["/x"])]),
            &["e1".into(), "e2".into(), "e1".into()],
        );
        assert!(
            two.ends_with(
                "{NonResourceURLs:[\"/x\"], Verbs:[\"get\"]}; resolution errors: [[e1, e2]]"
            ),
            "{two}"
        );
    }

    #[test]
    fn gc_only_updates() {
        let old: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "resourceVersion": "5", "finalizers": ["a"]},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]
        }))
        .unwrap();
        let mut new = old.clone();
        new["metadata"]["finalizers"] = serde_json::json!([]);
        new["metadata"]["ownerReferences"] = serde_json::json!([{"name": "o"}]);
        new["metadata"]["managedFields"] =
            serde_json::json!([{"manager": "gc", "operation": "Update"}]);
        assert!(
            only_gc_fields(&old, &new),
            "the writer's managedFields entry is no change"
        );
        new["metadata"]["labels"] = serde_json::json!({});
        assert!(only_gc_fields(&old, &new), "an empty map is no change");
        new["rules"][0]["verbs"] = serde_json::json!(["*"]);
        assert!(!only_gc_fields(&old, &new));
    }

    #[test]
    fn missing_roles_are_named_like_the_registry() {
        let e = ApiError::not_found(rbac::resource("clusterroles"), "gone");
        assert_eq!(
            e.message,
            "clusterroles.rbac.authorization.k8s.io \"gone\" not found"
        );
        let f = forbidden(rbac::resource("rolebindings"), "", "why");
        assert_eq!(
            f.message,
            "rolebindings.rbac.authorization.k8s.io is forbidden: why"
        );
        assert_eq!(f.details.kind, "rolebindings");
    }
}
