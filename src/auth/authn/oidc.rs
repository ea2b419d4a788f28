//! OIDC ID tokens (`--oidc-*`): the issuer's keys come from a local JWKS file
//! (`--oidc-jwks-file`, kapi's own flag: the issuer is not fetched). The token's `iss` must be
//! `--oidc-issuer-url` and its `aud` must contain `--oidc-client-id`.
//!
//! User name: the `--oidc-username-claim` (default `sub`). Unless `--oidc-username-prefix` is
//! given, claims other than `email` are prefixed with `<issuer>#`; a prefix of `-` disables
//! prefixing. With the `email` claim, `email_verified` must not be false. Groups come from
//! `--oidc-groups-claim` (a string or an array), prefixed with `--oidc-groups-prefix`.

use super::jwt::{self, VerifyKey};
use super::{AuthnError, TokenResult, UserInfo};
use crate::config::Config;
use anyhow::{bail, Context};
use jsonwebtoken::Algorithm;
use serde_json::Value;

pub struct OidcAuthenticator {
    issuer: String,
    client_id: String,
    username_claim: String,
    username_prefix: String,
    groups_claim: Option<String>,
    groups_prefix: String,
    algs: Vec<Algorithm>,
    keys: Vec<VerifyKey>,
}

impl OidcAuthenticator {
    pub fn from_config(cfg: &Config) -> anyhow::Result<Option<Self>> {
        let Some(issuer) = cfg.oidc_issuer_url.clone() else {
            return Ok(None);
        };
        let Some(client_id) = cfg.oidc_client_id.clone() else {
            bail!("--oidc-client-id is required with --oidc-issuer-url");
        };
        let Some(jwks) = &cfg.oidc_jwks_file else {
            bail!("kapi needs --oidc-jwks-file with --oidc-issuer-url (it does not fetch the issuer's keys)");
        };
        let text = std::fs::read(jwks).with_context(|| format!("reading {}", jwks.display()))?;
        let keys = jwt::keys_from_jwks(&text)
            .with_context(|| format!("loading keys from {}", jwks.display()))?;
        let mut algs = Vec::new();
        for a in &cfg.oidc_signing_algs {
            match a.parse::<Algorithm>() {
                Ok(a @ (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)) => {
                    bail!("--oidc-signing-algs: {a:?} is not allowed")
                }
                Ok(a) => algs.push(a),
                Err(_) => bail!("--oidc-signing-algs: unknown algorithm {a:?}"),
            }
        }
        let username_prefix = match cfg.oidc_username_prefix.as_deref() {
            Some("-") => String::new(),
            Some(p) => p.to_string(),
            None if cfg.oidc_username_claim == "email" => String::new(),
            None => format!("{issuer}#"),
        };
        Ok(Some(OidcAuthenticator {
            issuer,
            client_id,
            username_claim: cfg.oidc_username_claim.clone(),
            username_prefix,
            groups_claim: cfg.oidc_groups_claim.clone(),
            groups_prefix: cfg.oidc_groups_prefix.clone().unwrap_or_default(),
            algs,
            keys,
        }))
    }

    pub fn authenticate(&self, token: &str) -> TokenResult {
        let Some(peek) = jwt::peek_claims(token) else {
            return TokenResult::NotMine;
        };
        if peek.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return TokenResult::NotMine;
        }
        match self.validate(token) {
            Ok(u) => TokenResult::Ok(u, vec![self.client_id.clone()]),
            Err(e) => TokenResult::Invalid(AuthnError(format!("oidc: {e}"))),
        }
    }

    fn validate(&self, token: &str) -> Result<UserInfo, String> {
        let claims = jwt::verify(token, &self.keys, Some(&self.algs))?;
        if !jwt::audiences(&claims).contains(&self.client_id) {
            return Err(format!("expected audience {:?}", self.client_id));
        }
        let name = claims
            .get(&self.username_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("claim {:?} not present", self.username_claim))?;
        if self.username_claim == "email"
            && claims.get("email_verified").and_then(Value::as_bool) == Some(false)
        {
            return Err("email not verified".into());
        }
        let mut user = UserInfo {
            name: format!("{}{}", self.username_prefix, name),
            ..Default::default()
        };
        if let Some(gc) = &self.groups_claim {
            let groups: Vec<String> = match claims.get(gc) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(format!("claim {gc:?} is not a string or an array")),
            };
            user.groups = groups
                .into_iter()
                .map(|g| format!("{}{}", self.groups_prefix, g))
                .collect();
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::super::jwt::tests::{ec_keypair, now, sign_es256};
    use super::*;
    use base64::Engine;
    use clap::Parser;
    use serde_json::json;

    fn jwks_for(public_pem: &str, kid: &str) -> String {
        let (_, spki) = rustls_pki_types::pem::PemObject::from_pem_slice(public_pem.as_bytes())
            .map(|d: rustls_pki_types::SubjectPublicKeyInfoDer| (0, d.as_ref().to_vec()))
            .unwrap();
        // The uncompressed point is the last 65 bytes of a P-256 SPKI.
        let point = &spki[spki.len() - 65..];
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": b64(&point[1..33]), "y": b64(&point[33..])}]})
        .to_string()
    }

    #[test]
    fn id_tokens() {
        let (private, public) = ec_keypair();
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, jwks_for(&public, "k1")).unwrap();
        let cfg = crate::config::Config::parse_from([
            "kapi",
            "--oidc-issuer-url=https://issuer.example",
            "--oidc-client-id=kapi",
            "--oidc-groups-claim=groups",
            "--oidc-groups-prefix=oidc:",
            "--oidc-signing-algs=ES256",
            &format!("--oidc-jwks-file={}", jwks.display()),
        ]);
        let a = OidcAuthenticator::from_config(&cfg).unwrap().unwrap();
        let good = json!({"iss": "https://issuer.example", "aud": "kapi", "sub": "u1",
            "groups": ["a", "b"], "exp": now() + 300});
        let t = sign_es256(&private, &good, Some("k1"));
        let TokenResult::Ok(u, _) = a.authenticate(&t) else {
            panic!("not authenticated")
        };
        assert_eq!(u.name, "https://issuer.example#u1");
        assert_eq!(u.groups, vec!["oidc:a", "oidc:b"]);

        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = json!("other");
        let t = sign_es256(&private, &wrong_aud, Some("k1"));
        assert!(matches!(a.authenticate(&t), TokenResult::Invalid(_)));
        let mut other_iss = good.clone();
        other_iss["iss"] = json!("https://elsewhere");
        let t = sign_es256(&private, &other_iss, Some("k1"));
        assert!(matches!(a.authenticate(&t), TokenResult::NotMine));
        let mut expired = good.clone();
        expired["exp"] = json!(now() - 600);
        let t = sign_es256(&private, &expired, Some("k1"));
        assert!(matches!(a.authenticate(&t), TokenResult::Invalid(_)));
    }
}
