//! A `tokenizer.json`'s byte-level BPE vocabulary and merges, read fast.
//!
//! fastllm's Python reader (`fastllm.tokenizer.formats.hf_json`) checks every
//! entry and merge and names what is wrong; on o200k's 200K tokens and merges
//! that took half a second, more than all of HF tokenizers' `from_file`. This
//! takes the common case only: every token byte-level text with an id, the ids
//! 0..n-1 once each, and merges that build tokens in rank order, each ranked
//! above its parts, exactly where rank-based BPE joins them. It gives what the
//! Python reader gives for such files, and None for anything else, which the
//! Python reader then reads and explains.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::bpe::merge_list::merge_splits;

/// The byte-level characters of the printable Latin-1 range, which stand for
/// their own code.
fn stands_for_itself(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The bytes each character from U+0100 stands for (68 of them), by `code - 256`.
fn shifted_bytes() -> [u8; 68] {
    let mut table = [0u8; 68];
    let mut k = 0;
    for b in 0..=255u8 {
        if !stands_for_itself(b) {
            table[k] = b;
            k += 1;
        }
    }
    table
}

/// Turns byte-level text into the bytes it stands for.
pub struct ByteLevel {
    shifted: [u8; 68],
}

impl Default for ByteLevel {
    fn default() -> Self {
        Self { shifted: shifted_bytes() }
    }
}

impl ByteLevel {
    /// Appends the bytes `text` stands for to `out`; false (with `out` partly
    /// written) when a character stands for no byte.
    pub fn append(&self, text: &str, out: &mut Vec<u8>) -> bool {
        for c in text.chars() {
            let code = c as u32;
            let byte = if code < 256 && stands_for_itself(code as u8) {
                code as u8
            } else if let Some(&b) = code.checked_sub(256).and_then(|k| self.shifted.get(k as usize)) {
                b
            } else {
                return false;
            };
            out.push(byte);
        }
        true
    }

    /// The bytes `text` stands for, if every character stands for one.
    pub fn bytes(&self, text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len());
        self.append(text, &mut out).then_some(out)
    }
}

/// Merge pairs as bytes, one after another in one buffer.
#[derive(Default)]
pub struct Merges {
    bytes: Vec<u8>,
    /// Per merge: where its left part ends and where it ends (it starts where
    /// the previous one ended).
    ends: Vec<(usize, usize)>,
}

impl Merges {
    /// Adds the merge of the byte-level texts `left` and `right`; false (and
    /// nothing added) when either is empty or not byte-level.
    pub fn push(&mut self, byte_level: &ByteLevel, left: &str, right: &str) -> bool {
        let start = self.bytes.len();
        let left_read = byte_level.append(left, &mut self.bytes);
        let left_end = self.bytes.len();
        let both_read = left_read && byte_level.append(right, &mut self.bytes);
        // An empty part is in no vocabulary.
        if !both_read || left_end == start || self.bytes.len() == left_end {
            self.bytes.truncate(start);
            return false;
        }
        self.ends.push((left_end, self.bytes.len()));
        true
    }

    /// Each merge's (left, right, both together).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8], &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|&(_, end)| end));
        starts
            .zip(&self.ends)
            .map(|(start, &(mid, end))| (&self.bytes[start..mid], &self.bytes[mid..end], &self.bytes[start..end]))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// An added token as the reader needs it.
pub struct Added<'a> {
    pub content: &'a str,
    pub id: i64,
    pub special: bool,
}

/// What the Python reader would make of a file in the common case.
#[derive(Debug, PartialEq, Eq)]
pub struct Vocab {
    /// The mergeable tokens' bytes, by rank.
    pub tokens: Vec<Vec<u8>>,
    /// The ids that are no mergeable token: the special added tokens, and the
    /// others that BPE cannot make (not byte-level, or several bytes that no
    /// merge builds), sorted.
    pub not_mergeable: Vec<i64>,
    /// None where rank-based BPE on `tokens` gives tokenizers' ids; else the
    /// merges to merge by, as tokenizers does: each one's (left, right) ranks,
    /// in the file's order.
    pub listed: Option<Vec<(usize, usize)>>,
}

