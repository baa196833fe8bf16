//! CoreBpe from an arbitrary vocabulary, specials and pattern; encode (all three
//! special-token policies, batches) and decode (arbitrary ids), each checked against
//! a plain reference written here:
//! - construction fails exactly when the vocabulary is invalid;
//! - encode_ordinary equals naive tiktoken BPE on the pattern's pieces, and the
//!   scanners (built-in and open models') cut the same pieces as the regex they stand for;
//! - decode(encode(text)) == text for the patterns that match all text (the pieces, for a regex);
//! - specials: allowed ones are cut leftmost-longest, a disallowed one is an error
//!   exactly when it occurs in the text;
//! - decode_bytes fails exactly at the first unknown id;
//! - merging by a merge list (every split of each token, in the converter's order
//!   or shuffled; with or without ignore_merges) equals tokenizers' rule, written
//!   plainly here.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use fastllm::core_bpe::{CoreBpe, CoreError, SpecialPolicy};
use fastllm::pretokenize::{Pretokenizer, DEEPSEEK_V3_WORDS_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN, TEKKEN_PATTERN};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Token {
    /// Any bytes.
    Raw(Vec<u8>),
    /// A slice of the text (so that merges really happen).
    FromText { start: u16, len: u8 },
}

#[derive(Arbitrary, Debug)]
enum SpecialId {
    /// The n-th id after the mergeable ranks.
    After(u16),
    /// Any id (may collide with a rank).
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
enum Segment {
    Text(String),
    /// The special token with this index (modulo their number).
    Special(u8),
}

#[derive(Arbitrary, Debug)]
enum Pattern {
    Gpt2,
    Cl100k,
    O200k,
    /// An open model's pattern (see `OPEN`), which has a scanner of its own.
    Open(u8),
    Custom(u8),
    Any(String),
}

/// The open models' patterns with scanners; all but DeepSeek V3's word split match all text.
const OPEN: [&str; 4] = [LLAMA3_PATTERN, QWEN2_PATTERN, TEKKEN_PATTERN, DEEPSEEK_V3_WORDS_PATTERN];

/// Custom regexes: one that leaves text out, lookarounds (fancy-regex's backtracking
/// engine). One whose nested repetition exhausts the backtrack limit took 17 s an input
/// under ASan (0.3 s in release, as long as tiktoken): that error path is left to
/// py_tokenizer_api and the unit test in pretokenize.
const CUSTOM: [&str; 5] = [
    r"\w+|\s+|.",
    r"[a-z]+",
    r"\s+(?!\S)|\S+|\s",
    r"(?i:'s|'t)|\p{L}+|\p{N}{1,2}|[^\p{L}\p{N}]+",
    r"\p{L}+(?=\s|$)|\p{L}+(?=\p{N})|[\s\S]",
];

#[derive(Arbitrary, Debug)]
struct Input {
    segments: Vec<Segment>,
    repeat: u8,
    tokens: Vec<Token>,
    /// Keep empty and duplicate tokens (construction must then fail).
    raw_vocab: bool,
    /// Where the single bytes go among the other tokens (None: first, in byte order).
    byte_slots: Option<Vec<u16>>,
    drop_byte: Option<u8>,
    specials: Vec<(String, SpecialId)>,
    pattern: Pattern,
    ids: Vec<u32>,
    /// The merge list's order: None the converter's (by the token's rank, then
    /// the parts'), else shuffled with this seed.
    list_order: Option<u64>,
    ignore_merges: bool,
}

/// The regex engine's version of a scanner's pattern, by built-in name or regex
/// (compiled once: it is slow to build).
fn regex_of(name: &str) -> &'static Pretokenizer {
    static REGEXES: OnceLock<Vec<(&str, Pretokenizer)>> = OnceLock::new();
    let all = REGEXES.get_or_init(|| {
        ["gpt2", "cl100k", "o200k"].into_iter().chain(OPEN).map(|n| (n, Pretokenizer::regex_only(n).unwrap())).collect()
    });
    &all.iter().find(|(n, _)| *n == name).unwrap().1
}

