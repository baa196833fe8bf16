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

use super::rank_queue::RankQueue;
use super::vocab::{Rank, TokenMap};

/// Pieces at least this long go through the queue-based merge.
const HEAP_THRESHOLD: usize = 128;

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
    if piece.len() < 2 {
        return;
    }
    if piece.len() < HEAP_THRESHOLD {
        merge_quadratic(piece, ranks, out);
    } else {
        merge_queue(piece, ranks, out);
    }
}

/// Returns the tokens of `piece` as a new vector.
pub fn encode_piece_vec(piece: &[u8], ranks: &TokenMap) -> Vec<Rank> {
    let mut out = Vec::new();
    encode_piece(piece, ranks, &mut out);
    out
}

#[inline]
fn push_part(piece: &[u8], ranks: &TokenMap, out: &mut Vec<Rank>, start: usize, end: usize) {
    let rank = ranks.rank(&piece[start..end]);
    if rank != Rank::MAX {
        out.push(rank);
    }
}

/// Quadratic merge for short pieces (fewer than `HEAP_THRESHOLD` bytes), on
/// fixed-size stack arrays. Parts `0..parts` are live: `start[k]` is where part
/// `k` begins (`start[parts]` is the end of the piece) and `pair[k]` the rank
/// of parts `k` and `k + 1` merged (`Rank::MAX`: not a token, or no `k + 1`).
fn merge_quadratic(piece: &[u8], ranks: &TokenMap, out: &mut Vec<Rank>) {
    let n = piece.len();
    debug_assert!(n < HEAP_THRESHOLD);
    let mut start = [0u32; HEAP_THRESHOLD + 1];
    let mut pair = [Rank::MAX; HEAP_THRESHOLD];
    for (k, s) in start[..=n].iter_mut().enumerate() {
        *s = k as u32;
    }
    for k in 0..n - 1 {
        pair[k] = ranks.pair(piece[k], piece[k + 1]);
    }
    let mut parts = n;
    let span = |start: &[u32], a: usize, b: usize| &piece[start[a] as usize..start[b] as usize];
    loop {
        let mut best = Rank::MAX;
        let mut at = 0;
        for (k, &r) in pair[..parts].iter().enumerate() {
            if r < best {
                best = r;
                at = k;
            }
        }
        if best == Rank::MAX {
            break;
        }
        // Merge part `at` with part `at + 1`.
        start.copy_within(at + 2..=parts, at + 1);
        pair.copy_within(at + 2..parts, at + 1);
        parts -= 1;
        pair[parts] = Rank::MAX;
        if at + 1 < parts {
            pair[at] = ranks.rank_filtered(span(&start, at, at + 2));
        } else {
            pair[at] = Rank::MAX;
        }
        if at > 0 {
            pair[at - 1] = ranks.rank_filtered(span(&start, at - 1, at + 1));
        }
    }
    for k in 0..parts {
        push_part(piece, ranks, out, start[k] as usize, start[k + 1] as usize);
    }
}

/// `rank` of a part that was merged into its left neighbour (never a rank:
/// the vocabulary has fewer than `u32::MAX - 1` tokens).
const DEAD: Rank = Rank::MAX - 1;
/// How many queue entries ahead of the one being processed to prefetch.
const PREFETCH_AHEAD: usize = 12;

