//! JWT verification shared by the service-account and OIDC authenticators: key loading (PEM
//! public keys, certificates or private keys, RSA or ECDSA; JWKS files) and signature plus
//! time checks. Issuer, audience and claim checks are the callers'.

use anyhow::{anyhow, bail, Context};
use aws_lc_rs::signature::KeyPair;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde_json::{Map, Value};
use x509_parser::prelude::*;

/// A key that verifies signatures, with the algorithms it may be used with.
pub struct VerifyKey {
    pub key: DecodingKey,
    pub algs: Vec<Algorithm>,
    pub kid: Option<String>,
}

const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Clock skew allowed on `exp`, `nbf` and `iat` (go-jose's DefaultLeeway, as kube uses).
pub const LEEWAY_SECONDS: u64 = 60;

fn ec_alg_for_curve(oid: Option<&x509_parser::der_parser::oid::Oid>) -> anyhow::Result<Algorithm> {
    let p256 = x509_parser::oid_registry::OID_EC_P256;
    let p384 = x509_parser::oid_registry::OID_NIST_EC_P384;
    match oid {
        Some(o) if *o == p256 => Ok(Algorithm::ES256),
        Some(o) if *o == p384 => Ok(Algorithm::ES384),
        _ => bail!("unsupported elliptic curve"),
    }
}

fn key_from_spki(spki: &SubjectPublicKeyInfo) -> anyhow::Result<VerifyKey> {
    match spki
        .parsed()
        .map_err(|e| anyhow!("parsing a public key: {e}"))?
    {
        x509_parser::public_key::PublicKey::RSA(rsa) => Ok(VerifyKey {
            key: DecodingKey::from_rsa_raw_components(rsa.modulus, rsa.exponent),
            algs: RSA_ALGS.to_vec(),
            kid: None,
        }),
        x509_parser::public_key::PublicKey::EC(point) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            let alg = ec_alg_for_curve(curve.as_ref())?;
            Ok(VerifyKey {
                key: DecodingKey::from_ec_der(point.data()),
                algs: vec![alg],
                kid: None,
            })
        }
        _ => bail!("unsupported public key type (RSA and ECDSA are supported)"),
    }
}

fn key_from_private(der: &[u8]) -> anyhow::Result<VerifyKey> {
    if let Ok(kp) =
        aws_lc_rs::rsa::KeyPair::from_pkcs8(der).or_else(|_| aws_lc_rs::rsa::KeyPair::from_der(der))
    {
        return Ok(VerifyKey {
            key: DecodingKey::from_rsa_der(kp.public_key().as_ref()),
            algs: RSA_ALGS.to_vec(),
            kid: None,
        });
    }
    for (alg, jwt_alg) in [
        (
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Algorithm::ES256,
        ),
        (
            &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Algorithm::ES384,
        ),
    ] {
        if let Ok(kp) = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_der(alg, der) {
            return Ok(VerifyKey {
                key: DecodingKey::from_ec_der(kp.public_key().as_ref()),
                algs: vec![jwt_alg],
                kid: None,
            });
        }
    }
    bail!("unsupported private key (RSA and ECDSA P-256/P-384 are supported)")
}

/// Every key in a PEM bundle: `PUBLIC KEY`, `CERTIFICATE`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`
/// or `PRIVATE KEY` sections (private keys contribute their public half).
pub fn keys_from_pem(pem: &[u8]) -> anyhow::Result<Vec<VerifyKey>> {
    let mut out = Vec::new();
    for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| anyhow!("reading PEM: {e}"))?;
        let key = match kind {
            SectionKind::PublicKey => {
                let (_, spki) = SubjectPublicKeyInfo::from_der(&der)
                    .map_err(|e| anyhow!("parsing PUBLIC KEY: {e}"))?;
                key_from_spki(&spki)?
            }
            SectionKind::Certificate => {
                let (_, cert) = X509Certificate::from_der(&der)
                    .map_err(|e| anyhow!("parsing CERTIFICATE: {e}"))?;
                key_from_spki(cert.public_key())?
            }
            SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey | SectionKind::PrivateKey => {
                key_from_private(&der)?
            }
            _ => continue,
        };
        out.push(key);
    }
    if out.is_empty() {
        bail!("no public or private key found");
    }
    Ok(out)
}

/// A private key that signs service-account tokens (`--service-account-signing-key-file`):
/// RSA signs RS256, ECDSA P-256 ES256 and P-384 ES384, as kube-apiserver picks by key type.
pub struct SigningKey {
    key: SignerKind,
    pub alg: Algorithm,
    /// kube-apiserver's key id: unpadded base64url of the SHA-256 of the public key's
    /// SubjectPublicKeyInfo DER, so verifiers that match `kid` find the key in `/openid/v1/jwks`.
    pub kid: String,
}

