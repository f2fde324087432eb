"""Bare TRL: the GRPO configuration of a finished Ponder run, trained by a plain GRPOTrainer script.

    python bench/bare_grpo.py PONDER_RUN_DIR --work DIR --out TIMES.json

Same model folder, same dataset rows, same reward functions (engine.rewards: the preset's
accuracy + format, unwrapped), same LoRA settings and exactly the same GRPOConfig: it is
unpickled from the Ponder run's checkpoint (training_args.bin), only output_dir changes.
No run store, no trace capture, no health checks, no stop callback: only a clock that
notes when each step's logs arrive (the same moment Ponder's StoreReporter writes them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOTrainer

    from engine.data import load_examples
    from engine.models import resolve_source
    from engine.prompts import prompt_rows
    from engine.rewards import build_reward_funcs
    from engine.spec import load_spec

    spec = load_spec(args.run_dir / "spec.toml")
    ckpts = sorted((args.run_dir / "checkpoints" / "grpo").glob("checkpoint-*"),
                   key=lambda p: int(p.name[len("checkpoint-"):]))
    config = torch.load(ckpts[-1] / "training_args.bin", weights_only=False)  # Ponder's exact GRPOConfig
    config.output_dir = str(args.work / "out")

    folder = resolve_source(spec.model.source)  # where the model lives; not part of any step
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    d, r = spec.data, spec.rewards
    examples = load_examples(d.source, n=d.train_size, seed=d.seed, split="train", difficulty_mix=d.mix(),
                             columns=d.columns())
    dataset = Dataset.from_dict(prompt_rows(examples, tokenizer, r.resolved_prompt_mode(), r.budget))
    funcs, weights = build_reward_funcs(r.preset, weights=r.weights, params=r.params,
                                        max_completion_length=spec.grpo.max_completion_length)
    assert list(config.reward_weights) == weights, (config.reward_weights, weights)
    lora = spec.model.lora
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=list(lora.target_modules), task_type="CAUSAL_LM")

    steps: list[dict] = []

    class Clock(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "train_runtime" not in logs:
                steps.append({"step": state.global_step, "time": time.time(),
                              "step_time": logs.get("step_time")})

    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=config, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=peft_config, callbacks=[Clock()])
    trainer.train()
    args.out.write_text(json.dumps(steps), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
