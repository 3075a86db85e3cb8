//! The few URLs a registry client meets: the registry's own base, the token realm of
//! a Bearer challenge, and the Location of a redirect (possibly relative).

/// `scheme://host[:port]/path?query`, the scheme being http or https.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    /// Without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path_and_query: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(rest) = s.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = s.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("{s:?} is not an http or https URL"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let (host, port) = split_authority(authority).ok_or_else(|| format!("{s:?} has an invalid host"))?;
        Ok(Url {
            tls,
            host,
            port: port.unwrap_or(if tls { 443 } else { 80 }),
            path_and_query,
        })
    }

    /// The base URL of registry `domain` ("host[:port]").
    pub fn registry(domain: &str, tls: bool) -> Result<Url, String> {
        Url::parse(&format!("{}://{domain}/", if tls { "https" } else { "http" }))
    }

    /// This URL with another path.
    pub fn with_path(&self, path_and_query: &str) -> Url {
        Url {
            path_and_query: path_and_query.to_string(),
            ..self.clone()
        }
    }

    /// A redirect's Location: absolute, or a path on this host.
    pub fn join(&self, location: &str) -> Result<Url, String> {
        if location.starts_with("http://") || location.starts_with("https://") {
            Url::parse(location)
        } else if location.starts_with('/') {
            Ok(self.with_path(location))
        } else {
            Err(format!("unsupported redirect location {location:?}"))
        }
    }

    /// `host[:port]` as the Host header writes it (default ports left out).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    pub fn same_origin(&self, other: &Url) -> bool {
        self.tls == other.tls && self.host == other.host && self.port == other.port
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path_and_query)
    }
}

fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host.to_string(), port))
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_join() {
        let u = Url::parse("https://auth.example/token?x=1").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path_and_query.as_str()),
            (true, "auth.example", 443, "/token?x=1")
        );
        assert_eq!(u.to_string(), "https://auth.example/token?x=1");
        let v6 = Url::registry("[::1]:5000", false).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5000));
        assert_eq!(v6.authority(), "[::1]:5000");
        assert_eq!(v6.join("/v2/x").unwrap().to_string(), "http://[::1]:5000/v2/x");
        assert_eq!(v6.join("https://storage.example/blob").unwrap().host, "storage.example");
        assert!(Url::parse("ftp://x").is_err());
        assert_eq!(encode_query_value("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
    }
}
