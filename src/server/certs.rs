//! TLS material for first start: a self-signed CA, a serving certificate and an admin client
//! certificate (`system:masters`), a kubeconfig that uses them, and the rustls server config.
//!
//! Files live in one directory: `ca.crt`/`ca.key`, `apiserver.crt`/`apiserver.key`,
//! `admin.crt`/`admin.key`. Existing files are reused; keys are written with mode 0600.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Common name of the generated CA.
pub const CA_COMMON_NAME: &str = "kapi-ca";
/// Common name (user) and organization (group) of the generated admin client certificate.
pub const ADMIN_USER: &str = "kapi-admin";
pub const ADMIN_GROUP: &str = "system:masters";

/// Names every serving certificate carries, besides the caller's hosts.
const DEFAULT_SANS: &[&str] = &[
    "127.0.0.1",
    "::1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
];

/// Validity of everything generated here. The files are reused across restarts and nothing
/// rotates them, so leaves live as long as the CA.
const VALIDITY: time::Duration = time::Duration::days(3650);

/// A certificate, its key and the CA that issued it, all PEM.
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// The result of [`ensure_self_signed`]: where the files are and what they contain.
#[derive(Clone, Debug)]
pub struct Generated {
    pub ca_cert_path: PathBuf,
    pub ca_key_path: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub admin_cert_path: PathBuf,
    pub admin_key_path: PathBuf,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The CA key, PEM (needed to sign anything else later).
    pub ca_key_pem: String,
    /// Serving certificate and key, PEM.
    pub cert_pem: String,
    pub key_pem: String,
    /// Admin client certificate and key, PEM.
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    /// True when anything was generated (rather than everything loaded).
    pub created: bool,
}

impl Generated {
    /// The serving certificate, key and CA.
    pub fn serving(&self) -> TlsMaterial {
        TlsMaterial {
            ca_pem: self.ca_pem.clone(),
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
    /// The admin client certificate, key and CA.
    pub fn admin(&self) -> TlsMaterial {
        TlsMaterial {
            ca_pem: self.ca_pem.clone(),
            cert_pem: self.admin_cert_pem.clone(),
            key_pem: self.admin_key_pem.clone(),
        }
    }
}

/// Loads the CA, serving and admin certificates from `dir`, generating whatever is missing.
///
/// When the CA exists it is reused, and only missing leaf pairs are issued from it (kapi's own
/// CA has the subject `CN=kapi-ca`, which is all rcgen needs to sign with it again). When the CA
/// is missing, everything is generated afresh, since existing leaves would not chain to a new CA.
/// `hosts` are extra serving-certificate SANs: IP addresses become IP SANs, anything else a DNS
/// SAN. Hosts only affect newly generated serving certificates.
pub fn ensure_self_signed(dir: &Path, hosts: &[String]) -> anyhow::Result<Generated> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    let cert_path = dir.join("apiserver.crt");
    let key_path = dir.join("apiserver.key");
    let admin_cert_path = dir.join("admin.crt");
    let admin_key_path = dir.join("admin.key");

    let mut created = false;
    let have_ca = ca_cert_path.exists() && ca_key_path.exists();
    let (ca_pem, ca_key_pem) = if have_ca {
        (read(&ca_cert_path)?, read(&ca_key_path)?)
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        write_file(&ca_cert_path, &cert_pem, 0o644)?;
        write_file(&ca_key_path, &key_pem, 0o600)?;
        created = true;
        (cert_pem, key_pem)
    };
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .with_context(|| format!("parsing {}", ca_key_path.display()))?;
    let issuer = Issuer::new(ca_params()?, ca_key);

    let mut leaf = |cert_path: &Path,
                    key_path: &Path,
                    params: fn(&[String]) -> anyhow::Result<CertificateParams>|
     -> anyhow::Result<(String, String)> {
        if have_ca && cert_path.exists() && key_path.exists() {
            return Ok((read(cert_path)?, read(key_path)?));
        }
        let key = KeyPair::generate()?;
        let cert = params(hosts)?.signed_by(&key, &issuer)?;
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        write_file(cert_path, &cert_pem, 0o644)?;
        write_file(key_path, &key_pem, 0o600)?;
        created = true;
        Ok((cert_pem, key_pem))
    };
    let (cert_pem, key_pem) = leaf(&cert_path, &key_path, serving_params)?;
    let (admin_cert_pem, admin_key_pem) =
        leaf(&admin_cert_path, &admin_key_path, |_| admin_params())?;

    Ok(Generated {
        ca_cert_path,
        ca_key_path,
        cert_path,
        key_path,
        admin_cert_path,
        admin_key_path,
        ca_pem,
        ca_key_pem,
        cert_pem,
        key_pem,
        admin_cert_pem,
        admin_key_pem,
        created,
    })
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // Back-date a little so that clocks slightly behind ours accept the certificate.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + VALIDITY;
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    validity(&mut p);
    Ok(p)
}

fn serving_params(hosts: &[String]) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kube-apiserver");
    p.distinguished_name = dn;
    let mut sans: Vec<SanType> = Vec::new();
    for host in DEFAULT_SANS
        .iter()
        .copied()
        .chain(hosts.iter().map(String::as_str))
    {
        // Accept `[::1]` as well as `::1`.
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            continue;
        }
        let san = match host.parse::<IpAddr>() {
            // A wildcard bind address (0.0.0.0, ::) names no host.
            Ok(ip) if ip.is_unspecified() => continue,
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.to_string()
                    .try_into()
                    .map_err(|e| anyhow!("invalid host name {host:?}: {e}"))?,
            ),
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    p.subject_alt_names = sans;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    validity(&mut p);
    Ok(p)
}

