"""Writes the fuzzers' seed corpora and dictionary into fuzz/corpus/ (not committed).

Every seed is made here: short texts typed below, and tokenizer files that fastllm
itself writes for a tiny vocabulary trained on those texts. Nothing third-party.

    .venv/bin/python fuzz/make_seeds.py [OUT_DIR]     (default: fuzz/corpus)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "python"))

from _harness import GPT2_SEPARATOR, PART_SEPARATOR  # noqa: E402

TEXTS = [
    "Hello, world! It's 2024: we'll see 12345 things.",
    "  leading and trailing  \n\n\tTabs\r\nand CRLF\n",
    "I'M SHOUTING 'LL 'Ve don't HTTPServer iPhone naïve ÉCOLE",
    "日本語の文章です。中文 한국어 Ελληνικά русский текст",
    "e\u0301\u0301 \u0301A! 👋🏽 👨\u200d👩\u200d👧 🇫🇷!! ½² ١٢٣",
    "a/b//c/\n/\r\nx\u00a0y\u3000z\u0085",
    "<|endoftext|>hello<|endoftext|>x<|fim|> <x>",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "def f(x):\n    return x ** 2  # comment\n",
]

# libFuzzer dictionary: fragments the mutators would take long to find by themselves.
DICTIONARY = [
    b"<|endoftext|>", b"<|fim|>", b"'s", b"'ll", b"\r\n", b"\n\n", b"  ", b"\xc2\xa0", b"\xe2\x82", b"\xf0\x9f",
    b"\xcc\x81", b"\xed\xa0\x80", b"\xff", b'"format"', b'"fastllm-tokenizer"', b'"version"', b'"ranks"',
    b'"pattern"', b'"special_tokens"', b'"model"', b'"vocab"', b'"merges"', b'"added_tokens"', b'"pre_tokenizer"',
    b'"ByteLevel"', b'"Sequence"', b'"Split"', b'"Regex"', b'"Isolated"', b'"use_regex"', b'"BPE"', b'"type"',
    b'"content"', b'"id"', b"#version: 0.2", b"\xc4\xa0", b"AA==", b"IA==", b"cl100k", b"o200k", b"gpt2",
]


def _dict_line(token: bytes) -> str:
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in token) + '"'


def _tiny_tokenizer():
    from fastllm import Tokenizer

    return Tokenizer.train(iter(TEXTS * 3), vocab_size=300, pattern="cl100k", special_tokens=["<|endoftext|>", "<|fim|>"], min_frequency=2)


def _byte_stream(state: int):
    """Bytes from a 64-bit linear congruential generator (the top byte of each state)."""
    while True:
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        yield state >> 56


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuzz.dict").write_text("".join(_dict_line(t) + "\n" for t in DICTIONARY))
    text_seeds = [t.encode() for t in TEXTS]
    for target in ("core_bpe", "utf8_stream", "chunking", "trainer", "scanners", "py_tokenizer_api", "py_hf_pipeline"):
        folder = out / target
        folder.mkdir(exist_ok=True)
        for i, seed in enumerate(text_seeds):
            (folder / f"seed{i}").write_bytes(seed)

    # Targets that read their input as choices start from random bytes (a fixed generator,
    # one stream for both: the same seeds every time). The scanners target reads (unit,
    # repeat) byte pairs: texts of many runs; py_hf_pipeline a pipeline, added tokens, texts.
    random_bytes = _byte_stream(0x2545F4914F6CDD1D)
    for i in range(32):
        (out / "scanners" / f"runs{i}").write_bytes(bytes(next(random_bytes) for _ in range(24)))
    for i in range(32):
        (out / "py_hf_pipeline" / f"choices{i}").write_bytes(bytes(next(random_bytes) for _ in range(160)))

    tok = _tiny_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok.save(tmp / "tok.json")
        tok.save_tiktoken(tmp / "tok.tiktoken")
        tok.to_hf_json(tmp / "tokenizer.json")
        fastllm_json = (tmp / "tok.json").read_bytes()
        tiktoken = (tmp / "tok.tiktoken").read_bytes()
        hf_json = (tmp / "tokenizer.json").read_bytes()
    # GPT-2's two files, from the HF file's model (the same byte-level text).
    model = json.loads(hf_json)["model"]
    vocab_json = json.dumps(model["vocab"], ensure_ascii=False).encode()
    merges = ("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in model["merges"])).encode()
    added = json.dumps({"<|fim|>": tok.special_tokens["<|fim|>"]}).encode()

    seeds = {
        "py_tiktoken_file": [b"\x00" + tiktoken, b"\x01" + tiktoken[:200], b"\x02" + tiktoken.replace(b" 7\n", b" 9\n")],
        "py_hf_json": [b"\x00" + hf_json, b"\x00" + hf_json.replace(b"\"Isolated\"", b"\"Removed\"")],
        "py_fastllm_json": [b"\x00" + fastllm_json, b"\x00" + fastllm_json[:300]],
        "py_gpt2_vocab": [
            vocab_json + GPT2_SEPARATOR + merges,
            vocab_json + GPT2_SEPARATOR + merges + GPT2_SEPARATOR + added,
        ],
        "py_open_tokenizer": [
            b"\x00" + fastllm_json,
            b"\x01" + hf_json,
            b"\x02" + tiktoken,
            b"\x03" + vocab_json + PART_SEPARATOR + merges,
            b"\x04cl100k_base",
        ],
    }
    # Small skeletons of each format: structure-level mutations (a list turned into a
    # number, a deep nesting) are far likelier on a hundred bytes than on a whole vocabulary.
    hf_skeleton = json.dumps({
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "a|b"}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
        "added_tokens": [{"id": 3, "content": "<s>"}], "normalizer": None,
    }).encode()
    fastllm_skeleton = json.dumps({"format": "fastllm-tokenizer", "version": 1, "pattern": "cl100k",
                                   "special_tokens": {"<s>": 2}, "ranks": ["AA==", "AQ=="]}).encode()
    seeds["py_hf_json"] += [b"\x00" + hf_skeleton, b"\x00" + b"[" * 64 + b"]" * 64]
    # The whole tiny tokenizer under the pre-tokenizers the encoder runs in one pass (class
    # splits, DeepSeek V3's form and StarCoder's), so that mutations reach that loop.
    def split(regex: str) -> dict:
        return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}

    for steps in (
        [split(r"\p{N}{1,3}"), split("[一-龥぀-ゟ]+"), split(r"[a-z]+|\s+(?!\S)|\s"),
         {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}],
        [{"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}],
    ):
        document = json.loads(hf_json)
        document["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": steps}
        seeds["py_hf_json"].append(b"\x00" + json.dumps(document, ensure_ascii=False).encode())
    seeds["py_fastllm_json"] += [b"\x00" + fastllm_skeleton]
    # A merge list rank-based BPE does not follow (every split of each token, as files
    # converted from tiktoken ranks list them): tokenizer.json, merges.txt, fastllm's v4 file.
    tokens = tok.mergeable_tokens()
    rank = {token: r for r, token in enumerate(tokens)}
    every_split = [(t[:i], t[i:]) for t in tokens for i in range(1, len(t)) if t[:i] in rank and t[i:] in rank]
    listed = type(tok)(tokens, tok.special_tokens, "cl100k", merges=every_split)
    with tempfile.TemporaryDirectory() as tmp:
        listed.to_hf_json(Path(tmp) / "tokenizer.json")
        listed.save(Path(tmp) / "tok.json")
        listed_hf = (Path(tmp) / "tokenizer.json").read_bytes()
        seeds["py_fastllm_json"].append(b"\x00" + (Path(tmp) / "tok.json").read_bytes())
    seeds["py_hf_json"].append(b"\x00" + listed_hf)
    listed_merges = "".join(f"{a} {b}\n" for a, b in json.loads(listed_hf)["model"]["merges"])
    seeds["py_gpt2_vocab"].append(vocab_json + GPT2_SEPARATOR + ("#version: 0.2\n" + listed_merges).encode())
    seeds["py_gpt2_vocab"] += [b'{"a": 0, "b": 1, "ab": 2}' + GPT2_SEPARATOR + b"#version: 0.2\na b\n" + GPT2_SEPARATOR + b'{"<s>": 3}']
    seeds["py_tiktoken_file"] += [b"\x00AA== 0\nAQ== 1\nAAE= 2\n"]
    seeds["py_open_tokenizer"] += [b"\x01" + hf_skeleton, b"\x00" + fastllm_skeleton]
    for target, files in seeds.items():
        folder = out / target
        folder.mkdir(exist_ok=True)
        for i, seed in enumerate(files):
            (folder / f"seed{i}").write_bytes(seed)
    print(f"seeds written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus")
