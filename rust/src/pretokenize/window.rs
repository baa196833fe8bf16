//! 64-byte windows of the text classified into class bitmasks (bit `k` of a
//! mask is the window's byte `k`), from the ASCII classes and the cased
//! letters of two bytes (see [`two_byte_letters`]): the scanners' fast paths find most
//! pieces' ends with a few shifts and trailing-zero counts instead of a
//! branch per byte. A window is classified once and serves every piece that
//! starts in it and ends inside it; a piece that may run past its end moves
//! the window to the piece's start.

use super::classes;

/// Where a fast path left a piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The piece ends at this byte of the text.
    End(usize),
    /// The piece may run past the window: move the window to its start.
    More,
    /// A byte of 0x80 or more (or a shape the fast path does not know) may
    /// decide the piece: the scanner's general code does.
    General,
}

/// The classes of up to 64 bytes of text from `base`, and what a scanner
/// needs besides them (`extra`: nothing for most).
pub struct Window<X = ()> {
    /// Offset of the window's first byte in the text.
    pub base: usize,
    /// Bytes of the text in the window (64 unless the text ends in it).
    pub len: usize,
    /// Whether the text ends in the window or right after it: then a run
    /// that reaches `len` reaches the end of the text.
    pub last: bool,
    /// `[A-Za-z]`, and both bytes of each cased two-byte letter.
    pub letter: u64,
    /// `[a-z]`, and both bytes of each lower-case two-byte letter.
    pub lower: u64,
    /// `[A-Z]`, and both bytes of each upper-case two-byte letter.
    pub upper: u64,
    /// `[0-9]`
    pub digit: u64,
    /// `[\t\n\x0b\x0c\r ]`, the ASCII `\s`.
    pub space: u64,
    /// `[\r\n]`
    pub newline: u64,
    /// Bytes of 0x80 or more but those of the two-byte letters above:
    /// what the window's classes do not decide.
    pub high: u64,
    /// The ASCII `[^\s\p{L}\p{N}]`.
    pub other: u64,
    /// `' '`
    pub blank: u64,
    /// `'\''`
    pub apostrophe: u64,
    /// `'/'`
    pub slash: u64,
    /// What the scanner needs besides these (see [`WindowExtra`]).
    pub extra: X,
}

/// Masks that only some scanners need, made beside a window's own from the
/// same bytes (so the windows of the others cost nothing more).
pub trait WindowExtra: Sized {
    /// From the window's bytes (padded with zeros), which of them are text
    /// (`valid`), its ASCII letters and its whitespace.
    fn make(chunk: &[u8; 64], valid: u64, ascii_letter: u64, space: u64) -> Self;
}

impl WindowExtra for () {
    #[inline(always)]
    fn make(_: &[u8; 64], _: u64, _: u64, _: u64) -> Self {}
}

/// What DeepSeek V3's word split tells apart beyond the common classes.
pub struct Controls {
    /// `[A-Za-z]` alone (`letter` has the two-byte letters too).
    pub ascii_letter: u64,
    /// The ASCII controls that are not whitespace: the part of `other` that is
    /// no punctuation or symbol.
    pub control: u64,
}

impl WindowExtra for Controls {
    #[inline(always)]
    fn make(chunk: &[u8; 64], valid: u64, ascii_letter: u64, space: u64) -> Self {
        let mut control = 0u64;
        // A loop the compiler turns into vector compares.
        for (k, &b) in chunk.iter().enumerate() {
            control |= u64::from(b < 0x20 || b == 0x7F) << k;
        }
        Controls { ascii_letter, control: control & valid & !space }
    }
}

/// Copies `rest` (fewer than 64 bytes) to the start of `block` as two
/// overlapping copies of a fixed size, not a call to `memcpy`: a short text
/// (each line of a batch) classifies one such window.
#[inline(always)]
fn copy_short(block: &mut [u8; 64], rest: &[u8]) {
    let n = rest.len();
    debug_assert!(n < 64);
    fn two<const K: usize>(block: &mut [u8; 64], rest: &[u8]) {
        let n = rest.len();
        block[..K].copy_from_slice(&rest[..K]);
        block[n - K..n].copy_from_slice(&rest[n - K..]);
    }
    match n {
        32.. => two::<32>(block, rest),
        16.. => two::<16>(block, rest),
        8.. => two::<8>(block, rest),
        4.. => two::<4>(block, rest),
        _ => {
            for (b, &r) in block.iter_mut().zip(rest) {
                *b = r;
            }
        }
    }
}

