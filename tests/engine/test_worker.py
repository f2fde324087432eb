"""Real GRPO runs of the tiny model through the worker process: metrics, traces, stop, kill, resume."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from engine.launch import create_run, spawn_worker
from engine.spec import load_spec
from tests.conftest import ROOT, SPECS


def _wait(pred, timeout: float = 240, what: str = "condition"):
    end = time.time() + timeout
    while time.time() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _lora_b_norm(adapter_dir: Path) -> float:
    from safetensors.torch import load_file

    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return sum(float(v.abs().sum()) for k, v in weights.items() if "lora_B" in k)


def _metric_rows(store, run_id):
    return [(m["step"], m["name"]) for m in store.metrics_since(run_id)]


def test_smoke_run_from_the_cli(store):
    """`ponder run smoke.toml`: exit 0, one row per metric per step, traces, trained adapter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "desktop.entry", "run", str(SPECS / "smoke.toml")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "succeeded" in out.stdout and "ETA" in out.stdout
    (run,) = store.list_runs()
    assert run["status"] == "succeeded"
    rows = _metric_rows(store, run["id"])
    counts = Counter(rows)
    assert max(counts.values()) == 1, "a metric was written twice for one step"
    by_step: dict[int, set[str]] = {}
    for step, name in rows:
        by_step.setdefault(step, set()).add(name)
    assert sorted(by_step) == [1, 2, 3]
    expected = {"reward", "loss", "accuracy", "think_rate", "tokens/think", "tokens/answer", "tokens/completion",
                "rewards/accuracy/mean", "rewards/format/mean", "rewards/reward_plain_text/mean",
                "learning_rate", "completions/clipped_ratio", "frac_reward_zero_std", "tokens_per_s"}
    per_level = re.compile(r"/d\d$")  # accuracy/d3: only levels present in that step's batch
    steady = [{n for n in names if not per_level.search(n)} for names in by_step.values()]
    for names in steady:
        assert expected <= names, expected - names
        assert names == steady[0]
    traces = store.traces_since(run["id"])
    assert len(traces) == 3 * 8  # every completion of every step
    for t in traces:
        assert set(t["rewards"]) == {"accuracy", "format", "reward_plain_text"}
        assert t["tokens"] == t["think_tokens"] + t["answer_tokens"] > 0
        assert t["mode"] in ("think", "no_think") and t["prompt"].startswith("What is")
    (adapter,) = store.artifacts(run["id"], "adapter")
    assert _lora_b_norm(Path(adapter["path"])) > 0  # LoRA B starts at zero: the weights moved
    assert (Path(run["run_dir"]) / "worker.log").stat().st_size > 0


def _start(store, tmp_path, **changes):
    spec = load_spec(SPECS / "smoke.toml").replace(**changes)
    run_id, run_dir = create_run(spec, store)
    return run_id, run_dir, spawn_worker(run_dir, store)


def test_stop_checkpoints_and_resume_continues(store, tmp_path):
    run_id, run_dir, proc = _start(store, tmp_path, **{"grpo.max_steps": 5, "grpo.save_steps": 100})
    _wait(lambda: store.last_metrics(run_id)["step"], what="the first step")
    store.send_command(run_id, "stop")
    assert proc.wait(timeout=240) == 3  # the worker's "stopped" exit code
    run = store.get_run(run_id)
    assert run["status"] == "stopped"
    stopped_at = store.last_metrics(run_id)["step"]
    assert stopped_at < 5
    ckpt = run_dir / "checkpoints" / "grpo" / f"checkpoint-{stopped_at}"
    assert (ckpt / "adapter_model.safetensors").exists()
    assert store.artifacts(run_id, "checkpoint")

    proc = spawn_worker(run_dir, store, resume=True)
    assert proc.wait(timeout=240) == 0
    assert store.get_run(run_id)["status"] == "succeeded"
    events = [e["message"] for e in store.events_since(run_id)]
    assert any(f"resuming from checkpoint-{stopped_at}" in m for m in events), events
    steps = sorted({s for s, _ in _metric_rows(store, run_id)})
    assert steps == [1, 2, 3, 4, 5]
    assert max(Counter(_metric_rows(store, run_id)).values()) == 1
    state = json.loads((run_dir / "checkpoints" / "grpo" / "checkpoint-5" / "trainer_state.json").read_text())
    assert state["global_step"] == 5


def test_bad_model_fails_before_training_with_a_clear_error(store, tmp_path):
    folder = tmp_path / "remote-code-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "custom", "auto_map": {"AutoModel": "x.Y"}}))
    run_id, run_dir, proc = _start(store, tmp_path, **{"model.source": str(folder)})
    assert proc.wait(timeout=120) == 1
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert "trust_remote_code" in run["error_message"].splitlines()[0]
    assert not store.metrics_since(run_id)


def test_engine_spec_and_store_do_not_import_torch():
    code = "import sys, engine.spec, engine.store, engine.launch, engine.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_worker_process_itself_loads_no_training_library(store):
    """The worker runs each stage in a child process and holds no torch itself: a real tiny eval run, driven by
    `run_worker` in a fresh interpreter, succeeds, and that interpreter never imported torch or transformers
    (what it held would stay resident beside every stage: 0.3 GB). The stage's process comes from the fork
    server, which the worker waits for at the end: the stage's peak memory reaches the worker's own parent as
    the kernel counts it (what `/usr/bin/time -v` reports), not just the worker's 0.1 GB."""
    code = (
        "import resource, sys\n"
        "from engine.launch import create_run\n"
        "from engine.spec import load_spec\n"
        "from engine.store import RunStore\n"
        "from engine.worker import run_worker\n"
        f"spec = load_spec({str(SPECS / 'smoke.toml')!r}).replace(stages=['eval'], name='light-worker')\n"
        "spec = spec.replace(**{'data.eval_size': 4, 'eval.max_completion_length': 8})\n"
        "with RunStore() as store:\n"
        "    run_id, run_dir = create_run(spec, store)\n"
        "    code = run_worker(run_dir, store)\n"
        "    status = store.get_run(run_id)['status']\n"
        "    print(code, status, 'torch' in sys.modules, 'transformers' in sys.modules,\n"
        "          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss >> 10)\n"  # KiB -> MiB
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout + out.stderr
    *said, peak_mib = out.stdout.split()[-5:]
    assert said == ["0", "succeeded", "False", "False"], out.stdout + out.stderr[-3000:]
    assert int(peak_mib) > 300, f"the children's peak RSS reads {peak_mib} MiB: the stage's process is not counted"
    (run,) = store.list_runs()
    assert any(e["message"].startswith("eval: process ") for e in store.events_since(run["id"]))
