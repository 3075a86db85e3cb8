//! The Lease service's messages (etcd spells their fields `ID` and `TTL`).

use berth_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};

use super::json_message;

json_message!(LeaseGrantRequest { ttl: "TTL", id: "ID" });

json_message!(LeaseGrantResponse {
    header: "header",
    id: "ID",
    ttl: "TTL",
    error: "error",
});

json_message!(LeaseRevokeRequest { id: "ID" });

json_message!(LeaseRevokeResponse { header: "header" });

json_message!(LeaseKeepAliveRequest { id: "ID" });

json_message!(LeaseKeepAliveResponse {
    header: "header",
    id: "ID",
    ttl: "TTL",
});

json_message!(LeaseTimeToLiveRequest { id: "ID", keys: "keys" });

json_message!(LeaseTimeToLiveResponse {
    header: "header",
    id: "ID",
    ttl: "TTL",
    granted_ttl: "grantedTTL",
    keys: "keys",
});

json_message!(LeaseLeasesRequest {});

json_message!(LeaseStatus { id: "ID" });

json_message!(LeaseLeasesResponse {
    header: "header",
    leases: "leases",
});

#[cfg(test)]
mod tests {
    use super::super::{parse_request, to_string};
    use super::*;

    #[test]
    fn leases_speak_id_and_ttl() {
        let request: LeaseGrantRequest = parse_request(br#"{"TTL":"30","ID":1234}"#).unwrap();
        assert_eq!((request.ttl, request.id), (30, 1234));
        let response = LeaseTimeToLiveResponse {
            id: 1234,
            ttl: 29,
            granted_ttl: 30,
            keys: vec![b"l".to_vec()],
            ..Default::default()
        };
        assert_eq!(
            to_string(&response),
            r#"{"ID":"1234","TTL":"29","grantedTTL":"30","keys":["bA=="]}"#
        );
    }
}
