//! Byte-pair merging by a listed merge order: HF `tokenizers`' rule, for the
//! `tokenizer.json` files whose merges cannot be read as ranks.
//!
//! Rank-based BPE (tiktoken's, [`super::merge`]) merges any adjacent pair whose
//! bytes joined are a token, the lowest-ranked result first. `tokenizers`
//! merges only the pairs its merge list names, the earliest-listed first (the
//! leftmost on a tie), and tries the whole piece as a token first only with
//! `ignore_merges`. The two agree when each token has one merge, listed in rank
//! order, and that merge is where rank-based BPE would build it. They part where
//! a file lists several merges for one token (files converted from tiktoken
//! ranks list every split: Llama 3's, GPT-OSS's), or a merge whose part only a
//! later merge builds; such files merge here, a pair table lookup per step.
//!
//! With `ignore_merges` (the converted files have it) the encoder's batch path
//! still holds: a piece that is a token is that token, a piece seen before
//! comes from the piece cache, and pieces are cut where no token spans
//! (`core_bpe::piece_batch::PieceBatch::slow_listed`); only first-seen pieces and parts
//! merge here, short ones side by side ([`ListedMerges::merge_lanes`]).
//! Pieces of up to 32 bytes start merging from the list's own atoms (byte
//! pairs and three-byte characters it makes before anything else touches
//! their bytes: `atoms`, by places; starting longer ones, on the heap, from
//! them too measured nothing); runs, which rest on rank order, are left out.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::atoms::{Atoms, Rivals};
use super::merge::{neighbour_keys, Lane, QUADRATIC_MAX};
#[cfg(target_arch = "x86_64")]
use super::merge_step::Avx2;
use super::merge_step::{lowest_in, MergeStep, Portable};
use super::vocab::{prefetch, PairValues, Rank, TokenMap};
use crate::token_bytes::TokenBytes;

/// Pieces up to this long merge by scanning every pair each step (on stack
/// arrays); longer ones from a heap of candidate pairs (a megabyte of
/// letters stays O(n log n)).
const SCAN_MAX: usize = 32;

/// No merge: a place no pair has.
const NONE: u32 = Rank::MAX;

/// A place still to be looked up (never a place: the list is shorter than
/// [`PairValues::LIMIT`]).
const LOOK_UP: u32 = Rank::MAX - 1;

/// A merge list: `(left, right)` pairs of ranks, earliest first.
#[derive(Debug)]
pub struct ListedMerges {
    /// `(left, right)` -> its place in the list (in the merge table's packed
    /// form: most pairs of parts are not listed, and its filter says so
    /// without a wait on the table).
    places: PairValues,
    /// The token each place builds.
    builds: Vec<Rank>,
    /// The place of each pair of single bytes, by `first << 8 | second`
    /// (256 KiB, stays in L2): a piece's first lookups, one per byte.
    byte_places: Vec<u32>,
    /// The pairs as given, for saving the tokenizer again.
    pairs: Vec<(Rank, Rank)>,
    /// The byte pairs and three-byte characters that start merging whole, by
    /// place (see `atoms`).
    atoms: Atoms,
    ignore_merges: bool,
    /// Two bits per token, learnt as the encoder meets the token as a part
    /// of a cut piece (see [`ListedMerges::makes_itself`]): bit 0 whether
    /// it is known, bit 1 whether merging its bytes by the list gives it.
    made_whole: Vec<AtomicU64>,
}

