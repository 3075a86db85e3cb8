//! Owner references: who created an object and manages it (garbage collection and
//! the controllers follow them).

use crate::meta::{MetaExt, ObjectMeta, OwnerReference};
use crate::objects::{Resource, Spec};

/// The owner reference a controller puts on what it creates.
pub fn controller_ref<S: Spec>(owner: &Resource<S>) -> OwnerReference {
    OwnerReference {
        api_version: S::DESCRIPTOR.api_version(),
        kind: S::DESCRIPTOR.kind.to_string(),
        name: owner.metadata.name().to_string(),
        uid: owner.metadata.uid().to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The managing owner of an object (the reference with `controller: true`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references().iter().find(|r| r.controller == Some(true))
}

/// Whether `meta`'s controller is the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    !uid.is_empty() && controller_of(meta).is_some_and(|r| r.uid == uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_refs_are_found_by_uid() {
        let mut meta = ObjectMeta::default();
        assert!(controller_of(&meta).is_none());
        meta.owner_references_mut().push(OwnerReference {
            kind: "Deployment".into(),
            uid: "u1".into(),
            controller: None,
            ..Default::default()
        });
        assert!(!is_controlled_by(&meta, "u1"), "an owner that is not the controller");
        meta.owner_references_mut().push(OwnerReference {
            kind: "ReplicaSet".into(),
            uid: "u2".into(),
            controller: Some(true),
            ..Default::default()
        });
        assert!(is_controlled_by(&meta, "u2"));
        assert!(!is_controlled_by(&meta, ""));
        assert_eq!(controller_of(&meta).unwrap().kind, "ReplicaSet");
    }
}
