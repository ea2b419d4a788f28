//! The resource catalogue: every served resource described as data, so one generic handler,
//! one cache type and discovery can serve them all.

use std::collections::HashMap;
use std::sync::OnceLock;

/// How object names are validated (API-SEMANTICS §4 "Name validation").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain: the default.
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// DNS-1035 label (services).
    Label1035,
    /// Only the path-segment rule (RBAC objects).
    PathSegment,
}

/// A field usable in `fieldSelector`, beyond metadata.name/metadata.namespace.
#[derive(Clone, Copy, Debug)]
pub struct SelectableField {
    pub name: &'static str,
    /// JSON path inside the object.
    pub path: &'static [&'static str],
    /// Value used when the object lacks the field (the server-side default).
    pub default: &'static str,
}

/// A resource served as a view of another one's storage (kube-apiserver's cohabiting resources):
/// objects are stored as `storage_kind` and converted on the way in and out.
#[derive(Debug)]
pub struct Conversion {
    pub storage_api_version: &'static str,
    pub storage_kind: &'static str,
    /// Group and plural of the resource that owns the storage (and the store watch).
    pub storage_resource: (&'static str, &'static str),
    pub to_storage: fn(&mut serde_json::Map<String, serde_json::Value>),
    pub from_storage: fn(&mut serde_json::Map<String, serde_json::Value>),
}

#[derive(Debug)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    /// Plural, lowercase resource name as in URLs.
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Key segment below `--etcd-prefix` (kube-apiserver's layout, API-SEMANTICS §1).
    pub storage_prefix: &'static str,
    /// Extra selectable fields (metadata.name and metadata.namespace are always selectable).
    pub fields: &'static [SelectableField],
    pub status_subresource: bool,
    /// The strategy sets generation=1 on create and bumps it when the spec changes.
    pub generation: bool,
    pub names: NameRule,
    /// DELETE answers with the deleted object rather than a Success Status.
    pub return_deleted_object: bool,
    /// PUT to a missing name creates it (AllowCreateOnUpdate).
    pub create_on_update: bool,
    /// Set for views of another resource's storage.
    pub conversion: Option<&'static Conversion>,
    /// Verbs served, when not the usual set (discovery): the create-only review resources.
    pub verbs: Option<&'static [&'static str]>,
}

/// A subresource served under a resource (`pods/status`, `deployments/scale`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    /// The kind it answers with: (group, version, kind).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Sorted.
    pub verbs: &'static [&'static str],
}

const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// `deployments.apps`, or `pods` for the core group (used in error messages).
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
    /// The subresources kapi serves for this resource, in discovery order.
    pub fn subresources(&self) -> Vec<Subresource> {
        let own = |name, verbs| Subresource {
            name,
            group: self.group,
            version: self.version,
            kind: self.kind,
            verbs,
        };
        let mut out = Vec::new();
        match (self.group, self.plural) {
            ("", "pods") => {
                out.push(Subresource {
                    name: "binding",
                    group: "",
                    version: "v1",
                    kind: "Binding",
                    verbs: &["create"],
                });
                out.push(own("ephemeralcontainers", GET_PATCH_UPDATE));
                out.push(Subresource {
                    name: "eviction",
                    group: "policy",
                    version: "v1",
                    kind: "Eviction",
                    verbs: &["create"],
                });
            }
            ("", "namespaces") => out.push(own("finalize", &["update"])),
            ("", "serviceaccounts") if crate::api::handlers::token_request::enabled() => {
                out.push(Subresource {
                    name: "token",
                    group: "authentication.k8s.io",
                    version: "v1",
                    kind: "TokenRequest",
                    verbs: &["create"],
                });
            }
            ("apps", "deployments" | "replicasets" | "statefulsets")
            | ("", "replicationcontrollers") => {
                out.push(Subresource {
                    name: "scale",
                    group: "autoscaling",
                    version: "v1",
                    kind: "Scale",
                    verbs: GET_PATCH_UPDATE,
                });
            }
            _ => {}
        }
        if self.status_subresource {
            out.push(own("status", GET_PATCH_UPDATE));
        }
        out
    }

    pub fn subresource(&self, name: &str) -> Option<Subresource> {
        self.subresources().into_iter().find(|s| s.name == name)
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
    pub fn field(&self, name: &str) -> Option<&'static SelectableField> {
        let name = if name == "spec.host" && self.plural == "pods" {
            "spec.nodeName"
        } else {
            name
        };
        self.fields.iter().find(|f| f.name == name)
    }
}

