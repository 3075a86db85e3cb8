use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::config::{generated, parse};
use super::*;

const SECRET_KEY: &str = "/registry/secrets/default/db";

fn config(keys: &[(&str, [u8; 32])], identity_first: bool) -> String {
    let keys: String = keys
        .iter()
        .map(|(name, key)| {
            format!(
                "            - name: {name}\n              secret: {}\n",
                BASE64.encode(key)
            )
        })
        .collect();
    let aes = format!("      - aesgcm:\n          keys:\n{keys}");
    let identity = "      - identity: {}\n";
    let providers = if identity_first {
        format!("{identity}{aes}")
    } else {
        format!("{aes}{identity}")
    };
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n{providers}"
    )
}

fn envelope(keys: &[(&str, [u8; 32])]) -> Envelope {
    parse(&config(keys, false)).unwrap()
}

#[test]
fn a_sealed_secret_has_kubernetes_prefix_no_plaintext_and_opens_again() {
    let envelope = envelope(&[("k1", [1; 32])]);
    let plain = br#"{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}"#.to_vec();
    let sealed = envelope.seal(SECRET_KEY, plain.clone()).unwrap();
    assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:k1:"), "{sealed:?}");
    assert_eq!(sealed.len(), "k8s:enc:aesgcm:v1:k1:".len() + 12 + plain.len() + 16);
    assert!(
        !sealed.windows(8).any(|w| w == b"aHVudGVy"),
        "no plaintext in the sealed form"
    );
    assert_eq!(envelope.open(SECRET_KEY, &sealed), Ok(Some(plain.clone())));
    let again = envelope.seal(SECRET_KEY, plain.clone()).unwrap();
    assert_ne!(sealed, again, "every write draws a new nonce");
    assert_eq!(envelope.sealing_key(SECRET_KEY), Some("k1"));
}

#[test]
fn other_resources_and_plain_values_pass_as_they_are() {
    let envelope = envelope(&[("k1", [1; 32])]);
    let pod = b"{\"kind\":\"Pod\"}".to_vec();
    assert_eq!(envelope.seal("/registry/pods/default/p", pod.clone()).unwrap(), pod);
    assert!(!envelope.seals("/registry/pods/default/p"));
    assert!(envelope.seals(SECRET_KEY));
    assert_eq!(envelope.open(SECRET_KEY, b"{\"kind\":\"Secret\"}"), Ok(None));
    // identity first: written plain, and what an aesgcm key sealed still opens.
    let identity_first = parse(&config(&[("k1", [1; 32])], true)).unwrap();
    let sealed = envelope.seal(SECRET_KEY, pod.clone()).unwrap();
    assert_eq!(identity_first.seal(SECRET_KEY, pod.clone()).unwrap(), pod);
    assert_eq!(identity_first.open(SECRET_KEY, &sealed), Ok(Some(pod)));
}

#[test]
fn the_first_key_seals_and_every_key_opens() {
    let old = envelope(&[("k1", [1; 32])]);
    let rotated = envelope(&[("k2", [2; 32]), ("k1", [1; 32])]);
    let by_old = old.seal(SECRET_KEY, b"v".to_vec()).unwrap();
    let by_new = rotated.seal(SECRET_KEY, b"v".to_vec()).unwrap();
    assert!(by_new.starts_with(b"k8s:enc:aesgcm:v1:k2:"));
    assert_eq!(rotated.open(SECRET_KEY, &by_old), Ok(Some(b"v".to_vec())));
    assert_eq!(rotated.open(SECRET_KEY, &by_new), Ok(Some(b"v".to_vec())));
    assert_eq!(
        old.open(SECRET_KEY, &by_new),
        Err(OpenError::UnknownKey {
            provider: "aesgcm".into(),
            name: "k2".into()
        })
    );
}

#[test]
fn a_wrong_key_a_moved_value_or_a_damaged_one_does_not_open() {
    let right = envelope(&[("k1", [1; 32])]);
    let wrong = envelope(&[("k1", [9; 32])]);
    let sealed = right.seal(SECRET_KEY, b"v".to_vec()).unwrap();
    let wrong_key = Err(OpenError::WrongKey {
        provider: "aesgcm".into(),
        name: "k1".into(),
    });
    assert_eq!(wrong.open(SECRET_KEY, &sealed), wrong_key);
    assert_eq!(
        right.open("/registry/secrets/default/other", &sealed),
        wrong_key,
        "the store key is authenticated"
    );
    let mut damaged = sealed.clone();
    *damaged.last_mut().unwrap() ^= 1;
    assert_eq!(right.open(SECRET_KEY, &damaged), wrong_key);
    assert_eq!(right.open(SECRET_KEY, b"k8s:enc:aesgcm:v1:k1:short"), wrong_key);
    assert_eq!(right.open(SECRET_KEY, b"k8s:enc:aesgcm"), Err(OpenError::Malformed));
    let message = unreadable(SECRET_KEY, &sealed).unwrap();
    assert!(message.contains(SECRET_KEY) && message.contains("\"k1\""), "{message}");
    assert_eq!(unreadable(SECRET_KEY, b"{}"), None);
}

