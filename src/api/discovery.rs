//! Discovery documents (API-SEMANTICS §7): legacy `/api`, `/apis`, `/apis/<g>`, `/api/v1`,
//! `/apis/<g>/<v>`, the aggregated `apidiscovery.k8s.io/v2` lists, and `/version`.
//!
//! Everything here is a pure function of the catalogue, producing JSON bytes. Field order follows
//! the Go structs (serde_json is built with `preserve_order`, so `json!` keeps insertion order).
//! Resources inside a group-version are sorted by name, as kube-apiserver's installer sorts its
//! storage paths; groups keep the catalogue's discovery order.

use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256, Sha512};

use super::catalogue::{self, ResourceInfo};

/// Content-Type of an aggregated discovery response.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Verbs of a top-level resource, sorted.
const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces have no `deletecollection` in kube-apiserver (its REST storage is not a
/// `CollectionDeleter`).
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// The Kubernetes version kapi claims (kubectl checks version skew against it).
const KUBE_MAJOR: &str = "1";
const KUBE_MINOR: &str = "32";

fn verbs(r: &ResourceInfo) -> &'static [&'static str] {
    if let Some(v) = r.verbs {
        v
    } else if r.group.is_empty() && r.plural == "namespaces" {
        NAMESPACE_VERBS
    } else {
        ALL_VERBS
    }
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializing a serde_json::Value cannot fail")
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// Resources of one group-version, sorted by plural.
fn resources_of(group: &str, version: &str) -> Vec<&'static ResourceInfo> {
    let mut out: Vec<&'static ResourceInfo> = catalogue::all()
        .iter()
        .chain(catalogue::review_resources())
        .filter(|r| r.group == group && r.version == version)
        .collect();
    out.sort_by(|a, b| a.plural.cmp(b.plural));
    out
}

/// Served versions of a group, preferred first (catalogue order).
fn versions_of(group: &str) -> Vec<&'static str> {
    catalogue::discovery_group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(_, v)| v)
        .collect()
}

/// Non-core groups, in catalogue order.
fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (g, _) in catalogue::discovery_group_versions() {
        if !g.is_empty() && !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// `base64(sha256("<group>/<version>/<Kind>")[:8])`, as `storageversionhash.go` computes it.
/// The core group contributes an empty string, so pods hash `"/v1/Pod"`.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// `/api`: the core group's versions. No `apiVersion`.
pub fn api_versions(server_address: &str) -> Vec<u8> {
    to_bytes(&json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }))
}

fn group_object(group: &str) -> Option<Map<String, Value>> {
    let versions = versions_of(group);
    let preferred = *versions.first()?;
    let gv = |v: &str| json!({"groupVersion": group_version(group, v), "version": v});
    let mut m = Map::new();
    m.insert("name".into(), json!(group));
    m.insert(
        "versions".into(),
        Value::Array(versions.iter().map(|v| gv(v)).collect()),
    );
    m.insert("preferredVersion".into(), gv(preferred));
    Some(m)
}

/// `/apis`: every non-core group with its versions and preferred version.
///
/// kube-apiserver serves `/apis` from the kube-aggregator, whose codec writes `"apiVersion":"v1"`
/// for this unversioned type (recordings of `kubectl get --raw /apis` show it); only `/api` and
/// `/api/v1` go without one.
pub fn api_group_list() -> Vec<u8> {
    let groups: Vec<Value> = groups()
        .into_iter()
        .filter_map(group_object)
        .map(Value::Object)
        .collect();
    to_bytes(&json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups,
    }))
}

/// `/apis/<g>`: one group, with `"apiVersion":"v1"`. `None` for unknown groups and for the core
/// group (which lives at `/api`).
pub fn api_group(group: &str) -> Option<Vec<u8>> {
    if group.is_empty() {
        return None;
    }
    let body = group_object(group)?;
    let mut m = Map::new();
    m.insert("kind".into(), json!("APIGroup"));
    m.insert("apiVersion".into(), json!("v1"));
    m.extend(body);
    Some(to_bytes(&Value::Object(m)))
}

