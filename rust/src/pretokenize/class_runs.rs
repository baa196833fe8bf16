//! `Split`s whose pattern is one character class, alone or repeated (DeepSeek
//! V3's `\p{N}{1,3}` and `[一-龥぀-ゟ゠-ヿ]+`, and the `Digits` pre-tokenizer),
//! found by looking each character up in a bit table instead of running a DFA.
//!
//! The stretches of such a split (HF `Split`'s, matches and gaps alike) are
//! the runs of characters in the class, cut every `max` characters as a greedy
//! `C{1,max}` repeated by `find_iter` cuts them, and the runs of characters
//! outside it.

use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};

use super::compiled::{alternatives, Alternative};

/// A set of characters: one bit per code point below U+10000, ranges above.
#[derive(Debug, Clone)]
struct CharSet {
    ascii: u128,
    /// The ASCII members as one range `lo..=hi`, where they are one (or none:
    /// an empty range), for [`CharSet::skip_ascii`]'s eight bytes at a time.
    ascii_range: Option<(u8, u8)>,
    bmp: Box<[u64; 1024]>,
    /// Sorted, inclusive, disjoint ranges of code points from U+10000 on.
    astral: Vec<(u32, u32)>,
}

impl CharSet {
    fn from_ranges(ranges: impl IntoIterator<Item = (u32, u32)>) -> Self {
        let mut set = Self { ascii: 0, ascii_range: None, bmp: Box::new([0; 1024]), astral: Vec::new() };
        for (lo, hi) in ranges {
            for cp in lo..=hi.min(0xFFFF) {
                set.bmp[cp as usize / 64] |= 1 << (cp % 64);
                if cp < 128 {
                    set.ascii |= 1 << cp;
                }
            }
            if hi >= 0x1_0000 {
                set.astral.push((lo.max(0x1_0000), hi));
            }
        }
        let (lo, hi) = (set.ascii.trailing_zeros(), 127 - set.ascii.leading_zeros().min(127));
        set.ascii_range = match set.ascii {
            0 => Some((1, 0)),
            bits if bits == (u128::MAX >> (127 - hi)) >> lo << lo => Some((lo as u8, hi as u8)),
            _ => None,
        };
        set
    }

    /// The first byte from `i` on that is not ASCII outside the set (the
    /// length of `bytes` if none is).
    #[inline(always)]
    fn skip_ascii(&self, bytes: &[u8], mut i: usize) -> usize {
        if let Some((lo, hi)) = self.ascii_range {
            const ONES: u64 = 0x0101_0101_0101_0101;
            const HIGH: u64 = ONES * 0x80;
            // Per byte b < 0x80 (no carry between bytes): b + (0x80 - lo) has
            // its high bit where b >= lo, b + (0x7F - hi) where b > hi.
            let (from_lo, past_hi) = (ONES * (0x80 - u64::from(lo)), ONES * (0x7F - u64::from(hi)));
            while let Some(chunk) = bytes.get(i..i + 8) {
                let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                let low = x & !HIGH;
                let in_range = if lo > hi { 0 } else { (low + from_lo) & !(low + past_hi) & HIGH };
                let stop = (x & HIGH) | in_range;
                if stop != 0 {
                    return i + stop.trailing_zeros() as usize / 8;
                }
                i += 8;
            }
        }
        while i < bytes.len() && bytes[i] < 0x80 && self.ascii >> bytes[i] & 1 == 0 {
            i += 1;
        }
        i
    }

    /// `char::is_numeric` (what HF's `Digits` asks), built once.
    fn numeric() -> &'static Self {
        static SET: OnceLock<CharSet> = OnceLock::new();
        SET.get_or_init(|| {
            let mut ranges: Vec<(u32, u32)> = Vec::new();
            for c in (0..=char::MAX as u32).filter_map(char::from_u32).filter(|c| c.is_numeric()) {
                match ranges.last_mut() {
                    Some(last) if last.1 + 1 == c as u32 => last.1 = c as u32,
                    _ => ranges.push((c as u32, c as u32)),
                }
            }
            Self::from_ranges(ranges)
        })
    }

    #[inline(always)]
    fn contains(&self, cp: u32) -> bool {
        if cp < 0x1_0000 {
            return self.bmp[cp as usize / 64] >> (cp % 64) & 1 != 0;
        }
        let after = self.astral.partition_point(|&(lo, _)| lo <= cp);
        after > 0 && cp <= self.astral[after - 1].1
    }
}

/// One such split: runs of `set`'s characters, at most `max` characters a
/// stretch (None: a whole run).
#[derive(Debug, Clone)]
pub struct ClassRuns {
    set: CharSet,
    max: Option<usize>,
}

impl ClassRuns {
    /// The split of pattern `source` if it is one Unicode class `C`, `C+` or
    /// `C{1,n}` (greedy; in a group or not).
    pub fn of_pattern(source: &str) -> Option<Self> {
        let alternatives = alternatives(source)?;
        let [Alternative::Plain(hir)] = alternatives.as_slice() else { return None };
        let mut hir = hir;
        let mut max = Some(1);
        loop {
            match hir.kind() {
                HirKind::Capture(capture) => hir = &capture.sub,
                HirKind::Repetition(rep) if max == Some(1) && rep.min == 1 && rep.greedy => {
                    max = rep.max.map(|m| m as usize);
                    hir = &rep.sub;
                }
                HirKind::Class(Class::Unicode(class)) => {
                    let ranges = class.ranges().iter().map(|r| (r.start() as u32, r.end() as u32));
                    return Some(Self { set: CharSet::from_ranges(ranges), max });
                }
                _ => return None,
            }
        }
    }

