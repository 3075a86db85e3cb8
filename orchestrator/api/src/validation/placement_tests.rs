use serde_json::{Value, json};

use crate::objects::PodSpec;

/// The errors of a pod spec with these placement fields.
fn errors(placement: Value) -> Vec<String> {
    let mut spec = json!({"containers": [{"name": "a", "image": "x"}]});
    spec.as_object_mut()
        .unwrap()
        .extend(placement.as_object().unwrap().clone());
    let spec: PodSpec = serde_json::from_value(spec).unwrap();
    let mut errors = Vec::new();
    super::pod_spec(&spec, "spec", &mut errors);
    errors.iter().map(ToString::to_string).collect()
}

fn required_node_terms(terms: Value) -> Value {
    json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
}

const TERMS: &str = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms";

#[test]
fn good_placement_rules_pass() {
    let good = json!({
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}],
                     "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]
            },
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname",
                 "namespaces": ["default"], "namespaceSelector": {}}]}
        },
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["pod-template-hash"],
             "minDomains": 2, "nodeAffinityPolicy": "Ignore", "nodeTaintsPolicy": "Honor"},
            {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
        ]
    });
    assert_eq!(errors(good), Vec::<String>::new());
}

#[test]
fn node_affinity_is_checked_with_kubernetes_paths_and_messages() {
    let cases = [
        (
            required_node_terms(json!([])),
            format!("{TERMS}: Required value: must have at least one node selector term"),
        ),
        (
            required_node_terms(json!([{"matchExpressions": [{"key": "k", "operator": "Near", "values": ["v"]}]}])),
            format!("{TERMS}[0].matchExpressions[0].operator: Invalid value: \"Near\": not a valid selector operator"),
        ),
        (
            required_node_terms(json!([{"matchExpressions": [{"key": "k", "operator": "In"}]}])),
            format!(
                "{TERMS}[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
            ),
        ),
        (
            required_node_terms(json!([{"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["v"]}]}])),
            format!(
                "{TERMS}[0].matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            ),
        ),
        (
            required_node_terms(json!([{"matchExpressions": [{"key": "k", "operator": "Lt", "values": ["1", "2"]}]}])),
            format!(
                "{TERMS}[0].matchExpressions[0].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"
            ),
        ),
        (
            required_node_terms(json!([{"matchExpressions": [{"key": "k", "operator": "Gt", "values": ["many"]}]}])),
            format!(
                "{TERMS}[0].matchExpressions[0].values[0]: Invalid value: \"many\": must be an integer for `operator` 'Lt' or 'Gt'"
            ),
        ),
        (
            required_node_terms(json!([{"matchFields": [{"key": "spec.nodeName", "operator": "In", "values": ["n"]}]}])),
            format!("{TERMS}[0].matchFields[0].key: Invalid value: \"spec.nodeName\": not a valid field selector key"),
        ),
        (
            required_node_terms(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]}])),
            format!(
                "{TERMS}[0].matchFields[0].values: Required value: must be only one value when `operator` is 'In' or 'NotIn' for node field selector"
            ),
        ),
        (
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 0, "preference": {"matchExpressions": [{"key": "k", "operator": "Exists"}]}}]}}}),
            "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100".into(),
        ),
    ];
    for (placement, expected) in cases {
        assert_eq!(errors(placement.clone()), [expected], "{placement}");
    }
}

#[test]
fn pod_affinity_terms_are_checked() {
    let anti = |term: Value| json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}});
    let at = "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]";
    assert_eq!(
        errors(anti(json!({"labelSelector": {"matchLabels": {"app": "web"}}}))),
        [format!("{at}.topologyKey: Required value: can not be empty")]
    );
    let bad_selector = anti(
        json!({"topologyKey": "zone", "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Equals"}]}}),
    );
    assert_eq!(
        errors(bad_selector),
        [format!(
            "{at}.labelSelector.matchExpressions[0].operator: Invalid value: \"Equals\": not a valid selector operator"
        )]
    );
    let bad_namespace = anti(json!({"topologyKey": "zone", "namespaces": ["Not_A_Label"]}));
    assert!(errors(bad_namespace)[0].starts_with(&format!("{at}.namespaces[0]: Invalid value: \"Not_A_Label\"")));
    let preferred = json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 101, "podAffinityTerm": {"topologyKey": "zone", "matchLabelKeys": ["version"]}}]}}});
    let at = "spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]";
    assert_eq!(
        errors(preferred),
        [
            format!("{at}.weight: Invalid value: 101: must be in the range 1-100"),
            format!(
                "{at}.podAffinityTerm.matchLabelKeys: Forbidden: must not be specified when labelSelector is not set"
            ),
        ]
    );
    let keys = anti(
        json!({"topologyKey": "zone", "labelSelector": {"matchLabels": {"app": "web"}},
                           "matchLabelKeys": ["app", "version"], "mismatchLabelKeys": ["version", "app"]}),
    );
    let at = "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]";
    assert_eq!(
        errors(keys),
        [
            format!("{at}.matchLabelKeys[0]: Invalid value: \"app\": exists in both matchLabelKeys and labelSelector"),
            format!(
                "{at}.matchLabelKeys[0]: Invalid value: \"app\": exists in both matchLabelKeys and mismatchLabelKeys"
            ),
            format!(
                "{at}.matchLabelKeys[1]: Invalid value: \"version\": exists in both matchLabelKeys and mismatchLabelKeys"
            ),
        ]
    );
    let fine = anti(
        json!({"topologyKey": "zone", "labelSelector": {"matchLabels": {"app": "web"}},
                           "matchLabelKeys": ["pod-template-hash"], "mismatchLabelKeys": ["app"]}),
    );
    assert_eq!(
        errors(fine),
        Vec::<String>::new(),
        "a mismatch key may narrow a selected key"
    );
}

#[test]
fn topology_spread_constraints_are_checked() {
    let one = |c: Value| json!({"topologySpreadConstraints": [c]});
    let at = "spec.topologySpreadConstraints[0]";
    let cases = [
        (
            json!({"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}),
            format!("{at}.maxSkew: Invalid value: 0: must be greater than zero"),
        ),
        (
            json!({"maxSkew": 1, "topologyKey": "", "whenUnsatisfiable": "DoNotSchedule"}),
            format!("{at}.topologyKey: Required value: can not be empty"),
        ),
        (
            json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Never"}),
            format!(
                "{at}.whenUnsatisfiable: Unsupported value: \"Never\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\""
            ),
        ),
        (
            json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "minDomains": 2}),
            format!(
                "{at}.minDomains: Invalid value: 2: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway"
            ),
        ),
        (
            json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "matchLabelKeys": ["app"]}),
            format!("{at}.matchLabelKeys: Forbidden: must not be specified when labelSelector is not set"),
        ),
        (
            json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                   "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["app"]}),
            format!("{at}.matchLabelKeys[0]: Invalid value: \"app\": exists in both matchLabelKeys and labelSelector"),
        ),
        (
            json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Always"}),
            format!("{at}.nodeTaintsPolicy: Unsupported value: \"Always\": supported values: \"Honor\", \"Ignore\""),
        ),
    ];
    for (constraint, expected) in cases {
        assert_eq!(errors(one(constraint.clone())), [expected], "{constraint}");
    }
    let twice = json!({"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
        {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]});
    assert_eq!(
        errors(twice),
        [
            "spec.topologySpreadConstraints[1].{topologyKey, whenUnsatisfiable}: Duplicate value: \"{zone, DoNotSchedule}\""
        ]
    );
}
