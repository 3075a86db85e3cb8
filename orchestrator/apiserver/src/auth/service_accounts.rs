//! ServiceAccount tokens at the API server: TokenRequest (`POST
//! .../serviceaccounts/<name>/token`, which signs one), the bearer-token
//! authenticator that accepts them, and TokenReview (`POST
//! /apis/authentication.k8s.io/v1/tokenreviews`, which asks that authenticator).
//!
//! ```text
//!  TokenRequest ─► the account (and the bound Pod or Secret) read ─► claims ─► jwt::sign
//!  Bearer <jwt> ─► jwt::Verifier (signature, issuer, time, audience)
//!               ─► the account (and the bound object) still there, same uid
//!               ─► system:serviceaccount:<ns>:<name> in system:serviceaccounts[:<ns>]
//! ```
//!
//! Token bodies are never logged.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_api::kinds::pod::POD;
use berth_api::kinds::secret::SECRET;
use berth_api::kinds::service_account::SERVICE_ACCOUNT;
use berth_api::validation::FieldError;
use berth_client::kv::Kv;
use serde_json::{Value, json};

use super::jwt::{Claims, KubernetesClaim, Ref, TokenError, Verifier, sign};
use super::keys::SigningKey;
use super::user::{SERVICE_ACCOUNTS, UserInfo};
use crate::status::ApiError;

/// A TokenRequest's `expirationSeconds` when it gives none, and its least.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// The user's extra keys Kubernetes sets for a ServiceAccount token.
const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";
const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
const POD_UID: &str = "authentication.kubernetes.io/pod-uid";

