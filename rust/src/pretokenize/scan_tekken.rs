//! Hand-written scanner equal to Mistral's Tekken split pattern:
//! ```text
//! [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+
//! |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*
//! |\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//! That is o200k_base's pattern without the contraction suffixes and with single
//! numbers. The word alternatives backtrack, so they are tried in the regex's
//! order: first alternative with the optional prefix, then without, then the second.

use super::classes::{LETTER, LOWERISH, NUMBER, UPPERISH};
use super::text::Text;

/// `U*L+` at `p` (U upper-ish, L lower-ish): end of the match, if any.
#[inline(always)]
fn upper_star_lower_plus(t: &Text<'_>, p: usize) -> Option<usize> {
    // The maximal run of U, and the end of its last character that is also L.
    let mut q = p;
    let mut last_lower_end = None;
    while let Some(ch) = t.at(q) {
        if ch.class & UPPERISH == 0 {
            break;
        }
        q += ch.len;
        if ch.class & LOWERISH != 0 {
            last_lower_end = Some(q);
        }
    }
    match t.at(q) {
        Some(ch) if ch.class & LOWERISH != 0 => Some(t.run(q, |c| c & LOWERISH != 0)),
        // U* gives characters back until the last one that is also L: L+ ends there.
        _ => last_lower_end,
    }
}

/// `U+L*` at `p`: end of the match, if any.
#[inline(always)]
fn upper_plus_lower_star(t: &Text<'_>, p: usize) -> Option<usize> {
    let q = t.run(p, |c| c & UPPERISH != 0);
    (q > p).then(|| t.run(q, |c| c & LOWERISH != 0))
}

/// End of the piece that starts at byte `i` (< text length).
pub fn piece_end(t: &Text<'_>, i: usize) -> usize {
    let Some(ch) = t.at(i) else { return i };
    let j = i + ch.len;
    let is_newline = ch.cp == '\n' as u32 || ch.cp == '\r' as u32;
    let word_class = ch.class & (UPPERISH | LOWERISH) != 0;
    // [^\r\n\p{L}\p{N}]? may take this character as the prefix.
    let prefix = !is_newline && ch.class & (LETTER | NUMBER) == 0;
    if prefix || word_class {
        let attempts = [(prefix, j), (word_class, i)];
        for (ok, p) in attempts {
            if ok {
                if let Some(end) = upper_star_lower_plus(t, p) {
                    return end;
                }
            }
        }
        for (ok, p) in attempts {
            if ok {
                if let Some(end) = upper_plus_lower_star(t, p) {
                    return end;
                }
            }
        }
    }
    // \p{N}
    if ch.class & NUMBER != 0 {
        return j;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
    if let Some(end) = t.space_then_others(i, ch) {
        return t.run_bytes(end, b"\r\n/");
    }
    // \s*[\r\n]+ | \s+(?!\S) | \s+
    let run = t.space_run(i);
    if let Some(end) = run.newline_end {
        end
    } else if run.end == t.len() || run.last_start == i {
        run.end
    } else {
        run.last_start
    }
}
