//! The verbs on objects: get, create, replace (PUT), patch, server-side apply and
//! delete (lists are `list.rs`'s). Reads are linearizable store reads; every write is
//! validated first and is conditional on the revision it was prepared from.
//!
//! ```text
//! PUT / PATCH:  read stored ──► prepare (pure) ──► validate ──► managed fields ──► update if still at
//!                   ▲                                           (the writer's)     the read revision
//!                   └──────── conflict, and the client gave no resourceVersion ──────────┘
//! apply:        read stored ──► apply (merge + ownership) ──► prepare ──► validate ──► update
//!                   └─ none: apply to nothing ──► create ─┘  (nothing changed: no write)
//! ```

use serde_json::Value;

use super::ApiServer;
use super::managed_fields::{self, Manager, check_configuration, track};
use super::patch::{PatchType, apply};
use super::prepare::{
    FieldValidation, Part, check_identity, complete_created_status, is_terminating, precondition, prepare_create,
    prepare_update, resource_version, validate,
};
use super::route::{Kind, namespaces};
use super::services;
use super::status::ApiError;
use super::storage::{self, decode};
use berth_api::kinds::event::EVENT;
use berth_api::meta::MetaExt;
use berth_api::names::{GENERATED_SUFFIX_LEN, random_suffix};
use berth_client::kv::{Fence, KvError};

/// An object as written, and the warnings for the client (fields dropped).
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// How a write is done.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions<'a> {
    /// What happens to fields the kind does not define.
    pub field_validation: FieldValidation,
    /// Who writes, recorded in the object's managed fields; `None` when the change
    /// records them itself (an apply).
    pub manager: Option<&'a Manager>,
    /// `dryRun=All`: everything but the store write; the answer is the object as it
    /// would be stored.
    pub dry_run: bool,
    /// Who asks: RBAC's escalation checks read it (`None`: as anonymous).
    pub user: Option<&'a crate::auth::UserInfo>,
}

/// How often a write prepared from a stale read is tried again before giving up.
const MAX_ATTEMPTS: usize = 16;

/// One object, as stored now.
pub async fn get(api: &ApiServer, kind: &Kind, namespace: &str, name: &str) -> Result<Value, ApiError> {
    match api.kv.get(&kind.key(namespace, name)).await {
        Ok(Some(kv)) => decode(kind, &kv),
        Ok(None) => Err(ApiError::not_found(kind, name)),
        Err(e) => Err(ApiError::from_kv(e, kind, name)),
    }
}

/// The object an update starts from, and whether it is the watch cache's copy:
/// that copy when the cache has the key at the version the request expects (or
/// the request expects none), else the store's (as kube-apiserver's GuaranteedUpdate
/// starts from its cache's object). The update is conditional on the revision.
async fn current(
    api: &ApiServer,
    kind: &'static Kind,
    namespace: &str,
    name: &str,
    expected: Option<&str>,
) -> Result<(Value, bool), ApiError> {
    if api.settings.watch_cache
        && let Some(record) = api.watch_caches.of(&api.kv, kind).get(&kind.key(namespace, name))
        && expected.is_none_or(|expected| expected == record.mod_revision.to_string())
    {
        return Ok((decode(kind, &record)?, true));
    }
    Ok((get(api, kind, namespace, name).await?, false))
}

