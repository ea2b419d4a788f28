//! Command-line flags, named after kube-apiserver's where one exists.

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "kapi",
    version,
    about = "A Kubernetes API server built around a revision-indexed watch cache"
)]
pub struct Config {
    /// Address to serve HTTPS on.
    #[arg(long = "bind-address", default_value = "127.0.0.1")]
    pub bind_address: IpAddr,

    /// Port to serve HTTPS on (0 picks a free port; the chosen address is logged and printed).
    #[arg(long = "secure-port", default_value_t = 6443)]
    pub secure_port: u16,

    /// etcd endpoints (comma-separated). Without it, kapi uses its embedded store in --data-dir.
    #[arg(long = "etcd-servers", value_delimiter = ',')]
    pub etcd_servers: Vec<String>,

    /// Prefix of every key kapi stores.
    #[arg(long = "etcd-prefix", default_value = "/registry")]
    pub etcd_prefix: String,

    /// CA bundle to verify etcd's serving certificate.
    #[arg(long = "etcd-cafile")]
    pub etcd_cafile: Option<PathBuf>,

    /// Client certificate for etcd.
    #[arg(long = "etcd-certfile")]
    pub etcd_certfile: Option<PathBuf>,

    /// Client key for etcd.
    #[arg(long = "etcd-keyfile")]
    pub etcd_keyfile: Option<PathBuf>,

    /// Serving certificate (PEM). Without it, kapi generates a CA and certificate in --data-dir.
    #[arg(long = "tls-cert-file")]
    pub tls_cert_file: Option<PathBuf>,

    /// Serving key (PEM).
    #[arg(long = "tls-private-key-file")]
    pub tls_private_key_file: Option<PathBuf>,

    /// CA that signs client certificates kapi accepts.
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,

    /// Where the embedded store, generated certificates and admin.kubeconfig live.
    #[arg(long = "data-dir", default_value = "./kapi-data")]
    pub data_dir: PathBuf,

    /// Address advertised to clients (defaults to the bind address).
    #[arg(long = "advertise-address")]
    pub advertise_address: Option<IpAddr>,

    /// Watches without timeoutSeconds last a random time in [this, 2×this) seconds.
    #[arg(long = "min-request-timeout", default_value_t = 1800)]
    pub min_request_timeout: u64,

    /// Events kept per resource in the watch cache's history ring (resumable watch window).
    #[arg(long = "watch-cache-history", default_value_t = 10_240)]
    pub watch_cache_history: usize,

    /// Static bearer tokens: a CSV file of `token,user,uid,"group1,group2"`.
    #[arg(long = "token-auth-file")]
    pub token_auth_file: Option<PathBuf>,

    /// PEM public or private keys (RSA or ECDSA) that verify service-account tokens (repeatable).
    /// Defaults to the public half of --service-account-signing-key-file.
    #[arg(long = "service-account-key-file", action = clap::ArgAction::Append)]
    pub service_account_key_file: Vec<PathBuf>,

    /// Issuer (`iss`) of service-account tokens (repeatable; the first one is used when signing).
    #[arg(long = "service-account-issuer", action = clap::ArgAction::Append)]
    pub service_account_issuer: Vec<String>,

    /// PEM private key that signs service-account tokens (used by TokenRequest).
    #[arg(long = "service-account-signing-key-file")]
    pub service_account_signing_key_file: Option<PathBuf>,

    /// Longest lifetime a TokenRequest may ask for (a Go duration, e.g. `48h`); longer requests
    /// are shortened to it. Between 1h and 2^32 s; unset means no limit.
    #[arg(long = "service-account-max-token-expiration", value_parser = parse_duration_seconds)]
    pub service_account_max_token_expiration: Option<u64>,

    /// Audiences a service-account token must name one of (comma-separated). Defaults to the
    /// --service-account-issuer values.
    #[arg(long = "api-audiences", value_delimiter = ',')]
    pub api_audiences: Vec<String>,

    /// OIDC issuer URL; enables the OIDC token authenticator (with --oidc-client-id).
    #[arg(long = "oidc-issuer-url")]
    pub oidc_issuer_url: Option<String>,

    /// OIDC client ID: the `aud` an ID token must carry.
    #[arg(long = "oidc-client-id")]
    pub oidc_client_id: Option<String>,

    /// Claim holding the user name. Claims other than `email` are prefixed with `<issuer>#`
    /// unless --oidc-username-prefix is given (`-` disables prefixing).
    #[arg(long = "oidc-username-claim", default_value = "sub")]
    pub oidc_username_claim: String,

