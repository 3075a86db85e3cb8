//! The `Events:` block every description ends with, as kubectl prints it: the
//! events about the object, oldest first, with their age and how often they
//! happened (`2m (x3 over 5m)`).

use std::time::SystemTime;

use super::text::Text;
use berth_api::kinds::event::Event;
use berth_api::time::age_of;

pub fn events(events: &[Event], now: SystemTime) -> String {
    let mut text = Text::default();
    if events.is_empty() {
        text.line(0, "Events:\t<none>");
        return text.finish();
    }
    let mut events: Vec<&Event> = events.iter().collect();
    events.sort_by_key(|e| {
        e.last_timestamp
            .clone()
            .or_else(|| e.first_timestamp.clone())
            .or_else(|| e.metadata.creation_timestamp.clone())
    });
    text.line(0, "Events:");
    text.line(1, "Type\tReason\tAge\tFrom\tMessage");
    text.line(1, "----\t------\t----\t----\t-------");
    for event in events {
        let first = event
            .first_timestamp
            .as_ref()
            .or(event.metadata.creation_timestamp.as_ref());
        let last = event.last_timestamp.as_ref().or(first);
        let count = event.count.unwrap_or(1);
        let age = if count > 1 {
            format!("{} (x{count} over {})", age_of(last, now), age_of(first, now))
        } else {
            age_of(last, now)
        };
        let source = event.source.clone().unwrap_or_default();
        let from = match (source.component.as_deref(), source.host.as_deref()) {
            (Some(component), Some(host)) if !host.is_empty() => format!("{component}, {host}"),
            (Some(component), _) => component.to_string(),
            _ => event.reporting_component.clone().unwrap_or_default(),
        };
        text.line(
            1,
            format!(
                "{}\t{}\t{age}\t{from}\t{}",
                event.type_.as_deref().unwrap_or_default(),
                event.reason.as_deref().unwrap_or_default(),
                event.message.as_deref().unwrap_or_default().trim()
            ),
        );
    }
    text.finish()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use berth_api::time::from_system_time;

    #[test]
    fn events_read_as_kubectl_prints_them() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |ago: u64| Some(from_system_time(now - Duration::from_secs(ago)));
        assert_eq!(events(&[], now), "Events:  <none>\n");
        let scheduled: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p.1"}, "involvedObject": {"kind": "Pod", "name": "p"},
            "type": "Normal", "reason": "Scheduled", "message": "Successfully assigned default/p to n1",
            "source": {"component": "default-scheduler"}, "count": 1}))
        .unwrap();
        let scheduled = Event {
            first_timestamp: at(600),
            last_timestamp: at(600),
            ..scheduled
        };
        let backoff = Event {
            type_: Some("Warning".into()),
            reason: Some("BackOff".into()),
            message: Some("Back-off restarting failed container".into()),
            source: Some(berth_api::kinds::event::EventSource {
                component: Some("kubelet".into()),
                host: Some("n1".into()),
            }),
            count: Some(3),
            first_timestamp: at(300),
            last_timestamp: at(20),
            ..scheduled.clone()
        };
        assert_eq!(
            events(&[backoff, scheduled], now),
            "\
Events:
  Type     Reason     Age               From               Message
  ----     ------     ----              ----               -------
  Normal   Scheduled  10m               default-scheduler  Successfully assigned default/p to n1
  Warning  BackOff    20s (x3 over 5m)  kubelet, n1        Back-off restarting failed container
"
        );
    }
}
