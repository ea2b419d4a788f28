//! Authentication: who is asking. Authenticators are tried in kube-apiserver's order (x509 client
//! certificate, static token file, service-account JWT, OIDC ID token), the first success wins,
//! and anonymous is the fallback when enabled and no credentials were presented.
//!
//! A bearer token that no token authenticator accepts is an error (401), even with anonymous
//! enabled, as in kube-apiserver (`union.NewFailOnError`). Credentials are never logged.

pub mod jwt;
pub mod oidc;
pub mod serviceaccount;
pub mod token_file;
pub mod x509;

use crate::api::handlers::Api;
use crate::config::Config;
use http::HeaderMap;
use rustls_pki_types::CertificateDer;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const ANONYMOUS_USER: &str = "system:anonymous";
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
pub const MASTERS_GROUP: &str = "system:masters";

/// An authenticated (or anonymous) user, as kube-apiserver's `user.Info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    pub fn anonymous() -> Self {
        UserInfo::new(ANONYMOUS_USER, &[UNAUTHENTICATED_GROUP])
    }

    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    /// `group.AuthenticatedGroupAdder`: every authenticated user is in `system:authenticated`.
    pub fn with_authenticated_group(mut self) -> Self {
        if self.name != ANONYMOUS_USER
            && !self
                .groups
                .iter()
                .any(|g| g == AUTHENTICATED_GROUP || g == UNAUTHENTICATED_GROUP)
        {
            self.groups.push(AUTHENTICATED_GROUP.to_string());
        }
        self
    }

    /// The user as a JSON `UserInfo` (authentication.k8s.io/v1), for review responses.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("username".into(), self.name.clone().into());
        if !self.uid.is_empty() {
            m.insert("uid".into(), self.uid.clone().into());
        }
        if !self.groups.is_empty() {
            m.insert("groups".into(), serde_json::json!(self.groups));
        }
        if !self.extra.is_empty() {
            m.insert("extra".into(), serde_json::json!(self.extra));
        }
        serde_json::Value::Object(m)
    }
}

/// What the connection carries: the peer certificates rustls verified during the handshake.
#[derive(Clone, Debug, Default)]
pub struct ConnInfo {
    pub peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// Why authentication failed. The client only ever sees 401 `Unauthorized`; the detail is for
/// debug logs and TokenReview's `status.error`, and never contains the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnError(pub String);

impl std::fmt::Display for AuthnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The result of one token authenticator.
pub enum TokenResult {
    /// Authenticated; with the audiences the token was valid for (for TokenReview).
    Ok(UserInfo, Vec<String>),
    /// Not this authenticator's kind of token.
    NotMine,
    /// This authenticator's token, but invalid (bad signature, expired, object gone…).
    Invalid(AuthnError),
}

/// The configured authenticator chain.
pub struct Authenticator {
    pub token_file: Option<token_file::TokenFile>,
    pub service_accounts: Option<serviceaccount::ServiceAccountAuthenticator>,
    pub oidc: Option<oidc::OidcAuthenticator>,
    pub anonymous: bool,
}

/// Request headers removed once authentication is done (`WithAuthentication`).
const STRIPPED_PREFIXES: &[&str] = &["x-remote-extra-"];
const STRIPPED: &[&str] = &[
    "authorization",
    "x-remote-user",
    "x-remote-group",
    "x-remote-uid",
];

impl Authenticator {
    pub fn from_config(cfg: &Config) -> anyhow::Result<Self> {
        let token_file = cfg
            .token_auth_file
            .as_deref()
            .map(token_file::TokenFile::load)
            .transpose()?;
        let service_accounts = serviceaccount::ServiceAccountAuthenticator::from_config(cfg)?;
        let oidc = oidc::OidcAuthenticator::from_config(cfg)?;
        Ok(Authenticator {
            token_file,
            service_accounts,
            oidc,
            anonymous: cfg.anonymous_auth,
        })
    }

