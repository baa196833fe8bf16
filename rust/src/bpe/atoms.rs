//! Parts that start BPE whole: pairs of bytes, and three-byte characters.
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
//! - a merge of `c` with either neighbour (folded into `pair`): starting
//!   whole, `c` could pair before byte-by-byte BPE would have made it.
//!
//! When all rank above `c`, the merges BPE makes before `c` are the same
//! with or without `c` whole, and from `c` on the two agree. Two such pairs
//! never overlap (each would have to outrank the other), so a left-to-right
//! scan finds them all. The merges looked at are the tokens' last merges,
//! the only ones BPE makes (see `vocab::PairTable`).
//!
//! A three-byte character (Chinese, Japanese, Korean, Indic scripts) made by
//! two merges, a two-byte token `m` first and then the character's token
//! `c`, starts whole on the same terms with one more rival: a merge of `m`
//! with its outer neighbour (`m` of rank below `c`, and the rivals of its
//! bytes checked against `c`, which is stricter than needed for `m`).
//! Neither overlaps a pair that qualifies next to it (the rivals rule it
//! out the same way), so the scan tries the character first.
//!
//! Merging by a merge list (`listed_merges`) is the same process with each
//! pair's place in the list for its rank (two pairs share a place only where
//! one pair occurs twice, and the leftmost goes first, as with equal ranks):
//! the argument holds word for word with places, and the rivals are all the
//! listed merges rather than the tokens' last merges.
//! [`Atoms::from_list`] builds those tables; its `at` gives the place of an
//! atom's (last) merge, which the list maps to the token it builds.

use super::vocab::{Rank, TokenMap};
use crate::token_bytes::TokenBytes;

/// Which byte pairs and three-byte characters start BPE as one part, by
/// the bytes around them. Ranks here are a merge list's places in atoms
/// [`Atoms::from_list`] made.
#[derive(Default)]
pub struct Atoms {
    /// By `a << 8 | b`: the token of the pair where no merge of it with a
    /// neighbour ranks below it, else `Rank::MAX`.
    pair: Vec<Rank>,
    /// By the low 4, 6 and 6 bits of a three-byte character's bytes: its
    /// token where it qualifies but for the bytes around it, else `Rank::MAX`
    /// (empty: none does).
    char3: Vec<Rank>,
    /// By `a << 8 | byte before a`: the lowest rank of a merge with `a` on
    /// its right and that byte ending its left part.
    after: Vec<Rank>,
    /// By `b << 8 | byte after b`: the lowest rank of a merge with `b` on
    /// its left and that byte starting its right part.
    before: Vec<Rank>,
    /// What two neighbouring atoms of one script's letters merge to.
    grid: BlockGrid,
}

/// What part a merge starts from, for the merge loops' first pair ranks:
/// a single byte (its value), an atom of the [`BlockGrid`]'s block
/// ([`GRID_ATOM`] | its index there), or any other token ([`OTHER_PART`]).
pub type PartCode = u16;
/// See [`PartCode`].
pub const GRID_ATOM: PartCode = 0x200;
/// See [`PartCode`].
pub const OTHER_PART: PartCode = 0x400;

/// The ranks two neighbouring two-byte characters of one block merge to,
/// for the block of 128 characters (lead bytes `lead` and `lead + 1`) with
/// the most such merges in the vocabulary: Cyrillic in cl100k and o200k.
/// The merge loops start by looking up every pair of neighbouring atoms,
/// and in a Russian word nearly all are two letters, each its own token:
/// looked up in the merge table, that is a hash, a filter bit and a bucket
/// of eight keys (about 40 instructions) per pair, where the grid is one
/// load from 64 KiB. Merging is bound by instructions there more than by
/// misses (a piece merged again at once, every line it reads in L1, takes
/// about 0.8 of the time: `merge::tests::merge_speed_again`), so fewer of
/// them is what counts.
#[derive(Default)]
struct BlockGrid {
    /// The block's first lead byte (even); 0: no grid.
    lead: u8,
    /// By `i << 7 | j`, characters `i` and `j` of the block (index: the low
    /// bit of the lead byte, then the low six of the second byte).
    ranks: Vec<Rank>,
}

