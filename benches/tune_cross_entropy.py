"""Sweep for the loss kernels on a GPU: the cross-entropy kernels' launch settings (vocab tile,
warps, pipeline stages) and the fused linear loss's chunk size; prints the winners as
``configs.CE`` entries and the chunk sizes against torch's time and memory.

The kernels are timed alone (``ce_forward`` / ``ce_backward`` on bf16 logits), with the
bandwidth of the bytes each must move: the forward reads the logits once, the backward reads
them and writes the gradient. Its first run (H200, 2026-12-04) chose the forward's 4 warps and
the fused linear loss's default chunk (benches/RESULTS.md).

    python benches/tune_cross_entropy.py [--budget 60] [--json out.json]

The sweep stops starting new measurements once ``--budget`` seconds have passed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from fastllm.kernels import configs, linear_cross_entropy
from fastllm.kernels.cross_entropy import ce_backward, ce_forward
from fastllm.kernels.linear_cross_entropy import default_chunk_size

from bench_cross_entropy import kernel_inputs, measure  # this script's directory is on sys.path

C = configs.CEConfig
KERNEL_CASES = [(4096, 50257), (4096, 128256)]
LINEAR_CASES = [(16384, 2048, 128256), (16384, 4096, 128256)]
TILES = [(block, warps) for block in (1024, 2048, 4096, 8192, 16384) for warps in (4, 8, 16)]


def kernel_ms(kernel, cfg, x, t, lse, dloss):
    from triton.testing import do_bench

    shipped = configs.CE[kernel]
    configs.CE[kernel] = cfg
    try:
        if kernel == "ce_fwd_kernel":
            return do_bench(lambda: ce_forward(x, t, -100, 0.0, 0.0, 0.0), warmup=10, rep=40)
        return do_bench(lambda: ce_backward(x, t, lse, dloss, -100, 0.0, 0.0, 0.0), warmup=10, rep=40)
    finally:
        configs.CE[kernel] = shipped


def sweep_kernels(start, budget, rows, winners):
    print("\nloss kernels (tokens, vocab): TB/s of the bytes each must move")
    for n, vocab in KERNEL_CASES:
        x, t, lse, dloss, nbytes = kernel_inputs(n, vocab)
        for kernel, moved in (("ce_fwd_kernel", nbytes), ("ce_bwd_kernel", 2 * nbytes)):
            shipped = configs.CE[kernel]
            cands = [C(b, w, shipped.num_stages) for b, w in TILES]
            results = []

            def run(cfg):
                if time.monotonic() - start > budget:
                    return
                row = dict(kernel=kernel, case=(n, vocab), config=cfg.__dict__.copy())
                try:
                    ms = kernel_ms(kernel, cfg, x, t, lse, dloss)
                    row.update(ms=ms, tbs=moved / ms / 1e9)
                    results.append((ms, cfg))
                except Exception as exc:  # does not compile / too many resources
                    row["error"] = f"{type(exc).__name__}: {exc}"[:200]
                rows.append(row)

            for cfg in cands:
                run(cfg)
            if kernel == "ce_fwd_kernel" and results:  # its loop over tiles is what stages pipeline
                best = min(results, key=lambda r: r[0])[1]
                for stages in (1, 2, 4):
                    if stages != best.num_stages:
                        run(C(best.block_v, best.num_warps, stages))
            cells = ", ".join(
                f"{r['config']['block_v']}/w{r['config']['num_warps']}/s{r['config']['num_stages']}"
                f"{'*' if C(**r['config']) == shipped else ''} " + (f"{r['tbs']:.2f}" if "tbs" in r else "error")
                for r in rows if r["kernel"] == kernel and tuple(r["case"]) == (n, vocab)
            )
            print(f"{kernel} {(n, vocab)} TB/s: {cells}", flush=True)
            if results:
                winners.setdefault(kernel, []).append(min(results, key=lambda r: r[0])[1])
        del x, t, lse
        torch.cuda.empty_cache()


def sweep_chunks(start, budget, rows):
    print("linear_cross_entropy chunk size (tokens, hidden, vocab): ms, peak MiB above the inputs")
    for n, hdim, vocab in LINEAR_CASES:
        if time.monotonic() - start > budget:
            break
        h = torch.randn(n, hdim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        w = (torch.randn(vocab, hdim, device="cuda", dtype=torch.bfloat16) * hdim**-0.5).requires_grad_()
        t = torch.randint(0, vocab, (n,), device="cuda")
        default = default_chunk_size(n, hdim, vocab)
        cells = []
        for chunk in ["torch", default] + [c for c in (1024, 2048, 4096) if c != default]:
            if time.monotonic() - start > budget:
                break
            if chunk == "torch":
                def step():
                    return torch.autograd.grad(torch.nn.functional.cross_entropy(h @ w.t(), t), (h, w))
            else:
                def step(chunk=chunk):
                    return torch.autograd.grad(linear_cross_entropy(h, w, t, chunk_size=chunk), (h, w))
            ms, peak = measure(step, [h, w])
            peak /= 2**20
            rows.append(dict(kernel="linear", case=(n, hdim, vocab), chunk=chunk, default=chunk == default, ms=ms, peak_mib=peak))
            cells.append(f"{chunk}{'*' if chunk == default else ''} {ms:.1f} ms {peak:.0f} MiB")
        print(f"  {(n, hdim, vocab)}: " + ", ".join(cells), flush=True)
        del h, w, t
        torch.cuda.empty_cache()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds; no new measurement starts after it")
    parser.add_argument("--json", help="write every measurement here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("tune_cross_entropy: needs a CUDA GPU")
        return 1
    start = time.monotonic()
    rows, winners = [], {}
    print(f"device: {torch.cuda.get_device_name()}  bf16  (* = shipped)\n")
    # The chunk sizes first: a few measurements that the kernel sweep's many could crowd out.
    sweep_chunks(start, args.budget, rows)
    sweep_kernels(start, args.budget, rows, winners)
    print("\nwinners (one per case, in the order " + ", ".join(map(str, KERNEL_CASES)) + "):")
    for kernel, best in winners.items():
        print(f"  CE[{kernel!r}] = " + " / ".join(f"CEConfig({c.block_v}, {c.num_warps}, {c.num_stages})" for c in best))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
