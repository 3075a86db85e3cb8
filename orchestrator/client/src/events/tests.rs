use super::*;
use berth_api::objects::{Pod, PodSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_raise_the_count_of_one_event_attached_to_a_lease() {
    let t = crate::testing::store().await;
    let recorder = Recorder::new(t.kv.clone(), "default-scheduler", "");
    let mut pod = Pod::new(named("dev", "web-1"), PodSpec::default());
    pod.metadata.uid = Some("u1".into());
    let reference = reference(&pod);
    assert_eq!(reference.kind.as_deref(), Some("Pod"));
    recorder
        .record(
            &reference,
            EventType::Warning,
            "FailedScheduling",
            "0/2 nodes are available",
        )
        .await;
    recorder
        .record(
            &reference,
            EventType::Warning,
            "FailedScheduling",
            "0/2 nodes are available",
        )
        .await;
    recorder
        .record(
            &reference,
            EventType::Normal,
            "Scheduled",
            "Successfully assigned dev/web-1 to n1",
        )
        .await;
    let (records, _) = t.kv.list(&EVENT.prefix(Some("dev"))).await.unwrap();
    assert_eq!(records.len(), 2, "a repeat is the same event");
    let events: Vec<Event> = records
        .iter()
        .map(|r| serde_json::from_slice(&r.value).unwrap())
        .collect();
    let failed = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
        .unwrap();
    assert_eq!(failed.count, Some(2));
    assert_eq!(failed.involved_object.name.as_deref(), Some("web-1"));
    assert!(failed.metadata.name().starts_with("web-1."));
    assert_eq!(
        failed.source.as_ref().unwrap().component.as_deref(),
        Some("default-scheduler")
    );
    assert!(records.iter().all(|r| r.lease != 0), "every event has a time to live");
    assert_eq!(records[0].lease, records[1].lease, "events of one minute share a lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_events_repeats_at_once_counts_every_one() {
    let t = crate::testing::store().await;
    let recorder = Recorder::new(t.kv.clone(), "replicaset-controller", "");
    let mut rs = Pod::new(named("dev", "web-abc"), PodSpec::default());
    rs.metadata.uid = Some("rs1".into());
    let reference = reference(&rs);
    let burst = (0..20).map(|_| recorder.record(&reference, EventType::Normal, "SuccessfulCreate", "Created pods"));
    futures::future::join_all(burst).await;
    let (records, _) = t.kv.list(&EVENT.prefix(Some("dev"))).await.unwrap();
    assert_eq!(records.len(), 1);
    let event: Event = serde_json::from_slice(&records[0].value).unwrap();
    assert_eq!(event.count, Some(20), "every repeat counted, none lost to a race");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_dropped_mid_write_leaves_the_next_repeat_to_be_written() {
    let t = crate::testing::store().await;
    let recorder = Recorder::new(t.kv.clone(), "replicaset-controller", "");
    let mut rs = Pod::new(named("dev", "web-abc"), PodSpec::default());
    rs.metadata.uid = Some("rs1".into());
    let reference = reference(&rs);
    // Polled once: it takes the event's turn and waits on the store; then dropped.
    let first = recorder.record(&reference, EventType::Normal, "SuccessfulCreate", "Created pods");
    let dropped = tokio::time::timeout(std::time::Duration::ZERO, first).await;
    assert!(dropped.is_err(), "the first recording finished in one poll");
    recorder
        .record(&reference, EventType::Normal, "SuccessfulCreate", "Created pods")
        .await;
    let (records, _) = t.kv.list(&EVENT.prefix(Some("dev"))).await.unwrap();
    assert_eq!(
        records.len(),
        1,
        "the repeat was written, not folded into a dropped turn"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sources_many_events_about_one_object_are_combined_then_limited() {
    let t = crate::testing::store().await;
    let recorder = Recorder::new(t.kv.clone(), "replicaset-controller", "");
    let mut rs = Pod::new(named("dev", "web-abc"), PodSpec::default());
    rs.metadata.uid = Some("rs1".into());
    let reference = reference(&rs);
    for i in 0..40 {
        let message = format!("Created pod: web-abc-{i}");
        recorder
            .record(&reference, EventType::Normal, "SuccessfulCreate", &message)
            .await;
    }
    let (records, _) = t.kv.list(&EVENT.prefix(Some("dev"))).await.unwrap();
    let events: Vec<Event> = records
        .iter()
        .map(|r| serde_json::from_slice(&r.value).unwrap())
        .collect();
    // Nine on their own, then the tenth and on combined into one event, until
    // the burst of 25 is spent: the last 15 are dropped.
    assert_eq!(events.len(), 10, "{events:#?}");
    let combined: Vec<&Event> = (events.iter())
        .filter(|e| e.message.as_deref().unwrap().starts_with(correlator::COMBINED))
        .collect();
    assert_eq!(combined.len(), 1);
    assert_eq!(combined[0].count, Some(16));
    assert_eq!(
        combined[0].message.as_deref(),
        Some("(combined from similar events): Created pod: web-abc-24")
    );
    let single = events.iter().filter(|e| e.count == Some(1)).count();
    assert_eq!(single, 9);
    // Another object has a burst of its own.
    let mut other = rs.clone();
    other.metadata.name = Some("web-def".into());
    other.metadata.uid = Some("rs2".into());
    recorder
        .record(
            &super::reference(&other),
            EventType::Normal,
            "SuccessfulCreate",
            "Created pod: web-def-0",
        )
        .await;
    let (records, _) = t.kv.list(&EVENT.prefix(Some("dev"))).await.unwrap();
    assert_eq!(records.len(), 11);
}

/// On one thread, nothing emitted is written before the emitting loop yields:
/// the first [`MAX_QUEUED_EVENTS`] wait their turn, the rest are dropped.
#[tokio::test]
async fn emitted_events_past_the_queue_are_dropped_and_the_queued_all_written() {
    let t = crate::testing::store().await;
    let recorder = Recorder::new(t.kv.clone(), "default-scheduler", "");
    for i in 0..MAX_QUEUED_EVENTS + 500 {
        let mut pod = Pod::new(named("dev", &format!("web-{i}")), PodSpec::default());
        pod.metadata.uid = Some(format!("u{i}"));
        let message = format!("Successfully assigned dev/web-{i} to n1");
        recorder.emit(reference(&pod), EventType::Normal, "Scheduled", message);
    }
    let recording = recorder.recording.clone();
    assert_eq!(recording.queued.load(Ordering::Relaxed), MAX_QUEUED_EVENTS);
    assert_eq!(recording.dropped.load(Ordering::Relaxed), 500);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while recording.queued.load(Ordering::Relaxed) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queued events are never written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (records, _) = t.kv.list(&EVENT.prefix(Some("dev"))).await.unwrap();
    assert_eq!(records.len(), MAX_QUEUED_EVENTS);
    // The queue has room again.
    let mut pod = Pod::new(named("dev", "late"), PodSpec::default());
    pod.metadata.uid = Some("late".into());
    recorder.emit(reference(&pod), EventType::Normal, "Scheduled", "late".into());
    assert_eq!(recording.queued.load(Ordering::Relaxed), 1);
    assert_eq!(recording.dropped.load(Ordering::Relaxed), 0, "the drops were logged");
}

/// Answers each request, one connection each, with the next of `responses`
/// (status, body), recording the requests' lines and bodies.
async fn scripted(
    listener: tokio::net::TcpListener,
    responses: Vec<(u16, serde_json::Value)>,
) -> Vec<(String, serde_json::Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut seen = Vec::new();
    for (status, body) in responses {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        let (head, length) = loop {
            let n = socket.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
            if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&request[..end]).to_string();
                let length = (head.lines())
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(str::to_string)
                    })
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                request.drain(..end + 4);
                break (head, length);
            }
        };
        while request.len() < length {
            let n = socket.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
        }
        let body_in = serde_json::from_slice(&request).unwrap_or(serde_json::Value::Null);
        seen.push((head.lines().next().unwrap().to_string(), body_in));
        let body = body.to_string();
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
        socket.shutdown().await.ok();
    }
    seen
}

#[tokio::test]
async fn through_the_api_a_new_event_is_posted_and_a_repeat_patched_with_its_count() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut pod = Pod::new(named("dev", "web-1"), PodSpec::default());
    pod.metadata.uid = Some("u1".into());
    let reference = reference(&pod);
    let name = event_name(
        &reference,
        EventType::Normal,
        "Started",
        "Started container c",
        "kubelet",
    );
    let stored = serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "dev", "resourceVersion": "7"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "dev", "uid": "u1"},
        "reason": "Started", "message": "Started container c", "count": 1,
    });
    let not_found = serde_json::json!({"kind": "Status", "code": 404, "reason": "NotFound"});
    let server = tokio::spawn(scripted(
        listener,
        vec![
            (201, stored.clone()),
            (200, stored.clone()),
            (404, not_found),
            (201, stored),
        ],
    ));
    let api = ApiSource::new(Arc::new(crate::http_client::HttpClient::new(vec![url])));
    let recorder = Recorder::through_api(api, "kubelet", "n1");
    for _ in 0..3 {
        recorder
            .record(&reference, EventType::Normal, "Started", "Started container c")
            .await;
    }
    let seen = server.await.unwrap();
    let lines: Vec<&str> = seen.iter().map(|(line, _)| line.as_str()).collect();
    let path = format!("/api/v1/namespaces/dev/events/{name}");
    let post = "POST /api/v1/namespaces/dev/events HTTP/1.1".to_string();
    assert_eq!(
        lines,
        [
            post.clone(),
            format!("PATCH {path} HTTP/1.1"),
            format!("PATCH {path} HTTP/1.1"),
            post,
        ],
        "nodes may not read events: counted here, never a GET"
    );
    let created = &seen[0].1;
    assert_eq!(created["count"], 1);
    assert_eq!(
        created["source"],
        serde_json::json!({"component": "kubelet", "host": "n1"})
    );
    assert_eq!(created["involvedObject"]["uid"], "u1");
    assert_eq!(seen[1].1["count"], 2);
    assert!(seen[1].1["lastTimestamp"].is_string());
    assert_eq!(seen[3].1["count"], 3, "gone meanwhile: created again with its count");
}
