//! Remembers the tokens of the pieces already encoded within one encode call.
//!
//! Words recur: in ordinary text most pieces that are not a single token
//! (and so need the merge loop, with its vocabulary lookups) occurred earlier
//! in the same text. A slot names an earlier occurrence of the piece in the
//! text and where its tokens were written in the output, so a hit copies
//! those tokens instead of merging again. BPE is deterministic, so the result
//! is identical. The table is open-addressed with short probes and sized to
//! the text, at most [`MAX_SLOTS`] slots of 16 bytes: its memory is bounded,
//! and when it is full, new pieces replace old ones.

use super::vocab::Rank;

#[derive(Clone, Copy, Default)]
struct Slot {
    /// Bits of the piece's hash, to skip most mismatches without reading the text.
    tag: u32,
    /// Byte offset of the piece in the text.
    start: u32,
    /// Where its tokens start in the output.
    out_start: u32,
    /// Piece length (0: free slot) and token count.
    len: u16,
    out_len: u16,
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
/// At most this many slots (1 MiB).
pub const MAX_SLOTS: usize = 1 << 16;
/// Slots tried from a piece's home slot before giving up.
const PROBES: usize = 4;

/// A 64-bit hash of any byte string (for pieces too long to pack into a key).
#[inline]
pub fn bytes_hash(bytes: &[u8]) -> u64 {
    let mut h = (bytes.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap());
        h = (h ^ w).wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(29);
    }
    let mut last = 0u64;
    for (k, &b) in chunks.remainder().iter().enumerate() {
        last |= (b as u64) << (8 * k);
    }
    (h ^ last).wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ (h >> 31)
}

impl<'t> PieceCache<'t> {
    /// A cache for `text`, or `None` when the text is too short to profit
    /// or too long for `u32` offsets.
    pub fn for_text(text: &'t str) -> Option<Self> {
        if text.len() < MIN_TEXT || text.len() >= u32::MAX as usize {
            return None;
        }
        let slots = (text.len() / 16).next_power_of_two().min(MAX_SLOTS);
        Some(Self { text: text.as_bytes(), slots: vec![Slot::default(); slots], mask: slots - 1 })
    }

    /// Appends the tokens of `piece` (a slice of the cache's text; `hash`
    /// is any fixed function of its bytes) to `out`: copied from an earlier
    /// occurrence when the cache holds one, otherwise computed by `merge`
    /// and remembered.
    #[inline]
    pub fn encode(&mut self, piece: &[u8], hash: u64, out: &mut Vec<Rank>, merge: impl FnOnce(&[u8], &mut Vec<Rank>)) {
        let home = (hash >> 32) as usize & self.mask;
        let tag = hash as u32;
        let mut free = None;
        for k in 0..PROBES {
            let at = (home + k) & self.mask;
            let slot = self.slots[at];
            if slot.len == 0 {
                free = Some(at);
                break;
            }
            if slot.tag == tag && slot.len as usize == piece.len() {
                let start = slot.start as usize;
                if &self.text[start..start + piece.len()] == piece {
                    let from = slot.out_start as usize;
                    out.extend_from_within(from..from + slot.out_len as usize);
                    return;
                }
            }
        }
        let before = out.len();
        merge(piece, out);
        // The piece's offset in the text; a piece from elsewhere is not remembered.
        let start = (piece.as_ptr() as usize).wrapping_sub(self.text.as_ptr() as usize);
        let inside = start <= self.text.len() && piece.len() <= self.text.len() - start;
        let out_len = out.len() - before;
        let fits = piece.len() <= u16::MAX as usize && out_len <= u16::MAX as usize && out.len() < u32::MAX as usize;
        if inside && !piece.is_empty() && fits {
            self.slots[free.unwrap_or(home)] = Slot {
                tag,
                start: start as u32,
                out_start: before as u32,
                len: piece.len() as u16,
                out_len: out_len as u16,
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
            let bytes = piece.as_bytes();
            cache.encode(bytes, bytes_hash(bytes), &mut out, |p, o| merge(p, o));
        }
        drop(merge);
        assert_eq!(out, text.bytes().map(|b| b as Rank).collect::<Vec<_>>());
        calls.len()
    }

    #[test]
    fn repeats_are_copied_and_equal_to_merging() {
        let text = "alpha beta alpha gamma beta alpha ".repeat(200);
        let merged = encode_words(&mut PieceCache::for_text(&text).expect("long enough"), &text);
        assert_eq!(merged, 3, "only the first occurrences merge");
    }

    #[test]
    fn full_tables_replace_and_hash_collisions_are_told_apart() {
        // 676 distinct four-byte pieces in a cache of 256 slots: pieces replace
        // others, and every hit must match the whole piece.
        let words: Vec<String> =
            (b'a'..=b'z').flat_map(|a| (b'a'..=b'z').map(move |b| format!("{}{}qq ", b as char, a as char))).collect();
        let text = words.concat().repeat(2);
        let cache = PieceCache::for_text(&text[..MIN_TEXT]).unwrap();
        assert_eq!(cache.slots.len(), 256);
        let mut cache = PieceCache { text: text.as_bytes(), ..cache };
        assert!(encode_words(&mut cache, &text) > words.len(), "some pieces were replaced");
        // Every piece hashing alike: slots are shared, and the bytes decide.
        let mut calls = Vec::new();
        let mut out = Vec::new();
        let mut merge = fake_merge(&mut calls);
        for piece in text.split_inclusive(' ').take(40) {
            cache.encode(piece.as_bytes(), 7, &mut out, |p, o| merge(p, o));
        }
        drop(merge);
        let expected: Vec<Rank> = text.split_inclusive(' ').take(40).flat_map(|p| p.bytes().map(Rank::from)).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn bytes_hash_depends_on_every_byte_and_the_length() {
        let base = b"abcdefghijklmnopqrstu".to_vec();
        let h = bytes_hash(&base);
        for k in 0..base.len() {
            let mut other = base.clone();
            other[k] ^= 1;
            assert_ne!(bytes_hash(&other), h, "byte {k}");
        }
        assert_ne!(bytes_hash(&base[..20]), h);
        assert_ne!(bytes_hash(b"a\0"), bytes_hash(b"a"));
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
        cache.encode(&foreign, 1, &mut out, |p, o| merge(p, o));
        cache.encode(&foreign, 1, &mut out, |p, o| merge(p, o));
        drop(merge);
        assert_eq!(calls.len(), 2);
        assert_eq!(out.len(), 18);
    }
}
