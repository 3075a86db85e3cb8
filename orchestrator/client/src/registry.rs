//! Typed objects in the store: each kind under `/registry/<resource>/...` as JSON,
//! with `metadata.resourceVersion` taken from the key's mod_revision on every read
//! (it is never stored), and writes that are conditional on it.

use berth_api::kinds::Object;
use berth_api::meta::{MetaExt, ObjectMeta};
use berth_api::names::new_uid;
use berth_api::objects::{Resource, Spec, key, prefix};
use berth_api::time;

use crate::kv::{Event, Fence, Kv, KvError, Record, Result, Watch};

/// Decodes a stored object and stamps its resourceVersion.
pub fn decode<S: Spec>(record: &Record) -> Result<Resource<S>> {
    let mut object: Resource<S> = parse(record, S::DESCRIPTOR.kind)?;
    object.metadata.resource_version = Some(record.mod_revision.to_string());
    Ok(object)
}

/// Decodes a stored object of `kind` as JSON, whatever its fields, and stamps its
/// resourceVersion (for the API server, which serves objects as they are stored).
pub fn decode_value(record: &Record, kind: &str) -> Result<serde_json::Value> {
    let mut object: serde_json::Value = parse(record, kind)?;
    let Some(fields) = object.as_object_mut() else {
        return Err(KvError::Other(format!(
            "stored {kind} at {} is not an object",
            record.key
        )));
    };
    let metadata = fields.entry("metadata").or_insert_with(|| serde_json::json!({}));
    if !metadata.is_object() {
        *metadata = serde_json::json!({});
    }
    metadata["resourceVersion"] = record.mod_revision.to_string().into();
    Ok(object)
}

/// The one way a stored value is read: JSON, with an error naming the kind and key;
/// a value still encrypted (no configured key opened it) is refused with the key's
/// name, and left as it is in the store.
fn parse<T: serde::de::DeserializeOwned>(record: &Record, kind: &str) -> Result<T> {
    if let Some(message) = crate::envelope::unreadable(&record.key, &record.value) {
        return Err(KvError::Other(format!("stored {kind} at {message}")));
    }
    serde_json::from_slice(&record.value)
        .map_err(|e| KvError::Other(format!("stored {kind} at {} does not decode: {e}", record.key)))
}

/// Encodes an object for the store (without its resourceVersion).
pub fn encode<S: Spec>(object: &Resource<S>) -> Vec<u8> {
    object.stored_form()
}

/// What the registry's writes need of an object: typed objects ([`Resource`]) and
/// objects of a kind known only at run time ([`Object`], the API server's) are
/// written by the same rules, in [`Registry::create`] and [`Registry::update`].
pub trait Stored: Clone {
    fn key(&self) -> String;
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    /// The stored form: with `kind` and `apiVersion`, without a resourceVersion.
    fn encode(&self) -> Vec<u8>;
    /// Reads a stored object of `self`'s kind.
    fn decode_stored(&self, record: &Record) -> Result<Self>;
    /// Whether `other` has the same spec (an update that changes it bumps the generation).
    fn has_spec_of(&self, other: &Self) -> bool;
}

impl<S: Spec> Stored for Resource<S> {
    fn key(&self) -> String {
        Resource::key(self)
    }

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn encode(&self) -> Vec<u8> {
        self.stored_form()
    }

    fn decode_stored(&self, record: &Record) -> Result<Self> {
        decode::<S>(record)
    }