impl ListedMerges {
    /// The merges `pairs` (ranks of `tokens`, earliest first). A pair listed twice
    /// takes its last place, as `tokenizers` builds its table. `ignore_merges`:
    /// a piece that is a token is that token, whatever the merges would make.
    /// Err names the first merge whose parts joined are no token, or a rank
    /// out of range (numbered from 1), or a list too long to pack.
    pub fn new(
        pairs: Vec<(Rank, Rank)>,
        tokens: &TokenBytes,
        ranks: &TokenMap,
        ignore_merges: bool,
    ) -> Result<Self, String> {
        if pairs.len() >= PairValues::LIMIT {
            return Err(format!(
                "{} merges, more than the {} a merge list may have",
                pairs.len(),
                PairValues::LIMIT - 1
            ));
        }
        let mut places = PairValues::with_capacity(pairs.len());
        let mut builds = Vec::with_capacity(pairs.len());
        let mut byte_places = vec![NONE; 1 << 16];
        let mut rivals = Rivals::new(tokens.len());
        let mut joined = Vec::new();
        for (place, &(left, right)) in pairs.iter().enumerate() {
            let (Some(l), Some(r)) = (tokens.get(u64::from(left)), tokens.get(u64::from(right))) else {
                return Err(format!("merge {} ({left}, {right}) names a rank no mergeable token has", place + 1));
            };
            joined.clear();
            joined.extend_from_slice(l);
            joined.extend_from_slice(r);
            let Some(merged) = ranks.get(&joined) else {
                return Err(format!(
                    "merge {} ({l:?}, {r:?}) builds {joined:?}, which is no mergeable token",
                    place + 1
                ));
            };
            places.insert(left, right, place as u32);
            rivals.add(place as u32, (left, right), l, r);
            builds.push(merged);
            if let ([a], [b]) = (l, r) {
                byte_places[usize::from(*a) << 8 | usize::from(*b)] = place as u32;
            }
        }
        let made_whole = (0..tokens.len().div_ceil(32)).map(|_| AtomicU64::new(0)).collect();
        let atoms = match ranks.missing_byte() {
            Some(_) => Atoms::none(),
            None => Atoms::from_list(rivals, ranks, tokens, &byte_places, |l, r| places.get(l, r), &builds),
        };
        Ok(Self { places, builds, byte_places, pairs, atoms, ignore_merges, made_whole })
    }

    pub fn pairs(&self) -> &[(Rank, Rank)] {
        &self.pairs
    }

    pub fn ignore_merges(&self) -> bool {
        self.ignore_merges
    }

    /// The place of the pair (`left`, `right`) in the list, `NONE` if unlisted.
    #[inline(always)]
    fn place(&self, left: Rank, right: Rank) -> u32 {
        self.places.get(left, right)
    }

    fn lookup(&self, left: Rank, right: Rank) -> Option<(u32, Rank)> {
        let place = self.place(left, right);
        (place != NONE).then(|| (place, self.builds[place as usize]))
    }

    /// Appends the tokens of `piece` to `out`. Every byte is a token (the core
    /// refuses a vocabulary without one).
    pub fn encode_piece(&self, piece: &[u8], ranks: &TokenMap, out: &mut Vec<Rank>) {
        if self.ignore_merges {
            if let Some(rank) = ranks.get(piece) {
                out.push(rank);
                return;
            }
        }
        self.merge_bytes(piece, ranks, out);
    }

    /// Appends what the merges make of the bytes of `piece`, even where it
    /// is a token and `ignore_merges` holds (the parts of a cut piece: the
    /// whole piece is what `ignore_merges` looks up).
    pub fn merge_bytes(&self, piece: &[u8], ranks: &TokenMap, out: &mut Vec<Rank>) {
        if piece.len() <= SCAN_MAX {
            let mut ids = [Rank::MAX; SCAN_MAX];
            let mut place = [NONE; SCAN_MAX];
            let mut single = [None; SCAN_MAX];
            let parts = self.split_into_atoms(piece, ranks, &mut ids, &mut single);
            for k in 0..parts.saturating_sub(1) {
                place[k] = match (single[k], single[k + 1]) {
                    (Some(a), Some(b)) => self.byte_place(a, b),
                    _ => self.place(ids[k], ids[k + 1]),
                };
            }
            let live = self.merge_scanned(&mut ids, &mut place, parts);
            out.extend_from_slice(&ids[..live]);
            return;
        }
        let bytes: Vec<Rank> = piece.iter().map(|&b| ranks.byte(b)).collect();
        out.extend(self.merge_by_heap(&bytes));
    }

