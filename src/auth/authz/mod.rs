//! Authorization: `--authorization-mode` is an ordered union of authorizers (AlwaysAllow,
//! AlwaysDeny, ABAC, Node, RBAC); the first Allow or Deny decides with its own reason,
//! NoOpinion moves on, and if none decides, the reasons of all of them, one per line, end up in
//! the 403 message (kube's `union.unionAuthzHandler`). As in kube-apiserver,
//! members of `system:masters` are allowed before any configured authorizer runs.

pub mod abac;
pub mod escalation;
pub mod node;
pub mod rbac;
pub mod request_info;

use super::authn::{UserInfo, MASTERS_GROUP};
use crate::api::handlers::{json_response, Api, Resp};
use crate::config::Config;
use anyhow::{bail, Context};
use http::HeaderValue;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// What is being asked (kube-apiserver's `authorizer.Attributes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub resource_request: bool,
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The request path (what non-resource rules match).
    pub path: String,
    pub field_selector: Option<String>,
    pub label_selector: Option<String>,
}

impl Attributes {
    pub fn is_read_only(&self) -> bool {
        matches!(self.verb.as_str(), "get" | "list" | "watch")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    NoOpinion,
}

/// An RBAC `PolicyRule`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn owned(x: &[&str]) -> Vec<String> {
    x.iter().map(|s| s.to_string()).collect()
}

impl Rule {
    /// A resource rule (`rbacv1helpers.NewRule(verbs...).Groups(...).Resources(...)`).
    pub fn new(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Rule {
        Rule {
            verbs: owned(verbs),
            api_groups: owned(groups),
            resources: owned(resources),
            ..Default::default()
        }
    }

    /// Restricts a resource rule to names.
    pub fn names(mut self, names: &[&str]) -> Rule {
        self.resource_names = owned(names);
        self
    }

    /// A non-resource rule.
    pub fn urls(verbs: &[&str], urls: &[&str]) -> Rule {
        Rule {
            verbs: owned(verbs),
            non_resource_urls: owned(urls),
            ..Default::default()
        }
    }

    pub fn from_json(v: &Value) -> Rule {
        Rule {
            verbs: strings(v.get("verbs")),
            api_groups: strings(v.get("apiGroups")),
            resources: strings(v.get("resources")),
            resource_names: strings(v.get("resourceNames")),
            non_resource_urls: strings(v.get("nonResourceURLs")),
        }
    }

    /// The rule as JSON, with the field order and omissions of `rbac/v1.PolicyRule`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("verbs".into(), json!(self.verbs));
        if !self.api_groups.is_empty() {
            m.insert("apiGroups".into(), json!(self.api_groups));
        }
        if !self.resources.is_empty() {
            m.insert("resources".into(), json!(self.resources));
        }
        if !self.resource_names.is_empty() {
            m.insert("resourceNames".into(), json!(self.resource_names));
        }
        if !self.non_resource_urls.is_empty() {
            m.insert("nonResourceURLs".into(), json!(self.non_resource_urls));
        }
        Value::Object(m)
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb)
    }

    /// `rbac.RuleAllows`.
    pub fn allows(&self, a: &Attributes) -> bool {
        if !self.verb_matches(&a.verb) {
            return false;
        }
        if !a.resource_request {
            return self.non_resource_urls.iter().any(|u| {
                u == "*"
                    || *u == a.path
                    || (u.ends_with('*') && a.path.starts_with(&u[..u.len() - 1]))
            });
        }
        if !self
            .api_groups
            .iter()
            .any(|g| g == "*" || *g == a.api_group)
        {
            return false;
        }
        let combined = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let resource_ok = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!a.subresource.is_empty()
                    && r.len() == 2 + a.subresource.len()
                    && r.starts_with("*/")
                    && r.ends_with(&a.subresource))
        });
        resource_ok
            && (self.resource_names.is_empty()
                || (!a.name.is_empty() && self.resource_names.contains(&a.name)))
    }
}

/// What `rules_for` answers for SelfSubjectRulesReview.
#[derive(Default, Debug)]
pub struct RulesReview {
    pub rules: Vec<Rule>,
    pub incomplete: bool,
    pub evaluation_error: String,
}

enum Mode {
    AlwaysAllow,
    AlwaysDeny,
    Abac(abac::Abac),
    Node(node::NodeAuthorizer),
    Rbac(Arc<rbac::Rbac>),
}