/// `/api/v1` (group "") or `/apis/<g>/<v>`: an `APIResourceList`. `None` when the group-version
/// is not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Vec<u8>> {
    let resources = resources_of(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in resources {
        let mut m = Map::new();
        m.insert("name".into(), json!(r.plural));
        m.insert("singularName".into(), json!(r.singular));
        m.insert("namespaced".into(), json!(r.namespaced));
        m.insert("kind".into(), json!(r.kind));
        m.insert("verbs".into(), json!(verbs(r)));
        if !r.short_names.is_empty() {
            m.insert("shortNames".into(), json!(r.short_names));
        }
        if !r.categories.is_empty() {
            m.insert("categories".into(), json!(r.categories));
        }
        // Resources that are never stored (the reviews) have no storage version.
        if r.verbs.is_none() {
            m.insert(
                "storageVersionHash".into(),
                json!(storage_version_hash(r.group, r.version, r.kind)),
            );
        }
        list.push(Value::Object(m));
        for sub in r.subresources() {
            let mut e = Map::new();
            e.insert("name".into(), json!(format!("{}/{}", r.plural, sub.name)));
            e.insert("singularName".into(), json!(""));
            e.insert("namespaced".into(), json!(r.namespaced));
            // group/version only when they differ from the list's (e.g. autoscaling/v1 Scale).
            if (sub.group, sub.version) != (r.group, r.version) {
                e.insert("group".into(), json!(sub.group));
                e.insert("version".into(), json!(sub.version));
            }
            e.insert("kind".into(), json!(sub.kind));
            e.insert("verbs".into(), json!(sub.verbs));
            list.push(Value::Object(e));
        }
    }
    let mut m = Map::new();
    m.insert("kind".into(), json!("APIResourceList"));
    // `keepUnversioned`: the core group (and extensions) are written without apiVersion.
    if !group.is_empty() {
        m.insert("apiVersion".into(), json!("v1"));
    }
    m.insert("groupVersion".into(), json!(group_version(group, version)));
    m.insert("resources".into(), Value::Array(list));
    Some(to_bytes(&Value::Object(m)))
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let mut m = Map::new();
    m.insert("resource".into(), json!(r.plural));
    m.insert("responseKind".into(), kind.clone());
    m.insert(
        "scope".into(),
        json!(if r.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        }),
    );
    m.insert("singularResource".into(), json!(r.singular));
    m.insert("verbs".into(), json!(verbs(r)));
    if !r.short_names.is_empty() {
        m.insert("shortNames".into(), json!(r.short_names));
    }
    if !r.categories.is_empty() {
        m.insert("categories".into(), json!(r.categories));
    }
    let subs: Vec<Value> = r
        .subresources()
        .iter()
        .map(|s| {
            json!({"subresource": s.name,
                   "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                   "verbs": s.verbs})
        })
        .collect();
    if !subs.is_empty() {
        m.insert("subresources".into(), Value::Array(subs));
    }
    Value::Object(m)
}

fn aggregated_group(group: &str) -> Value {
    let versions: Vec<Value> = versions_of(group)
        .into_iter()
        .map(|v| {
            let resources: Vec<Value> = resources_of(group, v)
                .into_iter()
                .map(aggregated_resource)
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// The aggregated discovery document (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`): for
/// `/api` when `core`, one item named `""`; for `/apis`, every non-core group.
pub fn aggregated(core: bool) -> Vec<u8> {
    let items: Vec<Value> = if core {
        vec![aggregated_group("")]
    } else {
        groups().into_iter().map(aggregated_group).collect()
    };
    to_bytes(&json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }))
}

/// The quoted ETag of an aggregated discovery body: like `aggregated/etag.go`, the upper-case hex
/// of the SHA-512 of the JSON serialization, in double quotes.
pub fn aggregated_etag(body: &[u8]) -> String {
    let digest = Sha512::digest(body);
    let mut out = String::with_capacity(digest.len() * 2 + 2);
    out.push('"');
    for b in digest.iter() {
        out.push_str(&format!("{b:02X}"));
    }
    out.push('"');
    out
}

/// Which discovery document a request for `/api` or `/apis` gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryFormat {
    /// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`, JSON.
    Aggregated,
    /// `APIVersions` / `APIGroupList`.
    Legacy,
}

/// Picks the discovery format from the `Accept` header, honouring the client's order: the first
/// media range kapi can serve wins. The aggregated v2 JSON form is recognised by its `g`, `v` and
/// `as` parameters in any order (other parameters such as `profile` are ignored); ranges naming a
/// different `as` or version (v2beta1, protobuf aggregated) are skipped; anything else (plain
/// `application/json`, `*/*`, …) means the legacy documents, as does a missing header.
pub fn negotiate(accept: Option<&str>) -> DiscoveryFormat {
    let Some(accept) = accept else {
        return DiscoveryFormat::Legacy;
    };
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let (mut g, mut v, mut as_, mut q_zero) = (None, None, None, false);
        for p in parts {
            let Some((k, val)) = p.split_once('=') else {
                continue;
            };
            let val = val.trim().trim_matches('"').to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "g" => g = Some(val),
                "v" => v = Some(val),
                "as" => as_ = Some(val),
                "q" => q_zero = val.parse::<f32>().is_ok_and(|q| q <= 0.0),
                _ => {}
            }
        }
        if q_zero {
            continue;
        }
        let json_like = matches!(media.as_str(), "application/json" | "application/*" | "*/*");
        if as_.is_none() && g.is_none() && v.is_none() {
            // A plain media range: legacy discovery, served as JSON.
            return DiscoveryFormat::Legacy;
        }
        if json_like
            && g.as_deref() == Some("apidiscovery.k8s.io")
            && v.as_deref() == Some("v2")
            && as_.as_deref() == Some("APIGroupDiscoveryList")
        {
            return DiscoveryFormat::Aggregated;
        }
        // Some other typed form (v2beta1, protobuf, Table…): not served here; try the next one.
    }
    DiscoveryFormat::Legacy
}

