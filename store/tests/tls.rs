//! TLS on the client and peer URLs, with real `berth store` processes and etcdctl:
//! certificates from a CA the test makes, client-certificate authentication, peers
//! that authenticate each other, auto-tls, and the TLS flags' start-up errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_testkit::{Process, berth_binary, eventually_blocking, free_port};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// A CA that signs certificates for 127.0.0.1 and localhost, written as PEM files.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
}

/// The PEM files of one certificate.
struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            dir,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for servers and clients alike (peers are both).
    fn issue(&self, name: &str) -> CertFiles {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let files = CertFiles {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}

/// One replica's ports and process.
struct Member {
    name: String,
    client_url: String,
    peer_url: String,
    process: Process,
}

impl Member {
    fn new(dir: &Path, name: &str) -> Member {
        Member {
            name: name.to_string(),
            client_url: format!("https://127.0.0.1:{}", free_port()),
            peer_url: format!("https://127.0.0.1:{}", free_port()),
            process: Process::new(name, berth_binary(), dir.join(format!("{name}.log"))),
        }
    }

    /// Starts `berth store` on this member's https URLs with `extra` flags.
    fn start(&mut self, dir: &Path, initial_cluster: &str, extra: Vec<String>) {
        let mut args: Vec<String> = [
            "store",
            "--name",
            &self.name,
            "--data-dir",
            &dir.join(&self.name).display().to_string(),
            "--listen-client-urls",
            &self.client_url,
            "--listen-peer-urls",
            &self.peer_url,
            "--initial-cluster",
            initial_cluster,
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        args.extend(extra);
        self.process.set_args(args);
        self.process.start().unwrap();
    }
}

fn initial_cluster(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url))
        .collect::<Vec<_>>()
        .join(",")
}

/// Launches one `berth store` per name, with https client and peer URLs and each
/// member's TLS flags from `tls_flags(index)`.
fn launch(dir: &Path, names: &[&str], tls_flags: &dyn Fn(usize) -> Vec<String>) -> Vec<Member> {
    let mut members: Vec<Member> = names.iter().map(|name| Member::new(dir, name)).collect();
    let cluster = initial_cluster(&members.iter().collect::<Vec<_>>());
    for (index, member) in members.iter_mut().enumerate() {
        member.start(dir, &cluster, tls_flags(index));
    }
    members
}

