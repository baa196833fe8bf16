//! Hand-written scanner equal to the cl100k_base split pattern
//! `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`.

use super::classes::{contraction_letters, LETTER, NUMBER, SPACE};
use super::text::Text;

/// `'(?i:[sdmt]|ll|ve|re)` after the apostrophe at `j`: end of the match.
fn contraction(t: &Text<'_>, j: usize) -> Option<usize> {
    let f = contraction_letters();
    let a = t.at(j)?;
    if f.s.contains(a.cp) || f.d.contains(a.cp) || f.m.contains(a.cp) || f.t.contains(a.cp) {
        return Some(j + a.len);
    }
    let b = t.at(j + a.len)?;
    let pair = (f.l.contains(a.cp) && f.l.contains(b.cp))
        || (f.v.contains(a.cp) && f.e.contains(b.cp))
        || (f.r.contains(a.cp) && f.e.contains(b.cp));
    pair.then_some(j + a.len + b.len)
}

/// End of the piece that starts at byte `i` (< text length).
pub fn piece_end(t: &Text<'_>, i: usize) -> usize {
    let Some(ch) = t.at(i) else { return i };
    let j = i + ch.len;
    if ch.cp == '\'' as u32 {
        if let Some(end) = contraction(t, j) {
            return end;
        }
    }
    let letter = |c: u8| c & LETTER != 0;
    if letter(ch.class) {
        return t.run(j, letter);
    }
    let is_newline = ch.cp == '\n' as u32 || ch.cp == '\r' as u32;
    // [^\r\n\p{L}\p{N}]?+\p{L}++
    if !is_newline && ch.class & NUMBER == 0 {
        if let Some(next) = t.at(j) {
            if letter(next.class) {
                return t.run(j + next.len, letter);
            }
        }
    }
    // \p{N}{1,3}+
    if ch.class & NUMBER != 0 {
        return t.numbers(j, 2);
    }
    // ' ?[^\s\p{L}\p{N}]++[\r\n]*+'
    if let Some(end) = t.space_then_others(i, ch) {
        return t.run_bytes(end, b"\r\n");
    }
    debug_assert!(ch.class & SPACE != 0);
    // \s++$ | \s*[\r\n] | \s+(?!\S) | \s
    let run = t.space_run(i);
    if run.end == t.len() {
        run.end
    } else if let Some(end) = run.newline_end {
        end
    } else if run.last_start > i {
        run.last_start
    } else {
        j
    }
}