/// `rest` (fewer than 64 bytes) at the start of the zeroed `block`.
#[inline(always)]
fn fill_short(block: &mut [u8; 64], rest: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::x86_masked_loads() {
        // SAFETY: the CPU has AVX-512BW and VL.
        return unsafe { load_short_masked(block, rest) };
    }
    copy_short(block, rest)
}

/// [`copy_short`] by two byte-masked 32-byte loads of `rest` (the bytes
/// past its end read as zeros, never touched) and two 32-byte stores: the
/// classification's 32-byte loads then take their bytes from those stores.
/// From a copy's narrower stores they could not, and waited for them to
/// reach the cache (a store-forwarding failure): about half the
/// classification of a short text's one window.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw,avx512vl")]
fn load_short_masked(block: &mut [u8; 64], rest: &[u8]) {
    use std::arch::x86_64::*;
    let n = rest.len();
    debug_assert!(n < 64);
    let first = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
    let second = if n > 32 { (1u32 << (n - 32)) - 1 } else { 0 };
    let at = rest.as_ptr();
    // SAFETY: a masked load reads only the bytes its mask selects (here the
    // `n` bytes of `rest`) and faults on no other; the stores write the block.
    unsafe {
        let low = _mm256_maskz_loadu_epi8(first, at.cast());
        let high = _mm256_maskz_loadu_epi8(second, at.wrapping_add(32).cast());
        _mm256_storeu_si256(block.as_mut_ptr().cast(), low);
        _mm256_storeu_si256(block.as_mut_ptr().add(32).cast(), high);
    }
}

impl<X: WindowExtra> Window<X> {
    /// The window of `bytes` from `base` (`base < bytes.len()`).
    #[inline(always)]
    pub fn new(bytes: &[u8], base: usize) -> Self {
        let rest = &bytes[base..];
        let mut block = [0u8; 64];
        let chunk: &[u8; 64] = match rest.get(..64) {
            Some(b) => b.try_into().unwrap(),
            None => {
                fill_short(&mut block, rest);
                &block
            }
        };
        let len = rest.len().min(64);
        let valid = if len == 64 { u64::MAX } else { (1u64 << len) - 1 };
        let m = classify(chunk);
        // Padding bytes are zeros; no class may see them.
        let mut letter = m.letter & valid;
        let mut lower = m.lower & valid;
        let mut high = m.high;
        if m.lead2 != 0 {
            two_byte_letters(chunk, m.lead2 & (valid >> 1), &mut high, &mut letter, &mut lower);
        }
        let digit = m.digit & valid;
        let space = m.space & valid;
        let extra = X::make(chunk, valid, m.letter & valid, space);
        Window {
            base,
            len,
            last: rest.len() <= 64,
            letter,
            lower,
            upper: letter & !lower,
            digit,
            space,
            newline: m.newline & valid,
            high,
            other: valid & !(letter | digit | space | m.high),
            blank: m.blank & valid,
            apostrophe: m.apostrophe & valid,
            slash: m.slash & valid,
            extra,
        }
    }
}

impl Window {
    /// Whether byte `k` of the window (any `k`) is in `mask`.
    #[inline(always)]
    pub fn has(mask: u64, k: usize) -> bool {
        k < 64 && (mask >> k) & 1 != 0
    }

    /// End of the run of `mask` bytes from `k` (at most 64).
    #[inline(always)]
    pub fn run(mask: u64, k: usize) -> usize {
        if k >= 64 {
            return k;
        }
        // The shift brings in zeros, so the count stops at the window's end.
        k + (!(mask >> k)).trailing_zeros() as usize
    }
}

impl<X> Window<X> {
    /// Whether a run that stopped at `e` may go on past the window.
    #[inline(always)]
    pub fn cut(&self, e: usize) -> bool {
        e >= 64 && !self.last
    }

    /// Whether `e` is the end of the text.
    #[inline(always)]
    pub fn at_text_end(&self, e: usize) -> bool {
        self.last && e == self.len
    }

    // What every scanner's `window_starts` shares.

    /// Whether a longer character comes within the first 16 bytes: text of
    /// mostly longer characters, which the per-piece code does better.
    #[inline(always)]
    pub fn mostly_longer(&self) -> bool {
        self.high.trailing_zeros() < 16
    }

