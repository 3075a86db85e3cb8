//! The API server's TLS and authentication flags, with kube-apiserver's names:
//! `--tls-cert-file`/`--tls-private-key-file` (HTTPS), `--client-ca-file` (client
//! certificates: CN the user, O the groups), `--token-auth-file` (static bearer
//! tokens) and `--anonymous-auth` (requests without credentials go on as
//! `system:anonymous`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_apiserver::audit::{AuditLog, parse_policy};
use berth_apiserver::auth::Authenticator;
use berth_apiserver::auth::authn::parse_token_file;
use berth_apiserver::auth::jwt::{DEFAULT_ISSUER, Verifier};
use berth_apiserver::auth::keys::{SigningKey, VerifyingKey};
use berth_apiserver::auth::service_accounts::ServiceAccountTokens;
use berth_pki::Identity;
use berth_pki::tls::{ClientAuth, server_config};

use super::take_flag;

pub const API_SECURITY_USAGE: &str = "\
  --tls-cert-file FILE                  the API server's certificate (PEM, with its chain):
                                        it serves HTTPS; without it, plain HTTP
  --tls-private-key-file FILE           its private key
  --client-ca-file FILE                 CAs whose client certificates authenticate users
                                        (the subject's CN is the user, each O a group)
  --token-auth-file FILE                static bearer tokens: CSV lines
                                        token,user,uid[,\"group1,group2\"]
  --anonymous-auth true|false           requests without credentials go on as
                                        system:anonymous (default true); false: 401
  --kubelet-client-certificate FILE     the client certificate (and --kubelet-client-key
  --kubelet-client-key FILE             its key) this server shows the agents, whose API
  --kubelet-certificate-authority FILE  is then reached over HTTPS, their certificates
                                        checked against this CA and the address dialled
  --root-ca-file FILE                   the cluster CA (PEM) published in every namespace's
                                        kube-root-ca.crt ConfigMap (default: --client-ca-file)
  --service-account-signing-key-file FILE
                                        the private key (PEM: ECDSA P-256 or RSA) that signs
                                        ServiceAccount tokens (TokenRequest)
  --service-account-key-file FILE       public keys (PEM) whose tokens are accepted
                                        (default: the signing key's)
  --service-account-issuer URL          the tokens' iss (default
                                        https://kubernetes.default.svc.cluster.local)
  --api-audiences A,B                   the audiences a token must have one of to be
                                        accepted (default: the issuer)
  --audit-log-path FILE                 write an audit.k8s.io/v1 Event per request, JSON
                                        lines (`-`: standard output); needs:
  --audit-policy-file FILE              the audit Policy: the first matching rule's level
                                        (None, Metadata, Request); Secrets' bodies never
";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiSecurityFlags {
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub token_auth_file: Option<PathBuf>,
    pub anonymous_auth: bool,
    pub kubelet_client_certificate: Option<PathBuf>,
    pub kubelet_client_key: Option<PathBuf>,
    pub kubelet_certificate_authority: Option<PathBuf>,
    pub audit_log_path: Option<PathBuf>,
    pub audit_policy_file: Option<PathBuf>,
    pub root_ca_file: Option<PathBuf>,
    pub service_account_signing_key_file: Option<PathBuf>,
    pub service_account_key_file: Option<PathBuf>,
    pub service_account_issuer: Option<String>,
    pub api_audiences: Vec<String>,
}

impl ApiSecurityFlags {
    pub fn parse(args: &mut Vec<String>) -> Result<ApiSecurityFlags, String> {
        let flags = ApiSecurityFlags {
            tls_cert_file: take_flag(args, "tls-cert-file")?.map(Into::into),
            tls_private_key_file: take_flag(args, "tls-private-key-file")?.map(Into::into),
            client_ca_file: take_flag(args, "client-ca-file")?.map(Into::into),
            token_auth_file: take_flag(args, "token-auth-file")?.map(Into::into),
            anonymous_auth: match take_flag(args, "anonymous-auth")?.as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(other) => return Err(format!("--anonymous-auth {other:?}: must be true or false")),
            },
            kubelet_client_certificate: take_flag(args, "kubelet-client-certificate")?.map(Into::into),
            kubelet_client_key: take_flag(args, "kubelet-client-key")?.map(Into::into),
            kubelet_certificate_authority: take_flag(args, "kubelet-certificate-authority")?.map(Into::into),
            audit_log_path: take_flag(args, "audit-log-path")?.map(Into::into),
            audit_policy_file: take_flag(args, "audit-policy-file")?.map(Into::into),
            root_ca_file: take_flag(args, "root-ca-file")?.map(Into::into),
            service_account_signing_key_file: take_flag(args, "service-account-signing-key-file")?.map(Into::into),
            service_account_key_file: take_flag(args, "service-account-key-file")?.map(Into::into),
            service_account_issuer: take_flag(args, "service-account-issuer")?,
            api_audiences: take_flag(args, "api-audiences")?
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        };
        if flags.service_account_issuer.as_deref().is_some_and(str::is_empty) {
            return Err("--service-account-issuer must not be empty".into());
        }
        match (&flags.audit_log_path, &flags.audit_policy_file) {
            (Some(_), None) => {
                return Err("--audit-log-path needs --audit-policy-file (without a policy nothing is logged)".into());
            }
            (None, Some(_)) => return Err("--audit-policy-file needs --audit-log-path".into()),
            _ => {}
        }
        let kubelet = [
            flags.kubelet_client_certificate.is_some(),
            flags.kubelet_client_key.is_some(),
            flags.kubelet_certificate_authority.is_some(),
        ];
        if kubelet.contains(&true) && kubelet.contains(&false) {
            return Err(
                "--kubelet-client-certificate, --kubelet-client-key and --kubelet-certificate-authority go together"
                    .into(),
            );
        }
        match (&flags.tls_cert_file, &flags.tls_private_key_file) {
            (Some(_), None) => return Err("--tls-cert-file needs --tls-private-key-file".into()),
            (None, Some(_)) => return Err("--tls-private-key-file needs --tls-cert-file".into()),
            _ => {}
        }
        if flags.client_ca_file.is_some() && flags.tls_cert_file.is_none() {
            return Err("--client-ca-file needs --tls-cert-file: client certificates are shown over HTTPS".into());
        }
        Ok(flags)
    }

    /// The HTTPS configuration, when the flags ask for HTTPS.
    pub fn tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_private_key_file) else {
            return Ok(None);
        };
        let identity = Identity {
            cert_pem: read(cert, "tls-cert-file")?,
            key_pem: read(key, "tls-private-key-file")?,
        };
        let client_ca = self
            .client_ca_file
            .as_deref()
            .map(|path| read(path, "client-ca-file"))
            .transpose()?;
        let client_auth = match client_ca {
            Some(_) => ClientAuth::Optional,
            None => ClientAuth::None,
        };
        server_config(&identity, client_ca.as_deref(), client_auth, &[b"http/1.1"])
            .map(Some)
            .map_err(|e| format!("--tls-cert-file/--tls-private-key-file/--client-ca-file: {e}"))
    }

    /// How this server reaches the agents over HTTPS, when the kubelet flags say so.
    pub fn agent_client_tls(&self) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
        let (Some(cert), Some(key), Some(ca)) = (
            &self.kubelet_client_certificate,
            &self.kubelet_client_key,
            &self.kubelet_certificate_authority,
        ) else {
            return Ok(None);
        };
        let identity = Identity {
            cert_pem: read(cert, "kubelet-client-certificate")?,
            key_pem: read(key, "kubelet-client-key")?,
        };
        let ca = read(ca, "kubelet-certificate-authority")?;
        berth_pki::tls::client_config(&ca, Some(&identity), &[b"http/1.1"])
            .map(Some)
            .map_err(|e| {
                format!("--kubelet-client-certificate/--kubelet-client-key/--kubelet-certificate-authority: {e}")
            })
    }

    /// The audit log, when the flags ask for one.
    pub fn audit(&self) -> Result<Option<AuditLog>, String> {
        let (Some(path), Some(policy)) = (&self.audit_log_path, &self.audit_policy_file) else {
            return Ok(None);
        };
        let policy = parse_policy(&read(policy, "audit-policy-file")?)
            .map_err(|e| format!("--audit-policy-file {}: {e}", policy.display()))?;
        AuditLog::open(path, policy)
            .map(Some)
            .map_err(|e| format!("--audit-log-path {e}"))
    }

    /// The CA published to pods in `kube-root-ca.crt`: `--root-ca-file`, else the
    /// client CA, else none.
    pub fn root_ca(&self) -> Result<Option<String>, String> {
        match (&self.root_ca_file, &self.client_ca_file) {
            (Some(path), _) => read(path, "root-ca-file").map(Some),
            (None, Some(path)) => read(path, "client-ca-file").map(Some),
            (None, None) => Ok(None),
        }
    }

    /// ServiceAccount tokens' keys, issuer and audiences, when a key flag is given.
    pub fn service_accounts(&self) -> Result<Option<ServiceAccountTokens>, String> {
        let signing_key = match &self.service_account_signing_key_file {
            Some(path) => Some(Arc::new(
                SigningKey::from_pem(&read(path, "service-account-signing-key-file")?)
                    .map_err(|e| format!("--service-account-signing-key-file {}: {e}", path.display()))?,
            )),
            None => None,
        };
        let keys = match (&self.service_account_key_file, &signing_key) {
            (Some(path), _) => VerifyingKey::all_from_pem(&read(path, "service-account-key-file")?)
                .map_err(|e| format!("--service-account-key-file {}: {e}", path.display()))?,
            (None, Some(key)) => vec![key.verifying_key()],
            (None, None) => return Ok(None),
        };
        let issuer = self
            .service_account_issuer
            .clone()
            .unwrap_or_else(|| DEFAULT_ISSUER.to_string());
        let audiences = match &self.api_audiences[..] {
            [] => vec![issuer.clone()],
            given => given.to_vec(),
        };
        Ok(Some(ServiceAccountTokens {
            signing_key,
            verifier: Verifier {
                keys,
                issuer,
                audiences,
            },
        }))
    }

    pub fn authenticator(&self) -> Result<Authenticator, String> {
        let tokens = match &self.token_auth_file {
            Some(path) => parse_token_file(&read(path, "token-auth-file")?)
                .map_err(|e| format!("--token-auth-file {}: {e}", path.display()))?,
            None => Default::default(),
        };
        Ok(Authenticator::new(tokens, self.anonymous_auth).with_service_accounts(self.service_accounts()?))
    }
}

