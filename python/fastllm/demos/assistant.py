"""``fastllm demo assistant``: from nothing to a small assistant, each post-training stage measured.

Offline, on a CPU, in minutes, on data it makes itself (:mod:`fastllm.demos.assistant_data`):

1. pre-train a tokenizer and a small GPT on text about made-up people and their towns;
2. SFT on chat data with calculator calls (measured: well-formed replies; arithmetic with and
   without the tool);
3. the "I don't know" recipe (``fastllm refusals``), then SFT on its output (measured: questions
   about people the model never read about are refused, those it did read about still answered);
4. DPO on pairs preferring plain answers to smug ones (measured: the share of plain answers);
5. a reward model on pairs preferring "The answer is N." to a bare number, then GRPO against it
   (measured: the reward model's mean score).
Every measure is taken on the model's own generations for held-out items: people, problems and
prompts that no training set of any stage contains. Writes ``OUT/metrics.json`` (the table),
``OUT/details.json`` (more numbers and sample replies), one plot per stage, and prints the table.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from fastllm.files import write_text_atomic

from . import assistant_data as world_data


@dataclass
class AssistantSettings:
    out: str = "out/assistant"
    seed: int = 1337
    device: str = "cpu"
    progress: bool = True
    # the world
    known_sft: int = 30
    known_recipe: int = 25
    known_held: int = 20
    unknown_recipe: int = 25
    unknown_held: int = 20
    mentions: int = 60  # pre-training sentences per known person
    problems_train: int = 300
    problems_held: int = 40
    smug_share: float = 0.5
    # the model and pre-training
    vocab_size: int = 768
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 96
    pretrain_steps: int = 400
    pretrain_batch: int = 16
    pretrain_lr: float = 3e-3
    # post-training
    sft_steps: int = 800
    sft_batch: int = 16
    sft_lr: float = 1e-3
    replay_share: float = 0.5  # pre-training snippets mixed into each SFT set, per conversation
    refusal_samples: int = 6
    refusal_min_correct: float = 0.5  # at temperature 1 a small model that knows a fact is not always right
    refusal_steps: int = 200
    refusal_lr: float = 5e-4
    dpo_steps: int = 40
    dpo_lr: float = 2e-5
    dpo_beta: float = 0.1
    reward_steps: int = 150
    reward_lr: float = 5e-4
    rl_steps: int = 30
    rl_prompts_per_step: int = 8
    rl_group_size: int = 4
    rl_lr: float = 3e-5
    rl_beta: float = 0.1
    # measuring
    max_new_tokens: int = 32
    eval_samples: int = 4  # sampled replies per held-out prompt for the DPO and RL measures


# A run of seconds for the tests: a tiny world and model, every stage a few steps. Its numbers
# show the pipeline runs end to end, not that the stages work (the full run shows that).
QUICK = dict(known_sft=4, known_recipe=4, known_held=4, unknown_recipe=4, unknown_held=4, mentions=60, problems_train=24,
             problems_held=4, vocab_size=400, n_layer=1, n_head=2, n_embd=32, block_size=96, pretrain_steps=8,
             pretrain_batch=4, sft_steps=4, sft_batch=8, refusal_samples=2, refusal_steps=2, dpo_steps=2,
             reward_steps=2, rl_steps=2, rl_prompts_per_step=2, rl_group_size=2, max_new_tokens=16, eval_samples=1)


def quick_assistant_settings(**overrides) -> AssistantSettings:
    return replace(AssistantSettings(**overrides), **{k: v for k, v in QUICK.items() if k not in overrides})


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # no load average on this platform
        return None


def _say(text: str = "") -> None:
    print(text, flush=True)


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
    return path


# -- generating and judging ---------------------------------------------------------------------
@dataclass
class Item:
    """A held-out prompt: the user's text, the tools announced, and what a right reply holds."""
    question: str
    tools: list[str] | None
    kind: str  # "town" or "arithmetic"
    answer: str


