"""Training throughput: GPT-2 with the fastllm kernels vs the same model on torch SDPA + torch cross-entropy.

Both variants run the same full optimizer step (forward, backward, AdamW) on the same
weights and batches, in the same process, one after the other; the table reports the
median step time, tokens/s, MFU (on a GPU with a known peak) and the ratio.

* ``fastllm``: attention through ``fastllm.kernels.flash_attention`` and the loss through
  ``fastllm.kernels.linear_cross_entropy`` (logits never materialised) - the model's
  default on CUDA.
* ``torch``: attention through ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``
  and the loss as logits + ``torch.nn.functional.cross_entropy``.

On a CPU both columns run PyTorch code (the kernels' reference path), so the ratio says
nothing about the Triton kernels there; ``--quick`` shrinks the model for a smoke run.

    python benches/bench_train.py                 # gpt2 (124M), batch 8 x 1024 on a GPU
    python benches/bench_train.py --quick --json out/bench_train.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import fastllm.model.gpt as model_attention
from fastllm.model import GPT, GPTConfig
from fastllm.train.metrics import flops_per_token, peak_flops
from fastllm.train.optim import make_adamw


def torch_sdpa(q, k, v, causal=True):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


@contextlib.contextmanager
def torch_attention():
    """Route the model's kernel attention call to torch SDPA for the baseline."""
    saved = model_attention._flash_attention
    model_attention._flash_attention = torch_sdpa
    try:
        yield
    finally:
        model_attention._flash_attention = saved


def run_variant(name, config, args, device, batches):
    torch.manual_seed(0)
    model = GPT(config).to(device)
    model.fused_loss = name == "fastllm" and device.type == "cuda"
    optimizer = make_adamw(model, lr=1e-4, weight_decay=0.1)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    routing = torch_attention() if name == "torch" else contextlib.nullcontext()
    times, losses = [], []
    with routing:
        for i, (x, y) in enumerate(batches):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with autocast:
                loss = model(x, y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
            losses.append(float(loss.detach()))
    step = statistics.median(times)
    tokens = args.batch_size * args.seq_len
    tps = tokens / step
    peak = peak_flops(device)
    fpt = flops_per_token(model.num_params(non_embedding=False), config.n_layer, config.n_embd, args.seq_len)
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return {"variant": name, "median_step_s": step, "tokens_per_s": tps,
            "mfu": tps * fpt / peak if peak else None, "first_loss": losses[0], "last_loss": losses[-1],
            "peak_memory_gib": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt2", help="GPT-2 preset (default gpt2, 124M)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    parser.add_argument("--quick", action="store_true", help="a small model and few steps (CPU smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if args.quick:
        config = GPTConfig(vocab_size=50257, block_size=256, n_layer=2, n_head=4, n_embd=128)
        defaults = dict(batch_size=2, seq_len=128, steps=3, warmup=1)
    else:
        config = GPTConfig.from_preset(args.model)
        defaults = dict(batch_size=8 if gpu else 1, seq_len=1024 if gpu else 256, steps=20 if gpu else 3,
                        warmup=5 if gpu else 1)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.warmup + args.steps):
        tokens = torch.randint(0, config.vocab_size, (args.batch_size, args.seq_len + 1), generator=generator)
        batches.append((tokens[:, :-1].to(device), tokens[:, 1:].to(device)))

    results = [run_variant(name, config, args, device, batches) for name in ("torch", "fastllm")]
    base = results[0]["tokens_per_s"]
    name = torch.cuda.get_device_name(device) if gpu else "CPU"
    print(f"training step, {args.model if not args.quick else 'small GPT (quick)'}: "
          f"{GPT(config).num_params(non_embedding=False) / 1e6:.0f}M params, batch {args.batch_size} x "
          f"{args.seq_len}, {'bf16 autocast' if gpu else 'fp32'}, {name}; median of {args.steps} steps")
    print(f"{'variant':<10} {'step (s)':>10} {'tokens/s':>12} {'MFU':>7} {'vs torch':>9} {'loss':>8}")
    for r in results:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        print(f"{r['variant']:<10} {r['median_step_s']:>10.4f} {r['tokens_per_s']:>12,.0f} {mfu:>7} "
              f"{r['tokens_per_s'] / base:>8.2f}x {r['last_loss']:>8.3f}")
    if not gpu:
        print("(CPU: both variants run PyTorch code; the kernels' speed shows only on a GPU)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": name, "config": config.to_dict(), "batch_size": args.batch_size,
                                         "seq_len": args.seq_len, "steps": args.steps, "results": results},
                                        indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
