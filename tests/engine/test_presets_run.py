"""Every reward preset drives a real GRPO step on the tiny model, with its own prompt mode and components."""

from __future__ import annotations

import pytest

from engine.launch import create_run, spawn_worker
from engine.rewards.presets import PRESETS
from engine.spec import load_spec
from tests.conftest import SPECS

RUNNABLE = [p for p in PRESETS if p not in ("custom", "sketch")]  # sketch needs a judge: see test_pipeline


@pytest.mark.parametrize("preset", RUNNABLE)
def test_preset_runs_one_step(store, preset):
    spec = load_spec(SPECS / "smoke.toml").replace(**{
        "rewards.preset": preset, "rewards.custom_file": "", "grpo.max_steps": 1, "grpo.batch_size": 4,
        "grpo.max_completion_length": 12})
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=300) == 0, (run_dir / "worker.log").read_text()[-3000:]
    values = store.last_metrics(run_id)["values"]
    for component, weight in PRESETS[preset].components.items():
        if weight:
            assert f"rewards/{component}/mean" in values, (component, sorted(values))
    traces = store.traces_since(run_id)
    mode = spec.rewards.resolved_prompt_mode()
    assert len(traces) == 4 and all(set(t["rewards"]) == {k for k, w in PRESETS[preset].components.items() if w}
                                    for t in traces)
    if mode == "ellipsis":  # AutoThink: the prompt ends inside the think block, the model may close it at once
        assert "think_rate" in values
