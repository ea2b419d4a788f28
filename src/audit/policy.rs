//! The `audit.k8s.io/v1` `Policy` (`--audit-policy-file`) and its evaluation, as kube-apiserver's
//! `apiserver/pkg/audit/policy/checker.go`: the first rule that matches a request decides its
//! level; no match means `None`. Stages listed in the policy's `omitStages` and in the rule's are
//! not emitted.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// How much of a request is recorded, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// The points in a request's life at which an event is emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    fn bit(self) -> u8 {
        match self {
            Stage::RequestReceived => 1,
            Stage::ResponseStarted => 2,
            Stage::ResponseComplete => 4,
            Stage::Panic => 8,
        }
    }
}

/// A set of stages (as bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stages(u8);

impl Stages {
    pub fn of(stages: &[Stage]) -> Self {
        Stages(stages.iter().fold(0, |acc, s| acc | s.bit()))
    }
    pub fn contains(self, s: Stage) -> bool {
        self.0 & s.bit() != 0
    }
    pub fn union(self, other: Stages) -> Stages {
        Stages(self.0 | other.0)
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupResources {
    /// The API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// Resources in the group: `*`, `pods`, `pods/log`, `*/status`, `pods/*`. Empty means all.
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    pub level: Level,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyFile {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    rules: Vec<PolicyRule>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: bool,
}

/// What the policy decides for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub level: Level,
    pub omit_stages: Stages,
    pub omit_managed_fields: bool,
}

/// The request attributes a rule matches on.
#[derive(Clone, Debug, Default)]
pub struct Attributes<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub verb: &'a str,
    pub resource_request: bool,
    pub namespace: &'a str,
    pub api_group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub name: &'a str,
    pub path: &'a str,
}

#[derive(Clone, Debug)]
pub struct Policy {
    rules: Vec<PolicyRule>,
    omit_stages: Stages,
    omit_managed_fields: bool,
}

impl Policy {
    pub fn load(path: &Path) -> anyhow::Result<Policy> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("failed to read audit policy file {path:?}: {e}"))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("audit policy file {path:?}: {e}"))
    }

    pub fn parse(text: &str) -> anyhow::Result<Policy> {
        let file: PolicyFile = serde_norway::from_str(text)?;
        let _ = &file.metadata;
        match (file.api_version.as_deref(), file.kind.as_deref()) {
            (Some("audit.k8s.io/v1"), Some("Policy")) => {}
            (v, k) => anyhow::bail!(
                "expected apiVersion audit.k8s.io/v1 and kind Policy, got {:?} {:?}",
                v.unwrap_or(""),
                k.unwrap_or("")
            ),
        }
        if file.rules.is_empty() {
            anyhow::bail!("loaded illegal policy with 0 rules");
        }
        for (i, r) in file.rules.iter().enumerate() {
            validate_rule(r).map_err(|e| anyhow::anyhow!("rules[{i}].{e}"))?;
        }
        Ok(Policy {
            omit_stages: Stages::of(&file.omit_stages),
            omit_managed_fields: file.omit_managed_fields,
            rules: file.rules,
        })
    }

    /// The first matching rule's level and stages to omit (level None without a match).
    pub fn evaluate(&self, a: &Attributes) -> Decision {
        for r in &self.rules {
            if rule_matches(r, a) {
                return Decision {
                    level: r.level,
                    omit_stages: self.omit_stages.union(Stages::of(&r.omit_stages)),
                    omit_managed_fields: r.omit_managed_fields.unwrap_or(self.omit_managed_fields),
                };
            }
        }
        Decision {
            level: Level::None,
            omit_stages: self.omit_stages,
            omit_managed_fields: self.omit_managed_fields,
        }
    }
}

