"""Tile sweep for the attention kernels on a GPU: times candidate (block_m, block_n, warps,
stages) configurations of the forward, dK/dV and dQ kernels against the shipped ones and
prints the winners as ``configs.py`` entries.

The half-precision tiles at head dims 64 and 128 in ``fastllm/kernels/configs.py`` are this
sweep's winners on an H200 (2026-12-04); the others were chosen from compile statistics only
(registers, spills, shared memory) until a sweep measures them (``--head-dims 256 32 16``). Shapes follow
``bench_attention.py``: batch*seq = 16384, heads*head_dim = 2048, bf16.

    python benches/tune_attention.py [--seq 4096] [--head-dims 128 64] [--causal] [--budget 120] [--json out.json]

A candidate that fails to compile or runs out of shared memory is reported and skipped. The
sweep stops starting new measurements once ``--budget`` seconds have passed, so it fits in
``gpu_check.sh``'s time limit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from fastllm.kernels import checks, configs
from fastllm.kernels.attention_bwd import attention_backward
from fastllm.kernels.attention_fwd import attention_forward

C = configs.AttnConfig
DEVICE = "cuda"
# Candidates per kernel and head dim. All compile for sm_90 within its shared memory; those
# that spill registers at head dim 128 (checked with fastllm.kernels._aot's compile_spec) are
# left out there.
_FWD = [C(128, 64, 8, 2), C(128, 64, 8, 3), C(128, 128, 8, 2), C(128, 128, 8, 3), C(128, 32, 4, 3), C(64, 64, 4, 3)]
_DKDV = [C(32, 128, 8, 2), C(32, 64, 4, 2), C(16, 128, 8, 2)]
_DQ = [C(128, 32, 8, 2), C(128, 64, 8, 2), C(64, 64, 4, 2), C(64, 32, 4, 3)]
# Head dim 256 holds smaller tiles (shared memory, registers); 16 and 32 take larger ones. The
# shipped tile comes first in each list.
_SMALL_D = {
    "fwd": [C(128, 64, 8, 3), C(128, 128, 8, 3), C(128, 128, 4, 3), C(64, 128, 4, 3), C(128, 64, 4, 3), C(64, 64, 4, 3)],
    "bwd_dkdv": [C(32, 128, 8, 2), C(64, 128, 4, 2), C(64, 128, 8, 2), C(64, 64, 4, 2), C(128, 128, 8, 2)],
    "bwd_dq": [C(128, 32, 8, 2), C(128, 64, 4, 3), C(128, 64, 8, 2), C(64, 64, 4, 2), C(128, 128, 8, 2)],
}
CANDIDATES = {
    "fwd": {
        64: _FWD + [C(128, 64, 4, 3), C(64, 128, 4, 2)], 128: _FWD, 16: _SMALL_D["fwd"], 32: _SMALL_D["fwd"],
        256: [C(64, 32, 8, 2), C(64, 32, 4, 2), C(64, 64, 8, 2), C(64, 64, 4, 2), C(128, 32, 8, 2), C(128, 64, 8, 2)],
    },
    "bwd_dkdv": {
        64: _DKDV + [C(64, 128, 8, 2), C(64, 128, 8, 3), C(64, 64, 4, 2)], 128: _DKDV,
        16: _SMALL_D["bwd_dkdv"], 32: _SMALL_D["bwd_dkdv"],
        256: [C(32, 32, 8, 1), C(32, 32, 4, 1), C(32, 32, 8, 2), C(32, 64, 8, 1), C(16, 64, 4, 2), C(64, 32, 8, 1)],
    },
    "bwd_dq": {
        64: _DQ + [C(128, 32, 4, 2)], 128: _DQ, 16: _SMALL_D["bwd_dq"], 32: _SMALL_D["bwd_dq"],
        256: [C(64, 32, 8, 2), C(64, 32, 4, 2), C(32, 64, 4, 2), C(64, 64, 8, 1), C(128, 32, 8, 1)],
    },
}
# The configs.ATTN keys swept (bf16 shares the half-precision tables with fp16).
TABLE_KEYS = {
    "fwd": ("attn_fwd_kernel", configs.HALF),
    "bwd_dkdv": ("attn_bwd_dkdv_kernel", configs.HALF),
    "bwd_dq": ("attn_bwd_dq_kernel", configs.HALF),
}
TABLES = {kernel: configs.ATTN[key] for kernel, key in TABLE_KEYS.items()}


def measure(kernel, cfg, q, k, v, out, lse, dout, scale, win):
    """Milliseconds of one forward (``fwd``) or one whole backward with ``cfg`` in the
    kernel's table (the other backward kernel keeps its shipped configuration)."""
    from triton.testing import do_bench

    table = TABLES[kernel]
    d = configs.padded_head_dim(q.shape[-1])
    shipped = table[d]
    table[d] = cfg
    try:
        if kernel == "fwd":
            return do_bench(lambda: attention_forward(q, k, v, scale, win, 0.0), warmup=10, rep=40)
        return do_bench(lambda: attention_backward(dout, q, k, v, out, lse, scale, win, 0.0), warmup=10, rep=40)
    finally:
        table[d] = shipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--head-dims", type=int, nargs="+", default=[128, 64], help="in this order (128 first: the FA2 target)")
    parser.add_argument("--causal", action="store_true", help="also sweep causal attention (twice the compilations)")
    parser.add_argument("--tokens", type=int, default=16384, help="batch * seq")
    parser.add_argument("--width", type=int, default=2048, help="heads * head_dim")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds; no new measurement starts after it")
    parser.add_argument("--json", help="write every measurement here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("tune_attention: needs a CUDA GPU")
        return 1
    start = time.monotonic()
    rows, winners = [], {}
    print(f"device: {torch.cuda.get_device_name()}  seq {args.seq}  bf16  (TFLOP/s; * = shipped)")
    for d in args.head_dims:
        b, h, n = max(1, args.tokens // args.seq), max(1, args.width // d), args.seq
        q, k, v = (torch.randn(b, h, n, d, device=DEVICE, dtype=torch.bfloat16) for _ in range(3))
        dout = torch.randn_like(q)
        for causal in (False, True) if args.causal else (False,):
            scale, win, _ = checks.check_attention(q, k, v, None, None, None, causal)
            out, lse = attention_forward(q, k, v, scale, win, 0.0)
            fwd_flops = 4 * b * h * n * n * d / (2 if causal else 1)
            for kernel, by_dim in CANDIDATES.items():
                candidates = by_dim.get(configs.padded_head_dim(d), by_dim[128])
                flops = fwd_flops * (1.0 if kernel == "fwd" else 2.5)
                shipped = TABLES[kernel][configs.padded_head_dim(d)]
                results = []
                for cfg in candidates:
                    if time.monotonic() - start > args.budget:
                        break
                    row = dict(kernel=kernel, head_dim=d, causal=causal, seq=n, config=cfg.__dict__.copy())
                    try:
                        ms = measure(kernel, cfg, q, k, v, out, lse, dout, scale, win)
                        row.update(ms=ms, tflops=flops / (ms * 1e-3) / 1e12)
                        results.append((ms, cfg))
                    except Exception as exc:  # does not compile / out of shared memory
                        row["error"] = f"{type(exc).__name__}: {exc}"[:200]
                    rows.append(row)
                cells = ", ".join(
                    f"{r['config']['block_m']}x{r['config']['block_n']}/w{r['config']['num_warps']}/s{r['config']['num_stages']}"
                    f"{'*' if C(**r['config']) == shipped else ''} "
                    + (f"{r['tflops']:.0f}" if "tflops" in r else "error")
                    for r in rows if r["kernel"] == kernel and r["head_dim"] == d and r["causal"] == causal
                )
                print(f"D={d:<4} causal={str(causal):<5} {kernel:<9} {cells}", flush=True)
                if results:
                    best = min(results, key=lambda r: r[0])[1]
                    winners.setdefault((kernel, d), []).append(best)
        del q, k, v, dout
        torch.cuda.empty_cache()
    print("\nwinners" + (" (non-causal, then causal)" if args.causal else " (non-causal)") + ":")
    for (kernel, d), best in winners.items():
        print(f"  ATTN[{TABLE_KEYS[kernel]!r}][{d}] = " + " / ".join(f"AttnConfig({c.block_m}, {c.block_n}, {c.num_warps}, {c.num_stages})" for c in best))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), seq=args.seq, rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
