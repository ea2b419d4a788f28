//! Encryption at rest: a `Store` wrapper configured by `--encryption-provider-config`, an
//! `apiserver.config.k8s.io/v1` `EncryptionConfiguration` (API-SEMANTICS §1 "Encryption at rest").
//!
//! Values are transformed exactly as kube-apiserver does, so an etcd written by one can be read by
//! the other with the same configuration:
//! - `aescbc`: `k8s:enc:aescbc:v1:<key>:` + 16-byte random IV + AES-CBC(PKCS#7-padded value).
//! - `aesgcm`: `k8s:enc:aesgcm:v1:<key>:` + 12-byte random nonce + AES-GCM(value) with the tag
//!   appended; the additional authenticated data is the full etcd key, so a value copied to
//!   another key does not decrypt.
//! - `secretbox`: `k8s:enc:secretbox:v1:<key>:` + 24-byte random nonce + NaCl secretbox
//!   (XSalsa20-Poly1305, tag first).
//! - `identity`: the value as is.
//!
//! Writes use the first provider of the resource's list (and its first key). Reads pick the
//! provider by the value's prefix and the key by the name after it, trying the providers in order;
//! an unprefixed value is read by `identity` only if it is listed (a value starting `k8s:enc:`
//! is never read as plaintext). A value no provider can read is an error, as in kube-apiserver.
//!
//! Each key belongs to the resource whose storage prefix it is under (as in `metered.rs`);
//! resources the configuration does not name are passed through untouched, except that an
//! encrypted value there is refused, like kube-apiserver's default "encrypt-check" identity.

use super::{
    KeyValue, RangeResult, Revision, Store, StoreError, StoreEvent, StoreResult, WatchMessage,
};
use crate::api::catalogue;
use aes_gcm::aead::{consts::U12, Aead as _, KeyInit as _, Payload};
use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use cbc::cipher::{block_padding::Pkcs7, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use futures::stream::{self, BoxStream, StreamExt};
use rand::RngCore;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

const AESCBC_PREFIX: &str = "k8s:enc:aescbc:v1:";
const AESGCM_PREFIX: &str = "k8s:enc:aesgcm:v1:";
const SECRETBOX_PREFIX: &str = "k8s:enc:secretbox:v1:";
/// Every encrypting provider's prefix starts with this; `identity` refuses such values.
const ENCRYPTED_MARKER: &[u8] = b"k8s:enc:";

const AES_BLOCK: usize = 16;
const GCM_NONCE: usize = 12;
const SECRETBOX_NONCE: usize = 24;
const SECRETBOX_OVERHEAD: usize = 16;

// ---- The configuration file ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileConfig {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<FileResource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileResource {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<FileProvider>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProvider {
    aescbc: Option<FileKeys>,
    aesgcm: Option<FileKeys>,
    secretbox: Option<FileKeys>,
    identity: Option<FileIdentity>,
    kms: Option<serde_norway::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKeys {
    #[serde(default)]
    keys: Vec<FileKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIdentity {}

/// A parsed `resource` or `resource.group` entry (`schema.ParseGroupResource`).
fn parse_group_resource(s: &str) -> (String, String) {
    match s.split_once('.') {
        Some((resource, group)) => (group.to_string(), resource.to_string()),
        None => (String::new(), s.to_string()),
    }
}

fn gr_string(group: &str, resource: &str) -> String {
    format!("{resource}.{group}")
}

// ---- Providers ----

/// An AES key of any of the three sizes, kept as bytes: the key schedule is cheap next to a
/// store round trip, and keeping bytes lets one code path serve CBC for all sizes.
#[derive(Clone)]
struct AesKey(Vec<u8>);

enum GcmCipher {
    A128(Box<aes_gcm::Aes128Gcm>),
    A192(Box<aes_gcm::AesGcm<aes::Aes192, U12>>),
    A256(Box<aes_gcm::Aes256Gcm>),
}

struct Named<K> {
    name: String,
    key: K,
}

enum Provider {
    Identity,
    AesCbc(Vec<Named<AesKey>>),
    AesGcm(Vec<Named<GcmCipher>>),
    Secretbox(Vec<Named<crypto_secretbox::XSalsa20Poly1305>>),
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

fn cbc_encrypt(key: &[u8], iv: &[u8; AES_BLOCK], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; plaintext.len() + AES_BLOCK - plaintext.len() % AES_BLOCK];
    macro_rules! run {
        ($c:ty) => {
            cbc::Encryptor::<$c>::new_from_slices(key, iv)
                .map_err(|e| e.to_string())?
                .encrypt_padded_b2b::<Pkcs7>(plaintext, &mut out)
                .map(|ct| ct.len())
        };
    }
    let n = match key.len() {
        16 => run!(aes::Aes128),
        24 => run!(aes::Aes192),
        32 => run!(aes::Aes256),
        n => return Err(format!("invalid AES key size {n}")),
    }
    .map_err(|_| "AES-CBC padding failed".to_string())?;
    out.truncate(n);
    Ok(out)
}

fn cbc_decrypt(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, String> {
    let mut buf = ciphertext.to_vec();
    macro_rules! run {
        ($c:ty) => {
            cbc::Decryptor::<$c>::new_from_slices(key, iv)
                .map_err(|e| e.to_string())?
                .decrypt_padded::<Pkcs7>(&mut buf)
                .map(|pt| pt.len())
        };
    }
    let n = match key.len() {
        16 => run!(aes::Aes128),
        24 => run!(aes::Aes192),
        32 => run!(aes::Aes256),
        n => return Err(format!("invalid AES key size {n}")),
    }
    .map_err(|_| "invalid padding on input".to_string())?;
    buf.truncate(n);
    Ok(buf)
}

impl Provider {
    fn name(&self) -> &'static str {
        match self {
            Provider::Identity => "identity",
            Provider::AesCbc(_) => "aescbc",
            Provider::AesGcm(_) => "aesgcm",
            Provider::Secretbox(_) => "secretbox",
        }
    }

    /// The provider-level prefix (`""` for identity).
    fn prefix(&self) -> &'static str {
        match self {
            Provider::Identity => "",
            Provider::AesCbc(_) => AESCBC_PREFIX,
            Provider::AesGcm(_) => AESGCM_PREFIX,
            Provider::Secretbox(_) => SECRETBOX_PREFIX,
        }
    }

    /// `k8s:enc:<provider>:v1:<first key>:` + the sealed value.
    fn encrypt(&self, etcd_key: &str, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let head = |name: &str, cap: usize| {
            let mut v = Vec::with_capacity(self.prefix().len() + name.len() + 1 + cap);
            v.extend_from_slice(self.prefix().as_bytes());
            v.extend_from_slice(name.as_bytes());
            v.push(b':');
            v
        };
        match self {
            Provider::Identity => Ok(plaintext.to_vec()),
            Provider::AesCbc(keys) => {
                let k = &keys[0];
                let iv = random::<AES_BLOCK>();
                let ct = cbc_encrypt(&k.key.0, &iv, plaintext)?;
                let mut out = head(&k.name, AES_BLOCK + ct.len());
                out.extend_from_slice(&iv);
                out.extend_from_slice(&ct);
                Ok(out)
            }
            Provider::AesGcm(keys) => {
                let k = &keys[0];
                let nonce = random::<GCM_NONCE>();
                let payload = Payload {
                    msg: plaintext,
                    aad: etcd_key.as_bytes(),
                };
                let n = &aes_gcm::Nonce::<U12>::from(nonce);
                let ct = match &k.key {
                    GcmCipher::A128(c) => c.encrypt(n, payload),
                    GcmCipher::A192(c) => c.encrypt(n, payload),
                    GcmCipher::A256(c) => c.encrypt(n, payload),
                }
                .map_err(|_| "AES-GCM encryption failed".to_string())?;
                let mut out = head(&k.name, GCM_NONCE + ct.len());
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&ct);
                Ok(out)
            }
            Provider::Secretbox(keys) => {
                use crypto_secretbox::aead::Aead as _;
                let k = &keys[0];
                let nonce = random::<SECRETBOX_NONCE>();
                let sealed = k
                    .key
                    .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), plaintext)
                    .map_err(|_| "secretbox encryption failed".to_string())?;
                let mut out = head(&k.name, SECRETBOX_NONCE + sealed.len());
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
                Ok(out)
            }
        }
    }

    /// Opens `data` (the value with this provider's prefix already removed).
    fn decrypt(&self, etcd_key: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        fn pick<'a, K>(
            keys: &'a [Named<K>],
            data: &'a [u8],
            what: &str,
        ) -> Result<(&'a K, &'a [u8]), String> {
            keys.iter()
                .find_map(|k| {
                    let rest = data.strip_prefix(k.name.as_bytes())?.strip_prefix(b":")?;
                    Some((&k.key, rest))
                })
                .ok_or_else(|| {
                    format!("no matching key was found for the provided {what} transformer")
                })
        }
        const SHORT: &str = "the stored data was shorter than the required size";
        match self {
            Provider::Identity => {
                if data.starts_with(ENCRYPTED_MARKER) {
                    Err("identity transformer tried to read encrypted data".into())
                } else {
                    Ok(data.to_vec())
                }
            }
            Provider::AesCbc(keys) => {
                let (key, body) = pick(keys, data, "AES")?;
                if body.len() < AES_BLOCK {
                    return Err(SHORT.into());
                }
                let (iv, ct) = body.split_at(AES_BLOCK);
                if ct.is_empty() || ct.len() % AES_BLOCK != 0 {
                    return Err("the stored data is not a multiple of the block size".into());
                }
                cbc_decrypt(&key.0, iv, ct)
            }
            Provider::AesGcm(keys) => {
                let (key, body) = pick(keys, data, "AES")?;
                if body.len() < GCM_NONCE {
                    return Err(SHORT.into());
                }
                let (nonce, ct) = body.split_at(GCM_NONCE);
                let payload = Payload {
                    msg: ct,
                    aad: etcd_key.as_bytes(),
                };
                let n = &aes_gcm::Nonce::<U12>::try_from(nonce).map_err(|_| SHORT.to_string())?;
                match key {
                    GcmCipher::A128(c) => c.decrypt(n, payload),
                    GcmCipher::A192(c) => c.decrypt(n, payload),
                    GcmCipher::A256(c) => c.decrypt(n, payload),
                }
                .map_err(|_| "cipher: message authentication failed".to_string())
            }
            Provider::Secretbox(keys) => {
                use crypto_secretbox::aead::Aead as _;
                let (key, body) = pick(keys, data, "Secretbox")?;
                if body.len() < SECRETBOX_NONCE + SECRETBOX_OVERHEAD {
                    return Err(SHORT.into());
                }
                let (nonce, sealed) = body.split_at(SECRETBOX_NONCE);
                key.decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
                    .map_err(|_| "secretbox: message authentication failed".to_string())
            }
        }
    }
}

