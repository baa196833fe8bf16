"""The synthetic world of ``fastllm demo assistant`` and every data set its stages use.

People with made-up names live in made-up towns. The pre-training text tells where the *known*
people live (in several phrasings); the *unknown* people never appear in it, so no stage can
know their towns. The known people are split three ways: those the SFT data asks about (``sft``),
those the refusal recipe asks about (``recipe``: the model has only read about them, as about the
held-out ones) and those kept for measuring (``held``); the unknown people two ways (``recipe``,
``held``). Arithmetic problems (two-digit products, three-digit sums and differences) are split
into training and held-out problems, and the held-out ones appear nowhere else.

Two styles vary on purpose, as if the SFT data had been written by several people:
- a town answer is plain (``Sure, in Quell.``) or smug (``Obviously, in Quell.``); the DPO
  pairs prefer plain;
- an arithmetic answer is a sentence (``The answer is 4042.``) or a bare number (``4042.``);
  the reward model's pairs prefer the sentence (and the right number to a misread one), and RL
  optimises against it.
Everything is drawn from one seeded ``random.Random``: the same seed gives the same world.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

TOOLS = ["calculator"]
PLAIN_LEAD, SMUG_LEAD = "Sure,", "Obviously,"
# single digits, never joined to a space: a number is the same digit tokens wherever it stands, so
# copying it (into a call, out of a result) is copying tokens
TOKENIZER_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
CITIES = ["Quell", "Brask", "Vost", "Dunmar", "Pellis", "Orrin", "Sarka", "Tobel"]
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "tr", "st"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "m", "k", "th", "nd"]
FACT_TEMPLATES = [
    "{name} lives in {city}.",
    "{name} has a house in {city}.",
    "In {city}, everyone knows {name}.",
    "{name} lives in {city} and walks to the market every day.",
    "The post for {name} goes to {city}.",
    # questions answered in the text, as on the web: they teach reading a name off a question
    "Where does {name} live? In {city}.",
    "Which town does {name} live in? In {city}.",
]
# worked examples: copying the problem and the result, as the calculator turns will ask
ARITHMETIC_LINES = ["{expr} = {value}.", "What is {expr}? Working ({expr}) out gives {value}. The answer is {value}.",
                    "Compute {expr}. Working ({expr}) out gives {value}, so {value}."]
FILLER = [
    "The roads between the towns are long.", "Every town has a market and a well.",
    "Letters travel slowly in the hills.", "The river runs past the old mill.",
    "People like to talk about where their friends live.",
]
QUESTION_TEMPLATES = ["Where does {name} live?", "Which town does {name} live in?"]
ARITHMETIC_TEMPLATES = ["What is {expr}?", "Compute {expr}."]


@dataclass
class World:
    home: dict[str, str]  # every person's town, known or not
    known_sft: list[str]
    known_recipe: list[str]
    known_held: list[str]
    unknown_recipe: list[str]
    unknown_held: list[str]

    @property
    def known(self) -> list[str]:
        return self.known_sft + self.known_recipe + self.known_held


def _name(rng: random.Random) -> str:
    syllables = rng.choice([2, 2, 3])
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)).capitalize()


def make_world(rng: random.Random, known_sft: int, known_recipe: int, known_held: int, unknown_recipe: int,
               unknown_held: int) -> World:
    sizes = [known_sft, known_recipe, known_held, unknown_recipe, unknown_held]
    names: list[str] = []
    taken = {c.lower() for c in CITIES}
    while len(names) < sum(sizes):
        name = _name(rng)
        if name.lower() not in taken and 4 <= len(name) <= 9:
            taken.add(name.lower())
            names.append(name)
    groups, start = [], 0
    for size in sizes:
        groups.append(names[start: start + size])
        start += size
    return World({n: rng.choice(CITIES) for n in names}, *groups)


# -- pre-training -----------------------------------------------------------------------------
def arithmetic_problem(rng: random.Random) -> tuple[str, int]:
    """A product of two-digit numbers or a sum of three-digit ones; the result has four digits."""
    if rng.random() < 0.5:
        a, b = rng.randint(32, 99), rng.randint(32, 99)
        return f"{a} * {b}", a * b
    a, b = rng.randint(500, 999), rng.randint(500, 999)
    return f"{a} + {b}", a + b


def split_problems(rng: random.Random, n_train: int, n_held: int) -> tuple[list, list]:
    """Distinct problems: ``n_train`` for the training data, ``n_held`` never used in it."""
    seen: dict[str, int] = {}
    while len(seen) < n_train + n_held:
        expr, value = arithmetic_problem(rng)
        seen.setdefault(expr, value)
    items = list(seen.items())
    return items[:n_train], items[n_train:]


def pretraining_documents(world: World, rng: random.Random, mentions: int, avoid: set[str] = frozenset(),
                          sentences_per_doc: int = 12, arithmetic_share: float = 0.15) -> list[str]:
    """Documents of facts about the known people (each mentioned ``mentions`` times, in varied
    phrasings), arithmetic written out (never a problem in ``avoid``: the held-out ones), and
    filler. The unknown people never appear."""
    sentences = [rng.choice(FACT_TEMPLATES).format(name=n, city=world.home[n])
                 for n in world.known for _ in range(mentions)]
    for _ in range(int(len(sentences) * arithmetic_share)):
        expr, value = arithmetic_problem(rng)
        if expr not in avoid:
            sentences.append(rng.choice(ARITHMETIC_LINES).format(expr=expr, value=value))
    sentences += [rng.choice(FILLER) for _ in range(len(sentences) // 10)]
    rng.shuffle(sentences)
    return [" ".join(sentences[i: i + sentences_per_doc]) for i in range(0, len(sentences), sentences_per_doc)]


_SENTENCE_END = re.compile(r"(?<=[.?!]) ")


def replay_texts(documents: list[str], rng: random.Random, count: int, sentences: int = 4) -> list[dict]:
    """``{"text": ...}`` SFT lines of a few consecutive pre-training sentences: mixed into
    fine-tuning so that the facts learned in pre-training are not forgotten."""
    records = []
    for _ in range(count):
        parts = _SENTENCE_END.split(rng.choice(documents))
        start = rng.randrange(max(1, len(parts) - sentences + 1))
        records.append({"text": " ".join(parts[start: start + sentences])})
    return records


def tokenizer_texts(documents: list[str], conversations: list[dict]) -> list[str]:
    """What the tokenizer is trained on: the pre-training text and the chat data's words (as a
    real tokenizer's corpus is broader than one training set), so chat prompts stay short."""
    chat = [" ".join(m["content"] for m in r["messages"]) for r in conversations]
    template_words = "system\nuser\nassistant\nTools: calculator.\ncalculator(\nSure, in\nObviously, in\nI don't know."
    return documents + chat + [template_words] * 200