/// Creates an object from a request body; a namespaced one needs its namespace to
/// exist and not be terminating. `manager` is recorded as its creator; `None` when
/// the body carries its managed fields already (an apply).
pub async fn create(
    api: &ApiServer,
    kind: &Kind,
    namespace: Option<&str>,
    mut body: Value,
    options: WriteOptions<'_>,
) -> Result<Written, ApiError> {
    check_identity(kind, &mut body, namespace, None)?;
    let is_generated = prepare_create(kind, &mut body, || random_suffix(GENERATED_SUFFIX_LEN))?;
    let mut warnings = Vec::new();
    let mut object = validate(kind, body, options.field_validation, &mut warnings)?;
    crate::auth::authz::escalation::check_write(api, options.user, &object).await?;
    crate::auth::authz::node::check_write(&api.authorizer, options.user, &object)?;
    admit_runtime_class(api, kind, &object).await?;
    super::storage_admission::default_class_of_claim(api, kind, &mut object).await?;
    super::storage_admission::add_protection(kind, &mut object);
    if api.settings.isolate_namespaces {
        crate::isolation::label_new_namespace(kind, &mut object);
    }
    warnings.extend(super::admission::prepare(api, kind, &mut object).await?);
    complete_created_status(&mut object);
    if let Some(manager) = options.manager {
        track(kind, None, &mut object, manager);
    }
    if options.dry_run {
        if kind.namespaced {
            namespace_fence(
                api,
                kind,
                object.metadata().namespace(),
                object.metadata().name(),
                false,
            )
            .await?;
        }
        let key = object.key();
        if api
            .kv
            .get(&key)
            .await
            .map_err(|e| ApiError::from_kv(e, kind, ""))?
            .is_some()
        {
            return Err(ApiError::already_exists(kind, object.metadata().name()));
        }
        super::admission::charges(api, kind, &object, false).await?;
        let metadata = object.metadata_mut();
        metadata.uid = Some(berth_api::names::new_uid());
        metadata.creation_timestamp = Some(berth_api::time::now());
        metadata.generation = Some(1);
        return Ok(Written {
            object: storage::served(kind, storage::to_value(&object)),
            warnings,
        });
    }
    for attempt in 0..MAX_ATTEMPTS {
        let name = object.metadata().name().to_string();
        // The write is fenced by the namespace record: if the namespace is deleted
        // (or marked terminating) after it was read here, the create fails.
        let fence = if kind.namespaced {
            Some(namespace_fence(api, kind, object.metadata().namespace(), &name, attempt > 0).await?)
        } else {
            None
        };
        // Events go after their time to live, as kube-apiserver's `--event-ttl` says.
        let lease = if kind.prefix(None) == EVENT.prefix(None) {
            api.event_leases
                .lease(&api.kv)
                .await
                .map_err(|e| ApiError::from_kv(e, kind, &name))?
        } else {
            0
        };
        // The quotas that count the object are charged in the same write (events,
        // which go with a lease, are counted by no quota berth keeps).
        let charges = if lease == 0 {
            super::admission::charges(api, kind, &object, attempt > 0).await?
        } else {
            Vec::new()
        };
        let created = if is_services(kind) {
            let network = &api.settings.service_network;
            match services::create(&api.kv, network, &mut object, fence.as_ref(), &charges).await {
                Ok(created) => created,
                Err(refusal) => Err(refusal.into_api_error(&object)?),
            }
        } else if !charges.is_empty() {
            storage::create_charged(&api.kv, &object, fence.as_ref(), &charges).await
        } else {
            storage::create(&api.kv, &object, lease, fence.as_ref()).await
        };
        match created {
            Ok(object) => {
                return Ok(Written {
                    object: storage::served(kind, object),
                    warnings,
                });
            }
            Err(KvError::Fenced) => continue,
            // A quota moved since it was charged: charge it again.
            Err(KvError::Conflict { .. }) => continue,
            Err(KvError::AlreadyExists) if is_generated => {
                // Another object took the generated name: draw another suffix (it is
                // ASCII, so the prefix ends on a character boundary).
                let prefix = &name[..name.len() - GENERATED_SUFFIX_LEN];
                object.metadata_mut().name = Some(format!("{prefix}{}", random_suffix(GENERATED_SUFFIX_LEN)));
            }
            Err(KvError::RequestTooLarge) => {
                return Err(ApiError::object_too_large(
                    kind,
                    &name,
                    api.settings.store_max_request_bytes,
                ));
            }
            Err(e) => return Err(ApiError::from_kv(e, kind, &name)),
        }
    }
    Err(ApiError::conflict(kind, object.metadata().name()))
}

/// Services: their cluster IPs and node ports are written with them (`services.rs`).
/// A pod's priority and preemption policy, set by admission at its create, kept
/// by an update that leaves them out (as Kubernetes' Priority admission keeps them).
fn keep_priority(stored: &Value, new: &mut Value) {
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["priority", "preemptionPolicy"] {
        if spec.get(field).is_none_or(Value::is_null)
            && let Some(kept) = stored["spec"].get(field).filter(|v| !v.is_null())
        {
            spec.insert(field.into(), kept.clone());
        }
    }
}

/// A node's Lease: its renewals, one per node every few seconds, are committed
/// in groups (see `ApiServer::node_lease_group`).
fn is_node_lease(kind: &Kind, namespace: &str) -> bool {
    *kind == berth_api::kinds::lease::LEASE && namespace == berth_api::kinds::lease::NODE_LEASE_NAMESPACE
}

fn is_services(kind: &Kind) -> bool {
    *kind == berth_api::kinds::service::SERVICE
}