    /// Claim holding the groups (a string or an array of strings).
    #[arg(long = "oidc-groups-claim")]
    pub oidc_groups_claim: Option<String>,

    /// Prefix for user names from OIDC (`-` for none).
    #[arg(long = "oidc-username-prefix")]
    pub oidc_username_prefix: Option<String>,

    /// Prefix for groups from OIDC.
    #[arg(long = "oidc-groups-prefix")]
    pub oidc_groups_prefix: Option<String>,

    /// Accepted ID token signing algorithms (comma-separated).
    #[arg(
        long = "oidc-signing-algs",
        value_delimiter = ',',
        default_value = "RS256"
    )]
    pub oidc_signing_algs: Vec<String>,

    /// kapi-specific: the issuer's signing keys as a local JWKS file (kapi does not fetch the
    /// issuer's discovery document).
    #[arg(long = "oidc-jwks-file")]
    pub oidc_jwks_file: Option<PathBuf>,

    /// Requests without credentials are served as `system:anonymous` (group
    /// `system:unauthenticated`), subject to authorization.
    #[arg(long = "anonymous-auth", default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,

    /// Ordered authorizers (comma-separated): AlwaysAllow, AlwaysDeny, ABAC, Node, RBAC.
    #[arg(
        long = "authorization-mode",
        value_delimiter = ',',
        default_value = "Node,RBAC"
    )]
    pub authorization_mode: Vec<String>,

    /// ABAC policy: one JSON policy object per line.
    #[arg(long = "authorization-policy-file")]
    pub authorization_policy_file: Option<PathBuf>,

    /// Admission plugins to enable besides the default ones (comma-separated). Plugins run in
    /// kube-apiserver's fixed order whatever the order here.
    #[arg(long = "enable-admission-plugins", value_delimiter = ',')]
    pub enable_admission_plugins: Vec<String>,

    /// Admission plugins to disable, default ones included (comma-separated).
    #[arg(long = "disable-admission-plugins", value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,

    /// tolerationSeconds of the not-ready:NoExecute toleration DefaultTolerationSeconds adds.
    #[arg(long = "default-not-ready-toleration-seconds", default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,

    /// tolerationSeconds of the unreachable:NoExecute toleration DefaultTolerationSeconds adds.
    #[arg(long = "default-unreachable-toleration-seconds", default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,

    /// Encryption at rest: an apiserver.config.k8s.io/v1 EncryptionConfiguration (aescbc,
    /// aesgcm, secretbox, identity providers).
    #[arg(long = "encryption-provider-config")]
    pub encryption_provider_config: Option<PathBuf>,

    /// Audit policy (audit.k8s.io/v1 Policy). Auditing needs this and --audit-log-path.
    #[arg(long = "audit-policy-file")]
    pub audit_policy_file: Option<PathBuf>,

    /// Audit log file (`-` for standard output): audit.k8s.io/v1 Event JSON lines.
    #[arg(long = "audit-log-path")]
    pub audit_log_path: Option<String>,

    /// Days to keep rotated audit log files (0 = no age limit).
    #[arg(long = "audit-log-maxage", default_value_t = 0)]
    pub audit_log_maxage: u32,

    /// Rotated audit log files to keep (0 = all).
    #[arg(long = "audit-log-maxbackup", default_value_t = 0)]
    pub audit_log_maxbackup: u32,

    /// Size in megabytes at which the audit log is rotated (0 = 100).
    #[arg(long = "audit-log-maxsize", default_value_t = 0)]
    pub audit_log_maxsize: u64,

    /// Audit log format: only `json` (kube-apiserver's `legacy` is rejected).
    #[arg(long = "audit-log-format", default_value = "json")]
    pub audit_log_format: String,

    /// Log verbosity (0 = info, 2+ = debug, 4+ = trace); RUST_LOG overrides it.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

/// A Go duration made of whole hours, minutes and seconds (`1h30m`, `3600s`), in seconds.
fn parse_duration_seconds(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration {s:?} (use e.g. 48h, 90m or 3600s)");
    let mut total: u64 = 0;
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = match rest.bytes().next() {
            Some(b'h') => 3600,
            Some(b'm') if !rest.starts_with("ms") => 60,
            Some(b's') => 1,
            _ => return Err(bad()),
        };
        rest = &rest[1..];
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        use super::parse_duration_seconds as p;
        assert_eq!(p("48h"), Ok(48 * 3600));
        assert_eq!(p("1h30m10s"), Ok(5410));
        assert_eq!(p("0"), Ok(0));
        assert!(p("").is_err());
        assert!(p("10").is_err());
        assert!(p("5ms").is_err());
        assert!(p("h").is_err());
    }
}
