//! The hand-written scanners against the regex engine on the same pattern:
//! pieces (tiktoken's `find_iter`) and stretches (HF's `Split`, gaps kept)
//! must be equal. Texts are built from runs: a unit (ASCII of each class the
//! scanners' windows tell apart, or a longer character of the kinds their
//! per-character code decides) repeated up to 80 times, so that runs reach
//! across the scanners' 64-byte windows and longer characters land anywhere
//! in them. (Random bytes alone rarely make a run of 20 spaces.)
#![no_main]

use fastllm::pretokenize::{scanner_patterns, Pretokenizer};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// ASCII of each class the windows tell apart.
const ASCII: &[&str] = &["a", "Z", "s", "1", " ", "\t", "\n", "\r", "\x0b", "'", "/", ".", "\x00"];
/// Longer characters: spaces, cased two-byte letters (the windows classify
/// them), others (left to the per-character code), a mark, a digit, CJK, an
/// emoji. One run in eight: a window with one of them early hands the rest of
/// itself to the per-character code, so the windows' own rules need ASCII
/// stretches before the longer character.
const LONGER: &[&str] = &["\u{a0}", "\u{85}", "\u{3000}", "é", "Ж", "ǅ", "\u{301}", "١", "日", "—", "😀"];

fn scanners() -> &'static [(Pretokenizer, Pretokenizer)] {
    static PAIRS: OnceLock<Vec<(Pretokenizer, Pretokenizer)>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        scanner_patterns()
            .map(|(_, source)| {
                let fast = Pretokenizer::new(source).unwrap();
                assert!(fast.is_scanner(), "{source} has no scanner");
                (fast, Pretokenizer::regex_only(source).unwrap())
            })
            .collect()
    })
}

// The first 24 bytes of the input are up to 12 runs, two bytes each: a unit
// (ASCII, or one time in eight a longer character), and how many times over
// (1-80) when the second byte's high bit is set, else once. Few runs keep the
// texts short and fast to check, and leave ASCII stretches between longer
// characters. (Plain bytes, not `Arbitrary`: its vectors end at the first
// even "go on" byte, about two runs in.)
fuzz_target!(|data: &[u8]| {
    let mut text = String::new();
    for run in data.chunks_exact(2).take(12) {
        let b = run[0] as usize;
        let unit = if b < 224 { ASCII[b % ASCII.len()] } else { LONGER[b % LONGER.len()] };
        let times = if run[1] & 0x80 != 0 { 1 + (run[1] & 0x7f) as usize % 80 } else { 1 };
        text.push_str(&unit.repeat(times));
    }
    for (fast, slow) in scanners() {
        // The regex engine may give up on a long text (its backtracking limit); skip those.
        let Ok(expected) = slow.pieces(&text) else { continue };
        assert_eq!(fast.pieces(&text).unwrap(), expected, "{} on {text:?}", fast.source());
        let Ok(expected) = slow.pieces_keeping_gaps(&text) else { continue };
        assert_eq!(fast.pieces_keeping_gaps(&text).unwrap(), expected, "{} on {text:?}", fast.source());
    }
});