/// A fence on the namespace record, after checking the namespace can take new objects.
///
/// The namespace is read serializably first (the fence catches a stale read: the
/// write fails if the namespace moved since the revision read), and linearizably
/// when `fresh` or when the first read would refuse the create.
async fn namespace_fence(
    api: &ApiServer,
    kind: &Kind,
    namespace: &str,
    name: &str,
    mut fresh: bool,
) -> Result<Fence, ApiError> {
    let key = namespaces().key("", namespace);
    loop {
        let read = match fresh {
            true => api.kv.get(&key).await,
            false => api.kv.get_serializable(&key).await,
        };
        let refusal = match read {
            Err(e) => return Err(ApiError::from_kv(e, namespaces(), namespace)),
            Ok(None) => ApiError::not_found(namespaces(), namespace),
            Ok(Some(stored)) if is_terminating(&decode(namespaces(), &stored)?) => ApiError::forbidden(
                kind,
                name,
                &format!("unable to create new content in namespace {namespace} because it is being terminated"),
            ),
            Ok(Some(stored)) => {
                return Ok(Fence {
                    key,
                    mod_revision: stored.mod_revision,
                });
            }
        };
        if fresh {
            return Err(refusal);
        }
        fresh = true;
    }
}

/// PUT: replaces the object (`Part::Main`) or its status.
#[allow(clippy::too_many_arguments)]
pub async fn replace(
    api: &ApiServer,
    kind: &'static Kind,
    namespace: &str,
    name: &str,
    part: Part,
    mut body: Value,
    options: WriteOptions<'_>,
) -> Result<Written, ApiError> {
    check_identity(kind, &mut body, Some(namespace), Some(name))?;
    let expected = precondition(&body);
    write(api, kind, namespace, name, expected, options, |stored| {
        Ok(Some(prepare_update(part, stored, body.clone())))
    })
    .await
}

/// PATCH: applies a patch of any type but apply to the stored object (or its
/// status), then validates the result.
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    api: &ApiServer,
    kind: &'static Kind,
    namespace: &str,
    name: &str,
    part: Part,
    patch_type: PatchType,
    patch: Value,
    options: WriteOptions<'_>,
) -> Result<Written, ApiError> {
    let expected = precondition(&patch);
    write(api, kind, namespace, name, expected, options, |stored| {
        let mut patched = apply(Some(kind), patch_type, stored, &patch)?;
        check_identity(kind, &mut patched, Some(namespace), Some(name))?;
        Ok(Some(prepare_update(part, stored, patched)))
    })
    .await
}

/// PATCH with `application/apply-patch+yaml`: server-side apply of `config` to the
/// object (or its status) for `manager`. Creates the object when it does not exist
/// (answered 201, as kube-apiserver does), and writes nothing when the apply changes
/// nothing.
#[allow(clippy::too_many_arguments)]
pub async fn server_side_apply(
    api: &ApiServer,
    kind: &'static Kind,
    namespace: &str,
    name: &str,
    part: Part,
    config: Value,
    manager: &Manager,
    force: bool,
    options: WriteOptions<'_>,
) -> Result<(u16, Written), ApiError> {
    check_configuration(kind, &config, namespace, name)?;
    let expected = precondition(&config);
    // The apply records the managed fields itself.
    let options = WriteOptions {
        manager: None,
        ..options
    };
    for _ in 0..MAX_ATTEMPTS {
        match get(api, kind, namespace, name).await {
            Ok(_) => {
                let written = write(api, kind, namespace, name, expected.clone(), options, |stored| {
                    let applied = managed_fields::apply(kind, Some(stored), &config, manager, force)?;
                    if applied.is_unchanged {
                        return Ok(None);
                    }
                    let mut object = applied.object;
                    check_identity(kind, &mut object, Some(namespace), Some(name))?;
                    let managed = object.pointer("/metadata/managedFields").cloned();
                    let mut new = prepare_update(part, stored, object);
                    // A status write keeps the stored metadata, but not its managers.
                    if let Some(metadata) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                        match managed {
                            Some(managed) => metadata.insert("managedFields".into(), managed),
                            None => metadata.remove("managedFields"),
                        };
                    }
                    Ok(Some(new))
                })
                .await;
                match written {
                    // Deleted since it was read: apply to nothing.
                    Err(e) if e.code == 404 => continue,
                    other => return other.map(|written| (200, written)),
                }
            }
            Err(e) if e.code == 404 && part == Part::Main => {
                let applied = managed_fields::apply(kind, None, &config, manager, force)?;
                let mut object = applied.object;
                if object.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object () does not match the name on the URL ({name})"
                    )));
                }
                check_identity(kind, &mut object, Some(namespace), Some(name))?;
                let namespace = Some(namespace).filter(|_| kind.namespaced);
                match create(api, kind, namespace, object, options).await {
                    // Created since it was read: apply to that.
                    Err(e) if e.reason == "AlreadyExists" => continue,
                    other => return other.map(|written| (201, written)),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(kind, name))
}