/// The vocabulary of `entries` (each token's bytes, None where its text is not
/// byte-level, and its id) and `merges`, as the Python reader makes it; None
/// where that reader would refuse the file or would have more to decide.
/// `every_token_merged`: rank-based BPE does not give tokenizers' ids when a
/// token of several bytes is built by no merge (tokenizer.json's
/// `ignore_merges` false): it emits a piece that is a token whole.
pub fn read(
    entries: &[(Option<Vec<u8>>, i64)],
    merges: &Merges,
    added: &[Added<'_>],
    byte_level: &ByteLevel,
    every_token_merged: bool,
) -> Option<Vocab> {
    let not_mergeable = not_mergeable(merges, added, byte_level);
    let n = entries.iter().filter(|(_, id)| !not_mergeable.contains(id)).count();
    let mut tokens: Vec<Option<&[u8]>> = vec![None; n];
    let mut rank_of: FxHashMap<&[u8], usize> = FxHashMap::default();
    rank_of.reserve(n);
    for (bytes, id) in entries {
        if *id < 0 {
            return None;
        }
        if not_mergeable.contains(id) {
            continue;
        }
        let bytes = bytes.as_deref()?;
        let slot = tokens.get_mut(usize::try_from(*id).ok()?)?; // ids beyond n leave a gap
        if slot.replace(bytes).is_some() {
            return None; // two tokens with one id
        }
        rank_of.insert(bytes, *id as usize);
    }
    if n == 0 {
        return None;
    }
    // The merges can be ranks when each builds a token ranked above its parts
    // and above what the merge before it built (so none is built twice).
    let mut follows_ranks = true;
    let mut built = vec![false; n];
    let mut built_twice = false;
    let mut pairs = Vec::with_capacity(merges.len());
    let mut previous = None;
    for (left, right, both) in merges.iter() {
        let (&l, &r, &rank) = (rank_of.get(left)?, rank_of.get(right)?, rank_of.get(both)?);
        if previous.is_some_and(|p| rank <= p) || rank <= l || rank <= r {
            follows_ranks = false;
        }
        built_twice |= std::mem::replace(&mut built[rank], true);
        previous = Some(rank);
        pairs.push((l, r));
    }
    let tokens = tokens.into_iter().map(|t| t.map(<[u8]>::to_vec)).collect::<Option<Vec<_>>>()?;
    let rank_bpe_follows = if follows_ranks {
        // Every token of several bytes built by a merge, where that counts, and
        // the list what rank-based BPE joins (it joins any two parts that make
        // a token, tokenizers only the listed ones).
        (!every_token_merged || tokens.iter().filter(|t| t.len() > 1).count() == merges.len())
            && lists_rank_joins(&tokens, merges)
    } else if built_twice {
        false // no order of the tokens makes these merges ranks
    } else {
        return None; // the Python reader tries the order the merges give
    };
    let mut not_mergeable: Vec<i64> = not_mergeable.into_iter().collect();
    not_mergeable.sort_unstable();
    Some(Vocab { tokens, not_mergeable, listed: (!rank_bpe_follows).then_some(pairs) })
}

/// Whether `merges` are exactly the joins rank-based BPE derives from `tokens`.
fn lists_rank_joins(tokens: &[Vec<u8>], merges: &Merges) -> bool {
    let mut listed = merges.iter();
    for (token, cut) in tokens.iter().zip(merge_splits(tokens)) {
        if let Some(cut) = cut {
            match listed.next() {
                Some((left, right, _)) if (left, right) == token.split_at(cut) => {}
                _ => return false,
            }
        }
    }
    listed.next().is_none()
}

/// The ids of the added tokens that are no mergeable token: the special ones,
/// and those BPE cannot make (not byte-level text, or several bytes that no
/// merge builds).
fn not_mergeable(merges: &Merges, added: &[Added<'_>], byte_level: &ByteLevel) -> FxHashSet<i64> {
    let mut ids = FxHashSet::default();
    let mut built: Option<FxHashSet<&[u8]>> = None;
    for token in added {
        let mergeable = !token.special
            && byte_level.bytes(token.content).is_some_and(|bytes| {
                bytes.len() == 1
                    || built
                        .get_or_insert_with(|| merges.iter().map(|(_, _, both)| both).collect())
                        .contains(&bytes[..])
            });
        if !mergeable {
            ids.insert(token.id);
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GPT-2's alphabet as its definition gives it: printable Latin-1 bytes as
    /// themselves, the rest from U+0100 in byte order.
    #[test]
    fn byte_level_alphabet() {
        let bl = ByteLevel::default();
        let mut next = 256u32;
        for b in 0..=255u8 {
            let c = if stands_for_itself(b) {
                char::from(b)
            } else {
                next += 1;
                char::from_u32(next - 1).unwrap()
            };
            assert_eq!(bl.bytes(&c.to_string()), Some(vec![b]));
        }
        assert_eq!(next, 256 + 68);
        for c in [' ', '\n', '\u{ad}', '\u{144}', '\u{2000}', '😀'] {
            assert_eq!(bl.bytes(&c.to_string()), None, "{c:?}");
        }
        assert_eq!(bl.bytes("Ġhello"), Some(b" hello".to_vec()));
    }

    fn entries(texts: &[(&str, i64)]) -> Vec<(Option<Vec<u8>>, i64)> {
        let bl = ByteLevel::default();
        texts.iter().map(|&(t, id)| (bl.bytes(t), id)).collect()
    }

    fn merges(pairs: &[(&str, &str)]) -> Merges {
        let bl = ByteLevel::default();
        let mut m = Merges::default();
        for (l, r) in pairs {
            assert!(m.push(&bl, l, r));
        }
        m
    }

    #[test]
    fn a_refused_merge_adds_nothing() {
        let bl = ByteLevel::default();
        let mut m = merges(&[("a", "b")]);
        for (left, right) in [("a", "x y"), ("", "b"), ("a", ""), ("a b", "c")] {
            assert!(!m.push(&bl, left, right), "{left:?} {right:?}");
        }
        assert!(m.push(&bl, "Ġ", "c"));
        let got: Vec<_> = m.iter().map(|(l, r, both)| (l.to_vec(), r.to_vec(), both.to_vec())).collect();
        assert_eq!(
            got,
            vec![(b"a".to_vec(), b"b".to_vec(), b"ab".to_vec()), (b" ".to_vec(), b"c".to_vec(), b" c".to_vec())]
        );
    }

    #[test]
    fn reads_the_common_case() {
        let bl = ByteLevel::default();
        let vocab = entries(&[("a", 0), ("b", 1), ("Ġ", 2), ("ab", 3), ("Ġab", 4), ("<s>", 5)]);
        let m = merges(&[("a", "b"), ("Ġ", "ab")]);
        let added = [Added { content: "<s>", id: 5, special: true }];
        let got = read(&vocab, &m, &added, &bl, true).unwrap();
        assert_eq!(got.tokens, vec![b"a".to_vec(), b"b".to_vec(), b" ".to_vec(), b"ab".to_vec(), b" ab".to_vec()]);
        assert_eq!(got.not_mergeable, vec![5]);
        assert_eq!(got.listed, None);
    }

    #[test]
    fn anything_unusual_is_left_to_the_python_reader() {
        let bl = ByteLevel::default();
        let vocab = entries(&[("a", 0), ("b", 1), ("ab", 2)]);
        let ok = merges(&[("a", "b")]);
        assert!(read(&vocab, &ok, &[], &bl, true).is_some());
        // A gap in the ids, a repeated id, a negative one.
        assert!(read(&entries(&[("a", 0), ("b", 2)]), &Merges::default(), &[], &bl, true).is_none());
        assert!(read(&entries(&[("a", 0), ("b", 0)]), &Merges::default(), &[], &bl, true).is_none());
        assert!(read(&entries(&[("a", 0), ("b", -1)]), &Merges::default(), &[], &bl, true).is_none());
        // A token that is not byte-level, unless an added token's id.
        let odd = entries(&[("a", 0), ("b", 1), ("ab", 2), ("x y", 3)]);
        assert!(read(&odd, &ok, &[], &bl, true).is_none());
        let added = [Added { content: "x y", id: 3, special: false }];
        assert_eq!(read(&odd, &ok, &added, &bl, true).unwrap().not_mergeable, vec![3]);
        // Merges: out of rank order, ranked below a part, of a missing part or token.
        let vocab = entries(&[("a", 0), ("b", 1), ("ab", 3), ("ba", 2)]);
        assert!(read(&vocab, &merges(&[("a", "b"), ("b", "a")]), &[], &bl, true).is_none());
        assert_eq!(read(&vocab, &merges(&[("b", "a"), ("a", "b")]), &[], &bl, true).unwrap().listed, None);
        let low = entries(&[("ab", 0), ("a", 1), ("b", 2)]);
        assert!(read(&low, &ok, &[], &bl, true).is_none());
        assert!(read(&vocab, &merges(&[("b", "a"), ("a", "c")]), &[], &bl, true).is_none());
        assert!(read(&entries(&[("a", 0), ("b", 1)]), &ok, &[], &bl, true).is_none());
    }

    /// The (left, right) merges of a vocabulary read to merge by its list.
    fn listed(vocab: &[(Option<Vec<u8>>, i64)], m: &Merges, every_token_merged: bool) -> Vec<(usize, usize)> {
        let got = read(vocab, m, &[], &ByteLevel::default(), every_token_merged).expect("read");
        got.listed.expect("merges by its list")
    }

    #[test]
    fn merges_rank_based_bpe_does_not_follow_are_kept_as_a_list() {
        let bl = ByteLevel::default();
        let ok = merges(&[("a", "b")]);
        // A token of two bytes that no merge builds: rank-based BPE would join b + a
        // inside a word, tokenizers never does.
        let unbuilt = entries(&[("a", 0), ("b", 1), ("ab", 2), ("ba", 3)]);
        assert_eq!(listed(&unbuilt, &ok, true), vec![(0, 1)]);
        assert_eq!(listed(&unbuilt, &ok, false), vec![(0, 1)]);
        // One that rank-based BPE cannot build either: a list only where merges build
        // every token (a piece "xyz" is emitted whole by rank, split by tokenizers).
        let unreachable = entries(&[("a", 0), ("b", 1), ("ab", 2), ("x", 3), ("y", 4), ("z", 5), ("xyz", 6)]);
        assert_eq!(listed(&unreachable, &ok, true), vec![(0, 1)]);
        assert_eq!(read(&unreachable, &ok, &[], &bl, false).unwrap().listed, None);
        // Merges that are not where rank-based BPE joins: "abc" listed as a + bc.
        let elsewhere = merges(&[("a", "b"), ("b", "c"), ("a", "bc")]);
        let abc = entries(&[("a", 0), ("b", 1), ("c", 2), ("ab", 3), ("bc", 4), ("abc", 5)]);
        assert_eq!(listed(&abc, &elsewhere, false), vec![(0, 1), (1, 2), (0, 4)]);
        // Several merges for one token (files converted from tiktoken ranks), in the
        // file's order; the same merge twice too.
        let twice = merges(&[("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")]);
        assert_eq!(listed(&abc, &twice, false), vec![(0, 1), (1, 2), (3, 2), (0, 4)]);
        let vocab = entries(&[("a", 0), ("b", 1), ("ab", 3), ("ba", 2)]);
        assert_eq!(listed(&vocab, &merges(&[("b", "a"), ("a", "b"), ("a", "b")]), false), vec![(1, 0), (0, 1), (0, 1)]);
        // Out of order but each token built once: another order may make them ranks
        // (RoBERTa's ids), which the Python reader works out.
        assert!(read(&vocab, &merges(&[("a", "b"), ("b", "a")]), &[], &bl, false).is_none());
        // The list kept is checked like any other: a missing part is the Python reader's.
        assert!(read(&abc, &merges(&[("a", "b"), ("ab", "c"), ("a", "bd")]), &[], &bl, false).is_none());
    }

    #[test]
    fn added_tokens_are_mergeable_when_bpe_can_make_them() {
        let bl = ByteLevel::default();
        let vocab = entries(&[("a", 0), ("b", 1), ("ab", 2), ("ba", 3)]);
        let m = merges(&[("a", "b")]);
        let added = [
            Added { content: "ab", id: 2, special: false }, // built by a merge: mergeable
            Added { content: "b", id: 1, special: false },  // one byte: mergeable
            Added { content: "ba", id: 3, special: false }, // no merge builds it
        ];
        let got = read(&vocab, &m, &added, &bl, true).unwrap();
        assert_eq!(got.not_mergeable, vec![3]);
        assert_eq!(got.tokens.len(), 3);
        let special = [Added { content: "ab", id: 2, special: true }];
        // A special token is never mergeable, so the merge that builds it is of no token.
        assert!(read(&vocab, &m, &special, &bl, false).is_none());
    }
}
