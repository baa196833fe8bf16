//! Character classes the hand-written scanners use, as one lookup table.
//!
//! The table is built once from `regex-syntax`'s Unicode data, the same data
//! fancy-regex matches with, so the scanners and the regex can never disagree
//! about which class a character is in.

use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};

/// `\p{L}`
pub const LETTER: u8 = 1;
/// `\p{N}`
pub const NUMBER: u8 = 2;
/// `\s` (Unicode White_Space)
pub const SPACE: u8 = 4;
/// o200k's `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`
pub const UPPERISH: u8 = 8;
/// o200k's `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`
pub const LOWERISH: u8 = 16;
/// `\p{M}` (DeepSeek V3's `[\p{L}\p{M}]`)
pub const MARK: u8 = 32;
/// `[\p{P}\p{S}]` (DeepSeek V3's punctuation and symbols)
pub const PUNCT_SYMBOL: u8 = 64;

const BLOCK: usize = 256;
const PLANE_END: usize = 0x11_0000;

/// One bit per code point below U+10000 (8 KiB: stays in L1), for scanning
/// runs of a class without the two-stage lookup.
struct BmpBits(Box<[u64; 1024]>);

impl BmpBits {
    /// The bits of the code points below U+10000 whose class in `flat` passes `has`.
    fn of(flat: &[u8], has: impl Fn(u8) -> bool) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        for (cp, &class) in flat[..0x1_0000].iter().enumerate() {
            if has(class) {
                bits[cp / 64] |= 1 << (cp % 64);
            }
        }
        Self(bits)
    }

    #[inline(always)]
    fn has(&self, cp: u32) -> bool {
        self.0[(cp as usize >> 6) & 1023] >> (cp & 63) & 1 != 0
    }
}

/// Two-stage table: `blocks[index[cp / 256] * 256 + cp % 256]` is the class.
pub struct ClassTable {
    ascii: [u8; 128],
    index: Vec<u16>,
    blocks: Vec<u8>,
    /// The code points in both of o200k's case classes (CJK ideographs, kana, marks...).
    both_cased: BmpBits,
    /// The letters (`\p{L}`).
    letters: BmpBits,
}

impl ClassTable {
    fn build() -> Self {
        let mut flat = vec![0u8; PLANE_END];
        let sets: [(&str, u8); 7] = [
            (r"\p{L}", LETTER),
            (r"\p{N}", NUMBER),
            (r"\s", SPACE),
            (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", UPPERISH),
            (r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]", LOWERISH),
            (r"\p{M}", MARK),
            (r"[\p{P}\p{S}]", PUNCT_SYMBOL),
        ];
        for (src, bit) in sets {
            for (lo, hi) in class_ranges(src) {
                for cp in lo..=hi {
                    flat[cp as usize] |= bit;
                }
            }
        }
        let mut index = Vec::with_capacity(PLANE_END / BLOCK);
        let mut blocks: Vec<u8> = Vec::new();
        let mut seen: std::collections::HashMap<&[u8], u16> = std::collections::HashMap::new();
        for chunk in flat.chunks(BLOCK) {
            let next = seen.len() as u16;
            let id = *seen.entry(chunk).or_insert_with(|| {
                blocks.extend_from_slice(chunk);
                next
            });
            index.push(id);
        }
        let mut ascii = [0u8; 128];
        ascii.copy_from_slice(&flat[..128]);
        let both_cased = BmpBits::of(&flat, |class| class & (UPPERISH | LOWERISH) == UPPERISH | LOWERISH);
        let letters = BmpBits::of(&flat, |class| class & LETTER != 0);
        Self { ascii, index, blocks, both_cased, letters }
    }

    /// Whether `cp` (below U+10000) has both [`UPPERISH`] and [`LOWERISH`]:
    /// one load from a table small enough to stay in L1.
    #[inline(always)]
    pub fn both_cased(&self, cp: u32) -> bool {
        self.both_cased.has(cp)
    }

    /// Whether `cp` (below U+10000) is a letter ([`LETTER`]): one load from a
    /// table small enough to stay in L1.
    #[inline(always)]
    pub fn letter_bmp(&self, cp: u32) -> bool {
        self.letters.has(cp)
    }

    /// The class bits of code point `cp`.
    #[inline(always)]
    pub fn class(&self, cp: u32) -> u8 {
        if cp < 128 {
            return self.ascii[cp as usize];
        }
        let block = self.index[(cp as usize) >> 8] as usize;
        self.blocks[block * BLOCK + (cp as usize & 0xff)]
    }
}

/// The inclusive code point ranges of a single-class regex.
pub fn class_ranges(src: &str) -> Vec<(u32, u32)> {
    let hir = regex_syntax::parse(src).expect("built-in class regex");
    match hir.kind() {
        HirKind::Class(Class::Unicode(cls)) => {
            cls.ranges().iter().map(|r| (r.start() as u32, r.end() as u32)).collect()
        }
        HirKind::Literal(lit) => {
            let s = std::str::from_utf8(&lit.0).expect("utf-8 literal");
            s.chars().map(|c| (c as u32, c as u32)).collect()
        }
        other => panic!("{src} is not a character class: {other:?}"),
    }
}

/// The shared table (built on first use, a few milliseconds).
pub fn table() -> &'static ClassTable {
    static TABLE: OnceLock<ClassTable> = OnceLock::new();
    TABLE.get_or_init(ClassTable::build)
}

