"""``fastllm generate``, ``fastllm eval`` and ``fastllm viz attention|report|dataset``: using a GPT-2 checkpoint directory.

Imports nothing heavy at module level: torch and the model load inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys

from fastllm import options
from fastllm.options import flag


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="checkpoint directory in Hugging Face's GPT-2 layout (config.json, weights, tokenizer)")
    parser.add_argument("--device", type=flag(options.device, "--device"), default="auto", help="auto | cpu | cuda | cuda:N (default: auto, a GPU when available)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="weights dtype (default: float32)")


def _load(args):
    import torch

    from fastllm import Tokenizer
    from fastllm.model import GPT
    from fastllm.train.runtime import resolve_device

    device = resolve_device(args.device)
    model = GPT.from_pretrained(args.model, dtype=getattr(torch, args.dtype), device=device)
    return model, Tokenizer.from_pretrained(args.model)


def _run_generate(args) -> int:
    from fastllm.model import stream_generate

    model, tokenizer = _load(args)
    if not args.prompt:
        raise ValueError("the prompt is empty; give some text with --prompt")
    prompt_len = len(tokenizer.encode(args.prompt, allowed_special="all"))
    room = model.config.block_size - prompt_len
    if room < 1:
        raise ValueError(f"the prompt has {prompt_len} tokens; the model's context is {model.config.block_size}")
    max_new = min(args.max_new_tokens, room)
    pieces = stream_generate(  # checks the arguments before anything is printed
        model, tokenizer, args.prompt, max_new, args.temperature, args.top_k, args.top_p,
        stop=args.stop or None, seed=args.seed,
    )
    out = sys.stdout
    if args.echo:
        out.write(args.prompt)
    for piece in pieces:
        out.write(piece)
        out.flush()
    out.write("\n")
    if max_new < args.max_new_tokens:
        print(f"(stopped at the end of the {model.config.block_size}-token context)", file=sys.stderr)
    return 0


def _run_eval(args) -> int:
    from fastllm.cli.tokenizer_cmd import read_utf8_file
    from fastllm.model import evaluate_text

    text = read_utf8_file(args.file)  # before the model loads: a bad file fails at once, naming itself
    model, tokenizer = _load(args)
    result = evaluate_text(model, tokenizer, text, context=args.context, stride=args.stride,
                           batch_size=args.batch_size, progress=not args.quiet)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"tokens         {result.tokens}")
        print(f"bytes          {result.bytes}")
        print(f"loss           {result.loss:.4f} nats/token")
        print(f"perplexity     {result.perplexity:.3f}")
        print(f"bits per byte  {result.bits_per_byte:.4f}")
    return 0


def _run_viz_attention(args) -> int:
    from fastllm.model.visualize import save_attention_map

    model, tokenizer = _load(args)
    if not args.prompt:
        raise ValueError("the prompt is empty; give some text with --prompt")
    path = save_attention_map(model, tokenizer, args.prompt, args.layer, args.out)
    print(f"wrote {path}")
    return 0


def _needs_package(module: str, why: str, install: str) -> None:
    """Refuses at once, before a model loads, when an optional package is missing (a ValueError:
    the user can act on it from the message alone)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ValueError(f"{why} needs the {module} package: {install}")


def _run_viz_report(args) -> int:
    from fastllm.model.visualize import write_report

    _needs_package("plotly", "the HTML page", "pip install 'fastllm[viz]'")
    if not args.prompt:
        raise ValueError("the prompt is empty; give some text with --prompt")
    model, tokenizer = _load(args)
    path = write_report(model, tokenizer, args.prompt, args.out, top_k=args.top_k, max_tokens=args.max_tokens,
                        model_name=args.model)
    print(f"wrote {path}")
    return 0


def _run_viz_dataset(args) -> int:
    import itertools
    from pathlib import Path

    from fastllm.model.visualize import atlas
    from fastllm.train.prepare import file_documents

    _needs_package("plotly", "the HTML page", "pip install 'fastllm[viz]'")
    if args.projection == "umap" and not atlas.umap_available():
        raise ValueError("--projection umap needs umap-learn: pip install umap-learn (or use --projection pca)")
    for path in args.data:  # before the model loads: a missing file fails at once
        if not Path(path).is_file():
            raise FileNotFoundError(f"input file {path} does not exist")
    model, tokenizer = _load(args)
    max_tokens = args.max_tokens or model.config.block_size
    if max_tokens > model.config.block_size:
        raise ValueError(f"--max-tokens {max_tokens} is longer than the model's context of {model.config.block_size}")
    documents = itertools.chain.from_iterable(
        file_documents(path, max_chars=atlas.CHARS_PER_TOKEN_BOUND * max_tokens) for path in args.data)
    summary = atlas.write_atlas(
        model, tokenizer, documents, args.out, clusters=args.clusters, projection=args.projection,
        batch_size=args.batch_size, max_tokens=max_tokens, text_chars=args.text_chars, limit=args.limit,
        seed=args.seed, progress=not args.quiet, model_name=args.model,
    )
    how = summary.projection
    if summary.explained:
        how += f", {100 * sum(summary.explained):.1f}% of the variance"
    elif summary.projection == "PCA" and not atlas.umap_available():
        how += "; pip install umap-learn for UMAP"
    skipped = f" ({summary.skipped} empty skipped)" if summary.skipped else ""
    print(f"wrote {summary.path}: {summary.documents} documents{skipped}, {summary.clusters} clusters, "
          f"projected by {how}")
    return 0


