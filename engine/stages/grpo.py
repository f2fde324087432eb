"""GRPO with LoRA on TRL's GRPOTrainer: rewards from the spec's preset, every step reported to the store.

Reads top to bottom: model, data, rewards, resume point, trainer config, train, save.
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
    cpu_micro_batches,
    is_main_process,
    load_policy,
    resume_point,
    save_output,
    train,
    trainer_device_args,
)

log = logging.getLogger(__name__)
STAGE = "grpo"


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
    """(name -> reward function, name -> weight) of the spec's rewards with a non-zero weight."""
    from engine.rewards import build_rewards as build

    r, g = ctx.spec.rewards, ctx.spec.grpo
    return build(r.preset, weights=r.weights, params=r.params, custom_file=r.custom_file or None,
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
    return cpu_micro_batches(g.batch_size, g.gradient_accumulation_steps, on_cpu)


class ReleaseMemory(TrainerCallback):
    """After each optimizer step its freed activations and rollouts go back to the system, so the steady
    memory between steps is the model's, not the last step's high-water mark (models.release_memory)."""

    def on_step_end(self, args, state, control, **kwargs):
        from engine.models import release_memory

        release_memory()



def run(ctx: StageContext) -> str:
    """Train; returns the stage's end status: "succeeded" or "stopped"."""
    from trl import GRPOConfig, GRPOTrainer

    from engine.traces import TraceRecorder

    spec, g = ctx.spec, ctx.spec.grpo

    # ---- model (the prefer or SFT stage's adapter, if one ran, is the starting point) ------------
    start_adapter = ctx.outputs.get("prefer_adapter") or ctx.outputs.get("sft_adapter")
    model, tokenizer, peft_config = load_policy(ctx, start_adapter)

    # ---- data and rewards ------------------------------------------------------------------------
    train_dataset = build_dataset(ctx, tokenizer)
    extra = {}
    if ctx.outputs.get("judge_path"):
        from engine.rewards.judge import judge_reward

        extra["judge"] = judge_reward(ctx.outputs["judge_path"], ctx.placement)
    likelihood = None
    if spec.rewards.resolved_weights().get("reference_likelihood"):
        from engine.rewards.likelihood import ReferenceLikelihood

        extra["reference_likelihood"] = likelihood = ReferenceLikelihood(tokenizer)
    rewards, weights = build_rewards(ctx, extra=extra)  # name -> function, name -> weight
    recorder = TraceRecorder(ctx.store, ctx.run_id, STAGE, tokenizer, weights,
                             traces_per_step=g.traces_per_step, seed=spec.seed, write=is_main_process())
    funcs = [recorder.wrap(name, f) for name, f in rewards.items()]
    ctx.event("info", f"grpo: {len(train_dataset)} prompts; rewards " +
              ", ".join(f"{n} x{w:g}" for n, w in weights.items()), STAGE)

    # ---- resume point --------------------------------------------------------------------------
    out_dir = ctx.checkpoint_dir(STAGE)
    resume_from = resume_point(ctx, STAGE, out_dir)

    # ---- trainer ---------------------------------------------------------------------------------
    per_device, accumulation = micro_batches(g, ctx.placement.on_cpu)
    config = GRPOConfig(
        output_dir=str(out_dir), max_steps=g.max_steps, learning_rate=g.learning_rate,
        per_device_train_batch_size=per_device, num_generations=g.num_generations,
        gradient_accumulation_steps=accumulation,
        max_completion_length=g.max_completion_length, temperature=g.temperature, top_p=g.top_p,
        beta=g.beta, loss_type=g.loss_type, scale_rewards=g.scale_rewards,
        reward_weights=[weights[n] for n in rewards],
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

    # ---- train (from the resume point) ----------------------------------------------------------
    train(trainer, resume_from)

    # ---- save ------------------------------------------------------------------------------------
    if reporter.fatal:
        raise StageFailed(reporter.fatal)
    if stopper.stopped:
        return "stopped"  # the checkpoint of the stop was registered as it was saved
    ctx.outputs["grpo_adapter"] = save_output(ctx, STAGE, trainer, tokenizer, ctx.run_dir / "adapter", "adapter")
    return "succeeded"
