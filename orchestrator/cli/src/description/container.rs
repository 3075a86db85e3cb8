//! One container's block, in a pod (with its status) and in a pod template (without).

use super::text::{Text, bool_text, time_text};
use crate::table::{state_of, text as field};
use berth_api::objects::{Container, ContainerPort, ContainerState, ContainerStatus};

fn ports(container: &Container) -> (String, String) {
    let join = |ports: Vec<String>| {
        if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports.join(", ")
        }
    };
    let ports = container.ports.as_deref().unwrap_or_default();
    let protocol = |p: &ContainerPort| p.protocol.clone().unwrap_or_else(|| "TCP".into());
    let container_ports = ports
        .iter()
        .map(|p| format!("{}/{}", p.container_port, protocol(p)))
        .collect();
    let host_ports = ports
        .iter()
        .map(|p| format!("{}/{}", p.host_port.unwrap_or(0), protocol(p)))
        .collect();
    (join(container_ports), join(host_ports))
}

/// One container, with its status when the pod has one. `in_template` indents
/// the name by one more space, as kubectl does under `Pod Template:`.
pub(super) fn container(text: &mut Text, c: &Container, status: Option<&ContainerStatus>, in_template: bool) {
    text.line(1, format!("{}{}:", if in_template { " " } else { "" }, c.name));
    text.line(
        2,
        format!(
            "Image:\t{}",
            match field(&c.image) {
                "" => "<none>",
                image => image,
            }
        ),
    );
    let (ports, host_ports) = ports(c);
    let plural = if ports.contains(',') { "s" } else { "" };
    text.line(2, format!("Port{plural}:\t{ports}"));
    text.line(2, format!("Host Port{plural}:\t{host_ports}"));
    for (title, words) in [("Command", &c.command), ("Args", &c.args)] {
        let words = words.as_deref().unwrap_or_default();
        if !words.is_empty() {
            text.line(2, format!("{title}:"));
            for word in words.iter().flat_map(|w| w.split('\n')) {
                text.line(3, word);
            }
        }
    }
    if let Some(status) = status {
        state(text, "State", &state_of(&status.state));
        let last_state = state_of(&status.last_state);
        if last_state.terminated.is_some() {
            state(text, "Last State", &last_state);
        }
        text.line(2, format!("Ready:\t{}", bool_text(status.ready)));
        text.line(2, format!("Restart Count:\t{}", status.restart_count));
    }
    let resources = c.resources.clone().unwrap_or_default();
    for (title, quantities) in [("Limits", &resources.limits), ("Requests", &resources.requests)] {
        let Some(quantities) = quantities.as_ref().filter(|q| !q.is_empty()) else {
            continue;
        };
        text.line(2, format!("{title}:"));
        for (name, quantity) in quantities {
            text.line(3, format!("{name}:\t{}", quantity.0));
        }
    }
    let env = c.env.as_deref().unwrap_or_default();
    if env.is_empty() {
        text.line(2, "Environment:\t<none>");
    } else {
        text.line(2, "Environment:");
        for env in env {
            text.line(3, format!("{}:\t{}", env.name, field(&env.value)));
        }
    }
    if !field(&c.working_dir).is_empty() {
        text.line(2, format!("Working Dir:\t{}", field(&c.working_dir)));
    }
}

fn state(text: &mut Text, title: &str, state: &ContainerState) {
    if let Some(running) = &state.running {
        text.line(2, format!("{title}:\tRunning"));
        text.line(3, format!("Started:\t{}", time_text(running.started_at.as_ref())));
    } else if let Some(terminated) = &state.terminated {
        text.line(2, format!("{title}:\tTerminated"));
        if !field(&terminated.reason).is_empty() {
            text.line(3, format!("Reason:\t{}", field(&terminated.reason)));
        }
        text.line(3, format!("Exit Code:\t{}", terminated.exit_code));
        if let Some(signal) = terminated.signal.filter(|s| *s > 0) {
            text.line(3, format!("Signal:\t{signal}"));
        }
        text.line(3, format!("Started:\t{}", time_text(terminated.started_at.as_ref())));
        text.line(3, format!("Finished:\t{}", time_text(terminated.finished_at.as_ref())));
    } else {
        text.line(2, format!("{title}:\tWaiting"));
        if let Some(waiting) = &state.waiting {
            if !field(&waiting.reason).is_empty() {
                text.line(3, format!("Reason:\t{}", field(&waiting.reason)));
            }
            if !field(&waiting.message).is_empty() {
                text.line(3, format!("Message:\t{}", field(&waiting.message)));
            }
        }
    }
}
