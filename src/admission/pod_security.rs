//! `PodSecurity` (`k8s.io/pod-security-admission`): the Pod Security Standards, chosen per
//! namespace by the labels `pod-security.kubernetes.io/<mode>` (`privileged`, `baseline`,
//! `restricted`) and `pod-security.kubernetes.io/<mode>-version` (`latest` or `v1.N`), for the
//! modes `enforce` (violating pods are refused: `pods "x" is forbidden: violates PodSecurity
//! "restricted:latest": …`), `warn` (a `would violate PodSecurity …` warning) and `audit`
//! (kapi has no audit annotations yet, so audit is evaluated but not reported).
//!
//! Workloads with a pod template (deployments, jobs, …) are never refused: they get warnings
//! for the enforce and warn levels. Tightening a namespace's enforce label warns about the
//! existing pods that would violate it.
//!
//! The checks are those of the current policy versions (kapi evaluates every `v1.N` as
//! `latest`): baseline — host namespaces, privileged, non-default capabilities, hostPath
//! volumes, hostPorts, procMount, seccomp `Unconfined`, sysctls, AppArmor, SELinux, Windows
//! HostProcess; restricted — baseline plus volume types, allowPrivilegeEscalation,
//! runAsNonRoot, runAsUser=0, seccomp required, capabilities drop ALL.