/// The configured authorizer union.
pub struct Authorizer {
    /// Shared (weakly) with the escalation checks of RBAC writes.
    modes: Arc<Vec<Mode>>,
    /// RBAC rule resolution for those checks: kube's RBAC registry resolves what a user holds
    /// from the RBAC objects whether or not RBAC is an authorization mode.
    rbac: Option<Arc<rbac::Rbac>>,
}

impl Authorizer {
    pub fn from_config(cfg: &Config, api: Arc<Api>) -> anyhow::Result<Self> {
        let mut modes = Vec::new();
        let mut seen = Vec::new();
        for m in cfg.authorization_mode.iter().map(|m| m.trim()) {
            if m.is_empty() {
                continue;
            }
            if seen.contains(&m) {
                bail!("--authorization-mode: {m} is listed more than once");
            }
            seen.push(m);
            modes.push(match m {
                "AlwaysAllow" => Mode::AlwaysAllow,
                "AlwaysDeny" => Mode::AlwaysDeny,
                "ABAC" => {
                    let path = cfg
                        .authorization_policy_file
                        .as_ref()
                        .context("--authorization-mode=ABAC needs --authorization-policy-file")?;
                    Mode::Abac(abac::Abac::load(path)?)
                }
                "Node" => Mode::Node(node::NodeAuthorizer::new(api.clone())),
                "RBAC" => Mode::Rbac(Arc::new(rbac::Rbac::new(api.clone()))),
                "Webhook" => bail!("--authorization-mode: Webhook is not supported by kapi"),
                other => bail!("--authorization-mode: unknown authorization mode {other:?}"),
            });
        }
        if modes.is_empty() {
            bail!("--authorization-mode names no authorizer");
        }
        if cfg.authorization_policy_file.is_some() && !seen.contains(&"ABAC") {
            bail!("--authorization-policy-file is only used with --authorization-mode=ABAC");
        }
        let rbac = modes
            .iter()
            .find_map(|m| match m {
                Mode::Rbac(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap_or_else(|| Arc::new(rbac::Rbac::new(api.clone())));
        let authz = Authorizer {
            modes: Arc::new(modes),
            rbac: Some(rbac),
        };
        escalation::register(&api, &authz);
        Ok(authz)
    }

    /// An authorizer with the given modes only (tests).
    pub fn always(allow: bool) -> Self {
        Authorizer {
            modes: Arc::new(vec![if allow {
                Mode::AlwaysAllow
            } else {
                Mode::AlwaysDeny
            }]),
            rbac: None,
        }
    }

    /// Decides a request; the string is the reason (for Deny/NoOpinion, appended to the 403).
    pub fn authorize(&self, a: &Attributes) -> (Decision, String) {
        if a.user.in_group(MASTERS_GROUP) {
            return (Decision::Allow, String::new());
        }
        // Lazy: the authorizers after the deciding one are not consulted.
        union(self.modes.iter().map(|m| match m {
            Mode::AlwaysAllow => (Decision::Allow, String::new()),
            Mode::AlwaysDeny => (Decision::NoOpinion, "Everything is forbidden.".into()),
            Mode::Abac(p) => p.authorize(a),
            Mode::Node(n) => n.authorize(a),
            Mode::Rbac(r) => r.authorize(a),
        }))
    }

    /// The rules `user` has in `namespace` (SelfSubjectRulesReview).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesReview {
        let mut out = RulesReview::default();
        let mut errors = Vec::new();
        for m in self.modes.iter() {
            match m {
                Mode::AlwaysAllow => {
                    out.rules.push(Rule {
                        verbs: vec!["*".into()],
                        api_groups: vec!["*".into()],
                        resources: vec!["*".into()],
                        ..Default::default()
                    });
                    out.rules.push(Rule {
                        verbs: vec!["*".into()],
                        non_resource_urls: vec!["*".into()],
                        ..Default::default()
                    });
                }
                Mode::AlwaysDeny => {}
                Mode::Abac(p) => out.rules.extend(p.rules_for(user, namespace)),
                Mode::Node(_) => {
                    if node::node_name(user).is_some() {
                        out.incomplete = true;
                        errors.push(
                            "node authorizer does not support user rule resolution".to_string(),
                        );
                    }
                }
                Mode::Rbac(r) => {
                    let (rules, errs) = r.rules_for(user, namespace);
                    out.rules.extend(rules);
                    if !errs.is_empty() {
                        out.incomplete = true;
                        errors.extend(errs);
                    }
                }
            }
        }
        out.evaluation_error = match errors.len() {
            0 => String::new(),
            1 => errors.remove(0),
            _ => format!("[{}]", errors.join(", ")),
        };
        out
    }
}

/// kube's `union.unionAuthzHandler`: the first Allow or Deny decides with its own reason only;
/// if none decides, the non-empty reasons of all are joined one per line.
fn union(decisions: impl IntoIterator<Item = (Decision, String)>) -> (Decision, String) {
    let mut reasons: Vec<String> = Vec::new();
    for (d, reason) in decisions {
        match d {
            Decision::Allow | Decision::Deny => return (d, reason),
            Decision::NoOpinion => {
                if !reason.is_empty() {
                    reasons.push(reason);
                }
            }
        }
    }
    (Decision::NoOpinion, reasons.join("\n"))
}

/// `forbiddenMessage` of `responsewriters/errors.go`.
pub fn forbidden_message(a: &Attributes) -> String {
    if !a.resource_request {
        return format!("User {:?} cannot {} path {:?}", a.user.name, a.verb, a.path);
    }
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    if !a.namespace.is_empty() {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
            a.user.name, a.verb, resource, a.api_group, a.namespace
        )
    } else {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
            a.user.name, a.verb, resource, a.api_group
        )
    }
}

