"""Training sub-commands: ``prepare``, ``train``, ``chat`` and ``demo`` (post-training: ``posttrain_cmd``).

Only argparse set-up happens at import time; torch and the training modules are
imported inside the handlers, so ``fastllm --help`` stays fast.
"""

from __future__ import annotations

from fastllm import options
from fastllm.options import flag


def _prepare(args) -> int:
    from fastllm.tokenizer import open_tokenizer
    from fastllm.train.prepare import prepare_files

    tokenizer = open_tokenizer(args.tokenizer)
    meta = prepare_files(
        args.files, tokenizer, args.out, val_fraction=args.val_fraction, shard_tokens=args.shard_tokens,
        chunk_bytes=args.chunk_bytes, num_threads=args.threads, progress=not args.quiet,
    )
    splits = meta["splits"]
    print(f"{meta['documents']} documents -> {splits['train']['tokens']:,} train and "
          f"{splits['val']['tokens']:,} val tokens ({meta['dtype']}) in {args.out}")
    return 0


def _train(args) -> int:
    from fastllm.train.config import config_from_args
    from fastllm.train.pretrain import train

    cfg = config_from_args(args)
    if not cfg.data:
        raise ValueError("no data directory: pass --data DIR (from fastllm prepare) or set data in --config")
    summary = train(cfg)
    if summary.get("final_val_loss") is not None:
        print(f"final validation loss {summary['final_val_loss']:.4f}")
    if summary.get("model_dir"):
        print(f"model saved to {summary['model_dir']}")
    return 0


def _chat(args) -> int:
    from fastllm.cli.chat import chat_loop, load_chat_model

    model, tokenizer = load_chat_model(args.model, args.device, tools=args.tools)
    chat_loop(model, tokenizer, system=args.system, max_new_tokens=args.max_new_tokens,
              temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
              tools=args.tools)
    return 0


def _demo(args) -> int:
    if args.files[:1] == [ASSISTANT_DEMO]:
        return _assistant_demo(args)
    from fastllm.demos.pretraining import DemoSettings, quick_settings, run_demo

    overrides = {"out": args.out or "out/demo", "files": list(args.files)}
    for name in ("max_steps", "vocab_size", "seed"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    settings = quick_settings(**overrides) if args.quick else DemoSettings(**overrides)
    run_demo(settings)
    return 0


ASSISTANT_DEMO = "assistant"


def _assistant_demo(args) -> int:
    if len(args.files) > 1:
        raise ValueError("the assistant demo makes its own data and takes no files")
    if args.max_steps is not None or args.vocab_size is not None:
        raise ValueError("--max-steps and --vocab-size belong to the pre-training demo; "
                         "the assistant demo has --quick for a short run")
    from fastllm.demos.assistant import AssistantSettings, quick_assistant_settings, run_assistant_demo

    overrides = {"out": args.out or "out/assistant"}
    if args.seed is not None:
        overrides["seed"] = args.seed
    run_assistant_demo(quick_assistant_settings(**overrides) if args.quick else AssistantSettings(**overrides))
    return 0


def register(subparsers) -> None:
    """Adds this module's sub-commands to the ``fastllm`` parser."""
    from fastllm.train.config import add_config_flags

    p = subparsers.add_parser("prepare", help="tokenize text files into training shards",
                              description="Tokenize text (or JSONL with a \"text\" field) into uint16/uint32 "
                                          "shards with a train/validation split and meta.json.")
    p.add_argument("files", nargs="+", help="UTF-8 text files (a line holding one form feed separates documents) "
                                            "or .jsonl files")
    p.add_argument("--tokenizer", required=True, help="a saved tokenizer file, a model directory, or an encoding "
                                                      "name (gpt2, cl100k_base, o200k_base)")
    p.add_argument("--out", required=True, help="output data directory")
    p.add_argument("--val-fraction", type=flag(options.unit_interval, "--val-fraction"), default=0.1,
                   help="share of the text for validation (default 0.1)")
    p.add_argument("--shard-tokens", type=flag(options.positive_int, "--shard-tokens"), default=100_000_000,
                   help="tokens per shard file")
    p.add_argument("--chunk-bytes", type=flag(options.positive_int, "--chunk-bytes"), default=32_768,
                   help="bytes of text per encoded piece (default 32768)")
    p.add_argument("--threads", type=flag(options.positive_int, "--threads"), default=None,
                   help="encoding threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_prepare)

    p = subparsers.add_parser("train", help="pre-train a GPT (torchrun for several processes)",
                              description="Pre-train a GPT on prepared data. Settings come from --config "
                                          "(TOML or JSON) and the flags below (flags win). Launch with "
                                          "`torchrun --nproc_per_node N -m fastllm train ...` for data parallelism.")
    p.add_argument("--config", help="TOML or JSON file of settings")
    add_config_flags(p)
    p.set_defaults(handler=_train)

    from fastllm.train.tools import TOOL_NAMES

    p = subparsers.add_parser("chat", help="talk to a chat model (streaming)")
    p.add_argument("--model", required=True, help="model directory (after fastllm sft)")
    p.add_argument("--system", default=None, help="system message")
    p.add_argument("--max-new-tokens", type=flag(options.positive_int, "--max-new-tokens"), default=256)
    p.add_argument("--temperature", type=flag(options.non_negative_float, "--temperature"), default=0.7,
                   help="0 = greedy (default 0.7)")
    p.add_argument("--top-k", type=flag(options.positive_int, "--top-k"), default=50)
    p.add_argument("--top-p", type=flag(options.probability_mass, "--top-p"), default=None)
    p.add_argument("--seed", type=flag(options.integer, "--seed"), default=None)
    p.add_argument("--device", type=flag(options.device, "--device"), default="auto")
    p.add_argument("--tools", nargs="+", type=flag(options.choice(*TOOL_NAMES), "--tools"), default=None,
                   metavar="TOOL", help=f"tools the model may call ({', '.join(TOOL_NAMES)}); they are announced "
                                        "in the system message and run when the model calls them")
    p.set_defaults(handler=_chat)

    p = subparsers.add_parser(
        "demo", help="train a tokenizer and a small GPT end to end, in minutes on a CPU "
                     "(`demo assistant`: post-training, each stage measured)",
        usage="fastllm demo [FILES ...] [options]\n       fastllm demo assistant [--out DIR] [--quick] [--seed N]",
        description="`fastllm demo [FILES]`: raw text -> tokenizer -> shards -> a small GPT. "
                    "`fastllm demo assistant`: from nothing to a small assistant on synthetic data, through "
                    "pre-training, SFT with tool calls, the refusal recipe, DPO and RL, each stage measured on "
                    "held-out items (OUT/metrics.json, a plot per stage). A file named `assistant`: write ./assistant.")
    p.add_argument("files", nargs="*", help="your own text files (default: CPython's built-in documentation), "
                                            "or the word `assistant`")
    p.add_argument("--out", default=None, help="output directory (default: out/demo, or out/assistant)")
    p.add_argument("--quick", action="store_true", help="tiny settings: a run of seconds (for tests)")
    p.add_argument("--max-steps", type=flag(options.positive_int, "--max-steps"), default=None, help="training steps")
    p.add_argument("--vocab-size", type=flag(options.positive_int, "--vocab-size"), default=None,
                   help="tokenizer vocabulary size")
    p.add_argument("--seed", type=flag(options.integer, "--seed"), default=None)
    p.set_defaults(handler=_demo)

