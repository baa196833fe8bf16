"""Ahead-of-time compilation of every shipped kernel configuration for a GPU target.

Triton's interpreter accepts programs the GPU compiler rejects, so the test suite also
compiles each (kernel, tile configuration, dtype) we ship for ``sm_80`` and ``sm_90`` with
``triton.compile`` - no GPU needed - and reports registers, spills and shared memory::

    python -m fastllm.kernels._aot --arch 80 90 [--full] [--jobs 4] [--json out.json]

A developer tool, private because the package never imports it. The interpreter must be off for this
(``TRITON_INTERPRET`` is read when the kernels are defined); :func:`main` re-executes itself
without it. Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

# Max dynamic shared memory per block (bytes): A100 (sm_80) and H100 (sm_90).
SHARED_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448}
_TL_DTYPE = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}
# The module defining each kernel.
_ATTN_MODULE = {
    "attn_fwd_kernel": "attention_fwd",
    "attn_bwd_dkdv_kernel": "attention_bwd",
    "attn_bwd_dq_kernel": "attention_bwd",
    "attn_decode_split_kernel": "attention_decode",
}


@dataclass
class Spec:
    """One compilation: a kernel (by module and name), its constexprs and launch options."""

    module: str
    kernel: str
    pointers: Dict[str, str]  # pointer argument -> element type ("fp16", "bf16", "fp32", "i32", "i64")
    floats: Sequence[str]
    constexprs: Dict[str, object]
    num_warps: int
    num_stages: int
    label: str = ""


@dataclass
class Result:
    label: str
    arch: int
    ok: bool
    seconds: float
    shared: int = 0
    regs: Optional[int] = None
    spill_bytes: Optional[int] = None
    error: str = ""
    extra: Dict[str, object] = field(default_factory=dict)


def kernel_specs(full: bool = True) -> List[Spec]:
    """Every shipped configuration (``full``), or a quick subset: bf16 at head dims 64/128
    (the training and benchmark shapes) and float32 at 64. Each attention kernel is compiled
    plain and for padded batches (``VARLEN``; in the quick subset for bf16 only)."""
    import torch

    from . import configs

    dtypes = ["float16", "bfloat16", "float32"] if full else ["bfloat16", "float32"]
    specs: List[Spec] = []
    flags = dict(HAS_LEFT=True, HAS_RIGHT=True, HAS_SOFTCAP=True, UPCAST=False)
    attn_floats = ("scale", "softcap")
    rows = dict(KSTART="i32", KEND="i32", QEND="i32")
    for dt in dtypes:
        t = _TL_DTYPE[dt]
        ieee = dt == "float32"
        precision = configs.precision(getattr(torch, dt))
        dims = sorted(configs.ATTN["attn_fwd_kernel", precision]) if full else ([64, 128] if dt == "bfloat16" else [64])
        for d in dims:
            for kernel, ptrs in (
                ("attn_fwd_kernel", dict(Q=t, K=t, V=t, O=t, LSE="fp32", **rows)),
                ("attn_bwd_dkdv_kernel", dict(Q=t, K=t, V=t, DO=t, LSE="fp32", DELTA="fp32", DK=t, DV=t, **rows)),
                ("attn_bwd_dq_kernel", dict(Q=t, K=t, V=t, DO=t, LSE="fp32", DELTA="fp32", DQ=t, **rows)),
                ("attn_decode_split_kernel", dict(Q=t, K=t, V=t, PO="fp32", PLSE="fp32", **rows)),
            ):
                cfg = configs.ATTN[kernel, precision][d]
                for varlen in (False, True) if full or dt == "bfloat16" else (False,):
                    specs.append(Spec(
                        _ATTN_MODULE[kernel], kernel, ptrs, attn_floats,
                        dict(HEAD_DIM=d, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_D=d, IEEE=ieee,
                             VARLEN=varlen, **flags),
                        cfg.num_warps, cfg.num_stages, f"{kernel} d={d} {dt}" + (" varlen" if varlen else ""),
                    ))
        if not full and dt == "float32":
            continue  # the small kernels below hardly depend on the dtype
        specs.append(Spec("attention_bwd", "attn_bwd_delta_kernel", dict(O=t, DO=t, DELTA="fp32"), (),
                          dict(HEAD_DIM=128, BLOCK_M=64, BLOCK_D=128), 4, 1, f"attn_bwd_delta_kernel {dt}"))
        specs.append(Spec("attention_decode", "attn_decode_combine_kernel", dict(PO="fp32", PLSE="fp32", O=t, LSE="fp32"), (),
                          dict(HEAD_DIM=128, BLOCK_S=64, BLOCK_D=128), 4, 1, f"attn_decode_combine_kernel {dt}"))
        ce_floats = ("smoothing", "z_loss", "softcap")
        fwd, bwd = configs.CE["ce_fwd_kernel"], configs.CE["ce_bwd_kernel"]
        vec = 4 if dt == "float32" else 8  # 16-byte loads (cross_entropy.load_width)
        specs.append(Spec("cross_entropy", "ce_fwd_kernel", dict(LOGITS=t, TARGET="i64", LOSS="fp32", LSE="fp32"),
                          ce_floats, dict(BLOCK_V=fwd.block_v, VEC=vec, HAS_SOFTCAP=True, HAS_SMOOTHING=True),
                          fwd.num_warps, fwd.num_stages, f"ce_fwd_kernel {dt}"))
        specs.append(Spec("cross_entropy", "ce_bwd_kernel",
                          dict(LOGITS=t, GRAD=t, TARGET="i64", LSE="fp32", DLOSS="fp32"), ce_floats,
                          dict(BLOCK_V=bwd.block_v, VEC=vec, HAS_SOFTCAP=True), bwd.num_warps, bwd.num_stages,
                          f"ce_bwd_kernel {dt}"))
    return specs


def _resource_usage(cubin: bytes) -> Dict[str, int]:
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        return {}
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True).stdout
    found = dict(re.findall(r"\b(REG|STACK|LOCAL):(\d+)", out.split("Function", 1)[-1]))
    return {k: int(v) for k, v in found.items()}


def compile_spec(spec: Spec, arch: int) -> Result:
    """Compile one spec for ``sm_<arch>`` (in this process: the interpreter must be off)."""
    import importlib

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    start = time.time()
    try:
        module = importlib.import_module(f"fastllm.kernels.{spec.module}")
        # cross_entropy defines its kernels at the first launch (see its triton_kernels)
        lazy = getattr(module, "triton_kernels", None)
        fn = lazy()[spec.kernel] if lazy is not None else getattr(module, spec.kernel)
        if not hasattr(fn, "fn"):
            raise RuntimeError("kernel module was imported under TRITON_INTERPRET; run without it")
        # Mirror the JIT's specialisation for contiguous (B, H, N, D) tensors from torch's
        # allocator: unit head-dim strides become constants, pointers and the other
        # attention strides are known multiples of 16.
        signature, constexprs, attrs = {}, dict(spec.constexprs), {}
        for i, name in enumerate(inspect.signature(fn.fn).parameters):
            if name in constexprs:
                signature[name] = "constexpr"
            elif spec.module.startswith("attention") and re.fullmatch(r"s[a-z]d", name):
                signature[name], constexprs[name] = "constexpr", 1
            elif name in spec.pointers:
                signature[name] = "*" + spec.pointers[name]
                attrs[(i,)] = [["tt.divisibility", 16]]
            elif name in spec.floats:
                signature[name] = "fp32"
            else:
                signature[name] = "i32"
                if spec.module.startswith("attention") and re.fullmatch(r"s[a-z][a-z]", name):
                    attrs[(i,)] = [["tt.divisibility", 16]]
        kernel = triton.compile(
            ASTSource(fn, signature, constexprs, attrs),
            target=GPUTarget("cuda", arch, 32),
            options=dict(num_warps=spec.num_warps, num_stages=spec.num_stages),
        )
        shared = int(kernel.metadata.shared)
        usage = _resource_usage(kernel.asm["cubin"])
        res = Result(spec.label, arch, True, time.time() - start, shared, usage.get("REG"),
                     usage.get("STACK", 0) + usage.get("LOCAL", 0) if usage else None)
        limit = SHARED_LIMIT.get(arch)
        if limit is not None and shared > limit:
            res.ok, res.error = False, f"needs {shared} bytes of shared memory, sm_{arch} allows {limit}"
        return res
    except Exception as exc:  # report every failure, keep compiling the rest
        return Result(spec.label, arch, False, time.time() - start, error=f"{type(exc).__name__}: {exc}"[:2000])


def _compile_job(args):
    return compile_spec(*args)


def compile_all(specs: Sequence[Spec], archs: Sequence[int], jobs: int = 1) -> List[Result]:
    work = [(s, a) for a in archs for s in specs]
    if jobs <= 1:
        return [compile_spec(s, a) for s, a in work]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(_compile_job, work))


def format_table(results: Sequence[Result]) -> str:
    lines = [f"{'kernel':<44} {'sm':>3} {'ok':>3} {'regs':>5} {'spill B':>8} {'smem B':>8} {'s':>6}"]
    for r in results:
        lines.append(
            f"{r.label:<44} {r.arch:>3} {'yes' if r.ok else 'NO':>3} {str(r.regs):>5} {str(r.spill_bytes):>8} "
            f"{r.shared:>8} {r.seconds:>6.1f}" + (f"  {r.error.splitlines()[-1] if r.error else ''}" if not r.ok else "")
        )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    parser.add_argument("--full", action="store_true", help="all head dims and dtypes (default: bf16, d=64/128)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        os.execve(sys.executable, [sys.executable, "-m", "fastllm.kernels._aot", *(argv if argv is not None else sys.argv[1:])], env)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    results = compile_all(kernel_specs(args.full), args.arch, args.jobs)
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=1)
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)}/{len(results)} compiled" + (f"; {len(failed)} FAILED" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
