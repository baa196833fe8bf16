//! Rank-based byte-pair merging of one pre-tokenized piece.
//!
//! Semantics are tiktoken's: starting from single bytes, repeatedly merge the
//! adjacent pair whose concatenation has the lowest rank (the leftmost one on a
//! tie) until no adjacent pair is in the vocabulary. A piece that is itself a
//! token is emitted directly, as tiktoken does.
//!
//! Short pieces use a simple quadratic scan (fastest for the handful of bytes
//! of ordinary words). Long pieces (text the split pattern cannot break up,
//! e.g. a megabyte of letters) use a linked list plus a rank-bucket queue, which is
//! O(n log n), so the cost per byte stays flat; there the time goes to cache
//! misses, which prefetching and a bit filter in front of the vocabulary cut.
//! Short pieces seen for the first time can also merge several at once
//! ([`merge_lanes`]), so that their waits on the merge table overlap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::atoms::{PartCode, GRID_ATOM, OTHER_PART};
#[cfg(target_arch = "x86_64")]
use super::merge_step::Avx2;
use super::merge_step::{MergeStep, Portable};
use super::rank_queue::RankQueue;
use super::runs::{merge_runs, RUNS_FROM};
use super::vocab::{merge_key, prefetch, Rank, TokenMap};

/// Pieces up to this long merge by scanning all pairs for the lowest rank
/// (quadratic, but fastest for the handful of bytes of ordinary words).
pub(super) const QUADRATIC_MAX: usize = 16;
/// Longer pieces merge from a binary heap of candidate pairs, and pieces at
/// least this long from the rank-bucket queue (see `rank_queue`).
const HEAP_THRESHOLD: usize = 2048;

/// The candidate merges of a piece, popped lowest rank first, then leftmost.
trait MergeQueue {
    fn push(&mut self, rank: Rank, pos: u32);
    fn pop(&mut self) -> Option<(Rank, u32)>;
    /// A position soon to be popped, if the queue knows (for prefetching).
    fn ahead(&self, k: usize) -> Option<u32>;
}

impl MergeQueue for RankQueue {
    #[inline]
    fn push(&mut self, rank: Rank, pos: u32) {
        RankQueue::push(self, rank, pos)
    }
    #[inline]
    fn pop(&mut self) -> Option<(Rank, u32)> {
        RankQueue::pop(self)
    }
    #[inline]
    fn ahead(&self, k: usize) -> Option<u32> {
        RankQueue::ahead(self, k)
    }
}

/// A binary heap of `(rank, position)` packed into one integer: for pieces
/// of tens to thousands of bytes, whose slots stay in cache.
#[derive(Default)]
struct HeapQueue(BinaryHeap<Reverse<u64>>);

impl MergeQueue for HeapQueue {
    #[inline]
    fn push(&mut self, rank: Rank, pos: u32) {
        self.0.push(Reverse(((rank as u64) << 32) | pos as u64));
    }
    #[inline]
    fn pop(&mut self) -> Option<(Rank, u32)> {
        self.0.pop().map(|Reverse(key)| ((key >> 32) as Rank, key as u32))
    }
    #[inline]
    fn ahead(&self, _k: usize) -> Option<u32> {
        None
    }
}

/// Appends the tokens of `piece` to `out`.
///
/// Every single byte must be a token (the caller guarantees it when it builds
/// the vocabulary); otherwise the byte is skipped rather than panicking.
#[inline]
pub fn encode_piece(piece: &[u8], ranks: &TokenMap, out: &mut Vec<Rank>) {
    if let Some(rank) = ranks.get(piece) {
        out.push(rank);
        return;
    }
    merge_piece(piece, ranks, out);
}

/// Appends the tokens of `piece`, which is known not to be a single token.
#[inline]
pub fn merge_piece(piece: &[u8], ranks: &TokenMap, out: &mut Vec<Rank>) {
    // A few runs of one byte (a rule of `=`, spaces): merged run by run.
    if piece.len() >= RUNS_FROM && merge_runs(piece, ranks, out) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if (2..=2 * QUADRATIC_MAX).contains(&piece.len()) && crate::cpu::x86_v3() {
        // SAFETY: the CPU has the features `merge_atoms_v3` is compiled for.
        if !unsafe { merge_atoms_v3(piece, ranks, out) } {
            merge_queue(piece, ranks, out, &mut HeapQueue::default(), &mut |left, right| ranks.merge(left, right));
        }
        return;
    }
    merge_piece_with(piece, ranks, out, &mut |left, right| ranks.merge(left, right));
}

/// [`merge_atoms`] compiled for x86-64-v3: the merge loop's minimum over
/// the parts' ranks is one AVX2 instruction per eight (SSE2 has no unsigned minimum).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
fn merge_atoms_v3(piece: &[u8], ranks: &TokenMap, out: &mut Vec<Rank>) -> bool {
    merge_atoms::<Avx2, QUADRATIC_MAX>(piece, ranks, out, &mut |left, right| ranks.merge_with::<Avx2>(left, right))
}

/// [`merge_piece`] on its general paths (not run by run: see `runs`), with
/// the merge table read through `merge` (which must answer as
/// [`TokenMap::merge`] does; e.g. through a cache of recent answers).
#[inline]
pub fn merge_piece_with(
    piece: &[u8],
    ranks: &TokenMap,
    out: &mut Vec<Rank>,
    merge: &mut impl FnMut(Rank, Rank) -> Rank,
) {
    if piece.len() < 2 {
        return;
    }
    // Pairs of bytes that BPE provably merges first start as one part (see
    // `atoms`): fewer merges, and pieces of up to 16 such parts stay on the
    // quadratic path.
    if piece.len() <= 2 * QUADRATIC_MAX && merge_atoms::<Portable, QUADRATIC_MAX>(piece, ranks, out, merge) {
        return;
    }
    if piece.len() < HEAP_THRESHOLD {
        merge_queue(piece, ranks, out, &mut HeapQueue::default(), merge);
    } else {
        merge_queue(piece, ranks, out, &mut RankQueue::new(), merge);
    }
}

/// Returns the tokens of `piece` as a new vector.
pub fn encode_piece_vec(piece: &[u8], ranks: &TokenMap) -> Vec<Rank> {
    let mut out = Vec::new();
    encode_piece(piece, ranks, &mut out);
    out
}

