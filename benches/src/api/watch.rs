//! WATCH: a watch of the namespace's pods opened at a resourceVersion, then one label
//! patch per pod; every patch is one MODIFIED event. Measures how fast events arrive
//! and how long after its write's acknowledgement each one does.
//!
//! ```text
//!  GET …/pods?limit=1                    ──► resourceVersion R (after the creates)
//!  GET …/pods?watch=true&resourceVersion=R   (a connection of its own; 200 once the
//!        │                                    store watch from R+1 is open)
//!  writers: sent_at[i] ──► PATCH pod i {touched: i} ──► 200 ──► acked_at[i]
//!        ▼
//!  reader: each chunk's arrival time ──► its lines ──► pod i's event ──► arrived_at[i]
//!  latency(i) = arrived_at[i] − acked_at[i]   (an event may beat its answer: 0)
//!  and, as berth-bench watch measures it, arrived_at[i] − sent_at[i]
//!
//!  replay: a second watch from the same R, opened after the writes, reads the same
//!  events out of the store's history as fast as the server sends them
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use hyper::Method;
use hyper::body::Incoming;
use serde_json::Value;
use tokio::sync::Notify;

use super::http::{Connection, next_data};
use super::pods::{TOUCHED_LABEL, WriteTimes, collection_path, pod_index};

/// The store's revision now, as a list's resourceVersion.
pub async fn current_resource_version(connection: &mut Connection) -> anyhow::Result<i64> {
    let body = connection
        .get(&format!("{}?limit=1", collection_path()))
        .await?
        .expect(200)?;
    let list: Value = serde_json::from_slice(&body).context("the list is not JSON")?;
    list["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|version| version.parse().ok())
        .context("the list has no resourceVersion")
}

/// An open watch: its response body, read as it arrives, and the connection it came on.
pub struct Watch {
    body: Incoming,
    /// Held so the connection lives as long as the watch.
    _connection: Connection,
}

/// Opens a watch of the namespace's pods after `resource_version` on a connection of
/// its own; returns once the server answered 200, with the body still to be read.
pub async fn open(authority: &str, resource_version: i64) -> anyhow::Result<Watch> {
    let mut connection = Connection::open(authority).await?;
    let path = format!("{}?watch=true&resourceVersion={resource_version}", collection_path());
    let response = connection.send(Method::GET, &path, None).await?;
    let status = response.status().as_u16();
    ensure!(status == 200, "the watch was answered {status}");
    Ok(Watch {
        body: response.into_body(),
        _connection: connection,
    })
}

/// What one watch delivered.
#[derive(Debug)]
pub struct Arrivals {
    /// When pod i's event arrived, by ticket.
    pub arrived_at: Vec<Option<Instant>>,
    /// Events of this run's writes, the first arrival of each.
    pub delivered: u64,
    pub duplicates: u64,
    /// Events that are not a write of this run (other types, other pods).
    pub other_events: u64,
    pub bytes: u64,
    pub last_arrival: Option<Instant>,
    /// Why the stream ended early, if it did.
    pub error: Option<String>,
}

/// Reads the watch until the event of every ticket below `expected` arrived, the
/// stream ends, or `stop` is notified.
pub async fn read_events(mut watch: Watch, expected: u64, stop: Arc<Notify>) -> Arrivals {
    let mut arrivals = Arrivals {
        arrived_at: vec![None; expected as usize],
        delivered: 0,
        duplicates: 0,
        other_events: 0,
        bytes: 0,
        last_arrival: None,
        error: None,
    };
    let mut pending = Vec::new();
    while arrivals.delivered < expected {
        let data = tokio::select! {
            biased;
            _ = stop.notified() => break,
            data = next_data(&mut watch.body) => data,
        };
        let data = match data {
            Ok(Some(data)) => data,
            Ok(None) => {
                arrivals.error = Some("the server ended the watch".to_owned());
                break;
            }
            Err(error) => {
                arrivals.error = Some(format!("{error:#}"));
                break;
            }
        };
        let arrived_at = Instant::now();
        arrivals.bytes += data.len() as u64;
        pending.extend_from_slice(&data);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&byte| byte == b'\n') {
            let line = &pending[start..start + end];
            start += end + 1;
            match serde_json::from_slice::<Value>(line).ok().as_ref().and_then(ticket_of) {
                Some(ticket) if ticket < expected => {
                    let slot = &mut arrivals.arrived_at[ticket as usize];
                    if slot.is_some() {
                        arrivals.duplicates += 1;
                    } else {
                        *slot = Some(arrived_at);
                        arrivals.delivered += 1;
                        arrivals.last_arrival = Some(arrived_at);
                    }
                }
                _ => arrivals.other_events += 1,
            }
        }
        pending.drain(..start);
    }
    arrivals
}

