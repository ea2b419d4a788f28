//! ABAC (`--authorization-policy-file`): one JSON policy per line, kube's
//! `abac.authorization.kubernetes.io/v1beta1` `Policy` (v0 flat objects are accepted too).

use super::{Attributes, Decision, Rule};
use crate::auth::authn::UserInfo;
use anyhow::Context;
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Policy {
    user: String,
    group: String,
    readonly: bool,
    api_group: String,
    resource: String,
    namespace: String,
    non_resource_path: String,
}

pub struct Abac {
    policies: Vec<Policy>,
}

fn field(spec: &Value, k: &str) -> String {
    spec.get(k)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

impl Abac {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut policies = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let v: Value = serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
            let spec = v.get("spec").unwrap_or(&v);
            policies.push(Policy {
                user: field(spec, "user"),
                group: field(spec, "group"),
                readonly: spec
                    .get("readonly")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                api_group: field(spec, "apiGroup"),
                resource: field(spec, "resource"),
                namespace: field(spec, "namespace"),
                non_resource_path: field(spec, "nonResourcePath"),
            });
        }
        Ok(Abac { policies })
    }

    fn subject_matches(p: &Policy, u: &UserInfo) -> bool {
        let mut matched = false;
        if !p.user.is_empty() {
            if p.user == "*" || p.user == u.name {
                matched = true;
            } else {
                return false;
            }
        }
        if !p.group.is_empty() {
            if p.group == "*" || u.in_group(&p.group) {
                matched = true;
            } else {
                return false;
            }
        }
        matched
    }

    fn matches(p: &Policy, a: &Attributes) -> bool {
        if !Self::subject_matches(p, &a.user) {
            return false;
        }
        if p.readonly && !a.is_read_only() {
            return false;
        }
        let star = |x: &str, v: &str| x == "*" || x == v;
        if a.resource_request {
            star(&p.namespace, &a.namespace)
                && star(&p.resource, &a.resource)
                && star(&p.api_group, &a.api_group)
        } else {
            p.non_resource_path == "*"
                || p.non_resource_path == a.path
                || (p.non_resource_path.ends_with('*')
                    && a.path
                        .starts_with(&p.non_resource_path[..p.non_resource_path.len() - 1]))
        }
    }

    pub fn authorize(&self, a: &Attributes) -> (Decision, String) {
        if self.policies.iter().any(|p| Self::matches(p, a)) {
            (Decision::Allow, String::new())
        } else {
            (Decision::NoOpinion, "No policy matched.".into())
        }
    }

    pub fn rules_for(&self, u: &UserInfo, namespace: &str) -> Vec<Rule> {
        let mut out = Vec::new();
        for p in &self.policies {
            if !Self::subject_matches(p, u) {
                continue;
            }
            let verbs: &[&str] = if p.readonly {
                &["get", "list", "watch"]
            } else {
                &["*"]
            };
            if (p.namespace == "*" || p.namespace == namespace)
                && (!p.resource.is_empty() || !p.api_group.is_empty())
            {
                out.push(Rule::new(verbs, &[&p.api_group], &[&p.resource]));
            }
            if !p.non_resource_path.is_empty() {
                out.push(Rule::urls(verbs, &[&p.non_resource_path]));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let abac = Abac::parse(concat!(
            r#"{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":{"user":"alice","namespace":"*","resource":"*","apiGroup":"*"}}"#,
            "\n",
            r#"{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":{"group":"viewers","namespace":"projectCaribou","resource":"pods","apiGroup":"","readonly":true}}"#,
            "\n",
            r#"{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":{"user":"*","nonResourcePath":"/version*","readonly":true}}"#,
        ))
        .unwrap();
        let mk = |user: &str, groups: &[&str], verb: &str, ns: &str, res: &str| Attributes {
            user: UserInfo::new(user, groups),
            verb: verb.into(),
            resource_request: true,
            namespace: ns.into(),
            resource: res.into(),
            ..Default::default()
        };
        assert_eq!(
            abac.authorize(&mk("alice", &[], "delete", "x", "secrets"))
                .0,
            Decision::Allow
        );
        assert_eq!(
            abac.authorize(&mk("bob", &["viewers"], "get", "projectCaribou", "pods"))
                .0,
            Decision::Allow
        );
        assert_eq!(
            abac.authorize(&mk("bob", &["viewers"], "delete", "projectCaribou", "pods")),
            (Decision::NoOpinion, "No policy matched.".into())
        );
        let nr = Attributes {
            user: UserInfo::anonymous(),
            verb: "get".into(),
            path: "/version/x".into(),
            ..Default::default()
        };
        assert_eq!(abac.authorize(&nr).0, Decision::Allow);
    }
}
