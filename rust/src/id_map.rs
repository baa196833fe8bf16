//! Token ids that are not the core's ranks.
//!
//! The core merges by rank and needs the mergeable tokens at ranks `0..n`,
//! with the special and added tokens above them. Many vocabularies number
//! them otherwise: HF's BPE trainer puts the special tokens first (GPT-NeoX,
//! Pythia, StarCoder, BLOOM: `<|endoftext|>` = 0), and tiktoken files may
//! leave ranks out. Such a vocabulary runs on internal ids (mergeable tokens
//! `0..n` in the order of their ids, then the others in the order of theirs)
//! and an [`IdMap`] turns them into the file's ids on the way out and back on
//! the way in. The mergeable tokens' ids need not even follow their ranks:
//! RoBERTa's vocabulary numbers GPT-2's tokens by frequency, while its merges,
//! which the ranks follow, are GPT-2's.

use rustc_hash::FxHashMap;

use crate::bpe::Rank;

/// Internal ids <-> external ids, both ways.
#[derive(Debug)]
pub struct IdMap {
    /// `external[internal]`.
    external: Box<[Rank]>,
    /// `internal[external]`, [`NONE`] where no token has that id; covers the
    /// external ids below its length (the dense low part of the range).
    dense: Box<[Rank]>,
    /// The external ids beyond `dense` (a special token far above the others).
    sparse: FxHashMap<Rank, Rank>,
    n_mergeable: usize,
}

const NONE: Rank = Rank::MAX;

/// Why a set of ids cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMapError {
    /// Two mergeable tokens (the ranks) with one id.
    Repeated { id: Rank, ranks: (usize, usize) },
    /// `Rank::MAX` marks "no token" and cannot be an id.
    Reserved,
}

impl std::fmt::Display for IdMapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Repeated { id, ranks: (a, b) } => {
                write!(f, "mergeable tokens of ranks {a} and {b} both have id {id}")
            }
            Self::Reserved => write!(f, "token id {} is reserved", Rank::MAX),
        }
    }
}

impl std::error::Error for IdMapError {}

