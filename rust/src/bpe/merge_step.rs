//! One step of the quadratic merge (the lowest pair of a piece's parts
//! merged, the arrays closed up, the new part's pair ranks set), on the
//! sixteen-part arrays of the one-piece merge and of both kinds of lanes
//! (by rank in `merge`, by merge list in `listed_merges`).
//!
//! The portable step indexes the arrays entry by entry, and compiled for
//! x86-64-v3 the close-up became masked stores (`vpmaskmovd`), which AMD's
//! cores run as many micro-ops, followed by loads of the lines just stored.
//! [`Avx2`] does each step in registers (a lane permute and blends) and
//! writes whole vectors back. Same results: the tests run both.
//!
//! The step's two lookups read a merge-table bucket of eight entries each:
//! [`MergeStep::bucket_rank`] compares the eight keys with two vector
//! compares on AVX2, where the portable scan is a chain of eight selects
//! (fewer instructions in every merge's chain; see benches/RESULTS.md).

use std::hint::select_unpredictable;

use super::vocab::{Rank, FIELD, FIELD_MASK};

/// How a merge step, and the merge-table reads it makes, are done: the
/// callers are generic over it, so that the x86-64-v3 copies inline
/// [`Avx2`] and the portable ones [`Portable`].
/// Parts `0..parts` are live; `pair[k]` is what parts `k` and `k + 1` merge
/// to (a rank, or a place in a merge list; `Rank::MAX`: they never merge),
/// and is `Rank::MAX` from the last part on.
pub(super) trait MergeStep {
    /// The lowest of `pair[..parts]` and its first position; None when
    /// no pair merges.
    fn lowest<const N: usize>(pair: &[Rank; N], parts: usize) -> Option<(Rank, usize)>;

    /// Part `at + 1` merged into part `at`, which becomes `new`: the parts
    /// after it move down one place in both arrays. The pairs the new part
    /// makes with its neighbours (entries `at - 1` and `at`) are the
    /// caller's to set.
    fn join<const N: usize>(ids: &mut [Rank; N], pair: &mut [Rank; N], parts: &mut usize, at: usize, new: Rank);

    /// Sets `pair[at] = right` and, for `at > 0`, `pair[at - 1] = left`.
    fn set_pairs<const N: usize>(pair: &mut [Rank; N], at: usize, left: Rank, right: Rank);

    /// The rank in the merge-table bucket `entries` of the pair whose key
    /// is `key` (`Rank::MAX`: none there), and whether a probe for it ends
    /// at this bucket: it is there, or the bucket has a free entry (buckets
    /// fill in probe order, and their entries from the first); see
    /// `vocab::PairBucket`.
    fn bucket_rank(entries: &[u64; 8], key: u64) -> (Rank, bool);
}

/// Entry by entry, for any CPU.
pub(super) struct Portable;

impl MergeStep for Portable {
    #[inline(always)]
    fn lowest<const N: usize>(pair: &[Rank; N], parts: usize) -> Option<(Rank, usize)> {
        lowest_in(&pair[..parts])
    }

    #[inline(always)]
    fn join<const N: usize>(ids: &mut [Rank; N], pair: &mut [Rank; N], parts: &mut usize, at: usize, new: Rank) {
        ids[at] = new;
        close_up(ids, at);
        close_up(pair, at);
        *parts -= 1;
        pair[*parts] = Rank::MAX;
    }

    #[inline(always)]
    fn set_pairs<const N: usize>(pair: &mut [Rank; N], at: usize, left: Rank, right: Rank) {
        pair[at] = right;
        if at > 0 {
            pair[at - 1] = left;
        }
    }

    #[inline(always)]
    fn bucket_rank(entries: &[u64; 8], key: u64) -> (Rank, bool) {
        let mut rank = Rank::MAX;
        for &entry in entries {
            rank = select_unpredictable(entry >> FIELD == key, (entry & FIELD_MASK) as Rank, rank);
        }
        (rank, rank != Rank::MAX || entries[7] == 0)
    }
}

/// The lowest of `pair` that is not `Rank::MAX` and its first position
/// (None: all are MAX), over a slice of any length (a merge list's long
/// pieces use it too). Two passes (the lowest, then its position)
/// vectorize, unlike one pass carrying both.
#[inline(always)]
pub(super) fn lowest_in(pair: &[Rank]) -> Option<(Rank, usize)> {
    let best = pair.iter().copied().min().filter(|&r| r != Rank::MAX)?;
    Some((best, pair.iter().position(|&r| r == best).unwrap_or(0)))
}