/// tiktoken's BPE of one piece, as plainly as possible.
fn reference_piece(piece: &[u8], ranks: &HashMap<&[u8], u32>, out: &mut Vec<u32>) {
    if let Some(&r) = ranks.get(piece) {
        out.push(r);
        return;
    }
    let mut parts: Vec<&[u8]> = (0..piece.len()).map(|i| &piece[i..i + 1]).collect();
    let joined = |a: &[u8], b: &[u8]| -> u32 {
        let mut v = a.to_vec();
        v.extend_from_slice(b);
        ranks.get(v.as_slice()).copied().unwrap_or(u32::MAX)
    };
    let mut pair: Vec<u32> = parts.windows(2).map(|w| joined(w[0], w[1])).collect();
    loop {
        let mut best = u32::MAX;
        let mut at = 0;
        for (k, &r) in pair.iter().enumerate() {
            if r < best {
                best = r;
                at = k;
            }
        }
        if best == u32::MAX {
            break;
        }
        let start = parts[at].as_ptr() as usize - piece.as_ptr() as usize;
        let len = parts[at].len() + parts[at + 1].len();
        parts[at] = &piece[start..start + len];
        parts.remove(at + 1);
        pair.remove(at);
        if at < pair.len() {
            pair[at] = joined(parts[at], parts[at + 1]);
        }
        if at > 0 {
            pair[at - 1] = joined(parts[at - 1], parts[at]);
        }
    }
    out.extend(parts.iter().map(|p| ranks[p]));
}

/// HF tokenizers' BPE of one piece by a merge list (`place` of each listed
/// pair of parts), as plainly as possible.
fn reference_listed(
    piece: &[u8],
    place: &HashMap<(&[u8], &[u8]), usize>,
    ranks: &HashMap<&[u8], u32>,
    ignore_merges: bool,
    out: &mut Vec<u32>,
) {
    if ignore_merges {
        if let Some(&r) = ranks.get(piece) {
            out.push(r);
            return;
        }
    }
    let mut parts: Vec<&[u8]> = (0..piece.len()).map(|i| &piece[i..i + 1]).collect();
    loop {
        let best = (0..parts.len().saturating_sub(1))
            .filter_map(|k| place.get(&(parts[k], parts[k + 1])).map(|&p| (p, k)))
            .min();
        let Some((_, at)) = best else { break };
        let start = parts[at].as_ptr() as usize - piece.as_ptr() as usize;
        let len = parts[at].len() + parts[at + 1].len();
        parts[at] = &piece[start..start + len];
        parts.remove(at + 1);
    }
    out.extend(parts.iter().map(|p| ranks[p]));
}

