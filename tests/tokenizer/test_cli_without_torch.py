"""``fastllm tokenizer ...`` in a Python that has no torch (the package's core install):
the CLI registers every command without importing torch, and the tokenizer commands work.
A subprocess that cannot import torch or triton (tests/support/blocked_imports.py)."""

from __future__ import annotations

from tests.support.blocked_imports import run_without

SCRIPT = """
    import contextlib, io
    from fastllm.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["tokenizer", "encode", "hello world"])
    assert (code, out.getvalue()) == (0, "31373 995\\n"), (code, out.getvalue())
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(["--help"])  # every command's parser, post-training's included
        except SystemExit as e:
            assert e.code == 0
    assert "torch" not in sys.modules
    assert asked_by("fastllm") == [], asked_by("fastllm")
    print("OK")
"""


def test_tokenizer_cli_runs_without_torch(gpt2_cached):
    result = run_without({"torch", "triton"}, SCRIPT)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stdout + result.stderr