const fn f(
    name: &'static str,
    path: &'static [&'static str],
    default: &'static str,
) -> SelectableField {
    SelectableField {
        name,
        path,
        default,
    }
}

const POD_FIELDS: &[SelectableField] = &[
    f("spec.nodeName", &["spec", "nodeName"], ""),
    f("spec.restartPolicy", &["spec", "restartPolicy"], "Always"),
    f(
        "spec.schedulerName",
        &["spec", "schedulerName"],
        "default-scheduler",
    ),
    f(
        "spec.serviceAccountName",
        &["spec", "serviceAccountName"],
        "default",
    ),
    f("spec.hostNetwork", &["spec", "hostNetwork"], "false"),
    f("status.phase", &["status", "phase"], "Pending"),
    f("status.podIP", &["status", "podIP"], ""),
    f(
        "status.nominatedNodeName",
        &["status", "nominatedNodeName"],
        "",
    ),
];
const NODE_FIELDS: &[SelectableField] =
    &[f("spec.unschedulable", &["spec", "unschedulable"], "false")];
const NAMESPACE_FIELDS: &[SelectableField] = &[f("status.phase", &["status", "phase"], "Active")];
const SECRET_FIELDS: &[SelectableField] = &[f("type", &["type"], "Opaque")];
const SERVICE_FIELDS: &[SelectableField] = &[
    f("spec.clusterIP", &["spec", "clusterIP"], ""),
    f("spec.type", &["spec", "type"], "ClusterIP"),
];
const RC_FIELDS: &[SelectableField] = &[f("status.replicas", &["status", "replicas"], "0")];
const EVENT_FIELDS: &[SelectableField] = &[
    f("involvedObject.kind", &["involvedObject", "kind"], ""),
    f(
        "involvedObject.namespace",
        &["involvedObject", "namespace"],
        "",
    ),
    f("involvedObject.name", &["involvedObject", "name"], ""),
    f("involvedObject.uid", &["involvedObject", "uid"], ""),
    f(
        "involvedObject.apiVersion",
        &["involvedObject", "apiVersion"],
        "",
    ),
    f(
        "involvedObject.resourceVersion",
        &["involvedObject", "resourceVersion"],
        "",
    ),
    f(
        "involvedObject.fieldPath",
        &["involvedObject", "fieldPath"],
        "",
    ),
    f("reason", &["reason"], ""),
    f("reportingComponent", &["reportingComponent"], ""),
    f("source", &["source", "component"], ""),
    f("type", &["type"], ""),
];

const EVENTS_V1_FIELDS: &[SelectableField] = &[
    f("involvedObject.kind", &["regarding", "kind"], ""),
    f("involvedObject.namespace", &["regarding", "namespace"], ""),
    f("involvedObject.name", &["regarding", "name"], ""),
    f("involvedObject.uid", &["regarding", "uid"], ""),
    f(
        "involvedObject.apiVersion",
        &["regarding", "apiVersion"],
        "",
    ),
    f(
        "involvedObject.resourceVersion",
        &["regarding", "resourceVersion"],
        "",
    ),
    f("involvedObject.fieldPath", &["regarding", "fieldPath"], ""),
    f("reason", &["reason"], ""),
    f("reportingComponent", &["reportingController"], ""),
    f("source", &["deprecatedSource", "component"], ""),
    f("type", &["type"], ""),
];

/// events.k8s.io/v1 field name ⇄ core/v1 Event field name.
const EVENTS_V1_RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

fn rename_fields(obj: &mut serde_json::Map<String, serde_json::Value>, to_core: bool) {
    for (view, core) in EVENTS_V1_RENAMES {
        let (from, to) = if to_core { (view, core) } else { (core, view) };
        if let Some(v) = obj.remove(*from) {
            obj.insert(to.to_string(), v);
        }
    }
}