/// Moves every entry after `at + 1` one place down (dropping entry `at + 1`,
/// the part merged into part `at`), over the whole array: a few vector
/// selects instead of a call to `memmove` for a handful of entries. Entries
/// past the live parts move too, harmlessly.
#[inline(always)]
fn close_up<const N: usize>(a: &mut [Rank; N], at: usize) {
    let old = *a;
    for i in 0..N - 1 {
        a[i] = if i > at { old[i + 1] } else { old[i] };
    }
}

/// In AVX2 registers, for arrays of sixteen entries (others go the portable
/// way). Only for code compiled with AVX2 enabled (the x86-64-v3 copies,
/// chosen at run time by `crate::cpu::x86_v3`).
#[cfg(target_arch = "x86_64")]
pub(super) struct Avx2;

/// `a` as an array of sixteen, for `N == 16`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sixteen<const N: usize>(a: &mut [Rank; N]) -> &mut [Rank; 16] {
    assert!(N == 16);
    // SAFETY: N is 16, so the cast keeps the array's size and alignment.
    unsafe { &mut *(a as *mut [Rank; N]).cast() }
}

#[cfg(target_arch = "x86_64")]
impl MergeStep for Avx2 {
    #[inline(always)]
    fn lowest<const N: usize>(pair: &[Rank; N], parts: usize) -> Option<(Rank, usize)> {
        if N != 16 {
            return Portable::lowest(pair, parts);
        }
        // SAFETY: N is 16 (the cast keeps the size); this type is used only
        // in code compiled for, and run on, CPUs with AVX2.
        unsafe { avx2::lowest(&*(pair as *const [Rank; N]).cast()) }
    }

    #[inline(always)]
    fn join<const N: usize>(ids: &mut [Rank; N], pair: &mut [Rank; N], parts: &mut usize, at: usize, new: Rank) {
        if N != 16 {
            return Portable::join(ids, pair, parts, at, new);
        }
        // SAFETY: as in `lowest`.
        unsafe { avx2::join(sixteen(ids), sixteen(pair), at, new) };
        *parts -= 1;
    }

    #[inline(always)]
    fn set_pairs<const N: usize>(pair: &mut [Rank; N], at: usize, left: Rank, right: Rank) {
        if N != 16 {
            return Portable::set_pairs(pair, at, left, right);
        }
        // SAFETY: as in `lowest`.
        unsafe { avx2::set_pairs(sixteen(pair), at, left, right) }
    }

    #[inline(always)]
    fn bucket_rank(entries: &[u64; 8], key: u64) -> (Rank, bool) {
        // SAFETY: as in `lowest`.
        unsafe { avx2::bucket_rank(entries, key) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::hint::select_unpredictable;

    use super::{Rank, FIELD, FIELD_MASK};

    /// The eight entries' keys compared at once (keys are never 0, so a
    /// free entry never matches, and no key is in a bucket twice).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn bucket_rank(entries: &[u64; 8], key: u64) -> (Rank, bool) {
        // SAFETY: two unaligned loads of 4 entries each, within the array.
        let (lo, hi) = unsafe {
            (_mm256_loadu_si256(entries.as_ptr().cast()), _mm256_loadu_si256(entries.as_ptr().add(4).cast()))
        };
        let want = _mm256_set1_epi64x((key << FIELD) as i64);
        let keys = _mm256_set1_epi64x(!FIELD_MASK as i64);
        let hits = |v: __m256i| {
            let eq = _mm256_cmpeq_epi64(_mm256_and_si256(v, keys), want);
            _mm256_movemask_pd(_mm256_castsi256_pd(eq)) as u32
        };
        let found = hits(lo) | hits(hi) << 4;
        let entry = entries[(found.trailing_zeros() & 7) as usize];
        // Free entries among the last four: with `found`, whether the probe
        // ends here as one value, so one branch. Tested apart, whether the
        // bucket was full (about half are) was a coin toss to predict: a
        // seventh of the lanes' mispredicted branches, by callgrind.
        let free = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(hi, _mm256_setzero_si256()))) as u32;
        (select_unpredictable(found != 0, (entry & FIELD_MASK) as Rank, Rank::MAX), found | free != 0)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load(a: &[Rank; 16]) -> (__m256i, __m256i) {
        // SAFETY: two unaligned loads of 8 entries each, within the array.
        unsafe { (_mm256_loadu_si256(a.as_ptr().cast()), _mm256_loadu_si256(a.as_ptr().add(8).cast())) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn store(a: &mut [Rank; 16], (lo, hi): (__m256i, __m256i)) {
        // SAFETY: two unaligned stores of 8 entries each, within the array.
        unsafe {
            _mm256_storeu_si256(a.as_mut_ptr().cast(), lo);
            _mm256_storeu_si256(a.as_mut_ptr().add(8).cast(), hi);
        }
    }

    /// Each entry's index, in its lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn indices() -> (__m256i, __m256i) {
        (_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15))
    }

