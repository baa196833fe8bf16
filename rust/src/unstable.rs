//! The token sequences a text's unstable end may become once more text
//! follows: the completions of tiktoken's `encode_with_unstable`. Which end
//! is unstable is decided in Python (`fastllm.tokenizer.unstable`); this is
//! the part that visits every token starting with some suffix of it
//! (thousands of tokens start with "."), which took milliseconds in Python.
//!
//! For unstable bytes `u`: every single token that starts with `u`; for each
//! cut of `u` into `prefix + suffix`, the encoding of `prefix + t` for every
//! token `t` that starts with `suffix`, cut after the token that covers `u`;
//! and, when `u` ends in a whitespace character (not all of it), `u` without
//! that character and the character, each merged alone.

use rustc_hash::FxHashSet;

use crate::bpe::Rank;
use crate::core_bpe::{CoreBpe, CoreError};

/// The completions of the unstable bytes `unstable`, sorted.
pub fn completions(core: &CoreBpe, unstable: &[u8]) -> Result<Vec<Vec<Rank>>, CoreError> {
    let mut found: FxHashSet<Vec<Rank>> = FxHashSet::default();
    if unstable.is_empty() {
        return Ok(Vec::new());
    }
    for rank in tokens_starting_with(core, unstable) {
        found.insert(vec![rank]);
    }
    for cut in 1..unstable.len() {
        let (prefix, suffix) = unstable.split_at(cut);
        let mut possibility = prefix.to_vec();
        for rank in tokens_starting_with(core, suffix) {
            possibility.truncate(prefix.len());
            possibility.extend_from_slice(token(core, rank));
            // Text is split as encoding would split it (a split may fall inside);
            // bytes that are not UTF-8 are merged whole, as tiktoken does.
            let encoded = match std::str::from_utf8(&possibility) {
                Ok(text) => core.encode_ordinary(text)?,
                Err(_) => core.encode_piece_vec(&possibility),
            };
            let mut covered = 0;
            let mut sequence = Vec::new();
            for id in encoded {
                sequence.push(id);
                covered += core.token_bytes(u64::from(id)).map_or(0, <[u8]>::len);
                if covered >= unstable.len() {
                    break;
                }
            }
            found.insert(sequence);
        }
    }
    if let Some(size) = trailing_whitespace(unstable) {
        let (rest, last) = unstable.split_at(unstable.len() - size);
        let mut split = core.encode_piece_vec(rest);
        split.extend(core.encode_piece_vec(last));
        found.insert(split);
    }
    let mut sorted: Vec<Vec<Rank>> = found.into_iter().collect();
    sorted.sort_unstable();
    Ok(sorted)
}

/// The mergeable tokens whose bytes start with `prefix`, in byte order.
fn tokens_starting_with<'c>(core: &'c CoreBpe, prefix: &'c [u8]) -> impl Iterator<Item = Rank> + 'c {
    let by_bytes = core.ranks_by_bytes();
    let first = by_bytes.partition_point(|&r| token(core, r) < prefix);
    by_bytes[first..].iter().copied().take_while(move |&r| token(core, r).starts_with(prefix))
}

fn token(core: &CoreBpe, rank: Rank) -> &[u8] {
    core.mergeable_tokens().get(u64::from(rank)).expect("a rank of the table")
}

/// The byte length of the whitespace character `bytes` ends with, when it
/// ends with one and holds more than it (Rust's `char::is_whitespace`, which
/// tiktoken uses).
fn trailing_whitespace(bytes: &[u8]) -> Option<usize> {
    let start = (bytes.len().saturating_sub(4)..bytes.len()).rev().find(|&i| bytes[i] & 0xC0 != 0x80)?;
    let last = std::str::from_utf8(&bytes[start..]).ok()?;
    let mut chars = last.chars();
    let c = chars.next()?;
    (chars.next().is_none() && c.is_whitespace() && start > 0).then_some(bytes.len() - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core() -> CoreBpe {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for t in ["he", "hel", "hell", "hello", "lo", "ll", " w", " wo", "o!", "\n\n"] {
            tokens.push(t.as_bytes().to_vec());
        }
        CoreBpe::new(tokens, &[], "gpt2").unwrap()
    }

    #[test]
    fn single_tokens_and_cuts() {
        let c = core();
        let he = c.mergeable_rank(b"he").unwrap();
        let got = completions(&c, b"he").unwrap();
        // Every token starting with "he" alone...
        for t in ["he", "hel", "hell", "hello"] {
            assert!(got.contains(&vec![c.mergeable_rank(t.as_bytes()).unwrap()]), "{t}");
        }
        // ...and "h" followed by each token starting with "e" ("e" only here), as encoded.
        assert!(got.contains(&vec![he]));
        assert!(got.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert_eq!(completions(&c, b"").unwrap(), Vec::<Vec<Rank>>::new());
    }

    #[test]
    fn sequences_stop_at_the_token_covering_the_unstable_bytes() {
        let c = core();
        // "l" + "lo" -> "llo" = "ll" "o": "ll" covers "ll" already.
        let got = completions(&c, b"ll").unwrap();
        assert!(got.contains(&vec![c.mergeable_rank(b"ll").unwrap()]));
        assert!(got.iter().all(|s| s.len() <= 2));
    }

    #[test]
    fn trailing_whitespace_is_found_by_character() {
        assert_eq!(trailing_whitespace(b"a "), Some(1));
        assert_eq!(trailing_whitespace("a\u{3000}".as_bytes()), Some(3));
        assert_eq!(trailing_whitespace(b" "), None); // nothing before it
        assert_eq!(trailing_whitespace(b"a"), None);
        assert_eq!(trailing_whitespace(b"a\xe3\x80"), None); // cut inside a character
        assert_eq!(trailing_whitespace(b"\xff\n"), Some(1));
    }

    #[test]
    fn bytes_that_are_not_text_are_merged_whole() {
        let c = core();
        let got = completions(&c, b"\xffhe").unwrap();
        assert!(got.iter().all(|s| !s.is_empty()));
        assert!(!got.is_empty());
    }
}