def register(subparsers) -> None:
    """Adds ``generate``, ``eval`` and ``viz`` to the ``fastllm`` parser."""
    gen = subparsers.add_parser("generate", help="generate text from a prompt, streamed to the terminal")
    _add_model_args(gen)
    gen.add_argument("--prompt", required=True, help="the text to continue")
    gen.add_argument("--max-new-tokens", type=flag(options.positive_int, "--max-new-tokens"), default=100, help="tokens to generate (default: 100)")
    gen.add_argument("--temperature", type=flag(options.non_negative_float, "--temperature"), default=0.8, help="0 = greedy (default: 0.8)")
    gen.add_argument("--top-k", type=flag(options.positive_int, "--top-k"), default=None, help="sample among the k most likely tokens")
    gen.add_argument("--top-p", type=flag(options.probability_mass, "--top-p"), default=None, help="nucleus sampling: smallest set with this mass, in (0, 1]")
    gen.add_argument("--seed", type=flag(options.integer, "--seed"), default=None, help="seed for reproducible sampling")
    gen.add_argument("--stop", action="append", default=[], metavar="TEXT",
                     help="stop when this text is generated (repeatable); <|endoftext|> always stops")
    gen.add_argument("--no-echo", dest="echo", action="store_false", help="do not print the prompt first")
    gen.set_defaults(handler=_run_generate)

    ev = subparsers.add_parser("eval", help="loss, perplexity and bits per byte of a model on a text file")
    _add_model_args(ev)
    ev.add_argument("file", help="UTF-8 text file")
    ev.add_argument("--context", type=flag(options.positive_int, "--context"), default=None, help="window length (default: the model's context)")
    ev.add_argument("--stride", type=flag(options.positive_int, "--stride"), default=None,
                    help="tokens scored per window after the first (default: the context, no overlap)")
    ev.add_argument("--batch-size", type=flag(options.positive_int, "--batch-size"), default=8, help="windows per forward pass (default: 8)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(handler=_run_eval)

    viz = subparsers.add_parser("viz", help="pictures of what a model does")
    viz_sub = viz.add_subparsers(dest="viz_command", metavar="WHAT", required=True)
    attn = viz_sub.add_parser("attention", help="heatmaps of a layer's attention, one per head, as a PNG")
    _add_model_args(attn)
    attn.add_argument("--prompt", required=True, help="the text whose attention to show")
    attn.add_argument("--layer", type=flag(options.integer, "--layer"), default=0, help="layer index from 0; negative counts from the end")
    attn.add_argument("--out", default="attn.png", help="PNG path to write (default: attn.png)")
    attn.set_defaults(handler=_run_viz_attention)

    report = viz_sub.add_parser("report", help="an interactive HTML report of a prompt through the model "
                                "(architecture, tokens, attention, predictions, logit lens)")
    _add_model_args(report)
    report.add_argument("--prompt", required=True, help="the text to look at")
    report.add_argument("--out", default="report.html", help="HTML file to write (default: report.html)")
    report.add_argument("--top-k", type=flag(options.positive_int, "--top-k"), default=5,
                        help="predictions shown per position (default: 5)")
    report.add_argument("--max-tokens", type=flag(options.positive_int, "--max-tokens"), default=128,
                        help="longest prompt accepted, in tokens; the page holds every head's attention "
                             "(default: 128)")
    report.set_defaults(handler=_run_viz_report)

    dataset = viz_sub.add_parser("dataset", help="an interactive HTML map of a dataset: documents embedded, "
                                 "projected to 2-D and clustered")
    _add_model_args(dataset)
    dataset.add_argument("--data", required=True, nargs="+", metavar="FILE",
                         help="text files (a line holding one form feed separates documents) or .jsonl "
                              "(\"text\" or chat \"messages\" per line)")
    dataset.add_argument("--out", default="atlas.html", help="HTML file to write (default: atlas.html)")
    dataset.add_argument("--projection", choices=("auto", "pca", "umap"), default="auto",
                         help="2-D projection: auto = UMAP when umap-learn is installed, else PCA (default: auto)")
    dataset.add_argument("--clusters", type=flag(options.positive_int, "--clusters"), default=None,
                         help="k-means clusters, at most 24 (default: about sqrt(documents / 2), at most 10)")
    dataset.add_argument("--batch-size", type=flag(options.positive_int, "--batch-size"), default=32,
                         help="documents per forward pass (default: 32)")
    dataset.add_argument("--max-tokens", type=flag(options.positive_int, "--max-tokens"), default=None,
                         help="tokens embedded per document (default: the model's context)")
    dataset.add_argument("--text-chars", type=flag(options.positive_int, "--text-chars"), default=300,
                         help="characters of each document shown on hover and searched (default: 300)")
    dataset.add_argument("--limit", type=flag(options.positive_int, "--limit"), default=None,
                         help="map only the first N documents")
    dataset.add_argument("--seed", type=flag(options.integer, "--seed"), default=0,
                         help="seed of the clustering and of UMAP (default: 0)")
    dataset.add_argument("--quiet", action="store_true", help="no progress bars")
    dataset.set_defaults(handler=_run_viz_dataset)
