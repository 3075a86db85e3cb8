//! Image references as Docker normalizes them: `busybox` is
//! `docker.io/library/busybox:latest`, `registry:5000/a/b:tag` names its own registry,
//! `name@sha256:<hex>` pins a manifest, and `name:tag@digest` pulls by the digest (the
//! tag is kept for display only). The grammar and the error wording are those of the
//! distribution project's reference package, which kubelet reports as
//! `InvalidImageName`.

use super::digest::Digest;

/// Docker Hub, as references name it.
pub const DOCKER_HUB: &str = "docker.io";
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
const NAME_MAX_LEN: usize = 255;

/// A parsed, normalized reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry: "docker.io", "registry.example:5000", "127.0.0.1:5000", "[::1]:5000".
    pub domain: String,
    /// The repository within it: "library/busybox", "team/app".
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses `s` as Docker does, then applies the default tag (`latest`) when neither
    /// a tag nor a digest is given.
    pub fn parse(s: &str) -> Result<Reference, String> {
        let mut reference = parse_normalized(s)?;
        if reference.tag.is_none() && reference.digest.is_none() {
            reference.tag = Some("latest".to_string());
        }
        Ok(reference)
    }

    /// `domain/path`: the name image IDs and `berth image ls` show.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// What the registry is asked for: the digest when there is one, else the tag.
    pub fn tag_or_digest(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.as_str(),
            (None, Some(t)) => t,
            (None, None) => "latest",
        }
    }

    /// The key of this reference in the store's refs: `repo:tag`, or `repo@digest`
    /// when the reference pins one (a digest names the content; a tag beside it does
    /// not change what is pulled).
    pub fn store_key(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}@{d}", self.repository()),
            None => format!("{}:{}", self.repository(), self.tag.as_deref().unwrap_or("latest")),
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

const INVALID: &str = "invalid reference format";

fn parse_normalized(s: &str) -> Result<Reference, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        ));
    }
    // The remote name ends at the tag or digest: a ':' after the last '/', or '@'.
    let (name_part, rest) = split_name(s);
    let (domain, remainder) = split_domain(name_part);
    if remainder.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("{INVALID}: repository name ({remainder}) must be lowercase"));
    }
    if name_part.is_empty() {
        return Err(INVALID.to_string());
    }
    if !is_domain(&domain) || !is_path(&remainder) {
        return Err(INVALID.to_string());
    }
    if domain.len() + 1 + remainder.len() > NAME_MAX_LEN {
        return Err(format!(
            "repository name must not be more than {NAME_MAX_LEN} characters"
        ));
    }
    let (tag, digest) = match rest.split_once('@') {
        Some((tag_part, digest)) => (tag_part, Some(digest)),
        None => (rest, None),
    };
    let tag = match tag.strip_prefix(':') {
        Some(t) if is_tag(t) => Some(t.to_string()),
        Some(_) => return Err(INVALID.to_string()),
        None if tag.is_empty() => None,
        None => return Err(INVALID.to_string()),
    };
    let digest = match digest {
        Some(d) => Some(Digest::parse(d).map_err(|_| INVALID.to_string())?),
        None => None,
    };
    Ok(Reference {
        domain,
        path: remainder,
        tag,
        digest,
    })
}

/// Splits "name[:tag][@digest]" into the name and the "[:tag][@digest]" rest.
fn split_name(s: &str) -> (&str, &str) {
    let before_digest = s.find('@').unwrap_or(s.len());
    let last_slash = s[..before_digest].rfind('/').map_or(0, |i| i + 1);
    let end = s[last_slash..before_digest]
        .find(':')
        .map_or(before_digest, |i| last_slash + i);
    (&s[..end], &s[end..])
}