    fn has_spec_of(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Stored for Object {
    fn key(&self) -> String {
        Object::key(self)
    }

    fn metadata(&self) -> &ObjectMeta {
        Object::metadata(self)
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        Object::metadata_mut(self)
    }

    fn encode(&self) -> Vec<u8> {
        self.stored_form()
    }

    fn decode_stored(&self, record: &Record) -> Result<Self> {
        let value = decode_value(record, self.kind())?;
        (self.descriptor().decode)(&value).map_err(|e| KvError::Other(e.to_string()))
    }

    fn has_spec_of(&self, other: &Self) -> bool {
        self.same_spec(other)
    }
}

/// `object` as it is created: a uid when it has none, its creation time, its
/// first generation, no deletion time.
pub fn new_object<T: Stored>(object: &T) -> T {
    let mut object = object.clone();
    let metadata = object.metadata_mut();
    if metadata.uid().is_empty() {
        metadata.uid = Some(new_uid());
    }
    metadata.creation_timestamp = Some(time::now());
    metadata.generation = Some(1);
    metadata.deletion_timestamp = None;
    object
}

/// Typed reads and conditional writes of objects.
#[derive(Clone)]
pub struct Registry {
    pub kv: Kv,
}

impl Registry {
    pub fn new(kv: Kv) -> Self {
        Registry { kv }
    }

    pub async fn get<S: Spec>(&self, namespace: &str, name: &str) -> Result<Option<Resource<S>>> {
        match self.kv.get(&key::<S>(namespace, name)).await? {
            Some(kv) => Ok(Some(decode(&kv)?)),
            None => Ok(None),
        }
    }

    /// Every object of a kind (in one namespace, or all with `None`), and the store
    /// revision of the read: a watch from revision + 1 misses nothing.
    pub async fn list<S: Spec>(&self, namespace: Option<&str>) -> Result<(Vec<Resource<S>>, i64)> {
        let (kvs, revision) = self.kv.list(&prefix::<S>(namespace)).await?;
        let objects = kvs.iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok((objects, revision))
    }

    /// Creates an object, filling in uid, creationTimestamp and generation.
    pub async fn create<T: Stored>(&self, object: &T, fence: Option<&Fence>) -> Result<T> {
        self.create_leased(object, 0, fence).await
    }

    /// Creates an object attached to a lease (0: none): it goes when the lease does.
    pub async fn create_leased<T: Stored>(&self, object: &T, lease: i64, fence: Option<&Fence>) -> Result<T> {
        let mut object = new_object(object);
        let revision = self.kv.create(&object.key(), object.encode(), lease, fence).await?;
        object.metadata_mut().resource_version = Some(revision.to_string());
        Ok(object)
    }

    /// Creates an object together with other writes that must land with it or not
    /// at all (a quota's charged `status.used`: each `(key, mod_revision, value)` is
    /// written only if the key is still at that revision). A charge that moved gives
    /// `Conflict` (read the quota again and charge anew); the rest as [`create`](Self::create).
    pub async fn create_with<T: Stored>(
        &self,
        object: &T,
        fence: Option<&Fence>,
        also: &[(String, i64, Vec<u8>)],
    ) -> Result<T> {
        if also.is_empty() {
            return self.create(object, fence).await;
        }
        let mut object = new_object(object);
        let key = object.key();
        let mut together = crate::kv::Together {
            conditions: vec![(key.clone(), 0)],
            puts: vec![(key, object.encode())],
            deletes: Vec::new(),
        };
        if let Some(fence) = fence {
            together.conditions.push((fence.key.clone(), fence.mod_revision));
        }
        for (key, revision, value) in also {
            together.conditions.push((key.clone(), *revision));
            together.puts.push((key.clone(), value.clone()));
        }
        match self.kv.write_together(&together).await? {
            Ok(revision) => {
                object.metadata_mut().resource_version = Some(revision.to_string());
                Ok(object)
            }
            Err(0) => Err(KvError::AlreadyExists),
            Err(1) if fence.is_some() => Err(KvError::Fenced),
            Err(_) => Err(KvError::Conflict { current: 0 }),
        }
    }

    /// Replaces an object if it is still at `metadata.resourceVersion`; bumps the
    /// generation when the spec changed.
    pub async fn update<T: Stored>(&self, object: &T, fence: Option<&Fence>) -> Result<T> {
        let (mut object, key, expected) = self.prepare_update(object).await?;
        let revision = self.kv.update(&key, object.encode(), expected, fence).await?;
        object.metadata_mut().resource_version = Some(revision.to_string());
        Ok(object)
    }

    /// What an update writes: the object with its generation bumped when the spec
    /// changed, its key, and the revision it must still be at.
    async fn prepare_update<T: Stored>(&self, object: &T) -> Result<(T, String, i64)> {
        let expected: i64 = object
            .metadata()
            .resource_version()
            .parse()
            .map_err(|_| KvError::Other("metadata.resourceVersion: required for an update".into()))?;
        let key = object.key();
        let mut object = object.clone();
        let metadata = object.metadata_mut();
        metadata.generation = Some(metadata.generation().max(1));
        if let Some(current) = self.kv.get(&key).await?
            && let Ok(current) = object.decode_stored(&current)
            && current.metadata().resource_version == object.metadata().resource_version
            && !current.has_spec_of(&object)
        {
            object.metadata_mut().generation = Some(current.metadata().generation() + 1);
        }
        Ok((object, key, expected))
    }

    /// [`update`](Self::update) together with other writes (a quota's charge), each
    /// `(key, mod_revision, value)` only if the key is still at that revision; any
    /// moved key gives `Conflict`.
    pub async fn update_with<T: Stored>(
        &self,
        object: &T,
        fence: Option<&Fence>,
        also: &[(String, i64, Vec<u8>)],
    ) -> Result<T> {
        if also.is_empty() {
            return self.update(object, fence).await;
        }
        let (mut object, key, expected) = self.prepare_update(object).await?;
        let mut together = crate::kv::Together {
            conditions: vec![(key.clone(), expected)],
            puts: vec![(key, object.encode())],
            deletes: Vec::new(),
        };
        if let Some(fence) = fence {
            together.conditions.push((fence.key.clone(), fence.mod_revision));
        }
        for (key, revision, value) in also {
            together.conditions.push((key.clone(), *revision));
            together.puts.push((key.clone(), value.clone()));
        }
        match self.kv.write_together(&together).await? {
            Ok(revision) => {
                object.metadata_mut().resource_version = Some(revision.to_string());
                Ok(object)
            }
            Err(1) if fence.is_some() => Err(KvError::Fenced),
            Err(_) => Err(KvError::Conflict { current: 0 }),
        }
    }

    /// Reads, changes and writes an object, retrying on conflicts; `change`
    /// returns false to write nothing. Returns the object as written (or read).
    pub async fn modify<S: Spec>(
        &self,
        namespace: &str,
        name: &str,
        fence: Option<&Fence>,
        mut change: impl FnMut(&mut Resource<S>) -> bool,
    ) -> Result<Resource<S>> {
        loop {
            let Some(mut object) = self.get::<S>(namespace, name).await? else {
                return Err(KvError::NotFound);
            };
            if !change(&mut object) {
                return Ok(object);
            }
            match self.update(&object, fence).await {
                Err(KvError::Conflict { .. }) => continue,
                other => return other,
            }
        }
    }

    /// Deletes an object (if still at `resource_version`, when given); returns it
    /// as it was.
    pub async fn delete<S: Spec>(
        &self,
        namespace: &str,
        name: &str,
        resource_version: Option<i64>,
        fence: Option<&Fence>,
    ) -> Result<Resource<S>> {
        let prev = self
            .kv
            .delete(&key::<S>(namespace, name), resource_version, fence)
            .await?;
        decode(&prev)
    }

    /// Watches a kind from `start_revision` (inclusive).
    pub async fn watch<S: Spec>(&self, namespace: Option<&str>, start_revision: i64) -> Result<TypedWatch<S>> {
        Ok(TypedWatch {
            inner: self.kv.watch(&prefix::<S>(namespace), start_revision).await?,
            _kind: std::marker::PhantomData,
        })
    }
}

/// A change to an object, as a watch reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<S: Spec> {
    /// Created or updated (`created` when its create_revision is this revision).
    Put { object: Resource<S>, created: bool },
    /// Deleted; the object as it was, with the deletion revision.
    Deleted { object: Resource<S>, revision: i64 },
}

pub struct TypedWatch<S: Spec> {
    inner: Watch,
    _kind: std::marker::PhantomData<S>,
}

impl<S: Spec> TypedWatch<S> {
    /// The next batch: the header revision and the changes (empty for progress).
    /// Objects that do not decode are logged and skipped.
    pub async fn next(&mut self) -> Option<Result<(i64, Vec<Change<S>>)>> {
        let batch = self.inner.next().await?;
        Some(batch.map(|(revision, events)| {
            let changes = events
                .into_iter()
                .filter_map(|event| {
                    let change = match &event {
                        Event::Put(kv) => decode(kv).map(|object| Change::Put {
                            object,
                            created: kv.create_revision == kv.mod_revision,
                        }),
                        Event::Delete { prev, revision } => decode(prev).map(|mut object| {
                            object.metadata.resource_version = Some(revision.to_string());
                            Change::Deleted {
                                object,
                                revision: *revision,
                            }
                        }),
                    };
                    change
                        .map_err(|e| tracing::warn!(error = %e, "skipping an object"))
                        .ok()
                })
                .collect();
            (revision, changes)
        }))
    }
}
