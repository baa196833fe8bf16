//! Pairs of bytes that start BPE as one part.
//!
//! BPE's first merges are of single bytes. Where a pair of neighbouring bytes
//! `a, b` spells token `c` and every other merge that could touch `a`, `b` or
//! `c` at that place makes a token of higher rank, BPE merges `a, b` before
//! either byte takes part in anything else: the pair is there from the start
//! and outranks all its rivals. Merging can then start with `c` as one part,
//! which saves one step of the merge loop (a merge-table lookup the next step
//! waits on) per such pair; in words of ordinary text about half of all
//! merges are of this kind, and every two-byte character of a script the
//! vocabulary knows well is.
//!
//! The rivals, each checked against `c`'s rank:
//! - a merge with `a` on its right, whose left part ends with the byte
//!   before `a` (`after`, by that byte);
//! - a merge with `b` on its left, whose right part starts with the byte
//!   after `b` (`before`, by that byte);
//! - a merge of `c` with either neighbour (folded into `token`): starting
//!   whole, `c` could pair before byte-by-byte BPE would have made it.
//!
//! When all rank above `c`, the merges BPE makes before `c` are the same
//! with or without `c` whole, and from `c` on the two agree. Two such pairs
//! never overlap (each would have to outrank the other), so a left-to-right
//! scan finds them all. The merges looked at are the tokens' last merges,
//! the only ones BPE makes (see `vocab::PairTable`).

use super::vocab::{Rank, TokenMap};

/// Which byte pairs start BPE as one part, by the bytes around them.
#[derive(Default)]
pub struct PairAtoms {
    /// By `a << 8 | b`: the token of the pair where no merge of it with a
    /// neighbour ranks below it, else `Rank::MAX`.
    token: Vec<Rank>,
    /// By `a << 8 | byte before a`: the lowest rank of a merge with `a` on
    /// its right and that byte ending its left part.
    after: Vec<Rank>,
    /// By `b << 8 | byte after b`: the lowest rank of a merge with `b` on
    /// its left and that byte starting its right part.
    before: Vec<Rank>,
}

impl PairAtoms {
    /// From the tokens and their last merges (`splits[t]`, None for single
    /// bytes and for tokens BPE does not make from their bytes).
    pub fn new(tokens: &[Vec<u8>], map: &TokenMap, splits: &[Option<(Rank, Rank)>]) -> Self {
        let n = splits.len();
        let (mut as_left, mut as_right) = (vec![Rank::MAX; n], vec![Rank::MAX; n]);
        let mut after = vec![Rank::MAX; 1 << 16];
        let mut before = vec![Rank::MAX; 1 << 16];
        let lower = |slot: &mut Rank, rank: Rank| *slot = (*slot).min(rank);
        for (rank, split) in splits.iter().enumerate() {
            let Some((left, right)) = *split else { continue };
            let rank = rank as Rank;
            lower(&mut as_left[left as usize], rank);
            lower(&mut as_right[right as usize], rank);
            let (l, r) = (&tokens[left as usize], &tokens[right as usize]);
            if let ([a], Some(&p)) = (r.as_slice(), l.last()) {
                lower(&mut after[(*a as usize) << 8 | p as usize], rank);
            }
            if let ([b], Some(&q)) = (l.as_slice(), r.first()) {
                lower(&mut before[(*b as usize) << 8 | q as usize], rank);
            }
        }
        let mut token = vec![Rank::MAX; 1 << 16];
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let c = map.pair(a, b);
                if c != Rank::MAX && as_left[c as usize] > c && as_right[c as usize] > c {
                    token[(a as usize) << 8 | b as usize] = c;
                }
            }
        }
        Self { token, after, before }
    }

    /// The token that `piece[i..i + 2]` starts BPE of `piece` as, or
    /// `Rank::MAX` where its bytes start apart (`i + 1 < piece.len()`).
    #[inline(always)]
    pub fn at(&self, piece: &[u8], i: usize) -> Rank {
        let (a, b) = (piece[i] as usize, piece[i + 1] as usize);
        let c = self.token[a << 8 | b];
        let left_ok = i == 0 || self.after[a << 8 | piece[i - 1] as usize] > c;
        let right_ok = i + 2 == piece.len() || self.before[b << 8 | piece[i + 2] as usize] > c;
        if c != Rank::MAX && left_ok && right_ok {
            c
        } else {
            Rank::MAX
        }
    }
}