#[test]
fn the_configuration_refuses_what_berth_does_not_do_by_name() {
    let good = config(&[("k1", [1; 32])], false);
    for (bad, named) in [
        (good.replace("aesgcm", "aescbc"), "the aescbc provider is not supported"),
        (good.replace("aesgcm", "kms"), "the kms provider is not supported"),
        (good.replace("[secrets]", "['*.*']"), "wildcards are not supported"),
        (
            good.replace("[secrets]", "[widgets]"),
            "\"widgets\": not a resource berth serves",
        ),
        (
            good.replace("/v1", "/v2"),
            "apiVersion: must be apiserver.config.k8s.io/v1",
        ),
        (good.replace("name: k1", "name: ''"), "keys[0].name: required"),
        (
            good.replace("kind: Encryption", "kind: X"),
            "kind: must be EncryptionConfiguration",
        ),
        (format!("{good}extra: 1\n"), "extra: unknown field"),
        (
            good.replace(&BASE64.encode([1u8; 32]), &BASE64.encode([1u8; 24])),
            "24-byte (AES-192) keys are not supported",
        ),
        (
            good.replace(&BASE64.encode([1u8; 32]), "not base64!"),
            "secret: not base64",
        ),
    ] {
        let error = parse(&bad).err().unwrap_or_else(|| panic!("accepted: {bad}"));
        assert!(error.contains(named), "{error} (wanted {named:?})");
    }
    let twice = config(&[("k1", [1; 32]), ("k1", [2; 32])], false);
    assert!(parse(&twice).err().unwrap().contains("\"k1\" is used twice"));
    assert!(parse(&good.replace("[secrets]", "[secrets, deployments.apps]")).is_ok());
}

#[test]
fn a_generated_configuration_seals_secrets_with_a_new_aes_256_key() {
    let text = generated("berth-1").unwrap();
    let a = parse(&text).unwrap();
    let b = parse(&generated("berth-1").unwrap()).unwrap();
    let sealed = a.seal(SECRET_KEY, b"v".to_vec()).unwrap();
    assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:berth-1:"));
    assert!(b.open(SECRET_KEY, &sealed).is_err(), "each generated key is new");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encryption.yaml");
    assert!(config::generate_unless_present(&path, "k").unwrap());
    let first = std::fs::read(&path).unwrap();
    assert!(
        !config::generate_unless_present(&path, "k").unwrap(),
        "an existing file is kept"
    );
    assert_eq!(std::fs::read(&path).unwrap(), first);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_an_envelope_seals_every_write_and_opens_every_read() {
    use std::sync::Arc;
    let t = crate::testing::store().await;
    let raw = t.kv.clone();
    let kv = t.kv.clone().with_envelope(Arc::new(envelope(&[("k1", [1; 32])])));
    let (a, b) = ("/registry/secrets/default/a", "/registry/secrets/default/b");
    let created = kv.create(a, b"one".to_vec(), 0, None).await.unwrap();
    let stored = raw.get(a).await.unwrap().unwrap();
    assert!(stored.value.starts_with(b"k8s:enc:aesgcm:v1:k1:"), "{stored:?}");
    assert_eq!(kv.get(a).await.unwrap().unwrap().value, b"one");
    let mut watch = kv.watch("/registry/secrets/", created + 1).await.unwrap();
    kv.update(a, b"two".to_vec(), created, None).await.unwrap();
    kv.put(b, b"three".to_vec(), 0).await.unwrap();
    let (opened, _) = kv.list("/registry/secrets/").await.unwrap();
    let values: Vec<&[u8]> = opened.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(values, [b"two".as_slice(), b"three"]);
    let (stored, _) = raw.list("/registry/secrets/").await.unwrap();
    assert!(stored.iter().all(|r| r.value.starts_with(b"k8s:enc:")), "{stored:?}");
    // A registry over a client without the key refuses the value by name.
    let refused = crate::registry::decode_value(&stored[1], "Secret")
        .unwrap_err()
        .to_string();
    assert!(refused.contains(b) && refused.contains("key \"k1\""), "{refused}");
    assert_eq!(kv.delete(a, None, None).await.unwrap().value, b"two");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (_, events) = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
            .await
            .expect("the watch's events")
            .unwrap()
            .unwrap();
        seen.extend(events.into_iter().map(|e| match e {
            crate::kv::Event::Put(r) => r.value,
            crate::kv::Event::Delete { prev, .. } => prev.value,
        }));
    }
    assert_eq!(seen, [b"two".to_vec(), b"three".to_vec(), b"two".to_vec()]);

    // Rotation: rewritten with the new first key; a wrong key writes nothing.
    let plain = "/registry/secrets/default/plain";
    raw.put(plain, b"{}".to_vec(), 0).await.unwrap();
    let wrong = Arc::new(envelope(&[("k1", [9; 32])]));
    let report = rewrite::rewrite_all(&raw, wrong, "/registry/secrets/").await.unwrap();
    assert_eq!(report.rewritten, 0);
    assert_eq!(report.unreadable.len(), 1, "{report:?}");
    assert!(report.unreadable[0].contains(b), "{report:?}");
    assert_eq!(raw.get(plain).await.unwrap().unwrap().value, b"{}", "untouched");
    let rotated = Arc::new(envelope(&[("k2", [2; 32]), ("k1", [1; 32])]));
    let report = rewrite::rewrite_all(&raw, rotated.clone(), "/registry/secrets/")
        .await
        .unwrap();
    assert_eq!(report.rewritten, 2, "{report:?}");
    assert_eq!(
        report.stored_with.into_iter().collect::<Vec<_>>(),
        [("aesgcm key \"k2\"".to_string(), 2)]
    );
    let only_new = raw.clone().with_envelope(Arc::new(envelope(&[("k2", [2; 32])])));
    assert_eq!(only_new.get(b).await.unwrap().unwrap().value, b"three");
    assert_eq!(only_new.get(plain).await.unwrap().unwrap().value, b"{}");
}
