"""Post-training sub-commands: ``sft``, ``dpo``, ``reward``, ``rl`` and ``refusals``.

Every flag is checked by the parser with the same checks as the library's config dataclasses
(``fastllm.options``). Torch and the training modules are imported inside the handlers.
"""

from __future__ import annotations

import argparse

from fastllm import options
from fastllm.options import flag


def _sft(args) -> int:
    from fastllm.train.sft import SFTConfig, run_sft

    summary = run_sft(SFTConfig(
        model=args.model, data=args.data, out=args.out, epochs=args.epochs, max_steps=args.max_steps,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device, progress=not args.quiet))
    print(f"{summary['examples']} conversations, {summary['steps']} steps, final loss "
          f"{summary['history'][-1]['loss']:.4f}; model saved to {summary['model_dir']}")
    return 0


def _dpo(args) -> int:
    from fastllm.train.dpo import DPOConfig, run_dpo

    summary = run_dpo(DPOConfig(
        model=args.model, data=args.data, out=args.out, beta=args.beta, epochs=args.epochs,
        max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        device=args.device, progress=not args.quiet))
    last = summary["history"][-1]
    print(f"{summary['pairs']} pairs, {summary['steps']} steps: margin {last['margin']:.4f}, "
          f"accuracy {last['accuracy']:.2f}; model saved to {summary['model_dir']}")
    return 0


def _reward(args) -> int:
    from fastllm.train.reward import RewardConfig, run_reward

    summary = run_reward(RewardConfig(
        model=args.model, data=args.data, out=args.out, val_data=args.val_data, val_fraction=args.val_fraction,
        epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        device=args.device, progress=not args.quiet))
    if summary["held_out"]:
        held = (f"held-out pairwise accuracy {summary['accuracy_before']:.3f} -> {summary['accuracy_after']:.3f} "
                f"on {summary['held_out']} pairs")
    else:
        held = "no held-out pairs (--val-fraction 0)"
    print(f"{summary['pairs']} training pairs, {summary['steps']} steps: {held}; "
          f"reward model saved to {summary['model_dir']}")
    return 0


def _rl(args) -> int:
    from fastllm.train.rl import RLConfig, run_rl

    summary = run_rl(RLConfig(
        model=args.model, prompts=args.prompts, reward=args.reward, task=args.task, out=args.out,
        max_steps=args.max_steps, prompts_per_step=args.prompts_per_step, group_size=args.group_size,
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, lr=args.lr,
        beta=args.beta, clip=args.clip, updates_per_batch=args.updates_per_batch,
        checkpoint_interval=args.checkpoint_interval, resume=args.resume, seed=args.seed, device=args.device,
        progress=not args.quiet))
    history = summary["history"]
    if history:
        first, last = history[0], history[-1]
        print(f"steps {first['step']}-{last['step']}: reward {first['reward']:.3f} -> {last['reward']:.3f}, "
              f"KL {last['kl']:.4f}, entropy {last['entropy']:.3f}")
    else:
        print(f"nothing to do: the checkpoint is already at step {summary['steps']}")
    print(f"model saved to {summary['model_dir']}" if summary["model_dir"] else "stopped before the last step")
    return 0


def _refusals(args) -> int:
    from fastllm.train.refusals import RefusalsConfig, run_refusals

    summary = run_refusals(RefusalsConfig(
        model=args.model, questions=args.questions, out=args.out, samples=args.samples,
        min_correct=args.min_correct, judge=args.judge, refusal=args.refusal, temperature=args.temperature,
        top_k=args.top_k, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
        device=args.device, progress=not args.quiet))
    print(f"{summary['questions']} questions, {summary['correct_samples']}/{summary['samples']} samples judged "
          f"correct: {summary['answered']} answered, {summary['refused']} refused -> {summary['out']}")
    return 0


