//! Comparing what a reader got with the store: skipped, repeated,
//! unknown and out-of-order messages.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

/// The store's order of the run's messages: position of each id.
#[derive(Debug, Default)]
pub struct Truth {
    position: HashMap<String, usize>,
}

impl Truth {
    /// The store's list, oldest first.
    pub fn new(ids: &[String]) -> Self {
        let position = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        Self { position }
    }

    /// Messages in the store.
    pub fn len(&self) -> usize {
        self.position.len()
    }

    /// Whether `id` is in the store.
    pub fn contains(&self, id: &str) -> bool {
        self.position.contains_key(id)
    }

    /// How `received` compares with the store.
    pub fn check(&self, received: &[String]) -> Check {
        let distinct: HashSet<&str> = received.iter().map(String::as_str).collect();
        let known = distinct.iter().filter(|id| self.contains(id)).count();
        let positions: Vec<usize> = received
            .iter()
            .filter_map(|id| self.position.get(id).copied())
            .collect();
        Check {
            received: received.len() as u64,
            skipped: (self.len() - known) as u64,
            repeated: (received.len() - distinct.len()) as u64,
            unknown: (distinct.len() - known) as u64,
            out_of_order: positions.windows(2).filter(|w| w[1] < w[0]).count() as u64,
        }
    }
}

/// One reader against the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Messages received, repeats included.
    pub received: u64,
    /// Stored messages never received.
    pub skipped: u64,
    /// Receipts of a message already received.
    pub repeated: u64,
    /// Received ids the store does not have.
    pub unknown: u64,
    /// Messages received after one that the store places later.
    pub out_of_order: u64,
}

impl Check {
    /// Whether the reader got every message exactly once and nothing else.
    pub fn exact(&self) -> bool {
        self.skipped == 0 && self.repeated == 0 && self.unknown == 0
    }

    /// Adds another reader's counts.
    pub fn add(&mut self, other: Check) {
        self.received += other.received;
        self.skipped += other.skipped;
        self.repeated += other.repeated;
        self.unknown += other.unknown;
        self.out_of_order += other.out_of_order;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_exact_reader_has_nothing_to_report() {
        let truth = Truth::new(&ids(&["a", "b", "c"]));
        let check = truth.check(&ids(&["a", "b", "c"]));
        assert!(check.exact());
        assert_eq!(check.out_of_order, 0);
        assert_eq!(check.received, 3);
    }

    #[test]
    fn skips_repeats_strangers_and_inversions_are_counted() {
        let truth = Truth::new(&ids(&["a", "b", "c", "d"]));
        let check = truth.check(&ids(&["b", "a", "b", "x"]));
        assert_eq!(
            check,
            Check {
                received: 4,
                skipped: 2,
                repeated: 1,
                unknown: 1,
                out_of_order: 1,
            }
        );
        assert!(!check.exact());
    }
}