static EVENTS_V1_CONVERSION: Conversion = Conversion {
    storage_api_version: "v1",
    storage_kind: "Event",
    storage_resource: ("", "events"),
    to_storage: |o| rename_fields(o, true),
    from_storage: |o| rename_fields(o, false),
};

#[allow(clippy::too_many_arguments)]
const fn r(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    storage_prefix: &'static str,
    status_subresource: bool,
    generation: bool,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version: "v1",
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        categories: &[],
        storage_prefix,
        fields: &[],
        status_subresource,
        generation,
        names: NameRule::Subdomain,
        return_deleted_object: false,
        create_on_update: false,
        conversion: None,
        verbs: None,
    }
}

const ALL: &[&str] = &["all"];
const API_EXTENSIONS: &[&str] = &["api-extensions"];

fn build() -> Vec<ResourceInfo> {
    use NameRule::*;
    let mut v = vec![
        ResourceInfo {
            names: Label,
            fields: NAMESPACE_FIELDS,
            ..r(
                "",
                "namespaces",
                "namespace",
                "Namespace",
                false,
                &["ns"],
                "namespaces",
                true,
                false,
            )
        },
        ResourceInfo {
            fields: POD_FIELDS,
            categories: ALL,
            return_deleted_object: true,
            ..r("", "pods", "pod", "Pod", true, &["po"], "pods", true, true)
        },
        ResourceInfo {
            names: Label1035,
            fields: SERVICE_FIELDS,
            categories: ALL,
            create_on_update: true,
            ..r(
                "",
                "services",
                "service",
                "Service",
                true,
                &["svc"],
                "services/specs",
                true,
                false,
            )
        },
        ResourceInfo {
            create_on_update: true,
            ..r(
                "",
                "endpoints",
                "endpoints",
                "Endpoints",
                true,
                &["ep"],
                "services/endpoints",
                false,
                false,
            )
        },
        r(
            "",
            "configmaps",
            "configmap",
            "ConfigMap",
            true,
            &["cm"],
            "configmaps",
            false,
            false,
        ),
        ResourceInfo {
            fields: SECRET_FIELDS,
            ..r(
                "",
                "secrets",
                "secret",
                "Secret",
                true,
                &[],
                "secrets",
                false,
                false,
            )
        },
        ResourceInfo {
            return_deleted_object: true,
            ..r(
                "",
                "serviceaccounts",
                "serviceaccount",
                "ServiceAccount",
                true,
                &["sa"],
                "serviceaccounts",
                false,
                false,
            )
        },
        ResourceInfo {
            fields: NODE_FIELDS,
            create_on_update: true,
            ..r(
                "",
                "nodes",
                "node",
                "Node",
                false,
                &["no"],
                "minions",
                true,
                false,
            )
        },
        ResourceInfo {
            fields: EVENT_FIELDS,
            create_on_update: true,
            ..r(
                "",
                "events",
                "event",
                "Event",
                true,
                &["ev"],
                "events",
                false,
                false,
            )
        },
        r(
            "",
            "persistentvolumes",
            "persistentvolume",
            "PersistentVolume",
            false,
            &["pv"],
            "persistentvolumes",
            true,
            false,
        ),
        r(
            "",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            "persistentvolumeclaims",
            true,
            false,
        ),
        ResourceInfo {
            fields: RC_FIELDS,
            categories: ALL,
            ..r(
                "",
                "replicationcontrollers",
                "replicationcontroller",
                "ReplicationController",
                true,
                &["rc"],
                "controllers",
                true,
                true,
            )
        },
        ResourceInfo {
            create_on_update: true,
            ..r(
                "",
                "limitranges",
                "limitrange",
                "LimitRange",
                true,
                &["limits"],
                "limitranges",
                false,
                false,
            )
        },
        r(
            "",
            "resourcequotas",
            "resourcequota",
            "ResourceQuota",
            true,
            &["quota"],
            "resourcequotas",
            true,
            false,
        ),
        ResourceInfo {
            categories: ALL,
            ..r(
                "apps",
                "deployments",
                "deployment",
                "Deployment",
                true,
                &["deploy"],
                "deployments",
                true,
                true,
            )
        },
        ResourceInfo {
            categories: ALL,
            ..r(
                "apps",
                "replicasets",
                "replicaset",
                "ReplicaSet",
                true,
                &["rs"],
                "replicasets",
                true,
                true,
            )
        },
        ResourceInfo {
            categories: ALL,
            ..r(
                "apps",
                "statefulsets",
                "statefulset",
                "StatefulSet",
                true,
                &["sts"],
                "statefulsets",
                true,
                true,
            )
        },
        ResourceInfo {
            categories: ALL,
            ..r(
                "apps",
                "daemonsets",
                "daemonset",
                "DaemonSet",
                true,
                &["ds"],
                "daemonsets",
                true,
                true,
            )
        },
        r(
            "apps",
            "controllerrevisions",
            "controllerrevision",
            "ControllerRevision",
            true,
            &[],
            "controllerrevisions",
            false,
            false,
        ),
        ResourceInfo {
            categories: ALL,
            ..r("batch", "jobs", "job", "Job", true, &[], "jobs", true, true)
        },
        ResourceInfo {
            categories: ALL,
            ..r(
                "batch",
                "cronjobs",
                "cronjob",
                "CronJob",
                true,
                &["cj"],
                "cronjobs",
                true,
                true,
            )
        },
        r(
            "coordination.k8s.io",
            "leases",
            "lease",
            "Lease",
            true,
            &[],
            "leases",
            false,
            false,
        ),
        ResourceInfo {
            names: PathSegment,
            ..r(
                "rbac.authorization.k8s.io",
                "roles",
                "role",
                "Role",
                true,
                &[],
                "roles",
                false,
                false,
            )
        },
        ResourceInfo {
            names: PathSegment,
            ..r(
                "rbac.authorization.k8s.io",
                "rolebindings",
                "rolebinding",
                "RoleBinding",
                true,
                &[],
                "rolebindings",
                false,
                false,
            )
        },
        ResourceInfo {
            names: PathSegment,
            ..r(
                "rbac.authorization.k8s.io",
                "clusterroles",
                "clusterrole",
                "ClusterRole",
                false,
                &[],
                "clusterroles",
                false,
                false,
            )
        },
        ResourceInfo {
            names: PathSegment,
            ..r(
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                "clusterrolebinding",
                "ClusterRoleBinding",
                false,
                &[],
                "clusterrolebindings",
                false,
                false,
            )
        },
        ResourceInfo {
            fields: EVENTS_V1_FIELDS,
            conversion: Some(&EVENTS_V1_CONVERSION),
            ..r(
                "events.k8s.io",
                "events",
                "event",
                "Event",
                true,
                &["ev"],
                "events",
                false,
                false,
            )
        },
        r(
            "discovery.k8s.io",
            "endpointslices",
            "endpointslice",
            "EndpointSlice",
            true,
            &[],
            "endpointslices",
            false,
            false,
        ),
        r(
            "networking.k8s.io",
            "ingresses",
            "ingress",
            "Ingress",
            true,
            &["ing"],
            "ingress",
            true,
            true,
        ),
        r(
            "networking.k8s.io",
            "networkpolicies",
            "networkpolicy",
            "NetworkPolicy",
            true,
            &["netpol"],
            "networkpolicies",
            false,
            true,
        ),
        r(
            "networking.k8s.io",
            "ingressclasses",
            "ingressclass",
            "IngressClass",
            false,
            &[],
            "ingressclasses",
            false,
            false,
        ),
        r(
            "policy",
            "poddisruptionbudgets",
            "poddisruptionbudget",
            "PodDisruptionBudget",
            true,
            &["pdb"],
            "poddisruptionbudgets",
            true,
            true,
        ),
        ResourceInfo {
            return_deleted_object: true,
            ..r(
                "storage.k8s.io",
                "storageclasses",
                "storageclass",
                "StorageClass",
                false,
                &["sc"],
                "storageclasses",
                false,
                false,
            )
        },
        ResourceInfo {
            return_deleted_object: true,
            ..r(
                "scheduling.k8s.io",
                "priorityclasses",
                "priorityclass",
                "PriorityClass",
                false,
                &["pc"],
                "priorityclasses",
                false,
                false,
            )
        },
        // Admission webhook configurations (read by src/admission/webhook).
        ResourceInfo {
            categories: API_EXTENSIONS,
            ..r(
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
                "mutatingwebhookconfiguration",
                "MutatingWebhookConfiguration",
                false,
                &[],
                "mutatingwebhookconfigurations",
                false,
                true,
            )
        },
        ResourceInfo {
            categories: API_EXTENSIONS,
            ..r(
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                "validatingwebhookconfiguration",
                "ValidatingWebhookConfiguration",
                false,
                &[],
                "validatingwebhookconfigurations",
                false,
                true,
            )
        },
    ];
    v.shrink_to_fit();
    v
}

