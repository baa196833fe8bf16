//! Remembers the tokens of recently merged pieces within one encode call.
//!
//! Words recur: in ordinary text most pieces that are not a single token
//! (and so need the merge loop, with its vocabulary lookups) have been seen
//! a few pieces earlier. The cache is direct-mapped and small enough to stay
//! in L2; a slot names an earlier occurrence of the piece in the text and
//! where its tokens were written in the output, so a hit copies those tokens
//! instead of merging again. BPE is deterministic, so the result is
//! identical.

use rustc_hash::FxHasher;
use std::hash::Hasher;

use super::vocab::Rank;

#[derive(Clone, Copy, Default)]
struct Slot {
    /// Byte offset of the piece in the text; `len == 0` marks an empty slot.
    start: u32,
    len: u32,
    /// Where its tokens start in the output, and how many there are.
    out_start: u32,
    out_len: u32,
}

/// The cache of one text. Offsets are `u32`: the encoder is not used on
/// texts of 4 GiB or more (the Python bindings refuse them).
pub struct PieceCache<'t> {
    text: &'t [u8],
    slots: Vec<Slot>,
    mask: usize,
}

/// Texts shorter than this are encoded without a cache (setting one up
/// would cost more than it saves).
pub const MIN_TEXT: usize = 4096;
const MAX_SLOTS: usize = 4096;

impl<'t> PieceCache<'t> {
    /// A cache for `text`, or `None` when the text is too short to profit
    /// or too long for `u32` offsets.
    pub fn for_text(text: &'t str) -> Option<Self> {
        if text.len() < MIN_TEXT || text.len() >= u32::MAX as usize {
            return None;
        }
        let slots = (text.len() / 32).next_power_of_two().min(MAX_SLOTS);
        Some(Self { text: text.as_bytes(), slots: vec![Slot::default(); slots], mask: slots - 1 })
    }

    #[inline]
    fn index(&self, piece: &[u8]) -> usize {
        let mut h = FxHasher::default();
        h.write(piece);
        (h.finish() >> 20) as usize & self.mask
    }

    /// Appends the tokens of `piece` (a slice of the cache's text) to `out`:
    /// copied from an earlier occurrence when the cache holds one, otherwise
    /// computed by `merge` and remembered.
    #[inline]
    pub fn encode(&mut self, piece: &[u8], out: &mut Vec<Rank>, merge: impl FnOnce(&[u8], &mut Vec<Rank>)) {
        let at = self.index(piece);
        let slot = self.slots[at];
        if slot.len as usize == piece.len() {
            let start = slot.start as usize;
            if &self.text[start..start + piece.len()] == piece {
                let from = slot.out_start as usize;
                out.extend_from_within(from..from + slot.out_len as usize);
                return;
            }
        }
        let before = out.len();
        merge(piece, out);
        // The piece's offset in the text; a piece from elsewhere is not remembered.
        let start = (piece.as_ptr() as usize).wrapping_sub(self.text.as_ptr() as usize);
        let inside = start <= self.text.len() && piece.len() <= self.text.len() - start;
        let out_len = out.len() - before;
        if inside && !piece.is_empty() && out.len() < u32::MAX as usize {
            self.slots[at] = Slot {
                start: start as u32,
                len: piece.len() as u32,
                out_start: before as u32,
                out_len: out_len as u32,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in merge that records every call.
    fn fake_merge(calls: &mut Vec<Vec<u8>>) -> impl FnMut(&[u8], &mut Vec<Rank>) + '_ {
        move |piece, out| {
            calls.push(piece.to_vec());
            out.extend(piece.iter().map(|&b| b as Rank));
        }
    }

    /// Encodes the space-ended words of `text` through `cache`; checks the output equals
    /// merging every piece, and returns how many pieces were merged.
    fn encode_words(cache: &mut PieceCache<'_>, text: &str) -> usize {
        let mut calls = Vec::new();
        let mut out = Vec::new();
        let mut merge = fake_merge(&mut calls);
        for piece in text.split_inclusive(' ') {
            cache.encode(piece.as_bytes(), &mut out, |p, o| merge(p, o));
        }
        drop(merge);
        assert_eq!(out, text.bytes().map(|b| b as Rank).collect::<Vec<_>>());
        calls.len()
    }

    #[test]
    fn repeats_are_copied_and_equal_to_merging() {
        let text = "alpha beta alpha gamma beta alpha ".repeat(200);
        let merged = encode_words(&mut PieceCache::for_text(&text).expect("long enough"), &text);
        assert!(merged < 20, "only the first occurrences (and collisions) merge: {merged}");
    }

    #[test]
    fn colliding_pieces_are_told_apart() {
        // 676 distinct four-byte pieces, many differing only in their first byte, in a cache
        // of 256 slots: slots are shared, and a hit must match the whole piece.
        let words: Vec<String> =
            (b'a'..=b'z').flat_map(|a| (b'a'..=b'z').map(move |b| format!("{}{}qq ", b as char, a as char))).collect();
        let text = words.concat().repeat(2);
        let mut cache = PieceCache::for_text(&text).unwrap();
        assert_eq!(cache.slots.len(), 256);
        assert!(encode_words(&mut cache, &text) > words.len(), "collisions evicted some pieces");
    }

    #[test]
    fn short_texts_get_no_cache_and_foreign_pieces_are_not_remembered() {
        assert!(PieceCache::for_text("short").is_none());
        let text = "x".repeat(MIN_TEXT);
        let mut cache = PieceCache::for_text(&text).unwrap();
        let foreign = b"elsewhere".to_vec();
        let mut calls = Vec::new();
        let mut out = Vec::new();
        let mut merge = fake_merge(&mut calls);
        cache.encode(&foreign, &mut out, |p, o| merge(p, o));
        cache.encode(&foreign, &mut out, |p, o| merge(p, o));
        drop(merge);
        assert_eq!(calls.len(), 2);
        assert_eq!(out.len(), 18);
    }
}
