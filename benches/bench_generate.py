"""Generation throughput: fastllm against transformers' ``generate`` on the same weights, in the same run.

    python benches/bench_generate.py [--preset gpt2] [--batch 1] [--prompt-len 64] [--new-tokens 32]
                                     [--repeats 3] [--device cpu|cuda] [--dtype float32] [--no-uncached]
                                     [--json PATH]

A ``gpt2``-sized model with random weights is saved by fastllm and loaded by both fastllm
and ``transformers.GPT2LMHeadModel``, so both run the same weights (the greedy outputs are
compared: the ``same`` column in float32; in bf16/fp16, where rounding differs, the share of
generated tokens that agree). Measured, as medians of ``--repeats`` runs:

* ``prefill``: one forward over ``batch x prompt-len`` tokens, in tokens/s;
* ``decode (cache)``: greedy ``generate`` with the KV cache; the decode rate is
  ``batch x (new-1)`` tokens over the time of ``new`` tokens minus the time of one, so the
  prefill is not counted;
* ``decode (no cache)``: the same with every step recomputing the whole sequence.

``ratio`` is fastllm's rate over transformers' (above 1: fastllm is faster). On a GPU the batch-1
decode rate is also given as a fraction of the memory-bandwidth limit: weight bytes read per
token times tokens/s over the copy bandwidth measured in this run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from fastllm.model import GPT, GPTConfig


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, device, repeats: int) -> float:
    fn()  # warm-up (allocations, kernel compilation)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(device: torch.device, gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes/s of a device-to-device copy (each byte read once and written once)."""
    n = int(gib * 2**30) // 4
    src = torch.empty(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    seconds = median_time(lambda: dst.copy_(src), device, repeats)
    return 2 * src.numel() * src.element_size() / seconds


def fastllm_runner(model, prompts, use_cache):
    return lambda n: model.generate(prompts, n, temperature=0, use_cache=use_cache)


def hf_runner(hf, prompts, use_cache):
    mask = torch.ones_like(prompts)

    def run(n):
        return hf.generate(prompts, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                           use_cache=use_cache, pad_token_id=0, eos_token_id=None)

    return run


def decode_rate(run, batch: int, new_tokens: int, device, repeats: int):
    """(tokens/s of the decode steps, the output of the full run)."""
    full = median_time(lambda: run(new_tokens), device, repeats)
    first = median_time(lambda: run(1), device, repeats)
    return batch * (new_tokens - 1) / max(full - first, 1e-9), run(new_tokens)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--no-uncached", dest="uncached", action="store_false",
                        help="skip the (slow) decode without a KV cache")
    parser.add_argument("--json", default="bench_generate.json", help="where to write the results")
    args = parser.parse_args(argv)
    if args.new_tokens < 2:
        parser.error("--new-tokens must be at least 2")

    from transformers import GPT2LMHeadModel

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    config = GPTConfig.from_preset(args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        GPT(config).save_pretrained(tmp)
        ours = GPT.from_pretrained(tmp, dtype=dtype, device=device).eval()
        hf = GPT2LMHeadModel.from_pretrained(tmp, dtype=dtype).to(device).eval()
    prompts = torch.randint(0, config.vocab_size, (args.batch, args.prompt_len), device=device)
    prompt_tokens = args.batch * args.prompt_len

    rows = []

    @torch.no_grad()
    def ours_prefill():
        ours.lm_head(ours.hidden_states(prompts)[0][:, -1])

    @torch.no_grad()
    def hf_prefill():
        hf(prompts, use_cache=True, logits_to_keep=1)

    rows.append(dict(
        phase="prefill",
        fastllm=prompt_tokens / median_time(ours_prefill, device, args.repeats),
        transformers=prompt_tokens / median_time(hf_prefill, device, args.repeats),
        same=None,
    ))
    modes = [("decode (cache)", True)] + ([("decode (no cache)", False)] if args.uncached else [])
    for name, use_cache in modes:
        ours_rate, ours_out = decode_rate(fastllm_runner(ours, prompts, use_cache), args.batch, args.new_tokens,
                                          device, args.repeats)
        hf_rate, hf_out = decode_rate(hf_runner(hf, prompts, use_cache), args.batch, args.new_tokens, device,
                                      args.repeats)
        new_ours, new_hf = ours_out[:, prompts.shape[1]:], hf_out[:, prompts.shape[1]:]
        agree = (new_ours == new_hf).float().mean().item() if new_ours.shape == new_hf.shape else 0.0
        rows.append(dict(phase=name, fastllm=ours_rate, transformers=hf_rate,
                         same=bool(torch.equal(ours_out, hf_out)), agree=agree))
    for row in rows:
        row["ratio"] = row["fastllm"] / row["transformers"]

    result = dict(
        preset=args.preset, batch=args.batch, prompt_len=args.prompt_len, new_tokens=args.new_tokens,
        repeats=args.repeats, device=str(device), dtype=args.dtype, platform=platform.platform(),
        torch=torch.__version__, rows=rows,
    )
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
        bandwidth = copy_bandwidth(device)
        weight_bytes = sum(p.numel() * p.element_size() for p in ours.parameters())
        cached = rows[1]
        result["bandwidth_bytes_per_s"] = bandwidth
        result["weight_bytes"] = weight_bytes
        if args.batch == 1:
            result["decode_fraction_of_bandwidth_limit"] = weight_bytes * cached["fastllm"] / bandwidth
            result["transformers_fraction_of_bandwidth_limit"] = weight_bytes * cached["transformers"] / bandwidth

    print(f"{args.preset} ({config.n_layer} layers, {ours.num_params(non_embedding=False) / 1e6:.0f}M), batch "
          f"{args.batch}, prompt {args.prompt_len}, {args.new_tokens} new tokens, {device} {args.dtype}, "
          f"median of {args.repeats}")
    # Greedy outputs must be identical in float32. In bf16/fp16 the two models round differently
    # (different attention kernels and op order), and random weights leave near-ties between logits,
    # so the share of generated tokens that agree is shown instead and is not a failure.
    exact = args.dtype == "float32"
    print(f"{'phase':<20}{'fastllm tok/s':>15}{'transformers tok/s':>20}{'ratio':>8}{'same' if exact else 'agree':>7}")
    for row in rows:
        if row["same"] is None:
            same = ""
        elif exact:
            same = "yes" if row["same"] else "NO"
        else:
            same = f"{100 * row['agree']:.0f}%"
        print(f"{row['phase']:<20}{row['fastllm']:>15.1f}{row['transformers']:>20.1f}{row['ratio']:>8.2f}{same:>7}")
    if "decode_fraction_of_bandwidth_limit" in result:
        print(f"batch-1 decode: {100 * result['decode_fraction_of_bandwidth_limit']:.1f}% of the bandwidth limit "
              f"({result['weight_bytes'] / 1e6:.0f} MB of weights per token, copy bandwidth "
              f"{result['bandwidth_bytes_per_s'] / 1e9:.0f} GB/s); transformers "
              f"{100 * result['transformers_fraction_of_bandwidth_limit']:.1f}%")
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if not exact or all(row["same"] is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
