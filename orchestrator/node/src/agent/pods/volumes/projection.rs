//! The files of a `configMap`, `secret`, `downwardAPI` or `projected` volume, from
//! the objects (and the projections' ServiceAccount tokens) as read and the pod as
//! it is now. Pure: the supervisor reads the
//! objects before the pass; what is missing and not `optional` is an error worded
//! as the kubelet's (`configmap "x" not found`, `configmap references non-existent
//! config key: k`). Errors name objects and keys, never values.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Volume};

use super::super::config_env::{ConfigObjects, NodeFacts, Source, Values, resource_value};
use super::super::tokens::DEFAULT_EXPIRATION_SECONDS;
use super::atomic_writer::{FileProjection, Payload};
use berth_api::meta::MetaExt;
use berth_api::objects::Pod;
use berth_api::validation::env::subscript;

/// Kubernetes' default for `defaultMode`: 0644.
pub(crate) const DEFAULT_MODE: u32 = 0o644;

/// Why a volume's files cannot be made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProjectionError {
    /// An object it names was not read before this pass: a later pass makes them.
    NotReadYet,
    /// The kubelet's message.
    Missing(String),
}

/// What a volume's files are made from.
pub(crate) struct Inputs<'a> {
    pub(crate) pod: &'a Pod,
    pub(crate) objects: &'a ConfigObjects,
    pub(crate) node: &'a NodeFacts,
}

/// The files of `volume`, None for a volume that has none (emptyDir, hostPath, a
/// claim).
pub(crate) fn payload(volume: &Volume, inputs: &Inputs<'_>) -> Option<Result<Payload, ProjectionError>> {
    let mode = |m: Option<i32>| m.map_or(DEFAULT_MODE, |m| m as u32);
    let mut payload = Payload::new();
    let result = if let Some(config) = &volume.config_map {
        let default = mode(config.default_mode);
        let (name, items) = (&config.name, config.items.as_deref());
        keys(
            Source::ConfigMap,
            name,
            items,
            default,
            config.optional,
            inputs,
            &mut payload,
        )
    } else if let Some(secret) = &volume.secret {
        let default = mode(secret.default_mode);
        let name = secret.secret_name.as_deref().unwrap_or_default();
        keys(
            Source::Secret,
            name,
            secret.items.as_deref(),
            default,
            secret.optional,
            inputs,
            &mut payload,
        )
    } else if let Some(downward) = &volume.downward_api {
        downward_files(
            downward.items.as_deref(),
            mode(downward.default_mode),
            inputs,
            &mut payload,
        )
    } else if let Some(projected) = &volume.projected {
        let default = mode(projected.default_mode);
        projected.sources.iter().flatten().try_for_each(|source| {
            if let Some(config) = &source.config_map {
                let items = config.items.as_deref();
                keys(
                    Source::ConfigMap,
                    &config.name,
                    items,
                    default,
                    config.optional,
                    inputs,
                    &mut payload,
                )?;
            }
            if let Some(secret) = &source.secret {
                let items = secret.items.as_deref();
                keys(
                    Source::Secret,
                    &secret.name,
                    items,
                    default,
                    secret.optional,
                    inputs,
                    &mut payload,
                )?;
            }
            if let Some(downward) = &source.downward_api {
                downward_files(downward.items.as_deref(), default, inputs, &mut payload)?;
            }
            if let Some(token) = &source.service_account_token {
                let audience = token.audience.as_deref().unwrap_or_default();
                let lifetime = token.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS);
                let data = match inputs.objects.token(inputs.pod.metadata.uid(), audience, lifetime) {
                    None => return Err(ProjectionError::NotReadYet),
                    Some(Err(failure)) => return Err(ProjectionError::Missing(failure.clone())),
                    Some(Ok(token)) => token.clone().into_bytes(),
                };
                payload.insert(token.path.clone(), FileProjection { data, mode: default });
            }
            Ok(())
        })
    } else {
        return None;
    };
    Some(result.map(|()| payload))
}

/// A ConfigMap's or Secret's keys as files: every key, or the `items` named.
fn keys(
    source: Source,
    name: &str,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: Option<bool>,
    inputs: &Inputs<'_>,
    payload: &mut Payload,
) -> Result<(), ProjectionError> {
    let optional = optional == Some(true);
    let namespace = inputs.pod.metadata.namespace();
    let values: &Values = match inputs.objects.lookup(source, namespace, name) {
        None => return Err(ProjectionError::NotReadYet),
        Some(Some(values)) => values,
        Some(None) if optional => return Ok(()),
        Some(None) => {
            return Err(ProjectionError::Missing(format!(
                "{} {name:?} not found",
                source.resource()
            )));
        }
    };
    let Some(items) = items.filter(|items| !items.is_empty()) else {
        for (key, value) in values {
            let file = FileProjection {
                data: value.clone(),
                mode: default_mode,
            };
            payload.insert(key.clone(), file);
        }
        return Ok(());
    };
    for item in items {
        let Some(value) = values.get(&item.key) else {
            if optional {
                continue;
            }
            return Err(ProjectionError::Missing(match source {
                Source::ConfigMap => format!("configmap references non-existent config key: {}", item.key),
                Source::Secret => format!("references non-existent secret key: {}", item.key),
            }));
        };
        let mode = item.mode.map_or(default_mode, |m| m as u32);
        payload.insert(
            item.path.clone(),
            FileProjection {
                data: value.clone(),
                mode,
            },
        );
    }
    Ok(())
}

fn downward_files(
    items: Option<&[DownwardAPIVolumeFile]>,
    default_mode: u32,
    inputs: &Inputs<'_>,
    payload: &mut Payload,
) -> Result<(), ProjectionError> {
    let pod = inputs.pod;
    for item in items.into_iter().flatten() {
        let data = if let Some(field) = &item.field_ref {
            field_file(pod, &field.field_path).map_err(ProjectionError::Missing)?
        } else if let Some(resource) = &item.resource_field_ref {
            let name = resource.container_name.as_deref().unwrap_or_default();
            let container = pod
                .spec
                .containers
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| ProjectionError::Missing(format!("container {name} not found")))?;
            let divisor = resource.divisor.as_ref().map(|q| q.0.as_str());
            resource_value(container, &resource.resource, divisor, inputs.node).map_err(ProjectionError::Missing)?
        } else {
            continue;
        };
        let mode = item.mode.map_or(default_mode, |m| m as u32);
        payload.insert(
            item.path.clone(),
            FileProjection {
                data: data.into_bytes(),
                mode,
            },
        );
    }
    Ok(())
}

/// The content of a `fieldRef` file.
fn field_file(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    if let Some((field, key)) = subscript(path) {
        let map = if field == "metadata.labels" {
            labels
        } else {
            annotations
        };
        return Ok(map.get(key).cloned().unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name().to_string(),
        "metadata.namespace" => meta.namespace().to_string(),
        "metadata.uid" => meta.uid().to_string(),
        "metadata.labels" => format_map(labels),
        "metadata.annotations" => format_map(annotations),
        other => return Err(format!("unsupported fieldPath: {other}")),
    })
}

/// Labels or annotations as the kubelet writes them: `key="value"` lines sorted by
/// key, the value quoted as Go's `%q` does, no newline after the last.
pub(crate) fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A string as Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() => {
                let n = c as u32;
                if n < 0x80 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[path = "projection_tests.rs"]
mod tests;
