//! Admission's store-side steps, shared by the API server's creates and the
//! controllers that create pods and claims (which write the store directly): read
//! the namespace's Pod Security labels, LimitRanges and ResourceQuotas, apply
//! `berth_api::admission`'s rules, and write a new object together with its
//! quotas' charged `status.used` in one transaction, so that two creates racing
//! for a quota's last slot cannot both pass (the loser's charge no longer matches
//! the quota it read; it reads again and is refused).
//!
//! Admission reads serializably (the replica's applied state, as kube-apiserver's
//! admission reads its informers' caches): a quota read stale makes the create's
//! transaction fail, and the next charge reads it linearizably. Creates made
//! together (a ReplicaSet's batch) share those reads (admission_reads.rs).
//!
//! ```text
//! prepare: the pod's ServiceAccount ─► its name, pull secrets, token volume (refused if missing)
//!          its PriorityClass ─► spec.priority, preemptionPolicy (admission_priority.rs)
//!          namespace labels ─► Pod Security (pods refused, templates warned)
//!          LimitRanges      ─► defaults (pods), bounds (pods, claims)
//! charges: ResourceQuotas   ─► quota::charge per quota ─► (quota key, its revision, new status)
//! create:  txn { object absent, fence, each quota unchanged } ─► object + quotas' status
//! ```

use berth_api::admission::limit_range::{self, LimitRange};
use berth_api::admission::pod_security::{self, Level};
use berth_api::admission::quota;
use berth_api::admission::service_account;
use berth_api::kinds::Object;
use berth_api::kinds::limit_range::LIMIT_RANGE;
use berth_api::kinds::service_account::{DEFAULT_SERVICE_ACCOUNT, SERVICE_ACCOUNT, ServiceAccount};
use berth_api::meta::MetaExt;
use berth_api::objects::{
    Deployment, NamespaceSpec, PersistentVolumeClaim, Pod, PodSpec, ReplicaSet, ResourceQuota, ResourceQuotaSpec,
    StatefulSet, key,
};
use berth_api::qos::qos_class;

use crate::admission_reads::{Reads, SharedReads};
use crate::kv::{Fence, Kv, KvError};
use crate::registry::{Registry, decode};

/// How often a create whose quota moved under it is charged again.
const MAX_CHARGES: usize = 16;

/// Why a create was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Refused by a rule: Kubernetes' text, to follow `<resource> "<name>" is forbidden: `.
    Forbidden(String),
    /// The store failed (or the object exists, or the fence moved).
    Store(KvError),
}

impl From<KvError> for Refusal {
    fn from(e: KvError) -> Self {
        Refusal::Store(e)
    }
}

/// A quota write made with a create: `(key, the revision it was read at, new value)`.
pub type Charge = (String, i64, Vec<u8>);

/// The cluster's admission settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Admission {
    /// The Pod Security level enforced in namespaces without an `enforce` label
    /// (`--pod-security-default-enforce`; berth's default is `baseline`).
    pub pod_security_default: Level,
    /// ServiceAccount admission (`berth server` turns it on, as kube-apiserver
    /// has it): a pod's account defaults to `default`, must exist, and lends the
    /// pod its imagePullSecrets.
    pub service_accounts: bool,
    /// With [`service_accounts`](Self::service_accounts): the `kube-api-access-*`
    /// token volume mounted in every container (`berth server` turns it on when it
    /// can sign tokens: the agents ask for them by TokenRequest).
    pub mount_service_account_tokens: bool,
    /// DefaultTolerationSeconds: the `tolerationSeconds` of the not-ready and
    /// unreachable NoExecute tolerations a new pod gets when it has none of its own
    /// (`--default-not-ready-toleration-seconds`,
    /// `--default-unreachable-toleration-seconds`); `None`: not added.
    pub default_not_ready_toleration_seconds: Option<i64>,
    pub default_unreachable_toleration_seconds: Option<i64>,
}

/// What admission made of a new object: the client's warnings and the audit event's
/// annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    pub warnings: Vec<String>,
    pub audit: Vec<(String, String)>,
}

impl Admission {
    /// Pod Security and LimitRanges for a new object: a pod may get default
    /// requests and limits; a refusal names the rule. Returns the warnings for the
    /// client (Pod Security's `warn` mode, and workloads' templates).
    pub async fn prepare(&self, kv: &Kv, object: &mut Object) -> Result<Vec<String>, Refusal> {
        self.prepare_audited(kv, object).await.map(|prepared| prepared.warnings)
    }

