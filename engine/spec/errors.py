"""Spec problems: one `SpecError` per field, `SpecInvalid` with all of them, and the rules every
number of a spec obeys (finite floats, whole numbers the run store holds, seeds NumPy takes)."""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any


class SpecError(ValueError):
    """A run spec is invalid; `field` is the dotted path of the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class SpecInvalid(ValueError):
    """Every problem of a spec at once; `errors` is a list of SpecError."""

    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"the run spec has {len(errors)} problem{'s' * (len(errors) != 1)}:\n{lines}")

    def by_field(self) -> dict[str, str]:
        return {e.field: e.message for e in self.errors}


def _err(errors: list[SpecError], prefix: str, name: str, message: str) -> None:
    errors.append(SpecError(f"{prefix}{name}", message))


def _at_least_one(errors: list[SpecError], prefix: str, section: Any, names: tuple[str, ...]) -> None:
    """A problem for each of `names` (counts and lengths) of `section` that is below 1."""
    for name in names:
        if getattr(section, name) < 1:
            _err(errors, prefix, name, f"must be at least 1; got {getattr(section, name)}.")


INT_MAX = 2**63 - 1  # the run store (SQLite) holds whole numbers up to this; steps and counts are stored
SEED_MAX = 2**32 - 1  # seeds go to NumPy's generator, which takes 0 .. 2**32 - 1


def _number_problems(value: Any, path: str) -> list[SpecError]:
    """The one rule every number of a spec obeys, nested tables included (reward weights and
    constants, difficulty weights): a float is finite (NaN and inf pass checks written as
    `not x > 0`, then fail or train wrongly later), a whole number fits in the run store."""
    if is_dataclass(value):
        return [e for f in fields(value)
                for e in _number_problems(getattr(value, f.name), f"{path}{f.name}.")]
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in _number_problems(v, f"{path}{k}.")]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _number_problems(v, f"{path}{i}.")]
    name = path.rstrip(".")
    if isinstance(value, float) and not math.isfinite(value):
        return [SpecError(name, f"must be a finite number; got {value}.")]
    if isinstance(value, int) and not isinstance(value, bool) and not -INT_MAX - 1 <= value <= INT_MAX:
        return [SpecError(name, f"is too large: the run store holds whole numbers up to {INT_MAX}; "
                                f"got {value}.")]
    return []



def _seed_problem(e: list[SpecError], p: str, name: str, seed: int) -> None:
    if not 0 <= seed <= SEED_MAX:
        _err(e, p, name, f"must be between 0 and {SEED_MAX} (the range NumPy's generator takes); got {seed}.")