@dataclass
class Reply:
    text: str  # the final assistant message
    finished: bool
    calls: list[tuple[str, str]]
    ids: list[int]  # the prompt and the whole turn, tool results included: what a reward model scores


def generate_replies(model, tokenizer, items: list[Item], samples: int, temperature: float, max_new_tokens: int,
                     seed: int, batch_size: int = 64) -> list[list[Reply]]:
    """``samples`` replies per item (greedy when ``temperature`` is 0), tools run as in ``fastllm chat``."""
    import torch

    from fastllm.train.chat_template import render
    from fastllm.train.tools import final_reply, generate_with_tools, get_tools

    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    jobs = [i for i in range(len(items)) for _ in range(samples)]
    out: list[list[Reply]] = [[] for _ in items]
    for start in range(0, len(jobs), batch_size):
        rows = jobs[start: start + batch_size]
        prompts = [render([{"role": "user", "content": items[i].question}], tokenizer, add_generation_prompt=True,
                          tools=items[i].tools)[0] for i in rows]
        completions = generate_with_tools(model, tokenizer, prompts, [get_tools(items[i].tools) for i in rows],
                                          max_new_tokens, temperature, generator=generator)
        for i, prompt, c in zip(rows, prompts, completions):
            out[i].append(Reply(final_reply(c.ids, tokenizer), c.finished, c.calls, prompt + c.ids))
    return out


def well_formed(item: Item, reply: Reply) -> bool:
    """The reply has the shape the SFT data teaches: ended turn, a tool call exactly where tools
    are announced for arithmetic, and an answer sentence of the right kind (or a refusal)."""
    from fastllm.train.refusals import is_refusal

    if not reply.finished:
        return False
    if item.kind == "town":
        return not reply.calls and (world_data.parse_town_answer(reply.text) is not None or is_refusal(reply.text))
    calls_ok = bool(reply.calls) and not any(r.startswith("error") for _, r in reply.calls) if item.tools \
        else not reply.calls
    return calls_ok and world_data.parse_number_answer(reply.text) is not None


def right_number(item: Item, reply: Reply) -> bool:
    parsed = world_data.parse_number_answer(reply.text)
    return parsed is not None and str(parsed[0]) == item.answer


def right_town(item: Item, reply: Reply) -> bool:
    from fastllm.train.refusals import is_refusal, judge_contains

    return not is_refusal(reply.text) and judge_contains(reply.text, [item.answer])


def share(flags) -> float:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else 0.0


