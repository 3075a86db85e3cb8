use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};

use super::*;

#[test]
fn the_lease_is_the_nodes_held_by_it_and_renewed_in_micro_time() {
    let at = UNIX_EPOCH + Duration::new(1_767_323_045, 123_456_789);
    let lease = lease_object("n1", Some("u-1"), Duration::from_secs(40), at);
    assert_eq!(lease["metadata"]["namespace"], "kube-node-lease");
    assert_eq!(lease["metadata"]["name"], "n1");
    assert_eq!(
        lease["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u-1"}])
    );
    assert_eq!(
        lease["spec"],
        json!({"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": "2026-01-02T03:04:05.123456Z"})
    );
    assert!((LEASE.decode)(&lease).is_ok(), "a Lease as the API decodes it");
    let before_the_node = lease_object("n1", None, Duration::from_secs(40), at);
    assert!(before_the_node["metadata"].get("ownerReferences").is_none());
}

#[test]
fn a_renewal_takes_the_lease_over_at_the_version_it_was_written_at() {
    let mut lease = json!({
        "metadata": {"name": "n1", "namespace": "kube-node-lease", "uid": "l-1"},
        "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 10, "acquireTime": "kept"},
    });
    let at = UNIX_EPOCH + Duration::new(1_767_323_045, 0);
    renewed(&mut lease, "n1", Duration::from_secs(40), 17, at);
    assert_eq!(lease["metadata"]["resourceVersion"], "17");
    assert_eq!(lease["metadata"]["uid"], "l-1");
    assert_eq!(
        lease["spec"],
        json!({"holderIdentity": "n1", "leaseDurationSeconds": 40, "acquireTime": "kept",
               "renewTime": "2026-01-02T03:04:05.000000Z"})
    );
    assert_eq!(lease["kind"], "Lease");
}

/// An API server holding one Lease and perhaps the Node, answering as
/// kube-apiserver does (a PUT at another resourceVersion: 409), and noting every
/// request.
#[derive(Default)]
struct FakeApi {
    revision: i64,
    lease: Option<(Value, i64)>,
    node_uid: Option<String>,
    requests: Vec<String>,
}

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";

fn status(code: StatusCode, reason: &str) -> (StatusCode, String) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                      "code": code.as_u16(), "message": reason});
    (code, body.to_string())
}

fn answer(fake: &mut FakeApi, method: &Method, path: &str, body: &[u8]) -> (StatusCode, String) {
    fake.requests.push(format!("{method} {path}"));
    let served = |object: &Value, revision: i64| {
        let mut object = object.clone();
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        object.to_string()
    };
    match (method.as_str(), path) {
        ("GET", "/api/v1/nodes/n1") => match &fake.node_uid {
            Some(uid) => (
                StatusCode::OK,
                json!({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1", "uid": uid,
                       "resourceVersion": "1"}})
                .to_string(),
            ),
            None => status(StatusCode::NOT_FOUND, "NotFound"),
        },
        ("GET", p) if p == format!("{LEASES}/n1") => match &fake.lease {
            Some((lease, revision)) => (StatusCode::OK, served(lease, *revision)),
            None => status(StatusCode::NOT_FOUND, "NotFound"),
        },
        ("POST", LEASES) => {
            if fake.lease.is_some() {
                return status(StatusCode::CONFLICT, "AlreadyExists");
            }
            fake.revision += 1;
            let lease: Value = serde_json::from_slice(body).unwrap();
            fake.lease = Some((lease.clone(), fake.revision));
            (StatusCode::CREATED, served(&lease, fake.revision))
        }
        ("PUT", p) if p == format!("{LEASES}/n1") => {
            let mut lease: Value = serde_json::from_slice(body).unwrap();
            let Some((_, revision)) = &fake.lease else {
                return status(StatusCode::NOT_FOUND, "NotFound");
            };
            if lease["metadata"]["resourceVersion"] != json!(revision.to_string()) {
                return status(StatusCode::CONFLICT, "Conflict");
            }
            fake.revision += 1;
            lease["metadata"].as_object_mut().unwrap().remove("resourceVersion");
            fake.lease = Some((lease.clone(), fake.revision));
            (StatusCode::OK, served(&lease, fake.revision))
        }
        _ => status(StatusCode::NOT_FOUND, "NotFound"),
    }
}

