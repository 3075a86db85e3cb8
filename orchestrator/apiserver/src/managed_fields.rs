//! Who writes, for `metadata.managedFields`, and the calls into `berth_api::apply`
//! with the time of the write:
//!
//! - the manager is the `fieldManager` query parameter; without one (any write but
//!   an apply, which must name it), the program of the `User-Agent` (`kubectl` of
//!   `kubectl/v1.32.0 (linux/amd64) kubernetes/...`), as kube-apiserver does;
//! - every write but an apply records what it changed (`track`), after validation,
//!   on the object as it will be stored;
//! - an apply (`apply`) merges the configuration and records ownership itself.

use serde_json::Value;

use super::patch::{PatchType, schema};
use super::route::Kind;
use super::status::ApiError;
use berth_api::apply::{self, Applied, ApplyError, Writer};
use berth_api::kinds::Object;

/// At most this many bytes name a manager.
const MAX_MANAGER_BYTES: usize = 128;

/// The writer of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    pub name: String,
    /// `""` for the object itself, `status`, `scale`.
    pub subresource: &'static str,
}

impl Manager {
    /// The manager of a request: `field_manager` if given, else the User-Agent's
    /// program (the text before its first `/`, printable characters only, at most 128
    /// bytes), else `unknown`.
    pub fn of_request(field_manager: &str, user_agent: &str, subresource: &'static str) -> Manager {
        let name = if field_manager.is_empty() {
            let program = user_agent.split('/').next().unwrap_or_default();
            let mut name = String::new();
            for c in program.chars().filter(|c| !c.is_control()) {
                if name.len() + c.len_utf8() > MAX_MANAGER_BYTES {
                    break;
                }
                name.push(c);
            }
            name
        } else {
            field_manager.to_string()
        };
        Manager {
            name: if name.is_empty() { "unknown".into() } else { name },
            subresource,
        }
    }

    fn writer<'a>(&'a self, api_version: &'a str) -> Writer<'a> {
        Writer {
            manager: &self.name,
            api_version,
            subresource: self.subresource,
        }
    }
}

/// Checks a `fieldManager` as kube-apiserver does; `options` names the request's
/// options kind (`CreateOptions`, `UpdateOptions`, `PatchOptions`).
pub fn check_field_manager(options: &str, field_manager: &str) -> Result<(), ApiError> {
    if field_manager.len() > MAX_MANAGER_BYTES {
        return Err(ApiError::invalid_options(
            options,
            "fieldManager",
            "FieldValueTooLong",
            &format!("Too long: may not be more than {MAX_MANAGER_BYTES} bytes"),
        ));
    }
    if let Some((at, c)) = field_manager.char_indices().find(|(_, c)| c.is_control()) {
        return Err(ApiError::invalid_options(
            options,
            "fieldManager",
            "FieldValueInvalid",
            &format!(
                "Invalid value: {}: invalid character U+{:04X} (at position {at})",
                Value::from(field_manager),
                c as u32
            ),
        ));
    }
    Ok(())
}

/// Checks a PATCH's options: an apply must name its manager, only an apply may force.
pub fn check_patch_options(patch_type: PatchType, field_manager: &str, has_force: bool) -> Result<(), ApiError> {
    match patch_type {
        PatchType::Apply if field_manager.is_empty() => {
            return Err(ApiError::invalid_options(
                "PatchOptions",
                "fieldManager",
                "FieldValueRequired",
                "Required value: is required for apply patch",
            ));
        }
        PatchType::Apply => {}
        _ if has_force => {
            return Err(ApiError::invalid_options(
                "PatchOptions",
                "force",
                "FieldValueForbidden",
                "Forbidden: may not be specified for non-apply patch",
            ));
        }
        _ => {}
    }
    check_field_manager("PatchOptions", field_manager)
}

/// Records in `object` (about to be stored over `stored`, or created when `None`)
/// what `manager` changed.
pub fn track(kind: &Kind, stored: Option<&Value>, object: &mut Object, manager: &Manager) {
    let api_version = kind.api_version();
    let entries = apply::update(
        stored,
        &object.to_value(),
        manager.writer(&api_version),
        schema(kind),
        &berth_api::time::now(),
    );
    object.metadata_mut().managed_fields = Some(entries).filter(|entries| !entries.is_empty());
}