    /// HF's `Digits`: each numeric character alone (`individual`), or runs of them.
    pub fn digits(individual: bool) -> Self {
        Self { set: CharSet::numeric().clone(), max: individual.then_some(1) }
    }

    /// Calls `f(start, end, in_class)` on the stretches of `text` in order:
    /// the runs in the class (cut every `max` characters) and the runs
    /// outside it, which together cover `text`.
    #[inline(always)]
    pub fn for_each_stretch(&self, text: &str, mut f: impl FnMut(usize, usize, bool)) {
        let bytes = text.as_bytes();
        let max = self.max.unwrap_or(usize::MAX);
        let (mut i, mut start, mut in_run, mut count) = (0, 0, false, 0);
        while i < bytes.len() {
            if !in_run {
                // Most text is outside the class: skip its ASCII.
                i = self.set.skip_ascii(bytes, i);
                if i == bytes.len() {
                    break;
                }
            }
            let (cp, len) = decode(bytes, i);
            let member = if cp < 128 { self.set.ascii >> cp & 1 != 0 } else { self.set.contains(cp) };
            if member != in_run || (member && count == max) {
                if i > start {
                    f(start, i, in_run);
                }
                (start, in_run, count) = (i, member, 0);
            }
            count += usize::from(member);
            i += len;
        }
        if start < bytes.len() {
            f(start, bytes.len(), in_run);
        }
    }
}

/// The code point at byte `i` of valid UTF-8 (a character boundary) and its length.
#[inline(always)]
fn decode(bytes: &[u8], i: usize) -> (u32, usize) {
    let b0 = u32::from(bytes[i]);
    let cont = |k: usize| u32::from(bytes[i + k] & 0x3F);
    match b0 {
        0..=0x7F => (b0, 1),
        0xC0..=0xDF => ((b0 & 0x1F) << 6 | cont(1), 2),
        0xE0..=0xEF => ((b0 & 0x0F) << 12 | cont(1) << 6 | cont(2), 3),
        _ => ((b0 & 0x07) << 18 | cont(1) << 12 | cont(2) << 6 | cont(3), 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretokenize::Pretokenizer;
    use crate::test_rng::xorshift;

    fn stretches(runs: &ClassRuns, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        runs.for_each_stretch(text, |s, e, in_class| {
            assert_eq!(in_class, runs.set.contains(text[s..].chars().next().unwrap() as u32));
            out.push(text[s..e].to_string())
        });
        out
    }

    #[test]
    fn only_single_classes_are_taken() {
        for pattern in [r"\p{N}{1,3}", r"[一-龥぀-ゟ゠-ヿ]+", r"\p{N}", r"(\d+)", r"[a-z]{1,5}"] {
            assert!(ClassRuns::of_pattern(pattern).is_some(), "{pattern}");
        }
        for pattern in [r"\p{N}{2,3}", r"\p{N}+?", r"[a-z]+|\s", r"ab", r"a", r"(?:\p{N}{1,3})+", r"\s+(?!\S)"] {
            assert!(ClassRuns::of_pattern(pattern).is_none(), "{pattern}");
        }
    }

    /// The stretches are those of the pattern on the regex engine, matches and gaps.
    #[test]
    fn stretches_follow_the_regex() {
        let mut next = xorshift(7);
        let mut below = |n: usize| (next() % n as u64) as usize;
        let alphabet: Vec<char> = "0123456789 a b\n٣²½𝟘𝟙一龥ぁゟ゠ヿ中x-é\u{0300}".chars().collect();
        for pattern in [r"\p{N}{1,3}", r"[一-龥぀-ゟ゠-ヿ]+", r"\p{N}", r"\d{1,2}", r"[a-z0-4]+"] {
            let runs = ClassRuns::of_pattern(pattern).unwrap();
            let regex = Pretokenizer::regex_only(pattern).unwrap();
            for _ in 0..400 {
                let n = below(24);
                let text: String = (0..n).map(|_| alphabet[below(alphabet.len())]).collect();
                let want: Vec<String> =
                    regex.pieces_keeping_gaps(&text).unwrap().into_iter().map(str::to_string).collect();
                assert_eq!(stretches(&runs, &text), want, "{pattern} on {text:?}");
            }
        }
    }

    /// Skipping eight bytes at a time stops where a byte at a time does.
    #[test]
    fn skipping_ascii_stops_at_the_first_member_or_other_byte() {
        let mut next = xorshift(5);
        for pattern in [r"\d", r"[a-z]", r"[\x00-\x7F]", r"[一-龥]", r"[ac]", r"[~\x7F]", r"[\x00-\x01]"] {
            let set = &ClassRuns::of_pattern(pattern).unwrap().set;
            assert_eq!(set.ascii_range.is_some(), pattern != r"[ac]", "{pattern}");
            for _ in 0..300 {
                let n = (next() % 40) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| next() as u8).collect();
                let from = (next() % (n as u64 + 1)) as usize;
                let slow = (from..n).find(|&j| bytes[j] >= 0x80 || set.ascii >> bytes[j] & 1 != 0).unwrap_or(n);
                assert_eq!(set.skip_ascii(&bytes, from), slow, "{pattern} {bytes:?} from {from}");
            }
        }
    }

    #[test]
    fn digits_are_numeric_characters() {
        let text = "a12٣½ 𝟘x";
        assert_eq!(stretches(&ClassRuns::digits(true), text), ["a", "1", "2", "٣", "½", " ", "𝟘", "x"]);
        assert_eq!(stretches(&ClassRuns::digits(false), text), ["a", "12٣½", " ", "𝟘", "x"]);
    }
}
