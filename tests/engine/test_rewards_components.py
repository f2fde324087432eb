"""Length and adaptive-thinking reward components, with hand-computed values."""

from __future__ import annotations

import math

import pytest

from engine.rewards.adaptive import (
    AdaptThink,
    ShorterBetter,
    Thinkless,
    ThinkMode,
    is_degenerate,
    longest_ngram_run,
)
from engine.rewards.components import Budget, Cosine, Overlong, group_length

THINK = "<think>\n"
ELLIPSIS = "<think>\n...\n"
RIGHT = "work\n</think>\n<answer>7</answer>"  # think mode, correct for gold "7"
WRONG = "work\n</think>\n<answer>8</answer>"  # think mode, wrong
NO_THINK_RIGHT = "</think>\n<answer>7</answer>"  # closes the ellipsis block at once
NO_THINK_WRONG = "</think>\n<answer>8</answer>"


def batch(rows, prefix=THINK, **extra):
    """rows: (completion, length, prompt_id); gold answer "7" everywhere unless given."""
    n = len(rows)
    cols = {
        "prompts": [f"prompt {r[2]}" for r in rows],
        "completions": [r[0] for r in rows],
        "completion_ids": [[1] * r[1] for r in rows],
        "prompt_id": [r[2] for r in rows],
        "prefix": [prefix] * n,
        "answer": ["7"] * n,
        "difficulty": [0] * n,
    }
    cols.update(extra)
    return cols


def approx(values):
    return [None if v is None else pytest.approx(v, abs=1e-9) for v in values]


# ----------------------------------------------------------------------------- cosine


def test_cosine_table():
    cosine = Cosine(max_len=100)
    rows = [
        (RIGHT, 0, "a"),    # correct at L=0: the maximum, 1.0
        (RIGHT, 100, "a"),  # correct at Lmax: 0.5
        (RIGHT, 50, "a"),   # correct halfway: 0.5 + 0.25 * (1 + cos(pi/2)) = 0.75
        (WRONG, 0, "a"),    # wrong at L=0: the harshest, -1.0
        (WRONG, 100, "a"),  # wrong at Lmax: -0.5
        (WRONG, 50, "a"),   # wrong halfway: -0.75
        (RIGHT, 150, "a"),  # past Lmax is clipped to Lmax: 0.5
    ]
    assert cosine(**batch(rows)) == approx([1.0, 0.5, 0.75, -1.0, -0.5, -0.75, 0.5])


def test_cosine_without_a_reference_does_not_apply_and_needs_token_ids():
    cols = batch([(RIGHT, 10, "a")], answer=[""])
    assert Cosine(max_len=100)(**cols) == [None]  # no reference answer
    del cols["completion_ids"]
    with pytest.raises(ValueError, match="completion_ids"):
        Cosine(max_len=100)(**cols)


# ----------------------------------------------------------------------------- group_length


def test_group_length_groups_by_prompt_id_not_position():
    rows = [
        (RIGHT, 10, "a"),  # a: Lmin=10, Lmax=30, lam = 0.5 - (10-10)/20 = 0.5, correct -> 0.5
        (RIGHT, 5, "b"),   # b: all lengths equal -> 0
        (WRONG, 20, "a"),  # a: lam = 0.0, wrong -> min(0, 0) = 0
        (WRONG, 5, "b"),   # b: all lengths equal -> 0 even when wrong
        (RIGHT, 30, "a"),  # a: lam = -0.5, correct -> -0.5
        (WRONG, 10, "a"),  # a: lam = 0.5, wrong -> min(0, 0.5) = 0
        (WRONG, 30, "a"),  # a: lam = -0.5, wrong -> -0.5
    ]
    assert group_length(**batch(rows)) == approx([0.5, 0.0, 0.0, 0.0, -0.5, 0.0, -0.5])


# ----------------------------------------------------------------------------- budget


def test_budget_table():
    budget = Budget(max_len=100, per_difficulty=200)
    rows = [
        (RIGHT, 0, "a"),     # B=1000: clip(0.0003*1000 + 0.5) = 0.8
        (RIGHT, 1000, "a"),  # exactly on budget: delta = 0.5
        (RIGHT, 3000, "a"),  # far over: 0.5 - 0.6 < 0 -> 0
        (RIGHT, 0, "a"),     # B=5000: 1.5 + 0.5 clipped to 1
        (WRONG, 0, "a"),     # wrong: 0 whatever the length
        (RIGHT, 100, "a"),   # no budget column value, difficulty 3: B = 600 -> 0.0003*500 + 0.5 = 0.65
        (RIGHT, 100, "a"),   # no budget, no difficulty: B = max_len = 100 -> 0.5
    ]
    cols = batch(rows, budget=[1000, 1000, 1000, 5000, 1000, 0, None], difficulty=[0, 0, 0, 0, 0, 3, 0])
    assert budget(**cols) == approx([0.8, 0.5, 0.0, 1.0, 0.0, 0.65, 0.5])