    /// The last byte of each whitespace run that text follows (where
    /// `\s+(?!\S)` gives the run's last character back).
    #[inline(always)]
    pub fn space_run_last(&self) -> u64 {
        let valid = if self.len >= 64 { u64::MAX } else { (1u64 << self.len) - 1 };
        self.space & !(self.space >> 1) & (valid >> 1)
    }

    /// The doubts every scanner has: from two bytes before the first longer
    /// character on (the rules look two bytes back), the whitespace run just
    /// before that character, and a whitespace run that reaches the window's
    /// end. Either run may go on past what the window's classes see (through
    /// U+00A0, U+0085, U+3000, ... or the next window), and where `\s*[\r\n]`
    /// or `\s++$` end a run depends on what its end holds, however far that is.
    #[inline(always)]
    pub fn edge_doubt(&self) -> u64 {
        let mut doubt = 0;
        if self.high != 0 {
            let first = self.high.trailing_zeros() as usize;
            doubt |= u64::MAX << first.saturating_sub(2);
            if first > 0 {
                doubt |= fill_backward(self.space & (1u64 << (first - 1)), self.space);
            }
        }
        if !self.last {
            doubt |= top_run(self.space);
        }
        doubt
    }
}

/// Moves the cased letters of two bytes (Latin, Greek, Cyrillic, ...: see
/// [`classes::two_byte_letters`]) whose lead is one of `leads` (leads whose
/// next byte is in the window) from `high` to the letter masks, both bytes
/// with the letter's case.
/// The window rules read a byte's class as its character's, so they apply
/// to such a letter as to an ASCII one; what stays in `high` (other long
/// characters, a letter cut by the window's end) is still left to the
/// per-character code.
#[inline(always)]
fn two_byte_letters(chunk: &[u8; 64], leads: u64, high: &mut u64, letter: &mut u64, lower: &mut u64) {
    let rest =
        if leads.count_ones() >= CYRILLIC_FROM { cyrillic_letters(chunk, leads, high, letter, lower) } else { leads };
    two_byte_letters_one_by_one(chunk, rest, high, letter, lower);
}

/// Leads of two-byte characters in a window from which [`cyrillic_letters`]
/// runs first: its masks cost about as much as three characters one by one,
/// and windows of Latin text with a few accents seldom have this many.
const CYRILLIC_FROM: u32 = 8;

/// [`two_byte_letters`] of the leads 0xD0 and 0xD1 (U+0400 to U+047F, every
/// Russian and most Ukrainian letters) at once, from masks of the window's
/// bytes; returns the other leads. One by one, Cyrillic took about twenty
/// instructions a character, a tenth of all that encoding Russian ran.
/// The rule, which a test checks against the table for every byte pair:
/// after 0xD0, 0x80-0xAF is upper case and 0xB0-0xBF lower; after 0xD1,
/// 0x80-0x9F is lower and 0xA0-0xBF alternates, upper on even bytes.
#[inline(always)]
fn cyrillic_letters(chunk: &[u8; 64], leads: u64, high: &mut u64, letter: &mut u64, lower: &mut u64) -> u64 {
    let b = CyrillicBytes::of(chunk);
    let cyrillic = leads & b.lead & (b.next >> 1);
    let (d0, d1) = (cyrillic & !b.odd, cyrillic & b.odd);
    let lower_leads = (d0 & !(b.below_b0 >> 1)) | (d1 & ((b.below_a0 | b.odd) >> 1));
    let both = cyrillic | cyrillic << 1;
    *high &= !both;
    *letter |= both;
    *lower |= lower_leads | lower_leads << 1;
    // A lead 0xD0 or 0xD1 without a continuation byte is no character.
    leads & !b.lead
}

/// Bytes of a window, as [`cyrillic_letters`] reads them.
struct CyrillicBytes {
    /// 0xD0 or 0xD1.
    lead: u64,
    /// Odd bytes: of the leads, 0xD1.
    odd: u64,
    /// Continuation bytes, 0x80 to 0xBF; those below 0xB0; those below 0xA0.
    next: u64,
    below_b0: u64,
    below_a0: u64,
}

