//! Why an apply was refused: fields it would change that other managers own. The
//! messages are kube-apiserver's, so kubectl's advice after them reads right:
//!
//! ```text
//! Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas
//! Apply failed with 2 conflicts: conflicts with "a":
//! - .spec.replicas
//! conflicts with "b" using apps/v1:
//! - .spec.paused
//! ```

use std::fmt;

use super::managed::ManagerId;
use super::path::Path;

/// One field another manager owns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    pub manager: ManagerId,
    pub path: Path,
}

impl Conflict {
    /// The message of the conflict's `StatusCause` (`FieldManagerConflict`); its field
    /// is `path.to_string()`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager)
    }
}

/// Every conflict of one apply, ordered by manager identifier, then path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts(Vec<Conflict>);

impl Conflicts {
    pub fn new(mut conflicts: Vec<Conflict>) -> Conflicts {
        conflicts.sort_by(|a, b| (a.manager.identifier(), &a.path).cmp(&(b.manager.identifier(), &b.path)));
        Conflicts(conflicts)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Conflict> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [only] = &self.0[..] {
            return write!(
                f,
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.manager, only.path
            );
        }
        let mut lines = Vec::new();
        let mut previous: Option<&ManagerId> = None;
        for conflict in &self.0 {
            if previous != Some(&conflict.manager) {
                lines.push(format!("conflicts with {}:", conflict.manager));
                previous = Some(&conflict.manager);
            }
            lines.push(format!("- {}", conflict.path));
        }
        write!(f, "Apply failed with {} conflicts: {}", self.0.len(), lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict(manager: ManagerId, field: &str) -> Conflict {
        Conflict {
            manager,
            path: Path::fields(&["spec", field]),
        }
    }

    #[test]
    fn one_conflict_is_one_line() {
        let conflicts = Conflicts::new(vec![conflict(
            ManagerId::update("kubectl-client-side-apply", "apps/v1", ""),
            "replicas",
        )]);
        assert_eq!(
            conflicts.to_string(),
            r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
        );
        let only = conflicts.iter().next().unwrap();
        assert_eq!(
            only.cause_message(),
            r#"conflict with "kubectl-client-side-apply" using apps/v1"#
        );
        assert_eq!(only.path.to_string(), ".spec.replicas");
    }

    #[test]
    fn several_are_grouped_by_manager() {
        let conflicts = Conflicts::new(vec![
            conflict(ManagerId::update("b", "apps/v1", ""), "paused"),
            conflict(ManagerId::apply("a", ""), "replicas"),
            conflict(ManagerId::apply("a", ""), "minReadySeconds"),
        ]);
        assert_eq!(conflicts.len(), 3);
        assert_eq!(
            conflicts.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"a\":\n- .spec.minReadySeconds\n- .spec.replicas\n\
             conflicts with \"b\" using apps/v1:\n- .spec.paused"
        );
    }
}
