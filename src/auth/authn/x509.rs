//! x509 client certificates: rustls already verified the chain against the client CA
//! (`--client-ca-file`, or kapi's generated CA) during the handshake; here the leaf's subject
//! becomes the user: CN = user name, every O = a group. Validity is re-checked per request,
//! since a connection can outlive its certificate.

use super::{AuthnError, UserInfo};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::*;

/// `Ok(None)` when no certificate was presented.
pub fn authenticate(certs: &[CertificateDer<'static>]) -> Result<Option<UserInfo>, AuthnError> {
    let Some(leaf) = certs.first() else {
        return Ok(None);
    };
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| AuthnError(format!("x509: cannot parse the client certificate: {e}")))?;
    if !cert.validity().is_valid() {
        return Err(AuthnError(
            "x509: certificate has expired or is not yet valid".into(),
        ));
    }
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return Err(AuthnError("x509: certificate has no common name".into()));
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Ok(Some(UserInfo {
        name,
        groups,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    fn cert(cn: Option<&str>, orgs: &[&str]) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        for o in orgs {
            dn.push(DnType::OrganizationName, *o);
        }
        if let Some(cn) = cn {
            dn.push(DnType::CommonName, cn);
        }
        p.distinguished_name = dn;
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn cn_is_user_and_orgs_are_groups() {
        // (rcgen keeps one value per attribute type, so one O here.)
        let u = authenticate(&[cert(Some("jane"), &["dev"])])
            .unwrap()
            .unwrap();
        assert_eq!(u.name, "jane");
        assert_eq!(u.groups, vec!["dev"]);
        assert!(authenticate(&[]).unwrap().is_none());
        assert!(authenticate(&[cert(None, &["x"])]).is_err());
    }
}