fn read(path: &Path, flag: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("--{flag} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ApiSecurityFlags, String> {
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let flags = ApiSecurityFlags::parse(&mut args)?;
        assert!(args.is_empty(), "left over: {args:?}");
        Ok(flags)
    }

    #[test]
    fn half_a_pair_and_bad_values_are_refused_by_name() {
        assert_eq!(
            parse(&[]).unwrap(),
            ApiSecurityFlags {
                anonymous_auth: true,
                ..Default::default()
            }
        );
        assert!(
            parse(&["--tls-cert-file", "c"])
                .unwrap_err()
                .contains("--tls-private-key-file")
        );
        assert!(
            parse(&["--client-ca-file", "ca"])
                .unwrap_err()
                .contains("--client-ca-file needs --tls-cert-file")
        );
        assert!(
            parse(&["--anonymous-auth", "maybe"])
                .unwrap_err()
                .contains("--anonymous-auth \"maybe\"")
        );
        assert!(!parse(&["--anonymous-auth=false"]).unwrap().anonymous_auth);
        assert!(
            parse(&["--kubelet-client-key", "k"])
                .unwrap_err()
                .contains("go together")
        );
        let missing = parse(&["--token-auth-file", "/nonexistent/tokens.csv"]).unwrap();
        assert!(
            missing
                .authenticator()
                .unwrap_err()
                .starts_with("--token-auth-file /nonexistent/tokens.csv")
        );
    }

    #[test]
    fn certificates_from_the_cluster_ca_make_an_https_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let layout = berth_pki::layout::Layout::new(dir.path());
        layout.init(&[]).unwrap();
        let (cert, key) = layout.pair("apiserver");
        let flags = ApiSecurityFlags {
            tls_cert_file: Some(cert),
            tls_private_key_file: Some(key.clone()),
            client_ca_file: Some(layout.ca_cert()),
            ..Default::default()
        };
        assert!(flags.tls().unwrap().is_some());
        let swapped = ApiSecurityFlags {
            tls_private_key_file: Some(layout.ca_cert()),
            ..flags
        };
        assert!(swapped.tls().unwrap_err().contains("--tls-cert-file"));
    }
}
