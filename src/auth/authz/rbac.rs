//! RBAC over the watch caches: Roles, ClusterRoles, RoleBindings and ClusterRoleBindings are
//! never read from the store per request. An index (subject → granted rules, cluster-wide and
//! per namespace) is rebuilt when one of the four caches changes (detected by comparing the
//! caches' persistent maps by pointer), then every request is a few hash lookups.
//!
//! Aggregation is evaluated at index time: a ClusterRole with an `aggregationRule` grants the
//! union of the rules of the ClusterRoles its selectors match (transitively), whatever its own
//! `rules` say, so authorization never waits for the aggregation controller
//! (`controllers::bootstrap_rbac::run_aggregation`), which writes the same union back to the
//! object like kube-controller-manager's clusterrole-aggregation controller.

use super::{Attributes, Decision, Rule};
use crate::api::catalogue::{self, ResourceInfo};
use crate::api::handlers::Api;
use crate::auth::authn::serviceaccount::SA_PREFIX;
use crate::auth::authn::UserInfo;
use crate::cache::ObjectMap;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

pub const GROUP: &str = "rbac.authorization.k8s.io";

pub fn resource(plural: &str) -> &'static ResourceInfo {
    catalogue::lookup(GROUP, "v1", plural).expect("RBAC resources are served")
}

const PLURALS: [&str; 4] = [
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
];

#[derive(Clone)]
struct Grant {
    rules: Arc<Vec<Rule>>,
    /// The binding's role is missing: (`"clusterrole"` or `"role"`, name).
    missing: Option<Arc<(&'static str, String)>>,
}

impl Grant {
    /// The lookup error of a missing role. The authorizer's listers name the resource in the
    /// singular (`clusterrole.rbac.authorization.k8s.io "x" not found`); the RBAC registry's rule
    /// resolver reads through the REST storage, whose errors use the plural.
    fn error(&self, plural: bool) -> Option<String> {
        self.missing.as_ref().map(|m| {
            let s = if plural { "s" } else { "" };
            format!("{}{s}.{GROUP} {:?} not found", m.0, m.1)
        })
    }
}

#[derive(Default)]
struct Subjects {
    users: HashMap<String, Vec<Grant>>,
    groups: HashMap<String, Vec<Grant>>,
}

impl Subjects {
    fn for_user<'a>(&'a self, u: &'a UserInfo) -> impl Iterator<Item = &'a Grant> + 'a {
        self.users
            .get(&u.name)
            .into_iter()
            .flatten()
            .chain(u.groups.iter().filter_map(|g| self.groups.get(g)).flatten())
    }
}

#[derive(Default)]
struct Index {
    built_from: Option<[ObjectMap; 4]>,
    cluster: Subjects,
    namespaced: HashMap<String, Subjects>,
    /// Effective rules of every ClusterRole, and the rules of every (namespace, name) Role.
    cluster_roles: HashMap<String, Arc<Vec<Rule>>>,
    roles: HashMap<(String, String), Arc<Vec<Rule>>>,
}

/// A `metav1.LabelSelector` (matchLabels and matchExpressions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    match_labels: Vec<(String, String)>,
    exprs: Vec<(String, String, Vec<String>)>,
}

impl Selector {
    pub fn from_json(v: &Value) -> Selector {
        let mut s = Selector::default();
        if let Some(m) = v.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                s.match_labels
                    .push((k.clone(), v.as_str().unwrap_or("").to_string()));
            }
        }
        for e in v
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            s.exprs.push((
                e.get("key").and_then(Value::as_str).unwrap_or("").into(),
                e.get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
                super::strings(e.get("values")),
            ));
        }
        s
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.exprs.iter().all(|(k, op, vals)| match op.as_str() {
                "In" => labels.get(k).is_some_and(|v| vals.contains(v)),
                "NotIn" => labels.get(k).is_none_or(|v| !vals.contains(v)),
                "Exists" => labels.contains_key(k),
                "DoesNotExist" => !labels.contains_key(k),
                _ => false,
            })
    }
}

