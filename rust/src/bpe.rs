//! Rank-based byte-pair merging of one pre-tokenized piece.
//!
//! Semantics are tiktoken's: starting from single bytes, repeatedly merge the
//! adjacent pair whose concatenation has the lowest rank (the leftmost one on a
//! tie) until no adjacent pair is in the vocabulary. A piece that is itself a
//! token is emitted directly, as tiktoken does.
//!
//! Short pieces use a simple quadratic scan (fastest for the handful of bytes
//! of ordinary words). Long pieces (text the split pattern cannot break up,
//! e.g. a megabyte of letters) use a linked list plus a min-heap, which is
//! O(n log n), so the cost per byte stays flat.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

/// A token id / merge priority. Lower ranks merge first.
pub type Rank = u32;

/// Maps token bytes to their rank.
pub type RankMap = FxHashMap<Vec<u8>, Rank>;

/// Pieces at least this long go through the heap-based merge.
const HEAP_THRESHOLD: usize = 128;

/// Appends the tokens of `piece` to `out`.
///
/// Every single byte must be in `ranks` (the caller guarantees it when it
/// builds the vocabulary); otherwise the byte is skipped rather than panicking.
pub fn encode_piece(piece: &[u8], ranks: &RankMap, out: &mut Vec<Rank>) {
    if piece.is_empty() {
        return;
    }
    if let Some(&rank) = ranks.get(piece) {
        out.push(rank);
        return;
    }
    // (The heap merge indexes bytes with u32; a piece of 4 GiB or more takes
    // the slow path rather than failing.)
    if piece.len() < HEAP_THRESHOLD || piece.len() >= u32::MAX as usize {
        merge_quadratic(piece, ranks, out);
    } else {
        merge_heap(piece, ranks, out);
    }
}

/// Returns the tokens of `piece` as a new vector.
pub fn encode_piece_vec(piece: &[u8], ranks: &RankMap) -> Vec<Rank> {
    let mut out = Vec::new();
    encode_piece(piece, ranks, &mut out);
    out
}

#[inline]
fn lookup(ranks: &RankMap, bytes: &[u8]) -> Rank {
    ranks.get(bytes).copied().unwrap_or(Rank::MAX)
}

#[inline]
fn push_part(piece: &[u8], ranks: &RankMap, out: &mut Vec<Rank>, start: usize, end: usize) {
    if let Some(&rank) = ranks.get(&piece[start..end]) {
        out.push(rank);
    }
}

/// Quadratic merge for short pieces. `bounds[k]` is the start of part `k`
/// (the last entry is `piece.len()`); `pair[k]` is the rank of parts `k` and
/// `k + 1` merged (`Rank::MAX` when that is not a token or there is no `k + 1`).
fn merge_quadratic(piece: &[u8], ranks: &RankMap, out: &mut Vec<Rank>) {
    let n = piece.len();
    let mut bounds: Vec<usize> = (0..=n).collect();
    let mut pair: Vec<Rank> = (0..n)
        .map(|k| if k + 2 <= n { lookup(ranks, &piece[k..k + 2]) } else { Rank::MAX })
        .collect();
    loop {
        let mut best = Rank::MAX;
        let mut at = 0;
        for (k, &r) in pair.iter().enumerate() {
            if r < best {
                best = r;
                at = k;
            }
        }
        if best == Rank::MAX {
            break;
        }
        // Merge part `at` with part `at + 1`.
        bounds.remove(at + 1);
        pair.remove(at + 1);
        let parts = pair.len();
        pair[at] = if at + 2 <= parts {
            lookup(ranks, &piece[bounds[at]..bounds[at + 2]])
        } else {
            Rank::MAX
        };
        if at > 0 {
            pair[at - 1] = lookup(ranks, &piece[bounds[at - 1]..bounds[at + 1]]);
        }
    }
    for w in bounds.windows(2) {
        push_part(piece, ranks, out, w[0], w[1]);
    }
}

