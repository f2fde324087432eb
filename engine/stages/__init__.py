"""Training stages and what they share: the run context and the trainer callbacks that report to the store."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from engine.run_context import StageContext, StageFailed, check_data, is_main_process  # noqa: F401 (the stages' API)

if TYPE_CHECKING:
    from engine.store import RunStore

log = logging.getLogger(__name__)


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint-N folder under `folder`, or None.

    The Trainer writes trainer_state.json last, so a folder without it is a save cut short (a full disk,
    a kill while saving): resuming from it would fail, so it is passed over for the one before.
    """
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if not folder.is_dir():
        return None
    steps = []
    for child in folder.iterdir():
        match = re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", child.name)
        if match and child.is_dir() and (child / "trainer_state.json").is_file():
            steps.append((int(match.group(1)), child))
    return max(steps)[1] if steps else None


def resume_point(ctx: StageContext, stage: str, out_dir: Path) -> Path | None:
    """The checkpoint a training stage continues from (on resume, its newest complete one), or None.

    Either way the store keeps nothing of an earlier attempt past that point: its metrics and traces
    after the checkpoint's step (all of them, step 0 too, on a start from scratch) are dropped, as
    those steps are trained again.
    """
    resume_from = last_checkpoint(out_dir) if ctx.resume else None
    done = int(resume_from.name.rsplit("-", 1)[-1]) if resume_from is not None else -1
    if is_main_process():
        ctx.store.forget_after(ctx.run_id, stage, done)
    if resume_from is not None:
        ctx.event("info", f"{stage}: resuming from {resume_from.name} (step {done})", stage, done)
    return resume_from


def lora_for(ctx: StageContext, model, task_type: str = "CAUSAL_LM"):
    """The LoRA config a trainer puts on `model` (None when LoRA is off); a target module the model
    lacks is named."""
    from engine.models import lora_config, missing_lora_targets

    lora = ctx.spec.model.lora
    if not lora.enabled:
        return None
    missing = missing_lora_targets(model, lora.target_modules)
    if missing:
        raise StageFailed(f"model.lora.target_modules: the model has no modules named {', '.join(missing)}.")
    return lora_config(lora, task_type=task_type)


def load_policy(ctx: StageContext, adapter: Path | None = None):
    """(model, tokenizer, peft_config): the run's model with `adapter` (an earlier stage's) on top and
    trainable, or the base model and the LoRA config the trainer adds (None with LoRA off)."""
    from engine.models import load_model

    model, tokenizer, _ = load_model(ctx.spec.model, placement=ctx.placement, adapter=adapter,
                                     trainable=adapter is not None)
    return model, tokenizer, (lora_for(ctx, model) if adapter is None else None)


def train(trainer, resume_from: Path | None) -> None:
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)


def save_output(ctx: StageContext, stage: str, trainer, tokenizer, folder: Path, kind: str,
                meta: dict[str, Any] | None = None, files: dict[str, str] | None = None) -> Path:
    """The trained model (an adapter, or a model with LoRA off) and its tokenizer in `folder`, more
    `files` (name -> text) beside them, registered as the stage's `kind` artifact with `meta`."""
    trainer.save_model(str(folder))  # the Trainer writes from the main process only
    if is_main_process():
        tokenizer.save_pretrained(str(folder))
        for name, text in (files or {}).items():
            (folder / name).write_text(text)
        ctx.store.add_artifact(ctx.run_id, kind, folder,
                               {"step": trainer.state.global_step, "stage": stage, **(meta or {})}, stage=stage)
    return folder


def trainer_device_args(ctx: StageContext) -> dict[str, Any]:
    """TrainingArguments that follow the chosen placement (TRL defaults to bf16, which is slow or refused on CPU)."""
    p = ctx.placement
    return {"use_cpu": p.on_cpu, "bf16": p.dtype_name == "bfloat16", "fp16": p.dtype_name == "float16",
            "report_to": "none", "logging_steps": 1, "disable_tqdm": True, "save_only_model": False,
            "dataloader_num_workers": 0, "seed": ctx.spec.seed,
            "ddp_find_unused_parameters": False}  # LoRA uses every adapter weight; the check costs an autograd pass


