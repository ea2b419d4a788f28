//! Service-account tokens (bound JWTs): signature by one of `--service-account-key-file`'s keys,
//! `iss` one of `--service-account-issuer`, `aud` one of `--api-audiences` (default: the
//! issuers), then, as kube-apiserver's bound-token validator does, the service account must still
//! exist with the claimed uid, and so must the pod, secret or node the token is bound to.
//!
//! These lookups run on every request a service account makes, so they read the watch caches.
//! Only a token issued moments ago (or a cache still loading) may fall back to the store: the
//! object it names can be newer than what the cache has seen. An older token whose object the
//! cache lacks names an object that is gone, and is refused without a store read.
//!
//! Legacy secret-based tokens (`iss: kubernetes/serviceaccount`) are not accepted.

use super::jwt::{self, VerifyKey};
use super::{AuthnError, TokenResult, UserInfo};
use crate::api::catalogue;
use crate::api::handlers::Api;
use crate::config::Config;
use crate::object::raw::RawObject;
use anyhow::{bail, Context};
use serde_json::{Map, Value};
use std::sync::Arc;

pub const SA_PREFIX: &str = "system:serviceaccount:";
pub const ALL_SA_GROUP: &str = "system:serviceaccounts";

/// A token younger than this may name an object the watch cache has not received yet.
const FRESH_TOKEN_SECONDS: i64 = 30;

pub struct ServiceAccountAuthenticator {
    issuers: Vec<String>,
    audiences: Vec<String>,
    keys: Vec<VerifyKey>,
}

