//! The Cluster service's messages.

use berth_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};

use super::json_message;

json_message!(Member {
    id: "ID",
    name: "name",
    peer_ur_ls: "peerURLs",
    client_ur_ls: "clientURLs",
    is_learner: "isLearner",
});

json_message!(MemberAddRequest {
    peer_ur_ls: "peerURLs",
    is_learner: "isLearner",
});

json_message!(MemberAddResponse {
    header: "header",
    member: "member",
    members: "members",
});

json_message!(MemberRemoveRequest { id: "ID" });

json_message!(MemberRemoveResponse {
    header: "header",
    members: "members",
});

json_message!(MemberUpdateRequest {
    id: "ID",
    peer_ur_ls: "peerURLs",
});

json_message!(MemberUpdateResponse {
    header: "header",
    members: "members",
});

json_message!(MemberListRequest {
    linearizable: "linearizable"
});

json_message!(MemberListResponse {
    header: "header",
    members: "members",
});

json_message!(MemberPromoteRequest { id: "ID" });

json_message!(MemberPromoteResponse {
    header: "header",
    members: "members",
});

#[cfg(test)]
mod tests {
    use super::super::to_string;
    use super::*;

    #[test]
    fn a_member_reads_as_etcds() {
        let member = Member {
            id: 3319814642761637952,
            name: "default".into(),
            peer_ur_ls: vec!["http://127.0.0.1:23800".into()],
            client_ur_ls: vec!["http://127.0.0.1:23790".into()],
            is_learner: false,
        };
        assert_eq!(
            to_string(&member),
            r#"{"ID":"3319814642761637952","name":"default","peerURLs":["http://127.0.0.1:23800"],"clientURLs":["http://127.0.0.1:23790"]}"#
        );
    }
}