    /// [`Admission::prepare`], with the annotations for the request's audit event.
    pub async fn prepare_audited(&self, kv: &Kv, object: &mut Object) -> Result<Prepared, Refusal> {
        let mut prepared = Prepared::default();
        prepared.warnings = self.admit(Reads::direct(kv), object, &mut prepared.audit).await?;
        Ok(prepared)
    }

    async fn admit(
        &self,
        reads: Reads<'_>,
        object: &mut Object,
        audit: &mut Vec<(String, String)>,
    ) -> Result<Vec<String>, Refusal> {
        let namespace = object.metadata().namespace().to_string();
        if self.service_accounts
            && let Some(pod) = object.downcast_mut::<Pod>()
        {
            let name = service_account::account_name(&pod.spec).to_string();
            let account = service_account(reads, &namespace, &name).await?;
            let suffix = berth_api::names::random_suffix(5);
            service_account::admit(
                &namespace,
                &mut pod.spec,
                account.as_ref(),
                self.mount_service_account_tokens,
                &suffix,
            )
            .map_err(Refusal::Forbidden)?;
        }
        crate::admission_priority::admit(reads, object).await?;
        if let Some(pod) = object.downcast_mut::<Pod>() {
            berth_api::tolerations::add_defaults(
                &mut pod.spec.tolerations,
                self.default_not_ready_toleration_seconds,
                self.default_unreachable_toleration_seconds,
            );
        }
        let is_pod = object.downcast_ref::<Pod>().is_some();
        let template = template_of(object);
        let is_claim = object.downcast_ref::<PersistentVolumeClaim>().is_some();
        if !is_pod && template.is_none() && !is_claim {
            return Ok(Vec::new());
        }
        let mut warnings = Vec::new();
        if is_pod || template.is_some() {
            let policy = self.namespace_policy(reads, &namespace).await?;
            let spec = match object.downcast_ref::<Pod>() {
                Some(pod) => pod.spec.clone(),
                None => template.unwrap_or_default(),
            };
            let verdict = pod_security::admit(&namespace, &policy, &spec, is_pod);
            audit.extend(verdict.audit);
            if let Some(refusal) = verdict.refusal {
                return Err(Refusal::Forbidden(refusal));
            }
            warnings = verdict.warnings;
        }
        if !is_pod && !is_claim {
            return Ok(warnings);
        }
        let ranges = limit_ranges(reads, &namespace).await?;
        if ranges.is_empty() {
            return Ok(warnings);
        }
        let errors = if let Some(pod) = object.downcast_mut::<Pod>() {
            if limit_range::apply_defaults(&ranges, &mut pod.spec) && pod.status.qos_class.is_some() {
                pod.status.qos_class = Some(qos_class(&pod.spec).to_string());
            }
            limit_range::pod_errors(&ranges, &pod.spec)
        } else if let Some(claim) = object.downcast_ref::<PersistentVolumeClaim>() {
            limit_range::claim_errors(&ranges, &claim.spec)
        } else {
            Vec::new()
        };
        match limit_range::aggregate(&errors) {
            Some(refusal) => Err(Refusal::Forbidden(refusal)),
            None => Ok(warnings),
        }
    }

    /// Pod Security on an update, as Kubernetes checks one: a pod whose containers or
    /// images changed is checked as a new pod would be (refused when it breaks the
    /// enforced level); a workload whose pod template changed gets the warnings a new
    /// one would. Other updates are not checked.
    pub async fn check_update(&self, kv: &Kv, old: &Object, new: &Object) -> Result<Prepared, Refusal> {
        if let Some(class) = new.downcast_ref::<berth_api::kinds::priority_class::PriorityClass>() {
            crate::admission_priority::check_default(kv, class).await?;
            return Ok(Prepared::default());
        }
        let namespace = new.metadata().namespace().to_string();
        let (spec, is_pod) = match (old.downcast_ref::<Pod>(), new.downcast_ref::<Pod>()) {
            (Some(old), Some(new)) if is_significant_pod_update(&old.spec, &new.spec) => (new.spec.clone(), true),
            (Some(_), Some(_)) => return Ok(Prepared::default()),
            _ => match (template_of(old), template_of(new)) {
                (Some(before), Some(after)) if before != after => (after, false),
                _ => return Ok(Prepared::default()),
            },
        };
        let policy = self.namespace_policy(Reads::direct(kv), &namespace).await?;
        let verdict = pod_security::admit(&namespace, &policy, &spec, is_pod);
        if let Some(refusal) = verdict.refusal {
            return Err(Refusal::Forbidden(refusal));
        }
        Ok(Prepared {
            warnings: verdict.warnings,
            audit: verdict.audit,
        })
    }

