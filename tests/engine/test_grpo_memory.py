"""The GRPO stage's micro-batches on a CPU: smaller forward/backward slices, the same optimizer step."""

from __future__ import annotations

import pytest

from engine.spec import GRPOSpec
from engine.stages import CPU_MICRO_BATCH
from engine.stages.grpo import micro_batches


@pytest.mark.parametrize(("batch", "accum"), [(16, 1), (16, 2), (12, 1), (6, 1), (3, 1), (8, 3)])
def test_micro_batches_keep_the_completions_per_step(batch, accum):
    g = GRPOSpec(batch_size=batch, gradient_accumulation_steps=accum, num_generations=3 if batch % 4 else 4)
    per_device, steps = micro_batches(g, on_cpu=True)
    assert per_device * steps == batch * accum
    assert per_device <= CPU_MICRO_BATCH and batch % per_device == 0
    assert micro_batches(g, on_cpu=False) == (batch, accum)  # a GPU keeps the whole batch in one pass


def _lora_after_one_step(tmp_path, per_device: int, accum: int):
    """One real GRPO step (tiny model, LoRA, plain SGD without clipping, so the weights move by lr x the
    gradient itself and a wrongly scaled or differently drawn batch shows); the LoRA weights after it."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from engine.models import ensure_tiny_random, load_model, lora_config
    from engine.spec import LoraSpec, ModelSpec

    model, tokenizer, _ = load_model(ModelSpec(source=str(ensure_tiny_random())))
    prompts = [f"What is {a} plus {a + 3}?" for a in range(8)]

    def length_reward(completions, **_):  # differs within a group, so every advantage is non-zero
        return [float(len(c) % 7) for c in completions]

    config = GRPOConfig(
        output_dir=str(tmp_path / f"out-{per_device}"), max_steps=1, learning_rate=0.5, optim="sgd",
        max_grad_norm=0.0, per_device_train_batch_size=per_device, gradient_accumulation_steps=accum,
        num_generations=4, max_completion_length=12, temperature=1.0, beta=0.0, loss_type="dr_grpo",
        scale_rewards="none", save_strategy="no", report_to="none", use_cpu=True, bf16=False,
        logging_steps=1, disable_tqdm=True, seed=7, dataloader_num_workers=0, log_completions=False)
    trainer = GRPOTrainer(model=model, reward_funcs=[length_reward], args=config,
                          train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tokenizer,
                          peft_config=lora_config(LoraSpec(r=4, alpha=8, dropout=0.0)))
    trainer.train()
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}, torch


def test_micro_batched_step_learns_what_the_whole_batch_learns(tmp_path):
    g = GRPOSpec(batch_size=8, num_generations=4)
    per_device, accum = micro_batches(g, on_cpu=True)
    assert (per_device, accum) == (4, 2)
    whole, torch = _lora_after_one_step(tmp_path, 8, 1)
    sliced, _ = _lora_after_one_step(tmp_path, per_device, accum)
    assert whole.keys() == sliced.keys() and whole
    moved = max((w != 0).any().item() for n, w in whole.items() if "lora_B" in n)
    assert moved  # the step changed the adapter (B starts at zero), so the comparison means something
    for name in whole:
        torch.testing.assert_close(sliced[name], whole[name], rtol=1e-4, atol=1e-6, msg=name)