impl BlockGrid {
    /// The grid of the block whose pairs of two-byte tokens merge most.
    fn new(tokens: &[Vec<u8>], map: &TokenMap, splits: &[Option<(Rank, Rank)>]) -> Self {
        // The block (even lead byte) of a token that is one two-byte character.
        let block = |t: Rank| match tokens.get(t as usize).map(Vec::as_slice) {
            Some(&[a @ 0xC2..=0xDF, 0x80..=0xBF]) => Some(a & !1),
            _ => None,
        };
        let mut count = [0usize; 256];
        for &(left, right) in splits.iter().flatten() {
            if let (Some(a), Some(c)) = (block(left), block(right)) {
                if a == c {
                    count[a as usize] += 1;
                }
            }
        }
        let Some((lead, _)) = count.iter().enumerate().filter(|&(_, &n)| n > 0).max_by_key(|&(_, &n)| n) else {
            return Self::default();
        };
        let token = |i: usize| map.pair(lead as u8 | (i >> 6) as u8, 0x80 | (i & 0x3F) as u8);
        let mut ranks = vec![Rank::MAX; 1 << 14];
        for i in 0..128 {
            for j in 0..128 {
                let (left, right) = (token(i), token(j));
                if left != Rank::MAX && right != Rank::MAX {
                    ranks[i << 7 | j] = map.merge(left, right);
                }
            }
        }
        Self { lead: lead as u8, ranks }
    }

    /// The code of the two-byte atom `a, b` (see [`PartCode`]).
    #[inline(always)]
    fn code(&self, a: u8, b: u8) -> PartCode {
        if a & !1 == self.lead && self.lead != 0 && b & 0xC0 == 0x80 {
            GRID_ATOM | ((a & 1) as PartCode) << 6 | (b & 0x3F) as PartCode
        } else {
            OTHER_PART
        }
    }
}

