//! The audit log: one JSON line per request (kube-apiserver's `audit.k8s.io/v1`
//! Event at the `ResponseComplete` stage, `ResponseStarted` for watches and streams):
//! who did what to which object, from where, and with what outcome, at the level the
//! policy's first matching rule gives (`None`, `Metadata`, `Request`). Bodies of
//! Secrets and of the reviews that carry tokens are never logged, whatever the policy.
//!
//! ```text
//!  --audit-policy-file ──► Policy (rules, first match) ──► level of the request
//!  answer ──► level ≥ Metadata ──► after the response: Event ──► --audit-log-path
//! ```

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::auth::authz::attributes::Attributes;

/// How much of a request is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
        }
    }
}

/// `audit.k8s.io/v1` Policy.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Only one stage is written, so what is omitted changes nothing but the stages
    /// named must be real ones.
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub level: Level,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupResources {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// Parses a policy file (YAML or JSON); errors name what is wrong.
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let policy: Policy = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    if !policy.kind.is_empty() && policy.kind != "Policy" {
        return Err(format!("kind {:?}: must be Policy", policy.kind));
    }
    if !policy.api_version.is_empty() && !policy.api_version.starts_with("audit.k8s.io/") {
        return Err(format!("apiVersion {:?}: must be audit.k8s.io/v1", policy.api_version));
    }
    if policy.rules.is_empty() {
        return Err("rules: a policy without rules logs nothing".into());
    }
    for (i, rule) in policy.rules.iter().enumerate() {
        let resource_rule = !rule.resources.is_empty() || !rule.namespaces.is_empty();
        if resource_rule && !rule.non_resource_urls.is_empty() {
            return Err(format!(
                "rules[{i}]: nonResourceURLs cannot be mixed with resources or namespaces"
            ));
        }
    }
    Ok(policy)
}

fn listed(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|v| v == value)
}

impl Rule {
    fn matches(&self, user: &UserInfo, attributes: &Attributes) -> bool {
        if !listed(&self.users, &user.name) {
            return false;
        }
        if !self.user_groups.is_empty() && !user.groups.iter().any(|g| self.user_groups.contains(g)) {
            return false;
        }
        if !listed(&self.verbs, &attributes.verb) {
            return false;
        }
        match &attributes.resource {
            Some(resource) => {
                if !self.non_resource_urls.is_empty() {
                    return false;
                }
                if !listed(&self.namespaces, &resource.namespace) {
                    return false;
                }
                self.resources.is_empty()
                    || self.resources.iter().any(|g| {
                        g.group == resource.group
                            && (g.resources.is_empty() || g.resources.iter().any(|r| resource_matches(r, resource)))
                            && listed(&g.resource_names, &resource.name)
                    })
            }
            None => {
                if !self.resources.is_empty() || !self.namespaces.is_empty() {
                    return false;
                }
                self.non_resource_urls.is_empty()
                    || self.non_resource_urls.iter().any(|u| match u.strip_suffix('*') {
                        Some(prefix) => attributes.path.starts_with(prefix),
                        None => attributes.path == *u,
                    })
            }
        }
    }
}

/// `pods`, `pods/log`, `pods/*`, `*`, `*/scale`, as the policy's resources match.
fn resource_matches(pattern: &str, resource: &crate::auth::authz::attributes::ResourceAttributes) -> bool {
    let combined = if resource.subresource.is_empty() {
        resource.resource.clone()
    } else {
        format!("{}/{}", resource.resource, resource.subresource)
    };
    match pattern.split_once('/') {
        None => pattern == "*" || (pattern == resource.resource && resource.subresource.is_empty()),
        Some(("*", sub)) => sub == resource.subresource,
        Some((res, "*")) => res == resource.resource,
        Some(_) => pattern == combined,
    }
}

/// Resources whose bodies hold secrets: logged at Metadata at the most.
const NEVER_BODIES: &[&str] = &["secrets", "tokenreviews", "token"];

/// The audit log: a policy and where its lines go.
#[derive(Clone)]
pub struct AuditLog {
    policy: Arc<Policy>,
    sink: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("rules", &self.policy.rules.len())
            .finish()
    }
}

