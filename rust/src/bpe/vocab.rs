//! Token bytes → rank lookup, tuned for BPE's access pattern: most lookups
//! are short byte strings, which are packed into a `u128` key so a probe
//! touches one table slot instead of chasing a pointer to the key's bytes.

use std::hint::select_unpredictable;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::atoms::Atoms;
use super::big_table::{BigTable, Zeroable};
use super::cuts::{CutTable, CUT_BEFORE};
use super::merge::merge_piece;
use super::merge_step::{MergeStep, Portable};

/// A token id / merge priority. Lower ranks merge first.
pub type Rank = u32;

/// Byte strings up to this long are stored inline.
pub const INLINE: usize = 15;

/// Packs up to 15 bytes into a `u128`: the bytes little-endian from the low
/// end, zero padding, and the length in the top byte. Built from (possibly
/// overlapping) word reads rather than a variable-length copy, which would
/// be a libc call on this hot path.
#[inline(always)]
pub fn pack(bytes: &[u8]) -> u128 {
    let n = bytes.len();
    debug_assert!(n <= INLINE);
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
    let (lo, hi) = if n >= 8 {
        // The last word read ends at n; shift out the bytes already in `lo`.
        let hi = if n == 8 { 0 } else { word(n - 8) >> (8 * (16 - n)) };
        (word(0), hi)
    } else if n >= 4 {
        let top = if n == 4 { 0 } else { (half(n - 4) >> (8 * (8 - n))) << 32 };
        (half(0) | top, 0)
    } else {
        let mut lo = 0u64;
        for (k, &b) in bytes.iter().enumerate() {
            lo |= (b as u64) << (8 * k);
        }
        (lo, 0)
    };
    (lo as u128) | ((hi as u128) << 64) | ((n as u128) << 120)
}

/// A byte string that occurs twice among the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub first: Rank,
    pub second: Rank,
}

/// The slot of a table of `1 << bits` slots (1 to 63 bits) that `hash`
/// starts probing at: the hash's top bits, which depend on every bit of a
/// multiplicative hash (its low bits see only the input's low bits). Every
/// table here places keys this way, and the encoder's prefetches
/// ([`SlotLines`]) must name the slot its lookups then read.
#[inline(always)]
pub fn top_bits(hash: u64, bits: u32) -> usize {
    debug_assert!((1..64).contains(&bits));
    (hash >> (64 - bits)) as usize
}

/// The hash of a packed key; its top bits pick the bucket, so keys that
/// differ anywhere land apart.
#[inline(always)]
pub fn key_hash(key: u128) -> u64 {
    let lo = key as u64;
    let hi = (key >> 64) as u64;
    (lo.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hi).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// Masks keeping the first `n` bytes of a piece's two little-endian words
/// (`n` <= 15): `KEEP[n].0` for bytes 0-7, `KEEP[n].1` for bytes 8-14.
const KEEP: [(u64, u64); INLINE + 1] = {
    let mut m = [(0u64, 0u64); INLINE + 1];
    let mut n = 1;
    while n <= INLINE {
        m[n] = if n >= 8 { (u64::MAX, (1u64 << (8 * (n - 8))) - 1) } else { ((1u64 << (8 * n)) - 1, 0) };
        n += 1;
    }
    m
};

/// [`short_key`] of the piece `text[start..end]` (None also where that is
/// not a piece of `text`): where 16 bytes can be read from the piece's start
/// without leaving the text, two word loads and two masks from a table do
/// it, with no branch on the length. (The encoder makes a key for every
/// piece: masking with a `u128` shift by the length took three times as
/// long, key and hash together, as this.)
#[inline(always)]
pub fn short_key_at(text: &[u8], start: usize, end: usize) -> Option<u128> {
    // Wraps to a large length where `end < start`.
    let n = end.wrapping_sub(start);
    if n > INLINE || n == 0 {
        return None;
    }
    if let Some(words) = text.get(start..).and_then(|rest| rest.first_chunk::<16>()) {
        let word = |at: usize| u64::from_le_bytes(*words[at..].first_chunk::<8>().unwrap());
        let (keep_lo, keep_hi) = KEEP[n];
        let lo = word(0) & keep_lo;
        let hi = (word(8) & keep_hi) | ((n as u64) << 56);
        return Some(lo as u128 | (hi as u128) << 64);
    }
    text.get(start..end).map(pack)
}

/// Packs `bytes` (1 to 15 of them) into a key, `None` when longer.
#[inline(always)]
pub fn short_key(bytes: &[u8]) -> Option<u128> {
    (bytes.len() <= INLINE).then(|| pack(bytes))
}

/// One cache line of the short-token table: up to three packed keys (0 in
/// the unused ones), their ranks, and whether a key was placed past it.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    keys: [u128; 3],
    ranks: [Rank; 3],
    /// 1 when an insertion found this bucket full and went on to the next:
    /// only then may a key looked for here be further on.
    passed: u32,
}

// SAFETY: integers only.
unsafe impl Zeroable for Bucket {}

impl Bucket {
    /// The rank of `key` if it is one of the bucket's keys, else `Rank::MAX`,
    /// found without a branch: on x86-64 each key compared in one SSE2
    /// instruction (as two words it took seven), `key` read from memory.
    #[inline(always)]
    fn rank_of(&self, key: &u128) -> Rank {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of x86-64; the loads read `key` and the
        // bucket's keys, 16-byte aligned (a bucket is a 64-byte-aligned line).
        unsafe {
            use std::arch::x86_64::*;
            let want = _mm_loadu_si128((key as *const u128).cast());
            let mut rank = Rank::MAX;
            for j in 0..3 {
                let have = _mm_load_si128(self.keys.as_ptr().add(j).cast());
                let equal = _mm_movemask_epi8(_mm_cmpeq_epi8(want, have)) == 0xFFFF;
                rank = select_unpredictable(equal, self.ranks[j], rank);
            }
            rank
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let mut rank = Rank::MAX;
            for j in 0..3 {
                rank = select_unpredictable(self.keys[j] == *key, self.ranks[j], rank);
            }
            rank
        }
    }
}

const _: () = assert!(size_of::<Bucket>() == 64);

/// Tokens of up to 15 bytes by packed key: open addressing over buckets of
/// three, filled in probe order. A probe ends at the first bucket no
/// insertion went past: at half full, a fifth of the buckets are full but
/// only a twelfth were passed, and a piece that is no token (which reads
/// on until a probe ends) reads a second, unprefetched line half as often.
/// Unlike a general hash map, a lookup is one cache line whose address is
/// known from the key alone, which lets the encoder prefetch it.
struct ShortTable {
    buckets: BigTable<Bucket>,
    /// log2 of the bucket count.
    bits: u32,
}

