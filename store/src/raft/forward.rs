//! What the leader answers a batch that a follower forwarded on a raft stream
//! ([`Kind::ForwardBatch`](super::wire::Kind)): each command's outcome, errors
//! included, with their variants and numbers, so that the follower's client sees the
//! same [`StoreError`] as a client of the leader would.
//!
//! The answer is bincode (`raft::encode`) of [`ForwardOutcome`]. Earlier versions
//! answered a forwarded batch in another form (errors as a gRPC status's code and
//! text) under another request kind; a mixed-version cluster is not supported, and
//! the kind changed with the form so that the two sides of an upgrade refuse each
//! other's forwarded batches before anything is written instead of misreading the
//! answer.

use serde::{Deserialize, Serialize};

use super::types::Response;
use crate::error::StoreError;

/// The leader's answer to a forwarded batch. A variant is known by its position:
/// add new ones at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ForwardOutcome {
    /// The batch was written: one outcome per command, in order.
    Applied(Response),
    /// This replica does not lead (any more): nothing was written.
    NotLeader,
    /// The write failed as a whole; whether it was written depends on the error, as
    /// on the leader itself (a timeout leaves it unknown).
    Failed(StoreError),
}

#[cfg(test)]
mod tests {
    use berth_proto::berthpb::command_result;
    use berth_proto::etcdserverpb::{PutResponse, ResponseHeader};

    use super::*;
    use crate::raft::{decode, encode};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The bytes a follower reads, per variant: an outcome is a `Result` (0 ok with the
    /// protobuf `CommandResult`, 1 error with the error's serde form, see `error`).
    #[test]
    fn every_answer_keeps_its_encoding() {
        let put = command_result::Result::Put(PutResponse {
            header: Some(ResponseHeader {
                revision: 7,
                ..Default::default()
            }),
            prev_kv: None,
        });
        let compacted = StoreError::Compacted {
            requested: 3,
            compacted: 5,
        };
        let cases = [
            (
                ForwardOutcome::Applied(Response(vec![Ok(put), Err(compacted.clone())])),
                concat!(
                    "00000000",                                 // Applied
                    "0000000000000002",                         // two outcomes
                    "00000000",                                 // Ok
                    "0000000000000006",                         // six bytes of protobuf
                    "0a040a021807",                             // put { header { revision: 7 } }
                    "00000001",                                 // Err
                    "0000000700000000000000030000000000000005", // Compacted { 3, 5 }
                ),
            ),
            (ForwardOutcome::NotLeader, "00000001"),
            (
                ForwardOutcome::Failed(StoreError::Timeout),
                concat!("00000002", "0000000f"),
            ),
        ];
        for (answer, golden) in cases {
            let bytes = encode(&answer).unwrap();
            assert_eq!(hex(&bytes), golden, "{answer:?}");
            assert_eq!(decode::<ForwardOutcome>(&bytes).unwrap(), answer);
        }
    }

    #[test]
    fn an_outcome_without_a_response_is_refused() {
        // Ok with an empty protobuf `CommandResult`: no response inside.
        let bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(decode::<ForwardOutcome>(&bytes).is_err());
    }
}