impl Atoms {
    /// From the tokens and their last merges (`splits[t]`, None for single
    /// bytes and for tokens BPE does not make from their bytes).
    pub fn new(tokens: &[Vec<u8>], map: &TokenMap, splits: &[Option<(Rank, Rank)>]) -> Self {
        // Without every byte a token, BPE's parts are not all tokens: no atoms.
        if map.missing_byte().is_some() {
            return Self::none();
        }
        let mut rivals = Rivals::new(splits.len());
        for (rank, split) in splits.iter().enumerate() {
            let Some((left, right)) = *split else { continue };
            rivals.add(rank as Rank, (left, right), &tokens[left as usize], &tokens[right as usize]);
        }
        let Rivals { as_left, as_right, after, before } = rivals;
        let mut pair = vec![Rank::MAX; 1 << 16];
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let c = map.pair(a, b);
                if c != Rank::MAX && as_left[c as usize] > c && as_right[c as usize] > c {
                    pair[(a as usize) << 8 | b as usize] = c;
                }
            }
        }
        let mut char3 = vec![Rank::MAX; 1 << 16];
        for x in 0xE0..=0xEFu8 {
            for y in 0x80..=0xBFu8 {
                for z in 0x80..=0xBFu8 {
                    let Some(c) = map.get(&[x, y, z]) else { continue };
                    let Some((left, right)) = splits[c as usize] else { continue };
                    // The two-byte token made first, and its rival on the outside.
                    let (m, outer) = match (tokens[left as usize].len(), tokens[right as usize].len()) {
                        (2, 1) => (left, as_right[left as usize]),
                        (1, 2) => (right, as_left[right as usize]),
                        _ => continue,
                    };
                    if m < c && outer > c && as_left[c as usize] > c && as_right[c as usize] > c {
                        char3[char3_index(x, y, z)] = c;
                    }
                }
            }
        }
        let grid = BlockGrid::new(tokens, map, splits);
        Self { pair, char3, after, before, grid }
    }

    /// Tables where nothing starts whole.
    pub fn none() -> Self {
        let nothing = || vec![Rank::MAX; 1 << 16];
        Self { pair: nothing(), char3: Vec::new(), after: nothing(), before: nothing(), grid: BlockGrid::default() }
    }

    /// The code of an atom of two bytes `a, b` (see [`PartCode`]); atoms by
    /// a merge list have no grid.
    #[inline(always)]
    pub fn code(&self, a: u8, b: u8) -> PartCode {
        self.grid.code(a, b)
    }

    /// The rank parts `x` and `y` of these codes merge to, where both are
    /// atoms of the grid (see [`PartCode`]).
    #[inline(always)]
    pub fn grid_rank(&self, x: PartCode, y: PartCode) -> Rank {
        self.grid.ranks[((x & 0x7F) as usize) << 7 | (y & 0x7F) as usize]
    }

    /// Atoms for merging by a merge list, from its `rivals` (every listed
    /// merge, see [`Rivals`]): `map` and `tokens` the tokens, `byte_places` the place
    /// of each pair of single bytes by `a << 8 | b` (`Rank::MAX`: unlisted),
    /// `place_of` that of any pair, `builds` the token of each place.
    pub fn from_list(
        rivals: Rivals,
        map: &TokenMap,
        tokens: &TokenBytes,
        byte_places: &[u32],
        place_of: impl Fn(Rank, Rank) -> u32,
        builds: &[Rank],
    ) -> Self {
        let Rivals { as_left, as_right, after, before } = rivals;
        // The token a place builds, and whether every merge of token `t` in
        // `table` (`as_left` or `as_right`) is listed after `place`.
        let token = |place: u32| builds.get(place as usize).copied().unwrap_or(Rank::MAX);
        let after_all = |table: &[Rank], t: Rank, place: u32| table.get(t as usize).is_some_and(|&p| p > place);
        let pair = byte_places
            .iter()
            .map(|&place| {
                let c = token(place);
                if after_all(&as_left, c, place) && after_all(&as_right, c, place) {
                    place
                } else {
                    Rank::MAX
                }
            })
            .collect();
        // A three-byte character the list makes in two merges: the pair of
        // bytes it joins first (`m`), then `m` with the third byte, on the
        // same terms as by rank, its place being the second merge's.
        let mut char3 = vec![Rank::MAX; 1 << 16];
        // The three-byte tokens, found in one pass over the tokens (a
        // lookup of each of the 64K characters would miss the cache each).
        for c in 0..tokens.len() as Rank {
            let Some(&[x @ 0xE0..=0xEF, y @ 0x80..=0xBF, z @ 0x80..=0xBF]) = tokens.get(u64::from(c)) else { continue };
            let (xy, yz) = (byte_places[(x as usize) << 8 | y as usize], byte_places[(y as usize) << 8 | z as usize]);
            // The first merge, `m`'s merges on its outer side, and the second merge.
            let (first, outer, last) = if xy < yz {
                let m = token(xy);
                (xy, (&as_right, m), place_of(m, map.byte(z)))
            } else if yz != Rank::MAX {
                let m = token(yz);
                (yz, (&as_left, m), place_of(map.byte(x), m))
            } else {
                continue;
            };
            if token(last) == c
                && first < last
                && after_all(outer.0, outer.1, last)
                && after_all(&as_left, c, last)
                && after_all(&as_right, c, last)
            {
                char3[char3_index(x, y, z)] = last;
            }
        }
        Self { pair, char3, after, before, grid: BlockGrid::default() }
    }

    /// The part that starts at `piece[i]` in BPE of `piece`: a token and its
    /// length in bytes (`Rank::MAX`, 1 where the byte starts alone); for
    /// atoms [`Atoms::from_list`] made, the place of its merge for the token.
    #[inline(always)]
    pub fn at(&self, piece: &[u8], i: usize) -> (Rank, usize) {
        let n = piece.len();
        let x = piece[i];
        if x & 0xF0 == 0xE0 && i + 2 < n {
            let c = self.char3.get(char3_index(x, piece[i + 1], piece[i + 2])).copied().unwrap_or(Rank::MAX);
            if c != Rank::MAX
                && piece[i + 1] & 0xC0 == 0x80
                && piece[i + 2] & 0xC0 == 0x80
                && self.outranks_rivals(piece, i, 3, c)
            {
                return (c, 3);
            }
        }
        if i + 1 < n {
            let c = self.pair[(x as usize) << 8 | piece[i + 1] as usize];
            if c != Rank::MAX && self.outranks_rivals(piece, i, 2, c) {
                return (c, 2);
            }
        }
        (Rank::MAX, 1)
    }

    /// Whether `c`, spelled by `piece[i..i + len]`, outranks the merges of
    /// its first byte with what is before it and of its last byte with what
    /// is after it.
    #[inline(always)]
    fn outranks_rivals(&self, piece: &[u8], i: usize, len: usize, c: Rank) -> bool {
        let (first, last) = (piece[i] as usize, piece[i + len - 1] as usize);
        (i == 0 || self.after[first << 8 | piece[i - 1] as usize] > c)
            && (i + len == piece.len() || self.before[last << 8 | piece[i + len] as usize] > c)
    }
}

/// The earliest merges that could take a byte or a token before an atom
/// forms (see [`Atoms`]'s rivals): by token, as its left and as its right
/// part; by single byte and the byte beside it. By rank over the tokens'
/// last merges ([`Atoms::new`]), or by place over a merge list, gathered as
/// the list is read ([`Atoms::from_list`]).
pub struct Rivals {
    as_left: Vec<Rank>,
    as_right: Vec<Rank>,
    after: Vec<Rank>,
    before: Vec<Rank>,
}

