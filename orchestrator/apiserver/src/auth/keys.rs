//! The keys of ServiceAccount tokens, from PEM as kube-apiserver reads its
//! `--service-account-signing-key-file` and `--service-account-key-file`: ECDSA
//! P-256 keys sign ES256, RSA keys RS256 (ring does both). Private keys in PKCS#8
//! (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`); public
//! keys as `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY`, or the public
//! half of a private key. Each key's id (`kid`) is, as Kubernetes', the unpadded
//! base64url of the SHA-256 of its SubjectPublicKeyInfo.
//!
//! DER is read and written here by hand, just enough for these few structures.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};

/// 1.2.840.10045.2.1 (id-ecPublicKey) and 1.2.840.10045.3.1.7 (prime256v1).
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 1.2.840.113549.1.1.1 (rsaEncryption).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// A key that signs tokens.
pub struct SigningKey {
    kind: Private,
    pub key_id: String,
}

enum Private {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} {})", self.algorithm(), self.key_id)
    }
}

/// A key that verifies tokens.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    /// `ES256` or `RS256`.
    pub algorithm: &'static str,
    /// The EC point, or the PKCS#1 RSAPublicKey.
    public: Vec<u8>,
    pub key_id: String,
}

impl SigningKey {
    /// The one private key in `pem`.
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        let blocks = pem_blocks(pem)?;
        let (label, der) = blocks
            .iter()
            .find(|(label, _)| label.ends_with("PRIVATE KEY"))
            .ok_or("no private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY) in the file")?;
        let random = SystemRandom::new();
        let kind = match label.as_str() {
            "PRIVATE KEY" => {
                match EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &random) {
                    Ok(pair) => Private::Ecdsa(pair),
                    Err(_) => Private::Rsa(
                        RsaKeyPair::from_pkcs8(der)
                            .map_err(|e| format!("the PKCS#8 key is neither an ECDSA P-256 nor an RSA key ({e})"))?,
                    ),
                }
            }
            "EC PRIVATE KEY" => Private::Ecdsa(
                EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &sec1_to_pkcs8(der),
                    &random,
                )
                .map_err(|e| format!("the EC key is not a P-256 key ({e})"))?,
            ),
            "RSA PRIVATE KEY" => {
                Private::Rsa(RsaKeyPair::from_der(der).map_err(|e| format!("the RSA key cannot be read ({e})"))?)
            }
            other => return Err(format!("{other}: not a kind of private key berth reads")),
        };
        let mut key = SigningKey {
            kind,
            key_id: String::new(),
        };
        key.key_id = key.verifying_key().key_id;
        Ok(key)
    }

    pub fn algorithm(&self) -> &'static str {
        match self.kind {
            Private::Ecdsa(_) => "ES256",
            Private::Rsa(_) => "RS256",
        }
    }

    /// Its public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        let (algorithm, public) = match &self.kind {
            Private::Ecdsa(pair) => ("ES256", pair.public_key().as_ref().to_vec()),
            Private::Rsa(pair) => ("RS256", pair.public_key().as_ref().to_vec()),
        };
        VerifyingKey::new(algorithm, public)
    }

    /// The signature of `message` (JWS: ES256 as r||s, RS256 as PKCS#1 v1.5).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let random = SystemRandom::new();
        match &self.kind {
            Private::Ecdsa(pair) => pair
                .sign(&random, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|e| format!("signing failed: {e}")),
            Private::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &random, message, &mut out)
                    .map_err(|e| format!("signing failed: {e}"))?;
                Ok(out)
            }
        }
    }
}

impl VerifyingKey {
    fn new(algorithm: &'static str, public: Vec<u8>) -> VerifyingKey {
        let spki = match algorithm {
            "ES256" => der(
                0x30,
                &[
                    der(0x30, &[oid(EC_PUBLIC_KEY), oid(PRIME256V1)].concat()),
                    bit_string(&public),
                ]
                .concat(),
            ),
            _ => der(
                0x30,
                &[
                    der(0x30, &[oid(RSA_ENCRYPTION), vec![0x05, 0x00]].concat()),
                    bit_string(&public),
                ]
                .concat(),
            ),
        };
        let key_id = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        VerifyingKey {
            algorithm,
            public,
            key_id,
        }
    }

