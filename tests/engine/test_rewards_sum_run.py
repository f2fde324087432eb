"""On a real tiny-model GRPO run, step by step: the weighted component means add up to the logged total.

TRL logs `reward` = nanmean over the batch of nansum(weight x value), NaN where every component
skipped a sample, and `rewards/<name>/mean` = nanmean of that component (not logged when it
skipped every sample). With components that score every sample plus one that skips them all, the
weighted means of the logged components must add up to the logged total, and each stored trace's
total must be engine.rewards.weights.weighted_total of its own components.
"""

from __future__ import annotations

import math

import pytest

from engine.launch import create_run, spawn_worker
from engine.rewards.weights import weighted_total
from engine.spec import load_spec
from tests.conftest import SPECS

CUSTOM = '''
def reward_chars(prompts, completions, **kwargs):
    """Varies between completions of a random-init model: share of letters."""
    return [sum(c.isalpha() for c in text) / max(1, len(text)) for text in completions]


def reward_never(prompts, completions, **kwargs):
    """Applies to no completion: TRL turns its None into NaN and leaves it out of every total."""
    return [None] * len(completions)
'''


def test_weighted_component_means_add_up_to_the_logged_reward(store, tmp_path):
    custom = tmp_path / "rewards.py"
    custom.write_text(CUSTOM)
    spec = load_spec(SPECS / "smoke.toml").replace(**{
        "rewards.custom_file": str(custom), "grpo.max_steps": 2, "grpo.batch_size": 8,
        "grpo.max_completion_length": 12, "grpo.traces_per_step": 0,  # keep every completion
        "rewards.weights": {"format": 0.25, "reward_chars": 0.5, "reward_never": 2.0}})
    weights = spec.rewards.resolved_weights()
    assert weights == {"accuracy": 1.0, "format": 0.25, "reward_chars": 0.5, "reward_never": 2.0}
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=300) == 0, (run_dir / "worker.log").read_text()[-3000:]

    by_step: dict[int, dict[str, float]] = {}
    for m in store.metrics_since(run_id, 0):
        if m["stage"] == "grpo":
            by_step.setdefault(m["step"], {})[m["name"]] = m["value"]
    traces = store.traces_since(run_id)
    steps = sorted(s for s, v in by_step.items() if "reward" in v)
    assert steps == [1, 2]
    for step in steps:
        logged = by_step[step]
        means = {name: logged[f"rewards/{name}/mean"] for name in weights if f"rewards/{name}/mean" in logged}
        assert set(means) == {"accuracy", "format", "reward_chars"}  # reward_never: NaN, so not logged
        contributions = sum(weights[name] * mean for name, mean in means.items())
        assert contributions == pytest.approx(logged["reward"], abs=1e-5), (step, means, logged["reward"])

        rows = [t for t in traces if t["step"] == step]
        assert len(rows) == 8
        for t in rows:
            assert t["rewards"]["reward_never"] is None
            (expected,) = weighted_total({k: [v] for k, v in t["rewards"].items()}, weights)
            assert t["reward"] == pytest.approx(expected, abs=1e-6)
        finite = [t["reward"] for t in rows if t["reward"] is not None and not math.isnan(t["reward"])]
        assert sum(finite) / len(finite) == pytest.approx(logged["reward"], abs=1e-5)
        # and per component: the traces' own means are the logged means
        for name, mean in means.items():
            assert sum(t["rewards"][name] for t in rows) / len(rows) == pytest.approx(mean, abs=1e-5)