/// The ordered providers of one resource (kube-apiserver's `PrefixTransformers`).
pub struct Transformer {
    providers: Vec<Arc<Provider>>,
}

impl Transformer {
    /// Seals `plaintext` for `etcd_key` with the first provider.
    pub fn encrypt(&self, etcd_key: &str, plaintext: &[u8]) -> Result<Bytes, String> {
        let p = &self.providers[0];
        let r = p.encrypt(etcd_key, plaintext).map(Bytes::from);
        record("to_storage", p, r.is_ok());
        r
    }

    /// Opens a stored value with the providers whose prefix it carries, in order. A failure does
    /// not stop the search (two providers of one kind share a prefix, e.g. aescbc with a new key
    /// listed before aescbc with the old one); an identity provider refusing encrypted data is
    /// skipped silently. If none succeeds, the errors are reported as kube-apiserver's aggregate
    /// (`msg`, or `[msg1, msg2]` for several distinct ones).
    pub fn decrypt(&self, etcd_key: &str, stored: &Bytes) -> Result<Bytes, String> {
        let mut errors: Vec<String> = Vec::new();
        for p in &self.providers {
            let prefix = p.prefix().as_bytes();
            if !stored.starts_with(prefix) {
                continue;
            }
            if prefix.is_empty() {
                if stored.starts_with(ENCRYPTED_MARKER) {
                    continue;
                }
                record("from_storage", p, true);
                return Ok(stored.clone());
            }
            let r = p.decrypt(etcd_key, &stored[prefix.len()..]);
            record("from_storage", p, r.is_ok());
            match r {
                Ok(plain) => return Ok(Bytes::from(plain)),
                Err(e) if !errors.contains(&e) => errors.push(e),
                Err(_) => {}
            }
        }
        match errors.len() {
            0 => Err("no matching prefix found".into()),
            1 => Err(errors.remove(0)),
            _ => Err(format!("[{}]", errors.join(", "))),
        }
    }