# -- chat data --------------------------------------------------------------------------------
def town_answer(name: str, city: str, smug: bool = False) -> str:
    return f"{SMUG_LEAD if smug else PLAIN_LEAD} in {city}."


def number_answer(value: int, sentence: bool) -> str:
    return f"The answer is {value}." if sentence else f"{value}."


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def calculator_turn(expr: str, value: int, sentence: bool) -> list[dict]:
    """An assistant turn that calls the calculator and answers with its result."""
    return [{"role": "assistant", "content": "", "tool_call": {"name": "calculator", "input": expr}},
            {"role": "tool", "content": str(value)},
            {"role": "assistant", "content": number_answer(value, sentence)}]


def fact_question(name: str, rng: random.Random) -> str:
    return rng.choice(QUESTION_TEMPLATES).format(name=name)


def arithmetic_question(expr: str, rng: random.Random) -> str:
    return rng.choice(ARITHMETIC_TEMPLATES).format(expr=expr)


def sft_conversations(world: World, problems: list, rng: random.Random, smug_share: float,
                      direct_share: float = 0.25) -> list[dict]:
    """The first SFT set: town questions about the known ``sft`` people (answered, in both
    styles), and arithmetic: with the calculator when tools are announced, directly (a guess
    the model must compute itself) when they are not."""
    records = []
    for name in world.known_sft:
        for template in QUESTION_TEMPLATES:
            tools = TOOLS if rng.random() < 0.3 else None
            answer = town_answer(name, world.home[name], rng.random() < smug_share)
            records.append({"messages": [user(template.format(name=name)), {"role": "assistant", "content": answer}],
                            **({"tools": tools} if tools else {})})
    for expr, value in problems:
        sentence = rng.random() < 0.5
        if rng.random() < direct_share:
            records.append({"messages": [user(arithmetic_question(expr, rng)),
                                         {"role": "assistant", "content": number_answer(value, sentence)}]})
        else:
            records.append({"messages": [user(arithmetic_question(expr, rng))] + calculator_turn(expr, value, sentence),
                            "tools": TOOLS})
    rng.shuffle(records)
    return records


