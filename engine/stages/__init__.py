"""Training stages and what they share: the run context and the trainer callbacks that report to the store."""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

if TYPE_CHECKING:
    from engine.models import Placement
    from engine.spec import RunSpec
    from engine.store import RunStore

log = logging.getLogger(__name__)


class StageFailed(RuntimeError):
    """A stage cannot go on; the message says why and what to change."""


def is_main_process() -> bool:
    """Only rank 0 writes to the store when the run is launched on several processes."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass
class StageContext:
    store: RunStore
    run_id: int
    run_dir: Path
    spec: RunSpec
    placement: Placement
    resume: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)  # what a stage hands the next (adapter paths, ...)

    def checkpoint_dir(self, stage: str) -> Path:
        return self.run_dir / "checkpoints" / stage

    def event(self, level: str, message: str, stage: str | None = None, step: int | None = None,
              code: str | None = None) -> None:
        getattr(log, "warning" if level == "warning" else "info" if level != "error" else "error")(message)
        if is_main_process():
            self.store.log_event(self.run_id, level, message, stage, step, code)


def check_data(spec: RunSpec) -> None:
    """Raise DataError (with the counts) when the data cannot feed every stage of the spec: before
    any stage starts, so a run never ends 'succeeded' with an adapter that trained on nothing, and
    never spends an SFT stage before a GRPO stage that has too few prompts. Each stage checks again."""
    from engine.data import load_examples
    from engine.spec import grpo_prompts_per_step

    d = spec.data
    g = spec.grpo
    needs = [(1, f"the {stage} stage") for stage in ("sft", "judge", "prefer") if stage in spec.stages]
    if "grpo" in spec.stages:
        needs.append((grpo_prompts_per_step(g) * int(os.environ.get("WORLD_SIZE", "1")),
                      f"one GRPO step (batch_size {g.batch_size} x gradient_accumulation_steps "
                      f"{g.gradient_accumulation_steps} / num_generations {g.num_generations})"))
    if needs:
        min_rows, needed_for = max(needs)
        load_examples(d.source, n=d.train_size, seed=d.seed, split="train", difficulty_mix=d.mix(),
                      columns=d.columns(), min_rows=min_rows, needed_for=needed_for)
    if "eval" in spec.stages:
        load_examples(d.source, n=d.eval_size, seed=d.seed, split="eval", difficulty_mix=d.mix(),
                      columns=d.columns(), min_rows=1, needed_for="the eval stage")


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


def trainer_device_args(ctx: StageContext) -> dict[str, Any]:
    """TrainingArguments that follow the chosen placement (TRL defaults to bf16, which is slow or refused on CPU)."""
    p = ctx.placement
    return {"use_cpu": p.on_cpu, "bf16": p.dtype_name == "bfloat16", "fp16": p.dtype_name == "float16",
            "report_to": "none", "logging_steps": 1, "disable_tqdm": True, "save_only_model": False,
            "dataloader_num_workers": 0, "seed": ctx.spec.seed,
            "ddp_find_unused_parameters": False}  # LoRA uses every adapter weight; the check costs an autograd pass


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