impl ShortTable {
    fn with_capacity(n: usize) -> Self {
        // At most three quarters full (three keys a bucket), and after rounding
        // the bucket count to a power of two usually about half full: most
        // probes end in their home bucket.
        let bits = (n.max(1) * 4).div_ceil(9).next_power_of_two().trailing_zeros().max(4);
        Self { buckets: BigTable::zeroed(1 << bits), bits }
    }

    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        top_bits(hash, self.bits)
    }

    /// Inserts `key`, or returns the rank it already has.
    fn insert(&mut self, key: u128, rank: Rank) -> Result<(), Rank> {
        let mask = self.buckets.len() - 1;
        let mut b = self.home(key_hash(key));
        loop {
            let bucket = &mut self.buckets[b];
            for k in 0..3 {
                if bucket.keys[k] == key {
                    return Err(bucket.ranks[k]);
                }
                if bucket.keys[k] == 0 {
                    bucket.keys[k] = key;
                    bucket.ranks[k] = rank;
                    return Ok(());
                }
            }
            bucket.passed = 1;
            b = (b + 1) & mask;
        }
    }

    #[inline(always)]
    fn get(&self, key: u128, hash: u64) -> Option<Rank> {
        self.get_at(key, self.home(hash))
    }

    /// Writes to `out` the ranks of the pieces `keys` (at their `homes`)
    /// from the first on, while each is a short token; returns how many
    /// were. The encoder's loop over a batch's pieces, most of them tokens:
    /// with no call in it, the table and the output stay in registers, and
    /// the output's room is made once (through `get_at` and `Vec::push`,
    /// with the rest of a piece's path in the loop, the batch's emitting took
    /// 69 instructions a piece of C code, counted by callgrind; now 50).
    /// It probes in a loop of its own, beside `get_at`'s: one `probe` for
    /// both, though it ran as many instructions, made C code and English
    /// 4-8% slower on the Zen 3 VM (plain builds, both load orders).
    #[inline(always)]
    fn ranks_while_tokens(&self, keys: &[u128], homes: &[u64], out: &mut Vec<Rank>) -> usize {
        let n = keys.len().min(homes.len());
        out.reserve(n);
        let buckets: &[Bucket] = &self.buckets;
        let mask = buckets.len() - 1;
        let room = out.spare_capacity_mut();
        let mut k = 0;
        while k < n {
            // A key is never 0 but for a piece without one: its length, in
            // the top byte, is not.
            if keys[k] >> 120 == 0 {
                break;
            }
            let mut b = homes[k] as usize & mask;
            let rank = loop {
                // SAFETY: `b <= mask`, and the table's length is a power of two.
                let bucket = unsafe { buckets.get_unchecked(b) };
                let rank = bucket.rank_of(&keys[k]);
                if bucket.passed == 0 || rank != Rank::MAX {
                    break rank;
                }
                b = (b + 1) & mask;
            };
            if rank == Rank::MAX {
                break;
            }
            // SAFETY: `k < n`, and `reserve` made room for `n`.
            unsafe { room.get_unchecked_mut(k).write(rank) };
            k += 1;
        }
        // SAFETY: ranks `0..k` of the room were written.
        unsafe { out.set_len(out.len() + k) };
        k
    }

    /// `get` from the key's home bucket, found before.
    #[inline(always)]
    fn get_at(&self, key: u128, home: usize) -> Option<Rank> {
        let mask = self.buckets.len() - 1;
        let mut b = home;
        loop {
            let bucket = &self.buckets[b];
            // Compare all three keys without branching on which one matches.
            let mut rank = Rank::MAX;
            for k in 0..3 {
                rank = select_unpredictable(bucket.keys[k] == key, bucket.ranks[k], rank);
            }
            if bucket.passed == 0 || rank != Rank::MAX {
                return (rank != Rank::MAX).then_some(rank);
            }
            b = (b + 1) & mask;
        }
    }
}

/// The most tokens a vocabulary may have: a merge-table entry packs two
/// part ids and a rank into 21 bits each.
pub const MAX_TOKENS: usize = (1 << 21) - 1;

pub(super) const FIELD: u32 = 21;
pub(super) const FIELD_MASK: u64 = (1 << FIELD) - 1;

/// Eight merge-table entries, one cache line: `(left + 1) << 42 | right <<
/// 21 | rank`, 0 for a free entry; they fill in probe order.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct PairBucket {
    entries: [u64; 8],
}

// SAFETY: integers only.
unsafe impl Zeroable for PairBucket {}

/// The merges BPE can make, by the ids of the two parts: `(left, right)` →
/// rank of the token they form. Only each token's own last merge is listed
/// (see [`canonical_split`]); any other pair of parts that spells a token is
/// provably never the pair BPE merges next, so leaving it out changes no
/// result, and a lookup needs no bytes. Packed eight to a cache line (2 MB
/// for o200k, 1 MB for cl100k), since each merge waits on one lookup.
struct PairTable {
    buckets: BigTable<PairBucket>,
    bits: u32,
    /// One bit per hash of the listed pairs (256 KiB, stays in L2): most
    /// pairs of parts are not listed, and a clear bit says so without
    /// reading the table, a cache miss away.
    filter: Vec<u64>,
}

/// The pair's key: the upper 42 bits of its entry, never 0.
#[inline(always)]
fn pair_key(left: Rank, right: Rank) -> u64 {
    ((left as u64 + 1) << FIELD) | right as u64
}

/// The key of the pair (`left`, `right`) where `real`, else a key no pair
/// has (its left field is past every id), whose lookup finds nothing in
/// lines that stay hot: for merge loops that look up both neighbours of a
/// merge without branching on whether they exist.
#[inline(always)]
pub(super) fn merge_key(real: bool, left: Rank, right: Rank) -> u64 {
    const NONE: u64 = (MAX_TOKENS as u64 + 1) << FIELD;
    select_unpredictable(real, pair_key(left, right), NONE)
}

impl PairTable {
    fn with_capacity(n: usize) -> Self {
        // About three quarters full.
        let bits = n.max(1).div_ceil(7).next_power_of_two().trailing_zeros().max(4);
        Self { buckets: BigTable::zeroed(1 << bits), bits, filter: vec![0; 1 << (FILTER_BITS - 6)] }
    }

