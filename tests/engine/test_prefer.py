"""The prefer stage (AdaR1's bi-level preference pairs + DPO): the pair rule case by case, a real DPO run of
the tiny model in-process, and stop / kill / resume in the sampling phase and in training through the worker."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.spec import load_spec
from tests.conftest import SPECS


def _s(mode: str, correct: bool, tokens: int, text: str | None = None) -> dict:
    return {"mode": mode, "correct": int(correct), "tokens": tokens,
            "completion": text or f"{mode}-{int(correct)}-{tokens}"}


T, N = "think", "no_think"

# (samples, margin, group cap, instance cap) -> (preferred, [(level, chosen, rejected)])
PAIR_CASES = {
    # both modes always correct: an easy problem, so short is preferred; each long answer is rejected
    # (longest first), and the shorter of two correct short answers beats the longer one
    "both modes correct": (
        [_s(T, True, 40), _s(T, True, 60), _s(N, True, 8), _s(N, True, 12)], 0.0, 2, 1,
        ("short", [("group", "no_think-1-8", "think-1-60"), ("group", "no_think-1-12", "think-1-40"),
                   ("instance", "no_think-1-8", "no_think-1-12")])),
    # only the long style solves it: a hard problem, so long is preferred over the wrong short answers
    "only long correct": (
        [_s(T, True, 50), _s(T, True, 30), _s(N, False, 8), _s(N, False, 9)], 0.0, 2, 1,
        ("long", [("group", "think-1-30", "no_think-0-9"), ("group", "think-1-50", "no_think-0-8"),
                  ("instance", "think-1-30", "think-1-50")])),
    # nothing correct: no pair says which answer is right
    "none correct": (
        [_s(T, False, 50), _s(T, False, 30), _s(N, False, 8), _s(N, False, 9)], 0.0, 2, 1, (None, [])),
    # equal lengths: group pairs still, but two correct answers of the same length are no preference
    "equal lengths": (
        [_s(T, False, 40), _s(T, False, 40), _s(N, True, 10, "a"), _s(N, True, 10, "b")], 0.0, 2, 1,
        ("short", [("group", "a", "think-0-40"), ("group", "b", "think-0-40")])),
    # long is better, but by no more than the margin: short is still preferred, wrong long rejected first
    "long better within the margin": (
        [_s(T, True, 40), _s(T, True, 44), _s(N, True, 8), _s(N, False, 7)], 0.5, 1, 0,
        ("short", [("group", "no_think-1-8", "think-1-44")])),
    # short never correct: long is preferred even where the margin would keep short
    "short never correct": (
        [_s(T, True, 40), _s(T, False, 44), _s(N, False, 8), _s(N, False, 7)], 0.5, 1, 1,
        ("long", [("group", "think-1-40", "no_think-0-8")])),
    # only one style was sampled (every forced think answer closed its block at once): instance pairs only
    "one style only": (
        [_s(N, True, 8), _s(N, True, 12), _s(N, False, 5)], 0.0, 2, 1,
        ("short", [("instance", "no_think-1-8", "no_think-1-12")])),
    # the caps bound each level: two instance pairs, the widest length gap first
    "caps": (
        [_s(T, True, 40), _s(T, True, 50), _s(T, True, 70), _s(N, False, 8)], 0.0, 0, 2,
        ("long", [("instance", "think-1-40", "think-1-70"), ("instance", "think-1-50", "think-1-70")])),
}


@pytest.mark.parametrize("case", PAIR_CASES)
def test_bi_level_pairs(case):
    from engine.stages.prefer import build_pairs

    samples, margin, group_cap, instance_cap, (preferred, expected) = PAIR_CASES[case]
    got_preferred, pairs = build_pairs(samples, margin=margin, group_cap=group_cap, instance_cap=instance_cap)
    assert got_preferred == preferred
    assert [(p["level"], p["chosen"], p["rejected"]) for p in pairs] == expected
    assert all(p["chosen_correct"] for p in pairs)  # a chosen answer is always correct


# ---- a real run of the tiny model, in-process -----------------------------------------------------

def _context(store, tmp_path, **changes):
    from engine.models import choose_placement
    from engine.stages import StageContext

    spec = load_spec(SPECS / "smoke.toml").replace(**{
        "stages": ["prefer"],
        "data.train_size": 6,                # one sampling batch
        "prefer.samples_per_mode": 2,        # 2 think + 2 no-think answers per problem
        "prefer.max_completion_length": 12,  # the tiny model babbles; short keeps sampling fast
        "prefer.max_steps": 3,               # enough to see the LoRA weights move and a metric per step
        "prefer.batch_size": 2,
        "prefer.max_length": 192,            # the chat prompt is ~110 tokens
        "prefer.learning_rate": 1e-3,        # large, so three steps visibly move the LoRA weights
        **changes,
    })
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_id = store.create_run(spec.name, spec.to_dict(), run_dir)
    return StageContext(store=store, run_id=run_id, run_dir=run_dir, spec=spec, placement=choose_placement("cpu"))


def _alternating_check(monkeypatch):
    """A random-init model is never right: every other scored sample counts as correct, so pairs exist."""
    import itertools

    import engine.rewards.parsing as parsing

    counter = itertools.count()
    monkeypatch.setattr(parsing, "is_correct", lambda pred, gold: next(counter) % 2 == 0)


def test_prefer_samples_pairs_and_trains(store, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from engine.stages import prefer

    _alternating_check(monkeypatch)
    ctx = _context(store, tmp_path)
    assert prefer.run(ctx) == "succeeded"

    adapter = ctx.outputs["prefer_adapter"]
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    assert sum(float(v.abs().sum()) for k, v in weights.items() if "lora_B" in k) > 0  # B starts at 0: moved
    assert not any(".ref." in k for k in weights)  # TRL's frozen reference copy is not the output
    (artifact,) = store.artifacts(ctx.run_id, "adapter")
    assert artifact["stage"] == "prefer" and artifact["meta"]["pairs"] > 0

    pairs = store.pairs(ctx.run_id)
    assert pairs and {p["level"] for p in pairs} <= {"group", "instance"}
    assert all(p["chosen_correct"] == 1 and p["chosen"] != p["rejected"] for p in pairs)
    assert all(p["prompt"].startswith("What is") and p["difficulty"] >= 1 for p in pairs)

    by_step: dict[int, set[str]] = {}
    for m in store.metrics_since(ctx.run_id):
        by_step.setdefault(m["step"], set()).add(m["name"])
    assert sorted(by_step) == [0, 1, 2, 3]
    assert {"prefer/pairs", "prefer/pairs/group", "prefer/pairs/instance", "prefer/accuracy/think"} <= by_step[0]
    for step in (1, 2, 3):
        assert {"loss", "rewards/margins", "rewards/accuracies", "learning_rate"} <= by_step[step]
    traces = store.traces_since(ctx.run_id)  # a sample of pairs for the completions view
    assert traces and {t["reward"] for t in traces} == {1.0, -1.0} and all(t["stage"] == "prefer" for t in traces)
    lines = (ctx.run_dir / prefer.SAMPLES_FILE).read_text().splitlines()
    assert len(lines) == 6 and all(len(json.loads(line)["samples"]) == 4 for line in lines)


def test_no_correct_sample_skips_with_the_reason(store, tmp_path):
    from engine.stages import prefer

    ctx = _context(store, tmp_path, **{"data.train_size": 2})  # the random model is never right
    assert prefer.run(ctx) == "skipped"
    (warning,) = [e for e in store.events_since(ctx.run_id) if e["level"] == "warning"]
    assert "no problem had a correct" in warning["message"] and "prefer_adapter" not in ctx.outputs


def test_spec_checks_the_prefer_settings():
    from engine.spec import SpecInvalid

    spec = load_spec(SPECS / "smoke.toml")
    with pytest.raises(SpecInvalid) as err:
        spec.replace(**{"stages": ["prefer"], "prefer.loss_type": "dpo", "prefer.temperature": 0.0,
                        "prefer.group_pairs": 0, "prefer.instance_pairs": 0})
    assert {"prefer.loss_type", "prefer.temperature", "prefer.group_pairs"} <= set(err.value.by_field())
    with pytest.raises(SpecInvalid):
        spec.replace(stages=["grpo", "prefer"])  # prefer runs before GRPO


# ---- stop, kill and resume through the worker -------------------------------------------------------

def _wait(pred, timeout: float = 240, what: str = "condition"):
    end = time.time() + timeout
    while time.time() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _worker_run(store, **changes):
    from engine.launch import create_run

    spec = load_spec(SPECS / "smoke.toml").replace(**{
        "stages": ["prefer"], "data.train_size": 40, "prefer.samples_per_mode": 2,
        "prefer.max_completion_length": 12, "prefer.batch_size": 2, "prefer.max_length": 192,
        "prefer.learning_rate": 1e-3, **changes})
    return create_run(spec, store)


def _scored_samples(run_dir: Path, spec) -> None:
    """A finished sampling phase, written as the stage writes it (the random model never answers right)."""
    from engine.data import load_examples

    rows = load_examples(spec.data.source, n=spec.data.train_size, seed=spec.data.seed, split="train",
                         difficulty_mix=spec.data.mix(), columns=spec.data.columns())
    with (run_dir / "prefer-samples.jsonl").open("w") as f:
        for ex in rows:
            a = str(ex["answer"])
            samples = [_s(T, True, 20, f"{ex['question']} so {a}\n</think>\n<answer>{a}</answer>"),
                       _s(T, True, 30, f"{ex['question']} hmm, that is {a}\n</think>\n<answer>{a}</answer>"),
                       _s(N, True, 6, f"</think>\n<answer>{a}</answer>"),
                       _s(N, False, 6, "</think>\n<answer>0</answer>")]
            f.write(json.dumps({"prompt_id": str(ex["id"]), "question": ex["question"], "answer": a,
                                "difficulty": ex.get("difficulty") or 0, "prompt": ex["question"],
                                "samples": samples}) + "\n")


def _steps(store, run_id):
    return [(m["step"], m["name"]) for m in store.metrics_since(run_id)]


def test_stop_while_sampling_then_resume_samples_the_rest(store):
    from engine.launch import spawn_worker

    run_id, run_dir = _worker_run(store)
    store.send_command(run_id, "stop")  # waiting before the first batch: the stop comes after it
    proc = spawn_worker(run_dir, store)
    assert proc.wait(timeout=240) == 3
    assert store.get_run(run_id)["status"] == "stopped"
    assert len((run_dir / "prefer-samples.jsonl").read_text().splitlines()) == 16  # one batch

    proc = spawn_worker(run_dir, store, resume=True)
    assert proc.wait(timeout=240) == 0
    events = [e["message"] for e in store.events_since(run_id)]
    assert any("16 of 40 problems already sampled" in m for m in events), events
    ids = [json.loads(line)["prompt_id"] for line in (run_dir / "prefer-samples.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 40
    assert store.get_run(run_id)["status"] == "succeeded"  # no correct answer: the stage skips


def test_kill_while_sampling_then_resume(store):
    from engine.launch import spawn_worker

    run_id, run_dir = _worker_run(store, **{"data.train_size": 64})
    proc = spawn_worker(run_dir, store)
    samples = run_dir / "prefer-samples.jsonl"
    _wait(lambda: samples.exists() and len(samples.read_text().splitlines()) >= 16, what="a sampled batch")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "killed" in run["error_message"]
    kept = len(samples.read_text().splitlines())
    assert kept < 64, "sampling finished before the kill"

    proc = spawn_worker(run_dir, store, resume=True)
    assert proc.wait(timeout=240) == 0
    assert any(f"{kept - kept % 16} of 64 problems already sampled" in e["message"] or
               f"{kept} of 64 problems already sampled" in e["message"] for e in store.events_since(run_id))
    ids = [json.loads(line)["prompt_id"] for line in samples.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 64


def test_stop_while_training_checkpoints_and_resume_continues(store):
    from engine.launch import spawn_worker

    run_id, run_dir = _worker_run(store, **{"prefer.max_steps": 5, "prefer.save_steps": 100})
    spec = load_spec(run_dir / "spec.toml")
    _scored_samples(run_dir, spec)
    proc = spawn_worker(run_dir, store, resume=True)  # sampling already done: straight to pairs and DPO
    _wait(lambda: store.last_metrics(run_id)["step"], what="the first step")
    store.send_command(run_id, "stop")
    assert proc.wait(timeout=240) == 3
    stopped_at = store.last_metrics(run_id)["step"]
    assert 0 < stopped_at < 5
    assert (run_dir / "checkpoints" / "prefer" / f"checkpoint-{stopped_at}" / "adapter_model.safetensors").exists()
    assert store.pairs(run_id)

    proc = spawn_worker(run_dir, store, resume=True)
    assert proc.wait(timeout=240) == 0
    assert store.get_run(run_id)["status"] == "succeeded"
    assert any(f"resuming from checkpoint-{stopped_at}" in e["message"] for e in store.events_since(run_id))
    assert sorted({s for s, _ in _steps(store, run_id)}) == [0, 1, 2, 3, 4, 5]
    assert max(Counter(_steps(store, run_id)).values()) == 1
    assert len(store.pairs(run_id)) == 40 * 3  # rebuilt on resume, not added twice: 2 group + 1 instance each


def test_kill_while_training_reads_as_failed_and_resumes(store):
    from engine.launch import spawn_worker

    run_id, run_dir = _worker_run(store, **{"prefer.max_steps": 4, "prefer.save_steps": 1})
    _scored_samples(run_dir, load_spec(run_dir / "spec.toml"))
    proc = spawn_worker(run_dir, store, resume=True)
    _wait(lambda: (run_dir / "checkpoints" / "prefer" / "checkpoint-2").exists(), what="checkpoint 2")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "killed" in run["error_message"]
    assert store.integrity_check() == "ok"

    proc = spawn_worker(run_dir, store, resume=True)
    assert proc.wait(timeout=240) == 0
    assert store.get_run(run_id)["status"] == "succeeded"
    assert any("resuming from" in e["message"] for e in store.events_since(run_id))
    assert sorted({s for s, _ in _steps(store, run_id)}) == [0, 1, 2, 3, 4]
    assert max(Counter(_steps(store, run_id)).values()) == 1
    (adapter,) = store.artifacts(run_id, "adapter")
    assert adapter["stage"] == "prefer"


def test_a_store_from_before_the_pairs_table_opens_and_gets_it(tmp_path):
    import sqlite3

    from engine.store import _SCHEMA, RunStore

    path = tmp_path / "old.db"
    with RunStore(path) as s:
        run_id = s.create_run("old", {}, tmp_path)
    conn = sqlite3.connect(path)  # the store as main wrote it before this stage: no pairs table
    conn.execute("DROP TABLE pairs")
    conn.commit()
    conn.close()
    with RunStore(path) as s:
        assert set(s.db.table_names()) >= set(_SCHEMA) and s.get_run(run_id)["name"] == "old"
        s.replace_pairs(run_id, "prefer", [{"prompt_id": "p", "chosen": "a", "rejected": "b", "level": "group"}])
        s.replace_pairs(run_id, "prefer", [{"prompt_id": "p", "chosen": "a", "rejected": "c", "level": "group"}])
        assert [p["rejected"] for p in s.pairs(run_id)] == ["c"]  # replaced, not added