enum SignerKind {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(aws_lc_rs::signature::EcdsaKeyPair),
}

fn key_id(spki_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

impl SigningKey {
    /// The first private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`) in a PEM file.
    pub fn from_pem(pem: &[u8]) -> anyhow::Result<Self> {
        use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
        for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(pem) {
            let (kind, der) = section.map_err(|e| anyhow!("reading PEM: {e}"))?;
            if !matches!(
                kind,
                SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey | SectionKind::PrivateKey
            ) {
                continue;
            }
            if let Ok(kp) = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der)
                .or_else(|_| aws_lc_rs::rsa::KeyPair::from_der(&der))
            {
                let spki: PublicKeyX509Der = kp
                    .public_key()
                    .as_der()
                    .map_err(|_| anyhow!("encoding the RSA public key"))?;
                return Ok(SigningKey {
                    kid: key_id(spki.as_ref()),
                    key: SignerKind::Rsa(kp),
                    alg: Algorithm::RS256,
                });
            }
            for (alg, jwt_alg) in [
                (
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    Algorithm::ES256,
                ),
                (
                    &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    Algorithm::ES384,
                ),
            ] {
                if let Ok(kp) = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_der(alg, &der)
                {
                    let spki: PublicKeyX509Der = kp
                        .public_key()
                        .as_der()
                        .map_err(|_| anyhow!("encoding the ECDSA public key"))?;
                    return Ok(SigningKey {
                        kid: key_id(spki.as_ref()),
                        key: SignerKind::Ec(kp),
                        alg: jwt_alg,
                    });
                }
            }
            bail!("unsupported private key (RSA and ECDSA P-256/P-384 are supported)");
        }
        bail!("no private key found")
    }

    /// A compact JWS of `claims` (header: `alg` and `kid`, as kube-apiserver writes it).
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = serde_json::json!({"alg": format!("{:?}", self.alg), "kid": self.kid});
        let mut out = format!(
            "{}.{}",
            b64.encode(serde_json::to_vec(&header)?),
            b64.encode(serde_json::to_vec(claims)?)
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = match &self.key {
            SignerKind::Rsa(kp) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &rng,
                    out.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| anyhow!("RSA signing failed"))?;
                sig
            }
            SignerKind::Ec(kp) => kp
                .sign(&rng, out.as_bytes())
                .map_err(|_| anyhow!("ECDSA signing failed"))?
                .as_ref()
                .to_vec(),
        };
        out.push('.');
        out.push_str(&b64.encode(sig));
        Ok(out)
    }
}

/// Keys of a JWKS document (`{"keys":[…]}`), keeping each key's `kid`.
pub fn keys_from_jwks(text: &[u8]) -> anyhow::Result<Vec<VerifyKey>> {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(text).context("parsing JWKS")?;
    let mut out = Vec::new();
    for jwk in &set.keys {
        let algs = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (_, Some(a)) => match Algorithm::from_str_opt(&format!("{a:?}")) {
                Some(a) => vec![a],
                None => continue,
            },
            (jsonwebtoken::jwk::AlgorithmParameters::RSA(_), None) => RSA_ALGS.to_vec(),
            (jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p), None) => match p.curve {
                jsonwebtoken::jwk::EllipticCurve::P256 => vec![Algorithm::ES256],
                jsonwebtoken::jwk::EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => continue,
            },
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| anyhow!("JWKS key: {e}"))?;
        out.push(VerifyKey {
            key,
            algs,
            kid: jwk.common.key_id.clone(),
        });
    }
    if out.is_empty() {
        bail!("no usable key in the JWKS");
    }
    Ok(out)
}

trait AlgFromStr {
    fn from_str_opt(s: &str) -> Option<Algorithm>;
}

impl AlgFromStr for Algorithm {
    fn from_str_opt(s: &str) -> Option<Algorithm> {
        s.parse().ok()
    }
}

