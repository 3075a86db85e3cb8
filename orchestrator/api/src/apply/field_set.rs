//! A set of fields: what one manager owns, what one apply sets, what one write
//! changed. A tree: at each level the elements that are themselves in the set
//! (`members`), and the elements under which some deeper field is (`children`).
//! An object field with owned members, like `spec`, is usually only a child; a leaf
//! such as `spec.replicas`, or a list item a manager added, is a member.
//!
//! Invariant: no child set is empty (every operation drops the ones it empties).

use std::collections::{BTreeMap, BTreeSet};

use super::path::{Path, PathElement};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// A set of these paths.
    pub fn of(paths: impl IntoIterator<Item = Path>) -> FieldSet {
        let mut set = FieldSet::new();
        for path in paths {
            set.insert(&path.0);
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds the field at `path`; the empty path adds nothing.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the field at `path` is in the set (not merely something under it).
    pub fn contains(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|child| child.contains(rest)),
        }
    }

    /// Whether `element` of this level is itself in the set.
    pub fn has_member(&self, element: &PathElement) -> bool {
        self.members.contains(element)
    }

    /// The fields under `element` (relative to it), if any.
    pub fn child(&self, element: &PathElement) -> Option<&FieldSet> {
        self.children.get(element)
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    pub(crate) fn insert_member(&mut self, element: PathElement) {
        self.members.insert(element);
    }

    pub(crate) fn insert_child(&mut self, element: PathElement, child: FieldSet) {
        if child.is_empty() {
            return;
        }
        match self.children.get_mut(&element) {
            Some(existing) => *existing = existing.union(&child),
            None => {
                self.children.insert(element, child);
            }
        }
    }

    /// Every field in the set, in order.
    pub fn paths(&self) -> Vec<Path> {
        let mut paths = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut paths);
        paths.sort();
        paths
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, into: &mut Vec<Path>) {
        for member in &self.members {
            prefix.push(member.clone());
            into.push(Path(prefix.clone()));
            prefix.pop();
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect_paths(prefix, into);
            prefix.pop();
        }
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut union = self.clone();
        union.members.extend(other.members.iter().cloned());
        for (element, child) in &other.children {
            union.insert_child(element.clone(), child.clone());
        }
        union
    }

    /// The fields of `self` that are not in `other`. A field of `other` takes away
    /// only itself, not what lies under it (see `recursive_difference`).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: self
                .children
                .iter()
                .filter_map(|(element, child)| {
                    let rest = match other.children.get(element) {
                        Some(taken) => child.difference(taken),
                        None => child.clone(),
                    };
                    (!rest.is_empty()).then(|| (element.clone(), rest))
                })
                .collect(),
        }
    }

    /// The fields of `self` that are neither in `other` nor under a field of `other`.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: self
                .children
                .iter()
                .filter(|(element, _)| !other.members.contains(*element))
                .filter_map(|(element, child)| {
                    let rest = match other.children.get(element) {
                        Some(taken) => child.recursive_difference(taken),
                        None => child.clone(),
                    };
                    (!rest.is_empty()).then(|| (element.clone(), rest))
                })
                .collect(),
        }
    }

    /// The fields in both.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: self
                .children
                .iter()
                .filter_map(|(element, child)| {
                    let common = child.intersection(other.children.get(element)?);
                    (!common.is_empty()).then(|| (element.clone(), common))
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> Path {
        Path(
            text.split('/')
                .map(|part| match part.strip_prefix("k=") {
                    Some(name) => {
                        let mut key = serde_json::Map::new();
                        key.insert("name".into(), json!(name));
                        PathElement::key(key)
                    }
                    None => PathElement::field(part),
                })
                .collect(),
        )
    }

    fn set(paths: &[&str]) -> FieldSet {
        FieldSet::of(paths.iter().map(|p| path(p)))
    }

    #[test]
    fn members_and_what_lies_under_them_are_different_things() {
        let owned = set(&["spec/replicas", "spec/template/spec/containers/k=c/image"]);
        assert!(owned.contains(&path("spec/replicas").0));
        assert!(!owned.contains(&path("spec").0), "spec is only on the way");
        assert!(owned.contains(&path("spec/template/spec/containers/k=c/image").0));
        assert!(!owned.contains(&path("spec/template/spec/containers/k=c").0));
        assert_eq!(
            owned.paths().iter().map(Path::to_string).collect::<Vec<_>>(),
            [".spec.replicas", r#".spec.template.spec.containers[name="c"].image"#]
        );
        assert!(FieldSet::new().is_empty());
        assert!(!owned.is_empty());
    }

    #[test]
    fn union_difference_and_intersection() {
        let a = set(&["spec/replicas", "spec/paused", "metadata/labels/app"]);
        let b = set(&["spec/replicas", "metadata/labels/tier"]);
        assert_eq!(
            a.union(&b),
            set(&[
                "spec/replicas",
                "spec/paused",
                "metadata/labels/app",
                "metadata/labels/tier"
            ])
        );
        assert_eq!(a.difference(&b), set(&["spec/paused", "metadata/labels/app"]));
        assert_eq!(a.intersection(&b), set(&["spec/replicas"]));
        // Emptied levels go: no `metadata` left behind in the intersection.
        assert!(a.intersection(&b).child(&PathElement::field("metadata")).is_none());
        assert_eq!(a.difference(&a), FieldSet::new());
        assert_eq!(a.intersection(&FieldSet::new()), FieldSet::new());
    }

    #[test]
    fn difference_takes_members_only_recursive_difference_takes_subtrees() {
        let owned = set(&["status", "status/replicas", "spec/replicas"]);
        let status = set(&["status"]);
        assert_eq!(owned.difference(&status), set(&["status/replicas", "spec/replicas"]));
        assert_eq!(owned.recursive_difference(&status), set(&["spec/replicas"]));
    }
}
