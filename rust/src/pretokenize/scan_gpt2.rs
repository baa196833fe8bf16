//! Hand-written scanner equal to the GPT-2 / r50k split pattern
//! `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`.

use super::classes::{LETTER, NUMBER};
use super::text::{ascii, is_other, Text};
use super::window::{and_next_three, Step, Window};

/// The piece at `i` decided from ASCII bytes alone, or None when a byte of
/// 0x80 or more (or whitespace) could change it: the general scanner decides
/// those. Follows the pattern's alternatives in order.
#[inline(always)]
fn ascii_piece_end(t: &Text<'_>, i: usize) -> Option<usize> {
    let b = t.bytes();
    let c0 = b[i];
    let next = b.get(i + 1).copied();
    if c0 == b'\'' {
        // '(?:[sdmt]|ll|ve|re), case-sensitive: ASCII bytes decide it.
        match (next, b.get(i + 2)) {
            (Some(b's' | b'd' | b'm' | b't'), _) => return Some(i + 2),
            (Some(b'l'), Some(b'l')) | (Some(b'v' | b'r'), Some(b'e')) => return Some(i + 3),
            _ => {}
        }
    }
    // ' ?' then a run of one class.
    let (start, class) = match next {
        Some(c1) if c0 == b' ' && c1 >= 0x80 => return None,
        Some(c1) if c0 == b' ' && ascii::class(c1) & ascii::SPACE == 0 => (i + 1, ascii::class(c1)),
        _ => (i, ascii::class(c0)),
    };
    let (end, general): (usize, fn(u8) -> bool) = if class & ascii::LETTER != 0 {
        (t.ascii_run(start + 1, b'a', b'z', 0x20), |c| c & LETTER != 0)
    } else if class & ascii::DIGIT != 0 {
        (t.ascii_run(start + 1, b'0', b'9', 0), |c| c & NUMBER != 0)
    } else if class & ascii::OTHER != 0 {
        let mut end = start + 1;
        while end < b.len() && ascii::class(b[end]) & ascii::OTHER != 0 {
            end += 1;
        }
        (end, is_other)
    } else {
        return None;
    };
    // A longer character may continue the run.
    Some(if b.get(end).is_some_and(|&c| c >= 0x80) { t.run(end, general) } else { end })
}

/// Where pieces start in the window and where its ASCII classes cannot
/// tell, as `scan_o200k::window_starts`. On ASCII classes L, D, O and W
/// (`\s`): a piece starts where the class changes, except after a space
/// (`' '`) that L, D or O follow (` ?` takes it), and at the last byte of a
/// whitespace run that text follows (`\s+(?!\S)` gives it back). An
/// apostrophe before a letter may start a contraction of up to three bytes.
#[inline(always)]
pub fn window_starts(w: &Window) -> (u64, u64) {
    if w.mostly_longer() {
        return (0, u64::MAX);
    }
    let (l, d, o, ws, blank) = (w.letter, w.digit, w.other, w.space, w.blank);
    let starts = (l & !((l | blank) << 1))
        | (d & !((d | blank) << 1))
        | (o & !((o | blank) << 1))
        | (ws & (!(ws << 1) | w.space_run_last()));
    (starts, and_next_three(w.apostrophe & (l >> 1)) | w.edge_doubt())
}

/// The per-piece step of the windowed loop: the whole scanner.
#[inline(always)]
pub fn window_piece_end(w: &Window, t: &Text<'_>, k: usize) -> Step {
    Step::End(piece_end(t, w.base + k))
}

/// End of the piece that starts at byte `i` (< text length).
pub fn piece_end(t: &Text<'_>, i: usize) -> usize {
    if t.bytes()[i] < 0x80 {
        if let Some(end) = ascii_piece_end(t, i) {
            return end;
        }
    }
    let Some(ch) = t.at(i) else { return i };
    let j = i + ch.len;
    if ch.cp == '\'' as u32 {
        // '(?:[sdmt]|ll|ve|re), case-sensitive.
        for c in [b's', b'd', b'm', b't'] {
            if t.is_byte(j, c) {
                return j + 1;
            }
        }
        for [a, b] in [*b"ll", *b"ve", *b"re"] {
            if t.is_byte(j, a) && t.is_byte(j + 1, b) {
                return j + 2;
            }
        }
    }
    let (start, class) = if ch.cp == ' ' as u32 {
        match t.at(j) {
            Some(next) if next.class & (LETTER | NUMBER) != 0 || is_other(next.class) => (j, next.class),
            _ => (i, ch.class),
        }
    } else {
        (i, ch.class)
    };
    if class & LETTER != 0 {
        return t.letter_run(start);
    }
    if class & NUMBER != 0 {
        return t.run(start, |c| c & NUMBER != 0);
    }
    if is_other(class) {
        return t.run(start, is_other);
    }
    // Whitespace: \s++$ | \s+(?!\S) | \s
    let run = t.space_run(i);
    if run.end == t.len() {
        run.end
    } else if run.last_start > i {
        run.last_start
    } else {
        j
    }
}
