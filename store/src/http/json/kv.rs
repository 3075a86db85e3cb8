//! The KV service's messages, with the three oneofs (`RequestOp`, `ResponseOp`,
//! `Compare`'s target) written by hand: JSON names the one variant that is set.

use berth_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use berth_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use berth_proto::etcdserverpb::request_op::Request;
use berth_proto::etcdserverpb::response_op::Response;
use berth_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use berth_proto::mvccpb::KeyValue;
use serde_json::Value;

use super::field::{decode_enum, encode_enum};
use super::{
    Field, Fields, JsonError, JsonMessage, Object, Out, display_path, from_value, join, json_message, names_field,
};

json_message!(ResponseHeader {
    cluster_id: "cluster_id",
    member_id: "member_id",
    revision: "revision",
    raft_term: "raft_term",
});

json_message!(KeyValue {
    key: "key",
    create_revision: "create_revision",
    mod_revision: "mod_revision",
    version: "version",
    value: "value",
    lease: "lease",
});

json_message!(RangeRequest {
    key: "key",
    range_end: "range_end",
    limit: "limit",
    revision: "revision",
    sort_order: "sort_order" as enum SortOrder,
    sort_target: "sort_target" as enum SortTarget,
    serializable: "serializable",
    keys_only: "keys_only",
    count_only: "count_only",
    min_mod_revision: "min_mod_revision",
    max_mod_revision: "max_mod_revision",
    min_create_revision: "min_create_revision",
    max_create_revision: "max_create_revision",
});

json_message!(RangeResponse {
    header: "header",
    kvs: "kvs",
    more: "more",
    count: "count",
});

json_message!(PutRequest {
    key: "key",
    value: "value",
    lease: "lease",
    prev_kv: "prev_kv",
    ignore_value: "ignore_value",
    ignore_lease: "ignore_lease",
});

json_message!(PutResponse {
    header: "header",
    prev_kv: "prev_kv",
});

json_message!(DeleteRangeRequest {
    key: "key",
    range_end: "range_end",
    prev_kv: "prev_kv",
});

json_message!(DeleteRangeResponse {
    header: "header",
    deleted: "deleted",
    prev_kvs: "prev_kvs",
});

json_message!(TxnRequest {
    compare: "compare",
    success: "success",
    failure: "failure",
});

json_message!(TxnResponse {
    header: "header",
    succeeded: "succeeded",
    responses: "responses",
});

json_message!(CompactionRequest {
    revision: "revision",
    physical: "physical",
});

json_message!(CompactionResponse { header: "header" });

