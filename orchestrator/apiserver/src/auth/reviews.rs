//! The reviews: objects a client creates to ask a question, answered in their
//! `status` and never stored. `authorization.k8s.io/v1`: may I (or may this user)
//! do this (`SelfSubjectAccessReview`, `SubjectAccessReview`,
//! `LocalSubjectAccessReview`, what `kubectl auth can-i` asks), what may I do in a
//! namespace (`SelfSubjectRulesReview`, `kubectl auth can-i --list`);
//! `authentication.k8s.io/v1`: who am I (`SelfSubjectReview`, `kubectl auth whoami`).
//! Each is answered by the API server's authorizer as it would decide a request.

use berth_api::validation::{FieldError, NOT_IMPLEMENTED};
use serde_json::{Value, json};

use super::authz::{Attributes, Authorizer, Mode, ResourceAttributes};
use super::user::UserInfo;
use crate::status::ApiError;

pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";
pub const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

/// The review a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    SelfSubjectAccess,
    SubjectAccess,
    /// In the namespace of the path.
    LocalSubjectAccess(String),
    SelfSubjectRules,
    SelfSubject,
    /// Answered by the token authenticator (`auth::service_accounts::token_review`).
    Token,
}

/// `(group, kind, resource, namespaced)` of every review, as discovery lists them.
pub const REVIEWS: &[(&str, &str, &str, bool)] = &[
    (
        AUTHORIZATION_GROUP,
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
    ),
    (
        AUTHORIZATION_GROUP,
        "SubjectAccessReview",
        "subjectaccessreviews",
        false,
    ),
    (
        AUTHORIZATION_GROUP,
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        true,
    ),
    (
        AUTHORIZATION_GROUP,
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        false,
    ),
    (AUTHENTICATION_GROUP, "SelfSubjectReview", "selfsubjectreviews", false),
    (AUTHENTICATION_GROUP, "TokenReview", "tokenreviews", false),
];

impl Review {
    fn entry(&self) -> (&'static str, &'static str, &'static str, bool) {
        let resource = match self {
            Review::SelfSubjectAccess => "selfsubjectaccessreviews",
            Review::SubjectAccess => "subjectaccessreviews",
            Review::LocalSubjectAccess(_) => "localsubjectaccessreviews",
            Review::SelfSubjectRules => "selfsubjectrulesreviews",
            Review::SelfSubject => "selfsubjectreviews",
            Review::Token => "tokenreviews",
        };
        *REVIEWS
            .iter()
            .find(|r| r.2 == resource)
            .expect("every review is listed")
    }

    /// What creating it asks of the authorizer: `create` on its resource.
    pub fn attributes(&self) -> Attributes {
        let (group, _, resource, _) = self.entry();
        let namespace = match self {
            Review::LocalSubjectAccess(namespace) => namespace.clone(),
            _ => String::new(),
        };
        Attributes::resource(
            "create",
            ResourceAttributes {
                group: group.into(),
                version: "v1".into(),
                resource: resource.into(),
                namespace,
                ..Default::default()
            },
        )
    }
}

/// The review `path` names, if it is one.
pub fn parse(path: &str) -> Option<Review> {
    if let Some(rest) = path.strip_prefix("/apis/authorization.k8s.io/v1/") {
        return match rest.split('/').collect::<Vec<_>>()[..] {
            ["selfsubjectaccessreviews"] => Some(Review::SelfSubjectAccess),
            ["subjectaccessreviews"] => Some(Review::SubjectAccess),
            ["selfsubjectrulesreviews"] => Some(Review::SelfSubjectRules),
            ["namespaces", namespace, "localsubjectaccessreviews"] if !namespace.is_empty() => {
                Some(Review::LocalSubjectAccess(namespace.to_string()))
            }
            _ => None,
        };
    }
    match path {
        "/apis/authentication.k8s.io/v1/selfsubjectreviews" => Some(Review::SelfSubject),
        "/apis/authentication.k8s.io/v1/tokenreviews" => Some(Review::Token),
        _ => None,
    }
}

fn invalid(kind: &str, group: &str, errors: Vec<FieldError>, body: &Value) -> ApiError {
    ApiError::invalid(kind, group, "", &errors, body)
}

fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The attributes a review's spec asks about, checked as Kubernetes checks them.
fn spec_attributes(spec: &Value, errors: &mut Vec<FieldError>) -> Option<Attributes> {
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    match (resource, non_resource) {
        (Some(_), Some(_)) => {
            errors.push(field(
                "spec.nonResourceAttributes",
                "\"object\": cannot be specified in combination with resourceAttributes",
            ));
            None
        }
        (None, None) => {
            errors.push(field(
                "spec.resourceAttributes",
                "\"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
            None
        }
        (None, Some(n)) => Some(Attributes::path(text(n, "verb"), text(n, "path"))),
        (Some(r), None) => {
            for selector in ["fieldSelector", "labelSelector"] {
                if r.get(selector).is_some_and(|v| !v.is_null()) {
                    errors.push(field(&format!("spec.resourceAttributes.{selector}"), NOT_IMPLEMENTED));
                }
            }
            Some(Attributes::resource(
                text(r, "verb"),
                ResourceAttributes {
                    group: text(r, "group").into(),
                    version: text(r, "version").into(),
                    resource: text(r, "resource").into(),
                    subresource: text(r, "subresource").into(),
                    namespace: text(r, "namespace").into(),
                    name: text(r, "name").into(),
                },
            ))
        }
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The review answered: the object as sent, with its `status` (`201 Created`).
pub fn answer(authorizer: &Authorizer, review: &Review, user: &UserInfo, mut body: Value) -> Result<Value, ApiError> {
    let (group, kind, _, _) = review.entry();
    if !body.is_object() {
        return Err(ApiError::bad_request(format!("a {kind} must be a JSON object")));
    }
    body["apiVersion"] = format!("{group}/v1").into();
    body["kind"] = kind.into();
    if body.get("metadata").is_none_or(Value::is_null) {
        body["metadata"] = json!({});
    }
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut errors = Vec::new();
    let status = match review {
        Review::SelfSubject => json!({"userInfo": user_info(user)}),
        Review::Token => {
            return Err(ApiError::internal(
                "a TokenReview is answered by the token authenticator",
            ));
        }
        Review::SelfSubjectRules => {
            let namespace = text(&spec, "namespace");
            rules_review(authorizer, user, namespace)
        }
        Review::SelfSubjectAccess | Review::SubjectAccess | Review::LocalSubjectAccess(_) => {
            let attributes = spec_attributes(&spec, &mut errors);
            let subject = match review {
                Review::SelfSubjectAccess => user.clone(),
                _ => {
                    let subject = UserInfo {
                        name: text(&spec, "user").into(),
                        uid: text(&spec, "uid").into(),
                        groups: strings(spec.get("groups")),
                        extra: Default::default(),
                    };
                    if subject.name.is_empty() && subject.groups.is_empty() {
                        // The value is quoted from the body when the field is there.
                        let quoted = if spec.get("user").is_some_and(Value::is_string) {
                            ""
                        } else {
                            "\"\": "
                        };
                        errors.push(field(
                            "spec.user",
                            format!("{quoted}at least one of user or group must be specified"),
                        ));
                    }
                    subject
                }
            };
            if let Review::LocalSubjectAccess(namespace) = review {
                local_namespace(&mut body, namespace, attributes.as_ref(), &mut errors)?;
            }
            if !errors.is_empty() {
                return Err(invalid(kind, group, errors, &body));
            }
            let attributes = attributes.expect("checked above");
            let decision = authorizer.authorize(&subject, &attributes);
            let mut status = json!({"allowed": decision.allowed});
            if !decision.reason.is_empty() {
                status["reason"] = decision.reason.into();
            }
            status
        }
    };
    body["status"] = status;
    Ok(body)
}

/// A LocalSubjectAccessReview is in the namespace of its path, and asks about it.
fn local_namespace(
    body: &mut Value,
    namespace: &str,
    attributes: Option<&Attributes>,
    errors: &mut Vec<FieldError>,
) -> Result<(), ApiError> {
    match body["metadata"].get("namespace").and_then(Value::as_str) {
        None | Some("") => body["metadata"]["namespace"] = namespace.into(),
        Some(other) if other != namespace => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Some(_) => {}
    }
    match attributes {
        Some(a) if a.resource.is_none() => errors.push(field(
            "spec.nonResourceAttributes",
            "\"object\": disallowed on this kind of request",
        )),
        Some(a) if a.namespace() != namespace => errors.push(field(
            "spec.resourceAttributes.namespace",
            "must match metadata.namespace",
        )),
        _ => {}
    }
    Ok(())
}

fn user_info(user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = user.uid.clone().into();
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}

/// What the user may do in `namespace`, every mode's rules together, as
/// `SubjectRulesReviewStatus`.
fn rules_review(authorizer: &Authorizer, user: &UserInfo, namespace: &str) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    // The Node mode's rules are not a list (they follow each pod), so a node's
    // answer is incomplete, as Kubernetes' is.
    let mut incomplete = false;
    for mode in authorizer.modes() {
        let rules = match mode {
            Mode::AlwaysAllow => vec![
                berth_api::rbac::bootstrap::rule(&["*"], &["*"], &["*"]),
                berth_api::rbac::bootstrap::url_rule(&["*"], &["*"]),
            ],
            Mode::Node => {
                incomplete |= super::authz::node::node_name(user).is_some();
                Vec::new()
            }
            Mode::Rbac => authorizer
                .rbac()
                .map(|c| c.rules_for(user, namespace))
                .unwrap_or_default(),
        };
        for rule in rules {
            if rule.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()) {
                non_resource_rules.push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
            } else {
                let mut entry = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups.unwrap_or_default(),
                                       "resources": rule.resources.unwrap_or_default()});
                if let Some(names) = rule.resource_names.filter(|n| !n.is_empty()) {
                    entry["resourceNames"] = names.into();
                }
                resource_rules.push(entry);
            }
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": incomplete})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_paths() {
        assert_eq!(
            parse("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
            Some(Review::SelfSubjectAccess)
        );
        assert_eq!(
            parse("/apis/authorization.k8s.io/v1/namespaces/a/localsubjectaccessreviews"),
            Some(Review::LocalSubjectAccess("a".into()))
        );
        assert_eq!(
            parse("/apis/authentication.k8s.io/v1/selfsubjectreviews"),
            Some(Review::SelfSubject)
        );
        assert_eq!(parse("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/x"), None);
        assert_eq!(
            parse("/apis/authorization.k8s.io/v1/namespaces//localsubjectaccessreviews"),
            None
        );
        let attributes = Review::LocalSubjectAccess("a".into()).attributes();
        assert_eq!((attributes.verb.as_str(), attributes.namespace()), ("create", "a"));
    }

    #[test]
    fn a_review_names_what_it_lacks() {
        let authorizer = Authorizer::new(&[Mode::AlwaysAllow]);
        let alice = UserInfo::authenticated("alice", []);
        let sar = json!({"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}});
        let refused = answer(&authorizer, &Review::SubjectAccess, &alice, sar).unwrap_err();
        assert_eq!(refused.code, 422);
        assert!(
            refused
                .message
                .ends_with("spec.user: Invalid value: \"\": at least one of user or group must be specified"),
            "{}",
            refused.message
        );
        let neither = answer(&authorizer, &Review::SelfSubjectAccess, &alice, json!({"spec": {}})).unwrap_err();
        assert!(
            neither
                .message
                .contains("exactly one of nonResourceAttributes or resourceAttributes")
        );
        let selector = json!({"spec": {"resourceAttributes": {"verb": "list", "resource": "pods",
                                                             "labelSelector": {"rawSelector": "a=b"}}}});
        let refused = answer(&authorizer, &Review::SelfSubjectAccess, &alice, selector).unwrap_err();
        assert!(
            refused.message.contains("spec.resourceAttributes.labelSelector"),
            "{}",
            refused.message
        );
        let allowed = answer(
            &authorizer,
            &Review::SelfSubjectAccess,
            &alice,
            json!({"spec": {"nonResourceAttributes": {"verb": "get", "path": "/healthz"}}}),
        )
        .unwrap();
        assert_eq!(allowed["status"]["allowed"], true);
        assert_eq!(allowed["kind"], "SelfSubjectAccessReview");
        let whoami = answer(&authorizer, &Review::SelfSubject, &alice, json!({})).unwrap();
        assert_eq!(
            whoami["status"]["userInfo"],
            json!({"username": "alice", "groups": ["system:authenticated"]})
        );
    }
}
