"""Ponder's GRPO overhead: seconds per step through Ponder's engine vs a bare TRL GRPOTrainer script.

    python bench/grpo_overhead.py [--bundled] [--steps N] [--repeats R] [--profile] [--json OUT]

Ponder side: the real worker process (`engine.launch.spawn_worker`), the run store, trace
capture of every completion, every reward component logged, health checks, the stop check.
Bare side: bench/bare_grpo.py, the same GRPOConfig (unpickled from the Ponder run), model,
data and reward functions. The two alternate, Ponder first in each repeat (the bare script
needs its config). A step's time is the interval between the moments its logs and the
previous step's logs arrive (so every callback's cost is inside); step 1 is warm-up and left
out. Target: Ponder <= 1.03 x bare TRL.

--profile runs one more Ponder worker under cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import SPECS, child_env, emit, median, scratch_home

TARGET = 1.03
SETTINGS = {  # the shared GRPO configuration; same seed, batch, generations, completion length, steps
    "tiny": {"model.source": "builtin:tiny-random", "grpo.batch_size": 8, "grpo.num_generations": 4,
             "grpo.max_completion_length": 32, "grpo.max_steps": 8},
    "bundled": {"model.source": "bundled:smollm2-135m-instruct", "grpo.batch_size": 8,
                "grpo.num_generations": 4, "grpo.max_completion_length": 48, "grpo.max_steps": 4},
}


def make_spec(model: str, steps: int | None):
    from engine.spec import load_spec

    changes = dict(SETTINGS[model])
    if steps:
        changes["grpo.max_steps"] = steps
    changes.update({
        "name": f"bench-{model}", "seed": 1234, "rewards.preset": "r1-zero",
        "rewards.custom_file": "",  # the preset's own components: accuracy + format
        # one checkpoint, after the last step's logs: inside no measured interval
        "grpo.save_steps": changes["grpo.max_steps"],
        "data.train_size": 64,
    })
    return load_spec(SPECS / "smoke.toml").replace(**changes)


def _durations(stamps: list[tuple[int, float]]) -> list[float]:
    """Per-step seconds from (step, time the step's logs arrived), steps 2.. (step 1 is warm-up)."""
    stamps = sorted(stamps)
    return [b[1] - a[1] for a, b in zip(stamps, stamps[1:], strict=False) if b[0] == a[0] + 1]


def run_ponder(spec, store, profile_to: Path | None = None) -> tuple[dict, Path]:
    from engine.launch import create_run, spawn_worker, worker_argv

    run_id, run_dir = create_run(spec, store)
    if profile_to is None:
        proc = spawn_worker(run_dir, store)
    else:
        argv = worker_argv(run_dir, store)
        argv[1:1] = ["-m", "cProfile", "-o", str(profile_to)]  # python -m cProfile -o F -m engine.worker ...
        with open(run_dir / "worker.log", "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=child_env())
    rc = proc.wait(timeout=3600)
    run = store.get_run(run_id)
    if rc != 0 or run["status"] != "succeeded":
        raise RuntimeError(f"Ponder run failed (exit {rc}): {(run.get('error') or '')[:2000]}")
    rows = store.metrics_since(run_id)
    stamps = {r["step"]: r["time"] for r in rows}  # one time per step: add_metrics stamps a step's rows alike
    trl = [r["value"] for r in rows if r["name"] == "step_time" and r["step"] > 1]
    return {"durations": _durations(list(stamps.items())), "trl_step_time": trl}, run_dir


def run_bare(ponder_run_dir: Path, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    out = work / "steps.json"
    script = Path(__file__).with_name("bare_grpo.py")
    with open(work / "bare.log", "wb") as log:  # like the worker: its output goes to a file
        rc = subprocess.run([sys.executable, str(script), str(ponder_run_dir), "--work", str(work), "--out",
                             str(out)], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=child_env(),
                            timeout=3600).returncode
    if rc != 0:
        tail = (work / "bare.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"bare TRL script failed (exit {rc}):\n{tail}")
    steps = json.loads(out.read_text())
    return {"durations": _durations([(s["step"], s["time"]) for s in steps]),
            "trl_step_time": [s["step_time"] for s in steps if s["step"] > 1 and s["step_time"] is not None]}


def profile_summary(path: Path, per_step_of: int, top: int = 25) -> dict:
    """Where a profiled worker's time went: Ponder's own callbacks and wrappers, and the top functions."""
    import pstats

    stats = pstats.Stats(str(path))
    table = stats.stats  # (file, line, func) -> (cc, nc, tottime, cumtime, callers)
    ours = {}
    for (file, line, func), (_, calls, tottime, cumtime, _) in table.items():
        if "/engine/" in file and func in ("on_log", "on_step_end", "on_save", "on_train_begin", "recorded",
                                           "step_metrics", "add_metrics", "add_traces", "set_stage",
                                           "take_command", "memory_metrics", "check", "_rows"):
            ours[f"{Path(file).parent.name}/{Path(file).name}:{func}"] = {
                "calls": calls, "cumtime_s": round(cumtime, 4), "per_step_s": round(cumtime / per_step_of, 4)}
    total = max(v[3] for v in table.values())
    hooks = [v["cumtime_s"] for k, v in ours.items() if k.startswith("stages/__init__.py:on_")]
    by_cum = sorted(table.items(), key=lambda kv: kv[1][3], reverse=True)[:top]
    return {"total_s": round(total, 2),
            # the trainer callbacks (store writes, trace capture, health, stop check); cProfile inflates them
            "callbacks_s_per_step": round(sum(hooks) / per_step_of, 4), "ponder_callbacks": ours,
            "top_cumulative": [f"{v[3]:8.2f} s  {Path(k[0]).name}:{k[1]}({k[2]})" for k, v in by_cum]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundled", action="store_true",
                        help="the bundled SmolLM2-135M instead of the tiny model")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default: 8 tiny, 4 bundled)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also profile one Ponder worker (cProfile)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from engine.store import RunStore

    model = "bundled" if args.bundled else "tiny"
    home = scratch_home(f"grpo-{model}")
    spec = make_spec(model, args.steps)
    ponder, bare, ratios = [], [], []
    ponder_trl, bare_trl = [], []
    with RunStore() as store:
        for i in range(args.repeats):
            p, run_dir = run_ponder(spec, store)
            b = run_bare(run_dir, home / f"bare-{i}")
            ponder += p["durations"]
            bare += b["durations"]
            ponder_trl += p["trl_step_time"]
            bare_trl += b["trl_step_time"]
            if median(p["durations"]) and median(b["durations"]):
                ratios.append(median(p["durations"]) / median(b["durations"]))
            sys.stderr.write(f"repeat {i + 1}/{args.repeats}: Ponder {median(p['durations']):.3f} s/step, "
                             f"bare TRL {median(b['durations']):.3f} s/step\n")
        result = {
            "benchmark": "grpo_overhead", "model": spec.model.source,
            "settings": {k: v for k, v in spec.to_dict()["grpo"].items()
                         if k in ("batch_size", "num_generations", "max_completion_length", "max_steps")},
            "repeats": args.repeats,
            "ponder_s_per_step": median(ponder), "bare_trl_s_per_step": median(bare),
            # each repeat's Ponder and bare runs are neighbours in time: the median of their ratios is what
            # a changing machine load disturbs least
            "ratio": median(ratios), "ratio_per_repeat": ratios,
            "ratio_of_pooled_medians": median(ponder) / median(bare) if ponder and bare else None,
            "target": f"<= {TARGET}",
            # TRL's own step_time excludes the callbacks: the same on both sides unless the steps differ
            "trl_step_time_ponder": median(ponder_trl), "trl_step_time_bare": median(bare_trl),
            "ponder_durations": ponder, "bare_durations": bare,
        }
        if args.profile:
            prof = home / "worker.prof"
            t0 = time.time()
            run_ponder(spec, store, profile_to=prof)
            result["profile"] = profile_summary(prof, per_step_of=spec.grpo.max_steps)
            result["profile"]["wall_s"] = round(time.time() - t0, 1)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