#[inline(always)]
fn prefetch<T>(slot: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults and has no effect
    // on the program's semantics.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(slot as *const T as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

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

/// O(n log n) merge for long pieces. Parts are stored at the index of their
/// first byte, as the rank of the part merged with the next one (`Rank::MAX`:
/// not a token, or no next part); the slots of a part's other bytes are
/// `DEAD`. There are no links: the next and previous parts are the nearest
/// live slots, at most a token's length away, which is cheaper than keeping
/// links up to date over a megabyte (4 bytes a slot instead of 12). The queue
/// holds `(rank, start)` of candidate pairs, and entries that went stale are
/// skipped when popped.
///
/// Over a megabyte piece the queue hands out positions all over the slots,
/// so the time goes to cache misses; the queue's upcoming positions are
/// known, and their slots and bytes are prefetched a few entries ahead.
fn merge_queue(piece: &[u8], ranks: &TokenMap, out: &mut Vec<Rank>) {
    let n = piece.len();
    // Parts are indexed with u32: callers keep texts under 4 GiB (the Python
    // bindings refuse longer ones with a ValueError).
    assert!(n < u32::MAX as usize, "piece of 4 GiB or more");
    let mut rank: Vec<Rank> = Vec::with_capacity(n);
    rank.extend(piece.windows(2).map(|w| ranks.pair(w[0], w[1])));
    rank.push(Rank::MAX);
    rank.truncate(n);
    let mut queue = RankQueue::new();
    for (i, &r) in rank.iter().enumerate() {
        if r != Rank::MAX {
            queue.push(r, i as u32);
        }
    }
    // Rank of the pair of parts starting at `i` (the start of a part).
    let pair_rank = |rank: &[Rank], i: usize| -> Rank {
        let j = next_part(rank, i);
        if j >= n {
            return Rank::MAX;
        }
        ranks.rank_filtered(&piece[i..next_part(rank, j)])
    };

    while let Some((r, i)) = queue.pop() {
        if let Some(ahead) = queue.ahead(PREFETCH_AHEAD) {
            // The slot, the line before it (where the previous part usually
            // starts) and the bytes that the new pairs' lookups read.
            let ahead = ahead as usize;
            prefetch(&rank[ahead.saturating_sub(8)]);
            prefetch(&rank[ahead]);
            prefetch(&piece[ahead]);
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
        let r = pair_rank(&rank, i);
        rank[i] = r;
        if r != Rank::MAX {
            queue.push(r, i as u32);
        }
        if let Some(p) = rank[..i].iter().rposition(|&r| r != DEAD) {
            let r = pair_rank(&rank, p);
            rank[p] = r;
            if r != Rank::MAX {
                queue.push(r, p as u32);
            }
        }
    }
    let mut i = 0usize;
    while i < n {
        let j = next_part(&rank, i);
        push_part(piece, ranks, out, i, j);
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranks(tokens: &[&[u8]]) -> TokenMap {
        let mut all: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        all.extend(tokens.iter().map(|t| t.to_vec()));
        TokenMap::new(&all).unwrap()
    }

    /// Straightforward reference: rebuild the part list after every merge.
    fn reference(piece: &[u8], ranks: &TokenMap) -> Vec<Rank> {
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
        let r = ranks(&[b"aa", b"ab", b"aaa"]);
        for text in [&b"aaa"[..], b"aaaa", b"aab", b"abab", b"baaab", b"x"] {
            let mut q = Vec::new();
            merge_quadratic(text, &r, &mut q);
            let mut h = Vec::new();
            merge_queue(text, &r, &mut h);
            assert_eq!(q, reference(text, &r), "{text:?}");
            assert_eq!(h, reference(text, &r), "{text:?}");
        }
    }

    #[test]
    fn queue_equals_quadratic_on_pseudo_random_inputs() {
        let r = ranks(&[b"ab", b"ba", b"abab", b"bb", b"aab", b"abb", b"ca", b"cab", b"bbb", b"aa"]);
        let mut state = 0x1234_5678u64;
        for len in 1..300 {
            let piece: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    b"abc"[(state >> 33) as usize % 3]
                })
                .collect();
            let expected = reference(&piece, &r);
            if len < HEAP_THRESHOLD {
                let mut q = Vec::new();
                merge_quadratic(&piece, &r, &mut q);
                assert_eq!(q, expected);
            }
            let mut h = Vec::new();
            merge_queue(&piece, &r, &mut h);
            assert_eq!(h, expected);
            assert_eq!(encode_piece_vec(&piece, &r), expected);
        }
    }

    /// A real vocabulary from `../shared/data` (None when it is absent).
    fn real_vocab(file: &str) -> Option<TokenMap> {
        use base64::Engine;
        let dir = std::env::var("FASTLLM_SHARED_DATA")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data").to_string());
        let text = std::fs::read_to_string(std::path::Path::new(&dir).join(file)).ok()?;
        let mut tokens: Vec<(Rank, Vec<u8>)> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (b64, rank) = l.split_once(' ').unwrap();
                (rank.parse().unwrap(), base64::engine::general_purpose::STANDARD.decode(b64).unwrap())
            })
            .collect();
        tokens.sort();
        assert!(tokens.iter().enumerate().all(|(k, (r, _))| *r as usize == k));
        Some(TokenMap::new(&tokens.into_iter().map(|(_, t)| t).collect::<Vec<_>>()).unwrap())
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
        let mut state = 0x9e37_79b9u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        for file in ["gpt2.tiktoken", "cl100k_base.tiktoken", "o200k_base.tiktoken"] {
            let Some(r) = real_vocab(file) else {
                eprintln!("skipping: {file} not found");
                continue;
            };
            for round in 0..60 {
                let alphabet = alphabets[round % alphabets.len()];
                let len = 128 + next() % 1500;
                let mut piece: Vec<u8> = (0..len).map(|_| alphabet[next() % alphabet.len()]).collect();
                if round % 3 == 0 {
                    // Repeated substrings: equal ranks everywhere, ties broken leftmost.
                    let unit = piece[..1 + next() % 8].to_vec();
                    piece = unit.iter().copied().cycle().take(len).collect();
                }
                let mut h = Vec::new();
                merge_queue(&piece, &r, &mut h);
                assert_eq!(h, reference(&piece, &r), "{file} round {round}");
            }
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
