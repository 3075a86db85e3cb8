//! The Maintenance service's messages.

use berth_proto::etcdserverpb::alarm_request::AlarmAction;
use berth_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};

use super::json_message;

json_message!(AlarmRequest {
    action: "action" as enum AlarmAction,
    member_id: "memberID",
    alarm: "alarm" as enum AlarmType,
});

json_message!(AlarmMember {
    member_id: "memberID",
    alarm: "alarm" as enum AlarmType,
});

json_message!(AlarmResponse {
    header: "header",
    alarms: "alarms",
});

json_message!(StatusRequest {});

json_message!(StatusResponse {
    header: "header",
    version: "version",
    db_size: "dbSize",
    leader: "leader",
    raft_index: "raftIndex",
    raft_term: "raftTerm",
    raft_applied_index: "raftAppliedIndex",
    errors: "errors",
    db_size_in_use: "dbSizeInUse",
    is_learner: "isLearner",
});

json_message!(DefragmentRequest {});

json_message!(DefragmentResponse { header: "header" });

json_message!(HashRequest {});

json_message!(HashResponse {
    header: "header",
    hash: "hash",
});

json_message!(HashKvRequest { revision: "revision" });

json_message!(HashKvResponse {
    header: "header",
    hash: "hash",
    compact_revision: "compact_revision",
});

json_message!(SnapshotRequest {});

json_message!(SnapshotResponse {
    header: "header",
    remaining_bytes: "remaining_bytes",
    blob: "blob",
});

json_message!(MoveLeaderRequest { target_id: "targetID" });

json_message!(MoveLeaderResponse { header: "header" });

#[cfg(test)]
mod tests {
    use super::super::{parse_request, to_string};
    use super::*;

    #[test]
    fn status_and_alarms_read_as_etcds() {
        let status = StatusResponse {
            version: "3.4.0".into(),
            db_size: 20480,
            leader: 7,
            raft_index: 20,
            raft_term: 2,
            raft_applied_index: 20,
            db_size_in_use: 16384,
            ..Default::default()
        };
        assert_eq!(
            to_string(&status),
            r#"{"version":"3.4.0","dbSize":"20480","leader":"7","raftIndex":"20","raftTerm":"2","raftAppliedIndex":"20","dbSizeInUse":"16384"}"#
        );
        let alarm = AlarmMember {
            member_id: 7,
            alarm: AlarmType::Nospace as i32,
        };
        assert_eq!(to_string(&alarm), r#"{"memberID":"7","alarm":"NOSPACE"}"#);
        let request: AlarmRequest =
            parse_request(br#"{"action":"DEACTIVATE","memberID":"7","alarm":"NOSPACE"}"#).unwrap();
        assert_eq!(request.action, AlarmAction::Deactivate as i32);
        assert_eq!(request.alarm, AlarmType::Nospace as i32);
        let hash = HashResponse {
            header: None,
            hash: 3151907866,
        };
        assert_eq!(
            to_string(&hash),
            r#"{"hash":3151907866}"#,
            "32-bit integers are numbers"
        );
    }
}
