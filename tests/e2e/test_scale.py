"""Scale-out: `ponder launch-command` prepares a run and its accelerate config; the smoke spec trains under
`accelerate launch` with two processes (on the CPU, gloo), and only rank 0 writes to the store."""

from __future__ import annotations

import os
import time
import re
import shlex
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from engine.cli import main
from engine.scale import prepare_launch
from engine.spec import load_spec
from tests.conftest import ROOT, SPECS


def _launch_output(capsys, *args: str) -> tuple[int, list[str]]:
    code = main(["launch-command", str(SPECS / "smoke.toml"), *args])
    return code, capsys.readouterr().out.splitlines()


def test_launch_command_prepares_the_run_and_prints_the_command(store, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the smoke spec names its reward file relative to the checkout
    code, lines = _launch_output(capsys, "--gpus", "4")
    assert code == 0
    assert all(line.startswith("#") for line in lines[:-1])  # comments, then the command: a shell script
    argv = shlex.split(lines[-1])
    (run,) = store.list_runs()
    run_dir = Path(run["run_dir"])
    assert run["status"] == "queued" and (run_dir / "spec.toml").is_file()
    assert Path(argv[0]).name == "accelerate" and argv[1:3] == ["launch", "--config_file"]
    assert argv[4:] == ["-m", "engine.worker", str(run_dir), "--store", str(store.path.resolve())]
    config = yaml.safe_load(Path(argv[3]).read_text())
    assert config["distributed_type"] == "MULTI_GPU" and config["num_processes"] == 4
    assert config["mixed_precision"] == "bf16"  # model.dtype auto is bf16 on GPUs
    assert any("each step now takes 32 completions (8 prompts) across 4 processes" in line for line in lines)
    custom = load_spec(run_dir / "spec.toml").rewards.custom_file
    assert Path(custom).is_absolute() and Path(custom).is_file()  # the worker may start in any folder


@pytest.mark.parametrize(("sharding", "kind", "key"), [("zero2", "DEEPSPEED", "deepspeed_config"),
                                                       ("zero3", "DEEPSPEED", "deepspeed_config"),
                                                       ("fsdp", "FSDP", "fsdp_config")])
def test_sharded_configs_come_from_trl(store, capsys, monkeypatch, sharding, kind, key):
    monkeypatch.chdir(ROOT)
    code, lines = _launch_output(capsys, "--gpus", "2", "--deepspeed", sharding)
    assert code == 0
    config = yaml.safe_load(Path(shlex.split(lines[-1])[3]).read_text())
    assert config["distributed_type"] == kind and config["num_processes"] == 2 and key in config
    if sharding != "fsdp":
        assert config[key]["zero_stage"] == int(sharding[-1])


def test_a_bad_request_creates_no_run(store, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, lines = _launch_output(capsys, "--gpus", "2", "--cpu", "--sharding", "zero3")
    assert code == 2 and "needs GPUs" in lines[-1]
    assert _launch_output(capsys, "--gpus", "0")[0] == 2
    assert store.list_runs() == []


@pytest.mark.slow
def test_two_processes_train_and_only_rank_zero_writes(store, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = load_spec(SPECS / "smoke.toml").replace(**{"grpo.max_steps": 2})
    launch = prepare_launch(spec, store, gpus=2, cpu=True)
    assert yaml.safe_load(launch.config.read_text())["mixed_precision"] == "no"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(launch.argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    log = (launch.run_dir / "worker.log").read_text()
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:] + log[-5000:]
    run = store.get_run(launch.run_id)
    assert run["status"] == "succeeded", run["error_message"]

    pids = set(re.findall(r"worker started \(pid (\d+)\)", log))
    assert len(pids) == 2, "two ranks ran"  # every rank logs; only rank 0 records the event
    assert sum("worker started" in e["message"] for e in store.events_since(launch.run_id)) == 1
    rows = [(m["step"], m["name"]) for m in store.metrics_since(launch.run_id)]
    assert max(Counter(rows).values()) == 1, "a metric was written twice for one step"
    assert sorted({step for step, _ in rows}) == [1, 2]
    # one data-parallel group, not two lone runs: each step took both ranks' prompts (2 x 8 / 4 of 32)
    epochs = {m["step"]: m["value"] for m in store.metrics_since(launch.run_id) if m["name"] == "epoch"}
    assert epochs == {1: pytest.approx(2 * 2 / 32), 2: pytest.approx(2 * 2 * 2 / 32)}
    assert {s["stage"]: s["status"] for s in store.stages(launch.run_id)} == {"grpo": "succeeded"}
    assert [a["kind"] for a in store.artifacts(launch.run_id) if a["kind"] == "adapter"] == ["adapter"]
    assert (launch.run_dir / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_stop_reaches_every_process_and_checkpoints(store, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = load_spec(SPECS / "smoke.toml").replace(**{"grpo.max_steps": 6, "grpo.save_steps": 100})
    launch = prepare_launch(spec, store, gpus=2, cpu=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(launch.argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while store.last_metrics(launch.run_id)["step"] is None and time.time() < deadline:
            time.sleep(0.5)
        store.send_command(launch.run_id, "stop")
        proc.wait(timeout=600)  # torchrun turns the workers' "stopped" exit code 3 into its own 1
    finally:
        proc.kill()
    run = store.get_run(launch.run_id)
    assert run["status"] == "stopped", run["error_message"]
    step = store.last_metrics(launch.run_id)["step"]
    assert step < 6
    log = (launch.run_dir / "worker.log").read_text()
    assert log.count(f"trained {step} steps") == 2  # both ranks left the loop at the same step
    assert (launch.run_dir / "checkpoints" / "grpo" / f"checkpoint-{step}" / "adapter_model.safetensors").is_file()
