//! Remembers the tokens of pieces already merged, per thread and across
//! calls (see `core_bpe::with_thread_cache`), for the texts of a batch too.
//!
//! Words recur: in ordinary text most pieces that are not a single token
//! (and so need the merge loop, with its vocabulary lookups) occurred earlier
//! in the same text, batch or stream. A hit copies the remembered tokens
//! instead of merging again; BPE is deterministic, so the result is identical.
//!
//! The table is two-way set-associative: a piece is kept in one of the two
//! slots of its home slot's cache line, so that a lookup, hit or miss, reads
//! the one line `push` prefetched. A piece of up to 15 bytes
//! is its own key (the packed bytes, see `vocab::short_key`); a longer one is
//! keyed by its hash and its bytes are kept to compare. Memory is bounded:
//! at most [`MAX_SLOTS`] slots, [`MAX_TOKENS`] remembered tokens and
//! [`MAX_BYTES`] bytes of long pieces (14 MiB in all). Past its slots, new
//! pieces take the places of old ones; when its tokens or bytes are full, it
//! is emptied and starts over.

use super::big_table::{BigTable, Zeroable};
use super::vocab::{top_bits, Rank, SlotLines};

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Slot {
    /// The packed piece, or for a long piece [`LONG`] | its hash; 0: free.
    key: u128,
    /// A short piece's tokens when they are at most [`IN_SLOT`] (most are:
    /// a hit then reads no other memory); otherwise where its tokens are in
    /// `tokens` and, for a long piece, where its bytes are: `[tok_at, long_at, _]`.
    data: [u32; IN_SLOT],
    /// How many tokens.
    tok_len: u16,
    /// A long piece's length (0 for a short one).
    long_len: u16,
}

// SAFETY: integers only; all-zero is a free slot.
unsafe impl Zeroable for Slot {}

/// The piece cache's lines ([`PieceCache::slot_lines`]).
pub type CacheLines = SlotLines<{ size_of::<Slot>().trailing_zeros() }>;

/// The most tokens a slot holds itself.
const IN_SLOT: usize = 3;
/// The most tokens of the arena [`PieceCache::copy_out`] copies as one
/// fixed-size block.
const ARENA_COPY: usize = 8;

impl Slot {
    #[inline(always)]
    fn tokens_in_slot(&self) -> bool {
        self.long_len == 0 && self.tok_len as usize <= IN_SLOT
    }
}

/// Marks a long piece's key: packed keys hold a length of 1 to 15 in their top byte.
const LONG: u128 = 0xFF << 120;

/// The most slots (8 MiB, on huge pages: see `big_table`). Every piece's
/// slot is prefetched, so with 4 KiB pages a table this size missed the TLB
/// on nearly every piece: 4 MiB of them lost 6% on en and 5% on code. On huge
/// pages, a stream remembers four times the words of the 2 MiB table this
/// replaced: latin +14-21%, ru +3-8%, ja and zh +2-5%, en and code -3 to +7%
/// (one thread, past the first 2 MB of each text).
pub const MAX_SLOTS: usize = 1 << 18;
/// A text of this many bytes gets all [`MAX_SLOTS`] at once: the table is
/// made once per thread and tokenizer (about a millisecond, zeroed on huge
/// pages), where growing step by step took a share of a stream's first
/// megabytes; shorter texts (a thread that encodes a few lines) start small.
pub const FULL_FROM: usize = 64 << 10;
/// The most tokens remembered.
pub const MAX_TOKENS: usize = 1 << 20;
/// The most bytes of long pieces kept to compare.
pub const MAX_BYTES: usize = 2 << 20;
/// The slots a piece may be kept in: the aligned set of this many slots
/// around its home slot (one cache line), tried from the home slot on.
/// Probing on through up to eight slots, as this table did, read lines no
/// prefetch had asked for once the table filled (a first-seen piece read
/// them all): one line per piece made cl100k latin +6-10% (in-process A/B,
/// both load orders, 40 slices of 256 KB), en and code-c within noise;
/// sets of two lines (four ways) were 7-13% slower than one.
const WAYS: usize = 2;
const _: () = assert!(WAYS * std::mem::size_of::<Slot>() == 64, "a set is one 64-byte line");

