//! A cursor over UTF-8 text that yields characters with their class bits:
//! the primitive the hand-written scanners are built from.

use super::classes::{table, ClassTable, LETTER, NUMBER, SPACE};

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
            (((b0 & 0x1F) << 6) | (b[i + 1] as u32 & 0x3F), 2)
        } else if b0 < 0xF0 {
            (((b0 & 0x0F) << 12) | ((b[i + 1] as u32 & 0x3F) << 6) | (b[i + 2] as u32 & 0x3F), 3)
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
