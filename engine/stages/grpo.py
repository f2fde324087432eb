"""GRPO with LoRA on TRL's GRPOTrainer: rewards from the spec's preset, every step reported to the store.

Reads top to bottom: data, model, rewards, trainer config, resume, train, save.
"""

from __future__ import annotations

import logging
import os

from transformers import TrainerCallback

from engine.stages import (
    StageContext,
    StageFailed,
    StopOnRequest,
    StoreReporter,
    is_main_process,
    last_checkpoint,
    trainer_device_args,
)

log = logging.getLogger(__name__)
STAGE = "grpo"
CPU_MICRO_BATCH = 4  # completions per forward/backward on a CPU (see micro_batches)


def build_dataset(ctx: StageContext, tokenizer):
    from datasets import Dataset

    from engine.data import load_examples
    from engine.prompts import prompt_rows
    from engine.spec import grpo_prompts_per_step

    spec, g = ctx.spec, ctx.spec.grpo
    need = grpo_prompts_per_step(g) * int(os.environ.get("WORLD_SIZE", "1"))  # the sampler drops a partial round
    examples = load_examples(spec.data.source, n=spec.data.train_size, seed=spec.data.seed, split="train",
                             difficulty_mix=spec.data.mix(), columns=spec.data.columns(), min_rows=need,
                             needed_for=f"one GRPO step (batch_size {g.batch_size} x gradient_accumulation_steps "
                                        f"{g.gradient_accumulation_steps} / num_generations {g.num_generations})")
    mode = spec.rewards.resolved_prompt_mode()
    return Dataset.from_dict(prompt_rows(examples, tokenizer, mode, spec.rewards.budget))


def build_rewards(ctx: StageContext, extra: dict | None = None):
    from engine.rewards import build_reward_funcs

    r, g = ctx.spec.rewards, ctx.spec.grpo
    return build_reward_funcs(r.preset, weights=r.weights, params=r.params, custom_file=r.custom_file or None,
                              max_completion_length=g.max_completion_length, extra=extra,
                              custom_timeout_s=r.custom_timeout_s)


