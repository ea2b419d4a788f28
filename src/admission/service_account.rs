//! `ServiceAccount` (`plugin/pkg/admission/serviceaccount`), on pod creation:
//! - `spec.serviceAccountName` defaults to `default`, and the account must exist (403
//!   `error looking up service account <ns>/<name>: serviceaccount "<name>" not found`; the
//!   `default` account is retried for a while since a controller creates it);
//! - unless `automountServiceAccountToken` is false (the pod's setting wins over the account's),
//!   a projected volume `kube-api-access-<5 random>` (a 3607 s bound token, `ca.crt` from the
//!   `kube-root-ca.crt` ConfigMap, the namespace from the downward API) is added and mounted
//!   read-only at `/var/run/secrets/kubernetes.io/serviceaccount` in every (init) container that
//!   has nothing mounted there;
//! - the account's `imagePullSecrets` are copied to a pod that has none;
//! - mirror pods (`kubernetes.io/config.mirror`) may reference no service account, secret or
//!   token projection, and accounts annotated `kubernetes.io/enforce-mountable-secrets: "true"`
//!   limit the secrets a pod may use.

use super::pod::{annotation, arr_mut, get, obj_mut};
use super::{forbidden, Attributes, Lookup, MutatingPlugin, Operation, ValidatingPlugin};
use crate::api::catalogue;
use crate::api::status::ApiError;
use crate::object::validation::generate_name;
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
pub const VOLUME_PREFIX: &str = "kube-api-access";
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";
pub const ENFORCE_MOUNTABLE_SECRETS: &str = "kubernetes.io/enforce-mountable-secrets";
/// `serviceaccount.WarnOnlyBoundTokenExpirationSeconds`: one hour and seven seconds.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

pub struct ServiceAccount {
    /// Live lookups of a missing `default` account before giving up (kube-apiserver: 10).
    pub default_account_attempts: usize,
    /// Pause between those lookups (kube-apiserver: a random 100–200 ms).
    pub retry_interval: Duration,
}

impl Default for ServiceAccount {
    fn default() -> Self {
        ServiceAccount {
            default_account_attempts: 10,
            retry_interval: Duration::from_millis(100 + rand::random::<u64>() % 100),
        }
    }
}

/// The projected volume source of the service-account token (`TokenVolumeSource`), with the
/// `defaultMode` kube-apiserver's defaulting adds.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ],
            "defaultMode": 420
        }
    })
}

fn applies(attrs: &Attributes) -> bool {
    attrs.operation == Operation::Create && attrs.is_main("", "pods") && attrs.object.is_some()
}

fn is_mirror(pod: &Map<String, Value>) -> bool {
    annotation(pod, MIRROR_POD_ANNOTATION).is_some()
}