/// What the kind forbids an update to change (a Secret's data once it is
/// immutable), judged against the stored object.
fn validate_update(
    kind: &Kind,
    old: &berth_api::kinds::Object,
    new: &berth_api::kinds::Object,
) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    (kind.validate_update)(old, new, &mut errors);
    if errors.is_empty() {
        return Ok(());
    }
    let submitted = storage::to_value(new);
    Err(ApiError::invalid(
        kind.kind,
        kind.group,
        new.metadata().name(),
        &errors,
        &submitted,
    ))
}

/// Kubernetes' RuntimeClass admission: a new pod's `runtimeClassName` must name a
/// RuntimeClass in the store.
async fn admit_runtime_class(api: &ApiServer, kind: &Kind, object: &berth_api::kinds::Object) -> Result<(), ApiError> {
    use berth_api::kinds::runtime_class::RUNTIME_CLASS;
    let Some(pod) = object.downcast_ref::<berth_api::objects::Pod>() else {
        return Ok(());
    };
    let Some(class) = pod.spec.runtime_class_name.as_deref().filter(|c| !c.is_empty()) else {
        return Ok(());
    };
    let name = object.metadata().name();
    match api.kv.get(&RUNTIME_CLASS.key("", class)).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::forbidden(
            kind,
            name,
            &format!("pod rejected: RuntimeClass {class:?} not found"),
        )),
        Err(e) => Err(ApiError::from_kv(e, kind, name)),
    }
}

