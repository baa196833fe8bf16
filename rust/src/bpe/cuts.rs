//! Places where BPE can cut a piece before merging it.
//!
//! Every part BPE makes is a token, so where no token of the vocabulary
//! spans a place in the piece (holds bytes on both sides of it), no merge
//! crosses it, and the piece's tokens are those of the text before it
//! followed by those of the text after it, exactly. Long pieces of
//! multi-byte characters (a run of Chinese, say) are rarely seen twice,
//! but cut there into words or single characters they are: the parts are
//! single tokens, or recur and come from the piece cache instead of being
//! merged again.
//!
//! Only cuts before a character of three or four bytes are tried (a lead
//! byte of [`CUT_BEFORE`] or more: before two-byte letters, as in Latin and
//! Cyrillic words, tokens nearly always span the cut, and trying costs more
//! than it saves). A token that spans such a cut at byte `p` of a piece `b`
//! has the same bytes as the piece around it, so it holds one of
//! - `b[p-3..p+3]`, with three bytes or more on each side of the cut (`SPAN3`),
//! - `b[p-2..p+2]`, with two bytes or more on each side and exactly two on
//!   one (`SPAN2`),
//! - `b[p-1..p+2]` as its first three bytes (`HEAD`),
//! - `b[p-2..p+1]` as its last three bytes (`TAIL`),
//! - or it is `b[p-1..p+1]`, a two-byte token (the vocabulary's pair table).
//!
//! The table holds those strings for every cut of every token, so a cut
//! whose strings are all absent is spanned by no token. A bit filter in
//! front (32 KiB) answers most lookups.
//!
//! `SPAN3`'s six bytes hold both characters whole where a token of whole
//! three-byte characters spans the cut; four bytes (the last two of one,
//! the first two of the other) match any of the 64 characters that start
//! alike, and with o200k's many tokens of two or more Japanese characters
//! they found a third of the cuts there are (300 KB of Japanese: 29.5K
//! parts, 89 KB of them not tokens; with six bytes 38.6K parts, 32 KB not
//! tokens, far less to merge). Only tokens that begin or end inside a
//! character are left to the shorter strings, and they are few.

use rustc_hash::FxHashSet;

use super::vocab::top_bits;

/// The lowest lead byte a cut is tried before (that of a three-byte character).
pub const CUT_BEFORE: u8 = 0xE0;

// Tags above the key's six bytes.
const SPAN2: u64 = 1 << 56;
const SPAN3: u64 = 2 << 56;
const HEAD: u64 = 3 << 56;
const TAIL: u64 = 4 << 56;
/// log2 of the number of bits in the filter.
const FILTER_BITS: u32 = 18;

#[inline(always)]
fn key(tag: u64, bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    tag | u64::from_le_bytes(word)
}

#[inline(always)]
fn filter_slot(key: u64) -> usize {
    top_bits(key.wrapping_mul(0x9E37_79B9_7F4A_7C15), FILTER_BITS)
}

/// The strings of the tokens' cuts before the characters cuts are tried before.
#[derive(Default)]
pub struct CutTable {
    keys: FxHashSet<u64>,
    filter: Vec<u64>,
}

impl CutTable {
    pub fn new(tokens: &[Vec<u8>]) -> Self {
        let mut table = Self { keys: FxHashSet::default(), filter: vec![0; 1 << (FILTER_BITS - 6)] };
        for t in tokens {
            let n = t.len();
            for j in 1..n {
                if t[j] < CUT_BEFORE {
                    continue;
                }
                if j >= 3 && n - j >= 3 {
                    table.insert(key(SPAN3, &t[j - 3..j + 3]));
                } else if j >= 2 && n - j >= 2 {
                    table.insert(key(SPAN2, &t[j - 2..j + 2]));
                }
                if j == 1 && n >= 3 {
                    table.insert(key(HEAD, &t[..3]));
                }
                if j >= 2 && n - j == 1 {
                    table.insert(key(TAIL, &t[n - 3..]));
                }
            }
        }
        table
    }

    fn insert(&mut self, key: u64) {
        let slot = filter_slot(key);
        self.filter[slot >> 6] |= 1 << (slot & 63);
        self.keys.insert(key);
    }

    #[inline(always)]
    fn has(&self, key: u64) -> bool {
        let slot = filter_slot(key);
        self.filter[slot >> 6] & (1 << (slot & 63)) != 0 && self.keys.contains(&key)
    }

