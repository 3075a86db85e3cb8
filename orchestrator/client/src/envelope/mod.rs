//! Encryption at rest: the values of some resources (Secrets, by default the only
//! ones) are sealed before they reach the store and opened when read back, as
//! kube-apiserver's storage transformers do, in the same stored format so that
//! an operator who knows Kubernetes' recognises it:
//!
//! ```text
//! k8s:enc:aesgcm:v1:<key name>:<12-byte random nonce><ciphertext><16-byte GCM tag>
//! ```
//!
//! AES-GCM (128 or 256 bits, ring's) with a fresh random nonce for every write
//! and the store key as additional authenticated data, so a sealed value copied
//! under another key does not open. The providers come from Kubernetes'
//! EncryptionConfiguration file ([`config`]): the first provider of a resource
//! seals, and every configured key opens what it sealed; values stored in plain
//! text (before encryption was turned on, or under the `identity` provider) are
//! read as they are.
//!
//! The store client ([`crate::kv::Kv`]) applies the envelope on every write and
//! every read (get, list, watch, a delete's previous value), so all who read
//! objects through it (the API server, the controllers, an agent's pull secrets)
//! pass through this one place. A value that no configured key opens is handed on
//! sealed; the registry's decoding then refuses it with [`unreadable`]'s message,
//! naming the key and the object, and the stored value stays as it is.

pub mod config;
pub mod rewrite;
#[cfg(test)]
mod tests;

use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "k8s:enc:";

/// The aesgcm provider's name in a sealed value's prefix.
const AESGCM: &str = "aesgcm";

/// The length of the GCM tag at the end of a sealed value.
const TAG_LEN: usize = 16;

/// One AES-GCM key, by its name in the configuration.
pub struct AesGcmKey {
    name: String,
    key: LessSafeKey,
}

impl AesGcmKey {
    /// A key of 16 or 32 bytes (AES-128 or AES-256); Kubernetes also takes 24,
    /// which ring does not implement, so berth refuses it.
    pub fn new(name: &str, secret: &[u8]) -> Result<AesGcmKey, String> {
        let algorithm = match secret.len() {
            16 => &AES_128_GCM,
            32 => &AES_256_GCM,
            24 => {
                return Err(format!(
                    "key {name:?}: 24-byte (AES-192) keys are not supported; use 32 bytes"
                ));
            }
            n => return Err(format!("key {name:?}: {n} bytes; an aesgcm key is 16 or 32 bytes")),
        };
        let key = UnboundKey::new(algorithm, secret).map_err(|_| format!("key {name:?}: not a usable AES key"))?;
        Ok(AesGcmKey {
            name: name.to_string(),
            key: LessSafeKey::new(key),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn prefix(&self) -> String {
        format!("{SEALED_PREFIX}{AESGCM}:v1:{}:", self.name)
    }
}

/// One provider of a resource's list.
pub enum Provider {
    /// AES-GCM: the first key seals, every key opens.
    AesGcm(Vec<AesGcmKey>),
    /// Stored as is.
    Identity,
}

/// The providers of some resources, by their store prefixes (`/registry/secrets/`).
pub struct Rule {
    pub prefixes: Vec<String>,
    pub providers: Vec<Provider>,
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("encrypted with {provider} key {name:?}, which is not configured")]
    UnknownKey { provider: String, name: String },
    #[error("{provider} key {name:?} does not decrypt it (another key under the same name?)")]
    WrongKey { provider: String, name: String },
    #[error("its encryption prefix is malformed")]
    Malformed,
}

/// The seals of every configured resource.
pub struct Envelope {
    rules: Vec<Rule>,
    random: SystemRandom,
}

/// Names the resources and keys, never the keys' bytes.
impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for rule in &self.rules {
            let providers: Vec<String> = rule
                .providers
                .iter()
                .map(|p| match p {
                    Provider::AesGcm(keys) => {
                        format!("aesgcm{:?}", keys.iter().map(AesGcmKey::name).collect::<Vec<_>>())
                    }
                    Provider::Identity => "identity".to_string(),
                })
                .collect();
            list.entry(&(&rule.prefixes, providers));
        }
        list.finish()
    }
}

impl Envelope {
    pub fn new(rules: Vec<Rule>) -> Envelope {
        Envelope {
            rules,
            random: SystemRandom::new(),
        }
    }