/// The slots a piece whose home slot is `home` may be kept in, the home slot first.
#[inline(always)]
fn line(home: usize) -> impl Iterator<Item = usize> {
    (0..WAYS).map(move |k| (home & !(WAYS - 1)) | ((home + k) & (WAYS - 1)))
}

/// `a == b` for slices of one length. Most long pieces are 16 to 32 bytes
/// (a Cyrillic word of 8 to 16 letters): two overlapping 16-byte compares,
/// where a slice's `==` calls `memcmp` (3-4% of encoding Russian).
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    if (16..=32).contains(&n) && b.len() == n {
        let word = |s: &[u8], at: usize| u128::from_le_bytes(s[at..at + 16].try_into().unwrap());
        return word(a, 0) == word(b, 0) && word(a, n - 16) == word(b, n - 16);
    }
    a == b
}

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

/// A thread's piece cache for one tokenizer (see `core_bpe::with_thread_cache`).
pub struct PieceCache {
    slots: BigTable<Slot>,
    used: usize,
    tokens: Vec<Rank>,
    bytes: Vec<u8>,
}

impl PieceCache {
    /// A cache sized for about `text_bytes` of text: all its slots from
    /// [`FULL_FROM`] bytes on, otherwise a few (at half full it grows to all).
    pub fn for_bytes(text_bytes: usize) -> Self {
        let slots = if text_bytes >= FULL_FROM { MAX_SLOTS } else { (text_bytes / 16).next_power_of_two().max(1024) };
        // The arenas are reserved at their limits (pages are only touched as
        // they fill): growing them by doubling would copy and free over and over.
        Self {
            slots: BigTable::zeroed(slots),
            used: 0,
            // (`ARENA_COPY` more: `copy_out` copies that many from any piece's start.)
            tokens: Vec::with_capacity(MAX_TOKENS + ARENA_COPY),
            bytes: Vec::with_capacity(MAX_BYTES),
        }
    }

    /// Grows the table ahead (to its limit) for about `text_bytes` more of text.
    pub fn reserve_for(&mut self, text_bytes: usize) {
        if text_bytes >= FULL_FROM || self.slots.len() < text_bytes / 32 {
            self.grow();
        }
    }