impl CyrillicBytes {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn of(chunk: &[u8; 64]) -> Self {
        use std::arch::x86_64::*;
        let mut b = CyrillicBytes { lead: 0, odd: 0, next: 0, below_b0: 0, below_a0: 0 };
        for part in 0..4 {
            // SAFETY: SSE2 is always available on x86_64; the load reads 16
            // of the chunk's 64 bytes, unaligned.
            unsafe {
                let v = _mm_loadu_si128(chunk.as_ptr().add(16 * part) as *const __m128i);
                let mask = |v: __m128i| (_mm_movemask_epi8(v) as u32 as u64) << (16 * part);
                // Signed, 0x80 to 0xBF are -128 to -65: below a bound of
                // 0xA0, 0xB0 or 0xC0 is a continuation byte below it.
                let below = |bound: u8| mask(_mm_cmplt_epi8(v, _mm_set1_epi8(bound as i8)));
                b.lead |= mask(_mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(1)), _mm_set1_epi8(0xD1u8 as i8)));
                // Bit 0 of each byte to its bit 7.
                b.odd |= mask(_mm_slli_epi16(v, 7));
                b.next |= below(0xC0);
                b.below_b0 |= below(0xB0);
                b.below_a0 |= below(0xA0);
            }
        }
        b
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    fn of(chunk: &[u8; 64]) -> Self {
        Self::of_bytes(chunk)
    }

    /// [`CyrillicBytes::of`] byte by byte (other architectures, and the tests).
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    fn of_bytes(chunk: &[u8; 64]) -> Self {
        let mask = |f: &dyn Fn(u8) -> bool| chunk.iter().enumerate().fold(0u64, |m, (k, &c)| m | (f(c) as u64) << k);
        CyrillicBytes {
            lead: mask(&|c| c == 0xD0 || c == 0xD1),
            odd: mask(&|c| c & 1 != 0),
            next: mask(&|c| (0x80..0xC0).contains(&c)),
            below_b0: mask(&|c| (0x80..0xB0).contains(&c)),
            below_a0: mask(&|c| (0x80..0xA0).contains(&c)),
        }
    }
}

/// [`two_byte_letters`] character by character, from the table.
#[inline(always)]
fn two_byte_letters_one_by_one(chunk: &[u8; 64], leads: u64, high: &mut u64, letter: &mut u64, lower: &mut u64) {
    let table = classes::two_byte_letters();
    let mut rest = leads;
    while rest != 0 {
        let k = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        let (lead, next) = (chunk[k], chunk[k + 1]);
        if next & 0xC0 != 0x80 {
            continue;
        }
        let case = table[((lead as usize & 0x1F) << 6) | (next as usize & 0x3F)];
        if case != 0 {
            let both = 3u64 << k;
            *high &= !both;
            *letter |= both;
            if case == classes::TWO_BYTE_LOWER {
                *lower |= both;
            }
        }
    }
}

/// `mask` and the three bytes after each of its bytes (a contraction's reach
/// from its apostrophe).
#[inline(always)]
pub fn and_next_three(mask: u64) -> u64 {
    mask | (mask << 1) | (mask << 2) | (mask << 3)
}

/// The bits of `within` reachable from a bit of `seed` (a subset of `within`)
/// by steps to the next byte through bytes of `within`: runs filled forward.
/// Adding the seeds to `within` carries from the lowest seed of each run up
/// through the run's end, turning each bit it passes (other seeds aside) to
/// zero: the bits that changed, seeds put back, are the fill. Four
/// operations where doubling steps took a chain of eighteen.
#[inline(always)]
pub fn fill_forward(seed: u64, within: u64) -> u64 {
    debug_assert_eq!(seed & !within, 0, "seeds outside `within`");
    ((within.wrapping_add(seed) ^ within) | seed) & within
}

/// [`fill_forward`] towards earlier bytes.
#[inline(always)]
pub fn fill_backward(seed: u64, within: u64) -> u64 {
    let (mut g, mut p) = (seed, within);
    for step in [1, 2, 4, 8, 16, 32] {
        g |= (g >> step) & p;
        p &= p >> step;
    }
    g
}

/// Where `\p{N}{1,3}` pieces start in runs of the `digits`: each run's
/// first byte and every third one after it.
#[inline(always)]
pub fn digit_starts(digits: u64) -> u64 {
    let run_starts = digits & !(digits << 1);
    let triples = digits & (digits << 1) & (digits << 2);
    // Runs of up to six digits (most): a step or two.
    let mut starts = run_starts;
    for _ in 0..2 {
        let next = (starts << 3) & triples & !starts;
        if next == 0 {
            return starts;
        }
        starts |= next;
    }
    // Longer runs: every third byte from where each run starts, the runs
    // sorted by the remainder of their start's position divided by three.
    const EVERY_THIRD: u64 = 0x9249_2492_4924_9249;
    let mut all = 0;
    for r in 0..3 {
        let phase = EVERY_THIRD << r;
        all |= fill_forward(run_starts & phase, digits) & phase;
    }
    all
}

