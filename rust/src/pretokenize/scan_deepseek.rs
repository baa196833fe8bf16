//! Hand-written scanner equal to DeepSeek V3's word split (the third `Split`
//! of its `tokenizer.json` pre-tokenizer):
//! ```text
//! [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
//! | ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//! Unlike the other scanners' patterns this one does not match everywhere:
//! numbers, and other characters outside letters, marks, punctuation, symbols
//! and whitespace, match only as the prefix of a word. There the match fails
//! (`None`), and the caller goes on at the next character, as `find_iter` does.

use super::classes::{LETTER, MARK, PUNCT_SYMBOL, SPACE};
use super::text::Text;

const WORD: u8 = LETTER | MARK;

/// End of the `[\p{L}\p{M}]+` run from `p` on: ASCII letters eight at a
/// time, then any other letters and marks character by character.
#[inline(always)]
fn word_end(t: &Text<'_>, p: usize) -> usize {
    let end = t.ascii_run(p, b'a', b'z', 0x20);
    match t.bytes().get(end) {
        Some(&b) if b >= 0x80 => t.run(end, |c| c & WORD != 0),
        _ => end,
    }
}

/// The match at `i` when ASCII bytes decide it: a word, with or without its
/// prefix (what most text is); None leaves it to [`match_end`]'s general code.
#[inline(always)]
fn ascii_word(t: &Text<'_>, i: usize) -> Option<usize> {
    let b = t.bytes();
    let c0 = b[i];
    if c0.is_ascii_alphabetic() {
        return Some(word_end(t, i + 1));
    }
    if c0 >= 0x80 || !b.get(i + 1)?.is_ascii_alphabetic() {
        return None;
    }
    if c0.is_ascii_punctuation() {
        // [!-/:-@[-`{-~][A-Za-z]+ : ASCII letters only.
        Some(t.ascii_run(i + 2, b'a', b'z', 0x20))
    } else if c0 != b'\r' && c0 != b'\n' {
        // The prefix [^\r\n\p{L}\p{P}\p{S}]: in ASCII, whitespace, digits, controls.
        Some(word_end(t, i + 2))
    } else {
        None
    }
}

/// End of the match that starts at byte `i` (a character boundary), if any.
#[inline]
pub fn match_end(t: &Text<'_>, i: usize) -> Option<usize> {
    if let Some(end) = ascii_word(t, i) {
        return Some(end);
    }
    let ch = t.at(i)?;
    let j = i + ch.len;
    let next = t.at(j);
    // [!-/:-@[-`{-~][A-Za-z]+ : ASCII punctuation before ASCII letters.
    if ch.cp < 0x80 && (ch.cp as u8).is_ascii_punctuation() {
        if let Some(n) = next {
            if n.cp < 0x80 && (n.cp as u8).is_ascii_alphabetic() {
                return Some(t.ascii_run(j + 1, b'a', b'z', 0x20));
            }
        }
    }
    // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ : with the prefix if it can take
    // it, else from this character (a mark can be either; both end alike).
    let newline = ch.cp == '\r' as u32 || ch.cp == '\n' as u32;
    if !newline && ch.class & (LETTER | PUNCT_SYMBOL) == 0 {
        if let Some(n) = next.filter(|n| n.class & WORD != 0) {
            return Some(t.run(j + n.len, |c| c & WORD != 0));
        }
    }
    if ch.class & WORD != 0 {
        return Some(t.run(j, |c| c & WORD != 0));
    }
    // ' ?[\p{P}\p{S}]+[\r\n]*'
    let symbols = if ch.class & PUNCT_SYMBOL != 0 {
        Some(i)
    } else if ch.cp == ' ' as u32 && next.is_some_and(|n| n.class & PUNCT_SYMBOL != 0) {
        Some(j)
    } else {
        None
    };
    if let Some(start) = symbols {
        let end = t.run(start, |c| c & PUNCT_SYMBOL != 0);
        return Some(t.run_bytes(end, b"\r\n"));
    }
    if ch.class & SPACE == 0 {
        return None;
    }
    // \s*[\r\n]+ | \s+(?!\S) | \s+
    let run = t.space_run(i);
    Some(if let Some(end) = run.newline_end {
        end
    } else if run.end == t.len() || run.last_start == i {
        run.end
    } else {
        run.last_start
    })
}