fn etcdctl(endpoint: &str, tls: &[String], args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=5s")
        .arg("--dial-timeout=3s")
        .args(tls)
        .args(args)
        .output()
        .expect("running etcdctl (Debian package etcd-client)")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Puts `key` through `endpoint` once the cluster can take writes.
fn put_eventually(endpoint: &str, tls: &[String], key: &str, value: &str) {
    eventually_blocking(&format!("a put of {key} through {endpoint}"), || {
        let output = etcdctl(endpoint, tls, &["put", key, value]);
        output.status.success().then_some(())
    });
}

/// `key`'s value read through `endpoint`, once it is there.
fn get_eventually(endpoint: &str, tls: &[String], key: &str) -> String {
    eventually_blocking(&format!("{key} through {endpoint}"), || {
        let output = etcdctl(endpoint, tls, &["get", key, "--print-value-only"]);
        let value = String::from_utf8_lossy(&output.stdout).trim().to_string();
        (output.status.success() && !value.is_empty()).then_some(value)
    })
}

fn client_flags(files: &CertFiles, ca: &Ca) -> Vec<String> {
    vec![
        format!("--cacert={}", ca.ca_file().display()),
        format!("--cert={}", files.cert.display()),
        format!("--key={}", files.key.display()),
    ]
}

fn member_tls_flags(files: &CertFiles, ca: &Ca) -> Vec<String> {
    let (cert, key, ca) = (
        files.cert.display().to_string(),
        files.key.display().to_string(),
        ca.ca_file().display().to_string(),
    );
    [
        "--cert-file",
        &cert,
        "--key-file",
        &key,
        "--trusted-ca-file",
        &ca,
        "--client-cert-auth",
        "--peer-cert-file",
        &cert,
        "--peer-key-file",
        &key,
        "--peer-trusted-ca-file",
        &ca,
        "--peer-client-cert-auth",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect()
}

#[test]
fn a_cluster_on_tls_serves_etcdctl_with_a_client_certificate_and_refuses_one_without() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let names = ["t1", "t2", "t3"];
    let certs: Vec<CertFiles> = names.iter().map(|name| ca.issue(name)).collect();
    let members = launch(dir.path(), &names, &|index| member_tls_flags(&certs[index], &ca));
    let client = client_flags(&ca.issue("etcdctl"), &ca);

    // Written through one member, read through the others: the peers replicate to
    // each other over TLS.
    put_eventually(&members[0].client_url, &client, "greeting", "hello");
    for member in &members[1..] {
        assert_eq!(get_eventually(&member.client_url, &client, "greeting"), "hello");
    }
    let list = etcdctl(&members[2].client_url, &client, &["member", "list"]);
    assert!(list.status.success(), "{}", text(&list));
    for member in &members {
        assert!(text(&list).contains(&member.peer_url), "{}", text(&list));
    }

    // --client-cert-auth: the CA alone is not enough to get in.
    let no_cert = vec![format!("--cacert={}", ca.ca_file().display())];
    let refused = etcdctl(&members[0].client_url, &no_cert, &["get", "greeting"]);
    assert!(
        !refused.status.success(),
        "served without a client certificate: {}",
        text(&refused)
    );
    // Nor is a certificate from another CA.
    let other_ca = Ca::new(dir.path(), "other-ca");
    let stranger = client_flags(&other_ca.issue("stranger"), &other_ca);
    let stranger = [
        vec![format!("--cacert={}", ca.ca_file().display())],
        stranger[1..].to_vec(),
    ]
    .concat();
    let refused = etcdctl(&members[0].client_url, &stranger, &["get", "greeting"]);
    assert!(
        !refused.status.success(),
        "served a stranger's certificate: {}",
        text(&refused)
    );
    // Plain gRPC on the https port gets nowhere either.
    let plain_url = members[0].client_url.replace("https://", "http://");
    let refused = etcdctl(&plain_url, &[], &["get", "greeting"]);
    assert!(
        !refused.status.success(),
        "served plain text on https: {}",
        text(&refused)
    );
}

/// With auth enabled and `--client-cert-auth`, the client certificate's common name
/// is the user: no password, no token.
#[test]
fn with_auth_enabled_a_client_certificate_names_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let member_cert = ca.issue("a1");
    let members = launch(dir.path(), &["a1"], &|_| member_tls_flags(&member_cert, &ca));
    let url = &members[0].client_url;
    let root = client_flags(&ca.issue("root"), &ca);
    let alice = client_flags(&ca.issue("alice"), &ca);
    let nobody = client_flags(&ca.issue("nobody"), &ca);
    let ok = |tls: &[String], args: &[&str]| {
        let output = etcdctl(url, tls, args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let denied = |tls: &[String], args: &[&str]| {
        let output = etcdctl(url, tls, args);
        assert!(!output.status.success(), "{args:?} was served: {}", text(&output));
        assert!(
            text(&output).contains("etcdserver: permission denied"),
            "{args:?}: {}",
            text(&output)
        );
    };

    put_eventually(url, &root, "/team/a", "1");
    ok(&root, &["user", "add", "root", "--no-password"]);
    ok(&root, &["user", "add", "alice", "--no-password"]);
    ok(&root, &["role", "add", "team"]);
    ok(
        &root,
        &["role", "grant-permission", "team", "readwrite", "/team/", "--prefix"],
    );
    ok(&root, &["user", "grant-role", "alice", "team"]);
    assert_eq!(ok(&root, &["auth", "enable"]).trim(), "Authentication Enabled");

    // alice by her certificate: her prefix, and nothing else.
    ok(&alice, &["put", "/team/b", "2"]);
    assert_eq!(ok(&alice, &["get", "/team/a", "--print-value-only"]).trim(), "1");
    denied(&alice, &["put", "/elsewhere", "x"]);
    denied(&alice, &["get", "/elsewhere"]);
    // A certificate the CA vouches for, of a user the store does not know.
    denied(&nobody, &["get", "/team/a"]);
    // A user without a password cannot authenticate with one.
    let output = etcdctl(url, &alice, &["--user", "alice:guess", "get", "/team/a"]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("etcdserver: authentication failed, invalid user ID or password"),
        "{}",
        text(&output)
    );
    // root by its certificate sees everything, and not the refused write.
    let keys = ok(&root, &["get", "/", "--prefix", "--keys-only"]);
    let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(keys, ["/team/a", "/team/b"]);
}

#[test]
fn a_peer_with_a_certificate_from_another_ca_cannot_join() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let rogue_ca = Ca::new(dir.path(), "rogue-ca");
    let names = ["p1", "p2", "rogue"];
    let certs = [ca.issue("p1"), ca.issue("p2"), rogue_ca.issue("rogue")];
    // The rogue trusts the cluster's CA, so only its own certificate gives it away.
    let mut members = launch(dir.path(), &names, &|index| member_tls_flags(&certs[index], &ca));
    let client = client_flags(&ca.issue("etcdctl"), &ca);

    // The two honest members are a quorum of three and carry on.
    put_eventually(&members[0].client_url, &client, "k", "v");
    assert_eq!(get_eventually(&members[1].client_url, &client, "k"), "v");
    // Each refuses the rogue's handshakes, and says why.
    for member in &members[..2] {
        let log = member.process.log_path().to_path_buf();
        eventually_blocking(&format!("{} refusing the rogue", member.name), || {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            (log.contains("a peer's TLS handshake failed") && log.contains("UnknownIssuer")).then_some(())
        });
    }
    // And the rogue has learned nothing. (It serves clients with its own certificate,
    // and takes client certificates from the cluster's CA.)
    let rogue_reader = [
        vec![format!("--cacert={}", rogue_ca.ca_file().display())],
        client_flags(&ca.issue("reader"), &ca)[1..].to_vec(),
    ]
    .concat();
    let read = etcdctl(
        &members[2].client_url,
        &rogue_reader,
        &["get", "k", "--consistency=s", "--print-value-only"],
    );
    assert!(read.status.success(), "{}", text(&read));
    assert!(
        String::from_utf8_lossy(&read.stdout).trim().is_empty(),
        "the rogue holds the cluster's data: {}",
        text(&read)
    );
    members.iter_mut().for_each(|member| member.process.kill());
}

#[test]
fn a_member_added_with_an_https_peer_url_joins_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let names = ["j1", "j2", "j3"];
    let certs: Vec<CertFiles> = names.iter().map(|name| ca.issue(name)).collect();
    let members = launch(dir.path(), &names, &|index| member_tls_flags(&certs[index], &ca));
    let client = client_flags(&ca.issue("etcdctl"), &ca);
    put_eventually(&members[0].client_url, &client, "before-join", "x");

    let mut joiner = Member::new(dir.path(), "j4");
    // A just-formed cluster on a loaded machine may still change its leader: the
    // add is asked again then, as a client would (an add that went through before
    // the answer was lost shows as the peer URL already taken).
    let peer_urls = format!("--peer-urls={}", joiner.peer_url);
    eventually_blocking("the member add", || {
        let added = etcdctl(
            &members[1].client_url,
            &client,
            &["member", "add", "j4", "--learner", &peer_urls],
        );
        let said = text(&added);
        if said.contains("added to cluster") || said.contains("Peer URLs already exists") {
            return Some(());
        }
        assert!(said.contains("leader changed"), "{said}");
        None
    });
    let cluster = initial_cluster(&[&members[0], &members[1], &members[2], &joiner]);
    let mut flags = member_tls_flags(&ca.issue("j4"), &ca);
    flags.extend(["--initial-cluster-state".to_string(), "existing".to_string()]);
    joiner.start(dir.path(), &cluster, flags);
    // It asked to join, got its snapshot or log over TLS, and serves what was written.
    let learned = eventually_blocking("the new member to replicate", || {
        let output = etcdctl(
            &joiner.client_url,
            &client,
            &["get", "before-join", "--consistency=s", "--print-value-only"],
        );
        let value = String::from_utf8_lossy(&output.stdout).trim().to_string();
        (!value.is_empty()).then_some(value)
    });
    assert_eq!(learned, "x");
}