    /// Authenticates a request and strips the credential headers. `Err` means 401.
    pub async fn authenticate(
        &self,
        api: &Api,
        headers: &mut HeaderMap,
        conn: &ConnInfo,
    ) -> Result<UserInfo, AuthnError> {
        let result = self.authenticate_inner(api, headers, conn).await;
        strip_credentials(headers);
        result
    }

    async fn authenticate_inner(
        &self,
        api: &Api,
        headers: &HeaderMap,
        conn: &ConnInfo,
    ) -> Result<UserInfo, AuthnError> {
        let mut errors = Vec::new();
        if let Some(certs) = &conn.peer_certificates {
            match x509::authenticate(certs) {
                Ok(Some(u)) => return Ok(u.with_authenticated_group()),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        if let Some(token) = bearer_token(headers) {
            match self.authenticate_token(api, token, &[]).await {
                TokenResult::Ok(u, _) => return Ok(u.with_authenticated_group()),
                TokenResult::Invalid(e) => errors.push(e),
                TokenResult::NotMine => errors.push(AuthnError("invalid bearer token".into())),
            }
        }
        if !errors.is_empty() {
            let msg = errors
                .iter()
                .map(|e| e.0.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            tracing::debug!(reason = %msg, "unable to authenticate the request");
            return Err(AuthnError(msg));
        }
        if self.anonymous {
            return Ok(UserInfo::anonymous());
        }
        Err(AuthnError("no credentials provided".into()))
    }

    /// Runs the token authenticators in order (also used by TokenReview). `audiences` are the
    /// audiences the caller wants (empty: the server's own).
    pub async fn authenticate_token(
        &self,
        api: &Api,
        token: &str,
        audiences: &[String],
    ) -> TokenResult {
        let mut first_error = None;
        if let Some(tf) = &self.token_file {
            if let Some(u) = tf.lookup(token) {
                return TokenResult::Ok(u.clone(), audiences.to_vec());
            }
        }
        if let Some(sa) = &self.service_accounts {
            match sa.authenticate(api, token, audiences).await {
                TokenResult::NotMine => {}
                TokenResult::Invalid(e) => {
                    first_error.get_or_insert(e);
                }
                ok => return ok,
            }
        }
        if let Some(oidc) = &self.oidc {
            match oidc.authenticate(token) {
                TokenResult::NotMine => {}
                TokenResult::Invalid(e) => {
                    first_error.get_or_insert(e);
                }
                ok => return ok,
            }
        }
        match first_error {
            Some(e) => TokenResult::Invalid(e),
            None => TokenResult::NotMine,
        }
    }
}

/// The bearer token of `Authorization: Bearer <token>`, if any (an empty token is none).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// Removes `Authorization` and the front-proxy `X-Remote-*` headers.
pub fn strip_credentials(headers: &mut HeaderMap) {
    for h in STRIPPED {
        headers.remove(*h);
    }
    let extra: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| STRIPPED_PREFIXES.iter().any(|p| k.as_str().starts_with(p)))
        .cloned()
        .collect();
    for k in extra {
        headers.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing_and_stripping() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert("authorization", "bearer  xyz ".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("xyz"));
        h.insert("authorization", "Basic Zm9v".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert("x-remote-user", "u".parse().unwrap());
        h.insert("x-remote-extra-scopes", "s".parse().unwrap());
        h.insert("accept", "application/json".parse().unwrap());
        strip_credentials(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn authenticated_group_is_added_once() {
        let u = UserInfo::new("bob", &["dev"]).with_authenticated_group();
        assert_eq!(u.groups, vec!["dev", AUTHENTICATED_GROUP]);
        let u = u.with_authenticated_group();
        assert_eq!(u.groups.len(), 2);
        let a = UserInfo::anonymous().with_authenticated_group();
        assert_eq!(a.groups, vec![UNAUTHENTICATED_GROUP]);
    }
}