def micro_batches(g, on_cpu: bool) -> tuple[int, int]:
    """(per_device_train_batch_size, gradient_accumulation_steps) that give the spec's optimizer step.

    One step still learns from batch_size x gradient_accumulation_steps completions, generated in one
    batch and scored as one group set (TRL's generation batch is per_device x steps_per_generation,
    which defaults to the accumulation steps); on a CPU the loss and backward run in slices of at most
    CPU_MICRO_BATCH completions. The whole batch at once keeps every layer's activations of 16 x ~160
    tokens alive for the backward: the quickstart's GRPO on the 135M model peaked at 6.7 GB that way,
    3.0 GB in slices of 4, with the same loss and gradient norm. TRL's loss divides by the accumulation
    steps, so the summed gradient is the same; a GPU keeps the whole batch in one pass."""
    micro = g.batch_size
    if on_cpu:
        micro = max(d for d in range(1, min(g.batch_size, CPU_MICRO_BATCH) + 1) if g.batch_size % d == 0)
    return micro, g.gradient_accumulation_steps * (g.batch_size // micro)


class ReleaseMemory(TrainerCallback):
    """After each optimizer step its freed activations and rollouts go back to the system, so the steady
    memory between steps is the model's, not the last step's high-water mark (models.release_memory)."""

    def on_step_end(self, args, state, control, **kwargs):
        from engine.models import release_memory

        release_memory()


def _weight(spec, name: str) -> float:
    from engine.rewards.presets import PRESETS

    return spec.rewards.weights.get(name, PRESETS[spec.rewards.preset].components.get(name, 0.0))


def run(ctx: StageContext) -> str:
    """Train; returns the stage's end status: "succeeded" or "stopped"."""
    from trl import GRPOConfig, GRPOTrainer

    from engine.models import load_model, lora_config, missing_lora_targets
    from engine.traces import TraceRecorder

    spec, g = ctx.spec, ctx.spec.grpo

    # ---- model (the prefer or SFT stage's adapter, if one ran, is the starting point) ------------
    start_adapter = ctx.outputs.get("prefer_adapter") or ctx.outputs.get("sft_adapter")
    model, tokenizer, _ = load_model(spec.model, placement=ctx.placement, adapter=start_adapter,
                                     trainable=start_adapter is not None)
    peft_config = None
    if spec.model.lora.enabled and start_adapter is None:
        missing = missing_lora_targets(model, spec.model.lora.target_modules)
        if missing:
            raise StageFailed(f"model.lora.target_modules: the model has no modules named {', '.join(missing)}.")
        peft_config = lora_config(spec.model.lora)

    # ---- data and rewards ------------------------------------------------------------------------
    train_dataset = build_dataset(ctx, tokenizer)
    extra = {}
    if ctx.outputs.get("judge_path"):
        from engine.stages.judge import judge_reward

        extra["judge"] = judge_reward(ctx.outputs["judge_path"], ctx.placement)
    likelihood = None
    if _weight(spec, "reference_likelihood"):
        from engine.rewards.likelihood import ReferenceLikelihood

        extra["reference_likelihood"] = likelihood = ReferenceLikelihood(tokenizer)
    funcs, weights = build_rewards(ctx, extra=extra)
    names = [getattr(f, "__name__", type(f).__name__) for f in funcs]
    recorder = TraceRecorder(ctx.store, ctx.run_id, STAGE, tokenizer, dict(zip(names, weights, strict=True)),
                             traces_per_step=g.traces_per_step, seed=spec.seed, write=is_main_process())
    funcs = [recorder.wrap(f) for f in funcs]
    ctx.event("info", f"grpo: {len(train_dataset)} prompts; rewards " +
              ", ".join(f"{n} x{w:g}" for n, w in zip(names, weights, strict=True)), STAGE)

    # ---- trainer ---------------------------------------------------------------------------------
    out_dir = ctx.checkpoint_dir(STAGE)
    per_device, accumulation = micro_batches(g, ctx.placement.on_cpu)
    config = GRPOConfig(
        output_dir=str(out_dir), max_steps=g.max_steps, learning_rate=g.learning_rate,
        per_device_train_batch_size=per_device, num_generations=g.num_generations,
        gradient_accumulation_steps=accumulation,
        max_completion_length=g.max_completion_length, temperature=g.temperature, top_p=g.top_p,
        beta=g.beta, loss_type=g.loss_type, scale_rewards=g.scale_rewards, reward_weights=weights,
        save_strategy="steps", save_steps=g.save_steps, activation_checkpointing=g.gradient_checkpointing,
        log_completions=False, shuffle_dataset=True, remove_unused_columns=False,
        use_vllm=g.use_vllm, vllm_mode=g.vllm_mode, vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
        **trainer_device_args(ctx),
    )
    stopper = StopOnRequest(ctx.store, ctx.run_id)
    from engine.health import HealthMonitor

    from engine.stages.probe import PolicyProbe

    h = spec.health
    probe = PolicyProbe(tokenizer, train_dataset["prompt"][:h.probe_prompts], h.probe_steps if h.enabled else 0,
                        min(g.max_completion_length, 64))
    reporter = StoreReporter(ctx, STAGE, extra=lambda step, logged: {**recorder.step_metrics(step, logged),
                                                                     **probe.metrics(step)},
                             health=HealthMonitor(h, g.max_completion_length, g.beta))
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=config, train_dataset=train_dataset,
                          processing_class=tokenizer, peft_config=peft_config,
                          callbacks=[ReleaseMemory(), stopper, probe, reporter])

    if likelihood is not None:
        likelihood.model = trainer.model  # the policy scores the reference answer after its own reasoning

    # ---- resume from the last checkpoint ---------------------------------------------------------
    resume_from = last_checkpoint(out_dir) if ctx.resume else None
    if ctx.resume and resume_from is None and is_main_process():
        ctx.store.forget_after(ctx.run_id, STAGE, -1)  # killed before its first checkpoint: start over
    if resume_from is not None:
        done = int(resume_from.name.rsplit("-", 1)[-1])
        if is_main_process():
            ctx.store.forget_after(ctx.run_id, STAGE, done)  # those steps are redone
        ctx.event("info", f"grpo: resuming from {resume_from.name} (step {done})", STAGE, done)

    # ---- train -----------------------------------------------------------------------------------
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

    # ---- save ------------------------------------------------------------------------------------
    if reporter.fatal:
        raise StageFailed(reporter.fatal)
    status = "stopped" if stopper.stopped else "succeeded"
    final = ctx.run_dir / "adapter" if status == "succeeded" else last_checkpoint(out_dir)
    if status == "succeeded":
        trainer.save_model(str(final))  # the Trainer writes from the main process only
        if is_main_process():
            tokenizer.save_pretrained(str(final))
            ctx.store.add_artifact(ctx.run_id, "adapter", final, {"step": trainer.state.global_step,
                                                                  "stage": STAGE}, stage=STAGE)
    ctx.outputs["grpo_adapter"] = final
    return status