/// A ClusterRole as aggregation sees it.
#[derive(Clone, Debug, Default)]
pub struct ClusterRoleInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
    /// `aggregationRule.clusterRoleSelectors`, when the role aggregates.
    pub aggregation: Option<Vec<Selector>>,
}

impl ClusterRoleInfo {
    pub fn from_map(obj: &Map<String, Value>) -> Self {
        let meta = obj.get("metadata");
        let labels = meta
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        ClusterRoleInfo {
            name: meta
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            labels,
            rules: rules_of(obj),
            aggregation: obj.get("aggregationRule").map(|ar| {
                ar.get("clusterRoleSelectors")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(Selector::from_json).collect())
                    .unwrap_or_default()
            }),
        }
    }
}

pub fn rules_of(obj: &Map<String, Value>) -> Vec<Rule> {
    obj.get("rules")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Rule::from_json).collect())
        .unwrap_or_default()
}

/// Effective rules of every ClusterRole: aggregated roles get the de-duplicated union of the
/// effective rules of the roles their selectors match (in name order), transitively.
pub fn effective_rules(roles: &[ClusterRoleInfo]) -> HashMap<String, Arc<Vec<Rule>>> {
    let mut sorted: Vec<&ClusterRoleInfo> = roles.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let by_name: HashMap<&str, &ClusterRoleInfo> =
        sorted.iter().map(|r| (r.name.as_str(), *r)).collect();
    let mut memo: HashMap<String, Arc<Vec<Rule>>> = HashMap::new();

    fn resolve(
        name: &str,
        sorted: &[&ClusterRoleInfo],
        by_name: &HashMap<&str, &ClusterRoleInfo>,
        memo: &mut HashMap<String, Arc<Vec<Rule>>>,
        visiting: &mut HashSet<String>,
    ) -> Arc<Vec<Rule>> {
        if let Some(r) = memo.get(name) {
            return r.clone();
        }
        let role = by_name[name];
        let Some(selectors) = &role.aggregation else {
            let r = Arc::new(role.rules.clone());
            memo.insert(name.to_string(), r.clone());
            return r;
        };
        if !visiting.insert(name.to_string()) {
            // A cycle: use what the object says.
            return Arc::new(role.rules.clone());
        }
        let mut out: Vec<Rule> = Vec::new();
        let mut seen: HashSet<Rule> = HashSet::new();
        for other in sorted {
            if other.name == role.name || !selectors.iter().any(|s| s.matches(&other.labels)) {
                continue;
            }
            for rule in resolve(&other.name, sorted, by_name, memo, visiting).iter() {
                if seen.insert(rule.clone()) {
                    out.push(rule.clone());
                }
            }
        }
        visiting.remove(name);
        let r = Arc::new(out);
        memo.insert(name.to_string(), r.clone());
        r
    }

    for r in &sorted {
        let mut visiting = HashSet::new();
        resolve(&r.name, &sorted, &by_name, &mut memo, &mut visiting);
    }
    memo
}

