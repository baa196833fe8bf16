"""``fastllm tokenizer ...``: train, encode, decode, stats, show.

Imports only the standard library at module level; the tokenizer is imported
inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

DEFAULT_TOKENIZER = "gpt2"
# Background colours for `show`, cycled token by token (black text on each).
_COLORS = (42, 43, 46, 45, 44, 41, 47)


def register(subparsers) -> None:
    """Adds ``fastllm tokenizer`` and its sub-commands."""
    parser = subparsers.add_parser("tokenizer", help="train, run and inspect BPE tokenizers")
    commands = parser.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)

    train = commands.add_parser("train", help="train a byte-level BPE vocabulary on text files")
    train.add_argument("files", nargs="+", help="UTF-8 text files")
    train.add_argument("--vocab-size", type=int, required=True, help="number of ids, special tokens included")
    train.add_argument("--pattern", default="cl100k", help="split pattern: gpt2, cl100k, o200k or a regex (default cl100k)")
    train.add_argument("--special", action="append", default=[], metavar="TOKEN", help="a special token (repeatable)")
    train.add_argument("--min-frequency", type=int, default=2, help="least count of a pair to merge (default 2)")
    train.add_argument("--out", required=True, help="output file")
    train.add_argument(
        "--format", choices=("fastllm", "tiktoken", "hf"), default=None,
        help="fastllm JSON (default), .tiktoken ranks, or HF tokenizer.json; default from --out's name",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(handler=_train)

    encode = commands.add_parser("encode", help="print the token ids of a text")
    _add_input_args(encode)
    encode.add_argument("--allow-special", action="store_true", help="encode special tokens in the text as their ids")
    encode.add_argument("--json", action="store_true", help="print a JSON list")
    encode.set_defaults(handler=_encode)

    decode = commands.add_parser("decode", help="print the text of token ids")
    decode.add_argument("ids", nargs="*", help="token ids, space- or comma-separated (default: stdin)")
    _add_tokenizer_args(decode)
    decode.add_argument("--strict", action="store_true", help="fail on invalid UTF-8 instead of printing U+FFFD")
    decode.set_defaults(handler=_decode)

    stats = commands.add_parser("stats", help="bytes per token and encode speed on a file")
    stats.add_argument("file", help="a UTF-8 text file")
    _add_tokenizer_args(stats)
    stats.add_argument("--json", action="store_true", help="print the numbers as JSON")
    stats.set_defaults(handler=_stats)

    show = commands.add_parser("show", help="show how a text splits into tokens")
    _add_input_args(show)
    color = show.add_mutually_exclusive_group()
    color.add_argument("--no-color", action="store_true", help="plain '|'-separated tokens")
    color.add_argument("--color", action="store_true", help="colours even when not writing to a terminal")
    show.add_argument("--ids", action="store_true", help="also print the ids")
    show.set_defaults(handler=_show)


def _add_tokenizer_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokenizer", "-t", default=DEFAULT_TOKENIZER,
        help="named encoding (gpt2, cl100k_base, o200k_base), tokenizer file (fastllm's or HF tokenizer.json), "
        f"data or HF checkpoint directory, or .tiktoken file with --pattern (default {DEFAULT_TOKENIZER})",
    )
    parser.add_argument("--pattern", default=None, help="split pattern of a .tiktoken file (gpt2, cl100k, o200k or a regex)")


def _add_input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", help="the text (default: --file, else stdin)")
    parser.add_argument("--file", "-f", default=None, help="read the text from this UTF-8 file")
    _add_tokenizer_args(parser)


def _tokenizer(args):
    from fastllm.tokenizer import open_tokenizer

    return open_tokenizer(args.tokenizer, pattern=args.pattern)


def _read_utf8(path: str) -> str:
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from None


def _input_text(args) -> str:
    if args.text is not None and args.file is not None:
        raise ValueError("give the text or --file, not both")
    if args.text is not None:
        return args.text
    if args.file is not None:
        return _read_utf8(args.file)
    return sys.stdin.read()


def _train(args) -> int:
    from fastllm import Tokenizer

    fmt = args.format or _format_from_name(args.out)
    for path in args.files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    start = time.perf_counter()
    tokenizer = Tokenizer.train(
        list(args.files),
        args.vocab_size,
        pattern=args.pattern,
        special_tokens=args.special,
        min_frequency=args.min_frequency,
        show_progress=False if args.no_progress else None,
    )
    seconds = time.perf_counter() - start
    if fmt == "tiktoken":
        tokenizer.save_tiktoken(args.out)
    elif fmt == "hf":
        tokenizer.to_hf_json(args.out)
    else:
        tokenizer.save(args.out)
    print(
        f"trained {tokenizer.n_vocab} ids ({len(tokenizer.mergeable_tokens())} ranks, "
        f"{len(tokenizer.special_tokens)} special) in {seconds:.1f} s -> {args.out} ({fmt})"
    )
    return 0


def _format_from_name(path: str) -> str:
    name = os.path.basename(path)
    if name.endswith(".tiktoken"):
        return "tiktoken"
    if name == "tokenizer.json":
        return "hf"
    return "fastllm"


def _encode(args) -> int:
    tokenizer = _tokenizer(args)
    text = _input_text(args)
    ids = tokenizer.encode(text, allowed_special="all" if args.allow_special else frozenset())
    print(json.dumps(ids) if args.json else " ".join(map(str, ids)))
    return 0


def _decode(args) -> int:
    tokenizer = _tokenizer(args)
    raw = " ".join(args.ids) if args.ids else sys.stdin.read()
    ids = []
    for field in raw.replace(",", " ").replace("[", " ").replace("]", " ").split():
        try:
            ids.append(int(field))
        except ValueError:
            raise ValueError(f"{field!r} is not a token id (an integer)") from None
    sys.stdout.write(tokenizer.decode(ids, errors="strict" if args.strict else "replace") + "\n")
    return 0


def _stats(args) -> int:
    tokenizer = _tokenizer(args)
    text = _read_utf8(args.file)
    n_bytes = len(text.encode("utf-8"))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        ids = tokenizer.encode_ordinary(text)
        times.append(time.perf_counter() - start)
    seconds = sorted(times)[1]
    result = {
        "file": args.file,
        "tokenizer": args.tokenizer,
        "bytes": n_bytes,
        "chars": len(text),
        "tokens": len(ids),
        "bytes_per_token": n_bytes / len(ids) if ids else 0.0,
        "chars_per_token": len(text) / len(ids) if ids else 0.0,
        "encode_seconds_median_of_3": seconds,
        "encode_mb_per_s": n_bytes / 1e6 / seconds if seconds > 0 else float("inf"),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
        print(f"{key:<{width}}  {shown}")
    return 0


def _show(args) -> int:
    tokenizer = _tokenizer(args)
    text = _input_text(args)
    ids = tokenizer.encode(text, allowed_special="all")
    pieces = _pieces(tokenizer, ids)
    use_color = args.color or (not args.no_color and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    if use_color:
        out = "".join(
            f"\x1b[30;{_COLORS[i % len(_COLORS)]}m{_visible(piece)}\x1b[0m" for i, piece in enumerate(pieces)
        )
    else:
        out = "|".join(_visible(piece) for piece in pieces)
    print(out)
    print(f"{len(ids)} tokens, {len(text.encode('utf-8'))} bytes")
    if args.ids:
        print(" ".join(map(str, ids)))
    return 0


def _pieces(tokenizer, ids: list[int]) -> list[str]:
    """The text of each token; tokens that split a character between them are shown
    as one piece (their bytes decode only together)."""
    pieces = []
    pending = b""
    for token in ids:
        pending += tokenizer.decode_single_token_bytes(token)
        try:
            pieces.append(pending.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data":
                continue  # the next token completes the character
            pieces.append(pending.decode("utf-8", "replace"))
        pending = b""
    if pending:
        pieces.append(pending.decode("utf-8", "replace"))
    return pieces


def _visible(piece: str) -> str:
    return piece.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
