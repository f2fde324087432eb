"""A user's reward function misbehaves in a real run: the run stops with an error naming the function."""

from __future__ import annotations

import textwrap

import pytest

from tests.faults.conftest import fault_spec, first_line, start

# Each file defines one reward_* function that misbehaves on the first batch it sees.
BROKEN = {
    "raises": ("""
        def reward_boom(prompts, completions, **kwargs):
            return [1.0 / 0 for _ in completions]
        """, ["'reward_boom'", "raised ZeroDivisionError"]),
    "nan": ("""
        def reward_nan(prompts, completions, **kwargs):
            return [float("nan")] * len(completions)
        """, ["'reward_nan'", "returned nan"]),
    "wrong_count": ("""
        def reward_short_list(prompts, completions, **kwargs):
            return [1.0]
        """, ["'reward_short_list'", "returned 1 values for 4 completions"]),
    # sys.exit() in a reward used to end the worker with SystemExit instead of naming the function
    "exits": ("""
        import sys

        def reward_exit(prompts, completions, **kwargs):
            sys.exit("bye")
        """, ["'reward_exit'", "called sys.exit('bye')"]),
    # the stored traces would show the edited prompts, scored against the edited answers
    "mutates": ("""
        def reward_editor(prompts, completions, answer, **kwargs):
            answer[:] = ["0"] * len(answer)
            return [0.0] * len(completions)
        """, ["'reward_editor'", "changed its answer argument in place"]),
    # The per-call limit is rewards.custom_timeout_s (30 s by default; 3 s in this test).
    "sleeps_forever": ("""
        import time

        def reward_sleepy(prompts, completions, **kwargs):
            time.sleep(10_000)
            return [0.0] * len(completions)
        """, ["'reward_sleepy'", "took longer than 3 s"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_custom_reward_stops_the_run_naming_the_function(store, tmp_path, case):
    code, named = BROKEN[case]
    path = tmp_path / f"rewards_{case}.py"
    path.write_text(textwrap.dedent(code))
    spec = fault_spec(**{"rewards.custom_file": str(path), "grpo.max_steps": 2,
                         "rewards.custom_timeout_s": 3.0})
    run_id, run_dir, proc = start(store, spec)
    assert proc.wait(timeout=300) == 1
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    message = first_line(run["error_message"])
    assert message.startswith("RewardError: reward function "), message
    for words in named:
        assert words in message, message
    assert "on a batch of 4 completions" in message  # and which batch
    assert not store.metrics_since(run_id), "a step was logged with the broken reward"
    assert {s["stage"]: s["status"] for s in store.stages(run_id)} == {"grpo": "failed"}