    /// The namespace's Pod Security policy (the default where it has no label, or
    /// does not exist yet: its create will be refused for that).
    async fn namespace_policy(
        &self,
        reads: Reads<'_>,
        namespace: &str,
    ) -> Result<pod_security::NamespacePolicy, KvError> {
        let labels = match reads.get(&key::<NamespaceSpec>("", namespace)).await? {
            Some(record) => decode::<NamespaceSpec>(&record)?.metadata.labels().clone(),
            None => Default::default(),
        };
        Ok(pod_security::namespace_policy(&labels, self.pod_security_default))
    }

    /// Prepares and creates `object` with its quota charges, charging again when a
    /// quota moved under it. Returns the object as created and the warnings.
    pub async fn create(
        &self,
        kv: &Kv,
        object: Object,
        fence: Option<&Fence>,
    ) -> Result<(Object, Vec<String>), Refusal> {
        self.create_reading(Reads::direct(kv), object, fence).await
    }

    async fn create_reading(
        &self,
        reads: Reads<'_>,
        mut object: Object,
        fence: Option<&Fence>,
    ) -> Result<(Object, Vec<String>), Refusal> {
        let warnings = self.admit(reads, &mut object, &mut Vec::new()).await?;
        let registry = Registry::new(reads.kv.clone());
        for attempt in 0..MAX_CHARGES {
            let charged = charges_from(reads, &object, attempt > 0).await?;
            match registry.create_with(&object, fence, &charged).await {
                Err(KvError::Conflict { .. }) if !charged.is_empty() => continue,
                Ok(created) => return Ok((created, warnings)),
                Err(e) => return Err(Refusal::Store(e)),
            }
        }
        Err(Refusal::Store(KvError::Conflict { current: 0 }))
    }

    /// [`create`](Self::create) for a typed pod (the controllers').
    pub async fn create_pod(&self, kv: &Kv, pod: &Pod, fence: Option<&Fence>) -> Result<Pod, Refusal> {
        self.create_pod_sharing(kv, pod, fence, None).await
    }

    /// [`create_pod`](Self::create_pod), for one of a batch of creates made
    /// together that share their serializable reads through `shared`.
    pub async fn create_pod_sharing(
        &self,
        kv: &Kv,
        pod: &Pod,
        fence: Option<&Fence>,
        shared: Option<&SharedReads>,
    ) -> Result<Pod, Refusal> {
        let reads = Reads::new(kv, shared);
        let (created, _) = self.create_reading(reads, Object::new(pod.clone()), fence).await?;
        created
            .downcast_ref::<Pod>()
            .cloned()
            .ok_or_else(|| Refusal::Store(KvError::Other("a pod created as another kind".into())))
    }
}

/// The quota writes an update needs: what the new object uses beyond the old (a
/// Service that takes node ports, a claim that grows) charged to every quota that
/// counts it, as Kubernetes charges updates. A quota it would exceed refuses it.
pub async fn update_charges(kv: &Kv, old: &Object, new: &Object) -> Result<Vec<Charge>, Refusal> {
    let before = quota::usage(old);
    let delta: quota::Amounts = quota::usage(new)
        .into_iter()
        .map(|(name, value)| {
            let grown = value - before.get(&name).copied().unwrap_or(0);
            (name, grown)
        })
        .filter(|(_, grown)| *grown > 0)
        .collect();
    if delta.is_empty() || !new.descriptor().namespaced {
        return Ok(Vec::new());
    }
    let namespace = new.metadata().namespace();
    let quotas = quotas(Reads::direct(kv), namespace, true).await?;
    let mut charged = Vec::new();
    for q in &quotas {
        match quota::charge(q, new, &delta) {
            Ok(None) => {}
            Ok(Some(used)) => {
                let mut q: ResourceQuota = q.clone();
                q.status = quota::with_used(&q, &used);
                let revision = q.metadata.resource_version().parse().unwrap_or(0);
                charged.push((q.key(), revision, q.stored_form()));
            }
            Err(refusal) => return Err(Refusal::Forbidden(refusal)),
        }
    }
    Ok(charged)
}

/// How often, and how far apart, a pod's `default` ServiceAccount is looked for
/// before the pod is refused: a namespace's controller makes it moments after the
/// namespace, and a pod created right after its namespace waits for it, as
/// kube-apiserver's ServiceAccount admission does (ten lookups for `default`, one
/// for any other name).
const DEFAULT_ACCOUNT_LOOKUPS: usize = 10;
const DEFAULT_ACCOUNT_PAUSE: std::time::Duration = std::time::Duration::from_millis(150);

