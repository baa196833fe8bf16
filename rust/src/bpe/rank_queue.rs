//! The priority queue of candidate merges for long pieces: `(rank, position)`
//! pairs popped in increasing order.
//!
//! A binary heap over a megabyte piece spends most of its time in cache
//! misses. Merges come out in rank order, so this queue keeps one bucket of
//! positions per rank instead: a bucket is sorted once when its rank comes up
//! and then read sequentially. Pairs created while a rank is being processed
//! normally have a higher rank (they contain the token just made); the rare
//! ones that do not go to a small side heap, so the order stays exact.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::vocab::Rank;

#[inline(always)]
fn key(rank: Rank, pos: u32) -> u64 {
    ((rank as u64) << 32) | pos as u64
}

#[derive(Default)]
pub struct RankQueue {
    buckets: FxHashMap<Rank, Vec<u32>>,
    /// Ranks that have a bucket.
    ranks: BinaryHeap<Reverse<Rank>>,
    /// The bucket being processed, sorted, and the read position in it.
    current: Vec<u32>,
    cursor: usize,
    current_rank: Option<Rank>,
    /// Entries with a rank at or below `current_rank`.
    side: BinaryHeap<Reverse<u64>>,
    spare: Vec<Vec<u32>>,
}

impl RankQueue {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn push(&mut self, rank: Rank, pos: u32) {
        if self.current_rank.is_some_and(|current| rank <= current) {
            self.side.push(Reverse(key(rank, pos)));
            return;
        }
        let Self { buckets, ranks, spare, .. } = self;
        buckets
            .entry(rank)
            .or_insert_with(|| {
                ranks.push(Reverse(rank));
                spare.pop().unwrap_or_default()
            })
            .push(pos);
    }

    /// The position `k` entries after the next one in the current bucket, or
    /// its last one if the bucket is shorter (a hint for prefetching:
    /// side-heap entries are not counted).
    #[inline(always)]
    pub fn ahead(&self, k: usize) -> Option<u32> {
        let last = self.current.len().checked_sub(1)?;
        Some(self.current[(self.cursor + k).min(last)])
    }

    /// The smallest `(rank, position)` entry.
    #[inline]
    pub fn pop(&mut self) -> Option<(Rank, u32)> {
        loop {
            let bucket_next = self.current.get(self.cursor).copied();
            match (self.side.peek(), bucket_next, self.current_rank) {
                (Some(&Reverse(side)), Some(pos), Some(rank)) if side > key(rank, pos) => {
                    self.cursor += 1;
                    return Some((rank, pos));
                }
                (Some(_), _, _) => {
                    let Reverse(side) = self.side.pop()?;
                    return Some(((side >> 32) as Rank, side as u32));
                }
                (None, Some(pos), Some(rank)) => {
                    self.cursor += 1;
                    return Some((rank, pos));
                }
                _ => {
                    let Reverse(rank) = self.ranks.pop()?;
                    let mut bucket = self.buckets.remove(&rank).unwrap_or_default();
                    bucket.sort_unstable();
                    let mut done = std::mem::replace(&mut self.current, bucket);
                    done.clear();
                    self.spare.push(done);
                    self.cursor = 0;
                    self.current_rank = Some(rank);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_order_even_when_lower_ranks_arrive_late() {
        let mut q = RankQueue::new();
        for (r, p) in [(5, 9), (3, 4), (5, 1), (7, 0), (3, 2)] {
            q.push(r, p);
        }
        assert_eq!(q.pop(), Some((3, 2)));
        q.push(1, 8); // below the current rank: side heap, popped first
        q.push(3, 3); // equal to the current rank, between 2 and 4
        q.push(6, 5);
        let rest: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(rest, vec![(1, 8), (3, 3), (3, 4), (5, 1), (5, 9), (6, 5), (7, 0)]);
    }
}
