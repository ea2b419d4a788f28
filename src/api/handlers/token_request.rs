//! `POST serviceaccounts/<name>/token`: TokenRequest (authentication.k8s.io/v1). Issues a bound
//! service-account JWT signed with `--service-account-signing-key-file`, with kube-apiserver's
//! claims (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and the `kubernetes.io` private
//! claims naming the service account and the pod, secret or node it is bound to), which the
//! service-account authenticator then accepts while those objects exist.

use super::write::content_type;
use super::{object_response, store_error, Api, Format, Resp};
use crate::api::catalogue::{self, ResourceInfo};
use crate::api::request::ResourcePath;
use crate::api::status::{ApiError, Cause};
use crate::auth::authn::jwt::SigningKey;
use crate::auth::authn::serviceaccount::{self, SA_PREFIX};
use crate::config::Config;
use crate::object::codec::decode_body;
use crate::object::raw::{meta_str, RawObject};
use anyhow::{bail, Context};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

const GROUP: &str = "authentication.k8s.io";
const API_VERSION: &str = "authentication.k8s.io/v1";
/// kube-apiserver's limits (pkg/apis/authentication/validation) and v1 default.
const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// What signs tokens; set once at start-up when a signing key is configured.
pub struct TokenIssuer {
    key: SigningKey,
    issuer: String,
    audiences: Vec<String>,
    max_expiration_seconds: Option<i64>,
}

static ISSUER: OnceLock<TokenIssuer> = OnceLock::new();

/// Whether TokenRequest is served (discovery lists `serviceaccounts/token` only then).
pub fn enabled() -> bool {
    ISSUER.get().is_some()
}

/// Loads `--service-account-signing-key-file` (with the first `--service-account-issuer`);
/// without a signing key TokenRequest is not served, as in kube-apiserver.
pub fn install(cfg: &Config) -> anyhow::Result<()> {
    let Some(path) = &cfg.service_account_signing_key_file else {
        return Ok(());
    };
    let Some(issuer) = cfg.service_account_issuer.first() else {
        bail!("--service-account-issuer is required with --service-account-signing-key-file");
    };
    let max = cfg.service_account_max_token_expiration.unwrap_or(0) as i64;
    if max != 0 && !(3600..=MAX_EXPIRATION_SECONDS).contains(&max) {
        bail!("the service-account-max-token-expiration must be between 1 hour and 2^32 seconds");
    }
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let key = SigningKey::from_pem(&pem)
        .with_context(|| format!("loading the signing key from {}", path.display()))?;
    let _ = ISSUER.set(TokenIssuer {
        key,
        issuer: issuer.clone(),
        audiences: serviceaccount::api_audiences(cfg),
        max_expiration_seconds: (max > 0).then_some(max),
    });
    Ok(())
}

fn core(plural: &str) -> &'static ResourceInfo {
    catalogue::lookup("", "v1", plural).expect("core resources are served")
}

/// 422 `TokenRequest.authentication.k8s.io "<name>" is invalid: …`.
fn invalid(name: &str, field: &str, value: &str, why: &str) -> ApiError {
    let message = format!("Invalid value: {value}: {why}");
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!("TokenRequest.{GROUP} {name:?} is invalid: {field}: {message}"),
    );
    e.details.name = name.to_string();
    e.details.group = GROUP.into();
    e.details.kind = "TokenRequest".into();
    e.details.causes = vec![Cause {
        reason: "FieldValueInvalid".into(),
        message,
        field: field.into(),
    }];
    e
}

/// An object read from the store (TokenRequest, like kube's registry, reads the truth).
async fn get(
    api: &Api,
    res: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
) -> Result<Map<String, Value>, ApiError> {
    let (kv, _) = api
        .store
        .get(&api.key(res, ns, name))
        .await
        .map_err(|e| store_error(e, res, "get"))?;
    let kv = kv.ok_or_else(|| ApiError::not_found(res, name))?;
    Ok(RawObject::from_kv(res, &kv)
        .map_err(ApiError::internal)?
        .to_map())
}

