//! The review APIs, create-only and never stored: `authorization.k8s.io/v1`
//! SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview (`kubectl auth
//! can-i`), SelfSubjectRulesReview (`kubectl auth can-i --list`), and `authentication.k8s.io/v1`
//! TokenReview and SelfSubjectReview (`kubectl auth whoami`). The request itself has already
//! been authorized (verb `create` on the review resource) by the router.

use super::authn::{TokenResult, UserInfo};
use super::authz::{Attributes, Decision, Rule};
use super::Security;
use crate::api::catalogue::{self, ResourceInfo};
use crate::api::handlers::{error_response, json_response, Resp};
use crate::api::status::{ApiError, Cause, Details};
use crate::object::codec;
use http::{HeaderMap, Method};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const GROUPS: &[&str] = &["authorization.k8s.io", "authentication.k8s.io"];

/// The review resource a path names: `Some(Err)` for paths in the review groups that name none.
pub fn match_path(path: &str) -> Option<Result<(&'static ResourceInfo, Option<String>), ApiError>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["apis", g, v, rest @ ..] = parts.as_slice() else {
        return None;
    };
    if !GROUPS.contains(g)
        || catalogue::review_resources()
            .iter()
            .all(|r| r.version != *v)
    {
        return None;
    }
    let found = match rest {
        [plural] => catalogue::lookup_review(g, v, plural)
            .filter(|r| !r.namespaced)
            .map(|r| (r, None)),
        ["namespaces", ns, plural] => catalogue::lookup_review(g, v, plural)
            .filter(|r| r.namespaced)
            .map(|r| (r, Some(ns.to_string()))),
        [] => return None,
        _ => None,
    };
    Some(found.ok_or_else(ApiError::resource_not_found))
}

fn invalid(res: &ResourceInfo, field: &str, value: &str, detail: &str) -> ApiError {
    let msg = format!("Invalid value: {value:?}: {detail}");
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!("{}.{} \"\" is invalid: {field}: {msg}", res.kind, res.group),
    );
    *e.details = Details {
        group: res.group.to_string(),
        kind: res.kind.to_string(),
        causes: vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: msg,
            field: field.into(),
        }],
        ..Default::default()
    };
    e
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Attributes from a `spec` with `resourceAttributes` or `nonResourceAttributes`.
fn spec_attributes(
    res: &ResourceInfo,
    spec: &Value,
    user: UserInfo,
) -> Result<Attributes, ApiError> {
    let ra = spec.get("resourceAttributes").filter(|v| v.is_object());
    let nra = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    match (ra, nra) {
        (Some(ra), None) => Ok(Attributes {
            user,
            verb: s(ra, "verb"),
            resource_request: true,
            namespace: s(ra, "namespace"),
            api_group: s(ra, "group"),
            api_version: s(ra, "version"),
            resource: s(ra, "resource"),
            subresource: s(ra, "subresource"),
            name: s(ra, "name"),
            field_selector: ra
                .get("fieldSelector")
                .and_then(|f| f.get("rawSelector"))
                .and_then(Value::as_str)
                .map(str::to_string),
            label_selector: ra
                .get("labelSelector")
                .and_then(|f| f.get("rawSelector"))
                .and_then(Value::as_str)
                .map(str::to_string),
            ..Default::default()
        }),
        (None, Some(nra)) => Ok(Attributes {
            user,
            verb: s(nra, "verb"),
            path: s(nra, "path"),
            ..Default::default()
        }),
        (Some(_), Some(_)) => Err(invalid(
            res,
            "spec.nonResourceAttributes",
            "",
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid(
            res,
            "spec.resourceAttributes",
            "",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// The response object: the request's metadata (with `creationTimestamp: null`) and spec, plus
/// `status`.
fn answer(res: &ResourceInfo, req: &Map<String, Value>, spec: Value, status: Value) -> Resp {
    let mut meta = req
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    meta.entry("creationTimestamp").or_insert(Value::Null);
    let body = json!({
        "kind": res.kind,
        "apiVersion": res.api_version(),
        "metadata": meta,
        "spec": spec,
        "status": status,
    });
    json_response(201, serde_json::to_vec(&body).expect("JSON serializes"))
}

fn access_status(d: Decision, reason: String) -> Value {
    let mut m = Map::new();
    m.insert("allowed".into(), json!(d == Decision::Allow));
    if d == Decision::Deny {
        m.insert("denied".into(), json!(true));
    }
    if !reason.is_empty() {
        m.insert("reason".into(), json!(reason));
    }
    Value::Object(m)
}

fn rules_status(review: super::authz::RulesReview) -> Value {
    let (nonres, res): (Vec<Rule>, Vec<Rule>) = review
        .rules
        .into_iter()
        .partition(|r| !r.non_resource_urls.is_empty());
    let resource_rules: Vec<Value> = res
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("verbs".into(), json!(r.verbs));
            if !r.api_groups.is_empty() {
                m.insert("apiGroups".into(), json!(r.api_groups));
            }
            if !r.resources.is_empty() {
                m.insert("resources".into(), json!(r.resources));
            }
            if !r.resource_names.is_empty() {
                m.insert("resourceNames".into(), json!(r.resource_names));
            }
            Value::Object(m)
        })
        .collect();
    let non_resource_rules: Vec<Value> = nonres
        .iter()
        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
        .collect();
    let mut m = Map::new();
    m.insert("resourceRules".into(), json!(resource_rules));
    m.insert("nonResourceRules".into(), json!(non_resource_rules));
    m.insert("incomplete".into(), json!(review.incomplete));
    if !review.evaluation_error.is_empty() {
        m.insert("evaluationError".into(), json!(review.evaluation_error));
    }
    Value::Object(m)
}

fn user_from_spec(spec: &Value) -> UserInfo {
    let extra: BTreeMap<String, Vec<String>> = spec
        .get("extra")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), strings(Some(v))))
                .collect()
        })
        .unwrap_or_default();
    UserInfo {
        name: s(spec, "user"),
        uid: s(spec, "uid"),
        groups: strings(spec.get("groups")),
        extra,
    }
}

