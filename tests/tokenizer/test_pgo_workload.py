"""The run that the profile-guided build learns from (`tools/pgo_workload.py`) keeps working.

`make wheel` and `make bench` build through it (`tools/build_pgo.py`); these tests run its small
form against the installed build, so an API change that breaks it fails here, not in a release
build. Whether the profile pays is measured, not tested (benches/RESULTS.md).
"""

from __future__ import annotations

import os
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
