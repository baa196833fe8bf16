"""The body shared by the single-file loader targets: write the input to a file,
load it, and judge the outcome with the harness's oracle."""

from __future__ import annotations

import json
import os
import random
import sys

os.environ.setdefault("FASTLLM_OFFLINE", "1")

import atheris  # noqa: E402

with atheris.instrument_imports():
    from fastllm import Tokenizer  # noqa: F401  (instrumented: the loaders live under it)
    import fastllm.tokenizer  # noqa: F401

from _harness import check_error, check_tokenizer, scratch_dir  # noqa: E402


BIG = "__an int of 5000 digits__"
SCALARS = [5, -1, 2**64, 1.5, None, True, "", "x", "a b", [], {}, [[]], {"": None}, "\ud800", BIG]


def json_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """Half the time, when the input (after its first byte) is JSON: replace one node by a
    value of another shape (a list by a number, an id by a huge int...), which byte-level
    mutation almost never produces; otherwise libFuzzer's own mutation."""
    rng = random.Random(seed)
    if data and rng.random() < 0.5:
        try:
            document = json.loads(data[1:])
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, (dict, list)):
            nodes = [(None, None)]  # (container, key); (None, None) is the root

            def walk(node):
                items = node.items() if isinstance(node, dict) else enumerate(node)
                for key, value in items:
                    nodes.append((node, key))
                    if isinstance(value, (dict, list)) and len(nodes) < 2000:
                        walk(value)

            walk(document)
            container, key = nodes[rng.randrange(len(nodes))]
            value = rng.choice(SCALARS)
            if container is None:
                document = value
            else:
                container[key] = value
            text = json.dumps(document, ensure_ascii=rng.random() < 0.5).replace(json.dumps(BIG), "1" * 5000)
            out = data[:1] + text.encode("utf-8", "surrogatepass")
            if len(out) <= max_size:
                return out
    return atheris.Mutate(data, max_size)


def run(file_name: str, load) -> None:
    """Fuzzes ``load(path, first_byte)`` on a file named ``file_name`` holding the input."""
    work = scratch_dir()
    path = work / file_name

    def one_input(data: bytes) -> None:
        if not data:
            return
        path.write_bytes(data[1:])
        try:
            tok = load(path, data[0])
        except Exception as exc:  # judged by the oracle
            check_error(exc, str(path))
            return
        check_tokenizer(tok, work)

    atheris.Setup(sys.argv, one_input, custom_mutator=json_mutator if file_name.endswith(".json") else None)
    atheris.Fuzz()