/// Quadratic merge of a piece of at most `N` bytes from its single bytes,
/// on fixed-size stack arrays: the encoder starts from atoms instead
/// ([`merge_atoms`]); this plain start is kept as a second path for the
/// tests and the baseline of `merge_speed`. Parts `0..parts` are live:
/// `ids[k]` is part `k`'s token and `pair[k]` the rank of parts `k` and
/// `k + 1` merged (`Rank::MAX`: BPE never merges them, or there is no `k + 1`).
#[cfg(test)]
fn merge_quadratic<const N: usize>(
    piece: &[u8],
    ranks: &TokenMap,
    out: &mut Vec<Rank>,
    merge: &mut impl FnMut(Rank, Rank) -> Rank,
) {
    let n = piece.len();
    debug_assert!(n <= N);
    let mut ids = [Rank::MAX; N];
    let mut pair = [Rank::MAX; N];
    for (id, &b) in ids[..n].iter_mut().zip(piece) {
        *id = ranks.byte(b);
    }
    for k in 0..n - 1 {
        pair[k] = ranks.pair(piece[k], piece[k + 1]);
    }
    merge_parts::<Portable, N>(&mut ids, &mut pair, n, out, merge);
}

/// [`merge_quadratic`] from atoms: the piece's bytes, except that each pair
/// of bytes whose token BPE makes there before either byte takes part in any
/// other merge (see `atoms`) starts as that token, which is where
/// byte-by-byte merging would get to first. False, with nothing emitted,
/// when the piece has more than `N` atoms.
#[inline(always)]
fn merge_atoms<S: MergeStep, const N: usize>(
    piece: &[u8],
    ranks: &TokenMap,
    out: &mut Vec<Rank>,
    merge: &mut impl FnMut(Rank, Rank) -> Rank,
) -> bool {
    let mut ids = [Rank::MAX; N];
    let mut pair = [Rank::MAX; N];
    let mut code = [OTHER_PART; N];
    let Some(parts) = split_into_atoms(piece, ranks, &mut ids, &mut code) else {
        return false;
    };
    for k in 0..parts - 1 {
        pair[k] = match start_rank(ranks, code[k], code[k + 1]) {
            LOOK_UP => merge(ids[k], ids[k + 1]),
            rank => rank,
        };
    }
    merge_parts::<S, N>(&mut ids, &mut pair, parts, out, merge);
    true
}

/// Splits `piece` into its atoms (see [`merge_atoms`]): their tokens in
/// `ids`, and in `code` what each is (see `atoms::PartCode`: a single byte
/// for the byte-pair table, an atom of the block grid, or another token).
/// The number of atoms, None when there are more than `N`.
#[inline(always)]
fn split_into_atoms<const N: usize>(
    piece: &[u8],
    ranks: &TokenMap,
    ids: &mut [Rank; N],
    code: &mut [PartCode; N],
) -> Option<usize> {
    let atoms = ranks.atoms();
    let (mut parts, mut i) = (0, 0);
    while i < piece.len() {
        if parts == N {
            return None;
        }
        let b = piece[i];
        let (atom, len) = atoms.at(piece, i);
        if atom != Rank::MAX {
            ids[parts] = atom;
            code[parts] = if len == 2 { atoms.code(b, piece[i + 1]) } else { OTHER_PART };
            i += len;
        } else {
            ids[parts] = ranks.byte(b);
            code[parts] = b as PartCode;
            i += 1;
        }
        parts += 1;
    }
    Some(parts)
}

/// The rank two neighbouring parts of these codes start with where a table
/// answers it without the merge table: two single bytes from the byte-pair
/// table, two atoms of the block grid from the grid. `LOOK_UP` otherwise.
#[inline(always)]
fn start_rank(ranks: &TokenMap, x: PartCode, y: PartCode) -> Rank {
    if x | y < 0x100 {
        ranks.pair(x as u8, y as u8)
    } else if x & y & GRID_ATOM != 0 {
        ranks.atoms().grid_rank(x, y)
    } else {
        LOOK_UP
    }
}

/// The merge loop of the quadratic paths: parts `0..parts` are live, `ids[k]`
/// their tokens and `pair[k]` the rank parts `k` and `k + 1` merge to.
#[inline(always)]
fn merge_parts<S: MergeStep, const N: usize>(
    ids: &mut [Rank; N],
    pair: &mut [Rank; N],
    mut parts: usize,
    out: &mut Vec<Rank>,
    merge: &mut impl FnMut(Rank, Rank) -> Rank,
) {
    while let Some((best, at)) = S::lowest(pair, parts) {
        let ((has_before, before), (has_after, after)) = neighbours_before_join(ids, at, parts);
        S::join(ids, pair, &mut parts, at, best);
        let right = if has_after { merge(best, after) } else { Rank::MAX };
        let left = if has_before { merge(before, best) } else { Rank::MAX };
        S::set_pairs(pair, at, left, right);
    }
    // A byte that is not a token (a vocabulary the caller did not check) is skipped.
    out.extend(ids[..parts].iter().copied().filter(|&id| id != Rank::MAX));
}

/// The most bytes of a piece that always fits a lane of [`merge_lanes`]
/// (it has fewer parts than the quadratic merge holds).
pub const LANE_BYTES: usize = QUADRATIC_MAX - 1;
/// The most bytes of a piece that [`merge_lanes`] takes: one longer than
/// [`LANE_BYTES`] fits a lane where it has fewer atoms than a lane holds
/// (a Cyrillic word of up to 15 letters), and is left unmerged otherwise.
pub const LANE_MAX_BYTES: usize = 2 * QUADRATIC_MAX;

/// One piece in [`merge_lanes`]: its parts as in [`merge_parts`], and where
/// it merged last (the merge list's lanes also mark a lane that is done
/// with `usize::MAX`; [`merge_lanes`] keeps a list of those still merging).
#[derive(Clone, Copy)]
pub struct Lane {
    pub(super) ids: [Rank; QUADRATIC_MAX],
    /// What each pair merges to: by rank, the rank; by a merge list, the
    /// pair's place in it (`listed_merges`).
    pub(super) pair: [Rank; QUADRATIC_MAX],
    pub(super) parts: usize,
    pub(super) at: usize,
}

impl Default for Lane {
    fn default() -> Self {
        Self { ids: [Rank::MAX; QUADRATIC_MAX], pair: [Rank::MAX; QUADRATIC_MAX], parts: 0, at: usize::MAX }
    }
}

impl Lane {
    /// Whether [`merge_lanes`] merged the piece: false for one that has
    /// more atoms than a lane holds (never one of at most [`LANE_BYTES`]).
    pub fn merged(&self) -> bool {
        self.parts != 0
    }

    /// The piece's tokens, once merged (a byte that is no token is skipped, as in [`merge_parts`]).
    pub fn tokens(&self) -> impl Iterator<Item = Rank> + '_ {
        self.ids[..self.parts].iter().copied().filter(|&id| id != Rank::MAX)
    }
}

