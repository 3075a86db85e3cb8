//! One container's block, in a pod (with its status) and in a pod template (without).

use super::text::{Text, bool_text, rfc1123z};
use berth_api::objects::{Container, ContainerState, ContainerStatus};

fn ports(container: &Container) -> (String, String) {
    let join = |ports: Vec<String>| {
        if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports.join(", ")
        }
    };
    let container_ports = container
        .ports
        .iter()
        .map(|p| format!("{}/TCP", p.container_port))
        .collect();
    let host_ports = container
        .ports
        .iter()
        .map(|p| format!("{}/TCP", p.host_port.unwrap_or(0)))
        .collect();
    (join(container_ports), join(host_ports))
}

/// One container, with its status when the pod has one. `in_template` indents
/// the name by one more space, as kubectl does under `Pod Template:`.
pub(super) fn container(text: &mut Text, c: &Container, status: Option<&ContainerStatus>, in_template: bool) {
    text.line(1, format!("{}{}:", if in_template { " " } else { "" }, c.name));
    text.line(
        2,
        format!("Image:\t{}", if c.image.is_empty() { "<none>" } else { &c.image }),
    );
    let (ports, host_ports) = ports(c);
    let plural = if ports.contains(',') { "s" } else { "" };
    text.line(2, format!("Port{plural}:\t{ports}"));
    text.line(2, format!("Host Port{plural}:\t{host_ports}"));
    for (title, words) in [("Command", &c.command), ("Args", &c.args)] {
        if !words.is_empty() {
            text.line(2, format!("{title}:"));
            for word in words.iter().flat_map(|w| w.split('\n')) {
                text.line(3, word);
            }
        }
    }
    if let Some(status) = status {
        state(text, "State", &status.state);
        if status.last_state.terminated.is_some() {
            state(text, "Last State", &status.last_state);
        }
        text.line(2, format!("Ready:\t{}", bool_text(status.ready)));
        text.line(2, format!("Restart Count:\t{}", status.restart_count));
    }
    for (title, quantities) in [("Limits", &c.resources.limits), ("Requests", &c.resources.requests)] {
        if !quantities.is_empty() {
            text.line(2, format!("{title}:"));
            for (name, quantity) in quantities {
                text.line(3, format!("{name}:\t{quantity}"));
            }
        }
    }
    if c.env.is_empty() {
        text.line(2, "Environment:\t<none>");
    } else {
        text.line(2, "Environment:");
        for env in &c.env {
            text.line(3, format!("{}:\t{}", env.name, env.value));
        }
    }
    if !c.working_dir.is_empty() {
        text.line(2, format!("Working Dir:\t{}", c.working_dir));
    }
}

fn state(text: &mut Text, title: &str, state: &ContainerState) {
    if let Some(running) = &state.running {
        text.line(2, format!("{title}:\tRunning"));
        text.line(3, format!("Started:\t{}", rfc1123z(&running.started_at)));
    } else if let Some(terminated) = &state.terminated {
        text.line(2, format!("{title}:\tTerminated"));
        if !terminated.reason.is_empty() {
            text.line(3, format!("Reason:\t{}", terminated.reason));
        }
        text.line(3, format!("Exit Code:\t{}", terminated.exit_code));
        if let Some(signal) = terminated.signal.filter(|s| *s > 0) {
            text.line(3, format!("Signal:\t{signal}"));
        }
        text.line(3, format!("Started:\t{}", rfc1123z(&terminated.started_at)));
        text.line(3, format!("Finished:\t{}", rfc1123z(&terminated.finished_at)));
    } else {
        text.line(2, format!("{title}:\tWaiting"));
        if let Some(waiting) = &state.waiting {
            if !waiting.reason.is_empty() {
                text.line(3, format!("Reason:\t{}", waiting.reason));
            }
            if !waiting.message.is_empty() {
                text.line(3, format!("Message:\t{}", waiting.message));
            }
        }
    }
}
