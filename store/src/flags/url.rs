//! The syntax of URLs and of `name=URL` lists (`--initial-cluster`, `--dial-peer-urls`).
//! Only what berth can serve passes: `http://host:port` and `https://host:port` (TLS,
//! see `crate::tls`), so that a unix-socket URL copied from an etcd command line is
//! refused instead of served as plain TCP. The metrics URLs are plain HTTP only.

use super::FlagError;
use super::flag::Flag;

/// The host of a URL that [`check_url`] accepted (brackets kept for IPv6).
pub(super) fn url_host(url: &str) -> &str {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    authority.rsplit_once(':').map_or(authority, |(host, _port)| host)
}

/// A comma-separated list of at least one `http(s)://host:port` URL.
pub(super) fn parse_urls(flag: Flag, value: &str) -> Result<Vec<String>, FlagError> {
    let allows_https = flag != Flag::ListenMetricsUrls;
    let urls: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect();
    if urls.is_empty() {
        return Err(FlagError::InvalidValue {
            flag: flag.dashed(),
            value: value.to_string(),
            reason: "at least one URL is required".to_string(),
        });
    }
    for url in &urls {
        check_url(url, allows_https).map_err(|reason| FlagError::InvalidUrl {
            flag: flag.dashed(),
            url: url.clone(),
            reason,
        })?;
    }
    Ok(urls)
}

/// Accepts what berth can serve: `http://host:port` (and `https://host:port` where TLS
/// is served) with a numeric port and nothing after it (etcd refuses paths too). An
/// empty host or `0.0.0.0` means every interface.
fn check_url(url: &str, allows_https: bool) -> Result<(), String> {
    let Some((scheme, authority)) = url.split_once("://") else {
        return Err("expected http://host:port or https://host:port".to_string());
    };
    match scheme {
        "http" => {}
        "https" if allows_https => {}
        "https" => return Err("TLS is not supported on this URL yet; use http".to_string()),
        "unix" | "unixs" => return Err("unix sockets are not supported yet".to_string()),
        _ => return Err(format!("URL scheme must be http or https, not {scheme:?}")),
    }
    if authority.contains(['/', '?', '#']) {
        return Err("URL must not contain a path".to_string());
    }
    if authority.contains('@') {
        return Err("URL must not contain a user name".to_string());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((_ipv6, after)) = bracketed.split_once(']') else {
            return Err("unclosed '[' in an IPv6 address".to_string());
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(r#"URL address does not have the form "host:port""#.to_string());
        };
        (&authority[..authority.len() - after.len()], port)
    } else {
        let Some((host, port)) = authority.split_once(':') else {
            return Err(r#"URL address does not have the form "host:port""#.to_string());
        };
        if port.contains(':') {
            return Err("an IPv6 address must be written in brackets: [::1]:2379".to_string());
        }
        (host, port)
    };
    if host.contains(char::is_whitespace) {
        return Err("the host must not contain spaces".to_string());
    }
    if port.is_empty() || !port.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("port {port:?} is not a number"));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("port {port} is out of range (0-65535)"));
    }
    Ok(())
}

/// `n1=http://a:2380,n2=http://b:2380`, a name repeated for each of several URLs.
pub(super) fn parse_initial_cluster(value: &str) -> Result<Vec<(String, String)>, FlagError> {
    let mut members = Vec::new();
    // Empty entries are skipped, as Go's url.ParseQuery (which etcd uses) skips them.
    for entry in value.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let invalid = |reason: String| FlagError::InvalidClusterEntry {
            entry: entry.to_string(),
            reason,
        };
        let Some((name, url)) = entry.split_once('=') else {
            return Err(invalid("expected name=http://host:port (or https)".to_string()));
        };
        let (name, url) = (name.trim(), url.trim());
        if name.is_empty() {
            return Err(invalid("the member name is empty".to_string()));
        }
        check_url(url, true).map_err(|reason| invalid(format!("peer URL {url:?}: {reason}")))?;
        members.push((name.to_string(), url.to_string()));
    }
    if members.is_empty() {
        return Err(FlagError::InvalidValue {
            flag: Flag::InitialCluster.dashed(),
            value: value.to_string(),
            reason: "at least one member is required".to_string(),
        });
    }
    Ok(members)
}
