//! Kubernetes' EncryptionConfiguration file, which `--encryption-provider-config`
//! names (the same flag as kube-apiserver's):
//!
//! ```yaml
//! apiVersion: apiserver.config.k8s.io/v1
//! kind: EncryptionConfiguration
//! resources:
//!   - resources: [secrets]
//!     providers:
//!       - aesgcm:
//!           keys:
//!             - name: key2            # the first key encrypts
//!               secret: <32 bytes, base64>
//!             - name: key1            # every key decrypts
//!               secret: <base64>
//!       - identity: {}
//! ```
//!
//! berth implements the `aesgcm` and `identity` providers; `aescbc`, `secretbox`
//! and `kms` are refused by name, as is any field it does not act on. Resources
//! are named one by one (`secrets`, `deployments.apps`), no wildcards.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use super::{AesGcmKey, Envelope, Provider, Rule};

pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
pub const KIND: &str = "EncryptionConfiguration";

/// Reads and checks the file; the error names the file and the field at fault.
pub fn load(path: &Path) -> Result<Envelope, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses an EncryptionConfiguration (YAML or JSON).
pub fn parse(text: &str) -> Result<Envelope, String> {
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML or JSON: {e}"))?;
    let fields = object(&value, "the file")?;
    only(fields, &["apiVersion", "kind", "resources"], "")?;
    if fields.get("kind").and_then(Value::as_str) != Some(KIND) {
        return Err(format!("kind: must be {KIND}"));
    }
    if fields.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
        return Err(format!("apiVersion: must be {API_VERSION}"));
    }
    let resources = list(fields.get("resources"), "resources")?;
    let mut rules = Vec::new();
    for (i, entry) in resources.iter().enumerate() {
        let at = format!("resources[{i}]");
        let entry = object(entry, &at)?;
        only(entry, &["resources", "providers"], &at)?;
        let mut prefixes = Vec::new();
        for (j, name) in list(entry.get("resources"), &format!("{at}.resources"))?
            .iter()
            .enumerate()
        {
            let name = name
                .as_str()
                .ok_or_else(|| format!("{at}.resources[{j}]: must be a resource name"))?;
            prefixes.push(resource_prefix(name).map_err(|e| format!("{at}.resources[{j}]: {e}"))?);
        }
        let mut providers = Vec::new();
        for (j, provider) in list(entry.get("providers"), &format!("{at}.providers"))?
            .iter()
            .enumerate()
        {
            providers.push(provider_of(provider, &format!("{at}.providers[{j}]"))?);
        }
        rules.push(Rule { prefixes, providers });
    }
    for (i, rule) in rules.iter().enumerate() {
        let mut names = std::collections::BTreeSet::new();
        for provider in &rule.providers {
            if let Provider::AesGcm(keys) = provider {
                for key in keys {
                    // A sealed value names its key only: two keys of one name could
                    // not be told apart when reading.
                    if !names.insert(key.name.as_str()) {
                        return Err(format!("resources[{i}]: key name {:?} is used twice", key.name));
                    }
                }
            }
        }
    }
    Ok(Envelope::new(rules))
}

/// The store prefix of a resource named as Kubernetes names it: `secrets`, or
/// `<plural>.<group>`.
fn resource_prefix(name: &str) -> Result<String, String> {
    if name.contains('*') {
        return Err(format!("{name:?}: wildcards are not supported; name each resource"));
    }
    let (plural, group) = name.split_once('.').unwrap_or((name, ""));
    berth_api::kinds::KINDS
        .iter()
        .find(|k| k.plural == plural && k.group == group)
        .map(|k| k.prefix(None))
        .ok_or_else(|| format!("{name:?}: not a resource berth serves"))
}

fn provider_of(value: &Value, at: &str) -> Result<Provider, String> {
    let fields = object(value, at)?;
    if fields.len() != 1 {
        return Err(format!("{at}: must name exactly one provider"));
    }
    let (kind, body) = fields.iter().next().expect("one field");
    let at = format!("{at}.{kind}");
    match kind.as_str() {
        "identity" => {
            if !body.is_null() {
                only(object(body, &at)?, &[], &at)?;
            }
            Ok(Provider::Identity)
        }
        "aesgcm" => {
            let body = object(body, &at)?;
            only(body, &["keys"], &at)?;
            let keys = list(body.get("keys"), &format!("{at}.keys"))?;
            if keys.is_empty() {
                return Err(format!("{at}.keys: at least one key is needed"));
            }
            let mut out = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let at = format!("{at}.keys[{i}]");
                let key = object(key, &at)?;
                only(key, &["name", "secret"], &at)?;
                let name = key.get("name").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty() || name.contains(':') {
                    return Err(format!("{at}.name: required, without ':'"));
                }
                let secret = key
                    .get("secret")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{at}.secret: required (the key, base64)"))?;
                let secret = BASE64
                    .decode(secret.trim())
                    .map_err(|e| format!("{at}.secret: not base64 ({e})"))?;
                out.push(AesGcmKey::new(name, &secret).map_err(|e| format!("{at}: {e}"))?);
            }
            Ok(Provider::AesGcm(out))
        }
        "aescbc" | "secretbox" | "kms" => Err(format!(
            "{at}: the {kind} provider is not supported by berth (aesgcm and identity are)"
        )),
        other => Err(format!("{at}: unknown provider {other:?}")),
    }
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    value.as_object().ok_or_else(|| format!("{at}: must be a mapping"))
}

fn list<'a>(value: Option<&'a Value>, at: &str) -> Result<&'a Vec<Value>, String> {
    value
        .and_then(Value::as_array)
        .filter(|items| !items.is_empty())
        .ok_or_else(|| format!("{at}: a non-empty list is required"))
}

/// Refuses fields berth does not act on, by name.
fn only(fields: &Map<String, Value>, known: &[&str], at: &str) -> Result<(), String> {
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) if at.is_empty() => Err(format!("{unknown}: unknown field")),
        Some(unknown) => Err(format!("{at}.{unknown}: unknown field")),
        None => Ok(()),
    }
}

/// A configuration that seals Secrets with one new random AES-256 key named
/// `name`, plain values staying readable.
pub fn generated(name: &str) -> Result<String, String> {
    Ok(format!(
        "apiVersion: {API_VERSION}\nkind: {KIND}\nresources:\n  - resources:\n      - secrets\n    providers:\n      \
         - aesgcm:\n          keys:\n            - name: {name}\n              secret: {}\n      - identity: {{}}\n",
        new_key()?
    ))
}

/// A new random AES-256 key, base64, as an aesgcm key's `secret`.
pub fn new_key() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| "no random bytes for a key".to_string())?;
    Ok(BASE64.encode(key))
}

/// Writes a [`generated`] configuration at `path` (0600) unless a file is there
/// already; returns whether it wrote one.
pub fn generate_unless_present(path: &Path, name: &str) -> Result<bool, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = generated(name)?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
