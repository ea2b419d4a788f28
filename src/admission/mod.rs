//! Admission control: the plugin chain every write passes between decoding and storage.
//!
//! kube-apiserver's model (`k8s.io/apiserver/pkg/admission`): plugins run in one fixed order
//! ([`ALL_ORDERED_PLUGINS`]); the set that runs is the default-on set plus
//! `--enable-admission-plugins` minus `--disable-admission-plugins`. A plugin may mutate (it sees
//! the object and may change it), validate (it sees the final object and may only refuse), or
//! both. All mutating plugins run before any validating plugin.
//!
//! The entry point is [`Chain`]: built once from the flags ([`Chain::from_config`]), it runs
//! [`Chain::admit`] (both phases) or [`Chain::mutate`] and [`Chain::validate`] separately, which is
//! how kube-apiserver orders them around the strategy's own validation. Plugins read cluster state
//! through the small [`Lookup`] trait, implemented for [`Api`] (watch caches first, the store on a
//! miss) and by [`lookup::MemoryLookup`] for tests.

pub mod default_storage_class;
pub mod default_toleration_seconds;
pub mod limit_ranger;
pub mod lookup;
pub mod namespace_lifecycle;
pub mod node_restriction;
pub mod pod_security;
pub mod quantity;
pub mod resource_quota;
pub mod service_account;
pub mod webhook;

mod pod;

#[cfg(test)]
mod api_tests;

use crate::api::catalogue::ResourceInfo;
use crate::api::handlers::Api;
use crate::api::status::{ApiError, Details};
use crate::auth::authn::UserInfo;
use crate::config::Config;
use async_trait::async_trait;
pub use lookup::{Lookup, Stored};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::Arc;

/// kube-apiserver's `AllOrderedPlugins` (`pkg/kubeapiserver/options/plugins.go`): every plugin
/// name the flags accept, in the order plugins run.
pub const ALL_ORDERED_PLUGINS: &[&str] = &[
    "AlwaysAdmit",
    "NamespaceAutoProvision",
    "NamespaceLifecycle",
    "NamespaceExists",
    "LimitPodHardAntiAffinityTopology",
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "TaintNodesByCondition",
    "AlwaysPullImages",
    "ImagePolicyWebhook",
    "PodSecurity",
    "PodNodeSelector",
    "Priority",
    "DefaultTolerationSeconds",
    "PodTolerationRestriction",
    "EventRateLimit",
    "ExtendedResourceToleration",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "PodGroupProtection",
    "OwnerReferencesPermissionEnforcement",
    "PersistentVolumeClaimResize",
    "RuntimeClass",
    "CertificateApproval",
    "CertificateSigning",
    "ClusterTrustBundleAttest",
    "CertificateSubjectRestriction",
    "DefaultIngressClass",
    "DenyServiceExternalIPs",
    "PodTopologyLabels",
    "PodGroupWorkloadExists",
    "NodeDeclaredFeatureValidator",
    "JobValidation",
    "PodResizeValidator",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
    "AlwaysDeny",
];

/// kube-apiserver's default-on plugins (the complement of `DefaultOffAdmissionPlugins`).
pub const DEFAULT_ENABLED_PLUGINS: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "DefaultStorageClass",
    "PersistentVolumeClaimResize",
    "DefaultTolerationSeconds",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
    "StorageObjectInUseProtection",
    "PodGroupProtection",
    "Priority",
    "TaintNodesByCondition",
    "RuntimeClass",
    "CertificateApproval",
    "CertificateSigning",
    "ClusterTrustBundleAttest",
    "CertificateSubjectRestriction",
    "DefaultIngressClass",
    "PodSecurity",
    "PodTopologyLabels",
    "MutatingAdmissionPolicy",
    "ValidatingAdmissionPolicy",
    "PodGroupWorkloadExists",
    "NodeDeclaredFeatureValidator",
    "JobValidation",
    "PodResizeValidator",
];

/// The plugins kapi implements; other known names are accepted by the flags and skipped.
pub const IMPLEMENTED_PLUGINS: &[&str] = &[
    "AlwaysAdmit",
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "PodSecurity",
    "DefaultTolerationSeconds",
    "DefaultStorageClass",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
    "AlwaysDeny",
];

/// The operation being admitted (`admission.Operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The wire form: `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