    #[inline(always)]
    fn home(&self, key: u64) -> usize {
        top_bits(key.wrapping_mul(0x9E37_79B9_7F4A_7C15), self.bits)
    }

    #[inline(always)]
    fn filter_slot(key: u64) -> usize {
        top_bits(key.wrapping_mul(0xD6E8_FEB8_6659_FD93), FILTER_BITS)
    }

    fn insert(&mut self, key: u64, rank: Rank) {
        debug_assert!((rank as u64) < FIELD_MASK && key >> (2 * FIELD) < FIELD_MASK);
        let slot = Self::filter_slot(key);
        self.filter[slot >> 6] |= 1 << (slot & 63);
        let mask = self.buckets.len() - 1;
        let mut b = self.home(key);
        loop {
            let bucket = &mut self.buckets[b];
            for entry in bucket.entries.iter_mut() {
                if *entry == 0 || *entry >> FIELD == key {
                    *entry = key << FIELD | rank as u64;
                    return;
                }
            }
            b = (b + 1) & mask;
        }
    }

    /// Starts loading what [`PairTable::get`] of `key` reads.
    #[inline(always)]
    fn prefetch(&self, key: u64) {
        let slot = Self::filter_slot(key);
        prefetch(&self.filter[slot >> 6]);
        prefetch(&self.buckets[self.home(key)]);
    }

    /// The rank `key`'s pair merges to (`Rank::MAX`: none). `UNLOADED`: the
    /// caller did not [`PairTable::prefetch`] it, so the bucket is asked for
    /// before the filter answers. With the text's tables around it the
    /// filter's line is often out of L2 too, and the two misses then overlap
    /// instead of following each other (merging first-seen pieces alone; +1%
    /// over eight inputs in a two-build A/B in both load orders, within the
    /// noise; see benches/RESULTS.md). After a prefetch the extra hint is
    /// left out.
    #[inline(always)]
    fn get<const UNLOADED: bool, S: MergeStep>(&self, key: u64) -> Rank {
        let slot = Self::filter_slot(key);
        let mask = self.buckets.len() - 1;
        let mut b = self.home(key);
        if UNLOADED {
            prefetch(&self.buckets[b]);
        }
        let listed = self.filter[slot >> 6] & (1 << (slot & 63)) != 0;
        // An unlisted pair reads a line with no keys instead of its bucket:
        // no branch to mispredict on the filter, and no wait for the bucket.
        let mut bucket = select_unpredictable(listed, &self.buckets[b], &NO_PAIRS);
        loop {
            let (rank, ends) = S::bucket_rank(&bucket.entries, key);
            if ends {
                return rank;
            }
            b = (b + 1) & mask;
            bucket = &self.buckets[b];
        }
    }
}

/// A merge-table bucket with no keys.
static NO_PAIRS: PairBucket = PairBucket { entries: [0; 8] };

/// Pairs of tokens mapped to a number below [`PairValues::LIMIT`], in the
/// merge table's packed form (eight to a cache line, a bit filter in
/// front): for merge lists, whose lookups ask for each pair's place in the
/// list (see `listed_merges`).
pub struct PairValues(PairTable);

impl std::fmt::Debug for PairValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairValues").field("buckets", &self.0.buckets.len()).finish_non_exhaustive()
    }
}

impl PairValues {
    /// Values must be below this (21 bits, one kept free).
    pub const LIMIT: usize = FIELD_MASK as usize;

    pub fn with_capacity(n: usize) -> Self {
        Self(PairTable::with_capacity(n))
    }

    /// Sets the value of the pair (`left`, `right`), both ids below
    /// [`MAX_TOKENS`]; a pair set again takes the later value.
    pub fn insert(&mut self, left: Rank, right: Rank, value: u32) {
        assert!((value as usize) < Self::LIMIT && (left as usize) < MAX_TOKENS && (right as usize) < MAX_TOKENS);
        self.0.insert(pair_key(left, right), value);
    }

    /// The value of the pair (`Rank::MAX`: none).
    #[inline(always)]
    pub fn get(&self, left: Rank, right: Rank) -> u32 {
        self.0.get::<true, Portable>(pair_key(left, right))
    }

    /// Starts loading what [`PairValues::get_prefetched`] of the pair reads.
    #[inline(always)]
    pub fn prefetch(&self, left: Rank, right: Rank) {
        self.0.prefetch(pair_key(left, right))
    }

    /// [`PairValues::get`] of a pair whose lookup [`PairValues::prefetch`] started.
    #[inline(always)]
    pub(super) fn get_prefetched<S: MergeStep>(&self, left: Rank, right: Rank) -> u32 {
        self.0.get::<false, S>(pair_key(left, right))
    }

    /// [`PairValues::prefetch`] by [`merge_key`].
    #[inline(always)]
    pub(super) fn prefetch_key(&self, key: u64) {
        self.0.prefetch(key)
    }

    /// [`PairValues::get`] of a pair whose lookup [`PairValues::prefetch`]
    /// (or [`PairValues::prefetch_key`]) started, by [`merge_key`].
    #[inline(always)]
    pub(super) fn get_prefetched_key<S: MergeStep>(&self, key: u64) -> u32 {
        self.0.get::<false, S>(key)
    }
}

/// The last merge of BPE on the bytes of `token` alone, when that BPE ends
/// in the token itself (None otherwise: the token is unreachable, and BPE
/// never makes it from smaller parts). Straight from the definition: parts
/// start as single bytes, and the adjacent pair spelling the lowest-ranked
/// token merges first, the leftmost on a tie.
fn canonical_split(token: &[u8], map: &TokenMap) -> Option<(Rank, Rank)> {
    // Part k is token[starts[k]..starts[k + 1]]; pair[k] is the rank of parts
    // k and k + 1 joined (Rank::MAX: not a token). Tokens are short: stack
    // arrays for them, vectors for the rare long one.
    const STACK: usize = 128;
    let n = token.len();
    let (mut starts_buf, mut pair_buf) = ([0u32; STACK + 1], [Rank::MAX; STACK]);
    let (mut starts_vec, mut pair_vec) = (Vec::new(), Vec::new());
    let (starts, pair): (&mut [u32], &mut [Rank]) = if n <= STACK {
        (&mut starts_buf[..=n], &mut pair_buf[..n - 1])
    } else {
        starts_vec.resize(n + 1, 0);
        pair_vec.resize(n - 1, Rank::MAX);
        (&mut starts_vec, &mut pair_vec)
    };
    for (k, start) in starts.iter_mut().enumerate() {
        *start = k as u32;
    }
    let span = |starts: &[u32], a: usize, b: usize| map.rank_filtered(&token[starts[a] as usize..starts[b] as usize]);
    for (k, p) in pair.iter_mut().enumerate() {
        *p = span(starts, k, k + 2);
    }
    let mut parts = n;
    loop {
        let mut best: Option<(Rank, usize)> = None;
        for (k, &r) in pair[..parts - 1].iter().enumerate() {
            if r != Rank::MAX && best.is_none_or(|(b, _)| r < b) {
                best = Some((r, k));
            }
        }
        let (_, k) = best?;
        if parts == 2 {
            return Some((span(starts, 0, 1), span(starts, 1, 2)));
        }
        starts.copy_within(k + 2..=parts, k + 1);
        pair.copy_within(k + 1..parts - 1, k);
        parts -= 1;
        if k + 1 < parts {
            pair[k] = span(starts, k, k + 2);
        }
        if k > 0 {
            pair[k - 1] = span(starts, k - 1, k + 1);
        }
    }
}