    /// The provider that writes (for logs and tests).
    pub fn write_provider(&self) -> &'static str {
        self.providers[0].name()
    }
}

/// apiserver_storage_transformation_operations_total, labelled like kube-apiserver's.
fn record(kind: &'static str, p: &Provider, ok: bool) {
    let prefix = match p {
        Provider::Identity => "identity",
        other => other.prefix(),
    };
    metrics::counter!(
        "apiserver_storage_transformation_operations_total",
        "transformation_type" => kind,
        "transformer_prefix" => prefix,
        "status" => if ok { "OK" } else { "Unknown" }
    )
    .increment(1);
}

fn decode_keys(
    keys: &[FileKey],
    what: &str,
    sizes: &[usize],
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    if keys.is_empty() {
        anyhow::bail!("{what} provider has no valid keys");
    }
    let mut out = Vec::new();
    for k in keys {
        if k.name.is_empty() {
            anyhow::bail!("key with invalid name provided");
        }
        if k.secret.is_empty() {
            anyhow::bail!("key {} has no provided secret", k.name);
        }
        let secret = base64::engine::general_purpose::STANDARD
            .decode(k.secret.trim())
            .map_err(|_| anyhow::anyhow!("key {}: secrets must be base64 encoded", k.name))?;
        if !sizes.contains(&secret.len()) {
            anyhow::bail!(
                "key {}: secret is not of the expected length, got {}, expected one of {sizes:?}",
                k.name,
                secret.len()
            );
        }
        out.push((k.name.clone(), secret));
    }
    Ok(out)
}

fn build_provider(p: &FileProvider) -> anyhow::Result<Provider> {
    let count = [
        p.aescbc.is_some(),
        p.aesgcm.is_some(),
        p.secretbox.is_some(),
        p.identity.is_some(),
        p.kms.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if count == 0 {
        anyhow::bail!("provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity");
    }
    if count > 1 {
        anyhow::bail!("more than one provider specified in a single element, should split into different list elements");
    }
    if p.kms.is_some() {
        anyhow::bail!(
            "the kms provider is not supported by kapi (use aescbc, aesgcm, secretbox or identity)"
        );
    }
    if p.identity.is_some() {
        return Ok(Provider::Identity);
    }
    if let Some(c) = &p.aescbc {
        let keys = decode_keys(&c.keys, "aes", &[16, 24, 32])?;
        return Ok(Provider::AesCbc(
            keys.into_iter()
                .map(|(name, key)| Named {
                    name,
                    key: AesKey(key),
                })
                .collect(),
        ));
    }
    if let Some(c) = &p.aesgcm {
        let keys = decode_keys(&c.keys, "aes", &[16, 24, 32])?;
        let mut out = Vec::new();
        for (name, key) in keys {
            let key = match key.len() {
                16 => GcmCipher::A128(Box::new(aes_gcm::Aes128Gcm::new_from_slice(&key)?)),
                24 => GcmCipher::A192(Box::new(aes_gcm::AesGcm::new_from_slice(&key)?)),
                _ => GcmCipher::A256(Box::new(aes_gcm::Aes256Gcm::new_from_slice(&key)?)),
            };
            out.push(Named { name, key });
        }
        return Ok(Provider::AesGcm(out));
    }
    let c = p.secretbox.as_ref().expect("one provider is set");
    let keys = decode_keys(&c.keys, "secretbox", &[32])?;
    let mut out = Vec::new();
    for (name, key) in keys {
        let key =
            <crypto_secretbox::XSalsa20Poly1305 as crypto_secretbox::KeyInit>::new_from_slice(&key)
                .map_err(|_| anyhow::anyhow!("expected key size 32 for secretbox provider"))?;
        out.push(Named { name, key });
    }
    Ok(Provider::Secretbox(out))
}

/// Checks one rule's resource list as kube-apiserver's `validateResourceNames` and
/// `validateResourceOverlap` do.
fn validate_resources(i: usize, resources: &[String]) -> anyhow::Result<()> {
    let path = format!("resources[{i}].resources");
    if resources.is_empty() {
        anyhow::bail!("{path}: Required value: at least one {path} is required");
    }
    for (j, r) in resources.iter().enumerate() {
        let bad = |msg: &str| anyhow::anyhow!("{path}[{j}]: Invalid value: {r:?}: {msg}");
        if r.to_lowercase() != *r {
            return Err(bad("resource name should not contain capital letters"));
        }
        if r == "*" {
            return Err(bad("use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"));
        }
        if matches!(
            r.as_str(),
            "apiserveripinfo" | "serviceipallocations" | "servicenodeportallocations"
        ) {
            return Err(bad(
                "resources which do not have REST API/s cannot be encrypted",
            ));
        }
        let (group, resource) = parse_group_resource(r);
        if group == "events.k8s.io" {
            return Err(bad("'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file"));
        }
        if group == "extensions" {
            return Err(bad(
                "'extensions' group has been removed and cannot be used for encryption",
            ));
        }
        if group == "*" && resource != "*" {
            return Err(bad(
                "encrypting the same resource across groups is not supported",
            ));
        }
    }
    let parsed: Vec<(String, String)> = resources.iter().map(|r| parse_group_resource(r)).collect();
    for (a, r1) in parsed.iter().enumerate() {
        for (b, r2) in parsed.iter().enumerate() {
            if a == b {
                continue;
            }
            if r1 == r2 {
                anyhow::bail!("{path}: Invalid value: {resources:?}: the same resource cannot be specified multiple times");
            }
            let any = r1.0 == "*" && r1.1 == "*";
            if any || (r1.0 == r2.0 && (r1.1 == "*" || r2.1 == "*")) {
                anyhow::bail!("{path}: Invalid value: {resources:?}: using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked");
            }
        }
    }
    Ok(())
}

/// The parsed `EncryptionConfiguration`: a transformer per (group, resource) pattern.
pub struct EncryptionConfig {
    /// Keyed by (group, resource); either may be `*` (`*.*`, `*.<group>`, `*.` for core).
    rules: HashMap<(String, String), Arc<Transformer>>,
}

impl EncryptionConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("error reading encryption provider configuration file {path:?}: {e}")
        })?;
        if text.trim().is_empty() {
            anyhow::bail!("encryption provider configuration file {path:?} is empty");
        }
        Self::parse(&text)
            .map_err(|e| anyhow::anyhow!("encryption provider configuration file {path:?}: {e}"))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: FileConfig = serde_norway::from_str(text)?;
        match (file.api_version.as_deref(), file.kind.as_deref()) {
            (Some("apiserver.config.k8s.io/v1"), Some("EncryptionConfiguration")) => {}
            (v, k) => anyhow::bail!(
                "expected apiVersion apiserver.config.k8s.io/v1 and kind EncryptionConfiguration, got {:?} {:?}",
                v.unwrap_or(""),
                k.unwrap_or("")
            ),
        }
        if file.resources.is_empty() {
            anyhow::bail!("resources: Required value: at least one resources is required");
        }
        let mut lists: HashMap<(String, String), Vec<Arc<Provider>>> = HashMap::new();
        for (i, rule) in file.resources.iter().enumerate() {
            validate_resources(i, &rule.resources)?;
            if rule.providers.is_empty() {
                anyhow::bail!("resources[{i}].providers: Required value: at least one resources[{i}].providers is required");
            }
            let providers = rule
                .providers
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    build_provider(p)
                        .map(Arc::new)
                        .map_err(|e| anyhow::anyhow!("resources[{i}].providers[{j}]: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            for r in &rule.resources {
                let (group, resource) = parse_group_resource(r);
                let any_in_group = (group.clone(), "*".to_string());
                if lists.contains_key(&any_in_group) {
                    anyhow::bail!(
                        "resource {r:?} is masked by earlier rule {:?}",
                        gr_string(&group, "*")
                    );
                }
                if lists.contains_key(&("*".to_string(), "*".to_string())) {
                    anyhow::bail!("resource {r:?} is masked by earlier rule \"*.*\"");
                }
                lists
                    .entry((group, resource))
                    .or_default()
                    .extend(providers.iter().cloned());
            }
        }
        Ok(EncryptionConfig {
            rules: lists
                .into_iter()
                .map(|(gr, providers)| (gr, Arc::new(Transformer { providers })))
                .collect(),
        })
    }

    /// The transformer for a resource: exact match, then `*.<group>`, then `*.*`.
    pub fn for_resource(&self, group: &str, resource: &str) -> Option<Arc<Transformer>> {
        let get = |g: &str, r: &str| self.rules.get(&(g.to_string(), r.to_string())).cloned();
        get(group, resource)
            .or_else(|| get(group, "*"))
            .or_else(|| get("*", "*"))
    }
}

