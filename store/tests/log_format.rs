//! Golden bytes for what berth writes into its Raft log. A log written by this
//! version must read the same way in every later one: if one of these tests fails,
//! the change broke the on-disk format. Add a new variant with a new field number
//! instead of changing an old one.

use berth_proto::Message;
use berth_proto::berthpb::{Command, CommandBatch, command};
use berth_proto::etcdserverpb::{
    AlarmRequest, AlarmType, CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest,
    PutRequest, RequestOp, TxnRequest, alarm_request, compare, request_op,
};
use berth_store::raft::{Entry, LogId, Request, decode, encode};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn golden(cmd: command::Command) -> String {
    hex(&Command { command: Some(cmd) }.encode_to_vec())
}

#[test]
fn every_command_variant_keeps_its_encoding() {
    let put = PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        lease: 7,
        prev_kv: true,
        ..Default::default()
    };
    assert_eq!(golden(command::Command::Put(put.clone())), "0a0a0a016b12017618072001");
    let delete = DeleteRangeRequest {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        prev_kv: true,
    };
    assert_eq!(golden(command::Command::DeleteRange(delete)), "12080a01611201621801");
    let txn = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Mod as i32,
            key: b"k".to_vec(),
            target_union: Some(compare::TargetUnion::ModRevision(3)),
            range_end: Vec::new(),
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(put)),
        }],
        failure: Vec::new(),
    };
    assert_eq!(
        golden(command::Command::Txn(txn)),
        "1a170a0710021a016b3003120c120a0a016b12017618072001"
    );
    assert_eq!(
        golden(command::Command::Compaction(CompactionRequest {
            revision: 9,
            physical: true
        })),
        "220408091001"
    );
    assert_eq!(
        golden(command::Command::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 42 })),
        "2a040805102a"
    );
    assert_eq!(
        golden(command::Command::LeaseRevoke(LeaseRevokeRequest { id: 42 })),
        "3202082a"
    );
    assert_eq!(
        golden(command::Command::Alarm(AlarmRequest {
            action: alarm_request::AlarmAction::Deactivate as i32,
            member_id: 42,
            alarm: AlarmType::Nospace as i32,
        })),
        "3a060802102a1801"
    );
}

#[test]
fn a_log_entry_keeps_its_encoding() {
    let batch = CommandBatch {
        commands: vec![Command {
            command: Some(command::Command::Put(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        }],
        initial_revision: 0,
    };
    let entry = Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(2, 1), 5),
        payload: openraft::EntryPayload::Normal(Request::new(&batch)),
    };
    let bytes = encode(&entry).unwrap();
    assert_eq!(
        hex(&bytes),
        "00000000000000020000000000000001000000000000000500000001000000000000000a0a080a060a016b120176"
    );
    let back: Entry = decode(&bytes).unwrap();
    assert_eq!(back.log_id, entry.log_id);
    match back.payload {
        openraft::EntryPayload::Normal(request) => assert_eq!(request.batch().unwrap(), batch),
        other => panic!("decoded {other:?}"),
    }
}

/// The numbering an entry names (see `CommandBatch.initial_revision`): field 2, and
/// an entry of an earlier version, without it, reads as 0.
#[test]
fn an_entrys_initial_revision_keeps_its_encoding() {
    let batch = CommandBatch {
        commands: Vec::new(),
        initial_revision: 1,
    };
    assert_eq!(hex(&batch.encode_to_vec()), "1001");
    let earlier = CommandBatch::decode(&[0x0a, 0x00][..]).unwrap();
    assert_eq!((earlier.commands.len(), earlier.initial_revision), (1, 0));
}

#[test]
fn an_unknown_command_is_not_silently_skipped() {
    // Field 14 of the oneof does not exist in this version.
    let unknown = [0x72u8, 0x00];
    let cmd = Command::decode(unknown.as_slice()).unwrap();
    assert!(
        cmd.command.is_none(),
        "decodes to an empty command, which apply refuses"
    );
}