/// Merges several pieces of 2 to [`LANE_MAX_BYTES`] bytes (none a token) at
/// once, `lanes[k]` for `piece(k)`, with the same result as [`merge_piece`]
/// on each that fits a lane (see [`Lane::merged`]). Each merge waits on
/// merge-table lookups (a cache miss into a table of megabytes) and the
/// next merge of its piece on that; the lookups of different pieces do not
/// wait on each other. So every round makes one merge in each piece and
/// starts loading the lookups it needs, then does them, once all pieces'
/// loads are under way.
pub fn merge_lanes<'p>(lanes: &mut [Lane], piece: impl Fn(usize) -> &'p [u8], ranks: &TokenMap) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::x86_v3() {
        // SAFETY: the CPU has the features `merge_lanes_v3` is compiled for.
        return unsafe { merge_lanes_v3(lanes, piece, ranks) };
    }
    merge_lanes_in::<Portable>(lanes, piece, ranks)
}

/// [`merge_lanes`] compiled for x86-64-v3 (see [`merge_atoms_v3`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
fn merge_lanes_v3<'p>(lanes: &mut [Lane], piece: impl Fn(usize) -> &'p [u8], ranks: &TokenMap) {
    merge_lanes_in::<Avx2>(lanes, piece, ranks)
}

/// [`merge_lanes`] as compiled for any CPU.
#[inline(always)]
fn merge_lanes_in<'p, S: MergeStep>(lanes: &mut [Lane], piece: impl Fn(usize) -> &'p [u8], ranks: &TokenMap) {
    // Start from atoms, as `merge_atoms` does: pairs of single bytes from
    // the byte-pair table, of the block grid's atoms from the grid, the
    // others from the merge table, loaded first.
    let mut code = [OTHER_PART; QUADRATIC_MAX];
    for (k, lane) in lanes.iter_mut().enumerate() {
        let piece = piece(k);
        debug_assert!((2..=LANE_MAX_BYTES).contains(&piece.len()));
        // A lane holds fewer parts than it has entries (see `neighbour_keys`).
        let fits = split_into_atoms(piece, ranks, &mut lane.ids, &mut code).filter(|&parts| parts < QUADRATIC_MAX);
        let Some(parts) = fits else {
            debug_assert!(piece.len() > LANE_BYTES);
            lane.parts = 0;
            continue;
        };
        lane.parts = parts;
        // Pairs from the last part on are MAX (a step scans the whole array).
        lane.pair = [Rank::MAX; QUADRATIC_MAX];
        for k in 0..parts - 1 {
            let rank = start_rank(ranks, code[k], code[k + 1]);
            if rank == LOOK_UP {
                ranks.prefetch_merge(lane.ids[k], lane.ids[k + 1]);
            }
            lane.pair[k] = rank;
        }
    }
    for lane in lanes.iter_mut() {
        for k in 0..lane.parts.saturating_sub(1) {
            if lane.pair[k] == LOOK_UP {
                lane.pair[k] = ranks.merge_prefetched::<S>(lane.ids[k], lane.ids[k + 1]);
            }
        }
    }
    for lanes in lanes.chunks_mut(ROUND_LANES) {
        merge_rounds::<S>(lanes, ranks);
    }
}

/// The most lanes [`merge_rounds`] takes.
const ROUND_LANES: usize = 64;

/// The rounds of [`merge_lanes`] on lanes set up to merge: in each, one
/// merge in every lane that still has one. The lanes still merging are
/// listed, and a lane leaves the list when it is done: tested in every
/// round instead, done lanes were a fifth of the lanes' mispredicted
/// branches (by callgrind; pieces finish after a varying number of rounds).
#[inline(always)]
fn merge_rounds<S: MergeStep>(lanes: &mut [Lane], ranks: &TokenMap) {
    debug_assert!(lanes.len() <= ROUND_LANES);
    let mut live = [0u8; ROUND_LANES];
    let mut n = 0;
    for (k, lane) in lanes.iter().enumerate() {
        live[n] = k as u8;
        n += usize::from(lane.merged());
    }
    while n > 0 {
        let mut kept = 0;
        for i in 0..n {
            let k = live[i];
            let lane = &mut lanes[k as usize];
            let Some((best, at)) = S::lowest(&lane.pair, lane.parts) else {
                continue;
            };
            // The new part's keys from the arrays as they are before the
            // join, so that the loads they start wait on nothing it stores.
            let (left, right) = keys_before_join(lane, at, best);
            ranks.prefetch_merge_key(right);
            ranks.prefetch_merge_key(left);
            S::join(&mut lane.ids, &mut lane.pair, &mut lane.parts, at, best);
            lane.at = at;
            live[kept] = k;
            kept += 1;
        }
        n = kept;
        for &k in &live[..n] {
            let lane = &mut lanes[k as usize];
            let at = lane.at;
            let (left, right) = neighbour_keys(lane, at, lane.ids[at]);
            let right = ranks.merge_prefetched_key::<S>(right);
            let left = ranks.merge_prefetched_key::<S>(left);
            // (`left` is not set at 0: there is no pair before the first part.)
            S::set_pairs(&mut lane.pair, at, left, right);
        }
    }
}

/// The merge-table keys of the new part `best` at `at` with its left and
/// right neighbours ([`merge_key`]: a key no pair has where the neighbour
/// does not exist), chosen without a branch: where a merge lands in a
/// short piece is unpredictable.
#[inline(always)]
pub(super) fn neighbour_keys(lane: &Lane, at: usize, best: Rank) -> (u64, u64) {
    // A lane's parts are fewer than its entries, so `at + 1` is in bounds;
    // the entry before the first is any entry (its key is not used).
    let before = lane.ids[(at + QUADRATIC_MAX - 1) % QUADRATIC_MAX];
    (merge_key(at > 0, before, best), merge_key(at + 1 < lane.parts, best, lane.ids[at + 1]))
}

/// [`neighbour_keys`] of the part that parts `at` and `at + 1` of `lane`
/// are about to merge into, read before the join. Only for prefetches: the
/// lookups themselves take [`neighbour_keys`] after it, so a wrong key here
/// costs time, never an id.
#[inline(always)]
fn keys_before_join(lane: &Lane, at: usize, best: Rank) -> (u64, u64) {
    let ((has_before, before), (has_after, after)) = neighbours_before_join(&lane.ids, at, lane.parts);
    (merge_key(has_before, before, best), merge_key(has_after, best, after))
}

/// The left and right neighbours (whether each exists, and its id) of the
/// part that parts `at` and `at + 1` of `parts` are about to merge into.
/// They are read before the join so that the reads wait on nothing the
/// join stores (a merge waits on its chain of dependent steps, not on its
/// instruction count). Where a neighbour does not exist its id is any entry.
#[inline(always)]
fn neighbours_before_join<const N: usize>(ids: &[Rank; N], at: usize, parts: usize) -> ((bool, Rank), (bool, Rank)) {
    ((at > 0, ids[(at + N - 1) % N]), (at + 2 < parts, ids[(at + 2) % N]))
}

/// A pair rank still to be looked up (never a rank, nor `Rank::MAX`).
const LOOK_UP: Rank = Rank::MAX - 2;

