"""Adaptive-thinking rewards: the model is paid for thinking only when it needs to.

A completion's mode (think / no_think) comes from `parse_response`: no_think when the
think block is absent, empty, or only AutoThink's "..." (the prompt ends inside
"<think>\\n...\\n" and the model closes the block at once).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from engine.rewards.components import correctness, group_indices, lengths, parse_batch
from engine.rewards.parsing import completion_text


def longest_ngram_run(text: str, max_n: int = 30) -> int:
    """The most times one word n-gram (n = 1..max_n) repeats back to back, counting the
    words in non-overlapping chunks of n from the start, as AutoThink's code does."""
    words = text.split()
    best = 1 if words else 0
    for n in range(1, min(max_n, len(words)) + 1):
        chunks = [tuple(words[i : i + n]) for i in range(0, len(words) - n + 1, n)]
        run = 1
        for prev, cur in zip(chunks, chunks[1:], strict=False):
            run = run + 1 if cur == prev else 1
            best = max(best, run)
    return best


def is_degenerate(text: str, repeat_times: int = 10, long_word: int = 120) -> bool:
    """An n-gram (up to 30 words) repeated `repeat_times`+ times in a row, or a
    whitespace-free "word" of `long_word`+ characters."""
    if any(len(w) >= long_word for w in text.split()):
        return True
    return longest_ngram_run(text) >= repeat_times


def _log(kwargs: dict, name: str, value: float) -> None:
    log_metric: Callable | None = kwargs.get("log_metric")
    if log_metric is not None and math.isfinite(value):
        log_metric(name, value)


class ThinkMode:
    """AutoThink's staged mode reward ("Learning When to Think: Shaping Adaptive Reasoning
    in R1-Style Models via Multi-Stage RL", 2025; constants and details from the authors'
    code: deepscaler/rewards/math_reward.py and the RewardManager in verl/trainer/main_ppo.py).

    Base: think correct +1, think wrong 0, no-think correct +2, no-think wrong -1; no answer
    after the think block (format error) `format_error` = 0 in either mode. A negative
    reward becomes -2 when the text is degenerate (an n-gram repeated 10+ times in a row,
    or a 120+ character word); the authors test prompt + response, this tests the completion.
    Stage 1 (batch balance): p = the batch's think-rate, e = balance_rate, k = balance_slope.
    If p > e: f = clip(k (p - e), 0, 1) and every think reward r -> (1 - f) r + f t, with
    t = 0 if correct else -1; if 1 - p > e, the same for no-think rewards with t = +1 if
    correct else -2 (the over-used mode is pulled one point down).
    Stage 2: base reward only.
    Stage 3 (length-aware): within each prompt group, z = (L - mean) / std over the group's
    correct completions (resp. wrong ones; sample std clamped to 1e-6, no change for a single
    one); correct: r += exp(-alpha z) - 1, wrong: r += 1 - exp(-beta z), so long correct
    answers and short wrong ones lose. L = completion tokens. The authors' RewardManager
    applies both terms when both are configured; here the stage picks one, as REWARDS.md says.
    None where the row has no reference answer. Logs think_mode/think_rate and
    think_mode/{think,no_think}_{accuracy,length} through TRL's `log_metric`.
    """

    def __init__(self, stage: int = 1, balance_rate: float = 0.5, balance_slope: float = 2.0,
                 alpha: float = 0.05, beta: float = 0.05, think_correct: float = 1.0,
                 think_wrong: float = 0.0, no_think_correct: float = 2.0, no_think_wrong: float = -1.0,
                 degenerate: float = -2.0, format_error: float = 0.0, repeat_times: int = 10,
                 long_word: int = 120):
        if int(stage) not in (1, 2, 3):
            raise ValueError(f"think_mode: stage must be 1, 2 or 3; got {stage}")
        self.__name__ = "think_mode"
        self.stage, self.balance_rate, self.balance_slope = int(stage), balance_rate, balance_slope
        self.alpha, self.beta = alpha, beta
        self.think_correct, self.think_wrong = think_correct, think_wrong
        self.no_think_correct, self.no_think_wrong = no_think_correct, no_think_wrong
        self.degenerate, self.format_error = degenerate, format_error
        self.repeat_times, self.long_word = int(repeat_times), int(long_word)

    def base(self, think: bool, correct: bool, answered: bool, text: str) -> float:
        if not answered:
            r = self.format_error
        elif think:
            r = self.think_correct if correct else self.think_wrong
        else:
            r = self.no_think_correct if correct else self.no_think_wrong
        if r < 0 and is_degenerate(text, self.repeat_times, self.long_word):
            r = self.degenerate
        return r

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        n = len(completions)
        parsed = parse_batch(completions, kwargs)
        right = correctness(parsed, kwargs)
        think = [p.mode == "think" for p in parsed]
        out: list[float | None] = [
            None if r is None else self.base(t, r, p.answer is not None, completion_text(c))
            for c, p, r, t in zip(completions, parsed, right, think, strict=True)]
        scored = [i for i in range(n) if out[i] is not None]
        if not scored:
            return out
        think_rate = sum(think[i] for i in scored) / len(scored)
        if self.stage == 1:
            self._balance(out, scored, right, think, think_rate)
        needs_length = self.stage == 3 or "completion_ids" in kwargs  # else only metrics want it
        length = lengths(kwargs, n, self.__name__) if needs_length else None
        if self.stage == 3:
            self._length_aware(out, right, length, group_indices(prompts, kwargs))
        self._log_metrics(kwargs, scored, right, think, think_rate, length)
        return out

    def _balance(self, out, scored, right, think, think_rate) -> None:
        e, k = self.balance_rate, self.balance_slope
        for mode_is_think, rate in ((True, think_rate), (False, 1.0 - think_rate)):
            if rate <= e:
                continue
            f = min(max(k * (rate - e), 0.0), 1.0)
            for i in scored:
                if think[i] != mode_is_think:
                    continue
                if mode_is_think:
                    target = self.think_correct - 1.0 if right[i] else self.think_wrong - 1.0
                else:
                    target = self.no_think_correct - 1.0 if right[i] else self.no_think_wrong - 1.0
                out[i] = (1.0 - f) * out[i] + f * target

    def _length_aware(self, out, right, length, groups) -> None:
        for group in groups:
            for want in (True, False):
                members = [i for i in group if out[i] is not None and right[i] is want]
                z = _standardise([length[i] for i in members])
                for i, zi in zip(members, z, strict=True):
                    out[i] += math.exp(-self.alpha * zi) - 1.0 if want else 1.0 - math.exp(-self.beta * zi)

    def _log_metrics(self, kwargs, scored, right, think, think_rate, length) -> None:
        _log(kwargs, "think_mode/think_rate", think_rate)
        for mode_is_think, label in ((True, "think"), (False, "no_think")):
            idx = [i for i in scored if think[i] == mode_is_think]
            if not idx:
                continue
            _log(kwargs, f"think_mode/{label}_accuracy", sum(bool(right[i]) for i in idx) / len(idx))
            if length is not None:
                _log(kwargs, f"think_mode/{label}_length", sum(length[i] for i in idx) / len(idx))