tokio::task_local! {
    /// The annotations the handlers of the request being served note.
    static ANNOTATIONS: std::cell::RefCell<Vec<(String, String)>>;
}

/// Notes annotations for the audit event of the request being served (nothing
/// outside [`collecting`]).
pub fn annotate(pairs: impl IntoIterator<Item = (String, String)>) {
    let _ = ANNOTATIONS.try_with(|annotations| annotations.borrow_mut().extend(pairs));
}

/// Runs a request's handling, with the annotations it noted.
pub async fn collecting<F: std::future::Future>(handling: F) -> (F::Output, Vec<(String, String)>) {
    ANNOTATIONS
        .scope(std::cell::RefCell::new(Vec::new()), async {
            let output = handling.await;
            (output, ANNOTATIONS.with(|annotations| annotations.take()))
        })
        .await
}

/// The record of `request` by `user`, if the policy logs it; at the Request level
/// with its body (JSON, YAML or protobuf, decoded as the handler decodes it), which is
/// read here and given back to the request.
pub async fn begin(
    log: &AuditLog,
    request: &mut axum::extract::Request,
    user: &UserInfo,
    impersonated: Option<&UserInfo>,
    source: Option<std::net::IpAddr>,
) -> Result<Option<Record>, crate::status::ApiError> {
    let received = std::time::SystemTime::now();
    let attributes = attributes_of(request);
    let level = log.level(user, attributes.as_ref());
    if level == Level::None {
        return Ok(None);
    }
    let mut request_object = None;
    let has_body = matches!(
        *request.method(),
        axum::http::Method::POST | axum::http::Method::PUT | axum::http::Method::PATCH
    );
    if level >= Level::Request && has_body {
        let body = std::mem::take(request.body_mut());
        let bytes = crate::codec::read_body(request.headers(), body).await?;
        request_object = crate::codec::decode_object_blocking(request.headers(), bytes.clone())
            .await
            .ok();
        *request.body_mut() = axum::body::Body::from(bytes);
    }
    Ok(Some(Record {
        level,
        id: audit_id(),
        received,
        attributes,
        user: user.clone(),
        impersonated_user: impersonated.cloned(),
        annotations: Default::default(),
        uri: request.uri().to_string(),
        source,
        user_agent: user_agent(request),
        request_object,
    }))
}

/// What `request` asks to do, as the authorizer sees it.
fn attributes_of(request: &axum::extract::Request) -> Option<Attributes> {
    let path = request.uri().path().to_string();
    let attributes = crate::route::parse(&path).map(|route| {
        let params = crate::params::Params::parse(request.uri()).unwrap_or_default();
        let watch = matches!(route, crate::route::Route::Collection { .. }) && params.flag("watch").unwrap_or(false);
        crate::auth::authz::attributes::of_route(request.method(), &path, &route, watch, params.text("fieldSelector"))
            .into_iter()
            .last()
    });
    match attributes {
        Some(found) => found,
        None => Some(Attributes::path(&request.method().as_str().to_ascii_lowercase(), &path)),
    }
}

