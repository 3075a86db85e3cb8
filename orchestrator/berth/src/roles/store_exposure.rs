//! `berth server`'s refusal to leave its etcd port open around the API server's
//! authentication: where the API authenticates its clients (a client CA or a token
//! file), every client URL of the store that is reachable from another host must
//! be https with `--client-cert-auth`, so that only holders of the CA's client
//! certificates (the control plane) read or write `/registry` directly. Loopback
//! URLs are the host's own business (etcd's default, `http://localhost:2379`).
//! `--insecure-store-port` says the exposure is meant.

use berth_store::flags::StoreFlags;

/// Why the store's client URLs are refused, naming the first that is open.
pub fn check(api_authenticates: bool, insecure_store_port: bool, store: &StoreFlags) -> Result<(), String> {
    if !api_authenticates || insecure_store_port {
        return Ok(());
    }
    let tls = &store.client_tls;
    let locked = tls.client_cert_auth && tls.trusted_ca_file.is_some() && (tls.has_cert() || tls.auto_tls);
    for url in &store.listen_client_urls {
        if is_loopback(url) {
            continue;
        }
        let https = url.starts_with("https://");
        if https && locked {
            continue;
        }
        let why = if https {
            "takes clients without a certificate of the cluster's CA"
        } else {
            "takes any client in plain HTTP"
        };
        return Err(format!(
            "--listen-client-urls {url}: the store's port {why}, around the API server's \
             authentication; serve it over https with --client-cert-auth (--cert-file, \
             --key-file, --trusted-ca-file: `berth pki init` makes store/server.crt), \
             listen on loopback only, or give --insecure-store-port to accept that"
        ));
    }
    Ok(())
}

/// Whether `url` listens on loopback only.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => rest.rsplit_once(':').map_or(rest, |(host, _)| host),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(urls: &[&str], tls: &[&str]) -> StoreFlags {
        let mut args: Vec<String> = vec![
            format!("--listen-client-urls={}", urls.join(",")),
            "--advertise-client-urls=http://10.0.0.5:2379".into(),
        ];
        args.extend(tls.iter().map(|s| s.to_string()));
        berth_store::flags::parse_store_flags(&args).unwrap()
    }

    const LOCKED: &[&str] = &[
        "--cert-file=s.crt",
        "--key-file=s.key",
        "--trusted-ca-file=ca.crt",
        "--client-cert-auth",
    ];

    #[test]
    fn an_open_store_port_beside_an_authenticating_api_is_refused_by_name() {
        let open = store(&["http://127.0.0.1:2379", "http://10.0.0.5:2379"], &[]);
        let error = check(true, false, &open).unwrap_err();
        assert!(
            error.starts_with("--listen-client-urls http://10.0.0.5:2379: the store's port takes any client"),
            "{error}"
        );
        assert!(error.contains("--insecure-store-port"), "{error}");
        // Said to be meant, or without authentication on the API: left alone.
        assert_eq!(check(true, true, &open), Ok(()));
        assert_eq!(check(false, false, &open), Ok(()));
        // https without client certificates is open too.
        let anyone = store(&["https://10.0.0.5:2379"], &["--cert-file=s.crt", "--key-file=s.key"]);
        let error = check(true, false, &anyone).unwrap_err();
        assert!(error.contains("without a certificate of the cluster's CA"), "{error}");
    }

    #[test]
    fn loopback_and_client_certificates_pass() {
        let local = store(
            &["http://localhost:2379", "http://127.0.0.1:22379", "http://[::1]:2379"],
            &[],
        );
        assert_eq!(check(true, false, &local), Ok(()));
        let locked = store(&["https://0.0.0.0:2379"], LOCKED);
        assert_eq!(check(true, false, &locked), Ok(()));
    }
}