/// `system:serviceaccount:<ns>:<name>` → (ns, name).
pub fn split_username(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SA_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// The user a service account authenticates as (name and groups).
pub fn sa_user(ns: &str, name: &str, uid: &str) -> UserInfo {
    UserInfo {
        name: format!("{SA_PREFIX}{ns}:{name}"),
        uid: uid.to_string(),
        groups: vec![ALL_SA_GROUP.to_string(), format!("{ALL_SA_GROUP}:{ns}")],
        ..Default::default()
    }
}

/// The API server's audiences: `--api-audiences`, or the issuers when it is not given (as
/// kube-apiserver defaults them). Tokens are checked against these and TokenRequest issues
/// tokens for them when the request names none.
pub fn api_audiences(cfg: &Config) -> Vec<String> {
    if cfg.api_audiences.is_empty() {
        cfg.service_account_issuer.clone()
    } else {
        cfg.api_audiences.clone()
    }
}

fn claim_str<'a>(m: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let mut cur = m.get(path[0])?;
    for p in &path[1..] {
        cur = cur.get(*p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

/// Reads an object from the watch cache, or from the store when the cache lacks it.
pub async fn lookup_object(
    api: &Api,
    group: &str,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Map<String, Value>>, String> {
    let Some(res) = catalogue::lookup(group, "v1", plural) else {
        return Ok(None);
    };
    let key = api.key(res, namespace, name);
    if let Some(o) = api.caches.get(res).get(&key) {
        return Ok(Some(o.to_map()));
    }
    store_get(api, res, &key).await
}

async fn store_get(
    api: &Api,
    res: &catalogue::ResourceInfo,
    key: &str,
) -> Result<Option<Map<String, Value>>, String> {
    match api.store.get(key).await {
        Ok((Some(kv), _)) => Ok(RawObject::from_kv(res, &kv).ok().map(|o| o.to_map())),
        Ok((None, _)) => Ok(None),
        Err(e) => Err(format!("looking up {} {key:?}: {e}", res.plural)),
    }
}

/// What token validation needs of a bound object.
struct Bound {
    uid: String,
    /// `metadata.deletionTimestamp` in Unix seconds.
    deleted_at: Option<i64>,
}

impl Bound {
    fn of_raw(o: &RawObject) -> Self {
        // Most objects are not being deleted: look for the field name before decoding.
        let json = o.json();
        let marker = b"\"deletionTimestamp\"";
        let deleted_at = if json.windows(marker.len()).any(|w| w == marker) {
            deletion_seconds(&o.to_map())
        } else {
            None
        };
        Bound {
            uid: o.uid().to_string(),
            deleted_at,
        }
    }

    fn of_map(m: &Map<String, Value>) -> Self {
        Bound {
            uid: meta(m, "uid").unwrap_or("").to_string(),
            deleted_at: deletion_seconds(m),
        }
    }

    /// Deleted more than the JWT leeway ago: kube-apiserver keeps tokens working through a
    /// graceful deletion (a terminating pod still talks to the API) plus that leeway.
    fn deleted_before(&self, now: i64) -> bool {
        self.deleted_at
            .is_some_and(|t| t < now - jwt::LEEWAY_SECONDS as i64)
    }
}

fn deletion_seconds(m: &Map<String, Value>) -> Option<i64> {
    meta(m, "deletionTimestamp")
        .and_then(crate::api::table::parse_rfc3339)
        .map(|ms| ms.div_euclid(1000))
}

fn meta<'a>(obj: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(k)?.as_str()
}

/// Looks a bound object up in the watch cache. The store is read only when the cache cannot
/// be trusted to have it: while it loads, or for a fresh token whose object may be newer than
/// the cache (missing there, or there with another uid after a delete and re-create).
async fn lookup_bound(
    api: &Api,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
    want_uid: &str,
    fresh: bool,
) -> Result<Option<Bound>, String> {
    let res =
        catalogue::lookup("", "v1", plural).ok_or_else(|| format!("{plural} are not served"))?;
    let key = api.key(res, namespace, name);
    let cache = api.caches.get(res);
    let cached: Option<Arc<RawObject>> = cache.get(&key);
    if let Some(o) = &cached {
        if o.uid() == want_uid || (!fresh && cache.is_ready()) {
            return Ok(Some(Bound::of_raw(o)));
        }
    } else if !fresh && cache.is_ready() {
        return Ok(None);
    }
    Ok(store_get(api, res, &key).await?.map(|m| Bound::of_map(&m)))
}

impl ServiceAccountAuthenticator {
    pub fn from_config(cfg: &Config) -> anyhow::Result<Option<Self>> {
        let mut files = cfg.service_account_key_file.clone();
        if files.is_empty() {
            if let Some(f) = &cfg.service_account_signing_key_file {
                files.push(f.clone());
            }
        }
        if files.is_empty() {
            return Ok(None);
        }
        if cfg.service_account_issuer.is_empty() {
            bail!("--service-account-issuer is required with --service-account-key-file");
        }
        let mut keys = Vec::new();
        for f in &files {
            let pem = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            keys.extend(
                jwt::keys_from_pem(&pem)
                    .with_context(|| format!("loading keys from {}", f.display()))?,
            );
        }
        Ok(Some(ServiceAccountAuthenticator {
            issuers: cfg.service_account_issuer.clone(),
            audiences: api_audiences(cfg),
            keys,
        }))
    }

    pub async fn authenticate(&self, api: &Api, token: &str, want_aud: &[String]) -> TokenResult {
        let Some(peek) = jwt::peek_claims(token) else {
            return TokenResult::NotMine;
        };
        let Some(iss) = peek.get("iss").and_then(Value::as_str) else {
            return TokenResult::NotMine;
        };
        if !self.issuers.iter().any(|i| i == iss) {
            return TokenResult::NotMine;
        }
        match self.validate(api, token, want_aud).await {
            Ok((u, auds)) => TokenResult::Ok(u, auds),
            Err(e) => TokenResult::Invalid(AuthnError(e)),
        }
    }

    async fn validate(
        &self,
        api: &Api,
        token: &str,
        want_aud: &[String],
    ) -> Result<(UserInfo, Vec<String>), String> {
        let claims = jwt::verify(token, &self.keys, None)?;
        let want = if want_aud.is_empty() {
            &self.audiences
        } else {
            want_aud
        };
        let token_auds = jwt::audiences(&claims);
        let matched: Vec<String> = want
            .iter()
            .filter(|a| token_auds.contains(a))
            .cloned()
            .collect();
        if matched.is_empty() {
            return Err("token audiences are invalid for the target audiences".into());
        }
        let k8s = claims
            .get("kubernetes.io")
            .and_then(Value::as_object)
            .ok_or("token has no kubernetes.io claims")?;
        let ns = claim_str(k8s, &["namespace"]).ok_or("token has no namespace claim")?;
        let sa_name =
            claim_str(k8s, &["serviceaccount", "name"]).ok_or("token has no service account")?;
        let sa_uid = claim_str(k8s, &["serviceaccount", "uid"]).unwrap_or("");
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
        if split_username(sub) != Some((ns, sa_name)) {
            return Err("token subject does not match its service account claims".into());
        }

        let now = ::time::OffsetDateTime::now_utc().unix_timestamp();
        let fresh = claims
            .get("iat")
            .and_then(Value::as_i64)
            .is_some_and(|iat| now - iat < FRESH_TOKEN_SECONDS);

        // The messages are kube-apiserver's (they reach debug logs and TokenReview status.error).
        let sa = lookup_bound(api, "serviceaccounts", Some(ns), sa_name, sa_uid, fresh)
            .await?
            .ok_or_else(|| format!("serviceaccounts \"{sa_name}\" not found"))?;
        if sa.deleted_before(now) {
            return Err(format!("service account {ns}/{sa_name} has been deleted"));
        }
        if sa.uid != sa_uid {
            return Err(format!(
                "service account UID ({}) does not match claim ({sa_uid})",
                sa.uid
            ));
        }
        let mut user = sa_user(ns, sa_name, sa_uid);
        let mut extra = |k: &str, v: &str| {
            user.extra.insert(
                format!("authentication.kubernetes.io/{k}"),
                vec![v.to_string()],
            );
        };

        if let Some(name) = claim_str(k8s, &["secret", "name"]) {
            let uid = claim_str(k8s, &["secret", "uid"]).unwrap_or("");
            let secret = lookup_bound(api, "secrets", Some(ns), name, uid, fresh)
                .await?
                .filter(|s| !s.deleted_before(now))
                .ok_or("service account token has been invalidated")?;
            if secret.uid != uid {
                return Err(format!(
                    "secret UID ({}) does not match service account secret ref claim ({uid})",
                    secret.uid
                ));
            }
        }
        let pod_name = claim_str(k8s, &["pod", "name"]);
        if let Some(name) = pod_name {
            let uid = claim_str(k8s, &["pod", "uid"]).unwrap_or("");
            let pod = lookup_bound(api, "pods", Some(ns), name, uid, fresh)
                .await?
                .filter(|p| !p.deleted_before(now))
                .ok_or("service account token has been invalidated")?;
            if pod.uid != uid {
                return Err(format!(
                    "pod UID ({}) does not match service account pod ref claim ({uid})",
                    pod.uid
                ));
            }
            extra("pod-name", name);
            extra("pod-uid", uid);
        }
        if let Some(name) = claim_str(k8s, &["node", "name"]) {
            let uid = claim_str(k8s, &["node", "uid"]).unwrap_or("");
            // A pod-bound token only records its pod's node, unverified (the node may go
            // away before the pod); a node-bound token lives and dies with the node.
            if pod_name.is_none() {
                let node = lookup_bound(api, "nodes", None, name, uid, fresh)
                    .await?
                    .filter(|n| !n.deleted_before(now))
                    .ok_or("service account token has been invalidated")?;
                if node.uid != uid {
                    return Err(format!(
                        "node UID ({}) does not match service account node ref claim ({uid})",
                        node.uid
                    ));
                }
            }
            extra("node-name", name);
            if !uid.is_empty() {
                extra("node-uid", uid);
            }
        }
        if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
            extra("credential-id", &format!("JTI={jti}"));
        }
        Ok((user, matched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(
            split_username("system:serviceaccount:ns:sa"),
            Some(("ns", "sa"))
        );
        assert_eq!(split_username("system:serviceaccount:ns"), None);
        assert_eq!(split_username("bob"), None);
        let u = sa_user("ns", "sa", "u1");
        assert_eq!(u.name, "system:serviceaccount:ns:sa");
        assert_eq!(
            u.groups,
            vec!["system:serviceaccounts", "system:serviceaccounts:ns"]
        );
    }
}