    /// The rule for a store key: the first whose prefix it has.
    fn rule(&self, key: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|rule| rule.prefixes.iter().any(|prefix| key.starts_with(prefix.as_str())))
    }

    /// Whether values under `key` are sealed when written.
    pub fn seals(&self, key: &str) -> bool {
        matches!(
            self.rule(key).and_then(|rule| rule.providers.first()),
            Some(Provider::AesGcm(keys)) if !keys.is_empty()
        )
    }

    /// The name of the key that seals what is written under `key`, if one does.
    pub fn sealing_key(&self, key: &str) -> Option<&str> {
        match self.rule(key)?.providers.first()? {
            Provider::AesGcm(keys) => keys.first().map(AesGcmKey::name),
            Provider::Identity => None,
        }
    }

    /// The form of `value` to store under `key`: sealed with the first provider of
    /// its resource, or as it is.
    pub fn seal(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>, String> {
        let Some(Provider::AesGcm(keys)) = self.rule(key).and_then(|rule| rule.providers.first()) else {
            return Ok(value);
        };
        let Some(sealing) = keys.first() else {
            return Ok(value);
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| "no random bytes for an encryption nonce".to_string())?;
        let mut sealed = value;
        sealing
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| format!("the value of {key} is too large to encrypt"))?;
        let prefix = sealing.prefix();
        let mut out = Vec::with_capacity(prefix.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plain form of a value read under `key`: `Ok(None)` when it was stored
    /// plain (it is used as it is).
    pub fn open(&self, key: &str, value: &[u8]) -> Result<Option<Vec<u8>>, OpenError> {
        let Some((provider, name, body)) = split_sealed(value)? else {
            return Ok(None);
        };
        // The key's own resource's keys first, then any other resource's (a
        // resource moved from one entry of the file to another).
        let own = self.rule(key);
        let rules = own
            .into_iter()
            .chain(self.rules.iter().filter(|r| !own.is_some_and(|o| std::ptr::eq(o, *r))));
        let candidate = (provider == AESGCM)
            .then(|| {
                rules
                    .flat_map(|rule| &rule.providers)
                    .filter_map(|p| match p {
                        Provider::AesGcm(keys) => Some(keys),
                        Provider::Identity => None,
                    })
                    .flatten()
                    .find(|k| k.name == name)
            })
            .flatten();
        let Some(aes) = candidate else {
            return Err(OpenError::UnknownKey {
                provider: provider.to_string(),
                name: name.to_string(),
            });
        };
        let wrong = || OpenError::WrongKey {
            provider: provider.to_string(),
            name: name.to_string(),
        };
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(wrong());
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut buffer = sealed.to_vec();
        let plain = aes
            .key
            .open_in_place(nonce, Aad::from(key.as_bytes()), &mut buffer)
            .map_err(|_| wrong())?;
        Ok(Some(plain.to_vec()))
    }
}

/// A sealed value's parts: the provider, the key's name, and the nonce, ciphertext
/// and tag.
type Sealed<'a> = (&'a str, &'a str, &'a [u8]);

/// A sealed value's parts; `None` for a plain value.
fn split_sealed(value: &[u8]) -> Result<Option<Sealed<'_>>, OpenError> {
    let Some(rest) = value.strip_prefix(SEALED_PREFIX.as_bytes()) else {
        return Ok(None);
    };
    let mut parts = rest.splitn(4, |b| *b == b':');
    let (Some(provider), Some(version), Some(name), Some(body)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OpenError::Malformed);
    };
    fn text(bytes: &[u8]) -> Result<&str, OpenError> {
        std::str::from_utf8(bytes).map_err(|_| OpenError::Malformed)
    }
    let (provider, version, name) = (text(provider)?, text(version)?, text(name)?);
    if version != "v1" || name.is_empty() {
        return Err(OpenError::Malformed);
    }
    Ok(Some((provider, name, body)))
}

/// The provider and key name a stored value was sealed with, if it is sealed.
pub fn sealed_with(value: &[u8]) -> Option<(String, String)> {
    match split_sealed(value) {
        Ok(Some((provider, name, _))) => Some((provider.to_string(), name.to_string())),
        Ok(None) => None,
        Err(_) => value
            .starts_with(SEALED_PREFIX.as_bytes())
            .then(|| ("unknown".to_string(), String::new())),
    }
}

/// Why a value read under `key` cannot be used, when it is still sealed (no
/// configured key opened it): a message that names the key and the object and
/// says that nothing was changed. None for a value that is not sealed.
pub fn unreadable(key: &str, value: &[u8]) -> Option<String> {
    let (provider, name) = sealed_with(value)?;
    Some(format!(
        "{key} is encrypted at rest with {provider} key {name:?}, which none of this server's keys \
         (--encryption-provider-config) decrypts; the stored value is left untouched"
    ))
}