def _common(parser, lr: float, batch_size: int | None = None) -> None:
    parser.add_argument("--lr", type=flag(options.positive_float, "--lr"), default=lr,
                        help=f"peak learning rate (default: {lr})")
    if batch_size is not None:
        parser.add_argument("--batch-size", type=flag(options.positive_int, "--batch-size"), default=batch_size,
                            help=f"(default: {batch_size})")
    parser.add_argument("--seed", type=flag(options.integer, "--seed"), default=1337)
    parser.add_argument("--device", type=flag(options.device, "--device"), default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _finetune_flags(parser, out: str, lr: float, batch_size: int, epochs: float) -> None:
    parser.add_argument("--model", required=True, help="model directory (config.json, weights, tokenizer)")
    parser.add_argument("--data", required=True, help="JSONL file")
    parser.add_argument("--out", default=out, help=f"where to save the result (default: {out})")
    parser.add_argument("--epochs", type=flag(options.positive_float, "--epochs"), default=epochs,
                        help=f"passes over the data (default: {epochs})")
    parser.add_argument("--max-steps", type=flag(options.positive_int, "--max-steps"), default=None,
                        help="optimizer steps (overrides --epochs)")
    _common(parser, lr, batch_size)


def _sampling_flags(parser, max_new_tokens: int) -> None:
    parser.add_argument("--max-new-tokens", type=flag(options.positive_int, "--max-new-tokens"),
                        default=max_new_tokens, help=f"reply length limit, tool results included (default: {max_new_tokens})")
    parser.add_argument("--top-k", type=flag(options.positive_int, "--top-k"), default=None)


def register(subparsers) -> None:
    """Adds this module's sub-commands to the ``fastllm`` parser."""
    from fastllm.train.refusals import JUDGES, REFUSAL
    from fastllm.train.task_rewards import TASKS

    p = subparsers.add_parser("sft", help="supervised fine-tuning on chat conversations",
                              description="Fine-tune on {\"messages\": [...], \"tools\"?: [...]} JSONL; the loss covers "
                                          "what the assistant writes (replies and tool calls, not tool results).")
    _finetune_flags(p, "out/sft", lr=1e-4, batch_size=8, epochs=3.0)
    p.set_defaults(handler=_sft)

    p = subparsers.add_parser("dpo", help="direct preference optimization",
                              description="Train on {\"prompt\", \"chosen\", \"rejected\"} JSONL against a frozen "
                                          "copy of the starting model.")
    _finetune_flags(p, "out/dpo", lr=5e-6, batch_size=4, epochs=1.0)
    p.add_argument("--beta", type=flag(options.positive_float, "--beta"), default=0.1,
                   help="strength of the KL anchor to the reference (default 0.1)")
    p.set_defaults(handler=_dpo)

    p = subparsers.add_parser("reward", help="train a reward model on preference pairs",
                              description="A GPT with a scalar head trained on {\"prompt\", \"chosen\", \"rejected\"} "
                                          "JSONL with the Bradley-Terry loss; prints the pairwise accuracy on "
                                          "held-out pairs before and after.")
    _finetune_flags(p, "out/reward", lr=5e-5, batch_size=8, epochs=1.0)
    p.add_argument("--val-data", default=None, help="held-out pairs (JSONL); default: a share of --data")
    p.add_argument("--val-fraction", type=flag(options.unit_interval, "--val-fraction"), default=0.1,
                   help="share of --data held out when no --val-data is given (default 0.1)")
    p.set_defaults(handler=_reward)

    p = subparsers.add_parser("rl", help="reinforcement learning against a reward (GRPO)",
                              description="GRPO against a reward model (--reward DIR, from fastllm reward) or a "
                                          "task's checker (--task), with a KL penalty to the starting policy. "
                                          "Prompts: JSONL {\"prompt\": TEXT or MESSAGES, \"tools\"?: [...], "
                                          "\"answer\"?: ...}. Resumes from OUT/checkpoint.pt when it exists.")
    p.add_argument("--model", required=True, help="the starting policy (a model directory)")
    p.add_argument("--prompts", required=True, help="JSONL prompts")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--reward", default=None, metavar="DIR", help="reward model directory (fastllm reward)")
    source.add_argument("--task", type=flag(options.choice(*TASKS), "--task"), default=None,
                        help=f"programmatic reward: {', '.join(TASKS)} (the prompts' \"answer\" is checked)")
    p.add_argument("--out", default="out/rl", help="where to save the policy and checkpoints (default: out/rl)")
    p.add_argument("--max-steps", type=flag(options.positive_int, "--max-steps"), default=100, help="(default: 100)")
    p.add_argument("--prompts-per-step", type=flag(options.positive_int, "--prompts-per-step"), default=8,
                   help="(default: 8)")
    p.add_argument("--group-size", type=flag(options.positive_int, "--group-size"), default=4,
                   help="samples per prompt, the group that is each sample's baseline (default: 4)")
    p.add_argument("--temperature", type=flag(options.positive_float, "--temperature"), default=1.0,
                   help="sampling temperature (default: 1.0)")
    _sampling_flags(p, 64)
    p.add_argument("--beta", type=flag(options.non_negative_float, "--beta"), default=0.04,
                   help="weight of the KL penalty to the starting policy (default: 0.04)")
    p.add_argument("--clip", type=flag(options.unit_interval, "--clip"), default=0.2,
                   help="clipping range of the probability ratio (default: 0.2)")
    p.add_argument("--updates-per-batch", type=flag(options.positive_int, "--updates-per-batch"), default=1,
                   help="optimizer steps on each batch of samples (default: 1)")
    p.add_argument("--checkpoint-interval", type=flag(options.positive_int, "--checkpoint-interval"), default=25,
                   help="(default: 25)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from OUT/checkpoint.pt when it exists (default: yes)")
    _common(p, lr=1e-5)
    p.set_defaults(handler=_rl)

    p = subparsers.add_parser("refusals", help="the \"I don't know\" recipe: SFT data from the model's own answers",
                              description="Samples the model --samples times on each question with a known answer, "
                                          "judges the replies, and writes SFT JSONL: one of its correct replies where "
                                          "it is reliably right, the refusal where it is not. Questions: JSONL "
                                          "{\"question\", \"answer\" (text or list), \"system\"?, \"tools\"?}.")
    p.add_argument("--model", required=True, help="a chat model directory (after fastllm sft)")
    p.add_argument("--questions", required=True, help="JSONL questions with reference answers")
    p.add_argument("--out", required=True, help="the SFT JSONL file to write")
    p.add_argument("--samples", type=flag(options.positive_int, "--samples"), default=8,
                   help="replies sampled per question (default: 8)")
    p.add_argument("--min-correct", type=flag(options.probability_mass, "--min-correct"), default=0.75,
                   help="share of correct samples that counts as reliably right (default: 0.75)")
    p.add_argument("--judge", type=flag(options.choice(*JUDGES), "--judge"), default="normalized",
                   help=f"how a reply is compared with the answer: {', '.join(JUDGES)} (default: normalized)")
    p.add_argument("--refusal", default=REFUSAL, help=f"the reply where the model does not know (default: {REFUSAL!r})")
    p.add_argument("--temperature", type=flag(options.non_negative_float, "--temperature"), default=1.0,
                   help="sampling temperature (default: 1.0)")
    _sampling_flags(p, 64)
    p.add_argument("--batch-size", type=flag(options.positive_int, "--batch-size"), default=64,
                   help="sequences generated together (default: 64)")
    p.add_argument("--seed", type=flag(options.integer, "--seed"), default=1337)
    p.add_argument("--device", type=flag(options.device, "--device"), default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_refusals)