/// O(n log n) merge for long pieces. Parts are nodes of a doubly linked list
/// indexed by their start byte; the heap holds `(rank, start)` of candidate
/// pairs and entries that went stale are skipped when popped.
fn merge_heap(piece: &[u8], ranks: &RankMap, out: &mut Vec<Rank>) {
    let n = piece.len();
    const NONE: u32 = u32::MAX;
    // next[i] is the start of the part after the part starting at i (n = end).
    let mut next: Vec<u32> = (1..=n as u32).collect();
    let mut prev: Vec<u32> = (0..n as u32).map(|i| if i == 0 { NONE } else { i - 1 }).collect();
    let mut pair: Vec<Rank> = vec![Rank::MAX; n];
    let mut alive: Vec<bool> = vec![true; n];
    let mut heap: BinaryHeap<Reverse<u64>> = BinaryHeap::with_capacity(n);
    let key = |rank: Rank, start: usize| Reverse(((rank as u64) << 32) | start as u64);

    for i in 0..n - 1 {
        let r = lookup(ranks, &piece[i..i + 2]);
        pair[i] = r;
        if r != Rank::MAX {
            heap.push(key(r, i));
        }
    }
    // Rank of the pair starting at part `i`, given the current links.
    let pair_rank = |next: &[u32], i: usize| -> Rank {
        let j = next[i] as usize;
        if j >= n {
            return Rank::MAX;
        }
        let end = next[j] as usize;
        lookup(ranks, &piece[i..end])
    };

    while let Some(Reverse(entry)) = heap.pop() {
        let rank = (entry >> 32) as Rank;
        let i = (entry & 0xffff_ffff) as usize;
        // A part's pair only ever grows, so its rank changes whenever the pair
        // does: a popped entry is current exactly when its rank still matches.
        if !alive[i] || pair[i] != rank {
            continue;
        }
        let j = next[i] as usize;
        let after = next[j];
        alive[j] = false;
        next[i] = after;
        if (after as usize) < n {
            prev[after as usize] = i as u32;
        }
        let r = pair_rank(&next, i);
        pair[i] = r;
        if r != Rank::MAX {
            heap.push(key(r, i));
        }
        let p = prev[i];
        if p != NONE {
            let p = p as usize;
            let r = pair_rank(&next, p);
            pair[p] = r;
            if r != Rank::MAX {
                heap.push(key(r, p));
            }
        }
    }
    let mut i = 0usize;
    while i < n {
        let j = next[i] as usize;
        push_part(piece, ranks, out, i, j);
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranks(tokens: &[&[u8]]) -> RankMap {
        let mut m: RankMap = (0u32..256).map(|b| (vec![b as u8], b)).collect();
        for (k, t) in tokens.iter().enumerate() {
            m.insert(t.to_vec(), 256 + k as Rank);
        }
        m
    }

    /// Straightforward reference: rebuild the part list after every merge.
    fn reference(piece: &[u8], ranks: &RankMap) -> Vec<Rank> {
        let mut parts: Vec<Vec<u8>> = piece.iter().map(|&b| vec![b]).collect();
        loop {
            let mut best: Option<(Rank, usize)> = None;
            for k in 0..parts.len().saturating_sub(1) {
                let joined = [parts[k].as_slice(), parts[k + 1].as_slice()].concat();
                if let Some(&r) = ranks.get(&joined) {
                    if best.map_or(true, |(b, _)| r < b) {
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
        parts.iter().map(|p| ranks[p]).collect()
    }

    #[test]
    fn merges_lowest_rank_first_and_leftmost_on_ties() {
        let r = ranks(&[b"aa", b"ab", b"aaa"]);
        for text in [&b"aaa"[..], b"aaaa", b"aab", b"abab", b"baaab", b"x"] {
            let mut q = Vec::new();
            merge_quadratic(text, &r, &mut q);
            let mut h = Vec::new();
            merge_heap(text, &r, &mut h);
            assert_eq!(q, reference(text, &r), "{text:?}");
            assert_eq!(h, reference(text, &r), "{text:?}");
        }
    }

    #[test]
    fn heap_equals_quadratic_on_pseudo_random_inputs() {
        let r = ranks(&[b"ab", b"ba", b"abab", b"bb", b"aab", b"abb", b"ca", b"cab", b"bbb", b"aa"]);
        let mut state = 0x1234_5678u64;
        for len in 1..200 {
            let piece: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    b"abc"[(state >> 33) as usize % 3]
                })
                .collect();
            let mut q = Vec::new();
            merge_quadratic(&piece, &r, &mut q);
            let mut h = Vec::new();
            merge_heap(&piece, &r, &mut h);
            assert_eq!(q, h);
            assert_eq!(q, reference(&piece, &r));
        }
    }

    #[test]
    fn whole_piece_in_vocab_is_one_token() {
        let r = ranks(&[b"ab", b"abc"]);
        assert_eq!(encode_piece_vec(b"abc", &r), vec![257]);
        assert_eq!(encode_piece_vec(b"", &r), Vec::<Rank>::new());
    }

    #[test]
    fn long_runs_do_not_blow_up() {
        let r = ranks(&[b"aa", b"aaaa", b"aaaaaaaa"]);
        let piece = vec![b'a'; 1 << 20];
        let out = encode_piece_vec(&piece, &r);
        assert_eq!(out.len(), (1 << 20) / 8);
        assert!(out.iter().all(|&t| t == 258));
    }
}