fn admin_params() -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ADMIN_GROUP);
    dn.push(DnType::CommonName, ADMIN_USER);
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    validity(&mut p);
    Ok(p)
}

fn read(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes `contents` to `path` with the given mode: through a temporary file in the same
/// directory, created with that mode, then renamed over the target.
fn write_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = fs::remove_file(&tmp);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Writes a kubeconfig (cluster, user and context all named for kapi; current-context `kapi`)
/// with the certificates embedded as `*-data`, mode 0600.
pub fn write_kubeconfig(
    path: &Path,
    server_url: &str,
    ca_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> anyhow::Result<()> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    // A JSON string is a valid YAML double-quoted scalar, which keeps any URL safe.
    let server = serde_json::to_string(server_url)?;
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server}
  name: kapi
contexts:
- context:
    cluster: kapi
    user: {user}
  name: kapi
current-context: kapi
preferences: {{}}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
        ca = b64(ca_pem),
        cert = b64(client_cert_pem),
        key = b64(client_key_pem),
        user = ADMIN_USER,
    );
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    write_file(path, &text, 0o600)
}

/// A rustls server config on the aws-lc-rs provider, offering ALPN `h2` and `http/1.1`.
///
/// With `client_ca_pem`, client certificates are requested and verified against it but not
/// required (anonymous and token-authenticated clients still connect); without it, no client
/// certificate is requested.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("parsing the serving certificate PEM")?;
    if certs.is_empty() {
        bail!("no certificate found in the serving certificate PEM");
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("parsing the serving key PEM")?;

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca_pem {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots
                    .add(cert.context("parsing the client CA PEM")?)
                    .context("adding a client CA certificate")?;
            }
            if roots.is_empty() {
                bail!("no certificate found in the client CA PEM");
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("serving certificate and key do not form a valid pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("kapi-certs-")
            .tempdir()
            .unwrap()
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn generate_reload_and_serve() {
        let tmp = temp_dir();
        let dir = tmp.path().join("pki");
        let hosts: Vec<String> = ["10.1.2.3", "kapi.example.com", "0.0.0.0", "[fd00::1]"]
            .map(String::from)
            .to_vec();
        let g = ensure_self_signed(&dir, &hosts).unwrap();
        assert!(g.created);
        let serving = g.serving();
        assert_eq!(
            (serving.ca_pem, serving.cert_pem),
            (g.ca_pem.clone(), g.cert_pem.clone())
        );
        assert_eq!(g.admin().key_pem, g.admin_key_pem);
        for p in [
            &g.ca_cert_path,
            &g.ca_key_path,
            &g.cert_path,
            &g.key_path,
            &g.admin_cert_path,
            &g.admin_key_path,
        ] {
            assert!(p.exists(), "{}", p.display());
        }
        #[cfg(unix)]
        {
            assert_eq!(mode(&g.ca_key_path), 0o600);
            assert_eq!(mode(&g.key_path), 0o600);
            assert_eq!(mode(&g.admin_key_path), 0o600);
        }
        assert!(g.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(g.key_pem.contains("PRIVATE KEY"));

        let again = ensure_self_signed(&dir, &[]).unwrap();
        assert!(!again.created);
        assert_eq!(again.ca_pem, g.ca_pem);
        assert_eq!(again.cert_pem, g.cert_pem);
        assert_eq!(again.admin_key_pem, g.admin_key_pem);

        // Losing a leaf re-issues it from the same CA.
        fs::remove_file(&g.admin_cert_path).unwrap();
        let third = ensure_self_signed(&dir, &[]).unwrap();
        assert!(third.created);
        assert_eq!(third.ca_pem, g.ca_pem);
        assert_ne!(third.admin_cert_pem, g.admin_cert_pem);
        assert_eq!(third.cert_pem, g.cert_pem);
        verify_client(&third.ca_pem, &third.admin_cert_pem).unwrap();

        let cfg = server_config(&g.cert_pem, &g.key_pem, None).unwrap();
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let cfg = server_config(&g.cert_pem, &g.key_pem, Some(&g.ca_pem)).unwrap();
        assert_eq!(cfg.alpn_protocols.len(), 2);
        assert!(server_config(&g.cert_pem, &g.admin_key_pem, None).is_err());
        assert!(server_config("", &g.key_pem, None).is_err());
    }

    fn verify_client(ca_pem: &str, cert_pem: &str) -> Result<(), rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        verifier
            .verify_client_cert(&cert, &[], rustls_pki_types::UnixTime::now())
            .map(|_| ())
    }

    /// The generated chain verifies with webpki the way clients will use it: the serving
    /// certificate for its SANs as a server, the admin certificate as a client.
    #[test]
    fn chain_verifies() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::client::WebPkiServerVerifier;
        use rustls_pki_types::{ServerName, UnixTime};

        let tmp = temp_dir();
        let g = ensure_self_signed(tmp.path(), &["192.168.7.7".to_string()]).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(g.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let roots = Arc::new(roots);

        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .unwrap();
        let leaf = CertificateDer::from_pem_slice(g.cert_pem.as_bytes()).unwrap();
        for name in [
            "localhost",
            "kubernetes.default.svc",
            "127.0.0.1",
            "::1",
            "192.168.7.7",
        ] {
            let sn = ServerName::try_from(name).unwrap();
            server_verifier
                .verify_server_cert(&leaf, &[], &sn, &[], UnixTime::now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let sn = ServerName::try_from("elsewhere.example.com").unwrap();
        assert!(server_verifier
            .verify_server_cert(&leaf, &[], &sn, &[], UnixTime::now())
            .is_err());

        verify_client(&g.ca_pem, &g.admin_cert_pem).unwrap();
        // The serving certificate lacks the client-auth EKU.
        assert!(verify_client(&g.ca_pem, &g.cert_pem).is_err());
    }

    #[test]
    fn kubeconfig() {
        let tmp = temp_dir();
        let path = tmp.path().join("sub/kubeconfig");
        write_kubeconfig(
            &path,
            "https://127.0.0.1:6443",
            "CA PEM",
            "CERT PEM",
            "KEY PEM",
        )
        .unwrap();
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        let doc: serde_json::Value = serde_norway::from_str(&text).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(doc["apiVersion"], "v1");
        assert_eq!(doc["kind"], "Config");
        assert_eq!(doc["current-context"], "kapi");
        assert_eq!(doc["clusters"][0]["name"], "kapi");
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority-data"],
            b64("CA PEM")
        );
        assert_eq!(doc["contexts"][0]["name"], "kapi");
        assert_eq!(doc["contexts"][0]["context"]["cluster"], "kapi");
        assert_eq!(doc["contexts"][0]["context"]["user"], ADMIN_USER);
        assert_eq!(doc["users"][0]["name"], ADMIN_USER);
        assert_eq!(
            doc["users"][0]["user"]["client-certificate-data"],
            b64("CERT PEM")
        );
        assert_eq!(doc["users"][0]["user"]["client-key-data"], b64("KEY PEM"));

        // Overwriting keeps the mode and replaces the contents.
        write_kubeconfig(&path, "https://[::1]:6443", "a", "b", "c").unwrap();
        let doc: serde_json::Value =
            serde_norway::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://[::1]:6443"
        );
    }
}
