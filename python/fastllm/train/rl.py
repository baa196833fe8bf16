"""Reinforcement learning from a reward (``fastllm rl``): GRPO with a KL anchor to the starting policy.

Why GRPO (Shao et al. 2024, DeepSeekMath) rather than PPO: PPO learns a value function to
baseline each token, a second network as large as the policy that must itself be trained
before the advantages mean anything. GRPO samples a group of replies per prompt and uses the
group's own rewards as the baseline, so there is no value head to fit, no GAE parameters to
tune, and rewards of any scale (a reward model's logits, a checker's 0/1) are normalised per
prompt. On outcome rewards (one number per reply) that is all PPO's value head would estimate.

Per step: ``prompts_per_step`` prompts, ``group_size`` samples each (temperature
``temperature``; tool calls run as in ``fastllm chat --tools``), one reward per sample from a
reward model (``fastllm reward``) or a task's checker (:data:`TASKS`), then

    A_i  = (r_i - mean(r_group)) / (std(r_group) + eps)          (population std)
    rho  = pi(o_t) / pi_old(o_t)
    L    = mean_i 1/|o_i| sum_t [ -min(rho A_i, clip(rho, 1 - clip, 1 + clip) A_i) + beta KL_t ]
    KL_t = pi_ref(o_t)/pi(o_t) - log(pi_ref(o_t)/pi(o_t)) - 1     (the unbiased, non-negative "k3" estimate)

over the tokens the model wrote (tool results are context, not actions), with ``pi_old`` the
policy that sampled and ``pi_ref`` the frozen starting policy. ``updates_per_batch`` optimizer
steps reuse each batch of samples (the ratio and its clipping matter from the second on).
Logged per step: reward, KL, entropy and loss (of the policy that sampled), the clipped share
(over the updates), reply length, calls. Checkpoints
(``OUT/checkpoint.pt``, weights-only safe) let a run resume exactly, as ``fastllm train``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from fastllm import options
from fastllm.files import hold_directory

from .chat_template import IM_END, check_messages, check_tools, render
from .checkpoint import CHECKPOINT_FILE, check_model_config, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .data import load_jsonl
from .finetune import load_model_and_tokenizer, shuffled_batches
from .metrics import JsonlLog
from .optim import WarmupCosine, check_finite, make_adamw, optimizer_step
from .runtime import autocast
from .task_rewards import TASKS, answer_reward, arithmetic_reward  # noqa: F401 (re-exported)

LOG_FILE = "log.jsonl"


# -- the arithmetic --------------------------------------------------------------------------
def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """``(r - mean) / (std + eps)`` within each consecutive group of ``group_size`` rewards
    (population std); a group whose rewards are all equal gets zero advantages."""
    if rewards.dim() != 1 or group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    groups = rewards.double().view(-1, group_size)
    mean = groups.mean(dim=1, keepdim=True)
    std = groups.std(dim=1, unbiased=False, keepdim=True)
    return ((groups - mean) / (std + eps)).view(-1).to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate from the sampled tokens' log-probabilities:
    ``exp(ref - logp) - (ref - logp) - 1`` (>= 0; its mean over samples of pi is the KL)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, clip: float = 0.2, beta: float = 0.04) -> tuple[torch.Tensor, dict]:
    """The GRPO loss (module docstring) of ``(batch, seq)`` token log-probabilities; ``mask``
    marks the tokens the policy wrote, ``advantages`` is ``(batch,)``. Returns the loss and
    the mean KL and clipped share over those tokens."""
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    adv = advantages.to(logp.dtype)[:, None]
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    kl = kl_estimate(logp, ref_logp)
    per_token = -surrogate + beta * kl
    per_sequence = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    tokens = mask.sum().clamp(min=1)
    clipped = ((ratio - 1).abs() > clip).to(logp.dtype)
    return per_sequence.mean(), {"kl": float((kl.detach() * mask).sum() / tokens),
                                 "clipped": float((clipped * mask).sum() / tokens)}


def token_logprobs(model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p(y_t | x_<=t)`` and the entropy of the distribution at each position, ``(batch, seq)``."""
    logits = model(x).logits.float()
    logp_all = torch.log_softmax(logits, dim=-1)
    picked = logp_all.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return picked, entropy