def _standardise(values: list[int]) -> list[float]:
    """z-scores with the sample (n - 1) standard deviation clamped to 1e-6, as in AutoThink's
    code; all 0 for fewer than two values."""
    if len(values) < 2:
        return [0.0] * len(values)
    mean = sum(values) / len(values)
    std = max(math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)), 1e-6)
    return [(v - mean) / std for v in values]


class AdaptThink:
    """`acc - ref_acc + delta * [no-think]`, ref_acc = the reference model's accuracy on the
    prompt from the `ref_accuracy` column (0 when absent: a per-prompt constant does not
    change GRPO's group-relative advantages anyway). None where there is no reference answer.

    Source: Zhang et al. 2025, "AdaptThink: Reasoning Models Can Learn When to Think"
    (constrained objective, delta = 0.05).
    """

    def __init__(self, delta: float = 0.05):
        self.__name__ = "adaptthink"
        self.delta = delta

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        parsed = parse_batch(completions, kwargs)
        right = correctness(parsed, kwargs)
        ref = kwargs.get("ref_accuracy") or [0.0] * len(completions)
        return [None if r is None else float(r) - float(ra or 0.0) + self.delta * (p.mode == "no_think")
                for p, r, ra in zip(parsed, right, ref, strict=True)]


class Thinkless:
    """+1 for a correct no-think answer, +0.5 for a correct think answer, -1 when wrong.
    None where there is no reference answer.

    Source: Fang et al. 2025, "Thinkless: LLM Learns When to Think" (reward of DeGRPO; the
    <short>/<think> control tokens map to no-think/think here).
    """

    def __init__(self, correct_no_think: float = 1.0, correct_think: float = 0.5, wrong: float = -1.0):
        self.__name__ = "thinkless"
        self.correct_no_think, self.correct_think, self.wrong = correct_no_think, correct_think, wrong

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        parsed = parse_batch(completions, kwargs)
        right = correctness(parsed, kwargs)
        out: list[float | None] = []
        for p, r in zip(parsed, right, strict=True):
            if r is None:
                out.append(None)
            elif not r:
                out.append(self.wrong)
            else:
                out.append(self.correct_think if p.mode == "think" else self.correct_no_think)
        return out


class ShorterBetter:
    """`alpha * acc - beta * |L - SOL|`, SOL = the shortest correct length in the prompt's
    group (the group's mean length when none is correct). None where there is no reference.

    Source: Yi et al. 2025, "ShorterBetter: Guiding Reasoning Models to Find Optimal
    Inference Length" (alpha = 2, beta = 0.001).
    """

    def __init__(self, alpha: float = 2.0, beta: float = 0.001):
        self.__name__ = "shorterbetter"
        self.alpha, self.beta = alpha, beta

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        n = len(completions)
        right = correctness(parse_batch(completions, kwargs), kwargs)
        length = lengths(kwargs, n, self.__name__)
        out: list[float | None] = [None] * n
        for group in group_indices(prompts, kwargs):
            scored = [i for i in group if right[i] is not None]
            if not scored:
                continue
            correct = [length[i] for i in scored if right[i]]
            sol = min(correct) if correct else sum(length[i] for i in scored) / len(scored)
            for i in scored:
                out[i] = self.alpha * float(right[i]) - self.beta * abs(length[i] - sol)
        return out
