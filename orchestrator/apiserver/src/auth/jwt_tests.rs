use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::*;

/// Test keys made with openssl (`genrsa -traditional`, `ecparam -genkey`), in the
/// forms kube-apiserver's users hand it.
const RSA_KEY: &str = include_str!("testdata/rsa.key");
const RSA_PUB: &str = include_str!("testdata/rsa.pub");
const EC_KEY: &str = include_str!("testdata/ec.key");
const EC_PUB: &str = include_str!("testdata/ec.pub");

/// A fresh P-256 key as PKCS#8 PEM, as `berth up` writes `sa.key`.
fn pkcs8_key() -> String {
    let random = ring::rand::SystemRandom::new();
    let der = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &random)
        .unwrap();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(der.as_ref())
    )
}

fn claims(now: i64) -> Claims {
    Claims::new(
        DEFAULT_ISSUER,
        vec![DEFAULT_ISSUER.to_string()],
        now,
        3600,
        KubernetesClaim {
            namespace: "dev".into(),
            serviceaccount: Ref {
                name: "builder".into(),
                uid: "u-1".into(),
            },
            pod: Some(Ref {
                name: "p".into(),
                uid: "u-2".into(),
            }),
            secret: None,
        },
        "j-1".into(),
    )
}

fn verifier(keys: Vec<VerifyingKey>) -> Verifier {
    Verifier {
        keys,
        issuer: DEFAULT_ISSUER.into(),
        audiences: vec![DEFAULT_ISSUER.into()],
    }
}

const NOW: i64 = 1_800_000_000;

#[test]
fn every_key_form_signs_and_its_public_key_verifies() {
    let pkcs8 = pkcs8_key();
    for (private, public, algorithm) in [
        (pkcs8.as_str(), None, "ES256"),
        (EC_KEY, Some(EC_PUB), "ES256"),
        (RSA_KEY, Some(RSA_PUB), "RS256"),
    ] {
        let key = SigningKey::from_pem(private).unwrap();
        assert_eq!(key.algorithm(), algorithm);
        let token = sign(&key, &claims(NOW)).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], algorithm);
        assert_eq!(header["kid"], key.key_id);
        // The public key file, or the private key file itself, verifies.
        let keys = VerifyingKey::all_from_pem(public.unwrap_or(private)).unwrap();
        assert_eq!(
            keys[0].key_id, key.key_id,
            "{algorithm}: the same key id from either half"
        );
        assert_eq!(verifier(keys).verify(&token, NOW + 1, &[]).unwrap(), claims(NOW));
    }
}

#[test]
fn the_claims_are_kubernetes_own() {
    let key = SigningKey::from_pem(&pkcs8_key()).unwrap();
    let token = sign(&key, &claims(NOW)).unwrap();
    let body: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "aud": [DEFAULT_ISSUER], "exp": NOW + 3600, "iat": NOW, "nbf": NOW, "iss": DEFAULT_ISSUER,
            "jti": "j-1", "sub": "system:serviceaccount:dev:builder",
            "kubernetes.io": {"namespace": "dev", "serviceaccount": {"name": "builder", "uid": "u-1"},
                              "pod": {"name": "p", "uid": "u-2"}}
        })
    );
}

#[test]
fn refusals_say_why() {
    let key = SigningKey::from_pem(&pkcs8_key()).unwrap();
    let check = verifier(vec![key.verifying_key()]);
    let token = sign(&key, &claims(NOW)).unwrap();

    // A claim changed after signing: the signature no longer holds.
    let (header, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let mut forged = claims(NOW);
    forged.kubernetes.namespace = "kube-system".into();
    forged.sub = "system:serviceaccount:kube-system:builder".into();
    let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    let tampered = format!("{header}.{forged_body}.{signature}");
    assert_eq!(check.verify(&tampered, NOW, &[]), Err(TokenError::BadSignature));
    // Another key's token.
    let other = SigningKey::from_pem(&pkcs8_key()).unwrap();
    assert_eq!(
        check.verify(&sign(&other, &claims(NOW)).unwrap(), NOW, &[]),
        Err(TokenError::BadSignature)
    );
    assert_eq!(check.verify("a.b", NOW, &[]), Err(TokenError::Malformed));

    assert_eq!(check.verify(&token, NOW + 3600, &[]), Err(TokenError::Expired));
    assert_eq!(
        check.verify(&token, NOW + 3600, &[]).unwrap_err().to_string(),
        "service account token has expired"
    );
    assert_eq!(check.verify(&token, NOW - 1, &[]), Err(TokenError::NotYetValid));

    let mut elsewhere = claims(NOW);
    elsewhere.iss = "https://issuer.example".into();
    assert_eq!(
        check.verify(&sign(&key, &elsewhere).unwrap(), NOW, &[]),
        Err(TokenError::WrongIssuer("https://issuer.example".into()))
    );

    let mut vault = claims(NOW);
    vault.aud = vec!["vault".into()];
    let vault_token = sign(&key, &vault).unwrap();
    let refused = check.verify(&vault_token, NOW, &[]).unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!("token audiences [\"vault\"] is invalid for the target audiences [\"{DEFAULT_ISSUER}\"]")
    );
    // Asked with the audiences of a TokenReview, the same token is fine.
    assert!(check.verify(&vault_token, NOW, &["vault".to_string()]).is_ok());
}

#[test]
fn unreadable_keys_are_refused_with_what_is_wrong() {
    assert!(SigningKey::from_pem(EC_PUB).unwrap_err().contains("no private key"));
    assert!(VerifyingKey::all_from_pem("").unwrap_err().contains("no key"));
    let truncated = "-----BEGIN PUBLIC KEY-----\nMFkw\n";
    assert!(VerifyingKey::all_from_pem(truncated).unwrap_err().contains("no end"));
}
