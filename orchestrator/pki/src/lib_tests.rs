use super::kubeconfig::Kubeconfig;
use super::layout::{ADMIN_GROUP, ADMIN_USER, Layout};
use super::*;

#[test]
fn a_client_certificate_names_its_user_and_group_and_is_signed_by_the_ca() {
    let ca = Ca::create("test-ca").unwrap();
    let alice = ca.issue(&Profile::client("alice", &["team-a"])).unwrap();
    let subject = subject_of_pem(&alice.cert_pem).unwrap();
    assert_eq!(subject.common_name, "alice");
    assert_eq!(subject.organizations, ["team-a"]);
    assert!(subject.not_after > OffsetDateTime::now_utc().unix_timestamp() + 300 * 86_400);

    // Signed by the CA: the issuer is the CA's subject, and the signature verifies
    // with the CA's key.
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.identity.cert_pem.as_bytes()).unwrap();
    let ca_cert = ca_pem.parse_x509().unwrap();
    let (_, leaf_pem) = x509_parser::pem::parse_x509_pem(alice.cert_pem.as_bytes()).unwrap();
    let leaf = leaf_pem.parse_x509().unwrap();
    assert_eq!(leaf.issuer(), ca_cert.subject());
    assert!(ca_cert.is_ca());
    assert!(!leaf.is_ca());

    let other = Ca::create("other-ca").unwrap();
    let (_, other_pem) = x509_parser::pem::parse_x509_pem(other.identity.cert_pem.as_bytes()).unwrap();
    assert_ne!(other_pem.parse_x509().unwrap().public_key(), ca_cert.public_key());
}

#[test]
fn more_than_one_organization_or_no_name_is_refused_by_name() {
    let ca = Ca::create("test-ca").unwrap();
    let error = ca.issue(&Profile::client("bob", &["a", "b"])).unwrap_err();
    assert!(error.to_string().contains("organizations"), "{error}");
    let error = ca.issue(&Profile::client("", &[])).unwrap_err();
    assert!(error.to_string().contains("common name"), "{error}");
    let error = ca.issue(&Profile::server("s", &["not a host name!".to_string()]));
    assert!(error.is_err());
}

#[test]
fn init_makes_the_set_once_and_keeps_it_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let ca = layout.init(&["berth.example".to_string()]).unwrap();
    let admin = layout.read("admin").unwrap();
    let subject = subject_of_pem(&admin.cert_pem).unwrap();
    assert_eq!(
        (subject.common_name.as_str(), subject.organizations.as_slice()),
        (ADMIN_USER, &[ADMIN_GROUP.to_string()][..])
    );
    for name in [
        "apiserver",
        "apiserver-kubelet-client",
        "store/server",
        "store/peer",
        "store/client",
    ] {
        layout.read(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let key = dir.path().join("ca.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);

    let again = layout.init(&[]).unwrap();
    assert_eq!(again.identity, ca.identity, "the CA is made once");
    assert_eq!(layout.read("admin").unwrap(), admin, "existing certificates are kept");

    let node = layout.ensure_node(&ca, "n1", &["10.0.0.7".to_string()]).unwrap();
    let subject = subject_of_pem(&node.cert_pem).unwrap();
    assert_eq!(subject.common_name, "system:node:n1");
    assert_eq!(subject.organizations, ["system:nodes"]);
}

/// The DNS names and IP addresses a certificate is valid for.
fn names_of(cert_pem: &str) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let san = cert.subject_alternative_name().unwrap().expect("names");
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => dns.to_string(),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string(),
                _ => format!("{ip:?}"),
            },
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn the_api_certificate_is_valid_where_pods_reach_it() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    layout.init(&["192.0.2.10".to_string()]).unwrap();
    let api = names_of(&layout.read("apiserver").unwrap().cert_pem);
    for name in [
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
        "192.0.2.10",
    ] {
        assert!(api.iter().any(|n| n == name), "{name} in {api:?}");
    }
    let store = names_of(&layout.read("store/server").unwrap().cert_pem);
    assert!(!store.iter().any(|n| n == "10.96.0.1"), "{store:?}");
}

#[test]
fn a_kubeconfig_written_for_an_identity_resolves_back_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::create("test-ca").unwrap();
    let admin = ca.issue(&Profile::client(ADMIN_USER, &[ADMIN_GROUP])).unwrap();
    let config = Kubeconfig::for_identity(
        "berth",
        "https://127.0.0.1:6443",
        &ca.identity.cert_pem,
        "admin",
        &admin,
    );
    let path = dir.path().join("kube/config");
    config.write(&path).unwrap();
    let read = Kubeconfig::read(&path).unwrap();
    assert_eq!(read, config);
    let resolved = read.resolve(None, dir.path()).unwrap();
    assert_eq!(resolved.server, "https://127.0.0.1:6443");
    assert_eq!(resolved.ca_pem.as_deref(), Some(ca.identity.cert_pem.as_str()));
    assert_eq!(resolved.client, Some(admin));

    let error = read.resolve(Some("nobody@berth"), dir.path()).unwrap_err();
    assert!(
        error.to_string().contains("no context named \"nobody@berth\""),
        "{error}"
    );
}

#[test]
fn a_kubeconfig_with_files_and_a_token_resolves_relative_to_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.crt"), "CA PEM").unwrap();
    let text = r#"
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority: ca.crt
users:
- name: robot
  user:
    token: abc.def
contexts:
- name: robot@c
  context:
    cluster: c
    user: robot
    namespace: team-a
current-context: robot@c
"#;
    let resolved = Kubeconfig::parse(text).unwrap().resolve(None, dir.path()).unwrap();
    assert_eq!(resolved.ca_pem.as_deref(), Some("CA PEM"));
    assert_eq!(resolved.token.as_deref(), Some("abc.def"));
    assert_eq!(resolved.namespace.as_deref(), Some("team-a"));
    assert_eq!(resolved.client, None);
}