use super::pod::{all_containers, get, join_quote, labels, pluralize, pod_spec_path};
use super::{forbidden, Attributes, Lookup, Operation, ValidatingPlugin};
use crate::api::catalogue;
use crate::api::status::ApiError;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level at a version, printed `restricted:latest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub version: String,
}

impl std::fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// One mode's policy from namespace labels; an invalid level or version is evaluated as
/// `restricted:latest`, the most restrictive policy.
fn policy(labels: &Map<String, Value>, mode: &str) -> LevelVersion {
    let l = |k: String| labels.get(&k).and_then(Value::as_str);
    let level = match l(format!("{LABEL_PREFIX}{mode}")) {
        None => Level::Privileged,
        Some(s) => Level::parse(s).unwrap_or(Level::Restricted),
    };
    let version = match l(format!("{LABEL_PREFIX}{mode}-version")) {
        None | Some("latest") => "latest".to_string(),
        Some(v) if valid_version(v) => v.to_string(),
        Some(_) => "latest".to_string(),
    };
    LevelVersion { level, version }
}

fn valid_version(v: &str) -> bool {
    v.strip_prefix("v1.")
        .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
}

/// A failed check: a short reason and its detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

fn v(reason: &str, detail: String) -> Option<Violation> {
    Some(Violation {
        reason: reason.to_string(),
        detail,
    })
}

fn sc<'a>(c: &'a Value, field: &str) -> Option<&'a Value> {
    get(c, &["securityContext", field]).filter(|x| !x.is_null())
}

fn containers(spec: &Value) -> Vec<(&str, &Value)> {
    all_containers(spec)
        .into_iter()
        .map(|c| (super::pod::name_of(c), c))
        .collect()
}

fn names_where(spec: &Value, pred: impl Fn(&Value) -> bool) -> Vec<String> {
    containers(spec)
        .into_iter()
        .filter(|(_, c)| pred(c))
        .map(|(n, _)| n.to_string())
        .collect()
}

fn container_phrase(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

// ---- baseline ----------------------------------------------------------------------------

fn host_namespaces(_meta: &Value, spec: &Value) -> Option<Violation> {
    let set: Vec<&str> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| spec.get(*k).and_then(Value::as_bool) == Some(true))
        .collect();
    if set.is_empty() {
        return None;
    }
    let detail: Vec<String> = set.iter().map(|k| format!("{k}=true")).collect();
    v("host namespaces", detail.join(", "))
}

fn privileged(_meta: &Value, spec: &Value) -> Option<Violation> {
    let bad = names_where(spec, |c| {
        sc(c, "privileged").and_then(Value::as_bool) == Some(true)
    });
    if bad.is_empty() {
        return None;
    }
    v(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            container_phrase(&bad)
        ),
    )
}

const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(c: &Value) -> Vec<&str> {
    get(c, &["securityContext", "capabilities", "add"])
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn capabilities_baseline(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut caps = BTreeSet::new();
    for (n, c) in containers(spec) {
        let extra: Vec<&str> = added_capabilities(c)
            .into_iter()
            .filter(|x| !DEFAULT_CAPABILITIES.contains(x))
            .collect();
        if !extra.is_empty() {
            bad.push(n.to_string());
            caps.extend(extra.into_iter().map(str::to_string));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let caps: Vec<String> = caps.into_iter().collect();
    v(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            container_phrase(&bad),
            join_quote(&caps)
        ),
    )
}

fn host_path_volumes(_meta: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|vol| vol.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(|vol| super::pod::name_of(vol).to_string())
        .collect();
    if bad.is_empty() {
        return None;
    }
    v(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad)
        ),
    )
}

fn host_ports(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for (n, c) in containers(spec) {
        let mut found = false;
        for p in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(hp) = p
                .get("hostPort")
                .and_then(Value::as_i64)
                .filter(|x| *x != 0)
            {
                found = true;
                ports.insert(hp.to_string());
            }
        }
        if found {
            bad.push(n.to_string());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    v(
        "hostPort",
        format!(
            "{} {} {} {}",
            container_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn proc_mount(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut values = BTreeSet::new();
    for (n, c) in containers(spec) {
        if let Some(pm) = sc(c, "procMount").and_then(Value::as_str) {
            if pm != "Default" {
                bad.push(n.to_string());
                values.insert(pm.to_string());
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    let values: Vec<String> = values.into_iter().collect();
    v(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            container_phrase(&bad),
            join_quote(&values)
        ),
    )
}

fn seccomp_type(x: Option<&Value>) -> Option<&str> {
    x.and_then(|p| p.get("type")).and_then(Value::as_str)
}

fn valid_seccomp(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

/// (bad setters, bad values, containers that set nothing) for seccompProfile.
fn seccomp_scan(spec: &Value) -> (Vec<String>, BTreeSet<String>, Vec<String>, bool) {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let mut pod_set = false;
    if let Some(t) =
        seccomp_type(get(spec, &["securityContext", "seccompProfile"]).filter(|x| !x.is_null()))
    {
        if valid_seccomp(t) {
            pod_set = true;
        } else {
            setters.push("pod".to_string());
            values.insert(t.to_string());
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for (n, c) in containers(spec) {
        match sc(c, "seccompProfile") {
            Some(p) => {
                let t = seccomp_type(Some(p)).unwrap_or("");
                if !valid_seccomp(t) {
                    explicit.push(n.to_string());
                    values.insert(t.to_string());
                }
            }
            None if !pod_set => implicit.push(n.to_string()),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(container_phrase(&explicit));
    }
    (setters, values, implicit, pod_set)
}

fn seccomp_baseline(_meta: &Value, spec: &Value) -> Option<Violation> {
    let (setters, values, _, _) = seccomp_scan(spec);
    if setters.is_empty() {
        return None;
    }
    let values: Vec<String> = values.into_iter().collect();
    v(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

fn sysctls(_meta: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = get(spec, &["securityContext", "sysctls"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(str::to_string)
        .collect();
    if bad.is_empty() {
        return None;
    }
    v("forbidden sysctls", bad.join(", "))
}

fn app_armor(meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let ok = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    if let Some(t) =
        get(spec, &["securityContext", "appArmorProfile", "type"]).and_then(Value::as_str)
    {
        if !ok(t) {
            bad.push(format!(
                "pod must not set securityContext.appArmorProfile.type to {t:?}"
            ));
        }
    }
    let mut cbad = Vec::new();
    for (n, c) in containers(spec) {
        if let Some(t) =
            get(c, &["securityContext", "appArmorProfile", "type"]).and_then(Value::as_str)
        {
            if !ok(t) {
                cbad.push(n.to_string());
            }
        }
    }
    if !cbad.is_empty() {
        bad.push(format!(
            "{} must not set securityContext.appArmorProfile.type to \"Unconfined\"",
            container_phrase(&cbad)
        ));
    }
    let mut anns = Vec::new();
    if let Some(a) = meta.get("annotations").and_then(Value::as_object) {
        for (k, val) in a {
            if k.starts_with("container.apparmor.security.beta.kubernetes.io/") {
                let s = val.as_str().unwrap_or("");
                if !(s == "runtime/default" || s.starts_with("localhost/")) {
                    anns.push(format!("{k}={s:?}"));
                }
            }
        }
    }
    if !anns.is_empty() {
        bad.push(format!(
            "forbidden AppArmor {} {}",
            pluralize("annotation", "annotations", anns.len()),
            anns.join(", ")
        ));
    }
    if bad.is_empty() {
        return None;
    }
    v("forbidden AppArmor profile", bad.join("; "))
}

fn se_linux(_meta: &Value, spec: &Value) -> Option<Violation> {
    let allowed_types = [
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ];
    let bad_opts = |o: &Value| {
        let t = o.get("type").and_then(Value::as_str).unwrap_or("");
        !allowed_types.contains(&t)
            || o.get("user")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            || o.get("role")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
    };
    let pod_bad = get(spec, &["securityContext", "seLinuxOptions"])
        .is_some_and(|o| o.is_object() && bad_opts(o));
    let cbad = names_where(spec, |c| {
        sc(c, "seLinuxOptions").is_some_and(|o| o.is_object() && bad_opts(o))
    });
    if !pod_bad && cbad.is_empty() {
        return None;
    }
    let mut who = Vec::new();
    if pod_bad {
        who.push("pod".to_string());
    }
    if !cbad.is_empty() {
        who.push(container_phrase(&cbad));
    }
    v(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions",
            who.join(" and ")
        ),
    )
}

fn windows_host_process(_meta: &Value, spec: &Value) -> Option<Violation> {
    let pod = get(spec, &["securityContext", "windowsOptions", "hostProcess"])
        .and_then(Value::as_bool)
        == Some(true);
    let bad = names_where(spec, |c| {
        get(c, &["securityContext", "windowsOptions", "hostProcess"]).and_then(Value::as_bool)
            == Some(true)
    });
    if !pod && bad.is_empty() {
        return None;
    }
    let mut who = Vec::new();
    if pod {
        who.push("pod".to_string());
    }
    if !bad.is_empty() {
        who.push(container_phrase(&bad));
    }
    v(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            who.join(" and ")
        ),
    )
}

// ---- restricted --------------------------------------------------------------------------

const ALLOWED_VOLUME_TYPES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn restricted_volumes(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for vol in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(m) = vol.as_object() else { continue };
        let kinds: Vec<&String> = m
            .keys()
            .filter(|k| k.as_str() != "name" && !m[*k].is_null())
            .collect();
        if kinds
            .iter()
            .any(|k| ALLOWED_VOLUME_TYPES.contains(&k.as_str()))
        {
            continue;
        }
        bad.push(super::pod::name_of(vol).to_string());
        match kinds.first() {
            Some(k) => types.insert(k.to_string()),
            None => types.insert("unknown".to_string()),
        };
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    v(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

fn allow_privilege_escalation(_meta: &Value, spec: &Value) -> Option<Violation> {
    let bad = names_where(spec, |c| {
        sc(c, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false)
    });
    if bad.is_empty() {
        return None;
    }
    v(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            container_phrase(&bad)
        ),
    )
}

fn run_as_non_root(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut pod_ok = false;
    match get(spec, &["securityContext", "runAsNonRoot"]).and_then(Value::as_bool) {
        Some(false) => setters.push("pod".to_string()),
        Some(true) => pod_ok = true,
        None => {}
    }
    let explicit = names_where(spec, |c| {
        sc(c, "runAsNonRoot").and_then(Value::as_bool) == Some(false)
    });
    let implicit = names_where(spec, |c| sc(c, "runAsNonRoot").is_none() && !pod_ok);
    if !explicit.is_empty() {
        setters.push(container_phrase(&explicit));
    }
    if !setters.is_empty() {
        return v(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if !implicit.is_empty() {
        return v(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                container_phrase(&implicit)
            ),
        );
    }
    None
}

fn run_as_user(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    if get(spec, &["securityContext", "runAsUser"]).and_then(Value::as_i64) == Some(0) {
        setters.push("pod".to_string());
    }
    let bad = names_where(spec, |c| {
        sc(c, "runAsUser").and_then(Value::as_i64) == Some(0)
    });
    if !bad.is_empty() {
        setters.push(container_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    v(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

fn seccomp_restricted(_meta: &Value, spec: &Value) -> Option<Violation> {
    let (setters, values, implicit, _) = seccomp_scan(spec);
    if !setters.is_empty() {
        let values: Vec<String> = values.into_iter().collect();
        return v(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&values)
            ),
        );
    }
    if !implicit.is_empty() {
        return v(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                container_phrase(&implicit)
            ),
        );
    }
    None
}

fn capabilities_restricted(_meta: &Value, spec: &Value) -> Option<Violation> {
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut caps = BTreeSet::new();
    for (n, c) in containers(spec) {
        let dropped_all = get(c, &["securityContext", "capabilities", "drop"])
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x.as_str() == Some("ALL")));
        if !dropped_all {
            missing_drop.push(n.to_string());
        }
        let extra: Vec<&str> = added_capabilities(c)
            .into_iter()
            .filter(|x| *x != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            adding.push(n.to_string());
            caps.extend(extra.into_iter().map(str::to_string));
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            container_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        let caps: Vec<String> = caps.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            container_phrase(&adding),
            join_quote(&caps)
        ));
    }
    if details.is_empty() {
        return None;
    }
    v("unrestricted capabilities", details.join("; "))
}

type Check = fn(&Value, &Value) -> Option<Violation>;

/// Checks in kube's evaluation order: baseline ones (in check-ID order), then either the
/// baseline checks the restricted level replaces, or the restricted checks.
const BASELINE: &[Check] = &[
    app_armor,
    host_namespaces,
    host_ports,
    privileged,
    proc_mount,
    se_linux,
    sysctls,
    windows_host_process,
];
const BASELINE_OVERLAPPING: &[Check] =
    &[capabilities_baseline, host_path_volumes, seccomp_baseline];
const RESTRICTED: &[Check] = &[
    allow_privilege_escalation,
    capabilities_restricted,
    restricted_volumes,
    run_as_non_root,
    run_as_user,
    seccomp_restricted,
];

/// The violations of a pod (its metadata and spec) at a level.
pub fn evaluate(level: Level, meta: &Value, spec: &Value) -> Vec<Violation> {
    let extra = match level {
        Level::Privileged => return Vec::new(),
        Level::Baseline => BASELINE_OVERLAPPING,
        Level::Restricted => RESTRICTED,
    };
    BASELINE
        .iter()
        .chain(extra.iter())
        .filter_map(|c| c(meta, spec))
        .collect()
}

/// `reason (detail), reason (detail)` (`AggregateCheckResult.ForbiddenDetail`).
pub fn forbidden_detail(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub struct PodSecurity;

impl PodSecurity {
    async fn namespace_labels(
        lookup: &dyn Lookup,
        ns: &str,
    ) -> Result<Option<Map<String, Value>>, ApiError> {
        let res = catalogue::lookup("", "v1", "namespaces").expect("namespaces are served");
        Ok(lookup.get(res, None, ns).await?.map(|n| labels(&n.object)))
    }

    /// Warnings about existing pods when a namespace's enforce policy changes.
    async fn namespace_update(
        &self,
        lookup: &dyn Lookup,
        attrs: &Attributes,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let new_labels = attrs.object.as_ref().map(labels).unwrap_or_default();
        let old_labels = attrs.old_object.as_ref().map(labels).unwrap_or_default();
        let new = policy(&new_labels, "enforce");
        if new == policy(&old_labels, "enforce") || new.level == Level::Privileged {
            return Ok(());
        }
        let pods = catalogue::lookup("", "v1", "pods").expect("pods are served");
        let list = lookup.list(pods, Some(&attrs.name)).await?;
        // Pods with the same violations are reported together.
        let mut groups: Vec<(String, String, usize)> = Vec::new();
        for p in &list {
            let obj = Value::Object(p.object.clone());
            let meta = obj.get("metadata").cloned().unwrap_or_default();
            let spec = obj.get("spec").cloned().unwrap_or_default();
            let vs = evaluate(new.level, &meta, &spec);
            if vs.is_empty() {
                continue;
            }
            let reasons: Vec<String> = vs.iter().map(|v| v.reason.clone()).collect();
            let reasons = reasons.join(", ");
            match groups.iter_mut().find(|g| g.1 == reasons) {
                Some(g) => g.2 += 1,
                None => {
                    let name = meta
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    groups.push((name, reasons, 0));
                }
            }
        }
        if groups.is_empty() {
            return Ok(());
        }
        warnings.push(format!(
            "existing pods in namespace {:?} violate the new PodSecurity enforce level {:?}",
            attrs.name,
            new.to_string()
        ));
        for (name, reasons, others) in groups {
            if others == 0 {
                warnings.push(format!("{name}: {reasons}"));
            } else {
                warnings.push(format!(
                    "{name} (and {others} other {}): {reasons}",
                    pluralize("pod", "pods", others)
                ));
            }
        }
        Ok(())
    }
}

/// Pod updates that only touch metadata or status are not re-evaluated.
fn significant_pod_update(attrs: &Attributes) -> bool {
    if attrs.operation != Operation::Update {
        return true;
    }
    let spec = |o: Option<&Map<String, Value>>| o.and_then(|o| o.get("spec")).cloned();
    spec(attrs.object.as_ref()) != spec(attrs.old_object.as_ref())
}

#[async_trait]
impl ValidatingPlugin for PodSecurity {
    fn name(&self) -> &'static str {
        "PodSecurity"
    }

    async fn validate(
        &self,
        lookup: &dyn Lookup,
        attrs: &Attributes,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if !matches!(attrs.operation, Operation::Create | Operation::Update) {
            return Ok(());
        }
        if attrs.is_main("", "namespaces") {
            if attrs.operation == Operation::Update {
                return self.namespace_update(lookup, attrs, warnings).await;
            }
            return Ok(());
        }
        let Some(spec_path) = pod_spec_path(attrs.resource.group, attrs.resource.plural) else {
            return Ok(());
        };
        let is_pod = attrs.is("", "pods");
        // Pods: the main resource and ephemeral containers; workloads: only the main resource.
        let sub_ok =
            attrs.subresource.is_empty() || (is_pod && attrs.subresource == "ephemeralcontainers");
        if !sub_ok || attrs.namespace.is_empty() {
            return Ok(());
        }
        let Some(obj) = attrs.object.as_ref() else {
            return Ok(());
        };
        if is_pod && !significant_pod_update(attrs) {
            return Ok(());
        }
        let Some(ns_labels) = Self::namespace_labels(lookup, &attrs.namespace).await? else {
            return Ok(());
        };
        let enforce = policy(&ns_labels, "enforce");
        let warn = policy(&ns_labels, "warn");
        let obj = Value::Object(obj.clone());
        let spec = get(&obj, spec_path).cloned().unwrap_or_default();
        let meta_path: Vec<&str> = match spec_path.len() {
            1 => vec!["metadata"],
            n => spec_path[..n - 1]
                .iter()
                .copied()
                .chain(["metadata"])
                .collect(),
        };
        let meta = get(&obj, &meta_path).cloned().unwrap_or_default();
        let enforce_result = evaluate(enforce.level, &meta, &spec);
        if is_pod {
            if !enforce_result.is_empty() {
                return Err(forbidden(
                    attrs,
                    format!(
                        "violates PodSecurity {:?}: {}",
                        enforce.to_string(),
                        forbidden_detail(&enforce_result)
                    ),
                ));
            }
        } else if !enforce_result.is_empty() {
            warnings.push(format!(
                "would violate PodSecurity {:?}: {}",
                enforce.to_string(),
                forbidden_detail(&enforce_result)
            ));
        }
        if warn != enforce {
            let warn_result = evaluate(warn.level, &meta, &spec);
            if !warn_result.is_empty() {
                warnings.push(format!(
                    "would violate PodSecurity {:?}: {}",
                    warn.to_string(),
                    forbidden_detail(&warn_result)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::lookup::MemoryLookup;
    use crate::admission::AdmissionUser;
    use serde_json::json;

    fn setup(labels: Value) -> MemoryLookup {
        let l = MemoryLookup::new();
        l.put_namespace("ns", Some(labels));
        l
    }

    async fn run(
        l: &MemoryLookup,
        plural: &str,
        group: &str,
        obj: Value,
    ) -> (Result<(), ApiError>, Vec<String>) {
        let res = catalogue::lookup(group, "v1", plural).unwrap();
        let a = Attributes::new(
            Operation::Create,
            res,
            Some("ns"),
            "x",
            AdmissionUser::default(),
        )
        .with_object(obj.as_object().unwrap().clone());
        let mut w = Vec::new();
        let r = PodSecurity.validate(l, &a, &mut w).await;
        (r, w)
    }

    fn nginx() -> Value {
        json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}})
    }

    #[tokio::test]
    async fn restricted_rejects_a_plain_pod_with_kubes_message() {
        let l = setup(json!({"pod-security.kubernetes.io/enforce": "restricted"}));
        let (r, _) = run(&l, "pods", "", nginx()).await;
        let e = r.unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"nginx\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"nginx\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"nginx\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        let ok = json!({"metadata": {"name": "x"}, "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "nginx", "securityContext": {"allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}});
        run(&l, "pods", "", ok).await.0.unwrap();
    }

    #[tokio::test]
    async fn baseline_checks() {
        let l = setup(
            json!({"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.30"}),
        );
        run(&l, "pods", "", nginx()).await.0.unwrap();
        let bad = json!({"metadata": {"name": "x"}, "spec": {"hostNetwork": true, "hostPID": true,
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "a", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}},
                "ports": [{"containerPort": 80, "hostPort": 80}]}]}});
        let e = run(&l, "pods", "", bad).await.0.unwrap_err();
        assert_eq!(
            e.message,
            "pods \"x\" is forbidden: violates PodSecurity \"baseline:v1.30\": host namespaces (hostNetwork=true, hostPID=true), hostPort (container \"a\" uses hostPort 80), privileged (container \"a\" must not set securityContext.privileged=true), non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add), hostPath volumes (volume \"root\")"
        );
    }

    #[tokio::test]
    async fn warn_mode_and_workloads() {
        let l = setup(json!({"pod-security.kubernetes.io/warn": "baseline"}));
        let priv_pod = json!({"metadata": {"name": "x"}, "spec": {"containers": [
            {"name": "a", "securityContext": {"privileged": true}}, {"name": "b", "securityContext": {"privileged": true}}]}});
        let (r, w) = run(&l, "pods", "", priv_pod).await;
        r.unwrap();
        assert_eq!(
            w,
            vec!["would violate PodSecurity \"baseline:latest\": privileged (containers \"a\", \"b\" must not set securityContext.privileged=true)"]
        );
        // Deployments are never refused; the enforce level becomes a warning.
        let l = setup(json!({"pod-security.kubernetes.io/enforce": "baseline"}));
        let deploy = json!({"metadata": {"name": "d"}, "spec": {"template": {"metadata": {}, "spec": {"hostIPC": true, "containers": [{"name": "c"}]}}}});
        let (r, w) = run(&l, "deployments", "apps", deploy).await;
        r.unwrap();
        assert_eq!(
            w,
            vec!["would violate PodSecurity \"baseline:latest\": host namespaces (hostIPC=true)"]
        );
        // No labels: privileged, nothing to say.
        let l = setup(json!({}));
        let (r, w) = run(&l, "pods", "", json!({"spec": {"hostNetwork": true}})).await;
        r.unwrap();
        assert!(w.is_empty());
    }

    #[tokio::test]
    async fn tightening_a_namespace_warns_about_existing_pods() {
        let l = setup(json!({}));
        let pods = catalogue::lookup("", "v1", "pods").unwrap();
        for n in ["p1", "p2"] {
            l.put(pods, json!({"metadata": {"name": n, "namespace": "ns"}, "spec": {"hostNetwork": true, "containers": [{"name": "c"}]}}));
        }
        let nsr = catalogue::lookup("", "v1", "namespaces").unwrap();
        let a = Attributes::new(Operation::Update, nsr, None, "ns", AdmissionUser::default())
            .with_old_object(json!({"metadata": {"name": "ns"}}).as_object().unwrap().clone())
            .with_object(json!({"metadata": {"name": "ns", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}).as_object().unwrap().clone());
        let mut w = Vec::new();
        PodSecurity.validate(&l, &a, &mut w).await.unwrap();
        assert_eq!(
            w,
            vec![
                "existing pods in namespace \"ns\" violate the new PodSecurity enforce level \"baseline:latest\"".to_string(),
                "p1 (and 1 other pod): host namespaces".to_string()
            ]
        );
    }
}
