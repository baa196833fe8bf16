//! A lazy max-priority queue of token pairs: entries may be stale (their pair's count
//! has dropped since they were pushed); [`MergeQueue::pop_best`] re-checks each
//! popped entry against the current counts and re-queues it with its current count.
//!
//! Order (the documented tie-break): highest count first; among equal counts, the
//! pair with the smallest left token id, then the smallest right token id.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A pair of token ids (left, right).
pub type Pair = (u32, u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    count: u64,
    pair: Pair,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Larger count is better; for equal counts the smaller pair is better.
        self.count.cmp(&other.count).then_with(|| other.pair.cmp(&self.pair))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Pairs waiting to be merged, best first.
#[derive(Debug, Default)]
pub struct MergeQueue {
    heap: BinaryHeap<Entry>,
}

impl MergeQueue {
    pub fn from_counts(counts: impl IntoIterator<Item = (Pair, u64)>) -> Self {
        let heap = counts.into_iter().map(|(pair, count)| Entry { count, pair }).collect();
        Self { heap }
    }

    pub fn push(&mut self, pair: Pair, count: u64) {
        self.heap.push(Entry { count, pair });
    }

    /// The best pair whose current count (from `current`) is at least `min_count`,
    /// with that count. Pair counts may only have decreased since they were pushed.
    pub fn pop_best(&mut self, min_count: u64, current: impl Fn(&Pair) -> u64) -> Option<(Pair, u64)> {
        while let Some(top) = self.heap.pop() {
            if top.count < min_count {
                return None;
            }
            let now = current(&top.pair);
            if now == top.count {
                return Some((top.pair, now));
            }
            if now >= min_count {
                self.heap.push(Entry { count: now, pair: top.pair });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_count_then_smallest_pair() {
        let mut q = MergeQueue::from_counts([((5, 1), 3), ((2, 9), 3), ((2, 3), 3), ((0, 0), 1)]);
        assert_eq!(q.pop_best(1, |_| 3), Some(((2, 3), 3)));
        assert_eq!(q.pop_best(1, |_| 3), Some(((2, 9), 3)));
        assert_eq!(q.pop_best(1, |_| 3), Some(((5, 1), 3)));
        assert_eq!(q.pop_best(2, |_| 1), None);
    }

    #[test]
    fn stale_entries_are_requeued_with_their_current_count() {
        let mut q = MergeQueue::from_counts([((1, 1), 10), ((2, 2), 6)]);
        let current = |p: &Pair| if *p == (1, 1) { 4 } else { 6 };
        assert_eq!(q.pop_best(1, current), Some(((2, 2), 6)));
        assert_eq!(q.pop_best(1, current), Some(((1, 1), 4)));
    }
}
