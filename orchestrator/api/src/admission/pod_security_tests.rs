use serde_json::json;

use super::*;

fn spec(value: serde_json::Value) -> PodSpec {
    serde_json::from_value(value).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("{LABEL_PREFIX}{k}"), v.to_string()))
        .collect()
}

fn refusal(level: Level, pod: serde_json::Value) -> String {
    describe(&Policy::latest(level), &check(&spec(pod), level))
}

#[test]
fn baseline_refuses_privileged_and_host_path_naming_each_rule() {
    let pod = json!({
        "containers": [{"name": "c", "image": "i", "securityContext": {"privileged": true}}],
        "volumes": [{"name": "data", "hostPath": {"path": "/var"}}, {"name": "tmp", "emptyDir": {}}]
    });
    assert_eq!(
        refusal(Level::Baseline, pod.clone()),
        "violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"data\"), \
         privileged (container \"c\" must not set securityContext.privileged=true)"
    );
    assert!(check(&spec(pod), Level::Privileged).is_empty());
}

#[test]
fn baseline_names_host_namespaces_ports_capabilities_and_seccomp() {
    let pod = json!({
        "hostNetwork": true,
        "securityContext": {"seccompProfile": {"type": "Unconfined"}},
        "initContainers": [{"name": "init", "image": "i", "ports": [{"containerPort": 81, "hostPort": 81}]}],
        "containers": [
            {"name": "a", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}],
             "securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]}}},
            {"name": "b", "image": "i", "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}}}
        ]
    });
    assert_eq!(
        refusal(Level::Baseline, pod),
        "violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true), \
         hostPort (containers \"init\", \"a\" use hostPorts 8080, 81), \
         non-default capabilities (container \"a\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in \
         securityContext.capabilities.add), \
         seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
    );
}

#[test]
fn a_plain_pod_passes_baseline_and_restricted_asks_for_everything() {
    let plain = json!({"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "v", "emptyDir": {}}]});
    assert!(check(&spec(plain.clone()), Level::Baseline).is_empty());
    assert_eq!(
        refusal(Level::Restricted, plain),
        "violates PodSecurity \"restricted:latest\": \
         allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
         runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
         seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
    let hardened = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "i", "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
        "volumes": [{"name": "v", "configMap": {"name": "cm"}}]
    });
    assert!(check(&spec(hardened), Level::Restricted).is_empty());
}

#[test]
fn restricted_names_root_users_and_volume_types() {
    let pod = json!({
        "securityContext": {"runAsNonRoot": false, "runAsUser": 0, "seccompProfile": {"type": "Localhost"}},
        "containers": [{"name": "c", "image": "i", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["SYS_TIME"]}}}],
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}]
    });
    let violations = check(&spec(pod), Level::Restricted);
    let reasons: Vec<_> = violations.iter().map(|v| (v.reason, v.detail.as_str())).collect();
    assert_eq!(
        reasons,
        [
            ("hostPath volumes", "volume \"h\""),
            (
                "unrestricted capabilities",
                "container \"c\" must not include \"SYS_TIME\" in securityContext.capabilities.add"
            ),
            (
                "restricted volume types",
                "volume \"h\" uses restricted volume type \"hostPath\""
            ),
            (
                "runAsNonRoot != true",
                "pod must not set securityContext.runAsNonRoot=false"
            ),
            ("runAsUser=0", "pod must not set runAsUser=0"),
        ]
    );
}

#[test]
fn labels_choose_the_policy_and_bad_labels_mean_restricted() {
    let default = namespace_policy(&BTreeMap::new(), Level::Baseline);
    assert_eq!(default.enforce, Policy::latest(Level::Baseline));
    assert_eq!(default.warn, None);
    assert_eq!(default.audit, None);
    let labelled = namespace_policy(
        &labels(&[
            ("enforce", "privileged"),
            ("warn", "restricted"),
            ("warn-version", "v1.30"),
        ]),
        Level::Baseline,
    );
    assert_eq!(labelled.enforce, Policy::latest(Level::Privileged));
    assert_eq!(
        labelled.warn.as_ref().map(ToString::to_string).as_deref(),
        Some("restricted:v1.30")
    );
    let bad = namespace_policy(&labels(&[("enforce", "strict")]), Level::Privileged);
    assert_eq!(bad.enforce, Policy::latest(Level::Restricted));
    let future = namespace_policy(
        &labels(&[("enforce", "baseline"), ("enforce-version", "v1.40")]),
        Level::Baseline,
    );
    assert_eq!(future.enforce, Policy::latest(Level::Restricted));
    let errors: Vec<String> = label_errors(&labels(&[
        ("enforce", "strict"),
        ("audit-version", "v2.0"),
        ("warn-version", "latest"),
    ]))
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        errors,
        [
            "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted",
            "metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: \"v2.0\": must be \"latest\" or \"v1.x\" with x at most 32"
        ]
    );
}

#[test]
fn pods_are_refused_templates_warned_and_kube_system_exempt() {
    let pod = spec(json!({"containers": [{"name": "c", "image": "i", "securityContext": {"privileged": true}}]}));
    let policy = NamespacePolicy {
        enforce: Policy::latest(Level::Baseline),
        warn: Some(Policy::latest(Level::Restricted)),
        audit: None,
    };
    let refused = admit("dev", &policy, &pod, true);
    assert!(
        refused
            .refusal
            .unwrap()
            .starts_with("violates PodSecurity \"baseline:latest\": privileged")
    );
    let template = admit("dev", &policy, &pod, false);
    assert_eq!(template.refusal, None);
    assert_eq!(template.warnings.len(), 2, "{:?}", template.warnings);
    assert!(
        template.warnings[0].starts_with("would violate PodSecurity \"baseline:latest\": privileged"),
        "{:?}",
        template.warnings
    );
    assert!(template.warnings[1].starts_with("would violate PodSecurity \"restricted:latest\": privileged"));
    let plain = spec(json!({"containers": [{"name": "c", "image": "i"}]}));
    let warned = admit("dev", &policy, &plain, true);
    assert_eq!(warned.refusal, None);
    assert!(
        warned.warnings[0].starts_with("would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation")
    );
    assert_eq!(admit("kube-system", &policy, &pod, true), Verdict::default());
}

#[test]
fn the_audit_label_annotates_the_audit_event_and_refuses_nothing() {
    let policy = namespace_policy(&labels(&[("audit", "restricted")]), Level::Baseline);
    assert_eq!(policy.audit, Some(Policy::latest(Level::Restricted)));
    let root = spec(json!({"containers": [{"name": "c", "image": "i"}]}));
    let verdict = admit("dev", &policy, &root, true);
    assert_eq!(verdict.refusal, None);
    assert!(verdict.warnings.is_empty(), "{:?}", verdict.warnings);
    assert_eq!(
        verdict.audit[0],
        (ENFORCE_POLICY_ANNOTATION.to_string(), "baseline:latest".to_string())
    );
    let (key, value) = &verdict.audit[1];
    assert_eq!(key, AUDIT_VIOLATIONS_ANNOTATION);
    assert!(
        value.starts_with("would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{value}"
    );
    assert_eq!(admit("kube-system", &policy, &root, true).audit, []);
}