/// Applies `config` for `manager` to `live` (`None`: the object does not exist yet).
pub fn apply(
    kind: &Kind,
    live: Option<&Value>,
    config: &Value,
    manager: &Manager,
    force: bool,
) -> Result<Applied, ApiError> {
    let api_version = kind.api_version();
    let writer = manager.writer(&api_version);
    apply::apply(live, config, writer, force, schema(kind), &berth_api::time::now()).map_err(|error| match error {
        ApplyError::Conflicts(conflicts) => {
            let causes: Vec<(String, String)> = conflicts
                .iter()
                .map(|conflict| (conflict.cause_message(), conflict.path.to_string()))
                .collect();
            ApiError::apply_conflict(conflicts.to_string(), &causes)
        }
        other => ApiError::bad_request(other.to_string()),
    })
}

/// Checks what an applied configuration says it is against the URL: its
/// `apiVersion` and `kind`, and its name when it gives one.
pub fn check_configuration(kind: &Kind, config: &Value, namespace: &str, name: &str) -> Result<(), ApiError> {
    let text = |pointer: &str| config.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    let api_version = kind.api_version();
    if text("/apiVersion") != api_version {
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {}, expected: {api_version}",
            text("/apiVersion")
        )));
    }
    if text("/kind") != kind.kind {
        let group_version = if api_version.contains('/') {
            api_version
        } else {
            format!("/{api_version}")
        };
        let given = format!("{group_version}, Kind={}", text("/kind"));
        return Err(ApiError::bad_request(format!(
            "failed to create typed patch object ({namespace}/{name}; {given}): no corresponding type for {given}"
        )));
    }
    let given_name = text("/metadata/name");
    if !given_name.is_empty() && given_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::kind;
    use serde_json::json;

    #[test]
    fn managers_come_from_the_request() {
        let kubectl = "kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9";
        assert_eq!(Manager::of_request("", kubectl, "").name, "kubectl");
        assert_eq!(Manager::of_request("kubectl-edit", kubectl, "").name, "kubectl-edit");
        assert_eq!(Manager::of_request("", "", "").name, "unknown");
        assert_eq!(Manager::of_request("", "my\tagent", "status").name, "myagent");
        assert_eq!(Manager::of_request("", &"a".repeat(200), "").name.len(), 128);
    }

    #[test]
    fn patch_options_are_checked_as_kubernetes_does() {
        let missing = check_patch_options(PatchType::Apply, "", false).unwrap_err();
        assert_eq!(missing.code, 422);
        assert_eq!(
            missing.message,
            r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
        );
        assert_eq!(missing.status()["details"]["causes"][0]["reason"], "FieldValueRequired");
        let forced = check_patch_options(PatchType::Merge, "", true).unwrap_err();
        assert_eq!(
            forced.message,
            r#"PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch"#
        );
        assert!(check_patch_options(PatchType::Apply, "kubectl", true).is_ok());
        let long = check_field_manager("CreateOptions", &"m".repeat(129)).unwrap_err();
        assert_eq!(
            long.message,
            r#"CreateOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes"#
        );
        let bell = check_field_manager("UpdateOptions", "a\u{7}").unwrap_err();
        assert!(
            bell.message.ends_with("invalid character U+0007 (at position 1)"),
            "{}",
            bell.message
        );
    }

    #[test]
    fn configurations_must_be_the_object_at_the_url() {
        let deployments = kind("deployments");
        let good = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        assert!(check_configuration(deployments, &good, "default", "web").is_ok());
        let mut old = good.clone();
        old["apiVersion"] = json!("apps/v1beta1");
        assert_eq!(
            check_configuration(deployments, &old, "default", "web")
                .unwrap_err()
                .message,
            "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, expected: apps/v1"
        );
        let mut pod = good.clone();
        pod["kind"] = json!("Pod");
        assert_eq!(
            check_configuration(deployments, &pod, "default", "web")
                .unwrap_err()
                .message,
            "failed to create typed patch object (default/web; apps/v1, Kind=Pod): \
             no corresponding type for apps/v1, Kind=Pod"
        );
        assert_eq!(
            check_configuration(deployments, &good, "default", "api")
                .unwrap_err()
                .message,
            "the name of the object (web) does not match the name on the URL (api)"
        );
    }
}