    /// The slot a hash starts probing at (as [`SlotLines::home`] finds it).
    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        top_bits(hash, self.slots.len().trailing_zeros())
    }

    /// The slots' lines, to prefetch where a hash is looked for first
    /// without reading the cache; valid until the cache next grows.
    pub fn slot_lines(&self) -> CacheLines {
        CacheLines::of(&self.slots)
    }

    /// Appends the tokens of `piece` to `out`: copied when remembered,
    /// otherwise computed by `merge` and remembered. `key` is the piece's
    /// packed key, or 0 when it is longer than a key holds; `hash` is
    /// `vocab::key_hash(key)` for a short piece, [`bytes_hash`] of a long one.
    #[inline]
    pub fn encode(
        &mut self,
        piece: &[u8],
        key: u128,
        hash: u64,
        out: &mut Vec<Rank>,
        merge: impl FnOnce(&[u8], &mut Vec<Rank>),
    ) {
        let free = match self.probe(piece, key, hash) {
            Ok(at) => return self.copy_out(at, out),
            Err(free) => free,
        };
        let before = out.len();
        merge(piece, out);
        self.store(piece, key, hash, free, &out[before..]);
    }

    /// Appends the remembered tokens of `piece` to `out` and says true, or
    /// says false (its tokens to be given later to [`PieceCache::remember`]).
    #[inline]
    pub fn lookup(&self, piece: &[u8], key: u128, hash: u64, out: &mut Vec<Rank>) -> bool {
        match self.probe(piece, key, hash) {
            Ok(at) => {
                self.copy_out(at, out);
                true
            }
            Err(_) => false,
        }
    }

    /// Appends the tokens of the short piece packed in `key` (`hash` is
    /// `vocab::key_hash(key)`) and says true when it is remembered, or says
    /// false: [`PieceCache::lookup`] of a short piece, from the line `push`
    /// prefetched, with no bytes to compare (no long piece's key is a short
    /// one's). A piece of more than [`IN_SLOT`] tokens is answered here too:
    /// sent on to the cuts and deferral, which asked the cache again, it
    /// took a call to `memcpy` and a second probe (Latin text's words of four
    /// tokens and more, 2% of its pieces).
    #[inline(always)]
    pub fn lookup_home(&self, key: u128, hash: u64, out: &mut Vec<Rank>) -> bool {
        debug_assert!(key != 0 && key & LONG != LONG);
        let home = self.home(hash);
        let Some(at) = line(home).find(|&at| self.slots[at].key == key) else { return false };
        self.copy_out(at, out);
        true
    }

    /// Remembers `tokens` as those of `piece` (keyed as for [`PieceCache::encode`]).
    pub fn remember(&mut self, piece: &[u8], key: u128, hash: u64, tokens: &[Rank]) {
        if let Err(free) = self.probe(piece, key, hash) {
            self.store(piece, key, hash, free, tokens);
        }
    }

    /// The stored key of a piece: the packed key, or `LONG` | hash.
    #[inline(always)]
    fn stored_key(key: u128, hash: u64) -> u128 {
        if key == 0 {
            LONG | hash as u128
        } else {
            key
        }
    }

    /// The slot remembering `piece`, or the first free slot of its line (if any).
    #[inline(always)]
    fn probe(&self, piece: &[u8], key: u128, hash: u64) -> Result<usize, Option<usize>> {
        let long = key == 0;
        let key = Self::stored_key(key, hash);
        let home = self.home(hash);
        for at in line(home) {
            let slot = &self.slots[at];
            if slot.key == 0 {
                return Err(Some(at));
            }
            if self.holds(at, piece, key, long) {
                return Ok(at);
            }
        }
        Err(None)
    }

    /// Whether slot `at` remembers `piece`, stored under `key` (see
    /// [`PieceCache::stored_key`]); a `long` piece's bytes are compared too.
    #[inline(always)]
    fn holds(&self, at: usize, piece: &[u8], key: u128, long: bool) -> bool {
        let slot = &self.slots[at];
        slot.key == key
            && (!long
                || (slot.long_len as usize == piece.len()
                    && same_bytes(&self.bytes[slot.data[1] as usize..slot.data[1] as usize + piece.len()], piece)))
    }

    /// Appends the tokens remembered in slot `at` to `out`.
    #[inline(always)]
    fn copy_out(&self, at: usize, out: &mut Vec<Rank>) {
        let slot = &self.slots[at];
        let n = slot.tok_len as usize;
        if slot.tokens_in_slot() {
            // SAFETY: the slot holds `IN_SLOT` words, the first `n` its tokens.
            unsafe { append_block::<IN_SLOT>(out, slot.data.as_ptr(), n) }
        } else if n <= ARENA_COPY {
            let from = slot.data[0] as usize;
            debug_assert!(from + n <= self.tokens.len() && from + ARENA_COPY <= self.tokens.capacity());
            // SAFETY: `from + ARENA_COPY` is within the arena's allocation
            // (reserved at `MAX_TOKENS + ARENA_COPY`, and `store` keeps its
            // length within `MAX_TOKENS`); the first `n` words are the
            // piece's tokens, set by `store`.
            unsafe { append_block::<ARENA_COPY>(out, self.tokens.as_ptr().add(from), n) }
        } else {
            let from = slot.data[0] as usize;
            out.extend_from_slice(&self.tokens[from..from + n]);
        }
    }

    /// Remembers `made` as the tokens of `piece`, in slot `free` when the
    /// probe found one free.
    fn store(&mut self, piece: &[u8], key: u128, hash: u64, mut free: Option<usize>, made: &[Rank]) {
        let long = key == 0;
        let key = Self::stored_key(key, hash);
        if made.len() > u16::MAX as usize || (long && piece.len() > u16::MAX as usize) {
            return;
        }
        let in_slot = !long && made.len() <= IN_SLOT;
        if !in_slot && (self.tokens.len() + made.len() > MAX_TOKENS || self.bytes.len() + piece.len() > MAX_BYTES) {
            self.clear();
            free = None;
        }
        let at = match free {
            Some(at) => at,
            // Emptied, or no free slot in the line: the home slot (taking
            // the place of what was there).
            None => self.home(hash),
        };
        if self.slots[at].key == 0 {
            self.used += 1;
        }
        let mut data = [0; IN_SLOT];
        if in_slot {
            for (d, &t) in data.iter_mut().zip(made) {
                *d = t;
            }
        } else {
            data[0] = self.tokens.len() as u32;
            data[1] = self.bytes.len() as u32;
            if long {
                self.bytes.extend_from_slice(piece);
            }
            self.tokens.extend_from_slice(made);
        }
        self.slots[at] =
            Slot { key, data, tok_len: made.len() as u16, long_len: if long { piece.len() as u16 } else { 0 } };
        if self.used * 2 > self.slots.len() {
            self.grow();
        }
    }

    /// The most slots at once (past them, new pieces take the places of old
    /// ones). Growth writes a new table and moves every piece, which took a
    /// share of the first megabytes of a stream when the table doubled its
    /// way up; a text of a few lines keeps its small table.
    #[cold]
    fn grow(&mut self) {
        if self.slots.len() >= MAX_SLOTS {
            return;
        }
        let old = std::mem::replace(&mut self.slots, BigTable::zeroed(MAX_SLOTS));
        for &slot in old.iter().filter(|s| s.key != 0) {
            let hash = if slot.key & LONG == LONG { slot.key as u64 } else { super::vocab::key_hash(slot.key) };
            let home = self.home(hash);
            // Keys whose line is full are dropped: it is a cache.
            if let Some(at) = line(home).find(|&at| self.slots[at].key == 0) {
                self.slots[at] = slot;
            } else {
                self.used -= 1;
            }
        }
    }

    fn clear(&mut self) {
        self.slots.fill(Slot::default());
        self.used = 0;
        self.tokens.clear();
        self.bytes.clear();
    }
}