/// A hint to bring `value`'s cache line in; never faults, no other effect.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    prefetch_ptr((value as *const T).cast());
}

/// A hint to bring the cache line of address `p` in: any address, as a
/// prefetch never faults and has no other effect.
#[inline(always)]
pub fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults and has no effect
    // on the program's semantics.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Where the lines of a table whose slots are found by a hash's top bits
/// lie, for prefetching a slot from the hash alone: no bounds check and no
/// field loads, as a prefetch never faults (the encoder issues one or two for
/// every piece). `SLOT_LOG2` is log2 of a slot's size in bytes: a constant,
/// so that a prefetch's address takes no load of it.
#[derive(Clone, Copy)]
pub struct SlotLines<const SLOT_LOG2: u32> {
    base: *const u8,
    /// 64 less log2 of the slot count: the shift that leaves a hash's top
    /// bits (kept, not the count's log2, to spare the subtraction per piece).
    shift: u32,
}

/// The short-token table's lines ([`TokenMap::short_lines`]).
pub type ShortLines = SlotLines<{ size_of::<Bucket>().trailing_zeros() }>;

/// What [`SlotLines::nowhere`] prefetches: two slots of up to a line each, never read.
static NOWHERE: [Bucket; 2] = [Bucket { keys: [0; 3], ranks: [0; 3], passed: 0 }; 2];

impl<const SLOT_LOG2: u32> SlotLines<SLOT_LOG2> {
    /// `slots` a power-of-two number (at least 2) of slots of `T`, each
    /// `1 << SLOT_LOG2` bytes.
    pub fn of<T>(slots: &[T]) -> Self {
        const { assert!(size_of::<T>() == 1 << SLOT_LOG2) };
        debug_assert!(slots.len().is_power_of_two() && slots.len() > 1);
        Self { base: slots.as_ptr().cast(), shift: 64 - slots.len().trailing_zeros() }
    }

    /// Lines of a table that is not there, for a caller that prefetches
    /// without asking whether there is one: every hash names one of the
    /// two slots of [`NOWHERE`].
    pub fn nowhere() -> Self {
        const { assert!(1 << SLOT_LOG2 <= size_of::<Bucket>()) };
        Self { base: NOWHERE.as_ptr().cast(), shift: 63 }
    }

    /// The slot `hash` starts at: [`top_bits`] of the table's size.
    #[inline(always)]
    pub fn home(self, hash: u64) -> usize {
        debug_assert!((1..64).contains(&self.shift));
        (hash >> self.shift) as usize
    }

    /// Starts loading slot `home`'s line.
    #[inline(always)]
    pub fn prefetch(self, home: usize) {
        prefetch_ptr(self.base.wrapping_add(home << SLOT_LOG2));
    }
}

/// Whether the short piece packed in `key` (see [`pack`]) has a byte of
/// [`CUT_BEFORE`] or more, the only bytes a cut may go before (see
/// [`TokenMap::can_cut`]): most Latin and Cyrillic pieces have none, and are
/// spared looking for cuts byte by byte. Three word operations on the key.
#[inline(always)]
pub fn may_cut_short(key: u128) -> bool {
    // Bit 7 of each byte of `b & b << 1 & b << 2` is that byte's bits 7, 6
    // and 5 together: the byte is 0xE0 or more.
    const { assert!(CUT_BEFORE == 0xE0) };
    const HIGH: u128 = u128::from_le_bytes([0x80; 16]);
    // The piece's bytes, without the length in the top byte.
    let b = key & (u128::MAX >> 8);
    b & (b << 1) & (b << 2) & HIGH != 0
}

/// [`may_cut_short`] of a piece of any length, eight bytes at a time (for
/// pieces too long to pack: Cyrillic and Greek words often are).
#[inline]
pub fn may_cut(bytes: &[u8]) -> bool {
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut any = 0;
    for w in words.by_ref() {
        let w = u64::from_le_bytes(w.try_into().unwrap());
        any |= w & (w << 1) & (w << 2);
    }
    any & HIGH != 0 || words.remainder().iter().any(|&b| b >= CUT_BEFORE)
}

/// Maps token bytes to their rank.
pub struct TokenMap {
    short: ShortTable,
    long: FxHashMap<Vec<u8>, Rank>,
    /// One bit per [`long_filter_slot`] of the long tokens: a clear bit
    /// proves a string of 16 bytes or more is not a token without hashing all
    /// of it (16 KiB; most long pieces, runs of Chinese or Japanese, are not).
    long_filter: Vec<u64>,
    /// Rank of each single byte (`Rank::MAX` if absent).
    bytes: [Rank; 256],
    /// Rank of each two-byte string, indexed `b0 * 256 + b1` (`Rank::MAX` if absent).
    pairs: Vec<Rank>,
    /// One bit per `filter_slot` of the packed short tokens of 3 bytes or
    /// more: a clear bit proves a string is not a token without touching
    /// `short` (see [`TokenMap::rank_filtered`]).
    filter: Vec<u64>,
    merges: PairTable,
    /// One bit per rank: set when BPE on the token's bytes alone gives the
    /// token itself (every byte, and every token with a canonical split).
    self_encoding: Vec<u64>,
    /// Rank of each three-byte character (by its 16 payload bits, see
    /// [`char3_index`]) that is a token BPE makes from its bytes, `Rank::MAX`
    /// for the others: the parts that cuts leave of Chinese and Japanese
    /// pieces are mostly one such character, and this 256 KiB table answers
    /// them from L2 where the short-token table is a miss of megabytes away.
    char3: Vec<Rank>,
    /// BPE's two or three tokens for each three-byte character that `char3`
    /// has no rank for, packed (see [`pack_split`]), 0 until first asked
    /// for: in cl100k most Chinese characters are no token, and a part of
    /// one such character was a miss in the short-token table and another
    /// in the piece cache (512 KiB, zeroed when the map is made).
    char3_split: Vec<AtomicU64>,
    cuts: CutTable,
    /// Which pairs of bytes and three-byte characters start BPE as one part, and where.
    atoms: Atoms,
}