/// The unverified payload of a compact JWS, used only to pick the authenticator (by `iss`).
pub fn peek_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (_, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Verifies the signature with one of `keys` (restricted to `allowed` algorithms when given)
/// and the time claims (`exp` required, `nbf` honoured, with leeway). Returns the claims.
pub fn verify(
    token: &str,
    keys: &[VerifyKey],
    allowed: Option<&[Algorithm]>,
) -> Result<Map<String, Value>, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
    if allowed.is_some_and(|a| !a.contains(&header.alg)) {
        return Err(format!("unsupported signing algorithm {:?}", header.alg));
    }
    let mut last = "no key verifies the token signature".to_string();
    for k in keys {
        if !k.algs.contains(&header.alg) {
            continue;
        }
        if let (Some(want), Some(have)) = (&header.kid, &k.kid) {
            if want != have {
                continue;
            }
        }
        let mut v = Validation::new(header.alg);
        v.validate_aud = false;
        v.validate_nbf = true;
        v.leeway = LEEWAY_SECONDS;
        v.set_required_spec_claims(&["exp"]);
        match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &v) {
            Ok(data) => return Ok(data.claims),
            Err(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    last = "invalid token signature".into()
                }
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    return Err("token has expired".into())
                }
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    return Err("token is not valid yet".into())
                }
                jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(c) => {
                    return Err(format!("token has no {c} claim"))
                }
                other => last = format!("invalid token: {other:?}"),
            },
        }
    }
    Err(last)
}

/// Audience claim as a list (`aud` may be a string or an array).
pub fn audiences(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    pub fn now() -> i64 {
        ::time::OffsetDateTime::now_utc().unix_timestamp()
    }

    /// An ECDSA P-256 key pair: (private PEM, public PEM).
    pub fn ec_keypair() -> (String, String) {
        let kp = rcgen::KeyPair::generate().unwrap();
        (kp.serialize_pem(), kp.public_key_pem())
    }

    pub fn sign_es256(private_pem: &str, claims: &Value, kid: Option<&str>) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = kid.map(str::to_string);
        jsonwebtoken::encode(
            &h,
            claims,
            &EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn verifies_with_public_or_private_pem() {
        let (private, public) = ec_keypair();
        let claims = json!({"iss": "x", "exp": now() + 600, "sub": "s"});
        let token = sign_es256(&private, &claims, None);
        for pem in [&public, &private] {
            let keys = keys_from_pem(pem.as_bytes()).unwrap();
            let c = verify(&token, &keys, None).unwrap();
            assert_eq!(c["sub"], "s");
        }
        assert_eq!(peek_claims(&token).unwrap()["iss"], "x");
        let (other, _) = ec_keypair();
        let forged = sign_es256(&other, &claims, None);
        let keys = keys_from_pem(public.as_bytes()).unwrap();
        assert!(verify(&forged, &keys, None).is_err());
        let expired = sign_es256(&private, &json!({"exp": now() - 3600}), None);
        assert_eq!(
            verify(&expired, &keys, None).unwrap_err(),
            "token has expired"
        );
        assert!(verify(&token, &keys, Some(&[Algorithm::RS256])).is_err());
        assert!(keys_from_pem(b"nothing").is_err());
    }

    #[test]
    fn signing_keys_round_trip() {
        let (private, public) = ec_keypair();
        let signer = SigningKey::from_pem(private.as_bytes()).unwrap();
        assert_eq!(signer.alg, Algorithm::ES256);
        let token = signer
            .sign(&json!({"iss": "x", "exp": now() + 600, "sub": "s"}))
            .unwrap();
        let keys = keys_from_pem(public.as_bytes()).unwrap();
        assert_eq!(verify(&token, &keys, None).unwrap()["sub"], "s");
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(signer.kid.as_str()));
        // The kid is the SPKI hash, as kube-apiserver computes it (43 base64url characters).
        assert_eq!(signer.kid.len(), 43);
        assert!(SigningKey::from_pem(public.as_bytes()).is_err());

        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        use aws_lc_rs::encoding::AsDer;
        let der = kp.as_der().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        );
        let signer = SigningKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(signer.alg, Algorithm::RS256);
        let token = signer.sign(&json!({"exp": now() + 60})).unwrap();
        verify(&token, &keys_from_pem(pem.as_bytes()).unwrap(), None).unwrap();
    }

    #[test]
    fn rsa_private_key_pem() {
        // rcgen cannot generate RSA keys with aws-lc-rs; build one through aws-lc-rs directly.
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        use aws_lc_rs::encoding::AsDer;
        let der = kp.as_der().unwrap();
        let pem = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_ref().to_vec());
        let pem_text = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pem.secret_pkcs8_der())
        );
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &json!({"exp": now() + 60}),
            &EncodingKey::from_rsa_pem(pem_text.as_bytes()).unwrap(),
        )
        .unwrap();
        let keys = keys_from_pem(pem_text.as_bytes()).unwrap();
        verify(&token, &keys, None).unwrap();
    }
}