/// Case-insensitive ASCII letter sets as the regex engine folds them
/// (`(?i:s)` also matches U+017F LATIN SMALL LETTER LONG S, for instance).
pub struct FoldSet {
    ranges: Vec<(u32, u32)>,
}

impl FoldSet {
    pub fn new(letter: char) -> Self {
        Self { ranges: class_ranges(&format!("(?i:{letter})")) }
    }

    #[inline]
    pub fn contains(&self, cp: u32) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= cp && cp <= hi)
    }
}

/// Case-folded sets for the letters of the English contractions.
pub struct ContractionLetters {
    pub s: FoldSet,
    pub t: FoldSet,
    pub d: FoldSet,
    pub m: FoldSet,
    pub l: FoldSet,
    pub v: FoldSet,
    pub r: FoldSet,
    pub e: FoldSet,
}

pub fn contraction_letters() -> &'static ContractionLetters {
    static LETTERS: OnceLock<ContractionLetters> = OnceLock::new();
    LETTERS.get_or_init(|| ContractionLetters {
        s: FoldSet::new('s'),
        t: FoldSet::new('t'),
        d: FoldSet::new('d'),
        m: FoldSet::new('m'),
        l: FoldSet::new('l'),
        v: FoldSet::new('v'),
        r: FoldSet::new('r'),
        e: FoldSet::new('e'),
    })
}

/// [`two_byte_letters`]: an upper-case letter (o200k's upper-ish class only).
pub const TWO_BYTE_UPPER: u8 = 1;
/// [`two_byte_letters`]: a lower-case letter (o200k's lower-ish class only).
pub const TWO_BYTE_LOWER: u8 = 2;