fn validate_rule(r: &PolicyRule) -> anyhow::Result<()> {
    for (i, url) in r.non_resource_urls.iter().enumerate() {
        if url == "*" {
            continue;
        }
        if !url.starts_with('/') {
            anyhow::bail!("nonResourceURLs[{i}]: Invalid value: {url:?}: non-resource URL rules must begin with a '/' character");
        }
        if url[..url.len() - 1].contains('*') {
            anyhow::bail!("nonResourceURLs[{i}]: Invalid value: {url:?}: non-resource URL wildcards '*' must be the final character of the rule");
        }
    }
    for gr in &r.resources {
        if !gr.group.is_empty() && (gr.group.contains('/') || gr.group.to_lowercase() != gr.group) {
            anyhow::bail!("resources.group: Invalid value: {:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'", gr.group);
        }
        if !gr.resource_names.is_empty() && gr.resources.is_empty() {
            anyhow::bail!("resources.resourceNames: Invalid value: {:?}: using resourceNames requires at least one resource", gr.resource_names);
        }
    }
    if !r.non_resource_urls.is_empty() && (!r.resources.is_empty() || !r.namespaces.is_empty()) {
        anyhow::bail!("nonResourceURLs: Invalid value: {:?}: rules cannot apply to both regular resources and non-resource URLs", r.non_resource_urls);
    }
    Ok(())
}

fn has(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

fn rule_matches(r: &PolicyRule, a: &Attributes) -> bool {
    if !r.users.is_empty() && !has(&r.users, a.user) {
        return false;
    }
    if !r.user_groups.is_empty() && !a.groups.iter().any(|g| has(&r.user_groups, g)) {
        return false;
    }
    if !r.verbs.is_empty() && !has(&r.verbs, a.verb) {
        return false;
    }
    if !r.namespaces.is_empty() || !r.resources.is_empty() {
        return rule_matches_resource(r, a);
    }
    if !r.non_resource_urls.is_empty() {
        return !a.resource_request
            && r.non_resource_urls
                .iter()
                .any(|spec| path_matches(a.path, spec));
    }
    true
}

fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || spec
            .strip_suffix('*')
            .is_some_and(|p| path.starts_with(p.trim_end_matches('*')))
}

