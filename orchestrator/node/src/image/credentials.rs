//! Pull secrets: the `.dockerconfigjson` of a `kubernetes.io/dockerconfigjson` Secret
//! (`{"auths": {REGISTRY: {"auth": base64("user:password")}}}`, or `username` and
//! `password` beside it) and the older `.dockercfg` of `kubernetes.io/dockercfg` (the
//! same map without `auths`), turned into the credentials a pull matches by registry.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use super::RegistryCredentials;

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The credentials of a `.dockerconfigjson` or `.dockercfg` document, in the order of
/// its registries' names.
pub fn parse_docker_config(bytes: &[u8]) -> Result<Vec<RegistryCredentials>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the docker config is not JSON: {e}"))?;
    let auths = match value.get("auths") {
        Some(auths) => auths.clone(),
        None => value,
    };
    let entries: BTreeMap<String, Entry> =
        serde_json::from_value(auths).map_err(|e| format!("the docker config's auths: {e}"))?;
    let mut out = Vec::new();
    for (registry, entry) in entries {
        let (username, password) = match (entry.username, entry.password, entry.auth) {
            (Some(u), Some(p), _) if !u.is_empty() => (u, p),
            (_, _, Some(auth)) if !auth.is_empty() => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|e| format!("auths.{registry}.auth: not base64: {e}"))?;
                let decoded = String::from_utf8(decoded).map_err(|_| format!("auths.{registry}.auth: not UTF-8"))?;
                let (u, p) = decoded
                    .split_once(':')
                    .ok_or_else(|| format!("auths.{registry}.auth: expected base64 of \"user:password\""))?;
                (u.to_string(), p.to_string())
            }
            _ => continue,
        };
        out.push(RegistryCredentials {
            registry,
            username,
            password,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_secret_formats_give_credentials() {
        let json = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"YWxpY2U6cDpzcw=="},"registry.lan:5000":{"username":"bob","password":"pw"},"empty.lan":{}}}"#;
        let creds = parse_docker_config(json).unwrap();
        assert_eq!(creds.len(), 2);
        assert_eq!(creds[0].registry, "https://index.docker.io/v1/");
        assert_eq!(
            (creds[0].username.as_str(), creds[0].password.as_str()),
            ("alice", "p:ss")
        );
        assert_eq!((creds[1].username.as_str(), creds[1].password.as_str()), ("bob", "pw"));

        let legacy = br#"{"registry.lan":{"auth":"dTpw","email":"u@example"}}"#;
        assert_eq!(parse_docker_config(legacy).unwrap()[0].username, "u");
        assert!(
            parse_docker_config(br#"{"auths":{"r":{"auth":"!!"}}}"#)
                .unwrap_err()
                .contains("base64")
        );
    }
}
