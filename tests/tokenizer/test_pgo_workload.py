"""The run that the profile-guided build learns from (`tools/pgo_workload.py`) keeps working,
and the portable copies of the hot loops that its second pass runs give the same ids.

`make wheel` and `make bench` build through it (`tools/build_pgo.py`); these tests run its small
form against the installed build, so an API change that breaks it fails here, not in a release
build. Whether the profile pays is measured, not tested (benches/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from tests.support.open_model_patterns import OPEN_PATTERNS

ROOT = Path(__file__).resolve().parents[2]
# The three built-in scanners and every open model's pattern.
TOKENIZERS = f"{3 + len(OPEN_PATTERNS)} tokenizers"


def run_workload(*flags: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "pgo_workload.py"), "--quick", *flags],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_workload_runs_with_a_vocabulary_it_trains():
    out = run_workload("--no-shared")
    assert "shared data absent" in out and TOKENIZERS in out


def test_workload_runs_with_the_real_vocabularies(shared_data):
    out = run_workload(env={**os.environ, "FASTLLM_SHARED_DATA": str(shared_data)})
    assert "shared data used" in out and TOKENIZERS in out


PORTABLE_CHECK = """
import json, sys
from fastllm import _core
from fastllm.tokenizer import Tokenizer
tok = Tokenizer.from_tiktoken(sys.argv[1], "cl100k")
text = open(sys.argv[2], encoding="utf-8").read()[:300_000]
print(json.dumps([_core.testing.encoder_copy(), tok.encode_ordinary(text), tok.encode_ordinary_batch(text.splitlines())]))
"""


def encoded_in_a_process(shared_data, portable: bool):
    env = {k: v for k, v in os.environ.items() if k != "FASTLLM_PORTABLE"}
    if portable:
        env["FASTLLM_PORTABLE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", PORTABLE_CHECK, str(shared_data / "cl100k_base.tiktoken"),
         str(shared_data / "multilingual.txt")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_portable_copies_on_request_give_the_same_ids(shared_data):
    """FASTLLM_PORTABLE=1 (what the profile-guided build's second run sets) runs the portable
    copies of the hot loops, with the ids of the default ones."""
    copy, ids, batch = encoded_in_a_process(shared_data, portable=True)
    assert copy == "portable"
    default_copy, default_ids, default_batch = encoded_in_a_process(shared_data, portable=False)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if platform.machine() in ("x86_64", "AMD64") and all(f" {f}" in flags for f in ("avx2", "bmi2")):
        assert default_copy == "x86-64-v3"
    assert ids == default_ids and batch == default_batch
    assert len(ids) > 50_000
