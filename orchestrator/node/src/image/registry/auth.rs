//! Registry authorization as Docker does it: a request goes out anonymously; a 401's
//! `WWW-Authenticate` challenge says how to retry. `Basic` wants the user's name and
//! password on each request; `Bearer` names a token service (realm, service, scope)
//! that trades them, or nothing for anonymous pulls, for a token.

use crate::image::RegistryCredentials;
use crate::image::reference::DOCKER_HUB;

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let params = parse_params(params);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// `key="quoted, value", key2=token` pairs.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((key, value));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The registry a credential's key names: "registry.example:5000", a URL of it, or
/// Docker Hub's historic "https://index.docker.io/v1/"; with the repository path
/// prefix it is limited to, if any.
fn credential_scope(key: &str) -> (String, String) {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        other => other,
    };
    // Docker Hub's key carries the API version, not a repository.
    let path = if host == DOCKER_HUB && path.trim_end_matches('/') == "v1" {
        ""
    } else {
        path
    };
    (host.to_string(), path.trim_end_matches('/').to_string())
}

/// The credentials for `domain`/`repository_path`: the first whose registry is the
/// domain and whose path, if it has one, prefixes the repository.
pub fn credentials_for<'a>(
    credentials: &'a [RegistryCredentials],
    domain: &str,
    repository_path: &str,
) -> Option<&'a RegistryCredentials> {
    credentials.iter().find(|c| {
        let (host, path) = credential_scope(&c.registry);
        host == domain
            && (path.is_empty()
                || repository_path == path
                || repository_path.strip_prefix(&path).is_some_and(|r| r.starts_with('/')))
    })
}

pub fn basic(credentials: &RegistryCredentials) -> String {
    use base64::Engine;
    let pair = format!("{}:{}", credentials.username, credentials.password);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(registry: &str) -> RegistryCredentials {
        RegistryCredentials {
            registry: registry.into(),
            username: "u".into(),
            password: "p".into(),
        }
    }

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm="http://127.0.0.1:1/t""#),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: None,
                scope: None
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn credentials_match_by_registry() {
        let all = [
            creds("https://index.docker.io/v1/"),
            creds("registry.example:5000"),
            creds("other.example/team"),
        ];
        assert_eq!(
            credentials_for(&all, "docker.io", "library/busybox").unwrap().registry,
            all[0].registry
        );
        assert_eq!(
            credentials_for(&all, "registry.example:5000", "a").unwrap().registry,
            all[1].registry
        );
        assert!(credentials_for(&all, "registry.example", "a").is_none());
        assert!(credentials_for(&all, "other.example", "team/app").is_some());
        assert!(credentials_for(&all, "other.example", "teamx/app").is_none());
        assert_eq!(basic(&creds("x")), "Basic dTpw");
    }
}