impl Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The requesting user as admission sees it (`user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionUser {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl AdmissionUser {
    pub fn new(username: impl Into<String>, groups: &[&str]) -> Self {
        AdmissionUser {
            username: username.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    /// The `userInfo` of an AdmissionReview.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("username".into(), self.username.clone().into());
        if !self.uid.is_empty() {
            m.insert("uid".into(), self.uid.clone().into());
        }
        if !self.groups.is_empty() {
            m.insert("groups".into(), serde_json::json!(self.groups));
        }
        if !self.extra.is_empty() {
            m.insert("extra".into(), serde_json::json!(self.extra));
        }
        Value::Object(m)
    }
}

impl From<&UserInfo> for AdmissionUser {
    fn from(u: &UserInfo) -> Self {
        AdmissionUser {
            username: u.name.clone(),
            uid: u.uid.clone(),
            groups: u.groups.clone(),
            extra: u.extra.clone(),
        }
    }
}

/// One request as the admission chain sees it (`admission.Attributes`).
#[derive(Clone, Debug)]
pub struct Attributes {
    pub operation: Operation,
    /// The resource of the URL (for subresources, the parent resource: pods for pods/status).
    pub resource: &'static ResourceInfo,
    /// `""` for the main resource.
    pub subresource: String,
    /// `""` for cluster-scoped resources.
    pub namespace: String,
    /// The object name (on create: the object's name, possibly just generated).
    pub name: String,
    pub user: AdmissionUser,
    pub dry_run: bool,
    /// The stored object (update, delete).
    pub old_object: Option<Map<String, Value>>,
    /// The incoming object (create, update); mutating plugins edit it in place.
    pub object: Option<Map<String, Value>>,
    /// The request's CreateOptions/UpdateOptions/DeleteOptions, as JSON (sent to webhooks);
    /// `None` sends the defaults for the operation.
    pub options: Option<Value>,
}

impl Attributes {
    pub fn new(
        operation: Operation,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        user: AdmissionUser,
    ) -> Self {
        Attributes {
            operation,
            resource,
            subresource: String::new(),
            namespace: namespace.unwrap_or("").to_string(),
            name: name.to_string(),
            user,
            dry_run: false,
            old_object: None,
            object: None,
            options: None,
        }
    }

    pub fn with_object(mut self, obj: Map<String, Value>) -> Self {
        self.object = Some(obj);
        self
    }

    pub fn with_old_object(mut self, obj: Map<String, Value>) -> Self {
        self.old_object = Some(obj);
        self
    }

    pub fn with_subresource(mut self, sub: Option<&str>) -> Self {
        self.subresource = sub.unwrap_or("").to_string();
        self
    }

    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    pub fn with_options(mut self, options: Value) -> Self {
        self.options = Some(options);
        self
    }

    /// Whether this is `group`/`plural` (any subresource).
    pub fn is(&self, group: &str, plural: &str) -> bool {
        self.resource.group == group && self.resource.plural == plural
    }

    /// `group`/`plural` with no subresource.
    pub fn is_main(&self, group: &str, plural: &str) -> bool {
        self.is(group, plural) && self.subresource.is_empty()
    }

    /// (group, version, kind) of the objects in the request: the subresource's kind where it has
    /// its own (pods/binding is a Binding), else the resource's.
    pub fn kind(&self) -> (&'static str, &'static str, &'static str) {
        if !self.subresource.is_empty() {
            if let Some(s) = self.resource.subresource(&self.subresource) {
                return (s.group, s.version, s.kind);
            }
        }
        (
            self.resource.group,
            self.resource.version,
            self.resource.kind,
        )
    }

    /// The name admission errors show (`admission.extractResourceName`): the request's name, else
    /// the object's name or generateName, else `Unknown`.
    pub fn error_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        let meta = self
            .object
            .as_ref()
            .and_then(|o| o.get("metadata"))
            .and_then(Value::as_object);
        for k in ["name", "generateName"] {
            if let Some(v) = meta.and_then(|m| m.get(k)).and_then(Value::as_str) {
                if !v.is_empty() {
                    return v.to_string();
                }
            }
        }
        "Unknown".to_string()
    }
}

/// 403 `<resource> "<name>" is forbidden: <reason>` (`admission.NewForbidden`).
pub fn forbidden(attrs: &Attributes, reason: impl Display) -> ApiError {
    forbidden_named(attrs.resource, &attrs.error_name(), reason)
}

/// `apierrors.NewForbidden(qualifiedResource, name, err)`.
pub fn forbidden_named(res: &ResourceInfo, name: &str, reason: impl Display) -> ApiError {
    let message = if name.is_empty() {
        format!("{} is forbidden: {reason}", res.qualified())
    } else {
        format!("{} \"{name}\" is forbidden: {reason}", res.qualified())
    };
    let mut e = ApiError::new(403, "Forbidden", message);
    *e.details = Details {
        name: name.to_string(),
        group: res.group.to_string(),
        kind: res.plural.to_string(),
        ..Default::default()
    };
    e
}

/// A plugin that may change the object (`admission.MutationInterface`).
#[async_trait]
pub trait MutatingPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    async fn admit(
        &self,
        lookup: &dyn Lookup,
        attrs: &mut Attributes,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError>;
}

/// A plugin that may only accept or refuse (`admission.ValidationInterface`).
#[async_trait]
pub trait ValidatingPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    async fn validate(
        &self,
        lookup: &dyn Lookup,
        attrs: &Attributes,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError>;
}

/// Settings of individual plugins (kube-apiserver flags).
#[derive(Clone, Debug)]
pub struct PluginOptions {
    /// `--default-not-ready-toleration-seconds`.
    pub not_ready_toleration_seconds: i64,
    /// `--default-unreachable-toleration-seconds`.
    pub unreachable_toleration_seconds: i64,
}

impl Default for PluginOptions {
    fn default() -> Self {
        PluginOptions {
            not_ready_toleration_seconds: 300,
            unreachable_toleration_seconds: 300,
        }
    }
}

/// The configured admission chain.
#[derive(Clone, Default)]
pub struct Chain {
    mutating: Vec<Arc<dyn MutatingPlugin>>,
    validating: Vec<Arc<dyn ValidatingPlugin>>,
    enabled: Vec<&'static str>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// The plugins that will run: defaults + enable − disable, in kube-apiserver's order; unknown
/// names and names in both lists are errors (kube-apiserver's `AdmissionOptions.Validate`).
pub fn enabled_plugins(enable: &[String], disable: &[String]) -> Result<Vec<&'static str>, String> {
    let mut errs = Vec::new();
    for (flag, names) in [
        ("enable-admission-plugins", enable),
        ("disable-admission-plugins", disable),
    ] {
        for n in names {
            if !ALL_ORDERED_PLUGINS.contains(&n.as_str()) {
                errs.push(format!("{flag} plugin \"{n}\" is unknown"));
            }
        }
    }
    let mut both: Vec<&str> = enable
        .iter()
        .filter(|n| disable.contains(n))
        .map(String::as_str)
        .collect();
    both.sort();
    both.dedup();
    if !both.is_empty() {
        errs.push(format!(
            "[{}] in enable-admission-plugins and disable-admission-plugins overlapped",
            both.join(" ")
        ));
    }
    if !errs.is_empty() {
        return Err(errs.join(", "));
    }
    Ok(ALL_ORDERED_PLUGINS
        .iter()
        .copied()
        .filter(|p| {
            let on = DEFAULT_ENABLED_PLUGINS.contains(p) || enable.iter().any(|e| e == p);
            on && !disable.iter().any(|d| d == p)
        })
        .collect())
}

impl Chain {
    /// The chain `--enable-admission-plugins` / `--disable-admission-plugins` ask for.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Chain> {
        let opts = PluginOptions {
            not_ready_toleration_seconds: cfg.default_not_ready_toleration_seconds,
            unreachable_toleration_seconds: cfg.default_unreachable_toleration_seconds,
        };
        Chain::new(
            &cfg.enable_admission_plugins,
            &cfg.disable_admission_plugins,
            &opts,
        )
        .map_err(anyhow::Error::msg)
    }

    pub fn new(
        enable: &[String],
        disable: &[String],
        opts: &PluginOptions,
    ) -> Result<Chain, String> {
        let names = enabled_plugins(enable, disable)?;
        let mut chain = Chain::default();
        for name in names {
            match name {
                "AlwaysAdmit" => {}
                "NamespaceLifecycle" => chain
                    .push_mutating(Arc::new(namespace_lifecycle::NamespaceLifecycle::default())),
                "LimitRanger" => {
                    let p = Arc::new(limit_ranger::LimitRanger);
                    chain.push_mutating(p.clone());
                    chain.push_validating(p);
                }
                "ServiceAccount" => {
                    let p = Arc::new(service_account::ServiceAccount::default());
                    chain.push_mutating(p.clone());
                    chain.push_validating(p);
                }
                "NodeRestriction" => {
                    chain.push_mutating(Arc::new(node_restriction::NodeRestriction))
                }
                "PodSecurity" => chain.push_validating(Arc::new(pod_security::PodSecurity)),
                "DefaultTolerationSeconds" => chain.push_mutating(Arc::new(
                    default_toleration_seconds::DefaultTolerationSeconds {
                        not_ready_seconds: opts.not_ready_toleration_seconds,
                        unreachable_seconds: opts.unreachable_toleration_seconds,
                    },
                )),
                "DefaultStorageClass" => {
                    chain.push_mutating(Arc::new(default_storage_class::DefaultStorageClass))
                }
                "MutatingAdmissionWebhook" => {
                    chain.push_mutating(Arc::new(webhook::MutatingWebhook::default()))
                }
                "ValidatingAdmissionWebhook" => {
                    chain.push_validating(Arc::new(webhook::ValidatingWebhook::default()))
                }
                "ResourceQuota" => {
                    chain.push_validating(Arc::new(resource_quota::ResourceQuota::default()))
                }
                "AlwaysDeny" => chain.push_validating(Arc::new(AlwaysDeny)),
                other => {
                    if enable.iter().any(|e| e == other) {
                        tracing::warn!(
                            plugin = other,
                            "admission plugin is not implemented by kapi; skipped"
                        );
                    }
                    continue;
                }
            }
            chain.enabled.push(name);
        }
        Ok(chain)
    }

    /// A chain of exactly these plugins (tests, embedding).
    pub fn with_plugins(
        mutating: Vec<Arc<dyn MutatingPlugin>>,
        validating: Vec<Arc<dyn ValidatingPlugin>>,
    ) -> Chain {
        let mut enabled: Vec<&'static str> = mutating.iter().map(|p| p.name()).collect();
        for v in &validating {
            if !enabled.contains(&v.name()) {
                enabled.push(v.name());
            }
        }
        Chain {
            mutating,
            validating,
            enabled,
        }
    }

    fn push_mutating(&mut self, p: Arc<dyn MutatingPlugin>) {
        self.mutating.push(p);
    }

    fn push_validating(&mut self, p: Arc<dyn ValidatingPlugin>) {
        self.validating.push(p);
    }

    /// The plugins that run, in order.
    pub fn enabled(&self) -> &[&'static str] {
        &self.enabled
    }

    /// Both phases: mutating plugins, then validating plugins. Returns the warnings to send
    /// (`Warning: 299 - "<text>"` headers).
    pub async fn admit(&self, api: &Api, attrs: &mut Attributes) -> Result<Vec<String>, ApiError> {
        self.admit_with(api, attrs).await
    }

    /// [`Chain::admit`] with any [`Lookup`].
    pub async fn admit_with(
        &self,
        lookup: &dyn Lookup,
        attrs: &mut Attributes,
    ) -> Result<Vec<String>, ApiError> {
        let mut warnings = Vec::new();
        self.mutate_into(lookup, attrs, &mut warnings).await?;
        self.validate_into(lookup, attrs, &mut warnings).await?;
        Ok(warnings)
    }

    /// The mutating phase only.
    pub async fn mutate(
        &self,
        lookup: &dyn Lookup,
        attrs: &mut Attributes,
    ) -> Result<Vec<String>, ApiError> {
        let mut warnings = Vec::new();
        self.mutate_into(lookup, attrs, &mut warnings).await?;
        Ok(warnings)
    }

    /// The validating phase only.
    pub async fn validate(
        &self,
        lookup: &dyn Lookup,
        attrs: &Attributes,
    ) -> Result<Vec<String>, ApiError> {
        let mut warnings = Vec::new();
        self.validate_into(lookup, attrs, &mut warnings).await?;
        Ok(warnings)
    }

    async fn mutate_into(
        &self,
        lookup: &dyn Lookup,
        attrs: &mut Attributes,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        // kube-apiserver defaults a decoded pod (requests from limits) before admission; kapi
        // has no defaulting layer, and LimitRanger and ResourceQuota decide on that default.
        if attrs.is_main("", "pods")
            && matches!(attrs.operation, Operation::Create | Operation::Update)
        {
            if let Some(pod) = attrs.object.as_mut() {
                pod::default_requests_from_limits(pod);
            }
        }
        for p in &self.mutating {
            let started = std::time::Instant::now();
            let r = p.admit(lookup, attrs, warnings).await;
            record(p.name(), "admit", attrs, &r, started);
            r?;
        }
        Ok(())
    }

    async fn validate_into(
        &self,
        lookup: &dyn Lookup,
        attrs: &Attributes,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        for p in &self.validating {
            let started = std::time::Instant::now();
            let r = p.validate(lookup, attrs, warnings).await;
            record(p.name(), "validate", attrs, &r, started);
            r?;
        }
        Ok(())
    }
}

/// `apiserver_admission_controller_admission_duration_seconds`.
fn record(
    plugin: &'static str,
    kind: &'static str,
    attrs: &Attributes,
    r: &Result<(), ApiError>,
    started: std::time::Instant,
) {
    let rejected = if r.is_err() { "true" } else { "false" };
    metrics::histogram!(
        "apiserver_admission_controller_admission_duration_seconds",
        "name" => plugin,
        "operation" => attrs.operation.as_str(),
        "rejected" => rejected,
        "type" => kind,
    )
    .record(started.elapsed().as_secs_f64());
}

/// `AlwaysDeny`: refuses every write.
pub struct AlwaysDeny;

#[async_trait]
impl ValidatingPlugin for AlwaysDeny {
    fn name(&self) -> &'static str {
        "AlwaysDeny"
    }

    async fn validate(
        &self,
        _lookup: &dyn Lookup,
        attrs: &Attributes,
        _warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        Err(forbidden(
            attrs,
            "admission control is denying all modifications",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn default_set_and_order() {
        let names = enabled_plugins(&[], &[]).unwrap();
        assert_eq!(names.first(), Some(&"NamespaceLifecycle"));
        assert!(!names.contains(&"NodeRestriction"));
        let chain = Chain::new(&[], &[], &PluginOptions::default()).unwrap();
        assert_eq!(
            chain.enabled(),
            &[
                "NamespaceLifecycle",
                "LimitRanger",
                "ServiceAccount",
                "PodSecurity",
                "DefaultTolerationSeconds",
                "DefaultStorageClass",
                "MutatingAdmissionWebhook",
                "ValidatingAdmissionWebhook",
                "ResourceQuota",
            ]
        );
        let chain = Chain::new(
            &s(&["NodeRestriction", "AlwaysPullImages"]),
            &s(&["ResourceQuota", "PodSecurity"]),
            &PluginOptions::default(),
        )
        .unwrap();
        assert!(chain.enabled().contains(&"NodeRestriction"));
        assert!(!chain.enabled().contains(&"ResourceQuota"));
        assert!(!chain.enabled().contains(&"PodSecurity"));
        // NodeRestriction runs after ServiceAccount.
        let pos = |n| chain.enabled().iter().position(|x| *x == n).unwrap();
        assert!(pos("ServiceAccount") < pos("NodeRestriction"));
    }

    #[test]
    fn flag_errors() {
        let e = enabled_plugins(&s(&["Bogus"]), &[]).unwrap_err();
        assert_eq!(e, "enable-admission-plugins plugin \"Bogus\" is unknown");
        let e = enabled_plugins(&s(&["LimitRanger"]), &s(&["LimitRanger"])).unwrap_err();
        assert_eq!(
            e,
            "[LimitRanger] in enable-admission-plugins and disable-admission-plugins overlapped"
        );
    }

    #[tokio::test]
    async fn always_deny_message() {
        let pods = crate::api::catalogue::lookup("", "v1", "pods").unwrap();
        let chain = Chain::new(&s(&["AlwaysDeny"]), &[], &PluginOptions::default()).unwrap();
        let lookup = lookup::MemoryLookup::new();
        lookup.put_namespace("ns", None);
        let mut a = Attributes::new(
            Operation::Delete,
            pods,
            Some("ns"),
            "p",
            AdmissionUser::default(),
        );
        let e = chain.admit_with(&lookup, &mut a).await.unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: admission control is denying all modifications"
        );
    }
}
