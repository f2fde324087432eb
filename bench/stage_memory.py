"""Memory of each stage of a short quickstart on the bundled model: peak and steady memory of the worker's process tree.

    python bench/stage_memory.py [--stages sft,grpo,eval] [--sft-steps 2] [--grpo-steps 3] [--model SRC] [--json OUT]

The quickstart's spec (bundled SmolLM2-135M, LoRA, its batch sizes, generations and completion
lengths) with few steps and a 20-prompt evaluation, run by the real worker. The worker's whole
process tree (it, its fork server and the stage's process) is sampled every 0.2 s; each sample is
charged to the stage the store says is running. A sample is the tree's PSS (each shared page split
among the processes that map it, so the sum is the tree's share of physical memory; a stage's
process forked from the fork server shares the server's pages, which an RSS sum counts twice); the
RSS sum is printed beside it. Per stage: the peak, and the median of the samples after the first
quarter of the stage (its steady level). Also the kernel's figure: the largest peak RSS of any
process of the tree (what `/usr/bin/time -v` reports as Maximum resident set size). Figures
only; the issue's target is a quickstart peak <= 3.5 GB.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from common import SPECS, emit, median, scratch_home, tree_memory

GB = 2**30


def make_spec(stages: list[str], sft_steps: int, grpo_steps: int, model: str | None = None):
    from engine.spec import load_spec

    spec = load_spec(SPECS / "quickstart.toml")
    return spec.replace(**{
        "name": "bench-stage-memory", "stages": stages, "model.source": model or spec.model.source,
        "sft.max_steps": sft_steps, "grpo.max_steps": grpo_steps, "grpo.save_steps": grpo_steps,
        "data.eval_size": 20,
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="sft,grpo,eval")
    parser.add_argument("--sft-steps", type=int, default=2)
    parser.add_argument("--grpo-steps", type=int, default=3)
    parser.add_argument("--model", default=None, help="another model source (builtin:tiny-random: a quick check)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import psutil

    from engine.launch import create_run, spawn_worker
    from engine.store import RunStore

    scratch_home("stage-memory")
    spec = make_spec(args.stages.split(","), args.sft_steps, args.grpo_steps, args.model)
    samples: dict[str, list[tuple[float, int]]] = {}
    with RunStore() as store:
        run_id, run_dir = create_run(spec, store)
        began = time.time()
        proc = spawn_worker(run_dir, store, run_id=run_id)
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            running = [s["stage"] for s in store.stages(run_id) if s["status"] == "running"]
            pss, rss = tree_memory(watched)
            if pss:
                samples.setdefault(running[0] if running else "(between stages)", []).append((time.time(), pss, rss))
            time.sleep(0.2)
        run = store.get_run(run_id)
        if proc.returncode != 0 or run["status"] != "succeeded":
            sys.stderr.write(f"the run failed (exit {proc.returncode}): {(run.get('error') or '')[:2000]}\n")
            return 1
        logged = {}  # the worker's own memory/rss_gb per stage (its steady figure)
        for row in store.metrics_since(run_id):
            if row["name"] == "memory/rss_gb":
                logged.setdefault(row["stage"], []).append(row["value"])
    stages = {}
    for stage, rows in samples.items():
        values = [r[1] for r in rows]
        steady = values[len(values) // 4:] or values
        stages[stage] = {"peak_gb": round(max(values) / GB, 3), "steady_gb": round(median(steady) / GB, 3),
                         "rss_sum_peak_gb": round(max(r[2] for r in rows) / GB, 3),
                         "seconds": round(rows[-1][0] - rows[0][0], 1), "samples": len(values)}
        if stage in logged:
            stages[stage]["worker_rss_gb_median"] = round(median(logged[stage]), 3)
    # ru_maxrss of the children this process waited for: the largest single process's peak, in KiB
    kernel_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    emit({"spec": {"stages": spec.stages, "sft_steps": args.sft_steps, "grpo_steps": args.grpo_steps,
                   "grpo_batch_size": spec.grpo.batch_size, "num_generations": spec.grpo.num_generations},
          "stages": stages, "tree_peak_gb": round(max(s["peak_gb"] for s in stages.values()), 3),
          "largest_process_peak_gb": round(kernel_peak, 3), "wall_s": round(time.time() - began, 1)}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