impl Rivals {
    pub fn new(tokens: usize) -> Self {
        let (after, before) = (vec![Rank::MAX; 1 << 16], vec![Rank::MAX; 1 << 16]);
        Self { as_left: vec![Rank::MAX; tokens], as_right: vec![Rank::MAX; tokens], after, before }
    }

    /// Adds the merge of tokens `left` and `right` (bytes `l` and `r`) at
    /// `place` (its rank, or its place in a list). A pair listed twice counts
    /// at both places (the list keeps the later): as a rival that only makes
    /// the tables stricter.
    #[inline]
    pub fn add(&mut self, place: u32, (left, right): (Rank, Rank), l: &[u8], r: &[u8]) {
        let lower = |slot: &mut Rank| *slot = (*slot).min(place);
        if let Some(slot) = self.as_left.get_mut(left as usize) {
            lower(slot);
        }
        if let Some(slot) = self.as_right.get_mut(right as usize) {
            lower(slot);
        }
        if let ([a], Some(&p)) = (r, l.last()) {
            lower(&mut self.after[(*a as usize) << 8 | p as usize]);
        }
        if let ([b], Some(&q)) = (l, r.first()) {
            lower(&mut self.before[(*b as usize) << 8 | q as usize]);
        }
    }
}

impl std::fmt::Debug for Atoms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pairs = self.pair.iter().filter(|&&c| c != Rank::MAX).count();
        f.debug_struct("Atoms").field("pairs", &pairs).finish_non_exhaustive()
    }
}

/// Index of a three-byte character (lead byte `0xE0..=0xEF`) in `char3`:
/// its 16 payload bits (also the index of `TokenMap`'s own `char3`).
#[inline(always)]
pub(super) fn char3_index(x: u8, y: u8, z: u8) -> usize {
    (x as usize & 0x0F) << 12 | (y as usize & 0x3F) << 6 | (z as usize & 0x3F)
}

#[cfg(test)]
mod tests {
    use super::super::vocab::{Rank, TokenMap};

    const SUN: &[u8] = "\u{65e5}".as_bytes(); // 0xE6 0x97 0xA5

    #[test]
    fn three_byte_character_starts_whole_unless_a_rival_outranks_it() {
        // 256: the first two bytes, 257: the character, 258: "a" + its lead byte.
        let r = TokenMap::after_bytes(&[&SUN[..2], SUN, b"a\xe6"]);
        assert_eq!(r.atoms().at(SUN, 0), (257, 3));
        assert_eq!(r.atoms().at("b\u{65e5}".as_bytes(), 1), (257, 3));
        // After "a": "a" + lead byte (258) ranks below the character (257).
        assert_eq!(r.atoms().at("a\u{65e5}".as_bytes(), 1), (257, 3));
        // With "a" + lead byte ranked first, it does not.
        let r = TokenMap::after_bytes(&[b"a\xe6", &SUN[..2], SUN]);
        assert_eq!(r.atoms().at("a\u{65e5}".as_bytes(), 1), (Rank::MAX, 1));
        assert_eq!(r.atoms().at("b\u{65e5}".as_bytes(), 1), (258, 3));
    }

    #[test]
    fn a_vocabulary_without_every_byte_has_no_atoms() {
        // Found by fuzzing: a token made of a byte that is not a token has a
        // last merge with a missing part, which the tables must not index.
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).filter(|&b| b != b'a').map(|b| vec![b]).collect();
        tokens.extend([b"ab".to_vec(), b"abc".to_vec(), SUN[..2].to_vec(), SUN.to_vec()]);
        let r = TokenMap::new(&tokens).unwrap();
        for piece in [&b"abc"[..], b"xab", SUN] {
            for i in 0..piece.len() {
                assert_eq!(r.atoms().at(piece, i), (Rank::MAX, 1), "{piece:?} at {i}");
            }
        }
    }

    #[test]
    fn bytes_that_only_share_a_characters_low_bits_are_not_it() {
        // 0xE6 'W' 'e' indexes the same slot as the character (low 6 bits of
        // 0x97 and 'W', of 0xA5 and 'e', agree).
        let r = TokenMap::after_bytes(&[&SUN[..2], SUN]);
        assert_eq!(r.atoms().at(SUN, 0), (257, 3));
        assert_eq!(r.atoms().at(b"\xe6We", 0), (Rank::MAX, 1));
        assert_eq!(r.atoms().at(b"\xe6W\xa5", 0), (Rank::MAX, 1));
        // Its first two bytes are a token, and start whole as a pair.
        assert_eq!(r.atoms().at(b"\xe6\x97e", 0), (256, 2));
    }
}