impl std::fmt::Debug for TokenMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMap")
            .field("short_buckets", &self.short.buckets.len())
            .field("long", &self.long.len())
            .finish()
    }
}

/// Where a string of one three-byte UTF-8 character (lead byte 0xE0-0xEF,
/// then two continuation bytes) is in `TokenMap::char3`: its 16 payload bits.
/// None for any other string.
#[inline(always)]
fn char3_index(bytes: &[u8]) -> Option<usize> {
    match *bytes {
        [x @ 0xE0..=0xEF, y @ 0x80..=0xBF, z @ 0x80..=0xBF] => Some(super::atoms::char3_index(x, y, z)),
        _ => None,
    }
}

/// Bits of a rank in a `TokenMap::char3_split` entry; all ones for no third token.
const SPLIT_FIELD: u32 = 21;
const SPLIT_NONE: u64 = (1 << SPLIT_FIELD) - 1;
/// Set in every filled `TokenMap::char3_split` entry.
const SPLIT_FILLED: u64 = 1 << 63;

/// A `TokenMap::char3_split` entry for two or three tokens (ranks below
/// [`MAX_TOKENS`], which is [`SPLIT_NONE`]); None for any other count.
fn pack_split(tokens: &[Rank]) -> Option<u64> {
    const { assert!(MAX_TOKENS as u64 == SPLIT_NONE && 3 * SPLIT_FIELD <= 63) };
    let (a, b, c) = match *tokens {
        [a, b] => (a, b, SPLIT_NONE),
        [a, b, c] => (a, b, c as u64),
        _ => return None,
    };
    Some(SPLIT_FILLED | a as u64 | (b as u64) << SPLIT_FIELD | c << (2 * SPLIT_FIELD))
}

/// log2 of the number of bits in `TokenMap::long_filter`.
const LONG_FILTER_BITS: u32 = 17;

