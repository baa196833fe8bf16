//! A cursor over UTF-8 text that yields characters with their class bits:
//! the primitive the hand-written scanners are built from. Also the ASCII
//! fast paths' tools: byte classes and runs measured eight bytes at a time.

use super::classes::{table, ClassTable, LETTER, NUMBER, SPACE};

/// Classes of the ASCII bytes for the scanners' fast paths (a byte of 0x80
/// or more is none of them: the start or middle of a longer character).
pub mod ascii {
    /// `[A-Za-z]`, the ASCII `\p{L}`.
    pub const LETTER: u8 = 1;
    /// `[A-Z]`
    pub const UPPER: u8 = 2;
    /// `[a-z]`
    pub const LOWER: u8 = 4;
    /// `[0-9]`, the ASCII `\p{N}`.
    pub const DIGIT: u8 = 8;
    /// `[\t\n\x0b\x0c\r ]`, the ASCII `\s`.
    pub const SPACE: u8 = 16;
    /// `\r` or `\n`.
    pub const NEWLINE: u8 = 32;
    /// None of the above: the ASCII `[^\s\p{L}\p{N}]`.
    pub const OTHER: u8 = 64;

    const fn build() -> [u8; 256] {
        let mut t = [0u8; 256];
        let mut b = 0;
        while b < 128 {
            let c = b as u8;
            t[b] = if c.is_ascii_uppercase() {
                LETTER | UPPER
            } else if c.is_ascii_lowercase() {
                LETTER | LOWER
            } else if c.is_ascii_digit() {
                DIGIT
            } else if c == b'\r' || c == b'\n' {
                SPACE | NEWLINE
            } else if matches!(c, b'\t' | 0x0b | 0x0c | b' ') {
                SPACE
            } else {
                OTHER
            };
            b += 1;
        }
        t
    }

    /// The class of each byte value (0 for 0x80 and above).
    pub static CLASS: [u8; 256] = build();

    /// The class bits of byte `b`.
    #[inline(always)]
    pub fn class(b: u8) -> u8 {
        CLASS[b as usize]
    }
}

/// The high bit of every byte of a word.
const HIGH: u64 = 0x8080_8080_8080_8080;

#[inline(always)]
const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// Not `\s`, not `\p{L}`, not `\p{N}`: the `[^\s\p{L}\p{N}]` class.
#[inline(always)]
pub fn is_other(class: u8) -> bool {
    class & (LETTER | NUMBER | SPACE) == 0
}

/// One character: code point, class bits, byte length.
#[derive(Clone, Copy, Debug)]
pub struct Ch {
    pub cp: u32,
    pub class: u8,
    pub len: usize,
}

/// A maximal run of `\s` characters.
pub struct SpaceRun {
    /// End of the run.
    pub end: usize,
    /// Start of the run's last character.
    pub last_start: usize,
    /// End of the run's last `\r` or `\n` (None if it has none).
    pub newline_end: Option<usize>,
}

/// The code point of the two-byte UTF-8 sequence `b0 b1`.
#[inline(always)]
fn two_byte_cp(b0: u8, b1: u8) -> u32 {
    ((b0 as u32 & 0x1F) << 6) | (b1 as u32 & 0x3F)
}

/// The code point of the three-byte UTF-8 sequence `b0 b1 b2`.
#[inline(always)]
fn three_byte_cp(b0: u8, b1: u8, b2: u8) -> u32 {
    ((b0 as u32 & 0x0F) << 12) | ((b1 as u32 & 0x3F) << 6) | (b2 as u32 & 0x3F)
}

#[derive(Clone, Copy)]
pub struct Text<'a> {
    bytes: &'a [u8],
    table: &'static ClassTable,
}

