"""Attention throughput: fastllm's Triton kernel vs torch SDPA (flash and cuDNN backends)
and flash_attn (when importable), all measured in the same run.

TFLOP/s with forward FLOPs = 4*B*H*Nq*Nk*D (halved when causal), backward = 2.5x forward,
forward+backward = 3.5x forward. batch*seq = 16384 and heads*head_dim = 2048.

    python benches/bench_attention.py [--short] [--json out.json] [--dtype bf16|fp16] [--head-dims 64 128] [--seqs ...]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.nn.functional as F


def providers(dtype):
    """name -> fn(q, k, v, causal) taking (B, H, N, D) tensors."""
    from fastllm.kernels import flash_attention

    out = {"fastllm": lambda q, k, v, causal: flash_attention(q, k, v, causal=causal)}
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        def sdpa(backend):
            def fn(q, k, v, causal):
                with sdpa_kernel(backend):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            return fn

        out["torch-flash"] = sdpa(SDPBackend.FLASH_ATTENTION)
        out["torch-cudnn"] = sdpa(SDPBackend.CUDNN_ATTENTION)
    except ImportError:
        pass
    try:
        from flash_attn import flash_attn_func

        # flash_attn wants (B, N, H, D): the transposes are views, inside the timing, as a
        # caller with SDPA-layout tensors would pay them
        out["flash_attn"] = lambda q, k, v, causal: flash_attn_func(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=causal
        ).transpose(1, 2)
    except ImportError:
        pass
    return out


def bench_one(fn, q, k, v, causal, mode):
    from triton.testing import do_bench

    if mode == "fwd":
        with torch.no_grad():
            return do_bench(lambda: fn(q, k, v, causal), warmup=25, rep=100)
    out = fn(q, k, v, causal)
    dout = torch.randn_like(out)
    if mode == "bwd":
        return do_bench(lambda: out.backward(dout, retain_graph=True), warmup=25, rep=100, grad_to_none=[q, k, v])

    def both():
        fn(q, k, v, causal).backward(dout)

    return do_bench(both, warmup=25, rep=100, grad_to_none=[q, k, v])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="fewer sequence lengths (used by gpu_check.sh)")
    parser.add_argument("--json", help="write results here")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    parser.add_argument("--head-dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--seqs", type=int, nargs="+", help="sequence lengths (default: by --short)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_attention: needs a CUDA GPU")
        return 1
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    seqs = args.seqs or ([1024, 4096, 16384] if args.short else [512, 1024, 2048, 4096, 8192, 16384])
    provs = providers(dtype)
    names = list(provs)
    rows = []
    print(f"device: {torch.cuda.get_device_name()}  dtype: {args.dtype}  providers: {', '.join(names)}")
    header = f"{'D':>4} {'causal':>6} {'seq':>6} {'mode':>7} " + " ".join(f"{n:>12}" for n in names) + "   fastllm/torch-flash"
    print(header + "\n" + "-" * len(header))
    for d in args.head_dims:
        for causal in (False, True):
            for n in seqs:
                b, h = 16384 // n, 2048 // d
                q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
                fwd_flops = 4 * b * h * n * n * d / (2 if causal else 1)
                for mode, mult in (("fwd", 1.0), ("bwd", 2.5), ("fwd+bwd", 3.5)):
                    row = dict(head_dim=d, causal=causal, seq=n, batch=b, heads=h, mode=mode, tflops={}, ms={})
                    for name in names:
                        try:
                            ms = bench_one(provs[name], q, k, v, causal, mode)
                            row["ms"][name] = ms
                            row["tflops"][name] = fwd_flops * mult / (ms * 1e-3) / 1e12
                        except Exception as exc:  # backend unavailable for this shape
                            row["ms"][name] = row["tflops"][name] = None
                            row.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"[:200]
                    ref = row["tflops"].get("torch-flash")
                    ours = row["tflops"]["fastllm"]
                    row["ratio_vs_torch_flash"] = ours / ref if ours and ref else None
                    rows.append(row)
                    cells = " ".join(f"{row['tflops'][nm]:>12.1f}" if row["tflops"][nm] else f"{'n/a':>12}" for nm in names)
                    ratio = f"{row['ratio_vs_torch_flash']:.2f}x" if row["ratio_vs_torch_flash"] else "n/a"
                    print(f"{d:>4} {str(causal):>6} {n:>6} {mode:>7} {cells}   {ratio}", flush=True)
                del q, k, v
                torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), dtype=args.dtype, unit="TFLOP/s", rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
