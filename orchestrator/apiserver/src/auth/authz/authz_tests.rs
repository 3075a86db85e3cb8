use super::*;

fn pods(verb: &str, namespace: &str, name: &str, subresource: &str) -> Attributes {
    Attributes::resource(
        verb,
        ResourceAttributes {
            resource: "pods".into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        },
    )
}

#[test]
fn modes_are_kube_apiservers() {
    assert_eq!(parse_modes("RBAC"), Ok(vec![Mode::Rbac]));
    assert_eq!(parse_modes("AlwaysAllow,RBAC"), Ok(vec![Mode::AlwaysAllow, Mode::Rbac]));
    assert_eq!(parse_modes("Node,RBAC"), Ok(SECURE_MODES.to_vec()));
    let abac = parse_modes("ABAC").unwrap_err();
    assert!(abac.contains("\"ABAC\" is not implemented"), "{abac}");
    assert!(parse_modes("rbac").unwrap_err().contains("not a valid mode"));
    assert!(parse_modes("RBAC,RBAC").is_err());
    assert!(parse_modes("").is_err());
}

#[test]
fn refusals_are_worded_as_kubernetes_words_them() {
    let alice = UserInfo::authenticated("alice", []);
    let list = forbidden(&alice, &pods("list", "team-b", "", ""));
    assert_eq!((list.code, list.reason), (403, "Forbidden"));
    assert_eq!(
        list.message,
        "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"team-b\""
    );
    assert_eq!(
        forbidden(&alice, &pods("get", "team-b", "web", "log")).message,
        "pods \"web\" is forbidden: User \"alice\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"team-b\""
    );
    assert_eq!(
        forbidden(&alice, &pods("watch", "", "", "")).message,
        "pods is forbidden: User \"alice\" cannot watch resource \"pods\" in API group \"\" at the cluster scope"
    );
    let deployments = Attributes::resource(
        "create",
        ResourceAttributes {
            group: "apps".into(),
            resource: "deployments".into(),
            namespace: "a".into(),
            ..Default::default()
        },
    );
    assert_eq!(
        forbidden(&alice, &deployments).message,
        "deployments.apps is forbidden: User \"alice\" cannot create resource \"deployments\" in API group \"apps\" in the namespace \"a\""
    );
    assert_eq!(
        forbidden(&UserInfo::anonymous(), &Attributes::path("get", "/apis")).message,
        "forbidden: User \"system:anonymous\" cannot get path \"/apis\""
    );
}

#[test]
fn always_allow_allows_and_rbac_alone_denies_without_bindings() {
    let alice = UserInfo::authenticated("alice", []);
    assert!(
        Authorizer::new(&[Mode::AlwaysAllow])
            .authorize(&alice, &pods("get", "a", "p", ""))
            .allowed
    );
    let rbac = Authorizer::new(&[Mode::Rbac]);
    assert!(
        !rbac.authorize(&alice, &pods("get", "a", "p", "")).allowed,
        "default deny"
    );
    let admin = UserInfo::authenticated("root", [MASTERS.to_string()]);
    assert!(
        rbac.authorize(&admin, &pods("delete", "a", "p", "")).allowed,
        "system:masters"
    );
    assert_eq!(
        rbac.authorize(&alice, &pods("get", "a", "p", "")).reason,
        "",
        "RBAC gives no reason for a refusal"
    );
}