/// Go's name for the architecture, as in `runtime.GOARCH`.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "arm" => "arm",
        other => other,
    }
}

/// `/version`. kapi claims Kubernetes 1.32 so that kubectl's skew check is satisfied; the
/// semver pre-release names kapi and its crate version (`v1.32.0-kapi.0.1.0`). Build metadata can
/// be supplied at compile time through `KAPI_GIT_COMMIT`, `KAPI_GIT_TREE_STATE` and
/// `KAPI_BUILD_DATE`.
pub fn version_info() -> Vec<u8> {
    to_bytes(&json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-kapi.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": option_env!("KAPI_GIT_COMMIT").unwrap_or("unknown"),
        "gitTreeState": option_env!("KAPI_GIT_TREE_STATE").unwrap_or("unknown"),
        "buildDate": option_env!("KAPI_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        // Not built with Go: name the actual toolchain rather than invent a Go version.
        "goVersion": "rustc",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn parse(b: &[u8]) -> Value {
        serde_json::from_slice(b).expect("valid JSON")
    }

    #[test]
    fn storage_version_hashes_match_kube_apiserver() {
        assert_eq!(storage_version_hash("", "v1", "Pod"), "xPOwRZ+Yhw8=");
        assert_eq!(
            storage_version_hash("apps", "v1", "Deployment"),
            "8aSe+NMegvE="
        );
        let v = parse(&api_resource_list("", "v1").unwrap());
        let pods = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["storageVersionHash"], "xPOwRZ+Yhw8=");
        let v = parse(&api_resource_list("apps", "v1").unwrap());
        let d = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments");
        assert_eq!(d.unwrap()["storageVersionHash"], "8aSe+NMegvE=");
    }

    #[test]
    fn api_versions_shape() {
        let b = api_versions("10.0.0.1:6443");
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"10.0.0.1:6443"}]}"#
        );
    }

    #[test]
    fn group_list_and_group() {
        let v = parse(&api_group_list());
        assert_eq!(v["kind"], "APIGroupList");
        let groups = v["groups"].as_array().unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert!(!names.contains(&""));
        for (g, _) in catalogue::group_versions() {
            assert!(g.is_empty() || names.contains(&g), "{g} missing");
        }
        let apps = groups.iter().find(|g| g["name"] == "apps").unwrap();
        assert_eq!(
            apps["versions"],
            json!([{"groupVersion": "apps/v1", "version": "v1"}])
        );
        assert_eq!(
            apps["preferredVersion"],
            json!({"groupVersion": "apps/v1", "version": "v1"})
        );

        let g = api_group("apps").unwrap();
        assert!(std::str::from_utf8(&g)
            .unwrap()
            .starts_with(r#"{"kind":"APIGroup","apiVersion":"v1","name":"apps","versions":"#));
        assert!(api_group("").is_none());
        assert!(api_group("nope.example.com").is_none());
    }

    #[test]
    fn resource_lists() {
        let core = api_resource_list("", "v1").unwrap();
        assert!(std::str::from_utf8(&core)
            .unwrap()
            .starts_with(r#"{"kind":"APIResourceList","groupVersion":"v1","resources":["#));
        let apps = api_resource_list("apps", "v1").unwrap();
        assert!(std::str::from_utf8(&apps).unwrap().starts_with(
            r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"apps/v1","resources":["#
        ));
        assert!(api_resource_list("apps", "v2").is_none());
        assert!(api_resource_list("", "v2").is_none());

        let v = parse(&core);
        let res = v["resources"].as_array().unwrap();
        let names: Vec<&str> = res.iter().map(|r| r["name"].as_str().unwrap()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "resources are sorted by name");
        let pods = res.iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(
            pods,
            &json!({
                "name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                "verbs": ALL_VERBS, "shortNames": ["po"], "categories": ["all"],
                "storageVersionHash": "xPOwRZ+Yhw8=",
            })
        );
        let status = res.iter().find(|r| r["name"] == "pods/status").unwrap();
        assert_eq!(
            status,
            &json!({"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod",
                    "verbs": ["get", "patch", "update"]})
        );
        let secrets = res.iter().find(|r| r["name"] == "secrets").unwrap();
        assert!(secrets.get("shortNames").is_none() && secrets.get("categories").is_none());
        let ns = res.iter().find(|r| r["name"] == "namespaces").unwrap();
        assert_eq!(ns["namespaced"], false);
        assert!(!ns["verbs"]
            .as_array()
            .unwrap()
            .contains(&json!("deletecollection")));
    }

    #[test]
    fn every_resource_in_legacy_and_aggregated() {
        let core = parse(&aggregated(true));
        let all = parse(&aggregated(false));
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(core["metadata"], json!({}));
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        assert!(all["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["metadata"]["name"] != ""));

        let mut seen_agg = HashSet::new();
        for doc in [&core, &all] {
            for item in doc["items"].as_array().unwrap() {
                let group = item["metadata"]["name"].as_str().unwrap();
                for ver in item["versions"].as_array().unwrap() {
                    assert_eq!(ver["freshness"], "Current");
                    let version = ver["version"].as_str().unwrap();
                    for r in ver["resources"].as_array().unwrap() {
                        assert_eq!(r["responseKind"]["group"], group);
                        assert_eq!(r["responseKind"]["version"], version);
                        seen_agg.insert((
                            group.to_string(),
                            version.to_string(),
                            r["resource"].as_str().unwrap().to_string(),
                        ));
                    }
                }
            }
        }
        let mut seen_legacy = HashSet::new();
        for (g, v) in catalogue::group_versions() {
            let list = parse(&api_resource_list(g, v).unwrap());
            for r in list["resources"].as_array().unwrap() {
                seen_legacy.insert((
                    g.to_string(),
                    v.to_string(),
                    r["name"].as_str().unwrap().to_string(),
                ));
            }
        }
        for r in catalogue::all() {
            let key = (
                r.group.to_string(),
                r.version.to_string(),
                r.plural.to_string(),
            );
            assert!(
                seen_agg.contains(&key),
                "{} missing from aggregated",
                r.qualified()
            );
            assert!(
                seen_legacy.contains(&key),
                "{} missing from legacy",
                r.qualified()
            );
            let status = (key.0.clone(), key.1.clone(), format!("{}/status", r.plural));
            assert_eq!(
                seen_legacy.contains(&status),
                r.status_subresource,
                "{}",
                r.qualified()
            );
        }
        assert_eq!(
            seen_agg.len(),
            catalogue::all().len() + catalogue::review_resources().len()
        );
    }

    #[test]
    fn aggregated_resource_shape() {
        let all = parse(&aggregated(false));
        let apps = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "apps");
        let deploy = apps.unwrap()["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap()
            .clone();
        let kind = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
        assert_eq!(
            serde_json::to_string(&deploy).unwrap(),
            serde_json::to_string(&json!({
                "resource": "deployments",
                "responseKind": kind,
                "scope": "Namespaced",
                "singularResource": "deployment",
                "verbs": ALL_VERBS,
                "shortNames": ["deploy"],
                "categories": ["all"],
                "subresources": [
                    {"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]},
                    {"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]},
                ],
            }))
            .unwrap()
        );
        let core = parse(&aggregated(true));
        let nodes = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "nodes")
            .unwrap()
            .clone();
        assert_eq!(nodes["scope"], "Cluster");
        assert_eq!(
            nodes["responseKind"],
            json!({"group": "", "version": "v1", "kind": "Node"})
        );
        let cm = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "configmaps")
            .unwrap()
            .clone();
        assert!(cm.get("subresources").is_none() && cm.get("categories").is_none());
    }

    #[test]
    fn etag_is_quoted_hex_and_stable() {
        let body = aggregated(false);
        let e = aggregated_etag(&body);
        assert_eq!(e.len(), 128 + 2);
        assert!(e.starts_with('"') && e.ends_with('"'));
        assert!(e[1..129]
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
        assert_eq!(e, aggregated_etag(&aggregated(false)));
        assert_ne!(e, aggregated_etag(&aggregated(true)));
    }

    #[test]
    fn negotiation() {
        use DiscoveryFormat::*;
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(Some(kubectl)), Aggregated);
        assert_eq!(
            negotiate(Some(
                "application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io"
            )),
            Aggregated
        );
        assert_eq!(negotiate(Some("application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList; profile=nopeer")), Aggregated);
        assert_eq!(negotiate(Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")), Legacy);
        assert_eq!(
            negotiate(Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")),
            Aggregated
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")),
            Aggregated
        );
        assert_eq!(negotiate(Some("application/json, */*")), Legacy);
        assert_eq!(negotiate(Some("application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")), Legacy);
        assert_eq!(negotiate(Some("")), Legacy);
        assert_eq!(negotiate(None), Legacy);
    }

    #[test]
    fn version_shape() {
        let v = parse(&version_info());
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "major",
                "minor",
                "gitVersion",
                "gitCommit",
                "gitTreeState",
                "buildDate",
                "goVersion",
                "compiler",
                "platform"
            ]
        );
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "32");
        let git = v["gitVersion"].as_str().unwrap();
        assert_eq!(git, format!("v1.32.0-kapi.{}", env!("CARGO_PKG_VERSION")));
        // Semver: vMAJOR.MINOR.PATCH-PRERELEASE with dot-separated alphanumeric identifiers.
        let (core, pre) = git[1..].split_once('-').unwrap();
        assert!(core.split('.').all(|n| n.parse::<u64>().is_ok()) && core.split('.').count() == 3);
        assert!(pre
            .split('.')
            .all(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')));
        assert_eq!(v["compiler"], "rustc");
        assert!(v["platform"].as_str().unwrap().contains('/'));
    }

    #[test]
    fn review_resources_are_create_only_and_unstored() {
        let v = parse(&api_resource_list("authorization.k8s.io", "v1").unwrap());
        let names: Vec<&str> = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![
                "localsubjectaccessreviews",
                "selfsubjectaccessreviews",
                "selfsubjectrulesreviews",
                "subjectaccessreviews"
            ]
        );
        let sar = &v["resources"][3];
        assert_eq!(
            sar.to_string(),
            r#"{"name":"subjectaccessreviews","singularName":"subjectaccessreview","namespaced":false,"kind":"SubjectAccessReview","verbs":["create"]}"#
        );
        assert_eq!(v["resources"][0]["namespaced"], true);
        let g = parse(&api_group("authentication.k8s.io").unwrap());
        assert_eq!(
            g["preferredVersion"]["groupVersion"],
            "authentication.k8s.io/v1"
        );
        let names: Vec<String> = parse(&api_group_list())["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect();
        assert!(names.contains(&"authorization.k8s.io".to_string()));
    }
}