/// All served resources, in discovery order.
pub fn all() -> &'static [ResourceInfo] {
    static CATALOGUE: OnceLock<Vec<ResourceInfo>> = OnceLock::new();
    CATALOGUE.get_or_init(build)
}

const CREATE_ONLY: &[&str] = &["create"];

/// The review APIs (`authorization.k8s.io/v1` and `authentication.k8s.io/v1`): create-only, never
/// stored, so they have no cache, no storage and no OpenAPI paths, and are not in [`all`].
/// Discovery lists them; `auth::review` serves them.
pub fn review_resources() -> &'static [ResourceInfo] {
    static REVIEWS: OnceLock<Vec<ResourceInfo>> = OnceLock::new();
    REVIEWS.get_or_init(|| {
        let review = |(group, plural, kind, namespaced): (_, &'static str, _, _)| ResourceInfo {
            verbs: Some(CREATE_ONLY),
            ..r(
                group,
                plural,
                &plural[..plural.len() - 1],
                kind,
                namespaced,
                &[],
                plural,
                false,
                false,
            )
        };
        const AUTHN: &str = "authentication.k8s.io";
        const AUTHZ: &str = "authorization.k8s.io";
        [
            (AUTHN, "selfsubjectreviews", "SelfSubjectReview", false),
            (AUTHN, "tokenreviews", "TokenReview", false),
            (
                AUTHZ,
                "localsubjectaccessreviews",
                "LocalSubjectAccessReview",
                true,
            ),
            (
                AUTHZ,
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
                false,
            ),
            (
                AUTHZ,
                "selfsubjectrulesreviews",
                "SelfSubjectRulesReview",
                false,
            ),
            (AUTHZ, "subjectaccessreviews", "SubjectAccessReview", false),
        ]
        .into_iter()
        .map(review)
        .collect()
    })
}

