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

/// All words in one flat buffer: word `i` is `ids[meta[i].start..][..meta[i].len]`.
/// Merges only shorten words, in place. A word's start, length and count sit
/// together, so visiting a word costs one cache miss for them and one for its ids.
struct Words {
    ids: Vec<u32>,
    meta: Vec<WordMeta>,
}

#[derive(Clone, Copy)]
struct WordMeta {
    start: usize,
    count: u64,
    len: u32,
}

impl Words {
    fn word(&self, i: usize) -> &[u32] {
        let m = self.meta[i];
        &self.ids[m.start..m.start + m.len as usize]
    }
}

/// Raw access to disjoint words from several threads at once.
#[derive(Clone, Copy)]
struct SharedWords {
    ids: *mut u32,
    ids_len: usize,
    meta: *mut WordMeta,
    meta_len: usize,
}

// SAFETY: used only by `apply_merge`, where every thread works on different word
// indices (the list is deduplicated) and words occupy disjoint ranges of `ids`.
unsafe impl Send for SharedWords {}
unsafe impl Sync for SharedWords {}

impl SharedWords {
    fn new(words: &mut Words) -> Self {
        Self {
            ids: words.ids.as_mut_ptr(),
            ids_len: words.ids.len(),
            meta: words.meta.as_mut_ptr(),
            meta_len: words.meta.len(),
        }
    }

    /// Merges `pair` in word `wi`, reporting deltas weighted by the word's count.
    ///
    /// # Safety
    /// No other thread may access word `wi` at the same time.
    unsafe fn merge(&self, wi: u32, pair: Pair, new_id: u32, mut delta: impl FnMut(Pair, i64)) {
        assert!((wi as usize) < self.meta_len);
        let meta = &mut *self.meta.add(wi as usize);
        assert!(meta.start + meta.len as usize <= self.ids_len);
        let word = std::slice::from_raw_parts_mut(self.ids.add(meta.start), meta.len as usize);
        let count = meta.count as i64;
        meta.len = merge_word(word, pair, new_id, |p, d| delta(p, d * count)) as u32;
    }
}

/// Scratch space reused by every merge step.
#[derive(Default)]
struct Scratch {
    deltas: FxHashMap<Pair, i64>,
    /// (new pair, word index) for every new pair occurrence.
    new_pairs: Vec<(Pair, u32)>,
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
    let (mut pair_counts, mut where_) = count_pairs(&words, min_count);

    let mut queue = MergeQueue::from_counts(pair_counts.iter().filter(|(_, &n)| n >= min_count).map(|(&p, &n)| (p, n)));
    progress.set_length((num_tokens - tokens.len()) as u64);
    let mut scratch = Scratch::default();

