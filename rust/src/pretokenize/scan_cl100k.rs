//! Hand-written scanners equal to the cl100k_base split pattern
//! ```text
//! '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s
//! ```
//! and to the patterns built like it ([`Variant`]): Llama 3's
//! ```text
//! (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//! and Qwen 2's, which has `\p{N}` where Llama 3 has `\p{N}{1,3}`. Llama 3's is
//! cl100k's before tiktoken rewrote it with possessive quantifiers, which change
//! nothing there (every alternative before the whitespace ones matches its longest
//! run or fails), and without `\s++$`: a whitespace run that ends the text ends
//! after its last newline, if it has one, like a run inside the text.

use super::classes::{contraction_letters, LETTER, NUMBER, SPACE};
use super::text::{ascii, Text};
use super::window::{and_next_three, digit_starts, fill_backward, fill_forward, Step, Window};

/// What sets a pattern of cl100k's family apart.
pub trait Variant {
    /// Numbers per piece: 3 (`\p{N}{1,3}`) or 1 (`\p{N}`).
    const MAX_DIGITS: usize;
    /// Whether a whitespace run that ends the text is one piece (`\s++$`).
    const END_RUN: bool;
}

/// tiktoken's cl100k_base.
pub struct Cl100k;
/// Llama 3 (meta-llama/llama-models `models/llama3/tokenizer.py`).
pub struct Llama3;
/// Qwen 2, 2.5 and 3 (transformers `models/qwen2/tokenization_qwen2.py`).
pub struct Qwen2;

impl Variant for Cl100k {
    const MAX_DIGITS: usize = 3;
    const END_RUN: bool = true;
}
impl Variant for Llama3 {
    const MAX_DIGITS: usize = 3;
    const END_RUN: bool = false;
}
impl Variant for Qwen2 {
    const MAX_DIGITS: usize = 1;
    const END_RUN: bool = false;
}

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

/// End of the `\p{L}++` run from `p`: ASCII letters eight at a time, then
/// any other letters character by character.
#[inline(always)]
fn letters_end(t: &Text<'_>, p: usize) -> usize {
    let end = t.ascii_run(p, b'a', b'z', 0x20);
    match t.bytes().get(end) {
        Some(&b) if b >= 0x80 => t.letter_run(end),
        _ => end,
    }
}

/// The piece at `i` decided from ASCII bytes alone, or None when a byte of
/// 0x80 or more (or whitespace) could change it: the general scanner decides
/// those. Follows the pattern's alternatives in order.
#[inline(always)]
fn ascii_piece_end<V: Variant>(t: &Text<'_>, i: usize) -> Option<usize> {
    let b = t.bytes();
    let c0 = b[i];
    let k0 = ascii::class(c0);
    if k0 & ascii::LETTER != 0 {
        return Some(letters_end(t, i + 1));
    }
    let next = b.get(i + 1).copied();
    if c0 == b'\'' {
        // '(?i:[sdmt]|ll|ve|re): only ASCII letters follow here (the folds
        // include U+017F, which the general scanner handles).
        let c1 = next? | 0x20;
        if next? >= 0x80 {
            return None;
        }
        if matches!(c1, b's' | b'd' | b'm' | b't') {
            return Some(i + 2);
        }
        if matches!(c1, b'l' | b'v' | b'r') {
            let c2 = *b.get(i + 2)?;
            if c2 >= 0x80 {
                return None;
            }
            if matches!((c1, c2 | 0x20), (b'l', b'l') | (b'v', b'e') | (b'r', b'e')) {
                return Some(i + 3);
            }
        }
    }
    if k0 & ascii::DIGIT != 0 {
        // \p{N}{1,3}+ (or \p{N})
        return t.ascii_numbers(i, V::MAX_DIGITS);
    }
    if k0 & ascii::NEWLINE != 0 {
        return None;
    }
    // A prefix [^\r\n\p{L}\p{N}] before letters.
    let k1 = match next {
        Some(c1) if c1 >= 0x80 => return None,
        Some(c1) => ascii::class(c1),
        None => 0,
    };
    if k1 & ascii::LETTER != 0 {
        return Some(letters_end(t, i + 2));
    }
    // ' ?[^\s\p{L}\p{N}]++[\r\n]*+'
    t.ascii_others_then(i, c0, k0, k1, b"\r\n")
}