#[test]
fn an_auto_tls_cluster_serves_etcdctl_that_skips_verification() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["a1", "a2", "a3"];
    let members = launch(dir.path(), &names, &|_| {
        vec!["--auto-tls".to_string(), "--peer-auto-tls".to_string()]
    });
    let insecure = vec![
        "--insecure-transport=false".to_string(),
        "--insecure-skip-tls-verify".to_string(),
    ];
    put_eventually(&members[1].client_url, &insecure, "auto", "tls");
    assert_eq!(get_eventually(&members[2].client_url, &insecure, "auto"), "tls");
    for name in names {
        for side in ["client", "peer"] {
            let fixtures = dir.path().join(name).join("fixtures").join(side);
            assert!(
                fixtures.join("cert.pem").exists(),
                "no {side} certificate in {}",
                fixtures.display()
            );
            assert!(
                fixtures.join("key.pem").exists(),
                "no {side} key in {}",
                fixtures.display()
            );
        }
    }
    // A client that verifies finds no CA vouching for a self-signed certificate.
    let verifying = etcdctl(
        &members[0].client_url,
        &["--insecure-transport=false".to_string()],
        &["get", "auto"],
    );
    assert!(!verifying.status.success(), "{}", text(&verifying));
}

/// Runs `berth store` with `args` and returns its exit code and stderr.
fn run_store(args: &[&str]) -> (i32, String) {
    let output = Command::new(berth_binary()).arg("store").args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn tls_flag_errors_name_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("d").display().to_string();
    let client = format!("https://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let base = ["--data-dir", &data_dir, "--listen-peer-urls", &peer];

    let (code, err) = run_store(&[&base[..], &["--listen-client-urls", &client]].concat());
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "TLS key/cert (--cert-file, --key-file) must be provided for client url {client} with HTTPS scheme"
        )),
        "{err}"
    );

    let (code, err) = run_store(&[&base[..], &["--listen-client-urls", &client, "--cert-file", "c.pem"]].concat());
    assert_ne!(code, 0);
    assert!(err.contains("--cert-file requires --key-file"), "{err}");

    let missing = dir.path().join("missing.pem").display().to_string();
    let (code, err) = run_store(
        &[
            &base[..],
            &[
                "--listen-client-urls",
                &client,
                "--cert-file",
                &missing,
                "--key-file",
                &missing,
            ],
        ]
        .concat(),
    );
    assert_ne!(code, 0);
    assert!(err.contains("--cert-file") && err.contains("missing.pem"), "{err}");

    let (code, err) = run_store(&[&base[..], &["--listen-metrics-urls", "https://127.0.0.1:1"]].concat());
    assert_ne!(code, 0);
    assert!(err.contains("--listen-metrics-urls") && err.contains("TLS"), "{err}");
}
