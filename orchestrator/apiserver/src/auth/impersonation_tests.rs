use axum::http::{HeaderMap, HeaderValue};

use super::*;
use crate::auth::authz::Mode;
use crate::auth::user::MASTERS;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn rbac() -> Authorizer {
    // No roles read: only system:masters may do anything.
    Authorizer::new(&[Mode::Rbac])
}

#[test]
fn without_the_headers_the_user_stays_itself() {
    let alice = UserInfo::authenticated("alice", []);
    assert_eq!(
        impersonate(&rbac(), &alice, &headers(&[("accept", "*/*")])).unwrap(),
        None
    );
}

#[test]
fn a_user_who_may_impersonate_acts_as_the_user_and_groups_asked_for() {
    let admin = UserInfo::authenticated("admin", [MASTERS.to_string()]);
    let asked = headers(&[
        ("Impersonate-User", "bob"),
        ("Impersonate-Group", "team-a"),
        ("Impersonate-Group", "team-b"),
        ("Impersonate-Extra-Scopes%2Fread", "pods"),
    ]);
    let bob = impersonate(&rbac(), &admin, &asked).unwrap().unwrap();
    assert_eq!(bob.name, "bob");
    assert_eq!(bob.groups, ["team-a", "team-b", AUTHENTICATED]);
    assert_eq!(bob.extra["scopes/read"], ["pods"]);

    // A service account without groups asked gets its own.
    let account = headers(&[("Impersonate-User", "system:serviceaccount:ci:builder")]);
    let builder = impersonate(&rbac(), &admin, &account).unwrap().unwrap();
    assert_eq!(
        builder.groups,
        ["system:serviceaccounts", "system:serviceaccounts:ci", AUTHENTICATED]
    );
}

#[test]
fn each_part_refused_is_named_as_kubernetes_names_it() {
    let alice = UserInfo::authenticated("alice", []);
    let error = impersonate(&rbac(), &alice, &headers(&[("Impersonate-User", "bob")])).unwrap_err();
    assert_eq!(error.code, 403);
    assert_eq!(
        error.status()["message"],
        "users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at \
         the cluster scope"
    );
    let error = impersonate(
        &rbac(),
        &alice,
        &headers(&[("Impersonate-User", "system:serviceaccount:ci:builder")]),
    )
    .unwrap_err();
    assert_eq!(
        error.status()["message"],
        "serviceaccounts \"builder\" is forbidden: User \"alice\" cannot impersonate resource \"serviceaccounts\" \
         in API group \"\" in the namespace \"ci\""
    );
    let error = impersonate(&rbac(), &alice, &headers(&[("Impersonate-Group", "system:masters")])).unwrap_err();
    assert_eq!(error.code, 400, "a group alone is not a user to act as");
}