/// A review resource by (group, version, plural).
pub fn lookup_review(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    review_resources()
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Group/versions discovery lists: the stored ones, then the review groups.
pub fn discovery_group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out = group_versions();
    for r in review_resources() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Looks a resource up by (group, version, plural).
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    static INDEX: OnceLock<HashMap<(String, String, String), usize>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        all()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    (
                        r.group.to_string(),
                        r.version.to_string(),
                        r.plural.to_string(),
                    ),
                    i,
                )
            })
            .collect()
    });
    index
        .get(&(group.to_string(), version.to_string(), plural.to_string()))
        .map(|&i| &all()[i])
}

/// Group/versions served, in discovery order: ("" , "v1") first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in all() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_every_resource_and_prefixes_are_unique() {
        let mut prefixes = std::collections::HashSet::new();
        for r in all() {
            assert!(std::ptr::eq(
                lookup(r.group, r.version, r.plural).unwrap(),
                r
            ));
            if r.conversion.is_none() && !r.storage_prefix.is_empty() {
                assert!(
                    prefixes.insert(r.storage_prefix),
                    "duplicate prefix {}",
                    r.storage_prefix
                );
            }
        }
        assert_eq!(
            lookup("apps", "v1", "deployments").unwrap().qualified(),
            "deployments.apps"
        );
        assert_eq!(lookup("", "v1", "nodes").unwrap().storage_prefix, "minions");
        assert!(lookup("apps", "v1", "pods").is_none());
    }
}
