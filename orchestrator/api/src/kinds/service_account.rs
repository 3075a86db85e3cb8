//! ServiceAccounts (core/v1): the identities pods run as. Flat, as Kubernetes has
//! them: `secrets` (kept as given; berth makes no token Secrets),
//! `imagePullSecrets` (given to the pods that run as the account and name none, by
//! the ServiceAccount admission) and `automountServiceAccountToken` (whether those
//! pods get the `kube-api-access-*` volume unless they say otherwise).
//!
//! Every namespace has a `default` one, which the controllers make and remake
//! (`berth_controllers::service_account`); tokens for an account are asked of the
//! API server through its `token` subresource (a TokenRequest).

use std::time::SystemTime;

use serde_json::Value;

use super::cells::{self, Cells};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::validation::FieldError;

pub use k8s_openapi::api::core::v1::ServiceAccount;

/// The account a pod that names none runs as, made in every namespace.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

pub static SERVICE_ACCOUNT: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "ServiceAccount",
    plural: "serviceaccounts",
    singular: "serviceaccount",
    short_names: &["sa"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new(
            "Secrets",
            "integer",
            "",
            "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
        ),
        PrinterColumn::AGE,
    ],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<ServiceAccount>,
    defaults: |_| {},
    validate,
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<ServiceAccount>(),
};

flat_kind!(ServiceAccount, SERVICE_ACCOUNT);

/// The names the account lists must be given, as Kubernetes requires of object
/// references and local object references.
fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    let Some(account) = object.downcast_ref::<ServiceAccount>() else {
        return;
    };
    for (i, pull) in account.image_pull_secrets.iter().flatten().enumerate() {
        if pull.name.is_empty() {
            errors.push(FieldError {
                field: format!("imagePullSecrets[{i}].name"),
                message: "Required value".into(),
            });
        }
    }
    for (i, secret) in account.secrets.iter().flatten().enumerate() {
        if secret.name.as_deref().unwrap_or_default().is_empty() {
            errors.push(FieldError {
                field: format!("secrets[{i}].name"),
                message: "Required value".into(),
            });
        }
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(account) = object.downcast_ref::<ServiceAccount>() else {
        return cells::from_paths(&SERVICE_ACCOUNT, object, now);
    };
    let secrets = account.secrets.as_ref().map_or(0, Vec::len);
    vec![cells::name(object), Value::from(secrets), cells::age(object, now)]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validation::parse_value;

    #[test]
    fn stored_as_sent_and_counted_in_its_row() {
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "builder", "namespace": "dev"},
            "secrets": [{"name": "a"}], "imagePullSecrets": [{"name": "reg"}],
            "automountServiceAccountToken": false});
        let parsed = parse_value(account).unwrap().object;
        assert_eq!(parsed.key(), "/registry/serviceaccounts/dev/builder");
        let stored = parsed.to_value();
        assert_eq!(stored["imagePullSecrets"], json!([{"name": "reg"}]));
        assert_eq!(stored["automountServiceAccountToken"], false);
        let row = (SERVICE_ACCOUNT.cells)(&parsed, SystemTime::now());
        assert_eq!(row[..2], [json!("builder"), json!(1)]);
    }

    #[test]
    fn references_need_names() {
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "b", "namespace": "dev"}, "imagePullSecrets": [{}], "secrets": [{}]});
        let errors: Vec<String> = parse_value(account)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "imagePullSecrets[0].name: Required value",
                "secrets[0].name: Required value"
            ]
        );
    }
}