/// The ticket of a MODIFIED event that carries this run's label on its pod.
fn ticket_of(event: &Value) -> Option<u64> {
    if event["type"] != "MODIFIED" {
        return None;
    }
    let metadata = &event["object"]["metadata"];
    let ticket = pod_index(metadata["name"].as_str()?)?;
    let label = metadata["labels"][TOUCHED_LABEL].as_str()?;
    (label.parse::<u64>().ok()? == ticket).then_some(ticket)
}

/// Latencies from each acknowledged write to its event.
#[derive(Debug)]
pub struct Delays {
    /// From the write's acknowledgement (an event that came first counts as 0).
    pub from_ack: Vec<Duration>,
    /// From sending the write.
    pub from_send: Vec<Duration>,
    /// Acknowledged writes whose event never arrived.
    pub missing: u64,
    /// Events that arrived before their write's answer was read.
    pub before_ack: u64,
}

pub fn delays(arrivals: &Arrivals, times: &WriteTimes) -> Delays {
    let mut delays = Delays {
        from_ack: Vec::with_capacity(arrivals.arrived_at.len()),
        from_send: Vec::with_capacity(arrivals.arrived_at.len()),
        missing: 0,
        before_ack: 0,
    };
    for (ticket, arrived_at) in arrivals.arrived_at.iter().enumerate() {
        let (Some(sent_at), Some(acked_at)) = (times.sent_at(ticket as u64), times.acked_at(ticket as u64)) else {
            continue;
        };
        let Some(arrived_at) = *arrived_at else {
            delays.missing += 1;
            continue;
        };
        if arrived_at < acked_at {
            delays.before_ack += 1;
        }
        delays.from_ack.push(arrived_at.saturating_duration_since(acked_at));
        delays.from_send.push(arrived_at.saturating_duration_since(sent_at));
    }
    delays
}

/// Events per second from `since` to the last arrival.
pub fn events_per_s(arrivals: &Arrivals, since: Instant) -> f64 {
    match arrivals.last_arrival {
        Some(last) if last > since => arrivals.delivered as f64 / (last - since).as_secs_f64(),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_this_runs_modifications_count() {
        let event = |kind: &str, name: &str, touched: &str| json!({"type": kind, "object": {"metadata": {"name": name, "labels": {"touched": touched}}}});
        assert_eq!(ticket_of(&event("MODIFIED", "p-00007", "7")), Some(7));
        assert_eq!(ticket_of(&event("ADDED", "p-00007", "7")), None);
        assert_eq!(ticket_of(&event("MODIFIED", "p-00007", "8")), None);
        assert_eq!(ticket_of(&event("MODIFIED", "web", "7")), None);
        assert_eq!(
            ticket_of(&json!({"type": "MODIFIED", "object": {"metadata": {"name": "p-1"}}})),
            None
        );
    }

    #[test]
    fn delays_run_from_the_answer_and_from_the_send_and_an_early_event_counts_as_zero() {
        let times = WriteTimes::new(3);
        for ticket in 0..3 {
            times.record_sent(ticket);
            std::thread::sleep(Duration::from_millis(2));
            times.record_acked(ticket);
        }
        let acked_at = |ticket| times.acked_at(ticket).unwrap();
        let arrivals = Arrivals {
            arrived_at: vec![
                Some(acked_at(0) + Duration::from_millis(5)),
                Some(acked_at(1) - Duration::from_nanos(1)),
                None,
            ],
            delivered: 2,
            duplicates: 0,
            other_events: 0,
            bytes: 0,
            last_arrival: None,
            error: None,
        };
        let delays = delays(&arrivals, &times);
        assert_eq!(delays.from_ack, [Duration::from_millis(5), Duration::ZERO]);
        assert!(delays.from_send[0] >= Duration::from_millis(7), "{delays:?}");
        assert!(delays.from_send[1] >= Duration::from_millis(2), "{delays:?}");
        assert_eq!((delays.missing, delays.before_ack), (1, 1));
    }
}