/// Docker's rule: the first component is a registry when it has a '.' or a ':', is
/// `localhost`, or has upper-case letters; otherwise the name is Docker Hub's, and a
/// single-component name there is an official image under `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (domain, remainder) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first => {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DOCKER_HUB {
        DOCKER_HUB.to_string()
    } else {
        domain
    };
    let remainder = if domain == DOCKER_HUB && !remainder.contains('/') {
        format!("library/{remainder}")
    } else {
        remainder
    };
    (domain, remainder)
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+(([_.]|__|[-]+)[a-z0-9]+)*` per component.
fn is_path(path: &str) -> bool {
    path.split('/').all(|component| {
        let b = component.as_bytes();
        if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if is_alnum(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !is_alnum(b[i]) {
                i += 1;
            }
            let separator = &component[start..i];
            let ok = separator == "." || separator == "_" || separator == "__" || separator.bytes().all(|c| c == b'-');
            if !ok {
                return false;
            }
        }
        true
    })
}

/// Host names of letters, digits and inner hyphens joined by dots, or a bracketed
/// IPv6 address, with an optional port.
fn is_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("ok", Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    })
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    !b.is_empty() && b.len() <= 128 && word(b[0]) && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// Whether `domain` is an insecure registry (unchecked HTTPS, else plain HTTP): one
/// the node was told of (`host:port`, or a host for every port), or, as Docker has
/// it, one on loopback.
pub fn is_insecure(domain: &str, insecure: &[String]) -> bool {
    let host = host_of(domain);
    if host == "localhost" {
        return true;
    }
    let loopback = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    };
    loopback || insecure.iter().any(|entry| entry == domain || entry == host)
}

/// The host of "host[:port]" or "[v6][:port]", without brackets.
pub fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    domain.rsplit_once(':').map_or(domain, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn normalized(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn names_are_normalized_as_docker_does() {
        assert_eq!(normalized("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalized("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(normalized("team/app"), "docker.io/team/app:latest");
        assert_eq!(
            normalized("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalized("docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalized("registry:5000/a/b:tag"), "registry:5000/a/b:tag");
        assert_eq!(normalized("localhost/app"), "localhost/app:latest");
        assert_eq!(normalized("[::1]:5000/app:v1"), "[::1]:5000/app:v1");
        assert_eq!(
            normalized("a.b-c.example/x__y/z-w.q:V1.0_rc-1"),
            "a.b-c.example/x__y/z-w.q:V1.0_rc-1"
        );
    }

    #[test]
    fn digests_pin_the_manifest() {
        let by_digest = Reference::parse(&format!("busybox@sha256:{HEX}")).unwrap();
        assert_eq!(by_digest.tag, None);
        assert_eq!(by_digest.to_string(), format!("docker.io/library/busybox@sha256:{HEX}"));
        assert_eq!(by_digest.tag_or_digest(), format!("sha256:{HEX}"));

        let both = Reference::parse(&format!("127.0.0.1:5000/app:1.2@sha256:{HEX}")).unwrap();
        assert_eq!(both.tag.as_deref(), Some("1.2"));
        assert_eq!(both.tag_or_digest(), format!("sha256:{HEX}"));
        assert_eq!(both.store_key(), format!("127.0.0.1:5000/app@sha256:{HEX}"));
        assert_eq!(both.repository(), "127.0.0.1:5000/app");
    }

    #[test]
    fn bad_names_are_refused_with_dockers_words() {
        for bad in [
            "",
            ":tag",
            "app:",
            "app:-x",
            "-app",
            "app//x",
            "app@sha256:12",
            "a..b/c",
            "app:t@",
            "a b",
        ] {
            assert_eq!(
                Reference::parse(bad).unwrap_err(),
                "invalid reference format",
                "{bad:?}"
            );
        }
        assert_eq!(
            Reference::parse("Docker.io/Library/Busybox").unwrap_err(),
            "invalid reference format: repository name (Library/Busybox) must be lowercase"
        );
        assert_eq!(
            Reference::parse("busyBox").unwrap_err(),
            "invalid reference format: repository name (library/busyBox) must be lowercase"
        );
        assert!(
            Reference::parse(HEX)
                .unwrap_err()
                .contains("cannot specify 64-byte hexadecimal strings")
        );
        let long = format!("example.com/{}", "a".repeat(250));
        assert!(Reference::parse(&long).unwrap_err().contains("255 characters"));
        assert!(Reference::parse(&format!("app:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn loopback_and_named_registries_are_insecure() {
        let insecure = vec!["registry.lan:5000".to_string(), "other.lan".to_string()];
        assert!(is_insecure("localhost:5000", &[]));
        assert!(is_insecure("127.0.0.1:5000", &[]));
        assert!(is_insecure("127.9.9.9", &[]));
        assert!(is_insecure("[::1]:5000", &[]));
        assert!(is_insecure("registry.lan:5000", &insecure));
        assert!(is_insecure("other.lan:443", &insecure));
        assert!(!is_insecure("registry.lan:5001", &insecure));
        assert!(!is_insecure("docker.io", &insecure));
        assert!(!is_insecure("10.0.0.1:5000", &[]));
    }
}