def town_questions(names: list[str], world: World, rng: random.Random) -> list[dict]:
    """``fastllm refusals`` questions: the town question and its reference answer."""
    return [{"question": fact_question(n, rng), "answer": world.home[n]} for n in names]


def dpo_pairs(world: World, rng: random.Random) -> list[dict]:
    """Preference pairs on the known ``sft`` and ``recipe`` people: the plain answer over the smug one."""
    return [{"prompt": [user(template.format(name=n))], "chosen": town_answer(n, world.home[n]),
             "rejected": town_answer(n, world.home[n], smug=True)}
            for n in world.known_sft + world.known_recipe for template in QUESTION_TEMPLATES]


def _misread(value: int, rng: random.Random) -> int:
    """``value`` with one digit changed: a reply that copied the tool's result wrong."""
    digits = list(str(value))
    i = rng.randrange(len(digits))
    digits[i] = rng.choice([d for d in "0123456789" if d != digits[i] and (i or d != "0")])
    return int("".join(digits))


def reward_pairs(problems: list, rng: random.Random) -> list[dict]:
    """Reward-model pairs, after the same calculator call: the sentence over the bare number, and
    the right number over a misread one (so the reward is not for the style alone)."""
    pairs = []
    for expr, value in problems:
        prompt = [user(arithmetic_question(expr, rng))]
        chosen = calculator_turn(expr, value, True)
        pairs.append({"prompt": prompt, "tools": TOOLS, "chosen": chosen, "rejected": calculator_turn(expr, value, False)})
        wrong = chosen[:2] + [{"role": "assistant", "content": number_answer(_misread(value, rng), True)}]
        pairs.append({"prompt": prompt, "tools": TOOLS, "chosen": chosen, "rejected": wrong})
    return pairs


def rl_prompts(problems: list, rng: random.Random) -> list[dict]:
    return [{"prompt": [user(arithmetic_question(expr, rng))], "tools": TOOLS, "answer": str(value)}
            for expr, value in problems]


# -- judging replies --------------------------------------------------------------------------
_TOWN = re.compile(r"(?P<lead>Sure,|Obviously,) in (?P<city>[A-Z][a-z]+)\.")
_NUMBER = re.compile(r"(?:The answer is )?(?P<value>-?\d+)\.")


def parse_town_answer(reply: str):
    """``(city, smug)`` of a well-formed town answer, else None."""
    match = _TOWN.fullmatch(reply.strip())
    return (match["city"], match["lead"] == SMUG_LEAD) if match else None


def parse_number_answer(reply: str):
    """``(value, sentence)`` of a well-formed arithmetic answer, else None."""
    match = _NUMBER.fullmatch(reply.strip())
    return (int(match["value"]), reply.strip().startswith("The answer")) if match else None
