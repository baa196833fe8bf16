//! The merge list of a rank-ordered vocabulary, which merges-based formats
//! (HF's `tokenizer.json`, GPT-2's `merges.txt`) store and `.tiktoken` files
//! leave out: for each token, where BPE on its bytes, using only the tokens
//! ranked below it, leaves two parts. Writing o200k's `tokenizer.json` spent
//! 4.3 of its 5.5 s doing this in Python.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::Rank;

/// For each token (in rank order), the byte offset at which BPE on its bytes
/// with the tokens ranked below it stops at two parts; None where it stops at
/// more (or the token is a single byte). BPE merges the adjacent pair of
/// lowest rank, the leftmost on a tie. A token listed twice ranks as its
/// last listing, as a dict built in rank order would say.
pub fn merge_splits(tokens: &[Vec<u8>]) -> Vec<Option<usize>> {
    let rank_of: FxHashMap<&[u8], Rank> = tokens.iter().enumerate().map(|(r, t)| (t.as_slice(), r as Rank)).collect();
    tokens
        .par_iter()
        .enumerate()
        .with_min_len(4096)
        .map(|(rank, token)| split_below(token, rank as Rank, &rank_of))
        .collect()
}

/// See [`merge_splits`]: BPE on `token` with the tokens ranked below `limit`.
fn split_below(token: &[u8], limit: Rank, rank_of: &FxHashMap<&[u8], Rank>) -> Option<usize> {
    let n = token.len();
    if n < 2 {
        return None;
    }
    // Part k is token[starts[k]..starts[k + 1]]; pair[k] the rank of parts k
    // and k + 1 joined, `Rank::MAX` when that is no token ranked below `limit`.
    let rank = |a: usize, b: usize| rank_of.get(&token[a..b]).copied().filter(|&r| r < limit).unwrap_or(Rank::MAX);
    let mut starts: Vec<usize> = (0..=n).collect();
    let mut pair: Vec<Rank> = (0..n - 1).map(|k| rank(k, k + 2)).collect();
    while starts.len() > 3 {
        let (k, best) = pair.iter().copied().enumerate().min_by_key(|&(k, r)| (r, k))?;
        if best == Rank::MAX {
            return None;
        }
        starts.remove(k + 1);
        pair.remove(k);
        let parts = starts.len() - 1;
        if k + 1 < parts {
            pair[k] = rank(starts[k], starts[k + 2]);
        }
        if k > 0 {
            pair[k - 1] = rank(starts[k - 1], starts[k + 1]);
        }
    }
    Some(starts[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::xorshift;

    /// Python's reference (`fastllm.tokenizer.vocab.bpe_parts`) as written:
    /// every pair looked up again after each merge.
    fn reference(token: &[u8], limit: Rank, rank_of: &FxHashMap<&[u8], Rank>) -> Option<usize> {
        let mut parts: Vec<Vec<u8>> = token.iter().map(|&b| vec![b]).collect();
        while parts.len() > 1 {
            let mut best: Option<(usize, Rank)> = None;
            for i in 0..parts.len() - 1 {
                let joined = [parts[i].as_slice(), parts[i + 1].as_slice()].concat();
                if let Some(&r) = rank_of.get(joined.as_slice()) {
                    if r < best.map_or(limit, |b| b.1) {
                        best = Some((i, r));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let right = parts.remove(i + 1);
            parts[i].extend(right);
        }
        (parts.len() == 2).then(|| parts[0].len())
    }

    #[test]
    fn splits_equal_the_reference_on_random_vocabularies() {
        let mut next = xorshift(11);
        for _ in 0..40 {
            // A small alphabet, so that tokens share parts; random order, so
            // that many tokens are not built from lower-ranked ones.
            let mut tokens: Vec<Vec<u8>> = (b'a'..=b'd').map(|b| vec![b]).collect();
            while tokens.len() < 120 {
                let len = 2 + (next() % 6) as usize;
                let token: Vec<u8> = (0..len).map(|_| b'a' + (next() % 4) as u8).collect();
                if !tokens.contains(&token) {
                    tokens.push(token);
                }
            }
            for k in (1..tokens.len()).rev() {
                if next().is_multiple_of(3) {
                    let j = (next() % (k as u64 + 1)) as usize;
                    tokens.swap(k, j);
                }
            }
            let rank_of: FxHashMap<&[u8], Rank> =
                tokens.iter().enumerate().map(|(r, t)| (t.as_slice(), r as Rank)).collect();
            let splits = merge_splits(&tokens);
            let mut found = 0;
            for (rank, token) in tokens.iter().enumerate() {
                assert_eq!(
                    splits[rank],
                    reference(token, rank as Rank, &rank_of),
                    "{:?}",
                    String::from_utf8_lossy(token)
                );
                found += splits[rank].is_some() as usize;
            }
            assert!(found > 0);
        }
    }
}
