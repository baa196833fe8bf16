"""Programmatic rewards for RL prompts by task name (``fastllm rl --task``): each scores a reply
against the prompt record's ``answer``. Plain Python, so that the CLI can list the tasks without
importing torch."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Callable

from .refusals import judge_contains

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def arithmetic_reward(record: dict, reply: str) -> float:
    """1 when the last number in the reply equals the record's ``answer``, else 0."""
    numbers = _NUMBER.findall(reply.replace(",", ""))
    return float(bool(numbers) and Fraction(numbers[-1]) == Fraction(str(record["answer"])))


def answer_reward(record: dict, reply: str) -> float:
    """1 when a normalized ``answer`` (text or list) appears in the reply as whole words, else 0."""
    answers = record["answer"] if isinstance(record["answer"], list) else [record["answer"]]
    return float(judge_contains(reply, [str(a) for a in answers]))


TASKS: dict[str, Callable[[dict, str], float]] = {"arithmetic": arithmetic_reward, "answer": answer_reward}