/// The run of `mask` bytes that reaches the window's last byte (0 if none).
#[inline(always)]
pub fn top_run(mask: u64) -> u64 {
    let lz = (!mask).leading_zeros();
    if lz == 0 {
        0
    } else {
        u64::MAX << (64 - lz)
    }
}

/// Raw class masks of 64 bytes (padding not yet removed).
#[derive(Default)]
struct Masks {
    letter: u64,
    lower: u64,
    digit: u64,
    space: u64,
    newline: u64,
    high: u64,
    /// Leads of two-byte characters, 0xC2 to 0xDF.
    lead2: u64,
    blank: u64,
    apostrophe: u64,
    slash: u64,
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify(chunk: &[u8; 64]) -> Masks {
    // The x86-64-v3 choice (not AVX2 alone), so that `FASTLLM_PORTABLE=1`
    // turns this copy off too.
    if crate::cpu::x86_v3() {
        // SAFETY: the CPU has AVX2 (x86-64-v3 includes it).
        unsafe { classify_avx2(chunk) }
    } else {
        classify_sse2(chunk)
    }
}

/// [`classify_sse2`] on 32 bytes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn classify_avx2(chunk: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    for part in 0..2 {
        // SAFETY: the load reads 32 of the chunk's 64 bytes, unaligned.
        let v = unsafe { _mm256_loadu_si256(chunk.as_ptr().add(32 * part) as *const __m256i) };
        let range = |v: __m256i, lo: u8, hi: u8| {
            _mm256_and_si256(
                _mm256_cmpgt_epi8(v, _mm256_set1_epi8((lo - 1) as i8)),
                _mm256_cmpgt_epi8(_mm256_set1_epi8((hi + 1) as i8), v),
            )
        };
        let mask = |v: __m256i| _mm256_movemask_epi8(v) as u32 as u64;
        let folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
        let eq = |c: u8| _mm256_cmpeq_epi8(v, _mm256_set1_epi8(c as i8));
        let s = 32 * part;
        m.letter |= mask(range(folded, b'a', b'z')) << s;
        m.lower |= mask(range(v, b'a', b'z')) << s;
        m.digit |= mask(range(v, b'0', b'9')) << s;
        m.space |= mask(_mm256_or_si256(range(v, b'\t', b'\r'), eq(b' '))) << s;
        m.newline |= mask(_mm256_or_si256(eq(b'\n'), eq(b'\r'))) << s;
        m.high |= mask(v) << s;
        // Both bounds are negative as signed bytes, so the signed range holds.
        m.lead2 |= mask(range(v, 0xC2, 0xDF)) << s;
        m.blank |= mask(eq(b' ')) << s;
        m.apostrophe |= mask(eq(b'\'')) << s;
        m.slash |= mask(eq(b'/')) << s;
    }
    m
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify_sse2(chunk: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    // SSE2 is part of x86_64: no detection needed. Signed compares see bytes
    // of 0x80 or more as negative, so no ASCII range takes them.
    let mut m = Masks::default();
    for part in 0..4 {
        // SAFETY: SSE2 is always available on x86_64; the load reads 16 of
        // the chunk's 64 bytes, unaligned.
        let bits = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().add(16 * part) as *const __m128i);
            let range = |v: __m128i, lo: u8, hi: u8| {
                _mm_and_si128(
                    _mm_cmpgt_epi8(v, _mm_set1_epi8((lo - 1) as i8)),
                    _mm_cmplt_epi8(v, _mm_set1_epi8((hi + 1) as i8)),
                )
            };
            let mask = |v: __m128i| _mm_movemask_epi8(v) as u32 as u64;
            let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
            let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            [
                mask(range(folded, b'a', b'z')),
                mask(range(v, b'a', b'z')),
                mask(range(v, b'0', b'9')),
                mask(_mm_or_si128(range(v, b'\t', b'\r'), eq(b' '))),
                mask(_mm_or_si128(eq(b'\n'), eq(b'\r'))),
                mask(v),
                mask(range(v, 0xC2, 0xDF)),
                mask(eq(b' ')),
                mask(eq(b'\'')),
                mask(eq(b'/')),
            ]
        };
        let s = 16 * part;
        m.letter |= bits[0] << s;
        m.lower |= bits[1] << s;
        m.digit |= bits[2] << s;
        m.space |= bits[3] << s;
        m.newline |= bits[4] << s;
        m.high |= bits[5] << s;
        m.lead2 |= bits[6] << s;
        m.blank |= bits[7] << s;
        m.apostrophe |= bits[8] << s;
        m.slash |= bits[9] << s;
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn classify(chunk: &[u8; 64]) -> Masks {
    classify_portable(chunk)
}

