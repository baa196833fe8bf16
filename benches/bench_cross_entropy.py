"""Cross-entropy time and peak memory: fastllm's Triton loss vs torch eager, torch.compile'd
torch and Liger (when importable); and the fused linear loss vs torch Linear + loss.

All in bf16, forward+backward, measured in the same run. Peak memory is what the step
allocates beyond its inputs (logits, or hidden + weight), from torch.cuda.max_memory_allocated.

    python benches/bench_cross_entropy.py [--short] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.nn.functional as F


def ce_providers():
    from fastllm.kernels import cross_entropy

    provs = {
        "fastllm": lambda x, t: cross_entropy(x, t),
        "fastllm-inplace": lambda x, t: cross_entropy(x, t, inplace_backward=True),
        # without the target check's host synchronisation (a NaN row instead of an exception)
        "fastllm-unchecked": lambda x, t: cross_entropy(x, t, check_target=False),
        "torch": lambda x, t: F.cross_entropy(x, t),
    }
    try:
        provs["torch.compile"] = torch.compile(lambda x, t: F.cross_entropy(x, t), dynamic=True)
    except Exception:
        pass
    try:
        from liger_kernel.transformers.functional import liger_cross_entropy

        provs["liger"] = lambda x, t: liger_cross_entropy(x, t)
    except ImportError:
        pass
    return provs


def linear_providers():
    from fastllm.kernels import linear_cross_entropy

    provs = {
        "fastllm": lambda h, w, t: linear_cross_entropy(h, w, t),
        "fastllm-unchecked": lambda h, w, t: linear_cross_entropy(h, w, t, check_target=False),
        "torch": lambda h, w, t: F.cross_entropy(F.linear(h, w), t),
    }
    try:
        provs["torch.compile"] = torch.compile(lambda h, w, t: F.cross_entropy(F.linear(h, w), t), dynamic=True)
    except Exception:
        pass
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

        provs["liger"] = lambda h, w, t: liger_fused_linear_cross_entropy(h, w, t)
    except ImportError:
        pass
    return provs


def measure(step, inputs):
    """(ms, peak bytes above the inputs) of step() = forward + backward."""
    from triton.testing import do_bench

    step()  # compile / warm up
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    for t in inputs:
        t.grad = None
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    for t in inputs:
        t.grad = None
    ms = do_bench(step, warmup=10, rep=50, grad_to_none=list(inputs))
    return ms, peak


def run_table(title, cases, provs, make, results):
    names = list(provs)
    print(f"\n{title}")
    header = f"{'case':>22} " + " ".join(f"{n:>17}" for n in names) + "   speedup vs torch   mem vs torch"
    print(header + "\n" + "-" * len(header))
    for case in cases:
        row = dict(case=case, ms={}, peak_mib={}, errors={})
        for name in names:
            try:
                inputs, step = make(case, provs[name])
                ms, peak = measure(step, inputs)
                row["ms"][name], row["peak_mib"][name] = ms, peak / 2**20
                del inputs, step
            except Exception as exc:
                row["ms"][name] = row["peak_mib"][name] = None
                row["errors"][name] = f"{type(exc).__name__}: {exc}"[:200]
            torch.cuda.empty_cache()
        t_ref, m_ref = row["ms"].get("torch"), row["peak_mib"].get("torch")
        t_us, m_us = row["ms"].get("fastllm"), row["peak_mib"].get("fastllm")
        row["speedup_vs_torch"] = t_ref / t_us if t_ref and t_us else None
        row["memory_ratio_vs_torch"] = m_us / m_ref if m_ref and m_us else None
        results.append(row)
        cells = " ".join(
            f"{row['ms'][n]:>7.2f}ms {row['peak_mib'][n]:>6.0f}M" if row["ms"][n] else f"{'n/a':>17}" for n in names
        )
        sp = f"{row['speedup_vs_torch']:.2f}x" if row["speedup_vs_torch"] else "n/a"
        mr = f"{row['memory_ratio_vs_torch']:.2f}" if row["memory_ratio_vs_torch"] else "n/a"
        print(f"{str(case):>22} {cells}   {sp:>16}   {mr:>12}", flush=True)


def kernel_inputs(n, vocab):
    """bf16 logits, targets, the forward's lse, a mean's dloss, and the logits' bytes: what
    the two loss kernels take alone."""
    from fastllm.kernels.cross_entropy import ce_forward

    x = torch.randn(n, vocab, device="cuda", dtype=torch.bfloat16)
    t = torch.randint(0, vocab, (n,), device="cuda")
    dloss = torch.full((1,), 1.0 / n, device="cuda")
    _, lse = ce_forward(x, t, -100, 0.0, 0.0, 0.0)
    return x, t, lse, dloss, x.numel() * x.element_size()


def access_width_table(cases, results):
    """The two loss kernels at vocabularies whose rows sit off 16-byte boundaries, with
    one-element accesses (``vec=1``) and with the 16-byte ones the launchers pick: ms and the
    bandwidth of the bytes each kernel must move (forward: read the logits; backward: read
    them and write the gradient)."""
    from triton.testing import do_bench

    from fastllm.kernels.cross_entropy import ce_backward, ce_forward, load_width

    print("\ncross-entropy kernels at odd vocabularies: one-element vs 16-byte accesses (ms, TB/s)")
    for n, vocab in cases:
        x, t, lse, dloss, nbytes = kernel_inputs(n, vocab)
        row = dict(case=(n, vocab), width=load_width(x))
        for label, vec in (("narrow", 1), ("wide", None)):
            fwd = do_bench(lambda: ce_forward(x, t, -100, 0.0, 0.0, 0.0, vec=vec), warmup=10, rep=50)
            bwd = do_bench(lambda: ce_backward(x, t, lse, dloss, -100, 0.0, 0.0, 0.0, vec=vec), warmup=10, rep=50)
            row[label] = dict(fwd_ms=fwd, bwd_ms=bwd, fwd_tbs=nbytes / fwd / 1e9, bwd_tbs=2 * nbytes / bwd / 1e9)
        results.append(row)
        cells = "   ".join(
            f"{k}: fwd {row[k]['fwd_ms']:.3f} ({row[k]['fwd_tbs']:.2f}) bwd {row[k]['bwd_ms']:.3f} ({row[k]['bwd_tbs']:.2f})"
            for k in ("narrow", "wide")
        )
        print(f"{str((n, vocab)):>16} VEC={row['width']}   {cells}", flush=True)
        del x, t, lse
        torch.cuda.empty_cache()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_cross_entropy: needs a CUDA GPU")
        return 1
    dev, dt = "cuda", torch.bfloat16
    print(f"device: {torch.cuda.get_device_name()}  dtype: bf16")

    def make_ce(case, fn):
        n, vocab = case
        x = torch.randn(n, vocab, device=dev, dtype=dt, requires_grad=True)
        t = torch.randint(0, vocab, (n,), device=dev)
        # The gradient is returned, not accumulated into x.grad: autograd copies a gradient that
        # shares a leaf's storage (the in-place variant's) before storing it there, a copy that
        # logits made by an LM head never pay.
        return [x], lambda: torch.autograd.grad(fn(x, t), x)

    def make_linear(case, fn):
        n, hdim, vocab = case
        h = torch.randn(n, hdim, device=dev, dtype=dt, requires_grad=True)
        w = (torch.randn(vocab, hdim, device=dev, dtype=dt) * hdim**-0.5).requires_grad_()
        t = torch.randint(0, vocab, (n,), device=dev)
        return [h, w], lambda: fn(h, w, t).backward()

    ce_cases = [(n, v) for n in ((4096,) if args.short else (4096, 16384)) for v in (50257, 128256, 256000)]
    if args.short:
        ce_cases.append((16384, 128256))
    lin_cases = [(16384, hd, 128256) for hd in (2048, 4096)]
    if not args.short:
        lin_cases = [(4096, hd, 128256) for hd in (2048, 4096)] + lin_cases
    ce_rows, lin_rows, width_rows = [], [], []
    run_table("cross_entropy (tokens, vocab): fwd+bwd time, peak memory", ce_cases, ce_providers(), make_ce, ce_rows)
    try:  # a diagnostic: its failure must not cost the tables above
        access_width_table([(4096, 50257), (16384, 50257)], width_rows)
    except Exception as exc:
        print(f"access width table failed: {type(exc).__name__}: {exc}")
    run_table("linear_cross_entropy (tokens, hidden, vocab): fwd+bwd", lin_cases, linear_providers(), make_linear, lin_rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), dtype="bf16", cross_entropy=ce_rows,
                           linear_cross_entropy=lin_rows, access_width=width_rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
