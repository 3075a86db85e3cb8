//! `POST /api/v1/namespaces/{ns}/pods/{name}/eviction`: the Eviction subresource
//! that `kubectl drain` uses. berth has no PodDisruptionBudgets, so no disruption
//! limit can refuse an eviction: it is the pod's deletion, with the delete options
//! the Eviction carries. The answer is a `Status` of success, code 201, as
//! kube-apiserver gives.

use serde_json::{Value, json};

use super::ApiServer;
use super::rest;
use super::route::Kind;
use super::status::ApiError;

/// The group versions whose `Eviction` the subresource takes.
const EVICTION_VERSIONS: &[&str] = &["policy/v1", "policy/v1beta1"];

/// Evicts the pod `name` as `eviction` asks.
pub async fn evict(
    api: &ApiServer,
    pods: &Kind,
    namespace: &str,
    name: &str,
    eviction: &Value,
) -> Result<Value, ApiError> {
    check(eviction, namespace, name)?;
    let options = eviction.get("deleteOptions").filter(|o| !o.is_null());
    let is_dry_run = options
        .and_then(|o| o.get("dryRun"))
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty());
    if is_dry_run {
        rest::get(api, pods, namespace, name).await?;
    } else {
        rest::delete(api, pods, namespace, name, options, false).await?;
    }
    Ok(json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": 201,
    }))
}

/// The body is an Eviction of this pod.
fn check(eviction: &Value, namespace: &str, name: &str) -> Result<(), ApiError> {
    let text = |pointer: &str| eviction.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    let kind = text("/kind");
    if !kind.is_empty() && kind != "Eviction" {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the kind served at this URL (Eviction)"
        )));
    }
    let api_version = text("/apiVersion");
    if !api_version.is_empty() && !EVICTION_VERSIONS.contains(&api_version) {
        return Err(ApiError::bad_request(format!(
            "Eviction of apiVersion {api_version} is not served: use one of {EVICTION_VERSIONS:?}"
        )));
    }
    let given_namespace = text("/metadata/namespace");
    if !given_namespace.is_empty() && given_namespace != namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if text("/metadata/name") != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_must_be_an_eviction_of_this_pod() {
        let eviction = |body: Value| check(&body, "default", "web-1");
        let ok = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1"}});
        assert_eq!(eviction(ok), Ok(()));
        let other_pod = eviction(json!({"kind": "Eviction", "metadata": {"name": "web-2"}})).unwrap_err();
        assert_eq!(
            (other_pod.code, other_pod.message.as_str()),
            (400, "name in URL does not match name in Eviction object")
        );
        let no_name = eviction(json!({"kind": "Eviction"})).unwrap_err();
        assert_eq!(no_name.code, 400);
        let pod = eviction(json!({"kind": "Pod", "metadata": {"name": "web-1"}})).unwrap_err();
        assert!(pod.message.contains("(Pod)"), "{}", pod.message);
        let elsewhere = eviction(json!({"metadata": {"name": "web-1", "namespace": "dev"}})).unwrap_err();
        assert!(elsewhere.message.contains("namespace"), "{}", elsewhere.message);
        let v2 = eviction(json!({"apiVersion": "policy/v2", "metadata": {"name": "web-1"}})).unwrap_err();
        assert_eq!(v2.code, 400);
    }
}