/// Serves `fake` on loopback; the API source that reaches it.
async fn serve(fake: Arc<Mutex<FakeApi>>) -> ApiSource {
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let fake = fake.clone();
        async move {
            let (code, body) = answer(&mut fake.lock().unwrap(), &method, uri.path(), &body);
            (code, [("content-type", "application/json")], body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    ApiSource::new(Arc::new(berth_client::http_client::HttpClient::new(vec![base])))
}

fn taken(fake: &Mutex<FakeApi>) -> Vec<String> {
    std::mem::take(&mut fake.lock().unwrap().requests)
}

#[tokio::test]
async fn each_renewal_is_one_put_of_the_lease_last_written() {
    let fake = Arc::new(Mutex::new(FakeApi {
        node_uid: Some("u-1".into()),
        ..Default::default()
    }));
    let api = serve(fake.clone()).await;
    let mut lease = NodeLease::ensure(api, "n1", Duration::from_secs(40)).await.unwrap();
    assert_eq!(
        taken(&fake),
        [
            format!("GET {LEASES}/n1"),
            "GET /api/v1/nodes/n1".to_string(),
            format!("POST {LEASES}")
        ],
        "absent: read, then created owned by the Node"
    );
    for _ in 0..3 {
        lease.renew().await.unwrap();
    }
    assert_eq!(
        taken(&fake),
        vec![format!("PUT {LEASES}/n1"); 3],
        "no GET per heartbeat"
    );
    let (stored, revision) = fake.lock().unwrap().lease.clone().unwrap();
    assert_eq!(revision, 4, "created, then renewed three times");
    assert_eq!(stored["spec"]["holderIdentity"], "n1");
    assert_eq!(stored["metadata"]["ownerReferences"][0]["uid"], "u-1");
}

#[tokio::test]
async fn a_lease_written_by_another_is_read_again_and_renewed_at_its_version() {
    let fake = Arc::new(Mutex::new(FakeApi::default()));
    let api = serve(fake.clone()).await;
    let mut lease = NodeLease::ensure(api, "n1", Duration::from_secs(40)).await.unwrap();
    // Before the Node exists: no owner yet.
    assert!(fake.lock().unwrap().lease.as_ref().unwrap().0["metadata"]["ownerReferences"].is_null());
    taken(&fake);
    {
        // Someone else holds it now, at a newer version.
        let mut fake = fake.lock().unwrap();
        fake.revision += 1;
        let revision = fake.revision;
        let (stored, at) = fake.lease.as_mut().unwrap();
        stored["spec"]["holderIdentity"] = json!("intruder");
        *at = revision;
        fake.node_uid = Some("u-1".into());
    }
    lease.renew().await.unwrap();
    assert_eq!(
        taken(&fake),
        [
            "GET /api/v1/nodes/n1".to_string(),
            format!("PUT {LEASES}/n1"),
            format!("GET {LEASES}/n1"),
            "GET /api/v1/nodes/n1".to_string(),
            format!("PUT {LEASES}/n1"),
        ],
        "the stale PUT (409), then a read and a PUT at the version read (the Node read for \
         each, as neither Lease had an owner)"
    );
    let (stored, _) = fake.lock().unwrap().lease.clone().unwrap();
    assert_eq!(stored["spec"]["holderIdentity"], "n1", "taken back");
    assert_eq!(
        stored["metadata"]["ownerReferences"][0]["uid"], "u-1",
        "owned once the Node exists"
    );
    lease.renew().await.unwrap();
    assert_eq!(
        taken(&fake),
        [format!("PUT {LEASES}/n1")],
        "owned: the Node is not read again either"
    );
}

#[tokio::test]
async fn a_deleted_lease_is_created_again() {
    let fake = Arc::new(Mutex::new(FakeApi {
        node_uid: Some("u-1".into()),
        ..Default::default()
    }));
    let api = serve(fake.clone()).await;
    let mut lease = NodeLease::ensure(api, "n1", Duration::from_secs(40)).await.unwrap();
    taken(&fake);
    fake.lock().unwrap().lease = None;
    lease.renew().await.unwrap();
    assert_eq!(
        taken(&fake),
        [
            format!("PUT {LEASES}/n1"),
            format!("GET {LEASES}/n1"),
            "GET /api/v1/nodes/n1".to_string(),
            format!("POST {LEASES}"),
        ]
    );
    assert!(fake.lock().unwrap().lease.is_some());
    lease.renew().await.unwrap();
    assert_eq!(taken(&fake), [format!("PUT {LEASES}/n1")]);
}

#[tokio::test]
async fn a_lease_that_cannot_be_renewed_for_its_duration_is_lost() {
    // An API server that is not there: every renewal fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = berth_client::http_client::HttpClient::new(vec![format!("http://127.0.0.1:{port}")]);
    let mut lease = NodeLease {
        api: ApiSource::new(std::sync::Arc::new(http)),
        node: "n1".into(),
        duration: Duration::from_secs(2),
        renewed: Instant::now(),
        last: None,
    };
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), lease.keep())
        .await
        .expect("lost");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "not before its duration: {took:?}");
    assert!(took < Duration::from_secs(4), "soon after it: {took:?}");
}