/// Every split of each token into two tokens, as rank pairs: ordered as
/// transformers' TikTokenConverter lists them (by the token's rank, then the
/// parts'), or shuffled by `seed`.
fn all_splits(vocab: &[Vec<u8>], ranks: &HashMap<&[u8], u32>, seed: Option<u64>) -> Vec<(u32, u32)> {
    let mut pairs = Vec::new();
    for token in vocab {
        let mut splits: Vec<(u32, u32)> = (1..token.len())
            .filter_map(|cut| Some((*ranks.get(&token[..cut])?, *ranks.get(&token[cut..])?)))
            .collect();
        splits.sort_unstable();
        pairs.extend(splits);
    }
    if let Some(mut state) = seed {
        for i in (1..pairs.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            pairs.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }
    pairs
}

/// Leftmost-longest cut of `text` at the `allowed` specials, found naively.
fn reference_cut<'t>(text: &'t str, allowed: &[&str]) -> Vec<(&'t str, Option<String>)> {
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < text.len() {
        let found = allowed.iter().filter(|s| text[i..].starts_with(**s)).max_by_key(|s| s.len());
        match found {
            Some(s) => {
                out.push((&text[start..i], Some(s.to_string())));
                i += s.len();
                start = i;
            }
            None => i += text[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out.push((&text[start..], None));
    out
}

fuzz_target!(|input: Input| {
    // The specials: distinct non-empty names.
    let mut names: Vec<String> = Vec::new();
    for (name, _) in &input.specials {
        if !name.is_empty() && !names.contains(name) && names.len() < 8 {
            names.push(name.clone());
        }
    }
    // The text.
    let mut text = String::new();
    for seg in &input.segments {
        match seg {
            Segment::Text(s) => text.push_str(s),
            Segment::Special(k) if !names.is_empty() => text.push_str(&names[*k as usize % names.len()]),
            Segment::Special(_) => {}
        }
    }
    let times =
        if input.repeat >= 250 && !text.is_empty() { 5000 / text.len() + 1 } else { 1 + input.repeat as usize % 4 };
    let text = text.repeat(times.min(20_000));
    let bytes = text.as_bytes();

    // The vocabulary.
    let mut extra: Vec<Vec<u8>> = Vec::new();
    for t in input.tokens.iter().take(300) {
        let tok = match t {
            Token::Raw(v) => v.clone(),
            Token::FromText { start, len } if !bytes.is_empty() => {
                let s = *start as usize % bytes.len();
                bytes[s..(s + 2 + *len as usize).min(bytes.len())].to_vec()
            }
            Token::FromText { .. } => continue,
        };
        if input.raw_vocab || (tok.len() > 1 && !extra.contains(&tok)) {
            extra.push(tok);
        }
    }
    let mut vocab: Vec<Vec<u8>> = Vec::new();
    match &input.byte_slots {
        None => {
            vocab.extend((0..=255u8).map(|b| vec![b]));
            vocab.extend(extra.iter().cloned());
        }
        Some(slots) => {
            vocab.extend(extra.iter().cloned());
            for b in 0..=255u8 {
                let slot = slots.get(b as usize).map_or(vocab.len(), |&s| s as usize % (vocab.len() + 1));
                vocab.insert(slot, vec![b]);
            }
        }
    }
    if let Some(b) = input.drop_byte {
        vocab.retain(|t| t.as_slice() != [b]);
    }
    let n = vocab.len();
    let specials: Vec<(String, u32)> = names
        .iter()
        .zip(&input.specials)
        .map(|(name, (_, id))| {
            let id = match id {
                SpecialId::After(k) => n as u32 + *k as u32,
                SpecialId::Raw(r) => *r,
            };
            (name.clone(), id)
        })
        .collect();
    let pattern = match &input.pattern {
        Pattern::Gpt2 => "gpt2".to_string(),
        Pattern::Cl100k => "cl100k".to_string(),
        Pattern::O200k => "o200k".to_string(),
        Pattern::Open(k) => OPEN[*k as usize % OPEN.len()].to_string(),
        Pattern::Custom(k) => CUSTOM[*k as usize % CUSTOM.len()].to_string(),
        Pattern::Any(s) => s.clone(),
    };
    // A scanner's pattern; all of them but DeepSeek V3's match all text.
    let scanner = !matches!(input.pattern, Pattern::Custom(_) | Pattern::Any(_));
    let covers = scanner && pattern != DEEPSEEK_V3_WORDS_PATTERN;

    let distinct = vocab.iter().collect::<HashSet<_>>().len() == n;
    let valid_vocab = distinct && vocab.iter().all(|t| !t.is_empty()) && (0..=255u8).all(|b| vocab.contains(&vec![b]));
    let mut ids_seen = HashSet::new();
    let valid_specials = specials.iter().all(|(_, id)| *id as usize >= n && ids_seen.insert(*id));

    let core = match CoreBpe::new(vocab.clone(), &specials, &pattern) {
        Ok(core) => core,
        Err(e) => {
            let pattern_ok = Pretokenizer::new(&pattern).is_ok();
            assert!(!(valid_vocab && valid_specials && pattern_ok), "a valid tokenizer was refused: {e}");
            if let CoreError::Pattern(_) = e {
                assert!(!pattern_ok);
            }
            return;
        }
    };
    assert!(valid_vocab && valid_specials, "an invalid vocabulary was accepted");
    let max_special = specials.iter().map(|(_, id)| *id as usize + 1).max().unwrap_or(0);
    assert_eq!(core.n_vocab(), n.max(max_special));

    // Pieces: scanners against the regex they stand for.
    // A custom regex may give up on a text (fancy-regex's backtrack limit): then every
    // encode must fail with that error too, never return a shorter result.
    let pieces = match core.pretokenizer().pieces(&text) {
        Ok(pieces) => pieces,
        Err(e) => {
            assert!(!scanner, "a scanner's pattern failed: {e}");
            assert!(matches!(core.encode_ordinary(&text), Err(CoreError::Split { .. })));
            return;
        }
    };
    if scanner && text.len() <= 4096 {
        assert_eq!(pieces, regex_of(&pattern).pieces(&text).unwrap(), "scanner and regex disagree");
    }
    let covered: String = pieces.concat();
    if covers {
        assert_eq!(covered, text, "a pattern that matches all text dropped text");
    }

    // encode_ordinary against the reference BPE; decode round trip.
    let ids = core.encode_ordinary(&text).unwrap();
    assert!(ids.iter().all(|&id| (id as usize) < n));
    let decoded = core.decode_bytes(&ids).unwrap();
    assert_eq!(decoded, covered.as_bytes(), "decode(encode(text)) != text");
    if text.len() <= 8192 {
        let ranks: HashMap<&[u8], u32> = vocab.iter().enumerate().map(|(r, t)| (t.as_slice(), r as u32)).collect();
        let mut expected = Vec::new();
        for p in &pieces {
            reference_piece(p.as_bytes(), &ranks, &mut expected);
        }
        assert_eq!(ids, expected, "encode differs from the reference BPE");
    }
    let ordinary_of = |s: &str| core.encode_ordinary(s).unwrap();

    // Merging by a merge list (the pieces as above), against tokenizers' rule.
    if text.len() <= 8192 {
        let ranks: HashMap<&[u8], u32> = vocab.iter().enumerate().map(|(r, t)| (t.as_slice(), r as u32)).collect();
        let pairs = all_splits(&vocab, &ranks, input.list_order);
        let listed = CoreBpe::new(vocab.clone(), &specials, &pattern)
            .unwrap()
            .with_listed_merges(pairs.clone(), input.ignore_merges)
            .unwrap();
        let place: HashMap<(&[u8], &[u8]), usize> = pairs
            .iter()
            .enumerate()
            .map(|(k, &(l, r))| ((vocab[l as usize].as_slice(), vocab[r as usize].as_slice()), k))
            .collect();
        let mut expected = Vec::new();
        for p in &pieces {
            reference_listed(p.as_bytes(), &place, &ranks, input.ignore_merges, &mut expected);
        }
        assert_eq!(listed.encode_ordinary(&text).unwrap(), expected, "merging by the list differs from tokenizers' rule");
        // Again, from what the piece cache and the lanes remembered.
        assert_eq!(listed.encode_ordinary(&text).unwrap(), expected, "merging by the list differs the second time");
    }

    // All specials allowed: cut leftmost-longest, round trip through their text.
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let id_of: HashMap<&str, u32> = specials.iter().map(|(n, id)| (n.as_str(), *id)).collect();
    let expect_with = |allowed: &[&str]| -> Vec<u32> {
        let mut out = Vec::new();
        for (seg, special) in reference_cut(&text, allowed) {
            out.extend(ordinary_of(seg));
            if let Some(s) = special {
                out.push(id_of[s.as_str()]);
            }
        }
        out
    };
    let policy_all = SpecialPolicy {
        allowed: all.iter().copied().collect(),
        allow_all_specials: false,
        disallowed: HashSet::new(),
        disallow_other_specials: false,
    };
    let with_all = core.encode(&text, &policy_all).unwrap();
    assert_eq!(with_all, expect_with(&all), "special tokens cut differently");
    if covers {
        assert_eq!(core.decode_bytes(&with_all).unwrap(), bytes);
    }

    // Default policy: every special disallowed.
    let policy_none = SpecialPolicy {
        allowed: HashSet::new(),
        allow_all_specials: false,
        disallowed: all.iter().copied().collect(),
        disallow_other_specials: false,
    };
    let occurs = all.iter().any(|s| text.contains(s));
    match core.encode(&text, &policy_none) {
        Ok(got) => {
            assert!(!occurs, "a disallowed special went through");
            assert_eq!(got, ids);
        }
        Err(CoreError::DisallowedSpecial(s)) => assert!(occurs && text.contains(&s), "wrong special reported: {s:?}"),
        Err(e) => panic!("unexpected error {e}"),
    }

    // Half allowed, the rest disallowed.
    let (allowed, disallowed) = all.split_at(all.len() / 2);
    let policy_half = SpecialPolicy {
        allowed: allowed.iter().copied().collect(),
        allow_all_specials: false,
        disallowed: disallowed.iter().copied().collect(),
        disallow_other_specials: false,
    };
    let half = core.encode(&text, &policy_half);
    if disallowed.iter().any(|s| text.contains(s)) {
        assert!(matches!(half, Err(CoreError::DisallowedSpecial(_))));
    } else {
        assert_eq!(half.unwrap(), expect_with(allowed));
    }

    // Batches equal one call per text.
    let cut = (0..=text.len() / 2).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let texts = [text.as_str(), &text[..cut], ""];
    let batch = core.encode_batch(&texts, &policy_all, None).unwrap();
    for (t, got) in texts.iter().zip(&batch) {
        assert_eq!(*got, core.encode(t, &policy_all).unwrap());
    }
    let ordinary = core.encode_ordinary_batch(&texts, None).unwrap();
    assert_eq!(ordinary[0], ids);

    // Arbitrary ids: known iff a rank or a special id; the first unknown is reported.
    let known = |id: u32| (id as usize) < n || id_of.values().any(|&s| s == id);
    let ids: Vec<u32> = input.ids.iter().map(|&i| if i % 3 == 0 { i } else { i % (n as u32 + 4) }).collect();
    match core.decode_bytes(&ids) {
        Ok(b) => {
            assert!(ids.iter().all(|&i| known(i)));
            let expected: Vec<u8> =
                ids.iter().flat_map(|&i| core.token_bytes(u64::from(i)).unwrap().to_vec()).collect();
            assert_eq!(b, expected);
        }
        Err(CoreError::UnknownToken { id, position }) => {
            assert_eq!(ids.iter().position(|&i| !known(i)), Some(position));
            assert_eq!(u64::from(ids[position]), id);
        }
        Err(e) => panic!("unexpected error {e}"),
    }
});
