"""A transformers model's training step on fastllm: attn_implementation="fastllm" + apply(...)
against "sdpa" and, where flash-attn is installed, "flash_attention_2".

A Llama-architecture model of about 1.2B parameters (Llama 3.2 1B's shape: 16 layers, hidden
2048, 32 query / 8 key-value heads of 64, vocab 128256, tied embeddings) with random weights
in bfloat16, a right-padded batch (4 rows of 4096, 3584, 3072 and 2048 tokens, labels -100 on
padding). Each variant runs forward + backward (no optimizer step) on the same weights and
batch; the table gives the median step time, the peak memory of a step and the loss.

* ``sdpa``: transformers' default attention (torch SDPA with the padding mask) and loss
  (the full logits, then cross-entropy in float32).
* ``flash_attention_2``: the flash-attn package through transformers (unpadded varlen).
* ``fastllm-attention``: ``attn_implementation="fastllm"`` alone (padded rows in the kernels).
* ``fastllm``: ``fastllm.integrations.transformers.apply(model)``: that attention and the
  fused ``linear_cross_entropy`` loss (the logits are never built).

Fails soft: a variant that errors (out of memory, flash-attn missing) is reported and the
others still run; results are written to ``--json`` after every variant, and variants that
would start past ``--budget`` seconds are skipped. ``--tiny`` runs a small model (a CPU smoke
run; the kernels' reference path there says nothing about speed).

    python benches/bench_hf_model.py --json out/bench_hf_model.json          # on a GPU
    python benches/bench_hf_model.py --tiny --device cpu
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

BIG = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
           num_key_value_heads=8, head_dim=64, max_position_embeddings=8192, rope_theta=500000.0,
           tie_word_embeddings=True, rms_norm_eps=1e-5)
TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=256, tie_word_embeddings=True)


def build_model(transformers, tiny: bool, device: torch.device, dtype: torch.dtype):
    config = transformers.LlamaConfig(**(TINY if tiny else BIG))
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise straight into the compute dtype, on the device
    try:
        with torch.device(device):
            model = transformers.LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    # .to(device) moves anything built outside the device context; no dtype: the rotary inverse
    # frequencies stay float32, as in a loaded model
    return model.to(device).train()


def padded_batch(vocab: int, lengths, device: torch.device):
    width = max(lengths)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (len(lengths), width), generator=generator)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids.to(device), mask.to(device), labels.to(device)


def set_variant(model, name: str, fastllm_hf) -> None:
    """Point ``model`` at one variant's attention and loss."""
    model.__dict__.pop("forward", None)  # apply()'s fused loss, if an earlier variant set it
    if name == "sdpa":
        model.set_attn_implementation("sdpa")
    elif name == "flash_attention_2":
        model.set_attn_implementation("flash_attention_2")
    elif name == "fastllm-attention":
        model.set_attn_implementation("fastllm")
    elif name == "fastllm":
        fastllm_hf.apply(model)
    if model.config._attn_implementation != {"fastllm-attention": "fastllm"}.get(name, name):
        raise RuntimeError(f"the model runs {model.config._attn_implementation!r}, not {name!r}")


def run_variant(model, name, batch, args, device, fastllm_hf):
    set_variant(model, name, fastllm_hf)
    ids, mask, labels = batch
    cuda = device.type == "cuda"

    def step():
        model.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        return float(loss.detach())

    first = time.perf_counter()
    for _ in range(args.warmup):  # Triton compiles its kernels here
        step()
    if cuda:
        torch.cuda.synchronize(device)
    warmup_s = time.perf_counter() - first
    times, peaks, losses = [], [], []
    for _ in range(args.steps):
        model.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        start = time.perf_counter()
        losses.append(step())
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        if cuda:
            peaks.append((torch.cuda.max_memory_allocated(device), base))
    model.zero_grad(set_to_none=True)
    result = {"variant": name, "median_step_s": statistics.median(times), "warmup_s": warmup_s,
              "loss": losses[-1], "tokens": int(mask.sum())}
    if peaks:
        result["peak_memory_gib"] = max(p for p, _ in peaks) / 2**30
        result["step_memory_gib"] = max(p - b for p, b in peaks) / 2**30  # above weights at rest
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="a small model (CPU smoke run)")
    parser.add_argument("--lengths", type=int, nargs="+", default=None,
                        help="tokens per row of the right-padded batch (default 4096 3584 3072 2048)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=["sdpa", "flash_attention_2", "fastllm-attention", "fastllm"])
    parser.add_argument("--budget", type=float, default=140.0, help="start no variant after this many seconds")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    device = torch.device(args.device)
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU", "results": [],
           "skipped": {}}

    def write():
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=2) + "\n")

    try:
        import transformers

        import fastllm.integrations.transformers as fastllm_hf
    except ImportError as exc:
        print(f"transformers model step skipped: {exc}")
        out["skipped"]["all"] = str(exc)
        write()
        return 0
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    lengths = args.lengths or ([64, 48, 40] if args.tiny else [4096, 3584, 3072, 2048])
    model = build_model(transformers, args.tiny, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    out.update(transformers=transformers.__version__, params=params, dtype=str(dtype).replace("torch.", ""),
               lengths=lengths, steps=args.steps)
    print(f"transformers {transformers.__version__}, Llama {params / 1e9:.2f}B params, {out['dtype']}, "
          f"right-padded batch {lengths}, {out['device']}; forward + backward, median of {args.steps} steps")
    batch = padded_batch(model.config.vocab_size, lengths, device)
    for name in args.variants:
        if name == "flash_attention_2" and (device.type != "cuda" or importlib.util.find_spec("flash_attn") is None):
            out["skipped"][name] = "flash-attn is not installed" if device.type == "cuda" else "needs CUDA"
            print(f"{name}: skipped ({out['skipped'][name]})")
            continue
        if time.perf_counter() - start > args.budget:
            out["skipped"][name] = "time budget spent"
            print(f"{name}: skipped (time budget spent)")
            continue
        try:
            result = run_variant(model, name, batch, args, device, fastllm_hf)
        except Exception as exc:  # report and go on: out of memory, a missing package, a bug
            if device.type == "cuda":
                torch.cuda.empty_cache()
            out["skipped"][name] = f"{type(exc).__name__}: {exc}"[:500]
            print(f"{name}: FAILED {type(exc).__name__}: {str(exc)[:300]}")
            traceback.print_exc(limit=3, file=sys.stdout)
            write()
            continue
        out["results"].append(result)
        memory = f", peak {result['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in result else ""
        print(f"{name}: {result['median_step_s'] * 1e3:.1f} ms/step{memory}, loss {result['loss']:.4f} "
              f"(warmup {result['warmup_s']:.1f}s)")
        write()
    base = next((r for r in out["results"] if r["variant"] == "sdpa"), None)
    print(f"\n{'variant':<20} {'step ms':>9} {'vs sdpa':>8} {'peak GiB':>9} {'step GiB':>9} {'loss':>8}")
    for r in out["results"]:
        ratio = f"{base['median_step_s'] / r['median_step_s']:.2f}x" if base else "-"
        peak = f"{r['peak_memory_gib']:.1f}" if "peak_memory_gib" in r else "-"
        step_mem = f"{r['step_memory_gib']:.1f}" if "step_memory_gib" in r else "-"
        print(f"{r['variant']:<20} {r['median_step_s'] * 1e3:>9.1f} {ratio:>8} {peak:>9} {step_mem:>9} {r['loss']:>8.4f}")
    write()
    if args.json:
        print(f"wrote {args.json}")
    return 0 if out["results"] else 1


if __name__ == "__main__":
    sys.exit(main())