/// `rank` of a part that was merged into its left neighbour (never a rank:
/// the vocabulary has fewer than `u32::MAX - 1` tokens).
const DEAD: Rank = Rank::MAX - 1;
/// How many queue entries ahead of the one being processed to prefetch.
const PREFETCH_AHEAD: usize = 12;

/// Start of the part after the one at `i`: the next slot that is not `DEAD`
/// (`rank.len()` after the last part). Parts are tokens, so this scans a
/// token's bytes at most.
#[inline(always)]
fn next_part(rank: &[Rank], i: usize) -> usize {
    let mut k = i + 1;
    while k < rank.len() && rank[k] == DEAD {
        k += 1;
    }
    k
}

/// Turns the byte parts of [`merge_queue`] into atoms (see `atoms`): the
/// first byte of each pair of bytes that starts as one part gets the pair's
/// token, the second goes `DEAD`, and the pair ranks next to atoms are
/// looked up again.
fn start_from_atoms(
    piece: &[u8],
    ranks: &TokenMap,
    ids: &mut [Rank],
    rank: &mut [Rank],
    merge: &mut impl FnMut(Rank, Rank) -> Rank,
) {
    let n = piece.len();
    let atoms = ranks.atoms();
    let (mut i, mut any) = (0, false);
    while i < n {
        let (c, len) = atoms.at(piece, i);
        if c != Rank::MAX {
            ids[i] = c;
            rank[i + 1..i + len].fill(DEAD);
            any = true;
        }
        i += len;
    }
    if !any {
        return;
    }
    // Parts now start where `rank` is not DEAD; a part is an atom when the
    // slot after its first byte is DEAD.
    let is_atom = |rank: &[Rank], i: usize| i + 1 < n && rank[i + 1] == DEAD;
    let mut i = 0;
    while i < n {
        let j = next_part(rank, i);
        if j >= n {
            rank[i] = Rank::MAX;
            break;
        }
        if is_atom(rank, i) || is_atom(rank, j) {
            rank[i] = merge(ids[i], ids[j]);
        }
        i = j;
    }
}