    while tokens.len() < num_tokens {
        let Some((pair, _)) = queue.pop_best(min_count, |p| pair_counts.get(p).copied().unwrap_or(0)) else {
            break;
        };
        let new_id = tokens.len() as u32;
        let mut merged = tokens[pair.0 as usize].clone();
        merged.extend_from_slice(&tokens[pair.1 as usize]);
        tokens.push(merged);

        let mut list = where_.remove(&pair).unwrap_or_default();
        list.sort_unstable();
        list.dedup();
        apply_merge(&mut words, &list, pair, new_id, &mut scratch);

        // A pair's occurrences all appear in one step (when its younger token is
        // made) and only disappear afterwards, so a pair that starts below
        // `min_count` can never be merged: it is not tracked at all.
        for (&p, &d) in &scratch.deltas {
            if d < 0 {
                if let Some(n) = pair_counts.get_mut(&p) {
                    *n -= d.unsigned_abs();
                    if *n == 0 {
                        pair_counts.remove(&p);
                    }
                }
            } else if d as u64 >= min_count {
                debug_assert!(p.0 == new_id || p.1 == new_id);
                pair_counts.insert(p, d as u64);
                queue.push(p, d as u64);
            }
        }
        scratch.new_pairs.sort_unstable();
        scratch.new_pairs.dedup();
        for group in scratch.new_pairs.chunk_by(|x, y| x.0 == y.0) {
            if pair_counts.contains_key(&group[0].0) {
                where_.entry(group[0].0).or_default().extend(group.iter().map(|&(_, wi)| wi));
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    tokens
}

/// Lists at least this long are merged in parallel.
const PARALLEL_MIN_WORDS: usize = 4096;

/// Merges `pair` into `new_id` in the listed words (sorted, no duplicates),
/// collecting the pair-count deltas and the new pairs' words in `scratch`.
fn apply_merge(words: &mut Words, list: &[u32], pair: Pair, new_id: u32, scratch: &mut Scratch) {
    let Scratch { deltas, new_pairs } = scratch;
    deltas.clear();
    new_pairs.clear();
    let shared = SharedWords::new(words);
    let threads = rayon::current_num_threads();
    if list.len() < PARALLEL_MIN_WORDS || threads == 1 {
        for &wi in list {
            // SAFETY: single-threaded here.
            unsafe {
                shared.merge(wi, pair, new_id, |p, d| {
                    *deltas.entry(p).or_insert(0) += d;
                    if d > 0 {
                        new_pairs.push((p, wi));
                    }
                });
            }
        }
        return;
    }
    let per_task = list.len().div_ceil(threads * 4).max(512);
    let parts: Vec<Scratch> = list
        .par_chunks(per_task)
        .map(|chunk| {
            let mut local = FxHashMap::<Pair, i64>::default();
            let mut fresh = Vec::new();
            for &wi in chunk {
                // SAFETY: `list` has no duplicates, so no other task touches word `wi`.
                unsafe {
                    shared.merge(wi, pair, new_id, |p, d| {
                        *local.entry(p).or_insert(0) += d;
                        if d > 0 {
                            fresh.push((p, wi));
                        }
                    });
                }
            }
            Scratch { deltas: local, new_pairs: fresh }
        })
        .collect();
    for part in parts {
        for (p, d) in part.deltas {
            *deltas.entry(p).or_insert(0) += d;
        }
        new_pairs.extend(part.new_pairs);
    }
}

fn collect_words(pieces: impl IntoIterator<Item = (String, u64)>) -> Words {
    let pieces: Vec<(String, u64)> =
        pieces.into_iter().filter(|(piece, count)| piece.len() >= 2 && *count > 0).collect();
    let total: usize = pieces.iter().map(|(piece, _)| piece.len()).sum();
    let mut words = Words { ids: Vec::with_capacity(total), meta: Vec::with_capacity(pieces.len()) };
    for (piece, count) in pieces {
        words.meta.push(WordMeta { start: words.ids.len(), count, len: piece.len() as u32 });
        words.ids.extend(piece.bytes().map(u32::from));
    }
    words
}

/// Pair counts and word lists of the pairs that occur at least `min_count` times.
fn count_pairs(words: &Words, min_count: u64) -> (PairCounts, WordLists) {
    let (mut counts, mut lists) = (0..words.meta.len())
        .into_par_iter()
        .fold(
            || (PairCounts::default(), WordLists::default()),
            |(mut counts, mut lists), wi| {
                for win in words.word(wi).windows(2) {
                    let p = (win[0], win[1]);
                    *counts.entry(p).or_insert(0) += words.meta[wi].count;
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
        );
    counts.retain(|_, n| *n >= min_count);
    lists.retain(|p, _| counts.contains_key(p));
    (counts, lists)
}

/// Replaces every non-overlapping occurrence of `pair` in `word` (left to right) by
/// `new_id`, in place, and returns the new length. Reports each changed adjacent
/// pair to `delta` once: `-1` for a pair that disappeared, `+1` for a pair that
/// appeared. `new_id` must not occur in `word`.
fn merge_word(word: &mut [u32], pair: Pair, new_id: u32, mut delta: impl FnMut(Pair, i64)) -> usize {
    let (a, b) = pair;
    let n = word.len();
    // Writes go to `w <= i`, so `word[i..]` still holds the old ids.
    let mut w = 0;
    let mut i = 0;
    let mut prev_old = None; // old id at i - 1, unless it was consumed by a merge
    while i < n {
        let x = word[i];
        if x == a && i + 1 < n && word[i + 1] == b {
            if let Some(left) = prev_old {
                delta((left, a), -1);
            }
            delta((a, b), -1);
            if i + 2 < n {
                delta((b, word[i + 2]), -1);
            }
            if w > 0 {
                let left = word[w - 1];
                // (new_id, new_id) is reported once, as the left window of the second.
                delta((left, new_id), 1);
            }
            word[w] = new_id;
            w += 1;
            i += 2;
            prev_old = None;
        } else {
            if w > 0 && word[w - 1] == new_id {
                delta((new_id, x), 1);
            }
            word[w] = x;
            w += 1;
            i += 1;
            prev_old = Some(x);
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deltas(word: &[u32], pair: Pair, new_id: u32) -> (Vec<u32>, Vec<(Pair, i64)>) {
        let mut w = word.to_vec();
        let mut d: FxHashMap<Pair, i64> = FxHashMap::default();
        let len = merge_word(&mut w, pair, new_id, |p, x| *d.entry(p).or_insert(0) += x);
        w.truncate(len);
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
    fn parallel_merges_give_the_same_result_as_one_thread() {
        // Many distinct words that all contain (a, b), so the first merges take the
        // parallel path (lists longer than PARALLEL_MIN_WORDS).
        let mut next = crate::test_rng::xorshift(12345);
        let mut pieces = Vec::new();
        for i in 0..20_000u64 {
            let mut w = String::from("ab");
            for _ in 0..6 {
                w.push(b"abcab"[(next() >> 33) as usize % 5] as char);
            }
            pieces.push((format!("{w}{i}"), 1 + i % 7));
        }
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| learn_merges(pieces.clone(), 700, 2, &ProgressBar::hidden()))
        };
        let one = run(1);
        assert_eq!(one.len(), 700);
        assert_eq!(one, run(4));
    }

    #[test]
    fn stops_below_min_frequency() {
        let pieces = vec![("ab".to_string(), 2), ("cd".to_string(), 1)];
        let tokens = learn_merges(pieces, 1000, 2, &ProgressBar::hidden());
        assert_eq!(&tokens[256..], &[b"ab".to_vec()]);
    }
}
