"""Reward components with TRL's reward-function signature.

Each takes `(prompts, completions, **kwargs)` and returns one float (or None where it
does not apply) per completion. The dataset columns arrive as keyword lists, one value
per completion: `answer` (reference), `difficulty`, `prefix` (assistant text the prompt
already ends with), `prompt_id` (same for all completions of one prompt), optionally
`budget`; TRL adds `completion_ids` (token lengths L come from there), `trainer_state`,
`log_metric` and `log_extra`.

Components with constants are picklable callable classes whose `__name__` is the
component name (TRL logs `rewards/<__name__>/mean`); constants are constructor kwargs
with the paper's defaults. `max_len` (Lmax) always comes from the caller.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from engine.rewards.parsing import Parsed, completion_text, is_correct, parse_response

# ----------------------------------------------------------------------------- batch helpers


def column(kwargs: dict[str, Any], name: str, n: int, default: Any = None) -> list:
    """Dataset column `name` as a list of n values (`default` everywhere when absent)."""
    values = kwargs.get(name)
    if values is None:
        return [default] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
    return values


def parse_batch(completions: Sequence, kwargs: dict[str, Any]) -> list[Parsed]:
    """Each completion parsed together with its prompt's prefix."""
    prefixes = column(kwargs, "prefix", len(completions), "")
    return [parse_response(completion_text(c), p or "") for c, p in zip(completions, prefixes, strict=True)]


def correctness(parsed: list[Parsed], kwargs: dict[str, Any]) -> list[bool | None]:
    """Whether each answer is right; None where the row has no reference answer."""
    if kwargs.get("answer") is None:
        raise ValueError("this reward compares answers and needs the dataset column 'answer' "
                         "(map the reference-answer column to it)")
    golds = column(kwargs, "answer", len(parsed))
    return [None if gold is None or str(gold).strip() == "" else is_correct(p.answer, str(gold))
            for p, gold in zip(parsed, golds, strict=True)]


def lengths(kwargs: dict[str, Any], n: int, name: str) -> list[int]:
    """Completion lengths L in tokens, from TRL's `completion_ids`."""
    ids = kwargs.get("completion_ids")
    if ids is None:
        raise ValueError(f"reward {name!r} measures lengths in tokens and needs `completion_ids` "
                         "(TRL passes them; pass them when calling it yourself)")
    if len(ids) != n:
        raise ValueError(f"reward {name!r}: {len(ids)} completion_ids for {n} completions")
    return [len(x) for x in ids]


def group_indices(prompts: Sequence, kwargs: dict[str, Any]) -> list[list[int]]:
    """Indices of the completions of each prompt group, by the `prompt_id` column (by the
    prompt text when that column is absent), in order of first appearance."""
    n = len(prompts)
    ids = kwargs.get("prompt_id")
    keys = list(ids) if ids is not None else [repr(p) for p in prompts]
    if len(keys) != n:
        raise ValueError(f"column 'prompt_id' has {len(keys)} values for {n} completions")
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    return list(groups.values())


# ----------------------------------------------------------------------------- rule rewards


def accuracy(prompts, completions, **kwargs) -> list[float | None]:
    """`1 if correct else 0`; answers compared by value with math-verify (numbers, fractions,
    LaTeX, units), not by string. None where the row has no reference answer.

    Source: DeepSeek-R1 (rule-based accuracy reward).
    """
    right = correctness(parse_batch(completions, kwargs), kwargs)
    return [None if r is None else float(r) for r in right]


def format_reward(prompts, completions, **kwargs) -> list[float | None]:
    """`1 if the response (prefix + completion) is exactly one <think> block then one
    <answer> block (whitespace and a trailing end-of-sequence marker allowed) else 0`.

    Source: DeepSeek-R1 (format reward).
    """
    return [float(p.well_formed) for p in parse_batch(completions, kwargs)]


format_reward.__name__ = "format"  # the metric name; __qualname__ stays, so pickle finds it


def group_length(prompts, completions, **kwargs) -> list[float | None]:
    """Within each prompt group: `lam = 0.5 - (L - Lmin) / (Lmax_g - Lmin)`; reward `lam` if
    correct, `min(0, lam)` if wrong; 0 for the whole group when all lengths are equal.
    None where the row has no reference answer.

    Source: Kimi k1.5 technical report (length penalty).
    """
    n = len(completions)
    right = correctness(parse_batch(completions, kwargs), kwargs)
    length = lengths(kwargs, n, "group_length")
    out: list[float | None] = [None] * n
    for group in group_indices(prompts, kwargs):
        lo, hi = min(length[i] for i in group), max(length[i] for i in group)
        for i in group:
            if right[i] is None:
                continue
            lam = 0.0 if hi == lo else 0.5 - (length[i] - lo) / (hi - lo)
            out[i] = lam if right[i] else min(0.0, lam)
    return out