def test_budget_missing_cells_fall_back():
    # NaN budget and difficulty (missing cells from a data frame) fall back to max_len: B=100, L=100
    cols = batch([(RIGHT, 100, "a")], budget=[float("nan")], difficulty=[float("nan")])
    assert Budget(max_len=100, per_difficulty=200)(**cols) == approx([0.5])


def test_budget_default_budget_constant():
    # default_budget replaces max_len when the row says nothing: B=400, L=200 -> 0.06 + 0.5
    cols = batch([(RIGHT, 200, "a")])
    assert Budget(max_len=100, default_budget=400)(**cols) == approx([0.56])


# ----------------------------------------------------------------------------- overlong


def test_overlong_three_regions():
    overlong = Overlong(max_len=100)  # C = 0.2 * 100 = 20, soft region (80, 100]
    rows = [
        (WRONG, 50, "a"),   # well inside: 0 (correctness does not matter)
        (RIGHT, 80, "a"),   # at Lmax - C: still 0
        (RIGHT, 90, "a"),   # halfway through the soft region: (80 - 90)/20 = -0.5
        (RIGHT, 100, "a"),  # at Lmax: -1
        (RIGHT, 101, "a"),  # beyond: -1
    ]
    assert overlong(**batch(rows)) == approx([0.0, 0.0, -0.5, -1.0, -1.0])


def test_overlong_rejects_a_zero_cache():
    with pytest.raises(ValueError, match="cache_fraction"):
        Overlong(max_len=100, cache_fraction=0)


# ----------------------------------------------------------------------------- think_mode

LOOP = "</think>\n<answer>" + "so " * 12 + "8</answer>"  # no-think, wrong, "so" 12 times in a row
LONG_WORD = "</think>\n<answer>" + "9" * 130 + "</answer>"  # no-think, wrong, a 130-character word


def test_think_mode_base_rewards():
    rows = [
        (RIGHT, 30, "a"),           # think, correct: +1
        (WRONG, 30, "a"),           # think, wrong: 0
        (NO_THINK_RIGHT, 5, "a"),   # no-think, correct: +2
        (NO_THINK_WRONG, 5, "a"),   # no-think, wrong: -1
        (LOOP, 20, "b"),            # no-think, wrong and degenerate (repeated word): -2
        (LONG_WORD, 20, "b"),       # no-think, wrong and degenerate (very long word): -2
        ("</think> I give up", 5, "b"),  # no answer at all (format error): 0
        # think, wrong and degenerate: 0 is not negative, so it stays 0
        ("work " * 12 + "</think><answer>8</answer>", 20, "b"),
    ]
    stage2 = ThinkMode(stage=2)  # stage 2: base reward, no balance
    assert stage2(**batch(rows, prefix=ELLIPSIS)) == approx([1.0, 0.0, 2.0, -1.0, -2.0, -2.0, 0.0, 0.0])


def test_think_mode_without_reference_is_none():
    cols = batch([(RIGHT, 3, "a"), (NO_THINK_RIGHT, 3, "a")], prefix=ELLIPSIS, answer=["7", None])
    assert ThinkMode(stage=2)(**cols) == [1.0, None]


def test_think_mode_stage1_balances_the_overused_mode():
    rows = [
        (RIGHT, 30, "a"),          # think-rate 3/4 > 0.5: f = clip(2 * 0.25) = 0.5; 0.5*1 + 0.5*0 = 0.5
        (WRONG, 30, "a"),          # think wrong: 0.5*0 + 0.5*(-1) = -0.5
        (WRONG, 30, "b"),          # same: -0.5
        (NO_THINK_RIGHT, 5, "b"),  # no-think rate 1/4 <= 0.5: untouched, +2
    ]
    logged = {}
    cols = batch(rows, prefix=ELLIPSIS, log_metric=logged.__setitem__)
    assert ThinkMode(stage=1)(**cols) == approx([0.5, -0.5, -0.5, 2.0])
    assert logged["think_mode/think_rate"] == 0.75
    assert logged["think_mode/think_accuracy"] == pytest.approx(1 / 3)
    assert logged["think_mode/no_think_length"] == 5


