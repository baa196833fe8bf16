"""Supervised fine-tuning on chat conversations (``fastllm sft``).

Input: JSONL, one ``{"messages": [{"role": ..., "content": ...}, ...]}`` per line, with an
optional ``"tools": [NAME, ...]`` announced in the system message. Conversations are rendered
with the chat template (its special tokens are added to the tokenizer, the tool tokens too when
a conversation calls a tool, and the embeddings resized) and the loss covers only what the
assistant writes: its replies and its tool calls, never the tools' results.

A line may instead hold ``{"text": ...}``: plain text trained on whole (followed by the
end-of-text token), to mix some pre-training data into fine-tuning ("replay"), which keeps a
small model from forgetting what it learned in pre-training while it learns the chat format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastllm.files import hold_directory

from .chat_template import check_messages, check_tools, render, uses_tools, with_chat_tokens
from .data import load_jsonl
from .finetune import (Example, FinetuneConfig, check_length, collate, fit_vocab,
                       load_model_and_tokenizer, optimize, shuffled_batches, steps_for)
from .metrics import JsonlLog
from .runtime import autocast


def load_conversations(path: str | Path) -> list[tuple[int, list[dict] | str, list[str]]]:
    """``(line_number, messages, tools)`` for every line (each conversation must hold an
    assistant turn), or ``(line_number, text, [])`` for a plain-text line."""
    conversations = []
    for line_no, record in load_jsonl(path):
        where = f"{path}:{line_no}"
        if isinstance(record, dict) and "messages" not in record and "text" in record:
            if not isinstance(record["text"], str) or not record["text"]:
                raise ValueError(f"{where}: \"text\" must be a non-empty string")
            conversations.append((line_no, record["text"], []))
            continue
        if not isinstance(record, dict) or "messages" not in record:
            raise ValueError(f"{where}: expected an object with a \"messages\" list (or a \"text\")")
        messages = check_messages(record["messages"], where)
        if not any(m["role"] == "assistant" for m in messages):
            raise ValueError(f"{where}: the conversation has no assistant turn, so nothing to learn from")
        conversations.append((line_no, messages, check_tools(record.get("tools"), where)))
    return conversations


def needs_tool_tokens(conversations) -> bool:
    return any(not isinstance(messages, str) and uses_tools(messages) for _, messages, _ in conversations)


def encode_text(text: str, tokenizer) -> Example:
    """A plain-text line, trained on whole, ending with the end-of-text token."""
    ids = tokenizer.encode_ordinary(text) + ([tokenizer.eot_token] if tokenizer.eot_token is not None else [])
    return ids, list(ids)


def build_examples(conversations, tokenizer, block_size: int, source: str = "data") -> list[Example]:
    return [check_length(encode_text(item, tokenizer) if isinstance(item, str) else render(item, tokenizer, tools=tools),
                         block_size, f"{source}:{line_no}")
            for line_no, item, tools in conversations]


@dataclass
class SFTConfig(FinetuneConfig):
    out: str = "out/sft"
    epochs: float = 3.0


def run_sft(cfg: SFTConfig) -> dict:
    """Fine-tunes ``cfg.model`` into ``cfg.out``, which it holds for the run (see ``fastllm.files.hold_directory``)."""
    with hold_directory(cfg.out):
        return _run_sft(cfg)


def _run_sft(cfg: SFTConfig) -> dict:
    import torch

    model, tokenizer, device = load_model_and_tokenizer(cfg.model, cfg.device)
    conversations = load_conversations(cfg.data)
    tokenizer = with_chat_tokens(tokenizer, tools=needs_tool_tokens(conversations))
    examples = build_examples(conversations, tokenizer, model.config.block_size, cfg.data)
    fit_vocab(model, tokenizer)
    torch.manual_seed(cfg.seed)
    pad = tokenizer.eot_token if tokenizer.eot_token is not None else 0
    model.train()

    def loss_fn(batch):
        x, y = collate(batch, pad, device)
        with autocast(device):
            loss = model(x, y).loss
        return loss, {"tokens": int((y != -100).sum())}

    steps = steps_for(len(examples), cfg.batch_size, cfg.epochs, cfg.max_steps)
    out = Path(cfg.out)
    history = optimize(
        model, shuffled_batches(examples, cfg.batch_size, cfg.seed), loss_fn, steps=steps, lr=cfg.lr,
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps, grad_clip=cfg.grad_clip,
        log=JsonlLog(out / "log.jsonl"), desc="sft", progress=cfg.progress,
    )
    model.eval()
    model.save_pretrained(out, tokenizer=tokenizer)
    return {"steps": steps, "history": history, "examples": len(examples), "model_dir": str(out)}
