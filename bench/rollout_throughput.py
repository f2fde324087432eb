"""Rollout throughput: completion tokens/s of the GRPO stage's generation vs a raw `model.generate`.

    python bench/rollout_throughput.py [--bundled] [--repeats R] [--json OUT]

Ponder's GRPO generation is TRL's (`GRPOTrainer._generate`: tokenise the prompts, generate,
cut at EOS, decode). This runs the real GRPO stage in this process (engine.worker.run_worker,
so the trainer is configured exactly as the stage configures it) with `_generate` timed on
every step; then, with the trained policy, it alternates the trainer's `_generate` on one
step's prompts with a raw `model.generate` of the same prompts, batch and length (same
sampling settings), and compares completion tokens per second (tokens up to and including
the first EOS, as TRL counts them). Target: >= 0.95.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from common import SPECS, emit, median, scratch_home

TARGET = 0.95
SETTINGS = {
    "tiny": {"model.source": "builtin:tiny-random", "grpo.batch_size": 16, "grpo.num_generations": 4,
             "grpo.max_completion_length": 64, "grpo.max_steps": 3},
    "bundled": {"model.source": "bundled:smollm2-135m-instruct", "grpo.batch_size": 8,
                "grpo.num_generations": 4, "grpo.max_completion_length": 64, "grpo.max_steps": 2},
}


def _tokens(completion_ids: list[list[int]]) -> int:
    return sum(len(ids) for ids in completion_ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundled", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    home = scratch_home("rollout")
    import torch
    from trl import GRPOTrainer

    from engine.launch import create_run
    from engine.spec import load_spec
    from engine.store import RunStore
    from engine.worker import run_worker

    model_key = "bundled" if args.bundled else "tiny"
    spec = load_spec(SPECS / "smoke.toml").replace(**{
        **SETTINGS[model_key], "name": "bench-rollout", "rewards.custom_file": "", "grpo.save_steps": 1000})
    g = spec.grpo

    # ---- the stage's own generation, timed during training ---------------------------------------
    seen: dict = {}
    in_training: list[tuple[float, float, int]] = []  # (wall s, CPU s, completion tokens) per step
    original = GRPOTrainer._generate

    def timed(self, prompts):
        t0, c0 = time.perf_counter(), time.process_time()
        out = original(self, prompts)
        in_training.append((time.perf_counter() - t0, time.process_time() - c0, _tokens(out[1])))
        seen["trainer"], seen["prompts"] = self, list(prompts)
        return out

    GRPOTrainer._generate = timed
    with RunStore() as store:
        run_id, run_dir = create_run(spec, store)
        with open(home / "stage.log", "w") as log, contextlib.redirect_stdout(log):
            status = run_worker(run_dir, store)
        if status != 0:
            raise RuntimeError(f"the GRPO stage failed: {store.get_run(run_id).get('error')}")
    GRPOTrainer._generate = original
    trainer, prompts = seen["trainer"], seen["prompts"]
    assert len(prompts) == g.batch_size, (len(prompts), g.batch_size)

    # ---- side by side: the trainer's _generate vs raw model.generate, same model and prompts ------
    model, tokenizer = trainer.model, trainer.processing_class
    eos = trainer.eos_token_ids
    eos = torch.tensor(eos if isinstance(eos, list) else [eos])

    def raw() -> int:
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                           add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=g.max_completion_length, do_sample=True,
                                 temperature=g.temperature, top_p=g.top_p,
                                 pad_token_id=tokenizer.pad_token_id)
        completion = out[:, inputs["input_ids"].shape[1]:]  # (B, T)
        is_eos = torch.isin(completion, eos)
        # tokens through the first EOS, as TRL counts a completion
        ends = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, completion.shape[1])
        return int(ends.sum())

    def stage() -> int:
        return _tokens(trainer._generate(prompts)[1])

    # tokens per wall-clock second, and per CPU second of this process (all its threads): on a shared
    # machine the second moves far less with the load of others, so it shows a real difference sooner
    side: dict[str, list[float]] = {"stage": [], "raw": []}
    side_cpu: dict[str, list[float]] = {"stage": [], "raw": []}
    for fn in (stage, raw):  # warm-up, not counted
        fn()
    for i in range(args.repeats):
        for name, fn in (("stage", stage), ("raw", raw)) if i % 2 == 0 else (("raw", raw), ("stage", stage)):
            torch.manual_seed(i)
            t0, c0 = time.perf_counter(), time.process_time()
            n = fn()
            side[name].append(n / (time.perf_counter() - t0))
            side_cpu[name].append(n / (time.process_time() - c0))

    during = [n / t for t, _, n in in_training[1:]]  # step 1 is warm-up
    during_cpu = [n / c for _, c, n in in_training[1:]]
    stage_tps, raw_tps = median(side["stage"]), median(side["raw"])
    stage_cpu, raw_cpu = median(side_cpu["stage"]), median(side_cpu["raw"])
    emit({
        "benchmark": "rollout_throughput", "model": spec.model.source,
        "settings": {"batch_size": g.batch_size, "max_completion_length": g.max_completion_length,
                     "num_generations": g.num_generations},
        "stage_tokens_per_s": stage_tps, "raw_generate_tokens_per_s": raw_tps,
        "ratio": stage_tps / raw_tps if stage_tps and raw_tps else None, "target": f">= {TARGET}",
        "stage_tokens_per_s_during_training": median(during),
        "ratio_during_training": median(during) / raw_tps if during and raw_tps else None,
        "stage_tokens_per_cpu_s": stage_cpu, "raw_generate_tokens_per_cpu_s": raw_cpu,
        "ratio_cpu": stage_cpu / raw_cpu if stage_cpu and raw_cpu else None,
        "ratio_cpu_during_training": median(during_cpu) / raw_cpu if during_cpu and raw_cpu else None,
        "samples": side, "samples_cpu": side_cpu,
    }, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
