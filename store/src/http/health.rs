//! `/health`, as etcd answers it: `{"health":"true"}`, or 503 with
//! `{"health":"false","reason":"..."}` while a NOSPACE or CORRUPT alarm is active,
//! there is no leader, or a linearizable read does not come back in time (a replica
//! cut off from its quorum may still believe in a leader).

use std::time::Duration;

use berth_proto::etcdserverpb::{AlarmType, RangeRequest};
use hyper::StatusCode;

use super::response::{self, HttpResponse};
use crate::store::Store;

/// How long the read that proves a quorum may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn health(store: &Store) -> HttpResponse {
    match unhealthy_reason(store).await {
        None => response::json(StatusCode::OK, r#"{"health":"true"}"#.to_string()),
        Some(reason) => response::json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"health": "false", "reason": reason}).to_string(),
        ),
    }
}

async fn unhealthy_reason(store: &Store) -> Option<String> {
    let alarms: Vec<&str> = store
        .alarms()
        .iter()
        .filter_map(|member| match AlarmType::try_from(member.alarm) {
            Ok(AlarmType::Nospace) => Some("ALARM NOSPACE"),
            Ok(AlarmType::Corrupt) => Some("ALARM CORRUPT"),
            _ => None,
        })
        .collect();
    if let Some(first) = alarms.first() {
        return Some((*first).to_string());
    }
    if store.current_leader().is_none() {
        return Some("RAFT NO LEADER".into());
    }
    let read = RangeRequest {
        key: b"health".to_vec(),
        count_only: true,
        ..Default::default()
    };
    match tokio::time::timeout(READ_TIMEOUT, store.range(read)).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("QGET ERROR: {e}")),
        Err(_) => Some("QGET ERROR: timed out".into()),
    }
}