// ---- The Store wrapper ----

/// What to do with a key's values.
enum Mode {
    /// A configured resource.
    Transform(Arc<Transformer>),
    /// A known resource the configuration leaves alone: plaintext, but encrypted values are
    /// refused (kube-apiserver's `identity.NewEncryptCheckTransformer`).
    Check,
    /// Not a resource's key (or one kapi cannot attribute): untouched.
    Raw,
}

/// The key → transformer mapping and the value transforms, shared with watch streams.
struct Transforms {
    /// `--etcd-prefix` with a trailing slash.
    prefix: String,
    config: EncryptionConfig,
    /// Storage prefix (with a trailing `/`) → its resource's transformer, longest first.
    table: Vec<(String, Option<Arc<Transformer>>)>,
}

pub struct Encrypted<S> {
    inner: S,
    t: Arc<Transforms>,
}

/// A value that cannot be transformed: kube-apiserver answers 500 InternalError with the
/// transformer's message alone (the key is only logged).
fn transform_error(key: &str, e: &str) -> StoreError {
    tracing::error!(key, error = e, "unable to transform a stored value");
    StoreError::Internal(e.to_string())
}

/// Lists name the key that failed (kube-apiserver's GetList: `unable to transform key "k": e`).
fn keyed(key: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Internal(m) => {
            StoreError::Internal(format!("unable to transform key {key:?}: {m}"))
        }
        other => other,
    }
}

impl<S: Store> Encrypted<S> {
    pub fn new(inner: S, etcd_prefix: &str, config: EncryptionConfig) -> Self {
        let mut table: Vec<(String, Option<Arc<Transformer>>)> = catalogue::all()
            .iter()
            .filter(|r| r.conversion.is_none())
            .map(|r| {
                (
                    format!("{}/", r.storage_prefix),
                    config.for_resource(r.group, r.plural),
                )
            })
            .collect();
        table.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        table.dedup_by(|a, b| a.0 == b.0);
        Encrypted {
            inner,
            t: Arc::new(Transforms {
                prefix: format!("{}/", etcd_prefix.trim_end_matches('/')),
                config,
                table,
            }),
        }
    }
}

impl Transforms {
    fn mode(&self, key: &str) -> Mode {
        let Some(rest) = key.strip_prefix(&self.prefix) else {
            return Mode::Raw;
        };
        if let Some((_, t)) = self
            .table
            .iter()
            .find(|(p, _)| rest.starts_with(p.as_str()))
        {
            return match t {
                Some(t) => Mode::Transform(t.clone()),
                None => Mode::Check,
            };
        }
        // Custom resources: `<group>/<plural>/...` (a group always has a dot).
        let mut parts = rest.splitn(3, '/');
        if let (Some(group), Some(plural), Some(_)) = (parts.next(), parts.next(), parts.next()) {
            if group.contains('.') {
                return match self.config.for_resource(group, plural) {
                    Some(t) => Mode::Transform(t),
                    None => Mode::Check,
                };
            }
        }
        Mode::Raw
    }

    fn encrypt(&self, key: &str, value: Bytes) -> StoreResult<Bytes> {
        match self.mode(key) {
            Mode::Transform(t) => t.encrypt(key, &value).map_err(|e| transform_error(key, &e)),
            Mode::Check | Mode::Raw => Ok(value),
        }
    }

    fn decrypt(&self, key: &str, value: &Bytes) -> StoreResult<Bytes> {
        match self.mode(key) {
            Mode::Transform(t) => t.decrypt(key, value).map_err(|e| transform_error(key, &e)),
            Mode::Check if value.starts_with(ENCRYPTED_MARKER) => Err(transform_error(
                key,
                "identity transformer tried to read encrypted data",
            )),
            Mode::Check | Mode::Raw => Ok(value.clone()),
        }
    }

