//! The TLS flags: etcd's names and Go's bool syntax, https URLs, and the pairs of
//! flags that only work together.

use std::path::PathBuf;

use super::*;

#[test]
fn tls_flags_fill_the_client_and_peer_sides() {
    let flags = parse(
        "--listen-client-urls https://127.0.0.1:2379 --cert-file c.pem --key-file k.pem \
         --trusted-ca-file ca.pem --client-cert-auth \
         --listen-peer-urls https://127.0.0.1:2380 --peer-auto-tls --peer-client-cert-auth=true \
         --self-signed-cert-validity 3 \
         --cipher-suites TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    )
    .unwrap();
    assert_eq!(flags.client_tls.cert_file, Some(PathBuf::from("c.pem")));
    assert_eq!(flags.client_tls.key_file, Some(PathBuf::from("k.pem")));
    assert_eq!(flags.client_tls.trusted_ca_file, Some(PathBuf::from("ca.pem")));
    assert!(flags.client_tls.client_cert_auth);
    assert!(!flags.client_tls.auto_tls);
    assert!(flags.peer_tls.auto_tls && flags.peer_tls.client_cert_auth);
    assert_eq!(flags.peer_tls.cert_file, None);
    assert_eq!(flags.self_signed_cert_validity_years, 3);
    assert_eq!(flags.cipher_suites.len(), 2);
    // https listen URLs are advertised and make up the initial cluster as http ones do.
    assert_eq!(flags.advertise_client_urls, ["https://127.0.0.1:2379"]);
    assert_eq!(
        flags.initial_cluster,
        [("default".to_string(), "https://127.0.0.1:2380".to_string())]
    );
    let config = flags.to_config().unwrap();
    assert_eq!(config.client_tls, flags.client_tls);
    assert_eq!(config.peer_tls, flags.peer_tls);
}

#[test]
fn a_bool_flag_alone_is_true_and_never_takes_the_next_argument() {
    let flags = parse("--auto-tls --name n1").unwrap();
    assert!(flags.client_tls.auto_tls);
    assert_eq!(flags.name, "n1");
    assert!(!parse("--auto-tls=false").unwrap().client_tls.auto_tls);
    assert!(parse("-peer-auto-tls=1").unwrap().peer_tls.auto_tls);
    assert_eq!(
        parse_err("--client-cert-auth=yes"),
        r#"invalid value "yes" for flag --client-cert-auth: must be true or false"#
    );
    let env = |var: &str| (var == "ETCD_PEER_AUTO_TLS").then(|| "true".to_string());
    assert!(parse_store_flags_with_env(&[], &env).unwrap().peer_tls.auto_tls);
}

#[test]
fn a_certificate_needs_its_key_and_client_cert_auth_needs_a_ca() {
    assert_eq!(
        parse_err("--cert-file c.pem"),
        "--cert-file requires --key-file: a certificate is served with its private key"
    );
    assert_eq!(
        parse_err("--peer-key-file k.pem"),
        "--peer-key-file requires --peer-cert-file: a certificate is served with its private key"
    );
    assert_eq!(
        parse_err("--cert-file c.pem --key-file k.pem --client-cert-auth"),
        "--client-cert-auth requires --trusted-ca-file: the CAs whose client certificates are accepted"
    );
    assert!(
        parse_err("--peer-client-cert-auth").starts_with("--peer-client-cert-auth requires --peer-trusted-ca-file")
    );
    // Self-signed certificates are not verified, so auto-tls needs no CA.
    assert!(parse("--peer-auto-tls --peer-client-cert-auth").is_ok());
}

#[test]
fn cipher_suites_are_gos_names_and_validity_is_whole_years() {
    assert_eq!(
        parse_err("--cipher-suites TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_NOPE"),
        r#"invalid value "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_NOPE" for flag --cipher-suites: unexpected TLS cipher suite "TLS_NOPE""#
    );
    let cbc = parse_err("--cipher-suites TLS_RSA_WITH_AES_128_CBC_SHA");
    assert!(cbc.contains("not supported by berth"), "{cbc}");
    assert!(parse("--cipher-suites TLS_AES_128_GCM_SHA256").is_ok());
    assert_eq!(
        parse_err("--self-signed-cert-validity 0"),
        r#"invalid value "0" for flag --self-signed-cert-validity: must be at least 1 (year)"#
    );
}
