"""Build tests/data/store-v1.db: a small run store written by the store code of schema version 1
(before `PRAGMA user_version`), the test data of tests/engine/test_store_migrate.py.

It was run once with that code and its output committed; running it again with newer code would
write a newer store, so do not regenerate the file (the migration test needs the old layout):

    PYTHONPATH=. python tests/data/make_store_v1.py tests/data/store-v1.db
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from engine.store import RunStore

TRACEBACK = ('Traceback (most recent call last):\n  File "engine/worker.py", line 141, in run\n'
             "    status = _stage_module(stage).run(ctx)\nValueError: the learning rate became NaN\n")


def build(path: Path) -> None:
    store = RunStore(path)
    spec = {"name": "v1-ok", "model": {"source": "builtin:tiny-random"}, "data": {"source": "builtin:arithmetic"},
            "stages": ["sft", "grpo", "eval"], "rewards": {"preset": "r1"}}
    ok = store.create_run("v1-ok", spec, run_dir="/runs/0001-v1-ok", status="running")
    for stage in ("sft", "grpo"):
        store.set_stage(ok, stage, status="running", started=1000.0, total_steps=2)
        for step in (1, 2):
            store.add_metrics(ok, stage, step, {"loss": 1.0 / step, "reward": 0.25 * step,
                                                "rewards/format/mean": 0.5})
        store.set_stage(ok, stage, status="succeeded", finished=1010.0, progress=2)
    store.add_traces([{"run_id": ok, "stage": "grpo", "step": step, "prompt_id": f"p{i}", "prompt": f"{i}+{i}=",
                       "completion": f"<think>add</think><answer>{2 * i}</answer>", "think_tokens": 3,
                       "answer_tokens": 2, "tokens": 5, "mode": "think", "correct": 1, "reward": 1.5,
                       "rewards": {"format": 0.5, "accuracy": 1.0}, "difficulty": 1 + i % 3}
                      for step in (1, 2) for i in range(3)])
    store.log_event(ok, "info", "sft: 12 reasoning traces", "sft", 0)
    store.log_event(ok, "alert", "[truncated] 80% of completions were cut off at 24 tokens. Raise "
                    "grpo.max_completion_length.", "grpo", 2)
    store.log_event(ok, "alert", "[zero_spread] every completion of a prompt got the same reward.", "grpo", 2)
    store.add_artifact(ok, "checkpoint", "/runs/0001-v1-ok/checkpoints/grpo/checkpoint-2", {"step": 2}, "grpo")
    store.add_artifact(ok, "adapter", "/runs/0001-v1-ok/sft/final", {"stage": "sft"}, "sft")
    store.add_artifact(ok, "adapter", "/runs/0001-v1-ok/grpo/final", {"stage": "grpo"}, "grpo")
    store.send_command(ok, "stop")
    store.take_command(ok, "stop")
    # its eval stage: base vs. after SFT vs. trained, labels as the eval stage wrote them
    labels = ["base", "sft", "grpo step 2", "trained"]
    eval_id = store.create_evaluation(labels, "builtin:arithmetic", 2, {"seed": 0, "budgets": []}, run_id=ok)
    summary = {"base": {"accuracy": 0.0, "role": "base", "stage": None, "step": None, "run_id": None},
               "sft": {"accuracy": 0.5, "role": "sft", "stage": None, "step": None, "run_id": ok},
               "grpo step 2": {"accuracy": 0.5, "role": "checkpoint", "stage": "grpo", "step": 2, "run_id": ok},
               "trained": {"accuracy": 1.0, "role": "trained", "stage": None, "step": None, "run_id": ok}}
    store.update_evaluation(eval_id, status="succeeded", summary=summary, progress=8, total=8, finished=1020.0)
    store.add_generations({"eval_id": eval_id, "source": label, "prompt_id": f"p{i}", "prompt": f"{i}+{i}=",
                           "completion": f"<answer>{2 * i}</answer>", "tokens": 4, "think_tokens": 0,
                           "answer_tokens": 4, "mode": "think", "correct": int(label != "base"), "reward": None,
                           "difficulty": 1, "sample": 0, "budget": None, "key": f"key-{label}-{i}"}
                          for label in labels for i in range(2))
    store.update_run(ok, status="succeeded", finished=1030.0)
    # a comparison from the command line: two named sources, one a "sft:PATH" string, one with a label
    cmp_id = store.create_evaluation(["run:1", "sft:/runs/0001-v1-ok/sft/final"], "builtin:arithmetic", 1,
                                     {"seed": 1})
    store.update_evaluation(cmp_id, status="failed", error="ValueError: source 'x': no such model",
                            finished=1040.0)
    # a run that failed: the worker recorded "message\n\ntraceback"
    bad = store.create_run("v1-failed", dict(spec, name="v1-failed"), run_dir="/runs/0002-v1-failed",
                           status="running")
    store.set_stage(bad, "sft", status="failed", started=1050.0, finished=1060.0)
    store.add_metrics(bad, "sft", 1, {"loss": float("nan")})
    store.update_run(bad, status="failed", error=f"ValueError: the learning rate became NaN\n\n{TRACEBACK}",
                     finished=1060.0)
    store.log_event(bad, "error", "ValueError: the learning rate became NaN", "sft")
    # a run whose worker died: an error with no traceback
    died = store.create_run("v1-died", dict(spec, name="v1-died"), run_dir="/runs/0003-v1-died", status="queued")
    store.update_run(died, status="failed", error="The worker exited with code 1 before it started the run.",
                     finished=time.time())
    store.db.conn.execute("PRAGMA journal_mode = DELETE")  # small pages, then WAL again as the store has it
    store.db.conn.execute("PRAGMA page_size = 1024")
    store.db.conn.execute("VACUUM")
    store.db.conn.execute("PRAGMA journal_mode = WAL")
    store.close()


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/store-v1.db")
    if out.exists():
        sys.exit(f"{out} exists: it is committed test data, not regenerated")
    build(out)
