//! Hand-written scanner equal to the GPT-2 / r50k split pattern
//! `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`.

use super::classes::{LETTER, NUMBER};
use super::text::{is_other, Text};

/// End of the piece that starts at byte `i` (< text length).
pub fn piece_end(t: &Text<'_>, i: usize) -> usize {
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
        return t.run(start, |c| c & LETTER != 0);
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
