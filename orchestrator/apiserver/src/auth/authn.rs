//! Authentication: from a request's credentials to its user, as kube-apiserver's
//! authenticators do it, in their order:
//!
//! ```text
//!  a client certificate the client CA signed (checked in the TLS handshake)
//!      ──► CN = user, O = groups
//!  else `Authorization: Bearer <token>`
//!      ──► a static token (--token-auth-file) ──► its user
//!      ──► a ServiceAccount token this server's keys verify, whose account (and
//!          bound pod) still exists ──► system:serviceaccount:<ns>:<name>
//!      ──► unknown ──► 401 Unauthorized
//!  else ──► system:anonymous in system:unauthenticated (--anonymous-auth, the
//!           default) or 401
//! ```
//!
//! Every authenticated user is also in `system:authenticated`.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use berth_client::kv::Kv;

use super::service_accounts::ServiceAccountTokens;
use super::user::UserInfo;
use crate::status::ApiError;

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub struct Authenticator {
    /// `--token-auth-file`: token → user.
    tokens: HashMap<String, UserInfo>,
    /// `--anonymous-auth`: requests without credentials go on as `system:anonymous`.
    anonymous: bool,
    /// ServiceAccount tokens' keys, issuer and audiences, when the server has them.
    service_accounts: Option<ServiceAccountTokens>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator {
            tokens: HashMap::new(),
            anonymous: true,
            service_accounts: None,
        }
    }
}

impl Authenticator {
    pub fn new(tokens: HashMap<String, UserInfo>, anonymous: bool) -> Authenticator {
        Authenticator {
            tokens,
            anonymous,
            service_accounts: None,
        }
    }

    /// Also accepts ServiceAccount tokens (and, with a signing key, issues them).
    pub fn with_service_accounts(mut self, tokens: Option<ServiceAccountTokens>) -> Authenticator {
        self.service_accounts = tokens;
        self
    }

    pub fn service_accounts(&self) -> Option<&ServiceAccountTokens> {
        self.service_accounts.as_ref()
    }

    /// The user of a request whose connection showed `certificate_user` (already
    /// verified against the client CA), or a 401 `Status`.
    pub async fn authenticate(
        &self,
        kv: &Kv,
        headers: &HeaderMap,
        certificate_user: Option<&UserInfo>,
    ) -> Result<UserInfo, ApiError> {
        if let Some(user) = certificate_user {
            return Ok(user.clone());
        }
        if let Some(token) = bearer_token(headers) {
            return match self.authenticate_token(kv, token, &[]).await {
                Ok((user, _)) => Ok(user),
                Err(_) => Err(unauthorized()),
            };
        }
        if self.anonymous {
            Ok(UserInfo::anonymous())
        } else {
            Err(unauthorized())
        }
    }
}

impl Authenticator {
    /// The user a bearer token speaks for, and the audiences of `audiences` (the
    /// server's own when empty) it was accepted for; or why not, as a TokenReview
    /// says it. Static tokens are good for any audience.
    pub async fn authenticate_token(
        &self,
        kv: &Kv,
        token: &str,
        audiences: &[String],
    ) -> Result<(UserInfo, Vec<String>), String> {
        if let Some(user) = self.tokens.get(token) {
            return Ok((user.clone(), audiences.to_vec()));
        }
        match &self.service_accounts {
            Some(accounts) if token.split('.').count() == 3 => accounts
                .authenticate(kv, token, audiences)
                .await
                .map_err(|e| e.to_string()),
            _ => Err("invalid bearer token".into()),
        }
    }
}

/// kube-apiserver's answer to missing or wrong credentials (kubectl prints "You must
/// be logged in to the server (Unauthorized)").
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// The token of an `Authorization: Bearer <token>` header; an empty one is none, as
/// Kubernetes' bearer authenticator ignores it.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The user of a verified client certificate: its CN and O values. One without a
/// CN authenticates no one (kube-apiserver's x509 authenticator says the same).
pub fn certificate_user(der: &[u8]) -> Option<UserInfo> {
    let subject = berth_pki::subject_of_der(der).ok()?;
    if subject.common_name.is_empty() {
        return None;
    }
    Some(UserInfo::authenticated(subject.common_name, subject.organizations))
}

/// Parses a static token file, kube-apiserver's `--token-auth-file` format: CSV lines
/// `token,user,uid[,"group1,group2"]`. Errors name the line.
pub fn parse_token_file(text: &str) -> Result<HashMap<String, UserInfo>, String> {
    let mut tokens = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields = csv_fields(line).map_err(|e| format!("line {number}: {e}"))?;
        if fields.len() < 3 {
            return Err(format!(
                "line {number}: must have at least 3 columns (token, user name, user uid), found {}",
                fields.len()
            ));
        }
        let (token, name, uid) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        if token.is_empty() {
            return Err(format!("line {number}: the token is empty"));
        }
        if name.is_empty() {
            return Err(format!("line {number}: the user name is empty"));
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let mut user = UserInfo::authenticated(name, groups);
        user.uid = uid.to_string();
        if tokens.insert(token.to_string(), user).is_some() {
            return Err(format!("line {number}: the token is given twice"));
        }
    }
    Ok(tokens)
}

/// The fields of one CSV line: comma-separated, a field in double quotes may hold
/// commas and `""` for a quote.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".to_string()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("{c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("a quote inside an unquoted field".to_string()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
#[path = "authn_tests.rs"]
mod tests;
