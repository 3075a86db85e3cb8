//! NetworkPolicies (`networking.k8s.io/v1`): which traffic the pods a policy
//! selects accept (ingress) and send (egress). Flat (a spec, no status), stored as
//! served under `/registry/networkpolicies/<ns>/<name>`. The agents enforce them in
//! their packet filter (berth-node's netpol/).
//!
//! Written policies get Kubernetes' defaults: `policyTypes` is `Ingress`, plus
//! `Egress` when egress rules are given, and a port's protocol is TCP.

use std::net::IpAddr;
use std::time::SystemTime;

use super::cells::{self, Cells};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::meta::LabelSelector;
use crate::validation::FieldError;
use crate::validation::service::port_name_problem;

pub use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};

/// The namespace label that makes a namespace's pods accept ingress only from pods
/// of the same namespace (and what its NetworkPolicies allow), as an implied policy
/// would; `berth server --isolate-namespaces` puts it on new namespaces.
pub const ISOLATION_LABEL: &str = "berth.io/isolation";
/// [`ISOLATION_LABEL`]'s value that isolates; any other (`none`), or no label, does not.
pub const ISOLATE_NAMESPACE: &str = "namespace";

/// `policyTypes`' values.
pub const INGRESS: &str = "Ingress";
pub const EGRESS: &str = "Egress";

pub static NETWORK_POLICY: KindDescriptor = KindDescriptor {
    group: "networking.k8s.io",
    version: "v1",
    kind: "NetworkPolicy",
    plural: "networkpolicies",
    singular: "networkpolicy",
    short_names: &["netpol"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new(
            "Pod-Selector",
            "string",
            "",
            "Selects the pods to which this NetworkPolicy object applies.",
        ),
        PrinterColumn::AGE,
    ],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<NetworkPolicy>,
    defaults,
    validate,
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<NetworkPolicy>(),
};

flat_kind!(NetworkPolicy, NETWORK_POLICY);

fn defaults(object: &mut Object) {
    if let Some(policy) = object.downcast_mut::<NetworkPolicy>() {
        default_policy(policy);
    }
}

/// Kubernetes' `SetDefaults_NetworkPolicy` and `SetDefaults_NetworkPolicyPort`; the
/// spec and its pod selector are always there (`{}`), as Kubernetes serves them.
pub fn default_policy(policy: &mut NetworkPolicy) {
    let spec = policy.spec.get_or_insert_with(Default::default);
    spec.pod_selector.get_or_insert_with(Default::default);
    let ingress_ports = spec
        .ingress
        .iter_mut()
        .flatten()
        .flat_map(|r| r.ports.iter_mut().flatten());
    let egress_ports = spec
        .egress
        .iter_mut()
        .flatten()
        .flat_map(|r| r.ports.iter_mut().flatten());
    for port in ingress_ports.chain(egress_ports) {
        port.protocol.get_or_insert_with(|| "TCP".into());
    }
    if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
        let mut types = vec![INGRESS.to_string()];
        if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
            types.push(EGRESS.into());
        }
        spec.policy_types = Some(types);
    }
}