    fn open_kv(&self, mut kv: KeyValue) -> StoreResult<KeyValue> {
        kv.value = self.decrypt(&kv.key, &kv.value)?;
        Ok(kv)
    }

    fn open_error(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Conflict { current: Some(kv) } => match self.open_kv(kv) {
                Ok(kv) => StoreError::Conflict { current: Some(kv) },
                Err(e) => e,
            },
            other => other,
        }
    }

    fn open_event(&self, ev: StoreEvent) -> StoreResult<StoreEvent> {
        Ok(match ev {
            StoreEvent::Put { kv, prev } => StoreEvent::Put {
                kv: self.open_kv(kv)?,
                prev: prev.map(|p| self.open_kv(p)).transpose()?,
            },
            StoreEvent::Delete {
                key,
                revision,
                prev,
            } => StoreEvent::Delete {
                key,
                revision,
                prev: prev.map(|p| self.open_kv(p)).transpose()?,
            },
        })
    }
}

#[async_trait]
impl<S: Store> Store for Encrypted<S> {
    async fn get(&self, key: &str) -> StoreResult<(Option<KeyValue>, Revision)> {
        let (kv, rev) = self.inner.get(key).await?;
        Ok((kv.map(|kv| self.t.open_kv(kv)).transpose()?, rev))
    }

