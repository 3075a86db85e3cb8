//! Object builders for tests (the `testing` feature).

use std::collections::BTreeMap;

use crate::meta::{LabelSelector, ObjectMeta};
use crate::objects::{Container, Deployment, DeploymentSpec, PodSpec, PodTemplateSpec, Resource, ResourceRequirements};

/// A Deployment of `replicas` pods labelled `app=<name>`, each requesting `cpu`.
pub fn deployment(name: &str, replicas: i32, image: &str, cpu: &str) -> Deployment {
    let labels: BTreeMap<String, String> = [("app".to_string(), name.to_string())].into();
    Resource::new(
        ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            ..Default::default()
        },
        DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: labels.clone(),
            },
            template: PodTemplateSpec {
                metadata: ObjectMeta {
                    labels,
                    ..Default::default()
                },
                spec: PodSpec {
                    containers: vec![Container {
                        name: "main".into(),
                        image: image.into(),
                        command: vec!["sleep".into(), "3600".into()],
                        resources: ResourceRequirements {
                            requests: [("cpu".to_string(), cpu.to_string())].into(),
                            ..Default::default()
                        },
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            },
        },
    )
}
