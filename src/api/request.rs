//! Request parsing: which resource a path names, the verb, and the query options.

use super::catalogue::{self, ResourceInfo};
use super::status::ApiError;
use http::Method;

/// What a resource path names (kube-apiserver's RequestInfo for resource requests).
#[derive(Debug, Clone)]
pub struct ResourcePath {
    pub res: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub watch_prefix: bool,
}

pub enum PathKind {
    /// `/api/v1/...` or `/apis/<g>/<v>/...` naming a resource.
    Resource(ResourcePath),
    /// A known group/version but no such resource: 404 Status.
    UnknownResource,
    /// Nothing served here: plain-text 404.
    NotFound,
}

/// Parses `/api/v1/...` and `/apis/<g>/<v>/...` paths below the group/version.
pub fn parse_resource_path(path: &str) -> PathKind {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return PathKind::NotFound,
    };
    if !catalogue::group_versions().contains(&(group, version)) {
        return PathKind::NotFound;
    }
    let mut rest: Vec<String> = rest.iter().map(|s| decode(s)).collect();
    let mut watch_prefix = false;
    if rest.first().map(String::as_str) == Some("watch") {
        watch_prefix = true;
        rest.remove(0);
    }
    let mut namespace = None;
    if rest.first().map(String::as_str) == Some("namespaces") && rest.len() > 1 {
        namespace = Some(rest[1].clone());
        if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
            rest.drain(..2);
        }
    }
    let Some(plural) = rest.first() else {
        return PathKind::UnknownResource;
    };
    let Some(res) = catalogue::lookup(group, version, plural) else {
        return PathKind::UnknownResource;
    };
    let (namespace, name, subresource) = if res.plural == "namespaces" && namespace.is_some() {
        // `/namespaces/<name>[/status|/finalize]`: the namespace object itself.
        (None, namespace, rest.get(2).cloned())
    } else {
        if !res.namespaced && namespace.is_some() {
            return PathKind::UnknownResource;
        }
        (namespace, rest.get(1).cloned(), rest.get(2).cloned())
    };
    if rest.len() > 3 && res.plural != "namespaces" {
        return PathKind::UnknownResource;
    }
    PathKind::Resource(ResourcePath {
        res,
        namespace,
        name,
        subresource,
        watch_prefix,
    })
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The API verb of a resource request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

pub fn verb(method: &Method, path: &ResourcePath, query: &Query) -> Option<Verb> {
    let named = path.name.is_some();
    Some(match *method {
        Method::GET | Method::HEAD if path.watch_prefix || query.watch => Verb::Watch,
        Method::GET | Method::HEAD if named => Verb::Get,
        Method::GET | Method::HEAD => Verb::List,
        Method::POST if !named || path.subresource.is_some() => Verb::Create,
        Method::PUT if named => Verb::Update,
        Method::PATCH if named => Verb::Patch,
        Method::DELETE if named => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => return None,
    })
}

/// Query options understood on resource requests.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub limit: i64,
    pub continue_token: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub watch: bool,
    pub timeout_seconds: Option<u64>,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub dry_run: Vec<String>,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub orphan_dependents: Option<bool>,
    /// Server-side apply's `force`.
    pub force: Option<bool>,
    /// The request's User-Agent (the default field manager).
    pub user_agent: Option<String>,
    /// Who is asking (admission plugins see it).
    pub requester: crate::admission::AdmissionUser,
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid boolean value {v:?} for {name}"
        ))),
    }
}

fn parse_int(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>().map_err(|_| {
        ApiError::bad_request(format!(
            "strconv.ParseInt: parsing {v:?}: invalid syntax for {name}"
        ))
    })
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut q = Query::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let v = v.into_owned();
            match &*k {
                "resourceVersion" => q.resource_version = Some(v),
                "resourceVersionMatch" => {
                    q.resource_version_match = Some(v).filter(|s| !s.is_empty())
                }
                "limit" => {
                    q.limit = if v.is_empty() {
                        0
                    } else {
                        parse_int("limit", &v)?
                    }
                }
                "continue" => q.continue_token = Some(v).filter(|s| !s.is_empty()),
                "labelSelector" => q.label_selector = Some(v),
                "fieldSelector" => q.field_selector = Some(v),
                "watch" => q.watch = !(v == "0" || v == "false"),
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(parse_int("timeoutSeconds", &v)?.max(0) as u64)
                }
                "allowWatchBookmarks" => {
                    q.allow_watch_bookmarks = parse_bool("allowWatchBookmarks", &v)?
                }
                "sendInitialEvents" => {
                    q.send_initial_events = Some(parse_bool("sendInitialEvents", &v)?)
                }
                "dryRun" => q.dry_run.push(v),
                "fieldManager" => q.field_manager = Some(v),
                "fieldValidation" => q.field_validation = Some(v),
                "propagationPolicy" => q.propagation_policy = Some(v),
                "gracePeriodSeconds" => {
                    q.grace_period_seconds = Some(parse_int("gracePeriodSeconds", &v)?)
                }
                "orphanDependents" => {
                    q.orphan_dependents = Some(parse_bool("orphanDependents", &v)?)
                }
                "force" => q.force = Some(parse_bool("force", &v)?),
                _ => {}
            }
        }
        Ok(q)
    }

    /// `dryRun=All` (anything else is 422, checked by the write handlers).
    pub fn is_dry_run(&self) -> bool {
        !self.dry_run.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse_resource_path(path) {
            PathKind::Resource(r) => r,
            _ => panic!("{path} is not a resource path"),
        }
    }

    #[test]
    fn parses_paths() {
        let r = res("/api/v1/namespaces/ns/pods/p/status");
        assert_eq!(
            (
                r.res.plural,
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("pods", Some("ns"), Some("p"), Some("status"))
        );
        let r = res("/api/v1/namespaces/ns");
        assert_eq!(
            (r.res.plural, r.namespace.as_deref(), r.name.as_deref()),
            ("namespaces", None, Some("ns"))
        );
        let r = res("/api/v1/namespaces/ns/finalize");
        assert_eq!(
            (r.name.as_deref(), r.subresource.as_deref()),
            (Some("ns"), Some("finalize"))
        );
        let r = res("/apis/apps/v1/deployments");
        assert_eq!(
            (r.res.plural, r.namespace.as_deref()),
            ("deployments", None)
        );
        let r = res("/api/v1/watch/namespaces/a/pods");
        assert!(r.watch_prefix);
        assert!(matches!(
            parse_resource_path("/api/v1/foos"),
            PathKind::UnknownResource
        ));
        assert!(matches!(
            parse_resource_path("/apis/nope/v1/foos"),
            PathKind::NotFound
        ));
        assert!(matches!(
            parse_resource_path("/api/v1/namespaces/a/nodes"),
            PathKind::UnknownResource
        ));
    }
}