    /// Splits `piece` (at most `N` bytes) into the parts its merging starts
    /// from: atoms whole (see `atoms`), every other byte alone. Their tokens
    /// go in `ids`, and in `single` each part's byte where it is one (for the
    /// byte-pair table); returns how many parts.
    #[inline(always)]
    fn split_into_atoms<const N: usize>(
        &self,
        piece: &[u8],
        ranks: &TokenMap,
        ids: &mut [Rank; N],
        single: &mut [Option<u8>; N],
    ) -> usize {
        let (mut parts, mut i) = (0, 0);
        while i < piece.len() {
            let (place, len) = self.atoms.at(piece, i);
            if place != NONE {
                ids[parts] = self.builds[place as usize];
                single[parts] = None;
                i += len;
            } else {
                ids[parts] = ranks.byte(piece[i]);
                single[parts] = Some(piece[i]);
                i += 1;
            }
            parts += 1;
        }
        parts
    }

    /// The place of the pair of single bytes `a`, `b`.
    #[inline(always)]
    fn byte_place(&self, a: u8, b: u8) -> u32 {
        self.byte_places[usize::from(a) << 8 | usize::from(b)]
    }

    /// Merges several short pieces (at most [`super::LANE_BYTES`] bytes, none
    /// a token) at once, `lanes[k]` for `piece(k)`, as [`ListedMerges::merge_bytes`]
    /// would each: rank-based BPE's [`super::merge_lanes`] by the list's places. Each
    /// round makes one merge in every piece and starts the loads its next
    /// lookups need, then does them: the pieces' waits on the tables overlap.
    pub fn merge_lanes<'p>(&self, lanes: &mut [Lane], piece: impl Fn(usize) -> &'p [u8], ranks: &TokenMap) {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::x86_v3() {
            // SAFETY: the CPU has the features `merge_lanes_v3` is compiled for.
            return unsafe { self.merge_lanes_v3(lanes, piece, ranks) };
        }
        self.merge_lanes_in::<Portable>(lanes, piece, ranks)
    }

    /// [`ListedMerges::merge_lanes`] compiled for x86-64-v3 (the minimum over
    /// a lane's places is one AVX2 instruction per eight).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
    fn merge_lanes_v3<'p>(&self, lanes: &mut [Lane], piece: impl Fn(usize) -> &'p [u8], ranks: &TokenMap) {
        self.merge_lanes_in::<Avx2>(lanes, piece, ranks)
    }

    #[inline(always)]
    fn merge_lanes_in<'p, S: MergeStep>(
        &self,
        lanes: &mut [Lane],
        piece: impl Fn(usize) -> &'p [u8],
        ranks: &TokenMap,
    ) {
        // Start from atoms: pairs of single bytes from the byte-pair table,
        // the others from the pair table, all asked for before any is read.
        let mut single = [None::<u8>; QUADRATIC_MAX];
        for (k, lane) in lanes.iter_mut().enumerate() {
            let piece = piece(k);
            debug_assert!((2..QUADRATIC_MAX).contains(&piece.len()));
            lane.parts = self.split_into_atoms(piece, ranks, &mut lane.ids, &mut single);
            lane.at = 0;
            lane.pair = [NONE; QUADRATIC_MAX];
            for k in 0..lane.parts.saturating_sub(1) {
                lane.pair[k] = match (single[k], single[k + 1]) {
                    (Some(a), Some(b)) => self.byte_place(a, b),
                    _ => {
                        self.places.prefetch(lane.ids[k], lane.ids[k + 1]);
                        LOOK_UP
                    }
                };
            }
        }
        for lane in lanes.iter_mut() {
            for k in 0..lane.parts.saturating_sub(1) {
                if lane.pair[k] == LOOK_UP {
                    lane.pair[k] = self.places.get_prefetched::<S>(lane.ids[k], lane.ids[k + 1]);
                }
            }
        }
        loop {
            // Each lane's earliest place (the leftmost of equals), and the
            // line of the token it builds asked for.
            let mut any = false;
            for lane in lanes.iter_mut() {
                if lane.at == usize::MAX {
                    continue;
                }
                let Some((best, at)) = S::lowest(&lane.pair, lane.parts) else {
                    lane.at = usize::MAX;
                    continue;
                };
                lane.at = at;
                prefetch(&self.builds[best as usize]);
                any = true;
            }
            if !any {
                return;
            }
            // The merges, and the loads of the new neighbours' places.
            for lane in lanes.iter_mut() {
                if lane.at == usize::MAX {
                    continue;
                }
                let at = lane.at;
                let new = self.builds[lane.pair[at] as usize];
                S::join(&mut lane.ids, &mut lane.pair, &mut lane.parts, at, new);
                let (left, right) = neighbour_keys(lane, at, new);
                self.places.prefetch_key(right);
                self.places.prefetch_key(left);
            }
            for lane in lanes.iter_mut() {
                if lane.at == usize::MAX {
                    continue;
                }
                let at = lane.at;
                let (left, right) = neighbour_keys(lane, at, lane.ids[at]);
                let right = self.places.get_prefetched_key::<S>(right);
                let left = self.places.get_prefetched_key::<S>(left);
                // (`left` is not set at 0: there is no pair before the first part.)
                S::set_pairs(&mut lane.pair, at, left, right);
            }
        }
    }

    /// Whether merging the bytes of token `rank` by the list gives that token
    /// (None: not known yet; [`ListedMerges::learn`] tells it). A token may
    /// not: it may be listed only as a join of parts that other merges take
    /// apart first. Learnt as met, not at load: only the tokens that turn up
    /// as parts of cut pieces ask, and a sweep over every token would add a
    /// merge per token to the load.
    #[inline]
    pub fn makes_itself(&self, rank: Rank) -> Option<bool> {
        let word = self.made_whole.get(rank as usize / 32)?.load(Ordering::Relaxed);
        let bits = word >> (2 * (rank % 32));
        (bits & 1 != 0).then_some(bits & 2 != 0)
    }

    /// Records [`ListedMerges::makes_itself`] of token `rank` (threads that
    /// learn it at once agree, so the order of their writes does not matter).
    pub fn learn(&self, rank: Rank, itself: bool) {
        if let Some(word) = self.made_whole.get(rank as usize / 32) {
            word.fetch_or((1 | u64::from(itself) << 1) << (2 * (rank % 32)), Ordering::Relaxed);
        }
    }

    /// Merges `parts[start..]` in place: each step the earliest-listed adjacent
    /// pair, the leftmost of equals. Each pair's place is looked up once and
    /// again only when a merge beside it changes it.
    #[cfg(test)]
    fn merge_by_scan(&self, parts: &mut Vec<Rank>, start: usize) {
        let live = parts.len() - start;
        assert!(live <= SCAN_MAX);
        let mut ids = [Rank::MAX; SCAN_MAX];
        let mut place = [NONE; SCAN_MAX];
        ids[..live].copy_from_slice(&parts[start..]);
        for k in 0..live.saturating_sub(1) {
            place[k] = self.place(ids[k], ids[k + 1]);
        }
        let live = self.merge_scanned(&mut ids, &mut place, live);
        parts.truncate(start);
        parts.extend_from_slice(&ids[..live]);
    }

    /// The merge loop of [`ListedMerges::merge_by_scan`]: `ids[..live]` are
    /// the parts, `place[k]` the place of parts k and k + 1 (NONE for the
    /// last part and past it). Returns how many parts are left.
    #[inline(always)]
    fn merge_scanned(&self, ids: &mut [Rank; SCAN_MAX], place: &mut [u32; SCAN_MAX], mut live: usize) -> usize {
        // The earliest place (NONE, unlisted, is Rank::MAX) and where it first stands.
        while let Some((best, at)) = lowest_in(&place[..live]) {
            ids[at] = self.builds[best as usize];
            ids.copy_within(at + 2..live, at + 1);
            place.copy_within(at + 2..live, at + 1);
            live -= 1;
            place[at] = if at + 1 < live { self.place(ids[at], ids[at + 1]) } else { NONE };
            if at > 0 {
                place[at - 1] = self.place(ids[at - 1], ids[at]);
            }
        }
        live
    }

    /// The same merges on a linked list with a heap of (place, position):
    /// an entry whose pair has changed since is skipped when it comes up.
    fn merge_by_heap(&self, bytes: &[Rank]) -> Vec<Rank> {
        let n = bytes.len();
        let mut rank = bytes.to_vec();
        let mut next: Vec<u32> = (1..=n as u32).collect();
        let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::new();
        for i in 0..n - 1 {
            if let Some((place, _)) = self.lookup(rank[i], rank[i + 1]) {
                heap.push(Reverse((place, i as u32)));
            }
        }
        while let Some(Reverse((place, pos))) = heap.pop() {
            let i = pos as usize;
            let j = next[i] as usize;
            if !alive[i] || j >= n {
                continue;
            }
            let Some((now, merged)) = self.lookup(rank[i], rank[j]) else { continue };
            if now != place {
                continue;
            }
            rank[i] = merged;
            alive[j] = false;
            let after = next[j];
            next[i] = after;
            if (after as usize) < n {
                prev[after as usize] = pos;
                if let Some((p, _)) = self.lookup(merged, rank[after as usize]) {
                    heap.push(Reverse((p, pos)));
                }
            }
            let before = prev[i];
            if (before as usize) < n {
                if let Some((p, _)) = self.lookup(rank[before as usize], merged) {
                    heap.push(Reverse((p, before)));
                }
            }
        }
        (0..n).filter(|&i| alive[i]).map(|i| rank[i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::xorshift;

    fn vocab(extra: &[&str]) -> (Vec<Vec<u8>>, TokenMap, TokenBytes) {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        tokens.extend(extra.iter().map(|t| t.as_bytes().to_vec()));
        let map = TokenMap::new(&tokens).unwrap();
        let bytes = TokenBytes::new(&tokens);
        (tokens, map, bytes)
    }

    fn rank(tokens: &[Vec<u8>], t: &str) -> Rank {
        tokens.iter().position(|x| x == t.as_bytes()).unwrap() as Rank
    }

    fn listed(
        tokens: &[Vec<u8>],
        map: &TokenMap,
        bytes: &TokenBytes,
        merges: &[(&str, &str)],
        ignore: bool,
    ) -> ListedMerges {
        let pairs = merges.iter().map(|(l, r)| (rank(tokens, l), rank(tokens, r))).collect();
        ListedMerges::new(pairs, bytes, map, ignore).unwrap()
    }

    fn texts(tokens: &[Vec<u8>], ranks: &[Rank]) -> Vec<String> {
        ranks.iter().map(|&r| String::from_utf8(tokens[r as usize].clone()).unwrap()).collect()
    }

    /// The plain definition: the earliest-listed adjacent pair, leftmost, until none.
    fn reference(piece: &[u8], merges: &[(&str, &str)]) -> Vec<Vec<u8>> {
        let mut parts: Vec<Vec<u8>> = piece.iter().map(|&b| vec![b]).collect();
        loop {
            let best = (0..parts.len().saturating_sub(1))
                .filter_map(|i| {
                    let place =
                        merges.iter().rposition(|(l, r)| parts[i] == l.as_bytes() && parts[i + 1] == r.as_bytes())?;
                    Some((place, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let right = parts.remove(i + 1);
            parts[i].extend(right);
        }
        parts
    }

    #[test]
    fn only_listed_pairs_merge_earliest_first() {
        let (tokens, map, bytes) = vocab(&["ab", "bc", "abc"]);
        // "abc" is listed as ab + c only: once b and c join first, a + bc stays.
        let merges = [("b", "c"), ("a", "b"), ("ab", "c")];
        let l = listed(&tokens, &map, &bytes, &merges, false);
        let mut out = Vec::new();
        l.encode_piece(b"abc", &map, &mut out);
        assert_eq!(texts(&tokens, &out), ["a", "bc"]);
        // With ignore_merges a whole token is that token.
        let l = listed(&tokens, &map, &bytes, &merges, true);
        out.clear();
        l.encode_piece(b"abc", &map, &mut out);
        assert_eq!(texts(&tokens, &out), ["abc"]);
        out.clear();
        l.encode_piece(b"abcx", &map, &mut out);
        assert_eq!(texts(&tokens, &out), ["a", "bc", "x"]);
    }

    #[test]
    fn two_merges_of_one_token_follow_their_places_not_the_position() {
        // "aba" both as ab + a and as a + ba, the latter listed first: in
        // [ab, a, ba] rank-based BPE joins the leftmost pair, tokenizers a + ba.
        let (tokens, map, bytes) = vocab(&["ab", "ba", "aba"]);
        let merges = [("a", "ba"), ("ab", "a")];
        let mut rest = vec![rank(&tokens, "ab"), rank(&tokens, "a"), rank(&tokens, "ba")];
        let l = listed(&tokens, &map, &bytes, &merges, false);
        l.merge_by_scan(&mut rest, 0);
        assert_eq!(texts(&tokens, &rest), ["ab", "aba"]);
        let parts = l.merge_by_heap(&[rank(&tokens, "ab"), rank(&tokens, "a"), rank(&tokens, "ba")]);
        assert_eq!(texts(&tokens, &parts), ["ab", "aba"]);
    }

    /// Every split of each of `extra` into two tokens (single bytes or others of `extra`).
    fn every_split<'a>(extra: &[&'a str]) -> Vec<(&'a str, &'a str)> {
        let mut all = Vec::new();
        for t in extra {
            for cut in 1..t.len() {
                let (l, r) = t.split_at(cut);
                if (l.len() == 1 || extra.contains(&l)) && (r.len() == 1 || extra.contains(&r)) {
                    all.push((l, r));
                }
            }
        }
        all
    }

    /// `merges` in a random order.
    fn shuffled<'a>(merges: &[(&'a str, &'a str)], rng: &mut impl FnMut() -> u64) -> Vec<(&'a str, &'a str)> {
        let mut merges = merges.to_vec();
        for i in (1..merges.len()).rev() {
            merges.swap(i, (rng() % (i as u64 + 1)) as usize);
        }
        merges
    }

    /// Pieces merged side by side in lanes give what each gives alone (and
    /// the plain definition), whatever the list's order.
    #[test]
    fn lanes_equal_the_definition() {
        let extra =
            ["ab", "ba", "aa", "bb", "aba", "bab", "abab", "aab", "abb", "bba", "aaa", "baba", "abba", "bc", "cab"];
        let (tokens, map, bytes) = vocab(&extra);
        let all = every_split(&extra);
        let mut rng = xorshift(11);
        for _ in 0..200 {
            let merges = shuffled(&all, &mut rng);
            let l = listed(&tokens, &map, &bytes, &merges, true);
            let pieces: Vec<Vec<u8>> = (0..1 + rng() % 20)
                .map(|_| {
                    let len = 2 + (rng() % (crate::bpe::LANE_BYTES as u64 - 1)) as usize;
                    (0..len).map(|_| b"abc"[(rng() % 3) as usize]).collect()
                })
                .collect();
            let mut lanes = vec![Lane::default(); pieces.len()];
            l.merge_lanes(&mut lanes, |k| &pieces[k], &map);
            for (lane, piece) in lanes.iter().zip(&pieces) {
                let mut alone = Vec::new();
                l.merge_bytes(piece, &map, &mut alone);
                assert_eq!(lane.tokens().collect::<Vec<_>>(), alone, "piece {:?}", String::from_utf8_lossy(piece));
                let got: Vec<Vec<u8>> = alone.iter().map(|&r| tokens[r as usize].clone()).collect();
                assert_eq!(got, reference(piece, &merges));
            }
        }
    }

    /// A listed pair of bytes starts whole where no listed merge that could
    /// take one of its bytes first, or join the token it makes, comes before it.
    #[test]
    fn listed_byte_pairs_start_whole_unless_a_rival_comes_first() {
        let (tokens, map, bytes) = vocab(&["ab", "xa", "bz", "abc", "yab"]);
        let l = listed(&tokens, &map, &bytes, &[("a", "b"), ("x", "a"), ("b", "z"), ("ab", "c")], true);
        assert_eq!(l.atoms.at(b"xabz", 1), (0, 2));
        // "xa" before it: after an x the a may go left first; not after a q.
        let l = listed(&tokens, &map, &bytes, &[("x", "a"), ("a", "b"), ("ab", "c")], true);
        assert_eq!(l.atoms.at(b"xab", 1), (NONE, 1));
        assert_eq!(l.atoms.at(b"qab", 1), (1, 2));
        // "bz" before it: the b may go right first before a z.
        let l = listed(&tokens, &map, &bytes, &[("b", "z"), ("a", "b")], true);
        assert_eq!(l.atoms.at(b"abz", 0), (NONE, 1));
        assert_eq!(l.atoms.at(b"abq", 0), (1, 2));
        // A merge of "ab" itself listed first: whole from the start, it could join early.
        for first in [("ab", "c"), ("y", "ab")] {
            let l = listed(&tokens, &map, &bytes, &[first, ("a", "b")], true);
            assert_eq!(l.atoms.at(b"qabq", 1), (NONE, 1), "{first:?}");
        }
        // An unlisted pair is never whole.
        let l = listed(&tokens, &map, &bytes, &[("x", "a")], true);
        assert_eq!(l.atoms.at(b"ab", 0), (NONE, 1));
    }

    /// Three-byte characters (and pairs of their bytes) start whole where the
    /// list allows: random lists over a vocabulary of two characters' byte
    /// pairs, the characters, and joins of them with "a", against the plain
    /// definition, in lanes and alone.
    #[test]
    fn three_byte_characters_merge_as_the_definition() {
        let (sun, book) = ("\u{65e5}".as_bytes(), "\u{672c}".as_bytes());
        let mut extra: Vec<Vec<u8>> = Vec::new();
        for c in [sun, book] {
            // The byte pairs, each joined with "a" on its outer side, the character, and it with "a".
            extra.extend([c[..2].to_vec(), c[1..].to_vec(), [b"a", &c[..2]].concat(), [&c[1..], b"a"].concat()]);
            extra.extend([c.to_vec(), [b"a", c].concat(), [c, b"a"].concat()]);
        }
        extra.extend([[sun, book].concat(), [book, sun].concat(), [&sun[2..], book].concat(), b"aa".to_vec()]);
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        tokens.extend(extra.iter().cloned());
        let map = TokenMap::new(&tokens).unwrap();
        let bytes = TokenBytes::new(&tokens);
        let id = |t: &[u8]| tokens.iter().position(|x| x == t).map(|r| r as Rank);
        let mut all = Vec::new();
        for t in &extra {
            for cut in 1..t.len() {
                if let (Some(l), Some(r)) = (id(&t[..cut]), id(&t[cut..])) {
                    all.push((l, r));
                }
            }
        }
        let reference = |piece: &[u8], merges: &[(Rank, Rank)]| {
            let mut parts: Vec<Rank> = piece.iter().map(|&b| b as Rank).collect();
            loop {
                let best = (0..parts.len().saturating_sub(1))
                    .filter_map(|i| Some((merges.iter().rposition(|&m| m == (parts[i], parts[i + 1]))?, i)))
                    .min();
                let Some((_, i)) = best else { break };
                let right = parts.remove(i + 1);
                parts[i] = id(&[tokens[parts[i] as usize].clone(), tokens[right as usize].clone()].concat()).unwrap();
            }
            parts
        };
        let mut rng = xorshift(5);
        let mut whole = 0;
        for _ in 0..300 {
            let mut merges = all.clone();
            for i in (1..merges.len()).rev() {
                merges.swap(i, (rng() % (i as u64 + 1)) as usize);
            }
            let l = ListedMerges::new(merges.clone(), &bytes, &map, true).unwrap();
            let pieces: Vec<Vec<u8>> = (0..1 + rng() % 12)
                .map(|_| {
                    let mut piece = Vec::new();
                    while piece.len() < 2 || (piece.len() < 12 && rng() % 3 != 0) {
                        piece.extend_from_slice([sun, book, b"a"][(rng() % 3) as usize]);
                    }
                    piece
                })
                .collect();
            for piece in &pieces {
                whole += (0..piece.len()).filter(|&i| l.atoms.at(piece, i).1 == 3).count();
            }
            let mut lanes = vec![Lane::default(); pieces.len()];
            let short: Vec<usize> = (0..pieces.len()).filter(|&k| pieces[k].len() <= crate::bpe::LANE_BYTES).collect();
            l.merge_lanes(&mut lanes[..short.len()], |k| &pieces[short[k]], &map);
            for (k, piece) in pieces.iter().enumerate() {
                let mut alone = Vec::new();
                l.merge_bytes(piece, &map, &mut alone);
                assert_eq!(alone, reference(piece, &merges), "piece {piece:?}");
                if let Some(lane) = short.iter().position(|&s| s == k) {
                    assert_eq!(lanes[lane].tokens().collect::<Vec<_>>(), alone, "piece {piece:?} in a lane");
                }
            }
        }
        assert!(whole > 100, "characters started whole {whole} times");
    }

    /// An empty piece (a split pattern may match nothing) merges to nothing
    /// (fuzz finding 18: merging from atoms looked up the pair before its
    /// first part, an underflow, on an empty piece).
    #[test]
    fn an_empty_piece_merges_to_nothing() {
        let (tokens, map, bytes) = vocab(&["ab"]);
        for ignore in [false, true] {
            let l = listed(&tokens, &map, &bytes, &[("a", "b")], ignore);
            let mut out = Vec::new();
            l.encode_piece(b"", &map, &mut out);
            l.merge_bytes(b"", &map, &mut out);
            assert!(out.is_empty());
        }
    }

    #[test]
    fn a_pair_listed_twice_takes_its_last_place() {
        let (tokens, map, bytes) = vocab(&["ab", "bc"]);
        let l = listed(&tokens, &map, &bytes, &[("a", "b"), ("b", "c"), ("a", "b")], false);
        let mut out = Vec::new();
        l.encode_piece(b"abc", &map, &mut out);
        assert_eq!(texts(&tokens, &out), ["a", "bc"]);
    }

    #[test]
    fn bad_merges_are_named() {
        let (tokens, map, bytes) = vocab(&["ab"]);
        let err = ListedMerges::new(vec![(rank(&tokens, "a"), rank(&tokens, "c"))], &bytes, &map, false).unwrap_err();
        assert!(err.starts_with("merge 1 ("), "{err}");
        let err = ListedMerges::new(vec![(0, 999)], &bytes, &map, false).unwrap_err();
        assert!(err.contains("no mergeable token has"), "{err}");
    }

    /// Scan and heap give the plain definition's parts on random pieces (short
    /// and long) over a vocabulary with several merges per token, in random order.
    #[test]
    fn scan_and_heap_equal_the_definition() {
        let extra = ["ab", "ba", "aa", "bb", "aba", "bab", "abab", "aab", "abb", "bba", "aaa", "baba", "abba"];
        let (tokens, map, bytes) = vocab(&extra);
        let all = every_split(&extra);
        let mut rng = xorshift(7);
        for round in 0..300 {
            let merges = shuffled(&all, &mut rng);
            let l = listed(&tokens, &map, &bytes, &merges, false);
            let len = if round % 3 == 0 { 40 + (rng() % 200) as usize } else { 1 + (rng() % SCAN_MAX as u64) as usize };
            let piece: Vec<u8> = (0..len).map(|_| if rng() % 2 == 0 { b'a' } else { b'b' }).collect();
            let mut out = Vec::new();
            l.encode_piece(&piece, &map, &mut out);
            let got: Vec<Vec<u8>> = out.iter().map(|&r| tokens[r as usize].clone()).collect();
            assert_eq!(got, reference(&piece, &merges), "piece {:?}", String::from_utf8_lossy(&piece));
            if piece.len() <= SCAN_MAX {
                // The heap on the scan's pieces (the encoder takes these to the scan).
                let parts = l.merge_by_heap(&piece.iter().map(|&b| b as Rank).collect::<Vec<_>>());
                let mut scanned = vec![7, 7];
                scanned.extend(piece.iter().map(|&b| b as Rank));
                l.merge_by_scan(&mut scanned, 2);
                assert_eq!(scanned[..2], [7, 7]);
                assert_eq!(parts, scanned[2..]);
            }
        }
    }
}
