"""Capturing every completion of a GRPO step with its per-component rewards and token counts.

TRL calls reward functions once per generation batch, before `on_step_end`/`on_log` of the
same step. Each reward function is wrapped (functools.wraps keeps its metric name) so its
values are kept, keyed by the step they belong to (`trainer_state.global_step + 1`); the
store reporter asks for that step's metrics in `on_log`, which also flushes its traces.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from engine.rewards.parsing import completion_text, is_correct, parse_response, think_token_split
from engine.rewards.weights import weighted_total

log = logging.getLogger(__name__)


class TraceRecorder:
    """Keeps each step's batch and reward values; turns them into metrics and `traces` rows."""

    def __init__(self, store, run_id: int, stage: str, tokenizer, weights: dict[str, float],
                 traces_per_step: int = 0, seed: int = 0, write: bool = True):
        self.store, self.run_id, self.stage, self.tokenizer = store, run_id, stage, tokenizer
        self.weights, self.traces_per_step, self.write = weights, traces_per_step, write
        self._rng = random.Random(seed)
        self._batches: dict[int, dict[str, Any]] = {}
        self._values: dict[int, dict[str, list]] = defaultdict(dict)

    def wrap(self, name: str, func: Callable) -> Callable:
        """`func`, keeping its values under `name` (its weight's key, and TRL's metric name)."""

        @functools.wraps(func)
        def recorded(prompts, completions, **kwargs):
            values = func(prompts=prompts, completions=completions, **kwargs)
            state = kwargs.get("trainer_state")
            step = (state.global_step if state is not None else 0) + 1
            if step not in self._batches:
                self._batches[step] = {"completions": [completion_text(c) for c in completions],
                                       "lengths": [len(ids) for ids in kwargs.get("completion_ids") or []],
                                       **{k: kwargs.get(k) for k in ("question", "answer", "difficulty", "prefix",
                                                                     "prompt_id")}}
            self._values[step][name] = list(values)
            return values

        recorded.__name__ = name
        return recorded

    def step_metrics(self, step: int, logged: dict[str, float]) -> dict[str, float]:
        """Accuracy, token split and think-rate of `step`'s batch; writes its traces. Empty if none was kept."""
        batch = self._batches.pop(step, None)
        values = self._values.pop(step, {})
        for old in [s for s in self._batches if s < step]:  # a batch nobody logged (should not happen)
            self._batches.pop(old)
            self._values.pop(old, None)
        if batch is None:
            return {}
        rows = self._rows(step, batch, values)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # each rank scored its share of the batch
            from accelerate.utils import gather_object

            rows = gather_object(rows)
        n = len(rows)
        out: dict[str, float] = {
            "accuracy": sum(r["correct"] for r in rows) / n,
            "think_rate": sum(r["mode"] == "think" for r in rows) / n,
            "tokens/completion": sum(r["tokens"] for r in rows) / n,
            "tokens/think": sum(r["think_tokens"] for r in rows) / n,
            "tokens/answer": sum(r["answer_tokens"] for r in rows) / n,
        }
        for level in sorted({r["difficulty"] for r in rows if r["difficulty"]}):
            group = [r for r in rows if r["difficulty"] == level]
            out[f"accuracy/d{level}"] = sum(r["correct"] for r in group) / len(group)
            out[f"think_rate/d{level}"] = sum(r["mode"] == "think" for r in group) / len(group)
        step_time = logged.get("step_time")
        if step_time:
            out["tokens_per_s"] = sum(r["tokens"] for r in rows) / step_time
        if self.write:
            keep = rows
            if self.traces_per_step and n > self.traces_per_step:
                keep = self._rng.sample(rows, self.traces_per_step)
            self.store.add_traces(keep)
        return out

    def _rows(self, step: int, batch: dict[str, Any], values: dict[str, list]) -> list[dict[str, Any]]:
        rows = []
        n = len(batch["completions"])
        col = lambda key, default: batch.get(key) or [default] * n  # noqa: E731
        totals = weighted_total(values, self.weights)  # TRL's rule: skipped = None/NaN, all skipped = NaN
        for i, completion in enumerate(batch["completions"]):
            prefix, answer = col("prefix", "")[i], col("answer", "")[i]
            parsed = parse_response(completion, prefix)
            length = batch["lengths"][i] if i < len(batch["lengths"]) else len(
                self.tokenizer(completion, add_special_tokens=False)["input_ids"])
            think, ans = think_token_split(completion, length, self.tokenizer, prefix)
            correct = is_correct(parsed.answer, str(answer))
            per = {name: (None if v[i] is None or (isinstance(v[i], float) and math.isnan(v[i])) else float(v[i]))
                   for name, v in values.items()}
            rows.append({
                "run_id": self.run_id, "stage": self.stage, "step": step,
                "prompt_id": str(col("prompt_id", "")[i]), "prompt": col("question", "")[i],
                "completion": completion, "tokens": length, "think_tokens": think, "answer_tokens": ans,
                "mode": parsed.mode, "correct": int(correct),
                "reward": totals[i], "rewards": per, "difficulty": int(col("difficulty", 0)[i] or 0),
            })
        return rows
