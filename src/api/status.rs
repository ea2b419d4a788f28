//! `Status` error bodies shaped exactly like kube-apiserver's (API-SEMANTICS §5).

use super::catalogue::ResourceInfo;
use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Cause {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "is_zero")]
    pub retry_after_seconds: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Details {
    fn is_empty(&self) -> bool {
        *self == Details::default()
    }
}

/// A failed request, rendered as a `Status` object (or, for a few cases, plain text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Box<Details>,
    /// Continue token for 410 Expired on list continuation.
    pub continue_token: Option<String>,
}

#[derive(Serialize)]
struct StatusBody<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: StatusMeta<'a>,
    status: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Details::is_empty")]
    details: &'a Details,
    code: u16,
}

#[derive(Serialize)]
struct StatusMeta<'a> {
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    cont: Option<&'a str>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Box::default(),
            continue_token: None,
        }
    }

    fn for_resource(
        code: u16,
        reason: &'static str,
        message: String,
        res: &ResourceInfo,
        name: &str,
    ) -> Self {
        let mut e = ApiError::new(code, reason, message);
        *e.details = Details {
            name: name.to_string(),
            group: res.group.to_string(),
            kind: res.plural.to_string(),
            ..Default::default()
        };
        e
    }

    pub fn not_found(res: &ResourceInfo, name: &str) -> Self {
        Self::for_resource(
            404,
            "NotFound",
            format!("{} \"{}\" not found", res.qualified(), name),
            res,
            name,
        )
    }

    /// Namespace lookups for namespaced creates (NamespaceLifecycle).
    pub fn namespace_not_found(ns: &str) -> Self {
        let mut e = ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"));
        *e.details = Details {
            name: ns.to_string(),
            kind: "namespaces".into(),
            ..Default::default()
        };
        e
    }

    pub fn already_exists(res: &ResourceInfo, name: &str) -> Self {
        Self::for_resource(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", res.qualified(), name),
            res,
            name,
        )
    }

    pub fn conflict(res: &ResourceInfo, name: &str, why: &str) -> Self {
        Self::for_resource(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                res.qualified(),
                name,
                why
            ),
            res,
            name,
        )
    }

    pub fn modified_conflict(res: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            res,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid: `Kind "name" is invalid: field: message` (several joined as `[a, b]`).
    pub fn invalid(res: &ResourceInfo, name: &str, causes: Vec<Cause>) -> Self {
        let parts: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let joined = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        // kube names the group-qualified kind (`Deployment.apps "x" is invalid: ...`).
        let kind = if res.group.is_empty() {
            res.kind.to_string()
        } else {
            format!("{}.{}", res.kind, res.group)
        };
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {joined}"),
        );
        *e.details = Details {
            name: name.to_string(),
            group: res.group.to_string(),
            kind: res.kind.to_string(),
            causes,
            ..Default::default()
        };
        e
    }

    /// 422 for bad list/watch options (`ListOptions.meta.k8s.io "" is invalid: ...`).
    pub fn invalid_options(kind: &str, field: &str, reason: &str, message: &str) -> Self {
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{kind}.meta.k8s.io \"\" is invalid: {field}: {message}"),
        );
        *e.details = Details {
            group: "meta.k8s.io".into(),
            kind: kind.into(),
            causes: vec![Cause {
                reason: reason.into(),
                message: message.into(),
                field: field.into(),
            }],
            ..Default::default()
        };
        e
    }

    pub fn invalid_dry_run(values: &[String]) -> Self {
        let bad = values
            .iter()
            .find(|v| *v != "All")
            .cloned()
            .unwrap_or_default();
        let msg = format!("Unsupported value: \"{bad}\": supported values: \"All\"");
        let mut e = ApiError::new(422, "Invalid", format!("dryRun: {msg}"));
        e.details.causes = vec![Cause {
            reason: "FieldValueNotSupported".into(),
            message: msg,
            field: "dryRun".into(),
        }];
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(verb: &str, res: &ResourceInfo) -> Self {
        let mut e = ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "{} is not supported on resources of kind \"{}\"",
                verb,
                res.qualified()
            ),
        );
        *e.details = Details {
            group: res.group.to_string(),
            kind: res.plural.to_string(),
            ..Default::default()
        };
        e
    }

    pub fn route_method_not_allowed() -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn resource_not_found() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    pub fn too_large_resource_version(requested: i64, current: i64) -> Self {
        let mut e = ApiError::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        );
        *e.details = Details {
            causes: vec![Cause {
                reason: "ResourceVersionTooLarge".into(),
                message: "Too large resource version".into(),
                field: String::new(),
            }],
            retry_after_seconds: 1,
            ..Default::default()
        };
        e
    }

    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    pub fn not_acceptable(accepted: &[&str]) -> Self {
        ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: {}",
                accepted.join(", ")
            ),
        )
    }

    pub fn too_large_body(limit: usize) -> Self {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn forbidden_terminating(res: &ResourceInfo, name: &str, ns: &str) -> Self {
        let mut e = Self::for_resource(
            403,
            "Forbidden",
            format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                res.qualified(),
                name,
                ns
            ),
            res,
            name,
        );
        e.details.causes = vec![Cause {
            reason: "NamespaceTerminating".into(),
            message: format!("namespace {ns} is being terminated"),
            field: "metadata.namespace".into(),
        }];
        e
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        let msg = err.to_string();
        let mut e = ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {msg}"),
        );
        e.details.causes = vec![Cause {
            reason: String::new(),
            message: msg,
            field: String::new(),
        }];
        e
    }

    /// The store could not be reached: 500 ServerTimeout, like kube-apiserver's etcd errors.
    pub fn server_timeout(operation: &str, res: &ResourceInfo) -> Self {
        let mut e = ApiError::new(
            500,
            "ServerTimeout",
            format!(
                "The {operation} operation against {} could not be completed at this time, please try again.",
                res.qualified()
            ),
        );
        *e.details = Details {
            name: operation.to_string(),
            group: res.group.to_string(),
            kind: res.plural.to_string(),
            retry_after_seconds: 2,
            ..Default::default()
        };
        e
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after: u32) -> Self {
        let mut e = ApiError::new(429, "TooManyRequests", message);
        e.details.retry_after_seconds = retry_after;
        e
    }

    pub fn service_unavailable(message: impl Into<String>, retry_after: u32) -> Self {
        let mut e = ApiError::new(503, "ServiceUnavailable", message);
        e.details.retry_after_seconds = retry_after;
        e
    }

    /// The `Status` JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        let body = StatusBody {
            kind: "Status",
            api_version: "v1",
            metadata: StatusMeta {
                cont: self.continue_token.as_deref(),
            },
            status: "Failure",
            message: &self.message,
            reason: self.reason,
            details: &self.details,
            code: self.code,
        };
        serde_json::to_vec(&body).expect("status serializes")
    }
}