fn user_agent(request: &axum::extract::Request) -> String {
    request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A request refused because its credentials authenticate nobody (401), audited as
/// Kubernetes audits a failed authentication: no user, no body, the refusal.
pub fn unauthenticated(
    log: &AuditLog,
    request: &axum::extract::Request,
    source: Option<std::net::IpAddr>,
    status: &Value,
) {
    let nobody = UserInfo {
        name: String::new(),
        uid: String::new(),
        groups: Vec::new(),
        extra: Default::default(),
    };
    let attributes = attributes_of(request);
    let level = log.level(&nobody, attributes.as_ref()).min(Level::Metadata);
    let record = Record {
        level,
        id: audit_id(),
        received: std::time::SystemTime::now(),
        attributes,
        user: nobody,
        impersonated_user: None,
        annotations: Default::default(),
        uri: request.uri().to_string(),
        source,
        user_agent: user_agent(request),
        request_object: None,
    };
    log.write(record, 401, Some(status), "ResponseStarted");
}

/// A random id for one request's events (a UUID's form).
fn audit_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// One request's record, filled in as it is answered.
pub struct Record {
    pub level: Level,
    pub id: String,
    pub received: std::time::SystemTime,
    pub attributes: Option<Attributes>,
    pub user: UserInfo,
    /// The user the request acted as (`kubectl --as`), if it impersonated one.
    pub impersonated_user: Option<UserInfo>,
    /// What the request's handlers noted for the event (Pod Security's decisions).
    pub annotations: std::collections::BTreeMap<String, String>,
    pub uri: String,
    pub source: Option<std::net::IpAddr>,
    pub user_agent: String,
    pub request_object: Option<Value>,
}

impl AuditLog {
    /// The log to `path` (appended to; `-` is standard output) with `policy`.
    pub fn open(path: &Path, policy: Policy) -> Result<AuditLog, String> {
        let sink: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Box::new(file)
        };
        Ok(AuditLog {
            policy: Arc::new(policy),
            sink: Arc::new(Mutex::new(sink)),
        })
    }

    /// The level of a request by `user` asking `attributes` (None when no rule matches).
    pub fn level(&self, user: &UserInfo, attributes: Option<&Attributes>) -> Level {
        let fallback = Attributes::path("", "");
        let attributes = attributes.unwrap_or(&fallback);
        let level = self
            .policy
            .rules
            .iter()
            .find(|rule| rule.matches(user, attributes))
            .map_or(Level::None, |rule| rule.level);
        let secret = attributes.resource.as_ref().is_some_and(|r| {
            NEVER_BODIES.contains(&r.resource.as_str()) || NEVER_BODIES.contains(&r.subresource.as_str())
        });
        if secret { level.min(Level::Metadata) } else { level }
    }

    /// Writes the record of a request answered with `code` (and, for a failure, the
    /// `Status` it was answered with).
    pub fn write(&self, record: Record, code: u16, status: Option<&Value>, stage: &str) {
        if record.level == Level::None {
            return;
        }
        let line = event(&record, code, status, stage);
        let mut sink = self.sink.lock().expect("audit sink lock");
        let _ = writeln!(sink, "{line}");
        let _ = sink.flush();
    }
}

/// An RFC 3339 time with microseconds, as the audit log's timestamps are.
fn micro_time(t: std::time::SystemTime) -> String {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    berth_api::time::format_unix_rfc3339(since.as_secs() as i64, Some(since.subsec_micros()))
}

fn event(record: &Record, code: u16, status: Option<&Value>, stage: &str) -> Value {
    let user_info = |user: &UserInfo| {
        if user.name.is_empty() {
            // Nobody was authenticated.
            return json!({});
        }
        let mut info = json!({"username": user.name, "groups": user.groups});
        if !user.uid.is_empty() {
            info["uid"] = json!(user.uid);
        }
        info
    };
    let user = user_info(&record.user);
    let mut event = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": record.level.name(),
        "auditID": record.id,
        "stage": stage,
        "requestURI": record.uri,
        "verb": record.attributes.as_ref().map_or("", |a| a.verb.as_str()),
        "user": user,
        "sourceIPs": record.source.map(|ip| vec![ip.to_string()]).unwrap_or_default(),
        "userAgent": record.user_agent,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": micro_time(record.received),
        "stageTimestamp": micro_time(std::time::SystemTime::now()),
    });
    if let Some(impersonated) = &record.impersonated_user {
        event["impersonatedUser"] = user_info(impersonated);
    }
    if !record.annotations.is_empty() {
        event["annotations"] = json!(record.annotations);
    }
    if let Some(resource) = record.attributes.as_ref().and_then(|a| a.resource.as_ref()) {
        let mut object = json!({"resource": resource.resource, "apiVersion": resource.version});
        for (field, value) in [
            ("namespace", &resource.namespace),
            ("name", &resource.name),
            ("apiGroup", &resource.group),
            ("subresource", &resource.subresource),
        ] {
            if !value.is_empty() {
                object[field] = json!(value);
            }
        }
        event["objectRef"] = object;
    }
    if let Some(status) = status {
        for field in ["status", "message", "reason"] {
            if let Some(value) = status.get(field) {
                event["responseStatus"][field] = value.clone();
            }
        }
    }
    if record.level >= Level::Request
        && let Some(object) = &record.request_object
    {
        event["requestObject"] = object.clone();
    }
    event
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
