//! The security chain: authentication (`authn`), impersonation, authorization (`authz`), and the
//! review APIs that expose them (`review`). The router runs [`Security::check`] for every
//! request, in kube-apiserver's order (API-SEMANTICS §8): authenticate (and strip the
//! credential headers), impersonate, authorize. Nothing is exempt: health, `/version` and
//! discovery are reachable anonymously because the bootstrap RBAC policy
//! (`system:public-info-viewer`, `system:discovery`) grants them, not because they bypass it.

pub mod authn;
pub mod authz;
pub mod impersonation;
pub mod review;

use crate::api::handlers::{error_response, Api, Resp};
use crate::api::status::ApiError;
use crate::config::Config;
use authn::{Authenticator, ConnInfo, UserInfo};
use authz::{Authorizer, Decision};
use http::{HeaderMap, Method};
use std::sync::Arc;

pub struct Security {
    pub api: Arc<Api>,
    pub authn: Authenticator,
    pub authz: Authorizer,
}

/// The 401 every authentication failure gets (the cause is only logged, at debug level).
pub fn unauthorized() -> Resp {
    error_response(&ApiError::new(401, "Unauthorized", "Unauthorized"))
}

impl Security {
    pub fn from_config(cfg: &Config, api: Arc<Api>) -> anyhow::Result<Self> {
        Ok(Security {
            authn: Authenticator::from_config(cfg)?,
            authz: Authorizer::from_config(cfg, api.clone())?,
            api,
        })
    }

    /// Authenticates, impersonates and authorizes one request. `Ok` is the user the request
    /// runs as; `Err` is the 401/403 (or impersonation error) to send instead.
    pub async fn check(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &mut HeaderMap,
        conn: &ConnInfo,
    ) -> Result<UserInfo, Resp> {
        let user = self
            .authn
            .authenticate(&self.api, headers, conn)
            .await
            .map_err(|_| unauthorized())?;
        let user = impersonation::impersonate(&self.authz, user, headers).map_err(|r| *r)?;
        let mut attrs = authz::request_info::attributes(method, path, query);
        attrs.user = user;
        let (decision, reason) = self.authz.authorize(&attrs);
        if decision != Decision::Allow {
            tracing::debug!(
                user = %attrs.user.name,
                verb = %attrs.verb,
                path,
                reason = %reason,
                "request forbidden"
            );
            return Err(authz::forbidden_response(&attrs, &reason));
        }
        Ok(attrs.user)
    }
}
