//! Impersonation (`WithImpersonation`): `Impersonate-User`, `Impersonate-Uid`,
//! `Impersonate-Group` (repeatable) and `Impersonate-Extra-<key>` (repeatable). Each requested
//! value is authorized with verb `impersonate` on `users`, `serviceaccounts` (for
//! `system:serviceaccount:<ns>:<name>`), `groups`, `userextras/<key>` or `uids`; the first
//! refusal is a 403 naming it. The headers are removed afterwards.

use super::authn::serviceaccount::{split_username, ALL_SA_GROUP};
use super::authn::{UserInfo, ANONYMOUS_USER, AUTHENTICATED_GROUP, UNAUTHENTICATED_GROUP};
use super::authz::{forbidden_response, Attributes, Authorizer, Decision};
use crate::api::handlers::{error_response, Resp};
use crate::api::status::ApiError;
use http::HeaderMap;
use std::collections::BTreeMap;

const USER: &str = "impersonate-user";
const UID: &str = "impersonate-uid";
const GROUP: &str = "impersonate-group";
const EXTRA_PREFIX: &str = "impersonate-extra-";

fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

fn remove_headers(headers: &mut HeaderMap) {
    let names: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

/// Applies impersonation headers, if any: `Ok` is the user the request acts as.
pub fn impersonate(
    authz: &Authorizer,
    requester: UserInfo,
    headers: &mut HeaderMap,
) -> Result<UserInfo, Box<Resp>> {
    let user = values(headers, USER).into_iter().next();
    let uid = values(headers, UID).into_iter().next();
    let groups = values(headers, GROUP);
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in headers.keys() {
        if let Some(key) = k.as_str().strip_prefix(EXTRA_PREFIX) {
            let key = percent_encoding::percent_decode_str(key)
                .decode_utf8_lossy()
                .to_ascii_lowercase();
            extra.insert(key, values(headers, k.as_str()));
        }
    }
    remove_headers(headers);
    let Some(username) = user else {
        if groups.is_empty() && extra.is_empty() && uid.is_none() {
            return Ok(requester);
        }
        let mut what = Vec::new();
        what.extend(groups.iter().map(|g| format!("group {g:?}")));
        what.extend(extra.keys().map(|k| format!("extra {k:?}")));
        what.extend(uid.iter().map(|u| format!("uid {u:?}")));
        return Err(Box::new(error_response(&ApiError::internal(format!(
            "requested [{}] without impersonating a user",
            what.join(", ")
        )))));
    };

    let check = |a: Attributes| -> Result<(), Box<Resp>> {
        let (d, reason) = authz.authorize(&a);
        if d == Decision::Allow {
            Ok(())
        } else {
            Err(Box::new(forbidden_response(&a, &reason)))
        }
    };
    let base = |group: &str, resource: &str, name: &str| Attributes {
        user: requester.clone(),
        verb: "impersonate".into(),
        resource_request: true,
        api_group: group.into(),
        resource: resource.into(),
        name: name.into(),
        ..Default::default()
    };

    let mut out_groups = groups.clone();
    if let Some((ns, name)) = split_username(&username) {
        let mut a = base("", "serviceaccounts", name);
        a.namespace = ns.into();
        check(a)?;
        if groups.is_empty() {
            out_groups = vec![ALL_SA_GROUP.to_string(), format!("{ALL_SA_GROUP}:{ns}")];
        }
    } else {
        check(base("", "users", &username))?;
    }
    for g in &groups {
        check(base("", "groups", g))?;
    }
    for (k, vals) in &extra {
        for v in vals {
            let mut a = base("authentication.k8s.io", "userextras", v);
            a.subresource = k.clone();
            check(a)?;
        }
    }
    if let Some(u) = &uid {
        check(base("authentication.k8s.io", "uids", u))?;
    }

    if username != ANONYMOUS_USER {
        if !out_groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            out_groups.push(AUTHENTICATED_GROUP.into());
        }
    } else if !out_groups.iter().any(|g| g == UNAUTHENTICATED_GROUP) {
        out_groups.push(UNAUTHENTICATED_GROUP.into());
    }
    Ok(UserInfo {
        name: username,
        uid: uid.unwrap_or_default(),
        groups: out_groups,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::authn::MASTERS_GROUP;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn impersonation() {
        let deny = Authorizer::always(false);
        let admin = UserInfo::new("admin", &[MASTERS_GROUP]);
        let mut h = HeaderMap::new();
        assert_eq!(impersonate(&deny, admin.clone(), &mut h).unwrap(), admin);

        h.insert(USER, "system:serviceaccount:ns:sa".parse().unwrap());
        h.insert("impersonate-extra-scopes", "a".parse().unwrap());
        h.append("impersonate-extra-scopes", "b".parse().unwrap());
        let u = impersonate(&deny, admin.clone(), &mut h).unwrap();
        assert_eq!(u.name, "system:serviceaccount:ns:sa");
        assert_eq!(
            u.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                AUTHENTICATED_GROUP
            ]
        );
        assert_eq!(u.extra["scopes"], vec!["a", "b"]);
        assert!(h.is_empty());

        h.insert(USER, "jane".parse().unwrap());
        h.insert(GROUP, "dev".parse().unwrap());
        let bob = UserInfo::new("bob", &[AUTHENTICATED_GROUP]);
        let resp = impersonate(&deny, bob, &mut h).unwrap_err();
        assert_eq!(resp.status(), 403);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["message"],
            "users \"jane\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope: Everything is forbidden."
        );

        h.insert(GROUP, "dev".parse().unwrap());
        let resp = impersonate(&deny, admin, &mut h).unwrap_err();
        assert_eq!(resp.status(), 500);
    }
}
