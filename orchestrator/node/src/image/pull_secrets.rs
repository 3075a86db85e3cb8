//! `imagePullSecrets`: the registry credentials a pod's Secrets hold, as Docker's
//! config files write them.
//!
//! Two Secret types carry them, as Kubernetes defines:
//! - `kubernetes.io/dockerconfigjson`: `data[".dockerconfigjson"]` is a
//!   `~/.docker/config.json`: `{"auths": {"<registry>": {...}}}`;
//! - `kubernetes.io/dockercfg`: `data[".dockercfg"]` is the older `~/.dockercfg`,
//!   the same per-registry entries without the `auths` level.
//!
//! An entry gives either `auth` (base64 of `user:password`) or `username` and
//! `password`; with both, `username`/`password` win, as Docker's credential loading
//! reads them after `auth`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::RegistryCredentials;

pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";

/// The credentials a Secret holds, from its stored JSON (`type`, and `data` in
/// base64 as the API writes it). `Err` says why the secret cannot be used: the
/// kubelet then logs it and pulls without it.
pub fn credentials_from_secret(secret: &Value) -> Result<Vec<RegistryCredentials>, String> {
    let kind = secret.get("type").and_then(Value::as_str).unwrap_or_default();
    let (key, nested) = match kind {
        DOCKER_CONFIG_JSON => (".dockerconfigjson", true),
        DOCKER_CFG => (".dockercfg", false),
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
    parse_docker_config(&config, nested).map_err(|e| format!("data[{key:?}]: {e}"))
}

/// The entries of a Docker config file: under `auths` when `nested` (config.json),
/// at the top level otherwise (.dockercfg). Sorted by registry.
pub fn parse_docker_config(config: &[u8], nested: bool) -> Result<Vec<RegistryCredentials>, String> {
    let value: Value = serde_json::from_slice(config).map_err(|e| format!("not JSON: {e}"))?;
    let auths = if nested { value.get("auths") } else { Some(&value) };
    let Some(Value::Object(auths)) = auths else {
        return Err(if nested {
            "no \"auths\" object".into()
        } else {
            "not a JSON object".into()
        });
    };
    let mut credentials = Vec::new();
    for (registry, entry) in auths {
        let field = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or_default();
        let (mut username, mut password) = (String::new(), String::new());
        if !field("auth").is_empty() {
            let decoded = STANDARD
                .decode(field("auth"))
                .map_err(|e| format!("{registry}: auth is not base64: {e}"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| format!("{registry}: auth is not UTF-8"))?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| format!("{registry}: auth is not \"user:password\""))?;
            (username, password) = (user.to_string(), pass.to_string());
        }
        if !field("username").is_empty() || !field("password").is_empty() {
            (username, password) = (field("username").to_string(), field("password").to_string());
        }
        if username.is_empty() && password.is_empty() {
            continue;
        }
        credentials.push(RegistryCredentials {
            registry: registry.clone(),
            username,
            password,
        });
    }
    credentials.sort_by(|a, b| a.registry.cmp(&b.registry));
    Ok(credentials)
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
    fn username_and_password_win_over_auth() {
        let config = json!({"auths": {"r": {"auth": b64("old:old"), "username": "new", "password": "new"}}});
        assert_eq!(
            parse_docker_config(config.to_string().as_bytes(), true).unwrap(),
            [creds("r", "new", "new")]
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
        let no_auths = json!({"type": DOCKER_CONFIG_JSON, "data": {".dockerconfigjson": b64("{}")}});
        assert!(credentials_from_secret(&no_auths).unwrap_err().contains("auths"));
        let bad_auth = json!({"auths": {"r": {"auth": b64("no-colon")}}});
        assert!(
            parse_docker_config(bad_auth.to_string().as_bytes(), true)
                .unwrap_err()
                .contains("user:password")
        );
    }
}
