//! Request attributes for authorization, parsed purely from the URL as kube-apiserver's
//! `RequestInfoFactory` does: resource requests under `/api/<v>` and `/apis/<g>/<v>`, anything
//! else is a non-resource request whose verb is the lowercase HTTP method.

use super::Attributes;
use http::Method;

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Namespace subresources that keep `namespaces` as the resource (`/namespaces/<n>/status`).
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// The attributes of a request (without the user).
pub fn attributes(method: &Method, path: &str, query: Option<&str>) -> Attributes {
    let mut a = Attributes {
        path: path.to_string(),
        verb: method.as_str().to_ascii_lowercase(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest): (&str, &str, &[&str]) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return a,
    };
    if rest.is_empty() {
        // Discovery of a group-version: non-resource.
        return a;
    }
    let mut verb = match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
    .to_string();
    let mut rest: Vec<String> = rest.iter().map(|s| decode(s)).collect();
    if matches!(rest[0].as_str(), "watch" | "proxy") {
        verb = rest.remove(0);
        if rest.is_empty() {
            return a;
        }
    }
    a.resource_request = true;
    a.api_group = group.to_string();
    a.api_version = version.to_string();
    if rest[0] == "namespaces" && rest.len() > 1 {
        a.namespace = rest[1].clone();
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2].as_str()) {
            rest.drain(..2);
        }
    }
    if rest.len() >= 3 && verb != "proxy" {
        a.subresource = rest[2].clone();
    }
    if rest.len() >= 2 {
        a.name = rest[1].clone();
    }
    a.resource = rest[0].clone();

    let mut watch_param = false;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "watch" => watch_param = !(v == "0" || v == "false"),
            "fieldSelector" => a.field_selector = Some(v.into_owned()),
            "labelSelector" => a.label_selector = Some(v.into_owned()),
            _ => {}
        }
    }
    if a.name.is_empty() && verb == "get" {
        verb = if watch_param { "watch" } else { "list" }.to_string();
    } else if verb == "get" && watch_param {
        verb = "watch".into();
    }
    if a.name.is_empty() && matches!(verb.as_str(), "list" | "watch") {
        if let Some(name) = a
            .field_selector
            .as_deref()
            .and_then(|fs| exact_field(fs, "metadata.name"))
        {
            if !name.is_empty() && !name.contains('/') && name != "." && name != ".." {
                a.name = name.to_string();
            }
        }
    }
    if a.name.is_empty() && verb == "delete" {
        verb = "deletecollection".into();
    }
    a.verb = verb;
    a
}

/// The value a field selector requires `field` to equal exactly (`f=v` or `f==v`), if any.
pub fn exact_field<'a>(selector: &'a str, field: &str) -> Option<&'a str> {
    selector.split(',').find_map(|term| {
        let term = term.trim();
        if term.contains("!=") {
            return None;
        }
        let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
        (k.trim() == field).then_some(v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(m: Method, p: &str, q: Option<&str>) -> Attributes {
        attributes(&m, p, q)
    }

    #[test]
    fn resource_requests() {
        let x = a(Method::GET, "/api/v1/namespaces/ns/pods/p/log", None);
        assert!(x.resource_request);
        assert_eq!(
            (
                x.verb.as_str(),
                x.namespace.as_str(),
                x.resource.as_str(),
                x.name.as_str(),
                x.subresource.as_str()
            ),
            ("get", "ns", "pods", "p", "log")
        );
        let x = a(Method::GET, "/apis/apps/v1/deployments", Some("watch=true"));
        assert_eq!((x.verb.as_str(), x.api_group.as_str()), ("watch", "apps"));
        let x = a(Method::GET, "/api/v1/watch/namespaces/ns/pods", None);
        assert_eq!((x.verb.as_str(), x.namespace.as_str()), ("watch", "ns"));
        let x = a(
            Method::GET,
            "/api/v1/nodes",
            Some("fieldSelector=metadata.name%3Dn1"),
        );
        assert_eq!((x.verb.as_str(), x.name.as_str()), ("list", "n1"));
        let x = a(Method::DELETE, "/api/v1/namespaces/ns/configmaps", None);
        assert_eq!(x.verb, "deletecollection");
        let x = a(Method::GET, "/api/v1/namespaces/ns", None);
        assert_eq!(
            (x.resource.as_str(), x.namespace.as_str(), x.name.as_str()),
            ("namespaces", "ns", "ns")
        );
        let x = a(Method::PUT, "/api/v1/namespaces/ns/finalize", None);
        assert_eq!(
            (x.resource.as_str(), x.subresource.as_str()),
            ("namespaces", "finalize")
        );
        let x = a(Method::POST, "/api/v1/namespaces", None);
        assert_eq!((x.verb.as_str(), x.namespace.as_str()), ("create", ""));
    }

    #[test]
    fn non_resource_requests() {
        for p in [
            "/healthz",
            "/api",
            "/apis/apps/v1",
            "/version",
            "/openapi/v3",
        ] {
            let x = a(Method::GET, p, None);
            assert!(!x.resource_request, "{p}");
            assert_eq!(x.verb, "get");
            assert_eq!(x.path, p);
        }
        assert_eq!(a(Method::POST, "/x", None).verb, "post");
        assert_eq!(
            exact_field("a=b,spec.nodeName==n", "spec.nodeName"),
            Some("n")
        );
        assert_eq!(exact_field("spec.nodeName!=n", "spec.nodeName"), None);
    }
}