fn sa_name(pod: &Map<String, Value>) -> &str {
    pod.get("spec")
        .and_then(|s| s.get("serviceAccountName"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Every secret name a pod spec references (`podutil.VisitPodSecretNames`).
pub fn pod_secret_names(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |v: Option<&Value>| {
        if let Some(n) = v.and_then(Value::as_str) {
            if !n.is_empty() {
                out.push(n.to_string());
            }
        }
    };
    for s in spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push(s.get("name"));
    }
    for c in super::pod::all_containers(spec) {
        for e in c
            .get("envFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            push(get(e, &["secretRef", "name"]));
        }
        for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
            push(get(e, &["valueFrom", "secretKeyRef", "name"]));
        }
    }
    for v in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push(get(v, &["secret", "secretName"]));
        for src in get(v, &["projected", "sources"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            push(get(src, &["secret", "name"]));
        }
        push(get(v, &["azureFile", "secretName"]));
        for t in [
            "cephfs",
            "cinder",
            "flexVolume",
            "rbd",
            "scaleIO",
            "storageos",
            "iscsi",
        ] {
            push(get(v, &[t, "secretRef", "name"]));
        }
        push(get(v, &["csi", "nodePublishSecretRef", "name"]));
    }
    out
}

impl ServiceAccount {
    async fn get_account(
        &self,
        lookup: &dyn Lookup,
        attrs: &Attributes,
        name: &str,
    ) -> Result<Map<String, Value>, ApiError> {
        let res =
            catalogue::lookup("", "v1", "serviceaccounts").expect("serviceaccounts are served");
        let ns = attrs.namespace.as_str();
        let lookup_err = |detail: String| {
            forbidden(
                attrs,
                format!("error looking up service account {ns}/{name}: {detail}"),
            )
        };
        if let Some(sa) = lookup
            .get(res, Some(ns), name)
            .await
            .map_err(|e| lookup_err(e.message))?
        {
            return Ok(sa.object);
        }
        let attempts = if name == DEFAULT_SERVICE_ACCOUNT {
            self.default_account_attempts.max(1)
        } else {
            1
        };
        for i in 0..attempts {
            if i > 0 {
                tokio::time::sleep(self.retry_interval).await;
            }
            if let Some(sa) = lookup
                .get_live(res, Some(ns), name)
                .await
                .map_err(|e| lookup_err(e.message))?
            {
                return Ok(sa.object);
            }
        }
        Err(lookup_err(format!("serviceaccount \"{name}\" not found")))
    }

    fn mount_token(pod: &mut Map<String, Value>) {
        let spec = obj_mut(pod, "spec");
        let existing = spec
            .get("volumes")
            .and_then(Value::as_array)
            .and_then(|vs| {
                vs.iter()
                    .map(super::pod::name_of)
                    .find(|n| n.starts_with(&format!("{VOLUME_PREFIX}-")))
                    .map(str::to_string)
            });
        let volume_name = existing
            .clone()
            .unwrap_or_else(|| generate_name(&format!("{VOLUME_PREFIX}-")));
        let mount = json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        let mut needs_volume = false;
        for key in ["initContainers", "containers"] {
            let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) else {
                continue;
            };
            for c in list.iter_mut().filter_map(Value::as_object_mut) {
                let mounts = arr_mut(c, "volumeMounts");
                let has = mounts
                    .iter()
                    .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH));
                if !has {
                    mounts.push(mount.clone());
                    needs_volume = true;
                }
            }
        }
        if existing.is_none() && needs_volume {
            arr_mut(spec, "volumes").push(token_volume(&volume_name));
        }
    }

    fn limit_secret_references(sa: &Map<String, Value>, pod: &Value) -> Option<String> {
        let sa_v = Value::Object(sa.clone());
        let sa_name = get(&sa_v, &["metadata", "name"])
            .and_then(Value::as_str)
            .unwrap_or("");
        let names = |k: &str| -> Vec<String> {
            sa_v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mountable = names("secrets");
        let pull = names("imagePullSecrets");
        let spec = pod.get("spec").cloned().unwrap_or_default();
        for v in spec
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(s) = get(v, &["secret", "secretName"]).and_then(Value::as_str) {
                if !mountable.iter().any(|m| m == s) {
                    return Some(format!("volume with secret.secretName=\"{s}\" is not allowed because service account {sa_name} does not reference that secret"));
                }
            }
        }
        for (key, label) in [
            ("initContainers", "init container"),
            ("containers", "container"),
        ] {
            for c in spec
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(s) =
                        get(e, &["valueFrom", "secretKeyRef", "name"]).and_then(Value::as_str)
                    {
                        if !mountable.iter().any(|m| m == s) {
                            return Some(format!(
                                "{label} {} with envVar {} referencing secret.secretName=\"{s}\" is not allowed because service account {sa_name} does not reference that secret",
                                super::pod::name_of(c),
                                super::pod::name_of(e)
                            ));
                        }
                    }
                }
            }
        }
        for (i, p) in spec
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let n = super::pod::name_of(p);
            if !pull.iter().any(|x| x == n) {
                return Some(format!("imagePullSecrets[{i}].name=\"{n}\" is not allowed because service account {sa_name} does not reference that imagePullSecret"));
            }
        }
        None
    }

    async fn check(&self, lookup: &dyn Lookup, attrs: &Attributes) -> Result<(), ApiError> {
        let pod = attrs.object.as_ref().expect("checked by applies");
        let pod_v = Value::Object(pod.clone());
        if is_mirror(pod) {
            if !sa_name(pod).is_empty() {
                return Err(forbidden(
                    attrs,
                    "a mirror pod may not reference service accounts",
                ));
            }
            let spec = pod_v.get("spec").cloned().unwrap_or_default();
            if !pod_secret_names(&spec).is_empty() {
                return Err(forbidden(attrs, "a mirror pod may not reference secrets"));
            }
            for v in spec
                .get("volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let token = get(v, &["projected", "sources"])
                    .and_then(Value::as_array)
                    .is_some_and(|s| s.iter().any(|x| x.get("serviceAccountToken").is_some()));
                if token {
                    return Err(forbidden(
                        attrs,
                        "a mirror pod may not use ServiceAccountToken volume projections",
                    ));
                }
            }
            return Ok(());
        }
        let sa = self.get_account(lookup, attrs, sa_name(pod)).await?;
        let enforce = annotation(&sa, ENFORCE_MOUNTABLE_SECRETS)
            .is_some_and(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"));
        if enforce {
            if let Some(msg) = Self::limit_secret_references(&sa, &pod_v) {
                return Err(forbidden(attrs, msg));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MutatingPlugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn admit(
        &self,
        lookup: &dyn Lookup,
        attrs: &mut Attributes,
        _warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if !applies(attrs) {
            return Ok(());
        }
        if is_mirror(attrs.object.as_ref().expect("applies")) {
            return self.check(lookup, attrs).await;
        }
        {
            let pod = attrs.object.as_mut().expect("applies");
            let spec = obj_mut(pod, "spec");
            if spec
                .get("serviceAccountName")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                spec.insert("serviceAccountName".into(), DEFAULT_SERVICE_ACCOUNT.into());
            }
            // The v1 conversion mirrors serviceAccountName into the deprecated serviceAccount.
            let name = spec["serviceAccountName"].clone();
            spec.insert("serviceAccount".into(), name);
        }
        let name = sa_name(attrs.object.as_ref().expect("applies")).to_string();
        let sa = self.get_account(lookup, attrs, &name).await?;
        let pod = attrs.object.as_mut().expect("applies");
        let automount = pod
            .get("spec")
            .and_then(|s| s.get("automountServiceAccountToken"))
            .and_then(Value::as_bool)
            .or_else(|| {
                sa.get("automountServiceAccountToken")
                    .and_then(Value::as_bool)
            })
            .unwrap_or(true);
        if automount {
            Self::mount_token(pod);
        }
        let spec = obj_mut(pod, "spec");
        let has_pull = spec
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !has_pull {
            let from_sa: Vec<Value> = sa
                .get("imagePullSecrets")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|s| json!({"name": s.get("name").cloned().unwrap_or(Value::Null)}))
                        .collect()
                })
                .unwrap_or_default();
            if !from_sa.is_empty() {
                spec.insert("imagePullSecrets".into(), Value::Array(from_sa));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ValidatingPlugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn validate(
        &self,
        lookup: &dyn Lookup,
        attrs: &Attributes,
        _warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if !applies(attrs) {
            return Ok(());
        }
        self.check(lookup, attrs).await
    }
}

// ---- what kube-controller-manager provides for this plugin --------------------------------

const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Creates what is missing in every active namespace: the `default` ServiceAccount (the
/// serviceaccounts controller) and, given the cluster CA, the `kube-root-ca.crt` ConfigMap (the
/// root-ca-cert-publisher). Returns how many objects were created.
pub async fn ensure_defaults(
    api: &crate::api::handlers::Api,
    root_ca_pem: Option<&str>,
) -> Result<usize, ApiError> {
    use crate::object::codec;
    let namespaces = catalogue::lookup("", "v1", "namespaces").expect("namespaces are served");
    let sas = catalogue::lookup("", "v1", "serviceaccounts").expect("serviceaccounts are served");
    let cms = catalogue::lookup("", "v1", "configmaps").expect("configmaps are served");
    let mut created = 0;
    for ns in Lookup::list(api, namespaces, None).await? {
        let nsv = Value::Object(ns.object);
        let Some(name) = get(&nsv, &["metadata", "name"]).and_then(Value::as_str) else {
            continue;
        };
        if get(&nsv, &["status", "phase"]).and_then(Value::as_str) == Some("Terminating") {
            continue;
        }
        let meta = |n: &str| {
            json!({"name": n, "namespace": name, "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": crate::api::handlers::write::now_rfc3339()})
        };
        let mut wanted = vec![(
            sas,
            DEFAULT_SERVICE_ACCOUNT,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(DEFAULT_SERVICE_ACCOUNT)}),
        )];
        if let Some(pem) = root_ca_pem {
            let mut m = meta(ROOT_CA_CONFIGMAP);
            m["annotations"] = json!({"kubernetes.io/description": ROOT_CA_DESCRIPTION});
            wanted.push((
                cms,
                ROOT_CA_CONFIGMAP,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": {"ca.crt": pem}}),
            ));
        }
        for (res, obj_name, obj) in wanted {
            if Lookup::get(api, res, Some(name), obj_name).await?.is_some() {
                continue;
            }
            let key = api.key(res, Some(name), obj_name);
            let obj = obj.as_object().cloned().unwrap_or_default();
            match api.store.create(&key, codec::stored(res, &obj)).await {
                Ok(_) => created += 1,
                Err(crate::storage::StoreError::AlreadyExists) => {}
                Err(e) => return Err(crate::api::handlers::store_error(e, res, "create")),
            }
        }
    }
    Ok(created)
}

/// Runs [`ensure_defaults`] whenever namespaces change, and every `resync`.
pub fn spawn_controller(
    api: std::sync::Arc<crate::api::handlers::Api>,
    root_ca_pem: Option<String>,
    resync: Duration,
) -> tokio::task::JoinHandle<()> {
    let namespaces = catalogue::lookup("", "v1", "namespaces").expect("namespaces are served");
    let mut rx = api.caches.get(namespaces).subscribe_revision();
    tokio::spawn(async move {
        loop {
            if let Err(e) = ensure_defaults(&api, root_ca_pem.as_deref()).await {
                tracing::warn!(error = %e.message, "creating default service accounts failed");
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(resync) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::lookup::MemoryLookup;
    use crate::admission::AdmissionUser;

    fn plugin() -> ServiceAccount {
        ServiceAccount {
            default_account_attempts: 2,
            retry_interval: Duration::from_millis(1),
        }
    }

    fn sa(l: &MemoryLookup, name: &str, extra: Value) {
        let res = catalogue::lookup("", "v1", "serviceaccounts").unwrap();
        let mut o = json!({"metadata": {"name": name, "namespace": "ns"}});
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        l.put(res, o);
    }

    async fn run(l: &MemoryLookup, pod: Value) -> Result<Value, ApiError> {
        let res = catalogue::lookup("", "v1", "pods").unwrap();
        let mut a = Attributes::new(
            Operation::Create,
            res,
            Some("ns"),
            "p",
            AdmissionUser::default(),
        )
        .with_object(pod.as_object().unwrap().clone());
        let p = plugin();
        let mut w = Vec::new();
        MutatingPlugin::admit(&p, l, &mut a, &mut w).await?;
        ValidatingPlugin::validate(&p, l, &a, &mut w).await?;
        Ok(Value::Object(a.object.unwrap()))
    }

    #[tokio::test]
    async fn defaults_account_and_mounts_token() {
        let l = MemoryLookup::new();
        sa(
            &l,
            "default",
            json!({"imagePullSecrets": [{"name": "regcred"}]}),
        );
        let pod = json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "i", "image": "x"}],
            "containers": [{"name": "a", "image": "x"},
                {"name": "b", "image": "x", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]}]}});
        let out = run(&l, pod).await.unwrap();
        let spec = &out["spec"];
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        let vols = spec["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 1);
        let vname = vols[0]["name"].as_str().unwrap();
        assert!(
            vname.starts_with("kube-api-access-") && vname.len() == "kube-api-access-".len() + 5,
            "{vname}"
        );
        assert_eq!(vols[0], token_volume(vname));
        assert_eq!(
            vols[0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        let mount = json!({"name": vname, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(spec["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(spec["containers"][0]["volumeMounts"], json!([mount]));
        // A container with its own mount at the path keeps it.
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(spec["imagePullSecrets"], json!([{"name": "regcred"}]));
    }

    #[tokio::test]
    async fn automount_opt_out_and_missing_account() {
        let l = MemoryLookup::new();
        sa(&l, "quiet", json!({"automountServiceAccountToken": false}));
        let out = run(
            &l,
            json!({"spec": {"serviceAccountName": "quiet", "containers": [{"name": "c"}]}}),
        )
        .await
        .unwrap();
        assert!(out["spec"].get("volumes").is_none());
        // The pod's own setting wins over the account's.
        let out = run(
            &l,
            json!({"spec": {"serviceAccountName": "quiet", "automountServiceAccountToken": true,
            "containers": [{"name": "c"}]}}),
        )
        .await
        .unwrap();
        assert_eq!(out["spec"]["volumes"].as_array().unwrap().len(), 1);

        let e = run(
            &l,
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: error looking up service account ns/default: serviceaccount \"default\" not found"
        );
        assert_eq!(l.live_gets(), 2, "the default account is retried");
        let e = run(&l, json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c"}]}}))
            .await
            .unwrap_err();
        assert!(
            e.message
                .ends_with("ns/ghost: serviceaccount \"ghost\" not found"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn mirror_pods_and_mountable_secrets() {
        let l = MemoryLookup::new();
        let mirror = |spec: Value| json!({"metadata": {"name": "m", "annotations": {MIRROR_POD_ANNOTATION: "x"}}, "spec": spec});
        let out = run(&l, mirror(json!({"containers": [{"name": "c"}]})))
            .await
            .unwrap();
        assert!(
            out["spec"].get("serviceAccountName").is_none(),
            "mirror pods are not mutated"
        );
        let e = run(
            &l,
            mirror(json!({"serviceAccountName": "x", "containers": [{"name": "c"}]})),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: a mirror pod may not reference service accounts"
        );
        let e = run(
            &l,
            mirror(json!({"volumes": [{"name": "s", "secret": {"secretName": "s"}}]})),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: a mirror pod may not reference secrets"
        );

        sa(
            &l,
            "strict",
            json!({"metadata": {"name": "strict", "namespace": "ns",
            "annotations": {ENFORCE_MOUNTABLE_SECRETS: "true"}}, "secrets": [{"name": "ok"}]}),
        );
        run(&l, json!({"spec": {"serviceAccountName": "strict", "automountServiceAccountToken": false,
            "volumes": [{"name": "v", "secret": {"secretName": "ok"}}], "containers": [{"name": "c"}]}}))
            .await
            .unwrap();
        let e = run(&l, json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "strict",
            "automountServiceAccountToken": false,
            "volumes": [{"name": "v", "secret": {"secretName": "nope"}}], "containers": [{"name": "c"}]}}))
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: volume with secret.secretName=\"nope\" is not allowed because service account strict does not reference that secret"
        );
    }
}
