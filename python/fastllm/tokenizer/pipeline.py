"""What a HF ``tokenizer.json`` adds around byte-level BPE, in fastllm's terms.

A :class:`Tokenizer` normally splits text with one pattern. One read from a
``tokenizer.json`` may also have a :class:`Pipeline`:

* ``normalizer``: ``None`` or ``"nfc"``, applied to the text outside added tokens;
* ``steps``: pre-tokenizer steps that each cut the pieces of the step before
  (:class:`Split`, :class:`Digits`, :class:`ByteLevel`). A ``Split`` keeps the
  text its regex does not match, as HF's does. Empty means the tokenizer's
  ``pattern``, splitting as it does without a pipeline (tiktoken's semantics:
  its matches are the pieces, text it does not match is left out);
* ``added_tokens``: tokens found in the text before pre-tokenization, with HF's
  flags (:class:`AddedToken`). Non-special ones are always matched; special ones
  follow ``allowed_special`` like any special token. One not allowed keeps its
  text whole, as with HF's ``encode_special_tokens``: no added token is found
  inside it. Special tokens not listed here match with no flags;
* ``bos_ids`` / ``eos_ids``: what the post-processor puts around the ids when
  ``encode(..., add_special_tokens=True)`` asks for it.

The semantics are HF ``tokenizers``' (the Rust core implements them in
``rust/src/pretokenize/pipeline.rs`` and ``rust/src/added_tokens.rs``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Union

#: What a :class:`Split` does with its pattern's matches (HF's ``SplitDelimiterBehavior``).
BEHAVIORS = ("removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous")
NORMALIZERS = ("nfc",)


@dataclass(frozen=True)
class Split:
    """Cuts each piece at the matches of ``pattern`` (a built-in pattern name or a
    fancy-regex regex); ``behavior`` says what becomes of the matches, ``invert``
    swaps matches and the text between them."""

    pattern: str
    behavior: str = "isolated"
    invert: bool = False


@dataclass(frozen=True)
class Digits:
    """Numeric characters as pieces: each alone (``individual``) or in runs."""

    individual: bool = False


@dataclass(frozen=True)
class ByteLevel:
    """The last step: a space before each piece that has none (``add_prefix_space``),
    then the GPT-2 pattern's split (``use_regex``)."""

    add_prefix_space: bool = False
    use_regex: bool = False


Step = Union[Split, Digits, ByteLevel]
_STEP_TYPES = {"split": Split, "digits": Digits, "byte_level": ByteLevel}


@dataclass(frozen=True)
class AddedToken:
    """A token found in the text before pre-tokenization (HF's ``AddedToken``)."""

    content: str
    id: int
    special: bool = False
    single_word: bool = False
    lstrip: bool = False
    rstrip: bool = False
    #: Matched in the normalized text (as its normalized content) instead of the raw text.
    normalized: bool = False


@dataclass(frozen=True)
class Pipeline:
    normalizer: str | None = None
    steps: tuple[Step, ...] = ()
    added_tokens: tuple[AddedToken, ...] = ()
    bos_ids: tuple[int, ...] = field(default=())
    eos_ids: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.normalizer is not None and self.normalizer not in NORMALIZERS:
            raise ValueError(f"unknown normalizer {self.normalizer!r} (known: {', '.join(NORMALIZERS)})")
        for step in self.steps:
            if not isinstance(step, (Split, Digits, ByteLevel)):
                raise TypeError(f"a pipeline step must be Split, Digits or ByteLevel, not {type(step).__name__}")
            if isinstance(step, Split) and step.behavior not in BEHAVIORS:
                raise ValueError(f"unknown split behavior {step.behavior!r} (known: {', '.join(BEHAVIORS)})")
        for token in self.added_tokens:
            if not isinstance(token, AddedToken):
                raise TypeError(f"added tokens must be AddedToken, not {type(token).__name__}")
        for name in ("steps", "added_tokens", "bos_ids", "eos_ids"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def changes_encoding(self) -> bool:
        """Whether the core needs it: a normalizer, steps or added tokens (BOS/EOS alone it does not)."""
        return bool(self.normalizer or self.steps or self.added_tokens)

    def core_spec(self) -> tuple:
        """The description ``fastllm._core.CoreBPE`` takes."""
        steps = []
        for step in self.steps:
            if isinstance(step, Split):
                steps.append(("split", step.pattern, step.behavior, step.invert))
            elif isinstance(step, Digits):
                steps.append(("digits", step.individual))
            else:
                steps.append(("byte_level", step.add_prefix_space, step.use_regex))
        added = [(t.content, t.id, t.special, t.single_word, t.lstrip, t.rstrip, t.normalized) for t in self.added_tokens]
        return (self.normalizer, steps, added)

    def to_dict(self) -> dict:
        """A JSON-able form (fastllm's tokenizer file)."""
        return {
            "normalizer": self.normalizer,
            "steps": [{"type": _type_name(step), **asdict(step)} for step in self.steps],
            "added_tokens": [asdict(token) for token in self.added_tokens],
            "bos_ids": list(self.bos_ids),
            "eos_ids": list(self.eos_ids),
        }

    @classmethod
    def from_dict(cls, data: object, source: str = "pipeline") -> Pipeline:
        """The inverse of :meth:`to_dict`; ValueError naming ``source`` for a malformed one."""
        try:
            if not isinstance(data, dict):
                raise TypeError("not an object")
            steps = []
            for step in data.get("steps", []):
                fields = dict(step)
                steps.append(_STEP_TYPES[fields.pop("type")](**fields))
            added = [AddedToken(**token) for token in data.get("added_tokens", [])]
            pipeline = cls(
                data.get("normalizer"),
                tuple(steps),
                tuple(added),
                tuple(data.get("bos_ids", ())),
                tuple(data.get("eos_ids", ())),
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"{source}: malformed pipeline: {exc}") from None
        _check_types(pipeline, source)
        return pipeline


def _type_name(step: Step) -> str:
    return next(name for name, kind in _STEP_TYPES.items() if isinstance(step, kind))


def _check_types(pipeline: Pipeline, source: str) -> None:
    def is_int(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    ok = all(is_int(i) for i in pipeline.bos_ids + pipeline.eos_ids)
    for step in pipeline.steps:
        if isinstance(step, Split):
            ok &= isinstance(step.pattern, str) and isinstance(step.invert, bool)
        else:
            ok &= all(isinstance(v, bool) for v in asdict(step).values())
    for token in pipeline.added_tokens:
        flags = (token.special, token.single_word, token.lstrip, token.rstrip, token.normalized)
        ok &= isinstance(token.content, str) and is_int(token.id) and all(isinstance(f, bool) for f in flags)
    if not ok:
        raise ValueError(f"{source}: malformed pipeline: a field has the wrong type")
