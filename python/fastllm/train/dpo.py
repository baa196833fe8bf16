"""Direct preference optimization (``fastllm dpo``, Rafailov et al. 2023).

Input: JSONL records ``{"prompt", "chosen", "rejected"}`` (and optionally ``"tools"``). The
prompt is plain text or a list of chat messages; a reply is text or a list of assistant
messages (tool calls and their results included: the results are context, not trained). A
frozen copy of the starting model is the reference; the loss is

    -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))

over the replies' tokens. Logged: the implicit rewards ``beta * (log pi - log ref)``,
their margin (chosen minus rejected) and the preference accuracy (margin > 0).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from fastllm import options
from fastllm.files import hold_directory

from .chat_template import IGNORE, check_messages, check_tools, render, with_chat_tokens
from .data import load_jsonl
from .finetune import (Example, FinetuneConfig, check_length, collate, fit_vocab,
                       load_model_and_tokenizer, optimize, shuffled_batches, steps_for)
from .metrics import JsonlLog
from .runtime import autocast


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float):
    """Per-pair DPO loss and the chosen/rejected implicit rewards (all shaped ``(batch,)``)."""
    chosen_rewards = beta * (policy_chosen - ref_chosen)
    rejected_rewards = beta * (policy_rejected - ref_rejected)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    return losses, chosen_rewards.detach(), rejected_rewards.detach()


def sequence_logprobs(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum of ``log p(y_t | x_<=t)`` over the non-ignored targets of each row."""
    logits = model(x).logits
    mask = y != IGNORE
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)


def _reply_messages(reply, where: str, field: str) -> list[dict]:
    """A chat reply as messages: text is one assistant message; a list holds assistant messages
    (with tool calls) and tool results."""
    if isinstance(reply, str):
        return [{"role": "assistant", "content": reply}]
    if isinstance(reply, list) and reply and all(isinstance(m, dict) and m.get("role") in ("assistant", "tool")
                                                 for m in reply) and reply[0].get("role") == "assistant":
        return reply
    raise ValueError(f"{where}: \"{field}\" must be text or a list of assistant (and tool) messages")


def encode_reply(prompt, reply, tokenizer, where: str, field: str, tools=None) -> Example:
    """``(ids, labels)`` of a prompt followed by one reply, the labels on the reply's trained tokens only.

    A text prompt is continued as plain text and the reply ends with the end-of-text token; a
    list of messages is a chat, and the reply is rendered as the assistant's turn."""
    if isinstance(prompt, list):
        messages = check_messages(prompt + _reply_messages(reply, where, field), where)
        prompt_ids, _ = render(prompt, tokenizer, add_generation_prompt=True, tools=tools)
        ids, labels = render(messages, tokenizer, tools=tools)
        if ids[: len(prompt_ids)] != prompt_ids:
            raise ValueError(f"{where}: the prompt must end with a user message (or a system one)")
        # the sequence ends with the reply's <|im_end|>, where generation stops (and a reward model scores)
        newline = tokenizer.encode_ordinary("\n")
        ids, labels = ids[: len(ids) - len(newline)], labels[: len(labels) - len(newline)]
        return ids, [IGNORE] * len(prompt_ids) + labels[len(prompt_ids):]
    if not isinstance(prompt, str):
        raise ValueError(f"{where}: \"prompt\" must be text or a list of chat messages")
    if not isinstance(reply, str):
        raise ValueError(f"{where}: \"{field}\" must be text when the prompt is text")
    prompt_ids = tokenizer.encode_ordinary(prompt)
    reply_ids = tokenizer.encode_ordinary(reply) + ([tokenizer.eot_token] if tokenizer.eot_token is not None else [])
    if not reply_ids:
        raise ValueError(f"{where}: \"{field}\" is empty")
    return prompt_ids + reply_ids, [IGNORE] * len(prompt_ids) + reply_ids


