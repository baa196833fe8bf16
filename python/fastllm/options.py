"""Checks for user settings, shared by every config dataclass and every command-line flag.

Each check takes a value (or the flag's text), returns it converted, and raises ValueError
with a message that names the setting. The config dataclasses call them in ``__post_init__``
(so a config file is checked like a flag); :func:`flag` turns one into an argparse ``type=``,
so a bad flag is refused by the parser with that message. Torch-free: the CLI starts fast.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Any, Callable, Optional

_DEVICE = re.compile(r"auto|cpu|mps|cuda(?::\d+)?")


def _number(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, str):
        try:
            value = kind(value)
        except ValueError:
            raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def positive_int(name: str, value: Any) -> int:
    value = _number(name, value, int)
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return value


def non_negative_int(name: str, value: Any) -> int:
    value = _number(name, value, int)
    if value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value}")
    return value


def integer(name: str, value: Any) -> int:
    return _number(name, value, int)


def positive_float(name: str, value: Any) -> float:
    value = _number(name, value, float)
    if value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def non_negative_float(name: str, value: Any) -> float:
    value = _number(name, value, float)
    if value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def unit_interval(name: str, value: Any) -> float:
    """A share in ``[0, 1)``: a dropout rate, a validation fraction, an Adam beta."""
    value = _number(name, value, float)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def probability_mass(name: str, value: Any) -> float:
    """A mass in ``(0, 1]``: top-p."""
    value = _number(name, value, float)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return value


def device(name: str, value: Any) -> str:
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``; whether it exists is checked where it is used."""
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise ValueError(f"{name} must be auto, cpu, mps, cuda or cuda:N, got {value!r}")
    return value


def choice(*choices: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Optional[Any]]:
    """``check``, letting ``None`` through (a setting left unset)."""

    def check_optional(name: str, value: Any) -> Optional[Any]:
        return None if value is None else check(name, value)

    return check_optional


def check_fields(obj: Any, checks: dict[str, Callable[[str, Any], Any]]) -> None:
    """Runs ``checks`` (field name -> check) on a dataclass instance, storing the converted values."""
    for field, check in checks.items():
        object.__setattr__(obj, field, check(field, getattr(obj, field)))


def flag(check: Callable[[str, Any], Any], name: str) -> Callable[[str], Any]:
    """An argparse ``type=`` running ``check`` on the flag's text; argparse prints the message."""

    def parse(text: str) -> Any:
        try:
            return check(name, text)
        except ValueError as exc:
            # argparse already starts the line with "argument NAME:"
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{name} ")) from None

    parse.__name__ = check.__name__  # argparse names the type in some messages
    return parse
