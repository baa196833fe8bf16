//! The BPE merge loop over unique words with incremental pair-count updates.
//!
//! Every distinct piece is a word: a list of token ids (initially its bytes) with the
//! piece's count. Pair counts (adjacent ids, summed over words, weighted by count) sit
//! in a hash map and a lazy [`MergeQueue`]; for each pair we keep the indices of the
//! words that (may) contain it, so a merge touches only those words and only the
//! pairs next to the merged positions.

use indicatif::ProgressBar;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::merge_queue::{MergeQueue, Pair};

/// Word indices per pair; may hold duplicates and words that no longer contain the
/// pair (both are skipped when the pair is merged).
type WordLists = FxHashMap<Pair, Vec<u32>>;
type PairCounts = FxHashMap<Pair, u64>;

struct Words {
    ids: Vec<Vec<u32>>,
    counts: Vec<u64>,
}

/// Learns merges until there are `num_tokens` tokens (the 256 single bytes
/// included), or until no pair occurs at least `min_frequency` times (and at least
/// once). Returns the tokens' bytes in rank order: the 256 bytes, then one token per
/// merge. Ties are broken as documented in [`super::merge_queue`].
pub fn learn_merges(
    pieces: impl IntoIterator<Item = (String, u64)>,
    num_tokens: usize,
    min_frequency: u64,
    progress: &ProgressBar,
) -> Vec<Vec<u8>> {
    let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    if num_tokens <= tokens.len() {
        return tokens;
    }
    let min_count = min_frequency.max(1);
    let mut words = collect_words(pieces);
    let (mut pair_counts, mut where_) = count_pairs(&words);
    let mut queue = MergeQueue::from_counts(
        pair_counts.iter().filter(|(_, &n)| n >= min_count).map(|(&p, &n)| (p, n)),
    );
    progress.set_length((num_tokens - tokens.len()) as u64);

    while tokens.len() < num_tokens {
        let Some((pair, _)) = queue.pop_best(min_count, |p| pair_counts.get(p).copied().unwrap_or(0))
        else {
            break;
        };
        let new_id = tokens.len() as u32;
        let mut merged = tokens[pair.0 as usize].clone();
        merged.extend_from_slice(&tokens[pair.1 as usize]);
        tokens.push(merged);

        let mut list = where_.remove(&pair).unwrap_or_default();
        list.sort_unstable();
        list.dedup();
        let mut deltas: FxHashMap<Pair, i64> = FxHashMap::default();
        let mut new_lists = WordLists::default();
        for &wi in &list {
            let count = words.counts[wi as usize] as i64;
            merge_word(&mut words.ids[wi as usize], pair, new_id, |p, d| {
                *deltas.entry(p).or_insert(0) += d * count;
                if d > 0 {
                    let l = new_lists.entry(p).or_default();
                    if l.last() != Some(&wi) {
                        l.push(wi);
                    }
                }
            });
        }
        for (p, d) in deltas {
            if d == 0 {
                continue;
            }
            let n = pair_counts.entry(p).or_insert(0);
            *n = (*n as i64 + d) as u64;
            let n = *n;
            if n == 0 {
                pair_counts.remove(&p);
            } else if (p.0 == new_id || p.1 == new_id) && n >= min_count {
                queue.push(p, n);
            }
        }
        for (p, l) in new_lists {
            where_.entry(p).or_default().extend(l);
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    tokens
}

fn collect_words(pieces: impl IntoIterator<Item = (String, u64)>) -> Words {
    let mut sorted: Vec<(String, u64)> =
        pieces.into_iter().filter(|(p, n)| p.len() >= 2 && *n > 0).collect();
    // Word order does not change the result; sorting just makes runs reproducible.
    sorted.par_sort_unstable();
    let mut ids = Vec::with_capacity(sorted.len());
    let mut counts = Vec::with_capacity(sorted.len());
    for (piece, n) in sorted {
        ids.push(piece.bytes().map(u32::from).collect());
        counts.push(n);
    }
    Words { ids, counts }
}

fn count_pairs(words: &Words) -> (PairCounts, WordLists) {
    (0..words.ids.len())
        .into_par_iter()
        .fold(
            || (PairCounts::default(), WordLists::default()),
            |(mut counts, mut lists), wi| {
                let w = &words.ids[wi];
                for win in w.windows(2) {
                    let p = (win[0], win[1]);
                    *counts.entry(p).or_insert(0) += words.counts[wi];
                    let l = lists.entry(p).or_default();
                    if l.last() != Some(&(wi as u32)) {
                        l.push(wi as u32);
                    }
                }
                (counts, lists)
            },
        )
        .reduce(
            || (PairCounts::default(), WordLists::default()),
            |(mut ca, mut la), (cb, lb)| {
                for (p, n) in cb {
                    *ca.entry(p).or_insert(0) += n;
                }
                for (p, l) in lb {
                    la.entry(p).or_default().extend(l);
                }
                (ca, la)
            },
        )
}

/// Replaces every non-overlapping occurrence of `pair` in `word` (left to right) by
/// `new_id`, reporting each changed adjacent pair to `delta` once: `-1` for a pair
/// that disappeared, `+1` for a pair that appeared. `new_id` must not occur in `word`.
fn merge_word(word: &mut Vec<u32>, pair: Pair, new_id: u32, mut delta: impl FnMut(Pair, i64)) {
    let (a, b) = pair;
    let n = word.len();
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    let mut prev_merged_end = usize::MAX; // index of the last position consumed by a merge
    while i < n {
        if i + 1 < n && word[i] == a && word[i + 1] == b {
            if i > 0 && prev_merged_end != i - 1 {
                delta((word[i - 1], a), -1);
            }
            delta((a, b), -1);
            if i + 2 < n {
                delta((b, word[i + 2]), -1);
            }
            if let Some(&left) = out.last() {
                if left != new_id {
                    delta((left, new_id), 1);
                }
            }
            out.push(new_id);
            prev_merged_end = i + 1;
            i += 2;
        } else {
            if out.last() == Some(&new_id) && prev_merged_end == i - 1 {
                delta((new_id, word[i]), 1);
            }
            out.push(word[i]);
            i += 1;
        }
    }
    // A run of merges: (new_id, new_id) windows.
    for w in out.windows(2) {
        if w[0] == new_id && w[1] == new_id {
            delta((new_id, new_id), 1);
        }
    }
    if out.len() != n {
        *word = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deltas(word: &[u32], pair: Pair, new_id: u32) -> (Vec<u32>, Vec<(Pair, i64)>) {
        let mut w = word.to_vec();
        let mut d: FxHashMap<Pair, i64> = FxHashMap::default();
        merge_word(&mut w, pair, new_id, |p, x| *d.entry(p).or_insert(0) += x);
        let mut d: Vec<_> = d.into_iter().filter(|(_, x)| *x != 0).collect();
        d.sort();
        (w, d)
    }

    /// Deltas computed the obvious way: all pairs after minus all pairs before.
    fn brute(word: &[u32], pair: Pair, new_id: u32) -> (Vec<u32>, Vec<(Pair, i64)>) {
        let mut out = Vec::new();
        let mut i = 0;
        while i < word.len() {
            if i + 1 < word.len() && (word[i], word[i + 1]) == pair {
                out.push(new_id);
                i += 2;
            } else {
                out.push(word[i]);
                i += 1;
            }
        }
        let mut d: FxHashMap<Pair, i64> = FxHashMap::default();
        for w in word.windows(2) {
            *d.entry((w[0], w[1])).or_insert(0) -= 1;
        }
        for w in out.windows(2) {
            *d.entry((w[0], w[1])).or_insert(0) += 1;
        }
        let mut d: Vec<_> = d.into_iter().filter(|(_, x)| *x != 0).collect();
        d.sort();
        (out, d)
    }

    #[test]
    fn merge_word_deltas_match_a_full_recount() {
        // Every word over the alphabet {1, 2, 3} up to length 7, merging (1, 2) and (1, 1).
        for len in 0..=7u32 {
            for code in 0..3u32.pow(len) {
                let word: Vec<u32> = (0..len).map(|k| 1 + (code / 3u32.pow(k)) % 3).collect();
                for pair in [(1, 2), (1, 1), (2, 1)] {
                    assert_eq!(deltas(&word, pair, 9), brute(&word, pair, 9), "{word:?} {pair:?}");
                }
            }
        }
    }

    #[test]
    fn learns_the_most_frequent_pairs_first() {
        let pieces = vec![("abab".to_string(), 3), ("ab".to_string(), 1), ("cd".to_string(), 2)];
        let tokens = learn_merges(pieces, 259, 1, &ProgressBar::hidden());
        assert_eq!(&tokens[256..], &[b"ab".to_vec(), b"abab".to_vec(), b"cd".to_vec()]);
    }

    #[test]
    fn stops_below_min_frequency() {
        let pieces = vec![("ab".to_string(), 2), ("cd".to_string(), 1)];
        let tokens = learn_merges(pieces, 1000, 2, &ProgressBar::hidden());
        assert_eq!(&tokens[256..], &[b"ab".to_vec()]);
    }
}
