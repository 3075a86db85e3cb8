//! What a command can fail with, printed as kubectl prints it:
//! `Error from server (NotFound): pods "x" not found`, `error: ...`.

use serde::Deserialize;

/// A Kubernetes `Status` object, as the API server answers an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub details: Option<StatusDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub causes: Vec<StatusCause>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCause {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub message: String,
}

impl Status {
    /// The server's `Status` in an error response, or one made up from the HTTP
    /// code when the body is something else (a proxy's plain-text error).
    pub fn from_response(code: u16, body: &[u8]) -> Status {
        if let Ok(mut status) = serde_json::from_slice::<Status>(body)
            && (!status.message.is_empty() || !status.reason.is_empty())
        {
            if status.code == 0 {
                status.code = code;
            }
            return status;
        }
        let text = String::from_utf8_lossy(body).trim().to_string();
        Status {
            message: if text.is_empty() {
                format!("the server responded with HTTP status {code}")
            } else {
                text
            },
            reason: reason_for_code(code).to_string(),
            code,
            details: None,
        }
    }
}

fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Gone",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

#[derive(Debug)]
pub enum CliError {
    /// The server refused the request.
    Server(Status),
    /// No API server answered: the message names them and why.
    Unreachable(String),
    /// Anything else, printed as `error: ...`.
    Message(String),
    /// Errors were printed already, one per object; exit 1.
    Reported,
}

impl CliError {
    pub fn message(text: impl Into<String>) -> CliError {
        CliError::Message(text.into())
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, CliError::Server(status) if status.code == 404)
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, CliError::Server(status) if status.code == 409)
    }

    pub fn is_gone(&self) -> bool {
        matches!(self, CliError::Server(status) if status.code == 410)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Server(status) => write!(f, "{}", describe_status(status)),
            CliError::Unreachable(message) | CliError::Message(message) => write!(f, "error: {message}"),
            CliError::Reported => Ok(()),
        }
    }
}

/// kubectl's wording: `The Deployment "web" is invalid: ...` for field errors,
/// else `Error from server (Reason): message`.
pub fn describe_status(status: &Status) -> String {
    if status.reason == "Invalid"
        && let Some(details) = &status.details
        && !details.causes.is_empty()
    {
        let causes: Vec<String> = details
            .causes
            .iter()
            .map(|c| match c.field.as_str() {
                "" => c.message.clone(),
                field => format!("{field}: {}", c.message),
            })
            .collect();
        let subject = format!("The {} {:?} is invalid:", details.kind, details.name);
        return match causes.as_slice() {
            [one] => format!("{subject} {one}"),
            many => format!("{subject}\n* {}", many.join("\n* ")),
        };
    }
    match status.reason.as_str() {
        "" => format!("Error from server: {}", status.message),
        reason => format!("Error from server ({reason}): {}", status.message),
    }
}

/// What a failed connection prints, naming every server tried.
pub fn unreachable(attempts: &[(String, String)]) -> CliError {
    let mut reasons: Vec<&str> = attempts.iter().map(|(_, why)| why.as_str()).collect();
    reasons.dedup();
    let servers: Vec<&str> = attempts.iter().map(|(base, _)| base.as_str()).collect();
    let at = match reasons.as_slice() {
        [] => "(no server given)".to_string(),
        [why] => format!("{} ({why})", servers.join(", ")),
        _ => attempts
            .iter()
            .map(|(base, why)| format!("{base} ({why})"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    CliError::Unreachable(format!(
        "cannot reach the berth API server at {at}: is the cluster running? (berth up)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_print_as_kubectl() {
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"x\" not found","reason":"NotFound","code":404}"#;
        let error = CliError::Server(Status::from_response(404, body));
        assert_eq!(error.to_string(), r#"Error from server (NotFound): pods "x" not found"#);
        assert!(error.is_not_found());

        let plain = Status::from_response(502, b"bad gateway");
        assert_eq!(
            describe_status(&plain),
            "Error from server (InternalError): bad gateway"
        );

        let invalid = br#"{"kind":"Status","message":"x","reason":"Invalid","code":422,
            "details":{"name":"web","kind":"Deployment","causes":[
              {"field":"spec.replicas","message":"must be 0 or more"},
              {"field":"metadata.name","message":"required"}]}}"#;
        assert_eq!(
            describe_status(&Status::from_response(422, invalid)),
            "The Deployment \"web\" is invalid:\n* spec.replicas: must be 0 or more\n* metadata.name: required"
        );
    }

    #[test]
    fn unreachable_names_the_servers() {
        let one = unreachable(&[("http://127.0.0.1:1".into(), "connection refused".into())]);
        assert_eq!(
            one.to_string(),
            "error: cannot reach the berth API server at http://127.0.0.1:1 (connection refused): \
             is the cluster running? (berth up)"
        );
        let two = unreachable(&[
            ("a".into(), "connection refused".into()),
            ("b".into(), "timed out".into()),
        ]);
        assert!(
            two.to_string().contains("at a (connection refused), b (timed out):"),
            "{two}"
        );
    }
}