/// O(n log n) merge for long pieces. Parts are stored at the index of their
/// first byte: `ids[i]` is the part's token and `rank[i]` the rank of the
/// part merged with the next one (`Rank::MAX`: never merged, or no next
/// part); the `rank` slots of a part's other bytes are `DEAD`. There are no
/// links: the next and previous parts are the nearest live slots, at most a
/// token's length away, which is cheaper than keeping links up to date over
/// a megabyte. The queue holds `(rank, start)` of candidate pairs, and
/// entries that went stale are skipped when popped.
///
/// Over a megabyte piece the queue hands out positions all over the slots,
/// so the time goes to cache misses; the queue's upcoming positions are
/// known, and their slots are prefetched a few entries ahead.
fn merge_queue(
    piece: &[u8],
    ranks: &TokenMap,
    out: &mut Vec<Rank>,
    queue: &mut impl MergeQueue,
    merge: &mut impl FnMut(Rank, Rank) -> Rank,
) {
    let n = piece.len();
    // Parts are indexed with u32: callers keep texts under 4 GiB (the Python
    // bindings refuse longer ones with a ValueError).
    assert!(n < u32::MAX as usize, "piece of 4 GiB or more");
    let mut ids: Vec<Rank> = piece.iter().map(|&b| ranks.byte(b)).collect();
    let mut rank: Vec<Rank> = Vec::with_capacity(n);
    rank.extend(piece.windows(2).map(|w| ranks.pair(w[0], w[1])));
    rank.push(Rank::MAX);
    rank.truncate(n);
    start_from_atoms(piece, ranks, &mut ids, &mut rank, merge);
    for (i, &r) in rank.iter().enumerate() {
        if r != Rank::MAX && r != DEAD {
            queue.push(r, i as u32);
        }
    }

    while let Some((r, i)) = queue.pop() {
        if let Some(ahead) = queue.ahead(PREFETCH_AHEAD) {
            // The slots, and the line before them (where the previous part
            // usually starts).
            let ahead = ahead as usize;
            prefetch(&rank[ahead.saturating_sub(8)]);
            prefetch(&rank[ahead]);
            prefetch(&ids[ahead]);
        }
        let i = i as usize;
        // A part's pair only ever grows, so its rank changes whenever the pair
        // does: a popped entry is current exactly when its rank still matches
        // (a dead slot's DEAD never does).
        if rank[i] != r {
            continue;
        }
        let j = next_part(&rank, i);
        rank[j] = DEAD;
        ids[i] = r;
        let after = next_part(&rank, i);
        let new = if after < n { merge(r, ids[after]) } else { Rank::MAX };
        rank[i] = new;
        if new != Rank::MAX {
            queue.push(new, i as u32);
        }
        if let Some(p) = rank[..i].iter().rposition(|&r| r != DEAD) {
            let new = merge(ids[p], r);
            rank[p] = new;
            if new != Rank::MAX {
                queue.push(new, p as u32);
            }
        }
    }
    let mut i = 0usize;
    while i < n {
        if ids[i] != Rank::MAX {
            out.push(ids[i]);
        }
        i = next_part(&rank, i);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Straightforward reference: rebuild the part list after every merge
    /// (BPE as tiktoken defines it; the runs' tests use it too).
    pub(in crate::bpe) fn reference(piece: &[u8], ranks: &TokenMap) -> Vec<Rank> {
        let mut parts: Vec<Vec<u8>> = piece.iter().map(|&b| vec![b]).collect();
        loop {
            let mut best: Option<(Rank, usize)> = None;
            for k in 0..parts.len().saturating_sub(1) {
                let joined = [parts[k].as_slice(), parts[k + 1].as_slice()].concat();
                if let Some(r) = ranks.get(&joined) {
                    if best.is_none_or(|(b, _)| r < b) {
                        best = Some((r, k));
                    }
                }
            }
            match best {
                None => break,
                Some((_, k)) => {
                    let right = parts.remove(k + 1);
                    parts[k].extend(right);
                }
            }
        }
        parts.iter().map(|p| ranks.get(p).unwrap()).collect()
    }

    #[test]
    fn merges_lowest_rank_first_and_leftmost_on_ties() {
        let r = TokenMap::after_bytes(&[b"aa", b"ab", b"aaa"]);
        for text in [&b"aaa"[..], b"aaaa", b"aab", b"abab", b"baaab", b"x"] {
            let mut q = Vec::new();
            merge_quadratic::<HEAP_THRESHOLD>(text, &r, &mut q, &mut |a, b| r.merge(a, b));
            let mut h = Vec::new();
            merge_queue(text, &r, &mut h, &mut RankQueue::new(), &mut |a, b| r.merge(a, b));
            let mut b = Vec::new();
            merge_queue(text, &r, &mut b, &mut HeapQueue::default(), &mut |a, b| r.merge(a, b));
            assert_eq!(q, reference(text, &r), "{text:?}");
            assert_eq!(h, reference(text, &r), "{text:?}");
            assert_eq!(b, reference(text, &r), "{text:?}");
        }
    }

    #[test]
    fn queue_equals_quadratic_on_pseudo_random_inputs() {
        let r = TokenMap::after_bytes(&[b"ab", b"ba", b"abab", b"bb", b"aab", b"abb", b"ca", b"cab", b"bbb", b"aa"]);
        let mut next = crate::test_rng::xorshift(0x1234_5678);
        for len in 1..300 {
            let piece: Vec<u8> = (0..len).map(|_| b"abc"[(next() >> 33) as usize % 3]).collect();
            let expected = reference(&piece, &r);
            if len < HEAP_THRESHOLD {
                let mut q = Vec::new();
                merge_quadratic::<HEAP_THRESHOLD>(&piece, &r, &mut q, &mut |a, b| r.merge(a, b));
                assert_eq!(q, expected);
            }
            let mut h = Vec::new();
            merge_queue(&piece, &r, &mut h, &mut RankQueue::new(), &mut |a, b| r.merge(a, b));
            assert_eq!(h, expected);
            let mut b = Vec::new();
            merge_queue(&piece, &r, &mut b, &mut HeapQueue::default(), &mut |a, b| r.merge(a, b));
            assert_eq!(b, expected);
            assert_eq!(encode_piece_vec(&piece, &r), expected);
        }
    }

    /// Runs `test` on each real vocabulary in `../shared/data` (gpt2, cl100k,
    /// o200k), saying which are skipped because the file is absent.
    fn each_real_vocab(mut test: impl FnMut(&str, &TokenMap)) {
        for file in ["gpt2.tiktoken", "cl100k_base.tiktoken", "o200k_base.tiktoken"] {
            match real_vocab(file) {
                Some(r) => test(file, &r),
                None => eprintln!("skipping: {file} not found"),
            }
        }
    }

    /// A real vocabulary from `../shared/data` (None when it is absent).
    pub(in crate::bpe) fn real_vocab(file: &str) -> Option<TokenMap> {
        Some(TokenMap::new(&crate::test_vocab::tiktoken_tokens(file)?).unwrap())
    }

    #[test]
    fn queue_equals_reference_on_real_vocabularies() {
        let alphabets: [&[u8]; 5] = [
            b"abcdefghijklmnopqrstuvwxyz",
            b"eeeeetttaaoinshrdlu",
            b"^^^^~",
            "\u{430}\u{431}\u{432}\u{433}\u{435}\u{43e}".as_bytes(),
            b"ab",
        ];
        let mut rng = crate::test_rng::xorshift(0x9e37_79b9);
        let mut next = move || (rng() >> 33) as usize;
        each_real_vocab(|file, r| {
            for round in 0..60 {
                let alphabet = alphabets[round % alphabets.len()];
                let len = 128 + next() % 1500;
                let mut piece: Vec<u8> = (0..len).map(|_| alphabet[next() % alphabet.len()]).collect();
                if round % 3 == 0 {
                    // Repeated substrings: equal ranks everywhere, ties broken leftmost.
                    let unit = piece[..1 + next() % 8].to_vec();
                    piece = unit.iter().copied().cycle().take(len).collect();
                }
                let expected = reference(&piece, r);
                let mut h = Vec::new();
                merge_queue(&piece, r, &mut h, &mut RankQueue::new(), &mut |a, b| r.merge(a, b));
                assert_eq!(h, expected, "{file} round {round}");
                let mut b = Vec::new();
                merge_queue(&piece, r, &mut b, &mut HeapQueue::default(), &mut |a, b| r.merge(a, b));
                assert_eq!(b, expected, "{file} round {round}");
                let mut q = Vec::new();
                merge_quadratic::<HEAP_THRESHOLD>(&piece, r, &mut q, &mut |a, b| r.merge(a, b));
                assert_eq!(q, expected, "{file} round {round}");
            }
        });
    }

    /// The merge table lists only each token's own last merge; on arbitrary
    /// vocabularies (tokens in any rank order, unreachable tokens, tokens
    /// spelled by several pairs) every merge path must still equal the
    /// byte-level reference.
    #[test]
    fn merges_equal_reference_on_random_vocabularies() {
        let mut rng = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng() as usize;
        for round in 0..300 {
            let alphabet = &b"abcd"[..2 + round % 3];
            let mut tokens: Vec<Vec<u8>> = Vec::new();
            for _ in 0..(5 + next() % 40) {
                let len = 2 + next() % 6;
                let t: Vec<u8> = (0..len).map(|_| alphabet[next() % alphabet.len()]).collect();
                if !tokens.contains(&t) {
                    tokens.push(t);
                }
            }
            let r = TokenMap::after_bytes(&tokens.iter().map(Vec::as_slice).collect::<Vec<_>>());
            for _ in 0..20 {
                let len = 1 + next() % 300;
                let piece: Vec<u8> = (0..len).map(|_| alphabet[next() % alphabet.len()]).collect();
                let expected = reference(&piece, &r);
                let whole = r.get(&piece).map_or_else(|| expected.clone(), |t| vec![t]);
                assert_eq!(encode_piece_vec(&piece, &r), whole, "round {round}, {tokens:?}, {piece:?}");
                let mut b = Vec::new();
                merge_queue(&piece, &r, &mut b, &mut HeapQueue::default(), &mut |a, b| r.merge(a, b));
                assert_eq!(b, expected, "heap, round {round}");
                let mut q = Vec::new();
                merge_queue(&piece, &r, &mut q, &mut RankQueue::new(), &mut |a, b| r.merge(a, b));
                assert_eq!(q, expected, "rank queue, round {round}");
            }
        }
    }

    /// Atoms, on random vocabularies whose tokens hold ASCII letters, whole
    /// two- and three-byte characters, parts of them and bytes around them
    /// in any rank order, so some pairs qualify as atoms at some
    /// places and not at others: every piece must still merge to the
    /// byte-level reference.
    #[test]
    fn atoms_equal_reference_on_random_vocabularies() {
        let mut rng = crate::test_rng::xorshift(0x5851_f42d_4c95_7f2d);
        let mut next = move || rng() as usize;
        // Letters: ASCII and two-byte characters sharing lead bytes.
        // With a lone lead byte and "W", "e": 0xE6 'W' 'e' has the low bits
        // of the character U+65E5 (0xE6 0x97 0xA5) but is not it.
        let letters: [&[u8]; 12] = [
            b"a",
            b"b",
            b"\xe6",
            b"W",
            b"e",
            "\u{e9}".as_bytes(),
            "\u{e8}".as_bytes(),
            "\u{436}".as_bytes(),
            "\u{43e}".as_bytes(),
            "\u{65e5}".as_bytes(),
            "\u{65e6}".as_bytes(),
            "\u{306e}".as_bytes(),
        ];
        let (mut with_atoms, mut with_char3, mut with_grid) = (0, 0, 0);
        for round in 0..600 {
            let mut tokens: Vec<Vec<u8>> = Vec::new();
            for _ in 0..(5 + next() % 40) {
                let t: Vec<u8> = (0..1 + next() % 3).flat_map(|_| letters[next() % letters.len()].to_vec()).collect();
                // Sometimes a token that cuts a character apart.
                let t = match next() % 6 {
                    0 if t.len() > 1 => t[1..].to_vec(),
                    1 if t.len() > 1 => t[..t.len() - 1].to_vec(),
                    2 if t.len() > 2 => t[2..].to_vec(),
                    3 if t.len() > 2 => t[..t.len() - 2].to_vec(),
                    _ => t,
                };
                if t.len() > 1 && !tokens.contains(&t) {
                    tokens.push(t);
                }
            }
            // Often the three-byte characters themselves, at any rank.
            for l in letters.iter().filter(|l| l.len() == 3) {
                if next() % 2 == 0 && !tokens.iter().any(|t| t == l) {
                    let at = next() % (tokens.len() + 1);
                    tokens.insert(at, l.to_vec());
                }
            }
            let r = TokenMap::after_bytes(&tokens.iter().map(Vec::as_slice).collect::<Vec<_>>());
            // Vocabularies where some character starts whole, alone in a piece.
            let whole = |len| letters.iter().any(|l| l.len() == len && r.atoms().at(l, 0) == (r.rank(l), len));
            with_atoms += usize::from(whole(2));
            with_char3 += usize::from(whole(3));
            // ж and о merge in the grid of their block (that of é and è otherwise).
            with_grid += usize::from(r.atoms().code(0xD0, 0xB6) & GRID_ATOM != 0);
            for _ in 0..30 {
                let piece: Vec<u8> =
                    (0..1 + next() % 20).flat_map(|_| letters[next() % letters.len()].to_vec()).collect();
                let expected = reference(&piece, &r);
                let whole = r.get(&piece).map_or_else(|| expected.clone(), |t| vec![t]);
                assert_eq!(encode_piece_vec(&piece, &r), whole, "round {round}, {tokens:?}, {piece:?}");
            }
        }
        assert!(
            with_atoms > 100 && with_char3 > 100 && with_grid > 20,
            "{with_atoms} vocabularies with two-byte atoms, {with_char3} with three-byte ones, {with_grid} with ж in the grid"
        );
    }

    /// Three-byte characters of several scripts for the random vocabularies below.
    const CHARS: [&str; 6] = ["\u{65e5}", "\u{672c}", "\u{306e}", "\u{30ab}", "\u{e01}", "\u{ac00}"];

    /// A random vocabulary after the bytes: of each of [`CHARS`], each of its
    /// first two bytes, last two bytes and whole, or not, in random order (so
    /// some characters are tokens BPE cannot reach from their bytes).
    fn character_vocab(next: &mut impl FnMut() -> usize) -> (Vec<Vec<u8>>, TokenMap) {
        let mut tokens: Vec<Vec<u8>> = Vec::new();
        for c in CHARS {
            let b = c.as_bytes();
            for t in [&b[..2], &b[1..], b] {
                if next() % 2 == 0 && !tokens.iter().any(|x| x == t) {
                    let at = next() % (tokens.len() + 1);
                    tokens.insert(at, t.to_vec());
                }
            }
        }
        let map = TokenMap::after_bytes(&tokens.iter().map(Vec::as_slice).collect::<Vec<_>>());
        (tokens, map)
    }

    /// `TokenMap::char3` is the one token BPE makes of a three-byte character
    /// (`Rank::MAX` when it makes several, or the string is something else):
    /// on random vocabularies where some characters are tokens that BPE
    /// cannot reach from their bytes, and on every three-byte string with
    /// the real vocabularies.
    #[test]
    fn char3_is_the_one_token_bpe_makes_of_a_character() {
        let expected = |s: &[u8], r: &TokenMap| match reference(s, r)[..] {
            [t] if s.len() == 3 && (0xE0..=0xEF).contains(&s[0]) && s[1..].iter().all(|b| b >> 6 == 2) => t,
            _ => Rank::MAX,
        };
        let mut rng = crate::test_rng::xorshift(0x00c4_a73e_5eed);
        let mut next = move || rng() as usize;
        let (mut unreachable, mut reachable) = (0, 0);
        for _ in 0..300 {
            let (tokens, r) = character_vocab(&mut next);
            for c in CHARS {
                let c = c.as_bytes();
                assert_eq!(r.char3(c), expected(c, &r), "{c:?} with {tokens:?}");
                match (r.get(c), r.char3(c)) {
                    (Some(_), Rank::MAX) => unreachable += 1,
                    (Some(_), _) => reachable += 1,
                    _ => {}
                }
            }
            for s in [&b"abc"[..], b"\xe6\x97", b"\xe6\x97\xa5x", b"\xf0\x9f\x98", b"a\xc3\xa9"] {
                assert_eq!(r.char3(s), Rank::MAX, "{s:?}");
            }
        }
        assert!(unreachable > 50 && reachable > 50, "{unreachable} unreachable, {reachable} reachable");
        each_real_vocab(|file, r| {
            let mut found = 0;
            for lead in 0xE0..=0xEFu8 {
                for b1 in 0x80..=0xBFu8 {
                    for b2 in 0x80..=0xBFu8 {
                        let s = [lead, b1, b2];
                        assert_eq!(r.char3(&s), expected(&s, r), "{file} {s:x?}");
                        found += usize::from(r.char3(&s) != Rank::MAX);
                    }
                }
            }
            assert!(found > 100, "{file}: {found} characters");
        });
    }

    /// `one_character` gives BPE's tokens for every three-byte character,
    /// the first time (merged) and again (from the table it fills), and
    /// nothing for other strings: on random vocabularies where characters
    /// are one, two or three tokens, and on every three-byte string with the
    /// real vocabularies.
    #[test]
    fn one_character_is_bpe_of_the_character() {
        let of = |s: &[u8], r: &TokenMap| {
            let mut out = vec![7];
            let done = r.one_character(s, &mut out);
            (done, out[1..].to_vec())
        };
        let mut rng = crate::test_rng::xorshift(0x0de1_7a5e_ed01);
        let mut next = move || rng() as usize;
        let mut counts = [0usize; 4];
        for _ in 0..300 {
            let (tokens, r) = character_vocab(&mut next);
            for _ in 0..2 {
                for c in CHARS {
                    let c = c.as_bytes();
                    let want = reference(c, &r);
                    assert_eq!(of(c, &r), (true, want.clone()), "{c:?} with {tokens:?}");
                    counts[want.len()] += 1;
                }
            }
            for s in [&b"abc"[..], b"\xe6\x97", b"\xe6\x97\xa5x", b"\xf0\x9f\x98", b"a\xc3\xa9"] {
                assert_eq!(of(s, &r), (false, vec![]), "{s:?}");
            }
        }
        assert!(counts[1..].iter().all(|&n| n > 100), "characters of 1, 2, 3 tokens: {counts:?}");
        each_real_vocab(|file, r| {
            for _ in 0..2 {
                for lead in 0xE0..=0xEFu8 {
                    for b1 in 0x80..=0xBFu8 {
                        for b2 in 0x80..=0xBFu8 {
                            let s = [lead, b1, b2];
                            assert_eq!(of(&s, r), (true, reference(&s, r)), "{file} {s:x?}");
                        }
                    }
                }
            }
        });
    }

    /// Words on the real vocabularies, of ASCII letters, of two-byte
    /// characters (Cyrillic, Greek, accented Latin, Hebrew, Arabic) and of
    /// three-byte ones (Chinese, Japanese, Devanagari, Thai, Hangul), up to 32
    /// bytes (16 atoms) and past it, merge to the reference.
    #[test]
    fn atoms_equal_reference_on_real_vocabularies() {
        let alphabets = [
            "\u{430}\u{431}\u{432}\u{433}\u{435}\u{43e}\u{438}\u{43d}\u{442}\u{440}",
            " \u{3b1}\u{3b2}\u{3b3}\u{3b5}\u{3bf}\u{3c4}",
            "aeinrst\u{e9}\u{e8}\u{fc}\u{df}\u{e7}",
            "\u{5d0}\u{5d1}\u{5d2}\u{627}\u{644}\u{645}x",
            " etaoinshrdlucmfwypvbgkqjxz",
            "\u{65e5}\u{672c}\u{8a9e}\u{306e}\u{6587}\u{7ae0}\u{3067}\u{3059}\u{4e2d}\u{6587}\u{5b57}\u{30ab}\u{30bf}",
            "\u{915}\u{93e}\u{930}\u{94d}\u{92f}\u{e01}\u{e32}\u{e23}\u{ac00}\u{b098}",
            "_(){}[].,;:=+-*/0123456789abcdefxyz",
        ];
        let mut rng = crate::test_rng::xorshift(0x0bad_5eed_1234_5678);
        let mut next = move || (rng() >> 33) as usize;
        each_real_vocab(|file, r| {
            // Byte pairs that start as one part when they are a whole piece
            // (gpt2 1,916, cl100k 3,830, o200k 4,653).
            let atoms = (0..=255u8)
                .flat_map(|a| (0..=255u8).map(move |b| [a, b]))
                .filter(|piece| r.atoms().at(piece, 0).0 != Rank::MAX)
                .count();
            assert!(atoms > 1000, "{file}: {atoms} pairs start as one part");
            // The block grid is Cyrillic's where the vocabulary knows it well,
            // so the Russian alphabet below starts from it.
            if !file.starts_with("gpt2") {
                assert_ne!(r.atoms().code(0xD0, 0xB0) & GRID_ATOM, 0, "{file}: no Cyrillic block grid");
            }
            for round in 0..6000 {
                let alphabet: Vec<char> = alphabets[round % alphabets.len()].chars().collect();
                let piece: String = (0..1 + next() % 24).map(|_| alphabet[next() % alphabet.len()]).collect();
                let piece = piece.as_bytes();
                let expected = reference(piece, r);
                let whole = r.get(piece).map_or_else(|| expected.clone(), |t| vec![t]);
                assert_eq!(
                    encode_piece_vec(piece, r),
                    whole,
                    "{file} round {round} {:?}",
                    String::from_utf8_lossy(piece)
                );
                // The portable merge (`merge_piece` may run the x86-64-v3 copy).
                if r.get(piece).is_none() {
                    let mut portable = Vec::new();
                    merge_piece_with(piece, r, &mut portable, &mut |a, b| r.merge(a, b));
                    assert_eq!(portable, expected, "{file} round {round}, portable");
                }
            }
        });
    }

    /// Merges `pieces` (those that are no token and that a lane takes) side
    /// by side and checks each that fits a lane against the reference; a
    /// piece of at most `LANE_BYTES` always fits. How many longer pieces
    /// fitted and did not.
    fn assert_lanes_equal_reference(pieces: &[Vec<u8>], r: &TokenMap, what: &str) -> (usize, usize) {
        let pieces: Vec<&[u8]> = pieces
            .iter()
            .map(Vec::as_slice)
            .filter(|p| (2..=LANE_MAX_BYTES).contains(&p.len()) && r.get(p).is_none())
            .collect();
        let mut lanes = vec![Lane::default(); pieces.len()];
        merge_lanes(&mut lanes, |k| pieces[k], r);
        // The portable copy (the above may run the x86-64-v3 one) agrees.
        let mut portable = vec![Lane::default(); pieces.len()];
        merge_lanes_in::<Portable>(&mut portable, |k| pieces[k], r);
        for (a, b) in lanes.iter().zip(&portable) {
            assert!(a.tokens().eq(b.tokens()), "{what}: portable lanes differ");
        }
        let mut long = (0, 0);
        for (lane, piece) in lanes.iter().zip(&pieces) {
            if piece.len() > LANE_BYTES {
                *(if lane.merged() { &mut long.0 } else { &mut long.1 }) += 1;
            }
            if !lane.merged() {
                let mut ids = [0; QUADRATIC_MAX];
                let mut code = [OTHER_PART; QUADRATIC_MAX];
                let parts = split_into_atoms(piece, r, &mut ids, &mut code);
                assert!(parts.is_none_or(|p| p == QUADRATIC_MAX), "{what}: {piece:?} fits a lane, but was not merged");
                continue;
            }
            let got: Vec<Rank> = lane.tokens().collect();
            assert_eq!(
                got,
                reference(piece, r),
                "{what}: {:?} among {} pieces",
                String::from_utf8_lossy(piece),
                pieces.len()
            );
        }
        long
    }

    /// Pieces merged side by side, in groups of 1 to 40 of different lengths
    /// (so lanes finish at different rounds), on random vocabularies with
    /// atoms of two and three bytes and on the real ones.
    #[test]
    fn lanes_equal_reference() {
        let mut rng = crate::test_rng::xorshift(0x7f4a_7c15_9e37_79b9);
        let mut next = move || (rng() >> 33) as usize;
        let letters: [&[u8]; 8] =
            [b"a", b"b", b"e", "\u{e9}".as_bytes(), "\u{436}".as_bytes(), "\u{65e5}".as_bytes(), b" ", b"x"];
        for round in 0..300 {
            let mut tokens: Vec<Vec<u8>> = Vec::new();
            for _ in 0..(5 + next() % 40) {
                let t: Vec<u8> = (0..1 + next() % 3).flat_map(|_| letters[next() % letters.len()].to_vec()).collect();
                let t = if next() % 4 == 0 && t.len() > 1 { t[1..].to_vec() } else { t };
                if t.len() > 1 && !tokens.contains(&t) {
                    tokens.push(t);
                }
            }
            let r = TokenMap::after_bytes(&tokens.iter().map(Vec::as_slice).collect::<Vec<_>>());
            let pieces: Vec<Vec<u8>> = (0..1 + next() % 40)
                .map(|_| (0..1 + next() % 8).flat_map(|_| letters[next() % letters.len()].to_vec()).collect())
                .collect();
            assert_lanes_equal_reference(&pieces, &r, &format!("round {round}, {tokens:?}"));
        }
        let alphabets = [
            " etaoinshrdlucmfwypvbgkqjxz",
            "aeinrst\u{e9}\u{e8}\u{fc}\u{df}",
            "\u{430}\u{431}\u{435}\u{43e}\u{438}",
            "\u{65e5}\u{672c}\u{306e}x",
        ];
        each_real_vocab(|file, r| {
            // Pieces longer than LANE_BYTES that fitted a lane and that did not.
            let mut long = (0, 0);
            for round in 0..400 {
                let alphabet: Vec<char> = alphabets[round % alphabets.len()].chars().collect();
                let pieces: Vec<Vec<u8>> = (0..1 + next() % 40)
                    .map(|_| {
                        (0..1 + next() % 18).map(|_| alphabet[next() % alphabet.len()]).collect::<String>().into_bytes()
                    })
                    .collect();
                let (fitted, not) = assert_lanes_equal_reference(&pieces, r, &format!("{file} round {round}"));
                (long.0, long.1) = (long.0 + fitted, long.1 + not);
            }
            assert!(long.0 > 100 && long.1 > 10, "{file}: long pieces fitted and not {long:?}");
        });
    }

    /// For the merge speed measurements: the vocabulary `FASTLLM_MERGE_VOCAB`
    /// (o200k_base.tiktoken by default) and, in order, the pieces of the text
    /// in the file `FASTLLM_MERGE_BENCH` that are no token, each the first time
    /// it occurs (None without that file).
    fn first_seen_pieces() -> Option<(TokenMap, Vec<Vec<u8>>)> {
        let path = std::env::var("FASTLLM_MERGE_BENCH").ok()?;
        let vocab = std::env::var("FASTLLM_MERGE_VOCAB").unwrap_or("o200k_base.tiktoken".to_string());
        let r = real_vocab(&vocab).expect("the vocabulary file");
        let text = std::fs::read_to_string(path).unwrap();
        let pattern = if vocab.starts_with("o200k") { "o200k" } else { "cl100k" };
        let pre = crate::pretokenize::Pretokenizer::new(pattern).unwrap();
        let mut seen = std::collections::HashSet::new();
        let pieces = pre
            .pieces(&text)
            .unwrap()
            .into_iter()
            .map(str::as_bytes)
            .filter(|b| b.len() >= 2 && r.get(b).is_none() && seen.insert(*b))
            .map(<[u8]>::to_vec)
            .collect();
        Some((r, pieces))
    }

    /// Merge speed on the first-seen pieces of real text, by piece length:
    /// `FASTLLM_MERGE_BENCH=text.txt cargo test --release merge_speed -- --ignored --nocapture`
    /// (vocabulary `FASTLLM_MERGE_VOCAB`, o200k_base.tiktoken by default).
    #[test]
    #[ignore]
    fn merge_speed() {
        use crate::test_clock::thread_cpu_seconds as cpu_seconds;
        let Some((r, all)) = first_seen_pieces() else { return };
        let mut buckets: Vec<Vec<&[u8]>> = vec![Vec::new(); 4];
        for b in &all {
            let b = b.as_slice();
            let k = match b.len() {
                0..=16 => 0,
                17..=32 => 1,
                33..=64 => 2,
                _ => 3,
            };
            buckets[k].push(b);
        }
        for (k, pieces) in buckets.iter().enumerate() {
            let bytes: usize = pieces.iter().map(|p| p.len()).sum();
            let mut best = f64::MAX;
            let mut out = Vec::with_capacity(bytes);
            for _ in 0..9 {
                out.clear();
                let start = cpu_seconds();
                for p in pieces {
                    merge_piece(p, &r, &mut out);
                }
                best = best.min(cpu_seconds() - start);
            }
            println!(
                "{:>8} {:6} pieces {:8} bytes: {:6.2} ns/byte",
                ["2-16", "17-32", "33-64", "65-"][k],
                pieces.len(),
                bytes,
                best * 1e9 / bytes as f64
            );
        }
    }

    /// Whether merging 17-32-byte pieces waits on memory or on its own
    /// instructions: each first-seen piece once, each four times in a row
    /// (every line it touches in L1 from the second time), and windows of
    /// 64 pieces four times; same variables as [`merge_speed`]:
    /// `FASTLLM_MERGE_BENCH=text.txt cargo test --release merge_speed_again -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn merge_speed_again() {
        use crate::test_clock::thread_cpu_seconds as cpu_seconds;
        let Some((r, all)) = first_seen_pieces() else { return };
        let pieces: Vec<&[u8]> = all.iter().map(Vec::as_slice).filter(|b| (17..=32).contains(&b.len())).collect();
        let mut out = Vec::with_capacity(pieces.len() * 32);
        for (what, times, window) in [("once", 1, 1), ("4 in a row", 4, 1), ("windows of 64, 4 times", 4, 64)] {
            let mut best = f64::MAX;
            for _ in 0..9 {
                out.clear();
                let start = cpu_seconds();
                for w in pieces.chunks(window) {
                    for _ in 0..times {
                        for p in w {
                            merge_piece(p, &r, &mut out);
                        }
                    }
                }
                best = best.min((cpu_seconds() - start) / times as f64);
            }
            println!("{what:>24}: {:6.1} ns a piece ({} pieces)", best * 1e9 / pieces.len() as f64, pieces.len());
        }
    }

    #[test]
    fn whole_piece_in_vocab_is_one_token() {
        let r = TokenMap::after_bytes(&[b"ab", b"abc"]);
        assert_eq!(encode_piece_vec(b"abc", &r), vec![257]);
        assert_eq!(encode_piece_vec(b"", &r), Vec::<Rank>::new());
    }

    #[test]
    fn long_runs_do_not_blow_up() {
        let r = TokenMap::after_bytes(&[b"aa", b"aaaa", b"aaaaaaaa"]);
        let piece = vec![b'a'; 1 << 20];
        let out = encode_piece_vec(&piece, &r);
        assert_eq!(out.len(), (1 << 20) / 8);
        assert!(out.iter().all(|&t| t == 258));
    }
}
