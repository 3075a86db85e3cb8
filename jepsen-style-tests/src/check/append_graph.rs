//! The dependency graph between list-append transactions, and its cycles.
//!
//! Edges (Adya's, as Elle infers them from lists):
//! - `ww` on key k: T1's element comes right before T2's in k's list: T2 overwrote T1;
//! - `wr` on key k: T2 read k's list ending with T1's element: T2 read T1's write;
//! - `rw` on key k: T1 read k's list, and T2's element is the next one appended:
//!   T2 overwrote what T1 read.
//!
//! A serializable history has an acyclic graph. A cycle of `ww` only is G0, with `wr`
//! G1c, with `rw` G2 (G-single when exactly one). Cycles are found per strongly
//! connected component (Tarjan, iterative), and one shortest cycle is shown for each.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DependencyKind {
    WriteWrite,
    WriteRead,
    ReadWrite,
}

impl DependencyKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            DependencyKind::WriteWrite => "ww",
            DependencyKind::WriteRead => "wr",
            DependencyKind::ReadWrite => "rw",
        }
    }
}

/// One edge's label: its kind and the key (an index the caller names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dependency {
    pub kind: DependencyKind,
    pub key: usize,
}

#[derive(Debug, Default)]
pub(crate) struct DependencyGraph {
    edges: Vec<Vec<(usize, Dependency)>>,
}

/// A cycle: each node with the edge that leaves it towards the next (the last one's
/// edge leads back to the first).
pub(crate) type Cycle = Vec<(usize, Dependency)>;

const UNVISITED: usize = usize::MAX;

impl DependencyGraph {
    pub(crate) fn new(nodes: usize) -> Self {
        Self {
            edges: vec![Vec::new(); nodes],
        }
    }

    pub(crate) fn add(&mut self, from: usize, to: usize, dependency: Dependency) {
        if from != to {
            self.edges[from].push((to, dependency));
        }
    }

    /// One shortest cycle through some node of every strongly connected component
    /// that has more than one node.
    pub(crate) fn cycles(&self) -> Vec<Cycle> {
        self.components()
            .into_iter()
            .filter(|c| c.len() > 1)
            .filter_map(|c| self.shortest_cycle(&c))
            .collect()
    }

    /// Tarjan's algorithm with an explicit call stack.
    fn components(&self) -> Vec<Vec<usize>> {
        let n = self.edges.len();
        let (mut index, mut low) = (vec![UNVISITED; n], vec![0; n]);
        let mut on_stack = vec![false; n];
        let (mut stack, mut components) = (Vec::new(), Vec::new());
        let mut counter = 0;
        for root in 0..n {
            if index[root] != UNVISITED {
                continue;
            }
            let mut calls: Vec<(usize, usize)> = vec![(root, 0)];
            index[root] = counter;
            low[root] = counter;
            counter += 1;
            stack.push(root);
            on_stack[root] = true;
            while let Some(&mut (v, ref mut next_edge)) = calls.last_mut() {
                if let Some(&(w, _)) = self.edges[v].get(*next_edge) {
                    *next_edge += 1;
                    if index[w] == UNVISITED {
                        index[w] = counter;
                        low[w] = counter;
                        counter += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        calls.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    components.push(component);
                }
            }
        }
        components
    }

    /// Breadth-first from the component's smallest node back to itself, inside it.
    fn shortest_cycle(&self, component: &[usize]) -> Option<Cycle> {
        let mut inside = vec![false; self.edges.len()];
        for &v in component {
            inside[v] = true;
        }
        let start = *component.iter().min()?;
        let mut parent: Vec<Option<(usize, Dependency)>> = vec![None; self.edges.len()];
        let mut queue = VecDeque::from([start]);
        while let Some(u) = queue.pop_front() {
            for &(w, dependency) in &self.edges[u] {
                if !inside[w] {
                    continue;
                }
                if w == start {
                    let mut cycle = vec![(u, dependency)];
                    let mut at = u;
                    while at != start {
                        let (p, d) = parent[at].expect("reached through a parent");
                        cycle.push((p, d));
                        at = p;
                    }
                    cycle.reverse();
                    return Some(cycle);
                }
                if parent[w].is_none() && w != start {
                    parent[w] = Some((u, dependency));
                    queue.push_back(w);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WW: Dependency = Dependency {
        kind: DependencyKind::WriteWrite,
        key: 0,
    };
    const WR: Dependency = Dependency {
        kind: DependencyKind::WriteRead,
        key: 1,
    };

    #[test]
    fn an_acyclic_graph_has_no_cycles() {
        let mut g = DependencyGraph::new(4);
        g.add(0, 1, WW);
        g.add(1, 2, WW);
        g.add(0, 2, WR);
        g.add(3, 3, WW);
        assert!(g.cycles().is_empty());
    }

    #[test]
    fn a_cycle_is_found_and_shown_in_order() {
        let mut g = DependencyGraph::new(5);
        g.add(0, 1, WW);
        g.add(1, 2, WW);
        g.add(2, 3, WR);
        g.add(3, 1, WW);
        g.add(3, 4, WW);
        let cycles = g.cycles();
        assert_eq!(cycles, vec![vec![(1, WW), (2, WR), (3, WW)]]);
    }

    #[test]
    fn the_shortest_cycle_is_shown() {
        let mut g = DependencyGraph::new(4);
        g.add(0, 1, WW);
        g.add(1, 2, WW);
        g.add(2, 3, WW);
        g.add(3, 0, WW);
        g.add(1, 0, WR);
        assert_eq!(g.cycles(), vec![vec![(0, WW), (1, WR)]]);
    }

    #[test]
    fn separate_components_give_separate_cycles_and_deep_chains_do_not_overflow() {
        let n = 200_000;
        let mut g = DependencyGraph::new(n + 2);
        for i in 0..n - 1 {
            g.add(i, i + 1, WW);
        }
        g.add(n - 1, 0, WW);
        g.add(n, n + 1, WW);
        g.add(n + 1, n, WR);
        let cycles = g.cycles();
        assert_eq!(cycles.len(), 2);
        assert!(cycles.iter().any(|c| c.len() == n));
        assert!(cycles.iter().any(|c| c.len() == 2));
    }
}