/// The server's ServiceAccount token settings: the flags
/// `--service-account-signing-key-file`, `--service-account-key-file`,
/// `--service-account-issuer` and `--api-audiences`.
#[derive(Debug, Clone)]
pub struct ServiceAccountTokens {
    /// None: this server verifies tokens but issues none (TokenRequest is refused).
    pub signing_key: Option<Arc<SigningKey>>,
    pub verifier: Verifier,
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The object at `key`, as JSON, or None.
async fn read(kv: &Kv, key: &str) -> Result<Option<Value>, String> {
    match kv.get(key).await {
        Ok(Some(record)) => serde_json::from_slice(&record.value)
            .map(Some)
            .map_err(|e| format!("{key}: {e}")),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn uid_of(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or_default()
}

fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

impl ServiceAccountTokens {
    /// The user a token speaks for, if this server signed it, it is valid now for
    /// one of `audiences` (the server's own when empty), and the account (and the
    /// pod or secret it is bound to) still exists as it was; with the audiences
    /// of the token that were asked for.
    pub async fn authenticate(
        &self,
        kv: &Kv,
        token: &str,
        audiences: &[String],
    ) -> Result<(UserInfo, Vec<String>), TokenError> {
        let claims = self.verifier.verify(token, now_seconds(), audiences)?;
        let k8s = &claims.kubernetes;
        let invalidated = |why: String| {
            tracing::debug!(%why, "a service account token was refused");
            TokenError::Invalidated
        };
        let account = read(kv, &SERVICE_ACCOUNT.key(&k8s.namespace, &k8s.serviceaccount.name))
            .await
            .map_err(invalidated)?;
        if account.as_ref().map(uid_of) != Some(k8s.serviceaccount.uid.as_str()) {
            return Err(invalidated(format!(
                "service account {}/{} is gone or another one",
                k8s.namespace, k8s.serviceaccount.name
            )));
        }
        for (kind, bound) in [(&POD, &k8s.pod), (&SECRET, &k8s.secret)] {
            let Some(bound) = bound else { continue };
            let object = read(kv, &kind.key(&k8s.namespace, &bound.name))
                .await
                .map_err(invalidated)?;
            if object.as_ref().map(uid_of) != Some(bound.uid.as_str()) {
                return Err(invalidated(format!(
                    "{} {}/{} is gone or another one",
                    kind.singular, k8s.namespace, bound.name
                )));
            }
        }
        let mut user = UserInfo::authenticated(
            claims.sub.clone(),
            [
                SERVICE_ACCOUNTS.to_string(),
                format!("{SERVICE_ACCOUNTS}:{}", k8s.namespace),
            ],
        );
        user.uid = k8s.serviceaccount.uid.clone();
        if !claims.jti.is_empty() {
            user.extra
                .insert(CREDENTIAL_ID.into(), vec![format!("JTI={}", claims.jti)]);
        }
        if let Some(pod) = &k8s.pod {
            user.extra.insert(POD_NAME.into(), vec![pod.name.clone()]);
            user.extra.insert(POD_UID.into(), vec![pod.uid.clone()]);
        }
        let accepted = if audiences.is_empty() {
            &self.verifier.audiences[..]
        } else {
            audiences
        };
        let matched = claims.aud.iter().filter(|a| accepted.contains(a)).cloned().collect();
        Ok((user, matched))
    }

    /// Answers a TokenRequest for the account `namespace`/`name`: the request as
    /// sent with its defaults, and `status.token` and `status.expirationTimestamp`.
    pub async fn token_request(
        &self,
        kv: &Kv,
        namespace: &str,
        name: &str,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("a TokenRequest must be a JSON object"));
        }
        let Some(key) = &self.signing_key else {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource: this API server has no \
                 --service-account-signing-key-file",
            ));
        };
        let account = read(kv, &SERVICE_ACCOUNT.key(namespace, name))
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(&SERVICE_ACCOUNT, name))?;
        let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
        let mut errors = Vec::new();
        let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
            Some(given) if !given.is_empty() => given.iter().filter_map(|a| a.as_str().map(str::to_string)).collect(),
            _ => self.verifier.audiences.clone(),
        };
        let expiration_seconds = match spec.get("expirationSeconds") {
            None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
            Some(value) => match value.as_i64() {
                Some(s) if s < MIN_EXPIRATION_SECONDS => {
                    errors.push(field(
                        "spec.expirationSeconds",
                        "may not specify a duration less than 10 minutes",
                    ));
                    s
                }
                Some(s) if s > MAX_EXPIRATION_SECONDS => {
                    errors.push(field(
                        "spec.expirationSeconds",
                        "may not specify a duration larger than 2^32 seconds",
                    ));
                    s
                }
                Some(s) => s,
                None => return Err(ApiError::bad_request("spec.expirationSeconds must be a whole number")),
            },
        };
        if !errors.is_empty() {
            return Err(ApiError::invalid(
                "TokenRequest",
                "authentication.k8s.io",
                name,
                &errors,
                &body,
            ));
        }
        let mut claim = KubernetesClaim {
            namespace: namespace.to_string(),
            serviceaccount: Ref {
                name: name.to_string(),
                uid: uid_of(&account).to_string(),
            },
            pod: None,
            secret: None,
        };
        if let Some(bound) = spec.get("boundObjectRef").filter(|b| !b.is_null()) {
            let kind = bound["kind"].as_str().unwrap_or_default();
            let api_version = bound["apiVersion"].as_str().unwrap_or("v1");
            let bound_name = bound["name"].as_str().unwrap_or_default();
            let descriptor = match (api_version, kind) {
                ("v1", "Pod") => &POD,
                ("v1", "Secret") => &SECRET,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token to object of type {api_version}, Kind={kind}"
                    )));
                }
            };
            let object = read(kv, &descriptor.key(namespace, bound_name))
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(|| ApiError::not_found(descriptor, bound_name))?;
            let uid = uid_of(&object).to_string();
            if let Some(wanted) = bound["uid"].as_str().filter(|u| !u.is_empty())
                && wanted != uid
            {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "the UID in the bound object reference ({wanted}) does not match the UID in record. \
                         The object might have been deleted and then recreated"
                    ),
                ));
            }
            let reference = Some(Ref {
                name: bound_name.to_string(),
                uid: uid.clone(),
            });
            if descriptor == &POD {
                let runs_as = object["spec"]["serviceAccountName"].as_str().unwrap_or("default");
                if runs_as != name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                    )));
                }
                claim.pod = reference;
            } else {
                claim.secret = reference;
            }
            body["spec"]["boundObjectRef"]["uid"] = uid.into();
            body["spec"]["boundObjectRef"]["apiVersion"] = api_version.into();
        }
        let now = now_seconds();
        let claims = Claims::new(
            &self.verifier.issuer,
            audiences.clone(),
            now,
            expiration_seconds,
            claim,
            berth_api::names::new_uid(),
        );
        let token = sign(key, &claims).map_err(ApiError::internal)?;
        let expires = UNIX_EPOCH + std::time::Duration::from_secs(claims.exp.max(0) as u64);
        body["apiVersion"] = "authentication.k8s.io/v1".into();
        body["kind"] = "TokenRequest".into();
        body["metadata"] = json!({"name": name, "namespace": namespace,
            "creationTimestamp": berth_api::time::format_rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(now as u64))});
        body["spec"]["audiences"] = json!(audiences);
        body["spec"]["expirationSeconds"] = expiration_seconds.into();
        if body["spec"].get("boundObjectRef").is_none() {
            body["spec"]["boundObjectRef"] = Value::Null;
        }
        body["status"] = json!({"token": token, "expirationTimestamp": berth_api::time::format_rfc3339(expires)});
        Ok(body)
    }
}

/// Answers a TokenReview: whether `spec.token` authenticates (for `spec.audiences`,
/// else the server's), as whom and for which audiences, or the error.
pub async fn token_review(authenticator: &super::Authenticator, kv: &Kv, mut body: Value) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("a TokenReview must be a JSON object"));
    }
    let token = body["spec"]["token"].as_str().unwrap_or_default().to_string();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let audiences: Vec<String> = body["spec"]["audiences"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    body["apiVersion"] = "authentication.k8s.io/v1".into();
    body["kind"] = "TokenReview".into();
    if body.get("metadata").is_none_or(Value::is_null) {
        body["metadata"] = json!({});
    }
    body["status"] = match authenticator.authenticate_token(kv, &token, &audiences).await {
        Ok((user, matched)) => {
            let mut status = json!({"authenticated": true, "user": user_info(&user)});
            if !matched.is_empty() {
                status["audiences"] = json!(matched);
            }
            status
        }
        Err(error) => json!({"user": {}, "error": error}),
    };
    Ok(body)
}

fn user_info(user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = user.uid.clone().into();
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}
