//! `/version`: the etcd versions berth answers as (clients pick features by them).

use hyper::StatusCode;

use super::json::Out;
use super::response::{self, HttpResponse};
use crate::store::ETCD_VERSION;

pub fn version() -> HttpResponse {
    response::json(StatusCode::OK, body())
}

/// The server's version, and the cluster's: the same major.minor, patch 0, as etcd
/// reports a cluster of 3.4 members.
fn body() -> String {
    let cluster = match ETCD_VERSION.rsplit_once('.') {
        Some((major_minor, _)) => format!("{major_minor}.0"),
        None => ETCD_VERSION.to_string(),
    };
    Out::Object(vec![
        ("etcdserver", Out::string(ETCD_VERSION)),
        ("etcdcluster", Out::string(cluster)),
    ])
    .render()
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_etcds_names() {
        let body: serde_json::Value = serde_json::from_str(&super::body()).unwrap();
        assert_eq!(body["etcdserver"], super::ETCD_VERSION);
        assert!(body["etcdcluster"].as_str().unwrap().starts_with("3.4."), "{body}");
    }
}