    /// Lanes where the entry's index equals `k` (none for k > 15).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn index_is(k: usize) -> (__m256i, __m256i) {
        let k = _mm256_set1_epi32(k.min(255) as i32);
        let (lo, hi) = indices();
        (_mm256_cmpeq_epi32(lo, k), _mm256_cmpeq_epi32(hi, k))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn select(mask: (__m256i, __m256i), yes: (__m256i, __m256i), no: (__m256i, __m256i)) -> (__m256i, __m256i) {
        (_mm256_blendv_epi8(no.0, yes.0, mask.0), _mm256_blendv_epi8(no.1, yes.1, mask.1))
    }

    /// Entry `i` moved to `i - 1` for every `i > at + 1` (see `close_up`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn close_up((lo, hi): (__m256i, __m256i), after: __m256i) -> (__m256i, __m256i) {
        // Each half rotated down by one entry; the high half's first entry
        // fills the low half's last, and the array's last becomes MAX.
        let down = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
        let (rlo, rhi) = (_mm256_permutevar8x32_epi32(lo, down), _mm256_permutevar8x32_epi32(hi, down));
        let next_lo = _mm256_blend_epi32::<0x80>(rlo, rhi);
        let next_hi = _mm256_blend_epi32::<0x80>(rhi, _mm256_set1_epi32(-1));
        let (index_lo, index_hi) = indices();
        let moved = (_mm256_cmpgt_epi32(index_lo, after), _mm256_cmpgt_epi32(index_hi, after));
        select(moved, (next_lo, next_hi), (lo, hi))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn lowest(pair: &[Rank; 16]) -> Option<(Rank, usize)> {
        let (lo, hi) = load(pair);
        // Each entry as its rank above its index, so that the minimum is the
        // lowest rank at its first position, with no search for it after
        // (ranks and places are merge-table fields, below 2^21, so none
        // loses a bit, and MAX stays above every rank; checked here).
        const { assert!(FIELD_MASK < (Rank::MAX >> 4) as u64) };
        let (index_lo, index_hi) = indices();
        let lo = _mm256_or_si256(_mm256_slli_epi32::<4>(lo), index_lo);
        let hi = _mm256_or_si256(_mm256_slli_epi32::<4>(hi), index_hi);
        // The minimum of the sixteen, in every lane (entries from the last
        // part on are MAX, so the whole array can be scanned).
        let mut m = _mm256_min_epu32(lo, hi);
        m = _mm256_min_epu32(m, _mm256_permute2x128_si256::<1>(m, m));
        m = _mm256_min_epu32(m, _mm256_shuffle_epi32::<0b01_00_11_10>(m));
        m = _mm256_min_epu32(m, _mm256_shuffle_epi32::<0b10_11_00_01>(m));
        let low = _mm256_cvtsi256_si32(m) as u32;
        if low >= Rank::MAX << 4 {
            return None;
        }
        Some((low >> 4, (low & 15) as usize))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn join(ids: &mut [Rank; 16], pair: &mut [Rank; 16], at: usize, new: Rank) {
        let after = _mm256_set1_epi32(at as i32);
        let new = _mm256_set1_epi32(new as i32);
        store(ids, select(index_is(at), (new, new), close_up(load(ids), after)));
        // The last entry that moves down leaves MAX behind it, as the pair
        // after the last part is.
        store(pair, close_up(load(pair), after));
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn set_pairs(pair: &mut [Rank; 16], at: usize, left: Rank, right: Rank) {
        let (r, l) = (_mm256_set1_epi32(right as i32), _mm256_set1_epi32(left as i32));
        let v = select(index_is(at), (r, r), load(pair));
        // at - 1 wraps to usize::MAX at 0, which no entry's index equals.
        store(pair, select(index_is(at.wrapping_sub(1)), (l, l), v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpe::vocab::MAX_TOKENS;
    use crate::test_rng::xorshift;

    /// Random arrays as a merge holds them: `parts` live parts, pair ranks
    /// with ties, MAX for pairs that never merge and from the last part on.
    /// Ranks are low or up by the largest a vocabulary has (the AVX2
    /// minimum packs each rank above its index).
    fn random_state(next: &mut impl FnMut() -> u64) -> ([Rank; 16], [Rank; 16], usize) {
        let parts = 1 + (next() % 16) as usize;
        let mut ids = [Rank::MAX; 16];
        let mut pair = [Rank::MAX; 16];
        let lowest = if next() % 2 == 0 { 0 } else { MAX_TOKENS as Rank - 8 };
        for k in 0..parts {
            ids[k] = (next() % 1000) as Rank;
            if k + 1 < parts && next() % 4 != 0 {
                pair[k] = lowest + (next() % 8) as Rank;
            }
        }
        (ids, pair, parts)
    }

    /// `S`'s steps against the portable ones on random arrays.
    fn steps_equal_portable_steps<S: MergeStep>() {
        let mut next = xorshift(7);
        for _ in 0..20_000 {
            let (mut ids, mut pair, mut parts) = random_state(&mut next);
            let (mut ids2, mut pair2, mut parts2) = (ids, pair, parts);
            let low = Portable::lowest(&pair, parts);
            assert_eq!(low, S::lowest(&pair, parts));
            let Some((_, at)) = low else { continue };
            let new = (next() % 1000) as Rank;
            Portable::join(&mut ids, &mut pair, &mut parts, at, new);
            S::join(&mut ids2, &mut pair2, &mut parts2, at, new);
            assert_eq!((&ids[..parts], pair, parts), (&ids2[..parts2], pair2, parts2), "join at {at}");
            let (left, right) = ((next() % 50) as Rank, (next() % 50) as Rank);
            Portable::set_pairs(&mut pair, at, left, right);
            S::set_pairs(&mut pair2, at, left, right);
            assert_eq!(pair, pair2, "set_pairs at {at}");
        }
    }

    /// `S`'s bucket scan against the portable one, on merge-table buckets
    /// as the table fills them (keys from the front, free entries 0 after
    /// them), with keys that differ in one bit only from those asked for,
    /// in either field.
    fn bucket_scan_equals_portable_scan<S: MergeStep>() {
        let mut next = xorshift(11);
        let mut found = 0;
        for _ in 0..20_000 {
            let mut entries = [0u64; 8];
            let filled = (next() % 9) as usize;
            for entry in &mut entries[..filled] {
                let key = 1 + next() % 64 << FIELD | next() % 64;
                *entry = key << FIELD | next() & FIELD_MASK;
            }
            let key = match next() % 3 {
                0 if filled > 0 => entries[(next() % filled as u64) as usize] >> FIELD,
                1 => (1 + next() % 64 << FIELD | next() % 64) ^ 1 << (next() % 42),
                _ => 1 + next() % 64 << FIELD | next() % 64,
            };
            // A key is in a bucket once: the table replaces its entry.
            if (0..filled).any(|i| (i + 1..filled).any(|j| entries[i] >> FIELD == entries[j] >> FIELD)) {
                continue;
            }
            let (rank, ends) = Portable::bucket_rank(&entries, key);
            found += usize::from(rank != Rank::MAX);
            assert_eq!(ends, rank != Rank::MAX || filled < 8);
            assert_eq!((rank, ends), S::bucket_rank(&entries, key), "{entries:x?} {key:x}");
        }
        assert!(found > 5_000, "too few keys found ({found}) to test the match");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_steps_equal_portable_steps() {
        if !crate::cpu::x86_v3() {
            eprintln!("skipped: this CPU runs the portable copies");
            return;
        }
        steps_equal_portable_steps::<Avx2>();
        bucket_scan_equals_portable_scan::<Avx2>();
    }

    /// The checks above fail on a step that is wrong in one entry.
    #[test]
    fn step_check_fails_on_a_wrong_step() {
        struct OffByOne;
        impl MergeStep for OffByOne {
            fn lowest<const N: usize>(pair: &[Rank; N], parts: usize) -> Option<(Rank, usize)> {
                Portable::lowest(pair, parts)
            }
            fn join<const N: usize>(
                ids: &mut [Rank; N],
                pair: &mut [Rank; N],
                parts: &mut usize,
                at: usize,
                new: Rank,
            ) {
                Portable::join(ids, pair, parts, at, new)
            }
            fn set_pairs<const N: usize>(pair: &mut [Rank; N], at: usize, left: Rank, right: Rank) {
                // The pair before a merge at 1 (the first one) not set.
                Portable::set_pairs(pair, at, if at == 1 { pair[0] } else { left }, right)
            }
            fn bucket_rank(entries: &[u64; 8], key: u64) -> (Rank, bool) {
                Portable::bucket_rank(entries, key)
            }
        }
        assert!(std::panic::catch_unwind(steps_equal_portable_steps::<OffByOne>).is_err());
    }
}
