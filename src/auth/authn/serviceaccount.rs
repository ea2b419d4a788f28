//! Service-account tokens (bound JWTs): signature by one of `--service-account-key-file`'s keys,
//! `iss` one of `--service-account-issuer`, `aud` one of `--api-audiences` (default: the
//! issuers), then the service account must still exist with the claimed uid, and so must the
//! pod, secret or node the token is bound to. Lookups use the watch caches and fall back to the
//! store on a miss (an object created a moment ago may not be in the cache yet).
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

pub const SA_PREFIX: &str = "system:serviceaccount:";
pub const ALL_SA_GROUP: &str = "system:serviceaccounts";

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
    match api.store.get(&key).await {
        Ok((Some(kv), _)) => Ok(RawObject::from_kv(res, &kv).ok().map(|o| o.to_map())),
        Ok((None, _)) => Ok(None),
        Err(e) => Err(format!("looking up {plural} {name:?}: {e}")),
    }
}

fn meta<'a>(obj: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(k)?.as_str()
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
        let audiences = if cfg.api_audiences.is_empty() {
            cfg.service_account_issuer.clone()
        } else {
            cfg.api_audiences.clone()
        };
        Ok(Some(ServiceAccountAuthenticator {
            issuers: cfg.service_account_issuer.clone(),
            audiences,
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

        let sa = lookup_object(api, "", "serviceaccounts", Some(ns), sa_name)
            .await?
            .ok_or_else(|| format!("service account {ns}/{sa_name} has been deleted"))?;
        let actual_uid = meta(&sa, "uid").unwrap_or("");
        if !sa_uid.is_empty() && actual_uid != sa_uid {
            return Err(format!(
                "service account UID ({actual_uid}) does not match claim ({sa_uid})"
            ));
        }
        if meta(&sa, "deletionTimestamp").is_some() {
            return Err(format!("service account {ns}/{sa_name} is being deleted"));
        }
        let mut user = sa_user(ns, sa_name, actual_uid);

        for (kind, plural, namespaced) in [
            ("pod", "pods", true),
            ("secret", "secrets", true),
            ("node", "nodes", false),
        ] {
            let Some(name) = claim_str(k8s, &[kind, "name"]) else {
                continue;
            };
            let uid = claim_str(k8s, &[kind, "uid"]).unwrap_or("");
            let obj = lookup_object(api, "", plural, namespaced.then_some(ns), name)
                .await?
                .ok_or_else(|| format!("{plural} \"{name}\" not found"))?;
            let actual = meta(&obj, "uid").unwrap_or("");
            if !uid.is_empty() && actual != uid {
                return Err(format!(
                    "{kind} UID ({actual}) does not match claim ({uid})"
                ));
            }
            if meta(&obj, "deletionTimestamp").is_some() {
                return Err(format!(
                    "token bound to {kind} {name:?} has been invalidated"
                ));
            }
            if kind != "secret" {
                user.extra.insert(
                    format!("authentication.kubernetes.io/{kind}-name"),
                    vec![name.to_string()],
                );
                user.extra.insert(
                    format!("authentication.kubernetes.io/{kind}-uid"),
                    vec![actual.to_string()],
                );
            }
        }
        if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
            user.extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                vec![format!("JTI={jti}")],
            );
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