class Cosine:
    """Correct: `r = min_value_correct + 0.5*(max_value_correct - min_value_correct)*(1 + cos(pi*L/Lmax))`
    (1.0 at L=0 down to 0.5 at Lmax); wrong: the same with (max_value_wrong, min_value_wrong)
    (-1.0 at L=0, -0.5 at Lmax), so short wrong answers cost most. L is clipped to Lmax.
    None where the row has no reference answer.

    Source: Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning in LLMs", as in
    open-r1's `get_cosine_scaled_reward` (whose default min_value_wrong is 0; REWARDS.md's -1).
    """

    def __init__(self, max_len: int, min_value_wrong: float = -1.0, max_value_wrong: float = -0.5,
                 min_value_correct: float = 0.5, max_value_correct: float = 1.0):
        if max_len <= 0:
            raise ValueError(f"cosine: max_len must be positive; got {max_len}")
        self.__name__ = "cosine"
        self.max_len = max_len
        self.min_value_wrong, self.max_value_wrong = min_value_wrong, max_value_wrong
        self.min_value_correct, self.max_value_correct = min_value_correct, max_value_correct

    def value(self, length: int, correct: bool) -> float:
        progress = min(max(length / self.max_len, 0.0), 1.0)
        if correct:
            lo, hi = self.min_value_correct, self.max_value_correct
        else:  # swapped: the value moves from min_value_wrong (L=0) to max_value_wrong (Lmax)
            lo, hi = self.max_value_wrong, self.min_value_wrong
        return lo + 0.5 * (hi - lo) * (1.0 + math.cos(progress * math.pi))

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        right = correctness(parse_batch(completions, kwargs), kwargs)
        length = lengths(kwargs, len(completions), self.__name__)
        return [None if r is None else self.value(n, r) for n, r in zip(length, right, strict=True)]


class Budget:
    """`clip(alpha*(B - L) + delta, 0, 1)` if correct else 0 (L1-Max). The budget B of a row is
    its `budget` column if positive, else `per_difficulty * difficulty` if both are positive,
    else `default_budget` if positive, else Lmax. None where the row has no reference answer.

    Source: Aggarwal & Welleck 2025, "L1: Controlling How Long a Reasoning Model Thinks"
    (LCPO, L1-Max reward; alpha = 0.0003, delta = 0.5).
    """

    def __init__(self, max_len: int, alpha: float = 0.0003, delta: float = 0.5,
                 default_budget: float = 0.0, per_difficulty: float = 0.0):
        self.__name__ = "budget"
        self.max_len, self.alpha, self.delta = max_len, alpha, delta
        self.default_budget, self.per_difficulty = default_budget, per_difficulty

    def budget_of(self, budget: Any, difficulty: Any) -> float:
        if _positive(budget):
            return float(budget)
        if self.per_difficulty > 0 and _positive(difficulty):
            return self.per_difficulty * float(difficulty)
        return float(self.default_budget) if self.default_budget > 0 else float(self.max_len)

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        n = len(completions)
        right = correctness(parse_batch(completions, kwargs), kwargs)
        length = lengths(kwargs, n, self.__name__)
        budgets = column(kwargs, "budget", n)
        difficulty = column(kwargs, "difficulty", n, 0)
        out: list[float | None] = []
        for r, ln, b, d in zip(right, length, budgets, difficulty, strict=True):
            if r is None:
                out.append(None)
            elif not r:
                out.append(0.0)
            else:
                out.append(min(max(self.alpha * (self.budget_of(b, d) - ln) + self.delta, 0.0), 1.0))
        return out


def _positive(value: Any) -> bool:
    """A usable positive number (None, NaN from a missing cell, and text are not)."""
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


class Overlong:
    """Soft overlong punishment with C = cache_fraction * Lmax: 0 if `L <= Lmax - C`;
    `((Lmax - C) - L) / C` if `Lmax - C < L <= Lmax`; -1 beyond. Applies whether or not
    the answer is right.

    Source: DAPO (Yu et al. 2025), soft overlong punishment; the paper's cache is
    4096 of 20480 tokens, hence cache_fraction = 0.2.
    """

    def __init__(self, max_len: int, cache_fraction: float = 0.2):
        if not 0 < cache_fraction <= 1:
            raise ValueError(f"overlong: cache_fraction must be in (0, 1]; got {cache_fraction}")
        self.__name__ = "overlong"
        self.max_len, self.cache_fraction = max_len, cache_fraction

    def value(self, length: int) -> float:
        cache = self.cache_fraction * self.max_len
        start = self.max_len - cache
        if length <= start:
            return 0.0
        if length <= self.max_len:
            return (start - length) / cache
        return -1.0

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        return [self.value(n) for n in lengths(kwargs, len(completions), self.__name__)]