/// For each code point below U+0800 (the characters of two UTF-8 bytes),
/// whether it is a letter that the windows may treat like an ASCII one:
/// [`TWO_BYTE_UPPER`], [`TWO_BYTE_LOWER`], or 0 for any other character (a
/// mark, a letter the contractions' folds take, such as U+017F, and
/// everything that is not a letter), which the scanners keep deciding
/// character by character. A letter of both o200k classes (`Lo`, `Lm`:
/// Arabic, Hebrew, Thaana...) is neither case: `U*` may take it before an
/// upper-case letter (`שǅµ` is one piece), which no ASCII letter allows.
pub fn two_byte_letters() -> &'static [u8; 0x800] {
    static TWO_BYTE: OnceLock<[u8; 0x800]> = OnceLock::new();
    TWO_BYTE.get_or_init(|| {
        let (t, f) = (table(), contraction_letters());
        let folds = [&f.s, &f.t, &f.d, &f.m, &f.l, &f.v, &f.r, &f.e];
        let mut out = [0; 0x800];
        for cp in 0x80..0x800u32 {
            let c = t.class(cp);
            if c & LETTER == 0 || c & MARK != 0 || folds.iter().any(|set| set.contains(cp)) {
                continue;
            }
            out[cp as usize] = match (c & UPPERISH != 0, c & LOWERISH != 0) {
                (true, false) => TWO_BYTE_UPPER,
                (false, true) => TWO_BYTE_LOWER,
                _ => 0,
            };
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_byte_letters_are_the_cased_ones() {
        let two = two_byte_letters();
        assert_eq!(two['É' as usize], TWO_BYTE_UPPER);
        assert_eq!(two['é' as usize], TWO_BYTE_LOWER);
        assert_eq!(two['Ж' as usize], TWO_BYTE_UPPER);
        assert_eq!(two['ж' as usize], TWO_BYTE_LOWER);
        assert_eq!(two['ǅ' as usize], TWO_BYTE_UPPER, "titlecase is upper-ish only");
        for other in
            ['ª', 'ʰ', 'ب', 'ש', 'ދ', 'ـ', 'ſ', '×', '\u{a0}', '\u{85}', '\u{301}', '\u{7b0}', '\u{64e}', '٣', '«', '،']
        {
            assert_eq!(two[other as usize], 0, "{other:?}");
        }
        assert!(two[..0x80].iter().all(|&c| c == 0));
    }

    /// The bit table of both case classes agrees with the class bits on
    /// every code point it covers.
    #[test]
    fn both_cased_bits_equal_the_classes() {
        let t = table();
        let mut both = 0;
        for cp in 0..0x1_0000u32 {
            let expected = t.class(cp) & (UPPERISH | LOWERISH) == UPPERISH | LOWERISH;
            assert_eq!(t.both_cased(cp), expected, "U+{cp:04X}");
            both += expected as usize;
        }
        assert!(both > 20_000, "CJK ideographs alone are more: {both}");
    }

    #[test]
    fn letter_bits_equal_the_class() {
        let t = table();
        let mut letters = 0;
        for cp in 0..0x1_0000u32 {
            let expected = t.class(cp) & LETTER != 0;
            assert_eq!(t.letter_bmp(cp), expected, "U+{cp:04X}");
            letters += expected as usize;
        }
        assert!(letters > 40_000, "CJK ideographs, kana and the alphabets are more: {letters}");
    }

    #[test]
    fn classes_of_sample_characters() {
        let t = table();
        assert_eq!(t.class('a' as u32), LETTER | LOWERISH);
        assert_eq!(t.class('A' as u32), LETTER | UPPERISH);
        assert_eq!(t.class('7' as u32), NUMBER);
        assert_eq!(t.class(' ' as u32), SPACE);
        assert_eq!(t.class('\u{3000}' as u32), SPACE);
        assert_eq!(t.class('日' as u32), LETTER | UPPERISH | LOWERISH);
        assert_eq!(t.class('\u{301}' as u32), UPPERISH | LOWERISH | MARK);
        assert_eq!(t.class('!' as u32), PUNCT_SYMBOL);
        assert_eq!(t.class('+' as u32), PUNCT_SYMBOL);
        assert_eq!(t.class('\u{2014}' as u32), PUNCT_SYMBOL);
        assert_eq!(t.class('\u{1}' as u32), 0);
        assert_eq!(t.class(0x10FFFF), 0);
    }

    #[test]
    fn folds_include_long_s() {
        let c = contraction_letters();
        assert!(c.s.contains('ſ' as u32) && c.s.contains('S' as u32));
        assert!(!c.t.contains('s' as u32));
    }
}
