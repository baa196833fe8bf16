//! Hand-written scanner equal to the Llama 3 split pattern
//! ```text
//! (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//! and, with `MAX_DIGITS = 1`, to Qwen 2's, which has `\p{N}` where Llama 3 has `\p{N}{1,3}`.
//!
//! Up to the whitespace alternatives this is cl100k_base's pattern without the
//! possessive quantifiers, which change nothing there: every alternative before
//! them either matches its longest run or fails. The whitespace tail is o200k's:
//! a run holding `\r` or `\n` ends after its last one; otherwise a run followed by
//! more text leaves its last character to the next piece, unless that is all of it.

use super::classes::{contraction_letters, LETTER, NUMBER};
use super::text::Text;

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)` after the apostrophe, which ends at `j`: end of the match.
pub(super) fn contraction_after(t: &Text<'_>, j: usize) -> Option<usize> {
    let f = contraction_letters();
    let a = t.at(j)?;
    if f.s.contains(a.cp) || f.t.contains(a.cp) || f.m.contains(a.cp) || f.d.contains(a.cp) {
        return Some(j + a.len);
    }
    let b = t.at(j + a.len)?;
    let pair = (f.r.contains(a.cp) && f.e.contains(b.cp))
        || (f.v.contains(a.cp) && f.e.contains(b.cp))
        || (f.l.contains(a.cp) && f.l.contains(b.cp));
    pair.then_some(j + a.len + b.len)
}

/// End of the piece that starts at byte `i` (< text length); at most
/// `MAX_DIGITS` numbers make a piece.
pub fn piece_end<const MAX_DIGITS: usize>(t: &Text<'_>, i: usize) -> usize {
    let Some(ch) = t.at(i) else { return i };
    let j = i + ch.len;
    if ch.cp == '\'' as u32 {
        if let Some(end) = contraction_after(t, j) {
            return end;
        }
    }
    let letter = |c: u8| c & LETTER != 0;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if letter(ch.class) {
        return t.run(j, letter);
    }
    let is_newline = ch.cp == '\n' as u32 || ch.cp == '\r' as u32;
    if !is_newline && ch.class & NUMBER == 0 {
        if let Some(next) = t.at(j) {
            if letter(next.class) {
                return t.run(j + next.len, letter);
            }
        }
    }
    // \p{N}{1,MAX_DIGITS}
    if ch.class & NUMBER != 0 {
        return t.numbers(j, MAX_DIGITS - 1);
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    if let Some(end) = t.space_then_others(i, ch) {
        return t.run_bytes(end, b"\r\n");
    }
    // Only whitespace is left: \s*[\r\n]+ | \s+(?!\S) | \s+
    let run = t.space_run(i);
    if let Some(end) = run.newline_end {
        end
    } else if run.end == t.len() || run.last_start == i {
        run.end
    } else {
        run.last_start
    }
}
