//! The Watch service's messages; `WatchRequest` is a oneof, written by hand.

use berth_proto::etcdserverpb::watch_create_request::FilterType;
use berth_proto::etcdserverpb::watch_request::RequestUnion;
use berth_proto::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use berth_proto::mvccpb::Event;
use berth_proto::mvccpb::event::EventType;

use super::{Fields, JsonError, JsonMessage, Object, Out, display_path, from_value, join, json_message, names_field};

json_message!(WatchCreateRequest {
    key: "key",
    range_end: "range_end",
    start_revision: "start_revision",
    progress_notify: "progress_notify",
    filters: "filters" as enums FilterType,
    prev_kv: "prev_kv",
    watch_id: "watch_id",
    fragment: "fragment",
});

json_message!(WatchCancelRequest { watch_id: "watch_id" });

json_message!(WatchProgressRequest {});

json_message!(WatchResponse {
    header: "header",
    watch_id: "watch_id",
    created: "created",
    canceled: "canceled",
    compact_revision: "compact_revision",
    cancel_reason: "cancel_reason",
    fragment: "fragment",
    events: "events",
});

json_message!(Event {
    r#type: "type" as enum EventType,
    kv: "kv",
    prev_kv: "prev_kv",
});

impl JsonMessage for WatchRequest {
    fn to_json(&self) -> Fields {
        let (name, value) = match &self.request_union {
            Some(RequestUnion::CreateRequest(r)) => ("create_request", r.to_json()),
            Some(RequestUnion::CancelRequest(r)) => ("cancel_request", r.to_json()),
            Some(RequestUnion::ProgressRequest(r)) => ("progress_request", r.to_json()),
            None => return Fields::new(),
        };
        vec![(name, Out::Object(value))]
    }

    fn from_json(object: &Object, path: &str) -> Result<Self, JsonError> {
        let mut request_union = None;
        for (key, value) in object {
            let Some(name) = ["create_request", "cancel_request", "progress_request"]
                .into_iter()
                .find(|name| names_field(key, name))
            else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            if request_union.is_some() {
                return Err(JsonError(format!(
                    "{}: a watch request is one of create_request, cancel_request or progress_request",
                    display_path(path)
                )));
            }
            let path = join(path, name);
            request_union = Some(match name {
                "create_request" => RequestUnion::CreateRequest(from_value(value, &path)?),
                "cancel_request" => RequestUnion::CancelRequest(from_value(value, &path)?),
                _ => RequestUnion::ProgressRequest(from_value(value, &path)?),
            });
        }
        Ok(WatchRequest { request_union })
    }
}

#[cfg(test)]
mod tests {
    use berth_proto::mvccpb::KeyValue;

    use super::super::{parse_request, to_string};
    use super::*;

    #[test]
    fn a_delete_event_names_its_type_and_a_put_leaves_it_out() {
        let kv = |version| KeyValue {
            key: b"w".to_vec(),
            mod_revision: 12,
            version,
            ..Default::default()
        };
        let response = WatchResponse {
            events: vec![
                Event {
                    r#type: EventType::Put as i32,
                    kv: Some(kv(1)),
                    prev_kv: None,
                },
                Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(kv(0)),
                    prev_kv: None,
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            to_string(&response),
            r#"{"events":[{"kv":{"key":"dw==","mod_revision":"12","version":"1"}},{"type":"DELETE","kv":{"key":"dw==","mod_revision":"12"}}]}"#
        );
    }

    #[test]
    fn create_requests_read_with_filters_by_name() {
        let request: WatchRequest = parse_request(
            br#"{"create_request":{"key":"dw==","start_revision":"2","filters":["NOPUT"],"prev_kv":true}}"#,
        )
        .unwrap();
        let Some(RequestUnion::CreateRequest(create)) = request.request_union else {
            panic!("not a create request: {request:?}");
        };
        assert_eq!(
            (create.key, create.start_revision, create.prev_kv),
            (b"w".to_vec(), 2, true)
        );
        assert_eq!(create.filters, [FilterType::Noput as i32]);
        let request: WatchRequest = parse_request(br#"{"progress_request":{}}"#).unwrap();
        assert!(matches!(request.request_union, Some(RequestUnion::ProgressRequest(_))));
    }
}
