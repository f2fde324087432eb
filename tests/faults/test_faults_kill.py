"""The worker SIGKILLed in the middle of a GRPO step, then `ponder resume` from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from tests.faults.conftest import ROOT, checkpoint_steps, fault_spec, start, wait_for, worker_env


# Step 2 holds still in its reward computation while the marker file exists: the kill lands inside
# that step on any machine, however fast or loaded, and the resumed run does not wait.
SLOW_STEP_2 = """
import os, time

def reward_slow_step_2(prompts, completions, trainer_state=None, **kwargs):
    if trainer_state is not None and trainer_state.global_step == 1 and os.path.exists({marker!r}):
        time.sleep(20)
    return [float(len(c) % 3) for c in completions]
"""


def test_sigkill_mid_step_then_cli_resume_continues_from_the_last_checkpoint(store, tmp_path):
    marker = tmp_path / "hold-step-2"
    marker.touch()
    rewards = tmp_path / "rewards_slow.py"
    rewards.write_text(SLOW_STEP_2.format(marker=str(marker)))
    spec = fault_spec(**{"grpo.max_steps": 4, "grpo.save_steps": 1, "rewards.custom_file": str(rewards)})
    run_id, run_dir, proc = start(store, spec)
    ckpts = run_dir / "checkpoints" / "grpo"

    # ---- kill it inside step 2: step 1 is logged and its checkpoint written (the artifact row comes
    # after the folder is complete); step 2 generates, then waits in its reward function --------------
    wait_for(lambda: 1 in checkpoint_steps(store, run_id), what="checkpoint 1", poll=0.05)
    time.sleep(2.0)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    marker.unlink()
    assert store.last_metrics(run_id)["step"] == 1, "the kill came after step 2 ended: not mid-step"
    assert not (ckpts / "checkpoint-2").exists()

    run = store.get_run(run_id)  # the dead worker is noticed on read
    assert run["status"] == "failed"
    assert "killed" in run["error_message"]
    assert store.integrity_check() == "ok"
    assert {s["stage"]: s["status"] for s in store.stages(run_id)} == {"grpo": "failed"}

    # ---- `ponder resume RUN_ID` (the console script's entry point) follows it to the end ----------------
    out = subprocess.run([sys.executable, "-m", "desktop.entry", "resume", str(run_id)], cwd=ROOT,
                         env=worker_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"run {run_id} succeeded" in out.stdout
    assert store.get_run(run_id)["status"] == "succeeded"

    resumed = [e["step"] for e in store.events_since(run_id) if "resuming from checkpoint-" in e["message"]]
    assert resumed == [1]
    redone = 1 - resumed[0]  # steps logged before the kill that had to be trained again
    assert redone <= spec.grpo.save_steps
    rows = [(m["step"], m["name"]) for m in store.metrics_since(run_id)]
    assert sorted({step for step, _ in rows}) == [1, 2, 3, 4]
    assert max(Counter(rows).values()) == 1, "a step's metric was written twice"
    assert len(store.traces_since(run_id)) == 4 * spec.grpo.batch_size  # every completion, once
    state = json.loads((ckpts / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert store.integrity_check() == "ok"
