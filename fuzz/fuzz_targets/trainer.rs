//! The trainer on tiny corpora: it fails only for an empty corpus or a too small
//! vocab_size; otherwise the tokens are the 256 bytes then one distinct token per
//! merge (two earlier tokens joined), the result does not depend on the order of the
//! documents, and the tokens (with the specials after them) build a tokenizer that
//! round-trips every training text.
#![no_main]

use std::collections::HashSet;

use arbitrary::Arbitrary;
use fastllm::core_bpe::{CoreBpe, SpecialPolicy};
use fastllm::specials::SpecialMatcher;
use fastllm::trainer::{BpeTrainer, TrainError};
use indicatif::ProgressBar;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    texts: Vec<String>,
    specials: Vec<String>,
    pattern: u8,
    extra_vocab: u16,
    min_frequency: u8,
}

fn train(
    pattern: &str,
    specials: &[String],
    texts: &[String],
    vocab: usize,
    min_f: u64,
) -> Result<Vec<Vec<u8>>, TrainError> {
    let mut trainer = BpeTrainer::new(pattern, specials)?;
    trainer.counter().add_texts(texts)?;
    trainer.train(vocab, min_f, &ProgressBar::hidden())
}

fuzz_target!(|input: Input| {
    let texts: Vec<String> = input.texts.into_iter().take(16).collect();
    let specials: Vec<String> = input.specials.into_iter().take(3).collect();
    let distinct_specials = specials.iter().collect::<HashSet<_>>().len() == specials.len();
    let pattern = ["gpt2", "cl100k", "o200k", r"\S+|\s+"][input.pattern as usize % 4];
    let min_vocab = 256 + specials.len();
    // Sometimes one below the minimum.
    let vocab_size = (min_vocab + input.extra_vocab as usize % 400).saturating_sub((input.extra_vocab == 1) as usize);
    let min_f = input.min_frequency as u64 % 4;

    let tokens = match train(pattern, &specials, &texts, vocab_size, min_f) {
        Ok(t) => t,
        Err(TrainError::InvalidSpecialToken(_)) => {
            assert!(!distinct_specials || specials.iter().any(String::is_empty));
            return;
        }
        Err(TrainError::VocabTooSmall { .. }) => {
            assert!(vocab_size < min_vocab);
            return;
        }
        Err(TrainError::EmptyCorpus) => {
            let matcher = SpecialMatcher::new(&specials).unwrap();
            let mut all_special = true;
            for t in &texts {
                matcher.for_each_segment(t, |_| all_special = false);
            }
            assert!(all_special, "corpus reported empty");
            return;
        }
        Err(e) => panic!("unexpected error: {e}"),
    };
    assert!(vocab_size >= min_vocab && distinct_specials);
    assert!(tokens.len() <= vocab_size - specials.len());
    for (b, t) in tokens.iter().take(256).enumerate() {
        assert_eq!(t, &vec![b as u8]);
    }
    let set: HashSet<&Vec<u8>> = tokens.iter().collect();
    assert_eq!(set.len(), tokens.len(), "the trainer made the same token twice");
    for (k, t) in tokens.iter().enumerate().skip(256) {
        let ok = (1..t.len()).any(|i| {
            let (l, r) = t.split_at(i);
            tokens[..k].iter().any(|x| x == l) && tokens[..k].iter().any(|x| x == r)
        });
        assert!(ok, "token {k} is not two earlier tokens joined");
    }

    // The documents in reverse order, in two batches: the same vocabulary.
    let mut reversed = texts.clone();
    reversed.reverse();
    let mut trainer = BpeTrainer::new(pattern, &specials).unwrap();
    let half = reversed.len() / 2;
    trainer.counter().add_texts(&reversed[..half]).unwrap();
    trainer.counter().add_texts(&reversed[half..]).unwrap();
    let again = trainer.train(vocab_size, min_f, &ProgressBar::hidden()).unwrap();
    assert_eq!(again, tokens, "the vocabulary depends on the order of the documents");

    // What it learned loads and round-trips.
    let n = tokens.len() as u32;
    let ids: Vec<(String, u32)> = specials.iter().enumerate().map(|(i, s)| (s.clone(), n + i as u32)).collect();
    let core = CoreBpe::new(tokens, &ids, pattern).expect("a trained vocabulary must load");
    let all = SpecialPolicy {
        allowed: specials.iter().map(String::as_str).collect(),
        allow_all_specials: false,
        disallowed: HashSet::new(),
        disallow_other_specials: false,
    };
    for t in &texts {
        let got = core.encode(t, &all).unwrap();
        let back = core.decode_bytes(&got).unwrap();
        assert_eq!(back, t.as_bytes(), "decode(encode(text)) != text");
    }
});