/// A oneof's variant found in `object`; two variants at once is an error, as in
/// proto3 JSON.
fn one_variant<'a>(
    object: &'a Object,
    path: &str,
    names: &[&'static str],
) -> Result<Option<(&'static str, &'a Value)>, JsonError> {
    let mut found: Option<(&'static str, &Value)> = None;
    for (key, value) in object {
        let Some(name) = names.iter().find(|name| names_field(key, name)) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        if let Some((first, _)) = found {
            return Err(JsonError(format!(
                "{}: sets both {first} and {name}, which are alternatives",
                display_path(path)
            )));
        }
        found = Some((name, value));
    }
    Ok(found)
}

impl JsonMessage for RequestOp {
    fn to_json(&self) -> Fields {
        let (name, value) = match &self.request {
            Some(Request::RequestRange(r)) => ("request_range", r.to_json()),
            Some(Request::RequestPut(r)) => ("request_put", r.to_json()),
            Some(Request::RequestDeleteRange(r)) => ("request_delete_range", r.to_json()),
            Some(Request::RequestTxn(r)) => ("request_txn", r.to_json()),
            None => return Fields::new(),
        };
        vec![(name, Out::Object(value))]
    }

    fn from_json(object: &Object, path: &str) -> Result<Self, JsonError> {
        let names = ["request_range", "request_put", "request_delete_range", "request_txn"];
        let request = match one_variant(object, path, &names)? {
            None => None,
            Some((name, value)) => {
                let path = join(path, name);
                Some(match name {
                    "request_range" => Request::RequestRange(from_value(value, &path)?),
                    "request_put" => Request::RequestPut(from_value(value, &path)?),
                    "request_delete_range" => Request::RequestDeleteRange(from_value(value, &path)?),
                    _ => Request::RequestTxn(from_value(value, &path)?),
                })
            }
        };
        Ok(RequestOp { request })
    }
}

impl JsonMessage for ResponseOp {
    fn to_json(&self) -> Fields {
        let (name, value) = match &self.response {
            Some(Response::ResponseRange(r)) => ("response_range", r.to_json()),
            Some(Response::ResponsePut(r)) => ("response_put", r.to_json()),
            Some(Response::ResponseDeleteRange(r)) => ("response_delete_range", r.to_json()),
            Some(Response::ResponseTxn(r)) => ("response_txn", r.to_json()),
            None => return Fields::new(),
        };
        vec![(name, Out::Object(value))]
    }

    fn from_json(object: &Object, path: &str) -> Result<Self, JsonError> {
        let names = [
            "response_range",
            "response_put",
            "response_delete_range",
            "response_txn",
        ];
        let response = match one_variant(object, path, &names)? {
            None => None,
            Some((name, value)) => {
                let path = join(path, name);
                Some(match name {
                    "response_range" => Response::ResponseRange(from_value(value, &path)?),
                    "response_put" => Response::ResponsePut(from_value(value, &path)?),
                    "response_delete_range" => Response::ResponseDeleteRange(from_value(value, &path)?),
                    _ => Response::ResponseTxn(from_value(value, &path)?),
                })
            }
        };
        Ok(ResponseOp { response })
    }
}

const TARGETS: [&str; 5] = ["version", "create_revision", "mod_revision", "value", "lease"];

impl JsonMessage for Compare {
    fn to_json(&self) -> Fields {
        let mut fields = Fields::new();
        let mut put = |name: &'static str, value: Option<Out>| {
            if let Some(value) = value {
                fields.push((name, value));
            }
        };
        put("result", encode_enum::<CompareResult>(self.result));
        put("target", encode_enum::<CompareTarget>(self.target));
        put("key", self.key.encode());
        // A oneof that is set is written even at its default (`"version":"0"`).
        match &self.target_union {
            Some(TargetUnion::Version(v)) => put("version", Some(Out::string(v.to_string()))),
            Some(TargetUnion::CreateRevision(v)) => put("create_revision", Some(Out::string(v.to_string()))),
            Some(TargetUnion::ModRevision(v)) => put("mod_revision", Some(Out::string(v.to_string()))),
            Some(TargetUnion::Value(v)) => put("value", Some(v.encode().unwrap_or_else(|| Out::string("")))),
            Some(TargetUnion::Lease(v)) => put("lease", Some(Out::string(v.to_string()))),
            None => {}
        }
        put("range_end", self.range_end.encode());
        fields
    }

    fn from_json(object: &Object, path: &str) -> Result<Self, JsonError> {
        let mut compare = Compare::default();
        for (key, value) in object {
            let field = |name: &str| join(path, name);
            if names_field(key, "result") {
                compare.result = decode_enum::<CompareResult>(value, &field("result"))?;
            } else if names_field(key, "target") {
                compare.target = decode_enum::<CompareTarget>(value, &field("target"))?;
            } else if names_field(key, "key") {
                compare.key = Field::decode(value, &field("key"))?;
            } else if names_field(key, "range_end") {
                compare.range_end = Field::decode(value, &field("range_end"))?;
            }
        }
        compare.target_union = match one_variant(object, path, &TARGETS)? {
            None => None,
            Some((name, value)) => {
                let path = join(path, name);
                Some(match name {
                    "version" => TargetUnion::Version(Field::decode(value, &path)?),
                    "create_revision" => TargetUnion::CreateRevision(Field::decode(value, &path)?),
                    "mod_revision" => TargetUnion::ModRevision(Field::decode(value, &path)?),
                    "value" => TargetUnion::Value(Field::decode(value, &path)?),
                    _ => TargetUnion::Lease(Field::decode(value, &path)?),
                })
            }
        };
        Ok(compare)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{parse_request, to_string};
    use super::*;

    #[test]
    fn a_range_response_reads_as_etcds() {
        let response = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 324952591200643719,
                member_id: 3319814642761637952,
                revision: 2,
                raft_term: 2,
            }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        // As etcd 3.4's gateway answered the same range.
        assert_eq!(
            to_string(&response),
            r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#
        );
    }

    #[test]
    fn a_txn_request_reads_in_either_spelling() {
        let body = json!({
            "compare": [{"key": "YQ==", "result": "EQUAL", "target": "VALUE", "value": "Mg=="},
                        {"key": "YQ==", "target": "MOD", "modRevision": 3}],
            "success": [{"request_put": {"key": "YQ==", "value": "Mw=="}}, {"requestRange": {"key": "YQ==", "rangeEnd": "Yg=="}}],
            "failure": [{"request_delete_range": {"key": "YQ==", "prev_kv": true}}]
        });
        let txn: TxnRequest = parse_request(body.to_string().as_bytes()).unwrap();
        assert_eq!(txn.compare[0].target_union, Some(TargetUnion::Value(b"2".to_vec())));
        assert_eq!(txn.compare[0].target, CompareTarget::Value as i32);
        assert_eq!(txn.compare[1].target_union, Some(TargetUnion::ModRevision(3)));
        assert!(matches!(&txn.success[0].request, Some(Request::RequestPut(p)) if p.value == b"3"));
        assert!(matches!(&txn.success[1].request, Some(Request::RequestRange(r)) if r.range_end == b"b"));
        assert!(matches!(&txn.failure[0].request, Some(Request::RequestDeleteRange(d)) if d.prev_kv));
    }

    #[test]
    fn a_bad_field_deep_in_a_txn_is_named() {
        let body = json!({"success": [{"request_put": {"key": "YQ=="}}, {"request_put": {"key": 5}}]});
        let err = parse_request::<TxnRequest>(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err.0,
            "success[1].request_put.key: expected base64 bytes in a string, got the number 5"
        );
        let body = json!({"compare": [{"key": "YQ==", "version": "1", "value": "YQ=="}]});
        let err = parse_request::<TxnRequest>(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.0, "compare[0]: sets both value and version, which are alternatives");
    }

    #[test]
    fn a_set_oneof_at_its_default_is_written() {
        let compare = Compare {
            key: b"a".to_vec(),
            target: CompareTarget::Version as i32,
            target_union: Some(TargetUnion::Version(0)),
            ..Default::default()
        };
        assert_eq!(to_string(&compare), r#"{"key":"YQ==","version":"0"}"#);
        let back: Compare = parse_request(to_string(&compare).as_bytes()).unwrap();
        assert_eq!(back, compare);
    }
}
