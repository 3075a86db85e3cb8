//! ServiceAccount tokens: JWS compact serialisations (header.claims.signature,
//! base64url without padding) with Kubernetes' claims, signed and checked here
//! without I/O (the time is given; whether the account and the pod still exist is
//! the caller's question, [`Claims::bound`] says what to ask):
//!
//! ```text
//!  {"alg":"ES256","kid":<key id>}.{"aud":[...],"exp":..,"iat":..,"nbf":..,"iss":..,
//!   "jti":..,"sub":"system:serviceaccount:<ns>:<name>",
//!   "kubernetes.io":{"namespace":..,"serviceaccount":{"name","uid"},
//!                    "pod":{"name","uid"} | "secret":{"name","uid"}, "warnafter"?}}
//! ```
//!
//! A token is refused, by name ([`TokenError`]), when no key verifies its signature,
//! when it has expired or is not valid yet, when its issuer is not the server's, or
//! when none of its audiences is one the server accepts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::keys::{SigningKey, VerifyingKey};
use super::user::SERVICE_ACCOUNT_USER_PREFIX;

/// kube-apiserver's default `--service-account-issuer` and API audience.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Why a token is refused, with kube-apiserver's words where it has them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or not JSON where JSON belongs.
    #[error("invalid bearer token")]
    Malformed,
    #[error("invalid signature")]
    BadSignature,
    #[error("service account token has expired")]
    Expired,
    #[error("service account token is not valid yet")]
    NotYetValid,
    /// The token is another issuer's (kube-apiserver ignores it: not its token).
    #[error("invalid bearer token: the token's issuer {0:?} is not this server's")]
    WrongIssuer(String),
    #[error("token audiences {token:?} is invalid for the target audiences {accepted:?}")]
    WrongAudience { token: Vec<String>, accepted: Vec<String> },
    /// The account, or the object it is bound to, is gone or is another one now.
    #[error("service account token has been invalidated")]
    Invalidated,
}

/// An object a token is bound to, as the claims name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    #[serde(default)]
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
    pub nbf: i64,
    pub sub: String,
}

impl Claims {
    /// The claims of a token for the account `namespace`/`account`, valid from `now`
    /// for `expiration_seconds`.
    pub fn new(
        issuer: &str,
        audiences: Vec<String>,
        now: i64,
        expiration_seconds: i64,
        kubernetes: KubernetesClaim,
        jti: String,
    ) -> Claims {
        Claims {
            aud: audiences,
            exp: now + expiration_seconds,
            iat: now,
            iss: issuer.to_string(),
            jti,
            sub: format!(
                "{SERVICE_ACCOUNT_USER_PREFIX}{}:{}",
                kubernetes.namespace, kubernetes.serviceaccount.name
            ),
            kubernetes,
            nbf: now,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    kid: String,
}

/// The signed token of `claims`.
pub fn sign(key: &SigningKey, claims: &Claims) -> Result<String, String> {
    let header = Header {
        alg: key.algorithm().into(),
        kid: key.key_id.clone(),
    };
    let message = format!("{}.{}", encoded_json(&header), encoded_json(claims));
    let signature = key.sign(message.as_bytes())?;
    Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

fn encoded_json(value: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("plain structs serialize"))
}

/// What a server accepts.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub keys: Vec<VerifyingKey>,
    pub issuer: String,
    /// `--api-audiences`, by default the issuer.
    pub audiences: Vec<String>,
}

impl Verifier {
    /// The claims of `token` if a key signed it, it is valid at `now` (seconds since
    /// the epoch), it is this server's, and one of its audiences is one of
    /// `audiences` (the server's own when empty).
    pub fn verify(&self, token: &str, now: i64, audiences: &[String]) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed);
        let header: Header = serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
        let claims_bytes = decode(claims)?;
        let signature = decode(signature)?;
        let (message, _) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let message = message.as_bytes();
        let signed = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .any(|k| k.verify(message, &signature));
        if !signed {
            return Err(TokenError::BadSignature);
        }
        let claims: Claims = serde_json::from_slice(&claims_bytes).map_err(|_| TokenError::Malformed)?;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer(claims.iss));
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        if now < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        let accepted = if audiences.is_empty() {
            &self.audiences[..]
        } else {
            audiences
        };
        if !claims.aud.iter().any(|a| accepted.contains(a)) {
            return Err(TokenError::WrongAudience {
                token: claims.aud,
                accepted: accepted.to_vec(),
            });
        }
        Ok(claims)
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