/// The masks byte by byte from the ASCII class table: other architectures'
/// path (compiled everywhere, so that the tests compare it with the SIMD ones).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn classify_portable(chunk: &[u8; 64]) -> Masks {
    use super::text::ascii;
    let mut m = Masks::default();
    for (k, &b) in chunk.iter().enumerate() {
        let c = ascii::class(b) as u64;
        let bit = |class: u8| ((c >> class.trailing_zeros()) & 1) << k;
        m.letter |= bit(ascii::LETTER);
        m.lower |= bit(ascii::LOWER);
        m.digit |= bit(ascii::DIGIT);
        m.space |= bit(ascii::SPACE);
        m.newline |= bit(ascii::NEWLINE);
        m.high |= ((b >> 7) as u64) << k;
        m.lead2 |= ((0xC2..=0xDF).contains(&b) as u64) << k;
        m.blank |= ((b == b' ') as u64) << k;
        m.apostrophe |= ((b == b'\'') as u64) << k;
        m.slash |= ((b == b'/') as u64) << k;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::super::text::ascii;
    use super::*;

    /// The short copy puts every length of text under 64 bytes at the start
    /// of the block, and leaves the rest of it zero.
    #[test]
    fn copy_short_copies_exactly_the_text() {
        let text: Vec<u8> = (1..=64).collect();
        for n in 0..64 {
            let mut block = [0u8; 64];
            copy_short(&mut block, &text[..n]);
            assert_eq!(&block[..n], &text[..n], "{n}");
            assert!(block[n..].iter().all(|&b| b == 0), "{n}");
        }
    }

    /// The masked loads fill the block as the copy does, for every length,
    /// with text that ends at the last byte before a page that cannot be
    /// read (a load past the text that is not masked off would fault).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn masked_loads_fill_the_block_as_the_copy_does_at_a_page_end() {
        if !crate::cpu::x86_masked_loads() {
            eprintln!("skipped: no AVX-512BW/VL here");
            return;
        }
        const PAGE: usize = 4096;
        // SAFETY: a fresh private mapping of two pages, the second made unreadable.
        let base = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                2 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(libc::mprotect(p.cast::<u8>().add(PAGE).cast(), PAGE, libc::PROT_NONE), 0);
            p.cast::<u8>()
        };
        // SAFETY: the first page is readable and writable, and only this test uses it.
        let page = unsafe { std::slice::from_raw_parts_mut(base, PAGE) };
        for (k, b) in page.iter_mut().enumerate() {
            *b = (k * 7 + 1) as u8;
        }
        for n in 0..64 {
            let text = &page[PAGE - n..];
            let (mut masked, mut copied) = ([0u8; 64], [0u8; 64]);
            // SAFETY: the CPU has AVX-512BW and VL (checked above).
            unsafe { load_short_masked(&mut masked, text) };
            copy_short(&mut copied, text);
            assert_eq!(masked, copied, "{n}");
        }
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(base.cast(), 2 * PAGE) };
    }

    #[test]
    fn window_masks_equal_the_byte_classes() {
        let mut bytes: Vec<u8> = (0..=255u8).collect();
        bytes.extend((0..=255u8).rev());
        bytes.extend(b"aZ09 \t\n\r\x0b\x0c/'".iter().cycle().take(300));
        for base in 0..bytes.len() {
            let w = Window::<Controls>::new(&bytes, base);
            assert_eq!(w.len, (bytes.len() - base).min(64));
            assert_eq!(w.last, bytes.len() - base <= 64);
            for k in 0..64 {
                let Some(&b) = bytes.get(base + k) else {
                    for mask in [
                        w.letter,
                        w.lower,
                        w.upper,
                        w.digit,
                        w.space,
                        w.newline,
                        w.high,
                        w.other,
                        w.blank,
                        w.apostrophe,
                        w.slash,
                        w.extra.ascii_letter,
                        w.extra.control,
                    ] {
                        assert!(!Window::has(mask, k), "padding byte {k} from {base}");
                    }
                    continue;
                };
                let c = ascii::class(b);
                assert_eq!(Window::has(w.letter, k), c & ascii::LETTER != 0, "{b}");
                assert_eq!(Window::has(w.extra.ascii_letter, k), b.is_ascii_alphabetic(), "{b}");
                let control = (b < 0x20 || b == 0x7F) && c & ascii::SPACE == 0;
                assert_eq!(Window::has(w.extra.control, k), control, "{b}");
                assert_eq!(Window::has(w.lower, k), c & ascii::LOWER != 0, "{b}");
                assert_eq!(Window::has(w.upper, k), c & ascii::UPPER != 0, "{b}");
                assert_eq!(Window::has(w.digit, k), c & ascii::DIGIT != 0, "{b}");
                assert_eq!(Window::has(w.space, k), c & ascii::SPACE != 0, "{b}");
                assert_eq!(Window::has(w.newline, k), c & ascii::NEWLINE != 0, "{b}");
                assert_eq!(Window::has(w.other, k), c & ascii::OTHER != 0, "{b}");
                assert_eq!(Window::has(w.high, k), b >= 0x80, "{b}");
                assert_eq!(Window::has(w.blank, k), b == b' ', "{b}");
                assert_eq!(Window::has(w.apostrophe, k), b == b'\'', "{b}");
                assert_eq!(Window::has(w.slash, k), b == b'/', "{b}");
            }
        }
    }

    #[test]
    fn fills_equal_a_bit_loop() {
        let mut next = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1d);
        for _ in 0..20000 {
            let state = next();
            let within = state | (state >> 3);
            let seed = within & state.rotate_left(29) & state.rotate_left(7);
            let (mut fwd, mut bwd) = (0u64, 0u64);
            for k in 0..64 {
                // Forward: some seed at or before k with all of within between.
                fwd |= ((0..=k).rev().take_while(|&j| within >> j & 1 != 0).any(|j| seed >> j & 1 != 0) as u64) << k;
                bwd |= ((k..64).take_while(|&j| within >> j & 1 != 0).any(|j| seed >> j & 1 != 0) as u64) << k;
            }
            assert_eq!(fill_forward(seed, within), fwd, "{seed:x} {within:x}");
            assert_eq!(fill_backward(seed, within), bwd, "{seed:x} {within:x}");
        }
    }

    #[test]
    fn digit_starts_and_top_runs_equal_a_bit_loop() {
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20000 {
            let state = next();
            let digits = state | state.rotate_left(11);
            let (mut starts, mut run) = (0u64, 0usize);
            for k in 0..64 {
                if digits >> k & 1 != 0 {
                    starts |= ((run % 3 == 0) as u64) << k;
                    run += 1;
                } else {
                    run = 0;
                }
            }
            assert_eq!(digit_starts(digits), starts, "{digits:x}");
            let top = (0..64).rev().take_while(|&k| digits >> k & 1 != 0).fold(0u64, |m, k| m | 1 << k);
            assert_eq!(top_run(digits), top, "{digits:x}");
        }
    }

    fn fields(m: &Masks) -> [u64; 10] {
        [m.letter, m.lower, m.digit, m.space, m.newline, m.high, m.lead2, m.blank, m.apostrophe, m.slash]
    }

    #[test]
    fn portable_and_simd_classify_alike() {
        let mut next = crate::test_rng::xorshift(0x0bad_cafe_dead_beef);
        for _ in 0..5000 {
            let mut chunk = [0u8; 64];
            for b in chunk.iter_mut() {
                let state = next();
                *b = state as u8 & if state >> 40 & 1 != 0 { 0x7f } else { 0xff };
            }
            assert_eq!(fields(&classify_portable(&chunk)), fields(&classify(&chunk)), "{chunk:?}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_and_sse2_classify_alike() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut next = crate::test_rng::xorshift(0x1234_5678_9abc_def1);
        for _ in 0..5000 {
            let mut chunk = [0u8; 64];
            for b in chunk.iter_mut() {
                *b = next() as u8;
            }
            // SAFETY: the CPU has AVX2.
            let (a, b) = (unsafe { classify_avx2(&chunk) }, classify_sse2(&chunk));
            assert_eq!(fields(&a), fields(&b), "{chunk:?}");
        }
    }

    /// The masks of [`cyrillic_letters`] say what the table says, one by
    /// one, for every pair of a lead and a next byte (each pair filling a
    /// window, at both alignments) and for random mixes of Cyrillic, other
    /// two-byte characters, cut characters and ASCII.
    #[test]
    fn cyrillic_letters_at_once_match_the_table_one_by_one() {
        let check = |chunk: &[u8; 64], leads: u64| {
            let (mut one, mut at_once) = ([u64::MAX, 0, 0], [u64::MAX, 0, 0]);
            let [h, l, w] = &mut one;
            two_byte_letters_one_by_one(chunk, leads, h, l, w);
            let [h, l, w] = &mut at_once;
            let rest = cyrillic_letters(chunk, leads, h, l, w);
            two_byte_letters_one_by_one(chunk, rest, h, l, w);
            assert_eq!(one, at_once, "{chunk:02x?}");
        };
        let leads_of = |chunk: &[u8; 64]| {
            chunk[..63].iter().enumerate().fold(0u64, |m, (k, &c)| m | (((0xC2..=0xDF).contains(&c)) as u64) << k)
        };
        for lead in 0xC2..=0xDFu8 {
            for next in 0..=0xFFu8 {
                for shift in 0..2 {
                    let mut chunk = [b'a'; 64];
                    for k in (shift..63).step_by(2) {
                        (chunk[k], chunk[k + 1]) = (lead, next);
                    }
                    check(&chunk, leads_of(&chunk));
                }
            }
        }
        let alphabet: Vec<u8> =
            "ЖжЯяЁёЄєІіЇїҐґѠѡѿЀЏАаПпРрЪъЬьЭэЮю éÉ×ßµ ǅ؟a1'\n".bytes().chain([0xD0, 0xD1, 0x80, 0xBF]).collect();
        let mut next = crate::test_rng::xorshift(0x0c1c_1e55_0f_d0d1);
        for _ in 0..20000 {
            let mut chunk = [0u8; 64];
            for b in chunk.iter_mut() {
                *b = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            check(&chunk, leads_of(&chunk));
        }
        #[cfg(target_arch = "x86_64")]
        for _ in 0..2000 {
            let mut chunk = [0u8; 64];
            for b in chunk.iter_mut() {
                *b = next() as u8;
            }
            let (simd, bytes) = (CyrillicBytes::of(&chunk), CyrillicBytes::of_bytes(&chunk));
            assert_eq!(
                [simd.lead, simd.odd, simd.next, simd.below_b0, simd.below_a0],
                [bytes.lead, bytes.odd, bytes.next, bytes.below_b0, bytes.below_a0]
            );
        }
    }

    /// Cased two-byte letters are letters of their case in both their bytes;
    /// other two-byte characters, and a letter the window's end cuts, stay high.
    #[test]
    fn two_byte_letters_join_the_letter_masks() {
        let bits = |mask: u64, from: usize, n: usize| (mask >> from) & ((1 << n) - 1);
        // é (lower), Ж (upper), × (a symbol), ſ (folds into a contraction's s), then ASCII.
        let text = "éЖ×ſa".as_bytes();
        let w = Window::<()>::new(text, 0);
        assert_eq!((bits(w.letter, 0, 4), bits(w.lower, 0, 2), bits(w.upper, 2, 2)), (0b1111, 0b11, 0b11));
        assert_eq!((bits(w.high, 0, 4), bits(w.high, 4, 4)), (0, 0b1111));
        assert_eq!(bits(w.letter, 4, 5), 0b10000);
        // A letter whose second byte is past the window is left to the per-character code.
        let mut long = "a".repeat(63).into_bytes();
        long.extend("éa".as_bytes());
        let w = Window::<()>::new(&long, 0);
        assert!(Window::has(w.high, 63) && !Window::has(w.letter, 63));
        let w = Window::<()>::new(&long, 63);
        assert_eq!((bits(w.letter, 0, 3), bits(w.lower, 0, 3), w.high), (0b111, 0b111, 0));
    }

    #[test]
    fn runs_stop_at_the_window_end() {
        assert_eq!(Window::run(u64::MAX, 0), 64);
        assert_eq!(Window::run(u64::MAX, 63), 64);
        assert_eq!(Window::run(0b0111, 1), 3);
        assert_eq!(Window::run(0, 5), 5);
        assert_eq!(Window::run(u64::MAX, 64), 64);
    }
}
