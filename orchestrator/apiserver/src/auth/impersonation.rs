//! Impersonation, as kube-apiserver does it: a request with `Impersonate-User` (and
//! `Impersonate-Group`, `Impersonate-Uid`, `Impersonate-Extra-<key>`) acts as that
//! user when its own user may `impersonate` each of them: `users` (or, for
//! `system:serviceaccount:<ns>:<name>`, that `serviceaccounts` object), `groups`,
//! `uids` and `userextras/<key>` of `authentication.k8s.io`. `kubectl --as` and
//! `--as-group` send them. The first one refused answers 403, naming it.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

use super::authz::attributes::{Attributes, ResourceAttributes};
use super::authz::{Authorizer, forbidden};
use super::user::{ANONYMOUS, AUTHENTICATED, SERVICE_ACCOUNT_USER_PREFIX, SERVICE_ACCOUNTS, UserInfo};
use crate::status::ApiError;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

/// What the headers ask to act as; `None` when they ask nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Asked {
    user: String,
    groups: Vec<String>,
    uid: Option<String>,
    extra: BTreeMap<String, Vec<String>>,
}

fn asked(headers: &HeaderMap) -> Result<Option<Asked>, ApiError> {
    let text = |value: &axum::http::HeaderValue, name: &str| {
        value
            .to_str()
            .map(str::to_string)
            .map_err(|_| ApiError::bad_request(format!("the {name} header is not text")))
    };
    let mut asked = Asked::default();
    let mut any = false;
    for (name, value) in headers {
        let name = name.as_str();
        if name == USER {
            asked.user = text(value, "Impersonate-User")?;
        } else if name == GROUP {
            asked.groups.push(text(value, "Impersonate-Group")?);
        } else if name == UID {
            asked.uid = Some(text(value, "Impersonate-Uid")?);
        } else if let Some(key) = name.strip_prefix(EXTRA_PREFIX) {
            // The key is percent-encoded in the header's name (kubectl encodes it).
            let key = percent_decode(key);
            asked
                .extra
                .entry(key)
                .or_default()
                .push(text(value, "Impersonate-Extra")?);
        } else {
            continue;
        }
        any = true;
    }
    if !any {
        return Ok(None);
    }
    if asked.user.is_empty() {
        return Err(ApiError::bad_request(
            "impersonating a group, uid or extra requires impersonating a user (Impersonate-User)",
        ));
    }
    Ok(Some(asked))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn impersonate_attributes(group: &str, resource: &str, subresource: &str, namespace: &str, name: &str) -> Attributes {
    Attributes::resource(
        "impersonate",
        ResourceAttributes {
            group: group.into(),
            version: String::new(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
        },
    )
}

/// The user `user`'s request acts as: `None` when the headers ask for nobody, the
/// impersonated user when `user` may be each part of it, else a 403 naming the part.
pub fn impersonate(
    authorizer: &Authorizer,
    user: &UserInfo,
    headers: &HeaderMap,
) -> Result<Option<UserInfo>, ApiError> {
    let Some(asked) = asked(headers)? else {
        return Ok(None);
    };
    let service_account = asked
        .user
        .strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)
        .and_then(|rest| rest.split_once(':'));
    let mut checks = vec![match service_account {
        Some((namespace, name)) => impersonate_attributes("", "serviceaccounts", "", namespace, name),
        None => impersonate_attributes("", "users", "", "", &asked.user),
    }];
    checks.extend(
        asked
            .groups
            .iter()
            .map(|group| impersonate_attributes("", "groups", "", "", group)),
    );
    for (key, values) in &asked.extra {
        checks.extend(
            values
                .iter()
                .map(|value| impersonate_attributes(AUTHENTICATION_GROUP, "userextras", key, "", value)),
        );
    }
    if let Some(uid) = &asked.uid {
        checks.push(impersonate_attributes(AUTHENTICATION_GROUP, "uids", "", "", uid));
    }
    for check in &checks {
        if !authorizer.authorize(user, check).allowed {
            return Err(forbidden(user, check));
        }
    }
    let mut groups = asked.groups;
    if let Some((namespace, _)) = service_account
        && groups.is_empty()
    {
        groups = vec![SERVICE_ACCOUNTS.to_string(), format!("{SERVICE_ACCOUNTS}:{namespace}")];
    }
    if asked.user != ANONYMOUS && !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.to_string());
    }
    Ok(Some(UserInfo {
        name: asked.user,
        uid: asked.uid.unwrap_or_default(),
        groups,
        extra: asked.extra,
    }))
}

#[cfg(test)]
#[path = "impersonation_tests.rs"]
mod tests;
