"""Training health: pre-flight findings and live alerts, each built on the tiny model."""

from __future__ import annotations

import json

import pytest

from engine.health import HealthMonitor
from engine.launch import create_run, spawn_worker
from engine.preflight import check
from engine.spec import HealthSpec, load_spec
from tests.conftest import SPECS

SMOKE = load_spec(SPECS / "smoke.toml")


def _levels(findings, level):
    return {f.field: f.message for f in findings if f.level == level}


def test_preflight_of_the_smoke_spec_is_clean():
    findings = check(SMOKE)
    assert not _levels(findings, "error") and not _levels(findings, "warning"), findings
    assert "GiB" in _levels(findings, "info")["grpo.batch_size"]


def test_preflight_indivisible_batch():
    data = SMOKE.to_dict()
    data["grpo"]["batch_size"] = 6  # not whole groups of 4
    errors = _levels(check(data), "error")
    assert "multiple" in errors["grpo.batch_size"]


def test_preflight_lora_targets_must_exist():
    errors = _levels(check(SMOKE.replace(**{"model.lora.target_modules": ["c_attn"]})), "error")
    assert "c_attn" in errors["model.lora.target_modules"] and "q_proj" in errors["model.lora.target_modules"]


def test_preflight_reward_that_never_matches(tmp_path):
    rewards = tmp_path / "rewards.py"
    rewards.write_text("import re\n"
                       "def reward_reasoning_tags(prompts, completions, **kw):\n"
                       "    return [1.0 if re.search(r'<reasoning>.*</reasoning>', c, re.S) else 0.0\n"
                       "            for c in completions]\n")
    findings = check(SMOKE.replace(**{"rewards.custom_file": str(rewards)}))
    warnings = _levels(findings, "warning")
    assert "tag or regex mismatch" in warnings["rewards.weights.reward_reasoning_tags"]


def test_preflight_memory_that_cannot_fit():
    # 64 prompts per step need 64 training rows; far over the memory there is, it is an error
    spec = SMOKE.replace(**{"grpo.batch_size": 256, "grpo.max_completion_length": 1024, "data.train_size": 64})
    errors = _levels(check(spec), "error")
    assert "not fit" in errors["grpo.batch_size"] and "would fit" in errors["grpo.batch_size"]
    assert "x 4 generations per step" in errors["grpo.batch_size"]  # solved from the estimate


@pytest.mark.parametrize(("values", "code"), [
    ({"completions/clipped_ratio": 0.9}, "truncated"),  # most completions cut off
    ({"frac_reward_zero_std": 1.0}, "zero_spread"),  # no group has a reward spread
    ({"completions/mean_length": 1.0}, "length_collapse"),  # completions shrank to nothing
    ({"kl": 5.0}, "kl_rising"),  # the policy runs away from the reference
])
def test_monitor_fires_once_after_the_window(values, code):
    monitor = HealthMonitor(HealthSpec(warmup_steps=2, window=2), max_completion_length=64, beta=0.04)
    fired = [a.code for step in range(1, 6) for a in monitor.check(step, {"reward": step / 10, **values})]
    assert fired == [code]


def test_monitor_flat_reward_and_nan():
    monitor = HealthMonitor(HealthSpec(warmup_steps=0, flat_steps=3), max_completion_length=64)
    fired = [a.code for step in range(1, 5) for a in monitor.check(step, {"reward": 0.5})]
    assert fired == ["flat_reward"]
    (alert,) = monitor.check(5, {"reward": 0.5, "loss": float("nan")})
    assert alert.code == "non_finite" and alert.fatal


def _alerts(store, run_id):
    return [(e["step"], f"[{e['code']}] {e['message']}") for e in store.events_since(run_id) if e["level"] == "alert"]


def test_live_alert_when_completions_are_cut_off(store):
    spec = SMOKE.replace(**{"grpo.max_steps": 3, "grpo.max_completion_length": 3, "health.warmup_steps": 1,
                            "health.window": 2})
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=300) == 0, (run_dir / "worker.log").read_text()[-2000:]
    alerts = _alerts(store, run_id)
    assert any(step == 2 and "[truncated]" in msg and "max_completion_length" in msg for step, msg in alerts), alerts


def test_live_alert_when_rewards_never_vary(store, tmp_path):
    data = tmp_path / "same.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {i} + {7 - i}?", "answer": "7"}) + "\n"
                            for i in range(40)))
    spec = SMOKE.replace(**{"grpo.max_steps": 3, "data.source": str(data), "rewards.custom_file": "",
                            "health.warmup_steps": 1, "health.window": 2})
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=300) == 0, (run_dir / "worker.log").read_text()[-2000:]
    alerts = _alerts(store, run_id)
    assert any("[zero_spread]" in msg and "num_generations" in msg for _, msg in alerts), alerts


def test_monitor_not_learning_fires_on_an_unchanged_probe():
    monitor = HealthMonitor(HealthSpec(warmup_steps=0), max_completion_length=64)
    assert not monitor.check(4, {"reward": 0.1, "policy/update_norm": 0.0})  # no probe at this step: no verdict
    (alert,) = monitor.check(8, {"reward": 0.1, "policy/update_norm": 0.0, "policy/probe_changed": 0.0})
    assert alert.code == "not_learning" and "grpo.learning_rate" in alert.message
    assert not monitor.check(9, {"reward": 0.2})
    assert not HealthMonitor(HealthSpec(warmup_steps=0), 64).check(8, {"policy/probe_changed": 0.25})


@pytest.mark.parametrize(("learning_rate", "fires"), [
    (0.0, True),    # nothing can move: the probe's greedy answers stay the start's
    (5e-2, False),  # a large step moves the tiny model's LoRA weights, and its greedy answers with them
])
def test_live_not_learning_alert(store, learning_rate, fires):
    spec = SMOKE.replace(**{"grpo.max_steps": 4, "grpo.learning_rate": learning_rate,
                            "health.probe_steps": 2, "health.probe_prompts": 4,
                            "health.warmup_steps": 1})
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=300) == 0, (run_dir / "worker.log").read_text()[-2000:]
    alerts = [msg for _, msg in _alerts(store, run_id) if "[not_learning]" in msg]
    metrics = {(m["step"], m["name"]): m["value"] for m in store.metrics_since(run_id)}
    assert (2, "policy/probe_changed") in metrics and (4, "policy/probe_changed") in metrics
    assert (metrics[(4, "policy/update_norm")] == 0) is fires
    assert bool(alerts) is fires, alerts
    if fires:
        assert len(alerts) == 1 and "learning_rate" in alerts[0]