    /// Whether a token of three bytes or more may span the place before byte
    /// `p` of `piece` (0 < p < len, `piece[p] >= CUT_BEFORE`); two-byte tokens
    /// are the caller's to check.
    #[inline(always)]
    pub fn spanned(&self, piece: &[u8], p: usize) -> bool {
        debug_assert!(p > 0 && p < piece.len() && piece[p] >= CUT_BEFORE);
        let ahead = piece.len() - p;
        // Whole-character tokens, the usual spanners, first.
        (p >= 3 && ahead >= 3 && self.has(key(SPAN3, &piece[p - 3..p + 3])))
            || (ahead >= 2 && self.has(key(HEAD, &piece[p - 1..p + 2])))
            || (p >= 2 && ahead >= 2 && self.has(key(SPAN2, &piece[p - 2..p + 2])))
            || (p >= 2 && self.has(key(TAIL, &piece[p - 2..p + 1])))
    }
}

#[cfg(test)]
mod tests {
    use super::CUT_BEFORE;
    use crate::bpe::{merge_piece, Rank, TokenMap};

    /// BPE of a piece (not a token itself) from single bytes.
    fn bpe(piece: &[u8], map: &TokenMap) -> Vec<Rank> {
        let mut out = Vec::new();
        if piece.len() == 1 {
            out.push(map.byte(piece[0]));
        } else {
            merge_piece(piece, map, &mut out);
        }
        out
    }

    /// On random vocabularies of whole and partial multi-byte characters,
    /// a cut `can_cut` allows never changes BPE's result, and cuts are allowed
    /// (the test would pass vacuously otherwise).
    #[test]
    fn allowed_cuts_keep_bpe_exact() {
        let chars = ["a", " ", "é", "ж", "日", "本", "語", "嗥", "😀"];
        let mut rng = crate::test_rng::xorshift(0x1234_5678_9abc_def1);
        let mut next = move || rng() as usize;
        let (mut allowed, mut refused) = (0, 0);
        for _ in 0..200 {
            let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
            for _ in 0..(10 + next() % 60) {
                let word: String = (0..1 + next() % 3).map(|_| chars[next() % chars.len()]).collect();
                let b = word.as_bytes();
                // Whole characters, or a slice that may cut characters.
                let t = if next() % 3 == 0 {
                    let from = next() % b.len();
                    b[from..from + 1 + next() % (b.len() - from)].to_vec()
                } else {
                    b.to_vec()
                };
                if !tokens.contains(&t) {
                    tokens.push(t);
                }
            }
            let map = TokenMap::new(&tokens).unwrap();
            for _ in 0..20 {
                let text: String = (0..2 + next() % 8).map(|_| chars[next() % chars.len()]).collect();
                let piece = text.as_bytes();
                let whole = bpe(piece, &map);
                for p in (1..piece.len()).filter(|&p| piece[p] >= CUT_BEFORE) {
                    if map.can_cut(piece, p) {
                        allowed += 1;
                        let mut parts = bpe(&piece[..p], &map);
                        parts.extend(bpe(&piece[p..], &map));
                        assert_eq!(parts, whole, "{text:?} cut at byte {p}, tokens {tokens:?}");
                    } else {
                        refused += 1;
                    }
                }
            }
        }
        assert!(allowed > 1000 && refused > 1000, "{allowed} allowed, {refused} refused");
    }

    /// A token of two whole characters spans only those two: 嗥 and 日 end
    /// in the same two bytes, and 嗥語 being a token does not stop a cut in
    /// 日語 (four bytes about the cut would match both and refuse it).
    #[test]
    fn whole_character_tokens_span_only_their_own_characters() {
        assert_eq!("嗥".as_bytes()[1..], "日".as_bytes()[1..]);
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for t in ["日", "語", "嗥", "嗥語"] {
            tokens.push(t.as_bytes().to_vec());
        }
        let map = TokenMap::new(&tokens).unwrap();
        assert!(map.can_cut("日語".as_bytes(), 3));
        assert!(!map.can_cut("嗥語".as_bytes(), 3));
        assert!(!map.can_cut("本嗥語".as_bytes(), 6));
        assert!(map.can_cut("本嗥語".as_bytes(), 3));
    }
}