/// The pod's ServiceAccount: read serializably, then linearizably when not found
/// (several times for `default`, which its controller is about to make).
async fn service_account(reads: Reads<'_>, namespace: &str, name: &str) -> Result<Option<ServiceAccount>, Refusal> {
    let key = SERVICE_ACCOUNT.key(namespace, name);
    let mut record = reads.get(&key).await?;
    let lookups = if name == DEFAULT_SERVICE_ACCOUNT {
        DEFAULT_ACCOUNT_LOOKUPS
    } else {
        1
    };
    for lookup in 0..lookups {
        if record.is_some() {
            break;
        }
        if lookup > 0 {
            tokio::time::sleep(DEFAULT_ACCOUNT_PAUSE).await;
        }
        record = reads.kv.get(&key).await?;
    }
    record
        .map(|record| {
            serde_json::from_slice::<ServiceAccount>(&record.value)
                .map_err(|e| Refusal::Store(KvError::Other(format!("{}: {e}", record.key))))
        })
        .transpose()
}

/// Whether a pod update changes what Pod Security looks at beyond what Kubernetes
/// exempts: the containers, or any container's image.
fn is_significant_pod_update(old: &PodSpec, new: &PodSpec) -> bool {
    let images =
        |containers: &[berth_api::objects::Container]| containers.iter().map(|c| c.image.clone()).collect::<Vec<_>>();
    images(&old.containers) != images(&new.containers)
        || images(old.init_containers.as_deref().unwrap_or_default())
            != images(new.init_containers.as_deref().unwrap_or_default())
}

/// A workload's pod template (Deployments, ReplicaSets, StatefulSets).
fn template_of(object: &Object) -> Option<PodSpec> {
    let template = if let Some(d) = object.downcast_ref::<Deployment>() {
        d.spec.template.spec.clone()
    } else if let Some(rs) = object.downcast_ref::<ReplicaSet>() {
        rs.spec.template.as_ref().and_then(|t| t.spec.clone())
    } else if let Some(s) = object.downcast_ref::<StatefulSet>() {
        s.spec.template.spec.clone()
    } else {
        return None;
    };
    Some(template.unwrap_or_default())
}

/// The namespace's LimitRanges (read serializably).
async fn limit_ranges(reads: Reads<'_>, namespace: &str) -> Result<Vec<LimitRange>, KvError> {
    let records = reads.list(&LIMIT_RANGE.prefix(Some(namespace))).await?;
    Ok(records
        .iter()
        .filter_map(|r| serde_json::from_slice::<LimitRange>(&r.value).ok())
        .collect())
}

/// The namespace's ResourceQuotas: linearizable when `fresh` (after a charge
/// failed on a quota that had moved), serializable otherwise.
async fn quotas(reads: Reads<'_>, namespace: &str, fresh: bool) -> Result<Vec<ResourceQuota>, KvError> {
    let prefix = berth_api::objects::prefix::<ResourceQuotaSpec>(Some(namespace));
    let records = match fresh {
        true => reads.kv.list(&prefix).await?.0,
        false => reads.list(&prefix).await?,
    };
    records.iter().map(decode).collect()
}

/// The quota writes a new object needs: each quota of its namespace that counts it,
/// with `status.used` charged. A quota it would exceed refuses it. `fresh` reads
/// the quotas linearizably: a create charges again that way when its write found a
/// quota moved.
pub async fn charges(kv: &Kv, object: &Object, fresh: bool) -> Result<Vec<Charge>, Refusal> {
    charges_from(Reads::direct(kv), object, fresh).await
}

async fn charges_from(reads: Reads<'_>, object: &Object, fresh: bool) -> Result<Vec<Charge>, Refusal> {
    let namespace = object.metadata().namespace();
    if !object.descriptor().namespaced || namespace.is_empty() {
        return Ok(Vec::new());
    }
    let quotas = quotas(reads, namespace, fresh).await?;
    if quotas.is_empty() {
        return Ok(Vec::new());
    }
    let usage = quota::usage(object);
    let mut charged = Vec::new();
    for q in &quotas {
        match quota::charge(q, object, &usage) {
            Ok(None) => {}
            Ok(Some(used)) => {
                let mut q: ResourceQuota = q.clone();
                q.status = quota::with_used(&q, &used);
                let revision = q.metadata.resource_version().parse().unwrap_or(0);
                charged.push((q.key(), revision, q.stored_form()));
            }
            Err(refusal) => return Err(Refusal::Forbidden(refusal)),
        }
    }
    Ok(charged)
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
