"""A user's file of reward functions: loading, and the guard around each call."""

from __future__ import annotations

import textwrap
import threading

import numpy as np
import pytest

from engine.rewards import build_reward_funcs
from engine.rewards.custom import CustomRewardError, RewardError, checked, load_custom_rewards

PROMPTS = ["What is 17 + 25? Think step by step and answer in the answer block, please.", "2+2?"]
COMPLETIONS = ["<think>x</think><answer>42</answer>", "<think></think><answer>4</answer>"]


def write(tmp_path, source, name="my_rewards.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


GOOD = """
    import math

    def reward_short(prompts, completions, **kwargs):
        return [1.0 if len(c) < 40 else 0.0 for c in completions]

    def helper(x):  # not a reward: no reward_ prefix
        return x

    def reward_const(prompts, completions, **kwargs):
        return [0.25] * len(completions)
"""


def test_loads_reward_functions_in_definition_order(tmp_path):
    funcs = load_custom_rewards(write(tmp_path, GOOD))
    assert [f.__name__ for f in funcs] == ["reward_short", "reward_const"]
    assert funcs[0](prompts=PROMPTS, completions=COMPLETIONS) == [1.0, 1.0]


def test_all_selects_exactly_the_listed_functions(tmp_path):
    source = GOOD + """
    __all__ = ["helper_reward"]

    def helper_reward(prompts, completions, **kwargs):
        return [0.0] * len(completions)
"""
    funcs = load_custom_rewards(write(tmp_path, source))
    assert [f.__name__ for f in funcs] == ["helper_reward"]


def test_each_load_gets_its_own_module(tmp_path):
    # the same file loaded twice (edited in between) and a same-named file elsewhere never collide
    path = write(tmp_path, GOOD)
    first = load_custom_rewards(path)[0]
    path.write_text("def reward_short(prompts, completions, **kw):\n    return [9.0] * len(completions)\n")
    second = load_custom_rewards(path)[0]
    (tmp_path / "other").mkdir()
    third = load_custom_rewards(write(tmp_path / "other", GOOD))[0]
    assert len({first.__module__, second.__module__, third.__module__}) == 3
    assert first(prompts=PROMPTS, completions=COMPLETIONS) == [1.0, 1.0]
    assert second(prompts=PROMPTS, completions=COMPLETIONS) == [9.0, 9.0]


@pytest.mark.parametrize(("source", "message"), [
    # a syntax error names the file and the line
    ("def reward_x(prompts, completions, **kw):\n    return [1.0\n\nx = (\n",
     r"my_rewards.py, line \d+: syntax error"),
    # an exception while importing names the file, the line and the error
    ("x = 1\nraise RuntimeError('no GPU here')\n",
     r"my_rewards.py, line 2: importing it failed: RuntimeError: no GPU here"),
    # a missing dependency is an import error like any other
    ("import not_a_real_package_xyz\n", r"importing it failed: ModuleNotFoundError"),
    # sys.exit at import time does not end the worker
    ("import sys\nsys.exit(3)\n", r"importing it failed: SystemExit"),
    # nothing to use
    ("def helper(x):\n    return x\n", r"defines no reward functions"),
    # __all__ naming something that is not there
    ("__all__ = ['reward_gone']\n", r"__all__ lists reward_gone"),
])
def test_bad_files_raise_custom_reward_error(tmp_path, source, message):
    with pytest.raises(CustomRewardError, match=message):
        load_custom_rewards(write(tmp_path, source))


def test_missing_file(tmp_path):
    with pytest.raises(CustomRewardError, match="does not exist"):
        load_custom_rewards(tmp_path / "nope.py")
    assert issubclass(CustomRewardError, ValueError)  # the GUI treats it as a spec problem


# ----------------------------------------------------------------------------- checked


def raises(prompts, completions, **kwargs):
    raise KeyError("solution")


def nan(prompts, completions, **kwargs):
    return [0.5, float("nan")]


def inf(prompts, completions, **kwargs):
    return [float("inf"), 0.5]


def too_few(prompts, completions, **kwargs):
    return [1.0]


def not_a_number(prompts, completions, **kwargs):
    return [1.0, "high"]


def not_a_list(prompts, completions, **kwargs):
    return 1.0


@pytest.mark.parametrize(("func", "message"), [
    # an exception names the function, the error and the batch with its first prompt abbreviated
    (raises, r"'raises' raised KeyError: 'solution' on a batch of 2 completions \(first prompt 'What is 17"),
    # NaN
    (nan, r"'nan' returned nan for completion 1"),
    # infinity
    (inf, r"'inf' returned inf for completion 0"),
    # the wrong number of values
    (too_few, r"'too_few' returned 1 values for 2 completions"),
    # a string among the values
    (not_a_number, r"'not_a_number' returned str 'high' for completion 1, not a number"),
    # a bare number instead of a list
    (not_a_list, r"'not_a_list' returned float, not a list of 2 numbers"),
])
def test_checked_turns_bad_results_into_reward_errors(func, message):
    with pytest.raises(RewardError, match=message) as info:
        checked(func)(prompts=PROMPTS, completions=COMPLETIONS)
    assert "..." in str(info.value)  # the long first prompt is abbreviated


def test_checked_passes_good_values_and_keeps_the_name():
    def reward_fine(prompts, completions, **kwargs):
        return [np.float32(0.5), None]  # numpy numbers are numbers; None = does not apply

    wrapped = checked(reward_fine)
    assert wrapped.__name__ == "reward_fine"
    assert wrapped(prompts=PROMPTS, completions=COMPLETIONS, answer=["42", "4"]) == [0.5, None]
    # without a time limit it runs in the calling thread
    assert checked(reward_fine, timeout_s=None)(prompts=PROMPTS, completions=COMPLETIONS) == [0.5, None]


def test_checked_time_limit_abandons_a_slow_function():
    release = threading.Event()

    def reward_slow(prompts, completions, **kwargs):
        release.wait(30)  # stands in for a function that hangs
        return [0.0] * len(completions)

    try:
        with pytest.raises(RewardError, match=r"'reward_slow' took longer than 0.2 s"):
            checked(reward_slow, timeout_s=0.2)(prompts=PROMPTS, completions=COMPLETIONS)
    finally:
        release.set()  # let the abandoned thread finish so the test leaves nothing behind


def test_build_custom_preset_wraps_and_weights_the_file(tmp_path):
    path = write(tmp_path, GOOD)
    funcs, weights = build_reward_funcs("custom", custom_file=str(path), weights={"reward_const": 0.5})
    assert [f.__name__ for f in funcs] == ["reward_short", "reward_const"]
    assert weights == [1.0, 0.5]
    # the wrapper is there: a wrong call surfaces as RewardError
    with pytest.raises(RewardError):
        funcs[0](prompts=PROMPTS, completions=None)
    # custom functions come after the preset's components, and a weight of 0 drops one
    funcs, weights = build_reward_funcs("r1-zero", custom_file=str(path), weights={"reward_short": 0})
    assert [f.__name__ for f in funcs] == ["accuracy", "format", "reward_const"]
    assert weights == [1.0, 0.5, 1.0]


# ---- isolation: each call gets its own copy of the batch; what a function does to it is named

MISBEHAVING = {
    # sys.exit() is a BaseException: it must not end the worker (or escape `except Exception`)
    "exits": ("import sys\ndef reward_bye(prompts, completions, **kw):\n    sys.exit(3)\n",
              "called sys.exit(3)"),
    "base_exception": ("class Odd(BaseException):\n    pass\n"
                       "def reward_odd(prompts, completions, **kw):\n    raise Odd('no')\n", "raised Odd: no"),
    # the stored traces would show the mutated prompts, scored against mutated answers
    "mutates": ("def reward_mut(prompts, completions, answer, **kw):\n"
                "    prompts[0] = 'hacked'\n    answer[:] = ['1'] * len(answer)\n"
                "    return [1.0] * len(completions)\n", "changed its prompts, answer arguments in place"),
    # emptying the list it was given and returning [] must not pass as "0 values for 0 completions"
    "empties": ("def reward_empty(prompts, completions, **kw):\n    completions.clear()\n    return []\n",
                "returned 0 values for 2 completions"),
}


@pytest.mark.parametrize("timeout_s", [None, 5])  # inline and in the timed worker thread
@pytest.mark.parametrize("case", list(MISBEHAVING))
def test_misbehaving_reward_is_caught_and_named(tmp_path, case, timeout_s):
    code, says = MISBEHAVING[case]
    (func,) = load_custom_rewards(write(tmp_path, code))
    prompts, completions, answer = list(PROMPTS), list(COMPLETIONS), ["42", "4"]
    with pytest.raises(RewardError) as info:
        checked(func, timeout_s)(prompts=prompts, completions=completions, answer=answer, trainer_state=None)
    assert f"{func.__name__!r}" in str(info.value) and says in str(info.value), info.value
    assert (prompts, completions, answer) == (PROMPTS, COMPLETIONS, ["42", "4"])  # the caller's batch is intact


def test_keyboard_interrupt_still_stops(tmp_path):
    (func,) = load_custom_rewards(write(tmp_path, "def reward_ctrl_c(prompts, completions, **kw):\n"
                                                  "    raise KeyboardInterrupt\n"))
    with pytest.raises(KeyboardInterrupt):
        checked(func, None)(prompts=PROMPTS, completions=COMPLETIONS)


def test_each_call_and_each_function_gets_its_own_copy(tmp_path):
    # a function that keeps and edits what it was given cannot reach the next function or the next call
    code = ("seen = []\n"
            "def reward_keep(prompts, completions, **kw):\n"
            "    seen.append(completions)\n"
            "    return [float(len(c)) for c in completions]\n")
    (keep,) = load_custom_rewards(write(tmp_path, code))
    guarded = checked(keep, None)
    completions = list(COMPLETIONS)
    assert guarded(prompts=PROMPTS, completions=completions) == [float(len(c)) for c in COMPLETIONS]
    stored = keep.__globals__["seen"][0]
    assert stored == completions and stored is not completions
    stored[0] = "edited later"  # after the call returned
    assert completions == COMPLETIONS
