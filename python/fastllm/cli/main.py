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
    "fastllm.cli.posttrain_cmd",
)


def _add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """``--debug`` on the parser and every sub-command, so it works wherever it is typed."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_debug_flag(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastllm",
        description="Tokenizer, GPT model, kernels and training from one toolkit.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _add_debug_flag(parser)
    return parser


# Failures a user can act on from the message alone (bad input, a missing file, a diverged
# run); anything else is a fault of fastllm or its environment and gets the --debug hint.
EXPECTED_ERRORS = (ValueError, OSError, FloatingPointError)


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
    command = args.command
    debug = getattr(args, "debug", False)
    try:
        result = handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error ends as one line unless --debug
        if debug:
            raise
        message = str(exc) or type(exc).__name__
        if isinstance(exc, EXPECTED_ERRORS):
            print(f"fastllm {command}: error: {message}", file=sys.stderr)
        else:
            print(f"fastllm {command}: internal error: {type(exc).__name__}: {message}\n"
                  "(rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