def encode_pair(record, tokenizer, where: str) -> tuple[Example, Example]:
    """The chosen and rejected sequences of one record as (ids, labels) on the reply tokens."""
    if not isinstance(record, dict) or not all(k in record for k in ("prompt", "chosen", "rejected")):
        raise ValueError(f"{where}: expected an object with \"prompt\", \"chosen\" and \"rejected\"")
    prompt = record["prompt"]
    if isinstance(prompt, list):  # every field is checked before anything is encoded
        for field in ("chosen", "rejected"):
            check_messages(prompt + _reply_messages(record[field], where, field), where)
    tools = check_tools(record.get("tools"), where)
    chosen = encode_reply(prompt, record["chosen"], tokenizer, where, "chosen", tools)
    rejected = encode_reply(prompt, record["rejected"], tokenizer, where, "rejected", tools)
    return chosen, rejected


def load_preferences(path, tokenizer, block_size: int) -> list[tuple[Example, Example]]:
    pairs = []
    for line_no, record in load_jsonl(path):
        where = f"{path}:{line_no}"
        chosen, rejected = encode_pair(record, tokenizer, where)
        pairs.append((check_length(chosen, block_size, where), check_length(rejected, block_size, where)))
    return pairs


def preference_tokenizer(path, tokenizer):
    """``tokenizer`` with the chat tokens when a record's prompt is a chat, and the tool tokens
    when a reply calls a tool."""
    records = [r for _, r in load_jsonl(path) if isinstance(r, dict)]
    chat = any(isinstance(r.get("prompt"), list) for r in records)
    tools = any(isinstance(r.get(f), list) and any(isinstance(m, dict) and (m.get("role") == "tool" or "tool_call" in m)
                                                    for m in r[f]) for r in records for f in ("chosen", "rejected"))
    return with_chat_tokens(tokenizer, tools=tools) if chat else tokenizer


def preference_step(policy, reference, batch, beta: float, pad_id: int, device):
    """Loss and metrics for a batch of (chosen, rejected) pairs."""
    n = len(batch)
    x, y = collate([c for c, _ in batch] + [r for _, r in batch], pad_id, device)
    with autocast(x.device):
        policy_logps = sequence_logprobs(policy, x, y)
        with torch.no_grad():
            ref_logps = sequence_logprobs(reference, x, y)
    losses, chosen_r, rejected_r = dpo_loss(policy_logps[:n], policy_logps[n:], ref_logps[:n], ref_logps[n:], beta)
    margin = chosen_r - rejected_r
    return losses.mean(), {
        "reward_chosen": float(chosen_r.mean()),
        "reward_rejected": float(rejected_r.mean()),
        "margin": float(margin.mean()),
        "accuracy": float((margin > 0).float().mean()),
    }


@dataclass
class DPOConfig(FinetuneConfig):
    out: str = "out/dpo"
    batch_size: int = 4
    lr: float = 5e-6
    warmup_steps: int = 5
    beta: float = 0.1  # strength of the pull towards the reference model

    def __post_init__(self) -> None:
        super().__post_init__()
        self.beta = options.positive_float("beta", self.beta)


def run_dpo(cfg: DPOConfig) -> dict:
    """Fine-tunes ``cfg.model`` into ``cfg.out``, which it holds for the run (see ``fastllm.files.hold_directory``)."""
    with hold_directory(cfg.out):
        return _run_dpo(cfg)


def _run_dpo(cfg: DPOConfig) -> dict:
    policy, tokenizer, device = load_model_and_tokenizer(cfg.model, cfg.device)
    tokenizer = preference_tokenizer(cfg.data, tokenizer)
    pairs = load_preferences(cfg.data, tokenizer, policy.config.block_size)
    fit_vocab(policy, tokenizer)
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    policy.eval()  # no dropout: the log-ratios must compare like with like
    torch.manual_seed(cfg.seed)
    pad = tokenizer.eot_token if tokenizer.eot_token is not None else 0
    steps = steps_for(len(pairs), cfg.batch_size, cfg.epochs, cfg.max_steps)
    out = Path(cfg.out)
    history = optimize(
        policy, shuffled_batches(pairs, cfg.batch_size, cfg.seed),
        lambda batch: preference_step(policy, reference, batch, cfg.beta, pad, device),
        steps=steps, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps, grad_clip=cfg.grad_clip,
        log=JsonlLog(out / "log.jsonl"), desc="dpo", progress=cfg.progress,
    )
    policy.save_pretrained(out, tokenizer=tokenizer)
    return {"steps": steps, "history": history, "pairs": len(pairs), "model_dir": str(out)}