impl IdMap {
    /// The map for mergeable tokens with ids `mergeable` (by rank, distinct)
    /// and other tokens (special or added) with ids `others`: an id of
    /// `others` that is a mergeable id maps to that token (an added token
    /// that is also in the vocabulary); the rest get the internal ids after
    /// the mergeable ones, in their order. None when every id is its own
    /// internal id (nothing to map).
    pub fn new(mergeable: &[Rank], others: &[Rank]) -> Result<Option<Self>, IdMapError> {
        let mut sorted: Vec<(Rank, usize)> = mergeable.iter().copied().zip(0..).collect();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            let (a, b) = (pair[0].1.min(pair[1].1), pair[0].1.max(pair[1].1));
            return Err(IdMapError::Repeated { id: pair[0].0, ranks: (a, b) });
        }
        if sorted.last().is_some_and(|&(id, _)| id == NONE) || others.contains(&NONE) {
            return Err(IdMapError::Reserved);
        }
        let n = mergeable.len();
        let is_mergeable = |id: Rank| sorted.binary_search_by_key(&id, |&(id, _)| id).is_ok();
        let mut rest: Vec<Rank> = others.iter().copied().filter(|&id| !is_mergeable(id)).collect();
        rest.sort_unstable();
        rest.dedup();
        // Identity: mergeable ids 0..n, the others from n on without a gap
        // (a gap above them would do too, but the core needs no map for that:
        // its special and added ids may be anything above the mergeable ones).
        let mergeable_identity = mergeable.iter().zip(0..).all(|(&id, rank)| id == rank);
        if mergeable_identity && rest.first().is_none_or(|&first| first as usize >= n) {
            return Ok(None);
        }
        let external: Box<[Rank]> = mergeable.iter().chain(&rest).copied().collect();
        // Dense up to a bound proportional to the token count: ids far above
        // the rest (a special at 2**31) would otherwise cost gigabytes.
        let top = external.iter().copied().max().map_or(0, |m| m as usize + 1);
        let dense_len = top.min(2 * external.len() + (1 << 16));
        let mut dense = vec![NONE; dense_len].into_boxed_slice();
        let mut sparse = FxHashMap::default();
        for (internal, &id) in external.iter().enumerate() {
            let internal = internal as Rank;
            match dense.get_mut(id as usize) {
                Some(slot) => *slot = internal,
                None => {
                    sparse.insert(id, internal);
                }
            }
        }
        Ok(Some(Self { external, dense, sparse, n_mergeable: n }))
    }

    /// The internal id of external id `id`, if a token has it.
    #[inline]
    pub fn internal(&self, id: Rank) -> Option<Rank> {
        match self.dense.get(id as usize) {
            Some(&NONE) => None,
            Some(&internal) => Some(internal),
            None => self.sparse.get(&id).copied(),
        }
    }

    /// The external id of internal id `internal` (itself beyond the map's).
    #[inline]
    pub fn external(&self, internal: Rank) -> Rank {
        self.external.get(internal as usize).copied().unwrap_or(internal)
    }

    /// `external[internal]` for every internal id.
    pub fn externals(&self) -> &[Rank] {
        &self.external
    }

    /// The external ids of the mergeable tokens, by rank.
    pub fn mergeable_ids(&self) -> &[Rank] {
        &self.external[..self.n_mergeable]
    }

    /// Largest external id + 1.
    pub fn n_vocab(&self) -> usize {
        self.external.iter().copied().max().map_or(0, |m| m as usize + 1)
    }

    /// Turns internal ids into external ones, in place.
    pub fn to_external(&self, ids: &mut [Rank]) {
        for id in ids {
            *id = self.external(*id);
        }
    }

    /// Turns external ids into internal ones, in place; the first id no
    /// token has is an error: `(position, id)`.
    pub fn to_internal(&self, ids: &mut [Rank]) -> Result<(), (usize, Rank)> {
        for (position, id) in ids.iter_mut().enumerate() {
            *id = self.internal(*id).ok_or((position, *id))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_already_ranks_need_no_map() {
        assert!(IdMap::new(&[0, 1, 2], &[3, 5, 1]).unwrap().is_none());
        assert!(IdMap::new(&[0, 1, 2], &[]).unwrap().is_none());
        assert!(IdMap::new(&[], &[]).unwrap().is_none());
    }

    #[test]
    fn specials_first_go_after_the_mergeable_tokens() {
        // GPT-NeoX: two specials at 0 and 1, the mergeable tokens from 2, an added token at the end.
        let map = IdMap::new(&[2, 3, 4, 5], &[0, 1, 6, 3]).unwrap().unwrap();
        assert_eq!(map.externals(), &[2, 3, 4, 5, 0, 1, 6]);
        assert_eq!(map.mergeable_ids(), &[2, 3, 4, 5]);
        for (internal, &external) in map.externals().iter().enumerate() {
            assert_eq!(map.internal(external), Some(internal as Rank));
            assert_eq!(map.external(internal as Rank), external);
        }
        assert_eq!(map.internal(7), None);
        assert_eq!(map.n_vocab(), 7);
        let mut ids = vec![0, 5, 2, 6];
        map.to_internal(&mut ids).unwrap();
        assert_eq!(ids, [4, 3, 0, 6]);
        map.to_external(&mut ids);
        assert_eq!(ids, [0, 5, 2, 6]);
        assert_eq!(map.to_internal(&mut [2, 9, 1]), Err((1, 9)));
    }

    #[test]
    fn gaps_in_the_ranks_are_mapped() {
        let map = IdMap::new(&[0, 1, 5, 9], &[]).unwrap().unwrap();
        assert_eq!(map.internal(5), Some(2));
        assert_eq!(map.internal(4), None);
        assert_eq!(map.n_vocab(), 10);
    }

    #[test]
    fn far_ids_are_kept_without_a_table_that_long() {
        let map = IdMap::new(&[1, 2], &[0, 3_000_000_000]).unwrap().unwrap();
        assert!(map.dense.len() < 1 << 17);
        assert_eq!(map.internal(3_000_000_000), Some(3));
        assert_eq!(map.external(3), 3_000_000_000);
        assert_eq!(map.internal(2_999_999_999), None);
    }

    #[test]
    fn ids_in_another_order_than_the_ranks_are_mapped() {
        // RoBERTa: the specials first, GPT-2's tokens by frequency.
        let map = IdMap::new(&[4, 2, 3, 1], &[0, 5, 3]).unwrap().unwrap();
        assert_eq!(map.externals(), &[4, 2, 3, 1, 0, 5]);
        assert_eq!((map.internal(4), map.internal(1), map.internal(0)), (Some(0), Some(3), Some(4)));
        let map = IdMap::new(&[1, 0, 2], &[]).unwrap().unwrap();
        assert_eq!(map.internal(0), Some(1));
    }

    #[test]
    fn repeated_and_reserved_ids_are_errors() {
        let err = IdMap::new(&[1, 3, 2, 3], &[0]).unwrap_err();
        assert_eq!(err, IdMapError::Repeated { id: 3, ranks: (1, 3) });
        assert!(err.to_string().contains("ranks 1 and 3 both have id 3"));
        assert_eq!(IdMap::new(&[1], &[Rank::MAX]).unwrap_err(), IdMapError::Reserved);
        assert_eq!(IdMap::new(&[Rank::MAX, 0], &[]).unwrap_err(), IdMapError::Reserved);
    }
}
