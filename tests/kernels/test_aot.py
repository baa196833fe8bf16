"""Compile the shipped kernel configurations for real GPUs (no GPU needed).

The interpreter accepts programs the GPU compiler rejects (e.g. dot shapes under 16,
non-constexpr globals), so every configuration is compiled for sm_80 and sm_90 in a
subprocess without TRITON_INTERPRET. The table of registers, spills and shared memory is
printed (visible with ``pytest -s`` or on failure).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_aot(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    return subprocess.run(
        [sys.executable, "-m", "fastllm.kernels._aot", "--arch", "80", "90", *args],
        env=env, capture_output=True, text=True, timeout=3600,
    )


def _check(proc: subprocess.CompletedProcess) -> None:
    print(proc.stdout)
    assert proc.returncode == 0, f"AOT compilation failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "compiled" in proc.stdout and "FAILED" not in proc.stdout


def test_aot_compiles_training_configs():
    """bf16 at head dims 64/128 (training and benchmark shapes), fp32 attention at 64, the
    small kernels and both cross-entropy kernels, for sm_80 and sm_90."""
    _check(run_aot())


@pytest.mark.slow
def test_aot_compiles_every_shipped_config():
    """Every head dim (16..256) x fp16/bf16/fp32 x every kernel: ~150 compilations."""
    _check(run_aot("--full"))


def test_aot_reports_compile_errors(tmp_path):
    """The check must be able to fail: a shape the GPU compiler rejects is reported."""
    script = tmp_path / "bad.py"
    script.write_text(
        "import sys\n"
        "from fastllm.kernels import _aot as aot\n"
        "spec = [s for s in aot.kernel_specs(False) if s.kernel == 'attn_fwd_kernel'][0]\n"
        "spec.constexprs.update(BLOCK_M=8, BLOCK_N=8)\n"  # tl.dot needs >= 16
        "res = aot.compile_spec(spec, 90)\n"
        "print(res.ok, res.error[:200])\n"
        "sys.exit(0 if not res.ok else 1)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("False")