fn reference(obj: &Map<String, Value>) -> Value {
    let mut r = Map::new();
    for k in ["name", "uid"] {
        if let Some(v) = meta_str(obj, k).filter(|v| !v.is_empty()) {
            r.insert(k.into(), json!(v));
        }
    }
    Value::Object(r)
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// POST `serviceaccounts/<name>/token`.
pub async fn create(
    api: &Api,
    path: &ResourcePath,
    headers: &HeaderMap,
    body: Bytes,
    format: Format,
) -> Result<Resp, ApiError> {
    let Some(issuer) = ISSUER.get() else {
        return Err(ApiError::resource_not_found());
    };
    let ns = path.namespace.clone().unwrap_or_default();
    let name = path.name.clone().unwrap_or_default();
    let req = decode_body(content_type(headers), &body)?;
    if let Some(av) = req.get("apiVersion").and_then(Value::as_str) {
        if av != API_VERSION {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({API_VERSION})"
            )));
        }
    }
    // Name and namespace in the body, when given, must be the URL's.
    for (field, want, what) in [("name", &name, "name"), ("namespace", &ns, "namespace")] {
        if let Some(v) = meta_str(&req, field).filter(|v| !v.is_empty()) {
            if v != want {
                return Err(invalid(
                    &name,
                    &format!("metadata.{field}"),
                    &format!("{v:?}"),
                    &format!("must match the service account {what} if specified"),
                ));
            }
        }
    }

    let sa_res = core("serviceaccounts");
    let sa = get(api, sa_res, Some(&ns), &name).await?;
    let sa_uid = meta_str(&sa, "uid").unwrap_or_default().to_string();

    let spec = req
        .get("spec")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut audiences: Vec<String> = match spec.get("audiences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: spec.audiences: expected a string, got {v}"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: spec.audiences: expected an array, got {v}"
            )))
        }
    };
    if audiences.is_empty() {
        audiences = issuer.audiences.clone();
    }
    let mut expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: spec.expirationSeconds: expected an integer, got {v}"
            ))
        })?,
    };
    // kube-apiserver reports the invalid TokenRequest with an empty name.
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            "",
            "spec.expirationSeconds",
            &expiration.to_string(),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            "",
            "spec.expirationSeconds",
            &expiration.to_string(),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }

    // The object the token is bound to: its existence (and uid) is checked at every use.
    let bound_ref = spec.get("boundObjectRef").filter(|v| !v.is_null());
    let mut private = Map::new();
    private.insert("namespace".into(), json!(ns));
    private.insert(
        "serviceaccount".into(),
        json!({"name": name, "uid": sa_uid}),
    );
    if let Some(r) = bound_ref {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or_default();
        let api_version = r
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ref_name = r.get("name").and_then(Value::as_str).unwrap_or_default();
        let ref_uid = r.get("uid").and_then(Value::as_str).unwrap_or_default();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let obj = match (group, kind) {
            ("", "Pod") => {
                let pod = get(api, core("pods"), Some(&ns), ref_name).await?;
                let pod_sa = pod
                    .get("spec")
                    .and_then(|s| s.get("serviceAccountName"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if pod_sa != name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                    )));
                }
                // The pod's node goes along for information (not checked when the token is
                // used); a node that does not exist (yet) is recorded by name only.
                let node_name = pod
                    .get("spec")
                    .and_then(|s| s.get("nodeName"))
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty());
                if let Some(node_name) = node_name {
                    let node = serviceaccount::lookup_object(api, "", "nodes", None, node_name)
                        .await
                        .map_err(ApiError::internal)?;
                    let node_ref = match node {
                        Some(n) => reference(&n),
                        None => json!({"name": node_name}),
                    };
                    private.insert("node".into(), node_ref);
                }
                private.insert("pod".into(), reference(&pod));
                pod
            }
            ("", "Secret") => {
                let secret = get(api, core("secrets"), Some(&ns), ref_name).await?;
                private.insert("secret".into(), reference(&secret));
                secret
            }
            ("", "Node") => {
                let node = get(api, core("nodes"), None, ref_name).await?;
                private.insert("node".into(), reference(&node));
                node
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {group}/{version}, Kind={kind}"
                )))
            }
        };
        let uid = meta_str(&obj, "uid").unwrap_or_default();
        if !ref_uid.is_empty() && ref_uid != uid {
            let mut e = ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {kind} {ref_name:?}: the UID in the bound object reference ({ref_uid}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            );
            e.details.name = ref_name.to_string();
            e.details.kind = kind.to_string();
            return Err(e);
        }
    }

    let mut warning = None;
    if let Some(max) = issuer.max_expiration_seconds {
        if expiration > max {
            warning = Some(format!(
                "requested expiration of {expiration} seconds shortened to {max} seconds"
            ));
            expiration = max;
        }
    }

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let exp = now + expiration;
    let aud = if audiences.len() == 1 {
        json!(audiences[0])
    } else {
        json!(audiences)
    };
    let claims = json!({
        "aud": aud,
        "exp": exp,
        "iat": now,
        "iss": issuer.issuer,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": private,
        "nbf": now,
        "sub": format!("{SA_PREFIX}{ns}:{name}"),
    });
    let token = issuer
        .key
        .sign(&claims)
        .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;

    let mut spec_out = Map::new();
    spec_out.insert("audiences".into(), json!(audiences));
    spec_out.insert("expirationSeconds".into(), json!(expiration));
    spec_out.insert(
        "boundObjectRef".into(),
        bound_ref.cloned().unwrap_or(Value::Null),
    );
    let out = json!({
        "kind": "TokenRequest",
        "apiVersion": API_VERSION,
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": rfc3339(now)},
        "spec": spec_out,
        "status": {"token": token, "expirationTimestamp": rfc3339(exp)},
    });
    let mut resp = object_response(
        201,
        format,
        Bytes::from(serde_json::to_vec(&out).map_err(ApiError::internal)?),
    );
    if let Some(w) = warning {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            resp.headers_mut().insert(http::header::WARNING, v);
        }
    }
    Ok(resp)
}