def test_think_mode_stage1_all_no_think_is_pulled_to_the_targets():
    rows = [
        (NO_THINK_RIGHT, 5, "a"),  # no-think rate 1: f = 1, correct -> target +1
        (NO_THINK_WRONG, 5, "a"),  # wrong -> target -2
    ]
    assert ThinkMode(stage=1)(**batch(rows, prefix=ELLIPSIS)) == approx([1.0, -2.0])


def test_think_mode_stage1_balanced_batch_is_untouched():
    rows = [(RIGHT, 30, "a"), (NO_THINK_WRONG, 5, "a")]  # think-rate exactly 0.5: f = 0
    assert ThinkMode(stage=1)(**batch(rows, prefix=ELLIPSIS)) == approx([1.0, -1.0])


def test_think_mode_stage3_length_term():
    # group a: correct lengths 10, 20, 30 -> mean 20, sample std 10, z = -1, 0, 1;
    # wrong lengths 10, 30 -> mean 20, sample std sqrt(200) ~ 14.14, z = -/+ 0.7071
    z = 10 / math.sqrt(200)
    rows = [
        (RIGHT, 10, "a"),  # 1 + exp(-0.05 * -1) - 1: short and right earns a little more
        (RIGHT, 20, "a"),  # z = 0: unchanged
        (RIGHT, 30, "a"),  # 1 + exp(-0.05 * 1) - 1: long and right earns a little less
        (WRONG, 10, "a"),  # 0 + 1 - exp(-0.05 * -z): short and wrong loses
        (WRONG, 30, "a"),  # 0 + 1 - exp(-0.05 * z): long and wrong loses less
        (RIGHT, 99, "b"),  # the only correct one in group b: unchanged
    ]
    expected = [math.exp(0.05), 1.0, math.exp(-0.05), 1 - math.exp(0.05 * z), 1 - math.exp(-0.05 * z), 1.0]
    assert ThinkMode(stage=3)(**batch(rows, prefix=ELLIPSIS)) == approx(expected)


def test_think_mode_rejects_an_unknown_stage():
    with pytest.raises(ValueError, match="stage must be 1, 2 or 3"):
        ThinkMode(stage=4)


@pytest.mark.parametrize(("text", "run", "degenerate"), [
    # (text, longest n-gram run, degenerate)
    ("a b a b a b", 3, False),              # a bigram three times
    ("x a b a b", 1, False),                # chunks start at word 0, as in the authors' code
    ("go " * 10, 10, True),                 # ten in a row: degenerate
    ("let me check . " * 10, 10, True),     # a 4-gram ten times
    ("fine text " + "z" * 120, 1, True),    # a 120-character word
    ("", 0, False),                         # empty
])
def test_degenerate_detection(text, run, degenerate):
    assert longest_ngram_run(text) == run
    assert is_degenerate(text) is degenerate


# ----------------------------------------------------------------------------- other adaptive rewards


def test_adaptthink_table():
    rows = [
        (NO_THINK_RIGHT, 5, "a"),  # 1 - 0 + 0.05
        (RIGHT, 30, "a"),          # 1 - 0 + 0
        (NO_THINK_WRONG, 5, "a"),  # 0 - 0 + 0.05
        (RIGHT, 30, "b"),          # reference accuracy 0.5: 1 - 0.5
    ]
    cols = batch(rows, prefix=ELLIPSIS, ref_accuracy=[0, 0, 0, 0.5])
    assert AdaptThink()(**cols) == approx([1.05, 1.0, 0.05, 0.5])


def test_thinkless_table():
    rows = [
        (NO_THINK_RIGHT, 5, "a"),  # correct without thinking: +1
        (RIGHT, 30, "a"),          # correct with thinking: +0.5
        (NO_THINK_WRONG, 5, "a"),  # wrong: -1
        (WRONG, 30, "a"),          # wrong: -1
    ]
    assert Thinkless()(**batch(rows, prefix=ELLIPSIS)) == approx([1.0, 0.5, -1.0, -1.0])


def test_shorterbetter_table():
    rows = [
        (RIGHT, 100, "a"),  # SOL = 50 (shortest correct in a): 2 - 0.001 * 50
        (RIGHT, 50, "a"),   # the shortest correct: 2
        (WRONG, 80, "a"),   # 0 - 0.001 * 30
        (WRONG, 10, "b"),   # b has no correct answer: SOL = mean 20; -0.001 * 10
        (WRONG, 30, "b"),   # -0.001 * 10
    ]
    assert ShorterBetter()(**batch(rows)) == approx([1.95, 2.0, -0.03, -0.01, -0.01])