# The programmatic rewards (TASKS) live in task_rewards.py, which the CLI reads without torch.



@dataclass
class PromptItem:
    ids: list[int]
    tools: list[str]
    record: dict


def load_prompts(path, tokenizer, block_size: int, needs_answer: bool) -> list[PromptItem]:
    """Records ``{"prompt": TEXT or MESSAGES, "tools"?: [...], "answer"?: ...}`` rendered to prompt ids
    (a chat prompt ends with the assistant header; a text prompt is continued as text)."""
    items = []
    for line_no, record in load_jsonl(path):
        where = f"{path}:{line_no}"
        if not isinstance(record, dict) or "prompt" not in record:
            raise ValueError(f"{where}: expected an object with a \"prompt\"")
        if needs_answer and "answer" not in record:
            raise ValueError(f"{where}: the task's checker needs an \"answer\"")
        tools = check_tools(record.get("tools"), where)
        prompt = record["prompt"]
        if isinstance(prompt, list):
            if IM_END not in tokenizer.special_tokens_set:
                raise ValueError(f"{where}: a chat prompt, but the model has no chat template tokens "
                                 "(fine-tune it with `fastllm sft` first)")
            ids, _ = render(check_messages(prompt, where), tokenizer, add_generation_prompt=True, tools=tools)
        elif isinstance(prompt, str) and prompt:
            ids = tokenizer.encode_ordinary(prompt)
        else:
            raise ValueError(f"{where}: \"prompt\" must be non-empty text or a list of chat messages")
        if len(ids) >= block_size:
            raise ValueError(f"{where}: the prompt has {len(ids)} tokens, leaving no room in the context of {block_size}")
        items.append(PromptItem(ids, tools, record))
    return items


def same_vocabulary(a, b) -> bool:
    return (a.n_vocab == b.n_vocab and a.special_tokens == b.special_tokens and a.pattern == b.pattern
            and a.mergeable_tokens() == b.mergeable_tokens() and a.mergeable_ids() == b.mergeable_ids()
            and a.merges() == b.merges() and a.ignore_merges == b.ignore_merges)


# -- the run ---------------------------------------------------------------------------------
@dataclass
class RLConfig:
    model: str
    prompts: str
    reward: str | None = None  # a reward model directory (fastllm reward) ...
    task: str | None = None  # ... or the name of a programmatic reward
    out: str = "out/rl"
    max_steps: int = 100
    prompts_per_step: int = 8
    group_size: int = 4
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int | None = None
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    beta: float = 0.04  # weight of the KL penalty to the starting policy
    clip: float = 0.2  # the ratio's clipping range
    updates_per_batch: int = 1
    checkpoint_interval: int = 25
    resume: bool = True  # continue from OUT/checkpoint.pt when it exists
    seed: int = 1337
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        options.check_fields(self, RL_CHECKS)
        if (self.reward is None) == (self.task is None):
            raise ValueError("give exactly one reward: a reward model (--reward DIR) or a task (--task NAME)")
        if self.task is not None:
            options.choice(*TASKS)("task", self.task)
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (the group is the baseline), got {self.group_size}")

    def to_dict(self) -> dict:
        return asdict(self)


RL_CHECKS = {
    "max_steps": options.positive_int,
    "prompts_per_step": options.positive_int,
    "group_size": options.positive_int,
    "max_new_tokens": options.positive_int,
    "temperature": options.positive_float,
    "top_k": options.optional(options.positive_int),
    "lr": options.positive_float,
    "weight_decay": options.non_negative_float,
    "warmup_steps": options.non_negative_int,
    "grad_clip": options.non_negative_float,
    "beta": options.non_negative_float,
    "clip": options.unit_interval,
    "updates_per_batch": options.positive_int,
    "checkpoint_interval": options.positive_int,
    "seed": options.integer,
    "device": options.device,
}
# settings a resumed run must share with the run that wrote the checkpoint
SAME_ON_RESUME = ("model", "prompts", "reward", "task", "prompts_per_step", "group_size", "seed")