    /// Every public key in `pem` (public keys, or the public halves of private keys).
    pub fn all_from_pem(pem: &str) -> Result<Vec<VerifyingKey>, String> {
        let mut keys = Vec::new();
        for (label, der) in pem_blocks(pem)? {
            match label.as_str() {
                "PUBLIC KEY" => keys.push(spki_key(&der)?),
                "RSA PUBLIC KEY" => keys.push(VerifyingKey::new("RS256", der)),
                label if label.ends_with("PRIVATE KEY") => {
                    let block = format!(
                        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                        STANDARD.encode(&der)
                    );
                    keys.push(SigningKey::from_pem(&block)?.verifying_key());
                }
                other => return Err(format!("{other}: not a kind of key berth reads")),
            }
        }
        if keys.is_empty() {
            return Err("no key in the file".into());
        }
        Ok(keys)
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &dyn signature::VerificationAlgorithm = match self.algorithm {
            "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
            _ => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(algorithm, &self.public)
            .verify(message, signature)
            .is_ok()
    }
}

/// The (label, DER) of each PEM block.
fn pem_blocks(pem: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut blocks = Vec::new();
    let mut lines = pem.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        loop {
            match lines.next() {
                Some(l) if l == end => break,
                Some(l) if l.contains(':') => {} // headers of old-style encrypted keys
                Some(l) => body.push_str(l),
                None => return Err(format!("the {label} block has no end")),
            }
        }
        let der = STANDARD
            .decode(body)
            .map_err(|e| format!("the {label} block is not base64: {e}"))?;
        blocks.push((label.to_string(), der));
    }
    Ok(blocks)
}

fn der_length(length: usize) -> Vec<u8> {
    if length < 0x80 {
        return vec![length as u8];
    }
    let bytes: Vec<u8> = length.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    [vec![0x80 | bytes.len() as u8], bytes].concat()
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    [vec![tag], der_length(content.len()), content.to_vec()].concat()
}

fn oid(value: &[u8]) -> Vec<u8> {
    der(0x06, value)
}

fn bit_string(bits: &[u8]) -> Vec<u8> {
    der(0x03, &[&[0u8][..], bits].concat())
}

/// One TLV: (tag, content, what follows).
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "malformed DER in the key".to_string();
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
    let length = if first < 0x80 {
        first as usize
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return Err(bad());
        }
        let length = rest[..count].iter().fold(0usize, |n, b| (n << 8) | *b as usize);
        rest = &rest[count..];
        length
    };
    if rest.len() < length {
        return Err(bad());
    }
    Ok((tag, &rest[..length], &rest[length..]))
}

/// The key of a SubjectPublicKeyInfo.
fn spki_key(spki: &[u8]) -> Result<VerifyingKey, String> {
    let (_, info, _) = read_tlv(spki)?;
    let (_, algorithm, rest) = read_tlv(info)?;
    let (_, bits, _) = read_tlv(rest)?;
    let (_, algorithm_oid, parameters) = read_tlv(algorithm)?;
    let public = bits.get(1..).ok_or("an empty public key")?.to_vec();
    match algorithm_oid {
        EC_PUBLIC_KEY => {
            let (_, curve, _) = read_tlv(parameters)?;
            if curve != PRIME256V1 {
                return Err("an EC public key not on P-256: only ES256 is supported".into());
            }
            Ok(VerifyingKey::new("ES256", public))
        }
        RSA_ENCRYPTION => Ok(VerifyingKey::new("RS256", public)),
        _ => Err("a public key neither ECDSA P-256 nor RSA".into()),
    }
}

/// A SEC1 ECPrivateKey wrapped as the PKCS#8 PrivateKeyInfo ring reads.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    let algorithm = der(0x30, &[oid(EC_PUBLIC_KEY), oid(PRIME256V1)].concat());
    der(0x30, &[vec![0x02, 0x01, 0x00], algorithm, der(0x04, sec1)].concat())
}