/// Where pieces start in the window and where its ASCII classes cannot
/// tell, as `scan_o200k::window_starts` (whose rules these follow) with
/// cl100k's differences: a letter never starts a piece after a letter; an
/// apostrophe before a letter may be a contraction piece of its own; an O's
/// piece takes only `[\r\n]*`; a whitespace run that ends the text is one
/// piece (`\s++$`, where the variant has it) after the newlines an O's
/// piece took; single numbers where the variant has them.
#[inline(always)]
pub fn window_starts<V: Variant>(w: &Window) -> (u64, u64) {
    if w.mostly_longer() {
        return (0, u64::MAX);
    }
    let (l, d, n, o) = (w.letter, w.digit, w.newline, w.other);
    let ws = w.space;
    let s = ws & !n;
    let newline_later = fill_backward(n, ws);
    let taken = fill_forward(n & (o << 1), n);
    let run_last = w.space_run_last();
    // The whitespace run that ends the text, if it ends in the window.
    let text_end_run = if V::END_RUN && w.last { fill_backward(ws & (1u64 << (w.len - 1)), ws) } else { 0 };
    let inner = ((n << 1) & !newline_later) | ((s << 1) & !newline_later & run_last);
    let starts = (l & (((d | n) << 1) | ((o << 1) & ((w.blank | o) << 2))))
        | if V::MAX_DIGITS == 1 { d } else { digit_starts(d) }
        | (o & !((o | w.blank) << 1))
        | (n & ((l | d) << 1))
        | (s & (((l | d | o) << 1) | ((n << 1) & (taken << 1)) | (inner & !text_end_run)));
    // An apostrophe before a letter may start a contraction of up to three bytes.
    (starts, and_next_three(w.apostrophe & (l >> 1)) | w.edge_doubt())
}

/// The per-piece step of the windowed loop: the whole scanner.
#[inline(always)]
pub fn window_piece_end<V: Variant>(w: &Window, t: &Text<'_>, k: usize) -> Step {
    Step::End(piece_end::<V>(t, w.base + k))
}

/// End of the piece that starts at byte `i` (< text length).
pub fn piece_end<V: Variant>(t: &Text<'_>, i: usize) -> usize {
    const { assert!(V::MAX_DIGITS == 1 || V::MAX_DIGITS == 3) };
    if t.bytes()[i] < 0x80 {
        if let Some(end) = ascii_piece_end::<V>(t, i) {
            return end;
        }
    }
    let Some(ch) = t.at(i) else { return i };
    let j = i + ch.len;
    if ch.cp == '\'' as u32 {
        if let Some(end) = contraction(t, j) {
            return end;
        }
    }
    let letter = |c: u8| c & LETTER != 0;
    if letter(ch.class) {
        return t.letter_run(j);
    }
    let is_newline = ch.cp == '\n' as u32 || ch.cp == '\r' as u32;
    // [^\r\n\p{L}\p{N}]?+\p{L}++
    if !is_newline && ch.class & NUMBER == 0 {
        if let Some(next) = t.at(j) {
            if letter(next.class) {
                return t.letter_run(j + next.len);
            }
        }
    }
    // \p{N}{1,3}+ (or \p{N})
    if ch.class & NUMBER != 0 {
        return t.numbers(j, V::MAX_DIGITS - 1);
    }
    // ' ?[^\s\p{L}\p{N}]++[\r\n]*+'
    if let Some(end) = t.space_then_others(i, ch) {
        return t.run_bytes(end, b"\r\n");
    }
    debug_assert!(ch.class & SPACE != 0);
    // \s++$ | \s*[\r\n] | \s+(?!\S) | \s (without `\s++$`, the same as
    // Llama 3's \s*[\r\n]+ | \s+(?!\S) | \s+)
    let run = t.space_run(i);
    if V::END_RUN && run.end == t.len() {
        run.end
    } else if let Some(end) = run.newline_end {
        end
    } else if run.end == t.len() || run.last_start == i {
        run.end
    } else {
        run.last_start
    }
}