    async fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: i64,
        revision: Revision,
    ) -> StoreResult<RangeResult> {
        let mut r = self.inner.range(prefix, start, limit, revision).await?;
        r.kvs = std::mem::take(&mut r.kvs)
            .into_iter()
            .map(|kv| {
                let key = kv.key.clone();
                self.t.open_kv(kv).map_err(|e| keyed(&key, e))
            })
            .collect::<StoreResult<_>>()?;
        Ok(r)
    }

    async fn count(
        &self,
        prefix: &str,
        revision: Revision,
        min_mod_revision: Revision,
    ) -> StoreResult<i64> {
        self.inner.count(prefix, revision, min_mod_revision).await
    }

    async fn create(&self, key: &str, value: Bytes) -> StoreResult<Revision> {
        let value = self.t.encrypt(key, value)?;
        self.inner
            .create(key, value)
            .await
            .map_err(|e| self.t.open_error(e))
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> StoreResult<Revision> {
        let value = self.t.encrypt(key, value)?;
        self.inner
            .update(key, value, expected)
            .await
            .map_err(|e| self.t.open_error(e))
    }

    async fn delete(&self, key: &str, expected: Revision) -> StoreResult<Revision> {
        self.inner
            .delete(key, expected)
            .await
            .map_err(|e| self.t.open_error(e))
    }

    /// Decrypts every event's value and previous value. A value that cannot be read ends the
    /// stream with the error, as kube-apiserver's watcher does.
    async fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> StoreResult<BoxStream<'static, StoreResult<WatchMessage>>> {
        let inner = self.inner.watch(prefix, from).await?;
        let t = self.t.clone();
        let s = inner
            .map(move |msg| match msg {
                Ok(WatchMessage::Events(evs)) => evs
                    .into_iter()
                    .map(|ev| t.open_event(ev))
                    .collect::<StoreResult<Vec<_>>>()
                    .map(WatchMessage::Events),
                other => other,
            })
            .scan(false, |failed, item| {
                if *failed {
                    return futures::future::ready(None);
                }
                *failed = item.is_err();
                futures::future::ready(Some(item))
            });
        Ok(stream::StreamExt::boxed(s))
    }

    async fn current_revision(&self) -> StoreResult<Revision> {
        self.inner.current_revision().await
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        self.inner.compact(revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::EmbeddedStore;

    const KEY1: &str = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE="; // 32 × '1'
    const KEY2: &str = "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI="; // 32 × '2'
    const KEY16: &str = "MzMzMzMzMzMzMzMzMzMzMw=="; // 16 × '3'
    const KEY24: &str = "NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0"; // 24 × '4'
    const SECRET_KEY: &str = "/registry/secrets/default/s1";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn config(resources: &str, providers: &str) -> EncryptionConfig {
        let yaml = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: {resources}\n  providers:\n{providers}"
        );
        EncryptionConfig::parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    fn keys(kind: &str, keys: &[(&str, &str)]) -> String {
        let mut s = format!("  - {kind}:\n      keys:\n");
        for (n, k) in keys {
            s += &format!("      - name: {n}\n        secret: {k}\n");
        }
        s
    }

    fn secrets(providers: &str) -> Arc<Transformer> {
        config("[secrets]", providers)
            .for_resource("", "secrets")
            .unwrap()
    }

    #[test]
    fn aescbc_round_trip_and_prefix() {
        for k in [KEY1, KEY16, KEY24] {
            let t = secrets(&keys("aescbc", &[("key1", k)]));
            let sealed = t.encrypt(SECRET_KEY, b"hello kapi").unwrap();
            let body = sealed
                .strip_prefix(b"k8s:enc:aescbc:v1:key1:")
                .expect("prefix");
            // IV + one padded block.
            assert_eq!(body.len(), 32);
            assert!(!sealed.windows(5).any(|w| w == b"hello"));
            assert_eq!(&t.decrypt(SECRET_KEY, &sealed).unwrap()[..], b"hello kapi");
            // CBC carries no AAD: the value reads under any key.
            assert_eq!(
                &t.decrypt("/registry/secrets/x/y", &sealed).unwrap()[..],
                b"hello kapi"
            );
            // A random IV per write.
            assert_ne!(sealed, t.encrypt(SECRET_KEY, b"hello kapi").unwrap());
        }
        // Exactly 16 bytes of plaintext gets a whole block of padding.
        let t = secrets(&keys("aescbc", &[("key1", KEY1)]));
        assert_eq!(
            t.encrypt(SECRET_KEY, &[7u8; 16]).unwrap().len(),
            23 + 16 + 32
        );
        assert_eq!(
            &t.decrypt(SECRET_KEY, &t.encrypt(SECRET_KEY, b"").unwrap())
                .unwrap()[..],
            b""
        );
    }

    #[test]
    fn aescbc_known_answer() {
        // openssl enc -aes-256-cbc -K 11…11 -iv 000102…0f <<< "hello kapi" (no newline).
        let key = [0x11u8; 32];
        let iv: [u8; 16] = core::array::from_fn(|i| i as u8);
        let ct = cbc_encrypt(&key, &iv, b"hello kapi").unwrap();
        assert_eq!(ct, hex("b236baecf973940a7ba8d32b21e8e268"));
        let t = secrets(&keys(
            "aescbc",
            &[("k", "ERERERERERERERERERERERERERERERERERERERERERE=")],
        ));
        let mut stored = b"k8s:enc:aescbc:v1:k:".to_vec();
        stored.extend_from_slice(&iv);
        stored.extend_from_slice(&ct);
        assert_eq!(
            &t.decrypt(SECRET_KEY, &Bytes::from(stored)).unwrap()[..],
            b"hello kapi"
        );
    }

    #[test]
    fn aesgcm_round_trip_prefix_and_aad() {
        for k in [KEY1, KEY16, KEY24] {
            let t = secrets(&keys("aesgcm", &[("key1", k)]));
            let sealed = t.encrypt(SECRET_KEY, b"hello kapi").unwrap();
            let body = sealed
                .strip_prefix(b"k8s:enc:aesgcm:v1:key1:")
                .expect("prefix");
            assert_eq!(body.len(), 12 + 10 + 16);
            assert_eq!(&t.decrypt(SECRET_KEY, &sealed).unwrap()[..], b"hello kapi");
            // The etcd key is the additional data: the same bytes under another key fail.
            let err = t
                .decrypt("/registry/secrets/default/s2", &sealed)
                .unwrap_err();
            assert!(err.contains("authentication failed"), "{err}");
        }
    }

    #[test]
    fn aesgcm_known_answer() {
        // Python `cryptography`: AESGCM(22…22).encrypt(000102…0b, b"hello kapi", key).
        let t = secrets(&keys(
            "aesgcm",
            &[("k", "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=")],
        ));
        let mut stored = b"k8s:enc:aesgcm:v1:k:".to_vec();
        stored.extend((0u8..12).collect::<Vec<_>>());
        stored.extend(hex("2ea5fb73d40de3a5485f82c1ec11b0c971d96ab8a5c522770ae2"));
        assert_eq!(
            &t.decrypt(SECRET_KEY, &Bytes::from(stored)).unwrap()[..],
            b"hello kapi"
        );
    }

    #[test]
    fn secretbox_round_trip_prefix_and_known_answer() {
        let t = secrets(&keys("secretbox", &[("key1", KEY1)]));
        let sealed = t.encrypt(SECRET_KEY, b"hello kapi").unwrap();
        let body = sealed
            .strip_prefix(b"k8s:enc:secretbox:v1:key1:")
            .expect("prefix");
        assert_eq!(body.len(), 24 + 16 + 10);
        assert_eq!(&t.decrypt(SECRET_KEY, &sealed).unwrap()[..], b"hello kapi");
        let mut tampered = sealed.to_vec();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(t.decrypt(SECRET_KEY, &Bytes::from(tampered)).is_err());
        // PyNaCl SecretBox(33…33).encrypt(b"hello kapi", 000102…17): tag first, as Go's.
        let t = secrets(&keys(
            "secretbox",
            &[("k", "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM=")],
        ));
        let mut stored = b"k8s:enc:secretbox:v1:k:".to_vec();
        stored.extend((0u8..24).collect::<Vec<_>>());
        stored.extend(hex("f7f326a7259ea5b5ec206de7cb4fab3eea8a73553c8720dab2c4"));
        assert_eq!(
            &t.decrypt(SECRET_KEY, &Bytes::from(stored)).unwrap()[..],
            b"hello kapi"
        );
    }

    #[test]
    fn providers_of_one_kind_are_all_tried_and_their_errors_aggregated() {
        let old = secrets(&keys("aescbc", &[("key2", KEY2)]));
        let written_before = old.encrypt(SECRET_KEY, b"v1").unwrap();
        // Two aescbc providers share the prefix: the first one's miss must not end the search.
        let two =
            secrets(&(keys("aescbc", &[("key1", KEY1)]) + &keys("aescbc", &[("key2", KEY2)])));
        assert_eq!(
            &two.decrypt(SECRET_KEY, &written_before).unwrap()[..],
            b"v1"
        );
        // An unknown key name: one error per distinct message, identity skipped silently.
        let only_new = secrets(&(keys("aescbc", &[("key1", KEY1)]) + "  - identity: {}\n"));
        assert_eq!(
            only_new.decrypt(SECRET_KEY, &written_before).unwrap_err(),
            "no matching key was found for the provided AES transformer"
        );
        let mixed =
            secrets(&(keys("aescbc", &[("key1", KEY1)]) + &keys("secretbox", &[("s1", KEY1)])));
        let boxed = secrets(&keys("secretbox", &[("s9", KEY1)]))
            .encrypt(SECRET_KEY, b"v")
            .unwrap();
        assert_eq!(
            mixed.decrypt(SECRET_KEY, &boxed).unwrap_err(),
            "no matching key was found for the provided Secretbox transformer"
        );
        let two_keys_missing =
            secrets(&(keys("aescbc", &[("key1", KEY1)]) + &keys("aescbc", &[("key3", KEY1)])));
        assert_eq!(
            two_keys_missing
                .decrypt(SECRET_KEY, &written_before)
                .unwrap_err(),
            "no matching key was found for the provided AES transformer"
        );
        // Distinct failures are listed, as kube-apiserver's aggregate error.
        let sealed = secrets(&keys("aesgcm", &[("g1", KEY1)]))
            .encrypt(SECRET_KEY, b"v")
            .unwrap();
        let wrong = secrets(&(keys("aesgcm", &[("g1", KEY2)]) + &keys("aesgcm", &[("g2", KEY1)])));
        assert_eq!(
            wrong.decrypt(SECRET_KEY, &sealed).unwrap_err(),
            "[cipher: message authentication failed, no matching key was found for the provided AES transformer]"
        );
    }

    #[test]
    fn key_rotation_reads_any_listed_key_and_writes_with_the_first() {
        let old = secrets(&keys("aescbc", &[("key2", KEY2)]));
        let written_before = old.encrypt(SECRET_KEY, b"v1").unwrap();
        // Rotation: the new key first, the old one kept for reads.
        let rotated = secrets(&keys("aescbc", &[("key1", KEY1), ("key2", KEY2)]));
        assert_eq!(
            &rotated.decrypt(SECRET_KEY, &written_before).unwrap()[..],
            b"v1"
        );
        let written_after = rotated.encrypt(SECRET_KEY, b"v2").unwrap();
        assert!(written_after.starts_with(b"k8s:enc:aescbc:v1:key1:"));
        // The old configuration cannot read the new key's values.
        let err = old.decrypt(SECRET_KEY, &written_after).unwrap_err();
        assert!(err.contains("no matching key"), "{err}");
        // Provider rotation: aesgcm writes, aescbc and identity still read.
        let mixed = secrets(
            &(keys("aesgcm", &[("g1", KEY1)])
                + &keys("aescbc", &[("key2", KEY2)])
                + "  - identity: {}\n"),
        );
        assert_eq!(mixed.write_provider(), "aesgcm");
        assert_eq!(
            &mixed.decrypt(SECRET_KEY, &written_before).unwrap()[..],
            b"v1"
        );
        assert_eq!(
            &mixed
                .decrypt(SECRET_KEY, &Bytes::from_static(b"{\"plain\":1}"))
                .unwrap()[..],
            b"{\"plain\":1}"
        );
        assert!(mixed
            .encrypt(SECRET_KEY, b"x")
            .unwrap()
            .starts_with(b"k8s:enc:aesgcm:v1:g1:"));
    }

    #[test]
    fn identity_rules() {
        // Without identity, plaintext is an error.
        let t = secrets(&keys("aescbc", &[("key1", KEY1)]));
        let err = t
            .decrypt(SECRET_KEY, &Bytes::from_static(b"{}"))
            .unwrap_err();
        assert_eq!(err, "no matching prefix found");
        // Identity first (decrypting away from encryption): plaintext is written, encrypted
        // values are still read by the providers after it.
        let t = secrets(&("  - identity: {}\n".to_string() + &keys("aescbc", &[("key1", KEY1)])));
        assert_eq!(&t.encrypt(SECRET_KEY, b"{}").unwrap()[..], b"{}");
        let enc = secrets(&keys("aescbc", &[("key1", KEY1)]))
            .encrypt(SECRET_KEY, b"{}")
            .unwrap();
        assert_eq!(&t.decrypt(SECRET_KEY, &enc).unwrap()[..], b"{}");
        // Identity alone never hands out a value that looks encrypted.
        let t = secrets("  - identity: {}\n");
        assert!(t.decrypt(SECRET_KEY, &enc).is_err());
    }

    #[test]
    fn resource_selection() {
        let c = config(
            "[secrets, deployments.apps]",
            &keys("aescbc", &[("key1", KEY1)]),
        );
        assert!(c.for_resource("", "secrets").is_some());
        assert!(c.for_resource("apps", "deployments").is_some());
        assert!(c.for_resource("", "configmaps").is_none());
        assert!(c.for_resource("apps", "replicasets").is_none());
        let c = config("['*.*']", &keys("aescbc", &[("key1", KEY1)]));
        assert!(c.for_resource("", "configmaps").is_some());
        assert!(c.for_resource("example.com", "widgets").is_some());
        let c = config("['*.']", &keys("aescbc", &[("key1", KEY1)]));
        assert!(c.for_resource("", "configmaps").is_some());
        assert!(c.for_resource("apps", "deployments").is_none());
        let c = config("['*.apps']", &keys("aescbc", &[("key1", KEY1)]));
        assert!(c.for_resource("apps", "deployments").is_some());
        assert!(c.for_resource("", "secrets").is_none());
    }

    #[test]
    fn invalid_configurations() {
        let bad = |yaml: &str, want: &str| {
            let err = EncryptionConfig::parse(yaml)
                .err()
                .expect("should fail")
                .to_string();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        };
        let head = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n";
        bad(
            "apiVersion: v1\nkind: Config\nresources: []\n",
            "expected apiVersion",
        );
        bad(&format!("{head}resources: []\n"), "at least one");
        bad(
            &format!("{head}resources:\n- resources: [secrets]\n  providers: []\n"),
            "providers",
        );
        bad(
            &format!(
                "{head}resources:\n- resources: [Secrets]\n  providers:\n  - identity: {{}}\n"
            ),
            "capital",
        );
        bad(
            &format!("{head}resources:\n- resources: ['*']\n  providers:\n  - identity: {{}}\n"),
            "'*.'",
        );
        bad(&format!("{head}resources:\n- resources: [secrets, '*.']\n  providers:\n  - identity: {{}}\n"), "overlapping");
        bad(&format!("{head}resources:\n- resources: ['*.*']\n  providers:\n  - identity: {{}}\n- resources: [secrets]\n  providers:\n  - identity: {{}}\n"), "masked");
        bad(
            &format!(
                "{head}resources:\n- resources: [secrets]\n  providers:\n  - kms: {{name: x}}\n"
            ),
            "kms",
        );
        bad(&format!("{head}resources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - name: k\n        secret: c2hvcnQ=\n"), "expected length");
        bad(&format!("{head}resources:\n- resources: [secrets]\n  providers:\n  - secretbox:\n      keys:\n      - name: k\n        secret: {KEY16}\n"), "expected length");
        bad(&format!("{head}resources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - name: k\n        secret: '!!notbase64'\n"), "base64");
        bad(&format!("{head}resources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys: []\n"), "no valid keys");
        bad(
            &format!("{head}resources:\n- resources: [secrets]\n  providers:\n  - {{}}\n"),
            "expected providers",
        );
        bad(&format!("{head}resources:\n- resources: [events.events.k8s.io]\n  providers:\n  - identity: {{}}\n"), "events");
        bad(
            &format!("{head}resources:\n- resources: [secrets]\n  providers:\n  - aesgcb: {{}}\n"),
            "unknown field",
        );
    }

    /// The embedded store shared between the wrapper and the test (which reads it raw).
    struct Shared(Arc<EmbeddedStore>);

    #[async_trait]
    impl Store for Shared {
        async fn get(&self, key: &str) -> StoreResult<(Option<KeyValue>, Revision)> {
            self.0.get(key).await
        }
        async fn range(
            &self,
            p: &str,
            s: Option<&str>,
            l: i64,
            r: Revision,
        ) -> StoreResult<RangeResult> {
            self.0.range(p, s, l, r).await
        }
        async fn count(&self, p: &str, r: Revision, m: Revision) -> StoreResult<i64> {
            self.0.count(p, r, m).await
        }
        async fn create(&self, k: &str, v: Bytes) -> StoreResult<Revision> {
            self.0.create(k, v).await
        }
        async fn update(&self, k: &str, v: Bytes, e: Revision) -> StoreResult<Revision> {
            self.0.update(k, v, e).await
        }
        async fn delete(&self, k: &str, e: Revision) -> StoreResult<Revision> {
            self.0.delete(k, e).await
        }
        async fn watch(
            &self,
            p: &str,
            f: Revision,
        ) -> StoreResult<BoxStream<'static, StoreResult<WatchMessage>>> {
            self.0.watch(p, f).await
        }
        async fn current_revision(&self) -> StoreResult<Revision> {
            self.0.current_revision().await
        }
        async fn compact(&self, r: Revision) -> StoreResult<()> {
            self.0.compact(r).await
        }
    }

    fn store(
        providers: &str,
        resources: &str,
    ) -> (Encrypted<Shared>, Arc<EmbeddedStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let raw = Arc::new(EmbeddedStore::open(&dir.path().join("db.redb")).unwrap());
        (
            Encrypted::new(
                Shared(raw.clone()),
                "/registry",
                config(resources, providers),
            ),
            raw,
            dir,
        )
    }

    #[tokio::test]
    async fn store_encrypts_only_configured_resources_and_decrypts_everywhere() {
        let (s, raw, _dir) = store(&keys("aescbc", &[("key1", KEY1)]), "[secrets]");
        let v1 = Bytes::from_static(b"{\"data\":\"plaintext-v1\"}");
        let rev = s.create(SECRET_KEY, v1.clone()).await.unwrap();
        let cm = "/registry/configmaps/default/c";
        s.create(cm, Bytes::from_static(b"{\"cm\":1}"))
            .await
            .unwrap();

        // At rest: prefixed ciphertext for the secret, plaintext for the configmap.
        let stored = raw.get(SECRET_KEY).await.unwrap().0.unwrap().value;
        assert!(stored.starts_with(b"k8s:enc:aescbc:v1:key1:"));
        assert!(!stored.windows(9).any(|w| w == b"plaintext"));
        assert_eq!(
            &raw.get(cm).await.unwrap().0.unwrap().value[..],
            b"{\"cm\":1}"
        );

        // get and range read plaintext.
        assert_eq!(s.get(SECRET_KEY).await.unwrap().0.unwrap().value, v1);
        let r = s.range("/registry/secrets/", None, 0, 0).await.unwrap();
        assert_eq!(r.kvs.len(), 1);
        assert_eq!(r.kvs[0].value, v1);

        // A watch sees plaintext values and previous values.
        let mut w = s.watch("/registry/secrets/", rev + 1).await.unwrap();
        let v2 = Bytes::from_static(b"{\"data\":\"plaintext-v2\"}");
        let rev2 = s.update(SECRET_KEY, v2.clone(), rev).await.unwrap();
        s.delete(SECRET_KEY, rev2).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            match tokio::time::timeout(std::time::Duration::from_secs(5), w.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                WatchMessage::Events(evs) => seen.extend(evs),
                WatchMessage::Progress(_) => {}
            }
        }
        match &seen[0] {
            StoreEvent::Put { kv, prev } => {
                assert_eq!(kv.value, v2);
                assert_eq!(prev.as_ref().map(|p| p.value.clone()), Some(v1.clone()));
            }
            other => panic!("{other:?}"),
        }
        match &seen[1] {
            StoreEvent::Delete { prev, .. } => assert_eq!(prev.as_ref().unwrap().value, v2),
            other => panic!("{other:?}"),
        }

        // A lost CAS reports the current value in plaintext.
        let rev3 = s.create(SECRET_KEY, v1.clone()).await.unwrap();
        match s.update(SECRET_KEY, v2.clone(), rev3 - 1).await {
            Err(StoreError::Conflict { current: Some(kv) }) => assert_eq!(kv.value, v1),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn unreadable_values_are_errors() {
        let (s, raw, _dir) = store(&keys("aesgcm", &[("key1", KEY1)]), "[secrets]");
        // Plaintext written before encryption was configured, with no identity provider.
        raw.create("/registry/secrets/default/old", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let err = s.get("/registry/secrets/default/old").await.unwrap_err();
        assert_eq!(err, StoreError::Internal("no matching prefix found".into()));
        assert!(s.range("/registry/secrets/", None, 0, 0).await.is_err());
        // A value copied to another key fails authentication (AES-GCM binds the key).
        s.create(SECRET_KEY, Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let sealed = raw.get(SECRET_KEY).await.unwrap().0.unwrap().value;
        raw.create("/registry/secrets/default/copy", sealed)
            .await
            .unwrap();
        assert!(s.get("/registry/secrets/default/copy").await.is_err());
        // An encrypted value under a resource the configuration does not name is refused.
        let (s, raw, _dir) = store(&keys("aescbc", &[("key1", KEY1)]), "[secrets]");
        raw.create(
            "/registry/configmaps/default/c",
            Bytes::from_static(b"k8s:enc:aescbc:v1:key1:xxxx"),
        )
        .await
        .unwrap();
        assert!(s.get("/registry/configmaps/default/c").await.is_err());
    }

    #[tokio::test]
    async fn star_star_covers_custom_resources() {
        let (s, raw, _dir) = store(&keys("secretbox", &[("key1", KEY1)]), "['*.*']");
        let key = "/registry/example.com/widgets/default/w";
        s.create(key, Bytes::from_static(b"{}")).await.unwrap();
        assert!(raw
            .get(key)
            .await
            .unwrap()
            .0
            .unwrap()
            .value
            .starts_with(b"k8s:enc:secretbox:v1:key1:"));
        assert_eq!(&s.get(key).await.unwrap().0.unwrap().value[..], b"{}");
        // Keys outside any resource (e.g. compaction bookkeeping) stay as they are.
        s.create("/registry/ranges/serviceips", Bytes::from_static(b"r"))
            .await
            .unwrap();
        assert_eq!(
            &raw.get("/registry/ranges/serviceips")
                .await
                .unwrap()
                .0
                .unwrap()
                .value[..],
            b"r"
        );
    }
}
