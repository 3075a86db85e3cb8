//! Object builders for tests (the `testing` feature).

use std::collections::BTreeMap;

use crate::meta::{ObjectMeta, match_labels, named};
use crate::objects::{
    Container, Deployment, DeploymentSpec, PodSpec, PodTemplateSpec, Quantity, Resource, ResourceRequirements,
};

/// A Deployment of `replicas` pods labelled `app=<name>`, each requesting `cpu`.
pub fn deployment(name: &str, replicas: i32, image: &str, cpu: &str) -> Deployment {
    let labels: BTreeMap<String, String> = [("app".to_string(), name.to_string())].into();
    Resource::new(
        named("default", name),
        DeploymentSpec {
            replicas: Some(replicas),
            selector: match_labels(labels.clone()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "main".into(),
                        image: Some(image.into()),
                        command: Some(vec!["sleep".into(), "3600".into()]),
                        resources: Some(ResourceRequirements {
                            requests: Some([("cpu".to_string(), Quantity(cpu.to_string()))].into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
    )
}
