use axum::http::HeaderValue;

use super::*;
use crate::auth::user::{AUTHENTICATED, MASTERS};

fn headers(authorization: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(value) = authorization {
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    }
    headers
}

#[test]
fn a_token_file_gives_users_uids_and_groups() {
    let tokens = parse_token_file(
        "t0k3n,alice,1001,\"team-a,devs\"\n\n  robot-token , robot , r1\nroot,root,0,system:masters\n",
    )
    .unwrap();
    let alice = &tokens["t0k3n"];
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.uid, "1001");
    assert_eq!(alice.groups, ["team-a", "devs", AUTHENTICATED]);
    assert_eq!(tokens["robot-token"].groups, [AUTHENTICATED]);
    assert!(tokens["root"].in_group(MASTERS));
}

#[test]
fn a_malformed_token_file_is_refused_naming_the_line() {
    for (text, wanted) in [
        ("a,b\n", "line 1: must have at least 3 columns"),
        ("ok,u,1\n,u,2\n", "line 2: the token is empty"),
        ("t,,1\n", "line 1: the user name is empty"),
        ("t,u,1,\"g1,g2\n", "line 1: a quoted field is not closed"),
        ("t,u,1\nt,v,2\n", "line 2: the token is given twice"),
        ("t,u\"x,1\n", "line 1: a quote inside an unquoted field"),
    ] {
        let error = parse_token_file(text).unwrap_err();
        assert!(error.starts_with(wanted), "{text:?}: {error}");
    }
}

#[tokio::test]
async fn certificate_then_token_then_anonymous_in_that_order() {
    // Static tokens and certificates need no store.
    let kv = Kv::connect(&["http://127.0.0.1:9".to_string()]).unwrap();
    let tokens = parse_token_file("good,alice,1\n").unwrap();
    let authn = Authenticator::new(tokens.clone(), true);
    let bob = UserInfo::authenticated("bob", []);
    // A verified certificate wins, whatever the header says.
    assert_eq!(
        authn
            .authenticate(&kv, &headers(Some("Bearer bad")), Some(&bob))
            .await
            .unwrap(),
        bob
    );
    assert_eq!(
        authn
            .authenticate(&kv, &headers(Some("Bearer good")), None)
            .await
            .unwrap()
            .name,
        "alice"
    );
    assert_eq!(
        authn
            .authenticate(&kv, &headers(Some("bearer  good ")), None)
            .await
            .unwrap()
            .name,
        "alice"
    );
    // A wrong token is refused, never taken as anonymous.
    let error = authn
        .authenticate(&kv, &headers(Some("Bearer bad")), None)
        .await
        .unwrap_err();
    assert_eq!((error.code, error.reason), (401, "Unauthorized"));
    // No credentials (or an empty token): anonymous, unless turned off.
    assert_eq!(
        authn.authenticate(&kv, &headers(None), None).await.unwrap(),
        UserInfo::anonymous()
    );
    assert_eq!(
        authn.authenticate(&kv, &headers(Some("Bearer ")), None).await.unwrap(),
        UserInfo::anonymous()
    );
    assert_eq!(
        authn
            .authenticate(&kv, &headers(Some("Basic abc")), None)
            .await
            .unwrap(),
        UserInfo::anonymous()
    );
    let strict = Authenticator::new(tokens, false);
    assert_eq!(
        strict.authenticate(&kv, &headers(None), None).await.unwrap_err().code,
        401
    );
}

#[test]
fn a_certificate_names_its_user_and_groups() {
    let ca = berth_pki::Ca::create("test-ca").unwrap();
    let admin = ca
        .issue(&berth_pki::Profile::client("kubernetes-admin", &[MASTERS]))
        .unwrap();
    let der = berth_pki::tls::certificates("admin", &admin.cert_pem)
        .unwrap()
        .remove(0);
    let user = certificate_user(&der).unwrap();
    assert_eq!(user.name, "kubernetes-admin");
    assert_eq!(user.groups, [MASTERS, AUTHENTICATED]);
    assert_eq!(certificate_user(b"not a certificate"), None);
}
