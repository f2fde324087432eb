"""Each training stage (sft, judge, grpo) with its worker SIGKILLed mid-stage, then resumed: the stage
continues from its last checkpoint (or from scratch when it had none) and every step's metrics are
in the store once, the killed attempt's included none twice. The stage's own process dies with the worker.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest

from engine.launch import spawn_worker
from tests.faults.conftest import (
    checkpoint_steps,
    fault_spec,
    gone,
    kill_quietly,
    stage_process,
    start,
    wait_for,
)

STEPS = 6
SHRINK = {  # per stage: the fewest rows and tokens that still train (a step well under a second)
    "sft": {"sft.batch_size": 2, "sft.max_length": 128},
    "judge": {"judge.batch_size": 2, "judge.max_length": 256, "judge.eval_pairs": 3},
    "grpo": {},
}


def _kill_mid_stage(store, stage: str, save_steps: int, kill_after_step: int):
    spec = fault_spec(**{"stages": [stage], f"{stage}.max_steps": STEPS, f"{stage}.save_steps": save_steps,
                         **SHRINK[stage]})
    run_id, run_dir, proc = start(store, spec)
    try:
        child = stage_process(proc.pid)
        wait_for(lambda: kill_after_step in checkpoint_steps(store, run_id) if save_steps <= STEPS
                 else (store.last_metrics(run_id).get("step") or 0) >= kill_after_step,
                 what=f"{stage} step {kill_after_step}", poll=0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    wait_for(lambda: gone(child), timeout=30, what="the stage process to die with its worker")
    killed_at = store.last_metrics(run_id)["step"]
    assert killed_at < STEPS, f"the {stage} stage ended before the kill: not mid-stage"
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "killed" in run["error_message"]
    assert store.integrity_check() == "ok"
    return run_id, run_dir, killed_at


def _resume(store, run_id, run_dir):
    proc = spawn_worker(run_dir, store, resume=True)
    assert proc.wait(timeout=600) == 0, (run_dir / "worker.log").read_text()[-3000:]
    assert store.get_run(run_id)["status"] == "succeeded"


def _each_step_once(store, run_id, stage: str) -> None:
    rows = [(m["step"], m["name"]) for m in store.metrics_since(run_id) if m["stage"] == stage]
    assert {step for step, _ in rows} - {0} == set(range(1, STEPS + 1))
    assert max(Counter(rows).values()) == 1, "a step's metric was written twice"


@pytest.mark.parametrize("stage", ["sft", "judge", "grpo"])
def test_killed_stage_resumes_from_its_last_checkpoint(store, stage):
    run_id, run_dir, killed_at = _kill_mid_stage(store, stage, save_steps=2, kill_after_step=2)
    _resume(store, run_id, run_dir)

    resumed = [e["step"] for e in store.events_since(run_id)
               if e["message"].startswith(f"{stage}: resuming from checkpoint-")]
    assert len(resumed) == 1 and 2 <= resumed[0] <= killed_at
    assert killed_at - resumed[0] <= 2, "more than one checkpoint interval (save_steps 2) was trained again"
    _each_step_once(store, run_id, stage)
    state = json.loads((run_dir / "checkpoints" / stage / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
    assert [(s["stage"], s["status"]) for s in store.stages(run_id)] == [(stage, "succeeded")]


def test_judge_killed_before_its_first_checkpoint_starts_over_and_forgets_the_attempt(store):
    run_id, run_dir, killed_at = _kill_mid_stage(store, "judge", save_steps=STEPS + 1, kill_after_step=2)
    assert killed_at >= 2
    first_attempt = {(m["step"], m["name"]) for m in store.metrics_since(run_id)}
    assert (killed_at, "loss") in first_attempt
    _resume(store, run_id, run_dir)

    assert not [e for e in store.events_since(run_id) if "resuming from" in e["message"]]
    metrics = store.metrics_since(run_id)
    _each_step_once(store, run_id, "judge")  # the failed attempt's rows of steps 1..killed_at are gone
    assert "judge/pairwise_accuracy" in {m["name"] for m in metrics if m["step"] == STEPS}


def test_sigterm_to_the_worker_ends_its_stage_process_and_fails_the_run(store):
    spec = fault_spec(**{"stages": ["grpo"], "grpo.max_steps": 50, "grpo.save_steps": 100})
    run_id, run_dir, proc = start(store, spec)
    try:
        child = stage_process(proc.pid)
        wait_for(lambda: store.last_metrics(run_id).get("step"), what="the first GRPO step", poll=0.05)
    except BaseException:
        kill_quietly(proc.pid)
        raise
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 1
    wait_for(lambda: gone(child), timeout=30, what="the stage process to end with its worker")
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error_message"].startswith("Terminated: the worker was terminated (SIGTERM)"), run["error_message"][:300]
    assert [(s["stage"], s["status"]) for s in store.stages(run_id)] == [("grpo", "failed")]