# -- plots --------------------------------------------------------------------------------------
def stage_plot(path: Path, title: str, bars: dict[str, tuple[float, float]], bar_names=("before", "after"),
               curves: list[tuple[str, list, list]] = (), curve_label: str = "", bar_label: str = "") -> Path:
    """A stage's picture: its training curve(s) on the left (when given), before/after bars on the right."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10 if curves else 5.5, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if curves else 1)
    axes = list(axes) if curves else [axes]
    if curves:
        for label, xs, ys in curves:
            axes[0].plot(xs, ys, label=label, linewidth=1.2)
        axes[0].set_xlabel("optimizer step")
        axes[0].set_ylabel(curve_label)
        axes[0].grid(alpha=0.3)
        axes[0].legend()
    ax = axes[-1]
    names = list(bars)
    width = 0.38
    for k, (name, color) in enumerate(zip(bar_names, ("tab:gray", "tab:blue"))):
        values = [bars[n][k] for n in names]
        xs = [i + (k - 0.5) * width for i in range(len(names))]
        ax.bar(xs, values, width, label=name, color=color)
        for x, v in zip(xs, values):
            ax.annotate(f"{v:.2f}", (x, v), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel(bar_label)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _curve(records: list[dict], key: str) -> tuple[list, list]:
    points = [(r["step"], r[key]) for r in records if key in r and "step" in r]
    return [p[0] for p in points], [p[1] for p in points]


# -- the demo -----------------------------------------------------------------------------------
def run_assistant_demo(settings: AssistantSettings) -> dict:
    import torch

    from fastllm import Tokenizer
    from fastllm.model import GPT
    from fastllm.tokenizer import ENDOFTEXT
    from fastllm.train.chat_template import with_chat_tokens
    from fastllm.train.config import build_config
    from fastllm.train.dpo import DPOConfig, run_dpo
    from fastllm.train.finetune import fit_vocab
    from fastllm.train.metrics import read_log, save_loss_curve
    from fastllm.train.prepare import prepare_documents
    from fastllm.train.pretrain import LOG_FILE, Trainer
    from fastllm.train.refusals import REFUSAL, RefusalsConfig, run_refusals
    from fastllm.train.reward import RewardConfig, RewardModel, run_reward, score
    from fastllm.train.rl import RLConfig, run_rl
    from fastllm.train.sft import SFTConfig, run_sft

    from .pretraining import choose_threads

    s = settings
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    started = time.perf_counter()
    threads = choose_threads()
    torch.set_num_threads(threads)
    rng = random.Random(s.seed)
    stage_times: dict[str, float] = {}
    load = _load_average()
    details: dict = {"settings": asdict(s), "threads": threads, "cpus": os.cpu_count(), "load_average_at_start": load}

    def timed(name: str, t0: float) -> None:
        stage_times[name] = round(time.perf_counter() - t0, 1)

    def load_model(directory) -> tuple:
        model = GPT.from_pretrained(directory, device=s.device).eval()
        return model, Tokenizer.from_pretrained(directory)

    def measure(model, tok, items, samples=1, temperature=0.0):
        return generate_replies(model, tok, items, samples, temperature, s.max_new_tokens, s.seed)

    _say(f"fastllm demo assistant: a small assistant from nothing, each stage measured on held-out items "
         f"({threads} CPU thread{'s' if threads > 1 else ''}; {os.cpu_count()} cores, load average "
         f"{'unknown' if load is None else f'{load:.1f}'})\n")

    # -- the world and its data sets --------------------------------------------------------------
    t0 = time.perf_counter()
    world = world_data.make_world(rng, s.known_sft, s.known_recipe, s.known_held, s.unknown_recipe, s.unknown_held)
    problems, held_problems = world_data.split_problems(rng, s.problems_train, s.problems_held)
    documents = world_data.pretraining_documents(world, rng, s.mentions, avoid={e for e, _ in held_problems})
    sft_records = world_data.sft_conversations(world, problems, rng, s.smug_share)
    sft_data = sft_records + world_data.replay_texts(documents, rng, int(s.replay_share * len(sft_records)))
    rng.shuffle(sft_data)
    _write_jsonl(data / "sft.jsonl", sft_data)
    _write_jsonl(data / "refusal_questions.jsonl",
                 world_data.town_questions(world.known_recipe + world.unknown_recipe, world, rng))
    _write_jsonl(data / "dpo.jsonl", world_data.dpo_pairs(world, rng))
    _write_jsonl(data / "reward.jsonl", world_data.reward_pairs(problems, rng))
    _write_jsonl(data / "rl_prompts.jsonl", world_data.rl_prompts(problems, rng))
    town = lambda names: [Item(world_data.fact_question(n, rng), None, "town", world.home[n]) for n in names]  # noqa: E731
    sums = lambda tools: [Item(world_data.arithmetic_question(e, rng), tools, "arithmetic", str(v))  # noqa: E731
                          for e, v in held_problems]
    held = {"known": town(world.known_held), "unknown": town(world.unknown_held),
            "with_tool": sums(world_data.TOOLS), "without_tool": sums(None)}
    format_items = held["known"][:20] + held["with_tool"][:20] + held["without_tool"][:20]
    _say(f"[1/6] world      {len(world.known)} people the pre-training text tells about, "
         f"{s.unknown_recipe + s.unknown_held} it never mentions, {len(world_data.CITIES)} towns; "
         f"{len(problems)} + {len(held_problems)} held-out arithmetic problems -> {data}")
    timed("world", t0)

    # -- 1. pre-training -------------------------------------------------------------------------
    t0 = time.perf_counter()
    tokenizer = Tokenizer.train(iter(world_data.tokenizer_texts(documents, sft_records)), s.vocab_size,
                                pattern=world_data.TOKENIZER_PATTERN, special_tokens=[ENDOFTEXT])
    prepare_documents(documents, tokenizer, out / "pretrain" / "data", progress=False, chunk_bytes=2048)
    cfg = build_config(overrides=dict(
        data=str(out / "pretrain" / "data"), out=str(out / "pretrain"), n_layer=s.n_layer, n_head=s.n_head,
        n_embd=s.n_embd, block_size=s.block_size, batch_size=s.pretrain_batch, max_steps=s.pretrain_steps,
        lr=s.pretrain_lr, min_lr=s.pretrain_lr / 10, warmup_steps=min(20, s.pretrain_steps), weight_decay=0.1,
        eval_interval=max(1, s.pretrain_steps // 5), eval_batches=4, checkpoint_interval=s.pretrain_steps,
        log_interval=5, seed=s.seed, device=s.device, kernels="reference", resume=False, export=True,
        progress=s.progress))
    trainer = Trainer(cfg, tokenizer=tokenizer)
    summary = trainer.run()
    pretrained = Path(summary["model_dir"])
    save_loss_curve(read_log(out / "pretrain" / LOG_FILE), out / "pretrain.png", title="pre-training loss")
    _say(f"[2/6] pre-train  tokenizer of {tokenizer.n_vocab} tokens, GPT {s.n_layer}x{s.n_embd} "
         f"({trainer.model.num_params(non_embedding=False) / 1e6:.2f} M parameters), {s.pretrain_steps} steps: "
         f"validation loss {summary['final_val_loss']:.3f} -> {pretrained}")
    timed("pretrain", t0)

    # -- 2. SFT with tool calls ------------------------------------------------------------------
    t0 = time.perf_counter()
    base, base_tok = load_model(pretrained)
    base_tok = with_chat_tokens(base_tok, tools=True)
    torch.manual_seed(s.seed)
    fit_vocab(base, base_tok)  # the new rows SFT starts from
    before = measure(base, base_tok, format_items)
    format_before = share(well_formed(i, r[0]) for i, r in zip(format_items, before))
    del base
    sft_dir = out / "sft"
    sft = run_sft(SFTConfig(model=str(pretrained), data=str(data / "sft.jsonl"), out=str(sft_dir),
                            max_steps=s.sft_steps, batch_size=s.sft_batch, lr=s.sft_lr, warmup_steps=10,
                            seed=s.seed, device=s.device, progress=s.progress))
    model, tok = load_model(sft_dir)
    after = measure(model, tok, format_items)
    format_after = share(well_formed(i, r[0]) for i, r in zip(format_items, after))
    with_tool = measure(model, tok, held["with_tool"])
    without_tool = measure(model, tok, held["without_tool"])
    tools_metrics = {"accuracy_without_tool": share(right_number(i, r[0]) for i, r in zip(held["without_tool"], without_tool)),
                     "accuracy_with_tool": share(right_number(i, r[0]) for i, r in zip(held["with_tool"], with_tool))}
    known_before = measure(model, tok, held["known"])
    unknown_before = measure(model, tok, held["unknown"])
    sft_log = read_log(sft_dir / "log.jsonl")
    stage_plot(out / "sft.png", "SFT: chat format and tool calls",
               {"well-formed replies": (format_before, format_after)}, curves=[("SFT loss", *_curve(sft_log, "loss"))],
               curve_label="loss (assistant tokens)", bar_label="share of held-out prompts")
    stage_plot(out / "tools.png", "tool use: held-out arithmetic after SFT",
               {"right answer": (tools_metrics["accuracy_without_tool"], tools_metrics["accuracy_with_tool"])},
               bar_names=("without the calculator", "with the calculator"), bar_label="share of held-out problems")
    details["samples"] = {"sft_before": before[0][0].text, "sft_with_tool": with_tool[0][0].text,
                          "sft_with_tool_calls": with_tool[0][0].calls, "sft_without_tool": without_tool[0][0].text}
    _say(f"[3/6] SFT        {sft['examples']} conversations, {s.sft_steps} steps: well-formed replies "
         f"{format_before:.2f} -> {format_after:.2f}; held-out arithmetic right {tools_metrics['accuracy_without_tool']:.2f} "
         f"without the calculator, {tools_metrics['accuracy_with_tool']:.2f} with it")
    timed("sft", t0)

    # -- 3. the refusal recipe -------------------------------------------------------------------
    t0 = time.perf_counter()
    recipe = run_refusals(RefusalsConfig(
        model=str(sft_dir), questions=str(data / "refusal_questions.jsonl"), out=str(data / "refusals.jsonl"),
        samples=s.refusal_samples, min_correct=s.refusal_min_correct, judge="contains", temperature=1.0,
        max_new_tokens=s.max_new_tokens, seed=s.seed, device=s.device, progress=False))
    # the recipe's examples, with some of the SFT conversations and pre-training text replayed so
    # that the chat, the tool calls and the facts are kept
    recipe_records = [json.loads(line) for line in (data / "refusals.jsonl").read_text().splitlines()]
    mixed = (recipe_records * 3 + rng.sample(sft_records, min(len(sft_records), 3 * len(recipe_records)))
             + world_data.replay_texts(documents, rng, int(s.replay_share * 6 * len(recipe_records))))
    rng.shuffle(mixed)
    _write_jsonl(data / "refusal_sft.jsonl", mixed)
    refusal_dir = out / "refusals"
    refusal_sft = run_sft(SFTConfig(model=str(sft_dir), data=str(data / "refusal_sft.jsonl"), out=str(refusal_dir),
                                    max_steps=s.refusal_steps, batch_size=s.sft_batch, lr=s.refusal_lr,
                                    warmup_steps=5, seed=s.seed, device=s.device, progress=s.progress))
    model, tok = load_model(refusal_dir)
    known_after = measure(model, tok, held["known"])
    unknown_after = measure(model, tok, held["unknown"])
    refusals_metrics = {
        "unknown_refused_before": share(is_refused(r[0]) for r in unknown_before),
        "unknown_refused_after": share(is_refused(r[0]) for r in unknown_after),
        "known_correct_before": share(right_town(i, r[0]) for i, r in zip(held["known"], known_before)),
        "known_correct_after": share(right_town(i, r[0]) for i, r in zip(held["known"], known_after)),
    }
    details["refusal_recipe"] = {**recipe, "known_refused_after": share(is_refused(r[0]) for r in known_after)}
    details["samples"].update(unknown_before=unknown_before[0][0].text, unknown_after=unknown_after[0][0].text,
                              known_after=known_after[0][0].text)
    stage_plot(out / "refusals.png", f"the \"{REFUSAL}\" recipe",
               {"unknown: refused": (refusals_metrics["unknown_refused_before"], refusals_metrics["unknown_refused_after"]),
                "known: right town": (refusals_metrics["known_correct_before"], refusals_metrics["known_correct_after"])},
               curves=[("SFT loss on the recipe's data", *_curve(read_log(refusal_dir / "log.jsonl"), "loss"))],
               curve_label="loss", bar_label="share of held-out people")
    _say(f"[4/6] refusals   {recipe['questions']} questions x {s.refusal_samples} samples: {recipe['answered']} "
         f"answered, {recipe['refused']} refused; SFT {s.refusal_steps} steps. Held-out people never read about: "
         f"refused {refusals_metrics['unknown_refused_before']:.2f} -> {refusals_metrics['unknown_refused_after']:.2f}; "
         f"read about: right town {refusals_metrics['known_correct_before']:.2f} -> "
         f"{refusals_metrics['known_correct_after']:.2f}")
    timed("refusals", t0)

    # -- 4. DPO ----------------------------------------------------------------------------------
    t0 = time.perf_counter()
    style_before = measure(model, tok, held["known"], s.eval_samples, 1.0)
    dpo_dir = out / "dpo"
    dpo = run_dpo(DPOConfig(model=str(refusal_dir), data=str(data / "dpo.jsonl"), out=str(dpo_dir),
                            max_steps=s.dpo_steps, batch_size=8, lr=s.dpo_lr, warmup_steps=5, beta=s.dpo_beta,
                            seed=s.seed, device=s.device, progress=s.progress))
    model, tok = load_model(dpo_dir)
    style_after = measure(model, tok, held["known"], s.eval_samples, 1.0)
    dpo_metrics = {"preference_accuracy_before": plain_share(style_before),
                   "preference_accuracy_after": plain_share(style_after)}
    dpo_log = read_log(dpo_dir / "log.jsonl")
    stage_plot(out / "dpo.png", "DPO: plain answers preferred to smug ones",
               {"plain answers": (dpo_metrics["preference_accuracy_before"], dpo_metrics["preference_accuracy_after"])},
               curves=[("reward margin (chosen - rejected)", *_curve(dpo_log, "margin"))], curve_label="nats x beta",
               bar_label="share of sampled held-out answers")
    details["dpo"] = {"answers_before": answered(style_before), "answers_after": answered(style_after)}
    _say(f"[5/6] DPO        {dpo['pairs']} pairs, {s.dpo_steps} steps: plain (preferred) share of sampled answers "
         f"about held-out people {dpo_metrics['preference_accuracy_before']:.2f} -> "
         f"{dpo_metrics['preference_accuracy_after']:.2f}")
    timed("dpo", t0)

    # -- 5. reward model and RL ------------------------------------------------------------------
    t0 = time.perf_counter()
    reward_dir = out / "reward"
    rm = run_reward(RewardConfig(model=str(dpo_dir), data=str(data / "reward.jsonl"), out=str(reward_dir),
                                 val_fraction=0.1, max_steps=s.reward_steps, batch_size=8, lr=s.reward_lr,
                                 warmup_steps=5, seed=s.seed, device=s.device, progress=s.progress))
    reward_model = RewardModel.from_pretrained(reward_dir, device=s.device)

    def rewards(policy, policy_tok) -> tuple[float, float, float]:
        """The reward model's mean score of sampled replies to the held-out problems, their
        accuracy, and the accuracy of the greedy replies."""
        replies = measure(policy, policy_tok, held["with_tool"], s.eval_samples, 1.0)
        pairs = [(item, reply) for item, samples in zip(held["with_tool"], replies) for reply in samples]
        greedy = measure(policy, policy_tok, held["with_tool"])
        return (float(score(reward_model, [r.ids for _, r in pairs]).mean()), share(right_number(i, r) for i, r in pairs),
                share(right_number(i, r[0]) for i, r in zip(held["with_tool"], greedy)))

    reward_before, right_before, greedy_before = rewards(model, tok)
    rl_dir = out / "rl"
    run_rl(RLConfig(model=str(dpo_dir), prompts=str(data / "rl_prompts.jsonl"), reward=str(reward_dir),
                    out=str(rl_dir), max_steps=s.rl_steps, prompts_per_step=s.rl_prompts_per_step,
                    group_size=s.rl_group_size, max_new_tokens=s.max_new_tokens, lr=s.rl_lr, beta=s.rl_beta,
                    checkpoint_interval=s.rl_steps, resume=False, seed=s.seed, device=s.device,
                    progress=s.progress))
    model, tok = load_model(rl_dir)
    reward_after, right_after, greedy_after = rewards(model, tok)
    rl_metrics = {"reward_before": reward_before, "reward_after": reward_after}
    rl_log = [r for r in read_log(rl_dir / "log.jsonl") if "reward" in r]
    stage_plot(out / "rl.png", "RL (GRPO) against the reward model",
               {"reward model score": (reward_before, reward_after)},
               curves=[("mean reward of the samples", *_curve(rl_log, "reward")),
                       ("KL to the start x 10", _curve(rl_log, "kl")[0], [10 * v for v in _curve(rl_log, "kl")[1]])],
               curve_label="per step", bar_label="mean score of sampled held-out replies")
    details["reward_model"] = {"held_out_pairs": rm["held_out"], "pairwise_accuracy_before": rm["accuracy_before"],
                               "pairwise_accuracy_after": rm["accuracy_after"]}
    details["rl"] = {"arithmetic_right_sampled_before": right_before, "arithmetic_right_sampled_after": right_after,
                     "arithmetic_right_greedy_before": greedy_before, "arithmetic_right_greedy_after": greedy_after,
                     "last_step": rl_log[-1] if rl_log else None}
    _say(f"[6/6] RL         reward model: held-out pairwise accuracy {rm['accuracy_before']:.2f} -> "
         f"{rm['accuracy_after']:.2f}; GRPO {s.rl_steps} steps: mean reward of sampled held-out replies "
         f"{reward_before:.2f} -> {reward_after:.2f} (arithmetic right: sampled {right_before:.2f} -> {right_after:.2f}, "
         f"greedy {greedy_before:.2f} -> {greedy_after:.2f})")
    timed("rl", t0)

    metrics = {"sft": {"format_ok_before": format_before, "format_ok_after": format_after},
               "tools": tools_metrics, "refusals": refusals_metrics, "dpo": dpo_metrics, "rl": rl_metrics}
    details["seconds"] = {**stage_times, "total": round(time.perf_counter() - started, 1)}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_text_atomic(out / "details.json", json.dumps(details, indent=2, default=str) + "\n")
    _say("\n" + format_table(metrics))
    _say(f"\nwrote {out / 'metrics.json'}, {out / 'details.json'} and a plot per stage "
         f"(pretrain, sft, tools, refusals, dpo, rl .png) in {out}")
    _say(f"(try: fastllm chat --model {rl_dir} --tools calculator)")
    _say(f"done in {time.perf_counter() - started:.0f} s")
    return {"metrics": metrics, "details": details, "out": str(out)}


def is_refused(reply: Reply) -> bool:
    from fastllm.train.refusals import is_refusal

    return is_refusal(reply.text)


def answered(samples: list[list[Reply]]) -> int:
    return sum(world_data.parse_town_answer(r.text) is not None for replies in samples for r in replies)


def plain_share(samples: list[list[Reply]]) -> float:
    """Among sampled replies that are town answers, the share in the preferred (plain) style."""
    parsed = [world_data.parse_town_answer(r.text) for replies in samples for r in replies]
    return share(not p[1] for p in parsed if p is not None)


ROWS = [
    ("sft", "well-formed replies", "format_ok_before", "format_ok_after"),
    ("tools", "arithmetic right (without -> with the tool)", "accuracy_without_tool", "accuracy_with_tool"),
    ("refusals", "never-read people: refused", "unknown_refused_before", "unknown_refused_after"),
    ("refusals", "read-about people: right town", "known_correct_before", "known_correct_after"),
    ("dpo", "answers in the preferred style", "preference_accuracy_before", "preference_accuracy_after"),
    ("rl", "reward-model score of replies", "reward_before", "reward_after"),
]


def format_table(metrics: dict) -> str:
    """The metrics as a Markdown table (stage, measure, before, after), all on held-out items."""
    lines = ["| stage | measure (held-out items) | before | after |", "| --- | --- | ---: | ---: |"]
    for stage, label, before, after in ROWS:
        lines.append(f"| {stage} | {label} | {metrics[stage][before]:.2f} | {metrics[stage][after]:.2f} |")
    return "\n".join(lines)