/// Where a string of more than [`INLINE`] bytes is in `TokenMap::long_filter`:
/// from its length and its first and last eight bytes, two loads.
#[inline(always)]
fn long_filter_slot(bytes: &[u8]) -> usize {
    let n = bytes.len();
    debug_assert!(n > INLINE);
    let head = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let tail = u64::from_le_bytes(bytes[n - 8..].try_into().unwrap());
    let mixed = (head.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ tail ^ n as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    top_bits(mixed, LONG_FILTER_BITS)
}

/// log2 of the number of bits in `TokenMap::filter` (256 KiB: stays in L2).
const FILTER_BITS: u32 = 21;

#[inline(always)]
fn filter_slot(key: u128) -> usize {
    let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
    top_bits(folded.wrapping_mul(0x9E37_79B9_7F4A_7C15), FILTER_BITS)
}

impl TokenMap {
    /// `tokens[rank]` is the bytes of token `rank`.
    pub fn new(tokens: &[Vec<u8>]) -> Result<Self, Duplicate> {
        let n_short = tokens.iter().filter(|t| t.len() <= INLINE).count();
        let mut short = ShortTable::with_capacity(n_short);
        let mut long = FxHashMap::default();
        let mut bytes = [Rank::MAX; 256];
        let mut pairs = vec![Rank::MAX; 1 << 16];
        let mut filter = vec![0u64; 1 << (FILTER_BITS - 6)];
        let mut long_filter = vec![0u64; 1 << (LONG_FILTER_BITS - 6)];
        for (rank, token) in tokens.iter().enumerate() {
            let rank = rank as Rank;
            let previous = if token.is_empty() {
                // Not a token the encoder can ever look up; keep it out of the
                // tables (the empty key marks free slots).
                None
            } else if token.len() <= INLINE {
                let slot = filter_slot(pack(token));
                filter[slot >> 6] |= 1 << (slot & 63);
                short.insert(pack(token), rank).err()
            } else {
                let slot = long_filter_slot(token);
                long_filter[slot >> 6] |= 1 << (slot & 63);
                long.insert(token.clone(), rank)
            };
            if let Some(first) = previous {
                return Err(Duplicate { first, second: rank });
            }
            match token.as_slice() {
                [b] => bytes[*b as usize] = rank,
                [b0, b1] => pairs[(*b0 as usize) << 8 | *b1 as usize] = rank,
                _ => {}
            }
        }
        let mut map = Self {
            short,
            long,
            long_filter,
            bytes,
            pairs,
            filter,
            merges: PairTable::with_capacity(0),
            self_encoding: vec![0; tokens.len().div_ceil(64)],
            char3: vec![Rank::MAX; 1 << 16],
            char3_split: (0..1 << 16).map(|_| AtomicU64::new(0)).collect(),
            cuts: CutTable::default(),
            atoms: Atoms::default(),
        };
        // Each token's BPE is independent of the others': on all cores.
        let splits: Vec<Option<(Rank, Rank)>> = tokens
            .par_iter()
            .with_min_len(4096)
            .map(|token| if token.len() >= 2 { canonical_split(token, &map) } else { None })
            .collect();
        let mut merges = PairTable::with_capacity(tokens.len());
        for (rank, &split) in splits.iter().enumerate() {
            if let Some((left, right)) = split {
                merges.insert(pair_key(left, right), rank as Rank);
            }
            if split.is_some() || tokens[rank].len() == 1 {
                map.self_encoding[rank / 64] |= 1 << (rank % 64);
            }
            if let Some(index) = char3_index(&tokens[rank]) {
                if split.is_some() {
                    map.char3[index] = rank as Rank;
                }
            }
        }
        map.cuts = CutTable::new(tokens);
        map.merges = merges;
        map.atoms = Atoms::new(tokens, &map, &splits);
        Ok(map)
    }

    /// Which parts start BPE whole, and where (see [`Atoms`]).
    #[inline(always)]
    pub fn atoms(&self) -> &Atoms {
        &self.atoms
    }

    /// The rank of `part` when it is one three-byte character that is a token
    /// BPE makes from its bytes (what [`TokenMap::get`] and
    /// [`TokenMap::encodes_to_itself`] would say together); `Rank::MAX` otherwise.
    /// The encoder reads the table through [`TokenMap::one_character`]; this is
    /// the tests' view of it alone.
    #[cfg(test)]
    pub fn char3(&self, part: &[u8]) -> Rank {
        match char3_index(part) {
            Some(index) => self.char3[index],
            None => Rank::MAX,
        }
    }

    /// Appends BPE's tokens for `part` and says true when it is one
    /// three-byte character (the commonest part of a cut Chinese or Japanese
    /// piece); says false, having done nothing, for any other part.
    #[inline(always)]
    pub fn one_character(&self, part: &[u8], out: &mut Vec<Rank>) -> bool {
        let Some(index) = char3_index(part) else { return false };
        let rank = self.char3[index];
        if rank != Rank::MAX {
            out.push(rank);
        } else {
            self.split_character(index, part, out);
        }
        true
    }

    /// [`TokenMap::one_character`] for a character that BPE does not make
    /// one token, from `char3_split`, filled here the first time.
    #[inline(never)]
    fn split_character(&self, index: usize, part: &[u8], out: &mut Vec<Rank>) {
        let entry = self.char3_split[index].load(Relaxed);
        if entry != 0 {
            let field = |k: u32| (entry >> (k * SPLIT_FIELD) & SPLIT_NONE) as Rank;
            out.push(field(0));
            out.push(field(1));
            if entry >> (2 * SPLIT_FIELD) & SPLIT_NONE != SPLIT_NONE {
                out.push(field(2));
            }
            return;
        }
        let start = out.len();
        merge_piece(part, self, out);
        if let Some(packed) = pack_split(&out[start..]) {
            // Threads that fill it together store the same value.
            self.char3_split[index].store(packed, Relaxed);
        }
    }

    /// Whether BPE on the bytes of token `rank` alone gives that token.
    #[inline(always)]
    pub fn encodes_to_itself(&self, rank: Rank) -> bool {
        self.self_encoding.get(rank as usize / 64).is_some_and(|w| w >> (rank % 64) & 1 != 0)
    }

    /// Whether the place before byte `p` of `piece` (0 < p < len) can be cut
    /// before merging: a cut is tried there (a three- or four-byte character
    /// starts there) and no token spans it (see [`super::cuts`]).
    #[inline(always)]
    pub fn can_cut(&self, piece: &[u8], p: usize) -> bool {
        piece[p] >= CUT_BEFORE && self.pair(piece[p - 1], piece[p]) == Rank::MAX && !self.cuts.spanned(piece, p)
    }

    /// Rank of the token that BPE makes by merging parts `left` and `right`
    /// (`Rank::MAX`: BPE never merges them).
    #[inline(always)]
    pub fn merge(&self, left: Rank, right: Rank) -> Rank {
        self.merge_with::<Portable>(left, right)
    }

    /// [`TokenMap::merge`], the bucket read as `S` reads it.
    #[inline(always)]
    pub(super) fn merge_with<S: MergeStep>(&self, left: Rank, right: Rank) -> Rank {
        self.merges.get::<true, S>(pair_key(left, right))
    }

    /// [`TokenMap::merge`] of parts whose lookup [`TokenMap::prefetch_merge`] started.
    #[inline(always)]
    pub(super) fn merge_prefetched<S: MergeStep>(&self, left: Rank, right: Rank) -> Rank {
        self.merges.get::<false, S>(pair_key(left, right))
    }

    /// Starts loading what [`TokenMap::merge`] of these parts reads.
    #[inline(always)]
    pub fn prefetch_merge(&self, left: Rank, right: Rank) {
        self.merges.prefetch(pair_key(left, right))
    }

    /// [`TokenMap::prefetch_merge`] by [`merge_key`].
    #[inline(always)]
    pub(super) fn prefetch_merge_key(&self, key: u64) {
        self.merges.prefetch(key)
    }

    /// [`TokenMap::merge_prefetched`] by [`merge_key`].
    #[inline(always)]
    pub(super) fn merge_prefetched_key<S: MergeStep>(&self, key: u64) -> Rank {
        self.merges.get::<false, S>(key)
    }

    #[inline(always)]
    pub fn get(&self, token: &[u8]) -> Option<Rank> {
        if token.len() <= INLINE {
            if token.is_empty() {
                return None;
            }
            let key = pack(token);
            self.short.get(key, key_hash(key))
        } else {
            self.get_long(token)
        }
    }

    /// Rank of the short token with packed key `key` and `hash ==
    /// key_hash(key)` (computed ahead, e.g. to [`TokenMap::prefetch`]).
    #[inline(always)]
    pub fn get_short(&self, key: u128, hash: u64) -> Option<Rank> {
        self.short.get(key, hash)
    }

    /// Where the short token of `hash == key_hash(key)` is looked for first
    /// (for [`TokenMap::get_short_at`]).
    #[inline(always)]
    pub fn short_home(&self, hash: u64) -> usize {
        self.short.home(hash)
    }

    /// The short-token table's lines, for [`SlotLines::home`] (equal to
    /// [`TokenMap::short_home`]) and prefetching the line
    /// [`TokenMap::get_short_at`] reads.
    pub fn short_lines(&self) -> ShortLines {
        ShortLines::of(&self.short.buckets)
    }

    /// The ranks of the short pieces `keys`, at their [`TokenMap::short_home`]s
    /// `homes`, pushed to `out` up to the first that is no short token (or
    /// has no key, 0); returns how many were pushed.
    #[inline(always)]
    pub fn short_ranks_while_tokens(&self, keys: &[u128], homes: &[u64], out: &mut Vec<Rank>) -> usize {
        self.short.ranks_while_tokens(keys, homes, out)
    }

    /// [`TokenMap::get_short`] from the key's [`TokenMap::short_home`].
    #[inline(always)]
    pub fn get_short_at(&self, key: u128, home: usize) -> Option<Rank> {
        self.short.get_at(key, home)
    }

    /// Rank of a token longer than 15 bytes (None for any shorter string).
    #[inline]
    pub fn get_long(&self, token: &[u8]) -> Option<Rank> {
        if token.len() <= INLINE {
            return None;
        }
        let slot = long_filter_slot(token);
        if self.long_filter[slot >> 6] & (1 << (slot & 63)) == 0 {
            return None;
        }
        self.long.get(token).copied()
    }

    /// Rank of `token`, `Rank::MAX` if it is not one.
    #[inline(always)]
    pub fn rank(&self, token: &[u8]) -> Rank {
        match token.len() {
            1 => self.bytes[token[0] as usize],
            2 => self.pairs[(token[0] as usize) << 8 | token[1] as usize],
            _ => self.get(token).unwrap_or(Rank::MAX),
        }
    }

    /// Same as [`TokenMap::rank`], for lookups that mostly miss in a table
    /// too big for the cache (merging a megabyte piece): a 256 KiB bit
    /// filter answers most misses before the hash table is probed.
    #[inline(always)]
    pub fn rank_filtered(&self, token: &[u8]) -> Rank {
        match token.len() {
            1 => self.bytes[token[0] as usize],
            2 => self.pairs[(token[0] as usize) << 8 | token[1] as usize],
            n if n <= INLINE => {
                let key = pack(token);
                let slot = filter_slot(key);
                if self.filter[slot >> 6] & (1 << (slot & 63)) == 0 {
                    return Rank::MAX;
                }
                self.short.get(key, key_hash(key)).unwrap_or(Rank::MAX)
            }
            _ => self.get_long(token).unwrap_or(Rank::MAX),
        }
    }

    #[inline(always)]
    pub fn byte(&self, b: u8) -> Rank {
        self.bytes[b as usize]
    }

    #[inline(always)]
    pub fn pair(&self, b0: u8, b1: u8) -> Rank {
        self.pairs[(b0 as usize) << 8 | b1 as usize]
    }

    /// The first byte value that is not a token, if any.
    pub fn missing_byte(&self) -> Option<u8> {
        (0..=255u8).find(|&b| self.bytes[b as usize] == Rank::MAX)
    }
}

#[cfg(test)]
impl TokenMap {
    /// For tests: the 256 single bytes (ranks 0-255), then `tokens` in rank order.
    pub fn after_bytes(tokens: &[&[u8]]) -> Self {
        let mut all: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        all.extend(tokens.iter().map(|t| t.to_vec()));
        Self::new(&all).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 256 single bytes, then distinct strings of `lengths` bytes from
    /// `alphabet`, drawn with `next`, up to `n` tokens in all.
    fn random_tokens(
        next: &mut impl FnMut() -> u64,
        n: usize,
        lengths: std::ops::Range<usize>,
        alphabet: &[u8],
    ) -> Vec<Vec<u8>> {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut seen: std::collections::HashSet<Vec<u8>> = tokens.iter().cloned().collect();
        while tokens.len() < n {
            let len = lengths.start + (next() % lengths.len() as u64) as usize;
            let token: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            if seen.insert(token.clone()) {
                tokens.push(token);
            }
        }
        tokens
    }

    /// The encoder prefetches through `SlotLines` and probes from
    /// `short_home`: both must name the same bucket, and a probe from there
    /// must find every short token (tables of several sizes).
    #[test]
    fn slot_lines_name_the_bucket_a_lookup_starts_at() {
        let mut next = crate::test_rng::xorshift(0x0005_1071_14e5);
        for n in [300usize, 5_000, 70_000] {
            let tokens = random_tokens(&mut next, n, 2..16, b"abcdefghijklmnopqrstuvwxyz");
            let map = TokenMap::new(&tokens).unwrap();
            let lines = map.short_lines();
            for _ in 0..10_000 {
                let hash = next();
                assert_eq!(lines.home(hash), map.short_home(hash));
            }
            for (rank, token) in tokens.iter().enumerate() {
                let key = short_key(token).unwrap();
                assert_eq!(map.get_short_at(key, lines.home(key_hash(key))), Some(rank as Rank));
            }
        }
    }

    /// `may_cut` says exactly whether a byte of a piece of any length is
    /// `CUT_BEFORE` or more (every byte value, at every place, lengths to 39).
    #[test]
    fn may_cut_finds_exactly_the_bytes_a_cut_may_precede() {
        for len in 0..40 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut piece = vec![b'a'; len];
                    piece[at] = b;
                    assert_eq!(may_cut(&piece), b >= CUT_BEFORE, "{len} {at} {b:#x}");
                }
            }
        }
    }

    /// `may_cut_short` on a packed key says exactly whether a byte of the piece is
    /// `CUT_BEFORE` or more (every byte value, at every place, every length).
    #[test]
    fn may_cut_short_finds_exactly_the_bytes_a_cut_may_precede() {
        let mut next = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1d);
        for len in 1..=15 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    // Filler bytes just below the threshold, with every low bit set.
                    let mut piece: Vec<u8> = (0..len).map(|_| (next() % 0xE0) as u8).collect();
                    piece[at] = byte;
                    let key = short_key(&piece).unwrap();
                    assert_eq!(may_cut_short(key), piece.iter().any(|&b| b >= CUT_BEFORE), "{piece:?}");
                }
            }
        }
        assert!(!may_cut_short(short_key(&[0xDF; 15]).unwrap()) && may_cut_short(short_key(&[0xE0]).unwrap()));
    }

    #[test]
    fn pack_is_bytes_padding_and_length() {
        let data: Vec<u8> = (1..=15).collect();
        for n in 0..=15 {
            let mut buf = [0u8; 16];
            buf[..n].copy_from_slice(&data[..n]);
            buf[15] = n as u8;
            assert_eq!(pack(&data[..n]), u128::from_le_bytes(buf), "length {n}");
        }
    }

    #[test]
    fn keys_in_a_text_equal_packed_keys() {
        let text: Vec<u8> = (0..40u8).map(|b| b.wrapping_mul(37).wrapping_add(1)).collect();
        for start in 0..text.len() {
            for end in start..=text.len() {
                let piece = &text[start..end];
                assert_eq!(
                    short_key_at(&text, start, end),
                    short_key(piece).filter(|_| !piece.is_empty()),
                    "{start}..{end}"
                );
            }
        }
        // A place that is no piece of the text has no key.
        assert_eq!(short_key_at(&text, 30, 29), None);
        assert_eq!(short_key_at(&text, 38, 41), None);
        assert_eq!(short_key_at(&text, 50, 52), None);
    }

    #[test]
    fn short_long_and_small_lookups() {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        tokens.push(b"ab".to_vec());
        tokens.push(b"fifteen-bytes!!".to_vec());
        tokens.push(b"sixteen-bytes!!!".to_vec());
        let m = TokenMap::new(&tokens).unwrap();
        assert_eq!(m.get(b"a"), Some(97));
        assert_eq!(m.rank(b"ab"), 256);
        assert_eq!(m.pair(b'a', b'b'), 256);
        assert_eq!(m.pair(b'b', b'a'), Rank::MAX);
        assert_eq!(m.get(b"fifteen-bytes!!"), Some(257));
        assert_eq!(m.get(b"sixteen-bytes!!!"), Some(258));
        assert_eq!(m.get(b"fifteen-bytes!"), None);
        assert_eq!(m.rank(b"abc"), Rank::MAX);
        assert_eq!(m.missing_byte(), None);
        tokens.push(b"ab".to_vec());
        assert_eq!(TokenMap::new(&tokens).unwrap_err(), Duplicate { first: 256, second: 259 });
    }

    /// Long tokens are found through their filter, and strings that are
    /// not tokens are not, including ones that share a token's length, first
    /// and last eight bytes (the filter cannot tell those apart).
    #[test]
    fn long_tokens_are_found_and_only_they() {
        let mut next = crate::test_rng::xorshift(0x0010_4e57);
        let tokens = random_tokens(&mut next, 6000, 16..64, b"ab\xe6\x97");
        let m = TokenMap::new(&tokens).unwrap();
        for (rank, t) in tokens.iter().enumerate().skip(256) {
            assert_eq!(m.get_long(t), Some(rank as Rank));
            assert_eq!(m.get(t), Some(rank as Rank));
            assert_eq!(m.rank_filtered(t), rank as Rank);
            // The same ends and length, another middle: no token unless it is one.
            let mut other = t.clone();
            other[8] = if other[8] == b'a' { b'b' } else { b'a' };
            let expected = tokens.iter().position(|x| *x == other).map(|r| r as Rank);
            assert_eq!(m.get_long(&other), expected);
            assert_eq!(m.get_long(&t[1..]), tokens.iter().position(|x| *x == t[1..]).map(|r| r as Rank));
        }
        for short in [&b""[..], b"a", b"abcdefgh", b"fifteen-bytes!!"] {
            assert_eq!(m.get_long(short), None);
        }
    }

    /// At three quarters full (the most the sizing allows), where probes run
    /// over several buckets: every short token is found, and strings that
    /// are not tokens are not, whether their probe ends at once or goes on.
    #[test]
    fn a_full_table_finds_its_tokens_and_nothing_else() {
        let mut next = crate::test_rng::xorshift(0x0f0_11ed);
        // 9216 short tokens: 4096 buckets of three, 75% full.
        let tokens = random_tokens(&mut next, 9216, 2..12, b"abcdefgh");
        let m = TokenMap::new(&tokens).unwrap();
        assert_eq!(m.short.buckets.len(), 4096);
        let passed = m.short.buckets.iter().filter(|b| b.passed != 0).count();
        assert!(passed > 400, "{passed} buckets passed");
        for (rank, t) in tokens.iter().enumerate() {
            assert_eq!(m.get(t), Some(rank as Rank), "{t:?}");
        }
        let (mut misses, mut long_misses) = (0, 0);
        for _ in 0..50_000 {
            let len = 2 + (next() % 10) as usize;
            let s: Vec<u8> = (0..len).map(|_| b"abcdefghi"[(next() % 9) as usize]).collect();
            let expected = tokens.iter().position(|t| *t == s).map(|r| r as Rank);
            assert_eq!(m.get(&s), expected, "{s:?}");
            if expected.is_none() {
                misses += 1;
                let key = short_key(&s).unwrap();
                long_misses += usize::from(m.short.buckets[m.short_home(key_hash(key))].passed != 0);
            }
        }
        assert!(misses > 10_000 && long_misses > 1_000, "{misses} misses, {long_misses} past their home");
    }

    /// The batch loop's lookups stop at the first piece that is no short
    /// token or has no key (0), after pushing exactly the ranks before it,
    /// on a table full enough that probes pass their home bucket.
    #[test]
    fn ranks_while_tokens_stop_at_the_first_piece_that_is_no_token() {
        let mut next = crate::test_rng::xorshift(0x7_0ce5);
        let tokens = random_tokens(&mut next, 9216, 2..12, b"abcdefgh");
        let m = TokenMap::new(&tokens).unwrap();
        let rank_of: std::collections::HashMap<&[u8], Rank> =
            tokens.iter().enumerate().map(|(r, t)| (t.as_slice(), r as Rank)).collect();
        for _ in 0..3_000 {
            let n = (next() % 40) as usize;
            let (mut keys, mut homes, mut expected, mut stop) = (Vec::new(), Vec::new(), Vec::new(), None);
            for k in 0..n {
                let key = match next() % 8 {
                    // A piece too long for a key.
                    0 => 0,
                    // Mostly tokens; otherwise a string that may be one.
                    1 | 2 => {
                        let len = 2 + (next() % 10) as usize;
                        pack(&(0..len).map(|_| b"abcdefghi"[(next() % 9) as usize]).collect::<Vec<u8>>())
                    }
                    _ => pack(&tokens[(next() % tokens.len() as u64) as usize]),
                };
                let rank = (key != 0).then(|| rank_of.get(unpack(key).as_slice()).copied()).flatten();
                match (rank, stop) {
                    (Some(rank), None) => expected.push(rank),
                    (None, None) => stop = Some(k),
                    _ => {}
                }
                keys.push(key);
                homes.push(if key == 0 { next() } else { m.short_home(key_hash(key)) as u64 });
            }
            let mut out = vec![7, 8];
            let done = m.short_ranks_while_tokens(&keys, &homes, &mut out);
            assert_eq!(done, stop.unwrap_or(n));
            assert_eq!(out[..2], [7, 8]);
            assert_eq!(out[2..], expected);
        }
    }

    /// The bytes packed in `key` (see [`pack`]).
    fn unpack(key: u128) -> Vec<u8> {
        key.to_le_bytes()[..(key >> 120) as usize].to_vec()
    }

    #[test]
    fn filtered_rank_equals_rank() {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut rng = crate::test_rng::xorshift(7);
        let mut next = move || (rng() >> 33) as u8;
        let mut strings: Vec<Vec<u8>> = Vec::new();
        for k in 0..20_000usize {
            let len = 1 + k % 20;
            strings.push((0..len).map(|_| b"abcd"[next() as usize % 4]).collect());
        }
        for s in &strings[..10_000] {
            if !tokens.contains(s) && s.len() > 1 && tokens.len() < 3000 {
                tokens.push(s.clone());
            }
        }
        let m = TokenMap::new(&tokens).unwrap();
        for s in tokens.iter().chain(&strings) {
            assert_eq!(m.rank_filtered(s), m.rank(s), "{s:?}");
        }
    }
}
