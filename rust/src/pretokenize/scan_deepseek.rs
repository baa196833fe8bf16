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
//!
//! Inside DeepSeek's pipeline the split is `Isolated`, which keeps the gaps as
//! pieces too: [`stretch_end`] and the 64-byte window rules ([`window_starts`])
//! find those pieces, matches and gaps alike.

use super::classes::{LETTER, MARK, PUNCT_SYMBOL, SPACE};
use super::text::Text;
use super::window::{fill_backward, fill_forward, Controls, Step, Window};

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

/// End of the stretch that starts at byte `i` (< text length): the match
/// there, or else the gap up to the next place where a match starts.
pub fn stretch_end(t: &Text<'_>, i: usize) -> usize {
    if let Some(end) = match_end(t, i) {
        return end;
    }
    let step = |j: usize| j + t.at(j).map_or(1, |c| c.len);
    let mut j = step(i);
    while j < t.len() && match_end(t, j).is_none() {
        j = step(j);
    }
    j
}

/// The per-piece step of the windowed loop: the whole scanner.
#[inline(always)]
pub fn window_piece_end(w: &Window<Controls>, t: &Text<'_>, k: usize) -> Step {
    Step::End(stretch_end(t, w.base + k))
}

/// Where stretches (matches and gaps) start in the window, and where its ASCII
/// classes cannot tell. The window starts at a stretch's start. With P the
/// ASCII punctuation and symbols, X the characters a word may take as its
/// prefix (digits, controls, whitespace but `\r\n`), and reading the
/// alternatives in order:
/// * P starts a stretch unless P or a space comes before it (a P run, or
///   ` ?[\p{P}\p{S}]+`, which takes a space before it: that space always
///   starts a stretch). Such a P before ASCII letters takes them (the first
///   alternative), but not a longer letter after them, which starts anew.
/// * A letter starts one after a newline, and after a P unless that P took it
///   (a P that starts a stretch, before an ASCII letter). After X it is that
///   prefix's word; after a letter, the same word.
/// * A digit or control starts one unless it follows another (a gap goes on,
///   or a word took it as its prefix) and comes before no letter.
/// * Whitespace: a run's first byte after anything but whitespace (newlines
///   after a P run belong to it), the byte after its last newline, and its last
///   byte when text follows it (`\s+(?!\S)` gives it back).
#[inline(always)]
pub fn window_starts(w: &Window<Controls>) -> (u64, u64) {
    if w.mostly_longer() {
        return (0, u64::MAX);
    }
    let (l, al, n, ws) = (w.letter, w.extra.ascii_letter, w.newline, w.space);
    let dc = w.digit | w.extra.control;
    let p = w.other & !w.extra.control;
    let s = ws & !n;
    let p_starts = p & !((p | w.blank) << 1);
    // The ASCII letters that a P starting a stretch takes.
    let after_p = fill_forward(al & (p_starts << 1), al);
    let newline_later = fill_backward(n, ws);
    let taken = fill_forward(n & (p << 1), n);
    let inner = ((n << 1) & !newline_later) | ((s << 1) & !newline_later & w.space_run_last());
    let starts = (l & ((n << 1) | ((p << 1) & (!al | ((p | w.blank) << 2))) | (!al & (after_p << 1))))
        | p_starts
        | (dc & (!(dc << 1) | (l >> 1)))
        | (n & ((l | dc) << 1))
        | (s & (((l | dc | p) << 1) | ((n << 1) & (taken << 1)) | inner));
    // Whether a digit or control in the last byte starts anything depends on the next window's first.
    let top = if w.last { 0 } else { dc & (1 << 63) };
    (starts, w.edge_doubt() | top)
}
