//! `--cipher-suites`: Go's names for TLS 1.2 cipher suites, mapped to rustls' own.
//!
//! etcd hands the names to Go's `crypto/tls`, which applies them to TLS 1.2 only; TLS
//! 1.3 always negotiates among its three suites. rustls implements the AEAD suites with
//! ECDHE key exchange, so a Go name outside those (CBC, RC4, 3DES, RSA key exchange) is
//! refused by name rather than silently dropped from the list.

use rustls::SupportedCipherSuite;
use rustls::crypto::ring::cipher_suite as ring;

/// Every TLS 1.2 suite Go knows, with rustls' suite where rustls has it. The
/// `CHACHA20_POLY1305` suites have two Go names (with and without `_SHA256`).
const GO_SUITES: &[(&str, Option<SupportedCipherSuite>)] = &[
    ("TLS_RSA_WITH_RC4_128_SHA", None),
    ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", None),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", None),
    ("TLS_RSA_WITH_AES_256_CBC_SHA", None),
    ("TLS_RSA_WITH_AES_128_CBC_SHA256", None),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", None),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", None),
    ("TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", None),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", None),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", None),
    ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", None),
    ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", None),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", None),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", None),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", None),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", None),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        Some(ring::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Some(ring::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        Some(ring::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        Some(ring::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        Some(ring::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Some(ring::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        Some(ring::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        Some(ring::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ),
];

/// The TLS 1.3 suites by Go's names: accepted in the list, as Go accepts them, and
/// always on.
const TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The rustls TLS 1.2 suite a Go name stands for; `None` for a TLS 1.3 name. The
/// error is the sentence to show.
pub fn tls12_suite(go_name: &str) -> Result<Option<SupportedCipherSuite>, String> {
    if TLS13_SUITES.contains(&go_name) {
        return Ok(None);
    }
    match GO_SUITES.iter().find(|(name, _)| *name == go_name) {
        Some((_, Some(suite))) => Ok(Some(*suite)),
        Some((_, None)) => Err(format!(
            "TLS cipher suite {go_name:?} is not supported by berth (only ECDHE with AES-GCM or \
             ChaCha20-Poly1305: TLS_ECDHE_{{RSA,ECDSA}}_WITH_{{AES_128_GCM_SHA256,AES_256_GCM_SHA384,\
             CHACHA20_POLY1305}})"
        )),
        // etcd's wording.
        None => Err(format!("unexpected TLS cipher suite {go_name:?}")),
    }
}

/// The suites a provider offers for `--cipher-suites`: TLS 1.3's, then the named TLS
/// 1.2 ones in the order given. Empty names mean rustls' defaults.
pub fn suites(go_names: &[String], defaults: &[SupportedCipherSuite]) -> Result<Vec<SupportedCipherSuite>, String> {
    if go_names.is_empty() {
        return Ok(defaults.to_vec());
    }
    let mut chosen: Vec<SupportedCipherSuite> = defaults
        .iter()
        .filter(|suite| matches!(suite, SupportedCipherSuite::Tls13(_)))
        .copied()
        .collect();
    for name in go_names {
        if let Some(suite) = tls12_suite(name)?
            && !chosen.iter().any(|known| known.suite() == suite.suite())
        {
            chosen.push(suite);
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_names_map_to_rustls_suites_and_the_rest_are_refused_by_name() {
        let suite = tls12_suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").unwrap().unwrap();
        assert_eq!(
            suite.suite(),
            rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        );
        assert!(tls12_suite("TLS_AES_128_GCM_SHA256").unwrap().is_none());
        let cbc = tls12_suite("TLS_RSA_WITH_AES_128_CBC_SHA").unwrap_err();
        assert!(
            cbc.contains("TLS_RSA_WITH_AES_128_CBC_SHA") && cbc.contains("not supported"),
            "{cbc}"
        );
        let unknown = tls12_suite("TLS_MADE_UP").unwrap_err();
        assert_eq!(unknown, r#"unexpected TLS cipher suite "TLS_MADE_UP""#);
    }

    #[test]
    fn a_list_keeps_tls13_and_only_the_named_tls12_suites() {
        let defaults = rustls::crypto::ring::DEFAULT_CIPHER_SUITES;
        let chosen = suites(&["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".to_string()], defaults).unwrap();
        let tls12: Vec<_> = chosen
            .iter()
            .filter(|suite| matches!(suite, SupportedCipherSuite::Tls12(_)))
            .map(|suite| suite.suite())
            .collect();
        assert_eq!(
            tls12,
            vec![rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]
        );
        assert!(
            chosen
                .iter()
                .any(|suite| matches!(suite, SupportedCipherSuite::Tls13(_)))
        );
        assert_eq!(suites(&[], defaults).unwrap().len(), defaults.len());
    }
}
