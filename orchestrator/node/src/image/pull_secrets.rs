//! `imagePullSecrets`: the registry credentials a pod's Secrets hold, as Docker's
//! config files write them.
//!
//! Two Secret types carry them, as Kubernetes defines:
//! - `kubernetes.io/dockerconfigjson`: `data[".dockerconfigjson"]` is a
//!   `~/.docker/config.json`: `{"auths": {"<registry>": {...}}}`;
//! - `kubernetes.io/dockercfg`: `data[".dockercfg"]` is the older `~/.dockercfg`,
//!   the same per-registry entries without the `auths` level.
//!
//! The document itself is parsed by [`credentials::parse_docker_config`]; here is
//! what a Secret adds around it: its type, its `data` key, the base64 of `data`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::RegistryCredentials;
use super::credentials::parse_docker_config;

pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";

/// The credentials a Secret holds, from its stored JSON (`type`, and `data` in
/// base64 as the API writes it). `Err` says why the secret cannot be used: the
/// kubelet then logs it and pulls without it.
pub fn credentials_from_secret(secret: &Value) -> Result<Vec<RegistryCredentials>, String> {
    let kind = secret.get("type").and_then(Value::as_str).unwrap_or_default();
    let key = match kind {
        DOCKER_CONFIG_JSON => ".dockerconfigjson",
        DOCKER_CFG => ".dockercfg",
        other => {
            return Err(format!(
                "secret type {other:?} holds no registry credentials (expected {DOCKER_CONFIG_JSON:?} or {DOCKER_CFG:?})"
            ));
        }
    };
    let encoded = secret
        .get("data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("data[{key:?}] is missing"))?;
    let config = STANDARD
        .decode(encoded)
        .map_err(|e| format!("data[{key:?}] is not base64: {e}"))?;
    parse_docker_config(&config).map_err(|e| format!("data[{key:?}]: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    fn creds(registry: &str, username: &str, password: &str) -> RegistryCredentials {
        RegistryCredentials {
            registry: registry.into(),
            username: username.into(),
            password: password.into(),
        }
    }

    #[test]
    fn dockerconfigjson_gives_one_credential_per_registry() {
        let config = json!({"auths": {
            "registry.example:5000": {"auth": b64("alice:s3cret:with:colons")},
            "https://index.docker.io/v1/": {"username": "bob", "password": "pw"},
            "no-credentials.example": {"email": "x@example"},
        }});
        let secret = json!({
            "type": DOCKER_CONFIG_JSON,
            "data": {".dockerconfigjson": b64(&config.to_string())},
        });
        assert_eq!(
            credentials_from_secret(&secret).unwrap(),
            [
                creds("https://index.docker.io/v1/", "bob", "pw"),
                // Only the first colon splits: passwords may hold colons.
                creds("registry.example:5000", "alice", "s3cret:with:colons"),
            ]
        );
    }

    #[test]
    fn dockercfg_has_no_auths_level() {
        let config = json!({"registry.example": {"auth": b64("u:p")}});
        let secret = json!({"type": DOCKER_CFG, "data": {".dockercfg": b64(&config.to_string())}});
        assert_eq!(
            credentials_from_secret(&secret).unwrap(),
            [creds("registry.example", "u", "p")]
        );
    }

    #[test]
    fn unusable_secrets_say_why() {
        let opaque = json!({"type": "Opaque", "data": {}});
        assert!(credentials_from_secret(&opaque).unwrap_err().contains("\"Opaque\""));
        let missing = json!({"type": DOCKER_CONFIG_JSON, "data": {}});
        assert!(
            credentials_from_secret(&missing)
                .unwrap_err()
                .contains(".dockerconfigjson")
        );
        let not_base64 = json!({"type": DOCKER_CONFIG_JSON, "data": {".dockerconfigjson": "%%%"}});
        assert!(credentials_from_secret(&not_base64).unwrap_err().contains("base64"));
        let not_json = json!({"type": DOCKER_CONFIG_JSON, "data": {".dockerconfigjson": b64("{")}});
        assert!(credentials_from_secret(&not_json).unwrap_err().contains("JSON"));
    }
}
