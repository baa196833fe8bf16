//! Hand-written scanners equal to the o200k_base split pattern (also Llama 4's
//! and GPT-OSS's):
//! ```text
//! [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//! |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//! |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//! and to Mistral's Tekken pattern (`tekken.json`), the same without the
//! contraction suffixes and with `\p{N}` for `\p{N}{1,3}` ([`Variant`]).
//! The word alternatives backtrack, so they are tried in the regex's order:
//! first alternative with the optional prefix, then without, then the second.

use super::classes::{contraction_letters, LETTER, LOWERISH, NUMBER, UPPERISH};
use super::text::{ascii, Text};
use super::window::{and_next_three, digit_starts, fill_backward, fill_forward, Step, Window};

/// What sets a pattern of o200k's family apart.
pub trait Variant {
    /// Whether words take `(?i:'s|'t|'re|'ve|'m|'ll|'d)?`.
    const CONTRACTIONS: bool;
    /// Numbers per piece: 3 (`\p{N}{1,3}`) or 1 (`\p{N}`).
    const MAX_DIGITS: usize;
}

/// tiktoken's o200k_base (Llama 4, GPT-OSS).
pub struct O200k;
/// Mistral's Tekken.
pub struct Tekken;

impl Variant for O200k {
    const CONTRACTIONS: bool = true;
    const MAX_DIGITS: usize = 3;
}
impl Variant for Tekken {
    const CONTRACTIONS: bool = false;
    const MAX_DIGITS: usize = 1;
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at `j`: end of the (possibly empty) match.
fn contraction<V: Variant>(t: &Text<'_>, j: usize) -> usize {
    if !V::CONTRACTIONS || !t.is_byte(j, b'\'') {
        return j;
    }
    let f = contraction_letters();
    let Some(a) = t.at(j + 1) else { return j };
    if f.s.contains(a.cp) || f.t.contains(a.cp) || f.m.contains(a.cp) || f.d.contains(a.cp) {
        return j + 1 + a.len;
    }
    let Some(b) = t.at(j + 1 + a.len) else { return j };
    let pair = (f.r.contains(a.cp) && f.e.contains(b.cp))
        || (f.v.contains(a.cp) && f.e.contains(b.cp))
        || (f.l.contains(a.cp) && f.l.contains(b.cp));
    if pair {
        j + 1 + a.len + b.len
    } else {
        j
    }
}

/// Maximal run of upper-ish characters from `p`: its end and the end of its
/// last lower-ish character.
#[inline(always)]
fn upper_run(t: &Text<'_>, mut p: usize) -> (usize, Option<usize>) {
    let mut last_lower_end = None;
    loop {
        // Runs of Chinese and Japanese characters (both classes) first.
        let q = t.both_cased_run3(p);
        if q != p {
            p = q;
            last_lower_end = Some(p);
        }
        match t.at(p) {
            Some(ch) if ch.class & UPPERISH != 0 => {
                p += ch.len;
                if ch.class & LOWERISH != 0 {
                    last_lower_end = Some(p);
                }
            }
            _ => break,
        }
    }
    (p, last_lower_end)
}

/// `U*L+C?` at `p` (U upper-ish, L lower-ish): end of the match, if any.
#[inline(always)]
fn upper_star_lower_plus<V: Variant>(t: &Text<'_>, p: usize) -> Option<usize> {
    let (q, last_lower_end) = upper_run(t, p);
    let end = match t.at(q) {
        Some(ch) if ch.class & LOWERISH != 0 => t.run(q, |c| c & LOWERISH != 0),
        // Backtracking U* gives back characters until one is lower-ish too.
        _ => last_lower_end?,
    };
    Some(contraction::<V>(t, end))
}

/// `U+L*C?` at `p`: end of the match, if any.
#[inline(always)]
fn upper_plus_lower_star<V: Variant>(t: &Text<'_>, p: usize) -> Option<usize> {
    let (q, _) = upper_run(t, p);
    if q == p {
        return None;
    }
    let end = t.run(q, |c| c & LOWERISH != 0);
    Some(contraction::<V>(t, end))
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` after an ASCII word ending at `end`:
/// end of the match, or None when a byte of 0x80 or more could decide it
/// (the folds also hold U+017F, left to the general scanner).
#[inline(always)]
fn ascii_contraction<V: Variant>(b: &[u8], end: usize) -> Option<usize> {
    if !V::CONTRACTIONS || b.get(end) != Some(&b'\'') {
        return Some(end);
    }
    let c1 = *b.get(end + 1)?;
    if c1 >= 0x80 {
        return None;
    }
    let c1 = c1 | 0x20;
    if matches!(c1, b's' | b't' | b'm' | b'd') {
        return Some(end + 2);
    }
    if matches!(c1, b'r' | b'v' | b'l') {
        let c2 = *b.get(end + 2)?;
        if c2 >= 0x80 {
            return None;
        }
        if matches!((c1, c2 | 0x20), (b'r', b'e') | (b'v', b'e') | (b'l', b'l')) {
            return Some(end + 3);
        }
    }
    Some(end)
}

/// An ASCII word at `p`: `[A-Z]*[a-z]+` or else `[A-Z]+`, then the optional
/// contraction; None when a byte of 0x80 or more could extend it.
#[inline(always)]
fn ascii_word_end<V: Variant>(t: &Text<'_>, p: usize) -> Option<usize> {
    let b = t.bytes();
    let upper_end = t.ascii_run(p, b'A', b'Z', 0);
    let end = t.ascii_run(upper_end, b'a', b'z', 0);
    match b.get(end) {
        Some(&c) if c >= 0x80 => None,
        _ => ascii_contraction::<V>(b, end),
    }
}

/// The ASCII word whose first letter is window byte `p`, as [`ascii_word_end`].
#[inline(always)]
fn window_word<V: Variant>(w: &Window, t: &Text<'_>, p: usize) -> Step {
    // `[A-Z]*[a-z]+|[A-Z]+` ends at a non-letter or at an upper-case letter
    // after a lower-case one.
    let goes_on = w.letter & !(w.upper & (w.lower << 1));
    let e = Window::run(goes_on, p + 1);
    if w.cut(e) {
        return Step::More;
    }
    if Window::has(w.high, e) {
        return Step::General;
    }
    match ascii_contraction::<V>(t.bytes(), w.base + e) {
        Some(end) => Step::End(end),
        None => Step::General,
    }
}

/// ` ?[^\s\p{L}\p{N}]+[\r\n/]*` from window byte `s`, one of the others.
#[inline(always)]
fn window_punctuation(w: &Window, t: &Text<'_>, s: usize) -> Step {
    let e = Window::run(w.other, s);
    if w.cut(e) {
        return Step::More;
    }
    if Window::has(w.high, e) {
        return Step::General;
    }
    Step::End(t.run_bytes(w.base + e, b"\r\n/"))
}

/// Where pieces start in the window, for all its bytes at once, and the bytes
/// where that cannot be told from its ASCII classes (`.0`, `.1`): for every
/// byte not in `.1`, its bit in `.0` says whether a piece starts there,
/// given that one starts at the window's first byte. The rules, on ASCII
/// classes L (letter), D, N (`\r\n`), S (other `\s`), O (others):
/// - a letter starts a piece after a digit or newline, after a lower-case
///   letter if it is upper-case, and after an O that ends an O run of two or
///   more or follows a space (which took it); after S, or an O that starts a
///   piece, the S or O is its prefix;
/// - digits start one every three from the start of their run;
/// - an O starts one unless after an O or a space;
/// - a newline starts one after a letter or digit (after an O the O's piece
///   takes it, in a whitespace run the run's `\s*[\r\n]+` does);
/// - an S starts one after L, D, O, after the newlines an O's piece took,
///   after the run's last newline, and as the run's last byte before
///   text (`\s+(?!\S)` gives it back).
///
/// Contractions, a `/` that an O's newlines take (`[\r\n/]*`), longer
/// characters and whitespace runs that may go on past the window are left
/// to [`window_piece_end`].
#[inline(always)]
pub fn window_starts<V: Variant>(w: &Window) -> (u64, u64) {
    if w.mostly_longer() {
        return (0, u64::MAX);
    }
    let (l, d, n, o) = (w.letter, w.digit, w.newline, w.other);
    let ws = w.space;
    let s = ws & !n;
    // A newline at or after the byte in its whitespace run.
    let newline_later = fill_backward(n, ws);
    // Newlines right after an O: its piece's `[\r\n/]*` takes them.
    let taken = fill_forward(n & (o << 1), n);
    let run_last = w.space_run_last();
    let starts = (l & ((w.upper & (w.lower << 1)) | ((d | n) << 1) | ((o << 1) & ((w.blank | o) << 2))))
        | if V::MAX_DIGITS == 1 { d } else { digit_starts(d) }
        | (o & !((o | w.blank) << 1))
        | (n & ((l | d) << 1))
        | (s & (((l | d | o) << 1)
            | ((n << 1) & ((taken << 1) | !newline_later))
            | ((s << 1) & !newline_later & run_last)));
    // An apostrophe after a letter may be a contraction, ending up to three bytes on.
    let apostrophe = if V::CONTRACTIONS { w.apostrophe & (l << 1) } else { 0 };
    // From a `/` that taken newlines lead to on: the O's piece may take it and more.
    let slash = w.slash & (taken << 1);
    let slash_on = !(slash & slash.wrapping_neg()).wrapping_sub(1);
    // Ahead of a longer character only whitespace runs look further, and one
    // (maybe `\s`, never `[\r\n]`) changes no more than whether the byte
    // before it is its run's last: the edge doubts cover it.
    (starts, and_next_three(apostrophe) | slash_on | w.edge_doubt())
}

/// The piece at window byte `k`, where the window's ASCII classes decide it:
/// the same cases as [`ascii_piece_end`], and whitespace too.
#[inline(always)]
pub fn window_piece_end<V: Variant>(w: &Window, t: &Text<'_>, k: usize) -> Step {
    let at = 1u64 << k;
    if w.letter & at != 0 {
        return window_word::<V>(w, t, k);
    }
    if w.high & at != 0 {
        return Step::General;
    }
    if w.digit & at != 0 {
        // \p{N}{1,3} (or \p{N})
        let e = Window::run(w.digit, k);
        if e >= k + V::MAX_DIGITS {
            return Step::End(w.base + k + V::MAX_DIGITS);
        }
        if w.cut(e) {
            return Step::More;
        }
        return if Window::has(w.high, e) { Step::General } else { Step::End(w.base + e) };
    }
    let newline = w.newline & at != 0;
    if !newline {
        // Not \r or \n: a prefix [^\r\n\p{L}\p{N}] before a word, or ' ?' before others.
        if w.cut(k + 1) {
            return Step::More;
        }
        if Window::has(w.letter, k + 1) {
            return window_word::<V>(w, t, k + 1);
        }
        if Window::has(w.high, k + 1) {
            return Step::General;
        }
        if w.other & at != 0 {
            return window_punctuation(w, t, k);
        }
        if t.bytes()[w.base + k] == b' ' && Window::has(w.other, k + 1) {
            return window_punctuation(w, t, k + 1);
        }
    }
    // \s*[\r\n]+ | \s+(?!\S) | \s+ on a run of ASCII whitespace.
    let e = Window::run(w.space, k);
    if w.cut(e) {
        return Step::More;
    }
    if Window::has(w.high, e) {
        return Step::General;
    }
    let before_e = if e >= 64 { u64::MAX } else { (1u64 << e) - 1 };
    let newlines = w.newline & before_e & !(at - 1);
    Step::End(
        w.base
            + if newlines != 0 {
                64 - newlines.leading_zeros() as usize
            } else if e == k + 1 || w.at_text_end(e) {
                e
            } else {
                e - 1
            },
    )
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
        return ascii_word_end::<V>(t, i);
    }
    if k0 & ascii::DIGIT != 0 {
        // \p{N}{1,3} (or \p{N})
        return t.ascii_numbers(i, V::MAX_DIGITS);
    }
    if k0 & ascii::NEWLINE != 0 {
        return None;
    }
    // A prefix [^\r\n\p{L}\p{N}] before a word.
    let k1 = match b.get(i + 1) {
        Some(&c1) if c1 >= 0x80 => return None,
        Some(&c1) => ascii::class(c1),
        None => 0,
    };
    if k1 & ascii::LETTER != 0 {
        return ascii_word_end::<V>(t, i + 1);
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
    t.ascii_others_then(i, c0, k0, k1, b"\r\n/")
}

/// End of the piece that starts at byte `i` (< text length).
pub fn piece_end<V: Variant>(t: &Text<'_>, i: usize) -> usize {
    const { assert!(V::MAX_DIGITS == 1 || V::MAX_DIGITS == 3) };
    if t.bytes()[i] < 0x80 {
        if let Some(end) = ascii_piece_end::<V>(t, i) {
            return end;
        }
    }
    general_piece_end::<V>(t, i)
}

/// [`piece_end`] character by character, without its ASCII fast path.
#[inline(never)]
pub fn general_piece_end<V: Variant>(t: &Text<'_>, i: usize) -> usize {
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
                if let Some(end) = upper_star_lower_plus::<V>(t, p) {
                    return end;
                }
            }
        }
        for (ok, p) in attempts {
            if ok {
                if let Some(end) = upper_plus_lower_star::<V>(t, p) {
                    return end;
                }
            }
        }
    }
    // \p{N}{1,3} (or \p{N})
    if ch.class & NUMBER != 0 {
        return t.numbers(j, V::MAX_DIGITS - 1);
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