class RLTrainer:
    """One GRPO run; :meth:`run` trains to ``cfg.max_steps`` (or stops at ``stop_at``)."""

    def __init__(self, cfg: RLConfig):
        from .reward import RewardModel
        from .tools import get_tools

        self.cfg = cfg
        self.out = Path(cfg.out)
        self.policy, self.tokenizer, self.device = load_model_and_tokenizer(cfg.model, cfg.device)
        self.policy.eval()  # no dropout: the ratios and the KL compare like with like
        self.reference = copy.deepcopy(self.policy).requires_grad_(False)
        self.prompts = load_prompts(cfg.prompts, self.tokenizer, self.policy.config.block_size,
                                    needs_answer=cfg.task is not None)
        self.tools = [get_tools(p.tools) for p in self.prompts]
        self.reward_model = None
        if cfg.reward is not None:
            from fastllm import Tokenizer

            self.reward_model = RewardModel.from_pretrained(cfg.reward, device=self.device)
            if not same_vocabulary(Tokenizer.from_pretrained(cfg.reward), self.tokenizer):
                raise ValueError(f"the reward model {cfg.reward} has another tokenizer than the policy {cfg.model}; "
                                 "train it from the same model (fastllm reward --model ...)")
        self.optimizer = make_adamw(self.policy, cfg.lr, cfg.weight_decay)
        self.schedule = WarmupCosine(cfg.lr, cfg.lr, min(cfg.warmup_steps, cfg.max_steps), cfg.max_steps)
        self.log = JsonlLog(self.out / LOG_FILE)
        self.step = 0

    # -- checkpoints ----------------------------------------------------------------
    def save(self) -> None:
        save_checkpoint(self.out / CHECKPOINT_FILE, {
            "model": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
            "rng": [rng_state()], "model_config": self.policy.config.to_dict(), "rl_config": self.cfg.to_dict(),
        })

    def resume(self) -> bool:
        path = self.out / CHECKPOINT_FILE
        if not path.is_file():
            return False
        state = load_checkpoint(path)
        check_model_config(state["model_config"], self.policy.config.to_dict(), path)
        saved = state.get("rl_config", {})
        diffs = [f"{k}: checkpoint {saved.get(k)!r} vs now {getattr(self.cfg, k)!r}"
                 for k in SAME_ON_RESUME if saved.get(k) != getattr(self.cfg, k)]
        if diffs:
            raise ValueError(f"{path} is from another run ({'; '.join(diffs)}); pass the same settings, "
                             "--no-resume to start over, or another --out")
        self.policy.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        set_rng_state(state["rng"][0])
        return True

    # -- one step -------------------------------------------------------------------
    def rewards(self, items: list[PromptItem], completions) -> torch.Tensor:
        from .reward import score
        from .tools import final_reply

        if self.reward_model is not None:
            return score(self.reward_model, [item.ids + c.ids for item, c in zip(items, completions)])
        check = TASKS[self.cfg.task]
        return torch.tensor([check(item.record, final_reply(c.ids, self.tokenizer))
                             for item, c in zip(items, completions)], dtype=torch.float32)

    def batch_tensors(self, items: list[PromptItem], completions):
        """Right-padded inputs, targets and the mask of the targets the policy wrote."""
        sequences = [item.ids + c.ids for item, c in zip(items, completions)]
        width = max(len(s) for s in sequences) - 1
        x = torch.zeros((len(sequences), width), dtype=torch.long)
        y = torch.zeros((len(sequences), width), dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.bool)
        for row, (item, c, seq) in enumerate(zip(items, completions, sequences)):
            n = len(seq) - 1
            x[row, :n] = torch.tensor(seq[:-1])
            y[row, :n] = torch.tensor(seq[1:])
            start = len(item.ids) - 1  # the target at start is the first generated token
            mask[row, start: start + len(c.ids)] = torch.tensor(c.from_model, dtype=torch.bool)
        return x.to(self.device), y.to(self.device), mask.to(self.device)

    def train_step(self, batch: list[int]) -> dict:
        from .tools import generate_with_tools

        cfg = self.cfg
        started = time.perf_counter()
        rows = [i for i in batch for _ in range(cfg.group_size)]
        items = [self.prompts[i] for i in rows]
        generator = torch.Generator(device=self.device).manual_seed(cfg.seed * 1_000_003 + self.step)
        completions = generate_with_tools(self.policy, self.tokenizer, [p.ids for p in items],
                                          [self.tools[i] for i in rows], cfg.max_new_tokens, cfg.temperature,
                                          cfg.top_k, generator=generator)
        rewards = self.rewards(items, completions)
        advantages = group_advantages(rewards, cfg.group_size).to(self.device)
        x, y, mask = self.batch_tensors(items, completions)
        with torch.no_grad(), autocast(self.device):
            ref_logp, _ = token_logprobs(self.reference, x, y)
            old_logp = token_logprobs(self.policy, x, y)[0] if cfg.updates_per_batch > 1 else None
        lr = self.schedule(self.step)
        first, clipped = None, []
        for _ in range(cfg.updates_per_batch):
            with autocast(self.device):
                logp, entropy = token_logprobs(self.policy, x, y)
            loss, stats = grpo_loss(logp, logp.detach() if old_logp is None else old_logp, ref_logp, advantages,
                                    mask, cfg.clip, cfg.beta)
            loss.backward()
            grad_norm = optimizer_step(self.policy, self.optimizer, lr, cfg.grad_clip)
            check_finite(float(loss.detach()), self.step + 1)
            clipped.append(stats["clipped"])
            if first is None:  # the policy that sampled, before this batch's updates
                first = {"loss": float(loss.detach()), "kl": stats["kl"], "entropy": entropy.detach()}
        self.step += 1
        tokens = mask.sum().clamp(min=1)
        return {
            "step": self.step, "reward": float(rewards.mean()), "reward_std": float(rewards.std(unbiased=False)),
            "kl": first["kl"], "entropy": float((first["entropy"] * mask).sum() / tokens), "loss": first["loss"],
            "clipped": sum(clipped) / len(clipped), "length": sum(len(c.ids) for c in completions) / len(completions),
            "finished": sum(c.finished for c in completions) / len(completions),
            "calls": sum(len(c.calls) for c in completions) / len(completions),
            "lr": lr, "grad_norm": grad_norm, "seconds": time.perf_counter() - started,
        }

    # -- the loop -------------------------------------------------------------------
    def run(self, stop_at: int | None = None) -> dict:
        with hold_directory(self.out):
            return self._run(stop_at)

    def _run(self, stop_at: int | None) -> dict:
        from tqdm.auto import tqdm

        cfg = self.cfg
        resumed = cfg.resume and self.resume()
        if resumed:
            self.log.truncate_after(self.step)
        else:
            self.log.write(event="start", config=cfg.to_dict(), prompts=len(self.prompts))
        batches = shuffled_batches(list(range(len(self.prompts))), cfg.prompts_per_step, cfg.seed)
        for _ in range(self.step):  # the batches the resumed steps already used
            next(batches)
        end = cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps)
        history = []
        with tqdm(total=cfg.max_steps, initial=self.step, desc="rl", unit="step", disable=not cfg.progress,
                  dynamic_ncols=True) as bar:
            while self.step < end:
                record = self.train_step(next(batches))
                history.append(record)
                self.log.write(**record)
                bar.set_postfix(reward=f"{record['reward']:.3f}", kl=f"{record['kl']:.4f}",
                                entropy=f"{record['entropy']:.2f}")
                bar.update(1)
                if self.step % cfg.checkpoint_interval == 0 or self.step == cfg.max_steps:
                    self.save()
        if self.step == cfg.max_steps:
            self.policy.save_pretrained(self.out, tokenizer=self.tokenizer)
        return {"steps": self.step, "history": history, "resumed": resumed, "prompts": len(self.prompts),
                "model_dir": str(self.out) if self.step == cfg.max_steps else None}


def run_rl(cfg: RLConfig) -> dict:
    """Optimises ``cfg.model`` against the reward into ``cfg.out``, which it holds for the run."""
    return RLTrainer(cfg).run()