fn subjects_of(obj: &Map<String, Value>) -> Vec<(String, String, String)> {
    obj.get("subjects")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| {
                    let f = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    (f("kind"), f("name"), f("namespace"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn add_subjects(target: &mut Subjects, obj: &Map<String, Value>, binding_ns: &str, grant: &Grant) {
    for (kind, name, ns) in subjects_of(obj) {
        match kind.as_str() {
            "User" => target.users.entry(name).or_default().push(grant.clone()),
            "Group" => target.groups.entry(name).or_default().push(grant.clone()),
            "ServiceAccount" => {
                let ns = if ns.is_empty() {
                    binding_ns
                } else {
                    ns.as_str()
                };
                if !ns.is_empty() && !name.is_empty() {
                    target
                        .users
                        .entry(format!("{SA_PREFIX}{ns}:{name}"))
                        .or_default()
                        .push(grant.clone());
                }
            }
            _ => {}
        }
    }
}

fn role_ref(obj: &Map<String, Value>) -> (String, String) {
    let r = obj.get("roleRef");
    let f = |k: &str| {
        r.and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (f("kind"), f("name"))
}

fn build(maps: [ObjectMap; 4]) -> Index {
    let [roles, rolebindings, clusterroles, clusterrolebindings] = &maps;
    let cr_infos: Vec<ClusterRoleInfo> = clusterroles
        .values()
        .map(|o| ClusterRoleInfo::from_map(&o.to_map()))
        .collect();
    let effective = effective_rules(&cr_infos);
    let role_rules: HashMap<(String, String), Arc<Vec<Rule>>> = roles
        .values()
        .map(|o| {
            (
                (o.namespace().to_string(), o.name().to_string()),
                Arc::new(rules_of(&o.to_map())),
            )
        })
        .collect();
    let cluster_grant = |name: &str| match effective.get(name) {
        Some(r) => Grant {
            rules: r.clone(),
            missing: None,
        },
        None => Grant {
            rules: Arc::new(Vec::new()),
            missing: Some(Arc::new(("clusterrole", name.to_string()))),
        },
    };
    let mut idx = Index::default();
    for o in clusterrolebindings.values() {
        let obj = o.to_map();
        let (kind, name) = role_ref(&obj);
        if kind != "ClusterRole" {
            continue;
        }
        add_subjects(&mut idx.cluster, &obj, "", &cluster_grant(&name));
    }
    for o in rolebindings.values() {
        let obj = o.to_map();
        let ns = o.namespace().to_string();
        let (kind, name) = role_ref(&obj);
        let grant = match kind.as_str() {
            "ClusterRole" => cluster_grant(&name),
            "Role" => match role_rules.get(&(ns.clone(), name.clone())) {
                Some(r) => Grant {
                    rules: r.clone(),
                    missing: None,
                },
                None => Grant {
                    rules: Arc::new(Vec::new()),
                    missing: Some(Arc::new(("role", name))),
                },
            },
            _ => continue,
        };
        let target = idx.namespaced.entry(ns.clone()).or_default();
        add_subjects(target, &obj, &ns, &grant);
    }
    idx.built_from = Some(maps);
    idx.cluster_roles = effective;
    idx.roles = role_rules;
    idx
}

/// The RBAC authorizer.
pub struct Rbac {
    api: Arc<Api>,
    index: RwLock<Arc<Index>>,
    rebuild: Mutex<()>,
}

impl Rbac {
    pub fn new(api: Arc<Api>) -> Self {
        Rbac {
            api,
            index: RwLock::new(Arc::new(Index::default())),
            rebuild: Mutex::new(()),
        }
    }

    fn snapshots(&self) -> [ObjectMap; 4] {
        PLURALS.map(|p| self.api.caches.get(resource(p)).snapshot().objects)
    }

    fn current(&self) -> Arc<Index> {
        let fresh = |idx: &Index, maps: &[ObjectMap; 4]| {
            idx.built_from
                .as_ref()
                .is_some_and(|b| b.iter().zip(maps.iter()).all(|(a, b)| a.ptr_eq(b)))
        };
        let maps = self.snapshots();
        {
            let idx = self.index.read().expect("rbac index lock");
            if fresh(&idx, &maps) {
                return idx.clone();
            }
        }
        let _guard = self.rebuild.lock().expect("rbac rebuild lock");
        let maps = self.snapshots();
        {
            let idx = self.index.read().expect("rbac index lock");
            if fresh(&idx, &maps) {
                return idx.clone();
            }
        }
        let idx = Arc::new(build(maps));
        *self.index.write().expect("rbac index lock") = idx.clone();
        idx
    }

    pub fn authorize(&self, a: &Attributes) -> (Decision, String) {
        let idx = self.current();
        let mut errors: Vec<String> = Vec::new();
        let scopes = std::iter::once(&idx.cluster).chain(
            (!a.namespace.is_empty())
                .then(|| idx.namespaced.get(&a.namespace))
                .flatten(),
        );
        for subjects in scopes {
            for g in subjects.for_user(&a.user) {
                if let Some(e) = g.error(false) {
                    if !errors.contains(&e) {
                        errors.push(e);
                    }
                } else if g.rules.iter().any(|r| r.allows(a)) {
                    return (Decision::Allow, String::new());
                }
            }
        }
        let reason = match errors.len() {
            0 => String::new(),
            1 => format!("RBAC: {}", errors[0]),
            _ => format!("RBAC: [{}]", errors.join(", ")),
        };
        (Decision::NoOpinion, reason)
    }

    /// Rules granted to `user` cluster-wide and in `namespace`, plus missing-role errors.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<Rule>, Vec<String>) {
        self.resolve(user, namespace, false)
    }

    /// [`Self::rules_for`] as the RBAC registry's rule resolver answers it (escalation checks):
    /// missing roles are reported with the REST storage's plural resource names.
    pub fn registry_rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<Rule>, Vec<String>) {
        self.resolve(user, namespace, true)
    }

    /// The effective rules of a ClusterRole (`namespace` None) or a Role, when the cache has it.
    pub fn role_rules(&self, namespace: Option<&str>, name: &str) -> Option<Arc<Vec<Rule>>> {
        let idx = self.current();
        match namespace {
            None => idx.cluster_roles.get(name).cloned(),
            Some(ns) => idx.roles.get(&(ns.to_string(), name.to_string())).cloned(),
        }
    }

    fn resolve(&self, user: &UserInfo, namespace: &str, plural: bool) -> (Vec<Rule>, Vec<String>) {
        let idx = self.current();
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        let scopes = std::iter::once(&idx.cluster).chain(
            (!namespace.is_empty())
                .then(|| idx.namespaced.get(namespace))
                .flatten(),
        );
        for subjects in scopes {
            for g in subjects.for_user(user) {
                if let Some(e) = g.error(plural) {
                    errors.push(e);
                }
                rules.extend(g.rules.iter().cloned());
            }
        }
        (rules, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cr(v: Value) -> ClusterRoleInfo {
        ClusterRoleInfo::from_map(v.as_object().unwrap())
    }

    #[test]
    fn aggregation_is_transitive_and_ordered() {
        let roles = vec![
            cr(
                json!({"metadata": {"name": "admin"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg-admin": "true"}}]}}),
            ),
            cr(
                json!({"metadata": {"name": "edit", "labels": {"agg-admin": "true"}}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg-edit": "true"}}]}}),
            ),
            cr(
                json!({"metadata": {"name": "x-edit", "labels": {"agg-edit": "true"}}, "rules": [{"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}]}),
            ),
            cr(
                json!({"metadata": {"name": "x-admin", "labels": {"agg-admin": "true"}}, "rules": [{"verbs": ["*"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"]}, {"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}]}),
            ),
            cr(
                json!({"metadata": {"name": "other", "labels": {"agg-edit": "false"}}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]}),
            ),
        ];
        let eff = effective_rules(&roles);
        assert_eq!(eff["edit"].len(), 1);
        // edit's pods rule, then x-admin's roles rule; the duplicate pods rule appears once.
        assert_eq!(eff["admin"].len(), 2);
        assert_eq!(eff["admin"][0].resources, vec!["pods"]);
        assert_eq!(eff["other"].len(), 1);
    }

    #[test]
    fn selectors() {
        let s = Selector::from_json(
            &json!({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "In", "values": ["x", "y"]}, {"key": "c", "operator": "DoesNotExist"}]}),
        );
        let l = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(s.matches(&l(&[("a", "1"), ("b", "y")])));
        assert!(!s.matches(&l(&[("a", "1"), ("b", "z")])));
        assert!(!s.matches(&l(&[("a", "1"), ("b", "x"), ("c", "")])));
        assert!(Selector::default().matches(&l(&[])));
    }
}