/// Whether the policy isolates its pods for `policy_type` (`Ingress`, `Egress`),
/// reading `policyTypes` as defaulted.
pub fn applies_to(spec: &NetworkPolicySpec, policy_type: &str) -> bool {
    match &spec.policy_types {
        Some(types) if !types.is_empty() => types.iter().any(|t| t == policy_type),
        _ => policy_type == INGRESS || spec.egress.as_ref().is_some_and(|e| !e.is_empty()),
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(policy) = object.downcast_ref::<NetworkPolicy>() {
        validate_spec(policy.spec.as_ref().unwrap_or(&NetworkPolicySpec::default()), errors);
    }
}

/// Kubernetes' `ValidateNetworkPolicySpec`, with its messages.
pub fn validate_spec(spec: &NetworkPolicySpec, errors: &mut Vec<FieldError>) {
    let mut error = |field: String, message: String| errors.push(FieldError { field, message });
    if let Some(selector) = &spec.pod_selector {
        label_selector(selector, "spec.podSelector", &mut error);
    }
    let ingress = spec.ingress.iter().flatten().map(|r| (&r.ports, &r.from));
    let egress = spec.egress.iter().flatten().map(|r| (&r.ports, &r.to));
    let rules = ingress
        .map(|rule| ("ingress", "from", rule))
        .chain(egress.map(|rule| ("egress", "to", rule)));
    let mut index = std::collections::BTreeMap::<&str, usize>::new();
    for (direction, peers_name, (ports, peers)) in rules {
        let i = index.entry(direction).or_default();
        let at = format!("spec.{direction}[{i}]");
        *i += 1;
        for (j, port) in ports.iter().flatten().enumerate() {
            validate_port(port, &format!("{at}.ports[{j}]"), &mut error);
        }
        for (j, peer) in peers.iter().flatten().enumerate() {
            validate_peer(peer, &format!("{at}.{peers_name}[{j}]"), &mut error);
        }
    }
    let types = spec.policy_types.as_deref().unwrap_or_default();
    if types.len() > 2 {
        error(
            "spec.policyTypes".into(),
            format!("Invalid value: {types:?}: may not specify more than two policyTypes"),
        );
        return;
    }
    for (i, policy_type) in types.iter().enumerate() {
        if policy_type != INGRESS && policy_type != EGRESS {
            error(
                format!("spec.policyTypes[{i}]"),
                format!("Unsupported value: {policy_type:?}: supported values: \"{INGRESS}\", \"{EGRESS}\""),
            );
        }
    }
}

fn validate_port(port: &NetworkPolicyPort, at: &str, error: &mut impl FnMut(String, String)) {
    use crate::objects::IntOrString;
    if let Some(protocol) = port.protocol.as_deref()
        && !["TCP", "UDP", "SCTP"].contains(&protocol)
    {
        error(
            format!("{at}.protocol"),
            format!("Unsupported value: {protocol:?}: supported values: \"TCP\", \"UDP\", \"SCTP\""),
        );
    }
    const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
    match &port.port {
        Some(IntOrString::Int(number)) => {
            if !(1..=65535).contains(number) {
                error(format!("{at}.port"), format!("Invalid value: {number}: {PORT_RANGE}"));
            }
            if let Some(end) = port.end_port {
                if end < *number {
                    error(
                        format!("{at}.endPort"),
                        format!("Invalid value: {number}: must be greater than or equal to `port`"),
                    );
                }
                if !(1..=65535).contains(&end) {
                    error(format!("{at}.endPort"), format!("Invalid value: {end}: {PORT_RANGE}"));
                }
            }
        }
        Some(IntOrString::String(name)) => {
            if let Some(end) = port.end_port {
                error(
                    format!("{at}.endPort"),
                    format!("Invalid value: {end}: may not be specified when `port` is non-numeric"),
                );
            }
            if let Some(problem) = port_name_problem(name) {
                error(format!("{at}.port"), format!("Invalid value: {name:?}: {problem}"));
            }
        }
        None => {
            if let Some(end) = port.end_port {
                error(
                    format!("{at}.endPort"),
                    format!("Invalid value: {end}: may not be specified when `port` is not specified"),
                );
            }
        }
    }
}

fn validate_peer(peer: &NetworkPolicyPeer, at: &str, error: &mut impl FnMut(String, String)) {
    let mut count = 0;
    if let Some(selector) = &peer.pod_selector {
        count += 1;
        label_selector(selector, &format!("{at}.podSelector"), error);
    }
    if let Some(selector) = &peer.namespace_selector {
        count += 1;
        label_selector(selector, &format!("{at}.namespaceSelector"), error);
    }
    if let Some(block) = &peer.ip_block {
        count += 1;
        validate_ip_block(block, &format!("{at}.ipBlock"), error);
    }
    if count == 0 {
        error(at.into(), "Required value: must specify a peer".into());
    } else if count > 1 && peer.ip_block.is_some() {
        error(
            at.into(),
            "Forbidden: may not specify both ipBlock and another peer".into(),
        );
    }
}

const INVALID_CIDR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// `address/prefix`, IPv4 or IPv6, as Go's `ParseCIDR` reads one (host bits may be
/// set): the network's address and the prefix length.
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, len) = text.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let network = match address {
        IpAddr::V4(v4) if len <= 32 => {
            IpAddr::V4((u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)).into())
        }
        IpAddr::V6(v6) if len <= 128 => {
            IpAddr::V6((u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)).into())
        }
        _ => return None,
    };
    Some((network, len))
}

/// Whether the network `inner` lies in `outer` (both from [`parse_cidr`]).
fn contains(outer: (IpAddr, u8), address: IpAddr) -> bool {
    match (outer.0, address) {
        (IpAddr::V4(net), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(outer.1)).unwrap_or(0);
            u32::from(a) & mask == u32::from(net)
        }
        (IpAddr::V6(net), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(outer.1)).unwrap_or(0);
            u128::from(a) & mask == u128::from(net)
        }
        _ => false,
    }
}

/// Kubernetes' `ValidateIPBlock`: a valid `cidr`, and each `except` a strict subset of it.
fn validate_ip_block(block: &IPBlock, at: &str, error: &mut impl FnMut(String, String)) {
    if block.cidr.is_empty() {
        error(format!("{at}.cidr"), "Required value".into());
        return;
    }
    let Some(cidr) = parse_cidr(&block.cidr) else {
        error(
            format!("{at}.cidr"),
            format!("Invalid value: {:?}: {INVALID_CIDR}", block.cidr),
        );
        return;
    };
    for (i, except_text) in block.except.iter().flatten().enumerate() {
        let field = format!("{at}.except[{i}]");
        let Some(except) = parse_cidr(except_text) else {
            error(field, format!("Invalid value: {except_text:?}: {INVALID_CIDR}"));
            continue;
        };
        if !contains(cidr, except.0) || cidr.1 >= except.1 {
            error(
                field,
                format!("Invalid value: {except_text:?}: must be a strict subset of `cidr`"),
            );
        }
    }
}

fn label_selector(selector: &LabelSelector, at: &str, error: &mut impl FnMut(String, String)) {
    for (i, term) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{at}.matchExpressions[{i}]");
        let values = term.values.as_deref().unwrap_or_default();
        match term.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => error(
                format!("{at}.values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'".into(),
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => error(
                format!("{at}.values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into(),
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => error(
                format!("{at}.operator"),
                format!("Invalid value: {other:?}: not a valid selector operator"),
            ),
        }
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(policy) = object.downcast_ref::<NetworkPolicy>() else {
        return cells::from_paths(&NETWORK_POLICY, object, now);
    };
    let selector = policy
        .spec
        .as_ref()
        .and_then(|s| s.pod_selector.clone())
        .unwrap_or_default();
    vec![cells::name(object), cells::selector(&selector), cells::age(object, now)]
}

#[cfg(test)]
#[path = "network_policy_tests.rs"]
mod tests;