impl<'a> Text<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { bytes: text.as_bytes(), table: table() }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The character starting at byte `i` (a character boundary), if any.
    #[inline(always)]
    pub fn at(&self, i: usize) -> Option<Ch> {
        let b = self.bytes;
        let b0 = *b.get(i)? as u32;
        let (cp, len) = if b0 < 0x80 {
            (b0, 1)
        } else if b0 < 0xE0 {
            (two_byte_cp(b0 as u8, b[i + 1]), 2)
        } else if b0 < 0xF0 {
            (three_byte_cp(b0 as u8, b[i + 1], b[i + 2]), 3)
        } else {
            (
                ((b0 & 0x07) << 18)
                    | ((b[i + 1] as u32 & 0x3F) << 12)
                    | ((b[i + 2] as u32 & 0x3F) << 6)
                    | (b[i + 3] as u32 & 0x3F),
                4,
            )
        };
        Some(Ch { cp, class: self.table.class(cp), len })
    }

    /// End of the run from `i` of three-byte characters in both of o200k's
    /// case classes (CJK ideographs, kana): one table bit each, without the
    /// general decoding and two-stage class lookup of [`Text::at`].
    #[inline(always)]
    pub fn both_cased_run3(&self, mut i: usize) -> usize {
        while let Some(&[b0, b1, b2]) = self.bytes.get(i..i + 3) {
            // A three-byte character's lead is 0xE0-0xEF (the text is UTF-8).
            if b0 & 0xF0 != 0xE0 || !self.table.both_cased(three_byte_cp(b0, b1, b2)) {
                break;
            }
            i += 3;
        }
        i
    }

    /// End of the `\p{L}` run from `i`: what `run(i, |c| c & LETTER != 0)`
    /// gives, with the two- and three-byte letters (Cyrillic, Greek, CJK,
    /// kana) found by one table bit each instead of [`Text::at`]'s decoding
    /// for any length and two-stage class lookup.
    #[inline(always)]
    pub fn letter_run(&self, mut i: usize) -> usize {
        let b = self.bytes;
        loop {
            match b.get(i..) {
                Some(&[b0 @ 0xE0..=0xEF, b1, b2, ..]) if self.table.letter_bmp(three_byte_cp(b0, b1, b2)) => i += 3,
                Some(&[b0 @ 0xC0..=0xDF, b1, ..]) if self.table.letter_bmp(two_byte_cp(b0, b1)) => i += 2,
                // ASCII, four-byte characters, and what ends the run.
                _ => match self.at(i) {
                    Some(ch) if ch.class & LETTER != 0 => i += ch.len,
                    _ => return i,
                },
            }
        }
    }

    /// The text as bytes.
    #[inline(always)]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// End of the run of ASCII bytes from `i` in `lo..=hi` once or-ed with
    /// `fold` (0x20 folds `[A-Z]` onto `[a-z]`), measured eight bytes at a
    /// time. The run also ends at any byte of 0x80 or more.
    #[inline(always)]
    pub fn ascii_run(&self, mut i: usize, lo: u8, hi: u8, fold: u8) -> usize {
        let b = self.bytes;
        while i + 8 <= b.len() {
            let w = u64::from_le_bytes(b[i..i + 8].try_into().unwrap()) | splat(fold);
            // For a byte x below 0x80, x + (0x80 - lo) has its high bit set
            // exactly when x >= lo, and x + (0x7f - hi) exactly when x > hi,
            // and neither carries into the next byte. A byte of 0x80 or more
            // may carry into the bytes after it, which the first such byte
            // ends the run before anyway.
            let ge = w.wrapping_add(splat(0x80 - lo));
            let gt = w.wrapping_add(splat(0x7f - hi));
            let stop = (!(ge & !gt) | w) & HIGH;
            if stop != 0 {
                return i + (stop.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        while i < b.len() && (b[i] | fold).wrapping_sub(lo) <= hi - lo && b[i] < 0x80 {
            i += 1;
        }
        i
    }

    /// The byte at `i` if it is ASCII `c`.
    #[inline(always)]
    pub fn is_byte(&self, i: usize, c: u8) -> bool {
        self.bytes.get(i) == Some(&c)
    }

    /// End of the run of characters from `i` whose class satisfies `pred`.
    #[inline(always)]
    pub fn run(&self, mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
        while let Some(ch) = self.at(i) {
            if !pred(ch.class) {
                break;
            }
            i += ch.len;
        }
        i
    }

    /// End of a run of the ASCII bytes in `set` from `i`.
    #[inline(always)]
    pub fn run_bytes(&self, mut i: usize, set: &[u8]) -> usize {
        while i < self.bytes.len() && set.contains(&self.bytes[i]) {
            i += 1;
        }
        i
    }

    /// End of up to `max` consecutive `\p{N}` characters from `i`.
    #[inline(always)]
    pub fn numbers(&self, mut i: usize, max: usize) -> usize {
        for _ in 0..max {
            match self.at(i) {
                Some(ch) if ch.class & NUMBER != 0 => i += ch.len,
                _ => break,
            }
        }
        i
    }

    /// `\p{N}{1,max}` at `i`, an ASCII digit, decided from ASCII bytes: its
    /// end, or None when a byte of 0x80 or more (maybe a number) comes first.
    #[inline(always)]
    pub fn ascii_numbers(&self, i: usize, max: usize) -> Option<usize> {
        let b = self.bytes;
        let mut end = i + 1;
        while end < i + max && end < b.len() {
            match ascii::class(b[end]) {
                ascii::DIGIT => end += 1,
                0 => return None,
                _ => break,
            }
        }
        Some(end)
    }

    /// ` ?[^\s\p{L}\p{N}]+` then any of `tail` at `i`, whose byte `c0` is
    /// ASCII: its end, or None when it does not match there. `k0` and `k1`
    /// are the ASCII classes of `c0` and of the next byte (0: none or not ASCII).
    #[inline(always)]
    pub fn ascii_others_then(&self, i: usize, c0: u8, k0: u8, k1: u8, tail: &[u8]) -> Option<usize> {
        let b = self.bytes;
        let start = if k0 & ascii::OTHER != 0 {
            i
        } else if c0 == b' ' && k1 & ascii::OTHER != 0 {
            i + 1
        } else {
            return None;
        };
        let mut end = start + 1;
        while end < b.len() {
            let k = ascii::class(b[end]);
            if k == 0 {
                end = self.run(end, is_other);
                break;
            }
            if k & ascii::OTHER == 0 {
                break;
            }
            end += 1;
        }
        Some(self.run_bytes(end, tail))
    }

    /// ` ?[^\s\p{L}\p{N}]+` at `i`, whose character is `ch`: end of the match.
    #[inline(always)]
    pub fn space_then_others(&self, i: usize, ch: Ch) -> Option<usize> {
        let start = if is_other(ch.class) {
            i
        } else if ch.cp == ' ' as u32 && self.at(i + ch.len).is_some_and(|n| is_other(n.class)) {
            i + ch.len
        } else {
            return None;
        };
        Some(self.run(start, is_other))
    }

    /// The maximal run of `\s` starting at `i` (which must be `\s`).
    #[inline(always)]
    pub fn space_run(&self, mut i: usize) -> SpaceRun {
        let mut last_start = i;
        let mut newline_end = None;
        while let Some(ch) = self.at(i) {
            if ch.class & SPACE == 0 {
                break;
            }
            last_start = i;
            i += ch.len;
            if ch.cp == '\n' as u32 || ch.cp == '\r' as u32 {
                newline_end = Some(i);
            }
        }
        SpaceRun { end: i, last_start, newline_end }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_runs_equal_a_byte_loop() {
        let text = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;'é日\u{7f}@[`{";
        let t = Text::new(text);
        let b = text.as_bytes();
        for (lo, hi, fold) in [(b'a', b'z', 0x20), (b'a', b'z', 0), (b'A', b'Z', 0), (b'0', b'9', 0)] {
            for i in 0..=b.len() {
                let mut end = i;
                while end < b.len() && b[end] < 0x80 && (lo..=hi).contains(&(b[end] | fold)) {
                    end += 1;
                }
                assert_eq!(t.ascii_run(i, lo, hi, fold), end, "{lo} {hi} {fold} from {i}");
            }
        }
    }
}