/// A `Status` with `status: Success` (delete responses for kinds without ReturnDeletedObject).
pub fn success_status(res: &ResourceInfo, name: &str, uid: &str) -> Vec<u8> {
    let details = Details {
        name: name.to_string(),
        group: res.group.to_string(),
        kind: res.plural.to_string(),
        uid: uid.to_string(),
        ..Default::default()
    };
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    });
    serde_json::to_vec(&body).expect("status serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::catalogue::lookup;

    #[test]
    fn not_found_matches_apiserver_shape() {
        let pods = lookup("", "v1", "pods").unwrap();
        let body = String::from_utf8(ApiError::not_found(pods, "x").to_json()).unwrap();
        assert_eq!(
            body,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}"#
        );
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let body = String::from_utf8(ApiError::not_found(deploy, "d").to_json()).unwrap();
        assert!(body.contains(r#""message":"deployments.apps \"d\" not found""#));
        assert!(body.contains(r#""details":{"name":"d","group":"apps","kind":"deployments"}"#));
    }

    #[test]
    fn invalid_joins_causes() {
        let pods = lookup("", "v1", "pods").unwrap();
        let c = |f: &str| Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: f.into(),
        };
        let e = ApiError::invalid(pods, "p", vec![c("a"), c("b")]);
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: [a: Required value, b: Required value]"
        );
        assert_eq!(e.code, 422);
    }
}