/// Appends the first `n` of the `K` words at `src` to `out`, copying all
/// `K` into room made once: a fixed-size copy, where a push per token checked
/// the room each time and `extend_from_slice` called `memcpy` for a few words.
/// The `K - n` words past the end are copied as bytes and never read.
///
/// # Safety
/// `src` must be valid for reads of `K` words, the first `n <= K` of them set.
#[inline(always)]
unsafe fn append_block<const K: usize>(out: &mut Vec<Rank>, src: *const Rank, n: usize) {
    debug_assert!(n <= K);
    out.reserve(K);
    let len = out.len();
    // SAFETY: `reserve` left room for `K` more; the caller vouches for `src`.
    unsafe {
        std::ptr::copy_nonoverlapping(src, out.as_mut_ptr().add(len), K);
        out.set_len(len + n);
    }
}

#[cfg(test)]
mod tests {
    use super::super::vocab::{key_hash, short_key};
    use super::*;

    /// A stand-in merge that records every call.
    fn fake_merge(calls: &mut Vec<Vec<u8>>) -> impl FnMut(&[u8], &mut Vec<Rank>) + '_ {
        move |piece, out| {
            calls.push(piece.to_vec());
            out.extend(piece.iter().map(|&b| b as Rank));
        }
    }

    fn key_and_hash(piece: &[u8]) -> (u128, u64) {
        match short_key(piece) {
            Some(key) => (key, key_hash(key)),
            None => (0, bytes_hash(piece)),
        }
    }

    /// Encodes the space-ended words of `text` through `cache`; checks the output equals
    /// merging every piece, and returns how many pieces were merged.
    fn encode_words(cache: &mut PieceCache, text: &str) -> usize {
        let mut calls = Vec::new();
        let mut out = Vec::new();
        let mut merge = fake_merge(&mut calls);
        for piece in text.split_inclusive(' ') {
            let (key, hash) = key_and_hash(piece.as_bytes());
            cache.encode(piece.as_bytes(), key, hash, &mut out, |p, o| merge(p, o));
        }
        drop(merge);
        assert_eq!(out, text.bytes().map(|b| b as Rank).collect::<Vec<_>>());
        calls.len()
    }

    /// `push` prefetches a piece's slot through `slot_lines`, which must
    /// name the slot a probe starts at, at every size a cache starts at and
    /// after it grows (a small table grows once, straight to the limit).
    /// `same_bytes` tells every pair of equal-length slices apart that
    /// differ in any one byte, at every length to 40 (its two words must
    /// cover every byte of 16 to 32), and finds equal ones equal.
    #[test]
    fn same_bytes_sees_a_difference_at_every_place() {
        for n in 0..40 {
            let a: Vec<u8> = (0..n as u8).map(|k| k.wrapping_mul(37) ^ 0xC5).collect();
            assert!(same_bytes(&a, &a.clone()));
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x40;
                assert!(!same_bytes(&a, &b), "length {n}, byte {at}");
            }
        }
    }

    #[test]
    fn slot_lines_name_the_slot_a_probe_starts_at() {
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
        for bytes in [0, FULL_FROM / 4, FULL_FROM] {
            let mut cache = PieceCache::for_bytes(bytes);
            for _ in 0..2 {
                let lines = cache.slot_lines();
                for _ in 0..10_000 {
                    let hash = next();
                    assert_eq!(lines.home(hash), cache.home(hash));
                }
                cache.grow();
            }
        }
    }

    #[test]
    fn long_texts_get_every_slot_at_once_short_ones_on_growing() {
        assert_eq!(PieceCache::for_bytes(FULL_FROM).slots.len(), MAX_SLOTS);
        let mut cache = PieceCache::for_bytes(FULL_FROM - 1);
        assert!(cache.slots.len() < MAX_SLOTS / 16);
        cache.reserve_for(1000);
        assert!(cache.slots.len() < MAX_SLOTS / 16, "a short text needs no more");
        cache.reserve_for(FULL_FROM);
        assert_eq!(cache.slots.len(), MAX_SLOTS);
        // Half full, a small table grows straight to the limit.
        let mut cache = PieceCache::for_bytes(0);
        let words: String = (0..cache.slots.len()).map(|k| format!("{k:x} ")).collect();
        encode_words(&mut cache, &words);
        assert_eq!(cache.slots.len(), MAX_SLOTS);
    }

    #[test]
    fn repeats_short_and_long_are_copied_and_equal_to_merging() {
        let text = "alpha beta alpha gamma-delta-epsilon-zeta beta alpha gamma-delta-epsilon-zeta ".repeat(200);
        let merged = encode_words(&mut PieceCache::for_bytes(text.len()), &text);
        assert_eq!(merged, 3, "only the first occurrences merge");
        // Across texts too.
        let mut cache = PieceCache::for_bytes(0);
        assert_eq!(encode_words(&mut cache, "one two three "), 3);
        assert_eq!(encode_words(&mut cache, "three two one "), 0);
    }

    #[test]
    fn pieces_of_up_to_three_tokens_are_kept_in_their_slot() {
        // The stand-in merge makes a token per byte: "ab " has three, kept in
        // the slot; "abc " has four, kept in the token arena.
        let text = "ab a abc ab abc a ".repeat(50);
        let mut cache = PieceCache::for_bytes(text.len());
        assert_eq!(encode_words(&mut cache, &text), 3, "only the first occurrences merge");
        assert_eq!(cache.tokens.len(), 4, "only the four-token piece is in the arena");
    }

    /// `lookup_home` answers a short piece that a slot of its home line
    /// remembers, with exactly its tokens (in the slot or in the arena), and
    /// nothing else: a piece not remembered, a long piece. A third piece of a
    /// full line takes its home slot.
    #[test]
    fn lookup_home_answers_only_from_the_home_line_itself() {
        let mut cache = PieceCache::for_bytes(0);
        let mut calls = Vec::new();
        let mut merge = fake_merge(&mut calls);
        let mut out = Vec::new();
        let (key, hash) = key_and_hash(b"ab ");
        assert!(!cache.lookup_home(key, hash, &mut out), "not remembered yet");
        cache.encode(b"ab ", key, hash, &mut out, |p, o| merge(p, o));
        out.clear();
        assert!(cache.lookup_home(key, hash, &mut out));
        assert_eq!(out, vec![b'a' as Rank, b'b' as Rank, b' ' as Rank]);
        // Another piece with the same home: remembered in the line's other slot, and answered.
        let (other, _) = key_and_hash(b"xy ");
        cache.encode(b"xy ", other, hash, &mut out, |p, o| merge(p, o));
        out.clear();
        assert!(cache.lookup_home(other, hash, &mut out));
        assert_eq!(out, vec![b'x' as Rank, b'y' as Rank, b' ' as Rank]);
        let home = cache.home(hash);
        let second = line(home).nth(1).unwrap();
        assert_eq!(home / 2, second / 2, "the two slots share a line");
        // A third: the line is full, so it takes the home slot; the one there is forgotten.
        let (third, _) = key_and_hash(b"pq ");
        cache.encode(b"pq ", third, hash, &mut out, |p, o| merge(p, o));
        out.clear();
        assert!(cache.lookup_home(third, hash, &mut out));
        assert_eq!(cache.slots[home].key, third);
        out.clear();
        let (forgotten, bytes) = if cache.slots[second].key == other { (key, b"ab ") } else { (other, b"xy ") };
        assert!(!cache.lookup_home(forgotten, hash, &mut out));
        assert!(!cache.lookup(bytes, forgotten, hash, &mut out));
        assert!(out.is_empty());
        // Four tokens: remembered in the arena, and answered from there.
        let (key4, hash4) = key_and_hash(b"abc ");
        cache.encode(b"abc ", key4, hash4, &mut out, |p, o| merge(p, o));
        out.clear();
        assert!(cache.lookup_home(key4, hash4, &mut out));
        assert_eq!(out, b"abc ".map(Rank::from));
        out.clear();
        // A long piece keyed by its hash: never a short key's answer.
        let long = b"a long piece of twenty bytes";
        cache.encode(long, 0, 99, &mut out, |p, o| merge(p, o));
        out.clear();
        let (short_99, _) = key_and_hash(b"zz");
        assert!(!cache.lookup_home(short_99, 99, &mut out));
        assert!(out.is_empty());
    }

    /// `lookup` answers a long piece remembered under its hash with its
    /// tokens, and not a piece that claims the same hash with other bytes or
    /// another length.
    #[test]
    fn a_long_piece_is_looked_up_by_its_bytes() {
        let mut cache = PieceCache::for_bytes(0);
        let (mut calls, mut out) = (Vec::new(), Vec::new());
        let mut merge = fake_merge(&mut calls);
        let long = b"a long piece of twenty-eight";
        assert!(!cache.lookup(long, 0, 7, &mut out), "not remembered yet");
        cache.encode(long, 0, 7, &mut out, |p, o| merge(p, o));
        out.clear();
        assert!(cache.lookup(long, 0, 7, &mut out));
        assert_eq!(out, long.iter().map(|&b| b as Rank).collect::<Vec<_>>());
        out.clear();
        assert!(!cache.lookup(b"a long piece of twenty-eighT", 0, 7, &mut out), "other bytes");
        assert!(!cache.lookup(&long[..20], 0, 7, &mut out), "another length");
        assert!(out.is_empty());
    }

    #[test]
    fn growth_and_clearing_keep_results_exact() {
        // 20,000 distinct pieces in a cache that starts with 1024 slots: it
        // grows, and at its limit starts over; every output stays exact.
        let words: String = (0..20_000).map(|k| format!("w{k} ")).collect();
        let mut cache = PieceCache::for_bytes(0);
        assert_eq!(encode_words(&mut cache, &words), 20_000);
        assert!(cache.slots.len() > 1024);
        assert!(encode_words(&mut cache, &words) < 20_000, "some remembered");
        let long: String = (0..3000).map(|k| format!("{}{k} ", "x".repeat(400))).collect();
        encode_words(&mut cache, &long);
        assert!(cache.bytes.len() <= MAX_BYTES && cache.tokens.len() <= MAX_TOKENS);
    }

    #[test]
    fn slots_stop_growing_at_the_limit_and_results_stay_exact() {
        // More distinct pieces than the most slots hold (three bytes each, so
        // their three stand-in tokens stay in the slot): the table stops at
        // its limit, later pieces take old ones' places, and every output is
        // still that of merging.
        let n = MAX_SLOTS + MAX_SLOTS / 2;
        let pieces: Vec<[u8; 3]> = (0..n as u32).map(|k| [(k >> 16) as u8 + 1, (k >> 8) as u8, k as u8]).collect();
        let mut cache = PieceCache::for_bytes(0);
        let pass = |cache: &mut PieceCache| {
            let (mut calls, mut out) = (Vec::new(), Vec::new());
            let mut merge = fake_merge(&mut calls);
            for piece in &pieces {
                let (key, hash) = key_and_hash(piece);
                cache.encode(piece, key, hash, &mut out, |p, o| merge(p, o));
            }
            drop(merge);
            assert_eq!(out, pieces.iter().flatten().map(|&b| b as Rank).collect::<Vec<_>>());
            calls.len()
        };
        assert_eq!(pass(&mut cache), n);
        assert_eq!(cache.slots.len(), MAX_SLOTS);
        let again = pass(&mut cache);
        assert!(again > 0 && again < n, "some remembered, not all: {again} of {n} merged again");
        assert_eq!(cache.slots.len(), MAX_SLOTS);
        assert!(cache.tokens.is_empty(), "three tokens stay in the slot");
    }

    /// Short pieces of 4 to 15 tokens (kept in the arena) come back from
    /// `lookup_home` exactly, appended after what `out` holds, the fixed-size
    /// copy's and the longer copy's alike, and at the arena's very end, where
    /// the fixed-size copy reads past the last token.
    #[test]
    fn arena_hits_are_appended_exactly_up_to_the_arena_end() {
        let mut cache = PieceCache::for_bytes(0);
        let mut calls = Vec::new();
        let mut merge = fake_merge(&mut calls);
        let mut check = |cache: &mut PieceCache, piece: &[u8]| {
            let (key, hash) = key_and_hash(piece);
            let mut out = vec![7, 8];
            cache.encode(piece, key, hash, &mut out, |p, o| merge(p, o));
            let mut again = vec![7, 8];
            assert!(cache.lookup_home(key, hash, &mut again), "{piece:?}");
            assert_eq!(again, out, "{piece:?}");
            assert_eq!(out[2..], piece.iter().map(|&b| b as Rank).collect::<Vec<_>>());
        };
        for n in 4..=15u8 {
            check(&mut cache, &(0..n).map(|k| b'a' + k).collect::<Vec<_>>());
        }
        for n in [4u8, 8] {
            // A piece whose tokens end at the arena's limit (four tokens: the
            // copy reads four words past it).
            let fill = MAX_TOKENS - n as usize;
            cache.tokens.resize(fill, Rank::MAX);
            check(&mut cache, &(0..n).map(|k| b'A' + k).collect::<Vec<_>>());
            assert_eq!(cache.tokens.len(), fill + n as usize, "kept at the arena's end");
        }
        assert!(cache.tokens.capacity() >= MAX_TOKENS + ARENA_COPY);
    }

    #[test]
    fn long_pieces_with_equal_hashes_are_told_apart() {
        let mut cache = PieceCache::for_bytes(0);
        let mut calls = Vec::new();
        let mut out = Vec::new();
        let mut merge = fake_merge(&mut calls);
        let pieces: Vec<Vec<u8>> = (0..40u8).map(|k| vec![b'a' + k % 26; 20 + k as usize]).collect();
        for piece in pieces.iter().chain(&pieces) {
            // Every long piece claims the same hash: the bytes must decide.
            cache.encode(piece, 0, 7, &mut out, |p, o| merge(p, o));
        }
        drop(merge);
        let expected: Vec<Rank> = pieces.iter().chain(&pieces).flatten().map(|&b| b as Rank).collect();
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
}
