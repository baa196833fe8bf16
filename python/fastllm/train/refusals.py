"""The "I don't know" recipe (``fastllm refusals``): teach a model to refuse what it does not know.

For questions with known answers, the model is sampled ``samples`` times and a judge compares
each reply with the reference. Where the model is reliably right (at least ``min_correct`` of
its samples correct), the SFT example keeps one of its own correct replies: the model's words,
so fine-tuning on it teaches no new fact, only that this one may be answered. Where it is not,
the example replies with the refusal text. Fine-tuning on the result (``fastllm sft``) aligns
what the model says with what it knows, which is what reduces hallucinations.

Input: JSONL records ``{"question": TEXT, "answer": TEXT or [TEXT, ...]}`` with optional
``"system"`` (text) and ``"tools"`` (names: the samples may call them). Output: the SFT JSONL
``{"messages": [...], "tools"?: [...], "judged": {"correct": k, "samples": n, "kept": ...}}``.

Judges (pluggable: any ``(reply, references) -> bool`` in :data:`JUDGES`): ``exact`` (the same
text, outer spaces aside), ``normalized`` (equal after :func:`normalize`: case, punctuation,
articles and spacing ignored), ``contains`` (a normalized reference appears in the normalized
reply as whole words).
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from fastllm import options
from fastllm.files import write_text_atomic

from .chat_template import check_tools, render
from .data import load_jsonl

REFUSAL = "I don't know."

# -- judges --------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation + "\u2019\u2018\u201c\u201d")


def normalize(text: str) -> str:
    """Lower case, no punctuation, no English articles, single spaces (SQuAD's answer normalization)."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def judge_exact(reply: str, references: Sequence[str]) -> bool:
    return any(reply.strip() == ref.strip() for ref in references)


def judge_normalized(reply: str, references: Sequence[str]) -> bool:
    return any(normalize(reply) == normalize(ref) for ref in references)


def judge_contains(reply: str, references: Sequence[str]) -> bool:
    padded = f" {normalize(reply)} "
    return any(normalize(ref) and f" {normalize(ref)} " in padded for ref in references)


Judge = Callable[[str, Sequence[str]], bool]
JUDGES: dict[str, Judge] = {"exact": judge_exact, "normalized": judge_normalized, "contains": judge_contains}


def get_judge(name: str) -> Judge:
    if name not in JUDGES:
        raise ValueError(f"unknown judge {name!r}; available: {', '.join(JUDGES)}")
    return JUDGES[name]


def is_refusal(reply: str, refusal: str = REFUSAL) -> bool:
    """Whether ``reply`` says the refusal text (normalized, as whole words)."""
    return judge_contains(reply, [refusal])


# -- the data transform ----------------------------------------------------------------------
@dataclass
class Question:
    question: str
    answers: list[str]
    system: str | None = None
    tools: list[str] | None = None
    where: str = "question"

    def messages(self) -> list[dict]:
        return ([{"role": "system", "content": self.system}] if self.system else []) + \
            [{"role": "user", "content": self.question}]


def load_questions(path) -> list[Question]:
    questions = []
    for line_no, record in load_jsonl(path):
        where = f"{path}:{line_no}"
        if not isinstance(record, dict) or not isinstance(record.get("question"), str) or "answer" not in record:
            raise ValueError(f"{where}: expected an object with a \"question\" (text) and an \"answer\"")
        answers = record["answer"] if isinstance(record["answer"], list) else [record["answer"]]
        if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise ValueError(f"{where}: \"answer\" must be a non-empty text or a list of them")
        system = record.get("system")
        if system is not None and not isinstance(system, str):
            raise ValueError(f"{where}: \"system\" must be text")
        questions.append(Question(record["question"], answers, system, check_tools(record.get("tools"), where) or None,
                                  where))
    return questions


def refusal_example(question: Question, replies: Sequence[list[dict]], judge: Judge, min_correct: float,
                    refusal: str = REFUSAL) -> dict:
    """The SFT record for one question from the model's sampled replies (each a list of
    assistant/tool messages, the last one holding the final answer)."""
    if not replies:
        raise ValueError(f"{question.where}: no sampled replies to judge")
    correct = [r for r in replies if judge(r[-1]["content"], question.answers)]
    reliable = len(correct) >= min_correct * len(replies)
    reply = correct[0] if reliable and correct else [{"role": "assistant", "content": refusal}]
    record = {"messages": question.messages() + reply}
    if question.tools:
        record["tools"] = question.tools
    record["judged"] = {"correct": len(correct), "samples": len(replies), "kept": "answer" if reliable else "refusal"}
    return record


# -- the command -----------------------------------------------------------------------------
@dataclass
class RefusalsConfig:
    model: str
    questions: str
    out: str = "refusals.jsonl"
    samples: int = 8
    min_correct: float = 0.75  # the share of correct samples that makes the model "reliably right"
    judge: str = "normalized"
    refusal: str = REFUSAL
    temperature: float = 1.0
    top_k: int | None = None
    max_new_tokens: int = 64
    batch_size: int = 64  # sequences generated together
    seed: int = 1337
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        options.check_fields(self, REFUSALS_CHECKS)
        if not self.refusal.strip():
            raise ValueError("refusal must be a non-empty text")


REFUSALS_CHECKS = {
    "samples": options.positive_int,
    "min_correct": options.probability_mass,
    "judge": options.choice(*JUDGES),
    "temperature": options.non_negative_float,
    "top_k": options.optional(options.positive_int),
    "max_new_tokens": options.positive_int,
    "batch_size": options.positive_int,
    "seed": options.integer,
    "device": options.device,
}


def sample_replies(model, tokenizer, questions: Sequence[Question], samples: int, max_new_tokens: int,
                   temperature: float = 1.0, top_k=None, batch_size: int = 64, seed: int = 0,
                   progress: bool = False) -> list[list[list[dict]]]:
    """``samples`` replies (message lists) per question, generated in batches with the questions' tools."""
    import torch
    from tqdm.auto import tqdm

    from .tools import generate_with_tools, get_tools, split_completion

    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    jobs = [(q, i) for q in range(len(questions)) for i in range(samples)]
    replies: list[list[list[dict]]] = [[] for _ in questions]
    for start in tqdm(range(0, len(jobs), batch_size), desc="sampling", unit="batch", disable=not progress):
        batch = jobs[start: start + batch_size]
        # one batch per tool set: a row's tools are its own
        by_tools: dict[tuple, list[int]] = {}
        for q, _ in batch:
            by_tools.setdefault(tuple(questions[q].tools or ()), []).append(q)
        for tool_names, rows in by_tools.items():
            prompts = [render(questions[q].messages(), tokenizer, add_generation_prompt=True,
                              tools=list(tool_names))[0] for q in rows]
            completions = generate_with_tools(model, tokenizer, prompts, get_tools(tool_names), max_new_tokens,
                                              temperature, top_k, generator=generator)
            for q, completion in zip(rows, completions):
                replies[q].append(split_completion(completion.ids, tokenizer))
    return replies


def run_refusals(cfg: RefusalsConfig) -> dict:
    """Samples, judges and writes ``cfg.out`` (atomically); returns counts."""
    from .finetune import load_model_and_tokenizer
    from .chat_template import IM_END

    judge = get_judge(cfg.judge)
    questions = load_questions(cfg.questions)
    model, tokenizer, _ = load_model_and_tokenizer(cfg.model, cfg.device)
    if IM_END not in tokenizer.special_tokens_set:
        raise ValueError(f"{cfg.model} has no chat template tokens: fine-tune it with `fastllm sft` first")
    model.eval()
    replies = sample_replies(model, tokenizer, questions, cfg.samples, cfg.max_new_tokens, cfg.temperature,
                             cfg.top_k, cfg.batch_size, cfg.seed, cfg.progress)
    records = [refusal_example(q, r, judge, cfg.min_correct, cfg.refusal) for q, r in zip(questions, replies)]
    write_text_atomic(Path(cfg.out), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    answered = sum(r["judged"]["kept"] == "answer" for r in records)
    return {"questions": len(records), "answered": answered, "refused": len(records) - answered,
            "correct_samples": sum(r["judged"]["correct"] for r in records),
            "samples": len(records) * cfg.samples, "out": str(cfg.out)}