/// The 403 `Status` of a denied request, byte for byte as kube-apiserver writes it
/// (`responsewriters.Forbidden` → `apierrors.NewForbidden`): `details` is always present, `{}`
/// for non-resource requests.
pub fn forbidden_body(a: &Attributes, reason: &str) -> Value {
    let mut err = forbidden_message(a);
    if !reason.is_empty() {
        err = format!("{err}: {reason}");
    }
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {err}")
    } else if a.name.is_empty() {
        format!("{qualified} is forbidden: {err}")
    } else {
        format!("{qualified} {:?} is forbidden: {err}", a.name)
    };
    let mut details = Map::new();
    if !a.name.is_empty() {
        details.insert("name".into(), json!(a.name));
    }
    if !a.api_group.is_empty() {
        details.insert("group".into(), json!(a.api_group));
    }
    if !a.resource.is_empty() {
        details.insert("kind".into(), json!(a.resource));
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    })
}

pub fn forbidden_response(a: &Attributes, reason: &str) -> Resp {
    let body = serde_json::to_vec(&forbidden_body(a, reason)).expect("JSON serializes");
    let mut r = json_response(403, body);
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, group: &str, res: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            user: UserInfo::new("bob", &[]),
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: res.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn rule(verbs: &[&str], groups: &[&str], res: &[&str], names: &[&str]) -> Rule {
        let s = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Rule {
            verbs: s(verbs),
            api_groups: s(groups),
            resources: s(res),
            resource_names: s(names),
            non_resource_urls: vec![],
        }
    }

    #[test]
    fn rule_matching() {
        let r = rule(&["get"], &[""], &["pods"], &[]);
        assert!(r.allows(&attrs("get", "", "pods", "", "ns", "p")));
        assert!(!r.allows(&attrs("list", "", "pods", "", "ns", "")));
        assert!(!r.allows(&attrs("get", "apps", "pods", "", "ns", "p")));
        assert!(!r.allows(&attrs("get", "", "pods", "log", "ns", "p")));
        let r = rule(&["*"], &["*"], &["*/status"], &[]);
        assert!(r.allows(&attrs("update", "apps", "deployments", "status", "", "d")));
        assert!(!r.allows(&attrs("update", "apps", "deployments", "", "", "d")));
        let r = rule(&["get", "update"], &[""], &["configmaps"], &["only"]);
        assert!(r.allows(&attrs("get", "", "configmaps", "", "ns", "only")));
        assert!(!r.allows(&attrs("get", "", "configmaps", "", "ns", "other")));
        assert!(!r.allows(&attrs("list", "", "configmaps", "", "ns", "")));
        let nr = Rule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/apis/*".into(), "/healthz".into()],
            ..Default::default()
        };
        let mut a = Attributes {
            verb: "get".into(),
            path: "/apis/apps/v1".into(),
            ..Default::default()
        };
        assert!(nr.allows(&a));
        a.path = "/healthz".into();
        assert!(nr.allows(&a));
        a.path = "/healthz/etcd".into();
        assert!(!nr.allows(&a));
    }

    #[test]
    fn forbidden_bodies() {
        let b = forbidden_body(&attrs("get", "", "pods", "", "ns", "x"), "");
        assert_eq!(
            b.to_string(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"x\" is forbidden: User \"bob\" cannot get resource \"pods\" in API group \"\" in the namespace \"ns\"","reason":"Forbidden","details":{"name":"x","kind":"pods"},"code":403}"#
        );
        let b = forbidden_body(&attrs("list", "apps", "deployments", "", "", ""), "");
        assert_eq!(
            b["message"],
            "deployments.apps is forbidden: User \"bob\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
        );
        assert_eq!(
            b["details"],
            json!({"group": "apps", "kind": "deployments"})
        );
        let b = forbidden_body(&attrs("get", "", "pods", "log", "ns", "p"), "why");
        assert_eq!(
            b["message"],
            "pods \"p\" is forbidden: User \"bob\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"ns\": why"
        );
        let a = Attributes {
            user: UserInfo::new("bob", &[]),
            verb: "get".into(),
            path: "/x".into(),
            ..Default::default()
        };
        assert_eq!(
            forbidden_body(&a, "").to_string(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden: User \"bob\" cannot get path \"/x\"","reason":"Forbidden","details":{},"code":403}"#
        );
    }

    #[test]
    fn union_and_masters() {
        let deny = Authorizer::always(false);
        let mut a = attrs("get", "", "pods", "", "ns", "x");
        assert_eq!(
            deny.authorize(&a),
            (Decision::NoOpinion, "Everything is forbidden.".to_string())
        );
        a.user.groups.push(MASTERS_GROUP.into());
        assert_eq!(deny.authorize(&a).0, Decision::Allow);
        assert_eq!(
            Authorizer::always(true)
                .authorize(&attrs("get", "", "pods", "", "", ""))
                .0,
            Decision::Allow
        );
    }

    #[test]
    fn union_reasons_are_joined_by_newlines() {
        let abac = abac::Abac::parse(
            r#"{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":{"user":"alice","namespace":"*","resource":"*","apiGroup":"*"}}"#,
        )
        .unwrap();
        let z = Authorizer {
            modes: Arc::new(vec![Mode::AlwaysDeny, Mode::Abac(abac)]),
            rbac: None,
        };
        assert_eq!(
            z.authorize(&attrs("get", "", "pods", "", "ns", "x")),
            (
                Decision::NoOpinion,
                "Everything is forbidden.\nNo policy matched.".to_string()
            )
        );
        // The 403 carries the reasons as kube writes them.
        let a = attrs("get", "", "pods", "", "ns", "x");
        assert_eq!(
            forbidden_body(&a, &z.authorize(&a).1)["message"],
            "pods \"x\" is forbidden: User \"bob\" cannot get resource \"pods\" in API group \"\" in the namespace \"ns\": Everything is forbidden.\nNo policy matched."
        );
        // An Allow after reasons were collected carries no reason.
        let mut alice = attrs("get", "", "pods", "", "ns", "x");
        alice.user = UserInfo::new("alice", &[]);
        assert_eq!(z.authorize(&alice), (Decision::Allow, String::new()));
    }

    #[test]
    fn union_decides_with_the_deciding_reason_only() {
        let no = |r: &str| (Decision::NoOpinion, r.to_string());
        // No authorizer kapi has denies outright, so the union is checked directly.
        assert_eq!(
            union([
                no("first"),
                (Decision::Deny, "denied here".into()),
                no("never")
            ]),
            (Decision::Deny, "denied here".to_string())
        );
        assert_eq!(
            union([no("first"), (Decision::Allow, "allowed here".into())]),
            (Decision::Allow, "allowed here".to_string())
        );
        assert_eq!(
            union([no("a"), no(""), no("b"), no("c")]),
            (Decision::NoOpinion, "a\nb\nc".to_string())
        );
        assert_eq!(
            union([no(""), no("")]),
            (Decision::NoOpinion, String::new())
        );
        // The authorizers after the deciding one are not consulted.
        let mut consulted = 0;
        let decided = union(
            [(Decision::Deny, "stop"), (Decision::Allow, "late")]
                .into_iter()
                .map(|(d, r)| {
                    consulted += 1;
                    (d, r.to_string())
                }),
        );
        assert_eq!(decided.0, Decision::Deny);
        assert_eq!(consulted, 1);
    }
}