CPU_MICRO_BATCH = 4  # examples (or completions) per forward/backward on a CPU (see cpu_micro_batches)


def cpu_micro_batches(batch_size: int, accumulation: int, on_cpu: bool) -> tuple[int, int]:
    """(per_device_train_batch_size, gradient_accumulation_steps) for a step of batch_size x accumulation
    examples: on a CPU the forward and backward run in slices of at most CPU_MICRO_BATCH (the largest
    divisor of batch_size that fits), so one slice's activations and logits are alive at a time; the
    optimizer step still learns from every example of the batch. A GPU keeps the whole batch in one pass."""
    micro = batch_size
    if on_cpu:
        micro = max(d for d in range(1, min(batch_size, CPU_MICRO_BATCH) + 1) if batch_size % d == 0)
    return micro, accumulation * (batch_size // micro)


def memory_metrics() -> dict[str, float]:
    """Resident memory of this process (and its peak), and the GPU's peak where there is one."""
    import resource

    import psutil
    import torch

    out = {"memory/rss_gb": psutil.Process().memory_info().rss / 2**30,
           "memory/peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if torch.cuda.is_available():
        out["memory/gpu_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


class StopOnRequest(TrainerCallback):
    """Turns a 'stop' command in the run store into a checkpointed, clean stop."""

    def __init__(self, store: RunStore, run_id: int):
        self.store, self.run_id = store, run_id
        self.stopped = False

    def on_step_end(self, args, state, control, **kwargs):
        stop = is_main_process() and self.store.take_command(self.run_id, "stop")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every rank must leave the loop at the same step
            from accelerate.utils import broadcast_object_list

            stop = broadcast_object_list([stop], from_process=0)[0]
        if stop:
            self.stopped = True
            control.should_save = True  # the Trainer saves, then leaves the loop
            control.should_training_stop = True


class StoreReporter(TrainerCallback):
    """Writes every logged step's metrics and the stage's progress to the store, and raises health alerts.

    `extra(step, logged)` returns more metrics for that step (the trace recorder's accuracy,
    token split, think-rate). `health` (an engine.health.HealthMonitor) checks each step; an
    alert becomes an event at its step; a fatal one (NaN/inf) saves a checkpoint and stops.
    """

    def __init__(self, ctx: StageContext, stage: str, extra=None, health=None):
        self.ctx, self.stage, self.extra = ctx, stage, extra
        if health is None:
            from engine.health import HealthMonitor
            from engine.spec import HealthSpec

            health = HealthMonitor(HealthSpec(enabled=False), 0)  # NaN/inf checks only
        self.health = health
        self.fatal: str | None = None
        self._last_time: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if is_main_process():
            self.ctx.store.set_stage(self.ctx.run_id, self.stage, status="running", total_steps=state.max_steps,
                                     progress=state.global_step)
        self._last_time = time.time()

    def on_save(self, args, state, control, **kwargs):
        """Each checkpoint becomes an artifact as soon as it is written (Compare and resume list them)."""
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if is_main_process() and path.is_dir():
            self.ctx.store.add_artifact(self.ctx.run_id, "checkpoint", path,
                                        {"step": state.global_step, "stage": self.stage}, stage=self.stage)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        step = state.global_step
        if "train_runtime" in logs:  # the end-of-training summary, not a step
            self.ctx.event("info", f"{self.stage}: trained {step} steps in {logs['train_runtime']:.0f} s",
                           self.stage, step)
            return
        values = {k: float(v) for k, v in logs.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        now = time.time()
        values.setdefault("step_time", now - (self._last_time or now))
        self._last_time = now
        values.update(memory_metrics())
        if self.extra is not None:
            values.update(self.extra(step, values))
        if is_main_process():
            self.ctx.store.add_metrics(self.ctx.run_id, self.stage, step, values)
            self.ctx.store.set_stage(self.ctx.run_id, self.stage, progress=step)
        for alert in self.health.check(step, values):
            from engine.health import ALERT_LEVEL

            self.ctx.event("error" if alert.fatal else ALERT_LEVEL, f"{self.stage}: {alert.message}",
                           self.stage, step, alert.code)
            if alert.fatal:
                self.fatal = alert.message
                control.should_save = True  # keep the last good state, then leave the loop
                control.should_training_stop = True