/// Reads the object, lets `change` make the new one from it (`None`: nothing to
/// write, the stored object stands), validates that, records what the manager
/// changed and writes it if the object is still as read. A client's `expected`
/// resourceVersion must be the stored one; without one, a conflicting write is
/// retried.
pub async fn write(
    api: &ApiServer,
    kind: &'static Kind,
    namespace: &str,
    name: &str,
    expected: Option<String>,
    options: WriteOptions<'_>,
    mut change: impl FnMut(&Value) -> Result<Option<Value>, ApiError>,
) -> Result<Written, ApiError> {
    for attempt in 0..MAX_ATTEMPTS {
        // The first attempt starts from the watch cache's copy; one that was stale
        // fails its condition, and the next attempts read the store.
        let (stored, cached) = match attempt {
            0 => current(api, kind, namespace, name, expected.as_deref()).await?,
            _ => (get(api, kind, namespace, name).await?, false),
        };
        let stored_version = resource_version(&stored);
        if expected.as_ref().is_some_and(|expected| *expected != stored_version) {
            return Err(ApiError::conflict(kind, name));
        }
        // A refusal made from the cache's copy may be the copy's staleness: the
        // store's copy decides (as kube-apiserver retries a failed update func).
        macro_rules! decided {
            ($result:expr) => {
                match $result {
                    Err(_) if cached => continue,
                    result => result?,
                }
            };
        }
        let Some(mut new) = decided!(change(&stored)) else {
            if cached {
                // Nothing to change in the cache's copy: the store's may differ.
                continue;
            }
            return Ok(Written {
                object: stored,
                warnings: Vec::new(),
            });
        };
        if let Some(metadata) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("resourceVersion".into(), stored_version.into());
        }
        if is_services(kind) {
            services::keep_allocations(&stored, &mut new);
        }
        if *kind == berth_api::kinds::pod::POD {
            keep_priority(&stored, &mut new);
        }
        let mut warnings = Vec::new();
        let mut object = decided!(validate(kind, new, options.field_validation, &mut warnings));
        // The stored object, decoded once for the update's checks and charges.
        let old = storage::decode_stored(kind, &stored).map_err(|e| ApiError::internal(e.to_string()))?;
        decided!(validate_update(kind, &old, &object));
        decided!(crate::auth::authz::escalation::check_write(api, options.user, &object).await);
        decided!(crate::auth::authz::node::check_write(
            &api.authorizer,
            options.user,
            &object
        ));
        if kind == namespaces() {
            warnings.extend(super::admission::namespace_warnings(api, &stored, &object).await);
        }
        warnings.extend(decided!(super::admission::check_update(api, kind, &old, &object).await));
        decided!(super::storage_admission::check_resize(api, kind, &stored, &object).await);
        if let Some(manager) = options.manager {
            track(kind, Some(&stored), &mut object, manager);
        }
        if options.dry_run {
            return Ok(Written {
                object: storage::served(kind, storage::to_value(&object)),
                warnings,
            });
        }
        let charges = super::admission::update_charges(api, kind, &old, &object).await?;
        // The last finalizer of an object being deleted is gone: it goes now.
        let had_finalizers = stored
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if had_finalizers && object.metadata().is_deleting() && object.metadata().finalizers().is_empty() {
            let version = resource_version(&stored).parse().ok();
            return match api.kv.delete(&object.key(), version, None).await {
                Ok(_) => Ok(Written {
                    object: storage::served(kind, storage::to_value(&object)),
                    warnings,
                }),
                Err(KvError::Conflict { .. }) if expected.is_none() => continue,
                Err(e) => Err(ApiError::from_kv(e, kind, name)),
            };
        }
        let updated = if is_services(kind) {
            let old = storage::for_storage(kind, stored.clone());
            let old: berth_api::kinds::service::Service =
                serde_json::from_value(old).map_err(|e| ApiError::internal(e.to_string()))?;
            // A Service's charge (its new node ports) goes first, as Kubernetes
            // charges: an update that then fails is taken off by the quota
            // controller's next recalculation.
            if !charges.is_empty() {
                let together = berth_client::kv::Together {
                    conditions: charges
                        .iter()
                        .map(|(key, revision, _)| (key.clone(), *revision))
                        .collect(),
                    puts: charges
                        .iter()
                        .map(|(key, _, value)| (key.clone(), value.clone()))
                        .collect(),
                    deletes: Vec::new(),
                };
                match api.kv.write_together(&together).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => continue,
                    Err(e) => return Err(ApiError::from_kv(e, kind, name)),
                }
            }
            match services::update(&api.kv, &api.settings.service_network, &old, &mut object).await {
                Ok(updated) => updated,
                Err(refusal) => Err(refusal.into_api_error(&object)?),
            }
        } else if !charges.is_empty() {
            storage::update_charged(&api.kv, object, &old, &charges).await
        } else if is_node_lease(kind, namespace) {
            storage::update_grouped(api.node_lease_group(), object, &old).await
        } else {
            storage::update_from(&api.kv, object, &old).await
        };
        match updated {
            Ok(object) => {
                return Ok(Written {
                    object: storage::served(kind, object),
                    warnings,
                });
            }
            Err(KvError::Conflict { .. }) if expected.is_none() || !charges.is_empty() => continue,
            Err(KvError::RequestTooLarge) => {
                return Err(ApiError::object_too_large(
                    kind,
                    name,
                    api.settings.store_max_request_bytes,
                ));
            }
            Err(e) => return Err(ApiError::from_kv(e, kind, name)),
        }
    }
    Err(ApiError::conflict(kind, name))
}

/// DELETE: removes the object (if still at `preconditions.resourceVersion` of the
/// DeleteOptions, when given) and returns it as it was. Namespaces go with their
/// contents.
pub async fn delete(
    api: &ApiServer,
    kind: &Kind,
    namespace: &str,
    name: &str,
    options: Option<&Value>,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let dry_run = dry_run
        || options
            .and_then(|o| o.get("dryRun"))
            .and_then(Value::as_array)
            .is_some_and(|stages| stages.iter().any(|s| s == "All"));
    if dry_run {
        // What would be deleted, as it is now; nothing goes.
        return get(api, kind, namespace, name).await;
    }
    if kind == namespaces() {
        return super::namespace_deletion::delete(api, name).await;
    }
    if !is_services(kind) {
        return super::graceful::delete(api, kind, namespace, name, options).await;
    }
    let precondition = match options.and_then(|o| o.pointer("/preconditions/resourceVersion")) {
        None | Some(Value::Null) => None,
        Some(version) => Some(version.as_str().and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "preconditions.resourceVersion: {version} is not a resourceVersion"
            ))
        })?),
    };
    let deleted = services::delete(&api.kv, namespace, name, precondition).await;
    match deleted {
        Ok(previous) => decode(kind, &previous),
        Err(e) => Err(ApiError::from_kv(e, kind, name)),
    }
}
