//! The `scale` subresource of deployments and replica sets: an `autoscaling/v1`
//! `Scale` whose writes change only `spec.replicas` of the object behind it. The
//! view and the check of a submitted `Scale` are pure; the handlers read and write
//! through [`write`], as PUT and PATCH of the object do.

use serde_json::{Value, json};

use super::ApiServer;
use super::managed_fields::Manager;
use super::patch::{PatchType, apply};
use super::prepare::{FieldValidation, fill_or_match, metadata_mut, precondition};
use super::rest::{WriteOptions, get, write};
use super::route::Kind;
use super::status::ApiError;
use berth_api::validation::FieldError;

pub async fn read(api: &ApiServer, kind: &Kind, namespace: &str, name: &str) -> Result<Value, ApiError> {
    Ok(scale_of(&get(api, kind, namespace, name).await?))
}

/// PUT: sets the replicas the submitted `Scale` asks for.
pub async fn replace(
    api: &ApiServer,
    kind: &'static Kind,
    namespace: &str,
    name: &str,
    mut scale: Value,
    manager: &Manager,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let replicas = scale_replicas(&mut scale, namespace, name)?;
    let written = write(
        api,
        kind,
        namespace,
        name,
        precondition(&scale),
        WriteOptions {
            field_validation: FieldValidation::Ignore,
            manager: Some(manager),
            dry_run,
            user: None,
        },
        |stored| Ok(Some(with_replicas(stored, replicas))),
    )
    .await?;
    Ok(scale_of(&written.object))
}

/// PATCH: a patch of the `Scale` view.
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    api: &ApiServer,
    kind: &'static Kind,
    namespace: &str,
    name: &str,
    patch_type: PatchType,
    patch: Value,
    manager: &Manager,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let written = write(
        api,
        kind,
        namespace,
        name,
        precondition(&patch),
        WriteOptions {
            field_validation: FieldValidation::Ignore,
            manager: Some(manager),
            dry_run,
            user: None,
        },
        |stored| {
            let mut scale = apply(None, patch_type, &scale_of(stored), &patch)?;
            let replicas = scale_replicas(&mut scale, namespace, name)?;
            Ok(Some(with_replicas(stored, replicas)))
        },
    )
    .await?;
    Ok(scale_of(&written.object))
}

fn with_replicas(stored: &Value, replicas: i64) -> Value {
    let mut new = stored.clone();
    new["spec"]["replicas"] = replicas.into();
    new
}

/// A deployment or replica set seen through its `scale` subresource.
pub fn scale_of(object: &Value) -> Value {
    let metadata = |field: &str| {
        object
            .pointer(&format!("/metadata/{field}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let selector: Vec<String> = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata("name"),
            "namespace": metadata("namespace"),
            "uid": metadata("uid"),
            "resourceVersion": metadata("resourceVersion"),
            "creationTimestamp": metadata("creationTimestamp"),
        },
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector.join(","),
        },
    })
}

/// Checks a submitted `Scale` against the URL and returns the replicas it asks for.
pub fn scale_replicas(scale: &mut Value, namespace: &str, name: &str) -> Result<i64, ApiError> {
    fill_or_match(scale, "kind", "Scale", |given| {
        format!("the kind of the object ({given}) does not match the kind served at this URL (Scale)")
    })?;
    fill_or_match(scale, "apiVersion", "autoscaling/v1", |given| {
        format!("the API version in the data ({given}) does not match the expected API version (autoscaling/v1)")
    })?;
    let metadata = metadata_mut(scale)?;
    fill_or_match(metadata, "namespace", namespace, |_| {
        "the namespace of the provided object does not match the namespace sent on the request".to_string()
    })?;
    fill_or_match(metadata, "name", name, |given| {
        format!("the name of the object ({given}) does not match the name on the URL ({name})")
    })?;
    let invalid = |message: &str| {
        ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            &[FieldError {
                field: "spec.replicas".into(),
                message: message.into(),
            }],
            scale,
        )
    };
    match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => Err(invalid("required")),
        Some(replicas) => match replicas.as_i64() {
            Some(n) if n < 0 => Err(invalid("must be greater than or equal to 0")),
            Some(n) if n > i64::from(i32::MAX) => Err(invalid("must fit in 32 bits")),
            Some(n) => Ok(n),
            None => Err(invalid("must be an integer")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_view_and_change_replicas() {
        let deployment = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "5"},
                                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
                                "status": {"replicas": 2}});
        let mut scale = scale_of(&deployment);
        assert_eq!(scale["apiVersion"], "autoscaling/v1");
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(scale["status"], json!({"replicas": 2, "selector": "app=web"}));
        assert_eq!(scale["metadata"]["resourceVersion"], "5");
        assert_eq!(scale_replicas(&mut scale, "default", "web"), Ok(3));
        let mut negative = json!({"spec": {"replicas": -1}});
        let error = scale_replicas(&mut negative, "default", "web").unwrap_err();
        assert_eq!(error.code, 422);
        assert_eq!(
            error.message,
            "Scale.autoscaling \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let mut other = json!({"metadata": {"name": "api"}, "spec": {"replicas": 1}});
        assert_eq!(scale_replicas(&mut other, "default", "web").unwrap_err().code, 400);
        assert_eq!(
            scale_replicas(&mut json!({"spec": {}}), "default", "web")
                .unwrap_err()
                .code,
            422
        );
    }
}