/// Serves a POST to a review resource.
pub async fn serve(
    sec: &Security,
    user: &UserInfo,
    method: &Method,
    res: &'static ResourceInfo,
    namespace: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Resp {
    if *method != Method::POST {
        return error_response(&ApiError::route_method_not_allowed());
    }
    match serve_inner(sec, user, res, namespace, headers, body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn serve_inner(
    sec: &Security,
    user: &UserInfo,
    res: &'static ResourceInfo,
    namespace: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let req = codec::decode_body(ct, body)?;
    if let Some(kind) = req.get("kind").and_then(Value::as_str) {
        if kind != res.kind {
            return Err(ApiError::bad_request(format!(
                "the body of the request was of kind {kind:?}, expected {:?}",
                res.kind
            )));
        }
    }
    let spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    match res.plural {
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let subject = user_from_spec(&spec);
            if subject.name.is_empty() && subject.groups.is_empty() {
                return Err(invalid(
                    res,
                    "spec.user",
                    "",
                    "at least one of user or group must be specified",
                ));
            }
            let a = spec_attributes(res, &spec, subject)?;
            if let Some(ns) = &namespace {
                if !a.resource_request {
                    return Err(invalid(
                        res,
                        "spec.nonResourceAttributes",
                        "",
                        "disallowed on this kind of request",
                    ));
                }
                if a.namespace != *ns {
                    return Err(ApiError::bad_request(format!(
                        "spec.resourceAttributes.namespace must match namespace: {ns}"
                    )));
                }
            }
            let (d, reason) = sec.authz.authorize(&a);
            Ok(answer(res, &req, spec, access_status(d, reason)))
        }
        "selfsubjectaccessreviews" => {
            let a = spec_attributes(res, &spec, user.clone())?;
            let (d, reason) = sec.authz.authorize(&a);
            Ok(answer(res, &req, spec, access_status(d, reason)))
        }
        "selfsubjectrulesreviews" => {
            let ns = s(&spec, "namespace");
            let review = sec.authz.rules_for(user, &ns);
            Ok(answer(res, &req, spec, rules_status(review)))
        }
        "tokenreviews" => {
            let token = s(&spec, "token");
            if token.is_empty() {
                return Err(ApiError::bad_request(
                    "token is required for TokenReview in authentication",
                ));
            }
            let audiences = strings(spec.get("audiences"));
            let status = match sec
                .authn
                .authenticate_token(&sec.api, &token, &audiences)
                .await
            {
                TokenResult::Ok(u, auds) => {
                    let u = u.with_authenticated_group();
                    let mut m = Map::new();
                    m.insert("authenticated".into(), json!(true));
                    m.insert("user".into(), u.to_json());
                    if !auds.is_empty() {
                        m.insert("audiences".into(), json!(auds));
                    }
                    Value::Object(m)
                }
                TokenResult::Invalid(e) => json!({"user": {}, "error": e.0}),
                TokenResult::NotMine => json!({"user": {}, "error": "invalid bearer token"}),
            };
            // The token is never echoed back.
            let mut spec = spec;
            if let Some(m) = spec.as_object_mut() {
                m.remove("token");
            }
            Ok(answer(res, &req, spec, status))
        }
        "selfsubjectreviews" => Ok(answer(res, &req, spec, json!({"userInfo": user.to_json()}))),
        _ => Err(ApiError::resource_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let (r, ns) = match_path("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
            .unwrap()
            .unwrap();
        assert_eq!((r.kind, ns), ("SelfSubjectAccessReview", None));
        let (r, ns) =
            match_path("/apis/authorization.k8s.io/v1/namespaces/x/localsubjectaccessreviews")
                .unwrap()
                .unwrap();
        assert_eq!(
            (r.kind, ns.as_deref()),
            ("LocalSubjectAccessReview", Some("x"))
        );
        assert!(match_path("/apis/authorization.k8s.io/v1/foos")
            .unwrap()
            .is_err());
        assert!(
            match_path("/apis/authorization.k8s.io/v1/localsubjectaccessreviews")
                .unwrap()
                .is_err()
        );
        assert!(match_path("/apis/authorization.k8s.io/v1").is_none());
        assert!(match_path("/apis/apps/v1/deployments").is_none());
    }

    #[test]
    fn attributes_from_spec() {
        let res =
            catalogue::lookup_review("authorization.k8s.io", "v1", "subjectaccessreviews").unwrap();
        let spec = json!({"resourceAttributes": {"namespace": "ns", "verb": "get", "resource": "pods", "name": "p"}, "user": "bob"});
        let a = spec_attributes(res, &spec, user_from_spec(&spec)).unwrap();
        assert_eq!(
            (a.verb.as_str(), a.namespace.as_str(), a.user.name.as_str()),
            ("get", "ns", "bob")
        );
        let e = spec_attributes(res, &json!({}), UserInfo::default()).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
        );
    }
}
