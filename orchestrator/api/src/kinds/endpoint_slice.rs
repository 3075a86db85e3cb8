//! EndpointSlices: the addresses behind a Service, with each endpoint's readiness,
//! as `discovery.k8s.io/v1` has them. Flat (no spec/status), as Kubernetes' own.
//!
//! berth's EndpointSlice controller (berth-controllers `endpointslice`) keeps the
//! slices of every Service with a selector; the proxies and DNS servers on the
//! agents read them. Slices a user writes (without the controller's `managed-by`
//! label) are left alone, as Kubernetes leaves them.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::SystemTime;

use super::cells::{self, Cells, text};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::validation::{FieldError, is_dns_label, is_dns_subdomain};

pub use k8s_openapi::api::core::v1::ObjectReference;
pub use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};

/// The label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who keeps a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// [`MANAGED_BY_LABEL`]'s value on the slices the controller keeps.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The most endpoints one slice holds, as Kubernetes' `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

pub static ENDPOINT_SLICE: KindDescriptor = KindDescriptor {
    group: "discovery.k8s.io",
    version: "v1",
    kind: "EndpointSlice",
    plural: "endpointslices",
    singular: "endpointslice",
    short_names: &[],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &["addressType"],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new(
            "AddressType",
            "string",
            ".addressType",
            "The kind of the slice's addresses: IPv4, IPv6 or FQDN.",
        ),
        PrinterColumn::new("Ports", "string", "", "The ports of the slice's endpoints."),
        PrinterColumn::new("Endpoints", "string", "", "The addresses of the slice's endpoints."),
        PrinterColumn::AGE,
    ],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<EndpointSlice>,
    defaults,
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<EndpointSlice>(),
};

flat_kind!(EndpointSlice, ENDPOINT_SLICE);

/// Each port's protocol is TCP when absent, as Kubernetes defaults it.
fn defaults(object: &mut Object) {
    if let Some(slice) = object.downcast_mut::<EndpointSlice>() {
        for port in slice.ports.iter_mut().flatten() {
            if text(&port.protocol).is_empty() {
                port.protocol = Some("TCP".into());
            }
        }
    }
}

fn err(errors: &mut Vec<FieldError>, field: impl Into<String>, message: impl Into<String>) {
    errors.push(FieldError {
        field: field.into(),
        message: message.into(),
    });
}

/// Kubernetes' `ValidateEndpointSlice`, for the address types berth serves.
fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    let Some(slice) = object.downcast_ref::<EndpointSlice>() else {
        return;
    };
    let address_type = slice.address_type.as_str();
    match address_type {
        "IPv4" | "IPv6" | "FQDN" => {}
        "" => err(errors, "addressType", "required"),
        other => err(
            errors,
            "addressType",
            format!("Unsupported value: {other:?}: supported values: \"FQDN\", \"IPv4\", \"IPv6\""),
        ),
    }
    if slice.endpoints.len() > 1000 {
        err(errors, "endpoints", "Too many: must have at most 1000 items");
    }
    for (i, endpoint) in slice.endpoints.iter().enumerate() {
        let at = format!("endpoints[{i}]");
        match endpoint.addresses.len() {
            0 => err(
                errors,
                format!("{at}.addresses"),
                "required: must contain at least 1 address",
            ),
            1..=100 => {}
            _ => err(
                errors,
                format!("{at}.addresses"),
                "Too many: must have at most 100 items",
            ),
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            let ok = match (address_type, address.parse::<IpAddr>()) {
                ("IPv4", Ok(IpAddr::V4(_))) | ("IPv6", Ok(IpAddr::V6(_))) => true,
                ("FQDN", _) => is_dns_subdomain(address),
                _ => false,
            };
            if !ok {
                err(
                    errors,
                    format!("{at}.addresses[{j}]"),
                    format!("must be a valid {address_type} address"),
                );
            }
        }
        if let Some(hostname) = endpoint.hostname.as_deref()
            && !is_dns_label(hostname)
        {
            err(errors, format!("{at}.hostname"), "must be a DNS label");
        }
    }
    let ports = slice.ports.as_deref().unwrap_or_default();
    if ports.len() > 100 {
        err(errors, "ports", "Too many: must have at most 100 items");
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let name = text(&port.name);
        if !name.is_empty() && !is_dns_label(name) {
            err(errors, format!("ports[{i}].name"), "must be a DNS label");
        }
        if !names.insert(name) {
            err(errors, format!("ports[{i}].name"), format!("Duplicate value: {name:?}"));
        }
        if let Some(port) = port.port
            && !(1..=65535).contains(&port)
        {
            err(
                errors,
                format!("ports[{i}].port"),
                "must be between 1 and 65535, inclusive",
            );
        }
        if !matches!(text(&port.protocol), "TCP" | "UDP" | "SCTP") {
            err(
                errors,
                format!("ports[{i}].protocol"),
                format!(
                    "Unsupported value: {:?}: supported values: \"SCTP\", \"TCP\", \"UDP\"",
                    text(&port.protocol)
                ),
            );
        }
    }
}

fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    if let (Some(old), Some(new)) = (old.downcast_ref::<EndpointSlice>(), new.downcast_ref::<EndpointSlice>())
        && old.address_type != new.address_type
    {
        err(errors, "addressType", "field is immutable");
    }
}

/// Up to three items, then `+ N more...`; `<unset>` for none, as kubectl's printer.
fn list_with_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    match items.len() {
        0 => "<unset>".into(),
        n if n <= MAX => items.join(","),
        n => format!("{} + {} more...", items[..MAX].join(","), n - MAX),
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(slice) = object.downcast_ref::<EndpointSlice>() else {
        return cells::from_paths(&ENDPOINT_SLICE, object, now);
    };
    let ports = slice
        .ports
        .iter()
        .flatten()
        .map(|p| match (p.port, p.name.as_deref()) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) if !name.is_empty() => name.to_string(),
            _ => "*".into(),
        })
        .collect();
    let addresses = slice
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().cloned())
        .collect();
    vec![
        cells::name(object),
        slice.address_type.clone().into(),
        list_with_more(ports).into(),
        list_with_more(addresses).into(),
        cells::age(object, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(value: serde_json::Value) -> Object {
        let mut object = (ENDPOINT_SLICE.decode)(&value).unwrap();
        (ENDPOINT_SLICE.defaults)(&mut object);
        object
    }

    #[test]
    fn rows_and_checks() {
        let object = slice(
            serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.2"]}, {"addresses": ["10.1.0.3"]}, {"addresses": ["10.1.0.4"]},
                          {"addresses": ["10.1.0.5"]}],
            "ports": [{"name": "http", "port": 8080}]}),
        );
        let row = cells(&object, SystemTime::now());
        assert_eq!(row[1], "IPv4");
        assert_eq!(row[2], "8080");
        assert_eq!(row[3], "10.1.0.2,10.1.0.3,10.1.0.4 + 1 more...");
        assert_eq!(
            object.downcast_ref::<EndpointSlice>().unwrap().ports.as_ref().unwrap()[0]
                .protocol
                .as_deref(),
            Some("TCP")
        );
        assert!(crate::validation::validate(&object).is_empty());
        let bad = slice(
            serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "x", "namespace": "default"}, "addressType": "IPv4",
            "endpoints": [{"addresses": []}, {"addresses": ["fe80::1"]}]}),
        );
        let errors: Vec<String> = crate::validation::validate(&bad)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errors,
            [
                "endpoints[0].addresses: required: must contain at least 1 address",
                "endpoints[1].addresses[0]: must be a valid IPv4 address"
            ]
        );
        let empty = slice(
            serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "x", "namespace": "default"}, "addressType": "IPv4", "endpoints": []}),
        );
        assert_eq!(cells(&empty, SystemTime::now())[2..4], ["<unset>", "<unset>"]);
    }
}