fn rule_matches_resource(r: &PolicyRule, a: &Attributes) -> bool {
    if !a.resource_request {
        return false;
    }
    // Cluster-scoped resources have the empty namespace.
    if !r.namespaces.is_empty() && !has(&r.namespaces, a.namespace) {
        return false;
    }
    if r.resources.is_empty() {
        return true;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    for gr in &r.resources {
        if gr.group != a.api_group {
            continue;
        }
        if gr.resources.is_empty() {
            return true;
        }
        if !gr.resource_names.is_empty() && !has(&gr.resource_names, a.name) {
            continue;
        }
        for res in &gr.resources {
            if *res == combined || res == "*" {
                return true;
            }
            if !a.subresource.is_empty() && res.strip_prefix("*/") == Some(a.subresource) {
                return true;
            }
            if res.strip_suffix("/*") == Some(a.resource) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
      - group: ""
        resources: ["endpoints", "services"]
  - level: None
    userGroups: ["system:nodes"]
    verbs: ["get"]
    resources:
      - group: ""
        resources: ["nodes"]
  - level: None
    nonResourceURLs: ["/healthz*", "/version"]
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets", "configmaps"]
  - level: Request
    resources:
      - group: ""
        resources: ["pods/log", "*/status"]
  - level: RequestResponse
    omitStages: ["ResponseStarted"]
    resources:
      - group: "apps"
        resources: ["deployments/*"]
  - level: Request
    namespaces: ["kube-system"]
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["pods"]
        resourceNames: ["special"]
  - level: Metadata
    omitManagedFields: true
"#;

    fn res<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        sub: &'a str,
        ns: &'a str,
        name: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            user: "alice",
            verb,
            resource_request: true,
            namespace: ns,
            api_group: group,
            resource,
            subresource: sub,
            name,
            ..Default::default()
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let p = Policy::parse(POLICY).unwrap();
        let level = |a: &Attributes| p.evaluate(a).level;
        // Users + verbs + resources.
        let mut a = res("watch", "", "endpoints", "", "default", "");
        a.user = "system:kube-proxy";
        assert_eq!(level(&a), Level::None);
        a.verb = "list";
        assert_eq!(level(&a), Level::Metadata, "falls through to the catch-all");
        // userGroups.
        let groups = vec!["system:nodes".to_string()];
        let mut a = res("get", "", "nodes", "", "", "n1");
        a.groups = &groups;
        assert_eq!(level(&a), Level::None);
        a.groups = &[];
        assert_eq!(level(&a), Level::Metadata);
        // nonResourceURLs with a trailing wildcard; never matched by resource requests.
        let nr = |path| Attributes {
            user: "bob",
            verb: "get",
            path,
            ..Default::default()
        };
        assert_eq!(level(&nr("/healthz")), Level::None);
        assert_eq!(level(&nr("/healthz/etcd")), Level::None);
        assert_eq!(level(&nr("/version")), Level::None);
        assert_eq!(level(&nr("/versions")), Level::Metadata);
        // Plain resources, subresources, `*/status`, `deployments/*`.
        assert_eq!(
            level(&res("get", "", "secrets", "", "default", "s")),
            Level::Metadata
        );
        assert_eq!(
            level(&res("get", "", "pods", "log", "default", "p")),
            Level::Request
        );
        assert_eq!(
            level(&res("update", "", "pods", "status", "default", "p")),
            Level::Request
        );
        // `*/status` is in the core group only; apps falls through to `deployments/*`.
        assert_eq!(
            level(&res(
                "update",
                "apps",
                "deployments",
                "status",
                "default",
                "d"
            )),
            Level::RequestResponse
        );
        assert_eq!(
            level(&res(
                "update",
                "apps",
                "deployments",
                "scale",
                "default",
                "d"
            )),
            Level::RequestResponse
        );
        // As in kube-apiserver, `deployments/*` also matches the resource itself.
        assert_eq!(
            level(&res("get", "apps", "deployments", "", "default", "d")),
            Level::RequestResponse
        );
        // Namespaces.
        assert_eq!(
            level(&res("get", "", "pods", "", "kube-system", "p")),
            Level::Request
        );
        // resourceNames.
        assert_eq!(
            level(&res("get", "", "pods", "", "default", "special")),
            Level::RequestResponse
        );
        assert_eq!(
            level(&res("get", "", "pods", "", "default", "other")),
            Level::Metadata
        );
    }

    #[test]
    fn omit_stages_and_managed_fields() {
        let p = Policy::parse(POLICY).unwrap();
        let d = p.evaluate(&res(
            "update",
            "apps",
            "deployments",
            "scale",
            "default",
            "d",
        ));
        assert!(
            d.omit_stages.contains(Stage::RequestReceived),
            "policy-level"
        );
        assert!(d.omit_stages.contains(Stage::ResponseStarted), "rule-level");
        assert!(!d.omit_stages.contains(Stage::ResponseComplete));
        assert!(!d.omit_managed_fields);
        let d = p.evaluate(&res("get", "", "pods", "", "default", "other"));
        assert!(d.omit_managed_fields);
    }

    #[test]
    fn no_match_is_none() {
        let p = Policy::parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  verbs: [create]\n").unwrap();
        assert_eq!(
            p.evaluate(&res("get", "", "pods", "", "default", "p"))
                .level,
            Level::None
        );
        assert_eq!(
            p.evaluate(&res("create", "", "pods", "", "default", ""))
                .level,
            Level::Metadata
        );
    }

    #[test]
    fn invalid_policies() {
        let bad = |yaml: &str, want: &str| {
            let err = Policy::parse(yaml).expect_err("should fail").to_string();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        };
        let head = "apiVersion: audit.k8s.io/v1\nkind: Policy\n";
        bad(
            "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]\n",
            "expected apiVersion",
        );
        bad(&format!("{head}rules: []\n"), "0 rules");
        bad(
            &format!("{head}rules: [{{level: Verbose}}]\n"),
            "unknown variant",
        );
        bad(
            &format!("{head}rules: [{{level: None, omitStages: [Later]}}]\n"),
            "unknown variant",
        );
        bad(
            &format!("{head}rules: [{{level: None, nonResourceURLs: [healthz]}}]\n"),
            "must begin with a '/'",
        );
        bad(
            &format!("{head}rules: [{{level: None, nonResourceURLs: ['/a*b']}}]\n"),
            "final character",
        );
        bad(
            &format!("{head}rules: [{{level: None, nonResourceURLs: ['/a'], namespaces: [x]}}]\n"),
            "both",
        );
        bad(
            &format!(
                "{head}rules: [{{level: None, resources: [{{group: '', resourceNames: [x]}}]}}]\n"
            ),
            "requires at least one resource",
        );
        bad(
            &format!("{head}rules: [{{level: None, usernames: [x]}}]\n"),
            "unknown field",
        );
    }
}
