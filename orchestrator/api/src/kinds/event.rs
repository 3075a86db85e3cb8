//! Events: what happened to an object (scheduled, started, killed, backing off),
//! recorded by the components that did it. Kubernetes' core/v1 `Event`, kept with a
//! time to live, so that they do not fill the store.

use std::time::SystemTime;

use serde_json::Value;

use super::cells::{self, Cells, or_none, text};
use super::{Conversion, KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::meta::MetaExt;
use crate::time::age_of;
use crate::validation::FieldError;

pub use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};

pub static EVENT: KindDescriptor = EVENT_BASE;

/// What both group versions of events share.
const EVENT_BASE: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    short_names: &["ev"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    // Kubernetes' columns for events, the name last and only in the wide output.
    printer_columns: &[
        PrinterColumn::new("Last Seen", "string", "", "When the event last happened."),
        PrinterColumn::new("Type", "string", ".type", "Normal or Warning."),
        PrinterColumn::new("Reason", "string", ".reason", "Why the event happened, in one word."),
        PrinterColumn::new("Object", "string", "", "The object the event is about: kind/name."),
        PrinterColumn::new(
            "Subobject",
            "string",
            ".involvedObject.fieldPath",
            "The part of the object, such as a container.",
        )
        .wide(),
        PrinterColumn::new(
            "Source",
            "string",
            "",
            "The component that reported the event, and its host.",
        )
        .wide(),
        PrinterColumn::new("Message", "string", ".message", "What happened, for people."),
        PrinterColumn::new("First Seen", "string", "", "When the event first happened.").wide(),
        PrinterColumn::new("Count", "integer", ".count", "How often the event happened.").wide(),
        PrinterColumn {
            priority: 1,
            ..PrinterColumn::NAME
        },
    ],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<Event>,
    defaults: |_| {},
    validate,
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<Event>(),
};

flat_kind!(Event, EVENT);

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    let Some(event) = object.downcast_ref::<Event>() else {
        return;
    };
    if event.involved_object.kind.as_deref().unwrap_or_default().is_empty() {
        errors.push(FieldError {
            field: "involvedObject.kind".into(),
            message: "required".into(),
        });
    }
    let namespace = object.metadata().namespace();
    let involved = event.involved_object.namespace.as_deref().unwrap_or_default();
    if !involved.is_empty() && !namespace.is_empty() && involved != namespace {
        errors.push(FieldError {
            field: "involvedObject.namespace".into(),
            message: format!("does not match the event's namespace {namespace:?}"),
        });
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(event) = object.downcast_ref::<Event>() else {
        return cells::from_paths(&EVENT, object, now);
    };
    let involved = &event.involved_object;
    let last = event
        .last_timestamp
        .as_ref()
        .or(event.first_timestamp.as_ref())
        .or(object.metadata().creation_timestamp.as_ref());
    let first = event
        .first_timestamp
        .as_ref()
        .or(object.metadata().creation_timestamp.as_ref());
    let kind = text(&involved.kind).to_ascii_lowercase();
    let source = event.source.clone().unwrap_or_default();
    let source = match (text(&source.component), text(&source.host)) {
        ("", _) => text(&event.reporting_component).to_string(),
        (component, "") => component.to_string(),
        (component, host) => format!("{component}, {host}"),
    };
    vec![
        age_of(last, now).into(),
        or_none(text(&event.type_)),
        or_none(text(&event.reason)),
        format!("{kind}/{}", text(&involved.name)).into(),
        or_none(text(&involved.field_path)),
        or_none(&source),
        text(&event.message).into(),
        age_of(first, now).into(),
        Value::from(event.count.unwrap_or(1)),
        cells::name(object),
    ]
}

/// Events as the events.k8s.io/v1 API serves them: the same objects as core/v1's
/// (stored in that form, under the same keys), with the names that API gave the
/// fields (`note` for `message`, `regarding` for `involvedObject`, ...).
pub static EVENT_V1: KindDescriptor = KindDescriptor {
    group: "events.k8s.io",
    version: "v1",
    // A served object is read by converting it to the stored form first.
    decode: |value| Object::decode_as::<Event>(&rename(value.clone(), &swapped(), "v1")),
    conversion: Some(Conversion {
        from_storage: |value| rename(value, CORE_TO_V1, "events.k8s.io/v1"),
        to_storage: |value| rename(value, &swapped(), "v1"),
    }),
    schema: |generator| generator.subschema_for::<k8s_openapi::api::events::v1::Event>(),
    field_selectors: &[
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "reason",
        "reportingController",
        "type",
    ],
    ..EVENT_BASE
};

/// The core/v1 field names and their events.k8s.io/v1 names; the others are shared.
const CORE_TO_V1: &[(&str, &str)] = &[
    ("message", "note"),
    ("involvedObject", "regarding"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("count", "deprecatedCount"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
];

fn swapped() -> Vec<(&'static str, &'static str)> {
    CORE_TO_V1.iter().map(|(core, v1)| (*v1, *core)).collect()
}

fn rename(mut value: Value, names: &[(&str, &str)], api_version: &str) -> Value {
    if let Some(fields) = value.as_object_mut() {
        for (from, to) in names {
            if let Some(field) = fields.remove(*from) {
                fields.insert(to.to_string(), field);
            }
        }
        fields.insert("apiVersion".into(), api_version.into());
    }
    value
}
