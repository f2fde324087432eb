"""Training data: built-in generated tasks and user files, as rows of one schema.

Every row is a dict:
    {"id": str, "task": str, "question": str, "answer": str, "difficulty": int (1..5, 0 =
     unknown), "reasoning": str (long, chatty trace), "sketch": str (concise trace)}
Countdown rows also carry "numbers" (list[int]) and "solution" (an expression).

`load_examples("builtin:arithmetic", n=..., seed=..., split=...)` or
`load_examples("path/to/data.jsonl", n=..., columns={...})`. The train/eval split is a hash
of the question text (see base.split_of), so the splits never overlap.
No torch, no datasets at import time: the GUI imports TASK_INFO from here.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path

from engine.data import arithmetic, countdown, word_problems
from engine.data.base import EVAL_EVERY, DataError, check_split, row_id, split_of
from engine.data.countdown import verify_countdown

__all__ = ["TASKS", "TASK_INFO", "TASK_LEVELS", "DataError", "load_examples", "split_of", "verify_countdown"]

log = logging.getLogger(__name__)

# name -> (generate(rng, difficulty) -> row without id, levels, id prefix)
_GENERATORS: dict[str, tuple[Callable[[random.Random, int], dict], tuple[int, ...], str]] = {
    "arithmetic": (arithmetic.generate, arithmetic.LEVELS, arithmetic.PREFIX),
    "countdown": (countdown.generate, countdown.LEVELS, countdown.PREFIX),
    "word_problems": (word_problems.generate, word_problems.LEVELS, word_problems.PREFIX),
}
_MIXED = tuple(_GENERATORS)


def _mixed(rng: random.Random, difficulty: int) -> dict:
    """One problem from a task picked at random (load_examples mixes exactly evenly)."""
    return _GENERATORS[rng.choice(_MIXED)][0](rng, difficulty)


TASKS: dict[str, Callable[[random.Random, int], dict]] = {
    **{name: gen for name, (gen, _, _) in _GENERATORS.items()},
    "mixed": _mixed,
}

# difficulty levels each task has; the mix offers those every task has
TASK_LEVELS: dict[str, tuple[int, ...]] = {name: levels for name, (_, levels, _) in _GENERATORS.items()}
TASK_LEVELS["mixed"] = tuple(sorted(set.intersection(*(set(v) for v in TASK_LEVELS.values()))))

TASK_INFO: dict[str, str] = {
    "arithmetic": "Arithmetic expressions, from 3 + 5 to four steps with exact division; integer answers.",
    "countdown": "Reach a target number from 3-6 given numbers with + - * /, each used at most once.",
    "word_problems": "GSM8K-style word problems (shopping, baking, sharing, travel, ages), 1-5 steps.",
    "mixed": "An even mix of the built-in tasks.",
}

# A (task, level) that has gone this many draws without a new row is taken as used up:
# level 1 arithmetic, for one, has only ~150 distinct questions, ~20 of them in eval.
_EXHAUSTED_AFTER = 2000


def load_examples(
    source: str,
    *,
    n: int,
    seed: int = 0,
    split: str = "train",
    difficulty_mix: dict[int, float] | None = None,
    columns: dict[str, str] | None = None,
    min_rows: int = 0,
    needed_for: str = "",
) -> list[dict]:
    """n rows of `split` from "builtin:<task>" or a user file/folder.

    Built-ins are deterministic for (seed, split, n, difficulty_mix), and the rows for a
    smaller n are a prefix of those for a larger one. User files return at most n rows
    (fewer when the file has fewer in this split), shuffled by seed.
    With `min_rows`, fewer rows than that raise DataError with the counts (rows in the file,
    kept, in each split) and `needed_for` (what needs them, e.g. "one GRPO step"): a stage must
    not train on nothing and report success.
    """
    check_split(split)
    if n < 0:
        raise DataError(f"n must be 0 or more; got {n}.")
    if source.startswith("builtin:"):
        task = source.removeprefix("builtin:")
        if task not in TASKS:
            raise DataError(f"unknown built-in task {task!r}; choose one of {', '.join(TASKS)}.")
        rows = _builtin(task, n=n, seed=seed, split=split, difficulty_mix=difficulty_mix)
        counts = f"{n} were asked for"
    else:
        rows, counts = _from_file(source, n=n, seed=seed, split=split, difficulty_mix=difficulty_mix,
                                  columns=columns)
    if len(rows) < min_rows:
        need = f"{needed_for or 'this'} needs at least {min_rows}"
        raise DataError(f"too little data: {source} gives {len(rows)} {split} row{'s' * (len(rows) != 1)} "
                        f"({counts}); {need}. Add rows, or ask for less per step.")
    return rows


def _weights(task: str, levels: tuple[int, ...], mix: dict[int, float] | None) -> dict[int, float]:
    if mix is None:
        return {level: 1.0 for level in levels}
    unknown = sorted(set(mix) - set(levels))
    if unknown:
        raise DataError(
            f"difficulty_mix has levels {unknown} that {task} does not have; it has {list(levels)}."
        )
    if any(w < 0 for w in mix.values()):
        raise DataError("difficulty_mix weights must be 0 or more.")
    weights = {level: float(w) for level, w in sorted(mix.items()) if w > 0}
    if not weights:
        raise DataError(
            "difficulty_mix gives every level weight 0; give at least one level a positive weight."
        )
    return weights


def _builtin(
    task: str, *, n: int, seed: int, split: str, difficulty_mix: dict[int, float] | None
) -> list[dict]:
    names = _MIXED if task == "mixed" else (task,)
    live = {name: _weights(name, _GENERATORS[name][1], difficulty_mix) for name in names}
    rng = random.Random(f"ponder/{task}/{seed}")  # str seeds hash with sha512: same on every run
    rows: list[dict] = []
    seen: set[str] = set()
    while len(rows) < n:
        name = names[len(rows) % len(names)]  # round robin: "mixed" is exactly even
        row = _draw(name, live[name], rng, split, seen)
        seen.add(row["question"])
        if task == "mixed":  # one set of keys on every row, so datasets.Dataset.from_list keeps them all
            row = {**row, "numbers": row.get("numbers", []), "solution": row.get("solution", "")}
        rows.append({"id": row_id(_GENERATORS[name][2], row["question"]), **row})
    return rows


def _draw(name: str, weights: dict[int, float], rng: random.Random, split: str, seen: set[str]) -> dict:
    """One new row of `split`: pick a level by weight, then draw at that level until a question
    lands in the split and is new. A level that stops giving new questions is dropped."""
    generate = _GENERATORS[name][0]
    while weights:
        level = rng.choices(list(weights), weights=list(weights.values()))[0]
        for _ in range(_EXHAUSTED_AFTER):
            row = generate(rng, level)
            if split_of(row["question"]) == split and row["question"] not in seen:
                return row
        log.warning(
            "%s difficulty %d has no more distinct %s questions; using the other levels", name, level, split
        )
        del weights[level]
    raise DataError(
        f"built-in task {name} ran out of distinct {split} questions after {len(seen)} rows; "
        "ask for fewer rows or allow more difficulty levels."
    )


def _from_file(
    source: str,
    *,
    n: int,
    seed: int,
    split: str,
    difficulty_mix: dict[int, float] | None,
    columns: dict[str, str] | None,
) -> tuple[list[dict], str]:
    """The rows, and their counts in words (for a too-little-data message)."""
    from engine.data.files import validate_file

    columns = dict(columns or {})
    unknown = sorted(set(columns) - {"question", "answer", "reasoning", "difficulty"})
    if unknown:
        raise DataError(f"columns has unknown keys {unknown}; use question, answer, reasoning, difficulty.")
    report = validate_file(
        Path(source).expanduser(),
        question=columns.get("question", "question"),
        answer=columns.get("answer", "answer"),
        reasoning=columns.get("reasoning"),
        difficulty=columns.get("difficulty"),
    )
    if not report.ok:
        raise DataError(report.format())
    rows = [row for row in report.kept if split_of(row["question"]) == split]
    in_split = len(rows)
    random.Random(f"ponder/file/{seed}").shuffle(rows)
    if difficulty_mix is not None:
        rows = _apply_mix(rows, n, _weights("this data set", (0, 1, 2, 3, 4, 5), difficulty_mix))
    if len(rows) < n:
        log.warning("%s has %d usable %s rows; %d were asked for", source, len(rows), split, n)
    other = "eval" if split == "train" else "train"
    counts = (f"the file has {report.total_rows} rows, {len(report.kept)} usable ({len(report.dropped)} dropped): "
              f"{in_split} in the {split} split, {len(report.kept) - in_split} in the {other} split "
              f"(one question in {EVAL_EVERY} is held out for eval)")
    if difficulty_mix is not None:
        counts += f", {len(rows)} left after the difficulty mix"
    return rows[:n], counts


def _apply_mix(rows: list[dict], n: int, weights: dict[int, float]) -> list[dict]:
    """Up to n rows whose difficulties follow the weights as closely as the data allows."""
    pools = {level: [r for r in rows if r["difficulty"] == level] for level in weights}
    total = sum(weights.values())
    picked: list[dict] = []
    for level, w in weights.items():
        picked += pools[level][: round(n * w / total)]
    taken = {id(r) for r in picked}
    leftovers = [r for level in weights for r in pools[level] if id(r) not in taken]
    picked += leftovers[: max(0, n - len(picked))]
    order = {id(r): i for i, r in enumerate(rows)}
    return sorted(picked, key=lambda r: order[id(r)])
