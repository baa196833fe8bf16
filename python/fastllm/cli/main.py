"""Entry point of the ``fastllm`` console command.

Each command group registers itself from its own module through a
``register(subparsers)`` function; modules must import cheaply (no torch at
import time) so ``fastllm tokenizer ...`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that each add sub-commands, in the order they appear in --help.
COMMAND_MODULES = (
    "fastllm.cli.tokenizer_cmd",
    "fastllm.cli.model_cmd",
    "fastllm.cli.train_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastllm",
        description="Tokenizer, GPT model, kernels and training from one toolkit.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from fastllm import __version__

        print(__version__)
        return 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        result = handler(args)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"fastllm {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
